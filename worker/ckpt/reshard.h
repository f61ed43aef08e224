#ifndef MPITRAIN_RESHARD_H
#define MPITRAIN_RESHARD_H
#include <stddef.h>
#include "base/err.h"

/* ranks one offline reshard writes at most */
#define RESHARD_MAX_RANKS 4096

/* Rewrites the checkpoint at src as if it had been saved by a job of layout
 * dp x tp x pp with ZeRO stage `zero`: one data file per target rank holding
 * that rank's slice of the parameters and optimizer state. The tensors are
 * the same bits; only their slicing changes. Writes a checkpoint root at
 * out_root. */
int ckpt_reshard(const char *src, int dp, int tp, int pp, int zero, const char *out_root,
                 char *written, size_t written_len, Err *e);

#endif
