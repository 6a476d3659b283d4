"""The import graph of src/pilotfish, read with `ast` (nothing is imported): no cycles, and arrows point down.

Every import counts, at module level or inside a function (a lazy import is still a dependency), and so
does one under `if TYPE_CHECKING:`. `from a.b import c` is an edge to the module a.b.c when there is one,
else to a.b. `pilotfish/__init__.py`, the public API that re-exports from every layer, is exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "pilotfish"

# Lowest first. A module may import its own layer and the ones below it, never one above.
LAYERS: list[tuple[str, ...]] = [
    ("types", "errors", "config", "text", "jsonl", "component"),  # the ground floor
    ("models", "llms"),
    ("retrievers",),
    ("prompts",),
    # table and graph evidence: the SQL writer's prompts below, the knowledge base that stores them above
    ("tables", "graphs"),
    ("knowledge",),
    ("verification",),
    ("routing",),
    ("answer",),
    ("evaluation", "training", "integrations"),
    ("serve",),
    ("cli",),
]
LAYER_OF = {part: n for n, parts in enumerate(LAYERS) for part in parts}

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of its first import}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under root/package (a package is its __init__.py)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def import_graph(root: Path, package: str) -> Graph:
    """The edges between modules of `package` (imports of anything else are left out)."""
    modules = module_files(root, package)
    graph: Graph = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for target in _targets(node, name, is_package, modules):
                if target != name:
                    edges.setdefault(target, node.lineno)
    return graph


def _targets(node: ast.AST, name: str, is_package: bool, modules: dict[str, Path]) -> Iterable[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            found = _known(alias.name, modules)
            if found:
                yield found
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's own package, one level up per extra dot
            here = name.split(".") if is_package else name.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join(here + ([base] if base else []))
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            found = submodule if submodule in modules else _known(base, modules)
            if found:
                yield found


def _known(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `dotted` that is one of our modules (None for other libraries)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (a module's import of itself is
    dropped when the graph is built)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as [a, b, ..., a] (breadth-first search)."""
    start, members = component[0], set(component)
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    path = [v]
                    while (up := parent[path[-1]]) is not None:
                        path.append(up)
                    return [*reversed(path), start]
                if w in members and w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")


def describe_cycle(graph: Graph, cycle: list[str], root: Path, package: str) -> str:
    """One line per import of the cycle: `a -> b (file:line)`."""
    files = module_files(root, package)
    return "\n    ".join(f"{a} -> {b} ({files[a].relative_to(root).as_posix()}:{graph[a][b]})"
                          for a, b in zip(cycle, cycle[1:]))


def layer_violations(graph: Graph, layer_of: Callable[[str], int | None]) -> list[str]:
    """Edges from a module to one in a higher layer, as readable lines."""
    bad = []
    for source, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            low, high = layer_of(source), layer_of(target)
            if low is not None and high is not None and low < high:
                bad.append(f"{source} (layer {low}) imports {target} (layer {high}) at line {line}")
    return bad


def pilotfish_layer(module: str) -> int | None:
    """The layer of a pilotfish module; None for the exempt public API (pilotfish/__init__.py)."""
    parts = module.split(".")
    if parts == [PACKAGE]:
        return None
    if parts[1] not in LAYER_OF:
        raise AssertionError(f"{module} is in no layer: add {parts[1]!r} to LAYERS in {Path(__file__).name}")
    return LAYER_OF[parts[1]]


def pilotfish_graph() -> Graph:
    graph = import_graph(SRC, PACKAGE)
    graph.pop(PACKAGE, None)  # the public API is exempt, as an importer and as a target
    return {m: {t: line for t, line in edges.items() if t != PACKAGE} for m, edges in graph.items()}


def test_every_module_is_in_a_layer_and_the_graph_is_not_empty() -> None:
    graph = pilotfish_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100, "the walk found too little: wrong path?"
    for module in graph:
        pilotfish_layer(module)


def test_there_is_no_import_cycle() -> None:
    graph = pilotfish_graph()
    components = strongly_connected(graph)
    report = [f"{', '.join(c)}; for example:\n    {describe_cycle(graph, one_cycle(graph, c), SRC, PACKAGE)}"
              for c in components]
    assert not components, "import cycles:\n" + "\n".join(report)


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad = layer_violations(pilotfish_graph(), pilotfish_layer)
    assert not bad, "imports that point up the layers:\n" + "\n".join(bad)


# -- the checker itself, on a planted package --------------------------------------------------------


def plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_a_planted_cycle_through_a_lazy_relative_import(tmp_path: Path) -> None:
    plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from pkg.low.a import A\n",
        "pkg/low/a.py": "import json\nfrom pkg.low import b  # a module: the edge goes to pkg.low.b\nA = 1\n",
        "pkg/low/b.py": "def f():\n    from .c import C  # lazy and relative\n    return C\n",
        "pkg/low/c.py": "from ..low.a import A as C\n",
        "pkg/high.py": "from pkg.low import A\nimport pkg.high\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.low.a"] == {"pkg.low.b": 2}  # not the package pkg.low, and not json
    assert graph["pkg.low.b"] == {"pkg.low.c": 2} and graph["pkg.low.c"] == {"pkg.low.a": 1}
    assert graph["pkg.high"] == {"pkg.low": 1}  # its import of itself is dropped
    [component] = strongly_connected(graph)
    assert component == ["pkg.low.a", "pkg.low.b", "pkg.low.c"]
    assert one_cycle(graph, component) == ["pkg.low.a", "pkg.low.b", "pkg.low.c", "pkg.low.a"]
    assert describe_cycle(graph, ["pkg.low.a", "pkg.low.b", "pkg.low.c", "pkg.low.a"], tmp_path, "pkg") == (
        "pkg.low.a -> pkg.low.b (pkg/low/a.py:2)\n    pkg.low.b -> pkg.low.c (pkg/low/b.py:2)\n"
        "    pkg.low.c -> pkg.low.a (pkg/low/c.py:1)")

    def layer(module: str) -> int:
        return 1 if module.startswith("pkg.high") else 0

    plant(tmp_path, {"pkg/low/d.py": "def g():\n    import pkg.high\n"})
    assert layer_violations(import_graph(tmp_path, "pkg"), layer) == [
        "pkg.low.d (layer 0) imports pkg.high (layer 1) at line 2"]


def test_an_unknown_top_level_package_must_be_given_a_layer() -> None:
    with pytest.raises(AssertionError, match="add 'server' to LAYERS"):
        pilotfish_layer("pilotfish.server.app")
