# The README's commands. Each creates the virtual environment (.venv) on first use and
# installs what it needs, so a fresh clone needs only Python, Java and (for the browser test)
# Debian's package manager.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# What `make test-fast` leaves out: everything that starts a JVM, a browser, luigid or Docker.
SLOW_MARKERS := spark or e2e or browser or stack

.PHONY: run test test-fast lint bench clean

run: $(VENV)/.installed-run
	$(BIN)/movielens-als --local-scheduler $(ARGS)

test: $(VENV)/.installed-test $(VENV)/.chromium
	$(BIN)/python -m pytest -m "not stack" $(ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not ($(SLOW_MARKERS))" $(ARGS)

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed-run
	$(BIN)/python bench/compare_bare.py $(ARGS)

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(VENV)/.java-checked
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(VENV)/.java-checked
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,scheduler]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-lint: setup.cfg pyproject.toml | $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,scheduler,lint]'
	touch $@

# Spark 4 needs Java 17 or newer.
$(VENV)/.java-checked:
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) exit 1; found = 1 } END { exit !found }' \
		|| { echo "Spark needs Java 17 or newer on PATH (e.g. apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
	mkdir -p $(VENV) && touch $@

# The report's browser test renders report.html in Debian's Chromium.
$(VENV)/.chromium: | $(VENV)/.java-checked
	@command -v chromium >/dev/null 2>&1 || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian's chromium for the browser test (apt-get)"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }
	touch $@

clean:
	rm -rf $(VENV) data
