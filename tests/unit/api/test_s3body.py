"""RequestBody: aws-chunked decoding (as botocore frames it) and payload verification."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import zlib
from collections.abc import AsyncIterator

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from sageport.api.s3body import BATCH, RequestBody
from sageport.errors import BadDigest, IncompleteBody, XAmzContentSHA256Mismatch

PAYLOAD = bytes(range(256)) * 300


async def pieces(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def drain(body: RequestBody) -> bytes:
    return b"".join([c async for c in body])


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_aws_chunked_with_trailing_checksum_decodes_and_verifies() -> None:
    wrapped = AwsChunkedWrapper(
        io.BytesIO(PAYLOAD),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=7000,
    ).read()
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(PAYLOAD)),
    }
    body = RequestBody(pieces(wrapped, 333), headers)
    assert asyncio.run(drain(body)) == PAYLOAD
    assert body.seal() == {"CRC32": crc32_b64(PAYLOAD)}


def test_signed_chunks_are_decoded() -> None:
    sig = ";chunk-signature=" + "0" * 64
    framed = f"{len(PAYLOAD):x}{sig}\r\n".encode() + PAYLOAD + f"\r\n0{sig}\r\n\r\n".encode()
    headers = {
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": str(len(PAYLOAD)),
    }
    body = RequestBody(pieces(framed), headers)
    assert asyncio.run(drain(body)) == PAYLOAD
    assert body.seal() == {}


def test_wrong_trailing_checksum_is_bad_digest() -> None:
    framed = (
        f"{len(PAYLOAD):x}\r\n".encode()
        + PAYLOAD
        + b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    )
    headers = {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    body = RequestBody(pieces(framed), headers)
    asyncio.run(drain(body))
    with pytest.raises(BadDigest):
        body.seal()


def test_plain_body_sha256_and_length_checks() -> None:
    good = {
        "x-amz-content-sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "content-length": str(len(PAYLOAD)),
        "x-amz-checksum-crc32": crc32_b64(PAYLOAD),
    }
    body = RequestBody(pieces(PAYLOAD), good)
    asyncio.run(drain(body))
    assert body.seal() == {"CRC32": crc32_b64(PAYLOAD)}

    bad = RequestBody(pieces(PAYLOAD), {**good, "x-amz-content-sha256": "0" * 64})
    asyncio.run(drain(bad))
    with pytest.raises(XAmzContentSHA256Mismatch):
        bad.seal()

    short = RequestBody(pieces(PAYLOAD[:-1]), {"content-length": str(len(PAYLOAD))})
    asyncio.run(drain(short))
    with pytest.raises(IncompleteBody):
        short.seal()


def test_truncated_chunked_body_is_incomplete() -> None:
    framed = f"{len(PAYLOAD):x}\r\n".encode() + PAYLOAD[:100]
    body = RequestBody(pieces(framed), {"content-encoding": "aws-chunked"})
    with pytest.raises(IncompleteBody):
        asyncio.run(drain(body))


def test_large_body_is_batched_and_verified_off_the_event_loop() -> None:
    big = os.urandom(2 * BATCH + 4321)
    headers = {
        "x-amz-content-sha256": hashlib.sha256(big).hexdigest(),
        "content-length": str(len(big)),
        "content-md5": base64.b64encode(hashlib.md5(big, usedforsecurity=False).digest()).decode(),
        "x-amz-checksum-crc32": crc32_b64(big),
    }

    async def batches(body: RequestBody) -> list[bytes]:
        return [c async for c in body]

    body = RequestBody(pieces(big, 64 * 1024), headers)
    got = asyncio.run(batches(body))
    assert b"".join(got) == big
    assert [len(c) for c in got[:-1]] == [BATCH, BATCH]
    assert body.seal() == {"CRC32": crc32_b64(big)}

    corrupt = big[:-1] + bytes([big[-1] ^ 1])
    bad = RequestBody(pieces(corrupt, 64 * 1024), headers)
    asyncio.run(batches(bad))
    with pytest.raises(XAmzContentSHA256Mismatch):
        bad.seal()
