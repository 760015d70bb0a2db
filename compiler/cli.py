"""The ``escalade`` command: a thin click shell over the library.

Exit codes: 0 ok, 1 findings or failure, 2 usage error, 3 (diff) behaviour changed.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalade")
def main() -> None:
    """Escalade: policy-as-code for ticket escalation."""


# --- command registration: each area adds its commands below, one line each ---
