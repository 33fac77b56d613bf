"""The JSON records both object stores keep for buckets and multipart uploads.

A bucket record holds its creation time and region; an upload record its bucket, key and
attributes; a part record its ETag, size, checksums and the name of the file holding its bytes.
The embedded store (:mod:`.local`) and the fsspec store (:mod:`.fsspec_store`) write the same
records (JSON, never pickles), so one definition serves both; only where they are kept differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sageport.storage import files
from sageport.storage.objectstore import BucketInfo, ObjectAttrs, PartInfo, UploadInfo


def attrs_json(attrs: ObjectAttrs) -> dict[str, Any]:
    return {
        "content_type": attrs.content_type,
        "metadata": dict(attrs.metadata),
        "headers": dict(attrs.headers),
    }


def attrs_from_json(data: Mapping[str, Any]) -> ObjectAttrs:
    return ObjectAttrs(data["content_type"], data["metadata"], data["headers"])


def bucket_record(region: str) -> dict[str, Any]:
    """A new bucket's record, created now."""
    return {"created": files.now().isoformat(), "region": region}


def bucket_info(name: str, data: Mapping[str, Any]) -> BucketInfo:
    return BucketInfo(name, datetime.fromisoformat(data["created"]), data["region"])


def upload_record(upload_id: str, bucket: str, key: str, attrs: ObjectAttrs) -> dict[str, Any]:
    """A new multipart upload's record (``upload.json``), initiated now."""
    return {
        "upload_id": upload_id,
        "bucket": bucket,
        "key": key,
        "initiated": files.now().isoformat(),
        "attrs": attrs_json(attrs),
    }


def upload_info(data: Mapping[str, Any]) -> UploadInfo:
    return UploadInfo(
        data["upload_id"],
        data["bucket"],
        data["key"],
        datetime.fromisoformat(data["initiated"]),
        attrs_from_json(data["attrs"]),
    )


def part_record(number: int, name: str, sums: Mapping[str, Any]) -> dict[str, Any]:
    """A part's record (``<n>.json``): ``sums`` as a store's body writer reports them (size,
    etag, checksums); ``name`` the upload's file that holds the part's bytes."""
    return {
        "number": number,
        "etag": sums["etag"],
        "size": sums["size"],
        "last_modified": files.now().isoformat(),
        "checksums": dict(sums["checksums"]),
        "data": name,
    }


def part_info(data: Mapping[str, Any]) -> PartInfo:
    return PartInfo(
        data["number"],
        data["etag"],
        data["size"],
        datetime.fromisoformat(data["last_modified"]),
        data["checksums"],
    )
