/* safetensors reading and writing: round trips, files built by hand (as
 * another tool writes them), the writer's header checked with jansson, every
 * kind of malformed file, the checksum against every single-bit flip, I/O
 * errors and atomic replacement when a save fails or is killed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "lflex/lflex.h"
#include "tests/common/testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* The CRC-32 bit by bit, straight from the definition (reflected IEEE
 * polynomial, initial and final inversion): the reference for the table. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ ((crc & 1u) ? 0xedb88320u : 0u);
    }
    return ~crc;
}

static void make_dir(char *dir)
{
    strcpy(dir, "/tmp/lf_st_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir)
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

static uint64_t header_len_of(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* A file built without the writer: length prefix, the header text as given,
 * then the data. */
static unsigned char *build_raw(const char *header, const void *data, size_t data_len,
                                size_t *len)
{
    size_t h = strlen(header);
    unsigned char *b = malloc(8 + h + data_len + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    if (data_len)
        memcpy(b + 8 + h, data, data_len);
    *len = 8 + h + data_len;
    return b;
}

/* Offset of the checksum digits in a file, found by the test itself. */
static size_t crc_digits_offset(const unsigned char *b, size_t len)
{
    static const char key[] = "\"lflex.crc32\":\"";
    for (size_t i = 0; i + sizeof key - 1 + 8 <= len; i++)
        if (memcmp(b + i, key, sizeof key - 1) == 0)
            return i + sizeof key - 1;
    ck_abort_msg("no checksum in the file");
    return 0;
}

/* The checksum by the rule in safetensors.h: CRC of the file with the
 * digits read as '0'. */
static uint32_t expected_crc(const unsigned char *b, size_t len)
{
    size_t at = crc_digits_offset(b, len);
    unsigned char *copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, b, len);
    memset(copy + at, '0', 8);
    uint32_t crc = crc32_bitwise(copy, len);
    free(copy);
    return crc;
}

static void expect_format_error(const unsigned char *b, size_t len, const char *what,
                                long long at)
{
    lf_st_file *f = (lf_st_file *)&f; /* must be reset to NULL */
    int st = lf_st_read_buffer(&f, b, len, "case.safetensors");
    const char *msg = lflex_last_error();
    ck_assert_msg(st == LFLEX_EFORMAT, "status %d, message '%s' (expected '%s')", st, msg, what);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(msg, "case.safetensors: byte ") == msg, "message '%s'", msg);
    ck_assert_msg(strstr(msg, what), "message '%s' lacks '%s'", msg, what);
    if (at >= 0) {
        char where[64];
        snprintf(where, sizeof where, "byte %lld:", at);
        ck_assert_msg(strstr(msg, where), "message '%s' does not point at byte %lld", msg, at);
    }
}

/* A set of tensors of every dtype, ranks 0 to 4, an empty one and an odd
 * byte count (so that the next tensor is unaligned in the file). */
typedef struct {
    float w[12];
    int64_t step;
    int32_t ids[12];
    uint8_t bytes[5];
    double d[2];
    lf_st_entry e[6];
} sample_set;

static void make_sample(sample_set *s, uint64_t seed)
{
    lf_test_rng rng = {seed};
    for (int i = 0; i < 12; i++) {
        s->w[i] = (float)lf_test_range(&rng, -3, 3);
        s->ids[i] = (int32_t)lf_test_int(&rng, -100000, 100000);
    }
    s->step = 123456789012LL + (int64_t)seed;
    for (int i = 0; i < 5; i++)
        s->bytes[i] = (uint8_t)lf_test_int(&rng, 0, 255);
    s->d[0] = lf_test_uniform(&rng);
    s->d[1] = -1e300;
    lf_st_entry e[6] = {
        {"w", LF_ST_F32, 2, {3, 4}, s->w, sizeof s->w, 0},
        {"step", LF_ST_I64, 0, {0}, &s->step, 8, 0},
        {"empty", LF_ST_F32, 2, {0, 5}, NULL, 0, 0},
        {"bytes", LF_ST_U8, 1, {5}, s->bytes, 5, 0},
        {"ids", LF_ST_I32, 4, {2, 1, 3, 2}, s->ids, sizeof s->ids, 0},
        {"d", LF_ST_F64, 1, {2}, s->d, sizeof s->d, 0},
    };
    memcpy(s->e, e, sizeof e);
}

static void check_same_tensors(const lf_st_file *f, const lf_st_entry *want, size_t n)
{
    ck_assert_uint_eq(lf_st_count(f), n);
    for (size_t i = 0; i < n; i++) {
        const lf_st_entry *got = lf_st_at(f, i);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got->name, want[i].name);
        ck_assert_ptr_eq(lf_st_find(f, want[i].name), got);
        ck_assert_int_eq(got->dtype, want[i].dtype);
        ck_assert_int_eq(got->ndim, want[i].ndim);
        for (int d = 0; d < want[i].ndim; d++)
            ck_assert_int_eq(got->shape[d], want[i].shape[d]);
        ck_assert_uint_eq(got->nbytes, want[i].nbytes);
        if (want[i].nbytes)
            ck_assert_mem_eq(got->data, want[i].data, want[i].nbytes);
    }
    ck_assert_ptr_null(lf_st_at(f, n));
    ck_assert_ptr_null(lf_st_find(f, "absent"));
}

