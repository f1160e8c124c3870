"""The run settings travel as JSON; atomic writes leave only the finished file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonimage.io import temporary_sibling, write_bytes_atomic, write_directory_atomic, write_json_atomic
from sonimage.settings import Settings, StudySettings


def test_settings_round_trip_through_json() -> None:
    s = Settings(study=StudySettings(horizon_months=24.0, fes_thresholds=(1.2, 1.5)))
    back = Settings.from_json(s.to_json())
    assert back == s and isinstance(back.study.fes_thresholds, tuple)
    assert Settings.from_json('{"fes": {"threshold": 2.0}}').fes.threshold == 2.0  # partial: the rest default
    assert Settings.from_json(None) == Settings()


def test_unknown_setting_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text('{"study": {"horizon_month": 6}}')
    with pytest.raises(ValueError, match=r"run\.json.*horizon_month"):
        Settings.load(bad)


def test_atomic_writes_leave_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x.json"
    write_json_atomic({"v": np.float32(1.5), "a": np.arange(3)}, target)
    assert json.loads(target.read_text()) == {"v": 1.5, "a": [0, 1, 2]}
    write_bytes_atomic(target, b"{}")
    store = tmp_path / "s.zarr"
    for n in (1, 2):  # a second write replaces the first directory whole
        write_directory_atomic(store, lambda tmp, n=n: (tmp.mkdir(), (tmp / f"part{n}").write_text("x")))
    assert [p.name for p in store.iterdir()] == ["part2"]
    with pytest.raises(RuntimeError):
        write_directory_atomic(tmp_path / "t.zarr", lambda tmp: (tmp.mkdir(), (_ for _ in ()).throw(RuntimeError())))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "s.zarr"]
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
    assert temporary_sibling(target) != temporary_sibling(target)  # parallel writers never share a temporary
