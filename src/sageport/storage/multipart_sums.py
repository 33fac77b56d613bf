"""The checksums of a multipart object, computed from its parts' without reading the bytes again.

S3's ETag of a multipart object is the MD5 of the parts' binary MD5s, a dash, and the part
count. The whole object's CRC32 follows from the parts' CRC32s and lengths by zlib's
``crc32_combine`` (GF(2) matrix powers, O(log n) per part), which Python's zlib does not
expose; so a store that assembles parts server-side (s3fs ``merge``) still reports the CRC32
of the whole object, as the embedded store does.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

_POLY = 0xEDB88320  # CRC-32 (IEEE), reflected


def multipart_etag(part_md5s: list[str]) -> str:
    """``md5(md5(part1) + md5(part2) + ...)-N`` from the parts' hex MD5s."""
    digest = hashlib.md5(usedforsecurity=False)
    for md5 in part_md5s:
        digest.update(bytes.fromhex(md5))
    return f"{digest.hexdigest()}-{len(part_md5s)}"


def _times(matrix: list[int], vector: int) -> int:
    out = 0
    row = 0
    while vector:
        if vector & 1:
            out ^= matrix[row]
        vector >>= 1
        row += 1
    return out


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's algorithm)."""
    if len2 <= 0:
        return crc1
    odd = [_POLY] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        # apply len2 zero bytes to crc1, one bit of len2 at a time
        even = _square(odd)
        if len2 & 1:
            crc1 = _times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _square(even)
        if len2 & 1:
            crc1 = _times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def combine_crc32(parts: Iterable[tuple[str, int]]) -> str:
    """The base64 CRC32 of the concatenation of parts given as (base64 CRC32, length)."""
    crc = 0
    for b64, length in parts:
        crc = crc32_combine(crc, int.from_bytes(base64.b64decode(b64), "big"), length)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()
