"""``escalade lsp``: a real client (pygls') talks to the server process over stdio.

Each test copies the bundled policy set into a temporary repository (with its own
``escalade.yaml``), starts the server as a subprocess and speaks LSP JSON-RPC to it:
diagnostics with code and range, the "did you mean" quick fix, hover, definition,
references, completion and formatting.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as t
from pygls.lsp.client import LanguageClient

from escalade.compiler import load_policy_set
from escalade.compiler.fmt import format_source
from escalade.compiler.lsp_actions import offset_of, suggestion_fix
from escalade.compiler.lsp_complete import complete
from escalade.compiler.lsp_workspace import analyze
from escalade.compiler.parse import parser
from tests.conftest import REPO

# An answer that never comes fails the test instead of hanging it (not a timing check).
WAIT = 60.0
# the installed command, next to the interpreter running the tests
SERVER = [str(Path(sys.executable).parent / "escalade"), "lsp"]


@pytest.fixture
def policy_repo(tmp_path: Path) -> Path:
    """A copy of the bundled policy files, in ``policies/`` under an ``escalade.yaml``."""
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\npolicies: policies/\n", "utf-8")
    target = tmp_path / "policies"
    target.mkdir()
    for f in (REPO / "policies").glob("*.esc"):
        if not f.name.endswith("_test.esc"):
            shutil.copy(f, target / f.name)
    return tmp_path


@dataclass
class Session:
    client: LanguageClient
    published: asyncio.Queue[t.PublishDiagnosticsParams] = field(default_factory=asyncio.Queue)

    async def diagnostics(self, uri: str, version: int | None = None) -> list[t.Diagnostic]:
        """The next diagnostics published for ``uri`` (for that document ``version``)."""
        while True:
            p = await asyncio.wait_for(self.published.get(), WAIT)
            if p.uri == uri and (version is None or p.version == version):
                return list(p.diagnostics)

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        self.client.text_document_did_open(
            t.DidOpenTextDocumentParams(
                text_document=t.TextDocumentItem(
                    uri=uri, language_id="escalade", version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, version: int, edits: list[t.TextEdit]) -> None:
        changes: list[t.TextDocumentContentChangeEvent] = [
            t.TextDocumentContentChangePartial(range=e.range, text=e.new_text) for e in edits
        ]
        self.client.text_document_did_change(
            t.DidChangeTextDocumentParams(
                text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=changes,
            )
        )


@asynccontextmanager
async def session(root: Path, command: list[str] = SERVER) -> AsyncIterator[Session]:
    client = LanguageClient("escalade-test", "1")
    s = Session(client)

    @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: t.PublishDiagnosticsParams) -> None:
        s.published.put_nowait(params)

    await client.start_io(*command)
    await asyncio.wait_for(
        client.initialize_async(
            t.InitializeParams(
                capabilities=t.ClientCapabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[t.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            )
        ),
        WAIT,
    )
    client.initialized(t.InitializedParams())
    try:
        yield s
    finally:
        await asyncio.wait_for(client.shutdown_async(None), WAIT)
        client.exit(None)
        await asyncio.wait_for(client.stop(), WAIT)


def run(scenario: Callable[[], object]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def apply(text: str, edits: list[t.TextEdit]) -> str:
    """``text`` with LSP edits applied (ASCII text: UTF-16 units are characters)."""
    lines = text.split("\n")

    def offset(p: t.Position) -> int:
        return sum(len(x) + 1 for x in lines[: p.line]) + p.character

    for e in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end) :]
    return text


def position_of(text: str, needle: str, nth: int = 0) -> t.Position:
    """Where the ``nth`` occurrence of ``needle`` starts in ``text``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at)
    return t.Position(line, at - (text.rfind("\n", 0, at) + 1))


# --------------------------------------------------------------------------- diagnostics


def test_enum_typo_is_diagnosed_and_the_quick_fix_clears_it(policy_repo: Path) -> None:
    path = policy_repo / "policies" / "support.esc"
    original = path.read_text("utf-8")
    assert "ticket.priority == high" in original
    typo = original.replace("ticket.priority == high", "ticket.priority == hihg", 1)

    async def scenario() -> None:
        async with session(policy_repo) as s:
            uri = s.open(path, typo)
            diags = await s.diagnostics(uri, version=1)
            assert [d.code for d in diags] == ["E104"]
            (diag,) = diags
            start = position_of(typo, "hihg")
            assert diag.range == t.Range(start, t.Position(start.line, start.character + 4))
            assert diag.severity == t.DiagnosticSeverity.Error
            assert "did you mean 'high'?" in diag.message

            actions = await asyncio.wait_for(
                s.client.text_document_code_action_async(
                    t.CodeActionParams(
                        text_document=t.TextDocumentIdentifier(uri=uri),
                        range=diag.range,
                        context=t.CodeActionContext(diagnostics=[diag]),
                    )
                ),
                WAIT,
            )
            assert actions is not None and len(actions) == 1
            action = actions[0]
            assert isinstance(action, t.CodeAction)
            assert action.kind == t.CodeActionKind.QuickFix
            assert action.edit is not None and action.edit.changes is not None
            edits = list(action.edit.changes[uri])
            assert [e.new_text for e in edits] == ["high"]
            assert apply(typo, edits) == original

            s.change(uri, 2, edits)
            assert await s.diagnostics(uri, version=2) == []

    run(scenario)


