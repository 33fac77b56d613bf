"""files: large bodies cross several chunks, written and read one chunk ahead on worker threads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sageport.storage import files

BIG = os.urandom(2 * max(files.CHUNK, files.STREAM_WINDOW) + 12345)


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def failing(data: bytes) -> AsyncIterator[bytes]:
    async for piece in pieces(data):
        yield piece
    raise ConnectionResetError("client went away")


def test_sink_writes_and_hashes_a_multi_chunk_body(tmp_path: Path) -> None:
    sink = files.Sink(tmp_path)
    sums = asyncio.run(sink.consume(pieces(BIG), lambda: {"SHA256": "sealed"}))
    assert sink.path.read_bytes() == BIG
    assert sink.size == len(BIG)
    assert sink.md5.hexdigest() == hashlib.md5(BIG, usedforsecurity=False).hexdigest()
    crc = base64.b64encode(zlib.crc32(BIG).to_bytes(4, "big")).decode()
    assert sums == {"CRC32": crc, "SHA256": "sealed"}


def test_sink_removes_its_file_when_the_body_fails(tmp_path: Path) -> None:
    sink = files.Sink(tmp_path)
    with pytest.raises(ConnectionResetError):
        asyncio.run(sink.consume(failing(BIG), None))
    assert not sink.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_stream_reads_a_range_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(BIG)

    async def read(start: int, length: int) -> list[bytes]:
        return [c async for c in files.stream(open(path, "rb"), start, length)]

    got = asyncio.run(read(100, files.STREAM_WINDOW + 7))
    assert b"".join(got) == BIG[100 : 100 + files.STREAM_WINDOW + 7]
    assert [len(c) for c in got] == [files.STREAM_WINDOW, 7]
    assert b"".join(asyncio.run(read(0, len(BIG)))) == BIG
    assert asyncio.run(read(5, 0)) == []


def test_stream_closed_early_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(BIG)
    fh = open(path, "rb")  # noqa: SIM115 - closed by files.stream

    async def first_chunk() -> bytes:
        body = files.stream(fh, 0, len(BIG))
        chunk = await anext(body)
        await body.aclose()  # a client that hangs up: a read-ahead is in flight
        return chunk

    assert asyncio.run(first_chunk()) == BIG[: files.STREAM_WINDOW]
    assert fh.closed


def test_a_window_keeps_the_bytes_it_was_opened_on(tmp_path: Path) -> None:
    """A GET under way while the object is overwritten (rename over) or deleted sends the
    version it opened: the mapping holds the old file, not the name."""
    path = tmp_path / "blob"
    path.write_bytes(BIG)
    with open(path, "rb") as fh:
        view = files.window(fh, 4097, 1000)
    newer = tmp_path / "newer"
    newer.write_bytes(b"x" * len(BIG))
    os.replace(newer, path)
    assert bytes(view) == BIG[4097:5097]
    path.unlink()
    assert bytes(view) == BIG[4097:5097]


def test_a_window_that_cannot_be_mapped_is_read(tmp_path: Path) -> None:
    """Where mmap refuses (here: a window past the end of the file), the bytes are read."""
    path = tmp_path / "blob"
    path.write_bytes(b"abcdef")
    with open(path, "rb") as fh:
        assert files.window(fh, 2, 100) == b"cdef"
        assert files.window(fh, 6, 100) == b""
