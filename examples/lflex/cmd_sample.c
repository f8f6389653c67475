/* lflex sample | eval | order | rates */
#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Options shared by sample and eval: the sampler's keys (doc/config.md).
 * Their values are checked here (the library checks them again), stored
 * in a section and written as YAML by libyaml. */
enum { OPT_STEPS = 100, OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P, OPT_CONFIDENCE, OPT_INSERTION, OPT_SEED, OPT_MAX_LEN,
       OPT_BATCH, OPT_CANDIDATES, OPT_CANDIDATE_SCORE, OPT_CANDIDATE_SPAN, OPT_REVISE, OPT_GRID };

#define SAMPLER_OPTS(temperature_default)                                                                        \
    {"steps", "N", "tau-leaping steps from t = 0 to 1 (1 to 100000; default 64)", OPT_STEPS},                   \
    {"temperature", "T", "softmax temperature, 0: greedy (0 to 100; default " temperature_default ")",          \
     OPT_TEMPERATURE},                                                                                           \
    {"top-k", "K", "sample among the K most likely tokens (0: all, the default; up to 1000000)", OPT_TOP_K},     \
    {"top-p", "P", "sample from the most likely tokens up to probability P (1e-06 to 1; default 1)", OPT_TOP_P}, \
    {"confidence", "MODE", "which masked positions unmask: none (default), top_prob, prob_diff,\nentropy, left_to_right or right_to_left",     \
     OPT_CONFIDENCE},                                                                                            \
    {"insertion", "MODE", "MASKs a gap receives per step: auto (default), poisson or binomial", OPT_INSERTION},  \
    {"seed", "S", "seed of the sampler's random numbers (0 to 2^53 - 1; default 0)", OPT_SEED},                  \
    {"max-len", "N", "longest output in tokens (0: the model's max_len, the default; up to\n65536)", OPT_MAX_LEN}, \
    {"batch", "N", "sequences generated together in one network pass (1 to 65536; default 32)", OPT_BATCH},     \
    {"candidates", "K", "samples per prompt; the one the model scores highest is kept (1 to\n1024; default 1; "    \
     "use a temperature above 0)", OPT_CANDIDATES},                                                              \
    {"candidate-score", "MODE", "a candidate's score from its tokens' log-probabilities: sum (default),\n"          \
     "mean or min", OPT_CANDIDATE_SCORE},                                                                        \
    {"candidate-span", "W", "generated positions masked together when a candidate is scored (1 to\n"              \
     "64; default 1)", OPT_CANDIDATE_SPAN},                                                                      \
    {"revise", "R", "rounds of revision: each output's weakest window generated anew, kept\n"                   \
     "when it scores higher (0 to 64; default 0)", OPT_REVISE},                                                 \
    {"grid", "MODE", "where the steps fall: uniform (default) or events (short steps where\n"                      \
     "insertions crowd)", OPT_GRID}

/* A sampler option into `sf` (key: value); 2 after an error naming it. */
static int sampler_option(cli_section *sf, int id, const char *arg)
{
    static const char *const confidence[] = {"none", "top_prob", "prob_diff", "entropy", "left_to_right", "right_to_left", NULL};
    static const char *const insertion[] = {"auto", "poisson", "binomial", NULL};
    static const char *const score[] = {"sum", "mean", "min", NULL};
    static const char *const grid[] = {"uniform", "events", NULL};
    static const struct {
        int id;
        const char *opt, *key;
        int64_t lo, hi;             /* integers */
        double rlo, rhi;            /* reals (when rhi > 0) */
        const char *const *choices; /* enumerations */
    } table[] = {
        {OPT_STEPS, "steps", "steps", 1, 100000, 0, 0, NULL},
        {OPT_TEMPERATURE, "temperature", "temperature", 0, 0, 0, 100, NULL},
        {OPT_TOP_K, "top-k", "top_k", 0, 1000000, 0, 0, NULL},
        {OPT_TOP_P, "top-p", "top_p", 0, 0, 1e-6, 1, NULL},
        {OPT_CONFIDENCE, "confidence", "confidence", 0, 0, 0, 0, confidence},
        {OPT_INSERTION, "insertion", "insertion", 0, 0, 0, 0, insertion},
        {OPT_SEED, "seed", "seed", 0, (INT64_C(1) << 53) - 1, 0, 0, NULL},
        {OPT_MAX_LEN, "max-len", "max_len", 0, 65536, 0, 0, NULL},
        {OPT_BATCH, "batch", "batch_size", 1, 65536, 0, 0, NULL},
        {OPT_CANDIDATES, "candidates", "candidates", 1, 1024, 0, 0, NULL},
        {OPT_CANDIDATE_SCORE, "candidate-score", "candidate_score", 0, 0, 0, 0, score},
        {OPT_CANDIDATE_SPAN, "candidate-span", "candidate_span", 1, 64, 0, 0, NULL},
        {OPT_REVISE, "revise", "revise", 0, 64, 0, 0, NULL},
        {OPT_GRID, "grid", "grid", 0, 0, 0, 0, grid},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (table[k].id != id)
            continue;
        char v[64];
        int rc, c;
        if (table[k].choices) {
            rc = cli_opt_choice(table[k].opt, arg, table[k].choices, &c);
            if (!rc)
                snprintf(v, sizeof v, "%s", table[k].choices[c]);
        } else if (table[k].rhi > 0) {
            double d;
            rc = cli_opt_real(table[k].opt, arg, table[k].rlo, table[k].rhi, false, &d);
            snprintf(v, sizeof v, "%.17g", d);
        } else {
            int64_t i;
            rc = cli_opt_int(table[k].opt, arg, table[k].lo, table[k].hi, &i);
            snprintf(v, sizeof v, "%" PRId64, i);
        }
        if (!rc)
            cli_section_set(sf, table[k].key, v);
        return rc;
    }
    return cli_fail("internal error: option %d", id);
}

