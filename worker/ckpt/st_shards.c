/* A model's .safetensors over several files (safetensors.h): reading a
 * directory's model.safetensors or its sharded form through
 * model.safetensors.index.json, and writing either form as HF's
 * save_pretrained does. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/json.h"
#include "worker/ckpt/safetensors.h"

/* ---- reading the index ----------------------------------------------------- */

/* The weight_map's pairs: tensor name -> shard number; shard names. */
typedef struct {
    const char *path; /* the index file */
    char (*tensor)[ST_MAX_NAME];
    int *shard;
    int n, cap;
    char (*shards)[256];
    int n_shards;
    int have_map;
    Err *e;
} WeightMap;

static int shard_number(WeightMap *w, const char *file)
{
    for (int i = 0; i < w->n_shards; i++)
        if (!strcmp(w->shards[i], file)) return i;
    char(*s)[256] = realloc(w->shards, (size_t)(w->n_shards + 1) * sizeof *s);
    if (!s) return -1;
    w->shards = s;
    snprintf(s[w->n_shards], sizeof s[0], "%s", file);
    return w->n_shards++;
}

static int map_pair(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    WeightMap *w = ctx;
    if (quoted != 1)
        return err_set(w->e, "%s: weight_map: tensor '%s' must map to a file name", w->path, key), 1;
    /* a shard is a file beside the index, never a path elsewhere */
    if (!v[0] || strlen(v) >= 256 || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, ".."))
        return err_set(w->e, "%s: weight_map: tensor '%s' maps to '%s': a shard is a file name "
                             "in the index's directory", w->path, key, v), 1;
    if (strlen(key) >= ST_MAX_NAME)
        return err_set(w->e, "%s: weight_map: tensor name '%.40s...' is too long", w->path, key), 1;
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->tensor[i], key))
            return err_set(w->e, "%s: weight_map names tensor '%s' twice", w->path, key), 1;
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 256;
        char(*t)[ST_MAX_NAME] = realloc(w->tensor, (size_t)cap * sizeof *t);
        if (t) w->tensor = t;
        int *s = t ? realloc(w->shard, (size_t)cap * sizeof *s) : NULL;
        if (!s) return err_set(w->e, "%s: out of memory", w->path), 1;
        w->shard = s;
        w->cap = cap;
    }
    int k = shard_number(w, v);
    if (k < 0) return err_set(w->e, "%s: out of memory", w->path), 1;
    snprintf(w->tensor[w->n], ST_MAX_NAME, "%s", key);
    w->shard[w->n++] = k;
    return 0;
}

/* "metadata" (total_size and any else: informative) and "weight_map". */
static int index_top(void *ctx, const char *key, const char *v, int quoted, size_t at)
{
    (void)at;
    WeightMap *w = ctx;
    if (strcmp(key, "weight_map")) return 0;
    if (quoted != JSON_RAW || v[0] != '{')
        return err_set(w->e, "%s: weight_map must be an object of tensor -> shard file", w->path), 1;
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(v, map_pair, w, &off, &sub);
    if (rc < 0) return err_set(w->e, "%s: weight_map: %s", w->path, sub.msg), 1;
    w->have_map = 1;
    return rc;
}

int hf_json_file(const char *path, size_t max, char **out, Err *e)
{
    void *raw;
    size_t len;
    if (read_file(path, max, &raw, &len, e)) return -1;
    char *text = realloc(raw, len + 1);
    if (!text) {
        free(raw);
        return err_set(e, "%s: out of memory", path);
    }
    text[len] = 0;
    if (strlen(text) != len) {
        free(text);
        return err_set(e, "%s: holds a NUL byte: not JSON", path);
    }
    *out = text;
    return 0;
}

int hf_write_json(const char *dir, const char *name, void (*fill)(JsonOut *, const void *),
                  const void *ctx, Err *e)
{
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/%s", dir, name)) return -1;
    JsonOut j;
    json_init(&j, NULL);
    fill(&j, ctx);
    int rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error)
                             : write_file_atomic(path, j.buf, j.len, e);
    json_free(&j);
    return rc;
}

const char *hf_torch_dtype(const char *dtype)
{
    return !strcmp(dtype, "F16") ? "float16" : !strcmp(dtype, "BF16") ? "bfloat16" : "float32";
}

void safetensors_shape_text(const StEntry *t, char *out, size_t n)
{
    out[0] = 0;
    for (int d = 0; d < t->ndim; d++)
        snprintf(out + strlen(out), n - strlen(out), "%s%lld", d ? " x " : "", (long long)t->shape[d]);
    if (!t->ndim) snprintf(out, n, "scalar");
}

