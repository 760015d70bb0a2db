"""``escalade build`` at scale: 100 / 1,000 / 5,000 / 10,000 realistic policies.

Each size is written to a temporary repository (``bench/realistic.py``: the
policies, an ``escalade.yaml``) and built by the real command in a child
process: wall time and that child's own peak RSS (``os.wait4``).

Baseline in the same run: ``escalade check`` on the same set, in a child of its
own, run after the build (so a parse cache, if any, is cold for the build), so
the line shows what building (pack, validation, runbooks, CODEOWNERS, writing)
costs on top of checking; check also prints its findings (about one W304 per
policy in these sets), which build does not. Also per size: the runbooks' total bytes,
the largest runbook (it must not grow with the set: each page names at most a
few competing policies and counts the rest) and the index (it lists every
policy, so it grows). Growth compares each size with the one before it.

Target (issue #12): 5,000 policies build in at most 15 s and 300 MB; the
figure says "meets" or "BELOW". Nothing here asserts a timing.

Usage: python bench/run.py build   (ESCALADE_BENCH_SIZES picks other sizes; 10,000
policies take about a minute for check and as much again for build)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).parent))

from realistic import policy_files

SIZES = tuple(
    int(x) for x in os.environ.get("ESCALADE_BENCH_SIZES", "100,1000,5000,10000").split(",")
)
TARGET_SIZE = 5000
TARGET_SECONDS = 15.0
TARGET_MB = 300.0
CONFIG = "version: 1.0.0\npolicies: policies/\noutput: generated/\n"


class Run(NamedTuple):
    seconds: float
    peak_mb: float
    code: int
    output: str


def escalade() -> str:
    """The ``escalade`` script of the interpreter running the bench."""
    beside = Path(sys.executable).parent / "escalade"
    found = str(beside) if beside.exists() else shutil.which("escalade")
    if found is None:
        raise SystemExit("bench build: no `escalade` command (run `make install`)")
    return found


def run(args: list[str], cwd: Path) -> Run:
    """Run ``args`` in ``cwd``: wall time, and the peak RSS of that child alone."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return Run(seconds, usage.ru_maxrss / 1024, child.returncode, text)  # ru_maxrss: KiB


def write_set(size: int, root: Path) -> None:
    (root / "policies").mkdir(parents=True)
    (root / "escalade.yaml").write_text(CONFIG)
    for name, text in policy_files(size).items():
        (root / "policies" / name).write_text(text)


def page_sizes(folder: Path) -> tuple[int, int, int]:
    """(all runbooks' bytes, the largest policy page, the index page)."""
    sizes = {p.name: p.stat().st_size for p in folder.glob("*.md")}
    index = sizes.pop("README.md", 0)
    return sum(sizes.values()) + index, max(sizes.values(), default=0), index


def verdict(value: float, limit: float) -> str:
    return "meets" if value <= limit else "BELOW"


def main() -> None:
    tool = escalade()
    print(
        f"{'policies':>8} {'check (baseline)':>17} {'build':>16} {'build/check':>11} "
        f"{'build - check':>13} {'growth of build':>17}  runbooks: total, largest page, index"
    )
    previous: tuple[int, float] | None = None
    for size in SIZES:
        with tempfile.TemporaryDirectory(prefix=f"escalade-bench-build-{size}-") as tmp:
            root = Path(tmp)
            write_set(size, root)
            build = run([tool, "build"], root)
            check = run([tool, "check", "policies"], root)
            if build.code != 0:
                print(f"{size:>8} build failed ({build.code}):\n{build.output[-2000:]}")
                continue
            total, largest, index = page_sizes(root / "generated" / "runbooks")
        growth = ""
        if previous is not None:
            n0, t0 = previous
            growth = f"x{build.seconds / t0:.1f} for x{size / n0:.0f}"
        previous = (size, build.seconds)
        print(
            f"{size:>8} {check.seconds:>7.2f}s {check.peak_mb:>6.0f} MB "
            f"{build.seconds:>6.2f}s {build.peak_mb:>6.0f} MB "
            f"{build.seconds / check.seconds:>10.2f}x {build.seconds - check.seconds:>12.2f}s "
            f"{growth:>17}  {total / 1e6:7.2f} MB, {largest / 1e3:5.1f} KB, {index / 1e3:7.1f} KB",
            flush=True,
        )
        if size == TARGET_SIZE:
            print(
                f"{'':>8} target at {TARGET_SIZE:,}: build {build.seconds:.1f}s vs "
                f"<= {TARGET_SECONDS:.0f}s {verdict(build.seconds, TARGET_SECONDS)}; "
                f"peak RSS {build.peak_mb:.0f} MB vs <= {TARGET_MB:.0f} MB "
                f"{verdict(build.peak_mb, TARGET_MB)} (check alone: {check.seconds:.1f}s, "
                f"{check.peak_mb:.0f} MB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
