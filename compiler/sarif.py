"""Diagnostics for CI: SARIF 2.1.0 (code scanning) and GitHub workflow annotations.

``render_sarif`` writes one run whose rules are the whole code registry
(``ruleId`` = the stable code, ``name`` = its name, ``fullDescription`` = what
it means, ``help`` = its documentation and ``helpUri`` = its section of
docs/diagnostics.md), results with
repository-relative URIs (``uriBaseId: %SRCROOT%``), regions, notes as
related locations, and the witness event in ``properties``.
``render_github`` writes one ``::error``/``::warning`` line per finding::

    ::error file=policies/a.esc,line=34,col=8,endLine=34,endColumn=15,title=E302 ambiguous-route::policies ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from escalade.compiler.codes import CODES, Code
from escalade.compiler.diagnostics import Diagnostic
from escalade.compiler.formats import detail_lines
from escalade.compiler.nodes import Span
from escalade.compiler.rules_doc import anchor, code_markdown, code_text

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
INFORMATION_URI = "https://github.com/escalade/escalade"
# The documentation as published with the sources (docs/ of the default branch).
DOCS_URI = f"{INFORMATION_URI}/blob/main/docs/"
DIAGNOSTICS_DOC = "diagnostics.md"
_LEVEL = {"error": "error", "warning": "warning"}


def _tool_version() -> str:
    try:
        return metadata.version("escalade")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed in practice
        return "0.0.0"


def repo_relative(file: str, root: str | os.PathLike[str] | None = None) -> str | None:
    """``file`` as a POSIX path relative to ``root`` (default: the working directory).

    None when the file lies outside ``root`` (it is then reported by absolute URI).
    """
    base = Path(root) if root is not None else Path.cwd()
    path = Path(file)
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        return None
    return PurePosixPath(rel).as_posix()


def _artifact(span: Span, root: str | os.PathLike[str] | None) -> dict[str, Any]:
    rel = repo_relative(span.file, root)
    if rel is None:
        return {"uri": Path(span.file).resolve().as_uri()}
    return {"uri": rel, "uriBaseId": SRCROOT}


def _region(span: Span) -> dict[str, int]:
    return {
        "startLine": max(1, span.line),
        "startColumn": max(1, span.col),
        "endLine": max(span.line, span.end_line),
        "endColumn": max(1, span.end_col),
    }


def _location(span: Span, root: str | os.PathLike[str] | None) -> dict[str, Any]:
    return {
        "physicalLocation": {"artifactLocation": _artifact(span, root), "region": _region(span)}
    }


def help_uri(code: Code) -> str:
    """Where a code is documented: its section of docs/diagnostics.md."""
    return f"{DOCS_URI}{DIAGNOSTICS_DOC}#{anchor(code)}"


def sarif_rules() -> list[dict[str, Any]]:
    """Every registered code as a SARIF reportingDescriptor, in registry order; the help
    text is the code's documentation from the registry (as in docs/diagnostics.md)."""
    return [
        {
            "id": c.code,
            "name": c.name,
            "shortDescription": {"text": c.description},
            "fullDescription": {"text": f"{c.description} {c.meaning}"},
            "help": {"text": code_text(c), "markdown": code_markdown(c, heading="###")},
            "helpUri": help_uri(c),
            "defaultConfiguration": {"level": _LEVEL[c.severity]},
            "properties": {"tags": ["escalade", c.severity]},
        }
        for c in CODES.values()
    ]


def sarif_document(
    diags: Sequence[Diagnostic], root: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The SARIF 2.1.0 log as a dict (see ``render_sarif``)."""
    index = {code: i for i, code in enumerate(CODES)}
    results: list[dict[str, Any]] = []
    for d in diags:
        text = d.message if not d.help else f"{d.message}\nhelp: {d.help}"
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": _LEVEL[d.severity],
            "message": {"text": text},
            "locations": [_location(d.span, root)],
        }
        if d.notes:
            result["relatedLocations"] = [
                {**_location(note.span, root), "id": i, "message": {"text": note.message}}
                for i, note in enumerate(d.notes)
            ]
        if d.witness is not None:
            result["properties"] = {"witness": dict(d.witness)}
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "escalade",
                        "informationUri": INFORMATION_URI,
                        "version": _tool_version(),
                        "rules": sarif_rules(),
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(diags: Sequence[Diagnostic], root: str | os.PathLike[str] | None = None) -> str:
    """SARIF 2.1.0 JSON (sorted keys, trailing newline); URIs relative to ``root`` (default cwd)."""
    return json.dumps(sarif_document(diags, root), indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- GitHub


def escape_data(text: str) -> str:
    """Escape an annotation message: ``%`` ``\\r`` ``\\n`` as GitHub's toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape an annotation property value: like data, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic, root: str | os.PathLike[str] | None = None) -> str:
    """One workflow command line for a diagnostic (notes, witness and help in the message)."""
    file = repo_relative(d.span.file, root) or d.span.file
    props = [
        ("file", file),
        ("line", str(d.span.line)),
        ("col", str(d.span.col)),
        ("endLine", str(max(d.span.line, d.span.end_line))),
        ("endColumn", str(d.span.end_col)),
        ("title", f"{d.code} {d.name}"),
    ]
    lines = [d.message, *detail_lines(d)]
    command = "error" if d.severity == "error" else "warning"
    head = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    return f"::{command} {head}::{escape_data(chr(10).join(lines))}"


def render_github(diags: Sequence[Diagnostic], root: str | os.PathLike[str] | None = None) -> str:
    """GitHub workflow annotations, one line per diagnostic."""
    return "".join(github_annotation(d, root) + "\n" for d in diags)
