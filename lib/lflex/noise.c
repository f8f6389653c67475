#include "lflex/noise.h"

#include <math.h>

void lf_noise_draw_states(lf_rng *rng, const int32_t *offsets, int64_t n_seq, const uint8_t *fixed,
                          const double *t_seq, const lf_real *b_in, const lf_real *b_um, double c_const,
                          double a, double late, int32_t *state)
{
    for (int64_t j = 0; j < n_seq; j++) {
        double t = t_seq[j];
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            if (fixed[i]) {
                state[i] = LF_STATE_CLEAN;
                continue;
            }
            double u = lf_rng_uniform_open(rng), v = lf_rng_uniform_open(rng);
            double c = b_um ? b_um[i] : c_const;
            double t_in = lf_mix_inv_cdf(u, a, b_in[i], late); /* late 0: F^-1(u; a, b_in) exactly */
            double t_um = lf_kuma_sample_t_um(t_in, v, a, c);
            state[i] = t < t_in ? LF_STATE_DROPPED : (t < t_um ? LF_STATE_MASKED : LF_STATE_CLEAN);
        }
    }
}

double lf_noise_outside_in_shape(double b, double r, int64_t d)
{
    if (r <= 0)
        return b;
    double s = b * pow(r, (double)d), floor = b < 1 ? b : 1;
    return s > floor ? s : floor;
}

void lf_noise_outside_in_shapes(const uint8_t *fixed, int64_t n, double b, double r, double *out)
{
    for (int64_t i = 0; i < n;) {
        if ((fixed && fixed[i]) || r <= 0) {
            out[i++] = b;
            continue;
        }
        int64_t end = i; /* the run [i, end) of non-fixed tokens */
        while (end < n && !(fixed && fixed[end]))
            end++;
        for (int64_t k = i; k < end; k++)
            out[k] = lf_noise_outside_in_shape(b, r, k - i < end - 1 - k ? k - i : end - 1 - k);
        i = end;
    }
}

void lf_noise_clean_end(const int32_t *offsets, int64_t n_seq, const uint8_t *fixed, int from_right, int32_t *state)
{
    for (int64_t j = 0; j < n_seq; j++) {
        int64_t n_clean = 0, n = offsets[j + 1] - offsets[j];
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++)
            n_clean += !fixed[i] && state[i] == LF_STATE_CLEAN;
        for (int64_t k = 0; k < n; k++) {
            int64_t i = from_right ? offsets[j + 1] - 1 - k : offsets[j] + k;
            if (!fixed[i] && state[i] != LF_STATE_DROPPED)
                state[i] = n_clean-- > 0 ? LF_STATE_CLEAN : LF_STATE_MASKED;
        }
    }
}

void lf_noise_race_order(lf_rng *rng, const int32_t *offsets, int64_t n_seq, const uint8_t *fixed, const lf_real *l,
                         int32_t *state, int32_t *order, int32_t *order_off, int32_t *k, double *finish)
{
    int64_t n_order = 0;
    for (int64_t j = 0; j < n_seq; j++) {
        order_off[j] = (int32_t)n_order;
        int64_t n_clean = 0, first = n_order;
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            if (fixed[i])
                continue;
            double u = lf_rng_uniform_open(rng);
            lf_rng_next(rng); /* the second draw of the pair, unused */
            if (state[i] == LF_STATE_DROPPED)
                continue;
            n_clean += state[i] == LF_STATE_CLEAN;
            finish[i] = log(-log(u)) - (double)l[i]; /* the log of the finishing time */
            /* insertion into the finishing order (sequences are short) */
            int64_t r = n_order++;
            while (r > first && finish[order[r - 1]] > finish[i]) {
                order[r] = order[r - 1];
                r--;
            }
            order[r] = (int32_t)i;
        }
        k[j] = (int32_t)n_clean;
        for (int64_t r = first; r < n_order; r++)
            state[order[r]] = r - first < n_clean ? LF_STATE_CLEAN : LF_STATE_MASKED;
    }
    order_off[n_seq] = (int32_t)n_order;
}

void lf_noise_skip(lf_rng *rng, const uint8_t *fixed, int64_t begin, int64_t end)
{
    for (int64_t i = begin; i < end; i++)
        if (!fixed[i]) {
            lf_rng_next(rng);
            lf_rng_next(rng);
        }
}

int64_t lf_noise_build_xt(const int32_t *tokens, const int32_t *offsets, int64_t n_seq, const int32_t *state,
                          int32_t mask_id, int64_t row_base, int32_t *ids, int32_t *src, int32_t *offsets_out,
                          int32_t *gap_row, int32_t *masked, int64_t *n_masked)
{
    int64_t k = 0, m = 0;
    for (int64_t j = 0; j < n_seq; j++) {
        offsets_out[j] = (int32_t)(row_base + k);
        int64_t first_pending = offsets[j]; /* dropped tokens waiting for their gap's right end */
        for (int64_t i = offsets[j]; i < offsets[j + 1]; i++) {
            if (state[i] == LF_STATE_DROPPED) {
                continue;
            }
            for (int64_t p = first_pending; p < i; p++)
                gap_row[p] = (int32_t)(row_base + k);
            first_pending = i + 1;
            gap_row[i] = -1;
            ids[k] = state[i] == LF_STATE_MASKED ? mask_id : tokens[i];
            src[k] = (int32_t)i;
            if (state[i] == LF_STATE_MASKED)
                masked[m++] = (int32_t)(row_base + k);
            k++;
        }
        for (int64_t p = first_pending; p < offsets[j + 1]; p++)
            gap_row[p] = -1; /* cannot happen when the sequence ends with a present token */
    }
    offsets_out[n_seq] = (int32_t)(row_base + k);
    *n_masked = m;
    return k;
}
