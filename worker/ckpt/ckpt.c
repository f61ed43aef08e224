#include "worker/ckpt/ckpt.h"
#include "worker/data/bpe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/le.h"
#include "worker/ckpt/pbconv.h"
#include "sharding/tpsplit.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint data is little-endian");

/* ---- meta <-> protobuf -------------------------------------------------- */

void ckpt_meta_to_pb(const CkptMeta *meta, Mpitrain__Manifest *mf, Mpitrain__ModelConfigPB *mc,
                     Mpitrain__OptimConfigPB *oc, Mpitrain__Layout *ly)
{
    mpitrain__manifest__init(mf);
    mpitrain__layout__init(ly);
    model_config_to_pb(&meta->model, mc);
    optim_config_to_pb(&meta->optim, oc);
    ly->dp = meta->dp;
    ly->tp = meta->tp;
    ly->pp = meta->pp;
    ly->zero = meta->zero;
    mf->format_version = CKPT_FORMAT_VERSION;
    mf->model = mc;
    mf->optim = oc;
    mf->layout = ly;
    mf->step = meta->step;
    mf->seed = meta->seed;
    mf->data_position = meta->data_pos;
    mf->global_batch = meta->global_batch;
    mf->optimizer_step = meta->opt_t;
    mf->data_path = (char *)meta->data_path;
    mf->val_data_path = (char *)meta->val_data_path;
    mf->data_format = meta->data_format;
    mf->created_unix = (int64_t)time(NULL);
}

/* zo settings travel in a message with static storage per call site */
static void attach_zo(const CkptMeta *meta, Mpitrain__Manifest *mf, Mpitrain__ZoConfig *z)
{
    if (meta->optim.kind != OPT_ZO) return;
    zo_config_to_pb(meta->zo_eps, meta->zo_scale, meta->zo_samples, 0, 0, z);
    mf->zo = z;
}

void ckpt_meta_from_pb(const Mpitrain__Manifest *mf, CkptMeta *meta)
{
    memset(meta, 0, sizeof *meta);
    if (mf->model) meta->model = model_config_from_pb(mf->model);
    if (mf->optim) optim_config_from_pb(mf->optim, &meta->optim);
    if (mf->layout) {
        meta->dp = mf->layout->dp;
        meta->tp = mf->layout->tp;
        meta->pp = mf->layout->pp;
        meta->zero = mf->layout->zero;
    }
    meta->step = mf->step;
    meta->seed = mf->seed;
    meta->data_pos = mf->data_position;
    meta->global_batch = mf->global_batch;
    meta->opt_t = mf->optimizer_step;
    snprintf(meta->data_path, sizeof meta->data_path, "%s", mf->data_path ? mf->data_path : "");
    snprintf(meta->val_data_path, sizeof meta->val_data_path, "%s",
             mf->val_data_path ? mf->val_data_path : "");
    meta->data_format = mf->data_format;
    if (mf->zo) {
        meta->zo_eps = mf->zo->eps;
        meta->zo_scale = mf->zo->scale;
        meta->zo_samples = mf->zo->samples;
    }
}

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    Mpitrain__TensorRecord *recs;
    int64_t *shapes; /* 2 per record */
    char **names;
    int n, cap;
} RecordList;

