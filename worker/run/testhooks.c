#include "worker/run/testhooks.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The hook is set for this rank and step, on a job's first attempt. */
static int fires(const char *name, int rank, long step)
{
    const char *v = getenv(name), *attempt = getenv("MPITRAIN_RESTART_COUNT");
    int r;
    long s;
    if (!v || (attempt && atoi(attempt) != 0) || sscanf(v, "%d,%ld", &r, &s) != 2) return 0;
    return r == rank && s == step;
}

static void flip_bit(int rank, long step, float *params)
{
    if (!fires("MPITRAIN_TEST_FLIP_BIT", rank, step)) return;
    uint32_t bits;
    memcpy(&bits, &params[0], 4);
    bits ^= 1u;
    memcpy(&params[0], &bits, 4);
}

static void say_fires(const char *name, int rank, long step)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "mpitrain: test hook %s fires on rank %d at step %ld (t=%.3f)\n", name, rank,
            step, ts.tv_sec + ts.tv_nsec * 1e-9);
}

/* Polls the flag rather than pause(): a signal that lands just before the
 * wait would leave pause() waiting for ever. */
static void wait_stop(const volatile sig_atomic_t *stop, int rank, long step)
{
    if (!stop || !fires("MPITRAIN_TEST_WAIT_STOP", rank, step)) return;
    say_fires("MPITRAIN_TEST_WAIT_STOP", rank, step);
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (!*stop) nanosleep(&tick, NULL);
}

static void testhook(const char *name, int rank, long step)
{
    if (!fires(name, rank, step)) return;
    say_fires(name, rank, step);
    if (!strcmp(name, "MPITRAIN_TEST_HANG"))
        for (;;) pause();
    /* frozen as by `kill -STOP`, until someone sends SIGCONT */
    if (!strcmp(name, "MPITRAIN_TEST_SIGSTOP")) {
        raise(SIGSTOP);
        return;
    }
    kill(getpid(), SIGKILL);
}

static void die_in_save(int rank, long step) { testhook("MPITRAIN_TEST_DIE_IN_SAVE", rank, step); }

static void die_after_save(int rank, long step)
{
    testhook("MPITRAIN_TEST_DIE_AFTER_SAVE", rank, step);
}

/* The order a step's faults are tried in: only one fires per rank and step
 * in any test, so the order is the one the tests were written against. */
static void before_step(int rank, long step, const volatile sig_atomic_t *stop)
{
    testhook("MPITRAIN_TEST_KILL", rank, step);
    testhook("MPITRAIN_TEST_HANG", rank, step);
    testhook("MPITRAIN_TEST_SIGSTOP", rank, step);
    wait_stop(stop, rank, step);
}

static const char *const NAMES[] = {
    "MPITRAIN_TEST_KILL",          "MPITRAIN_TEST_HANG",      "MPITRAIN_TEST_SIGSTOP",
    "MPITRAIN_TEST_WAIT_STOP",     "MPITRAIN_TEST_FLIP_BIT",  "MPITRAIN_TEST_DIE_IN_SAVE",
    "MPITRAIN_TEST_DIE_AFTER_SAVE",
};

const StepHooks *testhooks_from_env(void)
{
    static const CkptSaveHooks SAVE = {die_in_save, die_after_save};
    static const StepHooks HOOKS = {before_step, flip_bit, &SAVE};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (getenv(NAMES[i])) return &HOOKS;
    return NULL;
}
