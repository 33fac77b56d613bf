"""Training jobs that really run, driven with boto3 against a live server.

Each test submits a job the way AWS tutorials do (framework image URI, ``sagemaker_program``
and ``sagemaker_submit_directory`` hyperparameters, S3 channels, ``ml.m5.xlarge``) and checks
what a SageMaker user would check: the status, ``FailureReason``, the logs in CloudWatch Logs
and the ``model.tar.gz`` in S3. Restart and grace-period tests run on servers of their own.
"""

from __future__ import annotations

import importlib.util
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from server_helpers import start_server
from training_helpers import (
    BUCKET,
    TENSORFLOW_IMAGE,
    TORCH_SCRIPT,
    job_request,
    log_lines,
    log_text,
    model_files,
    npy,
    put_objects,
    submit,
    unique,
    wait,
    wait_completed,
    wait_for,
)

from sageport.cli.process import ServerProcess

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _error(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return dict(info.value.response["Error"])


# -- the happy path ------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_pytorch_job_trains_and_leaves_a_loadable_model(server: ServerProcess) -> None:
    import numpy as np
    import torch
    from torch import nn

    name = unique("torch-mlp")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    data = put_objects(
        server, f"{name}/data", {"x.npy": npy(x), "y.npy": npy(x.sum(axis=1, keepdims=True))}
    )
    created = submit(
        server,
        name,
        TORCH_SCRIPT,
        channels={"training": data},
        hyperparameters={"epochs": 5, "lr": 0.05},
    )
    assert created["TrainingJobArn"].endswith(f":training-job/{name}")

    job = wait_completed(server, name)
    assert job["SecondaryStatus"] == "Completed"
    assert (
        job["ModelArtifacts"]["S3ModelArtifacts"]
        == f"s3://{BUCKET}/output/{name}/output/model.tar.gz"
    )
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]

    state = torch.load(io.BytesIO(model_files(server, job)["model.pth"]), weights_only=True)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.load_state_dict(state)
    assert model(torch.zeros(1, 4)).shape == (1, 1)

    lines = log_lines(server, name)
    epochs = [line.split() for line in lines if line.startswith("epoch=")]
    assert [e[0] for e in epochs] == [f"epoch={i}" for i in range(5)]  # each once, in order
    losses = [float(e[1].removeprefix("loss=")) for e in epochs]
    assert losses[-1] < losses[0]  # it trained
    assert any("x.npy" in line and "y.npy" in line for line in lines)


def test_log_stream_is_named_like_sagemakers(server: ServerProcess) -> None:
    name = unique("stream")
    submit(server, name, "print('hello from the job')\n")
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    streams = server.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert len(streams) == 1
    prefix, epoch = streams[0]["logStreamName"].rsplit("-", 1)
    assert prefix == f"{name}/algo-1"
    assert abs(int(epoch) - time.time()) < 120
    assert "hello from the job" in log_lines(server, name)


# -- failures ------------------------------------------------------------------------------


def test_script_that_raises_fails_with_its_traceback_tail(server: ServerProcess) -> None:
    name = unique("raises")
    script = """
        print("about to fail")
        raise ValueError("learning rate 42 is far too large")
    """
    submit(server, name, script)
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert "ValueError: learning rate 42 is far too large" in job["FailureReason"]
    assert "ExitCode 1" in job["FailureReason"]
    assert "sageport:" not in job["FailureReason"]  # the script's own stderr, not our log lines
    assert "about to fail" not in job["FailureReason"]  # stdout is not the error
    assert job["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    # the artifacts of a failed job are stored too, as SageMaker does
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"/{name}/output/model.tar.gz")


def test_failure_file_becomes_the_failure_reason(server: ServerProcess) -> None:
    name = unique("failfile")
    script = """
        import os, sys
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("ClientError: the label column 'y' is missing from train.csv")
        sys.exit(2)
    """
    submit(server, name, script)
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "ClientError: the label column 'y' is missing from train.csv"


def test_sigkilled_script_fails_as_out_of_memory(server: ServerProcess) -> None:
    name = unique("oom")
    submit(server, name, "import os\nprint('allocating', flush=True)\nos.kill(os.getpid(), 9)\n")
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("OutOfMemory")


def test_empty_channel_fails_the_job_naming_the_uri(server: ServerProcess) -> None:
    name = unique("nodata")
    uri = f"s3://{BUCKET}/{name}/nothing-here/"
    submit(server, name, "print('never runs')\n", channels={"training": uri})
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert uri.rstrip("/") in job["FailureReason"]
    assert "never runs" not in log_lines(server, name)


# -- stopping ------------------------------------------------------------------------------