static int add_record(RecordList *rl, const char *prefix, const ParamInfo *t, size_t begin,
                      size_t count, const char *file, uint64_t offset, uint32_t crc, int tp_rank,
                      int tp_size)
{
    if (rl->n == rl->cap) {
        int cap = rl->cap ? rl->cap * 2 : 64;
        void *a = realloc(rl->recs, cap * sizeof *rl->recs);
        if (a) rl->recs = a;
        void *b = realloc(rl->shapes, cap * 2 * sizeof *rl->shapes);
        if (b) rl->shapes = b;
        void *c = realloc(rl->names, cap * sizeof *rl->names);
        if (c) rl->names = c;
        if (!a || !b || !c) return -1;
        rl->cap = cap;
    }
    Mpitrain__TensorRecord *r = &rl->recs[rl->n];
    mpitrain__tensor_record__init(r);
    size_t len = strlen(prefix) + strlen(t->name) + 2;
    rl->names[rl->n] = malloc(len);
    if (!rl->names[rl->n]) return -1;
    snprintf(rl->names[rl->n], len, "%s/%s", prefix, t->name);
    r->name = rl->names[rl->n];
    r->n_shape = t->ndim;
    rl->shapes[2 * rl->n] = t->shape[0];
    rl->shapes[2 * rl->n + 1] = t->shape[1];
    r->shape = NULL; /* set by write_manifest: shapes may still move */
    r->dtype = "f32";
    r->file = (char *)file;
    r->offset = offset;
    r->nbytes = count * sizeof(float);
    r->crc32c = crc;
    r->elem_begin = begin;
    r->elem_count = count;
    r->tp_rank = tp_rank;
    r->tp_size = tp_size;
    r->split = t->split;
    r->groups = t->groups;
    rl->n++;
    return 0;
}

static void free_records(RecordList *rl)
{
    for (int i = 0; i < rl->n; i++) free(rl->names[i]);
    free(rl->recs);
    free(rl->shapes);
    free(rl->names);
}

/* Writes, tensor by tensor, the elements of [want.lo, want.hi) that `buf`
 * holds (buf holds flat elements [buf_lo, ...)), one record each. */
static int write_range(AtomicFile *af, RecordList *rl, const Model *m, const char *prefix,
                       const float *buf, size_t buf_lo, Range want, const char *file,
                       uint64_t *offset, Err *e)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        /* one copy of everything: TP rank 0 speaks for replicated tensors,
         * the embedding stage for the tied head copy */
        if (t->tied_copy || (t->split == TP_REPLICATED && m->shard.tp_rank > 0)) continue;
        size_t a = t->offset > want.lo ? t->offset : want.lo;
        size_t b = t->offset + t->numel < want.hi ? t->offset + t->numel : want.hi;
        if (a >= b) continue;
        const float *src = buf + (a - buf_lo);
        size_t bytes = (b - a) * sizeof(float);
        if (atomic_write(af, src, bytes, e)) return -1;
        if (add_record(rl, prefix, t, a - t->offset, b - a, file, *offset, crc32c(0, src, bytes),
                       m->shard.tp_rank, m->shard.tp_size))
            return err_set(e, "out of memory building the checkpoint manifest");
        *offset += bytes;
    }
    return 0;
}

