/* The paper's schedule math against independent computations:
 * Monte-Carlo frequencies of states sampled with the inverse-CDF samplers,
 * tanh-sinh quadrature of the defining integrals (with the integrands
 * written here from pow/log1p, not from the library), finite differences of
 * every gradient, a Kolmogorov-Smirnov test of the truncated sampler, and
 * the closed forms of the linear family. Each test prints its largest error
 * as a TAP comment. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lflex/schedule_math.h"
#include "tests/common/testutil.h"

static const lf_token_state all_states[3] = {LF_STATE_DROPPED, LF_STATE_MASKED, LF_STATE_CLEAN};
static const char *const state_names[3] = {"dropped", "masked", "clean"};

/* ---- tanh-sinh quadrature on [0, T] --------------------------------------
 * s = T x, x = 1/(1 + e^-z), z = pi sinh(tau): the nodes cluster doubly
 * exponentially at both ends, so integrable end-point singularities (s^(a-1)
 * with a < 1, log terms) and boundary layers converge fast. The integrand gets
 * s and T - s, both computed without cancellation. Halves the step until two
 * successive estimates agree to rtol. */
typedef double (*integrand_fn)(double s, double s_rest, const void *ctx);

static double ts_point(integrand_fn f, const void *ctx, double T, double tau)
{
    double z = M_PI * sinh(tau);
    double x = 1 / (1 + exp(-z)), xc = 1 / (1 + exp(z));
    double w = M_PI * cosh(tau) * x * xc;
    if (w == 0)
        return 0;
    return T * w * f(T * x, T * xc, ctx);
}

static double integrate(integrand_fn f, const void *ctx, double T, double rtol)
{
    /* far enough that the weighted integrand is negligible at the cut even
     * for s^-0.7 (x reaches ~1e-290; beyond, the weight underflows to 0) */
    const double tau_max = 6.0;
    double h = 0.5;
    double sum = ts_point(f, ctx, T, 0);
    for (int k = 1; k * h <= tau_max; k++)
        sum += ts_point(f, ctx, T, k * h) + ts_point(f, ctx, T, -k * h);
    double est = h * sum;
    for (int level = 1; level <= 14; level++) {
        h /= 2;
        for (int k = 1; k * h <= tau_max; k += 2)
            sum += ts_point(f, ctx, T, k * h) + ts_point(f, ctx, T, -k * h);
        double next = h * sum;
        if (level >= 3 && fabs(next - est) <= rtol * fabs(next))
            return next;
        est = next;
    }
    ck_abort_msg("quadrature did not converge (estimate %.17g)", est);
    return NAN;
}

typedef struct { double t, a, b, c; } sched_case;

/* The integrands get a node as s and s_rest = T - s, both exact to rounding.
 * Near s = 1 everything is computed from 1 - s = (1 - T) + s_rest (1 - T is
 * exact for T >= 1/2): computing 1 - s^a from a rounded s would put noise of
 * ~1e-16 / (1 - s^a) into the integrand, far above the target accuracy
 * near t = 1 - 1e-4. */
static double node_y(double s, double s_rest, double T, double a)
{
    if (s < 0.5)
        return 1 - pow(s, a);
    return -expm1(a * log1p(-((1 - T) + s_rest)));
}

static double node_log_y(double s, double s_rest, double T, double a)
{
    return s < 0.5 ? log1p(-pow(s, a)) : log(node_y(s, s_rest, T, a));
}

/* density of T_in at a node, written out directly */
static double node_pdf(double s, double s_rest, double T, double a, double b)
{
    return a * b * pow(s, a - 1) * exp((b - 1) * node_log_y(s, s_rest, T, a));
}

/* log P(T_um > t | T_in = s) = c log((1 - t^a) / (1 - s^a)): a difference of
 * log1p for small t (the result is small and must keep its relative
 * precision), the log of a ratio of accurate values otherwise */
static double node_log_stay(double s, double s_rest, const sched_case *k)
{
    if (k->t < 0.5)
        return k->c * (log1p(-pow(k->t, k->a)) - log1p(-pow(s, k->a)));
    return k->c * log(node_y(k->t, 0, k->t, k->a) / node_y(s, s_rest, k->t, k->a));
}

/* P_mask(t) = int_0^t f_in(s) P(T_um > t | T_in = s) ds */
static double mask_integrand(double s, double s_rest, const void *p)
{
    const sched_case *k = p;
    return node_pdf(s, s_rest, k->t, k->a, k->b) * exp(node_log_stay(s, s_rest, k));
}

/* P_clean(t) = int_0^t f_in(s) (1 - P(T_um > t | T_in = s)) ds */
static double clean_integrand(double s, double s_rest, const void *p)
{
    const sched_case *k = p;
    return node_pdf(s, s_rest, k->t, k->a, k->b) * -expm1(node_log_stay(s, s_rest, k));
}

