/* safetensors reading and writing (the format and the liblflex checksum are
 * described in safetensors.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "lf_config.h"
#include "lf_error.h"

/* The format is little-endian; a big-endian host swaps tensor data. A plain
 * `if` (not #if) keeps the swapping code compiled, hence checked, here. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LF_ST_BIG_ENDIAN 1
#else
#define LF_ST_BIG_ENDIAN 0
#endif

/* ---- CRC-32 ------------------------------------------------------------ */

/* crc_table[b] = CRC register after shifting byte b through the reflected
 * polynomial 0xEDB88320 (tests/io/test_safetensors.c recomputes it). */
static const uint32_t crc_table[256] = {
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
    0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988, 0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
    0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
    0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172, 0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
    0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
    0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924, 0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
    0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
    0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e, 0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
    0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
    0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0, 0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
    0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
    0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a, 0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
    0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
    0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc, 0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
    0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
    0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236, 0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
    0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
    0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38, 0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
    0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
    0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2, 0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
    0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
    0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94, 0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

uint32_t lf_crc32_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- dtypes and byte order --------------------------------------------- */

static const char *const dtype_names[] = {"F32", "F64", "I32", "I64", "U8"};
static const unsigned char dtype_sizes[] = {4, 8, 4, 8, 1};
#define N_DTYPES (sizeof dtype_sizes / sizeof dtype_sizes[0])
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == N_DTYPES, "one name per dtype");
_Static_assert(LF_ST_U8 + 1 == N_DTYPES, "one size per dtype");

size_t lf_st_dtype_size(lf_st_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_sizes[dtype] : 0;
}

const char *lf_st_dtype_name(lf_st_dtype dtype)
{
    return (unsigned)dtype < N_DTYPES ? dtype_names[dtype] : NULL;
}

