"""The GPU pre-flight: it reports what the job sees, then runs the job's own command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from sageport.runtime.preflight import PREFLIGHT_SCRIPT, frameworks_for, preflight_argv


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | env
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=60, check=False)


def test_argv_runs_the_script_with_the_jobs_python_then_the_command() -> None:
    argv = preflight_argv("/opt/py/bin/python", ["python", "train.py", "--epochs", "2"])
    assert argv == [
        "/opt/py/bin/python",
        str(PREFLIGHT_SCRIPT),
        "--",
        "python",
        "train.py",
        "--epochs",
        "2",
    ]
    assert PREFLIGHT_SCRIPT.is_file()


def test_without_gpus_it_says_none_is_visible_and_runs_the_job() -> None:
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", "echo job-ran; exit 7"]),
        CUDA_VISIBLE_DEVICES="",
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 7  # the job's own status, because the job replaced the pre-flight
    assert lines[-1] == "job-ran"
    assert (
        "sageport pre-flight: no GPU is visible to this job (CUDA_VISIBLE_DEVICES is empty)"
        in lines
    )
    assert any(
        line.startswith(("sageport pre-flight: torch ", "sageport pre-flight: PyTorch"))
        for line in lines
    )


def test_a_granted_gpu_that_torch_cannot_use_is_a_warning_not_a_failure() -> None:
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", 'echo "cvd=$CUDA_VISIBLE_DEVICES"']),
        CUDA_VISIBLE_DEVICES="3",
    )
    assert done.returncode == 0
    assert "sageport pre-flight: CUDA_VISIBLE_DEVICES=3 (1 GPU(s) granted)" in done.stdout
    assert done.stdout.splitlines()[-1] == "cvd=3"
    if importlib.util.find_spec("torch") is not None:
        assert "WARNING: this job holds GPUs but" in done.stdout


def test_a_broken_environment_still_runs_the_job(tmp_path: Path) -> None:
    # PYTHONPATH points torch at a module that raises on import: the pre-flight must not care.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('raise RuntimeError("broken torch install")\n')
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", "echo still-ran"], ["torch"]),
        PYTHONPATH=str(tmp_path),
        CUDA_VISIBLE_DEVICES="0",
    )
    assert done.returncode == 0
    assert (
        "sageport pre-flight: WARNING: PyTorch import failed (RuntimeError: broken torch "
        "install); the job may fail too" in done.stdout
    )
    assert done.stdout.splitlines()[-1] == "still-ran"


def test_a_pre_flight_that_cannot_run_its_checks_warns_and_runs_the_job(tmp_path: Path) -> None:
    # A copy of the script away from sageport/gpu: the checks it loads by path are missing.
    script = tmp_path / "preflight_script.py"
    script.write_text(PREFLIGHT_SCRIPT.read_text())
    done = run(
        [sys.executable, str(script), "--", "sh", "-c", "echo still-ran"],
        CUDA_VISIBLE_DEVICES="0",
    )
    assert done.returncode == 0
    assert "sageport pre-flight: WARNING: the GPU pre-flight failed (" in done.stdout
    assert done.stdout.splitlines()[-1] == "still-ran"


def test_only_the_images_frameworks_are_checked() -> None:
    assert preflight_argv("/py", ["cmd"], ["torch"]) == [
        "/py",
        str(PREFLIGHT_SCRIPT),
        "--frameworks=torch",
        "--",
        "cmd",
    ]
    assert frameworks_for("pytorch") == ("torch",)
    assert frameworks_for("tensorflow") == ("tensorflow",)
    assert frameworks_for("sklearn") == ()
    assert frameworks_for("custom") == ("torch", "tensorflow", "jax")
    # none at all: only CUDA_VISIBLE_DEVICES is looked at, no framework is imported
    done = run(preflight_argv(sys.executable, ["true"], ()), CUDA_VISIBLE_DEVICES="0,0,x")
    lines = [line.removeprefix("sageport pre-flight: ") for line in done.stdout.splitlines()]
    assert lines[0] == "CUDA_VISIBLE_DEVICES=0,0,x (3 GPU(s) granted)"
    assert lines[1].startswith("WARNING: CUDA_VISIBLE_DEVICES: '0,0,x': lists a device twice")
    assert len(lines) == 3
    assert lines[2].startswith("done in ")


#: A stand-in for a CUDA build of torch that sees the GPUs in CUDA_VISIBLE_DEVICES, so the
#: checks that need a GPU (arch list, matmul placement) run on a machine without one.
FAKE_CUDA_TORCH = """
import os
__version__ = "2.4.0+cu124"
float16, float32 = "fp16", "fp32"

