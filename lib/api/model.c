/* Exported model calls: argument checks, messages, and the hand-over to the
 * lflex and io rooms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "io/checkpoint.h"
#include "io/model_schema.h"
#include "lf_error.h"

static int model_finish(lflex_model_t *h)
{
    int st = lf_vocab_build(&h->vocab, h->m.cfg.tokenizer, h->m.cfg.tokens, h->m.cfg.vocab_size);
    if (st)
        return st;
    h->schedule.family = h->m.cfg.family;
    h->schedule.a = h->m.a;
    h->schedule.b_um = h->m.b_um;
    h->schedule.owned_by_model = true;
    return LFLEX_OK;
}

static int model_from_config(lflex_model_t **out, const lf_model_config *cfg)
{
    lf_vocab probe;
    int st = lf_vocab_build(&probe, cfg->tokenizer, cfg->tokens, cfg->vocab_size);
    if (st)
        return lf_error_prefix("vocab.tokens");
    int64_t n_user = probe.n_user;
    lf_vocab_free(&probe);
    char why[256];
    if (lf_model_check_config(cfg, n_user, why, sizeof why))
        return lf_error(LFLEX_EINVAL, "invalid model configuration: %s", why);
    lflex_model_t *h = calloc(1, sizeof *h);
    if (!h)
        return lf_error_oom("lflex_model_new");
    st = lf_model_create(&h->m, cfg, n_user);
    if (!st)
        st = model_finish(h);
    if (st) {
        lf_vocab_free(&h->vocab);
        if (h->m.vocab)
            lf_model_destroy(&h->m);
        free(h);
        return st == LFLEX_ENOMEM ? lf_error_oom("lflex_model_new") : lf_error(st, "could not create the model");
    }
    *out = h;
    return LFLEX_OK;
}

static lf_model_config *new_default_config(void)
{
    lf_model_config *cfg = calloc(1, sizeof *cfg);
    if (cfg)
        lf_config_defaults(&lf_model_schema, cfg);
    return cfg;
}

LFLEX_API int lflex_model_new(lflex_model_t **out, const char *yaml, size_t len)
{
    CHECK_ARG(out, "lflex_model_new: out is NULL");
    *out = NULL;
    CHECK_ARG(yaml || len == 0, "lflex_model_new: yaml is NULL but len is %zu", len);
    lf_model_config *cfg = new_default_config();
    if (!cfg)
        return lf_error_oom("lflex_model_new");
    int st = yaml && len ? lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, yaml, len, "<config>") : LFLEX_OK;
    if (!st)
        st = model_from_config(out, cfg);
    free(cfg);
    return st;
}

LFLEX_API int lflex_model_new_from_file(lflex_model_t **out, const char *path)
{
    CHECK_ARG(out, "lflex_model_new_from_file: out is NULL");
    *out = NULL;
    CHECK_ARG(path, "lflex_model_new_from_file: path is NULL");
    lf_model_config *cfg = new_default_config();
    if (!cfg)
        return lf_error_oom("lflex_model_new_from_file");
    int st = lf_config_parse_file(&lf_model_schema, cfg, sizeof *cfg, path);
    if (!st)
        st = model_from_config(out, cfg);
    free(cfg);
    return st;
}

LFLEX_API void lflex_model_free(lflex_model_t *m)
{
    if (!m)
        return;
    lf_vocab_free(&m->vocab);
    lf_model_destroy(&m->m);
    free(m->batch_fixed);
    free(m->batch_offsets);
    free(m);
}

LFLEX_API int lflex_model_save(const lflex_model_t *m, const char *path)
{
    CHECK_ARG(m, "lflex_model_save: model is NULL");
    CHECK_ARG(path && *path, "lflex_model_save: path is NULL or empty");
    return lf_checkpoint_save(&m->m, path);
}

LFLEX_API int lflex_model_load(lflex_model_t **out, const char *path)
{
    CHECK_ARG(out, "lflex_model_load: out is NULL");
    *out = NULL;
    CHECK_ARG(path && *path, "lflex_model_load: path is NULL or empty");
    lflex_model_t *h = calloc(1, sizeof *h);
    if (!h)
        return lf_error_oom("lflex_model_load");
    int st = lf_checkpoint_load(&h->m, path);
    if (st) {
        free(h);
        return st;
    }
    st = model_finish(h);
    if (st) {
        lflex_model_free(h);
        return lf_error_prefix("%s: vocabulary", path);
    }
    *out = h;
    return LFLEX_OK;
}

LFLEX_API int lflex_model_config(const lflex_model_t *m, char *buf, size_t cap, size_t *len)
{
    CHECK_ARG(m, "lflex_model_config: model is NULL");
    CHECK_ARG(buf || cap == 0, "lflex_model_config: buf is NULL but cap is %zu", cap);
    char *yaml = NULL;
    size_t n = 0;
    int st = lf_config_emit(&lf_model_schema, &m->m.cfg, &yaml, &n);
    if (st)
        return st;
    if (len)
        *len = n;
    if (n + 1 > cap) {
        free(yaml);
        return lf_error(LFLEX_EINVAL, "lflex_model_config: buffer of %zu bytes too small, need %zu", cap, n + 1);
    }
    memcpy(buf, yaml, n + 1);
    free(yaml);
    return LFLEX_OK;
}

LFLEX_API int lflex_model_get(const lflex_model_t *m, lflex_model_property prop, int64_t *value)
{
    CHECK_ARG(m && value, "lflex_model_get: model or value is NULL");
    switch (prop) {
    case LFLEX_PROP_VOCAB_SIZE: *value = m->m.vocab; break;
    case LFLEX_PROP_MAX_LEN: *value = m->m.cfg.max_len; break;
    case LFLEX_PROP_N_PARAMS: *value = m->m.params.total; break;
    case LFLEX_PROP_STEP: *value = (int64_t)m->m.step; break;
    case LFLEX_PROP_THREADS: *value = m->m.ctx.n_threads; break;
    case LFLEX_PROP_LEARNED_ORDER: *value = m->m.learned; break;
    case LFLEX_PROP_LAST_FLOPS: *value = (int64_t)m->m.last_flops; break;
    default: return lf_error(LFLEX_EINVAL, "lflex_model_get: unknown property %d", (int)prop);
    }
    return LFLEX_OK;
}

LFLEX_API int lflex_model_set_threads(lflex_model_t *m, int n_threads)
{
    CHECK_ARG(m, "lflex_model_set_threads: model is NULL");
    CHECK_ARG(n_threads >= 0 && n_threads <= 1024, "lflex_model_set_threads: %d threads is outside [0, 1024]",
              n_threads);
    int st = lf_model_set_threads(&m->m, n_threads);
    return st ? lf_error_oom("lflex_model_set_threads") : LFLEX_OK;
}

LFLEX_API int lflex_model_encode(const lflex_model_t *m, const char *text, size_t len, int32_t *ids, size_t cap,
                                 size_t *n)
{
    CHECK_ARG(m && n, "lflex_model_encode: model or n is NULL");
    CHECK_ARG(text || len == 0, "lflex_model_encode: text is NULL");
    CHECK_ARG(ids || cap == 0, "lflex_model_encode: ids is NULL but cap is %zu", cap);
    int st = lf_vocab_encode(&m->vocab, text ? text : "", len, ids, cap, n);
    return st ? lf_error_prefix("lflex_model_encode") : LFLEX_OK;
}

LFLEX_API int lflex_model_decode(const lflex_model_t *m, const int32_t *ids, size_t n, char *buf, size_t cap,
                                 size_t *len)
{
    CHECK_ARG(m && len, "lflex_model_decode: model or len is NULL");
    CHECK_ARG(ids || n == 0, "lflex_model_decode: ids is NULL");
    CHECK_ARG(buf || cap == 0, "lflex_model_decode: buf is NULL but cap is %zu", cap);
    for (size_t i = 0; i < n; i++)
        CHECK_ARG(ids[i] >= 0 && ids[i] < m->m.vocab, "lflex_model_decode: id %d at position %zu is outside [0, %ld)",
                  ids[i], i, (long)m->m.vocab);
    int st = lf_vocab_decode(&m->vocab, ids, n, buf, cap, len);
    return st ? lf_error_prefix("lflex_model_decode") : LFLEX_OK;
}

/* ---- training ------------------------------------------------------------ */

