"""The one way a resource's status changes: :meth:`StatusRecords.move`.

Jobs of every kind (``services.jobs``) and endpoints (``services.endpoints``) inherit it. A
move is checked against the kind's table (``sageport.domain``), then made by compare-and-set
in the store with its history row, in one transaction with any runtime state that goes with
it. An illegal move raises :class:`~sageport.domain.status.IllegalTransition`: a bug of the
caller, never a client's answer. The use cases a client calls check their preconditions
first and refuse in AWS's words; a concurrent change shows as ``StatusConflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from sageport.clock import Clock
from sageport.domain.status import TransitionTable
from sageport.store import resources
from sageport.store.database import Connection, Database
from sageport.store.errors import NotFound, StaleState

S = TypeVar("S", bound=str)

UPDATE_ATTEMPTS = 5
"""How often ``update_state`` re-applies a change that lost a compare-and-set race."""


def update_state(
    db: Database,
    clock: Clock,
    kind: str,
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Apply ``change`` to a resource's stored state (no status change), compare-and-set on
    status plus version: when another writer got in between, it is applied again to what
    that one wrote. Raises ``NotFound``."""
    for attempt in range(UPDATE_ATTEMPTS):
        try:
            with db.begin() as conn:
                found = resources.get(conn, kind, name)
                if found is None:
                    raise NotFound(f"{kind} {name}")
                resources.write_state(
                    conn,
                    kind,
                    name,
                    change(found.state),
                    expected_status=found.status,
                    expected_version=found.version,
                    now=clock.now(),
                )
            return
        except StaleState:
            if attempt == UPDATE_ATTEMPTS - 1:
                raise


class StatusRecords(Generic[S]):
    """Status moves of one kind of resource, over its table."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        kind: str,
        table: TransitionTable[S],
        messages: Mapping[S, str] | None = None,
        *,
        with_secondary: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self._records_kind = kind
        self.table = table
        self._messages = messages or {}
        #: history rows carry the status as ``secondary_status`` too (jobs' transitions)
        self._with_secondary = with_secondary

    def move(
        self,
        name: str,
        old: S,
        new: S,
        message: str | None = None,
        check: Callable[[Connection], None] | None = None,
        *,
        state: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Compare-and-set ``old`` → ``new`` (an edge of the table), recording history.

        ``message`` defaults to the kind's message for ``new``; ``state`` maps the stored
        runtime state to the new one in the same transaction (the kinds pass their typed
        change as ``runtime``, see ``JobService.move``), written by compare-and-set on the
        new status and the version read; ``check`` may refuse inside it (a quota).
        Raises ``IllegalTransition`` for a move the table lacks and ``StatusConflict`` when
        the stored status is no longer ``old``.
        """
        self.table.check(old, new)
        now = self._clock.now()
        with self._db.begin() as conn:
            if check is not None:
                check(conn)
            resources.set_status(
                conn,
                self._records_kind,
                name,
                str(old),
                str(new),
                message=message or self._messages.get(new),
                now=now,
                secondary_status=str(new) if self._with_secondary else None,
            )
            if state is not None:
                found = resources.get(conn, self._records_kind, name)
                assert found is not None  # set_status found it in this transaction
                resources.write_state(
                    conn,
                    self._records_kind,
                    name,
                    state(found.state),
                    expected_status=str(new),
                    expected_version=found.version,
                    now=now,
                )
