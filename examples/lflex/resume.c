/* What `lflex train --resume` needs beyond the checkpoint: the order in
 * which the training examples are drawn, saved next to each checkpoint
 * (the library's checkpoint has no room for the program's own state). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_write_atomic(const char *path, const char *data, size_t len)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp)
        return cli_fail("%s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int err = fd < 0 ? errno : 0;
    for (size_t done = 0; !err && done < len;) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno != EINTR)
            err = errno;
        else if (w > 0)
            done += (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (fd >= 0 && close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return cli_fail("%s: %s", path, strerror(err));
    }
    free(tmp);
    /* the rename itself is durable once the directory is synced */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}

char *cli_order_path(const char *ckpt)
{
    static const char suffix[] = ".data-order.json";
    size_t n = strlen(ckpt);
    char *p = malloc(n + sizeof suffix);
    if (p) {
        memcpy(p, ckpt, n);
        memcpy(p + n, suffix, sizeof suffix);
    }
    return p;
}

uint64_t cli_data_hash(const cli_data *d)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the examples as the loop sees them */
    const unsigned char *parts[3] = {(const unsigned char *)d->tokens, d->fixed, (const unsigned char *)d->offsets};
    size_t sizes[3] = {d->n ? d->offsets[d->n] * sizeof *d->tokens : 0, d->n ? d->offsets[d->n] : 0,
                       d->n ? (d->n + 1) * sizeof *d->offsets : 0};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < sizes[k]; i++)
            h = (h ^ parts[k][i]) * 1099511628211ULL;
    return h;
}

static json_t *hex(uint64_t v)
{
    char s[17];
    snprintf(s, sizeof s, "%016" PRIx64, v);
    return json_string(s);
}

int cli_order_write(const char *ckpt, const cli_order *states, int n)
{
    char *path = cli_order_path(ckpt);
    json_t *root = json_object(), *arr = json_array();
    int rc = !path || !root || !arr;
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "states", arr);
    for (int i = 0; i < n && !rc; i++) {
        const cli_order *s = &states[i];
        json_t *o = json_object();
        rc = !o || json_object_set_new(o, "step", json_integer(s->step)) ||
             json_object_set_new(o, "seed", json_integer(s->seed)) ||
             json_object_set_new(o, "batch_size", json_integer(s->batch)) ||
             json_object_set_new(o, "examples", json_integer((json_int_t)s->examples)) ||
             json_object_set_new(o, "data_hash", hex(s->data_hash)) ||
             json_object_set_new(o, "epoch", json_integer((json_int_t)s->epoch)) ||
             json_object_set_new(o, "position", json_integer((json_int_t)s->position)) ||
             json_object_set_new(o, "epoch_rng", hex(s->epoch_rng)) || json_array_append_new(arr, o);
    }
    char *text = rc ? NULL : json_dumps(root, JSON_INDENT(1));
    if (!text)
        rc = cli_fail("%s: out of memory", path ? path : ckpt);
    else {
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps leaves room for its NUL */
        rc = cli_write_atomic(path, text, len + 1);
    }
    free(text);
    json_decref(root);
    free(path);
    return rc;
}

static bool get_int(json_t *o, const char *key, int64_t lo, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo)
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool get_hex(json_t *o, const char *key, uint64_t *out)
{
    const char *s = json_string_value(json_object_get(o, key));
    char *end;
    if (!s || strlen(s) != 16)
        return false;
    *out = strtoull(s, &end, 16);
    return *end == '\0';
}

int cli_order_read(const char *ckpt, int64_t step, cli_order *out, char *why, size_t cap)
{
    char *path = cli_order_path(ckpt);
    if (!path)
        return cli_fail("out of memory");
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    int found = 0;
    if (!root) {
        if (access(path, F_OK) != 0)
            snprintf(why, cap, "%s: %s", path, strerror(errno));
        else
            snprintf(why, cap, "%s:%d: %s", path, err.line, err.text);
    } else {
        json_t *states = json_object_get(root, "states"), *s;
        size_t i;
        int64_t format = 0;
        snprintf(why, cap, "%s holds no state for step %" PRId64, path, step);
        if (!get_int(root, "format", 1, &format) || format != 1 || !json_is_array(states))
            snprintf(why, cap, "%s: not a batch-order file of format 1", path);
        else
            json_array_foreach(states, i, s)
            {
                cli_order o;
                int64_t examples, epoch, position;
                bool ok = get_int(s, "step", 0, &o.step) && get_int(s, "seed", 0, &o.seed) &&
                          get_int(s, "batch_size", 1, &o.batch) && get_int(s, "examples", 1, &examples) &&
                          get_hex(s, "data_hash", &o.data_hash) && get_int(s, "epoch", 0, &epoch) &&
                          get_int(s, "position", 0, &position) && get_hex(s, "epoch_rng", &o.epoch_rng) &&
                          position <= examples;
                if (!ok) {
                    snprintf(why, cap, "%s: state %zu is malformed", path, i + 1);
                    break;
                }
                o.examples = (uint64_t)examples;
                o.epoch = (uint64_t)epoch;
                o.position = (uint64_t)position;
                if (o.step == step) {
                    *out = o;
                    found = 1;
                }
            }
    }
    json_decref(root);
    free(path);
    return found;
}

