from __future__ import annotations

import sys

import pytest

from sageport.runtime.errors import UnknownImage
from sageport.runtime.images import parse_ecr, resolve_image, version_from_tag, with_image_python

PT = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"
    "2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker"
)


@pytest.mark.parametrize(
    ("image", "framework", "version", "script_mode"),
    [
        (PT, "pytorch", "2.1.0", True),
        (
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/tensorflow-training:2.13.0-cpu-py310",
            "tensorflow",
            "2.13.0",
            True,
        ),
        (
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-training:"
            "2.1.0-transformers4.36.0-gpu-py310-cu121-ubuntu20.04",
            "huggingface-pytorch",
            "2.1.0",
            True,
        ),
        (
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "sklearn",
            "1.2-1",
            True,
        ),
        (
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "xgboost",
            "1.7-1",
            True,
        ),
        (
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference:2.1-gpu-py310",
            "pytorch",
            "2.1",
            False,
        ),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/mxnet-training:latest", "mxnet", None, True),
        (
            "236514542706.dkr.ecr.us-east-1.amazonaws.com/sagemaker-base-python",
            "base-python",
            None,
            True,
        ),
    ],
)
def test_framework_images_are_recognised(
    image: str, framework: str, version: str | None, script_mode: bool
) -> None:
    spec = resolve_image(image)
    assert (spec.framework, spec.version, spec.script_mode) == (framework, version, script_mode)
    assert spec.python == sys.executable


def test_mapping_precedence_and_default_python() -> None:
    assert resolve_image(PT, default_python="/srv/py").python == "/srv/py"
    assert resolve_image(PT, {"pytorch": "/a"}).python == "/a"
    assert resolve_image(PT, {"pytorch": "/a", "pytorch:2.1.0": "/b"}).python == "/b"
    assert resolve_image(PT, {"pytorch:2.1.0": "/b", "pytorch-training": "/c"}).python == "/c"
    assert resolve_image(PT, {"pytorch-training": "/c", PT: "/d"}).python == "/d"


def test_custom_images_need_a_mapping() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-algo:1.0"
    spec = resolve_image(image, {"my-algo": "/venv/bin/python"})
    assert (spec.framework, spec.version, spec.python) == ("custom", "1.0", "/venv/bin/python")
    assert resolve_image("myorg/trainer:3", {"myorg/trainer:3": "/p"}).python == "/p"
    with pytest.raises(UnknownImage, match="'images' table") as info:
        resolve_image(image)
    assert "local:/path/to/venv/bin/python" in str(info.value)


def test_local_interpreter_form() -> None:
    spec = resolve_image("local:/opt/venv/bin/python")
    assert (spec.framework, spec.python, spec.script_mode) == (
        "local",
        "/opt/venv/bin/python",
        True,
    )
    with pytest.raises(UnknownImage):
        resolve_image("local:")


def test_parsing_helpers() -> None:
    assert parse_ecr("docker.io/library/python:3.11") is None
    assert parse_ecr("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/a/b@sha256:" + "0" * 64) == (
        "a/b",
        None,
    )
    assert version_from_tag("2.0-gpu") == "2.0"
    assert version_from_tag("latest") is None
    assert version_from_tag(None) is None


def test_python_in_an_entrypoint_is_the_images_interpreter() -> None:
    runtime = resolve_image(PT, {"pytorch": "/venvs/torch/bin/python"})
    assert with_image_python(["python3", "train.py"], runtime) == [
        "/venvs/torch/bin/python",
        "train.py",
    ]
    assert with_image_python(["/bin/sh", "-c", "python x"], runtime) == [
        "/bin/sh",
        "-c",
        "python x",
    ]
    assert with_image_python([], runtime) == []
