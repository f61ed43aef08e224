/* Elastic DiLoCo's protocol (worker/method/elastic/elastic.h, docs/elastic.md):
 * one keeper decides who is in each outer round; the contributors sum their
 * pseudo-gradients directly, segment by segment; the keeper commits. */
#include "worker/method/elastic/elastic.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "base/le.h"
#include "base/quant.h"
#include "comm/fabric/fabric.h"
#include "worker/method/swarm/events.h"

/* payload bytes per data message: under the tcp provider's eager size
 * (rxm's 16 KB), as the swarm's journal chunks */
#define CHUNK_BYTES (12u << 10)
#define STATE_FLOATS (CHUNK_BYTES / 4)
#define MAX_SLOTS SWARM_MAX_SLOTS
#define STASH_BYTES ((size_t)256 << 20)
#define JOIN_TIMEOUT_S 120.0
#define POLL_S 0.02

enum { FREE = 0, MEMBER, FOLLOWER };

typedef struct {
    int state;
    char addr[SWARM_ADDR_LEN];
    FabricAddr fa;
    int have_fa;
    int misses;
    int leaving;     /* said LEAVE: not waited for, removed at the next decision */
    int ready;       /* keeper: its READY of the current round is in */
    uint32_t since;  /* keeper: the round it was welcomed in */
    uint32_t weight; /* ... with this many inner steps */
} Peer;

/* The round in flight on this machine. */
typedef struct {
    uint32_t k;
    size_t from, to;  /* the values it synchronises (elastic_fragment) */
    uint32_t term;    /* of the keeper that decided it */
    int decided;
    int closed;       /* 1 committed, 2 void */
    int me;           /* this machine's contributor index, -1: not one */
    uint32_t np, slots[MAX_SLOTS], weights[MAX_SLOTS];
    uint64_t wsum;
    uint32_t nr, recv[MAX_SLOTS]; /* the roster but this machine: who gets the mean */
    size_t lo[MAX_SLOTS + 1];     /* segment j is [lo[j], lo[j+1]) */
    size_t cbase[MAX_SLOTS + 1];  /* its first chunk among all */
    uint8_t *piece_got;           /* np x the chunks of this machine's segment */
    size_t pieces_left;
    uint8_t *mean_got;            /* every chunk of the mean */
    size_t means_left;
    int have[MAX_SLOTS], haves;   /* keeper: contributors holding the whole mean */
    int have_sent;
    /* the sends still to go: this machine's pieces (owner, chunk), then its
     * segment's mean (chunk, recipient) */
    const float *delta;
    uint32_t p_owner;
    size_t p_chunk;
    int reduced;
    unsigned char *mean_wire;
    size_t m_chunk;
    uint32_t m_to;
    double t_ready, t_decided;
    double t_wait;    /* a member: since when it waits for this keeper */
    int ready_sent;
    int begun;        /* elastic_begin was called: its delta is in */
    double t_done;    /* overlap: when the exchange was seen done between steps */
} Round;

struct Elastic {
    ElasticOptions o;
    char provider[16], listen[SWARM_ADDR_LEN], join[SWARM_ADDR_LEN];
    char *config_text;
    Fabric *fab;
    uint32_t slot, keeper, epoch;
    uint32_t term;  /* the keeper's term: one more at each take-over */
    int keeping, joined, left;
    int counted;    /* this machine has contributed to a round: a member */
    Peer peers[MAX_SLOTS];
    float *global, *mom;
    float *mean, *parts, *x;
    unsigned char *wbuf;
    float *send_err, *sum_err;
    size_t chunk; /* values per PIECE/MEAN */
    Round r;
    uint64_t chain;
    /* messages of a round not yet reached here, and HELLOs the keeper
     * answers once no exchange is in flight */
    uint8_t **stash;
    size_t *stash_len, n_stash, cap_stash, stash_bytes;
    int stash_due; /* replay the stash at the next call */
    double alive_sent; /* the keeper's last sign of life */
    int dropped;   /* the keeper dropped this machine: it rejoins */
    char drop_why[SWARM_TEXT_LEN];
    int ended;     /* dropped, it learnt that the run ended without it */
    /* keeper: the addresses it dropped, told at the run's end that it ended */
    char gone[MAX_SLOTS][SWARM_ADDR_LEN];
    uint32_t n_gone;
    double longest_exchange_s, round_work_s, returned_at;
    int progress_failed; /* elastic_progress met an error: progress_err, for elastic_poll */
    int late;            /* overlap: the round after the one in flight was decided without it */
    Err progress_err;
    uint8_t in[SWARM_MSG_MAX], out[SWARM_MSG_MAX];
    ElasticStats st;
    uint64_t sent_mark;
    int rejoins, takeovers;
    uint32_t last_slots[MAX_SLOTS], last_weights[MAX_SLOTS]; /* the last round's, for the caller */
    EventRing events;
};

static void event(Elastic *el, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(Elastic *el, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    events_vadd(&el->events, fmt, ap);
    va_end(ap);
}

const char *elastic_next_event(Elastic *el)
{
    return events_next(&el->events);
}

/* ---- sending ---------------------------------------------------------- */

static int peer_addr(Elastic *el, uint32_t slot, FabricAddr *fa, Err *e)
{
    Peer *p = &el->peers[slot];
    if (!p->have_fa) {
        if (fabric_peer(el->fab, p->addr, &p->fa, e)) return -1;
        p->have_fa = 1;
    }
    *fa = p->fa;
    return 0;
}

static int send_to_addr(Elastic *el, FabricAddr to, SwarmMsg *m, Err *e)
{
    m->slot = el->joined ? el->slot : SWARM_NO_SLOT;
    /* a round's data carries the term of the keeper that decided it, which
     * a new keeper settling that round does not change */
    m->term = m->type == SW_PIECE || m->type == SW_MEAN ? el->r.term : el->term;
    size_t n = swarm_msg_encode(m, el->out, sizeof el->out, e);
    if (!n) return err_wrap(e, "internal error encoding an elastic %s", swarm_type_name(m->type));
    if (fabric_send(el->fab, to, el->out, n, e)) return -1;
    el->st.bytes_sent += n;
    return 0;
}

/* To a slot; a peer whose address will not resolve is skipped (it is
 * about to be dropped), not an error of this machine. */
static int send_to(Elastic *el, uint32_t slot, SwarmMsg *m, Err *e)
{
    FabricAddr fa;
    Err ignored;
    if (peer_addr(el, slot, &fa, &ignored)) return 0;
    return send_to_addr(el, fa, m, e);
}

static int send_text(Elastic *el, FabricAddr to, int type, const char *text, Err *e)
{
    SwarmMsg m = {.type = (uint8_t)type};
    snprintf(m.text, sizeof m.text, "%s", text);
    return send_to_addr(el, to, &m, e);
}

static int room_for(Elastic *el, uint32_t slot)
{
    FabricAddr fa;
    Err ignored;
    if (peer_addr(el, slot, &fa, &ignored)) return 1 << 20; /* nothing will go: no limit */
    return fabric_room(el->fab, fa);
}

/* ---- the roster ------------------------------------------------------- */

static int count_state(const Elastic *el, int state)
{
    int n = 0;
    for (int s = 0; s < MAX_SLOTS; s++) n += el->peers[s].state == state && !el->peers[s].leaving;
    return n;
}

static uint32_t lowest_member(const Elastic *el)
{
    for (uint32_t s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state == MEMBER && !el->peers[s].leaving) return s;
    return el->slot;
}

static int lowest_free_slot(const Elastic *el)
{
    for (int s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state == FREE) return s;
    return -1;
}

/* The hash every machine's outer state must share at a round's start. */
static uint64_t state_hash(const Elastic *el)
{
    uint64_t h = fnv1a64(FNV1A64_INIT, el->global, el->o.n * sizeof(float));
    return fnv1a64(h, el->mom, el->o.n * sizeof(float));
}

/* The run's history: every round's contributors, weights and outcome. */
static uint64_t chain_round(uint64_t chain, const Round *r, int committed)
{
    uint8_t b[12];
    le_put32(b, r->k);
    le_put32(b + 4, r->np);
    le_put32(b + 8, (uint32_t)committed);
    chain = fnv1a64(chain, b, sizeof b);
    for (uint32_t i = 0; i < r->np; i++) {
        le_put32(b, r->slots[i]);
        le_put32(b + 4, r->weights[i]);
        chain = fnv1a64(chain, b, 8);
    }
    return chain;
}

/* ---- the stash -------------------------------------------------------- */

static void stash_add(Elastic *el, const uint8_t *b, size_t n)
{
    if (el->stash_bytes + n > STASH_BYTES) return; /* a flood: what is lost is re-sent or voided */
    if (el->n_stash == el->cap_stash) {
        size_t cap = el->cap_stash ? 2 * el->cap_stash : 64;
        uint8_t **a = realloc(el->stash, cap * sizeof *a);
        if (a) el->stash = a;
        size_t *l = realloc(el->stash_len, cap * sizeof *l);
        if (l) el->stash_len = l;
        if (!a || !l) return;
        el->cap_stash = cap;
    }
    uint8_t *c = malloc(n);
    if (!c) return;
    memcpy(c, b, n);
    el->stash[el->n_stash] = c;
    el->stash_len[el->n_stash++] = n;
    el->stash_bytes += n;
}

static int handle(Elastic *el, const uint8_t *b, size_t n, Err *e);

/* Hands every stashed message to handle again (those still early come
 * back into the stash). */
static int replay_stash(Elastic *el, Err *e)
{
    size_t count = el->n_stash;
    if (!count) return 0;
    uint8_t **items = el->stash;
    size_t *lens = el->stash_len;
    el->stash = NULL;
    el->stash_len = NULL;
    el->n_stash = el->cap_stash = el->stash_bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        if (!rc) rc = handle(el, items[i], lens[i], e);
        free(items[i]);
    }
    free(items);
    free(lens);
    return rc;
}

