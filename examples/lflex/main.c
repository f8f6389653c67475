/* lflex: train, sample, evaluate and inspect insertion models (doc/cli.md). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define STR_(x) #x
#define STR(x) STR_(x)
/* The version of the sources the program was built from; lflex_version()
 * is that of the library it runs with. */
#define PROGRAM_VERSION STR(LFLEX_VERSION_MAJOR) "." STR(LFLEX_VERSION_MINOR) "." STR(LFLEX_VERSION_PATCH)

static void usage(FILE *f)
{
    fprintf(f, "usage: lflex COMMAND [ARGS]\n\n"
               "  train CONFIG.yaml [--set KEY=VALUE]... [--resume CKPT] [--quiet]\n"
               "  sample CKPT [--n N] [--prompt TEXT]... [--prompts FILE] [--infill TEXT]... [--json] [--quiet] [options]\n"
               "  eval CKPT DATA [--n N] [--json] [--quiet] [options]\n"
               "  order CKPT TEXT [--json]\n"
               "  rates CKPT TEXT [--t T] [--top N] [--json]\n"
               "  export CKPT --weights-only OUT [--raw]\n"
               "  plot RUN_DIR [--out DIR] [--text TEXT] [--checkpoint CKPT]\n"
               "  demo [--seconds S] [--threads N]\n"
               "  version\n\n"
               "`lflex COMMAND --help` (or `lflex help COMMAND`) describes a command and its options;\n"
               "`lflex --version` prints the versions. See doc/cli.md.\n");
}

static const cli_opt version_opts[] = {{NULL, NULL, NULL, 0}};
static const cli_command version_cmd = {
    "version", "",
    "Print the version of the program, that of the liblflex library it runs with (they differ\n"
    "when the program meets another installed library) and the OpenBLAS kernels in use.",
    "lflex version", version_opts};

static int cmd_version(int argc, char **argv)
{
    cli_opts p;
    const char *arg;
    if (cli_opts_begin(&p, &version_cmd, argc, argv))
        return 1;
    int rc = -1; /* -1: go on */
    for (int id; rc < 0 && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;)
        rc = id == CLI_OPT_EXIT ? p.status : cli_usage_error(&version_cmd, "unexpected argument '%s'", arg);
    cli_opts_end(&p);
    if (rc >= 0)
        return rc;
    printf("lflex %s (liblflex %s; OpenBLAS kernels: %s)\n", PROGRAM_VERSION, lflex_version(),
           openblas_get_corename());
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} cmds[] = {{"train", cmd_train}, {"sample", cmd_sample}, {"eval", cmd_eval}, {"order", cmd_order},
            {"rates", cmd_rates}, {"export", cmd_export}, {"plot", cmd_plot},     {"demo", cmd_demo},
            {"version", cmd_version}};

static int (*find_cmd(const char *name))(int, char **)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(name, cmds[i].name))
            return cmds[i].fn;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version"))
        return cmd_version(1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2 && !strcmp(cmd, "help")) { /* lflex help COMMAND: its --help */
            int (*fn)(int, char **) = find_cmd(argv[2]);
            if (!fn) {
                fprintf(stderr, "lflex: unknown command '%s'\n", argv[2]);
                usage(stderr);
                return 2;
            }
            char *help_argv[] = {argv[2], (char *)"--help", NULL};
            return fn(2, help_argv);
        }
        usage(stdout);
        return 0;
    }
    int (*fn)(int, char **) = find_cmd(cmd);
    if (fn)
        return fn(argc - 1, argv + 1);
    fprintf(stderr, "lflex: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
