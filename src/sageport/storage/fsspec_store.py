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
from sageport.storage.fsspec_io import CHUNK, SYSTEM, Reader, RootedFilesystem, Writer, ident
from sageport.storage.fsspec_records import (
    Sums,
    decode_plain,
    described,
    encode_plain,
    foreign,
    loads,
    object_record,
)
from sageport.storage.fsspec_uploads import FsspecUploads
from sageport.storage.listing import paginate
from sageport.storage.multipart import MultipartUploads
from sageport.storage.objectstore import (
    BucketInfo,
    ObjectAttrs,
    ObjectInfo,
    ObjectListing,
    ObjectRange,
    Seal,
    byte_range,
)
from sageport.storage.records import bucket_info, bucket_record

T = TypeVar("T")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DATA_SUFFIX = ".@d"
#: how long a reader waits for a concurrent write of the same key to record its metadata
SETTLE_TRIES = 3


class FsspecObjectStore(MultipartUploads):
    """:class:`~sageport.storage.objectstore.ObjectStore` on an fsspec filesystem (its multipart
    uploads: :class:`~.multipart.MultipartUploads` over :class:`~.fsspec_uploads.FsspecUploads`)."""

    def __init__(self, fs: Any, root: str, region: str = "us-east-1") -> None:
        self.io = RootedFilesystem(fs, root)
        self.region = region
        self._suffix = "" if self.io.object_store else DATA_SUFFIX
        self.uploads_space = FsspecUploads(self)
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
        keymap.check_bucket(bucket)
        record = await self.read_json(self._bucket_record(bucket))
        if record is not None:
            return bucket_info(bucket, record)
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
        keymap.check_bucket(bucket)
        if await self.read_json(self._bucket_record(bucket)) is not None:
            raise BucketAlreadyOwnedByYou(resource=f"/{bucket}", BucketName=bucket)
        record = bucket_record(region)
        await self.write_json(self._bucket_record(bucket), record)
        return bucket_info(bucket, record)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self._bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        await self._bucket(bucket)
        if (await self.list_objects(bucket, max_keys=1)).objects or await self._has_uploads(bucket):
            raise BucketNotEmpty(resource=f"/{bucket}", BucketName=bucket)
        await self.run(self.io.remove, self._bucket_record(bucket))
        await self.run(self.io.remove_tree, self.io.path(SYSTEM, "meta", bucket))
        if not self.io.object_store:
            await self.run(self.io.remove_tree, self.io.path(bucket))

    # -- objects ----------------------------------------------------------------------------

    async def _described(self, bucket: str, key: str, version: dict[str, Any]) -> ObjectInfo | None:
        """The object whose bytes have details ``version`` as its record says; None while no
        record for that version exists yet (a write in progress) or ever (a foreign file)."""
        return described(bucket, key, version, await self.read_json(self._meta(bucket, key)))

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
        info = described(bucket, key, found, record)
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
                return foreign(bucket, key, found)
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
            info = info or foreign(bucket, key, version)
            start, end = byte_range(info.size, first, last)
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
        folders = keymap.folder_parts(prefix, self._encode)
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
            info = described(bucket, key, by_key[key], loads(raw) if raw else None)
            objects.append(info or foreign(bucket, key, by_key[key]))
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