/* ---- Monte-Carlo frequencies ---------------------------------------------- */

/* Each count must be within 5 binomial standard deviations (+3 counts of
 * slack for probabilities near 0 or 1) of n p: a two-sided level of about
 * 6e-7 per check under the normal approximation. The seeds are fixed, so the
 * test is deterministic. */
START_TEST(test_state_frequencies)
{
    const sched_case cases[] = {
        {0.5, 1, 1, 1},                 /* linear */
        {0.3, 1, 2.5, 2.5},             /* b = c */
        {0.5, 0.5, 3 * (1 + 1e-7), 3},  /* b = c (1 + 1e-7) */
        {0.7, 2, 0.2, 5},               /* b << c */
        {0.4, 2, 20, 0.7},              /* b >> c */
        {0.01, 1, 1.5, 1},
        {0.01, 0.5, 2, 1},
        {0.01, 2, 30, 30},
        {0.99, 0.5, 2, 1},
        {0.99, 2, 1, 1},
        {0.99, 1, 0.3, 4},
        {0.6, 0.5, 0.05, 40},
    };
    const int n = 200000;
    double worst_z = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const sched_case *p = &cases[k];
        lf_test_rng r = {1000 + k};
        long count[3] = {0, 0, 0};
        for (int i = 0; i < n; i++) {
            double u = lf_test_uniform(&r), v = lf_test_uniform(&r);
            double t_in = lf_kuma_inv_cdf(u, p->a, p->b);
            double t_um = lf_kuma_sample_t_um(t_in, v, p->a, p->c);
            count[p->t < t_in ? 0 : p->t < t_um ? 1 : 2]++;
        }
        double total = 0;
        for (int s = 0; s < 3; s++) {
            double prob = exp(lf_state_log_prob(all_states[s], p->t, p->a, p->b, p->c, NULL, NULL));
            total += prob;
            double sd = sqrt(n * prob * (1 - prob));
            double dev = fabs(count[s] - n * prob);
            if (sd > 0)
                worst_z = fmax(worst_z, dev / sd);
            ck_assert_msg(dev <= 5 * sd + 3, "case %zu (t %g a %g b %g c %g) %s: %ld of %d, expected %.1f (sd %.1f)",
                          k, p->t, p->a, p->b, p->c, state_names[s], count[s], n, n * prob, sd);
        }
        LF_ASSERT_CLOSE(total, 1.0, 1e-12, 0);
    }
    fprintf(stderr, "# state frequencies: largest deviation %.2f standard deviations (%d draws per case)\n",
            worst_z, n);
}
END_TEST

/* The three probabilities sum to 1 and are valid log-probabilities over a
 * wide random range, the end points included. */
START_TEST(test_states_sum_to_one)
{
    lf_test_rng r = {77};
    double worst = 0;
    for (int i = 0; i < 20000; i++) {
        double a = exp(lf_test_range(&r, log(0.2), log(5.0)));
        double b = exp(lf_test_range(&r, log(0.01), log(200.0)));
        double c = i % 4 == 0 ? b : i % 4 == 1 ? b * (1 + lf_test_range(&r, -1e-6, 1e-6))
                                               : exp(lf_test_range(&r, log(0.01), log(200.0)));
        double t = i % 3 == 0 ? lf_test_range(&r, 1e-4, 1 - 1e-4)
                              : i % 3 == 1 ? exp(lf_test_range(&r, log(1e-12), log(0.5)))
                                           : 1 - exp(lf_test_range(&r, log(1e-12), log(0.5)));
        double total = 0;
        for (int s = 0; s < 3; s++) {
            double gb, gc;
            double lp = lf_state_log_prob(all_states[s], t, a, b, c, &gb, &gc);
            ck_assert_msg(lp <= 0 && !isnan(lp) && isfinite(gb) && isfinite(gc),
                          "%s at t %.17g a %g b %g c %g: %g (%g, %g)", state_names[s], t, a, b, c, lp, gb, gc);
            total += exp(lp);
        }
        worst = fmax(worst, fabs(total - 1));
        ck_assert_msg(fabs(total - 1) <= 1e-12, "sum %.17g at t %.17g a %g b %g c %g", total, t, a, b, c);
    }
    /* the end points of [0, 1] give the limits */
    double gb, gc;
    ck_assert(lf_state_log_prob(LF_STATE_DROPPED, 0, 2, 3, 1, &gb, &gc) == 0 && gb == 0 && gc == 0);
    ck_assert(lf_state_log_prob(LF_STATE_MASKED, 0, 2, 3, 1, &gb, &gc) == -INFINITY);
    LF_ASSERT_CLOSE(gb, 1.0 / 3, 0, 1e-15);
    ck_assert(lf_state_log_prob(LF_STATE_CLEAN, 0, 2, 3, 1, &gb, &gc) == -INFINITY);
    LF_ASSERT_CLOSE(gb, 1.0 / 3, 0, 1e-15);
    LF_ASSERT_CLOSE(gc, 1.0, 0, 1e-15);
    for (int s = 0; s < 3; s++) {
        double lp = lf_state_log_prob(all_states[s], 1, 2, 3, 3, &gb, &gc);
        ck_assert(lp == (s == 2 ? 0 : -INFINITY) && gb == 0 && gc == 0);
    }
    fprintf(stderr, "# state probabilities: largest |sum - 1| %.3g\n", worst);
}
END_TEST

