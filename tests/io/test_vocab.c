/* Vocabularies: both tokenizers round trip (multi-byte UTF-8 included), ids
 * follow the list order, errors name the token and where it is, buffers too
 * small report the size needed, reserved spellings, the token text rebuilds
 * the same vocabulary, size-only vocabularies, and lookup in a large one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/vocab.h"
#include "lf_error.h"
#include "lflex/model.h"
#include "tests/common/testutil.h"

#define CHAR LF_TOKENIZER_CHAR
#define WORDS LF_TOKENIZER_WORDS

static void assert_error(int rc, int code, const char *part1, const char *part2)
{
    ck_assert_int_eq(rc, code);
    const char *msg = lflex_last_error();
    ck_assert_msg(part1 == NULL || strstr(msg, part1), "message '%s' lacks '%s'", msg, part1);
    ck_assert_msg(part2 == NULL || strstr(msg, part2), "message '%s' lacks '%s'", msg, part2);
}

/* Encode, compare with the expected ids, decode, compare with `back`. */
static void round_trip(const lf_vocab *v, const char *text, const int32_t *want, size_t n_want, const char *back)
{
    int32_t ids[64];
    size_t n = 999;
    int rc = lf_vocab_encode(v, text, strlen(text), ids, 64, &n);
    ck_assert_msg(rc == LFLEX_OK, "encode '%s': %s", text, lflex_last_error());
    ck_assert_uint_eq(n, n_want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "'%s': id %zu is %d, expected %d", text, i, ids[i], want[i]);
    char buf[256];
    size_t len = 999;
    ck_assert_int_eq(lf_vocab_decode(v, ids, n, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, back);
    ck_assert_uint_eq(len, strlen(back));
}

START_TEST(test_char_round_trip_utf8)
{
    /* ids by list position: a=4, é=5 (2 bytes), €=6 (3), 😀=7 (4), ' '=8, \n=9, b=10 */
    const char *tokens = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \nb";
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, CHAR, tokens, 0), LFLEX_OK);
    ck_assert_int_eq(v.n_user, 7);
    const int32_t w1[] = {7, 8, 5, 4, 9, 6, 10, 10};
    const char *t1 = "\xf0\x9f\x98\x80 \xc3\xa9" "a\n\xe2\x82\xac" "bb";
    round_trip(&v, t1, w1, 8, t1); /* characters come back exactly, whitespace included */
    round_trip(&v, "", NULL, 0, "");
    /* reserved ids print their spellings, concatenated */
    int32_t ids[] = {LF_BOS, 4, LF_EOS, LF_PAD, LF_MASK};
    char buf[64];
    size_t len;
    ck_assert_int_eq(lf_vocab_decode(&v, ids, 5, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "<bos>a<eos><pad><mask>");
    lf_vocab_free(&v);
}
END_TEST

START_TEST(test_char_reserved_spelling_is_plain_text)
{
    /* in char mode "<bos>" is five ordinary characters */
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, CHAR, "<bos>", 0), LFLEX_OK);
    const int32_t w[] = {4, 5, 6, 7, 8};
    round_trip(&v, "<bos>", w, 5, "<bos>");
    lf_vocab_free(&v);
}
END_TEST

START_TEST(test_words_round_trip)
{
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, WORDS, "  the cat\tsat\non \xc3\xbc" "ber \xe7\x8c\xab  ", 0), LFLEX_OK);
    ck_assert_int_eq(v.n_user, 6);
    const int32_t w1[] = {4, 5, 6, 7, 8, 9};
    /* whitespace runs become single spaces, ends trimmed */
    round_trip(&v, " \t the  cat\r\nsat on\v\f\xc3\xbc" "ber \xe7\x8c\xab ", w1, 6,
               "the cat sat on \xc3\xbc" "ber \xe7\x8c\xab");
    const int32_t w2[] = {LF_BOS, 5, 5, LF_EOS};
    round_trip(&v, "<bos> cat cat <eos>", w2, 4, "<bos> cat cat <eos>");
    round_trip(&v, "   ", NULL, 0, "");
    /* a word is matched whole: prefixes and extensions are unknown */
    int32_t ids[8];
    size_t n;
    assert_error(lf_vocab_encode(&v, "ca", 2, ids, 8, &n), LFLEX_EINVAL, "\"ca\"", "byte 0");
    assert_error(lf_vocab_encode(&v, "the cats", 8, ids, 8, &n), LFLEX_EINVAL, "\"cats\"", "byte 4");
    ck_assert_uint_eq(n, 0);
    lf_vocab_free(&v);
}
END_TEST

