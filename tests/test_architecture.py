"""The house: data flows one way (data → retrieval → evaluation, results → pipeline → report → cli).

Imports are read from the source: module level, inside functions and under `if TYPE_CHECKING:`
alike (a type-only import is still a dependency a reader must follow, and a cycle through one is a
cycle of the design).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gtr_eval"

# Each layer may import only from layers listed before it (and from itself).
LAYERS = [
    [
        "gtr_eval",
        "gtr_eval.io",
        "gtr_eval.paths",
        "gtr_eval.artifacts",
        "gtr_eval.defaults",
        "gtr_eval.errors",
        "gtr_eval.identity",
        "gtr_eval.progress",
        "gtr_eval.checkpoints",
        "gtr_eval.compat",
    ],
    ["gtr_eval.data"],
    ["gtr_eval.retrieval"],
    ["gtr_eval.uncertainty"],
    ["gtr_eval.evaluation"],
    ["gtr_eval.fusion"],
    ["gtr_eval.options"],
    ["gtr_eval.results", "gtr_eval.dataset_files", "gtr_eval.judgments"],
    ["gtr_eval.pipeline"],
    ["gtr_eval.distributed", "gtr_eval.training"],
    ["gtr_eval.report"],
    ["gtr_eval.api", "gtr_eval.cli"],
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gtr_eval"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("gtr_eval"):
                for alias in node.names:  # `from . import registry` imports a module
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def _layer(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (i, prefix)
    assert best is not None, f"{module} belongs to no layer; add it to LAYERS"
    return best[0]


def test_the_import_graph_is_read_from_the_source():
    graph = _graph()
    assert "gtr_eval.data.units" in graph["gtr_eval.pipeline.runner"]
    assert "gtr_eval.retrieval.onnx_backend" in graph["gtr_eval.retrieval.encoders"]  # imported in a function
    assert "gtr_eval.pipeline.runner" in graph["gtr_eval.api"]  # under TYPE_CHECKING (and in functions)


def test_type_only_imports_count(tmp_path):
    """An import under `if TYPE_CHECKING:` is an edge of the graph like any other."""
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gtr_eval import b\n"
    )
    assert _imports(
        "gtr_eval.a", tmp_path / "a.py", {"gtr_eval.a": tmp_path / "a.py", "gtr_eval.b": tmp_path}
    ) == {"gtr_eval.b"}


def test_report_only_reads_results():
    """Results are written in one place, the pair pipeline; the report layer reads them."""
    writers = {m for m, targets in _graph().items() if any(t == "gtr_eval.results" for t in targets)}
    source = {m: _modules()[m].read_text(encoding="utf-8") for m in writers}
    writing = sorted(m for m, text in source.items() if re.search(r"\)\.save\(", text))
    assert writing == ["gtr_eval.pipeline.pairs"]


def test_only_the_store_knows_its_files():
    """The store's file naming is in one module, and the temporary files of atomic writes are named by
    `io` alone (the store asks it for those a killed write left); the pair pipeline knows neither."""
    text = {m: path.read_text(encoding="utf-8") for m, path in _modules().items()}
    assert sorted(m for m, t in text.items() if "RUN_SUFFIX" in t or '.run.trec.gz"' in t) == [
        "gtr_eval.report.export",  # the export folder's own layout
        "gtr_eval.results",
    ]
    assert sorted(m for m, t in text.items() if "temp_files" in t) == ["gtr_eval.io", "gtr_eval.results"]
    assert not any(word in text["gtr_eval.pipeline.pairs"] for word in ('.tmp"', '.json"', '.lock"', "glob("))


def test_no_import_cycles():
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()) or [])}"


def test_imports_only_go_down_the_layers():
    upward = [
        f"{a} imports {b}"
        for a, targets in _graph().items()
        for b in targets
        if _layer(b) > _layer(a) and b != "gtr_eval"
    ]
    assert not upward, "\n".join(sorted(upward))


def test_the_checks_catch_a_cycle_and_an_upward_import():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _layer("gtr_eval.retrieval.dense") > _layer("gtr_eval.data.loader")
    assert _layer("gtr_eval.cli.run") > _layer("gtr_eval.pipeline.runner")
    assert _layer("gtr_eval.report.site") > _layer("gtr_eval.pipeline.pairs") > _layer("gtr_eval.results")
