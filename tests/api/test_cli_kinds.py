"""``sageport --version``, and ``sageport jobs …`` / ``logs --json`` over training and
processing jobs alike, as a user types them, against a live server."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import processing_helpers
from training_helpers import submit, unique, wait

import sageport
from sageport.cli.process import ServerProcess

AMBIGUOUS = (
    "error: {name!r} is both a training job and a processing job: "
    "say which with --kind training or --kind processing"
)


def _sageport(
    server: ServerProcess | None, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    where = ["--data-dir", str(server.data_dir)] if server else []
    return subprocess.run(
        [sys.executable, "-m", "sageport", *args, *where],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _expected_version() -> str:
    try:
        return importlib.metadata.version("sageport")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout
        return sageport.__version__


def test_version_needs_no_server_and_imports_nothing_heavy(tmp_path: object) -> None:
    env = {**os.environ, "SAGEPORT_HOME": str(tmp_path)}  # nothing runs there
    for args in (["--version"], ["version"]):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "sageport", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"sageport {_expected_version()}\n"
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }
        heavy = {"boto3", "botocore", "starlette", "uvicorn", "sqlalchemy", "numpy", "orjson"}
        assert not imported & heavy
        assert not {m for m in imported if m.startswith(("sageport.api", "sageport.services"))}


def test_list_shows_both_kinds_newest_first(server: ServerProcess) -> None:
    prefix = unique("clikinds")
    training, processing = f"{prefix}-t", f"{prefix}-p"
    submit(server, training, "print('training')\n")
    processing_helpers.submit(server, processing, "print('processing')\n")
    wait(server, training)
    processing_helpers.wait(server, processing)

    listed = _sageport(server, "jobs", "list", "--name-contains", prefix, "--json")
    assert listed.returncode == 0, listed.stderr
    first, second = json.loads(listed.stdout)
    assert (first["Kind"], first["ProcessingJobName"]) == ("processing", processing)
    assert (second["Kind"], second["TrainingJobName"]) == ("training", training)
    assert first["CreationTime"] >= second["CreationTime"]  # ISO 8601, one time zone

    table = _sageport(server, "jobs", "list", "--name-contains", prefix)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "STATUS", "SECONDARY", "CREATED", "ENDED"]
    assert [r.split()[:4] for r in rows] == [
        [processing, "processing", "Completed", "-"],
        [training, "training", "Completed", "Completed"],
    ]

    only = _sageport(server, "jobs", "list", "--name-contains", prefix, "--kind", "processing")
    assert [r.split()[0] for r in only.stdout.splitlines()[1:]] == [processing]
    only = _sageport(server, "jobs", "list", "--name-contains", prefix, "--kind", "training")
    assert [r.split()[0] for r in only.stdout.splitlines()[1:]] == [training]
    one = _sageport(server, "jobs", "list", "--name-contains", prefix, "--limit", "1", "--json")
    assert [j["Kind"] for j in json.loads(one.stdout)] == ["processing"]

    bad = _sageport(server, "jobs", "list", "--kind", "transform")
    assert bad.returncode == 2  # typer's usage error, before any request
    assert "transform" in bad.stderr


def test_describe_and_stop_a_processing_job(server: ServerProcess) -> None:
    name = unique("cliprocdesc")
    processing_helpers.submit(server, name, "print('done')\n")
    processing_helpers.wait(server, name)

    described = _sageport(server, "jobs", "describe", name, "--json")
    assert described.returncode == 0, described.stderr
    job = json.loads(described.stdout)
    assert job["ProcessingJobName"] == name
    assert job["ProcessingJobStatus"] == "Completed"
    assert "ResponseMetadata" not in job

    text = _sageport(server, "jobs", "describe", name)
    assert text.returncode == 0, text.stderr
    fields = dict(line.split(None, 1) for line in text.stdout.splitlines() if " " in line)
    assert fields["Kind"].strip() == "processing"
    assert fields["Status"].strip() == "Completed"
    assert "1 x ml.m5.xlarge" in text.stdout
    assert f"{processing_helpers.CODE_DIR}" in text.stdout  # the code input's local path

    long = unique("cliprocstop")
    script = "import time\nprint('waiting', flush=True)\ntime.sleep(60)\n"
    processing_helpers.submit(server, long, script)
    sm = server.client("sagemaker")
    deadline = time.monotonic() + 30
    while "waiting" not in processing_helpers.log_text(server, long):
        assert time.monotonic() < deadline, processing_helpers.log_text(server, long)
        time.sleep(0.1)
    stopped = _sageport(server, "jobs", "stop", long, "--json")
    assert stopped.returncode == 0, stopped.stderr
    answer = json.loads(stopped.stdout)
    assert answer["ProcessingJobName"] == long
    assert answer["ProcessingJobStatus"] in ("Stopping", "Stopped")
    assert processing_helpers.wait(server, long, timeout=20)["ProcessingJobStatus"] == "Stopped"
    assert sm.describe_processing_job(ProcessingJobName=long)["ProcessingJobStatus"] == "Stopped"
    refused = _sageport(server, "jobs", "stop", long)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ValidationException: ")


def test_a_name_of_both_kinds_needs_kind(server: ServerProcess) -> None:
    name = unique("clitwice")
    submit(server, name, "print('from training')\n")
    processing_helpers.submit(server, name, "print('from processing')\n")
    wait(server, name)
    processing_helpers.wait(server, name)

    for command in ("describe", "stop"):
        result = _sageport(server, "jobs", command, name)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == AMBIGUOUS.format(name=name) + "\n"

    processing = _sageport(server, "jobs", "describe", name, "--kind", "processing", "--json")
    assert processing.returncode == 0, processing.stderr
    assert "ProcessingJobArn" in json.loads(processing.stdout)
    training = _sageport(server, "jobs", "describe", name, "--kind", "training", "--json")
    assert "TrainingJobArn" in json.loads(training.stdout)
    listed = _sageport(server, "jobs", "list", "--name-contains", name, "--json")
    assert sorted(j["Kind"] for j in json.loads(listed.stdout)) == ["processing", "training"]


def test_unknown_job_of_a_kind_is_an_error(server: ServerProcess) -> None:
    for command, kind in (("describe", "processing"), ("stop", "training"), ("stop", "processing")):
        result = _sageport(server, "jobs", command, "no-such-cli-kind", "--kind", kind)
        assert result.returncode == 1
        assert result.stderr == f"error: no {kind} job named 'no-such-cli-kind' on this server\n"
    result = _sageport(server, "logs", "no-such-cli-kind", "--json")
    assert (result.returncode, result.stdout) == (1, "")
    assert "no training or processing job named" in result.stderr


def _json_lines(stdout: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _recent(stamp: str) -> bool:
    assert stamp.endswith("Z")
    when = datetime.fromisoformat(stamp.removesuffix("Z")).replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - when) < timedelta(minutes=5)


def test_logs_json_lines_of_a_training_job_followed(server: ServerProcess) -> None:
    name = unique("clijson")
    script = """
        import time
        for i in range(3):
            print(f"step {i} \\"quoted\\" \\u00e9", flush=True)
            time.sleep(0.3)
    """
    submit(server, name, script)
    followed = _sageport(server, "logs", name, "-f", "--json")
    assert followed.returncode == 0, followed.stderr
    events = _json_lines(followed.stdout)
    steps = [e for e in events if e["message"].startswith("step")]
    assert [e["message"] for e in steps] == [f'step {i} "quoted" \u00e9' for i in range(3)]
    for event in events:
        assert set(event) == {"timestamp", "host", "stream", "message"}
        assert event["host"] == "algo-1"
        assert event["stream"].startswith(f"{name}/algo-1-")
        assert _recent(event["timestamp"])
    assert [e["timestamp"] for e in steps] == sorted(e["timestamp"] for e in steps)
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    again = _sageport(server, "logs", name, "--json")
    assert again.stdout == followed.stdout
    plain = _sageport(server, "logs", name)
    assert plain.stdout.splitlines() == [e["message"] for e in events]


def test_logs_json_lines_of_a_two_host_processing_job(server: ServerProcess) -> None:
    name = unique("clijsonproc")
    processing_helpers.submit(server, name, "print('row', flush=True)\n", instance_count=2)
    assert processing_helpers.wait(server, name)["ProcessingJobStatus"] == "Completed"
    result = _sageport(server, "logs", name, "--json", "--kind", "processing")
    assert result.returncode == 0, result.stderr
    rows = [e for e in _json_lines(result.stdout) if e["message"] == "row"]
    assert sorted(e["host"] for e in rows) == ["algo-1", "algo-2"]
    for event in rows:
        assert event["stream"].startswith(f"{name}/{event['host']}-")
        assert _recent(event["timestamp"])
