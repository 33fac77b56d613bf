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

S = TypeVar("S", bound=str)


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
        extra: dict[str, Any] | None = None,
        check: Callable[[Connection], None] | None = None,
        *,
        state: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Compare-and-set ``old`` → ``new`` (an edge of the table), recording history.

        ``message`` defaults to the kind's message for ``new``; ``extra`` is merged into the
        runtime state in the same transaction (a kind whose state is not typed yet), or
        ``state`` maps the stored state to the new one (a typed kind: jobs), written by
        compare-and-set on the new status and the version read; ``check`` may refuse
        inside it (a quota).
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
            if extra:
                resources.merge_state(conn, self._records_kind, name, extra, now)
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
