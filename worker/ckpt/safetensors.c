#include "worker/ckpt/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/fileio.h"
#include "base/json.h"
#include "base/le.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* The header object: each tensor's dtype, shape and byte range, then
 * __metadata__ with "format":"pt" first. */
static void build_header(JsonOut *j, const Model *m, const char *const *meta_kv, int n_meta_pairs)
{
    uint64_t off = 0;
    json_begin_object(j);
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        uint64_t bytes = (uint64_t)t->numel * sizeof(float);
        json_begin_object(json_key(j, t->name));
        json_str(json_key(j, "dtype"), "F32");
        json_begin_array(json_key(j, "shape"));
        for (int d = 0; d < (t->ndim > 1 ? 2 : 1); d++) json_int(j, t->shape[d]);
        json_end_array(j);
        json_begin_array(json_key(j, "data_offsets"));
        json_uint(j, off);
        json_uint(j, off + bytes);
        json_end_array(j);
        json_end_object(j);
        off += bytes;
    }
    json_begin_object(json_key(j, "__metadata__"));
    json_str(json_key(j, "format"), "pt");
    for (int i = 0; i < n_meta_pairs; i++) {
        const char *key = meta_kv[2 * i], *val = meta_kv[2 * i + 1];
        if (!key || !val || !strcmp(key, "format")) continue;
        json_str(json_key(j, key), val);
    }
    json_end_object(j);
    json_end_object(j);
}

int safetensors_write(const char *path, const Model *m, const char *const *meta_kv,
                      int n_meta_pairs, Err *e)
{
    JsonOut j;
    json_init(&j, NULL);
    build_header(&j, m, meta_kv, n_meta_pairs);
    if (json_finish(&j)) {
        json_free(&j);
        return err_set(e, "%s: building the safetensors header: %s", path, j.error);
    }
    /* pad with spaces so the data starts 8-byte aligned */
    static const char spaces[] = "       "; /* the most padding: 7 */
    size_t pad = (8 - j.len % 8) % 8;
    unsigned char len8[8];
    le_put64(len8, j.len + pad);
    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (!rc) rc = atomic_write(&af, len8, sizeof len8, e);
    if (!rc) rc = atomic_write(&af, j.buf, j.len, e);
    if (!rc) rc = atomic_write(&af, spaces, pad, e);
    for (int k = 0; !rc && k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        rc = atomic_write(&af, m->params + t->offset, t->numel * sizeof(float), e);
    }
    /* atomic_write and atomic_commit drop the temporary themselves on failure */
    if (!rc) rc = atomic_commit(&af, e);
    json_free(&j);
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
