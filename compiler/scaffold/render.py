"""The files of a new policy repository, rendered from ``templates/*.j2``.

Policy files and GitHub workflows use ``{{ ... }}`` themselves (placeholders,
workflow expressions), so these templates mark their variables ``{= name =}``
instead of Jinja's default; blocks stay ``{% ... %}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import jinja2

from escalade.compiler.sarif import DOCS_URI, INFORMATION_URI

# The starter policy set (``escalade init`` without --example): file in policies/ -> template.
STARTER_POLICIES = {
    "schema.esc": "schema.esc.j2",
    "directory.esc": "directory.esc.j2",
    "critical_tickets.esc": "policy.esc.j2",
    "critical_tickets_test.esc": "policy_test.esc.j2",
}
# Every repository's other files: repository path -> template.
CONFIG_FILE = ("escalade.yaml", "escalade.yaml.j2")
REPOSITORY_FILES = {
    "README.md": "README.md.j2",
    ".gitignore": "gitignore.j2",
    ".pre-commit-config.yaml": "pre-commit-config.yaml.j2",
    ".github/workflows/escalade.yml": "workflow.yml.j2",
}


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A policy file of the new repository and what it holds (for its README)."""

    path: str
    role: str


@dataclass(frozen=True, slots=True)
class PolicySummary:
    name: str
    title: str


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("escalade.compiler.scaffold", "templates"),
        variable_start_string="{=",
        variable_end_string="=}",
        undefined=jinja2.StrictUndefined,
        # Markdown, YAML and policy source, never HTML: nothing to escape.
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """One template rendered with the common context plus ``context``."""
    common = {
        "version": escalade_version(),
        "project_url": INFORMATION_URI,
        "docs_url": DOCS_URI,
    }
    return environment().get_template(template).render({**common, **context})


def escalade_version() -> str:
    """The installed escalade's version: what a new repository's CI installs."""
    return metadata.version("escalade")
