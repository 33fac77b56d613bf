"""How the user code runs and what Describe says about it, against a live server.

Entry points the toolkit knows (``.sh``, ``requirements.txt`` installed into the job's own
overlay), ``ContainerEntrypoint``, ``MetricDefinitions`` → ``FinalMetricDataList``, a log
flood whose end must not be lost, the times SageMaker reports once a job ended, and
DeleteTrainingJob, and a server whose Python lives in a venv under /tmp.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from server_helpers import start_server
from training_helpers import (
    PYTORCH_IMAGE,
    log_lines,
    model_files,
    report,
    submit,
    unique,
    wait,
    wait_completed,
    wait_for,
)
from wheel_helpers import tiny_wheel

from sageport.cli.process import ServerProcess


def test_requirements_txt_is_installed_into_the_jobs_own_overlay(server: ServerProcess) -> None:
    package = f"sageport_tiny_{unique('p').split('-')[1]}"
    wheel_name, wheel = tiny_wheel(package, source="ANSWER = 42\n")
    script = f"""
        import json, os, sys
        import {package}
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
            json.dump({{"answer": {package}.ANSWER, "file": {package}.__file__}}, f)
    """
    name = unique("reqs")
    submit(
        server,
        name,
        script,
        extra_files={"requirements.txt": f"./{wheel_name}\n", wheel_name: wheel},
    )
    job = wait_completed(server, name, timeout=180)
    seen = report(server, job)
    assert seen["answer"] == 42
    assert "sageport-overlay" in seen["file"] or "/overlay/" in seen["file"]
    assert any("Installing requirements into" in line for line in log_lines(server, name))
    # never into the server's own environment (the same interpreter as this test's)
    assert importlib.util.find_spec(package) is None


SHELL_SCRIPT = """\
#!/bin/sh
set -e
echo "shell got: $*"
printf 'from the shell' > "$SM_MODEL_DIR/from-shell.txt"
"""


@pytest.mark.parametrize("program", ["train.sh", "bin/train.sh"])
def test_shell_entry_point_runs_with_the_hyperparameters_as_arguments(
    server: ServerProcess, program: str
) -> None:
    name = unique("shell")
    submit(server, name, SHELL_SCRIPT, program=program, hyperparameters={"epochs": 2})
    job = wait_completed(server, name)
    assert model_files(server, job) == {"from-shell.txt": b"from the shell"}
    assert "shell got: --epochs 2" in log_lines(server, name)


ENTRYPOINT_SCRIPT = """
    import json, os, sys
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump({"argv": sys.argv, "python": sys.executable, "cwd": os.getcwd()}, f)
"""


def test_container_entrypoint_and_arguments_run_as_given(server: ServerProcess) -> None:
    name = unique("entry")
    submit(
        server,
        name,
        ENTRYPOINT_SCRIPT,
        AlgorithmSpecification={
            "TrainingImage": PYTORCH_IMAGE,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python3", "/opt/ml/code/train.py"],
            "ContainerArguments": ["--mode", "custom", "--model-dir=/opt/ml/model"],
        },
    )
    job = wait_completed(server, name)
    seen = report(server, job)
    assert seen["argv"][1:3] == ["--mode", "custom"]  # no hyperparameters appended
    assert seen["argv"][3].startswith("--model-dir=")
    assert seen["argv"][3].endswith("/model")
    assert len(seen["argv"]) == 4
    assert seen["python"] == sys.executable  # "python3" is the image's (mapped) interpreter
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"][0] == "python3"


METRICS_SCRIPT = """
    import sys
    for step in range(12_000):  # more matches than sageport ever kept in a job record
        print(f"step {step} loss={1.0 / (step + 1):.6f}")
    print("validation acc=0.8125")
    print("final loss=0.000042", flush=True)
"""


def test_final_metric_data_list_holds_the_last_match_of_each_metric(
    server: ServerProcess,
) -> None:
    name = unique("metrics")
    submit(
        server,
        name,
        METRICS_SCRIPT,
        AlgorithmSpecification={
            "TrainingImage": PYTORCH_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": r"loss=([0-9.]+)"},
                {"Name": "validation:accuracy", "Regex": r"acc=([0-9.]+)"},
                {"Name": "never:seen", "Regex": r"nothing=([0-9.]+)"},
            ],
        },
    )
    job = wait_completed(server, name, timeout=120)
    final = {m["MetricName"]: m for m in job["FinalMetricDataList"]}
    assert set(final) == {"train:loss", "validation:accuracy"}
    assert final["train:loss"]["Value"] == pytest.approx(0.000042)
    assert final["validation:accuracy"]["Value"] == pytest.approx(0.8125)
    assert job["TrainingStartTime"] <= final["train:loss"]["Timestamp"] <= job["TrainingEndTime"]


FLOOD_SCRIPT = """
    import sys
    line = "x" * 120 + "\\n"
    sys.stdout.write(line * 24_000)  # ~2.9 MiB in one go, far more than one log read
    print("the last stdout line", flush=True)
    raise ValueError("broke right at the end")
