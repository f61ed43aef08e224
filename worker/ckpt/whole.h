#ifndef MPITRAIN_CKPT_WHOLE_H
#define MPITRAIN_CKPT_WHOLE_H
/* A checkpoint's weights in one whole (unsharded) model, whatever layout
 * saved them: what eval, sample, `ckpt export`/`info --verify` and the ZO
 * journal replay start from. */
#include "base/err.h"
#include "models/model.h"
#include "worker/optim/optim.h"

typedef struct {
    int max_batch;            /* sequences one forward pass takes */
    int forward_only;         /* no gradient buffer (no backward pass) */
    /* How a build error names the directory: "checkpoint" gives
     * "checkpoint DIR: ...", NULL gives "DIR: ...". */
    const char *dir_as;
    /* Non-NULL: also read the saved optimizer moments, when there are any,
     * into a whole-model optimizer of this config, so their checksums are
     * checked too (it is freed after). NULL: the weight records only. */
    const OptimConfig *verify_optim;
} CkptWhole;

/* Builds the whole model of cfg (no random init: every weight is loaded)
 * and loads the checkpoint in step directory dir into it. On failure m is
 * freed; on success the caller frees it (model_free). */
int ckpt_load_whole(const char *dir, const ModelConfig *cfg, const CkptWhole *how, Model *m,
                    Err *e);

#endif
