"""The doctor's verdicts, from inventories and probe answers shaped like real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sageport.gpu import FakeDiscovery, GpuDevice, GpuInventory, parse_fake_spec
from sageport.gpu.doctor import (
    PROBE_SCRIPT,
    Verdict,
    check_driver,
    check_gpus,
    check_visible_devices,
    diagnose,
    is_probe_process,
    jax_checks,
    run_probe,
    tensorflow_checks,
    torch_checks,
)

H100 = GpuDevice(0, "GPU-aaaa-1111", "NVIDIA H100 80GB HBM3", 81559, (9, 0))
REAL = GpuInventory(devices=(H100,), driver_version="550.54", cuda_driver_version="12.4")
MISMATCH = GpuInventory.unavailable(
    "Driver/library version mismatch: the NVIDIA kernel module and the user-space driver "
    "libraries have different versions"
)


def cuda_probe(**torch: Any) -> dict[str, Any]:
    base = {
        "installed": True,
        "version": "2.4.0+cu124",
        "cuda_build": "12.4",
        "cuda_available": True,
        "arch_list": ["sm_50", "sm_80", "sm_86", "sm_90"],
        "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0]}],
        "matmul": [
            {
                "index": 0,
                "fp16": {"tflops": 612.3, "result_device": "cuda:0", "finite": True},
                "fp32": {"tflops": 48.1, "result_device": "cuda:0", "finite": True},
            }
        ],
    }
    return {"python": "/usr/bin/python3", "torch": base | torch}


def verdicts(checks: list[Any]) -> dict[str, Verdict]:
    return {c.name: c.verdict for c in checks}


def test_a_driver_mismatch_fails_with_the_reboot_fix() -> None:
    check = check_driver(MISMATCH)
    assert check.verdict is Verdict.FAIL
    assert "mismatch" in check.detail
    assert "Reboot" in check.fix
    assert check_gpus(MISMATCH).verdict is Verdict.FAIL


def test_a_real_driver_and_its_gpus_are_ok() -> None:
    assert check_driver(REAL).detail == "driver 550.54, CUDA 12.4"
    listed = check_gpus(REAL)
    assert listed.verdict is Verdict.OK
    assert "NVIDIA H100" in listed.detail
    assert "sm_90" in listed.detail


def test_a_fake_inventory_is_a_warning() -> None:
    assert check_driver(parse_fake_spec("2")).verdict is Verdict.WARN


def test_cuda_visible_devices_sanity() -> None:
    four = parse_fake_spec("4")
    assert check_visible_devices(None, four).verdict is Verdict.OK
    assert check_visible_devices("", four).verdict is Verdict.WARN
    assert check_visible_devices("0,2", four, "PCI_BUS_ID").verdict is Verdict.OK
    bad = check_visible_devices("0,0,7", four)
    assert bad.verdict is Verdict.FAIL
    assert "twice" in bad.detail
    assert "index 7 does not exist" in bad.detail
    assert check_visible_devices("GPU-aaaa", REAL).verdict is Verdict.OK
    assert check_visible_devices("GPU-ffff", REAL).verdict is Verdict.FAIL
    assert check_visible_devices("cuda0", REAL).verdict is Verdict.FAIL


def test_a_working_torch_reports_the_matmul_rate() -> None:
    checks = torch_checks(cuda_probe(), REAL)
    assert all(c.verdict is Verdict.OK for c in checks), checks
    matmul = next(c for c in checks if c.name == "matmul on cuda:0")
    assert "fp16 612.3 TFLOP/s" in matmul.detail
    assert "fp32 48.1 TFLOP/s" in matmul.detail


def test_a_cpu_only_torch_on_a_gpu_host_fails_with_the_install_fix() -> None:
    checks = torch_checks(
        cuda_probe(cuda_build=None, cuda_available=False, version="2.4.0+cpu"), REAL
    )
    assert verdicts(checks) == {"PyTorch CUDA build": Verdict.FAIL}
    assert "CPU-only build" in checks[0].detail
    assert "download.pytorch.org/whl/cu" in checks[0].fix


def test_a_gpu_missing_from_the_arch_list_fails() -> None:
    checks = torch_checks(cuda_probe(arch_list=["sm_50", "sm_60", "sm_70"]), REAL)
    arch = next(c for c in checks if c.name.endswith("arch in torch build"))
    assert arch.verdict is Verdict.FAIL
    assert "sm_90" in arch.detail


def test_ptx_only_support_is_a_warning() -> None:
    checks = torch_checks(cuda_probe(arch_list=["sm_80", "compute_80"]), REAL)
    assert verdicts(checks)["GPU 0 arch in torch build"] is Verdict.WARN


def test_a_result_on_the_wrong_device_fails_the_matmul() -> None:
    wrong = {
        "index": 0,
        "fp16": {"tflops": 1, "result_device": "cpu", "finite": True},
        "fp32": {"error": "OOM"},
    }
    checks = torch_checks(cuda_probe(matmul=[wrong]), REAL)
    matmul = verdicts(checks)["matmul on cuda:0"]
    assert matmul is Verdict.FAIL


def test_unavailable_cuda_fails() -> None:
    checks = torch_checks(cuda_probe(cuda_available=False, devices=[], matmul=[]), REAL)
    assert verdicts(checks)["torch.cuda.is_available()"] is Verdict.FAIL


def test_frameworks_that_are_absent_are_skipped_and_present_ones_checked() -> None:
    assert tensorflow_checks({"tensorflow": {"installed": False}})[0].verdict is Verdict.SKIP
    assert jax_checks({})[0].verdict is Verdict.SKIP
    tf = tensorflow_checks(
        {
            "tensorflow": {
                "installed": True,
                "version": "2.16.1",
                "gpus": ["/physical_device:GPU:0"],
                "memory_growth": "ok",
                "placed_on": "/job:localhost/replica:0/task:0/device:GPU:0",
            }
        }
    )
    assert [c.verdict for c in tf] == [Verdict.OK] * 3
    cpu_tf = tensorflow_checks({"tensorflow": {"installed": True, "version": "2.16.1", "gpus": []}})
    assert cpu_tf[0].verdict is Verdict.FAIL
    assert (
        jax_checks({"jax": {"installed": True, "version": "0.4", "devices": ["cuda:0"]}})[0].verdict
        is Verdict.OK
    )
    assert (
        jax_checks({"jax": {"installed": True, "version": "0.4", "devices": ["cpu:0"]}})[0].verdict
        is Verdict.WARN
    )


def test_the_real_probe_answers_for_this_interpreter() -> None:
    probe, why = run_probe(sys.executable, dict(os.environ), matmul=False, timeout=120)
    assert probe is not None, why
    assert probe["python"]
    assert set(probe) >= {"torch", "tensorflow", "jax"}


def test_a_probe_with_a_missing_interpreter_says_so() -> None:
    probe, why = run_probe("/nonexistent/python", {}, timeout=5)
    assert probe is None
    assert "could not run /nonexistent/python" in why


def test_diagnose_on_a_host_without_gpus_is_not_usable() -> None:
    report = diagnose(
        FakeDiscovery(parse_fake_spec("0")), sys.executable, dict(os.environ), timeout=120
    )
    assert report.gpu_usable is False
    names = [c["name"] for c in report.to_json()["checks"]]
    assert names[:3] == ["NVIDIA driver / NVML", "GPUs listed", "CUDA_VISIBLE_DEVICES"]


def test_the_cli_prints_json_and_honours_require_gpu() -> None:
    env = {**os.environ, "SAGEPORT_FAKE_GPUS": "0"}
    cmd = [sys.executable, "-m", "sageport", "doctor", "--json"]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["gpu_usable"] is False
    strict = subprocess.run(
        [*cmd, "--require-gpu"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert strict.returncode == 1
    table = subprocess.run(
        cmd[:-1], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert "no usable GPU" in table.stdout
    assert "CUDA_VISIBLE_DEVICES" in table.stdout


NO_DRIVER = GpuInventory.unavailable(
    "the NVIDIA kernel driver is not loaded (no NVIDIA GPU, or the driver is not installed)"
)


def test_a_machine_without_any_gpu_warns_everywhere_and_fails_only_when_a_gpu_is_required() -> None:
    cpu_torch = cuda_probe(cuda_build=None, cuda_available=False, version="2.4.0+cpu")
    cuda_torch_no_gpu = cuda_probe(cuda_available=False, devices=[], matmul=[])
    cpu_tf = {"tensorflow": {"installed": True, "version": "2.16.1", "gpus": []}}
    for require, verdict in ((False, Verdict.WARN), (True, Verdict.FAIL)):
        assert check_driver(NO_DRIVER, require).verdict is verdict
        assert check_gpus(NO_DRIVER, require).verdict is verdict
        # PyTorch and TensorFlow are judged alike: no GPU here is a warning, not a failure
        assert verdicts(torch_checks(cpu_torch, NO_DRIVER, require)) == {
            "PyTorch CUDA build": verdict
        }
        assert (
            verdicts(torch_checks(cuda_torch_no_gpu, NO_DRIVER, require))[
                "torch.cuda.is_available()"
            ]
            is verdict
        )
        assert tensorflow_checks(cpu_tf, require)[0].verdict is verdict
    # a GPU that is there but broken fails whether a GPU is required or not
    assert check_driver(MISMATCH).verdict is Verdict.FAIL


def test_a_cpu_only_tensorflow_on_a_gpu_host_warns_and_a_blind_cuda_build_fails() -> None:
    cpu_build = {
        "tensorflow": {"installed": True, "version": "2.21.0", "gpus": [], "cuda_build": False}
    }
    (check,) = tensorflow_checks(cpu_build, True)
    assert check.verdict is Verdict.WARN
    assert "CPU-only build" in check.detail
    blind = {"tensorflow": {"installed": True, "version": "2.21.0", "gpus": [], "cuda_build": True}}
    assert tensorflow_checks(blind, True)[0].verdict is Verdict.FAIL


def test_diagnose_without_gpus_warns_and_fails_under_require_gpu(tmp_path: Path) -> None:
    # an interpreter without site-packages: no framework to import, so the probe is quick
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    discovery = FakeDiscovery(parse_fake_spec("0"))
    relaxed = diagnose(discovery, str(bare), dict(os.environ), timeout=120)
    strict = diagnose(discovery, str(bare), dict(os.environ), timeout=120, require_gpu=True)
    assert verdicts(list(relaxed.checks))["PyTorch"] is Verdict.SKIP
    assert Verdict.FAIL not in {c.verdict for c in relaxed.checks}, relaxed.checks
    assert verdicts(list(strict.checks))["GPUs listed"] is Verdict.FAIL


def test_a_running_probe_is_recognised_by_its_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", str(PROBE_SCRIPT)],
        stdout=subprocess.DEVNULL,
    )
    try:
        # until the child has exec'd, /proc shows the parent's command line
        deadline = time.monotonic() + 10
        while not is_probe_process(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert is_probe_process(proc.pid)
        assert not is_probe_process(os.getpid())
    finally:
        proc.kill()
        proc.wait()
    assert not is_probe_process(proc.pid)  # gone