/* ---- CRC ----------------------------------------------------------------- */

START_TEST(test_crc32)
{
    ck_assert_uint_eq(lf_crc32_update(0, "123456789", 9), 0xCBF43926u); /* the standard check */
    ck_assert_uint_eq(lf_crc32_update(0, "", 0), 0);
    /* every table entry, and random data fed in random pieces */
    unsigned char buf[3000];
    for (int b = 0; b < 256; b++) {
        buf[0] = (unsigned char)b;
        ck_assert_uint_eq(lf_crc32_update(0, buf, 1), crc32_bitwise(buf, 1));
    }
    lf_test_rng rng = {7};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)lf_test_next(&rng);
    for (int trial = 0; trial < 20; trial++) {
        size_t n = (size_t)lf_test_int(&rng, 0, sizeof buf);
        uint32_t crc = 0;
        for (size_t done = 0; done < n;) {
            size_t k = (size_t)lf_test_int(&rng, 0, (int64_t)(n - done));
            crc = lf_crc32_update(crc, buf + done, k);
            done += k;
        }
        ck_assert_uint_eq(crc, crc32_bitwise(buf, n));
    }
}
END_TEST

/* ---- round trips --------------------------------------------------------- */

START_TEST(test_roundtrip_file_and_buffer)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    sample_set s;
    make_sample(&s, 1);
    lf_st_meta meta[] = {{"config", "d_model: 8\nlayers: [a, b]\n"}, {"vocab", "\xc3\xbcnicode"}};
    ck_assert_int_eq(lf_st_write(path, s.e, 6, meta, 2), LFLEX_OK);
    ck_assert_int_eq(count_files(dir), 1);

    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    check_same_tensors(f, s.e, 6);
    ck_assert_str_eq(lf_st_meta_get(f, "config"), meta[0].value);
    ck_assert_str_eq(lf_st_meta_get(f, "vocab"), meta[1].value);
    ck_assert_ptr_nonnull(strstr(lf_st_meta_get(f, LF_ST_KEY_WRITER), "liblflex "));
    ck_assert_uint_eq(strlen(lf_st_meta_get(f, LF_ST_KEY_CRC)), 8);
    ck_assert_ptr_null(lf_st_meta_get(f, "absent"));

    /* file_offset locates the data in the file; the data section starts at
     * a multiple of 8, in the file and in memory */
    size_t len;
    unsigned char *raw = read_raw(path, &len);
    uint64_t data_start = 8 + header_len_of(raw);
    ck_assert_uint_eq(data_start % 8, 0);
    for (size_t i = 0; i < 6; i++) {
        const lf_st_entry *e = lf_st_at(f, i);
        ck_assert_uint_ge(e->file_offset, data_start);
        ck_assert_uint_le(e->file_offset + e->nbytes, len);
        ck_assert_mem_eq(raw + e->file_offset, s.e[i].data ? s.e[i].data : "", e->nbytes);
        ck_assert_uint_eq((uintptr_t)e->data % 8, (e->file_offset - data_start) % 8);
    }
    lf_st_free(f);

    /* from a buffer: the bytes are copied, the source may go away */
    ck_assert_int_eq(lf_st_read_buffer(&f, raw, len, NULL), LFLEX_OK);
    memset(raw, 0, len);
    free(raw);
    check_same_tensors(f, s.e, 6);
    lf_st_free(f);
    lf_st_free(NULL);
    remove_dir(dir);
}
END_TEST

START_TEST(test_empty_file_and_overwrite)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/e.st", dir);
    ck_assert_int_eq(lf_st_write(path, NULL, 0, NULL, 0), LFLEX_OK);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    ck_assert_uint_eq(lf_st_count(f), 0);
    ck_assert_ptr_nonnull(lf_st_meta_get(f, LF_ST_KEY_CRC));
    lf_st_free(f);
    sample_set s;
    make_sample(&s, 2);
    ck_assert_int_eq(lf_st_write(path, s.e, 6, NULL, 0), LFLEX_OK); /* replaces it */
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    check_same_tensors(f, s.e, 6);
    lf_st_free(f);
    ck_assert_int_eq(count_files(dir), 1);
    remove_dir(dir);
}
END_TEST

/* A file as another tool (e.g. Python's safetensors) writes it: header
 * order differs from data order, trailing spaces, no liblflex checksum. */
