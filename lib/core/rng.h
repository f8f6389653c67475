/* A seeded random number generator (xoshiro256**, seeded by splitmix64).
 * Its whole state is four words, so it can be saved in a checkpoint and a
 * run resumed exactly. */
#ifndef LF_RNG_H
#define LF_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct lf_rng {
    uint64_t s[4];
} lf_rng;

static inline uint64_t lf_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void lf_rng_seed(lf_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = lf_splitmix64(&seed);
}

static inline uint64_t lf_rng_next(lf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static inline double lf_rng_uniform(lf_rng *r)
{
    return (double)(lf_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in (0, 1): never 0, for logs and inverse CDFs */
static inline double lf_rng_uniform_open(lf_rng *r)
{
    return ((double)(lf_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* standard normal (Box-Muller; one of the pair is dropped to keep the state
 * a pure function of the number of draws) */
static inline double lf_rng_normal(lf_rng *r)
{
    double u = lf_rng_uniform_open(r), v = lf_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* An independent stream for a sub-task (e.g. per sequence), derived from
 * the parent's next output and a key; the parent advances by one draw. */
static inline lf_rng lf_rng_fork(lf_rng *parent, uint64_t key)
{
    lf_rng child;
    lf_rng_seed(&child, lf_rng_next(parent) ^ (key * 0xd1342543de82ef95ULL));
    return child;
}

#endif
