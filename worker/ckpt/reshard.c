#include "worker/ckpt/reshard.h"

#include <stdlib.h>
#include <string.h>
#include "models/cost.h"
#include "models/model.h"
#include "sharding/partition.h"
#include "sharding/stages.h"
#include "worker/ckpt/ckpt.h"
#include "base/fileio.h"

/* kinds of records besides the weights and moments a checkpoint may hold */
#define RESHARD_MAX_KINDS 64

static int is_model_kind(const char *k)
{
    return !strcmp(k, "param") || !strcmp(k, "opt_m") || !strcmp(k, "opt_v") ||
           !strcmp(k, CKPT_BASE_KIND);
}

/* A LoRA checkpoint that holds its frozen base keeps holding it: this
 * rank's dp share of its slice, as the trained weights are split. */
static int carry_base(const char *src, const Mpitrain__Manifest *mf, Model *m, MeshDims d,
                      MeshCoord c, CkptShardWriter *w, Err *e)
{
    if (!ckpt_has_kind(mf, CKPT_BASE_KIND) || !m->base.n_tensors) return 0;
    if (ckpt_load_weights_as(src, mf, CKPT_BASE_KIND, m, e)) return -1;
    CkptPart p = {CKPT_BASE_KIND, m->base.params, 0, split_even(m->base.n_params, d.dp, c.dp)};
    return ckpt_shard_add(w, m, &p, e);
}

/* Every other kind a strategy saved (DiLoCo's outer state, its replicas'
 * own weights and moments) is a whole flat copy of the shard: each is
 * carried into the target layout the same way, this rank's `mine` of it,
 * one kind at a time through one buffer. */
static int carry_kinds(const char *src, const Mpitrain__Manifest *mf, const Model *m, Range mine,
                       CkptShardWriter *w, Err *e)
{
    char (*kinds)[CKPT_KIND_LEN] = calloc(RESHARD_MAX_KINDS, sizeof *kinds);
    float *buf = model_calloc(m->n_params ? m->n_params : 1, sizeof(float));
    int rc = kinds && buf ? 0 : err_set(e, "out of memory resharding %s", src);
    int nk = rc ? 0 : ckpt_list_kinds(mf, kinds, RESHARD_MAX_KINDS);
    if (!rc && nk == RESHARD_MAX_KINDS)
        rc = err_set(e, "checkpoint %s: more than %d kinds of records", src, RESHARD_MAX_KINDS - 1);
    for (int i = 0; !rc && i < nk; i++) {
        if (is_model_kind(kinds[i])) continue;
        rc = ckpt_load_kind(src, mf, m, kinds[i], buf, 0, m->n_params, e);
        if (!rc) rc = ckpt_shard_add(w, m, &(CkptPart){kinds[i], buf, 0, mine}, e);
    }
    free(kinds);
    free(buf);
    return rc;
}

/* One target rank: load its shard from src (the loader maps any layout),
 * write it as that rank's file. */
static int write_target_rank(const char *src, const Mpitrain__Manifest *mf, const CkptMeta *meta,
                             MeshDims d, int rank, const int *first, int zero, const char *tmp,
                             uint8_t **recs, size_t *len, Err *e)
{
    MeshCoord c = mesh_coord_of(d, rank);
    ModelShard sh = {.tp_rank = c.tp, .tp_size = d.tp, .first_block = first[c.pp],
                      .last_block = first[c.pp + 1] - 1, .slots = 1};
    Model m;
    if (model_init_shard(&m, &meta->cfg.model, &sh, 1, meta->cfg.seed, e)) return -1;
    Range mine = split_even(m.n_params, d.dp, c.dp);
    Range opt_range = zero ? mine : (Range){0, m.n_params};
    Optimizer o;
    CkptPart parts[3];
    CkptShardWriter *w = NULL;
    int rc = optim_init(&o, &meta->cfg.optim, opt_range.lo, opt_range.hi, e);
    if (!rc) rc = ckpt_load_from(src, mf, &m, &o, e);
    if (!rc) rc = ckpt_shard_open(&w, tmp, rank, e);
    /* a weights-only source (an import) stays weights-only */
    int np = rc ? 0 : ckpt_model_parts(&m, ckpt_has_kind(mf, "opt_m") ? &o : NULL, mine, parts);
    for (int i = 0; !rc && i < np; i++) rc = ckpt_shard_add(w, &m, &parts[i], e);
    if (!rc) rc = carry_kinds(src, mf, &m, mine, w, e);
    if (!rc) rc = carry_base(src, mf, &m, d, c, w, e);
    Err ignored;
    if (w && ckpt_shard_close(w, !rc, recs, len, rc ? &ignored : e)) rc = -1;
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
    int n = model_n_blocks(&meta.cfg.model);
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
    if ((size_t)dp > cost_param_count(&meta.cfg.model))
        return err_set(e, "--dp %d: more data-parallel ranks than the model has parameters", dp);
    int ranks = (int)all;
    int *first = calloc(pp + 1, sizeof *first);
    double *cost = calloc(n, sizeof *cost);
    uint8_t **recs = calloc(ranks, sizeof *recs);
    size_t *lens = calloc(ranks, sizeof *lens);
    int rc = first && cost && recs && lens ? 0 : err_set(e, "out of memory");
    if (!rc) {
        model_block_costs(&meta.cfg.model, cost);
        rc = balance_stages(cost, n, pp, first) ? err_set(e, "cannot split into %d stages", pp) : 0;
    }
    char tmp[PATH_BUF] = "";
    Mpitrain__Manifest *mf = NULL;
    if (!rc) rc = ckpt_read_manifest(src, &mf, e);
    if (!rc) rc = ckpt_begin(out_root, meta.step, tmp, sizeof tmp, e);
    for (int r = 0; !rc && r < ranks; r++)
        rc = write_target_rank(src, mf, &meta, (MeshDims){dp, tp, pp}, r, first, zero, tmp,
                               &recs[r], &lens[r], e);
    if (mf) mpitrain__manifest__free_unpacked(mf, NULL);
    meta.dp = dp;
    meta.tp = tp;
    meta.pp = pp;
    meta.zero = zero;
    if (!rc) rc = ckpt_finish(out_root, tmp, &meta, recs, lens, ranks, written, written_len, e);
    else if (tmp[0]) remove_tree(tmp);
    for (int r = 0; recs && r < ranks; r++) free(recs[r]);
    free(recs);
    free(lens);
    free(first);
    free(cost);
    return rc;
}
