"""Map S3 keys to relative file paths and back, safely and reversibly.

An S3 key is any UTF-8 string up to 1024 bytes: ``../../etc/passwd``, ``a/../b``, ``a//b`` and
``.`` are all ordinary keys. Joining a key onto a folder would let such keys escape the store
or collide, so each ``/``-separated segment is percent-encoded: only ``[A-Za-z0-9._-]`` stay
literal, and the segments ``""``, ``"."`` and ``".."`` get reserved spellings. An encoded
name therefore never contains ``/``, ``@`` or ``+`` and is never ``.`` or ``..``.

Keys keep their folder structure on disk (``data/train/x.csv`` lives under ``data/train/``)
so a prefix listing only walks the folders under that prefix and a human can find files.
A segment whose encoding is longer than a file name may be is split over several folders,
each non-last piece marked with a trailing ``+``.

The last segment names two files: ``<name>.@m`` (the metadata sidecar, whose presence *is*
the object) and ``<name>.@<version>`` (the bytes). Folder names never contain ``@``, so an
object ``a`` and an object ``a/b`` live side by side.

A bucket is one folder (or one path segment) under a store's root: :func:`check_bucket` refuses
the names that could not be one.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from sageport.errors import NoSuchBucket

SAFE = frozenset(string.ascii_letters + string.digits + "-_.")
RESERVED = {"": "%", ".": "%2E", "..": "%2E%2E"}
#: well below the 255-byte limit of common file systems, leaving room for the suffixes
MAX_NAME = 200
CONTINUED = "+"
META_SUFFIX = ".@m"


def _units(segment: str) -> list[str]:
    """The encoded segment as indivisible units (a literal char or one ``%XX`` escape)."""
    if segment in RESERVED:
        return [RESERVED[segment]]
    out: list[str] = []
    for ch in segment:
        if ch in SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return out


def encode_key(key: str) -> list[str]:
    """The path parts of ``key``: folders, then the base name of the object's files."""
    parts: list[str] = []
    for segment in key.split("/"):
        units = _units(segment)
        piece = ""
        for unit in units:
            if len(piece) + len(unit) > MAX_NAME:
                parts.append(piece + CONTINUED)
                piece = ""
            piece += unit
        parts.append(piece)
    return parts


def decode_parts(parts: list[str]) -> str:
    """The key whose :func:`encode_key` is ``parts`` (inverse of it)."""
    segments: list[str] = []
    current = ""
    for part in parts:
        if part.endswith(CONTINUED):
            current += part[: -len(CONTINUED)]
            continue
        segments.append(current + part)
        current = ""
    decoded = []
    for seg in segments:
        if seg == RESERVED[""]:
            decoded.append("")
        else:
            decoded.append(unquote_to_bytes(seg).decode("utf-8", "surrogatepass"))
    return "/".join(decoded)


def folder_parts(prefix: str, encode: Callable[[str], list[str]] = encode_key) -> list[str]:
    """The folders every key starting with ``prefix`` lives under (its complete segments),
    spelled by ``encode`` (a store's key → path parts)."""
    head, sep, _ = prefix.rpartition("/")
    if not sep:
        return []
    return encode(head + "/x")[:-1]


def check_bucket(bucket: str) -> None:
    """Raise NoSuchBucket for a name that is no single folder (empty, ``/``, leading ``.``, NUL).

    The S3 protocol refuses invalid bucket names before a store sees them; this keeps a store
    safe on its own (``.uploads``, ``.sageport`` and ``..`` are never buckets).
    """
    if not bucket or "/" in bucket or bucket.startswith(".") or "\x00" in bucket:
        raise NoSuchBucket(resource=f"/{bucket}", BucketName=bucket)
