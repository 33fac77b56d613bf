"""The object store over any fsspec filesystem: real S3 / MinIO through s3fs, memory, ...

Selected by ``settings.object_store_url`` (``s3://bucket/prefix``, ``memory://sageport``;
see :func:`sageport.storage.objectstore.open_object_store`). Layout under the URL's root::

    <bucket>/<key>                        an object's bytes, exactly (the object *is* this file)
    .sageport/buckets/<bucket>.json       a bucket made through sageport (creation time, region)
    .sageport/meta/<bucket>/<key>.@m      what S3 reports besides the bytes: ETag, user metadata,
                                          content type, checksums, and the version of the bytes
                                          it describes
    .sageport/uploads/<id>/               a multipart upload: upload.json, <n>.json, <n>.@<ver>
    .sageport/tmp/                        files being written (disk and memory backends only)

On object stores keys keep their names (only ``%``, control characters and the segments
``""``, ``.``, ``..`` are percent-encoded), so ``s3://bucket/prefix/<bucket>/<key>`` is the
object for any other S3 tool, and objects put there by other tools are served too (with the
ETag and times the backend reports). Top-level folders without a bucket record count as
buckets. On local disk and in memory keys are encoded as in the embedded store
(:mod:`sageport.storage.keys`) and the bytes get a ``.@d`` suffix, so ``a`` and ``a/b`` can
coexist.

A write streams into a file that appears only when committed (:mod:`.fsspec_io`), and then the
metadata record is written naming the version it describes. Writes to one key are serialised
in this process, and a reader that finds a record for another version waits for a write in
progress before falling back to what the backend reports; so a reader sees the old object or
the new one, never half of one, and a failed upload leaves nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sageport.errors import BucketAlreadyOwnedByYou, BucketNotEmpty, NoSuchBucket, NoSuchKey
from sageport.storage import files
from sageport.storage import keys as keymap
from sageport.storage.fsspec_io import CHUNK, SYSTEM, Backend, Reader, Writer, ident, modified
from sageport.storage.fsspec_records import (
    Sums,
    decode_plain,
    encode_plain,
    loads,
    object_record,
)
from sageport.storage.fsspec_uploads import Uploads
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

T = TypeVar("T")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DATA_SUFFIX = ".@d"
#: how long a reader waits for a concurrent write of the same key to record its metadata
SETTLE_TRIES = 3


class FsspecObjectStore:
    """:class:`~sageport.storage.objectstore.ObjectStore` on an fsspec filesystem."""

    def __init__(self, fs: Any, root: str, region: str = "us-east-1") -> None:
        self.io = Backend(fs, root)
        self.region = region
        self._suffix = "" if self.io.object_store else DATA_SUFFIX
        self._multipart = Uploads(self)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._holders: dict[tuple[str, str], int] = {}

    # -- paths ------------------------------------------------------------------------------

    def _encode(self, key: str) -> list[str]:
        return encode_plain(key) if self.io.object_store else keymap.encode_key(key)

    def _decode(self, parts: list[str]) -> str | None:
        if self._suffix:
            if not parts[-1].endswith(self._suffix):
                return None  # not an object file (a stray file on disk)
            parts = [*parts[:-1], parts[-1][: -len(self._suffix)]]
            return keymap.decode_parts(parts)
        return decode_plain(parts)

    def _check_bucket(self, bucket: str) -> None:
        if not bucket or "/" in bucket or bucket.startswith(".") or "\x00" in bucket:
            raise NoSuchBucket(resource=f"/{bucket}", BucketName=bucket)

    def data_path(self, bucket: str, key: str) -> str:
        return self.io.path(bucket, *self._encode(key)) + self._suffix

    def _meta(self, bucket: str, key: str) -> str:
        return self.io.path(SYSTEM, "meta", bucket, *self._encode(key)) + ".@m"

    def _bucket_record(self, bucket: str) -> str:
        return self.io.path(SYSTEM, "buckets", f"{bucket}.json")

    # -- helpers ----------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def read_json(self, path: str) -> dict[str, Any] | None:
        data = await self.run(self.io.cat, path)
        return None if data is None else loads(data)

    async def write_json(self, path: str, record: dict[str, Any]) -> None:
        await self.run(self.io.write_small, path, json.dumps(record).encode())

    @contextmanager
    def _counted(self, name: tuple[str, str]) -> Iterator[asyncio.Lock]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._holders[name] = self._holders.get(name, 0) + 1
        try:
            yield lock
        finally:
            self._holders[name] -= 1
            if not self._holders[name]:
                del self._holders[name], self._locks[name]

    async def _settled(self, bucket: str, key: str) -> None:
        """Wait for a write of ``key`` in progress in this process, if any."""
        name = (bucket, key)
        if name in self._locks:
            with self._counted(name) as lock:
                async with lock:
                    pass

    # -- buckets ----------------------------------------------------------------------------

    async def _bucket(self, bucket: str) -> BucketInfo:
        self._check_bucket(bucket)
        record = await self.read_json(self._bucket_record(bucket))
        if record is not None:
            return BucketInfo(bucket, datetime.fromisoformat(record["created"]), record["region"])
        if BUCKET_NAME.match(bucket) is not None and await self.run(
            self.io.is_dir, self.io.path(bucket)
        ):
            return BucketInfo(bucket, datetime.fromtimestamp(0, UTC), self.region)
        raise NoSuchBucket(resource=f"/{bucket}", BucketName=bucket)

    async def list_buckets(self) -> list[BucketInfo]:
        records = await self.run(self.io.find, self.io.path(SYSTEM, "buckets"))
        names = {p.rsplit("/", 1)[-1].removesuffix(".json") for p in records}
        folders = await self.run(self.io.children, self.io.root)
        names |= {n for n in folders if BUCKET_NAME.match(n)}
        return [await self._bucket(name) for name in sorted(names)]

    async def create_bucket(self, bucket: str, region: str) -> BucketInfo:
        self._check_bucket(bucket)
        if await self.read_json(self._bucket_record(bucket)) is not None:
            raise BucketAlreadyOwnedByYou(resource=f"/{bucket}", BucketName=bucket)
        record = {"created": files.now().isoformat(), "region": region}
        await self.write_json(self._bucket_record(bucket), record)
        return BucketInfo(bucket, datetime.fromisoformat(record["created"]), region)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self._bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        await self._bucket(bucket)
        if (await self.list_objects(bucket, max_keys=1)).objects or any(
            u.bucket == bucket for u in await self._multipart.all()
        ):
            raise BucketNotEmpty(resource=f"/{bucket}", BucketName=bucket)
        await self.run(self.io.remove, self._bucket_record(bucket))
        await self.run(self.io.remove_tree, self.io.path(SYSTEM, "meta", bucket))
        if not self.io.object_store:
            await self.run(self.io.remove_tree, self.io.path(bucket))

    # -- objects ----------------------------------------------------------------------------

    def _info(
        self, bucket: str, key: str, found: dict[str, Any], record: dict[str, Any] | None
    ) -> ObjectInfo | None:
        """The object as its metadata record describes it; None if the record is for another
        version of the bytes (or missing, for a file not written through sageport)."""
        if record is None or record.get("version") != ident(found):
            return None
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(found["size"]),
            etag=record["etag"],
            last_modified=datetime.fromisoformat(record["last_modified"]),
            attrs=ObjectAttrs(record["content_type"], record["metadata"], record["headers"]),
            checksums=record["checksums"],
            parts_count=record["parts_count"],
        )

    def _foreign(self, bucket: str, key: str, found: dict[str, Any]) -> ObjectInfo:
        """An object without a (current) record: what the backend itself says of the file."""
        tag = str(found.get("ETag") or found.get("etag") or "").strip('"')
        etag = tag or hashlib.md5(ident(found).encode(), usedforsecurity=False).hexdigest()
        content_type = str(found.get("ContentType") or "binary/octet-stream")
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(found["size"]),
            etag=etag,
            last_modified=modified(found) or datetime.fromtimestamp(0, UTC),
            attrs=ObjectAttrs(content_type),
            parts_count=int(tag.rsplit("-", 1)[1]) if "-" in tag else None,
        )

    async def _described(self, bucket: str, key: str, version: dict[str, Any]) -> ObjectInfo | None:
        """The object whose bytes have details ``version`` as its record says; None while no
        record for that version exists yet (a write in progress) or ever (a foreign file)."""
        return self._info(bucket, key, version, await self.read_json(self._meta(bucket, key)))

    async def commit(
        self, bucket: str, key: str, publish: Callable[[], None], record: dict[str, Any]
    ) -> ObjectInfo:
        """Run ``publish`` (which makes the bytes appear) and record their metadata, as one
        step for other requests of this process."""
        data = self.data_path(bucket, key)
        with self._counted((bucket, key)) as lock:
            async with lock:
                await self.run(publish)
                found = await self.run(self.io.info, data)
                if found is None:  # deleted by someone else at once; S3 would have kept it
                    raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)
                record = {**record, "key": key, "version": ident(found)}
                await self.write_json(self._meta(bucket, key), record)
        info = self._info(bucket, key, found, record)
        assert info is not None
        return info

    async def stream_into(
        self, path: str, body: AsyncIterable[bytes], seal: Seal | None
    ) -> tuple[Writer, dict[str, Any]]:
        """Write ``body`` to a :class:`~.fsspec_io.Writer` for ``path``, not yet committed;
        returns it with the body's size, MD5 and checksums (the sealed ones included)."""
        writer = await self.run(self.io.writer, path)
        sums = Sums()
        try:
            async for chunk in body:
                # the backend write and the hashing run side by side on two threads
                await asyncio.gather(self.run(writer.write, chunk), self.run(sums.add, chunk))
            await self.run(writer.close)
            checksums = {"CRC32": files.crc32_b64(sums.crc)}
            if seal is not None:
                checksums.update(seal())
        except BaseException:
            await self.run(writer.discard)
            raise
        return writer, {"size": sums.size, "etag": sums.md5.hexdigest(), "checksums": checksums}

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterable[bytes],
        attrs: ObjectAttrs,
        *,
        seal: Seal | None = None,
    ) -> ObjectInfo:
        await self._bucket(bucket)
        writer, sums = await self.stream_into(self.data_path(bucket, key), body, seal)
        meta = object_record(attrs, sums["etag"], sums["checksums"], None)
        try:
            return await self.commit(bucket, key, writer.commit, meta)
        except BaseException:
            await self.run(writer.discard)
            raise

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        await self._bucket(bucket)
        attempt = 0
        while True:
            found = await self.run(self.io.info, self.data_path(bucket, key))
            if found is None:
                raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key)
            info = await self._described(bucket, key, found)
            if info is not None:
                return info
            attempt += 1
            if attempt == SETTLE_TRIES or (bucket, key) not in self._locks:
                return self._foreign(bucket, key, found)
            await self._settled(bucket, key)  # a write in progress: wait for its record

    async def get_object(
        self, bucket: str, key: str, first: int | None = None, last: int | None = None
    ) -> ObjectRange:
        await self._bucket(bucket)
        for attempt in range(SETTLE_TRIES):
            try:
                reader = await self.run(Reader, self.io.fs, self.data_path(bucket, key))
            except FileNotFoundError:
                raise NoSuchKey(resource=f"/{bucket}/{key}", Key=key) from None
            try:
                version = await self.run(reader.version)
                info = await self._described(bucket, key, version)
                if info is None and attempt < SETTLE_TRIES - 1 and (bucket, key) in self._locks:
                    # overwritten while we looked: wait for that write, then open the new bytes
                    await self.run(reader.close)
                    await self._settled(bucket, key)
                    continue
            except BaseException:
                await self.run(reader.close)
                raise
            info = info or self._foreign(bucket, key, version)
            start = 0 if first is None else first
            end = info.size - 1 if last is None else min(last, info.size - 1)
            return ObjectRange(info, start, end, self._stream(reader, start, end - start + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream(self, reader: Reader, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            while length > 0:
                chunk = await self.run(reader.read, start, min(CHUNK, length))
                if not chunk:
                    break
                start += len(chunk)
                length -= len(chunk)
                yield chunk
        finally:
            await self.run(reader.close)

    async def delete_object(self, bucket: str, key: str) -> None:
        await self._bucket(bucket)
        with self._counted((bucket, key)) as lock:
            async with lock:
                await self.run(self.io.remove, self.data_path(bucket, key))
                await self.run(self.io.remove, self._meta(bucket, key))

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ObjectListing:
        await self._bucket(bucket)
        base = self.io.path(bucket)
        folders = self._encode(prefix.rpartition("/")[0] + "/x")[:-1] if "/" in prefix else []
        found = await self.run(self.io.find, self.io.path(bucket, *folders))
        by_key: dict[str, dict[str, Any]] = {}
        for path, details in found.items():
            key = self._decode(path[len(base) + 1 :].split("/"))
            if key is not None and key.startswith(prefix):
                by_key[key] = details
        page = paginate(sorted(by_key), prefix, delimiter, after, max_keys)
        metas = [self._meta(bucket, k) for k in page.keys]
        records = await self.run(self.io.cat_many, metas)
        objects = []
        for key, meta in zip(page.keys, metas, strict=True):
            raw = records.get(meta)
            info = self._info(bucket, key, by_key[key], loads(raw) if raw else None)
            objects.append(info or self._foreign(bucket, key, by_key[key]))
        return ObjectListing(objects, page.common_prefixes, page.is_truncated, page.last)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, attrs: ObjectAttrs | None
    ) -> ObjectInfo:
        source = await self.head_object(src_bucket, src_key)
        await self._bucket(bucket)
        meta = object_record(
            attrs or source.attrs, source.etag, source.checksums, source.parts_count
        )
        src, dst = self.data_path(src_bucket, src_key), self.data_path(bucket, key)

        def publish() -> None:
            try:
                self.io.copy(src, dst)
            except FileNotFoundError:
                raise NoSuchKey(resource=f"/{src_bucket}/{src_key}", Key=src_key) from None

        return await self.commit(bucket, key, publish, meta)

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The file on local disk (fsspec's local filesystem only); it is replaced, never
        rewritten, on overwrite, so a hard link keeps its version."""
        if not self.io.local:
            return None
        path = Path(self.data_path(bucket, key))
        return path if path.is_file() else None

    # -- multipart uploads (assembled by .fsspec_uploads) -------------------------------------

    async def create_upload(self, bucket: str, key: str, attrs: ObjectAttrs) -> UploadInfo:
        return await self._multipart.create(bucket, key, attrs)

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
        return await self._multipart.upload_part(bucket, key, upload_id, number, body, seal)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        return await self._multipart.list_parts(bucket, key, upload_id)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        await self._bucket(bucket)
        uploads = [u for u in await self._multipart.all() if u.bucket == bucket]
        return sorted(uploads, key=lambda u: (u.key, u.initiated))

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        return await self._multipart.complete(bucket, key, upload_id, parts)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._multipart.abort(bucket, key, upload_id)
