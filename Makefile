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
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,train,ray]'
	touch $(STAMP)

# The example sweep: in a terminal, the interface opens on it as it runs (the daemon it starts
# goes on after you quit); piped or in CI, it runs headless and prints its results table.
EXAMPLE := examples/digits.toml
run: $(STAMP)
	@if [ -t 1 ] && [ -z "$$CI" ]; then \
		$(VENV)/bin/gridrun queue add $(EXAMPLE) && $(VENV)/bin/gridrun tui --cpu-slots 2; \
	else \
		$(VENV)/bin/gridrun queue run $(EXAMPLE) --cpu-slots 2 && \
		$(VENV)/bin/gridrun results digits-demo --format md; \
	fi

# pytest exits 5 when it collects nothing; that is not a failure of the code under test.
test: $(STAMP)
	@command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux >/dev/null; }
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(PY) bench/startup.py
	$(PY) bench/matrix_store.py

clean:
	rm -rf $(VENV) runs/*/ runs/gridrun.db*
