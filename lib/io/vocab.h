/* Vocabularies: text <-> token ids. Ids 0..3 are PAD, MASK, BOS, EOS; user
 * tokens follow in the order given. Two tokenizers: `char` (every UTF-8
 * character is a token, whitespace included) and `words` (tokens separated
 * by ASCII whitespace: space, \t, \n, \v, \f, \r). A vocabulary given only
 * by its size has no text (ids only).
 *
 * Messages (lf_error) name the token, quoted, and its place: the token's
 * 1-based number in the list and its byte offset when building, the byte
 * offset in the text when encoding, the position when decoding. They do not
 * name the config key; callers prefix it. */
#ifndef LF_IO_VOCAB_H
#define LF_IO_VOCAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_vocab {
    int tokenizer;        /* lf_tokenizer */
    int64_t n_user;       /* user tokens */
    char **text;          /* [n_user] NUL-terminated, NULL when ids only; the
                             strings live in the same allocation */
    int32_t *sorted;      /* user token indices sorted by text, for lookup */
} lf_vocab;

/* Build from the config's vocab.tokens (or vocab.size when empty).
 * LFLEX_EINVAL for an unknown tokenizer, a duplicate token, invalid UTF-8,
 * a reserved spelling as a words token (<pad>, <mask>, <bos>, <eos>), a list
 * of only whitespace, a non-zero `size` that differs from the number of
 * tokens listed, or a size outside [0, INT32_MAX - 4]. *v is zeroed on
 * failure (lf_vocab_free() is still allowed). */
int lf_vocab_build(lf_vocab *v, int tokenizer, const char *tokens, int64_t size);
void lf_vocab_free(lf_vocab *v); /* accepts NULL and a zeroed vocabulary */
/* The vocab.tokens text that rebuilds this vocabulary (malloc'd): the
 * characters concatenated or the words joined by single spaces; "" for a
 * vocabulary without text (rebuilt from its size). */
int lf_vocab_tokens_text(const lf_vocab *v, char **out);
/* Text -> ids. *n gets the number of ids (also when cap is too small:
 * LFLEX_EINVAL "buffer too small", then the first cap ids are written), 0 on
 * other errors. Invalid UTF-8 and unknown tokens: LFLEX_EINVAL with the byte
 * offset. The reserved spellings <bos> and <eos> (words tokenizer) map to BOS
 * and EOS; <pad> and <mask> are refused. Whitespace only separates words, so
 * decode(encode(x)) is x with its whitespace runs made single spaces and
 * trimmed (words), or x itself (char). A vocabulary without text cannot
 * encode: LFLEX_EINVAL. */
int lf_vocab_encode(const lf_vocab *v, const char *text, size_t len, int32_t *ids, size_t cap, size_t *n);
/* Ids -> text (words joined by single spaces; characters concatenated);
 * reserved ids are written <pad>, <mask>, <bos>, <eos>. A vocabulary without
 * text writes user tokens as <id> (decimal), joined by single spaces, so
 * that its ids can still be shown. *len gets the text length without the
 * NUL (also when cap is too small: LFLEX_EINVAL, buf gets ""); cap must hold
 * it plus the NUL. An id outside [0, 4 + n_user) is LFLEX_EINVAL with its
 * position. */
int lf_vocab_decode(const lf_vocab *v, const int32_t *ids, size_t n, char *buf, size_t cap, size_t *len);

#endif
