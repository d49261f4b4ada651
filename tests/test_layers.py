"""The layers stay apart. The library (movielens_als) imports no luigi, boto3, requests, Spark
or orchestration, anywhere in its code (a function-level import counts too), and importing all
of it loads none of them. The store (storage) imports neither luigi nor the tasks nor Spark.
The drivers (drivers, spark_jobs) import neither luigi nor the tasks, so the packages never import
each other; the numpy drivers import no Spark and load none, and what every driver shares
(drivers.common) sits below the Spark drivers, never above them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import drivers
import movielens_als
import spark_jobs
import storage

LIBRARY = Path(movielens_als.__file__).parent
FORBIDDEN = {"luigi", "boto3", "botocore", "requests", "pyspark", "pipeline", "drivers", "spark_jobs", "storage"}
# What each other layer may not import.
LAYERS = {
    Path(storage.__file__).parent: {"luigi", "pyspark", "pipeline", "drivers", "spark_jobs"},
    Path(drivers.__file__).parent: {"luigi", "pyspark", "pipeline", "spark_jobs"},
    Path(spark_jobs.__file__).parent: {"luigi", "pipeline"},
}


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_library_module_imports_the_orchestration_or_its_clients():
    modules = sorted(LIBRARY.glob("*.py"))
    assert len(modules) >= 8
    offending = {path.name: sorted(imported_top_levels(path) & FORBIDDEN) for path in modules}
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import luigi.contrib.s3\n    from boto3 import client\n")
    assert imported_top_levels(module) >= {"luigi", "boto3"}


def test_importing_the_whole_library_loads_no_orchestration():
    names = ", ".join(f"movielens_als.{p.stem}" for p in sorted(LIBRARY.glob("*.py")) if p.stem != "__init__")
    code = f"import sys, {names}; print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("folder", LAYERS, ids=lambda p: p.name)
def test_the_store_and_the_drivers_import_no_orchestration(folder):
    modules = sorted(folder.glob("*.py"))
    offending = {path.name: sorted(imported_top_levels(path) & LAYERS[folder]) for path in modules}
    assert {name: found for name, found in offending.items() if found} == {}


def loaded_by(statement: str, names: list[str]) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


def test_a_driver_loads_neither_luigi_nor_the_tasks():
    every = "import spark_jobs.train_als, spark_jobs.tune_als, drivers.ease_jobs, drivers.bpmf_jobs"
    assert loaded_by(every, ["luigi", "pipeline", "requests"]) == []


def test_the_numpy_drivers_load_no_spark():
    assert loaded_by("import drivers.ease_jobs, drivers.bpmf_jobs", ["pyspark", "py4j"]) == []
