"""Multipart uploads of the fsspec object store: parts as files, assembled on completion.

Under ``.sageport/uploads/<id>/``: ``upload.json`` (bucket, key, attributes), and per part
``<n>.json`` naming its bytes ``<n>.@<version>``. A part becomes part of the upload when its
record is written, so a re-sent part replaces the old one whole. Completion checks the list
the client sends as S3 does (order, ETags, 5 MiB minimum but for the last part), assembles the
parts into the object in one step (server-side on S3 through s3fs ``merge``), and computes the
ETag and the whole object's CRC32 from the parts' records without reading them again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from sageport.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from sageport.storage import files
from sageport.storage.fsspec_io import SYSTEM
from sageport.storage.fsspec_records import (
    attrs_from_json,
    attrs_json,
    loads,
    object_record,
    part_info,
    upload_info,
)
from sageport.storage.multipart_sums import combine_crc32, multipart_etag
from sageport.storage.objectstore import ObjectAttrs, ObjectInfo, PartInfo, Seal, UploadInfo

if TYPE_CHECKING:
    from sageport.storage.fsspec_store import FsspecObjectStore

MIN_PART_SIZE = 5 * 1024 * 1024
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class Uploads:
    """The multipart uploads of one :class:`~.fsspec_store.FsspecObjectStore`."""

    def __init__(self, store: FsspecObjectStore) -> None:
        self._store = store
        self._io = store.io

    def _dir(self, upload_id: str) -> str:
        return self._io.path(SYSTEM, "uploads", upload_id)

    async def _upload(self, bucket: str, key: str, upload_id: str) -> dict[str, Any]:
        await self._store.head_bucket(bucket)
        if UPLOAD_ID.match(upload_id):
            found = await self._store.read_json(self._dir(upload_id) + "/upload.json")
            if found is not None and found["bucket"] == bucket and found["key"] == key:
                return found
        raise NoSuchUpload(resource=f"/{bucket}/{key}", UploadId=upload_id)

    async def all(self) -> list[UploadInfo]:
        """Every upload in progress, in any bucket."""
        found = await self._store.run(self._io.find, self._io.path(SYSTEM, "uploads"))
        paths = [p for p in found if p.endswith("/upload.json")]
        records = await self._store.run(self._io.cat_many, paths)
        return [upload_info(loads(raw)) for raw in records.values()]

    async def create(self, bucket: str, key: str, attrs: ObjectAttrs) -> UploadInfo:
        await self._store.head_bucket(bucket)
        upload_id = uuid.uuid4().hex
        data = {
            "upload_id": upload_id,
            "bucket": bucket,
            "key": key,
            "initiated": files.now().isoformat(),
            "attrs": attrs_json(attrs),
        }
        await self._store.write_json(self._dir(upload_id) + "/upload.json", data)
        return upload_info(data)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterable[bytes],
        seal: Seal | None,
    ) -> PartInfo:
        await self._upload(bucket, key, upload_id)
        folder = self._dir(upload_id)
        name = f"{number}.@{uuid.uuid4().hex[:16]}"
        writer, sums = await self._store.stream_into(f"{folder}/{name}", body, seal)
        data = {
            "number": number,
            "etag": sums["etag"],
            "size": sums["size"],
            "last_modified": files.now().isoformat(),
            "checksums": sums["checksums"],
            "data": name,
        }
        try:
            await self._store.run(writer.commit)
            await self._upload(bucket, key, upload_id)  # aborted while the body streamed?
        except BaseException:
            await self._store.run(self._io.remove, f"{folder}/{name}")
            raise
        old = await self._store.read_json(f"{folder}/{number}.json")
        await self._store.write_json(f"{folder}/{number}.json", data)
        if old is not None and old["data"] != name:
            await self._store.run(self._io.remove, f"{folder}/{old['data']}")
        return part_info(data)

    async def _parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        found = await self._store.run(self._io.find, self._dir(upload_id))
        paths = [p for p in found if p.rsplit("/", 1)[-1].removesuffix(".json").isdigit()]
        records = await self._store.run(self._io.cat_many, paths)
        parts = [loads(raw) for raw in records.values()]
        return {int(p["number"]): p for p in parts}

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        await self._upload(bucket, key, upload_id)
        parts = await self._parts(upload_id)
        return [part_info(parts[n]) for n in sorted(parts)]

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        upload = await self._upload(bucket, key, upload_id)
        stored = await self._parts(upload_id)
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
        folder = self._dir(upload_id)
        sources = [f"{folder}/{p['data']}" for p in chosen]
        crc = combine_crc32([(p["checksums"]["CRC32"], p["size"]) for p in chosen])
        etag = multipart_etag([p["etag"] for p in chosen])
        meta = object_record(attrs_from_json(upload["attrs"]), etag, {"CRC32": crc}, len(chosen))
        target = self._store.data_path(bucket, key)

        def assemble() -> None:
            if self._io.cat(folder + "/upload.json") is None:  # aborted or completed meanwhile
                raise NoSuchUpload(resource=f"/{bucket}/{key}", UploadId=upload_id)
            self._io.merge(sources, target)

        info = await self._store.commit(bucket, key, assemble, meta)
        await self._store.run(self._io.remove_tree, folder)
        return info

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        await self._upload(bucket, key, upload_id)
        await self._store.run(self._io.remove_tree, self._dir(upload_id))
