from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sageport.runtime.environment import env_value, to_sm_env, training_env
from sageport.runtime.paths import HostPaths

ARN = "arn:aws:sagemaker:eu-west-1:000000000000:training-job/job-1"


def _spec(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "HyperParameters": {
            "epochs": "2",
            "lr": "0.1",
            "name": '"abc"',
            "flag": "true",
            "cfg": '{"a": 1}',
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://b/job-1/source/sourcedir.tar.gz"',
            "sagemaker_job_name": '"job-1"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/t"}},
            }
        ],
        "ResourceConfig": {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 1},
    }
    spec.update(extra)
    return spec


def _env(spec: dict[str, Any], paths: HostPaths | None = None, **kw: Any) -> dict[str, str]:
    return training_env(
        spec,
        job_name="job-1",
        job_arn=ARN,
        host="algo-1",
        paths=paths or HostPaths.in_sandbox(),
        num_gpus=4,
        num_cpus=48,
        region="eu-west-1",
        **kw,
    )


def test_value_and_key_formats() -> None:
    assert env_value(None) == ""
    assert env_value("abc") == "abc"
    assert env_value(True) == "true"
    assert env_value({"b": [1, 2], "a": "x"}) == '{"a":"x","b":[1,2]}'
    assert to_sm_env({"hp_batch-size": 32}) == {"SM_HP_BATCH-SIZE": "32"}


def test_sm_variables_in_the_sandbox() -> None:
    env = _env(_spec())
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_HPS"] == '{"cfg":{"a":1},"epochs":2,"flag":true,"lr":0.1,"name":"abc"}'
    assert (env["SM_HP_NAME"], env["SM_HP_EPOCHS"], env["SM_HP_CFG"]) == ("abc", "2", '{"a":1}')
    assert json.loads(env["SM_USER_ARGS"]) == [
        "--cfg",
        "a=1",
        "--epochs",
        "2",
        "--flag",
        "True",
        "--lr",
        "0.1",
        "--name",
        "abc",
    ]
    assert env["SM_FRAMEWORK_PARAMS"] == "{}"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.g5.12xlarge"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert (env["SM_NUM_GPUS"], env["SM_NUM_CPUS"], env["SM_NUM_NEURONS"]) == ("4", "48", "0")
    assert env["SM_LOG_LEVEL"] == "20"
    assert (env["SM_MODULE_NAME"], env["SM_USER_ENTRY_POINT"]) == ("train", "train.py")
    assert env["SM_MODULE_DIR"] == "s3://b/job-1/source/sourcedir.tar.gz"
    assert env["SM_FRAMEWORK_MODULE"] == ""
    assert env["SM_INPUT_DIR"] == "/opt/ml/input"
    assert env["SM_INPUT_CONFIG_DIR"] == "/opt/ml/input/config"
    assert env["SM_OUTPUT_DIR"] == "/opt/ml/output"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == "/opt/ml/output/intermediate"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "File"
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["job_name"] == "job-1"
    assert training["is_master"] is True
    assert "SAGEMAKER_BASE_DIR" not in env


def test_platform_variables() -> None:
    env = _env(_spec(), s3_endpoint_url="http://127.0.0.1:5757")
    assert env["TRAINING_JOB_NAME"] == "job-1"
    assert env["TRAINING_JOB_ARN"] == ARN
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert env["SAGEMAKER_JOB_NAME"] == "job-1"
    assert env["CURRENT_HOST"] == "algo-1"
    assert env["SAGEMAKER_PROGRAM"] == "train.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "s3://b/job-1/source/sourcedir.tar.gz"
    assert env["S3_ENDPOINT_URL"] == "http://127.0.0.1:5757"
    assert env["SM_STUDIO_LOCAL_MODE"] == "true"
    assert env["PYTHONPATH"] == "/opt/ml/code"


def test_outside_a_sandbox_paths_point_at_the_host_folder(tmp_path: Path) -> None:
    paths = HostPaths(tmp_path / "algo-1")
    env = _env(_spec(), paths)
    assert env["SAGEMAKER_BASE_DIR"] == str(paths.root)
    assert env["SM_MODEL_DIR"] == str(paths.model_dir)
    assert env["SM_CHANNEL_TRAIN"] == str(paths.channel_dir("train"))
    assert env["PYTHONPATH"] == str(paths.code_dir)


def test_precedence_of_job_environment() -> None:
    spec = _spec(
        Environment={
            "AWS_REGION": "us-west-2",
            "TRAINING_JOB_NAME": "hijack",
            "SM_HPS": "{}",
            "PYTHONPATH": "/extra",
            "MY_VAR": "1",
            "SAGEMAKER_PROGRAM": "other.py",
            "ENDPOINT": "user",
            "CUDA_VISIBLE_DEVICES": "7",
        }
    )
    env = _env(spec, base_env={"ENDPOINT": "platform"}, forced_env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert env["AWS_REGION"] == "us-west-2"  # the job may override platform defaults
    assert env["ENDPOINT"] == "user"
    assert env["MY_VAR"] == "1"
    assert env["TRAINING_JOB_NAME"] == "job-1"  # but not the platform's own names
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["PYTHONPATH"] == "/opt/ml/code:/extra"
    assert env["SM_HPS"] != "{}"  # the toolkit's SM_* overwrite the job's
    # SAGEMAKER_PROGRAM from the job's Environment wins, as the toolkit reads env first.
    assert (env["SM_MODULE_NAME"], env["SM_USER_ENTRY_POINT"]) == ("other", "other.py")


def test_distribution_flags_and_missing_program() -> None:
    spec = _spec(
        HyperParameters={"sagemaker_torch_distributed_enabled": "true"},
        ResourceConfig={"InstanceType": "ml.trn2.48xlarge", "InstanceCount": 2},
    )
    env = training_env(
        spec,
        job_name="j",
        job_arn=ARN,
        host="algo-2",
        paths=HostPaths.in_sandbox(),
        num_gpus=0,
        num_cpus=8,
        region="r",
    )
    training = json.loads(env["SM_TRAINING_ENV"])
    assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["homogeneousCluster"]'
    assert training["master_hostname"] == "algo-1"
    assert training["is_master"] is False
    assert env["SM_NUM_NEURONS"] == "64"  # the toolkit hard-codes trn2.48xlarge
    # The toolkit str()s a missing sagemaker_program into "None"; we reproduce it.
    assert env["SM_MODULE_NAME"] == "None"
    assert env["SM_USER_ENTRY_POINT"] == ""
    assert env["SM_MODULE_DIR"] == "/opt/ml/code"
    assert "SAGEMAKER_PROGRAM" not in env
