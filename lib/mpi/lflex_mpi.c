/* liblflex-mpi: the sum over processes of a data-parallel run on MPI
 * (doc/distributed.md). Public API of liblflex only. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lflex/lflex_mpi.h"

struct lflex_mpi {
    MPI_Comm comm;
    int rank, size;
    MPI_Request *req; /* the buckets of the step in flight */
    int n_req, cap_req;
    uint64_t bytes;
    double seconds;
};

static _Thread_local char last_error[512];
static int started_here;

LFLEX_MPI_API const char *lflex_mpi_last_error(void)
{
    return last_error;
}

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* An MPI error code as LFLEX_EIO with MPI's description of it. */
static int fail_mpi(const char *what, int rc)
{
    char why[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, why, &len) != MPI_SUCCESS)
        snprintf(why, sizeof why, "MPI error %d", rc);
    return fail(LFLEX_EIO, "%s failed: %s", what, why);
}

LFLEX_MPI_API int lflex_mpi_init(int *argc, char ***argv)
{
    int on = 0;
    MPI_Initialized(&on);
    if (on)
        return LFLEX_OK;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS)
        return fail_mpi("MPI_Init", rc);
    started_here = 1;
    return LFLEX_OK;
}

LFLEX_MPI_API int lflex_mpi_finalize(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!started_here || done)
        return LFLEX_OK;
    int rc = MPI_Finalize();
    return rc == MPI_SUCCESS ? LFLEX_OK : fail_mpi("MPI_Finalize", rc);
}

