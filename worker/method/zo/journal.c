#include "worker/method/zo/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/le.h"

/* Every field little-endian via base/le.h: the same bytes the memcpy-based
 * writer produced on the x86 hosts that wrote the existing journals. */

/* The CRC-32C of the fields past the first 48 bytes' own check: bytes
 * 0..55, and in version 3 the mask's fraction at 60..63 after them. */
static uint32_t extended_crc(const unsigned char *b, uint32_t version)
{
    uint32_t c = crc32c(0, b, 56);
    return version >= 3 ? crc32c(c, b + 60, 4) : c;
}

static void encode_header(const ZoIdentity *h, unsigned char *b)
{
    memset(b, 0, JOURNAL_HEADER_BYTES);
    memcpy(b, JOURNAL_MAGIC, 8);
    /* version 1: no --zo-params selection; 2: one; 3: a --zo-sparse mask */
    le_put32(b + 8, h->sparse > 0 ? 3 : h->params_id ? 2 : 1);
    le_put64(b + 12, h->seed);
    le_put_f32(b + 20, h->eps);
    le_put_f32(b + 24, h->scale);
    le_put_f32(b + 28, h->weight_decay);
    le_put32(b + 32, h->samples);
    le_put64(b + 36, h->global_params);
    le_put32(b + 44, crc32c(0, b, 44));
    if (h->params_id || h->sparse > 0) {
        le_put64(b + 48, h->params_id);
        if (h->sparse > 0) le_put_f32(b + 60, h->sparse);
        le_put32(b + 56, extended_crc(b, h->sparse > 0 ? 3 : 2));
    }
}

static int decode_header(const char *path, const unsigned char *b, ZoIdentity *h, Err *e)
{
    if (memcmp(b, JOURNAL_MAGIC, 8))
        return err_set(e, "%s: not an mpitrain ZO journal (bad magic)", path);
    uint32_t version = le_get32(b + 8);
    if (version < 1 || version > JOURNAL_VERSION)
        return err_set(e, "%s: journal version %u, this build reads 1 to %d", path, version,
                       JOURNAL_VERSION);
    if (le_get32(b + 44) != crc32c(0, b, 44) ||
        (version >= 2 && le_get32(b + 56) != extended_crc(b, version)))
        return err_set(e, "%s: journal header checksum mismatch: corrupted", path);
    memset(h, 0, sizeof *h);
    h->params_id = version >= 2 ? le_get64(b + 48) : 0;
    h->seed = le_get64(b + 12);
    h->eps = le_get_f32(b + 20);
    h->scale = le_get_f32(b + 24);
    h->weight_decay = le_get_f32(b + 28);
    h->samples = le_get32(b + 32);
    h->global_params = le_get64(b + 36);
    h->sparse = version >= 3 ? le_get_f32(b + 60) : 0;
    return 0;
}

