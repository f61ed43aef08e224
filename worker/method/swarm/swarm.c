/* The swarm protocol (worker/method/swarm/swarm.h, docs/swarm.md): one keeper
 * decides, every machine applies the same journal records. */
#include "worker/method/swarm/swarm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "comm/fabric/fabric.h"
#include "worker/method/swarm/events.h"
#include "worker/method/zo/identity.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo.h"

#define ROUND_BYTES (1u << 20) /* journal bytes per catch-up round */
/* journal bytes per JOURNAL message: under the tcp provider's eager size
 * (rxm's 16 KB), where a message travels whole in the order sent; a larger
 * one was seen to arrive after the WELCOME sent behind it */
#define CHUNK_BYTES (12u << 10)
#define CONFIG_TIMEOUT_S 5.0   /* a newcomer's wait for the keeper, per try */
#define PENDING 64
/* seconds a welcomed machine may take to catch up and send its first codes */
#define FOLLOWER_PATIENCE_S 120.0
/* machines each relay of a DECIDE passes it on to: the keeper sends 2
 * DECIDEs a step however many machines there are, and a decision is
 * log2(N) hops from the last of them */
#define RELAY_FANOUT 2
/* decisions a machine can send again: a member whose relay died asks once
 * a deadline, and a keeper may decide a few steps meanwhile (it waits a
 * deadline at most for each) */
#define KEPT_DECISIONS 8

enum { FREE = 0, MEMBER, FOLLOWER };
enum { JOINING = 0, WELCOMED, KEEPING }; /* this machine's standing */

typedef struct {
    int state;
    char addr[SWARM_ADDR_LEN];
    FabricAddr fa;
    int have_fa;
    int misses;
    int leaving;  /* it said LEAVE: no longer counted, removed at the next decision */
    int ready;    /* a follower whose codes came (late): it is current, wait for it */
    double heard; /* a follower's last sign of life (monotonic seconds) */
    int suspect;  /* a keeper that went silent: still counted (it may be
                   * cut off, not gone) until a decision removes it */
} Peer;

/* Codes of one step from the machines that sent them. */
typedef struct {
    uint32_t step;
    int8_t *codes; /* SWARM_MAX_SLOTS x samples */
    uint8_t got[SWARM_MAX_SLOTS];
} Collect;

struct Swarm {
    SwarmOptions o;
    /* the address each slot's last machine had when it was dropped: its
     * later codes are answered with DROPPED (it missed the DECIDE that
     * dropped it: sent while it was frozen) */
    char gone[SWARM_MAX_SLOTS][SWARM_ADDR_LEN];
    char provider[16], listen[SWARM_ADDR_LEN], join[SWARM_ADDR_LEN];
    char *config_text;
    Fabric *fab;
    int standing;
    uint32_t slot, term, keeper, epoch, samples;
    Peer peers[SWARM_MAX_SLOTS];
    /* the ledger: every record this machine applied, as its journal holds them */
    uint8_t *led;
    size_t led_len, led_cap;
    size_t prefix_len; /* the records before step 0's (the journal's first ROSTER) */
    size_t unjournaled; /* ledger bytes from here on are not in this machine's file yet */
    size_t *step_end; /* ledger offset after step k's records */
    uint64_t *chain;  /* chain hash after step k */
    uint32_t next_step, cap_steps;
    /* catch-up: records received but not yet applied (steps qstep..) */
    uint8_t *queue;
    size_t q_len, q_head;
    int round_open;   /* a HELLO is out and its round has not ended */
    /* decisions that arrived before their step (a member behind) */
    uint8_t *pending[PENDING];
    size_t pending_len[PENDING];
    uint32_t term_start; /* the first step this machine decides as keeper */
    /* the roster changes of the last KEPT_DECISIONS steps, to resend a decision */
    SwarmEntry changes[KEPT_DECISIONS][SWARM_MAX_SLOTS];
    uint32_t n_changes[KEPT_DECISIONS], changes_step[KEPT_DECISIONS];
    Collect cur, ahead;
    uint8_t in[SWARM_MSG_MAX], out[SWARM_MSG_MAX];
    int8_t *dec_codes;
    /* this machine's own work per step (its codes, the update, its logs)
     * between two calls, a decaying maximum: the estimate of how long a
     * keeper computes before it can decide. Its waits are not in it (a
     * keeper that waited long for machines must not stretch the members'
     * patience, machine by machine differently) */
    double returned_at, step_work;
    SwarmStats st;
    uint64_t sent_mark, recv_mark;
    int left; /* its LEAVE is sent */
    /* the last DECIDE passed on down the relay tree: a copy sent again (a
     * keeper's, a hostile one's) is not passed on twice */
    uint32_t relayed_step, relayed_term, relayed_from;
    int relayed;
    EventRing events;
};

/* ---- small things ---------------------------------------------------- */

static void event(Swarm *sw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(Swarm *sw, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    events_vadd(&sw->events, fmt, ap);
    va_end(ap);
}

const char *swarm_next_event(Swarm *sw)
{
    return events_next(&sw->events);
}

static int peer_addr(Swarm *sw, uint32_t slot, FabricAddr *fa, Err *e)
{
    Peer *p = &sw->peers[slot];
    if (!p->have_fa) {
        if (fabric_peer(sw->fab, p->addr, &p->fa, e)) return -1;
        p->have_fa = 1;
    }
    *fa = p->fa;
    return 0;
}

static int send_to_addr(Swarm *sw, FabricAddr to, SwarmMsg *m, Err *e)
{
    m->slot = sw->slot;
    m->term = sw->term;
    size_t n = swarm_msg_encode(m, sw->out, sizeof sw->out, e);
    if (!n) return err_wrap(e, "internal error encoding a swarm %s", swarm_type_name(m->type));
    if (fabric_send(sw->fab, to, sw->out, n, e)) return -1;
    sw->st.bytes_sent += n;
    return 0;
}

/* To a slot; a peer whose address will not resolve is skipped (it is
 * about to be dropped), not an error of this machine. */
static int send_to(Swarm *sw, uint32_t slot, SwarmMsg *m, Err *e)
{
    FabricAddr fa;
    Err ignored;
    if (peer_addr(sw, slot, &fa, &ignored)) return 0;
    return send_to_addr(sw, fa, m, e);
}

static int send_text(Swarm *sw, FabricAddr to, int type, const char *text, Err *e)
{
    SwarmMsg m = {.type = (uint8_t)type};
    snprintf(m.text, sizeof m.text, "%s", text);
    return send_to_addr(sw, to, &m, e);
}

/* Passes a DECIDE on down its relay tree (docs/swarm.md "Relay tree"):
 * the blob lists the receivers' slots in tree order; the one at index i
 * sends the keeper's bytes, as they came, to those at RELAY_FANOUT*i +
 * RELAY_FANOUT .. (the keeper sends to 0 .. RELAY_FANOUT-1). Called as a
 * message arrives, not when its step is this machine's, so a relay behind
 * the others does not hold its subtree back. */
static int relay_on(Swarm *sw, const SwarmMsg *m, const uint8_t *raw, size_t len, Err *e)
{
    if (m->type != SW_DECIDE || !m->blob_len || m->step < sw->next_step ||
        m->step + 1 == sw->o.no_relay_step)
        return 0;
    if (sw->relayed && m->step == sw->relayed_step && m->term == sw->relayed_term &&
        m->slot == sw->relayed_from)
        return 0;
    uint32_t at = 0;
    while (at < m->blob_len && m->blob[at] != sw->slot) at++;
    if (at == m->blob_len) return 0;
    sw->relayed = 1;
    sw->relayed_step = m->step, sw->relayed_term = m->term, sw->relayed_from = m->slot;
    for (uint32_t c = RELAY_FANOUT * (at + 1); c < RELAY_FANOUT * (at + 2) && c < m->blob_len; c++) {
        FabricAddr fa;
        Err unreachable; /* a child not in this machine's roster asks the keeper itself */
        if (peer_addr(sw, m->blob[c], &fa, &unreachable)) continue;
        if (fabric_send(sw->fab, fa, raw, len, e)) return -1;
        sw->st.bytes_sent += len;
        sw->st.relayed++;
    }
    return 0;
}

static int members(const Swarm *sw)
{
    int n = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) n += sw->peers[s].state == MEMBER;
    return n;
}

