/* Fast kernels against plain reference kernels (float build), with
 * sentinel-filled buffers to catch stray writes, and thread-count
 * independence of the ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "tests/common/testutil.h"
#include "toy_model.h"

#define SENTINEL (-12345.678f)

static lf_real *rand_buf(lf_test_rng *r, int64_t n)
{
    lf_real *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (lf_real)lf_test_range(r, -1, 1);
    return p;
}

/* lf_gemm (cblas) and lf_gemm_small (own blocks; BLAS above its limits)
 * against lf_gemm_ref on random sizes, every transposition, alpha/beta
 * combinations and padded leading dimensions. */
typedef void gemm_fn(bool, bool, int64_t, int64_t, int64_t, lf_real, const lf_real *, int64_t, const lf_real *,
                     int64_t, lf_real, lf_real *, int64_t);

static void check_gemm_sizes(gemm_fn *gemm, uint64_t seed, int64_t k_min, int64_t k_max)
{
    lf_test_rng r = {seed};
    for (int iter = 0; iter < 120; iter++) {
        bool ta = iter & 1, tb = (iter >> 1) & 1;
        int64_t M = lf_test_int(&r, 1, iter < 100 ? 40 : 200);
        int64_t N = lf_test_int(&r, 1, iter < 100 ? 40 : 200);
        int64_t K = lf_test_int(&r, k_min, iter < 100 ? k_min + (k_max - k_min) / 5 : k_max);
        int64_t pad = lf_test_int(&r, 0, 3);
        int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        lf_real *A = rand_buf(&r, (ta ? K : M) * lda), *B = rand_buf(&r, (tb ? N : K) * ldb);
        lf_real *C1 = rand_buf(&r, M * ldc), *C2 = malloc((size_t)(M * ldc) * sizeof *C2);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = N; j < ldc; j++)
                C1[i * ldc + j] = SENTINEL;
        double beta = (iter % 3 == 0) ? 0.0 : (iter % 3 == 1 ? 1.0 : -0.5);
        double alpha = iter % 5 == 0 ? 2.0 : 1.0;
        if (beta == 0) /* C must not be read: fill it with NaN */
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    C1[i * ldc + j] = NAN;
        memcpy(C2, C1, (size_t)(M * ldc) * sizeof *C2);
        gemm(ta, tb, M, N, K, (lf_real)alpha, A, lda, B, ldb, (lf_real)beta, C1, ldc);
        lf_gemm_ref(ta, tb, M, N, K, (lf_real)alpha, A, lda, B, ldb, (lf_real)beta, C2, ldc);
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < ldc; j++) {
                if (j >= N) {
                    ck_assert_msg(C1[i * ldc + j] == SENTINEL, "gemm wrote outside C at (%ld, %ld)", (long)i, (long)j);
                    continue;
                }
                LF_ASSERT_CLOSE(C1[i * ldc + j], C2[i * ldc + j], 2e-6 * (double)K, 1e-5);
            }
        }
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}

static void check_gemm(gemm_fn *gemm, uint64_t seed)
{
    check_gemm_sizes(gemm, seed, 1, 200);
}

/* lf_gemm_avx512 where the CPU has it (it computes nothing and returns
 * false otherwise: then lf_gemm's test covers the cblas path) */
static bool have_avx512(void)
{
    lf_real a = 1, b = 2, c = 0;
    return !LF_REAL_IS_DOUBLE && lf_gemm_avx512(false, false, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1) && c == 2;
}