START_TEST(test_handmade_buffer)
{
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
    const unsigned char data[16] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0, /* 1, -2.5 */
                                    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    size_t len;
    unsigned char *b = build_raw(header, data, sizeof data, &len);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_buffer(&f, b, len, "py.safetensors"), LFLEX_OK);
    ck_assert_uint_eq(lf_st_count(f), 2);
    const lf_st_entry *eb = lf_st_at(f, 0), *ea = lf_st_at(f, 1);
    ck_assert_str_eq(eb->name, "b");
    ck_assert_int_eq(eb->dtype, LF_ST_I64);
    ck_assert_int_eq(eb->ndim, 0);
    ck_assert_uint_eq(eb->file_offset, 8 + strlen(header) + 8);
    int64_t iv;
    memcpy(&iv, eb->data, 8);
    ck_assert(iv == 0x0102030405060708LL);
    ck_assert_str_eq(ea->name, "a");
    ck_assert_int_eq(ea->ndim, 1);
    ck_assert_int_eq(ea->shape[0], 2);
    float fv[2];
    memcpy(fv, ea->data, 8);
    ck_assert(fv[0] == 1.0f && fv[1] == -2.5f);
    ck_assert_str_eq(lf_st_meta_get(f, "format"), "pt");
    ck_assert_ptr_null(lf_st_meta_get(f, LF_ST_KEY_CRC));
    lf_st_free(f);
    free(b);

    /* no metadata, no tensors at all */
    b = build_raw("{}", NULL, 0, &len);
    ck_assert_int_eq(lf_st_read_buffer(&f, b, len, "x"), LFLEX_OK);
    ck_assert_uint_eq(lf_st_count(f), 0);
    lf_st_free(f);
    free(b);
}
END_TEST

/* A header of `n` one-element F32 tensors "p.<i>.w", data in the reverse
 * order of the header; tensor `bad` (if < n) gets the dtype "F16". */
static unsigned char *build_many(size_t n, size_t bad, size_t *len, size_t *bad_key_at)
{
    size_t cap = 32 + n * 80, h = 0;
    char *header = malloc(cap);
    ck_assert_ptr_nonnull(header);
    h += (size_t)snprintf(header + h, cap - h, "{");
    for (size_t i = 0; i < n; i++) {
        size_t slot = n - 1 - i;
        if (i == bad)
            *bad_key_at = 8 + h + (i ? 1 : 0);
        h += (size_t)snprintf(header + h, cap - h,
                              "%s\"p.%zu.w\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", i, i == bad ? "F16" : "F32", 4 * slot, 4 * slot + 4);
    }
    snprintf(header + h, cap - h, "}");
    float *data = malloc(4 * n);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < n; i++)
        data[n - 1 - i] = (float)i;
    unsigned char *b = build_raw(header, data, 4 * n, len);
    free(data);
    free(header);
    return b;
}

/* 100 000 tensors: every one found by name at its place, names that are not
 * there are not found, and a fault in the last entry is reported at its key.
 * (Reading once looked up each tensor's key from the start of the header,
 * quadratic in its size: this file took minutes. bench/bench_safetensors.c
 * measures the scaling; this test only needs to finish.) */
START_TEST(test_large_header)
{
    enum { N = 100000 };
    size_t len, unused = 0;
    unsigned char *b = build_many(N, N, &len, &unused);
    lf_st_file *f = NULL;
    int st = lf_st_read_buffer(&f, b, len, "many.safetensors");
    ck_assert_msg(st == LFLEX_OK, "%s", lflex_last_error());
    ck_assert_uint_eq(lf_st_count(f), N);
    uint64_t data_start = len - 4 * (uint64_t)N;
    char name[32];
    for (size_t i = 0; i < N; i++) {
        snprintf(name, sizeof name, "p.%zu.w", i);
        const lf_st_entry *e = lf_st_find(f, name);
        ck_assert_msg(e != NULL, "%s not found", name);
        ck_assert_ptr_eq(e, lf_st_at(f, i)); /* header order kept */
        ck_assert_str_eq(e->name, name);
        ck_assert_uint_eq(e->file_offset, data_start + 4 * (N - 1 - i));
        float v;
        memcpy(&v, e->data, 4);
        ck_assert(v == (float)i);
    }
    const char *absent[] = {"p.", "p.1", "p.1.", "p.1.ww", "p.100000.w", "", "p.-1.w", "q.0.w"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        ck_assert_ptr_null(lf_st_find(f, absent[i]));
    ck_assert_ptr_null(lf_st_find(f, NULL));
    ck_assert_ptr_null(lf_st_find(NULL, "p.0.w"));
    lf_st_free(f);
    free(b);

    size_t key_at = 0;
    b = build_many(N, N - 1, &len, &key_at);
    char where[64];
    snprintf(where, sizeof where, "byte %zu:", key_at);
    f = (lf_st_file *)&f;
    ck_assert_int_eq(lf_st_read_buffer(&f, b, len, "many.safetensors"), LFLEX_EFORMAT);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(lflex_last_error(), where) && strstr(lflex_last_error(), "tensor 'p.99999.w'"),
                  "message '%s' should point at %s", lflex_last_error(), where);
    free(b);
}
END_TEST

/* The writer's header, parsed by jansson on its own: exactly the expected
 * keys and values, and a checksum that the reference CRC agrees with. */
