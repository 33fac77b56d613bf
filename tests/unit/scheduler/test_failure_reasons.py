"""``artifacts.failure_reason``: a ModuleNotFoundError names the interpreter and the fix."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.runtime.process_env import ServerAccess
from sageport.scheduler.artifacts import FAILURE_LIMIT, failure_reason
from sageport.scheduler.hosts import JobContext

PT = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"
SK = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
FAILED = {"algo-1": ExitInfo(returncode=1, signal=None, ended_at=1.0)}
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/opt/ml/code/train.py", line 1, in <module>',
    "    import some_missing_module_xyz",
    "ModuleNotFoundError: No module named 'some_missing_module_xyz'",
]


def _ctx(tmp_path: Path, spec: Mapping[str, Any], images: Mapping[str, str]) -> JobContext:
    return JobContext(
        name="job",
        arn="arn:aws:sagemaker:us-east-1:000000000000:training-job/job",
        spec=spec,
        job_dir=tmp_path,
        sandbox=False,
        access=ServerAccess("http://127.0.0.1:1", "AK", "SK", "us-east-1"),
        images=images,
        stop_grace_s=1.0,
        server_env={},
    )


def _training(image: str) -> dict[str, Any]:
    return {"AlgorithmSpecification": {"TrainingImage": image}}


def test_a_missing_module_names_the_interpreter_family_and_fix(tmp_path: Path) -> None:
    reason = failure_reason(_ctx(tmp_path, _training(PT), {}), FAILED, {"algo-1": TRACEBACK})
    assert reason is not None
    lines = reason.splitlines()
    assert lines[:2] == ["AlgorithmError: ExecuteUserScriptError:", "ExitCode 1"]
    assert lines[-3] == "ModuleNotFoundError: No module named 'some_missing_module_xyz'\""
    assert lines[-2].startswith(f'Interpreter "{sys.executable}" (image family pytorch:')
    assert f"{sys.executable} -m pip install some_missing_module_xyz" in lines[-1]
    assert '[images] "pytorch" = "/path/to/venv/bin/python"' in lines[-1]


def test_a_processing_job_names_its_mapped_interpreter(tmp_path: Path) -> None:
    spec = {"AppSpecification": {"ImageUri": SK}}
    venv = "/opt/venvs/sk/bin/python"
    tail = ["ModuleNotFoundError: No module named 'sklearn.preprocessing'"]
    reason = failure_reason(_ctx(tmp_path, spec, {"sklearn": venv}), FAILED, {"algo-1": tail})
    assert reason is not None
    assert f"Interpreter \"{venv}\" (image family sklearn, mapped by images['sklearn'])" in reason
    assert f"{venv} -m pip install scikit-learn" in reason


def test_a_long_traceback_gives_up_its_head_not_the_fix(tmp_path: Path) -> None:
    tail = [f"  frame {i} " + "x" * 200 for i in range(9)] + TRACEBACK[-1:]
    reason = failure_reason(_ctx(tmp_path, _training(PT), {}), FAILED, {"algo-1": tail})
    assert reason is not None
    assert len(reason) <= FAILURE_LIMIT
    assert "No module named 'some_missing_module_xyz'" in reason
    assert reason.splitlines()[-1].startswith("To fix: install it into that interpreter")


def test_other_errors_keep_the_plain_form(tmp_path: Path) -> None:
    tail = ["ValueError: learning rate 42 is far too large"]
    reason = failure_reason(_ctx(tmp_path, _training(PT), {}), FAILED, {"algo-1": tail})
    assert reason == (
        "AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n"
        'ErrorMessage "ValueError: learning rate 42 is far too large"'
    )
