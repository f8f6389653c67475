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
#define LFLEX_ENUMERIC   (-6) /**< non-finite loss, gradient or update; nothing was changed */
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

/* ------------------------------------------------------------------------ */
/** @name Models: creation, checkpoints, vocabulary */
/**@{*/

/**
 * Create a model with freshly initialised weights from a YAML configuration
 * (see doc/config.md for every key, its default and its range).
 *
 * @param out   receives the model; free it with lflex_model_free()
 * @param yaml  the configuration text (need not be NUL-terminated); NULL or
 *              empty means all defaults, which needs vocab.tokens or
 *              vocab.size to be useful, so it fails with LFLEX_EINVAL
 * @param len   length of @p yaml in bytes
 * @return LFLEX_OK, LFLEX_EINVAL (message: key, line, column, accepted range),
 *         LFLEX_ENOMEM
 */
LFLEX_API int lflex_model_new(lflex_model_t **out, const char *yaml, size_t len);

/** lflex_model_new() with the configuration read from a YAML file. */
LFLEX_API int lflex_model_new_from_file(lflex_model_t **out, const char *path);

/** Free a model and everything it owns. Accepts NULL. Free the model's
 *  samplers first. */
LFLEX_API void lflex_model_free(lflex_model_t *m);

/**
 * Save weights, optimiser and EMA state, configuration, vocabulary, step and
 * random state to a safetensors file. The write is atomic (temporary file,
 * fsync, rename): after a crash the previous file is intact.
 */
LFLEX_API int lflex_model_save(const lflex_model_t *m, const char *path);

/**
 * Load a model saved by lflex_model_save(). Training resumes exactly where
 * it stopped. A truncated or corrupted file gives LFLEX_EFORMAT and a file of
 * another format version LFLEX_EVERSION, with the file and byte offset in
 * the message; nothing is returned then.
 *
 * A weights-only file (`lflex export --weights-only`, metadata
 * lflex.weights; doc/checkpoints.md) loads too: the model generates and
 * answers queries with the file's weights, but has no optimiser state, so
 * lflex_model_train_step() and lflex_model_train_step_shard() fail on it
 * with LFLEX_ESTATE, and lflex_model_save() writes a weights-only file
 * again.
 */
LFLEX_API int lflex_model_load(lflex_model_t **out, const char *path);

/**
 * The model's configuration as canonical YAML (every key, vocabulary
 * included). Writes at most @p cap bytes including a terminating NUL; *len
 * (may be NULL) gets the length without the NUL. When @p cap is too small:
 * LFLEX_EINVAL and *len is the length needed.
 */
LFLEX_API int lflex_model_config(const lflex_model_t *m, char *buf, size_t cap, size_t *len);

/** Integer properties of a model, for lflex_model_get(). Values never change. */
typedef enum lflex_model_property {
    LFLEX_PROP_VOCAB_SIZE = 1,   /**< all token ids, the 4 reserved ones included */
    LFLEX_PROP_MAX_LEN = 2,      /**< longest sequence (model.max_len) */
    LFLEX_PROP_N_PARAMS = 3,     /**< number of trained parameters */
    LFLEX_PROP_STEP = 4,         /**< optimiser steps taken */
    LFLEX_PROP_THREADS = 5,      /**< worker threads in use */
    LFLEX_PROP_LEARNED_ORDER = 6, /**< 1 when an auxiliary network learns b_in (LFlexMDM), 0 for fixed schedules (FlexMDM) */
    LFLEX_PROP_LAST_FLOPS = 7     /**< floating-point operations of the matrix products and attention
                                       of the last train step or loss evaluation (forward and backward) */
} lflex_model_property;

/** Read an integer property; LFLEX_EINVAL for an unknown property. */
LFLEX_API int lflex_model_get(const lflex_model_t *m, lflex_model_property prop, int64_t *value);

/** Set the number of worker threads (1 = single-threaded, 0 = all cores).
 *  Results do not depend on it. */
LFLEX_API int lflex_model_set_threads(lflex_model_t *m, int n_threads);

/** Reserved token ids (user tokens start at LFLEX_TOKEN_FIRST_USER). */
#define LFLEX_TOKEN_PAD 0
#define LFLEX_TOKEN_MASK 1
#define LFLEX_TOKEN_BOS 2
#define LFLEX_TOKEN_EOS 3
#define LFLEX_TOKEN_FIRST_USER 4

/**
 * Text to token ids with the model's vocabulary (vocab.tokenizer). *n gets
 * the number of ids, also when @p cap is too small (then LFLEX_EINVAL).
 * An unknown token gives LFLEX_EINVAL with its byte offset. With the words
 * tokenizer the spellings <bos> and <eos> give the reserved ids. A model
 * whose vocabulary is given only by vocab.size has no text: LFLEX_EINVAL.
 */
