#include "worker/method/swarm/msg.h"

#include <string.h>
#include "base/crc32c.h"
#include "base/le.h"

/* Body fields, in their wire order: a type's body is the fields its LAYOUT
 * row names, always in this order, so one encode loop and one decode loop
 * serve every type and a new type is one table row. */
typedef enum {
    F_STEP,
    F_EPOCH,
    F_ASSIGNED,
    F_WIDTH,
    F_SAMPLES,
    F_LR,
    F_LAST,
    F_CHAIN,
    F_WHASH,
    F_IDENT,
    F_ADDR,
    F_TEXT,
    F_CODES,
    F_BLOB,
    F_ENTRIES,
    F_END
} Field;

static const char *const FIELD_NAME[F_END] = {
    "step", "epoch", "assigned", "width", "samples", "lr",   "last",   "chain",
    "whash", "ident", "addr",    "text",  "codes",   "blob", "entries",
};

#define B(f) (1u << (f))

static const struct {
    const char *name;
    uint32_t fields; /* bit F_x set: the body carries x */
} LAYOUT[SW_TYPE_END] = {
    [SW_CONFIG_REQ] = {"CONFIG_REQ", B(F_ADDR)},
    [SW_CONFIG] = {"CONFIG", B(F_STEP) | B(F_BLOB)},
    [SW_HELLO] = {"HELLO", B(F_STEP) | B(F_CHAIN) | B(F_IDENT) | B(F_ADDR)},
    [SW_REFUSE] = {"REFUSE", B(F_TEXT)},
    [SW_WELCOME] = {"WELCOME", B(F_STEP) | B(F_EPOCH) | B(F_ASSIGNED) | B(F_ENTRIES)},
    [SW_JOURNAL] = {"JOURNAL", B(F_STEP) | B(F_LAST) | B(F_BLOB)},
    [SW_CODES] = {"CODES", B(F_STEP) | B(F_EPOCH) | B(F_CHAIN) | B(F_WHASH) | B(F_CODES)},
    [SW_DECIDE] = {"DECIDE", B(F_STEP) | B(F_EPOCH) | B(F_WIDTH) | B(F_SAMPLES) | B(F_LR) |
                                 B(F_CHAIN) | B(F_WHASH) | B(F_CODES) | B(F_BLOB) |
                                 B(F_ENTRIES)},
    [SW_LEAVE] = {"LEAVE", B(F_STEP)},
    [SW_DROPPED] = {"DROPPED", B(F_TEXT)},
    [SW_FETCH] = {"FETCH", B(F_STEP)},
    [SW_STOP] = {"STOP", B(F_TEXT)},
    [SW_READY] = {"READY", B(F_STEP) | B(F_ASSIGNED) | B(F_CHAIN) | B(F_WHASH)},
    [SW_ROUND] = {"ROUND", B(F_STEP) | B(F_EPOCH) | B(F_CHAIN) | B(F_WHASH) | B(F_BLOB) |
                               B(F_ENTRIES)},
    [SW_PIECE] = {"PIECE", B(F_STEP) | B(F_ASSIGNED) | B(F_SAMPLES) | B(F_BLOB)},
    [SW_MEAN] = {"MEAN", B(F_STEP) | B(F_ASSIGNED) | B(F_SAMPLES) | B(F_BLOB)},
    [SW_HAVE] = {"HAVE", B(F_STEP)},
    [SW_COMMIT] = {"COMMIT", B(F_STEP) | B(F_LAST) | B(F_CHAIN)},
    [SW_KEEPER] = {"KEEPER", B(F_STEP) | B(F_ASSIGNED)},
    [SW_STATE] = {"STATE", B(F_STEP) | B(F_ASSIGNED) | B(F_LAST) | B(F_WHASH) | B(F_BLOB)},
};

#define IDENT_BYTES 48
#define ENTRY_ADDR_OFF 8 /* u32 slot, u8 kind, u8 length, u16 0, then the address */
#define MAX_CODES ((uint32_t)SWARM_MAX_SLOTS * SWARM_MAX_SAMPLES)

const char *swarm_type_name(int type)
{
    if (type <= 0 || type >= SW_TYPE_END) return "?";
    return LAYOUT[type].name;
}

static int known_type(unsigned type)
{
    return type > 0 && type < SW_TYPE_END && LAYOUT[type].name;
}

/* The rules both directions enforce beyond each field's own limit, so that
 * whatever encode writes, decode accepts. */
