"""``escalade fmt``: canonical layout, the tree kept, comments kept, suppressions attached."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.compiler import nodes as n
from escalade.compiler.cli import main
from escalade.compiler.diagnostics import Collector
from escalade.compiler.fmt import format_source, scan_comments
from escalade.compiler.parse import parse_source
from tests.conftest import CASES, check_golden

FMT_CASES = CASES / "fmt"  # hand-laid-out files; their canonical layout is in expected/

# --------------------------------------------------------------------------- helpers


def shape(tree: Any) -> Any:
    """A syntax tree without source positions; durations by their seconds."""
    if isinstance(tree, n.Span):
        return None
    if isinstance(tree, n.Duration):
        return ("duration", tree.seconds)
    if isinstance(tree, n.Value) and tree.kind == "duration":
        return ("duration", tree.number)
    if isinstance(tree, n.SourceFile):
        return shape(tree.decls)
    if isinstance(tree, tuple | list):
        return tuple(shape(x) for x in tree)
    if dataclasses.is_dataclass(tree):
        return (
            type(tree).__name__,
            *(shape(getattr(tree, f.name)) for f in dataclasses.fields(tree)),
        )
    return tree


def parsed(text: str) -> n.SourceFile:
    diags = Collector()
    tree = parse_source("x.esc", text, diags)
    assert tree is not None and not diags.diagnostics(), diags.diagnostics()
    return tree


def fmt(text: str) -> str:
    result = format_source("x.esc", text)
    assert result.formatted is not None, (result.refusal, result.diagnostics)
    return result.formatted


def assert_format_invariants(text: str, out: str) -> None:
    """Same tree, a fixed point, and every comment still there."""
    assert shape(parsed(out)) == shape(parsed(text))
    assert fmt(out) == out
    have = [c.text for c in scan_comments(out)]
    for c in scan_comments(text):
        assert c.text in have, c.text


# --------------------------------------------------------------------------- the reference set


def test_reference_policies_are_canonical(policies_dir: Path) -> None:
    files = [f for f in sorted(policies_dir.glob("*.esc")) if not f.name.endswith("_test.esc")]
    assert len(files) >= 5
    for f in files:
        text = f.read_text("utf-8")
        assert fmt(text) == text, f"{f.name} is not in canonical layout: run `escalade fmt`"


@pytest.mark.parametrize("case", sorted(FMT_CASES.glob("*.esc")), ids=lambda p: p.stem)
def test_hand_laid_out_files_format_to_the_reference_layout(case: Path) -> None:
    """Files laid out by hand (aligned columns, several statements on a line, stray
    blanks) keep their trees and comments and come out in the layout of policies/."""
    text = case.read_text("utf-8")
    out = fmt(text)
    assert out != text, f"{case.name} is already canonical: it tests nothing"
    assert_format_invariants(text, out)
    check_golden(FMT_CASES / "expected" / case.name, out)


def test_directory_keeps_one_line_people_with_their_trailing_comments(policies_dir: Path) -> None:
    text = (policies_dir / "directory.esc").read_text("utf-8")
    assert (
        'person carol { name "Carol Diaz" email "carol@example.com" pager "carol-diaz" }'
        "  # engineering lead\n" in text
    )
    assert 'channel editorial { email "editors@example.com" }\n' in text


# --------------------------------------------------------------------------- layout


MESSY = """# header comment
event a.b   # the event
event c.d
schema ticket{ id:text
  sev : enum( low,high ) # sev
  # before close
}
policy p{title "t" priority 005 trigger a.b,c.d after 1h00m
  when (ticket.sev==low and ticket.sev != high) and not (ticket.sev == low or ticket.id has "q\\u00e9")   # why
  owner primary x ack 05m   owner backup y ack 24h
  on breach { step page x step notify ops "m" 5m 3 ticket.id }


  # last words
}
coverage a.b , c.d when ticket.sev in ( low , high )
"""

MESSY_CANONICAL = """# header comment
event a.b  # the event
event c.d

