"""``sageport doctor`` shows which interpreter each image family runs with, as ``serve`` logs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sageport.runtime.images import FRAMEWORKS


def _doctor(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # a missing GPU-probe interpreter: the framework check fails at once; the table remains
    cmd = [sys.executable, "-m", "sageport", "doctor", "--data-dir", str(data)]
    cmd += ["--python", "/nonexistent/python", *args]
    env = {**os.environ, "SAGEPORT_FAKE_GPUS": "0", "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_doctor_json_has_the_interpreter_table(tmp_path: Path) -> None:
    (tmp_path / "sageport.toml").write_text(
        f'[images]\n"pytorch" = "/nonexistent/torch/python"\n"my-repo" = "{sys.executable}"\n'
    )
    done = _doctor(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["family"]: row for row in json.loads(done.stdout)["interpreters"]}
    assert list(rows) == [*FRAMEWORKS, "my-repo"]
    torch = rows["pytorch"]
    assert torch["python"] == "/nonexistent/torch/python"
    assert torch["mapped_by"] == "pytorch"
    assert torch["error"] == "not found"
    assert torch["missing"] == ["torch"]
    default = rows["tensorflow"]
    assert (default["python"], default["mapped_by"]) == (sys.executable, None)
    assert set(default["modules"]) == {"torch", "tensorflow", "sklearn", "xgboost"}
    assert default["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert rows["my-repo"]["mapped_by"] == "my-repo"
    assert rows["my-repo"]["modules"] == default["modules"]


def test_doctor_prints_the_table(tmp_path: Path) -> None:
    done = _doctor(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "image families → interpreters" in done.stdout
    assert f"{sys.executable} (default)" in done.stdout