/* The sampler's YAML of the options given (NULL and 0 for none). */
static int sampler_yaml(const cli_section *sf, cli_buf *yaml)
{
    return sf->n ? cli_section_yaml(sf, yaml) : 0;
}

static lflex_model_t *load(const char *path)
{
    lflex_model_t *m = NULL;
    if (lflex_model_load(&m, path)) {
        cli_fail_lib(path);
        return NULL;
    }
    return m;
}

static void print_text(FILE *f, const lflex_model_t *m, const int32_t *ids, size_t n)
{
    size_t need;
    char small[4096];
    if (lflex_model_decode(m, ids, n, small, sizeof small, &need) == LFLEX_OK) {
        fputs(small, f);
        return;
    }
    char *big = malloc(need + 1);
    if (big && lflex_model_decode(m, ids, n, big, need + 1, &need) == LFLEX_OK)
        fputs(big, f);
    free(big);
}

enum { OPT_N = 1, OPT_PROMPT, OPT_PROMPTS, OPT_INFILL, OPT_TIMES, OPT_JSON = 90, OPT_QUIET };

static const cli_opt sample_opts[] = {
    {"n", "N", "sequences per template (1 to 2^53 - 1; default 1)", OPT_N},
    {"prompt", "TEXT", "generate a target after this prompt (repeatable)", OPT_PROMPT},
    {"prompts", "FILE", "a prompt per line of FILE (blank lines skipped), after those of --prompt", OPT_PROMPTS},
    {"infill", "TEXT", "fill a text: [GAP] where tokens may be inserted, [MASK] for one\ntoken (repeatable)",
     OPT_INFILL},
    {"times", NULL, "print every token with the times it was inserted and unmasked", OPT_TIMES},
    {"json", NULL, "print a JSON object per sequence, one a line (JSON lines)", OPT_JSON},
    {"quiet", NULL, "no progress on standard error (shown only when it is a terminal)", OPT_QUIET},
    SAMPLER_OPTS("1"),
    {NULL, NULL, NULL, 0},
};

static const cli_command sample_cmd = {
    "sample", "CKPT [OPTIONS]",
    "Generate sequences with the model of a checkpoint and print each on a line of\n"
    "standard output: N after every prompt (--prompt, --prompts), N for every infilling\n"
    "template (--infill), or N unconditional ones when neither is given. Sequences are\n"
    "generated and printed a batch at a time, so memory does not grow with N; they\n"
    "depend only on the seed, not on the batch size.",
    "lflex sample runs/a/checkpoint.safetensors --n 5 --prompt \"p q\"\n"
    "lflex sample runs/a/checkpoint.safetensors --times --infill \"one [GAP] three\"",
    sample_opts};

/* One template per prompt, infill text, or the unconditional one. */
typedef struct {
    cli_buf ids, open;
    size_t *off, n;
} templates;

