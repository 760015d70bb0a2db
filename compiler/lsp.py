"""``escalade lsp``: the language server for editors, over stdio (pygls).

Features: diagnostics of the whole set as you type (debounced; only the changed file
is parsed again), hover, go to definition, find references, completion, formatting
(``escalade fmt``) and "did you mean" quick fixes. See ``docs/lsp.md``.

    python -m escalade.compiler.lsp          # the same server as `escalade lsp`
"""

from __future__ import annotations

import time
from pathlib import Path

from lsprotocol import types as t
from pygls.uris import to_fs_path

from escalade.compiler.fmt import format_source
from escalade.compiler.lsp_actions import suggestion_fix
from escalade.compiler.lsp_complete import complete
from escalade.compiler.lsp_hover import hover_text
from escalade.compiler.lsp_index import Occurrence
from escalade.compiler.lsp_server import DEFAULT_DEBOUNCE_MS, EscaladeServer
from escalade.compiler.lsp_workspace import Analysis, is_policy_file
from escalade.compiler.nodes import Span

__all__ = ["DEFAULT_DEBOUNCE_MS", "build_server", "main", "serve"]

COMPLETION_KINDS = {
    "field": t.CompletionItemKind.Field,
    "value": t.CompletionItemKind.EnumMember,
    "person": t.CompletionItemKind.Reference,
    "team": t.CompletionItemKind.Reference,
    "channel": t.CompletionItemKind.Reference,
    "policy": t.CompletionItemKind.Class,
    "template": t.CompletionItemKind.Function,
    "event": t.CompletionItemKind.Event,
    "object": t.CompletionItemKind.Module,
    "duration": t.CompletionItemKind.Unit,
    "action": t.CompletionItemKind.Function,
    "level": t.CompletionItemKind.Keyword,
    "keyword": t.CompletionItemKind.Keyword,
}
TRIGGER_CHARACTERS = [".", " ", "(", ","]


def _path(uri: str) -> Path | None:
    fs = to_fs_path(uri)
    return Path(fs).resolve() if fs is not None and uri.startswith("file:") else None


async def _file_in_run(ls: EscaladeServer, uri: str) -> tuple[Analysis, str] | None:
    """The current analysis of the set ``uri`` belongs to, and the file's name in it
    (None: not a policy file, or not in the set)."""
    path = _path(uri)
    if path is None or not is_policy_file(path):
        return None
    run = await ls.current(path)
    name = run.name_of(path)
    return None if name is None else (run, name)


async def _symbol_at(
    ls: EscaladeServer, uri: str, pos: t.Position
) -> tuple[Analysis, Occurrence] | None:
    """The analysis of the file's set and the declared or used name under the cursor."""
    found = await _file_in_run(ls, uri)
    if found is None:
        return None
    run, name = found
    line, col = ls.to_server(run.texts[name], pos)
    occ = run.index.at(name, line, col)
    return None if occ is None else (run, occ)


def _register_sync(ls: EscaladeServer) -> None:
    """Open, edit, save and close: each re-checks the file's set (edits after a pause)."""

    def changed(uri: str, delay: float) -> None:
        path = _path(uri)
        if path is not None and is_policy_file(path):
            ls.schedule(ls.folder_of(path), delay)

    @ls.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: t.DidOpenTextDocumentParams) -> None:
        changed(params.text_document.uri, 0)

    @ls.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: t.DidChangeTextDocumentParams) -> None:
        changed(params.text_document.uri, ls.debounce)

    @ls.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: t.DidSaveTextDocumentParams) -> None:
        changed(params.text_document.uri, 0)

    @ls.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: t.DidCloseTextDocumentParams) -> None:
        changed(params.text_document.uri, 0)

    @ls.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(params: t.DidChangeWatchedFilesParams) -> None:
        ls.folders.clear()  # an escalade.yaml may have moved the policies folder
        for change in params.changes:
            changed(change.uri, 0)


