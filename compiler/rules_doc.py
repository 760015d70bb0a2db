"""The diagnostics reference, generated from the code registry (``escalade.compiler.codes``).

One place documents every code; this module renders it as Markdown for
``docs/diagnostics.md`` and as help text for SARIF rule descriptors.
Regenerate the page with::

    python -m escalade.compiler.rules_doc > docs/diagnostics.md

A test fails when the committed page differs from what this prints.
"""

from __future__ import annotations

import sys

from escalade.compiler.codes import CODES, Code

REGENERATE = "python -m escalade.compiler.rules_doc > docs/diagnostics.md"

_INTRO = """\
Every finding of `escalade check` has a stable code, a name and a severity.
Errors (`E...`) fail `check` and `build`; warnings (`W...`) fail `check` only
with `--strict`. The codes never change meaning: CI annotations, SARIF
`ruleId`s and suppression comments depend on them.

A finding is suppressed by a comment on its line or the line above, with a
reason (without a reason the suppression does not count):

```
# escalade: ignore[W601] kept for the next rotation
```

Each example below is a complete policy file that, checked together with the
declarations of this repository's `policies/schema.esc` and
`policies/directory.esc` (the events, fields, people, teams and channels it
names), produces that code and nothing else; the fixed version produces
nothing. The test suite checks both. See [the language reference](language.md)
for every statement.
"""


def anchor(c: Code) -> str:
    """The GitHub anchor of a code's section heading (``E302 ambiguous-route``)."""
    return f"{c.code}-{c.name}".lower()


def code_markdown(c: Code, heading: str = "##") -> str:
    """One code's documentation as a Markdown section."""
    parts = [
        f"{heading} {c.code} {c.name}\n",
        f"*{c.severity}* — {c.description}\n",
        f"**What it means.** {c.meaning}\n",
        f"**Why it matters.** {c.why}\n",
        "**Example:**\n",
        _fence(c.example),
        f"**Fix.** {c.fix}\n",
        _fence(c.fixed),
    ]
    return "\n".join(parts)


def code_text(c: Code) -> str:
    """One code's documentation as plain text (SARIF ``help.text``)."""
    return "\n\n".join(
        [
            f"{c.code} {c.name} ({c.severity}): {c.description}",
            c.meaning,
            f"Why it matters: {c.why}",
            f"Example:\n\n{_indent(c.example)}",
            f"Fix: {c.fix}",
            f"Fixed:\n\n{_indent(c.fixed)}",
        ]
    )


def diagnostics_markdown() -> str:
    """The whole reference page: an index table, then one section per code."""
    rows = [
        f"| [{c.code}](#{anchor(c)}) | {c.name} | {c.severity} | {_cell(c.description)} |"
        for c in CODES.values()
    ]
    head = [
        "# Diagnostics\n",
        f"<!-- Generated from compiler/codes.py by `{REGENERATE}`; do not edit. -->\n",
        _INTRO,
        "| code | name | severity | what it catches |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n",
    ]
    sections = [code_markdown(c) for c in CODES.values()]
    return "\n".join(head + sections)


def _fence(source: str) -> str:
    return f"```\n{source.rstrip(chr(10))}\n```\n"


def _indent(source: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in source.rstrip("\n").split("\n"))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main() -> None:
    """Print the reference page (UTF-8) to standard output."""
    sys.stdout.buffer.write(diagnostics_markdown().encode("utf-8"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