static int add_template(templates *t, const int32_t *ids, const uint8_t *open, size_t len)
{
    size_t *off = realloc(t->off, (t->n + 2) * sizeof *off);
    if (!off)
        return cli_fail("out of memory");
    t->off = off;
    if (t->n == 0)
        off[0] = 0;
    buf_add(&t->ids, (const char *)ids, len * sizeof *ids);
    buf_add(&t->open, (const char *)open, len);
    off[t->n + 1] = off[t->n] + len;
    t->n++;
    return 0;
}

/* Print generated sequences: the target (after BOS when there is one,
 * without the final EOS), or every token with its times. */
static void print_generated(const lflex_model_t *m, const int32_t *o, size_t len, const float *tin, const float *tum)
{
    if (tin) {
        for (size_t i = 0; i < len; i++) {
            char tok[256];
            size_t tl;
            if (lflex_model_decode(m, o + i, 1, tok, sizeof tok, &tl))
                snprintf(tok, sizeof tok, "%d", o[i]);
            printf("%s%s@%.3f/%.3f", i ? " " : "", tok, tin[i], tum[i]);
        }
        putchar('\n');
        return;
    }
    size_t b = 0;
    for (size_t i = 0; i < len; i++)
        if (o[i] == LFLEX_TOKEN_BOS)
            b = i + 1;
    print_text(stdout, m, o + b, len - b - 1);
    putchar('\n');
}

/* The same as one line of JSON: {"template", "prompt" or "infill", "text"
 * and, with times, "tokens": [{"token", "inserted", "unmasked"}]}. */
static int print_generated_json(const lflex_model_t *m, const int32_t *o, size_t len, const float *tin,
                                const float *tum, size_t k, const char *prompt, const char *infill)
{
    size_t b = 0;
    for (size_t i = 0; i < len; i++)
        if (o[i] == LFLEX_TOKEN_BOS)
            b = i + 1;
    json_t *j = json_object();
    int bad = cli_json_set(j, "template", json_integer((json_int_t)k));
    if (prompt)
        bad |= cli_json_set(j, "prompt", cli_json_string(prompt));
    if (infill)
        bad |= cli_json_set(j, "infill", cli_json_string(infill));
    bad |= cli_json_set(j, "text", cli_json_text(m, o + b, len - b - 1));
    if (tin) {
        json_t *toks = json_array();
        bad |= cli_json_set(j, "tokens", toks);
        for (size_t i = 0; i < len && !bad; i++) {
            json_t *t = json_object();
            bad |= cli_json_set(t, "token", cli_json_text(m, o + i, 1)) || cli_json_set(t, "id", json_integer(o[i])) ||
                   cli_json_set(t, "inserted", cli_json_real(tin[i])) ||
                   cli_json_set(t, "unmasked", cli_json_real(tum[i])) || json_array_append_new(toks, t);
        }
    }
    if (bad) {
        json_decref(j);
        return cli_fail("JSON output: out of memory");
    }
    return cli_json_print(j, true);
}

