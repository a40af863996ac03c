# unsup3d: set-up, demo, tests and lint. POSIX make; every target runs from the repo root.
VENV ?= .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed

.PHONY: install demo test lint bench clean

# Create the venv once and (re)install the package in editable mode whenever its metadata
# changes; the stamp file makes a second `make install` a no-op.
install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Train the smoke config on built-in synthetic data (no downloads) into runs/demo.
demo: install
	$(VENV)/bin/unsup3d train --config configs/smoke.yaml --run-dir runs/demo --no-resume

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) experiments/bench_train.py

# Removes build and tool caches and the demo run; keeps the venv and any other runs/.
clean:
	rm -rf runs/demo build dist *.egg-info .pytest_cache .ruff_cache
	find . -path "./$(VENV)" -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
