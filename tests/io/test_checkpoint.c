/* Checkpoints: a saved and loaded model has the same weights, optimiser and
 * EMA state, step and random state, and takes the bit-identical next
 * training step; damaged, foreign and inconsistent files are refused with
 * the right code and the file (and tensor, offset) in the message, leaving
 * nothing allocated; saving replaces a file atomically. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/model_schema.h"
#include "io/safetensors.h"
#include "lf_error.h"
#include "tests/common/testutil.h"

static const char base_yaml[] = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12}\n"
                                "vocab: {size: 6}\n"
                                "train: {threads: 1, warmup: 0, lr: 0.01, seed: 5}\n";

/* The configurations checked: both families, EMA, the learned rate heads. */
static const char *const variants[] = {
    "schedule: {family: kumaraswamy}\n",
    "schedule: {family: linear}\n",
    "schedule: {family: kumaraswamy}\ntrain: {ema: 0.99}\n",
    "schedule: {family: kumaraswamy, learn_b_um: true}\ngenerator: {learn_unmask_rate: true}\n",
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

/* ---- helpers ------------------------------------------------------------ */

/* Linked with -Wl,--wrap=malloc,... (tests/meson.build): every allocation
 * of the test and the library's objects comes through here. While
 * alloc_cap is non-zero, a request above it fails, as under an address-space
 * limit, and the largest such request is kept in alloc_refused. */
static size_t alloc_cap, alloc_refused;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static bool over_cap(size_t n)
{
    if (!alloc_cap || n <= alloc_cap)
        return false;
    if (n > alloc_refused)
        alloc_refused = n;
    return true;
}

void *__wrap_malloc(size_t n) { return over_cap(n) ? NULL : __real_malloc(n); }
void *__wrap_realloc(void *p, size_t n) { return over_cap(n) ? NULL : __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return over_cap(n) ? ENOMEM : __real_posix_memalign(p, a, n); }
void *__wrap_calloc(size_t n, size_t m)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, m, &bytes))
        bytes = SIZE_MAX;
    return over_cap(bytes) ? NULL : __real_calloc(n, m);
}

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/lf_ckpt_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int count_files(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    char path[512];
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

static void file_in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void make_model(lf_model *m, const char *extra)
{
    lf_model_config *cfg = calloc(1, sizeof *cfg);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(lf_config_defaults(&lf_model_schema, cfg), LFLEX_OK);
    int rc = lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, base_yaml, strlen(base_yaml), "base");
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    rc = lf_config_parse(&lf_model_schema, cfg, sizeof *cfg, extra, strlen(extra), "variant");
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, cfg->tokenizer, cfg->tokens, cfg->vocab_size), LFLEX_OK);
    rc = lf_model_create(m, cfg, v.n_user);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    lf_vocab_free(&v);
    free(cfg);
}

/* A fixed batch: an unconditional sequence, a prompted one ([prompt] BOS
 * [target] EOS with prompt, BOS and EOS fixed) and the shortest one. */
static const int32_t batch_tokens[] = {4, 5, 6, LF_EOS, 7, 8, LF_BOS, 9, 4, 5, LF_EOS, 9, LF_EOS};
static const uint8_t batch_fixed[] = {0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1};
static const int32_t batch_offsets[] = {0, 4, 11, 13};

static void train_step(lf_model *m)
{
    lf_batch b = {batch_tokens, batch_fixed, batch_offsets, 3, 0, 0};
    lf_loss_parts parts;
    int rc = lf_model_loss(m, &b, NULL, true, &parts);
    ck_assert_msg(rc == LFLEX_OK, "loss: %s", lflex_last_error());
    double gn, lr;
    ck_assert_int_eq(lf_model_apply_step(m, parts.total, &gn, &lr), LFLEX_OK);
}

static void assert_same_buffer(const lf_real *a, const lf_real *b, int64_t n, const char *what)
{
    ck_assert_msg((a == NULL) == (b == NULL), "%s: present in one model only", what);
    if (a)
        ck_assert_msg(memcmp(a, b, (size_t)n * sizeof *a) == 0, "%s differ", what);
}

