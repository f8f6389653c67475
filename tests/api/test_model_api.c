/* The public model and schedule calls, through the shared library and the
 * public header only: every argument of every call refused when NULL or
 * invalid (LFLEX_EINVAL, a message naming the call), YAML errors located,
 * bad training batches located by sequence and position, the vocabulary,
 * the properties (the parameter count against the layout's formula),
 * checkpoints, and the schedule against its closed forms. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lflex/lflex.h>

#include "tests/common/testutil.h"

static const char model_yaml[] = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\n"
                                 "vocab: {tokenizer: words, tokens: the cat sat on mat}\n"
                                 "train: {threads: 1, warmup: 0}\n";

/* A model and a schedule shared by the argument checks. */
typedef struct {
    lflex_model_t *m;
    lflex_schedule_t *s;
} fixture;

static lflex_model_t *new_model(const char *yaml)
{
    lflex_model_t *m = NULL;
    int rc = lflex_model_new(&m, yaml, strlen(yaml));
    ck_assert_msg(rc == LFLEX_OK, "lflex_model_new: %s", lflex_last_error());
    ck_assert_ptr_nonnull(m);
    return m;
}

static void fixture_open(fixture *f)
{
    f->m = new_model(model_yaml);
    ck_assert_int_eq(lflex_schedule_new(&f->s, "family: kumaraswamy\na: 2\n", 25), LFLEX_OK);
}

static void fixture_close(fixture *f)
{
    lflex_schedule_free(f->s);
    lflex_model_free(f->m);
}

/* A valid batch: [the cat EOS] and [sat BOS on mat EOS] with "sat" a prompt. */
static const int32_t ok_tokens[] = {4, 5, LFLEX_TOKEN_EOS, 6, LFLEX_TOKEN_BOS, 7, 8, LFLEX_TOKEN_EOS};
static const uint8_t ok_fixed[] = {0, 0, 1, 1, 1, 0, 0, 1};
static const size_t ok_offsets[] = {0, 3, 8};
static const size_t bad_offsets0[] = {1, 3, 8};
static const size_t zero_offsets[] = {0, 0};

/* ---- every argument of every call --------------------------------------- */

typedef struct {
    const char *call;   /* the name the message must contain */
    const char *what;   /* the argument made invalid */
    int (*run)(fixture *f);
} arg_case;

static lflex_model_t *poison_model(void) { return (lflex_model_t *)(uintptr_t)0x10; }

#define OUT_CASE(name, expr)                                   \
    static int name(fixture *f)                                \
    {                                                          \
        (void)f;                                               \
        lflex_model_t *out = poison_model();                   \
        int rc = (expr);                                       \
        ck_assert_ptr_null(out); /* cleared on failure */      \
        return rc;                                             \
    }
OUT_CASE(new_out_null_yaml, lflex_model_new(&out, NULL, 5))
OUT_CASE(from_file_null_path, lflex_model_new_from_file(&out, NULL))
OUT_CASE(load_null_path, lflex_model_load(&out, NULL))
OUT_CASE(load_empty_path, lflex_model_load(&out, ""))
#undef OUT_CASE

