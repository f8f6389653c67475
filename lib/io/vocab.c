/* Vocabularies: building from the config's token list, text <-> ids.
 *
 * The token strings live in one allocation: the pointer array `text`
 * followed by the NUL-terminated strings it points to, so a vocabulary of
 * 100k words costs two allocations. Lookup is a binary search over `sorted`
 * (indices ordered by the bytes of their text, as strcmp orders them). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/vocab.h"
#include "lf_error.h"
#include "lflex/model.h"

/* ids are int32_t: the largest number of user tokens that still fits */
#define MAX_USER ((int64_t)INT32_MAX - LF_N_SPECIAL)
/* longest token text quoted in a message */
#define QUOTE_MAX 48

static const char *const reserved_spelling[LF_N_SPECIAL] = {"<pad>", "<mask>", "<bos>", "<eos>"};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Length of the valid UTF-8 character at s (at most n bytes available), or 0
 * when the bytes there are not one: overlong forms, surrogates and code
 * points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Byte offset of the first invalid UTF-8 sequence, or n when all is valid. */
static size_t utf8_invalid_at(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char_len(s + i, n - i);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

/* A token's text for a message: in double quotes, control characters,
 * quotes and backslashes escaped, cut after QUOTE_MAX bytes (at a character
 * boundary; the text is valid UTF-8 wherever this is used). */
static const char *quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= QUOTE_MAX && (c & 0xc0) != 0x80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
/* room for quote(): 4 bytes per escaped byte, the cut-off and the quotes */
#define QUOTE_CAP (4 * (QUOTE_MAX + 4) + 8)

/* Compare a span of bytes with a NUL-terminated token in strcmp's order. */
static int cmp_span(const char *s, size_t n, const char *t)
{
    size_t i = 0;
    for (; i < n && t[i]; i++)
        if (s[i] != t[i])
            return (unsigned char)s[i] < (unsigned char)t[i] ? -1 : 1;
    if (i < n)
        return 1;
    return t[i] ? -1 : 0;
}

/* User index (0-based) of the token spelt s[0..n), or -1. */
static int64_t lookup(const lf_vocab *v, const char *s, size_t n)
{
    int64_t lo = 0, hi = v->n_user;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int32_t k = v->sorted[mid];
        int c = cmp_span(s, n, v->text[k]);
        if (c == 0)
            return k;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

typedef struct {
    const char *text;
    int32_t index;
} sort_item;

static int by_text(const void *pa, const void *pb)
{
    const sort_item *a = pa, *b = pb;
    int c = strcmp(a->text, b->text);
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

/* Advance *pos past the next token (the text is valid UTF-8): the token is
 * s[*start, *pos); returns its length, 0 when only whitespace was left. */
static size_t next_token(int tokenizer, const char *s, size_t n, size_t *pos, size_t *start)
{
    size_t i = *pos;
    if (tokenizer == LF_TOKENIZER_WORDS) {
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        *start = i;
        while (i < n && !is_space((unsigned char)s[i]))
            i++;
    } else {
        *start = i;
        if (i < n)
            i += utf8_char_len((const unsigned char *)s + i, n - i); /* validated before */
    }
    *pos = i;
    return i - *start;
}

static int build_fail(lf_vocab *v, size_t *offsets, sort_item *items, int code)
{
    free(offsets);
    free(items);
    lf_vocab_free(v);
    return code;
}

int lf_vocab_build(lf_vocab *v, int tokenizer, const char *tokens, int64_t size)
{
    memset(v, 0, sizeof *v);
    if (tokenizer != LF_TOKENIZER_CHAR && tokenizer != LF_TOKENIZER_WORDS)
        return lf_error(LFLEX_EINVAL, "unknown tokenizer %d", tokenizer);
    if (size < 0 || size > MAX_USER)
        return lf_error(LFLEX_EINVAL, "vocab.size %lld is outside [0, %lld]", (long long)size, (long long)MAX_USER);
    if (!tokens || !*tokens) {
        v->tokenizer = tokenizer;
        v->n_user = size;
        return LFLEX_OK;
    }
    size_t len = strlen(tokens);
    size_t bad = utf8_invalid_at(tokens, len);
    if (bad < len)
        return lf_error(LFLEX_EINVAL, "invalid UTF-8 at byte %zu", bad);

    size_t count = 0, pos = 0, start;
    while (pos < len)
        if (next_token(tokenizer, tokens, len, &pos, &start))
            count++;
    if (count == 0)
        return lf_error(LFLEX_EINVAL, "the token list holds only whitespace");
    if ((int64_t)count > MAX_USER)
        return lf_error(LFLEX_EINVAL, "%zu tokens are more than the %lld ids allow", count, (long long)MAX_USER);
    if (size != 0 && size != (int64_t)count)
        return lf_error(LFLEX_EINVAL, "vocab.size is %lld but the token list holds %zu tokens (leave vocab.size 0)",
                        (long long)size, count);

    /* pointers, then the strings: each token's bytes and a NUL (at most
     * len + count bytes, as tokens never overlap) */
    size_t *offsets = malloc(count * sizeof *offsets);
    sort_item *items = malloc(count * sizeof *items);
    v->text = malloc(count * sizeof *v->text + len + count);
    v->sorted = malloc(count * sizeof *v->sorted);
    v->tokenizer = tokenizer;
    v->n_user = (int64_t)count;
    if (!offsets || !items || !v->text || !v->sorted)
        return build_fail(v, offsets, items, lf_error_oom("lf_vocab_build"));
    char *blob = (char *)(v->text + count);
    char q[QUOTE_CAP];
    size_t k = 0;
    pos = 0;
    while (pos < len) {
        size_t n = next_token(tokenizer, tokens, len, &pos, &start);
        if (!n)
            continue;
        memcpy(blob, tokens + start, n);
        blob[n] = '\0';
        for (int r = 0; r < LF_N_SPECIAL && tokenizer == LF_TOKENIZER_WORDS; r++)
            if (strcmp(blob, reserved_spelling[r]) == 0)
                return build_fail(v, offsets, items,
                                  lf_error(LFLEX_EINVAL, "token %zu (byte %zu) is %s, a reserved spelling", k + 1,
                                           start, reserved_spelling[r]));
        v->text[k] = blob;
        offsets[k] = start;
        items[k].text = blob;
        items[k].index = (int32_t)k;
        blob += n + 1;
        k++;
    }
    qsort(items, count, sizeof *items, by_text);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(items[i - 1].text, items[i].text) == 0) {
            int32_t a = items[i - 1].index, b = items[i].index;
            return build_fail(v, offsets, items,
                              lf_error(LFLEX_EINVAL, "duplicate token %s: token %d (byte %zu) repeats token %d (byte %zu)",
                                       quote(q, sizeof q, items[i].text, strlen(items[i].text)), b + 1, offsets[b],
                                       a + 1, offsets[a]));
        }
        v->sorted[i] = items[i].index;
    }
    free(offsets);
    free(items);
    return LFLEX_OK;
}

void lf_vocab_free(lf_vocab *v)
{
    if (!v)
        return;
    free(v->text);
    free(v->sorted);
    memset(v, 0, sizeof *v);
}

int lf_vocab_tokens_text(const lf_vocab *v, char **out)
{
    *out = NULL;
    size_t total = 1;
    if (v->text)
        for (int64_t i = 0; i < v->n_user; i++)
            total += strlen(v->text[i]) + 1;
    char *s = malloc(total);
    if (!s)
        return lf_error_oom("lf_vocab_tokens_text");
    size_t o = 0;
    if (v->text)
        for (int64_t i = 0; i < v->n_user; i++) {
            if (i > 0 && v->tokenizer == LF_TOKENIZER_WORDS)
                s[o++] = ' ';
            size_t n = strlen(v->text[i]);
            memcpy(s + o, v->text[i], n);
            o += n;
        }
    s[o] = '\0';
    *out = s;
    return LFLEX_OK;
}

int lf_vocab_encode(const lf_vocab *v, const char *text, size_t len, int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    if (!v->text)
        return lf_error(LFLEX_EINVAL, "this vocabulary has no text (vocab.size only): it cannot encode");
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len)
        return lf_error(LFLEX_EINVAL, "invalid UTF-8 at byte %zu", bad);
    char q[QUOTE_CAP];
    size_t count = 0, pos = 0, start;
    while (pos < len) {
        size_t k = next_token(v->tokenizer, text, len, &pos, &start);
        if (!k)
            continue;
        int64_t id = -1;
        if (v->tokenizer == LF_TOKENIZER_WORDS)
            for (int r = 0; r < LF_N_SPECIAL; r++)
                if (cmp_span(text + start, k, reserved_spelling[r]) == 0) {
                    if (r != LF_BOS && r != LF_EOS)
                        return lf_error(LFLEX_EINVAL, "reserved token %s at byte %zu cannot be encoded",
                                        reserved_spelling[r], start);
                    id = r;
                }
        if (id < 0) {
            int64_t u = lookup(v, text + start, k);
            if (u < 0)
                return lf_error(LFLEX_EINVAL, "unknown %s %s at byte %zu",
                                v->tokenizer == LF_TOKENIZER_WORDS ? "token" : "character",
                                quote(q, sizeof q, text + start, k), start);
            id = LF_N_SPECIAL + u;
        }
        if (count < cap)
            ids[count] = (int32_t)id;
        count++;
    }
    *n = count;
    if (count > cap)
        return lf_error(LFLEX_EINVAL, "buffer too small: the text has %zu tokens, room for %zu", count, cap);
    return LFLEX_OK;
}

