"""The launcher's exit record when the normal write fails (a full disk): it goes into the
space reserved at start, or the launcher says why it could not record it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sageport.backends.launcher import EXIT_FILE, RESERVE_FILE, record_exit, reserve_exit_file

INFO = {"returncode": 3, "signal": None, "ended_at": 1.0, "reason": None}


def _block_normal_write(run_dir: Path) -> None:
    """The temp file write_json_atomic opens is a folder: its open fails as ENOSPC would."""
    (run_dir / f".{EXIT_FILE}.{os.getpid()}.tmp").mkdir()


def test_a_normal_write_leaves_no_reserve(tmp_path: Path) -> None:
    reserve = reserve_exit_file(tmp_path)
    assert record_exit(tmp_path, INFO, reserve) == 0
    assert json.loads((tmp_path / EXIT_FILE).read_text()) == INFO
    assert not (tmp_path / RESERVE_FILE).exists()


def test_a_failed_write_goes_into_the_reserved_space(tmp_path: Path) -> None:
    reserve = reserve_exit_file(tmp_path)
    _block_normal_write(tmp_path)
    assert record_exit(tmp_path, INFO, reserve) == 0
    data = json.loads((tmp_path / EXIT_FILE).read_text())
    assert {k: data[k] for k in INFO} == INFO  # the real status, not a made-up one
    assert "recorded in reserved space" in data["note"]


def test_without_a_reserve_the_launcher_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _block_normal_write(tmp_path)
    assert record_exit(tmp_path, INFO, None) == 1
    assert not (tmp_path / EXIT_FILE).exists()
    assert "the launcher could not record the exit status: " in capsys.readouterr().err
