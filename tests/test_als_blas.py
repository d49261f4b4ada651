"""spark_jobs/als_blas.c, the BLAS the ALS jobs name: built as `make run` builds it, its dspr
and daxpy give bit for bit what Debian's reference BLAS gives, and every other routine is the
reference BLAS's."""

import ctypes
import subprocess

import numpy as np
import pytest

from pipeline.sparkjob import REFERENCE_BLAS
from tests.helpers import REPO

pytestmark = pytest.mark.skipif(not REFERENCE_BLAS.exists(), reason="needs Debian's reference BLAS (libblas3)")

INT, DOUBLE, POINTER = ctypes.c_int, ctypes.c_double, ctypes.POINTER(ctypes.c_double)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    built = tmp_path_factory.mktemp("als-blas") / "libalsblas.so"
    subprocess.run([REPO / "spark_jobs" / "build-als-blas", built], check=True, capture_output=True)
    return ctypes.CDLL(str(built)), ctypes.CDLL(str(REFERENCE_BLAS))


def by_reference(*values):
    return [ctypes.byref(v) for v in values]


def dspr(library, uplo: bytes, n: int, alpha: float, x: np.ndarray, incx: int, ap: np.ndarray) -> np.ndarray:
    ap = ap.copy()
    pointer = ap.ctypes.data_as(POINTER)
    library.dspr_(
        uplo, *by_reference(INT(n), DOUBLE(alpha)), x.ctypes.data_as(POINTER), *by_reference(INT(incx)), pointer
    )
    return ap


def daxpy(library, n: int, a: float, x: np.ndarray, incx: int, y: np.ndarray, incy: int) -> np.ndarray:
    y = y.copy()
    x_, y_ = x.ctypes.data_as(POINTER), y.ctypes.data_as(POINTER)
    library.daxpy_(*by_reference(INT(n), DOUBLE(a)), x_, *by_reference(INT(incx)), y_, *by_reference(INT(incy)))
    return y


@pytest.mark.parametrize("uplo", [b"U", b"L", b"u", b"l"])
@pytest.mark.parametrize("incx", [1, 2, -1, -3])
@pytest.mark.parametrize("n", [1, 7, 32, 33])
def test_dspr_is_bit_identical_to_the_reference_blas(libraries, uplo, incx, n):
    ours, reference = libraries
    rng = np.random.default_rng(n * 100 + incx)
    x = rng.standard_normal((n - 1) * abs(incx) + 1)
    if n > 1:
        x[abs(incx)] = 0.0  # an element of the vector: the reference skips its column
    ap = rng.standard_normal(n * (n + 1) // 2)
    for alpha in (1.0, 0.37, -2.5, 0.0):
        expected = dspr(reference, uplo, n, alpha, x, incx, ap)
        assert (alpha == 0.0) == np.array_equal(expected, ap)  # the call changes AP unless alpha is 0
        assert dspr(ours, uplo, n, alpha, x, incx, ap).tobytes() == expected.tobytes()


@pytest.mark.parametrize(("incx", "incy"), [(1, 1), (2, 1), (1, -2), (-1, 3), (0, 1)])
@pytest.mark.parametrize("n", [1, 5, 32, 528])
def test_daxpy_is_bit_identical_to_the_reference_blas(libraries, n, incx, incy):
    ours, reference = libraries
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n - 1) * abs(incx) + 1)
    y = rng.standard_normal((n - 1) * abs(incy) + 1)
    for a in (1.0, -0.3, 0.0):
        expected = daxpy(reference, n, a, x, incx, y, incy)
        assert (a == 0.0) == np.array_equal(expected, y)
        assert daxpy(ours, n, a, x, incx, y, incy).tobytes() == expected.tobytes()


def test_every_other_routine_is_the_reference_blass(libraries):
    ours, _ = libraries
    x, y, one = np.arange(1.0, 5.0), np.full(4, 2.0), INT(1)
    ours.ddot_.restype = DOUBLE
    assert (
        ours.ddot_(
            *by_reference(INT(4)),
            x.ctypes.data_as(POINTER),
            *by_reference(one),
            y.ctypes.data_as(POINTER),
            *by_reference(one),
        )
        == 20.0
    )
