/* The backprop step strategy: forward and backward through the pipeline,
 * gradient buckets reduced across data-parallel ranks during backward, then
 * the optimizer (AdamW / SGD, ZeRO-sharded when asked). */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "comm/trace/trace.h"
#include "worker/loop/strategy.h"
#include "worker/method/diloco/diloco.h"

/* Global gradient norm: every element of the model counted once, however
 * it is replicated (DP replicas, TP-replicated norms and biases, the tied
 * embedding's second copy). g holds the gradient of elements [u.lo, u.hi).
 * Under DiLoCo each replica has its own gradient, and its own norm. */
static double grad_norm(Trainer *t, const float *g, Range u)
{
    double ss = 0;
    int own = t->cfg->diloco > 0;
    int dp_counts = own || t->cfg->zero || t->mesh.me.dp == 0;
    for (int k = 0; dp_counts && k < t->model.n_tensors; k++) {
        const ParamInfo *ti = &t->model.tensors[k];
        if (ti->tied_copy || (ti->split == TP_REPLICATED && t->mesh.me.tp > 0)) continue;
        size_t a = ti->offset > u.lo ? ti->offset : u.lo;
        size_t b = ti->offset + ti->numel < u.hi ? ti->offset + ti->numel : u.hi;
        if (a < b) ss += sum_squares(g + (a - u.lo), b - a);
    }
    coll_allreduce_sum_f64(own ? t->mesh.mp : t->mesh.world, &ss, 1);
    return sqrt(ss);
}

/* The head's copy of the tied embedding and the embedding itself each got
 * half of the gradient: sum them so both copies take the same step. */
static void sync_tied_grads(Trainer *t)
{
    if (!t->mesh.emb) return;
    const ParamInfo *w = model_find_tensor(&t->model, "wte");
    coll_allreduce_sum_f32(t->mesh.emb, t->model.grads + w->offset, w->numel);
}

typedef struct {
    double grad_norm; /* of the step being taken: the clip coefficient's input */
    Diloco outer;     /* --diloco: the outer optimizer (all zero otherwise) */
    char kinds[6][CKPT_KIND_LEN]; /* --diloco: this replica's record kinds */
} Backprop;

static int bp_setup(Trainer *t, void **state, Err *e)
{
    (void)t;
    *state = calloc(1, sizeof(Backprop));
    return *state ? 0 : err_set(e, "out of memory");
}

static int bp_compute(Trainer *t, void *state, long step, StepOutcome *o, Err *e)
{
    (void)step;
    (void)e;
    const TrainConfig *c = t->cfg;
    loader_batch(&t->train, t->data_pos, t->inputs, t->targets);
    t->data_pos++;
    model_zero_grad(&t->model);
    /* the gradient of the mean loss over the batch the step reduces: the
     * global batch, or (DiLoCo) the replica's own share of it */
    double scale = trainer_per_pred(c) * (c->diloco > 0 ? t->mesh.dims.dp : 1);
    double local = pipeline_train(&t->pipe, t->inputs, t->targets, (float)scale, &t->sync);
    gradsync_finish(&t->sync);
    sync_tied_grads(t);
    o->loss = trainer_loss_sum(t, t->mesh.world, local) * trainer_per_pred(c);
    o->grad_norm = grad_norm(t, gradsync_grads(&t->sync), gradsync_update_range(&t->sync));
    ((Backprop *)state)->grad_norm = o->grad_norm;
    return 0;
}

static int bp_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    (void)e;
    (void)step; /* the loop set t->lr for it */
    if (skip) return 0;
    const TrainConfig *c = t->cfg;
    trace_begin("optimizer", TR_OPT);
    optim_update(&t->opt, &t->model, t->model.params, gradsync_grads(&t->sync),
                 t->lr, clip_coef(&c->optim, ((Backprop *)state)->grad_norm));
    trace_end();
    if (c->zero) coll_allgatherv_inplace_f32(t->mesh.dp, t->model.params, t->shard_counts);
    return 0;
}

/* The whole model's training FLOPs for the step's global batch (every
 * rank reports the job's figure, whatever part of the model it holds). */
static double bp_flops(const Trainer *t)
{
    const ModelConfig *c = &t->cfg->model;
    return cost_train_flops_per_token(c) * t->cfg->global_batch * c->seq_len;
}

const StepStrategy BACKPROP_STRATEGY = {
    .name = "backprop",
    .setup = bp_setup,
    .compute = bp_compute,
    .apply = bp_apply,
    .flops_per_step = bp_flops,
    .free = free,
};

/* ---- DiLoCo: backprop inner steps, an outer step every H ------------------ */

_Static_assert(WIRE_F32 == 0 && WIRE_BF16 == 1, "--diloco-wire choices follow WireFormat");

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

static int dl_setup(Trainer *t, void **state, Err *e)
{
    const TrainConfig *c = t->cfg;
    Backprop *b = calloc(1, sizeof *b);
    if (!(*state = b)) return err_set(e, "out of memory");
    if (diloco_init(&b->outer, &t->model, t->mesh.dp, t->mesh.emb, c->outer_lr, c->outer_momentum,
                    c->diloco_overlap, (WireFormat)c->diloco_wire, e) ||
        diloco_resume(t, &b->outer, e))
        return -1;
    if (c->diloco_overlap && !t->model.on_block_grads) {
        t->model.on_block_grads = drive_outer;
        t->model.hook_ctx = &b->outer;
    }
    trainer_note(t, "DiLoCo: %d replica(s), an outer step every %d inner steps (outer lr %g, "
                    "Nesterov momentum %g%s%s); outer state %.1f MB per rank",
                 t->mesh.dims.dp, c->diloco, c->outer_lr, c->outer_momentum,
                 c->diloco_overlap ? ", each all-reduce behind the next round" : "",
                 c->diloco_wire == WIRE_BF16 ? ", bf16 on the wire with error feedback" : "",
                 diloco_state_bytes(&b->outer) / 1e6);
    return 0;
}

static int dl_apply(Trainer *t, void *state, long step, int skip, Err *e)
{
    Backprop *b = state;
    int rc = bp_apply(t, state, step, skip, e);
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
    diloco_settle(&((Backprop *)state)->outer);
    return 0;
}

/* Every replica its own weights, moments (and round start); the outer
 * state once, split over the replicas like the weights of plain DP. */
static int dl_ckpt_parts(Trainer *t, void *state, Range mine, CkptPart *out)
{
    Backprop *b = state;
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
    Backprop *b = state;
    if (b) diloco_free(&b->outer);
    free(b);
}

const StepStrategy DILOCO_STRATEGY = {
    .name = "diloco",
    .setup = dl_setup,
    .compute = bp_compute,
    .apply = dl_apply,
    .before_save = dl_before_save,
    .ckpt_parts = dl_ckpt_parts,
    .flops_per_step = bp_flops,
    .free = dl_free,
};
