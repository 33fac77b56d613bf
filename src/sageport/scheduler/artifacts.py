"""What a finished training job leaves: its artifacts and its failure reason.

``model/`` becomes ``{S3OutputPath}/{job}/output/model.tar.gz`` and ``output/data/``
``output.tar.gz``, each packed to a temporary file and stored in one atomic put; checkpoints
are synced to ``CheckpointConfig.S3Uri``. The failure reason follows SageMaker: the first
1024 characters of ``output/failure`` when the code wrote one, else what the exit says; an
exit on ``ModuleNotFoundError`` also names the interpreter the image mapped to and how to
change it (``runtime.interpreters``), since here an image is only a choice of Python.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from sageport.backends.base import ExitInfo
from sageport.domain.runtime import StoredOutputs
from sageport.runtime.errors import ContractError
from sageport.runtime.images import RuntimeSpec, resolve_image
from sageport.runtime.interpreters import missing_module, missing_module_note
from sageport.runtime.paths import HostPaths
from sageport.scheduler.hosts import JobContext, checkpoint_dir
from sageport.storage import folders
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import parse_s3_uri, upload_file, upload_tree

FAILURE_LIMIT = 1024


def _pack(base: Path, sources: Sequence[Path], target: Path) -> None:
    """A tar.gz of what lies under ``sources`` (first source wins on a name clash).

    Read through :mod:`sageport.storage.folders`, so no file is opened through a symlink the
    job left: a link is stored as a link (what ``tar`` does), never the file it points at.
    """
    seen: set[str] = set()
    with tarfile.open(target, "w:gz") as tar:
        for root in sources:
            for entry in folders.walk(base, root):
                if entry.rel in seen or entry.rel == ".":
                    continue
                seen.add(entry.rel)
                if entry.kind == "file":
                    with os.fdopen(os.dup(entry.fd), "rb") as fh:
                        info = tar.gettarinfo(arcname=entry.rel, fileobj=fh)
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        tar.addfile(info, fh)
                    continue
                info = tarfile.TarInfo(entry.rel)
                if entry.kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                else:
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                info.mtime = int(time.time())
                tar.addfile(info)


def _has_files(base: Path, roots: Iterable[Path]) -> bool:
    return any(folders.has_files(base, r) for r in roots)


async def store_outputs(
    ctx: JobContext, store: ObjectStore, hosts: Sequence[Path]
) -> StoredOutputs:
    """Pack and store model, output data and checkpoints; returns what Describe shows."""
    out = StoredOutputs()
    output = ctx.spec.get("OutputDataConfig") or {}
    base = output.get("S3OutputPath")
    paths = [HostPaths(h) for h in hosts]
    if base:
        root = parse_s3_uri(base).join(ctx.name, "output")
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "model.tar.gz"
            await asyncio.to_thread(_pack, ctx.job_dir, [p.model_dir for p in paths], model)
            await upload_file(store, model, root.join("model.tar.gz"))
            out = replace(out, model_artifacts=str(root.join("model.tar.gz")))
            data_dirs = [p.output_data_dir for p in paths]
            if _has_files(ctx.job_dir, data_dirs):
                data = Path(tmp) / "output.tar.gz"
                await asyncio.to_thread(_pack, ctx.job_dir, data_dirs, data)
                await upload_file(store, data, root.join("output.tar.gz"))
                out = replace(out, output_artifacts=str(root.join("output.tar.gz")))
    checkpoint = ctx.spec.get("CheckpointConfig")
    if checkpoint and checkpoint.get("S3Uri"):
        skipped: list[str] = []
        await upload_tree(
            store,
            checkpoint_dir(paths[0], checkpoint),
            parse_s3_uri(checkpoint["S3Uri"]),
            base=ctx.job_dir,
            skipped=skipped,
        )
        if skipped:
            out = replace(out, log_lines=skipped)
    return out


def failure_reason(
    ctx: JobContext, exits: Mapping[str, ExitInfo], tails: Mapping[str, Sequence[str]]
) -> str | None:
    """Why the job failed, or ``None`` if every host exited 0 (``tails``: each host's stderr)."""
    for host, info in exits.items():
        if info.returncode == 0:
            continue
        # never through a link: the job could point output/failure at any host file
        written = folders.read_inside(
            ctx.job_dir, HostPaths(ctx.job_dir / host).failure_file, 4 * FAILURE_LIMIT
        )
        text = (written or "").strip()
        if text:
            return text[:FAILURE_LIMIT]
        if info.returncode is None:
            reason = f"InternalServerError: the process on {host} ended unobserved: {info.reason}"
            return reason[:FAILURE_LIMIT]
        if info.returncode == 137 or info.signal == 9:
            return (
                f"OutOfMemory: Please use an instance type with more memory, or reduce the size of "
                f"job data processed on an instance. (the process on {host} was killed by "
                "SIGKILL, exit 137)"
            )[:FAILURE_LIMIT]
        tail = list(tails.get(host, []))[-10:]
        module = missing_module(tail)
        runtime = _job_runtime(ctx) if module else None
        head = f"AlgorithmError: ExecuteUserScriptError:\nExitCode {info.returncode}\n"
        if module and runtime:
            note = missing_module_note(module, runtime)
            # the note must survive the limit: the traceback gives up its first lines instead
            room = FAILURE_LIMIT - len(head) - len(note) - len('ErrorMessage ""\n')
            return (f'{head}ErrorMessage "{_last_lines(tail, room)}"\n{note}')[:FAILURE_LIMIT]
        lines = "\n".join(tail)
        return f'{head}ErrorMessage "{lines}"'[:FAILURE_LIMIT]
    return None


def _last_lines(lines: Sequence[str], room: int) -> str:
    """The last of ``lines`` that fit in ``room`` characters, joined (at least the last one,
    cut from the front)."""
    kept: list[str] = []
    for line in reversed(lines):
        if kept and sum(len(k) + 1 for k in kept) + len(line) > room:
            break
        kept.append(line)
    text = "\n".join(reversed(kept))
    return text[len(text) - max(room, 0) :]


def _job_runtime(ctx: JobContext) -> RuntimeSpec | None:
    """The runtime the job's image maps to (training's ``TrainingImage``, processing's
    ``ImageUri``), as its hosts were launched with; None if it no longer resolves."""
    image = (ctx.spec.get("AlgorithmSpecification") or {}).get("TrainingImage") or (
        ctx.spec.get("AppSpecification") or {}
    ).get("ImageUri")
    if not image:
        return None
    try:
        return resolve_image(str(image), ctx.images)
    except ContractError:
        return None
