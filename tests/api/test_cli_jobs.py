"""``sageport jobs …`` and ``sageport logs`` as a user types them, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import processing_helpers
from server_helpers import dead_pid
from training_helpers import submit, unique, wait, wait_for

from sageport.cli.process import ServerProcess


def _sageport(
    server: ServerProcess, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sageport", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_jobs_list_and_describe(server: ServerProcess) -> None:
    name = unique("cli")
    submit(server, name, "print('from the cli job')\n")
    wait(server, name)

    listed = _sageport(server, "jobs", "list", "--name-contains", name, "--json")
    assert listed.returncode == 0, listed.stderr
    (summary,) = json.loads(listed.stdout)
    assert summary["TrainingJobName"] == name
    assert summary["TrainingJobStatus"] == "Completed"

    table = _sageport(server, "jobs", "list", "--name-contains", name)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "KIND", "STATUS", "SECONDARY"]
    assert row.split()[:4] == [name, "training", "Completed", "Completed"]

    described = _sageport(server, "jobs", "describe", name, "--json")
    assert described.returncode == 0, described.stderr
    job = json.loads(described.stdout)
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"{name}/output/model.tar.gz")
    assert "ResponseMetadata" not in job

    text = _sageport(server, "jobs", "describe", name)
    assert "Completed (Completed)" in text.stdout
    assert "ml.m5.xlarge" in text.stdout


def test_unknown_job_is_an_error(server: ServerProcess) -> None:
    result = _sageport(server, "jobs", "describe", "no-such-cli-job")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no training or processing job named 'no-such-cli-job' on this server"
    )
    result = _sageport(server, "logs", "no-such-cli-job")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no training or processing job named 'no-such-cli-job' on this server"
    )
    result = _sageport(server, "logs", "no-such-cli-job", "--type", "processing")
    assert result.returncode == 1
    assert "no processing job named 'no-such-cli-job'" in result.stderr


def test_logs_follow_until_the_job_ends_and_stop(server: ServerProcess) -> None:
    name = unique("clilogs")
    script = """
        import time
        for i in range(3):
            print(f"step {i}", flush=True)
            time.sleep(0.3)
    """
    submit(server, name, script)
    followed = _sageport(server, "logs", name, "-f")
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert [line for line in lines if line.startswith("step")] == ["step 0", "step 1", "step 2"]
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    again = _sageport(server, "logs", name)
    assert again.stdout == followed.stdout

    long = unique("clistop")
    submit(server, long, "import time\nprint('waiting', flush=True)\ntime.sleep(60)\n")
    wait_for(server, long, "Training")
    time.sleep(0.2)
    stopped = _sageport(server, "jobs", "stop", long, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["TrainingJobStatus"] in ("Stopping", "Stopped")
    assert wait(server, long, timeout=20)["TrainingJobStatus"] == "Stopped"
    refused = _sageport(server, "jobs", "stop", long)
    assert refused.returncode == 1
    assert "ValidationException" in refused.stderr


def test_no_server_is_a_clear_error(tmp_path: object) -> None:
    from pathlib import Path

    from sageport.cli.process import free_port

    data = Path(str(tmp_path)) / "nothing-runs-here"
    data.mkdir()

    def jobs_list() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sageport", "jobs", "list", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # no record, or the record of a server that is gone: nothing is asked of the default port
    # (a server there would be another data folder's)
    for record in (None, {"endpoint_url": "http://127.0.0.1:1", "pid": dead_pid()}):
        if record is not None:
            (data / "server.json").write_text(json.dumps(record))
        result = jobs_list()
        assert result.returncode == 1
        assert result.stderr == (
            f"error: no sageport server is running on {data} "
            f"(start one with: sageport serve --data-dir {data})\n"
        )
    # a live process that does not answer (a server still starting)
    url = f"http://127.0.0.1:{free_port()}"
    (data / "server.json").write_text(json.dumps({"endpoint_url": url, "pid": os.getpid()}))
    result = jobs_list()
    assert result.returncode == 1
    assert f"no sageport server answers at {url}" in result.stderr


def test_logs_of_a_processing_job(server: ServerProcess) -> None:
    name = unique("cliproc")
    script = """
        import time
        for i in range(3):
            print(f"row {i}", flush=True)
            time.sleep(0.2)
    """
    processing_helpers.submit(server, name, script)
    followed = _sageport(server, "logs", name, "-f")
    assert followed.returncode == 0, followed.stderr
    assert [x for x in followed.stdout.splitlines() if x.startswith("row")] == [
        "row 0",
        "row 1",
        "row 2",
    ]
    assert processing_helpers.wait(server, name)["ProcessingJobStatus"] == "Completed"
    again = _sageport(server, "logs", name)
    assert again.stdout == followed.stdout


def test_a_name_used_by_both_kinds_shows_training_and_says_so(server: ServerProcess) -> None:
    name = unique("cliboth")
    submit(server, name, "print('from training')\n")
    processing_helpers.submit(server, name, "print('from processing')\n")
    wait(server, name)
    processing_helpers.wait(server, name)
    both = _sageport(server, "logs", name)
    assert both.returncode == 0, both.stderr
    assert "from training" in both.stdout
    assert "from processing" not in both.stdout
    assert "--kind processing" in both.stderr
    processing = _sageport(server, "logs", name, "--type", "processing")
    assert processing.returncode == 0, processing.stderr
    assert "from processing" in processing.stdout
    assert "from training" not in processing.stdout