int cli_log_keep_until(const char *path, int64_t step, size_t *dropped)
{
    *dropped = 0;
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text)
        return errno == ENOENT ? 0 : cli_fail("%s: %s", path, strerror(errno));
    cli_buf kept = {0};
    for (size_t at = 0; at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        json_t *rec = nl ? json_loadb(text + at, n, 0, NULL) : NULL; /* no newline: a record cut short */
        json_t *s = json_object_get(rec, "step");
        if (json_is_integer(s) && json_integer_value(s) <= step)
            buf_add(&kept, text + at, n + 1);
        else
            (*dropped)++;
        json_decref(rec);
        at += n + 1;
    }
    int rc = *dropped ? cli_write_atomic(path, kept.s ? kept.s : "", kept.len) : 0;
    buf_free(&kept);
    free(text);
    return rc;
}

/* Copy the safetensors file `src` to the open file `fd` with
 * __metadata__["lflex.config"] set to `yaml`. The checksum is left out (a
 * file without it is read without the check): the source was just checked
 * by loading it, and the copy is read once and removed. */
static int copy_with_config(const char *src, int fd, const char *yaml)
{
    cli_st f;
    if (cli_st_read(src, &f))
        return 1;
    cli_buf out = {0};
    int rc = json_object_set_new(f.meta, "lflex.config", json_string(yaml)) ? cli_fail("out of memory") : 0;
    if (!rc)
        rc = cli_st_build(f.header, f.data, f.data_len, false, &out);
    for (size_t done = 0; !rc && done < out.len;) {
        ssize_t w = write(fd, out.s + done, out.len - done);
        if (w < 0 && errno != EINTR)
            rc = cli_fail("%s: %s", src, strerror(errno));
        else if (w > 0)
            done += (size_t)w;
    }
    buf_free(&out);
    cli_st_free(&f);
    return rc;
}

int cli_load_resumed(lflex_model_t **out, const char *ckpt, char **overrides, int n, const char *tmp_dir)
{
    *out = NULL;
    lflex_model_t *m;
    if (lflex_model_load(&m, ckpt))
        return cli_fail_lib("resume");
    cli_st f; /* a weights-only file has no optimiser state to resume with */
    int bad = cli_st_read(ckpt, &f);
    if (!bad) {
        const char *weights = cli_st_weights_only(&f);
        if (weights)
            bad = cli_fail("--resume %s: a weights-only file (%s weights, written by lflex export): it has no "
                           "optimiser state to resume training with; resume from the run's checkpoint, or train a "
                           "new run", ckpt, weights);
        cli_st_free(&f);
    }
    if (bad) {
        lflex_model_free(m);
        return 1;
    }
    if (n == 0) {
        *out = m;
        return 0;
    }
    /* the checkpoint's configuration with the overrides */
    size_t len = 0;
    lflex_model_config(m, NULL, 0, &len);
    char *yaml = malloc(len + 1);
    int rc = !yaml ? cli_fail("out of memory") : 0;
    if (!rc && lflex_model_config(m, yaml, len + 1, &len))
        rc = cli_fail_lib("resume");
    lflex_model_free(m);
    cli_config c = {0};
    if (!rc)
        rc = cli_config_parse(&c, "the checkpoint's configuration", yaml, len, overrides, n);
    free(yaml);
    /* a copy of the checkpoint that holds it, loaded and removed */
    char *tmp = rc ? NULL : malloc(strlen(tmp_dir) + 64);
    int fd = -1;
    if (tmp) {
        sprintf(tmp, "%s/.lflex-resume-XXXXXX", tmp_dir);
        fd = mkstemp(tmp);
        if (fd < 0)
            rc = cli_fail("%s: %s", tmp, strerror(errno));
    }
    if (!rc)
        rc = copy_with_config(ckpt, fd, c.model_yaml);
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = cli_fail("%s: %s", tmp, strerror(errno));
    if (!rc && lflex_model_load(out, tmp)) {
        const char *msg = lflex_last_error();
        size_t tl = strlen(tmp);
        if (!strncmp(msg, tmp, tl) && !strncmp(msg + tl, ": ", 2)) /* name what the user gave, not the copy */
            msg += tl + 2;
        rc = cli_fail("--set on resume: %s", msg);
    }
    if (fd >= 0)
        unlink(tmp);
    free(tmp);
    cli_config_free(&c);
    return rc;
}
