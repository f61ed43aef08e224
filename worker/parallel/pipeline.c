#include "worker/parallel/pipeline.h"

#include <stdlib.h>
#include <string.h>
#include "comm/trace/trace.h"

int pipeline_init(Pipeline *pl, Model *m, Group *pp, int stage, int p, int M, int micro_b,
                  Schedule sched, Err *e)
{
    memset(pl, 0, sizeof *pl);
    pl->m = m;
    pl->pp = pp;
    pl->stage = stage;
    pl->p = p;
    pl->M = M;
    pl->micro_b = micro_b;
    pl->T = m->cfg.seq_len;
    pl->sched = sched;
    pl->slots = m->shard.slots;
    pl->act_n = p > 1 ? model_boundary_floats(&m->cfg, micro_b) : 0;
    pl->ops = calloc(2 * (size_t)M, sizeof *pl->ops);
    pl->fwd_send = calloc(pl->slots, sizeof *pl->fwd_send);
    pl->bwd_send = calloc(pl->slots, sizeof *pl->bwd_send);
    if (p > 1) {
        pl->dsend = model_calloc((size_t)pl->slots * pl->act_n, sizeof(float));
        pl->dout = model_calloc(pl->act_n, sizeof(float));
    }
    if (!pl->ops || !pl->fwd_send || !pl->bwd_send || (p > 1 && (!pl->dsend || !pl->dout)))
        return err_set(e, "out of memory for the pipeline buffers");
    pipeline_ops(sched, stage, p, M, pl->ops);
    return 0;
}

void pipeline_free(Pipeline *pl)
{
    for (int s = 0; pl->fwd_send && s < pl->slots; s++) {
        comm_request_free(&pl->fwd_send[s]);
        comm_request_free(&pl->bwd_send[s]);
    }
    comm_request_free(&pl->recv);
    free(pl->ops);
    free(pl->fwd_send);
    free(pl->bwd_send);
    free(pl->dsend);
    free(pl->dout);
    memset(pl, 0, sizeof *pl);
}

static int is_first(const Pipeline *pl) { return pl->stage == 0; }
static int is_last(const Pipeline *pl) { return pl->stage == pl->p - 1; }

static double forward_one(Pipeline *pl, int mb, const int *inputs, const int *targets)
{
    int slot = mb % pl->slots;
    size_t off = (size_t)mb * pl->micro_b * pl->T;
    /* the slot's previous output must have left before it is overwritten */
    coll_wait(&pl->fwd_send[slot]);
    if (!is_first(pl)) {
        p2p_irecv_f32(pl->pp, model_stage_input(pl->m, slot), pl->act_n, pl->stage - 1, 2 * mb,
                      &pl->recv);
        coll_wait(&pl->recv);
    }
    trace_begin_arg(TR_COMPUTE, mb, "forward mb%d", mb);
    pl->m->dropout_key = pl->drop_key;
    pl->m->dropout_row0 = pl->drop_row0 + (uint64_t)mb * pl->micro_b * pl->T;
    pl->m->positions = pl->pos ? pl->pos + off : NULL;
    double loss = model_forward_slot(pl->m, slot, inputs + off, targets ? targets + off : NULL,
                                     pl->micro_b);
    trace_end();
    if (!is_last(pl))
        p2p_isend_f32(pl->pp, model_stage_output(pl->m, slot), pl->act_n, pl->stage + 1, 2 * mb,
                      &pl->fwd_send[slot]);
    return loss;
}

static void backward_one(Pipeline *pl, int mb, const int *inputs, const int *targets,
                         float scale)
{
    int slot = mb % pl->slots;
    size_t off = (size_t)mb * pl->micro_b * pl->T;
    const float *dout = NULL;
    if (!is_last(pl)) {
        p2p_irecv_f32(pl->pp, pl->dout, pl->act_n, pl->stage + 1, 2 * mb + 1, &pl->recv);
        coll_wait(&pl->recv);
        dout = pl->dout;
    }
    trace_begin_arg(TR_COMPUTE, mb, "backward mb%d", mb);
    model_backward_slot(pl->m, slot, inputs + off, targets + off, pl->micro_b, scale, dout);
    trace_end();
    if (!is_first(pl)) {
        float *buf = pl->dsend + (size_t)slot * pl->act_n;
        coll_wait(&pl->bwd_send[slot]);
        memcpy(buf, model_stage_dinput(pl->m), pl->act_n * sizeof(float));
        p2p_isend_f32(pl->pp, buf, pl->act_n, pl->stage - 1, 2 * mb + 1, &pl->bwd_send[slot]);
    }
}

static void drain_sends(Pipeline *pl)
{
    for (int s = 0; s < pl->slots; s++) {
        coll_wait(&pl->fwd_send[s]);
        coll_wait(&pl->bwd_send[s]);
    }
}

double pipeline_train(Pipeline *pl, const int *inputs, const int *targets, float grad_scale,
                      GradSync *sync)
{
    double loss = 0;
    int backwards = 0;
    for (int i = 0; i < 2 * pl->M; i++) {
        PipeOp op = pl->ops[i];
        if (!op.backward) {
            loss += forward_one(pl, op.mb, inputs, targets);
            continue;
        }
        if (++backwards == pl->M) gradsync_arm(sync);
        backward_one(pl, op.mb, inputs, targets, grad_scale);
    }
    drain_sends(pl);
    pl->drop_key = 0;
    return loss;
}

void pipeline_set_dropout(Pipeline *pl, uint64_t key, uint64_t row0)
{
    pl->drop_key = key;
    pl->drop_row0 = row0;
}

void pipeline_set_positions(Pipeline *pl, const int *pos) { pl->pos = pos; }

double pipeline_eval(Pipeline *pl, const int *inputs, const int *targets)
{
    double loss = 0;
    for (int mb = 0; mb < pl->M; mb++) loss += forward_one(pl, mb, inputs, targets);
    drain_sends(pl);
    pl->drop_key = 0;
    return loss;
}
