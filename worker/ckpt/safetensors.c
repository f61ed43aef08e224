#include "worker/ckpt/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/fileio.h"
#include "base/le.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* A growable string for the JSON header. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} Buf;

static void buf_reserve(Buf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return;
    }
    b->s = s;
    b->cap = cap;
}

static void buf_add(Buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1;
        return;
    }
    buf_add(b, tmp, (size_t)n);
}

/* A JSON string literal, quotes included. */
static void buf_json_str(Buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            buf_add(b, esc, 2);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_add(b, (const char *)p, 1);
        }
    }
    buf_add(b, "\"", 1);
}

static int build_header(const Model *m, const char *const *meta_kv, int n_meta_pairs, Buf *b)
{
    uint64_t off = 0;
    buf_add(b, "{", 1);
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        uint64_t bytes = (uint64_t)t->numel * sizeof(float);
        if (k) buf_add(b, ",", 1);
        buf_json_str(b, t->name);
        if (t->ndim > 1)
            buf_printf(b, ":{\"dtype\":\"F32\",\"shape\":[%d,%d],", t->shape[0], t->shape[1]);
        else
            buf_printf(b, ":{\"dtype\":\"F32\",\"shape\":[%d],", t->shape[0]);
        buf_printf(b, "\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + bytes);
        off += bytes;
    }
    if (m->n_tensors) buf_add(b, ",", 1);
    buf_add(b, "\"__metadata__\":{\"format\":\"pt\"", strlen("\"__metadata__\":{\"format\":\"pt\""));
    for (int i = 0; i < n_meta_pairs; i++) {
        const char *key = meta_kv[2 * i], *val = meta_kv[2 * i + 1];
        if (!key || !val || !strcmp(key, "format")) continue;
        buf_add(b, ",", 1);
        buf_json_str(b, key);
        buf_add(b, ":", 1);
        buf_json_str(b, val);
    }
    buf_add(b, "}}", 2);
    /* pad with spaces so the data starts 8-byte aligned */
    while (!b->oom && b->len % 8) buf_add(b, " ", 1);
    return b->oom ? -1 : 0;
}

int safetensors_write(const char *path, const Model *m, const char *const *meta_kv,
                      int n_meta_pairs, Err *e)
{
    Buf b = {0};
    if (build_header(m, meta_kv, n_meta_pairs, &b)) {
        free(b.s);
        return err_set(e, "%s: out of memory building the safetensors header", path);
    }
    unsigned char len8[8];
    le_put64(len8, b.len);
    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (!rc) rc = atomic_write(&af, len8, sizeof len8, e);
    if (!rc) rc = atomic_write(&af, b.s, b.len, e);
    for (int k = 0; !rc && k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        rc = atomic_write(&af, m->params + t->offset, t->numel * sizeof(float), e);
    }
    /* atomic_write and atomic_commit drop the temporary themselves on failure */
    if (!rc) rc = atomic_commit(&af, e);
    free(b.s);
    return rc;
}

int safetensors_read_header(const char *path, char **json_out, uint64_t *data_start, Err *e)
{
    *json_out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    unsigned char len8[8];
    int rc = 0;
    char *json = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = err_set(e, "%s: not a regular file", path);
    } else if (st.st_size < 8 || fread(len8, 1, 8, f) != 8) {
        rc = err_set(e, "%s: too short for a safetensors file (%lld bytes)", path,
                     (long long)st.st_size);
    } else {
        uint64_t n = le_get64(len8);
        uint64_t room = (uint64_t)st.st_size - 8;
        if (n > room)
            rc = err_set(e, "%s: header length %" PRIu64 " exceeds the %" PRIu64
                            " bytes after the length field: truncated or not safetensors",
                         path, n, room);
        else if (n > SAFETENSORS_MAX_HEADER)
            rc = err_set(e, "%s: header length %" PRIu64 " is over the %u-byte limit", path, n,
                         SAFETENSORS_MAX_HEADER);
        else if (n < 2)
            rc = err_set(e, "%s: header length %" PRIu64 " is too small for a JSON object", path, n);
        else if (!(json = malloc(n + 1)))
            rc = err_set(e, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
        else if (fread(json, 1, n, f) != n)
            rc = err_set(e, "%s: short read of the header", path);
        else {
            json[n] = 0;
            if (json[0] != '{' || strlen(json) != n)
                rc = err_set(e, "%s: header is not a JSON object", path);
            else
                *data_start = 8 + n;
        }
    }
    fclose(f);
    if (rc) free(json);
    else *json_out = json;
    return rc;
}
