/* lflex demo: learned insertion order on the easy star-graph task, with
 * graphs generated in memory. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../star/star.h"
#include "cli.h"

/* One example as model ids: labels are the words "0".."19", id = 4 + label. */
static void add_example(cli_data *d, const star_example *ex)
{
    int32_t p[STAR_MAX_PROMPT], t[STAR_MAX_TARGET];
    for (int i = 0; i < ex->n_prompt; i++)
        p[i] = LFLEX_TOKEN_FIRST_USER + ex->prompt[i];
    for (int i = 0; i < ex->n_target; i++)
        t[i] = LFLEX_TOKEN_FIRST_USER + ex->target[i];
    cli_data_add(d, p, (size_t)ex->n_prompt, t, (size_t)ex->n_target);
}

int cmd_demo(int argc, char **argv)
{
    double seconds = 90;
    long threads = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: lflex demo [--seconds S] [--threads N]\n");
            return 2;
        }
    }
    char vocab[256], cfg[1024];
    star_vocab(STAR_EASY, vocab, sizeof vocab);
    snprintf(cfg, sizeof cfg,
             "model: {d_model: 128, n_heads: 4, n_layers: 4, max_len: 40}\n"
             "schedule: {family: kumaraswamy}\n"
             "train: {lr: 1.0e-3, warmup: 100, seed: 1, threads: %ld}\n"
             "vocab: {tokenizer: words, tokens: \"%s\"}\n",
             threads, vocab);
    lflex_model_t *m;
    if (lflex_model_new(&m, cfg, strlen(cfg)))
        return cli_fail_lib("model");
    int64_t n_params;
    lflex_model_get(m, LFLEX_PROP_N_PARAMS, &n_params);
    printf("liblflex %s demo: learned insertion order on star graphs\n\n", lflex_version());
    printf("Task (easy level): a star graph of 3 arms of 5 nodes; the prompt lists its 12 edges\n"
           "shuffled, then the source (the centre) and the goal (the end of one arm); the model\n"
           "writes the path from source to goal as edge pairs. Graphs are generated on the fly.\n"
           "Model: %.1fM parameters (generator + auxiliary network); training for %.0f s.\n\n",
           (double)n_params / 1e6, seconds);
    uint64_t train_rng = 1, test_rng = 987654321;
    cli_data test = {0}, batch = {0};
    star_example ex;
    for (int i = 0; i < 200; i++) {
        star_generate(STAR_EASY, &test_rng, &ex);
        add_example(&test, &ex);
    }
    bool tty = isatty(fileno(stdout));
    cli_catch_interrupt();
    double t0 = cli_now(), last_print = 0, loss_acc = 0;
    long n_acc = 0, step = 0;
    int rc = 0;
    while (!cli_interrupted && cli_now() - t0 < seconds) {
        cli_data_free(&batch);
        for (int j = 0; j < 64; j++) {
            star_generate(STAR_EASY, &train_rng, &ex);
            add_example(&batch, &ex);
        }
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
        printf("\nGenerating the paths of 200 new graphs (greedy, 32 steps):\n");
        cli_match mt;
        const char *scfg = "steps: 32\ntemperature: 0\nseed: 1\n";
        rc = cli_exact_match(m, scfg, strlen(scfg), &test, 200, stdout, 3, &mt);
        if (!rc)
            printf("\nexact match %.1f%%, token accuracy %.1f%% over %zu graphs after %ld steps\n", 100 * mt.exact,
                   100 * mt.token_acc, mt.n, step);
    }
    if (!rc) {
        printf("\nThe learned insertion order of the first example (large b_in: inserted early):\n");
        rc = cli_print_order(stdout, m, test.tokens, test.fixed, test.offsets[1]);
        printf("\nTrain longer or on the harder levels with `lflex train` (doc/cli.md, examples/star/).\n");
    }
    cli_data_free(&test);
    lflex_model_free(m);
    return rc ? 1 : (cli_interrupted ? 130 : 0);
}