START_TEST(test_unknown_token_offsets)
{
    lf_vocab v;
    int32_t ids[16];
    size_t n;
    ck_assert_int_eq(lf_vocab_build(&v, CHAR, "ab\xc3\xa9", 0), LFLEX_OK);
    /* é is 2 bytes, so 'x' is at byte 3; a 4-byte unknown character is named whole */
    assert_error(lf_vocab_encode(&v, "a\xc3\xa9x", 4, ids, 16, &n), LFLEX_EINVAL, "\"x\"", "byte 3");
    assert_error(lf_vocab_encode(&v, "ab\xf0\x9f\x98\x80", 6, ids, 16, &n), LFLEX_EINVAL,
                 "\"\xf0\x9f\x98\x80\"", "byte 2");
    /* a NUL inside the text is an unknown character, escaped in the message */
    assert_error(lf_vocab_encode(&v, "a\0b", 3, ids, 16, &n), LFLEX_EINVAL, "\"\\x00\"", "byte 1");
    /* invalid UTF-8 in the text */
    assert_error(lf_vocab_encode(&v, "ab\xc3", 3, ids, 16, &n), LFLEX_EINVAL, "UTF-8", "byte 2");
    lf_vocab_free(&v);

    ck_assert_int_eq(lf_vocab_build(&v, WORDS, "x yy", 0), LFLEX_OK);
    assert_error(lf_vocab_encode(&v, "x  yy \"q\"\tx", 11, ids, 16, &n), LFLEX_EINVAL, "\"\\\"q\\\"\"", "byte 6");
    assert_error(lf_vocab_encode(&v, "x <pad>", 7, ids, 16, &n), LFLEX_EINVAL, "<pad>", "byte 2");
    assert_error(lf_vocab_encode(&v, "<mask> x", 8, ids, 16, &n), LFLEX_EINVAL, "<mask>", "byte 0");
    /* case matters: <BOS> is an ordinary (here unknown) word */
    assert_error(lf_vocab_encode(&v, "<BOS>", 5, ids, 16, &n), LFLEX_EINVAL, "<BOS>", "byte 0");
    lf_vocab_free(&v);
}
END_TEST

START_TEST(test_buffer_too_small)
{
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, WORDS, "p q r", 0), LFLEX_OK);
    int32_t ids[5] = {-7, -7, -7, -7, -7};
    size_t n = 0;
    assert_error(lf_vocab_encode(&v, "r q p q r", 9, ids, 2, &n), LFLEX_EINVAL, "too small", "5 tokens");
    ck_assert_uint_eq(n, 5); /* the number needed */
    ck_assert_int_eq(ids[0], 6);
    ck_assert_int_eq(ids[1], 5);
    ck_assert_int_eq(ids[2], -7); /* nothing written past cap */
    n = 0;
    assert_error(lf_vocab_encode(&v, "p q", 3, NULL, 0, &n), LFLEX_EINVAL, "too small", NULL);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(lf_vocab_encode(&v, "r q p q r", 9, ids, 5, &n), LFLEX_OK);

    /* decode: "r q p q r" is 9 bytes, so cap 9 is one short for the NUL */
    char buf[16];
    size_t len = 0;
    memset(buf, 'z', sizeof buf);
    assert_error(lf_vocab_decode(&v, ids, 5, buf, 9, &len), LFLEX_EINVAL, "too small", "9 bytes");
    ck_assert_uint_eq(len, 9);
    ck_assert_str_eq(buf, "");
    assert_error(lf_vocab_decode(&v, ids, 5, NULL, 0, &len), LFLEX_EINVAL, "too small", NULL);
    ck_assert_uint_eq(len, 9);
    ck_assert_int_eq(lf_vocab_decode(&v, ids, 5, buf, 10, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "r q p q r");
    /* ids outside [0, 7) name their position */
    int32_t bad[] = {4, 5, 7};
    assert_error(lf_vocab_decode(&v, bad, 3, buf, sizeof buf, &len), LFLEX_EINVAL, "id 7", "position 2");
    bad[2] = -1;
    assert_error(lf_vocab_decode(&v, bad, 3, buf, sizeof buf, &len), LFLEX_EINVAL, "id -1", "position 2");
    /* nothing to decode still needs room for the NUL */
    ck_assert_int_eq(lf_vocab_decode(&v, NULL, 0, buf, 1, &len), LFLEX_OK);
    ck_assert_uint_eq(len, 0);
    assert_error(lf_vocab_decode(&v, NULL, 0, NULL, 0, &len), LFLEX_EINVAL, "too small", NULL);
    lf_vocab_free(&v);
}
END_TEST

