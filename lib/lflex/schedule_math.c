/* The paper's schedule formulas (see schedule_math.h). */
#include "lflex/schedule_math.h"

#include <math.h>

#include "core/special.h"

#define EULER_GAMMA 0.577215664901532860606512090082

static int shape_ok(double a) { return a > 0 && a < INFINITY; }
static int unit_ok(double t) { return t >= 0 && t <= 1; }

/* l = log(1 - t^a) <= 0, exact in relative terms for t -> 0 and t -> 1;
 * 0 at t = 0 and -inf at t = 1. */
static double log_y(double t, double a)
{
    return lf_log1mexp(a * log(t));
}

/* -expm1(x) for x <= 0, as +0 rather than -0 at x = 0 (pow(-0, p) is -inf
 * or -0 for odd integers p) */
static double neg_expm1(double x)
{
    return 0.0 - expm1(x);
}

double lf_kuma_cdf(double t, double a, double b)
{
    if (!unit_ok(t) || !shape_ok(a) || !shape_ok(b))
        return NAN;
    return neg_expm1(b * log_y(t, a));
}

double lf_kuma_pdf(double t, double a, double b)
{
    if (!unit_ok(t) || !shape_ok(a) || !shape_ok(b))
        return NAN;
    double y = neg_expm1(a * log(t)); /* 1 - t^a */
    return a * b * pow(t, a - 1) * pow(y, b - 1);
}

double lf_base_hazard(double t, double a)
{
    if (!unit_ok(t) || !shape_ok(a))
        return NAN;
    return a * pow(t, a - 1) / neg_expm1(a * log(t));
}

double lf_kuma_inv_cdf(double u, double a, double b)
{
    if (!unit_ok(u) || !shape_ok(a) || !shape_ok(b))
        return NAN;
    double ta = neg_expm1(log1p(-u) / b); /* t^a = 1 - (1-u)^(1/b) */
    return pow(ta, 1.0 / a);
}

static int late_ok(double e) { return e >= 0 && e < 1; }

double lf_mix_log_survival(double t, double a, double b, double e)
{
    if (!unit_ok(t) || !shape_ok(a) || !shape_ok(b) || !late_ok(e))
        return NAN;
    double kuma = b * log_y(t, a); /* log of the Kumaraswamy survival */
    return e == 0 ? kuma : log((1 - e) * exp(kuma) + e * (1 - t));
}

double lf_mix_hazard(double t, double a, double b, double e)
{
    if (!unit_ok(t) || !shape_ok(a) || !shape_ok(b) || !late_ok(e))
        return NAN;
    if (e == 0)
        return b * lf_base_hazard(t, a);
    return ((1 - e) * lf_kuma_pdf(t, a, b) + e) / exp(lf_mix_log_survival(t, a, b, e));
}

double lf_mix_inv_cdf(double u, double a, double b, double e)
{
    if (!unit_ok(u) || !late_ok(e))
        return NAN;
    return u < e ? u / e : lf_kuma_inv_cdf((u - e) / (1 - e), a, b);
}

double lf_kuma_sample_t_um(double t_in, double v, double a, double c)
{
    if (!unit_ok(t_in) || !unit_ok(v) || !shape_ok(a) || !shape_ok(c))
        return NAN;
    /* Survival functions: (1 - T^a)^c = (1 - v) (1 - t_in^a)^c, so
     * log(1 - T^a) = log(1 - t_in^a) + log(1 - v) / c. */
    double l = log_y(t_in, a) + log1p(-v) / c;
    double t = pow(neg_expm1(l), 1.0 / a);
    return t < t_in ? t_in : t; /* rounding must not put T_um before T_in */
}

/* ---- state log-probabilities -------------------------------------------------
 *
 * With w = -l = -log(1 - t^a), insertion and unmasking are exponential clocks
 * in w: W_in ~ Exp(b), W_um = W_in + Exp(c) (the truncated sampler above).
 *
 *   log P_drop = b l                      d/db = l,  d/dc = 0.
 *   log P_mask = log b + c l + log(-l) + E(d l),   d = b - c,  E = log e,
 *     d/db = 1/b + l E'(d l),   d/dc = l - l E'(d l) = l (1 - E'(d l)).
 *   For d < 0, d l > 0 and c l + E(d l) cancel (to b l, when c >> b near
 *   t = 1); with E(x) = x + E(-x) and E'(x) = 1 - E'(-x) the same is
 *     log P_mask = log b + b l + log(-l) + E(-d l),
 *     d/db = 1/b + l (1 - E'(-d l)),   d/dc = l E'(-d l),
 *   so E is only ever called at |d| l <= 0, where E' is in (0, 1/2] and
 *   1 - E' does not cancel either.
 *   P_clean = 1 - P_drop - P_mask = P(Exp(b) + Exp(c) <= w):
 *     d/dp log P_clean = -(P_drop d/dp log P_drop + P_mask d/dp log P_mask) / P_clean
 *     for p = b, c.
 *
 * P_clean ~ b c w^2 / 2 for small w, so 1 - P_drop - P_mask cancels there:
 * computed as log1mexp(logaddexp(.)) it would keep only ~1e-16 / w of its
 * relative precision (1e-8 at t = 1e-4, a = 2; nothing for larger a). When
 * u + v <= 1 with u = b w, v = c w, it is summed instead from the expansion of
 * P_clean = 1 - (b e^-cw - c e^-bw) / (b - c):
 *   P_clean = u v H(u, v),  H = sum_{m>=0} (-1)^m h_m(u, v) / (m+2)!,
 *   h_m = sum_{j=0..m} u^j v^(m-j)   (h_m = v h_{m-1} + u^m),
 *   d/db log P_clean = 1/b + w H_u / H,  d/dc log P_clean = 1/c + w H_v / H.
 * There |h_m| <= (u+v)^m <= 1 and H >= 1/3, so 19 terms reach 1e-18 with no
 * cancellation. Above the switch the direct formula loses at most a factor
 * ~max(1, b/c) (the cancellation left when unmasking is much slower than
 * insertion). */
