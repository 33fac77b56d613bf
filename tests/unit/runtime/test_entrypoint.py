from __future__ import annotations

from pathlib import Path

import pytest

from sageport.runtime.entrypoint import (
    EntryPointType,
    entry_point_type,
    plan_launch,
    program_from_hyperparameters,
    validate_entry_point,
)
from sageport.runtime.errors import InvalidEntryPoint

PY = "/usr/bin/python3"
ARGS = ["--epochs", "2", "--name", "a b"]


def test_python_program_runs_after_the_end_of_options_marker(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    plan = plan_launch(code_dir=tmp_path, program="train.py", cmd_args=ARGS, python=PY)
    assert plan.argv == (PY, "--", "train.py", *ARGS)
    assert plan.cwd == tmp_path
    assert plan.install == ()


def test_requirements_are_installed_first(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    plan = plan_launch(code_dir=tmp_path, program="train.py", cmd_args=[], python=PY)
    assert plan.install == ((PY, "-m", "pip", "install", "-r", "requirements.txt"),)


def test_python_package_is_installed_and_run_as_module(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    plan = plan_launch(code_dir=tmp_path, program="pkg/train.py", cmd_args=ARGS, python=PY)
    assert entry_point_type(tmp_path, "pkg/train.py") is EntryPointType.PYTHON_PACKAGE
    assert plan.install == ((PY, "-m", "pip", "install", ".", "-r", "requirements.txt"),)
    assert plan.argv == (PY, "-m", "pkg/train", *ARGS)


def test_shell_and_other_commands_run_through_sh_with_quoting(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")  # .sh wins over setup.py, as in the toolkit
    plan = plan_launch(code_dir=tmp_path, program="run.sh", cmd_args=ARGS, python=PY)
    assert plan.argv == ("/bin/sh", "-c", "./run.sh --epochs 2 --name 'a b'")
    assert plan.make_executable == tmp_path / "run.sh"
    assert plan.install == ()
    bare = plan_launch(code_dir=tmp_path / "none", program="train", cmd_args=[], python=PY)
    assert bare.argv == ("/bin/sh", "-c", "./train ")


def test_container_entrypoint_replaces_everything(tmp_path: Path) -> None:
    plan = plan_launch(
        code_dir=tmp_path,
        program=None,
        cmd_args=ARGS,
        python=PY,
        container_entrypoint=["/bin/bash"],
        container_arguments=["-c", "echo hi"],
    )
    assert plan.argv == ("/bin/bash", "-c", "echo hi")
    only_args = plan_launch(
        code_dir=tmp_path,
        program=None,
        cmd_args=[],
        python=PY,
        container_arguments=["python3", "x.py"],
    )
    assert only_args.argv == ("python3", "x.py")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (None, "is empty"),
        ("", "is empty"),
        ("-c", "leading '-'"),
        ("/etc/x.py", "leading '/'"),
        ("a b.py", "character"),
        ("../x.py", "'.' or '..'"),
        ("x;rm.py", "character"),
    ],
)
def test_unsafe_entry_points_are_refused_like_the_toolkit(name: str | None, reason: str) -> None:
    with pytest.raises(InvalidEntryPoint, match=reason):
        validate_entry_point(name)


def test_program_source() -> None:
    assert program_from_hyperparameters({"sagemaker_program": "a.py"}, {}) == "a.py"
    assert (
        program_from_hyperparameters({"sagemaker_program": "a.py"}, {"SAGEMAKER_PROGRAM": "b.py"})
        == "b.py"
    )
    assert program_from_hyperparameters({}, {}) is None