LFLEX_API int lflex_model_encode(const lflex_model_t *m, const char *text, size_t len,
                                 int32_t *ids, size_t cap, size_t *n);

/**
 * Token ids to text: words joined by single spaces, characters
 * concatenated, reserved ids written <pad>, <mask>, <bos>, <eos>. Writes at
 * most @p cap bytes including a NUL; *len gets the length without it (the
 * length needed when @p cap is too small, with LFLEX_EINVAL). Without text
 * (vocab.size only) user tokens are written <id>, joined by single spaces.
 */
LFLEX_API int lflex_model_decode(const lflex_model_t *m, const int32_t *ids, size_t n,
                                 char *buf, size_t cap, size_t *len);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Training */
/**@{*/

/**
 * Statistics of one training step. Set struct_size = sizeof(lflex_train_stats)
 * before the call; the library fills only the fields that fit, so programs
 * built against an older header keep working.
 */
typedef struct lflex_train_stats {
    size_t struct_size;
    double loss;        /**< the objective (surrogate: may be negative) */
    double unmask_loss; /**< mean over sequences and states of the unmasking term */
    double insert_loss; /**< mean over sequences and states of the insertion term */
    double reinforce;   /**< value of the REINFORCE term (0 for FlexMDM) */
    double regulariser; /**< w_reg times the mean schedule regulariser (0 for FlexMDM) */
    double grad_norm;   /**< global gradient norm before clipping */
    double lr;          /**< learning rate used by this step */
    uint64_t step;      /**< optimiser steps taken, this one included */
    uint64_t tokens;    /**< tokens processed by the networks in this step */
} lflex_train_stats;

/**
 * One training step on a batch of clean sequences.
 *
 * @param tokens   all sequences concatenated (token ids)
 * @param fixed    per token: non-zero for tokens present from time 0 and never
 *                 noised (prompt, BOS, the final EOS); may be NULL, meaning
 *                 only each sequence's last token (its EOS) is fixed
 * @param offsets  n_seq + 1 entries: sequence i is tokens[offsets[i] ..
 *                 offsets[i+1]-1]; offsets[0] = 0
 * @param n_seq    number of sequences (>= 1)
 * @param stats    may be NULL
 * @return LFLEX_OK; LFLEX_EINVAL naming the sequence and position of a bad
 *         token (out of range, PAD or MASK, a non-fixed reserved token, a
 *         sequence not ending in a fixed EOS, longer than model.max_len);
 *         LFLEX_ENUMERIC when the loss or a gradient is not finite, or the
 *         update would make a weight or optimiser moment non-finite (the
 *         weights are left unchanged); LFLEX_ESTATE when the step count
 *         has reached 2^53 - 1, or for a model loaded from a weights-only
 *         file (no optimiser state); LFLEX_ENOMEM
 */
LFLEX_API int lflex_model_train_step(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                     const size_t *offsets, size_t n_seq, lflex_train_stats *stats);

/**
 * The objective on a batch without changing the model (no gradient, no
 * optimiser step): validation loss. Times and states are drawn from a
 * generator seeded by @p seed, so the same seed gives the same value.
 */
LFLEX_API int lflex_model_eval_loss(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                    const size_t *offsets, size_t n_seq, uint64_t seed,
                                    lflex_train_stats *stats);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Data-parallel training (doc/distributed.md) */
/**@{*/

/** The number of statistics a lflex_reduce_fn sums at the end of a step. */
#define LFLEX_REDUCE_STATS 8

/**
 * A sum over the processes of a data-parallel run, called by
 * lflex_model_train_step_shard() on the calling thread after the backward
 * pass: once per bucket of the gradient (@p grad, @p n_grad floats;
 * @p stats NULL), then once with the step's statistics (@p stats,
 * @p n_stats = LFLEX_REDUCE_STATS doubles; @p grad NULL). It replaces every
 * value by its sum over the processes, in place. The number and order of
 * the calls depend only on the model, so they are the same in every
 * process. A call may start a non-blocking reduction and return before it
 * ends, but when the call with @p stats returns, every value handed over
 * during the step must hold its sum.
 *
 * @return 0, or non-zero to fail the step with LFLEX_EIO (the model is left
 *         as it was)
 */
typedef int (*lflex_reduce_fn)(void *user, float *grad, size_t n_grad, double *stats, size_t n_stats);

