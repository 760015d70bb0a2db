"""The parse cache on disk: a second process reads the trees back, with the same findings.

It never changes an answer and never fails a check: damaged, foreign or
unreadable entries are misses, an unwritable directory is left alone, and an
entry can only rebuild node and diagnostic classes.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import algebra, load_policy_set
from escalade.compiler import parse_cache as pc
from escalade.compiler.cli import main
from escalade.compiler.parse import _PARSE_CACHE
from escalade.compiler.parse_cache import (
    CACHE_DIR_VARIABLE,
    CACHE_NAME,
    CACHE_VARIABLE,
    ParseCache,
)
from escalade.compiler.passes import analysis

CASES = Path(__file__).resolve().parent.parent / "cases"


def fresh_process() -> None:
    """What a new process starts with: no parse results in memory."""
    _PARSE_CACHE.clear()


def summary(path: Path, cache: ParseCache | None) -> list[tuple[str, str, str]]:
    fresh_process()
    result = load_policy_set(path, cache=cache)
    return [(d.code, str(d.span), d.message) for d in result.diagnostics]


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """Policy files with findings of every stage, syntax errors included."""
    out = tmp_path / "set"
    out.mkdir()
    for name in ("owner_chain.esc", "suppressed.esc", "timing.esc"):
        (out / name).write_text((CASES / name).read_text("utf-8"), "utf-8")
    (out / "broken.esc").write_text((CASES / "broken" / "syntax_error.esc").read_text("utf-8"))
    return out


def test_a_second_process_reads_every_file_back_with_the_same_findings(
    cases: Path, tmp_path: Path
) -> None:
    expected = summary(cases, None)
    first = ParseCache(tmp_path / "cache")
    assert summary(cases, first) == expected
    assert (first.hits, first.written) == (0, 4)
    second = ParseCache(tmp_path / "cache")
    assert summary(cases, second) == expected
    assert (second.hits, second.misses, second.written) == (4, 0, 0)
    assert any(code == "E001" for code, _, _ in expected)  # a syntax error is cached too


def test_an_edited_file_is_parsed_again_and_only_that_one(cases: Path, tmp_path: Path) -> None:
    summary(cases, ParseCache(tmp_path / "cache"))
    timing = cases / "timing.esc"
    timing.write_text(timing.read_text("utf-8").replace("sla resolve", "sla  resolve", 1))
    again = ParseCache(tmp_path / "cache")
    assert summary(cases, again) == summary(cases, None)
    assert (again.hits, again.misses, again.written) == (3, 1, 1)


def test_the_same_text_at_another_path_is_another_entry(tmp_path: Path) -> None:
    text = (CASES / "timing.esc").read_text("utf-8")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "timing.esc").write_text(text, "utf-8")
    cache = ParseCache(tmp_path / "cache")
    summary(tmp_path / "a", cache)
    found = summary(tmp_path / "b", ParseCache(tmp_path / "cache"))
    assert found == summary(tmp_path / "b", None)
    assert all("b/timing.esc" in span for _, span, _ in found)


def entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / f"parse-v{pc.LAYOUT}").iterdir())


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: b"not a pickle at all",
        lambda data: pickle.dumps(("a", "tuple", "of", "the", "wrong", "shape")),
        lambda data: pickle.dumps((("not a declaration",), ())),
    ],
    ids=["empty", "truncated", "garbage", "wrong-shape", "wrong-content"],
)
def test_a_damaged_entry_is_a_miss_and_is_written_again(
    cases: Path, tmp_path: Path, damage: object
) -> None:
    summary(cases, ParseCache(tmp_path / "cache"))
    for entry in entries(tmp_path / "cache"):
        entry.write_bytes(damage(entry.read_bytes()))  # type: ignore[operator]
    again = ParseCache(tmp_path / "cache")
    assert summary(cases, again) == summary(cases, None)
    assert (again.hits, again.misses, again.written) == (0, 4, 4)
    assert summary(cases, ParseCache(tmp_path / "cache")) == summary(cases, None)


class _Plant:
    """Pickles as a call to ``os.mkdir``: what a hostile entry would try."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.target),))


def test_an_entry_cannot_make_the_checker_run_other_code(cases: Path, tmp_path: Path) -> None:
    summary(cases, ParseCache(tmp_path / "cache"))
    planted = tmp_path / "planted"
    for entry in entries(tmp_path / "cache"):
        entry.write_bytes(pickle.dumps((_Plant(planted), ())))
    again = ParseCache(tmp_path / "cache")
    assert summary(cases, again) == summary(cases, None)
    assert again.misses == 4
    assert not planted.exists()


