"""The run settings travel as JSON; atomic writes leave only the finished file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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


KILLED_WRITER = """
import sys, time
from pathlib import Path
from sonimage.io import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.mkdir()
    (tmp / "chunk").write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(600)
"""


def test_next_write_removes_temporaries_of_dead_writers_only(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        dead = Path(writer.stdout.readline().strip())
        assert (dead / "chunk").is_file()
        write_directory_atomic(store, lambda tmp: tmp.mkdir())  # while the writer lives, its temporary stays
        assert dead.is_dir()
    finally:
        writer.send_signal(signal.SIGKILL)  # killed mid-write: no cleanup of its own runs
        writer.wait()
    assert dead.is_dir() and writer.returncode == -signal.SIGKILL
    live = temporary_sibling(store)  # this process: a live writer
    live.mkdir()
    elsewhere = store.with_name(f".s.zarr.other-host.{writer.pid}.{'0' * 32}.tmp")
    elsewhere.mkdir()  # another host's writer: its liveness cannot be seen here
    write_directory_atomic(store, lambda tmp: (tmp.mkdir(), (tmp / "done").write_text("x")))
    assert not dead.exists() and live.is_dir() and elsewhere.is_dir()
    assert [p.name for p in store.iterdir()] == ["done"]
