/* Helpers shared by the test programs. */
#ifndef LF_TESTUTIL_H
#define LF_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Each test program defines this. */
Suite *lf_test_suite(void);

/* A small deterministic generator for test data (splitmix64). */
typedef struct { uint64_t s; } lf_test_rng;
static inline uint64_t lf_test_next(lf_test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static inline double lf_test_uniform(lf_test_rng *r)
{
    return (double)(lf_test_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
/* uniform in [lo, hi) */
static inline double lf_test_range(lf_test_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * lf_test_uniform(r);
}
static inline int64_t lf_test_int(lf_test_rng *r, int64_t lo, int64_t hi_inclusive)
{
    return lo + (int64_t)(lf_test_next(r) % (uint64_t)(hi_inclusive - lo + 1));
}

/* Relative-or-absolute closeness: |a - b| <= atol + rtol * |b|. */
#define LF_ASSERT_CLOSE(a, b, atol, rtol)                                                     \
    do {                                                                                      \
        double lf_a_ = (a), lf_b_ = (b);                                                      \
        ck_assert_msg(fabs(lf_a_ - lf_b_) <= (atol) + (rtol) * fabs(lf_b_),                   \
                      "%s = %.10g but %s = %.10g (atol %g, rtol %g)", #a, lf_a_, #b, lf_b_,   \
                      (double)(atol), (double)(rtol));                                        \
    } while (0)

#endif
