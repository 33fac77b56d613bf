"""Where the fsspec object store keeps multipart uploads: ``.sageport/uploads/<id>/``.

The folder holds ``upload.json``, ``<n>.json`` and ``<n>.@<version>`` per part (the records of
:mod:`.records`); the rules are :mod:`.multipart`'s. Completion assembles the parts into the
object in one step (server-side on S3 through s3fs ``merge``) and takes the whole object's
CRC32 from the parts' records without reading them again.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from sageport.errors import NoSuchUpload
from sageport.storage.fsspec_io import SYSTEM
from sageport.storage.fsspec_records import loads, object_record
from sageport.storage.multipart import UPLOAD_RECORD, Completion, StagedPart
from sageport.storage.multipart_sums import combine_crc32
from sageport.storage.objectstore import ObjectInfo, Seal

if TYPE_CHECKING:
    from sageport.storage.fsspec_store import FsspecObjectStore


class FsspecUploads:
    """The :class:`~.multipart.UploadSpace` of :class:`~.fsspec_store.FsspecObjectStore`."""

    def __init__(self, store: FsspecObjectStore) -> None:
        self._store = store
        self._io = store.io

    def _dir(self, upload_id: str) -> str:
        return self._io.path(SYSTEM, "uploads", upload_id)

    async def read(self, upload_id: str, name: str) -> dict[str, Any] | None:
        return await self._store.read_json(f"{self._dir(upload_id)}/{name}")

    async def write(self, upload_id: str, name: str, record: dict[str, Any]) -> None:
        await self._store.write_json(f"{self._dir(upload_id)}/{name}", record)

    async def uploads(self) -> list[dict[str, Any]]:
        found = await self._store.run(self._io.find, self._io.path(SYSTEM, "uploads"))
        paths = [p for p in found if p.endswith(f"/{UPLOAD_RECORD}")]
        records = await self._store.run(self._io.cat_many, paths)
        return [loads(raw) for raw in records.values()]

    async def parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        found = await self._store.run(self._io.find, self._dir(upload_id))
        paths = [p for p in found if p.rsplit("/", 1)[-1].removesuffix(".json").isdigit()]
        records = await self._store.run(self._io.cat_many, paths)
        parts = [loads(raw) for raw in records.values()]
        return {int(p["number"]): p for p in parts}

    async def stage(
        self, upload_id: str, name: str, body: AsyncIterable[bytes], seal: Seal | None
    ) -> StagedPart:
        path = f"{self._dir(upload_id)}/{name}"
        writer, sums = await self._store.stream_into(path, body, seal)

        async def publish() -> None:
            await self._store.run(writer.commit)

        async def discard() -> None:
            await self._store.run(writer.discard)  # a no-op once committed
            await self._store.run(self._io.remove, path)

        return StagedPart(sums, publish, discard)

    async def remove(self, upload_id: str, name: str) -> None:
        await self._store.run(self._io.remove, f"{self._dir(upload_id)}/{name}")

    async def assemble(self, done: Completion) -> ObjectInfo:
        folder = self._dir(done.upload_id)
        sources = [f"{folder}/{p['data']}" for p in done.parts]
        crc = combine_crc32([(p["checksums"]["CRC32"], p["size"]) for p in done.parts])
        meta = object_record(done.attrs, done.etag, {"CRC32": crc}, len(done.parts))
        target = self._store.data_path(done.bucket, done.key)

        def assemble() -> None:
            if self._io.cat(f"{folder}/{UPLOAD_RECORD}") is None:  # aborted or completed meanwhile
                raise NoSuchUpload(resource=f"/{done.bucket}/{done.key}", UploadId=done.upload_id)
            self._io.merge(sources, target)

        info = await self._store.commit(done.bucket, done.key, assemble, meta)
        await self.drop(done.upload_id)
        return info

    async def drop(self, upload_id: str) -> None:
        await self._store.run(self._io.remove_tree, self._dir(upload_id))
