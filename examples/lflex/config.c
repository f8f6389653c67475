/* Splitting a `lflex train` configuration: the data, run and sample
 * sections belong to the program, everything else is passed to the library
 * unchanged (re-emitted through libyaml, with --set overrides applied). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
    kv->key = strdup(key);
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
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].key);
        free(s->items[i].value);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* A document of YAML into out through libyaml's emitter: open (stream
 * and document start), the caller's events, close (which also reports a
 * failure of any of them). */
static int emit_open(yaml_emitter_t *em, cli_buf *out)
{
    yaml_event_t ev;
    yaml_emitter_initialize(em);
    yaml_emitter_set_output(em, yaml_write, out);
    yaml_emitter_set_unicode(em, 1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    int rc = emit(em, &ev);
    if (!rc) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
        rc = emit(em, &ev);
    }
    return rc;
}

static int emit_close(yaml_emitter_t *em, int rc)
{
    yaml_event_t ev;
    if (!rc) {
        yaml_document_end_event_initialize(&ev, 1);
        rc = emit(em, &ev);
    }
    if (!rc) {
        yaml_stream_end_event_initialize(&ev);
        rc = emit(em, &ev);
    }
    yaml_emitter_delete(em);
    return rc ? cli_fail("YAML error while writing a configuration") : 0;
}

/* A section as a mapping of scalars, block or flow style. */
static int emit_section(yaml_emitter_t *em, const cli_section *s, bool flow)
{
    yaml_event_t ev;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    int rc = emit(em, &ev);
    for (int i = 0; i < s->n && !rc; i++)
        rc = emit_scalar(em, s->items[i].key) || emit_scalar(em, s->items[i].value);
    if (!rc) {
        yaml_mapping_end_event_initialize(&ev);
        rc = emit(em, &ev);
    }
    return rc;
}

static int section_yaml(const cli_section *s, bool flow, cli_buf *out)
{
    yaml_emitter_t em;
    int rc = emit_open(&em, out);
    return emit_close(&em, rc || emit_section(&em, s, flow));
}

int cli_section_yaml(const cli_section *s, cli_buf *out)
{
    return section_yaml(s, false, out);
}

int cli_sections_yaml(const char *const *names, const cli_section *const *secs, int n, cli_buf *out)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    int rc = emit_open(&em, out);
    if (!rc) {
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        rc = emit(&em, &ev);
    }
    for (int i = 0; i < n && !rc; i++)
        rc = emit_scalar(&em, names[i]) || emit_section(&em, secs[i], false);
    if (!rc) {
        yaml_mapping_end_event_initialize(&ev);
        rc = emit(&em, &ev);
    }
    return emit_close(&em, rc);
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
    size_t *line_at, n_lines;   /* byte offsets of the lines (byte_of) */
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

/* The byte offset of a mark (libyaml counts characters: its index is
 * not an offset in a text with multi-byte characters), from its line and
 * column through the table of line starts. */
static bool line_break(const reader *r, size_t i)
{
    return r->text[i] == '\n' || (r->text[i] == '\r' && (i + 1 == r->len || r->text[i + 1] != '\n'));
}

static size_t byte_of(reader *r, yaml_mark_t m)
{
    if (!r->line_at) { /* a line ends at LF, CRLF or a lone CR, as for libyaml */
        size_t n = 1;
        for (size_t i = 0; i < r->len; i++)
            n += line_break(r, i);
        if (!(r->line_at = malloc(n * sizeof *r->line_at)))
            return m.index; /* out of memory: right for ASCII */
        r->line_at[0] = 0;
        for (size_t i = 0, l = 1; i < r->len; i++)
            if (line_break(r, i))
                r->line_at[l++] = i + 1;
        r->n_lines = n;
    }
    size_t b = m.line < r->n_lines ? r->line_at[m.line] : r->len;
    for (size_t c = 0; c < m.column && b < r->len; c++) /* a character: its first byte and continuation bytes */
        for (b++; b < r->len && ((unsigned char)r->text[b] & 0xC0) == 0x80; b++)
            ;
    return b;
}

/* Read a flat mapping of scalars into a section (the mapping start has been
 * read); *end gets the byte offset where it ends. */