/* ---- segments and chunks --------------------------------------------- */

/* Values per PIECE/MEAN message: a whole number of quantization blocks
 * within CHUNK_BYTES, so a segment's blocks fall where a whole-segment
 * encoding would put them. */
static size_t chunk_values(WireFormat w)
{
    size_t v = QUANT_BLOCK;
    while (wire_bytes(w, v + QUANT_BLOCK) <= CHUNK_BYTES) v += QUANT_BLOCK;
    return v;
}

static size_t chunks_of(const Elastic *el, size_t len) { return (len + el->chunk - 1) / el->chunk; }

/* [lo, hi) of n split into parts whole blocks of QUANT_BLOCK values: part j. */
static void split_blocks(size_t n, uint32_t parts, uint32_t j, size_t *lo, size_t *hi)
{
    size_t blocks = (n + QUANT_BLOCK - 1) / QUANT_BLOCK;
    size_t a = blocks * j / parts * QUANT_BLOCK, b = blocks * (j + 1) / parts * QUANT_BLOCK;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

void elastic_fragment(size_t n, uint32_t fragments, uint32_t k, size_t *lo, size_t *hi)
{
    uint32_t f = fragments > 1 ? fragments : 1;
    split_blocks(n, f, k % f, lo, hi);
}

/* Segment bounds for np contributors within the round's fragment. */
static void plan_segments(Elastic *el, Round *r)
{
    r->cbase[0] = 0;
    for (uint32_t j = 0; j < r->np; j++) {
        size_t a, b;
        split_blocks(r->to - r->from, r->np, j, &a, &b);
        r->lo[j] = r->from + a;
        r->lo[j + 1] = r->from + b;
    }
    for (uint32_t j = 0; j < r->np; j++)
        r->cbase[j + 1] = r->cbase[j] + chunks_of(el, r->lo[j + 1] - r->lo[j]);
}

/* The owner of the value at off, or -1. */
static int owner_of(const Round *r, size_t off)
{
    for (uint32_t j = 0; j < r->np; j++)
        if (off >= r->lo[j] && off < r->lo[j + 1]) return (int)j;
    return -1;
}

static int contributor_index(const Round *r, uint32_t slot)
{
    for (uint32_t i = 0; i < r->np; i++)
        if (r->slots[i] == slot) return (int)i;
    return -1;
}

static void round_reset(Elastic *el, uint32_t k)
{
    Round *r = &el->r;
    free(r->piece_got);
    free(r->mean_got);
    free(r->mean_wire);
    memset(r, 0, sizeof *r);
    r->k = k;
    r->me = -1;
    elastic_fragment(el->o.n, el->o.fragments, k, &r->from, &r->to);
}

/* ---- the exchange ------------------------------------------------------ */

/* A chunk [off, off + len) of this machine's message: is it where chunks
 * start, and as long as a chunk there is? */
static int chunk_fits(const Elastic *el, size_t seg_lo, size_t seg_hi, size_t off, size_t len)
{
    if (off < seg_lo || off >= seg_hi || (off - seg_lo) % el->chunk) return 0;
    size_t want = seg_hi - off < el->chunk ? seg_hi - off : el->chunk;
    return len == want;
}

/* Sends this machine's pieces while the fabric has room; its own segment's
 * piece is decoded in place, as an owner decodes the others'. */
static int pump_pieces(Elastic *el, Err *e)
{
    Round *r = &el->r;
    while (r->p_owner < r->np) {
        uint32_t j = r->p_owner;
        size_t lo = r->lo[j], hi = r->lo[j + 1], nc = chunks_of(el, hi - lo);
        if (r->p_chunk >= nc) {
            r->p_owner++;
            r->p_chunk = 0;
            continue;
        }
        int own = (int)j == r->me;
        if (!own && room_for(el, r->slots[j]) < 1) return 0;
        size_t off = lo + r->p_chunk * el->chunk, len = hi - off < el->chunk ? hi - off : el->chunk;
        float *v = el->mean + off; /* scratch: the mean is written only after every piece */
        memcpy(v, r->delta + off, len * sizeof(float));
        wire_encode(el->o.wire, v, len, el->wbuf, el->send_err ? el->send_err + off : NULL, el->x);
        if (own) {
            size_t seg = (size_t)(r->lo[r->me + 1] - r->lo[r->me]), at = off - lo;
            memcpy(el->parts + (size_t)r->me * seg + at, v, len * sizeof(float));
            r->piece_got[(size_t)r->me * nc + r->p_chunk] = 1;
            r->pieces_left--;
        } else {
            SwarmMsg m = {.type = SW_PIECE, .step = r->k, .assigned = (uint32_t)off,
                          .samples = (uint32_t)len, .blob = el->wbuf,
                          .blob_len = (uint32_t)wire_bytes(el->o.wire, len)};
            if (send_to(el, r->slots[j], &m, e)) return -1;
        }
        r->p_chunk++;
    }
    return 0;
}

/* Every piece of this machine's segment is in: the weighted mean, summed
 * in slot order (the same bits whoever owns it), as it goes on the wire. */
static void reduce_segment(Elastic *el)
{
    Round *r = &el->r;
    size_t lo = r->lo[r->me], seg = r->lo[r->me + 1] - lo;
    float *out = el->mean + lo;
    for (size_t v = 0; v < seg; v++) out[v] = 0.0f;
    for (uint32_t i = 0; i < r->np; i++) {
        float w = (float)r->weights[i] / (float)r->wsum;
        const float *p = el->parts + (size_t)i * seg;
        for (size_t v = 0; v < seg; v++) out[v] += w * p[v];
    }
    r->mean_wire = malloc(wire_bytes(el->o.wire, el->chunk) * (chunks_of(el, seg) + 1));
    unsigned char *wp = r->mean_wire;
    for (size_t off = 0; wp && off < seg; off += el->chunk) {
        size_t len = seg - off < el->chunk ? seg - off : el->chunk;
        wire_encode(el->o.wire, out + off, len, wp, el->sum_err ? el->sum_err + lo + off : NULL, el->x);
        wp += wire_bytes(el->o.wire, len);
    }
    size_t c0 = r->cbase[r->me];
    for (size_t c = 0; c < chunks_of(el, seg); c++) {
        r->mean_got[c0 + c] = 1;
        r->means_left--;
    }
    r->reduced = 1;
}

/* Sends this machine's segment of the mean to the roster while there is room. */
static int pump_means(Elastic *el, Err *e)
{
    Round *r = &el->r;
    if (!r->reduced || !r->mean_wire) return 0;
    size_t lo = r->lo[r->me], seg = r->lo[r->me + 1] - lo, nc = chunks_of(el, seg);
    while (r->m_chunk < nc) {
        if (r->m_to >= r->nr) {
            r->m_to = 0;
            r->m_chunk++;
            continue;
        }
        uint32_t to = r->recv[r->m_to];
        if (room_for(el, to) < 1) return 0;
        size_t off = r->m_chunk * el->chunk, len = seg - off < el->chunk ? seg - off : el->chunk;
        SwarmMsg m = {.type = SW_MEAN, .step = r->k, .assigned = (uint32_t)(lo + off),
                      .samples = (uint32_t)len,
                      .blob = r->mean_wire + r->m_chunk * wire_bytes(el->o.wire, el->chunk),
                      .blob_len = (uint32_t)wire_bytes(el->o.wire, len)};
        if (send_to(el, to, &m, e)) return -1;
        r->m_to++;
    }
    return 0;
}

static int take_piece(Elastic *el, const SwarmMsg *m)
{
    Round *r = &el->r;
    int i = contributor_index(r, m->slot);
    if (r->me < 0 || i < 0 || r->reduced) return 0;
    size_t lo = r->lo[r->me], hi = r->lo[r->me + 1], off = m->assigned, len = m->samples;
    if (!chunk_fits(el, lo, hi, off, len) || m->blob_len != wire_bytes(el->o.wire, len)) return 0;
    size_t c = (off - lo) / el->chunk, nc = chunks_of(el, hi - lo);
    uint8_t *got = &r->piece_got[(size_t)i * nc + c];
    if (*got) return 0;
    *got = 1;
    wire_decode(el->o.wire, m->blob, len, el->parts + (size_t)i * (hi - lo) + (off - lo));
    r->pieces_left--;
    return 0;
}

static int take_mean(Elastic *el, const SwarmMsg *m)
{
    Round *r = &el->r;
    size_t off = m->assigned, len = m->samples;
    int j = owner_of(r, off);
    if (j < 0 || r->slots[j] != m->slot || j == r->me) return 0;
    if (!chunk_fits(el, r->lo[j], r->lo[j + 1], off, len) ||
        m->blob_len != wire_bytes(el->o.wire, len))
        return 0;
    size_t c = r->cbase[j] + (off - r->lo[j]) / el->chunk;
    if (r->mean_got[c]) return 0;
    r->mean_got[c] = 1;
    wire_decode(el->o.wire, m->blob, len, el->mean + off);
    r->means_left--;
    return 0;
}

/* ---- the keeper ------------------------------------------------------- */

static int refuse(Elastic *el, FabricAddr to, const char *why, Err *e)
{
    return send_text(el, to, SW_REFUSE, why, e);
}

/* The outer state to a newcomer, STATE_FLOATS at a time, global then
 * momentum, the last piece with the state's hash. */
static int stream_state(Elastic *el, FabricAddr to, Err *e)
{
    size_t total = 2 * el->o.n;
    uint64_t h = state_hash(el);
    for (size_t off = 0; off < total || off == 0; off += STATE_FLOATS) {
        size_t len = total - off < STATE_FLOATS ? total - off : STATE_FLOATS;
        for (size_t i = 0; i < len; i++) {
            size_t at = off + i;
            float v = at < el->o.n ? el->global[at] : el->mom[at - el->o.n];
            le_put_f32(el->wbuf + 4 * i, v);
        }
        SwarmMsg m = {.type = SW_STATE, .step = el->r.k, .assigned = (uint32_t)off,
                      .last = off + len >= total, .whash = h, .blob = el->wbuf,
                      .blob_len = (uint32_t)(4 * len)};
        if (send_to_addr(el, to, &m, e)) return -1;
        if (off + len >= total) break;
    }
    return 0;
}

static int keeper_hello(Elastic *el, const SwarmMsg *m, Err *e)
{
    FabricAddr to;
    Err bad;
    if (fabric_peer(el->fab, m->addr, &to, &bad)) return 0;
    if (!el->keeping) {
        char why[300];
        snprintf(why, sizeof why, "refused: %s is not the keeper of this run; join through the "
                 "machine at %s", fabric_name(el->fab), el->peers[el->keeper].addr);
        return refuse(el, to, why, e);
    }
    const ZoIdentity *a = &m->ident, *b = &el->o.ident;
    char why[400] = "";
    if (a->seed != b->seed)
        snprintf(why, sizeof why, "refused: this machine has seed %llu, the run's %llu",
                 (unsigned long long)a->seed, (unsigned long long)b->seed);
    else if (a->global_params != b->global_params)
        snprintf(why, sizeof why, "refused: this machine has a model of %llu trained parameters, "
                 "the run's %llu", (unsigned long long)a->global_params,
                 (unsigned long long)b->global_params);
    else if (a->base_id != b->base_id)
        snprintf(why, sizeof why, "refused: this machine has another frozen base (hash %016llx, "
                 "the run's %016llx: another --init-from)", (unsigned long long)a->base_id,
                 (unsigned long long)b->base_id);
    if (why[0]) {
        event(el, "refused %s: %s", m->addr, why + 9);
        return refuse(el, to, why, e);
    }
    for (int s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state == FOLLOWER && el->peers[s].since == el->r.k &&
            !strcmp(el->peers[s].addr, m->addr))
            return 0; /* said again while it waited: welcomed this round already */
    int slot = lowest_free_slot(el);
    if (slot < 0) return refuse(el, to, "refused: the run is full", e);
    Peer *p = &el->peers[slot];
    memset(p, 0, sizeof *p);
    p->state = FOLLOWER;
    p->since = el->r.k;
    snprintf(p->addr, sizeof p->addr, "%s", m->addr);
    p->fa = to;
    p->have_fa = 1;
    SwarmEntry list[MAX_SLOTS];
    uint32_t n = 0;
    for (int s = 0; s < MAX_SLOTS; s++) {
        if (el->peers[s].state == FREE || el->peers[s].leaving || s == slot) continue;
        list[n].slot = (uint32_t)s;
        list[n].kind = el->peers[s].state == MEMBER ? SW_MEMBER : SW_FOLLOWER;
        snprintf(list[n].addr, sizeof list[n].addr, "%s", el->peers[s].addr);
        n++;
    }
    SwarmMsg w = {.type = SW_WELCOME, .step = el->r.k, .epoch = el->epoch,
                  .assigned = (uint32_t)slot, .entries = list, .n_entries = n};
    event(el, "machine %s said hello in round %u: slot %d, receiving the outer state (%.1f MB)",
          m->addr, el->r.k + 1, slot, 8.0 * el->o.n / 1e6);
    if (send_to_addr(el, to, &w, e)) return -1;
    return stream_state(el, to, e);
}

static int keeper_ready(Elastic *el, const SwarmMsg *m)
{
    if (m->slot >= MAX_SLOTS) return 0;
    Peer *p = &el->peers[m->slot];
    if (p->state == FREE || p->leaving) return 0;
    if (m->whash != state_hash(el)) {
        /* not counted: a machine that diverged misses its deadlines, is
         * dropped and rejoins with the run's state; a forged READY drops
         * nobody */
        event(el, "machine %u (%s) is ready for round %u from another outer state (hash "
              "%016llx, this keeper's %016llx): not counted", m->slot, p->addr, el->r.k + 1,
              (unsigned long long)m->whash, (unsigned long long)state_hash(el));
        return 0;
    }
    p->ready = 1;
    p->weight = m->assigned ? m->assigned : 1;
    return 0;
}

/* Ready machines by kind, this keeper included. */
/* Ready machines, this keeper included: of the members (the majority
 * counts them), of those it waits for (the members and the followers
 * welcomed before this round: a newcomer whose first whole round this is
 * would otherwise stay a step behind for good), and of all. */
static void ready_counts(const Elastic *el, int *members, int *ready_members, int *expected,
                         int *ready_expected, int *ready_all)
{
    *members = *ready_members = *expected = *ready_expected = *ready_all = 0;
    for (int s = 0; s < MAX_SLOTS; s++) {
        const Peer *p = &el->peers[s];
        if (p->state == FREE || p->leaving) continue;
        int waited_for = p->state == MEMBER || p->since < el->r.k;
        *members += p->state == MEMBER;
        *ready_members += p->state == MEMBER && p->ready;
        *expected += waited_for;
        *ready_expected += waited_for && p->ready;
        *ready_all += p->ready;
    }
}

/* Decide now? 1 yes, 0 not yet, -1 no majority for too long. */
static int time_to_decide(const Elastic *el)
{
    int members, ready_m, expected, ready_e, ready_all;
    ready_counts(el, &members, &ready_m, &expected, &ready_e, &ready_all);
    double waited = comm_wtime() - el->r.t_ready;
    uint32_t k = el->r.k;
    int stopping = el->o.stop && *el->o.stop;
    if (k == 0 && ready_all < el->o.wait_for && !stopping) return 0;
    if (el->o.hold_for > 0 && !stopping && k + 1 == el->o.hold_round && ready_all < el->o.hold_for &&
        waited < 120.0)
        return 0;
    if (ready_e == expected) return 1;
    if (waited < el->o.deadline_s) return 0;
    if (2 * ready_m > members) return 1;
    return waited > el->o.deadline_s * (el->o.misses + 1) ? -1 : 0;
}

static void take_roster_entry(Elastic *el, uint32_t slot, int state, const char *addr)
{
    Peer *p = &el->peers[slot];
    if (p->state == FREE || strcmp(p->addr, addr)) {
        memset(p, 0, sizeof *p);
        snprintf(p->addr, sizeof p->addr, "%s", addr);
    }
    p->state = state;
}

/* The round's contributors and recipients, from the roster as decided. */
static int start_exchange(Elastic *el, Err *e);

static int keeper_decide(Elastic *el, Err *e)
{
    Round *r = &el->r;
    int changed = 0;
    r->np = 0;
    r->wsum = 0;
    for (uint32_t s = 0; s < MAX_SLOTS; s++) {
        Peer *p = &el->peers[s];
        if (p->state == FREE) continue;
        if (p->leaving) {
            event(el, "machine %u (%s) left before round %u", s, p->addr, r->k + 1);
            p->state = FREE;
            changed = 1;
            continue;
        }
        if (p->ready) {
            if (p->state == FOLLOWER) {
                event(el, "machine %u (%s) counts from round %u", s, p->addr, r->k + 1);
                p->state = MEMBER;
                changed = 1;
            }
            p->misses = 0;
            r->slots[r->np] = s;
            r->weights[r->np++] = p->weight;
            r->wsum += p->weight;
        } else if (++p->misses >= el->o.misses + (p->state == FOLLOWER)) {
            /* a follower's first round may be late (it joined during it):
             * one miss more */
            char why[300];
            snprintf(why, sizeof why, "round %u: missed %d deadlines in a row", r->k + 1,
                     p->misses);
            event(el, "machine %u (%s) was dropped: missed its deadlines %d times", s, p->addr,
                  p->misses);
            SwarmMsg d = {.type = SW_DROPPED};
            snprintf(d.text, sizeof d.text, "%s", why);
            send_to(el, s, &d, e);
            snprintf(el->gone[el->n_gone++ % MAX_SLOTS], SWARM_ADDR_LEN, "%s", p->addr);
            p->state = FREE;
            changed = 1;
        }
        p->ready = 0;
    }
    if (changed) el->epoch++;
    uint8_t table[8 * MAX_SLOTS];
    for (uint32_t i = 0; i < r->np; i++) {
        le_put32(table + 8 * i, r->slots[i]);
        le_put32(table + 8 * i + 4, r->weights[i]);
    }
    SwarmEntry list[MAX_SLOTS];
    uint32_t n = 0;
    for (uint32_t s = 0; s < MAX_SLOTS; s++) {
        if (el->peers[s].state == FREE) continue;
        list[n].slot = s;
        list[n].kind = el->peers[s].state == MEMBER ? SW_MEMBER : SW_FOLLOWER;
        snprintf(list[n].addr, sizeof list[n].addr, "%s", el->peers[s].addr);
        n++;
    }
    SwarmMsg m = {.type = SW_ROUND, .step = r->k, .epoch = el->epoch, .chain = el->chain,
                  .whash = state_hash(el), .blob = table, .blob_len = 8 * r->np,
                  .entries = list, .n_entries = n};
    for (uint32_t i = 0; i < n; i++)
        if (list[i].slot != el->slot && send_to(el, list[i].slot, &m, e)) return -1;
    r->decided = 1;
    r->term = el->term;
    if (el->o.die_round && r->k + 1 == el->o.die_round) {
        fprintf(stderr, "mpitrain: test hook MPITRAIN_TEST_ELASTIC_DIE fires in round %u\n", r->k + 1);
        raise(SIGKILL);
    }
    return start_exchange(el, e);
}

static double exchange_patience(const Elastic *el)
{
    double bytes = 2.0 * (double)wire_bytes(el->o.wire, el->r.to - el->r.from);
    double first = 60.0 + bytes / 1.0e6; /* a round's exchange is slower than 1 MB/s: a link of 8 Mbit/s */
    double p = el->longest_exchange_s > 0 ? 10.0 + 5.0 * el->longest_exchange_s : first;
    return el->o.deadline_s + p;
}

static int close_round(Elastic *el, int committed, Err *e);

/* Every contributor still in the roster holds the whole mean. A keeper
 * that died after its commit reached some machines has committed only
 * when all did, so a new keeper that finds the same commits too; one that
 * finds a contributor without the mean voids (nobody can have committed). */
static int all_alive_have(const Elastic *el)
{
    const Round *r = &el->r;
    for (uint32_t i = 0; i < r->np; i++)
        if (!r->have[i] && el->peers[r->slots[i]].state != FREE) return 0;
    return 1;
}

/* While the keeper waits (for machines, or for a slow exchange), a KEEPER
 * of its own term every deadline: a sign of life that keeps the members
 * from taking over (follow_keeper ignores a term it already has). */
static int sign_of_life(Elastic *el, Err *e)
{
    double t = comm_wtime(), every = el->o.deadline_s < 1.0 ? 1.0 : el->o.deadline_s;
    if (t - el->alive_sent < every) return 0;
    el->alive_sent = t;
    SwarmMsg m = {.type = SW_KEEPER, .step = el->r.k, .assigned = el->slot};
    for (uint32_t s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state != FREE && s != el->slot && send_to(el, s, &m, e)) return -1;
    return 0;
}

static int keeper_tick(Elastic *el, Err *e)
{
    Round *r = &el->r;
    if (r->ready_sent && !r->closed && sign_of_life(el, e)) return -1;
    if (!r->decided) {
        if (!r->ready_sent) return 0;
        int t = time_to_decide(el);
        if (t < 0) {
            int members, ready_m, expected, ready_e, ready_all;
            ready_counts(el, &members, &ready_m, &expected, &ready_e, &ready_all);
            return err_set(e, "elastic: lost contact with the majority of the roster in round %u "
                              "(%d of %d machines ready at this keeper, slot %u): stopping here so "
                              "that the run keeps one history",
                           r->k + 1, ready_m, members, el->slot);
        }
        return t ? keeper_decide(el, e) : 0;
    }
    if (r->closed) return 0;
    if (all_alive_have(el)) return close_round(el, 1, e);
    if (comm_wtime() - r->t_decided > exchange_patience(el)) {
        event(el, "round %u is void: %d of %u contributors hold the whole mean after %.0f s",
              r->k + 1, r->haves, r->np, comm_wtime() - r->t_decided);
        for (uint32_t i = 0; i < r->np; i++)
            if (!r->have[i] && r->slots[i] != el->slot) el->peers[r->slots[i]].misses++;
        return close_round(el, 0, e);
    }
    return 0;
}

/* ---- every machine ---------------------------------------------------- */

static int start_exchange(Elastic *el, Err *e)
{
    Round *r = &el->r;
    r->t_decided = comm_wtime();
    r->me = contributor_index(r, el->slot);
    r->nr = 0;
    for (uint32_t s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state != FREE && s != el->slot) r->recv[r->nr++] = s;
    if (!r->np) return err_set(e, "elastic: round %u has no contributors", r->k + 1);
    plan_segments(el, r);
    r->mean_got = calloc(r->cbase[r->np] + 1, 1);
    r->means_left = r->cbase[r->np];
    if (r->me >= 0) {
        size_t nc = chunks_of(el, r->lo[r->me + 1] - r->lo[r->me]);
        r->piece_got = calloc((size_t)r->np * nc + 1, 1);
        r->pieces_left = (size_t)r->np * nc;
    }
    if (!r->mean_got || (r->me >= 0 && !r->piece_got))
        return err_set(e, "out of memory for round %u's exchange", r->k + 1);
    el->sent_mark = el->st.bytes_sent;
    return replay_stash(el, e);
}

static int take_round(Elastic *el, const SwarmMsg *m, Err *e)
{
    Round *r = &el->r;
    if (m->blob_len % 8 || m->blob_len / 8 > MAX_SLOTS) return 0;
    for (uint32_t s = 0; s < MAX_SLOTS; s++) {
        if (el->peers[s].state == FREE) continue;
        int listed = 0;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            SwarmEntry en;
            swarm_msg_entry(m, i, &en);
            listed |= en.slot == s;
        }
        if (!listed) el->peers[s].state = FREE;
    }
    int in = 0;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        SwarmEntry en;
        swarm_msg_entry(m, i, &en);
        if (en.slot >= MAX_SLOTS) continue;
        take_roster_entry(el, en.slot, en.kind == SW_MEMBER ? MEMBER : FOLLOWER, en.addr);
        in |= en.slot == el->slot;
    }
    if (!in) {
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "round %u was decided without this machine "
                 "in the roster", r->k + 1);
        return 0;
    }
    el->epoch = m->epoch;
    el->chain = m->chain;
    r->np = m->blob_len / 8;
    r->wsum = 0;
    for (uint32_t i = 0; i < r->np; i++) {
        r->slots[i] = le_get32(m->blob + 8 * i);
        r->weights[i] = le_get32(m->blob + 8 * i + 4);
        if (r->slots[i] >= MAX_SLOTS || !r->weights[i] || (i && r->slots[i] <= r->slots[i - 1]))
            return err_set(e, "elastic: the keeper's ROUND %u has a malformed contributor table",
                           r->k + 1);
        r->wsum += r->weights[i];
    }
    if (m->whash != state_hash(el)) {
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "its outer state at round %u (hash %016llx) "
                 "is not the keeper's (%016llx)", r->k + 1, (unsigned long long)state_hash(el),
                 (unsigned long long)m->whash);
        return 0;
    }
    r->decided = 1;
    r->term = m->term;
    if (m->term > el->term) el->term = m->term;
    if (contributor_index(r, el->slot) >= 0) el->counted = 1;
    return start_exchange(el, e);
}

