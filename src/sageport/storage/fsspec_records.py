"""The records the fsspec object store keeps beside the bytes, and its key spelling.

Records are JSON (never pickles): an object's metadata (``.@m``, the attributes of
:func:`.records.attrs_json` beside ETag, time, checksums and the version of the bytes), and
the :class:`~.objectstore.ObjectInfo` it or the backend's own details give. Buckets and uploads
have the records of :mod:`.records`. Kept apart from :mod:`.fsspec_store` so the store reads as
its rules.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from sageport.storage import files
from sageport.storage import keys as keymap
from sageport.storage.fsspec_io import ident, modified
from sageport.storage.objectstore import ObjectAttrs, ObjectInfo
from sageport.storage.records import attrs_from_json, attrs_json


def encode_plain(key: str) -> list[str]:
    """Object-store spelling of a key: literal but for ``%``, control chars, reserved segments."""
    out = []
    for segment in key.split("/"):
        if segment in keymap.RESERVED:
            out.append(keymap.RESERVED[segment])
            continue
        chars: list[str] = []
        for ch in segment:
            if ch == "%" or ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
                chars.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
            else:
                chars.append(ch)
        out.append("".join(chars))
    return out


def decode_plain(parts: list[str]) -> str:
    """The key :func:`encode_plain` spelled as ``parts`` (lenient with foreign names)."""
    return "/".join(
        "" if p == keymap.RESERVED[""] else unquote_to_bytes(p).decode("utf-8", "surrogatepass")
        for p in parts
    )


class Sums:
    """MD5 (the ETag), CRC32 and length of a body, fed chunk by chunk."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.crc = 0
        self.size = 0

    def add(self, data: bytes) -> None:
        self.md5.update(data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


def loads(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


def object_record(
    attrs: ObjectAttrs, etag: str, checksums: Mapping[str, str], parts_count: int | None
) -> dict[str, Any]:
    return {
        **attrs_json(attrs),
        "etag": etag,
        "last_modified": files.now().isoformat(),
        "checksums": dict(checksums),
        "parts_count": parts_count,
    }


def described(
    bucket: str, key: str, found: Mapping[str, Any], record: Mapping[str, Any] | None
) -> ObjectInfo | None:
    """The object whose file has details ``found`` as its metadata record describes it; None
    if the record is for another version of the bytes (or missing: a file not written through
    sageport)."""
    if record is None or record.get("version") != ident(found):
        return None
    return ObjectInfo(
        bucket=bucket,
        key=key,
        size=int(found["size"]),
        etag=record["etag"],
        last_modified=datetime.fromisoformat(record["last_modified"]),
        attrs=attrs_from_json(record),
        checksums=record["checksums"],
        parts_count=record["parts_count"],
    )


def foreign(bucket: str, key: str, found: Mapping[str, Any]) -> ObjectInfo:
    """An object without a (current) record: what the backend itself says of the file."""
    tag = str(found.get("ETag") or found.get("etag") or "").strip('"')
    etag = tag or hashlib.md5(ident(found).encode(), usedforsecurity=False).hexdigest()
    content_type = str(found.get("ContentType") or "binary/octet-stream")
    return ObjectInfo(
        bucket=bucket,
        key=key,
        size=int(found["size"]),
        etag=etag,
        last_modified=modified(found) or datetime.fromtimestamp(0, UTC),
        attrs=ObjectAttrs(content_type),
        parts_count=int(tag.rsplit("-", 1)[1]) if "-" in tag else None,
    )
