#include "coordinator/plan/planner.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "coordinator/plan/plan.h"
#include "base/wire.h"
#include "models/cost.h"
#include "models/model.h"
#include "models/ops.h"
#include "sharding/stages.h"
#include "worker/method/methods.h"

/* This thread's CPU seconds: the sgemm rate it measures is the machine's
 * when idle, whatever else shares the cores (on a loaded 2-core machine
 * the wall clock gave a third of it, and a different third every call). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best single-thread rate of C(M,N) = A(M,K) B(N,K)^T over a few runs
 * (one thread: the calling one, whose CPU time is measured). */
static double gemm_rate(int M, int N, int K)
{
    float *a = model_calloc((size_t)M * K, sizeof(float)), *b = model_calloc((size_t)N * K, sizeof(float));
    float *c = model_calloc((size_t)M * N, sizeof(float));
    double best = 0;
    for (int rep = 0; a && b && c && rep < 3; rep++) {
        double t0 = cpu_s();
        int calls = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            calls++;
        } while (cpu_s() - t0 < 0.005);
        double rate = 2.0 * M * N * K * calls / (cpu_s() - t0) / 1e9;
        if (rate > best) best = rate;
    }
    free(a);
    free(b);
    free(c);
    return best > 0 ? best : 50.0;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

int planner_layer_gemms(const ModelConfig *c, int N, LayerGemm *g)
{
    const TransformerDesc *d = model_transformer(c);
    TransformerShape s = transformer_shape(c);
    int C = clampi(c->n_embd, 8, 4096), T = clampi(c->seq_len, 8, 2048);
    int q = d ? clampi(s.q_width, 8, 4096) : C, kv = d ? clampi(s.kv_width, 8, 4096) : C;
    int F = clampi(s.mlp_hidden, 8, 16384), hs = d ? clampi(s.head_dim, 4, 1024) : C;
    double cc = (double)C * C;
    int n = 0;
    g[n++] = (LayerGemm){N, q + 2 * kv, C, (q + 2 * kv) * (double)C / cc};
    g[n++] = (LayerGemm){N, C, q, C * (double)q / cc};
    int mlp_in = d && d->mlp == MLP_SWIGLU ? 2 : 1;
    for (int k = 0; k < mlp_in; k++) g[n++] = (LayerGemm){N, F, C, F * (double)C / cc};
    g[n++] = (LayerGemm){N, C, F, C * (double)F / cc};
    if (d) g[n++] = (LayerGemm){T, T, hs, 2.0 * T / C * ((double)q / C)};
    return n;
}

