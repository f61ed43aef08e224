#ifndef MPITRAIN_SWARM_MSG_H
#define MPITRAIN_SWARM_MSG_H
/* The swarm's messages on the wire (docs/swarm.md): one fabric message each,
 * little-endian, a 24-byte header then a body whose fields depend on the
 * type (the LAYOUT table in msg.c), so a CODES message is 24 + 28 + samples
 * bytes and nothing else.
 *
 * Header: u32 magic "MPSW" | u8 version | u8 type | u16 0 | u32 slot (the
 * sender's, SWARM_NO_SLOT before it has one) | u32 term (the keeper term the
 * sender follows) | u32 body bytes | u32 CRC-32C of header bytes 0..19 then
 * the body.
 *
 * Body fields, in this order where a type has them:
 *   step u32, epoch u32, assigned u32, width u32, samples u32, lr f32,
 *   last u8, chain u64, whash u64, ident (48 bytes: seed u64,
 *   global_params u64, params_id u64, base_id u64, samples u32, eps f32,
 *   scale f32, weight_decay f32), addr (u8 length + bytes, < SWARM_ADDR_LEN),
 *   text (u16 length + bytes, < SWARM_TEXT_LEN), codes (u32 count + i8s),
 *   blob (u32 count + bytes), entries (u32 count + count x 72 bytes: u32 slot,
 *   u8 kind, u8 addr length, u16 0, addr padded to 64 bytes).
 *
 * decode never trusts the bytes: every length is checked against the
 * message and its limit before it is used, and a decoded message points
 * into the buffer it came from (codes, blob, entries) without copying. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "worker/method/zo/identity.h"

#define SWARM_MAGIC 0x5753504Du /* "MPSW" as little-endian bytes */
#define SWARM_VERSION 2 /* 2: DECIDE carries its relay tree */
#define SWARM_HEADER_BYTES 24
#define SWARM_MSG_MAX 65536      /* == FABRIC_MSG_MAX */
#define SWARM_ADDR_LEN 64        /* with its NUL */
#define SWARM_TEXT_LEN 1024      /* with its NUL */
#define SWARM_ENTRY_BYTES 72
#define SWARM_NO_SLOT 0xFFFFFFFFu
#define SWARM_MAX_SLOTS 256
#define SWARM_MAX_SAMPLES 4096
#define SWARM_BLOB_MAX (SWARM_MSG_MAX - 256)

typedef enum {
    SW_CONFIG_REQ = 1, /* newcomer -> keeper: addr (reply there) */
    SW_CONFIG = 2,     /* keeper -> newcomer: step (the run's next), blob (the plan) */
    SW_HELLO = 3,      /* joiner -> keeper: step (steps its journal holds), chain (there), ident, addr */
    SW_REFUSE = 4,     /* keeper -> joiner: text (why) */
    SW_WELCOME = 5,    /* keeper -> joiner: step (its journal continues here), epoch, assigned (its slot), entries (the roster: kind SW_MEMBER) */
    SW_JOURNAL = 6,    /* keeper -> joiner: step (of the chunk's first record), last, blob (journal records) */
    SW_CODES = 7,      /* member -> keeper: step, epoch, chain (before the step), whash (0 = none), codes (samples) */
    SW_DECIDE = 8,     /* keeper -> all: step, epoch, width, samples, lr, chain (after the step), whash, codes (width x samples), blob (the relay tree: receivers' slots, one byte each, each once; empty = sent direct), entries (roster changes) */
    SW_LEAVE = 9,      /* member -> keeper: step (its last applied step + 1) */
    SW_DROPPED = 10,   /* keeper -> machine: text (why; rejoin to catch up) */
    SW_FETCH = 11,     /* new keeper -> member: step (send the DECIDE of this step) */
    SW_STOP = 12,      /* keeper -> all: text (the run stops) */
    /* elastic DiLoCo (worker/method/elastic/): one outer round at a time */
    SW_READY = 13,     /* member -> keeper: step (the round), assigned (its inner steps), chain, whash (the round's start) */
    SW_ROUND = 14,     /* keeper -> roster: step, epoch, chain (after the decision), whash, blob (u32 slot + u32 weight per contributor), entries (the roster: SW_MEMBER or SW_FOLLOWER) */
    SW_PIECE = 15,     /* contributor -> owner: step, assigned (first value), samples (values), blob (them on the wire) */
    SW_MEAN = 16,      /* owner -> roster: step, assigned, samples, blob (the segment's weighted mean) */
    SW_HAVE = 17,      /* contributor -> keeper: step (it holds the whole mean) */
    SW_COMMIT = 18,    /* keeper -> roster: step, last (1 = apply the mean, 0 = void: keep the progress), chain */
    SW_STATE = 19,     /* keeper -> joiner: step (the round it starts), assigned (first float), last, whash (of the whole state), blob */
    SW_KEEPER = 20,    /* new keeper -> roster: step (the round), assigned (the keeper it replaces); the header's term is the new one */
    SW_TYPE_END
} SwarmType;

/* An entry's kind: a roster member (WELCOME, ROUND), a machine welcomed but
 * not yet counted (ROUND), or a change a DECIDE makes. */
enum { SW_MEMBER = 1, SW_JOINED = 2, SW_LEFT = 3, SW_MISSED_OUT = 4, SW_FOLLOWER = 5, SW_KIND_END };

typedef struct {
    uint32_t slot;
    uint8_t kind;
    char addr[SWARM_ADDR_LEN];
} SwarmEntry;

typedef struct {
    uint8_t type;
    uint32_t slot, term;
    uint32_t step, epoch, assigned, width, samples;
    float lr;
    uint8_t last;
    uint64_t chain, whash;
    ZoIdentity ident; /* HELLO: the joiner's run; it must match the keeper's */
    char addr[SWARM_ADDR_LEN];
    char text[SWARM_TEXT_LEN];
    const int8_t *codes;
    uint32_t n_codes;
    const uint8_t *blob;
    uint32_t blob_len;
    /* encode reads entries[0..n_entries); decode leaves entries NULL and
     * points entries_raw into the buffer: read them with swarm_msg_entry */
    const SwarmEntry *entries;
    const uint8_t *entries_raw;
    uint32_t n_entries;
} SwarmMsg;

/* Bytes written to buf (at most cap), or 0 when the message does not fit
 * or a field is beyond its limit (a caller bug: e says which). */
size_t swarm_msg_encode(const SwarmMsg *m, uint8_t *buf, size_t cap, Err *e);
/* 0 and *m filled, or -1 with e naming the type and what is wrong ("swarm
 * CODES message of 60 bytes: codes: 8 bytes but only 4 are left"). Checks the
 * length (a header, at most SWARM_MSG_MAX: encode never writes more), magic, version,
 * type, body length, CRC, every count against its limit and what is left,
 * DECIDE's codes == width x samples, its relay tree naming no slot twice, entry kinds and address lengths,
 * strings without NULs, and no bytes left over. */
int swarm_msg_decode(const uint8_t *buf, size_t len, SwarmMsg *m, Err *e);
/* Entry i of a decoded message (i < m->n_entries). */
void swarm_msg_entry(const SwarmMsg *m, uint32_t i, SwarmEntry *out);
/* "CODES", "DECIDE", ...; "?" for an unknown type. */
const char *swarm_type_name(int type);

#endif
