"""The DICOM tree listing (``file_paths``, strings from one ``scandir`` per folder) gives the files, and the order,
that walking the tree and sorting ``Path`` objects gives; ``relative`` is ``Path.relative_to`` as a string."""

from __future__ import annotations

import os
from pathlib import Path

from sonimage.dicom.index import file_paths, list_files, relative


def _walked(root: Path) -> list[Path]:
    """The definition: every regular file below ``root`` (links to folders not followed), sorted as paths."""
    out = [Path(d) / f for d, _, files in os.walk(root) for f in files]
    return sorted(p for p in out if p.is_file())


def test_listing_matches_walk_and_path_order(tmp_path):
    root = tmp_path / "dicom"
    names = ["a/x.dcm", "a-b/x.dcm", "a.b/y", "A/z", "a/.hidden", "a/b/c/d.dcm", "a/b-c/e", "ab/f",
             "b/IM-0001-0002.dcm", "b/IM-0001-0010.dcm", "b/im-0001-0003.dcm", "top-level-file"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "link-to-a").symlink_to(root / "a", target_is_directory=True)  # a folder link: not followed
    (root / "b" / "link.dcm").symlink_to(root / "a" / "x.dcm")  # a file link: listed, as os.walk lists it
    (root / "empty").mkdir()
    expected = _walked(root)
    assert len(expected) == len(names) + 1
    assert file_paths(root) == [str(p) for p in expected]
    assert list_files(root) == expected
    assert [relative(p, root) for p in file_paths(root)] == [str(p.relative_to(root)) for p in expected]
    assert relative(root / "a" / "x.dcm", str(root) + "/") == "a/x.dcm"
