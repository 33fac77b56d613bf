"""Where the embedded store keeps multipart uploads: ``.uploads/<upload id>/`` on local disk.

The folder holds ``upload.json``, ``<n>.json`` and ``<n>.@<version>`` per part (the records of
:mod:`.records`); the rules are :mod:`.multipart`'s. A part streams into ``.tmp`` and is renamed
into the folder; completion concatenates the parts into a new file (taking the CRC32 of what it
writes) and commits it as the object. Nothing here awaits between checking that an upload still
exists and acting on it, so an abort in the event loop cannot interleave.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any

from sageport.errors import NoSuchUpload
from sageport.storage import files
from sageport.storage.multipart import UPLOAD_RECORD, Completion, StagedPart
from sageport.storage.objectstore import ObjectInfo, Seal, disk_space
from sageport.storage.records import attrs_json

#: makes the file at the path the object (bucket, key) with the metadata record; synchronous
Commit = Callable[[str, str, Path, dict[str, Any]], ObjectInfo]


class LocalUploads:
    """The :class:`~.multipart.UploadSpace` of :class:`~.local.LocalObjectStore`."""

    def __init__(self, folder: Path, tmp: Path, commit: Commit) -> None:
        self.folder = folder
        self._tmp = tmp
        self._commit = commit

    async def read(self, upload_id: str, name: str) -> dict[str, Any] | None:
        return files.read_json(self.folder / upload_id / name)

    async def write(self, upload_id: str, name: str, record: dict[str, Any]) -> None:
        with disk_space(self.folder.parent):
            self._tmp.mkdir(parents=True, exist_ok=True)
            files.write_json(self.folder / upload_id / name, record, self._tmp)

    async def uploads(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        found = (files.read_json(d / UPLOAD_RECORD) for d in self.folder.iterdir())
        return [r for r in found if r is not None]

    async def parts(self, upload_id: str) -> dict[int, dict[str, Any]]:
        out = {}
        for path in (self.folder / upload_id).glob("*.json"):
            if path.stem.isdigit():
                data = files.read_json(path)
                if data is not None:
                    out[int(path.stem)] = data
        return out

    async def stage(
        self, upload_id: str, name: str, body: AsyncIterable[bytes], seal: Seal | None
    ) -> StagedPart:
        with disk_space(self.folder.parent):
            sink = files.Sink(self._tmp)
            sums = await sink.consume(body, seal)  # removes its file if it raises
        folder = self.folder / upload_id
        target = folder / name

        async def publish() -> None:
            files.replace(sink.path, target)

        async def discard() -> None:
            sink.path.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
            files.prune(folder, self.folder)  # an upload aborted meanwhile leaves no folder

        return StagedPart(
            {"size": sink.size, "etag": sink.md5.hexdigest(), "checksums": sums}, publish, discard
        )

    async def remove(self, upload_id: str, name: str) -> None:
        (self.folder / upload_id / name).unlink(missing_ok=True)

    async def assemble(self, done: Completion) -> ObjectInfo:
        folder = self.folder / done.upload_id
        tmp = self._tmp / uuid.uuid4().hex
        # A full disk fails the completion with the upload intact: retry it once there is room.
        with disk_space(self.folder.parent):
            try:
                self._tmp.mkdir(parents=True, exist_ok=True)
                sources = [folder / p["data"] for p in done.parts]
                crc = await asyncio.to_thread(files.concat, sources, tmp)
                record = {
                    "size": sum(p["size"] for p in done.parts),
                    "etag": done.etag,
                    "last_modified": files.now().isoformat(),
                    "attrs": attrs_json(done.attrs),
                    "checksums": {"CRC32": files.crc32_b64(crc)},
                    "parts_count": len(done.parts),
                }
                if (
                    files.read_json(folder / UPLOAD_RECORD) is None
                ):  # aborted or completed meanwhile
                    raise NoSuchUpload(
                        resource=f"/{done.bucket}/{done.key}", UploadId=done.upload_id
                    )
                info = self._commit(done.bucket, done.key, tmp, record)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        shutil.rmtree(folder, ignore_errors=True)
        return info

    async def drop(self, upload_id: str) -> None:
        shutil.rmtree(self.folder / upload_id, ignore_errors=True)