/* Check a batch and convert it to the internal layout (int32 offsets, the
 * default fixed flags). The buffers are owned by the model handle. */
static int prepare_batch(lflex_model_t *m, const char *fn, const int32_t *tokens, const uint8_t *fixed,
                         const size_t *offsets, size_t n_seq, lf_batch *out)
{
    CHECK_ARG(m, "%s: model is NULL", fn);
    CHECK_ARG(n_seq >= 1, "%s: the batch is empty (n_seq = 0)", fn);
    CHECK_ARG(offsets, "%s: offsets is NULL", fn);
    CHECK_ARG(offsets[0] == 0, "%s: offsets[0] is %zu, must be 0", fn, offsets[0]);
    /* all offsets first, so that no token is read past the end of the array */
    for (size_t j = 0; j < n_seq; j++)
        CHECK_ARG(offsets[j + 1] > offsets[j], "%s: sequence %zu is empty or its offsets decrease (offsets[%zu] = "
                  "%zu, offsets[%zu] = %zu)", fn, j, j, offsets[j], j + 1, offsets[j + 1]);
    size_t total = offsets[n_seq];
    CHECK_ARG(tokens || total == 0, "%s: tokens is NULL", fn);
    CHECK_ARG(total < (size_t)INT32_MAX, "%s: %zu tokens in one batch is too many", fn, total);
    const int64_t V = m->m.vocab, max_len = m->m.cfg.max_len;
    for (size_t j = 0; j < n_seq; j++) {
        size_t b = offsets[j], e = offsets[j + 1];
        CHECK_ARG((int64_t)(e - b) <= max_len,
                  "%s: sequence %zu, position %ld: the sequence has %zu tokens, more than model.max_len = %ld", fn, j,
                  (long)max_len, e - b, (long)max_len);
        for (size_t i = b; i < e; i++) {
            int32_t id = tokens[i];
            bool fx = fixed ? fixed[i] != 0 : i == e - 1;
            CHECK_ARG(id >= 0 && id < V, "%s: sequence %zu, position %zu: token id %d is outside [0, %ld)", fn, j, i - b,
                      id, (long)V);
            CHECK_ARG(id != LF_PAD && id != LF_MASK, "%s: sequence %zu, position %zu: token id %d (%s) may not appear in "
                      "a training sequence", fn, j, i - b, id, id == LF_PAD ? "PAD" : "MASK");
            CHECK_ARG(fx || id >= LF_N_SPECIAL, "%s: sequence %zu, position %zu: reserved token %s must be fixed", fn, j,
                      i - b, id == LF_BOS ? "BOS" : "EOS");
        }
        bool last_fixed = fixed ? fixed[e - 1] != 0 : true;
        CHECK_ARG(tokens[e - 1] == LF_EOS && last_fixed,
                  "%s: sequence %zu, position %zu: the sequence does not end with a fixed EOS (id %d)", fn, j,
                  e - 1 - b, LF_EOS);
    }
    /* internal copies: int32 offsets and explicit fixed flags */
    size_t need_tok = total ? total : 1, need_off = n_seq + 1;
    if (need_tok > m->batch_cap_tok) {
        uint8_t *f = realloc(m->batch_fixed, need_tok);
        if (!f)
            return lf_error_oom(fn);
        m->batch_fixed = f;
        m->batch_cap_tok = need_tok;
    }
    if (need_off > m->batch_cap_off) {
        int32_t *o = realloc(m->batch_offsets, need_off * sizeof *o);
        if (!o)
            return lf_error_oom(fn);
        m->batch_offsets = o;
        m->batch_cap_off = need_off;
    }
    for (size_t j = 0; j <= n_seq; j++)
        m->batch_offsets[j] = (int32_t)offsets[j];
    for (size_t j = 0; j < n_seq; j++)
        for (size_t i = offsets[j]; i < offsets[j + 1]; i++)
            m->batch_fixed[i] = fixed ? fixed[i] != 0 : i == offsets[j + 1] - 1;
    out->tokens = tokens;
    out->fixed = m->batch_fixed;
    out->offsets = m->batch_offsets;
    out->n_seq = (int64_t)n_seq;
    out->shard_first = out->shard_count = 0;
    return LFLEX_OK;
}

