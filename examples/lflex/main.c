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

/* OpenBLAS releases older than the CPU run it with older kernels (Debian
 * 12's OpenBLAS picks its AVX2 kernels on AMD Zen 5). The kernels are chosen
 * when OpenBLAS loads, from OPENBLAS_CORETYPE, so the program restarts itself
 * once with the AVX-512 kernels when the CPU has them. LFLEX_NO_REEXEC=1 or
 * any OPENBLAS_CORETYPE in the environment leaves things as they are. */
static void prefer_avx512_blas(char **argv)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("LFLEX_NO_REEXEC"))
        return;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Haswell") && strcmp(core, "Zen")))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
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
            prefer_avx512_blas(argv);
            return cmds[i].fn(argc - 2, argv + 2);
        }
    fprintf(stderr, "lflex: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
