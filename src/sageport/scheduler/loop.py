"""The scheduler loop: an asyncio task in the server that moves jobs along.

It wakes when an API call says there is news (``wake()``) or every poll interval, and asks
each runner for its next steps. While a runner reports live processes (a job's exit is only
noticed by looking), it looks every :data:`BUSY_INTERVAL_S` instead: a short job then pays
tens of milliseconds, not a whole interval, and an idle server stays idle. It holds no state
of its own beyond the runners': the store is the truth, which is why a restarted server
simply starts the loop again.

The API's use cases are built before the scheduler (its runners need them), so what they call
on news is a :class:`Wakeup` built before either: the composition root (``sageport.wiring``)
hands ``wakeup.ring`` to the services and the same ``Wakeup`` to the :class:`Scheduler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger(__name__)

#: the poll interval while some runner has processes whose end only polling notices.
BUSY_INTERVAL_S = 0.05


class Runner(Protocol):
    async def tick(self) -> bool | None:
        """One round of steps; ``True`` while it has processes to watch (None: no opinion)."""
        ...

    async def cancel(self) -> None:
        """Abandon steps in flight; the stored status lets the next start redo them."""
        ...


class Wakeup:
    """What says "there is news" to the scheduler loop; a ring before it starts is dropped
    (its first round looks at everything anyway)."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def ring(self) -> None:
        """Thread-safe: API handlers run in worker threads."""
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def bind(self) -> asyncio.Event:
        """The event ``ring`` sets, on the running loop (called by :meth:`Scheduler.start`)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        return self._event


class Scheduler:
    def __init__(
        self, runners: list[Runner], interval: float, wakeup: Wakeup | None = None
    ) -> None:
        self._runners = runners
        self._interval = interval
        self._wakeup = wakeup or Wakeup()
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Thread-safe: API handlers run in worker threads."""
        self._wakeup.ring()

    async def start(self) -> None:
        self._event = self._wakeup.bind()
        self._task = asyncio.create_task(self._run(), name="sageport-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for runner in self._runners:
            await runner.cancel()

    async def _run(self) -> None:
        assert self._event is not None
        while True:
            busy = False
            for runner in self._runners:
                try:
                    busy = bool(await runner.tick()) or busy
                except Exception:
                    log.exception("scheduler tick failed")
            interval = min(self._interval, BUSY_INTERVAL_S) if busy else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), interval)
            self._event.clear()
