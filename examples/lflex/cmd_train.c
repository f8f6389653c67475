/* lflex train CONFIG.yaml [--set KEY=VALUE]... [--resume CKPT] [--quiet] */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Steps skipped one after another for a non-finite loss or gradient
 * (the library leaves the model as it was) before training gives up:
 * each draws a new batch and new times, so a few are bad luck, and this
 * many mean weights that give nothing finite (the loop ran forever). */
#define MAX_SKIPPED_IN_ROW 100

typedef struct {
    long steps, batch, log_every, eval_every, eval_examples, save_every, seed, time_limit;
    const char *out;
    bool quiet, tty;
} run_opts;

typedef struct {
    double loss, unmask, insert, reinforce, reg, grad_norm, lr;
    double tokens;
    long n;
} acc_stats;

static void acc_add(acc_stats *a, const lflex_train_stats *s)
{
    a->loss += s->loss;
    a->unmask += s->unmask_loss;
    a->insert += s->insert_loss;
    a->reinforce += s->reinforce;
    a->reg += s->regulariser;
    a->grad_norm += s->grad_norm;
    a->lr = s->lr;
    a->tokens += (double)s->tokens;
    a->n++;
}

/* Fields of a log.jsonl record: ", \"name\": value" with `prec`
 * significant digits (json_num) or decimals (json_fixed). JSON has no NaN
 * or infinity (printf's nan and inf make the line unreadable), so a
 * non-finite value is written null. */
static void json_num(cli_buf *b, const char *name, int prec, double v)
{
    if (isfinite(v))
        buf_printf(b, ", \"%s\": %.*g", name, prec, v);
    else
        buf_printf(b, ", \"%s\": null", name);
}

static void json_fixed(cli_buf *b, const char *name, int prec, double v)
{
    if (isfinite(v))
        buf_printf(b, ", \"%s\": %.*f", name, prec, v);
    else
        buf_printf(b, ", \"%s\": null", name);
}

/* Close a record, write it as one line and free it. */
static void log_record(FILE *log, cli_buf *rec)
{
    buf_add(rec, "}\n", 2);
    fwrite(rec->s, 1, rec->len, log);
    fflush(log);
    buf_free(rec);
}

/* Validation loss over the first `n` examples (fixed times and states). */
static int valid_loss(lflex_model_t *m, const cli_data *v, size_t n, size_t batch, double parts[3])
{
    parts[0] = parts[1] = parts[2] = 0;
    if (n > v->n)
        n = v->n;
    size_t batches = 0;
    for (size_t b0 = 0; b0 < n; b0 += batch, batches++) {
        size_t b1 = b0 + batch < n ? b0 + batch : n;
        size_t *off = malloc((b1 - b0 + 1) * sizeof *off);
        for (size_t j = b0; j <= b1; j++)
            off[j - b0] = v->offsets[j] - v->offsets[b0];
        lflex_train_stats st = {.struct_size = sizeof st};
        int rc = lflex_model_eval_loss(m, v->tokens + v->offsets[b0], v->fixed + v->offsets[b0], off, b1 - b0,
                                       1000 + batches, &st);
        free(off);
        if (rc)
            return cli_fail_lib("validation loss");
        parts[0] += st.unmask_loss + st.insert_loss;
        parts[1] += st.unmask_loss;
        parts[2] += st.insert_loss;
    }
    for (int k = 0; k < 3; k++)
        parts[k] /= (double)(batches ? batches : 1);
    return 0;
}

/* The order of the training examples: each pass over them is a shuffle
 * drawn from a generator seeded by run.seed. The whole state is the
 * generator before the current shuffle, the shuffles drawn and the
 * position in the current one (cli_order), so a resumed run draws the
 * batches an uninterrupted run would have drawn. */
typedef struct {
    uint64_t rng, epoch_rng, epoch;
    size_t *perm, at, n;
} batch_order;

static void order_shuffle(batch_order *b)
{
    b->epoch_rng = b->rng;
    for (size_t i = 0; i < b->n; i++)
        b->perm[i] = i;
    for (size_t i = b->n - 1; i > 0; i--) {
        size_t k = (size_t)(cli_rand(&b->rng) % (i + 1)), t = b->perm[i];
        b->perm[i] = b->perm[k];
        b->perm[k] = t;
    }
    b->at = 0;
    b->epoch++;
}

