# The README's commands. Each creates the virtual environment (.venv) on first use and
# installs what it needs, so a fresh clone needs only Python, Java and (for the browser test)
# Debian's package manager.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# What `make test-fast` leaves out: everything that starts a JVM, a browser, luigid or Docker.
SLOW_MARKERS := spark or e2e or browser or stack
WHEELHOUSE := docker/wheelhouse
STANDIN_WHEELS := tests/stack/wheels
# ALS's BLAS (pipeline/blas.py, ALS_BLAS), built from native/als_blas.c.
ALS_BLAS := $(VENV)/lib/movielens-als/libalsblas.so

.PHONY: run test test-fast lint stack-test wheelhouse bench clean debian-blas

run: $(VENV)/.installed-run $(ALS_BLAS)
	$(BIN)/movielens-als --local-scheduler $(ARGS)

# Every test but the container test of the compose stack, which is `make stack-test`.
test: $(VENV)/.installed-test $(VENV)/.chromium $(ALS_BLAS)
	$(BIN)/python -m pytest -m "not stack" $(ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not ($(SLOW_MARKERS))" $(ARGS)

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The compose stack built and run in real containers (tests/test_stack_containers.py). Needs
# root: installs Docker's engine, docker-compose 1.29 and mmdebstrap from Debian bookworm when
# missing, and Compose v2 (`docker compose`) from Debian trixie when `docker compose` does not
# answer (tests/stack/install-compose-v2), and builds the image offline from a wheelhouse and a
# base image made from Debian's packages.
stack-test: $(VENV)/.installed-test $(WHEELHOUSE)/.complete $(STANDIN_WHEELS)/.complete
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null && command -v mmdebstrap >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose mmdebstrap >/dev/null; }
	@docker compose version >/dev/null 2>&1 || tests/stack/install-compose-v2
	docker compose version
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
	$(BIN)/python -m bench.compare_bare $(ARGS)

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

# Spark's ALS computes with native BLAS and LAPACK when the system has them, and fits about 1.2x
# faster than with its Java fallbacks (BENCHMARKS.md): Debian's OpenBLAS is the system's
# libblas.so.3 and liblapack.so.3. ALS's per-rating calls go to Debian's reference BLAS
# (libblas3), 1.16x faster, with its dspr and daxpy compiled for the CPU's vector units
# (native/als_blas.c; pipeline/blas.py, ALS_BLAS), about 1.2x faster again. Optional: without
# apt-get, root or passwordless sudo, or a C compiler, the reference BLAS or the Java fallbacks
# serve ALS, and this says so. Nothing here is a stamp: what is missing is tried again at the
# next `make run` or `make test` (and every ALS job builds the library too when it can).
# A real file, so built when missing or older than its source; a failed build leaves none.
$(ALS_BLAS): native/als_blas.c native/build-als-blas | debian-blas
	@native/build-als-blas $@ || echo "could not build native/als_blas.c into $@: ALS's per-rating" \
		"calls go to the reference BLAS if installed; the next make run, make test or ALS job tries again" >&2

# Installs with apt-get what is missing, as root or with sudo that asks no password (never a prompt).
debian-blas:
	@lib=/usr/lib/$$(uname -m)-linux-gnu; \
	[ -e $$lib/openblas-pthread/libblas.so.3 ] && [ -e $$lib/blas/libblas.so.3 ] && command -v $${CC:-gcc} >/dev/null \
		|| ! command -v apt-get >/dev/null 2>&1 || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
		echo "installing Debian's OpenBLAS, reference BLAS and C compiler for Spark's ALS (apt-get)"; \
		{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$sudo apt-get install -y -qq libopenblas0-pthread libblas3 gcc libc6-dev >/dev/null; } \
			|| echo "could not install libopenblas0-pthread, libblas3 and gcc (root or passwordless sudo needed):" \
				"Spark's ALS may use its Java BLAS" >&2; }

clean:
	rm -rf $(VENV) data $(WHEELHOUSE) $(STANDIN_WHEELS)
