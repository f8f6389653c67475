/* The schema-driven YAML configuration reader: parsing every type, every
 * kind of error with its location, emit/parse round trips, command-line
 * overrides, the Markdown reference and the schema checker. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"
#include "lf_error.h"
#include "tests/common/testutil.h"

typedef struct {
    int64_t d_model, n_layers, seed;
    int kind;
    double alpha, lr, clip, bias;
    bool shuffle;
    char name[16];
    char out_dir[64];
} tcfg;

static const char *const kinds[] = { "linear", "kumaraswamy", NULL };

static const lf_cfg_key tkeys[] = {
    LF_CFG_KEY_INT(tcfg, seed, "seed", (double)INT64_MIN, (double)INT64_MAX, 42, "Random seed"),
    LF_CFG_KEY_STRING(tcfg, name, "name", "run", "Run name | shown in logs"),
    LF_CFG_KEY_INT(tcfg, d_model, "model.d_model", 1, 4096, 128, "Model width"),
    LF_CFG_KEY_ENUM(tcfg, kind, "model.schedule.kind", kinds, 0, "Schedule family"),
    LF_CFG_KEY_REAL(tcfg, lr, "train.lr", 0, 1, 1e-4, "Learning rate"),
    LF_CFG_KEY_INT(tcfg, n_layers, "model.n_layers", 1, 64, 4, "Blocks"),
    LF_CFG_KEY_REAL(tcfg, alpha, "model.schedule.alpha", 0, 1000, 1.5, "Shape"),
    LF_CFG_KEY_REAL(tcfg, clip, "train.clip", 0, INFINITY, INFINITY, "Gradient clip"),
    LF_CFG_KEY_REAL(tcfg, bias, "train.bias", -INFINITY, INFINITY, -0.5, "Any real"),
    LF_CFG_KEY_BOOL(tcfg, shuffle, "train.shuffle", 1, "Shuffle the data"),
    LF_CFG_KEY_STRING(tcfg, out_dir, "train.out_dir", "/tmp/out", "Output directory"),
};
static const lf_cfg_schema tschema = { tkeys, sizeof tkeys / sizeof tkeys[0], "test" };

static void defaults(tcfg *c)
{
    memset(c, 0, sizeof *c);
    ck_assert_int_eq(lf_config_defaults(&tschema, c), LFLEX_OK);
}

static int parse(tcfg *c, const char *yaml)
{
    return lf_config_parse(&tschema, c, sizeof *c, yaml, strlen(yaml), NULL);
}

START_TEST(test_schema_is_valid)
{
    ck_assert_int_eq(lf_config_schema_check(&tschema), LFLEX_OK);
}
END_TEST

START_TEST(test_defaults)
{
    tcfg c;
    memset(&c, 0x5A, sizeof c);
    ck_assert_int_eq(lf_config_defaults(&tschema, &c), LFLEX_OK);
    ck_assert_int_eq(c.seed, 42);
    ck_assert_int_eq(c.d_model, 128);
    ck_assert_int_eq(c.n_layers, 4);
    ck_assert_int_eq(c.kind, 0);
    ck_assert(c.lr == 1e-4 && c.alpha == 1.5 && c.bias == -0.5);
    ck_assert(isinf(c.clip) && c.clip > 0);
    ck_assert(c.shuffle);
    ck_assert_str_eq(c.name, "run");
    ck_assert_str_eq(c.out_dir, "/tmp/out");
    /* strings are zero-filled after the text */
    for (size_t i = 3; i < sizeof c.name; i++)
        ck_assert_int_eq(c.name[i], 0);
}
END_TEST

START_TEST(test_parse_every_type_nested)
{
    tcfg c;
    defaults(&c);
    const char *y = "# a full config\n"
                    "seed: -17\n"
                    "name: \"my run\"\n"
                    "model:\n"
                    "  d_model: 256\n"
                    "  n_layers: +8\n"
                    "  schedule:\n"
                    "    kind: kumaraswamy\n"
                    "    alpha: 2.5e2\n"
                    "train:\n"
                    "  lr: .5\n"
                    "  clip: 5.\n"
                    "  bias: -.inf\n"
                    "  shuffle: Off\n"
                    "  out_dir: /data/runs/a-b_c.d\n";
    ck_assert_msg(parse(&c, y) == LFLEX_OK, "%s", lflex_last_error());
    ck_assert_int_eq(c.seed, -17);
    ck_assert_str_eq(c.name, "my run");
    ck_assert_int_eq(c.d_model, 256);
    ck_assert_int_eq(c.n_layers, 8);
    ck_assert_int_eq(c.kind, 1);
    ck_assert(c.alpha == 250.0);
    ck_assert(c.lr == 0.5);
    ck_assert(c.clip == 5.0);
    ck_assert(isinf(c.bias) && c.bias < 0);
    ck_assert(!c.shuffle);
    ck_assert_str_eq(c.out_dir, "/data/runs/a-b_c.d");
}
END_TEST

