"""Moving job data between ``s3://`` URIs and host folders.

Channels come in (``S3Prefix`` and ``ManifestFile``, ``FullyReplicated`` or
``ShardedByS3Key``); artifacts and checkpoints go out. When the object store keeps an
object as a local file, the object is hard-linked into the job folder instead of copied, so
staging a large local dataset costs one ``link()`` per file (O(1) in its size). Object files
are never modified in place (the store replaces by rename), so a link keeps the version it
was made from; and a linked file is made read-only, because it *is* the stored object: a
script that opened it for writing would change the object in the store. The caller links
only where the job's process cannot write a read-only file; elsewhere each file is a
private copy (a reflink where the filesystem has them, so still O(1) there).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sageport.errors import AwsError
from sageport.storage import folders
from sageport.storage.objectstore import ObjectAttrs, ObjectInfo, ObjectStore

CHUNK = 1 << 20
FICLONE = 0x40049409
"""Linux ioctl: make ``dest`` share ``src``'s extents, copy-on-write (btrfs, XFS, ...)."""
YIELD_EVERY = 64
"""Staging lets the event loop run (and a stop cancel it) at least every this many files."""


class TransferError(Exception):
    """A transfer that cannot be done; the message is fit for a job's FailureReason."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        key = "/".join([self.key.rstrip("/"), *parts]) if self.key else "/".join(parts)
        return S3Uri(self.bucket, key.lstrip("/"))


def parse_s3_uri(uri: str) -> S3Uri:
    if not uri.startswith("s3://"):
        raise TransferError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise TransferError(f"{uri!r} names no bucket")
    return S3Uri(bucket, key)


async def list_keys(store: ObjectStore, uri: S3Uri) -> list[ObjectInfo]:
    """Every object whose key starts with ``uri.key``, in key order."""
    out: list[ObjectInfo] = []
    after = ""
    while True:
        page = await store.list_objects(uri.bucket, prefix=uri.key, after=after, max_keys=1000)
        out.extend(page.objects)
        if not page.is_truncated or page.last is None:
            return out
        after = page.last


def relative_name(prefix: str, key: str) -> str:
    """Where an object under an S3 prefix lands inside the channel folder.

    ``data/train`` + ``data/train/a/x.csv`` → ``a/x.csv``; an exact object match keeps its
    base name; a sibling match (``data/train`` + ``data/train.csv``) keeps its name from the
    prefix's folder on (``train.csv``).
    """
    if key == prefix:
        return PurePosixPath(key).name
    rest = key[len(prefix) :]
    if prefix.endswith("/") or rest.startswith("/") or not prefix:
        return rest.lstrip("/")
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(folder) :]


def _safe_target(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or not rel or rel.endswith("/"):
        raise TransferError(f"object name {rel!r} would land outside the channel folder")
    return target


def _link_read_only(source: Path, tmp: Path) -> None:
    os.link(source, tmp)
    mode = stat.S_IMODE(os.stat(tmp).st_mode)
    if mode & 0o222:
        os.chmod(tmp, mode & ~0o222)  # the inode is the stored object's: no writes through it


def _private_copy(source: Path, tmp: Path) -> None:
    """A copy of ``source`` of its own: a reflink where the filesystem can, else a copy."""
    with open(source, "rb") as src, open(tmp, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            return
        except OSError:
            pass
        shutil.copyfileobj(src, dst, CHUNK)


async def fetch_object(
    store: ObjectStore, bucket: str, key: str, dest: Path, *, link: bool = True
) -> int:
    """Put one object at ``dest``: with ``link``, a read-only hard link to the stored file
    when the store keeps one on this filesystem; else a private, writable copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    # "x" below: the temporary name is created afresh, so a link left there is never followed
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    source = store.local_path(bucket, key)
    if source is not None:
        try:
            if link:
                _link_read_only(source, tmp)
            else:
                await asyncio.to_thread(_private_copy, source, tmp)
            os.replace(tmp, dest)
            return dest.stat().st_size
        except OSError:
            # another filesystem, or overwritten meanwhile: fetch it through the store
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    opened = await store.get_object(bucket, key)
    size = 0
    with open(tmp, "xb") as fh:
        async for chunk in opened.body:
            fh.write(chunk)
            size += len(chunk)
    os.replace(tmp, dest)
    return size


