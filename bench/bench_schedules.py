"""On-call schedules and business calendars (issue #13), each beside a baseline of the same run.

1. ``Schedule.segments(start, end)`` over one year, exact from boundaries, for a
   follow-the-sun schedule (three layers in Europe/Berlin, America/New_York and
   Asia/Kolkata, weekly shifts, daily restriction windows, six overrides) and for a
   layer of 1-hour shifts; baseline: the minute-by-minute reference, ``on_call`` at
   every 15th minute of 30 days (from 2027-03-08: both DST changes, an override), its
   mean per call times 525,600 minutes (a year at every minute). Every sampled answer,
   and the answer at both ends of every segment, is checked equal to the segments'.
2. ``Calendar.due`` per call (random minute starts over a year, SLAs of 30 min to
   3 days of open time) beside a brute-force due stepping minute by minute through
   local open hours (answers checked equal); ``Calendar.longest(seconds, year)``
   beside a scan of every minute of the year with the exact due (checked equal) and
   the brute-force due extrapolated to every minute of the year.
3. The compile-time coverage proof (``check_reachability``) at scale: N teams (2-3
   layers in different zones, restrictions) and N*10 of ``realistic.py``'s policies
   with those teams as primary and backup, N = 10 and 100; ``escalade check
   --no-cache`` in process (CliRunner) with ``ANALYSIS_PASSES`` as shipped and with
   the pass removed, and the pass's own time inside the full run.
4. The run-time gap check of ``escalade absent``/``override`` (``roster.gaps_left``)
   on the bundled pack (generated/rulepack.json), windows of 1 day, 30 days and 1 year,
   on an empty store and on one holding a year of absences and overrides; baseline:
   the schedule's bare ``gaps`` call over the same window (what the check is built
   on), and the same check on the empty store. ``Engine.absent(..., refuse_gaps=True)``
   end to end on the busy store (refused: nothing is written).

Timings are the least of a few runs (the machine is shared); nothing asserts a timing.
Usage: python bench/run.py schedules
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realistic

from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.localtime import Window
from escalade.runtime.schedule import Layer, Override, Schedule, plan_horizon

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
DAY, WEEK = 86400, 7 * 86400
YEAR_START = parse_time("2027-01-04T00:00:00Z")  # a Monday, after every layer's start
YEAR = 365 * DAY
MINUTES_PER_YEAR = YEAR // 60
EVERY = 15  # the reference samples every 15th minute ...
SAMPLE_DAYS = 30  # ... of 30 days from here (both DST changes of March 2027, an override):
SAMPLE_FROM = parse_time("2027-03-08T00:00:00Z")
ALL_DAYS = tuple(range(7))
TEAM_SIZES = (10, 100)


def best(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    """The least wall time of ``runs`` calls, and the last answer."""
    least, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        least = min(least, time.perf_counter() - t0)
    assert out is not None
    return least, out


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


# --- 1. segments ---------------------------------------------------------------------------


def at(text: str) -> int:
    return parse_time(text)


def follow_the_sun() -> Schedule:
    """Kolkata, Berlin and New York each cover their working day (weekly hand-offs at
    09:00 local), overlapping; holiday and swap overrides on top."""
    apac = Layer(
        "apac", ("asha", "ravi", "meera", "dev"), WEEK, 9 * 60, "Asia/Kolkata", "2026-01-05",
        (Window(ALL_DAYS, 6 * 60, 16 * 60),),
    )  # fmt: skip
    europe = Layer(
        "europe", ("lena", "marc", "jonas"), WEEK, 9 * 60, "Europe/Berlin", "2026-01-05",
        (Window((0, 1, 2, 3, 4), 8 * 60, 19 * 60), Window((5, 6), 10 * 60, 16 * 60)),
    )  # fmt: skip
    americas = Layer(
        "americas", ("nora", "omar"), WEEK, 9 * 60, "America/New_York", "2026-01-05",
        (Window(ALL_DAYS, 11 * 60, 2 * 60),),
    )  # fmt: skip
    overrides = (
        Override("omar", at("2027-12-24T18:00:00Z"), at("2027-12-27T06:00:00Z"), "nora"),
        Override("dev", at("2027-03-19T00:00:00Z"), at("2027-03-22T00:00:00Z"), "meera"),
        Override("jonas", at("2027-04-12T00:00:00Z"), at("2027-04-19T00:00:00Z"), "lena"),
        Override("ravi", at("2027-08-02T00:00:00Z"), at("2027-08-16T00:00:00Z"), "asha"),
        Override("lena", at("2027-06-01T07:00:00Z"), at("2027-06-01T19:00:00Z")),
        Override("marc", at("2027-10-31T00:30:00Z"), at("2027-10-31T03:30:00Z")),
    )
    return Schedule((apac, europe, americas), overrides)


def hourly() -> Schedule:
    """One layer of 1-hour shifts in Berlin (every hand-off a boundary, DST included)."""
    members = ("ann", "ben", "cat", "dan", "eve")
    return Schedule((Layer("hourly", members, 3600, 0, "Europe/Berlin", "2026-01-05"),))


def bench_segments(label: str, schedule: Schedule) -> None:
    lo, hi = YEAR_START, YEAR_START + YEAR
    spent, segs = best(lambda: schedule.segments(lo, hi), 3)
    assert segs[0].start == lo and segs[-1].end == hi
    # the reference: on_call at every 15th minute of 30 days, each checked against segments
    probes = range(SAMPLE_FROM, SAMPLE_FROM + SAMPLE_DAYS * DAY, EVERY * 60)
    t0 = time.perf_counter()
    answers = [schedule.on_call(t) for t in probes]
    ref = time.perf_counter() - t0
    i = 0
    for t, slot in zip(probes, answers, strict=True):
        while segs[i].end <= t:
            i += 1
        assert (slot.person if slot else None) == segs[i].person, (label, t)
    for seg in segs:  # and at both ends of every segment of the year
        for t in (seg.start, seg.end - 1):
            slot = schedule.on_call(t)
            assert (slot.person if slot else None) == seg.person, (label, t)
    per_call = ref / len(probes)
    year_by_minute = per_call * MINUTES_PER_YEAR
    print(
        f"  {label}: segments(1 year) {ms(spent)} ({len(segs):,} segments); reference on_call "
        f"{us(per_call)}/call over {len(probes):,} probes = {ms(ref)} for 30 days every "
        f"{EVERY} min -> {year_by_minute:,.1f} s for a year every minute "
        f"({year_by_minute / spent:,.0f}x segments); answers equal at every probe and at both ends of every segment"
    )


# --- 2. calendars --------------------------------------------------------------------------

HOLIDAYS = (
    "2027-01-01", "2027-03-26", "2027-03-29", "2027-05-01", "2027-05-06", "2027-05-17",
    "2027-10-03", "2027-12-24", "2027-12-25", "2027-12-26", "2027-12-31", "2028-01-01",
)  # fmt: skip
OFFICE = Calendar("office", "Europe/Berlin", (Window((0, 1, 2, 3, 4), 9 * 60, 18 * 60),), HOLIDAYS)
SLAS = (30 * 60, 4 * 3600, 24 * 3600, 3 * DAY)  # seconds of open time


def brute_due(cal: Calendar, start: int, seconds: int) -> int:
    """Step minute by minute from ``start`` (a whole minute), counting open minutes
    (local weekday, time of day and date read for each minute; windows within a day)."""
    tz = ZoneInfo(cal.zone)
    closed = {date.fromisoformat(d) for d in cal.holidays}
    need, t = seconds // 60, start
    while True:
        local = datetime.fromtimestamp(t, tz)
        minute = local.hour * 60 + local.minute
        is_open = local.date() not in closed and any(
            local.weekday() in w.days and w.start <= minute < w.end for w in cal.windows
        )
        t += 60
        if is_open:
            need -= 1
            if need == 0:
                return t


def words(seconds: int) -> str:
    for unit, size in (("d", DAY), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def dues_of(cases: list[tuple[int, int]]) -> list[int]:
    return [OFFICE.due(start, seconds) for start, seconds in cases]


def bench_calendar() -> None:
    rng = random.Random(13)
    lo, hi = YEAR_START, YEAR_START + YEAR
    starts = [lo + rng.randrange(YEAR // 60) * 60 for _ in range(200)]
    cases = [(s, SLAS[i % len(SLAS)]) for i, s in enumerate(starts)]
    spent, dues = best(partial(dues_of, cases), 3)
    few = cases[:40]
    t0 = time.perf_counter()
    brute = [brute_due(OFFICE, s, n) for s, n in few]
    brute_s = time.perf_counter() - t0
    assert brute == dues[: len(few)]
    per, per_brute = spent / len(cases), brute_s / len(few)
    by_sla = []
    for n in SLAS:
        some = [c for c in cases if c[1] == n]
        took, _ = best(partial(dues_of, some), 3)
        by_sla.append(f"{words(n)} {us(took / len(some))}")
    print(
        f"  office calendar (Berlin, Mon-Fri 09:00-18:00, {len(HOLIDAYS)} holidays), SLAs "
        f"30m/4h/24h/3d of open time:\n    due: {us(per)}/call ({len(cases)} calls; by SLA "
        f"{', '.join(by_sla)}); brute force by minutes {us(per_brute)}/call ({len(few)} "
        f"calls, equal answers; {per_brute / per:,.0f}x)"
    )
    for seconds in (4 * 3600, 24 * 3600):
        spent, longest = best(partial(OFFICE.longest, seconds, (lo, hi)), 3)
        line = OFFICE.timeline(lo, hi, seconds)
        t0 = time.perf_counter()
        scan = max(line.due(s, seconds) - s for s in range(lo, hi, 60))
        scan_s = time.perf_counter() - t0
        assert scan == longest, (seconds, scan, longest)
        probes = [lo + rng.randrange(YEAR // 60) * 60 for _ in range(20)]
        t0 = time.perf_counter()
        for s in probes:
            brute_due(OFFICE, s, seconds)
        brute_year = (time.perf_counter() - t0) / len(probes) * MINUTES_PER_YEAR
        print(
            f"    longest({seconds // 3600}h of open time, 1 year): {ms(spent)} -> "
            f"{longest / 3600:.1f} h wall; scan of every start minute with the exact due "
            f"{ms(scan_s)} (equal, {scan_s / spent:,.0f}x); brute-force due at every minute "
            f"~{brute_year:,.0f} s (20 calls extrapolated, {brute_year / spent:,.0f}x)"
        )


# --- 3. the coverage proof at scale -------------------------------------------------------

ZONE_SETS = (
    ("Europe/Berlin", "America/New_York", "Asia/Kolkata"),
    ("Europe/London", "America/Los_Angeles"),
    ("Australia/Sydney", "Europe/Paris", "America/Chicago"),
    ("Asia/Tokyo", "Europe/Madrid"),
    ("America/Sao_Paulo", "Asia/Singapore", "Europe/Dublin"),
)
SHIFTS = ("1w", "1w", "1d", "12h")


def team_text(k: int) -> tuple[str, list[str]]:
    """Team ``team_k``: a layer per zone of one of ``ZONE_SETS``, each restricted to its
    working hours, overlapping; every tenth team is weekdays only (weekend gaps) and
    every tenth other one leaves an hour while only one of its zones is on summer time:
    W209 for their levels."""
    zones = ZONE_SETS[k % len(ZONE_SETS)]
    people: list[str] = []
    layers = []
    days = "mon-fri" if k % 10 == 0 else "mon-sun"
    span = "06:00-21:00" if len(zones) == 3 else "06:00-23:00"
    if k % 10 == 1:  # London and Los Angeles: an hour uncovered while only one is on DST
        span = "06:00-22:00"
    for j, zone in enumerate(zones):
        names = [f"t{k}_{j}_{m}" for m in range(2 + (k + j) % 3)]
        people += names
        layers.append(
            f"  layer l{j} {{\n    members {', '.join(names)}\n    shift {SHIFTS[(k + j) % 4]}\n"
            f'    handoff 09:00\n    zone "{zone}"\n    start "2026-01-05"\n'
            f"    restrict {days} {span}\n  }}\n"
        )
    return f"team team_{k} {{\n  members {', '.join(people)}\n{''.join(layers)}}}\n", people


def reach_files(teams: int) -> dict[str, str]:
    files = realistic.policy_files(teams * 10)
    decls = []
    for k in range(teams):
        text, people = team_text(k)
        decls += [f'person {p} {{ email "{p}@example.com" }}' for p in people]
        decls.append(text)
    files["teams.esc"] = "\n".join(decls) + "\n"
    i = 0
    for name in sorted(files):
        if not name.startswith("policies_"):
            continue
        out = []
        for block in re.split(r"^policy ", files[name], flags=re.M)[1:]:
            primary = block.replace("owner primary oncall_a", f"owner primary team_{i % teams}")
            both = primary.replace("owner backup lead_c", f"owner backup team_{(i + 7) % teams}")
            out.append("policy " + both)
            i += 1
        files[name] = "".join(out)
    assert i == teams * 10
    return files


def run_check(path: Path) -> tuple[float, int, str]:
    """``escalade check --no-cache PATH`` in process (CliRunner), as a fresh process would
    run it: the in-process parse cache emptied first (the grammar is built once before).
    (seconds, exit code, output)."""
    import gc

    from click.testing import CliRunner

    from escalade.compiler import parse
    from escalade.compiler.cli.check import check_command

    parse.parser()
    parse._PARSE_CACHE.clear()
    thresholds = gc.get_threshold()
    t0 = time.perf_counter()
    result = CliRunner().invoke(check_command, [str(path), "--no-cache"])
    spent = time.perf_counter() - t0
    gc.set_threshold(*thresholds)  # check raises the thresholds for its own process
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return spent, result.exit_code, result.output


def process_check(path: Path) -> float:
    """Wall seconds of ``escalade check --no-cache PATH`` as its own process (as shipped)."""
    exe = Path(sys.executable).with_name("escalade")
    t0 = time.perf_counter()
    command = [str(exe), "check", "--no-cache", str(path)]
    done = subprocess.run(command, capture_output=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: findings; anything else: it broke
    return time.perf_counter() - t0


def bench_reachability(directory: Path) -> None:
    import escalade.compiler as compiler
    from escalade.compiler.passes import reachability
    from escalade.compiler.passes.analysis import ANALYSIS_PASSES as shipped

    assert reachability.check_reachability in shipped
    without = tuple(p for p in shipped if p is not reachability.check_reachability)
    inside: list[float] = []

    def timed(pset: Any, diags: Any) -> None:
        t0 = time.perf_counter()
        reachability.check_reachability(pset, diags)
        inside.append(time.perf_counter() - t0)

    with_timer = tuple(timed if p is reachability.check_reachability else p for p in shipped)
    for teams in TEAM_SIZES:
        root = directory / f"reach-{teams}"
        root.mkdir()
        for name, text in reach_files(teams).items():
            (root / name).write_text(text)
        runs = 2 if teams <= 10 else 1
        full = bare = float("inf")
        own: list[float] = []
        codes = set()
        try:
            for _ in range(runs):  # alternate, so both see the same machine
                setattr(compiler, "ANALYSIS_PASSES", with_timer)  # noqa: B010
                spent, code, out = run_check(root)
                full, own = min(full, spent), [*own, inside[-1]]
                codes.add(code)
                setattr(compiler, "ANALYSIS_PASSES", without)  # noqa: B010
                bare = min(bare, run_check(root)[0])
        finally:
            setattr(compiler, "ANALYSIS_PASSES", shipped)  # noqa: B010
        from escalade.compiler import load_policy_set

        pset = load_policy_set(root, analyze=False).pset
        assert pset is not None
        sched = [t.schedule for t in pset.teams.values() if t.schedule is not None]
        h = plan_horizon(sched, [pset.calendars[c] for c in pset.calendars])
        findings = {c: out.count(f"[{c}]") for c in ("E208", "W209")}
        t0 = time.perf_counter()
        hole = [reachability.team_gaps(pset, t, h.start, h.end) for t in pset.teams.values()]
        gaps_s = time.perf_counter() - t0
        alone = process_check(root)
        pass_s = min(own)
        print(
            f"  {teams} teams, {teams * 10:,} policies (horizon {(h.end - h.start) // WEEK} "
            f"weeks, exit {sorted(codes)}, {findings}):\n    check --no-cache {ms(full)} with "
            f"the pass, {ms(bare)} without (difference {ms(full - bare)}, "
            f"{(full - bare) / full:.0%}); the pass itself {ms(pass_s)} = {pass_s / full:.0%} "
            f"of check (best of {runs}, in process, parse cache emptied), of which the "
            f"teams' gaps over the horizon {ms(gaps_s)} ({sum(1 for g in hole if g)} of "
            f"{len(hole)} teams with gaps), the rest mostly witnesses and wording;\n"
            f"    as its own process (imports, grammar; pass as shipped) {ms(alone)}"
        )


# --- 4. the run-time gap check ------------------------------------------------------------

WINDOWS = (("1 day", DAY), ("30 days", 30 * DAY), ("1 year", YEAR))


def busy(store: Any, start: int) -> None:
    """A year of a support organisation's roster: each person away a week every two
    months (staggered), marc away the first three days, overrides every few weeks."""
    people = ("lena", "marc", "nora", "omar", "alice", "bob", "ines", "jon", "carol", "dana")
    for i, person in enumerate(people):
        for month in range(0, 12, 2):
            since = start + (month * 30 + 3 * i + 5) * DAY
            store.set_absence(person, since + WEEK, since)
    store.set_absence("marc", start + 3 * DAY, start)
    for n in range(20):
        since = start + (n * 18 + 2) * DAY + 13 * 3600
        who, instead = ("omar", "nora") if n % 2 else ("marc", "lena")
        store.add_override("support_oncall", who, since, since + DAY, instead, "swap", "bench")


def bench_gap_check(directory: Path) -> None:
    from escalade.runtime.engine import Engine, Refused, roster
    from escalade.runtime.store.sqlite import SQLiteStore

    body = json.loads((ROOT / "generated" / "rulepack.json").read_text())
    now = parse_time("2026-11-27T10:00:00Z")
    start = parse_time("2026-12-07T00:00:00Z")  # a Monday
    engines = {}
    for state in ("empty", "busy"):
        store = SQLiteStore(str(directory / f"{state}.db"))
        engine = Engine(store, VirtualClock(now))
        engine.activate(body, now)
        if state == "busy":
            with store.transaction():
                busy(store, start)
        engines[state] = engine
    pack = engines["empty"].active()
    support = pack.teams["support_oncall"].schedule
    assert support is not None
    stored = engines["busy"].store
    print(
        "  bundled pack, support_oncall (2 layers, Berlin and New York); busy store: "
        f"{sum(len(w) for w in stored.absence_windows(0, 2**40).values())} absences, "
        f"{len(stored.overrides(0, 2**40))} overrides"
    )
    busy_engine = engines["busy"]
    for words, length in WINDOWS:
        end = start + length
        bare, _ = best(partial(support.gaps, start, end), 5)
        absent = roster.Change(start, end, absent="lena")
        o = Override("omar", start, end, "nora", "store")
        override = roster.Change(start, end, team="support_oncall", override=o)
        row = []
        for state, engine in engines.items():
            for what, change in (("absent lena", absent), ("override omar for nora", override)):
                spent, gaps = best(partial(roster.gaps_left, engine.store, pack, change), 5)
                row.append(
                    f"{what}, {state} store {ms(spent)} ({spent / bare:.1f}x bare, "
                    f"{len(gaps)} gap(s))"
                )

        def refused(e: int = end) -> bool:
            try:
                busy_engine.absent("lena", e, now, by="bench", since=start, refuse_gaps=True)
            except Refused:
                return True
            return False

        cli, was = best(refused, 3)
        assert was, "the busy store's absence should be refused (nothing written)"
        print(f"  window {words}: bare support_oncall schedule.gaps {ms(bare)}; gaps_left:")
        print("".join(f"    {r}\n" for r in row), end="")
        print(f"    Engine.absent(lena, refuse_gaps=True), busy store, refused: {ms(cli)}")


def main() -> None:
    print("1. Schedule.segments over one year (2027) vs the minute-by-minute reference")
    bench_segments("follow-the-sun (3 layers, weekly, restricted, 6 overrides)", follow_the_sun())
    bench_segments("1-hour shifts (1 layer, Berlin)", hourly())
    print("2. Calendar.due and Calendar.longest vs brute force by minutes")
    bench_calendar()
    with tempfile.TemporaryDirectory() as tmp:
        print("3. the coverage proof (check_reachability) in escalade check --no-cache")
        bench_reachability(Path(tmp))
        print("4. the gap check of escalade absent/override (roster.gaps_left)")
        bench_gap_check(Path(tmp))


if __name__ == "__main__":
    main()
