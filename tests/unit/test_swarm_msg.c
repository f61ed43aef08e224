/* The swarm's wire codec (worker/method/swarm/msg.c): every type round-trips and
 * re-encodes to the same bytes; corrupt, truncated, oversize and otherwise
 * hostile messages are refused with a message naming what is wrong. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/le.h"
#include "worker/method/swarm/msg.h"

static uint8_t g_buf[SWARM_MSG_MAX + 64];
static int8_t g_codes[SWARM_MSG_MAX];
static uint8_t g_blob[SWARM_BLOB_MAX + 1];
static uint8_t g_rows[2 * 8]; /* ROUND's blob: u32 slot + u32 weight per contributor */

static const SwarmEntry ENTRIES[3] = {
    {0, SW_MEMBER, "tcp://10.0.0.1:5000"},
    {7, SW_JOINED, "fi://efa/0x1234abcd"},
    {SWARM_MAX_SLOTS - 1, SW_MISSED_OUT, ""},
};

/* A ROUND's roster: the two contributors, and a machine welcomed after the
 * round began that follows it without counting. */
static const SwarmEntry ROSTER[3] = {
    {2, SW_MEMBER, "tcp://10.0.0.2:5000"},
    {3, SW_MEMBER, "tcp://10.0.0.3:5000"},
    {5, SW_FOLLOWER, "fi://efa/0x5555"},
};

/* The body fields in msg.h's wire order. */
typedef enum {
    F_STEP, F_EPOCH, F_ASSIGNED, F_WIDTH, F_SAMPLES, F_LR, F_LAST, F_CHAIN, F_WHASH, F_IDENT,
    F_ADDR, F_TEXT, F_CODES, F_BLOB, F_ENTRIES, F_END
} Field;

#define B(f) (1u << (f))

/* Which fields each type carries, written out again from msg.h's comments
 * rather than read from msg.c, so a wrong LAYOUT row fails the round trip. */
static const uint32_t CARRIES[SW_TYPE_END] = {
    [SW_CONFIG_REQ] = B(F_ADDR),
    [SW_CONFIG] = B(F_STEP) | B(F_BLOB),
    [SW_HELLO] = B(F_STEP) | B(F_CHAIN) | B(F_IDENT) | B(F_ADDR),
    [SW_REFUSE] = B(F_TEXT),
    [SW_WELCOME] = B(F_STEP) | B(F_EPOCH) | B(F_ASSIGNED) | B(F_ENTRIES),
    [SW_JOURNAL] = B(F_STEP) | B(F_LAST) | B(F_BLOB),
    [SW_CODES] = B(F_STEP) | B(F_EPOCH) | B(F_CHAIN) | B(F_WHASH) | B(F_CODES),
    [SW_DECIDE] = B(F_STEP) | B(F_EPOCH) | B(F_WIDTH) | B(F_SAMPLES) | B(F_LR) | B(F_CHAIN) |
                  B(F_WHASH) | B(F_CODES) | B(F_BLOB) | B(F_ENTRIES),
    [SW_LEAVE] = B(F_STEP),
    [SW_DROPPED] = B(F_TEXT),
    [SW_FETCH] = B(F_STEP),
    [SW_STOP] = B(F_TEXT),
    [SW_READY] = B(F_STEP) | B(F_ASSIGNED) | B(F_CHAIN) | B(F_WHASH),
    [SW_ROUND] = B(F_STEP) | B(F_EPOCH) | B(F_CHAIN) | B(F_WHASH) | B(F_BLOB) | B(F_ENTRIES),
    [SW_PIECE] = B(F_STEP) | B(F_ASSIGNED) | B(F_SAMPLES) | B(F_BLOB),
    [SW_MEAN] = B(F_STEP) | B(F_ASSIGNED) | B(F_SAMPLES) | B(F_BLOB),
    [SW_HAVE] = B(F_STEP),
    [SW_COMMIT] = B(F_STEP) | B(F_LAST) | B(F_CHAIN),
    [SW_STATE] = B(F_STEP) | B(F_ASSIGNED) | B(F_LAST) | B(F_WHASH) | B(F_BLOB),
    [SW_KEEPER] = B(F_STEP) | B(F_ASSIGNED),
};