static int check_counts(const SwarmMsg *m, Err *e)
{
    if (m->type == SW_DECIDE) {
        if (m->width > SWARM_MAX_SLOTS)
            return err_set(e, "width %u, more than %d slots", m->width, SWARM_MAX_SLOTS);
        if (m->samples < 1 || m->samples > SWARM_MAX_SAMPLES)
            return err_set(e, "samples %u, not in 1..%d", m->samples, SWARM_MAX_SAMPLES);
        if ((uint64_t)m->width * m->samples != m->n_codes)
            return err_set(e, "%u codes but width %u x samples %u", m->n_codes, m->width,
                           m->samples);
        /* a slot twice in the tree would pass the message round in a loop */
        uint8_t seen[SWARM_MAX_SLOTS] = {0};
        for (uint32_t i = 0; i < m->blob_len; i++)
            if (seen[m->blob[i]]++)
                return err_set(e, "relay tree names slot %u twice", m->blob[i]);
    }
    if (m->type == SW_CODES && (m->n_codes < 1 || m->n_codes > SWARM_MAX_SAMPLES))
        return err_set(e, "%u codes, not in 1..%d", m->n_codes, SWARM_MAX_SAMPLES);
    return 0;
}

/* ---- encode ---------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t used, cap;
} Writer;

/* Room for n more bytes, or NULL (the caller names the field). */
static uint8_t *w_take(Writer *w, size_t n)
{
    if (n > w->cap - w->used) return NULL;
    uint8_t *at = w->p + w->used;
    w->used += n;
    return at;
}

/* A string field's length, or -1 when it has no NUL within max bytes. */
static long bounded_len(const char *s, size_t max)
{
    const char *nul = memchr(s, 0, max);
    return nul ? (long)(nul - s) : -1;
}

static void put_ident(uint8_t *b, const ZoIdentity *id)
{
    le_put64(b, id->seed);
    le_put64(b + 8, id->global_params);
    le_put64(b + 16, id->params_id);
    le_put64(b + 24, id->base_id);
    le_put32(b + 32, id->samples);
    le_put_f32(b + 36, id->eps);
    le_put_f32(b + 40, id->scale);
    le_put_f32(b + 44, id->weight_decay);
}

static int put_entry(uint8_t *b, const SwarmEntry *en, uint32_t i, Err *e)
{
    long n = bounded_len(en->addr, SWARM_ADDR_LEN);
    if (n < 0) return err_set(e, "entry %u's addr has no NUL in %d bytes", i, SWARM_ADDR_LEN);
    if (en->kind < SW_MEMBER || en->kind >= SW_KIND_END)
        return err_set(e, "entry %u has kind %u", i, en->kind);
    memset(b, 0, SWARM_ENTRY_BYTES);
    le_put32(b, en->slot);
    b[4] = en->kind;
    b[5] = (uint8_t)n;
    memcpy(b + ENTRY_ADDR_OFF, en->addr, (size_t)n);
    return 0;
}

/* A length-prefixed run of bytes: a pfx-byte count, then the bytes. */
static int put_bytes(Writer *w, int pfx, const void *src, size_t n, Err *e)
{
    if (n && !src) return err_set(e, "%zu bytes but no pointer", n);
    uint8_t *b = w_take(w, (size_t)pfx + n);
    if (!b) return err_set(e, "does not fit in %zu bytes", w->cap);
    if (pfx == 1) b[0] = (uint8_t)n;
    if (pfx == 2) le_put16(b, (uint16_t)n);
    if (pfx == 4) le_put32(b, (uint32_t)n);
    if (n) memcpy(b + pfx, src, n);
    return 0;
}

static int put_string(Writer *w, int pfx, const char *s, size_t cap, Err *e)
{
    long n = bounded_len(s, cap);
    if (n < 0) return err_set(e, "longer than %zu bytes (no NUL)", cap - 1);
    return put_bytes(w, pfx, s, (size_t)n, e);
}

