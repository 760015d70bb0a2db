"""The one ISO-8601 reader (runtime.clock) and its two entry points."""

from __future__ import annotations

import pytest

from escalade.runtime.clock import (
    TimeError,
    format_duration,
    parse_duration,
    parse_time,
    read_duration,
    read_time,
)

T = 1795773600  # 2026-11-27T10:00:00Z


@pytest.mark.parametrize(
    ("text", "zoned", "runtime"),
    [
        ("2026-11-27T10:00:00Z", T, T),
        ("2026-11-27T12:00:00+02:00", T, T),
        ("2026-11-27T10:00:00.5Z", T + 0.5, T),  # policy literals keep fractions
        ("2026-11-27T10:00:00", None, T),  # bare: refused in policies, UTC at runtime
        ("2026-11-27", None, T - 10 * 3600),
        ("2026-11-27T10:00:00z", None, T),  # runtime inputs tolerate a lowercase z ...
        (" 2026-11-27T10:00:00Z ", None, T),  # ... and surrounding blanks
        ("2026-11-27T10Z:00", None, None),  # a Z is a zone only at the end
        ("2026-11-27T10:00:00ZZ", None, None),
        ("2026-13-01T00:00:00Z", None, None),
        ("now", None, None),
        ("", None, None),
    ],
)
def test_policy_and_runtime_readings(text: str, zoned: float | None, runtime: int | None) -> None:
    assert read_time(text) == zoned
    if runtime is None:
        with pytest.raises(TimeError, match="is not an ISO-8601 time"):
            parse_time(text)
    else:
        assert parse_time(text) == runtime


def test_compiler_and_pack_read_times_with_the_runtime_reader() -> None:
    from escalade.compiler import algebra
    from escalade.compiler.backends import rulepack, runbooks
    from escalade.compiler.passes import checks, lower
    from escalade.runtime import pack

    for module in (algebra, checks, lower, rulepack, runbooks):
        assert module.read_time is read_time
    assert pack.parse_time is read_time


@pytest.mark.parametrize(
    ("text", "literal", "runtime"),
    [
        ("1h30m", 5400, 5400),
        ("2d", 172800, 172800),
        ("0s", 0, 0),
        ("01h", 3600, 3600),
        (" 5m ", None, 300),  # runtime inputs tolerate surrounding blanks
        ("30m1h", None, None),  # units go from largest to smallest ...
        ("1h1h", None, None),  # ... each once
        ("1h 30m", None, None),
        ("5", None, None),
        ("-5m", None, None),
        ("", None, None),
    ],
)
def test_policy_and_runtime_durations(text: str, literal: int | None, runtime: int | None) -> None:
    assert read_duration(text) == literal
    if runtime is None:
        with pytest.raises(TimeError, match="is not a duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == runtime


def test_compiler_reads_and_writes_durations_with_the_runtime_functions() -> None:
    from escalade.compiler import algebra, diff, fmt, graph, parse, printer
    from escalade.compiler.passes import checks

    assert parse.read_duration is fmt.read_duration is read_duration
    for module in (algebra, checks, diff, fmt, graph, printer):
        assert module.format_duration is format_duration
    assert not hasattr(parse, "parse_duration") and not hasattr(parse, "format_duration")