static int new_null_out(fixture *f) { (void)f; return lflex_model_new(NULL, model_yaml, strlen(model_yaml)); }
static int from_file_null_out(fixture *f) { (void)f; return lflex_model_new_from_file(NULL, "x.yaml"); }
static int save_null_model(fixture *f) { (void)f; return lflex_model_save(NULL, "/tmp/x.safetensors"); }
static int save_null_path(fixture *f) { return lflex_model_save(f->m, NULL); }
static int save_empty_path(fixture *f) { return lflex_model_save(f->m, ""); }
static int load_null_out(fixture *f) { (void)f; return lflex_model_load(NULL, "/tmp/x.safetensors"); }
static int config_null_model(fixture *f)
{
    char buf[8];
    size_t len;
    (void)f;
    return lflex_model_config(NULL, buf, sizeof buf, &len);
}
static int config_null_buf(fixture *f)
{
    size_t len;
    return lflex_model_config(f->m, NULL, 100, &len);
}
static int config_small_buf(fixture *f)
{
    char buf[8];
    size_t len = 0;
    int rc = lflex_model_config(f->m, buf, sizeof buf, &len);
    ck_assert_uint_gt(len, sizeof buf); /* the length needed */
    return rc;
}
static int get_null_model(fixture *f)
{
    int64_t v;
    (void)f;
    return lflex_model_get(NULL, LFLEX_PROP_STEP, &v);
}
static int get_null_value(fixture *f) { return lflex_model_get(f->m, LFLEX_PROP_STEP, NULL); }
static int get_prop_zero(fixture *f)
{
    int64_t v;
    return lflex_model_get(f->m, (lflex_model_property)0, &v);
}
static int get_prop_unknown(fixture *f)
{
    int64_t v;
    return lflex_model_get(f->m, (lflex_model_property)99, &v);
}
static int threads_null_model(fixture *f) { (void)f; return lflex_model_set_threads(NULL, 1); }
static int threads_negative(fixture *f) { return lflex_model_set_threads(f->m, -1); }
static int threads_too_many(fixture *f) { return lflex_model_set_threads(f->m, 1025); }
static int encode_null_model(fixture *f)
{
    int32_t ids[4];
    size_t n;
    (void)f;
    return lflex_model_encode(NULL, "the", 3, ids, 4, &n);
}
static int encode_null_text(fixture *f)
{
    int32_t ids[4];
    size_t n;
    return lflex_model_encode(f->m, NULL, 3, ids, 4, &n);
}
static int encode_null_ids(fixture *f)
{
    size_t n;
    return lflex_model_encode(f->m, "the", 3, NULL, 4, &n);
}
static int encode_null_n(fixture *f)
{
    int32_t ids[4];
    return lflex_model_encode(f->m, "the", 3, ids, 4, NULL);
}
static int encode_unknown(fixture *f)
{
    int32_t ids[4];
    size_t n;
    return lflex_model_encode(f->m, "the dog", 7, ids, 4, &n);
}
static int encode_small(fixture *f)
{
    int32_t ids[1];
    size_t n = 0;
    int rc = lflex_model_encode(f->m, "the cat sat", 11, ids, 1, &n);
    ck_assert_uint_eq(n, 3);
    return rc;
}
static int decode_null_model(fixture *f)
{
    const int32_t ids[] = {4};
    char buf[16];
    size_t len;
    (void)f;
    return lflex_model_decode(NULL, ids, 1, buf, sizeof buf, &len);
}
static int decode_null_ids(fixture *f)
{
    char buf[16];
    size_t len;
    return lflex_model_decode(f->m, NULL, 1, buf, sizeof buf, &len);
}
static int decode_null_buf(fixture *f)
{
    const int32_t ids[] = {4};
    size_t len;
    return lflex_model_decode(f->m, ids, 1, NULL, 16, &len);
}
static int decode_null_len(fixture *f)
{
    const int32_t ids[] = {4};
    char buf[16];
    return lflex_model_decode(f->m, ids, 1, buf, sizeof buf, NULL);
}
static int decode_bad_id(fixture *f)
{
    const int32_t ids[] = {4, 9};
    char buf[16];
    size_t len;
    return lflex_model_decode(f->m, ids, 2, buf, sizeof buf, &len);
}
static int decode_negative_id(fixture *f)
{
    const int32_t ids[] = {-1};
    char buf[16];
    size_t len;
    return lflex_model_decode(f->m, ids, 1, buf, sizeof buf, &len);
}
static int decode_small(fixture *f)
{
    const int32_t ids[] = {4, 5};
    char buf[4];
    size_t len = 0;
    int rc = lflex_model_decode(f->m, ids, 2, buf, sizeof buf, &len);
    ck_assert_uint_eq(len, 7); /* "the cat" */
    return rc;
}
/* the training calls share their argument checks; both are covered */
#define BATCH_CASES(pfx, CALL)                                                                              \
    static int pfx##_null_model(fixture *f) { (void)f; return CALL(NULL, ok_tokens, ok_fixed, ok_offsets, 2); } \
    static int pfx##_null_tokens(fixture *f) { return CALL(f->m, NULL, ok_fixed, ok_offsets, 2); }           \
    static int pfx##_null_offsets(fixture *f) { return CALL(f->m, ok_tokens, ok_fixed, NULL, 2); }           \
    static int pfx##_no_seq(fixture *f) { return CALL(f->m, ok_tokens, ok_fixed, ok_offsets, 0); }            \
    static int pfx##_bad_offset0(fixture *f) { return CALL(f->m, ok_tokens, ok_fixed, bad_offsets0, 2); }     \
    static int pfx##_empty_seq(fixture *f) { return CALL(f->m, ok_tokens, ok_fixed, zero_offsets, 1); }
#define TRAIN(m, t, fx, o, n) lflex_model_train_step(m, t, fx, o, n, NULL)
#define EVAL(m, t, fx, o, n) lflex_model_eval_loss(m, t, fx, o, n, 1, NULL)
BATCH_CASES(train, TRAIN)
BATCH_CASES(eval, EVAL)
#undef TRAIN
#undef EVAL
#undef BATCH_CASES
static int sched_new_null_out(fixture *f) { (void)f; return lflex_schedule_new(NULL, "a: 2\n", 5); }
static int sched_new_null_yaml(fixture *f)
{
    lflex_schedule_t *s = (lflex_schedule_t *)(uintptr_t)0x10;
    (void)f;
    int rc = lflex_schedule_new(&s, NULL, 4);
    ck_assert_ptr_null(s);
    return rc;
}
static int eval_null_sched(fixture *f)
{
    double cdf;
    (void)f;
    return lflex_schedule_eval(NULL, 0.5, 1, 1, &cdf, NULL, NULL);
}
static int eval_t_negative(fixture *f) { return lflex_schedule_eval(f->s, -0.01, 1, 1, NULL, NULL, NULL); }
static int eval_t_above(fixture *f) { return lflex_schedule_eval(f->s, 1.01, 1, 1, NULL, NULL, NULL); }
static int eval_t_nan(fixture *f) { return lflex_schedule_eval(f->s, NAN, 1, 1, NULL, NULL, NULL); }
static int eval_b_zero(fixture *f) { return lflex_schedule_eval(f->s, 0.5, 0, 1, NULL, NULL, NULL); }
static int eval_b_inf(fixture *f) { return lflex_schedule_eval(f->s, 0.5, INFINITY, 1, NULL, NULL, NULL); }
static int eval_b_nan(fixture *f) { return lflex_schedule_eval(f->s, 0.5, NAN, 1, NULL, NULL, NULL); }
static int eval_c_negative(fixture *f) { return lflex_schedule_eval(f->s, 0.5, 1, -2, NULL, NULL, NULL); }
static int eval_c_nan(fixture *f) { return lflex_schedule_eval(f->s, 0.5, 1, NAN, NULL, NULL, NULL); }

