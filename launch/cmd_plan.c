#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "comm/mpi/comm.h"
#include "coordinator/plan/calibrate.h"
#include "coordinator/plan/planner.h"
#include "launch/commands.h"
#include "base/json.h"
#include "base/options.h"

typedef struct {
    TrainConfig t; /* first: the train options' offsets apply unchanged */
    int ranks, cores, json;
    float link_gbps, link_latency_us, gemm_gflops;
    char link[64];
    char calibration[4096];
    float target_accuracy, target_loss;
} PlanArgs;

#define P(f) offsetof(PlanArgs, f)
#define PLAN_MAX_CALIBRATIONS 16
static const OptSpec PLAN_ONLY[] = {
    {"ranks", OT_INT, P(ranks), 0, "N", "ranks to plan for (default: this job's size, else 8)", NULL, 1, 1 << 20, NULL},
    {"cores", OT_INT, P(cores), 0, "K", "cores per node (default: this machine's)", NULL, 1, 1 << 16, NULL},
    {"link-gbps", OT_FLOAT, P(link_gbps), 0, "X", "link bandwidth, GB/s (bytes; --link says it in any unit)", NULL, 1e-6, 1e6, NULL},
    {"link-latency-us", OT_FLOAT, P(link_latency_us), 0, "X", "link latency, microseconds (default: measured, else 5)", NULL, 0, 1e7, NULL},
    {"gemm-gflops", OT_FLOAT, P(gemm_gflops), 0, "X", "one thread's sgemm rate (default: measured now)", NULL, 1e-3, 1e6, NULL},
    {"link", OT_STR, P(link), sizeof(((PlanArgs *)0)->link), "BW[,LAT]", "plan at a stated link instead of measuring one, e.g. 100mbit, 1gbit,200us, 50MB/s (latency default 100us)", NULL, 1, 0, NULL},
    {"json", OT_FLAG, P(json), 0, NULL, "one JSON object per layout instead of a table", NULL, 1, 0, NULL},
    {"calibration", OT_STR, P(calibration), sizeof(((PlanArgs *)0)->calibration), "RUN,...", "short training runs of the task, one per mode, from the same start: rank their modes by predicted time to --target-accuracy or --target-loss at this machine and link (docs/planner.md)", NULL, 1, 0, NULL},
    {"target-accuracy", OT_FLOAT, P(target_accuracy), 0, "A", "with --calibration: the task accuracy to reach (the runs' --eval-task rows)", NULL, 1e-6, 1, NULL},
    {"target-loss", OT_FLOAT, P(target_loss), 0, "L", "with --calibration: the validation loss to reach (the runs' val_loss rows)", NULL, 1e-6, 1e6, NULL},
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

/* The train settings a plan depends on, besides the model's: --help lists
 * these with plan's own. Every train flag is still accepted (and the rest
 * ignored), so a train command line can be planned as it is. */
static const char *const PLAN_USES[] = {
    "config", "batch", "optimizer", "zo-samples", "diloco", "diloco-overlap", "dp", "tp", "pp", "zero",
    "micro-batches", "pp-schedule", "overlap", "threads", "link-probe", NULL,
};

static int plan_uses(const OptSpec *s, size_t i, size_t n_train)
{
    if (i >= n_train || train_config_is_model_setting(s)) return 1;
    for (const char *const *u = PLAN_USES; *u; u++)
        if (!strcmp(*u, s->name)) return 1;
    return 0;
}

static void plan_usage(const OptSpec *table)
{
    size_t n_train, k = 0;
    train_config_table(&n_train);
    OptSpec shown[TRAIN_CONFIG_MAX_ENTRIES + sizeof PLAN_ONLY / sizeof PLAN_ONLY[0] + 1];
    for (size_t i = 0; table[i].name && k + 1 < sizeof shown / sizeof shown[0]; i++)
        if (plan_uses(&table[i], i, n_train)) shown[k++] = table[i];
    memset(&shown[k], 0, sizeof shown[k]);
    opts_print_help(stdout, "mpitrain plan [--ranks N] [model and batch options]",
                    "Prints every valid dp x tp x pp layout of N ranks with its predicted "
                    "step time, memory per rank,\npipeline bubble and bytes per step, "
                    "best first. Under mpirun it measures the link between ranks.\n"
                    "It takes a train command line as it is: the train flags it does not "
                    "list here are accepted and ignored.\nWith --calibration (short runs of "
                    "a task, one per mode) it also ranks those modes by predicted time to a "
                    "target accuracy or loss.",
                    shown);
}

static void print_table(const Prediction *p, int n, int ranks, const Machine *mc)
{
    printf("layouts of %d ranks (sgemm %.1f GFLOP/s per thread)\n\n", ranks, mc->gemm_gflops);
    printf("   dp x tp x pp   M   step ms  compute  tp comm  pp comm  dp exposed  bubble  MB/step/rank  mem/rank MB\n");
    for (int i = 0; i < n; i++)
        printf("%s %3d x %2d x %2d  %2d  %8.1f %8.1f %8.1f %8.1f %11.1f  %5.1f%%  %12.2f %12.1f\n",
               i == 0 ? "*" : " ", p[i].dp, p[i].tp, p[i].pp, p[i].M, p[i].step_s * 1e3,
               p[i].compute_s * 1e3, p[i].tp_comm_s * 1e3, p[i].pp_comm_s * 1e3,
               p[i].dp_exposed_s * 1e3, p[i].bubble * 100, p[i].bytes / 1e6, p[i].mem / 1e6);
    if (n) printf("\nchosen: --dp %d --tp %d --pp %d --micro-batches %d (predicted %.1f ms/step)\n",
                  p[0].dp, p[0].tp, p[0].pp, p[0].M, p[0].step_s * 1e3);
}

/* The modes side by side at the same machine and link, ranked by what a
 * step teaches (planner_step_worth): '*' marks the first, '<' the
 * configured run's. */
static void print_modes(const Prediction *p, int n, int own)
{
    printf("\nmodes at this link (each at its best layout), ranked by DP-equivalent tokens/s:\n\n");
    printf("   mode          dp x tp x pp   ms/step  exposed comm ms  bytes/step/rank       tokens/s"
           "  step worth  DP-equiv tok/s\n");
    for (int i = 0; i < n; i++) {
        char name[32];
        if (p[i].mode == MODE_DP) snprintf(name, sizeof name, "DP");
        else snprintf(name, sizeof name, "%s %s=%d", planner_mode_name(p[i].mode), p[i].mode == MODE_ZO ? "K" : "H", p[i].k);
        printf("%c%c %-12s %3d x %2d x %2d  %8.1f  %15.2f  %15.0f  %13.0f  %10.3f  %14.0f\n",
               i == 0 ? '*' : ' ', i == own ? '<' : ' ', name, p[i].dp, p[i].tp, p[i].pp,
               p[i].step_s * 1e3, p[i].comm_s * 1e3, p[i].bytes, p[i].tokens_per_s, p[i].worth,
               p[i].dp_equiv_tokens_per_s);
    }
    printf("\n* recommended: most DP-equivalent tokens/s, i.e. tokens/s x step worth, the part of a\n"
           "  backprop step one step of the mode teaches (ZO K samples: K/60; DiLoCo: 1/3, 1/6 past\n"
           "  H=50), from this project's time-to-quality runs (docs/planner.md); bytes matter too\n"
           "  on a slow link\n");
    if (own >= 0) printf("< this config's mode\n");
}

/* A calibration run's mode as the modes table names it, with LoRA's rank. */
static void mode_label(const Prediction *p, const TrainConfig *c, char *out, size_t n)
{
    char lora[24] = "";
    if (c->model.lora_rank) snprintf(lora, sizeof lora, " LoRA r%d", c->model.lora_rank);
    if (p->mode == MODE_DP) snprintf(out, n, "DP%s", lora);
    else snprintf(out, n, "%s %s=%d%s", planner_mode_name(p->mode), p->mode == MODE_ZO ? "K" : "H", p->k, lora);
}

typedef struct {
    const Calibration *cal;
    Prediction p;
    double steps, seconds; /* to the target; < 0: not reached */
    int measured;
} TimedMode;

static int cmp_time(const void *a, const void *b)
{
    const TimedMode *x = a, *y = b;
    if ((x->seconds < 0) != (y->seconds < 0)) return x->seconds < 0 ? 1 : -1;
    return x->seconds < y->seconds ? -1 : x->seconds > y->seconds;
}

/* Each calibration run's mode at this machine and link: its best layout's
 * step time times its steps to the target. */
/* The target as the user typed it: the option is a float, and 0.3f is
 * 0.30000001, which an accuracy of exactly 0.3 (36 of 120) would miss. */
static double as_typed(float f)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}

