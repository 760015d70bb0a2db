"""Front end: parse + check time for generated sets of 1,000 and 5,000 policies.

Baseline in the same run: Lark alone (parse only, no tree building or checks),
so the ratio shows what the typed tree and the passes cost on top of parsing.
Also: re-checking after editing one file (parse results cached by content hash).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import generate_policy_set

from escalade.compiler import load_policy_set
from escalade.compiler import parse as parse_module


def measure(count: int) -> None:
    files = generate_policy_set(count)
    size = sum(len(t.encode()) for t in files.values())
    lines = sum(t.count("\n") for t in files.values())
    sources = sorted(files.items())

    parse_module._PARSE_CACHE.clear()
    lark = parse_module.parser()
    t0 = time.perf_counter()
    for _, text in sources:
        lark.parse(text)
    t_lark = time.perf_counter() - t0

    parse_module._PARSE_CACHE.clear()
    t0 = time.perf_counter()
    result = load_policy_set("bench", sources=sources, analyze=False)
    t_front = time.perf_counter() - t0

    parse_module._PARSE_CACHE.clear()
    t0 = time.perf_counter()
    full = load_policy_set("bench", sources=sources)
    t_full = time.perf_counter() - t0

    edited = list(sources)
    name, text = edited[1]
    edited[1] = (name, text.replace("Generated policy", "Edited policy", 1))
    t0 = time.perf_counter()
    load_policy_set("bench", sources=edited, analyze=False)
    t_edit = time.perf_counter() - t0

    assert result.errors == 0, [str(d.span) + d.message for d in result.diagnostics[:5]]
    print(
        f"{count:>6} policies  {size / 1e6:5.2f} MB  {lines:>7} lines  "
        f"lark parse only {t_lark:6.2f}s  parse+check {t_front:6.2f}s "
        f"(x{t_front / t_lark:.2f} of parse)  with whole-set analysis {t_full:6.2f}s "
        f"({full.errors} errors, {full.warnings} warnings)  "
        f"re-check after editing one file {t_edit:5.2f}s"
    )


def main() -> None:
    for count in (1000, 5000):
        measure(count)


if __name__ == "__main__":
    main()