static void assert_same_model(const lf_model *a, const lf_model *b)
{
    char *ya = NULL, *yb = NULL;
    ck_assert_int_eq(lf_config_emit(&lf_model_schema, &a->cfg, &ya, NULL), LFLEX_OK);
    ck_assert_int_eq(lf_config_emit(&lf_model_schema, &b->cfg, &yb, NULL), LFLEX_OK);
    ck_assert_str_eq(ya, yb);
    free(ya);
    free(yb);
    ck_assert_int_eq(a->vocab, b->vocab);
    ck_assert_int_eq(a->params.n, b->params.n);
    ck_assert_int_eq(a->params.total, b->params.total);
    for (int i = 0; i < a->params.n; i++)
        ck_assert_str_eq(a->params.items[i]->name, b->params.items[i]->name);
    assert_same_buffer(a->params.data, b->params.data, a->params.total, "weights");
    assert_same_buffer(a->adam_m, b->adam_m, a->params.total, "first moments");
    assert_same_buffer(a->adam_v, b->adam_v, a->params.total, "second moments");
    assert_same_buffer(a->ema, b->ema, a->params.total, "EMA weights");
    ck_assert_uint_eq(a->step, b->step);
    for (int k = 0; k < 4; k++)
        ck_assert_uint_eq(a->rng.s[k], b->rng.s[k]);
}

static bool model_is_zero(const lf_model *m)
{
    const unsigned char *p = (const unsigned char *)m;
    for (size_t i = 0; i < sizeof *m; i++)
        if (p[i])
            return false;
    return true;
}

/* Load must fail with `code`, a message naming the file and `part` (may be
 * NULL), and leave the model zeroed. */
static void assert_load_fails(const char *path, int code, const char *part)
{
    lf_model m;
    memset(&m, 0x5a, sizeof m);
    int rc = lf_checkpoint_load(&m, path);
    ck_assert_msg(rc == code, "%s: got %d, expected %d (%s)", path, rc, code, lflex_last_error());
    const char *msg = lflex_last_error();
    ck_assert_msg(strstr(msg, path), "message '%s' does not name the file", msg);
    ck_assert_msg(part == NULL || strstr(msg, part), "message '%s' lacks '%s'", msg, part);
    ck_assert_msg(model_is_zero(&m), "a failed load left the model non-zero");
}

