/* Schema-driven YAML configuration reader (see config.h for the rules). */
#include <errno.h>
#include <locale.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "io/config.h"
#include "lf_error.h"

#define YTAG(t) "tag:yaml.org,2002:" t
#define TWO63 9223372036854775808.0

/* ------------------------------------------------------------------ helpers */

/* ASCII classes (the <ctype.h> ones depend on the locale). */
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-'; }

/* t[0..n) equals w, ignoring ASCII case (word_is) or exactly (text_is). */
static bool word_is(const char *t, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(t, w, n) == 0;
}

static bool text_is(const char *t, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(t, w, n) == 0;
}

static size_t field_width(const lf_cfg_key *k)
{
    switch (k->type) {
    case LF_CFG_INT: return sizeof(int64_t);
    case LF_CFG_REAL: return sizeof(double);
    case LF_CFG_BOOL: return sizeof(bool);
    case LF_CFG_ENUM: return sizeof(int);
    default: return k->size;
    }
}

static const lf_cfg_key *find_key(const lf_cfg_schema *s, const char *p, size_t n)
{
    for (size_t i = 0; i < s->n_keys; i++)
        if (strlen(s->keys[i].path) == n && memcmp(s->keys[i].path, p, n) == 0)
            return &s->keys[i];
    return NULL;
}

/* Whether some key lies below `p` ("model" for "model.d_model"). */
static bool is_section(const lf_cfg_schema *s, const char *p, size_t n)
{
    for (size_t i = 0; i < s->n_keys; i++)
        if (strncmp(s->keys[i].path, p, n) == 0 && s->keys[i].path[n] == '.')
            return true;
    return false;
}

static size_t n_choices(const lf_cfg_key *k)
{
    size_t n = 0;
    while (k->choices && k->choices[n])
        n++;
    return n;
}

/* Decode one UTF-8 code point; 0 when the bytes are not valid UTF-8
 * (overlong forms and surrogates included). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xF4)
        return 0;
    uint32_t c = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min_cp[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, step; i < n; i += step)
        if ((step = utf8_next((const unsigned char *)s + i, n - i, &cp)) == 0)
            return false;
    return true;
}

/* A short printable excerpt of user text for messages. */
static const char *show(const char *s, size_t n, char *buf, size_t cap)
{
    size_t m = n < cap - 4 ? n : cap - 4;
    for (size_t i = 0; i < m; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7F ? '?' : s[i];
    strcpy(buf + m, n > m ? "..." : "");
    return buf;
}

/* Reals are read and written in the "C" locale whatever the host program
 * set (a decimal comma would break both). uselocale() changes only the
 * calling thread, and only for the duration of the call. */
static double c_strtod(const char *s)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    double v = strtod(s, NULL);
    if (c) {
        uselocale(old);
        freelocale(c);
    }
    return v;
}

static void c_format_g(char *buf, size_t cap, int prec, double v)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    snprintf(buf, cap, "%.*g", prec, v);
    if (c) {
        uselocale(old);
        freelocale(c);
    }
}

