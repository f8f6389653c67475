/* lflex sample | eval | order | rates */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Sampler options from flags, as sampler YAML. */
typedef struct {
    cli_buf yaml;
} sampler_flags;

/* Consumes argv[i] (and its value) when it is a sampler flag. */
static bool sampler_flag(sampler_flags *sf, int argc, char **argv, int *i)
{
    static const char *const flags[][2] = {{"--steps", "steps"},         {"--temperature", "temperature"},
                                           {"--top-k", "top_k"},         {"--top-p", "top_p"},
                                           {"--confidence", "confidence"}, {"--seed", "seed"},
                                           {"--max-len", "max_len"},     {"--batch", "batch_size"},
                                           {"--insertion", "insertion"}};
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
        if (!strcmp(argv[*i], flags[k][0]) && *i + 1 < argc) {
            buf_printf(&sf->yaml, "%s: %s\n", flags[k][1], argv[++*i]);
            return true;
        }
    return false;
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

int cmd_sample(int argc, char **argv)
{
    const char *ckpt = NULL, *prompts_file = NULL;
    long n = 1;
    bool times = false;
    sampler_flags sf = {{0}};
    char **prompts = calloc((size_t)argc + 1, sizeof *prompts), **infills = calloc((size_t)argc + 1, sizeof *infills);
    int n_prompts = 0, n_infills = 0, rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        if (sampler_flag(&sf, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompts[n_prompts++] = argv[++i];
        else if (!strcmp(argv[i], "--infill") && i + 1 < argc)
            infills[n_infills++] = argv[++i];
        else if (!strcmp(argv[i], "--prompts") && i + 1 < argc)
            prompts_file = argv[++i];
        else if (!strcmp(argv[i], "--times"))
            times = true;
        else if (argv[i][0] != '-' && !ckpt)
            ckpt = argv[i];
        else
            rc = 2;
    }
    if (rc || !ckpt || n < 1) {
        fprintf(stderr, "usage: lflex sample CKPT [--n N] [--prompt TEXT]... [--prompts FILE] [--infill TEXT]...\n"
                        "                   [--steps N] [--temperature T] [--top-k K] [--top-p P]\n"
                        "                   [--confidence none|top_prob|prob_diff|entropy] [--insertion auto|poisson|binomial]\n"
                        "                   [--seed S] [--max-len N] [--times]\n");
        free(prompts);
        free(infills);
        buf_free(&sf.yaml);
        return 2;
    }
    lflex_model_t *m = load(ckpt);
    if (!m) {
        free(prompts);
        free(infills);
        buf_free(&sf.yaml);
        return 1;
    }
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    /* templates: every prompt (from flags and file), every infill text, or
     * unconditional; each repeated n times */
    cli_buf tb = {0}, ob = {0};
    size_t n_tmpl = 0, cap_off = 16;
    size_t *toff = malloc(cap_off * sizeof *toff);
    toff[0] = 0;
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
        for (long r = 0; r < n; r++) {
            buf_add(&tb, (const char *)ids, len * sizeof *ids);
            buf_add(&ob, (const char *)open, len);
            if (n_tmpl + 2 > cap_off) {
                cap_off *= 2;
                toff = realloc(toff, cap_off * sizeof *toff);
            }
            toff[n_tmpl + 1] = toff[n_tmpl] + len;
            n_tmpl++;
        }
    }
    lflex_sampler_t *s = NULL;
    if (!rc && lflex_sampler_new(&s, m, sf.yaml.s, sf.yaml.len))
        rc = cli_fail_lib("sampler");
    size_t cap = n_tmpl * (size_t)max_len;
    int32_t *out = malloc((cap ? cap : 1) * sizeof *out);
    size_t *ooff = malloc((n_tmpl + 1) * sizeof *ooff);
    float *tin = times ? malloc((cap ? cap : 1) * sizeof *tin) : NULL, *tum = times ? malloc((cap ? cap : 1) * sizeof *tum) : NULL;
    if (!rc && lflex_sampler_generate_batch(s, (const int32_t *)tb.s, (const uint8_t *)ob.s, toff, n_tmpl, out, cap,
                                            ooff, tin, tum))
        rc = cli_fail_lib("generate");
    for (size_t j = 0; j < n_tmpl && !rc; j++) {
        const int32_t *o = out + ooff[j];
        size_t len = ooff[j + 1] - ooff[j];
        if (times) {
            for (size_t i = 0; i < len; i++) {
                char tok[256];
                size_t tl;
                if (lflex_model_decode(m, o + i, 1, tok, sizeof tok, &tl))
                    snprintf(tok, sizeof tok, "%d", o[i]);
                printf("%s%s@%.3f/%.3f", i ? " " : "", tok, tin[ooff[j] + i], tum[ooff[j] + i]);
            }
            putchar('\n');
            continue;
        }
        /* the generated target: after BOS when there is one, without the final EOS */
        size_t b = 0;
        for (size_t i = 0; i < len; i++)
            if (o[i] == LFLEX_TOKEN_BOS)
                b = i + 1;
        print_text(stdout, m, o + b, len - b - 1);
        putchar('\n');
    }
    free(out);
    free(ooff);
    free(tin);
    free(tum);
    free(ids);
    free(open);
    free(toff);
    free(file_text);
    free(prompts);
    free(infills);
    buf_free(&tb);
    buf_free(&ob);
    buf_free(&sf.yaml);
    lflex_sampler_free(s);
    lflex_model_free(m);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *data = NULL;
    long n = 1000;
    sampler_flags sf = {{0}};
    int rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        if (sampler_flag(&sf, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (argv[i][0] != '-' && !ckpt)
            ckpt = argv[i];
        else if (argv[i][0] != '-' && !data)
            data = argv[i];
        else
            rc = 2;
    }
    if (rc || !ckpt || !data || n < 1) {
        fprintf(stderr, "usage: lflex eval CKPT DATA [--n N] [--steps N] [--temperature T] [--confidence MODE] "
                        "[--insertion MODE] [--seed S]\n");
        buf_free(&sf.yaml);
        return 2;
    }
    if (!strstr(sf.yaml.s ? sf.yaml.s : "", "temperature"))
        buf_printf(&sf.yaml, "temperature: 0\n"); /* exact match of the most likely generation by default */
    lflex_model_t *m = load(ckpt);
    cli_data d = {0};
    if (!m || cli_data_load(&d, m, data, false)) {
        lflex_model_free(m);
        buf_free(&sf.yaml);
        return 1;
    }
    size_t use = (size_t)n < d.n ? (size_t)n : d.n;
    /* validation loss in batches of 32 with fixed times and states */
    double loss = 0, um = 0, ins = 0;
    size_t batches = 0;
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
    }
    if (!rc) {
        printf("examples:        %zu of %s\n", use, data);
        printf("validation loss: %.4f (unmask %.4f, insert %.4f)\n", loss / (double)batches, um / (double)batches,
               ins / (double)batches);
    }
    if (!rc && d.conditional) {
        cli_match mt;
        rc = cli_exact_match(m, sf.yaml.s, sf.yaml.len, &d, use, NULL, 0, &mt);
        if (!rc) {
            printf("exact match:     %.2f%%\n", 100 * mt.exact);
            printf("token accuracy:  %.2f%%\n", 100 * mt.token_acc);
        }
    }
    cli_data_free(&d);
    lflex_model_free(m);
    buf_free(&sf.yaml);
    return rc;
}

int cmd_order(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: lflex order CKPT TEXT   (TEXT: a target, or PROMPT<TAB>TARGET)\n");
        return 2;
    }
    lflex_model_t *m = load(argv[0]);
    if (!m)
        return 1;
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    cli_data d = {0};
    int32_t *p = malloc((size_t)max_len * sizeof *p), *t = malloc((size_t)max_len * sizeof *t);
    const char *text = argv[1], *tab = strchr(text, '\t');
    size_t np = 0, nt = 0;
    int rc = 0;
    if ((tab && lflex_model_encode(m, text, (size_t)(tab - text), p, (size_t)max_len, &np)) ||
        lflex_model_encode(m, tab ? tab + 1 : text, strlen(tab ? tab + 1 : text), t, (size_t)max_len, &nt))
        rc = cli_fail_lib("encode");
    if (!rc && (tab ? np + 1 : 0) + nt + 1 > (size_t)max_len)
        rc = cli_fail("the text is longer than the model's max_len %ld", (long)max_len);
    if (!rc)
        rc = cli_data_add(&d, tab ? p : NULL, np, t, nt);
    if (!rc)
        rc = cli_print_order(stdout, m, d.tokens, d.fixed, d.offsets[1]);
    free(p);
    free(t);
    cli_data_free(&d);
    lflex_model_free(m);
    return rc;
}

