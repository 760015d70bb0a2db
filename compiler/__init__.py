"""Escalade compiler: the front door that strings the stages together.

    result = load_policy_set("policies/")
    result.errors, result.diagnostics, result.pset

Stages, one module each: ``parse`` (text → syntax tree), ``passes.lower``
(syntax tree → ``model.PolicySet``), ``passes.checks`` (per-policy checks),
``passes.analysis`` (whole-set analysis), ``backends`` (pack, runbooks,
CODEOWNERS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector, Diagnostic, count
from escalade.compiler.model import PolicySet
from escalade.compiler.parse import decode_source, parse_source, with_recursion_headroom
from escalade.compiler.parse_cache import ParseCache
from escalade.compiler.passes.analysis import ANALYSIS_PASSES, answers_fingerprint, remembering
from escalade.compiler.passes.checks import FRONTEND_PASSES, all_conditions
from escalade.compiler.passes.lower import lower

__all__ = ["CheckResult", "display_path", "load_policy_set", "policy_files"]

MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class CheckResult:
    """What checking a policy set produced: the set (when one could be built) and findings."""

    pset: PolicySet | None
    diags: Collector
    files: list[str] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.diags.diagnostics()

    @property
    def errors(self) -> int:
        return count(self.diagnostics)[0]

    @property
    def warnings(self) -> int:
        return count(self.diagnostics)[1]


def display_path(path: Path) -> str:
    """A path as shown in diagnostics: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def policy_files(path: Path) -> list[Path]:
    """Every ``*.esc`` file of a set, sorted, without ``*_test.esc`` policy tests."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*.esc")
        if p.is_file() and not p.name.endswith("_test.esc") and ".git" not in p.parts
    )


def read_sources(path: Path, diags: Collector) -> list[tuple[str, str]]:
    """(display path, text) of every readable policy file; unreadable ones become E001."""
    out: list[tuple[str, str]] = []
    for file in policy_files(path):
        shown = display_path(file)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                diags.report(
                    "E001",
                    n.Span(shown, 1, 1, 1, 1),
                    f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
                )
                continue
            data = file.read_bytes()
        except OSError as exc:
            diags.report("E001", n.Span(shown, 1, 1, 1, 1), f"cannot read file: {exc.strerror}")
            continue
        text = decode_source(shown, data, diags)
        if text is not None:
            out.append((shown, text))
    return out


def load_policy_set(
    path: str | os.PathLike[str],
    *,
    version: str = "0.0.0",
    sources: list[tuple[str, str]] | None = None,
    analyze: bool = True,
    cache: ParseCache | None = None,
) -> CheckResult:
    """Parse, lower and check every policy file under ``path``.

    ``sources`` gives (path, text) pairs directly (e.g. files read from a git
    revision) instead of reading ``path``. ``cache`` keeps parse results and the
    answers of the analysis's costly questions on disk for the next process.
    Never raises on bad input.
    """
    diags = Collector()
    root = Path(path)
    if sources is None:
        sources = read_sources(root, diags)
    files: list[n.SourceFile] = []
    for shown, text in sources:
        tree = parse_source(shown, text, diags, cache)
        if tree is not None:
            files.append(tree)
        else:
            diags.sources[shown] = text
    if cache is not None:
        cache.prune()
    pset = lower(display_path(root), files, diags, version)
    answers = None
    if cache is not None and analyze:
        answers = cache.answers(str(root.resolve()), answers_fingerprint())

    def run() -> PolicySet:
        nonlocal pset
        for check in FRONTEND_PASSES:
            check(pset, diags)
        bad = frozenset(c.span for c in all_conditions(pset) if diags.errors_at([c.span]))
        pset = replace(pset, bad_conditions=bad)
        if analyze:
            with remembering(answers):
                for analysis in ANALYSIS_PASSES:
                    analysis(pset, diags)
        return pset

    pset = with_recursion_headroom(run)
    if answers is not None:
        answers.save()
    return CheckResult(pset, diags, [s for s, _ in sources])