/* ---- the ledger -------------------------------------------------------- */

static int ledger_reserve(Swarm *sw, size_t more, Err *e)
{
    if (sw->led_len + more > sw->led_cap) {
        size_t cap = sw->led_cap ? sw->led_cap : 4096;
        while (cap < sw->led_len + more) cap *= 2;
        uint8_t *p = realloc(sw->led, cap);
        if (!p) return err_set(e, "out of memory for the swarm's journal copy");
        sw->led = p;
        sw->led_cap = cap;
    }
    if (sw->next_step + 1 > sw->cap_steps) {
        uint32_t cap = sw->cap_steps ? sw->cap_steps * 2 : 1024;
        size_t *a = realloc(sw->step_end, cap * sizeof *a);
        if (a) sw->step_end = a;
        uint64_t *b = realloc(sw->chain, cap * sizeof *b);
        if (b) sw->chain = b;
        if (!a || !b) return err_set(e, "out of memory for the swarm's step index");
        sw->cap_steps = cap;
    }
    return 0;
}

static size_t step_start(const Swarm *sw, uint32_t step)
{
    return step ? sw->step_end[step - 1] : sw->prefix_len;
}

/* The chain hash of the records before step `step`. */
static uint64_t chain_before(const Swarm *sw, uint32_t step)
{
    return step ? sw->chain[step - 1] : fnv1a64(FNV1A64_INIT, sw->led, sw->prefix_len);
}

/* What a machine with no journal yet says it holds. */
#define CHAIN_NOTHING FNV1A64_INIT

/* Parses one step's records at b (a ROSTER record or none, then its STEP
 * record): the decision's fields, and *used. */
static int parse_step(const Swarm *sw, const uint8_t *b, size_t n, SwarmDecision *d, size_t *used,
                      Err *e)
{
    size_t off = 0, u;
    JournalRecord r;
    memset(d, 0, sizeof *d);
    d->epoch = sw->epoch;
    d->machines = (uint32_t)members(sw);
    for (;;) {
        if (journal_parse_record(b + off, n - off, sw->samples, &r, &u, e)) return -1;
        off += u;
        if (r.type == JREC_STEP) break;
        d->epoch = r.epoch;
        d->machines = r.machines;
    }
    d->step = r.step;
    d->width = r.machines;
    d->samples = r.samples;
    d->lr = r.lr;
    *used = off;
    return 0;
}

/* Appends a step's records to the ledger; d points into the ledger. The
 * records must be the next step's. */
static int ledger_take(Swarm *sw, const uint8_t *rec, size_t n, SwarmDecision *d, Err *e)
{
    size_t used;
    if (parse_step(sw, rec, n, d, &used, e)) return err_wrap(e, "swarm step %u", sw->next_step);
    if (used != n)
        return err_set(e, "swarm step %u: %zu bytes after its STEP record", sw->next_step, n - used);
    if (d->step != sw->next_step)
        return err_set(e, "swarm: records of step %u arrived where step %u comes next", d->step,
                       sw->next_step);
    if (ledger_reserve(sw, n, e)) return -1;
    size_t at = sw->led_len;
    memcpy(sw->led + at, rec, n);
    sw->led_len += n;
    sw->step_end[sw->next_step] = sw->led_len;
    sw->chain[sw->next_step] = fnv1a64(chain_before(sw, sw->next_step), rec, n);
    sw->next_step++;
    sw->epoch = d->epoch;
    /* re-point into the copy, which outlives the caller's buffer */
    SwarmDecision again;
    parse_step(sw, sw->led + at, n, &again, &used, e);
    again.epoch = d->epoch;
    again.machines = d->machines;
    *d = again;
    JournalRecord r;
    size_t u, off = at;
    while (!journal_parse_record(sw->led + off, sw->led_len - off, sw->samples, &r, &u, e) &&
           r.type != JREC_STEP)
        off += u;
    d->codes = r.codes;
    d->records = sw->led + sw->unjournaled;
    d->records_len = sw->led_len - sw->unjournaled;
    sw->unjournaled = sw->led_len;
    return 0;
}

/* A ROSTER record that starts the ledger: the journal's first record. */
static int take_prefix(Swarm *sw, const uint8_t *b, size_t n, Err *e)
{
    JournalRecord r;
    size_t u;
    Err ignored;
    if (sw->led_len || journal_parse_record(b, n, sw->samples, &r, &u, &ignored) ||
        r.type != JREC_ROSTER)
        return 0;
    if (ledger_reserve(sw, u, e)) return -1;
    memcpy(sw->led, b, u);
    sw->led_len = sw->prefix_len = u;
    sw->epoch = r.epoch;
    return (int)u;
}

/* The records this machine already holds (its journal): the first ROSTER
 * record, then whole steps. */
static int ledger_load(Swarm *sw, const uint8_t *rec, size_t n, Err *e)
{
    int pre = take_prefix(sw, rec, n, e);
    if (pre < 0) return -1;
    size_t off = (size_t)pre;
    while (off < n) {
        SwarmDecision d;
        size_t used;
        if (parse_step(sw, rec + off, n - off, &d, &used, e))
            return err_wrap(e, "the journal at byte %zu", 64 + off);
        if (ledger_take(sw, rec + off, used, &d, e)) return -1;
        off += used;
    }
    sw->unjournaled = sw->led_len;
    return 0;
}

/* ---- messages every standing handles ------------------------------------ */

static int reply_config(Swarm *sw, const SwarmMsg *m, Err *e)
{
    FabricAddr to;
    Err bad;
    if (fabric_peer(sw->fab, m->addr, &to, &bad)) return 0; /* garbage address: ignore */
    SwarmMsg r = {.type = SW_CONFIG, .step = sw->next_step,
                  .blob = (const uint8_t *)sw->config_text,
                  .blob_len = (uint32_t)strlen(sw->config_text)};
    return send_to_addr(sw, to, &r, e);
}

/* The journal records a DECIDE stands for, as the keeper wrote them: a
 * ROSTER record when the epoch moves (machines: the roster after the
 * step's changes), then the STEP record. out: room for both. */
static size_t decide_records(const Swarm *sw, const SwarmMsg *m, uint8_t *out)
{
    size_t len = 0;
    if (m->epoch != sw->epoch)
        len += journal_encode_roster(out, m->epoch, (uint32_t)members(sw), m->step);
    return len + journal_encode_step(out + len, m->step, m->width, m->samples, m->epoch, m->lr,
                                     m->codes);
}

static void keep_changes(Swarm *sw, uint32_t step, const SwarmEntry *ch, uint32_t n)
{
    int k = step % KEPT_DECISIONS;
    memcpy(sw->changes[k], ch, n * sizeof *ch);
    sw->n_changes[k] = n;
    sw->changes_step[k] = step;
}

/* The DECIDE of a step this machine holds, rebuilt from the ledger, for a
 * machine that lacks it (a new keeper that asked, a member one behind).
 * Only the last KEPT_DECISIONS steps' roster changes are kept: older ones are
 * caught up through the journal instead. */
