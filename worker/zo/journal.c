#include "worker/zo/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/crc32c.h"

static void put32(unsigned char *b, uint32_t v) { memcpy(b, &v, 4); }
static uint32_t get32(const unsigned char *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return v;
}

static void encode_header(const JournalHeader *h, unsigned char *b)
{
    memset(b, 0, JOURNAL_HEADER_BYTES);
    memcpy(b, JOURNAL_MAGIC, 8);
    put32(b + 8, JOURNAL_VERSION);
    memcpy(b + 12, &h->seed, 8);
    memcpy(b + 20, &h->eps, 4);
    memcpy(b + 24, &h->scale, 4);
    memcpy(b + 28, &h->weight_decay, 4);
    put32(b + 32, h->samples);
    memcpy(b + 36, &h->global_params, 8);
    put32(b + 44, crc32c(0, b, 44));
}

static int decode_header(const char *path, const unsigned char *b, JournalHeader *h, Err *e)
{
    if (memcmp(b, JOURNAL_MAGIC, 8))
        return err_set(e, "%s: not an mpitrain ZO journal (bad magic)", path);
    if (get32(b + 8) != JOURNAL_VERSION)
        return err_set(e, "%s: journal version %u, this build reads %d", path, get32(b + 8),
                       JOURNAL_VERSION);
    if (get32(b + 44) != crc32c(0, b, 44))
        return err_set(e, "%s: journal header checksum mismatch: corrupted", path);
    memcpy(&h->seed, b + 12, 8);
    memcpy(&h->eps, b + 20, 4);
    memcpy(&h->scale, b + 24, 4);
    memcpy(&h->weight_decay, b + 28, 4);
    h->samples = get32(b + 32);
    memcpy(&h->global_params, b + 36, 8);
    return 0;
}

/* Bit patterns, not float ==: a NaN in a header must still equal itself. */
static int same_header(const JournalHeader *a, const JournalHeader *b)
{
    return a->seed == b->seed && !memcmp(&a->eps, &b->eps, sizeof a->eps) &&
           !memcmp(&a->scale, &b->scale, sizeof a->scale) &&
           !memcmp(&a->weight_decay, &b->weight_decay, sizeof a->weight_decay) &&
           a->samples == b->samples && a->global_params == b->global_params;
}

int journal_open_read(Journal *j, const char *path, Err *e)
{
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->f = fopen(path, "rb");
    if (!j->f) return err_set(e, "%s: cannot open journal: %s", path, strerror(errno));
    unsigned char b[JOURNAL_HEADER_BYTES];
    if (fread(b, 1, sizeof b, j->f) != sizeof b) {
        journal_close(j);
        return err_set(e, "%s: truncated journal header", path);
    }
    if (decode_header(path, b, &j->h, e)) {
        journal_close(j);
        return -1;
    }
    return 0;
}

int journal_open_append(Journal *j, const char *path, const JournalHeader *h, Err *e)
{
    if (access(path, F_OK) == 0) {
        if (journal_open_read(j, path, e)) return -1;
        int same = same_header(&j->h, h);
        fclose(j->f);
        j->f = NULL;
        if (!same)
            return err_set(e, "%s: journal was written with another seed, eps, scale, samples "
                              "or model; use a fresh --out", path);
        /* a torn last record from a crash must not be appended to */
        JournalRecord r;
        if (journal_open_read(j, path, e)) return -1;
        int rc;
        while ((rc = journal_next(j, &r, e)) == 1) {}
        journal_close(j);
        if (rc < 0) return -1;
    }
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->h = *h;
    int fresh = access(path, F_OK) != 0;
    j->f = fopen(path, "ab");
    if (!j->f) return err_set(e, "%s: cannot open journal for writing: %s", path, strerror(errno));
    if (fresh) {
        unsigned char b[JOURNAL_HEADER_BYTES];
        encode_header(h, b);
        if (fwrite(b, 1, sizeof b, j->f) != sizeof b) return err_set(e, "%s: write failed", path);
    }
    return 0;
}