class version:
    cuda = "12.4"

class device:
    def __init__(self, kind, index=None):
        self.kind, self.index = kind, index
    def __str__(self):
        placed = os.environ.get("FAKE_TORCH_RESULT_ON") or f"{self.kind}:{self.index}"
        return placed

class _Tensor:
    def __init__(self, where):
        self.device = where
    def __matmul__(self, other):
        return _Tensor(self.device)
    def all(self):
        return self
    def item(self):
        return True

def randn(*shape, device=None, dtype=None):
    return _Tensor(device)

def isfinite(tensor):
    return tensor

def _visible():
    return [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v]

class cuda:
    is_available = staticmethod(lambda: bool(_visible()))
    device_count = staticmethod(lambda: len(_visible()))
    get_device_name = staticmethod(lambda i: "NVIDIA H100 80GB HBM3")
    get_device_capability = staticmethod(lambda i: (9, 0))
    get_arch_list = staticmethod(lambda: os.environ.get("FAKE_TORCH_ARCH", "sm_80,sm_90").split(","))
    synchronize = staticmethod(lambda device=None: None)
"""


def fake_torch(tmp_path: Path) -> str:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(FAKE_CUDA_TORCH)
    return str(tmp_path)


def test_a_cuda_torch_gets_the_arch_check_and_a_matmul_on_each_gpu(tmp_path: Path) -> None:
    done = run(
        preflight_argv(sys.executable, ["true"], ["torch"]),
        PYTHONPATH=fake_torch(tmp_path),
        CUDA_VISIBLE_DEVICES="2,3",
    )
    lines = [line.removeprefix("sageport pre-flight: ") for line in done.stdout.splitlines()]
    assert lines[1] == (
        "torch 2.4.0+cu124 (CUDA build 12.4): torch.cuda.is_available()=True, 2 device(s): "
        "cuda:0 NVIDIA H100 80GB HBM3; cuda:1 NVIDIA H100 80GB HBM3"
    )
    assert "GPU 0 arch in torch build: NVIDIA H100 80GB HBM3: sm_90 in sm_80,sm_90" in lines
    assert "GPU 1 arch in torch build: NVIDIA H100 80GB HBM3: sm_90 in sm_80,sm_90" in lines
    assert "matmul on cuda:0: NVIDIA H100 80GB HBM3: fp16 on the GPU, fp32 on the GPU" in lines
    assert "matmul on cuda:1: NVIDIA H100 80GB HBM3: fp16 on the GPU, fp32 on the GPU" in lines
    assert not [line for line in lines if line.startswith("WARNING")], lines


def test_a_wheel_without_the_gpus_arch_and_a_misplaced_matmul_are_warnings(
    tmp_path: Path,
) -> None:
    done = run(
        preflight_argv(sys.executable, ["sh", "-c", "echo job-ran"], ["torch"]),
        PYTHONPATH=fake_torch(tmp_path),
        CUDA_VISIBLE_DEVICES="0",
        FAKE_TORCH_ARCH="sm_50,sm_60",
        FAKE_TORCH_RESULT_ON="cpu",
    )
    warnings = [line for line in done.stdout.splitlines() if "WARNING" in line]
    assert any("GPU 0 arch in torch build" in w and "is sm_90" in w for w in warnings), warnings
    assert any("matmul on cuda:0" in w and "result landed on cpu" in w for w in warnings)
    assert done.stdout.splitlines()[-1] == "job-ran"


def test_a_missing_command_exits_127_with_a_message() -> None:
    done = run(preflight_argv(sys.executable, ["/nonexistent/command"]))
    assert done.returncode == 127
    assert "cannot run '/nonexistent/command'" in done.stderr