static size_t order_next(batch_order *b)
{
    if (b->at == b->n)
        order_shuffle(b);
    return b->perm[b->at++];
}

/* The order at the start of a run, or where a saved state left it. */
static void order_start(batch_order *b, uint64_t seed, const cli_order *saved)
{
    b->rng = seed;
    b->epoch = 0;
    b->at = b->n; /* the first example draws a shuffle */
    if (saved && saved->epoch) {
        b->rng = saved->epoch_rng;
        order_shuffle(b); /* the same shuffle again, and the generator after it */
        b->epoch = saved->epoch;
        b->at = (size_t)saved->position;
    }
}

/* A path for the run's config.yaml: absolute, so that the file works from
 * any directory. malloc'd. */
static char *absolute(const char *path)
{
    char *a = realpath(path, NULL);
    return a ? a : strdup(path);
}

/* config.yaml of the run: the model's full configuration (every key, the
 * vocabulary included) and the program's sections with every key the run
 * used, paths made absolute, so that `lflex train RUN/config.yaml`
 * trains the run again. Written atomically. */
static int write_run_config(const char *path, const lflex_model_t *m, const run_opts *o, const char *out_dir,
                            const char *train_path, const char *valid_path, bool skip_bad, const cli_section *sample)
{
    cli_section data = {0}, run = {0}, dflt = {0};
    char *abs_train = absolute(train_path), *abs_valid = valid_path ? absolute(valid_path) : NULL,
         *abs_out = absolute(out_dir);
    cli_section_set(&data, "train", abs_train);
    if (abs_valid)
        cli_section_set(&data, "valid", abs_valid);
    cli_section_set(&data, "skip_bad_lines", skip_bad ? "true" : "false");
    const struct {
        const char *key;
        long v;
    } ints[] = {{"steps", o->steps},       {"batch_size", o->batch},       {"log_every", o->log_every},
                {"eval_every", o->eval_every}, {"eval_examples", o->eval_examples}, {"save_every", o->save_every},
                {"seed", o->seed},         {"time_limit", o->time_limit}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char v[32];
        snprintf(v, sizeof v, "%ld", ints[i].v);
        cli_section_set(&run, ints[i].key, v);
        if (i == 1)
            cli_section_set(&run, "out", abs_out);
    }
    cli_section_set(&dflt, "steps", "64"); /* the sampler of exact match without a sample section */
    cli_section_set(&dflt, "temperature", "0");
    static const char *const names[] = {"data", "run", "sample"};
    const cli_section *secs[] = {&data, &run, sample->n ? sample : &dflt};
    cli_buf text = {0};
    size_t len = 0;
    lflex_model_config(m, NULL, 0, &len);
    text.s = malloc(len + 1);
    text.cap = len + 1;
    int rc = !text.s || lflex_model_config(m, text.s, len + 1, &len) ? cli_fail_lib("the model's configuration") : 0;
    text.len = len;
    if (!rc)
        rc = cli_sections_yaml(names, secs, 3, &text);
    if (!rc)
        rc = cli_write_atomic(path, text.s, text.len);
    buf_free(&text);
    cli_section_free(&data);
    cli_section_free(&run);
    cli_section_free(&dflt);
    free(abs_train);
    free(abs_valid);
    free(abs_out);
    return rc;
}

/* The model keys --set may change on a resumed run: the learning rate's
 * schedule and the threads. The rest (shapes, vocabulary, schedule
 * family, loss, optimiser) is the checkpoint's. */
static const char *const resume_keys[] = {"train.lr",           "train.warmup", "train.lr_schedule", "train.total_steps",
                                          "train.min_lr_ratio", "train.threads", NULL};

/* Two values of a key as the same value: numbers by value (3.0e-3 is
 * 0.003), booleans by truth (yes is true), anything else as text. */