/**
 * Set the reduction over processes that lflex_model_train_step_shard()
 * uses (NULL removes it). lflex_model_train_step() never calls it.
 *
 * @param bucket_floats  gradient values per call; 0 means 1048576 (4 MiB)
 * @return LFLEX_OK, LFLEX_EINVAL when @p m is NULL
 */
LFLEX_API int lflex_model_set_reduce(lflex_model_t *m, lflex_reduce_fn fn, void *user, size_t bucket_floats);

/**
 * One step of data-parallel training: every process passes the same whole
 * batch (as for lflex_model_train_step()) and computes the sequences
 * [@p first, @p first + @p count) of it; the shards of the processes
 * together cover the batch once. The gradients and loss statistics of the
 * shards are summed by the model's reduction (lflex_model_set_reduce()),
 * then every process applies the same optimiser step (clipping uses the
 * norm of the summed gradient). The step is that of
 * lflex_model_train_step() on the whole batch, to float rounding: times and
 * states of every sequence are the whole batch's draws and the random
 * stream ends where the whole batch leaves it, so checkpoints do not depend
 * on the number of processes. Only dropout masks (model.dropout > 0) are
 * drawn per shard.
 *
 * @param stats  the whole batch's statistics (loss parts, tokens, gradient
 *               norm); may be NULL
 * @return LFLEX_OK; LFLEX_EINVAL for a bad batch (as
 *         lflex_model_train_step()) or a shard that is empty or runs past
 *         the batch; LFLEX_ESTATE without a reduction or for a model
 *         loaded from a weights-only file; LFLEX_EIO when the reduction
 *         failed; LFLEX_ENUMERIC as lflex_model_train_step(),
 *         also when the objective of another process's shard was not
 *         finite; LFLEX_ECANCELED when another process's shard failed
 *         otherwise. A failed step changes nothing, in every process.
 */
LFLEX_API int lflex_model_train_step_shard(lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed,
                                           const size_t *offsets, size_t n_seq, size_t first, size_t count,
                                           lflex_train_stats *stats);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Schedules */
/**@{*/

/**
 * A schedule family from YAML: the keys of the `schedule:` section of a
 * model configuration (family, a, b_um, ...).
 */
LFLEX_API int lflex_schedule_new(lflex_schedule_t **out, const char *yaml, size_t len);

/** Free a schedule made by lflex_schedule_new(). Accepts NULL. (The schedule
 *  of a model belongs to the model.) */
LFLEX_API void lflex_schedule_free(lflex_schedule_t *s);

/** The schedule of a model; owned by the model. */
LFLEX_API const lflex_schedule_t *lflex_model_schedule(const lflex_model_t *m);

/**
 * Evaluate a schedule at time t for a token with insertion shape b and
 * unmasking shape c (the linear family ignores b and c: they are 1).
 * Any output pointer may be NULL.
 *
 * @param cdf          F(t; a, b)
 * @param hazard       b g_a(t), the insertion hazard
 * @param log_p_state  log P(dropped), log P(masked), log P(clean) at t
 * @return LFLEX_EINVAL when t is outside [0, 1] or b, c are not positive
 */
LFLEX_API int lflex_schedule_eval(const lflex_schedule_t *s, double t, double b, double c,
                                  double *cdf, double *hazard, double log_p_state[3]);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Rate queries */
/**@{*/

/**
 * The generator's rates on a partial sequence at time t (the paper's generator rates).
 *
 * @param x            a partial sequence (MASK allowed), n tokens
 * @param t            time in [0, 1)
 * @param token_probs  n x V (V = LFLEX_PROP_VOCAB_SIZE), or NULL: the token
 *                     distribution at every position (reserved ids get 0;
 *                     rows of non-masked positions are filled too)
 * @param unmask_rate  n, or NULL: beta_um g_a(t) at MASK positions, 0 elsewhere
 * @param insert_rate  n, or NULL: beta_in g_a(t), the rate of inserting a MASK
 *                     into the gap left of each position (with
 *                     schedule.late_fraction e: beta_in / b_in times the
 *                     hazard of the mixed schedule, F_e'(t) / (1 - F_e(t)))
 * Uses the live weights (not the EMA). Safe to call from several threads on
 * one model while nobody trains, loads or frees it.
 */
LFLEX_API int lflex_model_rates(const lflex_model_t *m, const int32_t *x, size_t n, double t,
                                float *token_probs, float *unmask_rate, float *insert_rate);

/**
 * The learned order of a clean sequence: the insertion shape b_in of every
 * token (b_um too, when learned, else the constant) and its expected
 * insertion time E[T_in] = b B(1 + 1/a, b) (1/(b+1) for a = 1). Fixed tokens
 * (fixed[i] != 0; fixed NULL means, as for training, that only the last
 * token is fixed) are present from the start: their expected time is 0. For
 * FlexMDM every b is 1 and every time 0.5; a fixed schedule with
 * schedule.late_fraction e gives (1 - e) E[T_in] + e / 2.
 * Any output may be NULL.
 */