/* The text of one id: a token, a reserved spelling, or "<id>" when the
 * vocabulary has no text. `tmp` holds the last case. */
static const char *id_text(const lf_vocab *v, int32_t id, char *tmp, size_t cap, size_t *n)
{
    const char *s;
    if (id < LF_N_SPECIAL)
        s = reserved_spelling[id];
    else if (v->text)
        s = v->text[id - LF_N_SPECIAL];
    else {
        snprintf(tmp, cap, "<%d>", (int)id);
        s = tmp;
    }
    *n = strlen(s);
    return s;
}

int lf_vocab_decode(const lf_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    if (buf && cap)
        buf[0] = '\0';
    const int64_t V = LF_N_SPECIAL + v->n_user;
    const bool spaced = v->tokenizer == LF_TOKENIZER_WORDS || !v->text;
    char tmp[16];
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return lf_error(LFLEX_EINVAL, "id %d at position %zu is outside [0, %lld)", (int)ids[i], i, (long long)V);
        size_t k;
        id_text(v, ids[i], tmp, sizeof tmp, &k);
        need += k + (spaced && i > 0);
    }
    *len = need;
    if (need >= cap)
        return lf_error(LFLEX_EINVAL, "buffer too small: the text needs %zu bytes and a NUL, room for %zu", need, cap);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = id_text(v, ids[i], tmp, sizeof tmp, &k);
        if (spaced && i > 0)
            buf[o++] = ' ';
        memcpy(buf + o, s, k);
        o += k;
    }
    buf[o] = '\0';
    return LFLEX_OK;
}