static void gemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, lf_real alpha, const lf_real *A,
                        int64_t lda, const lf_real *B, int64_t ldb, lf_real beta, lf_real *C, int64_t ldc)
{
    ck_assert(lf_gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}

START_TEST(test_gemm_avx512_vs_ref)
{
    if (!have_avx512())
        return;
    check_gemm_sizes(gemm_avx512, 103, 1, 200);
    /* several blocks of k, and their tail */
    check_gemm_sizes(gemm_avx512, 104, 250, 1100);
}
END_TEST

/* Rows computed in any split (as over threads) equal the whole product bit
 * for bit: every element is one sequence of multiply-adds wherever its row
 * falls in a tile. */
START_TEST(test_gemm_avx512_row_split)
{
    if (!have_avx512())
        return;
    lf_test_rng r = {105};
    for (int iter = 0; iter < 40; iter++) {
        bool ta = iter & 1, tb = (iter >> 1) & 1;
        int64_t M = lf_test_int(&r, 2, 100), N = lf_test_int(&r, 1, 80), K = lf_test_int(&r, 1, 600);
        int64_t lda = ta ? M : K, ldb = tb ? K : N;
        lf_real *A = rand_buf(&r, M * K), *B = rand_buf(&r, K * N);
        lf_real *C0 = rand_buf(&r, M * N), *C1 = malloc((size_t)(M * N) * sizeof *C1);
        lf_real beta = iter % 3 == 0 ? 0 : (lf_real)0.5;
        memcpy(C1, C0, (size_t)(M * N) * sizeof *C1);
        gemm_avx512(ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C0, N);
        for (int64_t m0 = 0; m0 < M;) {
            int64_t m1 = m0 + lf_test_int(&r, 1, M - m0);
            gemm_avx512(ta, tb, m1 - m0, N, K, 1, ta ? A + m0 : A + m0 * lda, lda, B, ldb, beta, C1 + m0 * N, N);
            m0 = m1;
        }
        ck_assert_msg(memcmp(C0, C1, (size_t)(M * N) * sizeof *C1) == 0, "row split changed the product (%ld x %ld x %ld)",
                      (long)M, (long)N, (long)K);
        free(A);
        free(B);
        free(C0);
        free(C1);
    }
}
END_TEST

START_TEST(test_gemm_vs_ref)
{
    check_gemm(lf_gemm, 101);
}
END_TEST

START_TEST(test_gemm_small_vs_ref)
{
    check_gemm(lf_gemm_small, 102);
}
END_TEST

/* The attention op (with rope on q and k) against a direct double
 * precision evaluation of softmax(q k^T / sqrt(Dh)) v per sequence/head. */
START_TEST(test_attention_vs_ref)
{
    lf_test_rng r = {202};
    for (int iter = 0; iter < 20; iter++) {
        lf_ctx ctx;
        lf_ctx_init(&ctx, 1 << 16, 1 + iter % 2);
        int64_t B = lf_test_int(&r, 1, 4), H = lf_test_int(&r, 1, 4), Dh = 2 * lf_test_int(&r, 1, 8), C = H * Dh;
        int32_t off[5] = {0};
        for (int64_t b = 0; b < B; b++)
            off[b + 1] = off[b] + (int32_t)lf_test_int(&r, 1, 33);
        int64_t T = off[B];
        int64_t shape[2] = {T, C};
        lf_real *buf[3];
        lf_tensor *x[3];
        for (int i = 0; i < 3; i++) {
            buf[i] = rand_buf(&r, T * C);
            x[i] = lf_const_real(&ctx, buf[i], 2, shape);
        }
        int32_t *pos = malloc((size_t)T * sizeof *pos), *valid = malloc((size_t)T * sizeof *valid);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = off[b]; i < off[b + 1]; i++) {
                pos[i] = (int32_t)(i - off[b]);
                valid[i] = lf_test_int(&r, 0, 4) > 0;
            }
        lf_tensor *tp = lf_const_int(&ctx, pos, T), *tv = lf_const_int(&ctx, valid, T);
        lf_tensor *q = lf_rope(&ctx, x[0], tp, H, 10000), *k = lf_rope(&ctx, x[1], tp, H, 10000);
        lf_tensor *o = lf_attention(&ctx, q, k, x[2], lf_const_int(&ctx, off, B + 1), tv, H);
        ck_assert_ptr_nonnull(o);
        /* reference */
        double *qr = malloc((size_t)(T * C) * sizeof *qr), *kr = malloc((size_t)(T * C) * sizeof *kr);
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < Dh / 2; i++) {
                    double th = pos[t] * pow(10000.0, -2.0 * (double)i / (double)Dh), c = cos(th), s = sin(th);
                    int64_t a = t * C + h * Dh + i, bb = a + Dh / 2;
                    qr[a] = buf[0][a] * c - buf[0][bb] * s;
                    qr[bb] = buf[0][bb] * c + buf[0][a] * s;
                    kr[a] = buf[1][a] * c - buf[1][bb] * s;
                    kr[bb] = buf[1][bb] * c + buf[1][a] * s;
                }
        double worst = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = off[b]; i < off[b + 1]; i++) {
                    double sc[40], mx = -INFINITY, sum = 0;
                    for (int64_t j = off[b]; j < off[b + 1]; j++) {
                        double dot = 0;
                        for (int64_t d = 0; d < Dh; d++)
                            dot += qr[i * C + h * Dh + d] * kr[j * C + h * Dh + d];
                        sc[j - off[b]] = valid[j] ? dot / sqrt((double)Dh) : -INFINITY;
                        mx = fmax(mx, sc[j - off[b]]);
                    }
                    for (int64_t j = off[b]; j < off[b + 1]; j++)
                        sum += mx == -INFINITY ? 0 : exp(sc[j - off[b]] - mx);
                    for (int64_t d = 0; d < Dh; d++) {
                        double acc = 0;
                        for (int64_t j = off[b]; j < off[b + 1]; j++)
                            if (sum > 0)
                                acc += exp(sc[j - off[b]] - mx) / sum * buf[2][j * C + h * Dh + d];
                        double got = lf_data(o)[i * C + h * Dh + d];
                        worst = fmax(worst, fabs(got - acc));
                        LF_ASSERT_CLOSE(got, acc, 2e-6, 1e-5);
                    }
                }
        for (int i = 0; i < 3; i++)
            free(buf[i]);
        free(pos);
        free(valid);
        free(qr);
        free(kr);
        lf_ctx_free(&ctx);
    }
}
END_TEST

