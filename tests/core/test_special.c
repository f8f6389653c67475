/* The scalar special functions against independent evaluations: long double
 * closed forms and Taylor sums computed here, known values of digamma and
 * trigamma, recurrences, finite differences, and agreement across every
 * branch switch. Each test prints its largest error as a TAP comment. */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "core/special.h"
#include "tests/common/testutil.h"

#define PI_L 3.141592653589793238462643383279502884L
#define EULER_L 0.577215664901532860606512090082402431L
#define CATALAN_L 0.915965594177219015054603514932384110L
#define LN2_L 0.693147180559945309417232121458176568L

/* Whether long double really carries more digits than double at run time.
 * Not under valgrind, which computes x87 arithmetic in double precision:
 * there the long double references are only as good as the code under test,
 * and their comparisons fall back to a loose tolerance (the run is for
 * memory errors, the precision is checked in the normal run). */
static int long_double_is_extended(void)
{
    volatile long double one = 1, eps = LDBL_EPSILON;
    return LDBL_MANT_DIG > DBL_MANT_DIG && one + eps != one;
}

static double ref_tol(double tight)
{
    return long_double_is_extended() ? tight : 1e-13;
}

static double rel_err(double got, long double ref)
{
    if (got == ref)
        return 0; /* also equal infinities */
    /* below DBL_MIN only the absolute error of a subnormal result counts */
    return (double)(fabsl((long double)got - ref) / fmaxl(fabsl(ref), DBL_MIN));
}

/* e(x) - 1 = sum_{k>=1} x^k / (k+1)!, in long double */
static long double e_minus_1_series(long double x)
{
    long double term = 1, sum = 0; /* term = x^k / (k+1)! */
    for (int k = 1; k < 200; k++) {
        term *= x / (k + 1);
        sum += term;
        if (fabsl(term) <= LDBL_EPSILON * 1e-3L * fabsl(sum))
            break;
    }
    return sum;
}

/* log e(x) in long double: Taylor sum of e(x) near 0 (not the Bernoulli
 * series the library uses), the closed form elsewhere. */
static long double log_e_ref(double xd)
{
    long double x = xd;
    if (fabsl(x) <= 1)
        return log1pl(e_minus_1_series(x));
    /* beyond |x| = 700, e^-|x| is below the precision of the result */
    if (x > 700)
        return x - logl(x);
    if (x < -700)
        return -logl(-x);
    return logl(expm1l(x) / x);
}

/* d/dx log e(x) = e'(x) / e(x) with both Taylor sums near 0, the closed
 * form 1/(1 - e^-x) - 1/x elsewhere (in long double its cancellation costs
 * at most 2 of its 19 digits for |x| > 1). */
static long double log_e_deriv_ref(double xd)
{
    long double x = xd;
    if (fabsl(x) <= 1) {
        long double e = 1, term = 1;  /* e(x) = sum_{k>=0} x^k / (k+1)! */
        long double de = 0, p = 0.5L; /* p = x^(k-1) / (k+1)!, k >= 1 */
        for (int k = 1; k < 200; k++) {
            term *= x / (k + 1);
            e += term;
            de += k * p;
            p *= x / (k + 2);
            if (fabsl(term) + fabsl(p) * (k + 1) <= LDBL_EPSILON * 1e-3L)
                break;
        }
        return de / e;
    }
    if (x > 700)
        return 1 - 1 / x;
    if (x < -700)
        return -1 / x;
    return 1 / (1 - expl(-x)) - 1 / x;
}

/* central difference of fourth order */
static double fd5(double (*f)(double), double x, double h)
{
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

/* Test points: signed magnitudes from 1e-300 to 1e300 on a log grid, a dense
 * grid over [-3, 3], the branch points and their neighbours, random draws. */
#define MAX_POINTS 4000
static int log_e_points(double *x)
{
    int n = 0;
    for (int k = 0; k <= 600; k++) {
        double m = pow(10.0, -300.0 + k);
        x[n++] = m;
        x[n++] = -m;
    }
    for (int k = -600; k <= 600; k++)
        x[n++] = k * 0.005;
    const double special[] = {0.0, 0.5, -0.5, 1.0, -1.0, 2 * M_PI, 700, -700, 710, -750, 1e4, -1e4};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
        x[n++] = special[k];
        x[n++] = nextafter(special[k], INFINITY);
        x[n++] = nextafter(special[k], -INFINITY);
    }
    lf_test_rng r = {42};
    while (n < MAX_POINTS)
        x[n++] = lf_test_range(&r, -40, 40);
    return n;
}

