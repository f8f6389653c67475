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

void cli_section_set(cli_section *s, const char *key, const char *value)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].key, key) == 0) {
            free(s->items[i].value);
            s->items[i].value = strdup(value);
            s->items[i].line = s->items[i].col = 0; /* from --set or an option now */
            return;
        }
    section_add(s, key, value, 0, 0);
}

void cli_section_free(cli_section *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->items[i].value);
    free(s->items);
    memset(s, 0, sizeof *s);
}

int cli_section_yaml(const cli_section *s, cli_buf *out)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, yaml_write, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    int rc = emit(&em, &ev);
    if (!rc) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
        rc = emit(&em, &ev);
    }
    if (!rc) {
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        rc = emit(&em, &ev);
    }
    for (int i = 0; i < s->n && !rc; i++)
        rc = emit_scalar(&em, s->items[i].key) || emit_scalar(&em, s->items[i].value);
    if (!rc) {
        yaml_mapping_end_event_initialize(&ev);
        rc = emit(&em, &ev);
    }
    if (!rc) {
        yaml_document_end_event_initialize(&ev, 1);
        rc = emit(&em, &ev);
    }
    if (!rc) {
        yaml_stream_end_event_initialize(&ev);
        rc = emit(&em, &ev);
    }
    yaml_emitter_delete(&em);
    return rc ? cli_fail("YAML error while writing sampler options") : 0;
}

/* Every key read so far by its dotted path, with its place: a hash set
 * with open addressing, so that many keys cost linear time. */
typedef struct {
    char *path;
    size_t line, col;
} seen_key;

typedef struct {
    seen_key *slots;
    size_t n, cap;
} key_set;

static size_t slot_of(const seen_key *slots, size_t cap, const char *path)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].path && strcmp(slots[i].path, path) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

/* The key already at `path`, or NULL after adding it (NULL too when out of
 * memory: the check is then skipped, the library still refuses). */
static const seen_key *key_set_add(key_set *s, const char *path, size_t line, size_t col)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        seen_key *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return NULL;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].path)
                slots[slot_of(slots, cap, s->slots[i].path)] = s->slots[i];
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t i = slot_of(s->slots, s->cap, path);
    if (s->slots[i].path)
        return &s->slots[i];
    if ((s->slots[i].path = strdup(path))) {
        s->slots[i].line = line;
        s->slots[i].col = col;
        s->n++;
    }
    return NULL;
}

static void key_set_free(key_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].path);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* The parser with the nesting depth so far: every event goes through
 * next_event, which refuses a mapping or sequence nested deeper than
 * CLI_YAML_DEPTH_MAX when it starts, before anything recurses into it.
 * keys holds the path of every key read, for duplicates. */
typedef struct {
    yaml_parser_t p;
    const char *file, *text;
    size_t len;
    int depth;
    key_set keys;
} reader;

static int next_event(reader *r, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&r->p, ev)) {
        const char *problem = r->p.problem ? r->p.problem : "unknown problem";
        if (r->p.error == YAML_READER_ERROR) { /* a byte offset: count lines and characters up to it */
            size_t line = 1, col = 1;
            for (size_t i = 0; i < r->p.problem_offset && i < r->len; i++) {
                if (r->text[i] == '\n')
                    line++, col = 1;
                else if (((unsigned char)r->text[i] & 0xC0) != 0x80)
                    col++;
            }
            return cli_fail("%s:%zu:%zu: invalid YAML input: %s", r->file, line, col, problem);
        }
        return cli_fail("%s:%zu:%zu: YAML error: %s", r->file, r->p.problem_mark.line + 1,
                        r->p.problem_mark.column + 1, problem);
    }
    if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
        if (++r->depth > CLI_YAML_DEPTH_MAX) {
            int rc = cli_fail("%s:%zu:%zu: %s nested deeper than %d levels of mappings and sequences", r->file,
                              ev->start_mark.line + 1, ev->start_mark.column + 1,
                              ev->type == YAML_MAPPING_START_EVENT ? "a mapping" : "a sequence", CLI_YAML_DEPTH_MAX);
            yaml_event_delete(ev);
            return rc;
        }
    } else if (ev->type == YAML_MAPPING_END_EVENT || ev->type == YAML_SEQUENCE_END_EVENT)
        r->depth--;
    return 0;
}

