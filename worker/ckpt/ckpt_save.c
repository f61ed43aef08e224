#include "worker/ckpt/ckpt_save.h"

#include <stdint.h>
#include <stdlib.h>

/* Same verdict on every rank; rank 0's e names the first failing rank. */
static int agree(Group *g, int rc, Err *e)
{
    Err mine = *e;
    return comm_agree(g, rc, &mine, e) ? -1 : 0;
}

/* Rank 0: every rank's records (gathered back to back in all) into the
 * manifest, then the step published, best and pruning. */
static int finish_on_root(Group *g, const CkptSaveTo *to, const char *tmp, const CkptMeta *meta,
                          void *all, const size_t *lens, char *out_dir, size_t out_len, Err *e)
{
    int n = group_size(g);
    uint8_t **parts = calloc(n, sizeof *parts);
    if (!parts) return err_set(e, "out of memory for the manifest");
    size_t off = 0;
    for (int i = 0; i < n; i++, off += lens[i - 1]) parts[i] = (uint8_t *)all + off;
    int rc = ckpt_finish(to->root, tmp, meta, parts, lens, n, out_dir, out_len, e);
    free(parts);
    if (!rc && to->best) rc = ckpt_set_best(to->root, out_dir, to->best_val_loss, e);
    if (!rc) rc = ckpt_prune(to->root, to->keep, e);
    return rc;
}

/* The parts, and with --lora-save-base this rank's share of the frozen
 * base as base/ records after them. */
static int write_with_base(const char *tmp, int rank, const Model *m, const CkptPart *parts,
                           int n_parts, const CkptBaseRef *base, uint8_t **recs, size_t *len,
                           Err *e)
{
    if (base->share.hi <= base->share.lo)
        return ckpt_write_parts(tmp, rank, m, parts, n_parts, recs, len, e);
    CkptPart *all = malloc((size_t)(n_parts + 1) * sizeof *all);
    if (!all) return err_set(e, "out of memory");
    for (int i = 0; i < n_parts; i++) all[i] = parts[i];
    all[n_parts] = (CkptPart){CKPT_BASE_KIND, m->base.params, 0, base->share};
    int rc = ckpt_write_parts(tmp, rank, m, all, n_parts + 1, recs, len, e);
    free(all);
    return rc;
}

int ckpt_save_group(Group *g, const CkptSaveTo *to, const Model *m, const CkptPart *parts,
                    int n_parts, const CkptMeta *meta, char *out_dir, size_t out_len, Err *e)
{
    const int rank = group_rank(g), root = rank == 0;
    char tmp[PATH_BUF];
    int rc = path_fmt(tmp, sizeof tmp, e, "%s/.tmp.step_%08lld", to->root, (long long)meta->step);
    if (!rc && root) rc = ckpt_begin(to->root, meta->step, tmp, sizeof tmp, e);
    if (agree(g, rc, e)) return -1;
    uint8_t *recs = NULL;
    size_t len = 0;
    rc = write_with_base(tmp, rank, m, parts, n_parts, &meta->base, &recs, &len, e);
    if (to->hooks && to->hooks->parts_written) to->hooks->parts_written(rank, (long)meta->step);
    if (agree(g, rc, e)) {
        free(recs);
        return -1;
    }
    size_t *lens = root ? calloc(group_size(g), sizeof *lens) : NULL;
    rc = root && !lens ? err_set(e, "out of memory for the manifest") : 0;
    if (agree(g, rc, e)) {
        free(recs);
        return -1;
    }
    void *all = NULL;
    coll_gatherv_bytes(g, recs, len, &all, lens, 0);
    free(recs);
    rc = root ? finish_on_root(g, to, tmp, meta, all, lens, out_dir, out_len, e) : 0;
    free(all);
    free(lens);
    rc = agree(g, rc, e);
    if (!rc && to->hooks && to->hooks->published) to->hooks->published(rank, (long)meta->step);
    return rc;
}
