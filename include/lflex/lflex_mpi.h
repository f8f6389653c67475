/**
 * @file lflex_mpi.h
 * @brief liblflex-mpi: data-parallel training of liblflex models over MPI
 *        (doc/distributed.md).
 *
 * A companion library, built with the meson option -Dmpi=enabled and found
 * with `pkg-config lflex-mpi`; liblflex itself holds no MPI code. It gives
 * a model a sum over the processes of an MPI communicator
 * (lflex_model_set_reduce()) and splits every batch into one contiguous
 * shard per process (lflex_model_train_step_shard()).
 *
 * Conventions are those of lflex.h: calls return LFLEX_OK or a negative
 * LFLEX_E* code; the message of the last failed call of this library on
 * the calling thread is lflex_mpi_last_error() (MPI's own error string
 * included). MPI calls are made with MPI_ERRORS_RETURN on the library's
 * own copy of the communicator, so an MPI failure becomes a status code;
 * to stop the other processes rather than leave them waiting, a program
 * calls lflex_mpi_abort().
 */
#ifndef LFLEX_LFLEX_MPI_H
#define LFLEX_LFLEX_MPI_H

#include <mpi.h>

#include "lflex.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#  define LFLEX_MPI_API __attribute__((visibility("default")))
#else
#  define LFLEX_MPI_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A group of processes that train together: a copy of an MPI
 *  communicator and the reduction's state. */
typedef struct lflex_mpi lflex_mpi_t;

/** The message of the last failed call of liblflex-mpi on this thread
 *  ("" when none). Never NULL. */
LFLEX_MPI_API const char *lflex_mpi_last_error(void);

/**
 * Start MPI (MPI_Init) unless it is started already; a program may call
 * MPI_Init itself instead. @p argc and @p argv may be NULL.
 * @return LFLEX_OK, LFLEX_EIO when MPI could not start
 */
LFLEX_MPI_API int lflex_mpi_init(int *argc, char ***argv);

/** Finish MPI (MPI_Finalize) when lflex_mpi_init() started it; free every
 *  lflex_mpi_t first. */
LFLEX_MPI_API int lflex_mpi_finalize(void);

/**
 * A group over the processes of @p comm (usually MPI_COMM_WORLD). The
 * library works on its own duplicate of @p comm with MPI_ERRORS_RETURN.
 * Collective: every process of @p comm calls it.
 * @return LFLEX_OK, LFLEX_EINVAL (out NULL), LFLEX_ENOMEM, LFLEX_EIO
 */
LFLEX_MPI_API int lflex_mpi_new(lflex_mpi_t **out, MPI_Comm comm);

/** Free a group (collective: MPI_Comm_free of its copy). Accepts NULL.
 *  Models attached to it must not train with it any more. */
LFLEX_MPI_API void lflex_mpi_free(lflex_mpi_t *g);

/** This process's rank in the group, and the number of processes. */
LFLEX_MPI_API int lflex_mpi_rank(const lflex_mpi_t *g);
LFLEX_MPI_API int lflex_mpi_size(const lflex_mpi_t *g);

/**
 * Make @p m sum its gradients and loss statistics over the group
 * (lflex_model_set_reduce()): every bucket of @p bucket_floats values
 * (0: 1048576) starts a non-blocking MPI_Iallreduce; the statistics are
 * summed with MPI_Allreduce and the buckets awaited before the optimiser
 * step. Every process attaches its copy of the same model (same
 * configuration and seed, or the same checkpoint).
 * @return LFLEX_OK, LFLEX_EINVAL (NULL, or a bucket over INT_MAX values)
 */
LFLEX_MPI_API int lflex_mpi_attach(lflex_mpi_t *g, lflex_model_t *m, size_t bucket_floats);

/** The shard of a batch of @p n_seq sequences that this process computes:
 *  [*first, *first + *count), contiguous, sizes differing by at most one. */
LFLEX_MPI_API void lflex_mpi_shard(const lflex_mpi_t *g, size_t n_seq, size_t *first, size_t *count);

/**
 * One data-parallel training step: every process passes the same whole
 * batch; each computes its shard (lflex_mpi_shard()) and the summed step
 * is applied everywhere (lflex_model_train_step_shard(), whose statuses it
 * returns, with lflex_last_error()'s message also in lflex_mpi_last_error()).
 * @p m must be attached.
 * @return also LFLEX_EINVAL when the batch has fewer sequences than the
 *         group has processes
 */
LFLEX_MPI_API int lflex_mpi_train_step(lflex_mpi_t *g, lflex_model_t *m, const int32_t *tokens,
                                       const uint8_t *fixed, const size_t *offsets, size_t n_seq,
                                       lflex_train_stats *stats);

/** Whether any process of the group passes a non-zero @p flag (into
 *  *any): a decision every process takes together, such as stopping. */
LFLEX_MPI_API int lflex_mpi_any(lflex_mpi_t *g, int flag, int *any);

/** What the reductions of this process have cost so far: the bytes handed
 *  to MPI (gradients and statistics; what crosses the network depends on
 *  MPI's algorithm) and the wall time spent in the reduction, waiting for
 *  the other processes included. Either pointer may be NULL. */
LFLEX_MPI_API void lflex_mpi_reduced(const lflex_mpi_t *g, uint64_t *bytes, double *seconds);

/** Stop every process of the group's communicator (MPI_Abort) with exit
 *  status @p status: what a process that cannot go on calls, so that the
 *  others do not wait for it forever. Does not return. */
LFLEX_MPI_API void lflex_mpi_abort(lflex_mpi_t *g, int status);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LFLEX_LFLEX_MPI_H */
