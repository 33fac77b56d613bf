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


class StaleState(StatusConflict):
    """A compare-and-set write of runtime state found another status or record version.

    A ``StatusConflict`` too: a caller that tolerates a concurrent status change tolerates
    this one (the other writer won; read again).
    """

    def __init__(
        self,
        kind: str,
        name: str,
        expected: str | None,
        expected_version: int,
        actual: str | None,
        actual_version: int,
    ) -> None:
        super().__init__(kind, name, expected, actual)
        self.args = (
            f"{kind} {name}: expected status {expected!r} at version {expected_version}, "
            f"found {actual!r} at version {actual_version}",
        )
        self.expected_version = expected_version
        self.actual_version = actual_version
