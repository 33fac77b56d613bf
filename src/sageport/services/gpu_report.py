"""A training job's GPU telemetry, as ``GET /_sageport/training-jobs/<name>/gpu`` answers it.

The scheduler's telemetry runner (``scheduler.telemetry``) samples each job's GPUs and keeps
the readings with the job; this module only reads them back, for ``sageport jobs describe``:
per GPU the number of samples, mean and peak utilization and peak memory, and the idle-GPU
warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.domain.runtime import JobRuntime
from sageport.store.resources import Resource


def gpu_report(job: Resource) -> dict[str, Any]:
    """The report of ``job`` (a training job): its GPUs per host, summary, notes, warning."""
    rt = JobRuntime.from_json(job.state)
    telemetry = rt.gpu_telemetry
    return {
        "TrainingJobName": job.name,
        "Gpus": [g.get("gpus", []) for g in rt.grants],
        "Summary": summarize(telemetry),
        "Notes": telemetry.get("notes", []),
        "IdleWarning": rt.gpu_idle_warning,
    }


def summarize(telemetry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per GPU: readings, mean and peak utilization, peak memory (for ``jobs describe``)."""
    by_gpu: dict[int, list[list[Any]]] = {}
    for point in telemetry.get("points") or []:
        by_gpu.setdefault(int(point[1]), []).append(point)
    out = []
    for index, points in sorted(by_gpu.items()):
        utils = [p[2] for p in points if p[2] is not None]
        memory = [p[3] for p in points if p[3] is not None]
        out.append(
            {
                "gpu": index,
                "samples": len(points),
                "mean_utilization_percent": round(sum(utils) / len(utils), 1) if utils else None,
                "max_utilization_percent": max(utils) if utils else None,
                "max_memory_used_mib": max(memory) if memory else None,
            }
        )
    return out
