/* lflex export CKPT --weights-only OUT [--raw]: a checkpoint without its
 * optimiser state, for sampling (doc/checkpoints.md, "Weights-only files"). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_WEIGHTS_ONLY = 1, OPT_RAW };

static const cli_opt export_opts[] = {
    {"weights-only", NULL, "write the weights alone, without the optimiser state (the only export so far)",
     OPT_WEIGHTS_ONLY},
    {"raw", NULL, "the raw weights, not the EMA weights (those are the default when the\ncheckpoint keeps them)",
     OPT_RAW},
    {NULL, NULL, NULL, 0},
};

static const cli_command export_cmd = {
    "export", "CKPT --weights-only OUT [OPTIONS]",
    "Write the weights of a checkpoint to OUT, a smaller file for sampling: the EMA weights\n"
    "when the checkpoint keeps them (train.ema > 0; --raw for the raw ones), its configuration,\n"
    "vocabulary and step, and no optimiser state. sample, eval, order, rates and the library\n"
    "load it as a checkpoint and generate what the checkpoint generates (with the EMA weights,\n"
    "the default of the sampler); it cannot resume training.",
    "lflex export runs/a/checkpoint.safetensors --weights-only runs/a/weights.safetensors",
    export_opts};

/* The tensors of the weights (those without an optim. or ema. prefix),
 * taken from `prefix` + name, into a new header and data section. */
static int keep_weights(const cli_st *f, const char *prefix, json_t *header, cli_buf *data)
{
    const char *name;
    json_t *e;
    json_object_foreach(f->header, name, e)
    {
        if (!strcmp(name, "__metadata__") || !strncmp(name, "optim.", 6) || !strncmp(name, "ema.", 4))
            continue;
        char src[512];
        snprintf(src, sizeof src, "%s%s", prefix, name);
        json_t *from = json_object_get(f->header, src), *off = json_object_get(from, "data_offsets");
        json_int_t b = json_integer_value(json_array_get(off, 0)), end = json_integer_value(json_array_get(off, 1));
        if (!from || b < 0 || end < b || (size_t)end > f->data_len)
            return cli_fail("tensor '%s' is missing or out of place", src);
        json_t *to = json_object(), *at = json_array();
        size_t o = data->len;
        buf_add(data, f->data + b, (size_t)(end - b));
        if (cli_json_set(to, "dtype", json_incref(json_object_get(from, "dtype"))) ||
            cli_json_set(to, "shape", json_incref(json_object_get(from, "shape"))) ||
            cli_json_set(to, "data_offsets", at) || json_array_append_new(at, json_integer((json_int_t)o)) ||
            json_array_append_new(at, json_integer((json_int_t)data->len)) || cli_json_set(header, name, to))
            return cli_fail("out of memory");
    }
    return 0;
}

static bool has_ema(const cli_st *f)
{
    const char *name;
    json_t *e;
    json_object_foreach(f->header, name, e)
    {
        if (!strncmp(name, "ema.", 4))
            return true;
    }
    return false;
}

int cmd_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *arg;
    bool weights_only = false, raw = false;
    int rc = 0;
    cli_opts p;
    if (cli_opts_begin(&p, &export_cmd, argc, argv))
        return 1;
    for (int id; !rc && (id = cli_opts_next(&p, &arg)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_EXIT: rc = p.status ? p.status : -1; break;
        case CLI_OPT_ARG: rc = cli_opts_positional(&export_cmd, arg, (const char **[]){&ckpt, &out}, 2); break;
        case OPT_WEIGHTS_ONLY: weights_only = true; break;
        case OPT_RAW: raw = true; break;
        default: break;
        }
    }
    cli_opts_end(&p);
    if (!rc && !out)
        rc = cli_usage_error(&export_cmd, "%s is missing", ckpt ? "the output file" : "the checkpoint");
    if (!rc && !weights_only)
        rc = cli_usage_error(&export_cmd, "--weights-only is needed (the only export so far)");
    if (rc)
        return rc < 0 ? 0 : rc;
    /* the library checks the whole file (checksum, tensors, values) first */
    lflex_model_t *m = NULL;
    if (lflex_model_load(&m, ckpt))
        return cli_fail_lib(ckpt);
    int64_t step = 0;
    lflex_model_get(m, LFLEX_PROP_STEP, &step);
    lflex_model_free(m);
    m = NULL;
    cli_st f;
    if (cli_st_read(ckpt, &f))
        return 1;
    const char *kind = raw ? "raw" : "ema";
    if (cli_st_weights_only(&f))
        rc = cli_fail("%s: already a weights-only file (%s weights)", ckpt, cli_st_weights_only(&f));
    else if (!raw && !has_ema(&f)) {
        kind = "raw";
        fprintf(stderr, "lflex: %s keeps no EMA weights (train.ema is 0): exporting the raw weights\n", ckpt);
    }
    json_t *header = json_object(), *meta = json_deep_copy(f.meta);
    cli_buf data = {0}, file = {0};
    if (!rc && (cli_json_set(meta, "lflex.weights", json_string(kind)) ||
                cli_json_set(header, "__metadata__", json_incref(meta))))
        rc = cli_fail("out of memory");
    if (!rc)
        rc = keep_weights(&f, strcmp(kind, "ema") ? "" : "ema.", header, &data);
    if (!rc)
        rc = cli_st_build(header, data.s, data.len, true, &file) || cli_write_atomic(out, file.s, file.len);
    /* what was written loads */
    if (!rc && lflex_model_load(&m, out))
        rc = cli_fail_lib(out);
    lflex_model_free(m);
    if (!rc)
        fprintf(stderr, "lflex: %s: the %s weights of step %" PRId64 ", %zu bytes (the checkpoint: %zu)\n", out, kind,
                step, file.len, f.len);
    json_decref(meta);
    json_decref(header);
    buf_free(&data);
    buf_free(&file);
    cli_st_free(&f);
    return rc;
}
