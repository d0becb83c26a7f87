# Two commands do all the set-up on a fresh machine:
#   make demo   the whole chain on the local target with a generated retailer, ending with a summary
#   make test   the test suite
# Both create the virtual environment (.venv) and Airflow's metadata DB (.data/airflow) when missing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8

export PYTHONPATH := $(CURDIR)/plugins
export AIRFLOW_HOME ?= $(CURDIR)/.data/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: demo test lint imports venv airflow-db lock bench clean generate advance system-deps ui ui-stop ui-check airflow trigger backfill

# Task logs at WARNING keep the demo readable; run `python -m crosschannel demo` directly for all of them.
demo: venv airflow-db
	AIRFLOW__LOGGING__LOGGING_LEVEL=$${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING} $(PY) -m crosschannel demo

# Two or more workers (pytest-xdist), one test module per worker at a time (module fixtures run once).
TEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder
test: venv system-deps imports
	$(PY) -m pytest $(TEST_WORKERS) $(PYTEST_ARGS)

# The package's layers and the absence of import cycles (contracts in pyproject.toml).
imports: venv
	$(VENV)/bin/lint-imports

system-deps:
	@bash .ci/system-deps

lint: venv imports
	$(VENV)/bin/ruff check .

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

airflow-db: $(AIRFLOW_HOME)/airflow.db

$(AIRFLOW_HOME)/airflow.db: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1)

# Regenerate constraints.txt (every transitive pin) after changing requirements*.txt.
lock: venv
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-annotate --custom-compile-command "make lock" \
		requirements.txt requirements-dev.txt -o constraints.txt

generate: venv
	$(PY) -m crosschannel generate $(ARGS)

advance: venv
	$(PY) -m crosschannel advance $(ARGS)

bench: venv
	$(PY) bench/bench_generator.py $(ARGS)

# Your own order history, as the models would have scored it (README: "Backtest"):
#   make backtest ORDERS=orders.csv CUTOFFS=2024-03-31,2024-06-30 [ARGS="--customers c.csv --root DIR"]
.PHONY: backtest
backtest: venv airflow-db
	$(if $(and $(ORDERS),$(CUTOFFS)),,$(error ORDERS and CUTOFFS are required: make backtest ORDERS=F CUTOFFS=D,D))
	AIRFLOW__LOGGING__LOGGING_LEVEL=$${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING} $(PY) -m crosschannel backtest \
		--orders $(ORDERS) --cutoffs $(CUTOFFS) $(ARGS)

# A real public order log: CDNOW (69,659 orders of 23,570 customers, 1997-01 to 1998-06), shipped inside the
# `lifetimes` wheel on PyPI; downloaded here only, never a dependency of the bundle.
CDNOW := .data/cdnow/CDNOW_master.txt
$(CDNOW): $(VENV)/.installed
	mkdir -p $(@D)
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --dest $(@D) lifetimes==0.11.3
	$(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("lifetimes/datasets/CDNOW_master.txt"))' \
		$(@D)/Lifetimes-0.11.3-py3-none-any.whl > $@.tmp && mv $@.tmp $@

.PHONY: backtest-cdnow
backtest-cdnow: $(CDNOW)
	$(MAKE) backtest ORDERS=$(CDNOW) CUTOFFS=$${CUTOFFS:-1997-09-30,1997-12-31,1998-03-31} ARGS="--delimiter whitespace \
		--columns order_date=date,quantity=number_of_cds,amount=dollar_value --date-format %Y%m%d \
		--root $${ROOT:-.data/backtest-cdnow} $(ARGS)"

# The whole chain for a first day and a regular day at a scale, each stage against its floor (bench/scale.py):
#   make bench-scale CUSTOMERS=100000 [ARGS="--reuse --root DIR"]  -> .data/reports/bench_scale_<N>.json
.PHONY: bench-scale
bench-scale: venv airflow-db
	$(if $(CUSTOMERS),,$(error CUSTOMERS is required: make bench-scale CUSTOMERS=N))
	AIRFLOW__LOGGING__LOGGING_LEVEL=$${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING} $(PY) bench/scale.py --customers $(CUSTOMERS) $(ARGS)

# Sizing on paper for AWS: the SQL jobs on local Spark at the demo's and the 100k benchmark's scale, extrapolated to
# Glue (bench/sizing.py; after `make demo` and `make bench-scale CUSTOMERS=100000`) -> .data/reports/sizing.json
.PHONY: bench-sizing
bench-sizing: venv
	$(PY) bench/sizing.py $(ARGS)

clean:
	rm -rf .data

# The local Airflow UI without Docker (api-server, scheduler, dag-processor, triggerer on 127.0.0.1 only). Ports:
# AIRFLOW_UI_PORT (8080), AIRFLOW_SCHEDULER_HEALTH_PORT (8974). The scheduled head of the chain is held back unless
# SCHEDULE=on (make ui SCHEDULE=on); see bin/airflow-local.
ui: venv
	bin/airflow-local start

ui-stop:
	bin/airflow-local stop

# Headless Chromium against the running local UI: the five DAGs and the asset lineage, with screenshots.
ui-check:
	bin/ui-check

# A manual run of a DAG for a day, keyed by it (python -m crosschannel trigger; `airflow dags trigger` takes no key):
#   make trigger DAG=retail_trusted DAY=2026-11-02 [CONF='{"force_publish": true}']
trigger: venv
	@eval "$$(bin/airflow-local env)" && $(PY) -m crosschannel trigger $(DAG) --partition $(DAY) $(if $(CONF),--conf '$(CONF)')

# The Airflow CLI in the local UI's environment (bin/airflow): make airflow ARGS="dags list"
airflow: venv
	@bin/airflow $(ARGS)

# One backfill at the head rebuilds every stage for those days (needs `make ui` running):
#   make backfill FROM=2026-11-02 TO=2026-11-04 [ARGS="--reprocess-behavior completed"]
backfill: venv
	bin/airflow backfill create --dag-id retail_ingest --from-date $(FROM) --to-date $(TO) --max-active-runs 1 $(ARGS)
