#ifndef MPITRAIN_TRAIN_ARGS_H
#define MPITRAIN_TRAIN_ARGS_H
/* What `mpitrain train` does to its options after they are parsed, shared by
 * the command (cmd_train.c) and the library API (api.c) so the two cannot
 * drift apart. */
#include "worker/config/config.h"

/* Mirrors the choice indices into the model/optimizer kinds and derives the
 * fields no option sets directly (total steps, bucket bytes, min-lr clamp). */
void train_args_finish(TrainConfig *c);

#endif
