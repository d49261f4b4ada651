"""native/als_blas.c, the BLAS the ALS jobs name (pipeline/blas.py): built when it is missing or
older than its source and the machine can build it, else a notice and the reference BLAS; built
for real, its dspr and daxpy give bit for bit what Debian's reference BLAS gives, and every other
routine is the reference BLAS's. And what the ALS jobs say of the BLAS their executors loaded
(spark_jobs/als.py, blas_report)."""

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import blas
from pipeline.blas import ALS_BLAS_BUILD, REFERENCE_BLAS, als_blas, build_als_blas, c_compiler
from spark_jobs.als import blas_report

INT, DOUBLE, POINTER = ctypes.c_int, ctypes.c_double, ctypes.POINTER(ctypes.c_double)


@pytest.fixture
def native(tmp_path, monkeypatch):
    """pipeline.blas pointed at a source, a reference BLAS and an environment in tmp_path, its
    build script a fake that records each build, and a fake compiler on $CC."""
    source, build = tmp_path / "native" / "als_blas.c", tmp_path / "native" / "build-als-blas"
    source.parent.mkdir()
    source.write_text("/* the source */\n")
    builds = tmp_path / "builds.log"
    build.write_text(f'#!/bin/sh\necho "$1" >> {builds}\nmkdir -p "$(dirname "$1")" && echo library > "$1"\n')
    compiler = tmp_path / "cc"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    reference = tmp_path / "blas" / "libblas.so.3"
    reference.parent.mkdir()
    reference.touch()
    monkeypatch.setattr(blas, "ALS_BLAS_SOURCE", source)
    monkeypatch.setattr(blas, "ALS_BLAS_BUILD", build)
    monkeypatch.setattr(blas, "REFERENCE_BLAS", reference)
    monkeypatch.setattr(blas, "ALS_BLAS", tmp_path / "venv" / "lib" / "movielens-als" / "libalsblas.so")
    monkeypatch.setenv("CC", f"{compiler} -m64")  # a command with flags, as make's CC may be
    return builds


def build_count(builds) -> int:
    return len(builds.read_text().splitlines()) if builds.exists() else 0


def test_a_missing_library_is_built_then_named_and_not_rebuilt_while_up_to_date(native):
    assert als_blas() == blas.REFERENCE_BLAS
    assert build_als_blas() is None
    assert blas.ALS_BLAS.read_text() == "library\n" and build_count(native) == 1
    assert als_blas() == blas.ALS_BLAS
    assert build_als_blas() is None
    assert build_count(native) == 1


@pytest.mark.parametrize("edited", ["ALS_BLAS_SOURCE", "ALS_BLAS_BUILD"])
def test_a_library_older_than_its_source_is_rebuilt(native, edited):
    assert build_als_blas() is None
    built = blas.ALS_BLAS.stat().st_mtime
    os.utime(getattr(blas, edited), (built + 10, built + 10))
    assert build_als_blas() is None
    assert build_count(native) == 2


def test_without_a_compiler_the_reference_blas_serves_with_a_notice_until_one_appears(native, monkeypatch):
    compiler = os.environ["CC"].split()[0]
    monkeypatch.setenv("CC", "/nowhere/gcc")
    notice = build_als_blas()
    assert notice == (
        f"{blas.ALS_BLAS} is missing and there is no C compiler (/nowhere/gcc) to build it: ALS's per-rating "
        f"BLAS calls go to {blas.REFERENCE_BLAS}; install gcc and libc6-dev, and the next ALS job builds it"
    )
    assert "\n" not in notice and not blas.ALS_BLAS.exists() and als_blas() == blas.REFERENCE_BLAS
    monkeypatch.setenv("CC", compiler)
    assert build_als_blas() is None
    assert als_blas() == blas.ALS_BLAS


def test_a_stale_library_without_a_compiler_still_serves_and_says_it_is_stale(native, monkeypatch):
    build_als_blas()
    os.utime(blas.ALS_BLAS_SOURCE, (blas.ALS_BLAS.stat().st_mtime + 10,) * 2)
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", "/nowhere")
    notice = build_als_blas()
    assert notice is not None
    assert notice.startswith(f"{blas.ALS_BLAS} is older than {blas.ALS_BLAS_SOURCE} and there is no C compiler (gcc)")
    assert f"go to {blas.ALS_BLAS};" in notice


def test_without_the_reference_blas_nothing_is_built_and_the_notice_names_the_package(native):
    blas.REFERENCE_BLAS.unlink()
    notice = build_als_blas()
    assert notice is not None and "apt-get install libblas3" in notice and "netlib's Java BLAS" in notice
    assert build_count(native) == 0


