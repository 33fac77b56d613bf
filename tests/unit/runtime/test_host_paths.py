from __future__ import annotations

from pathlib import Path

import pytest

from sageport.runtime.paths import HostPaths, make_tree, rewrite_opt_ml


def test_layout_matches_the_opt_ml_contract() -> None:
    paths = HostPaths.in_sandbox()
    assert paths.is_default_root
    assert str(paths.hyperparameters_file) == "/opt/ml/input/config/hyperparameters.json"
    assert str(paths.input_data_config_file) == "/opt/ml/input/config/inputdataconfig.json"
    assert str(paths.resource_config_file) == "/opt/ml/input/config/resourceconfig.json"
    assert str(paths.channel_dir("train")) == "/opt/ml/input/data/train"
    assert str(paths.code_dir) == "/opt/ml/code"
    assert str(paths.model_dir) == "/opt/ml/model"
    assert str(paths.output_data_dir) == "/opt/ml/output/data"
    assert str(paths.output_intermediate_dir) == "/opt/ml/output/intermediate"
    assert str(paths.failure_file) == "/opt/ml/output/failure"
    assert str(paths.success_file) == "/opt/ml/output/success"
    assert str(paths.checkpoints_dir) == "/opt/ml/checkpoints"


def test_make_tree_creates_folders_but_not_intermediate(tmp_path: Path) -> None:
    paths = HostPaths(tmp_path / "opt" / "ml")
    assert not paths.is_default_root
    make_tree(paths, ["train", "test"])
    make_tree(paths, ["train"])  # idempotent
    for folder in (
        paths.input_config_dir,
        paths.channel_dir("train"),
        paths.channel_dir("test"),
        paths.code_dir,
        paths.model_dir,
        paths.output_data_dir,
        paths.checkpoints_dir,
    ):
        assert folder.is_dir(), folder
    # The toolkit syncs output/intermediate to S3 only if it does not exist yet.
    assert not paths.output_intermediate_dir.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/opt/ml", "/data/h"),
        ("/opt/ml/code/train.py", "/data/h/code/train.py"),
        ("--model-dir=/opt/ml/model", "--model-dir=/data/h/model"),
        ("/opt/mlflow/x", "/opt/mlflow/x"),  # same letters, another folder
        ("train.py", "train.py"),
        ("a=/opt/ml/model", "a=/opt/ml/model"),  # not an option: kept as given
        ("--flag", "--flag"),
    ],
)
def test_opt_ml_paths_point_at_the_host_folder_without_a_sandbox(value: str, expected: str) -> None:
    assert rewrite_opt_ml(value, Path("/data/h")) == expected
