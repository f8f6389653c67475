/* Exact match of generated targets, and the learned-order table. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
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

/* The sampler's progress callback: the steps of every batch. */
static int show_steps(void *user, uint64_t done, uint64_t total)
{
    cli_progress *p = user;
    p->total = total;
    cli_progress_update(p, done);
    return 0;
}

int cli_exact_match(lflex_model_t *m, const char *sampler_yaml, size_t yaml_len, const cli_data *d, size_t n,
                    FILE *out, size_t show, cli_match *res, cli_progress *prog)
{
    memset(res, 0, sizeof *res);
    if (n > d->n)
        n = d->n;
    if (n == 0)
        return 0;
    lflex_sampler_t *s;
    if (lflex_sampler_new(&s, m, sampler_yaml, yaml_len))
        return cli_fail_lib("sampler");
    if (prog && prog->on)
        lflex_sampler_set_progress(s, show_steps, prog);
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

/* The text of one token, or its id when it has none. */
static void token_text(const lflex_model_t *m, int32_t id, char *buf, size_t cap)
{
    size_t len;
    if (lflex_model_decode(m, &id, 1, buf, cap, &len))
        snprintf(buf, cap, "%d", id);
}

/* Two learned shapes are one place in the order when they differ by less
 * than 2 %: closer than that the schedules are indistinguishable in a
 * sample of this size, and ranking them would invent an order. */
static bool same_place(float a, float b) { return fabsf(a - b) <= 0.02f * fmaxf(fabsf(a), fabsf(b)); }

/* The learned order of a sequence: shapes b, expected insertion times et,
 * the place of each token (rank, 0 for fixed ones), the number of tokens
 * at each place and the last place. */
typedef struct {
    float *b, *et;
    int *rank, *at_place, max_rank;
} order_table;

static void order_free(order_table *o)
{
    free(o->b);
    free(o->et);
    free(o->rank);
    free(o->at_place);
}

static int order_compute(order_table *o, const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n)
{
    float *b = o->b = malloc((n ? n : 1) * sizeof *b), *et = o->et = malloc((n ? n : 1) * sizeof *et);
    int *rank = o->rank = malloc((n ? n : 1) * sizeof *rank), *at_place = o->at_place = calloc(n + 1, sizeof *at_place);
    bool have = b && et && rank && at_place;
    if (!have || lflex_model_order(m, z, fixed, n, b, NULL, et)) {
        int rc = have ? cli_fail_lib("order") : cli_fail("order: out of memory");
        order_free(o);
        return rc;
    }
    /* place of each non-fixed token (1 = first); tied tokens share a place,
     * which is 1 + the number of tokens strictly earlier; at_place[r]: the
     * tokens at place r */
    int max_rank = 0;
    for (size_t i = 0; i < n; i++) {
        rank[i] = 0;
        if (fixed && fixed[i])
            continue;
        rank[i] = 1;
        for (size_t j = 0; j < n; j++)
            if (!(fixed && fixed[j]) && b[j] > b[i] && !same_place(b[j], b[i]))
                rank[i]++;
        at_place[rank[i]]++;
        max_rank = rank[i] > max_rank ? rank[i] : max_rank;
    }
    o->max_rank = max_rank;
    return 0;
}

int cli_example(const lflex_model_t *m, const char *text, cli_data *d)
{
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    int32_t *p = malloc((size_t)max_len * sizeof *p), *t = malloc((size_t)max_len * sizeof *t);
    const char *tab = strchr(text, '\t');
    size_t np = 0, nt = 0;
    int rc = !p || !t ? cli_fail("out of memory") : 0;
    if (!rc && ((tab && lflex_model_encode(m, text, (size_t)(tab - text), p, (size_t)max_len, &np)) ||
                lflex_model_encode(m, tab ? tab + 1 : text, strlen(tab ? tab + 1 : text), t, (size_t)max_len, &nt)))
        rc = cli_fail_lib("encode");
    if (!rc && (tab ? np + 1 : 0) + nt + 1 > (size_t)max_len)
        rc = cli_fail("the text is longer than the model's max_len %ld", (long)max_len);
    if (!rc)
        rc = cli_data_add(d, tab ? p : NULL, np, t, nt);
    free(p);
    free(t);
    return rc;
}

int cli_order_json(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n, json_t **out)
{
    order_table o;
    *out = NULL;
    if (order_compute(&o, m, z, fixed, n))
        return 1;
    int64_t learned = 0;
    lflex_model_get(m, LFLEX_PROP_LEARNED_ORDER, &learned);
    size_t n_fixed = 0;
    for (size_t i = 0; i < n; i++)
        n_fixed += fixed && fixed[i];
    json_t *j = json_object(), *toks = json_array(), *order = json_array();
    int bad = cli_json_set(j, "fixed_tokens", json_integer((json_int_t)n_fixed)) ||
              cli_json_set(j, "learned_order", json_boolean(learned)) || cli_json_set(j, "tokens", toks) ||
              cli_json_set(j, "order", order);
    for (size_t i = 0; i < n && !bad; i++) {
        if (fixed && fixed[i])
            continue;
        json_t *t = json_object();
        bad = cli_json_set(t, "pos", json_integer((json_int_t)i)) || cli_json_set(t, "token", cli_json_text(m, z + i, 1)) ||
              cli_json_set(t, "b_in", cli_json_real(o.b[i])) || cli_json_set(t, "expected_t_in", cli_json_real(o.et[i])) ||
              cli_json_set(t, "place", json_integer(o.rank[i])) ||
              cli_json_set(t, "tied", json_boolean(o.at_place[o.rank[i]] > 1)) || json_array_append_new(toks, t);
    }
    for (int r = 1; r <= o.max_rank && !bad; r++) {
        if (!o.at_place[r])
            continue;
        json_t *place = json_array();
        bad = !place || json_array_append_new(order, place);
        for (size_t i = 0; i < n && !bad; i++)
            if (o.rank[i] == r)
                bad = json_array_append_new(place, cli_json_text(m, z + i, 1));
    }
    order_free(&o);
    if (bad) {
        json_decref(j);
        return cli_fail("JSON output: out of memory");
    }
    *out = j;
    return 0;
}

int cli_print_order(FILE *f, const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n)
{
    order_table o;
    if (order_compute(&o, m, z, fixed, n))
        return 1;
    float *b = o.b, *et = o.et;
    int *rank = o.rank, *at_place = o.at_place, max_rank = o.max_rank;
    /* fixed tokens (a prompt, BOS, EOS) are present from the start: one
     * line for them, then a row per generated token with its expected
     * insertion time on a line from t = 0 to t = 1 */
    size_t n_fixed = 0;
    for (size_t i = 0; i < n; i++)
        n_fixed += fixed && fixed[i];
    size_t n_free = n - n_fixed;
    if (n_fixed)
        fprintf(f, "(%zu fixed tokens, present from t = 0)\n", n_fixed);
    enum { W = 40 };
    fprintf(f, "%5s  %-12s %9s %9s %6s  %-*s\n", "pos", "token", "b_in", "E[T_in]", "place", W + 2, "t=0 ... E[T_in] ... t=1");
    for (size_t i = 0; i < n; i++) {
        char tok[64], line[W + 1], place[16];
        if (fixed && fixed[i])
            continue;
        token_text(m, z[i], tok, sizeof tok);
        int col = (int)lroundf(et[i] * (W - 1));
        for (int c = 0; c < W; c++)
            line[c] = c == col ? '*' : (c < col ? '-' : ' ');
        line[W] = '\0';
        snprintf(place, sizeof place, "%d%s", rank[i], at_place[rank[i]] > 1 ? "=" : "");
        fprintf(f, "%5zu  %-12s %9.3f %9.3f %6s  |%s|\n", i, tok, b[i], et[i], place, line);
    }
    /* the order in one line: tokens in brackets share a place */
    if (n_free) {
        fprintf(f, "insertion order:");
        for (int r = 1; r <= max_rank; r++) {
            if (!at_place[r])
                continue;
            fputs(r > 1 ? " then" : "", f);
            fputs(at_place[r] > 1 ? " [" : " ", f);
            int w = 0;
            for (size_t i = 0; i < n; i++) {
                char tok[64];
                if (rank[i] != r)
                    continue;
                token_text(m, z[i], tok, sizeof tok);
                fprintf(f, "%s%s", w++ ? " " : "", tok);
            }
            fputs(at_place[r] > 1 ? "]" : "", f);
        }
        int64_t learned = 0;
        lflex_model_get(m, LFLEX_PROP_LEARNED_ORDER, &learned);
        fputs(!learned ? "  (a fixed schedule: every token has the same shape)\n"
                       : max_rank == 1 && n_free > 1 ? "  (all tied: no order learned)\n" : "\n",
              f);
    }
    order_free(&o);
    return 0;
}