/* The fused rope + attention op equals the composition of its parts, in
 * value and in gradient (float build, so the fused kernel itself is
 * checked; the double build checks both against finite differences). */
START_TEST(test_rope_attention_vs_composed)
{
    lf_test_rng r = {303};
    for (int iter = 0; iter < 12; iter++) {
        int64_t B = lf_test_int(&r, 1, 4), H = lf_test_int(&r, 1, 4), Dh = 2 * lf_test_int(&r, 1, 8), C = H * Dh;
        int32_t off[5] = {0};
        for (int64_t b = 0; b < B; b++)
            off[b + 1] = off[b] + (int32_t)lf_test_int(&r, 1, 40);
        int64_t T = off[B], shape[2] = {T, 3 * C};
        lf_real *buf = rand_buf(&r, T * 3 * C), *seed = rand_buf(&r, T * C);
        int32_t *pos = malloc((size_t)T * sizeof *pos);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = off[b]; i < off[b + 1]; i++)
                pos[i] = (int32_t)(i - off[b]);
        lf_real *grads[2], *outs[2];
        for (int way = 0; way < 2; way++) {
            lf_ctx ctx;
            lf_ctx_init(&ctx, 1 << 16, 1 + iter % 2);
            lf_tensor *qkv = lf_const_real(&ctx, buf, 2, shape);
            qkv->requires_grad = true;
            lf_tensor *tp = lf_const_int(&ctx, pos, T), *to = lf_const_int(&ctx, off, B + 1), *o;
            if (way == 0) {
                o = lf_rope_attention(&ctx, qkv, tp, to, NULL, H, 10000);
            } else {
                lf_tensor *q = lf_rope(&ctx, lf_slice_cols(&ctx, qkv, 0, C), tp, H, 10000);
                lf_tensor *k = lf_rope(&ctx, lf_slice_cols(&ctx, qkv, C, C), tp, H, 10000);
                o = lf_attention(&ctx, q, k, lf_slice_cols(&ctx, qkv, 2 * C, C), to, NULL, H);
            }
            ck_assert_ptr_nonnull(lf_keep(o));
            ck_assert_int_eq(lf_backward_from(&ctx, o, seed), 0);
            outs[way] = malloc((size_t)(T * C) * sizeof(lf_real));
            grads[way] = malloc((size_t)(T * 3 * C) * sizeof(lf_real));
            memcpy(outs[way], lf_data(o), (size_t)(T * C) * sizeof(lf_real));
            memcpy(grads[way], qkv->grad, (size_t)(T * 3 * C) * sizeof(lf_real));
            lf_ctx_free(&ctx);
        }
        for (int64_t i = 0; i < T * C; i++)
            LF_ASSERT_CLOSE(outs[0][i], outs[1][i], 1e-6, 1e-5);
        for (int64_t i = 0; i < T * 3 * C; i++)
            LF_ASSERT_CLOSE(grads[0][i], grads[1][i], 1e-5, 1e-4);
        for (int w = 0; w < 2; w++) {
            free(outs[w]);
            free(grads[w]);
        }
        free(buf);
        free(seed);
        free(pos);
    }
}
END_TEST