static int time_modes(const PlanArgs *a, const Calibration *cals, int n, int ranks, const Machine *mc,
                      TimedMode *out)
{
    CalMetric metric = a->target_loss > 0 ? METRIC_LOSS : METRIC_ACCURACY;
    double target = as_typed(metric == METRIC_LOSS ? a->target_loss : a->target_accuracy);
    for (int i = 0; i < n; i++) {
        TimedMode *t = &out[i];
        t->cal = &cals[i];
        if (!planner_best_layout(&cals[i].cfg, ranks, mc, &t->p)) {
            fprintf(stderr, "mpitrain plan: --calibration %s: no valid layout of %d ranks for its "
                            "settings\n", cals[i].dir, ranks);
            return -1;
        }
        t->steps = calibration_steps_to(&cals[i], metric, target, &t->measured);
        t->seconds = t->steps >= 0 ? t->steps * t->p.step_s : -1;
    }
    qsort(out, n, sizeof *out, cmp_time);
    return 0;
}

static void print_timed(const PlanArgs *a, const TimedMode *t, int n)
{
    int loss = a->target_loss > 0;
    printf("\nmodes by predicted time to %s %g (steps from --calibration, time at this link):\n\n",
           loss ? "validation loss" : "task accuracy", loss ? a->target_loss : a->target_accuracy);
    printf("   run              mode               dp x tp x pp   ms/step  per 1k steps  steps to target"
           "   predicted time\n");
    for (int i = 0; i < n; i++) {
        char mode[48], steps[48], when[32];
        mode_label(&t[i].p, &t[i].cal->cfg, mode, sizeof mode);
        if (t[i].steps < 0) snprintf(steps, sizeof steps, "never (no gain)");
        else snprintf(steps, sizeof steps, "%.0f %s", t[i].steps, t[i].measured ? "measured" : "by the line");
        if (t[i].seconds < 0) snprintf(when, sizeof when, "-");
        else snprintf(when, sizeof when, "%.1f s", t[i].seconds);
        printf("%c  %-16s %-18s %3d x %2d x %2d  %8.1f  %+12.4f  %-17s %14s\n", i == 0 && t[i].seconds >= 0 ? '*' : ' ',
               t[i].cal->name, mode, t[i].p.dp, t[i].p.tp, t[i].p.pp, t[i].p.step_s * 1e3,
               t[i].cal->slope * 1e3, steps, when);
    }
    printf("\n* fastest to the target. per 1k steps: the calibration's least-squares slope; steps:\n"
           "  the first evaluation at the target (measured) or where that line reaches it\n");
}