def test_an_unwritable_cache_directory_changes_nothing(cases: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    cache = ParseCache(blocked)
    assert summary(cases, cache) == summary(cases, None)
    assert cache.written == 0


def test_writes_leave_no_temporary_files_and_old_entries_are_pruned(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    for i in range(10):
        cache.store(f"{i:064x}", (None, ()))
        os.utime(cache.directory / f"{i:064x}", (1000 + i, 1000 + i))
    names = [p.name for p in entries(tmp_path / "cache")]
    assert len(names) == 10 and not [n for n in names if n.startswith(".tmp-")]
    cache.prune(keep=4)
    assert [p.name for p in entries(tmp_path / "cache")] == [f"{i:064x}" for i in (8, 9)]


def test_a_new_grammar_or_compiler_reads_no_old_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = ParseCache(tmp_path / "cache")
    before = cache.key("a.esc", "0" * 64)
    monkeypatch.setattr(pc, "fingerprint", lambda: b"another compiler")
    assert cache.key("a.esc", "0" * 64) != before


def check(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    fresh_process()
    result = CliRunner().invoke(main, ["check", *args], env=env)
    return result.exit_code, result.output


def test_check_keeps_the_cache_beside_escalade_yaml_unless_told_not_to(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "policies").mkdir(parents=True)
    (repo / "escalade.yaml").write_text("version: 1.0.0\n")
    (repo / "policies" / "timing.esc").write_text((CASES / "timing.esc").read_text("utf-8"))
    policies = str(repo / "policies")
    unset = {CACHE_DIR_VARIABLE: "", CACHE_VARIABLE: ""}

    assert check([policies, "--no-cache"], unset)[0] == 1
    assert check([policies], {**unset, CACHE_VARIABLE: "off"})[0] == 1
    assert not (repo / CACHE_NAME).exists()

    first = check([policies], unset)
    assert len(entries(repo / CACHE_NAME)) == 1
    assert check([policies], unset) == first
    assert first[1] == check([policies, "--no-cache"], unset)[1]


def test_without_escalade_yaml_the_cache_is_in_the_user_cache_directory(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "timing.esc").write_text((CASES / "timing.esc").read_text("utf-8"))
    env = {CACHE_DIR_VARIABLE: "", CACHE_VARIABLE: "", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    check([str(tmp_path / "set")], env)
    assert len(entries(tmp_path / "xdg" / "escalade")) == 1


SHADOWS = """
event ticket.created
schema ticket { id: text  severity: enum(low, high, critical)  queue: text }
person ann { email "a@example.com" }
person ben { email "b@example.com" }
"""


def shadowing_set(where: Path, count: int) -> Path:
    """Broad policies above narrow ones: W304 findings with long coverage searches."""
    where.mkdir()
    parts = [SHADOWS]
    for i in range(count):
        when = (
            f'ticket.queue == "q{i}" and ticket.severity in (high, critical)'
            if i % 3
            else f"ticket.severity == {('low', 'high', 'critical')[i // 3 % 3]}"
        )
        parts.append(
            f'policy p{i} {{\n  approvers "@x/y"\n  priority {1000 - i}\n'
            f"  trigger ticket.created\n  when {when}\n  owner primary ann ack 5m\n"
            f"  owner backup ben ack 5m\n  exception unknown triage ben\n}}\n"
        )
    (where / "set.esc").write_text("".join(parts), "utf-8")
    return where


@pytest.mark.parametrize("steps", [algebra.DEFAULT_STEPS, 0])
def test_remembered_analysis_answers_give_the_same_findings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, steps: int
) -> None:
    monkeypatch.setattr(analysis, "DEFAULT_STEPS", steps)  # 0: every search runs out (W307)
    where = shadowing_set(tmp_path / "set", 30)
    expected = summary(where, None)
    assert any(code == ("W304" if steps else "W307") for code, _, _ in expected)
    summary(where, ParseCache(tmp_path / "cache"))
    again = ParseCache(tmp_path / "cache")
    assert summary(where, again) == expected
    answers = again.answers(str(where.resolve()), analysis.answers_fingerprint())
    assert answers.hits == 0 and answers._known  # what the second run read back

    # another budget asks other questions: nothing remembered is reused
    monkeypatch.setattr(analysis, "DEFAULT_STEPS", steps + 1)
    assert summary(where, ParseCache(tmp_path / "cache")) == summary(where, None)


def test_an_edit_reuses_the_answers_it_does_not_change(tmp_path: Path) -> None:
    where = shadowing_set(tmp_path / "set", 30)
    summary(where, ParseCache(tmp_path / "cache"))
    text = (where / "set.esc").read_text("utf-8")
    # p3 (severity high, priority 997) drops below the queue policies it covered
    (where / "set.esc").write_text(text.replace("priority 997", "priority 10"), "utf-8")
    real = ParseCache.answers
    spied: list[pc.Answers] = []

    def spy(self: ParseCache, name: str, fingerprint: str) -> pc.Answers:
        spied.append(real(self, name, fingerprint))
        return spied[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ParseCache, "answers", spy)
        assert summary(where, ParseCache(tmp_path / "cache")) == summary(where, None)
    assert 0 < spied[0].hits < 30  # some questions changed with the priority, not all


def test_damaged_answers_are_answered_again(tmp_path: Path) -> None:
    where = shadowing_set(tmp_path / "set", 12)
    summary(where, ParseCache(tmp_path / "cache"))
    for file in (tmp_path / "cache" / f"answers-v{pc.LAYOUT}").iterdir():
        file.write_text('{"fingerprint": "x", "answers": {"k": [1]}')
    assert summary(where, ParseCache(tmp_path / "cache")) == summary(where, None)