int journal_open_read(Journal *j, const char *path, Err *e)
{
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->f = fopen_input(path, NULL, e);
    if (!j->f) return err_wrap(e, "journal");
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

/* What a journal header holds of a run's identity. */
#define HEADER_FIELDS (ZO_ID_ALL & ~ZO_ID_BASE)

/* An existing journal read to its end: its header must be h, and a torn
 * last record is cut off so the next append follows the last intact one. */
static int prepare_existing(const char *path, const ZoIdentity *h, long *torn_off,
                            long *torn_bytes, Err *e)
{
    Journal j;
    if (journal_open_read(&j, path, e)) return -1;
    const unsigned diff = zo_identity_diff(&j.h, h, HEADER_FIELDS);
    if (diff & ~ZO_ID_SELECTION) {
        journal_close(&j);
        return err_set(e, "%s: journal was written with another seed, eps, scale, samples, "
                          "model or --zo-sparse; use a fresh --out", path);
    }
    if (diff) {
        journal_close(&j);
        return err_set(e, "%s: journal was written for another --zo-params selection (id "
                          "%016llx, this run's %016llx; 0 = every tensor); use the run's own "
                          "--zo-params or a fresh --out", path,
                       (unsigned long long)j.h.params_id, (unsigned long long)h->params_id);
    }
    JournalRecord r;
    int rc;
    while ((rc = journal_next(&j, &r, e)) == 1) {}
    *torn_off = j.torn_off;
    *torn_bytes = j.torn_bytes;
    journal_close(&j);
    if (rc < 0) return -1;
    if (*torn_bytes && truncate(path, *torn_off) != 0)
        return err_set(e, "%s: cannot cut off the torn last record at byte %ld: %s", path,
                       *torn_off, strerror(errno));
    return 0;
}

int journal_open_append(Journal *j, const char *path, const ZoIdentity *h, Err *e)
{
    int fresh = access(path, F_OK) != 0;
    long torn_off = 0, torn_bytes = 0;
    if (!fresh && prepare_existing(path, h, &torn_off, &torn_bytes, e)) return -1;
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->h = *h;
    j->h.base_id = 0;
    j->torn_off = torn_off;
    j->torn_bytes = torn_bytes;
    j->f = fopen(path, "ab");
    if (!j->f) return err_set(e, "%s: cannot open journal for writing: %s", path, strerror(errno));
    if (fresh) {
        unsigned char b[JOURNAL_HEADER_BYTES];
        encode_header(h, b);
        if (fwrite(b, 1, sizeof b, j->f) != sizeof b) return err_set(e, "%s: write failed", path);
    }
    return 0;
}

/* type | length | payload | CRC-32C of the 8 + length bytes before it */
static size_t frame_record(uint8_t *out, uint32_t type, uint32_t len)
{
    le_put32(out, type);
    le_put32(out + 4, len);
    le_put32(out + 8 + len, crc32c(0, out, 8 + (size_t)len));
    return 12 + (size_t)len;
}

size_t journal_step_record_bytes(uint32_t machines, uint32_t samples)
{
    return 12 + 20 + (size_t)machines * samples;
}

size_t journal_encode_step(uint8_t *out, uint32_t step, uint32_t machines, uint32_t samples,
                           uint32_t epoch, float lr, const int8_t *codes)
{
    uint32_t n = machines * samples;
    uint8_t *p = out + 8;
    le_put32(p, step);
    le_put32(p + 4, machines);
    le_put32(p + 8, samples);
    le_put32(p + 12, epoch);
    le_put_f32(p + 16, lr);
    memcpy(p + 20, codes, n);
    return frame_record(out, JREC_STEP, 20 + n);
}

size_t journal_encode_roster(uint8_t *out, uint32_t epoch, uint32_t machines, uint32_t from_step)
{
    uint8_t *p = out + 8;
    le_put32(p, epoch);
    le_put32(p + 4, machines);
    le_put32(p + 8, from_step);
    return frame_record(out, JREC_ROSTER, 12);
}

int journal_append_record(Journal *j, const uint8_t *rec, size_t n, Err *e)
{
    if (fwrite(rec, 1, n, j->f) != n || fflush(j->f) != 0)
        return err_set(e, "%s: journal write failed: %s", j->path, strerror(errno));
    return 0;
}

int journal_append_step(Journal *j, uint32_t step, uint32_t machines, uint32_t samples,
                        uint32_t epoch, float lr, const int8_t *codes, Err *e)
{
    uint8_t *p = malloc(journal_step_record_bytes(machines, samples));
    if (!p) return err_set(e, "out of memory");
    size_t n = journal_encode_step(p, step, machines, samples, epoch, lr, codes);
    int rc = journal_append_record(j, p, n, e);
    free(p);
    return rc;
}

int journal_append_roster(Journal *j, uint32_t epoch, uint32_t machines, uint32_t from_step,
                          Err *e)
{
    uint8_t p[JOURNAL_ROSTER_RECORD_BYTES];
    return journal_append_record(j, p, journal_encode_roster(p, epoch, machines, from_step), e);
}

int journal_sync(Journal *j, Err *e)
{
    if (fflush(j->f) != 0 || fsync(fileno(j->f)) != 0)
        return err_set(e, "%s: journal sync failed: %s", j->path, strerror(errno));
    return 0;
}

/* The fields of a record whose frame and CRC were checked; NULL, or what
 * is wrong with them. STEP codes point into p. */
static const char *decode_payload(uint32_t type, const uint8_t *p, uint32_t len, uint32_t samples,
                                  JournalRecord *r)
{
    memset(r, 0, sizeof *r);
    r->type = type;
    if (type == JREC_ROSTER) {
        if (len != 12) return "bad roster record length";
        r->epoch = le_get32(p);
        r->machines = le_get32(p + 4);
        r->step = le_get32(p + 8);
        return NULL;
    }
    if (len < 20) return "bad step record length";
    r->step = le_get32(p);
    r->machines = le_get32(p + 4);
    r->samples = le_get32(p + 8);
    r->epoch = le_get32(p + 12);
    r->lr = le_get_f32(p + 16);
    if ((uint64_t)r->machines * r->samples != len - 20 || r->samples != samples)
        return "code count does not match machines x samples";
    r->codes = (int8_t *)(p + 20);
    return NULL;
}

int journal_parse_record(const uint8_t *b, size_t n, uint32_t samples, JournalRecord *r,
                         size_t *used, Err *e)
{
    if (n < 12) return err_set(e, "journal record cut short: %zu bytes", n);
    uint32_t type = le_get32(b), len = le_get32(b + 4);
    if (type != JREC_STEP && type != JREC_ROSTER)
        return err_set(e, "journal record of unknown type %u", type);
    if (len > n - 12) return err_set(e, "journal record of %u bytes cut short at %zu", len, n);
    if (le_get32(b + 8 + len) != crc32c(0, b, 8 + (size_t)len))
        return err_set(e, "journal record checksum mismatch: corrupted");
    const char *why = decode_payload(type, b + 8, len, samples, r);
    if (why) return err_set(e, "journal record: %s", why);
    *used = 12 + (size_t)len;
    return 0;
}

static int record_error(Journal *j, long off, Err *e, const char *what)
{
    return err_set(e, "%s: record %ld (byte %ld): %s", j->path, j->index + 1, off, what);
}

/* Whether b starts a whole record of a known type whose CRC holds. */
static int is_intact(const unsigned char *b, size_t n)
{
    if (n < 12) return 0;
    uint32_t type = le_get32(b), len = le_get32(b + 4);
    if ((type != JREC_STEP && type != JREC_ROSTER) || len > n - 12) return 0;
    return le_get32(b + 8 + len) == crc32c(crc32c(0, b, 8), b + 8, len);
}

/* 1 if an intact record starts anywhere after byte off: then a bad record
 * at off is damage inside the journal, not a write that was cut short. */
static int intact_record_after(Journal *j, long off, Err *e)
{
    if (fseek(j->f, 0, SEEK_END) != 0) return err_set(e, "%s: cannot seek", j->path);
    long end = ftell(j->f);
    if (end <= off + 12) return 0;
    size_t n = (size_t)(end - off - 1);
    unsigned char *b = malloc(n);
    if (!b) return err_set(e, "out of memory re-reading %s", j->path);
    int found = 0;
    if (fseek(j->f, off + 1, SEEK_SET) != 0 || fread(b, 1, n, j->f) != n)
        found = err_set(e, "%s: cannot re-read from byte %ld", j->path, off + 1);
    for (size_t i = 0; !found && i + 12 <= n; i++) found = is_intact(b + i, n - i);
    free(b);
    return found;
}

/* A record at off that cannot be decoded: the torn tail when nothing intact
 * follows it (dropped: the journal ends before it), else the error. */
static int bad_record(Journal *j, long off, Err *e, const char *what)
{
    int after = intact_record_after(j, off, e);
    if (after < 0) return -1;
    if (after) return record_error(j, off, e, what);
    if (fseek(j->f, 0, SEEK_END) != 0) return err_set(e, "%s: cannot seek", j->path);
    j->torn_off = off;
    j->torn_bytes = ftell(j->f) - off;
    return 0;
}

void journal_torn_message(const Journal *j, char *out, size_t n)
{
    snprintf(out, n, "journal %s: dropped a torn last record at byte %ld (%ld bytes): the write "
                     "was cut short", j->path, j->torn_off, j->torn_bytes);
}

int journal_next(Journal *j, JournalRecord *r, Err *e)
{
    long off = ftell(j->f);
    unsigned char head[8];
    size_t got = fread(head, 1, 8, j->f);
    if (got == 0 && feof(j->f)) return 0;
    if (got != 8) return bad_record(j, off, e, "truncated record header");
    uint32_t type = le_get32(head), len = le_get32(head + 4);
    if (type != JREC_STEP && type != JREC_ROSTER)
        return bad_record(j, off, e, "unknown record type");
    if (len > 20 + JOURNAL_MAX_CODES) return bad_record(j, off, e, "absurd record length");
    if (len + 4 > j->codes_cap) {
        int8_t *c = realloc(j->codes, len + 4);
        if (!c) return err_set(e, "out of memory");
        j->codes = c;
        j->codes_cap = len + 4;
    }
    unsigned char *p = (unsigned char *)j->codes;
    if (fread(p, 1, len + 4, j->f) != len + 4) return bad_record(j, off, e, "truncated record");
    if (le_get32(p + len) != crc32c(crc32c(0, head, 8), p, len))
        return bad_record(j, off, e, "checksum mismatch: the journal is corrupted");
    const char *why = decode_payload(type, p, len, j->h.samples, r);
    if (why) return record_error(j, off, e, why);
    j->index++;
    return 1;
}

void journal_close(Journal *j)
{
    if (j->f) fclose(j->f);
    free(j->codes);
    memset(j, 0, sizeof *j);
}
