"""The architecture, enforced: contracts at the top, rooms that never import each other.

Order (an arrow means "may import"): publisher -> contracts, sync -> contracts, factory -> contracts,
bundle -> contracts. The read side of a release (serve/: the serving rules, the content cache, bundle
versions) is a contract both ways of serving share. The contracts (errors, naming, schedule, k8s, schema,
manifest, release, stub, s3, fs, settings, loader, pending, serve) import no room; publisher and sync never import each other; only the factory and the bundle import Airflow.
The loader reaches the factory lazily (inside ``load_dag``), ``render`` too; the modules import one
another without a cycle, lazy imports included (the stub contract, with its API version, is
``stub.py``, which the loader and the factory both read).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "dagfactory_s3"
ROOMS = ("dagfactory_s3.publisher", "dagfactory_s3.sync", "dagfactory_s3.factory", "dagfactory_s3.bundle")
# Lazy imports by design: loader.load_dag reaches the factory only when a stub builds its DAG, and
# `render` (publisher.local, the [render] extra) builds pods with the factory's own code.
ALLOWED = {
    ("dagfactory_s3.loader", "dagfactory_s3.factory"),
    ("dagfactory_s3.publisher.local", "dagfactory_s3.factory"),
}


# convert's loading subprocess (`python -m dagfactory_s3.convert.load`) and its Airflow 2 compatibility
# layer: they import Airflow, and only in that subprocess (nothing in the package imports them).
CONVERT_LOADER = ("dagfactory_s3.convert.load", "dagfactory_s3.convert.compat")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _room(module: str) -> str | None:
    return next((r for r in ROOMS if module == r or module.startswith(r + ".")), None)


MODULES = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_rooms_exist():
    """The publisher and the sidecar are subpackages; the factory is one module."""
    assert {m for m in MODULES if _room(m) == "dagfactory_s3.publisher"} >= {
        "dagfactory_s3.publisher.cli",
        "dagfactory_s3.publisher.transaction",
    }
    assert "dagfactory_s3.sync.reconcile" in MODULES and "dagfactory_s3.factory" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_dependency_order(module):
    """No contract imports a room, and no room imports another room."""
    mine = _room(module)
    bad = sorted(
        target
        for target in MODULES[module]
        if target.startswith("dagfactory_s3")
        and _room(target) not in (None, mine)
        and (module, _room(target)) not in ALLOWED
    )
    assert bad == [], f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_factory_imports_airflow(module):
    """Airflow is imported by dagfactory_s3.factory, dagfactory_s3.bundle and convert's loading
    subprocess alone (type-only imports excepted)."""
    airflow = {t for t in MODULES[module] if t == "airflow" or t.startswith("airflow.")}
    if module in ("dagfactory_s3.factory", "dagfactory_s3.bundle", *CONVERT_LOADER):
        assert airflow
    elif module == "dagfactory_s3.loader":  # TYPE_CHECKING only: checked at run time by test_packaging
        assert airflow <= {"airflow.sdk", "airflow.sdk.DAG"}
    else:
        assert airflow == set()


def test_nothing_imports_the_convert_loader():
    """convert's Airflow modules run only as their own subprocess: no module of the package imports them."""
    importers = sorted(
        m for m, targets in MODULES.items() if m not in CONVERT_LOADER and targets & set(CONVERT_LOADER)
    )
    assert importers == []


def test_no_private_module_is_imported_by_tests():
    """A test that needs a `_private` module says the layout is wrong."""
    private = sorted(
        (path.name, target)
        for path in (ROOT / "tests").glob("*.py")
        for target in _imports(path)
        if target.startswith("dagfactory_s3")
        and any(p.startswith("_") and p != "__init__" for p in target.split("."))
    )
    assert private == []


def test_no_import_cycle():
    """The package's modules import one another without a cycle, lazy imports counted."""

    def module_of(target: str) -> str | None:
        parts = target.split(".")
        return next(
            (".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in MODULES), None
        )

    graph = {
        module: {module_of(t) for t in targets if t.startswith("dagfactory_s3")} - {None, module}
        for module, targets in MODULES.items()
    }
    state: dict[str, str] = {}  # "visiting" or "done"
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "visiting"
        for target in sorted(graph[module]):
            if state.get(target) == "visiting":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], [" -> ".join(c) for c in cycles]
