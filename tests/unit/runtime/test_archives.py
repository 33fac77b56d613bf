"""Unpacking sourcedir.tar.gz / model.tar.gz: the data filter's rules, with and without it."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sageport.runtime import archives


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _with_filter(archive: Path, dest: Path) -> None:
    archives.extract(archive, dest)


def _by_hand(archive: Path, dest: Path) -> None:
    """The path Debian 12's Python 3.11.2 takes (no tarfile.data_filter there)."""
    with tarfile.open(archive) as tar:
        archives.extract_checked(tar, dest)


BOTH = pytest.mark.parametrize("unpack", [_with_filter, _by_hand], ids=["filter", "by-hand"])
Unpack = Callable[[Path, Path], None]


@BOTH
def test_files_links_and_folders_unpack(tmp_path: Path, unpack: Unpack) -> None:
    archive = _archive(
        tmp_path / "a.tar.gz",
        [
            _file("code/train.py", b"print(1)\n"),
            _file("code/run.sh", b"#!/bin/sh\n", 0o4777),
            _file("/abs/leading-slash.txt", b"stripped"),
            _link("code/alias.py", "train.py"),
            _link("code/hard.py", "code/train.py", tarfile.LNKTYPE),
        ],
    )
    dest = tmp_path / "out"
    unpack(archive, dest)
    assert (dest / "code/train.py").read_bytes() == b"print(1)\n"
    assert (dest / "code/run.sh").stat().st_mode & 0o7777 == 0o755  # no set-uid, no o+w
    assert (dest / "abs/leading-slash.txt").read_bytes() == b"stripped"
    assert (dest / "code/alias.py").read_bytes() == b"print(1)\n"
    assert (dest / "code/hard.py").read_bytes() == b"print(1)\n"


@BOTH
@pytest.mark.parametrize(
    "members",
    [
        [_file("../escape.txt")],
        [_link("evil", "/etc/passwd")],
        [_link("up", "../..")],
        [_link("dir", ".."), _file("dir/escape.txt")],
    ],
    ids=["dot-dot", "absolute-link", "escaping-link", "through-a-link"],
)
def test_members_that_leave_the_destination_are_refused(
    tmp_path: Path, unpack: Unpack, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    archive = _archive(tmp_path / "a.tar.gz", members)
    dest = tmp_path / "nested" / "out"
    with pytest.raises(tarfile.TarError):
        unpack(archive, dest)
    assert not (tmp_path / "nested" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


@BOTH
def test_devices_and_pipes_are_refused(tmp_path: Path, unpack: Unpack) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = _archive(tmp_path / "a.tar.gz", [(fifo, None)])
    with pytest.raises(tarfile.TarError):
        unpack(archive, tmp_path / "out")