START_TEST(test_bad_token_lists)
{
    lf_vocab v;
    /* reserved spellings in the words list, with the token number and byte */
    static const lf_vocab zero;
    assert_error(lf_vocab_build(&v, WORDS, "a <bos> b", 0), LFLEX_EINVAL, "<bos>", "token 2 (byte 2)");
    ck_assert(memcmp(&v, &zero, sizeof v) == 0); /* nothing left behind */
    assert_error(lf_vocab_build(&v, WORDS, "<eos>", 0), LFLEX_EINVAL, "<eos>", "token 1 (byte 0)");
    assert_error(lf_vocab_build(&v, WORDS, "x\t<pad>", 0), LFLEX_EINVAL, "<pad>", "byte 2");
    assert_error(lf_vocab_build(&v, WORDS, "x y  <mask>", 0), LFLEX_EINVAL, "<mask>", "token 3 (byte 5)");
    /* duplicates: both places */
    assert_error(lf_vocab_build(&v, WORDS, "a b a", 0), LFLEX_EINVAL, "duplicate token \"a\"",
                 "token 3 (byte 4) repeats token 1 (byte 0)");
    assert_error(lf_vocab_build(&v, CHAR, "x\xc3\xa9y\xc3\xa9", 0), LFLEX_EINVAL, "\"\xc3\xa9\"",
                 "token 4 (byte 4) repeats token 2 (byte 1)");
    assert_error(lf_vocab_build(&v, CHAR, "a b ", 0), LFLEX_EINVAL, "\" \"", "token 4 (byte 3)");
    /* invalid UTF-8: overlong, surrogate, above U+10FFFF, truncated, stray
     * continuation, bytes that never occur */
    const char *bad[] = {"ab\xc0\x80", "ab\xed\xa0\x80", "ab\xf4\x90\x80\x80", "ab\xe2\x82", "ab\x80",
                         "ab\xe0\x9f\xbf", "ab\xf0\x8f\xbf\xbf", "ab\xff", "ab\xf5\x80\x80\x80", "ab\xc1\xbf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_error(lf_vocab_build(&v, CHAR, bad[i], 0), LFLEX_EINVAL, "UTF-8", "byte 2");
        assert_error(lf_vocab_build(&v, WORDS, bad[i], 0), LFLEX_EINVAL, "UTF-8", "byte 2");
    }
    assert_error(lf_vocab_build(&v, WORDS, " \t\n ", 0), LFLEX_EINVAL, "whitespace", NULL);
    assert_error(lf_vocab_build(&v, 7, "a", 0), LFLEX_EINVAL, "tokenizer", NULL);
    /* vocab.size must agree with a list when both are given */
    assert_error(lf_vocab_build(&v, WORDS, "a b", 3), LFLEX_EINVAL, "vocab.size is 3", "2 tokens");
    ck_assert_int_eq(lf_vocab_build(&v, WORDS, "a b", 2), LFLEX_OK);
    lf_vocab_free(&v);
    assert_error(lf_vocab_build(&v, WORDS, "", -1), LFLEX_EINVAL, "vocab.size -1", NULL);
    ck_assert(memcmp(&v, &zero, sizeof v) == 0);
    assert_error(lf_vocab_build(&v, WORDS, NULL, (int64_t)INT32_MAX), LFLEX_EINVAL, "vocab.size", NULL);
    lf_vocab_free(&v); /* a zeroed vocabulary may be freed */
    lf_vocab_free(NULL);
}
END_TEST

