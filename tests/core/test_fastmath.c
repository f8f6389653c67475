/* The fast exp and tanh of core/fastmath.h: accuracy against libm over the
 * whole clamped range, and the documented results outside it: NaN gives
 * NaN, -inf and arguments below -87.3 give 0, +inf and arguments above 88.3
 * give e^88.3 (finite). Under UBSan (setup.sh runs this suite with
 * halt_on_error=1) a NaN argument used to stop the program: (int32_t)NaN
 * became INT32_MIN and was shifted left. Arguments come through volatile
 * loads so that the compiler cannot fold the calls away; the array tests
 * run the loops the compiler vectorises in the release build. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fastmath.h"
#include "tests/common/testutil.h"

static float ulp_err(float got, double ref)
{
    if (got == ref)
        return 0;
    double ulp = ldexp(1.0, ilogb(ref) - (FLT_MANT_DIG - 1));
    return (float)(fabs(got - ref) / ulp);
}

static float through_volatile(float x)
{
    volatile float v = x;
    return v;
}

static const float specials[] = {
    NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e30f, -1e30f, 88.3f, 88.31f, 88.8f, 100.0f,
    -87.3f, -87.31f, -87.4f, -103.0f, -1000.0f, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, 0.0f, -0.0f,
};
#define N_SPECIALS (sizeof specials / sizeof specials[0])

/* the documented result of lf_fast_exp at x (checked with its own argument
 * for the clamped ends) */
static void check_exp_special(float x, float y, float top)
{
    if (isnan(x))
        ck_assert_msg(isnan(y), "lf_fast_exp(%g) = %g, want NaN", (double)x, (double)y);
    else if (x < -87.3f)
        ck_assert_msg(y == 0.0f, "lf_fast_exp(%g) = %g, want 0", (double)x, (double)y);
    else if (x > 88.3f)
        ck_assert_msg(y == top, "lf_fast_exp(%g) = %g, want e^88.3 = %g", (double)x, (double)y, (double)top);
    else
        ck_assert_msg(isfinite(y) && ulp_err(y, exp((double)x)) <= 4, "lf_fast_exp(%g) = %.9g, exp = %.9g",
                      (double)x, (double)y, exp((double)x));
}

START_TEST(test_exp_special_values)
{
    const float top = lf_fast_exp(through_volatile(88.3f));
    ck_assert(isfinite(top) && top > 2.2e38f);
    for (size_t i = 0; i < N_SPECIALS; i++) {
        float x = through_volatile(specials[i]);
        check_exp_special(x, lf_fast_exp(x), top);
    }
    /* NaNs of every payload and sign */
    const uint32_t nan_bits[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < sizeof nan_bits / sizeof nan_bits[0]; i++) {
        float x;
        memcpy(&x, &nan_bits[i], sizeof x);
        float y = lf_fast_exp(through_volatile(x));
        ck_assert_msg(isnan(y), "lf_fast_exp(NaN 0x%08x) = %g", (unsigned)nan_bits[i], (double)y);
    }
}
END_TEST

START_TEST(test_exp_array_with_specials)
{
    /* the same values in a long array, in every position of a vector */
    enum { N = 4 * 64 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = through_volatile(specials[(size_t)i % N_SPECIALS]);
    for (int i = 0; i < N; i++)
        y[i] = lf_fast_exp(x[i]);
    const float top = lf_fast_exp(through_volatile(88.3f));
    for (int i = 0; i < N; i++)
        check_exp_special(x[i], y[i], top);
}
END_TEST

START_TEST(test_exp_accuracy)
{
    float worst = 0, at = 0;
    lf_test_rng r = {42};
    for (int i = 0; i < 200000; i++) {
        float x = (float)lf_test_range(&r, -87.3, 88.3);
        float e = ulp_err(lf_fast_exp(through_volatile(x)), exp((double)x));
        if (e > worst) {
            worst = e;
            at = x;
        }
    }
    printf("# lf_fast_exp: largest error %.2f ulp at %.9g\n", (double)worst, (double)at);
    ck_assert_msg(worst <= 4, "lf_fast_exp: %.2f ulp at %.9g", (double)worst, (double)at);
}
END_TEST

START_TEST(test_tanh_special_values_and_accuracy)
{
    ck_assert(isnan(lf_fast_tanh(through_volatile(NAN))));
    ck_assert(isnan(lf_fast_tanh(through_volatile(-NAN))));
    ck_assert(lf_fast_tanh(through_volatile(INFINITY)) == 1.0f);
    ck_assert(lf_fast_tanh(through_volatile(-INFINITY)) == -1.0f);
    ck_assert(lf_fast_tanh(through_volatile(FLT_MAX)) == 1.0f);
    ck_assert(lf_fast_tanh(through_volatile(-FLT_MAX)) == -1.0f);
    ck_assert(lf_fast_tanh(through_volatile(0.0f)) == 0.0f);
    double worst = 0;
    lf_test_rng r = {7};
    for (int i = 0; i < 200000; i++) {
        float x = (float)lf_test_range(&r, -30, 30);
        double e = fabs((double)lf_fast_tanh(through_volatile(x)) - tanh((double)x));
        worst = e > worst ? e : worst;
    }
    printf("# lf_fast_tanh: largest absolute error %.3g\n", worst);
    ck_assert_msg(worst <= 2e-7, "lf_fast_tanh: absolute error %.3g", worst);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("fastmath");
    TCase *tc = tcase_create("fastmath");
    tcase_add_test(tc, test_exp_special_values);
    tcase_add_test(tc, test_exp_array_with_specials);
    tcase_add_test(tc, test_exp_accuracy);
    tcase_add_test(tc, test_tanh_special_values_and_accuracy);
    suite_add_tcase(s, tc);
    return s;
}