static int close_round(Elastic *el, int committed, Err *e)
{
    Round *r = &el->r;
    if (el->keeping) {
        uint64_t chain = chain_round(el->chain, r, committed);
        SwarmMsg m = {.type = SW_COMMIT, .step = r->k, .last = (uint8_t)committed, .chain = chain};
        for (uint32_t i = 0; i < r->nr; i++)
            if (send_to(el, r->recv[i], &m, e)) return -1;
    }
    r->closed = committed ? 1 : 2;
    return 0;
}

static int take_commit(Elastic *el, const SwarmMsg *m, Err *e)
{
    Round *r = &el->r;
    if (!r->decided) return 0;
    uint64_t chain = chain_round(el->chain, r, m->last);
    if (chain != m->chain) {
        (void)e;
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "round %u's history here (chain %016llx) is "
                 "not the keeper's (%016llx)", r->k + 1, (unsigned long long)chain,
                 (unsigned long long)m->chain);
        return 0;
    }
    r->closed = m->last ? 1 : 2;
    return 0;
}

/* What a member resends to a new keeper: its READY while the round is
 * undecided, its HAVE once it holds the whole mean. */
static int tell_keeper(Elastic *el, Err *e)
{
    Round *r = &el->r;
    r->t_wait = comm_wtime();
    if (r->ready_sent && !r->decided) {
        SwarmMsg m = {.type = SW_READY, .step = r->k, .assigned = el->peers[el->slot].weight,
                      .chain = el->chain, .whash = state_hash(el)};
        return send_to(el, el->keeper, &m, e);
    }
    if (r->decided && !r->closed && r->have_sent)
        return send_to(el, el->keeper, &(SwarmMsg){.type = SW_HAVE, .step = r->k}, e);
    return 0;
}

