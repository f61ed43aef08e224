#include "worker/ckpt/whole.h"

#include "worker/ckpt/ckpt.h"

/* The moments too, when saved: a weights-only checkpoint (an import) needs
 * no room for them. */
static int load_with_optimizer(const char *dir, const OptimConfig *oc, Model *m, Err *e)
{
    Mpitrain__Manifest *mf = NULL;
    Optimizer o;
    int rc = ckpt_read_manifest(dir, &mf, e);
    int have_opt = !rc && ckpt_has_kind(mf, "opt_m") && optim_init(&o, oc, 0, m->n_params, e) == 0;
    if (!rc) rc = ckpt_load_from(dir, mf, m, have_opt ? &o : NULL, e);
    if (have_opt) optim_free(&o);
    if (mf) mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

int ckpt_load_whole(const char *dir, const ModelConfig *cfg, const CkptWhole *how, Model *m,
                    Err *e)
{
    ModelShard whole = model_shard_whole(how->forward_only);
    if (model_build_shard(m, cfg, &whole, how->max_batch, e))
        return err_wrap(e, "%s%s%s", how->dir_as ? how->dir_as : "", how->dir_as ? " " : "", dir);
    int rc = how->verify_optim ? load_with_optimizer(dir, how->verify_optim, m, e)
                               : ckpt_load(dir, m, NULL, e);
    if (rc) model_free(m);
    return rc;
}