int cmd_sample(int argc, char **argv)
{
    const char *ckpt = NULL, *prompts_file = NULL, *arg;
    int64_t n = 1;
    bool times = false, json = false, quiet = false;
    cli_section sf = {0};
    char **prompts = calloc((size_t)argc + 1, sizeof *prompts), **infills = calloc((size_t)argc + 1, sizeof *infills);
    int n_prompts = 0, n_infills = 0, rc = 0;
    cli_opts p;
    if (!prompts || !infills || cli_opts_begin(&p, &sample_cmd, argc, argv)) {
        free(prompts);
        free(infills);
        return 1;
    }
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: rc = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: rc = cli_opts_positional(&sample_cmd, arg, (const char **[]){&ckpt}, 1); break;
        case OPT_N: rc = cli_opt_int("n", arg, 1, (INT64_C(1) << 53) - 1, &n); break;
        case OPT_PROMPT: prompts[n_prompts++] = (char *)arg; break;
        case OPT_PROMPTS: prompts_file = arg; break;
        case OPT_INFILL: infills[n_infills++] = (char *)arg; break;
        case OPT_TIMES: times = true; break;
        case OPT_JSON: json = true; break;
        case OPT_QUIET: quiet = true; break;
        default: rc = sampler_option(&sf, id, arg); break;
        }
    }
    cli_opts_end(&p);
    if (!rc && !ckpt)
        rc = cli_usage_error(&sample_cmd, "the checkpoint is missing");
    if (rc) {
        free(prompts);
        free(infills);
        cli_section_free(&sf);
        return rc < 0 ? 0 : rc;
    }
    cli_buf yaml = {0};
    lflex_model_t *m = sampler_yaml(&sf, &yaml) ? NULL : load(ckpt);
    if (!m) {
        free(prompts);
        free(infills);
        cli_section_free(&sf);
        buf_free(&yaml);
        return 1;
    }
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    /* templates: every prompt (from flags and file), every infill text, or
     * unconditional; each used n times, one after another */
    templates tp = {{0}, {0}, NULL, 0};
    int32_t *ids = malloc(((size_t)max_len + 1) * sizeof *ids);
    uint8_t *open = malloc((size_t)max_len + 1);
    char *file_text = NULL;
    size_t file_len = 0;
    bool reserved = cli_reads_reserved(m);
    int n_args = n_prompts; /* prompts from --prompt, before those of the file */
    if (prompts_file) {
        file_text = cli_read_file(prompts_file, &file_len);
        if (!file_text)
            rc = cli_fail("%s: %s", prompts_file, strerror(errno));
        cli_lines it = {.text = file_text, .len = file_len};
        char *line, why[160];
        size_t ll, col;
        while (!rc && cli_next_line(&it, &line, &ll)) {
            if (cli_line_problem(line, ll, reserved, &col, why, sizeof why))
                rc = cli_fail("%s:%zu:%zu: %s", prompts_file, it.line_no, col, why);
            else if (ll) {
                prompts = realloc(prompts, ((size_t)n_prompts + 2) * sizeof *prompts);
                prompts[n_prompts++] = line;
            }
        }
    }
    int kinds = n_prompts + n_infills ? n_prompts + n_infills : 1;
    for (int k = 0; k < kinds && !rc; k++) {
        size_t len = 0;
        if (k < n_prompts) {
            size_t np, col;
            char why[160];
            if (k < n_args && cli_line_problem(prompts[k], strlen(prompts[k]), reserved, &col, why, sizeof why)) {
                rc = cli_fail("--prompt %d, column %zu: %s", k + 1, col, why);
                break;
            }
            if (lflex_model_encode(m, prompts[k], strlen(prompts[k]), ids, (size_t)max_len, &np)) {
                rc = cli_fail("prompt %d: %s", k + 1, lflex_last_error());
                break;
            }
            if (np + 2 > (size_t)max_len) {
                rc = cli_fail("prompt %d is too long for the model's max_len %ld", k + 1, (long)max_len);
                break;
            }
            memset(open, 0, np + 2);
            ids[np] = LFLEX_TOKEN_BOS;
            ids[np + 1] = LFLEX_TOKEN_EOS;
            open[np + 1] = 1;
            len = np + 2;
        } else if (k - n_prompts < n_infills) {
            if ((rc = cli_encode_marked(m, infills[k - n_prompts], ids, open, (size_t)max_len, &len)))
                break;
        } else {
            ids[0] = LFLEX_TOKEN_EOS;
            open[0] = 1;
            len = 1;
        }
        rc = add_template(&tp, ids, open, len);
    }
    if (!rc && (uint64_t)n > UINT64_MAX / 2 / (uint64_t)kinds)
        rc = cli_fail("--n %" PRId64 " times %d templates is too many sequences", n, kinds);
    lflex_sampler_t *s = NULL;
    if (!rc && lflex_sampler_new(&s, m, yaml.s, yaml.len))
        rc = cli_fail_lib("sampler");
    /* sequence j (of kinds x n) is template j / n; they are generated a
     * chunk at a time (the sampler's batch), so memory is bounded by the
     * chunk, and the first lines come out at once */
    const char *bs = NULL;
    cli_get_str(&sf, "batch_size", &bs);
    size_t chunk = bs ? (size_t)strtol(bs, NULL, 10) : 32;
    size_t cap = chunk * (size_t)max_len;
    cli_buf cb_ids = {0}, cb_open = {0};
    size_t *toff = malloc((chunk + 1) * sizeof *toff), *ooff = malloc((chunk + 1) * sizeof *ooff);
    int32_t *out = malloc(cap * sizeof *out);
    float *tin = times ? malloc(cap * sizeof *tin) : NULL, *tum = times ? malloc(cap * sizeof *tum) : NULL;
    if (!rc && (!toff || !ooff || !out || (times && (!tin || !tum))))
        rc = cli_fail("out of memory");
    uint64_t total = rc ? 0 : (uint64_t)kinds * (uint64_t)n;
    cli_progress prog;
    cli_progress_begin(&prog, quiet, total, "seq");
    for (uint64_t j0 = 0; j0 < total && !rc; j0 += chunk) {
        size_t cn = total - j0 < chunk ? (size_t)(total - j0) : chunk;
        cb_ids.len = cb_open.len = 0;
        toff[0] = 0;
        for (size_t j = 0; j < cn; j++) {
            size_t k = (size_t)((j0 + j) / (uint64_t)n), a = tp.off[k], len = tp.off[k + 1] - a;
            buf_add(&cb_ids, tp.ids.s + a * sizeof *ids, len * sizeof *ids);
            buf_add(&cb_open, tp.open.s + a, len);
            toff[j + 1] = toff[j] + len;
        }
        if (lflex_sampler_generate_batch(s, (const int32_t *)cb_ids.s, (const uint8_t *)cb_open.s, toff, cn, out, cap,
                                         ooff, tin, tum)) {
            cli_progress_end(&prog);
            rc = cli_fail_lib("generate");
            break;
        }
        cli_progress_clear(&prog);
        for (size_t j = 0; j < cn && !rc; j++) {
            size_t k = (size_t)((j0 + j) / (uint64_t)n);
            if (json)
                rc = print_generated_json(m, out + ooff[j], ooff[j + 1] - ooff[j], tin ? tin + ooff[j] : NULL,
                                          tum ? tum + ooff[j] : NULL, k, k < (size_t)n_prompts ? prompts[k] : NULL,
                                          k >= (size_t)n_prompts && k - (size_t)n_prompts < (size_t)n_infills
                                              ? infills[k - (size_t)n_prompts]
                                              : NULL);
            else
                print_generated(m, out + ooff[j], ooff[j + 1] - ooff[j], tin ? tin + ooff[j] : NULL,
                                tum ? tum + ooff[j] : NULL);
        }
        if (!rc && (fflush(stdout) || ferror(stdout))) /* a closed pipe when SIGPIPE is ignored */
            rc = cli_fail("standard output: %s", strerror(errno));
        cli_progress_update(&prog, j0 + cn);
    }
    cli_progress_end(&prog);
    free(out);
    free(ooff);
    free(toff);
    free(tin);
    free(tum);
    free(ids);
    free(open);
    free(tp.off);
    free(file_text);
    free(prompts);
    free(infills);
    buf_free(&tp.ids);
    buf_free(&tp.open);
    buf_free(&cb_ids);
    buf_free(&cb_open);
    buf_free(&yaml);
    cli_section_free(&sf);
    lflex_sampler_free(s);
    lflex_model_free(m);
    return rc;
}