def _register_navigation(ls: EscaladeServer) -> None:
    """Hover, go to definition and find references."""

    @ls.feature(t.TEXT_DOCUMENT_HOVER)
    async def hover(params: t.HoverParams) -> t.Hover | None:
        found = await _symbol_at(ls, params.text_document.uri, params.position)
        if found is None:
            return None
        run, occ = found
        pset = run.pset
        text = None if pset is None else hover_text(occ.key, pset, time.time())
        if text is None:
            return None
        where = ls.location(run, occ.span)
        return t.Hover(
            contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text),
            range=where.range if where else None,
        )

    @ls.feature(t.TEXT_DOCUMENT_DEFINITION)
    async def definition(params: t.DefinitionParams) -> list[t.Location] | None:
        found = await _symbol_at(ls, params.text_document.uri, params.position)
        if found is None:
            return None
        run, occ = found
        spans = run.index.definitions(occ.key)
        return [loc for s in spans if (loc := ls.location(run, s)) is not None] or None

    @ls.feature(t.TEXT_DOCUMENT_REFERENCES)
    async def references(params: t.ReferenceParams) -> list[t.Location] | None:
        found = await _symbol_at(ls, params.text_document.uri, params.position)
        if found is None:
            return None
        run, occ = found
        spans = run.index.references(occ.key, params.context.include_declaration)
        return [loc for s in spans if (loc := ls.location(run, s)) is not None]


def _register_editing(ls: EscaladeServer) -> None:
    """Completion and formatting."""

    @ls.feature(
        t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS)
    )
    async def completion(params: t.CompletionParams) -> t.CompletionList | None:
        path = _path(params.text_document.uri)
        if path is None or not is_policy_file(path):
            return None
        text = ls.workspace.get_text_document(params.text_document.uri).source
        run = await ls.symbols(path)
        line, col = ls.to_server(text, params.position)
        items = [
            t.CompletionItem(
                label=item.label,
                kind=COMPLETION_KINDS.get(item.kind),
                detail=item.detail or None,
                text_edit=t.TextEdit(
                    t.Range(ls.to_position(text, line, item.start_col), params.position),
                    item.label,
                ),
            )
            for item in complete(text, line, col, run.pset)
        ]
        return t.CompletionList(is_incomplete=False, items=items)

    @ls.feature(t.TEXT_DOCUMENT_FORMATTING)
    async def formatting(params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
        path = _path(params.text_document.uri)
        if path is None or not is_policy_file(path):
            return None
        text = ls.workspace.get_text_document(params.text_document.uri).source
        result = await ls.in_pool(format_source, path.name, text)
        if result.formatted is None or not result.changed:
            return []
        lines = text.split("\n")
        end = ls.workspace.position_codec.position_to_client_units(
            lines, t.Position(len(lines) - 1, len(lines[-1]))
        )
        return [t.TextEdit(t.Range(t.Position(0, 0), end), result.formatted)]


def _overlaps(span: Span, first: tuple[int, int], last: tuple[int, int]) -> bool:
    return (span.line, span.col) <= last and first <= (span.end_line, span.end_col)


def _register_actions(ls: EscaladeServer) -> None:
    """Quick fixes: apply a diagnostic's "did you mean" suggestion."""

    @ls.feature(
        t.TEXT_DOCUMENT_CODE_ACTION,
        t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]),
    )
    async def code_action(params: t.CodeActionParams) -> list[t.CodeAction] | None:
        found = await _file_in_run(ls, params.text_document.uri)
        if found is None:
            return None
        run, name = found
        text = run.texts[name]
        first = ls.to_server(text, params.range.start)
        last = ls.to_server(text, params.range.end)
        actions = []
        for d in run.diagnostics_by_file()[name]:
            fix = suggestion_fix(d, text) if _overlaps(d.span, first, last) else None
            if fix is None:
                continue
            edit = t.TextEdit(ls.to_range(text, fix.span), fix.new_text)
            actions.append(
                t.CodeAction(
                    title=fix.title,
                    kind=t.CodeActionKind.QuickFix,
                    diagnostics=[ls.to_diagnostic(run, d)],
                    edit=t.WorkspaceEdit(changes={params.text_document.uri: [edit]}),
                    is_preferred=True,
                )
            )
        return actions


def build_server(debounce_ms: int = DEFAULT_DEBOUNCE_MS) -> EscaladeServer:
    """A server with every feature registered (not started)."""
    ls = EscaladeServer(debounce_ms)
    _register_sync(ls)
    _register_navigation(ls)
    _register_editing(ls)
    _register_actions(ls)
    return ls


def serve(debounce_ms: int = DEFAULT_DEBOUNCE_MS) -> None:
    """Run the language server on stdin/stdout until the editor says exit."""
    build_server(debounce_ms).start_io()


def main() -> None:
    serve()


if __name__ == "__main__":
    main()
