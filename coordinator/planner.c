#include "coordinator/planner.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "coordinator/plan.h"
#include "models/cost.h"
#include "models/model.h"
#include "models/ops.h"
#include "sharding/stages.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best single-thread rate of C(M,N) = A(M,K) B(N,K)^T over a few runs. */
static double gemm_rate(int M, int N, int K)
{
    float *a = model_calloc((size_t)M * K, sizeof(float)), *b = model_calloc((size_t)N * K, sizeof(float));
    float *c = model_calloc((size_t)M * N, sizeof(float));
    double best = 0;
    for (int rep = 0; a && b && c && rep < 3; rep++) {
        double t0 = now_s();
        int calls = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            calls++;
        } while (now_s() - t0 < 0.005);
        double rate = 2.0 * M * N * K * calls / (now_s() - t0) / 1e9;
        if (rate > best) best = rate;
    }
    free(a);
    free(b);
    free(c);
    return best > 0 ? best : 50.0;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

double planner_measure_gemm(const ModelConfig *m, int tokens)
{
    /* the layer's own GEMMs (qkv, projection, the two MLP linears, and the
     * two per-head attention products), combined by their share of FLOPs */
    int N = clampi(tokens, 16, 4096), C = clampi(m->n_embd, 8, 4096), T = clampi(m->seq_len, 8, 2048);
    int hs = m->kind == MODEL_GPT ? clampi(m->n_embd / m->n_head, 4, 1024) : C;
    struct { int M, N, K; double weight; } g[] = {
        {N, 3 * C, C, 3}, {N, C, C, 1}, {N, 4 * C, C, 4}, {N, C, 4 * C, 4},
        {T, T, hs, m->kind == MODEL_GPT ? 2.0 * T / C : 0},
    };
    int saved = ops_get_threads();
    ops_set_threads(1);
    double flops = 0, secs = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        if (g[i].weight <= 0) continue;
        double r = gemm_rate(g[i].M, g[i].N, g[i].K);
        flops += g[i].weight;
        secs += g[i].weight / r;
    }
    ops_set_threads(saved);
    return flops / secs;
}

void planner_default_machine(Machine *mc, int ranks)
{
    mc->gemm_gflops = 100.0;
    mc->efficiency = 0.85; /* measured on the reference GPT: 163.5 of 199.8 GFLOP/s */
    mc->alpha_s = 5e-6;
    mc->beta_Bps = 4e9;
    mc->cores = 2;
    mc->ranks_per_node = ranks;
}

/* Compute rate of one rank running alone: its whole threads (at least one). */
static double rank_flops(const Machine *mc)
{
    int threads = mc->cores / mc->ranks_per_node;
    return mc->gemm_gflops * 1e9 * mc->efficiency * (threads > 1 ? threads : 1);
}

/* More ranks than cores: a blocking exchange waits for a peer the kernel
 * has not scheduled yet, about half a scheduler slice (measured ~2 ms per
 * TP all-reduce at 4 ranks on 2 cores). */
static double sched_wait_s(const Machine *mc)
{
    if (mc->ranks_per_node <= mc->cores) return 0;
    return 4e-3 * (1.0 - (double)mc->cores / mc->ranks_per_node);
}

/* One message of `bytes` and a ring collective over p ranks moving `bytes`. */
static double msg_s(const Machine *mc, double bytes) { return mc->alpha_s + bytes / mc->beta_Bps; }

static double ring_s(const Machine *mc, int p, double bytes, double share)
{
    if (p <= 1) return 0;
    return 2.0 * (p - 1) * mc->alpha_s + share * bytes / mc->beta_Bps;
}

static void stage_cost(const TrainConfig *c, int s, const double *cost, double *flops,
                       int *layers)
{
    int b0 = c->pp > 1 ? c->stage_first[s] : 0;
    int b1 = c->pp > 1 ? c->stage_first[s + 1] : model_n_blocks(&c->model);
    *flops = 0;
    *layers = 0;
    for (int b = b0; b < b1; b++) {
        int is_layer = c->model.kind == MODEL_GPT ? (b >= 1 && b <= c->model.n_layer) : b < c->model.n_layer;
        *flops += is_layer ? cost[b] / c->tp : cost[b]; /* embedding and head are replicated */
        *layers += is_layer;
    }
}