/* Reverse the bytes of each `elem`-byte element. */
static void swap_elements(unsigned char *p, size_t nbytes, size_t elem)
{
    for (size_t i = 0; i + elem <= nbytes; i += elem)
        for (size_t a = i, b = i + elem - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static uint64_t load_le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* ---- the checksum's place in the header -------------------------------- */

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Count the places in the header text that look like
 * "lflex.crc32" : "XXXXXXXX" and set *digits to the offset of the first
 * one's digits. The real entry is found unless it was written with escapes;
 * a key that merely ends in \"lflex.crc32 looks like one too, so callers
 * require exactly one candidate (holding the value jansson parsed). */
static int find_crc_digits(const unsigned char *h, size_t n, size_t *digits)
{
    static const char quoted_key[] = "\"" LF_ST_KEY_CRC "\"";
    const size_t klen = sizeof quoted_key - 1;
    int count = 0;
    for (size_t i = 0; i + klen <= n; i++) {
        if (memcmp(h + i, quoted_key, klen) != 0)
            continue;
        size_t j = i + klen;
        while (j < n && is_json_space(h[j]))
            j++;
        if (j >= n || h[j++] != ':')
            continue;
        while (j < n && is_json_space(h[j]))
            j++;
        if (j + 10 > n || h[j] != '"' || h[j + 9] != '"')
            continue;
        if (count++ == 0)
            *digits = j + 1;
    }
    return count;
}

/* CRC of the file with the 8 digits at `digits` taken as '0'. */
static uint32_t file_crc(const unsigned char *b, size_t len, size_t digits)
{
    uint32_t crc = lf_crc32_update(0, b, digits);
    crc = lf_crc32_update(crc, "00000000", 8);
    return lf_crc32_update(crc, b + digits + 8, len - digits - 8);
}

/* ---- reading ----------------------------------------------------------- */

struct lf_st_file {
    unsigned char *storage; /* the file's bytes, starting `pad` bytes in */
    lf_st_entry *entries;
    const lf_st_entry **by_name; /* the entries sorted by name, for lf_st_find */
    size_t n;
    lf_st_meta *meta;
    size_t n_meta;
    char *strings; /* names, metadata keys and values */
};

typedef struct {
    const char *name; /* of the file, for messages */
    const unsigned char *b;
    size_t len;
    uint64_t header_len;
} lf_st_parser;

static int bad(const lf_st_parser *p, uint64_t offset, const char *fmt, ...) LF_PRINTF(3, 4);
static int bad(const lf_st_parser *p, uint64_t offset, const char *fmt, ...)
{
    char what[LF_ERROR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return lf_error(LFLEX_EFORMAT, "%s: byte %llu: %s", p->name, (unsigned long long)offset, what);
}

/* Where the header mentions "key" (for messages; jansson keeps no positions).
 * Falls back to the start of the header. */
static uint64_t key_offset(const lf_st_parser *p, const char *key)
{
    size_t k = strlen(key);
    const unsigned char *h = p->b + 8;
    for (size_t i = 0; i + k + 2 <= p->header_len; i++)
        if (h[i] == '"' && h[i + k + 1] == '"' && memcmp(h + i + 1, key, k) == 0)
            return 8 + i;
    return 8;
}

/* bad() at the place where the header mentions `key`. Looking the place up
 * scans the header, so it is done only once a problem is found: doing it for
 * every tensor made reading quadratic in the header's size. */
static int bad_at_key(const lf_st_parser *p, const char *key, const char *fmt, ...) LF_PRINTF(3, 4);
static int bad_at_key(const lf_st_parser *p, const char *key, const char *fmt, ...)
{
    char what[LF_ERROR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bad(p, key_offset(p, key), "%s", what);
}

static char *copy_string(char **cursor, const char *s)
{
    size_t k = strlen(s) + 1;
    char *dst = memcpy(*cursor, s, k);
    *cursor += k;
    return dst;
}

static int check_metadata(const lf_st_parser *p, json_t *md)
{
    const char *key;
    json_t *v;
    if (!json_is_object(md))
        return bad_at_key(p, "__metadata__", "__metadata__ is not an object");
    json_object_foreach(md, key, v)
        if (!json_is_string(v))
            return bad_at_key(p, key, "metadata '%s' is not a string", key);
    json_t *crc = json_object_get(md, LF_ST_KEY_CRC);
    if (!crc && !json_object_get(md, LF_ST_KEY_WRITER))
        return LFLEX_OK; /* not written by liblflex: no checksum to check */
    if (!crc)
        return bad(p, key_offset(p, LF_ST_KEY_WRITER), "has " LF_ST_KEY_WRITER " but no "
                   LF_ST_KEY_CRC " (the checksum key is damaged or missing)");
    const char *text = json_string_value(crc);
    size_t k = strlen(text);
    /* lowercase only: 'a' and 'A' differ by one bit and must not both be valid */
    if (k != 8 || strspn(text, "0123456789abcdef") != 8)
        return bad_at_key(p, LF_ST_KEY_CRC, LF_ST_KEY_CRC " is \"%s\", not 8 lowercase hex digits",
                          text);
    size_t digits = 0;
    if (find_crc_digits(p->b + 8, p->header_len, &digits) != 1 ||
        memcmp(p->b + 8 + digits, text, 8) != 0)
        return bad_at_key(p, LF_ST_KEY_CRC,
                          "cannot locate the " LF_ST_KEY_CRC " value in the header");
    digits += 8;
    uint32_t stored = (uint32_t)strtoul(text, NULL, 16);
    uint32_t actual = file_crc(p->b, p->len, digits);
    if (stored != actual)
        return bad(p, digits, "checksum mismatch: stored %s, computed %08x (the file is corrupted)",
                   text, (unsigned)actual);
    return LFLEX_OK;
}

/* Validate one tensor's header entry and fill *e (but for name and data). */
static int check_tensor(const lf_st_parser *p, const char *name, json_t *v, lf_st_entry *e)
{
    uint64_t data_len = p->len - 8 - p->header_len;
    const char *field;
    json_t *fv;
    if (!json_is_object(v))
        return bad_at_key(p, name, "tensor '%s': entry is not an object", name);
    json_object_foreach(v, field, fv)
        if (strcmp(field, "dtype") != 0 && strcmp(field, "shape") != 0 &&
            strcmp(field, "data_offsets") != 0)
            return bad_at_key(p, name, "tensor '%s': unknown field '%s'", name, field);

    const char *dtype = json_string_value(json_object_get(v, "dtype"));
    if (!dtype)
        return bad_at_key(p, name, "tensor '%s': dtype is missing or not a string", name);
    size_t d = 0;
    while (d < N_DTYPES && strcmp(dtype, dtype_names[d]) != 0)
        d++;
    if (d == N_DTYPES)
        return bad_at_key(p, name, "tensor '%s': unsupported dtype '%s'", name, dtype);
    e->dtype = (lf_st_dtype)d;

    json_t *shape = json_object_get(v, "shape");
    if (!json_is_array(shape))
        return bad_at_key(p, name, "tensor '%s': shape is missing or not an array", name);
    if (json_array_size(shape) > LF_ST_MAX_DIMS)
        return bad_at_key(p, name, "tensor '%s': %zu dimensions, at most %d are supported", name,
                          json_array_size(shape), LF_ST_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    uint64_t nbytes = dtype_sizes[d];
    for (int i = 0; i < e->ndim; i++) {
        json_t *dim = json_array_get(shape, (size_t)i);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return bad_at_key(p, name, "tensor '%s': dimension %d is not a non-negative integer",
                              name, i);
        e->shape[i] = json_integer_value(dim);
        if (__builtin_mul_overflow(nbytes, (uint64_t)e->shape[i], &nbytes))
            return bad_at_key(p, name, "tensor '%s': the shape's size overflows", name);
    }

    json_t *offs = json_object_get(v, "data_offsets");
    json_t *jb = json_array_get(offs, 0), *je = json_array_get(offs, 1);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(jb) ||
        !json_is_integer(je))
        return bad_at_key(p, name, "tensor '%s': data_offsets is not an array of two integers",
                          name);
    json_int_t begin = json_integer_value(jb), end = json_integer_value(je);
    if (begin < 0 || end < begin || (uint64_t)end > data_len)
        return bad_at_key(p, name, "tensor '%s': data_offsets [%lld, %lld] lie outside the data "
                          "section of %llu bytes", name, (long long)begin, (long long)end,
                          (unsigned long long)data_len);
    if ((uint64_t)(end - begin) != nbytes)
        return bad_at_key(p, name, "tensor '%s': data_offsets [%lld, %lld] hold %llu bytes, but %s "
                          "with this shape needs %llu", name, (long long)begin, (long long)end,
                          (unsigned long long)(end - begin), dtype, (unsigned long long)nbytes);
    e->nbytes = (size_t)nbytes;
    e->file_offset = 8 + p->header_len + (uint64_t)begin;
    return LFLEX_OK;
}

static int by_offset(const void *a, const void *b)
{
    const lf_st_entry *x = *(const lf_st_entry *const *)a, *y = *(const lf_st_entry *const *)b;
    if (x->file_offset != y->file_offset)
        return x->file_offset < y->file_offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* The tensors must cover the data section exactly. */
static int check_coverage(const lf_st_parser *p, lf_st_entry **sorted, size_t n)
{
    uint64_t expect = 8 + p->header_len;
    for (size_t i = 0; i < n; i++) {
        const lf_st_entry *e = sorted[i];
        if (e->file_offset > expect)
            return bad(p, expect, "a hole of %llu bytes in the data section before tensor '%s'",
                       (unsigned long long)(e->file_offset - expect), e->name);
        if (e->file_offset < expect)
            return bad(p, e->file_offset, "tensor '%s' overlaps tensor '%s'", e->name,
                       sorted[i - 1]->name);
        expect += e->nbytes;
    }
    if (expect < p->len)
        return bad(p, expect, "%llu trailing bytes after the last tensor",
                   (unsigned long long)(p->len - expect));
    return LFLEX_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const lf_st_entry *const *)a)->name, (*(const lf_st_entry *const *)b)->name);
}

/* The lookup index: the entries sorted by name (n log n, whatever the names;
 * a hash could be made slow by chosen names). Equal neighbours would be a
 * duplicate, which jansson already refuses; checked again here so that
 * lf_st_find can never pick one of two. */
static int build_index(const lf_st_parser *p, lf_st_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = &f->entries[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, by_name);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return bad_at_key(p, f->by_name[i]->name, "duplicate tensor name '%s'",
                              f->by_name[i]->name);
    return LFLEX_OK;
}

/* Validate the file in storage[pad .. pad+len) and, on success, hand it to
 * a new lf_st_file. Frees storage on failure. */
static int parse(lf_st_file **out, unsigned char *storage, size_t pad, size_t len,
                 const char *name)
{
    unsigned char *b = storage + pad;
    lf_st_parser p = {name, b, len, 0};
    lf_st_file *f = NULL;
    lf_st_entry **sorted = NULL;
    json_t *root = NULL;
    int err;
    if (len < 8) {
        err = bad(&p, 0, "the file is %zu bytes, shorter than the 8-byte header length", len);
        goto done;
    }
    p.header_len = load_le64(b);
    if (p.header_len > LF_ST_MAX_HEADER) {
        err = bad(&p, 0, "header length %llu is over the limit of %u bytes",
                  (unsigned long long)p.header_len, LF_ST_MAX_HEADER);
        goto done;
    }
    if (p.header_len > len - 8) {
        err = bad(&p, 0, "header length %llu runs past the end of the file (%zu bytes)",
                  (unsigned long long)p.header_len, len);
        goto done;
    }
    json_error_t jerr;
    root = json_loadb((const char *)b + 8, p.header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            err = lf_error_oom(name);
            goto done;
        }
        /* jansson's position counts the bytes read, the offending one included */
        uint64_t at = 8 + (uint64_t)(jerr.position > 0 ? jerr.position - 1 : 0);
        err = bad(&p, at, "the header is not valid JSON (line %d, column %d): %s", jerr.line,
                  jerr.column, jerr.text);
        goto done;
    }
    if (!json_is_object(root)) {
        err = bad(&p, 8, "the header is not a JSON object");
        goto done;
    }
    json_t *md = json_object_get(root, "__metadata__");
    if (md && (err = check_metadata(&p, md)) != LFLEX_OK)
        goto done;

    size_t n_meta = md ? json_object_size(md) : 0;
    size_t n = json_object_size(root) - (md != NULL);
    size_t string_bytes = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
        string_bytes += strcmp(key, "__metadata__") != 0 ? strlen(key) + 1 : 0;
    if (md)
        json_object_foreach(md, key, v)
            string_bytes += strlen(key) + strlen(json_string_value(v)) + 2;
    f = calloc(1, sizeof *f);
    if (f) {
        f->entries = calloc(n ? n : 1, sizeof *f->entries);
        f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
        f->meta = calloc(n_meta ? n_meta : 1, sizeof *f->meta);
        f->strings = malloc(string_bytes ? string_bytes : 1);
    }
    sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!f || !f->entries || !f->by_name || !f->meta || !f->strings || !sorted) {
        err = lf_error_oom(name);
        goto done;
    }
    char *cursor = f->strings;
    if (md)
        json_object_foreach(md, key, v) {
            f->meta[f->n_meta].key = copy_string(&cursor, key);
            f->meta[f->n_meta++].value = copy_string(&cursor, json_string_value(v));
        }
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        lf_st_entry *e = &f->entries[f->n];
        if ((err = check_tensor(&p, key, v, e)) != LFLEX_OK)
            goto done;
        e->name = copy_string(&cursor, key);
        e->data = b + e->file_offset;
        sorted[f->n++] = e;
    }
    qsort(sorted, f->n, sizeof *sorted, by_offset);
    if ((err = check_coverage(&p, sorted, f->n)) != LFLEX_OK ||
        (err = build_index(&p, f)) != LFLEX_OK)
        goto done;
    if (LF_ST_BIG_ENDIAN)
        for (size_t i = 0; i < f->n; i++)
            swap_elements(b + f->entries[i].file_offset, f->entries[i].nbytes,
                          dtype_sizes[f->entries[i].dtype]);
    f->storage = storage;
    *out = f;
    f = NULL;
    storage = NULL;
    err = LFLEX_OK;
