"""How every command prints: ``--format`` and ``--color``, decided in one place.

``--color auto|always|never`` (default ``auto``): ``auto`` colours when the stream
written to is a terminal, unless ``NO_COLOR`` is set to anything non-empty
(https://no-color.org); a non-empty ``FORCE_COLOR`` (other than ``0``) colours in
``auto`` even when the stream is not a terminal. ``always`` and ``never`` win over
both variables.

``--format`` takes the choices a command offers, ``text`` first by default;
``json`` prints one JSON document on stdout, or JSON Lines (one document per line)
where a command reports one result per input, as ``event`` does.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

COLOR_CHOICES = ("auto", "always", "never")


def color_option(fn: F) -> F:
    """Add ``--color auto|always|never`` (as the ``color`` parameter)."""
    return click.option(
        "--color",
        "color",
        type=click.Choice(COLOR_CHOICES),
        default="auto",
        show_default=True,
        help="Colour the output: auto (a terminal, unless NO_COLOR is set), always or never.",
    )(fn)


def use_color(
    choice: str, stream: IO[Any] | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether to colour what goes to ``stream`` (default stdout) for ``--color choice``."""
    if choice != "auto":
        return choice == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    target = sys.stdout if stream is None else stream
    try:
        return target.isatty()
    except (AttributeError, ValueError):  # a stream without a terminal behind it, or closed
        return False


def format_option(*choices: str, default: str | None = None) -> Callable[[F], F]:
    """Add ``--format`` with ``choices`` (as the ``fmt`` parameter; default: the first)."""
    if not choices:
        raise ValueError("format_option needs at least one choice")
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default or choices[0],
        show_default=True,
        help=f"Output format: {', '.join(choices)} (json is stable; see the README).",
    )


def echo_json(doc: Any, *, lines: bool = False) -> None:
    """``doc`` on stdout: indented, keys sorted; with ``lines``, one compact line (JSON Lines)."""
    if lines:
        click.echo(json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    else:
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))


__all__ = ["COLOR_CHOICES", "color_option", "echo_json", "format_option", "use_color"]
