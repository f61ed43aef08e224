#include "worker/ckpt/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/fileio.h"
#include "base/half.h"
#include "base/json.h"
#include "base/le.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* Bytes per value of a dtype written: F32, or the 2-byte F16 and BF16. */
size_t safetensors_dtype_bytes(const char *dtype) { return strcmp(dtype, "F32") ? 2 : 4; }

/* The header object: each tensor's dtype, shape and byte range, then
 * __metadata__ with "format":"pt" first. */
static void build_header(JsonOut *j, const StTensor *t, int n, const char *dtype,
                         const char *const *meta_kv, int n_meta_pairs)
{
    uint64_t off = 0;
    json_begin_object(j);
    for (int k = 0; k < n; k++) {
        uint64_t bytes = (uint64_t)t[k].shape[0] * (t[k].ndim > 1 ? t[k].shape[1] : 1) * safetensors_dtype_bytes(dtype);
        json_begin_object(json_key(j, t[k].name));
        json_str(json_key(j, "dtype"), dtype);
        json_begin_array(json_key(j, "shape"));
        for (int d = 0; d < (t[k].ndim > 1 ? 2 : 1); d++) json_int(j, t[k].shape[d]);
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

/* n values of one row in dtype: F32 as is, else narrowed into half (room
 * for n 2-byte values). */
static int write_row(AtomicFile *af, const float *v, size_t n, const char *dtype, uint16_t *half,
                     Err *e)
{
    if (!strcmp(dtype, "F32")) return atomic_write(af, v, n * sizeof *v, e);
    int bf = !strcmp(dtype, "BF16");
    for (size_t i = 0; i < n; i++) half[i] = bf ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    return atomic_write(af, half, n * sizeof *half, e);
}

/* One tensor's data a row of the output at a time, transposed through
 * scratch when asked (the scratch is one row, not a copy of the matrix). */
static int write_data(AtomicFile *af, const StTensor *t, const char *dtype, float *row,
                      uint16_t *half, Err *e)
{
    size_t rows = t->ndim > 1 ? (size_t)t->shape[0] : 1;
    size_t cols = t->ndim > 1 ? (size_t)t->shape[1] : (size_t)t->shape[0];
    if (!t->transpose && !strcmp(dtype, "F32")) return atomic_write(af, t->data, rows * cols * sizeof(float), e);
    for (size_t r = 0; r < rows; r++) {
        const float *src = t->data + r * cols;
        if (t->transpose) {
            for (size_t c = 0; c < cols; c++) row[c] = t->data[c * rows + r];
            src = row;
        }
        if (write_row(af, src, cols, dtype, half, e)) return -1;
    }
    return 0;
}

int safetensors_write_list(const char *path, const StTensor *t, int n, const char *dtype,
                           const char *const *meta_kv, int n_meta_pairs, Err *e)
{
    if (strcmp(dtype, "F32") && strcmp(dtype, "F16") && strcmp(dtype, "BF16"))
        return err_set(e, "%s: dtype %s: F32, F16 or BF16 expected", path, dtype);
    size_t widest = 1;
    for (int k = 0; k < n; k++) {
        size_t w = (size_t)t[k].shape[t[k].ndim > 1 ? 1 : 0];
        if (w > widest) widest = w;
    }
    float *row = malloc(widest * sizeof(float));
    uint16_t *half = malloc(widest * sizeof(uint16_t));
    if (!row || !half) {
        free(row);
        free(half);
        return err_set(e, "%s: out of memory", path);
    }
    JsonOut j;
    json_init(&j, NULL);
    build_header(&j, t, n, dtype, meta_kv, n_meta_pairs);
    if (json_finish(&j)) {
        json_free(&j);
        free(row);
        free(half);
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
    for (int k = 0; !rc && k < n; k++) rc = write_data(&af, &t[k], dtype, row, half, e);
    /* atomic_write and atomic_commit drop the temporary themselves on failure */
    if (!rc) rc = atomic_commit(&af, e);
    json_free(&j);
    free(row);
    free(half);
    return rc;
}

int safetensors_write(const char *path, const Model *m, const char *const *meta_kv,
                      int n_meta_pairs, Err *e)
{
    StTensor *list = calloc(m->n_tensors ? m->n_tensors : 1, sizeof *list);
    if (!list) return err_set(e, "%s: out of memory", path);
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        list[k] = (StTensor){t->name, t->ndim, {t->shape[0], t->shape[1]}, m->params + t->offset, 0};
    }
    int rc = safetensors_write_list(path, list, m->n_tensors, "F32", meta_kv, n_meta_pairs, e);
    free(list);
    return rc;
}

int safetensors_read_header(const char *path, char **json_out, uint64_t *data_start, Err *e)
{
    *json_out = NULL;
    uint64_t size;
    FILE *f = fopen_input(path, &size, e);
    if (!f) return -1;
    unsigned char len8[8];
    int rc = 0;
    char *json = NULL;
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        rc = err_set(e, "%s: too short for a safetensors file (%llu bytes)", path,
                     (unsigned long long)size);
    } else {
        uint64_t n = le_get64(len8);
        uint64_t room = size - 8;
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

/* ---- the index: every tensor's dtype, shape and bytes ---------------------- */

static int dtype_size(const char *dtype)
{
    static const struct { const char *name; int size; } SIZES[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1}, {"U8", 1}, {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}};
    for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++)
        if (!strcmp(SIZES[i].name, dtype)) return SIZES[i].size;
    return 0;
}

/* Saturates at UINT64_MAX: a header's shape must not wrap into a size
 * that passes the data_offsets check. */
uint64_t safetensors_numel(const StEntry *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n)) return UINT64_MAX;
    return n;
}

