"""The nightly ingest of a drop folder (a scheduled deployment; the weekly refit is :mod:`flows.refit`).

Ingest is incremental: a series whose store was made from the same bytes is skipped, a changed one is converted
again, and the tables are rewritten whole (sorted, so a rerun is byte-identical) with cohort partitions beside them.
The drop folder and the outputs are local paths or fsspec URLs (``s3://``): remote ones go through a local working
copy (``work``) that keeps the stores between runs.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from flows.pipeline import convert_and_extract, report_run
from flows.runners import default_runner
from sonimage.dicom.pseudonym import site_pseudonymiser
from sonimage.run_summary import StageClock
from sonimage.settings import Settings
from sonimage.storage import location, mirror
from sonimage.tables.partitions import write_cohort_partitions

NOT_PUBLISHED = (".prefect", "drop/", "features/reuse/")  # Prefect's local state; the mirrored drop folder
# (original DICOM); the feature stage's reuse cache (working state of the local copy)


@task(name="mirror-files", task_run_name="mirror-to-{dst}")
def mirror_files(src: str, dst: str, exclude: tuple[str, ...] = ()) -> int:
    """Copy what is new or changed from ``src`` to ``dst`` (paths or URLs); returns how many files."""
    return len(mirror(src, dst, exclude=exclude))


@task(name="partition-tables")
def partition_tables(work: str, tables: dict[str, str]) -> list[str]:
    """Cohort partitions of every table under ``work/tables/<name>/``."""
    return [str(p) for name, path in tables.items()
            for p in write_cohort_partitions(Path(path), Path(work) / "tables" / name)]


def working_copy(out: str, work: str | None) -> Path:
    """Where the run writes: ``out`` itself when local, else the local ``work`` folder."""
    target = location(out)
    if target.is_local:
        return Path(target.root).resolve()
    if not work:
        raise ValueError(f"output {out} is remote: give a local work folder (parameter work)")
    return Path(work).resolve()


@flow(name="sonimage-ingest", log_prints=True, task_runner=default_runner())
def ingest_flow(drop: str, out: str, work: str | None = None, linking: str | None = None,
                key_file: str | None = None, settings: str | None = None, cohort: str | None = None
                ) -> dict[str, str]:
    """New or changed DICOM series in ``drop`` → Zarr volumes → lesion features → tables, published to ``out``.

    Cohorts come from the linking table's ``cohort`` column, else ``cohort``.

    ``settings``: :class:`sonimage.settings.Settings` as JSON (None: the defaults).
    """
    logger = get_run_logger()
    local = working_copy(out, work)
    dicom = Path(drop).resolve() if location(drop).is_local else local / "drop"
    if not location(drop).is_local:
        logger.info("%d files fetched from the drop folder", mirror_files(drop, str(dicom)))
    pseudo = site_pseudonymiser(key_file, linking, cohort)
    clock = StageClock()
    summary, tables = convert_and_extract(dicom, local, pseudo, Settings.from_json(settings), clock)
    with clock.stage("tables"):
        partition_tables(str(local), tables)
    report_run(summary, tables, clock, local)
    if not location(out).is_local:
        logger.info("%d files published to %s", mirror_files(str(local), out, NOT_PUBLISHED), out)
    return tables

