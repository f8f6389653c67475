/* `lflex train` as one process of a data-parallel run under mpirun
 * (doc/distributed.md), through liblflex-mpi when the program is built
 * with -Dmpi; otherwise, and when not started by mpirun, one process. */
#include <stdlib.h>

#include "cli.h"

#if LFLEX_CLI_MPI
#include <lflex/lflex_mpi.h>

/* Whether a launcher started this process as part of an MPI job: Open MPI
 * (OMPI_COMM_WORLD_SIZE), PMIx or PMI launchers. Without one the program
 * does not start MPI at all. */
static bool under_launcher(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

int cli_dist_begin(cli_dist *d)
{
    *d = (cli_dist){0, 1, NULL};
    if (!under_launcher())
        return 0;
    lflex_mpi_t *g = NULL;
    if (lflex_mpi_init(NULL, NULL) || lflex_mpi_new(&g, MPI_COMM_WORLD))
        return cli_fail("MPI: %s", lflex_mpi_last_error());
    d->group = g;
    d->rank = lflex_mpi_rank(g);
    d->size = lflex_mpi_size(g);
    return 0;
}

int cli_dist_attach(cli_dist *d, lflex_model_t *m)
{
    if (d->group && lflex_mpi_attach(d->group, m, 0))
        return cli_fail("MPI: %s", lflex_mpi_last_error());
    return 0;
}

int cli_dist_step(cli_dist *d, lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed, const size_t *offsets,
                  size_t n_seq, lflex_train_stats *stats)
{
    if (!d->group)
        return lflex_model_train_step(m, tokens, fixed, offsets, n_seq, stats);
    return lflex_mpi_train_step(d->group, m, tokens, fixed, offsets, n_seq, stats);
}

const char *cli_dist_error(const cli_dist *d)
{
    return d->group ? lflex_mpi_last_error() : lflex_last_error();
}

bool cli_dist_any(cli_dist *d, bool flag)
{
    int any = flag;
    if (d->group && lflex_mpi_any(d->group, flag, &any)) {
        cli_fail("MPI: %s", lflex_mpi_last_error());
        lflex_mpi_abort(d->group, 1);
    }
    return any != 0;
}

void cli_dist_reduced(const cli_dist *d, uint64_t *bytes, double *seconds)
{
    lflex_mpi_reduced(d->group, bytes, seconds);
}

int cli_dist_end(cli_dist *d, int status)
{
    if (!d->group)
        return status;
    if (status && status != 130 && d->size > 1) /* the others would wait for this process forever */
        lflex_mpi_abort(d->group, status);
    lflex_mpi_free(d->group);
    d->group = NULL;
    lflex_mpi_finalize();
    return status;
}

#else

int cli_dist_begin(cli_dist *d)
{
    *d = (cli_dist){0, 1, NULL};
    return 0;
}

int cli_dist_attach(cli_dist *d, lflex_model_t *m)
{
    return 0;
}

int cli_dist_step(cli_dist *d, lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed, const size_t *offsets,
                  size_t n_seq, lflex_train_stats *stats)
{
    return lflex_model_train_step(m, tokens, fixed, offsets, n_seq, stats);
}

const char *cli_dist_error(const cli_dist *d)
{
    return lflex_last_error();
}

bool cli_dist_any(cli_dist *d, bool flag)
{
    return flag;
}

void cli_dist_reduced(const cli_dist *d, uint64_t *bytes, double *seconds)
{
    *bytes = 0;
    *seconds = 0;
}

int cli_dist_end(cli_dist *d, int status)
{
    return status;
}

#endif
