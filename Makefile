# `make demo` and `make test` create .venv on first use (scripts/bootstrap.sh).
VENV := .venv
BOOT := $(VENV)/.bootstrapped
PY := $(VENV)/bin/python

.PHONY: demo test test-realdata lint

$(BOOT): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh

demo: $(BOOT)
	$(VENV)/bin/convscope demo --out runs/demo

test: $(BOOT)
	$(PY) -m pytest -m "not realdata" -q

test-realdata: $(BOOT)
	$(PY) -m pytest -m realdata -q

lint: $(BOOT)
	$(VENV)/bin/ruff check src tests bench
