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
training job keeps the version it linked.

Commits run without an ``await`` between reading the old sidecar and replacing it, so
concurrent requests in the server's event loop cannot interleave them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import uuid
import zlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sageport.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from sageport.storage import keys as keymap
from sageport.storage.listing import paginate
from sageport.storage.objectstore import (
    BucketInfo,
    ObjectAttrs,
    ObjectInfo,
    ObjectListing,
    ObjectRange,
    PartInfo,
    Seal,
    UploadInfo,
)

BUCKET_FILE = "@bucket.json"
CHUNK = 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def _now() -> datetime:
    # S3 timestamps carry milliseconds
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _crc32_b64(value: int) -> str:
    import base64

    return base64.b64encode(value.to_bytes(4, "big")).decode()


def _write_json(path: Path, data: dict[str, Any], tmp_dir: Path) -> None:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    _replace(tmp, path)


def _replace(src: Path, dst: Path) -> None:
    """Rename into place, creating folders; retries if a delete pruned a folder meanwhile."""
    for _ in range(5):
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
            return
        except FileNotFoundError:
            if not src.exists():
                raise
    os.replace(src, dst)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


def _attrs_to_json(attrs: ObjectAttrs) -> dict[str, Any]:
    return {
        "content_type": attrs.content_type,
        "metadata": dict(attrs.metadata),
        "headers": dict(attrs.headers),
    }


def _attrs_from_json(data: dict[str, Any]) -> ObjectAttrs:
    return ObjectAttrs(data["content_type"], data["metadata"], data["headers"])


