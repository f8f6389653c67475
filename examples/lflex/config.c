/* Splitting a `lflex train` configuration: the data, run and sample
 * sections belong to the program, everything else is passed to the library
 * unchanged (re-emitted through libyaml, with --set overrides applied). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli.h"

typedef struct {
    char *path, *value;
    bool used;
} override;

static int yaml_write(void *data, unsigned char *buffer, size_t size)
{
    buf_add(data, (const char *)buffer, size);
    return 1;
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : -1; /* the emitter owns the event */
}

static int emit_scalar(yaml_emitter_t *em, const char *s)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, YAML_ANY_SCALAR_STYLE);
    return emit(em, &ev);
}

static void section_add(cli_section *s, const char *key, const char *value, int line, int col)
{
    cli_kv *items = realloc(s->items, (size_t)(s->n + 1) * sizeof *items);
    if (!items)
        return;
    s->items = items;
    cli_kv *kv = &items[s->n++];
    snprintf(kv->key, sizeof kv->key, "%s", key);
    kv->value = strdup(value);
    kv->line = line;
    kv->col = col;
}

static void section_set(cli_section *s, const char *key, const char *value)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].key, key) == 0) {
            free(s->items[i].value);
            s->items[i].value = strdup(value);
            return;
        }
    section_add(s, key, value, 0, 0);
}

static void section_free(cli_section *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->items[i].value);
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* Read a flat mapping of scalars into a section (the mapping start has been
 * read). */
static int read_section(yaml_parser_t *p, cli_section *s, const char *file, const char *name)
{
    int rc = 0;
    for (;;) {
        yaml_event_t k, v;
        if (!yaml_parser_parse(p, &k)) {
            rc = cli_fail("%s: YAML error: %s", file, p->problem);
            break;
        }
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            break;
        }
        if (!yaml_parser_parse(p, &v)) {
            yaml_event_delete(&k);
            rc = cli_fail("%s: YAML error: %s", file, p->problem);
            break;
        }
        if (k.type != YAML_SCALAR_EVENT || v.type != YAML_SCALAR_EVENT) {
            rc = cli_fail("%s:%zu:%zu: %s: expected `key: value` pairs", file, k.start_mark.line + 1,
                          k.start_mark.column + 1, name);
            yaml_event_delete(&k);
            yaml_event_delete(&v);
            break;
        }
        section_add(s, (const char *)k.data.scalar.value, (const char *)v.data.scalar.value,
                    (int)k.start_mark.line + 1, (int)k.start_mark.column + 1);
        yaml_event_delete(&k);
        yaml_event_delete(&v);
    }
    return rc;
}

/* Copy the events of one value (scalar or whole subtree) to the emitter.
 * prefix is the dotted path of the value; scalar values of matching
 * overrides are replaced. */
static int copy_value(yaml_parser_t *p, yaml_emitter_t *em, yaml_event_t *first, const char *prefix, override *ov,
                      int n_ov, cli_config *c)
{
    if (first->type == YAML_SCALAR_EVENT) {
        for (int i = 0; i < n_ov; i++)
            if (strcmp(ov[i].path, prefix) == 0) {
                ov[i].used = true;
                yaml_event_delete(first);
                return emit_scalar(em, ov[i].value);
            }
        if (strcmp(prefix, "vocab.tokenizer") == 0)
            snprintf(c->tokenizer, sizeof c->tokenizer, "%s", (const char *)first->data.scalar.value);
        if ((strcmp(prefix, "vocab.tokens") == 0 && first->data.scalar.length > 0) ||
            (strcmp(prefix, "vocab.size") == 0 && strcmp((const char *)first->data.scalar.value, "0") != 0))
            c->has_vocab = true;
        return emit(em, first);
    }
    if (first->type != YAML_MAPPING_START_EVENT)
        return emit(em, first); /* sequences are refused by the library */
    if (emit(em, first))
        return -1;
    for (;;) {
        yaml_event_t k, v;
        if (!yaml_parser_parse(p, &k))
            return -1;
        if (k.type == YAML_MAPPING_END_EVENT)
            return emit(em, &k);
        char path[256];
        snprintf(path, sizeof path, "%s.%s", prefix,
                 k.type == YAML_SCALAR_EVENT ? (const char *)k.data.scalar.value : "?");
        if (emit(em, &k) || !yaml_parser_parse(p, &v))
            return -1;
        if (copy_value(p, em, &v, path, ov, n_ov, c))
            return -1;
    }
}

