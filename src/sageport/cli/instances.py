"""``sageport instances``: which ``ml.*`` types fit a GPU requirement, cheapest first.

The catalog answers; this module only turns the answer into a table (``rich``, imported when
printing) or a JSON list for scripts, and turns bad input (an unknown instance type or GPU
model) into a did-you-mean on stderr with exit status 2. No match is exit status 1 in both
forms (the JSON form still prints ``[]``).

Neuron (Inferentia, Trainium) and Gaudi types are listed with what sageport does with them:
it cannot provide those accelerators, so jobs and endpoints on them are refused unless
``cpu_fallback`` is on, which runs them on the CPU.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

import typer

from sageport.catalog import Catalog, InstanceType, UnknownInstanceType, load_catalog

EXIT_NO_MATCH = 1
EXIT_BAD_INPUT = 2


def instances_command(
    gpus: int | None = None,
    gpu_model: str | None = None,
    min_gpu_memory: float | None = None,
    as_json: bool = False,
    names: Sequence[str] = (),
) -> int:
    """Print the matching instance types and return the exit status.

    ``names`` lists those types only (the GPU filters then do not apply); otherwise every type
    with at least ``gpus`` GPUs of ``gpu_model`` with ``min_gpu_memory`` GB each is listed.
    """
    catalog = load_catalog()
    try:
        rows = _select(catalog, gpus, gpu_model, min_gpu_memory, names)
    except UnknownInstanceType as exc:
        typer.echo(exc.message, err=True)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        return EXIT_BAD_INPUT
    if as_json:
        typer.echo(json.dumps([instance_json(row) for row in rows], indent=2))
        return 0 if rows else EXIT_NO_MATCH
    if not rows:
        typer.echo("No instance type matches.", err=True)
        return EXIT_NO_MATCH
    _print_table(rows)
    if any(_not_here(row) for row in rows):
        typer.echo(f"* {NOT_HERE}")
    cheapest = next((row for row in rows if row.price_per_hour is not None), None)
    if cheapest is not None and not names:
        price = f"${cheapest.price_per_hour:.3f}/hour, approximate"
        typer.echo(f"Cheapest that fits: {cheapest.name} ({price})")
    return 0


def instance_json(row: InstanceType) -> dict[str, Any]:
    """One catalog row as a JSON object; the ``gpu_*`` keys are 0/null for non-GPU types."""
    return {
        "name": row.name,
        "family": row.family,
        "vcpus": row.vcpus,
        "memory_gib": row.memory_gib,
        "accelerator_kind": row.accelerator_kind,
        "accelerator_count": row.accelerator_count,
        "accelerator_model": row.accelerator_model,
        "accelerator_memory_gb": row.accelerator_memory_gb,
        "gpu_count": row.gpu_count,
        "gpu_model": row.gpu_model,
        "gpu_memory_gb": row.gpu_memory_gb,
        "price_per_hour": row.price_per_hour,
        "price_basis": row.price_basis,
        "uses": sorted(row.uses),
        **({"sageport_note": NOT_HERE} if _not_here(row) else {}),
    }


NOT_HERE = (
    "sageport cannot provide Neuron (Inferentia/Trainium) or Gaudi accelerators: jobs and "
    "endpoints on these types are refused unless cpu_fallback = true, which runs them on the CPU"
)


def _not_here(row: InstanceType) -> bool:
    return row.accelerator_kind in ("neuron", "gaudi") and bool(row.accelerator_count)


def _select(
    catalog: Catalog,
    gpus: int | None,
    gpu_model: str | None,
    min_gpu_memory: float | None,
    names: Sequence[str],
) -> list[InstanceType]:
    if names:
        return [catalog.get(name) for name in names]
    if gpus is not None and gpus < 0:
        raise ValueError(f"--gpus must be 0 or more, not {gpus}")
    if min_gpu_memory is not None and min_gpu_memory < 0:
        raise ValueError(f"--min-gpu-memory must be 0 or more, not {min_gpu_memory:g}")
    if gpu_model is not None:
        models = catalog.gpu_models()
        if gpu_model.casefold() not in {m.casefold() for m in models}:
            close = difflib.get_close_matches(gpu_model.upper(), models, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(
                f"No instance type has GPU model {gpu_model!r}.{hint} "
                f"Known models: {', '.join(models)}."
            )
    return catalog.find(gpus=gpus, gpu_model=gpu_model, min_gpu_memory=min_gpu_memory)


def _print_table(rows: Sequence[InstanceType]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(caption="$/hour: SageMaker on-demand, us-east-1, approximate")
    for column in ("type", "vCPU", "memory GiB", "accelerators", "$/hour"):
        table.add_column(column, justify="left" if column in ("type", "accelerators") else "right")
    for row in rows:
        table.add_row(
            row.name,
            "" if row.vcpus is None else str(row.vcpus),
            "" if row.memory_gib is None else f"{row.memory_gib:g}",
            _accelerators(row),
            "" if row.price_per_hour is None else f"{row.price_per_hour:.3f}",
        )
    Console(width=120).print(table)


def _accelerators(row: InstanceType) -> str:
    if row.accelerator_kind in ("none", "unknown") or not row.accelerator_count:
        return ""
    memory = f" {row.accelerator_memory_gb:g} GB" if row.accelerator_memory_gb else ""
    kind = "" if row.accelerator_kind == "gpu" else f" ({row.accelerator_kind}, not a GPU)*"
    return f"{row.accelerator_count}x {row.accelerator_model}{memory}{kind}"
