/* Benchmark of liblflex's train step (and, later, generation) on the
 * configurations of bench/configs.py. Prints one JSON object per line:
 *   {"what": "train", "config": "small", "threads": 2, "median_s": ..., ...}
 * Used by bench/compare.py, which runs the PyTorch peer in the same run.
 *
 *   lflex-bench train CONFIG_YAML N_SEQ SEQ_LEN STEPS [THREADS]
 *   lflex-bench generate CONFIG_YAML N_SEQ STEPS REPS [THREADS]
 *   lflex-bench gemm N
 *
 * The batch is random user tokens with a fixed final EOS, the same data
 * distribution as the peer's. Timing uses CLOCK_MONOTONIC around each step;
 * the first two steps are warm-up and not counted. */
#include <cblas.h>
#include <lflex/lflex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int bench_train(const char *cfg_path, size_t n_seq, size_t len, int steps, int threads)
{
    size_t ylen;
    char *yaml = read_file(cfg_path, &ylen);
    if (!yaml) {
        fprintf(stderr, "lflex-bench: cannot read %s\n", cfg_path);
        return 1;
    }
    lflex_model_t *m;
    if (lflex_model_new(&m, yaml, ylen) != LFLEX_OK) {
        fprintf(stderr, "lflex-bench: %s\n", lflex_last_error());
        free(yaml);
        return 1;
    }
    free(yaml);
    if (threads > 0)
        lflex_model_set_threads(m, threads);
    int64_t vocab, n_params, n_threads;
    lflex_model_get(m, LFLEX_PROP_VOCAB_SIZE, &vocab);
    lflex_model_get(m, LFLEX_PROP_N_PARAMS, &n_params);
    lflex_model_get(m, LFLEX_PROP_THREADS, &n_threads);
    int32_t *tokens = malloc(n_seq * len * sizeof *tokens);
    size_t *offsets = malloc((n_seq + 1) * sizeof *offsets);
    double *times = malloc((size_t)steps * sizeof *times);
    uint64_t rng = 12345;
    double tokens_total = 0, flops = 0;
    int rc = 0;
    for (int s = 0; s < steps + 2 && rc == 0; s++) {
        offsets[0] = 0;
        for (size_t j = 0; j < n_seq; j++) {
            for (size_t i = 0; i < len - 1; i++) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                tokens[j * len + i] = LFLEX_TOKEN_FIRST_USER + (int32_t)((rng >> 33) % (uint64_t)(vocab - 4));
            }
            tokens[j * len + len - 1] = LFLEX_TOKEN_EOS;
            offsets[j + 1] = (j + 1) * len;
        }
        lflex_train_stats st = {.struct_size = sizeof st};
        double t0 = now();
        if (lflex_model_train_step(m, tokens, NULL, offsets, n_seq, &st) != LFLEX_OK) {
            fprintf(stderr, "lflex-bench: %s\n", lflex_last_error());
            rc = 1;
        }
        double dt = now() - t0;
        if (s >= 2) {
            int64_t f = 0;
            lflex_model_get(m, LFLEX_PROP_LAST_FLOPS, &f);
            times[s - 2] = dt;
            tokens_total += (double)st.tokens;
            flops += (double)f;
        }
    }
    if (rc == 0) {
        qsort(times, (size_t)steps, sizeof *times, cmp_double);
        printf("{\"what\": \"train\", \"impl\": \"lflex\", \"threads\": %ld, \"n_seq\": %zu, \"len\": %zu, "
               "\"params\": %ld, \"steps\": %d, \"median_s\": %.6f, \"min_s\": %.6f, \"max_s\": %.6f, "
               "\"tokens_per_step\": %.1f, \"flops_per_step\": %.4g, \"peak_rss_kib\": %ld}\n",
               (long)n_threads, n_seq, len, (long)n_params, steps, times[steps / 2], times[0], times[steps - 1],
               tokens_total / steps, flops / steps, peak_rss_kib());
    }
    free(tokens);
    free(offsets);
    free(times);
    lflex_model_free(m);
    return rc;
}

/* Generation: n_seq unconditional sequences ([EOS]) of at most max_len
 * tokens with `steps` tau-leaping steps, repeated `reps` times. */