static int send_decided(Swarm *sw, uint32_t slot, uint32_t step, Err *e)
{
    int k = step % KEPT_DECISIONS;
    if (step >= sw->next_step || sw->changes_step[k] != step) return 0;
    size_t a = step_start(sw, step), used;
    SwarmDecision d;
    if (parse_step(sw, sw->led + a, sw->step_end[step] - a, &d, &used, e)) return -1;
    JournalRecord r;
    size_t off = a;
    while (!journal_parse_record(sw->led + off, sw->step_end[step] - off, sw->samples, &r, &used,
                                 e) && r.type != JREC_STEP)
        off += used;
    SwarmMsg m = {.type = SW_DECIDE, .step = step, .epoch = d.epoch, .width = d.width,
                  .samples = d.samples, .lr = d.lr, .chain = sw->chain[step], .codes = r.codes,
                  .n_codes = d.width * d.samples, .entries = sw->changes[k],
                  .n_entries = sw->n_changes[k]};
    return send_to(sw, slot, &m, e);
}

/* ---- the keeper ------------------------------------------------------- */

/* The first field in which the joiner's identity a differs from the run's
 * b, worded for the refusal ("seed 7, the run's 1337"); NULL when a may
 * join. */
static const char *ident_difference(const ZoIdentity *a, const ZoIdentity *b, char *buf, size_t n)
{
    switch (zo_identity_first(zo_identity_diff(a, b, ZO_ID_ALL))) {
    case ZO_ID_SEED:
        snprintf(buf, n, "seed %llu, the run's %llu", (unsigned long long)a->seed,
                 (unsigned long long)b->seed);
        break;
    case ZO_ID_MODEL:
        snprintf(buf, n, "a model of %llu parameters, the run's %llu",
                 (unsigned long long)a->global_params, (unsigned long long)b->global_params);
        break;
    case ZO_ID_SAMPLES: snprintf(buf, n, "--zo-samples %u, the run's %u", a->samples, b->samples); break;
    case ZO_ID_SELECTION:
        snprintf(buf, n, "another --zo-params selection (id %016llx, the run's %016llx)",
                 (unsigned long long)a->params_id, (unsigned long long)b->params_id);
        break;
    case ZO_ID_EPS:
    case ZO_ID_DECAY:
        snprintf(buf, n, "--zo-eps %g / --weight-decay %g, the run's %g / %g", a->eps,
                 a->weight_decay, b->eps, b->weight_decay);
        break;
    case ZO_ID_SCALE: snprintf(buf, n, "--zo-scale %g, the run's %g", a->scale, b->scale); break;
    case ZO_ID_SPARSE: snprintf(buf, n, "--zo-sparse %g, the run's %g", a->sparse, b->sparse); break;
    case ZO_ID_BASE:
        snprintf(buf, n, "other starting weights (base %016llx, the run's %016llx: another "
                 "--init-from or seed)", (unsigned long long)a->base_id,
                 (unsigned long long)b->base_id);
        break;
    default: return NULL;
    }
    return buf;
}

static int lowest_free_slot(const Swarm *sw)
{
    for (int s = 0; s < SWARM_MAX_SLOTS; s++)
        if (sw->peers[s].state == FREE) return s;
    return -1;
}

/* Records [from step, ...) in JOURNAL chunks of whole steps, at most
 * ROUND_BYTES; returns the step after the last one sent. A round that
 * reaches the end is followed by the WELCOME; one cut short by the budget
 * marks its last chunk (the joiner applies it and asks again). */
static uint32_t send_round(Swarm *sw, FabricAddr to, uint32_t from, int fresh, Err *e, int *rc)
{
    uint32_t s = from;
    size_t budget = ROUND_BYTES;
    *rc = 0;
    do {
        size_t a = fresh && s == 0 ? 0 : step_start(sw, s), b = a == 0 ? sw->prefix_len : a;
        uint32_t k = s;
        while (k < sw->next_step && sw->step_end[k] - a <= CHUNK_BYTES) b = sw->step_end[k++];
        if (k == s && s < sw->next_step) {
            *rc = err_set(e, "swarm: step %u's records do not fit in one message", s + 1);
            return s;
        }
        SwarmMsg m = {.type = SW_JOURNAL, .step = s, .blob = sw->led + a,
                      .blob_len = (uint32_t)(b - a)};
        int end = k == sw->next_step;
        m.last = !end && b - a >= budget;
        if ((*rc = send_to_addr(sw, to, &m, e))) return s;
        budget = b - a >= budget ? 0 : budget - (b - a);
        s = k;
        if (end || m.last) break;
    } while (1);
    return s;
}

static int welcome(Swarm *sw, FabricAddr to, const SwarmMsg *hello, Err *e)
{
    int slot = lowest_free_slot(sw);
    if (slot < 0) return send_text(sw, to, SW_REFUSE, "the swarm is full", e);
    Peer *p = &sw->peers[slot];
    memset(p, 0, sizeof *p);
    p->state = FOLLOWER;
    p->heard = comm_wtime();
    snprintf(p->addr, sizeof p->addr, "%s", hello->addr);
    p->fa = to;
    p->have_fa = 1;
    SwarmEntry list[SWARM_MAX_SLOTS];
    uint32_t n = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) {
        if (sw->peers[s].state != MEMBER) continue;
        list[n].slot = (uint32_t)s;
        list[n].kind = SW_MEMBER;
        snprintf(list[n].addr, sizeof list[n].addr, "%s", sw->peers[s].addr);
        n++;
    }
    SwarmMsg m = {.type = SW_WELCOME, .step = sw->next_step, .epoch = sw->epoch,
                  .assigned = (uint32_t)slot, .entries = list, .n_entries = n};
    event(sw, "machine %s said hello at step %u (its journal: %u steps): slot %d, following",
          hello->addr, sw->next_step, hello->step, slot);
    return send_to_addr(sw, to, &m, e);
}

static int keeper_hello(Swarm *sw, const SwarmMsg *m, Err *e)
{
    FabricAddr to;
    Err bad;
    if (fabric_peer(sw->fab, m->addr, &to, &bad)) return 0;
    char why[400], diff[300];
    if (ident_difference(&m->ident, &sw->o.ident, diff, sizeof diff)) {
        snprintf(why, sizeof why, "refused: this machine has %s", diff);
        event(sw, "refused %s: it has %s", m->addr, diff);
        return send_text(sw, to, SW_REFUSE, why, e);
    }
    int fresh = m->step == 0 && m->chain == CHAIN_NOTHING;
    if (!fresh && (m->step > sw->next_step || m->chain != chain_before(sw, m->step))) {
        snprintf(why, sizeof why, "refused: this machine's journal (%u steps) is not this run's: "
                 "it differs from the run's %s; join with a fresh --out",
                 m->step, m->step > sw->next_step ? "length" : "history by that step");
        event(sw, "refused %s: a foreign journal", m->addr);
        return send_text(sw, to, SW_REFUSE, why, e);
    }
    int rc;
    uint32_t reached = send_round(sw, to, m->step, fresh, e, &rc);
    if (rc) return -1;
    return reached == sw->next_step ? welcome(sw, to, m, e) : 0;
}

static int member_apply_decide(Swarm *sw, const SwarmMsg *m, uint64_t whash, SwarmDecision *d,
                               Err *e);
static int next_msg(Swarm *sw, SwarmMsg *m, double timeout_s, Err *e);

static int tell_dropped(Swarm *sw, uint32_t s, Err *e)
{
    FabricAddr to;
    Err bad;
    if (fabric_peer(sw->fab, sw->gone[s], &to, &bad)) return 0;
    return send_text(sw, to, SW_DROPPED, "missed its deadlines; rejoin to catch up", e);
}

