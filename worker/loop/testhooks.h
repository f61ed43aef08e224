#ifndef MPITRAIN_TESTHOOKS_H
#define MPITRAIN_TESTHOOKS_H
/* Fault injection for the recovery tests, driven by environment variables
 * of the form "rank,step", active only on a job's first attempt
 * (MPITRAIN_RESTART_COUNT unset or 0) so a restarted job runs clean:
 *   MPITRAIN_TEST_KILL         the rank SIGKILLs itself before that step
 *   MPITRAIN_TEST_HANG         the rank sleeps forever before that step
 *   MPITRAIN_TEST_SIGSTOP      the rank stops itself (SIGSTOP) before that step,
 *                              until a SIGCONT from outside
 *   MPITRAIN_TEST_DIE_IN_SAVE  the rank dies after writing its checkpoint
 *                              shard of that step, before it is published
 *   MPITRAIN_TEST_DIE_AFTER_SAVE  the rank dies once the checkpoint of that
 *                              step is published (the final one: a finished run)
 *   MPITRAIN_TEST_FLIP_BIT     the rank flips the lowest bit of its first
 *                              weight after that step (desync detection)
 *   MPITRAIN_TEST_WAIT_STOP    the rank waits before that step until a stop
 *                              signal has been caught, so a test's signal
 *                              lands at a known step however fast steps are */
#include <signal.h>
#include <stddef.h>
#include "worker/ckpt/ckpt_save.h"
void testhook(const char *name, int rank, long step);
void testhook_wait_stop(const volatile sig_atomic_t *stop, int rank, long step);
void testhook_flip_bit(float *params, int rank, long step);
/* The save's observers that fire MPITRAIN_TEST_DIE_IN_SAVE and
 * MPITRAIN_TEST_DIE_AFTER_SAVE (the save itself names no hook). */
const CkptSaveHooks *testhooks_ckpt_save(void);

#endif
