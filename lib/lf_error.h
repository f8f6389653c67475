/* Internal error reporting shared by the api and io rooms.
 *
 * The message lives in a fixed-size thread-local buffer, so reporting an
 * error (out-of-memory included) never allocates and can never fail. */
#ifndef LF_ERROR_H
#define LF_ERROR_H

#include "lflex/lflex.h"

#if defined(__GNUC__)
#  define LF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LF_PRINTF(a, b)
#endif

#define LF_ERROR_MSG_MAX 1024

/* Record status `code` with a formatted message for this thread and return
 * `code`, so that callers can write `return lf_error(LFLEX_EINVAL, ...)`. */
int lf_error(int code, const char *fmt, ...) LF_PRINTF(2, 3);

/* Prepend "prefix: " to the current message (used when a lower layer already
 * described the problem and a caller adds where it happened). Returns the
 * current code. */
int lf_error_prefix(const char *fmt, ...) LF_PRINTF(1, 2);

/* Record an out-of-memory failure in `where`; never allocates. */
int lf_error_oom(const char *where);

#endif
