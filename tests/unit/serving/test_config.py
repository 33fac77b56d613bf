"""The env var contract: SageMaker names, sageport names, and the code folder rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from sageport.serving.config import ServerConfig, resolve_code_dir


def test_defaults(tmp_path: Path) -> None:
    config = ServerConfig.from_env({}, model_dir=tmp_path)
    assert config.port == 8080
    assert config.code_dir == tmp_path.resolve() / "code"
    assert config.program == "inference.py"
    assert config.workers == 1
    assert config.timeout_s == 60
    assert config.default_accept == "application/json"
    assert config.max_payload_bytes == 6 * 1024 * 1024
    assert not config.batching


def test_sagemaker_names(tmp_path: Path) -> None:
    env = {
        "SAGEMAKER_PROGRAM": "serve.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "5",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "SAGEMAKER_TS_BATCH_SIZE": "8",
        "SAGEMAKER_TS_MAX_BATCH_DELAY": "20",
        "SAGEMAKER_BIND_TO_PORT": "9090",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
    }
    config = ServerConfig.from_env(env, model_dir=tmp_path)
    assert config.program == "serve.py"
    assert config.code_dir == tmp_path.resolve() / "code"
    assert config.workers == 2
    assert config.timeout_s == 5
    assert config.default_accept == "text/csv"
    assert config.batch_size == 8
    assert config.max_batch_delay_s == pytest.approx(0.02)
    assert config.port == 9090
    assert config.max_payload_bytes == 1024 * 1024


def test_sageport_names_and_command_line_win(tmp_path: Path) -> None:
    env = {
        "SAGEMAKER_TS_BATCH_SIZE": "8",
        "SAGEPORT_BATCH_SIZE": "4",
        "SAGEPORT_MAX_BATCH_DELAY_MS": "2",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "4",
        "SAGEPORT_REQUEST_TIMEOUT": "3",
    }
    config = ServerConfig.from_env(env, model_dir=tmp_path, port=1234, workers=1, timeout_s=9)
    assert config.batch_size == 4
    assert config.max_batch_delay_s == pytest.approx(0.002)
    assert (config.port, config.workers, config.timeout_s) == (1234, 1, 9)


def test_code_dir_rules(tmp_path: Path) -> None:
    assert resolve_code_dir(None, tmp_path) == tmp_path / "code"
    assert resolve_code_dir("s3://bucket/sourcedir.tar.gz", tmp_path) == tmp_path / "code"
    assert resolve_code_dir("/opt/ml/model/code", tmp_path) == tmp_path / "code"
    assert resolve_code_dir("/opt/ml/model/src/lib", tmp_path) == tmp_path / "src/lib"
    assert resolve_code_dir("/elsewhere/code", tmp_path) == Path("/elsewhere/code")
    assert resolve_code_dir("code2", tmp_path) == tmp_path / "code2"


def test_bad_number_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SAGEMAKER_TS_BATCH_SIZE"):
        ServerConfig.from_env({"SAGEMAKER_TS_BATCH_SIZE": "many"}, model_dir=tmp_path)
