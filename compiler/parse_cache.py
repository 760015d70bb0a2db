"""Parse results kept on disk, so a second ``escalade check`` does not parse again.

One entry per file: the typed declarations and the parse diagnostics of one
text at one path, keyed by a hash of the path, the text, the grammar and the
code that builds the tree (``parse.py``, ``nodes.py``, ``diagnostics.py``,
the duration reader) plus the escalade and Python versions, so a new
compiler never reads an old compiler's trees::

    cache = ParseCache(Path(".escalade-cache"))
    tree = parse_source("a.esc", text, diags, cache)   # parsed, or read back

Beside them, per policy set, the answers of the whole-set analysis's costly
questions (``Answers``: a question's key is a digest of everything its search
reads, so an answer is reused only for the very same question).

The cache never changes an answer and never fails a check: entries are
written to a temporary file and renamed into place (a reader sees a whole
entry or none), anything that cannot be read back for whatever reason is a
miss, and a directory that cannot be written is left alone. Reading back
builds only the node and diagnostic classes (any other class in an entry
makes it a miss), so an entry cannot make the checker run other code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from functools import cache
from importlib import metadata, resources
from operator import attrgetter
from pathlib import Path
from typing import Any

from escalade.compiler import diagnostics
from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Diagnostic, Dropped, Note
from escalade.runtime import clock

__all__ = [
    "CACHE_DIR_VARIABLE",
    "CACHE_NAME",
    "CACHE_VARIABLE",
    "MAX_ENTRIES",
    "Answers",
    "ParseCache",
    "Parsed",
    "cache_directory",
]

CACHE_NAME = ".escalade-cache"
CACHE_VARIABLE = "ESCALADE_CACHE"
"""``off`` (or ``0``, ``no``, ``false``) keeps no parse results on disk."""
CACHE_DIR_VARIABLE = "ESCALADE_CACHE_DIR"
"""Where parse results are kept, instead of the default of :func:`cache_directory`."""

Parsed = tuple[tuple[n.Decl, ...] | None, tuple[Diagnostic | Dropped, ...]]
"""What one file's parse leaves: its declarations (None after an error), diagnostics and
what syntax errors made the parser skip."""

LAYOUT = 1
"""The entry format; part of the directory name, so a new format starts afresh."""

MAX_ENTRIES = 20_000
"""Entries kept per cache directory; past this the oldest half is removed."""

_STALE_TEMPORARY = 3600  # seconds after which a temporary file is an abandoned write


def _classes() -> dict[str, type]:
    found = {
        name: value
        for name, value in vars(n).items()
        if isinstance(value, type) and is_dataclass(value) and value.__module__ == n.__name__
    }
    found.update({"Diagnostic": Diagnostic, "Note": Note, "Dropped": Dropped})
    return found


_CLASSES = _classes()
_MODULES = {n.__name__, Diagnostic.__module__}


def _reducer(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    """Pickle as ``cls(*fields)``: rebuilding through the constructor is twice as fast
    as the dataclass ``__setstate__``, and the entries are smaller."""
    names = [f.name for f in fields(cls)]
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (cls, (get(obj),))
    return lambda obj: (cls, get(obj))


_DISPATCH = {cls: _reducer(cls) for cls in _CLASSES.values()}


class _Unpickler(pickle.Unpickler):
    """Rebuilds nodes and diagnostics only; any other global makes the entry a miss."""

    def find_class(self, module: str, name: str) -> Any:
        cls = _CLASSES.get(name)
        if cls is None or module not in _MODULES or cls.__module__ != module:
            raise pickle.UnpicklingError(f"{module}.{name} is not a node class")
        return cls


@cache
def fingerprint() -> bytes:
    """The grammar, the tree-building code and the versions an entry depends on."""
    digest = hashlib.sha256(f"layout {LAYOUT} python {sys.version_info[:2]}".encode())
    try:
        digest.update(metadata.version("escalade").encode())
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        digest.update(b"unversioned")
    grammar = resources.files("escalade.grammar").joinpath("escalade.lark")
    digest.update(grammar.read_bytes())
    for source in (
        Path(__file__).with_name("parse.py"),
        Path(n.__file__),
        Path(diagnostics.__file__),
        Path(clock.__file__),
    ):
        try:
            digest.update(source.read_bytes())
        except OSError:  # pragma: no cover - installed without sources: versions decide
            digest.update(source.name.encode())
    return digest.digest()


def cache_directory(start: Path) -> Path | None:
    """Where ``check`` keeps parse results for the set at ``start``, or None when disabled.

    ``$ESCALADE_CACHE_DIR`` when set; else ``.escalade-cache/`` beside the nearest
    ``escalade.yaml`` (listed in ``.gitignore``); else ``$XDG_CACHE_HOME/escalade``
    (``~/.cache/escalade``).
    """
    from escalade.compiler.config import find_root  # the YAML stack only when asked

    if os.environ.get(CACHE_VARIABLE, "").strip().lower() in ("0", "off", "no", "false"):
        return None
    chosen = os.environ.get(CACHE_DIR_VARIABLE, "").strip()
    if chosen:
        return Path(chosen)
    root = find_root(start)
    if root is not None:
        return root / CACHE_NAME
    home = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(home) if home else Path.home() / ".cache") / "escalade"


class ParseCache:
    """Parse results on disk under ``directory`` (created on the first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / f"parse-v{LAYOUT}"
        self.hits = self.misses = self.written = 0
        self._writable = True

    def key(self, path: str, digest: str) -> str:
        """The entry name for ``path`` whose text has the SHA-256 ``digest``."""
        h = hashlib.sha256(fingerprint())
        h.update(path.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update(digest.encode())
        return h.hexdigest()

    def load(self, key: str) -> Parsed | None:
        """The entry, or None when it is absent or cannot be read back whole."""
        try:
            data = (self.directory / key).read_bytes()
            value = _Unpickler(io.BytesIO(data)).load()  # node classes only
        except Exception:  # any damage to an entry is a miss, never a failed check
            self.misses += 1
            return None
        if not _well_formed(value):
            self.misses += 1
            return None
        self.hits += 1
        return value  # type: ignore[no-any-return]

    def store(self, key: str, value: Parsed) -> None:
        """Write the entry atomically; give up quietly (for this run) when the directory
        cannot be written."""
        if not self._writable:
            return
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _DISPATCH
        try:
            pickler.dump(value)
            self._write(key, buffer.getvalue())
        except Exception:  # unwritable, full disk, unpicklable: run without the cache
            self._writable = False
            return
        self.written += 1

    def _write(self, key: str, data: bytes) -> None:
        self._write_file(self.directory / key, data)

    def _write_file(self, file: Path, data: bytes) -> None:
        """Write ``data`` to ``file`` atomically: a temporary file beside it, then a rename."""
        if not file.parent.is_dir():
            file.parent.mkdir(parents=True, exist_ok=True)
            tag = file.parent.parent / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# escalade's parse cache; safe to delete.\n"
                )
        fd, temporary = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def answers(self, name: str, fingerprint: str) -> Answers:
        """The analysis answers kept for the set called ``name`` (empty when there are none
        for this ``fingerprint`` of the analysis code, or they cannot be read)."""
        file = (
            self.directory.parent
            / f"answers-v{LAYOUT}"
            / (hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest() + ".json")
        )
        known: dict[str, int | str] = {}
        try:
            doc = json.loads(file.read_bytes())
            if doc.get("fingerprint") == fingerprint and isinstance(doc.get("answers"), dict):
                known = {
                    k: v
                    for k, v in doc["answers"].items()
                    if isinstance(k, str) and isinstance(v, int | str)
                }
        except Exception:  # absent, damaged or foreign: start with no answers
            known = {}
        return Answers(file, fingerprint, known, self)

    def prune(self, keep: int = MAX_ENTRIES) -> None:
        """Past ``keep`` entries, remove the oldest half; remove abandoned temporary files."""
        if not self.written:
            return
        try:
            entries = list(os.scandir(self.directory))
            now = time.time()
            for e in entries:
                if e.name.startswith(".tmp-") and now - e.stat().st_mtime > _STALE_TEMPORARY:
                    Path(e.path).unlink(missing_ok=True)
            kept = [e for e in entries if not e.name.startswith(".tmp-")]
            if len(kept) <= keep:
                return
            kept.sort(key=lambda e: e.stat().st_mtime)
            for e in kept[: len(kept) - keep // 2]:
                Path(e.path).unlink(missing_ok=True)
        except OSError:
            return


def _well_formed(value: Any) -> bool:
    """The shape of an entry (its classes are already known to be node classes)."""
    if not (isinstance(value, tuple) and len(value) == 2):
        return False
    decls, diags = value
    if decls is not None and not (
        isinstance(decls, tuple) and all(isinstance(d, n.Decl) for d in decls)
    ):
        return False
    return isinstance(diags, tuple) and all(isinstance(d, Diagnostic | Dropped) for d in diags)


class Answers:
    """Answers to the analysis's costly questions for one policy set, by question key.

    ``get`` and ``put`` record which keys this run asked; ``save`` keeps exactly those
    (so the file follows the set instead of growing), written like a parse entry."""

    def __init__(
        self, file: Path, fingerprint: str, known: dict[str, int | str], owner: ParseCache
    ) -> None:
        self.file = file
        self.fingerprint = fingerprint
        self._known = known
        self._asked: dict[str, int | str] = {}
        self._owner = owner
        self.hits = 0

    def get(self, key: str) -> int | str | None:
        found = self._known.get(key)
        if found is not None:
            self._asked[key] = found
            self.hits += 1
        return found

    def put(self, key: str, answer: int | str) -> None:
        self._asked[key] = answer

    def save(self) -> None:
        """Write this run's answers when they differ from what was read."""
        if self._asked == self._known or not self._owner._writable:
            return
        doc = {"fingerprint": self.fingerprint, "answers": self._asked}
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        try:
            self._owner._write_file(self.file, data)
        except Exception:  # unwritable: the next run answers again
            return
