#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

volatile int cli_interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

void cli_catch_interrupt(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("lflex: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_fail_lib(const char *what)
{
    return cli_fail("%s: %s", what, lflex_last_error());
}

int cli_make_dir(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return cli_fail("%s: out of memory", path);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int rc = cli_fail("%s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *c = '/';
    }
    free(p);
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return 0;
    return cli_fail("%s: %s", path, strerror(errno));
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    cli_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err || !b.s) {
        if (!err && !b.s) { /* an empty file */
            b.s = calloc(1, 1);
            if (len)
                *len = 0;
            return b.s;
        }
        buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.s;
}

char *cli_path_near(const char *base, const char *path)
{
    if (path[0] == '/' || !strchr(base, '/'))
        return strdup(path);
    size_t dir = (size_t)(strrchr(base, '/') - base);
    char *out = malloc(dir + 1 + strlen(path) + 1);
    if (out)
        sprintf(out, "%.*s/%s", (int)dir, base, path);
    return out;
}

uint64_t cli_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void buf_add(cli_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            fprintf(stderr, "lflex: out of memory\n");
            exit(1);
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void buf_printf(cli_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

void buf_free(cli_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

json_t *cli_json_real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* A JSON string of text; bytes of text that is not valid UTF-8 become '?'. */
static json_t *json_text(char *s)
{
    json_t *j = json_string(s);
    if (!j) {
        for (char *c = s; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        j = json_string(s);
    }
    return j;
}

json_t *cli_json_string(const char *s)
{
    char *c = strdup(s);
    json_t *j = c ? json_text(c) : NULL;
    free(c);
    return j;
}

json_t *cli_json_text(const lflex_model_t *m, const int32_t *ids, size_t n)
{
    char small[4096];
    size_t need;
    if (lflex_model_decode(m, ids, n, small, sizeof small, &need) == LFLEX_OK)
        return json_text(small);
    char *big = malloc(need + 1);
    json_t *j = big && lflex_model_decode(m, ids, n, big, need + 1, &need) == LFLEX_OK ? json_text(big) : NULL;
    free(big);
    return j;
}

int cli_json_set(json_t *o, const char *key, json_t *v)
{
    if (!o || !v) {
        json_decref(v);
        return 1;
    }
    return json_object_set_new(o, key, v) != 0;
}

int cli_json_print(json_t *j, bool one_line)
{
    if (!j)
        return cli_fail("JSON output: out of memory");
    size_t flags = JSON_REAL_PRECISION(9) | (one_line ? JSON_COMPACT : JSON_INDENT(2));
    int rc = json_dumpf(j, stdout, flags);
    json_decref(j);
    if (rc || putchar('\n') == EOF || fflush(stdout) || ferror(stdout))
        return cli_fail("standard output: %s", strerror(errno));
    return 0;
}

void cli_format_eta(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "--:--");
    else if (s >= 3600)
        snprintf(buf, cap, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_begin(cli_progress *p, bool quiet, uint64_t total, const char *unit)
{
    *p = (cli_progress){.on = !quiet && total && isatty(fileno(stderr)), .t0 = cli_now(), .total = total,
                        .stdout_tty = isatty(fileno(stdout)),
                        .unit = unit};
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    double now = cli_now();
    if (!p->on || (done < p->total && now - p->last < 0.1))
        return;
    p->last = now;
    double dt = now - p->t0, rate = (double)done / (dt > 0 ? dt : 1e-9);
    char eta[32], bar[32];
    cli_format_eta(eta, sizeof eta, done ? dt / (double)done * (double)(p->total - done) : -1);
    int width = 24, filled = (int)(width * (double)done / (double)p->total);
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %llu/%llu %s  %.1f %s/s  ETA %s\033[K", bar, (unsigned long long)done,
            (unsigned long long)p->total, p->unit, rate, p->unit, eta);
    fflush(stderr);
    p->drawn = true;
}

static void erase(cli_progress *p)
{
    if (p->on && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = false;
        p->last = 0; /* draw again at the next update */
    }
}

void cli_progress_clear(cli_progress *p)
{
    if (p->stdout_tty)
        erase(p);
}

void cli_progress_end(cli_progress *p)
{
    erase(p);
    p->on = false;
}