START_TEST(test_parse_flat_and_mixed_keys)
{
    tcfg c;
    defaults(&c);
    ck_assert_msg(parse(&c, "model.d_model: 64\n"
                            "model.schedule.kind: kumaraswamy\n"
                            "model:\n  n_layers: 2\n  schedule.alpha: 3\n"
                            "train: {lr: 0.25, shuffle: no}\n") == LFLEX_OK,
                  "%s", lflex_last_error());
    ck_assert_int_eq(c.d_model, 64);
    ck_assert_int_eq(c.kind, 1);
    ck_assert_int_eq(c.n_layers, 2);
    ck_assert(c.alpha == 3.0 && c.lr == 0.25 && !c.shuffle);
    ck_assert_int_eq(c.seed, 42); /* untouched keys keep their value */
}
END_TEST

START_TEST(test_parse_empty_inputs)
{
    static const char *const empty[] = { "", "# only a comment\n\n   # another\n", "---\n", "---\n...\n",
                                         "~\n", "null", "model:\n# nothing yet\ntrain: ~\n", "{}",
                                         "model: !!null\ntrain: !!map {}\n" };
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        tcfg c, ref;
        defaults(&c);
        c.seed = 9; /* applied over the current contents, which stay */
        ref = c;
        ck_assert_msg(parse(&c, empty[i]) == LFLEX_OK, "'%s': %s", empty[i], lflex_last_error());
        ck_assert_msg(memcmp(&c, &ref, sizeof c) == 0, "'%s' changed the struct", empty[i]);
    }
    tcfg c;
    defaults(&c);
    ck_assert_int_eq(lf_config_parse(&tschema, &c, sizeof c, NULL, 0, NULL), LFLEX_OK);
}
END_TEST

START_TEST(test_parse_numbers_and_booleans)
{
    tcfg c;
    defaults(&c);
    ck_assert_int_eq(parse(&c, "seed: -9223372036854775808"), LFLEX_OK);
    ck_assert(c.seed == INT64_MIN);
    ck_assert_int_eq(parse(&c, "seed: 9223372036854775807"), LFLEX_OK);
    ck_assert(c.seed == INT64_MAX);
    ck_assert_int_eq(parse(&c, "seed: -0"), LFLEX_OK);
    ck_assert(c.seed == 0);
    static const struct { const char *text; double value; } reals[] = {
        { "1e-4", 1e-4 }, { ".5", 0.5 }, { "5.", 5.0 }, { "-2.5E+3", -2500.0 }, { "7", 7.0 },
        { "0.1", 0.1 }, { "+1.25e1", 12.5 }, { "4.9406564584124654e-324", 4.9406564584124654e-324 },
        { ".Inf", INFINITY }, { "-.INF", -INFINITY },
    };
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        char y[80];
        snprintf(y, sizeof y, "train.bias: %s", reals[i].text);
        ck_assert_msg(parse(&c, y) == LFLEX_OK, "%s: %s", y, lflex_last_error());
        ck_assert_msg(c.bias == reals[i].value, "%s gave %.17g", y, c.bias);
    }
    ck_assert_int_eq(parse(&c, "train.bias: -0.0"), LFLEX_OK);
    ck_assert(c.bias == 0 && signbit(c.bias));
    static const struct { const char *text; bool value; } bools[] = {
        { "true", true }, { "TRUE", true }, { "Yes", true }, { "oN", true },
        { "false", false }, { "No", false }, { "OFF", false }, { "fAlSe", false },
    };
    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++) {
        char y[80];
        snprintf(y, sizeof y, "train:\n  shuffle: %s\n", bools[i].text);
        c.shuffle = !bools[i].value;
        ck_assert_msg(parse(&c, y) == LFLEX_OK, "%s: %s", y, lflex_last_error());
        ck_assert_msg(c.shuffle == bools[i].value, "%s", y);
    }
}
END_TEST

START_TEST(test_parse_strings_tags_aliases)
{
    tcfg c;
    defaults(&c);
    ck_assert_int_eq(parse(&c, "name: \"a\\tb\\u00e9\""), LFLEX_OK);
    ck_assert_str_eq(c.name, "a\tb\xc3\xa9");
    ck_assert_int_eq(parse(&c, "name: 'it''s'"), LFLEX_OK);
    ck_assert_str_eq(c.name, "it's");
    ck_assert_int_eq(parse(&c, "name: |\n  two\n  lines\n"), LFLEX_OK);
    ck_assert_str_eq(c.name, "two\nlines\n");
    ck_assert_int_eq(parse(&c, "name:\n"), LFLEX_OK);
    ck_assert_str_eq(c.name, "");
    ck_assert_int_eq(parse(&c, "name: 123"), LFLEX_OK); /* a plain number is text for a string key */
    ck_assert_str_eq(c.name, "123");
    ck_assert_int_eq(parse(&c, "name: 123456789012345"), LFLEX_OK); /* exactly 15 bytes fit */
    ck_assert_str_eq(c.name, "123456789012345");
    ck_assert_int_eq(parse(&c, "model.schedule.kind: \"kumaraswamy\""), LFLEX_OK);
    ck_assert_int_eq(c.kind, 1);
    /* standard tags of the key's type, even on quoted values */
    ck_assert_msg(parse(&c, "seed: !!int \"12\"\ntrain.lr: !!float 0.75\ntrain.shuffle: !!bool 'yes'\n"
                            "name: !!str x\nmodel: !!map {d_model: 8}\n") == LFLEX_OK,
                  "%s", lflex_last_error());
    ck_assert(c.seed == 12 && c.lr == 0.75 && c.shuffle && c.d_model == 8);
    ck_assert_str_eq(c.name, "x");
    /* anchors and aliases */
    ck_assert_msg(parse(&c, "seed: &s 5\nmodel:\n  n_layers: *s\n  d_model: *s\n") == LFLEX_OK, "%s",
                  lflex_last_error());
    ck_assert(c.seed == 5 && c.n_layers == 5 && c.d_model == 5);
}
END_TEST