static int keeper_codes(Swarm *sw, const SwarmMsg *m, Err *e)
{
    uint32_t s = m->slot;
    /* a machine dropped from the roster learns it from the DECIDE that
     * dropped it (sent to it too); its later codes are not counted, and
     * answered with DROPPED, in case that DECIDE was lost while it was
     * frozen */
    if (s < SWARM_MAX_SLOTS && sw->peers[s].state == FREE && sw->gone[s][0]) return tell_dropped(sw, s, e);
    if (s >= SWARM_MAX_SLOTS || sw->peers[s].state == FREE) return 0;
    if (m->n_codes != sw->samples) return 0;
    Peer *p = &sw->peers[s];
    if (p->state == FOLLOWER) {
        /* a joiner that computes again has caught up: from now on the
         * keeper waits for it as for a member, so its codes can count */
        p->ready = 1;
        p->heard = comm_wtime();
    }
    /* codes of a step decided: the machine lacks its decision (late, or
     * its relay died; by then this keeper may be a step further on) */
    if (m->step < sw->next_step)
        return p->state == FOLLOWER ? 0 : send_decided(sw, s, m->step, e);
    Collect *c = m->step == sw->cur.step ? &sw->cur : m->step == sw->ahead.step ? &sw->ahead : NULL;
    if (!c) return 0; /* late: the step was decided without it */
    if (c == &sw->cur && m->chain != chain_before(sw, m->step)) {
        char why[200];
        snprintf(why, sizeof why, "stopped: your journal before step %u differs from the keeper's "
                 "(a diverged history); rejoin with a fresh --out", m->step);
        FabricAddr to;
        Err bad;
        return peer_addr(sw, s, &to, &bad) ? 0 : send_text(sw, to, SW_STOP, why, e);
    }
    memcpy(c->codes + (size_t)s * sw->samples, m->codes, sw->samples);
    c->got[s] = 1;
    return 0;
}

static int keeper_leave(Swarm *sw, const SwarmMsg *m)
{
    if (m->slot < SWARM_MAX_SLOTS && sw->peers[m->slot].state != FREE) {
        sw->peers[m->slot].leaving = 1;
        event(sw, "machine %u is leaving", m->slot);
    }
    return 0;
}

/* One message while keeping. *fetched: a member's DECIDE of the step this
 * keeper lacks (after a take-over) arrived and was taken. */
static int keeper_handle(Swarm *sw, const SwarmMsg *m, SwarmDecision *d, int *fetched, Err *e)
{
    switch (m->type) {
    case SW_CONFIG_REQ: return reply_config(sw, m, e);
    case SW_HELLO: return keeper_hello(sw, m, e);
    case SW_CODES:
        if (m->step == sw->next_step + 1 && m->slot < SWARM_MAX_SLOTS &&
            sw->peers[m->slot].state == MEMBER && !*fetched) {
            /* it holds a decision of the old keeper's that this one lacks */
            SwarmMsg f = {.type = SW_FETCH, .step = sw->next_step};
            if (send_to(sw, m->slot, &f, e)) return -1;
        }
        return keeper_codes(sw, m, e);
    case SW_LEAVE: return keeper_leave(sw, m);
    case SW_DECIDE:
        if (m->step != sw->next_step || *fetched) return 0;
        if (m->term > sw->term) {
            /* another machine took over while this keeper was silent (frozen,
             * cut off): its decision stands, and this machine follows it */
            event(sw, "superseded as keeper by machine %u (term %u) at step %u", m->slot, m->term,
                  m->step + 1);
            sw->standing = WELCOMED;
            if (member_apply_decide(sw, m, 0, d, e)) return -1;
            *fetched = 2;
            return 0;
        }
        if (member_apply_decide(sw, m, 0, d, e)) return -1;
        sw->keeper = sw->slot;
        *fetched = 1;
        return 0;
    default: return 0; /* DECIDE of an old term, stray replies: not the keeper's business */
    }
}

/* Roster changes of the step being decided: joiners whose codes came in,
 * members that left or missed too often. */
static uint32_t roster_changes(Swarm *sw, SwarmEntry *ch)
{
    uint32_t n = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) {
        Peer *p = &sw->peers[s];
        int kind = 0;
        if (p->state == FOLLOWER && sw->cur.got[s]) kind = SW_JOINED;
        else if (p->state == MEMBER && (uint32_t)s != sw->slot && p->leaving) kind = SW_LEFT;
        else if (p->state == MEMBER && (uint32_t)s != sw->slot && p->suspect) kind = SW_MISSED_OUT;
        else if (p->state == MEMBER && (uint32_t)s != sw->slot && !sw->cur.got[s] &&
                 ++p->misses >= sw->o.misses)
            kind = SW_MISSED_OUT;
        if (p->state == MEMBER && sw->cur.got[s]) p->misses = 0;
        /* a follower that never contributes (it died catching up) is let
         * go quietly: it was never in the journal's roster */
        if (p->state == FOLLOWER && !sw->cur.got[s] &&
            (p->ready ? ++p->misses >= sw->o.misses : comm_wtime() - p->heard > FOLLOWER_PATIENCE_S)) {
            event(sw, "machine %s never contributed: forgotten", p->addr);
            memset(p, 0, sizeof *p);
        }
        if (!kind) continue;
        ch[n].slot = (uint32_t)s;
        ch[n].kind = (uint8_t)kind;
        snprintf(ch[n].addr, sizeof ch[n].addr, "%s", p->addr);
        n++;
    }
    return n;
}

static void apply_change(Swarm *sw, const SwarmEntry *c, uint32_t step)
{
    Peer *p = &sw->peers[c->slot];
    if (c->kind == SW_JOINED) {
        int had = p->state == FOLLOWER && !strcmp(p->addr, c->addr);
        if (!had) {
            memset(p, 0, sizeof *p);
            snprintf(p->addr, sizeof p->addr, "%s", c->addr);
        }
        p->state = MEMBER;
        event(sw, "machine %u (%s) joined at step %u", c->slot, c->addr, step + 1);
    } else {
        event(sw, "machine %u (%s) %s at step %u", c->slot, c->addr,
              c->kind == SW_LEFT ? "left" : "was dropped: missed its deadlines", step + 1);
        snprintf(sw->gone[c->slot], SWARM_ADDR_LEN, "%s", c->kind == SW_LEFT ? "" : c->addr);
        memset(p, 0, sizeof *p);
    }
}

/* Builds, journals (in the ledger) and sends the decision of the step. */
/* The machines a decision goes to, in relay tree order: the members whose
 * codes are in first (they are waiting for it, and alive), then the other
 * members (a dead one is a leaf there and cuts no one off), then the
 * followers, which only the keeper knows: it sends to them itself. The
 * machines a change removes hear of it too: that is how they know.
 * Returns how many; tree[i] is slot i's, to[i] its address, and
 * *n_members how many of them are members (the tree the DECIDE names). */
static int relay_tree(Swarm *sw, uint8_t *tree, FabricAddr *to, int *n_members)
{
    int n = 0;
    Err unreachable;
    for (int pass = 0; pass < 3; pass++) {
        for (int s = 0; s < SWARM_MAX_SLOTS; s++) {
            const Peer *p = &sw->peers[s];
            int in = pass == 0   ? p->state == MEMBER && sw->cur.got[s]
                     : pass == 1 ? p->state == MEMBER && !sw->cur.got[s]
                                 : p->state == FOLLOWER;
            if (in && (uint32_t)s != sw->slot && !peer_addr(sw, (uint32_t)s, &to[n], &unreachable))
                tree[n++] = (uint8_t)s;
        }
        if (pass == 1) *n_members = n;
    }
    return n;
}

