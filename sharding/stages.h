#ifndef MPITRAIN_STAGES_H
#define MPITRAIN_STAGES_H
/* Pipeline stages: contiguous block ranges balanced by estimated cost, and
 * the per-stage order of forward/backward micro-batch work for GPipe and
 * 1F1B. Pure arithmetic. */

/* Splits blocks 0..n-1 with costs cost[] into `stages` contiguous ranges
 * minimizing the largest stage cost (each stage gets >= 1 block);
 * first[s] = first block of stage s, first[stages] = n. Returns -1 if
 * stages > n. */
int balance_stages(const double *cost, int n, int stages, int *first);

typedef enum { SCHED_GPIPE = 0, SCHED_1F1B = 1 } Schedule;
typedef struct { int backward; int mb; } PipeOp;

/* The ops stage s of p runs for M micro-batches: 2*M entries in ops. */
void pipeline_ops(Schedule sched, int s, int p, int M, PipeOp *ops);
/* Activation slots a stage needs: M for GPipe, min(M, p - s) for 1F1B. */
int pipeline_slots(Schedule sched, int s, int p, int M);
/* Ideal bubble fraction (p-1)/(M+p-1). */
double pipeline_bubble(int p, int M);

#endif