static Range intersect(Range a, Range b)
{
    Range r = {a.lo > b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
    if (r.hi < r.lo) r.hi = r.lo;
    return r;
}

/* Packs records (shape pointers fixed up) as a Manifest holding only them. */
static int pack_records(RecordList *rl, uint8_t **out, size_t *len, Err *e)
{
    Mpitrain__Manifest mf;
    mpitrain__manifest__init(&mf);
    Mpitrain__TensorRecord **ptrs = malloc((rl->n ? rl->n : 1) * sizeof *ptrs);
    if (!ptrs) return err_set(e, "out of memory");
    for (int i = 0; i < rl->n; i++) {
        rl->recs[i].shape = &rl->shapes[2 * i];
        ptrs[i] = &rl->recs[i];
    }
    mf.n_tensors = rl->n;
    mf.tensors = ptrs;
    *len = mpitrain__manifest__get_packed_size(&mf);
    *out = malloc(*len ? *len : 1);
    if (*out) mpitrain__manifest__pack(&mf, *out);
    free(ptrs);
    return *out ? 0 : err_set(e, "out of memory");
}

int ckpt_write_shard(const char *tmp, int index, const Model *m, const Optimizer *o, Range r,
                     uint8_t **records, size_t *records_len, Err *e)
{
    char file[64], data[PATH_BUF];
    snprintf(file, sizeof file, "rank_%05d.bin", index);
    snprintf(data, sizeof data, "%s/%s", tmp, file);
    RecordList rl = {0};
    AtomicFile af;
    uint64_t off = 0;
    int rc = atomic_open(&af, data, e);
    if (!rc) rc = write_range(&af, &rl, m, "param", m->params, 0, r, file, &off, e);
    Range os = o ? intersect(r, (Range){o->lo, o->hi}) : (Range){0, 0};
    if (!rc && o && o->m) rc = write_range(&af, &rl, m, "opt_m", o->m, o->lo, os, file, &off, e);
    if (!rc && o && o->v) rc = write_range(&af, &rl, m, "opt_v", o->v, o->lo, os, file, &off, e);
    if (!rc) rc = atomic_commit(&af, e);
    if (!rc) rc = pack_records(&rl, records, records_len, e);
    free_records(&rl);
    return rc;
}

int ckpt_write_manifest_pb(const char *dir, const Mpitrain__Manifest *mf, Err *e)
{
    size_t len = mpitrain__manifest__get_packed_size(mf);
    unsigned char *buf = malloc(16 + len);
    if (!buf) return err_set(e, "out of memory");
    mpitrain__manifest__pack(mf, buf + 16);
    memcpy(buf, CKPT_MAGIC, 8);
    le_put32(buf + 8, (uint32_t)len);
    le_put32(buf + 12, crc32c(0, buf + 16, len));
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/manifest.pb", dir);
    int rc = write_file_atomic(path, buf, 16 + len, e);
    free(buf);
    return rc;
}

static int write_manifest(const char *dir, const CkptMeta *meta, Mpitrain__TensorRecord **recs,
                          size_t n, Err *e)
{
    Mpitrain__Manifest mf;
    Mpitrain__ModelConfigPB mc;
    Mpitrain__OptimConfigPB oc;
    Mpitrain__Layout ly;
    Mpitrain__ZoConfig zo;
    ckpt_meta_to_pb(meta, &mf, &mc, &oc, &ly);
    attach_zo(meta, &mf, &zo);
    mf.n_tensors = n;
    mf.tensors = recs;
    return ckpt_write_manifest_pb(dir, &mf, e);
}

static int swap_into_place(const char *tmp, const char *final, const char *root, Err *e)
{
    char old[PATH_BUF];
    struct stat st;
    int had_old = stat(final, &st) == 0;
    if (had_old) {
        if (path_fmt(old, sizeof old, e, "%s.old.%d", final, (int)getpid())) return -1;
        if (rename(final, old) != 0)
            return err_set(e, "%s: cannot move old checkpoint aside: %s", final, strerror(errno));
    }
    if (rename(tmp, final) != 0) {
        int saved = errno;
        if (had_old) rename(old, final); /* put the previous checkpoint back */
        return err_set(e, "%s: cannot rename into place: %s", final, strerror(saved));
    }
    if (had_old) remove_tree(old);
    return fsync_dir(root, e);
}

static int write_latest(const char *root, const char *name, Err *e)
{
    char path[PATH_BUF], line[256];
    snprintf(path, sizeof path, "%s/latest", root);
    int n = snprintf(line, sizeof line, "%s\n", name);
    return write_file_atomic(path, line, (size_t)n, e);
}

static void step_name(char *out, size_t n, int64_t step)
{
    snprintf(out, n, "step_%08lld", (long long)step);
}

int ckpt_begin(const char *root, int64_t step, char *tmp, size_t n, Err *e)
{
    char name[64];
    step_name(name, sizeof name, step);
    snprintf(tmp, n, "%s/.tmp.%s", root, name);
    if (mkdir_p(root, e)) return -1;
    remove_tree(tmp); /* a stale temporary from a crashed save */
    return mkdir_p(tmp, e);
}

/* The tokenizer goes in before the manifest: a published step has it. */
static int copy_tokenizer(const char *tmp, const CkptMeta *meta, Err *e)
{
    char dst[PATH_BUF];
    if (!meta->tokenizer_dir[0]) return 0;
    if (path_fmt(dst, sizeof dst, e, "%s/%s", tmp, CKPT_TOKENIZER_SUBDIR)) return -1;
    return bpe_copy_files(meta->tokenizer_dir, dst, e);
}

int ckpt_finish(const char *root, const char *tmp, const CkptMeta *meta, uint8_t *const *shards,
                const size_t *lens, int n_shards, char *out_dir, size_t out_len, Err *e)
{
    Mpitrain__Manifest **parts = calloc(n_shards, sizeof *parts);
    size_t total = 0;
    int rc = parts ? 0 : err_set(e, "out of memory");
    for (int i = 0; !rc && i < n_shards; i++) {
        parts[i] = mpitrain__manifest__unpack(NULL, lens[i], shards[i]);
        if (!parts[i]) rc = err_set(e, "records of shard %d do not decode", i);
        else total += parts[i]->n_tensors;
    }
    Mpitrain__TensorRecord **all = rc ? NULL : malloc((total ? total : 1) * sizeof *all);
    if (!rc && !all) rc = err_set(e, "out of memory");
    for (int i = 0, k = 0; !rc && i < n_shards; i++)
        for (size_t j = 0; j < parts[i]->n_tensors; j++) all[k++] = parts[i]->tensors[j];
    char name[64], final[PATH_BUF];
    step_name(name, sizeof name, meta->step);
    snprintf(final, sizeof final, "%s/%s", root, name);
    if (!rc) rc = copy_tokenizer(tmp, meta, e);
    if (!rc) rc = write_manifest(tmp, meta, all, total, e);
    if (!rc) rc = fsync_dir(tmp, e);
    if (!rc) rc = swap_into_place(tmp, final, root, e);
    if (!rc) rc = write_latest(root, name, e);
    for (int i = 0; parts && i < n_shards; i++)
        if (parts[i]) mpitrain__manifest__free_unpacked(parts[i], NULL);
    free(parts);
    free(all);
    if (rc) return err_wrap(e, "saving checkpoint %s", final);
    if (out_dir) snprintf(out_dir, out_len, "%s", final);
    return 0;
}

int ckpt_save(const char *root, const CkptMeta *meta, const Model *m, const Optimizer *o,
              char *out_dir, size_t out_len, Err *e)
{
    char tmp[PATH_BUF];
    uint8_t *recs = NULL;
    size_t len = 0;
    int rc = ckpt_begin(root, meta->step, tmp, sizeof tmp, e);
    if (!rc) rc = ckpt_write_shard(tmp, 0, m, o, (Range){0, m->n_params}, &recs, &len, e);
    if (!rc) rc = ckpt_finish(root, tmp, meta, &recs, &len, 1, out_dir, out_len, e);
    free(recs);
    if (rc) remove_tree(tmp);
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int follow_latest(const char *root, char *out, size_t n, Err *e)
{
    char p[PATH_BUF], line[256] = {0};
    snprintf(p, sizeof p, "%s/latest", root);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || strchr(line, '/'))
        return err_set(e, "%s: does not name a checkpoint directory", p);
    snprintf(out, n, "%s/%s", root, line);
    return 0;
}

int ckpt_resolve(const char *path, char *out, size_t n, Err *e)
{
    char p[PATH_BUF];
    snprintf(p, sizeof p, "%s/manifest.pb", path);
    if (file_exists(p)) {
        snprintf(out, n, "%s", path);
        return 0;
    }
    Err sub = {{0}};
    if (follow_latest(path, out, n, &sub) == 0) return 0;
    if (sub.msg[0]) return err_set(e, "%s", sub.msg);
    snprintf(p, sizeof p, "%s/ckpt", path);
    if (follow_latest(p, out, n, &sub) == 0) return 0;
    if (sub.msg[0]) return err_set(e, "%s", sub.msg);
    return err_set(e, "%s: no checkpoint here (looked for manifest.pb, latest and ckpt/latest)", path);
}

int ckpt_read_manifest(const char *dir, Mpitrain__Manifest **out, Err *e)
{
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/manifest.pb", dir);
    void *raw;
    size_t len;
    if (read_file(path, CKPT_MAX_MANIFEST, &raw, &len, e)) return -1;
    unsigned char *buf = raw;
    uint32_t plen = 0, crc = 0;
    int rc = 0;
    if (len < 16 || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        rc = err_set(e, "%s: not an mpitrain checkpoint manifest (bad magic)", path);
    } else {
        plen = le_get32(buf + 8);
        crc = le_get32(buf + 12);
        if (plen != len - 16)
            rc = err_set(e, "%s: truncated or padded: header says %u bytes of manifest, file has %zu",
                         path, plen, len - 16);
        else if (crc32c(0, buf + 16, plen) != crc)
            rc = err_set(e, "%s: manifest checksum mismatch (stored 0x%08x, computed 0x%08x): corrupted",
                         path, crc, crc32c(0, buf + 16, plen));
    }
    if (!rc) {
        *out = mpitrain__manifest__unpack(NULL, plen, buf + 16);
        if (!*out) rc = err_set(e, "%s: manifest does not decode as protobuf", path);
        else if ((*out)->format_version != CKPT_FORMAT_VERSION) {
            rc = err_set(e, "%s: format_version %u, this build reads version %d", path,
                         (*out)->format_version, CKPT_FORMAT_VERSION);
            mpitrain__manifest__free_unpacked(*out, NULL);
        } else if (!(*out)->model) {
            rc = err_set(e, "%s: manifest has no model config", path);
            mpitrain__manifest__free_unpacked(*out, NULL);
        }
    }
    free(raw);
    return rc;
}

int ckpt_load_meta(const char *dir, CkptMeta *meta, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(dir, &mf, e)) return -1;
    ckpt_meta_from_pb(mf, meta);
    mpitrain__manifest__free_unpacked(mf, NULL);
    ckpt_tokenizer_of(dir, meta->tokenizer_dir, sizeof meta->tokenizer_dir);
    return 0;
}