static int write_record(Journal *j, uint32_t type, const unsigned char *payload, uint32_t len,
                        Err *e)
{
    unsigned char head[8];
    put32(head, type);
    put32(head + 4, len);
    uint32_t crc = crc32c(crc32c(0, head, 8), payload, len);
    if (fwrite(head, 1, 8, j->f) != 8 || fwrite(payload, 1, len, j->f) != len ||
        fwrite(&crc, 1, 4, j->f) != 4 || fflush(j->f) != 0)
        return err_set(e, "%s: journal write failed: %s", j->path, strerror(errno));
    return 0;
}

int journal_append_step(Journal *j, uint32_t step, uint32_t machines, uint32_t samples,
                        uint32_t epoch, float lr, const int8_t *codes, Err *e)
{
    uint32_t n = machines * samples;
    unsigned char *p = malloc(20 + (size_t)n);
    if (!p) return err_set(e, "out of memory");
    put32(p, step);
    put32(p + 4, machines);
    put32(p + 8, samples);
    put32(p + 12, epoch);
    memcpy(p + 16, &lr, 4);
    memcpy(p + 20, codes, n);
    int rc = write_record(j, JREC_STEP, p, 20 + n, e);
    free(p);
    return rc;
}

int journal_append_roster(Journal *j, uint32_t epoch, uint32_t machines, uint32_t from_step,
                          Err *e)
{
    unsigned char p[12];
    put32(p, epoch);
    put32(p + 4, machines);
    put32(p + 8, from_step);
    return write_record(j, JREC_ROSTER, p, 12, e);
}

int journal_sync(Journal *j, Err *e)
{
    if (fflush(j->f) != 0 || fsync(fileno(j->f)) != 0)
        return err_set(e, "%s: journal sync failed: %s", j->path, strerror(errno));
    return 0;
}

static int record_error(Journal *j, long off, Err *e, const char *what)
{
    return err_set(e, "%s: record %ld (byte %ld): %s", j->path, j->index + 1, off, what);
}

int journal_next(Journal *j, JournalRecord *r, Err *e)
{
    long off = ftell(j->f);
    unsigned char head[8];
    size_t got = fread(head, 1, 8, j->f);
    if (got == 0 && feof(j->f)) return 0;
    if (got != 8) return record_error(j, off, e, "truncated record header");
    uint32_t type = get32(head), len = get32(head + 4);
    if (type != JREC_STEP && type != JREC_ROSTER) return record_error(j, off, e, "unknown record type");
    if (len > 20 + JOURNAL_MAX_CODES) return record_error(j, off, e, "absurd record length");
    if (len + 4 > j->codes_cap) {
        int8_t *c = realloc(j->codes, len + 4);
        if (!c) return err_set(e, "out of memory");
        j->codes = c;
        j->codes_cap = len + 4;
    }
    unsigned char *p = (unsigned char *)j->codes;
    if (fread(p, 1, len + 4, j->f) != len + 4) return record_error(j, off, e, "truncated record");
    if (get32(p + len) != crc32c(crc32c(0, head, 8), p, len))
        return record_error(j, off, e, "checksum mismatch: the journal is corrupted");
    memset(r, 0, sizeof *r);
    r->type = type;
    if (type == JREC_ROSTER) {
        if (len != 12) return record_error(j, off, e, "bad roster record length");
        r->epoch = get32(p);
        r->machines = get32(p + 4);
        r->step = get32(p + 8);
    } else {
        if (len < 20) return record_error(j, off, e, "bad step record length");
        r->step = get32(p);
        r->machines = get32(p + 4);
        r->samples = get32(p + 8);
        r->epoch = get32(p + 12);
        memcpy(&r->lr, p + 16, 4);
        if ((uint64_t)r->machines * r->samples != len - 20 || r->samples != j->h.samples)
            return record_error(j, off, e, "code count does not match machines x samples");
        r->codes = (int8_t *)(p + 20);
    }
    j->index++;
    return 1;
}

void journal_close(Journal *j)
{
    if (j->f) fclose(j->f);
    free(j->codes);
    memset(j, 0, sizeof *j);
}
