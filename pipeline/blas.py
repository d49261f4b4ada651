"""The BLAS library the ALS jobs name for Spark's per-rating calls, and its build from native/.

Spark's ALS makes a rank-1 update (BLAS dspr) and an axpy per rating: a third of a fit at 10 M
ratings. Debian's reference BLAS (libblas3) makes them 1.16x faster than OpenBLAS does
(BENCHMARKS.md, "Which native BLAS"), whose level-2 calls have more overhead than work at rank
32; OpenBLAS stays the system's libblas.so.3 and liblapack.so.3, whose LAPACK solves faster.
ALS_BLAS is the reference BLAS with those two routines compiled for the CPU's vector units
(native/als_blas.c: bit-identical results, a fit 1.12-1.14x faster again). The ALS jobs name
the first of the two that exists, and build ALS_BLAS first where it is missing or older than
its source and the machine has a C compiler: so a compiler installed later is used at the next
ALS job, and a plain `pip install -e .` gets the library without make.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REFERENCE_BLAS = Path(f"/usr/lib/{os.uname().machine}-linux-gnu/blas/libblas.so.3")
ALS_BLAS = Path(sys.prefix, "lib", "movielens-als", "libalsblas.so")
# A checkout's (and so an editable install's); a wheel ships no C source, and an image brings
# its library built (docker/Dockerfile).
NATIVE_DIR = Path(__file__).resolve().parent.parent / "native"
ALS_BLAS_SOURCE = NATIVE_DIR / "als_blas.c"
ALS_BLAS_BUILD = NATIVE_DIR / "build-als-blas"
NETLIB_BLAS_PATH = "-Ddev.ludovic.netlib.blas.nativeLibPath"


def als_blas() -> Path | None:
    """The BLAS library the ALS jobs name: ALS_BLAS, else REFERENCE_BLAS, else none (netlib
    loads the system's libblas.so.3)."""
    return next((library for library in (ALS_BLAS, REFERENCE_BLAS) if library.exists()), None)


def als_blas_options() -> list[str]:
    """The JVM option that points netlib's BLAS at als_blas(), if there is one."""
    library = als_blas()
    return [f"{NETLIB_BLAS_PATH}={library}"] if library else []


def build_als_blas() -> str | None:
    """Builds ALS_BLAS from native/ when it is missing or older than its source and the machine
    can build it (a C compiler, gcc or $CC, and the reference BLAS). Returns None when the
    library is up to date or was just built, else a one-line notice: why not, what ALS's
    per-rating calls go to instead, and what would build it."""
    sources = (ALS_BLAS_SOURCE, ALS_BLAS_BUILD)
    if not all(source.exists() for source in sources):
        if ALS_BLAS.exists():
            return None
        return (
            f"{ALS_BLAS} is missing and this installation has no {ALS_BLAS_SOURCE.name} to build it from "
            f"(a clone installed with `pip install -e .` has): {_fallback()}"
        )
    if ALS_BLAS.exists() and ALS_BLAS.stat().st_mtime >= max(source.stat().st_mtime for source in sources):
        return None
    state = f"is older than {ALS_BLAS_SOURCE}" if ALS_BLAS.exists() else "is missing"
    compiler = c_compiler()
    if not shutil.which(compiler):
        return (
            f"{ALS_BLAS} {state} and there is no C compiler ({compiler}) to build it: {_fallback()}; "
            "install gcc and libc6-dev, and the next ALS job builds it"
        )
    if not REFERENCE_BLAS.exists():
        return (
            f"{ALS_BLAS} {state} and cannot be built without {REFERENCE_BLAS} (apt-get install libblas3): {_fallback()}"
        )
    built = subprocess.run(["sh", str(ALS_BLAS_BUILD), str(ALS_BLAS)], capture_output=True, text=True, check=False)
    if built.returncode:
        error = (built.stderr.strip().splitlines() or [f"exit status {built.returncode}"])[-1]
        return f"could not build {ALS_BLAS} with {ALS_BLAS_BUILD} ({error}): {_fallback()}"
    return None


def c_compiler() -> str:
    """The C compiler native/build-als-blas runs: $CC's command, else gcc."""
    return shlex.split(os.environ.get("CC") or "gcc")[0]


def _fallback() -> str:
    library = als_blas() or "the system's libblas.so.3, else netlib's Java BLAS"
    return f"ALS's per-rating BLAS calls go to {library}"


def main() -> None:
    """`python -m pipeline.blas`: builds ALS_BLAS if it needs building and says what ALS uses."""
    notice = build_als_blas()
    print(notice or f"ALS's per-rating BLAS calls go to {als_blas()}", file=sys.stderr if notice else sys.stdout)


if __name__ == "__main__":
    main()
