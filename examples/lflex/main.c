/* lflex: train, sample, evaluate and inspect insertion models (doc/cli.md). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: lflex COMMAND [ARGS]\n\n"
               "  train CONFIG.yaml [--set KEY=VALUE]... [--resume CKPT] [--quiet]\n"
               "  sample CKPT [--n N] [--prompt TEXT]... [--prompts FILE] [--infill TEXT]... [options]\n"
               "  eval CKPT DATA [--n N] [options]\n"
               "  order CKPT TEXT\n"
               "  rates CKPT TEXT [--t T] [--top N]\n"
               "  demo [--seconds S] [--threads N]\n"
               "  version\n\n"
               "See doc/cli.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("lflex %s (OpenBLAS kernels: %s)\n", lflex_version(), openblas_get_corename());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train}, {"sample", cmd_sample}, {"eval", cmd_eval},
                {"order", cmd_order}, {"rates", cmd_rates},   {"demo", cmd_demo}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) {
            return cmds[i].fn(argc - 2, argv + 2);
        }
    fprintf(stderr, "lflex: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
