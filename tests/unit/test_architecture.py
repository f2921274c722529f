"""The package structure the README describes: the contract at the bottom and torch-free, imports one way.

Read from the source (ast), so a new import that breaks the layering fails here, not in production.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "segserve"


def _unit(module: str) -> str:
    """segserve.contract.wire → contract; segserve.settings → settings (a top-level module is its own unit)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """unit → the other segserve units its modules import (at any depth: lazy imports count too)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = ".".join(("segserve", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        unit = _unit(module) if module != "segserve" else "segserve"
        found = graph.setdefault(unit, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found.update(_unit(name) for name in names if name.startswith("segserve."))
        found.discard(unit)
    return graph


def test_the_contract_imports_no_other_segserve_package():
    assert _imports()["contract"] == set()


@pytest.mark.parametrize("unit", ["media", "models"])
def test_media_and_models_never_import_routing_inference_or_the_wire(unit):
    graph = _imports()
    assert not graph[unit] & {"routing", "inference", "client", "settings"}, graph[unit]
    for path in (SRC / unit).rglob("*.py"):
        assert "segserve.contract.wire" not in path.read_text(), f"{path.name} imports the HTTP side of the contract"


def test_there_are_no_import_cycles_between_packages():
    graph = _imports()
    visiting, done = [], set()

    def visit(unit: str) -> None:
        if unit in done:
            return
        assert unit not in visiting, "import cycle: " + " → ".join([*visiting[visiting.index(unit):], unit])
        visiting.append(unit)
        for other in sorted(graph.get(unit, ())):
            visit(other)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)


@pytest.mark.parametrize("module", ["segserve.contract.openapi", "segserve.contract.responses",
                                    "segserve.routing.router", "segserve.client"])
def test_importing_the_contract_the_router_or_the_client_loads_no_torch(module):
    probe = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers', 'sam2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"{module} imports {result.stdout.strip()}"
