"""``sageport instances`` as a function: tables, JSON, and bad input."""

from __future__ import annotations

import json

import pytest

from sageport.cli.instances import EXIT_BAD_INPUT, instances_command


def test_table_names_the_cheapest_that_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(gpus=1, gpu_model="T4") == 0
    out = capsys.readouterr().out
    assert "ml.g4dn.xlarge" in out
    assert "ml.g5.xlarge" not in out
    assert "Cheapest that fits: ml.g4dn.xlarge" in out


def test_json_is_a_list_cheapest_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(gpus=8, min_gpu_memory=80, as_json=True) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert {"ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge"} <= set(names)
    assert "ml.p4d.24xlarge" not in names
    priced = [r["price_per_hour"] for r in rows if r["price_per_hour"] is not None]
    assert priced == sorted(priced)
    assert all(r["gpu_count"] >= 8 and r["gpu_memory_gb"] >= 80 for r in rows)


def test_names_list_those_types(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(names=["ml.inf2.xlarge"], as_json=True) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["accelerator_kind"], row["gpu_count"]) == ("neuron", 0)
    assert "refused unless cpu_fallback" in row["sageport_note"]
    assert instances_command(names=["ml.inf2.xlarge", "ml.m5.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "(neuron, not a GPU)*" in out
    assert "* sageport cannot provide Neuron" in out


def test_unknown_name_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(names=["ml.p3.2xlarg"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Did you mean 'ml.p3.2xlarge'" in err


def test_unknown_gpu_model_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(gpu_model="A10") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Did you mean A10G" in err
    assert "L40S" in err


def test_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(gpus=64) == 1
    assert "No instance type matches" in capsys.readouterr().err
    assert instances_command(gpus=64, as_json=True) == 1  # as the table form: nothing fits
    assert json.loads(capsys.readouterr().out) == []


def test_negative_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert instances_command(gpus=-1) == EXIT_BAD_INPUT
    assert "--gpus" in capsys.readouterr().err