double planner_measure_gemm(const ModelConfig *m, int tokens)
{
    /* the layer's own GEMMs, combined by their share of FLOPs */
    LayerGemm g[PLANNER_MAX_GEMMS];
    int n = planner_layer_gemms(m, clampi(tokens, 16, 4096), g);
    int saved = ops_get_threads();
    ops_set_threads(1);
    double flops = 0, secs = 0;
    for (int i = 0; i < n; i++) {
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
    mc->z_rate = 1.5e9; /* docs/zo.md: ~1.5 G z elements per second and thread */
}

void planner_network_link(Machine *mc)
{
    mc->alpha_s = 100e-6; /* TCP between hosts: 50-200 us a message */
    mc->beta_Bps = 125e6;
}

double planner_describe_cores(int ranks, int threads, int cores, int hosts, const char *first_host,
                              const char *last_host, char *buf, size_t n)
{
    if (cores < 1) cores = 1;
    double f = (double)ranks * threads / cores;
    int k = snprintf(buf, n, "%d rank%s x %d thread%s on %d core%s of one machine", ranks,
                     ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s", cores, cores == 1 ? "" : "s");
    if (hosts > 1 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - k, " (hosts %s..%s share a kernel)", first_host, last_host);
    if (f > 1 && k >= 0 && (size_t)k < n) snprintf(buf + k, n - k, ": oversubscribed %.3gx", f);
    return f;
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

/* The per-parameter passes of a step, in one thread's CPU time, measured
 * by bench/bench_step (AMD EPYC, 2026-12-05; 0.12 M to 25.4 M parameters):
 * zeroing the gradients 0.05-0.25 ns a parameter, the gradient norm's sum
 * of squares 0.57-0.63, AdamW 0.49-0.73 (SGD: momentum only, about half).
 * Memory-bound: they do not follow the GEMM rate. */
#define ZERO_GRAD_S 0.15e-9
#define NORM_S 0.6e-9
#define ADAMW_S 0.7e-9
#define SGD_S 0.35e-9

/* Ranks time-sharing fewer cores take turns at memory-bound passes. */
static double memory_slowdown(const Machine *mc)
{
    return mc->ranks_per_node > mc->cores ? (double)mc->ranks_per_node / mc->cores : 1.0;
}

/* One scalar all-reduce over p ranks (the loss, the gradient norm): a few
 * latencies, and on oversubscribed cores a wait for an unscheduled peer. */
static double scalar_allreduce_s(const Machine *mc, int p)
{
    return p > 1 ? mc->alpha_s * ceil(log2(p)) + sched_wait_s(mc) : 0;
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
        /* a transformer's layers are blocks 1..L (0 is the embedding), an mlp's 0..L-1 */
        int is_layer = model_transformer(&c->model) ? (b >= 1 && b <= c->model.n_layer)
                                                    : b < c->model.n_layer;
        *flops += is_layer ? cost[b] / c->tp : cost[b]; /* embedding and head are replicated */
        *layers += is_layer;
    }
}

/* A backprop step with its data-parallel gradient all-reduce; *dp_bytes
 * is that all-reduce's bytes per rank alone. */
static void predict_backprop(const TrainConfig *c, const Machine *mc, Prediction *p, double *dp_bytes)
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
    double dp_s = ring_s(mc, c->dp, grad_bytes, 2.0 * (c->dp - 1) / c->dp) + (c->dp > 1 ? sched_wait_s(mc) : 0);
    double hidden = c->overlap ? 0.5 * p->compute_s : 0;
    p->dp_exposed_s = dp_s - hidden > 0.2 * dp_s ? dp_s - hidden : 0.2 * dp_s;
    *dp_bytes = 2.0 * (c->dp - 1) / c->dp * grad_bytes;
    /* the per-parameter passes: the optimizer over the update range (a
     * ZeRO shard), zeroing every gradient, the norm's sum of squares over
     * the update range; then the loss and the norm all-reduces */
    double params = grad_bytes / sizeof(float), update = params / (c->zero ? c->dp : 1);
    double slow = memory_slowdown(mc);
    p->opt_s = update * (c->optim.kind == OPT_SGD ? SGD_S : ADAMW_S) * slow;
    p->fixed_s = (params * ZERO_GRAD_S + update * NORM_S) * slow + 2.0 * scalar_allreduce_s(mc, c->dp * c->tp * c->pp);
    p->step_s = p->compute_s + p->tp_comm_s + p->pp_comm_s + p->dp_exposed_s + p->opt_s + p->fixed_s;
    p->bytes = 4.0 * worst_layers * c->micro_batches * 2.0 * (c->tp - 1) / c->tp * act +
               (c->pp > 1 ? 2.0 * c->micro_batches * act : 0) +
               2.0 * (c->dp - 1) / c->dp * grad_bytes;
    p->mem = plan_memory_per_rank(c);
}

/* The method's cost shape: forward passes only (zo), replicas on their own
 * gradients with an outer all-reduce (DiLoCo), or data-parallel backprop.
 * method_of, not c->method: the planner tries configs of other modes. */
PlanMode planner_mode(const TrainConfig *c)
{
    const StepStrategy *m = method_of(c);
    if (m->forward_only) return MODE_ZO;
    return m->replica_grads ? MODE_DILOCO : MODE_DP;
}

const char *planner_mode_name(PlanMode m)
{
    return m == MODE_ZO ? "ZO" : m == MODE_DILOCO ? "DiLoCo" : "DP";
}

/* The share of the machine's cores one rank gets: below 1 when ranks
 * oversubscribe them. */
static double core_share(const Machine *mc)
{
    double s = (double)mc->cores / (mc->ranks_per_node > 0 ? mc->ranks_per_node : 1);
    return s >= 1 ? floor(s) : s;
}

/* ZO: 2K forward passes over the local batch (a third of a backprop
 * step's FLOPs each, half its TP all-reduces, one of its two pipeline
 * messages), the update regenerating z for every code of every machine,
 * and an allgather of K one-byte codes per machine (latency-bound). */
static void to_zo(const TrainConfig *c, const Machine *mc, Prediction *p)
{
    int K = c->zo_samples > 0 ? c->zo_samples : 1, dp = c->dp;
    p->compute_s *= 2.0 * K / 3.0;
    p->tp_comm_s *= K;
    p->pp_comm_s *= K;
    p->opt_s = 0;
    double shard = (double)cost_param_count(&c->model) / (c->tp * c->pp);
    p->update_s = shard * dp * K / (mc->z_rate * core_share(mc));
    /* each forward writes theta +- eps z into the view, block by block
     * (bench_zo: the step is 1.03-1.10x its two forwards), and the K
     * losses are all-reduced; no gradient to zero, no norm */
    p->fixed_s = 2.0 * K * shard / (mc->z_rate * core_share(mc)) +
                 K * scalar_allreduce_s(mc, c->dp * c->tp * c->pp);
    /* a blocking exchange: on oversubscribed cores it also waits for the
     * peers the kernel has not scheduled */
    double gather = dp > 1 ? mc->alpha_s * ceil(log2(dp)) + (double)K * dp / mc->beta_Bps + sched_wait_s(mc) : 0;
    p->dp_exposed_s = gather;
    p->step_s = p->compute_s + p->tp_comm_s + p->pp_comm_s + p->dp_exposed_s + p->update_s + p->fixed_s;
    p->bytes *= K / 2.0; /* forward halves of the tp and pp traffic, 2K times */
    p->bytes += (double)(dp - 1) * K;
    p->k = K;
}

/* DiLoCo: inner steps without the gradient all-reduce; every H steps the
 * pseudo-gradient is all-reduced over the replicas in --diloco-wire's
 * format (a reduce-scatter and an all-gather of its codes,
 * comm/mpi/paced.c; behind the next H inner steps with --diloco-overlap
 * 1) and the outer step applied. */
static void to_diloco(const TrainConfig *c, const Machine *mc, Prediction *p)
{
    int H = c->diloco;
    double inner = p->compute_s + p->tp_comm_s + p->pp_comm_s + p->opt_s + p->fixed_s; /* before the outer step's share */
    double shard = (double)cost_param_count(&c->model) / (c->tp * c->pp);
    double wire = (double)wire_bytes((WireFormat)c->diloco_wire, (size_t)shard);
    double share = 2.0 * (c->dp - 1) / c->dp;
    double ar_s = ring_s(mc, c->dp, wire, share) + (c->dp > 1 ? sched_wait_s(mc) : 0);
    double ar_bytes = share * wire;
    double exposed = c->diloco_overlap ? fmax(0, ar_s - H * inner) : ar_s;
    double outer_opt = shard * ADAMW_S * memory_slowdown(mc); /* Nesterov: memory-bound, like AdamW */
    p->dp_exposed_s = exposed / H;
    p->opt_s += outer_opt / H;
    p->step_s = inner + outer_opt / H + p->dp_exposed_s;
    p->bytes += ar_bytes / H;
    p->k = H;
}

void planner_predict(const TrainConfig *c, const Machine *mc, Prediction *p)
{
    double dp_bytes = 0;
    predict_backprop(c, mc, p, &dp_bytes);
    p->mode = planner_mode(c);
    if (p->mode != MODE_DP) p->bytes -= dp_bytes;
    if (p->mode == MODE_ZO) to_zo(c, mc, p);
    if (p->mode == MODE_DILOCO) to_diloco(c, mc, p);
    p->comm_s = p->tp_comm_s + p->pp_comm_s + p->dp_exposed_s;
    double tokens = (double)c->global_batch * c->model.seq_len;
    p->tokens_per_s = p->step_s > 0 ? tokens / p->step_s : 0;
    p->worth = planner_step_worth(p->mode, p->k);
    p->dp_equiv_tokens_per_s = p->tokens_per_s * p->worth;
}

double planner_step_worth(PlanMode m, int k)
{
    /* docs/planner.md, "Ranking the modes": at equal time on the project's
     * fine-tuning task, 1194 ZO steps of 1 sample ended above 21 AdamW
     * steps (2.492 vs 2.406 from 3.42), and 39 steps of 4 samples matched
     * 121 of 1 sample; DiLoCo H=10 and 50 needed 2-6 inner steps (about
     * 3) for one AdamW step's progress; a longer H was not measured: the
     * low end of that range */
    if (m == MODE_ZO) return k > 0 ? fmin(1.0, k / 60.0) : 1.0 / 60;
    if (m == MODE_DILOCO) return k <= 50 ? 1.0 / 3 : 1.0 / 6;
    return 1.0;
}

/* ZO's point is its exchange of one byte per sample and machine: a layout
 * that splits a machine with tp or pp sends activations across ranks
 * (1,048,577 bytes a step where dp 4 sends 3, at the reference shape on 4
 * ranks) for a predicted gain well within the model's error. ZO takes such
 * a layout only when no data-parallel one fits in memory (the search
 * drops those that do not). */
static int zo_moves_activations(const Prediction *p)
{
    return p->mode == MODE_ZO && (p->tp > 1 || p->pp > 1);
}

static int cmp_pred(const void *a, const void *b)
{
    const Prediction *x = a, *y = b;
    if (zo_moves_activations(x) != zo_moves_activations(y)) return zo_moves_activations(x) ? 1 : -1;
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

/* cfg turned into one mode: zo with K samples, diloco with H, or DP. */
static TrainConfig as_mode(const TrainConfig *cfg, PlanMode m, int k)
{
    TrainConfig c = *cfg;
    c.diloco = m == MODE_DILOCO ? k : 0;
    if (m != MODE_DILOCO) c.diloco_overlap = 0;
    if (m == MODE_ZO) {
        c.optim.kind = OPT_ZO;
        c.zo_samples = k;
        c.zero = 0;
    } else if (c.optim.kind == OPT_ZO) {
        c.optim.kind = OPT_ADAMW;
    }
    if (m == MODE_DILOCO) c.zero = 0;
    return c;
}

static int best_of_mode(const TrainConfig *cfg, PlanMode m, int k, int ranks, const Machine *mc,
                        Prediction *out)
{
    TrainConfig c = as_mode(cfg, m, k);
    Prediction *all = malloc(256 * sizeof *all);
    int n = all ? planner_search(&c, ranks, mc, 0, all, 256) : 0;
    if (n) *out = all[0];
    free(all);
    return n > 0;
}

int planner_best_layout(const TrainConfig *cfg, int ranks, const Machine *mc, Prediction *out)
{
    PlanMode m = planner_mode(cfg);
    return best_of_mode(cfg, m, m == MODE_ZO ? cfg->zo_samples : m == MODE_DILOCO ? cfg->diloco : 0,
                        ranks, mc, out);
}

/* Best first by backprop-equivalent tokens/s (a stable insertion sort:
 * the rows are few), keeping *own on the config's row. */
static void sort_by_learning(Prediction *p, int n, int *own)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && p[j].dp_equiv_tokens_per_s > p[j - 1].dp_equiv_tokens_per_s; j--) {
            Prediction t = p[j];
            p[j] = p[j - 1];
            p[j - 1] = t;
            if (*own == j) *own = j - 1;
            else if (*own == j - 1) *own = j;
        }
}

