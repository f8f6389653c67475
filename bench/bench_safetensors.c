/* Reading safetensors headers of N and of 10 N entries: the time to parse
 * and validate the file in memory, and to look every tensor up by name once
 * (as loading a checkpoint does). Reading is linear (lookups n log n), so the
 * 10 N file should take about 10 times as long; a quadratic reader shows
 * about 100. Prints one JSON line per size and one with the ratio.
 *
 *     lflex-bench-safetensors [N] [REPEATS]
 *
 * N defaults to 20000 (the 10 N header is about 12 MB); each size is read
 * REPEATS times (default 3) and the fastest run counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/safetensors.h"
#include "lflex/lflex.h"
#include "bench_util.h"

/* A file of n one-element F32 tensors named like a model's parameters and
 * moments ("optim.m.gen.blocks.<i>.mlp.w1"), written as another tool would:
 * plain JSON, no checksum. */
static unsigned char *make_file(size_t n, size_t *len)
{
    size_t cap = 64 + n * 120, h = 0;
    unsigned char *b = malloc(8 + cap + 4 * n);
    if (!b)
        return NULL;
    char *t = (char *)b + 8;
    h += (size_t)snprintf(t + h, cap - h, "{");
    for (size_t i = 0; i < n; i++)
        h += (size_t)snprintf(t + h, cap - h,
                              "%s\"optim.m.gen.blocks.%zu.mlp.w1\":{\"dtype\":\"F32\",\"shape\":[1],"
                              "\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", i, 4 * i, 4 * i + 4);
    h += (size_t)snprintf(t + h, cap - h, "}");
    while (h % 8)
        t[h++] = ' ';
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    for (size_t i = 0; i < n; i++) {
        float v = (float)i;
        memcpy(b + 8 + h + 4 * i, &v, 4);
    }
    *len = 8 + h + 4 * n;
    return b;
}

/* Fastest of `repeats` reads with a lookup of every name; -1 on failure. */
static double time_read(size_t n, int repeats, size_t *header_bytes)
{
    size_t len;
    unsigned char *b = make_file(n, &len);
    if (!b)
        return -1;
    *header_bytes = len - 8 - 4 * n;
    char name[64];
    double best = -1;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        lf_st_file *f = NULL;
        if (lf_st_read_buffer(&f, b, len, "bench") != LFLEX_OK) {
            fprintf(stderr, "lflex-bench-safetensors: %s\n", lflex_last_error());
            free(b);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof name, "optim.m.gen.blocks.%zu.mlp.w1", i);
            const lf_st_entry *e = lf_st_find(f, name);
            if (!e || e->file_offset != 8 + *header_bytes + 4 * i) {
                fprintf(stderr, "lflex-bench-safetensors: lookup of %s failed\n", name);
                lf_st_free(f);
                free(b);
                return -1;
            }
        }
        lf_st_free(f);
        double dt = now() - t0;
        if (best < 0 || dt < best)
            best = dt;
    }
    free(b);
    return best;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    int repeats = argc > 2 ? atoi(argv[2]) : 3;
    if (n < 1 || repeats < 1) {
        fprintf(stderr, "usage: lflex-bench-safetensors [N >= 1] [REPEATS >= 1]\n");
        return 2;
    }
    double t[2];
    for (int k = 0; k < 2; k++) {
        size_t entries = (size_t)n * (k ? 10 : 1), header = 0;
        t[k] = time_read(entries, repeats, &header);
        if (t[k] < 0)
            return 1;
        printf("{\"what\": \"safetensors_read\", \"entries\": %zu, \"header_bytes\": %zu, \"seconds\": %.6f}\n",
               entries, header, t[k]);
        fflush(stdout);
    }
    printf("{\"what\": \"safetensors_read_ratio\", \"n\": %ld, \"ratio_10n_to_n\": %.2f}\n", n,
           t[0] > 0 ? t[1] / t[0] : 0.0);
    return 0;
}