int cli_config_read(cli_config *c, const char *path, char **overrides, int n_overrides)
{
    memset(c, 0, sizeof *c);
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_fail("%s: %s", path, strerror(errno));
    override *ov = calloc((size_t)n_overrides + 1, sizeof *ov);
    for (int i = 0; i < n_overrides; i++) {
        char *eq = strchr(overrides[i], '=');
        if (!eq || !strchr(overrides[i], '.') || strchr(overrides[i], '.') > eq) {
            free(ov);
            free(text);
            return cli_fail("--set %s: expected section.key=value", overrides[i]);
        }
        ov[i].path = strndup(overrides[i], (size_t)(eq - overrides[i]));
        ov[i].value = eq + 1;
    }
    yaml_parser_t p;
    yaml_emitter_t em;
    cli_buf model = {0};
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, yaml_write, &model);
    int rc = 0, depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = cli_fail("%s:%zu:%zu: YAML error: %s", path, p.problem_mark.line + 1, p.problem_mark.column + 1,
                          p.problem);
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_END_EVENT) {
            emit(&em, &ev);
            break;
        }
        if (type == YAML_MAPPING_START_EVENT && depth == 0) {
            depth = 1;
            emit(&em, &ev);
            continue;
        }
        if (type == YAML_MAPPING_END_EVENT && depth == 1) {
            /* overrides of model keys the file does not have */
            for (int i = 0; i < n_overrides && !rc; i++) {
                const char *sec = ov[i].path;
                bool cli_sec = !strncmp(sec, "data.", 5) || !strncmp(sec, "run.", 4) || !strncmp(sec, "sample.", 7);
                if (!ov[i].used && !cli_sec) {
                    emit_scalar(&em, ov[i].path);
                    emit_scalar(&em, ov[i].value);
                    if (!strcmp(ov[i].path, "vocab.tokens") || !strcmp(ov[i].path, "vocab.size"))
                        c->has_vocab = true;
                    if (!strcmp(ov[i].path, "vocab.tokenizer"))
                        snprintf(c->tokenizer, sizeof c->tokenizer, "%s", ov[i].value);
                }
            }
            depth = 0;
            emit(&em, &ev);
            continue;
        }
        if (depth == 1 && type == YAML_SCALAR_EVENT) {
            const char *key = (const char *)ev.data.scalar.value;
            cli_section *sec = !strcmp(key, "data") ? &c->data : !strcmp(key, "run") ? &c->run : NULL;
            bool is_sample = !strcmp(key, "sample");
            if (sec || is_sample) {
                yaml_event_t v;
                int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
                yaml_event_delete(&ev);
                if (!yaml_parser_parse(&p, &v)) {
                    rc = cli_fail("%s: YAML error: %s", path, p.problem);
                    break;
                }
                if (v.type == YAML_SCALAR_EVENT && v.data.scalar.length == 0) {
                    yaml_event_delete(&v); /* an empty section */
                    continue;
                }
                if (v.type != YAML_MAPPING_START_EVENT) {
                    yaml_event_delete(&v);
                    rc = cli_fail("%s:%d:%d: %s: expected a mapping", path, line, col, key);
                    break;
                }
                yaml_event_delete(&v);
                cli_section sample = {0};
                if ((rc = read_section(&p, is_sample ? &sample : sec, path, key)))
                    break;
                if (is_sample) { /* re-emit as plain lines; the library checks the keys */
                    for (int i = 0; i < sample.n; i++)
                        buf_printf(&c->sample_yaml, "%s: %s\n", sample.items[i].key, sample.items[i].value);
                    section_free(&sample);
                }
                continue;
            }
            char prefix[128];
            snprintf(prefix, sizeof prefix, "%s", key);
            yaml_event_t v;
            if (emit(&em, &ev) || !yaml_parser_parse(&p, &v) || copy_value(&p, &em, &v, prefix, ov, n_overrides, c)) {
                rc = cli_fail("%s: YAML error while copying '%s'", path, prefix);
                break;
            }
            continue;
        }
        if (type == YAML_SEQUENCE_START_EVENT || (type == YAML_SCALAR_EVENT && depth == 0 && ev.data.scalar.length)) {
            rc = cli_fail("%s:%zu:%zu: the configuration must be a mapping of sections", path,
                          ev.start_mark.line + 1, ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            break;
        }
        emit(&em, &ev);
    }
    yaml_parser_delete(&p);
    yaml_emitter_delete(&em);
    free(text);
    /* overrides of the program's sections */
    for (int i = 0; i < n_overrides && !rc; i++) {
        const char *dot = strchr(ov[i].path, '.');
        if (!strncmp(ov[i].path, "data.", 5))
            section_set(&c->data, dot + 1, ov[i].value);
        else if (!strncmp(ov[i].path, "run.", 4))
            section_set(&c->run, dot + 1, ov[i].value);
        else if (!strncmp(ov[i].path, "sample.", 7))
            buf_printf(&c->sample_yaml, "%s: %s\n", dot + 1, ov[i].value);
    }
    for (int i = 0; i < n_overrides; i++)
        free(ov[i].path);
    free(ov);
    if (rc) {
        buf_free(&model);
        cli_config_free(c);
        return rc;
    }
    c->model_yaml = model.s ? model.s : strdup("");
    c->model_len = model.len;
    return 0;
}