/* The shortest text that reads back as exactly v. */
static void fmt_real(double v, char buf[40])
{
    if (isinf(v)) {
        strcpy(buf, v > 0 ? ".inf" : "-.inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        c_format_g(buf, 40, prec, v);
        if (c_strtod(buf) == v)
            break;
    }
    /* YAML 1.1 readers (PyYAML) take a float only with a '.' in the
     * mantissa and a signed exponent: "1e-08" would read back as a string
     * there, "1.0e-08" is a float everywhere. %g always signs the exponent. */
    if (!strchr(buf, '.')) {
        char *e = strchr(buf, 'e');
        size_t at = e ? (size_t)(e - buf) : strlen(buf);
        memmove(buf + at + 2, buf + at, strlen(buf + at) + 1);
        memcpy(buf + at, ".0", 2);
    }
}

static void fmt_int_bound(double b, char buf[40])
{
    if (b >= TWO63)
        snprintf(buf, 40, "%" PRId64, INT64_MAX);
    else
        snprintf(buf, 40, "%.0f", b);
}

/* "[lo, hi]" for INT/REAL keys. */
static void fmt_range(const lf_cfg_key *k, char buf[96])
{
    char lo[40], hi[40];
    if (k->type == LF_CFG_INT) {
        fmt_int_bound(k->min, lo);
        fmt_int_bound(k->max, hi);
    } else {
        fmt_real(k->min, lo);
        fmt_real(k->max, hi);
    }
    snprintf(buf, 96, "[%s, %s]", lo, hi);
}

static const char *const type_names[] = { "integer", "real", "boolean", "enum", "string" };

static const char *expected(const lf_cfg_key *k)
{
    static const char *const what[] = { "an integer", "a real number",
                                        "a boolean (true/false, yes/no, on/off)",
                                        "one of the choices", "a string" };
    return what[k->type];
}

/* Optimal string alignment distance (edits and adjacent swaps); n <= PATH_MAX. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t r[3][LF_CFG_PATH_MAX + 1]; /* rows i-2, i-1, i over b */
    for (size_t j = 0; j <= nb; j++)
        r[0][j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t *pp = r[(i + 1) % 3], *p = r[(i + 2) % 3], *c = r[i % 3];
        c[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t d = p[j - 1] + cost;
            if (p[j] + 1 < d)
                d = p[j] + 1;
            if (c[j - 1] + 1 < d)
                d = c[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            c[j] = d;
        }
    }
    return r[na % 3][nb];
}

/* The known key closest to an unknown path, or NULL when none is close: a
 * few edits away, or the same last component in another section. */
static const char *suggest(const lf_cfg_schema *s, const char *p, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    const char *last = p + n;
    while (last > p && last[-1] != '.')
        last--;
    for (size_t i = 0; i < s->n_keys; i++) {
        const char *kp = s->keys[i].path;
        size_t kn = strlen(kp);
        if (kn > LF_CFG_PATH_MAX)
            continue;
        size_t d = edit_distance(p, n, kp, kn);
        if (d <= 1 + kn / 6 && d < best_d) {
            best = kp;
            best_d = d;
        }
    }
    if (best)
        return best;
    for (size_t i = 0; i < s->n_keys; i++) {
        const char *kl = strrchr(s->keys[i].path, '.');
        if (text_is(last, (size_t)(p + n - last), kl ? kl + 1 : s->keys[i].path))
            return s->keys[i].path;
    }
    return NULL;
}

/* Report an unknown key; `where` is "SOURCE:LINE:COL: " or "". */
static int unknown_key(const lf_cfg_schema *s, const char *p, size_t n, const char *where)
{
    char b[160];
    const char *near = n <= LF_CFG_PATH_MAX ? suggest(s, p, n) : NULL;
    return lf_error(LFLEX_EINVAL, "%sunknown key '%s'%s%s%s", where, show(p, n, b, sizeof b),
                    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

/* ------------------------------------------------------------ values */

static void store_default(const lf_cfg_key *k, unsigned char *obj)
{
    unsigned char *f = obj + k->offset;
    switch (k->type) {
    case LF_CFG_INT: *(int64_t *)f = (int64_t)k->def_num; break;
    case LF_CFG_REAL: *(double *)f = k->def_num; break;
    case LF_CFG_BOOL: *(bool *)f = k->def_num != 0; break;
    case LF_CFG_ENUM: *(int *)f = (int)k->def_num; break;
    case LF_CFG_STRING:
        memset(f, 0, k->size);
        if (k->def_str)
            memcpy(f, k->def_str, strlen(k->def_str));
        break;
    }
}

static int bad_value(const char *where, const lf_cfg_key *k, const char *fmt, ...) LF_PRINTF(3, 4);
static int bad_value(const char *where, const lf_cfg_key *k, const char *fmt, ...)
{
    char msg[LF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lf_error(LFLEX_EINVAL, "%skey '%s': %s", where, k->path, msg);
}

/* Convert scalar text t[0..n) (with t[n] == '\0') for key k and store it in
 * obj, which is written only on success. `plain` is false for quoted and
 * block scalars, which can only be strings. Errors start with `where`. */
static int store_value(const lf_cfg_key *k, unsigned char *obj, const char *t, size_t n, bool plain,
                       const char *where)
{
    unsigned char *f = obj + k->offset;
    char b[64], range[96];
    show(t, n, b, sizeof b);
    if (k->type == LF_CFG_INT || k->type == LF_CFG_REAL)
        fmt_range(k, range);
    if (!plain && k->type != LF_CFG_STRING && k->type != LF_CFG_ENUM)
        return bad_value(where, k, "expected %s, got the quoted string '%s'", expected(k), b);
    switch (k->type) {
    case LF_CFG_INT: {
        bool neg = t[0] == '-', ok = true, overflow = false;
        size_t i = neg || t[0] == '+';
        uint64_t mag = 0;
        for (size_t j = i; ok && j < n; j++) {
            if ((ok = is_digit(t[j])) && mag > (UINT64_MAX - (unsigned)(t[j] - '0')) / 10)
                overflow = true;
            else if (ok)
                mag = mag * 10 + (unsigned)(t[j] - '0');
        }
        if (!ok || n == i || (t[i] == '0' && n > i + 1))
            return bad_value(where, k, "expected a decimal integer, got '%s'", b);
        if (overflow || mag > (uint64_t)INT64_MAX + neg)
            return bad_value(where, k, "%s does not fit in a 64-bit integer (accepted range %s)", b, range);
        int64_t v = neg ? (mag ? -(int64_t)(mag - 1) - 1 : 0) : (int64_t)mag;
        if ((double)v < k->min || (double)v > k->max)
            return bad_value(where, k, "%s is out of range %s", b, range);
        *(int64_t *)f = v;
        return LFLEX_OK;
    }
    case LF_CFG_REAL: {
        size_t i = t[0] == '+' || t[0] == '-', j = i, digits = 0;
        double v;
        if (text_is(t + i, n - i, ".inf") || text_is(t + i, n - i, ".Inf") || text_is(t + i, n - i, ".INF")) {
            v = t[0] == '-' ? -INFINITY : INFINITY;
        } else if (word_is(t + i, n - i, ".nan") || word_is(t + i, n - i, "nan")) {
            return bad_value(where, k, "NaN is not allowed (accepted range %s)", range);
        } else {
            /* [sign] digits [. digits] [e [sign] digits], at least one mantissa digit */
            for (; j < n && is_digit(t[j]); j++)
                digits++;
            if (j < n && t[j] == '.')
                for (j++; j < n && is_digit(t[j]); j++)
                    digits++;
            if (digits > 0 && j < n && (t[j] == 'e' || t[j] == 'E')) {
                size_t e = j + 1 + (j + 1 < n && (t[j + 1] == '+' || t[j + 1] == '-'));
                for (j = e; j < n && is_digit(t[j]); j++)
                    ;
                digits *= j > e;
            }
            if (digits == 0 || j != n)
                return bad_value(where, k, "expected a real number (like 0.5, 1e-4, .inf), got '%s'", b);
            if (isinf(v = c_strtod(t)))
                return bad_value(where, k, "%s is too large for a double", b);
        }
        if (v < k->min || v > k->max)
            return bad_value(where, k, "%s is out of range %s", b, range);
        *(double *)f = v;
        return LFLEX_OK;
    }
    case LF_CFG_BOOL: {
        bool yes = word_is(t, n, "true") || word_is(t, n, "yes") || word_is(t, n, "on");
        if (!yes && !word_is(t, n, "false") && !word_is(t, n, "no") && !word_is(t, n, "off"))
            return bad_value(where, k, "expected %s, got '%s'", expected(k), b);
        *(bool *)f = yes;
        return LFLEX_OK;
    }
    case LF_CFG_ENUM: {
        char list[400] = "";
        for (int c = 0; k->choices[c]; c++) {
            if (text_is(t, n, k->choices[c])) {
                *(int *)f = c;
                return LFLEX_OK;
            }
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "", k->choices[c]);
        }
        return bad_value(where, k, "'%s' is not one of: %s", b, list);
    }
    case LF_CFG_STRING:
        if (memchr(t, '\0', n))
            return bad_value(where, k, "the string '%s' contains a NUL character", b);
        if (!utf8_valid(t, n))
            return bad_value(where, k, "the string '%s' is not valid UTF-8", b);
        if (n >= k->size)
            return bad_value(where, k, "the string '%s' is %zu bytes long, at most %zu are accepted", b, n,
                             k->size - 1);
        memset(f, 0, k->size);
        memcpy(f, t, n);
        return LFLEX_OK;
    }
    return bad_value(where, k, "unknown type in the schema");
}

int lf_config_defaults(const lf_cfg_schema *s, void *out)
{
    if (!s || !out)
        return lf_error(LFLEX_EINVAL, "lf_config_defaults: NULL argument");
    for (size_t i = 0; i < s->n_keys; i++)
        store_default(&s->keys[i], out);
    return LFLEX_OK;
}

int lf_config_set(const lf_cfg_schema *s, void *out, const char *path, const char *value)
{
    if (!s || !out || !path || !value)
        return lf_error(LFLEX_EINVAL, "lf_config_set: NULL argument");
    size_t n = strlen(path);
    const lf_cfg_key *k = find_key(s, path, n);
    if (!k && is_section(s, path, n))
        return lf_error(LFLEX_EINVAL, "'%s' is a section, not a key: name one of its keys", path);
    if (!k)
        return unknown_key(s, path, n, "");
    return store_value(k, out, value, strlen(value), true, "");
}

/* -------------------------------------------------------------- parsing */

typedef struct {
    const lf_cfg_schema *s;
    yaml_document_t *doc;
    unsigned char *obj;     /* the copy being filled */
    yaml_mark_t *set_at;    /* where each key was set (line SIZE_MAX: not yet) */
    const char *src;
} lf_cfg_walk;

static int fail_at(const lf_cfg_walk *w, yaml_mark_t m, const char *fmt, ...) LF_PRINTF(3, 4);
static int fail_at(const lf_cfg_walk *w, yaml_mark_t m, const char *fmt, ...)
{
    char msg[LF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lf_error(LFLEX_EINVAL, "%s:%zu:%zu: %s", w->src, m.line + 1, m.column + 1, msg);
}

static const char *node_kind(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    char b[64];
    snprintf(buf, cap, "'%s'", show((const char *)n->data.scalar.value, n->data.scalar.length, b, sizeof b));
    return buf;
}

static bool tag_is(const yaml_node_t *n, const char *tag)
{
    return n->tag && strcmp((const char *)n->tag, tag) == 0;
}

/* An empty section: a plain "", "~" or "null" (or !!null). */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    const char *t = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (tag_is(n, YTAG("null")))
        return true;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag_is(n, YTAG("str")) &&
           (len == 0 || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
            strcmp(t, "NULL") == 0);
}

/* "SOURCE:LINE:COL: " for messages of lower layers. */
static const char *where_at(const lf_cfg_walk *w, yaml_mark_t m, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%zu:%zu: ", w->src, m.line + 1, m.column + 1);
    return buf;
}

static int walk_leaf(lf_cfg_walk *w, const lf_cfg_key *k, const yaml_node_t *key, const yaml_node_t *val)
{
    char where[LF_ERROR_MSG_MAX / 2], b[80];
    size_t idx = (size_t)(k - w->s->keys);
    if (w->set_at[idx].line != SIZE_MAX)
        return fail_at(w, key->start_mark, "duplicate key '%s' (first set at %zu:%zu)", k->path,
                       w->set_at[idx].line + 1, w->set_at[idx].column + 1);
    if (val->type != YAML_SCALAR_NODE)
        return fail_at(w, val->start_mark, "key '%s': expected %s, got %s", k->path, expected(k),
                       node_kind(val, b, sizeof b));
    /* A standard tag naming the key's type also makes a quoted value count. */
    bool typed = (k->type == LF_CFG_INT && tag_is(val, YTAG("int"))) ||
                 (k->type == LF_CFG_REAL && (tag_is(val, YTAG("float")) || tag_is(val, YTAG("int")))) ||
                 (k->type == LF_CFG_BOOL && tag_is(val, YTAG("bool")));
    if (!typed && !tag_is(val, YTAG("str")))
        return fail_at(w, val->start_mark, "key '%s': unexpected tag '%s' (expected %s)", k->path,
                       show((const char *)val->tag, strlen((const char *)val->tag), b, sizeof b),
                       expected(k));
    bool plain = typed || val->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (store_value(k, w->obj, (const char *)val->data.scalar.value, val->data.scalar.length, plain,
                    where_at(w, val->start_mark, where, sizeof where)) != LFLEX_OK)
        return LFLEX_EINVAL;
    w->set_at[idx] = key->start_mark;
    return LFLEX_OK;
}

static int walk_mapping(lf_cfg_walk *w, const yaml_node_t *map, const char *prefix, size_t plen)
{
    char b[160], where[LF_ERROR_MSG_MAX / 2];
    if (!tag_is(map, YTAG("map")))
        return fail_at(w, map->start_mark, "unexpected tag '%s' on a mapping",
                       show((const char *)map->tag, strlen((const char *)map->tag), b, sizeof b));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(w->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(w->doc, p->value);
        if (key->type != YAML_SCALAR_NODE)
            return fail_at(w, key->start_mark, "a key must be a scalar, got %s", node_kind(key, b, sizeof b));
        const char *kt = (const char *)key->data.scalar.value;
        size_t kn = key->data.scalar.length;
        /* Build the dotted path; one too long for the schema is unknown. */
        char path[LF_CFG_PATH_MAX + 1];
        size_t n = plen + (plen > 0) + kn;
        bool fits = n <= LF_CFG_PATH_MAX && !memchr(kt, '\0', kn);
        if (fits) {
            memcpy(path, prefix, plen);
            path[plen] = '.';
            memcpy(path + plen + (plen > 0), kt, kn);
            path[n] = '\0';
        } else {
            snprintf(path, sizeof path, "%.60s%s%.63s", prefix, plen ? "." : "", show(kt, kn, b, 64));
            n = strlen(path);
        }
        /* Earlier siblings are all known, distinct keys, so this stays short. */
        for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *k2 = yaml_document_get_node(w->doc, q->key);
            if (k2->data.scalar.length == kn && memcmp(k2->data.scalar.value, kt, kn) == 0)
                return fail_at(w, key->start_mark, "duplicate key '%s' (first at %zu:%zu)", path,
                               k2->start_mark.line + 1, k2->start_mark.column + 1);
        }
        const lf_cfg_key *k = fits ? find_key(w->s, path, n) : NULL;
        int rc = LFLEX_OK;
        if (k)
            rc = walk_leaf(w, k, key, val);
        else if (fits && is_section(w->s, path, n)) {
            if (val->type == YAML_MAPPING_NODE)
                rc = walk_mapping(w, val, path, n);
            else if (!is_null(val))
                rc = fail_at(w, val->start_mark, "'%s' is a section: expected a mapping of its keys, got %s",
                             path, node_kind(val, b, sizeof b));
        } else
            rc = unknown_key(w->s, path, n, where_at(w, key->start_mark, where, sizeof where));
        if (rc != LFLEX_OK)
            return rc;
    }
    return LFLEX_OK;
}

static int yaml_problem(const yaml_parser_t *p, const char *src, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_MEMORY_ERROR)
        return lf_error_oom("YAML parser");
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset; count lines and characters up to it. */
        size_t line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                line++, col = 1;
            else if (((unsigned char)text[i] & 0xC0) != 0x80)
                col++;
        }
        return lf_error(LFLEX_EINVAL, "%s:%zu:%zu: invalid YAML input: %s (byte %zu)", src, line, col,
                        problem, p->problem_offset);
    }
    if (p->context)
        return lf_error(LFLEX_EINVAL, "%s:%zu:%zu: YAML syntax error: %s (%s at %zu:%zu)", src,
                        p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                        p->context_mark.line + 1, p->context_mark.column + 1);
    return lf_error(LFLEX_EINVAL, "%s:%zu:%zu: YAML syntax error: %s", src, p->problem_mark.line + 1,
                    p->problem_mark.column + 1, problem);
}