done:
    json_decref(root);
    free(sorted);
    lf_st_free(f);
    free(storage);
    return err;
}

/* Offset at which to place the file in its buffer so that the data section
 * starts 8-byte aligned (malloc's alignment is at least 8). */
static size_t data_section_pad(const unsigned char *b, size_t len)
{
    return len >= 8 ? (size_t)((8 - load_le64(b) % 8) % 8) : 0;
}

int lf_st_read_buffer(lf_st_file **out, const void *buf, size_t len, const char *name_for_errors)
{
    if (!out)
        return lf_error(LFLEX_EINVAL, "lf_st_read_buffer: out is NULL");
    *out = NULL;
    if (!buf && len)
        return lf_error(LFLEX_EINVAL, "lf_st_read_buffer: buf is NULL");
    const char *name = name_for_errors ? name_for_errors : "<buffer>";
    if (len > SIZE_MAX - 8)
        return lf_error_oom(name);
    unsigned char *storage = malloc(len + 8);
    if (!storage)
        return lf_error_oom(name);
    size_t pad = data_section_pad(buf, len);
    if (len)
        memcpy(storage + pad, buf, len);
    return parse(out, storage, pad, len, name);
}

int lf_st_read_file(lf_st_file **out, const char *path)
{
    if (!out || !path)
        return lf_error(LFLEX_EINVAL, "lf_st_read_file: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lf_error(LFLEX_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int err = LFLEX_OK;
    unsigned char *storage = NULL;
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        err = lf_error(LFLEX_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        err = lf_error(LFLEX_EIO, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > SIZE_MAX - 8 ||
               !(storage = malloc((size_t)st.st_size + 8))) {
        err = lf_error_oom(path);
    } else {
        size_t size = (size_t)st.st_size;
        while (got < size) {
            ssize_t r = read(fd, storage + got, size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                err = lf_error(LFLEX_EIO, "%s: read failed: %s", path, strerror(errno));
                break;
            }
            if (r == 0)
                break; /* the file shrank: validation reports what is missing */
            got += (size_t)r;
        }
    }
    close(fd);
    if (err != LFLEX_OK) {
        free(storage);
        return err;
    }
    size_t pad = data_section_pad(storage, got);
    memmove(storage + pad, storage, got);
    return parse(out, storage, pad, got, path);
}

size_t lf_st_count(const lf_st_file *f)
{
    return f ? f->n : 0;
}

const lf_st_entry *lf_st_at(const lf_st_file *f, size_t i)
{
    return f && i < f->n ? &f->entries[i] : NULL;
}

const lf_st_entry *lf_st_find(const lf_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    const lf_st_entry key = {.name = name}, *pk = &key;
    const lf_st_entry *const *hit = bsearch(&pk, f->by_name, f->n, sizeof *f->by_name, by_name);
    return hit ? *hit : NULL;
}

const char *lf_st_meta_get(const lf_st_file *f, const char *key)
{
    for (size_t i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

void lf_st_free(lf_st_file *f)
{
    if (!f)
        return;
    free(f->storage);
    free(f->entries);
    free(f->by_name);
    free(f->meta);
    free(f->strings);
    free(f);
}

/* ---- writing ----------------------------------------------------------- */

/* jansson fails alike on invalid UTF-8 and on a failed allocation; a probe
 * allocation tells the two apart. */
static int json_failure(const char *path, const char *what)
{
    json_t *probe = json_object();
    if (!probe)
        return lf_error_oom(path);
    json_decref(probe);
    return lf_error(LFLEX_EINVAL, "%s: %s is not valid UTF-8", path, what);
}

/* The header as JSON; validates the caller's entries and metadata. */
static int build_json(json_t **out, const char *path, const lf_st_entry *entries, size_t n,
                      const lf_st_meta *meta, size_t n_meta)
{
    json_t *root = json_object(), *md = json_object();
    int err = LFLEX_OK;
    /* set_new steals md even when it fails; root keeps it alive */
    if (json_object_set_new(root, "__metadata__", md) != 0) {
        err = lf_error_oom(path);
        goto fail;
    }
    for (size_t i = 0; i < n_meta; i++) {
        const char *key = meta[i].key, *value = meta[i].value;
        if (!key || !value)
            err = lf_error(LFLEX_EINVAL, "%s: metadata %zu has a NULL key or value", path, i);
        else if (strcmp(key, LF_ST_KEY_CRC) == 0 || strcmp(key, LF_ST_KEY_WRITER) == 0)
            err = lf_error(LFLEX_EINVAL, "%s: metadata key '%s' is reserved", path, key);
        else if (json_object_get(md, key))
            err = lf_error(LFLEX_EINVAL, "%s: duplicate metadata key '%s'", path, key);
        else if (json_object_set_new(md, key, json_string(value)) != 0)
            err = json_failure(path, "a metadata key or value");
        if (err != LFLEX_OK)
            goto fail;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const lf_st_entry *e = &entries[i];
        size_t size = lf_st_dtype_size(e->dtype);
        if (!e->name || strcmp(e->name, "__metadata__") == 0) {
            err = lf_error(LFLEX_EINVAL, "%s: tensor %zu has no name or the name __metadata__",
                           path, i);
            goto fail;
        }
        if (json_object_get(root, e->name)) {
            err = lf_error(LFLEX_EINVAL, "%s: duplicate tensor name '%s'", path, e->name);
            goto fail;
        }
        if (!size || e->ndim < 0 || e->ndim > LF_ST_MAX_DIMS) {
            err = lf_error(LFLEX_EINVAL, "%s: tensor '%s': bad dtype %d or rank %d", path,
                           e->name, (int)e->dtype, e->ndim);
            goto fail;
        }
        json_t *shape = json_array();
        uint64_t nbytes = size;
        int bad_shape = 0;
        for (int d = 0; d < e->ndim; d++) {
            bad_shape |= e->shape[d] < 0 ||
                         __builtin_mul_overflow(nbytes, (uint64_t)e->shape[d], &nbytes);
            if (json_array_append_new(shape, json_integer(e->shape[d])) != 0) {
                json_decref(shape);
                err = lf_error_oom(path);
                goto fail;
            }
        }
        if (bad_shape || nbytes != e->nbytes || (!e->data && nbytes) ||
            offset + nbytes > (uint64_t)INT64_MAX) {
            json_decref(shape);
            err = lf_error(LFLEX_EINVAL, "%s: tensor '%s': nbytes %zu (data %p) do not match %s "
                           "with this shape", path, e->name, e->nbytes, e->data,
                           dtype_names[e->dtype]);
            goto fail;
        }
        json_t *t = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype_names[e->dtype], "shape",
                              shape, "data_offsets", (json_int_t)offset,
                              (json_int_t)(offset + nbytes));
        if (!t) {
            err = lf_error_oom(path);
            goto fail;
        }
        if (json_object_set_new(root, e->name, t) != 0) {
            err = json_failure(path, "a tensor name");
            goto fail;
        }
        offset += nbytes;
    }
    if (json_object_set_new(md, LF_ST_KEY_WRITER, json_string("liblflex " LF_VERSION_STRING)) ||
        json_object_set_new(md, LF_ST_KEY_CRC, json_string("00000000"))) {
        err = lf_error_oom(path);
        goto fail;
    }
    *out = root;
    return LFLEX_OK;
fail:
    json_decref(root);
    return err;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write a tensor's data little-endian, adding it to *crc. */
static int write_tensor(int fd, const lf_st_entry *e, uint32_t *crc)
{
    if (!LF_ST_BIG_ENDIAN) {
        *crc = lf_crc32_update(*crc, e->data, e->nbytes);
        return write_all(fd, e->data, e->nbytes);
    }
    unsigned char chunk[4096]; /* a multiple of every dtype size */
    const unsigned char *src = e->data;
    for (size_t done = 0; done < e->nbytes; done += sizeof chunk) {
        size_t k = e->nbytes - done < sizeof chunk ? e->nbytes - done : sizeof chunk;
        memcpy(chunk, src + done, k);
        swap_elements(chunk, k, dtype_sizes[e->dtype]);
        *crc = lf_crc32_update(*crc, chunk, k);
        if (write_all(fd, chunk, k) != 0)
            return -1;
    }
    return 0;
}

/* Make the rename durable. File systems without directory fsync say EINVAL. */
static int sync_directory(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return lf_error_oom(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0'; /* keep "/" itself */
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = LFLEX_OK;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        err = lf_error(LFLEX_EIO, "%s: written, but syncing its directory failed: %s", path,
                       strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return err;
}

/* ---- temporary files ---------------------------------------------------- */

#define TMP_MARK ".tmp-"

/* Whether `name` is "<base>.tmp-<decimal>-<hex>", a name write_atomically
 * gives its temporary files for a file named `base`. */
static bool is_temp_name(const char *name, const char *base, size_t base_len)
{
    if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, TMP_MARK, strlen(TMP_MARK)) != 0)
        return false;
    const char *s = name + base_len + strlen(TMP_MARK);
    size_t k = strspn(s, "0123456789");
    if (k == 0 || s[k] != '-')
        return false;
    s += k + 1;
    k = strspn(s, "0123456789abcdef");
    return k > 0 && s[k] == '\0';
}

/* Remove the temporary file `name` in the directory `dfd` if it is a
 * regular file that no save holds locked. The name is checked to still be
 * the file that was locked before it is unlinked. */
static bool remove_if_stale(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    struct stat locked, now;
    bool removed = fstat(fd, &locked) == 0 && S_ISREG(locked.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
                   fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == locked.st_dev &&
                   now.st_ino == locked.st_ino && unlinkat(dfd, name, 0) == 0;
    close(fd);
    return removed;
}

int lf_st_remove_stale_temps(const char *path)
{
    if (!path)
        return 0;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t base_len = strlen(base);
    if (!base_len)
        return 0;
    char *dir = NULL;
    if (slash) {
        size_t k = slash == path ? 1 : (size_t)(slash - path); /* keep "/" itself */
        if (!(dir = malloc(k + 1)))
            return 0;
        memcpy(dir, path, k);
        dir[k] = '\0';
    }
    DIR *d = opendir(dir ? dir : ".");
    free(dir);
    if (!d)
        return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (is_temp_name(e->d_name, base, base_len) && remove_if_stale(dirfd(d), e->d_name))
            removed++;
    closedir(d);
    return removed;
}

/* Create the temporary file `tmp` and lock it (flock) for as long as the
 * save runs, so that lf_st_remove_stale_temps leaves it alone. Returns the
 * descriptor, or -1 with errno set (EEXIST: try another name). A file
 * system without locks saves unlocked: there, no temporary file is ever
 * taken for stale. */
static int create_locked(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    int r;
    while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    struct stat st;
    if (r == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
        /* removed between open and flock by a cleaner that took it for stale */
        close(fd);
        errno = EEXIST;
        return -1;
    }
    return fd;
}

/* Header (with the checksum placeholder at `digits`) and data into a
 * temporary file, checksum patched in, fsync, rename over path. */
static int write_atomically(const char *path, const unsigned char *header, size_t header_size,
                            size_t digits, const lf_st_entry *entries, size_t n)
{
    size_t tmp_size = strlen(path) + 48;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return lf_error_oom(path);
    int fd = -1;
    for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(tmp, tmp_size, "%s.tmp-%ld-%lx", path, (long)getpid(),
                 (unsigned long)ts.tv_nsec + attempt);
        fd = create_locked(tmp);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int err = lf_error(LFLEX_EIO, "%s: cannot create a temporary file next to it: %s", path,
                           strerror(errno));
        free(tmp);
        return err;
    }
    /* a second descriptor keeps the lock from the close below (whose error
     * counts) until after the rename */
    int hold = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    const char *step = NULL;
    uint32_t crc = lf_crc32_update(0, header, header_size);
    if (write_all(fd, header, header_size) != 0)
        step = "write";
    for (size_t i = 0; !step && i < n; i++)
        if (write_tensor(fd, &entries[i], &crc) != 0)
            step = "write";
    char text[9];
    snprintf(text, sizeof text, "%08x", (unsigned)crc);
    if (!step && pwrite(fd, text, 8, (off_t)digits) != 8)
        step = "write";
    if (!step && fsync(fd) != 0)
        step = "fsync";
    int saved_errno = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        saved_errno = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        saved_errno = errno;
    }
    int err;
    if (step) {
        unlink(tmp);
        err = lf_error(LFLEX_EIO, "%s: saving failed at %s (the previous file is unchanged): %s",
                       path, step, strerror(saved_errno));
    } else {
        err = sync_directory(path);
    }
    if (hold >= 0)
        close(hold);
    free(tmp);
    return err;
}

int lf_st_write(const char *path, const lf_st_entry *entries, size_t n, const lf_st_meta *meta,
                size_t n_meta)
{
    if (!path || (n && !entries) || (n_meta && !meta))
        return lf_error(LFLEX_EINVAL, "lf_st_write: NULL argument");
    json_t *root = NULL;
    int err = build_json(&root, path, entries, n, meta, n_meta);
    if (err != LFLEX_OK)
        return err;
    lf_st_remove_stale_temps(path);
    size_t text_len = json_dumpb(root, NULL, 0, JSON_COMPACT);
    size_t header_len = text_len + (8 - text_len % 8) % 8; /* data section 8-byte aligned */
    unsigned char *header = text_len ? malloc(8 + header_len) : NULL;
    if (!header || json_dumpb(root, (char *)header + 8, text_len, JSON_COMPACT) != text_len) {
        err = lf_error_oom(path);
        goto done;
    }
    memset(header + 8 + text_len, ' ', header_len - text_len);
    for (int i = 0; i < 8; i++)
        header[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    size_t digits = 0;
    if (header_len > LF_ST_MAX_HEADER)
        err = lf_error(LFLEX_EINVAL, "%s: header of %zu bytes is over the limit", path, header_len);
    else if (find_crc_digits(header + 8, header_len, &digits) != 1)
        err = lf_error(LFLEX_EINVAL, "%s: a metadata key imitates the " LF_ST_KEY_CRC " entry", path);
    else
        err = write_atomically(path, header, 8 + header_len, 8 + digits, entries, n);
done:
    free(header);
    json_decref(root);
    return err;
}