START_TEST(test_writer_header_is_plain_json)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/h.st", dir);
    float x[6] = {1, 2, 3, 4, 5, 6};
    uint8_t y[3] = {7, 8, 9};
    lf_st_entry e[2] = {{"x", LF_ST_F32, 2, {2, 3}, x, sizeof x, 0},
                        {"y", LF_ST_U8, 1, {3}, y, 3, 0}};
    lf_st_meta meta[1] = {{"note", "hi \"there\""}};
    ck_assert_int_eq(lf_st_write(path, e, 2, meta, 1), LFLEX_OK);
    size_t len;
    unsigned char *raw = read_raw(path, &len);
    uint64_t n = header_len_of(raw);
    ck_assert_uint_eq(len, 8 + n + 27);
    ck_assert_uint_eq((8 + n) % 8, 0);
    ck_assert_mem_eq(raw + 8 + n, x, 24);
    ck_assert_mem_eq(raw + 8 + n + 24, y, 3);

    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw + 8, n, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(root != NULL, "%s", jerr.text);
    const char *want_keys[] = {"__metadata__", "x", "y"};
    const char *key;
    json_t *v;
    int k = 0;
    json_object_foreach(root, key, v) {
        ck_assert_int_lt(k, 3);
        ck_assert_str_eq(key, want_keys[k++]);
    }
    ck_assert_int_eq(k, 3);
    json_t *md = json_object_get(root, "__metadata__");
    ck_assert_uint_eq(json_object_size(md), 3);
    ck_assert_str_eq(json_string_value(json_object_get(md, "note")), "hi \"there\"");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(md, "lflex.writer")));
    const char *crc_text = json_string_value(json_object_get(md, "lflex.crc32"));
    ck_assert_ptr_nonnull(crc_text);
    ck_assert_uint_eq(strtoul(crc_text, NULL, 16), expected_crc(raw, len));

    json_t *want = json_pack("{s:{s:s, s:[i, i], s:[i, i]}, s:{s:s, s:[i], s:[i, i]}}",
                             "x", "dtype", "F32", "shape", 2, 3, "data_offsets", 0, 24,
                             "y", "dtype", "U8", "shape", 3, "data_offsets", 24, 27);
    ck_assert_ptr_nonnull(want);
    ck_assert(json_equal(json_object_get(root, "x"), json_object_get(want, "x")));
    ck_assert(json_equal(json_object_get(root, "y"), json_object_get(want, "y")));

    /* jansson writes the same text back (but for the padding) */
    char *again = json_dumps(root, JSON_COMPACT);
    size_t text_len = strlen(again);
    ck_assert_uint_le(text_len, n);
    ck_assert_mem_eq(again, raw + 8, text_len);
    for (size_t i = text_len; i < n; i++)
        ck_assert_int_eq(raw[8 + i], ' ');
    free(again);
    json_decref(want);
    json_decref(root);
    free(raw);
    remove_dir(dir);
}
END_TEST

/* ---- malformed files ------------------------------------------------------ */

#define T(dtype, shape, offs) "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

enum { AT_ANY = -1, AT_KEY = -2 }; /* AT_KEY: where the header says "a" */
typedef struct {
    const char *header;
    size_t data_len;
    const char *what;
    long long at; /* AT_*, or an offset from the start of the data section when >= 1000:
                     at - 1000; otherwise an offset in the file */
} bad_case;

