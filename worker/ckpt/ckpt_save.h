#ifndef MPITRAIN_CKPT_SAVE_H
#define MPITRAIN_CKPT_SAVE_H
/* The distributed save: every rank of a group writes its parts of one
 * checkpoint in parallel (shared file system), rank 0 writes the manifest
 * last and publishes the step (latest, best), then prunes old ones. */
#include <stddef.h>
#include "comm/mpi/comm.h"
#include "worker/ckpt/ckpt.h"

/* Optional observers of a save, each called on every rank with its rank in
 * the group and the step (fault injection: worker/run/testhooks.c, through
 * the loop's StepHooks). */
typedef struct {
    /* the rank's parts are written, the step is not published yet */
    void (*parts_written)(int rank, long step);
    /* the step is published on every rank (the job is not over yet) */
    void (*published)(int rank, long step);
} CkptSaveHooks;

typedef struct {
    const char *root;           /* the checkpoint root (<out>/ckpt) */
    int keep;                   /* --keep-ckpts: the newest to keep, 0 = all */
    int best;                   /* --keep-best: <root>/best names this step */
    double best_val_loss;       /* ... with this validation loss */
    const CkptSaveHooks *hooks; /* NULL: none */
} CkptSaveTo;

/* Collective over g: this rank's parts of the model m (CkptPart: its
 * share of the flat buffers) into <to->root>/.tmp.step_N/rank_<rank>.bin,
 * then on rank 0 the manifest of meta (rank 0's is the one recorded) and
 * every rank's records, the rename into place, latest, best and pruning.
 * Every rank returns the same verdict; rank 0's e says why, and its
 * out_dir (not NULL) is the published step directory. */
int ckpt_save_group(Group *g, const CkptSaveTo *to, const Model *m, const CkptPart *parts,
                    int n_parts, const CkptMeta *meta, char *out_dir, size_t out_len, Err *e);

#endif