static const char *event_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "a scalar";
    }
}

/* A key of a mapping must be a scalar (the library refuses others too),
 * and its dotted path (prefix.key; prefix "": at the top level; NULL:
 * within a sequence, not checked) must be new: a key given twice, in one
 * mapping or once nested and once dotted (`model: {d_model: 8}` and
 * `model.d_model: 16`), is an error in every section, as the library has
 * it for its own. */
static int check_key(reader *r, const yaml_event_t *k, const char *prefix)
{
    if (k->type != YAML_SCALAR_EVENT)
        return cli_fail("%s:%zu:%zu: a key must be a scalar, got %s", r->file, k->start_mark.line + 1,
                        k->start_mark.column + 1, event_kind(k));
    if (!prefix)
        return 0;
    const char *key = (const char *)k->data.scalar.value;
    char *path = malloc(strlen(prefix) + 1 + strlen(key) + 1);
    if (!path)
        return cli_fail("out of memory");
    sprintf(path, "%s%s%s", prefix, prefix[0] ? "." : "", key);
    size_t line = k->start_mark.line + 1, col = k->start_mark.column + 1;
    const seen_key *first = key_set_add(&r->keys, path, line, col);
    int rc = first ? cli_fail("%s:%zu:%zu: duplicate key '%s' (first at %zu:%zu)", r->file, line, col, path,
                              first->line, first->col)
                   : 0;
    free(path);
    return rc;
}

/* Read a flat mapping of scalars into a section (the mapping start has been
 * read). */
static int read_section(reader *r, cli_section *s, const char *name)
{
    for (;;) {
        yaml_event_t k, v;
        if (next_event(r, &k))
            return 1;
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            return 0;
        }
        if (check_key(r, &k, name)) {
            yaml_event_delete(&k);
            return 1;
        }
        if (next_event(r, &v)) {
            yaml_event_delete(&k);
            return 1;
        }
        if (v.type != YAML_SCALAR_EVENT) {
            int rc = cli_fail("%s:%zu:%zu: %s.%s: expected a value, got %s", r->file, v.start_mark.line + 1,
                              v.start_mark.column + 1, name, (const char *)k.data.scalar.value, event_kind(&v));
            yaml_event_delete(&k);
            yaml_event_delete(&v);
            return rc;
        }
        section_add(s, (const char *)k.data.scalar.value, (const char *)v.data.scalar.value,
                    (int)k.start_mark.line + 1, (int)k.start_mark.column + 1);
        yaml_event_delete(&k);
        yaml_event_delete(&v);
    }
}

/* Copy the events of one value (scalar, alias or whole subtree) to the
 * emitter. path is the dotted path of the value (NULL inside a sequence);
 * scalar values of matching overrides are replaced. Recursion is at most
 * CLI_YAML_DEPTH_MAX deep (next_event refuses deeper input). */
static int copy_value(reader *r, yaml_emitter_t *em, yaml_event_t *first, const char *path, override *ov, int n_ov,
                      cli_config *c)
{
    if (first->type == YAML_SCALAR_EVENT && path) {
        const char *value = (const char *)first->data.scalar.value;
        int over = -1;
        for (int i = 0; i < n_ov && over < 0; i++)
            if (strcmp(ov[i].path, path) == 0)
                over = i;
        if (over >= 0)
            value = ov[over].value;
        if (strcmp(path, "vocab.tokenizer") == 0)
            snprintf(c->tokenizer, sizeof c->tokenizer, "%s", value);
        if ((strcmp(path, "vocab.tokens") == 0 && value[0]) ||
            (strcmp(path, "vocab.size") == 0 && strcmp(value, "0") != 0))
            c->has_vocab = true;
        if (over >= 0) {
            ov[over].used = true;
            yaml_event_delete(first);
            return emit_scalar(em, ov[over].value);
        }
    }
    yaml_event_type_t type = first->type;
    if (emit(em, first))
        return cli_fail("%s: YAML error while copying '%s'", r->file, path ? path : "a sequence");
    if (type == YAML_SEQUENCE_START_EVENT) { /* copied whole; the library refuses sequences */
        for (;;) {
            yaml_event_t v;
            if (next_event(r, &v))
                return 1;
            if (v.type == YAML_SEQUENCE_END_EVENT)
                return emit(em, &v) ? cli_fail("%s: YAML error while copying a sequence", r->file) : 0;
            if (copy_value(r, em, &v, NULL, ov, n_ov, c))
                return 1;
        }
    }
    if (type != YAML_MAPPING_START_EVENT)
        return 0;
    for (;;) {
        yaml_event_t k, v;
        if (next_event(r, &k))
            return 1;
        if (k.type == YAML_MAPPING_END_EVENT)
            return emit(em, &k) ? cli_fail("%s: YAML error while copying '%s'", r->file, path ? path : "a mapping")
                                : 0;
        if (check_key(r, &k, path)) {
            yaml_event_delete(&k);
            return 1;
        }
        char *sub = NULL;
        if (path) {
            const char *key = (const char *)k.data.scalar.value;
            sub = malloc(strlen(path) + strlen(key) + 2);
            if (!sub) {
                yaml_event_delete(&k);
                return cli_fail("out of memory");
            }
            sprintf(sub, "%s.%s", path, key);
        }
        int rc = emit(em, &k) ? cli_fail("%s: YAML error while copying '%s'", r->file, sub ? sub : "a key") : 0;
        if (!rc && !(rc = next_event(r, &v)))
            rc = copy_value(r, em, &v, sub, ov, n_ov, c);
        free(sub);
        if (rc)
            return rc;
    }
}

