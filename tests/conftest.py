"""Shared fixtures: paths to the bundled policies and the shared examples."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def policies_dir() -> Path:
    return REPO / "policies"


@pytest.fixture
def shared() -> Path:
    if not SHARED.exists():  # pragma: no cover - shared/ is laid beside every checkout
        pytest.skip("../shared is not beside this checkout")
    return SHARED
