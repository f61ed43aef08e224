#ifndef MPITRAIN_TIMELINE_H
#define MPITRAIN_TIMELINE_H
/* --trace FILE: every rank's spans as Chrome trace-event JSON (loads in
 * Perfetto and chrome://tracing), one process track per rank. */
#include "comm/trace/trace.h"

/* Collective over world: every rank closes its spans, rank 0 merges their
 * spill files into path (atomically) and removes them. */
int timeline_write(Group *world, const char *path, Err *e);

#endif
