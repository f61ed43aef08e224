#ifndef MPITRAIN_ELASTIC_H
#define MPITRAIN_ELASTIC_H
/* Elastic DiLoCo (docs/elastic.md): DiLoCo's outer rounds among machines
 * that come and go, each its own mpitrain process on its own libfabric
 * endpoint (comm/fabric/fabric.h), with the swarm's wire format
 * (worker/method/swarm/msg.h) and its roster rules: one keeper, the lowest
 * slot of the roster, decides who is in each round.
 *
 * A round k, after every machine's inner steps:
 *  - READY(k): each member tells the keeper how many inner steps it took
 *    and the hash of the outer state it started from;
 *  - ROUND(k): once every member is ready, or --swarm-deadline after its
 *    own READY with a majority in, the keeper names the contributors (with
 *    their inner steps as weights) and the roster;
 *  - the contributors sum directly, no star: contributor i owns segment i
 *    of the weights; every contributor sends each owner its segment of the
 *    pseudo-gradient (PIECE), each owner takes the weighted mean in slot
 *    order and sends it to every machine of the roster (MEAN), and a
 *    contributor that holds the whole mean says HAVE;
 *  - COMMIT(k): with every contributor's HAVE in, the keeper commits the
 *    round and every machine takes the outer step with the same bits; a
 *    contributor that vanishes mid-exchange makes the round void instead:
 *    nobody applies it, every machine keeps its progress for the next.
 * A member that misses --swarm-misses deadlines in a row is dropped. A
 * newcomer says HELLO and receives the outer state (global weights and
 * momentum) in pieces with its hash, and counts from the first round its
 * READY reaches the keeper in time. A keeper that leaves (SIGTERM) hands
 * over to the next lowest slot at once. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/wire.h"
#include "worker/method/swarm/msg.h"

typedef struct Elastic Elastic;

typedef struct {
    const char *provider;    /* "tcp" or "shm" */
    const char *listen;      /* keeper: where to listen; joiner: its own bind ("" = any) */
    const char *join;        /* the keeper's address; "" = this machine starts the run */
    double deadline_s;
    int misses;
    int wait_for;            /* keeper: machines ready before it decides round 0 */
    uint32_t hold_round;     /* tests: the keeper decides this round (1-based) only */
    int hold_for;            /* ... once this many machines are ready; 0 = never */
    uint32_t die_round;      /* tests: the keeper dies (SIGKILL) right after deciding this round */
    ZoIdentity ident;        /* seed, global_params, base_id (the frozen base): a joiner's must match */
    const char *config_text; /* what CONFIG sends a newcomer (swarm_config_text) */
    WireFormat wire;
    size_t n;                /* floats of the outer state's weights */
    uint32_t fragments;      /* Streaming DiLoCo: round k sends fragment k % fragments (elastic_fragment) */
    /* a stop was asked (SIGTERM): the keeper waits no longer for
     * --swarm-wait machines or a test's hold (may be NULL) */
    const volatile sig_atomic_t *stop;
} ElasticOptions;

/* A round as it ended on this machine. Points into the Elastic; valid
 * until the next call. */
typedef struct {
    uint32_t round;
    int committed;     /* 1: mean is the round's weighted mean; 0: void */
    int mine_counted;  /* this machine's pseudo-gradient is in it */
    uint32_t contributors, machines, epoch;
    const uint32_t *slots, *weights; /* the contributors, by slot */
    const float *mean; /* of the values [from, to): the round's fragment */
    size_t from, to;
    uint64_t chain;    /* the run's history after this round */
    int rejoined;      /* this machine was dropped and has rejoined: the outer
                        * state is the run's, the round elastic_round's */
    int ended;         /* ... or, dropped, learnt that the run has ended: it
                        * ends too, on the outer state it had */
} ElasticRound;

typedef struct {
    uint64_t bytes_sent, bytes_recv;
    uint64_t round_bytes_sent;  /* the last round's exchange, this machine */
    double round_exchange_s;    /* ... from its decision to its end */
    double join_s;              /* a joiner: HELLO to the whole state */
    uint64_t join_bytes;        /* ... the state's bytes received */
} ElasticStats;

/* The values round k synchronises, [*lo, *hi) of n: fragment k % fragments,
 * whole blocks of QUANT_BLOCK values (so int8/int4 blocks fall where a
 * whole-model encoding puts them), contiguous in the model's flat order. */
void elastic_fragment(size_t n, uint32_t fragments, uint32_t k, size_t *lo, size_t *hi);

/* Opens the endpoint. global and mom (o->n floats each) are the outer
 * state, which the caller owns and updates at each committed round. The
 * keeper starts at *round; a joiner says HELLO, receives the run's state
 * into global and mom, and *round is the round it starts in. */
int elastic_open(Elastic **out, const ElasticOptions *o, float *global, float *mom,
                 uint32_t *round, Err *e);
/* Between inner steps: answers newcomers, takes what arrived. 1 = the
 * current round was decided without this machine (it is late): skip to the
 * round's end; 2 = it was dropped and has rejoined (see ElasticRound's
 * rejoined); 3 = it was dropped and the run has ended without it (the
 * keeper said so): skip to the end; 0 = go on; -1 = an error (stopped,
 * refused, diverged). */
int elastic_poll(Elastic *el, Err *e);
/* The round this machine is in (0-based). */
uint32_t elastic_round(const Elastic *el);
/* The end of this machine's round: delta = global - params (o->n floats,
 * of which the round's fragment is sent as this machine's pseudo-gradient
 * when it is a contributor), inner_steps its weight. Returns when the round is committed or void. */
int elastic_outer(Elastic *el, const float *delta, uint32_t inner_steps, ElasticRound *r, Err *e);
/* The same in two halves, for --diloco-overlap 1: begin sends READY and
 * returns; the exchange then goes on inside elastic_poll between the next
 * round's inner steps; end waits for what is left of it. delta must stay
 * as it is until end returns. */
int elastic_begin(Elastic *el, const float *delta, uint32_t inner_steps, Err *e);
int elastic_end(Elastic *el, ElasticRound *r, Err *e);
/* A round begun and not ended. */
int elastic_in_flight(const Elastic *el);
/* Moves a round in flight on without waiting: what has arrived, what the
 * fabric has room for. For the inner step's own hooks (the tcp provider
 * moves bytes only inside fabric calls, so a round polled once per step
 * would use a fraction of a slow link). An error waits for elastic_poll. */
void elastic_progress(Elastic *el);
/* Says goodbye now (a member's LEAVE, a keeper's hand-over), before this
 * machine's last checkpoint. Once; elastic_close does it unless done. */
void elastic_leave(Elastic *el);
void elastic_close(Elastic *el, int done);
void elastic_stats(const Elastic *el, ElasticStats *s);
/* The error feedback (NULL for fp32): this machine's, and of the sums of
 * the segments it owned, o->n floats each (a checkpoint's outer_err and
 * outer_serr). */
float *elastic_send_err(Elastic *el);
float *elastic_sum_err(Elastic *el);
uint32_t elastic_slot(const Elastic *el);
/* A line for the log since the last call, or NULL. */
const char *elastic_next_event(Elastic *el);

#endif
