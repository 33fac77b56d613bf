"""``sageport doctor``: the GPU checklist, and which interpreter each image family runs with
(``runtime.interpreters``), as tables for people or JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from sageport.gpu.discovery import FAKE_GPUS_VAR, discovery_from_env
from sageport.gpu.doctor import DoctorReport, Verdict, diagnose
from sageport.runtime.images import SETTINGS_KEY
from sageport.runtime.interpreters import (
    PROBED_MODULES,
    FamilyRow,
    InterpreterProbe,
    SubprocessProbe,
    family_table,
)

_STYLE = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "red", Verdict.SKIP: "dim"}


def doctor_command(
    as_json: bool,
    require_gpu: bool,
    python: str | None,
    timeout: float = 180.0,
    fake_gpus: str = "",
    *,
    images: Mapping[str, str] | None = None,
    probe: InterpreterProbe | None = None,
) -> int:
    """Print the checklist; exit status 1 only with ``require_gpu`` and no usable GPU.

    ``fake_gpus`` is the data folder's ``fake_gpus`` setting: as for ``sageport serve``, it
    wins over ``SAGEPORT_FAKE_GPUS``. A bad spec is itself a finding, reported with exit
    status 2. ``images`` is its ``images`` table: the interpreter table shows where each
    image family goes, unmapped ones to this interpreter (the one ``sageport serve`` would
    use; ``python`` is only the GPU probe's).
    """
    env = dict(os.environ)
    discovery_env = {**env, **({FAKE_GPUS_VAR: fake_gpus} if fake_gpus else {})}
    try:
        discovery = discovery_from_env(discovery_env)
    except ValueError as exc:
        where = " (fake_gpus in sageport.toml)" if fake_gpus else ""
        print(f"sageport doctor: {exc}{where}", file=sys.stderr)
        return 2
    report = diagnose(
        discovery, python or sys.executable, env, timeout=timeout, require_gpu=require_gpu
    )
    rows = family_table(images or {}, sys.executable, probe or SubprocessProbe())
    if as_json:
        out = {**report.to_json(), "interpreters": [row.to_json() for row in rows]}
        print(json.dumps(out, indent=2))
    else:
        _print_table(report)
        _print_interpreters(rows)
    return 1 if require_gpu and not report.gpu_usable else 0


def _print_table(report: DoctorReport) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="sageport doctor", show_lines=False)
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in report.checks:
        style = _STYLE[check.verdict]
        # escaped: "pip install 'sageport[gpu]'" is text, not a rich style tag
        cells = (escape(check.name), f"[{style}]{check.verdict.value}[/]")
        table.add_row(*cells, escape(check.detail), escape(check.fix))
    console = Console()
    console.print(table)
    verdict = "a usable GPU is present" if report.gpu_usable else "no usable GPU"
    console.print(f"[bold]{'✔' if report.gpu_usable else '✘'} {verdict}[/]")


def _print_interpreters(rows: list[FamilyRow]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="image families → interpreters", show_lines=False)
    table.add_column("image family", no_wrap=True)
    table.add_column("interpreter (set by)", overflow="fold")
    table.add_column(f"imports (of {', '.join(PROBED_MODULES)})", overflow="fold")
    table.add_column("missing", overflow="fold")
    for row in rows:
        by = "default" if row.mapped_by is None else f"{SETTINGS_KEY}[{row.mapped_by!r}]"
        if row.report.error:
            found = f"[red]{escape(row.report.error)}[/]"
        else:
            found = escape(", ".join(m for m, ok in row.report.modules.items() if ok) or "none")
        missing = f"[red]{escape(', '.join(row.missing))}[/]" if row.missing else ""
        table.add_row(escape(row.family), escape(f"{row.python} ({by})"), found, missing)
    Console().print(table)