/* Where each field lives in a SwarmMsg (the counted ones: their count), so
 * one loop compares them all as bytes. */
#define AT(member) offsetof(SwarmMsg, member), sizeof(((SwarmMsg *)0)->member)
static const struct {
    const char *name;
    size_t off, size;
} FIELD[F_END] = {
    [F_STEP] = {"step", AT(step)},
    [F_EPOCH] = {"epoch", AT(epoch)},
    [F_ASSIGNED] = {"assigned", AT(assigned)},
    [F_WIDTH] = {"width", AT(width)},
    [F_SAMPLES] = {"samples", AT(samples)},
    [F_LR] = {"lr", AT(lr)},
    [F_LAST] = {"last", AT(last)},
    [F_CHAIN] = {"chain", AT(chain)},
    [F_WHASH] = {"whash", AT(whash)},
    [F_IDENT] = {"ident", AT(ident)},
    [F_ADDR] = {"addr", AT(addr)},
    [F_TEXT] = {"text", AT(text)},
    [F_CODES] = {"codes", AT(n_codes)},
    [F_BLOB] = {"blob", AT(blob_len)},
    [F_ENTRIES] = {"entries", AT(n_entries)},
};

static void fill_payloads(void)
{
    for (size_t i = 0; i < sizeof g_codes; i++) g_codes[i] = (int8_t)(i * 37 + 11);
    for (size_t i = 0; i < sizeof g_blob; i++) g_blob[i] = (uint8_t)(i * 13 + 5);
    le_put32(g_rows, ROSTER[0].slot);
    le_put32(g_rows + 4, 500); /* its inner steps this round */
    le_put32(g_rows + 8, ROSTER[1].slot);
    le_put32(g_rows + 12, 480);
}

static const uint8_t RELAY_TREE[] = {4, 1, 7, 2, 0};

/* A representative message of each type. Every field is non-zero, also the
 * ones the type does not carry, so a round trip shows those are dropped. */
static SwarmMsg sample(int type)
{
    fill_payloads();
    SwarmMsg m = {0};
    m.type = (uint8_t)type;
    m.slot = type == SW_HELLO ? SWARM_NO_SLOT : 3;
    m.term = 17;
    m.step = 1000 + (uint32_t)type;
    m.epoch = 4;
    m.assigned = 9;
    m.width = 5;
    m.samples = 6;
    m.lr = 3e-4f;
    m.chain = 0x0123456789abcdefull;
    m.whash = 0xfedcba9876543210ull;
    m.last = 1;
    m.ident = (ZoIdentity){1337, 124000000ull, 0xaaaa5555aaaa5555ull, 0x1111222233334444ull,
                           4, 1e-3f, 0.5f, 0.01f, 0.0f};
    strcpy(m.addr, "tcp://192.168.1.20:40001");
    strcpy(m.text, "ident differs: seed 1337 vs 1338");
    m.codes = g_codes;
    m.n_codes = 8;
    m.blob = g_blob;
    m.blob_len = 300;
    m.entries = ENTRIES;
    m.n_entries = 3;
    switch (type) {
    case SW_STOP: memset(m.text, 0, sizeof m.text); break; /* an empty text */
    case SW_JOURNAL: m.blob_len = 5000; break;
    case SW_DECIDE:
        m.width = 3;
        m.samples = 8;
        m.n_codes = 24;
        m.blob = RELAY_TREE; /* the relay tree: slots, each once */
        m.blob_len = sizeof RELAY_TREE;
        m.entries = ENTRIES + 1;
        m.n_entries = 2;
        break;
    case SW_ROUND:
        m.blob = g_rows;
        m.blob_len = sizeof g_rows;
        m.entries = ROSTER;
        m.n_entries = 3;
        break;
    case SW_PIECE:
    case SW_MEAN: /* values 4096.. of the model, as f32 on the wire */
        m.assigned = 4096;
        m.samples = 250;
        m.blob_len = 4 * 250;
        break;
    case SW_STATE: /* the last chunk of the state, from float 2048 */
        m.assigned = 2048;
        m.blob_len = 4 * 700;
        break;
    }
    return m;
}