static const bad_case bad_cases[] = {
    {"", 0, "not valid JSON", 8},
    {"{\"a\":}", 0, "not valid JSON", 13},
    {"{} x", 0, "not valid JSON", 11},
    {"{\"a\":\"\x01\"}", 0, "not valid JSON", 13}, /* the string token holding it */
    {"{\"\xff\":1}", 0, "not valid JSON", AT_ANY},
    {"[1]", 0, "not a JSON object", 8},
    {"{\"a\":" T("F32", "[1]", "[0,4]") ",\"a\":" T("F32", "[1]", "[4,8]") "}", 8, "duplicate", AT_ANY},
    {"{\"a\":1}", 0, "tensor 'a': entry is not an object", AT_KEY},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': dtype is missing", AT_KEY},
    {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is missing or not a string", AT_KEY},
    {"{\"a\":" T("F16", "[1]", "[0,2]") "}", 2, "tensor 'a': unsupported dtype 'F16'", AT_KEY},
    {"{\"a\":" T("f32", "[1]", "[0,4]") "}", 4, "unsupported dtype 'f32'", AT_KEY},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field 'x'", AT_KEY},
    {"{\"a\":" T("F32", "3", "[0,12]") "}", 12, "shape is missing or not an array", AT_KEY},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape is missing", AT_KEY},
    {"{\"a\":" T("F32", "[-1]", "[0,0]") "}", 0, "dimension 0 is not a non-negative integer", AT_KEY},
    {"{\"a\":" T("F32", "[2,1.5]", "[0,8]") "}", 8, "dimension 1 is not a non-negative", AT_KEY},
    {"{\"a\":" T("F32", "[1,1,1,1,1]", "[0,4]") "}", 4, "5 dimensions", AT_KEY},
    {"{\"a\":" T("F32", "[4294967296,4294967296,4]", "[0,0]") "}", 0, "overflows", AT_KEY},
    {"{\"a\":" T("U8", "[9223372036854775807,9223372036854775807]", "[0,0]") "}", 0, "overflows", AT_KEY},
    {"{\"a\":" T("U8", "[99999999999999999999]", "[0,0]") "}", 0, "not valid JSON", AT_ANY},
    {"{\"a\":" T("F32", "[1]", "[0]") "}", 4, "data_offsets is not an array of two integers", AT_KEY},
    {"{\"a\":" T("F32", "[1]", "[0,4,4]") "}", 4, "data_offsets is not an array", AT_KEY},
    {"{\"a\":" T("F32", "[1]", "[0,\"4\"]") "}", 4, "data_offsets is not an array", AT_KEY},
    {"{\"a\":" T("F32", "[1]", "{}") "}", 4, "data_offsets is not an array", AT_KEY},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets is not an array", AT_KEY},
    {"{\"a\":" T("F32", "[2]", "[0,4]") "}", 4, "hold 4 bytes, but F32 with this shape needs 8", AT_KEY},
    {"{\"a\":" T("F64", "[0]", "[0,8]") "}", 8, "needs 0", AT_KEY},
    {"{\"a\":" T("F32", "[2]", "[0,8]") "}", 4, "lie outside the data section of 4 bytes", AT_KEY},
    {"{\"a\":" T("F32", "[1]", "[-4,0]") "}", 4, "lie outside", AT_KEY},
    {"{\"a\":" T("F32", "[1]", "[4,0]") "}", 4, "lie outside", AT_KEY},
    {"{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[1]", "[4,8]") "}", 8,
     "tensor 'b' overlaps tensor 'a'", 1004},
    {"{\"a\":" T("F32", "[1]", "[0,4]") ",\"b\":" T("F32", "[1]", "[8,12]") "}", 12,
     "a hole of 4 bytes in the data section before tensor 'b'", 1004},
    {"{\"a\":" T("F32", "[1]", "[4,8]") "}", 8, "a hole of 4 bytes", 1000},
    {"{\"a\":" T("F32", "[1]", "[0,4]") "}", 9, "5 trailing bytes", 1004},
    {"{}", 3, "3 trailing bytes", 1000},
    {"{\"__metadata__\":[1]}", 0, "__metadata__ is not an object", 9},
    {"{\"__metadata__\":{\"k\":1}}", 0, "metadata 'k' is not a string", 25},
    {"{\"__metadata__\":{\"k\":null}}", 0, "metadata 'k' is not a string", 25},
    {"{\"__metadata__\":{\"lflex.writer\":\"x\"}}", 0, "no lflex.crc32", 25},
    {"{\"__metadata__\":{\"lflex.crc32\":\"xyz\"}}", 0, "not 8 lowercase hex digits", 25},
    {"{\"__metadata__\":{\"lflex.crc32\":\"ABCDEF01\"}}", 0, "not 8 lowercase hex digits", 25},
    {"{\"__metadata__\":{\"lflex.crc32\":\"abcdef012\"}}", 0, "not 8 lowercase hex digits", 25},
    {"{\"__metadata__\":{\"lflex.crc\\u00332\":\"abcdef01\"}}", 0, "cannot locate", AT_ANY},
    {"{\"__metadata__\":{\"lflex.crc32\":\"00000000\"}}", 0, "checksum mismatch", 40},
};

START_TEST(test_malformed)
{
    const bad_case *c = &bad_cases[_i];
    size_t len;
    unsigned char *b = build_raw(c->header, NULL, 0, &len);
    unsigned char *full = calloc(len + c->data_len + 1, 1);
    ck_assert_ptr_nonnull(full);
    memcpy(full, b, len);
    long long at = c->at;
    if (at == AT_KEY)
        at = 8 + (strstr(c->header, "\"a\"") - c->header);
    else if (at >= 1000)
        at = (long long)len + (at - 1000);
    expect_format_error(full, len + c->data_len, c->what, at);
    free(full);
    free(b);
}
END_TEST

