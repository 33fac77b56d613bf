"""Preparing one host of a training job: its folder, code, data and the command to run.

This is where the runtime contract (``sageport.runtime``, pure) meets real files and the
object store: the ``/opt/ml`` tree and config files are written, the submitted source
directory unpacked into ``code/``, channels staged (hard links when possible), checkpoints
restored, and a :class:`LaunchSpec` built for the backend.
"""

from __future__ import annotations

import posixpath
import shlex
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sageport.backends.base import DEFAULT_MAX_LOG_BYTES, LaunchSpec
from sageport.backends.local import read_only_holds
from sageport.runtime import archives, hyperparameters
from sageport.runtime.config_files import all_hosts, config_files, write_config_files
from sageport.runtime.entrypoint import plan_launch, program_from_hyperparameters
from sageport.runtime.environment import training_env
from sageport.runtime.images import RuntimeSpec, resolve_image, with_image_python
from sageport.runtime.isolation import check_no_install, network_isolated
from sageport.runtime.paths import HostPaths, command_channel_files, make_tree, rewrite_opt_ml
from sageport.runtime.preflight import frameworks_for, preflight_argv
from sageport.runtime.process_env import ServerAccess, base_env, gpu_env
from sageport.scheduler.allocator import HostGrant, grant_notes
from sageport.scheduler.distributed_commands import check_distribution, host_launch
from sageport.scheduler.ports import PortBook
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import (
    TransferError,
    download_tree,
    fetch_object,
    parse_s3_uri,
    stage_channel,
)

SANDBOX_OVERLAY = "/tmp/sageport-overlay"
INSTALL_BUBBLEWRAP = (
    'Install bubblewrap (apt-get install -y bubblewrap) and remove sandbox = "off" for a '
    "real /opt/ml and a sandbox."
)
UNSANDBOXED = (
    "This job runs unsandboxed with the server's privileges: it can read the data folder "
    "(keys, database, every job's files) and signal the server."
)


def no_sandbox_notes(why: str, host_dir: Path) -> tuple[str, str]:
    """What a training job without a sandbox gets instead of /opt/ml: (log line, status)."""
    log = (
        f"sageport: no sandbox ({why}); {UNSANDBOXED} SAGEMAKER_BASE_DIR and every SM_* path point at the "
        f"host folder {host_dir}, and /opt/ml paths in ContainerEntrypoint, "
        "ContainerArguments and Environment are rewritten to it; an /opt/ml path hard-coded in "
        f"a script is not. {INSTALL_BUBBLEWRAP}"
    )
    return log, f"no sandbox: {why}; scripts get SAGEMAKER_BASE_DIR"


READ_ONLY_NOTE = (
    "sageport: input files are read-only hard links to the stored S3 objects "
    "(copy a file before changing it)"
)


@dataclass(frozen=True)
class JobContext:
    """What every host of one job shares."""

    name: str
    arn: str
    spec: Mapping[str, Any]
    job_dir: Path
    sandbox: bool
    access: ServerAccess
    """How the job's processes reach this server (``runtime.process_env``)."""
    images: Mapping[str, str]
    stop_grace_s: float
    server_env: Mapping[str, str]
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    sandbox_note: str = ""
    """Why there is no sandbox (when ``sandbox`` is false), for messages that need one."""
    ports: PortBook | None = None
    """Where distributed launchers get their ports (None: the preferred ones, unchecked)."""


def may_link(job: JobContext) -> bool:
    """Whether channel files may be hard links to the stored objects (made read-only): only
    where the job's process cannot write through a read-only file. Else they are copies."""
    return read_only_holds(job.sandbox)


def host_dirs(job: JobContext, host: str) -> tuple[Path, Path]:
    """(host folder shown as /opt/ml, launcher run folder)."""
    return job.job_dir / host, job.job_dir / f"{host}.run"


