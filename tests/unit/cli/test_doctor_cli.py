"""``sageport doctor --data-dir``: it reads the data folder's sageport.toml as ``serve`` does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _doctor(
    data: Path, *args: str, fake_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAGEPORT_FAKE_GPUS"}
    if fake_env is not None:
        env["SAGEPORT_FAKE_GPUS"] = fake_env
    # a missing interpreter: the framework probe fails at once, the inventory checks remain
    cmd = [sys.executable, "-m", "sageport", "doctor", "--data-dir", str(data)]
    cmd += ["--python", "/nonexistent/python", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def _checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_fake_gpus_in_sageport_toml_is_the_inventory_doctor_checks(tmp_path: Path) -> None:
    (tmp_path / "sageport.toml").write_text('fake_gpus = "2xA10G-24GB"\n')
    checks = _checks(_doctor(tmp_path, "--json"))
    assert checks["NVIDIA driver / NVML"]["verdict"] == "warn"
    assert "fake_gpus in sageport.toml" in checks["NVIDIA driver / NVML"]["detail"]
    listed = checks["GPUs listed"]["detail"]
    assert listed.startswith("2 GPU(s): ")
    assert listed.count("A10G") == 2
    # and it wins over the environment variable, as for `sageport serve`
    checks = _checks(_doctor(tmp_path, "--json", fake_env="4"))
    assert checks["GPUs listed"]["detail"].startswith("2 GPU(s): ")


def test_without_the_setting_the_environment_variable_still_counts(tmp_path: Path) -> None:
    (tmp_path / "sageport.toml").write_text('region = "eu-west-1"\n')
    checks = _checks(_doctor(tmp_path, "--json", fake_env="3"))
    assert checks["GPUs listed"]["detail"].startswith("3 GPU(s): ")


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "sageport.toml").write_text('fake_gpus = "four"\n')
    done = _doctor(tmp_path, "--json")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("sageport doctor: SAGEPORT_FAKE_GPUS=")
    assert line.endswith("(fake_gpus in sageport.toml)")
    (tmp_path / "sageport.toml").write_text('sandbox = "maybe"\n')
    done = _doctor(tmp_path, "--json")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"sageport doctor: {tmp_path / 'sageport.toml'}: "
        """sandbox must be "auto" or "off", not 'maybe'"""
    )


def test_the_table_prints_fixes_with_their_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich reads "[gpu]" as a style tag: unescaped, the fix said pip install 'sageport'."""
    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("nvidia-ml-py is installed: no fix to print")
    monkeypatch.setenv("COLUMNS", "300")  # one line per row: nothing folded mid-word
    done = _doctor(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pip install 'sageport[gpu]' (installs nvidia-ml-py)" in done.stdout
