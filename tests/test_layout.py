"""The shape of both packages, checked: small functions, click only in each CLI, small
runtime modules, runtime imports that never go round in a circle, and one pack model (no
raw pack JSON outside the loader: pack.py and packrefs.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def runtime_files() -> list[Path]:
    return sorted(RUNTIME.rglob("*.py"))


def package_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNTIME).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["escalade", "runtime", *parts])


def test_no_runtime_module_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in runtime_files()
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("package", ["compiler", "runtime"])
def test_no_function_is_over_80_lines(package: str) -> None:
    long = []
    for path in package_files(package):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({size})")
    assert not long, long


@pytest.mark.parametrize("package", ["compiler", "runtime"])
def test_only_the_cli_imports_click(package: str) -> None:
    found = [
        p.relative_to(REPO).as_posix()
        for p in package_files(package)
        if re.search(r"^\s*(import click|from click\b)", p.read_text("utf-8"), re.M)
    ]
    assert found, "the CLI itself imports click: the check would find nothing"
    assert all(f.startswith(f"{package}/cli/") for f in found), found


def _imports(path: Path) -> Iterator[str]:
    """``escalade.runtime`` modules ``path`` imports when it runs (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in runtime_files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in _imports(path) if t in modules and t != name}
        # A module imports its own package's __init__ on the way: that is no edge back.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_runtime() -> None:
    graph = import_graph()
    assert "escalade.runtime.engine.shell" in graph["escalade.runtime.app"] or any(
        "escalade.runtime.engine" in t for t in graph["escalade.runtime.app"]
    )
    assert cycles(graph) == []


# Raw pack JSON read outside runtime/pack.py: keys of the pack's top level and sections.
RAW_PACK = re.compile(
    r"""(\.raw\b\s*[\[.]\s*(get\()?|\[\s*|\.get\(\s*)["'](policies|directory|schema|metadata|"""
    r"""people|teams|channels|owners|triage|exceptions|checks|steps|events|objects)["']"""
)


@pytest.mark.parametrize(
    "line",
    ['pack.raw["schema"]', "body.get('policies')", 'raw["owners"]', "pack.raw.get('metadata')"],
)
def test_the_raw_pack_pattern_catches_dict_reads(line: str) -> None:
    assert RAW_PACK.search(line)


def test_no_raw_pack_reads_outside_the_loader() -> None:
    found = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in runtime_files()
        if p.name not in ("pack.py", "packrefs.py")  # the loader reads the JSON
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if RAW_PACK.search(line)
    ]
    assert not found, found


# Compiler modules that build the pack (its writer) or use the same words for other
# dictionaries; every other compiler module reads packs through RulePack.
NOT_PACK_READS = {
    "compiler/backends/rulepack.py": "writes the pack",
    "compiler/config.py": "escalade.yaml's `policies:` setting",
    "compiler/diff.py": "timeline signatures: owners and triage per level",
    "compiler/explain.py": "its own JSON document's exceptions",
}


def test_the_compiler_reads_packs_only_through_rulepack() -> None:
    compiler = REPO / "compiler"
    found = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in sorted(compiler.rglob("*.py"))
        if str(p.relative_to(REPO)) not in NOT_PACK_READS
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if RAW_PACK.search(line)
    ]
    assert not found, found
