# `make run` and `make test` do all set-up themselves: a venv in .venv, the project installed
# into it (editable), then the work. Re-running skips the install unless pyproject.toml changed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,train]'
	touch $(STAMP)

# The example sweep, headless: queue it, run it on two CPU slots, print its results table.
run: $(STAMP)
	$(VENV)/bin/gridrun queue run examples/quickstart.toml --cpu-slots 2
	$(VENV)/bin/gridrun results quickstart --format md

# pytest exits 5 when it collects nothing; that is not a failure of the code under test.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(PY) bench/startup.py
	$(PY) bench/matrix_store.py

clean:
	rm -rf $(VENV) runs/*/ runs/gridrun.db*
