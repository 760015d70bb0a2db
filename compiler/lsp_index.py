"""Where every name of a policy set is declared and used, for the language server.

Built from the parsed files of a checked set (``PolicySet.files``: the text as
written, templates not expanded), so every span points into a real file::

    index = build_index(pset)
    occ = index.at("support.esc", 12, 19)      # the name under the cursor
    index.definitions(occ.key), index.references(occ.key)

A key is ``(kind, name)``: ``("person", "ines")``, ``("field", "ticket.severity")``,
``("value", "ticket.severity=high")``, ``("param", "standard_qa.who")`` and so on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.passes.checks import iter_atoms

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One place a symbol appears; ``decl`` when it is the declaration itself."""

    key: Key
    span: n.Span
    decl: bool = False


def _contains(span: n.Span, line: int, col: int) -> bool:
    """True when (line, col) is inside ``span`` or just after its last character."""
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def _size(span: n.Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_col - span.col)


@dataclass
class Index:
    occurrences: list[Occurrence] = field(default_factory=list)

    def add(self, kind: str, name: str, span: n.Span, decl: bool = False) -> None:
        self.occurrences.append(Occurrence((kind, name), span, decl))

    def at(self, file: str, line: int, col: int) -> Occurrence | None:
        """The innermost occurrence at a 1-based position of ``file``."""
        found = [
            o for o in self.occurrences if o.span.file == file and _contains(o.span, line, col)
        ]
        return min(found, key=lambda o: _size(o.span), default=None)

    def definitions(self, key: Key) -> list[n.Span]:
        return [o.span for o in self.occurrences if o.key == key and o.decl]

    def references(self, key: Key, include_declaration: bool = True) -> list[n.Span]:
        return [
            o.span for o in self.occurrences if o.key == key and (include_declaration or not o.decl)
        ]


class _Walker:
    """Adds the occurrences of one file's declarations to an index."""

    def __init__(self, pset: m.PolicySet, index: Index) -> None:
        self.pset = pset
        self.index = index
        self.params: dict[str, str] = {}  # parameter name → template, inside a template body

    def ref(self, name: n.Name) -> None:
        """A bare name that may be a template parameter, person, team, channel or policy."""
        template = self.params.get(name.value)
        if template is not None:
            self.index.add("param", f"{template}.{name.value}", name.span)
            return
        kind = self.pset.ref_kind(name.value)
        if kind != "unknown":
            self.index.add(kind, name.value, name.span)

    def field_ref(self, ref: n.FieldRef) -> None:
        self.index.add("field", ref.path, ref.span)

    def text(self, text: n.Text) -> None:
        for ph in text.placeholders:
            if ph.field:
                self.index.add("field", f"{ph.obj}.{ph.field}", ph.span)

    def value(self, ref: n.FieldRef, value: n.Value) -> None:
        info = self.pset.schema.field(ref.obj, ref.field)
        if value.kind == "name" and info is not None and info.kind == "enum":
            self.index.add("value", f"{ref.path}={value.raw}", value.span)

    def cond(self, cond: n.Cond | None) -> None:
        if cond is None:
            return
        for atom in iter_atoms(cond):
            self.field_ref(atom.field)
            if isinstance(atom, n.Compare):
                self.value(atom.field, atom.value)
            elif isinstance(atom, n.InList):
                for v in atom.values:
                    self.value(atom.field, v)

    def args(self, args: Iterable[n.Arg]) -> None:
        for arg in args:
            if isinstance(arg, n.Name):
                self.ref(arg)
            elif isinstance(arg, n.FieldRef):
                self.field_ref(arg)
            elif isinstance(arg, n.Text):
                self.text(arg)

    def stmt(self, s: n.Stmt) -> None:
        if isinstance(s, n.TitleStmt | n.DescriptionStmt | n.GuideStmt):
            self.text(s.text)
        elif isinstance(s, n.TriggerStmt):
            for e in s.events:
                self.index.add("event", e.value, e.span)
        elif isinstance(s, n.WhenStmt | n.CheckState | n.CheckClose):
            self.cond(s.cond)
        elif isinstance(s, n.OwnerStmt | n.TriageStmt):
            self.ref(s.ref)
        elif isinstance(s, n.StepStmt):
            self.args(s.args)
        elif isinstance(s, n.OnStmt):
            for inner in s.body:
                self.stmt(inner)
        elif isinstance(s, n.CheckDelivery) and s.then is not None:
            self.ref(s.then)
        elif isinstance(s, n.ExceptionStmt):
            self.cond(s.cond)
            self.ref(s.handoff)
        elif isinstance(s, n.UseStmt):
            self.index.add("template", s.template.value, s.template.span)
            self.args(s.args)

    def schema(self, d: n.SchemaDecl) -> None:
        for f in d.fields:
            path = f"{d.name.value}.{f.name.value}"
            self.index.add("field", path, f.name.span, decl=True)
            for v in f.type.values:
                self.index.add("value", f"{path}={v.value}", v.span, decl=True)

    def template(self, d: n.TemplateDecl) -> None:
        self.index.add("template", d.name.value, d.name.span, decl=True)
        self.params = {p.name.value: d.name.value for p in d.params}
        for p in d.params:
            self.index.add("param", f"{d.name.value}.{p.name.value}", p.name.span, decl=True)
        for s in d.body:
            self.stmt(s)
        self.params = {}

    def decl(self, d: n.Decl) -> None:
        if isinstance(d, n.EventDecl):
            self.index.add("event", d.name.value, d.name.span, decl=True)
        elif isinstance(d, n.SchemaDecl):
            self.schema(d)
        elif isinstance(d, n.PersonDecl | n.ChannelDecl):
            kind = "person" if isinstance(d, n.PersonDecl) else "channel"
            self.index.add(kind, d.name.value, d.name.span, decl=True)
        elif isinstance(d, n.TeamDecl):
            self.index.add("team", d.name.value, d.name.span, decl=True)
            for member in d.members:
                self.ref(member)
        elif isinstance(d, n.TemplateDecl):
            self.template(d)
        elif isinstance(d, n.PolicyDecl):
            self.index.add("policy", d.name.value, d.name.span, decl=True)
            for s in d.body:
                self.stmt(s)
        elif isinstance(d, n.CoverageDecl):
            for e in d.events:
                self.index.add("event", e.value, e.span)
            self.cond(d.cond)


def build_index(pset: m.PolicySet) -> Index:
    """Every declaration and reference of the set's parsed files."""
    index = Index()
    walker = _Walker(pset, index)
    for file in pset.files:
        for d in file.decls:
            walker.decl(d)
    return index
