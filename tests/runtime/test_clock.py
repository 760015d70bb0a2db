"""The one ISO-8601 reader (runtime.clock) and its two entry points."""

from __future__ import annotations

import pytest

from escalade.runtime.clock import TimeError, parse_time, read_time

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
    from escalade.compiler.passes import lower
    from escalade.runtime import pack

    assert lower.parse_time is read_time
    assert pack.parse_time is read_time
    assert algebra.read_time is read_time
