/* Single-precision matrix products on AVX-512, for CPUs whose cblas runs
 * them on narrower kernels (Debian 12's OpenBLAS 0.3.21 predates AMD Zen 5
 * and runs it with its AVX2 kernels, at half the FMA width the CPU has).
 *
 * C is computed in tiles of LF_GK_MR rows by 32 columns, the sums of a tile
 * held in 24 zmm registers over a block of at most LF_GK_KC values of k;
 * op(B) is read in place when it already is rows of 32 contiguous columns
 * and otherwise copied per block into a panel on the stack (gathered when
 * transposed). Every element
 * of C is the same sequence of fused multiply-adds over k (blocks in
 * order) wherever its row falls in a tile, so splitting the rows of C over
 * threads does not change the result. */
#include "lf_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"

#if LF_AVX512_PRODUCTS && defined(__x86_64__) && defined(__GNUC__) && !LF_REAL_IS_DOUBLE

#include <immintrin.h>

#define LF_GK_MR 12
#define LF_GK_NR 32
#define LF_GK_KC 256
#define AVX512 __attribute__((target("avx512f,avx512vl,fma")))

typedef float gk_vec __attribute__((vector_size(64)));
typedef float gk_vec_u __attribute__((vector_size(64), aligned(4)));

static AVX512 __mmask16 col_mask(int cols)
{
    return cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1);
}

/* C[rows x cols] (rows <= mr <= MR, cols <= NR) of sum_k a(r, k) B[k, 0:NR]
 * over K values of k, a(r, k) = A[r * ars + k * acs] for `rows` readable
 * rows; B has NR readable columns per row. first: C = alpha * sum + beta * C
 * (C not read when beta is 0); otherwise C += alpha * sum (a later block of
 * k). Every element is the same arithmetic whatever mr (the tile height):
 * one sum from 0 with one fused multiply-add per k, in order. */
static inline __attribute__((always_inline)) AVX512 void
gk_tile(const int mr, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb, float alpha,
        float beta, bool first, float *C, int64_t ldc, int rows, int cols)
{
    /* rows past the last read the last one again (computed, not stored) */
    int64_t ro[LF_GK_MR];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
        ro[r] = (r < rows ? r : rows - 1) * ars;
    gk_vec c[LF_GK_MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
        c[r][0] = c[r][1] = (gk_vec){0};
    for (int64_t k = 0; k < K; k++) {
        gk_vec b0 = *(const gk_vec_u *)(B + k * ldb), b1 = *(const gk_vec_u *)(B + k * ldb + 16);
        const float *a = A + k * acs;
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            float ar = a[ro[r]];
            c[r][0] += ar * b0;
            c[r][1] += ar * b1;
        }
    }
    __mmask16 m0 = col_mask(cols), m1 = col_mask(cols - 16);
    for (int r = 0; r < rows; r++) {
        float *cr = C + r * ldc;
        gk_vec v0 = alpha * c[r][0], v1 = alpha * c[r][1];
        if (!first) {
            v0 += (gk_vec)_mm512_maskz_loadu_ps(m0, cr);
            v1 += (gk_vec)_mm512_maskz_loadu_ps(m1, cr + 16);
        } else if (beta != 0) {
            v0 += beta * (gk_vec)_mm512_maskz_loadu_ps(m0, cr);
            v1 += beta * (gk_vec)_mm512_maskz_loadu_ps(m1, cr + 16);
        }
        _mm512_mask_storeu_ps(cr, m0, (__m512)v0);
        _mm512_mask_storeu_ps(cr + 16, m1, (__m512)v1);
    }
}

/* tiles of 12, 4 and 1 rows: the last rows of C, and products of few rows
 * (generation), do not pay for 12 */
#define GK_TILE_ARGS                                                                                              \
    int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb, float alpha, float beta,   \
        bool first, float *C, int64_t ldc, int rows, int cols
#define GK_TILE_PASS K, A, ars, acs, B, ldb, alpha, beta, first, C, ldc, rows, cols
static AVX512 void gk_tile12(GK_TILE_ARGS)
{
    gk_tile(12, GK_TILE_PASS);
}
static AVX512 void gk_tile4(GK_TILE_ARGS)
{
    gk_tile(4, GK_TILE_PASS);
}
static AVX512 void gk_tile1(GK_TILE_ARGS)
{
    gk_tile(1, GK_TILE_PASS);
}