"""


def test_the_end_of_a_fast_log_is_kept_and_quoted(server: ServerProcess) -> None:
    name = unique("flood")
    submit(server, name, FLOOD_SCRIPT)
    job = wait(server, name, timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert "ValueError: broke right at the end" in job["FailureReason"]
    assert "ExitCode 1" in job["FailureReason"]
    lines = log_lines(server, name)
    assert sum(line == "x" * 120 for line in lines) == 24_000
    assert "the last stdout line" in lines
    assert "ValueError: broke right at the end" in lines  # (stderr and stdout interleave freely)


def test_times_and_defaults_describe_fills_as_sagemaker_does(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("billable")
    submit(server, name, "import time\nprint('working', flush=True)\ntime.sleep(1.5)\n")
    running = wait_for(server, name, "Training")
    for absent in ("TrainingTimeInSeconds", "BillableTimeInSeconds", "ModelArtifacts"):
        assert absent not in running, absent
    job = wait_completed(server, name)
    assert job["TrainingTimeInSeconds"] >= 1
    assert job["BillableTimeInSeconds"] == job["TrainingTimeInSeconds"]  # one instance
    elapsed = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
    assert abs(job["BillableTimeInSeconds"] - elapsed) <= 1
    assert job["EnableNetworkIsolation"] is False
    assert job["EnableInterContainerTrafficEncryption"] is False
    assert job["EnableManagedSpotTraining"] is False
    again = sm.describe_training_job(TrainingJobName=name)
    assert again["BillableTimeInSeconds"] == job["BillableTimeInSeconds"]  # fixed once ended


def test_billable_time_counts_every_instance(server: ServerProcess) -> None:
    name = unique("billable2")
    submit(
        server,
        name,
        "import time\ntime.sleep(1.2)\n",
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
    )
    job = wait_completed(server, name, timeout=60)
    assert job["BillableTimeInSeconds"] == 2 * job["TrainingTimeInSeconds"]


def _error(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return dict(info.value.response["Error"])


def test_delete_training_job(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    done, running = unique("del-done"), unique("del-running")
    submit(server, done, "print('done')\n")
    submit(server, running, "import time\ntime.sleep(60)\n")
    assert wait(server, done)["TrainingJobStatus"] == "Completed"
    wait_for(server, running, "Training")

    error = _error(sm.delete_training_job, TrainingJobName=running)
    assert error["Code"] == "ValidationException"
    assert "InProgress" in error["Message"]

    sm.delete_training_job(TrainingJobName=done)
    error = _error(sm.describe_training_job, TrainingJobName=done)
    assert error == {"Code": "ValidationException", "Message": "Requested resource not found."}
    listed = sm.list_training_jobs(NameContains=done)["TrainingJobSummaries"]
    assert listed == []
    assert _error(sm.delete_training_job, TrainingJobName=done)["Code"] == "ValidationException"

    sm.stop_training_job(TrainingJobName=running)
    assert wait(server, running, timeout=30)["TrainingJobStatus"] == "Stopped"
    sm.delete_training_job(TrainingJobName=running)


def test_deleting_a_job_frees_its_folder_and_its_name_starts_clean(server: ServerProcess) -> None:
    """The host folders go with the record: a new job of the same name must not find the old
    one's model files or launcher state (its exit status would read as the new job's)."""
    sm = server.client("sagemaker")
    name = unique("del-reuse")
    first = """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "old.txt"), "w").write("old")
    """
    submit(server, name, first)
    wait_completed(server, name)
    job_folder = server.data_dir / "jobs" / "training" / name
    assert job_folder.is_dir()

    sm.delete_training_job(TrainingJobName=name)
    assert not job_folder.exists()

    second = """
        import os, time
        time.sleep(1)
        found = sorted(os.listdir(os.environ["SM_MODEL_DIR"]))
        open(os.path.join(os.environ["SM_MODEL_DIR"], "new.txt"), "w").write(",".join(found))
    """
    submit(server, name, second)
    job = wait_completed(server, name)
    assert model_files(server, job) == {"new.txt": b""}


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_server_run_from_a_venv_under_tmp_runs_sandboxed_jobs(tmp_path: Path) -> None:
    """The sandbox has a /tmp of its own: the venv's interpreter must still be there."""
    venv = Path(tempfile.mkdtemp(prefix="sageport-venv-", dir="/tmp"))
    venv.chmod(0o755)  # the job's user (not the server's) runs this interpreter: it must enter
    try:
        # --system-site-packages: this environment's sageport and its dependencies
        args = ["--without-pip", "--system-site-packages", str(venv)]
        subprocess.run([sys.executable, "-m", "venv", *args], check=True)
        python = str(venv / "bin" / "python")
        server = start_server(tmp_path / "data", "", python=python)
        try:
            name = unique("tmp-venv")
            script = """
                import json, os, sys
                with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
                    json.dump({"python": sys.executable, "prefix": sys.prefix,
                               "model_dir": os.environ["SM_MODEL_DIR"]}, f)
            """
            submit(server, name, script)
            job = wait_completed(server, name)
            seen = report(server, job)
            assert seen == {"python": python, "prefix": str(venv), "model_dir": "/opt/ml/model"}
        finally:
            server.stop()
    finally:
        shutil.rmtree(venv)
