#ifndef MPITRAIN_TIMELINE_H
#define MPITRAIN_TIMELINE_H
/* --trace FILE: every rank's spans as Chrome trace-event JSON (loads in
 * Perfetto and chrome://tracing), one process track per rank. */
#include "comm/trace.h"

/* Collective over world; rank 0 writes path atomically. */
int timeline_write(Group *world, const char *path, Err *e);

#endif
