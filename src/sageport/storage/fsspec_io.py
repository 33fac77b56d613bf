"""What :class:`~sageport.storage.fsspec_store.FsspecObjectStore` needs from an fsspec filesystem.

fsspec gives every backend the same verbs (``open``, ``find``, ``cat``, ``mv`` ...), but they
differ in the one property the object store depends on: when a written file becomes visible.

- Object stores (S3 through s3fs, GCS, Azure) publish an object only when its upload
  completes, so a file opened with ``autocommit=False`` appears at ``commit()`` and vanishes
  without a trace at ``discard()``; one-call writes and copies are atomic too.
- On a local disk and in fsspec's memory filesystem a file is visible while it is written,
  so a body is written to a temporary file under ``.sageport/tmp`` and moved into place
  (a rename on disk; an atomic dict assignment in memory).

:class:`RootedFilesystem` hides that difference behind its ``writer``, ``write_small``
and ``copy``. Every method is blocking; the store calls them on worker threads.

fsspec, and the backend's own package (s3fs for ``s3://``), are imported only when such a
store is opened, so ``pip install sageport`` needs neither.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

#: read granularity of a download
CHUNK = 4 * 1024 * 1024
#: s3fs uploads a part each time this much is buffered (S3's minimum part is 5 MiB)
WRITE_BLOCK = 16 * 1024 * 1024
#: protocols whose writes appear only when committed
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss"})
#: the folder under the store's root that holds everything besides the objects' bytes
SYSTEM = ".sageport"


def open_filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str]:
    """The filesystem and root path an fsspec URL names (``s3://bucket/prefix``, ``memory://x``)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency of sageport
        raise ValueError(f"object store {url!r} needs fsspec: pip install fsspec") from exc
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError as exc:
        extra = " (pip install 'sageport[s3]')" if url.startswith(("s3://", "s3a://")) else ""
        raise ValueError(
            f"object store {url!r} needs a package that is missing{extra}: {exc}"
        ) from exc
    return fs, str(root).rstrip("/")


def ident(info: Mapping[str, Any]) -> str:
    """What tells one version of a stored file from another: size plus an ETag, or a stamp.

    Object stores report an ETag; local files an inode and mtime; the memory filesystem the
    time the file object was created (a new one for every write).
    """
    size = info.get("size")
    for name in ("ETag", "etag", "md5Hash", "generation"):
        tag = info.get(name)
        if tag:
            return f"{size}:{str(tag).strip(chr(34))}"
    stamp = info.get("mtime", info.get("created", info.get("LastModified")))
    if isinstance(stamp, datetime):
        stamp = stamp.timestamp()
    return f"{size}:{info.get('ino', '')}:{stamp!r}"


def modified(info: Mapping[str, Any]) -> datetime | None:
    """When a file was last written, if the backend says."""
    from datetime import UTC

    for name in ("LastModified", "last_modified", "mtime", "created", "updated"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
    return None


class Writer:
    """A file being written: bytes go in with :meth:`write`; it appears at :meth:`commit`."""

    def __init__(self, backend: RootedFilesystem, path: str) -> None:
        self._backend = backend
        self.path = path
        self._direct = backend.object_store
        fs = backend.fs
        if self._direct:
            self._target = path
            self._fh = fs.open(path, "wb", block_size=WRITE_BLOCK, autocommit=False)
        else:
            self._target = backend.tmp_path()
            backend.make_parents(self._target)
            self._fh = fs.open(self._target, "wb")
        self._closed = False
        self._finished = False

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fh.close()

    def commit(self) -> None:
        """Make the written bytes the file at ``path`` (atomically)."""
        self.close()
        if self._finished:
            return
        if self._direct:
            self._fh.commit()
        else:
            self._backend.publish(self._target, self.path)
        self._finished = True

    def discard(self) -> None:
        """Forget the written bytes; nothing appears at ``path``. No-op once committed."""
        if self._finished:
            return
        self._finished = True
        try:
            self.close()
        finally:
            if self._direct:
                self._fh.discard()
            else:
                self._backend.remove(self._target)


class Reader:
    """A stored file opened for ranged reads; later overwrites do not change what it reads."""

    def __init__(self, fs: Any, path: str) -> None:
        self._fh = fs.open(path, "rb", block_size=CHUNK, cache_type="none")
        self._memory = isinstance(self._fh, io.BytesIO)

    def version(self) -> dict[str, Any]:
        """Details (``size`` and what :func:`ident` needs) of the version this reader holds."""
        fh = self._fh
        if self._memory:  # fsspec's MemoryFile: a new object for every write
            return {"size": fh.getbuffer().nbytes, "created": fh.created}
        details = getattr(fh, "details", None)
        if isinstance(details, Mapping) and "size" in details:
            return dict(details)  # s3fs & co: what the open's HEAD said (reads then If-Match it)
        st = os.fstat(fh.fileno())  # a local file: the inode we hold open
        return {"size": st.st_size, "ino": st.st_ino, "mtime": st.st_mtime}

    def read(self, start: int, length: int) -> bytes:
        if self._memory:
            # the memory file is shared by every reader, so never move its position
            return bytes(self._fh.getbuffer()[start : start + length])
        self._fh.seek(start)
        data: bytes = self._fh.read(length)
        return data

    def close(self) -> None:
        if not self._memory:
            self._fh.close()


class RootedFilesystem:
    """An fsspec filesystem rooted at ``root``, with atomic writes however it makes them."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = str(fs._strip_protocol(root)).rstrip("/")
        if not self.root.strip("/"):
            raise ValueError(
                "an fsspec object store needs a root below the filesystem's top, "
                "e.g. s3://bucket/prefix or memory://sageport"
            )
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.object_store = bool(protocols & OBJECT_STORES)
        #: whether ``pipe_file``/``cp_file`` publish a file in one step
        self.atomic_calls = self.object_store or "memory" in protocols
        self.local = "file" in protocols or "local" in protocols

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts]) if self.root else "/".join(parts)

    def tmp_path(self) -> str:
        return self.path(SYSTEM, "tmp", uuid.uuid4().hex)

    def make_parents(self, path: str) -> None:
        """Create the folders above ``path`` where folders are real (local disk)."""
        if self.local:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)

    def info(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.fs.info(path)
        except FileNotFoundError:
            return None
        return found if found.get("type") == "file" else None

    def is_dir(self, path: str) -> bool:
        return bool(self.fs.isdir(path))

    def find(self, path: str) -> dict[str, dict[str, Any]]:
        """Every file under ``path`` (recursively) with its details; {} when there is none."""
        try:
            found: dict[str, dict[str, Any]] = self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        return {self.fs._strip_protocol(p): d for p, d in found.items() if d.get("type") == "file"}

    def children(self, path: str) -> list[str]:
        """Names of the folders directly under ``path``."""
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return [
            str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            for e in entries
            if e.get("type") == "directory"
        ]

    def cat(self, path: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data

    def cat_many(self, paths: list[str]) -> dict[str, bytes]:
        """The contents of those of ``paths`` that exist (fetched concurrently where async)."""
        if not paths:
            return {}
        if getattr(self.fs, "async_impl", False):
            found = self.fs.cat(paths, on_error="omit")
            return {self.fs._strip_protocol(p): v for p, v in found.items()}
        out = {}
        for path in paths:
            data = self.cat(path)
            if data is not None:
                out[path] = data
        return out

    def _whole(self, path: str, write: Callable[[str], None]) -> None:
        """Run ``write`` (one fsspec call that makes a file) so that ``path`` appears whole:
        on ``path`` itself where such a call is atomic, else on a temporary file moved there."""
        if self.atomic_calls:
            write(path)
            return
        tmp = self.tmp_path()
        self.make_parents(tmp)
        write(tmp)
        self.publish(tmp, path)

    def write_small(self, path: str, data: bytes) -> None:
        """Write a whole (small) file so that readers see the old one or the new one."""
        self._whole(path, lambda target: self.fs.pipe_file(target, data))

    def writer(self, path: str) -> Writer:
        return Writer(self, path)

    def publish(self, tmp: str, path: str) -> None:
        """Move a finished temporary file into place (a rename on local disk)."""
        self.make_parents(path)
        self.fs.mv(tmp, path)

    def copy(self, src: str, dst: str) -> None:
        """Copy a file; the copy appears whole (server-side on object stores)."""
        self._whole(dst, lambda target: self.fs.cp_file(src, target))

    def merge(self, sources: list[str], target: str) -> None:
        """``target`` = the ``sources`` one after another, appearing whole."""
        merge = getattr(self.fs, "merge", None)
        if self.object_store and merge is not None:
            merge(target, sources)  # s3fs: UploadPartCopy, no bytes leave the store
            return
        writer = self.writer(target)
        try:
            for src in sources:
                reader = Reader(self.fs, src)
                try:
                    offset = 0
                    while chunk := reader.read(offset, CHUNK):
                        writer.write(chunk)
                        offset += len(chunk)
                finally:
                    reader.close()
        except BaseException:
            writer.discard()
            raise
        writer.commit()

    def remove(self, path: str) -> None:
        """Delete a file; a missing one is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def remove_tree(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)