int safetensors_same_values(const StIndex *ix, const StEntry *a, const StEntry *b, Err *e)
{
    if (a->ndim != b->ndim || memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0])) return 0;
    size_t n = safetensors_numel(a);
    float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
    int rc = !x || !y ? err_set(e, "%s: out of memory comparing '%s' with '%s'",
                                safetensors_file_of(ix, a), a->name, b->name) : 0;
    if (!rc) rc = safetensors_entry_f32(ix, a, x, e);
    if (!rc) rc = safetensors_entry_f32(ix, b, y, e);
    if (!rc) rc = !memcmp(x, y, n * sizeof *x);
    free(x);
    free(y);
    return rc;
}

static int read_weight_map(const char *path, WeightMap *w, Err *e)
{
    char *text;
    if (hf_json_file(path, 64u << 20, &text, e)) return -1;
    size_t off;
    Err sub = {{0}};
    int rc = json_read_object(text, index_top, w, &off, &sub);
    if (rc < 0 && sub.msg[0]) err_set(e, "%s:%d: %s", path, json_line_of(text, off), sub.msg);
    free(text);
    if (!rc && !w->have_map) rc = err_set(e, "%s: no weight_map", path);
    if (!rc && !w->n) rc = err_set(e, "%s: the weight_map names no tensor", path);
    return rc ? -1 : 0;
}

/* Appends shard k's entries (read from its file) to ix, each checked
 * against the map both ways. */
static int add_shard(StIndex *ix, const WeightMap *w, int k, const char *file, Err *e)
{
    StIndex one;
    if (safetensors_read_index(file, &one, e)) return -1;
    int rc = 0;
    for (int i = 0; !rc && i < w->n; i++)
        if (w->shard[i] == k && !safetensors_find(&one, w->tensor[i]))
            rc = err_set(e, "%s: the index %s puts tensor '%s' in this shard, which does not hold it",
                         file, w->path, w->tensor[i]);
    for (int i = 0; !rc && i < one.n; i++) {
        int j = 0;
        while (j < w->n && strcmp(w->tensor[j], one.t[i].name)) j++;
        if (j == w->n)
            rc = err_set(e, "%s: holds tensor '%s', which the index %s does not name", file,
                         one.t[i].name, w->path);
        else if (w->shard[j] != k)
            rc = err_set(e, "%s: holds tensor '%s', which the index %s puts in %s", file,
                         one.t[i].name, w->path, w->shards[w->shard[j]]);
    }
    StEntry *t = rc ? NULL : realloc(ix->t, (size_t)(ix->n + one.n + 1) * sizeof *t);
    if (!rc && !t) rc = err_set(e, "%s: out of memory", file);
    for (int i = 0; !rc && i < one.n; i++) {
        t[ix->n] = one.t[i];
        t[ix->n++].file = k;
    }
    if (t) ix->t = t;
    safetensors_index_free(&one);
    return rc;
}

static int read_sharded(const char *dir, const char *index, StIndex *ix, Err *e)
{
    WeightMap w = {.path = index, .e = e};
    int rc = read_weight_map(index, &w, e);
    if (!rc && !(ix->files = calloc((size_t)w.n_shards, sizeof *ix->files)))
        rc = err_set(e, "%s: out of memory", index);
    if (!rc) ix->n_files = w.n_shards;
    for (int k = 0; !rc && k < w.n_shards; k++) {
        rc = path_fmt(ix->files[k], sizeof ix->files[k], e, "%s/%s", dir, w.shards[k]);
        if (!rc && access(ix->files[k], F_OK) != 0) {
            int first = 0;
            while (w.shard[first] != k) first++;
            rc = err_set(e, "%s: the index %s puts tensor '%s' (and maybe more) in it, but there "
                            "is no such file", ix->files[k], index, w.tensor[first]);
        }
        if (!rc) rc = add_shard(ix, &w, k, ix->files[k], e);
    }
    free(w.tensor);
    free(w.shard);
    free(w.shards);
    if (rc) safetensors_index_free(ix);
    return rc ? -1 : 0;
}

int safetensors_open_model(const char *dir, StIndex *ix, Err *e)
{
    memset(ix, 0, sizeof *ix);
    char single[PATH_BUF], index[PATH_BUF];
    if (path_fmt(single, sizeof single, e, "%s/" ST_SINGLE_NAME, dir) ||
        path_fmt(index, sizeof index, e, "%s/" ST_INDEX_NAME, dir))
        return -1;
    /* transformers' own order: the single file first */
    if (access(single, F_OK) == 0) return safetensors_read_index(single, ix, e);
    if (access(index, F_OK) == 0) return read_sharded(dir, index, ix, e);
    return err_set(e, "%s: neither " ST_SINGLE_NAME " nor " ST_INDEX_NAME " (with its shards)", dir);
}

