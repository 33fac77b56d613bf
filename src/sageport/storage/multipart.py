"""S3 multipart uploads, once for every store: the rules here, the bytes behind an UploadSpace.

:class:`MultipartUploads` implements the multipart half of
:class:`~sageport.storage.objectstore.ObjectStore` (create, upload part, list, complete,
abort) as S3 defines it: upload ids, part records (a re-sent part replaces the old one whole,
when its record is written), the checks of the part list a client completes with (order,
ETags, 5 MiB minimum but for the last part) and the multipart ETag. A store inherits it and
sets :attr:`MultipartUploads.uploads_space` to its :class:`UploadSpace`: where upload records
and part files are kept, and how parts become the object (a concatenation on local disk,
s3fs ``merge`` on S3). That is all the two stores do differently.

Each upload is a folder of records: ``upload.json`` (bucket, key, attributes, see
:mod:`.records`) and per part ``<n>.json`` naming its bytes ``<n>.@<version>``.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sageport.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from sageport.storage.multipart_sums import multipart_etag
from sageport.storage.objectstore import (
    BucketInfo,
    ObjectAttrs,
    ObjectInfo,
    ObjectRange,
    PartInfo,
    Seal,
    UploadInfo,
)
from sageport.storage.records import (
    attrs_from_json,
    part_info,
    part_record,
    upload_info,
    upload_record,
)

MIN_PART_SIZE = 5 * 1024 * 1024
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_RECORD = "upload.json"


@dataclass(frozen=True)
class StagedPart:
    """A part's body, written but not yet in the upload."""

    #: ``size``, ``etag`` (hex MD5) and ``checksums`` of the body (the sealed ones included)
    sums: Mapping[str, Any]
    #: make the bytes the upload's file of the name they were staged for
    publish: Callable[[], Awaitable[None]]
    #: forget the bytes, published or not
    discard: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Completion:
    """A CompleteMultipartUpload that passed S3's checks: what its object is made of."""

    bucket: str
    key: str
    upload_id: str
    #: the part records, in the order of the object
    parts: list[dict[str, Any]]
    attrs: ObjectAttrs
    #: the multipart ETag (``md5-of-md5s-N``)
    etag: str


class UploadSpace(Protocol):
    """Where a store keeps its uploads: records and part files, per upload id."""

    async def read(self, upload_id: str, name: str) -> dict[str, Any] | None:
        """The record ``name`` (``upload.json``, ``<n>.json``) of an upload; None if missing."""
        ...

    async def write(self, upload_id: str, name: str, record: dict[str, Any]) -> None:
        """Write a record whole (readers see the old one or the new one)."""
        ...

    async def uploads(self) -> list[dict[str, Any]]:
        """The ``upload.json`` record of every upload in progress, in any bucket."""
        ...

    async def parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        """The part records of an upload, by part number."""
        ...

    async def stage(
        self, upload_id: str, name: str, body: AsyncIterable[bytes], seal: Seal | None
    ) -> StagedPart:
        """Write ``body`` for the file ``name``; nothing is left behind if this raises."""
        ...

    async def remove(self, upload_id: str, name: str) -> None:
        """Delete a part's file; a missing one is fine."""
        ...

    async def assemble(self, done: Completion) -> ObjectInfo:
        """Make the parts the object, with the multipart ETag and its whole CRC32, unless the
        upload ended meanwhile (NoSuchUpload); then drop the upload."""
        ...

    async def drop(self, upload_id: str) -> None:
        """Delete an upload with all its records and parts."""
        ...


