"""Proof against the real training toolkit (sagemaker-training 5.1.4).

We build a host folder with our functions, start a Python process with the env we computed,
and let the toolkit's own ``Environment().to_env_vars()`` read that folder and env. Every
``SM_*`` variable it produces must equal ours. The toolkit probes the GPU and CPU counts of
the machine where we use the scheduler's allocation; the process reports its probe and we
feed those two numbers in, so that everything else is compared exactly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sageport.runtime import names
from sageport.runtime.config_files import config_files, write_config_files
from sageport.runtime.entrypoint import plan_launch
from sageport.runtime.environment import training_env
from sageport.runtime.hyperparameters import decode, split, to_cmd_args
from sageport.runtime.paths import HostPaths, make_tree

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sagemaker_training") is None,
    reason="sagemaker-training (test extra) is not installed; cannot compare with the toolkit",
)

_PROBE = """
import json, multiprocessing
from sagemaker_training import environment
env = environment.Environment()
print("@@" + json.dumps({"vars": env.to_env_vars(), "cmd": env.to_cmd_args(),
                         "gpus": environment.num_gpus(), "cpus": multiprocessing.cpu_count()}))
"""

SDK_V2_HPS = {
    "epochs": "2",
    "lr": "0.1",
    "name": '"abc"',
    "flag": "true",
    "cfg": '{"a": 1}',
    "batch-size": "32",
    "x": "5",
    "sagemaker_submit_directory": '"s3://mybucket/job-1/source/sourcedir.tar.gz"',
    "sagemaker_program": '"train.py"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"job-1"',
    "sagemaker_region": '"us-east-1"',
    "sagemaker_torch_distributed_enabled": "true",
    "sagemaker_instance_type": '"ml.g5.12xlarge"',
}


def _channel(name: str, **extra: Any) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": f"s3://b/{name}"}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, **extra}


SPECS: dict[str, dict[str, Any]] = {
    "sdk-v2-pytorch": {
        "TrainingJobName": "job-1",
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "HyperParameters": SDK_V2_HPS,
        "InputDataConfig": [_channel("train", ContentType="text/csv"), _channel("test")],
        "ResourceConfig": {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 2},
    },
    "raw-strings-no-channels": {
        "TrainingJobName": "job-2",
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "HyperParameters": {"name": "abc", "lr": "1e-3", "mp_parameters": '{"pp": 2}'},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        "Environment": {"SAGEMAKER_PROGRAM": "run.py", "SAGEMAKER_TRAINING_MODULE": "m:main"},
    },
    "heterogeneous": {
        "TrainingJobName": "job-3",
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "FastFile"},
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_mpi_enabled": "true",
            "sagemaker_distribution_instance_groups": '["gpus"]',
        },
        "InputDataConfig": [_channel("train", InputMode="File")],
        "ResourceConfig": {
            "InstanceGroups": [
                {"InstanceGroupName": "data", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
                {
                    "InstanceGroupName": "gpus",
                    "InstanceType": "ml.p4d.24xlarge",
                    "InstanceCount": 2,
                },
            ]
        },
    },
}

CASES = [
    ("sdk-v2-pytorch", "algo-1"),
    ("sdk-v2-pytorch", "algo-2"),
    ("raw-strings-no-channels", "algo-1"),
    ("heterogeneous", "algo-1"),
    ("heterogeneous", "algo-3"),
]


def _run_toolkit(env: dict[str, str], home: Path) -> dict[str, Any]:
    process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **env}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=process_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("@@"))
    probed: dict[str, Any] = json.loads(line[2:])
    return probed


def _build(tmp_path: Path, spec: dict[str, Any], host: str, gpus: int, cpus: int) -> dict[str, str]:
    paths = HostPaths(tmp_path / host / "opt" / "ml")
    files = config_files(spec, host)
    make_tree(paths, files.input_data_config)
    write_config_files(paths, files)
    return training_env(
        spec,
        job_name=spec["TrainingJobName"],
        job_arn=f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{spec['TrainingJobName']}",
        host=host,
        paths=paths,
        num_gpus=gpus,
        num_cpus=cpus,
        region="us-east-1",
    )


def _sm(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(names.SM_PREFIX)}


@pytest.mark.parametrize(("case", "host"), CASES)
def test_every_sm_variable_matches_the_toolkit(tmp_path: Path, case: str, host: str) -> None:
    spec = SPECS[case]
    first = _build(tmp_path, spec, host, gpus=0, cpus=1)
    probe = _run_toolkit(first, tmp_path)
    ours = _build(tmp_path, spec, host, gpus=probe["gpus"], cpus=probe["cpus"])
    toolkit_vars: dict[str, str] = probe["vars"]

    # Inputs the toolkit reads but does not produce: the only SM_* names only we set.
    inputs = {names.STUDIO_LOCAL_MODE_ENV}
    assert set(_sm(ours)) - inputs == set(toolkit_vars)
    for key, value in toolkit_vars.items():
        if key == "SM_TRAINING_ENV":
            assert json.loads(ours[key]) == json.loads(value)
        assert ours[key] == value, key
    decoded = split(decode(spec["HyperParameters"])).user
    assert to_cmd_args(decoded) == probe["cmd"]


def test_verified_command_line_and_sdk_v2_values(tmp_path: Path) -> None:
    env = _build(tmp_path, SPECS["sdk-v2-pytorch"], "algo-1", gpus=4, cpus=48)
    args = json.loads(env["SM_USER_ARGS"])
    assert (
        " ".join(args)
        == "--batch-size 32 --cfg a=1 --epochs 2 --flag True --lr 0.1 --name abc -x 5"
    )
    assert env["SM_HP_NAME"] == "abc"
    assert env["SM_HP_FLAG"] == "true"
    assert env["SM_HP_CFG"] == '{"a":1}'
    assert env["SM_HP_BATCH-SIZE"] == "32"
    assert env["SM_FRAMEWORK_PARAMS"] == (
        '{"sagemaker_instance_type":"ml.g5.12xlarge","sagemaker_torch_distributed_enabled":true}'
    )
    # Deliberate difference from the toolkit: the allocation, not the machine's hardware.
    assert (env["SM_NUM_GPUS"], env["SM_NUM_CPUS"]) == ("4", "48")


_COMMAND_PROBE = """
import json, sys
from sagemaker_training import process
runner = process.ProcessRunner(sys.argv[1], sys.argv[2:], {}, 1)
print("@@" + json.dumps(runner._create_command()))
"""


@pytest.mark.parametrize(
    ("program", "files"),
    [("train.py", []), ("train.py", ["setup.py"]), ("run.sh", []), ("bin/train", [])],
)
def test_launch_command_matches_the_toolkit(tmp_path: Path, program: str, files: list[str]) -> None:
    paths = HostPaths(tmp_path / "opt" / "ml")
    make_tree(paths)
    for name in files:
        (paths.code_dir / name).write_text("")
    args = ["--name", "a b", "--cfg", "a=1,b=2", "-x", "5"]
    process_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        names.BASE_DIR_ENV: str(paths.root),
    }
    result = subprocess.run(
        [sys.executable, "-c", _COMMAND_PROBE, program, *args],
        env=process_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("@@"))
    plan = plan_launch(
        code_dir=paths.code_dir, program=program, cmd_args=args, python=sys.executable
    )
    assert list(plan.argv) == json.loads(line[2:])