int ckpt_tokenizer_of(const char *step_dir, char *out, size_t n)
{
    out[0] = 0;
    if (snprintf(out, n, "%s/%s", step_dir, CKPT_TOKENIZER_SUBDIR) >= (int)n || !bpe_present(out)) {
        out[0] = 0;
        return 0;
    }
    return 1;
}

static int check_record(const char *dir, const Mpitrain__TensorRecord *r, const ParamInfo *t,
                        Err *e)
{
    (void)t;
    const char *nm = r->name;
    if (!r->dtype || strcmp(r->dtype, "f32"))
        return err_set(e, "checkpoint %s: tensor '%s': dtype '%s', expected f32", dir, nm,
                       r->dtype ? r->dtype : "");
    if (r->nbytes != r->elem_count * sizeof(float))
        return err_set(e, "checkpoint %s: tensor '%s': %llu bytes for %llu floats", dir, nm,
                       (unsigned long long)r->nbytes, (unsigned long long)r->elem_count);
    if (!r->file || !r->file[0] || strchr(r->file, '/'))
        return err_set(e, "checkpoint %s: tensor '%s': bad data file name", dir, nm);
    return 0;
}

static int read_record(const char *dir, const Mpitrain__TensorRecord *r, float *dst, Err *e)
{
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/%s", dir, r->file);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "checkpoint %s: tensor '%s': cannot open %s: %s", dir, r->name,
                            r->file, strerror(errno));
    struct stat st;
    memset(&st, 0, sizeof st);
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size < r->offset ||
        (uint64_t)st.st_size - r->offset < r->nbytes) {
        rc = err_set(e, "checkpoint %s: tensor '%s': %s is truncated (needs bytes %llu..%llu, has %lld)",
                     dir, r->name, r->file, (unsigned long long)r->offset,
                     (unsigned long long)(r->offset + r->nbytes), (long long)st.st_size);
    } else if (fseeko(f, (off_t)r->offset, SEEK_SET) != 0 || fread(dst, 1, r->nbytes, f) != r->nbytes) {
        rc = err_set(e, "checkpoint %s: tensor '%s': read error in %s", dir, r->name, r->file);
    } else {
        uint32_t crc = crc32c(0, dst, r->nbytes);
        if (crc != r->crc32c)
            rc = err_set(e, "checkpoint %s: tensor '%s': checksum mismatch in %s (stored 0x%08x, "
                            "computed 0x%08x): the data is corrupted",
                         dir, r->name, r->file, r->crc32c, crc);
    }
    fclose(f);
    return rc;
}