def test_a_failed_build_leaves_no_library_and_says_why(native):
    blas.ALS_BLAS_BUILD.write_text("#!/bin/sh\necho 'als_blas.c:1: error: expected ;' >&2\nexit 1\n")
    assert build_als_blas() == (
        f"could not build {blas.ALS_BLAS} with {blas.ALS_BLAS_BUILD} (als_blas.c:1: error: expected ;): "
        f"ALS's per-rating BLAS calls go to {blas.REFERENCE_BLAS}"
    )
    assert not blas.ALS_BLAS.exists()


def test_an_installation_without_the_source_uses_the_library_it_has(native):
    blas.ALS_BLAS_SOURCE.unlink()  # a wheel's: the image brings its library built
    notice = build_als_blas()
    assert notice is not None and "has no als_blas.c to build it from" in notice
    blas.ALS_BLAS.parent.mkdir(parents=True)
    blas.ALS_BLAS.write_text("library\n")
    assert build_als_blas() is None
    assert build_count(native) == 0 and als_blas() == blas.ALS_BLAS


def test_make_and_pip_users_build_with_python_m_pipeline_blas(native, capsys):
    blas.main()
    assert capsys.readouterr().out == f"ALS's per-rating BLAS calls go to {blas.ALS_BLAS}\n"
    assert build_count(native) == 1


def skip_unless_buildable() -> None:
    if not REFERENCE_BLAS.exists():
        pytest.skip("needs Debian's reference BLAS (libblas3)")
    if not shutil.which(c_compiler()):
        pytest.skip(f"needs a C compiler to build native/als_blas.c: {c_compiler()} (or the one CC names)")


def test_builds_running_at_once_each_leave_a_whole_library_and_no_scraps(tmp_path):
    skip_unless_buildable()
    library = tmp_path / "lib" / "libalsblas.so"
    builds = [subprocess.Popen([ALS_BLAS_BUILD, library], stderr=subprocess.PIPE) for _ in range(3)]
    assert [build.wait() for build in builds] == [0, 0, 0], [build.stderr.read() for build in builds]
    for build in builds:
        build.stderr.close()
    assert [path.name for path in library.parent.iterdir()] == ["libalsblas.so"]
    assert ctypes.CDLL(str(library)).dspr_


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    skip_unless_buildable()
    built = tmp_path_factory.mktemp("als-blas") / "libalsblas.so"
    subprocess.run([ALS_BLAS_BUILD, built], check=True, capture_output=True)
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


DRIVER = ("JNIBLAS", "/opt/venv/lib/movielens-als/libalsblas.so")


def test_executors_with_the_drivers_blas_are_reported_in_one_line_without_a_warning():
    executors = {"worker-1/10.0.0.2 pid 41": DRIVER, "worker-2/10.0.0.3 pid 7": DRIVER}
    assert blas_report(DRIVER, executors) == [
        "executors' BLAS: JNIBLAS on /opt/venv/lib/movielens-als/libalsblas.so in 2 JVMs "
        "(worker-1/10.0.0.2 pid 41, worker-2/10.0.0.3 pid 7)"
    ]


def test_an_executor_that_fell_back_to_javas_blas_is_warned_of_and_told_what_to_install():
    executors = {"worker-1/10.0.0.2 pid 41": DRIVER, "worker-2/10.0.0.3 pid 7": ("VectorBLAS", DRIVER[1])}
    report = blas_report(DRIVER, executors)
    assert report[:2] == [
        "executors' BLAS: JNIBLAS on /opt/venv/lib/movielens-als/libalsblas.so in 1 JVM (worker-1/10.0.0.2 pid 41)",
        "executors' BLAS: VectorBLAS (netlib's Java BLAS; /opt/venv/lib/movielens-als/libalsblas.so did not load) "
        "in 1 JVM (worker-2/10.0.0.3 pid 7)",
    ]
    [warning] = report[2:]
    assert warning.startswith(
        "warning: worker-2/10.0.0.3 pid 7 computes ALS with VectorBLAS (netlib's Java BLAS; "
        "/opt/venv/lib/movielens-als/libalsblas.so did not load), not with JNIBLAS on "
        "/opt/venv/lib/movielens-als/libalsblas.so as the driver names: install "
        "/opt/venv/lib/movielens-als/libalsblas.so on their machines"
    )
    assert "-Ddev.ludovic.netlib.blas.nativeLibPath=/opt/venv/lib/movielens-als/libalsblas.so" in warning


def test_an_executor_told_no_library_loads_the_systems_and_is_warned_of():
    executors = {"w/10.0.0.2 pid 41": ("JNIBLAS", "libblas.so.3"), "w/10.0.0.2 pid 42": ("JNIBLAS", "libblas.so.3")}
    [_, warning] = blas_report(DRIVER, executors)
    assert warning.startswith("warning: w/10.0.0.2 pid 41, w/10.0.0.2 pid 42 compute ALS with JNIBLAS on libblas.so.3,")
