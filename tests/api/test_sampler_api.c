/* The public sampler and rate-query calls: argument checks, bad templates,
 * capacity reporting, seeds, progress and cancellation. */
#include <string.h>

#include <lflex/lflex.h>

#include "tests/common/testutil.h"

static lflex_model_t *model;

static void setup(void)
{
    const char *y = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\n"
                    "vocab: {tokens: \"a b c d e\"}\ntrain: {threads: 1}\n";
    ck_assert_int_eq(lflex_model_new(&model, y, strlen(y)), LFLEX_OK);
}

static void teardown(void)
{
    lflex_model_free(model);
    model = NULL;
}

static lflex_sampler_t *new_sampler(const char *yaml)
{
    lflex_sampler_t *s = NULL;
    ck_assert_msg(lflex_sampler_new(&s, model, yaml, yaml ? strlen(yaml) : 0) == LFLEX_OK, "%s", lflex_last_error());
    return s;
}

START_TEST(test_sampler_new_errors)
{
    lflex_sampler_t *s = (lflex_sampler_t *)1;
    ck_assert_int_eq(lflex_sampler_new(NULL, model, NULL, 0), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_new(&s, NULL, NULL, 0), LFLEX_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "lflex_sampler_new"));
    const char *bad = "steps: 0";
    ck_assert_int_eq(lflex_sampler_new(&s, model, bad, strlen(bad)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "1:8"));
    const char *too_long = "max_len: 13";
    ck_assert_int_eq(lflex_sampler_new(&s, model, too_long, strlen(too_long)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "max_len"));
    const char *conf = "confidence: sure";
    ck_assert_int_eq(lflex_sampler_new(&s, model, conf, strlen(conf)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "top_prob"));
    lflex_sampler_free(NULL);
    ck_assert_int_eq(lflex_sampler_set_seed(NULL, 1), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_set_progress(NULL, NULL, NULL), LFLEX_EINVAL);
}
END_TEST

/* Each bad template gives LFLEX_EINVAL and a message naming what and where. */
START_TEST(test_bad_templates)
{
    lflex_sampler_t *s = new_sampler(NULL);
    int32_t out[64];
    size_t n;
    struct {
        int32_t tok[16];
        size_t len;
        const char *expect;
    } cases[] = {
        {{4, 5}, 2, "position 1: the last token is 5, not EOS"},
        {{4, 99, LFLEX_TOKEN_EOS}, 3, "position 1: token id 99 is outside [0, 9)"},
        {{4, -1, LFLEX_TOKEN_EOS}, 3, "position 1: token id -1"},
        {{LFLEX_TOKEN_PAD, LFLEX_TOKEN_EOS}, 2, "position 0: PAD"},
        {{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, LFLEX_TOKEN_EOS}, 13, "13 tokens, more than max_len = 12"},
        {{0}, 0, "template 0 is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(lflex_sampler_generate(s, cases[i].tok, NULL, cases[i].len, out, 64, &n), LFLEX_EINVAL);
        ck_assert_msg(strstr(lflex_last_error(), cases[i].expect), "case %zu: '%s'", i, lflex_last_error());
    }
    int32_t closed[2] = {4, LFLEX_TOKEN_EOS};
    uint8_t none[2] = {0, 0};
    ck_assert_int_eq(lflex_sampler_generate(s, closed, none, 2, out, 64, &n), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "no open gap"));
    /* a MASK with every gap closed is something to generate */
    int32_t masked[2] = {LFLEX_TOKEN_MASK, LFLEX_TOKEN_EOS};
    ck_assert_int_eq(lflex_sampler_generate(s, masked, none, 2, out, 64, &n), LFLEX_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_ge(out[0], LFLEX_TOKEN_FIRST_USER);
    lflex_sampler_free(s);
}
END_TEST

START_TEST(test_arguments_and_capacity)
{
    lflex_sampler_t *s = new_sampler(NULL);
    int32_t tmpl[1] = {LFLEX_TOKEN_EOS}, out[64];
    size_t n, off[3], toff[3] = {0, 1, 2};
    int32_t two[2] = {LFLEX_TOKEN_EOS, LFLEX_TOKEN_EOS};
    ck_assert_int_eq(lflex_sampler_generate(NULL, tmpl, NULL, 1, out, 64, &n), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_generate(s, NULL, NULL, 1, out, 64, &n), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_generate(s, tmpl, NULL, 1, NULL, 64, &n), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_generate(s, tmpl, NULL, 1, out, 64, NULL), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_generate(s, tmpl, NULL, 1, out, 11, &n), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "need 12"));
    ck_assert_int_eq(lflex_sampler_generate_batch(s, two, NULL, toff, 2, out, 23, off, NULL, NULL), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "need 24"));
    ck_assert_int_eq(lflex_sampler_generate_batch(s, two, NULL, toff, 0, out, 64, off, NULL, NULL), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_sampler_generate_batch(s, two, NULL, NULL, 2, out, 64, off, NULL, NULL), LFLEX_EINVAL);
    size_t bad_off[3] = {1, 1, 2};
    ck_assert_int_eq(lflex_sampler_generate_batch(s, two, NULL, bad_off, 2, out, 64, off, NULL, NULL), LFLEX_EINVAL);
    lflex_sampler_free(s);
}
END_TEST