static const cli_opt eval_opts[] = {
    {"n", "N", "evaluate the first N examples (1 to 2^53 - 1; default 1000)", OPT_N},
    {"json", NULL, "print the results as one JSON object", OPT_JSON},
    {"quiet", NULL, "no progress on standard error (shown only when it is a terminal)", OPT_QUIET},
    SAMPLER_OPTS("0"),
    {NULL, NULL, NULL, 0},
};

static const cli_command eval_cmd = {
    "eval", "CKPT DATA [OPTIONS]",
    "Evaluate a checkpoint on a data file (a TARGET or PROMPT<TAB>TARGET per line): the\n"
    "validation loss with its unmasking and insertion parts over the first N examples,\n"
    "and, when the examples have prompts, the exact match and token accuracy of targets\n"
    "generated after the prompts, with the sampler of the run's sample section (config.yaml\n"
    "next to the checkpoint) where the options do not say otherwise (greedy unless a\n"
    "temperature is given).",
    "lflex eval runs/a/checkpoint.safetensors test.txt --n 200 --steps 64",
    eval_opts};

int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *data = NULL, *arg;
    int64_t n = 1000;
    bool json = false, quiet = false;
    cli_section sf = {0};
    int rc = 0;
    cli_opts p;
    if (cli_opts_begin(&p, &eval_cmd, argc, argv))
        return 1;
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: rc = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: rc = cli_opts_positional(&eval_cmd, arg, (const char **[]){&ckpt, &data}, 2); break;
        case OPT_N: rc = cli_opt_int("n", arg, 1, (INT64_C(1) << 53) - 1, &n); break;
        case OPT_JSON: json = true; break;
        case OPT_QUIET: quiet = true; break;
        default: rc = sampler_option(&sf, id, arg); break;
        }
    }
    cli_opts_end(&p);
    if (!rc && !data)
        rc = cli_usage_error(&eval_cmd, "%s is missing", ckpt ? "the data file" : "the checkpoint");
    if (rc) {
        cli_section_free(&sf);
        return rc < 0 ? 0 : rc;
    }
    /* the run's sampler (the sample section of config.yaml next to the
     * checkpoint, as lflex train writes it) for the keys not given here */
    cli_config run;
    char *run_path = NULL;
    int have = cli_run_config(ckpt, &run, &run_path);
    for (int i = 0; have == 1 && i < run.sample.n; i++) {
        const char *given = NULL;
        cli_get_str(&sf, run.sample.items[i].key, &given);
        if (!given)
            cli_section_set(&sf, run.sample.items[i].key, run.sample.items[i].value);
    }
    if (have == 1)
        cli_config_free(&run);
    free(run_path);
    if (have < 0) {
        cli_section_free(&sf);
        return 1;
    }
    const char *temp = NULL;
    cli_get_str(&sf, "temperature", &temp);
    if (!temp) /* exact match of the most likely generation by default */
        cli_section_set(&sf, "temperature", "0");
    cli_buf yaml = {0};
    if (sampler_yaml(&sf, &yaml)) {
        cli_section_free(&sf);
        return 1;
    }
    cli_section_free(&sf);
    lflex_model_t *m = load(ckpt);
    cli_data d = {0};
    if (!m || cli_data_load(&d, m, data, false)) {
        lflex_model_free(m);
        buf_free(&yaml);
        return 1;
    }
    size_t use = (size_t)n < d.n ? (size_t)n : d.n;
    /* validation loss in batches of 32 with fixed times and states */
    double loss = 0, um = 0, ins = 0;
    size_t batches = 0;
    cli_progress prog;
    cli_progress_begin(&prog, quiet, use, "ex");
    for (size_t b0 = 0; b0 < use && !rc; b0 += 32, batches++) {
        size_t b1 = b0 + 32 < use ? b0 + 32 : use, off[33];
        for (size_t j = b0; j <= b1; j++)
            off[j - b0] = d.offsets[j] - d.offsets[b0];
        lflex_train_stats st = {.struct_size = sizeof st};
        if (lflex_model_eval_loss(m, d.tokens + d.offsets[b0], d.fixed + d.offsets[b0], off, b1 - b0, 1000 + batches,
                                  &st))
            rc = cli_fail_lib("loss");
        loss += st.unmask_loss + st.insert_loss;
        um += st.unmask_loss;
        ins += st.insert_loss;
        cli_progress_update(&prog, b1);
    }
    cli_progress_end(&prog);
    if (!rc && !json) {
        printf("examples:        %zu of %s\n", use, data);
        printf("validation loss: %.4f (unmask %.4f, insert %.4f)\n", loss / (double)batches, um / (double)batches,
               ins / (double)batches);
        fflush(stdout);
    }
    cli_match mt = {0};
    if (!rc && d.conditional) {
        /* the sampler's steps (its total is known at the first one) */
        cli_progress_begin(&prog, quiet, 1, "step");
        rc = cli_exact_match(m, yaml.s, yaml.len, &d, use, NULL, 0, &mt, &prog);
        cli_progress_end(&prog);
        if (!rc && !json) {
            printf("exact match:     %.2f%%\n", 100 * mt.exact);
            printf("token accuracy:  %.2f%%\n", 100 * mt.token_acc);
        }
    }
    if (!rc && json) {
        /* exact_match and token_accuracy are fractions, null without prompts */
        json_t *j = json_object();
        int bad = cli_json_set(j, "checkpoint", cli_json_string(ckpt)) || cli_json_set(j, "data", cli_json_string(data)) ||
                  cli_json_set(j, "examples", json_integer((json_int_t)use)) ||
                  cli_json_set(j, "validation_loss", cli_json_real(loss / (double)batches)) ||
                  cli_json_set(j, "unmask_loss", cli_json_real(um / (double)batches)) ||
                  cli_json_set(j, "insert_loss", cli_json_real(ins / (double)batches)) ||
                  cli_json_set(j, "exact_match", d.conditional ? cli_json_real(mt.exact) : json_null()) ||
                  cli_json_set(j, "token_accuracy", d.conditional ? cli_json_real(mt.token_acc) : json_null());
        if (bad) {
            json_decref(j);
            rc = cli_fail("JSON output: out of memory");
        } else
            rc = cli_json_print(j, false);
    }
    cli_data_free(&d);
    lflex_model_free(m);
    buf_free(&yaml);
    return rc;
}

