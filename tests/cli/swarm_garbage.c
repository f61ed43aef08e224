/* Sends hostile messages to a swarm machine's endpoint (swarm_test.sh):
 * random bytes of random lengths, real messages cut short, real messages
 * with one byte flipped, a real header with another version, well-formed
 * messages from a stranger, and an empty message. The machine must drop them all and train on, bit for bit.
 * usage: swarm_garbage PROVIDER ADDR COUNT SEED */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm/fabric/fabric.h"
#include "worker/method/swarm/msg.h"

static uint64_t rng;
static uint32_t next_rand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* A well-formed message to spoil: a ZO swarm's CODES or HELLO, or an
 * elastic DiLoCo round's messages from a stranger, with random rounds,
 * slots and offsets. The round's messages are also sent as they are (kind
 * 4): a stranger's HELLO would be welcomed, a CODES counted. */
static size_t real_message(uint8_t *buf, size_t cap, int elastic_only)
{
    static const int8_t codes[4] = {1, -2, 3, -4};
    static const uint8_t blob[64] = {1, 2, 3, 4};
    static const int types[] = {SW_CODES, SW_HELLO, SW_READY, SW_PIECE, SW_MEAN,
                                SW_HAVE,  SW_ROUND, SW_STATE, SW_COMMIT};
    size_t first = elastic_only ? 2 : 0, n_types = sizeof types / sizeof types[0] - first;
    SwarmMsg m = {.type = (uint8_t)types[first + next_rand() % n_types],
                  .slot = next_rand() % 8, .step = next_rand() % 100,
                  .assigned = next_rand() % 4096, .samples = 1 + next_rand() % 16,
                  .whash = next_rand(), .chain = next_rand()};
    if (m.type == SW_CODES) {
        m.codes = codes;
        m.n_codes = 4;
    }
    if (m.type == SW_PIECE || m.type == SW_MEAN || m.type == SW_STATE || m.type == SW_ROUND) {
        m.blob = blob;
        m.blob_len = 8 * (1 + next_rand() % 8);
    }
    snprintf(m.addr, sizeof m.addr, "127.0.0.1:9");
    Err e;
    return swarm_msg_encode(&m, buf, cap, &e);
}

static size_t spoiled(uint8_t *buf, size_t cap, int kind)
{
    size_t n = real_message(buf, cap, kind == 4);
    switch (kind) {
    case 0: /* random bytes */
        n = next_rand() % 2048;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)next_rand();
        return n;
    case 1: return n ? next_rand() % n : 0;                      /* cut short */
    case 2: if (n) buf[next_rand() % n] ^= (uint8_t)(1 + next_rand() % 255); return n; /* a flipped byte */
    case 3: if (n > 4) buf[4] = 99; return n;                    /* another version */
    case 4: return n;                                            /* well-formed, a stranger's */
    default: return 0;                                           /* empty */
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: swarm_garbage PROVIDER ADDR COUNT SEED\n");
        return 2;
    }
    rng = strtoull(argv[4], NULL, 10);
    Fabric *f;
    FabricAddr to;
    Err e = {{0}};
    if (fabric_open(&f, argv[1], NULL, argv[2], &e) || fabric_peer(f, argv[2], &to, &e)) {
        fprintf(stderr, "swarm_garbage: %s\n", e.msg);
        return 1;
    }
    static uint8_t buf[SWARM_MSG_MAX];
    long count = atol(argv[3]), sent = 0;
    for (long i = 0; i < count; i++) {
        size_t n = spoiled(buf, sizeof buf, (int)(i % 6));
        if (!fabric_send(f, to, buf, n, &e)) sent++;
        if (i % 64 == 0) fabric_progress(f);
    }
    fabric_close(f, 2.0);
    printf("sent %ld hostile messages to %s\n", sent, argv[2]);
    return 0;
}
