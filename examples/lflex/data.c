/* Data files: one example per line, TARGET or PROMPT<TAB>TARGET. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* length of the UTF-8 character at s (1 for a stray byte) */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0)
        return 2;
    if ((s[0] & 0xF0) == 0xE0)
        return 3;
    if ((s[0] & 0xF8) == 0xF0)
        return 4;
    return 1;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

bool cli_next_line(cli_lines *it, char **line, size_t *n)
{
    if (it->pos >= it->len)
        return false;
    char *s = it->text + it->pos;
    size_t k = 0, rest = it->len - it->pos;
    while (k < rest && s[k] != '\n' && s[k] != '\r')
        k++;
    size_t brk = k == rest ? 0 : s[k] == '\r' && k + 1 < rest && s[k + 1] == '\n' ? 2 : 1;
    s[k] = '\0';
    it->pos += k + brk;
    it->line_no++;
    *line = s;
    *n = k;
    return true;
}

static const char *const reserved_spelling[] = {"<pad>", "<mask>", "<bos>", "<eos>"};

static const char *reserved_at(const char *s, size_t n)
{
    for (size_t r = 0; r < sizeof reserved_spelling / sizeof *reserved_spelling; r++)
        if (strlen(reserved_spelling[r]) == n && memcmp(s, reserved_spelling[r], n) == 0)
            return reserved_spelling[r];
    return NULL;
}

bool cli_reads_reserved(const lflex_model_t *m)
{
    int32_t ids[8];
    size_t n = 0;
    return lflex_model_encode(m, "<eos>", 5, ids, 8, &n) == LFLEX_OK && n == 1 && ids[0] == LFLEX_TOKEN_EOS;
}

static size_t column_of(const char *line, size_t at)
{
    size_t col = 1;
    for (size_t i = 0; i < at; i++)
        col += ((unsigned char)line[i] & 0xC0) != 0x80;
    return col;
}

const char *cli_line_problem(const char *line, size_t n, bool reserved, size_t *col, char *buf, size_t cap)
{
    const char *nul = memchr(line, '\0', n);
    if (nul) {
        *col = column_of(line, (size_t)(nul - line));
        snprintf(buf, cap, "a NUL byte (data and prompt files are text)");
        return buf;
    }
    for (size_t i = 0; reserved && i < n;) {
        if (is_space(line[i])) {
            i++;
            continue;
        }
        size_t k = 0;
        while (i + k < n && !is_space(line[i + k]))
            k++;
        const char *r = reserved_at(line + i, k);
        if (r) {
            *col = column_of(line, i);
            snprintf(buf, cap, "%s is a reserved token, not text (<bos> and <eos> are added to every example)", r);
            return buf;
        }
        i += k;
    }
    return NULL;
}

int cli_vocab_from_file(const char *path, const char *tokenizer, char **tokens)
{
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_fail("%s: %s", path, strerror(errno));
    bool chars = !strcmp(tokenizer, "char");
    char **items = NULL, *line;
    size_t n = 0, cap = 0, ll;
    cli_lines it = {.text = text, .len = len};
    while (cli_next_line(&it, &line, &ll)) {
        size_t col;
        char why[160];
        if (cli_line_problem(line, ll, false, &col, why, sizeof why)) {
            for (size_t i = 0; i < n; i++)
                free(items[i]);
            free(items);
            free(text);
            return cli_fail("%s:%zu:%zu: %s", path, it.line_no, col, why);
        }
        for (size_t i = 0; i < ll;) {
            size_t k;
            if (chars) {
                if (line[i] == '\t') { /* the prompt's separator */
                    i++;
                    continue;
                }
                k = utf8_len((const unsigned char *)line + i);
                if (k > ll - i)
                    k = ll - i;
            } else {
                if (is_space(line[i])) {
                    i++;
                    continue;
                }
                for (k = 0; i + k < ll && !is_space(line[i + k]); k++)
                    ;
                if (reserved_at(line + i, k)) { /* never a user token: the loader names it */
                    i += k;
                    continue;
                }
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                items = realloc(items, cap * sizeof *items);
            }
            items[n++] = strndup(line + i, k);
            i += k;
        }
    }
    free(text);
    qsort(items, n, sizeof *items, cmp_str);
    cli_buf out = {0};
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(items[i], items[i - 1])) {
            if (!chars && distinct)
                buf_add(&out, " ", 1);
            buf_add(&out, items[i], strlen(items[i]));
            distinct++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
    if (!distinct) {
        buf_free(&out);
        return cli_fail("%s: no token in the file", path);
    }
    *tokens = out.s;
    return 0;
}

