#ifndef MPITRAIN_ZO_REPLAY_H
#define MPITRAIN_ZO_REPLAY_H
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"
#include "worker/method/zo/journal.h"

/* How journal_replay goes through a journal. */
typedef struct {
    Model *model;          /* the weights its steps update; NULL: read them, apply none */
    const uint8_t *active; /* the --zo-params mask (NULL = every tensor) */
    long next;             /* in: the first step to apply (earlier ones are passed over);
                            * out: the step after the last one applied */
    void *ctx;
    /* each ROSTER record (may be NULL) */
    void (*roster)(void *ctx, const JournalRecord *r);
    /* after each step applied (may be NULL): nonzero stops the replay */
    int (*applied)(void *ctx, const JournalRecord *r, Err *e);
} JournalReplay;

/* The one replay loop, for `ckpt replay` (zo_replay) and a resumed run's
 * catch-up (worker/method/zo/zo_step.c): reads j to its end and applies
 * every STEP record from r->next on with training's own update
 * (zo_step_update), so the bits are training's. The steps must follow on
 * without a gap. A torn last record ends the journal (j->torn_bytes). */
int journal_replay(Journal *j, JournalReplay *r, Err *e);

/* Rebuilds the weights of a ZO run: the base checkpoint's weights plus every
 * journal step from the base's step on, applied with the same update code as
 * training (so the result is bit-identical). Writes a checkpoint of the
 * final step under out_root (a checkpoint root: out_root/step_N, latest).
 * zo_params: the run's --zo-params spec ("all" for every tensor); the
 * journal's header holds its id, so another selection is refused.
 * warning: "" or what the reader dropped (a torn last record), for the user. */
int zo_replay(const char *base, const char *journal, const char *zo_params, const char *out_root,
              long *final_step, char *written, size_t written_len, char *warning,
              size_t warning_len, Err *e);

#endif