def test_an_edit_in_one_file_is_checked_against_the_whole_set(policy_repo: Path) -> None:
    """Removing a person from the directory makes the policy that names it fail (E101)."""
    directory = policy_repo / "policies" / "directory.esc"
    text = directory.read_text("utf-8")
    line = next(x for x in text.split("\n") if x.startswith("person jon "))

    async def scenario() -> None:
        async with session(policy_repo) as s:
            uri = s.open(directory, text)
            at = position_of(text, line)
            gone = t.Range(at, t.Position(at.line + 1, 0))
            s.change(uri, 2, [t.TextEdit(gone, "")])
            support = (policy_repo / "policies" / "support.esc").as_uri()
            diags = await s.diagnostics(support)
            assert diags and {d.code for d in diags} == {"E101"}
            assert all("jon" in d.message for d in diags)

    run(scenario)


def test_only_the_changed_file_is_parsed_again(
    policy_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = policy_repo / "policies"
    lark = parser()
    parsed: list[str] = []
    real = lark.parse

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(lark, "parse", counting)
    support = (folder / "support.esc").resolve()
    # a text no earlier test parsed, so the content-keyed cache cannot already hold it
    edited = support.read_text("utf-8") + f"# edited in {folder}\n"
    analyze(folder, {support: edited})
    parsed.clear()
    again = edited + "# and again\n"
    run_ = analyze(folder, {support: again})
    assert parsed == [again]
    assert run_.result.errors == 0


@pytest.mark.parametrize(
    ("right", "wrong", "code"),
    [
        ("ticket.priority ==", "ticket.priorty ==", "E101"),
        ("ticket.status not", "tickt.status not", "E101"),
        ("owner backup ines", "owner backup inez", "E101"),
        ("trigger ticket.sla_breached", "trigger ticket.sla_breachd", "E101"),
        ("step snapshot", "step snapshott", "E105"),
        ("use standard_qa", "use standard_q", "E101"),
        ("{{ ticket.title }}", "{{ ticket.titel }}", "E103"),
        ("on failover", "on failovr", "E101"),
    ],
)
def test_the_did_you_mean_fix_restores_the_intended_text(
    policy_repo: Path, right: str, wrong: str, code: str
) -> None:
    """The quick fix of each kind of misspelling puts back exactly what was meant."""
    folder = policy_repo / "policies"
    support = (folder / "support.esc").resolve()
    original = support.read_text("utf-8")
    assert right in original
    text = original.replace(right, wrong, 1)
    found = analyze(folder, {support: text}).result.diagnostics
    assert [d.code for d in found] == [code]
    fix = suggestion_fix(found[0], text)
    assert fix is not None
    start = offset_of(text, fix.span.line, fix.span.col)
    end = offset_of(text, fix.span.end_line, fix.span.end_col)
    assert text[:start] + fix.new_text + text[end:] == original


# --------------------------------------------------------------------------- navigation


async def _hover(s: Session, uri: str, at: t.Position) -> str:
    found = await asyncio.wait_for(
        s.client.text_document_hover_async(
            t.HoverParams(text_document=t.TextDocumentIdentifier(uri=uri), position=at)
        ),
        WAIT,
    )
    assert found is not None and isinstance(found.contents, t.MarkupContent)
    return found.contents.value


def test_hover_on_a_field_a_person_a_team_and_a_policy(policy_repo: Path) -> None:
    path = policy_repo / "policies" / "support.esc"
    text = path.read_text("utf-8")
    pset = load_policy_set(policy_repo / "policies").pset
    assert pset is not None
    policy = pset.policies["high_priority_sla_breach"]
    team = pset.teams["support_oncall"]

    async def scenario() -> None:
        async with session(policy_repo) as s:
            uri = s.open(path, text)
            field_hover = await _hover(s, uri, position_of(text, "ticket.priority"))
            assert "enum(low, normal, high, urgent)" in field_hover
            person = await _hover(s, uri, position_of(text, "ines"))
            assert "Ines Duarte" in person and "ines@example.com" in person
            team_hover = await _hover(s, uri, position_of(text, "support_oncall"))
            on_call = re.search(r"on call now \([^)]*\): `(\w+)`", team_hover)
            assert on_call is not None and on_call.group(1) in team.members
            name = await _hover(s, uri, position_of(text, "high_priority_sla_breach"))
            assert f"priority: {policy.priority}" in name
            assert "trigger: `ticket.sla_breached` after 30m" in name
            for owner in policy.owners:
                assert f"{owner.level}: `{owner.ref}`" in name

    run(scenario)


def _name_positions(folder: Path, word: str) -> set[tuple[str, int, int]]:
    """Where ``word`` is written as a name (not inside a string or a comment)."""
    found = set()
    for f in sorted(folder.glob("*.esc")):
        for i, line in enumerate(f.read_text("utf-8").split("\n")):
            code = re.sub(r'"[^"]*"', lambda m: " " * len(m.group(0)), line).split("#")[0]
            for m in re.finditer(rf"(?<![\w.]){word}(?![\w.])", code):
                found.add((f.as_uri(), i, m.start()))
    return found


def test_definition_and_references_of_a_person(policy_repo: Path) -> None:
    folder = policy_repo / "policies"
    path = folder / "support.esc"
    text = path.read_text("utf-8")
    directory = (folder / "directory.esc").read_text("utf-8")
    expected = _name_positions(folder, "ines")
    assert len(expected) >= 3  # declared, in a team, owner of a policy

    async def scenario() -> None:
        async with session(policy_repo) as s:
            uri = s.open(path, text)
            at = position_of(text, "ines")
            where = t.TextDocumentIdentifier(uri=uri)
            found = await asyncio.wait_for(
                s.client.text_document_definition_async(
                    t.DefinitionParams(text_document=where, position=at)
                ),
                WAIT,
            )
            assert isinstance(found, list) and len(found) == 1
            assert isinstance(found[0], t.Location)
            assert found[0].uri == (folder / "directory.esc").as_uri()
            assert found[0].range.start == position_of(directory, "ines")
            refs = await asyncio.wait_for(
                s.client.text_document_references_async(
                    t.ReferenceParams(
                        text_document=where,
                        position=at,
                        context=t.ReferenceContext(include_declaration=True),
                    )
                ),
                WAIT,
            )
            assert refs is not None
            assert {(r.uri, r.range.start.line, r.range.start.character) for r in refs} == expected

    run(scenario)


# --------------------------------------------------------------------------- editing


async def _labels(s: Session, uri: str, at: t.Position) -> list[str]:
    found = await asyncio.wait_for(
        s.client.text_document_completion_async(
            t.CompletionParams(text_document=t.TextDocumentIdentifier(uri=uri), position=at)
        ),
        WAIT,
    )
    assert isinstance(found, t.CompletionList)
    return [i.label for i in found.items]


def test_completion_of_fields_and_enum_values(policy_repo: Path) -> None:
    path = policy_repo / "policies" / "support.esc"
    text = path.read_text("utf-8")
    pset = load_policy_set(policy_repo / "policies").pset
    assert pset is not None
    fields = pset.schema.objects["ticket"]
    when = next(x for x in text.split("\n") if x.strip().startswith("when "))

    async def scenario() -> None:
        async with session(policy_repo) as s:
            uri = s.open(path, text)
            await s.diagnostics(uri, version=1)
            at = position_of(text, when)
            line_range = t.Range(at, t.Position(at.line, at.character + len(when)))
            s.change(uri, 2, [t.TextEdit(line_range, "  when ticket.")])
            after_dot = await _labels(s, uri, t.Position(at.line, len("  when ticket.")))
            assert sorted(after_dot) == sorted(fields)
            typed = "  when ticket.severity == "
            s.change(uri, 3, [t.TextEdit(t.Range(at, t.Position(at.line, 14)), typed)])
            after_eq = await _labels(s, uri, t.Position(at.line, len(typed)))
            assert after_eq == list(fields["severity"].values)

    run(scenario)


def test_formatting_gives_the_canonical_layout(policy_repo: Path) -> None:
    path = policy_repo / "policies" / "support.esc"
    messy = "\n".join("   " + x if x.strip() else x for x in path.read_text("utf-8").split("\n"))
    canonical = format_source("support.esc", messy).formatted
    assert canonical is not None and canonical != messy

    async def scenario() -> None:
        # the module entry point, for editors started without the command line
        async with session(policy_repo, [sys.executable, "-m", "escalade.compiler.lsp"]) as s:
            uri = s.open(path, messy)
            edits = await asyncio.wait_for(
                s.client.text_document_formatting_async(
                    t.DocumentFormattingParams(
                        text_document=t.TextDocumentIdentifier(uri=uri),
                        options=t.FormattingOptions(tab_size=2, insert_spaces=True),
                    )
                ),
                WAIT,
            )
            assert edits is not None
            assert apply(messy, list(edits)) == canonical

    run(scenario)


def test_keywords_offered_are_the_ones_the_grammar_accepts_there() -> None:
    inside = complete("policy p {\n  \n}\n", 2, 3, None)
    statements = {i.label for i in inside if i.kind == "keyword"}
    assert {"owner", "step", "when", "trigger", "exception"} <= statements
    assert not statements & {"schema", "person", "policy"}
    top = {i.label for i in complete("", 1, 1, None) if i.kind == "keyword"}
    assert {"schema", "person", "team", "policy", "event"} <= top
    assert not top & {"owner", "step"}
    check = {i.label for i in complete("policy p {\n  check \n}\n", 2, 9, None)}
    assert check == {"delivery", "state", "close"}
