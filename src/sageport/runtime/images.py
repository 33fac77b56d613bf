"""Which local Python stands in for a job's container image.

Without Docker, an image URI is only a promise: "a Python with this framework, running my
script the SageMaker way". We recognise the AWS Deep Learning / framework images in every
partition, region, account and tag, and map each to an interpreter: the server's own Python
by default, or one the settings name per framework. Anything else must be mapped explicitly
(the settings' ``images`` table) or named ``local:<path-to-python>`` in the request.

Lookup order for the interpreter, first match wins: the full image URI, the repository with
tag (``my-repo:1.0``), the repository (``my-repo``), ``<framework>:<version>``,
``<framework>``. Reading the settings file is the caller's business: it passes the table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sageport.runtime.errors import UnknownImage

SETTINGS_KEY = "images"
"""The settings-file table mapping an image (or repository, or framework) to a Python path."""

LOCAL_PREFIX = "local:"
"""``TrainingImage: "local:/path/to/python"`` runs the job with that interpreter."""

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\."
    r"(?:amazonaws\.com(?:\.cn)?|c2s\.ic\.gov|sc2s\.sgov\.gov)"
    r"/(?P<repo>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[\w][\w.+-]*))?(?:@sha256:[0-9a-f]{64})?$"
)
"""An ECR image URI: ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>[:tag][@digest]``."""

_FRAMEWORK_REPOS: Mapping[str, str] = {
    "pytorch-training": "pytorch",
    "pytorch-inference": "pytorch",
    "pytorch-training-neuronx": "pytorch",
    "pytorch-inference-neuronx": "pytorch",
    "pytorch-trcomp-training": "pytorch",
    "sagemaker-pytorch": "pytorch",
    "tensorflow-training": "tensorflow",
    "tensorflow-inference": "tensorflow",
    "sagemaker-tensorflow-scriptmode": "tensorflow",
    "sagemaker-tensorflow-serving": "tensorflow",
    "huggingface-pytorch-training": "huggingface-pytorch",
    "huggingface-pytorch-inference": "huggingface-pytorch",
    "huggingface-pytorch-trcomp-training": "huggingface-pytorch",
    "huggingface-tensorflow-training": "huggingface-tensorflow",
    "huggingface-tensorflow-inference": "huggingface-tensorflow",
    "mxnet-training": "mxnet",
    "mxnet-inference": "mxnet",
    "sagemaker-mxnet": "mxnet",
    "sagemaker-chainer": "chainer",
    "sagemaker-scikit-learn": "sklearn",
    "sagemaker-xgboost": "xgboost",
    "sagemaker-base-python": "base-python",
}
"""ECR repositories of the AWS framework images (SDK ``image_uri_config/*.json``) → framework."""

FRAMEWORKS: tuple[str, ...] = tuple(dict.fromkeys(_FRAMEWORK_REPOS.values()))
"""The image families, in table order: what ``sageport serve`` and ``doctor`` report on."""

_VERSION = re.compile(r"^(\d+(?:\.\d+)*)(?:-(\d+)(?=-|$))?")
"""``2.1.0-gpu-py310-…`` → ``2.1.0``; ``1.2-1-cpu-py3`` (sklearn, xgboost) → ``1.2-1``."""


@dataclass(frozen=True)
class RuntimeSpec:
    """How to run a job whose image is ``image``.

    ``script_mode`` is True when the image runs a user entry point through the training
    toolkit contract (``sagemaker_program``, ``SM_*``); inference-only images (``*-inference``)
    serve a model with the inference handler contract instead.
    """

    image: str
    framework: str
    version: str | None
    python: str
    script_mode: bool
    mapped_by: str | None = None
    """The key of the settings' ``images`` table that chose ``python``; None when nothing
    mapped it (the server's interpreter, or a ``local:`` image that names its own)."""


def parse_ecr(image: str) -> tuple[str, str | None] | None:
    """``(repository, tag)`` of an ECR image URI, or None if ``image`` is not one."""
    match = _ECR.match(image)
    if match is None:
        return None
    return match["repo"], match["tag"]


def version_from_tag(tag: str | None) -> str | None:
    """The framework version a DLC tag starts with, or None (``latest``, no tag)."""
    if not tag:
        return None
    match = _VERSION.match(tag)
    if match is None:
        return None
    return match[1] + (f"-{match[2]}" if match[2] else "")


def resolve_image(
    image: str,
    mapping: Mapping[str, str] | None = None,
    *,
    default_python: str | None = None,
) -> RuntimeSpec:
    """The local runtime for ``image`` (a ``TrainingImage`` or a container's ``Image``).

    ``mapping`` is the settings' ``images`` table (image, repository or framework → Python
    path); ``default_python`` (the server's interpreter if omitted) runs recognised framework
    images nothing maps. Raises ``UnknownImage`` saying how to map anything else.
    """
    table = mapping or {}
    python_default = default_python or sys.executable

    if image.startswith(LOCAL_PREFIX):
        python = image[len(LOCAL_PREFIX) :]
        if not python:
            raise UnknownImage(
                f"Image {image!r} names no interpreter; use 'local:/path/to/python'."
            )
        return RuntimeSpec(image, "local", None, python, script_mode=True)

    parsed = parse_ecr(image)
    repo, tag = parsed if parsed else (None, None)
    candidates = [image]
    if repo is not None:
        if tag:
            candidates.append(f"{repo}:{tag}")
        candidates.append(repo)
    framework = _FRAMEWORK_REPOS.get(repo or "")
    version = version_from_tag(tag)
    if framework is not None:
        if version:
            candidates.append(f"{framework}:{version}")
        candidates.append(framework)

    key = next((key for key in candidates if key in table), None)
    mapped = None if key is None else table[key]
    if framework is not None:
        script_mode = not (repo or "").endswith(("-inference", "-serving", "-inference-neuronx"))
        python = mapped or python_default
        return RuntimeSpec(image, framework, version, python, script_mode, key if mapped else None)
    if mapped is not None:
        return RuntimeSpec(image, "custom", version, mapped, script_mode=True, mapped_by=key)
    raise UnknownImage(
        f"Image {image!r} is not an AWS framework image sageport can run without a "
        f"container. Map it to a Python interpreter in the {SETTINGS_KEY!r} table of the "
        f'sageport settings file (e.g. {SETTINGS_KEY} = {{"{repo or image}" = '
        f'"/path/to/venv/bin/python"}}), or pass the image as '
        f"'{LOCAL_PREFIX}/path/to/venv/bin/python'."
    )


IMAGE_PYTHONS = ("python", "python3")
"""Commands that, in a container, mean the image's own interpreter."""


def with_image_python(argv: Sequence[str], runtime: RuntimeSpec) -> list[str]:
    """``argv`` with a leading ``python``/``python3`` replaced by the runtime's interpreter.

    A ``ContainerEntrypoint`` of ``["python3", "train.py"]`` means the image's Python; here
    that is the interpreter the image maps to, not whatever ``python3`` the PATH finds.
    """
    out = list(argv)
    if out and out[0] in IMAGE_PYTHONS:
        out[0] = runtime.python
    return out
