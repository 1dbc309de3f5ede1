# Everything runs from .venv, created on first use by scripts/setup.sh (idempotent, seconds when warm).
PY := .venv/bin/python

.PHONY: setup test test-fast demo clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest tests

# The edit-test loop: every test not marked slow (pytest.ini); `make test` and CI run them all.
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

demo: setup
	$(PY) tools/misc/demo.py

clean:
	rm -rf work_dirs .pytest_cache
