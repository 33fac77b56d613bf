"""On a machine with an NVIDIA GPU: real discovery, a PyTorch job on its GPU, doctor, idle warning.

Skipped where there is no ``/dev/nvidiactl``; see docs/gpu-validation.md for how to run them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from training_helpers import log_lines, submit, unique, wait

from sageport.cli.process import ServerProcess

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not Path("/dev/nvidiactl").exists(), reason="no NVIDIA device"),
    pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py missing"),
]

GPU_SCRIPT = """
    import os, time, torch
    assert torch.cuda.is_available(), "no CUDA in the job"
    device = torch.device("cuda")
    model = torch.nn.Linear(1024, 1024).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(4096, 1024, device=device)
    where = next(model.parameters()).device
    print("training on device=%s (%s)" % (where, torch.cuda.get_device_name(0)))
    deadline = time.time() + float(os.environ.get("RUN_SECONDS", "2"))
    while time.time() < deadline:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    print("loss=%.4f" % loss.item())
"""

CPU_SCRIPT = """
    import os, time, torch
    x = torch.randn(512, 512)
    print("computing on device=%s" % x.device)
    deadline = time.time() + float(os.environ.get("RUN_SECONDS", "2"))
    while time.time() < deadline:
        x = torch.tanh(x @ x)
"""


@pytest.fixture
def gpu_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """Real discovery, samples every second, idle warning after 10 s."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "sageport.toml").write_text(
        "gpu_sample_interval_seconds = 1.0\ngpu_idle_warning_seconds = 10.0\n"
    )
    monkeypatch.delenv("SAGEPORT_FAKE_GPUS", raising=False)
    proc = ServerProcess(data)
    proc.start()
    yield proc
    proc.stop()


def run(server: ServerProcess, script: str, seconds: float) -> tuple[dict[str, object], list[str]]:
    name = unique("gpu")
    submit(
        server,
        name,
        script,
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        Environment={"RUN_SECONDS": str(seconds)},
    )
    job = wait(server, name, timeout=seconds + 120)
    return job, log_lines(server, name)


def test_a_pytorch_job_trains_on_the_gpu_it_was_given(gpu_server: ServerProcess) -> None:
    job, lines = run(gpu_server, GPU_SCRIPT, 2)
    assert job["TrainingJobStatus"] == "Completed", (job.get("FailureReason"), lines)
    assert any("training on device=cuda:0" in line for line in lines), lines
    assert any(line.startswith("sageport pre-flight: CUDA_VISIBLE_DEVICES=") for line in lines), (
        lines
    )
    assert not any("WARNING: this job holds GPUs" in line for line in lines)
    # the pre-flight checked the wheel's arch list and ran its tiny matmul on the GPU
    preflight = [line for line in lines if line.startswith("sageport pre-flight: ")]
    assert any("GPU 0 arch in torch build: " in line for line in preflight), preflight
    assert any(
        line.startswith("sageport pre-flight: matmul on cuda:0: ") and "fp16 on the GPU" in line
        for line in preflight
    ), preflight
    assert not [line for line in preflight if "WARNING" in line], preflight


def test_doctor_passes_and_reports_the_matmul_rate() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAGEPORT_FAKE_GPUS"}
    done = subprocess.run(
        [sys.executable, "-m", "sageport", "doctor", "--json", "--require-gpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["gpu_usable"] is True
    matmul = [c for c in report["checks"] if c["name"].startswith("matmul on cuda:")]
    assert matmul, report
    assert all(c["verdict"] == "ok" and "TFLOP/s" in c["detail"] for c in matmul), matmul
    assert not [c for c in report["checks"] if c["verdict"] == "fail"], report


def test_the_idle_gpu_warning_fires_only_for_the_job_that_computes_on_the_cpu(
    gpu_server: ServerProcess,
) -> None:
    idle, idle_lines = run(gpu_server, CPU_SCRIPT, 25)
    busy, busy_lines = run(gpu_server, GPU_SCRIPT, 25)
    assert idle["TrainingJobStatus"] == "Completed", idle.get("FailureReason")
    assert busy["TrainingJobStatus"] == "Completed", busy.get("FailureReason")
    warning = [line for line in idle_lines if line.startswith("WARNING: sageport:")]
    assert len(warning) == 1, idle_lines
    assert "has not used them in its first 10 s" in warning[0]
    assert not [line for line in busy_lines if line.startswith("WARNING: sageport:")], busy_lines
