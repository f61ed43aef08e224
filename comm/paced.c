#include "comm/paced.h"

#include <stdlib.h>
#include <string.h>
#include "sharding/partition.h"

enum { TAG_SCATTER = 71, TAG_GATHER = 72 };

int paced_init(PacedSum *s, Group *g, size_t piece, Err *e)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->piece = piece ? piece : 1;
    int p = group_size(g);
    s->seg_max = (s->piece + p - 1) / p;
    s->tmp = malloc(((size_t)(p - 1) * s->seg_max + 1) * sizeof(float));
    s->req = calloc(2 * (size_t)p, sizeof *s->req);
    return s->tmp && s->req ? 0 : err_set(e, "out of memory for a paced all-reduce");
}

void paced_free(PacedSum *s)
{
    if (s->phase) paced_wait(s);
    for (int i = 0; s->req && i < 2 * group_size(s->g); i++) comm_request_free(&s->req[i]);
    free(s->req);
    free(s->tmp);
    memset(s, 0, sizeof *s);
}

static size_t piece_len(const PacedSum *s)
{
    return s->n - s->at < s->piece ? s->n - s->at : s->piece;
}

static Range segment(const PacedSum *s, int rank)
{
    Range r = split_even(piece_len(s), group_size(s->g), rank);
    return (Range){s->at + r.lo, s->at + r.hi};
}

/* the slot in tmp of a peer's part: peers in rank order, this rank skipped */
static float *slot(PacedSum *s, int peer)
{
    int me = group_rank(s->g);
    return s->tmp + (size_t)(peer < me ? peer : peer - 1) * s->seg_max;
}

static void post_scatter(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    Range mine = segment(s, me);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_f32(s->g, slot(s, q), mine.hi - mine.lo, q, TAG_SCATTER, &s->req[k++]);
        p2p_isend_f32(s->g, s->buf + theirs.lo, theirs.hi - theirs.lo, q, TAG_SCATTER, &s->req[k++]);
    }
    s->phase = 1;
}

/* this rank's segment: the sum over ranks 0, 1, ..., p-1 in that order */
static void reduce_mine(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g);
    Range mine = segment(s, me);
    for (size_t i = 0; i < mine.hi - mine.lo; i++) {
        float acc = 0;
        for (int r = 0; r < p; r++) acc += r == me ? s->buf[mine.lo + i] : slot(s, r)[i];
        s->buf[mine.lo + i] = acc;
    }
}

static void post_gather(PacedSum *s)
{
    int p = group_size(s->g), me = group_rank(s->g), k = 0;
    Range mine = segment(s, me);
    for (int q = 0; q < p; q++) {
        if (q == me) continue;
        Range theirs = segment(s, q);
        p2p_irecv_f32(s->g, s->buf + theirs.lo, theirs.hi - theirs.lo, q, TAG_GATHER, &s->req[k++]);
        p2p_isend_f32(s->g, s->buf + mine.lo, mine.hi - mine.lo, q, TAG_GATHER, &s->req[k++]);
    }
    s->phase = 2;
}

void paced_start(PacedSum *s, float *buf, size_t n)
{
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
