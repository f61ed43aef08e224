/* Elastic DiLoCo's step strategy (--diloco H with --swarm-listen or
 * --swarm-join): backprop inner steps on this machine's own data
 * (worker/method/backprop/), and at every H-th step an outer round among
 * the machines present (elastic.c), then the outer Nesterov step
 * (worker/method/diloco/diloco.h) with the round's mean. docs/elastic.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "base/quant.h"
#include "base/json.h"
#include "comm/trace/trace.h"
#include "base/fileio.h"
#include "worker/method/backprop/backprop.h"
#include "worker/method/diloco/diloco.h"
#include "worker/method/elastic/elastic.h"
#include "worker/method/elastic/elastic_step.h"
#include "worker/method/swarm/swarm_config.h"

/* Machines reading one file take it from different places (as the swarm's). */
#define ELASTIC_DATA_STRIDE 7919

typedef struct {
    Backprop inner;     /* first: backprop_compute and _apply take the whole */
    Elastic *el;
    float *global, *mom, *delta;
    uint32_t round;     /* the round this machine is in */
    long period;        /* inner steps per round: H / --diloco-fragments */
    uint32_t fragments;
    long round_start;   /* its first step */
    /* inner steps computed since each fragment last took the run's weights:
     * its weight in that fragment's round */
    uint32_t *frag_steps;
    uint32_t sent_steps; /* the round in flight's weight: frag_steps when it began */
    int skipping;       /* the round was decided without this machine: skip to its end */
    int computed;       /* this step was computed (not skipped) */
    int ended;          /* dropped, it learnt the run ended without it */
    long applied, end_step;
    FILE *log;          /* OUT/elastic/rounds.jsonl */
} ElasticRun;

static void notes(Trainer *t, ElasticRun *s)
{
    for (const char *ev; (ev = elastic_next_event(s->el));) trainer_note(t, "elastic: %s", ev);
}

static int load_if_present(Trainer *t, const char *kind, float *dst, Err *e)
{
    const Mpitrain__Manifest *mf = t->resume_mf;
    if (!mf || !dst || !ckpt_has_kind(mf, kind)) return 0;
    return ckpt_load_kind(t->cfg->resume, mf, &t->model, kind, dst, 0, t->model.n_params, e) ? -1 : 1;
}

/* A resumed keeper continues its outer state; a fresh run starts it at the
 * weights, momentum 0 (a joiner's comes from the run). */
static int resume_outer(Trainer *t, ElasticRun *s, Err *e)
{
    int rc = load_if_present(t, "outer_g", s->global, e);
    if (rc < 0) return -1;
    if (!rc) memcpy(s->global, t->model.params, t->model.n_params * sizeof(float));
    if (load_if_present(t, "outer_mom", s->mom, e) < 0 ||
        load_if_present(t, "outer_err", elastic_send_err(s->el), e) < 0 ||
        load_if_present(t, "outer_serr", elastic_sum_err(s->el), e) < 0)
        return -1;
    return 0;
}

static int open_log(Trainer *t, ElasticRun *s, Err *e)
{
    char path[PATH_BUF + 32];
    snprintf(path, sizeof path, "%s/elastic/rounds.jsonl", t->cfg->out);
    if (mkdir_parent(path, e)) return -1;
    s->log = fopen(path, t->start_step ? "a" : "w");
    return s->log ? 0 : err_set(e, "%s: cannot open for writing", path);
}

/* A resumed machine's weights per fragment: the steps since the fragment's
 * last round before step (each fragment every `fragments` rounds). */
static void steps_since_sync(ElasticRun *s, long step)
{
    long k = step / s->period; /* the round step is in */
    for (uint32_t f = 0; f < s->fragments; f++) {
        long last = k - 1 - ((k - 1 - (long)f) % (long)s->fragments + (long)s->fragments) %
                                (long)s->fragments; /* the last round < k of fragment f */
        s->frag_steps[f] = (uint32_t)(last < 0 ? step : step - (last + 1) * s->period);
    }
}