static const cli_opt order_opts[] = {
    {"json", NULL, "print the order as one JSON object", OPT_JSON},
    {NULL, NULL, NULL, 0},
};

static const cli_command order_cmd = {
    "order", "CKPT TEXT",
    "Print the insertion order the model learned for a clean text (a target, or\n"
    "PROMPT<TAB>TARGET): for every token of the target its insertion shape b_in, its\n"
    "expected insertion time drawn on a line from t = 0 to 1, and its place in the order\n"
    "(shapes within 2 % of each other share a place, marked =), then the order in one line\n"
    "with tied tokens in brackets.",
    "lflex order runs/a/checkpoint.safetensors \"$(printf 'p q\\ta b c')\"",
    order_opts};

/* Commands with positional arguments (exactly `want` of them) and --json. */
static int positional_only(const cli_command *c, int argc, char **argv, const char **pos, int want, bool *json)
{
    cli_opts p;
    const char *arg;
    int got = 0, rc = 0;
    if (cli_opts_begin(&p, c, argc, argv))
        return 1;
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        if (id == CLI_OPT_EXIT)
            rc = p.status ? p.status : -1;
        else if (id == OPT_JSON)
            *json = true;
        else if (got < want)
            pos[got++] = arg;
        else
            rc = cli_usage_error(c, "unexpected argument '%s'", arg);
    }
    cli_opts_end(&p);
    if (!rc && got < want)
        rc = cli_usage_error(c, "%d argument%s missing", want - got, want - got > 1 ? "s are" : " is");
    return rc;
}

