/* The DiLoCo step strategy (--diloco H): backprop inner steps on each
 * replica's own data (worker/method/backprop/), an outer step every H
 * (diloco.c, the outer optimizer); its checkpoint records, its resume and
 * its settings' rules. docs/diloco.md has the method. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm/trace/trace.h"
#include "worker/method/backprop/backprop.h"
#include "worker/method/diloco/diloco.h"
#include "worker/method/diloco/diloco_step.h"

_Static_assert(WIRE_F32 == 0 && WIRE_BF16 == 1 && WIRE_INT8 == 2 && WIRE_INT4 == 3,
               "--diloco-wire choices follow WireFormat");

/* A replica's own record kinds: replica 0's are the plain ones, so eval,
 * sample and export read a trained replica's weights; the others carry
 * ".r<R>". */
static const char *replica_kind(char *buf, size_t n, const char *kind, int replica)
{
    if (replica == 0) return kind;
    snprintf(buf, n, "%s.r%d", kind, replica);
    return buf;
}

/* One kind of the resumed checkpoint into a whole-shard buffer, if it has it:
 * 1 loaded, 0 absent. */
static int load_if_present(Trainer *t, const char *kind, float *dst, size_t lo, size_t hi, Err *e)
{
    const Mpitrain__Manifest *mf = t->resume_mf;
    if (!ckpt_has_kind(mf, kind)) return 0;
    return ckpt_load_kind(t->cfg->resume, mf, &t->model, kind, dst, lo, hi, e) ? -1 : 1;
}

/* --resume: replica r continues saved replica r mod (the saved dp) - the
 * same one when the layout is unchanged - with its weights, inner moments
 * and round start; the outer state is shared. A checkpoint without outer
 * state (plain backprop) starts DiLoCo at its weights. */
static int diloco_resume(Trainer *t, Diloco *d, Err *e)
{
    if (!t->resume_mf) return 0;
    int src = t->mesh.me.dp % (t->resume_meta.dp > 0 ? t->resume_meta.dp : 1);
    char k[CKPT_KIND_LEN];
    size_t n = t->model.n_params;
    int rc = 0;
    if (src > 0) {
        if (load_if_present(t, replica_kind(k, sizeof k, "param", src), t->model.params, 0, n, e) < 0 ||
            (t->opt.m && load_if_present(t, replica_kind(k, sizeof k, "opt_m", src), t->opt.m, 0, n, e) < 0) ||
            (t->opt.v && load_if_present(t, replica_kind(k, sizeof k, "opt_v", src), t->opt.v, 0, n, e) < 0))
            return -1;
    }
    if ((rc = load_if_present(t, "outer_g", d->global, 0, n, e)) < 0) return -1;
    if (!rc) memcpy(d->global, t->model.params, n * sizeof(float));
    if (load_if_present(t, "outer_mom", d->mom, 0, n, e) < 0) return -1;
    /* bf16's error feedback: what rounding has held back so far (absent:
     * nothing, as at the start of a run) */
    if (d->sum.send_err &&
        (load_if_present(t, replica_kind(k, sizeof k, "outer_err", src), d->sum.send_err, 0, n, e) < 0 ||
         load_if_present(t, replica_kind(k, sizeof k, "outer_serr", src), d->sum.sum_err, 0, n, e) < 0))
        return -1;
    int pend = ckpt_has_kind(t->resume_mf, "outer_pend");
    if (pend && !d->overlap)
        return err_set(e, "--resume %s: the checkpoint holds a delayed DiLoCo outer step still to "
                          "be applied; resume with --diloco-overlap 1", t->cfg->resume);
    if (!d->overlap) return 0;
    /* the round began at the last outer step's weights unless it says */
    if ((rc = load_if_present(t, replica_kind(k, sizeof k, "outer_base", src), d->base, 0, n, e)) < 0)
        return -1;
    if (!rc) memcpy(d->base, d->global, n * sizeof(float));
    if (pend && load_if_present(t, "outer_pend", d->pend, 0, n, e) < 0) return -1;
    d->pending = d->pend_done = pend;
    return 0;
}

/* the model's backward hook: the delayed all-reduce moves on while the
 * inner step computes (MPI progresses only inside its calls) */
static void drive_outer(void *ctx, int block)
{
    (void)block;
    diloco_progress(ctx);
}

/* The inner steps' state first: backprop_compute and _apply take the whole. */
typedef struct {
    Backprop inner;
    Diloco outer;                 /* the outer optimizer */
    char kinds[6][CKPT_KIND_LEN]; /* this replica's record kinds */
} DilocoStep;

static int dl_setup(Trainer *t, void **state, Err *e)
{
    const TrainConfig *c = t->cfg;
    DilocoStep *b = calloc(1, sizeof *b);
    if (!(*state = b)) return err_set(e, "out of memory");
    backprop_init_replica(&b->inner, t);
    if (diloco_init(&b->outer, &t->model, t->mesh.dp, t->mesh.emb, c->outer_lr, c->outer_momentum,
                    c->diloco_overlap, (WireFormat)c->diloco_wire, e) ||
        diloco_resume(t, &b->outer, e))
        return -1;
    char wire[64] = "";
    if (c->diloco_wire)
        snprintf(wire, sizeof wire, ", %s on the wire with error feedback", wire_name(c->diloco_wire));
    if (c->diloco_overlap && !t->model.on_block_grads) {
        t->model.on_block_grads = drive_outer;
        t->model.hook_ctx = &b->outer;
    }
    trainer_note(t, "DiLoCo: %d replica(s), an outer step every %d inner steps (outer lr %g, "
                    "Nesterov momentum %g%s%s); outer state %.1f MB per rank",
                 t->mesh.dims.dp, c->diloco, c->outer_lr, c->outer_momentum,
                 c->diloco_overlap ? ", each all-reduce behind the next round" : "",
                 wire, diloco_state_bytes(&b->outer) / 1e6);
    return 0;
}

