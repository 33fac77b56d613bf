"""Metric matches → exact final values and a series file that stays bounded."""

from __future__ import annotations

from pathlib import Path

from sageport.runtime.metrics import (
    MetricScanner,
    MetricSeries,
    MetricState,
    dump_states,
    final_metrics,
    load_states,
)


def test_scanner_takes_the_first_group_and_ignores_bad_rules() -> None:
    scanner = MetricScanner(
        [
            {"Name": "loss", "Regex": r"loss=([0-9.]+)"},
            {"Name": "broken", "Regex": r"acc=(["},
            {"Name": "whole", "Regex": r"\d+\.\d+"},
        ]
    )
    assert list(scanner.scan("epoch 1 loss=0.25")) == [("loss", 0.25), ("whole", 0.25)]
    assert list(scanner.scan("nothing here")) == []
    assert not MetricScanner([])


def test_final_value_is_the_last_match_however_many(tmp_path: Path) -> None:
    series = MetricSeries(tmp_path, max_points=100)
    states: dict[str, MetricState] = {}
    for batch in range(30):  # 30 ticks of 1000 matches: far past any cap
        points = [
            ("loss", float(i), 1.0 / (i + 1)) for i in range(batch * 1000, (batch + 1) * 1000)
        ]
        assert series.record(states, points)
        states = load_states(dump_states(states))  # as stored with the job between ticks
    final = final_metrics(states)
    assert [(m["MetricName"], m["Value"]) for m in final] == [("loss", 1.0 / 30_000)]
    assert final[0]["Timestamp"].startswith("1970-01-01T08:19:59")
    kept = series.read()["loss"]
    assert 100 <= len(kept) < 200  # bounded ...
    assert kept[0][0] == 0.0  # ... and spanning the whole run
    assert kept[-1][0] > 29_000
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)
    assert states["loss"].seen == 30_000


def test_thinning_one_metric_keeps_the_others(tmp_path: Path) -> None:
    series = MetricSeries(tmp_path, max_points=10)
    states: dict[str, MetricState] = {}
    series.record(states, [("acc", 0.0, 0.5), ("acc", 1.0, 0.6)])
    series.record(states, [("loss", float(i), float(i)) for i in range(40)])
    kept = series.read()
    assert kept["acc"] == [(0.0, 0.5), (1.0, 0.6)]
    assert 10 <= len(kept["loss"]) < 20
    assert not series.record(states, [])
