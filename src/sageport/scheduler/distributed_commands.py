"""The launcher of a training host: the SDK's ``distribution=`` applied to its command.

``runtime.distribution`` says, from the request alone, which launcher a framework container
would start and what it looks like; here it meets this machine: the host's GPUs, whether
``algo-N`` resolve (the sandbox), and ports no other job holds (:class:`PortBook`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sageport.runtime import distribution as D
from sageport.runtime import hyperparameters
from sageport.runtime.config_files import all_hosts
from sageport.runtime.entrypoint import entry_point_type, validate_entry_point
from sageport.runtime.images import RuntimeSpec
from sageport.scheduler.ports import PortBook

#: frameworks whose SageMaker container exports MASTER_ADDR/MASTER_PORT for every job
PYTORCH_FRAMEWORKS = ("pytorch", "huggingface-pytorch")


@dataclass(frozen=True)
class HostLaunch:
    """What the launcher changes for one host: the command (None: the plain one), the
    variables it adds (the job's own ``Environment`` wins over them), notes for the log."""

    argv: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _custom_command(spec: Mapping[str, Any]) -> bool:
    algo = spec.get("AlgorithmSpecification") or {}
    return bool(algo.get("ContainerEntrypoint") or algo.get("ContainerArguments"))


def check_distribution(spec: Mapping[str, Any]) -> None:
    """Refuse, before anything is staged, a ``distribution=`` sageport does not start
    (``ContractError``). The host's GPUs are not known yet: :func:`host_launch` checks again."""
    if _custom_command(spec):
        return
    split = hyperparameters.split(hyperparameters.decode(spec.get("HyperParameters") or {}))
    D.choose(split.framework, split.user, len(all_hosts(spec)), num_gpus=0)


def host_launch(
    spec: Mapping[str, Any],
    *,
    job_name: str,
    host: str,
    num_gpus: int,
    runtime: RuntimeSpec,
    sandbox: bool,
    listing_dir: Path,
    program: str | None,
    cmd_args: Sequence[str],
    ports: PortBook | None,
) -> HostLaunch:
    """The launcher's command and variables for ``host`` of a script-mode job.

    ``listing_dir`` is the code folder as this process sees it (where ``setup.py`` is looked
    for); ``program`` the entry point and ``cmd_args`` the user hyperparameters' command line.
    torchrun runs in the code folder, like the plain command.
    """
    if _custom_command(spec):
        return HostLaunch()  # the platform runs ContainerEntrypoint as given: no toolkit
    split = hyperparameters.split(hyperparameters.decode(spec.get("HyperParameters") or {}))
    hosts = all_hosts(spec)
    launcher, notes = D.choose(split.framework, split.user, len(hosts), num_gpus)
    pytorch = runtime.framework in PYTORCH_FRAMEWORKS
    wanted = D.wanted_ports(launcher, len(hosts), pytorch)
    got = (ports.reserve(job_name, wanted) if ports else list(wanted)) if wanted else []
    if got and got != wanted:
        notes.append(
            f"sageport: port(s) {', '.join(map(str, wanted))} taken on this machine; "
            f"this job uses {', '.join(map(str, got))}"
        )
    if len(hosts) > 1 and not sandbox and launcher is not D.FrameworkLauncher.PROCESS:
        notes.append(
            "sageport: without a sandbox the instances' names (algo-N) do not resolve; "
            f"they are reached at {D.LOOPBACK}"
        )
    env: dict[str, str] = {}
    if launcher is D.FrameworkLauncher.TORCHRUN or (pytorch and got):
        env.update(D.torch_env(D.address(hosts[0], sandbox), got[0]))
    if launcher is D.FrameworkLauncher.TF_CONFIG:
        workers = [f"{D.address(h, sandbox)}:{p}" for h, p in zip(hosts, got, strict=True)]
        env["TF_CONFIG"] = D.tf_config(hosts, host, workers)
        notes.append(
            f"sageport: distribution multi_worker_mirrored_strategy: TF_CONFIG={env['TF_CONFIG']}"
        )
    argv: list[str] | None = None
    if launcher is D.FrameworkLauncher.TORCHRUN:
        name = validate_entry_point(program)
        argv = D.torchrun_argv(
            runtime.python,
            name,
            entry_point_type(listing_dir, name),
            cmd_args,
            hosts=hosts,
            current_host=host,
            nproc_per_node=D.processes_per_host(split.framework, num_gpus),
            master=D.address(hosts[0], sandbox),
            master_port=got[0],
        )
        notes.append("sageport: distribution torch_distributed: torchrun " + shlex.join(argv[3:]))
    return HostLaunch(argv=argv, env=env, notes=notes)