static bool same_value(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (*a && *b && !*ea && !*eb)
        return x == y;
    static const char *const truth[][3] = {{"true", "yes", "on"}, {"false", "no", "off"}};
    for (int t = 0; t < 2; t++) {
        bool in_a = false, in_b = false;
        for (int k = 0; k < 3; k++) {
            in_a |= !strcmp(a, truth[t][k]);
            in_b |= !strcmp(b, truth[t][k]);
        }
        if (in_a || in_b)
            return in_a && in_b;
    }
    return !strcmp(a, b);
}

/* On resume the model is the checkpoint's: a model key of the file whose
 * value differs from the checkpoint's is an error naming its place,
 * unless a resumed run may change it (then a warning: --set changes it),
 * and so is a key the model does not have. */
static int check_resumed_keys(const cli_config *c, const char *cfg_path, const char *ckpt, char **overrides, int n_over)
{
    cli_st f;
    if (!c->model.n || cli_st_read(ckpt, &f))
        return 0; /* (the loading of the checkpoint reports a bad file) */
    const char *yaml = json_string_value(json_object_get(f.meta, "lflex.config"));
    cli_config ck = {0};
    int rc = yaml ? cli_config_parse(&ck, ckpt, yaml, strlen(yaml), NULL, 0) : 0;
    for (int i = 0; i < c->model.n && !rc && yaml; i++) {
        const cli_kv *kv = &c->model.items[i], *was = NULL;
        for (int j = 0; j < ck.model.n && !was; j++)
            if (!strcmp(ck.model.items[j].key, kv->key))
                was = &ck.model.items[j];
        bool set = false, changeable = false;
        for (int j = 0; j < n_over; j++)
            set |= !strncmp(overrides[j], kv->key, strlen(kv->key)) && overrides[j][strlen(kv->key)] == '=';
        for (const char *const *k = resume_keys; *k; k++)
            changeable |= !strcmp(*k, kv->key);
        char v[96], w[96];
        if (!was)
            rc = cli_fail("%s:%d:%d: unknown key '%s': the checkpoint's model has no such key", cfg_path, kv->line,
                          kv->col, kv->key);
        else if (!same_value(kv->value, was->value) && !changeable)
            rc = cli_fail("%s:%d:%d: %s: %s differs from %s, the checkpoint's: a resumed run cannot change it (the "
                          "model is the checkpoint's; start a new run to change it)",
                          cfg_path, kv->line, kv->col, kv->key, cli_shown(kv->value, v, sizeof v),
                          cli_shown(was->value, w, sizeof w));
        else if (!same_value(kv->value, was->value) && !set)
            fprintf(stderr, "lflex: warning: %s:%d:%d: %s: %s differs from %s, the checkpoint's, which a resumed run "
                            "keeps (--set %s=... changes it)\n",
                    cfg_path, kv->line, kv->col, kv->key, cli_shown(kv->value, v, sizeof v),
                    cli_shown(was->value, w, sizeof w), kv->key);
    }
    cli_config_free(&ck);
    cli_st_free(&f);
    return rc;
}

enum { OPT_SET = 1, OPT_RESUME, OPT_QUIET };

static const cli_opt train_opts[] = {
    {"set", "KEY=VALUE", "override a key of the configuration, e.g. run.steps=500 or\ntrain.lr=1e-3 (repeatable)",
     OPT_SET},
    {"resume", "CKPT",
     "continue training from a checkpoint of this configuration; --set may then change train.lr, train.warmup, "
     "train.lr_schedule, train.total_steps, train.min_lr_ratio, train.threads and the data, run and sample "
     "sections but for run.seed and run.batch_size; a model key of the file with another value than the "
     "checkpoint's is an error (a warning for those --set may change)",
     OPT_RESUME},
    {"quiet", NULL, "no progress on standard error, only the first and last lines", OPT_QUIET},
    {NULL, NULL, NULL, 0},
};