static const arg_case arg_cases[] = {
    {"lflex_model_new", "out", new_null_out},
    {"lflex_model_new", "yaml NULL with a length", new_out_null_yaml},
    {"lflex_model_new_from_file", "out", from_file_null_out},
    {"lflex_model_new_from_file", "path", from_file_null_path},
    {"lflex_model_save", "model", save_null_model},
    {"lflex_model_save", "path", save_null_path},
    {"lflex_model_save", "empty path", save_empty_path},
    {"lflex_model_load", "out", load_null_out},
    {"lflex_model_load", "path", load_null_path},
    {"lflex_model_load", "empty path", load_empty_path},
    {"lflex_model_config", "model", config_null_model},
    {"lflex_model_config", "buf NULL with a capacity", config_null_buf},
    {"lflex_model_config", "cap too small", config_small_buf},
    {"lflex_model_get", "model", get_null_model},
    {"lflex_model_get", "value", get_null_value},
    {"lflex_model_get", "property 0", get_prop_zero},
    {"lflex_model_get", "property 99", get_prop_unknown},
    {"lflex_model_set_threads", "model", threads_null_model},
    {"lflex_model_set_threads", "n_threads -1", threads_negative},
    {"lflex_model_set_threads", "n_threads 1025", threads_too_many},
    {"lflex_model_encode", "model", encode_null_model},
    {"lflex_model_encode", "text", encode_null_text},
    {"lflex_model_encode", "ids NULL with a capacity", encode_null_ids},
    {"lflex_model_encode", "n", encode_null_n},
    {"lflex_model_encode", "unknown word", encode_unknown},
    {"lflex_model_encode", "cap too small", encode_small},
    {"lflex_model_decode", "model", decode_null_model},
    {"lflex_model_decode", "ids", decode_null_ids},
    {"lflex_model_decode", "buf NULL with a capacity", decode_null_buf},
    {"lflex_model_decode", "len", decode_null_len},
    {"lflex_model_decode", "id 9 of 9", decode_bad_id},
    {"lflex_model_decode", "id -1", decode_negative_id},
    {"lflex_model_decode", "cap too small", decode_small},
    {"lflex_model_train_step", "model", train_null_model},
    {"lflex_model_train_step", "tokens", train_null_tokens},
    {"lflex_model_train_step", "offsets", train_null_offsets},
    {"lflex_model_train_step", "n_seq 0", train_no_seq},
    {"lflex_model_train_step", "offsets[0] != 0", train_bad_offset0},
    {"lflex_model_train_step", "empty sequence", train_empty_seq},
    {"lflex_model_eval_loss", "model", eval_null_model},
    {"lflex_model_eval_loss", "tokens", eval_null_tokens},
    {"lflex_model_eval_loss", "offsets", eval_null_offsets},
    {"lflex_model_eval_loss", "n_seq 0", eval_no_seq},
    {"lflex_model_eval_loss", "offsets[0] != 0", eval_bad_offset0},
    {"lflex_model_eval_loss", "empty sequence", eval_empty_seq},
    {"lflex_schedule_new", "out", sched_new_null_out},
    {"lflex_schedule_new", "yaml NULL with a length", sched_new_null_yaml},
    {"lflex_schedule_eval", "schedule", eval_null_sched},
    {"lflex_schedule_eval", "t -0.01", eval_t_negative},
    {"lflex_schedule_eval", "t 1.01", eval_t_above},
    {"lflex_schedule_eval", "t NaN", eval_t_nan},
    {"lflex_schedule_eval", "b 0", eval_b_zero},
    {"lflex_schedule_eval", "b inf", eval_b_inf},
    {"lflex_schedule_eval", "b NaN", eval_b_nan},
    {"lflex_schedule_eval", "c -2", eval_c_negative},
    {"lflex_schedule_eval", "c NaN", eval_c_nan},
};

START_TEST(test_invalid_arguments)
{
    const arg_case *c = &arg_cases[_i];
    fixture f;
    fixture_open(&f);
    lflex_clear_error();
    int rc = c->run(&f);
    const char *msg = lflex_last_error();
    ck_assert_msg(rc == LFLEX_EINVAL, "%s (%s): got %d (%s)", c->call, c->what, rc, msg);
    ck_assert_int_eq(lflex_last_error_code(), LFLEX_EINVAL);
    /* the name followed by ':' so that lflex_model_new does not match lflex_model_new_from_file */
    char name[64];
    snprintf(name, sizeof name, "%s:", c->call);
    ck_assert_msg(strstr(msg, name) != NULL, "%s (%s): message '%s' does not name the call", c->call, c->what, msg);
    /* the model is still usable after a refused call */
    int64_t step = -1;
    ck_assert_int_eq(lflex_model_get(f.m, LFLEX_PROP_STEP, &step), LFLEX_OK);
    ck_assert_int_eq(step, 0);
    fixture_close(&f);
}
END_TEST