static size_t encode_ok(const SwarmMsg *m, uint8_t *buf)
{
    Err e = {{0}};
    size_t n = swarm_msg_encode(m, buf, SWARM_MSG_MAX, &e);
    cr_assert_gt(n, 0, "encode %s: %s", swarm_type_name(m->type), e.msg);
    return n;
}

static void assert_refused(const uint8_t *buf, size_t n, const char *want, const char *what)
{
    SwarmMsg m;
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(buf, n, &m, &e), -1, "%s: accepted", what);
    cr_assert(e.msg[0], "%s: refused without a message", what);
    if (want) cr_assert(strstr(e.msg, want), "%s: \"%s\" does not say \"%s\"", what, e.msg, want);
}

/* After a hand edit: the body length and CRC made right again, so the
 * checks after them see the edit. */
static void reseal(uint8_t *buf, size_t n)
{
    le_put32(buf + 16, (uint32_t)(n - SWARM_HEADER_BYTES));
    le_put32(buf + 20, crc32c(crc32c(0, buf, 20), buf + 24, n - 24));
}

static int carries(int type, Field f) { return (CARRIES[type] & B(f)) != 0; }

/* What a counted field points at: the same bytes when carried; NULL when
 * not, since decode points only into the message. */
static void assert_payload(Field f, const SwarmMsg *a, const SwarmMsg *d)
{
    const void *pa = f == F_CODES ? (const void *)a->codes : a->blob;
    const void *pd = f == F_CODES ? (const void *)d->codes : d->blob;
    uint32_t n = f == F_CODES ? a->n_codes : a->blob_len;
    const char *type = swarm_type_name(a->type);
    if (!carries(a->type, f)) cr_assert_null(pd, "%s: %s not dropped", type, FIELD[f].name);
    else if (n) cr_assert(!memcmp(pd, pa, n), "%s: %s differs", type, FIELD[f].name);
}

/* Entries come back only through swarm_msg_entry, each as it went. */
static void assert_entries(const SwarmMsg *a, const SwarmMsg *d)
{
    cr_assert_null(d->entries);
    if (!carries(a->type, F_ENTRIES)) cr_assert_null(d->entries_raw);
    for (uint32_t i = 0; i < d->n_entries; i++) {
        SwarmEntry en;
        swarm_msg_entry(d, i, &en);
        cr_assert_eq(en.slot, a->entries[i].slot);
        cr_assert_eq(en.kind, a->entries[i].kind);
        cr_assert_str_eq(en.addr, a->entries[i].addr);
    }
}

/* decode(encode(a)) carries each field a's type carries, as it went, and
 * leaves every other one zero. Strings compare up to their NUL: the bytes
 * after it never go on the wire. */
static void assert_fields(const SwarmMsg *a, const SwarmMsg *d)
{
    static const uint8_t zero[sizeof(ZoIdentity)];
    const char *type = swarm_type_name(a->type);
    for (Field f = 0; f < F_END; f++) {
        const char *va = (const char *)a + FIELD[f].off, *vd = (const char *)d + FIELD[f].off;
        int has = carries(a->type, f);
        if (f == F_ADDR || f == F_TEXT)
            cr_assert_str_eq(vd, has ? va : "", "%s: %s", type, FIELD[f].name);
        else if (has)
            cr_assert(!memcmp(vd, va, FIELD[f].size), "%s: %s not carried", type, FIELD[f].name);
        else
            cr_assert(!memcmp(vd, zero, FIELD[f].size), "%s: %s not dropped", type, FIELD[f].name);
    }
    assert_payload(F_CODES, a, d);
    assert_payload(F_BLOB, a, d);
    assert_entries(a, d);
}

static void assert_same(const SwarmMsg *a, const SwarmMsg *d)
{
    cr_assert_eq(d->type, a->type);
    cr_assert_eq(d->slot, a->slot);
    cr_assert_eq(d->term, a->term);
    assert_fields(a, d);
}

