"""The cluster specs in ``infra/`` checked offline: the Kubernetes ``DaskCluster`` against the dask-kubernetes
operator's own CRD schema (from the pinned package's wheel, fetched by ``make`` without its dependencies), the
SLURM options free of site placeholders, and the image recipe pinned like ``pyproject.toml``."""

from __future__ import annotations

import copy
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from flows.runners import slurm_options
from tests.helpers import REPO

CRD = "dask_kubernetes/operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml"


def _pin(extra: str, package: str) -> str:
    """The ``package==version`` pin of a ``pyproject.toml`` optional extra (or of the main dependencies)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] if extra == "" else project["optional-dependencies"][extra]
    return next(p for p in pins if re.match(rf"{re.escape(package)}(\[.*\])?==", p))


@pytest.fixture(scope="module")
def crd() -> dict:
    version = _pin("kubernetes", "dask-kubernetes").split("==")[1]
    wheels = sorted((Path(sys.prefix) / "wheels").glob(f"dask_kubernetes-{version}-*.whl"))
    if not wheels:
        pytest.skip(f"dask-kubernetes {version} wheel not in {sys.prefix}/wheels (make install downloads it)")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return yaml.safe_load(wheel.read(CRD))


def _schema(crd: dict) -> dict:
    (served,) = [v for v in crd["spec"]["versions"] if v["served"]]
    return served["schema"]["openAPIV3Schema"]


def test_dask_cluster_manifest_matches_the_operator_crd(crd: dict) -> None:
    manifest = yaml.safe_load((REPO / "infra" / "kubernetes" / "dask-cluster.yaml").read_text())
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    assert manifest["apiVersion"] in {f"{group}/{v['name']}" for v in crd["spec"]["versions"]}
    assert manifest["kind"] == kind
    jsonschema.validate({"spec": manifest["spec"]}, _schema(crd))
    broken = copy.deepcopy(manifest)
    broken["spec"]["worker"]["replicas"] = "two"
    del broken["spec"]["scheduler"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": broken["spec"]}, _schema(crd))


def test_image_recipe_pins_the_engine_like_pyproject() -> None:
    recipe = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    for package in ("dask[array]", "distributed", "prefect", "prefect-dask"):
        assert _pin("", package) in recipe, package
    assert _pin("kubernetes", "dask-kubernetes") in recipe


def test_slurm_options_have_no_site_placeholders() -> None:
    text = (REPO / "infra" / "slurm" / "jobqueue.yaml").read_text()
    assert "/path/to" not in text and ".internal" not in text
    options = slurm_options({"SONIMAGE_SLURM_PARTITION": "gpu", "SONIMAGE_SLURM_ACCOUNT": "onco",
                             "SONIMAGE_SLURM_WALLTIME": "1-00:00:00", "SONIMAGE_SLURM_VENV": "/opt/venv"})
    assert (options["queue"], options["account"], options["python"]) == ("gpu", "onco", "/opt/venv/bin/python")
    assert options["worker_extra_args"] == ["--lifetime", "60480s", "--lifetime-stagger", "8640s"]
