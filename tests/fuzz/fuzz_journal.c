/* Fuzz target: the ZO journal reader (worker/journal.c).
 *
 * Each input is written to a file and read twice with journal_open_read +
 * journal_next until the end or an error:
 *   1. as is, so the magic, version, header CRC, record CRCs and torn tails
 *      see hostile bytes;
 *   2. with the header CRC and every whole record's CRC-32C recomputed, so
 *      mutated record fields (type, length, machines, samples, codes) get past
 *      the checksums.
 * Every code of every STEP record the reader hands back is read (ASan checks
 * the bounds). When the repaired journal reads to a clean end, it is also
 * opened for appending (which re-reads it), a ROSTER and a STEP record are
 * appended, and it is read again: that must still be clean (skipped when a
 * header float is NaN, see below).
 *
 * Seeds (MPITRAIN_FUZZ_GEN): journals written by journal_append_*. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_util.h"
#include "base/crc32c.h"
#include "worker/method/zo/journal.h"

static char g_path[FUZZ_PATH];
static unsigned char *g_buf;
static size_t g_cap;

static void make_seed(const char *name, int with_records)
{
    char path[FUZZ_PATH];
    fuzz_join(path, fuzz_workdir("journal"), name);
    ZoIdentity h = {.seed = 1337, .eps = 1e-3f, .scale = 0.01f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 12345};
    Journal j;
    Err e = {{0}};
    if (journal_open_append(&j, path, &h, &e)) fuzz_die("%s", e.msg);
    if (with_records) {
        int8_t codes[6] = {1, -2, 127, -127, -128, 0};
        if (journal_append_roster(&j, 0, 2, 0, &e)) fuzz_die("%s", e.msg);
        for (uint32_t s = 0; s < 3; s++)
            if (journal_append_step(&j, s, 2, 2, 0, 1e-3f, codes, &e)) fuzz_die("%s", e.msg);
        if (journal_append_roster(&j, 1, 3, 3, &e)) fuzz_die("%s", e.msg);
        if (journal_append_step(&j, 3, 3, 2, 1, 9e-4f, codes, &e)) fuzz_die("%s", e.msg);
    }
    journal_close(&j);
    fuzz_seed_file(name, path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    fuzz_join(g_path, fuzz_workdir("journal"), "journal.bin");
    if (fuzz_gen_dir()) {
        make_seed("header_only.jnl", 0);
        make_seed("steps.jnl", 1);
    }
    return 0;
}

/* 1 = clean end, 0 = an error (open or record). */
static int read_journal(ZoIdentity *h)
{
    Journal j;
    JournalRecord r;
    Err e = {{0}};
    if (journal_open_read(&j, g_path, &e)) {
        fuzz_verbose("journal_open_read", -1, &e);
        return 0;
    }
    if (h) *h = j.h;
    int rc;
    long records = 0;
    while ((rc = journal_next(&j, &r, &e)) == 1) {
        if (r.type == JREC_STEP) fuzz_touch(r.codes, (size_t)r.machines * r.samples);
        if (++records > (1L << 24)) {
            fuzz_fail("journal: reader returned more records than the file can hold");
        }
    }
    journal_close(&j);
    fuzz_verbose("journal_next", rc < 0, &e);
    return rc == 0;
}

static uint32_t get32(const unsigned char *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return v;
}

/* Fixes the header CRC and the CRC of each whole record, in place. */
static void repair(unsigned char *b, size_t n)
{
    if (n < JOURNAL_HEADER_BYTES) return;
    uint32_t crc = crc32c(0, b, 44);
    memcpy(b + 44, &crc, 4);
    size_t off = JOURNAL_HEADER_BYTES;
    while (n - off >= 12) {
        uint32_t len = get32(b + off + 4);
        if (len > n - off - 12) break;
        crc = crc32c(crc32c(0, b + off, 8), b + off + 8, len);
        memcpy(b + off + 8 + len, &crc, 4);
        off += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(g_path, data, size);
    read_journal(NULL);

    if (size > g_cap) {
        g_cap = size;
        free(g_buf);
        if (!(g_buf = malloc(g_cap))) fuzz_die("out of memory");
    }
    if (size) memcpy(g_buf, data, size);
    repair(g_buf, size);
    fuzz_write_file(g_path, g_buf, size);
    ZoIdentity h;
    if (!read_journal(&h)) return 0;

    /* a journal that reads cleanly can be appended to and still reads cleanly.
     * Not when a header float is NaN: journal_open_append compares headers
     * with ==, so such a journal (only a corrupt one: the options refuse NaN)
     * matches no header, its own included, and is refused with a clear
     * message. Known and harmless; not reported again. */
    if (isnan(h.eps) || isnan(h.scale) || isnan(h.weight_decay)) return 0;
    Journal j;
    Err e = {{0}};
    if (journal_open_append(&j, g_path, &h, &e))
        fuzz_fail("journal: reads cleanly but cannot be opened for appending: %s", e.msg);
    int8_t codes[4] = {3, -3, 0, -128};
    uint32_t samples = h.samples <= 4 ? h.samples : 0;
    int rc = journal_append_roster(&j, 9, 1, 100, &e);
    if (!rc && samples) rc = journal_append_step(&j, 100, 1, samples, 9, 1e-3f, codes, &e);
    journal_close(&j);
    if (rc) fuzz_die("append failed: %s", e.msg);
    if (!read_journal(NULL)) fuzz_fail("journal: appending to a clean journal made it unreadable");
    return 0;
}
