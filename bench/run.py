"""Run every benchmark module in bench/ (``bench_*.py``, each with a ``main()``).

Benchmarks print figures and ratios against a baseline measured in the same
run; they never assert timings (this machine is shared and noisy).
Usage: python bench/run.py [NAME ...]   (NAME filters modules, e.g. ``frontend``)
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    wanted = argv[1:]
    modules = sorted(here.glob("bench_*.py"))
    for path in modules:
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n=== bench {name} ===", flush=True)
        start = time.perf_counter()
        module.main()
        print(f"--- {name}: {time.perf_counter() - start:.1f}s total", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
