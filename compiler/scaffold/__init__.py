"""``escalade init``: a new policy repository that passes check, build --check and test.

    created = create(Path("team-policies"), example="support")

writes ``escalade.yaml``, ``policies/`` (a commented starter set, or one of the
bundled use cases cut down to what it uses), a README for the team, the
pre-commit configuration using Escalade's hooks and a GitHub workflow that
installs Escalade as a package; then builds, so ``generated/`` and
``.github/CODEOWNERS`` exist and ``escalade build --check`` passes at once; and
``git init``s the directory unless it already lies in a git work tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from escalade.compiler import load_policy_set
from escalade.compiler.backends.codeowners import CodeownersError
from escalade.compiler.build import (
    RUNBOOK_DIR,
    BuildError,
    BuildOutputs,
    build_outputs,
    load_for_build,
    write_outputs,
)
from escalade.compiler.config import Config, load_config
from escalade.compiler.formats import render_text
from escalade.compiler.model import PolicySet
from escalade.compiler.scaffold.bundle import TEST_SUFFIX, use_cases
from escalade.compiler.scaffold.prune import example_policies, policy_path
from escalade.compiler.scaffold.render import (
    CONFIG_FILE,
    REPOSITORY_FILES,
    STARTER_POLICIES,
    PolicyFile,
    PolicySummary,
    render,
)
from escalade.runtime.pack import PackError

__all__ = ["Created", "ScaffoldError", "create", "example_names"]

# What may already be in a directory that counts as empty: a fresh clone's git data.
IGNORED_ENTRIES = frozenset({".git"})
PRE_COMMIT_HOOKS = ("escalade-check", "escalade-build-check", "escalade-fmt")
# The runbooks' index page (the workflow shows it in the job summary).
RUNBOOK_INDEX = "README.md"


class ScaffoldError(Exception):
    """The repository could not be created; the message says why, for people."""


@dataclass(frozen=True, slots=True)
class Created:
    """What ``create`` did: the files it wrote (repository paths) and the git outcome."""

    root: Path
    sources: list[str]
    generated: list[str]
    policies: list[str]
    git: str  # "initialized", "existing" (inside a work tree), "absent" or "skipped"


def example_names() -> list[str]:
    """The bundled use cases ``--example`` accepts."""
    return sorted(use_cases())


def create(
    dest: Path, example: str | None = None, *, force: bool = False, git: bool = True
) -> Created:
    """Write a new policy repository into ``dest`` and build it (see the module doc)."""
    if example is not None and example not in use_cases():
        raise ScaffoldError(
            f"no bundled use case {example!r}; choose one of: {', '.join(example_names())}"
        )
    _refuse_non_empty(dest, force)
    defaults = Config(root=dest)
    policies = _policy_sources(defaults.policies, example)
    pset = _checked(policies)
    files = {CONFIG_FILE[0]: render(CONFIG_FILE[1], **_dirs(defaults))}
    files |= policies
    for path, template in REPOSITORY_FILES.items():
        context = _readme_context(dest, example, policies, pset) if path == "README.md" else {}
        files[path] = render(template, **_dirs(defaults), hooks=PRE_COMMIT_HOOKS, **context)
    _write(dest, files)
    generated = _build(dest)
    git_state = _git_init(dest) if git else "skipped"
    return Created(dest, sorted(files), generated, sorted(pset.policies), git_state)


def _refuse_non_empty(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise ScaffoldError(f"{dest} exists and is not a directory")
    if force or not dest.exists():
        return
    present = sorted(p.name for p in dest.iterdir() if p.name not in IGNORED_ENTRIES)
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ScaffoldError(
            f"{dest} is not empty ({shown}); choose a new directory, or use --force to "
            "write into it (files of the same name are replaced)"
        )


def _dirs(config: Config) -> dict[str, str]:
    """The folders escalade.yaml names (its defaults), for the templates."""
    output = config.output.rstrip("/")
    return {
        "policies_dir": config.policies,
        "output_dir": config.output,
        "runbooks_index": f"{output}/{RUNBOOK_DIR}/{RUNBOOK_INDEX}",
    }


def _policy_sources(policies_dir: str, example: str | None) -> dict[str, str]:
    """Repository path -> text of the new repository's policy files."""
    if example is None:
        named = {name: render(template) for name, template in STARTER_POLICIES.items()}
    else:
        named = example_policies(example)
    return {policy_path(policies_dir, name): text for name, text in named.items()}


def _checked(policies: dict[str, str]) -> PolicySet:
    """The policy set the new files make; any finding is a bug in the templates."""
    sources = sorted((p, t) for p, t in policies.items() if not p.endswith(TEST_SUFFIX))
    result = load_policy_set(".", sources=sources)
    if result.pset is None or result.diagnostics:
        report = render_text(result.diagnostics, result.diags.sources, color=False)
        raise ScaffoldError(f"the starter policies do not check cleanly:\n{report}")
    return result.pset


def _readme_context(
    dest: Path, example: str | None, policies: dict[str, str], pset: PolicySet
) -> dict[str, object]:
    files = [PolicyFile(path, _role(path, policies[path])) for path in sorted(policies)]
    summaries = [PolicySummary(p.name, p.title or p.name) for p in pset.policies.values()]
    return {
        "name": dest.resolve().name,
        "example": example,
        "policy_files": files,
        "policies": sorted(summaries, key=lambda s: s.name),
    }


def _role(path: str, text: str) -> str:
    """What a policy file holds, for a README table cell: the first sentence of its
    opening comment."""
    if path.endswith(TEST_SUFFIX):
        return f"policy tests (`escalade test`) for `{path.removesuffix(TEST_SUFFIX)}.esc`"
    opening = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        opening.append(line.lstrip("#").strip())
    words = " ".join(opening).strip()
    if not words:
        return PurePosixPath(path).stem
    sentence = re.split(r"(?<=[.!?])\s", words, maxsplit=1)[0]
    return sentence.replace("|", "\\|")


def _write(dest: Path, files: dict[str, str]) -> None:
    try:
        for rel, text in files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise ScaffoldError(f"cannot write {exc.filename}: {exc.strerror}") from None


def _build(dest: Path) -> list[str]:
    """``escalade build`` in the new repository: the pack, runbooks and CODEOWNERS."""
    config = load_config(dest)
    result = load_for_build(config.policies_path, config.root, config.version)
    try:
        outputs: BuildOutputs = build_outputs(result, config.root, config.output_path)
        write_outputs(outputs, config.root)
    except BuildError:
        report = render_text(result.diagnostics, result.diags.sources, color=False)
        raise ScaffoldError(f"the new repository does not build:\n{report}") from None
    except (CodeownersError, PackError, OSError) as exc:
        raise ScaffoldError(f"the new repository does not build: {exc}") from None
    return sorted(outputs.files)


def _git_init(dest: Path) -> str:
    """``git init`` unless ``dest`` is already inside a work tree (or git is missing)."""
    exe = shutil.which("git")
    if exe is None:
        return "absent"
    inside = subprocess.run(  # noqa: S603 - fixed arguments, git found on PATH
        [exe, "-C", str(dest), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return "existing"
    done = subprocess.run(  # noqa: S603
        [exe, "init", "-q", str(dest)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ScaffoldError(f"git init failed: {done.stderr.strip()}")
    return "initialized"
