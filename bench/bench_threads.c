/* Train step time with 1 and with 2 threads, on idle cores and with one core
 * taken by another process: the benchmark of the thread pool's waiting
 * (lib/core/threads.c). A pool whose threads wait for each other by spinning
 * is fast on idle cores and many times slower than one thread as soon as
 * another program keeps a core busy.
 *
 *   lflex-bench-threads [--steps N] [--rounds R] [--tiny | --config YAML] [--batch N_SEQ] [--len LEN]
 *
 * Each round times N steps of every (condition, threads) pair, one after the
 * other: "idle" with nothing else started, then "busy" with a child process
 * spinning in a loop for the duration (pinned to the last CPU this process
 * may run on, where the system allows it; it runs at this process's
 * priority). Per-step times of all rounds are pooled; the table gives their
 * medians and the ratios between the rows, which come from one run and are
 * what to compare on a machine that is not quiet. Each thread count has its
 * own model (same configuration and seed); the first 2 steps of a model are
 * warm-up and not counted.
 *
 * The default model is the one of `lflex demo`: d_model 128, 4 layers, an
 * auxiliary network of d_model 64, batches of 32 sequences of 12 tokens.
 * --tiny: d_model 32, 2 layers, an auxiliary network of 1 layer, batches of
 * 16 sequences (a step of a few milliseconds, hundreds of hand-offs to the
 * pool of a few microseconds each: where waiting costs most). */
#define _GNU_SOURCE
#include <lflex/lflex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static const char default_config[] = "model: {d_model: 128, n_heads: 4, n_layers: 4, max_len: 16}\n"
                                     "aux: {d_model: 64, n_heads: 2, n_layers: 2}\n"
                                     "schedule: {family: kumaraswamy}\n"
                                     "vocab: {size: 16}\n"
                                     "train: {lr: 1.0e-3, warmup: 200, seed: 1}\n";
static const char tiny_config[] = "model: {d_model: 32, n_heads: 2, n_layers: 2, max_len: 16}\n"
                                  "aux: {d_model: 32, n_heads: 2, n_layers: 1}\n"
                                  "schedule: {family: kumaraswamy}\n"
                                  "vocab: {size: 16}\n"
                                  "train: {lr: 1.0e-3, warmup: 200, seed: 1}\n";

enum { N_THREADS = 2, N_COND = 2, WARMUP = 2 };
static const int thread_counts[N_THREADS] = {1, 2};
static const char *const cond_names[N_COND] = {"idle", "busy"};

/* A child that spins until killed, on the last CPU of our affinity mask. */
static pid_t start_busy_child(int *cpu)
{
    *cpu = -1;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = CPU_SETSIZE - 1; c >= 0; c--)
            if (CPU_ISSET(c, &set)) {
                *cpu = c;
                break;
            }
#endif
    fflush(NULL);
#ifdef __linux__
    pid_t parent = getpid();
#endif
    pid_t pid = fork();
    if (pid == 0) {
#ifdef __linux__
        /* do not outlive the benchmark if it is interrupted */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        if (*cpu >= 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(*cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
        }
#endif
        volatile unsigned long spin = 0;
        for (;;)
            spin++;
    }
    return pid;
}