static void fill_stats(lflex_train_stats *stats, const lf_loss_parts *p, double grad_norm, double lr, uint64_t step)
{
    if (!stats || stats->struct_size < sizeof(size_t))
        return;
    lflex_train_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = stats->struct_size;
    s.loss = p->total;
    s.unmask_loss = p->unmask;
    s.insert_loss = p->insert;
    s.reinforce = p->reinforce;
    s.regulariser = p->reg;
    s.grad_norm = grad_norm;
    s.lr = lr;
    s.step = step;
    s.tokens = (uint64_t)p->tokens;
    size_t n = stats->struct_size < sizeof s ? stats->struct_size : sizeof s;
    memcpy((char *)stats + sizeof(size_t), (char *)&s + sizeof(size_t), n - sizeof(size_t));
}

static int loss_status(lflex_model_t *m, const char *fn, int st)
{
    if (st == LFLEX_ENOMEM)
        return lf_error_oom(fn);
    return lf_error(st, "%s: %s failed in %s", fn, lflex_strerror(st),
                    m->m.ctx.status_where ? m->m.ctx.status_where : "the objective");
}

/* The optimiser step from the gradients in place, and the statistics; a
 * failure puts back the random stream of before the step. */
static int finish_step(lflex_model_t *m, const char *fn, const lf_loss_parts *parts, const lf_rng *saved_rng,
                       lflex_train_stats *stats)
{
    double grad_norm = 0, lr = 0;
    int st = lf_model_apply_step(&m->m, parts->total, &grad_norm, &lr);
    if (st) {
        m->m.rng = *saved_rng;
        return lf_error_prefix("%s", fn);
    }
    fill_stats(stats, parts, grad_norm, lr, m->m.step);
    return LFLEX_OK;
}