/* Fused LayerNorm + adaLN equals layernorm followed by modulate, in value and
 * in every gradient. */
START_TEST(test_ln_modulate_vs_composed)
{
    lf_test_rng r = {404};
    for (int iter = 0; iter < 10; iter++) {
        int64_t B = lf_test_int(&r, 1, 5), T = lf_test_int(&r, 1, 300), C = lf_test_int(&r, 1, 150);
        int64_t xs[2] = {T, C}, ms[2] = {B, 3 * C};
        lf_real *xb = rand_buf(&r, T * C), *mb = rand_buf(&r, B * 3 * C), *sb = rand_buf(&r, C), *seed = rand_buf(&r, T * C);
        int32_t *seg = malloc((size_t)T * sizeof *seg);
        for (int64_t t = 0; t < T; t++)
            seg[t] = (int32_t)lf_test_int(&r, 0, B - 1);
        lf_real *res[2][4];
        for (int way = 0; way < 2; way++) {
            lf_ctx ctx;
            lf_ctx_init(&ctx, 1 << 16, 1 + iter % 2);
            lf_tensor *x = lf_const_real(&ctx, xb, 2, xs), *mod = lf_const_real(&ctx, mb, 2, ms);
            lf_tensor *sc = lf_const_real(&ctx, sb, 1, &C), *sg = lf_const_int(&ctx, seg, T);
            x->requires_grad = mod->requires_grad = sc->requires_grad = true;
            lf_tensor *y = way == 0 ? lf_ln_modulate(&ctx, x, sc, 1e-5, mod, C, 2 * C, sg)
                                    : lf_modulate(&ctx, lf_layernorm(&ctx, x, sc, 1e-5), mod, C, 2 * C, sg);
            ck_assert_ptr_nonnull(lf_keep(y));
            ck_assert_int_eq(lf_backward_from(&ctx, y, seed), 0);
            lf_tensor *parts[4] = {y, x, mod, sc};
            for (int k = 0; k < 4; k++) {
                const lf_real *src = k == 0 ? lf_data(y) : parts[k]->grad;
                res[way][k] = malloc((size_t)parts[k]->numel * sizeof(lf_real));
                memcpy(res[way][k], src, (size_t)parts[k]->numel * sizeof(lf_real));
            }
            lf_ctx_free(&ctx);
        }
        int64_t sizes[4] = {T * C, T * C, B * 3 * C, C};
        for (int k = 0; k < 4; k++) {
            for (int64_t i = 0; i < sizes[k]; i++)
                LF_ASSERT_CLOSE(res[0][k][i], res[1][k][i], 2e-5, 2e-4);
            free(res[0][k]);
            free(res[1][k]);
        }
        free(xb);
        free(mb);
        free(sb);
        free(seed);
        free(seg);
    }
}
END_TEST

/* Copies of a tensor's values or gradient, freed by the caller. */
static lf_real *copy_of(const lf_real *src, int64_t n)
{
    lf_real *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    memcpy(p, src, (size_t)n * sizeof *p);
    return p;
}

static void assert_same(const lf_real *a, const lf_real *b, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(a[i] == b[i], "%s differs at %ld: %.9g vs %.9g", what, (long)i, (double)a[i], (double)b[i]);
}

/* The gradients of a linear layer against plain double sums, on 2 threads
 * with shapes that split the weight gradient by rows (out >= in) and by
 * columns (out < in). */