/* P_mask and P_clean against quadrature of their defining integrals. */
START_TEST(test_states_quadrature)
{
    const double as[] = {0.5, 1, 2};
    const double bs[] = {0.3, 1, 4};
    const double ts[] = {1e-4, 0.01, 0.3, 0.7, 0.99, 1 - 1e-4};
    double worst_m = 0, worst_c = 0, worst_d = 0;
    int n_cases = 0;
    for (int ia = 0; ia < 3; ia++)
        for (int ib = 0; ib < 3; ib++)
            for (int ic = 0; ic < 5; ic++)
                for (int it = 0; it < 7; it++) {
                    double a = as[ia], b = bs[ib];
                    double c = ic < 3 ? bs[ic] : ic == 3 ? b * (1 + 1e-7) : 25;
                    /* the last t sits at the switch of the clean state's series */
                    double t = it < 6 ? ts[it] : pow(-expm1(-1 / (b + c)), 1 / a);
                    sched_case k = {t, a, b, c};
                    double qm = integrate(mask_integrand, &k, t, 1e-13);
                    double qc = integrate(clean_integrand, &k, t, 1e-13);
                    double pm = exp(lf_state_log_prob(LF_STATE_MASKED, t, a, b, c, NULL, NULL));
                    double pc = exp(lf_state_log_prob(LF_STATE_CLEAN, t, a, b, c, NULL, NULL));
                    double pd = exp(lf_state_log_prob(LF_STATE_DROPPED, t, a, b, c, NULL, NULL));
                    double em = fabs(pm - qm) / qm, ec = fabs(pc - qc) / qc;
                    double ed = fabs(pd - pow(node_y(t, 0, t, a), b)) / pd;
                    worst_m = fmax(worst_m, em);
                    worst_c = fmax(worst_c, ec);
                    worst_d = fmax(worst_d, ed);
                    ck_assert_msg(em <= 1e-9 && ec <= 1e-9 && ed <= 1e-13,
                                  "t %.17g a %g b %g c %g: mask %.17g vs %.17g, clean %.17g vs %.17g, drop %g", t,
                                  a, b, c, pm, qm, pc, qc, ed);
                    n_cases++;
                }
    fprintf(stderr, "# quadrature (%d cases): largest relative error P_mask %.3g, P_clean %.3g, P_drop %.3g\n",
            n_cases, worst_m, worst_c, worst_d);
}
END_TEST

/* Whether long double carries more digits than double at run time (not
 * under valgrind, which computes x87 arithmetic in double precision). */
static int long_double_is_extended(void)
{
    volatile long double one = 1, eps = LDBL_EPSILON;
    return LDBL_MANT_DIG > DBL_MANT_DIG && one + eps != one;
}

/* log P_mask to full precision when b and c are far apart, where a naive
 * c l + log e(d l) cancels near t = 1 (|c l| ~ 1e4 for c = 1000):
 * P_mask = b (y^lo - y^hi) / (hi - lo) = b y^lo (1 - y^(hi-lo)) / (hi - lo),
 * evaluated in long double with 1 - t exact. */
START_TEST(test_mask_far_apart_shapes)
{
    const double ts[] = {0.3, 0.5, 0.99, 1 - 1e-4, 1 - 1e-8, 1 - 1e-12};
    const double as[] = {0.5, 1, 2};
    const double bc[][2] = {{1.001, 1000}, {1000, 1.001}, {0.3, 4}, {4, 0.3}, {100, 1}, {1, 100}, {0.01, 50}};
    double tol = long_double_is_extended() ? 1e-14 : 1e-12;
    double worst = 0;
    for (int it = 0; it < 6; it++)
        for (int ia = 0; ia < 3; ia++)
            for (size_t ip = 0; ip < sizeof bc / sizeof bc[0]; ip++) {
                double t = ts[it], a = as[ia], b = bc[ip][0], c = bc[ip][1];
                long double l = logl(-expm1l(a * log1pl(-(long double)(1 - t))));
                long double lo = b < c ? b : c, hi = b < c ? c : b;
                long double ref = logl(b) + lo * l + log1pl(-expl((hi - lo) * l)) - logl(hi - lo);
                double lp = lf_state_log_prob(LF_STATE_MASKED, t, a, b, c, NULL, NULL);
                double e = (double)(fabsl(lp - ref) / fmaxl(1, fabsl(ref)));
                worst = fmax(worst, e);
                ck_assert_msg(e <= tol, "log P_mask at t %.17g a %g b %g c %g: %.17g vs %.17Lg", t, a, b, c, lp, ref);
            }
    fprintf(stderr, "# masked state, b and c far apart: largest error %.3g (relative to max(1, |log P|))\n", worst);
}
END_TEST

