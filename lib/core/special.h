/* Scalar special functions in double precision, used by the elementwise ops
 * and by the schedule math.
 *
 * Every function is pure (no state, thread-safe) and never aborts: inputs
 * outside the stated domain give NaN, and the limits at the ends of the domain
 * (infinities, exact zeros) are returned as the mathematical limit where one
 * exists. Accuracy is a few ulps unless noted.
 */
#ifndef LF_SPECIAL_H
#define LF_SPECIAL_H

/* log e(x) with e(x) = expm1(x)/x (e(0) = 1): the log of the mean of exp over
 * [0, x]. Defined for every real x; -inf at -inf, +inf at +inf. */
double lf_log_e(double x);

/* d/dx log e(x) = 1/(1 - e^-x) - 1/x, in (0, 1); 1/2 at 0. */
double lf_log_e_deriv(double x);

/* log(1 - e^x) for x <= 0 (-inf at 0, 0 at -inf); NaN for x > 0. */
double lf_log1mexp(double x);

/* d/dx log(1 - e^x) = -1/expm1(-x), for x < 0. */
double lf_log1mexp_deriv(double x);

/* log(e^a + e^b); exact for -inf and +inf inputs, NaN if either is NaN. */
double lf_logaddexp(double a, double b);

/* log(1 + e^x) without overflow. */
double lf_softplus(double x);

/* 1/(1 + e^-x) without overflow. */
double lf_sigmoid(double x);

/* log(log(1 + e^x)) without underflow (x - e^x / 2 far below 0), and its
 * derivative sigmoid(x) / softplus(x). */
double lf_log_softplus(double x);
double lf_log_softplus_deriv(double x);

/* Digamma psi(x) and trigamma psi'(x) for x > 0 (NaN for x <= 0 or NaN).
 * Absolute error ~1e-16 * max(1, |psi|): near the root of psi at 1.4616
 * only the absolute error is small. */
double lf_digamma(double x);
double lf_trigamma(double x);

#endif