static int open_elastic(Trainer *t, ElasticRun *s, Err *e)
{
    const TrainConfig *c = t->cfg;
    if (t->w->size > 1)
        return err_set(e, "--swarm-%s with --diloco: an elastic machine is one process for now "
                          "(this one has %d ranks)", c->swarm_join[0] ? "join" : "listen",
                       t->w->size);
    char text[4096];
    if (swarm_config_text(c, 0.0f, text, sizeof text, e)) return -1;
    size_t n = t->model.n_params;
    ElasticOptions o = {
        .provider = c->swarm_provider ? "shm" : "tcp",
        .listen = c->swarm_listen,
        .join = c->swarm_join,
        .deadline_s = c->swarm_deadline,
        .misses = c->swarm_misses,
        .wait_for = c->swarm_wait,
        .config_text = text,
        .wire = (WireFormat)c->diloco_wire,
        .n = n,
        .stop = t->stop,
    };
    o.ident.seed = c->seed;
    o.ident.global_params = n;
    o.fragments = s->fragments;
    o.ident.base_id = fnv1a64(FNV1A64_INIT, t->model.base.params,
                              t->model.base.n_params * sizeof(float));
    const char *hold = getenv("MPITRAIN_TEST_SWARM_HOLD");
    if (hold && sscanf(hold, "%u,%d", &o.hold_round, &o.hold_for) != 2) o.hold_for = 0;
    const char *die = getenv("MPITRAIN_TEST_ELASTIC_DIE"); /* mid-exchange, as a keeper */
    if (die) o.die_round = (uint32_t)strtoul(die, NULL, 10);
    uint32_t round = (uint32_t)(t->start_step / s->period);
    if (!c->swarm_join[0]) memcpy(s->global, t->model.params, n * sizeof(float));
    int rc = elastic_open(&s->el, &o, s->global, s->mom, &round, e);
    if (!rc && !c->swarm_join[0]) rc = resume_outer(t, s, e);
    if (rc) return -1;
    s->round = round;
    s->round_start = (long)round * s->period;
    if (!c->swarm_join[0]) steps_since_sync(s, t->start_step);
    /* a joiner trains from the run's weights */
    memcpy(t->model.params, s->global, n * sizeof(float));
    notes(t, s);
    return 0;
}

/* The model's backward hook with --diloco-overlap 1: the round in flight
 * moves on while the inner step computes. */
static void progress_hook(void *ctx, int block)
{
    (void)block;
    elastic_progress(((ElasticRun *)ctx)->el);
}

static int el_setup(Trainer *t, void **state, Err *e)
{
    const TrainConfig *c = t->cfg;
    ElasticRun *s = calloc(1, sizeof *s);
    *state = s;
    if (!s) return err_set(e, "out of memory");
    size_t n = t->model.n_params ? t->model.n_params : 1;
    s->global = malloc(n * sizeof(float));
    s->mom = calloc(n, sizeof(float));
    s->delta = malloc(n * sizeof(float));
    s->fragments = (uint32_t)(c->diloco_fragments > 1 ? c->diloco_fragments : 1);
    s->period = c->diloco / (long)s->fragments;
    s->frag_steps = calloc(s->fragments, sizeof *s->frag_steps);
    if (!s->global || !s->mom || !s->delta || !s->frag_steps)
        return err_set(e, "out of memory for the outer state");
    if (t->model.n_params < (size_t)s->fragments * QUANT_BLOCK)
        return err_set(e, "--diloco-fragments %u: this model's %zu weights make fragments under "
                          "one block of %d values; use fewer", s->fragments, t->model.n_params,
                       QUANT_BLOCK);
    backprop_init_replica(&s->inner, t);
    s->end_step = c->steps;
    if (open_log(t, s, e) || open_elastic(t, s, e)) return -1;
    if (c->diloco_overlap && !t->model.on_block_grads) {
        t->model.on_block_grads = progress_hook;
        t->model.hook_ctx = s;
    }
    trainer_note(t, "elastic DiLoCo: machine %u, an outer round every %ld inner steps%s%s (outer "
                    "lr %g, Nesterov momentum %g, %s on the wire), from round %u",
                 elastic_slot(s->el), s->period,
                 s->fragments > 1 ? ", each for a fragment of the weights" : "",
                 c->diloco_overlap ? ", each exchange behind the next round" : "", c->outer_lr,
                 c->outer_momentum, wire_name(c->diloco_wire), s->round + 1);
    if (s->fragments > 1)
        trainer_note(t, "elastic DiLoCo: %u fragments of about %.2f M values, each synchronised "
                        "every %d inner steps", s->fragments,
                     (double)t->model.n_params / s->fragments / 1e6, c->diloco);
    return 0;
}

/* Steps before this machine's first round (a joiner), and the rest of a
 * round decided without it, are skipped: the others' mean replaces them. */
/* Back in the run after a drop: its weights and round, this machine's
 * work since the last round it shared given up. */
static void rejoined(Trainer *t, ElasticRun *s)
{
    s->round = elastic_round(s->el);
    s->round_start = (long)s->round * s->period;
    memset(s->frag_steps, 0, s->fragments * sizeof *s->frag_steps);
    s->skipping = 0;
    memcpy(t->model.params, s->global, t->model.n_params * sizeof(float));
    trainer_note(t, "elastic: back in the run at round %u (step %ld)", s->round + 1,
                 s->round_start + 1);
}

/* The run ended while this machine was out of it (the keeper said so): it
 * ends at this step, on the run's weights as it last had them. */
