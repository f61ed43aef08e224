#include "comm/comm.h"

#include <mpi.h>
#include <time.h>
#include <unistd.h>

int comm_init(int *argc, char ***argv, CommWorld *w)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_size(node, &w->local_size);
    MPI_Comm_free(&node);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    w->cores = n > 0 ? (int)n : 1;
    return 0;
}

void comm_finalize(void) { MPI_Finalize(); }

void comm_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int comm_default_threads(const CommWorld *w)
{
    int t = w->cores / (w->local_size > 0 ? w->local_size : 1);
    return t < 1 ? 1 : t;
}

double comm_wtime(void)
{
    /* monotonic, and usable before MPI_Init (tests drive the trainer without MPI) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void comm_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }
