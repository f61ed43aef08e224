#include "coordinator/plan/distribute.h"

#include <stdio.h>
#include <stdlib.h>
#include "base/sysinfo.h"
#include "coordinator/plan/planner.h"
#include "worker/method/methods.h"

static size_t available_bytes_per_rank(const CommWorld *w)
{
    /* MemAvailable (page cache counts as usable), within the cgroup's limit */
    return sys_available_bytes() / (size_t)(w->local_size > 0 ? w->local_size : 1);
}

/* Rank 0's setup note: the prediction for the run's own mode, at which link. */
static void announce_prediction(const Prediction *p, const Machine *mc, int probed)
{
    char bw[32];
    char k[32] = "";
    if (p->mode != MODE_DP) snprintf(k, sizeof k, " %s=%d", p->mode == MODE_ZO ? "K" : "H", p->k);
    printf("mpitrain: planner: %s%s predicted %.1f ms/step (%.1f ms exposed comm, %.0f B/step/rank, "
           "%.0f tok/s) at %s link %.0f us, %s\n",
           planner_mode_name(p->mode), k, p->step_s * 1e3, p->comm_s * 1e3, p->bytes,
           p->tokens_per_s, probed ? "measured" : "default", mc->alpha_s * 1e6,
           planner_format_bps(mc->beta_Bps, bw, sizeof bw));
    fflush(stdout);
}

/* Rank 0's setup note when the ranks' threads oversubscribe their cores. */
static void announce_cores(const TrainConfig *cfg, const CommWorld *w)
{
    int threads = cfg->threads > 0 ? cfg->threads : comm_default_threads(w);
    int ranks = w->machine_ranks > 0 ? w->machine_ranks : w->local_size;
    char buf[256];
    double f = planner_describe_cores(ranks, threads, w->machine_cores, w->machine_hosts,
                                      w->first_host, w->last_host, buf, sizeof buf);
    if (f > 1 && !cfg->quiet) {
        printf("mpitrain: planner: %s\n", buf);
        fflush(stdout);
    }
}

/* The machine the planner models: the ranks sharing this kernel and the
 * cores they may use; the link measured, else a network's defaults when
 * the job spans hosts, else shared memory's. */
static void machine_of_world(Machine *mc, const CommWorld *w)
{
    planner_default_machine(mc, w->machine_ranks > 0 ? w->machine_ranks : w->local_size);
    mc->cores = w->machine_cores > 0 ? w->machine_cores : w->cores;
    if (w->local_size < w->size) planner_network_link(mc);
}

/* No --dp/--tp/--pp: the planner's best layout for this job. */
static void choose_layout(TrainConfig *cfg, const CommWorld *w, const Machine *mc, int probed)
{
    int auto_layout = !cfg->dp && !cfg->tp && !cfg->pp;
    Prediction p[256];
    if (auto_layout && w->size > 1) {
        int n = planner_search(cfg, w->size, mc, available_bytes_per_rank(w), p, 256);
        if (n) {
            cfg->dp = p[0].dp;
            cfg->tp = p[0].tp;
            cfg->pp = p[0].pp;
        }
    }
    /* the prediction of the run's own mode: a zo step, a DiLoCo inner step
     * with its share of the outer all-reduce, or a DP backprop step */
    TrainConfig c = *cfg;
    Err ignore;
    if (plan_resolve(&c, w->size, 0, &ignore)) return;
    planner_predict(&c, mc, &p[0]);
    cfg->predicted_step_ms = p[0].step_s * 1e3;
    if (!cfg->quiet) announce_prediction(&p[0], mc, probed);
}

/* The link is probed only for a prediction: the planner's choice of layout,
 * or the predicted step time of a method with gradients (backprop, DiLoCo);
 * --link-probe off never. The decision uses the flags every rank parsed
 * alike (the plan has not resolved the method yet), so all take part or
 * none. */
static int link_probe_needed(const TrainConfig *cfg)
{
    int auto_layout = !cfg->dp && !cfg->tp && !cfg->pp;
    return cfg->link_probe == 0 && (auto_layout || !method_of(cfg)->forward_only);
}

int plan_distribute(Group *world, TrainConfig *cfg, const CommWorld *w, Err *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Err mine = {{0}};
    int rc = 0;
    Machine mc;
    machine_of_world(&mc, w);
    int probed = link_probe_needed(cfg) && comm_measure_link(world, &mc.alpha_s, &mc.beta_Bps);
    if (w->rank == 0) {
        rc = plan_apply_resume(cfg, &mine);
        if (!rc) rc = plan_apply_init_from(cfg, &mine);
        if (!rc) {
            mc.gemm_gflops = planner_measure_gemm(&cfg->model, cfg->global_batch * cfg->model.seq_len / w->size);
            if (!cfg->quiet) announce_cores(cfg, w);
            choose_layout(cfg, w, &mc, probed);
        }
        if (!rc) rc = plan_resolve(cfg, w->size, available_bytes_per_rank(w), &mine);
        if (!rc) rc = plan_encode(cfg, w->size, &buf, &len, &mine);
    }
    if (comm_agree(world, rc, &mine, e)) {
        free(buf);
        /* only rank 0 can have failed so far: it tells the others which
         * kind of failure it was, so every rank returns the same verdict */
        int32_t verdict = w->rank == 0 ? rc : 0;
        coll_bcast(world, &verdict, sizeof verdict, 0);
        return verdict == PLAN_ERR_RESUME || verdict == PLAN_COMPLETE ? verdict : -1;
    }
    uint64_t header[2] = {len, buf ? plan_hash(buf, len) : 0};
    coll_bcast(world, header, sizeof header, 0);
    if (header[0] > PLAN_MAX_BYTES) rc = err_set(&mine, "plan of %llu bytes is too large",
                                                 (unsigned long long)header[0]);
    if (!rc && w->rank != 0 && !(buf = malloc(header[0] ? header[0] : 1)))
        rc = err_set(&mine, "out of memory for the plan");
    if (comm_agree(world, rc, &mine, e)) {
        free(buf);
        return -1;
    }
    coll_bcast(world, buf, header[0], 0);
    rc = plan_decode(buf, header[0], header[1], w->size, cfg, &mine);
    free(buf);
    /* everyone must hold the very same plan */
    int64_t hmin = (int64_t)header[1], hmax = (int64_t)header[1];
    coll_allreduce_min_i64(world, &hmin, 1);
    coll_allreduce_max_i64(world, &hmax, 1);
    if (!rc && hmin != hmax) rc = err_set(&mine, "ranks hold different plans (hash differs)");
    return comm_agree(world, rc, &mine, e) ? -1 : 0;
}