static int keeper_decide(Swarm *sw, float lr, uint64_t whash, SwarmDecision *d, Err *e)
{
    SwarmEntry ch[SWARM_MAX_SLOTS];
    uint32_t n_ch = roster_changes(sw, ch);
    uint32_t width = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++)
        if (sw->cur.got[s]) width = (uint32_t)s + 1;
    const uint32_t S = sw->samples;
    for (uint32_t s = 0; s < width; s++)
        if (!sw->cur.got[s]) memset(sw->cur.codes + (size_t)s * S, (uint8_t)ZO_SKIP, S);
    uint8_t tree[SWARM_MAX_SLOTS];
    FabricAddr to[SWARM_MAX_SLOTS];
    int n_tree = 0, n_to = relay_tree(sw, tree, to, &n_tree);
    for (uint32_t i = 0; i < n_ch; i++) apply_change(sw, &ch[i], sw->cur.step);
    keep_changes(sw, sw->cur.step, ch, n_ch);
    SwarmMsg m = {.type = SW_DECIDE, .step = sw->cur.step, .epoch = sw->epoch + (n_ch > 0),
                  .width = width, .samples = S, .lr = lr, .whash = whash, .codes = sw->cur.codes,
                  .n_codes = width * S, .blob = tree, .blob_len = (uint32_t)n_tree,
                  .entries = ch, .n_entries = n_ch};
    uint8_t *rec = malloc(JOURNAL_ROSTER_RECORD_BYTES + journal_step_record_bytes(width, S));
    if (!rec) return err_set(e, "out of memory for step %u's records", sw->cur.step);
    int rc = ledger_take(sw, rec, decide_records(sw, &m, rec), d, e);
    free(rec);
    if (rc) return -1;
    m.chain = sw->chain[d->step];
    for (int i = 0; i < n_to; i++)
        if ((i < RELAY_FANOUT || i >= n_tree) && send_to_addr(sw, to[i], &m, e))
            return -1;
    sw->st.steps_decided++;
    return 0;
}

/* Codes in from the roster, and the roster's size for the majority rule: a
 * machine that said it leaves no longer counts; a silent one does. */
static int contributors(const Swarm *sw, int *roster)
{
    int n = 0;
    *roster = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) {
        if (sw->peers[s].state != MEMBER || sw->peers[s].leaving) continue;
        (*roster)++;
        n += sw->cur.got[s];
    }
    return n;
}

static int all_members_in(const Swarm *sw)
{
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) {
        const Peer *p = &sw->peers[s];
        if (p->state == MEMBER && !p->leaving && !p->suspect && !sw->cur.got[s]) return 0;
        if (p->state == FOLLOWER && p->ready && !sw->cur.got[s]) return 0;
    }
    return 1;
}

static int followers_in(const Swarm *sw)
{
    int n = 0;
    for (int s = 0; s < SWARM_MAX_SLOTS; s++) n += sw->peers[s].state == FOLLOWER && sw->cur.got[s];
    return n;
}

/* Codes for this step (or the next) kept as they come: a member keeps
 * them too, for the moment it takes over (the others may find the new
 * keeper before it knows it is one). */
static void collect_for(Collect *c, uint32_t step)
{
    if (c->step == step) return;
    memset(c->got, 0, sizeof c->got);
    c->step = step;
}

static void collect_start(Swarm *sw, uint32_t step)
{
    if (sw->cur.step != step && sw->ahead.step == step) {
        Collect t = sw->cur;
        sw->cur = sw->ahead;
        sw->ahead = t;
    }
    collect_for(&sw->cur, step);
    collect_for(&sw->ahead, step + 1);
}

static void stash_codes(Swarm *sw, const SwarmMsg *m, uint32_t step)
{
    if (m->slot >= SWARM_MAX_SLOTS || m->n_codes != sw->samples) return;
    if (m->step != step && m->step != step + 1) return;
    Collect *c = m->step == step ? &sw->cur : &sw->ahead;
    collect_for(c, m->step);
    memcpy(c->codes + (size_t)m->slot * sw->samples, m->codes, sw->samples);
    c->got[m->slot] = 1;
}

/* The keeper waits for machines before it decides: --swarm-wait at the
 * first step, a test's hold (capped) at its step. */
static int waiting_for_machines(const Swarm *sw, uint32_t step, int got, double el)
{
    int in = got + followers_in(sw);
    if (step == 0 && in < sw->o.wait_for) return 1;
    return sw->o.hold_for > 0 && step + 1 == sw->o.hold_step && in < sw->o.hold_for &&
           el < FOLLOWER_PATIENCE_S;
}

/* While the keeper waits for machines (or, new, for the members to find
 * it), its last decision again to every machine, every deadline: a sign of
 * life, so that none takes it for dead. */
static int still_here(Swarm *sw, uint32_t step, double *last, Err *e)
{
    if (step == 0 || comm_wtime() - *last < sw->o.deadline_s) return 0;
    *last = comm_wtime();
    for (int s = 0; s < SWARM_MAX_SLOTS; s++)
        if (sw->peers[s].state != FREE && (uint32_t)s != sw->slot &&
            send_decided(sw, (uint32_t)s, step - 1, e))
            return -1;
    return 0;
}

/* The keeper's step: its codes in, the others' until all are in or the
 * deadline (with a majority); then the decision. first: the first step of
 * this keeper's term, whose deadline is longer (the members find the new
 * keeper one timeout at a time). */
static int keeper_step(Swarm *sw, uint32_t step, const int8_t *mine, float lr, uint64_t whash,
                       SwarmDecision *d, Err *e)
{
    const int first = sw->term > 0 && step == sw->term_start;
    collect_start(sw, step);
    memcpy(sw->cur.codes + (size_t)sw->slot * sw->samples, mine, sw->samples);
    sw->cur.got[sw->slot] = 1;
    const double t0 = comm_wtime(), D = sw->o.deadline_s;
    const double patience = first ? D * (sw->o.misses + 1) : D;
    int fetched = 0;
    double alive_sent = t0 - D; /* the first sign of life at once */
    /* what has arrived first: a keeper alone must still hear newcomers */
    for (;;) {
        SwarmMsg m;
        int r = next_msg(sw, &m, 0, e);
        if (r < 0) return -1;
        if (!r) break;
        if (keeper_handle(sw, &m, d, &fetched, e)) return -1;
    }
    for (;;) {
        int roster, got = contributors(sw, &roster);
        int majority = 2 * got > roster;
        double el = comm_wtime() - t0;
        int waiting = waiting_for_machines(sw, step, got, el);
        /* a new keeper, too: the members that switched to it wait on */
        if ((waiting || first) && still_here(sw, step, &alive_sent, e)) return -1;
        if (fetched) break;
        if (!waiting && all_members_in(sw) && majority) break;
        if (!waiting && el >= patience && majority) break;
        if (!waiting && el >= D * (sw->o.misses + 1) && !majority)
            return err_set(e, "swarm: lost contact with the majority of the roster at step %u (%d "
                              "of %d machines reachable from this keeper, slot %u): stopping here "
                              "so that the run keeps one history; the majority side, if there is "
                              "one, goes on", step + 1, got, roster, sw->slot);
        SwarmMsg m;
        int r = next_msg(sw, &m, 0.05, e);
        if (r < 0) return -1;
        if (r && keeper_handle(sw, &m, d, &fetched, e)) return -1;
    }
    if (fetched == 2) return 0; /* superseded: now a member */
    if (fetched) {
        /* pass the fetched decision on to whoever lacks it */
        for (int s = 0; s < SWARM_MAX_SLOTS; s++)
            if (sw->peers[s].state != FREE && (uint32_t)s != sw->slot &&
                send_decided(sw, (uint32_t)s, step, e))
                return -1;
        d->mine_counted = 0;
        return 0;
    }
    if (keeper_decide(sw, lr, whash, d, e)) return -1;
    d->mine_counted = 1;
    return 0;
}