/* Each bad input, the message it must produce (location included). */
static const struct {
    const char *yaml;
    size_t len; /* 0: strlen */
    const char *want;
} bad_inputs[] = {
    { "model:\n  d_model: 1\n  d_modle: 2\n", 0,
      "<string>:3:3: unknown key 'model.d_modle' (did you mean 'model.d_model'?)" },
    { "zzzz: 1\n", 0, "<string>:1:1: unknown key 'zzzz'" },
    { "d_model: 1\n", 0, "<string>:1:1: unknown key 'd_model' (did you mean 'model.d_model'?)" },
    { "model:\n  schedule:\n    knd: linear\n", 0,
      "<string>:3:5: unknown key 'model.schedule.knd' (did you mean 'model.schedule.kind'?)" },
    { "model:\n  d_model: abc\n", 0, "<string>:2:12: key 'model.d_model': expected a decimal integer, got 'abc'" },
    { "model:\n  d_model: 1.5\n", 0, "<string>:2:12: key 'model.d_model': expected a decimal integer, got '1.5'" },
    { "seed: 0x10", 0, "<string>:1:7: key 'seed': expected a decimal integer, got '0x10'" },
    { "seed: 007", 0, "<string>:1:7: key 'seed': expected a decimal integer, got '007'" },
    { "seed: \"5\"", 0, "<string>:1:7: key 'seed': expected an integer, got the quoted string '5'" },
    { "seed: 9223372036854775808", 0, "<string>:1:7: key 'seed': 9223372036854775808 does not fit in a 64-bit "
                                      "integer (accepted range [-9223372036854775808, 9223372036854775807])" },
    { "seed: -99999999999999999999999", 0, "<string>:1:7: key 'seed': -99999999999999999999999 does not fit" },
    { "train:\n  shuffle: maybe\n", 0,
      "<string>:2:12: key 'train.shuffle': expected a boolean (true/false, yes/no, on/off), got 'maybe'" },
    { "model.d_model: 5000", 0, "<string>:1:16: key 'model.d_model': 5000 is out of range [1, 4096]" },
    { "model.d_model: 0", 0, "<string>:1:16: key 'model.d_model': 0 is out of range [1, 4096]" },
    { "train.lr: 1.5", 0, "<string>:1:11: key 'train.lr': 1.5 is out of range [0.0, 1.0]" },
    { "train.clip: -1e-300", 0, "<string>:1:13: key 'train.clip': -1e-300 is out of range [0.0, .inf]" },
    { "train.lr: .nan", 0, "<string>:1:11: key 'train.lr': NaN is not allowed (accepted range [0.0, 1.0])" },
    { "train.bias: NaN", 0, "<string>:1:13: key 'train.bias': NaN is not allowed" },
    { "train.bias: 1e999", 0, "<string>:1:13: key 'train.bias': 1e999 is too large for a double" },
    { "train.bias: inf", 0, "<string>:1:13: key 'train.bias': expected a real number (like 0.5, 1e-4, .inf), got 'inf'" },
    { "train.bias: 0x1p3", 0, "<string>:1:13: key 'train.bias': expected a real number" },
    { "train.bias: 1e", 0, "<string>:1:13: key 'train.bias': expected a real number" },
    { "train.bias: .", 0, "<string>:1:13: key 'train.bias': expected a real number" },
    { "model:\n  schedule:\n    kind: cosine\n", 0,
      "<string>:3:11: key 'model.schedule.kind': 'cosine' is not one of: linear, kumaraswamy" },
    { "seed: 1\nseed: 2\n", 0, "<string>:2:1: duplicate key 'seed' (first at 1:1)" },
    { "model.d_model: 1\nmodel:\n  d_model: 2\n", 0,
      "<string>:3:3: duplicate key 'model.d_model' (first set at 1:1)" },
    { "model: {}\nmodel: {}\n", 0, "<string>:2:1: duplicate key 'model' (first at 1:1)" },
    { "seed:\n  a: 1\n", 0, "<string>:2:3: key 'seed': expected an integer, got a mapping" },
    { "seed: [1, 2]\n", 0, "<string>:1:7: key 'seed': expected an integer, got a sequence" },
    { "model: 5\n", 0, "<string>:1:8: 'model' is a section: expected a mapping of its keys, got '5'" },
    { "model: [a]\n", 0, "<string>:1:8: 'model' is a section: expected a mapping of its keys, got a sequence" },
    { "- a\n- b\n", 0, "<string>:1:1: expected a mapping of keys at the top level, got a sequence" },
    { "hello\n", 0, "<string>:1:1: expected a mapping of keys at the top level, got 'hello'" },
    { "a: b: c\n", 0, "<string>:1:5: YAML syntax error: mapping values are not allowed in this context" },
    { "key: [a, b}\n", 0, "<string>:1:11: YAML syntax error: did not find expected ',' or ']' "
                          "(while parsing a flow sequence at 1:6)" },
    { "seed: *x\n", 0, "<string>:1:7: YAML syntax error: found undefined alias" },
    { "name: abcdefghijklmnop\n", 0,
      "<string>:1:7: key 'name': the string 'abcdefghijklmnop' is 16 bytes long, at most 15 are accepted" },
    { "name: \"a\\0b\"\n", 0, "<string>:1:7: key 'name': the string 'a?b' contains a NUL character" },
    { "seed: 1\n---\nseed: 2\n", 0, "<string>:2:1: a second YAML document; expected one" },
    { "seed: 1\0\n", 9, "<string>:1:8: invalid YAML input: control characters are not allowed (byte 7)" },
    { "name: caf\xc3\n", 0, "<string>:1:11: invalid YAML input: invalid trailing UTF-8 octet (byte 10)" },
    { "seed: !foo 5\n", 0, "<string>:1:7: key 'seed': unexpected tag '!foo' (expected an integer)" },
    { "seed: !!str 5\nname: !!int x\n", 0, "<string>:2:7: key 'name': unexpected tag 'tag:yaml.org,2002:int'" },
    { "model: !!set {d_model: 1}\n", 0, "<string>:1:8: unexpected tag 'tag:yaml.org,2002:set' on a mapping" },
    { "? [a]\n: 1\n", 0, "<string>:1:3: a key must be a scalar, got a sequence" },
    { "model:\n  <<: {d_model: 1}\n", 0, "<string>:2:3: unknown key 'model.<<'" },
    { "&r {model: *r}\n", 0, "<string>:1:5: unknown key 'model.model'" },
    { "seed: 7\nmodel.d_model: -1\n", 0, "<string>:2:16: key 'model.d_model': -1 is out of range [1, 4096]" },
};

