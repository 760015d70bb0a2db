"""Fixtures for the compiler tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from escalade.compiler.parse_cache import CACHE_DIR_VARIABLE


@pytest.fixture(autouse=True, scope="session")
def parse_cache_in_a_session_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``escalade check`` keeps parse results on disk: during the tests in a directory of
    the session, never in the repository or the home directory."""
    before = os.environ.get(CACHE_DIR_VARIABLE)
    os.environ[CACHE_DIR_VARIABLE] = str(tmp_path_factory.mktemp("escalade-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_DIR_VARIABLE, None)
    else:
        os.environ[CACHE_DIR_VARIABLE] = before