static int split_name(const char *full, char *kind, size_t kn, const char **tensor)
{
    const char *slash = strchr(full, '/');
    if (!slash || (size_t)(slash - full) >= kn) return -1;
    memcpy(kind, full, slash - full);
    kind[slash - full] = 0;
    *tensor = slash + 1;
    return 0;
}

/* Loading maps every record, whatever tensor-parallel slice and element
 * range it holds, through the FULL tensor: a checkpoint saved under any
 * (dp, tp, pp, zero) layout loads under any other. One full tensor is
 * assembled at a time, with a map of which elements arrived, so a missing
 * or doubly stored element is an error. */
typedef struct {
    const ParamInfo *t; /* the local tensor being filled */
    size_t full_n;
    float *full;
    unsigned char *have;
} Assembly;

static TpSlice record_slice(const Mpitrain__TensorRecord *r, const ParamInfo *t)
{
    int size = r->tp_size > 0 ? r->tp_size : 1;
    return (TpSlice){size > 1 ? (SplitKind)r->split : SPLIT_NONE, r->groups > 0 ? r->groups : 1,
                     t->shape[0], t->shape[1], r->tp_rank, size};
}

static int check_slice(const char *dir, const Mpitrain__TensorRecord *r, const ParamInfo *t,
                       Err *e)
{
    TpSlice sl = record_slice(r, t);
    /* validate before any arithmetic on the record's numbers */
    if (sl.size < 1 || sl.size > 65536 || sl.rank < 0 || sl.rank >= sl.size || sl.kind < 0 ||
        sl.kind > SPLIT_ROW || (sl.kind != SPLIT_NONE && sl.groups != t->groups) ||
        (sl.kind && tp_divides(&sl)))
        return err_set(e, "checkpoint %s: tensor '%s': bad tensor-parallel slice %d of %d", dir,
                       r->name, r->tp_rank, r->tp_size);
    size_t local = (size_t)tp_local_rows(&sl) * tp_local_cols(&sl);
    if (r->elem_count > local || r->elem_begin > local - r->elem_count)
        return err_set(e, "checkpoint %s: tensor '%s': elements [%llu, +%llu) outside its slice of %zu",
                       dir, r->name, (unsigned long long)r->elem_begin,
                       (unsigned long long)r->elem_count, local);
    return 0;
}

