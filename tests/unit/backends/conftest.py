"""Fixtures for backend tests: a host folder with a script in it, and a way to wait for exit."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from backend_helpers import MakeSpec

from sageport.backends.base import LaunchSpec
from sageport.backends.local import LocalBackend


@pytest.fixture
def backend() -> LocalBackend:
    return LocalBackend()


@pytest.fixture
def make_spec(tmp_path: Path) -> MakeSpec:
    """``make_spec(script, sandbox=False, **fields)``: a spec running ``script`` with Python."""

    def make(script: str, *, sandbox: bool = False, **fields: object) -> LaunchSpec:
        host_dir = tmp_path / "host"
        code = host_dir / "code"
        code.mkdir(parents=True, exist_ok=True)
        (code / "main.py").write_text(textwrap.dedent(script))
        root = "/opt/ml" if sandbox else str(host_dir)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TEST_DIR": str(tmp_path)}
        return LaunchSpec(
            host_dir=host_dir,
            argv=[sys.executable, "-u", f"{root}/code/main.py"],
            env=env,
            cwd=f"{root}/code",
            run_dir=tmp_path / "run",
            sandbox=sandbox,
            **fields,  # type: ignore[arg-type]
        )

    return make