START_TEST(test_parse_errors)
{
    for (size_t i = 0; i < sizeof bad_inputs / sizeof *bad_inputs; i++) {
        const char *y = bad_inputs[i].yaml;
        size_t len = bad_inputs[i].len ? bad_inputs[i].len : strlen(y);
        tcfg c, ref;
        defaults(&c);
        c.d_model = 77;
        ref = c;
        lflex_clear_error();
        int rc = lf_config_parse(&tschema, &c, sizeof c, y, len, NULL);
        ck_assert_msg(rc == LFLEX_EINVAL, "input %zu gave %d", i, rc);
        ck_assert_int_eq(lflex_last_error_code(), LFLEX_EINVAL);
        const char *msg = lflex_last_error();
        ck_assert_msg(strncmp(msg, bad_inputs[i].want, strlen(bad_inputs[i].want)) == 0,
                      "input %zu:\n  got  '%s'\n  want '%s...'", i, msg, bad_inputs[i].want);
        ck_assert_msg(memcmp(&c, &ref, sizeof c) == 0, "input %zu changed the struct", i);
    }
    /* a far-off key gets no suggestion */
    tcfg c;
    defaults(&c);
    ck_assert_int_eq(parse(&c, "zzzz: 1"), LFLEX_EINVAL);
    ck_assert_ptr_null(strstr(lflex_last_error(), "did you mean"));
}
END_TEST

/* "x: " then `levels` nested flow sequences (or mappings {a: ...}). */
static char *nested_flow(size_t levels, bool maps)
{
    char *y = malloc(8 * levels + 16);
    ck_assert_ptr_nonnull(y);
    size_t k = (size_t)sprintf(y, "x: ");
    for (size_t i = 0; i < levels; i++)
        k += (size_t)sprintf(y + k, "%s", maps ? "{a: " : "[");
    y[k++] = '1';
    for (size_t i = 0; i < levels; i++)
        y[k++] = maps ? '}' : ']';
    strcpy(y + k, "\n");
    return y;
}

/* Nesting deeper than LF_CFG_DEPTH_MAX (the top-level mapping counts) is
 * refused at the first collection too deep, with its place, and before the
 * rest is read: 100 000 levels took 25 s in libyaml's scanner. */
