"""The one registry of diagnostic codes: code, name, severity, and its documentation.

Codes are stable: tests, suppressions (``# escalade: ignore[E302] ...``) and
SARIF ``ruleId`` values depend on them. Add, never renumber.

Each code carries its long documentation here, in one place: what it means,
why it matters, a minimal example that triggers it, the fix and the example
fixed. ``escalade.compiler.rules_doc`` renders ``docs/diagnostics.md`` from it
and ``escalade.compiler.sarif`` the rules' help text. Every example is written
to compile together with the declarations of the repository's
``policies/schema.esc`` and ``policies/directory.esc``; the tests check that it
produces its code (and nothing else in its own file), and that the fixed
example produces nothing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from escalade.compiler.model import FIELD_KINDS

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Code:
    """One diagnostic code and its documentation.

    ``description`` is the one-line summary (SARIF ``shortDescription``; its
    ``fullDescription`` adds ``meaning``); ``meaning``, ``why`` and ``fix`` are
    Markdown paragraphs; ``example`` and ``fixed`` are policy source that
    triggers the code and that does not (``escalade explain-code`` prints them).
    """

    code: str
    name: str
    severity: Severity
    description: str
    meaning: str
    why: str
    example: str
    fix: str
    fixed: str


def _text(s: str) -> str:
    """A paragraph written indented in this file, as one Markdown paragraph."""
    return " ".join(textwrap.dedent(s).split())


def _src(s: str) -> str:
    """Policy source written indented in this file, dedented, one trailing newline."""
    return textwrap.dedent(s).strip("\n") + "\n"


# A complete, clean policy the examples below vary: people and the lead
# schema come from policies/directory.esc and policies/schema.esc.
_CLEAN = _src(
    """
    policy lead_rejected {
      approvers "@example/revops"
      trigger lead.updated
      when lead.crm_status == rejected
      owner primary erin ack 1h
      owner backup farid
      exception unknown triage kim
    }
    """
)


def _vary(old: str, new: str) -> str:
    """``_CLEAN`` with one line replaced (``old`` must occur in it)."""
    assert old in _CLEAN, old
    return _CLEAN.replace(old, new)


_CODES = (
    Code(
        "E001",
        "syntax",
        "error",
        "Unexpected token, unterminated string or bad literal.",
        meaning=_text(
            """
            The file does not follow the grammar: an unexpected word or character, a
            string that does not end on its line, a bad escape, a duration such as
            `5mins` or `1m1h` (units go from largest to smallest, each once), a
            name with capitals, a `repeat` or `retry` that is not a whole number, or a
            condition nested more than 200 levels deep. The message says what was
            expected at that point. A file that cannot be read as UTF-8 text is E001
            too.
            """
        ),
        why=_text(
            """
            Parsing stops at the first syntax error, and a file that does not parse
            contributes nothing to the set: its declarations do not exist, so no
            other check looks at it and references to its names elsewhere become
            E101.
            """
        ),
        example=_vary("ack 1h", "ack 1hour"),
        fix=_text(
            """
            Write what the message says was expected. Durations are digits and a unit
            (`s`, `m`, `h`, `d`), combinable from largest to smallest: `90s`, `5m`,
            `1h30m`, `2d`.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E101",
        "undefined-name",
        "error",
        "Reference to an undeclared name or field.",
        meaning=_text(
            """
            A name that nothing declares: an owner, triage owner, step target or
            fallback channel that is not a person, team or channel; a handoff to an
            unknown policy; an unknown template, event kind, schema object or field;
            a team member who is not a person; or an unknown keyword where the
            language takes a fixed word (an owner level, an SLA kind, an `on`
            moment, a failure kind, a field type, a person or channel attribute).
            The help line suggests the closest declared name.
            """
        ),
        why=_text(
            """
            The runtime could not reach an owner or evaluate a condition that names
            nothing: the policy would fail at three in the morning instead of in
            review.
            """
        ),
        example=_vary("owner backup farid", "owner backup farida"),
        fix=_text(
            """
            Correct the spelling, or declare the missing name (`person`, `team`,
            `channel`, `policy`, `template`, `event`, or a field in its `schema`).
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E102",
        "duplicate-name",
        "error",
        "Two declarations of one name or one single-valued statement.",
        meaning=_text(
            """
            A name is declared twice (two people, teams, channels, policies,
            templates, events or schemas of one name, anywhere in the set; a field,
            enum value, team member, template parameter or exception label twice),
            or a single-valued statement is given twice in one policy: `title`,
            `description`, `priority`, `trigger`, `when`, `repeat`, `cooldown`,
            `exception unknown`, one `owner` level or one `sla` kind. A note points
            at the first.
            """
        ),
        why=_text(
            """
            The compiler keeps the first and ignores the second, which is rarely what
            the author of the second meant; two files declaring one name usually
            means two people edited the same thing.
            """
        ),
        example=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              priority 10
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              priority 20
              exception unknown triage kim
            }
            """
        ),
        fix=_text("""Keep one of them, or rename one when both are meant."""),
        fixed=_vary("  trigger lead.updated\n", "  priority 10\n  trigger lead.updated\n"),
    ),
    Code(
        "E103",
        "type-mismatch",
        "error",
        "A field compared with a value of the wrong type, or a bad placeholder.",
        meaning=_text(
            """
            A value does not fit the field's type: an enum compared with a string
            instead of a bare value, text with a bare word instead of a string, a
            number, duration or time with something else, `<`/`>` on a type that is
            not ordered (only `number`, `time` and `duration` are), `has` on a field
            that is not a `set`, or a set compared with `==`. Also a `{{ ... }}`
            placeholder on an unknown field or malformed, and a team rotation start
            that is not an ISO-8601 time with a zone.
            """
        ),
        why=_text(
            """
            The compiler does not guess what was meant: at run time a value of the
            wrong kind never equals the field's value (a number against text, a time
            that is not a time), or matches only by an accident of spelling, and the
            whole-set analysis cannot reason about it. A bad placeholder renders as
            an empty string in the message someone is paged with.
            """
        ),
        example=_vary("when lead.crm_status == rejected", 'when lead.crm_status == "rejected"'),
        fix=_text(
            """
            Write the value the way the field's type takes it: enum values bare
            (`rejected`), text in double quotes, numbers and durations as literals,
            times as ISO-8601 strings (`"2026-11-27T10:00:00Z"`), sets with `has "tag"`.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E104",
        "unknown-enum-value",
        "error",
        "An enum value the field's enum does not list.",
        meaning=_text(
            """
            A condition compares an enum field with a value its `enum(...)` does not
            list (usually a typo: the help line suggests the closest value, and a note
            points at the field's declaration). A team rotation other than `daily` or
            `weekly` is E104 too.
            """
        ),
        why=_text(
            """
            No event can carry an undeclared value (the runtime dead-letters it), so
            the comparison is never true and the policy never starts.
            """
        ),
        example=_vary("when lead.crm_status == rejected", "when lead.crm_status == rejectd"),
        fix=_text(
            """
            Use a declared value, or add the value to the field's `enum(...)` in the
            schema when upstream systems really send it.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E105",
        "bad-arguments",
        "error",
        "Wrong action, action arguments or template arguments.",
        meaning=_text(
            """
            A `step` names an action outside the catalog (`notify`, `page`,
            `create_ticket`, `create_task`, `route`, `open`, `snapshot`, `attach`,
            `lock`, `set`, `manual`), gives it the wrong number or kind of arguments
            (`page` a channel, `route` a person, `create_task` without a string), a
            `use` passes the wrong number or kinds of arguments to a template, a
            reference names the wrong kind of thing (a channel as owner), a template
            expands itself (templates nest at most 16 deep), a channel has no target
            or several, or an enum declares no values.
            """
        ),
        why=_text(
            """
            The runtime could not carry out the step: a message to nowhere, a page
            that reaches nobody.
            """
        ),
        example=_vary("  exception unknown", "  step page revops\n  exception unknown"),
        fix=_text(
            """
            Follow the usage line in the help: `notify` takes a channel, person or
            team and an optional message; `page` a person or team; `route` a team;
            `create_ticket`, `create_task` and `manual` a string; `set` a field and a
            string; `open`, `snapshot`, `attach` and `lock` a free name.
            """
        ),
        fixed=_vary(
            "  exception unknown", '  step notify revops "Lead rejected"\n  exception unknown'
        ),
    ),
    Code(
        "E106",
        "bad-schedule",
        "error",
        "A schedule layer, override or calendar that cannot run as written.",
        meaning=_text(
            """
            A team `layer` or a `calendar` is missing what it needs (members, a
            shift, a zone, a start date), names a time zone that does not exist,
            has a shift of length zero, a handoff time or window that is not a
            clock time, an empty or overlapping window, restrictions that never
            hold, or a holiday that is not a date; an `override` ends before it
            starts or replaces a member outside every shift of theirs; a team has
            overrides but no schedule.
            """
        ),
        why=_text(
            """
            Who is on call, and when an SLA in business hours falls due, are
            computed from these declarations at run time and proved gap-free by
            `check`. A declaration that cannot be computed would leave a team
            with nobody on call, or a timer that never fires, and the compiler
            does not guess what was meant.
            """
        ),
        example=_src(
            """
            team night_desk {
              layer nights {
                members erin, farid
                shift 12h
                handoff 08:00
                zone "Europe/Berln"
                start "2026-01-05"
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary night_desk ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Follow the help line: IANA zone names (`"Europe/Berlin"`,
            `"America/New_York"`, `"UTC"`), shifts such as `12h`, `1d` or `1w`,
            windows as `mon-fri 09:00-18:00` (`22:00-06:00` runs past midnight),
            dates as `"YYYY-MM-DD"`, override times as ISO-8601 with a zone.
            """
        ),
        fixed=_src(
            """
            team night_desk {
              layer nights {
                members erin, farid
                shift 12h
                handoff 08:00
                zone "Europe/Berlin"
                start "2026-01-05"
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary night_desk ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E201",
        "missing-primary",
        "error",
        "Policy without a primary owner.",
        meaning=_text("""A policy has no `owner primary` line."""),
        why=_text(
            """
            The primary owner is who the escalation is assigned to first; without one
            an escalation starts with nobody responsible.
            """
        ),
        example=_vary("  owner primary erin ack 1h\n", ""),
        fix=_text("""Add `owner primary PERSON_OR_TEAM ack DURATION`."""),
        fixed=_CLEAN,
    ),
    Code(
        "E202",
        "missing-backup",
        "error",
        "Policy without a backup owner.",
        meaning=_text("""A policy has no `owner backup` line."""),
        why=_text(
            """
            When the primary owner does not acknowledge in time, failover goes to the
            backup; with no backup a single missed page leaves the escalation
            unacknowledged.
            """
        ),
        example=_vary(
            "  owner primary erin ack 1h\n  owner backup farid\n", "  owner primary erin\n"
        ),
        fix=_text(
            """
            Add `owner backup PERSON_OR_TEAM`, and an `ack` timeout on the primary so
            failover can reach the backup (else E204).
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E203",
        "self-backup",
        "error",
        "A backup or escalation owner equals an earlier owner.",
        meaning=_text(
            """
            The same person or team appears twice in one ownership chain (the backup
            is the primary, or the escalation owner is the primary or the backup). A
            note points at the earlier level.
            """
        ),
        why=_text(
            """
            Failover to the same owner reaches nobody new: the person who did not
            answer is paged again instead of someone who might.
            """
        ),
        example=_vary("owner backup farid", "owner backup erin"),
        fix=_text("""Name a different person or team at each level."""),
        fixed=_CLEAN,
    ),
    Code(
        "E204",
        "missing-ack-timeout",
        "error",
        "A non-final owner level without an ack timeout.",
        meaning=_text(
            """
            An owner level that has a level after it (primary before backup, backup
            before escalation) has no `ack DURATION`. Only the last level may omit it.
            """
        ),
        why=_text(
            """
            The ack timeout is what moves an unacknowledged escalation to the next
            level; without it failover never happens and the later levels are never
            used. (A final level without `ack` keeps the escalation with that owner
            for good, which is allowed.)
            """
        ),
        example=_vary("owner primary erin ack 1h", "owner primary erin"),
        fix=_text("""Add `ack DURATION` to every level but the last."""),
        fixed=_CLEAN,
    ),
    Code(
        "E205",
        "empty-team",
        "error",
        "Team without members.",
        meaning=_text(
            """
            A team declares no members. (A person without a contact point is E207.)
            """
        ),
        why=_text(
            """
            Nobody can be notified: a level owned by an empty team is skipped, and a
            step that notifies or pages it fails.
            """
        ),
        example=_src(
            """
            team night_shift {}

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary night_shift ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Give the team `members a, b` (and a `rotation` when one member at a time
            is on call).
            """
        ),
        fixed=_src(
            """
            team night_shift {
              members erin, ines
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary night_shift ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E206",
        "no-triage",
        "error",
        "Policy without an `exception unknown` triage path.",
        meaning=_text("""A policy has no `exception unknown triage PERSON_OR_TEAM` line."""),
        why=_text(
            """
            Type B triage is where every failure without a Type A exception goes: the
            chain exhausted (`unacknowledged`), a step that could not run
            (`step_failed`), a check that failed (`check_failed`). Without it such an
            escalation is left unacknowledged with nobody assigned.
            """
        ),
        example=_vary("  exception unknown triage kim\n", ""),
        fix=_text(
            """
            Add `exception unknown triage PERSON_OR_TEAM`, with `postmortem` when the
            close of a triaged escalation must wait for a post-mortem.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "E207",
        "no-contact",
        "error",
        "Owner with no contact point.",
        meaning=_text(
            """
            A person who owns a level or the triage path has none of `email`, `slack`
            or `pager`.
            """
        ),
        why=_text(
            """
            The person is assigned escalations that never reach them: every page,
            notification and reminder for their level has nowhere to go, and the
            chain waits out the `ack` timeout before anyone else hears of it.
            """
        ),
        example=_src(
            """
            person quinn { name "Quinn Ortiz" }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary quinn ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text("""Give the person an `email`, `slack` or `pager`."""),
        fixed=_src(
            """
            person quinn { name "Quinn Ortiz" email "quinn@example.com" }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary quinn ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E208",
        "unreachable-owner",
        "error",
        "At some time, a policy's whole owner chain has nobody reachable.",
        meaning=_text(
            """
            Over the schedules' whole period (from the latest schedule start, the
            least common multiple of the cycles and at least 366 days, in whole
            weeks, so every daylight-saving change and holiday is inside), there is
            a window in which no owner level of the policy reaches anybody: no layer
            of the team is active, or the member on call has no `email`, `slack` or
            `pager`. The message names the windows in the team's zone and in UTC;
            `--format json` carries a witness event at the gap's first instant.
            """
        ),
        why=_text(
            """
            An escalation that starts in that window pages nobody at any level: the
            chain runs out its ack timeouts and falls through to triage, the last
            resort, which does not count as coverage. The check is exact: it
            computes on the schedules' hand-offs and windows, not on samples.
            """
        ),
        example=_src(
            """
            team day_desk {
              layer office {
                members erin, ines
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
                restrict mon-fri 09:00-18:00
              }
            }

            team day_leads {
              layer office {
                members farid, kim
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
                restrict mon-fri 09:00-18:00
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary day_desk ack 1h
              owner backup day_leads
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Put someone reachable on call in every window: widen or drop a layer's
            `restrict`, add a layer that covers the rest (later layers cover earlier
            ones where they are active), or give the chain a level that is always
            reachable (a person, or a team without a schedule).
            """
        ),
        fixed=_src(
            """
            team day_desk {
              layer office {
                members erin, ines
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
              }
            }

            team day_leads {
              layer office {
                members farid, kim
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary day_desk ack 1h
              owner backup day_leads
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "W209",
        "coverage-gap-in-time",
        "warning",
        "At some time, one owner level has nobody reachable.",
        meaning=_text(
            """
            One owner level reaches nobody in some window of the schedules' period
            (no layer of its team active, or the member on call without a contact
            point) while another level of the chain does. Windows where the whole
            chain reaches nobody are E208 instead, never both. The message names the
            windows in the team's zone and in UTC, and the policy that uses the level.
            """
        ),
        why=_text(
            """
            An escalation in that window is not lost, but it waits out this level's
            ack timeout, paging nobody, before the next level hears of it: the
            acknowledge SLA loses that time in every such window.
            """
        ),
        example=_src(
            """
            team day_desk {
              layer office {
                members erin, ines
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
                restrict mon-fri 09:00-18:00
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary day_desk ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Cover the windows: add a layer underneath that runs around the clock (or
            in the other hours), widen the `restrict`, or make an always reachable
            owner the primary.
            """
        ),
        fixed=_src(
            """
            team day_desk {
              layer around_the_clock {
                members gwen, hugo
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
              }
              layer office {
                members erin, ines
                shift 1w
                handoff 09:00
                zone "Europe/Berlin"
                start "2026-01-05"
                restrict mon-fri 09:00-18:00
              }
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary day_desk ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E301",
        "handoff-loop",
        "error",
        "A cycle of handoffs between policies.",
        meaning=_text(
            """
            Type A exceptions hand off in a cycle: policy `a` hands off to `b` and
            `b` (directly or through others) back to `a`. The message shows the
            shortest cycle, with a note at each handoff.
            """
        ),
        why=_text(
            """
            An escalation could be handed around the cycle forever, restarting each
            chain and paging the same people again. (The runtime's loop breaker sends
            a ticket to triage after too many handoffs, but that is a safety net, not
            a design.)
            """
        ),
        example=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception stalled when unacknowledged handoff lead_review
              exception unknown triage kim
            }

            policy lead_review {
              approvers "@example/revops"
              owner primary farid ack 1h
              owner backup kim
              exception stalled when unacknowledged handoff lead_rejected
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Hand off to a policy that does not hand back, and end the path with its
            `exception unknown triage`.
            """
        ),
        fixed=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception stalled when unacknowledged handoff lead_review
              exception unknown triage kim
            }

            policy lead_review {
              approvers "@example/revops"
              owner primary farid ack 1h
              owner backup kim
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E302",
        "ambiguous-route",
        "error",
        "Two policies of equal priority can own the same event.",
        meaning=_text(
            """
            Two triggered policies with the same `priority` (0 unless given) listen to
            the same event kind and some event matches both. The message shows such
            an event (with `--format json`, a witness event `escalade explain`
            accepts).
            """
        ),
        why=_text(
            """
            For each event the highest-priority matching policy owns it; between
            equals nothing in the policies says which should win, so the owner, the
            chain and the steps would depend on an accident (the runtime breaks such
            a tie by policy name).
            """
        ),
        example=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception unknown triage kim
            }

            policy paid_lead {
              approvers "@example/revops"
              trigger lead.updated
              when lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Give the one that should win a higher `priority`, or make the conditions
            exclusive.
            """
        ),
        fixed=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              priority 10
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception unknown triage kim
            }

            policy paid_lead {
              approvers "@example/revops"
              trigger lead.updated
              when lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "E303",
        "never-matches",
        "error",
        "A condition no event can satisfy (a policy, exception or coverage never applies).",
        meaning=_text(
            """
            A condition can never be true, whatever the event: a policy's `when`
            (the policy never starts), a Type A exception's condition (the handoff
            never happens) or a `coverage` condition (the promise covers nothing).
            The help line names two parts that exclude each other when there are
            such. Remember that a comparison on a missing field is false, `!=` and
            `not in` included.
            """
        ),
        why=_text(
            """
            Dead policy text reads as if it protected something. Usually an `and`
            was meant as an `or`, or two values of one field were combined.
            """
        ),
        example=_vary(
            "when lead.crm_status == rejected",
            "when lead.crm_status == rejected and lead.crm_status == accepted",
        ),
        fix=_text(
            """
            Rewrite the condition so some event satisfies it (often `or`, or
            `in (a, b)`), or delete what can never happen.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "W304",
        "shadowed",
        "warning",
        "Higher-priority policies together always match first.",
        meaning=_text(
            """
            Every event a triggered policy could own is matched by one or more
            policies of strictly higher priority on the same event kind, so this one
            never owns an event. Notes name the policies that match first.
            """
        ),
        why=_text(
            """
            Its owners, steps and checks never run: either it is dead or the
            priorities are not what was meant.
            """
        ),
        example=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              priority 10
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception unknown triage kim
            }

            policy paid_lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected and lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Raise the narrower policy's priority above the wider one (the usual
            intent: the specific case wins), narrow the higher-priority conditions,
            or remove the shadowed policy.
            """
        ),
        fixed=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              priority 10
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception unknown triage kim
            }

            policy paid_lead_rejected {
              approvers "@example/revops"
              priority 20
              trigger lead.updated
              when lead.crm_status == rejected and lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "W305",
        "coverage-gap",
        "warning",
        "An event promised by `coverage` that no policy owns.",
        meaning=_text(
            """
            A `coverage EVENTS when CONDITION` declaration promises that every such
            event is owned by some policy, and there is an event no triggered policy
            matches. The message shows one (with `--format json`, a witness event).
            """
        ),
        why=_text(
            """
            That event would start no escalation at all: nobody is paged. Coverage
            promises turn "we always handle critical tickets" into a checked fact.
            """
        ),
        example=_src(
            """
            coverage lead.updated when lead.crm_status == rejected

            policy paid_lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected and lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Add a policy that owns the missing events (or widen one), or narrow the
            promise if those events really need no escalation.
            """
        ),
        fixed=_src(
            """
            coverage lead.updated when lead.crm_status == rejected

            policy paid_lead_rejected {
              approvers "@example/revops"
              priority 10
              trigger lead.updated
              when lead.crm_status == rejected and lead.source == paid_campaign
              owner primary ines ack 1h
              owner backup farid
              exception unknown triage kim
            }

            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "W306",
        "unreachable-policy",
        "warning",
        "Policy without trigger that no handoff reaches.",
        meaning=_text(
            """
            A policy without `trigger` is entered only by a Type A handoff, and no
            triggered policy hands off to it (directly or through other handoffs; a
            handoff whose condition can never hold, E303, does not count).
            """
        ),
        why=_text(
            """
            The runbook exists but no escalation can ever follow it; usually the
            handoff was forgotten or names another policy.
            """
        ),
        example=_src(
            """
            policy lead_review {
              approvers "@example/revops"
              owner primary farid ack 1h
              owner backup kim
              exception unknown triage kim
            }
            """
        ),
        fix=_text(
            """
            Add an `exception NAME when ... handoff POLICY` to a triggered policy, or
            give the policy its own `trigger`.
            """
        ),
        fixed=_src(
            """
            policy lead_rejected {
              approvers "@example/revops"
              trigger lead.updated
              when lead.crm_status == rejected
              owner primary erin ack 1h
              owner backup farid
              exception stalled when unacknowledged handoff lead_review
              exception unknown triage kim
            }

            policy lead_review {
              approvers "@example/revops"
              owner primary farid ack 1h
              owner backup kim
              exception unknown triage kim
            }
            """
        ),
    ),
    Code(
        "W307",
        "undecided",
        "warning",
        "The analysis hit its budget and could not decide.",
        meaning=_text(
            """
            A whole-set question (overlap for E302, shadowing for W304, coverage for
            W305, satisfiability for E303) could not be decided: a condition expands
            to more than 4096 cases, or a question took more than its budget of
            search steps. The message says which question and why.
            """
        ),
        why=_text(
            """
            The verdict is unknown, not "fine": the analysis never guesses, so the
            checks that depend on the condition say nothing about it.
            """
        ),
        example=_src(
            """
            policy tagged {
              approvers "@example/customer-ops-leads"
              trigger ticket.created
              when (ticket.tags has "a1" or ticket.tags has "b1")
               and (ticket.tags has "a2" or ticket.tags has "b2")
               and (ticket.tags has "a3" or ticket.tags has "b3")
               and (ticket.tags has "a4" or ticket.tags has "b4")
               and (ticket.tags has "a5" or ticket.tags has "b5")
               and (ticket.tags has "a6" or ticket.tags has "b6")
               and (ticket.tags has "a7" or ticket.tags has "b7")
               and (ticket.tags has "a8" or ticket.tags has "b8")
               and (ticket.tags has "a9" or ticket.tags has "b9")
               and (ticket.tags has "a10" or ticket.tags has "b10")
               and (ticket.tags has "a11" or ticket.tags has "b11")
               and (ticket.tags has "a12" or ticket.tags has "b12")
               and (ticket.tags has "a13" or ticket.tags has "b13")
              owner primary alice ack 5m
              owner backup carol
              exception unknown triage dana
            }
            """
        ),
        fix=_text(
            """
            Simplify the condition (a tag that stands for the combination, fewer
            alternatives), or split the policy into several with simpler conditions.
            """
        ),
        fixed=_src(
            """
            policy tagged {
              approvers "@example/customer-ops-leads"
              trigger ticket.created
              when ticket.tags has "needs_review"
              owner primary alice ack 5m
              owner backup carol
              exception unknown triage dana
            }
            """
        ),
    ),
    Code(
        "E401",
        "ack-exceeds-sla",
        "error",
        "The primary's ack timeout exceeds the acknowledge SLA.",
        meaning=_text(
            """
            The primary owner's `ack` timeout is strictly longer than the policy's
            `sla acknowledge` target. A note points at the SLA.
            """
        ),
        why=_text(
            """
            Failover to the backup would happen only after the SLA has already been
            breached: the policy is built to miss its own target.
            """
        ),
        example=_vary("  exception unknown", "  sla acknowledge 30m\n  exception unknown"),
        fix=_text("""Shorten the primary's `ack` timeout, or relax the SLA."""),
        fixed=_vary("  exception unknown", "  sla acknowledge 1h\n  exception unknown"),
    ),
    Code(
        "W402",
        "chain-exceeds-sla",
        "warning",
        "Walking the whole chain takes longer than the resolve SLA.",
        meaning=_text(
            """
            The sum of the owners' defined `ack` timeouts times `repeat + 1` is longer
            than the policy's `sla resolve` target.
            """
        ),
        why=_text(
            """
            If nobody acknowledges, the chain is still being walked when the resolve
            SLA is breached; the last owners are paged too late to help.
            """
        ),
        example=_vary(
            "  owner backup farid\n",
            "  owner backup farid ack 1h\n  owner escalation kim\n  sla resolve 90m\n",
        ),
        fix=_text("""Shorten the `ack` timeouts, lower `repeat`, or relax the SLA."""),
        fixed=_vary(
            "  owner backup farid\n",
            "  owner backup farid ack 1h\n  owner escalation kim\n  sla resolve 4h\n",
        ),
    ),
    Code(
        "E501",
        "missing-approvers",
        "error",
        "Policy without approvers.",
        meaning=_text("""A policy has no `approvers` line (or only empty strings)."""),
        why=_text(
            """
            Approvers become the policy file's `CODEOWNERS`: without them a change to
            who gets paged needs nobody's sign-off.
            """
        ),
        example=_vary('  approvers "@example/revops"\n', ""),
        fix=_text("""Add `approvers "@org/team"` (one or more, comma-separated)."""),
        fixed=_CLEAN,
    ),
    Code(
        "E502",
        "bad-approver",
        "error",
        "Approver that CODEOWNERS cannot use.",
        meaning=_text(
            """
            An `approvers` string is not one `@user`, `@org/team` or e-mail address
            (several owners in one string, spaces, a newline, a stray character).
            """
        ),
        why=_text(
            """
            Approvers are written into `CODEOWNERS`, so `escalade build` refuses
            them: GitHub ignores a CODEOWNERS file with one invalid line, and a
            newline in an approver would add a line of its own (`* @attacker`
            owning every file).
            """
        ),
        example=_vary(
            '  approvers "@example/revops"\n', '  approvers "@example/revops\\n* @attacker"\n'
        ),
        fix=_text(
            """
            Give each approver its own string: `approvers "@example/revops",
            "@example/sales"`.
            """
        ),
        fixed=_CLEAN,
    ),
    Code(
        "W601",
        "unused",
        "warning",
        "Person, team, channel or template that nothing uses.",
        meaning=_text(
            """
            A person, team, channel or template is declared and nothing refers to it.
            Being a team member counts as use for a person.
            """
        ),
        why=_text(
            """
            Stale directory entries mislead the people who read them (someone who
            left, a channel nobody watches) and hide typos in the names that are
            used.
            """
        ),
        example=_CLEAN + "\n" + _src('channel lead_alerts { slack "#lead-alerts" }'),
        fix=_text(
            """
            Use it (a step, an owner, a `then` fallback, a `use`), or delete it. To
            keep one on purpose, suppress the finding with a reason:
            `# escalade: ignore[W601] kept for the next rotation`.
            """
        ),
        fixed=_vary(
            "  exception unknown", '  step notify lead_alerts "Lead rejected"\n  exception unknown'
        )
        + "\n"
        + _src('channel lead_alerts { slack "#lead-alerts" }'),
    ),
    Code(
        "W602",
        "no-undo",
        "warning",
        "A step that changes state without an `undo`.",
        meaning=_text(
            """
            A `lock` or `set` step changes the ticket's or a system's state and names
            no compensating step (`undo unlock NAME`, `undo restore`, or any other
            action, `undo manual "..."` for one a person must do).
            """
        ),
        why=_text(
            """
            `escalade revert` (and `on check_failed revert`) runs the undo steps of
            the steps that ran, in reverse order. A step without one is listed as
            "needs a person" in the revert record and the runbook: when an automated
            step caused a regression, someone has to find and undo it by hand.
            """
        ),
        example=_vary("  exception unknown", "  step lock lead_sync\n  exception unknown"),
        fix=_text(
            """
            Add the undo: `step lock lead_sync undo unlock lead_sync`, `step set
            ticket.title "..." undo restore`. To keep a step without one on purpose,
            suppress the finding with a reason.
            """
        ),
        fixed=_vary(
            "  exception unknown",
            "  step lock lead_sync undo unlock lead_sync\n  exception unknown",
        ),
    ),
)

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def lookup(code: str) -> Code:
    """Return the registered code; an unknown code is a programming error."""
    return CODES[code]


# --------------------------------------------------------------------------- help that teaches

# How to declare each kind of name, as a line to copy: where it usually lives and the
# declaration itself (``{name}`` is the undeclared name). A help line for an unknown
# name shows it, so "unknown owner 'pat'" says how to declare pat.
DECLARATIONS: dict[str, tuple[str, str]] = {
    "person": ("the directory", 'person {name} {{ email "{name}@example.com" }}'),
    "team": ("the directory", "team {name} {{ members alice, bob }}"),
    "channel": ("the directory", 'channel {name} {{ slack "#{name}" }}'),
    "event": ("the schema", "event {name}"),
    "object": ("the schema", "schema {name} {{ id: text }}"),
    "template": ("a policy file", 'template {name}() {{ step manual "what to do" }}'),
    "policy": (
        "a policy file",
        'policy {name} {{ approvers "@org/team"  owner primary alice ack 15m  '
        "owner backup bob  exception unknown triage bob }}",
    ),
}


def declaration(kind: str, name: str) -> str:
    """The declaration of ``name`` as a ``kind`` (a key of ``DECLARATIONS``), as code."""
    return DECLARATIONS[kind][1].format(name=name)


def declare_help(name: str, kinds: Sequence[str]) -> str:
    """A help line showing how to declare ``name`` as any of ``kinds``, e.g.
    ``declare it in the directory: `person pat { email "pat@example.com" }` or
    `team pat { members alice, bob }```."""
    where = DECLARATIONS[kinds[0]][0]
    shown = " or ".join(f"`{declaration(k, name)}`" for k in kinds)
    return f"declare it in {where}: {shown}"


def object_help(obj: str) -> str:
    """How to declare a schema object and an event kind that carries it."""
    return (
        f"declare it in the schema: `{declaration('object', obj)}`, "
        f"with its event kinds: `{declaration('event', obj + '.created')}`"
    )


def field_help(obj: str, field: str) -> str:
    """How to add a field to a schema object (the types it may have)."""
    types = ", ".join(k if k != "enum" else "enum(a, b)" for k in FIELD_KINDS)
    return f"add it to `schema {obj} {{ ... }}`: `{field}: text` (types: {types})"


def find_code(text: str) -> Code | None:
    """The code named ``text``: its code (``E302``, any case) or its name (``ambiguous-route``)."""
    wanted = text.strip()
    found = CODES.get(wanted.upper())
    if found is not None:
        return found
    return next((c for c in CODES.values() if c.name == wanted.lower()), None)
