#ifndef MPITRAIN_COMM_H
#define MPITRAIN_COMM_H
/* The MPI transport (comm/transport.h), the only code that calls MPI
 * (comm.c; the paced sum and the mesh build on it). Groups are opaque
 * handles over communicators; every collective and request counts, in its
 * group's CommStats, the bytes this rank sends (as a ring / recursive
 * algorithm would: allreduce 2(p-1)/p n, reduce-scatter and allgather
 * (p-1)/p n; a broadcast at the root, a gather at the others) and the time
 * it spends waiting (exposed) versus the time a non-blocking operation ran
 * behind compute (overlapped); each blocking collective and each wait is a
 * span. An MPI error names the call and the rank and stops the job. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "comm/transport.h"

typedef struct {
    int rank, size;             /* world */
    int local_rank, local_size; /* ranks sharing this node (MPI_COMM_TYPE_SHARED) */
    int cores;                  /* CPUs this rank may use (its affinity mask) */
    /* The machine this rank's kernel runs on (same boot id): simulated
     * hosts in network namespaces of one box share it, and its cores. */
    int machine_ranks;          /* ranks on this kernel, this one included */
    int machine_cores;          /* CPUs those ranks may use together (union of masks) */
    int machine_hosts;          /* distinct host names among them */
    int machines;               /* distinct kernels in the world */
    char first_host[32], last_host[32]; /* host names of this machine's lowest/highest rank */
} CommWorld;

typedef struct Group Group;

/* A non-blocking operation. Zero it once; a finished one can be started
 * again (its box is reused) until comm_request_free. */
typedef struct {
    void *req;           /* MPI_Request, boxed */
    Group *g;
    double t_start, bytes;
    int active;
    const char *what;    /* trace label of the wait */
    int p2p;
} CommRequest;

/* MPI_Init (funneled threads; errors return to comm.c, which names them)
 * and what the world looks like from this rank: one small all-gather. */
int comm_init(int *argc, char ***argv, CommWorld *w);
void comm_finalize(void);
/* A rank's default thread count, at least 1: its own CPUs when the
 * launcher or SLURM bound it, else the machine's cores shared among the
 * ranks on that kernel (not only MPI's shared-memory node, which sees
 * simulated hosts as separate machines). */
int comm_default_threads(const CommWorld *w);

/* Groups: the world, or split by color (ranks with one color form a group,
 * ordered by key). */
Group *group_world(void);
Group *group_split(Group *parent, int color, int key);
void group_free(Group *g);
int group_rank(const Group *g);
int group_size(const Group *g);
CommStats *group_stats(Group *g);

void coll_barrier(Group *g);
void coll_bcast(Group *g, void *buf, size_t bytes, int root);
void coll_allreduce_sum_f32(Group *g, float *buf, size_t n);
void coll_allreduce_sum_f64(Group *g, double *buf, size_t n);
void coll_allreduce_max_i64(Group *g, int64_t *buf, size_t n);
void coll_allreduce_max_f64(Group *g, double *buf, size_t n);
void coll_allreduce_min_i64(Group *g, int64_t *buf, size_t n);
/* out (every rank's, or the root's) receives bytes_each from each rank, in
 * rank order. */
void coll_allgather_bytes(Group *g, const void *mine, void *out, size_t bytes_each);
void coll_gather_bytes(Group *g, const void *mine, void *out, size_t bytes_each, int root);

/* Variable-size gather to root: out (root only) receives every rank's bytes
 * back to back; *lens (root only, size entries) their sizes. out is malloc'd. */
int coll_gatherv_bytes(Group *g, const void *mine, size_t len, void **out, size_t *lens, int root);
/* In-place all-gather: rank r's counts[r] floats start at displacement
 * sum(counts[0..r)) of buf. */
void coll_allgatherv_inplace_f32(Group *g, float *buf, const int *counts);

/* Non-blocking: start, then test (drives progress) or wait. */
void coll_iallreduce_sum_f32(Group *g, float *buf, size_t n, CommRequest *r);
/* recv gets this rank's block: counts[rank] floats of the sum of send. */
void coll_ireduce_scatter_f32(Group *g, const float *send, float *recv, const int *counts,
                              CommRequest *r);
/* Point-to-point on a group (ranks are group ranks). */
void p2p_isend_f32(Group *g, const float *buf, size_t n, int dest, int tag, CommRequest *r);
void p2p_irecv_f32(Group *g, float *buf, size_t n, int src, int tag, CommRequest *r);
void p2p_isend_bytes(Group *g, const void *buf, size_t n, int dest, int tag, CommRequest *r);
void p2p_irecv_bytes(Group *g, void *buf, size_t n, int src, int tag, CommRequest *r);
/* Frees the box of a finished (or never started) CommRequest. */
void comm_request_free(CommRequest *r);

/* 1 when done (or not started): the operation is counted, MPI has released
 * its request, the box stays for the next start. */
int coll_test(CommRequest *r);
/* Blocks until done; the wait is exposed time and a span. */
void coll_wait(CommRequest *r);

/* Latency and bandwidth between ranks 0 and 1 by ping-pong, sized to the
 * link (8 B and 16 KB messages; 256 KB and 1 MB ones only on a fast link or
 * after a stage too short to trust); collective, same result on every rank;
 * what it sends counts in the group's bytes. 0 if size < 2. */
int comm_measure_link(Group *g, double *alpha_s, double *beta_Bps);
/* This rank's clock minus rank 0's (comm_wtime), from the best of `reps`
 * ping rounds with rank 0 (0 on rank 0). Collective. */
double comm_clock_offset(Group *g, int reps);

/* Agreement on failure: every rank passes its own rc/message; returns the
 * number of failed ranks (0 = all fine) and, on rank 0, the message of the
 * lowest failing rank prefixed with "rank N: ". Never hangs as long as every
 * rank calls it. */
int comm_agree(Group *g, int rc, const Err *mine, Err *first);

#endif
