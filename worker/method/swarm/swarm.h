#ifndef MPITRAIN_SWARM_H
#define MPITRAIN_SWARM_H
/* A ZO run whose machines come and go (docs/swarm.md). Each machine is one
 * mpitrain process with its own libfabric endpoint (comm/fabric/fabric.h); one of
 * them, the keeper, decides every step's code set and sends it to all, so
 * every machine applies the same set and holds the same bits.
 *
 *  - step t: every member sends CODES(t) to the keeper; the keeper waits
 *    for all members, or --swarm-deadline once its own codes are ready (a
 *    majority of the roster must be in), and sends DECIDE(t): the step's
 *    journal records (a ROSTER record when the roster changed, then the
 *    STEP record) and the roster changes. A member that missed
 *    --swarm-misses deadlines in a row is dropped.
 *  - join: CONFIG_REQ -> CONFIG (the run's settings), then HELLO (what
 *    journal the machine holds, as a step count and a chain hash) -> the
 *    journal records since, in rounds, until the machine is current ->
 *    WELCOME (its slot and the roster); its codes count from the first step
 *    they reach the keeper in time.
 *  - the keeper dies: a member that waits past its timeout takes the next
 *    keeper by one rule (the lowest live slot of the roster); the new
 *    keeper needs a majority of the roster, or the run stops on that side.
 *  - chain: every machine hashes its journal's records as they are
 *    written; DECIDE carries the keeper's chain, HELLO the joiner's, so
 *    two histories can never be merged silently.
 *
 * Only a machine's rank 0 runs a Swarm (a swarm machine is one process for
 * now). */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "worker/method/swarm/msg.h"

typedef struct Swarm Swarm;

typedef struct {
    const char *provider;    /* "tcp" or "shm" */
    const char *listen;      /* keeper: where to listen; joiner: its own bind ("" = any) */
    const char *join;        /* the keeper's address; "" = this machine starts the run */
    double deadline_s;
    int misses;
    int wait_for;            /* keeper: machines in all before the first step it decides */
    /* tests only (MPITRAIN_TEST_SWARM_HOLD=STEP,N): the keeper decides step
     * hold_step (1-based) only once N machines' codes are in, so a test can
     * order a death after joins however loaded the machine is; 0 = never */
    uint32_t hold_step;
    int hold_for;
    /* tests only (MPITRAIN_TEST_SWARM_NORELAY=STEP): this machine does not
     * pass step STEP's DECIDE (1-based) on, as a relay that died between
     * its codes and the decision; 0 = it always does */
    uint32_t no_relay_step;
    int check_every;         /* weight hashes compared every N steps; 0 = never */
    ZoIdentity ident;        /* the run's; a joiner's must match the keeper's */
    const char *config_text; /* what CONFIG sends a newcomer (swarm_config_text) */
    /* the journal this machine holds: its records (the bytes after the
     * header) and how many steps they make */
    const uint8_t *records;
    size_t records_len;
    uint32_t end_step;       /* the run's steps */
} SwarmOptions;

/* A step as decided: what every machine applies and journals. Points into
 * the Swarm; valid until the next call. */
typedef struct {
    uint32_t step, epoch, machines; /* epoch and roster size in force */
    uint32_t width, samples;        /* codes[width * samples], slot-major */
    float lr;
    const int8_t *codes;
    const uint8_t *records;         /* the step's journal bytes */
    size_t records_len;
    int mine_counted;               /* this machine's codes are in it */
    int caught_up;                  /* taken from the journal, not contributed */
} SwarmDecision;

typedef struct {
    uint64_t bytes_sent, bytes_recv;   /* all swarm messages so far */
    uint64_t steps_decided;            /* as keeper */
    uint64_t relayed;                  /* DECIDEs passed on down the relay tree */
    uint64_t step_bytes_sent, step_bytes_recv; /* the last step's */
} SwarmStats;

/* Opens the endpoint. The keeper listens; a joiner says hello at its first
 * step (swarm_step catches it up). Checks records parse. */
int swarm_open(Swarm **out, const SwarmOptions *o, Err *e);
/* The decision of step t is already known (this machine is catching up):
 * the caller need not compute codes. May exchange messages (a catch-up
 * round) to find out. */
int swarm_known(Swarm *sw, uint32_t step, Err *e);
/* Step t's agreed set. mine: this machine's samples codes (ignored when
 * the step is known); whash: its weight hash before the step (0 = not a
 * check step). Errors: refused, dropped for good, the majority lost, a
 * diverged chain or weight hash: the message says which and what to do. */
int swarm_step(Swarm *sw, uint32_t step, const int8_t *mine, float lr, uint64_t whash,
               SwarmDecision *d, Err *e);
/* Says goodbye now (a member's LEAVE, or a keeper handing over to the
 * next by the rule), before this machine's last checkpoint: the others go
 * on at once instead of waiting out the write. Once; swarm_close does it
 * if it was not done. */
void swarm_leave(Swarm *sw);
/* Leaves politely (swarm_leave) unless done (the run reached its last
 * step: nothing to say), then closes. */
void swarm_close(Swarm *sw, int done);
void swarm_stats(const Swarm *sw, SwarmStats *s);
uint32_t swarm_slot(const Swarm *sw);
const char *swarm_address(const Swarm *sw);
/* A line for the log since the last call ("machine 4 joined at step 20"),
 * or NULL. */
const char *swarm_next_event(Swarm *sw);

/* A newcomer's first question, on an endpoint of its own: the run's
 * settings (swarm_config_text) from the keeper at `keeper`, and the step
 * it is at. The text is malloc'ed. */
int swarm_fetch_config(const char *provider, const char *keeper, char **text, size_t *len,
                       uint32_t *step, Err *e);

#endif