typedef struct {
    const char *path;
    StIndex *ix;
    int cap;
    StEntry *cur;
    int have_dtype, have_shape, have_offsets;
    Err *e;
} IndexReader;

/* One field of a tensor's entry. */
static int entry_field(void *ctx, const char *key, const char *value, int quoted, size_t at)
{
    (void)at;
    IndexReader *r = ctx;
    StEntry *t = r->cur;
    long long v[ST_MAX_DIMS + 1];
    int n = 0;
    Err sub;
    if (!strcmp(key, "dtype")) {
        if (quoted != 1 || strlen(value) >= sizeof t->dtype)
            return err_set(r->e, "%s: tensor '%s': bad dtype", r->path, t->name), 1;
        snprintf(t->dtype, sizeof t->dtype, "%s", value);
        r->have_dtype = 1;
    } else if (!strcmp(key, "shape")) {
        if (quoted != JSON_RAW || json_read_ints(value, v, ST_MAX_DIMS, &n, &sub))
            return err_set(r->e, "%s: tensor '%s': bad shape (at most %d dimensions)", r->path,
                           t->name, ST_MAX_DIMS), 1;
        for (int d = 0; d < n; d++) {
            if (v[d] < 0 || v[d] > (1LL << 40))
                return err_set(r->e, "%s: tensor '%s': dimension %lld out of range", r->path,
                               t->name, v[d]), 1;
            t->shape[d] = v[d];
        }
        t->ndim = n;
        r->have_shape = 1;
    } else if (!strcmp(key, "data_offsets")) {
        if (quoted != JSON_RAW || json_read_ints(value, v, 2, &n, &sub) || n != 2 || v[0] < 0 ||
            v[1] < v[0])
            return err_set(r->e, "%s: tensor '%s': bad data_offsets", r->path, t->name), 1;
        t->begin = (uint64_t)v[0];
        t->end = (uint64_t)v[1];
        r->have_offsets = 1;
    }
    return 0;
}