START_TEST(test_log_e_reference)
{
    static double x[MAX_POINTS];
    int n = log_e_points(x);
    double worst = 0, worst_x = 0;
    for (int i = 0; i < n; i++) {
        long double ref = log_e_ref(x[i]);
        double got = lf_log_e(x[i]);
        double err = x[i] == 0 ? fabs(got) : rel_err(got, ref);
        if (err > worst) {
            worst = err;
            worst_x = x[i];
        }
        ck_assert_msg(err <= ref_tol(1e-14), "log_e(%.17g) = %.17g, reference %.17Lg", x[i], got, ref);
    }
    fprintf(stderr, "# log_e: max relative error %.3g (at x = %.6g) over %d points\n", worst, worst_x, n);
    ck_assert(lf_log_e(INFINITY) == INFINITY);
    ck_assert(lf_log_e(-INFINITY) == -INFINITY);
    ck_assert(isnan(lf_log_e(NAN)));
    ck_assert(lf_log_e(0.0) == 0.0);
}
END_TEST

START_TEST(test_log_e_deriv)
{
    static double x[MAX_POINTS];
    int n = log_e_points(x);
    double worst = 0, worst_fd = 0;
    for (int i = 0; i < n; i++) {
        long double ref = log_e_deriv_ref(x[i]);
        double got = lf_log_e_deriv(x[i]);
        double err = rel_err(got, ref);
        worst = fmax(worst, err);
        ck_assert_msg(err <= ref_tol(1e-14), "log_e'(%.17g) = %.17g, reference %.17Lg", x[i], got, ref);
        ck_assert(got >= 0 && got <= 1);
        /* the derivative of the function itself, through every branch */
        if (fabs(x[i]) < 1e6) {
            double h = 1e-3 * fmax(1.0, fabs(x[i]));
            double fd = fd5(lf_log_e, x[i], h);
            double e_fd = fabs(fd - got) / got;
            worst_fd = fmax(worst_fd, e_fd);
            ck_assert_msg(e_fd <= 1e-9, "log_e'(%.17g) = %.17g, finite difference %.17g", x[i], got, fd);
        }
    }
    fprintf(stderr, "# log_e_deriv: max relative error %.3g vs reference, %.3g vs finite differences\n",
            worst, worst_fd);
    ck_assert(lf_log_e_deriv(0.0) == 0.5);
    ck_assert(lf_log_e_deriv(INFINITY) == 1.0);
    ck_assert(lf_log_e_deriv(-INFINITY) == 0.0);
}
END_TEST

/* Values and derivatives agree on the two sides of each switch (1 ulp
 * apart, so the true change is ~1e-16). */
START_TEST(test_log_e_continuity)
{
    const double sw[] = {0.5, -0.5};
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        double lo = nextafter(sw[k], -INFINITY), hi = nextafter(sw[k], INFINITY);
        double dv = fabs(lf_log_e(lo) - lf_log_e(hi)) / fabs(lf_log_e(sw[k]));
        double dd = fabs(lf_log_e_deriv(lo) - lf_log_e_deriv(hi)) / lf_log_e_deriv(sw[k]);
        double dv0 = fabs(lf_log_e(lo) - lf_log_e(sw[k])) / fabs(lf_log_e(sw[k]));
        worst = fmax(worst, fmax(fmax(dv, dd), dv0));
        ck_assert_msg(dv <= 1e-12 && dd <= 1e-12 && dv0 <= 1e-12, "jump at %g: %g %g", sw[k], dv, dd);
    }
    fprintf(stderr, "# log_e: max relative jump across switches %.3g\n", worst);
}
END_TEST

/* log(1 - e^x) in long double: the closed form where 1 - e^x is not small
 * relative to 1; for x < -1 the series -sum q^k / k with q = e^x. */