int cmd_order(int argc, char **argv)
{
    const char *pos[2];
    bool json = false;
    int st = positional_only(&order_cmd, argc, argv, pos, 2, &json);
    if (st)
        return st < 0 ? 0 : st;
    lflex_model_t *m = load(pos[0]);
    if (!m)
        return 1;
    cli_data d = {0};
    int rc = cli_example(m, pos[1], &d);
    if (!rc && json) {
        json_t *j = NULL;
        rc = cli_order_json(m, d.tokens, d.fixed, d.offsets[1], &j);
        if (!rc)
            rc = cli_json_print(j, false);
    } else if (!rc)
        rc = cli_print_order(stdout, m, d.tokens, d.fixed, d.offsets[1]);
    cli_data_free(&d);
    lflex_model_free(m);
    return rc;
}

enum { OPT_T = 1, OPT_TOP };

static const cli_opt rates_opts[] = {
    {"t", "T", "the time, from 0 to 1 (excluded; default 0.5)", OPT_T},
    {"top", "N", "most likely tokens shown for each masked position (0 to 1000000;\ndefault 3)", OPT_TOP},
    {"json", NULL, "print the rates as one JSON object", OPT_JSON},
    {NULL, NULL, NULL, 0},
};

static const cli_command rates_cmd = {
    "rates", "CKPT TEXT [OPTIONS]",
    "Print the generator's rates at time T on a partial text, where [MASK] marks a masked\n"
    "position: for every position the rate of inserting a MASK into the gap on its left\n"
    "and, at masked positions, the unmasking rate and the most likely tokens.",
    "lflex rates runs/a/checkpoint.safetensors \"a [MASK] c\" --t 0.3",
    rates_opts};

/* The token of rank r (0: the most likely; ties to the lower id) among
 * the user tokens of a row of probabilities, or -1. */
static int64_t rth_likely(const float *row, int64_t V, int64_t r)
{
    for (int64_t v = LFLEX_TOKEN_FIRST_USER; v < V; v++) {
        int64_t rank = 0;
        for (int64_t w = LFLEX_TOKEN_FIRST_USER; w < V; w++)
            rank += row[w] > row[v] || (row[w] == row[v] && w < v);
        if (rank == r)
            return v;
    }
    return -1;
}

/* rates --json: {"t", "positions": [{"pos", "token", "insert_rate",
 * "unmask_rate", "top": [{"token", "p"}] (masked positions only)}]}. */
