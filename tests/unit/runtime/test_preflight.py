"""The GPU pre-flight: it reports what the job sees, then runs the job's own command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from sageport.runtime.preflight import PREFLIGHT_SCRIPT, preflight_argv


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | env
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=60, check=False)


def test_argv_runs_the_script_with_the_jobs_python_then_the_command() -> None:
    argv = preflight_argv("/opt/py/bin/python", ["python", "train.py", "--epochs", "2"])
    assert argv == [
        "/opt/py/bin/python",
        str(PREFLIGHT_SCRIPT),
        "--",
        "python",
        "train.py",
        "--epochs",
        "2",
    ]
    assert PREFLIGHT_SCRIPT.is_file()


def test_without_gpus_it_says_none_is_visible_and_runs_the_job() -> None:
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", "echo job-ran; exit 7"]),
        CUDA_VISIBLE_DEVICES="",
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 7  # the job's own status, because the job replaced the pre-flight
    assert lines[-1] == "job-ran"
    assert (
        "sageport pre-flight: no GPU is visible to this job (CUDA_VISIBLE_DEVICES is empty)"
        in lines
    )
    assert any(
        line.startswith(("sageport pre-flight: torch ", "sageport pre-flight: PyTorch"))
        for line in lines
    )


def test_a_granted_gpu_that_torch_cannot_use_is_a_warning_not_a_failure() -> None:
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", 'echo "cvd=$CUDA_VISIBLE_DEVICES"']),
        CUDA_VISIBLE_DEVICES="3",
    )
    assert done.returncode == 0
    assert "sageport pre-flight: CUDA_VISIBLE_DEVICES=3 (1 GPU(s) granted)" in done.stdout
    assert done.stdout.splitlines()[-1] == "cvd=3"
    if importlib.util.find_spec("torch") is not None:
        assert "WARNING: this job holds GPUs but" in done.stdout


def test_a_broken_environment_still_runs_the_job(tmp_path: Path) -> None:
    # PYTHONPATH points torch at a module that raises on import: the pre-flight must not care.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('raise RuntimeError("broken torch install")\n')
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", "echo still-ran"]),
        PYTHONPATH=str(tmp_path),
        CUDA_VISIBLE_DEVICES="0",
    )
    assert done.returncode == 0
    assert "WARNING: the GPU pre-flight failed (RuntimeError: broken torch install)" in done.stdout
    assert done.stdout.splitlines()[-1] == "still-ran"


def test_a_missing_command_exits_127_with_a_message() -> None:
    done = run(preflight_argv(sys.executable, ["/nonexistent/command"]))
    assert done.returncode == 127
    assert "cannot run '/nonexistent/command'" in done.stderr
