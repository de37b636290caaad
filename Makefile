# Two commands from a fresh clone: `make demo` runs everything, `make test` runs the suite.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

export FLOWER_BASIC_AUTH ?= ops:shopflow-ops
export SHOPFLOW_ADMIN_USER ?= admin
export SHOPFLOW_ADMIN_PASSWORD ?= shopflow-admin
# The suite runs on PostgreSQL (the concurrency tests need it) and a real Redis.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev,bench]"
	touch $(STAMP)

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py setup_periodic_tasks
	@echo ""
	@echo "  Shop          http://127.0.0.1:8000/"
	@echo "  Admin         http://127.0.0.1:8000/admin/   ($(SHOPFLOW_ADMIN_USER) / $(SHOPFLOW_ADMIN_PASSWORD))"
	@echo "  Flower        http://127.0.0.1:5555/         ($(subst :, / ,$(FLOWER_BASIC_AUTH)))"
	@echo "  Operations    http://127.0.0.1:8000/admin/operations/"
	@echo "  Metrics       curl -H 'Authorization: Bearer shopflow-metrics' http://127.0.0.1:8000/metrics"
	@echo "  Health        http://127.0.0.1:8000/healthz  http://127.0.0.1:8000/readyz"
	@echo "  Sandbox       http://127.0.0.1:8100/ledger"
	@echo "  API           curl -X POST http://127.0.0.1:8000/api/v1/checkout -H 'Content-Type: application/json' -d @docs/checkout-example.json"
	@echo "  Load          $(PY) manage.py place_orders --count 50 --concurrency 4"
	@echo "  Stop          Ctrl-C"
	@echo ""
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) -m pytest

# Every benchmark beside its baseline, on this machine's PostgreSQL and Redis (as `make
# test`); figures and plots land in bench/results/.
bench: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.run $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var
