"""The bundled use cases: the repository's ``policies/``, shipped as package data.

A user's installation has no ``policies/`` folder, so ``escalade init --example``
reads the policy files from ``bundled_policies.json`` beside this module. That
file is generated from ``policies/`` (the single source) and a test fails when
it differs from what this module prints::

    python -m escalade.compiler.scaffold.bundle policies > compiler/scaffold/bundled_policies.json

A *use case* is a policy file with a policy test beside it (``support.esc`` and
``support_test.esc``); its example name is the file's stem with dashes
(``customer-ops``). The other files (schema, directory, templates) hold the
declarations every use case shares.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

BUNDLE_NAME = "bundled_policies.json"
REGENERATE = (
    f"python -m escalade.compiler.scaffold.bundle policies > compiler/scaffold/{BUNDLE_NAME}"
)
TEST_SUFFIX = "_test.esc"
POLICY_SUFFIX = ".esc"


@dataclass(frozen=True, slots=True)
class UseCase:
    """One bundled use case: its policy file and its test file (names inside policies/)."""

    name: str
    policy_file: str
    test_file: str


def bundle_json(policies: Path) -> str:
    """The bundle of every ``*.esc`` file directly under ``policies`` (sorted keys)."""
    files = {
        p.name: p.read_bytes().decode("utf-8")
        for p in sorted(policies.glob(f"*{POLICY_SUFFIX}"))
        if p.is_file()
    }
    doc = {"generated_by": REGENERATE, "files": files}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def bundled_files() -> dict[str, str]:
    """File name -> text of every bundled policy file."""
    text = resources.files(__package__ or __name__).joinpath(BUNDLE_NAME).read_text("utf-8")
    files = json.loads(text)["files"]
    assert isinstance(files, dict)
    return {str(k): str(v) for k, v in files.items()}


def use_cases(files: dict[str, str] | None = None) -> dict[str, UseCase]:
    """Example name -> use case, for every policy file that has a test file beside it."""
    files = bundled_files() if files is None else files
    found: dict[str, UseCase] = {}
    for name in sorted(files):
        if name.endswith(TEST_SUFFIX):
            continue
        test = name.removesuffix(POLICY_SUFFIX) + TEST_SUFFIX
        if test in files:
            example = name.removesuffix(POLICY_SUFFIX).replace("_", "-")
            found[example] = UseCase(example, name, test)
    return found


def shared_files(files: dict[str, str] | None = None) -> list[str]:
    """The bundled files that belong to no use case: the shared declarations."""
    files = bundled_files() if files is None else files
    cases = use_cases(files).values()
    taken = {f for c in cases for f in (c.policy_file, c.test_file)}
    return sorted(f for f in files if f not in taken and not f.endswith(TEST_SUFFIX))


def main() -> None:
    """Print the bundle of the folder named on the command line (default ``policies``)."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "policies")
    sys.stdout.buffer.write(bundle_json(folder).encode("utf-8"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
