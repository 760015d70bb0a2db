"""``escalade check`` as a user runs it: one process per check, on realistic policy sets.

Sets come from ``realistic.py`` (100 / 1,000 / 5,000 / 10,000 policies, 50 per
file; ``ESCALADE_BENCH_SIZES=100,1000`` picks others). Each check is a new
``escalade check`` process, timed from outside (wall and CPU), because the parse
cache is meant to help the *next* process. Per size, in the same run:

- baseline: ``check --no-cache`` (every file parsed, nothing kept), and Lark
  alone parsing the same files (what parsing costs before any tree or check);
- cold: the first check, with an empty cache directory (parses and writes);
- warm: a second process, nothing changed (reads every parse back);
- edit: one file edited (a condition: the analysis runs on the new set), then checked.

Then the growth from 5,000 to 10,000 policies, and one 800 KB file with about
40,000 findings (suppression comments included), as text and as JSON, beside
Lark parsing that file. Target lines say "meets" or "BELOW"; nothing is
asserted (the machine is shared: compare figures within one run).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from realistic import policy_files

from escalade.compiler import parse as parse_module

SIZES = tuple(
    int(x) for x in os.environ.get("ESCALADE_BENCH_SIZES", "100,1000,5000,10000").split(",")
)
ESCALADE = str(Path(sys.executable).with_name("escalade"))
EDIT_TARGET = 2.0  # seconds: re-check after editing one file of 5,000 policies
GROWTH_TARGET = 2.2  # 10,000 policies at most this many times the 5,000 time
FINDINGS_TARGET = 3.0  # seconds: an 800 KB file with ~40,000 findings


def run_check(args: list[str], cache: Path, out: list[bytes] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``escalade check`` process; its output goes to ``out``."""
    env = {**os.environ, "ESCALADE_CACHE_DIR": str(cache)}
    env.pop("ESCALADE_CACHE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [ESCALADE, "check", *args],
        check=False,
        env=env,
        stdout=subprocess.PIPE if out is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if out is not None:
        out.append(done.stdout)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 0 clean, 1 findings; anything else is no figure
        print(f"  !! escalade check {' '.join(args)} exited {done.returncode}: {done.stderr!r}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def lark_alone(texts: list[str]) -> float:
    lark = parse_module.parser()
    start = time.perf_counter()
    for text in texts:
        lark.parse(text)
    return time.perf_counter() - start


def shown(figure: tuple[float, float]) -> str:
    return f"{figure[0]:6.2f}s ({figure[1]:5.2f}s CPU)"


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "BELOW"


def write_set(count: int, where: Path) -> list[Path]:
    where.mkdir(parents=True)
    paths = []
    for name, text in policy_files(count).items():
        (where / name).write_text(text, "utf-8")
        paths.append(where / name)
    return paths


def edit_one_condition(paths: list[Path]) -> None:
    """Narrow one policy's condition: a real edit, the whole-set analysis runs again."""
    target = paths[len(paths) // 2]
    text = target.read_text("utf-8")
    target.write_text(text.replace("  when ", "  when ticket.status != closed and ", 1), "utf-8")


def measure_size(count: int, work: Path) -> dict[str, tuple[float, float]]:
    paths = write_set(count, work / f"set{count}")
    directory, cache = str(work / f"set{count}"), work / f"cache{count}"
    found = {
        "no-cache": run_check(["--no-cache", directory], cache),
        "cold": run_check([directory], cache),
        "warm": run_check([directory], cache),
    }
    edit_one_condition(paths)
    found["edit"] = run_check([directory], cache)
    lark = lark_alone([p.read_text("utf-8") for p in paths])
    no_cache = found["no-cache"][0]
    print(
        f"{count:>6} policies  baseline: lark parse only {lark:6.2f}s, "
        f"check --no-cache {shown(found['no-cache'])}\n"
        f"{'':>16}cold {shown(found['cold'])} x{found['cold'][0] / no_cache:4.2f}   "
        f"warm {shown(found['warm'])} x{found['warm'][0] / no_cache:4.2f}   "
        f"edit one file {shown(found['edit'])} x{found['edit'][0] / no_cache:4.2f}"
        + (
            f"   (target <= {EDIT_TARGET:.0f}s: {verdict(found['edit'][0], EDIT_TARGET)})"
            if count == 5000
            else ""
        ),
        flush=True,
    )
    return found


HEADER = """\
event ticket.created
schema ticket {
  id: text
  title: text
  severity: enum(low, medium, high, critical)
}
person lead { email "lead@example.com" }
"""


def findings_file(size: int) -> str:
    """About ``size`` bytes of policies with seven findings each (one in ten suppresses
    E501 with a comment): unknown owner, no backup, no triage, no approvers, a primary
    ack longer than the SLA, a placeholder on an unknown field, no trigger."""
    out, total, i = [HEADER], len(HEADER), 0
    while total < size:
        ignore = "  # escalade: ignore[E501] generated, no approvers yet\n" if i % 10 == 0 else ""
        text = (
            f"{ignore}policy p{i:05d} {{\n"
            f"  owner primary nobody_{i % 50} ack 5m\n"
            "  sla acknowledge 1m\n"
            "  step page lead\n"
            f'  step notify lead "{{{{ ticket.nope_{i % 7} }}}}"\n'
            "}\n"
        )
        out.append(text)
        total += len(text)
        i += 1
    return "".join(out)


def measure_findings(work: Path) -> None:
    text = findings_file(800_000)
    file = work / "findings.esc"
    file.write_text(text, "utf-8")
    cache = work / "cache-findings"
    lark = lark_alone([text])
    output: list[bytes] = []
    as_json = run_check(["--no-cache", "--format", "json", str(file)], cache, output)
    json_warm = [run_check(["--format", "json", str(file)], cache) for _ in range(2)][-1]
    as_text = run_check(["--no-cache", str(file)], cache)
    summary = json.loads(output[0] or b"{}").get("summary", {})
    count = summary.get("errors", 0) + summary.get("warnings", 0)
    print(
        f"800 KB file, {count:,} findings  baseline: lark parse only {lark:5.2f}s\n"
        f"{'':>16}check --format json {shown(as_json)} x{as_json[0] / lark:4.1f} of lark "
        f"(target <= {FINDINGS_TARGET:.0f}s: {verdict(as_json[0], FINDINGS_TARGET)}), "
        f"warm {shown(json_warm)}\n"
        f"{'':>16}check (text) {shown(as_text)} x{as_text[0] / lark:4.1f} of lark "
        f"(target <= {FINDINGS_TARGET:.0f}s: {verdict(as_text[0], FINDINGS_TARGET)})",
        flush=True,
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="escalade-bench-") as tmp:
        work = Path(tmp)
        figures = {count: measure_size(count, work) for count in SIZES}
        if 5000 in figures and 10000 in figures:
            for label in ("no-cache", "warm"):
                ratio = figures[10000][label][0] / figures[5000][label][0]
                print(
                    f"10,000 / 5,000 policies ({label}): x{ratio:4.2f} for x2 "
                    f"(target <= x{GROWTH_TARGET}: {verdict(ratio, GROWTH_TARGET)})"
                )
        measure_findings(work)


if __name__ == "__main__":
    main()