START_TEST(test_length_prefix)
{
    unsigned char b[32] = {0};
    expect_format_error(b, 0, "shorter than the 8-byte header length", 0);
    expect_format_error(b, 7, "the file is 7 bytes, shorter", 0);
    lf_st_file *f = (lf_st_file *)b;
    ck_assert_int_eq(lf_st_read_buffer(&f, NULL, 0, "null"), LFLEX_EFORMAT);
    ck_assert_ptr_null(f);
    b[5] = 1; /* 2^40 */
    expect_format_error(b, 32, "over the limit", 0);
    memset(b, 0, 8);
    b[0] = 0x01, b[1] = 0xe1, b[2] = 0xf5, b[3] = 0x05; /* 100000001 */
    expect_format_error(b, 32, "header length 100000001 is over the limit", 0);
    memset(b, 0, 8);
    b[0] = 0x00, b[1] = 0xe1, b[2] = 0xf5, b[3] = 0x05; /* 100000000: allowed, but not here */
    expect_format_error(b, 32, "runs past the end", 0);
    memset(b, 0, 8);
    b[0] = 25;
    expect_format_error(b, 32, "header length 25 runs past the end of the file (32 bytes)", 0);
    b[0] = 24; /* 24 zero bytes of header */
    expect_format_error(b, 32, "not valid JSON", 8);
    b[0] = 8; /* a NUL after the JSON */
    memcpy(b + 8, "{\"a\":1}\0", 8);
    expect_format_error(b, 16, "not valid JSON", 15);

    /* every truncation of a valid file */
    sample_set s;
    make_sample(&s, 3);
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/t.st", dir);
    ck_assert_int_eq(lf_st_write(path, s.e, 6, NULL, 0), LFLEX_OK);
    size_t len;
    unsigned char *raw = read_raw(path, &len);
    for (size_t cut = 0; cut < len; cut++) {
        ck_assert_int_eq(lf_st_read_buffer(&f, raw, cut, "cut"), LFLEX_EFORMAT);
        ck_assert_ptr_null(f);
    }
    ck_assert_int_eq(lf_st_read_buffer(&f, raw, len, "whole"), LFLEX_OK);
    lf_st_free(f);
    free(raw);
    remove_dir(dir);
}
END_TEST

/* ---- checksum -------------------------------------------------------------- */

START_TEST(test_every_bit_flip_is_caught)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/small.st", dir);
    float t[3] = {0.5f, -1.0f, 3.25f};
    uint8_t u[2] = {0, 255};
    lf_st_entry e[2] = {{"t", LF_ST_F32, 1, {3}, t, sizeof t, 0},
                        {"u", LF_ST_U8, 1, {2}, u, 2, 0}};
    lf_st_meta meta[1] = {{"k", "v"}};
    ck_assert_int_eq(lf_st_write(path, e, 2, meta, 1), LFLEX_OK);
    size_t len;
    unsigned char *raw = read_raw(path, &len);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_buffer(&f, raw, len, "small"), LFLEX_OK);
    lf_st_free(f);
    for (size_t bit = 0; bit < 8 * len; bit++) {
        raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        f = (lf_st_file *)raw;
        int st = lf_st_read_buffer(&f, raw, len, "flipped");
        ck_assert_msg(st == LFLEX_EFORMAT && f == NULL, "bit %zu (byte %zu): status %d", bit,
                      bit / 8, st);
        raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* a damaged data byte is reported as such */
    raw[len - 1] ^= 0x10;
    expect_format_error(raw, len, "checksum mismatch", (long long)crc_digits_offset(raw, len));
    free(raw);
    remove_dir(dir);
}
END_TEST

/* A checksum computed outside liblflex by the rule in the header is
 * accepted; the same digits in uppercase are not. */
START_TEST(test_external_checksum)
{
    const char *header = "{\"__metadata__\":{\"lflex.crc32\" : \"00000000\"},"
                         "\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    const unsigned char data[4] = {1, 2, 3, 4};
    size_t len;
    unsigned char *b = build_raw(header, data, 4, &len);
    size_t at = (size_t)(strstr(header, ": \"0") - header) + 8 + 3;
    uint32_t crc = crc32_bitwise(b, len); /* digits are still '0' */
    char digits[9];
    snprintf(digits, sizeof digits, "%08x", (unsigned)crc);
    memcpy(b + at, digits, 8);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_buffer(&f, b, len, "ext"), LFLEX_OK);
    ck_assert_str_eq(lf_st_meta_get(f, LF_ST_KEY_CRC), digits);
    lf_st_free(f);
    snprintf(digits, sizeof digits, "%08X", (unsigned)crc);
    memcpy(b + at, digits, 8);
    if (strspn(digits, "0123456789") != 8) /* else upper and lower case are the same */
        expect_format_error(b, len, "lowercase", AT_ANY);
    free(b);
}
END_TEST

/* ---- writer arguments, I/O errors, atomic replacement ------------------- */

