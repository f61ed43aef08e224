#ifndef MPITRAIN_PLANNER_H
#define MPITRAIN_PLANNER_H
/* The layout planner: an alpha-beta cost model of one training step for a
 * (dp, tp, pp, micro-batches) layout, from the model's FLOPs per block, a
 * measured GEMM rate, and link latency/bandwidth; and the search over every
 * layout of N ranks that the plan would accept. */
#include <stddef.h>
#include "base/err.h"
#include "worker/config/config.h"
#include "worker/loop/observer.h"

typedef struct {
    double gemm_gflops;     /* cblas_sgemm rate of one thread at the model's shapes */
    double efficiency;      /* achieved model FLOP/s as a share of it (measured: ~0.8) */
    double alpha_s;         /* link latency per message */
    double beta_Bps;        /* link bandwidth, bytes/s */
    int cores;              /* CPUs the ranks of one machine may use together */
    int ranks_per_node;     /* ranks sharing those CPUs (one kernel) */
    double z_rate;          /* ZO update: z elements one thread regenerates and applies per s */
} Machine;

/* What kind of step a prediction is for (from cfg: --optimizer zo, --diloco H). */
typedef enum { MODE_DP = 0, MODE_ZO = 1, MODE_DILOCO = 2 } PlanMode;

typedef struct {
    int dp, tp, pp, M;
    double step_s;          /* predicted step time */
    double compute_s, tp_comm_s, pp_comm_s, dp_exposed_s, opt_s;
    double bubble;          /* idle share of the pipeline, (p-1)/(M+p-1) */
    double bytes;           /* bytes a rank sends per step */
    size_t mem;             /* bytes per rank */
    PlanMode mode;
    int k;                  /* zo samples, or diloco H */
    double comm_s;          /* all exposed communication of a step (tp + pp + dp/zo/outer) */
    double update_s;        /* zo: regenerating and applying every machine's z */
    double tokens_per_s;    /* global batch tokens over step_s */
    double fixed_s;         /* per-step costs besides FLOPs and traffic: zeroing the
                             * gradients, their norm, the loss and norm all-reduces;
                             * zo: perturbing the weights for each forward */
    double worth;           /* planner_step_worth(mode, k) */
    double dp_equiv_tokens_per_s; /* tokens_per_s x worth: what the modes are ranked by */
} Prediction;

/* The mode of a config: zo, diloco (H > 0) or plain data-parallel backprop. */
PlanMode planner_mode(const TrainConfig *cfg);
const char *planner_mode_name(PlanMode m);

/* What one step of a mode teaches, in backprop steps of the same global
 * batch, from the project's own time-to-quality measurements
 * (docs/planner.md): DP 1, ZO with K samples K/60 (at most 1), DiLoCo 1/3 up
 * to H=50 (measured), 1/6 beyond.
 * A ZO step's tokens do not learn like a backprop step's, so tokens/s
 * alone would rank ZO first whenever its step is faster. */
double planner_step_worth(PlanMode m, int k);

/* One row per mode for a comparison at one machine and link: DP (best
 * layout), ZO K=1 and K=4, DiLoCo H=10, 50, 500, and the config's own mode
 * when it is none of those; each the best layout of `ranks` for that mode.
 * Sorted by dp_equiv_tokens_per_s, best first (the recommendation). *own
 * is the index of the config's own mode. Returns how many. */
int planner_compare_modes(const TrainConfig *cfg, int ranks, const Machine *mc, Prediction *out,
                          int max, int *own);

/* The best layout of `ranks` for cfg's own mode (as a row of
 * planner_compare_modes); 0 when none is valid. */
int planner_best_layout(const TrainConfig *cfg, int ranks, const Machine *mc, Prediction *out);

/* Parses a stated link: a bandwidth like "10mbit", "1gbit", "2.5Gbit/s",
 * "100MB/s", optionally followed by ",LAT" with LAT like "200us", "1ms",
 * "0.5s" (the latency keeps *alpha_s when absent). Bits or bytes must be
 * said: "10m" and "10mb" are refused as ambiguous. 0 or -1 with e naming
 * the flag. */
int planner_parse_link(const char *flag, const char *s, double *beta_Bps, double *alpha_s, Err *e);
/* "10.0 Mbit/s", "1.00 Gbit/s", "800 kbit/s": a bandwidth in bits. */
const char *planner_format_bps(double beta_Bps, char *buf, size_t n);

/* One GEMM of a layer, C(M, N) = A(M, K) B(N, K)^T, and its share of the
 * layer's FLOPs (in units of n_embd^2 per token). */
typedef struct {
    int M, N, K;
    double weight;
} LayerGemm;
#define PLANNER_MAX_GEMMS 6
/* The GEMMs of one transformer layer of c over N tokens, forward shapes:
 * the attention's q|k|v (one GEMM in models/gpt.c, GPT-2's and the llama
 * family's alike: kv_width keys and values), its output projection, the
 * MLP's linears (GELU: fc, proj; SwiGLU: gate, up, down) and the per-head
 * attention products (T x T x head_dim). A model that is not a transformer
 * (mlp) gets GPT-2's linears at its width. Sizes are clamped to what a probe
 * can time quickly. Fills g (PLANNER_MAX_GEMMS entries), returns how many. */
int planner_layer_gemms(const ModelConfig *c, int N, LayerGemm *g);
/* Measures this process's single-thread GEMM rate at the model's layer
 * GEMMs (planner_layer_gemms), combined by their share of FLOPs. */
double planner_measure_gemm(const ModelConfig *m, int tokens);
/* Defaults for a shared-memory node (overridable by flags / measurement). */
void planner_default_machine(Machine *mc, int ranks);
/* No measured link between hosts: a TCP network's latency and bandwidth
 * (100 us, 1 Gbit/s) instead of the shared-memory defaults. */
void planner_network_link(Machine *mc);
/* "4 ranks x 2 threads on 2 cores of one machine (hosts h0..h3 share a
 * kernel): oversubscribed 4x" (the last part only when threads exceed the
 * cores; the hosts part only for hosts > 1). Returns the factor
 * ranks x threads / cores. */
double planner_describe_cores(int ranks, int threads, int cores, int hosts, const char *first_host,
                              const char *last_host, char *buf, size_t n);
/* Predicts one resolved layout (cfg->dp/tp/pp/micro_batches set, stages filled). */
void planner_predict(const TrainConfig *cfg, const Machine *mc, Prediction *p);
/* Every valid layout of `ranks` (micro-batches: cfg's, or the best of the
 * divisors of the per-rank batch when cfg->micro_batches == 0); sorted by
 * predicted step time. Returns how many (<= max). */
int planner_search(const TrainConfig *cfg, int ranks, const Machine *mc, size_t avail_per_rank,
                   Prediction *out, int max);

/* A measured CPU share below this part of the fair one means other work
 * held the cores (an idle machine measures 0.95-1.0 of it). */
#define PLANNER_BUSY_SHARE 0.85

/* The end-of-run line: the prediction against the measured step time. When
 * the ranks got clearly less CPU than the job's own layout leaves them
 * (other processes held the cores), it says so and scales the measured
 * time to an idle machine's, the prediction's premise, instead of printing
 * the bare difference. Returns 1 when it judged the machine busy. */
int planner_verdict(const RunTiming *r, char *buf, size_t n);

#endif