/* ---- members ------------------------------------------------------------ */

/* The keeper by rule: the lowest slot of the roster not suspected. */
static uint32_t next_keeper(const Swarm *sw)
{
    for (int s = 0; s < SWARM_MAX_SLOTS; s++)
        if (sw->peers[s].state == MEMBER && !sw->peers[s].suspect && !sw->peers[s].leaving)
            return (uint32_t)s;
    return sw->slot;
}

static int member_apply_decide(Swarm *sw, const SwarmMsg *m, uint64_t whash, SwarmDecision *d,
                               Err *e)
{
    int dropped = 0;
    SwarmEntry ch[SWARM_MAX_SLOTS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        swarm_msg_entry(m, i, &ch[n]);
        if (ch[n].slot >= SWARM_MAX_SLOTS) continue;
        if (ch[n].slot == sw->slot && ch[n].kind != SW_JOINED) dropped = 1;
        apply_change(sw, &ch[n], m->step);
        n++;
    }
    keep_changes(sw, m->step, ch, n);
    uint8_t *rec = malloc(JOURNAL_ROSTER_RECORD_BYTES + journal_step_record_bytes(m->width, m->samples));
    if (!rec) return err_set(e, "out of memory for step %u's records", m->step + 1);
    int rc = ledger_take(sw, rec, decide_records(sw, m, rec), d, e);
    free(rec);
    if (rc) return -1;
    if (sw->chain[m->step] != m->chain)
        return err_set(e, "swarm step %u: this machine's journal no longer hashes like the "
                          "keeper's (a diverged history): stopping; rejoin with a fresh --out",
                       m->step + 1);
    if (whash && m->whash && whash != m->whash)
        return err_set(e, "swarm step %u: this machine's weights (hash %016llx) differ from the "
                          "keeper's (%016llx): the replicas desynchronized, stopping",
                       m->step + 1, (unsigned long long)whash, (unsigned long long)m->whash);
    if (m->term > sw->term) sw->term = m->term;
    sw->keeper = m->slot;
    if (dropped) {
        event(sw, "this machine was dropped from the roster at step %u: catching up", m->step + 1);
        sw->standing = JOINING;
    }
    return 0;
}

static int send_hello(Swarm *sw, Err *e)
{
    FabricAddr to;
    if (peer_addr(sw, sw->keeper, &to, e)) return -1;
    SwarmMsg m = {.type = SW_HELLO, .step = sw->next_step, .chain = chain_before(sw, sw->next_step),
                  .ident = sw->o.ident};
    snprintf(m.addr, sizeof m.addr, "%s", fabric_name(sw->fab));
    sw->round_open = 1;
    return send_to_addr(sw, to, &m, e);
}

static int queue_add(Swarm *sw, const uint8_t *b, size_t n, Err *e)
{
    if (!n) return 0; /* an empty chunk (a machine current already): b may be NULL */
    if (sw->q_head == sw->q_len) sw->q_head = sw->q_len = 0;
    uint8_t *q = realloc(sw->queue, sw->q_len + n);
    if (!q && n) return err_set(e, "out of memory for the journal being caught up");
    sw->queue = q;
    memcpy(sw->queue + sw->q_len, b, n);
    sw->q_len += n;
    return 0;
}

static int take_welcome(Swarm *sw, const SwarmMsg *m)
{
    for (int s = 0; s < SWARM_MAX_SLOTS; s++)
        if (sw->peers[s].state == MEMBER) memset(&sw->peers[s], 0, sizeof sw->peers[s]);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        SwarmEntry c;
        swarm_msg_entry(m, i, &c);
        if (c.slot >= SWARM_MAX_SLOTS) continue;
        Peer *p = &sw->peers[c.slot];
        memset(p, 0, sizeof *p);
        p->state = MEMBER;
        snprintf(p->addr, sizeof p->addr, "%s", c.addr);
    }
    sw->slot = m->assigned;
    sw->term = m->term;
    sw->keeper = m->slot;
    sw->standing = WELCOMED;
    event(sw, "welcomed into the swarm as machine %u at step %u (%d machines)", m->assigned,
          m->step + 1, members(sw));
    return 0;
}

/* A catch-up round's answer: journal chunks, then maybe the welcome. */
static int joiner_handle(Swarm *sw, const SwarmMsg *m, Err *e)
{
    switch (m->type) {
    case SW_REFUSE:
        return err_set(e, "the swarm at %s %s", sw->join, m->text);
    case SW_STOP:
        return err_set(e, "the swarm at %s: %s", sw->join, m->text);
    case SW_JOURNAL:
        if (queue_add(sw, m->blob, m->blob_len, e)) return -1;
        if (m->last) sw->round_open = 0;
        return 0;
    case SW_WELCOME:
        sw->round_open = 0;
        return take_welcome(sw, m);
    default: return 0;
    }
}

/* The next message: one kept from a drain first, else from the endpoint
 * (waiting up to timeout_s). 1 = *m decoded (from sw->in), 0 = none. */
static int next_msg(Swarm *sw, SwarmMsg *m, double timeout_s, Err *e)
{
    for (;;) {
        size_t len;
        if (sw->pending[0]) {
            len = sw->pending_len[0];
            memcpy(sw->in, sw->pending[0], len);
            free(sw->pending[0]);
            memmove(sw->pending, sw->pending + 1, (PENDING - 1) * sizeof sw->pending[0]);
            memmove(sw->pending_len, sw->pending_len + 1, (PENDING - 1) * sizeof sw->pending_len[0]);
            sw->pending[PENDING - 1] = NULL;
        } else {
            int r = fabric_recv(sw->fab, sw->in, sizeof sw->in, &len, timeout_s, e);
            if (r <= 0) return r;
            sw->st.bytes_recv += len;
            Err bad;
            if (swarm_msg_decode(sw->in, len, m, &bad)) continue;
            return relay_on(sw, m, sw->in, len, e) ? -1 : 1;
        }
        Err bad;
        if (!swarm_msg_decode(sw->in, len, m, &bad)) return 1;
        /* garbage on the endpoint is dropped: nothing a stranger sends stops a machine */
    }
}

/* Takes what has arrived without waiting, to see whether a decision is
 * already here (a machine behind the others skips computing it). */
static int drain(Swarm *sw, Err *e)
{
    int n = 0;
    while (n < PENDING && sw->pending[n]) n++;
    while (n < PENDING) {
        size_t len;
        int r = fabric_recv(sw->fab, sw->in, sizeof sw->in, &len, 0, e);
        if (r <= 0) return r;
        sw->st.bytes_recv += len;
        SwarmMsg m;
        Err bad;
        if (!swarm_msg_decode(sw->in, len, &m, &bad) && relay_on(sw, &m, sw->in, len, e)) return -1;
        sw->pending[n] = malloc(len);
        if (!sw->pending[n]) return err_set(e, "out of memory for a swarm message");
        memcpy(sw->pending[n], sw->in, len);
        sw->pending_len[n++] = len;
    }
    return 0;
}

static int pending_decides(const Swarm *sw, uint32_t step)
{
    for (int i = 0; i < PENDING && sw->pending[i]; i++) {
        SwarmMsg m;
        Err bad;
        if (!swarm_msg_decode(sw->pending[i], sw->pending_len[i], &m, &bad) &&
            m.type == SW_DECIDE && m.step == step)
            return 1;
    }
    return 0;
}

/* Waits for the round asked for; a silent keeper is asked again, then
 * given up on. */
