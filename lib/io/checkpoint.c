/* Model checkpoints: the model's buffers as safetensors tensors, its config,
 * step and random state as metadata (layout in io/checkpoint.h). Loading
 * requires the file to hold exactly the tensors of the model that the stored
 * config describes, with their shapes, and only then creates that model: what
 * loading allocates stays proportional to the file's size. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/model_schema.h"
#include "io/safetensors.h"
#include "lf_error.h"

/* Checkpoints hold float32; the library computes in float. (The
 * double-precision test build does not include this file.) */
_Static_assert(sizeof(lf_real) == 4, "checkpoints store lf_real as F32");

#define KEY_FORMAT "lflex.format"
#define KEY_CONFIG "lflex.config"
#define KEY_STEP "lflex.step"
#define KEY_RNG "lflex.rng"
#define KEY_WEIGHTS "lflex.weights" /* only in weights-only files: "ema" or "raw" */

/* The buffers saved besides the weights, with their name prefixes. */
enum { BUF_PARAMS, BUF_M, BUF_V, BUF_EMA, N_BUF };
static const char *const buf_prefix[N_BUF] = {"", "optim.m.", "optim.v.", "ema."};
#define NAME_CAP (LF_PARAM_NAME_MAX + 16)

static lf_real *model_buffer(const lf_model *m, int b)
{
    switch (b) {
    case BUF_PARAMS: return m->params.data;
    case BUF_M: return m->adam_m;
    case BUF_V: return m->adam_v;
    default: return m->ema;
    }
}

/* The buffers a file of the model holds: the weights alone for a model
 * loaded from a weights-only file, else the weights, both moments and the
 * EMA copy when there is one. */
static int n_buffers(bool weights_only, bool ema)
{
    return weights_only ? 1 : ema ? N_BUF : N_BUF - 1;
}

int lf_checkpoint_save(const lf_model *m, const char *path)
{
    const int n_par = m->params.n, n_buf = n_buffers(m->weights_only, m->ema);
    const size_t n = (size_t)n_par * (size_t)n_buf;
    lf_st_entry *entries = calloc(n ? n : 1, sizeof *entries);
    char *names = malloc((n ? n : 1) * NAME_CAP);
    char *yaml = NULL;
    if (!entries || !names) {
        free(entries);
        free(names);
        return lf_error_oom("lf_checkpoint_save");
    }
    int st = lf_config_emit(&lf_model_schema, &m->cfg, &yaml, NULL);
    if (st) {
        lf_error_prefix("%s: the model's config", path);
        goto done;
    }
    for (int b = 0; b < n_buf; b++) {
        const lf_real *data = model_buffer(m, b);
        for (int i = 0; i < n_par; i++) {
            const lf_param *p = m->params.items[i];
            size_t k = (size_t)b * (size_t)n_par + (size_t)i;
            char *name = names + k * NAME_CAP;
            snprintf(name, NAME_CAP, "%s%s", buf_prefix[b], p->name);
            lf_st_entry *e = &entries[k];
            e->name = name;
            e->dtype = LF_ST_F32;
            e->ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++)
                e->shape[d] = p->shape[d];
            e->data = data + p->offset;
            e->nbytes = (size_t)p->numel * sizeof(lf_real);
        }
    }
    char step[24], rng[4 * 17];
    snprintf(step, sizeof step, "%" PRIu64, m->step);
    snprintf(rng, sizeof rng, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, m->rng.s[0], m->rng.s[1],
             m->rng.s[2], m->rng.s[3]);
    const lf_st_meta meta[] = {
        {KEY_FORMAT, "1"}, {KEY_CONFIG, yaml}, {KEY_STEP, step}, {KEY_RNG, rng}, {KEY_WEIGHTS, m->weights_only},
    };
    _Static_assert(LF_CHECKPOINT_FORMAT == 1, "the format key above is written as \"1\"");
    st = lf_st_write(path, entries, n, meta, sizeof meta / sizeof meta[0] - !m->weights_only);
done:
    free(yaml);
    free(names);
    free(entries);
    return st;
}