#define CLEAN_SERIES_MAX 1.0
#define CLEAN_SERIES_TERMS 19

static double mask_log_prob(double l, double b, double c, double *gb, double *gc)
{
    double adl = fabs(b - c) * l; /* <= 0 */
    double e1 = lf_log_e_deriv(adl);
    if (b >= c) {
        *gb = 1.0 / b + l * e1;
        *gc = l * (1.0 - e1);
    } else {
        *gb = 1.0 / b + l * (1.0 - e1);
        *gc = l * e1;
    }
    return log(b) + (b < c ? b : c) * l + log(-l) + lf_log_e(adl);
}

static double clean_log_prob_series(double w, double b, double c, double *gb, double *gc)
{
    double u = b * w, v = c * w;
    double h = 1, hu = 0, hv = 0; /* h_m and its partial derivatives */
    double upow = 1;              /* u^m */
    double inv_fact = 0.5;        /* 1/(m+2)! */
    double sign = 1;
    double H = 0, Hu = 0, Hv = 0;
    for (int m = 0; m < CLEAN_SERIES_TERMS; m++) {
        if (m > 0) {
            hv = v * hv + h;
            hu = v * hu + m * upow;
            upow *= u;
            h = v * h + upow;
            inv_fact /= m + 2;
            sign = -sign;
        }
        H += sign * inv_fact * h;
        Hu += sign * inv_fact * hu;
        Hv += sign * inv_fact * hv;
    }
    *gb = 1.0 / b + w * Hu / H;
    *gc = 1.0 / c + w * Hv / H;
    return log(u) + log(v) + log(H);
}

static double clean_log_prob(double l, double b, double c, double *gb, double *gc)
{
    double w = -l;
    if ((b + c) * w <= CLEAN_SERIES_MAX)
        return clean_log_prob_series(w, b, c, gb, gc);
    double gmb, gmc;
    double ldrop = b * l;
    double lmask = mask_log_prob(l, b, c, &gmb, &gmc);
    double ls = lf_logaddexp(ldrop, lmask);
    if (ls > 0)
        ls = 0; /* rounding; P_drop + P_mask <= 1 */
    double lc = lf_log1mexp(ls);
    double rd = exp(ldrop - lc), rm = exp(lmask - lc);
    *gb = -(rd * l + rm * gmb);
    *gc = -(rm * gmc);
    return lc;
}

double lf_state_log_prob(lf_token_state s, double t, double a, double b, double c,
                         double *d_b, double *d_c)
{
    double lp = NAN, gb = NAN, gc = NAN;
    if (unit_ok(t) && shape_ok(a) && shape_ok(b) && shape_ok(c) &&
        (s == LF_STATE_DROPPED || s == LF_STATE_MASKED || s == LF_STATE_CLEAN)) {
        double l = log_y(t, a);
        if (l == -INFINITY) {
            /* t = 1: every token is clean whatever b and c are */
            lp = s == LF_STATE_CLEAN ? 0.0 : -INFINITY;
            gb = gc = 0;
        } else if (s == LF_STATE_DROPPED) {
            lp = b * l;
            gb = l;
            gc = 0;
        } else if (s == LF_STATE_MASKED) {
            lp = mask_log_prob(l, b, c, &gb, &gc);
        } else {
            lp = clean_log_prob(l, b, c, &gb, &gc);
        }
    }
    if (d_b)
        *d_b = gb;
    if (d_c)
        *d_c = gc;
    return lp;
}

/* ---- regulariser terms ----------------------------------------------------- */

double lf_kuma_kl_uniform(double a, double b, double *d_b)
{
    if (!shape_ok(a) || !shape_ok(b)) {
        if (d_b)
            *d_b = NAN;
        return NAN;
    }
    /* E[log f(T)] with E[log T] = (psi(1) - psi(b+1)) / a (T^a ~ Beta(1, b))
     * and E[log(1 - T^a)] = -1/b (1 - T^a ~ Beta(b, 1)). */
    double k = (a - 1) / a;
    if (d_b)
        *d_b = (b - 1) / (b * b) - k * lf_trigamma(b + 1);
    return log(a) + log(b) + k * (-EULER_GAMMA - lf_digamma(b + 1)) - (b - 1) / b;
}

double lf_kuma_expected_time(double a, double b)
{
    if (!shape_ok(a) || !shape_ok(b))
        return NAN;
    if (a == 1)
        return 1.0 / (b + 1);
    /* b B(s, b) = Gamma(s) Gamma(b+1) / Gamma(s+b), s = 1 + 1/a; lgamma_r
     * because lgamma writes the global signgam. Gamma(b+1) rather than
     * b Gamma(b) avoids the cancellation of log b with lgamma(b) for small b. */
    double s = 1 + 1 / a;
    int sg;
    return exp(lgamma_r(s, &sg) + lgamma_r(b + 1, &sg) - lgamma_r(s + b, &sg));
}