/* Read the events of the whole stream once, refusing nesting deeper than
 * LF_CFG_DEPTH_MAX at the first collection that goes past it, so that
 * neither the scanner (quadratic in the flow depth) nor the loader ever sees
 * a deep document. Syntax errors are reported as the loader would. */
static int check_depth(const char *src, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return lf_error_oom("YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = LFLEX_OK;
    size_t depth = 0;
    for (bool end = false; !end && rc == LFLEX_OK;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_problem(&p, src, text, len);
            break;
        }
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (++depth > LF_CFG_DEPTH_MAX)
                rc = lf_error(LFLEX_EINVAL, "%s:%zu:%zu: %s nested deeper than %d levels of mappings and "
                              "sequences", src, ev.start_mark.line + 1, ev.start_mark.column + 1,
                              ev.type == YAML_MAPPING_START_EVENT ? "a mapping" : "a sequence",
                              LF_CFG_DEPTH_MAX);
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT)
            depth--;
        end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

int lf_config_parse(const lf_cfg_schema *s, void *out, size_t out_size, const char *yaml, size_t len,
                    const char *source)
{
    if (!s || !out || (!yaml && len))
        return lf_error(LFLEX_EINVAL, "lf_config_parse: NULL argument");
    const char *src = source ? source : "<string>";
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->keys[i].offset + field_width(&s->keys[i]) > out_size)
            return lf_error(LFLEX_EINVAL, "config schema '%s': key '%s' lies outside the %zu-byte struct",
                            s->name ? s->name : "?", s->keys[i].path, out_size);

    lf_cfg_walk w = { .s = s, .src = src };
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_doc = false, have_extra = false;
    int rc = LFLEX_OK;
    w.obj = malloc(out_size ? out_size : 1);
    w.set_at = malloc((s->n_keys + 1) * sizeof *w.set_at);
    if (!w.obj || !w.set_at) {
        free(w.obj);
        free(w.set_at);
        return lf_error_oom("lf_config_parse");
    }
    memcpy(w.obj, out, out_size);
    for (size_t i = 0; i < s->n_keys; i++)
        w.set_at[i].line = SIZE_MAX;
    if (!yaml_parser_initialize(&parser)) {
        free(w.obj);
        free(w.set_at);
        return lf_error_oom("lf_config_parse");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);

    if ((rc = check_depth(src, yaml ? yaml : "", len)) == LFLEX_OK) {
        if (!(have_doc = yaml_parser_load(&parser, &doc)))
            rc = yaml_problem(&parser, src, yaml, len);
        else if (!(have_extra = yaml_parser_load(&parser, &extra)))
            rc = yaml_problem(&parser, src, yaml, len);
        else if (yaml_document_get_root_node(&extra))
            rc = fail_at(&w, extra.start_mark, "a second YAML document; expected one");
    }
    if (rc == LFLEX_OK) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        char b[80];
        w.doc = &doc;
        if (root && root->type == YAML_MAPPING_NODE)
            rc = walk_mapping(&w, root, "", 0);
        else if (root && !is_null(root))
            rc = fail_at(&w, root->start_mark, "expected a mapping of keys at the top level, got %s",
                         node_kind(root, b, sizeof b));
    }
    if (rc == LFLEX_OK)
        memcpy(out, w.obj, out_size);
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(w.obj);
    free(w.set_at);
    return rc;
}