class _Sink:
    """Streams a body into a temp file while hashing it (md5 for the ETag, CRC32)."""

    def __init__(self, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.path = tmp_dir / uuid.uuid4().hex
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.crc = 0
        self.size = 0

    def _write(self, fh: Any, data: bytes) -> None:
        fh.write(data)
        self.md5.update(data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)

    async def consume(self, body: AsyncIterable[bytes], seal: Seal | None) -> dict[str, str]:
        """Write ``body``; the checksums (CRC32 plus the sealed ones). Cleans up on error."""
        try:
            with open(self.path, "wb") as fh:
                buf = bytearray()
                async for chunk in body:
                    buf += chunk
                    if len(buf) >= CHUNK:
                        await asyncio.to_thread(self._write, fh, bytes(buf))
                        buf.clear()
                if buf:
                    await asyncio.to_thread(self._write, fh, bytes(buf))
            sums = {"CRC32": _crc32_b64(self.crc)}
            if seal is not None:
                sums.update(seal())
            return sums
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise


class LocalObjectStore:
    """:class:`~sageport.storage.objectstore.ObjectStore` on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.uploads = root / ".uploads"

    # -- buckets ----------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        """The bucket's folder; names are validated by the caller and hold no ``/`` or ``..``."""
        if not bucket or "/" in bucket or bucket.startswith(".") or "\x00" in bucket:
            raise NoSuchBucket(resource=bucket, BucketName=bucket)
        return self.root / bucket

    def _bucket(self, bucket: str) -> tuple[Path, dict[str, Any]]:
        folder = self._bucket_dir(bucket)
        data = _read_json(folder / BUCKET_FILE)
        if data is None:
            raise NoSuchBucket(resource=f"/{bucket}", BucketName=bucket)
        return folder, data

    async def list_buckets(self) -> list[BucketInfo]:
        out = []
        if self.root.is_dir():
            for child in sorted(self.root.iterdir()):
                data = _read_json(child / BUCKET_FILE)
                if data is not None:
                    out.append(_bucket_info(child.name, data))
        return out

    async def create_bucket(self, bucket: str, region: str) -> BucketInfo:
        folder = self._bucket_dir(bucket)
        if (folder / BUCKET_FILE).exists():
            raise BucketAlreadyOwnedByYou(resource=f"/{bucket}", BucketName=bucket)
        self.tmp.mkdir(parents=True, exist_ok=True)
        data = {"created": _now().isoformat(), "region": region}
        _write_json(folder / BUCKET_FILE, data, self.tmp)
        return _bucket_info(bucket, data)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        _, data = self._bucket(bucket)
        return _bucket_info(bucket, data)

    async def delete_bucket(self, bucket: str) -> None:
        folder, _ = self._bucket(bucket)
        if self._scan(folder, "") or any(u["bucket"] == bucket for u in self._upload_records()):
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
        data = _read_json(meta_path)
        if data is None:
            raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)
        return meta_path, data

    def _commit(self, bucket: str, key: str, data_tmp: Path, record: dict[str, Any]) -> ObjectInfo:
        """Make ``data_tmp`` the object ``key`` with metadata ``record`` (synchronous)."""
        _, meta_path, base = self._paths(bucket, key)
        name = f"{base}.@{uuid.uuid4().hex[:16]}"
        _replace(data_tmp, meta_path.parent / name)
        record = {**record, "key": key, "data": name}
        old = _read_json(meta_path)
        _write_json(meta_path, record, self.tmp)
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
        sink = _Sink(self.tmp)
        sums = await sink.consume(body, seal)
        record = {
            "size": sink.size,
            "etag": sink.md5.hexdigest(),
            "last_modified": _now().isoformat(),
            "attrs": _attrs_to_json(attrs),
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
                fh = open(meta_path.parent / data["data"], "rb")  # noqa: SIM115 - closed by _stream
            except FileNotFoundError:
                continue  # overwritten between reading the sidecar and opening; read again
            info = _object_info(bucket, data)
            start = 0 if first is None else first
            end = info.size - 1 if last is None else min(last, info.size - 1)
            return ObjectRange(info, start, end, _stream(fh, start, end - start + 1))
        raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)

    async def delete_object(self, bucket: str, key: str) -> None:
        folder, meta_path, _ = self._paths(bucket, key)
        data = _read_json(meta_path)
        if data is None:
            return
        meta_path.unlink(missing_ok=True)
        (meta_path.parent / data["data"]).unlink(missing_ok=True)
        _prune(meta_path.parent, folder)

    def _scan(self, folder: Path, prefix: str) -> list[str]:
        """Every key of the bucket at ``folder`` that starts with ``prefix``, sorted."""
        start = folder.joinpath(*keymap.folder_parts(prefix))
        found: list[str] = []
        for dirpath, _, files in os.walk(start):
            rel = Path(dirpath).relative_to(folder).parts
            for name in files:
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
            data = _read_json(folder.joinpath(*keymap.encode_key(key)).parent / _meta_name(key))
            if data is not None:  # deleted since the scan
                objects.append(_object_info(bucket, data))
        return ObjectListing(objects, page.common_prefixes, page.is_truncated, page.last)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, attrs: ObjectAttrs | None
    ) -> ObjectInfo:
        meta_path, data = self._meta(src_bucket, src_key)
        self._bucket(bucket)
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        src = meta_path.parent / data["data"]
        try:
            os.link(src, tmp)  # files are immutable, so a copy can share the inode
        except FileNotFoundError:
            raise NoSuchKey(resource=f"/{src_bucket}/{src_key}", Key=src_key) from None
        except OSError:
            await asyncio.to_thread(shutil.copyfile, src, tmp)
        record = {
            **data,
            "last_modified": _now().isoformat(),
            "attrs": _attrs_to_json(attrs) if attrs is not None else data["attrs"],
        }
        return self._commit(bucket, key, tmp, record)

    def local_path(self, bucket: str, key: str) -> Path | None:
        try:
            meta_path, data = self._meta(bucket, key)
        except (NoSuchBucket, NoSuchKey):
            return None
        return meta_path.parent / str(data["data"])

    # -- multipart uploads ------------------------------------------------------------------

    def _upload(self, bucket: str, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        self._bucket(bucket)
        if UPLOAD_ID.match(upload_id):
            folder = self.uploads / upload_id
            data = _read_json(folder / "upload.json")
            if data is not None and data["bucket"] == bucket and data["key"] == key:
                return folder, data
        raise NoSuchUpload(resource=f"/{bucket}/{key}", UploadId=upload_id)

    def _upload_records(self) -> list[dict[str, Any]]:
        if not self.uploads.is_dir():
            return []
        found = (_read_json(d / "upload.json") for d in self.uploads.iterdir())
        return [r for r in found if r is not None]

    async def create_upload(self, bucket: str, key: str, attrs: ObjectAttrs) -> UploadInfo:
        self._bucket(bucket)
        upload_id = uuid.uuid4().hex
        record = {
            "upload_id": upload_id,
            "bucket": bucket,
            "key": key,
            "initiated": _now().isoformat(),
            "attrs": _attrs_to_json(attrs),
        }
        self.tmp.mkdir(parents=True, exist_ok=True)
        _write_json(self.uploads / upload_id / "upload.json", record, self.tmp)
        return _upload_info(record)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterable[bytes],
        *,
        seal: Seal | None = None,
    ) -> PartInfo:
        folder, _ = self._upload(bucket, key, upload_id)
        sink = _Sink(self.tmp)
        sums = await sink.consume(body, seal)
        name = f"{number}.@{uuid.uuid4().hex[:16]}"
        record = {
            "number": number,
            "etag": sink.md5.hexdigest(),
            "size": sink.size,
            "last_modified": _now().isoformat(),
            "checksums": sums,
            "data": name,
        }
        try:
            self._upload(bucket, key, upload_id)  # aborted while the body streamed?
            _replace(sink.path, folder / name)
        except BaseException:
            sink.path.unlink(missing_ok=True)
            raise
        old = _read_json(folder / f"{number}.json")
        _write_json(folder / f"{number}.json", record, self.tmp)
        if old is not None:
            (folder / old["data"]).unlink(missing_ok=True)
        return _part_info(record)

    def _parts(self, folder: Path) -> dict[int, dict[str, Any]]:
        out = {}
        for path in folder.glob("*.json"):
            if path.stem.isdigit():
                data = _read_json(path)
                if data is not None:
                    out[int(path.stem)] = data
        return out

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        folder, _ = self._upload(bucket, key, upload_id)
        parts = self._parts(folder)
        return [_part_info(parts[n]) for n in sorted(parts)]

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        self._bucket(bucket)
        records = [r for r in self._upload_records() if r["bucket"] == bucket]
        records.sort(key=lambda r: (r["key"], r["initiated"]))
        return [_upload_info(r) for r in records]

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        folder, upload = self._upload(bucket, key, upload_id)
        stored = self._parts(folder)
        if not parts:
            raise InvalidPart("You must specify at least one part")
        numbers = [n for n, _ in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise InvalidPartOrder(resource=f"/{bucket}/{key}", UploadId=upload_id)
        chosen = []
        for i, (number, etag) in enumerate(parts):
            part = stored.get(number)
            if part is None or etag.strip('"') != part["etag"]:
                raise InvalidPart(resource=f"/{bucket}/{key}", PartNumber=str(number), ETag=etag)
            if i < len(parts) - 1 and part["size"] < MIN_PART_SIZE:
                raise EntityTooSmall(
                    resource=f"/{bucket}/{key}",
                    ProposedSize=str(part["size"]),
                    MinSizeAllowed=str(MIN_PART_SIZE),
                    PartNumber=str(number),
                    ETag=etag,
                )
            chosen.append(part)
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        crc = await asyncio.to_thread(_concat, [folder / p["data"] for p in chosen], tmp)
        digest = hashlib.md5(usedforsecurity=False)
        for part in chosen:
            digest.update(bytes.fromhex(part["etag"]))
        record = {
            "size": sum(p["size"] for p in chosen),
            "etag": f"{digest.hexdigest()}-{len(chosen)}",
            "last_modified": _now().isoformat(),
            "attrs": upload["attrs"],
            "checksums": {"CRC32": _crc32_b64(crc)},
            "parts_count": len(chosen),
        }
        try:
            self._upload(bucket, key, upload_id)  # aborted or completed meanwhile?
            info = self._commit(bucket, key, tmp, record)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        return info

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        folder, _ = self._upload(bucket, key, upload_id)
        shutil.rmtree(folder, ignore_errors=True)


def _meta_name(key: str) -> str:
    return keymap.encode_key(key)[-1] + keymap.META_SUFFIX


def _concat(sources: list[Path], target: Path) -> int:
    """Write ``sources`` one after another into ``target``; returns the CRC32 of the whole."""
    crc = 0
    with open(target, "wb") as out:
        for src in sources:
            with open(src, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
                    crc = zlib.crc32(chunk, crc)
    return crc


async def _stream(fh: Any, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        fh.seek(start)
        while length > 0:
            chunk: bytes = await asyncio.to_thread(fh.read, min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``stop``."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _bucket_info(name: str, data: dict[str, Any]) -> BucketInfo:
    return BucketInfo(name, datetime.fromisoformat(data["created"]), data["region"])


def _object_info(bucket: str, data: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=data["key"],
        size=data["size"],
        etag=data["etag"],
        last_modified=datetime.fromisoformat(data["last_modified"]),
        attrs=_attrs_from_json(data["attrs"]),
        checksums=data["checksums"],
        parts_count=data["parts_count"],
    )


def _part_info(data: dict[str, Any]) -> PartInfo:
    return PartInfo(
        data["number"],
        data["etag"],
        data["size"],
        datetime.fromisoformat(data["last_modified"]),
        data["checksums"],
    )


def _upload_info(data: dict[str, Any]) -> UploadInfo:
    return UploadInfo(
        data["upload_id"],
        data["bucket"],
        data["key"],
        datetime.fromisoformat(data["initiated"]),
        _attrs_from_json(data["attrs"]),
    )
