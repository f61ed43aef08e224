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
#include "worker/loop/trainer.h"

/* The loop's StepHooks that fire them, when the environment names one of
 * them; NULL in a real run (the loop then calls nothing). */
const StepHooks *testhooks_from_env(void);

#endif
