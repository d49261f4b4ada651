# The README's commands. Each creates the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
WHEELHOUSE := docker/wheelhouse
STANDIN_WHEELS := tests/stack/wheels

.PHONY: run test stack-test wheelhouse bench clean

run: $(VENV)/.installed-run
	$(BIN)/movielens-als --local-scheduler $(ARGS)

# The ordinary suite; the container test of the compose stack is `make stack-test`.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not stack" $(ARGS)

# The compose stack built and run in real containers (tests/test_stack_containers.py). Needs
# root: installs Docker's engine, docker-compose and mmdebstrap from Debian when missing, and
# builds the image offline from a wheelhouse and a base image made from Debian's packages.
stack-test: $(VENV)/.installed-test $(WHEELHOUSE)/.complete $(STANDIN_WHEELS)/.complete
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null && command -v mmdebstrap >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose mmdebstrap >/dev/null; }
	$(BIN)/python -m pytest -m stack $(ARGS)

# The image's pinned packages as wheels, for OFFLINE_BUILD=1 (docker/Dockerfile). pyspark is
# published only as an sdist: its wheel is built here (pip caches it for the next time).
wheelhouse: $(WHEELHOUSE)/.complete

$(WHEELHOUSE)/.complete: docker/constraints.txt | $(VENV)/.installed-run
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	grep -v '^pyspark==' docker/constraints.txt > $(WHEELHOUSE)/binary.txt
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d $(WHEELHOUSE) -r $(WHEELHOUSE)/binary.txt
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(WHEELHOUSE) "$$(grep '^pyspark==' docker/constraints.txt)"
	touch $@

# moto's server and what it needs, for the S3 stand-in of the container test (MinIO's image
# cannot be pulled where the test runs), in the versions the test environment has.
$(STANDIN_WHEELS)/.complete: | $(VENV)/.installed-test
	rm -rf $(STANDIN_WHEELS) && mkdir -p $(STANDIN_WHEELS)
	$(BIN)/python -m pip freeze | grep -iE '^(moto|flask|flask-cors)==' | sed 's/^moto==/moto[s3]==/' > $(STANDIN_WHEELS)/requirements.txt
	$(BIN)/python -m pip download --quiet --only-binary=:all: -d $(STANDIN_WHEELS) -r $(STANDIN_WHEELS)/requirements.txt
	touch $@

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
	rm -rf $(VENV) data $(WHEELHOUSE) $(STANDIN_WHEELS)
