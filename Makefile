# `make demo` and `make test` create .venv on first use (scripts/bootstrap.sh).
VENV := .venv
BOOT := $(VENV)/.bootstrapped
PY := $(VENV)/bin/python
# napari GUI tests need a display: run the suite under a virtual X server when there is one (they skip without).
XVFB := $(shell command -v xvfb-run 2>/dev/null)

.PHONY: demo test test-realdata lint

$(BOOT): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh

demo: $(BOOT)
	$(VENV)/bin/convscope demo --out runs/demo

test: $(BOOT)
	$(if $(XVFB),xvfb-run -a ,)$(PY) -m pytest -m "not realdata" -q

test-realdata: $(BOOT)
	$(PY) -m pytest -m realdata -q

lint: $(BOOT)
	$(VENV)/bin/ruff check src tests bench