START_TEST(test_writer_rejects)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/w.st", dir);
    float x[2] = {1, 2};
    lf_st_entry ok = {"x", LF_ST_F32, 1, {2}, x, 8, 0};
    lf_st_entry e[2] = {ok, ok};
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL); /* duplicate */
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "duplicate tensor name 'x'"));
    e[1].name = "__metadata__";
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    e[1] = ok, e[1].name = "y", e[1].nbytes = 4;
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "tensor 'y'"));
    e[1] = ok, e[1].name = "y", e[1].data = NULL;
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    e[1] = ok, e[1].name = "y", e[1].ndim = 5;
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    e[1] = ok, e[1].name = "y", e[1].dtype = (lf_st_dtype)9;
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    e[1] = ok, e[1].name = "y", e[1].shape[0] = -2, e[1].nbytes = 0;
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    e[1] = ok, e[1].name = "bad\xff";
    ck_assert_int_eq(lf_st_write(path, e, 2, NULL, 0), LFLEX_EINVAL);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "UTF-8"));
    lf_st_meta m[2] = {{"k", "v"}, {"k", "w"}};
    ck_assert_int_eq(lf_st_write(path, &ok, 1, m, 2), LFLEX_EINVAL); /* duplicate */
    m[1].key = LF_ST_KEY_CRC;
    ck_assert_int_eq(lf_st_write(path, &ok, 1, m, 2), LFLEX_EINVAL);
    m[1].key = LF_ST_KEY_WRITER;
    ck_assert_int_eq(lf_st_write(path, &ok, 1, m, 2), LFLEX_EINVAL);
    m[1].key = "v", m[1].value = NULL;
    ck_assert_int_eq(lf_st_write(path, &ok, 1, m, 2), LFLEX_EINVAL);
    m[1].key = "x\"lflex.crc32", m[1].value = "deadbeef"; /* would make the checksum ambiguous */
    ck_assert_int_eq(lf_st_write(path, &ok, 1, m, 2), LFLEX_EINVAL);
    ck_assert_int_eq(lf_st_write(NULL, &ok, 1, NULL, 0), LFLEX_EINVAL);
    ck_assert_int_eq(lf_st_write(path, NULL, 1, NULL, 0), LFLEX_EINVAL);
    ck_assert_int_eq(count_files(dir), 0); /* nothing was created */
    remove_dir(dir);
}
END_TEST

START_TEST(test_io_errors)
{
    char dir[64], path[160];
    make_dir(dir);
    lf_st_file *f = (lf_st_file *)dir;
    snprintf(path, sizeof path, "%s/missing.st", dir);
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_EIO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), path));
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), strerror(ENOENT)));
    ck_assert_int_eq(lf_st_read_file(&f, dir), LFLEX_EIO); /* a directory */
    ck_assert_ptr_null(f);

    float x = 1;
    lf_st_entry e = {"x", LF_ST_F32, 0, {0}, &x, 4, 0};
    snprintf(path, sizeof path, "%s/no/such/dir/x.st", dir);
    ck_assert_int_eq(lf_st_write(path, &e, 1, NULL, 0), LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), path));
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), strerror(ENOENT)));
    ck_assert_int_eq(lf_st_write("/dev/null/x.st", &e, 1, NULL, 0), LFLEX_EIO);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), strerror(ENOTDIR)));
    ck_assert_int_eq(count_files(dir), 0);
    remove_dir(dir);
}
END_TEST

/* Writing B fails part-way (the file size limit makes write() fail, as a
 * full disk would): A stays as it was and no temporary file remains. */
START_TEST(test_failed_save_keeps_old_file)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ck.st", dir);
    sample_set a;
    make_sample(&a, 4);
    ck_assert_int_eq(lf_st_write(path, a.e, 6, NULL, 0), LFLEX_OK);
    size_t a_len;
    unsigned char *a_raw = read_raw(path, &a_len);

    static float big[5000];
    for (int i = 0; i < 5000; i++)
        big[i] = (float)i;
    lf_st_entry b = {"big", LF_ST_F32, 1, {5000}, big, sizeof big, 0};
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    const rlim_t limits[] = {0, 5, 100, 4096, 12000, sizeof big - 1};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit lim = {limits[i], old.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
        int st = lf_st_write(path, &b, 1, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &old);
        ck_assert_int_eq(st, LFLEX_EIO);
        ck_assert_ptr_nonnull(strstr(lflex_last_error(), path));
        size_t len;
        unsigned char *now = read_raw(path, &len);
        ck_assert_uint_eq(len, a_len);
        ck_assert_mem_eq(now, a_raw, a_len);
        free(now);
        ck_assert_int_eq(count_files(dir), 1);
    }
    signal(SIGXFSZ, old_handler);
    lf_st_file *f = NULL;
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    check_same_tensors(f, a.e, 6);
    lf_st_free(f);
    ck_assert_int_eq(lf_st_write(path, &b, 1, NULL, 0), LFLEX_OK); /* and now it works */
    ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
    check_same_tensors(f, &b, 1);
    lf_st_free(f);
    free(a_raw);
    remove_dir(dir);
}
END_TEST

/* A process killed while saving, again and again, at varying moments: the
 * file is always one complete version (temporary files may remain). */
START_TEST(test_killed_save_leaves_a_whole_file)
{
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ck.st", dir);
    static float v[2][20000];
    for (int i = 0; i < 20000; i++)
        v[0][i] = 1.0f, v[1][i] = 2.0f;
    lf_st_entry e[2] = {{"v", LF_ST_F32, 1, {20000}, v[0], sizeof v[0], 0},
                        {"v", LF_ST_F32, 1, {20000}, v[1], sizeof v[1], 0}};
    ck_assert_int_eq(lf_st_write(path, &e[0], 1, NULL, 0), LFLEX_OK);
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (int k = 0; k < 100000; k++)
                lf_st_write(path, &e[k % 2], 1, NULL, 0);
            _exit(0);
        }
        struct timespec pause = {0, 1000000L * (1 + 7 * round)};
        nanosleep(&pause, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        lf_st_file *f = NULL;
        ck_assert_int_eq(lf_st_read_file(&f, path), LFLEX_OK);
        const lf_st_entry *got = lf_st_find(f, "v");
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(got->nbytes, sizeof v[0]);
        float first, last;
        memcpy(&first, got->data, 4);
        memcpy(&last, (const char *)got->data + sizeof v[0] - 4, 4);
        ck_assert(first == last && (first == 1.0f || first == 2.0f));
        lf_st_free(f);
    }
    /* the killed saves' temporary files go with the next save */
    ck_assert_int_eq(lf_st_write(path, &e[1], 1, NULL, 0), LFLEX_OK);
    ck_assert_int_eq(count_files(dir), 1);
    remove_dir(dir);
}
END_TEST

