"""The scheduler loop: fast ticks while a runner watches processes, the slow interval otherwise."""

from __future__ import annotations

import asyncio

from sageport.scheduler.loop import BUSY_INTERVAL_S, Scheduler


class CountingRunner:
    """Counts ticks; reports busy as told (None: a runner with no opinion)."""

    def __init__(self, busy: bool | None) -> None:
        self.busy = busy
        self.ticks = 0

    async def tick(self) -> bool | None:
        self.ticks += 1
        return self.busy

    async def cancel(self) -> None:
        return None


def _ticks_in(runners: list[CountingRunner], interval: float, seconds: float) -> list[int]:
    async def run() -> list[int]:
        scheduler = Scheduler(list(runners), interval)
        await scheduler.start()
        await asyncio.sleep(seconds)
        await scheduler.stop()
        return [r.ticks for r in runners]

    return asyncio.run(run())


def test_busy_runner_shortens_the_interval_for_all() -> None:
    busy, quiet = CountingRunner(True), CountingRunner(None)
    ticks = _ticks_in([busy, quiet], interval=1.0, seconds=0.5)
    assert ticks[0] == ticks[1]  # every runner ticks on every round
    assert ticks[0] >= 0.5 / BUSY_INTERVAL_S / 2  # many rounds, not one per second


def test_idle_runners_keep_the_configured_interval() -> None:
    ticks = _ticks_in([CountingRunner(False), CountingRunner(None)], interval=1.0, seconds=0.5)
    assert ticks == [1, 1]


def test_wake_runs_a_round_at_once() -> None:
    async def run() -> int:
        runner = CountingRunner(False)
        scheduler = Scheduler([runner], 10.0)
        await scheduler.start()
        await asyncio.sleep(0.05)
        scheduler.wake()
        await asyncio.sleep(0.05)
        await scheduler.stop()
        return runner.ticks

    assert asyncio.run(run()) == 2
