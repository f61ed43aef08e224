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
/* What --overwrite may replace: a directory itself (never through a
 * symbolic link) that holds only what a run writes (metrics.jsonl,
 * config.json, ckpt/ of checkpoints, zo/journal.bin, ...), or only what a
 * checkpoint root holds (step_N/, latest): anything else is someone's data,
 * named in e, and refused. run_dir_replace checks it first. */
int run_dir_check_replaceable(const char *dir, Err *e);
int ckpt_root_check_replaceable(const char *dir, Err *e);
/* Whether path lies inside dir (both existing, links resolved). */
int path_lies_inside(const char *path, const char *dir);
/* The --out of a command that writes a checkpoint root (ckpt import,
 * reshard, replay): a new or empty directory goes ahead; an existing one
 * is refused unless overwrite, and then only when it holds nothing but
 * checkpoints and neither holds nor lies in the source the command reads; it is moved aside (its
 * name in aside, "" when nothing was) until ckpt_root_settle: removed once
 * the new root is written, put back when writing failed. */
int ckpt_root_claim(const char *root, int overwrite, const char *source, char *aside, size_t n,
                    Err *e);
void ckpt_root_settle(const char *root, const char *aside, int failed);

#endif
