"""Suppressions are read once per file and findings looked up by position, with the answers
of the plain definitions: a comment on the finding's line or the line above, with a
reason, naming its code; a finding "inside" a span when its start lies within it."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.compiler.diagnostics import Collector, Diagnostic, suppressions
from escalade.compiler.nodes import Span

_PLAIN = re.compile(r"#\s*escalade:\s*ignore\[([A-Z0-9, ]+)\]\s*(\S.*)?$")


def plainly_suppressed(text: str, d: Diagnostic) -> bool:
    """The definition, one finding at a time (what the collector did per diagnostic)."""
    lines = text.split("\n")
    for lineno in (d.span.line, d.span.line - 1):
        if 1 <= lineno <= len(lines):
            m = _PLAIN.search(lines[lineno - 1])
            if m and m.group(2) and d.code in {c.strip() for c in m.group(1).split(",")}:
                return True
    return False


def test_suppressions_name_codes_per_line_and_need_a_reason() -> None:
    text = "\n".join(
        [
            "policy a {  # escalade: ignore[E501, E206] reviewed by ops",
            "  # escalade: ignore[W402] no reason needed? yes it is",
            "  # escalade: ignore[E202]",
            "  title 'x'  # escalade:ignore[E101,W601]   typo on purpose",
        ]
    )
    assert suppressions(text) == {
        1: frozenset({"E501", "E206"}),
        2: frozenset({"W402"}),
        4: frozenset({"E101", "W601"}),
    }
    assert suppressions("policy a {}\n") == {}


LINES = st.sampled_from(
    [
        "policy p {",
        "}",
        "  owner primary x",
        "  # escalade: ignore[E202] legacy",
        "  # escalade: ignore[E202, E501] both",
        "  step page x  # escalade: ignore[E101] on purpose",
        "  # escalade: ignore[E501]",
        "# escalade: ignore[ E206 ,W601 ] spaces",
        "",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(LINES, min_size=1, max_size=12),
    found=st.lists(
        st.tuples(st.sampled_from(["E202", "E501", "E101", "E206", "W601"]), st.integers(1, 13)),
        max_size=20,
    ),
)
def test_the_collector_suppresses_what_the_definition_does(
    lines: list[str], found: list[tuple[str, int]]
) -> None:
    text = "\n".join(lines)
    diags = Collector()
    diags.sources["p.esc"] = text
    for code, line in found:
        diags.report(code, Span("p.esc", line, 1, line, 2), f"finding on {line}")
    kept = {(d.code, d.span.line) for d in diags.diagnostics()}
    expected = {
        (code, line)
        for code, line in found
        if not plainly_suppressed(text, Diagnostic(code, "", Span("p.esc", line, 1, line, 2)))
    }
    assert kept == expected


positions = st.tuples(st.integers(1, 6), st.integers(1, 6))


@settings(max_examples=200, deadline=None)
@given(
    starts=st.lists(st.tuples(st.sampled_from(["a", "b"]), positions), max_size=15),
    asked=st.lists(st.tuples(st.sampled_from(["a", "b"]), positions, positions), max_size=6),
    more=st.lists(positions, max_size=3),
)
def test_errors_at_answers_as_a_scan_of_every_finding_would(
    starts: list[tuple[str, tuple[int, int]]],
    asked: list[tuple[str, tuple[int, int], tuple[int, int]]],
    more: list[tuple[int, int]],
) -> None:
    diags = Collector()

    def scan(spans: list[Span]) -> bool:
        return any(
            d.span.file == s.file
            and (s.line, s.col) <= (d.span.line, d.span.col) <= (s.end_line, s.end_col)
            for d in diags._items
            for s in spans
        )

    for file, (line, col) in starts:
        diags.report("E101", Span(file, line, col, line, col + 1), "x")
    spans = [Span(f, *sorted([a, b])[0], *sorted([a, b])[1]) for f, a, b in asked]
    for s in spans:
        assert diags.errors_at([s]) == scan([s])
    assert diags.errors_at(spans) == scan(spans)
    for line, col in more:  # a report after a question is seen by the next one
        diags.report("E101", Span("a", line, col, line, col + 1), "y")
        assert diags.errors_at(spans) == scan(spans)