static unsigned char *read_raw(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void write_raw(const char *path, const unsigned char *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

/* A fresh test directory holding "good.safetensors", a saved model of the
 * variant; *path is its name and *other that of a second file `name` there
 * (the rewritten copy). */
static void save_variant(char path[128], char other[128], const char *name, int variant)
{
    make_dir();
    file_in_dir(path, 128, "good.safetensors");
    file_in_dir(other, 128, name);
    lf_model a;
    make_model(&a, variants[variant]);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    lf_model_destroy(&a);
}

/* A rewrite of a checkpoint with lf_st_write, as another tool would make
 * it: every tensor and metadata entry copied except those changed here. */
typedef struct {
    const char *drop;          /* tensor left out */
    const char *reshape;       /* tensor stored with its shape reversed */
    const char *retype;        /* tensor stored as I32 */
    bool add_extra;            /* one more tensor "gen.extra" */
    const char *poison;        /* tensor whose element poison_at is set to poison_value */
    int poison_at;
    float poison_value;
    const char *meta_key;      /* metadata replaced (value NULL: dropped) */
    const char *meta_value;
} rewrite_spec;

static void rewrite(const char *src, const char *dst, const rewrite_spec *w)
{
    lf_st_file *f = NULL;
    int rc = lf_st_read_file(&f, src);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    size_t n = lf_st_count(f), k = 0;
    lf_st_entry *e = calloc(n + 1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    float *poisoned = NULL;
    for (size_t i = 0; i < n; i++) {
        const lf_st_entry *s = lf_st_at(f, i);
        if (w->drop && strcmp(s->name, w->drop) == 0)
            continue;
        e[k] = *s;
        if (w->poison && strcmp(s->name, w->poison) == 0) {
            ck_assert_uint_gt(s->nbytes, 4 * (size_t)w->poison_at);
            poisoned = malloc(s->nbytes);
            ck_assert_ptr_nonnull(poisoned);
            memcpy(poisoned, s->data, s->nbytes);
            poisoned[w->poison_at] = w->poison_value;
            e[k].data = poisoned;
        }
        if (w->reshape && strcmp(s->name, w->reshape) == 0) {
            ck_assert_int_eq(s->ndim, 2);
            ck_assert_int_ne(s->shape[0], s->shape[1]);
            e[k].shape[0] = s->shape[1];
            e[k].shape[1] = s->shape[0];
        }
        if (w->retype && strcmp(s->name, w->retype) == 0)
            e[k].dtype = LF_ST_I32;
        k++;
    }
    static const float extra[3] = {1, 2, 3};
    if (w->add_extra)
        e[k++] = (lf_st_entry){.name = "gen.extra", .dtype = LF_ST_F32, .ndim = 1, .shape = {3},
                               .data = extra, .nbytes = sizeof extra};
    const char *keys[] = {"lflex.format", "lflex.config", "lflex.step", "lflex.rng"};
    lf_st_meta meta[4];
    size_t n_meta = 0;
    for (size_t i = 0; i < 4; i++) {
        const char *value = lf_st_meta_get(f, keys[i]);
        if (w->meta_key && strcmp(w->meta_key, keys[i]) == 0)
            value = w->meta_value;
        if (value)
            meta[n_meta++] = (lf_st_meta){keys[i], value};
    }
    rc = lf_st_write(dst, e, k, meta, n_meta);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    ck_assert(!w->poison || poisoned);
    free(poisoned);
    free(e);
    lf_st_free(f);
}

/* The byte offset of a tensor's data in a file, as the reader reports it. */
static uint64_t offset_of(const char *path, const char *name)
{
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    const lf_st_entry *e = lf_st_find(f, name);
    ck_assert_ptr_nonnull(e);
    uint64_t off = e->file_offset;
    lf_st_free(f);
    return off;
}

/* ---- round trips -------------------------------------------------------- */

START_TEST(test_round_trip_and_next_step)
{
    make_dir();
    char path[128];
    file_in_dir(path, sizeof path, "model.safetensors");
    lf_model a, b;
    make_model(&a, variants[_i]);
    train_step(&a);
    train_step(&a); /* moments, step and random state all away from their start */
    int rc = lf_checkpoint_save(&a, path);
    ck_assert_msg(rc == LFLEX_OK, "save: %s", lflex_last_error());
    ck_assert_int_eq(count_files(), 1); /* no temporary file left */
    rc = lf_checkpoint_load(&b, path);
    ck_assert_msg(rc == LFLEX_OK, "load: %s", lflex_last_error());
    assert_same_model(&a, &b);
    ck_assert_uint_eq(b.step, 2);
    ck_assert_int_eq(b.learned, a.learned);
    ck_assert(b.a == a.a);
    /* the next step draws the same times and states and updates identically */
    train_step(&a);
    train_step(&b);
    assert_same_model(&a, &b);
    lf_model_destroy(&b);
    lf_model_destroy(&a);
    remove_dir();
}
END_TEST

/* The file is plain safetensors with the names of doc/model-layout.md. */
START_TEST(test_file_contents)
{
    make_dir();
    char path[128];
    file_in_dir(path, sizeof path, "c.safetensors");
    lf_model a;
    make_model(&a, variants[2]); /* with EMA */
    train_step(&a);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    ck_assert_uint_eq(lf_st_count(f), 4 * (size_t)a.params.n);
    ck_assert_str_eq(lf_st_meta_get(f, "lflex.format"), "1");
    ck_assert_str_eq(lf_st_meta_get(f, "lflex.step"), "1");
    char rng[80];
    snprintf(rng, sizeof rng, "%016llx %016llx %016llx %016llx", (unsigned long long)a.rng.s[0],
             (unsigned long long)a.rng.s[1], (unsigned long long)a.rng.s[2], (unsigned long long)a.rng.s[3]);
    ck_assert_str_eq(lf_st_meta_get(f, "lflex.rng"), rng);
    const char *yaml = lf_st_meta_get(f, "lflex.config");
    ck_assert_ptr_nonnull(yaml);
    ck_assert_ptr_nonnull(strstr(yaml, "d_model: 16"));
    ck_assert_ptr_nonnull(strstr(yaml, "ema: 0.99"));
    /* vocabulary 4 + 6 ids, width 16; linear weights [out, in] */
    const struct {
        const char *name;
        int ndim;
        int64_t s0, s1;
    } expect[] = {
        {"gen.tok_emb", 2, 10, 16},
        {"gen.blocks.0.attn.wqkv", 2, 48, 16},
        {"gen.out.w", 2, 6, 16},
        {"optim.m.gen.out.b", 1, 6, 0},
        {"optim.v.aux.bin.w2", 2, 1, 16},
        {"ema.gen.blocks.0.mlp.w1", 2, 64, 16},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const lf_st_entry *e = lf_st_find(f, expect[i].name);
        ck_assert_msg(e != NULL, "%s missing", expect[i].name);
        ck_assert_int_eq(e->dtype, LF_ST_F32);
        ck_assert_int_eq(e->ndim, expect[i].ndim);
        ck_assert_int_eq(e->shape[0], expect[i].s0);
        if (e->ndim == 2)
            ck_assert_int_eq(e->shape[1], expect[i].s1);
    }
    /* every parameter's bytes under its own name and the three prefixes */
    for (int i = 0; i < a.params.n; i++) {
        const lf_param *p = a.params.items[i];
        const lf_real *src[4] = {a.params.data, a.adam_m, a.adam_v, a.ema};
        const char *prefix[4] = {"", "optim.m.", "optim.v.", "ema."};
        for (int k = 0; k < 4; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s%s", prefix[k], p->name);
            const lf_st_entry *e = lf_st_find(f, name);
            ck_assert_msg(e != NULL, "%s missing", name);
            ck_assert_uint_eq(e->nbytes, (size_t)p->numel * 4);
            ck_assert(memcmp(e->data, src[k] + p->offset, e->nbytes) == 0);
        }
    }
    lf_st_free(f);
    lf_model_destroy(&a);
    remove_dir();
}
END_TEST

START_TEST(test_save_over_existing_file)
{
    make_dir();
    char path[128];
    file_in_dir(path, sizeof path, "m.safetensors");
    lf_model a, b;
    make_model(&a, variants[0]);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    train_step(&a);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    ck_assert_int_eq(count_files(), 1);
    ck_assert_int_eq(lf_checkpoint_load(&b, path), LFLEX_OK);
    assert_same_model(&a, &b); /* the newer state */
    ck_assert_uint_eq(b.step, 1);
    lf_model_destroy(&b);

    /* a save that cannot happen leaves the old file as it was */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.safetensors", dir);
    int rc = lf_checkpoint_save(&a, missing);
    ck_assert_int_eq(rc, LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), missing));
    assert_load_fails(missing, LFLEX_EIO, NULL);
    ck_assert_int_eq(count_files(), 1);
    lf_model_destroy(&a);
    remove_dir();
}
END_TEST

/* ---- damaged and foreign files ----------------------------------------- */

START_TEST(test_truncated_and_flipped)
{
    make_dir();
    char path[128], bad[128];
    file_in_dir(path, sizeof path, "good.safetensors");
    file_in_dir(bad, sizeof bad, "bad.safetensors");
    lf_model a;
    make_model(&a, variants[1]);
    train_step(&a);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    lf_model_destroy(&a);
    size_t n;
    unsigned char *raw = read_raw(path, &n);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | raw[i];
    ck_assert_uint_lt(8 + header, n);
    const size_t cuts[] = {0, 3, 8, 9, 8 + (size_t)header / 2, 8 + (size_t)header, 8 + (size_t)header + 5,
                           (8 + (size_t)header + n) / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_raw(bad, raw, cuts[i]);
        assert_load_fails(bad, LFLEX_EFORMAT, NULL);
    }
    /* one flipped bit anywhere: in the length, the JSON, the metadata, the data */
    const size_t flips[] = {0, 5, 8, 8 + (size_t)header / 3, 8 + (size_t)header - 2, 8 + (size_t)header,
                            (8 + (size_t)header + n) / 2, n - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        raw[flips[i]] ^= 0x10;
        write_raw(bad, raw, n);
        raw[flips[i]] ^= 0x10;
        assert_load_fails(bad, LFLEX_EFORMAT, NULL);
    }
    write_raw(bad, raw, n); /* restored: loads again */
    lf_model b;
    ck_assert_int_eq(lf_checkpoint_load(&b, bad), LFLEX_OK);
    lf_model_destroy(&b);
    free(raw);
    char none[160];
    snprintf(none, sizeof none, "%s/absent.safetensors", dir);
    assert_load_fails(none, LFLEX_EIO, NULL);
    remove_dir();
}
END_TEST

static const struct {
    rewrite_spec w;
    int variant;
    int code;
    const char *part;
} foreign[] = {
    {{.meta_key = "lflex.format", .meta_value = "2"}, 0, LFLEX_EVERSION, "format version 2, this library reads 1"},
    {{.meta_key = "lflex.format", .meta_value = "12345678901234567890"}, 0, LFLEX_EVERSION, "version 12345678901234567890"},
    {{.meta_key = "lflex.format", .meta_value = NULL}, 0, LFLEX_EFORMAT, "lflex.format"},
    {{.meta_key = "lflex.format", .meta_value = "1.0"}, 0, LFLEX_EFORMAT, "not a version number"},
    {{.meta_key = "lflex.format", .meta_value = ""}, 0, LFLEX_EFORMAT, "not a version number"},
    {{.meta_key = "lflex.config", .meta_value = NULL}, 0, LFLEX_EFORMAT, "no lflex.config"},
    {{.meta_key = "lflex.config", .meta_value = "model: [1, 2\n"}, 0, LFLEX_EFORMAT, "lflex.config:"},
    {{.meta_key = "lflex.config", .meta_value = "model:\n  d_modle: 16\n"}, 0, LFLEX_EFORMAT, "lflex.config:2:"},
    {{.meta_key = "lflex.config", .meta_value = "model: {d_model: 32, n_heads: 2, n_layers: 1}\nvocab: {size: 6}\n"},
     0, LFLEX_EFORMAT, "is F32 [10, 16], the model needs F32 [10, 32]"},
    {{.meta_key = "lflex.config", .meta_value = "model: {d_model: 16, n_heads: 3}\nvocab: {size: 6}\n"}, 0,
     LFLEX_EFORMAT, "n_heads"},
    {{.meta_key = "lflex.config", .meta_value = "vocab: {tokens: a b a}\n"}, 0, LFLEX_EFORMAT, "duplicate token"},
    {{.meta_key = "lflex.step", .meta_value = NULL}, 0, LFLEX_EFORMAT, "lflex.step is missing"},
    {{.meta_key = "lflex.step", .meta_value = "-1"}, 0, LFLEX_EFORMAT, "lflex.step"},
    {{.meta_key = "lflex.step", .meta_value = "99999999999999999999"}, 0, LFLEX_EFORMAT, "lflex.step"},
    /* the next step would wrap to 0: bias corrections 1 - beta^0 = 0 */
    {{.meta_key = "lflex.step", .meta_value = "18446744073709551615"}, 0, LFLEX_EFORMAT,
     "lflex.step 18446744073709551615 is more than 9007199254740991 (2^53 - 1)"},
    {{.meta_key = "lflex.step", .meta_value = "9007199254740992"}, 0, LFLEX_EFORMAT, "lflex.step 9007199254740992"},
    {{.meta_key = "lflex.rng", .meta_value = NULL}, 0, LFLEX_EFORMAT, "lflex.rng is missing"},
    {{.meta_key = "lflex.rng", .meta_value = "0123456789abcdef 0123456789abcdef 0123456789abcdef"}, 0,
     LFLEX_EFORMAT, "lflex.rng"},
    {{.meta_key = "lflex.rng", .meta_value = "0000000000000000 0000000000000000 0000000000000000 0000000000000000"},
     0, LFLEX_EFORMAT, "lflex.rng"},
    {{.meta_key = "lflex.rng", .meta_value = "0123456789abcdef 0123456789abcdeg 0123456789abcdef 0123456789abcdef"},
     0, LFLEX_EFORMAT, "lflex.rng"},
    {{.drop = "gen.out.b"}, 0, LFLEX_EFORMAT, "'gen.out.b' is missing"},
    {{.drop = "optim.v.gen.tok_emb"}, 0, LFLEX_EFORMAT, "'optim.v.gen.tok_emb' is missing"},
    {{.drop = "ema.aux.bin.b2"}, 2, LFLEX_EFORMAT, "'ema.aux.bin.b2' is missing"},
    {{.drop = "optim.m.aux.tok_emb"}, 2, LFLEX_EFORMAT, "'optim.m.aux.tok_emb' is missing"},
    {{.add_extra = true}, 0, LFLEX_EFORMAT, "'gen.extra'"},
    {{.retype = "gen.blocks.0.mlp.w2"}, 1, LFLEX_EFORMAT, "'gen.blocks.0.mlp.w2' at byte offset"},
    /* values another tool may have written */
    {{.poison = "gen.blocks.0.attn.wqkv", .poison_at = 5, .poison_value = NAN}, 0, LFLEX_EFORMAT,
     "tensor 'gen.blocks.0.attn.wqkv' holds nan at element 5 (byte offset"},
    {{.poison = "gen.out.b", .poison_at = 0, .poison_value = -NAN}, 1, LFLEX_EFORMAT,
     "tensor 'gen.out.b' holds -nan at element 0"},
    {{.poison = "optim.m.gen.tok_emb", .poison_at = 159, .poison_value = INFINITY}, 0, LFLEX_EFORMAT,
     "tensor 'optim.m.gen.tok_emb' holds inf at element 159"},
    {{.poison = "ema.aux.bin.w2", .poison_at = 3, .poison_value = -INFINITY}, 2, LFLEX_EFORMAT,
     "tensor 'ema.aux.bin.w2' holds -inf at element 3"},
    {{.poison = "optim.v.gen.out.b", .poison_at = 1, .poison_value = -0.25f}, 0, LFLEX_EFORMAT,
     "tensor 'optim.v.gen.out.b' holds -0.25 at element 1 (byte offset"},
};

START_TEST(test_foreign_files)
{
    char path[128], bad[128];
    save_variant(path, bad, "bad.safetensors", foreign[_i].variant);
    rewrite(path, bad, &foreign[_i].w);
    assert_load_fails(bad, foreign[_i].code, foreign[_i].part);
    remove_dir();
}
END_TEST

/* A tensor of the wrong shape: named, with the offset of its data. */
START_TEST(test_wrong_shape_names_offset)
{
    char path[128], bad[128];
    save_variant(path, bad, "bad.safetensors", 0);
    lf_model a;
    const char *names[] = {"gen.blocks.0.attn.wqkv", "optim.m.aux.blocks.0.mlp.w1"};
    for (int i = 0; i < 2; i++) {
        rewrite(path, bad, &(rewrite_spec){.reshape = names[i]});
        char part[160];
        snprintf(part, sizeof part, "tensor '%s' at byte offset %llu", names[i],
                 (unsigned long long)offset_of(bad, names[i]));
        assert_load_fails(bad, LFLEX_EFORMAT, part);
    }
    /* EMA tensors in a checkpoint whose config has no EMA are foreign */
    make_model(&a, variants[2]);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    lf_model_destroy(&a);
    rewrite(path, bad, &(rewrite_spec){.meta_key = "lflex.config",
                                        .meta_value = "model: {d_model: 16, n_heads: 2, n_layers: 1, max_len: 12, seg_pos: true}\n"
                                                      "vocab: {size: 6}\n"});
    assert_load_fails(bad, LFLEX_EFORMAT, "'ema.");
    remove_dir();
}
END_TEST

/* A small file whose config declares a huge model is refused by comparing
 * its tensors with the parameters of that config, before the model is
 * allocated: with every allocation over 32 MB failing, loading still says
 * which tensor does not fit (it used to create the model first, hundreds of
 * MB to terabytes, and only then look at the tensors). */
START_TEST(test_huge_config_refused_before_allocation)
{
    char path[128], bad[128];
    save_variant(path, bad, "bad.safetensors", 0);
    lf_model b;
    static const struct {
        const char *config, *part;
    } huge[] = {
        /* about 150 M parameters: 600 MB for each of weights, gradients and moments */
        {"model: {d_model: 1024, n_heads: 8, n_layers: 4, max_len: 12}\nvocab: {size: 6}\n",
         "tensor 'gen.tok_emb' at byte offset"},
        /* terabytes */
        {"model: {d_model: 8192, n_heads: 64, n_layers: 256, mlp_ratio: 16, max_len: 65536, pos_emb: true}\n"
         "vocab: {size: 6}\n",
         "is F32 [10, 16], the model needs F32 [10, 8192]"},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        rewrite(path, bad, &(rewrite_spec){.meta_key = "lflex.config", .meta_value = huge[i].config});
        alloc_refused = 0;
        alloc_cap = 32u << 20;
        assert_load_fails(bad, LFLEX_EFORMAT, huge[i].part);
        alloc_cap = 0;
        ck_assert_msg(alloc_refused == 0, "loading %s asked for %zu bytes at once", huge[i].config, alloc_refused);
    }
    /* the cap leaves room for loading the model the file does hold */
    alloc_cap = 32u << 20;
    int rc = lf_checkpoint_load(&b, path);
    alloc_cap = 0;
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    ck_assert_uint_eq(alloc_refused, 0);
    lf_model_destroy(&b);
    remove_dir();
}
END_TEST

/* The largest step count loads; the model then refuses to count further
 * instead of wrapping (and one step below it is the last one taken). */
START_TEST(test_step_count_limit)
{
    char path[128], edge[128];
    save_variant(path, edge, "edge.safetensors", 2);
    lf_model b;
    rewrite(path, edge, &(rewrite_spec){.meta_key = "lflex.step", .meta_value = "9007199254740990"});
    int rc = lf_checkpoint_load(&b, edge);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    ck_assert_uint_eq(b.step, LF_STEP_MAX - 1);
    train_step(&b);
    ck_assert_uint_eq(b.step, LF_STEP_MAX);
    lf_batch batch = {batch_tokens, batch_fixed, batch_offsets, 3, 0, 0};
    lf_loss_parts parts;
    ck_assert_int_eq(lf_model_loss(&b, &batch, NULL, true, &parts), LFLEX_OK);
    double gn, lr;
    ck_assert_int_eq(lf_model_apply_step(&b, parts.total, &gn, &lr), LFLEX_ESTATE);
    ck_assert_uint_eq(b.step, LF_STEP_MAX);
    for (int64_t i = 0; i < b.params.total; i++)
        ck_assert(isfinite(b.params.data[i]) && isfinite(b.adam_m[i]) && isfinite(b.adam_v[i]) &&
                  isfinite(b.ema[i]));
    lf_model_destroy(&b);
    remove_dir();
}
END_TEST

/* Saving and loading remove the temporary files that killed saves of the
 * same checkpoint left behind (named <file>.tmp-<pid>-<hex>), and nothing
 * else. */
START_TEST(test_stale_temporary_files_removed)
{
    make_dir();
    char path[128], other[160];
    file_in_dir(path, sizeof path, "m.safetensors");
    file_in_dir(other, sizeof other, "m.safetensors.tmp-12-x"); /* not a temporary file's name */
    lf_model a, b;
    make_model(&a, variants[0]);
    for (int round = 0; round < 2; round++) {
        char stale[2][160];
        for (int k = 0; k < 2; k++) {
            snprintf(stale[k], sizeof stale[k], "%s.tmp-%d-%x", path, 4242 + k, 0xbeef + round);
            write_raw(stale[k], (const unsigned char *)"partial", 7);
        }
        write_raw(other, (const unsigned char *)"keep", 4);
        int rc = round == 0 ? lf_checkpoint_save(&a, path) : lf_checkpoint_load(&b, path);
        ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
        for (int k = 0; k < 2; k++)
            ck_assert_msg(access(stale[k], F_OK) != 0, "%s left after a %s", stale[k], round ? "load" : "save");
        ck_assert_int_eq(access(other, F_OK), 0);
        ck_assert_int_eq(count_files(), 2);
    }
    lf_model_destroy(&b);
    lf_model_destroy(&a);
    remove_dir();
}
END_TEST

/* A configuration nested 100 000 deep (25 s in libyaml's scanner) is
 * refused at its 65th level, before the rest is read. */
START_TEST(test_deep_config_refused_at_once)
{
    char path[128], bad[128];
    save_variant(path, bad, "bad.safetensors", 0);
    enum { LEVELS = 100000 };
    char *yaml = malloc(2 * LEVELS + 32);
    ck_assert_ptr_nonnull(yaml);
    size_t k = (size_t)sprintf(yaml, "vocab: {size: 6}\nmodel: ");
    memset(yaml + k, '[', LEVELS);
    memset(yaml + k + LEVELS, ']', LEVELS);
    yaml[k + 2 * LEVELS] = '\0';
    rewrite(path, bad, &(rewrite_spec){.meta_key = "lflex.config", .meta_value = yaml});
    free(yaml);
    assert_load_fails(bad, LFLEX_EFORMAT, "lflex.config:2:71: a sequence nested deeper than 64 levels");
    remove_dir();
}
END_TEST

/* A checkpoint written before a key existed lacks it in its stored
 * configuration (the library stores every key it knows): the key reads as
 * what its absence meant then, not as today's default, so changing a
 * default never changes what an old checkpoint is. */
START_TEST(test_absent_keys_keep_their_old_meaning)
{
    make_dir();
    char path[128], old[128];
    file_in_dir(path, sizeof path, "new.safetensors");
    file_in_dir(old, sizeof old, "old.safetensors");
    lf_model a, b;
    make_model(&a, variants[0]);
    ck_assert_int_eq(a.cfg.time_weight, LF_TW_FLAT); /* today's default */
    ck_assert_int_eq(a.cfg.kl_reduction, LF_REDUCE_MEAN);
    ck_assert_int_eq(lf_checkpoint_save(&a, path), LFLEX_OK);
    lf_model_destroy(&a);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    const char *yaml = lf_st_meta_get(f, "lflex.config");
    ck_assert_ptr_nonnull(yaml);
    /* the stored config without the lines of two later keys */
    char *edited = malloc(strlen(yaml) + 1), *o = edited;
    ck_assert_ptr_nonnull(edited);
    int dropped = 0;
    for (const char *l = yaml; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l + 1) : strlen(l);
        if (strstr(l, "time_weight:") == l + 2 || strstr(l, "kl_reduction:") == l + 2)
            dropped++;
        else {
            memcpy(o, l, n);
            o += n;
        }
        l += n;
    }
    *o = '\0';
    lf_st_free(f);
    ck_assert_int_eq(dropped, 2);
    rewrite(path, old, &(rewrite_spec){.meta_key = "lflex.config", .meta_value = edited});
    free(edited);
    ck_assert_int_eq(lf_checkpoint_load(&b, old), LFLEX_OK);
    ck_assert_int_eq(b.cfg.time_weight, LF_TW_HAZARD);
    ck_assert_int_eq(b.cfg.kl_reduction, LF_REDUCE_SUM);
    lf_model_destroy(&b);
    ck_assert_int_eq(lf_checkpoint_load(&b, path), LFLEX_OK);
    ck_assert_int_eq(b.cfg.time_weight, LF_TW_FLAT);
    ck_assert_int_eq(b.cfg.kl_reduction, LF_REDUCE_MEAN);
    lf_model_destroy(&b);
    remove_dir();
}
END_TEST

