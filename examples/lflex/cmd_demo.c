/* lflex demo: a learned-order model learns to write a word backwards, with
 * examples generated in memory, in about a minute and a half on two cores. */
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <unistd.h>

#include "cli.h"

enum { LETTERS = 10, MIN_LEN = 3, MAX_LEN = 6, BATCH = 32, N_TEST = 200 };

static uint64_t next_u64(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* A prompt of 3-6 letters of a..j and its reverse as the target; the
 * letters are the user tokens 4.. in the order of vocab.tokens. */
static void add_example(cli_data *d, uint64_t *rng)
{
    int32_t p[MAX_LEN], t[MAX_LEN];
    size_t n = MIN_LEN + (size_t)(next_u64(rng) % (MAX_LEN - MIN_LEN + 1));
    for (size_t i = 0; i < n; i++)
        p[i] = LFLEX_TOKEN_FIRST_USER + (int32_t)(next_u64(rng) % LETTERS);
    for (size_t i = 0; i < n; i++)
        t[i] = p[n - 1 - i];
    cli_data_add(d, p, n, t, n);
}

enum { OPT_SECONDS = 1, OPT_THREADS };

static const cli_opt demo_opts[] = {
    {"seconds", "S", "seconds of training (0 to 1e7; default 90)", OPT_SECONDS},
    {"threads", "N", "worker threads (0: all cores, the default; up to 1024)", OPT_THREADS},
    {NULL, NULL, NULL, 0},
};

static const cli_command demo_cmd = {
    "demo", "[OPTIONS]",
    "Train a small learned-order insertion model to write words of 3 to 6 letters of a..j\n"
    "backwards, on examples generated in memory, for S seconds; then print five prompts\n"
    "with the reference and the generated answer, the exact match and token accuracy\n"
    "over 200 new prompts (greedy, 64 steps), and the learned insertion order of one\n"
    "answer. Nothing is written to disk.",
    "lflex demo --seconds 30 --threads 2",
    demo_opts};

int cmd_demo(int argc, char **argv)
{
    double seconds = 90;
    int64_t threads = 0;
    const char *arg;
    int ost = 0;
    cli_opts p;
    if (cli_opts_begin(&p, &demo_cmd, argc, argv))
        return 1;
    for (int id; !ost && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: ost = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: ost = cli_usage_error(&demo_cmd, "unexpected argument '%s'", arg); break;
        case OPT_SECONDS: ost = cli_opt_real("seconds", arg, 0, 1e7, false, &seconds); break;
        case OPT_THREADS: ost = cli_opt_int("threads", arg, 0, 1024, &threads); break;
        default: break;
        }
    }
    cli_opts_end(&p);
    if (ost)
        return ost < 0 ? 0 : ost;
    /* The library's defaults (learned b_in with a floor of 4 and the early
     * insertion target, flat time weight) with a small auxiliary network
     * and 32 sequences a step: two noised states each. */
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "model: {d_model: 128, n_heads: 4, n_layers: 4, max_len: 16}\n"
             "aux: {d_model: 64, n_heads: 2, n_layers: 2}\n"
             "schedule: {family: kumaraswamy}\n"
             "train: {lr: 1.0e-3, warmup: 200, ema: 0.999, seed: 1, threads: %ld}\n"
             "vocab: {tokenizer: words, tokens: \"a b c d e f g h i j\"}\n",
             (long)threads);
    lflex_model_t *m;
    if (lflex_model_new(&m, cfg, strlen(cfg)))
        return cli_fail_lib("model");
    int64_t n_params;
    lflex_model_get(m, LFLEX_PROP_N_PARAMS, &n_params);
    printf("liblflex %s demo: a learned-order insertion model learns to reverse words\n\n", lflex_version());
    printf("Task: the prompt is 3 to 6 letters of a..j, the target the same letters backwards\n"
           "(\"c a f\" -> \"f a c\"). The model starts from the empty target, inserts MASK tokens\n"
           "and unmasks them; it never sees positions of the answer, only the prompt.\n"
           "Model: %.2fM parameters (generator + auxiliary network that learns the insertion\n"
           "order); training for %.0f s on examples generated on the fly.\n\n",
           (double)n_params / 1e6, seconds);
    uint64_t train_rng = 0x9E3779B97F4A7C15ULL, test_rng = 987654321;
    cli_data test = {0}, batch = {0};
    for (int i = 0; i < N_TEST; i++)
        add_example(&test, &test_rng);
    bool tty = isatty(fileno(stdout));
    cli_catch_interrupt();
    double t0 = cli_now(), last_print = 0, loss_acc = 0;
    long n_acc = 0, step = 0;
    int rc = 0;
    while (!cli_interrupted && cli_now() - t0 < seconds) {
        cli_data_free(&batch);
        for (int j = 0; j < BATCH; j++)
            add_example(&batch, &train_rng);
        lflex_train_stats st = {.struct_size = sizeof st};
        int r = lflex_model_train_step(m, batch.tokens, batch.fixed, batch.offsets, batch.n, &st);
        if (r && r != LFLEX_ENUMERIC) {
            rc = cli_fail_lib("train step");
            break;
        }
        step++;
        if (!r) {
            loss_acc += st.unmask_loss + st.insert_loss;
            n_acc++;
        }
        double el = cli_now() - t0;
        if (el - last_print >= (tty ? 0.5 : 10) || el >= seconds) {
            int filled = (int)(30 * (el < seconds ? el : seconds) / seconds);
            char bar[32];
            for (int i = 0; i < 30; i++)
                bar[i] = i < filled ? '#' : '.';
            bar[30] = '\0';
            printf("%s[%s] %3.0f s  step %5ld  loss %.3f", tty ? "\r" : "", bar, el, step,
                   n_acc ? loss_acc / (double)n_acc : 0.0);
            if (!tty)
                putchar('\n');
            fflush(stdout);
            loss_acc = 0;
            n_acc = 0;
            last_print = el;
        }
    }
    if (tty)
        putchar('\n');
    cli_data_free(&batch);
    if (!rc) {
        printf("\nReversing %d new prompts (greedy, 64 steps); the first ones:\n", N_TEST);
        cli_match mt;
        const char *scfg = "steps: 64\ntemperature: 0\nseed: 1\n";
        rc = cli_exact_match(m, scfg, strlen(scfg), &test, N_TEST, stdout, 5, &mt, NULL);
        if (!rc)
            printf("\nexact match %.1f%%, token accuracy %.1f%% over %zu prompts after %ld steps\n", 100 * mt.exact,
                   100 * mt.token_acc, mt.n, step);
    }
    if (!rc) {
        printf("\nThe learned insertion order of the first target (large b_in: inserted early;\n"
               "shapes within 2%% of each other share a place):\n");
        rc = cli_print_order(stdout, m, test.tokens, test.fixed, test.offsets[1]);
        printf("\nMore tasks and the measurements behind these settings: bench/learning/ and\n"
               "doc/learning.md; train your own data with `lflex train` (doc/cli.md).\n");
    }
    cli_data_free(&test);
    lflex_model_free(m);
    return rc ? 1 : (cli_interrupted ? 130 : 0);
}