static long double log1mexp_ref(double xd)
{
    long double x = xd;
    if (x >= -1)
        return logl(-expm1l(x));
    long double q = expl(x), qk = q, sum = 0;
    for (int k = 1; k < 200 && qk != 0; k++) {
        sum += qk / k;
        qk *= q;
        if (qk / k <= LDBL_EPSILON * 1e-3L * sum)
            break;
    }
    return -sum;
}

START_TEST(test_log1mexp)
{
    const double pts[] = {-1e-300, -1e-20, -1e-5, -0.1, -0.69, -LN2_L, -0.7, -1, -5, -50, -700};
    double worst = 0;
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double x = pts[i];
        long double ref = log1mexp_ref(x);
        double err = rel_err(lf_log1mexp(x), ref);
        worst = fmax(worst, err);
        ck_assert_msg(err <= ref_tol(4e-16), "log1mexp(%g) = %.17g, reference %.17Lg", x, lf_log1mexp(x), ref);
    }
    lf_test_rng r = {7};
    for (int i = 0; i < 3000; i++) {
        double x = -exp(lf_test_range(&r, -46, 6.5));
        long double ref = log1mexp_ref(x);
        double err = rel_err(lf_log1mexp(x), ref);
        worst = fmax(worst, err);
        ck_assert_msg(err <= ref_tol(4e-16), "log1mexp(%.17g) = %.17g, reference %.17Lg", x, lf_log1mexp(x), ref);
    }
    /* e^-800 underflows: the result is -0 or the subnormal range */
    ck_assert(lf_log1mexp(-800) <= 0 && lf_log1mexp(-800) > -1e-300);
    ck_assert(lf_log1mexp(-INFINITY) == 0);
    ck_assert(lf_log1mexp(0.0) == -INFINITY);
    ck_assert(isnan(lf_log1mexp(1e-300)));
    ck_assert(isnan(lf_log1mexp(NAN)));
    ck_assert(isnan(lf_log1mexp_deriv(1.0)));

    /* the switch at -ln 2 */
    double sw = -(double)LN2_L;
    double lo = nextafter(sw, -INFINITY), hi = nextafter(sw, 0);
    double jump = fabs(lf_log1mexp(lo) - lf_log1mexp(hi)) / fabs(lf_log1mexp(sw));
    ck_assert_msg(jump <= 1e-15, "jump %g at -ln 2", jump);

    /* derivative: long double closed form and finite differences */
    double worst_d = 0, worst_fd = 0;
    const double dpts[] = {-1e-20, -1e-5, -0.1, -0.69, -0.7, -1, -5, -50, -700};
    for (size_t i = 0; i < sizeof dpts / sizeof dpts[0]; i++) {
        double x = dpts[i], got = lf_log1mexp_deriv(x);
        long double ref = -1 / expm1l(-(long double)x);
        worst_d = fmax(worst_d, rel_err(got, ref));
        ck_assert_msg(rel_err(got, ref) <= ref_tol(4e-16), "log1mexp'(%g) = %.17g vs %.17Lg", x, got, ref);
        double h = 1e-3 * fmin(fabs(x), 1.0);
        double fd = fd5(lf_log1mexp, x, h);
        worst_fd = fmax(worst_fd, fabs(fd - got) / fabs(got));
        ck_assert_msg(fabs(fd - got) <= 1e-9 * fabs(got), "log1mexp'(%g) = %.17g, fd %.17g", x, got, fd);
    }
    fprintf(stderr, "# log1mexp: max relative error %.3g, switch jump %.3g; derivative %.3g vs reference, "
            "%.3g vs finite differences\n", worst, jump, worst_d, worst_fd);
}
END_TEST

