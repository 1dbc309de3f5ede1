# Everything runs from a venv that scripts/setup.sh creates on first use (idempotent, seconds when warm):
#   .venv        the main lane: Python 3 of this machine, torch 2.13 (CPU), mmcv 2.1.0 with its ops
#   .venv-floor  the floor lane: Python 3.8, torch 2.1.2, mmcv 2.1.0 with its ops (MMDetection's own set-up)
PY := .venv/bin/python
PY_FLOOR := .venv-floor/bin/python

.PHONY: setup setup-floor test test-library test-tools test-fast test-floor demo clean

setup:
	@bash scripts/setup.sh

setup-floor:
	@bash scripts/setup.sh --floor

# The whole suite, in two lanes of under ten minutes each on two cores: the library's tests, then the
# command-line tools' (tests/tools, which run the tools as a user does).
test: test-library test-tools

test-library: setup
	$(PY) -m pytest tests --ignore=tests/tools

test-tools: setup
	$(PY) -m pytest tests/tools

# The edit-test loop: every test not marked slow (pytest.ini); `make test` and CI run them all.
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

# The oldest supported stack: every test not marked slow, and every test about checkpoints, weights,
# training, resume, configs and installing (marked floor in tests/conftest.py); the versions are printed at the end.
test-floor: setup-floor
	$(PY_FLOOR) -m pytest tests -m "not slow or floor"

demo: setup
	$(PY) tools/misc/demo.py

clean:
	rm -rf work_dirs .pytest_cache