Test(swarm_msg, round_trip_every_type)
{
    for (int t = 1; t < SW_TYPE_END; t++) {
        cr_assert(CARRIES[t], "%s: no row in CARRIES", swarm_type_name(t));
        SwarmMsg a = sample(t), d;
        uint8_t *again = malloc(SWARM_MSG_MAX);
        size_t n = encode_ok(&a, g_buf);
        Err e = {{0}};
        cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s: %s", swarm_type_name(t), e.msg);
        assert_same(&a, &d);
        cr_assert_eq(swarm_msg_encode(&a, again, SWARM_MSG_MAX, &e), n);
        /* the decoded message (entries via swarm_msg_entry) re-encodes the same */
        SwarmEntry en[SWARM_MAX_SLOTS];
        for (uint32_t i = 0; i < d.n_entries; i++) swarm_msg_entry(&d, i, &en[i]);
        d.entries = en;
        cr_assert_eq(swarm_msg_encode(&d, again, SWARM_MSG_MAX, &e), n, "%s", e.msg);
        cr_assert(!memcmp(again, g_buf, n), "%s re-encodes differently", swarm_type_name(t));
        free(again);
    }
}

Test(swarm_msg, sizes_are_exact)
{
    SwarmMsg m = sample(SW_CODES);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 28 + m.n_codes);
    m = sample(SW_LEAVE);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 4);
    m = sample(SW_WELCOME);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 12 + 4 + 3 * SWARM_ENTRY_BYTES);
    m = sample(SW_HELLO);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 4 + 8 + 48 + 1 + strlen(m.addr));
    m = sample(SW_STOP);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 2);
    m = sample(SW_ROUND);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 4 + 4 + 8 + 8 + 4 + 2 * 8 + 4 + 3 * SWARM_ENTRY_BYTES);
    m = sample(SW_STATE);
    cr_assert_eq(encode_ok(&m, g_buf), 24 + 4 + 4 + 1 + 8 + 4 + m.blob_len);
    cr_assert_eq(le_get32(g_buf), SWARM_MAGIC);
    cr_assert(!memcmp(g_buf, "MPSW", 4));
}

Test(swarm_msg, names)
{
    cr_assert_str_eq(swarm_type_name(SW_CODES), "CODES");
    cr_assert_str_eq(swarm_type_name(SW_CONFIG_REQ), "CONFIG_REQ");
    cr_assert_str_eq(swarm_type_name(0), "?");
    cr_assert_str_eq(swarm_type_name(SW_TYPE_END), "?");
    cr_assert_str_eq(swarm_type_name(-1), "?");
}

Test(swarm_msg, max_size_codes_and_blob)
{
    SwarmMsg m = sample(SW_CODES), d;
    m.n_codes = SWARM_MAX_SAMPLES;
    size_t n = encode_ok(&m, g_buf);
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_codes, SWARM_MAX_SAMPLES);
    cr_assert(!memcmp(d.codes, g_codes, SWARM_MAX_SAMPLES));

    /* a DECIDE as wide as a message holds: 15 x 4096 codes and a full roster change */
    m = sample(SW_DECIDE);
    m.width = 15;
    m.samples = SWARM_MAX_SAMPLES;
    m.n_codes = m.width * m.samples;
    n = encode_ok(&m, g_buf);
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    cr_assert(!memcmp(d.codes, g_codes, m.n_codes));
    m.width = 16;
    m.n_codes = m.width * m.samples;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "DECIDE") && strstr(e.msg, "does not fit"), "%s", e.msg);

    m = sample(SW_CONFIG);
    m.blob_len = SWARM_BLOB_MAX;
    n = encode_ok(&m, g_buf);
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.blob_len, SWARM_BLOB_MAX);
    m.blob_len = SWARM_BLOB_MAX + 1;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "blob"), "%s", e.msg);
}

