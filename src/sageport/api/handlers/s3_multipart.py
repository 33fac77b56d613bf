"""S3 multipart uploads: create, upload part (or copy one), complete, abort, list parts and
uploads."""

from __future__ import annotations

import re
from typing import Any

from sageport.api.dispatch import RequestContext, operation
from sageport.api.handlers.s3_objects import (
    check_copy_source,
    checksum_members,
    object_attrs,
    parse_copy_source,
    quoted,
)
from sageport.errors import InvalidArgument, InvalidRange, InvalidRequestS3, MalformedXML
from sageport.storage.objectstore import ObjectStore

Params = dict[str, Any]
Result = dict[str, Any]

MAX_PART_NUMBER = 10000
#: S3's largest part, and so the largest source (or range of one) a part may copy
MAX_PART_SIZE = 5 * 1024**3
COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def _store(ctx: RequestContext) -> ObjectStore:
    store: ObjectStore = ctx.services.objects
    return store


@operation("CreateMultipartUpload")
async def create_multipart_upload(ctx: RequestContext, params: Params) -> Result:
    upload = await _store(ctx).create_upload(params["Bucket"], params["Key"], object_attrs(params))
    return {
        "Bucket": upload.bucket,
        "Key": upload.key,
        "UploadId": upload.upload_id,
        "ChecksumAlgorithm": params.get("ChecksumAlgorithm"),
    }


def _part_number(params: Params) -> int:
    number: int = params.get("PartNumber", 0)
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=str(number),
        )
    return number


@operation("UploadPart")
async def upload_part(ctx: RequestContext, params: Params) -> Result:
    number = _part_number(params)
    body = params["Body"]
    part = await _store(ctx).upload_part(
        params["Bucket"], params["Key"], params["UploadId"], number, body, seal=body.seal
    )
    return {"ETag": quoted(part.etag), **checksum_members(part.checksums)}


def copy_range(header: str | None, size: int) -> tuple[int | None, int | None]:
    """The inclusive bytes ``x-amz-copy-source-range`` names of a source of ``size`` bytes
    (None, None: the whole source). Unlike GET's ``Range``, S3 takes only ``bytes=first-last``
    here, and refuses rather than clamps a range that runs past the end."""
    if header is None:
        return None, None
    found = COPY_RANGE.fullmatch(header.strip())
    if found is None or int(found[1]) > int(found[2]):
        raise InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=header,
        )
    first, last = int(found[1]), int(found[2])
    if last >= size:
        raise InvalidRange(
            f"Range specified is not valid for source object of size: {size}",
            ActualObjectSize=str(size),
            RangeRequested=header,
        )
    return first, last


@operation("UploadPartCopy")
async def upload_part_copy(ctx: RequestContext, params: Params) -> Result:
    number = _part_number(params)
    src_bucket, src_key = parse_copy_source(params["CopySource"])
    store = _store(ctx)
    source = await store.head_object(src_bucket, src_key)
    check_copy_source(source, params)
    first, last = copy_range(params.get("CopySourceRange"), source.size)
    length = source.size if first is None or last is None else last - first + 1
    if length > MAX_PART_SIZE:
        raise InvalidRequestS3(
            "The specified copy source is larger than the maximum allowable size for a copy "
            f"source: {MAX_PART_SIZE}"
        )
    part, _ = await store.upload_part_copy(
        params["Bucket"], params["Key"], params["UploadId"], number, src_bucket, src_key,
        first, last,
    )  # fmt: skip
    result = {"ETag": quoted(part.etag), "LastModified": part.last_modified}
    return {"CopyPartResult": {**result, **checksum_members(part.checksums)}}


@operation("CompleteMultipartUpload")
async def complete_multipart_upload(ctx: RequestContext, params: Params) -> Result:
    spec = params.get("MultipartUpload") or {}
    parts = spec.get("Parts")
    if not parts:
        raise MalformedXML()
    pairs = [(int(p.get("PartNumber", 0)), str(p.get("ETag", ""))) for p in parts]
    info = await _store(ctx).complete_upload(
        params["Bucket"], params["Key"], params["UploadId"], pairs
    )
    return {
        "Location": f"/{info.bucket}/{info.key}",
        "Bucket": info.bucket,
        "Key": info.key,
        "ETag": quoted(info.etag),
    }


@operation("AbortMultipartUpload")
async def abort_multipart_upload(ctx: RequestContext, params: Params) -> Result:
    await _store(ctx).abort_upload(params["Bucket"], params["Key"], params["UploadId"])
    return {}


@operation("ListParts")
async def list_parts(ctx: RequestContext, params: Params) -> Result:
    parts = await _store(ctx).list_parts(params["Bucket"], params["Key"], params["UploadId"])
    marker = params.get("PartNumberMarker") or 0
    max_parts = min(params.get("MaxParts", 1000), 1000)
    after = [p for p in parts if p.number > marker]
    page = after[:max_parts]
    result: Result = {
        "Bucket": params["Bucket"],
        "Key": params["Key"],
        "UploadId": params["UploadId"],
        "PartNumberMarker": marker,
        "MaxParts": max_parts,
        "IsTruncated": len(after) > len(page),
        "Parts": [
            {
                "PartNumber": p.number,
                "LastModified": p.last_modified,
                "ETag": quoted(p.etag),
                "Size": p.size,
                **checksum_members(p.checksums),
            }
            for p in page
        ],
        "StorageClass": "STANDARD",
    }
    if result["IsTruncated"] and page:
        result["NextPartNumberMarker"] = page[-1].number
    return result


@operation("ListMultipartUploads")
async def list_multipart_uploads(ctx: RequestContext, params: Params) -> Result:
    uploads = await _store(ctx).list_uploads(params["Bucket"])
    prefix = params.get("Prefix") or ""
    return {
        "Bucket": params["Bucket"],
        "Prefix": prefix,
        "MaxUploads": 1000,
        "IsTruncated": False,
        "Uploads": [
            {
                "Key": u.key,
                "UploadId": u.upload_id,
                "Initiated": u.initiated,
                "StorageClass": "STANDARD",
            }
            for u in uploads
            if u.key.startswith(prefix)
        ],
    }
