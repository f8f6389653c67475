/* Exact match of generated targets, and the learned-order table. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_ids(FILE *f, const lflex_model_t *m, const int32_t *ids, size_t n)
{
    char buf[8192];
    size_t len;
    if (lflex_model_decode(m, ids, n, buf, sizeof buf, &len) == LFLEX_OK)
        fputs(buf, f);
    else
        fputs("(too long to print)", f);
}

int cli_exact_match(lflex_model_t *m, const char *sampler_yaml, size_t yaml_len, const cli_data *d, size_t n,
                    FILE *out, size_t show, cli_match *res)
{
    memset(res, 0, sizeof *res);
    if (n > d->n)
        n = d->n;
    if (n == 0)
        return 0;
    lflex_sampler_t *s;
    if (lflex_sampler_new(&s, m, sampler_yaml, yaml_len))
        return cli_fail_lib("sampler");
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    /* templates: the prompt, BOS, EOS of every example */
    int32_t *tmpl = malloc(d->offsets[n] * sizeof *tmpl);
    size_t *toff = malloc((n + 1) * sizeof *toff), *ooff = malloc((n + 1) * sizeof *ooff);
    size_t cap = n * (size_t)max_len;
    int32_t *gen = malloc(cap * sizeof *gen);
    toff[0] = 0;
    for (size_t j = 0; j < n; j++) {
        size_t b = d->offsets[j], ts = d->target_start[j];
        memcpy(tmpl + toff[j], d->tokens + b, ts * sizeof *tmpl);
        tmpl[toff[j] + ts] = LFLEX_TOKEN_EOS;
        toff[j + 1] = toff[j] + ts + 1;
    }
    int rc = 0;
    if (lflex_sampler_generate_batch(s, tmpl, NULL, toff, n, gen, cap, ooff, NULL, NULL))
        rc = cli_fail_lib("generate");
    double exact = 0, acc = 0;
    for (size_t j = 0; j < n && !rc; j++) {
        size_t ts = d->target_start[j];
        const int32_t *ref = d->tokens + d->offsets[j] + ts;
        size_t n_ref = d->offsets[j + 1] - d->offsets[j] - ts - 1;
        const int32_t *got = gen + ooff[j] + ts; /* the template's prompt and BOS come first */
        size_t n_got = ooff[j + 1] - ooff[j] - ts - 1;
        size_t same = 0;
        for (size_t i = 0; i < n_ref && i < n_got; i++)
            same += ref[i] == got[i];
        exact += n_got == n_ref && same == n_ref;
        acc += (double)same / (double)(n_ref > n_got ? n_ref : n_got);
        if (out && j < show) {
            fputs("  prompt:    ", out);
            print_ids(out, m, d->tokens + d->offsets[j], ts ? ts - 1 : 0);
            fputs("\n  reference: ", out);
            print_ids(out, m, ref, n_ref);
            fputs("\n  generated: ", out);
            print_ids(out, m, got, n_got);
            fprintf(out, "   %s\n", n_got == n_ref && same == n_ref ? "(exact)" : "");
        }
    }
    res->exact = exact / (double)n;
    res->token_acc = acc / (double)n;
    res->n = n;
    free(tmpl);
    free(toff);
    free(ooff);
    free(gen);
    lflex_sampler_free(s);
    return rc;
}

int cli_print_order(FILE *f, const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n)
{
    float *b = malloc(n * sizeof *b), *et = malloc(n * sizeof *et);
    int *rank = malloc(n * sizeof *rank);
    if (lflex_model_order(m, z, fixed, n, b, NULL, et)) {
        free(b);
        free(et);
        free(rank);
        return cli_fail_lib("order");
    }
    /* rank of each non-fixed token by expected insertion time (1 = first) */
    for (size_t i = 0; i < n; i++) {
        rank[i] = 0;
        if (fixed && fixed[i])
            continue;
        rank[i] = 1;
        for (size_t j = 0; j < n; j++)
            if (!(fixed && fixed[j]) && (et[j] < et[i] || (et[j] == et[i] && j < i)))
                rank[i]++;
    }
    /* fixed tokens (a prompt, BOS, EOS) are present from the start: one
     * line for them, then a row per generated token */
    size_t n_fixed = 0;
    for (size_t i = 0; i < n; i++)
        n_fixed += fixed && fixed[i];
    if (n_fixed)
        fprintf(f, "(%zu fixed tokens, present from t = 0)\n", n_fixed);
    fprintf(f, "%5s  %-12s %9s %9s %6s\n", "pos", "token", "b_in", "E[T_in]", "order");
    for (size_t i = 0; i < n; i++) {
        char tok[64];
        size_t len;
        if (fixed && fixed[i])
            continue;
        if (lflex_model_decode(m, z + i, 1, tok, sizeof tok, &len))
            snprintf(tok, sizeof tok, "%d", z[i]);
        fprintf(f, "%5zu  %-12s %9.3f %9.3f %6d\n", i, tok, b[i], et[i], rank[i]);
    }
    free(b);
    free(et);
    free(rank);
    return 0;
}