/* This machine keeps the run from here, in a new term: it tells the roster,
 * then settles the round in flight as any keeper would (its own READY and
 * HAVE stand; the others resend theirs). */
static int become_keeper(Elastic *el, uint32_t gone, Err *e)
{
    Round *r = &el->r;
    el->keeping = 1;
    el->keeper = el->slot;
    el->term++;
    for (int s = 0; s < MAX_SLOTS; s++) el->peers[s].ready = 0;
    el->peers[el->slot].ready = r->ready_sent;
    r->t_ready = comm_wtime();
    memset(r->have, 0, sizeof r->have);
    r->haves = 0;
    if (r->decided && r->me >= 0 && r->have_sent) {
        r->have[r->me] = 1;
        r->haves = 1;
    }
    SwarmMsg m = {.type = SW_KEEPER, .step = r->k, .assigned = gone};
    for (uint32_t s = 0; s < MAX_SLOTS; s++)
        if (el->peers[s].state != FREE && s != el->slot && send_to(el, s, &m, e)) return -1;
    /* a contributor without the whole mean never said HAVE, so the round
     * was not committed anywhere: void it now rather than wait */
    if (r->decided && !r->closed && r->me >= 0 && !r->have_sent) {
        event(el, "round %u is void: its keeper went silent before this machine had the whole "
              "mean", r->k + 1);
        return close_round(el, 0, e);
    }
    return 0;
}