/* fourth-order central difference of one state's log-probability in b or c */
static double fd_log_prob(lf_token_state s, double t, double a, double b, double c, int wrt_c)
{
    double x = wrt_c ? c : b, h = 1e-3 * x, f[4];
    const double off[4] = {2, 1, -1, -2};
    for (int i = 0; i < 4; i++) {
        double xb = wrt_c ? b : x + off[i] * h, xc = wrt_c ? x + off[i] * h : c;
        f[i] = lf_state_log_prob(s, t, a, xb, xc, NULL, NULL);
    }
    return (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
}

START_TEST(test_state_gradients)
{
    const double as[] = {0.5, 1, 2};
    const double ts[] = {1e-4, 0.01, 0.2, 0.5, 0.8, 0.99, 1 - 1e-4};
    /* (b, c) pairs: b = c (the differences straddle b = c), b near c, b << c,
     * b >> c, moderate ratios */
    const double bc[][2] = {{1, 1}, {3, 3}, {0.2, 0.2}, {2 * (1 + 1e-7), 2}, {1, 1 + 1e-9},
                            {1.5, 1.52}, {0.05, 20}, {40, 1}, {5, 0.5}, {0.7, 2.5}};
    double worst = 0;
    int n_checks = 0;
    for (int ia = 0; ia < 3; ia++)
        for (int it = 0; it < 7; it++)
            for (size_t ip = 0; ip < sizeof bc / sizeof bc[0]; ip++)
                for (int s = 0; s < 3; s++) {
                    double a = as[ia], t = ts[it], b = bc[ip][0], c = bc[ip][1];
                    double gb, gc;
                    double lp = lf_state_log_prob(all_states[s], t, a, b, c, &gb, &gc);
                    for (int wrt_c = 0; wrt_c < 2; wrt_c++) {
                        double an = wrt_c ? gc : gb, x = wrt_c ? c : b;
                        double fd = fd_log_prob(all_states[s], t, a, b, c, wrt_c);
                        /* relative 1e-6, with a floor at the rounding noise of the difference */
                        double floor = 1e-10 * (1 + fabs(lp)) / x;
                        double err = fabs(an - fd) / (fabs(fd) + floor / 1e-6);
                        worst = fmax(worst, err);
                        ck_assert_msg(fabs(an - fd) <= 1e-6 * fabs(fd) + floor,
                                      "d/d%s log P_%s at t %.17g a %g b %.17g c %.17g: %.17g, differences %.17g",
                                      wrt_c ? "c" : "b", state_names[s], t, a, b, c, an, fd);
                        n_checks++;
                    }
                }
    fprintf(stderr, "# state gradients: largest relative error vs finite differences %.3g (relative to |fd| + "
            "floor / 1e-6; %d checks)\n", worst, n_checks);
}
END_TEST

/* The clean state switches from its series to the direct formula at
 * (b + c) w = 1: values and gradients agree on the two sides. The two points
 * are made from w = (1 -+ 1e-14) / (b + c), far apart compared with the
 * rounding of w recomputed from t, so they lie on different sides, and close
 * enough that the true change is ~1e-13. (b + c >= 0.4 keeps the switch at
 * t where t resolves w this finely.) */
START_TEST(test_clean_switch_continuity)
{
    const double as[] = {0.5, 1, 2};
    const double bc[][2] = {{1, 1}, {0.3, 4}, {4, 0.3}, {20, 20}, {2 * (1 + 1e-7), 2}, {0.1, 0.3}};
    double worst = 0;
    for (int ia = 0; ia < 3; ia++)
        for (size_t ip = 0; ip < sizeof bc / sizeof bc[0]; ip++) {
            double a = as[ia], b = bc[ip][0], c = bc[ip][1];
            double t_lo = pow(-expm1(-(1 - 1e-14) / (b + c)), 1 / a);
            double t_hi = pow(-expm1(-(1 + 1e-14) / (b + c)), 1 / a);
            double lo[3], hi[3];
            lo[0] = lf_state_log_prob(LF_STATE_CLEAN, t_lo, a, b, c, &lo[1], &lo[2]);
            hi[0] = lf_state_log_prob(LF_STATE_CLEAN, t_hi, a, b, c, &hi[1], &hi[2]);
            for (int j = 0; j < 3; j++) {
                double jump = fabs(hi[j] - lo[j]) / fmax(1.0, fabs(lo[j]));
                worst = fmax(worst, jump);
                ck_assert_msg(jump <= 1e-12, "a %g b %g c %g: %s jumps from %.17g to %.17g", a, b, c,
                              j == 0 ? "value" : j == 1 ? "d/db" : "d/dc", lo[j], hi[j]);
            }
        }
    fprintf(stderr, "# clean state: largest jump across the series switch %.3g\n", worst);
}
END_TEST

/* ---- CDF, density, hazard, inverse CDF ---------------------------------------- */

START_TEST(test_cdf_pdf_hazard_inverse)
{
    const double as[] = {0.5, 1, 2, 3.5};
    const double bs[] = {0.5, 1, 3};
    double w_cdf = 0, w_inv = 0, w_inv2 = 0, w_pdf = 0, w_haz = 0;
    for (int ia = 0; ia < 4; ia++)
        for (int ib = 0; ib < 3; ib++) {
            double a = as[ia], b = bs[ib];
            for (int i = 1; i < 100; i++) {
                double t = i / 100.0;
                double F = lf_kuma_cdf(t, a, b);
                /* 1 - (1 - t^a)^b, arranged to keep the relative precision of small F */
                double cdf_ref = -expm1(b * node_log_y(t, 1 - t, 1.0, a));
                double e = fabs(F - cdf_ref) / cdf_ref;
                w_cdf = fmax(w_cdf, e);
                ck_assert_msg(e <= 1e-14, "cdf(%g; %g, %g) = %.17g vs %.17g", t, a, b, F, cdf_ref);
                /* the density is the derivative of the CDF */
                double h = 1e-3 * fmin(t, 1 - t);
                double fd = (-lf_kuma_cdf(t + 2 * h, a, b) + 8 * lf_kuma_cdf(t + h, a, b) -
                             8 * lf_kuma_cdf(t - h, a, b) + lf_kuma_cdf(t - 2 * h, a, b)) / (12 * h);
                double f = lf_kuma_pdf(t, a, b);
                /* truncation ~1e-12 relative; rounding of F ~1e-16 / h absolute */
                double tol_pdf = 1e-8 * f + 2e-16 / h;
                w_pdf = fmax(w_pdf, fabs(fd - f) / tol_pdf);
                ck_assert_msg(fabs(fd - f) <= tol_pdf, "pdf(%g; %g, %g) = %.17g, differences %.17g",
                              t, a, b, f, fd);
                /* the hazard is b g_a(t) = f / (1 - F), 1 - F written out */
                if (t <= 0.95) {
                    double haz = b * lf_base_hazard(t, a), ref = f / pow(1 - pow(t, a), b);
                    w_haz = fmax(w_haz, fabs(haz - ref) / ref);
                    ck_assert_msg(fabs(haz - ref) <= 1e-12 * ref, "hazard %.17g vs %.17g", haz, ref);
                }
                /* inverse CDF both ways */
                double t2 = lf_kuma_inv_cdf(F, a, b);
                w_inv = fmax(w_inv, fabs(t2 - t) / t);
                ck_assert_msg(fabs(t2 - t) <= 1e-10 * t, "inv_cdf(cdf(%g)) = %.17g (a %g b %g)", t, t2, a, b);
            }
            for (int i = 0; i <= 1000; i++) {
                double u = 1e-3 + i * (1 - 2e-3) / 1000;
                double F = lf_kuma_cdf(lf_kuma_inv_cdf(u, a, b), a, b);
                w_inv2 = fmax(w_inv2, fabs(F - u));
                ck_assert_msg(fabs(F - u) <= 1e-12, "cdf(inv_cdf(%.17g)) = %.17g (a %g b %g)", u, F, a, b);
            }
        }
    /* end points and the domain policy */
    ck_assert(lf_kuma_cdf(0, 2, 3) == 0 && lf_kuma_cdf(1, 2, 3) == 1);
    ck_assert(lf_kuma_inv_cdf(0, 2, 3) == 0 && lf_kuma_inv_cdf(1, 2, 3) == 1);
    ck_assert(lf_base_hazard(0, 1) == 1 && lf_base_hazard(0, 2) == 0 && lf_base_hazard(0, 0.5) == INFINITY);
    ck_assert(lf_base_hazard(1, 2) == INFINITY);
    ck_assert(lf_kuma_pdf(0, 0.5, 2) == INFINITY && lf_kuma_pdf(1, 2, 0.5) == INFINITY);
    ck_assert(lf_kuma_pdf(0, 2, 2) == 0 && lf_kuma_pdf(1, 2, 2) == 0);
    const double bad[][3] = {{-0.1, 1, 1}, {1.1, 1, 1}, {0.5, 0, 1}, {0.5, 1, -1}, {NAN, 1, 1},
                             {0.5, NAN, 1}, {0.5, 1, INFINITY}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double t = bad[i][0], a = bad[i][1], b = bad[i][2];
        ck_assert(isnan(lf_kuma_cdf(t, a, b)) && isnan(lf_kuma_pdf(t, a, b)) && isnan(lf_kuma_inv_cdf(t, a, b)));
        ck_assert(isnan(lf_kuma_sample_t_um(t, 0.5, a, b)) && isnan(lf_kuma_sample_t_um(0.5, t, a, b)));
        double gb = 0, gc = 0;
        for (int s = 0; s < 3; s++) {
            ck_assert(isnan(lf_state_log_prob(all_states[s], t, a, b, 1, &gb, &gc)) && isnan(gb) && isnan(gc));
            ck_assert(isnan(lf_state_log_prob(all_states[s], t, a, 1, b, &gb, &gc)) && isnan(gb) && isnan(gc));
        }
    }
    ck_assert(isnan(lf_base_hazard(-0.1, 1)) && isnan(lf_base_hazard(0.5, 0)));
    ck_assert(isnan(lf_state_log_prob((lf_token_state)3, 0.5, 1, 1, 1, NULL, NULL)));
    ck_assert(isnan(lf_kuma_kl_uniform(0, 1, NULL)) && isnan(lf_kuma_expected_time(1, -1)));
    fprintf(stderr, "# cdf vs direct formula %.3g; pdf vs differences of cdf %.3g of the tolerance; hazard vs pdf/(1-F) %.3g; "
            "inv_cdf(cdf(t)) %.3g relative; cdf(inv_cdf(u)) %.3g absolute\n", w_cdf, w_pdf, w_haz, w_inv,
            w_inv2);
}
END_TEST

/* ---- the truncated sampler ------------------------------------------------- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* T_um >= t_in always; for fixed t_in its law is F_um truncated to [t_in, 1]:
 * G(T) = 1 - ((1 - T^a)/(1 - t_in^a))^c must be uniform. One-sample
 * Kolmogorov-Smirnov test at level 0.001 (sqrt(n) D < 1.9495), n = 20000. */
START_TEST(test_truncated_sampler)
{
    const double cases[][3] = {{0.0, 1, 1}, {0.3, 1, 1}, {0.5, 2, 0.3}, {0.05, 0.5, 5}, {0.9, 2, 2}, {0.2, 0.5, 40}};
    enum { N = 20000 };
    static double g[N];
    double worst_ks = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double t_in = cases[k][0], a = cases[k][1], c = cases[k][2];
        lf_test_rng r = {500 + k};
        double ly_in = log1p(-pow(t_in, a));
        for (int i = 0; i < N; i++) {
            double T = lf_kuma_sample_t_um(t_in, lf_test_uniform(&r), a, c);
            ck_assert(T >= t_in && T <= 1);
            g[i] = -expm1(c * (log1p(-pow(T, a)) - ly_in));
        }
        qsort(g, N, sizeof g[0], cmp_double);
        double D = 0;
        for (int i = 0; i < N; i++)
            D = fmax(D, fmax((i + 1.0) / N - g[i], g[i] - (double)i / N));
        worst_ks = fmax(worst_ks, sqrt(N) * D);
        ck_assert_msg(sqrt(N) * D < 1.9495, "t_in %g a %g c %g: KS statistic sqrt(n) D = %g", t_in, a, c,
                      sqrt(N) * D);
    }
    /* never before t_in, also for v = 0 and t_in at the ends */
    lf_test_rng r = {9};
    for (int i = 0; i < 100000; i++) {
        double t_in = i % 2 ? lf_test_uniform(&r) : 1 - exp(lf_test_range(&r, -37, 0));
        double v = i % 10 == 0 ? 0 : lf_test_uniform(&r);
        double a = exp(lf_test_range(&r, -2, 2)), c = exp(lf_test_range(&r, -4, 4));
        double T = lf_kuma_sample_t_um(t_in, v, a, c);
        ck_assert_msg(T >= t_in && T <= 1, "T_um %.17g < t_in %.17g", T, t_in);
    }
    ck_assert(lf_kuma_sample_t_um(1, 0.5, 2, 3) == 1 && lf_kuma_sample_t_um(0.5, 1, 2, 3) == 1);
    fprintf(stderr, "# truncated sampler: largest KS statistic sqrt(n) D = %.3f (critical 1.9495)\n", worst_ks);
}
END_TEST