START_TEST(test_parse_depth_limit)
{
    ck_assert_int_eq(LF_CFG_DEPTH_MAX, 64);
    tcfg c, ref;
    defaults(&c);
    ref = c;
    /* 64 levels: read, and refused for the unknown key only */
    char *y = nested_flow(LF_CFG_DEPTH_MAX - 1, false);
    ck_assert_int_eq(parse(&c, y), LFLEX_EINVAL);
    ck_assert_msg(strncmp(lflex_last_error(), "<string>:1:1: unknown key 'x'", 29) == 0, "%s", lflex_last_error());
    free(y);
    /* 65: the 64th sequence of x is the one too deep */
    y = nested_flow(LF_CFG_DEPTH_MAX, false);
    ck_assert_int_eq(parse(&c, y), LFLEX_EINVAL);
    ck_assert_str_eq(lflex_last_error(), "<string>:1:67: a sequence nested deeper than 64 levels of mappings and "
                                         "sequences");
    free(y);
    /* block mappings: the place of the 65th */
    char block[LF_CFG_DEPTH_MAX * (2 * LF_CFG_DEPTH_MAX + 4) + 16];
    size_t k = 0;
    for (int level = 0; level <= LF_CFG_DEPTH_MAX; level++)
        k += (size_t)sprintf(block + k, "%*sa:%s", 2 * level, "", level == LF_CFG_DEPTH_MAX ? " 1\n" : "\n");
    ck_assert_int_eq(lf_config_parse(&tschema, &c, sizeof c, block, k, "deep.yaml"), LFLEX_EINVAL);
    ck_assert_str_eq(lflex_last_error(), "deep.yaml:65:129: a mapping nested deeper than 64 levels of mappings and "
                                         "sequences");
    ck_assert(memcmp(&c, &ref, sizeof c) == 0);
    /* 100 000 levels, in a known section: refused at the 65th (line 2) */
    for (int maps = 0; maps < 2; maps++) {
        y = nested_flow(100000, maps);
        char *z = malloc(strlen(y) + 16);
        sprintf(z, "train:\n  out_dir: %s", y + 3);
        ck_assert_int_eq(parse(&c, z), LFLEX_EINVAL);
        ck_assert_msg(strstr(lflex_last_error(), "<string>:2:") && strstr(lflex_last_error(), "nested deeper than 64"),
                      "%s", lflex_last_error());
        free(z);
        free(y);
    }
    ck_assert(memcmp(&c, &ref, sizeof c) == 0);
}
END_TEST

START_TEST(test_parse_long_key_and_source_name)
{
    char y[700];
    memset(y, 'k', 600);
    strcpy(y + 600, ": 1\n");
    tcfg c;
    defaults(&c);
    ck_assert_int_eq(lf_config_parse(&tschema, &c, sizeof c, y, strlen(y), "cfg.yaml"), LFLEX_EINVAL);
    ck_assert_msg(strncmp(lflex_last_error(), "cfg.yaml:1:1: unknown key 'kkkkkkkk", 35) == 0, "%s",
                  lflex_last_error());
    ck_assert(strlen(lflex_last_error()) < 200); /* shown shortened */
    /* a key longer than any schema path below a known section */
    snprintf(y, sizeof y, "model:\n  %0300d: 1\n", 0);
    ck_assert_int_eq(parse(&c, y), LFLEX_EINVAL);
    ck_assert_msg(strncmp(lflex_last_error(), "<string>:2:3: unknown key 'model.000", 36) == 0, "%s",
                  lflex_last_error());
    /* a struct smaller than the schema's fields */
    ck_assert_int_eq(lf_config_parse(&tschema, &c, 8, "", 0, NULL), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "outside the 8-byte struct"));
}
END_TEST

START_TEST(test_parse_file)
{
    char path[] = "/tmp/lf_cfg_testXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("model:\n  d_model: 512\n", f);
    for (int i = 0; i < 2000; i++) /* longer than one read */
        fputs("# padding comment line\n", f);
    fputs("train:\n  lr: 2e-3\n  shufle: yes\n", f);
    fclose(f);
    tcfg c, ref;
    defaults(&c);
    ref = c;
    ck_assert_int_eq(lf_config_parse_file(&tschema, &c, sizeof c, path), LFLEX_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:2005:3: unknown key 'train.shufle' (did you mean 'train.shuffle'?)", path);
    ck_assert_str_eq(lflex_last_error(), want);
    ck_assert(memcmp(&c, &ref, sizeof c) == 0);
    f = fopen(path, "w");
    fputs("model:\n  d_model: 512\ntrain:\n  lr: 2e-3\n", f);
    fclose(f);
    ck_assert_int_eq(lf_config_parse_file(&tschema, &c, sizeof c, path), LFLEX_OK);
    ck_assert(c.d_model == 512 && c.lr == 2e-3);
    unlink(path);
    ck_assert_int_eq(lf_config_parse_file(&tschema, &c, sizeof c, path), LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), path));
}
END_TEST

/* Strings that a careless emitter would write wrongly as plain scalars. */
/* Every real key's emitted value is a float to a YAML 1.1 reader too
 * (PyYAML): [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? or [-+]?\.inf. */