/* A model loaded from a weights-only file has no optimiser state to train
 * with: both train calls refuse it. */
static int refuse_weights_only(const lflex_model_t *m, const char *fn)
{
    if (!m || !m->m.weights_only)
        return LFLEX_OK;
    return lf_error(LFLEX_ESTATE, "%s: the model was loaded from a weights-only file (%s weights, no optimiser "
                    "state): it generates and answers queries but does not train; load a full checkpoint "
                    "to train", fn, m->m.weights_only);
}

LFLEX_API int lflex_model_train_step(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                     const size_t *offsets, size_t n_seq, lflex_train_stats *stats)
{
    static const char fn[] = "lflex_model_train_step";
    lf_batch batch;
    int st = refuse_weights_only(m, fn);
    if (!st)
        st = prepare_batch(m, fn, tokens, fixed, offsets, n_seq, &batch);
    if (st)
        return st;
    lf_loss_parts parts;
    lf_rng saved_rng = m->m.rng;
    st = lf_model_loss(&m->m, &batch, NULL, true, &parts);
    if (st) {
        m->m.rng = saved_rng; /* a failed step leaves the model as it was */
        return loss_status(m, fn, st);
    }
    return finish_step(m, fn, &parts, &saved_rng, stats);
}

/* ---- data-parallel training ---------------------------------------------- */

_Static_assert(sizeof(lf_real) == sizeof(float), "the reduction hands the gradient over as float");

/* The statistics handed to the reduction with the last bucket: sums over
 * the processes give the whole batch's values (the objective is scaled by
 * the whole batch's size), and how many shards failed. */
enum { RS_TOTAL, RS_UNMASK, RS_INSERT, RS_REINFORCE, RS_REG, RS_TOKENS, RS_FAILED, RS_NONFINITE, RS_N };
_Static_assert(RS_N == LFLEX_REDUCE_STATS, "LFLEX_REDUCE_STATS names the statistics handed over");

#define DEFAULT_BUCKET_FLOATS ((size_t)1 << 20)

LFLEX_API int lflex_model_set_reduce(lflex_model_t *m, lflex_reduce_fn fn, void *user, size_t bucket_floats)
{
    CHECK_ARG(m, "lflex_model_set_reduce: model is NULL");
    m->reduce = fn;
    m->reduce_user = fn ? user : NULL;
    m->bucket_floats = bucket_floats ? bucket_floats : DEFAULT_BUCKET_FLOATS;
    return LFLEX_OK;
}