STOPPABLE = """
    import os, signal, sys, time
    def on_term(signum, frame):
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "note.txt"), "w") as f:
            f.write("stopped cleanly")
        print("got SIGTERM", flush=True)
        sys.exit(0)
    if os.environ.get("SM_HP_MODE") == "handle":
        signal.signal(signal.SIGTERM, on_term)
    elif os.environ.get("SM_HP_MODE") == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "wb") as f:
        f.write(b"weights so far")
    print("model written", flush=True)
    time.sleep(120)
"""


def _wait_log(server: ServerProcess, name: str, line: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in log_lines(server, name):
        assert time.monotonic() < deadline, log_text(server, name)
        time.sleep(0.05)


@pytest.fixture
def short_grace_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose stops escalate to SIGKILL after 2 s (SageMaker waits 120 s)."""
    proc = start_server(tmp_path / "data", "stop_grace_seconds = 2\n")
    yield proc
    proc.stop()


def test_stop_keeps_the_model_written_before_it(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("stop")
    submit(server, name, STOPPABLE, hyperparameters={"mode": "handle"})
    _wait_log(server, name, "model written")
    assert sm.stop_training_job(TrainingJobName=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = wait(server, name, timeout=20)
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    files = model_files(server, job)
    assert files["model.pth"] == b"weights so far"
    assert files["note.txt"] == b"stopped cleanly"
    assert "got SIGTERM" in log_lines(server, name)
    error = _error(sm.stop_training_job, TrainingJobName=name)
    assert error["Code"] == "ValidationException"


def test_stop_kills_a_script_that_ignores_sigterm_after_the_grace(
    short_grace_server: ServerProcess,
) -> None:
    server = short_grace_server
    sm = server.client("sagemaker")
    name = unique("stubborn")
    submit(server, name, STOPPABLE, hyperparameters={"mode": "ignore"})
    _wait_log(server, name, "model written")
    started = time.monotonic()
    sm.stop_training_job(TrainingJobName=name)
    job = wait(server, name, timeout=30)
    assert 1.5 < time.monotonic() - started < 15
    assert job["TrainingJobStatus"] == "Stopped"
    assert model_files(server, job)["model.pth"] == b"weights so far"


def test_max_runtime_stops_the_job(server: ServerProcess) -> None:
    name = unique("maxrt")
    submit(server, name, STOPPABLE, StoppingCondition={"MaxRuntimeInSeconds": 2})
    job = wait(server, name, timeout=30)
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert model_files(server, job)["model.pth"] == b"weights so far"


def test_stop_on_a_completed_job_is_refused(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("done")
    submit(server, name, "print('quick')\n")
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    error = _error(sm.stop_training_job, TrainingJobName=name)
    assert error["Code"] == "ValidationException"
    assert "Completed" in error["Message"]


# -- restarts ------------------------------------------------------------------------------


def test_job_survives_a_server_crash(fresh_server: ServerProcess) -> None:
    server = fresh_server
    name = unique("crash")
    script = """
        import os, time
        print("before the crash", flush=True)
        time.sleep(3)
        print("after the crash", flush=True)
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "wb") as f:
            f.write(b"survived")
    """
    submit(server, name, script)
    _wait_log(server, name, "before the crash")
    server.kill()
    server.start()
    job = wait_completed(server, name, timeout=30)
    assert model_files(server, job)["model.pth"] == b"survived"
    assert "after the crash" in log_lines(server, name)


def test_job_that_ended_while_the_server_was_down_is_finished(fresh_server: ServerProcess) -> None:
    server = fresh_server
    sm = server.client("sagemaker")
    ok, bad = unique("down-ok"), unique("down-bad")
    submit(server, ok, "import time\ntime.sleep(0.5)\nprint('finished alone')\n")
    submit(server, bad, "import time\ntime.sleep(0.5)\nraise SystemExit('gave up alone')\n")
    wait_for(server, ok, "Training")
    wait_for(server, bad, "Training")
    server.kill()
    time.sleep(2.0)
    server.start()
    assert wait(server, ok, timeout=30)["TrainingJobStatus"] == "Completed"
    failed = wait(server, bad, timeout=30)
    assert failed["TrainingJobStatus"] == "Failed"
    assert "gave up alone" in failed["FailureReason"]
    assert "finished alone" in log_lines(server, ok)
    assert sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"] == []


# -- the container contract ----------------------------------------------------------------


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap is not installed")
def test_hard_coded_opt_ml_paths_work(server: ServerProcess) -> None:
    name = unique("optml")
    data = put_objects(
        server, f"{name}/data", {"hello.txt": b"hi from s3", "sub/deeper.txt": b"nested"}
    )
    script = """
        with open("/opt/ml/input/data/training/hello.txt") as f:
            text = f.read()
        with open("/opt/ml/input/data/training/sub/deeper.txt") as f:
            text += "|" + f.read()
        with open("/opt/ml/model/model.pth", "w") as f:
            f.write(text)
        with open("/opt/ml/input/config/hyperparameters.json") as f:
            print("hps", f.read())
    """
    submit(server, name, script, channels={"training": data})
    job = wait_completed(server, name)
    assert model_files(server, job)["model.pth"] == b"hi from s3|nested"
    assert any("bubblewrap" in line for line in log_lines(server, name))


CONTRACT_SCRIPT = """
    import json, os
    from sagemaker_training import environment

    env = environment.Environment()
    report = {
        "env_vars": env.to_env_vars(),
        "probed": {"cpus": environment.num_cpus(), "gpus": environment.num_gpus()},
        "process_env": {
            k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINING_JOB"))
        },
        "channels": {c: sorted(os.listdir(d)) for c, d in env.channel_input_dirs.items()},
        "hyperparameters": env.hyperparameters,
        "cwd": os.getcwd(),
    }
    with open(os.path.join(env.model_dir, "contract.json"), "w") as f:
        json.dump(report, f)