START_TEST(test_logaddexp)
{
    ck_assert(lf_logaddexp(-INFINITY, -INFINITY) == -INFINITY);
    ck_assert(lf_logaddexp(-INFINITY, 3.5) == 3.5);
    ck_assert(lf_logaddexp(3.5, -INFINITY) == 3.5);
    ck_assert(lf_logaddexp(INFINITY, 1.0) == INFINITY);
    ck_assert(lf_logaddexp(INFINITY, INFINITY) == INFINITY);
    ck_assert(lf_logaddexp(-INFINITY, INFINITY) == INFINITY);
    ck_assert(isnan(lf_logaddexp(NAN, 1.0)));
    ck_assert(isnan(lf_logaddexp(-INFINITY, NAN)));
    /* no overflow for large arguments */
    LF_ASSERT_CLOSE(lf_logaddexp(1000, 1000), 1000 + (double)LN2_L, 0, 1e-16);
    LF_ASSERT_CLOSE(lf_logaddexp(-1000, -1000), -1000 + (double)LN2_L, 0, 1e-16);
    double worst = 0;
    lf_test_rng r = {11};
    for (int i = 0; i < 3000; i++) {
        double a = lf_test_range(&r, -700, 700);
        double b = i % 2 ? a + lf_test_range(&r, -40, 40) : lf_test_range(&r, -700, 700);
        if (fabs(b) > 700)
            b = 700 * (b > 0 ? 1 : -1);
        long double ref = logl(expl((long double)a) + expl((long double)b));
        double got = lf_logaddexp(a, b);
        double err = (double)(fabsl(got - ref) / fmaxl(1, fabsl(ref)));
        worst = fmax(worst, err);
        ck_assert_msg(err <= ref_tol(4e-16), "logaddexp(%.17g, %.17g) = %.17g vs %.17Lg", a, b, got, ref);
        ck_assert(got == lf_logaddexp(b, a));
    }
    fprintf(stderr, "# logaddexp: max error %.3g (relative to max(1, |value|))\n", worst);
}
END_TEST

START_TEST(test_softplus_sigmoid)
{
    ck_assert(lf_softplus(800) == 800);
    ck_assert(lf_softplus(-800) >= 0 && lf_softplus(-800) < 1e-300);
    ck_assert(lf_sigmoid(800) == 1);
    ck_assert(lf_sigmoid(-800) >= 0 && lf_sigmoid(-800) < 1e-300);
    ck_assert(lf_sigmoid(0) == 0.5);
    LF_ASSERT_CLOSE(lf_softplus(0), (double)LN2_L, 0, 2e-16);
    double worst_sp = 0, worst_sg = 0, worst_sym = 0;
    lf_test_rng r = {5};
    for (int i = 0; i < 4000; i++) {
        double x = i < 2000 ? lf_test_range(&r, -40, 40) : lf_test_range(&r, -700, 700);
        long double lx = x;
        long double sp = log1pl(expl(lx)), sg = 1 / (1 + expl(-lx));
        double e1 = rel_err(lf_softplus(x), sp), e2 = rel_err(lf_sigmoid(x), sg);
        worst_sp = fmax(worst_sp, e1);
        worst_sg = fmax(worst_sg, e2);
        ck_assert_msg(e1 <= ref_tol(4e-16), "softplus(%.17g) = %.17g vs %.17Lg", x, lf_softplus(x), sp);
        ck_assert_msg(e2 <= ref_tol(1e-15), "sigmoid(%.17g) = %.17g vs %.17Lg", x, lf_sigmoid(x), sg);
        /* symmetry: sigmoid(x) + sigmoid(-x) = 1, softplus(x) - softplus(-x) = x */
        double sym = fabs(lf_sigmoid(x) + lf_sigmoid(-x) - 1);
        worst_sym = fmax(worst_sym, sym);
        ck_assert_msg(sym <= 2.3e-16, "sigmoid(%g) + sigmoid(-%g) - 1 = %g", x, x, sym);
        LF_ASSERT_CLOSE(lf_softplus(x) - lf_softplus(-x), x, 1e-15, 1e-15);
    }
    fprintf(stderr, "# softplus: max relative error %.3g; sigmoid: %.3g, symmetry %.3g\n", worst_sp, worst_sg,
            worst_sym);
}
END_TEST

/* log(softplus(x)) and its derivative against long double over [-700, 700]
 * (the switch at -36 included); the derivative also by central
 * differences of the long double reference. */