Test(swarm_msg, max_roster)
{
    static SwarmEntry roster[SWARM_MAX_SLOTS + 1];
    for (uint32_t i = 0; i <= SWARM_MAX_SLOTS; i++) {
        roster[i].slot = i;
        roster[i].kind = SW_MEMBER;
        memset(roster[i].addr, 'a' + (int)(i % 26), SWARM_ADDR_LEN - 1);
    }
    SwarmMsg m = sample(SW_WELCOME), d;
    m.entries = roster;
    m.n_entries = SWARM_MAX_SLOTS;
    size_t n = encode_ok(&m, g_buf);
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    assert_same(&m, &d);
    m.n_entries = SWARM_MAX_SLOTS + 1;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "entries"), "%s", e.msg);
}

Test(swarm_msg, encode_refuses_what_decode_would)
{
    Err e = {{0}};
    SwarmMsg m = sample(SW_CODES);
    cr_assert_eq(swarm_msg_encode(&m, g_buf, 24 + 28 + 7, &e), 0, "one byte short");
    cr_assert(strstr(e.msg, "CODES") && strstr(e.msg, "does not fit"), "%s", e.msg);
    cr_assert_eq(swarm_msg_encode(&m, g_buf, 10, &e), 0, "shorter than a header");
    cr_assert_eq(swarm_msg_encode(&m, g_buf, 24 + 28 + 8, &e), 24 + 28 + 8, "exact fit");
    m.n_codes = 0;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "0 codes"), "%s", e.msg);

    m = sample(SW_DECIDE);
    m.n_codes = 23;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "23 codes but width 3 x samples 8"), "%s", e.msg);

    m = sample(SW_HELLO);
    memset(m.addr, 'x', SWARM_ADDR_LEN);
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "HELLO") && strstr(e.msg, "addr"), "%s", e.msg);

    m = sample(SW_REFUSE);
    memset(m.text, 'y', SWARM_TEXT_LEN);
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "text"), "%s", e.msg);

    SwarmEntry bad = {1, SW_KIND_END, "x"};
    m = sample(SW_WELCOME);
    m.entries = &bad;
    m.n_entries = 1;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "kind"), "%s", e.msg);

    m.type = SW_TYPE_END;
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "unknown type"), "%s", e.msg);
}

static void every_byte_corrupted(int type)
{
    SwarmMsg m = sample(type);
    size_t n = encode_ok(&m, g_buf);
    for (size_t i = 0; i < n; i++) {
        /* every other value of the byte: a CRC catches any error of one byte */
        for (int x = 1; x < 256; x++) {
            g_buf[i] ^= (uint8_t)x;
            char what[64];
            snprintf(what, sizeof what, "%s byte %zu ^ 0x%02x", swarm_type_name(type), i, x);
            /* magic, version, type and the body length are checked before the CRC */
            int crc_catches = i >= 20 || (i >= 6 && i < 16);
            assert_refused(g_buf, n, crc_catches ? "CRC" : NULL, what);
            g_buf[i] ^= (uint8_t)x;
        }
    }
}

Test(swarm_msg, every_single_byte_corruption_is_refused)
{
    for (int t = 1; t < SW_TYPE_END; t++) every_byte_corrupted(t);
}

Test(swarm_msg, every_truncation_is_refused)
{
    for (int t = 1; t < SW_TYPE_END; t++) {
        SwarmMsg m = sample(t);
        size_t n = encode_ok(&m, g_buf);
        for (size_t k = 0; k < n; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s cut to %zu of %zu", swarm_type_name(t), k, n);
            assert_refused(g_buf, k, k < 24 ? "header" : "body bytes", what);
            /* and with the header made to agree: the body itself ends early */
            if (k >= 24) {
                static uint8_t cut[SWARM_MSG_MAX];
                memcpy(cut, g_buf, k);
                reseal(cut, k);
                assert_refused(cut, k, NULL, what);
            }
        }
    }
}

