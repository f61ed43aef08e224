#include "worker/ckpt/pbconv.h"

#include <string.h>

void model_config_to_pb(const ModelConfig *c, Mpitrain__ModelConfigPB *m)
{
    mpitrain__model_config_pb__init(m);
    m->kind = c->kind;
    m->n_layer = c->n_layer;
    m->n_head = c->n_head;
    m->n_embd = c->n_embd;
    m->seq_len = c->seq_len;
    m->vocab = c->vocab;
    m->in_dim = c->in_dim;
    m->positions = c->positions;
}

ModelConfig model_config_from_pb(const Mpitrain__ModelConfigPB *m)
{
    return (ModelConfig){(ModelKind)m->kind, m->n_layer, m->n_head, m->n_embd,
                         m->seq_len, m->vocab, m->in_dim, m->positions};
}

void optim_config_to_pb(const OptimConfig *o, Mpitrain__OptimConfigPB *p)
{
    mpitrain__optim_config_pb__init(p);
    p->name = (char *)optim_name(o->kind);
    p->lr = o->lr;
    p->min_lr = o->min_lr;
    p->beta1 = o->beta1;
    p->beta2 = o->beta2;
    p->eps = o->eps;
    p->weight_decay = o->weight_decay;
    p->momentum = o->momentum;
    p->grad_clip = o->grad_clip;
    p->warmup = o->warmup;
    p->total_steps = o->total_steps;
}

int optim_config_from_pb(const Mpitrain__OptimConfigPB *p, OptimConfig *o)
{
    memset(o, 0, sizeof *o);
    int rc = (!p->name || optim_parse_kind(p->name, &o->kind)) ? -1 : 0;
    if (rc) o->kind = OPT_ADAMW;
    o->lr = p->lr;
    o->min_lr = p->min_lr;
    o->beta1 = p->beta1;
    o->beta2 = p->beta2;
    o->eps = p->eps;
    o->weight_decay = p->weight_decay;
    o->momentum = p->momentum;
    o->grad_clip = p->grad_clip;
    o->warmup = p->warmup;
    o->total_steps = p->total_steps;
    return rc;
}

void zo_config_to_pb(float eps, float scale, int samples, int check_every, float outlier,
                     Mpitrain__ZoConfig *z)
{
    mpitrain__zo_config__init(z);
    z->eps = eps;
    z->scale = scale;
    z->samples = samples;
    z->check_every = check_every;
    z->outlier = outlier;
}