/* ---- regulariser terms -------------------------------------------------------- */

typedef struct { double a, b; } kuma_params;

/* f log f of Kumaraswamy(a, b) */
static double kl_integrand(double s, double s_rest, const void *p)
{
    const kuma_params *k = p;
    double ly = node_log_y(s, s_rest, 1.0, k->a);
    double lf = log(k->a * k->b) + (k->a - 1) * log(s) + (k->b - 1) * ly;
    return exp(lf) * lf;
}

/* 1 - F = (1 - s^a)^b */
static double survival_integrand(double s, double s_rest, const void *p)
{
    const kuma_params *k = p;
    return exp(k->b * node_log_y(s, s_rest, 1.0, k->a));
}

START_TEST(test_kl_uniform)
{
    const double as[] = {0.3, 0.5, 1, 2, 5};
    const double bs[] = {0.3, 0.5, 1, 2, 5, 30};
    double worst_q = 0, worst_fd = 0, worst_fd_abs = 0;
    for (int ia = 0; ia < 5; ia++)
        for (int ib = 0; ib < 6; ib++) {
            kuma_params k = {as[ia], bs[ib]};
            double db;
            double kl = lf_kuma_kl_uniform(k.a, k.b, &db);
            double q = integrate(kl_integrand, &k, 1.0, 1e-13);
            double e = fabs(kl - q) / fmax(1.0, fabs(q));
            worst_q = fmax(worst_q, e);
            ck_assert_msg(e <= 1e-9, "KL(a %g, b %g) = %.17g, quadrature %.17g", k.a, k.b, kl, q);
            double h = 1e-3 * k.b;
            double fd = (-lf_kuma_kl_uniform(k.a, k.b + 2 * h, NULL) + 8 * lf_kuma_kl_uniform(k.a, k.b + h, NULL) -
                         8 * lf_kuma_kl_uniform(k.a, k.b - h, NULL) + lf_kuma_kl_uniform(k.a, k.b - 2 * h, NULL)) /
                        (12 * h);
            if (fabs(fd) > 1e-6)
                worst_fd = fmax(worst_fd, fabs(db - fd) / fabs(fd));
            worst_fd_abs = fmax(worst_fd_abs, fabs(db - fd));
            ck_assert_msg(fabs(db - fd) <= 1e-6 * fabs(fd) + 1e-10 / k.b, "dKL/db(a %g, b %g) = %.17g vs %.17g",
                          k.a, k.b, db, fd);
        }
    double db;
    ck_assert(lf_kuma_kl_uniform(1, 1, &db) == 0);
    LF_ASSERT_CLOSE(db, 0.0, 1e-15, 0);
    lf_test_rng r = {31};
    double least = INFINITY;
    for (int i = 0; i < 20000; i++) {
        double a = i % 2 ? exp(lf_test_range(&r, log(0.2), log(5.0))) : 1 + lf_test_range(&r, -1e-3, 1e-3);
        double b = i % 2 ? exp(lf_test_range(&r, log(0.05), log(50.0))) : 1 + lf_test_range(&r, -1e-3, 1e-3);
        double kl = lf_kuma_kl_uniform(a, b, NULL);
        least = fmin(least, kl);
        ck_assert_msg(kl >= -1e-15, "KL(a %.17g, b %.17g) = %g < 0", a, b, kl);
    }
    fprintf(stderr, "# KL: largest error vs quadrature %.3g; derivative vs differences: relative %.3g (where "
            "|d/db| > 1e-6), absolute %.3g; least value %.3g\n", worst_q, worst_fd, worst_fd_abs, least);
}
END_TEST