int lf_config_parse_file(const lf_cfg_schema *s, void *out, size_t out_size, const char *path)
{
    if (!path)
        return lf_error(LFLEX_EINVAL, "lf_config_parse_file: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return lf_error(LFLEX_EIO, "cannot open config file '%s': %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = LFLEX_OK;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 4096);
            if (!nb) {
                rc = lf_error_oom("lf_config_parse_file");
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = lf_error(LFLEX_EIO, "cannot read config file '%s'", path);
            break;
        }
    }
    fclose(f);
    if (rc == LFLEX_OK)
        rc = lf_config_parse(s, out, out_size, buf, n, path);
    free(buf);
    return rc;
}

/* -------------------------------------------------------- text output */

typedef struct {
    char *p;
    size_t n, cap;
    bool failed;
} lf_cfg_text;

static void put(lf_cfg_text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + n + 1)
            cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

static void puts_(lf_cfg_text *t, const char *s) { put(t, s, strlen(s)); }

static int finish(lf_cfg_text *t, char **out, size_t *len, const char *where)
{
    put(t, "", 0);
    if (t->failed) {
        free(t->p);
        return lf_error_oom(where);
    }
    *out = t->p;
    if (len)
        *len = t->n;
    return LFLEX_OK;
}

static bool plain_safe(const char *s, size_t n)
{
    static const char *const words[] = { "y", "n", "yes", "no", "true", "false", "on", "off", "null" };
    if (n == 0 || !(is_alpha(s[0]) || s[0] == '_' || s[0] == '/'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) && s[i] != '.' && s[i] != '/')
            return false;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (word_is(s, n, words[i]))
            return false;
    return true;
}