Test(swarm_msg, header_checks)
{
    SwarmMsg m = sample(SW_LEAVE);
    size_t n = encode_ok(&m, g_buf);
    g_buf[4] = 1; /* version 1's DECIDE had no relay tree */
    reseal(g_buf, n);
    assert_refused(g_buf, n, "version 1, this build speaks 2", "version");
    g_buf[4] = SWARM_VERSION;
    g_buf[5] = SW_TYPE_END;
    reseal(g_buf, n);
    char unknown[32];
    snprintf(unknown, sizeof unknown, "unknown type %d", SW_TYPE_END);
    assert_refused(g_buf, n, unknown, "type");
    g_buf[5] = 0;
    reseal(g_buf, n);
    assert_refused(g_buf, n, "unknown type 0", "type 0");
    g_buf[5] = SW_LEAVE;
    le_put16(g_buf + 6, 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "reserved", "reserved u16");
    le_put16(g_buf + 6, 0);
    g_buf[0] = 'X';
    reseal(g_buf, n);
    assert_refused(g_buf, n, "magic", "magic");
}

Test(swarm_msg, at_most_one_fabric_message)
{
    SwarmMsg m = sample(SW_CONFIG);
    m.blob_len = SWARM_BLOB_MAX;
    size_t n = encode_ok(&m, g_buf);
    /* a hand-made CONFIG one byte over SWARM_MSG_MAX, CRC and all */
    size_t over = SWARM_MSG_MAX + 1;
    memset(g_buf + n, 0, over - n);
    le_put32(g_buf + 28, (uint32_t)(over - 32));
    reseal(g_buf, over);
    assert_refused(g_buf, over, "longer than the 65536 bytes", "oversize message");
    /* encode does not write one either, whatever cap it is given */
    m = sample(SW_DECIDE);
    m.width = 16;
    m.samples = SWARM_MAX_SAMPLES;
    m.n_codes = m.width * m.samples;
    uint8_t *big = malloc(2 * SWARM_MSG_MAX);
    Err e = {{0}};
    cr_assert_eq(swarm_msg_encode(&m, big, 2 * SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "does not fit in 65536 bytes"), "%s", e.msg);
    free(big);
}

Test(swarm_msg, trailing_bytes)
{
    SwarmMsg m = sample(SW_CODES);
    size_t n = encode_ok(&m, g_buf);
    g_buf[n] = 0;
    reseal(g_buf, n + 1);
    assert_refused(g_buf, n + 1, "1 bytes left over", "trailing byte");
    m = sample(SW_FETCH);
    n = encode_ok(&m, g_buf);
    assert_refused(g_buf, n + 1, "body bytes", "unsealed trailing byte");
}

Test(swarm_msg, nul_inside_strings)
{
    SwarmMsg m = sample(SW_HELLO);
    size_t n = encode_ok(&m, g_buf);
    size_t addr = 24 + 4 + 8 + 48 + 1;
    g_buf[addr + 3] = 0;
    reseal(g_buf, n);
    assert_refused(g_buf, n, "addr: contains a NUL byte", "NUL in addr");

    m = sample(SW_REFUSE);
    n = encode_ok(&m, g_buf);
    g_buf[24 + 2] = 0;
    reseal(g_buf, n);
    assert_refused(g_buf, n, "REFUSE message", "NUL in text");
}

