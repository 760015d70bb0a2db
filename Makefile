# Every target creates and uses its own virtual environment in .venv, so a
# fresh machine with only Python 3.11, pip, gcc, make and git can run them.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench clean wheelhouse runtime-only never-lose fuzz

# A strict editable install links each file that exists at install time, so
# the package is re-linked (without dependencies) whenever the file list changes.
FILES  := $(VENV)/.files
LISTING := $(shell find grammar compiler runtime -type f \( -name '*.py' -o -name '*.lark' -o -name '*.j2' -o -name '*.json' -o -name '*.html' -o -name '*.css' -o -name '*.js' \) 2>/dev/null | sort | md5sum | cut -c1-32)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=strict -e '.[dev,server,otel]'
	@echo $(LISTING) > $(FILES)
	@touch $(STAMP)

install: $(STAMP)
	@if [ "$$(cat $(FILES) 2>/dev/null)" != "$(LISTING)" ]; then \
	  $(BIN)/python -m pip install --quiet --no-deps --config-settings editable_mode=strict -e . && \
	  echo $(LISTING) > $(FILES); fi

# Wheels of escalade's dependencies, so the pre-commit try-repo test installs
# the hooks without reaching a package index.
WHEELHOUSE := $(VENV)/wheelhouse
$(WHEELHOUSE)/.done: pyproject.toml | $(STAMP)
	$(BIN)/python -m pip download --quiet -d $(WHEELHOUSE) "setuptools>=77" wheel .
	@touch $@

wheelhouse: $(WHEELHOUSE)/.done

# The main job on the bundled policies: check, build, explain one sample event
# per policy, run the policy tests, replay a sample day and print the KPIs.
demo: install
	$(BIN)/escalade check policies/
	$(BIN)/escalade build policies/
	@for f in examples/events/*.json; do echo "--- escalade explain $$f"; $(BIN)/escalade explain "$$f" || exit 1; done
	$(BIN)/escalade test policies/
	$(BIN)/escalade simulate examples/day.jsonl --pack generated/rulepack.json

lint: install
	$(BIN)/ruff check compiler runtime grammar tests bench
	$(BIN)/ruff format --check compiler runtime grammar tests bench

typecheck: install
	$(BIN)/mypy

unit: install wheelhouse
	ESCALADE_WHEELHOUSE=$(abspath $(WHEELHOUSE)) $(BIN)/python -m pytest

# The runtime on a host without the compiler's dependencies: a second virtual
# environment with escalade installed --no-deps plus the runtime's own needs.
RUNTIME_VENV := .venv-runtime
runtime-only: wheelhouse
	rm -rf $(RUNTIME_VENV)
	$(PYTHON) -m venv $(RUNTIME_VENV) || python3 -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-index --find-links $(WHEELHOUSE) \
	  click pyyaml jsonschema jsonschema-rs cryptography packaging "setuptools>=77" wheel
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-index --find-links $(WHEELHOUSE) --no-deps .
	cd /tmp && $(abspath $(RUNTIME_VENV))/bin/python $(abspath tests/isolation/runtime_only.py)

test: lint typecheck runtime-only unit

# check --strict clean implies build succeeds, on 20,000 mutated policy sets
# (make test runs 300 of them: tests/compiler/test_fuzz_build.py).
fuzz: install
	$(BIN)/python -m tests.fuzz_build --count 20000 --seed $${SEED:-14}

# The "never owner-less, never lost" property with fresh random examples, 20 runs in a row
# (make test runs it derandomized, so the suite is deterministic).
never-lose: install
	@for i in $$(seq 1 20); do \
	  ESCALADE_EXPLORE=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
	    tests/runtime/test_never_lose.py >/dev/null || { echo "never-lose: run $$i failed"; \
	    ESCALADE_EXPLORE=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/runtime/test_never_lose.py; exit 1; }; \
	  echo "never-lose: run $$i passed"; done

# The bench extra (cedarpy) is installed on first use; without it the Cedar figures say "skipped".
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=strict -e '.[dev,server,otel,bench]' \
	  || echo "bench: the bench extra could not be installed; Cedar comparisons are skipped"
	@echo $(LISTING) > $(FILES)
	@touch $@

bench: install $(BENCH_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
