"""Which policy set a file belongs to, and one whole-set analysis with the editor's buffers.

A file's set is the ``policies:`` folder of the nearest ``escalade.yaml`` above it
(when the file lies inside that folder), else the file's own folder::

    folder = set_folder(Path("/repo/policies/support.esc"))     # /repo/policies
    run = analyze(folder, {path: "text being edited"})
    run.result.diagnostics, run.index, run.texts

Open buffers replace the files on disk; every other file is read from disk. Parsing
goes through the compiler's parse cache (keyed by content), so after an edit only
the changed file is parsed again; the whole-set analysis runs every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from escalade.compiler import MAX_FILE_BYTES, CheckResult, load_policy_set, policy_files
from escalade.compiler.config import ConfigError, find_root, load_config
from escalade.compiler.diagnostics import Diagnostic
from escalade.compiler.lsp_index import Index, build_index
from escalade.compiler.model import PolicySet


def is_policy_file(path: Path) -> bool:
    """A policy file of a set (policy tests, ``*_test.esc``, are not)."""
    return path.suffix == ".esc" and not path.name.endswith("_test.esc")


def set_folder(file: Path) -> Path:
    """The folder whose ``.esc`` files are checked together with ``file``."""
    file = file.resolve()
    root = find_root(file.parent)
    if root is not None:
        try:
            policies = load_config(root).policies_path.resolve()
        except ConfigError:
            return file.parent
        if file.is_relative_to(policies):
            return policies
    return file.parent


@dataclass(frozen=True)
class Analysis:
    """One whole-set check: the texts it saw (by source name) and what it found."""

    folder: Path
    paths: dict[str, Path]  # source name (relative to the folder) → file
    texts: dict[str, str]  # source name → the text that was checked
    result: CheckResult
    index: Index

    @property
    def pset(self) -> PolicySet | None:
        return self.result.pset

    @property
    def complete(self) -> bool:
        """Every file parsed: the set's symbols are all known."""
        return self.pset is not None and len(self.pset.files) == len(self.texts)

    def name_of(self, path: Path) -> str | None:
        resolved = path.resolve()
        return next((k for k, p in self.paths.items() if p == resolved), None)

    def diagnostics_by_file(self) -> dict[str, list[Diagnostic]]:
        out: dict[str, list[Diagnostic]] = {name: [] for name in self.paths}
        for d in self.result.diagnostics:
            if d.span.file in out:
                out[d.span.file].append(d)
        return out


def _read(file: Path) -> str | None:
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            return None
        return file.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def analyze(folder: Path, buffers: Mapping[Path, str]) -> Analysis:
    """Check the whole set of ``folder``; ``buffers`` (resolved paths) replace disk contents."""
    folder = folder.resolve()
    files = set(policy_files(folder)) if folder.is_dir() else set()
    files = {f.resolve() for f in files}
    files |= {p for p in buffers if p.is_relative_to(folder) and is_policy_file(p)}
    paths: dict[str, Path] = {}
    texts: dict[str, str] = {}
    for file in sorted(files):
        text = buffers.get(file)
        if text is None:
            text = _read(file)
        if text is not None:
            name = file.relative_to(folder).as_posix()
            paths[name] = file
            texts[name] = text
    result = load_policy_set(folder, sources=list(texts.items()))
    index = build_index(result.pset) if result.pset is not None else Index()
    return Analysis(folder, paths, texts, result, index)