/* The calls without a status accept NULL. */
START_TEST(test_null_handles_without_status)
{
    lflex_model_free(NULL);
    lflex_schedule_free(NULL);
    ck_assert_ptr_null(lflex_model_schedule(NULL));
    /* a model's own schedule is not freed by lflex_schedule_free */
    lflex_model_t *m = new_model(model_yaml);
    const lflex_schedule_t *s = lflex_model_schedule(m);
    ck_assert_ptr_nonnull(s);
    lflex_schedule_free((lflex_schedule_t *)s);
    double cdf = -1;
    ck_assert_int_eq(lflex_schedule_eval(s, 0.5, 1, 1, &cdf, NULL, NULL), LFLEX_OK);
    LF_ASSERT_CLOSE(cdf, 0.5, 1e-15, 0); /* the default a = 1, with b = 1 */
    lflex_model_free(m);
}
END_TEST

/* ---- YAML errors are located -------------------------------------------- */

static void assert_located(const char *msg, const char *source, int line, int col, const char *key)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s:%d:%d:", source, line, col);
    ck_assert_msg(strstr(msg, prefix) != NULL, "message '%s' lacks '%s'", msg, prefix);
    ck_assert_msg(strstr(msg, key) != NULL, "message '%s' lacks '%s'", msg, key);
}

START_TEST(test_yaml_errors_located)
{
    lflex_model_t *m = NULL;
    /* "  d_model: " is 11 columns, so the value is at column 12 */
    const char *bad_type = "vocab: {size: 4}\nmodel:\n  d_model: wide\n";
    ck_assert_int_eq(lflex_model_new(&m, bad_type, strlen(bad_type)), LFLEX_EINVAL);
    ck_assert_ptr_null(m);
    assert_located(lflex_last_error(), "<config>", 3, 12, "model.d_model");
    const char *bad_range = "vocab: {size: 4}\nmodel: {n_heads: 1000}\n";
    ck_assert_int_eq(lflex_model_new(&m, bad_range, strlen(bad_range)), LFLEX_EINVAL);
    assert_located(lflex_last_error(), "<config>", 2, 18, "model.n_heads");
    const char *unknown = "vocab:\n  size: 4\n  tokenz: a b\n";
    ck_assert_int_eq(lflex_model_new(&m, unknown, strlen(unknown)), LFLEX_EINVAL);
    assert_located(lflex_last_error(), "<config>", 3, 3, "vocab.tokenz");

    lflex_schedule_t *s = NULL;
    const char *sched = "family: kumaraswamy\na: 50\n";
    ck_assert_int_eq(lflex_schedule_new(&s, sched, strlen(sched)), LFLEX_EINVAL);
    ck_assert_ptr_null(s);
    assert_located(lflex_last_error(), "<schedule>", 2, 4, "a");
    const char *family = "family: cubic\n";
    ck_assert_int_eq(lflex_schedule_new(&s, family, strlen(family)), LFLEX_EINVAL);
    assert_located(lflex_last_error(), "<schedule>", 1, 9, "kumaraswamy");

    /* from a file: the file's name in place of <config> */
    char path[] = "/tmp/lf_api_cfg_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bad_type, strlen(bad_type)), (ssize_t)strlen(bad_type));
    close(fd);
    ck_assert_int_eq(lflex_model_new_from_file(&m, path), LFLEX_EINVAL);
    assert_located(lflex_last_error(), path, 3, 12, "model.d_model");
    unlink(path);
    ck_assert_int_eq(lflex_model_new_from_file(&m, path), LFLEX_EIO); /* gone now */
    ck_assert_ptr_null(m);

    /* keys that are each valid but do not fit together, and a bad vocabulary */
    const char *heads = "vocab: {size: 4}\nmodel: {d_model: 16, n_heads: 3}\n";
    ck_assert_int_eq(lflex_model_new(&m, heads, strlen(heads)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "n_heads"));
    const char *l2r = "vocab: {size: 4}\nloss: {unmask_order: left_to_right}\n"; /* learned b_in by default */
    ck_assert_int_eq(lflex_model_new(&m, l2r, strlen(l2r)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "loss.unmask_order"));
    const char *l2r_fixed = "vocab: {size: 4}\nloss: {unmask_order: left_to_right}\nschedule: {family: linear}\n";
    ck_assert_int_eq(lflex_model_new(&m, l2r_fixed, strlen(l2r_fixed)), LFLEX_OK);
    lflex_model_free(m);
    m = NULL;
    const char *states = "vocab: {size: 4}\nloss: {states: 2}\n";
    ck_assert_int_eq(lflex_model_new(&m, states, strlen(states)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "loss.states"));
    /* configurations refused for a schedule key, each with the key's name in the message */
    static const char *const refused[][2] = {
        {"schedule: {late_fraction: 0.1}", "schedule.late_fraction"}, /* learned b_in */
        {"schedule: {family: linear, late_fraction: 0.1}", "schedule.late_fraction"},
        {"schedule: {learn_b_in: false, late_fraction: 0.1}\nloss: {time_weight: hazard}", "schedule.late_fraction"},
        {"schedule: {outside_in: 0.5}\ngenerator: {learn_unmask_rate: true}", "schedule.outside_in"},
        {"schedule: {family: linear, outside_in: 0.5}\ngenerator: {learn_unmask_rate: true}", "schedule.outside_in"},
        {"schedule: {learn_b_in: false, outside_in: 0.5}", "schedule.outside_in"},
        {"schedule: {learn_b_in: false, outside_in: 0.5, late_fraction: 0.1}\ngenerator: {learn_unmask_rate: true}",
         "schedule.outside_in"}};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "vocab: {size: 4}\n%s\n", refused[k][0]);
        ck_assert_int_eq(lflex_model_new(&m, yaml, strlen(yaml)), LFLEX_EINVAL);
        ck_assert_msg(strstr(lflex_last_error(), refused[k][1]), "%s: %s", refused[k][0], lflex_last_error());
    }
    static const char *const accepted[2] = {
        "vocab: {size: 4}\nschedule: {learn_b_in: false, b_in: 32, late_fraction: 0.1}\n",
        "vocab: {size: 4}\nschedule: {learn_b_in: false, b_in: 32, outside_in: 0.5}\n"
        "generator: {learn_unmask_rate: true}\n"};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(lflex_model_new(&m, accepted[k], strlen(accepted[k])), LFLEX_OK);
        lflex_model_free(m);
        m = NULL;
    }
    const char *dup = "vocab: {tokens: a b a}\n";
    ck_assert_int_eq(lflex_model_new(&m, dup, strlen(dup)), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "vocab.tokens"));
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "duplicate"));
    ck_assert_int_eq(lflex_model_new(&m, NULL, 0), LFLEX_EINVAL); /* defaults: no vocabulary */
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "vocab"));
    ck_assert_ptr_null(m);
}
END_TEST