START_TEST(test_log_softplus)
{
    double worst_d = 0;
    lf_test_rng r = {11};
    for (int i = 0; i < 4000; i++) {
        double x = i < 1000 ? lf_test_range(&r, -40, -32) : i < 2500 ? lf_test_range(&r, -30, 30)
                                                                     : lf_test_range(&r, -700, 700);
        long double lx = x, sp = log1pl(expl(lx)), ref = logl(sp);
        long double dref = 1 / (1 + expl(-lx)) / sp, h = 1e-6L * (1 + fabsl(lx));
        long double fd = (logl(log1pl(expl(lx + h))) - logl(log1pl(expl(lx - h)))) / (2 * h);
        double e = rel_err(lf_log_softplus(x), ref), ed = rel_err(lf_log_softplus_deriv(x), dref);
        worst_d = fmax(worst_d, ed);
        /* near softplus = 1 (x = 0.54) the log is near 0: an absolute error of the log's rounding */
        ck_assert_msg(e <= ref_tol(1e-15) || fabsl(lf_log_softplus(x) - ref) <= 2.3e-16L,
                      "log_softplus(%.17g) = %.17g vs %.17Lg", x, lf_log_softplus(x), ref);
        ck_assert_msg(ed <= ref_tol(2e-15), "log_softplus'(%.17g) = %.17g vs %.17Lg", x,
                      lf_log_softplus_deriv(x), dref);
        LF_ASSERT_CLOSE(lf_log_softplus_deriv(x), (double)fd, 1e-9, 1e-6);
    }
    ck_assert(lf_log_softplus(-800) == -800);
    ck_assert(lf_log_softplus_deriv(-800) == 1);
    fprintf(stderr, "# log_softplus: largest relative error of the derivative %.3g\n", worst_d);
}
END_TEST

/* ---- digamma and trigamma ---------------------------------------------- */

static double psi_err(double got, long double ref)
{
    return (double)(fabsl(got - ref) / fmaxl(1, fabsl(ref)));
}

START_TEST(test_psi_known_values)
{
    struct { double x; long double psi, psi1; } known[] = {
        {1.0, -EULER_L, PI_L * PI_L / 6},
        {0.5, -EULER_L - 2 * LN2_L, PI_L * PI_L / 2},
        {0.25, -EULER_L - PI_L / 2 - 3 * LN2_L, PI_L * PI_L + 8 * CATALAN_L},
        {0.75, -EULER_L + PI_L / 2 - 3 * LN2_L, PI_L * PI_L - 8 * CATALAN_L},
    };
    double worst = 0, worst1 = 0;
    for (int i = 0; i < 4; i++) {
        worst = fmax(worst, psi_err(lf_digamma(known[i].x), known[i].psi));
        worst1 = fmax(worst1, psi_err(lf_trigamma(known[i].x), known[i].psi1));
    }
    /* psi(n) = -gamma + H_{n-1}, psi'(n) = pi^2/6 - sum_{k<n} 1/k^2 */
    long double h = 0, s2 = 0;
    for (int n = 1; n <= 60; n++) {
        worst = fmax(worst, psi_err(lf_digamma(n), -EULER_L + h));
        worst1 = fmax(worst1, psi_err(lf_trigamma(n), PI_L * PI_L / 6 - s2));
        h += 1.0L / n;
        s2 += 1.0L / ((long double)n * n);
    }
    /* tiny and huge arguments: psi(x) = -1/x - gamma + (pi^2/6) x + O(x^2),
     * psi'(x) = 1/x^2 + pi^2/6 + O(x); asymptotic forms for large x */
    long double xs = 1e-9; /* the double nearest 1e-9 */
    worst = fmax(worst, psi_err(lf_digamma(1e-9), -1 / xs - EULER_L + PI_L * PI_L / 6 * xs));
    worst1 = fmax(worst1, rel_err(lf_trigamma(1e-9), 1 / (xs * xs) + PI_L * PI_L / 6));
    long double xl = 1e6;
    worst = fmax(worst, psi_err(lf_digamma(1e6), logl(xl) - 1 / (2 * xl) - 1 / (12 * xl * xl)));
    worst1 = fmax(worst1, rel_err(lf_trigamma(1e6), 1 / xl + 1 / (2 * xl * xl) + 1 / (6 * xl * xl * xl)));
    fprintf(stderr, "# digamma: max error %.3g at known values; trigamma: %.3g (relative to max(1, |value|))\n",
            worst, worst1);
    ck_assert_msg(worst <= ref_tol(2e-15), "digamma error %g", worst);
    ck_assert_msg(worst1 <= ref_tol(2e-15), "trigamma error %g", worst1);
    ck_assert(isnan(lf_digamma(0)) && isnan(lf_digamma(-1.5)) && isnan(lf_digamma(NAN)));
    ck_assert(isnan(lf_trigamma(0)) && isnan(lf_trigamma(-1.5)) && isnan(lf_trigamma(NAN)));
    ck_assert(lf_digamma(INFINITY) == INFINITY && lf_trigamma(INFINITY) == 0);
}
END_TEST

