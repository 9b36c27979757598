"""The shape of llmos: imports point one way (no circle, no arrow from a lower wing up), and no
module outgrows one concept.

Every ``import`` counts, those under ``if TYPE_CHECKING:`` and inside functions included: a
type-only circle is still two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "llmos"
LOWER = ("llmos.cpu", "llmos.memory", "llmos.peripherals")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """Each module of llmos and the llmos modules it imports."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                # `from llmos.x import y` names the module llmos.x.y when that is a module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def test_no_import_circle() -> None:
    graph = _graph()
    # a package's __init__ only gathers its exports: the arrows that matter are between modules
    packages = {n for n in graph if (ROOT.parent / n.replace(".", "/") / "__init__.py").exists()}
    modules = {a: {b for b in bs if b not in packages} for a, bs in graph.items()
               if a not in packages}
    try:
        graphlib.TopologicalSorter(modules).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_no_arrow_from_a_lower_wing_up_into_the_kernel() -> None:
    up = [(a, b) for a, bs in _graph().items() for b in bs
          if a.startswith(LOWER) and (b == "llmos.kernel" or b.startswith("llmos.kernel."))]
    assert up == []


def test_the_ground_floor_imports_only_itself() -> None:
    # errors, the trace and the knobs sit below every layer, so every layer may import them
    floor = {"llmos.errors", "llmos.trace", "llmos.params"}
    graph = _graph()
    for base in floor:
        assert graph[base] <= floor, base


def test_no_module_outgrows_one_concept() -> None:
    # the calculator is one concept (a safe arithmetic evaluator): it stays whole
    allowed = {"llmos/peripherals/calculator.py"}
    big = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert set(big) <= allowed, big
