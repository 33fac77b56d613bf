"""The layers point one way: every import in ``src/sageport`` is checked against a table.

Each module belongs to the layer of its top-level package (``sageport.scheduler.jobs`` is in
``scheduler``). The top-level modules are layers of their own kind: ``settings``, ``errors``
and ``clock`` (and the package's ``__init__``) are ``base``, importable by every layer but
``domain``; ``wiring`` is the composition root, above ``api``; ``__main__`` is the entry
point, with ``cli``. Every import is read with :mod:`ast` - at module level, inside
functions and under ``if TYPE_CHECKING`` alike, since a deferred import is still a
dependency - and must point to the importer's own layer or one ``ALLOWED`` names.

A pair that must break the rules for a while is listed in ``ALLOWLIST`` with why (empty since
issue 13). The test fails on a new violation and on an allowlisted pair that no longer exists, so
the list only shrinks. The layer diagram is ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "sageport"

#: top-level modules that are not packages, and the layer each belongs to
MODULE_LAYERS = {
    "__init__": "base",
    "settings": "base",
    "errors": "base",
    "clock": "base",
    "wiring": "wiring",
    "__main__": "cli",
}

#: what each layer may import besides itself (from the top down). ``domain`` imports nothing
#: of the project: it is plain rules (statuses, ARNs, key types) every layer may use.
ALLOWED: dict[str, frozenset[str]] = {
    "cli": frozenset(
        {"wiring", "api", "services", "scheduler", "backends", "gpu", "runtime", "catalog"}
        | {"store", "storage", "serving", "domain", "base"}
    ),
    "wiring": frozenset(
        {"api", "services", "scheduler", "backends", "gpu", "runtime", "catalog", "store"}
        | {"storage", "serving", "domain", "base"}
    ),
    # the protocols: they call services, never the scheduler or a backend
    "api": frozenset({"services", "domain", "store", "storage", "catalog", "serving", "base"}),
    # use cases; the scheduler is reached only through the callbacks wiring hands in
    "services": frozenset({"domain", "store", "storage", "catalog", "runtime", "serving", "base"}),
    # the background work: it declares what it needs of the services (scheduler.records)
    "scheduler": frozenset(
        {"backends", "runtime", "gpu", "catalog", "store", "storage", "serving", "domain"}
        | {"base"}
    ),
    "backends": frozenset({"runtime", "domain", "base"}),
    "runtime": frozenset({"domain", "base"}),
    "gpu": frozenset({"domain", "base"}),
    "catalog": frozenset({"domain", "base"}),
    "store": frozenset({"domain", "base"}),
    "storage": frozenset({"domain", "base"}),
    # the model server: it runs in its own process and imports nothing of the server
    "serving": frozenset({"base"}),
    "base": frozenset(),
    "domain": frozenset(),
}

#: (importing module, imported module) pairs that still break a rule, each with why. Fix one,
#: then delete its line: the test fails while a listed pair is gone (issue 13).
ALLOWLIST: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return MODULE_LAYERS["__init__"]
    top = parts[1]
    if top in MODULE_LAYERS:
        return MODULE_LAYERS[top]
    if top in ALLOWED:
        return top
    raise AssertionError(f"{module}: no layer for sageport.{top}; add it to test_layers.py")


def imports_of(path: Path) -> list[Import]:
    """Every ``sageport`` import in ``path``."""
    return imports_in(path.read_text(), module_name(path), path)


def imports_in(text: str, importer: str, path: Path) -> list[Import]:
    """Every ``sageport`` import in ``text`` (module ``importer``), relative ones resolved,
    at any depth: inside functions and ``if TYPE_CHECKING`` blocks too."""
    is_package = path.name == "__init__.py"
    package = (importer if is_package else importer.rpartition(".")[0]).split(".")
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            # ``from sageport.scheduler import metrics`` imports a module;
            # ``from sageport import __version__`` a name of the package
            names = list(dict.fromkeys(_submodule(names[0], a.name) for a in node.names))
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found.append(Import(importer, name, path, node.lineno))
    return found


def _submodule(package: str, name: str) -> str:
    """``package.name`` when that is a module, else ``package`` (``name`` is in it)."""
    where = SRC.joinpath(*package.split("."), name)
    if where.with_suffix(".py").exists() or (where / "__init__.py").exists():
        return f"{package}.{name}"
    return package


def all_imports() -> list[Import]:
    return [i for path in sorted((SRC / PACKAGE).rglob("*.py")) for i in imports_of(path)]


def broken(imp: Import) -> str | None:
    """The rule ``imp`` breaks, or None."""
    src, dst = layer_of(imp.importer), layer_of(imp.imported)
    if src == dst or dst in ALLOWED[src]:
        return None
    may = ", ".join(sorted(ALLOWED[src])) or "nothing of sageport"
    return f"layer {src!r} may not import layer {dst!r} ({src} may import: {may})"


def test_every_module_has_a_layer() -> None:
    for path in (SRC / PACKAGE).rglob("*.py"):
        layer_of(module_name(path))


def test_imports_point_down() -> None:
    problems = []
    for imp in all_imports():
        rule = broken(imp)
        if rule and (imp.importer, imp.imported) not in ALLOWLIST:
            where = imp.path.relative_to(SRC.parent)
            problems.append(f"{where}:{imp.line}: {imp.importer} imports {imp.imported}: {rule}")
    assert not problems, "imports against the layers (see tests/unit/test_layers.py):\n" + (
        "\n".join(problems)
    )


def test_allowlist_only_shrinks() -> None:
    live = {(i.importer, i.imported) for i in all_imports() if broken(i)}
    gone = sorted(pair for pair in ALLOWLIST if pair not in live)
    assert not gone, "allowlisted imports that are fixed now; delete them from ALLOWLIST:\n" + (
        "\n".join(f"{a} -> {b}" for a, b in gone)
    )


def test_the_checker_sees_deferred_and_relative_imports() -> None:
    source = (
        "from . import jobs\n"
        "from ..api.app import create_app\n"
        "def f():\n"
        "    import sageport.cli.main\n"
        "    from sageport import errors\n"
    )
    path = SRC / PACKAGE / "scheduler" / "probe.py"
    found = sorted(imports_in(source, "sageport.scheduler.probe", path), key=lambda i: i.line)
    assert [i.imported for i in found] == [
        "sageport.scheduler.jobs",
        "sageport.api.app",
        "sageport.cli.main",
        "sageport.errors",
    ]
    rules = [broken(i) for i in found]
    assert rules[0] is None
    assert rules[3] is None
    assert "'scheduler' may not import layer 'api'" in str(rules[1])
    assert "'scheduler' may not import layer 'cli'" in str(rules[2])
