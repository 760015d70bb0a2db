"""One bundled use case as a policy set of its own: only the declarations it uses.

The bundled ``policies/`` share one schema, directory and template file among
every use case. A repository started from one use case gets that use case's
policy and test files and the shared files cut down to what it uses, so
``escalade check --strict`` passes there too:

- people, teams, channels and templates the compiler reports unused (W601),
  and coverage promises no remaining policy keeps (W305), are removed, until
  none is left (removing a team can leave its members unused);
- event kinds and schema objects that nothing left names are removed;
- a shared file left with no declaration is dropped.

A declaration is removed with the comment lines right above it; the rest of
each file (its header, every other comment) is kept as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from escalade.compiler import load_policy_set
from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector
from escalade.compiler.parse import parse_source
from escalade.compiler.scaffold.bundle import bundled_files, shared_files, use_cases

# Findings that name a declaration a use case does not need.
_UNNEEDED = ("W601", "W305")
_MAX_ROUNDS = 20


class PruneError(Exception):
    """The bundled files could not be cut down to a clean set (a bug in the bundle)."""


def example_policies(example: str) -> dict[str, str]:
    """File name (inside policies/) -> text, for the use case ``example``."""
    files = bundled_files()
    case = use_cases(files)[example]
    shared = {name: files[name] for name in shared_files(files)}
    own = {case.policy_file: files[case.policy_file], case.test_file: files[case.test_file]}
    for _ in range(_MAX_ROUNDS):
        doomed = _unneeded_spans({**shared, case.policy_file: own[case.policy_file]})
        if not doomed:
            break
        shared = {name: _without(name, text, doomed) for name, text in shared.items()}
    else:  # pragma: no cover - each round removes at least one declaration
        raise PruneError(f"{example}: unused declarations keep appearing")
    used = "\n".join([*own.values(), *(_templates_and_coverage(shared))])
    shared = {name: _without_unnamed(name, text, used) for name, text in shared.items()}
    kept = {name: text for name, text in shared.items() if _declarations(name, text)}
    return {**kept, **own}


def _unneeded_spans(sources: dict[str, str]) -> set[n.Span]:
    """Spans of the findings (W601, W305) that point at declarations nobody needs."""
    result = load_policy_set(".", sources=sorted(sources.items()))
    return {d.span for d in result.diagnostics if d.code in _UNNEEDED}


def _declarations(name: str, text: str) -> tuple[n.Decl, ...]:
    tree = parse_source(name, text, Collector())
    if tree is None:
        raise PruneError(f"bundled file {name} does not parse")
    return tuple(tree.decls)


def _inside(inner: n.Span, outer: n.Span) -> bool:
    return (
        inner.file == outer.file
        and (outer.line, outer.col) <= (inner.line, inner.col)
        and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)
    )


def _without(name: str, text: str, doomed: set[n.Span]) -> str:
    """``text`` without the declarations any of the ``doomed`` spans points into."""
    cut = [d.span for d in _declarations(name, text) if any(_inside(s, d.span) for s in doomed)]
    return _cut(text, cut)


def _templates_and_coverage(shared: dict[str, str]) -> Iterable[str]:
    """Source of the kept declarations that name fields and events themselves."""
    for name, text in shared.items():
        lines = text.split("\n")
        for d in _declarations(name, text):
            if isinstance(d, n.TemplateDecl | n.CoverageDecl):
                yield "\n".join(lines[d.span.line - 1 : d.span.end_line])


def _without_unnamed(name: str, text: str, used: str) -> str:
    """``text`` without the event kinds and schema objects ``used`` never names."""
    cut = []
    decls = _declarations(name, text)
    events = [d for d in decls if isinstance(d, n.EventDecl) and _names(used, d.name.value)]
    objects = {e.name.value.split(".")[0] for e in events}
    for d in decls:
        if isinstance(d, n.EventDecl) and d not in events:
            cut.append(d.span)
        elif isinstance(d, n.SchemaDecl):
            obj = d.name.value
            if obj not in objects and not _names(used, obj + "."):
                cut.append(d.span)
    return _cut(text, cut)


def _names(text: str, word: str) -> bool:
    """``word`` (a name, a dotted name, or ``object.``) occurs in ``text`` as written."""
    tail = "" if word.endswith(".") else r"(?![a-z0-9_])"
    return re.search(rf"(?<![a-z0-9_.]){re.escape(word)}{tail}", text) is not None


def _cut(text: str, spans: Iterable[n.Span]) -> str:
    """Remove whole lines of each span and the comment lines right above it."""
    lines = text.split("\n")
    drop: set[int] = set()
    for span in spans:
        first = span.line - 1
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        drop.update(range(first, span.end_line))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(kept))
    return out.strip("\n") + "\n"


def policy_path(policies_dir: str, file: str) -> str:
    """A policy file's repository path: ``policies/`` (from escalade.yaml) + name."""
    return (PurePosixPath(policies_dir) / file).as_posix()