static void json_timed(JsonOut *j, const TimedMode *t, int n)
{
    for (int i = 0; i < n; i++) {
        char mode[48];
        mode_label(&t[i].p, &t[i].cal->cfg, mode, sizeof mode);
        json_begin_object(j);
        json_str(json_key(j, "calibration"), t[i].cal->dir);
        json_str(json_key(j, "mode"), mode);
        json_int(json_key(j, "dp"), t[i].p.dp);
        json_int(json_key(j, "tp"), t[i].p.tp);
        json_int(json_key(j, "pp"), t[i].p.pp);
        json_fixed(json_key(j, "step_ms"), t[i].p.step_s * 1e3, 3);
        json_sig(json_key(j, "slope_per_step"), t[i].cal->slope, 6);
        if (t[i].steps < 0) json_null(json_key(j, "steps_to_target"));
        else json_fixed(json_key(j, "steps_to_target"), t[i].steps, 1);
        json_bool(json_key(j, "measured"), t[i].measured);
        if (t[i].seconds < 0) json_null(json_key(j, "seconds_to_target"));
        else json_fixed(json_key(j, "seconds_to_target"), t[i].seconds, 3);
        json_bool(json_key(j, "fastest"), i == 0 && t[i].seconds >= 0);
        json_end_object(j);
        json_newline(j);
    }
}

