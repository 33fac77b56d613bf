"""GPU allocation on a fake 4-GPU inventory, driven with boto3 against a live server.

The server's GPUs are described by ``fake_gpus`` in ``sageport.toml`` (or ``SAGEPORT_FAKE_GPUS``);
jobs are real processes that print what they were given, so the tests read from the jobs' own
logs which GPUs each one saw and when it ran.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import processing_helpers as processing
import pytest
from botocore.exceptions import ClientError
from server_helpers import FAKE_GPUS, start_server
from training_helpers import log_lines, submit, unique, wait, wait_completed, wait_for

from sageport.cli.process import ServerProcess

REPORT_SCRIPT = """
    import os, time
    start = time.time()
    print("GPUREPORT start=%.3f" % start)
    print("GPUREPORT cuda=%r" % os.environ.get("CUDA_VISIBLE_DEVICES"))
    print("GPUREPORT sm_num_gpus=%s" % os.environ.get("SM_NUM_GPUS"))
    print("GPUREPORT order=%s" % os.environ.get("CUDA_DEVICE_ORDER"))
    print("GPUREPORT cpus=%s" % ",".join(str(c) for c in sorted(os.sched_getaffinity(0))))
    time.sleep(float(os.environ.get("SLEEP_SECONDS", "0")))
    print("GPUREPORT end=%.3f" % time.time())
"""


@pytest.fixture
def gpu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Four fake 80 GB GPUs; CPU and memory accounting loose enough that GPUs are the limit."""
    proc = start_server(tmp_path / "data", FAKE_GPUS)
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
    # the jobs that had to wait (admitted only after some job had ended) were admitted in the
    # order they were created, each onto a GPU that a job had given back by then
    first_end = min(j["TrainingEndTime"] for j in jobs)
    waited = [(downloading_started(j), j) for j in jobs if downloading_started(j) >= first_end]
    assert len(waited) == 2, [(downloading_started(j), j["TrainingEndTime"]) for j in jobs]
    assert [j["TrainingJobName"] for _, j in sorted(waited, key=lambda w: w[0])] == names[4:]
    gpu_of = {n: g for _, _, g, n in spans}
    for admitted_at, job in waited:
        name = job["TrainingJobName"]
        freed = [
            j
            for j in jobs
            if j["TrainingJobName"] != name
            and gpu_of[j["TrainingJobName"]] == gpu_of[name]
            and j["TrainingEndTime"] <= admitted_at
        ]
        assert freed, f"{name} got GPU {gpu_of[name]} before any job there had ended"


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
    wait_completed(gpu_server, name, timeout=60)
    seen = report(gpu_server, name)
    gpus = visible(seen["cuda"])
    assert sorted(gpus) == ["0", "1", "2", "3"]
    assert seen["sm_num_gpus"] == "4"


def test_a_cpu_type_sees_no_gpu(gpu_server: ServerProcess) -> None:
    name = run_job(gpu_server, "ml.t3.2xlarge")["name"]
    wait_completed(gpu_server, name, timeout=60)
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


def serve_refused(data: Path, env: dict[str, str] | None = None) -> list[str]:
    """``sageport serve`` on ``data``, which must refuse to start without a traceback: the
    lines it wrote to stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "sageport", "serve", "--port", "0", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()


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
    (line,) = serve_refused(data, env)  # one clean line, no traceback
    assert line.startswith("sageport serve: SAGEPORT_FAKE_GPUS=")
    assert "does not parse" in line
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


# -- one FIFO over training and processing jobs, and what the queue says ------------------


def processing_job(
    server: ServerProcess, instance_type: str, sleep: float = 0.0, name: str = ""
) -> str:
    name = name or unique("proc-" + instance_type.replace(".", "-"))
    processing.submit(
        server,
        name,
        REPORT_SCRIPT,
        instance_type=instance_type,
        Environment={"SLEEP_SECONDS": str(sleep)},
    )
    return name


def processing_report(server: ServerProcess, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in processing.log_lines(server, name):
        if line.startswith("GPUREPORT "):
            key, _, value = line.removeprefix("GPUREPORT ").partition("=")
            out[key] = value
    return out


def eventually(probe: Any, timeout: float = 20.0) -> Any:
    """``probe()`` until it returns something truthy; the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def one_gpu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path / "data",
        'fake_gpus = "1"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n',
    )
    yield proc
    proc.stop()


