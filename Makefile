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

.PHONY: install image run test bench clean server deploy worker flow-image worker-docker

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
	@$(PY) -m tasks.image

# The bundled example, copied so that the repository itself stays clean.
run: image
	rm -rf $(EXAMPLE) && cp -r examples/shop $(EXAMPLE)
	$(VENV)/bin/covsweep run $(EXAMPLE)
	@echo "generated tests: $(EXAMPLE)/tests/generated, report: $(EXAMPLE)/.covsweep/report.json"

test: image
	$(PY) -m pytest tests

bench: image
	$(PY) bench/run.py && $(PY) bench/llm.py

# covsweep as a service: a server with its UI, the deployments of prefect.yaml, a worker to run them.
# The UI finds its API by PREFECT_SERVER_API_PORT, which --port leaves at 4200: both are set.
server: install
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	  $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: install
	PREFECT_API_URL=$(API_URL) $(PY) deployments/deploy.py

worker: install
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect worker start --pool covsweep --type process

# The Docker work pool's image, covsweep-flow:latest: rebuild it after changing the code.
flow-image: image
	bash deployments/flow-image/build.sh

worker-docker: flow-image
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect worker start --pool covsweep-docker --type docker

clean:
	rm -rf $(VENV) build bench/results
