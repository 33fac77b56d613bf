"""The GPU pre-flight that runs before the user code of a host holding GPUs.

The first lines of a GPU job's log then say what the job sees (granted devices, whether
PyTorch is a CUDA build, finds them, has kernels for them and can run a matmul on each; what
TensorFlow and JAX list), so a silent fall-back to the CPU is visible before the first epoch.
The check itself is ``preflight_script.py``, run by path with the job's interpreter (which
may not have sageport installed); it ``exec``s the job's command, so the process the backend
watches is still the user's and signals reach it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PREFLIGHT_SCRIPT = Path(__file__).with_name("preflight_script.py")


#: The frameworks the pre-flight looks at, by the image's framework (``RuntimeSpec``): a job
#: is only kept waiting for the imports its image is about. Images of frameworks without a
#: GPU check (scikit-learn, XGBoost) get the CUDA_VISIBLE_DEVICES check only; anything else
#: (custom, ``local:`` interpreters) gets every installed framework checked.
_FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch",),
    "huggingface-pytorch": ("torch",),
    "tensorflow": ("tensorflow",),
    "huggingface-tensorflow": ("tensorflow",),
    "sklearn": (),
    "xgboost": (),
    "mxnet": (),
    "chainer": (),
}
ALL_FRAMEWORKS = ("torch", "tensorflow", "jax")


def frameworks_for(image_framework: str) -> tuple[str, ...]:
    """Which frameworks the pre-flight checks for a job whose image is of ``image_framework``."""
    return _FRAMEWORKS.get(image_framework, ALL_FRAMEWORKS)


def preflight_argv(
    python: str, argv: Sequence[str], frameworks: Sequence[str] | None = None
) -> list[str]:
    """``argv`` wrapped so that the pre-flight runs first with ``python``, then ``argv`` itself.

    ``frameworks``: what to check (default: every one installed; see :func:`frameworks_for`).
    The pre-flight never fails the job: on any error it prints a warning and execs ``argv``.
    """
    only = [] if frameworks is None else [f"--frameworks={','.join(frameworks)}"]
    return [python, str(PREFLIGHT_SCRIPT), *only, "--", *argv]
