/* Options of the commands: getopt_long over one table per command, which
 * also writes its --help. Values are checked here, so that an empty value,
 * text after a number or a number out of range is an error naming the
 * option (usage errors exit with status 2). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A value as it may be shown in a one-line message: control characters
 * escaped, long values cut. */
const char *cli_shown(const char *s, char *buf, size_t cap)
{
    size_t k = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c && k + 8 < cap; c++) {
        if (*c == '\n')
            k += (size_t)snprintf(buf + k, cap - k, "\\n");
        else if (*c == '\t')
            k += (size_t)snprintf(buf + k, cap - k, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", *c);
        else
            buf[k++] = (char)*c;
        if (k + 8 >= cap && c[1]) {
            snprintf(buf + k, cap - k, "...");
            return buf;
        }
    }
    buf[k] = '\0';
    return buf;
}

static int opt_fail(const char *opt, const char *what, const char *arg)
{
    char v[96];
    if (!arg[0])
        cli_fail("option --%s: empty value (expected %s)", opt, what);
    else
        cli_fail("option --%s: expected %s, got '%s'", opt, what, cli_shown(arg, v, sizeof v));
    return 2;
}

int cli_opt_int(const char *opt, const char *arg, int64_t lo, int64_t hi, int64_t *out)
{
    char what[96];
    snprintf(what, sizeof what, "an integer from %" PRId64 " to %" PRId64, lo, hi);
    const char *digits = arg[0] == '-' ? arg + 1 : arg;
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!isdigit((unsigned char)digits[0]) || errno || *end || v < lo || v > hi)
        return opt_fail(opt, what, arg);
    *out = v;
    return 0;
}

int cli_opt_real(const char *opt, const char *arg, double lo, double hi, bool below_hi, double *out)
{
    char what[96];
    snprintf(what, sizeof what, "a number from %g to %g%s", lo, hi, below_hi ? " (excluded)" : "");
    const char *digits = arg[0] == '-' || arg[0] == '+' ? arg + 1 : arg;
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    /* digits only: strtod would also take leading spaces, "nan", "inf" */
    if (!(isdigit((unsigned char)digits[0]) || (digits[0] == '.' && isdigit((unsigned char)digits[1]))) || *end ||
        !isfinite(v) || v < lo || v > hi || (below_hi && v >= hi))
        return opt_fail(opt, what, arg);
    *out = v;
    return 0;
}

int cli_opt_choice(const char *opt, const char *arg, const char *const *choices, int *out)
{
    cli_buf what = {0};
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(arg, choices[i])) {
            *out = i;
            buf_free(&what); /* the choices listed before this one */
            return 0;
        }
        buf_printf(&what, "%s%s", i ? (choices[i + 1] ? ", " : " or ") : "one of ", choices[i]);
    }
    int rc = opt_fail(opt, what.s, arg);
    buf_free(&what);
    return rc;
}

/* Text from column `col` (where the cursor is), words wrapped at 79
 * columns; continuation lines start at column `indent`. A "\n" in the
 * text is a space (tables write texts as they like). */