static int read_section(reader *r, cli_section *s, const char *name, size_t *end)
{
    for (;;) {
        yaml_event_t k, v;
        if (next_event(r, &k))
            return 1;
        if (k.type == YAML_MAPPING_END_EVENT) {
            *end = byte_of(r, k.end_mark);
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

/* The model's part of the file is the file itself, given to the library
 * with the program's sections and the keys that --set replaces blanked out
 * (spaces, line breaks kept): the library's messages then give lines and
 * columns of the user's file. The values of --set go after the file's
 * keys, written by libyaml's emitter, so that a value is always one value. */
typedef struct {
    size_t from, to;            /* byte range of the text to blank */
} blank_range;

typedef struct {
    override *ov;
    int n_ov;
    blank_range *blank;
    size_t n_blank;
    bool flow;                  /* the mapping being read is in flow style */
    cli_config *c;
} model_walk;

/* Blank a "key: value" entry: from the key to the value's end, and in a
 * flow mapping the comma that follows (a trailing comma is fine there). */
static int blank_entry(reader *r, model_walk *w, size_t from, size_t to)
{
    if (w->flow) {
        size_t k = to;
        while (k < r->len && (r->text[k] == ' ' || r->text[k] == '\t' || r->text[k] == '\n' || r->text[k] == '\r'))
            k++;
        if (k < r->len && r->text[k] == ',')
            to = k + 1;
    }
    blank_range *b = realloc(w->blank, (w->n_blank + 1) * sizeof *b);
    if (!b)
        return cli_fail("out of memory");
    w->blank = b;
    b[w->n_blank++] = (blank_range){from, to};
    return 0;
}

/* The last override of `path`, or NULL. */
static override *override_of(model_walk *w, const char *path)
{
    for (int i = w->n_ov - 1; i >= 0; i--)
        if (!strcmp(w->ov[i].path, path))
            return &w->ov[i];
    return NULL;
}

/* What the program reads of the model's keys: the tokenizer and whether
 * the vocabulary is given. */
static void note_model_key(cli_config *c, const char *path, const char *value)
{
    if (!strcmp(path, "vocab.tokenizer"))
        snprintf(c->tokenizer, sizeof c->tokenizer, "%s", value);
    if ((!strcmp(path, "vocab.tokens") && value[0]) || (!strcmp(path, "vocab.size") && strcmp(value, "0") != 0))
        c->has_vocab = true;
}

/* Skip the rest of a value whose first event is `ev` (deleted), reading
 * the keys of its mappings: duplicates, and keys that --set replaces
 * (blanked). `path` is the value's dotted path (NULL in a sequence),
 * `key_mark` where its key starts. *end gets where the value ends. */
static int walk_value(reader *r, model_walk *w, yaml_event_t *ev, const char *path, yaml_mark_t key_mark, size_t *end)
{
    yaml_event_type_t type = ev->type;
    *end = byte_of(r, ev->end_mark);
    if (type == YAML_SCALAR_EVENT && path) {
        override *o = override_of(w, path);
        note_model_key(w->c, path, o ? o->value : (const char *)ev->data.scalar.value);
        section_add(&w->c->model, path, (const char *)ev->data.scalar.value, (int)key_mark.line + 1,
                    (int)key_mark.column + 1);
        yaml_event_delete(ev);
        if (o) {
            o->used = true;
            return blank_entry(r, w, byte_of(r, key_mark), *end);
        }
        return 0;
    }
    bool flow = type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
    yaml_event_delete(ev);
    if (type != YAML_MAPPING_START_EVENT && type != YAML_SEQUENCE_START_EVENT)
        return 0;
    bool outer = w->flow;
    int rc = 0;
    for (;;) {
        yaml_event_t k, v;
        if ((rc = next_event(r, &k)))
            break;
        if (k.type == YAML_MAPPING_END_EVENT || k.type == YAML_SEQUENCE_END_EVENT) {
            *end = byte_of(r, k.end_mark);
            yaml_event_delete(&k);
            break;
        }
        if (type == YAML_SEQUENCE_START_EVENT) { /* the library refuses sequences; their items are read through */
            size_t e;
            w->flow = false;
            if ((rc = walk_value(r, w, &k, NULL, k.start_mark, &e)))
                break;
            continue;
        }
        if ((rc = check_key(r, &k, path))) {
            yaml_event_delete(&k);
            break;
        }
        char *sub = NULL;
        if (path) {
            const char *key = (const char *)k.data.scalar.value;
            if (!(sub = malloc(strlen(path) + strlen(key) + 2)))
                rc = cli_fail("out of memory");
            else
                sprintf(sub, "%s.%s", path, key);
        }
        yaml_mark_t at = k.start_mark;
        size_t e;
        yaml_event_delete(&k);
        w->flow = flow;
        if (!rc && !(rc = next_event(r, &v)))
            rc = walk_value(r, w, &v, sub, at, &e);
        free(sub);
        if (rc)
            break;
    }
    w->flow = outer;
    return rc;
}

/* The top-level mapping (its start has been read): the data, run and
 * sample sections are read into c and blanked, the rest walked.
 * *insert_at gets where the mapping ends. */
static int read_top(reader *r, model_walk *w, cli_config *c, size_t *insert_at)
{
    for (;;) {
        yaml_event_t k, v;
        if (next_event(r, &k))
            return 1;
        if (k.type == YAML_MAPPING_END_EVENT) { /* at the closing bracket of a flow mapping */
            *insert_at = byte_of(r, k.start_mark);
            yaml_event_delete(&k);
            return 0;
        }
        if (check_key(r, &k, "")) {
            yaml_event_delete(&k);
            return 1;
        }
        char key[128];
        snprintf(key, sizeof key, "%s", (const char *)k.data.scalar.value);
        cli_section *sec = !strcmp(key, "data") ? &c->data : !strcmp(key, "run") ? &c->run
                         : !strcmp(key, "sample") ? &c->sample : NULL;
        yaml_mark_t mark = k.start_mark;
        size_t line = mark.line + 1, col = mark.column + 1, end;
        yaml_event_delete(&k);
        if (next_event(r, &v))
            return 1;
        if (!sec) {
            if (walk_value(r, w, &v, key, mark, &end))
                return 1;
            continue;
        }
        end = byte_of(r, v.end_mark);
        bool empty = v.type == YAML_SCALAR_EVENT && v.data.scalar.length == 0;
        bool mapping = v.type == YAML_MAPPING_START_EVENT;
        yaml_event_delete(&v);
        if (!empty && !mapping)
            return cli_fail("%s:%zu:%zu: %s: expected a mapping", r->file, line, col, key);
        if (mapping && read_section(r, sec, key, &end))
            return 1;
        if (blank_entry(r, w, byte_of(r, mark), end))
            return 1;
    }
}

/* The overrides of model keys as entries of the top-level mapping, in its
 * style: "key: value" lines indented by `indent`, or ", key: value" flow
 * entries. The last --set of a key wins. */
static int override_text(model_walk *w, bool flow, size_t indent, cli_buf *out)
{
    cli_section s = {0};
    for (int i = 0; i < w->n_ov; i++) {
        const char *p = w->ov[i].path;
        if (strncmp(p, "data.", 5) && strncmp(p, "run.", 4) && strncmp(p, "sample.", 7) &&
            override_of(w, p) == &w->ov[i]) {
            section_add(&s, p, w->ov[i].value, 0, 0);
            note_model_key(w->c, p, w->ov[i].value);
        }
    }
    int n = s.n;
    cli_buf y = {0};
    int rc = n ? section_yaml(&s, flow, &y) : 0;
    if (!rc && n && flow) { /* "{a: 1, b: 2}\n": its entries after a comma */
        char *open = memchr(y.s, '{', y.len), *close = y.s + y.len;
        while (close > y.s && close[-1] != '}')
            close--;
        buf_add(out, ", ", 2);
        if (open && close > open + 1)
            buf_add(out, open + 1, (size_t)(close - 1 - (open + 1)));
    } else if (!rc && n)
        for (size_t i = 0; i < y.len; i++) {
            if (i == 0 || y.s[i - 1] == '\n')
                for (size_t k = 0; k < indent && y.s[i] != '\n'; k++)
                    buf_add(out, " ", 1);
            buf_add(out, y.s + i, 1);
        }
    buf_free(&y);
    cli_section_free(&s);
    return rc;
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
    model_walk w = {.ov = ov, .n_ov = n_overrides, .c = c};
    yaml_parser_initialize(&r.p);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    int rc = 0, documents = 0;
    bool flow_top = false;
    size_t insert_at = len, indent = 0;
    while (!rc) {
        yaml_event_t ev;
        if ((rc = next_event(&r, &ev)))
            break;
        yaml_event_type_t type = ev.type;
        if (type == YAML_DOCUMENT_START_EVENT && documents++) {
            rc = cli_fail("%s:%zu:%zu: a second YAML document; expected one", path, ev.start_mark.line + 1,
                          ev.start_mark.column + 1);
        } else if (type == YAML_SEQUENCE_START_EVENT || type == YAML_ALIAS_EVENT ||
                   (type == YAML_SCALAR_EVENT && ev.data.scalar.length)) {
            rc = cli_fail("%s:%zu:%zu: the configuration must be a mapping of sections", path,
                          ev.start_mark.line + 1, ev.start_mark.column + 1);
        } else if (type == YAML_MAPPING_START_EVENT) {
            flow_top = ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
            indent = ev.start_mark.column;
        }
        yaml_event_delete(&ev);
        if (rc || type == YAML_STREAM_END_EVENT)
            break;
        if (type == YAML_MAPPING_START_EVENT) {
            w.flow = flow_top;
            rc = read_top(&r, &w, c, &insert_at);
        }
    }
    yaml_parser_delete(&r.p);
    key_set_free(&r.keys);
    free(r.line_at);
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
    /* the model's text: the file with the blanked ranges, the overrides
     * where the top-level mapping ends (a new line for block style) */
    cli_buf model = {0}, extra = {0};
    if (!rc)
        rc = override_text(&w, flow_top, indent, &extra);
    size_t at = 0;
    for (size_t i = 0; !rc && i <= w.n_blank; i++) {
        size_t from = i < w.n_blank ? w.blank[i].from : len, to = i < w.n_blank ? w.blank[i].to : len;
        if (insert_at >= at && insert_at <= from) { /* the overrides go in here */
            buf_add(&model, text + at, insert_at - at);
            if (!flow_top && extra.len && insert_at && text[insert_at - 1] != '\n')
                buf_add(&model, "\n", 1);
            buf_add(&model, extra.s ? extra.s : "", extra.len);
            at = insert_at;
            insert_at = SIZE_MAX;
        }
        buf_add(&model, text + at, from - at);
        for (size_t k = from; k < to; k++) /* a character is a space (columns count characters) */
            if (text[k] == '\n' || text[k] == '\r')
                buf_add(&model, text + k, 1);
            else if (((unsigned char)text[k] & 0xC0) != 0x80)
                buf_add(&model, " ", 1);
        at = to;
    }
    if (!rc && extra.len && insert_at != SIZE_MAX) /* not reached in the loop: at the end */
        buf_add(&model, extra.s, extra.len);
    buf_free(&extra);
    free(w.blank);
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
    c->file_lines = len && text[len - 1] != '\n' && text[len - 1] != '\r'; /* lines with something on them */
    for (size_t i = 0; i < len; i++)
        c->file_lines += line_break(&r, i);
    return 0;
}

int cli_run_config(const char *near, cli_config *c, char **path)
{
    memset(c, 0, sizeof *c);
    *path = cli_path_near(near, "config.yaml");
    if (!*path)
        return cli_fail("out of memory"), -1;
    if (access(*path, F_OK) != 0)
        return 0;
    return cli_config_read(c, *path, NULL, 0) ? -1 : 1;
}

int cli_config_fail(const cli_config *c, const char *path)
{
    const char *msg = lflex_last_error();
    size_t line, col;
    int n = 0;
    if (sscanf(msg, "<config>:%zu:%zu: %n", &line, &col, &n) == 2 && n > 0)
        return line <= c->file_lines ? cli_fail("%s:%zu:%zu: %s", path, line, col, msg + n)
                                     : cli_fail("%s: --set: %s", path, msg + n);
    return cli_fail("%s: %s", path, msg);
}

void cli_config_free(cli_config *c)
{
    free(c->model_yaml);
    buf_free(&c->sample_yaml);
    cli_section_free(&c->data);
    cli_section_free(&c->run);
    cli_section_free(&c->sample);
    cli_section_free(&c->model);
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