static int assemble_record(const char *dir, const Mpitrain__TensorRecord *r, Assembly *as,
                           Err *e)
{
    float *tmp = malloc(r->nbytes ? r->nbytes : 1);
    if (!tmp) return err_set(e, "out of memory reading tensor '%s'", r->name);
    int rc = read_record(dir, r, tmp, e);
    TpSlice sl = record_slice(r, as->t);
    for (size_t k = 0; !rc && k < r->elem_count; k++) {
        size_t g = tp_global_index(&sl, r->elem_begin + k);
        if (as->have[g])
            rc = err_set(e, "checkpoint %s: tensor '%s' stores element %zu twice (overlapping "
                            "records): the manifest is inconsistent", dir, r->name, g);
        as->have[g] = 1;
        as->full[g] = tmp[k];
    }
    free(tmp);
    return rc;
}

/* Copies the local elements [lo, hi) of the assembled tensor into dst. */
static int scatter_local(const char *dir, const char *kind, const Model *m, const Assembly *as,
                         size_t lo, size_t hi, float *dst, Err *e)
{
    const ParamInfo *t = as->t;
    for (size_t i = lo; i < hi; i++) {
        size_t g = model_global_index(m, t, i) - t->global_offset;
        if (!as->have[g])
            return err_set(e, "checkpoint %s: tensor '%s/%s' is missing or incomplete (element "
                              "%zu absent; saved with another model or optimizer?)",
                           dir, kind, t->name, g);
        dst[i - lo] = as->full[g];
    }
    return 0;
}