/* The top-level mapping (its start has been read and emitted): the data,
 * run and sample sections are kept, everything else copied for the
 * library. */
static int read_top(reader *r, yaml_emitter_t *em, override *ov, int n_ov, cli_config *c)
{
    for (;;) {
        yaml_event_t k, v;
        if (next_event(r, &k))
            return 1;
        if (k.type == YAML_MAPPING_END_EVENT) {
            /* overrides of model keys the file does not have */
            for (int i = 0; i < n_ov; i++) {
                const char *sec = ov[i].path;
                bool cli_sec = !strncmp(sec, "data.", 5) || !strncmp(sec, "run.", 4) || !strncmp(sec, "sample.", 7);
                if (!ov[i].used && !cli_sec) {
                    emit_scalar(em, ov[i].path);
                    emit_scalar(em, ov[i].value);
                    if (!strcmp(ov[i].path, "vocab.tokens") || !strcmp(ov[i].path, "vocab.size"))
                        c->has_vocab = true;
                    if (!strcmp(ov[i].path, "vocab.tokenizer"))
                        snprintf(c->tokenizer, sizeof c->tokenizer, "%s", ov[i].value);
                }
            }
            return emit(em, &k) ? cli_fail("%s: YAML error while copying the configuration", r->file) : 0;
        }
        if (check_key(r, &k, "")) {
            yaml_event_delete(&k);
            return 1;
        }
        char key[128];
        snprintf(key, sizeof key, "%s", (const char *)k.data.scalar.value);
        cli_section *sec = !strcmp(key, "data") ? &c->data : !strcmp(key, "run") ? &c->run : NULL;
        bool is_sample = !strcmp(key, "sample");
        if (!sec && !is_sample) {
            char *path = strdup((const char *)k.data.scalar.value);
            if (!path) {
                yaml_event_delete(&k);
                return cli_fail("out of memory");
            }
            int rc = emit(em, &k) ? cli_fail("%s: YAML error while copying '%s'", r->file, path) : 0;
            if (!rc && !(rc = next_event(r, &v)))
                rc = copy_value(r, em, &v, path, ov, n_ov, c);
            free(path);
            if (rc)
                return rc;
            continue;
        }
        size_t line = k.start_mark.line + 1, col = k.start_mark.column + 1;
        yaml_event_delete(&k);
        if (next_event(r, &v))
            return 1;
        if (v.type == YAML_SCALAR_EVENT && v.data.scalar.length == 0) {
            yaml_event_delete(&v); /* an empty section */
            continue;
        }
        bool mapping = v.type == YAML_MAPPING_START_EVENT;
        yaml_event_delete(&v);
        if (!mapping)
            return cli_fail("%s:%zu:%zu: %s: expected a mapping", r->file, line, col, key);
        int rc = read_section(r, is_sample ? &c->sample : sec, key);
        if (rc)
            return rc;
    }
}