/* The panel op(B)[k0 + k, j0 + j] = B[(j0 + j) * ldb + k0 + k] for k < kc,
 * j < NR (zero for j >= cols), gathered 16 columns at a time. */
static AVX512 void gk_pack_trans(float *Bp, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int cols)
{
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)ldb));
    for (int h = 0; h < 2; h++) {
        __mmask16 m = col_mask(cols - 16 * h);
        const float *src = B + (j0 + 16 * h) * ldb + k0;
        for (int64_t k = 0; k < kc; k++)
            _mm512_store_ps(Bp + k * LF_GK_NR + 16 * h,
                            m ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, src + k, 4) : _mm512_setzero_ps());
    }
}

static AVX512 void gk_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                           int64_t ldc)
{
    _Alignas(64) float Bp[LF_GK_KC * LF_GK_NR];
    const int64_t ars = trans_a ? 1 : lda, acs = trans_a ? lda : 1;
    for (int64_t k0 = 0; k0 < K; k0 += LF_GK_KC) {
        const int64_t kc = K - k0 < LF_GK_KC ? K - k0 : LF_GK_KC;
        const bool first = k0 == 0;
        for (int64_t j0 = 0; j0 < N; j0 += LF_GK_NR) {
            const int cols = (int)(N - j0 < LF_GK_NR ? N - j0 : LF_GK_NR);
            const float *Bu;
            int64_t ldbu;
            if (trans_b) { /* op(B)[k, j] = B[j, k] */
                gk_pack_trans(Bp, B, ldb, k0, kc, j0, cols);
                Bu = Bp;
                ldbu = LF_GK_NR;
            } else if (cols < LF_GK_NR) { /* the last columns, zero padded */
                for (int64_t k = 0; k < kc; k++) {
                    memcpy(Bp + k * LF_GK_NR, B + (k0 + k) * ldb + j0, (size_t)cols * sizeof(float));
                    memset(Bp + k * LF_GK_NR + cols, 0, (size_t)(LF_GK_NR - cols) * sizeof(float));
                }
                Bu = Bp;
                ldbu = LF_GK_NR;
            } else {
                Bu = B + k0 * ldb + j0;
                ldbu = ldb;
            }
            for (int64_t i0 = 0; i0 < M; i0 += LF_GK_MR) {
                const int rows = (int)(M - i0 < LF_GK_MR ? M - i0 : LF_GK_MR);
                const float *Ai = A + i0 * ars + k0 * acs;
                float *Ci = C + i0 * ldc + j0;
                if (rows > 4)
                    gk_tile12(kc, Ai, ars, acs, Bu, ldbu, alpha, beta, first, Ci, ldc, rows, cols);
                else if (rows > 1)
                    gk_tile4(kc, Ai, ars, acs, Bu, ldbu, alpha, beta, first, Ci, ldc, rows, cols);
                else
                    gk_tile1(kc, Ai, ars, acs, Bu, ldbu, alpha, beta, first, Ci, ldc, rows, cols);
            }
        }
    }
}

bool lf_gemm_avx512_available(void)
{
    /* the answer is a fact about the machine and the environment: computed
     * on every call that needs it is cheap enough, but cache it anyway
     * (a benign race: every thread computes the same value) */
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        const char *env = getenv("LFLEX_GEMM");
        v = __builtin_cpu_supports("avx512f") && !(env && strcmp(env, "blas") == 0);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v != 0;
}

bool lf_gemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* K = 0 (C = beta C) is lf_gemm's; gather offsets are 32-bit */
    if (!__builtin_cpu_supports("avx512f") || K <= 0 || (trans_b && ldb > INT32_MAX / LF_GK_NR))
        return false;
    if (M > 0 && N > 0)
        gk_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return true;
}

#else

bool lf_gemm_avx512_available(void)
{
    return false;
}

bool lf_gemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B;
    (void)ldb, (void)beta, (void)C, (void)ldc;
    return false;
}

#endif
