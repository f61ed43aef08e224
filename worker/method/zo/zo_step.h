#ifndef MPITRAIN_ZO_STEP_H
#define MPITRAIN_ZO_STEP_H
/* The shared-randomness step, in pieces: ZO_STRATEGY (zo_step.c, the
 * machines are the data-parallel ranks of one MPI job) is built from them,
 * and so is the swarm's strategy (worker/method/swarm/swarm_step.c, the
 * machines come and go over libfabric). See worker/method/zo/zo.h for the
 * protocol and worker/method/zo/journal.h for the history it writes. */
#include <stddef.h>
#include <stdint.h>
#include "worker/loop/strategy.h"
#include "worker/method/zo/identity.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo.h"

typedef struct {
    ZoView view;        /* theta +- eps z, a block at a time: params are never touched */
    uint8_t *active;    /* --zo-params: the tensors perturbed and updated; NULL = all */
    ZoIdentity id;      /* the run's (complete once zo_prepare has the scale; base_id 0) */
    int8_t *mine, *all; /* this machine's codes for the step; every machine's */
    Journal j;          /* rank 0 only */
    uint32_t epoch;     /* the roster epoch in force */
    float *tau;         /* --zo-sparse: each tensor's magnitude threshold at the step; NULL = off */
    int tau_stale;      /* the step's thresholds could not be computed (no memory) */
} Zo;

/* <out>/zo/journal.bin */
void zo_journal_path(const Trainer *t, char *out, size_t n);
/* The state a step needs: the --zo-params selection, the code buffers, the
 * weight view's scratch and the scale (the journal's, --zo-scale, or the
 * warm-up's). An existing journal is scanned: its roster, and (resuming)
 * the steps past the checkpoint caught up. *last_machines: its last
 * roster's machine count (the run's own when there is no journal). */
int zo_prepare(Trainer *t, Zo *z, uint32_t *last_machines, Err *e);
/* Rank 0's journal, opened for appending; *fresh: created now, empty (its
 * first record, a roster, is the caller's to write). */
int zo_open_journal(Trainer *t, Zo *z, int *fresh, Err *e);
/* The setup's line for the log: machines, samples, scale, memory. */
void zo_note_setup(Trainer *t, const Zo *z);
/* This machine's codes for the step into z->mine, from the batch at hand;
 * sums[0] += the loss of each sample whose two losses were finite, sums[1]
 * += how many (a non-finite sample is already skipped by its code), and
 * sums[2] += the samples of a masked batch that counts no target (no loss,
 * codes 0). */
void zo_machine_codes(Trainer *t, Zo *z, long step, uint32_t machine, double sums[3]);
/* The journal durable (rank 0) before a checkpoint that counts on it. */
int zo_sync_journal(Trainer *t, Zo *z, Err *e);
/* Frees what z holds (not z). */
void zo_release(Zo *z);

/* StepStrategy members the strategies share as they are. */
int zo_check_run(Trainer *t, Err *e);
int zo_after_step(Trainer *t, void *state, long step, Err *e);
double zo_flops(const Trainer *t);

/* StepStrategy.chosen_settings of zo (state: its Zo): the scale in use, as
 * the --zo-scale setting a checkpoint records */
void zo_chosen_settings(const Trainer *t, const void *state, TrainConfig *c);

#endif
