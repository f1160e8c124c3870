"""Prefect settings for air-gapped sites, applied before Prefect is imported (see shared NOTES).

``PREFECT_HOME`` holds the run's Prefect database, logs and API secret: a folder only its owner can enter (0700).
"""

from __future__ import annotations

import os
from pathlib import Path

from sonimage.io import private_dir

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "sonimage.stages",  # the stages' notes (run in the flow) in the run's logs
}


def configure(home: Path | None = None) -> None:
    """Set offline-safe defaults (existing variables win) and give Prefect a private home of the project's."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(Path(home or Path.cwd() / ".prefect").resolve()))
    private_dir(Path(os.environ["PREFECT_HOME"]))