/* The keeper is gone (it left, or went silent): the lowest member left
 * keeps the run, this machine or another. */
static int next_keeper(Elastic *el, uint32_t gone, const char *how, Err *e)
{
    if (gone < MAX_SLOTS) el->peers[gone].state = FREE;
    el->keeper = lowest_member(el);
    event(el, "the keeper (machine %u) %s; machine %u keeps the run from round %u", gone, how,
          el->keeper, el->r.k + 1);
    if (el->keeper == el->slot) return become_keeper(el, gone, e);
    return tell_keeper(el, e);
}

/* A new keeper announced itself (KEEPER of a higher term). */
static int follow_keeper(Elastic *el, const SwarmMsg *m, Err *e)
{
    if (m->slot >= MAX_SLOTS || m->term <= el->term) return 0;
    el->term = m->term;
    if (el->keeping || m->assigned == el->slot) {
        /* superseded: the others followed a new keeper while this one was
         * silent; back in as a newcomer */
        el->keeping = 0;
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "machine %u took over as keeper in term %u",
                 m->slot, m->term);
        el->keeper = m->slot;
        return 0;
    }
    if (m->assigned < MAX_SLOTS && m->assigned != m->slot) el->peers[m->assigned].state = FREE;
    el->keeper = m->slot;
    if (el->peers[m->slot].state == FREE) el->peers[m->slot].state = MEMBER;
    event(el, "machine %u took over as keeper in round %u (term %u)", m->slot, el->r.k + 1,
          m->term);
    return tell_keeper(el, e);
}

static int reply_config(Elastic *el, const SwarmMsg *m, Err *e)
{
    FabricAddr to;
    Err bad;
    if (!el->keeping || fabric_peer(el->fab, m->addr, &to, &bad)) return 0;
    SwarmMsg r = {.type = SW_CONFIG, .step = el->r.k, .blob = (const uint8_t *)el->config_text,
                  .blob_len = (uint32_t)strlen(el->config_text)};
    return send_to_addr(el, to, &r, e);
}

/* A HELLO that must wait for the round's end: kept once per address (a
 * joiner says it again while it waits), and the joiner told that the
 * keeper is alive (a KEEPER message), so that it waits on. */