static void touch(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs("partial", fp);
    fclose(fp);
}

static bool exists(const char *dir, const char *name)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

/* Temporary files that killed saves left behind: the next save to the same
 * path removes those named as its own temporary files are, but not one that
 * a save in progress holds (locked), nor any other file. */
START_TEST(test_stale_temporary_files)
{
    char dir[64], path[128], p[256];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ck.st", dir);
    const char *stale[] = {"ck.st.tmp-123-abc", "ck.st.tmp-1-0", "ck.st.tmp-4194304-3b9ac9ff"};
    const char *other[] = {"ck.st.tmp-1-0x", "ck.st.tmp--1", "ck.st.tmp-1-", "ck.st.tmp-", "ck.st.tmp-12-ab.bak",
                           "ck.st.tmp-a-1", "ck.st.tmp-1-AB", "ck.st.tmpx", "ck.st.tmp", "ck.s.tmp-1-1",
                           "other.st.tmp-1-1", "xck.st.tmp-1-1", "ck.st.bak"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        touch(dir, stale[i]);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        touch(dir, other[i]);
    /* a save in progress holds its file locked */
    touch(dir, "ck.st.tmp-77-ff");
    snprintf(p, sizeof p, "%s/ck.st.tmp-77-ff", dir);
    int held = open(p, O_RDONLY);
    ck_assert_int_ge(held, 0);
    ck_assert_int_eq(flock(held, LOCK_EX), 0);
    /* not regular files */
    snprintf(p, sizeof p, "%s/ck.st.tmp-5-5", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/ck.st.tmp-6-6", dir);
    ck_assert_int_eq(symlink("ck.st.tmp-1-0x", p), 0);

    sample_set a;
    make_sample(&a, 5);
    ck_assert_int_eq(lf_st_write(path, a.e, 6, NULL, 0), LFLEX_OK);
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        ck_assert_msg(!exists(dir, stale[i]), "%s is still there", stale[i]);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        ck_assert_msg(exists(dir, other[i]), "%s was removed", other[i]);
    ck_assert(exists(dir, "ck.st.tmp-77-ff"));
    ck_assert(exists(dir, "ck.st.tmp-5-5"));
    ck_assert(exists(dir, "ck.st.tmp-6-6"));
    ck_assert(exists(dir, "ck.st"));
    ck_assert_int_eq(count_files(dir), (int)(sizeof other / sizeof other[0]) + 4);

    /* once the save holding it is gone, the file is stale too */
    ck_assert_int_eq(lf_st_remove_stale_temps(path), 0);
    close(held);
    ck_assert_int_eq(lf_st_remove_stale_temps(path), 1);
    ck_assert(!exists(dir, "ck.st.tmp-77-ff"));
    ck_assert_int_eq(lf_st_remove_stale_temps(NULL), 0);
    ck_assert_int_eq(lf_st_remove_stale_temps(""), 0);
    ck_assert_int_eq(lf_st_remove_stale_temps("/no/such/dir/ck.st"), 0);

    /* relative paths: the directory is the current one */
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    touch(".", "ck.st.tmp-9-9");
    ck_assert_int_eq(lf_st_remove_stale_temps("ck.st"), 1);
    ck_assert_int_eq(chdir(cwd), 0);

    snprintf(p, sizeof p, "%s/ck.st.tmp-5-5", dir);
    rmdir(p);
    remove_dir(dir);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("io_safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_crc32);
    tcase_add_test(tc, test_roundtrip_file_and_buffer);
    tcase_add_test(tc, test_empty_file_and_overwrite);
    tcase_add_test(tc, test_handmade_buffer);
    tcase_add_test(tc, test_large_header);
    tcase_add_test(tc, test_writer_header_is_plain_json);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_length_prefix);
    tcase_add_test(tc, test_every_bit_flip_is_caught);
    tcase_add_test(tc, test_external_checksum);
    tcase_add_test(tc, test_writer_rejects);
    tcase_add_test(tc, test_io_errors);
    tcase_add_test(tc, test_failed_save_keeps_old_file);
    tcase_add_test(tc, test_killed_save_leaves_a_whole_file);
    tcase_add_test(tc, test_stale_temporary_files);
    suite_add_tcase(s, tc);
    return s;
}