START_TEST(test_linear_grads_vs_ref)
{
    lf_test_rng r = {808};
    for (int iter = 0; iter < 8; iter++) {
        int64_t N = lf_test_int(&r, 1500, 2500), in = lf_test_int(&r, 100, 200), out = lf_test_int(&r, 20, 90);
        if (iter % 2 == 0)
            out = in + lf_test_int(&r, 0, 50); /* split by rows */
        int64_t xs[2] = {N, in}, ws[2] = {out, in};
        lf_real *xb = rand_buf(&r, N * in), *wb = rand_buf(&r, out * in), *seed = rand_buf(&r, N * out);
        lf_ctx ctx;
        lf_ctx_init(&ctx, 1 << 16, 2);
        lf_tensor *x = lf_const_real(&ctx, xb, 2, xs), *w = lf_const_real(&ctx, wb, 2, ws);
        x->requires_grad = w->requires_grad = true;
        lf_tensor *y = lf_keep(lf_linear(&ctx, x, w, NULL));
        ck_assert_int_eq(lf_backward_from(&ctx, y, seed), 0);
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++) {
                double s = 0;
                for (int64_t n = 0; n < N; n++)
                    s += (double)seed[n * out + o] * xb[n * in + i];
                LF_ASSERT_CLOSE(w->grad[o * in + i], s, 1e-4, 1e-4);
            }
        for (int64_t n = 0; n < N; n += 7)
            for (int64_t i = 0; i < in; i++) {
                double s = 0;
                for (int64_t o = 0; o < out; o++)
                    s += (double)seed[n * out + o] * wb[o * in + i];
                LF_ASSERT_CLOSE(x->grad[n * in + i], s, 1e-4, 1e-4);
            }
        lf_ctx_free(&ctx);
        free(xb);
        free(wb);
        free(seed);
    }
}
END_TEST

/* The fused linear + activation forward computes exactly what the two ops
 * compute one after the other (values and every gradient), with and
 * without bias, on 1 and 2 threads. */
START_TEST(test_linear_act_vs_composed)
{
    lf_test_rng r = {505};
    const lf_unary acts[4] = {LF_GELU, LF_RELU, LF_SILU, LF_SOFTPLUS};
    for (int iter = 0; iter < 16; iter++) {
        int64_t N = lf_test_int(&r, 1, iter < 8 ? 20 : 900), in = lf_test_int(&r, 1, 70),
                out = lf_test_int(&r, 1, 90);
        int64_t xs[2] = {N, in}, ws[2] = {out, in};
        bool with_bias = iter % 3 != 0;
        lf_unary act = acts[iter % 4];
        lf_real *xb = rand_buf(&r, N * in), *wb = rand_buf(&r, out * in), *bb = rand_buf(&r, out);
        lf_real *seed = rand_buf(&r, N * out);
        lf_real *res[2][4];
        for (int way = 0; way < 2; way++) {
            lf_ctx ctx;
            lf_ctx_init(&ctx, 1 << 16, 1 + iter % 2);
            lf_tensor *x = lf_const_real(&ctx, xb, 2, xs), *w = lf_const_real(&ctx, wb, 2, ws);
            lf_tensor *b = with_bias ? lf_const_real(&ctx, bb, 1, &out) : NULL;
            x->requires_grad = w->requires_grad = true;
            if (b)
                b->requires_grad = true;
            lf_tensor *y = way == 0 ? lf_linear_act(&ctx, x, w, b, act)
                                    : lf_unary_op(&ctx, act, lf_linear(&ctx, x, w, b));
            ck_assert_ptr_nonnull(lf_keep(y));
            ck_assert_int_eq(lf_backward_from(&ctx, y, seed), 0);
            res[way][0] = copy_of(lf_data(y), N * out);
            res[way][1] = copy_of(x->grad, N * in);
            res[way][2] = copy_of(w->grad, out * in);
            res[way][3] = copy_of(b ? b->grad : bb, out);
            lf_ctx_free(&ctx);
        }
        const char *what[4] = {"value", "d x", "d W", "d bias"};
        int64_t n[4] = {N * out, N * in, out * in, out};
        for (int k = 0; k < 4; k++) {
            assert_same(res[0][k], res[1][k], n[k], what[k]);
            free(res[0][k]);
            free(res[1][k]);
        }
        free(xb);
        free(wb);
        free(bb);
        free(seed);
    }
}
END_TEST

/* The fused gated residual + LayerNorm/adaLN forward computes exactly what
 * lf_gated_add then lf_ln_modulate compute: both outputs and every
 * gradient, with sequences in runs (packed batches) and scattered. */