/* psi(x + 1) = psi(x) + 1/x, psi'(x + 1) = psi'(x) - 1/x^2 at random x
 * (including pairs that straddle the shift limit), psi against central
 * differences of lgammal and psi' against central differences of psi. */
START_TEST(test_psi_recurrence_and_derivatives)
{
    lf_test_rng r = {2024};
    double worst_rec = 0, worst_rec1 = 0, worst_lg = 0, worst_fd = 0;
    for (int i = 0; i < 3000; i++) {
        double x = exp(lf_test_range(&r, log(1e-3), log(60.0)));
        double p0 = lf_digamma(x), p1 = lf_digamma(x + 1);
        /* x + 1 is rounded: the exact step is (x+1) - x */
        double dx = (x + 1) - x;
        double rhs = p0 + 1 / x + (dx - 1) * lf_trigamma(x + 1);
        double e = fabs(p1 - rhs) / fmax(1.0, fmax(fabs(p1), 1 / x));
        worst_rec = fmax(worst_rec, e);
        ck_assert_msg(e <= 1e-15, "psi(%.17g + 1) - psi(x) - 1/x: %g", x, e);
        double q0 = lf_trigamma(x), q1 = lf_trigamma(x + 1);
        double e1 = fabs(q1 - (q0 - 1 / (x * x))) / fmax(1.0, q0);
        worst_rec1 = fmax(worst_rec1, e1);
        ck_assert_msg(e1 <= 1e-15, "psi'(%.17g + 1) - psi'(x) + 1/x^2: %g", x, e1);

        if (x >= 0.05) {
            long double lx = x, hl = 1e-3L * lx;
            long double lg = (-lgammal(lx + 2 * hl) + 8 * lgammal(lx + hl) - 8 * lgammal(lx - hl) +
                              lgammal(lx - 2 * hl)) / (12 * hl);
            double elg = psi_err(p0, lg);
            worst_lg = fmax(worst_lg, elg);
            ck_assert_msg(elg <= (long_double_is_extended() ? 1e-10 : 1e-8), "psi(%.17g) = %.17g, lgamma differences %.17Lg", x, p0, lg);
        }
        double h = 1e-3 * x;
        double fd = fd5(lf_digamma, x, h);
        double efd = fabs(fd - q0) / q0;
        worst_fd = fmax(worst_fd, efd);
        ck_assert_msg(efd <= 1e-9, "psi'(%.17g) = %.17g, differences of psi %.17g", x, q0, fd);
    }
    /* the switch to the asymptotic series */
    double lo = nextafter(10.0, 0), hi = nextafter(10.0, 20);
    double jump = fabs(lf_digamma(hi) - lf_digamma(lo)) / lf_digamma(10.0);
    double jump1 = fabs(lf_trigamma(hi) - lf_trigamma(lo)) / lf_trigamma(10.0);
    ck_assert_msg(jump <= 1e-15 && jump1 <= 1e-15, "jumps at 10: %g %g", jump, jump1);
    fprintf(stderr, "# digamma: recurrence %.3g, vs lgamma differences %.3g, jump at 10 %.3g; trigamma: "
            "recurrence %.3g, vs differences of digamma %.3g, jump at 10 %.3g\n", worst_rec, worst_lg, jump,
            worst_rec1, worst_fd, jump1);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("special");
    TCase *tc = tcase_create("special");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_log_e_reference);
    tcase_add_test(tc, test_log_e_deriv);
    tcase_add_test(tc, test_log_e_continuity);
    tcase_add_test(tc, test_log1mexp);
    tcase_add_test(tc, test_logaddexp);
    tcase_add_test(tc, test_softplus_sigmoid);
    tcase_add_test(tc, test_log_softplus);
    tcase_add_test(tc, test_psi_known_values);
    tcase_add_test(tc, test_psi_recurrence_and_derivatives);
    suite_add_tcase(s, tc);
    return s;
}