static int dl_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    DilocoStep *b = state;
    int rc = backprop_apply(t, state, step, skip, e);
    diloco_progress(&b->outer);
    int last = step + 1 == t->end_step;
    if (!rc && ((step + 1) % t->cfg->diloco == 0 || last)) {
        trace_begin("outer step", TR_OPT);
        diloco_outer_step(&b->outer, last);
        trace_end();
    }
    return rc;
}

static int dl_before_save(Trainer *t, void *state, Err *e)
{
    (void)t;
    (void)e;
    diloco_settle(&((DilocoStep *)state)->outer);
    return 0;
}

/* Every replica its own weights, moments (and round start); the outer
 * state once, split over the replicas like the weights of plain DP. */
static int dl_ckpt_parts(Trainer *t, void *state, Range mine, CkptPart *out)
{
    DilocoStep *b = state;
    char (*kinds)[CKPT_KIND_LEN] = b->kinds;
    const Diloco *d = &b->outer;
    int r = t->mesh.me.dp, n = 0;
    Range all = {0, t->model.n_params};
    out[n++] = (CkptPart){replica_kind(kinds[0], CKPT_KIND_LEN, "param", r), t->model.params, 0, all};
    out[n++] = (CkptPart){replica_kind(kinds[1], CKPT_KIND_LEN, "opt_m", r), t->opt.m, 0, all};
    out[n++] = (CkptPart){replica_kind(kinds[2], CKPT_KIND_LEN, "opt_v", r), t->opt.v, 0, all};
    out[n++] = (CkptPart){"outer_g", d->global, 0, mine};
    out[n++] = (CkptPart){"outer_mom", d->mom, 0, mine};
    if (d->overlap)
        out[n++] = (CkptPart){replica_kind(kinds[3], CKPT_KIND_LEN, "outer_base", r), d->base, 0, all};
    if (d->pending) out[n++] = (CkptPart){"outer_pend", d->pend, 0, mine};
    if (d->sum.send_err) {
        out[n++] = (CkptPart){replica_kind(kinds[4], CKPT_KIND_LEN, "outer_err", r), d->sum.send_err, 0, all};
        out[n++] = (CkptPart){replica_kind(kinds[5], CKPT_KIND_LEN, "outer_serr", r), d->sum.sum_err, 0, all};
    }
    return n;
}

static void dl_free(void *state)
{
    DilocoStep *b = state;
    if (b) diloco_free(&b->outer);
    free(b);
}

/* --diloco and its companions: DiLoCo's rules when it is the method, and
 * its settings refused without it. */
/* --diloco H: ZO (before it in the registry) claims a run with --optimizer
 * zo, which dl_validate then refuses */
static int dl_selected(const TrainConfig *c) { return c->diloco > 0; }

static int dl_validate(const TrainConfig *c, Err *e)
{
    /* elastic DiLoCo (worker/method/elastic/) is DiLoCo too */
    int mine = c->method && !strcmp(c->method->name, DILOCO_STRATEGY.name);
    if (c->diloco > 0 && !mine)
        return err_set(e, "--diloco %d: DiLoCo's inner steps are backprop steps; use --optimizer "
                          "adamw or sgd, or drop --diloco for zeroth-order training", c->diloco);
    if (mine && c->zero)
        return err_set(e, "--diloco %d with --zero %d: each DiLoCo replica keeps its own inner "
                          "optimizer state, which ZeRO would shard across the replicas; use --zero 0",
                       c->diloco, c->zero);
    if (c->diloco_overlap && c->diloco <= 0)
        return err_set(e, "--diloco-overlap 1 needs --diloco H (H > 0)");
    if (c->diloco_fragments > 1 && (c->diloco <= 0 || c->diloco % c->diloco_fragments))
        return err_set(e, "--diloco-fragments %d needs --diloco H with H a multiple of %d (a "
                          "fragment every H/F inner steps)", c->diloco_fragments, c->diloco_fragments);
    if (c->diloco_fragments > 1 && !c->swarm_listen[0] && !c->swarm_join[0])
        return err_set(e, "--diloco-fragments %d: streaming fragments are built for elastic "
                          "DiLoCo (--swarm-listen / --swarm-join), not over MPI yet; use "
                          "--diloco-fragments 1", c->diloco_fragments);
    if (c->diloco_wire && c->diloco <= 0)
        return err_set(e, "--diloco-wire %s needs --diloco H (H > 0)", wire_name(c->diloco_wire));
    return 0;
}

const StepStrategy DILOCO_STRATEGY = {
    .name = "diloco",
    .selected_by = dl_selected,
    .replica_grads = 1,
    .validate = dl_validate,
    .setup = dl_setup,
    .compute = backprop_compute,
    .apply = dl_apply,
    .before_save = dl_before_save,
    .ckpt_parts = dl_ckpt_parts,
    .flops_per_step = backprop_flops,
    .free = dl_free,
};
