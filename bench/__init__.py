"""The benchmark scripts, over one shared harness (bench/harness.py). Run each from the
repository's root as a module, e.g. `.venv/bin/python -m bench.compare_bare --help`; the two
spark-submit scripts (bare_als.py, user_script.py) are files the benchmarks submit."""
