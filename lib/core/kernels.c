#include "lf_config.h"

#include <cblas.h>

#include "core/kernels.h"
#include "core/threads.h"

void lf_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
             const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
             lf_real *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* BLAS would scale C by beta; do the same without reading it when 0 */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
#if LF_REAL_IS_DOUBLE
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#endif
}

void lf_gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                 lf_real *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
            }
            double c = beta == 0 ? 0.0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (lf_real)(alpha * acc + c);
        }
    }
}

void lf_parallel_for(const lf_ctx *ctx, int64_t n, int64_t grain, lf_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t nt = ctx ? ctx->n_threads : 1;
    if (nt > n / grain)
        nt = n / grain;
    if (nt > 1 && ctx->pool) {
        lf_pool_run(ctx->pool, n, (int)nt, fn, arg);
        return;
    }
    fn(arg, 0, n);
}

/* ---- gemm split over the pool ----------------------------------------- */

typedef struct {
    bool ta, tb;
    int64_t N, K;
    lf_real alpha, beta;
    const lf_real *A, *B;
    int64_t lda, ldb, ldc;
    lf_real *C;
} gemm_args;

/* rows [m0, m1) of C: each element is computed by one BLAS call over the
 * whole K, so the split does not change the result */
static void gemm_rows(void *p, int64_t m0, int64_t m1)
{
    const gemm_args *g = p;
    const lf_real *A = g->ta ? g->A + m0 : g->A + m0 * g->lda;
    lf_gemm(g->ta, g->tb, m1 - m0, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta, g->C + m0 * g->ldc,
            g->ldc);
}

void lf_gemm_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta, lf_real *C,
                 int64_t ldc)
{
    /* below ~1 MFLOP per share the hand-off costs more than it saves */
    int64_t grain = 16;
    while (grain < M && grain * N * K < (1 << 19))
        grain *= 2;
    gemm_args g = {trans_a, trans_b, N, K, alpha, beta, A, B, lda, ldb, ldc, C};
    lf_parallel_for(ctx, M, grain, gemm_rows, &g);
    ctx->flops += 2.0 * (double)M * (double)N * (double)K;
}