static void run_ended(Trainer *t, ElasticRun *s, long step)
{
    if (s->ended) return;
    s->ended = 1;
    memcpy(t->model.params, s->global, t->model.n_params * sizeof(float));
    t->end_step = step + 1;
    t->ended_by = "elastic-run-ended";
    trainer_note(t, "elastic: the run has ended without this machine: it ends at step %ld",
                 step + 1);
}

static int el_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    ElasticRun *s = state;
    s->computed = 0;
    int late = step < s->round_start || s->ended ? 1 : elastic_poll(s->el, e);
    notes(t, s);
    if (late < 0) return -1;
    if (late == 3) run_ended(t, s, step);
    if (late == 2) {
        rejoined(t, s);
        late = step < s->round_start;
    }
    if (late || s->skipping || s->ended) {
        s->skipping = step >= s->round_start;
        t->data_pos++;
        o->no_loss = 1;
        o->loss = o->grad_norm = NAN;
        return 0;
    }
    /* each machine its own place in the data */
    uint64_t shift = (uint64_t)elastic_slot(s->el) * ELASTIC_DATA_STRIDE;
    t->data_pos += shift;
    int rc = backprop_compute(t, state, step, o, e);
    t->data_pos -= shift;
    s->computed = !rc;
    return rc;
}

static void log_round(ElasticRun *s, const ElasticRound *r, const ElasticStats *st, double round_s)
{
    JsonOut j;
    json_init(&j, s->log);
    json_begin_object(&j);
    json_uint(json_key(&j, "round"), r->round + 1);
    json_bool(json_key(&j, "committed"), r->committed);
    json_bool(json_key(&j, "mine"), r->mine_counted);
    json_uint(json_key(&j, "machines"), r->machines);
    json_begin_array(json_key(&j, "contributors"));
    for (uint32_t i = 0; i < r->contributors; i++) json_uint(&j, r->slots[i]);
    json_end_array(&j);
    json_begin_array(json_key(&j, "weights"));
    for (uint32_t i = 0; i < r->contributors; i++) json_uint(&j, r->weights[i]);
    json_end_array(&j);
    json_uint(json_key(&j, "fragment"), r->round % s->fragments + 1);
    json_uint(json_key(&j, "values"), r->to - r->from);
    char chain[24];
    snprintf(chain, sizeof chain, "%016llx", (unsigned long long)r->chain);
    json_str(json_key(&j, "chain"), chain);
    json_uint(json_key(&j, "bytes_sent"), st->round_bytes_sent);
    json_fixed(json_key(&j, "exchange_s"), st->round_exchange_s, 3);
    /* READY to the outer step's end: what the inner steps waited */
    json_fixed(json_key(&j, "round_s"), round_s, 3);
    json_end_object(&j);
    json_newline(&j);
    json_finish(&j);
    json_free(&j);
    fflush(s->log);
}

/* This machine's pseudo-gradient of its round's fragment, global - params,
 * into the exchange (READY). */
static int begin_round(Trainer *t, ElasticRun *s, Err *e)
{
    const float *p = t->model.params;
    uint32_t f = s->round % s->fragments;
    size_t lo, hi;
    elastic_fragment(t->model.n_params, s->fragments, s->round, &lo, &hi);
    for (size_t i = lo; i < hi; i++) s->delta[i] = s->global[i] - p[i];
    s->sent_steps = s->frag_steps[f];
    s->round++;
    return elastic_begin(s->el, s->delta, s->sent_steps, e);
}

/* The outer step with a committed round's mean (every machine the same
 * bits), on its fragment. Blocking: the weights become the new global.
 * Delayed (overlap): the progress made since the round began stays on top
 * of it, params = global' + (params - global + delta) (docs/elastic.md). */
static void outer_step(Trainer *t, ElasticRun *s, const ElasticRound *r, int delayed)
{
    const TrainConfig *c = t->cfg;
    float *p = t->model.params, *g = s->global;
    size_t a = r->from, len = r->to - r->from;
    if (delayed)
        for (size_t i = a; i < r->to; i++) p[i] += s->delta[i] - g[i];
    diloco_nesterov(g + a, s->mom + a, r->mean + a, len, c->outer_lr, c->outer_momentum);
    if (delayed)
        for (size_t i = a; i < r->to; i++) p[i] += g[i];
    else
        memcpy(p + a, g + a, len * sizeof(float));
    /* what the mean took in is no longer this machine's own */
    uint32_t *steps = &s->frag_steps[r->round % s->fragments];
    *steps = *steps > s->sent_steps ? *steps - s->sent_steps : 0;
}

/* The round begun: what is left of its exchange, then the outer step, or,
 * for a void round, nothing: the progress stays in the weights for the
 * next. 1 = this machine rejoined instead. */
