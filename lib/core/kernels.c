#include "lf_config.h"

#include <cblas.h>
#include <string.h>

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

void lf_parallel_dynamic(const lf_ctx *ctx, int64_t n, int64_t chunk, lf_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (ctx && ctx->n_threads > 1 && ctx->pool)
        lf_pool_run_dynamic(ctx->pool, n, chunk, fn, arg);
    else
        fn(arg, 0, n);
}

static void zero_range(void *p, int64_t i0, int64_t i1)
{
    memset((lf_real *)p + i0, 0, (size_t)(i1 - i0) * sizeof(lf_real));
}

void lf_zero(const lf_ctx *ctx, lf_real *p, int64_t n)
{
    /* one share per ~256 KiB: below that the hand-off costs more */
    lf_parallel_for(ctx, n, 65536, zero_range, p);
}

typedef struct {
    const lf_task *tasks;
    int n_tasks, shares;
} tasks_args;

static int task_shares(const lf_task *t, int nt)
{
    int64_t grain = t->grain < 1 ? 1 : t->grain;
    int64_t s = t->n / grain;
    return s < 1 ? 1 : s < nt ? (int)s : nt;
}

static void tasks_range(void *p, int64_t s0, int64_t s1)
{
    const tasks_args *a = p;
    for (int64_t s = s0; s < s1; s++)
        for (int i = 0; i < a->n_tasks; i++) {
            const lf_task *t = &a->tasks[i];
            int sh = task_shares(t, a->shares);
            if (s < sh && t->n > 0)
                t->fn(t->arg, t->n * s / sh, t->n * (s + 1) / sh);
        }
}

void lf_parallel_tasks(const lf_ctx *ctx, const lf_task *tasks, int n_tasks)
{
    int nt = ctx ? ctx->n_threads : 1, need = 1;
    for (int i = 0; i < n_tasks; i++) {
        int sh = task_shares(&tasks[i], nt);
        if (sh > need)
            need = sh;
    }
    tasks_args a = {tasks, n_tasks, nt};
    if (need > 1 && ctx->pool)
        lf_pool_run(ctx->pool, need, need, tasks_range, &a);
    else
        for (int i = 0; i < n_tasks; i++)
            if (tasks[i].n > 0)
                tasks[i].fn(tasks[i].arg, 0, tasks[i].n);
}

/* ---- gemm split over the pool ----------------------------------------- */

/* rows [m0, m1) of C: each element is computed by one BLAS call over the
 * whole K, so the split does not change the result */
static void gemm_rows(void *p, int64_t m0, int64_t m1)
{
    const lf_gemm_args *g = p;
    const lf_real *A = g->ta ? g->A + m0 : g->A + m0 * g->lda;
    if (g->bias)
        for (int64_t r = m0; r < m1; r++)
            memcpy(g->C + r * g->ldc, g->bias, (size_t)g->N * sizeof(lf_real));
    lf_gemm(g->ta, g->tb, m1 - m0, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->bias ? 1 : g->beta,
            g->C + m0 * g->ldc, g->ldc);
}

/* below ~1 MFLOP per share the hand-off costs more than it saves */
static int64_t gemm_grain(int64_t M, int64_t N, int64_t K)
{
    int64_t grain = 16;
    while (grain < M && grain * N * K < (1 << 19))
        grain *= 2;
    return grain;
}

lf_task lf_gemm_task(lf_ctx *ctx, lf_gemm_args *g, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                     lf_real alpha, const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                     lf_real *C, int64_t ldc)
{
    *g = (lf_gemm_args){trans_a, trans_b, N, K, alpha, beta, A, B, NULL, lda, ldb, ldc, C};
    ctx->flops += 2.0 * (double)M * (double)N * (double)K;
    return (lf_task){gemm_rows, g, M, gemm_grain(M, N, K)};
}

void lf_gemm_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta, lf_real *C,
                 int64_t ldc)
{
    lf_gemm_args g;
    lf_task t = lf_gemm_task(ctx, &g, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    lf_parallel_for(ctx, M, t.grain, gemm_rows, &g);
}

void lf_gemm_bias_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, const lf_real *bias,
                      lf_real *C, int64_t ldc)
{
    lf_gemm_args g;
    lf_task t = lf_gemm_task(ctx, &g, trans_a, trans_b, M, N, K, 1, A, lda, B, ldb, 0, C, ldc);
    g.bias = bias;
    lf_parallel_for(ctx, M, t.grain, gemm_rows, &g);
}