/* A string as a plain scalar when that reads back the same, else as a
 * double-quoted one with escapes for everything YAML would not keep as is
 * (line breaks, which it folds, and characters its reader refuses). */
static void put_string(lf_cfg_text *t, const char *s, size_t n)
{
    if (plain_safe(s, n)) {
        put(t, s, n);
        return;
    }
    put(t, "\"", 1);
    uint32_t cp = 0;
    for (size_t i = 0, step; i < n; i += step) {
        step = utf8_next((const unsigned char *)s + i, n - i, &cp); /* validated by the caller */
        char e[16];
        if (cp == '"' || cp == '\\')
            snprintf(e, sizeof e, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\t')
            strcpy(e, cp == '\n' ? "\\n" : "\\t");
        else if ((cp >= 0x20 && cp <= 0x7E) || (cp >= 0xA0 && cp <= 0xD7FF && cp != 0x2028 && cp != 0x2029) ||
                 (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF) || cp >= 0x10000) {
            put(t, s + i, step);
            continue;
        } else
            snprintf(e, sizeof e, cp < 0x100 ? "\\x%02X" : "\\u%04X", (unsigned)cp);
        puts_(t, e);
    }
    put(t, "\"", 1);
}

/* The text of a field's value; LFLEX_EINVAL when YAML cannot hold it. */
static int put_value(lf_cfg_text *t, const lf_cfg_key *k, const unsigned char *f)
{
    char b[40];
    switch (k->type) {
    case LF_CFG_INT:
        snprintf(b, sizeof b, "%" PRId64, *(const int64_t *)f);
        break;
    case LF_CFG_REAL:
        if (isnan(*(const double *)f))
            return lf_error(LFLEX_EINVAL, "key '%s' holds NaN, which a config cannot express", k->path);
        fmt_real(*(const double *)f, b);
        break;
    case LF_CFG_BOOL:
        strcpy(b, *(const bool *)f ? "true" : "false");
        break;
    case LF_CFG_ENUM: {
        int v = *(const int *)f;
        if (v < 0 || (size_t)v >= n_choices(k))
            return lf_error(LFLEX_EINVAL, "key '%s' holds choice index %d of %zu", k->path, v, n_choices(k));
        put_string(t, k->choices[v], strlen(k->choices[v]));
        return LFLEX_OK;
    }
    case LF_CFG_STRING: {
        size_t n = strnlen((const char *)f, k->size);
        if (n == k->size || !utf8_valid((const char *)f, n))
            return lf_error(LFLEX_EINVAL, "key '%s' holds %s", k->path,
                            n == k->size ? "a string without its NUL" : "a string that is not valid UTF-8");
        put_string(t, (const char *)f, n);
        return LFLEX_OK;
    }
    }
    puts_(t, b);
    return LFLEX_OK;
}

/* Emit the keys below `prefix` (plen bytes of some key's path), sections
 * at the place of their first key. */
static int emit_section(lf_cfg_text *t, const lf_cfg_schema *s, const unsigned char *obj, const char *prefix,
                        size_t plen, int depth)
{
    size_t skip = plen + (plen > 0);
    for (size_t i = 0; i < s->n_keys; i++) {
        const char *p = s->keys[i].path;
        if (plen && (strncmp(p, prefix, plen) != 0 || p[plen] != '.'))
            continue;
        const char *dot = strchr(p + skip, '.');
        size_t cn = dot ? (size_t)(dot - p - skip) : strlen(p + skip);
        bool seen = false;
        for (size_t j = 0; dot && j < i && !seen; j++)
            seen = strncmp(s->keys[j].path, p, (size_t)(dot - p) + 1) == 0;
        if (seen)
            continue;
        for (int d = 0; d < depth; d++)
            puts_(t, "  ");
        put(t, p + skip, cn);
        puts_(t, dot ? ":\n" : ": ");
        int rc = dot ? emit_section(t, s, obj, p, (size_t)(dot - p), depth + 1)
                     : put_value(t, &s->keys[i], obj + s->keys[i].offset);
        if (rc != LFLEX_OK)
            return rc;
        if (!dot)
            puts_(t, "\n");
    }
    return LFLEX_OK;
}

int lf_config_emit(const lf_cfg_schema *s, const void *in, char **yaml, size_t *len)
{
    if (!s || !in || !yaml)
        return lf_error(LFLEX_EINVAL, "lf_config_emit: NULL argument");
    lf_cfg_text t = { 0 };
    int rc = emit_section(&t, s, in, "", 0, 0);
    if (rc != LFLEX_OK) {
        free(t.p);
        return rc;
    }
    return finish(&t, yaml, len, "lf_config_emit");
}

/* Text for a Markdown table cell: '|' escaped, line breaks as spaces. */
static void put_cell(lf_cfg_text *t, const char *s)
{
    for (; s && *s; s++)
        if (*s == '|')
            puts_(t, "\\|");
        else
            put(t, *s == '\n' || *s == '\r' ? " " : s, 1);
}

static void doc_row(lf_cfg_text *t, const lf_cfg_key *k)
{
    lf_cfg_text def = { 0 }, ok = { 0 };
    char b[96];
    switch (k->type) {
    case LF_CFG_INT:
    case LF_CFG_REAL:
        if (k->type == LF_CFG_INT)
            fmt_int_bound(k->def_num, b);
        else
            fmt_real(k->def_num, b);
        puts_(&def, b);
        fmt_range(k, b);
        puts_(&ok, b);
        break;
    case LF_CFG_BOOL:
        puts_(&def, k->def_num != 0 ? "true" : "false");
        puts_(&ok, "true, false (also yes/no, on/off)");
        break;
    case LF_CFG_ENUM:
        puts_(&def, k->choices[(int)k->def_num]);
        for (size_t c = 0; k->choices[c]; c++) {
            puts_(&ok, c ? ", `" : "`");
            puts_(&ok, k->choices[c]);
            puts_(&ok, "`");
        }
        break;
    case LF_CFG_STRING:
        put_string(&def, k->def_str ? k->def_str : "", k->def_str ? strlen(k->def_str) : 0);
        snprintf(b, sizeof b, "at most %zu bytes of UTF-8", k->size - 1);
        puts_(&ok, b);
        break;
    }
    t->failed |= def.failed || ok.failed;
    puts_(t, "| `");
    put_cell(t, k->path);
    puts_(t, "` | ");
    puts_(t, type_names[k->type]);
    puts_(t, " | `");
    put_cell(t, def.p);
    puts_(t, "` | ");
    put_cell(t, ok.p);
    puts_(t, " | ");
    put_cell(t, k->doc);
    puts_(t, " |\n");
    free(def.p);
    free(ok.p);
}

int lf_config_doc_markdown(const lf_cfg_schema *s, char **md, size_t *len)
{
    static const char *const head = "\n| Key | Type | Default | Accepted | Description |\n"
                                    "| --- | --- | --- | --- | --- |\n";
    if (!s || !md)
        return lf_error(LFLEX_EINVAL, "lf_config_doc_markdown: NULL argument");
    lf_cfg_text t = { 0 };
    puts_(&t, "# Configuration keys: ");
    puts_(&t, s->name ? s->name : "");
    puts_(&t, "\n");
    bool top = false;
    for (size_t i = 0; i < s->n_keys; i++) {
        if (strchr(s->keys[i].path, '.'))
            continue;
        if (!top)
            puts_(&t, "\n## Top-level keys\n"), puts_(&t, head);
        top = true;
        doc_row(&t, &s->keys[i]);
    }
    for (size_t i = 0; i < s->n_keys; i++) {
        const char *p = s->keys[i].path, *dot = strchr(p, '.');
        size_t sn = dot ? (size_t)(dot - p) + 1 : 0; /* section name and its dot */
        bool seen = !dot;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strncmp(s->keys[j].path, p, sn) == 0;
        if (seen)
            continue;
        puts_(&t, "\n## `");
        put(&t, p, sn - 1);
        puts_(&t, "`\n");
        puts_(&t, head);
        for (size_t j = i; j < s->n_keys; j++)
            if (strncmp(s->keys[j].path, p, sn) == 0)
                doc_row(&t, &s->keys[j]);
    }
    return finish(&t, md, len, "lf_config_doc_markdown");
}

/* ------------------------------------------------------- schema check */

static bool path_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > LF_CFG_PATH_MAX || p[0] == '.' || p[n - 1] == '.' || strstr(p, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(p[i]) && p[i] != '.')
            return false;
    return true;
}

