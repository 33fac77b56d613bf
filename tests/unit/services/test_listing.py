from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sageport.errors import ValidationException
from sageport.services import listing


def test_defaults_are_sagemakers() -> None:
    flt = listing.resource_filter({})
    assert flt.sort_by == "creation_time"
    assert flt.descending
    assert flt.limit == listing.DEFAULT_MAX_RESULTS + 1
    assert flt.offset == 0


def test_params_map_to_the_filter() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    flt = listing.resource_filter(
        {
            "SortBy": "Name",
            "SortOrder": "Ascending",
            "NameContains": "abc",
            "CreationTimeAfter": when,
            "LastModifiedTimeBefore": when,
            "StatusEquals": "Completed",
            "MaxResults": 5,
            "NextToken": listing.encode_token(15),
        }
    )
    assert (flt.sort_by, flt.descending, flt.name_contains) == ("name", False, "abc")
    assert (flt.created_after, flt.modified_before, flt.statuses) == (when, when, ("Completed",))
    assert (flt.limit, flt.offset) == (6, 15)


def test_page_emits_a_token_only_when_more_remain() -> None:
    flt = listing.resource_filter({"MaxResults": 2})
    items, token = listing.page([1, 2, 3], flt, lambda i: {"n": i})
    assert items == [{"n": 1}, {"n": 2}]
    assert token is not None
    assert listing.decode_token(token) == 2
    assert listing.page([1, 2], flt, lambda i: {"n": i})[1] is None


@pytest.mark.parametrize("token", ["garbage!", listing.encode_token(0)[:-2] + "zz", "e30="])
def test_bad_tokens(token: str) -> None:
    with pytest.raises(ValidationException, match="Invalid pagination token"):
        listing.decode_token(token)
