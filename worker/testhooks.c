#include "worker/testhooks.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void testhook(const char *name, int rank, long step)
{
    const char *v = getenv(name), *attempt = getenv("MPITRAIN_RESTART_COUNT");
    int r;
    long s;
    if (!v || (attempt && atoi(attempt) != 0) || sscanf(v, "%d,%ld", &r, &s) != 2) return;
    if (r != rank || s != step) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "mpitrain: test hook %s fires on rank %d at step %ld (t=%.3f)\n", name, rank,
            step, ts.tv_sec + ts.tv_nsec * 1e-9);
    if (!strcmp(name, "MPITRAIN_TEST_HANG"))
        for (;;) pause();
    kill(getpid(), SIGKILL);
}