static int bench_generate(const char *cfg_path, size_t n_seq, int steps, int reps, int threads)
{
    size_t ylen;
    char *yaml = read_file(cfg_path, &ylen);
    lflex_model_t *m = NULL;
    if (!yaml || lflex_model_new(&m, yaml, ylen) != LFLEX_OK) {
        fprintf(stderr, "lflex-bench: %s\n", yaml ? lflex_last_error() : "cannot read the config");
        free(yaml);
        return 1;
    }
    free(yaml);
    if (threads > 0)
        lflex_model_set_threads(m, threads);
    char scfg[128];
    snprintf(scfg, sizeof scfg, "steps: %d\nbatch_size: %zu\nseed: 1\n", steps, n_seq);
    lflex_sampler_t *s;
    if (lflex_sampler_new(&s, m, scfg, strlen(scfg)) != LFLEX_OK) {
        fprintf(stderr, "lflex-bench: %s\n", lflex_last_error());
        lflex_model_free(m);
        return 1;
    }
    int64_t max_len, n_threads;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    lflex_model_get(m, LFLEX_PROP_THREADS, &n_threads);
    int32_t *tmpl = malloc(n_seq * sizeof *tmpl);
    size_t *toff = malloc((n_seq + 1) * sizeof *toff), *ooff = malloc((n_seq + 1) * sizeof *ooff);
    size_t cap = n_seq * (size_t)max_len;
    int32_t *out = malloc(cap * sizeof *out);
    double *times = malloc((size_t)reps * sizeof *times), tokens = 0;
    for (size_t j = 0; j < n_seq; j++) {
        tmpl[j] = LFLEX_TOKEN_EOS;
        toff[j] = j;
    }
    toff[n_seq] = n_seq;
    int rc = 0;
    for (int r = 0; r < reps + 1 && rc == 0; r++) {
        double t0 = now();
        if (lflex_sampler_generate_batch(s, tmpl, NULL, toff, n_seq, out, cap, ooff, NULL, NULL) != LFLEX_OK) {
            fprintf(stderr, "lflex-bench: %s\n", lflex_last_error());
            rc = 1;
        }
        if (r > 0) { /* the first run is warm-up */
            times[r - 1] = now() - t0;
            tokens += (double)ooff[n_seq];
        }
    }
    if (rc == 0) {
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        printf("{\"what\": \"generate\", \"impl\": \"lflex\", \"threads\": %ld, \"n_seq\": %zu, \"steps\": %d, "
               "\"median_s\": %.6f, \"min_s\": %.6f, \"max_s\": %.6f, \"mean_len\": %.1f, \"peak_rss_kib\": %ld}\n",
               (long)n_threads, n_seq, steps, times[reps / 2], times[0], times[reps - 1], tokens / reps / (double)n_seq,
               peak_rss_kib());
    }
    free(tmpl);
    free(toff);
    free(ooff);
    free(out);
    free(times);
    lflex_sampler_free(s);
    lflex_model_free(m);
    return rc;
}

/* The BLAS peak: cblas_sgemm on N x N x N with OpenBLAS's own threads (this
 * process creates no model, so OpenBLAS keeps its default thread count). */
static int bench_gemm(int N)
{
    float *A = malloc((size_t)N * N * sizeof *A), *B = malloc((size_t)N * N * sizeof *B);
    float *C = malloc((size_t)N * N * sizeof *C);
    for (size_t i = 0; i < (size_t)N * N; i++) {
        A[i] = (float)(i % 7) * 0.01f;
        B[i] = (float)(i % 5) * 0.02f;
    }
    double best = 0;
    for (int r = 0; r < 12; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1, A, N, B, N, 0, C, N);
        double dt = now() - t0;
        if (r >= 2 && (best == 0 || dt < best))
            best = dt;
    }
    printf("{\"what\": \"gemm\", \"n\": %d, \"gflops\": %.1f, \"threads\": %d, \"core\": \"%s\"}\n", N,
           2.0 * N * N * N / best / 1e9, openblas_get_num_threads(), openblas_get_corename());
    free(A);
    free(B);
    free(C);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "gemm") == 0)
        return bench_gemm(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1024);
    if (argc >= 6 && strcmp(argv[1], "generate") == 0)
        return bench_generate(argv[2], (size_t)atol(argv[3]), atoi(argv[4]), atoi(argv[5]) > 0 ? atoi(argv[5]) : 1,
                              argc > 6 ? atoi(argv[6]) : 0);
    if (argc >= 6 && strcmp(argv[1], "train") == 0) {
        int steps = atoi(argv[5]);
        if (steps < 1)
            steps = 1;
        return bench_train(argv[2], (size_t)atol(argv[3]), (size_t)atol(argv[4]), steps,
                           argc > 6 ? atoi(argv[6]) : 0);
    }
    fprintf(stderr, "usage: lflex-bench train CONFIG_YAML N_SEQ SEQ_LEN STEPS [THREADS]\n"
                    "       lflex-bench generate CONFIG_YAML N_SEQ STEPS REPS [THREADS]\n"
                    "       lflex-bench gemm N\n");
    return 2;
}
