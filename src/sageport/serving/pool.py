"""The threads that run handler code, so a slow or hung handler never blocks the event loop.

A ``ThreadPoolExecutor`` cannot give a thread back once a call hangs in it, and its threads
are joined at exit. This pool's threads are daemons fed from one ``SimpleQueue``; each call
comes back to the loop as an ``asyncio.Future`` through ``call_soon_threadsafe`` (one wake-up,
measured ≈ 30-60 µs for the whole hop). When a caller gives up on a call that has started
(``abandon``), the pool starts a replacement thread so capacity stays the same; a call that
had not started yet is simply skipped. Replacements are capped (``max_extra``) so a handler
that hangs on every request cannot grow the process without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sageport.serving.errors import HandlerTimeout

LOG = logging.getLogger(__name__)


class Job:
    """One call: the function, its future, and whether a thread has picked it up."""

    __slots__ = (
        "abandoned",
        "args",
        "cancelled",
        "finished",
        "func",
        "future",
        "loop",
        "started",
        "timer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        func: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self.loop = loop
        self.func = func
        self.args = args
        self.future: asyncio.Future[Any] = loop.create_future()
        self.started = False
        self.cancelled = False
        self.finished = False
        self.abandoned = False
        self.timer: asyncio.TimerHandle | None = None


class HandlerPool:
    """Daemon threads running handler calls; ``submit`` from the event loop only."""

    def __init__(self, threads: int, *, max_extra: int = 32, name: str = "handler") -> None:
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._name = name
        self._threads = 0
        self._extra = 0
        self._max_extra = max_extra
        for _ in range(max(1, threads)):
            self._start_thread()

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, func: Callable[..., Any], *args: Any, timeout: float | None = None) -> Job:
        """Queue ``func(*args)``; past ``timeout`` seconds its future fails with HandlerTimeout."""
        loop = asyncio.get_running_loop()
        job = Job(loop, func, args)
        if timeout is not None:
            job.timer = loop.call_later(timeout, self._expire, job, timeout)
        self._queue.put(job)
        return job

    def _expire(self, job: Job, timeout: float) -> None:
        if job.future.done():
            return
        job.future.set_exception(
            HandlerTimeout(f"The model did not answer within {timeout:g} seconds")
        )
        self.abandon(job)

    def abandon(self, job: Job) -> None:
        """The caller stopped waiting for ``job``: skip it, or replace the thread it holds."""
        with self._lock:
            if not job.started:
                job.cancelled = True
                return
            if job.finished:
                return
            if self._extra >= self._max_extra:
                LOG.error("handler threads exhausted by hung calls; not starting another")
                return
            job.abandoned = True
            self._extra += 1
        LOG.warning("a handler call hung; starting a replacement thread")
        self._start_thread()

    def close(self) -> None:
        for _ in range(self._threads):
            self._queue.put(None)

    def _start_thread(self) -> None:
        self._threads += 1
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{self._threads}", daemon=True
        )
        thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.cancelled:
                    continue
                job.started = True
            error: BaseException | None = None
            result: Any = None
            try:
                result = job.func(*job.args)
            except BaseException as exc:
                error = exc
            with self._lock:
                job.finished = True
                retire = job.abandoned and self._extra > 0
                if retire:  # its replacement already runs: this thread bows out
                    self._extra -= 1
                    self._threads -= 1
            # A closed loop (RuntimeError) means nobody waits any more.
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_settle, job, result, error)
            if retire:
                return


def _settle(job: Job, result: Any, error: BaseException | None) -> None:
    if job.timer is not None:
        job.timer.cancel()
    future = job.future
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