/* Each count past its limit, the CRC recomputed so the limit check answers. */
Test(swarm_msg, oversize_counts)
{
    SwarmMsg m = sample(SW_CONFIG_REQ);
    memset(g_buf, 'a', sizeof g_buf);
    size_t n = encode_ok(&m, g_buf);
    g_buf[24] = SWARM_ADDR_LEN;
    reseal(g_buf, 24 + 1 + SWARM_ADDR_LEN);
    assert_refused(g_buf, 24 + 1 + SWARM_ADDR_LEN, "addr: 64, more than the limit 63", "addr");

    m = sample(SW_STOP);
    n = encode_ok(&m, g_buf);
    le_put16(g_buf + 24, SWARM_TEXT_LEN);
    memset(g_buf + 26, 't', SWARM_TEXT_LEN);
    reseal(g_buf, 26 + SWARM_TEXT_LEN);
    assert_refused(g_buf, 26 + SWARM_TEXT_LEN, "text: 1024, more than the limit 1023", "text");

    m = sample(SW_CODES);
    n = encode_ok(&m, g_buf);
    le_put32(g_buf + 48, 9);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "codes: 9 bytes but only 8 are left", "codes past the end");
    le_put32(g_buf + 48, SWARM_MAX_SLOTS * SWARM_MAX_SAMPLES + 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "more than the limit", "codes over the limit");
    le_put32(g_buf + 48, 0);
    reseal(g_buf + 0, 52);
    assert_refused(g_buf, 52, "0 codes, not in 1..4096", "no codes");

    m = sample(SW_CODES);
    m.n_codes = SWARM_MAX_SAMPLES;
    n = encode_ok(&m, g_buf);
    le_put32(g_buf + 48, SWARM_MAX_SAMPLES + 1);
    g_buf[n] = 1;
    reseal(g_buf, n + 1);
    assert_refused(g_buf, n + 1, "4097 codes", "CODES of 4097");

    m = sample(SW_JOURNAL);
    n = encode_ok(&m, g_buf);
    le_put32(g_buf + 24 + 5, SWARM_BLOB_MAX + 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "blob: 65281, more than the limit", "blob");
    le_put32(g_buf + 24 + 5, 5001);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "blob: 5001 bytes but only 5000", "blob past the end");

    m = sample(SW_WELCOME);
    n = encode_ok(&m, g_buf);
    le_put32(g_buf + 36, SWARM_MAX_SLOTS + 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "entries: 257, more than the limit 256", "entries");
    le_put32(g_buf + 36, 4);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "entries: 4 (288 bytes) but only 216", "entries past the end");
}

Test(swarm_msg, decide_consistency)
{
    SwarmMsg m = sample(SW_DECIDE);
    size_t n = encode_ok(&m, g_buf);
    uint8_t orig[SWARM_MSG_MAX];
    memcpy(orig, g_buf, n);
    le_put32(g_buf + 32, 4); /* width 4 x 8 samples: 32 codes, there are 24 */
    reseal(g_buf, n);
    assert_refused(g_buf, n, "DECIDE message of", "width");
    assert_refused(g_buf, n, "24 codes but width 4 x samples 8", "width");
    le_put32(g_buf + 32, SWARM_MAX_SLOTS + 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "width 257", "wide");
    le_put32(g_buf + 32, 24);
    le_put32(g_buf + 36, 1);
    reseal(g_buf, n);
    cr_assert_eq(swarm_msg_decode(g_buf, n, &m, &(Err){{0}}), 0, "width 24 x samples 1");
    le_put32(g_buf + 32, 0);
    le_put32(g_buf + 36, 0);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "samples 0", "no samples");
    le_put32(g_buf + 36, SWARM_MAX_SAMPLES + 1);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "samples 4097", "samples");
    /* width 2^16 x samples 2^16 wraps to 0 in u32: compared in u64 */
    memcpy(g_buf, orig, n);
    le_put32(g_buf + 32, 65536);
    le_put32(g_buf + 36, 65536);
    reseal(g_buf, n);
    assert_refused(g_buf, n, "width", "wrap");
}

Test(swarm_msg, decide_relay_tree)
{
    /* every slot once: the widest tree there can be */
    static uint8_t tree[SWARM_MAX_SLOTS + 1];
    for (int i = 0; i < SWARM_MAX_SLOTS; i++) tree[i] = (uint8_t)(SWARM_MAX_SLOTS - 1 - i);
    SwarmMsg m = sample(SW_DECIDE), d;
    m.blob = tree;
    m.blob_len = SWARM_MAX_SLOTS;
    size_t n = encode_ok(&m, g_buf);
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.blob_len, SWARM_MAX_SLOTS);
    cr_assert(!memcmp(d.blob, tree, SWARM_MAX_SLOTS));
    /* a slot twice would pass the decision round in a loop: refused both ways */
    tree[200] = tree[3];
    cr_assert_eq(swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e), 0);
    cr_assert(strstr(e.msg, "relay tree names slot 252 twice"), "%s", e.msg);
    m.blob_len = 201;
    tree[200] = tree[0];
    n = swarm_msg_encode(&m, g_buf, SWARM_MSG_MAX, &e);
    cr_assert_eq(n, 0, "a repeat at the end");
    m = sample(SW_DECIDE);
    n = encode_ok(&m, g_buf);
    g_buf[n - 2 * SWARM_ENTRY_BYTES - 4 - 1] = 4; /* the tree's last slot (0) made the first's */
    reseal(g_buf, n);
    assert_refused(g_buf, n, "relay tree names slot 4 twice", "tree");
}

