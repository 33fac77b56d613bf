"""Every script in ``examples/`` runs, unchanged, against a live server.

Each example runs as a subprocess with exactly the environment ``eval "$(sageport env
--data-dir D)"`` gives it (the real CLI prints the lines), as a user would run it. The
server describes four fake GPUs, so the GPU instance types are admitted on any machine and
the jobs report "no GPU visible" where there is no CUDA; the ``gpu`` tests at the end run
the GPU examples again on a server that discovers real GPUs and check that CUDA is used.
TensorFlow examples are skipped without TensorFlow. The SDK's log loop (10 s) and
``deploy()`` poll (30 s) make most of these slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sageport.cli.process import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HAS_TF = importlib.util.find_spec("tensorflow") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_SDK = importlib.util.find_spec("sagemaker") is not None

needs_tf = [pytest.mark.tensorflow, pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow")]
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
pytestmark = pytest.mark.skipif(not HAS_SDK, reason="needs the SageMaker SDK 2.x")


def start(data: Path, settings: str) -> ServerProcess:
    data.mkdir(parents=True, exist_ok=True)
    (data / "sageport.toml").write_text(settings)
    proc = ServerProcess(data)
    proc.start()
    return proc


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Four fake GPUs, as ``SAGEPORT_FAKE_GPUS=4`` gives a demo machine."""
    proc = start(
        tmp_path_factory.mktemp("examples"),
        'fake_gpus = "4"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n',
    )
    yield proc
    proc.stop()


def sageport_env(server: ServerProcess) -> dict[str, str]:
    """The environment after ``eval "$(sageport env --data-dir ...)"`` in a clean shell."""
    printed = subprocess.run(
        [sys.executable, "-m", "sageport", "env", "--data-dir", str(server.data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    for line in printed.splitlines():
        words = shlex.split(line)
        if words and words[0] == "export":
            key, _, value = words[1].partition("=")
            env[key] = value
    assert env["AWS_ENDPOINT_URL"] == server.url
    return env


def run_example(server: ServerProcess, script: str, **extra_env: str) -> str:
    env = {**sageport_env(server), **extra_env}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=server.data_dir,  # examples must not depend on the current folder
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


# (script, lines its output must contain on the fake-GPU demo server)
CASES = [
    pytest.param("train_boto3.py", ["status: Completed", "epoch=1 loss="], marks=needs_torch),
    pytest.param(
        "train_pytorch.py",
        ["epoch=1 loss=", "model artifact: s3://sagemaker-sageport/"],
        marks=[needs_torch, pytest.mark.slow],
    ),
    pytest.param(
        "train_keras_tensorflow.py",
        ["Completed - Training job completed", "model artifact: s3://sagemaker-sageport/"],
        marks=[*needs_tf, pytest.mark.slow],
    ),
    pytest.param(
        "gpu_check_pytorch.py",
        ["instance GPUs (SM_NUM_GPUS): 1", "no GPU visible to PyTorch"],
        marks=[needs_torch, pytest.mark.slow],
    ),
    pytest.param(
        "gpu_check_tensorflow.py",
        ["instance GPUs (SM_NUM_GPUS): 1", "no GPU visible to TensorFlow"],
        marks=[*needs_tf, pytest.mark.slow],
    ),
    pytest.param(
        "process_gpu.py",
        ["no GPU visible to PyTorch", "summary from S3: {'files': 3, 'rows': 30"],
        marks=[needs_torch, pytest.mark.slow],
    ),
    pytest.param(
        "multi_gpu_mirrored.py",
        [
            "instance GPUs (SM_NUM_GPUS): 4",
            "replicas in sync: 1",
            "Completed - Training job completed",
        ],
        marks=[*needs_tf, pytest.mark.slow],
    ),
    pytest.param(
        "deploy_tensorflow.py",
        ["prediction: {'predictions': [[10.0], [1.0]]}"],
        marks=[*needs_tf, pytest.mark.slow],
    ),
]


@pytest.mark.parametrize(("script", "expected"), CASES)
def test_example(demo_server: ServerProcess, script: str, expected: list[str]) -> None:
    output = run_example(demo_server, script)
    for text in expected:
        assert text in output, output[-6000:]


@needs_torch
@pytest.mark.slow
def test_deploy_pytorch_predicts_what_the_model_computes(demo_server: ServerProcess) -> None:
    output = run_example(demo_server, "deploy_pytorch.py")
    served = re.search(r"^prediction: (.+)$", output, re.MULTILINE)
    local = re.search(r"^same model, run here: (.+)$", output, re.MULTILINE)
    assert served, output[-6000:]
    assert local, output[-6000:]
    assert served.group(1) == local.group(1)


def test_every_example_is_tested() -> None:
    tested = {p.values[0] for p in CASES} | {"deploy_pytorch.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


# -- on real GPUs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Real GPU discovery (NVML)."""
    proc = start(tmp_path_factory.mktemp("examples-gpu"), "")
    yield proc
    proc.stop()


real_gpu = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/dev/nvidiactl").exists(), reason="no NVIDIA device"),
    needs_torch,
]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            "gpu_check_pytorch.py", ["GPU 0: ", "matmul on GPU 0: 1073741824.0"], marks=real_gpu
        ),
        pytest.param("process_gpu.py", ["computing on cuda", "summary from S3:"], marks=real_gpu),
    ],
)
def test_gpu_example_uses_cuda(gpu_server: ServerProcess, script: str, expected: list[str]) -> None:
    output = run_example(gpu_server, script)
    for text in expected:
        assert text in output, output[-6000:]
