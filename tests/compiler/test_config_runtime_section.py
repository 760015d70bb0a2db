"""escalade.yaml is validated as a whole by the compiler, runtime section included."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler.config import ConfigError, parse_config


def test_inline_secret_in_runtime_section_is_a_located_error(tmp_path: Path) -> None:
    text = "version: 1.0.0\nruntime:\n  notifiers:\n    webhook: {url: 'https://h.example', secret: hunter2}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path)
    message = str(err.value)
    assert message.startswith("escalade.yaml:4:")
    assert "hunter2" not in message


def test_unknown_top_level_key_is_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"escalade.yaml:2:1: .*versoin"):
        parse_config("version: 1.0.0\nversoin: 2\n", tmp_path)


def test_valid_runtime_section_passes(tmp_path: Path) -> None:
    text = "version: 2.1.0\nruntime:\n  notifiers:\n    slack: {webhook_url_env: SLACK_URL}\n"
    assert parse_config(text, tmp_path).version == "2.1.0"