void planner_predict(const TrainConfig *c, const Machine *mc, Prediction *p)
{
    memset(p, 0, sizeof *p);
    p->dp = c->dp;
    p->tp = c->tp;
    p->pp = c->pp;
    p->M = c->micro_batches;
    int n = model_n_blocks(&c->model);
    double *cost = calloc(n, sizeof *cost);
    if (!cost) return;
    model_block_costs(&c->model, cost);
    int micro = c->global_batch / c->dp / c->micro_batches;
    double rate = rank_flops(mc), worst = 0, total = 0, C = c->model.n_embd;
    int worst_layers = 0;
    for (int s = 0; s < c->pp; s++) {
        double f;
        int layers;
        stage_cost(c, s, cost, &f, &layers);
        total += f;
        if (f > worst) worst = f, worst_layers = layers;
    }
    free(cost);
    double mb_s = worst * micro / rate;
    /* a stage alone on its core, plus the fill and drain of the pipeline... */
    double pipe_s = mb_s * (c->micro_batches + c->pp - 1);
    /* ... but never faster than the node can do all ranks' work: waiting
     * stages give their core to others */
    double node_s = total / c->pp * micro * c->micro_batches * (double)mc->ranks_per_node /
                    (mc->gemm_gflops * 1e9 * mc->efficiency * mc->cores);
    p->compute_s = pipe_s > node_s ? pipe_s : node_s;
    p->bubble = pipeline_bubble(c->pp, c->micro_batches);
    double act = (double)micro * c->model.seq_len * C * sizeof(float);
    /* TP: 2 all-reduces forward + 2 backward per layer and micro-batch */
    double tp_one = ring_s(mc, c->tp, act, 2.0 * (c->tp - 1) / c->tp) + (c->tp > 1 ? sched_wait_s(mc) : 0);
    p->tp_comm_s = 4.0 * worst_layers * c->micro_batches * tp_one;
    /* PP: an activation forward and its gradient back per micro-batch and
     * boundary, on the critical path once per pipeline slot */
    if (c->pp > 1) p->pp_comm_s = 2.0 * (c->micro_batches + c->pp - 1) * (msg_s(mc, act) + sched_wait_s(mc));
    /* DP: gradient all-reduce (reduce-scatter + all-gather with ZeRO),
     * partly hidden behind backward by the buckets */
    double grad_bytes = (double)cost_param_count(&c->model) / (c->tp * c->pp) * sizeof(float);
    double dp_s = ring_s(mc, c->dp, grad_bytes, 2.0 * (c->dp - 1) / c->dp);
    double hidden = c->overlap ? 0.5 * p->compute_s : 0;
    p->dp_exposed_s = dp_s - hidden > 0.2 * dp_s ? dp_s - hidden : 0.2 * dp_s;
    /* optimizer: memory-bound, ~ 16 bytes touched per parameter */
    double shard = grad_bytes / sizeof(float) / (c->zero ? c->dp : 1);
    p->opt_s = shard * 16.0 / 10e9 * mc->ranks_per_node / (mc->cores < mc->ranks_per_node ? mc->cores : mc->ranks_per_node);
    p->step_s = p->compute_s + p->tp_comm_s + p->pp_comm_s + p->dp_exposed_s + p->opt_s;
    p->bytes = 4.0 * worst_layers * c->micro_batches * 2.0 * (c->tp - 1) / c->tp * act +
               (c->pp > 1 ? 2.0 * c->micro_batches * act : 0) +
               2.0 * (c->dp - 1) / c->dp * grad_bytes;
    p->mem = plan_memory_per_rank(c);
}

static int cmp_pred(const void *a, const void *b)
{
    const Prediction *x = a, *y = b;
    if (x->step_s != y->step_s) return x->step_s < y->step_s ? -1 : 1;
    return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

int planner_search(const TrainConfig *cfg, int ranks, const Machine *mc, size_t avail,
                   Prediction *out, int max)
{
    int n = 0;
    for (int tp = 1; tp <= ranks; tp++)
        for (int pp = 1; tp * pp <= ranks; pp++) {
            if (ranks % (tp * pp)) continue;
            int dp = ranks / (tp * pp);
            if (cfg->global_batch % dp) continue;
            int local = cfg->global_batch / dp;
            Prediction best;
            int found = 0;
            for (int M = 1; M <= local && M <= 64; M++) {
                if (local % M || (cfg->micro_batches && M != cfg->micro_batches)) continue;
                TrainConfig c = *cfg;
                c.dp = dp;
                c.tp = tp;
                c.pp = pp;
                c.micro_batches = M;
                Err e;
                if (plan_resolve(&c, ranks, avail, &e)) continue;
                Prediction p;
                planner_predict(&c, mc, &p);
                if (!found || cmp_pred(&p, &best) < 0) best = p;
                found = 1;
            }
            if (found && n < max) out[n++] = best;
        }
    qsort(out, n, sizeof *out, cmp_pred);
    return n;
}
