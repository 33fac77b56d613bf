"""The commands a user types: serve, env, quickstart."""

from __future__ import annotations

import importlib.util
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sageport.cli.process import ServerProcess, free_port


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


@pytest.mark.parametrize("framework", ["", "numpy"], ids=["auto", "numpy"])
def test_quickstart_runs_a_round_trip(tmp_path: Path, framework: str) -> None:
    """Train on this machine, deploy, predict, clean up — each step printed as it goes; with
    NumPy alone too (what a machine without torch runs)."""
    env = {**os.environ, "SAGEPORT_QUICKSTART_FRAMEWORK": framework}
    result = _sageport("quickstart", "--data-dir", str(tmp_path / "qs"), env=env)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [
        "[1/4] Train a linear model",
        "ok  sagemaker.create_training_job quickstart-train-",
        "Training: ",
        "ok  training job Completed",
        "[2/4] Deploy it to an endpoint (ml.m5.large)",
        "ok  endpoint InService",
        "[3/4] Predict",
        "ok  sagemaker-runtime.invoke_endpoint (JSON)",
        "f([1.0, 2.0]) = -0.50",
        "[4/4] Clean up",
        "ok  sagemaker.delete_model quickstart-",
        "Done in",
    ]
    positions = [out.find(step) for step in steps]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(steps, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions), "steps printed out of order"
    assert "learned w=[3.0, -2.0] b=0.50" in out  # the training script's own output
    torch = importlib.util.find_spec("torch") is not None
    assert ("(PyTorch)" if torch and framework != "numpy" else "(NumPy)") in out
    data = tmp_path / "qs"
    check = ServerProcess(data)
    check.start()
    try:
        sm = check.client("sagemaker")
        assert sm.list_endpoints()["Endpoints"] == []
        assert sm.list_models()["Models"] == []
        (job,) = sm.list_training_jobs()["TrainingJobSummaries"]
        assert job["TrainingJobStatus"] == "Completed"
    finally:
        check.stop()


def _exports(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        out[name] = shlex.split(value)[0] if value else ""
    return out


def test_env_names_an_sdk_config_with_telemetry_off_and_a_default_bucket(
    fresh_server: ServerProcess,
) -> None:
    result = _sageport("env", "--data-dir", str(fresh_server.data_dir))
    assert result.returncode == 0, result.stderr
    exports = _exports(result.stdout)
    config_path = Path(exports["SAGEMAKER_USER_CONFIG_OVERRIDE"])
    assert config_path == fresh_server.data_dir / "sagemaker-config.yaml"
    config = yaml.safe_load(config_path.read_text())
    modules = config["SageMaker"]["PythonSDK"]["Modules"]
    assert modules["TelemetryOptOut"] is True
    assert modules["Session"]["DefaultS3Bucket"] == "sagemaker-sageport"
    assert config["SageMaker"]["TrainingJob"]["RoleArn"].startswith("arn:aws:iam::000000000000:")
    assert exports["AWS_ACCESS_KEY_ID"] == fresh_server.keys[0]
    assert exports["AWS_DEFAULT_REGION"] == fresh_server.region


def test_serve_on_all_interfaces_warns(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "sageport", "serve", "--host", "0.0.0.0", "--port", str(port),
           "--data-dir", str(tmp_path / "data")]  # fmt: skip
    lines: list[str] = []
    with subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "sageport serving on" in line:
                    break
        finally:
            proc.terminate()
            proc.wait(30)
    warning = next((line for line in lines if line.startswith("WARNING")), "")
    assert "binding to 0.0.0.0" in warning, lines
    assert str(tmp_path / "data" / "credentials.json") in warning
    # and it still tells clients to come in over loopback
    assert f"sageport serving on http://127.0.0.1:{port}" in lines[-1]


def test_a_configured_account_id_shows_in_arns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sageport.toml").write_text('account_id = "123456789012"\nregion = "eu-west-1"\n')
    proc = ServerProcess(data, region="eu-west-1")
    proc.start()
    try:
        assert proc.client("sts").get_caller_identity()["Account"] == "123456789012"
        sm = proc.client("sagemaker")
        arn = sm.create_model(
            ModelName="acct",
            PrimaryContainer={"Image": "123.dkr.ecr.eu-west-1.amazonaws.com/x:1"},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/R",
        )["ModelArn"]
        assert arn == "arn:aws:sagemaker:eu-west-1:123456789012:model/acct"
        assert sm.list_tags(ResourceArn=arn)["Tags"] == []
        s3 = proc.client("s3")
        assert s3.list_buckets()["Owner"]["ID"] == "123456789012"
        config = yaml.safe_load((data / "sagemaker-config.yaml").read_text())
        assert config["SageMaker"]["Model"]["ExecutionRoleArn"].startswith(
            "arn:aws:iam::123456789012:role/"
        )
        exports = _exports(_sageport("env", "--data-dir", str(data)).stdout)
        assert exports["AWS_DEFAULT_REGION"] == "eu-west-1"
    finally:
        proc.stop()