static int rates_json(const lflex_model_t *m, const int32_t *x, size_t n, double t, const float *probs,
                      const float *um, const float *ins, int64_t V, int64_t top)
{
    json_t *j = json_object(), *pos = json_array();
    int bad = cli_json_set(j, "t", cli_json_real(t)) || cli_json_set(j, "positions", pos);
    for (size_t k = 0; k < n && !bad; k++) {
        json_t *o = json_object();
        bad = cli_json_set(o, "pos", json_integer((json_int_t)k)) || cli_json_set(o, "token", cli_json_text(m, x + k, 1)) ||
              cli_json_set(o, "insert_rate", cli_json_real(ins[k])) ||
              cli_json_set(o, "unmask_rate", cli_json_real(um[k])) || json_array_append_new(pos, o);
        if (bad || x[k] != LFLEX_TOKEN_MASK)
            continue;
        json_t *best = json_array();
        bad = cli_json_set(o, "top", best);
        for (int64_t r = 0; r < top && !bad; r++) {
            int64_t v = rth_likely(probs + k * (size_t)V, V, r);
            if (v < 0)
                break;
            int32_t id = (int32_t)v;
            json_t *e = json_object();
            bad = cli_json_set(e, "token", cli_json_text(m, &id, 1)) ||
                  cli_json_set(e, "p", cli_json_real(probs[k * (size_t)V + (size_t)v])) ||
                  json_array_append_new(best, e);
        }
    }
    if (bad) {
        json_decref(j);
        return cli_fail("JSON output: out of memory");
    }
    return cli_json_print(j, false);
}

int cmd_rates(int argc, char **argv)
{
    const char *ckpt = NULL, *text = NULL, *arg;
    double t = 0.5;
    int64_t top = 3;
    bool json = false;
    int rc = 0;
    cli_opts p;
    if (cli_opts_begin(&p, &rates_cmd, argc, argv))
        return 1;
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: rc = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: rc = cli_opts_positional(&rates_cmd, arg, (const char **[]){&ckpt, &text}, 2); break;
        case OPT_T: rc = cli_opt_real("t", arg, 0, 1, true, &t); break;
        case OPT_TOP: rc = cli_opt_int("top", arg, 0, 1000000, &top); break;
        case OPT_JSON: json = true; break;
        default: break;
        }
    }
    cli_opts_end(&p);
    if (!rc && !text)
        rc = cli_usage_error(&rates_cmd, "%s is missing", ckpt ? "the text" : "the checkpoint");
    if (rc)
        return rc < 0 ? 0 : rc;
    lflex_model_t *m = load(ckpt);
    if (!m)
        return 1;
    int64_t max_len, V;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    lflex_model_get(m, LFLEX_PROP_VOCAB_SIZE, &V);
    int32_t *x = malloc((size_t)max_len * sizeof *x);
    uint8_t *open = malloc((size_t)max_len);
    size_t n = 0;
    rc = cli_encode_marked(m, text, x, open, (size_t)max_len, &n);
    float *probs = rc ? NULL : malloc(n * (size_t)V * sizeof *probs), *um = malloc(n * sizeof *um),
          *ins = malloc(n * sizeof *ins);
    if (!rc && lflex_model_rates(m, x, n, t, probs, um, ins))
        rc = cli_fail_lib("rates");
    if (!rc && json)
        rc = rates_json(m, x, n, t, probs, um, ins, V, top);
    else if (!rc) {
        printf("t = %.3f\n%5s  %-12s %12s %12s  %s\n", t, "pos", "token", "insert rate", "unmask rate",
               top ? "most likely tokens" : "");
        for (size_t k = 0; k < n; k++) {
            char tok[64];
            size_t len;
            if (lflex_model_decode(m, x + k, 1, tok, sizeof tok, &len))
                snprintf(tok, sizeof tok, "%d", x[k]);
            printf("%5zu  %-12s %12.4g %12.4g  ", k, tok, ins[k], um[k]);
            if (x[k] == LFLEX_TOKEN_MASK)
                for (int64_t r = 0; r < top; r++) {
                    int64_t best = rth_likely(probs + k * (size_t)V, V, r);
                    if (best < 0)
                        break;
                    int32_t id = (int32_t)best;
                    if (lflex_model_decode(m, &id, 1, tok, sizeof tok, &len))
                        snprintf(tok, sizeof tok, "%d", id);
                    printf("%s %.3f  ", tok, probs[k * (size_t)V + (size_t)best]);
                }
            putchar('\n');
        }
    }
    free(x);
    free(open);
    free(probs);
    free(um);
    free(ins);
    lflex_model_free(m);
    return rc;
}
