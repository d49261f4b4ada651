/*
 * The BLAS the ALS jobs' JVMs load (pipeline/blas.py, ALS_BLAS): Debian's reference BLAS
 * with its dspr and daxpy compiled for the CPU's vector units.
 *
 * Spark's ALS calls dspr and daxpy once per rating per iteration on rank-wide vectors
 * (NormalEquation.add: upper packed, unit strides), a third of a fit's time at 10 M ratings.
 * The reference BLAS is the fastest packaged library at these small calls, but Debian builds it
 * for the baseline x86-64 CPU, without AVX. Here are the same two routines, with their
 * unit-stride loops compiled for AVX-512 and AVX2 as well on x86-64, the best the CPU has
 * chosen when the library loads (BENCHMARKS.md, "Which native BLAS"); elsewhere, compiled for
 * the machine's baseline.
 *
 * The results are bit-identical to the reference BLAS's: every element gets the same multiply
 * and add (no fused multiply-add: build with -ffp-contract=off), and the same cases return
 * early. Every other routine is the reference BLAS's, which this library is linked against.
 * Built by native/build-als-blas; tested against the reference in tests/test_als_blas.py.
 */

/* AP += alpha * x * x**T, AP's upper triangle packed by columns, unit stride. */
static inline __attribute__((always_inline)) void spr_upper(int n, double alpha, const double *x, double *ap) {
    for (int j = 0; j < n; ap += j + 1, j++) {
        if (x[j] == 0.0) continue;  /* as the reference: a zero element's column is left alone */
        const double t = alpha * x[j];
        for (int i = 0; i <= j; i++) ap[i] += x[i] * t;
    }
}

/* y += a * x, unit strides. */
static inline __attribute__((always_inline)) void axpy(int n, double a, const double *x, double *y) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void spr_upper_baseline(int n, double alpha, const double *x, double *ap) { spr_upper(n, alpha, x, ap); }
static void axpy_baseline(int n, double a, const double *x, double *y) { axpy(n, a, x, y); }

static void (*spr_upper_unit)(int, double, const double *, double *) = spr_upper_baseline;
static void (*axpy_unit)(int, double, const double *, double *) = axpy_baseline;

#if defined(__x86_64__)
#define KERNELS(isa)                                                                                          \
    __attribute__((target(#isa))) static void spr_upper_##isa(int n, double alpha, const double *x, double *ap) { \
        spr_upper(n, alpha, x, ap);                                                                           \
    }                                                                                                         \
    __attribute__((target(#isa))) static void axpy_##isa(int n, double a, const double *x, double *y) { axpy(n, a, x, y); }
KERNELS(avx2)
KERNELS(avx512f)

__attribute__((constructor)) static void choose_kernels(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        spr_upper_unit = spr_upper_avx512f;
        axpy_unit = axpy_avx512f;
    } else if (__builtin_cpu_supports("avx2")) {
        spr_upper_unit = spr_upper_avx2;
        axpy_unit = axpy_avx2;
    }
}
#endif

/* AP := alpha * x * x**T + AP for a symmetric n x n AP packed by columns, its upper triangle
 * (uplo 'U') or its lower one ('L'). Invalid arguments leave AP alone, where the reference
 * BLAS would print an error and stop the process. */
void dspr_(const char *uplo, const int *n_, const double *alpha_, const double *x, const int *incx_, double *ap) {
    const int n = *n_, incx = *incx_;
    const double alpha = *alpha_;
    const int upper = *uplo == 'U' || *uplo == 'u', lower = *uplo == 'L' || *uplo == 'l';
    if (!(upper || lower) || n <= 0 || incx == 0 || alpha == 0.0) return;
    if (upper && incx == 1) {
        spr_upper_unit(n, alpha, x, ap);
        return;
    }
    /* Element i of the vector is x[first + i * incx], as the reference reads a negative stride. */
    const long first = incx > 0 ? 0 : -(long)(n - 1) * incx;
    for (int j = 0; j < n; j++) {
        const int top = upper ? 0 : j, bottom = upper ? j : n - 1; /* the column's rows */
        const double xj = x[first + (long)j * incx];
        if (xj != 0.0) {
            const double t = alpha * xj;
            for (int i = top; i <= bottom; i++) ap[i - top] += x[first + (long)i * incx] * t;
        }
        ap += bottom - top + 1;
    }
}

/* y := a * x + y. */
void daxpy_(const int *n_, const double *a_, const double *x, const int *incx_, double *y, const int *incy_) {
    const int n = *n_, incx = *incx_, incy = *incy_;
    const double a = *a_;
    if (n <= 0 || a == 0.0) return;
    if (incx == 1 && incy == 1) {
        axpy_unit(n, a, x, y);
        return;
    }
    const long fx = incx >= 0 ? 0 : -(long)(n - 1) * incx, fy = incy >= 0 ? 0 : -(long)(n - 1) * incy;
    for (int i = 0; i < n; i++) y[fy + (long)i * incy] += a * x[fx + (long)i * incx];
}
