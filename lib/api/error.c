/* Thread-local last error and status strings. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lf_error.h"

typedef struct {
    int code;
    char msg[LF_ERROR_MSG_MAX];
} lf_error_record;

static _Thread_local lf_error_record tls_error; /* zero-initialised: code 0, "" */

int lf_error(int code, const char *fmt, ...)
{
    va_list ap;
    tls_error.code = code;
    va_start(ap, fmt);
    vsnprintf(tls_error.msg, sizeof tls_error.msg, fmt, ap);
    va_end(ap);
    return code;
}

int lf_error_prefix(const char *fmt, ...)
{
    char prefix[256];
    char old[LF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_error.msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof tls_error.msg - 3)
        n = sizeof tls_error.msg - 3;
    memcpy(tls_error.msg, prefix, n);
    memcpy(tls_error.msg + n, ": ", 2);
    size_t rest = sizeof tls_error.msg - n - 3;
    size_t m = strlen(old);
    if (m > rest)
        m = rest;
    memcpy(tls_error.msg + n + 2, old, m);
    tls_error.msg[n + 2 + m] = '\0';
    return tls_error.code;
}

int lf_error_oom(const char *where)
{
    tls_error.code = LFLEX_ENOMEM;
    snprintf(tls_error.msg, sizeof tls_error.msg, "%s: out of memory", where ? where : "liblflex");
    return LFLEX_ENOMEM;
}

LFLEX_API const char *lflex_last_error(void)
{
    return tls_error.msg;
}

LFLEX_API int lflex_last_error_code(void)
{
    return tls_error.code;
}

LFLEX_API void lflex_clear_error(void)
{
    tls_error.code = 0;
    tls_error.msg[0] = '\0';
}

LFLEX_API const char *lflex_strerror(int status)
{
    switch (status) {
    case LFLEX_OK: return "success";
    case LFLEX_EINVAL: return "invalid argument";
    case LFLEX_ENOMEM: return "out of memory";
    case LFLEX_EIO: return "input/output error";
    case LFLEX_EFORMAT: return "bad file format";
    case LFLEX_EVERSION: return "unsupported format version";
    case LFLEX_ENUMERIC: return "non-finite numbers";
    case LFLEX_ECANCELED: return "canceled";
    case LFLEX_ESTATE: return "invalid state for this call";
    case LFLEX_ENOTIMPL: return "not implemented in this build";
    case LFLEX_EINTERNAL: return "internal error";
    default: return "unknown status code";
    }
}