static void stop_busy_child(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

typedef struct {
    size_t n_seq, len;
    int32_t *tokens;
    size_t *offsets;
    uint64_t rng;
    int64_t vocab;
} batch;

/* random user tokens with a final EOS, as bench_lflex.c */
static void next_batch(batch *b)
{
    b->offsets[0] = 0;
    for (size_t j = 0; j < b->n_seq; j++) {
        for (size_t i = 0; i + 1 < b->len; i++) {
            b->rng = b->rng * 6364136223846793005ULL + 1442695040888963407ULL;
            b->tokens[j * b->len + i] = LFLEX_TOKEN_FIRST_USER + (int32_t)((b->rng >> 33) % (uint64_t)(b->vocab - 4));
        }
        b->tokens[j * b->len + b->len - 1] = LFLEX_TOKEN_EOS;
        b->offsets[j + 1] = (j + 1) * b->len;
    }
}

static int train_steps(lflex_model_t *m, batch *b, int steps, double *times)
{
    for (int s = 0; s < steps; s++) {
        next_batch(b);
        lflex_train_stats st = {.struct_size = sizeof st};
        double t0 = now();
        if (lflex_model_train_step(m, b->tokens, NULL, b->offsets, b->n_seq, &st) != LFLEX_OK) {
            fprintf(stderr, "lflex-bench-threads: %s\n", lflex_last_error());
            return 1;
        }
        if (times)
            times[s] = now() - t0;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: lflex-bench-threads [--steps N] [--rounds R] [--tiny | --config YAML] [--batch N_SEQ] "
                    "[--len LEN]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int steps = 20, rounds = 5;
    size_t n_seq = 0, len = 12;
    const char *cfg_path = NULL, *config = default_config;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tiny")) {
            config = tiny_config;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--config"))
            cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--batch"))
            n_seq = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--len"))
            len = (size_t)atol(argv[++i]);
        else
            return usage();
    }
    if (n_seq == 0)
        n_seq = config == tiny_config ? 16 : 32;
    if (steps < 1 || rounds < 1 || len < 2)
        return usage();

    size_t ylen = strlen(config);
    char *yaml = NULL;
    if (cfg_path && !(yaml = read_file(cfg_path, &ylen))) {
        fprintf(stderr, "lflex-bench-threads: cannot read %s\n", cfg_path);
        return 1;
    }
    lflex_model_t *models[N_THREADS] = {NULL};
    int rc = 0;
    for (int t = 0; t < N_THREADS && rc == 0; t++) {
        if (lflex_model_new(&models[t], yaml ? yaml : config, ylen) != LFLEX_OK ||
            lflex_model_set_threads(models[t], thread_counts[t]) != LFLEX_OK) {
            fprintf(stderr, "lflex-bench-threads: %s\n", lflex_last_error());
            rc = 1;
        }
    }
    free(yaml);
    if (rc) {
        for (int t = 0; t < N_THREADS; t++)
            lflex_model_free(models[t]);
        return rc;
    }

    batch b = {.n_seq = n_seq, .len = len, .rng = 12345};
    lflex_model_get(models[0], LFLEX_PROP_VOCAB_SIZE, &b.vocab);
    b.tokens = malloc(n_seq * len * sizeof *b.tokens);
    b.offsets = malloc((n_seq + 1) * sizeof *b.offsets);
    size_t per = (size_t)steps * (size_t)rounds;
    double *times[N_COND][N_THREADS];
    for (int c = 0; c < N_COND; c++)
        for (int t = 0; t < N_THREADS; t++)
            times[c][t] = malloc(per * sizeof(double));
    if (!b.tokens || !b.offsets)
        rc = 1;
    for (int t = 0; t < N_THREADS && rc == 0; t++)
        rc = train_steps(models[t], &b, WARMUP, NULL);

    int busy_cpu = -1;
    double t_start = now();
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int c = 0; c < N_COND && rc == 0; c++) {
            pid_t child = c == 1 ? start_busy_child(&busy_cpu) : 0;
            if (child < 0) {
                perror("lflex-bench-threads: fork");
                rc = 1;
                break;
            }
            for (int t = 0; t < N_THREADS && rc == 0; t++)
                rc = train_steps(models[t], &b, steps, times[c][t] + (size_t)r * (size_t)steps);
            stop_busy_child(child);
        }

    if (rc == 0) {
        double med[N_COND][N_THREADS];
        printf("liblflex %s, %ld CPUs online, busy child on CPU %d; %zu sequences of %zu tokens a step; "
               "%d rounds of %d steps per row (%.0f s in all)\n\n",
               lflex_version(), sysconf(_SC_NPROCESSORS_ONLN), busy_cpu, n_seq, len, rounds, steps,
               now() - t_start);
        printf("| cores | threads | median ms/step | min | max |\n|---|---:|---:|---:|---:|\n");
        for (int c = 0; c < N_COND; c++)
            for (int t = 0; t < N_THREADS; t++) {
                double *x = times[c][t];
                qsort(x, per, sizeof *x, cmp_double);
                med[c][t] = per % 2 ? x[per / 2] : 0.5 * (x[per / 2 - 1] + x[per / 2]);
                printf("| %s | %d | %.2f | %.2f | %.2f |\n", cond_names[c], thread_counts[t], 1e3 * med[c][t],
                       1e3 * x[0], 1e3 * x[per - 1]);
            }
        printf("\nratios of the medians:\n");
        for (int c = 0; c < N_COND; c++)
            printf("  %s: 2 threads / 1 thread = %.2f\n", cond_names[c], med[c][1] / med[c][0]);
        for (int t = 0; t < N_THREADS; t++)
            printf("  %d thread%s: busy / idle = %.2f\n", thread_counts[t], thread_counts[t] > 1 ? "s" : "",
                   med[1][t] / med[0][t]);
    }
    for (int c = 0; c < N_COND; c++)
        for (int t = 0; t < N_THREADS; t++)
            free(times[c][t]);
    free(b.tokens);
    free(b.offsets);
    for (int t = 0; t < N_THREADS; t++)
        lflex_model_free(models[t]);
    return rc;
}
