"""Where a command's policy set is: the PATH given, else ``policies`` from the nearest
``escalade.yaml`` (every command that takes a policy path reads it the same way)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import display_path
from escalade.compiler.config import CONFIG_NAME, Config, ConfigError, find_root, load_config


def governing_config(path: Path | None = None) -> Config:
    """The configuration of the nearest ``escalade.yaml`` at or above ``path``, else above
    the working directory, else the defaults (as a build reads it, without importing the
    build); exit 1 with the located problem when it is invalid."""
    root = (find_root(path) if path is not None else None) or find_root(Path.cwd())
    try:
        return load_config(root if root is not None else Path.cwd().resolve())
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def default_policies() -> Path:
    """``policies`` of the nearest ``escalade.yaml`` (``policies/`` without one), shown
    relative to the working directory when inside it."""
    return Path(display_path(governing_config().policies_path))


def policy_path(path: Path | None, option: str | None = None) -> Path:
    """``path``, or :func:`default_policies`; a path that does not exist is a usage error
    (exit 2) that names it (and ``option`` when it came from one)."""
    if path is not None:
        if not path.exists():
            where = f"{option} " if option else ""
            raise click.UsageError(f"{where}no such file or directory: {path}")
        return path
    config = governing_config()
    chosen = Path(display_path(config.policies_path))
    if not chosen.exists():
        origin = (
            f"`policies` in {display_path(config.root / CONFIG_NAME)}"
            if config.found
            else f"the default; set `policies` in {CONFIG_NAME} or give PATH"
        )
        raise click.UsageError(f"no such file or directory: {chosen} ({origin})")
    return chosen