static int hold_hello(Elastic *el, const SwarmMsg *m, const uint8_t *b, size_t n, Err *e)
{
    int held = 0;
    for (size_t i = 0; i < el->n_stash && !held; i++) {
        SwarmMsg h;
        Err bad;
        held = !swarm_msg_decode(el->stash[i], el->stash_len[i], &h, &bad) && h.type == SW_HELLO &&
               !strcmp(h.addr, m->addr);
    }
    if (!held) stash_add(el, b, n);
    FabricAddr to;
    Err bad;
    if (fabric_peer(el->fab, m->addr, &to, &bad)) return 0;
    SwarmMsg w = {.type = SW_KEEPER, .step = el->r.k, .assigned = el->slot};
    return send_to_addr(el, to, &w, e);
}

/* A ROUND's contributor table (u32 slot, u32 weight each) names slot. */
static int names_slot(const SwarmMsg *m, uint32_t slot)
{
    for (uint32_t i = 0; i + 8 <= m->blob_len; i += 8)
        if (le_get32(m->blob + i) == slot) return 1;
    return 0;
}

/* A dropped machine told by the keeper that the run ended (SW_STOP): it
 * ends too, with the run's weights as it last had them. */
static void run_ended(Elastic *el, const SwarmMsg *m)
{
    el->ended = 1;
    event(el, "the run ended (%s) before this machine could rejoin: it ends with the run's "
              "weights of round %u", m->text, el->r.k);
}

/* One message, whatever this machine is doing. */
static int handle(Elastic *el, const uint8_t *b, size_t n, Err *e)
{
    SwarmMsg m;
    Err bad;
    if (swarm_msg_decode(b, n, &m, &bad)) return 0; /* garbage: dropped */
    Round *r = &el->r;
    if (!el->keeping && el->joined && m.slot == el->keeper) r->t_wait = comm_wtime(); /* alive */
    int exchanging = r->decided && !r->closed;
    switch (m.type) {
    case SW_CONFIG_REQ: return reply_config(el, &m, e);
    case SW_HELLO:
        /* the state it needs is the next round's start: a round decided
         * holds it until the round has ended here (with overlap, at the
         * end of this machine's next round) */
        if (r->decided && (exchanging || r->begun) && el->keeping) return hold_hello(el, &m, b, n, e);
        return keeper_hello(el, &m, e);
    case SW_READY:
        if (!el->keeping || m.step < r->k) return 0;
        if (m.step > r->k || r->decided) {
            if (m.step > r->k) stash_add(el, b, n);
            return 0;
        }
        return keeper_ready(el, &m);
    case SW_ROUND:
        if (el->keeping || m.step < r->k || m.slot != el->keeper || m.term < el->term) return 0;
        if (m.step > r->k) {
            /* with overlap, the next round decided while this machine still
             * computes it: without it, it skips to that round's end */
            if (m.step == r->k + 1 && r->begun && !names_slot(&m, el->slot)) el->late = 1;
            stash_add(el, b, n);
            return 0;
        }
        return r->decided ? 0 : take_round(el, &m, e);
    case SW_PIECE:
    case SW_MEAN:
        /* the COMMIT waits only for the contributors' HAVE: a machine that
         * is not one (late for the round) may read it before the last of
         * the mean, which it still takes */
        if (m.step < r->k ||
            (m.step == r->k && r->closed && !(m.type == SW_MEAN && r->closed == 1 && r->means_left)))
            return 0;
        if (m.step > r->k || !r->decided) {
            stash_add(el, b, n);
            return 0;
        }
        if (m.term != r->term) return 0; /* another keeper's decision */
        return m.type == SW_PIECE ? take_piece(el, &m) : take_mean(el, &m);
    case SW_HAVE: {
        if (!el->keeping || m.step != r->k || !r->decided) return 0;
        int i = contributor_index(r, m.slot);
        if (i >= 0 && !r->have[i]) {
            r->have[i] = 1;
            r->haves++;
        }
        return 0;
    }
    case SW_COMMIT:
        if (el->keeping || m.slot != el->keeper || m.step < r->k || m.term < r->term) return 0;
        if (m.step > r->k || !r->decided) {
            stash_add(el, b, n);
            return 0;
        }
        return take_commit(el, &m, e);
    case SW_LEAVE:
        if (m.slot >= MAX_SLOTS || el->peers[m.slot].state == FREE) return 0;
        if (m.slot == el->keeper && !el->keeping) return next_keeper(el, m.slot, "left", e);
        if (el->keeping) {
            el->peers[m.slot].leaving = 1;
            event(el, "machine %u (%s) is leaving", m.slot, el->peers[m.slot].addr);
        }
        return 0;
    case SW_KEEPER: return follow_keeper(el, &m, e);
    case SW_DROPPED:
        if (m.slot != el->keeper || el->keeping) return 0;
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "%s", m.text);
        return 0;
    case SW_STOP:
        /* the keeper sends it only at the run's end, to the machines it
         * dropped and those waiting to join */
        if (!el->dropped) return err_set(e, "elastic: the keeper stopped this machine: %s", m.text);
        run_ended(el, &m);
        return 0;
    default: return 0;
    }
}

/* Takes what arrived within timeout_s (one message, then whatever else is
 * already there). */
static int pump(Elastic *el, double timeout_s, Err *e)
{
    size_t len;
    int got = fabric_recv(el->fab, el->in, sizeof el->in, &len, timeout_s, e);
    while (got > 0) {
        el->st.bytes_recv += len;
        uint8_t copy[SWARM_MSG_MAX];
        memcpy(copy, el->in, len);
        if (handle(el, copy, len, e)) return -1;
        got = fabric_recv(el->fab, el->in, sizeof el->in, &len, 0, e);
    }
    return got < 0 ? -1 : 0;
}

/* This machine's part of a committed round is done: the whole mean is
 * here and its own segment has gone to every machine of the roster. */
static int round_done(const Elastic *el)
{
    const Round *r = &el->r;
    if (!r->closed) return 0;
    if (r->closed == 2) return 1;
    if (r->means_left > 0) return 0;
    return r->me < 0 || (r->reduced && r->m_chunk >= chunks_of(el, r->lo[r->me + 1] - r->lo[r->me]));
}

/* The exchange's own sends and HAVE, whatever arrived. */
static int drive(Elastic *el, Err *e)
{
    Round *r = &el->r;
    if (el->keeping && !r->decided) return keeper_tick(el, e);
    if (!r->decided || r->closed == 2) return 0;
    if (r->me >= 0) {
        if (pump_pieces(el, e)) return -1;
        if (!r->reduced && r->pieces_left == 0) reduce_segment(el);
        if (pump_means(el, e)) return -1;
        if (!r->have_sent && r->means_left == 0) {
            r->have_sent = 1;
            if (el->keeping) {
                r->have[r->me] = 1;
                r->haves++;
            } else {
                SwarmMsg m = {.type = SW_HAVE, .step = r->k};
                if (send_to(el, el->keeper, &m, e)) return -1;
            }
        }
    }
    return el->keeping && !r->closed ? keeper_tick(el, e) : 0;
}

/* The stash, once the caller has taken the round's outer step. */
static int catch_up(Elastic *el, Err *e)
{
    if (!el->stash_due) return 0;
    el->stash_due = 0;
    return replay_stash(el, e);
}

static int join_run(Elastic *el, uint32_t *round, Err *e);

/* Dropped (it froze, or its link did): say HELLO again to the keeper and
 * take the run's state as a newcomer does; the round is the run's. */
static int rejoin(Elastic *el, Err *e)
{
    event(el, "dropped from the roster (%s): rejoining through the keeper at %s", el->drop_why,
          el->peers[el->keeper].addr);
    snprintf(el->join, sizeof el->join, "%s", el->peers[el->keeper].addr);
    for (size_t i = 0; i < el->n_stash; i++) free(el->stash[i]);
    el->n_stash = el->stash_bytes = 0;
    el->dropped = el->joined = el->stash_due = 0;
    el->rejoins++;
    uint32_t round;
    return join_run(el, &round, e);
}

void elastic_progress(Elastic *el)
{
    if (!el->r.begun || el->progress_failed) return;
    if (pump(el, 0, &el->progress_err) || drive(el, &el->progress_err)) el->progress_failed = 1;
}