/* One JSON object per line (JSON Lines), best layout first; then the
 * calibration's modes, fastest to the target first. */
static int print_json(const Prediction *p, int n, const TimedMode *t, int n_timed)
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
        json_fixed(json_key(&j, "fixed_ms"), p[i].fixed_s * 1e3, 3);
        json_fixed(json_key(&j, "bubble"), p[i].bubble, 4);
        json_fixed(json_key(&j, "bytes_per_step"), p[i].bytes, 0);
        json_uint(json_key(&j, "mem_per_rank"), p[i].mem);
        json_str(json_key(&j, "mode"), planner_mode_name(p[i].mode));
        json_fixed(json_key(&j, "comm_ms"), p[i].comm_s * 1e3, 3);
        json_fixed(json_key(&j, "tokens_per_s"), p[i].tokens_per_s, 1);
        json_bool(json_key(&j, "chosen"), i == 0);
        json_end_object(&j);
        json_newline(&j);
    }
    json_timed(&j, t, n_timed);
    int rc = json_finish(&j);
    if (rc) fprintf(stderr, "mpitrain plan: writing JSON: %s\n", j.error);
    json_free(&j);
    return rc;
}

/* The machine to plan for: ranks sharing a kernel and their cores (from
 * this job, or --ranks on this machine, or --cores), and the link: stated
 * (--link, --link-gbps), measured under mpirun unless --link-probe off, or
 * the defaults. Returns where the link came from; NULL for a bad --link
 * (every rank parses the same flags, so all return alike). */
static const char *plan_machine(const PlanArgs *a, const CommWorld *w, int ranks, Machine *mc)
{
    int job = w->size > 1;
    planner_default_machine(mc, job ? w->machine_ranks : ranks);
    mc->cores = a->cores ? a->cores : job ? w->machine_cores : w->cores;
    const char *from = "default (shared memory)";
    if (job && w->local_size < w->size) {
        planner_network_link(mc);
        from = "default (TCP between hosts)";
    }
    int stated = a->link[0] || a->link_gbps > 0 || a->link_latency_us > 0;
    double alpha, beta;
    if (job && !stated && a->t.link_probe == 0 && comm_measure_link(group_world(), &alpha, &beta)) {
        mc->alpha_s = alpha;
        mc->beta_Bps = beta;
        from = "measured between ranks 0 and 1";
    }
    if (a->link[0]) {
        Err e;
        mc->alpha_s = 100e-6;
        if (planner_parse_link("--link", a->link, &mc->beta_Bps, &mc->alpha_s, &e)) {
            if (w->rank == 0) fprintf(stderr, "mpitrain plan: %s\n", e.msg);
            return NULL;
        }
    }
    if (a->link_gbps > 0) mc->beta_Bps = a->link_gbps * 1e9;
    if (a->link_latency_us > 0) mc->alpha_s = a->link_latency_us * 1e-6;
    return stated ? "stated" : from;
}

/* --calibration's runs, read: how many (0 without the flag), -1 after
 * saying what is wrong with one. */
static int load_calibrations(const PlanArgs *a, Calibration **out)
{
    *out = NULL;
    if (!a->calibration[0]) return 0;
    Calibration *c = calloc(PLAN_MAX_CALIBRATIONS, sizeof *c);
    if (!c) return -1;
    CalMetric metric = a->target_loss > 0 ? METRIC_LOSS : METRIC_ACCURACY;
    char list[sizeof a->calibration];
    snprintf(list, sizeof list, "%s", a->calibration);
    int n = 0;
    for (char *save = NULL, *dir = strtok_r(list, ",", &save); dir; dir = strtok_r(NULL, ",", &save)) {
        Err e;
        if (n == PLAN_MAX_CALIBRATIONS) {
            fprintf(stderr, "mpitrain plan: --calibration: at most %d runs\n", PLAN_MAX_CALIBRATIONS);
            free(c);
            return -1;
        }
        if (calibration_load(dir, metric, &c[n], &e)) {
            fprintf(stderr, "mpitrain plan: %s\n", e.msg);
            free(c);
            return -1;
        }
        n++;
    }
    *out = c;
    return n;
}

