"""The GPU pre-flight of a job host: check what the job will see of its GPUs, then run the job.

Run by path, with the job's own interpreter, as
``python preflight_script.py [--frameworks=torch,tensorflow,jax] -- CMD ARGS...``
(``sageport.runtime.preflight.preflight_argv`` builds that). It runs the short form of
``sageport doctor``'s checks and prints one line per finding, so they are the first lines of
the job's log:

- ``CUDA_VISIBLE_DEVICES`` sanity (what was granted, and whether the value makes sense);
- PyTorch: built with CUDA, ``torch.cuda.is_available()``, each GPU's compute capability in
  the wheel's arch list, and a tiny matmul placed on each visible GPU;
- TensorFlow and JAX device lists, when installed (only the frameworks the job's image is
  about: a PyTorch image's job is not kept waiting for a TensorFlow import).

The frameworks are looked at by ``sageport/gpu/probe.py`` in a subprocess with a timeout (a
CUDA context made here must not live on in the job, and a hung CUDA init must not hang the
job), and judged by ``sageport/gpu/checks.py``, both loaded by path: this file, like them,
uses the standard library only, because the job's interpreter need not have sageport
installed. With nothing installed the whole pre-flight takes one interpreter start.

Whatever goes wrong here is printed as a warning and the job runs anyway: a pre-flight must
never be the reason a job fails. The command is ``exec``'d, so the process the backend
watches is the user's and signals reach it directly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

PREFIX = "sageport pre-flight:"
GPU_PACKAGE = Path(__file__).resolve().parent.parent / "gpu"
ALL_FRAMEWORKS = ("torch", "tensorflow", "jax")
PROBE_TIMEOUT_S = 120.0
TINY_MATMUL = ("--matmul-size=256", "--matmul-iterations=1")


def _say(line: str) -> None:
    sys.stdout.write(f"{PREFIX} {line}\n")


def load_checks() -> ModuleType:
    """``sageport/gpu/checks.py``, loaded by path (sageport may not be importable here)."""
    path = GPU_PACKAGE / "checks.py"
    spec = importlib.util.spec_from_file_location("_sageport_gpu_checks", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while they are built
    spec.loader.exec_module(module)
    return module


def _finding(check: Any) -> str:
    verdict = str(check.verdict.value)
    if verdict in ("ok", "skip"):
        return f"{check.name}: {check.detail}"
    fix = f" (fix: {check.fix})" if check.fix else ""
    return f"WARNING: {check.name}: {check.detail}{fix}"


def _visible(env: dict[str, str]) -> tuple[str | None, list[str], str]:
    visible = env.get("CUDA_VISIBLE_DEVICES")
    granted = [v for v in (visible or "").split(",") if v.strip()]
    if visible is None:
        line = "CUDA_VISIBLE_DEVICES is not set: every GPU of the machine is visible"
    elif not granted:
        line = "no GPU is visible to this job (CUDA_VISIBLE_DEVICES is empty)"
    else:
        line = f"CUDA_VISIBLE_DEVICES={visible} ({len(granted)} GPU(s) granted)"
    return visible, granted, line


def _torch_lines(checks: ModuleType, probe: dict[str, Any], granted: list[str]) -> list[str]:
    torch = probe.get("torch") or {}
    if not torch.get("installed"):
        return ["PyTorch is not installed in this interpreter"]
    if torch.get("error") and "version" not in torch:
        return [f"WARNING: PyTorch import failed ({torch['error']}); the job may fail too"]
    build = torch.get("cuda_build")
    available = bool(torch.get("cuda_available"))
    devices = torch.get("devices") or []
    names = [f"cuda:{d['index']} {d['name']}" for d in devices]
    lines = [
        f"torch {torch.get('version')} (CUDA build {build or 'none: CPU-only'}): "
        f"torch.cuda.is_available()={available}"
        + (f", {len(devices)} device(s): {'; '.join(names)}" if names else "")
    ]
    if granted and not build:
        lines.append(
            "WARNING: this job holds GPUs but torch is a CPU-only build: it will compute on the CPU"
        )
    elif granted and not available:
        lines.append(
            "WARNING: this job holds GPUs but torch.cuda.is_available() is False: it will "
            "compute on the CPU (run `sageport doctor`)"
        )
    elif granted and len(devices) != len(granted):
        lines.append(f"WARNING: {len(granted)} GPU(s) granted but torch sees {len(devices)}")
    for check in checks.torch_checks(probe, bool(granted), matmul_rate=False):
        if check.name.endswith("arch in torch build") or check.name.startswith(
            ("matmul on", "PyTorch GPU probe")
        ):
            lines.append(_finding(check))
    return lines


def report(
    env: dict[str, str],
    frameworks: tuple[str, ...] = ALL_FRAMEWORKS,
    python: str = sys.executable,
    timeout: float = PROBE_TIMEOUT_S,
) -> list[str]:
    """The pre-flight lines (without the prefix); warnings start with ``WARNING:``."""
    visible, granted, line = _visible(env)
    lines = [line]
    checks = load_checks()
    sanity = checks.check_visible_devices(visible, None, (), env.get("CUDA_DEVICE_ORDER"))
    if visible and sanity.verdict.value == "fail":
        lines.append(_finding(sanity))
    wanted = [f for f in frameworks if f in ALL_FRAMEWORKS]
    if not wanted:
        return lines
    args = [f"--frameworks={','.join(wanted)}", *TINY_MATMUL]
    probe, why = checks.run_probe(python, env, matmul=bool(granted), timeout=timeout, args=args)
    if probe is None:
        return [*lines, f"WARNING: the framework checks gave no answer ({why})"]
    if "torch" in wanted:
        lines += _torch_lines(checks, probe, granted)
    if "tensorflow" in wanted:
        lines += [_finding(c) for c in checks.tensorflow_checks(probe, bool(granted))]
    if "jax" in wanted:
        lines += [_finding(c) for c in checks.jax_checks(probe)]
    return lines


def _options(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(frameworks, command) from ``[--frameworks=a,b] -- CMD...``."""
    frameworks: tuple[str, ...] = ALL_FRAMEWORKS
    rest = list(argv)
    while rest and rest[0].startswith("--frameworks="):
        value = rest.pop(0).split("=", 1)[1]
        frameworks = tuple(f for f in value.split(",") if f)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return frameworks, rest


def main(argv: list[str]) -> int:
    frameworks, command = _options(argv)
    started = time.monotonic()
    try:
        for line in report(dict(os.environ), frameworks):
            _say(line)
        _say(f"done in {time.monotonic() - started:.1f} s")
    except BaseException as exc:  # never fail the job: say what went wrong and go on
        _say(f"WARNING: the GPU pre-flight failed ({type(exc).__name__}: {exc}); running the job")
    sys.stdout.flush()
    if not command:
        return 0
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"{PREFIX} cannot run {command[0]!r}: {exc}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
