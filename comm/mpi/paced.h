#ifndef MPITRAIN_PACED_H
#define MPITRAIN_PACED_H
/* A sum over a group that can run behind computation on a slow link: the
 * buffer goes out one piece at a time, each as a direct exchange (every rank
 * sends each other rank that rank's segment of the piece, sums its own
 * segment, then sends the sum back to all) with all of a phase's messages
 * posted at once. Why not MPI_Iallreduce: its ring moves on only inside MPI
 * calls, one round per call, and it hands the whole buffer to the TCP
 * connections at once, so a step's own small messages (the loss, the stop
 * check) queue behind megabytes of it. Here at most one piece is on the
 * wire, two progress calls finish a piece, and each element is summed in
 * rank order by the rank that owns it: the same bits on any link.
 *
 * On the wire the values are f32, or bf16 (round to nearest even), int8 or
 * int4 (block-wise absmax codes, base/quant.h; each segment its own blocks)
 * with error feedback: what rounding drops from a rank's values, and from the
 * sum of a segment it owns, is added to the same element of the next sum
 * (Seide et al. 2014; Karimireddy et al. 2019), so over many sums nothing is
 * lost, only late. */
#include "base/wire.h"
#include "comm/mpi/comm.h"


typedef struct {
    Group *g;
    WireFormat wire;
    size_t piece;         /* floats per piece */
    float *buf;
    size_t n, at;         /* the buffer; the current piece starts at `at` */
    int phase;            /* 0 nothing in flight, 1 scatter, 2 gather */
    unsigned char *stage; /* this rank's piece as sent (wire format, segment by segment) */
    unsigned char *tmp;   /* the others' parts of this rank's segment */
    float *x;             /* a piece's values as they go out (error feedback added) */
    float *acc;           /* this rank's segment: the sum, and one peer's part decoded */
    size_t seg_max;
    CommRequest *req;     /* 2 (p - 1) */
    /* bf16, int8, int4: the error feedback, one float per element of a buffer of up to
     * cap floats: what rounding left of this rank's values, and of the sums
     * of the segments it owns (other elements of sum_err stay 0) */
    size_t cap;
    float *send_err, *sum_err;
} PacedSum;

/* cap: the longest buffer that will be summed (for the error feedback). */
int paced_init(PacedSum *s, Group *g, size_t piece, WireFormat wire, size_t cap, Err *e);
void paced_free(PacedSum *s);
/* Starts summing buf[0..n) in place, n <= cap (nothing may be in flight). */
void paced_start(PacedSum *s, float *buf, size_t n);
/* Moves on without blocking; 1 once the whole sum is in buf. */
int paced_progress(PacedSum *s);
/* Blocks until the sum is in buf (the wait counts as exposed time). */
void paced_wait(PacedSum *s);

#endif