/* ---- training batches ---------------------------------------------------- */

static const struct {
    int32_t tokens[16];
    uint8_t fixed[16];
    bool with_fixed;
    size_t offsets[4];
    size_t n_seq;
    const char *part1, *part2;
} bad_batches[] = {
    /* a token out of range in the second sequence */
    {{4, LFLEX_TOKEN_EOS, 5, 6, 99, LFLEX_TOKEN_EOS}, {0}, false, {0, 2, 6}, 2, "sequence 1, position 2", "99"},
    {{4, LFLEX_TOKEN_EOS, 5, -3, LFLEX_TOKEN_EOS}, {0}, false, {0, 2, 5}, 2, "sequence 1, position 1", "-3"},
    /* no final EOS */
    {{4, 5, 6}, {0}, false, {0, 3}, 1, "sequence 0, position 2", "EOS"},
    {{4, LFLEX_TOKEN_EOS, 4, 5}, {0}, false, {0, 2, 4}, 2, "sequence 1, position 1", "EOS"},
    /* an EOS that is not fixed */
    {{4, 5, LFLEX_TOKEN_EOS}, {0, 0, 0}, true, {0, 3}, 1, "sequence 0, position 2", "EOS"},
    /* a BOS that is not fixed */
    {{4, LFLEX_TOKEN_BOS, 5, LFLEX_TOKEN_EOS}, {0, 0, 0, 1}, true, {0, 4}, 1, "sequence 0, position 1", "BOS"},
    /* PAD and MASK never appear */
    {{4, LFLEX_TOKEN_PAD, LFLEX_TOKEN_EOS}, {0}, false, {0, 3}, 1, "sequence 0, position 1", "PAD"},
    {{LFLEX_TOKEN_MASK, LFLEX_TOKEN_EOS}, {1, 1}, true, {0, 2}, 1, "sequence 0, position 0", "MASK"},
    /* longer than model.max_len = 12 */
    {{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, LFLEX_TOKEN_EOS}, {0}, false, {0, 13}, 1, "sequence 0", "max_len"},
    /* an empty sequence, decreasing offsets, an empty batch */
    {{4, LFLEX_TOKEN_EOS}, {0}, false, {0, 2, 2}, 2, "sequence 1", "empty"},
    {{4, LFLEX_TOKEN_EOS}, {0}, false, {0, 2, 1, 2}, 3, "sequence 1", "offsets"},
    {{4, LFLEX_TOKEN_EOS}, {0}, false, {0, 2}, 0, "empty", "n_seq = 0"},
};

START_TEST(test_bad_batches)
{
    lflex_model_t *m = new_model(model_yaml);
    const uint8_t *fixed = bad_batches[_i].with_fixed ? bad_batches[_i].fixed : NULL;
    for (int k = 0; k < 2; k++) {
        lflex_train_stats st = {.struct_size = sizeof st};
        int rc = k == 0 ? lflex_model_train_step(m, bad_batches[_i].tokens, fixed, bad_batches[_i].offsets,
                                                 bad_batches[_i].n_seq, &st)
                        : lflex_model_eval_loss(m, bad_batches[_i].tokens, fixed, bad_batches[_i].offsets,
                                                bad_batches[_i].n_seq, 3, &st);
        const char *msg = lflex_last_error();
        ck_assert_msg(rc == LFLEX_EINVAL, "batch %d: %d (%s)", _i, rc, msg);
        ck_assert_msg(strstr(msg, bad_batches[_i].part1) && strstr(msg, bad_batches[_i].part2),
                      "batch %d: message '%s' lacks '%s' or '%s'", _i, msg, bad_batches[_i].part1,
                      bad_batches[_i].part2);
    }
    int64_t step = -1;
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_STEP, &step), LFLEX_OK);
    ck_assert_int_eq(step, 0);
    lflex_model_free(m);
}
END_TEST