/* Rank 0's printout: machine, link, the layouts and the modes. */
static int report(const PlanArgs *a, const CommWorld *w, int ranks, const Machine *mc, const char *link_from)
{
    char bw[32], cores[256];
    int job = w->size > 1, share = mc->cores / mc->ranks_per_node;
    /* --threads 0: what a training run's ranks would take */
    int threads = a->t.threads > 0 ? a->t.threads : job ? comm_default_threads(w) : share > 1 ? share : 1;
    planner_describe_cores(mc->ranks_per_node, threads, mc->cores, job ? w->machine_hosts : 1,
                           w->first_host, w->last_host, cores, sizeof cores);
    if (!a->json) {
        printf("machine: %s%s\n", cores, job && w->machines > 1 ? " (this rank's machine)" : "");
        printf("link: %.0f us, %s (%s)\n", mc->alpha_s * 1e6, planner_format_bps(mc->beta_Bps, bw, sizeof bw), link_from);
    }
    Prediction *p = malloc(256 * sizeof *p), modes[8];
    Calibration *cals = NULL;
    TimedMode timed[PLAN_MAX_CALIBRATIONS];
    int n_cal = load_calibrations(a, &cals);
    if (!p || n_cal < 0 || (n_cal && time_modes(a, cals, n_cal, ranks, mc, timed))) {
        free(p);
        free(cals);
        return n_cal < 0 ? EXIT_USAGE : 1;
    }
    int n = planner_search(&a->t, ranks, mc, 0, p, 256), own = -1;
    if (!n) fprintf(stderr, "mpitrain plan: no valid layout of %d ranks for this model and batch\n", ranks);
    int m = planner_compare_modes(&a->t, ranks, mc, modes, 8, &own);
    int out_rc = 0;
    if (a->json) out_rc = print_json(p, n, timed, n_cal);
    else {
        print_table(p, n, ranks, mc);
        print_modes(modes, m, own);
        if (n_cal) print_timed(a, timed, n_cal);
    }
    free(p);
    free(cals);
    return n && !out_rc ? 0 : 1;
}

/* --calibration goes with exactly one target, and a target with it. */
static int check_calibration_flags(const PlanArgs *a)
{
    int targets = (a->target_accuracy > 0) + (a->target_loss > 0);
    const char *why = NULL;
    if (a->calibration[0] && targets == 0)
        why = "--calibration needs a target: --target-accuracy A (the runs' task accuracy) or --target-loss L";
    else if (targets == 2) why = "--target-accuracy and --target-loss: give one";
    else if (!a->calibration[0] && targets)
        why = "--target-accuracy/--target-loss rank calibrated modes: give --calibration RUN,... (short runs of the task, one per mode)";
    if (why && opts_launcher_rank() <= 0) fprintf(stderr, "mpitrain plan: %s\n", why);
    return why != NULL;
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
        if (help) plan_usage(table);
        free(table);
        return rc;
    }
    free(table);
    if (check_calibration_flags(&a)) return EXIT_USAGE;
    train_config_finish(&a.t);
    snprintf(a.t.data, sizeof a.t.data, "-");
    snprintf(a.t.out, sizeof a.t.out, "-");
    CommWorld w;
    comm_init(&argc, &argv, &w);
    Machine mc;
    int ranks = a.ranks ? a.ranks : (w.size > 1 ? w.size : 8);
    const char *link_from = plan_machine(&a, &w, ranks, &mc);
    if (!link_from) {
        comm_finalize();
        return 2;
    }
    /* one rank measures while the others wait, so ranks sharing cores do
     * not slow each other's measurement */
    double g = a.gemm_gflops;
    if (!(g > 0) && w.rank == 0) g = planner_measure_gemm(&a.t.model, a.t.global_batch * a.t.model.seq_len / ranks);
    coll_bcast(group_world(), &g, sizeof g, 0);
    mc.gemm_gflops = g;
    if (w.rank == 0) rc = report(&a, &w, ranks, &mc, link_from);
    comm_finalize();
    return rc;
}
