"""Store-level errors; services translate them into the AWS errors their API uses."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the errors the store raises on purpose."""


class DuplicateName(StoreError):
    """A resource with this kind and name (or this ARN) already exists."""


class NotFound(StoreError):
    """No resource with this kind and name."""


class StatusConflict(StoreError):
    """A compare-and-set status update found another status than the one expected."""

    def __init__(self, kind: str, name: str, expected: str | None, actual: str | None) -> None:
        super().__init__(f"{kind} {name}: expected status {expected!r}, found {actual!r}")
        self.expected = expected
        self.actual = actual