def choose_parts(
    bucket: str,
    key: str,
    upload_id: str,
    parts: list[tuple[int, str]],
    stored: Mapping[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The stored part records that ``parts`` (number, ETag) name, checked as S3 checks them."""
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
    return chosen


class MultipartUploads(ABC):
    """The multipart operations of an object store, over its :attr:`uploads_space`."""

    uploads_space: UploadSpace

    @abstractmethod
    async def head_bucket(self, bucket: str) -> BucketInfo:
        """The bucket (raises NoSuchBucket); the store's own."""

    @abstractmethod
    async def get_object(
        self, bucket: str, key: str, first: int | None = None, last: int | None = None
    ) -> ObjectRange:
        """The object's bytes ``first``-``last`` (a range read); the store's own."""

    async def _upload(self, bucket: str, key: str, upload_id: str) -> dict[str, Any]:
        """The record of the upload ``upload_id`` of ``key``, or NoSuchUpload."""
        await self.head_bucket(bucket)
        if UPLOAD_ID.match(upload_id):
            found = await self.uploads_space.read(upload_id, UPLOAD_RECORD)
            if found is not None and found["bucket"] == bucket and found["key"] == key:
                return found
        raise NoSuchUpload(resource=f"/{bucket}/{key}", UploadId=upload_id)

    async def _has_uploads(self, bucket: str) -> bool:
        """Whether an upload to ``bucket`` is in progress (then the bucket is not empty)."""
        return any(r["bucket"] == bucket for r in await self.uploads_space.uploads())

    async def create_upload(self, bucket: str, key: str, attrs: ObjectAttrs) -> UploadInfo:
        await self.head_bucket(bucket)
        upload_id = uuid.uuid4().hex
        record = upload_record(upload_id, bucket, key, attrs)
        await self.uploads_space.write(upload_id, UPLOAD_RECORD, record)
        return upload_info(record)

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
        space = self.uploads_space
        await self._upload(bucket, key, upload_id)
        name = f"{number}.@{uuid.uuid4().hex[:16]}"
        staged = await space.stage(upload_id, name, body, seal)
        record = part_record(number, name, staged.sums)
        try:
            await staged.publish()
            await self._upload(bucket, key, upload_id)  # aborted while the body streamed?
            old = await space.read(upload_id, f"{number}.json")
            # a record that cannot be written (disk full) leaves the part as it was
            await space.write(upload_id, f"{number}.json", record)
        except BaseException:
            await staged.discard()
            raise
        if old is not None and old["data"] != name:
            await space.remove(upload_id, old["data"])
        return part_info(record)

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        src_bucket: str,
        src_key: str,
        first: int | None = None,
        last: int | None = None,
    ) -> tuple[PartInfo, ObjectInfo]:
        # The upload is looked up before the source is opened, so a bad upload id opens no
        # file; the range read streams (a window at a time) into the part like a body.
        await self._upload(bucket, key, upload_id)
        source = await self.get_object(src_bucket, src_key, first, last)
        body = source.body
        try:
            # a mapped window is passed as is: file writes and hashes take any buffer, and
            # object files never shrink under a mapping (a new version is a new file)
            part = await self.upload_part(
                bucket, key, upload_id, number, cast(AsyncIterable[bytes], body)
            )
        finally:
            # a part that failed midway leaves the range read open: close it now
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        return part, source.info

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        await self._upload(bucket, key, upload_id)
        parts = await self.uploads_space.parts(upload_id)
        return [part_info(parts[n]) for n in sorted(parts)]

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        await self.head_bucket(bucket)
        records = [r for r in await self.uploads_space.uploads() if r["bucket"] == bucket]
        records.sort(key=lambda r: (r["key"], r["initiated"]))
        return [upload_info(r) for r in records]

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        upload = await self._upload(bucket, key, upload_id)
        stored = await self.uploads_space.parts(upload_id)
        chosen = choose_parts(bucket, key, upload_id, parts, stored)
        etag = multipart_etag([p["etag"] for p in chosen])
        attrs = attrs_from_json(upload["attrs"])
        done = Completion(bucket, key, upload_id, chosen, attrs, etag)
        return await self.uploads_space.assemble(done)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._upload(bucket, key, upload_id)
        await self.uploads_space.drop(upload_id)
