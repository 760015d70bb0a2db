"""``runtime.retry`` and ``runtime.loop_breaker`` in escalade.yaml: validated with located
errors, and carried to the engine that the CLI and ``escalade serve`` open."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.runtime import engine as engine_module
from escalade.runtime.app import AppError, open_runtime
from escalade.runtime.settings import SettingsError, parse_settings

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"

CONFIGURED = """\
runtime:
  retry:
    attempts: 3
    base: 30s
    cap: 10m
  loop_breaker:
    limit: 2
    window: 1h30m
"""


def test_retry_and_loop_breaker_are_read_as_seconds(tmp_path: Path) -> None:
    settings = parse_settings(CONFIGURED, tmp_path)
    assert (settings.retry.attempts, settings.retry.base, settings.retry.cap) == (3, 30, 600)
    assert (settings.loop_breaker.limit, settings.loop_breaker.window) == (2, 5400)
    partial = parse_settings("runtime:\n  retry: {attempts: 9}\n", tmp_path)
    assert (partial.retry.attempts, partial.retry.base, partial.retry.cap) == (9, 60, 3600)


def test_the_defaults_are_the_engines(tmp_path: Path) -> None:
    settings = parse_settings("runtime: {}\n", tmp_path)
    assert (settings.retry.attempts, settings.retry.base, settings.retry.cap) == (
        engine_module.RETRY_ATTEMPTS,
        engine_module.RETRY_BASE,
        engine_module.RETRY_CAP,
    )
    assert (settings.loop_breaker.limit, settings.loop_breaker.window) == (
        engine_module.LOOP_LIMIT,
        engine_module.LOOP_WINDOW,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "runtime:\n  retry:\n    attempts: 0\n",
            "escalade.yaml:3:15: runtime.retry.attempts: 0 is less than the minimum of 1",
        ),
        (
            "runtime:\n  retry:\n    base: soon\n",
            "escalade.yaml:3:11: runtime.retry.base: 'soon' is not a duration",
        ),
        (
            "runtime:\n  retry:\n    base: 0s\n",
            "escalade.yaml:3:11: runtime.retry.base: must be at least 1s",
        ),
        (
            "runtime:\n  retry:\n    base: 2h\n    cap: 1h\n",
            "escalade.yaml:4:10: runtime.retry.cap (3600s) must be at least"
            " runtime.retry.base (7200s)",
        ),
        (
            "runtime:\n  retry:\n    base: 2h\n",
            "escalade.yaml:3:11: runtime.retry.cap (3600s) must be at least",
        ),
        (
            "runtime:\n  loop_breaker:\n    window: 3\n",
            "escalade.yaml:3:13: runtime.loop_breaker.window: 3 is not of type 'string'",
        ),
        (
            "runtime:\n  loop_breaker:\n    limit: 2\n    windw: 1h\n",
            "escalade.yaml:4:5: runtime.loop_breaker: unknown setting 'windw'",
        ),
    ],
)
def test_a_bad_value_is_a_located_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(text, tmp_path)
    assert str(error.value).startswith(expected)


def test_configured_values_reach_the_engine_the_commands_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "escalade.yaml").write_text(CONFIGURED)
    monkeypatch.chdir(tmp_path)
    with open_runtime(str(tmp_path / "s.db"), pack_path=str(PACK)) as app:
        engine = app.engine
        assert (engine.retry_attempts, engine.retry_base, engine.retry_cap) == (3, 30, 600)
        assert (engine.loop_limit, engine.loop_window) == (2, 5400)
        assert [engine.retry_delay(n) for n in (1, 2, 5, 6)] == [30, 60, 480, 600]


def test_a_bad_value_stops_the_commands_before_the_store_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "escalade.yaml").write_text("runtime:\n  loop_breaker:\n    limit: -1\n")
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(AppError) as error,
        open_runtime(str(tmp_path / "s.db"), pack_path=str(PACK)),
    ):
        pass
    assert "escalade.yaml:3:12: runtime.loop_breaker.limit" in str(error.value)
    assert not (tmp_path / "s.db").exists()
