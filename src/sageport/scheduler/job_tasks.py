"""The job steps in flight: which jobs have a task running, and which task is a staging.

Slow steps of a job (staging its data, uploading its outputs, a progress upload) run as
asyncio tasks; the runner's ``tick()`` skips a job while any of its tasks runs, so a step is
started once. A staging task is also kept by name, so that a stop or the runtime limit can
cancel it (``job_watch``). Kept apart from the steps themselves: every step spawns tasks, and
the bookkeeping of their ends (one task's end must never forget another's) is one concern.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class JobTasks:
    """Every task in flight, per job name; ``label`` names the kind of job in the log."""

    def __init__(self, label: str) -> None:
        self.label = label
        # Kept per task, so one task's end never forgets another's.
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._staging: dict[str, asyncio.Task[None]] = {}

    def __bool__(self) -> bool:
        """Whether any task of any job is in flight."""
        return bool(self._tasks)

    def __contains__(self, name: object) -> bool:
        """Whether job ``name`` has a task in flight (its step is under way)."""
        return name in self._tasks

    def spawn(self, name: str, coro: Coroutine[Any, Any, None], *, staging: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.setdefault(name, set()).add(task)
        if staging:
            self._staging[name] = task
        task.add_done_callback(functools.partial(self._forget, name))

    def staging(self, name: str) -> asyncio.Task[None] | None:
        """Job ``name``'s staging task while it runs, else None."""
        task = self._staging.get(name)
        return None if task is None or task.done() else task

    async def cancel(self) -> None:
        tasks = [t for group in self._tasks.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        group = self._tasks.get(name)
        if group is not None:
            group.discard(task)
            if not group:
                del self._tasks[name]
        if self._staging.get(name) is task:
            del self._staging[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s %s: a step failed", self.label, name, exc_info=task.exception())
