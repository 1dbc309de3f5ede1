# Everything runs from .venv, created on first use by scripts/setup.sh (idempotent, seconds when warm).
PY := .venv/bin/python

.PHONY: setup test demo clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest tests

demo: setup
	$(PY) tools/misc/demo.py

clean:
	rm -rf work_dirs .pytest_cache
