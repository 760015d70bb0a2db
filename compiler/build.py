"""``escalade build``: compile the policy set into the pack, runbooks and CODEOWNERS.

Every output path is relative to the repository root (the directory holding
``escalade.yaml``), and every path *inside* the outputs is a repo-relative
POSIX path, so building from any working directory gives the same bytes.
``--check`` builds in memory and fails with a unified diff when anything on
disk differs (stale, missing or left over from a removed policy).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from escalade.compiler import CheckResult, gitrev, load_policy_set, policy_files
from escalade.compiler.backends.codeowners import (
    CODEOWNERS_PATH,
    CodeownersError,
    render_codeowners,
)
from escalade.compiler.backends.rivals import policy_rivals
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import render_runbooks
from escalade.compiler.config import (
    CONFIG_NAME,
    Config,
    find_root,
    load_config,
    parse_config,
)
from escalade.compiler.formats import render_text
from escalade.runtime.pack import PackError, RulePack, canonical_bytes

PACK_NAME = "rulepack.json"
RUNBOOK_DIR = "runbooks"


class BuildError(Exception):
    """The build could not run; the message is for people, ``report`` (diagnostics) too."""

    def __init__(self, message: str, report: str = "") -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True, slots=True)
class BuildOutputs:
    """What a build writes: repo-relative POSIX path -> bytes, plus the directories it owns."""

    files: dict[str, bytes]
    owned_dirs: tuple[str, ...]  # files here that the build did not produce are stale
    pack: RulePack


def rel_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX path (``..`` when outside it)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def load_for_build(path: Path, root: Path, version: str) -> CheckResult:
    """Check the policy set under ``path``, naming files relative to the repository root."""
    sources: list[tuple[str, str]] = []
    for file in policy_files(path):
        try:
            text = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            # Let the front door read everything and report the unreadable file.
            return load_policy_set(path, version=version)
        sources.append((rel_posix(file, root), text.replace("\r\n", "\n").replace("\r", "\n")))
    return load_policy_set(path, version=version, sources=sources)


def load_revision(root: Path, commit: str, policies_dir: str, version: str) -> CheckResult:
    """Check the policy set as it was at ``commit``, read from git objects only.

    File names are repo-relative, as in a work-tree build."""
    sources: list[tuple[str, str]] = []
    for path in gitrev.list_files(root, commit, policies_dir, ".esc"):
        if path.endswith("_test.esc"):
            continue
        data = gitrev.read_file(root, commit, path)
        if data is not None:
            text = data.decode("utf-8", "replace")
            sources.append((path, text.replace("\r\n", "\n").replace("\r", "\n")))
    return load_policy_set(Path(policies_dir), version=version, sources=sources)


def config_at(root: Path, commit: str) -> Config:
    """``escalade.yaml`` as it was at ``commit`` (defaults when it did not exist)."""
    data = gitrev.read_file(root, commit, CONFIG_NAME)
    if data is None:
        return Config(root=root)
    return parse_config(data.decode("utf-8", "replace"), root, f"{commit[:12]}:{CONFIG_NAME}")


def build_outputs(
    result: CheckResult,
    root: Path,
    output: Path,
    *,
    commit: str | None = None,
    codeowners_path: str | None = CODEOWNERS_PATH,
) -> BuildOutputs:
    """Render every artifact of a checked, error-free policy set.

    ``commit`` is stamped into release builds; the committed pack carries none.
    ``codeowners_path`` (repo-relative) is where CODEOWNERS goes; None writes none."""
    if result.pset is None or result.errors:
        raise BuildError("the policy set has errors; run `escalade check`")
    raw = build_pack(result.pset, commit=commit)
    # The runtime's own validation; the content hash was computed from this very dict.
    pack = RulePack.from_dict(raw, source="built pack", verify_hash=False)
    out = rel_posix(output, root)
    prefix = "" if out == "." else out + "/"
    files: dict[str, bytes] = {f"{prefix}{PACK_NAME}": canonical_bytes(raw)}
    runbooks = render_runbooks(
        pack, policy_rivals(result.pset), source_prefix=_up(f"{prefix}{RUNBOOK_DIR}")
    )
    for name, text in runbooks.items():
        files[f"{prefix}{RUNBOOK_DIR}/{name}"] = text.encode("utf-8")
    if codeowners_path is not None:
        files[codeowners_path] = render_codeowners(result.pset, output=prefix).encode("utf-8")
    return BuildOutputs(files, (f"{prefix}{RUNBOOK_DIR}",), pack)


def sources_inside(src: Path, root: Path) -> None:
    """Refuse (``BuildError``) policies outside the repository root: their CODEOWNERS
    entries and runbook links would point outside the repository."""
    if rel_posix(src, root).startswith(".."):
        raise BuildError(
            f"the policies at {src} are outside the repository at {root.resolve()}: "
            "build the policy set from the repository that holds it (its escalade.yaml)"
        )


def codeowners_target(config: Config, output: Path, codeowners: Path | None) -> str | None:
    """Where a build writes CODEOWNERS (repo-relative), or None for nowhere.

    ``--codeowners PATH`` says where (inside the repository); otherwise the
    repository's ``.github/CODEOWNERS`` only when the output directory is the
    configured one, so ``build -o DIR`` elsewhere leaves the repository's alone."""
    if codeowners is not None:
        rel = rel_posix(codeowners, config.root)
        if rel.startswith("..") or rel == ".":
            raise BuildError(
                f"--codeowners {codeowners} is outside the repository at {config.root.resolve()}"
            )
        return rel
    if output.resolve() == config.output_path.resolve():
        return CODEOWNERS_PATH
    return None


