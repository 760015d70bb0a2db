"""The compiler's shape, checked: click only in the CLI (a thin shell over the
library), and no function over 80 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPILER = REPO / "compiler"
MAX_FUNCTION_LINES = 80
CLICK_IMPORT = re.compile(r"^\s*(import click\b|from click\b)", re.M)


def compiler_files() -> list[Path]:
    return sorted(COMPILER.rglob("*.py"))


def test_only_the_cli_imports_click() -> None:
    found = [
        p.relative_to(REPO).as_posix()
        for p in compiler_files()
        if CLICK_IMPORT.search(p.read_text("utf-8"))
    ]
    assert found, "the CLI itself imports click: the check would find nothing"
    assert [f for f in found if not f.startswith("compiler/cli/")] == []


def test_no_compiler_function_is_over_80_lines() -> None:
    long = []
    for path in compiler_files():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({size})")
    assert long == []