int planner_compare_modes(const TrainConfig *cfg, int ranks, const Machine *mc, Prediction *out,
                          int max, int *own)
{
    static const struct { PlanMode m; int k; } ROWS[] = {
        {MODE_DP, 0}, {MODE_ZO, 1}, {MODE_ZO, 4}, {MODE_DILOCO, 10}, {MODE_DILOCO, 50}, {MODE_DILOCO, 500},
    };
    PlanMode mine = planner_mode(cfg);
    int my_k = mine == MODE_ZO ? cfg->zo_samples : mine == MODE_DILOCO ? cfg->diloco : 0;
    int n = 0;
    *own = -1;
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0] && n < max; i++) {
        if (!best_of_mode(cfg, ROWS[i].m, ROWS[i].k, ranks, mc, &out[n])) continue;
        if (ROWS[i].m == mine && ROWS[i].k == my_k) *own = n;
        n++;
    }
    if (*own < 0 && n < max && best_of_mode(cfg, mine, my_k, ranks, mc, &out[n])) *own = n++;
    sort_by_learning(out, n, own);
    return n;
}

int planner_verdict(const RunTiming *r, char *buf, size_t n)
{
    double got = r->fair_share > 0 ? r->cpu_share / r->fair_share : r->cpu_share;
    int busy = r->cpu_share >= 0 && got < PLANNER_BUSY_SHARE;
    char where[64];
    snprintf(where, sizeof where, "%s at dp %d x tp %d x pp %d", r->strategy, r->dp, r->tp, r->pp);
    if (!busy) {
        snprintf(buf, n, "planner: predicted %.1f ms/step for %s, measured %.1f ms/step (%+.0f%%)",
                 r->predicted_ms, where, r->measured_ms, (r->predicted_ms / r->measured_ms - 1) * 100);
        return 0;
    }
    /* the step's work took 1/got as long as with the cores to itself */
    double idle_ms = r->measured_ms * got;
    char load[64] = "", own[96] = "";
    if (r->load >= 0) snprintf(load, sizeof load, "; load %.1f on %d core%s", r->load, r->cores, r->cores == 1 ? "" : "s");
    if (r->fair_share < 1) snprintf(own, sizeof own, " (this job's own ranks leave them %.0f%%)", r->fair_share * 100);
    snprintf(buf, n, "planner: the machine was busy: the ranks ran %.0f%% of the time they were ready to%s "
                     "(other processes held the cores%s); measured %.1f ms/step, about %.1f on an idle "
                     "machine; prediction for an idle machine: %.1f ms/step for %s (%+.0f%%)",
             r->cpu_share * 100, own, load, r->measured_ms, idle_ms, r->predicted_ms, where,
             (r->predicted_ms / idle_ms - 1) * 100);
    return 1;
}