/* ---- loading ------------------------------------------------------------ */

typedef struct {
    const char *path;
    const lf_st_file *file;
    bool *used; /* [file index] claimed by a buffer of the model */
} loader;

/* Replace the current message's code: "path: what: <message>". */
static int recode(int code, const char *path, const char *what)
{
    char msg[LF_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", lflex_last_error());
    return lf_error(code, "%s: %s: %s", path, what, msg);
}

/* A decimal uint64 without sign or spaces. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Four words of exactly 16 hex digits, separated by single spaces. */
static bool parse_rng(const char *s, lf_rng *r)
{
    if (strlen(s) != 4 * 17 - 1)
        return false;
    uint64_t any = 0;
    for (int w = 0; w < 4; w++) {
        uint64_t v = 0;
        for (int i = 0; i < 16; i++) {
            char c = *s++;
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                return false;
            v = v << 4 | d;
        }
        if (w < 3 && *s++ != ' ')
            return false;
        r->s[w] = v;
        any |= v;
    }
    return any != 0; /* the all-zero state is a fixed point of xoshiro */
}

static void shape_text(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (o < cap)
        snprintf(out + o, cap - o, "]");
}

/* Index of the first of the n floats at `data` (not necessarily aligned)
 * that is not finite, or negative when `nonneg`; -1 when there is none. */
static int64_t first_bad_value(const void *data, int64_t n, bool nonneg)
{
    enum { BLOCK = 1024 };
    const unsigned char *bytes = data;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t k = n - i0 < BLOCK ? n - i0 : BLOCK;
        float x[BLOCK];
        memcpy(x, bytes + 4 * i0, (size_t)k * 4);
        bool bad = false;
        for (int64_t i = 0; i < k; i++) /* no early exit: this loop vectorises */
            bad |= (!isfinite(x[i])) | (nonneg & (x[i] < 0));
        for (int64_t i = 0; bad && i < k; i++)
            if (!isfinite(x[i]) || (nonneg && x[i] < 0))
                return i0 + i;
    }
    return -1;
}

/* The file's tensor `name`, after checking it against parameter p: dtype,
 * shape, and values that are finite (and not negative when `nonneg`: second
 * moments are means of squares). A non-finite weight or moment would only
 * show up later as NaN losses or samples. */
static int check_tensor(loader *L, const char *name, const lf_param *p, bool nonneg, const lf_st_entry **out)
{
    const lf_st_entry *e = lf_st_find(L->file, name);
    if (!e)
        return lf_error(LFLEX_EFORMAT, "%s: tensor '%s' is missing (the model of its lflex.config has it)", L->path,
                        name);
    L->used[e - lf_st_at(L->file, 0)] = true;
    bool ok = e->dtype == LF_ST_F32 && e->ndim == p->ndim;
    for (int d = 0; ok && d < p->ndim; d++)
        ok = e->shape[d] == p->shape[d];
    if (!ok) {
        char want[64], got[64];
        shape_text(want, sizeof want, p->ndim, p->shape);
        shape_text(got, sizeof got, e->ndim, e->shape);
        const char *dt = lf_st_dtype_name(e->dtype);
        return lf_error(LFLEX_EFORMAT, "%s: tensor '%s' at byte offset %llu is %s %s, the model needs F32 %s",
                        L->path, name, (unsigned long long)e->file_offset, dt ? dt : "?", got, want);
    }
    int64_t bad = first_bad_value(e->data, p->numel, nonneg);
    if (bad >= 0) {
        float x;
        memcpy(&x, (const unsigned char *)e->data + 4 * bad, 4);
        return lf_error(LFLEX_EFORMAT, "%s: tensor '%s' holds %g at element %lld (byte offset %llu): %s", L->path,
                        name, (double)x, (long long)bad,
                        (unsigned long long)(e->file_offset + 4 * (uint64_t)bad),
                        isfinite(x) ? "a second moment is never negative" : "a checkpoint holds finite numbers only");
    }
    *out = e;
    return LFLEX_OK;
}

