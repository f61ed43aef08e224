#ifndef MPITRAIN_PLANNER_H
#define MPITRAIN_PLANNER_H
/* The layout planner: an alpha-beta cost model of one training step for a
 * (dp, tp, pp, micro-batches) layout, from the model's FLOPs per block, a
 * measured GEMM rate, and link latency/bandwidth; and the search over every
 * layout of N ranks that the plan would accept. */
#include <stddef.h>
#include "worker/config/config.h"

typedef struct {
    double gemm_gflops;     /* cblas_sgemm rate of one thread at the model's shapes */
    double efficiency;      /* achieved model FLOP/s as a share of it (measured: ~0.8) */
    double alpha_s;         /* link latency per message */
    double beta_Bps;        /* link bandwidth, bytes/s */
    int cores;              /* per node */
    int ranks_per_node;
} Machine;

typedef struct {
    int dp, tp, pp, M;
    double step_s;          /* predicted step time */
    double compute_s, tp_comm_s, pp_comm_s, dp_exposed_s, opt_s;
    double bubble;          /* idle share of the pipeline, (p-1)/(M+p-1) */
    double bytes;           /* bytes a rank sends per step */
    size_t mem;             /* bytes per rank */
} Prediction;

/* Measures this process's single-thread GEMM rate at the model's shapes. */
double planner_measure_gemm(const ModelConfig *m, int tokens);
/* Defaults for a shared-memory node (overridable by flags / measurement). */
void planner_default_machine(Machine *mc, int ranks);
/* Predicts one resolved layout (cfg->dp/tp/pp/micro_batches set, stages filled). */
void planner_predict(const TrainConfig *cfg, const Machine *mc, Prediction *p);
/* Every valid layout of `ranks` (micro-batches: cfg's, or the best of the
 * divisors of the per-rank batch when cfg->micro_batches == 0); sorted by
 * predicted step time. Returns how many (<= max). */
int planner_search(const TrainConfig *cfg, int ranks, const Machine *mc, size_t avail_per_rank,
                   Prediction *out, int max);

#endif