START_TEST(test_gated_add_ln_vs_composed)
{
    lf_test_rng r = {606};
    for (int iter = 0; iter < 10; iter++) {
        int64_t B = lf_test_int(&r, 1, 5), T = lf_test_int(&r, 1, 400), C = lf_test_int(&r, 1, 100);
        int64_t xs[2] = {T, C}, ms[2] = {B, 6 * C};
        lf_real *xb = rand_buf(&r, T * C), *yb = rand_buf(&r, T * C), *mb = rand_buf(&r, B * 6 * C);
        lf_real *sb = rand_buf(&r, C), *seed_a = rand_buf(&r, T * C), *seed_h = rand_buf(&r, T * C);
        int32_t *seg = malloc((size_t)T * sizeof *seg);
        for (int64_t t = 0; t < T; t++)
            seg[t] = (int32_t)(iter % 2 ? lf_test_int(&r, 0, B - 1) : t * B / T);
        lf_real *res[2][6];
        for (int way = 0; way < 2; way++) {
            lf_ctx ctx;
            lf_ctx_init(&ctx, 1 << 16, 1 + iter % 2);
            lf_tensor *x = lf_const_real(&ctx, xb, 2, xs), *y = lf_const_real(&ctx, yb, 2, xs);
            lf_tensor *mod = lf_const_real(&ctx, mb, 2, ms), *sc = lf_const_real(&ctx, sb, 1, &C);
            lf_tensor *sg = lf_const_int(&ctx, seg, T), *h, *a;
            x->requires_grad = y->requires_grad = mod->requires_grad = sc->requires_grad = true;
            if (way == 0) {
                a = lf_gated_add_ln_modulate(&ctx, x, y, mod, 2 * C, sg, sc, 1e-5, mod, 3 * C, 4 * C, &h);
            } else {
                h = lf_gated_add(&ctx, x, y, mod, 2 * C, sg);
                a = lf_ln_modulate(&ctx, h, sc, 1e-5, mod, 3 * C, 4 * C, sg);
            }
            ck_assert_ptr_nonnull(lf_keep(a));
            ck_assert_ptr_nonnull(lf_keep(h));
            /* a loss that reads both outputs: sum(a * seed_a) + sum(h * seed_h) */
            lf_tensor *loss = lf_add(&ctx, lf_sum(&ctx, lf_mul(&ctx, a, lf_const_real(&ctx, seed_a, 2, xs))),
                                     lf_sum(&ctx, lf_mul(&ctx, h, lf_const_real(&ctx, seed_h, 2, xs))));
            ck_assert_int_eq(lf_backward(&ctx, loss), 0);
            res[way][0] = copy_of(lf_data(a), T * C);
            res[way][1] = copy_of(lf_data(h), T * C);
            res[way][2] = copy_of(x->grad, T * C);
            res[way][3] = copy_of(y->grad, T * C);
            res[way][4] = copy_of(mod->grad, B * 6 * C);
            res[way][5] = copy_of(sc->grad, C);
            lf_ctx_free(&ctx);
        }
        const char *what[6] = {"normalised", "residual", "d x", "d y", "d mod", "d scale"};
        int64_t n[6] = {T * C, T * C, T * C, T * C, B * 6 * C, C};
        for (int k = 0; k < 6; k++) {
            assert_same(res[0][k], res[1][k], n[k], what[k]);
            free(res[0][k]);
            free(res[1][k]);
        }
        free(xb);
        free(yb);
        free(mb);
        free(sb);
        free(seed_a);
        free(seed_h);
        free(seg);
    }
}
END_TEST

/* The rotary tables a context keeps grow with the positions in use and stay
 * valid for nodes recorded before they grew: a forward at short positions,
 * one at long positions, then the backward of both, equal a fresh context's
 * results for each. */