START_TEST(test_good_batch)
{
    lflex_model_t *m = new_model(model_yaml);
    lflex_train_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    /* the same seed gives the same validation loss; evaluation changes nothing */
    ck_assert_int_eq(lflex_model_eval_loss(m, ok_tokens, ok_fixed, ok_offsets, 2, 7, &a), LFLEX_OK);
    ck_assert_int_eq(lflex_model_eval_loss(m, ok_tokens, ok_fixed, ok_offsets, 2, 7, &b), LFLEX_OK);
    ck_assert(a.loss == b.loss && isfinite(a.loss));
    ck_assert_uint_eq(a.step, 0);
    ck_assert_int_eq(lflex_model_train_step(m, ok_tokens, ok_fixed, ok_offsets, 2, &a), LFLEX_OK);
    ck_assert_uint_eq(a.step, 1);
    ck_assert(isfinite(a.loss) && isfinite(a.grad_norm) && a.grad_norm > 0);
    /* NULL fixed: only each sequence's last token is fixed */
    const int32_t plain[] = {4, 5, 6, LFLEX_TOKEN_EOS};
    const size_t off[] = {0, 4};
    ck_assert_int_eq(lflex_model_train_step(m, plain, NULL, off, 1, NULL), LFLEX_OK);
    int64_t step = 0;
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_STEP, &step), LFLEX_OK);
    ck_assert_int_eq(step, 2);
    lflex_model_free(m);
}
END_TEST

/* ---- vocabulary ---------------------------------------------------------- */

START_TEST(test_encode_decode)
{
    lflex_model_t *m = new_model(model_yaml);
    const char *text = "  the cat\tsat on \n mat ";
    int32_t ids[8];
    size_t n = 0;
    ck_assert_int_eq(lflex_model_encode(m, text, strlen(text), ids, 8, &n), LFLEX_OK);
    ck_assert_uint_eq(n, 5);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], LFLEX_TOKEN_FIRST_USER + (int32_t)i); /* the list order */
    char buf[64];
    size_t len = 0;
    ck_assert_int_eq(lflex_model_decode(m, ids, n, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "the cat sat on mat");
    ck_assert_uint_eq(len, strlen(buf));
    /* the size query, then the exact buffer */
    ck_assert_int_eq(lflex_model_decode(m, ids, n, NULL, 0, &len), LFLEX_EINVAL);
    ck_assert_uint_eq(len, 18);
    ck_assert_int_eq(lflex_model_decode(m, ids, n, buf, len + 1, &len), LFLEX_OK);
    ck_assert_int_eq(lflex_model_encode(m, "the mat", 7, NULL, 0, &n), LFLEX_EINVAL);
    ck_assert_uint_eq(n, 2);
    /* reserved spellings */
    const char *marked = "<bos> mat <eos>";
    ck_assert_int_eq(lflex_model_encode(m, marked, strlen(marked), ids, 8, &n), LFLEX_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], LFLEX_TOKEN_BOS);
    ck_assert_int_eq(ids[1], 8);
    ck_assert_int_eq(ids[2], LFLEX_TOKEN_EOS);
    const int32_t all[] = {LFLEX_TOKEN_PAD, LFLEX_TOKEN_MASK, LFLEX_TOKEN_BOS, LFLEX_TOKEN_EOS, 4};
    ck_assert_int_eq(lflex_model_decode(m, all, 5, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "<pad> <mask> <bos> <eos> the");
    /* an unknown word: its byte offset */
    ck_assert_int_eq(lflex_model_encode(m, "the dog", 7, ids, 8, &n), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "byte 4"));
    lflex_model_free(m);

    /* characters, multi-byte included */
    const char *cy = "model: {d_model: 16, n_heads: 2, n_layers: 0}\n"
                     "vocab: {tokenizer: char, tokens: \"ab\xc3\xa9 \"}\n";
    m = new_model(cy);
    const char *word = "\xc3\xa9" "a b";
    ck_assert_int_eq(lflex_model_encode(m, word, strlen(word), ids, 8, &n), LFLEX_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 6);
    ck_assert_int_eq(ids[1], 4);
    ck_assert_int_eq(ids[2], 7);
    ck_assert_int_eq(ids[3], 5);
    ck_assert_int_eq(lflex_model_decode(m, ids, n, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, word);
    lflex_model_free(m);

    /* a vocabulary of ids only */
    const char *sy = "model: {d_model: 16, n_heads: 2, n_layers: 0}\nvocab: {size: 3}\n";
    m = new_model(sy);
    ck_assert_int_eq(lflex_model_encode(m, "a", 1, ids, 8, &n), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "no text"));
    const int32_t three[] = {LFLEX_TOKEN_BOS, 6, LFLEX_TOKEN_EOS};
    ck_assert_int_eq(lflex_model_decode(m, three, 3, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "<bos> <6> <eos>");
    lflex_model_free(m);
}
END_TEST

/* ---- properties ---------------------------------------------------------- */

/* Parameters of one backbone and its heads, from doc/model-layout.md
 * (model.seg_pos, on by default: 4 tables of max_len + 1 rows). */
static int64_t backbone_params(int64_t V, int64_t d, int64_t n_layers, int64_t max_len)
{
    int64_t dc = d, dff = 4 * d;
    int64_t time = dc * 256 + dc + dc * dc + dc;
    int64_t block = 6 * d * dc + 6 * d + d + 3 * d * d + 3 * d + d * d + d + d + dff * d + dff + d * dff + d;
    return V * d + 4 * (max_len + 1) * d + time + n_layers * block;
}
static int64_t head_norm_params(int64_t d) { return 2 * d * d + 2 * d + d; }
static int64_t rate_head_params(int64_t d) { return head_norm_params(d) + d * d + d + d + 1; }

