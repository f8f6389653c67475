/* Vectorisable float versions of exp and tanh for the hot loops (softmax,
 * attention, activations). Branch-free and call-free so that the compiler
 * turns a loop over them into SIMD code.
 *
 * exp: x = n ln2 + r with |r| <= ln2/2 (n rounded to nearest), e^r by its Taylor series to r^7
 * (truncation error below 6e-9 relative, under half an ulp of a float), and
 * 2^n put into the exponent bits. Arguments are clamped to the range where
 * the result is a normal float: below -87.3 (and at -inf) the result is 0,
 * above 88.3 (and at +inf) it is e^88.3 (about 2.2e38, finite). NaN gives
 * NaN. No argument reaches undefined behaviour: the clamp sends NaN into the
 * range before the conversion to int, so the exponent bits are never
 * negative and the shift stays defined.
 *
 * In the double-precision build (gradient checks) they are libm's functions,
 * so that the finite-difference tests see exact math. */
#ifndef LF_FASTMATH_H
#define LF_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"

#if LF_REAL_IS_DOUBLE

static inline lf_real lf_fast_exp(lf_real x) { return exp(x); }
static inline lf_real lf_fast_tanh(lf_real x) { return tanh(x); }

#else

static inline float lf_fast_exp(float x)
{
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723212e-6f;
    const float log2e = 1.44269504088896341f;
    float under = x < -87.3f ? 0.0f : 1.0f;
    /* every comparison with NaN is false: written this way round, the clamp
     * sends NaN to -87.3 (the other way round NaN passed through, and
     * (int32_t)NaN below gave INT32_MIN, a negative left shift) */
    float xc = x > -87.3f ? (x < 88.3f ? x : 88.3f) : -87.3f;
    /* round to nearest without a libm call: adding 1.5 * 2^23 pushes the
     * fraction out of the mantissa (SSE2 has no rounding instruction) */
    const float shifter = 12582912.0f;
    float n = (xc * log2e + shifter) - shifter; /* a whole number in [-126, 127] */
    float r = xc - n * ln2_hi - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* biased exponent in [1, 254] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale * under;
    return x == x ? y : x; /* NaN in, NaN out (a select: the loops still vectorise) */
}

/* tanh(x) = sign(x) (1 - 2 / (e^{2|x|} + 1)): absolute error about 1e-7,
 * which is what the activations need (they use 1 + tanh and 1 - tanh^2). */
static inline float lf_fast_tanh(float x)
{
    float ax = fabsf(x);
    float e = lf_fast_exp(2.0f * (ax > 20.0f ? 20.0f : ax));
    float t = 1.0f - 2.0f / (e + 1.0f);
    return x < 0 ? -t : t;
}

#endif

#endif
