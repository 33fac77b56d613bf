"""The dynamic batcher: batches form under concurrency, close on the delay, fail per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from sageport.serving.batching import Batcher
from sageport.serving.context import InferenceRequest, InferenceResponse
from sageport.serving.errors import HandlerTimeout
from sageport.serving.metrics import Metrics
from sageport.serving.pool import HandlerPool


class Recorder:
    """A run_batch that echoes bodies and remembers each batch's size."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay_s = delay_s

    def __call__(
        self, requests: Sequence[InferenceRequest]
    ) -> list[InferenceResponse | BaseException]:
        self.sizes.append(len(requests))
        time.sleep(self.delay_s)
        return [
            ValueError("bad") if r.body == b"bad" else InferenceResponse(r.body, "text/plain")
            for r in requests
        ]


def run_batcher(
    recorder: Recorder, bodies: list[bytes], *, size: int, delay_s: float, timeout_s: float = 5
) -> tuple[list[InferenceResponse | BaseException], Metrics]:
    metrics = Metrics()

    async def main() -> list[InferenceResponse | BaseException]:
        pool = HandlerPool(1)
        batcher = Batcher(
            recorder, pool, metrics, max_size=size, max_delay_s=delay_s, timeout_s=timeout_s
        )
        try:
            return await asyncio.gather(
                *(batcher.submit(InferenceRequest(body)) for body in bodies),
                return_exceptions=True,
            )
        finally:
            pool.close()

    return asyncio.run(main()), metrics


def test_concurrent_requests_form_full_batches() -> None:
    recorder = Recorder()
    bodies = [str(i).encode() for i in range(8)]
    results, metrics = run_batcher(recorder, bodies, size=4, delay_s=1.0)
    assert recorder.sizes == [4, 4]
    assert [r.body for r in results if isinstance(r, InferenceResponse)] == bodies
    snapshot = metrics.snapshot()
    assert snapshot["batch_size_histogram"] == {"4": 2}
    assert snapshot["mean_batch_size"] == 4


def test_partial_batch_closes_on_the_delay() -> None:
    recorder = Recorder()
    started = time.perf_counter()
    results, _ = run_batcher(recorder, [b"a", b"b", b"c"], size=8, delay_s=0.05)
    elapsed = time.perf_counter() - started
    assert recorder.sizes == [3]
    assert len(results) == 3
    assert 0.04 < elapsed < 1.0


def test_batches_grow_while_the_handler_is_busy() -> None:
    recorder = Recorder(delay_s=0.05)

    async def main() -> None:
        pool = HandlerPool(1)
        batcher = Batcher(recorder, pool, Metrics(), max_size=16, max_delay_s=0.0, timeout_s=5)
        first = asyncio.ensure_future(batcher.submit(InferenceRequest(b"first")))
        await asyncio.sleep(0.01)  # the first batch (of one) is now running
        rest = [batcher.submit(InferenceRequest(str(i).encode())) for i in range(5)]
        await asyncio.gather(first, *rest)
        pool.close()

    asyncio.run(main())
    assert recorder.sizes == [1, 5]


def test_failures_stay_with_their_request() -> None:
    results, _ = run_batcher(Recorder(), [b"ok", b"bad", b"ok2"], size=3, delay_s=1.0)
    assert isinstance(results[0], InferenceResponse)
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], InferenceResponse)


def test_hung_batch_times_out_and_the_next_batch_runs() -> None:
    calls: list[int] = []

    def run(requests: Sequence[InferenceRequest]) -> list[InferenceResponse | BaseException]:
        calls.append(len(requests))
        if requests[0].body == b"hang":
            time.sleep(2)
        return [InferenceResponse(r.body, "text/plain") for r in requests]

    async def main() -> tuple[BaseException | InferenceResponse, InferenceResponse]:
        pool = HandlerPool(1)
        batcher = Batcher(run, pool, Metrics(), max_size=1, max_delay_s=0.0, timeout_s=0.2)
        with pytest.raises(HandlerTimeout):
            await batcher.submit(InferenceRequest(b"hang"))
        started = time.perf_counter()
        answer = await batcher.submit(InferenceRequest(b"next"))
        assert time.perf_counter() - started < 1.0
        pool.close()
        return HandlerTimeout("x"), answer

    _, answer = asyncio.run(main())
    assert answer.body == b"next"
    assert calls == [1, 1]
