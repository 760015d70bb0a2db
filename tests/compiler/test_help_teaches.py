"""Undefined-name help shows the declaration to write, and E207 is its own code."""

from __future__ import annotations

from escalade.compiler import load_policy_set
from escalade.compiler.codes import declaration

POLICY = """\
event ticket.created
person alice { email "alice@example.com" }
person mute { name "Mute" }
team empty {}
policy p {
  approvers "@org/team"
  trigger ticket.created
  when invoice.total == 3
  owner primary mute ack 5m
  owner backup empty
  step notify pager_duty "x"
  exception unknown triage alice
}
"""


def helps() -> dict[str, list[str]]:
    result = load_policy_set("policies", sources=[("policies/p.esc", POLICY)])
    out: dict[str, list[str]] = {}
    for d in result.diagnostics:
        out.setdefault(d.code, []).append(f"{d.message} | {d.help}")
    return out


def test_an_unknown_object_is_told_how_to_declare_a_schema() -> None:
    (found,) = [h for h in helps()["E101"] if "invoice" in h]
    assert "declared objects: none" in found
    assert f"`{declaration('object', 'invoice')}`" in found


def test_an_unknown_channel_is_told_how_to_declare_it() -> None:
    (found,) = [h for h in helps()["E101"] if "pager_duty" in h]
    assert f"`{declaration('channel', 'pager_duty')}`" in found


def test_a_person_without_contact_is_e207_and_an_empty_team_e205() -> None:
    found = helps()
    assert [h.split(" |")[0] for h in found["E207"]] == [
        "'mute' has no email, slack or pager: nobody can reach them"
    ]
    assert [h.split(" |")[0] for h in found["E205"]] == ["team 'empty' has no members"]
