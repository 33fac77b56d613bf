"""The records the fsspec object store keeps beside the bytes, and its key spelling.

Records are JSON (never pickles): an object's metadata (``.@m``), a bucket, a multipart upload
and its parts. Kept apart from :mod:`.fsspec_store` so the store reads as its rules.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from sageport.storage import files
from sageport.storage import keys as keymap
from sageport.storage.objectstore import ObjectAttrs, PartInfo, UploadInfo


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


def attrs_json(attrs: ObjectAttrs) -> dict[str, Any]:
    return {
        "content_type": attrs.content_type,
        "metadata": dict(attrs.metadata),
        "headers": dict(attrs.headers),
    }


def attrs_from_json(data: dict[str, Any]) -> ObjectAttrs:
    return ObjectAttrs(data["content_type"], data["metadata"], data["headers"])


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


def part_info(data: dict[str, Any]) -> PartInfo:
    return PartInfo(
        data["number"],
        data["etag"],
        data["size"],
        datetime.fromisoformat(data["last_modified"]),
        data["checksums"],
    )


def upload_info(data: dict[str, Any]) -> UploadInfo:
    return UploadInfo(
        data["upload_id"],
        data["bucket"],
        data["key"],
        datetime.fromisoformat(data["initiated"]),
        attrs_from_json(data["attrs"]),
    )
