#include "worker/method/zo/replay.h"

#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/whole.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo.h"
#include "worker/method/zo/zo_params.h"

/* Appends "; what: journal X, base Y" to the list of differences. */
static void differs(char *out, size_t n, const char *what, unsigned long long jv,
                    unsigned long long bv)
{
    size_t used = strlen(out);
    snprintf(out + used, n - used, "%s%s: journal %llu, base %llu", used ? "; " : "", what, jv, bv);
}

/* A journal replays only onto the run it was written for: the same seed
 * (its perturbations), model size and, for a ZO base, samples per step. */
static int check_journal_matches(const char *path, const Journal *j, const CkptMeta *meta,
                                 const Model *m, Err *e)
{
    char diff[512] = "";
    if (j->h.seed != meta->seed) differs(diff, sizeof diff, "seed", j->h.seed, meta->seed);
    if (j->h.global_params != m->global_params)
        differs(diff, sizeof diff, "parameters", j->h.global_params, m->global_params);
    if (meta->optim.kind == OPT_ZO && j->h.samples != (uint32_t)meta->zo_samples)
        differs(diff, sizeof diff, "zo samples", j->h.samples,
                (unsigned long long)meta->zo_samples);
    if (!diff[0]) return 0;
    return err_set(e, "%s does not belong to the base checkpoint (%s): replay it onto a "
                      "checkpoint of the run that wrote it", path, diff);
}

/* Applies the journal's steps >= *step, which must follow on without gaps. */
static int apply_journal(Journal *j, Model *m, const uint8_t *active, long *step, Err *e)
{
    JournalRecord r;
    int rc;
    while ((rc = journal_next(j, &r, e)) == 1) {
        if (r.type != JREC_STEP || (long)r.step < *step) continue;
        if ((long)r.step != *step)
            return err_set(e, "%s: record %ld is step %u, but step %ld comes next: the journal "
                              "has a gap", j->path, j->index, r.step, *step);
        if (zo_step_update(m, m->params, active, j->h.seed, r.step, r.codes, (int)r.machines,
                           (int)r.samples, r.lr, j->h.scale, j->h.weight_decay) < 0)
            return err_set(e, "%s: out of memory for the codes of step %u", j->path, r.step);
        (*step)++;
    }
    return rc;
}

/* The --zo-params mask the journal was written with: spec must be the run's
 * (its id is in the journal header). NULL = every tensor. */
static int replay_mask(const Journal *j, const Model *m, const char *spec, uint8_t **active,
                       Err *e)
{
    uint64_t id;
    *active = NULL;
    if (zo_params_id(&m->cfg, spec, &id, e) ||
        zo_params_check_journal(j->path, j->params_id, id, spec, e))
        return -1;
    if (id == ZO_PARAMS_ALL_ID) return 0;
    *active = calloc(m->n_tensors, 1);
    if (!*active) return err_set(e, "out of memory");
    return zo_params_select(m, spec, *active, e);
}

int zo_replay(const char *base, const char *journal, const char *zo_params, const char *out_root,
              long *final_step, char *written, size_t written_len, char *warning,
              size_t warning_len, Err *e)
{
    char dir[PATH_LEN];
    CkptMeta meta;
    if (ckpt_resolve(base, dir, sizeof dir, e) || ckpt_load_meta(dir, &meta, e)) return -1;
    /* the weights alone: replay runs no forward pass and keeps no optimizer state */
    Model m;
    CkptWhole how = {.max_batch = 1, .forward_only = 1, .dir_as = "base"};
    if (ckpt_load_whole(dir, &meta.model, &how, &m, e)) return -1;
    Journal j = {0};
    int rc = journal_open_read(&j, journal, e);
    if (!rc) rc = check_journal_matches(journal, &j, &meta, &m, e);
    uint8_t *active = NULL;
    if (!rc) rc = replay_mask(&j, &m, zo_params, &active, e);
    /* a ZO checkpoint continues its own run at its step; any other is the
     * weights a ZO run started from (--init-from): its journal from step 0 */
    long step = meta.optim.kind == OPT_ZO ? (long)meta.step : 0;
    if (!rc) rc = apply_journal(&j, &m, active, &step, e);
    free(active);
    if (warning_len) warning[0] = 0;
    if (!rc && j.torn_bytes && warning_len) journal_torn_message(&j, warning, warning_len);
    if (!rc) {
        meta.step = step;
        meta.data_pos = (uint64_t)step;
        meta.optim.kind = OPT_ZO; /* an --init-from base becomes the ZO run it started */
        meta.zo_eps = j.h.eps;
        meta.zo_scale = j.h.scale;
        meta.zo_samples = (int)j.h.samples;
        meta.dp = meta.tp = meta.pp = 1;
        meta.zero = 0;
        rc = ckpt_save(out_root, &meta, &m, NULL, written, written_len, e);
    }
    *final_step = step;
    journal_close(&j);
    model_free(&m);
    return rc;
}
