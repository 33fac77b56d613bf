"""The environment every started process begins with, and the GPU variables of a grant."""

from __future__ import annotations

from sageport.gpu.inventory import GpuDevice
from sageport.runtime.process_env import ServerAccess, base_env, gpu_env

ACCESS = ServerAccess("http://127.0.0.1:8080", "AKIDSAGEPORT", "secret", "eu-west-1")
SERVER_ENV = {"PATH": "/usr/bin", "HOME": "/home/me", "AWS_PROFILE": "prod", "SECRET": "x"}


def test_base_env_keeps_only_inherited_names_and_adds_the_way_back() -> None:
    env = base_env(SERVER_ENV, ACCESS, sandbox=False)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8080",
        "AWS_ACCESS_KEY_ID": "AKIDSAGEPORT",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "PYTHONUNBUFFERED": "1",
    }


def test_base_env_in_the_sandbox_has_home_at_tmp() -> None:
    assert base_env(SERVER_ENV, ACCESS, sandbox=True)["HOME"] == "/tmp"


def test_gpu_env_names_exactly_the_granted_gpus() -> None:
    gpus = [
        GpuDevice(3, "GPU-c", "H100", 81559, (9, 0)),
        GpuDevice(1, "GPU-a", "H100", 81559, (9, 0)),
    ]
    assert gpu_env(gpus) == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "3,1",
        "NVIDIA_VISIBLE_DEVICES": "GPU-c,GPU-a",
    }


def test_gpu_env_without_gpus_hides_every_gpu() -> None:
    env = gpu_env([])
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
