#include <string.h>
#include "worker/config/config.h"

void train_config_defaults(TrainConfig *c)
{
    memset(c, 0, sizeof *c);
    /* the reference GPT: 4 layers, 4 heads, width 256, context 256, bytes */
    c->model = (ModelConfig){MODEL_GPT, 4, 4, 256, 256, 256, 0};
    c->optim = (OptimConfig){OPT_ADAMW, 1e-3f, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.9f, 1.0f, 20, 0};
    c->global_batch = 8;
    c->steps = 300;
    c->seed = 1337;
    c->micro_batches = 1;
    c->save_every = 100;
    c->keep_ckpts = 3;
    c->eval_every = 50;
    c->eval_batches = 4;
    c->log_every = 1;
    c->dp = c->tp = c->pp = 0; /* 0 = decide from the world size */
    c->pp_schedule = 1; /* 1f1b */
    c->zo_eps = 1e-3f;
    c->zo_samples = 1;
    c->zo_check_every = 10;
    c->zo_outlier = 1000.0f;
    c->bucket_mb = 4;
    c->bucket_bytes = 4 << 20;
    c->overlap = 1;
}

int train_config_validate(const TrainConfig *c, Err *e)
{
    if (model_config_validate(&c->model, e)) return -1;
    if (optim_config_validate(&c->optim, e)) return -1;
    if (c->global_batch < 1) return err_set(e, "--batch %d: must be at least 1", c->global_batch);
    if (c->steps < 1) return err_set(e, "--steps %ld: must be at least 1", c->steps);
    if (c->micro_batches < 1)
        return err_set(e, "--micro-batches %d: must be at least 1", c->micro_batches);
    if (c->global_batch % c->micro_batches)
        return err_set(e, "--micro-batches %d does not divide --batch %d", c->micro_batches,
                       c->global_batch);
    if (!c->out[0]) return err_set(e, "--out: a run directory is required");
    if (!c->data[0]) return err_set(e, "--data: a token file is required");
    if (c->optim.kind == OPT_ZO && (!(c->zo_eps > 0) || c->zo_samples < 1 || c->zo_scale < 0))
        return err_set(e, "--zo-eps %g / --zo-samples %d / --zo-scale %g: eps and samples must be "
                          "positive, scale >= 0 (0 = automatic)", c->zo_eps, c->zo_samples, c->zo_scale);
    if (c->eval_every > 0 && c->eval_batches < 1)
        return err_set(e, "--eval-batches %d: must be at least 1", c->eval_batches);
    return 0;
}
