#ifndef MPITRAIN_PACED_H
#define MPITRAIN_PACED_H
/* A sum over a group that runs behind computation on a slow link: the
 * buffer goes out one piece at a time, each as a direct exchange (every rank
 * sends each other rank that rank's segment of the piece, sums its own
 * segment, then sends the sum back to all) with all of a phase's messages
 * posted at once. Why not MPI_Iallreduce: its ring moves on only inside MPI
 * calls, one round per call, and it hands the whole buffer to the TCP
 * connections at once, so a step's own small messages (the loss, the stop
 * check) queue behind megabytes of it. Here at most one piece is on the
 * wire, two progress calls finish a piece, and each element is summed in
 * rank order by the rank that owns it: the same bits on any link. */
#include "comm/comm.h"

typedef struct {
    Group *g;
    size_t piece;         /* floats per piece */
    float *buf;
    size_t n, at;         /* the buffer; the current piece starts at `at` */
    int phase;            /* 0 nothing in flight, 1 scatter, 2 gather */
    float *tmp;           /* the others' parts of this rank's segment */
    size_t seg_max;
    CommRequest *req;     /* 2 (p - 1) */
} PacedSum;

int paced_init(PacedSum *s, Group *g, size_t piece, Err *e);
void paced_free(PacedSum *s);
/* Starts summing buf[0..n) in place (nothing may be in flight). */
void paced_start(PacedSum *s, float *buf, size_t n);
/* Moves on without blocking; 1 once the whole sum is in buf. */
int paced_progress(PacedSum *s);
/* Blocks until the sum is in buf (the wait counts as exposed time). */
void paced_wait(PacedSum *s);

#endif
