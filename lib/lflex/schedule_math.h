/* The paper's schedule formulas in double precision: the
 * Kumaraswamy CDF F(t; a, b) = 1 - (1 - t^a)^b (the linear schedule is
 * a = b = 1), its base hazard, the samplers of the insertion and unmasking
 * times, the log-probabilities of the three token states with their
 * gradients, and the KL term and expected time used by the regulariser.
 *
 * Domain: t in [0, 1] (training draws t in [1e-4, 1 - 1e-4]; the end points
 * give the limits), shapes a, b, c > 0 and finite, uniforms u, v in [0, 1].
 * Outside it (including NaN) every function returns NaN, and so does every
 * requested derivative. This is a signal for debugging, not validation:
 * callers check their inputs. Infinite log-probabilities (-inf) are valid
 * results: e.g. log P_mask = -inf at t = 0 and log P_drop = -inf at t = 1.
 *
 * Everything works through w = -log(1 - t^a) >= 0, computed as
 * -log1mexp(a log t) so that it keeps full relative precision both for
 * t -> 0 (w ~ t^a) and for t -> 1. When t^a underflows (t below ~1e-308^(1/a))
 * w is 0 and the schedule is exactly at its start.
 */
#ifndef LF_SCHEDULE_MATH_H
#define LF_SCHEDULE_MATH_H

/* The ranges a configuration accepts for the shared shape a and the
 * constant unmasking shape b_um: one place for the model's schedule keys
 * and the standalone schedule's. */
#define LF_SHAPE_A_MIN 0.05
#define LF_SHAPE_A_MAX 20
#define LF_B_UM_MIN 0.01
#define LF_B_UM_MAX 1000

typedef enum { LF_STATE_DROPPED = 0, LF_STATE_MASKED = 1, LF_STATE_CLEAN = 2 } lf_token_state;

/* F(t; a, b) = 1 - (1 - t^a)^b */
double lf_kuma_cdf(double t, double a, double b);

/* f(t; a, b) = a b t^(a-1) (1 - t^a)^(b-1); +inf at an end point where it
 * diverges (t = 0 with a < 1, t = 1 with b < 1). */
double lf_kuma_pdf(double t, double a, double b);

/* The shared base hazard g_a(t) = a t^(a-1) / (1 - t^a); the hazard of
 * F(.; a, b) is b g_a(t). +inf at t = 1 (and at t = 0 when a < 1). */
double lf_base_hazard(double t, double a);

/* Inverse CDF: (1 - (1 - u)^(1/b))^(1/a). */
double lf_kuma_inv_cdf(double u, double a, double b);

/* The insertion schedule with a late fraction e (schedule.late_fraction):
 * each token's insertion time is uniform on [0, 1] with probability e and
 * Kumaraswamy(a, b) otherwise, F_e(t) = (1 - e) F(t; a, b) + e t.
 * lf_mix_log_survival: log(1 - F_e(t)) (b log(1 - t^a) for e = 0; -inf at
 * t = 1); lf_mix_hazard: F_e'(t) / (1 - F_e(t)) (b g_a(t) for e = 0);
 * lf_mix_inv_cdf: the time from one uniform u, u / e below e and
 * F^-1((u - e) / (1 - e); a, b) above. e in [0, 1). */
double lf_mix_log_survival(double t, double a, double b, double e);
double lf_mix_hazard(double t, double a, double b, double e);
double lf_mix_inv_cdf(double u, double a, double b, double e);

/* T_um drawn from F(.; a, c) truncated to [t_in, 1], by inverse CDF:
 * F(T) = F(t_in) + v (1 - F(t_in)). The result is >= t_in. */
double lf_kuma_sample_t_um(double t_in, double v, double a, double c);

/* log P(state at time t) for a token with insertion shape b (= b_in) and
 * unmasking shape c (= b_um), shared a, with d/db and d/dc written through
 * d_b and d_c (either may be NULL). Valid for every b, c including b = c.
 * Accuracy: a few ulps for DROPPED and MASKED; CLEAN has a relative error in
 * P_clean of about 1e-16 * max(1, b/c) (the direct formula cancels when
 * unmasking is much slower than insertion; the series used for early t does
 * not). Returns NaN for an invalid state. */
double lf_state_log_prob(lf_token_state s, double t, double a, double b, double c,
                         double *d_b, double *d_c);

/* KL(Kumaraswamy(a, b) || U(0, 1))
 *   = log(ab) + (a-1)/a (psi(1) - psi(b+1)) - (b-1)/b,
 * and its derivative in b (d_b may be NULL). */
double lf_kuma_kl_uniform(double a, double b, double *d_b);

/* E[T] = b B(1 + 1/a, b), 1/(b+1) when a = 1. Relative error about
 * 1e-16 * lgamma(b + 1 + 1/a). */
double lf_kuma_expected_time(double a, double b);

#endif