static int index_pair(void *ctx, const char *key, const char *value, int quoted, size_t at)
{
    (void)at;
    IndexReader *r = ctx;
    if (!strcmp(key, "__metadata__")) return 0;
    if (quoted != JSON_RAW || value[0] != '{')
        return err_set(r->e, "%s: tensor '%s': its entry is not an object", r->path, key), 1;
    if (strlen(key) >= ST_MAX_NAME)
        return err_set(r->e, "%s: tensor name '%.40s...' is too long", r->path, key), 1;
    if (r->ix->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        StEntry *t = realloc(r->ix->t, (size_t)cap * sizeof *t);
        if (!t) return err_set(r->e, "%s: out of memory", r->path), 1;
        r->ix->t = t;
        r->cap = cap;
    }
    r->cur = &r->ix->t[r->ix->n++];
    memset(r->cur, 0, sizeof *r->cur);
    snprintf(r->cur->name, sizeof r->cur->name, "%s", key);
    r->have_dtype = r->have_shape = r->have_offsets = 0;
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(value, entry_field, r, &off, &sub);
    if (rc < 0) return err_set(r->e, "%s: tensor '%s': %s", r->path, key, sub.msg), 1;
    if (rc) return rc;
    if (!r->have_dtype || !r->have_shape || !r->have_offsets)
        return err_set(r->e, "%s: tensor '%s': needs dtype, shape and data_offsets", r->path, key), 1;
    return 0;
}

static int by_range(const void *a, const void *b)
{
    const StEntry *x = *(const StEntry *const *)a, *y = *(const StEntry *const *)b;
    return x->begin != y->begin ? (x->begin > y->begin) - (x->begin < y->begin)
                                : (x->end > y->end) - (x->end < y->end);
}

/* The format's rule: the tensors' byte ranges, in order, tile the data
 * section exactly. Overlapping ranges would let one tensor be read as
 * another (ln_2 holding ln_1's bytes); a gap is bytes nobody accounts for.
 * Offsets are relative to the data section here. */
static int check_tiling(const char *path, const StIndex *ix, uint64_t data_len, Err *e)
{
    size_t n = ix->n > 0 ? (size_t)ix->n : 0;
    const StEntry **order = calloc(n ? n : 1, sizeof *order);
    if (!order) return err_set(e, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) order[i] = &ix->t[i];
    qsort(order, n, sizeof *order, by_range);
    uint64_t at = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const StEntry *t = order[i], *prev = i ? order[i - 1] : NULL;
        if (t->begin < at)
            rc = err_set(e, "%s: tensors '%s' and '%s' overlap: '%s' starts at data byte %llu, "
                            "inside '%s' (bytes %llu..%llu)", path, prev->name, t->name, t->name,
                         (unsigned long long)t->begin, prev->name,
                         (unsigned long long)prev->begin, (unsigned long long)prev->end);
        else if (t->begin > at && !prev)
            rc = err_set(e, "%s: data bytes 0..%llu, before the first tensor '%s', belong to no "
                            "tensor: the tensors must cover the data section without gaps", path,
                         (unsigned long long)t->begin, t->name);
        else if (t->begin > at)
            rc = err_set(e, "%s: data bytes %llu..%llu, between tensors '%s' and '%s', belong to no "
                            "tensor: the tensors must cover the data section without gaps", path,
                         (unsigned long long)at, (unsigned long long)t->begin, prev->name, t->name);
        at = t->end;
    }
    free(order);
    if (!rc && at != data_len)
        rc = err_set(e, "%s: %llu bytes after the last tensor's data: not a safetensors file "
                        "as written (or a different file appended)",
                     path, (unsigned long long)(data_len - at));
    return rc;
}

/* Sizes and ranges of the parsed entries against the file. */
static int check_entries(const char *path, const StIndex *ix, uint64_t data_start,
                         uint64_t file_size, Err *e)
{
    for (int i = 0; i < ix->n; i++) {
        StEntry *t = &ix->t[i];
        int size = dtype_size(t->dtype);
        if (!size) return err_set(e, "%s: tensor '%s': unknown dtype '%s'", path, t->name, t->dtype);
        uint64_t n = safetensors_numel(t), bytes;
        if (__builtin_mul_overflow(n, (uint64_t)size, &bytes))
            return err_set(e, "%s: tensor '%s': its shape holds more bytes than any file", path,
                           t->name);
        if (t->end - t->begin != bytes)
            return err_set(e, "%s: tensor '%s': data_offsets span %llu bytes, its shape and %s "
                              "need %llu", path, t->name, (unsigned long long)(t->end - t->begin),
                           t->dtype, (unsigned long long)(n * size));
        if (t->end > file_size - data_start)
            return err_set(e, "%s: tensor '%s': data ends at byte %llu but the file holds %llu "
                              "bytes of data: the file is truncated", path, t->name,
                           (unsigned long long)t->end, (unsigned long long)(file_size - data_start));
        for (int k = 0; k < i; k++)
            if (!strcmp(ix->t[k].name, t->name))
                return err_set(e, "%s: tensor '%s' appears twice", path, t->name);
    }
    if (check_tiling(path, ix, file_size - data_start, e)) return -1;
    for (int i = 0; i < ix->n; i++) {
        ix->t[i].begin += data_start;
        ix->t[i].end += data_start;
    }
    return 0;
}

