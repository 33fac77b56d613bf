"""What a finished training job leaves: its artifacts and its failure reason.

``model/`` becomes ``{S3OutputPath}/{job}/output/model.tar.gz`` and ``output/data/``
``output.tar.gz``, each packed to a temporary file and stored in one atomic put; checkpoints
are synced to ``CheckpointConfig.S3Uri``. The failure reason follows SageMaker: the first
1024 characters of ``output/failure`` when the code wrote one, else what the exit says.
"""

from __future__ import annotations

import asyncio
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.runtime.paths import HostPaths
from sageport.scheduler.hosts import JobContext, checkpoint_dir
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import parse_s3_uri, upload_file, upload_tree

FAILURE_LIMIT = 1024


def _pack(sources: Sequence[Path], target: Path) -> None:
    """A tar.gz of the files under ``sources`` (first source wins on a name clash)."""
    seen: set[str] = set()
    with tarfile.open(target, "w:gz") as tar:
        for root in sources:
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if rel in seen or not (path.is_file() or path.is_dir()):
                    continue
                seen.add(rel)
                tar.add(path, arcname=rel, recursive=False)


def _has_files(roots: Iterable[Path]) -> bool:
    return any(p.is_file() for r in roots if r.is_dir() for p in r.rglob("*"))


async def store_outputs(
    ctx: JobContext, store: ObjectStore, hosts: Sequence[Path]
) -> dict[str, Any]:
    """Pack and store model, output data and checkpoints; returns what Describe shows."""
    out: dict[str, Any] = {}
    output = ctx.spec.get("OutputDataConfig") or {}
    base = output.get("S3OutputPath")
    paths = [HostPaths(h) for h in hosts]
    if base:
        root = parse_s3_uri(base).join(ctx.name, "output")
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "model.tar.gz"
            await asyncio.to_thread(_pack, [p.model_dir for p in paths], model)
            await upload_file(store, model, root.join("model.tar.gz"))
            out["model_artifacts"] = str(root.join("model.tar.gz"))
            data_dirs = [p.output_data_dir for p in paths]
            if _has_files(data_dirs):
                data = Path(tmp) / "output.tar.gz"
                await asyncio.to_thread(_pack, data_dirs, data)
                await upload_file(store, data, root.join("output.tar.gz"))
                out["output_artifacts"] = str(root.join("output.tar.gz"))
    checkpoint = ctx.spec.get("CheckpointConfig")
    if checkpoint and checkpoint.get("S3Uri"):
        await upload_tree(
            store, checkpoint_dir(paths[0], checkpoint), parse_s3_uri(checkpoint["S3Uri"])
        )
    return out


def failure_reason(
    ctx: JobContext, exits: Mapping[str, ExitInfo], tails: Mapping[str, Sequence[str]]
) -> str | None:
    """Why the job failed, or ``None`` if every host exited 0 (``tails``: each host's stderr)."""
    for host, info in exits.items():
        if info.returncode == 0:
            continue
        written = HostPaths(ctx.job_dir / host).failure_file
        if written.is_file():
            text = written.read_text(errors="replace").strip()
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
        lines = "\n".join(list(tails.get(host, []))[-10:])
        return (
            f"AlgorithmError: ExecuteUserScriptError:\nExitCode {info.returncode}\n"
            f'ErrorMessage "{lines}"'
        )[:FAILURE_LIMIT]
    return None
