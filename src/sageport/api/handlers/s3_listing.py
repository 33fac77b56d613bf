"""S3 object listings: ListObjectsV2 (and v1 for old clients).

A continuation token is the last key or common prefix of the previous page, base64-encoded so
clients treat it as opaque; listing resumes strictly after it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from sageport.api.dispatch import RequestContext, operation
from sageport.api.handlers.s3_objects import quoted
from sageport.errors import InvalidArgument
from sageport.storage.objectstore import ObjectListing, ObjectStore

Params = dict[str, Any]
Result = dict[str, Any]

MAX_KEYS = 1000


def _store(ctx: RequestContext) -> ObjectStore:
    store: ObjectStore = ctx.services.objects
    return store


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8", "surrogateescape")).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            "The continuation token provided is incorrect", ArgumentName="continuation-token"
        ) from None


def _max_keys(params: Params) -> int:
    value = params.get("MaxKeys", MAX_KEYS)
    if value < 0:
        raise InvalidArgument(
            "Argument maxKeys must be an integer between 0 and 2147483647", ArgumentName="maxKeys"
        )
    return int(min(value, MAX_KEYS))


def _entries(listing: ObjectListing, url: bool) -> tuple[list[Result], list[Result]]:
    enc = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
    contents = [
        {
            "Key": enc(o.key),
            "LastModified": o.last_modified,
            "ETag": quoted(o.etag),
            "Size": o.size,
            "StorageClass": o.attrs.headers.get("StorageClass", "STANDARD"),
        }
        for o in listing.objects
    ]
    prefixes = [{"Prefix": enc(p)} for p in listing.common_prefixes]
    return contents, prefixes


@operation("ListObjectsV2")
async def list_objects_v2(ctx: RequestContext, params: Params) -> Result:
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or ""
    start_after = params.get("StartAfter") or ""
    token = params.get("ContinuationToken")
    after = max(start_after, decode_token(token)) if token else start_after
    max_keys = _max_keys(params)
    listing = await _store(ctx).list_objects(params["Bucket"], prefix, delimiter, after, max_keys)
    url = params.get("EncodingType") == "url"
    enc = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
    contents, prefixes = _entries(listing, url)
    result: Result = {
        "Name": params["Bucket"],
        "Prefix": enc(prefix),
        "Delimiter": enc(delimiter) if delimiter else None,
        "MaxKeys": max_keys,
        "KeyCount": len(contents) + len(prefixes),
        "IsTruncated": listing.is_truncated,
        "Contents": contents,
        "CommonPrefixes": prefixes,
        "ContinuationToken": token,
        "StartAfter": enc(start_after) if start_after else None,
        "EncodingType": params.get("EncodingType"),
    }
    if listing.is_truncated and listing.last is not None:
        result["NextContinuationToken"] = encode_token(listing.last)
    return result


@operation("ListObjects")
async def list_objects(ctx: RequestContext, params: Params) -> Result:
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or ""
    marker = params.get("Marker") or ""
    max_keys = _max_keys(params)
    listing = await _store(ctx).list_objects(params["Bucket"], prefix, delimiter, marker, max_keys)
    url = params.get("EncodingType") == "url"
    enc = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
    contents, prefixes = _entries(listing, url)
    result: Result = {
        "Name": params["Bucket"],
        "Prefix": enc(prefix),
        "Marker": enc(marker),
        "Delimiter": enc(delimiter) if delimiter else None,
        "MaxKeys": max_keys,
        "IsTruncated": listing.is_truncated,
        "Contents": contents,
        "CommonPrefixes": prefixes,
        "EncodingType": params.get("EncodingType"),
    }
    if listing.is_truncated and listing.last is not None and delimiter:
        result["NextMarker"] = enc(listing.last)
    return result