async def stage_channel(
    store: ObjectStore,
    data_source: dict[str, object],
    dest: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    link: bool = True,
    private: frozenset[str] = frozenset(),
) -> tuple[int, int]:
    """Download an ``S3DataSource`` into ``dest``; returns (files, bytes). Files whose
    relative names are in ``private`` are private copies even with ``link``.

    Raises :class:`TransferError` naming the URI when it matches nothing.
    """
    uri_text = str(data_source["S3Uri"])
    uri = parse_s3_uri(uri_text)
    kind = data_source.get("S3DataType", "S3Prefix")
    if kind == "S3Prefix":
        pairs = [(o.key, relative_name(uri.key, o.key)) for o in await list_keys(store, uri)]
        pairs = [(k, r) for k, r in pairs if r and not k.endswith("/")]
    elif kind == "ManifestFile":
        pairs = await _manifest(store, uri)
        if pairs:
            base = parse_s3_uri(pairs[0][0])
            uri = S3Uri(base.bucket, "")
            pairs = [(parse_s3_uri(k).key, r) for k, r in pairs]
    else:
        raise TransferError(
            f"S3DataType {kind} is not supported by sageport (use S3Prefix or ManifestFile)"
        )
    if not pairs:
        raise TransferError(
            f"No objects found under S3 URI {uri_text}: the channel would be empty."
        )
    if data_source.get("S3DataDistributionType") == "ShardedByS3Key":
        index, count = shard
        pairs = sorted(pairs)[index::count]
    dest.mkdir(parents=True, exist_ok=True)
    files = total = 0
    for key, rel in pairs:
        if files % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        try:
            own = link and rel not in private
            total += await fetch_object(store, uri.bucket, key, _safe_target(dest, rel), link=own)
        except AwsError as exc:
            raise TransferError(
                f"Could not download s3://{uri.bucket}/{key}: {exc.message}"
            ) from exc
        files += 1
    return files, total


async def _manifest(store: ObjectStore, uri: S3Uri) -> list[tuple[str, str]]:
    """A ManifestFile: ``[{"prefix": "s3://b/p/"}, "rel/a", "rel/b"]`` → (uri, rel) pairs."""
    try:
        opened = await store.get_object(uri.bucket, uri.key)
    except AwsError as exc:
        raise TransferError(f"Could not read the manifest {uri}: {exc.message}") from exc
    raw = b"".join([c async for c in opened.body])
    try:
        doc = json.loads(raw)
        prefix = str(doc[0]["prefix"])
        rels = [str(r) for r in doc[1:]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TransferError(f"The manifest {uri} is not a SageMaker manifest: {exc}") from exc
    return [(prefix + rel, rel) for rel in rels]


async def upload_file(
    store: ObjectStore, path: Path, uri: S3Uri, content_type: str = "application/x-tar"
) -> ObjectInfo:
    """Store a file at ``uri``; the object appears whole or not at all (the store's promise)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return await upload_fd(store, fd, uri, content_type)
    finally:
        os.close(fd)


async def upload_tree(
    store: ObjectStore, root: Path, uri: S3Uri, *, base: Path, skipped: list[str] | None = None
) -> int:
    """Store every regular file under ``root`` below ``uri`` (checkpoints); returns the count.

    ``root`` lies under the trusted ``base`` (the job folder): nothing is read through a
    symlink the job left there; each link is left out and noted in ``skipped``.
    """
    count = 0
    label = root.relative_to(base).as_posix()
    for entry in folders.walk(base, root):
        if entry.kind == "link" and skipped is not None:
            skipped.append(folders.link_note(label, entry))
        if entry.kind != "file":
            continue
        await upload_fd(store, entry.fd, uri.join(entry.rel), "application/octet-stream")
        count += 1
    return count


async def _fd_chunks(fd: int) -> AsyncIterator[bytes]:
    offset = 0
    while True:
        chunk = await asyncio.to_thread(os.pread, fd, CHUNK, offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


async def upload_fd(
    store: ObjectStore, fd: int, uri: S3Uri, content_type: str = "application/octet-stream"
) -> ObjectInfo:
    """Store the open regular file ``fd`` at ``uri`` (read by offset; ``fd`` stays open)."""
    try:
        return await store.put_object(
            uri.bucket, uri.key, _fd_chunks(fd), ObjectAttrs(content_type=content_type)
        )
    except AwsError as exc:
        raise TransferError(f"Could not upload to {uri}: {exc.message}") from exc


async def download_tree(store: ObjectStore, uri: S3Uri, root: Path) -> int:
    """Fetch every object under ``uri`` into ``root`` (checkpoints); an empty prefix is fine."""
    count = 0
    for info in await list_keys(store, uri):
        rel = relative_name(uri.key if uri.key.endswith("/") else uri.key + "/", info.key)
        if rel and not info.key.endswith("/"):
            await fetch_object(store, uri.bucket, info.key, _safe_target(root, rel), link=False)
            count += 1
    return count
