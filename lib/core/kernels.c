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
    if (lf_gemm_avx512_available() && lf_gemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#endif
}

/* Blocks of C of 4 rows by one or two vectors of 64 bytes (16 floats each),
 * the sums held in vector variables (GCC vector extensions: one zmm
 * register on AVX-512, two ymm on AVX2, four xmm otherwise). */
typedef lf_real lf_vec __attribute__((vector_size(64)));
typedef lf_real lf_vec_u __attribute__((vector_size(64), aligned(sizeof(lf_real)))); /* unaligned */
#define SMALL_VL ((int64_t)(64 / sizeof(lf_real)))
#define SMALL_NB (2 * SMALL_VL)   /* columns of a block (the last may be one vector) */
#define SMALL_B_MAX 8192          /* values of op(B) copied on the stack */
#define SMALL_K_MAX 512

static void small_store(const lf_real *acc, int64_t rows, int64_t cols, lf_real alpha, lf_real beta, lf_real *C,
                        int64_t ldc)
{
    for (int64_t r = 0; r < rows; r++) {
        const lf_real *a = acc + r * SMALL_NB;
        lf_real *c = C + r * ldc;
        if (beta == 0)
            for (int64_t l = 0; l < cols; l++)
                c[l] = alpha * a[l];
        else
            for (int64_t l = 0; l < cols; l++)
                c[l] = alpha * a[l] + beta * c[l];
    }
}

/* C[rows x cols] (rows <= 4, cols <= SMALL_NB) = alpha sum_k a(r, k) B[k, :]
 * + beta C, with a(r, k) = A[r * ars + k * acs]. B has SMALL_NB readable
 * columns per row (zero padded); A has 4 readable rows. */
LF_SIMD_CLONES static void small_block2(int64_t K, const lf_real *A, int64_t ars, int64_t acs, const lf_real *B,
                                        int64_t ldb, lf_real alpha, lf_real beta, lf_real *C, int64_t ldc,
                                        int64_t rows, int64_t cols)
{
    lf_vec c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int64_t k = 0; k < K; k++) {
        const lf_vec_u *b = (const lf_vec_u *)(B + k * ldb);
        lf_vec b0 = b[0], b1 = b[1];
        lf_real a0 = A[k * acs], a1 = A[ars + k * acs], a2 = A[2 * ars + k * acs], a3 = A[3 * ars + k * acs];
        c00 += a0 * b0;
        c01 += a0 * b1;
        c10 += a1 * b0;
        c11 += a1 * b1;
        c20 += a2 * b0;
        c21 += a2 * b1;
        c30 += a3 * b0;
        c31 += a3 * b1;
    }
    lf_vec acc[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
    small_store((const lf_real *)acc, rows, cols, alpha, beta, C, ldc);
}

/* the same for a block of one vector of columns (cols <= SMALL_VL; B has
 * SMALL_VL readable columns per row) */
LF_SIMD_CLONES static void small_block1(int64_t K, const lf_real *A, int64_t ars, int64_t acs, const lf_real *B,
                                        int64_t ldb, lf_real alpha, lf_real beta, lf_real *C, int64_t ldc,
                                        int64_t rows, int64_t cols)
{
    lf_vec c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
    for (int64_t k = 0; k < K; k++) {
        lf_vec b0 = *(const lf_vec_u *)(B + k * ldb);
        c0 += A[k * acs] * b0;
        c1 += A[ars + k * acs] * b0;
        c2 += A[2 * ars + k * acs] * b0;
        c3 += A[3 * ars + k * acs] * b0;
    }
    lf_vec acc[8] = {c0, {0}, c1, {0}, c2, {0}, c3, {0}};
    small_store((const lf_real *)acc, rows, cols, alpha, beta, C, ldc);
}

void lf_gemm_small(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                   const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta,
                   lf_real *C, int64_t ldc)
{
    /* padded to whole blocks of two vectors, or those and a last one */
    int64_t Np = (N + SMALL_NB - 1) / SMALL_NB * SMALL_NB;
    if (Np - N >= SMALL_VL)
        Np -= SMALL_VL;
    if (M <= 0 || N <= 0 || K <= 0 || K > SMALL_K_MAX || K * Np > SMALL_B_MAX) {
        lf_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* op(B) as K rows of Np values, unless it already is rows of whole blocks */
    _Alignas(64) lf_real Bp[SMALL_B_MAX];
    const lf_real *Bu = B;
    int64_t ldbu = ldb;
    if (trans_b || N != Np) {
        for (int64_t k = 0; k < K; k++) {
            lf_real *row = Bp + k * Np;
            if (trans_b)
                for (int64_t j = 0; j < N; j++)
                    row[j] = B[j * ldb + k];
            else
                memcpy(row, B + k * ldb, (size_t)N * sizeof *row);
            for (int64_t j = N; j < Np; j++)
                row[j] = 0;
        }
        Bu = Bp;
        ldbu = Np;
    }
    int64_t ars = trans_a ? 1 : lda, acs = trans_a ? lda : 1;
    _Alignas(64) lf_real Ap[4 * SMALL_K_MAX];
    for (int64_t i0 = 0; i0 < M; i0 += 4) {
        int64_t rows = M - i0 < 4 ? M - i0 : 4;
        const lf_real *Ai = A + i0 * ars;
        int64_t ars_i = ars, acs_i = acs;
        if (rows < 4) { /* the last rows, padded with zero rows */
            for (int64_t r = 0; r < 4; r++)
                for (int64_t k = 0; k < K; k++)
                    Ap[r * K + k] = r < rows ? Ai[r * ars + k * acs] : 0;
            Ai = Ap;
            ars_i = K;
            acs_i = 1;
        }
        for (int64_t j0 = 0; j0 < N; j0 += SMALL_NB) {
            int64_t cols = N - j0 < SMALL_NB ? N - j0 : SMALL_NB;
            if (cols <= SMALL_VL)
                small_block1(K, Ai, ars_i, acs_i, Bu + j0, ldbu, alpha, beta, C + i0 * ldc + j0, ldc, rows, cols);
            else
                small_block2(K, Ai, ars_i, acs_i, Bu + j0, ldbu, alpha, beta, C + i0 * ldc + j0, ldc, rows, cols);
        }
    }
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
void lf_gemm_rows(void *p, int64_t m0, int64_t m1)
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
    return (lf_task){lf_gemm_rows, g, M, gemm_grain(M, N, K)};
}

void lf_gemm_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, lf_real alpha,
                 const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, lf_real beta, lf_real *C,
                 int64_t ldc)
{
    lf_gemm_args g;
    lf_task t = lf_gemm_task(ctx, &g, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    lf_parallel_for(ctx, M, t.grain, lf_gemm_rows, &g);
}

void lf_gemm_bias_ctx(lf_ctx *ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      const lf_real *A, int64_t lda, const lf_real *B, int64_t ldb, const lf_real *bias,
                      lf_real *C, int64_t ldc)
{
    lf_gemm_args g;
    lf_task t = lf_gemm_task(ctx, &g, trans_a, trans_b, M, N, K, 1, A, lda, B, ldb, 0, C, ldc);
    g.bias = bias;
    lf_parallel_for(ctx, M, t.grain, lf_gemm_rows, &g);
}