static int joiner_round(Swarm *sw, Err *e)
{
    const double limit = CONFIG_TIMEOUT_S + sw->o.deadline_s * 2;
    for (int tries = 0; tries < 6; tries++) {
        if (send_hello(sw, e)) return -1;
        double t0 = comm_wtime();
        while (sw->round_open && comm_wtime() - t0 < limit) {
            SwarmMsg m;
            int r = next_msg(sw, &m, 0.2, e);
            if (r < 0) return -1;
            if (r && joiner_handle(sw, &m, e)) return -1;
        }
        if (!sw->round_open) return 0;
        sw->round_open = 0;
        /* a keeper gone silent: the one the rule names next, if this
         * machine knows the roster (a machine that was dropped does) */
        uint32_t was = sw->keeper;
        sw->peers[was].suspect = 1;
        sw->keeper = next_keeper(sw);
        if (sw->keeper == sw->slot || sw->peers[sw->keeper].state != MEMBER) sw->keeper = was;
        else event(sw, "the keeper at %s does not answer: asking machine %u at %s", sw->peers[was].addr,
                   sw->keeper, sw->peers[sw->keeper].addr);
    }
    return err_set(e, "the swarm's keeper at %s does not answer (6 tries of %.0f s)",
                   sw->peers[sw->keeper].addr, limit);
}

static int queued(const Swarm *sw) { return sw->q_head < sw->q_len; }

static int pop_queued(Swarm *sw, uint32_t step, SwarmDecision *d, Err *e)
{
    SwarmDecision peek;
    size_t used;
    if (parse_step(sw, sw->queue + sw->q_head, sw->q_len - sw->q_head, &peek, &used, e))
        return err_wrap(e, "the journal received from %s", sw->join);
    if (peek.step != step)
        return err_set(e, "the journal received from %s holds step %u where step %u comes next",
                       sw->join, peek.step + 1, step + 1);
    if (ledger_take(sw, sw->queue + sw->q_head, used, d, e)) return -1;
    sw->q_head += used;
    d->caught_up = 1;
    return 0;
}

int swarm_known(Swarm *sw, uint32_t step, Err *e)
{
    if (sw->standing == KEEPING || step != sw->next_step) return 0;
    for (;;) {
        if (queued(sw)) {
            int pre = take_prefix(sw, sw->queue + sw->q_head, sw->q_len - sw->q_head, e);
            if (pre < 0) return -1;
            sw->q_head += (size_t)pre;
        }
        if (queued(sw)) return 1;
        if (sw->standing != JOINING) break;
        if (joiner_round(sw, e)) return -1;
    }
    if (drain(sw, e) < 0) return -1;
    return pending_decides(sw, step);
}

/* Takes over as keeper: a new term; the silent keeper is dropped by the
 * first decision. */
static void take_over(Swarm *sw, uint32_t step)
{
    sw->standing = KEEPING;
    sw->keeper = sw->slot;
    sw->term++;
    sw->term_start = step;

    event(sw, "took over as keeper at step %u (term %u)", step + 1, sw->term);
}

/* A relay that died on the way leaves its subtree without the decision:
 * every half deadline a member's codes go again, and a keeper that has
 * decided answers them with the decision itself (one that has not takes
 * the same codes again). Half: the keeper waits a deadline for the next
 * step's codes, and this machine's must make it. */
static int ask_again(Swarm *sw, const SwarmMsg *codes, double *asked, int *asks, Err *e)
{
    if (comm_wtime() - *asked <= 0.5 * sw->o.deadline_s || sw->peers[sw->slot].state != MEMBER)
        return 0;
    *asked = comm_wtime();
    if (!(*asks)++)
        event(sw, "no decision of step %u yet: asking the keeper (machine %u) for it",
              codes->step + 1, sw->keeper);
    SwarmMsg c = *codes;
    return send_to(sw, sw->keeper, &c, e);
}

/* The member's step: codes to the keeper, its decision back; a silent
 * keeper is replaced by rule. */
static int member_step(Swarm *sw, uint32_t step, const int8_t *mine, uint64_t whash, int send,
                       SwarmDecision *d, int *took_over, Err *e)
{
    SwarmMsg c = {.type = SW_CODES, .step = step, .epoch = sw->epoch,
                  .chain = chain_before(sw, step), .whash = whash, .codes = mine,
                  .n_codes = sw->samples};
    *took_over = 0;
    if (send && send_to(sw, sw->keeper, &c, e)) return -1;
    const double start = comm_wtime();
    double t0 = start;
    double timeout = sw->o.deadline_s * (sw->o.misses + 1) + 2 * sw->step_work + 1;
    /* away since its last step for longer than a keeper waits (frozen,
     * suspended): the roster went on without it, and what was sent to it
     * meanwhile may be lost, so its silence proves nothing of the keeper */
    int away = sw->returned_at > 0 && start - sw->returned_at > timeout;
    double asked = start;
    int asks = 0;
    for (;;) {
        if (send && ask_again(sw, &c, &asked, &asks, e)) return -1;
        if (comm_wtime() - t0 > timeout && !sw->peers[sw->keeper].leaving &&
            sw->peers[sw->slot].state != MEMBER) {
            /* not in the roster yet (its codes never counted): it could not
             * keep the run, so it does not judge the keeper (which may be
             * waiting for machines to start); it waits, as a joiner does */
            if (comm_wtime() - start > FOLLOWER_PATIENCE_S)
                return err_set(e, "swarm: no decision of step %u from the keeper (machine %u) in "
                                  "%.0f s, and this machine is not in the roster yet, so it cannot "
                                  "take over: stopping", step + 1, sw->keeper, FOLLOWER_PATIENCE_S);
            t0 = comm_wtime();
        }
        if (comm_wtime() - t0 > timeout && away && sw->peers[sw->slot].state == MEMBER) {
            event(sw, "this machine was away %.0f s, longer than the keeper waits, and has no "
                      "decision of step %u: rejoining through the keeper (machine %u)",
                  start - sw->returned_at, step + 1, sw->keeper);
            sw->standing = JOINING;
            return 1;
        }
        if (comm_wtime() - t0 > timeout) {
            Peer *k = &sw->peers[sw->keeper];
            if (!k->leaving) k->suspect = 1;
            event(sw, "the keeper (machine %u) %s at step %u", sw->keeper,
                  k->leaving ? "handed over" : "went silent", step + 1);
            sw->keeper = next_keeper(sw);
            if (sw->keeper == sw->slot) {
                take_over(sw, step);
                *took_over = 1;
                return 0;
            }
            sw->term++;
            if (send_to(sw, sw->keeper, &c, e)) return -1;
            t0 = comm_wtime();
            /* the next keeper finds the silence by its own clock (its step
             * time may be longer than this machine's): wait twice as long;
             * once it has taken over, its signs of life keep this wait on */
            timeout *= 2;
        }
        SwarmMsg m;
        int r = next_msg(sw, &m, 0.05, e);
        if (r < 0) return -1;
        if (r == 0) continue;
        switch (m.type) {
        case SW_DECIDE:
            /* the last decision again: the keeper waits for machines, alive */
            if (m.step + 1 == step && m.slot == sw->keeper && !sw->peers[m.slot].leaving)
                t0 = comm_wtime();
            if (m.step != step || (m.term < sw->term && m.slot != sw->keeper)) break;
            if (member_apply_decide(sw, &m, whash, d, e)) return -1;
            d->mine_counted = d->width > sw->slot &&
                              !memcmp(d->codes + (size_t)sw->slot * sw->samples, mine, sw->samples);
            return 0;
        case SW_STOP: return err_set(e, "the swarm stopped this machine: %s", m.text);
        case SW_DROPPED:
            event(sw, "the keeper dropped this machine: %s", m.text);
            sw->standing = JOINING;
            sw->keeper = m.slot;
            return 1;
        case SW_FETCH: if (send_decided(sw, m.slot, m.step, e)) return -1; break;
        case SW_LEAVE:
            if (m.slot == sw->keeper && m.slot < SWARM_MAX_SLOTS) {
                sw->peers[m.slot].leaving = 1; /* it handed over: no wait, not counted */
                t0 = -1e300;
            }
            break;
        case SW_CODES: stash_codes(sw, &m, step); break;
        default: break;
        }
    }
}

