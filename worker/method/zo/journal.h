#ifndef MPITRAIN_JOURNAL_H
#define MPITRAIN_JOURNAL_H
/* The ZO journal: the whole training history of a shared-randomness run.
 * A 64-byte header, then records, each
 *   u32 type | u32 payload bytes | payload | u32 CRC-32C of the 8+payload bytes
 * STEP   (type 1): u32 step, u32 machines, u32 samples, u32 epoch, f32 lr,
 *                  i8 codes[machines * samples]
 * ROSTER (type 2): u32 epoch, u32 machines, u32 from_step
 * Base checkpoint + journal replays to the exact weights. A STEP's lr is the
 * one the step used, bit for bit, and replay and catch-up apply it as read,
 * never recomputing it from the step: under --time-budget the lr depends on
 * the time used, which a replay cannot know (docs/zo.md).
 *
 * A write cut short (ENOSPC, power loss) leaves a torn LAST record: short,
 * or failing its CRC, with no intact record after it. Like a write-ahead
 * log, the reader treats it as the end (and says so in Journal.torn_*),
 * and opening for appending truncates it away; a bad record that an intact
 * one follows is corruption and stays an error. */
#include <stdint.h>
#include <stdio.h>
#include "base/err.h"
#include "base/fileio.h"
#include "worker/method/zo/identity.h"

#define JOURNAL_MAGIC "MPZOJNL1"
/* The header holds the run's identity (worker/method/zo/identity.h) but its
 * base_id. Version 1: bytes 0..47 (seed .. global_params, CRC-32C of 0..43
 * at 44). Version 2 adds the --zo-params selection id
 * (worker/method/zo/zo_params.h) at 48 and a CRC-32C of bytes 0..55 at 56. A
 * journal of every tensor (id 0) is written as version 1, the bytes older
 * builds read; a version 1 journal reads as id 0 (every tensor). */
#define JOURNAL_VERSION 3
#define JOURNAL_HEADER_BYTES 64
#define JOURNAL_MAX_CODES (1u << 24)

enum { JREC_STEP = 1, JREC_ROSTER = 2 };

typedef struct {
    uint32_t type;
    uint32_t step, machines, samples, epoch; /* STEP; ROSTER uses epoch, machines, step */
    float lr;
    int8_t *codes;                           /* STEP: machines * samples, owned by the reader */
} JournalRecord;

typedef struct {
    FILE *f;
    char path[PATH_LEN];
    ZoIdentity h;        /* the header: the run it belongs to (base_id 0: not held) */
    long index;          /* records read so far */
    long torn_off;       /* a torn last record was dropped at this byte, */
    long torn_bytes;     /* ... this long (0: none) */
    int8_t *codes;
    size_t codes_cap;
} Journal;

/* Creates path with the header of run h, or opens an existing journal for
 * appending after checking its header is h's (base_id aside): the same
 * settings and the same --zo-params selection (h->params_id). */
int journal_open_append(Journal *j, const char *path, const ZoIdentity *h, Err *e);
int journal_append_step(Journal *j, uint32_t step, uint32_t machines, uint32_t samples,
                        uint32_t epoch, float lr, const int8_t *codes, Err *e);
int journal_append_roster(Journal *j, uint32_t epoch, uint32_t machines, uint32_t from_step,
                          Err *e);
/* The bytes of one record as the journal stores them (type, length,
 * payload, CRC): a swarm machine builds a step's records once, writes them
 * to its file and sends them to joiners (worker/method/swarm). out must hold
 * journal_step_record_bytes / JOURNAL_ROSTER_RECORD_BYTES. */
#define JOURNAL_ROSTER_RECORD_BYTES 24
size_t journal_step_record_bytes(uint32_t machines, uint32_t samples);
size_t journal_encode_step(uint8_t *out, uint32_t step, uint32_t machines, uint32_t samples,
                           uint32_t epoch, float lr, const int8_t *codes);
size_t journal_encode_roster(uint8_t *out, uint32_t epoch, uint32_t machines, uint32_t from_step);
/* Appends whole records (bytes as encoded above) as they are. */
int journal_append_record(Journal *j, const uint8_t *rec, size_t n, Err *e);
/* The record at b (n bytes there): 0 with *r (STEP codes point into b)
 * and *used, or -1 when it is cut short, corrupt or not a journal record. */
int journal_parse_record(const uint8_t *b, size_t n, uint32_t samples, JournalRecord *r,
                         size_t *used, Err *e);
/* fflush + fsync (before a checkpoint is published). */
int journal_sync(Journal *j, Err *e);
/* Reads the header (j->h; its params_id is 0 for a version 1 journal). */
int journal_open_read(Journal *j, const char *path, Err *e);
/* 1 = a record, 0 = the end (clean, or a torn last record dropped: then
 * torn_bytes > 0), -1 = error naming the record and offset. */
int journal_next(Journal *j, JournalRecord *r, Err *e);
/* The warning for a dropped torn record (torn_bytes > 0). */
void journal_torn_message(const Journal *j, char *out, size_t n);
void journal_close(Journal *j);

#endif
