"""Status machines as data: a table of allowed moves, each edge with the reason it exists.

A resource kind (training job, endpoint, ...) declares its table once::

    TRAINING = TransitionTable({
        Status.IN_PROGRESS: {Status.COMPLETED: "the process exited 0 and artifacts uploaded", ...},
        Status.COMPLETED: {},
    })

and every status change goes through ``check`` before the store's compare-and-set
(``sageport.services.records``: the one ``move``), so an illegal move (``Completed`` →
``InProgress``) is refused in one place, whoever asks for it. A status is terminal when its
row is empty (:meth:`TransitionTable.is_terminal`); nothing else defines terminality.

:class:`IllegalTransition` is a programming error, never an answer: a use case that a client
can call checks its precondition first and refuses in AWS's own words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

S = TypeVar("S", bound=str)


class IllegalTransition(ValueError):
    """A status change the table does not allow (a bug in the caller, not a client error)."""

    def __init__(self, old: str, new: str, allowed: Iterable[str]) -> None:
        choices = ", ".join(sorted(allowed)) or "none (terminal)"
        super().__init__(f"cannot move from {old} to {new}; allowed: {choices}")
        self.old = old
        self.new = new


class TransitionTable(Generic[S]):
    """The allowed moves of one status machine; statuses with no outgoing edge are terminal.

    ``edges`` maps a status to ``{next_status: why this edge exists}``. Every status that
    appears as a target must also appear as a key, so a typo cannot create a dead end.
    """

    def __init__(self, edges: Mapping[S, Mapping[S, str]]) -> None:
        missing = {new for nexts in edges.values() for new in nexts} - set(edges)
        if missing:
            raise ValueError(f"statuses without a row: {sorted(missing)}")
        self._edges = {old: dict(nexts) for old, nexts in edges.items()}

    @property
    def statuses(self) -> frozenset[S]:
        return frozenset(self._edges)

    def edges(self) -> list[tuple[S, S]]:
        """Every allowed move, row by row in the table's order."""
        return [(old, new) for old, nexts in self._edges.items() for new in nexts]

    def allowed(self, old: S) -> frozenset[S]:
        """The statuses reachable from ``old`` in one move."""
        return frozenset(self._edges[old])

    def can(self, old: S, new: S) -> bool:
        return new in self._edges.get(old, {})

    def check(self, old: S, new: S) -> None:
        """Raise :class:`IllegalTransition` unless ``old`` → ``new`` is an edge."""
        if not self.can(old, new):
            raise IllegalTransition(old, new, self._edges.get(old, {}))

    def reason(self, old: S, new: S) -> str:
        """Why the edge exists (its comment); raises :class:`IllegalTransition` if it doesn't."""
        self.check(old, new)
        return self._edges[old][new]

    def is_terminal(self, status: S) -> bool:
        """No move leaves ``status``: the one definition of a finished resource."""
        return not self._edges[status]
