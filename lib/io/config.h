/* Schema-driven YAML configuration reader.
 *
 * A schema is a static table of keys; each key names a dotted path
 * ("model.d_model"), a type, the offset of the field it fills in a plain C
 * struct, its accepted range or choices, a default and a one-line
 * description. The same table drives parsing, command-line overrides,
 * emitting canonical YAML and the Markdown reference, so a key is described
 * once.
 *
 * Field types: LF_CFG_INT -> int64_t, LF_CFG_REAL -> double,
 * LF_CFG_BOOL -> bool, LF_CFG_ENUM -> int (index into `choices`),
 * LF_CFG_STRING -> char[size] (always NUL-terminated, zero-filled after the
 * text so that two structs holding the same values compare equal bytewise).
 * The LF_CFG_KEY_* macros below fill a key and fail to compile when the
 * field has the wrong type.
 *
 * What the YAML may contain:
 *  - One document whose top level is a mapping. Empty input, input with only
 *    comments, an empty document and a top-level null (`~`, `null`) mean
 *    "nothing to change".
 *  - Sections as nested mappings (`model:\n  d_model: 128`) or as flat
 *    dotted keys (`model.d_model: 128`), at any level and mixed; both give
 *    the path "model.d_model". Setting one path twice, by either spelling,
 *    is an error, as is a repeated key in one mapping. A section whose value
 *    is null (`model:` with nothing under it) changes nothing.
 *  - At most LF_CFG_DEPTH_MAX mappings and sequences nested in one another
 *    (the top-level mapping is the first). Deeper input is refused at the
 *    first collection too deep, while the events are read and before a
 *    document is built: libyaml's scanner slows quadratically with flow
 *    nesting (100 000 levels took 25 s), and no schema needs more than a
 *    few levels.
 *  - Anchors and aliases are resolved as YAML defines them. An explicit tag
 *    is accepted when it is the standard one for the node (`!!int` on an
 *    INT, `!!float` or `!!int` on a REAL, `!!bool` on a BOOL, `!!str`,
 *    `!!map` on a section, `!!null` on an empty one) and rejected otherwise;
 *    a matching type tag also lets a quoted value count (`!!int "5"`).
 *    Merge keys (`<<`) are not special: they are unknown keys.
 *  - INT: a plain (unquoted) decimal with an optional sign, no leading
 *    zeros (YAML 1.1 would read them as octal), within int64_t.
 *  - REAL: a plain decimal with optional fraction and exponent (`1e-4`,
 *    `.5`, `5.`, `-2.5E+3`) or an infinity spelt `.inf`/`-.inf` (also
 *    `.Inf`, `.INF`); NaN, hex floats and values that overflow a double
 *    are rejected. Integers are accepted.
 *  - BOOL: plain true/false, yes/no, on/off, in any case.
 *  - ENUM: exactly one of the choices (case-sensitive), quoted or not.
 *  - STRING: the scalar's text as YAML gives it (quoted or not; an empty
 *    plain value is ""), valid UTF-8, without NUL, shorter than the field.
 *  Quoted values are strings: `d_model: "128"` is a type error.
 *
 * Every error returns LFLEX_EINVAL (LFLEX_ENOMEM, LFLEX_EIO where those
 * apply) and sets lf_error() to "SOURCE:LINE:COL: what", with 1-based line
 * and column of the offending key or value, the dotted key, and the
 * expected type, range or choices; an unknown key gets a "did you mean"
 * suggestion when a known key is close. Nothing is printed.
 *
 * Reals are read with strtod() and written with snprintf(), so they assume
 * the "C" LC_NUMERIC locale (a host program that sets a decimal-comma locale
 * would break them).
 *
 * Schemas are static and read-only; these functions keep no state and may be
 * called from any thread. The parsing functions assume a schema that passes
 * lf_config_schema_check() (the tests check every schema of the library).
 */
#ifndef LF_IO_CONFIG_H
#define LF_IO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest dotted path a schema may use (longer keys in input are unknown). */
#define LF_CFG_PATH_MAX 128
/* Deepest nesting of mappings and sequences accepted (see above). */
#define LF_CFG_DEPTH_MAX 64

typedef enum { LF_CFG_INT, LF_CFG_REAL, LF_CFG_BOOL, LF_CFG_ENUM, LF_CFG_STRING } lf_cfg_type;

