#include "worker/ckpt/reshard.h"

#include <stdlib.h>
#include <string.h>
#include "models/cost.h"
#include "models/model.h"
#include "sharding/partition.h"
#include "sharding/stages.h"
#include "worker/ckpt/ckpt.h"
#include "base/fileio.h"

/* One target rank: load its shard from src (the loader maps any layout),
 * write it as that rank's file. */
static int write_target_rank(const char *src, const CkptMeta *meta, MeshDims d, int rank,
                             const int *first, int zero, const char *tmp, uint8_t **recs,
                             size_t *len, Err *e)
{
    MeshCoord c = mesh_coord_of(d, rank);
    ModelShard sh = {c.tp, d.tp, first[c.pp], first[c.pp + 1] - 1, 1, 0};
    Model m;
    if (model_init_shard(&m, &meta->model, &sh, 1, meta->seed, e)) return -1;
    Range mine = split_even(m.n_params, d.dp, c.dp);
    Range opt_range = zero ? mine : (Range){0, m.n_params};
    Optimizer o;
    int rc = optim_init(&o, &meta->optim, opt_range.lo, opt_range.hi, e);
    if (!rc) rc = ckpt_load(src, &m, &o, e);
    if (!rc) rc = ckpt_write_shard(tmp, rank, &m, &o, mine, recs, len, e);
    optim_free(&o);
    model_free(&m);
    return rc;
}

int ckpt_reshard(const char *src_path, int dp, int tp, int pp, int zero, const char *out_root,
                 char *written, size_t written_len, Err *e)
{
    char src[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(src_path, src, sizeof src, e) || ckpt_load_meta(src, &meta, e)) return -1;
    int n = model_n_blocks(&meta.model);
    if (dp < 1 || tp < 1 || pp < 1 || zero < 0 || zero > 2)
        return err_set(e, "--dp %d --tp %d --pp %d --zero %d: sizes must be >= 1, zero 0..2", dp, tp, pp, zero);
    if (pp > n) return err_set(e, "--pp %d is more stages than the model's %d blocks", pp, n);
    /* every target rank is one file written (and one full read of the
     * source): refuse a layout no job would run before starting on it */
    long all = (long)dp * tp * pp;
    if (all > RESHARD_MAX_RANKS)
        return err_set(e, "--dp %d x --tp %d x --pp %d = %ld ranks: more than the %d an offline "
                          "reshard writes; reshard on the fly with `train --resume` instead",
                       dp, tp, pp, all, RESHARD_MAX_RANKS);
    if ((size_t)dp > cost_param_count(&meta.model))
        return err_set(e, "--dp %d: more data-parallel ranks than the model has parameters", dp);
    int ranks = (int)all;
    int *first = calloc(pp + 1, sizeof *first);
    double *cost = calloc(n, sizeof *cost);
    uint8_t **recs = calloc(ranks, sizeof *recs);
    size_t *lens = calloc(ranks, sizeof *lens);
    int rc = first && cost && recs && lens ? 0 : err_set(e, "out of memory");
    if (!rc) {
        model_block_costs(&meta.model, cost);
        rc = balance_stages(cost, n, pp, first) ? err_set(e, "cannot split into %d stages", pp) : 0;
    }
    char tmp[PATH_BUF];
    if (!rc) rc = ckpt_begin(out_root, meta.step, tmp, sizeof tmp, e);
    for (int r = 0; !rc && r < ranks; r++)
        rc = write_target_rank(src, &meta, (MeshDims){dp, tp, pp}, r, first, zero, tmp, &recs[r],
                               &lens[r], e);
    meta.dp = dp;
    meta.tp = tp;
    meta.pp = pp;
    meta.zero = zero;
    if (!rc) rc = ckpt_finish(out_root, tmp, &meta, recs, lens, ranks, written, written_len, e);
    else remove_tree(tmp);
    for (int r = 0; recs && r < ranks; r++) free(recs[r]);
    free(recs);
    free(lens);
    free(first);
    free(cost);
    return rc;
}