Test(swarm_msg, entry_checks)
{
    SwarmMsg m = sample(SW_WELCOME);
    size_t n = encode_ok(&m, g_buf);
    uint8_t orig[SWARM_MSG_MAX];
    memcpy(orig, g_buf, n);
    const size_t e1 = 40 + SWARM_ENTRY_BYTES; /* entry 1 */
    char kind_end[64];
    snprintf(kind_end, sizeof kind_end, "entry 1 has kind %d, not in %d..%d", SW_KIND_END,
             SW_MEMBER, SW_KIND_END - 1);
    struct {
        size_t off;
        uint8_t val;
        const char *want;
    } cases[] = {
        {e1 + 4, 0, "entry 1 has kind 0"},
        {e1 + 4, SW_KIND_END, kind_end},
        {e1 + 5, SWARM_ADDR_LEN, "entry 1's addr is 64 bytes"},
        {e1 + 6, 1, "entry 1's reserved"},
        {e1 + 7, 0x80, "entry 1's reserved"},
        {e1 + 8 + 2, 0, "entry 1's addr contains a NUL"},
        {e1 + 8 + 40, 'z', "entry 1 has bytes past its 19-byte addr"},
        {e1 + 8 + 63, 'z', "bytes past"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(g_buf, orig, n);
        g_buf[cases[i].off] = cases[i].val;
        reseal(g_buf, n);
        assert_refused(g_buf, n, cases[i].want, cases[i].want);
        assert_refused(g_buf, n, "swarm WELCOME message of 256 bytes: entries: ", "prefix");
    }
    /* an address of 63 bytes (the most) is accepted */
    memcpy(g_buf, orig, n);
    g_buf[e1 + 5] = SWARM_ADDR_LEN - 1;
    memset(g_buf + e1 + 8, 'q', SWARM_ADDR_LEN - 1);
    reseal(g_buf, n);
    SwarmMsg d;
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "%s", e.msg);
    SwarmEntry en;
    swarm_msg_entry(&d, 1, &en);
    cr_assert_eq(strlen(en.addr), SWARM_ADDR_LEN - 1);
}

/* Every kind an entry may have goes in a roster and comes back: a ROUND's
 * followers as much as its members; one past the last is refused both ways
 * (encode_refuses_what_decode_would, entry_checks). */
Test(swarm_msg, every_entry_kind_round_trips)
{
    for (uint8_t kind = SW_MEMBER; kind < SW_KIND_END; kind++) {
        SwarmEntry one = {11, kind, "tcp://10.0.0.11:5000"};
        SwarmMsg m = sample(SW_ROUND), d;
        m.entries = &one;
        m.n_entries = 1;
        size_t n = encode_ok(&m, g_buf);
        Err e = {{0}};
        cr_assert_eq(swarm_msg_decode(g_buf, n, &d, &e), 0, "kind %u: %s", kind, e.msg);
        assert_same(&m, &d);
    }
}

Test(swarm_msg, refused_message_is_zeroed)
{
    SwarmMsg m = sample(SW_DECIDE), d;
    size_t n = encode_ok(&m, g_buf);
    g_buf[n] = 0;
    reseal(g_buf, n + 1);
    Err e = {{0}};
    cr_assert_eq(swarm_msg_decode(g_buf, n + 1, &d, &e), -1);
    cr_assert_null(d.codes);
    cr_assert_null(d.entries_raw);
    cr_assert_eq(d.step, 0);
}