/* Every bucket of the gradient, then the statistics, through the
 * reduction; the callback's first non-zero return. */
static int reduce_step(lflex_model_t *m, double *rs)
{
    const lf_params *P = &m->m.params;
    size_t total = (size_t)P->total;
    for (size_t at = 0; at < total; at += m->bucket_floats) {
        size_t n = total - at < m->bucket_floats ? total - at : m->bucket_floats;
        int r = m->reduce(m->reduce_user, P->grad + at, n, NULL, 0);
        if (r)
            return r;
    }
    return m->reduce(m->reduce_user, NULL, 0, rs, RS_N);
}

LFLEX_API int lflex_model_train_step_shard(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                           const size_t *offsets, size_t n_seq, size_t first, size_t count,
                                           lflex_train_stats *stats)
{
    static const char fn[] = "lflex_model_train_step_shard";
    lf_batch batch;
    int st = refuse_weights_only(m, fn);
    if (!st)
        st = prepare_batch(m, fn, tokens, fixed, offsets, n_seq, &batch);
    if (st)
        return st;
    CHECK_ARG(count >= 1 && first < n_seq && count <= n_seq - first,
              "%s: the shard of %zu sequences from sequence %zu is empty or runs past the batch of %zu", fn, count,
              first, n_seq);
    if (!m->reduce)
        return lf_error(LFLEX_ESTATE, "%s: the model has no reduction over processes (lflex_model_set_reduce)", fn);
    batch.shard_first = (int64_t)first;
    batch.shard_count = (int64_t)count;
    lf_loss_parts parts;
    lf_rng saved_rng = m->m.rng;
    int local = lf_model_loss(&m->m, &batch, NULL, true, &parts);
    if (local) { /* the others still wait for this process's share: a zero one, flagged */
        local = loss_status(m, fn, local);
        memset(&parts, 0, sizeof parts);
        memset(m->m.params.grad, 0, (size_t)m->m.params.total * sizeof *m->m.params.grad);
    }
    double rs[RS_N] = {parts.total,    parts.unmask,        parts.insert, parts.reinforce, parts.reg,
                       (double)parts.tokens, local != 0, local == LFLEX_ENUMERIC};
    int r = reduce_step(m, rs);
    if (r || rs[RS_FAILED] > 0)
        m->m.rng = saved_rng; /* a failed step leaves the model as it was */
    if (r)
        return lf_error(LFLEX_EIO, "%s: the reduction over processes failed (its callback returned %d); the step "
                        "was not applied", fn, r);
    if (local)
        return local;
    if (rs[RS_FAILED] > 0)
        return lf_error(rs[RS_NONFINITE] == rs[RS_FAILED] ? LFLEX_ENUMERIC : LFLEX_ECANCELED,
                        "%s: the objective failed in %.0f other shard(s) of the batch (%.0f not finite); the step "
                        "was not applied", fn, rs[RS_FAILED], rs[RS_NONFINITE]);
    parts = (lf_loss_parts){rs[RS_TOTAL], rs[RS_UNMASK], rs[RS_INSERT], rs[RS_REINFORCE], rs[RS_REG],
                            (int64_t)rs[RS_TOKENS]};
    return finish_step(m, fn, &parts, &saved_rng, stats);
}

LFLEX_API int lflex_model_eval_loss(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                    const size_t *offsets, size_t n_seq, uint64_t seed, lflex_train_stats *stats)
{
    static const char fn[] = "lflex_model_eval_loss";
    lf_batch batch;
    int st = prepare_batch(m, fn, tokens, fixed, offsets, n_seq, &batch);
    if (st)
        return st;
    lf_rng saved = m->m.rng;
    lf_rng_seed(&m->m.rng, seed);
    lf_loss_parts parts;
    st = lf_model_loss(&m->m, &batch, NULL, false, &parts);
    m->m.rng = saved;
    if (st)
        return loss_status(m, fn, st);
    fill_stats(stats, &parts, 0, 0, m->m.step);
    return LFLEX_OK;
}
