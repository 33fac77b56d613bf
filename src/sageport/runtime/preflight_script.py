"""The GPU pre-flight of a job host: print what the job will see of its GPUs, then run the job.

Run by path, with the job's own interpreter, as ``python preflight_script.py -- CMD ARGS...``
(``sageport.runtime.preflight.preflight_argv`` builds that). Standard library only; PyTorch
is imported only when installed, and its import never creates a CUDA context. Whatever goes
wrong here is printed as a warning and the job runs anyway: a pre-flight must never be the
reason a job fails. The lines go to stdout, so they are the first lines of the job's log.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PREFIX = "sageport pre-flight:"


def _say(line: str) -> None:
    sys.stdout.write(f"{PREFIX} {line}\n")


def report(env: dict[str, str]) -> list[str]:
    """The pre-flight lines (without the prefix); the last ones are warnings, if any."""
    lines: list[str] = []
    warnings: list[str] = []
    visible = env.get("CUDA_VISIBLE_DEVICES")
    granted = [v for v in (visible or "").split(",") if v.strip()]
    if visible is None:
        lines.append("CUDA_VISIBLE_DEVICES is not set: every GPU of the machine is visible")
    elif not granted:
        lines.append("no GPU is visible to this job (CUDA_VISIBLE_DEVICES is empty)")
    else:
        lines.append(f"CUDA_VISIBLE_DEVICES={visible} ({len(granted)} GPU(s) granted)")
    if importlib.util.find_spec("torch") is None:
        lines.append("PyTorch is not installed in this interpreter")
    else:
        torch = importlib.import_module("torch")
        build = torch.version.cuda
        available = bool(torch.cuda.is_available())
        count = torch.cuda.device_count() if available else 0
        names = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count)]
        lines.append(
            f"torch {torch.__version__} (CUDA build {build or 'none: CPU-only'}): "
            f"torch.cuda.is_available()={available}"
            + (f", {count} device(s): {'; '.join(names)}" if names else "")
        )
        if granted and not build:
            warnings.append(
                "this job holds GPUs but torch is a CPU-only build: it will compute on the CPU"
            )
        elif granted and not available:
            warnings.append(
                "this job holds GPUs but torch.cuda.is_available() is False: it will compute on "
                "the CPU (run `sageport doctor`)"
            )
        elif granted and count != len(granted):
            warnings.append(f"{len(granted)} GPU(s) granted but torch sees {count}")
    return lines + [f"WARNING: {w}" for w in warnings]


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    try:
        for line in report(dict(os.environ)):
            _say(line)
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
