"""Every syntax error of a file at once, and no finding that only follows from them.

After a syntax error the parser drops the declaration it is in and reads on;
the rest of the file is still checked. A name the dropped text declared is not
"unknown" (E101), a name only the dropped text used is not "unused" (W601) and
coverage (W305) is not judged on a set with a part missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler import diagnostics, load_policy_set
from escalade.compiler.parse import _PARSE_CACHE, MAX_SYNTAX_ERRORS
from escalade.compiler.parse_cache import ParseCache
from tests.conftest import CASES

THREE = CASES / "three_syntax_errors.esc"


def found(text: str, name: str = "set.esc") -> list[tuple[str, int]]:
    result = load_policy_set(name, sources=[(name, text)])
    return [(d.code, d.span.line) for d in result.diagnostics]


def test_three_syntax_errors_are_three_e001_and_nothing_else() -> None:
    assert found(THREE.read_text("utf-8")) == [("E001", 14), ("E001", 18), ("E001", 46)]


def test_the_follow_ups_left_out_are_real_consequences_of_the_dropped_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(diagnostics, "follows_from_dropped", lambda *args: False)
    codes = {code for code, _ in found(THREE.read_text("utf-8"))}
    assert {"W601", "W305", "E101"} <= codes


def test_what_parsed_is_still_checked() -> None:
    text = THREE.read_text("utf-8")
    # a real typo outside the dropped text, and a person nothing mentions
    text = text.replace("owner escalation kim", "owner escalation kym")
    text += '\nperson nobody { email "nobody@example.com" }\n'
    got = found(text)
    assert ("E101", 31) in got
    assert ("W601", len(text.split("\n")) - 1) in got
    assert [line for code, line in got if code == "E001"] == [14, 18, 46]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("polcy p { }\npolicy q {\n", [1, 2]),
        ("}\n}\n}\n", [1]),
        ('person a { email "a@example.com"\n', [1]),
        ("person a {\n  email\n}\nperson b { email }\n", [3, 4]),
        ("# only a comment\n@\n", [2]),
        ("person A { }\n", [1]),
    ],
    ids=["keyword-typo", "stray-braces", "unclosed-at-end", "two-bad-people", "junk", "upper"],
)
def test_each_error_located_once_and_never_a_traceback(text: str, lines: list[int]) -> None:
    assert [line for code, line in found(text) if code == "E001"] == lines


def test_errors_without_end_stop_at_the_limit() -> None:
    text = "".join(f"person p{i} {{ email }}\n" for i in range(MAX_SYNTAX_ERRORS + 10))
    errors = [code for code, _ in found(text) if code == "E001"]
    assert len(errors) == MAX_SYNTAX_ERRORS


def test_a_second_process_reads_what_was_dropped_back_from_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "three.esc").write_text(THREE.read_text("utf-8"), "utf-8")
    codes = []
    for _ in range(2):
        _PARSE_CACHE.clear()
        cache = ParseCache(tmp_path / "cache")
        codes.append([d.code for d in load_policy_set(folder, cache=cache).diagnostics])
    assert cache.hits == 1
    assert codes == [["E001"] * 3] * 2