def test_training_and_processing_jobs_share_one_fifo_queue(one_gpu_server: ServerProcess) -> None:
    server = one_gpu_server
    sm = server.client("sagemaker")
    holder = run_job(server, "ml.g4dn.xlarge", sleep=4.0)["name"]
    wait_for(server, holder, "Training")
    # created in this order while the only GPU is busy: a GPU processing job, a GPU training
    # job, then a CPU-only processing job that would fit now but must not jump the queue
    p_gpu = processing_job(server, "ml.g4dn.xlarge", sleep=1.0)
    t_gpu = run_job(server, "ml.g4dn.xlarge", sleep=1.0)["name"]
    p_cpu = processing_job(server, "ml.m5.xlarge")

    def exit_message(name: str) -> str:
        return str(sm.describe_processing_job(ProcessingJobName=name).get("ExitMessage", ""))

    def status_message(name: str) -> str:
        job = sm.describe_training_job(TrainingJobName=name)
        return str(job["SecondaryStatusTransitions"][-1]["StatusMessage"])

    # processing jobs show the queue message too (ExitMessage, while in progress)
    assert eventually(lambda: exit_message(p_gpu) == "Waiting for 1 free GPU (0 free now)"), (
        exit_message(p_gpu)
    )
    ahead = f"Waiting for processing job {p_gpu}, ahead of it in the queue"
    assert eventually(lambda: status_message(t_gpu) == ahead), status_message(t_gpu)
    behind = f"Waiting for training job {t_gpu}, ahead of it in the queue"
    assert eventually(lambda: exit_message(p_cpu) == behind), exit_message(p_cpu)

    assert wait(server, holder)["TrainingJobStatus"] == "Completed"
    for name in (p_gpu, p_cpu):
        done = processing.wait(server, name, timeout=120)
        assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")
        assert "ExitMessage" not in done  # only the container's own message once it ended
    assert wait(server, t_gpu, timeout=120)["TrainingJobStatus"] == "Completed"
    # the GPU went holder -> p_gpu -> t_gpu, in creation order across the two kinds ...
    spans = [
        report(server, holder),
        processing_report(server, p_gpu),
        report(server, t_gpu),
    ]
    for before, after in itertools.pairwise(spans):
        assert float(after["start"]) >= float(before["end"]), spans
    # ... and the CPU-only job, created last, was admitted only after t_gpu was
    admitted = downloading_started(sm.describe_training_job(TrainingJobName=t_gpu))
    started = sm.describe_processing_job(ProcessingJobName=p_cpu)["ProcessingStartTime"]
    assert started >= admitted, (started, admitted)
    assert visible(processing_report(server, p_gpu)["cuda"]) == ["0"]
    assert visible(processing_report(server, p_cpu)["cuda"]) == []


# -- CPU fallback --------------------------------------------------------------------------


