#ifndef MPITRAIN_SWARM_CONFIG_H
#define MPITRAIN_SWARM_CONFIG_H
/* The settings that make a swarm run one run (the model, the schedule, the
 * seed, the ZO protocol's or DiLoCo's constants, the roster's rules): the
 * keeper sends them to a newcomer as `name=value` lines, and the newcomer
 * takes each one it did not give itself; one it gave with another value is
 * refused by name.
 * Everything else (--data, --out, --threads, --batch, checkpoints, logs)
 * is the machine's own. */
#include <stddef.h>
#include "base/err.h"
#include "worker/config/config.h"

/* The run's settings as text; scale: the ZO scale in use (picked by the
 * warm-up when --zo-scale is 0). -1 when out is too small. */
int swarm_config_text(const TrainConfig *c, float scale, char *out, size_t n, Err *e);
/* Takes the run's settings into c (filled from this machine's flags);
 * from: the keeper's address, for the messages. */
int swarm_config_adopt(TrainConfig *c, const char *text, size_t len, const char *from, Err *e);

#endif