int cli_config_read(cli_config *c, const char *path, char **overrides, int n_overrides)
{
    memset(c, 0, sizeof *c);
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_fail("%s: %s", path, strerror(errno));
    int rc = cli_config_parse(c, path, text, len, overrides, n_overrides);
    free(text);
    return rc;
}

int cli_config_parse(cli_config *c, const char *path, const char *text, size_t len, char **overrides,
                     int n_overrides)
{
    memset(c, 0, sizeof *c);
    override *ov = calloc((size_t)n_overrides + 1, sizeof *ov);
    for (int i = 0; i < n_overrides; i++) {
        char *eq = strchr(overrides[i], '=');
        if (!eq || !strchr(overrides[i], '.') || strchr(overrides[i], '.') > eq) {
            for (int j = 0; j < i; j++)
                free(ov[j].path);
            free(ov);
            return cli_fail("--set %s: expected section.key=value", overrides[i]);
        }
        ov[i].path = strndup(overrides[i], (size_t)(eq - overrides[i]));
        ov[i].value = eq + 1;
    }
    reader r = {.file = path, .text = text, .len = len};
    yaml_emitter_t em;
    cli_buf model = {0};
    yaml_parser_initialize(&r.p);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, yaml_write, &model);
    int rc = 0, documents = 0;
    while (!rc) {
        yaml_event_t ev;
        if ((rc = next_event(&r, &ev)))
            break;
        yaml_event_type_t type = ev.type;
        if (type == YAML_DOCUMENT_START_EVENT && documents++) {
            rc = cli_fail("%s:%zu:%zu: a second YAML document; expected one", path, ev.start_mark.line + 1,
                          ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            break;
        }
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_ALIAS_EVENT ||
            (type == YAML_SCALAR_EVENT && ev.data.scalar.length)) {
            rc = cli_fail("%s:%zu:%zu: the configuration must be a mapping of sections", path,
                          ev.start_mark.line + 1, ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            break;
        }
        if (emit(&em, &ev)) {
            rc = cli_fail("%s: YAML error while copying the configuration", path);
            break;
        }
        if (type == YAML_STREAM_END_EVENT)
            break;
        if (type == YAML_MAPPING_START_EVENT)
            rc = read_top(&r, &em, ov, n_overrides, c);
    }
    yaml_parser_delete(&r.p);
    key_set_free(&r.keys);
    yaml_emitter_delete(&em);
    /* overrides of the program's sections */
    for (int i = 0; i < n_overrides && !rc; i++) {
        const char *dot = strchr(ov[i].path, '.');
        if (!strncmp(ov[i].path, "data.", 5))
            cli_section_set(&c->data, dot + 1, ov[i].value);
        else if (!strncmp(ov[i].path, "run.", 4))
            cli_section_set(&c->run, dot + 1, ov[i].value);
        else if (!strncmp(ov[i].path, "sample.", 7))
            cli_section_set(&c->sample, dot + 1, ov[i].value);
    }
    /* the sampler's options through the emitter, which quotes what needs it:
     * a value cannot add a key */
    if (!rc && c->sample.n)
        rc = cli_section_yaml(&c->sample, &c->sample_yaml);
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
    cli_section_free(&c->data);
    cli_section_free(&c->run);
    cli_section_free(&c->sample);
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
    if (errno || *end || end == kv->value || v < lo || v > hi) {
        if (!kv->line) /* from --set */
            return cli_fail("--set %s.%s=%s: expected an integer in [%ld, %ld]", sec, key, kv->value, lo, hi);
        return cli_fail("%s:%d:%d: %s.%s: expected an integer in [%ld, %ld], got '%s'", file, kv->line, kv->col, sec,
                        key, lo, hi, kv->value);
    }
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
    else if (!kv->line) /* from --set */
        return cli_fail("--set %s.%s=%s: expected true or false", sec, key, kv->value);
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
            int rc = s->items[i].line
                         ? cli_fail("%s:%d:%d: unknown key '%s.%s' (known: %s)", file, s->items[i].line,
                                    s->items[i].col, sec, s->items[i].key, list.s)
                         : cli_fail("--set %s.%s: unknown key (known: %s)", sec, s->items[i].key, list.s);
            buf_free(&list);
            return rc;
        }
    }
    return 0;
}