"""


@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker_training") is None, reason="sagemaker-training missing"
)
def test_sagemaker_training_toolkit_sees_the_requested_job(server: ServerProcess) -> None:
    name = unique("contract")
    train = put_objects(server, f"{name}/train", {"a.csv": b"1,2\n", "b.csv": b"3,4\n"})
    test = put_objects(server, f"{name}/test", {"c.csv": b"5,6\n"})
    hps = {"epochs": 3, "lr": 0.1, "name": "abc", "flag": True, "cfg": {"a": 1}}
    submit(
        server, name, CONTRACT_SCRIPT, channels={"train": train, "test": test}, hyperparameters=hps
    )
    job = wait_completed(server, name)
    report = json.loads(model_files(server, job)["contract.json"])
    env = report["env_vars"]
    # Every SM_* variable the toolkit derives is one sageport wrote, with the same value,
    # and sageport writes no other (SM_STUDIO_LOCAL_MODE is an input the toolkit reads).
    ours = {k: v for k, v in report["process_env"].items() if k.startswith("SM_")}
    assert set(ours) - {"SM_STUDIO_LOCAL_MODE"} == set(env)
    # The toolkit counts the machine's CPUs; sageport gives the instance type's allocation.
    assert ours["SM_NUM_CPUS"] == "4"  # ml.m5.xlarge
    assert env["SM_NUM_CPUS"] == str(report["probed"]["cpus"])
    for key, value in env.items():
        if key == "SM_NUM_CPUS":
            continue
        if key == "SM_TRAINING_ENV":
            theirs, mine = json.loads(value), json.loads(ours[key])
            assert mine.pop("num_cpus") == 4
            theirs.pop("num_cpus")
            assert mine == theirs
            continue
        assert ours[key] == value, key
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert json.loads(env["SM_HPS"]) == hps
    assert report["hyperparameters"] == hps
    assert report["channels"] == {"train": ["a.csv", "b.csv"], "test": ["c.csv"]}
    assert report["process_env"]["SM_MODEL_DIR"] == "/opt/ml/model"
    assert report["process_env"]["TRAINING_JOB_NAME"] == name
    assert report["process_env"]["SM_HP_EPOCHS"] == "3"
    assert report["cwd"] == "/opt/ml/code"


@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_keras_job_fits_and_saves(server: ServerProcess, tmp_path: Path) -> None:
    import numpy as np
    import tensorflow as tf

    name = unique("keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    data = put_objects(
        server, f"{name}/data", {"x.npy": npy(x), "y.npy": npy(x.sum(axis=1, keepdims=True))}
    )
    script = """
        import os
        import numpy as np
        import tensorflow as tf
        train = os.environ["SM_CHANNEL_TRAINING"]
        x, y = np.load(train + "/x.npy"), np.load(train + "/y.npy")
        layers = tf.keras.layers
        model = tf.keras.Sequential([tf.keras.Input((4,)), layers.Dense(8), layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, epochs=int(os.environ["SM_HP_EPOCHS"]), verbose=2)
        model.save(os.path.join(os.environ["SM_MODEL_DIR"], "model.keras"))
    """
    submit(
        server,
        name,
        script,
        image=TENSORFLOW_IMAGE,
        channels={"training": data},
        hyperparameters={"epochs": 2},
    )
    job = wait_completed(server, name, timeout=120)
    path = tmp_path / "model.keras"
    path.write_bytes(model_files(server, job)["model.keras"])
    model = tf.keras.models.load_model(path)
    assert model.predict(x[:2], verbose=0).shape == (2, 1)


# -- the API around jobs -------------------------------------------------------------------


def test_list_filters_sorts_and_pages(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    tag = unique("lst")
    names = [f"{tag}-b", f"{tag}-a", f"{tag}-c"]
    for n in names:
        script = "raise SystemExit(3)\n" if n.endswith("-c") else "print('ok')\n"
        submit(server, n, script)
        time.sleep(0.01)  # distinct creation times
    for n in names:
        wait(server, n)

    def listed(**kwargs: Any) -> list[str]:
        out = sm.list_training_jobs(NameContains=tag, **kwargs)["TrainingJobSummaries"]
        return [s["TrainingJobName"] for s in out]

    assert listed() == list(reversed(names))  # default: newest first
    assert listed(SortBy="CreationTime", SortOrder="Ascending") == names
    assert listed(SortBy="Name", SortOrder="Ascending") == sorted(names)
    assert listed(SortBy="Name", SortOrder="Descending") == sorted(names, reverse=True)
    assert listed(SortBy="Status", SortOrder="Ascending")[-1] == f"{tag}-c"  # Completed < Failed
    assert listed(StatusEquals="Failed") == [f"{tag}-c"]
    assert sorted(listed(StatusEquals="Completed")) == sorted(names[:2])
    assert listed(StatusEquals="InProgress") == []

    first = sm.list_training_jobs(
        NameContains=tag, MaxResults=2, SortBy="Name", SortOrder="Ascending"
    )
    assert [s["TrainingJobName"] for s in first["TrainingJobSummaries"]] == sorted(names)[:2]
    second = sm.list_training_jobs(
        NameContains=tag,
        MaxResults=2,
        SortBy="Name",
        SortOrder="Ascending",
        NextToken=first["NextToken"],
    )
    assert [s["TrainingJobName"] for s in second["TrainingJobSummaries"]] == sorted(names)[2:]
    assert "NextToken" not in second
    summary = first["TrainingJobSummaries"][0]
    assert summary["TrainingJobStatus"] == "Completed"
    assert {"TrainingJobArn", "CreationTime", "LastModifiedTime", "TrainingEndTime"} <= set(summary)

    paginated = [
        s["TrainingJobName"]
        for page in sm.get_paginator("list_training_jobs").paginate(
            NameContains=tag, PaginationConfig={"PageSize": 1}
        )
        for s in page["TrainingJobSummaries"]
    ]
    assert paginated == list(reversed(names))


def test_describe_unknown_job(server: ServerProcess) -> None:
    error = _error(
        server.client("sagemaker").describe_training_job, TrainingJobName="no-such-job-anywhere"
    )
    assert error == {"Code": "ValidationException", "Message": "Requested resource not found."}


def test_duplicate_name_is_resource_in_use(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("dup")
    request = job_request(server, name, "print(1)\n")
    sm.create_training_job(**request)
    error = _error(sm.create_training_job, **request)
    assert error["Code"] == "ResourceInUse"
    assert name in error["Message"]
    wait(server, name)


def test_unknown_instance_type_is_refused(server: ServerProcess) -> None:
    # botocore checks the enum client-side; a client with validation off sends the near miss,
    # as a hand-written HTTP call or another SDK would
    from botocore.config import Config

    name = unique("itype")
    request = job_request(server, name, "print(1)\n")
    request["ResourceConfig"]["InstanceType"] = "ml.m5.xlarg"
    loose = server.client(
        "sagemaker", config=Config(parameter_validation=False, retries={"max_attempts": 1})
    )
    error = _error(loose.create_training_job, **request)
    assert error["Code"] == "ValidationException"
    assert "'ml.m5.xlarg'" in error["Message"]
    assert "ml.m5.xlarge" in error["Message"]
    assert (
        _error(loose.describe_training_job, TrainingJobName=name)["Code"] == "ValidationException"
    )


def test_gpu_instance_type_on_a_cpu_machine_is_refused(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    request = job_request(server, unique("gpu"), "print(1)\n")
    request["ResourceConfig"]["InstanceType"] = "ml.p4d.24xlarge"
    try:
        sm.create_training_job(**request)
    except ClientError as exc:
        error = exc.response["Error"]
    else:  # a machine with 8 usable GPUs runs it
        assert wait(server, request["TrainingJobName"])["TrainingJobStatus"] == "Completed"
        return
    assert error["Code"] == "ResourceLimitExceeded"
    assert "ml.p4d.24xlarge needs 8 GPUs" in error["Message"]


def test_pipe_mode_is_refused(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("pipe")
    data = put_objects(server, f"{name}/data", {"x.csv": b"1\n"})
    request = job_request(server, name, "print(1)\n", channels={"training": data})
    request["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    error = _error(sm.create_training_job, **request)
    assert error["Code"] == "ValidationException"
    assert "Pipe" in error["Message"]


def test_unmappable_image_says_how_to_map_it(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("image")
    request = job_request(
        server,
        name,
        "print(1)\n",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-algo:7",
    )
    error = _error(sm.create_training_job, **request)
    assert error["Code"] == "ValidationException"
    assert "my-own-algo" in error["Message"]
    assert "images" in error["Message"]
    assert "local:" in error["Message"]