/* Check every tensor of the file against the parameters `P` that the config
 * describes, before anything of the model's size is allocated: a small file
 * whose config declares a huge model is refused here. found[b * P->n + i]
 * gets buffer b's tensor of parameter i. */
static int check_tensors(loader *L, const lf_params *P, int n_buf, const lf_st_entry **found)
{
    char name[NAME_CAP];
    for (int b = 0; b < n_buf; b++)
        for (int i = 0; i < P->n; i++) {
            snprintf(name, sizeof name, "%s%s", buf_prefix[b], P->items[i]->name);
            int st = check_tensor(L, name, P->items[i], b == BUF_V, &found[(size_t)b * (size_t)P->n + (size_t)i]);
            if (st)
                return st;
        }
    for (size_t i = 0; i < lf_st_count(L->file); i++)
        if (!L->used[i]) {
            const lf_st_entry *e = lf_st_at(L->file, i);
            return lf_error(LFLEX_EFORMAT,
                            "%s: tensor '%s' at byte offset %llu is not part of the model of its " KEY_CONFIG
                            " (a checkpoint of another model?)",
                            L->path, e->name, (unsigned long long)e->file_offset);
        }
    return LFLEX_OK;
}

/* The config, step and random state from the metadata. */
static int read_meta(const char *path, const lf_st_file *f, lf_model_config *cfg, uint64_t *step, lf_rng *rng,
                     const char **weights_only)
{
    const char *fmt = lf_st_meta_get(f, KEY_FORMAT);
    if (!fmt)
        return lf_error(LFLEX_EFORMAT, "%s: not an lflex checkpoint (no " KEY_FORMAT " in its metadata)", path);
    uint64_t version;
    if (!parse_u64(fmt, &version))
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_FORMAT " '%.32s' is not a version number", path, fmt);
    if (version != LF_CHECKPOINT_FORMAT)
        return lf_error(LFLEX_EVERSION, "%s: format version %" PRIu64 ", this library reads %d", path, version,
                        LF_CHECKPOINT_FORMAT);
    const char *yaml = lf_st_meta_get(f, KEY_CONFIG);
    if (!yaml)
        return lf_error(LFLEX_EFORMAT, "%s: no " KEY_CONFIG " in its metadata", path);
    lf_config_defaults(&lf_model_schema, cfg);
    int st = lf_model_config_absent_values(cfg);
    if (!st)
        st = lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, yaml, strlen(yaml), KEY_CONFIG);
    if (st)
        return st == LFLEX_ENOMEM ? st : recode(LFLEX_EFORMAT, path, "invalid configuration");
    const char *s = lf_st_meta_get(f, KEY_STEP);
    if (!s || !parse_u64(s, step))
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_STEP " is %s", path, s ? "not a decimal step count" : "missing");
    /* 2^64 - 1 would wrap the next step to 0 (bias corrections 1 - beta^0 = 0: NaN weights) */
    if (*step > LF_STEP_MAX)
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_STEP " %" PRIu64 " is more than %" PRIu64 " (2^53 - 1), the most "
                        "optimiser steps the library counts", path, *step, LF_STEP_MAX);
    s = lf_st_meta_get(f, KEY_RNG);
    if (!s || !parse_rng(s, rng))
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_RNG " is %s", path,
                        s ? "not 4 words of 16 hex digits, not all zero" : "missing");
    s = lf_st_meta_get(f, KEY_WEIGHTS);
    *weights_only = !s ? NULL : !strcmp(s, "ema") ? "ema" : !strcmp(s, "raw") ? "raw" : "";
    if (s && !**weights_only)
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_WEIGHTS " '%.32s' is neither \"ema\" nor \"raw\"", path, s);
    return LFLEX_OK;
}

/* The model's parameters (names, shapes) as the config describes them, with
 * no weights allocated. */
static int expected_params(lf_params *P, const lf_model_config *cfg, int64_t n_user)
{
    lf_nets nets;
    lf_params_init(P);
    int st = lf_nets_register(&nets, cfg, LF_N_SPECIAL + n_user, P);
    lf_nets_free(&nets);
    return st ? lf_error_oom("lf_checkpoint_load") : LFLEX_OK;
}