async def stage_host(job: JobContext, host: str, store: ObjectStore) -> tuple[int, int]:
    """Write the tree, code, channels and checkpoints of ``host``; returns (files, bytes)."""
    check_distribution(job.spec)  # a distribution= sageport does not start fails first
    host_dir, run_dir = host_dirs(job, host)
    paths = HostPaths(host_dir)
    channels = [c["ChannelName"] for c in job.spec.get("InputDataConfig") or []]
    make_tree(paths, channels)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config_files(paths, config_files(job.spec, host))
    await _unpack_code(job, paths, store)
    hosts = all_hosts(job.spec)
    algo = job.spec.get("AlgorithmSpecification") or {}
    run_by_command = command_channel_files(
        [*(algo.get("ContainerEntrypoint") or []), *(algo.get("ContainerArguments") or [])]
    )
    files = total = 0
    for channel in job.spec.get("InputDataConfig") or []:
        source = channel["DataSource"]["S3DataSource"]
        n, size = await stage_channel(
            store,
            source,
            paths.channel_dir(channel["ChannelName"]),
            shard=(hosts.index(host), len(hosts)),
            link=may_link(job),
            private=run_by_command.get(channel["ChannelName"], frozenset()),
        )
        files += n
        total += size
    checkpoint = job.spec.get("CheckpointConfig")
    if checkpoint and checkpoint.get("S3Uri"):
        await download_tree(
            store, parse_s3_uri(checkpoint["S3Uri"]), checkpoint_dir(paths, checkpoint)
        )
    return files, total


def checkpoint_dir(paths: HostPaths, checkpoint: Mapping[str, Any]) -> Path:
    """Where ``CheckpointConfig.LocalPath`` lives in the host folder (restored before the
    run, uploaded after it); a path outside /opt/ml means the default ``checkpoints/``."""
    local = checkpoint.get("LocalPath")
    # normalised first (create refuses a `..` that leaves /opt/ml; this is the second check)
    normal = posixpath.normpath(local) if isinstance(local, str) and "\0" not in local else ""
    if normal.startswith("/opt/ml/") and normal != "/opt/ml/checkpoints":
        return paths.root / normal[len("/opt/ml/") :]
    return paths.checkpoints_dir


async def _unpack_code(job: JobContext, paths: HostPaths, store: ObjectStore) -> None:
    decoded = hyperparameters.decode(job.spec.get("HyperParameters") or {})
    env = job.spec.get("Environment") or {}
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY") or decoded.get("sagemaker_submit_directory")
    if not submit or not str(submit).startswith("s3://"):
        return
    uri = parse_s3_uri(str(submit))
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "sourcedir.tar.gz"
        try:
            await fetch_object(store, uri.bucket, uri.key, archive, link=False)
        except Exception as exc:
            raise TransferError(f"Could not download the source directory {submit}: {exc}") from exc
        try:
            archives.extract(archive, paths.code_dir)
        except (tarfile.TarError, OSError) as exc:
            raise TransferError(
                f"The source directory {submit} is not a readable tar.gz: {exc}"
            ) from exc


