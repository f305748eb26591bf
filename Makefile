# covsweep: every target installs what it needs and can be run again.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXAMPLE := $(or $(TMPDIR),/tmp)/covsweep-example
PREFECT_PORT ?= 4200
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# The service's API: the one PREFECT_API_URL names, else the server `make server` starts.
API_URL = $(or $(PREFECT_API_URL),http://127.0.0.1:$(PREFECT_PORT)/api)

.PHONY: install image run lint test test-fast test-load bench clean server deploy worker flow-image worker-docker \
	postgres postgres-stop cluster cluster-stop dask-worker

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The sandbox image; offline, its base is built from Debian's packages first.
image: install
	@docker image inspect python:3.11-slim >/dev/null 2>&1 || docker pull -q python:3.11-slim >/dev/null 2>&1 \
	  || bash deployments/sandbox/build-base.sh
	@$(PY) -m tasks.sandbox.images

# The bundled example, copied so that the repository itself stays clean.
run: image
	rm -rf $(EXAMPLE) && cp -r examples/shop $(EXAMPLE)
	$(VENV)/bin/covsweep run $(EXAMPLE)
	@echo "generated tests: $(EXAMPLE)/tests/generated, report: $(EXAMPLE)/.covsweep/report.json"

# ruff (lint and format), the import rule, and what ruff cannot check (tests/test_style.py).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider tests/test_style.py

# The heavy load tests (marker `load`, many minutes) only in `make test-load`.
test: image lint
	$(PY) -m pytest -m "not load" tests

test-load: image
	$(PY) -m pytest -m load tests

# Without a Docker daemon or a Prefect server process: markers `docker` and `server` (conftest.py adds
# them to the tests using fixtures that need one). On every core, a test file to a process.
test-fast: install
	$(PY) -m pytest -n auto --dist loadfile -m "not docker and not server" tests

bench: image
	$(PY) bench/run.py && $(PY) bench/llm.py && $(PY) bench/coverup.py && $(PY) bench/offline.py && $(PY) bench/cluster.py \
	  && $(PY) bench/quality.py

# covsweep as a service: a server with its UI, the deployments of prefect.yaml, a worker to run them.
# The UI finds its API by PREFECT_SERVER_API_PORT, which --port leaves at 4200: both are set.
# The database is Prefect's setting: PREFECT_API_DATABASE_CONNECTION_URL (see `make postgres`), else SQLite.
server: install
	@$(PY) deployments/server_database.py
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	  $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: install
	PREFECT_API_URL=$(API_URL) $(PY) deployments/deploy.py

worker: install
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect worker start --pool covsweep --type process

# A local PostgreSQL for `make server` (port COVSWEEP_POSTGRES_PORT, default 5433): prints ONE line,
# PREFECT_API_DATABASE_CONNECTION_URL=..., for `eval "export $$(make -s postgres)"`; the rest goes to stderr.
postgres:
	@bash deployments/postgres/start.sh

postgres-stop:
	@bash deployments/postgres/stop.sh

# A Dask cluster on this machine for --cluster: a scheduler on 127.0.0.1:8786 and two workers, in the background
# (pid files and logs in ~/.cache/covsweep/cluster; DASK_PORT, DASK_WORKERS, DASK_THREADS change it).
DASK_PORT ?= 8786
DASK_WORKERS ?= 2
DASK_THREADS ?= 2
cluster: image
	@DASK_PORT=$(DASK_PORT) DASK_WORKERS=$(DASK_WORKERS) DASK_THREADS=$(DASK_THREADS) bash deployments/cluster.sh start

cluster-stop:
	@bash deployments/cluster.sh stop

# One worker on another host, in the foreground: from the same covsweep checkout and venv as the flow's,
# with a Docker daemon, the sandbox image (built on first use) and the LLM key in its environment.
dask-worker: install
	@test -n "$(SCHEDULER)" || { echo "usage: make dask-worker SCHEDULER=tcp://host:8786" >&2; exit 2; }
	$(VENV)/bin/dask worker $(SCHEDULER) --name "$$(hostname)-$$$$" --nthreads $(DASK_THREADS) --no-dashboard

# The Docker work pool's image, covsweep-flow:latest: rebuild it after changing the code.
flow-image: image
	bash deployments/flow-image/build.sh

worker-docker: flow-image
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect worker start --pool covsweep-docker --type docker

clean:
	rm -rf $(VENV) build bench/results