START_TEST(test_expected_time)
{
    const double as[] = {0.3, 0.5, 1, 2, 5};
    const double bs[] = {0.1, 0.5, 1, 3, 20, 100};
    double worst = 0;
    for (int ia = 0; ia < 5; ia++)
        for (int ib = 0; ib < 6; ib++) {
            kuma_params k = {as[ia], bs[ib]};
            double m = lf_kuma_expected_time(k.a, k.b);
            double q = integrate(survival_integrand, &k, 1.0, 1e-13); /* E[T] = int (1 - F) */
            worst = fmax(worst, fabs(m - q) / q);
            ck_assert_msg(fabs(m - q) <= 1e-10 * q, "E[T](a %g, b %g) = %.17g, quadrature %.17g", k.a, k.b, m, q);
            /* the a = 1 special case joins the general formula */
            double near = lf_kuma_expected_time(1 + 1e-9, k.b), at = lf_kuma_expected_time(1, k.b);
            ck_assert_msg(fabs(near - at) <= 1e-8 * at, "E[T] jumps at a = 1: %.17g vs %.17g", near, at);
        }
    fprintf(stderr, "# expected time: largest relative error vs quadrature %.3g\n", worst);
}
END_TEST

/* ---- the linear family a = b = c = 1 -------------------------------------------
 * T_in ~ U(0, 1), T_um | T_in ~ U(T_in, 1):
 *   P_drop = 1 - t,
 *   P_mask = int_0^t (1 - t)/(1 - s) ds = -(1 - t) log(1 - t),
 *   P_clean = t + (1 - t) log(1 - t).
 * (Not t (1 - t): that would be the masked fraction if T_um were uniform on
 * [0, 1] independently of T_in, which it is not.) */