def _up(rel_dir: str) -> str:
    """The relative path from ``rel_dir`` back to the repository root (``../..``)."""
    if rel_dir.startswith(".."):
        return ""  # output outside the repository: links to sources cannot be relative
    return "/".join([".."] * len(rel_dir.split("/")))


def stale_files(outputs: BuildOutputs, root: Path) -> list[tuple[str, bytes | None, bytes | None]]:
    """(path, on disk or None, expected or None) for every file that differs."""
    found: list[tuple[str, bytes | None, bytes | None]] = []
    for rel, want in sorted(outputs.files.items()):
        target = root / rel
        have = target.read_bytes() if target.is_file() else None
        if have != want:
            found.append((rel, have, want))
    for d in outputs.owned_dirs:
        folder = root / d
        if folder.is_dir():
            for f in sorted(folder.rglob("*")):
                rel = rel_posix(f, root)
                if f.is_file() and rel not in outputs.files:
                    found.append((rel, f.read_bytes(), None))
    return found


def unified_diff(rel: str, have: bytes | None, want: bytes | None) -> str:
    """A unified diff from what is on disk to what the build would write."""
    a = have.decode("utf-8", "replace").splitlines(keepends=True) if have is not None else []
    b = want.decode("utf-8", "replace").splitlines(keepends=True) if want is not None else []
    lines = difflib.unified_diff(
        a,
        b,
        fromfile=f"a/{rel}" if have is not None else "/dev/null",
        tofile=f"b/{rel}" if want is not None else "/dev/null",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def write_outputs(outputs: BuildOutputs, root: Path) -> list[str]:
    """Write every changed file, remove stale ones; returns the paths touched."""
    touched = []
    for rel, _have, want in stale_files(outputs, root):
        target = root / rel
        if want is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(want)
        touched.append(rel)
    return touched


def resolve_config(path: Path | None) -> Config:
    """The configuration for a build of ``path`` (escalade.yaml above it, else above cwd)."""
    root = (find_root(path) if path is not None else None) or find_root(Path.cwd())
    return load_config(root if root is not None else Path.cwd().resolve())


@dataclass(frozen=True, slots=True)
class ReleaseBuild:
    """A build stamped with its source commit, written under ``out``."""

    outputs: BuildOutputs
    commit: str
    out: str  # repo-relative output directory
    written: list[str]


def build_release(
    config: Config,
    path: Path | None,
    output: Path | None,
    rev: str | None,
    codeowners_file: Path | None = None,
) -> ReleaseBuild:
    """Build and write a pack stamped with its source commit: of revision ``rev``, or of a
    clean HEAD. :class:`BuildError` (its ``report`` holds the diagnostics, if any) when
    nothing could be built."""
    root = gitrev.repo_root(config.root)
    if rev is not None:
        commit = gitrev.resolve(root, rev)
        at_rev = config_at(root, commit)
        folder = at_rev.policies.strip("/") or "."
        result = load_revision(root, commit, folder, at_rev.version)
        out = output if output is not None else root / "out" / commit[:12]
        codeowners: str | None = f"{rel_posix(out, root)}/CODEOWNERS"
        if codeowners_file is not None:
            codeowners = codeowners_target(config, out, codeowners_file)
    else:
        commit = gitrev.resolve(root, "HEAD")
        src = path if path is not None else config.policies_path
        sources_inside(src, root)
        dirty = gitrev.dirty(root, [rel_posix(src, root), CONFIG_NAME])
        if dirty:
            raise BuildError(
                "refusing to stamp commit "
                + commit[:12]
                + ": uncommitted changes in "
                + ", ".join(dirty[:5])
            )
        result = load_for_build(src, root, config.version)
        out = output if output is not None else config.output_path
        codeowners = codeowners_target(config, out, codeowners_file)
    if result.pset is None or result.errors:
        raise BuildError(
            f"the policy set at {commit[:12]} has errors; nothing built",
            report=render_text(result.diagnostics, result.diags.sources, color=False),
        )
    try:
        outputs = build_outputs(result, root, out, commit=commit, codeowners_path=codeowners)
    except (CodeownersError, PackError) as exc:
        raise BuildError(str(exc)) from None
    try:
        written = write_outputs(outputs, root)
    except OSError as exc:
        raise BuildError(f"cannot write {exc.filename}: {exc.strerror}") from None
    return ReleaseBuild(outputs, commit, rel_posix(out, root), written)