def launch_spec(job: JobContext, host: str, grant: HostGrant) -> tuple[LaunchSpec, list[str]]:
    """The backend request for ``host``, plus notes for the job log."""
    host_dir, run_dir = host_dirs(job, host)
    seen = HostPaths.in_sandbox() if job.sandbox else HostPaths(host_dir)
    algo = job.spec.get("AlgorithmSpecification") or {}
    runtime = resolve_image(algo.get("TrainingImage", ""), job.images)
    notes = list(grant_notes(grant))  # CPU fallback, CPU pinning, lost GPUs
    env = training_env(
        job.spec,
        job_name=job.name,
        job_arn=job.arn,
        host=host,
        paths=seen,
        num_gpus=len(grant.gpus),
        num_cpus=max(1, int(grant.vcpus)),
        region=job.access.region,
        s3_endpoint_url=job.access.endpoint_url,
        base_env=base_env(job.server_env, job.access, sandbox=job.sandbox),
        forced_env=gpu_env(grant.gpus),
    )
    decoded = hyperparameters.decode(job.spec.get("HyperParameters") or {})
    program = program_from_hyperparameters(decoded, env)
    cmd_args = hyperparameters.to_cmd_args(hyperparameters.split(decoded).user)
    plan = plan_launch(
        code_dir=seen.code_dir,
        program=program,
        cmd_args=cmd_args,
        python=runtime.python,
        container_entrypoint=algo.get("ContainerEntrypoint"),
        container_arguments=algo.get("ContainerArguments"),
        listing_dir=HostPaths(host_dir).code_dir,
    )
    # distribution=: torchrun, TF_CONFIG, MASTER_ADDR/PORT (the job's Environment wins)
    launch = host_launch(
        job.spec,
        job_name=job.name,
        host=host,
        num_gpus=len(grant.gpus),
        runtime=runtime,
        sandbox=job.sandbox,
        listing_dir=HostPaths(host_dir).code_dir,
        program=program,
        cmd_args=cmd_args,
        ports=job.ports,
    )
    own = job.spec.get("Environment") or {}
    env.update({k: v for k, v in launch.env.items() if k not in own})
    notes.extend(launch.notes)
    argv = list(launch.argv or plan.argv)
    if algo.get("ContainerEntrypoint"):
        argv = with_image_python(argv, runtime)  # "python3" means the image's Python
    if not job.sandbox:
        # Nothing is mounted at /opt/ml: paths the request names there mean the host folder.
        argv = [rewrite_opt_ml(a, host_dir) for a in argv]
        env = {k: rewrite_opt_ml(v, host_dir) for k, v in env.items()}
    if job.spec.get("InputDataConfig") and may_link(job):
        notes.append(READ_ONLY_NOTE)
    if plan.make_executable is not None:
        real = HostPaths(host_dir).code_dir / plan.make_executable.relative_to(seen.code_dir)
        if real.exists():
            real.chmod(real.stat().st_mode | 0o111)
    check_no_install(job.spec, bool(plan.install))  # no network: pip would only time out
    if plan.install:
        # Requirements go into an overlay folder of this host, never the server's environment.
        overlay = SANDBOX_OVERLAY if job.sandbox else str(run_dir / "overlay")
        env["PYTHONPATH"] = ":".join(p for p in (overlay, env.get("PYTHONPATH", "")) if p)
        steps = " && ".join(
            # no pip self-update check: it would reach out to PyPI from every job
            "PIP_DISABLE_PIP_VERSION_CHECK=1 "
            + shlex.join([*cmd, "--target", overlay, "--no-warn-script-location"])
            for cmd in plan.install
        )
        argv = ["/bin/sh", "-c", f'{steps} && exec "$@"', "sh", *argv]
        notes.append(f"Installing requirements into {overlay}")
    spec = host_launch_spec(
        job, host, grant, runtime, argv, env, cwd=str(plan.cwd), hosts=all_hosts(job.spec)
    )
    return spec, notes


def host_launch_spec(
    job: JobContext,
    host: str,
    grant: HostGrant,
    runtime: RuntimeSpec,
    argv: list[str],
    env: dict[str, str],
    *,
    cwd: str,
    hosts: list[str],
    extra_binds: list[tuple[str, str]] | None = None,
) -> LaunchSpec:
    """The backend request for one host of a job (training or processing) once its command
    and environment are final: GPU checks run first when it holds GPUs, every host name
    resolves to this machine, and it is pinned to the grant's CPUs."""
    host_dir, run_dir = host_dirs(job, host)
    if grant.gpus:
        # GPU checks into the job log first, for the frameworks the image is about
        argv = preflight_argv(runtime.python, argv, frameworks_for(runtime.framework))
    return LaunchSpec(
        host_dir=host_dir,
        argv=argv,
        env=env,
        cwd=cwd,
        run_dir=run_dir,
        sandbox=job.sandbox,
        hostnames={h: "127.0.0.1" for h in hosts},
        extra_binds=list(extra_binds or []),
        stop_grace_s=job.stop_grace_s,
        max_log_bytes=job.max_log_bytes,
        cpus=list(grant.cpus),
        network_isolated=network_isolated(job.spec),
    )