void cli_config_free(cli_config *c)
{
    free(c->model_yaml);
    buf_free(&c->sample_yaml);
    section_free(&c->data);
    section_free(&c->run);
    memset(c, 0, sizeof *c);
}

static const cli_kv *find(const cli_section *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->items[i].key, key))
            return &s->items[i];
    return NULL;
}

int cli_get_int(const cli_section *s, const char *sec, const char *key, long lo, long hi, long def, long *out,
                const char *file)
{
    const cli_kv *kv = find(s, key);
    *out = def;
    if (!kv)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(kv->value, &end, 10);
    if (errno || *end || end == kv->value || v < lo || v > hi)
        return cli_fail("%s:%d:%d: %s.%s: expected an integer in [%ld, %ld], got '%s'", file, kv->line, kv->col, sec,
                        key, lo, hi, kv->value);
    *out = v;
    return 0;
}

int cli_get_str(const cli_section *s, const char *key, const char **out)
{
    const cli_kv *kv = find(s, key);
    *out = kv ? kv->value : NULL;
    return 0;
}

int cli_get_bool(const cli_section *s, const char *sec, const char *key, bool def, bool *out, const char *file)
{
    const cli_kv *kv = find(s, key);
    *out = def;
    if (!kv)
        return 0;
    if (!strcmp(kv->value, "true") || !strcmp(kv->value, "yes") || !strcmp(kv->value, "on"))
        *out = true;
    else if (!strcmp(kv->value, "false") || !strcmp(kv->value, "no") || !strcmp(kv->value, "off"))
        *out = false;
    else
        return cli_fail("%s:%d:%d: %s.%s: expected true or false, got '%s'", file, kv->line, kv->col, sec, key,
                        kv->value);
    return 0;
}

int cli_check_keys(const cli_section *s, const char *sec, const char *const *known, const char *file)
{
    for (int i = 0; i < s->n; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = !strcmp(*k, s->items[i].key);
        if (!ok) {
            cli_buf list = {0};
            for (const char *const *k = known; *k; k++)
                buf_printf(&list, "%s%s", k == known ? "" : ", ", *k);
            int rc = cli_fail("%s:%d:%d: unknown key '%s.%s' (known: %s)", file, s->items[i].line, s->items[i].col,
                              sec, s->items[i].key, list.s);
            buf_free(&list);
            return rc;
        }
    }
    return 0;
}