static int load(lf_model *m, const char *path, const lf_st_file *f, lf_model_config *cfg, loader *L,
                lf_params *expect, const lf_st_entry ***found)
{
    uint64_t step = 0;
    lf_rng rng;
    const char *weights_only;
    int st = read_meta(path, f, cfg, &step, &rng, &weights_only);
    if (st)
        return st;
    lf_vocab v;
    st = lf_vocab_build(&v, cfg->tokenizer, cfg->tokens, cfg->vocab_size);
    if (st)
        return st == LFLEX_ENOMEM ? st : recode(LFLEX_EFORMAT, path, KEY_CONFIG ": vocab.tokens");
    int64_t n_user = v.n_user;
    lf_vocab_free(&v);
    char why[256];
    if (lf_model_check_config(cfg, n_user, why, sizeof why))
        return lf_error(LFLEX_EFORMAT, "%s: " KEY_CONFIG " does not describe a valid model: %s", path, why);

    /* the file's tensors against the config's parameters, then the model */
    if ((st = expected_params(expect, cfg, n_user)) != LFLEX_OK)
        return st;
    const int n_buf = n_buffers(weights_only, cfg->ema > 0);
    const size_t n_found = (size_t)n_buf * (size_t)expect->n;
    L->path = path;
    L->file = f;
    L->used = calloc(lf_st_count(f) ? lf_st_count(f) : 1, sizeof *L->used);
    *found = calloc(n_found ? n_found : 1, sizeof **found);
    if (!L->used || !*found)
        return lf_error_oom("lf_checkpoint_load");
    if ((st = check_tensors(L, expect, n_buf, *found)) != LFLEX_OK)
        return st;

    st = lf_model_create(m, cfg, n_user);
    if (st)
        return st == LFLEX_ENOMEM ? lf_error_oom("lf_checkpoint_load")
                                  : lf_error(LFLEX_EFORMAT, "%s: cannot create the model of its " KEY_CONFIG, path);
    if (m->params.n != expect->n || m->params.total != expect->total ||
        (!weights_only && (m->ema != NULL) != (n_buf == N_BUF)))
        return lf_error(LFLEX_EINTERNAL, "%s: the model differs from the parameters its config describes", path);
    for (int b = 0; b < n_buf; b++) {
        lf_real *data = model_buffer(m, b);
        for (int i = 0; i < m->params.n; i++) {
            const lf_param *p = m->params.items[i];
            const lf_st_entry *e = (*found)[(size_t)b * (size_t)expect->n + (size_t)i];
            memcpy(data + p->offset, e->data, e->nbytes);
        }
    }
    /* a weights-only file: the moments stay zero (the model does not
     * train), and the EMA copy, which sampling reads, is the weights */
    if (weights_only && m->ema)
        memcpy(m->ema, m->params.data, (size_t)m->params.total * sizeof(lf_real));
    m->weights_only = weights_only;
    m->step = step;
    m->rng = rng;
    return LFLEX_OK;
}

int lf_checkpoint_load(lf_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    /* what killed saves left next to the file (a directory listing: cheap) */
    lf_st_remove_stale_temps(path);
    lf_st_file *f = NULL;
    int st = lf_st_read_file(&f, path);
    if (st)
        return st;
    st = lf_checkpoint_load_st(m, f, path);
    lf_st_free(f);
    return st;
}

int lf_checkpoint_load_st(lf_model *m, const lf_st_file *f, const char *path)
{
    memset(m, 0, sizeof *m);
    lf_model_config *cfg = calloc(1, sizeof *cfg);
    loader L;
    memset(&L, 0, sizeof L);
    lf_params expect;
    lf_params_init(&expect);
    const lf_st_entry **found = NULL;
    int st = cfg ? load(m, path, f, cfg, &L, &expect, &found) : lf_error_oom("lf_checkpoint_load");
    if (st) {
        if (m->params.data)
            lf_model_destroy(m);
        memset(m, 0, sizeof *m);
    }
    lf_params_free(&expect);
    free(found);
    free(L.used);
    free(cfg);
    return st;
}