def test_cpu_fallback_runs_a_type_this_node_can_never_hold_on_the_cpu(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", 'fake_gpus = "1"\ncpu_fallback = true\n')
    reason = "ml.p4d.24xlarge needs 8 GPUs per instance; the largest node here has 1"
    try:
        name = run_job(server, "ml.p4d.24xlarge")["name"]
        job = wait_completed(server, name, timeout=120)
        assert report(server, name)["cuda"] == "''"  # no GPU at all, none given silently
        lines = log_lines(server, name)
        assert any(
            line == f"WARNING: {reason}; cpu_fallback is on, so this host runs on the CPU"
            " (no GPU is visible to the job)."
            for line in lines
        ), lines
        training = next(t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Training")
        assert f"WARNING: running on the CPU (cpu_fallback): {reason}" in training["StatusMessage"]

        proc = processing_job(server, "ml.p3.8xlarge", sleep=3.0)  # no p4d for processing
        sm = server.client("sagemaker")
        note = eventually(
            lambda: sm.describe_processing_job(ProcessingJobName=proc).get("ExitMessage", "")
        )
        assert note == (
            "WARNING: running on the CPU (cpu_fallback): ml.p3.8xlarge needs 4 GPUs per "
            "instance; the largest node here has 1"
        )
        done = processing.wait(server, proc, timeout=120)
        assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")
        assert any("cpu_fallback is on" in line for line in processing.log_lines(server, proc))
    finally:
        server.stop()


def test_the_default_accounting_runs_a_cpu_type_and_a_big_gpu_type(tmp_path: Path) -> None:
    """Default overcommit: even on a small machine an ml.m5.xlarge and a p3.8xlarge (32 vCPUs,
    244 GiB, four fake GPUs) each run; a request bigger than the machine claims all of it."""
    server = start_server(tmp_path / "data", 'fake_gpus = "4"\n')
    try:
        for instance_type in ("ml.m5.xlarge", "ml.p3.8xlarge"):
            name = run_job(server, instance_type)["name"]
            job = wait(server, name, timeout=120)
            assert job["TrainingJobStatus"] == "Completed", (
                instance_type,
                job.get("FailureReason"),
            )
    finally:
        server.stop()


# -- CPU affinity --------------------------------------------------------------------------


def test_with_cpu_affinity_each_job_runs_on_the_cpus_it_was_given(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "cpu_affinity = true\n")
    mine = sorted(os.sched_getaffinity(0))
    try:
        # ml.m5.xlarge: 4 vCPUs / cpu_overcommit 4 = one CPU each; two fit side by side
        names = [run_job(server, "ml.m5.xlarge", sleep=2.0)["name"] for _ in range(2)]
        pinned = {}
        for name in names:
            wait_completed(server, name, timeout=120)
            notes = [
                line
                for line in log_lines(server, name)
                if line.startswith("sageport: this host is pinned to CPU(s) ")
            ]
            assert len(notes) == 1
            granted = notes[0].split("CPU(s) ")[1].split(" ")[0]
            assert report(server, name)["cpus"] == granted  # os.sched_getaffinity(0) in the job
            pinned[name] = {int(c) for c in granted.split(",")}
            assert pinned[name] <= set(mine)
        if len(mine) >= 2:
            assert pinned[names[0]].isdisjoint(pinned[names[1]]), pinned
    finally:
        server.stop()


# -- a GPU gone across a restart -----------------------------------------------------------


def test_a_gpu_gone_after_a_restart_is_reported_not_dropped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, 'fake_gpus = "2"\ncpu_overcommit = 100.0\n')
    sm = server.client("sagemaker")
    first = run_job(server, "ml.g4dn.xlarge", sleep=60.0)["name"]
    second = run_job(server, "ml.g4dn.xlarge", sleep=60.0)["name"]
    queued = unique("pair")  # two 1-GPU hosts: waits while both GPUs are busy
    submit(
        server,
        queued,
        REPORT_SCRIPT,
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 1},
    )
    try:
        for name in (first, second):
            wait_for(server, name, "Training")
        assert sm.describe_training_job(TrainingJobName=queued)["SecondaryStatus"] == "Starting"
        server.stop()
        # the machine comes back with one GPU: GPU 1, which `second` holds, is gone
        (data / "sageport.toml").write_text('fake_gpus = "1"\ncpu_overcommit = 100.0\n')
        server.start()

        def training_message(name: str) -> str:
            job = sm.describe_training_job(TrainingJobName=name)
            return next(
                str(t["StatusMessage"])
                for t in job["SecondaryStatusTransitions"]
                if t["Status"] == "Training"
            )

        sm = server.client("sagemaker")
        lost = "GPU 1 (GPU-fa4e0000-0000-4000-8000-000000000001) was granted to this job"
        assert eventually(lambda: lost in training_message(second)), training_message(second)
        assert lost not in training_message(first)
        assert any(
            line.startswith(f"WARNING: sageport: {lost}") for line in log_lines(server, second)
        )
        # the queued job can never start on one GPU now: it fails, it does not block the queue
        failed = wait(server, queued, timeout=60)
        assert failed["TrainingJobStatus"] == "Failed"
        assert failed["FailureReason"] == (
            "the job needs 2 GPUs over 2 instances at once; this node has 1"
        )
    finally:
        for name in (first, second):
            sm.stop_training_job(TrainingJobName=name)
        for name in (first, second):
            wait(server, name, timeout=60)
        server.stop()


# -- settings the server cannot start with ------------------------------------------------


def test_a_bad_gpu_matching_stops_the_server_with_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sageport.toml").write_text('gpu_matching = "exact"\n')
    assert serve_refused(data) == [
        "sageport serve: gpu_matching must be 'any' or 'strict', not 'exact' (sageport.toml)"
    ]
