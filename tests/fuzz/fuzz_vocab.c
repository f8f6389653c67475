/* Fuzz target for vocabularies. Input: one byte choosing the tokenizer (low
 * bit: 0 char, 1 words), then the token list up to the first NUL byte, then
 * the text to encode (the rest, NULs included). An empty token list makes a
 * size-only vocabulary of (first byte >> 1) tokens.
 *
 * Whatever the input: building fails with LFLEX_EINVAL and a message, or the
 * vocabulary's token text rebuilds the same vocabulary; every id decodes and
 * the decoded ids encode back to themselves; a text that encodes decodes to
 * itself, normalised (words: whitespace runs become one space, ends
 * trimmed); a buffer one short reports the size needed. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/vocab.h"
#include "lf_error.h"
#include "lflex/model.h"
#include "tests/fuzz/fuzz_target.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_vocab: %s (%s)\n", what, lflex_last_error());
        abort();
    }
}

static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* words: the text with whitespace runs made single spaces, ends trimmed */
static size_t normalise_words(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        if (i == n)
            break;
        if (o)
            out[o++] = ' ';
        while (i < n && !is_space((unsigned char)s[i]))
            out[o++] = s[i++];
    }
    return o;
}

static void check_decode(const lf_vocab *v, const int32_t *ids, size_t n, char **text, size_t *len)
{
    size_t need = 0;
    int rc = lf_vocab_decode(v, ids, n, NULL, 0, &need);
    check(rc == LFLEX_EINVAL, "decode into no buffer succeeded");
    char *buf = malloc(need + 1);
    check(buf != NULL, "out of memory");
    if (need > 0) {
        size_t got = 0;
        rc = lf_vocab_decode(v, ids, n, buf, need, &got);
        check(rc == LFLEX_EINVAL && got == need, "decode into a buffer one short");
    }
    rc = lf_vocab_decode(v, ids, n, buf, need + 1, len);
    check(rc == LFLEX_OK && *len == need && strlen(buf) == need, "decode");
    *text = buf;
}

static void with_vocab(const lf_vocab *v, const char *text, size_t len)
{
    /* every id but PAD and MASK (which encode refuses) decodes and encodes back */
    int64_t V = LF_N_SPECIAL + v->n_user;
    int32_t *all = malloc((size_t)V * sizeof *all), *back = malloc((size_t)V * sizeof *back);
    check(all && back, "out of memory");
    size_t n_all = 0;
    for (int64_t id = 0; id < V; id++)
        if (id != LF_PAD && id != LF_MASK && (id >= LF_N_SPECIAL || v->tokenizer == LF_TOKENIZER_WORDS))
            all[n_all++] = (int32_t)id;
    char *dec;
    size_t dec_len, n;
    check_decode(v, all, n_all, &dec, &dec_len);
    int rc = lf_vocab_encode(v, dec, dec_len, back, (size_t)V, &n);
    check(rc == LFLEX_OK && n == n_all && memcmp(all, back, n * sizeof *all) == 0, "decoded ids do not encode back");
    free(dec);
    free(all);
    free(back);

    /* the fuzz text */
    size_t cap = len + 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    check(ids != NULL, "out of memory");
    rc = lf_vocab_encode(v, text, len, ids, cap, &n);
    if (rc != LFLEX_OK) {
        check(rc == LFLEX_EINVAL && lflex_last_error()[0] && n == 0, "failed encode");
        free(ids);
        return;
    }
    check(n <= len, "more ids than bytes");
    if (n > 0) {
        size_t m = 0;
        rc = lf_vocab_encode(v, text, len, ids, n - 1, &m);
        check(rc == LFLEX_EINVAL && m == n, "encode into a buffer one short");
    }
    check_decode(v, ids, n, &dec, &dec_len);
    if (v->tokenizer == LF_TOKENIZER_WORDS) {
        char *norm = malloc(len + 1);
        check(norm != NULL, "out of memory");
        size_t k = normalise_words(text, len, norm);
        check(k == dec_len && memcmp(norm, dec, k) == 0, "words: decode(encode(x)) is not x normalised");
        free(norm);
    } else
        check(dec_len == len && memcmp(text, dec, len) == 0, "char: decode(encode(x)) is not x");
    free(dec);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int tokenizer = data[0] & 1 ? LF_TOKENIZER_WORDS : LF_TOKENIZER_CHAR;
    int64_t size_only = data[0] >> 1;
    data++;
    size--;
    const uint8_t *sep = memchr(data, 0, size);
    size_t list_len = sep ? (size_t)(sep - data) : size;
    char *list = malloc(list_len + 1);
    check(list != NULL, "out of memory");
    memcpy(list, data, list_len);
    list[list_len] = '\0';
    const char *text = sep ? (const char *)sep + 1 : (const char *)data + size;
    size_t len = sep ? size - list_len - 1 : 0;

    lf_vocab v;
    int rc = lf_vocab_build(&v, tokenizer, list, list_len ? 0 : size_only);
    if (rc != LFLEX_OK) {
        check(rc == LFLEX_EINVAL || rc == LFLEX_ENOMEM, "unexpected status");
        check(lflex_last_error()[0] != '\0', "failure without a message");
        check(v.text == NULL && v.sorted == NULL && v.n_user == 0, "failed build left something");
        free(list);
        return 0;
    }
    if (!v.text) {
        /* size-only: no encoding, decoding shows ids */
        int32_t id;
        size_t n = 7;
        check(lf_vocab_encode(&v, text, len, &id, 1, &n) == LFLEX_EINVAL && n == 0, "size-only encode");
        check(v.n_user == size_only, "size-only count");
        for (size_t i = 0; i < len; i++) {
            int32_t one = (int32_t)((unsigned char)text[i] % (LF_N_SPECIAL + v.n_user));
            char *dec;
            size_t dec_len;
            check_decode(&v, &one, 1, &dec, &dec_len);
            check(dec[0] == '<' && dec[dec_len - 1] == '>', "size-only decode");
            free(dec);
        }
    } else {
        char *again = NULL;
        check(lf_vocab_tokens_text(&v, &again) == LFLEX_OK, "tokens text");
        lf_vocab w;
        check(lf_vocab_build(&w, tokenizer, again, 0) == LFLEX_OK && w.n_user == v.n_user, "rebuild");
        for (int64_t i = 0; i < v.n_user; i++)
            check(strcmp(v.text[i], w.text[i]) == 0 && v.sorted[i] == w.sorted[i], "rebuilt vocabulary differs");
        lf_vocab_free(&w);
        free(again);
        with_vocab(&v, text, len);
    }
    lf_vocab_free(&v);
    free(list);
    return 0;
}