static int put_entries(Writer *w, const SwarmMsg *m, Err *e)
{
    if (m->n_entries > SWARM_MAX_SLOTS)
        return err_set(e, "%u, more than %d", m->n_entries, SWARM_MAX_SLOTS);
    if (m->n_entries && !m->entries) return err_set(e, "%u but no pointer", m->n_entries);
    uint8_t *b = w_take(w, 4 + (size_t)m->n_entries * SWARM_ENTRY_BYTES);
    if (!b) return err_set(e, "does not fit in %zu bytes", w->cap);
    le_put32(b, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (put_entry(b + 4 + (size_t)i * SWARM_ENTRY_BYTES, &m->entries[i], i, e)) return -1;
    return 0;
}

/* Bytes of a fixed-size field; 0 for the length-prefixed ones. */
static size_t fixed_size(Field f)
{
    switch (f) {
    case F_LAST: return 1;
    case F_CHAIN:
    case F_WHASH: return 8;
    case F_IDENT: return IDENT_BYTES;
    case F_ADDR:
    case F_TEXT:
    case F_CODES:
    case F_BLOB:
    case F_ENTRIES: return 0;
    default: return 4;
    }
}

static int put_field(Writer *w, Field f, const SwarmMsg *m, Err *e)
{
    size_t n = fixed_size(f);
    uint8_t *b = NULL;
    if (n && !(b = w_take(w, n))) return err_set(e, "does not fit in %zu bytes", w->cap);
    switch (f) {
    case F_STEP: le_put32(b, m->step); return 0;
    case F_EPOCH: le_put32(b, m->epoch); return 0;
    case F_ASSIGNED: le_put32(b, m->assigned); return 0;
    case F_WIDTH: le_put32(b, m->width); return 0;
    case F_SAMPLES: le_put32(b, m->samples); return 0;
    case F_LR: le_put_f32(b, m->lr); return 0;
    case F_LAST: b[0] = m->last; return 0;
    case F_CHAIN: le_put64(b, m->chain); return 0;
    case F_WHASH: le_put64(b, m->whash); return 0;
    case F_IDENT: put_ident(b, &m->ident); return 0;
    case F_ADDR: return put_string(w, 1, m->addr, SWARM_ADDR_LEN, e);
    case F_TEXT: return put_string(w, 2, m->text, SWARM_TEXT_LEN, e);
    case F_CODES:
        if (m->n_codes > MAX_CODES) return err_set(e, "%u, more than %u", m->n_codes, MAX_CODES);
        return put_bytes(w, 4, m->codes, m->n_codes, e);
    case F_BLOB:
        if (m->blob_len > SWARM_BLOB_MAX)
            return err_set(e, "%u bytes, more than %d", m->blob_len, SWARM_BLOB_MAX);
        return put_bytes(w, 4, m->blob, m->blob_len, e);
    case F_ENTRIES: return put_entries(w, m, e);
    default: return err_set(e, "no such field");
    }
}

static size_t encode_body(const SwarmMsg *m, Writer *w, Err *e)
{
    if (check_counts(m, e)) return 0;
    for (Field f = 0; f < F_END; f++) {
        if (!(LAYOUT[m->type].fields & B(f))) continue;
        if (put_field(w, f, m, e)) {
            err_wrap(e, "%s", FIELD_NAME[f]);
            return 0;
        }
    }
    return w->used;
}

size_t swarm_msg_encode(const SwarmMsg *m, uint8_t *buf, size_t cap, Err *e)
{
    if (!known_type(m->type)) {
        err_set(e, "swarm message of unknown type %u: not encoded", m->type);
        return 0;
    }
    if (cap < SWARM_HEADER_BYTES) {
        err_set(e, "swarm %s message: does not fit in %zu bytes", LAYOUT[m->type].name, cap);
        return 0;
    }
    /* never more than one fabric message, so decode can refuse longer ones */
    Writer w = {buf, SWARM_HEADER_BYTES, cap < SWARM_MSG_MAX ? cap : SWARM_MSG_MAX};
    size_t n = encode_body(m, &w, e);
    if (!n) {
        err_wrap(e, "swarm %s message", LAYOUT[m->type].name);
        return 0;
    }
    le_put32(buf, SWARM_MAGIC);
    buf[4] = SWARM_VERSION;
    buf[5] = m->type;
    le_put16(buf + 6, 0);
    le_put32(buf + 8, m->slot);
    le_put32(buf + 12, m->term);
    le_put32(buf + 16, (uint32_t)(n - SWARM_HEADER_BYTES));
    uint32_t crc = crc32c(0, buf, 20);
    le_put32(buf + 20, crc32c(crc, buf + SWARM_HEADER_BYTES, n - SWARM_HEADER_BYTES));
    return n;
}

/* ---- decode ---------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t left;
} Reader;

/* The next n bytes, or NULL when the body ends first. */
static const uint8_t *r_take(Reader *r, size_t n)
{
    if (n > r->left) return NULL;
    const uint8_t *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static void get_ident(const uint8_t *b, ZoIdentity *id)
{
    id->seed = le_get64(b);
    id->global_params = le_get64(b + 8);
    id->params_id = le_get64(b + 16);
    id->base_id = le_get64(b + 24);
    id->samples = le_get32(b + 32);
    id->eps = le_get_f32(b + 36);
    id->scale = le_get_f32(b + 40);
    id->weight_decay = le_get_f32(b + 44);
}

/* A pfx-byte count (at most max), then that many bytes: *out points at them. */
static int get_counted(Reader *r, int pfx, uint32_t max, const uint8_t **out, uint32_t *n,
                       Err *e)
{
    const uint8_t *b = r_take(r, (size_t)pfx);
    if (!b) return err_set(e, "the body ends inside its length");
    *n = pfx == 1 ? b[0] : pfx == 2 ? le_get16(b) : le_get32(b);
    if (*n > max) return err_set(e, "%u, more than the limit %u", *n, max);
    if (!(*out = r_take(r, *n)))
        return err_set(e, "%u bytes but only %zu are left", *n, r->left);
    return 0;
}

/* A string of at most cap - 1 bytes and no NUL, NUL-terminated into dst. */
static int get_string(Reader *r, int pfx, char *dst, size_t cap, Err *e)
{
    const uint8_t *b;
    uint32_t n = 0;
    if (get_counted(r, pfx, (uint32_t)cap - 1, &b, &n, e)) return -1;
    if (memchr(b, 0, n)) return err_set(e, "contains a NUL byte");
    memcpy(dst, b, n);
    dst[n] = 0;
    return 0;
}

static int check_entry(const uint8_t *b, uint32_t i, Err *e)
{
    uint8_t kind = b[4], n = b[5];
    if (kind < SW_MEMBER || kind >= SW_KIND_END)
        return err_set(e, "entry %u has kind %u, not in %d..%d", i, kind, SW_MEMBER,
                       SW_KIND_END - 1);
    if (n > SWARM_ADDR_LEN - 1)
        return err_set(e, "entry %u's addr is %u bytes, more than %d", i, n, SWARM_ADDR_LEN - 1);
    if (le_get16(b + 6)) return err_set(e, "entry %u's reserved bytes are not zero", i);
    const uint8_t *a = b + ENTRY_ADDR_OFF;
    if (memchr(a, 0, n)) return err_set(e, "entry %u's addr contains a NUL byte", i);
    for (size_t k = n; k < SWARM_ADDR_LEN; k++)
        if (a[k]) return err_set(e, "entry %u has bytes past its %u-byte addr", i, n);
    return 0;
}

static int get_entries(Reader *r, SwarmMsg *m, Err *e)
{
    const uint8_t *b = r_take(r, 4);
    if (!b) return err_set(e, "the body ends inside its count");
    uint32_t n = le_get32(b);
    if (n > SWARM_MAX_SLOTS) return err_set(e, "%u, more than the limit %d", n, SWARM_MAX_SLOTS);
    if (!(b = r_take(r, (size_t)n * SWARM_ENTRY_BYTES)))
        return err_set(e, "%u (%u bytes) but only %zu bytes are left", n,
                       n * SWARM_ENTRY_BYTES, r->left);
    for (uint32_t i = 0; i < n; i++)
        if (check_entry(b + (size_t)i * SWARM_ENTRY_BYTES, i, e)) return -1;
    m->entries_raw = b;
    m->n_entries = n;
    return 0;
}

/* Through a byte pointer: m->codes is int8_t, the same bytes. */
static int get_codes(Reader *r, SwarmMsg *m, Err *e)
{
    const uint8_t *b;
    if (get_counted(r, 4, MAX_CODES, &b, &m->n_codes, e)) return -1;
    m->codes = (const int8_t *)b;
    return 0;
}

static int get_field(Reader *r, Field f, SwarmMsg *m, Err *e)
{
    size_t n = fixed_size(f);
    const uint8_t *b = NULL;
    if (n && !(b = r_take(r, n))) return err_set(e, "the body ends inside it");
    switch (f) {
    case F_STEP: m->step = le_get32(b); return 0;
    case F_EPOCH: m->epoch = le_get32(b); return 0;
    case F_ASSIGNED: m->assigned = le_get32(b); return 0;
    case F_WIDTH: m->width = le_get32(b); return 0;
    case F_SAMPLES: m->samples = le_get32(b); return 0;
    case F_LR: m->lr = le_get_f32(b); return 0;
    case F_LAST: m->last = b[0]; return 0;
    case F_CHAIN: m->chain = le_get64(b); return 0;
    case F_WHASH: m->whash = le_get64(b); return 0;
    case F_IDENT: get_ident(b, &m->ident); return 0;
    case F_ADDR: return get_string(r, 1, m->addr, SWARM_ADDR_LEN, e);
    case F_TEXT: return get_string(r, 2, m->text, SWARM_TEXT_LEN, e);
    case F_CODES: return get_codes(r, m, e);
    case F_BLOB: return get_counted(r, 4, SWARM_BLOB_MAX, &m->blob, &m->blob_len, e);
    case F_ENTRIES: return get_entries(r, m, e);
    default: return err_set(e, "no such field");
    }
}

static int decode_body(Reader *r, SwarmMsg *m, Err *e)
{
    for (Field f = 0; f < F_END; f++) {
        if (!(LAYOUT[m->type].fields & B(f))) continue;
        if (get_field(r, f, m, e)) return err_wrap(e, "%s", FIELD_NAME[f]);
    }
    if (r->left) return err_set(e, "%zu bytes left over after its last field", r->left);
    return check_counts(m, e);
}

/* Everything the 24 header bytes can be wrong about; the type is known after. */
static int check_header(const uint8_t *buf, size_t len, Err *e)
{
    if (len < SWARM_HEADER_BYTES)
        return err_set(e, "shorter than the %d-byte header", SWARM_HEADER_BYTES);
    if (len > SWARM_MSG_MAX) /* one fabric message: encode never writes more */
        return err_set(e, "longer than the %d bytes of a fabric message", SWARM_MSG_MAX);
    if (le_get32(buf) != SWARM_MAGIC)
        return err_set(e, "bad magic 0x%08x (not a swarm message)", le_get32(buf));
    if (buf[4] != SWARM_VERSION)
        return err_set(e, "version %u, this build speaks %d", buf[4], SWARM_VERSION);
    if (!known_type(buf[5])) return err_set(e, "unknown type %u", buf[5]);
    return 0;
}

static int check_frame(const uint8_t *buf, size_t len, Err *e)
{
    uint32_t body = le_get32(buf + 16);
    if (body != len - SWARM_HEADER_BYTES)
        return err_set(e, "header says %u body bytes, it has %zu", body,
                       len - SWARM_HEADER_BYTES);
    uint32_t crc = crc32c(crc32c(0, buf, 20), buf + SWARM_HEADER_BYTES, body);
    if (crc != le_get32(buf + 20)) return err_set(e, "CRC mismatch (corrupted)");
    if (le_get16(buf + 6)) return err_set(e, "reserved header bytes are not zero");
    return 0;
}

int swarm_msg_decode(const uint8_t *buf, size_t len, SwarmMsg *m, Err *e)
{
    memset(m, 0, sizeof *m);
    if (check_header(buf, len, e)) return err_wrap(e, "swarm message of %zu bytes", len);
    m->type = buf[5];
    const char *name = LAYOUT[m->type].name;
    if (check_frame(buf, len, e)) return err_wrap(e, "swarm %s message of %zu bytes", name, len);
    m->slot = le_get32(buf + 8);
    m->term = le_get32(buf + 12);
    Reader r = {buf + SWARM_HEADER_BYTES, len - SWARM_HEADER_BYTES};
    if (decode_body(&r, m, e)) {
        uint8_t type = m->type;
        memset(m, 0, sizeof *m);
        m->type = type;
        return err_wrap(e, "swarm %s message of %zu bytes", name, len);
    }
    return 0;
}

void swarm_msg_entry(const SwarmMsg *m, uint32_t i, SwarmEntry *out)
{
    memset(out, 0, sizeof *out);
    if (!m->entries_raw) {
        if (m->entries) *out = m->entries[i]; /* a message built for encode */
        return;
    }
    const uint8_t *b = m->entries_raw + (size_t)i * SWARM_ENTRY_BYTES;
    out->slot = le_get32(b);
    out->kind = b[4];
    memcpy(out->addr, b + ENTRY_ADDR_OFF, b[5]); /* decode checked b[5] < SWARM_ADDR_LEN */
}
