#ifndef MPITRAIN_ZO_REPLAY_H
#define MPITRAIN_ZO_REPLAY_H
#include <stddef.h>
#include "base/err.h"

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
