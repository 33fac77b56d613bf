"""What ``GET /metrics`` reports: request counts, a latency summary, observed batch sizes.

Kept in one object owned by the server (no module state), updated on the event loop only.
Latencies keep the last ``window`` samples, so percentiles describe recent traffic; counts
and the batch-size histogram are totals since start. With several worker processes each has
its own ``Metrics``; ``merge`` adds up the snapshots they publish (see ``server``).
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from typing import Any


class Metrics:
    """Counters, recent latencies and the batch-size histogram of one process."""

    def __init__(self, window: int = 10_000) -> None:
        self.started = time.time()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.latencies: deque[float] = deque(maxlen=window)
        self.batch_sizes: Counter[int] = Counter()
        self.timeouts = 0

    def observe_invocation(self, status: int, seconds: float) -> None:
        self.requests["invocations"] += 1
        self.statuses[status] += 1
        self.latencies.append(seconds)
        if status == 504:
            self.timeouts += 1

    def observe_batch(self, size: int) -> None:
        self.batch_sizes[size] += 1

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of ``/metrics`` for this process."""
        return {
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            "invocations": self.requests["invocations"],
            "status_codes": {str(code): count for code, count in sorted(self.statuses.items())},
            "errors": sum(count for code, count in self.statuses.items() if code >= 400),
            "timeouts": self.timeouts,
            "latency_ms": summarize(list(self.latencies)),
            "batch_size_histogram": {
                str(size): count for size, count in sorted(self.batch_sizes.items())
            },
            "batches": sum(self.batch_sizes.values()),
            "mean_batch_size": _mean_batch(self.batch_sizes),
        }


def summarize(samples: list[float]) -> dict[str, float | int]:
    """count/mean/p50/p90/p99/max in milliseconds over ``samples`` (seconds)."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    count = len(ordered)

    def pick(q: float) -> float:
        return round(ordered[min(count - 1, int(q * count))] * 1000, 3)

    return {
        "count": count,
        "mean": round(sum(ordered) / count * 1000, 3),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": round(ordered[-1] * 1000, 3),
    }


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-worker snapshots; latency percentiles are the worst worker's (an upper bound)."""
    statuses: Counter[str] = Counter()
    batches: Counter[int] = Counter()
    for snap in snapshots:
        statuses.update({code: int(n) for code, n in snap.get("status_codes", {}).items()})
        batches.update({int(size): int(n) for size, n in snap["batch_size_histogram"].items()})
    latency_keys = ("p50", "p90", "p99", "max")
    latency = {
        key: max(float(snap["latency_ms"].get(key, 0.0)) for snap in snapshots)
        for key in latency_keys
    }
    latency["count"] = sum(int(snap["latency_ms"].get("count", 0)) for snap in snapshots)
    return {
        "workers": [snap["pid"] for snap in snapshots],
        "invocations": sum(int(snap["invocations"]) for snap in snapshots),
        "status_codes": dict(sorted(statuses.items())),
        "errors": sum(int(snap["errors"]) for snap in snapshots),
        "timeouts": sum(int(snap["timeouts"]) for snap in snapshots),
        "latency_ms": latency,
        "batch_size_histogram": {str(size): n for size, n in sorted(batches.items())},
        "batches": sum(batches.values()),
        "mean_batch_size": _mean_batch(batches),
        "per_worker": snapshots,
    }


def _mean_batch(histogram: Counter[int]) -> float:
    total = sum(histogram.values())
    if not total:
        return 0.0
    return round(sum(size * n for size, n in histogram.items()) / total, 3)
