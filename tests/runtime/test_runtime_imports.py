"""`escalade.runtime` imports, loads the pack and matches with lark, jinja2 and the compiler blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = ("lark", "jinja2", "escalade.compiler", "escalade.grammar")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked in this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import escalade.runtime
    from escalade.runtime.matcher import Matcher
    from escalade.runtime.pack import RulePack

    pack = RulePack.load(sys.argv[1])
    m = Matcher(pack)
    owner = m.owner("ticket.created", {"ticket": {"severity": "critical"}, "account": {"tier": "enterprise"}})
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("lark", "jinja2") or n.startswith("escalade.compiler"))
    print(owner.name, loaded)
    """
)


def test_runtime_runs_without_compiler_dependencies() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO / "generated" / "rulepack.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "enterprise_critical []"


def test_the_blocker_really_blocks() -> None:
    probe = SCRIPT.split("import escalade.runtime")[0] + "import jinja2\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode != 0 and "blocked in this test: jinja2" in out.stderr
