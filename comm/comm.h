#ifndef MPITRAIN_COMM_H
#define MPITRAIN_COMM_H
/* The only module that calls MPI. */
#include <stddef.h>
#include <stdint.h>
#include "models/err.h"

typedef struct {
    int rank, size;             /* world */
    int local_rank, local_size; /* ranks sharing this node (MPI_COMM_TYPE_SHARED) */
    int cores;                  /* online cores of this node */
} CommWorld;

int comm_init(int *argc, char ***argv, CommWorld *w);
void comm_finalize(void);
/* Kills the whole job: only the top level calls this. */
void comm_abort(int code);
/* cores / ranks on this node, at least 1: a rank's default thread count. */
int comm_default_threads(const CommWorld *w);
double comm_wtime(void);
void comm_barrier(void);

#endif