static const cli_command train_cmd = {
    "train", "CONFIG.yaml [OPTIONS]",
    "Train a model described by a YAML configuration: the model's keys (doc/config.md)\n"
    "and the program's sections data (training and validation files), run (steps, batch\n"
    "size, output directory, intervals) and sample (sampler options for exact match).\n"
    "The checkpoint, log.jsonl and config.yaml are written to run.out; Ctrl-C stops after\n"
    "the current step and saves. See doc/cli.md.",
    "lflex train config.yaml --set run.steps=2000 --set run.out=runs/a\n"
    "lflex train config.yaml --resume runs/a/checkpoint.safetensors \\\n    --set run.steps=4000",
    train_opts};

/* KEY=VALUE of --set: KEY is dotted words (section.key), so that it names
 * one key; VALUE goes into YAML through the emitter, which quotes it. */
static bool override_ok(const char *s)
{
    const char *eq = strchr(s, '=');
    if (!eq)
        return false;
    int words = 0;
    for (const char *c = s; c < eq; words++) {
        size_t k = 0;
        while (c + k < eq && (isalnum((unsigned char)c[k]) || c[k] == '_'))
            k++;
        if (k == 0)
            return false;
        c += k;
        if (c < eq && *c++ != '.')
            return false;
        if (c == eq && c[-1] == '.')
            return false;
    }
    return words >= 2;
}

