#ifndef MPITRAIN_RUNDIR_H
#define MPITRAIN_RUNDIR_H
/* A run directory belongs to one run at a time: rank 0 holds an exclusive
 * flock on <dir>/.lock (its pid written inside, for the message a second
 * run gets) for as long as the run lasts. The kernel drops the lock when
 * the process ends, however it ends. */
#include <stddef.h>
#include "base/err.h"

typedef struct {
    int fd;
    int held;
} RunLock;

/* Takes dir's lock (dir must exist); refused, naming dir and the holder's
 * pid, while another process holds it. */
int run_dir_lock(const char *dir, RunLock *l, Err *e);
void run_dir_unlock(RunLock *l);
/* --overwrite: replaces dir by an empty, locked run directory. The old one
 * is renamed aside (to dir.overwritten-<time>-<pid>) whole, and only then
 * removed, so it is never half deleted: when removing fails, kept names
 * where it still lies ("" when it is gone). */
int run_dir_replace(const char *dir, RunLock *l, char *kept, size_t kept_len, Err *e);

#endif
