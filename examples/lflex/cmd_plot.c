/* lflex plot RUN_DIR [--out DIR] [--text TEXT] [--checkpoint CKPT]: PNG
 * learning curves of a run and the learned insertion order of an example,
 * drawn by lflex-plot.py (python3 with matplotlib), which is installed
 * with the program. This part computes the order (the model is C's) and
 * hands over to the script. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Where the script is installed, relative to the program's directory (or
 * absolute): set by meson from bindir and datadir. */
#ifndef LFLEX_PLOT_SCRIPT
#define LFLEX_PLOT_SCRIPT "../share/lflex/lflex-plot.py"
#endif
#define PLOT_SCRIPT_NAME "lflex-plot.py"
#define PLOT_TIMES 101 /* columns of the heat map: t = 0, 0.01, ..., 1 */

enum { OPT_OUT = 1, OPT_TEXT, OPT_CHECKPOINT };

static const cli_opt plot_opts[] = {
    {"out", "DIR", "where the PNG files go (default RUN_DIR/plots; created when missing)", OPT_OUT},
    {"text", "TEXT",
     "the example of order.png, a target or PROMPT<TAB>TARGET (default: the first line of the run's validation "
     "file, else of its training file, as config.yaml names them)",
     OPT_TEXT},
    {"checkpoint", "CKPT", "the checkpoint whose order is drawn (default RUN_DIR/checkpoint.safetensors)",
     OPT_CHECKPOINT},
    {NULL, NULL, NULL, 0},
};

static const cli_command plot_cmd = {
    "plot", "RUN_DIR [OPTIONS]",
    "Draw the learning curves of a run of lflex train from its log.jsonl as PNG files:\n"
    "loss.png (the loss and its parts, the validation loss), validation.png (validation\n"
    "loss parts, exact match and token accuracy, when the run evaluated), lr.png (the\n"
    "learning rate) and throughput.png (tokens per second); and order.png, the learned\n"
    "insertion order of an example as a heat map: a row per token, the probability that\n"
    "it is inserted by time t from t = 0 to 1, its expected insertion time marked (the\n"
    "numbers are in order.json). Needs python3 with matplotlib (Debian: python3-matplotlib);\n"
    "LFLEX_PYTHON in the environment names another interpreter than python3.",
    "lflex plot runs/a\n"
    "lflex plot runs/a --out /tmp/plots --text \"$(printf 'p q\\ta b c')\"",
    plot_opts};

/* The first example of the run's data (validation file, else training
 * file) as config.yaml names it; NULL, with a note on standard error, when
 * there is none. malloc'd. */
static char *first_example(const char *log)
{
    cli_config c;
    char *cfg_path, *example = NULL, *path = NULL;
    const char *rel = NULL;
    if (cli_run_config(log, &c, &cfg_path) == 1) {
        cli_get_str(&c.data, "valid", &rel);
        if (!rel)
            cli_get_str(&c.data, "train", &rel);
        path = rel ? cli_path_near(cfg_path, rel) : NULL;
        cli_config_free(&c);
    }
    size_t len;
    cli_lines it = {.text = path ? cli_read_file(path, &len) : NULL};
    it.len = it.text ? len : 0;
    char *line;
    size_t n;
    while (it.text && !example && cli_next_line(&it, &line, &n))
        if (n)
            example = strdup(line);
    if (!example)
        fprintf(stderr, "lflex: no order.png: %s%s%s; give --text\n", path ? path : cfg_path,
                path ? (it.text ? " has no example" : ": cannot be read") : "",
                path ? "" : " names no data file");
    free(it.text);
    free(path);
    free(cfg_path);
    return example;
}

/* order.json: the learned order of the example (lflex order --json) with
 * "text", "t" (the times of the heat map's columns) and "inserted": for
 * every token of "tokens", the probability F(t; a, b_in) that it is
 * inserted by each time. */
