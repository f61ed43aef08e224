#include "worker/ckpt/whole.h"

#include <string.h>
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/lorabase.h"

/* The moments too, when saved: a weights-only checkpoint (an import) needs
 * no room for them. */
static int load_with_optimizer(const char *dir, const Mpitrain__Manifest *mf,
                               const OptimConfig *oc, Model *m, Err *e)
{
    Optimizer o;
    int have_opt = ckpt_has_kind(mf, "opt_m") && optim_init(&o, oc, 0, m->n_params, e) == 0;
    int rc = ckpt_load_from(dir, mf, m, have_opt ? &o : NULL, e);
    if (have_opt) optim_free(&o);
    return rc;
}

/* A LoRA checkpoint's frozen base first (its own records, the source it
 * refers to, unchanged, or the seed's), then the adapters over it. */
static int load_all(const char *dir, const CkptWhole *how, Model *m, Err *e)
{
    Mpitrain__Manifest *mf = NULL;
    CkptMeta meta;
    memset(&meta, 0, sizeof meta);
    int rc = ckpt_read_manifest(dir, &mf, e);
    if (!rc && m->base.n_tensors) rc = ckpt_meta_from_pb(mf, &meta, e);
    if (!rc && m->base.n_tensors) rc = lorabase_load(dir, mf, &meta, m, 1, e);
    if (!rc) rc = how->verify_optim ? load_with_optimizer(dir, mf, how->verify_optim, m, e)
                                    : ckpt_load_from(dir, mf, m, NULL, e);
    if (mf) mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

int ckpt_load_whole(const char *dir, const ModelConfig *cfg, const CkptWhole *how, Model *m,
                    Err *e)
{
    ModelShard whole = model_shard_whole(how->forward_only);
    if (model_build_shard(m, cfg, &whole, how->max_batch, e))
        return err_wrap(e, "%s%s%s", how->dir_as ? how->dir_as : "", how->dir_as ? " " : "", dir);
    int rc = load_all(dir, how, m, e);
    if (rc) model_free(m);
    return rc;
}
