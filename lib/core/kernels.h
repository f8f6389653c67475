/* Compute kernels used by the ops. Each fast kernel has a plain reference
 * twin (suffix _ref) that the kernel tests compare it with. */
#ifndef LF_KERNELS_H
#define LF_KERNELS_H

#include "core/core.h"

/* Hot loops get versions for AVX2+FMA and AVX-512 next to the baseline one;
 * the dynamic loader picks the best for the CPU (GCC function
 * multi-versioning). Results differ from the baseline version only in the
 * rounding of fused multiply-adds. */
#include "lf_config.h"

/* (sanitizer_friendly builds keep one version: ifunc resolvers run before
 * sanitizer runtimes and some checkers are set up) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !LF_REAL_IS_DOUBLE && \
    !LF_SANITIZER_FRIENDLY
#define LF_SIMD_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LF_SIMD_CLONES
#endif

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is M x K, op(B) is
 * K x N. When beta == 0, C is written without being read. */
void lf_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
             const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
             lf_real *C, int64_t ldc);
/* The single-precision products on the library's own AVX-512 kernels
 * (core/gemm_avx512.c), which lf_gemm uses when
 * lf_gemm_avx512_available(): the CPU has AVX-512F, the build kept them
 * (meson option avx512_products) and LFLEX_GEMM=blas is not set in the
 * environment. lf_gemm_avx512 returns false, computing nothing, when it
 * does not take the call (the build or the CPU has no such kernels, K <= 0,
 * or op(B) transposed with ldb above 2^31 / 32); otherwise the result is
 * that of lf_gemm up to rounding. */
bool lf_gemm_avx512_available(void);
bool lf_gemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* lf_gemm with the rows of C split over the context's threads. */
void lf_gemm_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta, lf_real *C,
                 int64_t ldc);
/* The same with C's rows first set to `bias` (length N) and beta 1: a linear
 * layer's forward in one pass over the threads. */
void lf_gemm_bias_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, const lf_real *bias,
                      lf_real *C, int64_t ldc);
/* lf_gemm for the small products of attention (one sequence and head),
 * without a BLAS call: at these sizes BLAS's per-call set-up and its global
 * buffer lock, which two threads calling at once contend for, cost more
 * than the arithmetic. Rows of C are computed in blocks of 4 x 32 held in
 * registers. Falls back to lf_gemm when op(B) does not fit its stack
 * buffer (K x N above 8192 values) or K is above 512. */
void lf_gemm_small(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                   const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                   lf_real *C, int64_t ldc);
void lf_gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                 lf_real *C, int64_t ldc);

/* Run fn over [0, n) split into contiguous ranges, on up to ctx->n_threads
 * threads. Ranges are never smaller than `grain` (except the last). fn must
 * compute each output element in a way that does not depend on the split, so
 * that results are the same for every thread count. */
void lf_parallel_for(const lf_ctx *ctx, int64_t n, int64_t grain, lf_range_fn fn, void *arg);
/* lf_parallel_for with threads taking `chunk` items at a time (see
 * lf_pool_run_dynamic): each item must be computed independently. */
void lf_parallel_dynamic(const lf_ctx *ctx, int64_t n, int64_t chunk, lf_range_fn fn, void *arg);

/* Independent loops run in one hand-off to the pool (one wait instead of
 * one per loop): share s of every task runs on one thread. The same rule as
 * for lf_parallel_for applies to each fn. */
typedef struct {
    lf_range_fn fn;
    void *arg;
    int64_t n, grain;
} lf_task;
void lf_parallel_tasks(const lf_ctx *ctx, const lf_task *tasks, int n_tasks);

/* A task computing rows of C = alpha op(A) op(B) + beta C (the arguments of
 * lf_gemm); `g` must outlive the lf_parallel_tasks call. Counts the FLOPs. */
typedef struct {
    bool ta, tb;
    int64_t N, K;
    lf_real alpha, beta;
    const lf_real *A, *B, *bias;
    int64_t lda, ldb, ldc;
    lf_real *C;
} lf_gemm_args;
/* Rows [m0, m1) of the product described by g (an lf_gemm_args): the range
 * function of lf_gemm_task's tasks. */
void lf_gemm_rows(void *g, int64_t m0, int64_t m1);
lf_task lf_gemm_task(lf_ctx *ctx, lf_gemm_args *g, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                     lf_real alpha, const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                     lf_real *C, int64_t ldc);

#endif
