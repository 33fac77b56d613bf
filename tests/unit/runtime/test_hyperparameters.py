from __future__ import annotations

from sageport.runtime.hyperparameters import decode, split, to_cmd_args


def test_decode_accepts_sdk_v2_json_and_raw_strings() -> None:
    decoded = decode(
        {
            "epochs": "2",
            "lr": "0.1",
            "name": '"abc"',
            "flag": "true",
            "cfg": '{"a": 1}',
            "raw": "abc",
            "path": "s3://b/k",
            "empty": "",
        }
    )
    assert decoded == {
        "epochs": 2,
        "lr": 0.1,
        "name": "abc",
        "flag": True,
        "cfg": {"a": 1},
        "raw": "abc",
        "path": "s3://b/k",
        "empty": "",
    }


def test_split_separates_reserved_framework_and_user_names() -> None:
    result = split(
        {
            "epochs": 2,
            "sagemaker_program": "train.py",
            "_tuning_objective_metric": "loss",
            "default_user_module_name": "m",
            "sagemaker_mpi_enabled": True,
            "sagemaker_whatever": 1,
        }
    )
    assert result.user == {"epochs": 2}
    assert result.framework == {"sagemaker_mpi_enabled": True, "sagemaker_whatever": 1}
    assert set(result.sagemaker) == {
        "sagemaker_program",
        "_tuning_objective_metric",
        "default_user_module_name",
        "sagemaker_mpi_enabled",
        "sagemaker_whatever",
    }


def test_to_cmd_args_formats_like_the_toolkit() -> None:
    args = to_cmd_args(
        {
            "epochs": 2,
            "lr": 0.1,
            "name": "abc",
            "flag": True,
            "cfg": {"b": 2, "a": 1},
            "batch-size": 32,
            "x": 5,
            "none": None,
            "off": False,
            "layers": [1, 2],
        }
    )
    assert args == [
        "--batch-size",
        "32",
        "--cfg",
        "a=1,b=2",
        "--epochs",
        "2",
        "--flag",
        "True",
        "--layers",
        "[1, 2]",
        "--lr",
        "0.1",
        "--name",
        "abc",
        "--none",
        "",
        "--off",
        "False",
        "-x",
        "5",
    ]


def test_to_cmd_args_of_nothing_is_empty() -> None:
    assert to_cmd_args({}) == []