static bool yaml11_float(const char *v, size_t n)
{
    size_t i = v[0] == '+' || v[0] == '-', d = 0;
    if (n - i == 4 && strncmp(v + i, ".inf", 4) == 0)
        return true;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++)
        d++;
    if (d == 0 || i == n || v[i++] != '.')
        return false;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++;
    if (i == n)
        return true;
    if (v[i] != 'e' && v[i] != 'E')
        return false;
    if (++i == n || (v[i] != '+' && v[i] != '-'))
        return false;
    size_t e = ++i;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++;
    return i > e && i == n;
}

static void check_reals_yaml11(const char *y)
{
    static const char *const reals[] = { "lr", "alpha", "clip", "bias" };
    int seen = 0;
    for (const char *line = y; *line; ) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *k = line;
        while (*k == ' ')
            k++;
        for (size_t r = 0; r < sizeof reals / sizeof *reals; r++) {
            size_t kn = strlen(reals[r]);
            if ((size_t)(k - line) + kn + 2 <= n && strncmp(k, reals[r], kn) == 0 && strncmp(k + kn, ": ", 2) == 0) {
                const char *v = k + kn + 2;
                ck_assert_msg(yaml11_float(v, n - (size_t)(v - line)), "not a YAML 1.1 float: %.*s", (int)n, line);
                seen++;
            }
        }
        line += n + (end != NULL);
    }
    ck_assert_int_eq(seen, 4);
}

static const char *const tricky[] = {
    "", "yes", "No", "ON", "y", "null", "~", "123", "-4", "1.5", ".inf", " lead", "trail ", "a: b",
    "#x", "a #b", "\"q\"", "back\\slash", "line\nbreak", "cr\rx", "tab\tx", "\x01" "ctl", "\x7f",
    "caf\xc3\xa9", "\xc2\x85nel", "\xe2\x80\xa8ls", "\xef\xbb\xbf" "bom", "\xf0\x9f\x98\x80",
    "-dash", "[x]", "{y}", "*a", "&b", "!t", "%p", "@a", "`a", "a'b", "'", ",", "?", "key:", "-", "---",
    "...", "a,b", "plain_ok/x.y-z", "\xef\xbf\xbe",
};

START_TEST(test_emit_round_trip)
{
    lf_test_rng rng = { 12345 };
    for (int iter = 0; iter < 300; iter++) {
        tcfg a, b;
        memset(&a, 0, sizeof a);
        lf_config_defaults(&tschema, &a);
        a.seed = iter % 3 == 0 ? (int64_t)lf_test_next(&rng) : lf_test_int(&rng, -5, 5);
        a.d_model = lf_test_int(&rng, 1, 4096);
        a.n_layers = lf_test_int(&rng, 1, 64);
        a.kind = (int)lf_test_int(&rng, 0, 1);
        a.alpha = lf_test_range(&rng, 0, 1000);
        a.lr = iter % 5 == 0 ? 0.1 : lf_test_uniform(&rng);
        a.clip = iter % 4 == 0 ? INFINITY : lf_test_range(&rng, 0, 1e6);
        static const double special[] = { -0.0, 4.9406564584124654e-324, -INFINITY, 1e300, -1.0 / 3.0 };
        a.bias = iter < 5 ? special[iter] : lf_test_range(&rng, -1e3, 1e3) * pow(10, lf_test_int(&rng, -30, 30));
        a.shuffle = lf_test_next(&rng) & 1;
        const char *s1 = tricky[iter % (sizeof tricky / sizeof *tricky)];
        const char *s2 = tricky[lf_test_next(&rng) % (sizeof tricky / sizeof *tricky)];
        memset(a.name, 0, sizeof a.name);
        strcpy(a.name, s1);
        memset(a.out_dir, 0, sizeof a.out_dir);
        snprintf(a.out_dir, sizeof a.out_dir, "%s%s", s2, s1);

        char *y = NULL;
        size_t len = 0;
        ck_assert_int_eq(lf_config_emit(&tschema, &a, &y, &len), LFLEX_OK);
        ck_assert_uint_eq(len, strlen(y));
        check_reals_yaml11(y);
        memset(&b, 0, sizeof b);
        int rc = lf_config_parse(&tschema, &b, sizeof b, y, len, NULL);
        ck_assert_msg(rc == LFLEX_OK, "iteration %d: %s\n%s", iter, lflex_last_error(), y);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "iteration %d: round trip differs\n%s", iter, y);
        free(y);
    }
}
END_TEST

