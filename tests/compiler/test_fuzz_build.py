"""A few hundred of the `make fuzz` mutants on every test run: check clean implies build.

The full run (`make fuzz`, 20,000 mutants) uses the same harness, tests/fuzz_build.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.fuzz_build import run


def test_every_mutant_check_passes_with_strict_is_built(tmp_path: Path) -> None:
    report = run(300, seed=14, out=tmp_path)
    assert report.failures == [], report.failures[0]
    assert report.mutants == 300
    assert report.clean > 30  # the mutants exercise build, not only check's refusals
    assert report.built == report.clean
