"""File primitives of the local object store: atomic renames, JSON sidecars, streaming.

Kept apart from :mod:`sageport.storage.local` so the store reads as the layout and rules of
buckets, objects and uploads, and these as the few ways bytes touch the disk.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
import zlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sageport.storage.objectstore import Seal

CHUNK = 1024 * 1024


def now() -> datetime:
    # S3 timestamps carry milliseconds
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def crc32_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def write_json(path: Path, data: dict[str, Any], tmp_dir: Path) -> None:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    replace(tmp, path)


def replace(src: Path, dst: Path) -> None:
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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


class Sink:
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
            sums = {"CRC32": crc32_b64(self.crc)}
            if seal is not None:
                sums.update(seal())
            return sums
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise


def concat(sources: list[Path], target: Path) -> int:
    """Write ``sources`` one after another into ``target``; returns the CRC32 of the whole."""
    crc = 0
    with open(target, "wb") as out:
        for src in sources:
            with open(src, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
                    crc = zlib.crc32(chunk, crc)
    return crc


async def stream(fh: Any, start: int, length: int) -> AsyncIterator[bytes]:
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


def prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``stop``."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
