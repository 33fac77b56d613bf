"""Preparing and finishing one host of a processing job.

The processing contract (reference §1.9): inputs are staged at their ``LocalPath`` before
the command starts, ``/opt/ml/config/processingjobconfig.json`` echoes the request and
``resourceconfig.json`` names the hosts, the command is ``ContainerEntrypoint`` +
``ContainerArguments``, and each output's ``LocalPath`` is uploaded to its ``S3Uri`` at the
end (or as files appear, for ``Continuous``).

Paths under ``/opt/ml`` live in the host folder, which the sandbox binds at ``/opt/ml``; any
other absolute LocalPath gets a folder of its own bound at that path. Without a sandbox,
``/opt/ml/...`` arguments are rewritten to the host folder, and a LocalPath outside
``/opt/ml`` cannot be honoured, so the job fails at start and says how to enable isolation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sageport.backends.base import LaunchSpec
from sageport.runtime.errors import ContractError
from sageport.runtime.images import resolve_image, with_image_python
from sageport.runtime.paths import PathOutsideBase, confine, rewrite_opt_ml
from sageport.runtime.process_env import base_env, gpu_env
from sageport.scheduler.allocator import HostGrant, grant_notes
from sageport.scheduler.hosts import (
    INSTALL_BUBBLEWRAP,
    SANDBOX_OVERLAY,
    UNSANDBOXED,
    JobContext,
    host_dirs,
    host_launch_spec,
    may_link,
)
from sageport.storage import folders
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import TransferError, parse_s3_uri, stage_channel, upload_fd

OPT_ML = "/opt/ml"


def no_sandbox_notes(why: str, host_dir: Path) -> tuple[str, str]:
    """What a processing job without a sandbox gets instead of /opt/ml: (log line, status).
    Processing containers have no SAGEMAKER_BASE_DIR contract: only the command is rewritten."""
    log = (
        f"sageport: no sandbox ({why}); {UNSANDBOXED} LocalPaths under /opt/ml live in the host folder "
        f"{host_dir}, and /opt/ml paths in ContainerEntrypoint, ContainerArguments and "
        "Environment are rewritten to it; an /opt/ml path hard-coded in the script is not. "
        f"{INSTALL_BUBBLEWRAP}"
    )
    status = (
        f"no sandbox: {why}; /opt/ml paths in the command and Environment are rewritten to "
        "the host folder, those inside the script are not"
    )
    return log, status


def processing_host_names(spec: Mapping[str, Any]) -> list[str]:
    count = int(
        ((spec.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceCount", 1)
    )
    return [f"algo-{i}" for i in range(1, count + 1)]


def local_dir(job: JobContext, host: str, local_path: str) -> Path:
    """Where on this machine a job's ``local_path`` lives for ``host``.

    Create refused paths that leave their base; this normalises again (a spec stored before
    that check must not move a server write elsewhere; :func:`_staging_dir` adds symlinks).
    """
    host_dir, _ = host_dirs(job, host)
    try:
        local_path = confine(local_path, "/", "LocalPath")
    except PathOutsideBase as exc:
        raise TransferError(str(exc)) from None
    if local_path == OPT_ML or local_path.startswith(OPT_ML + "/"):
        return host_dir / local_path[len(OPT_ML) :].lstrip("/")
    if not job.sandbox:
        raise TransferError(
            f"LocalPath {local_path} is outside /opt/ml and this machine has no sandbox to bind it "
            "there. Install bubblewrap (apt-get install -y bubblewrap) so each job gets its own "
            "mount namespace, or use a LocalPath under /opt/ml/processing/."
        )
    digest = hashlib.sha256(local_path.encode()).hexdigest()[:12]
    return host_dir.parent / f"{host}.binds" / digest


def _outputs(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        o["S3Output"]
        for o in (spec.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        if o.get("S3Output")
    ]


#: where ``FrameworkProcessor`` stages the ``runproc.sh`` it generates (input ``entrypoint``)
SDK_RUNPROC = "/opt/ml/processing/input/entrypoint/runproc.sh"


def check_runnable(job: JobContext) -> None:
    """Refuse, before anything is staged, a command that cannot work without the sandbox.

    The SDK's ``FrameworkProcessor`` runs ``/bin/bash .../runproc.sh``, a script that starts
    with ``cd /opt/ml/processing/input/code/``; the path exists only inside the sandbox, and
    the script is the user's input, not ours to rewrite. Without a sandbox it would fail
    with a confusing ``cd`` error (and the user script after it), so it fails here, saying why.
    """
    if job.sandbox:
        return
    app = job.spec.get("AppSpecification") or {}
    if SDK_RUNPROC in (app.get("ContainerEntrypoint") or []):
        why = f" ({job.sandbox_note})" if job.sandbox_note else ""
        raise ContractError(
            "FrameworkProcessor jobs need the bubblewrap sandbox, which this server runs "
            f"without{why}: the SDK's runproc.sh starts with `cd /opt/ml/processing/input/code/`, "
            "a path that exists only inside the sandbox. Install bubblewrap "
            "(sudo apt-get install -y bubblewrap) and restart sageport serve with sandbox = "
            '"auto" (the default), or use ScriptProcessor with the input and output folders '
            "passed as arguments."
        )


async def stage_processing_host(job: JobContext, host: str, store: ObjectStore) -> tuple[int, int]:
    """Config files, inputs at their LocalPaths, empty output folders."""
    check_runnable(job)
    host_dir, run_dir = host_dirs(job, host)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = host_dir / "config"
    config.mkdir(parents=True, exist_ok=True)
    hosts = processing_host_names(job.spec)
    (config / "processingjobconfig.json").write_text(
        json.dumps(dict(job.spec), default=str, indent=2)
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
    )
    files = total = 0
    inputs = [i["S3Input"] for i in job.spec.get("ProcessingInputs") or [] if i.get("S3Input")]
    # An input may lie inside another (the SDK's code input at <input>/code): the outer one
    # is staged first and the inner one into its sub-folder; staging only adds files.
    for s3 in sorted(inputs, key=lambda s3: _depth(s3["LocalPath"])):
        source = {
            "S3Uri": s3["S3Uri"],
            "S3DataType": s3.get("S3DataType", "S3Prefix"),
            "S3DataDistributionType": s3.get("S3DataDistributionType", "FullyReplicated"),
        }
        n, b = await stage_channel(
            store,
            source,
            _staging_dir(job, host, s3["LocalPath"]),
            shard=(hosts.index(host), len(hosts)),
            link=may_link(job),
        )
        files, total = files + n, total + b
    for out in _outputs(job.spec):
        _staging_dir(job, host, out["LocalPath"]).mkdir(parents=True, exist_ok=True)
    return files, total


def _depth(local_path: str) -> int:
    """How many folders deep ``local_path`` is: outer folders sort before inner ones."""
    return len([part for part in local_path.split("/") if part and part != "."])


def _staging_dir(job: JobContext, host: str, local_path: str) -> Path:
    """:func:`local_dir`, checked where the server writes: it must resolve into the job
    folder (a symlink left there by an earlier run of the job must not redirect the write)."""
    target = local_dir(job, host, local_path)
    if not target.resolve().is_relative_to(job.job_dir.resolve()):
        raise TransferError(f"LocalPath {local_path} leads outside the job's folder.")
    return target


def processing_launch_spec(
    job: JobContext, host: str, grant: HostGrant
) -> tuple[LaunchSpec, list[str]]:
    host_dir, run_dir = host_dirs(job, host)
    app = job.spec.get("AppSpecification") or {}
    runtime = resolve_image(app.get("ImageUri", ""), job.images)
    argv = [*(app.get("ContainerEntrypoint") or []), *(app.get("ContainerArguments") or [])]
    if not argv:
        raise TransferError(
            "AppSpecification needs a ContainerEntrypoint: without a container image there is no default command."
        )
    argv = with_image_python(argv, runtime)  # "python3" means the image's Python
    overlay = SANDBOX_OVERLAY if job.sandbox else str(run_dir / "overlay")
    env = base_env(job.server_env, job.access, sandbox=job.sandbox)
    env.update(
        {
            # `pip install` inside the job lands in this host's overlay, never the server's env.
            "PIP_TARGET": overlay,
            "PYTHONPATH": overlay,
            # Shell entrypoints (FrameworkProcessor's runproc.sh) call `python` and `pip` by
            # name: those must be the mapped runtime's, as they would be in the image.
            "PATH": os.pathsep.join(
                p for p in (str(Path(runtime.python).parent), env.get("PATH", "")) if p
            ),
        }
    )
    env.update(job.spec.get("Environment") or {})
    env.update(gpu_env(grant.gpus))
    binds: list[tuple[str, str]] = []
    if job.sandbox:
        cwd = OPT_ML
        # outer folders first: an inner input's bind is mounted over its outer one's folder
        for path in sorted(_local_paths(job.spec), key=_depth):
            if not (path == OPT_ML or path.startswith(OPT_ML + "/")):
                binds.append((str(local_dir(job, host, path)), path))
    else:
        cwd = str(host_dir)
        argv = [rewrite_opt_ml(a, host_dir) for a in argv]
        env = {k: rewrite_opt_ml(v, host_dir) for k, v in env.items()}
    hosts = processing_host_names(job.spec)
    spec = host_launch_spec(
        job, host, grant, runtime, argv, env, cwd=cwd, hosts=hosts, extra_binds=binds
    )
    return spec, grant_notes(grant)  # CPU fallback, CPU pinning, lost GPUs


def _local_paths(spec: Mapping[str, Any]) -> list[str]:
    paths = [
        i["S3Input"]["LocalPath"] for i in spec.get("ProcessingInputs") or [] if i.get("S3Input")
    ]
    return paths + [o["LocalPath"] for o in _outputs(spec)]


async def upload_outputs(
    job: JobContext,
    store: ObjectStore,
    hosts: list[str],
    seen: dict[str, list[float]] | None = None,
    skipped: list[str] | None = None,
) -> int:
    """Upload every output folder to its S3Uri; with ``seen`` (Continuous mode), only files
    that are new or changed since the last call. An output folder the script never filled
    uploads nothing, as in SageMaker."""
    count = 0
    for out in _outputs(job.spec):
        if seen is not None and out.get("S3UploadMode") != "Continuous":
            continue
        target = parse_s3_uri(out["S3Uri"])
        for host in hosts:
            root = local_dir(job, host, out["LocalPath"])
            label = f"{host}:{out['LocalPath'].rstrip('/')}"
            # never through a link the job left (see storage.folders): links are skipped
            for entry in folders.walk(job.job_dir, root):
                if entry.kind == "link" and skipped is not None:
                    skipped.append(folders.link_note(label, entry))
                if entry.kind != "file":
                    continue
                info = os.fstat(entry.fd)
                key = f"{out['S3Uri']}|{host}|{entry.rel}"
                if seen is not None:
                    if seen.get(key) == [info.st_mtime, info.st_size]:
                        continue
                    seen[key] = [info.st_mtime, info.st_size]
                await upload_fd(store, entry.fd, target.join(entry.rel))
                count += 1
    return count
