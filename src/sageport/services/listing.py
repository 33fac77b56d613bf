"""The List* semantics every SageMaker resource shares, in one place.

``NameContains``, ``CreationTimeBefore``/``After``, ``LastModifiedTimeBefore``/``After``,
``StatusEquals``, ``SortBy`` (``Name`` | ``CreationTime`` | ``Status``), ``SortOrder`` and
``MaxResults``/``NextToken``. SageMaker's defaults: newest first, ten per page. The token is
opaque to clients (base64 of a small JSON document); one we did not issue is a
``ValidationException``, as in SageMaker.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from sageport.errors import ValidationException
from sageport.store import resources
from sageport.store.database import Database
from sageport.store.resources import Resource, ResourceFilter, SortKey

T = TypeVar("T")

DEFAULT_MAX_RESULTS = 10

SORT_KEYS: Mapping[str, SortKey] = {
    "Name": "name",
    "CreationTime": "creation_time",
    "Status": "status",
}


def encode_token(offset: int) -> str:
    raw = json.dumps({"offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str | None) -> int:
    """The offset a token stands for (0 for none); raises ``ValidationException``."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = data["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise ValidationException(f'Invalid pagination token "{token}".') from exc
    # bounded: SQL's OFFSET is a 64-bit integer, and no listing has 2**53 rows
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**53:
        raise ValidationException(f'Invalid pagination token "{token}".')
    return offset


def resource_filter(
    params: Mapping[str, Any], default_max: int = DEFAULT_MAX_RESULTS
) -> ResourceFilter:
    """The store filter a validated List* request asks for.

    It asks the store for one row more than a page so :func:`page` can tell whether a next
    page exists without a second query.
    """
    sort_by = SORT_KEYS.get(str(params.get("SortBy") or "CreationTime"), "creation_time")
    status = params.get("StatusEquals")
    limit = int(params.get("MaxResults") or default_max)
    return ResourceFilter(
        name_contains=params.get("NameContains") or None,
        created_after=_time(params, "CreationTimeAfter"),
        created_before=_time(params, "CreationTimeBefore"),
        modified_after=_time(params, "LastModifiedTimeAfter"),
        modified_before=_time(params, "LastModifiedTimeBefore"),
        statuses=(str(status),) if status else (),
        sort_by=sort_by,
        descending=params.get("SortOrder", "Descending") == "Descending",
        limit=limit + 1,
        offset=decode_token(params.get("NextToken")),
    )


def page(
    rows: list[T], flt: ResourceFilter, summarize: Callable[[T], dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """Summaries of one page and the token of the next (``None`` on the last page)."""
    size = flt.limit - 1
    token = encode_token(flt.offset + size) if len(rows) > size else None
    return [summarize(row) for row in rows[:size]], token


def answer(
    db: Database,
    kind: str,
    flt: ResourceFilter,
    summarize: Callable[[Resource], dict[str, Any]],
    field: str,
) -> dict[str, Any]:
    """A ``List*`` answer: one page of ``kind``'s summaries as ``field``, and ``NextToken``
    when another page follows."""
    with db.read() as conn:
        rows = resources.list_resources(conn, kind, flt)
    items, token = page(rows, flt, summarize)
    out: dict[str, Any] = {field: items}
    if token:
        out["NextToken"] = token
    return out


def _time(params: Mapping[str, Any], key: str) -> datetime | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationException(f"{key} must be a timestamp.")
    return value


def replace_statuses(flt: ResourceFilter, statuses: tuple[str, ...]) -> ResourceFilter:
    """``flt`` filtering on stored statuses instead (a public status may map to several)."""
    return replace(flt, statuses=statuses)
