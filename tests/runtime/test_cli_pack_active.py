"""``escalade event --pack P`` run after run (issue #12): P active costs one hash, and the
command imports only what it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime import activation
from escalade.runtime.cli import main as runtime_main
from escalade.runtime.pack import RulePack, canonical_bytes, seal
from tests.runtime.conftest import critical

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"


def event(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"e{n}.json"
    path.write_text(json.dumps(critical(f"T{n}", f"e{n}", at=f"2026-11-23T10:0{n}:00Z")))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of its own (no repository escalade.yaml), every message a dry run."""
    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ESCALADE_TRUSTED_KEYS", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


class Validations:
    """Counts the packs read from bytes (validated), calling the real loader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = RulePack.from_bytes

        def counted(data: bytes, **kwargs: Any) -> RulePack:
            self.count += 1
            return real(data, **kwargs)

        monkeypatch.setattr(activation.RulePack, "from_bytes", counted)


def test_the_active_pack_is_not_validated_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = home / "rulepack.json"
    pack.write_bytes(PACK.read_bytes())
    validations = Validations(monkeypatch)
    db = str(home / "s.db")
    code, out = run("event", str(event(home, 1)), "--db", db, "--pack", str(pack))
    assert code == 0 and "applied" in out and validations.count == 1
    code, out = run("event", str(event(home, 2)), "--db", db, "--pack", str(pack))
    assert code == 0 and "applied" in out and "warning" not in out
    assert validations.count == 1  # one hash said P is the active pack
    code, out = run("status", "T2", "--db", db, "--pack", str(pack), "--format", "json")
    assert code == 0 and json.loads(out)["policy"] == "enterprise_critical"
    assert validations.count == 1

    # Another pack is validated (and activated, and audited) as ever.
    other = json.loads(PACK.read_bytes())
    other["metadata"]["version"] = "1.0.1"
    other["policies"][2]["priority"] = 101
    pack.write_bytes(canonical_bytes(seal(other)))
    code, out = run("event", str(event(home, 3)), "--db", db, "--pack", str(pack))
    assert code == 0 and "applied" in out and validations.count == 2
    code, out = run("pack", "history", "--db", db, "--format", "json")
    versions = [p["version"].partition("+")[0] for p in json.loads(out)["packs"]]
    assert versions == ["1.0.0", "1.0.1"]


def test_the_active_pack_with_a_bad_signature_is_still_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are trusted: the signature is checked before the hash says "already active"."""
    pack = home / "rulepack.json"
    pack.write_bytes(PACK.read_bytes())
    db = str(home / "s.db")
    assert run("event", str(event(home, 1)), "--db", db, "--pack", str(pack))[0] == 0
    assert run("pack", "keygen", "--out", str(home / "keys"))[0] == 0
    monkeypatch.setenv("ESCALADE_TRUSTED_KEYS", str(home / "keys" / "escalade.pub"))
    code, out = run("event", str(event(home, 2)), "--db", db, "--pack", str(pack))
    assert code == 0 and "refused the pack" in out and "unsigned" in out
    assert run("pack", "sign", str(pack), "--key", str(home / "keys" / "escalade.key"))[0] == 0
    code, out = run("event", str(event(home, 3)), "--db", db, "--pack", str(pack))
    assert code == 0 and "applied" in out and "refused" not in out


@pytest.mark.parametrize("group", [main, runtime_main], ids=["escalade", "escalade-runtime"])
def test_every_listed_command_loads_under_its_name(group: click.Group) -> None:
    ctx = click.Context(group)
    names = group.list_commands(ctx)
    assert {"event", "pack", "serve", "status"} <= set(names)
    for name in names:
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name


def test_event_imports_only_what_it_runs(home: Path) -> None:
    """``escalade event`` imports neither the server, the token commands, the compiler's
    commands nor jinja2 (the runbooks' templates)."""
    db = home / "s.db"
    script = (
        "import json, sys\n"
        "from escalade.compiler.cli import main\n"
        "try:\n"
        f"    main(['event', {str(event(home, 1))!r}, '--db', {str(db)!r},"
        f" '--pack', {str(PACK)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=home, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "escalade.runtime.cli.escalations" in loaded
    unwanted = {
        "escalade.runtime.server",
        "escalade.runtime.cli.serve",
        "escalade.runtime.cli.token",
        "escalade.compiler.cli.build",
        "escalade.compiler.backends.runbooks",
        "jinja2",
        "starlette",
    }
    assert not unwanted & loaded
