"""Which interpreter each image family runs with, what it can import, and what to say when a
job's import fails.

An image URI only picks a local Python (``runtime.images``), so "No module named 'torch'" is
a fact about that interpreter, not about the image. This module makes the interpreter
visible: :func:`family_table` maps every image family (and every extra key of the settings'
``images`` table) to its interpreter and asks an :class:`InterpreterProbe` which of
:data:`PROBED_MODULES` that interpreter can import; ``sageport serve`` logs the table at
start (:func:`log_in_background`, off the request path) and ``sageport doctor`` prints it.
:func:`missing_module` and :func:`missing_module_note` turn a job's
``ModuleNotFoundError`` into the interpreter, the image family and the two ways to fix it.

The probe is an I/O boundary: :class:`SubprocessProbe` starts each interpreter once (cached
per path) and asks ``importlib.util.find_spec``, which locates a package without importing
it, so TensorFlow is never loaded at start; :class:`FakeProbe` answers from a table.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sageport.runtime.images import FRAMEWORKS, LOCAL_PREFIX, SETTINGS_KEY, RuntimeSpec

PROBED_MODULES = ("torch", "tensorflow", "sklearn", "xgboost")
"""The frameworks the table reports, by import name."""

EXPECTED: Mapping[str, tuple[str, ...]] = {
    "pytorch": ("torch",),
    "huggingface-pytorch": ("torch",),
    "tensorflow": ("tensorflow",),
    "huggingface-tensorflow": ("tensorflow",),
    "sklearn": ("sklearn",),
    "xgboost": ("xgboost",),
}
"""What a job on each family's image can import in its real container (others: nothing we probe)."""

PIP_NAMES: Mapping[str, str] = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "google.protobuf": "protobuf",
}
"""Import names whose pip package is called something else."""

PROBE_TIMEOUT_S = 30.0
SETTINGS_FILE = "sageport.toml"

# find_spec of a top-level name reads the path entries, it runs no package code
_PROBE_SCRIPT = """
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found[name] = False
print(json.dumps({"version": "%d.%d.%d" % sys.version_info[:3], "modules": found}))
"""

_MISSING = re.compile(r"ModuleNotFoundError: No module named '(?P<name>[^']+)'")


@dataclass(frozen=True)
class InterpreterReport:
    """What one interpreter can import. ``error`` is set (and ``modules`` empty) when it could
    not be asked: not found, not executable, too slow, not a Python."""

    python: str
    modules: Mapping[str, bool] = field(default_factory=dict)
    version: str = ""
    error: str = ""


class InterpreterProbe(Protocol):
    """Which of :data:`PROBED_MODULES` an interpreter can import."""

    def probe(self, python: str) -> InterpreterReport: ...


class SubprocessProbe:
    """Asks each interpreter in a subprocess, once per path (thread-safe)."""

    def __init__(
        self, modules: Sequence[str] = PROBED_MODULES, timeout_s: float = PROBE_TIMEOUT_S
    ) -> None:
        self.modules = tuple(modules)
        self.timeout_s = timeout_s
        self._cache: dict[str, InterpreterReport] = {}
        self._lock = threading.Lock()

    def probe(self, python: str) -> InterpreterReport:
        with self._lock:
            cached = self._cache.get(python)
        if cached is not None:
            return cached
        report = self._ask(python)
        with self._lock:
            return self._cache.setdefault(python, report)

    def _ask(self, python: str) -> InterpreterReport:
        argv = [python, "-c", _PROBE_SCRIPT, *self.modules]
        try:
            # cwd=/: "python -c" puts the working folder on sys.path; a job's is its code folder
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout_s, cwd="/", check=False
            )
        except FileNotFoundError:
            return InterpreterReport(python, error="not found")
        except PermissionError:
            return InterpreterReport(python, error="not executable")
        except OSError as exc:
            return InterpreterReport(python, error=f"cannot run it: {exc.strerror or exc}")
        except subprocess.TimeoutExpired:
            return InterpreterReport(python, error=f"no answer within {self.timeout_s:g} s")
        try:
            answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            modules = {str(k): bool(v) for k, v in answer["modules"].items()}
            return InterpreterReport(python, modules, str(answer.get("version", "")))
        except (ValueError, IndexError, KeyError, AttributeError, TypeError):
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            return InterpreterReport(python, error=f"not a usable Python: {last[:200]}")


