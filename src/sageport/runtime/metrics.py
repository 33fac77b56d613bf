"""``MetricDefinitions`` applied to a job's log: the final values and a bounded time series.

``FinalMetricDataList`` is the last value each metric's regex matched, however long the job
runs, so each metric's latest point is kept on its own (:class:`MetricState`, stored with
the job: a few numbers per metric, cheap to rewrite on every tick).

The series goes to an append-only file in the job's folder (``metrics.jsonl``, one
``{"n": name, "t": epoch_s, "v": value}`` per line), so a tick costs what it appends rather
than a rewrite of the whole history. It stays bounded: when a metric has
``2 * max_points`` points in the file, the file is rewritten with every other point of that
metric and from then on only every second match of it is recorded (then every fourth, ...).
The series keeps its shape over the whole run at a resolution that halves each time the run
doubles, and the final value stays exact. After a crash between appending and storing the
job's state, the next scan appends those points again: a few duplicates, never a gap.

Below both of its users: the job runner's log shipping (``scheduler.job_logs``) records the
points, DescribeTrainingJob (``services.training``) reads the final values back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SERIES_FILE = "metrics.jsonl"
MAX_SERIES_POINTS = 5_000
"""Per metric, the series file holds fewer than twice this many points (and, once thinned,
at least this many)."""


class MetricScanner:
    """``MetricDefinitions`` regexes applied to log lines (first group is the value)."""

    def __init__(self, definitions: Sequence[Mapping[str, str]]) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for d in definitions:
            try:
                self._rules.append((d["Name"], re.compile(d["Regex"])))
            except (re.error, KeyError):
                continue  # a bad regex is ignored, as SageMaker does

    def __bool__(self) -> bool:
        return bool(self._rules)

    def scan(self, line: str) -> Iterator[tuple[str, float]]:
        for name, rule in self._rules:
            for match in rule.finditer(line):
                try:
                    yield name, float(match.group(1) if rule.groups else match.group(0))
                except (ValueError, IndexError):
                    continue


@dataclass
class MetricState:
    """One metric of one job: its last point, how many matches, which of them are kept."""

    t: float
    v: float
    seen: int = 0
    stride: int = 1
    kept: int = 0

    def to_json(self) -> list[float]:
        return [self.t, self.v, self.seen, self.stride, self.kept]

    @classmethod
    def from_json(cls, data: Sequence[float]) -> MetricState:
        t, v, seen, stride, kept = data
        return cls(float(t), float(v), int(seen), int(stride), int(kept))


def load_states(data: Mapping[str, Sequence[float]] | None) -> dict[str, MetricState]:
    return {name: MetricState.from_json(v) for name, v in (data or {}).items()}


def dump_states(states: Mapping[str, MetricState]) -> dict[str, list[float]]:
    return {name: s.to_json() for name, s in states.items()}


class MetricSeries:
    """The series file of one job."""

    def __init__(self, job_dir: Path, max_points: int = MAX_SERIES_POINTS) -> None:
        self.path = job_dir / SERIES_FILE
        self.max_points = max_points

    def record(
        self, states: dict[str, MetricState], points: Iterable[tuple[str, float, float]]
    ) -> bool:
        """Fold ``(name, epoch_s, value)`` matches into ``states`` and append the kept ones.

        Returns whether anything changed (then ``states`` must be stored with the job).
        """
        lines: list[str] = []
        for name, t, v in points:
            state = states.get(name)
            if state is None:
                state = states[name] = MetricState(t, v)
            state.t, state.v = t, v
            if state.seen % state.stride == 0:
                lines.append(json.dumps({"n": name, "t": t, "v": v}) + "\n")
                state.kept += 1
            state.seen += 1
        if not lines:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(lines)
        while crowded := {n for n, s in states.items() if s.kept >= 2 * self.max_points}:
            self._thin(states, crowded)  # more than once only after a very large batch
        return True

    def _thin(self, states: dict[str, MetricState], names: set[str]) -> None:
        """Keep every other point of ``names`` (rewritten atomically); double their stride."""
        index: dict[str, int] = {}
        kept: dict[str, int] = {}
        out: list[str] = []
        for line in self._lines():
            name = str(line["n"])
            if name in names:
                i = index[name] = index.get(name, -1) + 1
                if i % 2:
                    continue
            kept[name] = kept.get(name, 0) + 1
            out.append(json.dumps(line) + "\n")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(out), encoding="utf-8")
        os.replace(tmp, self.path)
        for name in names:
            states[name].stride *= 2
            states[name].kept = kept.get(name, 0)

    def _lines(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for raw in f:
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        continue  # a line cut short by a crash
        except FileNotFoundError:
            return

    def read(self) -> dict[str, list[tuple[float, float]]]:
        """Every kept point, by metric, in time order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for line in self._lines():
            out.setdefault(str(line["n"]), []).append((float(line["t"]), float(line["v"])))
        return out


def final_metrics(states: Mapping[str, MetricState]) -> list[dict[str, Any]]:
    """``FinalMetricDataList``: the last value of each metric, with its time."""
    return [
        {
            "MetricName": name,
            "Value": state.v,
            "Timestamp": datetime.fromtimestamp(state.t, UTC).isoformat(),
        }
        for name, state in sorted(states.items())
    ]