int cmd_rates(int argc, char **argv)
{
    const char *ckpt = NULL, *text = NULL;
    double t = 0.5;
    long top = 3;
    int rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--t") && i + 1 < argc)
            t = atof(argv[++i]);
        else if (!strcmp(argv[i], "--top") && i + 1 < argc)
            top = atol(argv[++i]);
        else if (argv[i][0] != '-' && !ckpt)
            ckpt = argv[i];
        else if (!text)
            text = argv[i];
        else
            rc = 2;
    }
    if (rc || !ckpt || !text || top < 0) {
        fprintf(stderr, "usage: lflex rates CKPT TEXT [--t T] [--top N]   (TEXT may hold [MASK])\n");
        return 2;
    }
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
    if (!rc) {
        printf("t = %.3f\n%5s  %-12s %12s %12s  %s\n", t, "pos", "token", "insert rate", "unmask rate",
               top ? "most likely tokens" : "");
        for (size_t k = 0; k < n; k++) {
            char tok[64];
            size_t len;
            if (lflex_model_decode(m, x + k, 1, tok, sizeof tok, &len))
                snprintf(tok, sizeof tok, "%d", x[k]);
            printf("%5zu  %-12s %12.4g %12.4g  ", k, tok, ins[k], um[k]);
            if (x[k] == LFLEX_TOKEN_MASK)
                for (long r = 0; r < top; r++) { /* the r-th most likely */
                    int64_t best = -1;
                    for (int64_t v = LFLEX_TOKEN_FIRST_USER; v < V; v++) {
                        float pv = probs[k * (size_t)V + (size_t)v];
                        int rank = 0;
                        for (int64_t w = LFLEX_TOKEN_FIRST_USER; w < V; w++) {
                            float pw = probs[k * (size_t)V + (size_t)w];
                            rank += pw > pv || (pw == pv && w < v);
                        }
                        if (rank == r)
                            best = v;
                    }
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
