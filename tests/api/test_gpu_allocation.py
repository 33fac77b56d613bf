"""GPU allocation on a fake 4-GPU inventory, driven with boto3 against a live server.

The server's GPUs are described by ``fake_gpus`` in ``sageport.toml`` (or ``SAGEPORT_FAKE_GPUS``);
jobs are real processes that print what they were given, so the tests read from the jobs' own
logs which GPUs each one saw and when it ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from training_helpers import log_lines, submit, unique, wait

from sageport.cli.process import ServerProcess

REPORT_SCRIPT = """
    import os, time
    start = time.time()
    print("GPUREPORT start=%.3f" % start)
    print("GPUREPORT cuda=%r" % os.environ.get("CUDA_VISIBLE_DEVICES"))
    print("GPUREPORT sm_num_gpus=%s" % os.environ.get("SM_NUM_GPUS"))
    print("GPUREPORT order=%s" % os.environ.get("CUDA_DEVICE_ORDER"))
    time.sleep(float(os.environ.get("SLEEP_SECONDS", "0")))
    print("GPUREPORT end=%.3f" % time.time())
"""


def start_server(data_dir: Path, settings: str) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "sageport.toml").write_text(settings)
    proc = ServerProcess(data_dir)
    proc.start()
    return proc


@pytest.fixture
def gpu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Four fake 80 GB GPUs; CPU and memory accounting loose enough that GPUs are the limit."""
    proc = start_server(
        tmp_path / "data",
        'fake_gpus = "4"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n',
    )
    yield proc
    proc.stop()