/* ---- stated links ------------------------------------------------------ */

static int lower_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return !*a && !*b;
}

/* "mbit", "Gbit/s", "kbps" (bits) or "MB/s", "GB" (bytes) -> bytes/s per unit. */
static double bandwidth_unit(const char *u)
{
    double scale = 1;
    switch (tolower((unsigned char)*u)) {
    case 'k': scale = 1e3; u++; break;
    case 'm': scale = 1e6; u++; break;
    case 'g': scale = 1e9; u++; break;
    case 't': scale = 1e12; u++; break;
    }
    static const char *BITS[] = {"bit", "bit/s", "bits", "bits/s", "bps"};
    for (size_t i = 0; i < sizeof BITS / sizeof BITS[0]; i++)
        if (lower_eq(u, BITS[i]) && strcmp(u, "Bps")) return scale / 8;
    /* bytes only with a capital B: "mb" could be either */
    if (!strcmp(u, "B") || !strcmp(u, "B/s") || !strcmp(u, "Bps")) return scale;
    return 0;
}

static double latency_unit(const char *u)
{
    if (lower_eq(u, "us")) return 1e-6;
    if (lower_eq(u, "ms")) return 1e-3;
    if (lower_eq(u, "s")) return 1;
    if (lower_eq(u, "ns")) return 1e-9;
    return 0;
}

