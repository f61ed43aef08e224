#include "worker/ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include "worker/crc32c.h"
#include "worker/fsutil.h"
#include "worker/pbconv.h"

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
    mf->created_unix = (int64_t)time(NULL);
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
}

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    Mpitrain__TensorRecord *recs;
    int64_t *shapes; /* 2 per record */
    char **names;
    int n, cap;
} RecordList;

static int add_record(RecordList *rl, const char *prefix, const ParamInfo *t, size_t begin,
                      size_t count, const char *file, uint64_t offset, uint32_t crc)
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
        size_t a = t->offset > want.lo ? t->offset : want.lo;
        size_t b = t->offset + t->numel < want.hi ? t->offset + t->numel : want.hi;
        if (a >= b) continue;
        const float *src = buf + (a - buf_lo);
        size_t bytes = (b - a) * sizeof(float);
        if (atomic_write(af, src, bytes, e)) return -1;
        if (add_record(rl, prefix, t, a - t->offset, b - a, file, *offset, crc32c(0, src, bytes)))
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
    char file[64], data[4400];
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

static int write_manifest(const char *dir, const CkptMeta *meta, Mpitrain__TensorRecord **recs,
                          size_t n, Err *e)
{
    Mpitrain__Manifest mf;
    Mpitrain__ModelConfigPB mc;
    Mpitrain__OptimConfigPB oc;
    Mpitrain__Layout ly;
    ckpt_meta_to_pb(meta, &mf, &mc, &oc, &ly);
    mf.n_tensors = n;
    mf.tensors = recs;
    size_t len = mpitrain__manifest__get_packed_size(&mf);
    unsigned char *buf = malloc(16 + len);
    if (!buf) return err_set(e, "out of memory");
    mpitrain__manifest__pack(&mf, buf + 16);
    memcpy(buf, CKPT_MAGIC, 8);
    uint32_t len32 = (uint32_t)len, crc = crc32c(0, buf + 16, len);
    memcpy(buf + 8, &len32, 4);
    memcpy(buf + 12, &crc, 4);
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.pb", dir);
    int rc = write_file_atomic(path, buf, 16 + len, e);
    free(buf);
    return rc;
}

static int swap_into_place(const char *tmp, const char *final, const char *root, Err *e)
{
    char old[4400];
    struct stat st;
    int had_old = stat(final, &st) == 0;
    if (had_old) {
        snprintf(old, sizeof old, "%s.old.%d", final, (int)getpid());
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
    char path[4200], line[256];
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
    char name[64], final[4200];
    step_name(name, sizeof name, meta->step);
    snprintf(final, sizeof final, "%s/%s", root, name);
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
    char tmp[4400];
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
    char p[4200], line[256] = {0};
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
    char p[4200];
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
    char path[4200];
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
        memcpy(&plen, buf + 8, 4);
        memcpy(&crc, buf + 12, 4);
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
    return 0;
}

/* The optimizer buffer a record kind fills, or NULL. */
static float *opt_buffer(Optimizer *o, const char *kind)
{
    if (!o) return NULL;
    if (!strcmp(kind, "opt_m")) return o->m;
    if (!strcmp(kind, "opt_v")) return o->v;
    return NULL;
}

static int check_record(const char *dir, const Mpitrain__TensorRecord *r, const ParamInfo *t,
                        Err *e)
{
    const char *nm = r->name;
    if (!r->dtype || strcmp(r->dtype, "f32"))
        return err_set(e, "checkpoint %s: tensor '%s': dtype '%s', expected f32", dir, nm,
                       r->dtype ? r->dtype : "");
    if ((int)r->n_shape != t->ndim || r->shape[0] != t->shape[0] ||
        (t->ndim > 1 && r->shape[1] != t->shape[1]))
        return err_set(e, "checkpoint %s: tensor '%s': shape does not match the model's (%d x %d)",
                       dir, nm, t->shape[0], t->shape[1]);
    if (r->elem_count > t->numel || r->elem_begin > t->numel - r->elem_count)
        return err_set(e, "checkpoint %s: tensor '%s': elements [%llu, +%llu) outside its %zu", dir,
                       nm, (unsigned long long)r->elem_begin, (unsigned long long)r->elem_count,
                       t->numel);
    if (r->nbytes != r->elem_count * sizeof(float))
        return err_set(e, "checkpoint %s: tensor '%s': %llu bytes for %llu floats", dir, nm,
                       (unsigned long long)r->nbytes, (unsigned long long)r->elem_count);
    if (!r->file || !r->file[0] || strchr(r->file, '/'))
        return err_set(e, "checkpoint %s: tensor '%s': bad data file name", dir, nm);
    return 0;
}

static int read_record(const char *dir, const Mpitrain__TensorRecord *r, float *dst, Err *e)
{
    char path[4400];
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

/* Reads a record whole (its checksum covers all of it) and copies the part
 * that overlaps [want.lo, want.hi) of the flat buffer into dst (which holds
 * flat elements from dst_lo). Returns the elements copied, or -1. */
static long load_overlap(const char *dir, const Mpitrain__TensorRecord *r, size_t flat,
                         float *dst, size_t dst_lo, Range want, Err *e)
{
    Range have = {flat, flat + r->elem_count};
    Range o = {have.lo > want.lo ? have.lo : want.lo, have.hi < want.hi ? have.hi : want.hi};
    if (o.hi <= o.lo) return 0;
    if (o.lo == have.lo && o.hi == have.hi)
        return read_record(dir, r, dst + (flat - dst_lo), e) ? -1 : (long)r->elem_count;
    float *tmp = malloc(r->nbytes ? r->nbytes : 1);
    if (!tmp) return err_set(e, "out of memory reading tensor '%s'", r->name);
    int rc = read_record(dir, r, tmp, e);
    if (!rc) memcpy(dst + (o.lo - dst_lo), tmp + (o.lo - flat), (o.hi - o.lo) * sizeof(float));
    free(tmp);
    return rc ? -1 : (long)(o.hi - o.lo);
}

/* Flat ranges a load filled, to prove they tile what was needed exactly
 * once (two records for the same half of a tensor must not pass). */
typedef struct {
    Range *r;
    size_t n, cap;
} RangeSet;

static int rs_add(RangeSet *s, Range r)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        Range *nr = realloc(s->r, cap * sizeof *nr);
        if (!nr) return -1;
        s->r = nr;
        s->cap = cap;
    }
    s->r[s->n++] = r;
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const Range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* 0 if the ranges tile `want`; else the first flat element missing (or
 * loaded twice) in *at and 1 = gap, 2 = overlap. */
static int rs_check(RangeSet *s, Range want, size_t *at)
{
    qsort(s->r, s->n, sizeof *s->r, cmp_range);
    size_t next = want.lo;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].lo > next) { *at = next; return 1; }
        if (s->r[i].lo < next) { *at = s->r[i].lo; return 2; }
        next = s->r[i].hi;
    }
    if (next < want.hi) { *at = next; return 1; }
    return 0;
}

