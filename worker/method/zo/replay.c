#include "worker/method/zo/replay.h"

#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "worker/ckpt/ckpt.h"
#include "worker/method/zo/identity.h"
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
 * (its perturbations), model size and, for a ZO base, samples per step.
 * The message names every field that differs. */
static int check_journal_matches(const char *path, const Journal *j, const CkptMeta *meta,
                                 const Model *m, Err *e)
{
    const ZoIdentity base = {.seed = meta->cfg.seed, .global_params = m->global_params,
                             .samples = (uint32_t)meta->cfg.zo_samples};
    const unsigned fields =
        ZO_ID_SEED | ZO_ID_MODEL | (meta->cfg.optim.kind == OPT_ZO ? ZO_ID_SAMPLES : 0u);
    const unsigned d = zo_identity_diff(&j->h, &base, fields);
    if (!d) return 0;
    char diff[512] = "";
    if (d & ZO_ID_SEED) differs(diff, sizeof diff, "seed", j->h.seed, base.seed);
    if (d & ZO_ID_MODEL)
        differs(diff, sizeof diff, "parameters", j->h.global_params, base.global_params);
    if (d & ZO_ID_SAMPLES)
        differs(diff, sizeof diff, "zo samples", j->h.samples,
                (unsigned long long)meta->cfg.zo_samples);
    return err_set(e, "%s does not belong to the base checkpoint (%s): replay it onto a "
                      "checkpoint of the run that wrote it", path, diff);
}

/* A STEP record: applied when it is step r->next; earlier steps are passed
 * over, a later one is a gap. */
static int replay_step(const Journal *j, JournalReplay *r, const JournalRecord *rec, Err *e)
{
    if ((long)rec->step < r->next) return 0;
    if ((long)rec->step != r->next)
        return err_set(e, "%s: record %ld is step %u, but step %ld comes next: the journal "
                          "has a gap", j->path, j->index, rec->step, r->next);
    if (zo_step_update_sparse(r->model, r->model->params, r->active, j->h.seed, rec->step,
                              rec->codes, (int)rec->machines, (int)rec->samples, rec->lr,
                              j->h.scale, j->h.weight_decay, j->h.sparse, NULL) < 0)
        return err_set(e, "%s: out of memory for the codes of step %u", j->path, rec->step);
    r->next++;
    return r->applied ? r->applied(r->ctx, rec, e) : 0;
}

int journal_replay(Journal *j, JournalReplay *r, Err *e)
{
    JournalRecord rec;
    int rc;
    while ((rc = journal_next(j, &rec, e)) == 1) {
        if (rec.type == JREC_ROSTER) {
            if (r->roster) r->roster(r->ctx, &rec);
        } else if (r->model && replay_step(j, r, &rec, e)) {
            return -1;
        }
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
        zo_params_check_journal(j->path, j->h.params_id, id, spec, e))
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
    if (ckpt_load_whole(dir, &meta.cfg.model, &how, &m, e)) return -1;
    Journal j = {0};
    int rc = journal_open_read(&j, journal, e);
    if (!rc) rc = check_journal_matches(journal, &j, &meta, &m, e);
    uint8_t *active = NULL;
    if (!rc) rc = replay_mask(&j, &m, zo_params, &active, e);
    /* a ZO checkpoint continues its own run at its step; any other is the
     * weights a ZO run started from (--init-from): its journal from step 0 */
    JournalReplay r = {.model = &m, .active = active,
                       .next = meta.cfg.optim.kind == OPT_ZO ? (long)meta.step : 0};
    if (!rc) rc = journal_replay(&j, &r, e);
    const long step = r.next;
    free(active);
    if (warning_len) warning[0] = 0;
    if (!rc && j.torn_bytes && warning_len) journal_torn_message(&j, warning, warning_len);
    if (!rc) {
        meta.step = step;
        meta.data_pos = (uint64_t)step;
        meta.cfg.optim.kind = OPT_ZO; /* an --init-from base becomes the ZO run it started */
        meta.cfg.zo_eps = j.h.eps;
        meta.cfg.zo_scale = j.h.scale;
        meta.cfg.zo_samples = (int)j.h.samples;
        meta.dp = meta.tp = meta.pp = 1;
        meta.zero = 0;
        rc = ckpt_save(out_root, &meta, &m, NULL, written, written_len, e);
    }
    *final_step = step;
    journal_close(&j);
    model_free(&m);
    return rc;
}
