#include "comm/comm.h"

#include <mpi.h>
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

double comm_wtime(void) { return MPI_Wtime(); }

void comm_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }
