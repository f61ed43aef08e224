/* A manifest's header: the run's settings by name (worker/config/settings.h)
 * and its state, to and from CkptMeta. */
#include "worker/ckpt/ckpt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void ckpt_meta_init(CkptMeta *meta)
{
    memset(meta, 0, sizeof *meta);
    train_config_defaults(&meta->cfg);
    meta->dp = meta->tp = meta->pp = 1;
}

int ckpt_meta_to_pb(const CkptMeta *meta, CkptManifestPB *pb, Err *e)
{
    Mpitrain__Manifest *mf = &pb->mf;
    mpitrain__manifest__init(mf);
    mpitrain__layout__init(&pb->layout);
    if (settings_encode(&meta->cfg, &pb->settings, e)) return -1;
    pb->layout.dp = meta->dp;
    pb->layout.tp = meta->tp;
    pb->layout.pp = meta->pp;
    pb->layout.zero = meta->zero;
    mf->format_version = CKPT_FORMAT_VERSION;
    mf->n_settings = pb->settings.n;
    mf->settings = pb->settings.ptrs;
    mf->layout = &pb->layout;
    mf->step = meta->step;
    mf->data_position = meta->data_pos;
    mf->optimizer_step = meta->opt_t;
    mf->budget_used_s = meta->budget_used_s;
    mf->source_dtype = (char *)meta->source_dtype;
    mf->source_arch = (char *)meta->source_arch;
    mf->lora_base_path = (char *)meta->base.path;
    mf->lora_base_hash = meta->base.hash;
    mf->created_unix = (int64_t)time(NULL);
    return 0;
}

void ckpt_manifest_pb_free(CkptManifestPB *pb) { settings_pb_free(&pb->settings); }

/* ---- manifests written before the settings went in by name --------------- */

static ModelConfig model_config_from_pb(const Mpitrain__ModelConfigPB *m)
{
    return (ModelConfig){.kind = (ModelKind)m->kind, .n_layer = m->n_layer, .n_head = m->n_head,
                         .n_embd = m->n_embd, .seq_len = m->seq_len, .vocab = m->vocab,
                         .in_dim = m->in_dim, .positions = m->positions};
}

/* An unknown optimizer name reads as adamw, as it always did. */
static void optim_config_from_pb(const Mpitrain__OptimConfigPB *p, OptimConfig *o)
{
    memset(o, 0, sizeof *o);
    if (!p->name || optim_parse_kind(p->name, &o->kind)) o->kind = OPT_ADAMW;
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
}

/* The one reader of the old settings fields: they over the defaults, as
 * the settings they stand for. */
static void settings_of_old_manifest(const Mpitrain__Manifest *mf, TrainConfig *c)
{
    if (mf->model) c->model = model_config_from_pb(mf->model);
    if (mf->optim) optim_config_from_pb(mf->optim, &c->optim);
    if (c->optim.total_steps >= 1) c->steps = c->optim.total_steps;
    c->seed = mf->seed;
    c->global_batch = mf->global_batch;
    snprintf(c->data, sizeof c->data, "%s", mf->data_path ? mf->data_path : "");
    snprintf(c->val_data, sizeof c->val_data, "%s", mf->val_data_path ? mf->val_data_path : "");
    c->data_format = mf->data_format;
    if (mf->zo) {
        c->zo_eps = mf->zo->eps;
        c->zo_scale = mf->zo->scale;
        c->zo_samples = mf->zo->samples;
    }
    if (mf->layout) {
        c->dp = mf->layout->dp;
        c->tp = mf->layout->tp;
        c->pp = mf->layout->pp;
        c->zero = mf->layout->zero;
    }
}

int ckpt_meta_from_pb(const Mpitrain__Manifest *mf, CkptMeta *meta, Err *e)
{
    memset(meta, 0, sizeof *meta);
    train_config_defaults(&meta->cfg);
    if (!mf->n_settings) settings_of_old_manifest(mf, &meta->cfg);
    else if (settings_apply(&meta->cfg, mf->settings, mf->n_settings, "manifest", e)) return -1;
    else train_config_finish(&meta->cfg);
    if (mf->layout) {
        meta->dp = mf->layout->dp;
        meta->tp = mf->layout->tp;
        meta->pp = mf->layout->pp;
        meta->zero = mf->layout->zero;
    }
    meta->step = mf->step;
    meta->data_pos = mf->data_position;
    meta->opt_t = mf->optimizer_step;
    meta->budget_used_s = mf->budget_used_s;
    snprintf(meta->source_dtype, sizeof meta->source_dtype, "%s",
             mf->source_dtype && ckpt_dtype_valid(mf->source_dtype) ? mf->source_dtype : "");
    snprintf(meta->source_arch, sizeof meta->source_arch, "%s",
             mf->source_arch && strlen(mf->source_arch) < sizeof meta->source_arch ? mf->source_arch : "");
    if (mf->lora_base_path && strlen(mf->lora_base_path) >= sizeof meta->base.path)
        return err_set(e, "lora_base_path is longer than %zu bytes", sizeof meta->base.path - 1);
    snprintf(meta->base.path, sizeof meta->base.path, "%s", mf->lora_base_path ? mf->lora_base_path : "");
    meta->base.hash = mf->lora_base_hash;
    return 0;
}
