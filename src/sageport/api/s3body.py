"""An S3 request body, streamed: aws-chunked decoding and payload integrity checks.

botocore signs S3 bodies over http:// with the body's SHA-256 in ``x-amz-content-sha256`` and
sends a ``x-amz-checksum-crc32`` header; over https, and from other SDKs, bodies may come
``aws-chunked`` (``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` with the checksum in a trailer, or
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` with per-chunk signatures, which we do not re-verify:
the request signature already bound the seed). Either way the store sees only the decoded
bytes, and :meth:`RequestBody.seal` — called by the store after the last byte and before the
object becomes visible — raises if the SHA-256, Content-MD5, a declared checksum or the length
does not match, so a corrupt upload never becomes an object.

Throughput: the socket delivers a large body in pieces of tens of KiB. The stream hands them on
in batches of :data:`BATCH` bytes and hashes each batch in a worker thread while the event loop
goes on receiving the next one (hashlib and zlib release the GIL), so verifying a body costs
little wall time on top of receiving it; the store's own md5 runs in parallel on another
thread. Small bodies are hashed inline, where a thread hop would cost more than the hashing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from sageport.errors import (
    BadDigest,
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    XAmzContentSHA256Mismatch,
)

MAX_SINGLE_UPLOAD = 5 * 1024**3
HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHECKSUM_PREFIX = "x-amz-checksum-"
#: headers that share the prefix but carry no checksum value
NOT_CHECKSUMS = {"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"}
#: bytes handed on (and hashed) at a time; big enough that per-batch overhead vanishes
BATCH = 4 * 1024 * 1024
#: batches smaller than this are hashed on the event loop (a thread hop costs ~50 µs)
INLINE_HASH = 256 * 1024


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _update(digests: list[_Digest], data: bytes) -> None:
    for digest in digests:
        digest.update(data)


def _digest_for(algorithm: str) -> _Digest | None:
    """A running digest for a checksum algorithm we can verify (others are only stored)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in ("sha1", "sha256", "sha512"):
        return hashlib.new(algorithm)
    return None


class RequestBody:
    """The decoded payload of an S3 request, as an async byte stream with checks."""

    def __init__(self, stream: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self._raw = stream
        sha = headers.get("x-amz-content-sha256", "")
        encoding = headers.get("content-encoding", "")
        self.chunked = sha.startswith("STREAMING-") or "aws-chunked" in encoding
        self._sha256 = hashlib.sha256() if HEX_SHA256.match(sha) else None
        self._expected_sha256 = sha
        md5 = headers.get("content-md5")
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._expected_md5 = md5 or ""
        declared = headers.get("x-amz-decoded-content-length") if self.chunked else None
        declared = declared or (None if self.chunked else headers.get("content-length"))
        try:
            self.length = int(declared) if declared is not None else None
        except ValueError:
            raise InvalidArgument("Invalid Content-Length") from None
        if self.length is not None and self.length > MAX_SINGLE_UPLOAD:
            raise EntityTooLarge(
                ProposedSize=str(self.length), MaxSizeAllowed=str(MAX_SINGLE_UPLOAD)
            )
        # checksums declared in headers now, or announced for the trailer
        self._expected: dict[str, str] = {
            k[len(CHECKSUM_PREFIX) :]: v
            for k, v in headers.items()
            if k.startswith(CHECKSUM_PREFIX) and k not in NOT_CHECKSUMS
        }
        trailer = headers.get("x-amz-trailer", "").strip().lower()
        announced = [trailer[len(CHECKSUM_PREFIX) :]] if trailer.startswith(CHECKSUM_PREFIX) else []
        self._digests: dict[str, Any] = {}
        for algorithm in [*self._expected, *announced]:
            digest = _digest_for(algorithm)
            if digest is not None:
                self._digests[algorithm] = digest
        self.trailers: dict[str, str] = {}
        self.received = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        source = self._dechunk() if self.chunked else self._plain()
        digests: list[_Digest] = [*self._digests.values()]
        digests += [d for d in (self._sha256, self._md5) if d is not None]
        loop = asyncio.get_running_loop()
        hashing: asyncio.Future[None] | None = None
        try:
            async for batch in self._batches(source):
                if hashing is not None:
                    await hashing  # digests must see the batches in order
                    hashing = None
                if len(batch) < INLINE_HASH:
                    _update(digests, batch)
                else:
                    hashing = loop.run_in_executor(None, _update, digests, batch)
                yield batch
            if hashing is not None:
                await hashing
                hashing = None
        finally:
            if hashing is not None:
                await asyncio.wait([hashing])  # never leave a worker on a closed stream

    async def _batches(self, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Join the socket's small pieces into batches of about :data:`BATCH` bytes."""
        pieces: list[bytes] = []
        size = 0
        async for chunk in source:
            self.received += len(chunk)
            if self.received > MAX_SINGLE_UPLOAD:
                raise EntityTooLarge(MaxSizeAllowed=str(MAX_SINGLE_UPLOAD))
            pieces.append(chunk)
            size += len(chunk)
            if size >= BATCH:
                yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                size = 0
        if pieces:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def _plain(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw:
            if chunk:
                yield chunk

    async def _dechunk(self) -> AsyncIterator[bytes]:
        buf = bytearray()
        raw = self._raw.__aiter__()

        async def fill() -> bool:
            try:
                buf.extend(await raw.__anext__())
            except StopAsyncIteration:
                return False
            return True

        while True:
            while (end := buf.find(b"\r\n")) < 0:
                if not await fill():
                    raise IncompleteBody()
            header = bytes(buf[:end]).split(b";", 1)[0].strip()
            del buf[: end + 2]
            try:
                size = int(header, 16)
            except ValueError:
                raise InvalidArgument("Invalid aws-chunked chunk header") from None
            if size == 0:
                break
            while size:
                if not buf and not await fill():
                    raise IncompleteBody()
                take = min(size, len(buf))
                yield bytes(buf[:take])
                del buf[:take]
                size -= take
            while len(buf) < 2:
                if not await fill():
                    raise IncompleteBody()
            del buf[:2]
        while await fill():
            pass
        for line in bytes(buf).split(b"\r\n"):
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            if sep:
                self.trailers[name.strip().lower()] = value.strip()

    def seal(self) -> dict[str, str]:
        """Verify what the client declared; the checksums to store (``"CRC32"`` → base64)."""
        if self.length is not None and self.received != self.length:
            raise IncompleteBody()
        if self._sha256 is not None and self._sha256.hexdigest() != self._expected_sha256:
            raise XAmzContentSHA256Mismatch(
                ClientComputedContentSHA256=self._expected_sha256,
                S3ComputedContentSHA256=self._sha256.hexdigest(),
            )
        if self._md5 is not None:
            actual = base64.b64encode(self._md5.digest()).decode()
            if actual != self._expected_md5:
                raise BadDigest(ExpectedDigest=self._expected_md5, CalculatedDigest=actual)
        expected = dict(self._expected)
        for name, value in self.trailers.items():
            if name.startswith(CHECKSUM_PREFIX):
                expected[name[len(CHECKSUM_PREFIX) :]] = value
        out: dict[str, str] = {}
        for algorithm, value in expected.items():
            digest = self._digests.get(algorithm)
            if digest is not None:
                actual = base64.b64encode(digest.digest()).decode()
                if actual != value:
                    raise BadDigest(
                        f"The {algorithm.upper()} you specified did not match the calculated "
                        "checksum."
                    )
            out[algorithm.upper()] = value
        return out
