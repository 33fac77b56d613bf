"""S3 multipart uploads: create, upload part, complete, abort, list parts and uploads."""

from __future__ import annotations

from typing import Any

from sageport.api.dispatch import RequestContext, operation
from sageport.api.handlers.s3_objects import checksum_members, object_attrs, quoted
from sageport.errors import InvalidArgument, MalformedXML
from sageport.storage.objectstore import ObjectStore

Params = dict[str, Any]
Result = dict[str, Any]

MAX_PART_NUMBER = 10000


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


@operation("UploadPart")
async def upload_part(ctx: RequestContext, params: Params) -> Result:
    number = params.get("PartNumber", 0)
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=str(number),
        )
    body = params["Body"]
    part = await _store(ctx).upload_part(
        params["Bucket"], params["Key"], params["UploadId"], number, body, seal=body.seal
    )
    return {"ETag": quoted(part.etag), **checksum_members(part.checksums)}


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
