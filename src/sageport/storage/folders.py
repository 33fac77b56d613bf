"""Reading a folder a job has written into, without ever following a link it left there.

A job owns its ``/opt/ml`` folder: it can replace any file or folder in it by a symlink to a
host file (``/root/.sageport/credentials.json``), and keep doing so while the server reads.
So the server opens every path below a folder it trusts (the job folder it created) one
component at a time, each with ``O_NOFOLLOW`` relative to its parent's descriptor, and walks
with ``os.fwalk`` (which checks each folder it enters is the one it listed). A symlink is
reported as such, for the caller to store as a link (tar) or skip with a log line (S3).
Files are opened ``O_NONBLOCK`` so a FIFO cannot hang the server; only regular files are read.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


@dataclass(frozen=True)
class Entry:
    """One thing under the walked folder: a ``dir``, a regular ``file`` (``fd`` is open
    until the walk moves on) or a ``link`` (``target`` is what it points at, unresolved)."""

    rel: str
    kind: str
    fd: int = -1
    target: str = ""


def open_dir(base: Path, root: Path) -> int:
    """A descriptor of ``root``, which lies under the trusted ``base``; no component below
    ``base`` may be a symlink (``OSError`` ELOOP/ENOTDIR then, FileNotFoundError if absent)."""
    parts = root.relative_to(base).parts
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def walk(base: Path, root: Path) -> Iterator[Entry]:
    """Everything under ``root`` in a stable order, folders before what they hold.

    ``root`` itself being a symlink (or under one below ``base``) yields one ``link`` entry
    with ``rel`` "."; a missing ``root`` yields nothing. Devices, FIFOs and sockets are left out.
    """
    try:
        top = open_dir(base, root)
    except FileNotFoundError:
        return
    except OSError:
        yield Entry(".", "link", target=_readlink(root))
        return
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top):
            # fwalk lists a symlink to a folder among the folders (and then does not enter
            # it): it is a link here, like any other
            links = [n for n in dirnames if _is_link(dirfd, n)]
            dirnames[:] = sorted(n for n in dirnames if n not in links)
            for name in dirnames:
                yield Entry(posixpath.normpath(posixpath.join(dirpath, name)), "dir")
            for name in sorted([*filenames, *links]):
                rel = posixpath.normpath(posixpath.join(dirpath, name))
                entry = _file_entry(dirfd, name, rel)
                if entry is None:
                    continue
                try:
                    yield entry
                finally:
                    if entry.fd >= 0:
                        os.close(entry.fd)
    finally:
        os.close(top)


def _is_link(dirfd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _file_entry(dirfd: int, name: str, rel: str) -> Entry | None:
    try:
        info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return Entry(rel, "link", target=os.readlink(name, dir_fd=dirfd))
        if not stat.S_ISREG(info.st_mode):
            return None
        fd = os.open(name, FILE_FLAGS, dir_fd=dirfd)
    except FileNotFoundError:
        return None  # removed while we looked
    except OSError:
        return Entry(rel, "link", target="?")  # replaced by a link between stat and open
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return Entry(rel, "file", fd=fd)


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def has_files(base: Path, root: Path) -> bool:
    """Whether a regular file lies anywhere under ``root`` (links do not count)."""
    return any(e.kind == "file" for e in walk(base, root))


def read_inside(base: Path, path: Path, limit: int) -> str | None:
    """The first ``limit`` bytes of the regular file ``path`` under ``base`` as text, or
    ``None`` when it is missing, not a regular file, or reached through a symlink."""
    try:
        parent = open_dir(base, path.parent)
    except OSError:
        return None
    try:
        fd = os.open(path.name, FILE_FLAGS, dir_fd=parent)
    except OSError:
        return None
    finally:
        os.close(parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)


def link_note(label: str, entry: Entry) -> str:
    """The job-log line for a symlink an upload left out."""
    rel = label if entry.rel == "." else f"{label}/{entry.rel}"
    return f"sageport: skipped symlink {rel} -> {entry.target} (uploads never follow links)"
