"""Whole-set analysis passes (E301-W307). Filled in by the analysis work."""

from __future__ import annotations

from collections.abc import Callable

from escalade.compiler.diagnostics import Collector
from escalade.compiler.model import PolicySet

ANALYSIS_PASSES: tuple[Callable[[PolicySet, Collector], None], ...] = ()