int cli_data_add(cli_data *d, const int32_t *prompt, size_t n_prompt, const int32_t *target, size_t n_target)
{
    size_t n = (prompt ? n_prompt + 1 : 0) + n_target + 1, at = d->n ? d->offsets[d->n] : 0;
    if (at + n > d->cap_tok) {
        size_t cap = d->cap_tok ? d->cap_tok : 4096;
        while (cap < at + n)
            cap *= 2;
        d->tokens = realloc(d->tokens, cap * sizeof *d->tokens);
        d->fixed = realloc(d->fixed, cap);
        d->cap_tok = cap;
    }
    if (d->n + 2 > d->cap_seq) {
        size_t cap = d->cap_seq ? 2 * d->cap_seq : 1024;
        d->offsets = realloc(d->offsets, (cap + 1) * sizeof *d->offsets);
        d->target_start = realloc(d->target_start, cap * sizeof *d->target_start);
        d->cap_seq = cap;
    }
    if (!d->tokens || !d->fixed || !d->offsets || !d->target_start)
        return cli_fail("out of memory while loading data");
    if (d->n == 0)
        d->offsets[0] = 0;
    size_t k = at;
    if (prompt) {
        for (size_t i = 0; i < n_prompt; i++) {
            d->tokens[k] = prompt[i];
            d->fixed[k++] = 1;
        }
        d->tokens[k] = LFLEX_TOKEN_BOS;
        d->fixed[k++] = 1;
        d->conditional = true;
    }
    d->target_start[d->n] = k - at;
    for (size_t i = 0; i < n_target; i++) {
        d->tokens[k] = target[i];
        d->fixed[k++] = 0;
    }
    d->tokens[k] = LFLEX_TOKEN_EOS;
    d->fixed[k++] = 1;
    d->offsets[++d->n] = k;
    return 0;
}

void cli_data_free(cli_data *d)
{
    free(d->tokens);
    free(d->fixed);
    free(d->offsets);
    free(d->target_start);
    memset(d, 0, sizeof *d);
}

int cli_data_load(cli_data *d, const lflex_model_t *m, const char *path, bool skip_bad)
{
    memset(d, 0, sizeof *d);
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text)
        return cli_fail("%s: %s", path, strerror(errno));
    int64_t max_len;
    lflex_model_get(m, LFLEX_PROP_MAX_LEN, &max_len);
    size_t cap = (size_t)max_len + 1;
    int32_t *p = malloc(cap * sizeof *p), *t = malloc(cap * sizeof *t);
    int rc = 0;
    char *line;
    size_t ll;
    cli_lines it = {.text = text, .len = len};
    bool reserved = cli_reads_reserved(m);
    while (!rc && cli_next_line(&it, &line, &ll)) {
        if (ll == 0) /* blank lines are not examples */
            continue;
        char *tab = memchr(line, '\t', ll);
        const char *target = tab ? tab + 1 : line;
        size_t np = 0, nt = 0, col = 0;
        int st = 0;
        char buf[160];
        const char *why = cli_line_problem(line, ll, reserved, &col, buf, sizeof buf);
        if (why && !memchr(line, '\0', ll) && skip_bad) { /* a NUL is never skipped: the file is not text */
            d->skipped++;
            continue;
        }
        if (why) {
            rc = cli_fail("%s:%zu:%zu: %s", path, it.line_no, col, why);
            break;
        }
        if (tab)
            st = lflex_model_encode(m, line, (size_t)(tab - line), p, cap, &np);
        if (!st)
            st = lflex_model_encode(m, target, (size_t)(line + ll - target), t, cap, &nt);
        bool special = false; /* cli_line_problem names them; this is a safety net */
        for (size_t i = 0; !st && i < np + nt; i++)
            special |= (i < np ? p[i] : t[i - np]) < LFLEX_TOKEN_FIRST_USER;
        if (st)
            why = lflex_last_error();
        else if (special)
            why = "a reserved token, not text";
        else if (nt == 0)
            why = "the target is empty";
        else if ((tab ? np + 1 : 0) + nt + 1 > (size_t)max_len)
            why = "longer than model.max_len";
        if (why) {
            if (skip_bad)
                d->skipped++;
            else
                rc = cli_fail("%s:%zu: %s", path, it.line_no, why);
        } else {
            rc = cli_data_add(d, tab ? p : NULL, np, t, nt);
        }
    }
    free(p);
    free(t);
    free(text);
    if (!rc && d->n == 0)
        rc = cli_fail("%s: no example", path);
    if (rc)
        cli_data_free(d);
    return rc;
}

int cli_encode_marked(const lflex_model_t *m, const char *text, int32_t *ids, uint8_t *open, size_t cap, size_t *n)
{
    *n = 0;
    bool gap_next = false;
    const char *s = text;
    while (*s) {
        const char *gap = strstr(s, "[GAP]"), *mask = strstr(s, "[MASK]");
        const char *mark = gap && (!mask || gap < mask) ? gap : mask;
        size_t seg = mark ? (size_t)(mark - s) : strlen(s), k = 0;
        if (seg && lflex_model_encode(m, s, seg, ids + *n, cap - *n, &k))
            return cli_fail_lib("encode");
        for (size_t i = 0; i < k; i++) {
            open[*n + i] = i == 0 && gap_next;
            if (i == 0)
                gap_next = false;
        }
        *n += k;
        if (!mark)
            break;
        if (mark == mask) {
            if (*n >= cap)
                return cli_fail("the text is longer than the model's max_len");
            ids[*n] = LFLEX_TOKEN_MASK;
            open[(*n)++] = gap_next;
            gap_next = false;
            s = mark + 6;
        } else {
            gap_next = true;
            s = mark + 5;
        }
    }
    if (*n == 0 || ids[*n - 1] != LFLEX_TOKEN_EOS) {
        if (*n >= cap)
            return cli_fail("the text is longer than the model's max_len");
        ids[*n] = LFLEX_TOKEN_EOS;
        open[(*n)++] = gap_next;
    } else if (gap_next) {
        open[*n - 1] = 1;
    }
    return 0;
}