int cmd_train(int argc, char **argv)
{
    const char *cfg_path = NULL, *resume = NULL, *arg;
    char **overrides = calloc((size_t)argc + 2, sizeof *overrides);
    int n_over = 0, ps = 0;
    run_opts o = {0};
    cli_opts p;
    if (!overrides || cli_opts_begin(&p, &train_cmd, argc, argv)) {
        free(overrides);
        return 1;
    }
    for (int id; !ps && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: ps = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: ps = cli_opts_positional(&train_cmd, arg, (const char **[]){&cfg_path}, 1); break;
        case OPT_SET:
            if (!override_ok(arg)) {
                char v[96];
                cli_fail("option --set: expected SECTION.KEY=VALUE, got '%s'", cli_shown(arg, v, sizeof v));
                ps = 2;
            }
            overrides[n_over++] = (char *)arg;
            break;
        case OPT_RESUME: resume = arg; break;
        case OPT_QUIET: o.quiet = true; break;
        default: break;
        }
    }
    cli_opts_end(&p);
    if (!ps && !cfg_path)
        ps = cli_usage_error(&train_cmd, "the configuration file is missing");
    if (ps) {
        free(overrides);
        return ps < 0 ? 0 : ps;
    }
    /* under mpirun: one process of a data-parallel run, rank 0 the one
     * that logs, evaluates and saves (doc/distributed.md) */
    cli_dist d;
    if (cli_dist_begin(&d)) {
        free(overrides);
        return cli_dist_end(&d, 1);
    }
    const bool lead = d.rank == 0;
    if (!lead)
        o.quiet = true;
    cli_config c;
    if (cli_config_read(&c, cfg_path, overrides, n_over)) {
        free(overrides);
        return cli_dist_end(&d, 1);
    }
    static const char *const data_keys[] = {"train", "valid", "skip_bad_lines", NULL};
    static const char *const run_keys[] = {"steps",     "batch_size", "out",  "log_every", "eval_every",
                                           "eval_examples", "save_every", "seed", "time_limit", NULL};
    const char *train_rel = NULL, *valid_rel = NULL;
    bool skip_bad = false;
    int rc = cli_check_keys(&c.data, "data", data_keys, cfg_path) || cli_check_keys(&c.run, "run", run_keys, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "steps", 1, 1000000000L, 1000, &o.steps, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "batch_size", 1, 1 << 20, 32, &o.batch, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "log_every", 1, 1000000000L, 50, &o.log_every, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "eval_every", 0, 1000000000L, 0, &o.eval_every, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "eval_examples", 1, 1000000000L, 200, &o.eval_examples, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "save_every", 0, 1000000000L, 0, &o.save_every, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "seed", 0, 1L << 62, 1, &o.seed, cfg_path);
    rc = rc || cli_get_int(&c.run, "run", "time_limit", 0, 1000000000L, 0, &o.time_limit, cfg_path);
    rc = rc || cli_get_bool(&c.data, "data", "skip_bad_lines", false, &skip_bad, cfg_path);
    cli_get_str(&c.data, "train", &train_rel);
    cli_get_str(&c.data, "valid", &valid_rel);
    cli_get_str(&c.run, "out", &o.out);
    if (!rc && !train_rel)
        rc = cli_fail("%s: data.train is required", cfg_path);
    if (!rc && !o.out)
        rc = cli_fail("%s: run.out is required (the directory for checkpoints and the log)", cfg_path);
    char *train_path = rc ? NULL : cli_path_near(cfg_path, train_rel);
    char *valid_path = rc || !valid_rel ? NULL : cli_path_near(cfg_path, valid_rel);
    char *out_dir = rc ? NULL : strdup(o.out);
    lflex_model_t *m = NULL;
    cli_data train = {0}, valid = {0};

    /* the model: from a checkpoint, or new (with the vocabulary of the
     * training file when the configuration gives none) */
    if (!rc && resume) {
        /* --set of a model key: only those a resumed run may change */
        char **model_ov = calloc((size_t)n_over + 1, sizeof *model_ov);
        int n_model_ov = 0;
        for (int i = 0; i < n_over && !rc; i++) {
            const char *ov = overrides[i];
            size_t klen = strcspn(ov, "=");
            bool ok = !strncmp(ov, "data.", 5) || !strncmp(ov, "run.", 4) || !strncmp(ov, "sample.", 7);
            for (const char *const *k = resume_keys; *k && !ok; k++)
                if (strlen(*k) == klen && !strncmp(ov, *k, klen)) {
                    ok = true;
                    model_ov[n_model_ov++] = overrides[i];
                }
            if (!ok) {
                cli_buf list = {0};
                for (const char *const *k = resume_keys; *k; k++)
                    buf_printf(&list, "%s, ", *k);
                rc = cli_fail("--set %.*s: a resumed run cannot change it: the model is the checkpoint's (on resume "
                              "--set may change %sand the data, run and sample sections)",
                              (int)klen, ov, list.s);
                buf_free(&list);
            }
        }
        if (!rc)
            rc = check_resumed_keys(&c, cfg_path, resume, overrides, n_over);
        if (!rc && n_model_ov) /* the copy of the checkpoint with the new configuration goes there */
            rc = cli_make_dir(out_dir);
        if (!rc)
            rc = cli_load_resumed(&m, resume, model_ov, n_model_ov, out_dir);
        free(model_ov);
    } else if (!rc) {
        if (!c.has_vocab) {
            char *tokens = NULL;
            rc = cli_vocab_from_file(train_path, c.tokenizer[0] ? c.tokenizer : "words", &tokens);
            if (!rc) {
                size_t n_tok = strlen(tokens);
                char *ov = malloc(n_tok + 16);
                sprintf(ov, "vocab.tokens=%s", tokens);
                overrides[n_over++] = ov;
                cli_config_free(&c);
                rc = cli_config_read(&c, cfg_path, overrides, n_over);
                free(ov);
                n_over--;
            }
            free(tokens);
        }
        if (!rc && lflex_model_new(&m, c.model_yaml, c.model_len))
            rc = cli_config_fail(&c, cfg_path);
    }
    if (!rc)
        rc = cli_dist_attach(&d, m);
    if (!rc && o.batch < d.size)
        rc = cli_fail("run.batch_size: %ld is less than the %d processes; each computes at least one sequence of "
                      "every batch", o.batch, d.size);
    /* the sample section now, not at the first evaluation */
    const char *sample_yaml = c.sample_yaml.s ? c.sample_yaml.s : "steps: 64\ntemperature: 0\n";
    size_t sample_len = strlen(sample_yaml);
    lflex_sampler_t *probe = NULL;
    if (!rc && lflex_sampler_new(&probe, m, sample_yaml, sample_len))
        rc = cli_fail("%s: sample: %s", cfg_path, lflex_last_error());
    lflex_sampler_free(probe);
    if (!rc)
        rc = cli_data_load(&train, m, train_path, skip_bad);
    if (!rc && valid_path)
        rc = cli_data_load(&valid, m, valid_path, skip_bad);
    if (!rc)
        rc = cli_make_dir(out_dir);
    char ckpt[4096], log_path[4096], cfg_out[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out_dir ? out_dir : ".");
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", out_dir ? out_dir : ".");
    snprintf(cfg_out, sizeof cfg_out, "%s/config.yaml", out_dir ? out_dir : ".");
    FILE *log = NULL;
    if (!rc && resume && lead) { /* records after the checkpoint's step were written before a crash */
        int64_t step0;
        size_t dropped;
        lflex_model_get(m, LFLEX_PROP_STEP, &step0);
        rc = cli_log_keep_until(log_path, step0, &dropped);
        if (!rc && dropped && !o.quiet)
            fprintf(stderr, "lflex: %s: %zu line%s after step %" PRId64 " dropped (written after the checkpoint)\n",
                    log_path, dropped, dropped > 1 ? "s" : "", step0);
    }
    if (!rc && lead) {
        log = fopen(log_path, resume ? "a" : "w");
        if (!log)
            rc = cli_fail("%s: %s", log_path, strerror(errno));
    }
    if (!rc && lead) /* the run's full configuration next to its checkpoints */
        rc = write_run_config(cfg_out, m, &o, out_dir, train_path, valid_path, skip_bad, &c.sample);
    o.tty = !o.quiet && isatty(fileno(stderr));
    if (!rc && lead) {
        int64_t n_params, step0;
        lflex_model_get(m, LFLEX_PROP_N_PARAMS, &n_params);
        lflex_model_get(m, LFLEX_PROP_STEP, &step0);
        fprintf(stderr, "lflex: %ld parameters; %zu training examples%s%s; %s",
                (long)n_params, train.n, train.conditional ? " (conditional)" : "",
                train.skipped ? " (some lines skipped)" : "", step0 ? "resuming at step " : "starting");
        if (step0)
            fprintf(stderr, "%ld", (long)step0);
        if (d.size > 1)
            fprintf(stderr, "; %d processes", d.size);
        fprintf(stderr, "; writing %s\n", out_dir);
    }

    /* the batch order: new, or where the checkpoint's run left it */
    batch_order order = {.n = train.n, .perm = rc ? NULL : malloc((train.n ? train.n : 1) * sizeof *order.perm)};
    cli_order saved = {0}; /* the state of the last checkpoint saved (step -1: none) */
    saved.step = -1;
    uint64_t data_hash = rc ? 0 : cli_data_hash(&train);
    if (!rc && !order.perm)
        rc = cli_fail("out of memory");
    if (!rc && resume) {
        int64_t step0;
        char why[512];
        lflex_model_get(m, LFLEX_PROP_STEP, &step0);
        bool found = cli_order_read(resume, step0, &saved, why, sizeof why) == 1;
        if (found && saved.seed != o.seed)
            rc = cli_fail("run.seed: %ld differs from %" PRId64 ", that of the checkpoint's run: a resumed run draws "
                          "the batches the run would have drawn (start a new run to change it)",
                          o.seed, saved.seed);
        else if (found && saved.batch != o.batch)
            rc = cli_fail("run.batch_size: %ld differs from %" PRId64 ", that of the checkpoint's run: a resumed run "
                          "draws the batches the run would have drawn (start a new run to change it)",
                          o.batch, saved.batch);
        else if (found && (saved.examples != train.n || saved.data_hash != data_hash)) {
            if (lead)
                fprintf(stderr, "lflex: warning: %s holds other examples than the checkpoint's run was trained on "
                            "(%zu, it had %" PRIu64 "); the batch order starts again from run.seed\n",
                    train_path, train.n, saved.examples);
            found = false;
        } else if (!found && lead)
            fprintf(stderr, "lflex: warning: %s; the batch order starts again from run.seed, so the run will not "
                            "be the one it would have been without the interruption\n", why);
        order_start(&order, (uint64_t)o.seed, found ? &saved : NULL);
        if (!found)
            saved.step = -1;
    } else if (!rc)
        order_start(&order, (uint64_t)o.seed, NULL);

    /* the loop */
    cli_catch_interrupt();
    int32_t *bt = NULL;
    uint8_t *bf = NULL;
    size_t *boff = rc ? NULL : malloc(((size_t)o.batch + 1) * sizeof *boff), bcap = 0;
    double t_start = cli_now(), t_last = t_start;
    acc_stats acc = {0};
    int64_t step = 0;
    if (!rc)
        lflex_model_get(m, LFLEX_PROP_STEP, &step);
    long first_step = (long)step;
    bool stopped = false;
    int skipped_in_row = 0;
    while (!rc && step < o.steps) {
        /* a batch from a shuffled pass over the data */
        size_t need = 0;
        boff[0] = 0;
        for (long j = 0; j < o.batch; j++) {
            size_t e = order_next(&order), len = train.offsets[e + 1] - train.offsets[e];
            if (need + len > bcap) {
                bcap = (need + len) * 2;
                bt = realloc(bt, bcap * sizeof *bt);
                bf = realloc(bf, bcap);
            }
            memcpy(bt + need, train.tokens + train.offsets[e], len * sizeof *bt);
            memcpy(bf + need, train.fixed + train.offsets[e], len);
            need += len;
            boff[j + 1] = need;
        }
        lflex_train_stats st = {.struct_size = sizeof st};
        int r = cli_dist_step(&d, m, bt, bf, boff, (size_t)o.batch, &st);
        double now = cli_now();
        /* every process stops at the same step, when one of them would */
        stopped = cli_dist_any(&d, cli_interrupted || (o.time_limit && now - t_start >= (double)o.time_limit));
        if (r == LFLEX_ENUMERIC) {
            if (lead)
                fprintf(stderr, "\nlflex: step %ld skipped: %s\n", (long)step + 1, lflex_last_error());
            if (++skipped_in_row >= MAX_SKIPPED_IN_ROW) { /* the weights give nothing finite any more */
                rc = cli_fail("step %ld: %d steps in a row were not finite; stopping (the last checkpoint is "
                              "kept; lower train.lr or raise train.warmup)", (long)step + 1, MAX_SKIPPED_IN_ROW);
                break;
            }
            if (!stopped) /* not a step: nothing to log, evaluate or save again */
                continue;
        } else if (r) {
            rc = cli_fail("train step: %s", cli_dist_error(&d));
            break;
        } else {
            skipped_in_row = 0;
            acc_add(&acc, &st);
            step = (int64_t)st.step;
        }
        bool last = step >= o.steps;
        if (lead && acc.n && (step % o.log_every == 0 || last || stopped)) {
            double dt = now - t_last, tps = acc.tokens / (dt > 0 ? dt : 1e-9);
            double per_step = (now - t_start) / (double)(step - first_step);
            char eta[32];
            cli_format_eta(eta, sizeof eta, per_step * (double)(o.steps - step));
            double n = (double)acc.n;
            cli_buf rec = {0};
            buf_printf(&rec, "{\"step\": %ld", (long)step);
            json_num(&rec, "loss", 6, acc.loss / n);
            json_num(&rec, "unmask", 6, acc.unmask / n);
            json_num(&rec, "insert", 6, acc.insert / n);
            json_num(&rec, "reinforce", 6, acc.reinforce / n);
            json_num(&rec, "reg", 6, acc.reg / n);
            json_num(&rec, "grad_norm", 6, acc.grad_norm / n);
            json_num(&rec, "lr", 6, acc.lr);
            json_fixed(&rec, "tokens_per_s", 1, tps);
            json_fixed(&rec, "elapsed_s", 1, now - t_start);
            log_record(log, &rec);
            if (o.tty) {
                int width = 24, filled = (int)(width * (double)step / (double)o.steps);
                char bar[32];
                for (int i = 0; i < width; i++)
                    bar[i] = i < filled ? '#' : '.';
                bar[width] = '\0';
                fprintf(stderr, "\r[%s] step %ld/%ld  loss %.3f (unmask %.3f insert %.3f)  %.1fk tok/s  ETA %s   ",
                        bar, (long)step, o.steps, acc.loss / n, acc.unmask / n, acc.insert / n, tps / 1000, eta);
            } else if (!o.quiet) {
                fprintf(stderr, "step %ld/%ld loss %.4f unmask %.4f insert %.4f reinforce %.4f reg %.4f "
                                "grad_norm %.3f lr %.3g %.0f tok/s ETA %s\n",
                        (long)step, o.steps, acc.loss / n, acc.unmask / n, acc.insert / n, acc.reinforce / n,
                        acc.reg / n, acc.grad_norm / n, acc.lr, tps, eta);
            }
            memset(&acc, 0, sizeof acc);
            t_last = now;
        }
        if (lead && valid.n && o.eval_every && (step % o.eval_every == 0 || last) && !stopped) {
            double parts[3];
            cli_match mt = {0};
            rc = valid_loss(m, &valid, (size_t)o.eval_examples, (size_t)o.batch, parts);
            if (!rc && valid.conditional)
                rc = cli_exact_match(m, sample_yaml, sample_len, &valid, (size_t)o.eval_examples, NULL, 0, &mt, NULL);
            if (rc)
                break;
            cli_buf rec = {0};
            buf_printf(&rec, "{\"step\": %ld", (long)step);
            json_num(&rec, "valid_loss", 6, parts[0]);
            json_num(&rec, "valid_unmask", 6, parts[1]);
            json_num(&rec, "valid_insert", 6, parts[2]);
            if (valid.conditional) {
                json_fixed(&rec, "exact_match", 4, mt.exact);
                json_fixed(&rec, "token_acc", 4, mt.token_acc);
                buf_printf(&rec, ", \"eval_examples\": %zu", mt.n);
            }
            json_fixed(&rec, "elapsed_s", 1, cli_now() - t_start);
            log_record(log, &rec);
            if (!o.quiet) {
                fprintf(stderr, "%sstep %ld: validation loss %.4f (unmask %.4f insert %.4f)", o.tty ? "\n" : "",
                        (long)step, parts[0], parts[1], parts[2]);
                if (valid.conditional)
                    fprintf(stderr, ", exact match %.1f%%, token accuracy %.1f%% (%zu examples)", 100 * mt.exact,
                            100 * mt.token_acc, mt.n);
                fputc('\n', stderr);
            }
        }
        if (lead && ((o.save_every && step % o.save_every == 0) || last || stopped)) {
            /* the batch order first, with that of the checkpoint still in
             * place: a crash between the two writes leaves a state for
             * whichever checkpoint the file then holds */
            cli_order state = {.step = step, .seed = o.seed, .batch = o.batch, .examples = train.n,
                             .data_hash = data_hash, .epoch = order.epoch, .position = order.at,
                             .epoch_rng = order.epoch_rng};
            cli_order states[2] = {saved, state};
            bool both = saved.step >= 0 && saved.step != step;
            if (cli_order_write(ckpt, both ? states : states + 1, both ? 2 : 1))
                rc = 1;
            else if (lflex_model_save(m, ckpt))
                rc = cli_fail_lib("save");
            if (rc)
                break;
            saved = state;
        }
        if (stopped)
            break;
    }
    if (!rc && o.tty)
        fputc('\n', stderr);
    if (!rc && lead)
        fprintf(stderr, "lflex: %s at step %ld after %.0f s; checkpoint %s\n",
                cli_interrupted ? "interrupted" : (stopped ? "time limit reached" : "done"), (long)step,
                cli_now() - t_start, ckpt);
    if (!rc && lead && d.size > 1 && step > first_step) {
        uint64_t bytes;
        double secs, steps = (double)(step - first_step);
        cli_dist_reduced(&d, &bytes, &secs);
        fprintf(stderr, "lflex: %d processes: %.0f bytes reduced and %.2f ms in the reduction per step (of %.2f ms)\n",
                d.size, (double)bytes / steps, 1e3 * secs / steps, 1e3 * (cli_now() - t_start) / steps);
    }
    if (log)
        fclose(log);
    free(order.perm);
    free(bt);
    free(bf);
    free(boff);
    cli_data_free(&train);
    cli_data_free(&valid);
    lflex_model_free(m);
    cli_config_free(&c);
    free(train_path);
    free(valid_path);
    free(out_dir);
    free(overrides);
    return cli_dist_end(&d, rc ? 1 : (cli_interrupted ? 130 : 0));
}