START_TEST(test_properties)
{
    lflex_model_t *m = new_model(model_yaml);
    int64_t v = -1;
    const int64_t V = 9, d = 16;
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_VOCAB_SIZE, &v), LFLEX_OK);
    ck_assert_int_eq(v, V);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_MAX_LEN, &v), LFLEX_OK);
    ck_assert_int_eq(v, 12);
    /* generator: backbone, token head, insertion head; auxiliary: backbone, b_in head */
    int64_t gen = backbone_params(V, d, 1, 12) + head_norm_params(d) + (V - 4) * d + (V - 4) + rate_head_params(d);
    int64_t aux = backbone_params(V, d, 1, 12) + rate_head_params(d);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_N_PARAMS, &v), LFLEX_OK);
    ck_assert_int_eq(v, gen + aux);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_STEP, &v), LFLEX_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_THREADS, &v), LFLEX_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(lflex_model_set_threads(m, 2), LFLEX_OK);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_THREADS, &v), LFLEX_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_LEARNED_ORDER, &v), LFLEX_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(lflex_model_train_step(m, ok_tokens, ok_fixed, ok_offsets, 2, NULL), LFLEX_OK);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_STEP, &v), LFLEX_OK);
    ck_assert_int_eq(v, 1);
    lflex_model_free(m);

    /* FlexMDM: no auxiliary network; a learned unmasking head adds one rate head */
    const char *lin = "model: {d_model: 16, n_heads: 2, n_layers: 2, max_len: 30}\nvocab: {size: 7}\n"
                      "schedule: {family: linear}\ngenerator: {learn_unmask_rate: true}\n";
    m = new_model(lin);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_LEARNED_ORDER, &v), LFLEX_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_VOCAB_SIZE, &v), LFLEX_OK);
    ck_assert_int_eq(v, 11);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_MAX_LEN, &v), LFLEX_OK);
    ck_assert_int_eq(v, 30);
    ck_assert_int_eq(lflex_model_get(m, LFLEX_PROP_N_PARAMS, &v), LFLEX_OK);
    ck_assert_int_eq(v, backbone_params(11, d, 2, 30) + head_norm_params(d) + 7 * d + 7 + 2 * rate_head_params(d));
    lflex_model_free(m);
}
END_TEST

/* ---- checkpoints --------------------------------------------------------- */

static char *config_text(const lflex_model_t *m)
{
    size_t len = 0;
    ck_assert_int_eq(lflex_model_config(m, NULL, 0, &len), LFLEX_EINVAL);
    ck_assert_uint_gt(len, 0);
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    size_t again = 0;
    ck_assert_int_eq(lflex_model_config(m, buf, len + 1, &again), LFLEX_OK);
    ck_assert_uint_eq(again, len);
    ck_assert_uint_eq(strlen(buf), len);
    return buf;
}

START_TEST(test_save_load)
{
    char dir[] = "/tmp/lf_api_ckpt_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[96], yaml_path[96];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(yaml_path, sizeof yaml_path, "%s/m.yaml", dir);
    lflex_model_t *m = new_model(model_yaml), *l = NULL;
    ck_assert_int_eq(lflex_model_train_step(m, ok_tokens, ok_fixed, ok_offsets, 2, NULL), LFLEX_OK);
    int rc = lflex_model_save(m, path);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    rc = lflex_model_load(&l, path);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    char *a = config_text(m), *b = config_text(l);
    ck_assert_str_eq(a, b);
    ck_assert_ptr_nonnull(strstr(a, "the cat sat on mat"));
    int64_t step = 0;
    ck_assert_int_eq(lflex_model_get(l, LFLEX_PROP_STEP, &step), LFLEX_OK);
    ck_assert_int_eq(step, 1);
    /* the vocabulary came back with it */
    int32_t ids[4];
    size_t n;
    ck_assert_int_eq(lflex_model_encode(l, "on mat", 6, ids, 4, &n), LFLEX_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 7);
    /* training resumes identically: the same validation loss after one more step each */
    lflex_train_stats sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
    ck_assert_int_eq(lflex_model_train_step(m, ok_tokens, ok_fixed, ok_offsets, 2, &sa), LFLEX_OK);
    ck_assert_int_eq(lflex_model_train_step(l, ok_tokens, ok_fixed, ok_offsets, 2, &sb), LFLEX_OK);
    ck_assert(sa.loss == sb.loss && sa.grad_norm == sb.grad_norm);
    ck_assert_int_eq(lflex_model_eval_loss(m, ok_tokens, ok_fixed, ok_offsets, 2, 11, &sa), LFLEX_OK);
    ck_assert_int_eq(lflex_model_eval_loss(l, ok_tokens, ok_fixed, ok_offsets, 2, 11, &sb), LFLEX_OK);
    ck_assert(sa.loss == sb.loss);
    /* the config text makes a model of the same config */
    FILE *fp = fopen(yaml_path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(a, fp);
    fclose(fp);
    lflex_model_t *c = NULL;
    ck_assert_int_eq(lflex_model_new_from_file(&c, yaml_path), LFLEX_OK);
    char *cc = config_text(c);
    ck_assert_str_eq(cc, a);
    free(cc);
    lflex_model_free(c);
    free(a);
    free(b);
    lflex_model_free(l);

    /* failures: not a checkpoint, a missing file, a missing directory */
    l = poison_model();
    ck_assert_int_eq(lflex_model_load(&l, yaml_path), LFLEX_EFORMAT);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), yaml_path));
    unlink(yaml_path);
    ck_assert_int_eq(lflex_model_load(&l, yaml_path), LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), yaml_path));
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none/m.safetensors", dir);
    ck_assert_int_eq(lflex_model_save(m, missing), LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), missing));
    lflex_model_free(m);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0); /* nothing else was left there */
}
END_TEST

