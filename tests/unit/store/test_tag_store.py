from __future__ import annotations

from sageport.store import tags
from sageport.store.database import Database


def test_put_overwrites_and_keeps_order(db: Database) -> None:
    with db.begin() as conn:
        tags.put(conn, "arn:x", [("a", "1"), ("b", "2")])
        tags.put(conn, "arn:x", [("a", "3"), ("c", "4")])
        tags.put(conn, "arn:y", [("a", "other")])
        assert tags.list_tags(conn, "arn:x") == [("a", "3"), ("b", "2"), ("c", "4")]
        assert tags.list_tags(conn, "arn:x", limit=1, offset=1) == [("b", "2")]
        assert tags.count(conn, "arn:x") == 3
        assert tags.keys(conn, "arn:x") == {"a", "b", "c"}


def test_remove(db: Database) -> None:
    with db.begin() as conn:
        tags.put(conn, "arn:x", [("a", "1"), ("b", "2")])
        tags.remove(conn, "arn:x", ["a", "missing"])
        assert tags.list_tags(conn, "arn:x") == [("b", "2")]
        tags.remove_all(conn, "arn:x")
        assert tags.list_tags(conn, "arn:x") == []