static int end_round(Trainer *t, ElasticRun *s, int delayed, int last, Err *e)
{
    ElasticRound r;
    trace_begin("outer round", TR_OPT);
    double t0 = comm_wtime();
    int rc = elastic_end(s->el, &r, e);
    trace_end();
    notes(t, s);
    if (rc) return -1;
    if (r.ended) run_ended(t, s, s->applied - 1);
    if (r.rejoined && !r.ended) rejoined(t, s);
    if (r.rejoined) return 1;
    if (r.committed) outer_step(t, s, &r, delayed);
    /* every machine ends on the same weights, also after a void round */
    if (!r.committed && last)
        memcpy(t->model.params + r.from, s->global + r.from, (r.to - r.from) * sizeof(float));
    ElasticStats st;
    elastic_stats(s->el, &st);
    t->strategy_bytes = (double)st.bytes_sent;
    log_round(s, &r, &st, comm_wtime() - t0);
    s->skipping = 0;
    return 0;
}

/* The end of a round's inner steps. Blocking: the round, whole. Overlap:
 * the round in flight ends and this one begins, its exchange behind the
 * next round's steps. At the run's last step, the round in flight, then
 * every fragment's round blocking, so that no machine ends on weights of
 * its own. */
static int outer_round(Trainer *t, ElasticRun *s, int last, Err *e)
{
    if (elastic_in_flight(s->el)) {
        int rc = end_round(t, s, 1, 0, e);
        if (rc) return rc < 0 ? -1 : 0;
    }
    if (t->cfg->diloco_overlap && !last) return begin_round(t, s, e);
    for (uint32_t i = 0; i < (last ? s->fragments : 1); i++) {
        if (begin_round(t, s, e)) return -1;
        int rc = end_round(t, s, 0, last, e);
        if (rc) return rc < 0 ? -1 : 0;
    }
    return 0;
}

static int el_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    ElasticRun *s = state;
    if (s->computed) {
        if (backprop_apply(t, state, step, skip, e)) return -1;
        for (uint32_t f = 0; f < s->fragments; f++) s->frag_steps[f]++;
    }
    s->applied = step + 1;
    if (s->ended) return 0;
    int last = step + 1 == t->end_step;
    if (step < s->round_start || ((step + 1) % s->period != 0 && !last)) return 0;
    return outer_round(t, s, last, e);
}

static void el_on_stop(Trainer *t, void *state)
{
    (void)t;
    elastic_leave(((ElasticRun *)state)->el);
}

/* This machine's weights and moments, the outer state, its error feedback. */
static int el_ckpt_parts(Trainer *t, void *state, Range mine, CkptPart *out)
{
    (void)mine;
    ElasticRun *s = state;
    Range all = {0, t->model.n_params};
    int n = 0;
    out[n++] = (CkptPart){"param", t->model.params, 0, all};
    out[n++] = (CkptPart){"opt_m", t->opt.m, 0, all};
    out[n++] = (CkptPart){"opt_v", t->opt.v, 0, all};
    out[n++] = (CkptPart){"outer_g", s->global, 0, all};
    out[n++] = (CkptPart){"outer_mom", s->mom, 0, all};
    if (elastic_send_err(s->el)) {
        out[n++] = (CkptPart){"outer_err", elastic_send_err(s->el), 0, all};
        out[n++] = (CkptPart){"outer_serr", elastic_sum_err(s->el), 0, all};
    }
    return n;
}

static void el_free(void *state)
{
    ElasticRun *s = state;
    if (!s) return;
    if (s->el) elastic_close(s->el, s->applied >= s->end_step);
    if (s->log) fclose(s->log);
    free(s->global);
    free(s->mom);
    free(s->delta);
    free(s->frag_steps);
    free(s);
}

static int el_selected(const TrainConfig *c)
{
    return c->diloco > 0 && c->optim.kind != OPT_ZO && (c->swarm_listen[0] || c->swarm_join[0]);
}

static int el_validate(const TrainConfig *c, Err *e)
{
    if (!el_selected(c)) return 0;
    const char *flag = c->swarm_join[0] ? "--swarm-join" : "--swarm-listen";
    if (c->zero)
        return err_set(e, "%s with --zero %d: each machine keeps its own inner optimizer state",
                       flag, c->zero);
    return 0;
}

/* Named "diloco": the planner predicts and reports it as the DiLoCo run it is. */
const StepStrategy ELASTIC_STRATEGY = {
    .name = "diloco",
    .selected_by = el_selected,
    .replica_grads = 1,
    .validate = el_validate,
    .setup = el_setup,
    .compute = el_compute,
    .apply = el_apply,
    .on_stop = el_on_stop,
    .ckpt_parts = el_ckpt_parts,
    .flops_per_step = backprop_flops,
    .free = el_free,
};