static int is_record_of(const Mpitrain__TensorRecord *r, const char *kind, const ParamInfo *t)
{
    size_t klen = strlen(kind);
    return !strncmp(r->name, kind, klen) && r->name[klen] == '/' && !strcmp(r->name + klen + 1, t->name);
}

/* The record holds elements of exactly this process's slice of t. */
static int same_slice(const Mpitrain__TensorRecord *r, const ParamInfo *t, const Model *m)
{
    TpSlice a = record_slice(r, t);
    int size = t->split == TP_REPLICATED ? 1 : m->shard.tp_size;
    if (a.size != size) return 0;
    return size == 1 || (a.kind == (SplitKind)t->split && a.groups == t->groups && a.rank == m->shard.tp_rank);
}

/* Fast path (the same slicing as when saved): records copy straight into
 * local elements [lo, hi); as->have tracks local elements. */
static int load_same_slice(const char *dir, const Mpitrain__Manifest *mf, const char *kind,
                           const ParamInfo *t, float *dst, size_t lo, size_t hi, Assembly *as,
                           Err *e)
{
    memset(as->have, 0, t->numel);
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        if (!is_record_of(r, kind, t)) continue;
        if (check_record(dir, r, t, e) || check_slice(dir, r, t, e)) return -1;
        size_t a = r->elem_begin > lo ? r->elem_begin : lo;
        size_t b = r->elem_begin + r->elem_count < hi ? r->elem_begin + r->elem_count : hi;
        if (a >= b) continue;
        if (memchr(as->have + a, 1, b - a))
            return err_set(e, "checkpoint %s: tensor '%s' stores elements twice (overlapping "
                              "records): the manifest is inconsistent", dir, r->name);
        memset(as->have + a, 1, b - a);
        if (a == r->elem_begin && b == r->elem_begin + r->elem_count) {
            if (read_record(dir, r, dst + (a - lo), e)) return -1;
            continue;
        }
        float *tmp = malloc(r->nbytes ? r->nbytes : 1);
        if (!tmp) return err_set(e, "out of memory reading tensor '%s'", r->name);
        int rc = read_record(dir, r, tmp, e);
        if (!rc) memcpy(dst + (a - lo), tmp + (a - r->elem_begin), (b - a) * sizeof(float));
        free(tmp);
        if (rc) return -1;
    }
    const unsigned char *gap = memchr(as->have + lo, 0, hi - lo);
    if (gap)
        return err_set(e, "checkpoint %s: tensor '%s/%s' is missing or incomplete (element %zu "
                          "absent; saved with another model or optimizer?)",
                       dir, kind, t->name, (size_t)(gap - as->have));
    return 0;
}

/* Fills one kind ("param", "opt_m", "opt_v") of one local tensor. */
static int load_tensor_kind(const char *dir, const Mpitrain__Manifest *mf, const char *kind,
                            const ParamInfo *t, const Model *m, float *dst, size_t lo, size_t hi,
                            Assembly *as, Err *e)
{
    int all_same = 1;
    for (size_t i = 0; all_same && i < mf->n_tensors; i++)
        if (is_record_of(mf->tensors[i], kind, t) && !same_slice(mf->tensors[i], t, m)) all_same = 0;
    if (all_same) return load_same_slice(dir, mf, kind, t, dst, lo, hi, as, e);
    as->t = t;
    as->full_n = (size_t)t->shape[0] * t->shape[1];
    memset(as->have, 0, as->full_n);
    int rc = 0;
    for (size_t i = 0; !rc && i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        if (!is_record_of(r, kind, t)) continue;
        if (!(rc = check_record(dir, r, t, e)) && !(rc = check_slice(dir, r, t, e)))
            rc = assemble_record(dir, r, as, e);
    }
    return rc ? rc : scatter_local(dir, kind, m, as, lo, hi, dst, e);
}

