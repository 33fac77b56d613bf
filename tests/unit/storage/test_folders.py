"""``storage.folders``: reading a job's folder never goes through a link the job left."""

from __future__ import annotations

import os
from pathlib import Path

from sageport.storage import folders


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    base = tmp_path / "job"
    root = base / "algo-1" / "model"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    secret = tmp_path / "secret"
    secret.write_text("SECRET")
    (root / "link").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")  # opening it for reading would hang: it is left out
    return base, root, secret


def test_walk_yields_files_and_links_never_their_targets(tmp_path: Path) -> None:
    base, root, secret = _tree(tmp_path)
    seen: dict[str, tuple[str, bytes | str]] = {}
    for entry in folders.walk(base, root):
        body: bytes | str = os.pread(entry.fd, 100, 0) if entry.kind == "file" else entry.target
        seen[entry.rel] = (entry.kind, body)
    assert seen == {
        "sub": ("dir", ""),
        "a.txt": ("file", b"a"),
        "dirlink": ("link", str(tmp_path)),
        "link": ("link", str(secret)),
        "sub/b.txt": ("file", b"b"),
    }


def test_a_symlinked_parent_below_base_is_a_link(tmp_path: Path) -> None:
    base, root, _ = _tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    root.rename(elsewhere)
    (base / "algo-1" / "model").symlink_to(elsewhere)  # the job swapped its model folder
    assert [e.kind for e in folders.walk(base, root)] == ["link"]
    assert not folders.has_files(base, root)
    assert folders.read_inside(base, root / "a.txt", 10) is None
    assert list(folders.walk(base, base / "missing")) == []


def test_read_inside(tmp_path: Path) -> None:
    base, root, _ = _tree(tmp_path)
    assert folders.read_inside(base, root / "a.txt", 10) == "a"
    assert folders.read_inside(base, root / "link", 10) is None
    assert folders.read_inside(base, root / "fifo", 10) is None
    assert folders.read_inside(base, root / "nope", 10) is None
