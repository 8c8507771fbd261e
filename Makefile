# The two commands: `make run` (the app on http://localhost:8501) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test bench lint screenshots clean

$(VENV)/.run-deps: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt $(VENV)/.run-deps
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps
	$(PY) -m ui.warm run app.py --server.port $(PORT)  # = streamlit run, after a warm-up (ui/warm.py)

test: $(VENV)/.dev-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules segloss_core
	$(PY) -m pytest -n 2 --dist loadgroup -q tests

bench: $(VENV)/.dev-deps
	$(PY) benchmarks/run.py

screenshots: $(VENV)/.dev-deps
	SHOTS=docs/screenshots $(PY) -m pytest -q tests/test_browser.py tests/test_browser_dataset.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
