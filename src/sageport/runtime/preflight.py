"""The GPU pre-flight that runs before the user code of a host holding GPUs.

The first lines of a GPU job's log then say what the job sees (granted devices, whether
PyTorch is a CUDA build and finds them), so a silent fall-back to the CPU is visible before
the first epoch. The check itself is ``preflight_script.py``, run by path with the job's
interpreter (which may not have sageport installed); it ``exec``s the job's command, so the
process the backend watches is still the user's and signals reach it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PREFLIGHT_SCRIPT = Path(__file__).with_name("preflight_script.py")


def preflight_argv(python: str, argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that the pre-flight runs first with ``python``, then ``argv`` itself.

    The pre-flight never fails the job: on any error it prints a warning and execs ``argv``.
    """
    return [python, str(PREFLIGHT_SCRIPT), "--", *argv]
