"""``escalade.yaml``: the repository's configuration, validated with located errors.

    version: 1.0.0          # policy-set version stamped into the pack
    policies: policies/     # where the .esc files are
    output: generated/      # where the pack and runbooks go
    runtime: {...}          # runtime settings (database, notifiers, keys); free-form here

The repository root is the directory holding ``escalade.yaml``; without one,
defaults apply and the root is the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from escalade.runtime.settings import (
    SettingsError,
    find_config,
    locate,
    parse_settings,
    read_yaml_mapping,
)

CONFIG_NAME = "escalade.yaml"

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "escalade.yaml",
    "type": "object",
    "properties": {
        "version": {
            "type": "string",
            "pattern": r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$",
            "description": "semantic version of the policy set",
        },
        "policies": {"type": "string", "minLength": 1},
        "output": {"type": "string", "minLength": 1},
        "runtime": {"type": "object"},
    },
    "additionalProperties": False,
}


class ConfigError(ValueError):
    """``escalade.yaml`` is unreadable or invalid; the message says where (file:line:col)."""


@dataclass(frozen=True, slots=True)
class Config:
    root: Path
    version: str = "0.0.0"
    policies: str = "policies/"
    output: str = "generated/"
    found: bool = False

    @property
    def policies_path(self) -> Path:
        return self.root / self.policies

    @property
    def output_path(self) -> Path:
        return self.root / self.output


def find_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``escalade.yaml``."""
    found = find_config(start)
    return found.parent if found is not None else None


def load_config(root: Path) -> Config:
    """Read ``root/escalade.yaml`` (defaults when absent); raises :class:`ConfigError`."""
    file = root / CONFIG_NAME
    if not file.is_file():
        return Config(root=root)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{CONFIG_NAME}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{CONFIG_NAME}: not UTF-8 text") from None
    return parse_config(text, root)


def parse_config(text: str, root: Path, shown: str = CONFIG_NAME) -> Config:
    """Validate the text of an ``escalade.yaml`` (e.g. as read from a git revision)."""
    try:
        data, node = read_yaml_mapping(text, shown)
        # the runtime's own section is validated by the runtime's rules (secrets by name)
        parse_settings(text, root, shown)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        target = locate(node, list(err.path))
        if err.validator == "additionalProperties" and isinstance(target, yaml.MappingNode):
            extra = [k for k, _ in target.value if k.value not in CONFIG_SCHEMA["properties"]]
            target = extra[0] if extra else target
        mark = target.start_mark if target is not None else None
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        key = ".".join(map(str, err.path)) or "(top level)"
        problems.append(f"{where}: {key}: {err.message}")
    if problems:
        raise ConfigError("\n".join(problems))
    version = data.get("version", "0.0.0")
    return Config(
        root=root,
        version=str(version),
        policies=data.get("policies", "policies/"),
        output=data.get("output", "generated/"),
        found=True,
    )
