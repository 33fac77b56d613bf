"""Specs, handles and exits survive JSON; the registry builds backends by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sageport.backends.base import ExitInfo, HostHandle, LaunchSpec, parse_log_line
from sageport.backends.fake import FakeBackend
from sageport.backends.local import LocalBackend
from sageport.backends.registry import backend_names, get_backend


def test_json_round_trips(tmp_path: Path) -> None:
    spec = LaunchSpec(
        host_dir=tmp_path,
        argv=["python", "t.py"],
        env={"A": "1"},
        cwd="/opt/ml/code",
        run_dir=tmp_path / "run",
        sandbox=True,
        hostnames={"algo-1": "127.0.0.1"},
        extra_binds=[("/data", "/opt/ml/processing/input")],
        max_log_bytes=10,
        stop_grace_s=1.5,
    )
    assert LaunchSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    handle = HostHandle(tmp_path, 42, 1.5)
    assert HostHandle.from_json(json.loads(json.dumps(handle.to_json()))) == handle
    info = ExitInfo(None, None, 2.0, "gone")
    assert ExitInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_parse_log_line_never_raises() -> None:
    record = parse_log_line(b'{"t": 5, "s": "stderr", "m": "x"}')
    assert record is not None
    assert (record.timestamp_ms, record.stream, record.message) == (5, "stderr", "x")
    assert parse_log_line(b"not json") is None
    assert parse_log_line(b'{"t": 5, "s": "other", "m": "x"}') is None


def test_registry() -> None:
    assert {"local", "fake"} <= set(backend_names())
    assert isinstance(get_backend("local"), LocalBackend)
    assert isinstance(get_backend("fake", sandbox=False), FakeBackend)
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("nope")
