"""The package's shape: no import cycles between modules, cli/ stays thin, no loose root modules."""

from __future__ import annotations

import ast
from pathlib import Path

import regdeploy

PACKAGE = Path(regdeploy.__file__).resolve().parent
ROOT_MODULES = {"__init__", "__main__", "errors", "fileio"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the regdeploy modules it imports (at any depth: lazy imports count too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name and not name.startswith(t + "."):
                    deps.add(t)
        # importing a package runs its __init__: a dependency on "a.b.c" is one on "a.b" too,
        # but only if that __init__ imports something; empty __init__ files cannot close a cycle.
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_only_errors_and_fileio_at_the_root():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - ROOT_MODULES
    assert loose == set()


def test_cli_depends_on_nothing_below_ops_but_inventory_output_and_errors():
    """cli/ parses, calls and prints: it does not reach into deploy/ or transport/ itself."""
    graph = import_graph()
    offenders = {
        (mod, dep)
        for mod, deps in graph.items()
        if mod == "regdeploy.cli" or mod.startswith("regdeploy.cli.")
        for dep in deps
        if dep.startswith(("regdeploy.deploy", "regdeploy.transport"))
    }
    assert offenders == set()


def test_test_files_have_unique_basenames():
    # pytest imports test modules by basename (no packages): a name in both tests/unit and
    # tests/integration stops collection with "import file mismatch" on a clean checkout.
    tests = Path(__file__).resolve().parents[1]
    unit = {p.name for p in (tests / "unit").glob("test_*.py")}
    integration = {p.name for p in (tests / "integration").glob("test_*.py")}
    assert unit & integration == set()
