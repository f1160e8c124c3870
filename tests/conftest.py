"""Shared test fixtures: the public reference data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Where the public reference data lives: $SONIMAGE_SHARED_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("SONIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder; tests that need it skip with a clear message where it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"public reference data not found at {root} (set SONIMAGE_SHARED_DATA)")
    return root


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test saying which reference data set is missing."""
    if not path.exists():
        pytest.skip(f"reference data missing: {path}")
    return path