/* set_seed restarts the stream; one-by-one equals batched; times are
 * ordered (unmasked after inserted). */
START_TEST(test_seed_and_batch)
{
    lflex_sampler_t *s = new_sampler("steps: 8\nseed: 21");
    int32_t tmpl[3] = {LFLEX_TOKEN_EOS, LFLEX_TOKEN_EOS, LFLEX_TOKEN_EOS}, a[36], b[36];
    size_t toff[4] = {0, 1, 2, 3}, oa[4], ob[4] = {0};
    float tin[36], tum[36];
    ck_assert_int_eq(lflex_sampler_generate_batch(s, tmpl, NULL, toff, 3, a, 36, oa, tin, tum), LFLEX_OK);
    for (size_t i = 0; i < oa[3]; i++)
        ck_assert(tin[i] <= tum[i]);
    ck_assert_int_eq(lflex_sampler_set_seed(s, 21), LFLEX_OK);
    for (int j = 0; j < 3; j++) {
        size_t n;
        ck_assert_int_eq(lflex_sampler_generate(s, tmpl, NULL, 1, b + ob[j], 12, &n), LFLEX_OK);
        ob[j + 1] = ob[j] + n;
    }
    ck_assert_int_eq(memcmp(oa, ob, sizeof oa), 0);
    ck_assert_int_eq(memcmp(a, b, oa[3] * sizeof *a), 0);
    lflex_sampler_free(s);
}
END_TEST

static int count_and_stop(void *user, uint64_t done, uint64_t total)
{
    int *calls = user;
    ++*calls;
    ck_assert_uint_le(done, total);
    return done >= 3;
}

START_TEST(test_progress_cancels)
{
    lflex_sampler_t *s = new_sampler("steps: 10");
    int calls = 0;
    ck_assert_int_eq(lflex_sampler_set_progress(s, count_and_stop, &calls), LFLEX_OK);
    int32_t tmpl[1] = {LFLEX_TOKEN_EOS}, out[12];
    size_t n;
    ck_assert_int_eq(lflex_sampler_generate(s, tmpl, NULL, 1, out, 12, &n), LFLEX_ECANCELED);
    ck_assert_int_eq(calls, 3);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "canceled"));
    lflex_sampler_free(s);
}
END_TEST

START_TEST(test_rate_query_errors)
{
    int32_t x[3] = {4, LFLEX_TOKEN_MASK, LFLEX_TOKEN_EOS};
    float r[3], p[27], b[3], e[3];
    ck_assert_int_eq(lflex_model_rates(NULL, x, 3, 0.5, p, r, r), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_model_rates(model, NULL, 3, 0.5, p, r, r), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_model_rates(model, x, 0, 0.5, p, r, r), LFLEX_EINVAL);
    ck_assert_int_eq(lflex_model_rates(model, x, 3, 1.0, p, r, r), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "t = 1"));
    ck_assert_int_eq(lflex_model_rates(model, x, 3, 0.5, p, r, r), LFLEX_OK);
    double total = 0;
    for (int v = 0; v < 9; v++)
        total += p[9 + v];
    LF_ASSERT_CLOSE(total, 1.0, 1e-5, 0);
    ck_assert(p[9 + LFLEX_TOKEN_MASK] == 0 && p[9 + LFLEX_TOKEN_EOS] == 0);
    ck_assert_int_eq(lflex_model_order(model, x, NULL, 3, b, NULL, e), LFLEX_EINVAL); /* MASK in z */
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "position 1"));
    int32_t z[3] = {4, 5, LFLEX_TOKEN_EOS};
    uint8_t fx[3] = {0, 0, 1};
    ck_assert_int_eq(lflex_model_order(model, z, fx, 3, b, NULL, e), LFLEX_OK);
    ck_assert(b[0] >= 1.001f && e[2] == 0.0f);
    LF_ASSERT_CLOSE(e[0], 1.0 / (b[0] + 1.0), 1e-6, 1e-5); /* a = 1 */
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("sampler_api");
    TCase *tc = tcase_create("sampler_api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sampler_new_errors);
    tcase_add_test(tc, test_bad_templates);
    tcase_add_test(tc, test_arguments_and_capacity);
    tcase_add_test(tc, test_seed_and_batch);
    tcase_add_test(tc, test_progress_cancels);
    tcase_add_test(tc, test_rate_query_errors);
    suite_add_tcase(s, tc);
    return s;
}
