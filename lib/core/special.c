/* Scalar special functions in double precision (see special.h). */
#include "core/special.h"

#include <math.h>

#define LN2 0.693147180559945309417232121458

/* ---- log e(x), e(x) = expm1(x)/x ----------------------------------------
 *
 * x/(1 - e^-x) = 1 + x/2 + sum_n B_2n x^2n / (2n)!  (Bernoulli numbers), so
 *   d/dx log e(x) = 1/(1 - e^-x) - 1/x = 1/2 + sum_n B_2n x^(2n-1) / (2n)!
 *   log e(x)      = x/2 + sum_n B_2n x^2n / (2n (2n)!).
 * The series converges for |x| < 2 pi; its terms shrink by (x / 2 pi)^2, so
 * at |x| <= 1/2 nine terms leave less than 1e-19. Outside that range the
 * closed forms lose at most a factor ~5 to cancellation. */
#define LOG_E_SERIES_MAX 0.5
#define LOG_E_NTERMS 9

/* B_2n / (2n)!, n = 1..9 */
static const double bern_over_fact[LOG_E_NTERMS] = {
    (1.0 / 6.0) / 2.0,
    (-1.0 / 30.0) / 24.0,
    (1.0 / 42.0) / 720.0,
    (-1.0 / 30.0) / 40320.0,
    (5.0 / 66.0) / 3628800.0,
    (-691.0 / 2730.0) / 479001600.0,
    (7.0 / 6.0) / 87178291200.0,
    (-3617.0 / 510.0) / 20922789888000.0,
    (43867.0 / 798.0) / 6402373705728000.0,
};

double lf_log_e(double x)
{
    if (fabs(x) <= LOG_E_SERIES_MAX) {
        double x2 = x * x, s = 0;
        for (int n = LOG_E_NTERMS; n >= 1; n--)
            s = s * x2 + bern_over_fact[n - 1] / (2 * n);
        return 0.5 * x + s * x2;
    }
    if (x > 0) {
        if (x == INFINITY)
            return x;
        /* log((e^x - 1)/x) = x + log(1 - e^-x) - log x: no overflow */
        return x - log(x) + log1p(-exp(-x));
    }
    return log(-expm1(x)) - log(-x); /* NaN stays NaN */
}

double lf_log_e_deriv(double x)
{
    if (fabs(x) <= LOG_E_SERIES_MAX) {
        double x2 = x * x, s = 0;
        for (int n = LOG_E_NTERMS; n >= 1; n--)
            s = s * x2 + bern_over_fact[n - 1];
        return 0.5 + s * x;
    }
    /* 1/(1 - e^-x) = -1/expm1(-x); at -inf both terms go to 0, at +inf to 1, 0 */
    return -1.0 / expm1(-x) - 1.0 / x;
}

/* ---- log(1 - e^x) ---------------------------------------------------------
 * Maechler (2012): log(-expm1(x)) near 0, where 1 - e^x is small and expm1 is
 * exact; log1p(-exp(x)) below -ln 2, where e^x is small. */
double lf_log1mexp(double x)
{
    if (!(x <= 0))
        return NAN;
    return x > -LN2 ? log(-expm1(x)) : log1p(-exp(x));
}

double lf_log1mexp_deriv(double x)
{
    if (!(x <= 0))
        return NAN;
    return -1.0 / expm1(-x);
}

double lf_logaddexp(double a, double b)
{
    if (isnan(a) || isnan(b))
        return a + b;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    /* covers -inf with -inf (no inf - inf) and +inf with anything */
    if (lo == -INFINITY || hi == INFINITY)
        return hi;
    return hi + log1p(exp(lo - hi));
}

double lf_softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* Below -36, log1p(q) = q (1 - q/2 + ...) for q = e^x < 3e-16: the log
 * is x - q/2 and the derivative 1 - q/2 to double precision. */
double lf_log_softplus(double x)
{
    return x < -36 ? x - 0.5 * exp(x) : log(lf_softplus(x));
}

double lf_log_softplus_deriv(double x)
{
    return x < -36 ? 1 - 0.5 * exp(x) : lf_sigmoid(x) / lf_softplus(x);
}

double lf_sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* ---- digamma and trigamma --------------------------------------------------
 * Shift x up with psi(x) = psi(x+1) - 1/x and psi'(x) = psi'(x+1) + 1/x^2
 * until x >= 10, then use the asymptotic series through B_16:
 *   psi(x)  ~ log x - 1/(2x) - sum_n B_2n / (2n x^2n)
 *   psi'(x) ~ 1/x + 1/(2x^2) + sum_n B_2n / x^(2n+1).
 * At x = 10 the first omitted terms are ~3e-18 and ~6e-18; stopping the shift
 * at 6 instead would leave ~1e-13 with these terms. */
#define PSI_SHIFT_MIN 10.0

double lf_digamma(double x)
{
    if (!(x > 0))
        return NAN;
    /* The shift terms and the series have opposite signs and cancel near the
     * root of psi (1.46); summing the shift terms with Neumaier's
     * compensation keeps the absolute error at a few 1e-16 there. */
    double acc = 0, comp = 0;
    while (x < PSI_SHIFT_MIN) {
        double term = -1.0 / x, sum = acc + term;
        comp += fabs(acc) >= fabs(term) ? (acc - sum) + term : (term - sum) + acc;
        acc = sum;
        x += 1.0;
    }
    if (x == INFINITY)
        return x;
    double r = 1.0 / x, r2 = r * r;
    double tail = r2 * (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 * (1.0 / 240 -
                  r2 * (1.0 / 132 - r2 * (691.0 / 32760 - r2 * (1.0 / 12 - r2 * (3617.0 / 8160))))))));
    return acc + ((log(x) - 0.5 * r - tail) + comp);
}

double lf_trigamma(double x)
{
    if (!(x > 0))
        return NAN;
    double acc = 0;
    while (x < PSI_SHIFT_MIN) {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    double r = 1.0 / x, r2 = r * r;
    double tail = r * r2 * (1.0 / 6 - r2 * (1.0 / 30 - r2 * (1.0 / 42 - r2 * (1.0 / 30 -
                  r2 * (5.0 / 66 - r2 * (691.0 / 2730 - r2 * (7.0 / 6 - r2 * (3617.0 / 510))))))));
    return acc + (r + 0.5 * r2 + tail);
}