/* ---- schedules ------------------------------------------------------------ */

static lflex_schedule_t *new_schedule(const char *yaml)
{
    lflex_schedule_t *s = NULL;
    int rc = lflex_schedule_new(&s, yaml, strlen(yaml));
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    return s;
}

/* F, the hazard and the three state probabilities against their closed
 * forms (the paper's schedules); the hazard also against F' / (1 - F) by
 * central differences. */
static void check_schedule(const lflex_schedule_t *s, double a, bool linear)
{
    const double ts[] = {0.02, 0.1, 0.3, 0.5, 0.77, 0.95};
    const double bs[] = {0.4, 1.0, 2.5};
    const double cs[] = {0.6, 1.0, 2.5};
    for (size_t it = 0; it < sizeof ts / sizeof ts[0]; it++)
        for (size_t ib = 0; ib < 3; ib++)
            for (size_t ic = 0; ic < 3; ic++) {
                double t = ts[it], b = linear ? 1 : bs[ib], c = linear ? 1 : cs[ic];
                double cdf, hazard, lp[3];
                ck_assert_int_eq(lflex_schedule_eval(s, t, bs[ib], cs[ic], &cdf, &hazard, lp), LFLEX_OK);
                double y = 1 - pow(t, a);
                LF_ASSERT_CLOSE(cdf, 1 - pow(y, b), 1e-14, 1e-12);
                LF_ASSERT_CLOSE(hazard, b * a * pow(t, a - 1) / y, 0, 1e-12);
                double h = 1e-6;
                double dF = ((1 - pow(1 - pow(t + h, a), b)) - (1 - pow(1 - pow(t - h, a), b))) / (2 * h);
                LF_ASSERT_CLOSE(hazard, dF / (1 - cdf), 0, 1e-6);
                double p_drop = pow(y, b);
                double p_mask = b == c ? b * pow(y, c) * -log(y) : b * pow(y, c) * (1 - pow(y, b - c)) / (b - c);
                LF_ASSERT_CLOSE(exp(lp[0]), p_drop, 1e-15, 1e-12);
                LF_ASSERT_CLOSE(exp(lp[1]), p_mask, 1e-15, 1e-10);
                LF_ASSERT_CLOSE(exp(lp[2]), 1 - p_drop - p_mask, 1e-14, 1e-10);
                LF_ASSERT_CLOSE(exp(lp[0]) + exp(lp[1]) + exp(lp[2]), 1.0, 1e-13, 0);
            }
    /* the ends of [0, 1] */
    double cdf = -1;
    ck_assert_int_eq(lflex_schedule_eval(s, 0, 1.5, 1.5, &cdf, NULL, NULL), LFLEX_OK);
    ck_assert(cdf == 0);
    ck_assert_int_eq(lflex_schedule_eval(s, 1, 1.5, 1.5, &cdf, NULL, NULL), LFLEX_OK);
    ck_assert(cdf == 1);
    ck_assert_int_eq(lflex_schedule_eval(s, 0.5, 1.5, 1.5, NULL, NULL, NULL), LFLEX_OK);
}

START_TEST(test_schedule_eval)
{
    lflex_schedule_t *s = new_schedule("family: kumaraswamy\na: 2.5\n");
    check_schedule(s, 2.5, false);
    lflex_schedule_free(s);
    s = new_schedule("a: 0.5\n");
    check_schedule(s, 0.5, false);
    lflex_schedule_free(s);
    s = new_schedule("family: linear\na: 3\n"); /* the linear family ignores a, b and c */
    check_schedule(s, 1.0, true);
    lflex_schedule_free(s);
    s = new_schedule("");
    check_schedule(s, 1.0, false); /* defaults: kumaraswamy with a = 1 */
    lflex_schedule_free(s);
    /* a model's schedule has the model's shape */
    lflex_model_t *m = new_model("model: {d_model: 16, n_heads: 2, n_layers: 0}\nvocab: {size: 3}\n"
                                 "schedule: {a: 1.7}\n");
    check_schedule(lflex_model_schedule(m), 1.7, false);
    lflex_model_free(m);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("api_model");
    TCase *tc = tcase_create("model_api");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_invalid_arguments, 0, (int)(sizeof arg_cases / sizeof arg_cases[0]));
    tcase_add_test(tc, test_null_handles_without_status);
    tcase_add_test(tc, test_yaml_errors_located);
    tcase_add_loop_test(tc, test_bad_batches, 0, (int)(sizeof bad_batches / sizeof bad_batches[0]));
    tcase_add_test(tc, test_good_batch);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_properties);
    tcase_add_test(tc, test_save_load);
    tcase_add_test(tc, test_schedule_eval);
    suite_add_tcase(s, tc);
    return s;
}