START_TEST(test_emit_layout)
{
    tcfg c;
    defaults(&c);
    strcpy(c.name, "yes");
    char *y = NULL;
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_OK);
    /* Sections gather their keys where the first one appears; the expected
     * text is written out from the schema order by hand. */
    const char *want = "seed: 42\n"
                       "name: \"yes\"\n"
                       "model:\n"
                       "  d_model: 128\n"
                       "  schedule:\n"
                       "    kind: linear\n"
                       "    alpha: 1.5\n"
                       "  n_layers: 4\n"
                       "train:\n"
                       "  lr: 0.0001\n"
                       "  clip: .inf\n"
                       "  bias: -0.5\n"
                       "  shuffle: true\n"
                       "  out_dir: /tmp/out\n";
    ck_assert_str_eq(y, want);
    free(y);
    strcpy(c.name, "run");
    c.lr = 1.0;
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_OK);
    ck_assert_ptr_nonnull(strstr(y, "\nname: run\n"));
    ck_assert_ptr_nonnull(strstr(y, "\n  lr: 1.0\n"));
    free(y);

    /* values no YAML could give are refused, with nothing allocated */
    y = NULL;
    c.kind = 2;
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "model.schedule.kind"));
    c.kind = 0;
    c.lr = NAN;
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "train.lr"));
    c.lr = 0.5;
    memset(c.name, 'x', sizeof c.name);
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_EINVAL);
    strcpy(c.name, "\xff");
    ck_assert_int_eq(lf_config_emit(&tschema, &c, &y, NULL), LFLEX_EINVAL);
    ck_assert_ptr_null(y);
}
END_TEST

START_TEST(test_set)
{
    tcfg c, ref;
    defaults(&c);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "model.d_model", "256"), LFLEX_OK);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "train.lr", "1e-3"), LFLEX_OK);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "name", "hello world"), LFLEX_OK);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "train.shuffle", "off"), LFLEX_OK);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "model.schedule.kind", "kumaraswamy"), LFLEX_OK);
    ck_assert_int_eq(lf_config_set(&tschema, &c, "train.clip", ".inf"), LFLEX_OK);
    ck_assert(c.d_model == 256 && c.lr == 1e-3 && !c.shuffle && c.kind == 1 && isinf(c.clip));
    ck_assert_str_eq(c.name, "hello world");
    ref = c;
    static const struct { const char *path, *value, *want; } bad[] = {
        { "model.d_modle", "1", "unknown key 'model.d_modle' (did you mean 'model.d_model'?)" },
        { "model", "1", "'model' is a section, not a key" },
        { "model.d_model", "0", "key 'model.d_model': 0 is out of range [1, 4096]" },
        { "model.d_model", " 5", "key 'model.d_model': expected a decimal integer, got ' 5'" },
        { "model.d_model", "", "key 'model.d_model': expected a decimal integer, got ''" },
        { "train.lr", "nan", "key 'train.lr': NaN is not allowed" },
        { "train.shuffle", "2", "key 'train.shuffle': expected a boolean" },
        { "model.schedule.kind", "Linear", "key 'model.schedule.kind': 'Linear' is not one of: linear, kumaraswamy" },
        { "name", "\xff", "key 'name': the string '\xff' is not valid UTF-8" },
        { "name", "a string that is too long", "key 'name': the string 'a string that is too long' is 25 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(lf_config_set(&tschema, &c, bad[i].path, bad[i].value), LFLEX_EINVAL);
        ck_assert_msg(strncmp(lflex_last_error(), bad[i].want, strlen(bad[i].want)) == 0,
                      "%s=%s:\n  got  '%s'\n  want '%s'", bad[i].path, bad[i].value, lflex_last_error(),
                      bad[i].want);
        ck_assert(memcmp(&c, &ref, sizeof c) == 0);
    }
}
END_TEST