START_TEST(test_rope_table_growth)
{
    lf_test_rng r = {707};
    enum { H = 2, DH = 8, C = H * DH };
    int64_t lens[2] = {7, 300};
    lf_real *outs[2][2], *grads[2][2];
    lf_real *buf[2], *seed[2];
    int32_t *pos[2];
    for (int k = 0; k < 2; k++) {
        buf[k] = rand_buf(&r, lens[k] * 3 * C);
        seed[k] = rand_buf(&r, lens[k] * C);
        pos[k] = malloc((size_t)lens[k] * sizeof(int32_t));
        for (int64_t i = 0; i < lens[k]; i++)
            pos[k][i] = (int32_t)i;
    }
    for (int way = 0; way < 2; way++) {
        lf_ctx shared;
        lf_ctx_init(&shared, 1 << 16, 2);
        lf_tensor *o[2], *qkv[2];
        for (int k = 0; k < 2; k++) {
            lf_ctx fresh;
            lf_ctx *ctx = &shared;
            if (way == 1) {
                lf_ctx_init(&fresh, 1 << 16, 2);
                ctx = &fresh;
            }
            int64_t shape[2] = {lens[k], 3 * C};
            int32_t off[2] = {0, (int32_t)lens[k]};
            qkv[k] = lf_const_real(ctx, buf[k], 2, shape);
            qkv[k]->requires_grad = true;
            o[k] = lf_keep(lf_rope_attention(ctx, qkv[k], lf_const_int(ctx, pos[k], lens[k]),
                                             lf_const_int(ctx, off, 2), NULL, H, 10000));
            ck_assert_ptr_nonnull(o[k]);
            if (way == 1) {
                ck_assert_int_eq(lf_backward_from(ctx, o[k], seed[k]), 0);
                outs[way][k] = copy_of(lf_data(o[k]), lens[k] * C);
                grads[way][k] = copy_of(qkv[k]->grad, lens[k] * 3 * C);
                lf_ctx_free(&fresh);
            }
        }
        if (way == 0) { /* both graphs on one tape: one backward from the sum */
            lf_tensor *loss = NULL;
            for (int k = 0; k < 2; k++) {
                int64_t sh[2] = {lens[k], C};
                lf_tensor *term = lf_sum(&shared, lf_mul(&shared, o[k], lf_const_real(&shared, seed[k], 2, sh)));
                loss = loss ? lf_add(&shared, loss, term) : term;
            }
            ck_assert_int_eq(lf_backward(&shared, loss), 0);
            for (int k = 0; k < 2; k++) {
                outs[way][k] = copy_of(lf_data(o[k]), lens[k] * C);
                grads[way][k] = copy_of(qkv[k]->grad, lens[k] * 3 * C);
            }
        }
        lf_ctx_free(&shared);
    }
    for (int k = 0; k < 2; k++) {
        assert_same(outs[0][k], outs[1][k], lens[k] * C, "attention output");
        assert_same(grads[0][k], grads[1][k], lens[k] * 3 * C, "d qkv");
        for (int w = 0; w < 2; w++) {
            free(outs[w][k]);
            free(grads[w][k]);
        }
        free(buf[k]);
        free(seed[k]);
        free(pos[k]);
    }
}
END_TEST

/* A full forward and backward of the toy model gives bit-identical losses
 * and gradients with 1 and 2 threads. */
START_TEST(test_thread_count_independence)
{
    enum { V = 13, N_SEQ = 9, LEN = 40 };
    double loss[2];
    lf_real *grads[2];
    int32_t tokens[N_SEQ * LEN], targets[N_SEQ * LEN], offsets[N_SEQ + 1];
    for (int run = 0; run < 2; run++) {
        toy_model m;
        ck_assert_int_eq(toy_init(&m, V, 32, 4, 11), 0);
        m.ctx.n_threads = run + 1;
        uint64_t rng = 77;
        for (int step = 0; step < 3; step++) {
            toy_batch(&rng, V, N_SEQ, 1, LEN, tokens, targets, offsets);
            ck_assert_int_eq(toy_train_step(&m, tokens, targets, offsets, N_SEQ, 1e-3, &loss[run]), 0);
        }
        grads[run] = malloc((size_t)m.n_params * sizeof(lf_real));
        memcpy(grads[run], m.grad, (size_t)m.n_params * sizeof(lf_real));
        if (run == 1)
            ck_assert_int_eq(memcmp(grads[0], grads[1], (size_t)m.n_params * sizeof(lf_real)), 0);
        toy_free(&m);
    }
    ck_assert(loss[0] == loss[1]);
    free(grads[0]);
    free(grads[1]);
}
END_TEST

/* The FLOP counter: a linear layer forward and backward is 6 N in out; the
 * fused attention 12 n^2 Dh per sequence and head. */
