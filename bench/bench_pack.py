"""Pack load and ``escalade event --pack P`` (issue #12, target 2).

Load: ``RulePack.load`` on a realistic pack (``bench/realistic.py``: the compiler's
own output for a small set, its last policy as the template for every generated
one, sealed) of 100 / 1,000 / 5,000 / 10,000 policies, beside the loader as it
was, measured in the same run on the same file: the strict JSON reader,
``jsonschema``'s Draft 2020-12 validator, the cross-references, the content hash
from ``json.dumps``'s canonical bytes, the typed view. Wall and CPU medians.

CLI: ``escalade event E --pack P`` at 1,000 policies, a child process per call
(wall from outside, CPU from ``os.wait4``): P already active (one hash, no
validation); P new (a fresh store: P is validated and activated); and, beside
them, the same event without ``--pack`` (the store's active pack).

Targets: load <= 100 ms at 1,000 and <= 0.5 s at 10,000 policies; the CLI call
with P active <= 0.3 s wall. Lines say "meets" or "BELOW"; nothing asserts, and
this shared machine's wall figures move with its load (CPU moves less).

Usage: python bench/run.py pack   (ESCALADE_BENCH_SIZES=100,1000 for fewer sizes)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from realistic import pack_policies, policy_files, specs

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.runtime.canonical import reference_bytes
from escalade.runtime.pack import PackError, RulePack, canonical_bytes, seal
from escalade.runtime.packrefs import reference_problems
from escalade.runtime.packschema import fast_validator, schema_problems
from escalade.runtime.textio import loads_json

SIZES = tuple(
    int(x) for x in os.environ.get("ESCALADE_BENCH_SIZES", "100,1000,5000,10000").split(",")
)
TARGETS = {1_000: 0.100, 10_000: 0.500}  # seconds, load
CLI_SIZE = 1_000
CLI_TARGET = 0.300  # seconds wall, P already active
CLI_RUNS = 5


def realistic_pack(size: int, base: dict[str, Any]) -> bytes:
    """``size`` realistic policies in the compiler's pack, sealed, as canonical bytes."""
    template = dict(base["policies"][-1], source={"file": "policies/generated.esc", "line": 1})
    pack = dict(base, policies=pack_policies(specs(size), template))
    return canonical_bytes(seal(pack))


def compiled_base() -> dict[str, Any]:
    """The compiler's pack for a small realistic set: its schema, directory, a policy."""
    with tempfile.TemporaryDirectory(prefix="escalade-bench-pack-") as tmp:
        for name, text in policy_files(4).items():
            (Path(tmp) / name).write_text(text)
        result = load_policy_set(tmp)
        if result.pset is None or result.errors:
            raise SystemExit(f"bench pack: the realistic set does not compile ({result.errors})")
        return build_pack(result.pset)


def reference_load(path: Path) -> RulePack:
    """The loader as it was: strict reader, jsonschema, references, json.dumps hash."""
    raw = loads_json(path.read_bytes(), str(path))
    problems = schema_problems(raw) or reference_problems(raw)
    blank = {**raw, "metadata": {**raw["metadata"], "content_hash": "", "commit": None}}
    have = "sha256:" + hashlib.sha256(reference_bytes(blank)).hexdigest()
    if problems or have != raw["metadata"]["content_hash"]:
        raise PackError(str(path), problems or ["hash"])
    return RulePack.trusted(raw)


def timed(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus)


def verdict(seconds: float, limit: float) -> str:
    return "meets" if seconds <= limit else "BELOW"