static void wrap(FILE *f, const char *s, int col, int indent)
{
    enum { WIDTH = 79 };
    bool first = true;
    while (*s) {
        while (*s == ' ' || *s == '\n')
            s++;
        int n = (int)strcspn(s, " \n");
        if (!n)
            break;
        if (!first && col + 1 + n > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", n, s);
        col += n;
        s += n;
        first = false;
    }
    fputc('\n', f);
}

void cli_help(FILE *f, const cli_command *c)
{
    enum { HELP_COL = 24 };
    fprintf(f, "usage: lflex %s%s%s\n\n", c->name, c->args[0] ? " " : "", c->args);
    wrap(f, c->about, 0, 0);
    fprintf(f, "\nOptions:\n");
    for (const cli_opt *o = c->opts; o && o->name; o++) {
        int col = fprintf(f, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (col >= HELP_COL - 1) { /* the text on the next line */
            fputc('\n', f);
            col = 0;
        }
        fprintf(f, "%*s", HELP_COL - col, "");
        wrap(f, o->help, HELP_COL, HELP_COL);
    }
    fprintf(f, "%-*s%s\n", HELP_COL, "  -h, --help", "print this help and exit");
    fprintf(f, "\nExample%s:\n", strchr(c->example, '\n') ? "s" : "");
    for (const char *s = c->example; *s;) {
        size_t n = strcspn(s, "\n");
        fprintf(f, "  %.*s\n", (int)n, s);
        s += n + (s[n] == '\n');
    }
}

/* The usage line and a pointer to --help, after an error. */
static void usage_short(const cli_command *c)
{
    fprintf(stderr, "usage: lflex %s%s%s\nTry 'lflex %s --help' for the options.\n", c->name, c->args[0] ? " " : "",
            c->args, c->name);
}

int cli_opts_begin(cli_opts *p, const cli_command *c, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->cmd = c;
    p->argc = argc;
    p->argv = argv;
    size_t n = 0;
    while (c->opts && c->opts[n].name)
        n++;
    struct option *lo = calloc(n + 2, sizeof *lo);
    if (!lo)
        return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        lo[i].name = c->opts[i].name;
        lo[i].has_arg = c->opts[i].arg ? required_argument : no_argument;
        lo[i].val = 256 + (int)i;
    }
    lo[n].name = "help";
    lo[n].val = 'h';
    p->lo = lo;
    optind = 0; /* glibc: start over, reading its settings again */
    opterr = 0;
    return 0;
}

void cli_opts_end(cli_opts *p)
{
    free(p->lo);
    p->lo = NULL;
}

/* The error for an option getopt_long did not accept (argument `text`). */
static void unknown_option(const cli_opts *p, const char *text)
{
    char v[96];
    if (optopt > 0 && optopt < 256) { /* a short option (getopt_long sets 0 or the option's value for long ones) */
        if (isprint(optopt))
            cli_fail("%s: unknown option '-%c'", p->cmd->name, optopt);
        else
            cli_fail("%s: unknown option '%s'", p->cmd->name, cli_shown(text, v, sizeof v));
        return;
    }
    const char *name = text + 2;
    size_t len = strcspn(name, "=");
    cli_buf cands = {0};
    int n = 0;
    for (const struct option *o = p->lo; o->name; o++)
        if (strlen(o->name) >= len && !strncmp(o->name, name, len)) {
            if (name[len] == '=' && o->has_arg == no_argument && strlen(o->name) == len) {
                cli_fail("%s: option --%s takes no value", p->cmd->name, o->name);
                buf_free(&cands);
                return;
            }
            buf_printf(&cands, "%s--%s", n++ ? ", " : "", o->name);
        }
    if (n > 1)
        cli_fail("%s: ambiguous option '--%.*s' (%s)", p->cmd->name, (int)len, name, cands.s);
    else if (n == 1 && name[len] == '=') /* an abbreviation of a flag, with a value */
        cli_fail("%s: option %s takes no value", p->cmd->name, cands.s);
    else
        cli_fail("%s: unknown option '%s'", p->cmd->name, cli_shown(text, v, sizeof v));
    buf_free(&cands);
}

int cli_opts_next(cli_opts *p, const char **arg)
{
    *arg = NULL;
    if (p->rest) { /* after "--": every argument is positional */
        if (p->rest >= p->argc)
            return CLI_OPT_END;
        *arg = p->argv[p->rest++];
        return CLI_OPT_ARG;
    }
    /* "-": arguments in order (positional ones as 1), whatever
     * POSIXLY_CORRECT says; ":": a missing value is ':', not '?' */
    int c = getopt_long(p->argc, p->argv, "-:h", p->lo, NULL);
    if (c == -1) {
        p->rest = optind > 0 ? optind : 1;
        return cli_opts_next(p, arg);
    }
    if (c == 1) {
        *arg = optarg;
        return CLI_OPT_ARG;
    }
    if (c == 'h') {
        cli_help(stdout, p->cmd);
        p->status = 0;
        return CLI_OPT_EXIT;
    }
    const char *text = optind > 0 && optind <= p->argc ? p->argv[optind - 1] : "?";
    if (c == ':') {
        cli_fail("%s: option %s needs a value", p->cmd->name, text);
        usage_short(p->cmd);
        p->status = 2;
        return CLI_OPT_EXIT;
    }
    if (c < 256) {
        unknown_option(p, text);
        usage_short(p->cmd);
        p->status = 2;
        return CLI_OPT_EXIT;
    }
    const cli_opt *o = &p->cmd->opts[c - 256];
    if (o->arg && !optarg[0]) {
        cli_fail("option --%s: empty value", o->name);
        p->status = 2;
        return CLI_OPT_EXIT;
    }
    *arg = optarg;
    return o->id;
}

int cli_opts_positional(const cli_command *c, const char *arg, const char **slots[], int n)
{
    for (int i = 0; i < n; i++)
        if (!*slots[i]) {
            *slots[i] = arg;
            return 0;
        }
    return cli_usage_error(c, "unexpected argument '%s'", arg);
}

int cli_usage_error(const cli_command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lflex: %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage_short(c);
    return 2;
}