START_TEST(test_flop_count)
{
    lf_ctx ctx;
    lf_ctx_init(&ctx, 1 << 16, 2);
    lf_test_rng r = {5};
    int64_t N = 37, in = 20, out = 11, xs[2] = {N, in}, ws[2] = {out, in};
    lf_real *xb = rand_buf(&r, N * in), *wb = rand_buf(&r, out * in);
    lf_tensor *x = lf_const_real(&ctx, xb, 2, xs), *w = lf_const_real(&ctx, wb, 2, ws);
    x->requires_grad = w->requires_grad = true;
    ck_assert_int_eq(lf_backward(&ctx, lf_sum(&ctx, lf_linear(&ctx, x, w, NULL))), 0);
    LF_ASSERT_CLOSE(ctx.flops, 6.0 * N * in * out, 0, 0);
    lf_ctx_reset(&ctx);
    ck_assert(ctx.flops == 0);
    int32_t off[3] = {0, 5, 12}, pos[12];
    for (int i = 0; i < 12; i++)
        pos[i] = i < 5 ? i : i - 5;
    int64_t qs[2] = {12, 3 * 8};
    lf_real *qb = rand_buf(&r, 12 * 24);
    lf_tensor *qkv = lf_const_real(&ctx, qb, 2, qs);
    qkv->requires_grad = true;
    lf_tensor *o = lf_rope_attention(&ctx, qkv, lf_const_int(&ctx, pos, 12), lf_const_int(&ctx, off, 3), NULL, 2, 10000);
    ck_assert_int_eq(lf_backward(&ctx, lf_sum(&ctx, o)), 0);
    LF_ASSERT_CLOSE(ctx.flops, 12.0 * (5 * 5 + 7 * 7) * 2 * 4, 0, 0); /* 2 heads of 4 */
    free(xb);
    free(wb);
    free(qb);
    lf_ctx_free(&ctx);
}
END_TEST

/* Ops refuse inputs that do not fit and report it through the context. */
START_TEST(test_bad_shapes_fail_cleanly)
{
    lf_ctx ctx;
    lf_ctx_init(&ctx, 1 << 12, 1);
    lf_tensor *a = lf_zeros2(&ctx, 3, 4), *b = lf_zeros2(&ctx, 5, 4);
    ck_assert_ptr_null(lf_matmul(&ctx, a, b, false, false));
    ck_assert_int_eq(lf_ctx_status(&ctx), LFLEX_EINVAL);
    ck_assert_str_eq(ctx.status_where, "matmul: inner dimensions differ");
    /* NULL propagates without changing the first failure */
    ck_assert_ptr_null(lf_add(&ctx, NULL, a));
    ck_assert_ptr_null(lf_layernorm(&ctx, NULL, NULL, 1e-5));
    ck_assert_str_eq(ctx.status_where, "matmul: inner dimensions differ");
    /* (a reset frees every tensor of the step: make new ones) */
    lf_ctx_reset(&ctx);
    int32_t bad_id = 7;
    a = lf_zeros2(&ctx, 3, 4);
    ck_assert_ptr_null(lf_embedding(&ctx, a, lf_const_int(&ctx, &bad_id, 1)));
    ck_assert_int_eq(lf_ctx_status(&ctx), LFLEX_EINVAL);
    lf_ctx_reset(&ctx);
    a = lf_zeros2(&ctx, 3, 4);
    ck_assert_ptr_null(lf_add(&ctx, a, lf_zeros2(&ctx, 2, 2)));
    ck_assert_ptr_null(lf_rope(&ctx, lf_zeros2(&ctx, 2, 3), lf_const_int(&ctx, &bad_id, 1), 1, 10000));
    lf_ctx_reset(&ctx);
    a = lf_zeros2(&ctx, 3, 4);
    ck_assert_int_eq(lf_backward(&ctx, a), LFLEX_EINVAL); /* not a scalar */
    lf_ctx_free(&ctx);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gemm_vs_ref);
    tcase_add_test(tc, test_gemm_small_vs_ref);
    tcase_add_test(tc, test_gemm_avx512_vs_ref);
    tcase_add_test(tc, test_gemm_avx512_row_split);
    tcase_add_test(tc, test_attention_vs_ref);
    tcase_add_test(tc, test_rope_attention_vs_composed);
    tcase_add_test(tc, test_ln_modulate_vs_composed);
    tcase_add_test(tc, test_linear_grads_vs_ref);
    tcase_add_test(tc, test_linear_act_vs_composed);
    tcase_add_test(tc, test_gated_add_ln_vs_composed);
    tcase_add_test(tc, test_rope_table_growth);
    tcase_add_test(tc, test_flop_count);
    tcase_add_test(tc, test_thread_count_independence);
    tcase_add_test(tc, test_bad_shapes_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