int lf_config_schema_check(const lf_cfg_schema *s)
{
    if (!s || (!s->keys && s->n_keys))
        return lf_error(LFLEX_EINVAL, "config schema: NULL");
    const char *name = s->name ? s->name : "?";
    for (size_t i = 0; i < s->n_keys; i++) {
        const lf_cfg_key *k = &s->keys[i];
        char bad[200] = "", range[96];
        if (!path_valid(k->path))
            return lf_error(LFLEX_EINVAL, "config schema '%s': key #%zu has an invalid path '%s' "
                            "(dot-separated names of letters, digits, '_' and '-', at most %d bytes)",
                            name, i, k->path ? k->path : "(null)", LF_CFG_PATH_MAX);
        size_t pn = strlen(k->path);
        for (size_t j = 0; j < s->n_keys && !bad[0]; j++) {
            const char *o = s->keys[j].path;
            if (j < i && strcmp(o, k->path) == 0)
                strcpy(bad, "appears twice");
            else if (j != i && path_valid(o) && strncmp(o, k->path, pn) == 0 && o[pn] == '.')
                snprintf(bad, sizeof bad, "is also the section of key '%s'", o);
        }
        if (bad[0])
            return lf_error(LFLEX_EINVAL, "config schema '%s': key '%s' %s", name, k->path, bad);
        if (k->type < LF_CFG_INT || k->type > LF_CFG_STRING)
            strcpy(bad, "has an unknown type");
        else if (k->type == LF_CFG_INT || k->type == LF_CFG_REAL) {
            bool is_int = k->type == LF_CFG_INT;
            if (isnan(k->min) || isnan(k->max) || isnan(k->def_num))
                strcpy(bad, "has a NaN bound or default");
            else if (is_int && (k->min != floor(k->min) || k->max != floor(k->max) ||
                                k->def_num != floor(k->def_num) || k->min < -TWO63 || k->max > TWO63 ||
                                k->def_num >= TWO63))
                strcpy(bad, "needs integral bounds and default within int64_t");
            else if (!(k->min <= k->def_num && k->def_num <= k->max)) {
                fmt_range(k, range);
                snprintf(bad, sizeof bad, "has a default outside its range %s", range);
            }
        } else if (k->type == LF_CFG_BOOL && k->def_num != 0 && k->def_num != 1)
            strcpy(bad, "needs a default of 0 or 1");
        else if (k->type == LF_CFG_ENUM) {
            size_t nc = n_choices(k);
            for (size_t c = 0; c < nc && !bad[0]; c++) {
                if (!k->choices[c][0] || !utf8_valid(k->choices[c], strlen(k->choices[c])))
                    strcpy(bad, "has an empty or non-UTF-8 choice");
                for (size_t d = 0; d < c && !bad[0]; d++)
                    if (strcmp(k->choices[c], k->choices[d]) == 0)
                        snprintf(bad, sizeof bad, "lists the choice '%s' twice", k->choices[c]);
            }
            if (!bad[0] && (nc == 0 || k->def_num != floor(k->def_num) || !(k->def_num >= 0) ||
                            k->def_num >= (double)nc))
                snprintf(bad, sizeof bad, "needs a default index in [0, %zu)", nc);
        } else if (k->type == LF_CFG_STRING) {
            size_t dn = k->def_str ? strlen(k->def_str) : 0;
            if (k->size == 0 || dn >= k->size || !utf8_valid(k->def_str ? k->def_str : "", dn))
                snprintf(bad, sizeof bad, "needs a UTF-8 default shorter than its %zu-byte field", k->size);
        }
        if (bad[0])
            return lf_error(LFLEX_EINVAL, "config schema '%s': key '%s' %s", name, k->path, bad);
    }
    return LFLEX_OK;
}
