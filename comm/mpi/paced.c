#include "comm/mpi/paced.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base/half.h"
#include "sharding/partition.h"

enum { TAG_SCATTER = 71, TAG_GATHER = 72 };

static size_t wire_bytes(WireFormat w) { return w == WIRE_BF16 ? 2 : 4; }

int paced_init(PacedSum *s, Group *g, size_t piece, WireFormat wire, size_t cap, Err *e)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->wire = wire;
    s->piece = piece ? piece : 1;
    int p = group_size(g);
    s->seg_max = (s->piece + p - 1) / p;
    size_t wb = wire_bytes(wire);
    s->stage = malloc(s->piece * wb);
    s->tmp = malloc(((size_t)(p - 1) * s->seg_max + 1) * wb);
    s->req = calloc(2 * (size_t)p, sizeof *s->req);
    int ok = s->stage && s->tmp && s->req;
    if (ok && wire == WIRE_BF16) {
        s->cap = cap;
        s->send_err = calloc(cap ? cap : 1, sizeof(float));
        s->sum_err = calloc(cap ? cap : 1, sizeof(float));
        ok = s->send_err && s->sum_err;
    }
    return ok ? 0 : err_set(e, "out of memory for a paced all-reduce");
}

void paced_free(PacedSum *s)
{
    if (s->phase) paced_wait(s);
    for (int i = 0; s->req && i < 2 * group_size(s->g); i++) comm_request_free(&s->req[i]);
    free(s->req);
    free(s->tmp);
    free(s->stage);
    free(s->send_err);
    free(s->sum_err);
    memset(s, 0, sizeof *s);
}

/* ---- the wire format ---------------------------------------------------- */

/* v (+ its carried error) into wire slot j of w; returns what the others
 * will read, and keeps what rounding dropped in *err */
static float encode(WireFormat wire, unsigned char *w, size_t j, float v, float *err)
{
    if (wire == WIRE_F32) {
        memcpy(w + 4 * j, &v, 4);
        return v;
    }
    float x = v + *err;
    uint16_t h = f32_to_bf16(x);
    memcpy(w + 2 * j, &h, 2);
    float sent = bf16_to_f32(h);
    *err = x - sent;
    return sent;
}

static float decode(WireFormat wire, const unsigned char *w, size_t j)
{
    if (wire == WIRE_F32) {
        float v;
        memcpy(&v, w + 4 * j, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, w + 2 * j, 2);
    return bf16_to_f32(h);
}

/* ---- the exchange ---------------------------------------------------------- */

static size_t piece_len(const PacedSum *s)
{
    return s->n - s->at < s->piece ? s->n - s->at : s->piece;
}

/* rank's segment of the current piece, as offsets into the piece */
static Range segment(const PacedSum *s, int rank)
{
    return split_even(piece_len(s), group_size(s->g), rank);
}

/* the slot in tmp of a peer's part: peers in rank order, this rank skipped */
static unsigned char *slot(PacedSum *s, int peer)
{
    int me = group_rank(s->g);
    return s->tmp + (size_t)(peer < me ? peer : peer - 1) * s->seg_max * wire_bytes(s->wire);
}

/* the error-feedback slot of element i (NULL without error feedback: f32) */
static float *err_at(float *err, size_t i) { return err ? err + i : NULL; }

/* The piece in wire format; this rank's own values become what it sent, so
 * its part of the sum is the one the others would have read. */
static void stage_piece(PacedSum *s)
{
    size_t len = piece_len(s);
    for (size_t j = 0; j < len; j++)
        s->buf[s->at + j] = encode(s->wire, s->stage, j, s->buf[s->at + j], err_at(s->send_err, s->at + j));
}

static void post_scatter(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    size_t wb = wire_bytes(s->wire);
    stage_piece(s);
    Range mine = segment(s, me);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_bytes(s->g, slot(s, q), (mine.hi - mine.lo) * wb, q, TAG_SCATTER, &s->req[k++]);
        p2p_isend_bytes(s->g, s->stage + theirs.lo * wb, (theirs.hi - theirs.lo) * wb, q,
                        TAG_SCATTER, &s->req[k++]);
    }
    s->phase = 1;
}

/* this rank's segment: the sum over ranks 0, 1, ..., p-1 in that order,
 * staged as it goes out */
static void reduce_mine(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g);
    Range mine = segment(s, me);
    for (size_t j = mine.lo; j < mine.hi; j++) {
        float acc = 0;
        for (int r = 0; r < p; r++)
            acc += r == me ? s->buf[s->at + j] : decode(s->wire, slot(s, r), j - mine.lo);
        s->buf[s->at + j] = encode(s->wire, s->stage, j, acc, err_at(s->sum_err, s->at + j));
    }
}

static void post_gather(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    size_t wb = wire_bytes(s->wire);
    Range mine = segment(s, me);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_bytes(s->g, s->stage + theirs.lo * wb, (theirs.hi - theirs.lo) * wb, q,
                        TAG_GATHER, &s->req[k++]);
        p2p_isend_bytes(s->g, s->stage + mine.lo * wb, (mine.hi - mine.lo) * wb, q, TAG_GATHER,
                        &s->req[k++]);
    }
    s->phase = 2;
}

/* the others' sums, as they arrived */
static void unstage_sums(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range r = segment(s, q);
        for (size_t j = r.lo; j < r.hi; j++) s->buf[s->at + j] = decode(s->wire, s->stage, j);
    }
}

void paced_start(PacedSum *s, float *buf, size_t n)
{
    if (s->wire == WIRE_BF16 && n > s->cap) abort(); /* a caller's bug: no feedback slots */
    s->buf = buf;
    s->n = n;
    s->at = 0;
    s->phase = 0;
    if (group_size(s->g) > 1 && n > 0) post_scatter(s);
}

/* The phase's requests are all done: the next phase, or piece. */
static void advance(PacedSum *s)
{
    if (s->phase == 1) {
        reduce_mine(s);
        post_gather(s);
        return;
    }
    unstage_sums(s);
    s->at += piece_len(s);
    s->phase = 0;
    if (s->at < s->n) post_scatter(s);
}

static int all_done(PacedSum *s, int block)
{
    int done = 1;
    for (int i = 0; i < 2 * (group_size(s->g) - 1); i++) {
        if (block) coll_wait(&s->req[i]);
        else if (!coll_test(&s->req[i])) done = 0;
    }
    return done;
}

int paced_progress(PacedSum *s)
{
    while (s->phase && all_done(s, 0)) advance(s);
    return s->phase == 0;
}

void paced_wait(PacedSum *s)
{
    while (s->phase) {
        all_done(s, 1);
        advance(s);
    }
}