START_TEST(test_doc_markdown)
{
    char *md = NULL;
    size_t len = 0;
    ck_assert_int_eq(lf_config_doc_markdown(&tschema, &md, &len), LFLEX_OK);
    ck_assert_uint_eq(len, strlen(md));
    size_t rows = 0;
    for (const char *p = md; (p = strstr(p, "\n| `")) != NULL; p++)
        rows++;
    ck_assert_uint_eq(rows, tschema.n_keys);
    for (size_t i = 0; i < tschema.n_keys; i++) {
        char cell[160];
        snprintf(cell, sizeof cell, "| `%s` | ", tkeys[i].path);
        ck_assert_msg(strstr(md, cell), "no row for %s", tkeys[i].path);
    }
    static const char *const want[] = {
        "# Configuration keys: test\n",
        "\n## Top-level keys\n",
        "\n## `model`\n",
        "\n## `train`\n",
        "| `model.d_model` | integer | `128` | [1, 4096] | Model width |\n",
        "| `model.schedule.kind` | enum | `linear` | `linear`, `kumaraswamy` | Schedule family |\n",
        "| `train.clip` | real | `.inf` | [0.0, .inf] | Gradient clip |\n",
        "| `train.shuffle` | boolean | `true` | true, false (also yes/no, on/off) | Shuffle the data |\n",
        "| `name` | string | `run` | at most 15 bytes of UTF-8 | Run name \\| shown in logs |\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_msg(strstr(md, want[i]), "missing: %s\nin:\n%s", want[i], md);
    /* sections in the order of their first key, top-level keys first */
    ck_assert(strstr(md, "Top-level") < strstr(md, "## `model`"));
    ck_assert(strstr(md, "## `model`") < strstr(md, "## `train`"));
    ck_assert(strstr(md, "model.n_layers") < strstr(md, "## `train`"));
    free(md);
}
END_TEST

START_TEST(test_schema_check_catches_bad_schemas)
{
    static const char *const no_choices[] = { NULL };
    static const char *const twice[] = { "a", "a", NULL };
    static const struct { lf_cfg_key key[2]; size_t n; const char *want; } bad[] = {
        { { LF_CFG_KEY_INT(tcfg, seed, "a.b", 0, 9, 1, ""), LF_CFG_KEY_INT(tcfg, d_model, "a.b", 0, 9, 1, "") }, 2,
          "key 'a.b' appears twice" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a", 0, 9, 1, ""), LF_CFG_KEY_INT(tcfg, d_model, "a.b", 0, 9, 1, "") }, 2,
          "key 'a' is also the section of key 'a.b'" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a.b", 1, 9, 0, "") }, 1, "key 'a.b' has a default outside its range [1, 9]" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a.b", 0.5, 9, 1, "") }, 1, "key 'a.b' needs integral bounds" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a.b", 0, 1e19, 1, "") }, 1, "key 'a.b' needs integral bounds" },
        { { LF_CFG_KEY_REAL(tcfg, lr, "lr", NAN, 1, 0.5, "") }, 1, "key 'lr' has a NaN bound" },
        { { LF_CFG_KEY_REAL(tcfg, lr, "lr", 0, 1, 2, "") }, 1, "key 'lr' has a default outside its range [0.0, 1.0]" },
        { { LF_CFG_KEY_BOOL(tcfg, shuffle, "f", 2, "") }, 1, "key 'f' needs a default of 0 or 1" },
        { { LF_CFG_KEY_ENUM(tcfg, kind, "k", kinds, 2, "") }, 1, "key 'k' needs a default index in [0, 2)" },
        { { LF_CFG_KEY_ENUM(tcfg, kind, "k", no_choices, 0, "") }, 1, "key 'k' needs a default index in [0, 0)" },
        { { LF_CFG_KEY_ENUM(tcfg, kind, "k", NULL, 0, "") }, 1, "key 'k' needs a default index" },
        { { LF_CFG_KEY_ENUM(tcfg, kind, "k", twice, 0, "") }, 1, "key 'k' lists the choice 'a' twice" },
        { { LF_CFG_KEY_STRING(tcfg, name, "s", "sixteen chars!!!", "") }, 1,
          "key 's' needs a UTF-8 default shorter than its 16-byte field" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a..b", 0, 9, 1, "") }, 1, "key #0 has an invalid path 'a..b'" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a b", 0, 9, 1, "") }, 1, "key #0 has an invalid path 'a b'" },
        { { LF_CFG_KEY_INT(tcfg, seed, "a.", 0, 9, 1, "") }, 1, "key #0 has an invalid path 'a.'" },
        { { LF_CFG_KEY_INT(tcfg, seed, "", 0, 9, 1, "") }, 1, "key #0 has an invalid path ''" },
        { { LF_CFG_KEY_INT(tcfg, seed, NULL, 0, 9, 1, "") }, 1, "key #0 has an invalid path '(null)'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lf_cfg_schema s = { bad[i].key, bad[i].n, "bad" };
        ck_assert_int_eq(lf_config_schema_check(&s), LFLEX_EINVAL);
        char want[200];
        snprintf(want, sizeof want, "config schema 'bad': %s", bad[i].want);
        ck_assert_msg(strncmp(lflex_last_error(), want, strlen(want)) == 0, "case %zu:\n  got  '%s'\n  want '%s'",
                      i, lflex_last_error(), want);
    }
    /* a path at the length limit is fine, one byte more is not */
    char path[LF_CFG_PATH_MAX + 2];
    memset(path, 'p', sizeof path);
    path[LF_CFG_PATH_MAX] = '\0';
    lf_cfg_key k = LF_CFG_KEY_BOOL(tcfg, shuffle, path, 0, "");
    lf_cfg_schema s = { &k, 1, "long" };
    ck_assert_int_eq(lf_config_schema_check(&s), LFLEX_OK);
    path[LF_CFG_PATH_MAX] = 'p';
    path[LF_CFG_PATH_MAX + 1] = '\0';
    ck_assert_int_eq(lf_config_schema_check(&s), LFLEX_EINVAL);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("io_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_schema_is_valid);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_parse_every_type_nested);
    tcase_add_test(tc, test_parse_flat_and_mixed_keys);
    tcase_add_test(tc, test_parse_empty_inputs);
    tcase_add_test(tc, test_parse_numbers_and_booleans);
    tcase_add_test(tc, test_parse_strings_tags_aliases);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_parse_depth_limit);
    tcase_add_test(tc, test_parse_long_key_and_source_name);
    tcase_add_test(tc, test_parse_file);
    tcase_add_test(tc, test_emit_round_trip);
    tcase_add_test(tc, test_emit_layout);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_doc_markdown);
    tcase_add_test(tc, test_schema_check_catches_bad_schemas);
    suite_add_tcase(s, tc);
    return s;
}