static const char *tensor_at_flat(const Model *m, size_t flat)
{
    for (int k = 0; k < m->n_tensors; k++)
        if (flat >= m->tensors[k].offset && flat < m->tensors[k].offset + m->tensors[k].numel)
            return m->tensors[k].name;
    return "?";
}

static int coverage_error(const char *dir, const Model *m, const char *kind, int how, size_t at,
                          Err *e)
{
    return err_set(e, "checkpoint %s: tensor '%s/%s' is %s", dir, kind, tensor_at_flat(m, at),
                   how == 1 ? "missing or incomplete (was it saved with another model or "
                              "optimizer?)"
                            : "stored twice (overlapping records): the manifest is inconsistent");
}

/* Loads one record into the parameter or optimizer buffers it overlaps. */
static int load_record(const char *dir, const Mpitrain__TensorRecord *r, const ParamInfo *t,
                       const char *kind, Model *m, Optimizer *o, RangeSet *sets, Err *e)
{
    size_t flat = t->offset + r->elem_begin;
    Range have = {flat, flat + r->elem_count};
    int which = !strcmp(kind, "param") ? 0 : !strcmp(kind, "opt_m") ? 1 : 2;
    float *dst = which == 0 ? m->params : opt_buffer(o, kind);
    if (!dst) return 0;
    Range want = which == 0 ? (Range){0, m->n_params} : (Range){o->lo, o->hi};
    long got = load_overlap(dir, r, flat, dst, want.lo, want, e);
    if (got < 0) return -1;
    Range ov = {have.lo > want.lo ? have.lo : want.lo, have.hi < want.hi ? have.hi : want.hi};
    if (got > 0 && rs_add(&sets[which], ov)) return err_set(e, "out of memory");
    return 0;
}

int ckpt_load(const char *dir, Model *m, Optimizer *o, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(dir, &mf, e)) return -1;
    RangeSet sets[3] = {{0}};
    int rc = 0;
    for (size_t i = 0; !rc && i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        char kind[16];
        const char *tname;
        if (!r->name || split_name(r->name, kind, sizeof kind, &tname)) {
            rc = err_set(e, "checkpoint %s: record %zu has a malformed name", dir, i);
            break;
        }
        const ParamInfo *t = model_find_tensor(m, tname);
        if (!t) {
            rc = err_set(e, "checkpoint %s: tensor '%s' is not part of this model (%s)", dir,
                         r->name, "was the checkpoint made with other --layers/--embd?");
            break;
        }
        if (!(rc = check_record(dir, r, t, e))) rc = load_record(dir, r, t, kind, m, o, sets, e);
    }
    size_t at;
    int how;
    if (!rc && (how = rs_check(&sets[0], (Range){0, m->n_params}, &at)))
        rc = coverage_error(dir, m, "param", how, at, e);
    for (int j = 1; !rc && o && j < 3; j++)
        if ((j == 1 ? o->m : o->v) && (how = rs_check(&sets[j], (Range){o->lo, o->hi}, &at)))
            rc = coverage_error(dir, m, j == 1 ? "opt_m" : "opt_v", how, at, e);
    for (int j = 0; j < 3; j++) free(sets[j].r);
    mpitrain__manifest__free_unpacked(mf, NULL);
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
    char latest[4400] = "";
    follow_latest(root, latest, sizeof latest, NULL);
    for (int i = 0; i < n - keep; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        if (strcmp(path, latest) != 0) remove_tree(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}
