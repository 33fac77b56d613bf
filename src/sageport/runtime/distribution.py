"""The SDK's ``distribution=``: the launcher a framework container would start, on this machine.

The SDK turns ``distribution=`` into framework hyperparameters (``sagemaker_*_enabled``,
reference §1.7); the framework container's toolkit then picks a runner. Here, per option:

================================  ==============================================================
SDK ``distribution``              what sageport does
================================  ==============================================================
``torch_distributed``             torchrun, as ``sagemaker_training.torch_distributed`` starts it:
                                  ``--nnodes`` = instances, ``--nproc_per_node`` = the host's GPUs
                                  (1 on a CPU type), ``--master_addr algo-1`` (127.0.0.1 without a
                                  sandbox, where ``algo-N`` do not resolve), ``--master_port 7777``
                                  (another port when 7777 is taken here), ``--node_rank`` = the
                                  host's index
``multi_worker_mirrored_strategy``  ``TF_CONFIG`` naming every instance as a worker, as the TF
                                  container sets it; the instances share this machine's loopback,
                                  so each worker gets a port of its own (8890, 8891, ...)
``parameter_server``              one instance: a plain process, as the TF container runs it;
                                  more: refused (parameter servers are not started)
``mpi`` (Horovod)                 one process in all: a plain process (what ``mpirun -np 1`` runs);
                                  more: refused (mpirun over SSH is not started)
``pytorchddp``, ``smdistributed``  refused: they need mpirun with AWS-only ``smddprun`` and
``pytorchxla``                    ``smdistributed`` libraries, or Trainium/XLA devices
================================  ==============================================================

Refused means the job fails at start with a ``FailureReason`` that says why and what to use
instead: a job that would silently train with one process per instance when the user asked
for eight is worse than a clear failure. ``ContainerEntrypoint`` jobs are left alone (the
platform runs exactly that, without the toolkit). Pure functions; stdlib only.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sageport.runtime.entrypoint import EntryPointType, validate_entry_point
from sageport.runtime.errors import ContractError

TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
PYTORCH_DDP = "sagemaker_pytorch_ddp_enabled"
SMDATAPARALLEL = "sagemaker_distributed_dataparallel_enabled"
PYTORCH_XLA = "sagemaker_pytorch_xla_multi_worker_enabled"
MPI = "sagemaker_mpi_enabled"
MPI_PROCESSES_PER_HOST = "sagemaker_mpi_num_of_processes_per_host"
MPI_NUM_PROCESSES = "sagemaker_mpi_num_processes"
PARAMETER_SERVER = "sagemaker_parameter_server_enabled"
MWMS = "sagemaker_multi_worker_mirrored_strategy_enabled"
MP_PARAMETERS = "mp_parameters"
"""The user hyperparameter ``smdistributed`` ``modelparallel`` sets (``SM_HP_MP_PARAMETERS``)."""

TORCH_MASTER_PORT = 7777
"""``sagemaker_training.torch_distributed.MASTER_PORT`` (and the PyTorch container's)."""
MWMS_PORT = 8890
"""The TF container's worker port in ``TF_CONFIG`` for multi_worker_mirrored_strategy."""
LOOPBACK = "127.0.0.1"
LOOPBACK_INTERFACE = "lo"
"""All instances of a job share this machine's loopback: the interface NCCL and Gloo use."""

TORCH_DISTRIBUTED_HINT = (
    "distribution={'torch_distributed': {'enabled': True}} (torchrun on every instance and "
    "GPU, which sageport starts)"
)


class FrameworkLauncher(enum.Enum):
    """What starts the user script on each host."""

    PROCESS = "process"
    TORCHRUN = "torchrun"
    TF_CONFIG = "multi_worker_mirrored_strategy"


def _on(params: Mapping[str, Any], key: str) -> bool:
    # The toolkit tests the decoded value's truth as Python does; so do we.
    return bool(params.get(key, False))


def processes_per_host(framework: Mapping[str, Any], num_gpus: int) -> int:
    """``runner._get_by_runner_type``: the host's GPUs, else 1 (no Neuron devices here);
    ``sagemaker_mpi_num_of_processes_per_host`` wins, for every runner."""
    given = framework.get(MPI_PROCESSES_PER_HOST)
    if given:
        try:
            return max(1, int(given))
        except (TypeError, ValueError):
            raise ContractError(
                f"{MPI_PROCESSES_PER_HOST} must be a whole number, not {given!r}"
            ) from None
    return num_gpus if num_gpus > 0 else 1


def choose(
    framework: Mapping[str, Any],
    user: Mapping[str, Any],
    host_count: int,
    num_gpus: int,
) -> tuple[FrameworkLauncher, list[str]]:
    """The launcher for the framework hyperparameters, with notes for the job log; a
    ``ContractError`` for an option sageport does not start (see the module's table)."""
    mp = user.get(MP_PARAMETERS)
    if mp and mp != "{}":
        raise ContractError(
            "distribution={'smdistributed': {'modelparallel': ...}} needs SageMaker's model "
            "parallel library (smdistributed.modelparallel) and its MPI launcher, which exist "
            f"only in AWS's containers; sageport cannot run it. Use {TORCH_DISTRIBUTED_HINT}, "
            "with FSDP or tensor parallelism from PyTorch itself."
        )
    if _on(framework, SMDATAPARALLEL):
        raise ContractError(
            "distribution={'smdistributed': {'dataparallel': {'enabled': True}}} needs "
            "SageMaker's data parallel library (smdistributed.dataparallel) and smddprun, which "
            f"exist only in AWS's containers; sageport cannot run it. Use {TORCH_DISTRIBUTED_HINT}."
        )
    if _on(framework, PYTORCH_DDP):
        raise ContractError(
            "distribution={'pytorchddp': {'enabled': True}} is started by mpirun with SageMaker's "
            "smddprun, which sageport does not start (running the script once per instance "
            f"would train with fewer processes than asked). Use {TORCH_DISTRIBUTED_HINT} instead."
        )
    if _on(framework, PYTORCH_XLA):
        raise ContractError(
            "distribution={'pytorchxla': {'enabled': True}} needs Trainium (XLA) devices and "
            "torch_xla's launcher, which sageport does not provide."
        )
    if _on(framework, MPI):
        per_host = processes_per_host(framework, num_gpus)
        total = framework.get(MPI_NUM_PROCESSES) or host_count * per_host
        if int(total) > 1:
            raise ContractError(
                f"distribution={{'mpi': ...}} asks for {total} processes ({host_count} "
                f"instance(s) x {per_host} per instance) started by mpirun over SSH between the "
                "instances; sageport does not start MPI jobs, and running the script once per "
                "instance would silently train with fewer processes than asked. Use "
                f"{TORCH_DISTRIBUTED_HINT}, or for TensorFlow "
                "distribution={'multi_worker_mirrored_strategy': {'enabled': True}}."
            )
        return FrameworkLauncher.PROCESS, [
            "sageport: distribution mpi with one process in all: the script runs as one "
            "process, as `mpirun -np 1` would run it"
        ]
    if _on(framework, PARAMETER_SERVER):
        if host_count > 1:
            raise ContractError(
                f"distribution={{'parameter_server': {{'enabled': True}}}} on {host_count} "
                "instances starts TensorFlow parameter servers beside the workers, which sageport "
                "does not do. Use distribution={'multi_worker_mirrored_strategy': "
                "{'enabled': True}} (TF_CONFIG for every instance, which sageport sets)."
            )
        return FrameworkLauncher.PROCESS, [
            "sageport: distribution parameter_server on one instance: no parameter server is "
            "started, as the SageMaker TensorFlow container does"
        ]
    if _on(framework, TORCH_DISTRIBUTED):
        return FrameworkLauncher.TORCHRUN, []
    if _on(framework, MWMS):
        return FrameworkLauncher.TF_CONFIG, []
    return FrameworkLauncher.PROCESS, []


def wanted_ports(launcher: FrameworkLauncher, host_count: int, pytorch: bool) -> list[int]:
    """The ports the containers use (the caller swaps any taken here for free ones): the
    PyTorch master port (every PyTorch container sets MASTER_PORT), one per TF worker."""
    if launcher is FrameworkLauncher.TF_CONFIG:
        return [MWMS_PORT + i for i in range(host_count)]
    if launcher is FrameworkLauncher.TORCHRUN or pytorch:
        return [TORCH_MASTER_PORT]
    return []


def address(host: str, sandbox: bool) -> str:
    """How ``host`` is reached: its name in the sandbox (whose /etc/hosts resolves
    ``algo-N`` to 127.0.0.1), loopback without one (nothing resolves ``algo-N`` there)."""
    return host if sandbox else LOOPBACK


def torch_env(master: str, master_port: int) -> dict[str, str]:
    """What the SageMaker PyTorch container exports for every job (``training.py``:
    ``_set_distributed_environment``, ``_set_nccl_environment``), with the loopback every
    instance here shares as the network interface (for Gloo too). Not ``NCCL_PROTO=simple``,
    which its torchrun runner adds for EFA: there is no EFA here, and it slows NCCL down."""
    return {
        "MASTER_ADDR": master,
        "MASTER_PORT": str(master_port),
        "NCCL_SOCKET_IFNAME": LOOPBACK_INTERFACE,
        "GLOO_SOCKET_IFNAME": LOOPBACK_INTERFACE,
        "NCCL_IB_DISABLE": "1",
        "NCCL_DEBUG": "WARN",
    }


def torchrun_argv(
    python: str,
    entry_point: str | None,
    entry_type: EntryPointType,
    args: Sequence[str],
    *,
    hosts: Sequence[str],
    current_host: str,
    nproc_per_node: int,
    master: str,
    master_port: int,
) -> list[str]:
    """``TorchDistributedRunner._create_command``, with ``python -m torch.distributed.run``
    (torchrun itself) of the job's interpreter. The master options are given for one host
    too: torchrun's own default port (29500) would be shared by every such job here."""
    if entry_type is EntryPointType.PYTHON_PACKAGE:
        raise ContractError(
            "Python packages are not supported for torch_distributed. "
            "Please use a python script as the entry-point"
        )
    if entry_type is not EntryPointType.PYTHON_PROGRAM:
        raise ContractError("Unsupported entry point type for torch_distributed")
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(len(hosts)),
        "--nproc_per_node",
        str(nproc_per_node),
        "--master_addr",
        master,
        "--master_port",
        str(master_port),
        "--node_rank",
        str(list(hosts).index(current_host)),
        validate_entry_point(entry_point),
        *args,
    ]


def tf_config(hosts: Sequence[str], current_host: str, addresses: Sequence[str]) -> str:
    """``TF_CONFIG`` for multi_worker_mirrored_strategy: every host a worker, this one's index;
    ``addresses`` are the workers' ``host:port``, in host order."""
    return json.dumps(
        {
            "cluster": {"worker": list(addresses)},
            "environment": "cloud",
            "task": {"index": list(hosts).index(current_host), "type": "worker"},
        }
    )


_TORCHRUN_FAILED = re.compile(r"torch[./]distributed[./]elastic[./].*\bfailed \(exitcode: ")
"""torchrun's agent logging that a worker failed (``ERROR:torch.distributed.elastic...`` or
``E1201 ... torch/distributed/elastic/multiprocessing/api.py:...] failed (exitcode: 1)``)."""


def launcher_failure_line(line: str) -> bool:
    """Whether ``line`` is torchrun saying a worker failed: the stderr after it is torchrun's
    traceback and summary, not the script's error (which came just before it)."""
    return _TORCHRUN_FAILED.search(line) is not None
