"""Fuzz: a policy set `check --strict` passes is one `build` builds.

Valid policy sets of this repository are mutated (hostile strings, swapped names,
durations and numbers, lines dropped, doubled or swapped, stray characters);
every mutant that checks clean with --strict semantics (no error, no warning)
must build in process, and its runbooks and CODEOWNERS must not carry text a
string smuggled onto a line of its own. Nothing is read beyond this repository.

    python -m tests.fuzz_build --count 20000 --seed 14     # make fuzz
"""

from __future__ import annotations

import argparse
import difflib
import random
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from escalade.compiler import load_policy_set, policy_files
from escalade.compiler.build import build_outputs

REPO = Path(__file__).resolve().parents[1]
BASES = (
    REPO / "policies",
    REPO / "tests" / "cases" / "backends" / "minimal",
    REPO / "tests" / "cases" / "backends" / "shapes",
    REPO / "tests" / "cases" / "broken" / "clean.esc",
)
MARK = "INJECTED"
HOSTILE = (
    "",
    " ",
    f"x\\n# {MARK}",
    f"\\n* @{MARK.lower()}",
    "@example/revops @evil/team\\n* @attacker",
    "@a/b @c/d",
    "@user",
    "x@example.com",
    "<img src=x>",
    "<b>x</b>@example.com",
    "`x` | *y* [l](u)",
    "a\\tb\\rc",
    "\\u0000\\u0007\\u001b[31m",
    "\\u2028\\u2029\\u0085",
    "#",
    "\\\\",
    "é ü 漢字 🚨",
    "{{ ticket.id }}",
    "{{ nope.x }}",
    "x" * 300,
    "- [ ] box\\n---\\n",
    "```\\nfence",
)
DURATIONS = ("0s", "1s", "59s", "1m", "5m", "1h", "1h30m", "2d", "99d")
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
NAME = re.compile(r"\b[a-z_][a-z0-9_]*\b")
DURATION = re.compile(r"\b[0-9]+[smhd](?:[0-9]+[smhd])*\b")
NUMBER = re.compile(r"\b[0-9]+\b")


@dataclass
class Report:
    mutants: int = 0
    clean: int = 0
    built: int = 0
    failures: list[str] = field(default_factory=list)


def _sources(base: Path) -> list[tuple[str, str]]:
    return [(f.relative_to(REPO).as_posix(), f.read_text("utf-8")) for f in policy_files(base)]


def _replace_match(rng: random.Random, text: str, pattern: re.Pattern[str], new: str) -> str:
    found = list(pattern.finditer(text))
    if not found:
        return text
    m = rng.choice(found)
    return text[: m.start()] + new + text[m.end() :]


def mutate(rng: random.Random, text: str, names: list[str]) -> str:
    """One random edit of ``text``."""
    kind = rng.randrange(8)
    lines = text.split("\n")
    if kind <= 1:
        return _replace_match(rng, text, STRING, '"' + rng.choice(HOSTILE) + '"')
    if kind == 2 and names:
        return _replace_match(rng, text, NAME, rng.choice(names))
    if kind == 3:
        return _replace_match(rng, text, DURATION, rng.choice(DURATIONS))
    if kind == 4:
        return _replace_match(rng, text, NUMBER, str(rng.choice([0, 1, 2, 7, 10**9])))
    if kind == 5:
        i = rng.randrange(len(lines))
        return "\n".join(lines[:i] + lines[i + 1 :])
    if kind == 6:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if rng.random() < 0.5:
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice('{}(),"#@\\ \n=') + text[at:]


def _smuggled(files: dict[str, bytes]) -> str | None:
    """A generated file with a line a policy string put there, or None."""
    for path, data in files.items():
        for line in data.decode("utf-8").split("\n"):
            if line.startswith((f"# {MARK}", f"* @{MARK.lower()}", "* @attacker")):
                return f"{path}: {line!r}"
    return None


def _diff(sources: list[tuple[str, str]], mutant: list[tuple[str, str]]) -> str:
    """What the mutation changed, as a unified diff."""
    out = []
    for (path, old), (_, new) in zip(sources, mutant, strict=True):
        if old != new:
            lines = difflib.unified_diff(
                old.split("\n"), new.split("\n"), f"a/{path}", f"b/{path}", lineterm="", n=1
            )
            out.append("\n".join(lines))
    return "\n".join(out) + "\n"


def run(count: int, seed: int, out: Path) -> Report:
    """``count`` mutants from ``seed``; a clean mutant that does not build is a failure."""
    rng = random.Random(seed)
    bases = [(b, _sources(b)) for b in BASES]
    report = Report()
    for number in range(count):
        base, sources = rng.choice(bases)
        names = sorted({w for _, text in sources for w in NAME.findall(text)})
        mutant = list(sources)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(mutant))
            mutant[k] = (mutant[k][0], mutate(rng, mutant[k][1], names))
        report.mutants += 1
        try:
            result = load_policy_set(base, sources=mutant)
            if result.pset is None or result.errors or result.warnings:
                continue
            report.clean += 1
            outputs = build_outputs(result, out, out / "generated")
            smuggled = _smuggled(outputs.files)
            if smuggled is not None:
                raise AssertionError(f"a string reached a line of its own: {smuggled}")
            report.built += 1
        except Exception:
            report.failures.append(
                f"mutant {number} of {base.name}:\n{_diff(sources, mutant)}"
                f"{traceback.format_exc(limit=3)}"
            )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args.count, args.seed, Path("/nonexistent-fuzz-root"))
    for failure in report.failures[:10]:
        print(failure, file=sys.stderr)
    print(
        f"{report.mutants} mutants (seed {args.seed}): {report.clean} clean under --strict, "
        f"{report.built} built, {len(report.failures)} clean but refused by build "
        f"({time.monotonic() - started:.0f}s)"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
