"""S3 object operations: put, get (ranges, conditions), head, delete, delete many, copy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

from sageport.api.dispatch import RequestContext, operation
from sageport.errors import (
    InvalidArgument,
    InvalidRange,
    InvalidRequestS3,
    KeyTooLong,
    MalformedXML,
    NotModified,
    PreconditionFailed,
    S3Error,
)
from sageport.storage.objectstore import ObjectAttrs, ObjectInfo, ObjectStore

#: S3's limit on a key (UTF-8 bytes), as ``api.s3`` applies it to request paths
MAX_KEY_BYTES = 1024

Params = dict[str, Any]
Result = dict[str, Any]

DEFAULT_CONTENT_TYPE = "binary/octet-stream"
#: request members kept with the object and returned on GET/HEAD as they came
STORED_HEADERS = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
    "StorageClass",
    "WebsiteRedirectLocation",
)


def _store(ctx: RequestContext) -> ObjectStore:
    store: ObjectStore = ctx.services.objects
    return store


def quoted(etag: str) -> str:
    return f'"{etag}"'


def object_attrs(params: Params) -> ObjectAttrs:
    """The attributes a PutObject/CreateMultipartUpload/CopyObject request sets."""
    headers: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = params.get(name)
        if value is None:
            continue
        if name == "ContentEncoding":
            # aws-chunked is the transfer framing, not a property of the object
            kept = [e.strip() for e in str(value).split(",") if e.strip() != "aws-chunked"]
            value = ",".join(kept)
            if not value:
                continue
        if isinstance(value, datetime):
            value = format_datetime(value, usegmt=True)
        headers[name] = "true" if value is True else str(value)
    metadata = {k.lower(): v for k, v in (params.get("Metadata") or {}).items()}
    return ObjectAttrs(params.get("ContentType") or DEFAULT_CONTENT_TYPE, metadata, headers)


def checksum_members(checksums: Mapping[str, str]) -> Result:
    """``{"CRC32": v}`` → ``{"ChecksumCRC32": v}`` (the model's member names)."""
    return {f"Checksum{alg}": value for alg, value in checksums.items()}


def describe(info: ObjectInfo) -> Result:
    """GET/HEAD response members of an object (without body or range)."""
    out: Result = {
        "ETag": quoted(info.etag),
        "LastModified": info.last_modified,
        "ContentLength": info.size,
        "ContentType": info.attrs.content_type,
        "AcceptRanges": "bytes",
        "Metadata": dict(info.attrs.metadata),
    }
    out.update(info.attrs.headers)
    return out


def _check_conditions(info: ObjectInfo, params: Params) -> None:
    etag = quoted(info.etag)
    if_match = params.get("IfMatch")
    if if_match is not None and if_match.strip() not in ("*", etag, info.etag):
        raise PreconditionFailed(Condition="If-Match")
    unmodified = params.get("IfUnmodifiedSince")
    if if_match is None and unmodified is not None and info.last_modified > unmodified:
        raise PreconditionFailed(Condition="If-Unmodified-Since")
    if_none = params.get("IfNoneMatch")
    if if_none is not None and if_none.strip() in ("*", etag, info.etag):
        raise NotModified()
    modified = params.get("IfModifiedSince")
    if (
        if_none is None
        and modified is not None
        and info.last_modified.replace(microsecond=0) <= modified
    ):
        raise NotModified()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks of an object of ``size`` bytes.

    ``None`` means "the whole object" (S3 ignores a header it cannot parse); an unsatisfiable
    range is ``InvalidRange``.
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_s:
            n = int(last_s)
            if n == 0:
                raise InvalidRange(ActualObjectSize=str(size), RangeRequested=header)
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first >= size:
        raise InvalidRange(ActualObjectSize=str(size), RangeRequested=header)
    if last < first:
        return None
    return first, min(last, size - 1)


@operation("PutObject")
async def put_object(ctx: RequestContext, params: Params) -> Result:
    body = params["Body"]
    info = await _store(ctx).put_object(
        params["Bucket"], params["Key"], body, object_attrs(params), seal=body.seal
    )
    return {"ETag": quoted(info.etag), **checksum_members(info.checksums), **_sse(info)}


def _sse(info: ObjectInfo) -> Result:
    keep = ("ServerSideEncryption", "SSEKMSKeyId", "BucketKeyEnabled")
    return {k: v for k, v in info.attrs.headers.items() if k in keep}


@operation("GetObject")
async def get_object(ctx: RequestContext, params: Params) -> Result:
    store = _store(ctx)
    info = await store.head_object(params["Bucket"], params["Key"])
    _check_conditions(info, params)
    wanted = parse_range(params["Range"], info.size) if params.get("Range") else None
    first, last = wanted if wanted else (None, None)
    opened = await store.get_object(params["Bucket"], params["Key"], first, last)
    info = opened.info
    out = describe(info)
    out["Body"] = opened.body
    if wanted:
        out["ContentLength"] = opened.end - opened.start + 1
        out["ContentRange"] = f"bytes {opened.start}-{opened.end}/{info.size}"
    elif params.get("ChecksumMode") == "ENABLED":
        # full-object checksums only: they would not match a range
        out.update(checksum_members(info.checksums))
    for member in ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage"):
        override = params.get(f"Response{member}")
        if override:
            out[member] = override
    if params.get("ResponseContentType"):
        out["ContentType"] = params["ResponseContentType"]
    return out


@operation("HeadObject")
async def head_object(ctx: RequestContext, params: Params) -> Result:
    info = await _store(ctx).head_object(params["Bucket"], params["Key"])
    _check_conditions(info, params)
    out = describe(info)
    if params.get("ChecksumMode") == "ENABLED":
        out.update(checksum_members(info.checksums))
    if info.parts_count and params.get("PartNumber"):
        out["PartsCount"] = info.parts_count
    return out


@operation("DeleteObject")
async def delete_object(ctx: RequestContext, params: Params) -> Result:
    await _store(ctx).delete_object(params["Bucket"], params["Key"])
    return {}


@operation("DeleteObjects")
async def delete_objects(ctx: RequestContext, params: Params) -> Result:
    spec = params.get("Delete")
    if not spec or "Objects" not in spec:
        raise MalformedXML()
    if len(spec["Objects"]) > 1000:
        raise MalformedXML("You may delete at most 1000 objects per request")
    store = _store(ctx)
    await store.head_bucket(params["Bucket"])
    deleted: list[Result] = []
    errors: list[Result] = []
    for item in spec["Objects"]:
        key = item.get("Key", "")
        try:
            if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                # the XML's keys never passed the URL checks of a single-object request
                raise KeyTooLong(Size=str(len(key.encode("utf-8", "surrogatepass"))))
            await store.delete_object(params["Bucket"], key)
        except S3Error as err:
            errors.append({"Key": key, "Code": err.code, "Message": err.message})
            continue
        if not spec.get("Quiet"):
            deleted.append({"Key": key})
    return {"Deleted": deleted, "Errors": errors}


def parse_copy_source(value: str) -> tuple[str, str]:
    """``bucket/key`` (URL-encoded, optional leading ``/`` and ``?versionId=``) → parts."""
    source = value.split("?versionId=", 1)[0]
    bucket, _, key = unquote(source).lstrip("/").partition("/")
    if not bucket or not key:
        raise InvalidArgument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    return bucket, key


def check_copy_source(source: ObjectInfo, params: Params) -> None:
    """The ``x-amz-copy-source-if-*`` conditions of a CopyObject or UploadPartCopy, as S3
    applies them: any that fails is 412 PreconditionFailed (never 304); If-Unmodified-Since
    counts only without If-Match, If-Modified-Since only without If-None-Match."""
    etags = ("*", quoted(source.etag), source.etag)
    match = params.get("CopySourceIfMatch")
    if match is not None and match.strip() not in etags:
        raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
    unmodified = params.get("CopySourceIfUnmodifiedSince")
    if match is None and unmodified is not None and source.last_modified > unmodified:
        raise PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
    none_match = params.get("CopySourceIfNoneMatch")
    if none_match is not None and none_match.strip() in etags:
        raise PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
    modified = params.get("CopySourceIfModifiedSince")
    if (
        none_match is None
        and modified is not None
        and source.last_modified.replace(microsecond=0) <= modified
    ):
        raise PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")


@operation("CopyObject")
async def copy_object(ctx: RequestContext, params: Params) -> Result:
    src_bucket, src_key = parse_copy_source(params["CopySource"])
    replace = params.get("MetadataDirective", "COPY") == "REPLACE"
    if (src_bucket, src_key) == (params["Bucket"], params["Key"]) and not replace:
        raise InvalidRequestS3(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes."
        )
    store = _store(ctx)
    check_copy_source(await store.head_object(src_bucket, src_key), params)
    attrs = object_attrs(params) if replace else None
    info = await store.copy_object(src_bucket, src_key, params["Bucket"], params["Key"], attrs)
    result = {"ETag": quoted(info.etag), "LastModified": info.last_modified}
    result.update(checksum_members(info.checksums))
    return {"CopyObjectResult": result, **_sse(info)}
