#include "comm/mpi/paced.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sharding/partition.h"

enum { TAG_SCATTER = 71, TAG_GATHER = 72 };

int paced_init(PacedSum *s, Group *g, size_t piece, WireFormat wire, size_t cap, Err *e)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->wire = wire;
    s->piece = piece ? piece : 1;
    int p = group_size(g);
    s->seg_max = (s->piece + p - 1) / p;
    size_t sb = wire_bytes(wire, s->seg_max);
    s->stage = malloc((size_t)p * sb);
    s->tmp = malloc((size_t)(p - 1) * sb + 1);
    s->x = malloc(s->piece * sizeof(float));
    s->acc = malloc(2 * s->seg_max * sizeof(float));
    s->req = calloc(2 * (size_t)p, sizeof *s->req);
    int ok = s->stage && s->tmp && s->x && s->acc && s->req;
    if (ok && wire != WIRE_F32) {
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
    free(s->x);
    free(s->acc);
    free(s->send_err);
    free(s->sum_err);
    memset(s, 0, sizeof *s);
}

/* ---- the wire format ---------------------------------------------------- */

static size_t piece_len(const PacedSum *s)
{
    return s->n - s->at < s->piece ? s->n - s->at : s->piece;
}

/* rank's segment of the current piece, as offsets into the piece */
static Range segment(const PacedSum *s, int rank)
{
    return split_even(piece_len(s), group_size(s->g), rank);
}

/* where rank q's segment of the piece starts in stage: after the segments
 * of the ranks before it, each in wire format */
static size_t seg_off(const PacedSum *s, int q)
{
    size_t off = 0;
    for (int r = 0; r < q; r++) {
        Range x = segment(s, r);
        off += wire_bytes(s->wire, x.hi - x.lo);
    }
    return off;
}

/* the slot in tmp of a peer's part: peers in rank order, this rank skipped */
static unsigned char *slot(PacedSum *s, int peer)
{
    int me = group_rank(s->g);
    return s->tmp + (size_t)(peer < me ? peer : peer - 1) * wire_bytes(s->wire, s->seg_max);
}

/* the error-feedback slots from element i (NULL without error feedback: f32) */
static float *err_at(float *err, size_t i) { return err ? err + i : NULL; }

/* The piece in wire format, segment by segment; this rank's own values
 * become what it sent, so its part of the sum is the one the others would
 * have read. */
static void stage_piece(PacedSum *s)
{
    int p = group_size(s->g);
    unsigned char *out = s->stage;
    for (int q = 0; q < p; q++) {
        Range r = segment(s, q);
        size_t at = s->at + r.lo, len = r.hi - r.lo;
        wire_encode(s->wire, s->buf + at, len, out, err_at(s->send_err, at), s->x);
        out += wire_bytes(s->wire, len);
    }
}

static void post_scatter(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    stage_piece(s);
    Range mine = segment(s, me);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_bytes(s->g, slot(s, q), wire_bytes(s->wire, mine.hi - mine.lo), q, TAG_SCATTER,
                        &s->req[k++]);
        p2p_isend_bytes(s->g, s->stage + seg_off(s, q), wire_bytes(s->wire, theirs.hi - theirs.lo),
                        q, TAG_SCATTER, &s->req[k++]);
    }
    s->phase = 1;
}

/* this rank's segment: the sum over ranks 0, 1, ..., p-1 in that order,
 * staged as it goes out */
static void reduce_mine(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g);
    Range mine = segment(s, me);
    size_t len = mine.hi - mine.lo;
    float *acc = s->acc, *part = s->acc + s->seg_max, *own = s->buf + s->at + mine.lo;
    memset(acc, 0, len * sizeof *acc);
    for (int r = 0; r < p; r++) {
        const float *v = own;
        if (r != me) {
            wire_decode(s->wire, slot(s, r), len, part);
            v = part;
        }
        for (size_t j = 0; j < len; j++) acc[j] += v[j];
    }
    memcpy(own, acc, len * sizeof *acc);
    wire_encode(s->wire, own, len, s->stage + seg_off(s, me), err_at(s->sum_err, s->at + mine.lo), s->x);
}

static void post_gather(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    Range mine = segment(s, me);
    size_t my_off = seg_off(s, me), my_bytes = wire_bytes(s->wire, mine.hi - mine.lo);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_bytes(s->g, s->stage + seg_off(s, q), wire_bytes(s->wire, theirs.hi - theirs.lo),
                        q, TAG_GATHER, &s->req[k++]);
        p2p_isend_bytes(s->g, s->stage + my_off, my_bytes, q, TAG_GATHER, &s->req[k++]);
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
        wire_decode(s->wire, s->stage + seg_off(s, q), r.hi - r.lo, s->buf + s->at + r.lo);
    }
}

void paced_start(PacedSum *s, float *buf, size_t n)
{
    if (s->wire != WIRE_F32 && n > s->cap) abort(); /* a caller's bug: no feedback slots */
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
