/* Fuzz target: the swarm's message decoder (worker/method/swarm/msg.c).
 *
 * Each input is decoded twice with swarm_msg_decode:
 *   1. as is, so the magic, version, type, body length and CRC see hostile
 *      bytes;
 *   2. with the header's body-length field and CRC-32C repaired, so mutated
 *      body fields (counts, lengths, entries, DECIDE's width x samples) get
 *      past the checksum.
 * Of an accepted message every code, blob byte and entry byte is read (ASan
 * checks the bounds), its strings must be NUL-terminated within their arrays,
 * and it must re-encode to exactly the input's bytes: the format has one
 * encoding of each message, so anything else is a decoder that accepts
 * something it should not (or drops a field).
 *
 * Seeds (MPITRAIN_FUZZ_GEN): one message of each type, by swarm_msg_encode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz_util.h"
#include "base/crc32c.h"
#include "base/le.h"
#include "worker/method/swarm/msg.h"

static uint8_t g_fixed[SWARM_MSG_MAX];
static uint8_t g_again[SWARM_MSG_MAX];

static void seed(int type)
{
    static const SwarmEntry roster[2] = {{0, SW_MEMBER, "tcp://10.0.0.1:5000"},
                                         {5, SW_LEFT, "fi://efa/0x1234"}};
    int8_t codes[12];
    uint8_t blob[40];
    for (int i = 0; i < 12; i++) codes[i] = (int8_t)(i * 29 - 100);
    for (int i = 0; i < 40; i++) blob[i] = (uint8_t)(i * 7);
    SwarmMsg m = {.type = (uint8_t)type, .slot = 2, .term = 3, .step = 41, .epoch = 1,
                  .assigned = 4, .width = 3, .samples = 4, .lr = 1e-3f, .last = 1,
                  .chain = 0x1122334455667788ull, .whash = 0x99aabbccddeeff00ull,
                  .ident = {1337, 1000000, 7, 9, 4, 1e-3f, 1.0f, 0.01f}};
    strcpy(m.addr, "tcp://192.168.1.2:40001");
    strcpy(m.text, "the run stops");
    m.codes = codes;
    m.n_codes = type == SW_DECIDE ? 12 : 4;
    m.blob = blob;
    m.blob_len = sizeof blob;
    m.entries = roster;
    m.n_entries = type == SW_WELCOME ? 1 : 2;
    Err e = {{0}};
    size_t n = swarm_msg_encode(&m, g_again, sizeof g_again, &e);
    if (!n) fuzz_die("seed %s: %s", swarm_type_name(type), e.msg);
    char name[64];
    snprintf(name, sizeof name, "%s.msg", swarm_type_name(type));
    fuzz_seed(name, g_again, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    if (fuzz_gen_dir())
        for (int t = 1; t < SW_TYPE_END; t++) seed(t);
    return 0;
}

static void check_string(const char *s, size_t cap, const char *what)
{
    if (!memchr(s, 0, cap)) fuzz_fail("swarm_msg: decoded %s has no NUL", what);
}

/* Reads everything an accepted message hands back; it must re-encode the same. */
static void check_accepted(const uint8_t *buf, size_t len, SwarmMsg *m)
{
    fuzz_touch(m->codes, m->n_codes);
    fuzz_touch(m->blob, m->blob_len);
    fuzz_touch(m->entries_raw, (size_t)m->n_entries * SWARM_ENTRY_BYTES);
    check_string(m->addr, sizeof m->addr, "addr");
    check_string(m->text, sizeof m->text, "text");
    static SwarmEntry en[SWARM_MAX_SLOTS];
    if (m->n_entries > SWARM_MAX_SLOTS) fuzz_fail("swarm_msg: %u entries", m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        swarm_msg_entry(m, i, &en[i]);
        check_string(en[i].addr, sizeof en[i].addr, "entry addr");
        fuzz_touch(en[i].addr, strlen(en[i].addr));
    }
    m->entries = en;
    Err e = {{0}};
    size_t n = swarm_msg_encode(m, g_again, sizeof g_again, &e);
    if (!n) fuzz_fail("swarm_msg: round trip: a decoded %s does not encode: %s",
                      swarm_type_name(m->type), e.msg);
    if (n != len || memcmp(g_again, buf, len))
        fuzz_fail("swarm_msg: round trip: a decoded %s of %zu bytes re-encodes to %zu other bytes",
                  swarm_type_name(m->type), len, n);
}

static void decode(const uint8_t *buf, size_t len, const char *what)
{
    SwarmMsg m;
    Err e = {{0}};
    int rc = swarm_msg_decode(buf, len, &m, &e);
    fuzz_verbose(what, rc, &e);
    if (rc == 0) check_accepted(buf, len, &m);
    else if (!e.msg[0]) fuzz_fail("swarm_msg: %s refused without a message", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size, "as is");
    if (size < SWARM_HEADER_BYTES || size > sizeof g_fixed) return 0;
    memcpy(g_fixed, data, size);
    uint32_t body = (uint32_t)(size - SWARM_HEADER_BYTES);
    le_put32(g_fixed + 16, body);
    le_put32(g_fixed + 20, crc32c(crc32c(0, g_fixed, 20), g_fixed + SWARM_HEADER_BYTES, body));
    decode(g_fixed, size, "repaired");
    return 0;
}
