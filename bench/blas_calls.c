/*
 * The time of one dspr and one daxpy call at rank 32, as Spark's ALS makes them per rating
 * (upper packed, unit strides, the vector and the matrix in the cache), in each BLAS library
 * named on the command line (BENCHMARKS.md, "Which native BLAS"):
 *
 *   gcc -O2 -o /tmp/blas_calls bench/blas_calls.c -ldl
 *   /tmp/blas_calls /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 .venv/lib/movielens-als/libalsblas.so \
 *       /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void dspr_t(const char *, const int *, const double *, const double *, const int *, double *);
typedef void daxpy_t(const int *, const double *, const double *, const int *, double *, const int *);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    enum { RANK = 32, VECTORS = 64, CALLS = 20000000 };
    const int n = RANK, one = 1;
    const double alpha = 1.0;
    static double x[VECTORS * RANK], ap[RANK * (RANK + 1) / 2];
    for (int i = 0; i < VECTORS * RANK; i++) x[i] = (double)rand() / RAND_MAX;
    for (int a = 1; a < argc; a++) {
        void *library = dlopen(argv[a], RTLD_NOW | RTLD_LOCAL);
        dspr_t *dspr = library ? (dspr_t *)dlsym(library, "dspr_") : NULL;
        daxpy_t *daxpy = library ? (daxpy_t *)dlsym(library, "daxpy_") : NULL;
        if (!dspr || !daxpy) {
            fprintf(stderr, "%s: %s\n", argv[a], dlerror());
            return 1;
        }
        for (int i = 0; i < RANK * (RANK + 1) / 2; i++) ap[i] = 0.0;
        const double start = now();
        for (int c = 0; c < CALLS; c++) {
            const double *v = x + (c % VECTORS) * RANK;
            dspr("U", &n, &alpha, v, &one, ap);
            daxpy(&n, &alpha, v, &one, ap, &one);
        }
        printf("%.1f ns per dspr and daxpy (checksum %.6g): %s\n", (now() - start) / CALLS * 1e9, ap[0], argv[a]);
    }
    return 0;
}