/* ---- writing ----------------------------------------------------------------- */

static uint64_t tensor_bytes(const StTensor *t, const char *dtype)
{
    uint64_t n = (uint64_t)t->shape[0] * (t->ndim > 1 ? (uint64_t)t->shape[1] : 1);
    return n * safetensors_dtype_bytes(dtype);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

/* model.safetensors.index.json of the shards: shard_of[i] holds tensor i. */
static int write_index(const char *dir, const StTensor *t, int n, const int *shard_of, int n_shards,
                       uint64_t total, Err *e)
{
    const StTensor **order = malloc((size_t)n * sizeof *order);
    if (!order) return err_set(e, "%s: out of memory", dir);
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, by_name);
    JsonOut j;
    json_init(&j, NULL);
    json_begin_object(&j);
    json_newline(&j);
    json_begin_object(json_key(&j, "metadata"));
    json_uint(json_key(&j, "total_size"), total);
    json_end_object(&j);
    json_newline(&j);
    json_begin_object(json_key(&j, "weight_map"));
    for (int i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", shard_of[order[i] - t] + 1,
                 n_shards);
        json_newline(&j);
        json_str(json_key(&j, order[i]->name), file);
    }
    json_end_object(&j);
    json_end_object(&j);
    json_newline(&j);
    free(order);
    char path[PATH_BUF];
    int rc = path_fmt(path, sizeof path, e, "%s/" ST_INDEX_NAME, dir);
    if (!rc) rc = json_finish(&j) ? err_set(e, "%s: %s", path, j.error)
                                  : write_file_atomic(path, j.buf, j.len, e);
    json_free(&j);
    return rc;
}

/* Removes dir/name when it is there (a form of the weights not written now). */
static int remove_stale(const char *dir, const char *name, Err *e)
{
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/%s", dir, name)) return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return err_set(e, "%s: cannot remove the stale file: %s", path, strerror(errno));
    return 0;
}

/* Removes the shards of an earlier export (model-k-of-N.safetensors with
 * N other than n_shards; n_shards 0: all), as save_pretrained does. */
static int remove_stale_shards(const char *dir, int n_shards, Err *e)
{
    DIR *d = opendir(dir);
    if (!d) return err_set(e, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        int k, n, end = 0;
        if (sscanf(de->d_name, "model-%5d-of-%5d.safetensors%n", &k, &n, &end) == 2 &&
            !de->d_name[end] && end && n != n_shards)
            rc = remove_stale(dir, de->d_name, e);
    }
    closedir(d);
    return rc;
}

int safetensors_write_model(const char *dir, const StTensor *t, int n, const char *dtype,
                            const char *const *meta_kv, int n_meta_pairs,
                            uint64_t max_shard_bytes, Err *e)
{
    int *shard_of = malloc((size_t)(n ? n : 1) * sizeof *shard_of);
    if (!shard_of) return err_set(e, "%s: out of memory", dir);
    /* save_pretrained's rule: a tensor that would push its shard over the
     * limit starts the next one */
    uint64_t total = 0, in_shard = 0;
    int n_shards = 1;
    for (int i = 0; i < n; i++) {
        uint64_t b = tensor_bytes(&t[i], dtype);
        if (in_shard && in_shard + b > max_shard_bytes) n_shards++, in_shard = 0;
        in_shard += b;
        total += b;
        shard_of[i] = n_shards - 1;
    }
    char path[PATH_BUF];
    int rc = 0;
    if (n_shards == 1) {
        rc = path_fmt(path, sizeof path, e, "%s/" ST_SINGLE_NAME, dir);
        if (!rc) rc = safetensors_write_list(path, t, n, dtype, meta_kv, n_meta_pairs, e);
        if (!rc) rc = remove_stale(dir, ST_INDEX_NAME, e);
        if (!rc) rc = remove_stale_shards(dir, 0, e);
        free(shard_of);
        return rc;
    }
    for (int k = 0, first = 0; !rc && k < n_shards; k++) {
        int end = first;
        while (end < n && shard_of[end] == k) end++;
        rc = path_fmt(path, sizeof path, e, "%s/model-%05d-of-%05d.safetensors", dir, k + 1, n_shards);
        if (!rc) rc = safetensors_write_list(path, t + first, end - first, dtype, meta_kv, n_meta_pairs, e);
        first = end;
    }
    /* transformers reads a model.safetensors before any index */
    if (!rc) rc = remove_stale(dir, ST_SINGLE_NAME, e);
    if (!rc) rc = write_index(dir, t, n, shard_of, n_shards, total, e);
    if (!rc) rc = remove_stale_shards(dir, n_shards, e);
    free(shard_of);
    return rc;
}
