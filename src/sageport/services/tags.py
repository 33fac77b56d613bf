"""AddTags, ListTags, DeleteTags on any stored SageMaker resource, addressed by ARN."""

from __future__ import annotations

from typing import Any

from sageport.clock import Clock
from sageport.errors import ValidationException
from sageport.services import listing
from sageport.store import resources, tags
from sageport.store.database import Connection, Database

#: SageMaker's per-resource tag limit.
MAX_TAGS = 50
DEFAULT_LIST_MAX = 50


class TagService:
    """Tags of resources in the generic resource table; a resource's tags die with it."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        pairs = tag_pairs(params["Tags"])
        with self._db.begin() as conn:
            _require(conn, arn)
            new_keys = {k for k, _ in pairs} - tags.keys(conn, arn)
            if tags.count(conn, arn) + len(new_keys) > MAX_TAGS:
                raise ValidationException(f"Resource {arn} cannot have more than {MAX_TAGS} tags.")
            tags.put(conn, arn, pairs)
            stored = tags.list_tags(conn, arn)
        return {"Tags": [{"Key": k, "Value": v} for k, v in stored]}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        size = int(params.get("MaxResults") or DEFAULT_LIST_MAX)
        offset = listing.decode_token(params.get("NextToken"))
        with self._db.read() as conn:
            _require(conn, arn)
            stored = tags.list_tags(conn, arn, limit=size + 1, offset=offset)
        result: dict[str, Any] = {"Tags": [{"Key": k, "Value": v} for k, v in stored[:size]]}
        if len(stored) > size:
            result["NextToken"] = listing.encode_token(offset + size)
        return result

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["ResourceArn"]
        with self._db.begin() as conn:
            _require(conn, arn)
            tags.remove(conn, arn, params["TagKeys"])
        return {}


def tag_pairs(tag_list: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(key, value) pairs of a request's ``Tags``; ``Value`` is optional on the wire."""
    return [(t["Key"], t.get("Value", "")) for t in tag_list]


def _require(conn: Connection, arn: str) -> None:
    if resources.get_by_arn(conn, arn) is None:
        raise ValidationException(f'Could not find resource "{arn}".')
