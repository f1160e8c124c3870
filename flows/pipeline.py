"""The sonimage study flow: (synthetic) DICOM → Zarr volumes → lesion features → survival report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from flows.runners import default_runner
from flows.tasks import PrefectExecutor, analyse
from sonimage.dicom.pseudonym import Pseudonymiser, site_pseudonymiser
from sonimage.lesions.reuse import read_reuse_summary
from sonimage.parallel import peak_rss_mb
from sonimage.run_summary import StageClock, render, run_summary, write_run_summary
from sonimage.settings import Settings
from sonimage.stages import convert as convert_stage, extract as extract_stage
from sonimage.dicom.conversion import ConvertSummary


def convert_and_extract(dicom_root: Path, out: Path, pseudo: Pseudonymiser, settings: Settings, clock: StageClock
                        ) -> tuple[ConvertSummary, dict[str, str]]:
    """The conversion and feature stages (:mod:`sonimage.stages`) with every item a Prefect task; the plans and
    gathers run here, in the flow process (which alone holds the site key and linking table). Returns the
    conversion summary and the tables written."""
    executor = PrefectExecutor()
    with clock.stage("convert"):
        summary = convert_stage.run(dicom_root, out, pseudo, executor)
    get_run_logger().info(summary.describe())
    tables = {"manifest": str(summary.manifest), "quarantine": str(summary.quarantine)}
    with clock.stage("features"):
        tables.update(extract_stage.run(out, executor, settings))
    return summary, tables


@flow(name="sonimage-study", log_prints=True, task_runner=default_runner())
def study_flow(out: str, dicom_root: str, linking: str | None = None, key_file: str | None = None,
               clinical: str | None = None, settings: str | None = None, cohort: str | None = None) -> dict[str, str]:
    """DICOM below ``dicom_root`` → Zarr volumes → lesion features → (with ``clinical`` tables) the study report.

    Parameters are paths and JSON only (deployments pass JSON): the site linking table and key file stay at the
    site and in this process; ``cohort`` names the cohort of patients the linking table gives none; ``settings``
    is :class:`sonimage.settings.Settings` as JSON (None: the defaults). Returns where the
    outputs are.
    """
    run_settings = Settings.from_json(settings)
    pseudo = site_pseudonymiser(key_file, linking, cohort)
    out_path, root = Path(out).resolve(), Path(dicom_root).resolve()
    clock = StageClock(process_peaks)
    summary, tables = convert_and_extract(root, out_path, pseudo, run_settings, clock)
    outputs = {**tables, "volumes": str(out_path / "volumes")}
    if clinical:
        scheduler = get_run_context().task_runner.client.scheduler.address
        with clock.stage("analysis"):
            outputs.update(analyse(str(out_path), str(Path(clinical).resolve()), scheduler, run_settings))
    report_run(summary, outputs, clock, out_path)
    return outputs


def process_peaks() -> dict[str, float]:
    """Peak resident MB of the flow process (client, scheduler of a local cluster, the stages' plans and gathers)
    and of the largest Dask worker since the last call (:func:`sonimage.parallel.peak_rss_mb`, which restarts
    each process's peak): a stage's own peaks, for :class:`sonimage.run_summary.StageClock`."""
    client = getattr(get_run_context().task_runner, "client", None)
    workers = client.run(peak_rss_mb, reset=True) if client is not None else {}
    return {"flow process": peak_rss_mb(reset=True), "largest worker": max(workers.values(), default=0.0)}


def report_run(summary: ConvertSummary, tables: dict[str, str], clock: StageClock, out: Path) -> None:
    """Print the run summary table (into the flow run's logs) and keep it as ``run_summary.json``."""
    table = run_summary(summary, tables, clock.seconds, read_reuse_summary(out) if "lesions" in tables else None,
                        clock.peaks)
    print(render(table))
    write_run_summary(table, out)
