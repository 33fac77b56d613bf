"""``runtime.distribution``: the launcher each ``distribution=`` gets, its command and variables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sageport.runtime import distribution as D
from sageport.runtime.entrypoint import EntryPointType
from sageport.runtime.errors import ContractError


def _choose(framework: dict[str, Any], hosts: int = 1, gpus: int = 0, **user: Any) -> Any:
    return D.choose(framework, user, hosts, gpus)


def test_no_distribution_is_a_plain_process() -> None:
    assert _choose({}) == (D.FrameworkLauncher.PROCESS, [])
    assert _choose({"sagemaker_instance_type": "ml.m5.xlarge"}, hosts=4) == (
        D.FrameworkLauncher.PROCESS,
        [],
    )
    # an option the SDK switched off explicitly is off
    assert (
        _choose({D.SMDATAPARALLEL: False, D.TORCH_DISTRIBUTED: True})[0]
        is D.FrameworkLauncher.TORCHRUN
    )


def test_torch_distributed_and_mwms_are_started() -> None:
    assert _choose({D.TORCH_DISTRIBUTED: True}, hosts=2)[0] is D.FrameworkLauncher.TORCHRUN
    assert _choose({D.MWMS: True}, hosts=3)[0] is D.FrameworkLauncher.TF_CONFIG


@pytest.mark.parametrize(
    ("framework", "hosts", "gpus", "user", "words"),
    [
        ({D.MPI: True}, 2, 0, {}, "asks for 2 processes (2 instance(s) x 1 per instance)"),
        ({D.MPI: True}, 1, 8, {}, "asks for 8 processes (1 instance(s) x 8 per instance)"),
        ({D.MPI: True, D.MPI_PROCESSES_PER_HOST: 4}, 1, 0, {}, "asks for 4 processes"),
        ({D.MPI: True, D.MPI_NUM_PROCESSES: 3}, 1, 0, {}, "asks for 3 processes"),
        ({D.SMDATAPARALLEL: True}, 1, 8, {}, "smdistributed.dataparallel"),
        ({}, 1, 8, {D.MP_PARAMETERS: {"partitions": 2}}, "smdistributed.modelparallel"),
        ({D.PYTORCH_DDP: True}, 1, 8, {}, "'pytorchddp'"),
        ({D.PYTORCH_XLA: True}, 1, 0, {}, "Trainium"),
        ({D.PARAMETER_SERVER: True}, 2, 0, {}, "parameter servers"),
    ],
)
def test_what_is_not_started_is_refused_saying_what_to_use(
    framework: dict[str, Any], hosts: int, gpus: int, user: dict[str, Any], words: str
) -> None:
    with pytest.raises(ContractError) as info:
        D.choose(framework, user, hosts, gpus)
    assert words in str(info.value)


def test_one_process_in_all_runs_plainly_with_a_note() -> None:
    launcher, notes = _choose({D.MPI: True})
    assert launcher is D.FrameworkLauncher.PROCESS
    assert "one process" in notes[0]
    launcher, notes = _choose({D.PARAMETER_SERVER: True})
    assert launcher is D.FrameworkLauncher.PROCESS
    assert "no parameter server" in notes[0]
    # an empty mp_parameters is no model parallelism (the toolkit's `mp != "{}"`)
    assert _choose({}, mp_parameters="{}")[0] is D.FrameworkLauncher.PROCESS


def test_processes_per_host_follow_the_toolkit() -> None:
    assert D.processes_per_host({}, 0) == 1  # a CPU type: one process, as the toolkit does
    assert D.processes_per_host({}, 4) == 4
    assert D.processes_per_host({D.MPI_PROCESSES_PER_HOST: 2}, 8) == 2
    with pytest.raises(ContractError):
        D.processes_per_host({D.MPI_PROCESSES_PER_HOST: "many"}, 8)


def test_torchrun_command_is_the_toolkits() -> None:
    argv = D.torchrun_argv(
        "/venv/bin/python",
        "train.py",
        EntryPointType.PYTHON_PROGRAM,
        ["--epochs", "2"],
        hosts=["algo-1", "algo-2"],
        current_host="algo-2",
        nproc_per_node=4,
        master="algo-1",
        master_port=7777,
    )
    assert argv == [
        "/venv/bin/python", "-m", "torch.distributed.run",
        "--nnodes", "2", "--nproc_per_node", "4",
        "--master_addr", "algo-1", "--master_port", "7777", "--node_rank", "1",
        "train.py", "--epochs", "2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (EntryPointType.PYTHON_PACKAGE, "Python packages are not supported for torch_distributed"),
        (EntryPointType.COMMAND, "Unsupported entry point type for torch_distributed"),
    ],
)
def test_torchrun_runs_python_scripts_only(kind: EntryPointType, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        D.torchrun_argv(
            "python", "train.sh", kind, [], hosts=["algo-1"], current_host="algo-1",
            nproc_per_node=1, master="algo-1", master_port=7777,
        )  # fmt: skip


def test_torch_env_uses_the_loopback_every_instance_shares() -> None:
    env = D.torch_env("algo-1", 7777)
    assert env["MASTER_ADDR"] == "algo-1"
    assert env["MASTER_PORT"] == "7777"
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "lo"
    assert env["NCCL_IB_DISABLE"] == "1"


def test_addresses_and_ports() -> None:
    assert D.address("algo-2", sandbox=True) == "algo-2"
    assert D.address("algo-2", sandbox=False) == "127.0.0.1"
    assert D.wanted_ports(D.FrameworkLauncher.TORCHRUN, 3, pytorch=False) == [7777]
    assert D.wanted_ports(D.FrameworkLauncher.PROCESS, 3, pytorch=True) == [7777]
    assert D.wanted_ports(D.FrameworkLauncher.PROCESS, 3, pytorch=False) == []
    assert D.wanted_ports(D.FrameworkLauncher.TF_CONFIG, 3, pytorch=False) == [8890, 8891, 8892]


def test_tf_config_names_every_worker_and_this_ones_index() -> None:
    config = json.loads(D.tf_config(["algo-1", "algo-2"], "algo-2", ["algo-1:8890", "algo-2:8891"]))
    assert config == {
        "cluster": {"worker": ["algo-1:8890", "algo-2:8891"]},
        "environment": "cloud",
        "task": {"index": 1, "type": "worker"},
    }


def test_torchruns_failure_report_is_recognised() -> None:
    new = (
        "E1201 20:39:55.185000 16774 site-packages/torch/distributed/elastic/multiprocessing/"
        "api.py:1002] failed (exitcode: 1) local_rank: 0 (pid: 16786) of binary: /usr/bin/python"
    )
    old = "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) local_rank: 0"
    assert D.launcher_failure_line(new)
    assert D.launcher_failure_line(old)
    assert not D.launcher_failure_line("ValueError: training failed (exitcode: 1)")
