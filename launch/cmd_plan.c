#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "comm/comm.h"
#include "coordinator/planner.h"
#include "launch/commands.h"
#include "base/json.h"
#include "base/options.h"

typedef struct {
    TrainConfig t; /* first: the train options' offsets apply unchanged */
    int ranks, cores, json;
    float link_gbps, link_latency_us, gemm_gflops;
} PlanArgs;

#define P(f) offsetof(PlanArgs, f)
static const OptSpec PLAN_ONLY[] = {
    {"ranks", OT_INT, P(ranks), 0, "N", "ranks to plan for (default: this job's size, else 8)", NULL, 1, 1 << 20, NULL},
    {"cores", OT_INT, P(cores), 0, "K", "cores per node (default: this machine's)", NULL, 1, 1 << 16, NULL},
    {"link-gbps", OT_FLOAT, P(link_gbps), 0, "X", "link bandwidth, GB/s (default: measured under mpirun, else 4)", NULL, 1e-6, 1e6, NULL},
    {"link-latency-us", OT_FLOAT, P(link_latency_us), 0, "X", "link latency, microseconds (default: measured, else 5)", NULL, 0, 1e7, NULL},
    {"gemm-gflops", OT_FLOAT, P(gemm_gflops), 0, "X", "one thread's sgemm rate (default: measured now)", NULL, 1e-3, 1e6, NULL},
    {"json", OT_FLAG, P(json), 0, NULL, "one JSON object per layout instead of a table", NULL, 1, 0, NULL},
};

static OptSpec *plan_table(void)
{
    size_t n;
    const OptSpec *train = train_config_table(&n);
    size_t extra = sizeof PLAN_ONLY / sizeof PLAN_ONLY[0];
    OptSpec *all = calloc(n + extra + 1, sizeof *all);
    if (!all) return NULL;
    memcpy(all, train, n * sizeof *all);
    memcpy(all + n, PLAN_ONLY, extra * sizeof *all);
    return all;
}

static void print_table(const Prediction *p, int n, int ranks, const Machine *mc)
{
    printf("layouts of %d ranks (%d cores/node; sgemm %.1f GFLOP/s per thread; link %.1f us, %.2f GB/s)\n\n",
           ranks, mc->cores, mc->gemm_gflops, mc->alpha_s * 1e6, mc->beta_Bps / 1e9);
    printf("   dp x tp x pp   M   step ms  compute  tp comm  pp comm  dp exposed  bubble  MB/step/rank  mem/rank MB\n");
    for (int i = 0; i < n; i++)
        printf("%s %3d x %2d x %2d  %2d  %8.1f %8.1f %8.1f %8.1f %11.1f  %5.1f%%  %12.2f %12.1f\n",
               i == 0 ? "*" : " ", p[i].dp, p[i].tp, p[i].pp, p[i].M, p[i].step_s * 1e3,
               p[i].compute_s * 1e3, p[i].tp_comm_s * 1e3, p[i].pp_comm_s * 1e3,
               p[i].dp_exposed_s * 1e3, p[i].bubble * 100, p[i].bytes / 1e6, p[i].mem / 1e6);
    if (n) printf("\nchosen: --dp %d --tp %d --pp %d --micro-batches %d (predicted %.1f ms/step)\n",
                  p[0].dp, p[0].tp, p[0].pp, p[0].M, p[0].step_s * 1e3);
}

/* One JSON object per line (JSON Lines), best layout first. */
static int print_json(const Prediction *p, int n)
{
    JsonOut j;
    json_init(&j, stdout);
    for (int i = 0; i < n; i++) {
        json_begin_object(&j);
        json_int(json_key(&j, "dp"), p[i].dp);
        json_int(json_key(&j, "tp"), p[i].tp);
        json_int(json_key(&j, "pp"), p[i].pp);
        json_int(json_key(&j, "micro_batches"), p[i].M);
        json_fixed(json_key(&j, "step_ms"), p[i].step_s * 1e3, 3);
        json_fixed(json_key(&j, "compute_ms"), p[i].compute_s * 1e3, 3);
        json_fixed(json_key(&j, "tp_comm_ms"), p[i].tp_comm_s * 1e3, 3);
        json_fixed(json_key(&j, "pp_comm_ms"), p[i].pp_comm_s * 1e3, 3);
        json_fixed(json_key(&j, "dp_exposed_ms"), p[i].dp_exposed_s * 1e3, 3);
        json_fixed(json_key(&j, "bubble"), p[i].bubble, 4);
        json_fixed(json_key(&j, "bytes_per_step"), p[i].bytes, 0);
        json_uint(json_key(&j, "mem_per_rank"), p[i].mem);
        json_bool(json_key(&j, "chosen"), i == 0);
        json_end_object(&j);
        json_newline(&j);
    }
    int rc = json_finish(&j);
    if (rc) fprintf(stderr, "mpitrain plan: writing JSON: %s\n", j.error);
    json_free(&j);
    return rc;
}

int cmd_plan(int argc, char **argv)
{
    PlanArgs a;
    memset(&a, 0, sizeof a);
    train_config_defaults(&a.t);
    a.t.micro_batches = 0; /* search */
    OptSpec *table = plan_table();
    if (!table) return 1;
    int help = 0;
    int rc = opts_parse("plan", table, &a, argc, argv, 1, NULL, 0, NULL, &help);
    if (rc || help) {
        if (help)
            opts_print_help(stdout, "mpitrain plan [--ranks N] [model and batch options]",
                            "Prints every valid dp x tp x pp layout of N ranks with its predicted "
                            "step time, memory per rank,\npipeline bubble and bytes per step, "
                            "best first. Under mpirun it measures the link between ranks.",
                            table);
        free(table);
        return rc;
    }
    free(table);
    train_config_finish(&a.t);
    snprintf(a.t.data, sizeof a.t.data, "-");
    snprintf(a.t.out, sizeof a.t.out, "-");
    CommWorld w;
    comm_init(&argc, &argv, &w);
    Machine mc;
    int ranks = a.ranks ? a.ranks : (w.size > 1 ? w.size : 8);
    planner_default_machine(&mc, ranks);
    mc.cores = a.cores ? a.cores : w.cores * (w.size > 1 ? w.size / w.local_size : 1);
    mc.ranks_per_node = ranks;
    double alpha, beta;
    if (comm_measure_link(group_world(), &alpha, &beta)) {
        mc.alpha_s = alpha;
        mc.beta_Bps = beta;
    }
    if (a.link_gbps > 0) mc.beta_Bps = a.link_gbps * 1e9;
    if (a.link_latency_us > 0) mc.alpha_s = a.link_latency_us * 1e-6;
    /* one rank measures while the others wait, so ranks sharing cores do
     * not slow each other's measurement */
    double g = a.gemm_gflops;
    if (!(g > 0) && w.rank == 0) g = planner_measure_gemm(&a.t.model, a.t.global_batch * a.t.model.seq_len / ranks);
    coll_bcast(group_world(), &g, sizeof g, 0);
    mc.gemm_gflops = g;
    if (w.rank == 0) {
        Prediction p[256];
        int n = planner_search(&a.t, ranks, &mc, 0, p, 256);
        if (!n) fprintf(stderr, "mpitrain plan: no valid layout of %d ranks for this model and batch\n", ranks);
        int out_rc = 0;
        if (a.json) out_rc = print_json(p, n);
        else print_table(p, n, ranks, &mc);
        rc = n && !out_rc ? 0 : 1;
    }
    comm_finalize();
    return rc;
}