/* schedule.late_fraction e: the survival 1 - F_e(t) = (1 - e) (1 - t^a)^b
 * + e (1 - t) written out here. log-survival against its log, the hazard
 * against a central difference of its -log, the inverse (u < e: u / e;
 * otherwise the Kumaraswamy CDF of the time is (u - e) / (1 - e)), and
 * e = 0 against the plain schedule's hazard. */
static double survival(double t, double a, double b, double e)
{
    return (1 - e) * pow(1 - pow(t, a), b) + e * (1 - t);
}

START_TEST(test_late_fraction_mixture)
{
    const double shapes[3][2] = {{1, 32}, {2, 8}, {0.7, 3}};
    const double lates[3] = {0, 0.1, 0.5};
    for (int si = 0; si < 3; si++)
        for (int ei = 0; ei < 3; ei++) {
            double a = shapes[si][0], b = shapes[si][1], e = lates[ei];
            for (double t = 0.05; t < 0.96; t += 0.1) {
                double ls = lf_mix_log_survival(t, a, b, e), ref = log(survival(t, a, b, e));
                ck_assert_msg(fabs(ls - ref) <= 1e-12 * fmax(1, fabs(ref)), "log S(%g; %g, %g, %g) %.17g vs %.17g", t, a,
                              b, e, ls, ref);
                double h = 1e-6;
                double fd = (log(survival(t - h, a, b, e)) - log(survival(t + h, a, b, e))) / (2 * h);
                double hz = lf_mix_hazard(t, a, b, e);
                ck_assert_msg(fabs(hz - fd) <= 1e-5 * fmax(1, fabs(fd)), "hazard(%g; %g, %g, %g) %.10g vs %.10g", t, a,
                              b, e, hz, fd);
                if (e == 0)
                    ck_assert(fabs(hz - b * lf_base_hazard(t, a)) <= 1e-12 * hz);
            }
            for (double u = 0.01; u < 1; u += 0.07) {
                double ti = lf_mix_inv_cdf(u, a, b, e);
                if (u < e)
                    ck_assert(fabs(ti - u / e) < 1e-15);
                else
                    ck_assert_msg(fabs(1 - pow(1 - pow(ti, a), b) - (u - e) / (1 - e)) < 1e-12, "inv(%g) = %g", u, ti);
            }
        }
    ck_assert(isnan(lf_mix_log_survival(0.5, 1, 1, 1.0)) && isnan(lf_mix_hazard(0.5, 1, 1, -0.1)));
}
END_TEST

