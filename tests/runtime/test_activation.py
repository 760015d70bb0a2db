"""No downgrade without rollback: every activation path refuses a pack a later activation
superseded, or of a lower version; `pack rollback` brings one back, audited."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime.activation import PackRefused, activate_file
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.pack import canonical_bytes, seal
from escalade.runtime.signing import TrustedKeys
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0


def variant(pack: dict[str, Any], tmp_path: Path, name: str, version: str, title: str) -> Path:
    """``pack`` with another version and one policy title changed, sealed, as a file."""
    body = copy.deepcopy(pack)
    body["metadata"]["version"] = version
    body["policies"][0]["title"] = title
    path = tmp_path / f"{name}.json"
    path.write_bytes(canonical_bytes(seal(body)))
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    store = SQLiteStore(str(tmp_path / "a.db"))
    yield Engine(store, VirtualClock(T0))
    store.close()


def test_a_pack_superseded_by_an_activation_is_refused_then_rolled_back(
    engine: Engine, tmp_path: Path, pack: dict[str, Any]
) -> None:
    keys = TrustedKeys.from_files([])
    a = variant(pack, tmp_path, "a", "2.0.0", "first")
    b = variant(pack, tmp_path, "b", "2.0.0", "second")  # same version, other content
    activate_file(engine, a, keys, T0, actor="sam")
    activate_file(engine, b, keys, T0 + 1, actor="sam")
    with pytest.raises(PackRefused, match="a later activation superseded it"):
        activate_file(engine, a, keys, T0 + 2, actor="sam")
    kinds = [r.kind for r in engine.store.audit_rows()]
    assert kinds[-1] == "pack_refused"
    assert engine.active().pack.policies[0].title == "second"


def test_a_lower_version_is_refused_and_rolling_forward_is_allowed(
    engine: Engine, tmp_path: Path, pack: dict[str, Any]
) -> None:
    keys = TrustedKeys.from_files([])
    old = variant(pack, tmp_path, "old", "1.9.0", "old")
    new = variant(pack, tmp_path, "new", "1.10.0", "new")  # PEP 440: 1.10 > 1.9
    activate_file(engine, old, keys, T0, actor="sam")
    activate_file(engine, new, keys, T0 + 1, actor="sam")
    with pytest.raises(PackRefused, match=r"lower than the active 1\.10\.0"):
        activate_file(engine, old, keys, T0 + 2, actor="sam")
    # the rollback path: audited with its kind, then `new` (left by a rollback) rolls forward
    back = engine.pack(1)
    engine.activate(back.pack, T0 + 3, actor="sam", reason="bad", kind="pack_rolled_back")
    assert engine.active().pack.version == "1.9.0"
    activate_file(engine, new, keys, T0 + 4, actor="sam")
    assert engine.active().pack.version == "1.10.0"
    assert json.loads(new.read_text())["metadata"]["version"] == "1.10.0"
