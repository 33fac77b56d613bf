"""File primitives of the local object store: atomic renames, JSON sidecars, streaming.

Kept apart from :mod:`sageport.storage.local` so the store reads as the layout and rules of
buckets, objects and uploads, and these as the few ways bytes touch the disk.

Large bodies move in chunks of a few MiB, and the disk work (writing and hashing on the way in,
mapping the file on the way out) runs on a worker thread one chunk ahead of the event loop: while the
loop receives or sends chunk *n*, a thread writes or reads chunk *n ± 1*, so the server's two
halves overlap instead of taking turns.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import mmap
import os
import uuid
import zlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sageport.storage.objectstore import Seal

#: write/hash granularity of an upload
CHUNK = 4 * 1024 * 1024
#: read granularity of a download: each window costs a thread hop, a mapping and a pause of
#: the connection's writes; at 1 MiB that overhead doubled the server's CPU per byte sent
STREAM_WINDOW = 8 * 1024 * 1024
#: writes smaller than this happen on the event loop: a 1 KiB object needs no thread hop
INLINE_WRITE = 256 * 1024


def now() -> datetime:
    # S3 timestamps carry milliseconds
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def crc32_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def write_json(path: Path, data: dict[str, Any], tmp_dir: Path) -> None:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.json"
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a record behind
        raise


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
    """Streams a body into a temp file while hashing it (md5 for the ETag, CRC32).

    md5 is the slowest step of an upload (~600 MiB/s on one core, and it cannot be split), so
    it runs on its own thread, beside the one that writes and takes the CRC32.
    """

    def __init__(self, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.path = tmp_dir / uuid.uuid4().hex
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.crc = 0
        self.size = 0

    def _store(self, fh: Any, data: bytes) -> None:
        fh.write(data)
        self.crc = zlib.crc32(data, self.crc)

    async def consume(self, body: AsyncIterable[bytes], seal: Seal | None) -> dict[str, str]:
        """Write ``body``; the checksums (CRC32 plus the sealed ones). Cleans up on error."""
        loop = asyncio.get_running_loop()
        # one chunk in flight: the loop receives chunk n+1 while threads handle chunk n
        working: list[asyncio.Future[None]] = []
        try:
            with open(self.path, "wb") as fh:
                try:
                    async for data in _rechunk(body):
                        await _settle(working)
                        self.size += len(data)
                        if len(data) < INLINE_WRITE:
                            self._store(fh, data)
                            self.md5.update(data)
                        else:
                            working = [
                                loop.run_in_executor(None, self._store, fh, data),
                                loop.run_in_executor(None, self.md5.update, data),
                            ]
                    await _settle(working)
                finally:
                    if working:
                        await asyncio.wait(working)  # let them finish before the file closes
            sums = {"CRC32": crc32_b64(self.crc)}
            if seal is not None:
                sums.update(seal())
            return sums
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise


async def _settle(working: list[asyncio.Future[None]]) -> None:
    """Wait for ``working`` (raising the first failure) and empty it."""
    if working:
        await asyncio.gather(*working)
        working.clear()


async def _rechunk(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``body`` in pieces of at least :data:`CHUNK` bytes (the last may be shorter)."""
    pieces: list[bytes] = []
    size = 0
    async for chunk in body:
        if not pieces and len(chunk) >= CHUNK:
            yield chunk  # already big (an S3 request body arrives batched): no copy
            continue
        pieces.append(chunk)
        size += len(chunk)
        if size >= CHUNK:
            yield b"".join(pieces)
            pieces.clear()
            size = 0
    if pieces:
        yield b"".join(pieces)


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


def window(fh: Any, start: int, length: int) -> memoryview | bytes:
    """``length`` bytes of ``fh`` from ``start``: a read-only view of the page cache where the
    file can be mapped (the socket write then copies straight from it), else a read.

    Mapped with ``MAP_POPULATE``, so the disk work happens here (on the worker thread), not
    when the event loop hands the view to the socket. The mapping lives as long as the view
    (uvicorn's transport may hold it until the socket has taken it all) and unmaps itself
    when the last reference goes; ``fh`` can be closed at once. Object files are never
    rewritten in place (a new version is a new file, renamed over), so a mapping never
    sees its file shrink; and it is only ever read by the kernel (``write``), where a
    fault would be an error return, not a signal.
    """
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        mapped = mmap.mmap(
            fh.fileno(),
            start + length - base,
            flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
            prot=mmap.PROT_READ,
            offset=base,
        )
    except (OSError, ValueError):  # not mappable (a pipe, some FUSE filesystems, past EOF)
        fh.seek(start)
        data: bytes = fh.read(length)
        return data
    return memoryview(mapped)[start - base :]


async def stream(fh: Any, start: int, length: int) -> AsyncIterator[memoryview | bytes]:
    """``length`` bytes of ``fh`` from ``start`` in windows of :data:`STREAM_WINDOW`, the
    next one mapped (or read) on a worker thread while this one is sent."""
    loop = asyncio.get_running_loop()
    reading: asyncio.Future[memoryview | bytes] | None = None
    end = start + length
    try:
        if length > 0:
            reading = loop.run_in_executor(None, window, fh, start, min(STREAM_WINDOW, length))
        while reading is not None:
            chunk = await reading
            reading = None
            if not chunk:
                break
            start += len(chunk)
            if start < end:
                size = min(STREAM_WINDOW, end - start)
                reading = loop.run_in_executor(None, window, fh, start, size)
            yield chunk
    finally:
        if reading is not None:
            await asyncio.wait([reading])  # a read may still be using the file
        fh.close()


def prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``stop``."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