START_TEST(test_linear_family)
{
    double worst = 0;
    for (int i = 0; i <= 200; i++) {
        double t = i == 0 ? 1e-4 : i == 200 ? 1 - 1e-4 : i / 200.0;
        long double lt = t, l1 = log1pl(-lt);
        long double ref[3] = {1 - lt, -(1 - lt) * l1, lt + (1 - lt) * l1};
        for (int s = 0; s < 3; s++) {
            double p = exp(lf_state_log_prob(all_states[s], t, 1, 1, 1, NULL, NULL));
            double e = (double)(fabsl(p - ref[s]) / ref[s]);
            worst = fmax(worst, e);
            ck_assert_msg(e <= 1e-13, "linear %s at t %.17g: %.17g vs %.17Lg", state_names[s], t, p, ref[s]);
        }
        LF_ASSERT_CLOSE(lf_kuma_cdf(t, 1, 1), t, 0, 1e-15);
        LF_ASSERT_CLOSE(lf_base_hazard(t, 1), 1 / (1 - t), 0, 1e-15);
    }
    LF_ASSERT_CLOSE(lf_kuma_expected_time(1, 1), 0.5, 0, 1e-16);
    fprintf(stderr, "# linear family: largest relative error %.3g\n", worst);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("schedule_math");
    TCase *tc = tcase_create("schedule_math");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_state_frequencies);
    tcase_add_test(tc, test_states_sum_to_one);
    tcase_add_test(tc, test_states_quadrature);
    tcase_add_test(tc, test_mask_far_apart_shapes);
    tcase_add_test(tc, test_state_gradients);
    tcase_add_test(tc, test_clean_switch_continuity);
    tcase_add_test(tc, test_cdf_pdf_hazard_inverse);
    tcase_add_test(tc, test_truncated_sampler);
    tcase_add_test(tc, test_kl_uniform);
    tcase_add_test(tc, test_expected_time);
    tcase_add_test(tc, test_linear_family);
    tcase_add_test(tc, test_late_fraction_mixture);
    suite_add_tcase(s, tc);
    return s;
}