/* Every code point of a sample written by a plain encoder is one token;
 * surrogates written the same way are refused. */
static size_t put_utf8(char *s, uint32_t c)
{
    if (c < 0x80) {
        s[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        s[0] = (char)(0xc0 | c >> 6);
        s[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        s[0] = (char)(0xe0 | c >> 12);
        s[1] = (char)(0x80 | (c >> 6 & 0x3f));
        s[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    s[0] = (char)(0xf0 | c >> 18);
    s[1] = (char)(0x80 | (c >> 12 & 0x3f));
    s[2] = (char)(0x80 | (c >> 6 & 0x3f));
    s[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

START_TEST(test_code_point_sample)
{
    const uint32_t edges[] = {1, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000,
                              0xfffd, 0xffff, 0x10000, 0x10ffff};
    lf_test_rng r = {42};
    for (int k = 0; k < 2000; k++) {
        uint32_t c = k < 15 ? edges[k] : (uint32_t)lf_test_int(&r, 1, 0x10ffff);
        char s[8];
        size_t n = put_utf8(s, c);
        s[n] = '\0';
        lf_vocab v;
        int rc = lf_vocab_build(&v, CHAR, s, 0);
        if (c >= 0xd800 && c <= 0xdfff) {
            assert_error(rc, LFLEX_EINVAL, "UTF-8", "byte 0");
            continue;
        }
        ck_assert_msg(rc == LFLEX_OK, "U+%04X: %s", c, lflex_last_error());
        ck_assert_int_eq(v.n_user, 1);
        int32_t id = 0;
        size_t m = 0;
        ck_assert_int_eq(lf_vocab_encode(&v, s, n, &id, 1, &m), LFLEX_OK);
        ck_assert_uint_eq(m, 1);
        ck_assert_int_eq(id, LF_N_SPECIAL);
        lf_vocab_free(&v);
    }
}
END_TEST

static void assert_same_vocab(const lf_vocab *a, const lf_vocab *b)
{
    ck_assert_int_eq(a->tokenizer, b->tokenizer);
    ck_assert_int_eq(a->n_user, b->n_user);
    ck_assert_int_eq(a->text == NULL, b->text == NULL);
    for (int64_t i = 0; a->text && i < a->n_user; i++) {
        ck_assert_str_eq(a->text[i], b->text[i]);
        ck_assert_int_eq(a->sorted[i], b->sorted[i]);
    }
}

START_TEST(test_tokens_text_rebuilds)
{
    const struct {
        int tok;
        const char *tokens;
        const char *text;
    } cases[] = {
        {CHAR, "a\xc3\xa9 \t\n\xf0\x9f\x98\x80z", "a\xc3\xa9 \t\n\xf0\x9f\x98\x80z"},
        {WORDS, "\n one  two\t\xe2\x82\xac\xe2\x82\xac  three ", "one two \xe2\x82\xac\xe2\x82\xac three"},
        {WORDS, "solo", "solo"},
        {CHAR, "x", "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_vocab a, b;
        char *text = NULL;
        ck_assert_int_eq(lf_vocab_build(&a, cases[i].tok, cases[i].tokens, 0), LFLEX_OK);
        ck_assert_int_eq(lf_vocab_tokens_text(&a, &text), LFLEX_OK);
        ck_assert_str_eq(text, cases[i].text);
        ck_assert_int_eq(lf_vocab_build(&b, cases[i].tok, text, 0), LFLEX_OK);
        assert_same_vocab(&a, &b);
        free(text);
        lf_vocab_free(&a);
        lf_vocab_free(&b);
    }
}
END_TEST

START_TEST(test_size_only)
{
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, WORDS, "", 7), LFLEX_OK);
    ck_assert_int_eq(v.n_user, 7);
    ck_assert_ptr_null(v.text);
    int32_t ids[4];
    size_t n = 9;
    assert_error(lf_vocab_encode(&v, "a", 1, ids, 4, &n), LFLEX_EINVAL, "no text", "vocab.size only");
    ck_assert_uint_eq(n, 0);
    assert_error(lf_vocab_encode(&v, "", 0, ids, 4, &n), LFLEX_EINVAL, "no text", NULL);
    /* decode shows user ids as <id>, spaced, whatever the tokenizer */
    const int32_t show[] = {LF_BOS, 4, 10, LF_EOS};
    char buf[64];
    size_t len;
    ck_assert_int_eq(lf_vocab_decode(&v, show, 4, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "<bos> <4> <10> <eos>");
    ck_assert_uint_eq(len, strlen(buf));
    const int32_t out[] = {11};
    assert_error(lf_vocab_decode(&v, out, 1, buf, sizeof buf, &len), LFLEX_EINVAL, "id 11", "[0, 11)");
    char *text = NULL;
    ck_assert_int_eq(lf_vocab_tokens_text(&v, &text), LFLEX_OK);
    ck_assert_str_eq(text, "");
    free(text);
    lf_vocab_free(&v);

    ck_assert_int_eq(lf_vocab_build(&v, CHAR, NULL, 3), LFLEX_OK);
    ck_assert_int_eq(lf_vocab_decode(&v, show, 2, buf, sizeof buf, &len), LFLEX_OK);
    ck_assert_str_eq(buf, "<bos> <4>");
    lf_vocab_free(&v);
    /* no tokens at all */
    ck_assert_int_eq(lf_vocab_build(&v, CHAR, "", 0), LFLEX_OK);
    ck_assert_int_eq(v.n_user, 0);
    lf_vocab_free(&v);
}
END_TEST

/* 100k distinct words in a scrambled order: every word encodes to its list
 * position, and words that differ in one character are not confused. */
START_TEST(test_large_vocabulary)
{
    enum { N = 100000 };
    char *list = malloc((size_t)N * 12);
    ck_assert_ptr_nonnull(list);
    size_t o = 0;
    for (int i = 0; i < N; i++) {
        /* a bijection of [0, N) so the list is not sorted */
        unsigned k = (unsigned)(((uint64_t)i * 7919u + 13u) % N);
        o += (size_t)sprintf(list + o, "%sw%u", i ? " " : "", k);
    }
    lf_vocab v;
    ck_assert_int_eq(lf_vocab_build(&v, WORDS, list, 0), LFLEX_OK);
    ck_assert_int_eq(v.n_user, N);
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    size_t n = 0;
    ck_assert_int_eq(lf_vocab_encode(&v, list, o, ids, N, &n), LFLEX_OK);
    ck_assert_uint_eq(n, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ids[i], LF_N_SPECIAL + i);
    int32_t one;
    assert_error(lf_vocab_encode(&v, "w100000", 7, &one, 1, &n), LFLEX_EINVAL, "\"w100000\"", NULL);
    assert_error(lf_vocab_encode(&v, "w", 1, &one, 1, &n), LFLEX_EINVAL, "\"w\"", NULL);
    free(ids);
    free(list);
    lf_vocab_free(&v);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("io_vocab");
    TCase *tc = tcase_create("vocab");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_char_round_trip_utf8);
    tcase_add_test(tc, test_char_reserved_spelling_is_plain_text);
    tcase_add_test(tc, test_words_round_trip);
    tcase_add_test(tc, test_unknown_token_offsets);
    tcase_add_test(tc, test_buffer_too_small);
    tcase_add_test(tc, test_bad_token_lists);
    tcase_add_test(tc, test_code_point_sample);
    tcase_add_test(tc, test_tokens_text_rebuilds);
    tcase_add_test(tc, test_size_only);
    tcase_add_test(tc, test_large_vocabulary);
    suite_add_tcase(s, tc);
    return s;
}