#define LINK_MIN_BPS 1e3
#define LINK_MAX_BPS 1e15
#define LINK_MAX_LATENCY_S 10.0

int planner_parse_link(const char *flag, const char *s, double *beta_Bps, double *alpha_s, Err *e)
{
    const char *usage = "say e.g. 10mbit, 1gbit, 100MB/s, optionally ,200us";
    char bw[64];
    const char *comma = s ? strchr(s, ',') : NULL;
    size_t len = s ? (comma ? (size_t)(comma - s) : strlen(s)) : 0;
    if (!s || !len || len >= sizeof bw) return err_set(e, "%s '%s': no bandwidth (%s)", flag, s ? s : "", usage);
    memcpy(bw, s, len);
    bw[len] = 0;
    char *end;
    double v = strtod(bw, &end);
    double unit = end != bw ? bandwidth_unit(end) : 0;
    if (end == bw || !(v > 0) || !isfinite(v))
        return err_set(e, "%s '%s': the bandwidth must be a positive number with a unit (%s)", flag, s, usage);
    if (!(unit > 0))
        return err_set(e, "%s '%s': unknown or ambiguous unit '%s' (bits: kbit, mbit, gbit; bytes: "
                          "KB/s, MB/s, GB/s with a capital B)", flag, s, end);
    double lat = *alpha_s;
    if (comma) {
        double l = strtod(comma + 1, &end);
        double lu = end != comma + 1 ? latency_unit(end) : 0;
        if (!(lu > 0) || !(l >= 0) || !isfinite(l))
            return err_set(e, "%s '%s': the latency after the comma must be a number with us, ms "
                              "or s (e.g. 200us)", flag, s);
        lat = l * lu;
    }
    /* the ranges of --link-gbps (1e-06 .. 1e+06 GB/s) and --link-latency-us
     * (at most 1e7 us): no infinite bandwidth, no 300-digit step time */
    if (!(v * unit >= LINK_MIN_BPS && v * unit <= LINK_MAX_BPS))
        return err_set(e, "%s '%s': the bandwidth must be from 8 kbit/s to 8000 Tbit/s "
                          "(--link-gbps 1e-06 to 1e+06)", flag, s);
    if (!(lat <= LINK_MAX_LATENCY_S))
        return err_set(e, "%s '%s': the latency must be at most 10 s (--link-latency-us 1e7)",
                       flag, s);
    *beta_Bps = v * unit;
    *alpha_s = lat;
    return 0;
}

const char *planner_format_bps(double beta_Bps, char *buf, size_t n)
{
    double bits = beta_Bps * 8;
    if (bits >= 1e9) snprintf(buf, n, "%.2f Gbit/s", bits / 1e9);
    else if (bits >= 1e6) snprintf(buf, n, "%.1f Mbit/s", bits / 1e6);
    else snprintf(buf, n, "%.0f kbit/s", bits / 1e3);
    return buf;
}
