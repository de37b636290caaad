# Two commands from a fresh clone: `make demo` runs everything, `make test` runs the suite.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

export FLOWER_BASIC_AUTH ?= ops:shopflow-ops
export SHOPFLOW_ADMIN_USER ?= admin
export SHOPFLOW_ADMIN_PASSWORD ?= shopflow-admin
# The suite runs on PostgreSQL (the concurrency tests need it) and a real Redis: these
# where they answer, else a PostgreSQL and a Redis of our own under var/ (harness/services.py).
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test bench bench-outage lint clean

# Production is the settings' default; these targets ask for their own environment.
demo: export SHOPFLOW_ENV = development
test bench: export SHOPFLOW_ENV = test

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev,bench]"
	touch $(STAMP)

# Every Procfile process under supervisord (harness/demo.py), on our own PostgreSQL under
# var/postgres unless DATABASE_URL says otherwise (sqlite:///var/shopflow.sqlite3 is the
# lighter option); a process that dies is started again.
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m harness.demo

test: install
	$(PY) -m harness.services run --browser -- $(PY) -m pytest $(PYTEST_ARGS)

# Every benchmark beside its baseline, on the same servers as `make test`; figures and
# plots land in bench/results/.
bench: install
	$(PY) -m harness.services run -- $(PY) -m bench.run $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var

# The outage drill at real time (bench/outage.py, about 17 minutes): its own command, as
# it would push `make bench` past 20 minutes.
bench-outage: install
	$(PY) -m harness.services run -- $(PY) -m bench.outage $(BENCH_ARGS)
