"""Run by `make runtime-only` inside a virtual environment WITHOUT lark and jinja2.

Proves the runtime installs and runs on a host that never compiles policies:
it loads the committed pack, applies an event through `python -m
escalade.runtime` and checks the escalation, all with the compiler's
dependencies absent (not merely blocked). Exits non-zero on any failure.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    for name in ("lark", "jinja2"):
        if importlib.util.find_spec(name) is not None:
            print(f"FAIL: {name} is installed in this environment", file=sys.stderr)
            return 1
    import escalade.runtime
    from escalade.runtime import Matcher, RulePack

    pack = RulePack.load(REPO / "generated" / "rulepack.json")
    owner = Matcher(pack).owner(
        "ticket.created", {"ticket": {"severity": "critical"}, "account": {"tier": "enterprise"}}
    )
    assert owner is not None and owner.name == "enterprise_critical", owner
    with tempfile.TemporaryDirectory() as tmp:
        event = Path(tmp) / "e.json"
        event.write_text(
            json.dumps(
                {
                    "id": "iso-1",
                    "type": "ticket.created",
                    "at": "2026-11-23T10:00:00Z",
                    "data": {
                        "ticket": {"id": "T1", "severity": "critical", "status": "escalated"},
                        "account": {"id": "acme", "tier": "enterprise"},
                    },
                }
            )
        )
        db = str(Path(tmp) / "rt.db")
        packfile = str(REPO / "generated" / "rulepack.json")
        # no channel is configured here: say so (every message dry_run, nothing sent)
        (Path(tmp) / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
        run = [sys.executable, "-m", "escalade.runtime"]
        subprocess.run(
            [
                *run,
                "event",
                str(event),
                "--db",
                db,
                "--pack",
                packfile,
                "--at",
                "2026-11-23T10:00:00Z",
            ],
            check=True,
            cwd=tmp,
        )
        # timers due by 10:06 fire on a tick (a read never fires them)
        subprocess.run(
            [*run, "tick", "--db", db, "--at", "2026-11-23T10:06:00Z"], check=True, cwd=tmp
        )
        out = subprocess.run(
            [*run, "status", "T1", "--db", db, "--format", "json", "--at", "2026-11-23T10:06:00Z"],
            check=True,
            cwd=tmp,
            capture_output=True,
            text=True,
        ).stdout
        status = json.loads(out)
        assert (status["policy"], status["level"], status["owner"]) == (
            "enterprise_critical",
            "backup",
            "carol",
        ), status
    loaded = sorted(m for m in sys.modules if m.startswith(("lark", "jinja2", "escalade.compiler")))
    assert not loaded, loaded
    print(f"runtime-only: ok ({escalade.runtime.__name__} without lark and jinja2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