def load_figures(base: dict[str, Any], folder: Path) -> None:
    print(
        f"{'policies':>8} {'MB':>6} {'load: wall':>11} {'cpu':>7} {'was: wall':>10} {'cpu':>7} "
        f"{'ratio':>7}"
    )
    fast_validator()  # compiled once per process, as a long-running process would
    for size in SIZES:
        path = folder / f"pack-{size}.json"
        path.write_bytes(realistic_pack(size, base))
        assert RulePack.load(path).policies, "the generated pack must load"
        runs = 7 if size <= 1_000 else 3
        wall, cpu = timed(lambda p=path: RulePack.load(p), runs)
        was_wall, was_cpu = timed(lambda p=path: reference_load(p), 3 if size <= 1_000 else 1)
        print(
            f"{size:>8} {path.stat().st_size / 1e6:>6.1f} {wall * 1e3:>9.0f}ms "
            f"{cpu * 1e3:>5.0f}ms {was_wall * 1e3:>8.0f}ms {was_cpu * 1e3:>5.0f}ms "
            f"{was_wall / wall:>6.1f}x",
            flush=True,
        )
        if size in TARGETS:
            limit = TARGETS[size]
            print(
                f"{'':>8} target at {size:,}: load {wall * 1e3:.0f} ms wall ({cpu * 1e3:.0f} ms "
                f"CPU) vs <= {limit * 1e3:.0f} ms {verdict(wall, limit)}",
                flush=True,
            )


def child(args: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Run ``args``: wall seconds, the child's CPU seconds, exit code, output."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), text


def event_file(folder: Path, n: int) -> Path:
    path = folder / f"event-{n}.json"
    data = {"ticket": {"id": f"T{n}", "queue": "q1", "severity": "critical"}}
    path.write_text(
        json.dumps(
            {"id": f"e{n}", "type": "ticket.created", "at": "2026-11-27T10:00:00Z", "data": data}
        )
    )
    return path


def cli_figures(base: dict[str, Any], folder: Path) -> None:
    tool = shutil.which("escalade", path=str(Path(sys.executable).parent)) or "escalade"
    pack = folder / "cli-pack.json"
    pack.write_bytes(realistic_pack(CLI_SIZE, base))
    (folder / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    active_db = folder / "active.db"
    wall, _cpu, code, out = child(
        [tool, "event", str(event_file(folder, 0)), "--db", str(active_db), "--pack", str(pack)],
        folder,
    )
    if code != 0:
        print(f"escalade event failed ({code}):\n{out[-2000:]}")
        return
    rows: dict[str, list[tuple[float, float]]] = {"active": [], "new": [], "none": []}
    for n in range(1, CLI_RUNS + 1):  # interleaved, so a slow spell hits all three
        event = str(event_file(folder, n))
        for kind, extra in (
            ("active", ["--db", str(active_db), "--pack", str(pack)]),
            ("new", ["--db", str(folder / f"new-{n}.db"), "--pack", str(pack)]),
            ("none", ["--db", str(active_db)]),
        ):
            wall, cpu, code, out = child([tool, "event", event, *extra], folder)
            if code != 0:
                print(f"escalade event ({kind}) failed ({code}):\n{out[-2000:]}")
                return
            rows[kind].append((wall, cpu))
    labels = {
        "active": "--pack P, P active (one hash)",
        "new": "--pack P, P new (validate, activate)",
        "none": "no --pack (the store's active pack)",
    }
    print(f"\nescalade event at {CLI_SIZE:,} policies, median of {CLI_RUNS} child processes:")
    medians = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in rows.items()
    }
    for kind, (wall, cpu) in medians.items():
        print(f"  {labels[kind]:<40} {wall:6.2f}s wall {cpu:6.2f}s CPU", flush=True)
    active, new = medians["active"], medians["new"]
    print(
        f"  P active vs P new: {new[0] / active[0]:.1f}x wall; target P active <= "
        f"{CLI_TARGET:.1f}s wall: {active[0]:.2f}s {verdict(active[0], CLI_TARGET)}",
        flush=True,
    )


def main() -> None:
    base = compiled_base()
    with tempfile.TemporaryDirectory(prefix="escalade-bench-pack-") as tmp:
        load_figures(base, Path(tmp))
        cli_figures(base, Path(tmp))


if __name__ == "__main__":
    main()