typedef struct lf_cfg_key {
    const char *path;           /* dotted path; components of [A-Za-z0-9_-] */
    lf_cfg_type type;
    size_t offset;              /* offsetof() of the field in the target struct */
    size_t size;                /* STRING: capacity of the char array incl. NUL */
    double min, max;            /* inclusive bounds for INT/REAL (may be +-INFINITY for REAL) */
    const char *const *choices; /* ENUM: NULL-terminated */
    double def_num;             /* default for INT/REAL/BOOL(0/1)/ENUM(index) */
    const char *def_str;        /* default for STRING (NULL means "") */
    const char *doc;            /* one-line description for the reference */
} lf_cfg_key;

typedef struct lf_cfg_schema {
    const lf_cfg_key *keys;
    size_t n_keys;
    const char *name;           /* names the schema in the reference and in schema errors */
} lf_cfg_schema;

/* offsetof(st, fld), or a compile error when the field is not of type T. */
#define LF_CFG_FIELD_(st, fld, T) (offsetof(st, fld) + 0 * sizeof(_Generic(((st *)0)->fld, T: 1)))

#define LF_CFG_KEY_INT(st, fld, p, lo, hi, def, d)                                             \
    { .path = (p), .type = LF_CFG_INT, .offset = LF_CFG_FIELD_(st, fld, int64_t),             \
      .min = (lo), .max = (hi), .def_num = (def), .doc = (d) }
#define LF_CFG_KEY_REAL(st, fld, p, lo, hi, def, d)                                            \
    { .path = (p), .type = LF_CFG_REAL, .offset = LF_CFG_FIELD_(st, fld, double),             \
      .min = (lo), .max = (hi), .def_num = (def), .doc = (d) }
#define LF_CFG_KEY_BOOL(st, fld, p, def, d)                                                    \
    { .path = (p), .type = LF_CFG_BOOL, .offset = LF_CFG_FIELD_(st, fld, bool),               \
      .def_num = (def), .doc = (d) }
#define LF_CFG_KEY_ENUM(st, fld, p, ch, def, d)                                                \
    { .path = (p), .type = LF_CFG_ENUM, .offset = LF_CFG_FIELD_(st, fld, int),                \
      .choices = (ch), .def_num = (def), .doc = (d) }
#define LF_CFG_KEY_STRING(st, fld, p, def, d)                                                  \
    { .path = (p), .type = LF_CFG_STRING, .offset = LF_CFG_FIELD_(st, fld, char *),           \
      .size = sizeof(((st *)0)->fld), .def_str = (def), .doc = (d) }

/* Write every key's default into *out (other bytes are left alone). */
int lf_config_defaults(const lf_cfg_schema *s, void *out);

/* Parse YAML and apply it over the current contents of *out (call
 * lf_config_defaults first). `source` names the input in messages ("<string>"
 * when NULL). On error *out is unchanged: the YAML is applied to a copy of
 * out_size bytes, which must cover every field of the schema. */
int lf_config_parse(const lf_cfg_schema *s, void *out, size_t out_size, const char *yaml,
                    size_t len, const char *source);
/* The same for the contents of a file (LFLEX_EIO when it cannot be read). */
int lf_config_parse_file(const lf_cfg_schema *s, void *out, size_t out_size, const char *path);

/* Set one key from text ("model.d_model", "256"), for command-line
 * overrides. The text is read as a plain YAML scalar with the same checks as
 * lf_config_parse (a STRING takes it verbatim); *out is unchanged on error,
 * and messages have no location. */
int lf_config_set(const lf_cfg_schema *s, void *out, const char *path, const char *value);

/* Canonical YAML of every key: nested mappings, keys in schema order within
 * each section (a section appears where its first key is), strings quoted
 * when a plain scalar would not read back as the same string, reals with the
 * shortest text that reads back exactly. Parsing it gives the same struct.
 * *yaml is malloc'd and NUL-terminated; *len (may be NULL) is its length.
 * LFLEX_EINVAL when a field holds what no YAML could give (an enum index out
 * of range, NaN, an unterminated or invalid UTF-8 string). */
int lf_config_emit(const lf_cfg_schema *s, const void *in, char **yaml, size_t *len);

/* Markdown reference: a heading and a table per top-level section (keys at
 * the top level come first, under "Top-level keys") with key, type, default,
 * accepted range or choices, and description. *md is malloc'd. */
int lf_config_doc_markdown(const lf_cfg_schema *s, char **md, size_t *len);

/* Check a schema: valid and unique paths, no path that is also a section of
 * another, known types, integral INT bounds within int64_t, min <= default <=
 * max (no NaN), BOOL default 0 or 1, non-empty unique choices with a valid
 * default index, string defaults that fit. LFLEX_EINVAL naming the key. */
int lf_config_schema_check(const lf_cfg_schema *s);

#endif
