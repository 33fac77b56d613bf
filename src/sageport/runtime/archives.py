"""Unpacking the archives SageMaker code hands over: ``sourcedir.tar.gz`` and ``model.tar.gz``.

They come from the user's bucket, so extraction refuses anything that would land outside the
destination (``..`` names, absolute or escaping links), device files and pipes, and drops
set-uid bits and owners — the rules of tarfile's ``data`` filter. Python 3.11.4 and later
have that filter; the Python 3.11.2 of Debian 12 does not (``extractall(filter=...)`` is a
TypeError there), so on it the same rules are applied here, member by member.
"""

from __future__ import annotations

import copy
import os
import tarfile
from pathlib import Path


class UnsafeMember(tarfile.TarError):
    """A member the ``data`` rules refuse (raised as the TarError callers already handle)."""


def extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` (any compression tarfile reads) into ``dest``, safely."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            extract_checked(tar, dest)


def extract_checked(tar: tarfile.TarFile, dest: Path) -> None:
    """The ``data`` filter's rules by hand. Members are checked just before each is written,
    so a link unpacked earlier cannot redirect a later member outside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    for member in tar:
        tar.extract(_checked(member, root), root)


def _checked(member: tarfile.TarInfo, root: str) -> tarfile.TarInfo:
    name = member.name.lstrip("/" + os.sep)
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        raise UnsafeMember(f"{member.name!r} would be extracted outside the destination")
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeMember(f"{member.name!r} is a device or a pipe")
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            raise UnsafeMember(f"{member.name!r} links to an absolute path")
        base = os.path.dirname(target) if member.issym() else root
        if not _inside(os.path.realpath(os.path.join(base, member.linkname)), root):
            raise UnsafeMember(f"{member.name!r} links outside the destination")
    safe = copy.copy(member)
    safe.name = name
    if member.islnk():
        safe.linkname = member.linkname.lstrip("/" + os.sep)
    # no set-uid/set-gid/sticky, no group/other write; files readable and writable by us
    mode = member.mode & 0o755
    safe.mode = mode | 0o700 if member.isdir() else mode | 0o600
    safe.uid, safe.gid = os.getuid(), os.getgid()
    safe.uname = safe.gname = ""
    return safe


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
