"""The language server's state: open buffers → whole-set analyses → published diagnostics.

Each policy set (see :func:`escalade.compiler.lsp_workspace.set_folder`) has its
latest analysis. An edit schedules a new one after a quiet period (the debounce);
opening, saving or closing a file runs one at once. Analyses run one at a time on a
worker thread, so hover, completion and the rest answer while a check runs.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace.position_codec import ServerTextPosition

from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Diagnostic
from escalade.compiler.lsp_workspace import Analysis, analyze, set_folder

DEFAULT_DEBOUNCE_MS = 300
_R = TypeVar("_R")


class EscaladeServer(LanguageServer):
    """pygls server plus the analyses of every policy set an open file belongs to."""

    def __init__(self, debounce_ms: int = DEFAULT_DEBOUNCE_MS) -> None:
        super().__init__("escalade", version("escalade"))
        self.debounce = debounce_ms / 1000
        self.runs: dict[Path, Analysis] = {}  # folder → latest analysis
        self.complete_runs: dict[Path, Analysis] = {}  # folder → latest with every file parsed
        self.timers: dict[Path, asyncio.TimerHandle] = {}
        self.folders: dict[Path, Path] = {}  # directory of a file → its set's folder
        self.published: dict[str, list[t.Diagnostic]] = {}  # uri → what the editor shows
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="escalade-check")
        self.tasks: set[asyncio.Task[Analysis]] = set()  # scheduled analyses under way

    # ------------------------------------------------------------------ files and sets

    def folder_of(self, path: Path) -> Path:
        parent = path.resolve().parent
        if parent not in self.folders:
            self.folders[parent] = set_folder(path)
        return self.folders[parent]

    def open_documents(self) -> dict[Path, tuple[str, str, int | None]]:
        """Resolved path → (uri, text, version) of every open ``file:`` document."""
        out: dict[Path, tuple[str, str, int | None]] = {}
        for uri, doc in self.workspace.text_documents.items():
            fs = to_fs_path(uri)
            if fs is not None:
                out[Path(fs).resolve()] = (uri, doc.source, doc.version)
        return out

    def uri_of(self, path: Path) -> str:
        opened = self.open_documents().get(path)
        return opened[0] if opened else (from_fs_path(str(path)) or path.as_uri())

    async def in_pool(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # ------------------------------------------------------------------ analyses

    def schedule(self, folder: Path, delay: float) -> None:
        """Analyse ``folder`` after ``delay`` seconds unless another edit comes first."""
        old = self.timers.pop(folder, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self.timers.pop(folder, None)
            task = loop.create_task(self.refresh(folder))
            self.tasks.add(task)
            task.add_done_callback(self.finished)

        self.timers[folder] = loop.call_later(delay, fire)

    def finished(self, task: asyncio.Task[Analysis]) -> None:
        """A scheduled analysis ended; a crash is shown to the user, never swallowed."""
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.window_log_message(
                t.LogMessageParams(
                    t.MessageType.Error, f"escalade check failed: {task.exception()!r}"
                )
            )

    async def refresh(self, folder: Path) -> Analysis:
        """Check the whole set now, with the open buffers, and publish its diagnostics."""
        opened = self.open_documents()
        buffers = {p: text for p, (_, text, _) in opened.items()}
        run: Analysis = await self.in_pool(analyze, folder, buffers)
        self.runs[folder] = run
        if run.complete:
            self.complete_runs[folder] = run
        self.publish(run, opened)
        return run

    def is_stale(self, run: Analysis) -> bool:
        for path, (_, text, _) in self.open_documents().items():
            if path.is_relative_to(run.folder):
                name = run.name_of(path)
                if name is None or run.texts.get(name) != text:
                    return True
        return False

    async def current(self, path: Path) -> Analysis:
        """The analysis of ``path``'s set for exactly the open buffers (run now if needed)."""
        folder = self.folder_of(path)
        run = self.runs.get(folder)
        if run is None or self.is_stale(run):
            timer = self.timers.pop(folder, None)
            if timer is not None:
                timer.cancel()
            run = await self.refresh(folder)
        return run

    async def symbols(self, path: Path) -> Analysis:
        """The latest analysis whose files all parsed (names for completion), else the latest."""
        folder = self.folder_of(path)
        run = self.complete_runs.get(folder) or self.runs.get(folder)
        return run if run is not None else await self.refresh(folder)

    # ------------------------------------------------------------------ positions

    def to_position(self, text: str, line: int, col: int) -> t.Position:
        """The compiler's 1-based (line, column) as a client position."""
        lines = text.split("\n")
        codec = self.workspace.position_codec
        return codec.position_to_client_units(lines, t.Position(line - 1, col - 1))

    def to_range(self, text: str, span: n.Span) -> t.Range:
        return t.Range(
            self.to_position(text, span.line, span.col),
            self.to_position(text, span.end_line, span.end_col),
        )

    def to_server(self, text: str, pos: t.Position) -> tuple[int, int]:
        """A client position as the compiler's 1-based (line, column)."""
        lines = text.split("\n")
        at: ServerTextPosition = self.workspace.position_codec.position_from_client_units(
            lines, t.Position(pos.line, pos.character)
        )
        return at.line + 1, at.character + 1

    def location(self, run: Analysis, span: n.Span) -> t.Location | None:
        path = run.paths.get(span.file)
        if path is None:
            return None
        return t.Location(self.uri_of(path), self.to_range(run.texts[span.file], span))

    # ------------------------------------------------------------------ diagnostics

    def to_diagnostic(self, run: Analysis, d: Diagnostic) -> t.Diagnostic:
        related = []
        for note in d.notes:
            where = self.location(run, note.span)
            if where is not None:
                related.append(t.DiagnosticRelatedInformation(where, note.message))
        return t.Diagnostic(
            range=self.to_range(run.texts[d.span.file], d.span),
            message=d.message + (f"\n{d.help}" if d.help else ""),
            severity=t.DiagnosticSeverity.Error
            if d.severity == "error"
            else t.DiagnosticSeverity.Warning,
            code=d.code,
            source="escalade",
            related_information=related or None,
        )

    def publish(self, run: Analysis, opened: dict[Path, tuple[str, str, int | None]]) -> None:
        """Send each file's diagnostics when they changed (files left the set: cleared)."""
        found = run.diagnostics_by_file()
        wanted: dict[str, tuple[list[t.Diagnostic], int | None]] = {}
        for name, in_file in found.items():
            path = run.paths[name]
            uri, _, doc_version = opened.get(path, (self.uri_of(path), "", None))
            wanted[uri] = ([self.to_diagnostic(run, d) for d in in_file], doc_version)
        for uri, shown in list(self.published.items()):
            fs = to_fs_path(uri)
            inside = fs is not None and Path(fs).resolve().is_relative_to(run.folder)
            if inside and uri not in wanted and shown:
                wanted[uri] = ([], None)
        open_uris = {uri for uri, _, _ in opened.values()}
        for uri, (diags, doc_version) in wanted.items():
            before = self.published.get(uri)
            if before == diags or (before is None and not diags and uri not in open_uris):
                continue
            self.published[uri] = diags
            self.text_document_publish_diagnostics(
                t.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=doc_version)
            )