/* The checkpoint seeds of the safetensors fuzz corpus (written by
 * tests/fuzz/make_safetensors_corpus.py) still mean what their names say:
 * the valid ones load, each damaged one is refused by the check it was made
 * for. Otherwise a change of the model's layout would leave the fuzzer
 * mutating files that all stop at the first tensor. */
static const struct {
    const char *name;
    int code;
    const char *part;
} corpus_seeds[] = {
    {"ckpt_valid_tiny", LFLEX_OK, NULL},
    {"ckpt_valid_learned_ema", LFLEX_OK, NULL},
    {"ckpt_valid_size_only_checksummed", LFLEX_OK, NULL},
    {"ckpt_bad_format_version", LFLEX_EVERSION, "format version 2"},
    {"ckpt_bad_format_text", LFLEX_EFORMAT, "lflex.format '1x' is not a version number"},
    {"ckpt_bad_no_config", LFLEX_EFORMAT, "no lflex.config"},
    {"ckpt_bad_config_key", LFLEX_EFORMAT, "unknown key 'nonsense'"},
    {"ckpt_bad_config_heads", LFLEX_EFORMAT, "model.d_model / model.n_heads"},
    {"ckpt_bad_config_vocab", LFLEX_EFORMAT, "duplicate token"},
    {"ckpt_bad_step_too_large", LFLEX_EFORMAT, "lflex.step 9007199254740992 is more than"},
    {"ckpt_bad_step_text", LFLEX_EFORMAT, "lflex.step is not a decimal step count"},
    {"ckpt_bad_rng_zero", LFLEX_EFORMAT, "lflex.rng is not"},
    {"ckpt_bad_rng_short", LFLEX_EFORMAT, "lflex.rng is not"},
    {"ckpt_bad_tensor_missing", LFLEX_EFORMAT, "tensor 'optim.v.gen.tok_emb' is missing"},
    {"ckpt_bad_tensor_extra", LFLEX_EFORMAT, "tensor 'extra' at byte offset"},
    {"ckpt_bad_tensor_shape", LFLEX_EFORMAT, "is F32 [8, 6], the model needs F32 [6, 8]"},
    {"ckpt_bad_tensor_dtype", LFLEX_EFORMAT, "is I32 [6, 8], the model needs F32 [6, 8]"},
    {"ckpt_bad_tensor_nan", LFLEX_EFORMAT, "tensor 'gen.tok_emb' holds nan at element 3"},
    {"ckpt_bad_moment_negative", LFLEX_EFORMAT, "a second moment is never negative"},
    {"ckpt_bad_ema_inf", LFLEX_EFORMAT, "tensor 'ema.gen.tok_emb' holds inf"},
};
#define CORPUS_DIR LF_TEST_SOURCE_ROOT "/tests/fuzz/corpus/safetensors"