int elastic_poll(Elastic *el, Err *e)
{
    if (el->progress_failed) {
        *e = el->progress_err;
        return -1;
    }
    if (el->ended) return 3;
    double t = comm_wtime();
    if (el->returned_at > 0) el->round_work_s += t - el->returned_at;
    int rc = catch_up(el, e);
    if (!rc) rc = pump(el, 0, e);
    if (!rc) rc = drive(el, e);
    if (!rc && el->dropped && !el->ended) rc = rejoin(el, e) ? -1 : 2;
    if (rc > 0 || (!rc && el->ended)) {
        el->returned_at = comm_wtime();
        return el->ended ? 3 : 2;
    }
    el->returned_at = comm_wtime();
    if (rc) return -1;
    /* a round this machine has begun goes on behind its steps (overlap) */
    if (el->r.begun && !el->r.t_done && round_done(el)) el->r.t_done = el->returned_at;
    return el->late || (el->r.decided && el->r.me < 0 && !el->r.begun);
}

uint32_t elastic_round(const Elastic *el) { return el->r.k; }

static void fill_result(Elastic *el, ElasticRound *out)
{
    Round *r = &el->r;
    memset(out, 0, sizeof *out);
    out->round = r->k;
    out->committed = r->closed == 1;
    out->mine_counted = r->me >= 0;
    out->contributors = r->np;
    out->machines = (uint32_t)(count_state(el, MEMBER));
    out->epoch = el->epoch;
    out->slots = r->slots;
    out->weights = r->weights;
    out->mean = el->mean;
    out->from = r->from;
    out->to = r->to;
}

/* How long a member waits for the keeper's decision, then its commit. */
static double keeper_patience(const Elastic *el)
{
    double p = el->o.deadline_s * (el->o.misses + 1) + 2.0 * el->round_work_s + 5.0;
    /* a machine not yet counted does not judge the keeper: it may be
     * waiting for --swarm-wait machines, or streaming the state to others */
    return !el->counted && p < JOIN_TIMEOUT_S ? JOIN_TIMEOUT_S : p;
}

int elastic_begin(Elastic *el, const float *delta, uint32_t inner_steps, Err *e)
{
    Round *r = &el->r;
    double t0 = comm_wtime();
    if (el->returned_at > 0) el->round_work_s = t0 - el->returned_at + el->round_work_s;
    if (catch_up(el, e)) return -1;
    r->delta = delta;
    r->t_wait = t0;
    r->begun = 1;
    if (!r->decided) {
        r->ready_sent = 1;
        r->t_ready = t0;
        el->peers[el->slot].weight = inner_steps ? inner_steps : 1;
        if (el->keeping) {
            el->peers[el->slot].ready = 1;
        } else {
            SwarmMsg m = {.type = SW_READY, .step = r->k, .assigned = inner_steps,
                          .chain = el->chain, .whash = state_hash(el)};
            if (send_to(el, el->keeper, &m, e)) return -1;
        }
    }
    el->returned_at = comm_wtime();
    return 0;
}

int elastic_in_flight(const Elastic *el) { return el->r.begun; }

int elastic_outer(Elastic *el, const float *delta, uint32_t inner_steps, ElasticRound *out, Err *e)
{
    return elastic_begin(el, delta, inner_steps, e) ? -1 : elastic_end(el, out, e);
}

/* A member's watch over the round while it waits: a mean that never
 * comes (its link dropped it) sends it back to rejoin, a keeper silent
 * past its patience is replaced. */
static int watch_round(Elastic *el, double t0, Err *e)
{
    Round *r = &el->r;
    if (r->closed == 1 && r->me < 0 && r->means_left > 0 &&
        comm_wtime() - t0 > exchange_patience(el) && !el->dropped) {
        /* its link dropped them (it froze, say): the run's state again */
        el->dropped = 1;
        snprintf(el->drop_why, sizeof el->drop_why, "%zu pieces of round %u's mean never came",
                 r->means_left, r->k + 1);
    }
    /* past its own HAVE, only the commit is missing */
    int data_due = r->decided && !r->have_sent;
    if (el->keeping || r->closed ||
        comm_wtime() - r->t_wait <= keeper_patience(el) + (data_due ? exchange_patience(el) : 0))
        return 0;
    if (!el->counted)
        return err_set(e, "elastic: no word from the keeper (machine %u, %s) for %.0f s, before "
                          "this machine's first round counted: it could not keep the run; stopping",
                       el->keeper, el->peers[el->keeper].addr, comm_wtime() - r->t_wait);
    if (++el->takeovers > MAX_SLOTS)
        return err_set(e, "elastic: no keeper answers in round %u", r->k + 1);
    return next_keeper(el, el->keeper, "went silent", e);
}

/* The round as it ended, into out and the run's chain; the next round starts. */
static void finish_round(Elastic *el, double t0, ElasticRound *out)
{
    Round *r = &el->r;
    double end = r->t_done > 0 ? r->t_done : comm_wtime();
    double took = end - (r->t_decided > 0 ? r->t_decided : t0);
    if (r->closed == 1 && took > el->longest_exchange_s) el->longest_exchange_s = took;
    el->st.round_exchange_s = took;
    el->st.round_bytes_sent = el->st.bytes_sent - el->sent_mark;
    if (r->closed == 2 && el->send_err) {
        /* a void round: nothing of it reached the weights, so what rounding
         * held back of it must not be sent again */
        size_t len = (r->to - r->from) * sizeof(float);
        memset(el->send_err + r->from, 0, len);
        memset(el->sum_err + r->from, 0, len);
    }
    el->chain = chain_round(el->chain, r, r->closed == 1);
    fill_result(el, out);
    out->chain = el->chain;
    /* the table outlives the round being reset */
    memcpy(el->last_slots, r->slots, sizeof el->last_slots);
    memcpy(el->last_weights, r->weights, sizeof el->last_weights);
    out->slots = el->last_slots;
    out->weights = el->last_weights;
    round_reset(el, r->k + 1);
    el->late = 0;
    el->round_work_s = 0;
    el->returned_at = comm_wtime();
    /* what came early waits until the caller has taken the outer step: a
     * READY's hash and a newcomer's state are the next round's start */
    el->stash_due = 1;
}

int elastic_end(Elastic *el, ElasticRound *out, Err *e)
{
    Round *r = &el->r;
    double t0 = comm_wtime();
    if (!r->begun) return err_set(e, "elastic: round %u ended before it began", r->k + 1);
    if (el->returned_at > 0) el->round_work_s = t0 - el->returned_at + el->round_work_s;
    /* the keeper is judged from now: this machine may have computed since
     * its READY (overlap), answering nobody meanwhile but between steps */
    r->t_wait = t0;
    while (!round_done(el)) {
        if (drive(el, e) || pump(el, POLL_S, e)) return -1;
        if (el->dropped) {
            memset(out, 0, sizeof *out);
            out->round = r->k;
            out->rejoined = 1;
            if (!el->ended && rejoin(el, e)) return -1;
            out->ended = el->ended;
            el->returned_at = comm_wtime();
            return 0;
        }
        if (watch_round(el, t0, e)) return -1;
    }
    finish_round(el, t0, out);
    return 0;
}

/* ---- joining ---------------------------------------------------------- */

static int take_welcome(Elastic *el, const SwarmMsg *m)
{
    if (m->assigned >= MAX_SLOTS) return 0;
    el->slot = m->assigned;
    el->epoch = m->epoch;
    memset(el->peers, 0, sizeof el->peers);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        SwarmEntry en;
        swarm_msg_entry(m, i, &en);
        if (en.slot < MAX_SLOTS)
            take_roster_entry(el, en.slot, en.kind == SW_MEMBER ? MEMBER : FOLLOWER, en.addr);
    }
    el->peers[el->slot].state = FOLLOWER;
    snprintf(el->peers[el->slot].addr, sizeof el->peers[el->slot].addr, "%s", fabric_name(el->fab));
    el->keeper = lowest_member(el);
    el->joined = 1;
    round_reset(el, m->step);
    return 1;
}

