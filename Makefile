# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST := 127.0.0.1
PORT := 8000
DEMO_ADMIN_USERNAME ?= admin
DEMO_ADMIN_PASSWORD ?= admin

.PHONY: run test lint venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run with PYTHON=python3.x"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	DEBUG=1 $(PY) manage.py migrate --no-input
	DEBUG=1 $(PY) manage.py seed_demo
	DEBUG=1 DEMO_ADMIN_USERNAME=$(DEMO_ADMIN_USERNAME) DEMO_ADMIN_PASSWORD=$(DEMO_ADMIN_PASSWORD) $(PY) manage.py create_demo_admin
	@echo ""
	@echo "  Admin:  http://$(HOST):$(PORT)/admin/"
	@echo "  Login:  $(DEMO_ADMIN_USERNAME) / $(DEMO_ADMIN_PASSWORD)"
	@echo ""
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

# Benchmark of the report pages (bench/README.md): `make bench ROWS=10000000`, on SQLite with
# `make bench ROWS=1000000 BENCH_DB=sqlite`. A dataset already loaded at that size is reused.
ROWS ?= 100000
BENCH_DB ?= postgres://postgres@127.0.0.1:5432/bench
BENCH_ARGS ?=
# The smoke run uses databases of its own, so that it never replaces a big dataset; its writes
# (a second of the concurrent writers, a 2,000-row import) only check that they still run.
BENCH_SMOKE_ARGS := --rows 2000 --reload --warmup 1 --repeat 3 --min-repeat 1 --budget 5 --timeout 30 --periods today \
	--write-seconds 1 --import-rows 2000

.PHONY: bench bench-smoke

bench: venv
	$(PY) -m bench --rows $(ROWS) --db $(BENCH_DB) $(BENCH_ARGS)

bench-smoke: venv
	$(PY) -m bench $(BENCH_SMOKE_ARGS) --db sqlite:///bench/results/smoke.sqlite3 --output bench/results/smoke-sqlite.json
	$(PY) -m bench $(BENCH_SMOKE_ARGS) --db postgres://postgres@127.0.0.1:5432/bench_smoke --output bench/results/smoke-postgresql.json