def report(server: ServerProcess, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in log_lines(server, name):
        if line.startswith("GPUREPORT "):
            key, _, value = line.removeprefix("GPUREPORT ").partition("=")
            out[key] = value
    return out


def run_job(server: ServerProcess, instance_type: str, sleep: float = 0.0) -> dict[str, Any]:
    name = unique(instance_type.replace(".", "-"))
    submit(
        server,
        name,
        REPORT_SCRIPT,
        ResourceConfig={"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 1},
        Environment={"SLEEP_SECONDS": str(sleep)},
    )
    return {"name": name}


def visible(value: str) -> list[str]:
    text = eval(value)
    assert isinstance(text, str), value
    return [v for v in text.split(",") if v]


def downloading_started(job: dict[str, Any]) -> Any:
    return next(
        t["StartTime"] for t in job["SecondaryStatusTransitions"] if t["Status"] == "Downloading"
    )


def test_six_one_gpu_jobs_share_four_gpus_exclusively_in_fifo_order(
    gpu_server: ServerProcess,
) -> None:
    names = [run_job(gpu_server, "ml.g4dn.xlarge", sleep=3.0)["name"] for _ in range(6)]
    jobs = [wait(gpu_server, n, timeout=120) for n in names]
    assert [j["TrainingJobStatus"] for j in jobs] == ["Completed"] * 6, [
        j.get("FailureReason") for j in jobs
    ]

    spans = []
    for name in names:
        seen = report(gpu_server, name)
        gpus = visible(seen["cuda"])
        assert len(gpus) == 1, seen
        assert seen["sm_num_gpus"] == "1"
        assert seen["order"] == "PCI_BUS_ID"
        spans.append((float(seen["start"]), float(seen["end"]), gpus[0], name))

    for i, (s1, e1, g1, n1) in enumerate(spans):
        for s2, e2, g2, n2 in spans[i + 1 :]:
            if g1 == g2:
                assert e1 <= s2 or e2 <= s1, f"{n1} and {n2} overlapped on GPU {g1}"
    most = max(sum(1 for s, e, _, _ in spans if s <= t < e) for t, _, _, _ in spans)
    assert 2 <= most <= 4
    assert {g for _, _, g, _ in spans} <= {"0", "1", "2", "3"}

    admitted = [downloading_started(j) for j in jobs]
    assert admitted == sorted(admitted), "jobs were admitted out of creation order"


def test_a_queued_job_says_what_it_waits_for(gpu_server: ServerProcess) -> None:
    holders = [run_job(gpu_server, "ml.g4dn.xlarge", sleep=30.0)["name"] for _ in range(4)]
    queued = run_job(gpu_server, "ml.g4dn.xlarge")["name"]
    sm = gpu_server.client("sagemaker")
    try:
        deadline = time.monotonic() + 5
        while True:
            job = sm.describe_training_job(TrainingJobName=queued)
            assert job["SecondaryStatus"] == "Starting"
            message = job["SecondaryStatusTransitions"][-1]["StatusMessage"]
            if "Waiting for" in message or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert message == "Waiting for 1 free GPU (0 free now)"
    finally:
        for name in [*holders, queued]:
            sm.stop_training_job(TrainingJobName=name)
        for name in [*holders, queued]:
            wait(gpu_server, name, timeout=60)


def test_a_four_gpu_type_sees_four_distinct_gpus(gpu_server: ServerProcess) -> None:
    name = run_job(gpu_server, "ml.p3.8xlarge")["name"]
    job = wait(gpu_server, name, timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    seen = report(gpu_server, name)
    gpus = visible(seen["cuda"])
    assert sorted(gpus) == ["0", "1", "2", "3"]
    assert seen["sm_num_gpus"] == "4"


def test_a_cpu_type_sees_no_gpu(gpu_server: ServerProcess) -> None:
    name = run_job(gpu_server, "ml.t3.2xlarge")["name"]
    job = wait(gpu_server, name, timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    seen = report(gpu_server, name)
    assert seen["cuda"] == "''"
    assert seen["sm_num_gpus"] == "0"


def test_an_impossible_request_is_refused_with_its_reason(gpu_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as caught:
        run_job(gpu_server, "ml.p4d.24xlarge")
    error = caught.value.response["Error"]
    assert error["Code"] == "ResourceLimitExceeded"
    assert (
        error["Message"] == "ml.p4d.24xlarge needs 8 GPUs per instance; the largest node here has 4"
    )


def test_an_unknown_instance_type_is_refused_clearly(gpu_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as caught:
        run_job(gpu_server, "ml.g4dn.xlarg")
    assert "ml.g4dn.xlarg" in caught.value.response["Error"]["Message"]


def test_the_environment_variable_describes_the_inventory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEPORT_FAKE_GPUS", "2xA10G-24GB")
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        with pytest.raises(ClientError) as caught:
            run_job(server, "ml.g5.12xlarge")
        assert caught.value.response["Error"]["Message"] == (
            "ml.g5.12xlarge needs 4 GPUs per instance; the largest node here has 2"
        )
    finally:
        server.stop()


@pytest.mark.parametrize("where", ["env", "file"])
def test_a_bad_fake_spec_stops_the_server_with_a_clear_message(tmp_path: Path, where: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SAGEPORT_FAKE_GPUS"}
    if where == "env":
        env["SAGEPORT_FAKE_GPUS"] = "4xbanana"
    else:
        (data / "sageport.toml").write_text('fake_gpus = "four"\n')
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sageport", "serve", "--port", "0", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "SAGEPORT_FAKE_GPUS=" in done.stderr
    assert "does not parse" in done.stderr
    assert time.monotonic() - started < 30


def test_jobs_describe_shows_the_gpus_and_their_telemetry(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        'fake_gpus = "2"\ngpu_sample_interval_seconds = 0.2\n',
    )
    try:
        job = run_job(server, "ml.g4dn.xlarge", sleep=1.5)
        wait(server, job["name"])
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sageport",
                "jobs",
                "describe",
                job["name"],
                "--data-dir",
                str(server.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert "GPUs" in out.stdout
        assert "[0]" in out.stdout
        assert "  GPU 0" in out.stdout  # the fake sampler's readings were kept and summarized
        assert "samples" in out.stdout
    finally:
        server.stop()