LFLEX_MPI_API int lflex_mpi_new(lflex_mpi_t **out, MPI_Comm comm)
{
    if (!out)
        return fail(LFLEX_EINVAL, "lflex_mpi_new: out is NULL");
    *out = NULL;
    lflex_mpi_t *g = calloc(1, sizeof *g);
    if (!g)
        return fail(LFLEX_ENOMEM, "lflex_mpi_new: out of memory");
    int rc = MPI_Comm_dup(comm, &g->comm);
    if (rc != MPI_SUCCESS) {
        free(g);
        return fail_mpi("lflex_mpi_new: MPI_Comm_dup", rc);
    }
    rc = MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_rank(g->comm, &g->rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(g->comm, &g->size);
    if (rc != MPI_SUCCESS) {
        MPI_Comm_free(&g->comm);
        free(g);
        return fail_mpi("lflex_mpi_new: setting up the communicator", rc);
    }
    *out = g;
    return LFLEX_OK;
}

LFLEX_MPI_API void lflex_mpi_free(lflex_mpi_t *g)
{
    if (!g)
        return;
    MPI_Comm_free(&g->comm);
    free(g->req);
    free(g);
}

LFLEX_MPI_API int lflex_mpi_rank(const lflex_mpi_t *g)
{
    return g ? g->rank : 0;
}

LFLEX_MPI_API int lflex_mpi_size(const lflex_mpi_t *g)
{
    return g ? g->size : 1;
}

LFLEX_MPI_API void lflex_mpi_reduced(const lflex_mpi_t *g, uint64_t *bytes, double *seconds)
{
    if (bytes)
        *bytes = g ? g->bytes : 0;
    if (seconds)
        *seconds = g ? g->seconds : 0;
}

/* The reduction handed to the model: buckets start non-blocking sums, the
 * statistics' blocking sum ends the step and waits for the buckets. */
static int reduce_timed(lflex_mpi_t *g, float *grad, size_t n_grad, double *stats, size_t n_stats)
{
    if (grad) {
        if (g->n_req == g->cap_req) {
            int cap = g->cap_req ? 2 * g->cap_req : 16;
            MPI_Request *r = realloc(g->req, (size_t)cap * sizeof *r);
            if (!r)
                return fail(LFLEX_ENOMEM, "gradient reduction: out of memory for %d requests", cap);
            g->req = r;
            g->cap_req = cap;
        }
        int rc = MPI_Iallreduce(MPI_IN_PLACE, grad, (int)n_grad, MPI_FLOAT, MPI_SUM, g->comm, &g->req[g->n_req]);
        if (rc != MPI_SUCCESS)
            return fail_mpi("gradient reduction: MPI_Iallreduce", rc);
        g->n_req++;
        g->bytes += n_grad * sizeof *grad;
        return 0;
    }
    int rc = MPI_Allreduce(MPI_IN_PLACE, stats, (int)n_stats, MPI_DOUBLE, MPI_SUM, g->comm);
    int rc_wait = MPI_Waitall(g->n_req, g->req, MPI_STATUSES_IGNORE);
    g->n_req = 0;
    g->bytes += n_stats * sizeof *stats;
    if (rc != MPI_SUCCESS)
        return fail_mpi("statistics reduction: MPI_Allreduce", rc);
    if (rc_wait != MPI_SUCCESS)
        return fail_mpi("gradient reduction: MPI_Waitall", rc_wait);
    return 0;
}

static int reduce(void *user, float *grad, size_t n_grad, double *stats, size_t n_stats)
{
    lflex_mpi_t *g = user;
    double t0 = MPI_Wtime();
    int r = reduce_timed(g, grad, n_grad, stats, n_stats);
    g->seconds += MPI_Wtime() - t0;
    return r;
}

LFLEX_MPI_API int lflex_mpi_attach(lflex_mpi_t *g, lflex_model_t *m, size_t bucket_floats)
{
    if (!g || !m)
        return fail(LFLEX_EINVAL, "lflex_mpi_attach: the group or the model is NULL");
    if (bucket_floats > INT_MAX)
        return fail(LFLEX_EINVAL, "lflex_mpi_attach: buckets of %zu values are more than MPI counts (%d)",
                    bucket_floats, INT_MAX);
    int st = lflex_model_set_reduce(m, reduce, g, bucket_floats);
    return st ? fail(st, "lflex_mpi_attach: %s", lflex_last_error()) : LFLEX_OK;
}

LFLEX_MPI_API void lflex_mpi_shard(const lflex_mpi_t *g, size_t n_seq, size_t *first, size_t *count)
{
    size_t size = (size_t)lflex_mpi_size(g), rank = (size_t)lflex_mpi_rank(g);
    size_t base = n_seq / size, extra = n_seq % size;
    *first = rank * base + (rank < extra ? rank : extra);
    *count = base + (rank < extra ? 1 : 0);
}

LFLEX_MPI_API int lflex_mpi_train_step(lflex_mpi_t *g, lflex_model_t *m, const int32_t *tokens,
                                       const uint8_t *fixed, const size_t *offsets, size_t n_seq,
                                       lflex_train_stats *stats)
{
    if (!g)
        return fail(LFLEX_EINVAL, "lflex_mpi_train_step: the group is NULL");
    if (n_seq < (size_t)g->size)
        return fail(LFLEX_EINVAL, "lflex_mpi_train_step: the batch of %zu sequences is smaller than the %d "
                    "processes (each computes at least one)", n_seq, g->size);
    size_t first, count;
    lflex_mpi_shard(g, n_seq, &first, &count);
    int st = lflex_model_train_step_shard(m, tokens, fixed, offsets, n_seq, first, count, stats);
    if (st == LFLEX_EIO) /* the reduction's own message says more */
        return fail(st, "%s (%s)", lflex_last_error(), last_error);
    return st ? fail(st, "%s", lflex_last_error()) : LFLEX_OK;
}

LFLEX_MPI_API int lflex_mpi_any(lflex_mpi_t *g, int flag, int *any)
{
    if (!g || !any)
        return fail(LFLEX_EINVAL, "lflex_mpi_any: the group or any is NULL");
    int v = flag != 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, g->comm);
    if (rc != MPI_SUCCESS)
        return fail_mpi("lflex_mpi_any: MPI_Allreduce", rc);
    *any = v;
    return LFLEX_OK;
}

LFLEX_MPI_API void lflex_mpi_abort(lflex_mpi_t *g, int status)
{
    MPI_Abort(g ? g->comm : MPI_COMM_WORLD, status);
    exit(status); /* MPI_Abort does not return; this is for MPIs whose abort may */
}
