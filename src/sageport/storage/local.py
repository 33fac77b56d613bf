"""The embedded object store: buckets as folders, objects as plain files on local disk.

Layout under ``root`` (``settings.objects_dir``)::

    <bucket>/@bucket.json             the bucket (its creation time and region)
    <bucket>/<folders>/<name>.@m      an object's metadata sidecar: its presence is the object
    <bucket>/<folders>/<name>.@<ver>  the object's bytes, exactly (hard-link friendly)
    .uploads/<upload id>/             a multipart upload: upload.json, <n>.json, <n>.@<ver>
    .tmp/                             files being written

Key → path mapping is :mod:`sageport.storage.keys` (no key can name a path outside its
bucket). A write streams into ``.tmp``, is renamed to a fresh ``<name>.@<ver>``, and becomes
visible only when its sidecar is renamed into place (``os.replace``), so a reader never sees
half an object and a crash leaves at most an unreferenced file. Object files are never
modified in place; an overwrite or delete unlinks the old file, so a hard link made by a
training job keeps the version it linked. Multipart uploads follow the rules of
:mod:`.multipart`; :mod:`.local_uploads` keeps their files.

Commits run without an ``await`` between reading the old sidecar and replacing it, so
concurrent requests in the server's event loop cannot interleave them.

A full disk (``ENOSPC``/``EDQUOT``) is :class:`~sageport.errors.StorageFull` (507), raised
only after the failed write removed what it had written: the old object, if any, is
untouched. Opening the store empties ``.tmp``: whatever is there was being written when a
server stopped, since one server owns a data folder (``server.lock``); uploads in progress
live in ``.uploads`` and are kept across restarts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sageport.errors import BucketAlreadyOwnedByYou, BucketNotEmpty, NoSuchBucket, NoSuchKey
from sageport.storage import files
from sageport.storage import keys as keymap
from sageport.storage.listing import paginate
from sageport.storage.local_uploads import LocalUploads
from sageport.storage.multipart import MultipartUploads
from sageport.storage.objectstore import (
    BucketInfo,
    ObjectAttrs,
    ObjectInfo,
    ObjectListing,
    ObjectRange,
    Seal,
    byte_range,
    disk_space,
)
from sageport.storage.records import attrs_from_json, attrs_json, bucket_info, bucket_record

BUCKET_FILE = "@bucket.json"


class LocalObjectStore(MultipartUploads):
    """:class:`~sageport.storage.objectstore.ObjectStore` on a local folder (its multipart
    uploads: :class:`~.multipart.MultipartUploads` over :class:`~.local_uploads.LocalUploads`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.uploads = root / ".uploads"
        self.uploads_space = LocalUploads(self.uploads, self.tmp, self._commit)
        self.clean_tmp()

    def clean_tmp(self) -> list[str]:
        """Remove what interrupted writes left in ``.tmp`` (called when the store is opened);
        the names removed. Only the server that owns the folder may call it, at start."""
        removed = []
        if self.tmp.is_dir():
            for child in sorted(self.tmp.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed.append(child.name)
        return removed

    # -- buckets ----------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        """The bucket's folder; names are validated by the caller and hold no ``/`` or ``..``."""
        keymap.check_bucket(bucket)
        return self.root / bucket

    def _bucket(self, bucket: str) -> tuple[Path, dict[str, Any]]:
        folder = self._bucket_dir(bucket)
        data = files.read_json(folder / BUCKET_FILE)
        if data is None:
            raise NoSuchBucket(resource=f"/{bucket}", BucketName=bucket)
        return folder, data

    async def list_buckets(self) -> list[BucketInfo]:
        out = []
        if self.root.is_dir():
            for child in sorted(self.root.iterdir()):
                data = files.read_json(child / BUCKET_FILE)
                if data is not None:
                    out.append(bucket_info(child.name, data))
        return out

    async def create_bucket(self, bucket: str, region: str) -> BucketInfo:
        folder = self._bucket_dir(bucket)
        if (folder / BUCKET_FILE).exists():
            raise BucketAlreadyOwnedByYou(resource=f"/{bucket}", BucketName=bucket)
        data = bucket_record(region)
        with disk_space(self.root):
            try:
                self.tmp.mkdir(parents=True, exist_ok=True)
                files.write_json(folder / BUCKET_FILE, data, self.tmp)
            except OSError:
                files.prune(folder, self.root)  # no half-made bucket folder
                raise
        return bucket_info(bucket, data)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        _, data = self._bucket(bucket)
        return bucket_info(bucket, data)

    async def delete_bucket(self, bucket: str) -> None:
        folder, _ = self._bucket(bucket)
        if self._scan(folder, "") or await self._has_uploads(bucket):
            raise BucketNotEmpty(resource=f"/{bucket}", BucketName=bucket)
        (folder / BUCKET_FILE).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    # -- objects ----------------------------------------------------------------------------

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path, str]:
        """(bucket folder, sidecar path, base name) of ``key``."""
        folder, _ = self._bucket(bucket)
        parts = keymap.encode_key(key)
        base = folder.joinpath(*parts)
        return folder, base.with_name(base.name + keymap.META_SUFFIX), base.name

    def _meta(self, bucket: str, key: str) -> tuple[Path, dict[str, Any]]:
        _, meta_path, _ = self._paths(bucket, key)
        data = files.read_json(meta_path)
        if data is None:
            raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)
        return meta_path, data

    def _commit(self, bucket: str, key: str, data_tmp: Path, record: dict[str, Any]) -> ObjectInfo:
        """Make ``data_tmp`` the object ``key`` with metadata ``record`` (synchronous)."""
        folder, meta_path, base = self._paths(bucket, key)
        name = f"{base}.@{uuid.uuid4().hex[:16]}"
        record = {**record, "key": key, "data": name}
        old = files.read_json(meta_path)
        try:
            files.replace(data_tmp, meta_path.parent / name)
            files.write_json(meta_path, record, self.tmp)
        except BaseException:
            # The sidecar was not replaced, so the old object stands; drop the new bytes.
            (meta_path.parent / name).unlink(missing_ok=True)
            files.prune(meta_path.parent, folder)
            raise
        if old is not None and old["data"] != name:
            (meta_path.parent / old["data"]).unlink(missing_ok=True)
        return _object_info(bucket, record)

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterable[bytes],
        attrs: ObjectAttrs,
        *,
        seal: Seal | None = None,
    ) -> ObjectInfo:
        self._bucket(bucket)
        with disk_space(self.root):
            sink = files.Sink(self.tmp)
            sums = await sink.consume(body, seal)  # removes its file if it raises
            record = {
                "size": sink.size,
                "etag": sink.md5.hexdigest(),
                "last_modified": files.now().isoformat(),
                "attrs": attrs_json(attrs),
                "checksums": sums,
                "parts_count": None,
            }
            try:
                return self._commit(bucket, key, sink.path, record)
            except BaseException:
                sink.path.unlink(missing_ok=True)
                raise

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        _, data = self._meta(bucket, key)
        return _object_info(bucket, data)

    async def get_object(
        self, bucket: str, key: str, first: int | None = None, last: int | None = None
    ) -> ObjectRange:
        for _ in range(3):
            meta_path, data = self._meta(bucket, key)
            try:
                fh = open(meta_path.parent / data["data"], "rb")  # noqa: SIM115 - closed by files.stream
            except FileNotFoundError:
                continue  # overwritten between reading the sidecar and opening; read again
            info = _object_info(bucket, data)
            start, end = byte_range(info.size, first, last)
            return ObjectRange(info, start, end, files.stream(fh, start, end - start + 1))
        raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)

    async def delete_object(self, bucket: str, key: str) -> None:
        folder, meta_path, _ = self._paths(bucket, key)
        data = files.read_json(meta_path)
        if data is None:
            return
        meta_path.unlink(missing_ok=True)
        (meta_path.parent / data["data"]).unlink(missing_ok=True)
        files.prune(meta_path.parent, folder)

    def _scan(self, folder: Path, prefix: str) -> list[str]:
        """Every key of the bucket at ``folder`` that starts with ``prefix``, sorted."""
        start = folder.joinpath(*keymap.folder_parts(prefix))
        found: list[str] = []
        for dirpath, _, names in os.walk(start):
            rel = Path(dirpath).relative_to(folder).parts
            for name in names:
                if name.endswith(keymap.META_SUFFIX):
                    key = keymap.decode_parts([*rel, name[: -len(keymap.META_SUFFIX)]])
                    if key.startswith(prefix):
                        found.append(key)
        found.sort()
        return found

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ObjectListing:
        folder, _ = self._bucket(bucket)
        keys = await asyncio.to_thread(self._scan, folder, prefix)
        page = paginate(keys, prefix, delimiter, after, max_keys)
        objects = []
        for key in page.keys:
            data = files.read_json(
                folder.joinpath(*keymap.encode_key(key)).parent / _meta_name(key)
            )
            if data is not None:  # deleted since the scan
                objects.append(_object_info(bucket, data))
        return ObjectListing(objects, page.common_prefixes, page.is_truncated, page.last)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, attrs: ObjectAttrs | None
    ) -> ObjectInfo:
        meta_path, data = self._meta(src_bucket, src_key)
        self._bucket(bucket)
        tmp = self.tmp / uuid.uuid4().hex
        src = meta_path.parent / data["data"]
        record = {
            **data,
            "last_modified": files.now().isoformat(),
            "attrs": attrs_json(attrs) if attrs is not None else data["attrs"],
        }
        with disk_space(self.root):
            self.tmp.mkdir(parents=True, exist_ok=True)
            try:
                try:
                    os.link(src, tmp)  # files are immutable, so a copy can share the inode
                except FileNotFoundError:
                    raise NoSuchKey(resource=f"/{src_bucket}/{src_key}", Key=src_key) from None
                except OSError:
                    await asyncio.to_thread(shutil.copyfile, src, tmp)
                return self._commit(bucket, key, tmp, record)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def local_path(self, bucket: str, key: str) -> Path | None:
        try:
            meta_path, data = self._meta(bucket, key)
        except (NoSuchBucket, NoSuchKey):
            return None
        return meta_path.parent / str(data["data"])


def _meta_name(key: str) -> str:
    return keymap.encode_key(key)[-1] + keymap.META_SUFFIX


def _object_info(bucket: str, data: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=data["key"],
        size=data["size"],
        etag=data["etag"],
        last_modified=datetime.fromisoformat(data["last_modified"]),
        attrs=attrs_from_json(data["attrs"]),
        checksums=data["checksums"],
        parts_count=data["parts_count"],
    )