int swarm_step(Swarm *sw, uint32_t step, const int8_t *mine, float lr, uint64_t whash,
               SwarmDecision *d, Err *e)
{
    if (sw->returned_at > 0) sw->step_work = fmax(comm_wtime() - sw->returned_at, 0.9 * sw->step_work);
    uint64_t s0 = sw->st.bytes_sent, r0 = sw->st.bytes_recv;
    if (step != sw->next_step)
        return err_set(e, "swarm: step %u asked for, but this machine is at step %u", step + 1,
                       sw->next_step + 1);
    int rc = 0;
    for (int rounds = 0;; rounds++) {
        if (swarm_known(sw, step, e) < 0) return -1;
        if (queued(sw)) {
            rc = pop_queued(sw, step, d, e);
            break;
        }
        if (sw->standing == KEEPING) {
            rc = keeper_step(sw, step, mine, lr, whash, d, e);
            break;
        }
        int took;
        /* a decision already here (this machine is behind): no codes to send */
        int send = !pending_decides(sw, step);
        rc = member_step(sw, step, mine, whash, send, d, &took, e);
        if (!send) d->caught_up = 1;
        if (rc < 0) return -1;
        if (rc == 0 && !took) break;
        /* dropped (rejoin) or took over: go round again */
        if (rounds > 8) return err_set(e, "swarm: step %u could not be settled", step + 1);
    }
    sw->st.step_bytes_sent = sw->st.bytes_sent - s0;
    sw->st.step_bytes_recv = sw->st.bytes_recv - r0;
    sw->returned_at = comm_wtime();
    return rc;
}

/* ---- open, close ----------------------------------------------------------- */

int swarm_open(Swarm **out, const SwarmOptions *o, Err *e)
{
    Swarm *sw = calloc(1, sizeof *sw);
    *out = sw;
    if (!sw) return err_set(e, "out of memory for the swarm");
    sw->o = *o;
    snprintf(sw->provider, sizeof sw->provider, "%s", o->provider);
    snprintf(sw->listen, sizeof sw->listen, "%s", o->listen ? o->listen : "");
    snprintf(sw->join, sizeof sw->join, "%s", o->join ? o->join : "");
    sw->config_text = strdup(o->config_text ? o->config_text : "");
    sw->samples = o->ident.samples;
    size_t slab = (size_t)SWARM_MAX_SLOTS * sw->samples;
    sw->cur.codes = malloc(slab);
    sw->ahead.codes = malloc(slab);
    if (!sw->config_text || !sw->cur.codes || !sw->ahead.codes)
        return err_set(e, "out of memory for the swarm");
    sw->ahead.step = UINT32_MAX;
    sw->cur.step = UINT32_MAX;
    if (ledger_load(sw, o->records, o->records_len, e)) return -1;
    int joining = sw->join[0] != 0;
    if (fabric_open(&sw->fab, sw->provider, sw->listen, joining ? sw->join : NULL, e))
        return -1;
    if (!joining) {
        sw->standing = KEEPING;
        sw->slot = 0;
        sw->keeper = 0;
        sw->peers[0].state = MEMBER;
        snprintf(sw->peers[0].addr, sizeof sw->peers[0].addr, "%s", fabric_name(sw->fab));
        event(sw, "swarm keeper listening at %s (%s)", fabric_name(sw->fab), sw->provider);
        return 0;
    }
    sw->standing = JOINING;
    sw->slot = SWARM_NO_SLOT;
    sw->keeper = 0;
    Peer *k = &sw->peers[0];
    k->state = MEMBER;
    snprintf(k->addr, sizeof k->addr, "%s", sw->join);
    return 0;
}

void swarm_leave(Swarm *sw)
{
    if (!sw || !sw->fab || sw->left || sw->standing == JOINING) return;
    sw->left = 1;
    Err e;
    SwarmMsg m = {.type = SW_LEAVE, .step = sw->next_step};
    if (sw->standing == KEEPING) {
        for (int s = 0; s < SWARM_MAX_SLOTS; s++)
            if (sw->peers[s].state != FREE && (uint32_t)s != sw->slot)
                send_to(sw, (uint32_t)s, &m, &e);
    } else {
        send_to(sw, sw->keeper, &m, &e);
    }
    /* out before the checkpoint's write, while nothing else drives the fabric */
    fabric_flush(sw->fab, 1.0);
}

void swarm_close(Swarm *sw, int done)
{
    if (!sw) return;
    if (!done) swarm_leave(sw);
    fabric_close(sw->fab, sw->standing == KEEPING ? 2.0 : 0.5);
    free(sw->config_text);
    free(sw->led);
    free(sw->step_end);
    free(sw->chain);
    free(sw->queue);
    for (int i = 0; i < PENDING; i++) free(sw->pending[i]);
    free(sw->cur.codes);
    free(sw->ahead.codes);
    free(sw->dec_codes);
    free(sw);
}

void swarm_stats(const Swarm *sw, SwarmStats *s) { *s = sw->st; }
uint32_t swarm_slot(const Swarm *sw) { return sw->slot; }
const char *swarm_address(const Swarm *sw) { return fabric_name(sw->fab); }

/* ---- a newcomer's first question ------------------------------------------ */

int swarm_fetch_config(const char *provider, const char *keeper, char **text, size_t *len,
                       uint32_t *step, Err *e)
{
    Fabric *f;
    *text = NULL;
    if (fabric_open(&f, provider, NULL, keeper, e)) return -1;
    FabricAddr to;
    int rc = fabric_peer(f, keeper, &to, e);
    uint8_t *buf = malloc(SWARM_MSG_MAX);
    if (!rc && !buf) rc = err_set(e, "out of memory");
    SwarmMsg q = {.type = SW_CONFIG_REQ, .slot = SWARM_NO_SLOT};
    snprintf(q.addr, sizeof q.addr, "%s", fabric_name(f));
    int got = 0;
    /* the keeper answers between its steps: ask again now and then */
    for (int tries = 0; !rc && !got && tries < 12; tries++) {
        size_t n = swarm_msg_encode(&q, buf, SWARM_MSG_MAX, e);
        if (!n || fabric_send(f, to, buf, n, e)) {
            rc = -1;
            break;
        }
        double t0 = comm_wtime();
        while (!got && comm_wtime() - t0 < CONFIG_TIMEOUT_S) {
            size_t mlen;
            int r = fabric_recv(f, buf, SWARM_MSG_MAX, &mlen, 0.2, e);
            if (r < 0) rc = -1;
            if (r <= 0) {
                if (rc) break;
                continue;
            }
            SwarmMsg m;
            Err bad;
            if (swarm_msg_decode(buf, mlen, &m, &bad) || m.type != SW_CONFIG) continue;
            *text = malloc(m.blob_len + 1);
            if (!*text) {
                rc = err_set(e, "out of memory");
                break;
            }
            memcpy(*text, m.blob, m.blob_len);
            (*text)[m.blob_len] = 0;
            *len = m.blob_len;
            *step = m.step;
            got = 1;
        }
    }
    if (!rc && !got)
        rc = err_set(e, "no swarm keeper answers at %s (%s provider, 12 tries of %.0f s): is the "
                        "run started with --swarm-listen there, and is the address reachable "
                        "from this host?", keeper, provider, CONFIG_TIMEOUT_S);
    free(buf);
    fabric_close(f, 0.2);
    return rc;
}
