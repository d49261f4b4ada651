# The README's commands. Each creates the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test bench clean

run: $(VENV)/.installed-run
	$(BIN)/movielens-als --local-scheduler $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-run
	$(BIN)/python bench/compare_bare.py $(ARGS)

$(VENV)/.installed-run: pyproject.toml | $(VENV)/.java-checked
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/.java-checked
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,scheduler]'
	touch $@ $(VENV)/.installed-run

# Spark 4 needs Java 17 or newer.
$(VENV)/.java-checked:
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) exit 1; found = 1 } END { exit !found }' \
		|| { echo "Spark needs Java 17 or newer on PATH (e.g. apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
	mkdir -p $(VENV) && touch $@

clean:
	rm -rf $(VENV) data