/* HELLO, then WELCOME and the state; other messages meanwhile wait in the stash. */
static int join_run(Elastic *el, uint32_t *round, Err *e)
{
    FabricAddr keeper;
    if (fabric_peer(el->fab, el->join, &keeper, e)) return -1;
    SwarmMsg h = {.type = SW_HELLO, .ident = el->o.ident};
    snprintf(h.addr, sizeof h.addr, "%s", fabric_name(el->fab));
    double t0 = comm_wtime(), heard = t0, said = t0;
    if (send_to_addr(el, keeper, &h, e)) return -1;
    size_t total = 2 * el->o.n, got = 0;
    uint64_t whash = 0;
    int welcomed = 0, last = 0;
    while (!last) {
        /* a keeper in the middle of a round said to wait: say HELLO again
         * now and then, and wait as long as it answers */
        if (!welcomed && heard > t0 && comm_wtime() - said > JOIN_TIMEOUT_S / 4) {
            said = comm_wtime();
            if (send_to_addr(el, keeper, &h, e)) return -1;
        }
        if (comm_wtime() - heard > JOIN_TIMEOUT_S)
            return err_set(e, "elastic: the keeper at %s did not %s within %.0f s", el->join,
                           welcomed ? "send the whole outer state" : "answer the HELLO",
                           JOIN_TIMEOUT_S);
        size_t len;
        int r = fabric_recv(el->fab, el->in, sizeof el->in, &len, 0.5, e);
        if (r < 0) return -1;
        if (!r) continue;
        el->st.bytes_recv += len;
        SwarmMsg m;
        Err bad;
        if (swarm_msg_decode(el->in, len, &m, &bad)) continue;
        if (m.type == SW_REFUSE) return err_set(e, "elastic: the run at %s %s", el->join, m.text);
        if (m.type == SW_STOP && !el->rejoins)
            return err_set(e, "elastic: the run at %s has nothing to join: %s", el->join, m.text);
        if (m.type == SW_STOP) {
            run_ended(el, &m);
            return 0;
        }
        if (m.type == SW_KEEPER && !welcomed) {
            heard = comm_wtime(); /* alive: the welcome comes at its round's end */
            continue;
        }
        if (m.type == SW_WELCOME && !welcomed) {
            welcomed = take_welcome(el, &m);
            heard = comm_wtime();
            continue;
        }
        if (m.type != SW_STATE || !welcomed) {
            if (welcomed) stash_add(el, el->in, len);
            continue;
        }
        if (m.step != el->r.k || m.blob_len % 4 || m.assigned != got ||
            got + m.blob_len / 4 > total)
            return err_set(e, "elastic: the outer state from %s came out of order (piece at float "
                              "%u, expected %zu)", el->join, m.assigned, got);
        for (size_t i = 0; i < m.blob_len / 4; i++, got++) {
            float v = le_get_f32(m.blob + 4 * i);
            if (got < el->o.n) el->global[got] = v;
            else el->mom[got - el->o.n] = v;
        }
        el->st.join_bytes += len;
        heard = comm_wtime();
        whash = m.whash;
        last = m.last;
    }
    if (got != total || whash != state_hash(el))
        return err_set(e, "elastic: the outer state from %s does not check (%zu of %zu floats, "
                          "hash %016llx, the keeper's %016llx)", el->join, got, total,
                       (unsigned long long)state_hash(el), (unsigned long long)whash);
    el->st.join_s = comm_wtime() - t0;
    *round = el->r.k;
    event(el, "welcomed into the run as machine %u at round %u: %.1f MB of outer state in %.2f s",
          el->slot, el->r.k + 1, el->st.join_bytes / 1e6, el->st.join_s);
    return replay_stash(el, e);
}

/* ---- open, leave, close ----------------------------------------------- */

int elastic_open(Elastic **out, const ElasticOptions *o, float *global, float *mom,
                 uint32_t *round, Err *e)
{
    Elastic *el = calloc(1, sizeof *el);
    *out = el;
    if (!el) return err_set(e, "out of memory for the elastic run");
    el->o = *o;
    snprintf(el->provider, sizeof el->provider, "%s", o->provider);
    snprintf(el->listen, sizeof el->listen, "%s", o->listen ? o->listen : "");
    snprintf(el->join, sizeof el->join, "%s", o->join ? o->join : "");
    el->config_text = strdup(o->config_text ? o->config_text : "");
    el->global = global;
    el->mom = mom;
    el->chunk = chunk_values(o->wire);
    size_t n = o->n ? o->n : 1;
    el->mean = malloc(n * sizeof(float));
    el->parts = malloc((n + (size_t)QUANT_BLOCK * MAX_SLOTS) * sizeof(float));
    el->x = malloc((el->chunk > STATE_FLOATS ? el->chunk : STATE_FLOATS) * sizeof(float));
    el->wbuf = malloc(CHUNK_BYTES + 64);
    int ok = el->config_text && el->mean && el->parts && el->x && el->wbuf;
    if (ok && o->wire != WIRE_F32) {
        el->send_err = calloc(n, sizeof(float));
        el->sum_err = calloc(n, sizeof(float));
        ok = el->send_err && el->sum_err;
    }
    if (!ok) return err_set(e, "out of memory for the elastic run's buffers");
    round_reset(el, *round);
    int joining = el->join[0] != 0;
    if (fabric_open(&el->fab, el->provider, el->listen, joining ? el->join : NULL, e)) return -1;
    if (!joining) {
        el->keeping = el->joined = 1;
        el->slot = el->keeper = 0;
        el->peers[0].state = MEMBER;
        snprintf(el->peers[0].addr, sizeof el->peers[0].addr, "%s", fabric_name(el->fab));
        event(el, "elastic keeper listening at %s (%s)", fabric_name(el->fab), el->provider);
        return 0;
    }
    return join_run(el, round, e);
}

void elastic_leave(Elastic *el)
{
    if (!el || !el->fab || el->left || !el->joined) return;
    el->left = 1;
    Err e;
    SwarmMsg m = {.type = SW_LEAVE, .step = el->r.k};
    if (el->keeping) {
        for (uint32_t s = 0; s < MAX_SLOTS; s++)
            if (el->peers[s].state != FREE && s != el->slot) send_to(el, s, &m, &e);
    } else {
        send_to(el, el->keeper, &m, &e);
    }
    fabric_flush(el->fab, 1.0);
}

/* The run's end, from the keeper: the machines it dropped (unless they are
 * back) and those still waiting for a welcome are told, so that they end
 * too instead of waiting out JOIN_TIMEOUT_S for an answer. */
static void tell_run_ended(Elastic *el)
{
    char why[SWARM_TEXT_LEN];
    snprintf(why, sizeof why, "the run ended at round %u", el->r.k);
    char to[2 * MAX_SLOTS][SWARM_ADDR_LEN];
    uint32_t n = 0;
    for (uint32_t i = 0; i < el->n_gone && i < MAX_SLOTS; i++)
        snprintf(to[n++], SWARM_ADDR_LEN, "%s", el->gone[i]);
    for (size_t i = 0; i < el->n_stash && n < 2 * MAX_SLOTS; i++) {
        SwarmMsg h;
        Err bad;
        if (!swarm_msg_decode(el->stash[i], el->stash_len[i], &h, &bad) && h.type == SW_HELLO)
            snprintf(to[n++], SWARM_ADDR_LEN, "%s", h.addr);
    }
    for (uint32_t i = 0; i < n; i++) {
        int back = 0;
        for (uint32_t s = 0; s < MAX_SLOTS; s++)
            back |= el->peers[s].state != FREE && !strcmp(el->peers[s].addr, to[i]);
        FabricAddr fa;
        Err ignored;
        if (!back && !fabric_peer(el->fab, to[i], &fa, &ignored))
            send_text(el, fa, SW_STOP, why, &ignored);
    }
}

void elastic_close(Elastic *el, int done)
{
    if (!el) return;
    if (!done) elastic_leave(el);
    if (done && el->keeping && el->joined) tell_run_ended(el);
    fabric_close(el->fab, el->keeping ? 2.0 : 0.5);
    for (size_t i = 0; i < el->n_stash; i++) free(el->stash[i]);
    free(el->stash);
    free(el->stash_len);
    round_reset(el, 0);
    free(el->config_text);
    free(el->mean);
    free(el->parts);
    free(el->x);
    free(el->wbuf);
    free(el->send_err);
    free(el->sum_err);
    free(el);
}

void elastic_stats(const Elastic *el, ElasticStats *s) { *s = el->st; }
float *elastic_send_err(Elastic *el) { return el->send_err; }
float *elastic_sum_err(Elastic *el) { return el->sum_err; }
uint32_t elastic_slot(const Elastic *el) { return el->slot; }
