"""S3 bucket operations: list, create, head, delete, location."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from sageport.api.dispatch import RequestContext, operation
from sageport.errors import InvalidBucketName
from sageport.storage.objectstore import ObjectStore

Params = dict[str, Any]
Result = dict[str, Any]

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _store(ctx: RequestContext) -> ObjectStore:
    store: ObjectStore = ctx.services.objects
    return store


def check_bucket_name(name: str) -> None:
    """S3's naming rules (3-63 chars, lower case, digits, dots, hyphens, not an IP)."""
    bad = (
        not BUCKET_NAME.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or name.startswith(("xn--", "sthree-"))
        or name.endswith(("-s3alias", "--ol-s3", "--x-s3"))
    )
    if not bad:
        try:
            ipaddress.IPv4Address(name)
            bad = True
        except ValueError:
            pass
    if bad:
        raise InvalidBucketName(resource=f"/{name}", BucketName=name)


def owner(ctx: RequestContext) -> Result:
    return {"ID": ctx.account_id, "DisplayName": "sageport"}


@operation("ListBuckets")
async def list_buckets(ctx: RequestContext, params: Params) -> Result:
    buckets = await _store(ctx).list_buckets()
    prefix = params.get("Prefix") or ""
    return {
        "Buckets": [
            {"Name": b.name, "CreationDate": b.created, "BucketRegion": b.region}
            for b in buckets
            if b.name.startswith(prefix)
        ],
        "Owner": owner(ctx),
        "Prefix": params.get("Prefix"),
    }


@operation("CreateBucket")
async def create_bucket(ctx: RequestContext, params: Params) -> Result:
    name = params["Bucket"]
    check_bucket_name(name)
    config = params.get("CreateBucketConfiguration") or {}
    region = config.get("LocationConstraint") or ctx.region
    await _store(ctx).create_bucket(name, region)
    return {"Location": f"/{name}", "BucketArn": f"arn:aws:s3:::{name}"}


@operation("HeadBucket")
async def head_bucket(ctx: RequestContext, params: Params) -> Result:
    info = await _store(ctx).head_bucket(params["Bucket"])
    return {"BucketRegion": info.region}


@operation("DeleteBucket")
async def delete_bucket(ctx: RequestContext, params: Params) -> Result:
    await _store(ctx).delete_bucket(params["Bucket"])
    return {}


@operation("GetBucketLocation")
async def get_bucket_location(ctx: RequestContext, params: Params) -> Result:
    info = await _store(ctx).head_bucket(params["Bucket"])
    # S3 answers an empty constraint for us-east-1
    return {"LocationConstraint": None if info.region == "us-east-1" else info.region}
