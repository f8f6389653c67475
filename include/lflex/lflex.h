/**
 * @file lflex.h
 * @brief liblflex: insertion-based sequence generation with learnable order
 *        dynamics (LFlexMDM) and its FlexMDM baseline.
 *
 * Conventions (see doc/api.md for the full policy):
 *  - Every call that can fail returns an int: LFLEX_OK (0) or a negative
 *    LFLEX_E* code. Codes never change value.
 *  - After a failure, lflex_last_error() returns a message for the calling
 *    thread that says what was wrong and where.
 *  - Handles are opaque. What a call hands back through an output parameter
 *    belongs to the caller and is released by the matching *_free(), which
 *    accepts NULL.
 *  - The library never aborts, exits or prints because of bad input.
 */
#ifndef LFLEX_LFLEX_H
#define LFLEX_LFLEX_H

#include <stddef.h>
#include <stdint.h>

#include "version.h"

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(LFLEX_BUILDING_LIBRARY)
#    define LFLEX_API __declspec(dllexport)
#  else
#    define LFLEX_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define LFLEX_API __attribute__((visibility("default")))
#else
#  define LFLEX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/** @name Status codes (values are part of the ABI and never change) */
/**@{*/
#define LFLEX_OK          0   /**< success */
#define LFLEX_EINVAL     (-1) /**< invalid argument, config or input data */
#define LFLEX_ENOMEM     (-2) /**< out of memory; the handle stays usable */
#define LFLEX_EIO        (-3) /**< reading or writing a file failed */
#define LFLEX_EFORMAT    (-4) /**< a file is truncated, corrupted or inconsistent */
#define LFLEX_EVERSION   (-5) /**< a file of an unsupported format version */
#define LFLEX_ENUMERIC   (-6) /**< non-finite loss or gradient; nothing was changed */
#define LFLEX_ECANCELED  (-7) /**< a callback asked to stop */
#define LFLEX_ESTATE     (-8) /**< the call is not valid in the handle's state */
#define LFLEX_ENOTIMPL   (-9) /**< the feature is not available in this build */
#define LFLEX_EINTERNAL (-10) /**< a bug in liblflex; please report it */
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Opaque handles */
/**@{*/
/** A generator (and, for learned schedules, an auxiliary network), its
 *  vocabulary, optimiser state and configuration. */
typedef struct lflex_model lflex_model_t;
/** A family of insertion/unmasking schedules (linear or Kumaraswamy). */
typedef struct lflex_schedule lflex_schedule_t;
/** A generation procedure that borrows a model. */
typedef struct lflex_sampler lflex_sampler_t;
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Errors */
/**@{*/

/**
 * The message of the last failed call made by this thread.
 *
 * Never NULL. The string stays valid until the next liblflex call on the same
 * thread. It is "" when no call has failed yet on this thread.
 */
LFLEX_API const char *lflex_last_error(void);

/** The status code of the last failed call made by this thread (0 if none). */
LFLEX_API int lflex_last_error_code(void);

/** Forget the last error of this thread. */
LFLEX_API void lflex_clear_error(void);

/**
 * A short, static description of a status code ("invalid argument", ...).
 * Never NULL; unknown codes give "unknown status code".
 */
LFLEX_API const char *lflex_strerror(int status);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Versions */
/**@{*/
/** The version of the library in use, e.g. "0.1.0". Never NULL. */
LFLEX_API const char *lflex_version(void);
/** The version of the library in use as (major << 16) | (minor << 8) | patch.
 *  Compare with LFLEX_VERSION_NUMBER to detect a header/library mismatch. */
LFLEX_API uint32_t lflex_version_number(void);
/**@}*/

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LFLEX_LFLEX_H */