class FakeProbe:
    """A probe for tests: ``installed`` maps an interpreter path to what it can import; any
    other path is "not found". ``calls`` records the paths asked, in order."""

    def __init__(
        self,
        installed: Mapping[str, Iterable[str]],
        modules: Sequence[str] = PROBED_MODULES,
        version: str = "3.11.0",
    ) -> None:
        self.installed = {k: frozenset(v) for k, v in installed.items()}
        self.modules = tuple(modules)
        self.version = version
        self.calls: list[str] = []

    def probe(self, python: str) -> InterpreterReport:
        self.calls.append(python)
        if python not in self.installed:
            return InterpreterReport(python, error="not found")
        have = self.installed[python]
        return InterpreterReport(python, {m: m in have for m in self.modules}, self.version)


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyRow:
    """One image family (or ``images`` key) and what its interpreter can import."""

    family: str
    """``pytorch``, ... or a key of the ``images`` table that is not a family (``my-repo``)."""
    python: str
    mapped_by: str | None
    """The ``images`` key that names ``python``; None: the server's own interpreter."""
    expects: tuple[str, ...]
    report: InterpreterReport

    @property
    def missing(self) -> tuple[str, ...]:
        """The family's own frameworks that the interpreter cannot import."""
        if self.report.error:
            return self.expects
        return tuple(m for m in self.expects if not self.report.modules.get(m, False))

    @property
    def source(self) -> str:
        if self.mapped_by is None:
            return "the interpreter of sageport serve"
        return f"{SETTINGS_KEY}[{self.mapped_by!r}] in {SETTINGS_FILE}"

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "python": self.python,
            "mapped_by": self.mapped_by,
            "python_version": self.report.version or None,
            "modules": dict(self.report.modules),
            "expects": list(self.expects),
            "missing": list(self.missing),
            "error": self.report.error or None,
        }

    def log_line(self) -> str:
        """``pytorch images -> /usr/bin/python3 (...): torch yes, ...`` for the server log."""
        head = f"{self.family} images -> {self.python} ({self.source}"
        head += f", Python {self.report.version})" if self.report.version else ")"
        if self.report.error:
            return f"{head}: {self.report.error}"
        found = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in self.report.modules.items())
        missing = f"; MISSING for this family: {', '.join(self.missing)}" if self.missing else ""
        return f"{head}: {found}{missing}"


def _expects(key: str) -> tuple[str, ...]:
    return EXPECTED.get(key.split(":", 1)[0], ())


def family_table(
    mapping: Mapping[str, str], default_python: str, probe: InterpreterProbe
) -> list[FamilyRow]:
    """Every image family, then every other ``images`` key, with its interpreter's report.

    A family maps to ``images[family]`` if set, else ``default_python`` (the interpreter of
    ``sageport serve``), as :func:`runtime.images.resolve_image` decides for a framework image
    with no more specific key. Each distinct interpreter is probed once per call.
    """
    routes = [
        (family, mapping.get(family, default_python), family if family in mapping else None)
        for family in FRAMEWORKS
    ]
    routes += [(key, python, key) for key, python in mapping.items() if key not in FRAMEWORKS]
    reports: dict[str, InterpreterReport] = {}
    rows = []
    for family, python, mapped_by in routes:
        if python not in reports:
            reports[python] = probe.probe(python)
        rows.append(FamilyRow(family, python, mapped_by, _expects(family), reports[python]))
    return rows


def log_in_background(
    mapping: Mapping[str, str],
    default_python: str,
    probe: InterpreterProbe,
    logger: logging.Logger,
) -> threading.Thread:
    """Log :func:`family_table`, one INFO line per row, from a daemon thread (started here):
    the server answers while the interpreters start."""

    def run() -> None:
        try:
            for row in family_table(mapping, default_python, probe):
                logger.info("interpreter: %s", row.log_line())
        except Exception:  # a report must never take the server down
            logger.exception("interpreter: could not probe the image interpreters")

    thread = threading.Thread(target=run, name="sageport-interpreters", daemon=True)
    thread.start()
    return thread


# -- a job that could not import ---------------------------------------------------------


def missing_module(lines: Iterable[str]) -> str | None:
    """The module of the last ``ModuleNotFoundError: No module named 'x'`` in ``lines``."""
    found = None
    for line in lines:
        for match in _MISSING.finditer(line):
            found = match["name"]
    return found


def pip_name(module: str) -> str:
    """The pip package that most likely provides ``module`` (its top-level name)."""
    if module in PIP_NAMES:
        return PIP_NAMES[module]
    top = module.split(".", 1)[0]
    return PIP_NAMES.get(top, top)


def missing_module_note(module: str, runtime: RuntimeSpec) -> str:
    """Which interpreter could not import ``module`` and how to change that, for a
    ``FailureReason`` (two lines, no trailing newline)."""
    python = runtime.python
    if runtime.framework == "local":
        where = f"named by the image {LOCAL_PREFIX}{python}"
        remap = f"or name another interpreter in the image: {LOCAL_PREFIX}/path/to/python"
    else:
        key = runtime.mapped_by or runtime.framework
        if runtime.mapped_by is not None:
            where = f"image family {runtime.framework}, mapped by {SETTINGS_KEY}[{key!r}]"
        else:
            where = (
                f"image family {runtime.framework}: the interpreter of sageport serve, "
                f"as nothing in [{SETTINGS_KEY}] maps it"
            )
        remap = (
            f"or map the image to an interpreter that has it in {SETTINGS_FILE}: "
            f'[{SETTINGS_KEY}] "{key}" = "/path/to/venv/bin/python"'
        )
    return (
        f'Interpreter "{python}" ({where})\n'
        f"To fix: install it into that interpreter ({python} -m pip install "
        f"{pip_name(module)}), {remap}"
    )