START_TEST(test_fuzz_corpus_checkpoints)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, corpus_seeds[_i].name);
    if (corpus_seeds[_i].code != LFLEX_OK) {
        assert_load_fails(path, corpus_seeds[_i].code, corpus_seeds[_i].part);
        return;
    }
    lf_model m;
    int rc = lf_checkpoint_load(&m, path);
    ck_assert_msg(rc == LFLEX_OK, "%s", lflex_last_error());
    ck_assert(m.params.n > 0);
    lf_model_destroy(&m);
}
END_TEST

/* every ckpt_* file of the corpus is in the table above */
START_TEST(test_fuzz_corpus_checkpoints_listed)
{
    DIR *d = opendir(CORPUS_DIR);
    ck_assert_msg(d != NULL, "cannot open %s", CORPUS_DIR);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "ckpt_", 5) != 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < sizeof corpus_seeds / sizeof corpus_seeds[0]; i++)
            listed |= strcmp(e->d_name, corpus_seeds[i].name) == 0;
        ck_assert_msg(listed, "%s/%s is not in corpus_seeds[] of %s", CORPUS_DIR, e->d_name, __FILE__);
        n++;
    }
    closedir(d);
    ck_assert_int_eq(n, (int)(sizeof corpus_seeds / sizeof corpus_seeds[0]));
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("io_checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_round_trip_and_next_step, 0, N_VARIANTS);
    tcase_add_test(tc, test_file_contents);
    tcase_add_test(tc, test_save_over_existing_file);
    tcase_add_test(tc, test_truncated_and_flipped);
    tcase_add_loop_test(tc, test_foreign_files, 0, (int)(sizeof foreign / sizeof foreign[0]));
    tcase_add_test(tc, test_wrong_shape_names_offset);
    tcase_add_test(tc, test_deep_config_refused_at_once);
    tcase_add_test(tc, test_absent_keys_keep_their_old_meaning);
    tcase_add_test(tc, test_huge_config_refused_before_allocation);
    tcase_add_test(tc, test_step_count_limit);
    tcase_add_test(tc, test_stale_temporary_files_removed);
    tcase_add_loop_test(tc, test_fuzz_corpus_checkpoints, 0, (int)(sizeof corpus_seeds / sizeof corpus_seeds[0]));
    tcase_add_test(tc, test_fuzz_corpus_checkpoints_listed);
    suite_add_tcase(s, tc);
    return s;
}