static int check_names(const char *dir, const Mpitrain__Manifest *mf, const Model *m, Err *e)
{
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        char kind[16];
        const char *tname;
        if (!r->name || split_name(r->name, kind, sizeof kind, &tname))
            return err_set(e, "checkpoint %s: record %zu has a malformed name", dir, i);
        const ParamInfo *t = model_find_tensor(m, tname);
        if (!t && m->shard.first_block == 0 && m->shard.last_block == m->n_blocks - 1)
            return err_set(e, "checkpoint %s: tensor '%s' is not part of this model (%s)", dir,
                           r->name, "was the checkpoint made with other --layers/--embd?");
        if (t && (r->n_shape != (size_t)t->ndim || r->shape[0] != t->shape[0] ||
                  (t->ndim > 1 && r->shape[1] != t->shape[1])))
            return err_set(e, "checkpoint %s: tensor '%s': shape does not match the model's (%d x %d)",
                           dir, r->name, t->shape[0], t->shape[1]);
    }
    return 0;
}

static size_t largest_tensor(const Model *m)
{
    size_t n = 1;
    for (int k = 0; k < m->n_tensors; k++) {
        size_t f = (size_t)m->tensors[k].shape[0] * m->tensors[k].shape[1];
        if (f > n) n = f;
    }
    return n;
}

int ckpt_load(const char *dir, Model *m, Optimizer *o, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(dir, &mf, e)) return -1;
    int rc = ckpt_load_from(dir, mf, m, o, e);
    mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

int ckpt_load_from(const char *dir, const Mpitrain__Manifest *mf, Model *m, Optimizer *o, Err *e)
{
    int rc = check_names(dir, mf, m, e);
    size_t big = largest_tensor(m);
    Assembly as = {NULL, 0, malloc(big * sizeof(float)), malloc(big)};
    if (!rc && (!as.full || !as.have)) rc = err_set(e, "out of memory loading %s", dir);
    for (int k = 0; !rc && k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        rc = load_tensor_kind(dir, mf, "param", t, m, m->params + t->offset, 0, t->numel, &as, e);
        /* the optimizer state this rank holds inside the tensor */
        size_t a = t->offset > (o ? o->lo : 0) ? t->offset : (o ? o->lo : 0);
        size_t b = o && t->offset + t->numel > o->hi ? o->hi : t->offset + t->numel;
        for (int j = 0; !rc && o && a < b && j < 2; j++) {
            float *buf = j ? o->v : o->m;
            if (buf)
                rc = load_tensor_kind(dir, mf, j ? "opt_v" : "opt_m", t, m, buf + (a - o->lo),
                                      a - t->offset, b - t->offset, &as, e);
        }
    }
    free(as.full);
    free(as.have);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ckpt_prune(const char *root, int keep, Err *e)
{
    (void)e;
    if (keep <= 0) return 0;
    /* step_* directories sorted by name = by step (zero-padded) */
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *ent;
    DIR *d = opendir(root);
    if (!d) return 0;
    while ((ent = readdir(d))) {
        if (strncmp(ent->d_name, "step_", 5) || strchr(ent->d_name, '.')) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        if (!(names[n] = strdup(ent->d_name))) break;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    /* `latest` may name an older step (a resumed run); it always stays */
    char latest[PATH_BUF] = "";
    follow_latest(root, latest, sizeof latest, NULL);
    for (int i = 0; i < n - keep; i++) {
        char path[PATH_BUF];
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        if (strcmp(path, latest) != 0) remove_tree(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}