static int write_order(const char *ckpt, const char *text, const char *path)
{
    lflex_model_t *m = NULL;
    if (lflex_model_load(&m, ckpt))
        return cli_fail_lib(ckpt);
    cli_data d = {0};
    json_t *j = NULL;
    int rc = cli_example(m, text, &d);
    if (!rc)
        rc = cli_order_json(m, d.tokens, d.fixed, d.offsets[1], &j);
    const lflex_schedule_t *s = lflex_model_schedule(m);
    json_t *ts = json_array(), *rows = json_array();
    int bad = rc || cli_json_set(j, "text", cli_json_string(text)) || cli_json_set(j, "t", ts) ||
              cli_json_set(j, "inserted", rows);
    for (int k = 0; k < PLOT_TIMES && !bad; k++)
        bad = json_array_append_new(ts, json_real((double)k / (PLOT_TIMES - 1)));
    size_t i;
    json_t *tok;
    json_array_foreach(json_object_get(j, "tokens"), i, tok)
    {
        json_t *row = json_array();
        double b = json_number_value(json_object_get(tok, "b_in"));
        bad = bad || json_array_append_new(rows, row);
        for (int k = 0; k < PLOT_TIMES && !bad; k++) {
            double cdf = 0;
            if (b > 0 && lflex_schedule_eval(s, (double)k / (PLOT_TIMES - 1), b, 1, &cdf, NULL, NULL))
                rc = cli_fail_lib("schedule");
            bad = rc || json_array_append_new(row, cli_json_real(cdf));
        }
    }
    if (!rc && bad)
        rc = cli_fail("order.json: out of memory");
    if (!rc && json_dump_file(j, path, JSON_INDENT(1)))
        rc = cli_fail("%s: %s", path, strerror(errno));
    if (j)
        json_decref(j);
    else {
        json_decref(ts);
        json_decref(rows);
    }
    cli_data_free(&d);
    lflex_model_free(m);
    return rc;
}

/* The script: next to the program (the build tree), else where it is
 * installed relative to the program. malloc'd, NULL with an error line
 * when it is in neither place. */
static char *find_script(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        n = 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        slash[1] = '\0';
    const char *inst = LFLEX_PLOT_SCRIPT;
    char *a = malloc(strlen(exe) + sizeof PLOT_SCRIPT_NAME), *b = malloc(strlen(exe) + strlen(inst) + 1);
    if (!a || !b) {
        free(a);
        free(b);
        cli_fail("out of memory");
        return NULL;
    }
    sprintf(a, "%s%s", exe, PLOT_SCRIPT_NAME);
    sprintf(b, "%s%s", inst[0] == '/' ? "" : exe, inst);
    if (access(a, R_OK) == 0) {
        free(b);
        return a;
    }
    if (access(b, R_OK) == 0) {
        free(a);
        return b;
    }
    cli_fail("the plotting script is not installed with the program (looked for %s and %s)", a, b);
    free(a);
    free(b);
    return NULL;
}

int cmd_plot(int argc, char **argv)
{
    const char *run = NULL, *out = NULL, *text = NULL, *ckpt = NULL, *arg;
    int rc = 0;
    cli_opts p;
    if (cli_opts_begin(&p, &plot_cmd, argc, argv))
        return 1;
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: rc = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: rc = cli_opts_positional(&plot_cmd, arg, (const char **[]){&run}, 1); break;
        case OPT_OUT: out = arg; break;
        case OPT_TEXT: text = arg; break;
        case OPT_CHECKPOINT: ckpt = arg; break;
        default: break;
        }
    }
    cli_opts_end(&p);
    if (!rc && !run)
        rc = cli_usage_error(&plot_cmd, "the run directory is missing");
    if (rc)
        return rc < 0 ? 0 : rc;
    cli_buf log = {0}, out_dir = {0}, ckpt_path = {0}, order = {0};
    buf_printf(&log, "%s/log.jsonl", run);
    if (out)
        buf_printf(&out_dir, "%s", out);
    else
        buf_printf(&out_dir, "%s/plots", run);
    if (ckpt)
        buf_printf(&ckpt_path, "%s", ckpt);
    else
        buf_printf(&ckpt_path, "%s/checkpoint.safetensors", run);
    buf_printf(&order, "%s/order.json", out_dir.s);
    char *script = find_script(), *example = text ? strdup(text) : first_example(log.s);
    rc = !script || cli_make_dir(out_dir.s);
    if (!rc && example)
        rc = write_order(ckpt_path.s, example, order.s);
    if (!rc) {
        const char *py = getenv("LFLEX_PYTHON"); /* another interpreter than python3 on the PATH */
        char *args[] = {(char *)(py && *py ? py : "python3"), script, (char *)"--log", log.s, (char *)"--out", out_dir.s,
                        example ? (char *)"--order" : NULL, order.s, NULL};
        fflush(NULL);
        execvp(args[0], args);
        rc = cli_fail("plot needs python3 with matplotlib (Debian: apt-get install python3-matplotlib): %s: %s",
                      args[0], strerror(errno));
    }
    free(script);
    free(example);
    buf_free(&log);
    buf_free(&out_dir);
    buf_free(&ckpt_path);
    buf_free(&order);
    return rc;
}
