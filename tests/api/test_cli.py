"""The commands a user types: serve, env, quickstart."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from sageport.cli.process import ServerProcess


def _sageport(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sageport", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_first_start_creates_the_data_folder(fresh_server: ServerProcess) -> None:
    data = fresh_server.data_dir
    assert (data / "sageport.db").exists()
    creds = data / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    config = (data / "sagemaker-config.yaml").read_text()
    assert "TelemetryOptOut: true" in config
    assert "DefaultS3Bucket: sagemaker-sageport" in config


def test_env_points_unchanged_boto3_code_at_the_server(fresh_server: ServerProcess) -> None:
    result = _sageport("env", "--data-dir", str(fresh_server.data_dir))
    assert result.returncode == 0, result.stderr
    assert f"export AWS_ENDPOINT_URL={fresh_server.url}" in result.stdout
    script = (
        result.stdout
        + '\npython -c \'import boto3; print(boto3.client("sts").get_caller_identity()["Account"]);'
        'print(len(boto3.client("sagemaker").list_models()["Models"]))\'\n'
    )
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean_env["HOME"] = str(fresh_server.data_dir)  # no ~/.aws to fall back on
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["000000000000", "0"]


def test_quickstart_runs_a_round_trip(tmp_path: Path) -> None:
    result = _sageport("quickstart", "--data-dir", str(tmp_path / "qs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  s3.get_object hello.txt" in result.stdout
    assert "sagemaker.describe_model" in result.stdout
