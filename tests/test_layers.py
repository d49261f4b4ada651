"""The library stays pure: no module of movielens_als imports luigi, boto3, requests, Spark or
the orchestration, anywhere in its code (a function-level import counts too), and importing
all of it loads none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import movielens_als

LIBRARY = Path(movielens_als.__file__).parent
FORBIDDEN = {"luigi", "boto3", "botocore", "requests", "pyspark", "pipeline", "spark_jobs"}


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