LFLEX_API int lflex_model_order(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n,
                                float *b_in, float *b_um, float *expected_insert_time);

/**
 * The learned unmasking order of a clean sequence (loss.unmask_order:
 * learned): the log-weight l of every token in the race that decides which
 * present tokens of a training state are clean (token i finishes before
 * token j with probability 1 / (1 + e^(l_j - l_i))); -INFINITY for fixed
 * tokens (fixed as for lflex_model_order). `log_weights` holds n floats.
 * LFLEX_EINVAL for a model without a learned unmasking order. Uses the live
 * weights.
 */
LFLEX_API int lflex_model_unmask_log_weights(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n,
                                             float *log_weights);
/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Generation */
/**@{*/

/**
 * A sampler for a model, configured by YAML (keys in doc/config.md:
 * steps, temperature, top_k, top_p, confidence, insertion, max_len, seed,
 * use_ema, batch_size, threads, candidates, candidate_score, candidate_span, revise, grid).
 * The sampler borrows the model: free it before the model, and do not train, load into or free
 * the model while it is in use.
 * Any number of samplers may run on one model at the same time.
 */
LFLEX_API int lflex_sampler_new(lflex_sampler_t **out, const lflex_model_t *m, const char *yaml, size_t len);

/** Free a sampler. Accepts NULL. */
LFLEX_API void lflex_sampler_free(lflex_sampler_t *s);

/** Restart the sampler's random numbers from a seed: the next sequences are
 *  the same as those of a new sampler created with that seed. */
LFLEX_API int lflex_sampler_set_seed(lflex_sampler_t *s, uint64_t seed);

/**
 * A progress callback for long generations: called on the calling thread
 * after every step of every batch (steps + 1 per batch: the steps and the
 * closing pass) with the steps done and the total; a
 * non-zero return stops the generation with LFLEX_ECANCELED. NULL removes it.
 */
typedef int (*lflex_progress_fn)(void *user, uint64_t done, uint64_t total);
LFLEX_API int lflex_sampler_set_progress(lflex_sampler_t *s, lflex_progress_fn fn, void *user);

/**
 * Generate one sequence from a template.
 *
 * A template is a token sequence ending with EOS; open_gap[i] != 0 lets
 * MASKs be inserted left of token i (open_gap NULL: only the gap left of the
 * final EOS is open). Inserted tokens have open gaps; template tokens are
 * never changed except MASKs, which are unmasked. Examples: [EOS]
 * (unconditional), [prompt..., BOS, EOS] with only EOS open (conditional),
 * [a, b, EOS, ...] with several open gaps (infilling). See doc/sampling.md.
 *
 * @param out    receives the generated sequence (EOS included)
 * @param cap    capacity of out; at least the sampler's max_len (else
 *               LFLEX_EINVAL with the size needed)
 * @param n_out  receives the number of tokens written
 * @return LFLEX_EINVAL for a bad template (message names the position):
 *         no final EOS, an id out of range, PAD, longer than max_len,
 *         nothing to generate (no open gap and no MASK)
 */
LFLEX_API int lflex_sampler_generate(lflex_sampler_t *s, const int32_t *tmpl, const uint8_t *open_gap, size_t n,
                                     int32_t *out, size_t cap, size_t *n_out);

/**
 * Generate many sequences at once (batch_size of them per network pass).
 * Templates are concatenated, template i being tmpl[tmpl_offsets[i] ..
 * tmpl_offsets[i+1]-1] (open_gap alike, or NULL). Outputs are concatenated
 * the same way into out, out_offsets[n_tmpl + 1]. cap must be at least
 * n_tmpl x max_len. insert_time and unmask_time (each cap floats, or NULL)
 * receive, for every output token, the time it was inserted and the time it
 * was unmasked: the order in which the model generated the sequence
 * (template tokens: 0, 0).
 * Sequences depend only on the seed and on how many sequences the sampler
 * produced before: generating templates one by one or in one batch gives
 * the same sequences, whatever the thread count.
 */
LFLEX_API int lflex_sampler_generate_batch(lflex_sampler_t *s, const int32_t *tmpl, const uint8_t *open_gap,
                                           const size_t *tmpl_offsets, size_t n_tmpl, int32_t *out, size_t cap,
                                           size_t *out_offsets, float *insert_time, float *unmask_time);
/**@}*/

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LFLEX_LFLEX_H */