int safetensors_read_index(const char *path, StIndex *ix, Err *e)
{
    memset(ix, 0, sizeof *ix);
    char *json;
    uint64_t data_start;
    struct stat st;
    if (safetensors_read_header(path, &json, &data_start, e)) return -1;
    if (stat(path, &st) != 0) {
        free(json);
        return err_set(e, "%s: cannot stat: %s", path, strerror(errno));
    }
    IndexReader r = {path, ix, 0, NULL, 0, 0, 0, e};
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(json, index_pair, &r, &off, &sub);
    if (rc < 0) rc = err_set(e, "%s: header: %s (line %d)", path, sub.msg, json_line_of(json, off));
    if (!rc) rc = check_entries(path, ix, data_start, (uint64_t)st.st_size, e);
    if (!rc && !(ix->files = malloc(sizeof *ix->files)))
        rc = err_set(e, "%s: out of memory", path);
    if (!rc) {
        ix->n_files = 1;
        snprintf(ix->files[0], sizeof ix->files[0], "%s", path);
    }
    free(json);
    if (rc) safetensors_index_free(ix);
    return rc ? -1 : 0;
}

void safetensors_index_free(StIndex *ix)
{
    free(ix->t);
    free(ix->files);
    memset(ix, 0, sizeof *ix);
}

const char *safetensors_file_of(const StIndex *ix, const StEntry *t)
{
    return t->file >= 0 && t->file < ix->n_files ? ix->files[t->file] : "";
}

const StEntry *safetensors_find(const StIndex *ix, const char *name)
{
    for (int i = 0; i < ix->n; i++)
        if (!strcmp(ix->t[i].name, name)) return &ix->t[i];
    return NULL;
}

int read_floats_at(const char *path, uint64_t offset, uint64_t n, const char *dtype,
                   const char *what, float *out, Err *e)
{
    int size = !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "F16") || !strcmp(dtype, "BF16") ? 2 : 0;
    if (!size)
        return err_set(e, "%s: %s: dtype %s; F32, F16 or BF16 expected", path, what, dtype);
    FILE *f = fopen_input(path, NULL, e);
    if (!f) return -1;
    uint64_t bytes = n * (uint64_t)size;
    /* F32 lands in place; the 2-byte types are read into out's second half
     * and widened front to back, which never overwrites an unread value */
    unsigned char *raw = size == 4 ? (unsigned char *)out : (unsigned char *)out + 2 * n;
    int rc = 0;
    if (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(raw, 1, bytes, f) != bytes)
        rc = err_set(e, "%s: %s: short read (truncated file?)", path, what);
    fclose(f);
    for (uint64_t i = 0; !rc && size == 2 && i < n; i++) {
        uint16_t h = le_get16(raw + 2 * i);
        out[i] = dtype[0] == 'B' ? bf16_to_f32(h) : f16_to_f32(h);
    }
    size_t bad = rc ? n : floats_first_nonfinite(out, n);
    if (bad < n)
        rc = err_set(e, "%s: %s: element %zu is %g: non-finite weights cannot be trained, "
                        "evaluated or sampled", path, what, bad, (double)out[bad]);
    return rc;
}

int safetensors_read_f32(const char *path, const StEntry *t, float *out, Err *e)
{
    char what[ST_MAX_NAME + 16];
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    return read_floats_at(path, t->begin, safetensors_numel(t), t->dtype, what, out, e);
}

int safetensors_entry_f32(const StIndex *ix, const StEntry *t, float *out, Err *e)
{
    return safetensors_read_f32(safetensors_file_of(ix, t), t, out, e);
}