schema ticket {
  id: text
  sev: enum(low, high)  # sev
  # before close
}

policy p {
  title "t"
  priority 5
  trigger a.b, c.d after 1h
  when (ticket.sev == low and ticket.sev != high) and not (ticket.sev == low or ticket.id has "qé")  # why
  owner primary x ack 5m
  owner backup y ack 24h
  on breach {
    step page x
    step notify ops "m" 5m 3 ticket.id
  }

  # last words
}

coverage a.b, c.d when ticket.sev in (low, high)
"""


def test_canonical_layout_of_a_messy_file() -> None:
    assert fmt(MESSY) == MESSY_CANONICAL
    assert_format_invariants(MESSY, MESSY_CANONICAL)


def test_grouping_parentheses_are_kept_so_the_tree_is_the_same() -> None:
    text = "policy p { when (a.b == c and d.e == f) and (g.h == i or (j.k == l or m.n == o)) }\n"
    out = fmt(text)
    assert "when (a.b == c and d.e == f) and (g.h == i or (j.k == l or m.n == o))" in out
    assert_format_invariants(text, out)


def test_a_long_person_gets_one_attribute_per_line_and_keeps_its_comment() -> None:
    long_name = "N" * 80
    text = f'person p {{ name "{long_name}" email "p@example.com" }}  # the lead\n'
    out = fmt(text)
    assert out == (f'person p {{  # the lead\n  name "{long_name}"\n  email "p@example.com"\n}}\n')
    assert_format_invariants(text, out)


def test_a_short_multi_line_person_becomes_one_line_unless_it_holds_comments() -> None:
    assert fmt('person p {\n  name "P"\n}  # x\n') == 'person p { name "P" }  # x\n'
    kept = 'person p {\n  name "P"  # legal name\n  email "p@x"\n}\n'
    assert fmt(kept) == kept


def test_comments_inside_a_statement_move_above_it() -> None:
    text = "policy p {\n  when a.b == c  # first part\n    # more\n    and d.e == f  # end\n}\n"
    assert fmt(text) == (
        "policy p {\n  # first part\n  # more\n  when a.b == c and d.e == f  # end\n}\n"
    )


def test_invisible_characters_in_strings_become_visible_escapes() -> None:
    text = 'policy p { title "a\u200bb\u202e" }\n'
    assert fmt(text) == 'policy p {\n  title "a\\u200bb\\u202e"\n}\n'
    assert_format_invariants(text, fmt(text))


def test_empty_blocks_and_blank_lines() -> None:
    text = "\n\n\npolicy a {\n\n\n}\ntemplate t() { }\n\n\n\nevent x.y\n\n\n"
    assert fmt(text) == "policy a {}\n\ntemplate t() {}\n\nevent x.y\n"
    assert fmt("") == ""
    assert fmt("# only a comment\n") == "# only a comment\n"


# --------------------------------------------------------------------------- suppressions


def suppression_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n"), 1) if "escalade: ignore[" in line]


def test_suppression_comments_stay_on_or_above_their_construct() -> None:
    text = (
        'person unused_one { email "u@example.com" }  # escalade: ignore[W601] kept\n'
        "# escalade: ignore[W601] kept too\n"
        'person unused_two {\n  email "v@example.com"\n}\n'
        "policy p {\n  when a.b == c  # escalade: ignore[E102] on purpose\n    or d.e == f\n"
        "  when a.b == c\n}\n"
    )
    out = fmt(text)
    lines = out.split("\n")
    assert lines[0].startswith("person unused_one {") and lines[0].endswith("ignore[W601] kept")
    assert lines[1] == "# escalade: ignore[W601] kept too"
    assert lines[2] == 'person unused_two { email "v@example.com" }'
    assert "  when a.b == c or d.e == f  # escalade: ignore[E102] on purpose" in lines


def test_a_long_suppressed_person_stays_on_its_line() -> None:
    long_name = "N" * 90
    text = f'person p {{ name "{long_name}" }}  # escalade: ignore[W601] spare\n'
    assert fmt(text) == text


def test_a_layout_that_would_detach_a_suppression_is_refused() -> None:
    text = "policy p {\n  step a step b step c  # escalade: ignore[E301] r\n}\n"
    result = format_source("x.esc", text)
    assert result.formatted is None and not result.changed
    assert (
        result.refusal is not None and "x.esc:2:" in result.refusal and "step c" in result.refusal
    )


# --------------------------------------------------------------------------- command line


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, "utf-8")
    return path


def test_cli_check_diff_and_write(tmp_path: Path) -> None:
    messy = write(tmp_path, "messy.esc", MESSY)
    clean = write(tmp_path, "clean.esc", MESSY_CANONICAL)
    tests = write(tmp_path, "messy_test.esc", 'test "x" {   at 0m   expect no escalation }\n')
    runner = CliRunner()

    checked = runner.invoke(main, ["fmt", "--check", str(tmp_path)])
    assert checked.exit_code == 1
    assert "would reformat" in checked.output and "messy.esc" in checked.output
    assert "messy_test.esc" in checked.output  # policy tests have a layout too
    assert "clean.esc" not in checked.output
    assert messy.read_text("utf-8") == MESSY

    diffed = runner.invoke(main, ["fmt", "--diff", str(messy)])
    assert diffed.exit_code == 0
    assert "-policy p{title" in diffed.output and "+policy p {" in diffed.output
    assert messy.read_text("utf-8") == MESSY

    written = runner.invoke(main, ["fmt", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert messy.read_text("utf-8") == MESSY_CANONICAL
    assert clean.read_text("utf-8") == MESSY_CANONICAL
    assert tests.read_text("utf-8") == 'test "x" {\n  at 0m expect no escalation\n}\n'
    assert runner.invoke(main, ["fmt", "--check", str(tmp_path)]).exit_code == 0


def test_cli_leaves_broken_files_alone(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.esc", "policy p {\n  when a.b ==\n")
    binary = tmp_path / "binary.esc"
    binary.write_bytes(b"\xff\xfe\x00policy")
    crlf = tmp_path / "crlf.esc"
    crlf.write_bytes(b"event a.b\r\n")
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert "error[E001]" in result.output and "broken.esc:2:" in result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )
    assert broken.read_text("utf-8") == "policy p {\n  when a.b ==\n"
    assert binary.read_bytes() == b"\xff\xfe\x00policy"
    assert crlf.read_bytes() == b"event a.b\n"  # line ends are layout too


def test_cli_refusal_and_usage_errors(tmp_path: Path) -> None:
    text = "policy p {\n  step a step b step c  # escalade: ignore[E301] r\n}\n"
    path = write(tmp_path, "s.esc", text)
    result = CliRunner().invoke(main, ["fmt", str(path)])
    assert result.exit_code == 1 and "left unformatted" in result.output
    assert path.read_text("utf-8") == text
    missing = CliRunner().invoke(main, ["fmt", str(tmp_path / "nope.esc")])
    assert missing.exit_code == 2 and "no such file" in missing.output


# --------------------------------------------------------------------------- properties

NAMES = ["alpha", "b_2", "ops", "x", "_under", "state", "close", "on_call"]
FIELDS = ["ticket.severity", "a.b", "lead.crm_status", "x_1.y_2"]
DURATIONS = ["5m", "1h30m", "0s", "24h", "1h0m", "05m", "2d", "90m", "1d2h3m4s"]
NUMBERS = ["0", "-1", "2.5", "007", "100"]
PUNCT = {"{", "}", "(", ")", ",", ":"}

strings = st.builds(
    lambda s, ascii_only: json.dumps(s, ensure_ascii=ascii_only),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=12),
    st.booleans(),
)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> list[str]:
    kind = draw(st.sampled_from(["cmp", "in", "has"] + (["and", "or", "not"] if depth < 3 else [])))
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        value = draw(st.one_of(st.sampled_from(NAMES + NUMBERS + DURATIONS), strings))
        tokens = [draw(st.sampled_from(FIELDS)), op, value]
    elif kind == "in":
        values = draw(st.lists(st.sampled_from(NAMES + NUMBERS), min_size=1, max_size=3))
        negated = ["not"] if draw(st.booleans()) else []
        tokens = [draw(st.sampled_from(FIELDS)), *negated, "in", "(", *commas(values), ")"]
    elif kind == "has":
        tokens = [draw(st.sampled_from(FIELDS)), "has", draw(strings)]
    elif kind == "not":
        inner = draw(conditions(depth + 1))
        tokens = ["not", *paren(inner)]
    else:
        items = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
        tokens = []
        for i, item in enumerate(items):
            if i:
                tokens.append(kind)
            tokens.extend(paren(item))
    if draw(st.integers(0, 5)) == 0:
        tokens = ["(", *tokens, ")"]
    return tokens


def paren(tokens: list[str]) -> list[str]:
    return tokens if len(tokens) <= 4 and tokens[0] != "not" else ["(", *tokens, ")"]


def flatten(parts: list[list[str]]) -> list[str]:
    return [token for part in parts for token in part]


def commas(items: list[str]) -> list[str]:
    out: list[str] = []
    for i, item in enumerate(items):
        if i:
            out.append(",")
        out.append(item)
    return out


any_name = st.sampled_from(NAMES)
any_arg = st.one_of(any_name, strings, st.sampled_from(FIELDS + DURATIONS + NUMBERS))
any_duration = st.sampled_from(DURATIONS)


def step_tokens(draw: st.DrawFn) -> list[str]:
    return ["step", draw(any_name), *draw(st.lists(any_arg, max_size=3))]


def text_tokens(kind: str) -> Callable[[st.DrawFn], list[str]]:
    """``title "..."`` or ``guide "..."``."""
    return lambda draw: [kind, draw(strings)]


def approvers_tokens(draw: st.DrawFn) -> list[str]:
    return ["approvers", *commas(draw(st.lists(strings, min_size=1, max_size=3)))]


def priority_tokens(draw: st.DrawFn) -> list[str]:
    return ["priority", draw(st.sampled_from(["0", "-5", "100", "007"]))]


def trigger_tokens(draw: st.DrawFn) -> list[str]:
    events = commas(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2)))
    after = ["after", draw(any_duration)] if draw(st.booleans()) else []
    return ["trigger", *events, *after]


def when_tokens(draw: st.DrawFn) -> list[str]:
    return ["when", *draw(conditions())]


def owner_tokens(draw: st.DrawFn) -> list[str]:
    ack = ["ack", draw(any_duration)] if draw(st.booleans()) else []
    level = draw(st.sampled_from(["primary", "backup", "escalation"]))
    return ["owner", level, draw(any_name), *ack]


def repeat_tokens(draw: st.DrawFn) -> list[str]:
    return ["repeat", draw(st.sampled_from(["0", "2"]))]


def sla_tokens(draw: st.DrawFn) -> list[str]:
    return ["sla", draw(st.sampled_from(["acknowledge", "resolve"])), draw(any_duration)]


def on_tokens(draw: st.DrawFn) -> list[str]:
    body = draw(st.lists(statements(inside_on=True), max_size=2))
    return ["on", draw(st.sampled_from(["breach", "failover"])), "{", *flatten(body), "}"]


def delivery_tokens(draw: st.DrawFn) -> list[str]:
    then = ["then", draw(any_name)] if draw(st.booleans()) else []
    return ["check", "delivery", "within", draw(any_duration), "else", "retry", "3", *then]


def state_tokens(draw: st.DrawFn) -> list[str]:
    within = ["within", draw(any_duration)] if draw(st.booleans()) else []
    return ["check", "state", *draw(conditions()), *within]


def close_tokens(draw: st.DrawFn) -> list[str]:
    if draw(st.booleans()):
        return ["check", "close", "requires", "postmortem"]
    return ["check", "close", "requires", *draw(conditions())]


def exception_tokens(draw: st.DrawFn) -> list[str]:
    why = draw(st.one_of(st.just(None), st.sampled_from(["unacknowledged", "step_failed"])))
    cond = [why] if why else draw(conditions())
    return ["exception", draw(any_name), "when", *cond, "handoff", draw(any_name)]


def triage_tokens(draw: st.DrawFn) -> list[str]:
    pm = ["postmortem"] if draw(st.booleans()) else []
    return ["exception", "unknown", "triage", draw(any_name), *pm]


def use_tokens(draw: st.DrawFn) -> list[str]:
    return ["use", draw(any_name), "(", *commas(draw(st.lists(any_arg, max_size=3))), ")"]


def cooldown_tokens(draw: st.DrawFn) -> list[str]:
    return ["cooldown", draw(any_duration)]


# Every kind of policy statement and how to draw its tokens.
STATEMENT_TOKENS: dict[str, Callable[[st.DrawFn], list[str]]] = {
    "title": text_tokens("title"),
    "approvers": approvers_tokens,
    "priority": priority_tokens,
    "trigger": trigger_tokens,
    "when": when_tokens,
    "owner": owner_tokens,
    "repeat": repeat_tokens,
    "sla": sla_tokens,
    "step": step_tokens,
    "guide": text_tokens("guide"),
    "on": on_tokens,
    "delivery": delivery_tokens,
    "state": state_tokens,
    "close": close_tokens,
    "exception": exception_tokens,
    "triage": triage_tokens,
    "use": use_tokens,
    "cooldown": cooldown_tokens,
}


@st.composite
def statements(draw: st.DrawFn, inside_on: bool = False) -> list[str]:
    kinds = ["step", "guide"] if inside_on else list(STATEMENT_TOKENS)
    return STATEMENT_TOKENS[draw(st.sampled_from(kinds))](draw)


@st.composite
def declarations(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(NAMES))
    kind = draw(
        st.sampled_from(
            ["event", "schema", "person", "channel", "team", "template", "policy", "coverage"]
        )
    )
    if kind == "event":
        return ["event", draw(st.sampled_from(FIELDS))]
    if kind == "coverage":
        events = commas(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2)))
        return ["coverage", *events, "when", *draw(conditions())]
    if kind == "schema":
        fields: list[str] = []
        for f in draw(st.lists(st.sampled_from(NAMES), max_size=3)):
            if draw(st.booleans()):
                values = commas(draw(st.lists(st.sampled_from(NAMES), max_size=3)))
                fields += [f, ":", "enum", "(", *values, ")"]
            else:
                fields += [f, ":", draw(st.sampled_from(["text", "number", "set", "time"]))]
        return ["schema", name, "{", *fields, "}"]
    if kind in ("person", "channel"):
        attrs: list[str] = []
        for key in draw(st.lists(st.sampled_from(["name", "email", "slack", "pager"]), max_size=4)):
            attrs += [key, draw(strings)]
        return [kind, name, "{", *attrs, "}"]
    if kind == "team":
        items: list[list[str]] = draw(
            st.lists(
                st.one_of(
                    st.builds(
                        lambda ms: ["members", *commas(ms)],
                        st.lists(st.sampled_from(NAMES), max_size=3),
                    ),
                    st.builds(lambda s: ["rotation", "weekly", "from", s], strings),
                ),
                max_size=3,
            )
        )
        return ["team", name, "{", *flatten(items), "}"]
    body = flatten(draw(st.lists(statements(), max_size=5)))
    if kind == "template":
        params = [[p, ":", "person"] for p in draw(st.lists(st.sampled_from(NAMES), max_size=2))]
        flat = [t for i, p in enumerate(params) for t in ([","] if i else []) + p]
        return ["template", name, "(", *flat, ")", "{", *body, "}"]
    return ["policy", name, "{", *body, "}"]


SEPARATORS = [" ", " ", " ", "\n", "\n  ", "\n\n", "  ", "\t", "\n\n\n    "]


@st.composite
def policy_texts(draw: st.DrawFn) -> str:
    """A valid policy file laid out at random, with comments wherever white space may go."""
    tokens = flatten(draw(st.lists(declarations(), max_size=5)))
    out: list[str] = []
    counter = 0
    for i, token in enumerate(tokens):
        if i:
            roll = draw(st.integers(0, 9))
            prev = tokens[i - 1]
            if roll == 0:
                counter += 1
                tail = draw(st.sampled_from(["", "{", '"', "#", "é"]))
                out.append(f"  # note {counter} {tail}\n")
            elif roll == 1:
                counter += 1
                out.append(f"\n# note {counter} alone\n")
            elif roll == 2 and (token in PUNCT or prev in PUNCT):
                pass  # no white space needed next to punctuation
            else:
                out.append(draw(st.sampled_from(SEPARATORS)))
        out.append(token)
    if draw(st.booleans()):
        out.append("  # the end\n")
    return "".join(out) + draw(st.sampled_from(["", "\n", "\n\n"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts())
def test_formatting_keeps_the_tree_and_the_comments_and_is_idempotent(text: str) -> None:
    parsed(text)  # the generator writes valid files
    out = fmt(text)
    assert_format_invariants(text, out)
    assert not re.search(r"[ \t]+$", out, re.MULTILINE), "no trailing white space"
    assert "\n\n\n" not in out and not out.startswith("\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts(), st.data())
def test_suppression_comments_stay_with_what_they_cover(text: str, data: st.DataObject) -> None:
    """A suppression comment after some code line either keeps every construct that
    starts on that line on the comment's line or the next one, or the file is left alone."""
    lines = text.split("\n")
    code_lines = [i for i, line in enumerate(lines) if line.strip() and "#" not in line]
    if not code_lines:
        return
    at = data.draw(st.sampled_from(code_lines))
    lines[at] += "  # escalade: ignore[W601] reason"
    text = "\n".join(lines)
    result = format_source("x.esc", text)
    if result.formatted is None:
        assert result.refusal is not None and f"x.esc:{at + 1}:" in result.refusal
        return
    assert_format_invariants(text, result.formatted)
    marker = next(
        i for i, line in enumerate(result.formatted.split("\n")) if "ignore[W601]" in line
    )
    before = parsed(text)
    after = parsed(result.formatted)
    before_leaves = leaf_lines(before, at + 1)
    after_lines = {line for line in (marker + 1, marker + 2)}
    for path in before_leaves:
        assert leaf_line(after, path) in after_lines


def leaf_lines(tree: n.SourceFile, line: int) -> list[tuple[int, ...]]:
    """Index paths of the statements and declarations that start on ``line`` (where
    their diagnostics are)."""
    found: list[tuple[int, ...]] = []
    for path, span in leaves(tree):
        if span.line == line:
            found.append(path)
    return found


def leaf_line(tree: n.SourceFile, path: tuple[int, ...]) -> int:
    return dict(leaves(tree))[path].line


def leaves(tree: n.SourceFile) -> list[tuple[tuple[int, ...], n.Span]]:
    out: list[tuple[tuple[int, ...], n.Span]] = []
    for i, d in enumerate(tree.decls):
        body: tuple[Any, ...] = ()
        if isinstance(d, n.PolicyDecl | n.TemplateDecl):
            body = d.body
        elif isinstance(d, n.SchemaDecl):
            body = d.fields
        if not body:
            out.append(((i,), d.span))
        for j, s in enumerate(body):
            if isinstance(s, n.OnStmt) and s.body:
                out.extend(((i, j, k), t.span) for k, t in enumerate(s.body))
            else:
                out.append(((i, j), s.span))
    return out
