#include "worker/ckpt/ckpt.h"
#include "worker/data/bpe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/le.h"
#include "sharding/tpsplit.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint data is little-endian");

int ckpt_dtype_valid(const char *dtype)
{
    return !strcmp(dtype, "F32") || !strcmp(dtype, "F16") || !strcmp(dtype, "BF16");
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
static int write_range(AtomicFile *af, RecordList *rl, const Model *m, const WeightTable *tab,
                       const char *prefix, const float *buf, size_t buf_lo, Range want,
                       const char *file, uint64_t *offset, Err *e)
{
    for (int k = 0; k < tab->n_tensors; k++) {
        const ParamInfo *t = &tab->tensors[k];
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

struct CkptShardWriter {
    AtomicFile af;
    RecordList rl;
    char file[64];
    uint64_t off;
};

int ckpt_shard_open(CkptShardWriter **out, const char *tmp, int index, Err *e)
{
    CkptShardWriter *w = *out = calloc(1, sizeof *w);
    if (!w) return err_set(e, "out of memory");
    char data[PATH_BUF];
    snprintf(w->file, sizeof w->file, "rank_%05d.bin", index);
    snprintf(data, sizeof data, "%s/%s", tmp, w->file);
    if (!atomic_open(&w->af, data, e)) return 0;
    free(w);
    *out = NULL;
    return -1;
}

/* The table a kind of record belongs to: the frozen base's, or the trained one. */
static WeightTable table_of(const Model *m, int base)
{
    if (base) return (WeightTable){m->base.tensors, m->base.n_tensors, m->base.params, m->base.n_params, 1};
    return (WeightTable){m->tensors, m->n_tensors, m->params, m->n_params, 0};
}

int ckpt_shard_add(CkptShardWriter *w, const Model *m, const CkptPart *p, Err *e)
{
    if (!p->buf) return 0;
    WeightTable tab = table_of(m, !strcmp(p->kind, CKPT_BASE_KIND));
    return write_range(&w->af, &w->rl, m, &tab, p->kind, p->buf, p->lo, p->want, w->file, &w->off, e);
}

int ckpt_shard_close(CkptShardWriter *w, int commit, uint8_t **records, size_t *records_len,
                     Err *e)
{
    if (!w) return -1;
    int rc = commit ? atomic_commit(&w->af, e) : (atomic_abort(&w->af), -1);
    if (!rc) rc = pack_records(&w->rl, records, records_len, e);
    free_records(&w->rl);
    free(w);
    return rc;
}

int ckpt_write_parts(const char *tmp, int index, const Model *m, const CkptPart *parts, int n,
                     uint8_t **records, size_t *records_len, Err *e)
{
    CkptShardWriter *w;
    if (ckpt_shard_open(&w, tmp, index, e)) return -1;
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) rc = ckpt_shard_add(w, m, &parts[i], e);
    Err ignored;
    return ckpt_shard_close(w, !rc, records, records_len, rc ? &ignored : e) || rc ? -1 : 0;
}

int ckpt_model_parts(const Model *m, const Optimizer *o, Range r, CkptPart *out)
{
    Range os = o ? intersect(r, (Range){o->lo, o->hi}) : (Range){0, 0};
    out[0] = (CkptPart){"param", m->params, 0, r};
    out[1] = (CkptPart){"opt_m", o ? o->m : NULL, o ? o->lo : 0, os};
    out[2] = (CkptPart){"opt_v", o ? o->v : NULL, o ? o->lo : 0, os};
    return 3;
}

int ckpt_write_shard(const char *tmp, int index, const Model *m, const Optimizer *o, Range r,
                     uint8_t **records, size_t *records_len, Err *e)
{
    CkptPart parts[3];
    int n = ckpt_model_parts(m, o, r, parts);
    return ckpt_write_parts(tmp, index, m, parts, n, records, records_len, e);
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
    CkptManifestPB pb;
    if (ckpt_meta_to_pb(meta, &pb, e)) return -1;
    pb.mf.n_tensors = n;
    pb.mf.tensors = recs;
    int rc = ckpt_write_manifest_pb(dir, &pb.mf, e);
    ckpt_manifest_pb_free(&pb);
    return rc;
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

/* digits, then the end or one of the suffixes the writers leave */
static int is_step_name(const char *name)
{
    if (strncmp(name, "step_", 5)) return 0;
    size_t digits = strspn(name + 5, "0123456789");
    const char *rest = name + 5 + digits;
    return digits > 0 && (!*rest || !strncmp(rest, ".old.", 5));
}

int ckpt_root_entry(const char *name, int is_dir)
{
    static const char *const POINTERS[] = {"latest", "best"}; /* and their temporaries */
    if (!is_dir) {
        for (size_t i = 0; i < sizeof POINTERS / sizeof *POINTERS; i++) {
            size_t n = strlen(POINTERS[i]);
            if (!strncmp(name, POINTERS[i], n) && (!name[n] || !strncmp(name + n, ".tmp.", 5))) return 1;
        }
        return 0;
    }
    return is_step_name(name) || (!strncmp(name, ".tmp.", 5) && is_step_name(name + 5));
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
    CkptPart parts[4];
    int n = ckpt_model_parts(m, o, (Range){0, m->n_params}, parts);
    /* a LoRA model's base with it when asked (meta->base.share) */
    if (meta->base.share.hi > meta->base.share.lo)
        parts[n++] = (CkptPart){CKPT_BASE_KIND, m->base.params, 0, meta->base.share};
    int rc = ckpt_begin(root, meta->step, tmp, sizeof tmp, e);
    if (!rc) rc = ckpt_write_parts(tmp, 0, m, parts, n, &recs, &len, e);
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

/* <root>/<pointer> (latest, best): its first line names a step directory. */
static int follow_pointer(const char *root, const char *pointer, char *out, size_t n, Err *e)
{
    char p[PATH_BUF], line[256] = {0};
    snprintf(p, sizeof p, "%s/%s", root, pointer);
    if (!file_exists(p)) return -1;
    FILE *f = fopen_input(p, NULL, e);
    if (!f) return -1;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || strchr(line, '/'))
        return err_set(e, "%s: does not name a checkpoint directory", p);
    snprintf(out, n, "%s/%s", root, line);
    return 0;
}

static int follow_latest(const char *root, char *out, size_t n, Err *e)
{
    return follow_pointer(root, "latest", out, n, e);
}

/* A pointer given by its own path (<root>/best, <root>/latest); -1 when
 * path is no pointer to a checkpoint (the caller says what was looked for). */
static int follow_pointer_file(const char *path, char *out, size_t n)
{
    struct stat st;
    char root[PATH_BUF], manifest[PATH_BUF];
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 4096) return -1;
    snprintf(root, sizeof root, "%s", path);
    char *slash = strrchr(root, '/');
    if (slash) *slash = 0;
    if (follow_pointer(slash ? root : ".", slash ? slash + 1 : path, out, n, NULL)) return -1;
    snprintf(manifest, sizeof manifest, "%s/manifest.pb", out);
    return file_exists(manifest) ? 0 : -1;
}

int ckpt_set_best(const char *root, const char *step_dir, double val_loss, Err *e)
{
    const char *name = strrchr(step_dir, '/');
    char path[PATH_BUF], text[320];
    snprintf(path, sizeof path, "%s/best", root);
    int n = snprintf(text, sizeof text, "%s\nval_loss %.9g\n", name ? name + 1 : step_dir, val_loss);
    return write_file_atomic(path, text, (size_t)n, e);
}

double ckpt_best_val_loss(const char *root)
{
    char path[PATH_BUF], line[256];
    double v = NAN;
    snprintf(path, sizeof path, "%s/best", root);
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "val_loss %lf", &v) == 1) break;
    fclose(f);
    return v;
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
    if (follow_pointer_file(path, out, n) == 0) return 0;
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
        } else if (!(*out)->model && !(*out)->n_settings) {
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
    int rc = ckpt_meta_from_pb(mf, meta, e);
    mpitrain__manifest__free_unpacked(mf, NULL);
    if (rc) return err_wrap(e, "checkpoint %s", dir);
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

/* ---- loading -------------------------------------------------------------- */

/* Records are read in chunks of this many floats when only part of one is
 * wanted or its elements go elsewhere one by one (the CRC covers the whole
 * record, so every byte is read, but never into a whole-record buffer). */
#define LOAD_CHUNK ((size_t)1 << 18)

/* A span of local elements [a, b) that record `rec` supplies. */
typedef struct {
    size_t a, b;
    const Mpitrain__TensorRecord *rec;
} Span;

/* What one load holds besides the model's and optimizer's own buffers: the
 * data file open now (a file's records come in a row, so one open serves
 * them), a chunk buffer, the spans of one tensor, and for the resharding
 * path one full tensor and a bit per element that arrived. Each is
 * allocated on first need, so a load into the layout it was saved under
 * (eval, sample, --init-from, --resume) reads straight into the model's
 * buffers and holds no copy of any tensor. */
typedef struct {
    const char *dir;
    /* Records of this kind go into the frozen base's table (CKPT_BASE_KIND;
     * "param" when a checkpoint is a LoRA model's base source); with
     * only_base set no other record is read or checked. */
    const char *base_kind;
    int only_base;
    const char *file; /* the record's name of the open file */
    FILE *f;
    uint64_t size;
    float *chunk;
    Span *spans;
    float *full;
    size_t full_cap;
    unsigned char *have; /* bits */
    size_t have_cap;
} Loader;

static void loader_close(Loader *ld)
{
    if (ld->f) fclose(ld->f);
    free(ld->chunk);
    free(ld->spans);
    free(ld->full);
    free(ld->have);
}

static int grow(void **buf, size_t *cap, size_t bytes)
{
    if (*cap >= bytes) return 0;
    free(*buf);
    *buf = malloc(bytes ? bytes : 1);
    *cap = *buf ? bytes : 0;
    return *buf ? 0 : -1;
}

/* Opens the record's data file (unless it is open) and checks the record
 * lies inside it. */
static int open_data_of(Loader *ld, const Mpitrain__TensorRecord *r, Err *e)
{
    if (!ld->f || strcmp(ld->file, r->file)) {
        if (ld->f) fclose(ld->f);
        char path[PATH_BUF];
        snprintf(path, sizeof path, "%s/%s", ld->dir, r->file);
        Err why;
        ld->f = fopen_input(path, &ld->size, &why);
        if (!ld->f)
            return err_set(e, "checkpoint %s: tensor '%s': %s", ld->dir, r->name, why.msg);
        ld->file = r->file;
    }
    if (ld->size < r->offset || ld->size - r->offset < r->nbytes)
        return err_set(e, "checkpoint %s: tensor '%s': %s is truncated (needs bytes %llu..%llu, has %lld)",
                       ld->dir, r->name, r->file, (unsigned long long)r->offset,
                       (unsigned long long)(r->offset + r->nbytes), (long long)ld->size);
    if (fseeko(ld->f, (off_t)r->offset, SEEK_SET) != 0)
        return err_set(e, "checkpoint %s: tensor '%s': read error in %s", ld->dir, r->name, r->file);
    return 0;
}

/* Where a record's elements go when they are not read whole: fn gets
 * elements [k, k + n) of the record. */
typedef struct {
    int (*fn)(void *arg, size_t k, const float *v, size_t n, Err *e);
    void *arg;
} Sink;

/* Elements [k, k + n) of record r, at v: a NaN or infinity is refused by
 * name (the checksum cannot tell: a diverged run saves them faithfully). */
static int check_finite(const Loader *ld, const Mpitrain__TensorRecord *r, size_t k, const float *v,
                        size_t n, Err *e)
{
    size_t bad = floats_first_nonfinite(v, n);
    if (bad == n) return 0;
    return err_set(e, "checkpoint %s: tensor '%s': element %llu is %g: non-finite values cannot be "
                      "trained, evaluated or sampled", ld->dir, r->name,
                   (unsigned long long)(r->elem_begin + k + bad), (double)v[bad]);
}

/* Reads record r, whole into `whole` or chunk by chunk into sink, and checks
 * its CRC-32C and that every value is finite. */
static int read_record(Loader *ld, const Mpitrain__TensorRecord *r, float *whole, const Sink *sink,
                       Err *e)
{
    if (open_data_of(ld, r, e)) return -1;
    uint32_t crc = 0;
    if (whole) {
        if (fread(whole, 1, r->nbytes, ld->f) != r->nbytes)
            return err_set(e, "checkpoint %s: tensor '%s': read error in %s", ld->dir, r->name, r->file);
        crc = crc32c(0, whole, r->nbytes);
        if (check_finite(ld, r, 0, whole, r->elem_count, e)) return -1;
    } else {
        if (!ld->chunk && !(ld->chunk = malloc(LOAD_CHUNK * sizeof(float))))
            return err_set(e, "out of memory reading tensor '%s'", r->name);
        for (size_t k = 0; k < r->elem_count;) {
            size_t n = r->elem_count - k < LOAD_CHUNK ? r->elem_count - k : LOAD_CHUNK;
            if (fread(ld->chunk, sizeof(float), n, ld->f) != n)
                return err_set(e, "checkpoint %s: tensor '%s': read error in %s", ld->dir, r->name,
                               r->file);
            crc = crc32c(crc, ld->chunk, n * sizeof(float));
            if (check_finite(ld, r, k, ld->chunk, n, e)) return -1;
            if (sink->fn(sink->arg, k, ld->chunk, n, e)) return -1;
            k += n;
        }
    }
    if (crc != r->crc32c)
        return err_set(e, "checkpoint %s: tensor '%s': checksum mismatch in %s (stored 0x%08x, "
                          "computed 0x%08x): the data is corrupted",
                       ld->dir, r->name, r->file, r->crc32c, crc);
    return 0;
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
 * (dp, tp, pp, zero) layout loads under any other. */
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

static int missing(const char *dir, const char *kind, const ParamInfo *t, size_t elem, Err *e)
{
    return err_set(e, "checkpoint %s: tensor '%s/%s' is missing or incomplete (element %zu "
                      "absent; saved with another model or optimizer?)",
                   dir, kind, t->name, elem);
}

/* Part of a record into local elements: record element k lands at
 * dst[begin + k - lo] when begin + k lies in [lo, hi). */
typedef struct {
    float *dst;
    size_t begin, lo, hi;
} CopyPart;

static int copy_part(void *arg, size_t k, const float *v, size_t n, Err *e)
{
    (void)e;
    const CopyPart *c = arg;
    size_t a = c->begin + k > c->lo ? c->begin + k : c->lo;
    size_t b = c->begin + k + n < c->hi ? c->begin + k + n : c->hi;
    if (a < b) memcpy(c->dst + (a - c->lo), v + (a - c->begin - k), (b - a) * sizeof *v);
    return 0;
}

static int cmp_span(const void *x, const void *y)
{
    const Span *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a;
}

/* Fast path (the same slicing as when saved): the records' spans must tile
 * local elements [lo, hi) exactly, which the manifest alone shows; then each
 * record is read straight into dst (only the part inside [lo, hi) of one
 * that sticks out). */
static int load_same_slice(Loader *ld, const Mpitrain__Manifest *mf, const char *kind,
                           const ParamInfo *t, float *dst, size_t lo, size_t hi, Err *e)
{
    size_t n = 0;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        if (!is_record_of(r, kind, t)) continue;
        if (check_record(ld->dir, r, t, e) || check_slice(ld->dir, r, t, e)) return -1;
        size_t a = r->elem_begin > lo ? r->elem_begin : lo;
        size_t b = r->elem_begin + r->elem_count < hi ? r->elem_begin + r->elem_count : hi;
        if (a < b) ld->spans[n++] = (Span){a, b, r};
    }
    qsort(ld->spans, n, sizeof *ld->spans, cmp_span);
    size_t at = lo;
    for (size_t j = 0; j < n; j++) {
        if (ld->spans[j].a < at)
            return err_set(e, "checkpoint %s: tensor '%s' stores elements twice (overlapping "
                              "records): the manifest is inconsistent", ld->dir, ld->spans[j].rec->name);
        if (ld->spans[j].a > at) return missing(ld->dir, kind, t, at, e);
        at = ld->spans[j].b;
    }
    if (at < hi) return missing(ld->dir, kind, t, at, e);
    for (size_t j = 0; j < n; j++) {
        const Mpitrain__TensorRecord *r = ld->spans[j].rec;
        Span s = ld->spans[j];
        if (s.a == r->elem_begin && s.b == r->elem_begin + r->elem_count) {
            if (read_record(ld, r, dst + (s.a - lo), NULL, e)) return -1;
            continue;
        }
        CopyPart c = {dst, r->elem_begin, lo, hi};
        if (read_record(ld, r, NULL, &(Sink){copy_part, &c}, e)) return -1;
    }
    return 0;
}

/* A record of another slicing, element by element into the full tensor
 * (full[g], g its index in the full tensor), one bit per element arrived. */
typedef struct {
    Loader *ld;
    const Mpitrain__TensorRecord *r;
    TpSlice sl;
    float *full;
} Assemble;

static int assemble_part(void *arg, size_t k, const float *v, size_t n, Err *e)
{
    const Assemble *as = arg;
    unsigned char *have = as->ld->have;
    for (size_t j = 0; j < n; j++) {
        size_t g = tp_global_index(&as->sl, as->r->elem_begin + k + j);
        if (have[g >> 3] & (1u << (g & 7)))
            return err_set(e, "checkpoint %s: tensor '%s' stores element %zu twice (overlapping "
                              "records): the manifest is inconsistent", as->ld->dir, as->r->name, g);
        have[g >> 3] |= (unsigned char)(1u << (g & 7));
        as->full[g] = v[j];
    }
    return 0;
}

/* Fills one kind ("param", "opt_m", "opt_v") of one local tensor. */
static int load_tensor_kind(Loader *ld, const Mpitrain__Manifest *mf, const char *kind,
                            const ParamInfo *t, const Model *m, float *dst, size_t lo, size_t hi,
                            Err *e)
{
    int all_same = 1;
    for (size_t i = 0; all_same && i < mf->n_tensors; i++)
        if (is_record_of(mf->tensors[i], kind, t) && !same_slice(mf->tensors[i], t, m)) all_same = 0;
    if (all_same) return load_same_slice(ld, mf, kind, t, dst, lo, hi, e);
    /* a whole local tensor is the full one: it is assembled in place */
    size_t full_n = (size_t)t->shape[0] * t->shape[1];
    int in_place = lo == 0 && hi == full_n && t->numel == full_n;
    if (grow((void **)&ld->have, &ld->have_cap, (full_n + 7) / 8) ||
        (!in_place && grow((void **)&ld->full, &ld->full_cap, full_n * sizeof(float))))
        return err_set(e, "out of memory loading %s", ld->dir);
    memset(ld->have, 0, (full_n + 7) / 8);
    float *full = in_place ? dst : ld->full;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        if (!is_record_of(r, kind, t)) continue;
        if (check_record(ld->dir, r, t, e) || check_slice(ld->dir, r, t, e)) return -1;
        Assemble as = {ld, r, record_slice(r, t), full};
        if (read_record(ld, r, NULL, &(Sink){assemble_part, &as}, e)) return -1;
    }
    /* the local elements [lo, hi), each through its place in the full tensor */
    for (size_t i = lo; i < hi; i++) {
        size_t g = in_place ? i : model_global_index(m, t, i) - t->global_offset;
        if (!(ld->have[g >> 3] & (1u << (g & 7)))) return missing(ld->dir, kind, t, g, e);
        if (!in_place) dst[i - lo] = full[g];
    }
    return 0;
}

/* The table of a kind of record: the base's for the loader's base kind
 * (when the model has a base), else the trained one. */
static WeightTable kind_table(const Loader *ld, const Model *m, const char *kind)
{
    return table_of(m, m->base.n_tensors && !strcmp(kind, ld->base_kind));
}

static const ParamInfo *find_in(const WeightTable *tab, const char *name)
{
    for (int k = 0; k < tab->n_tensors; k++)
        if (!strcmp(tab->tensors[k].name, name)) return &tab->tensors[k];
    return NULL;
}

static int check_names(const Loader *ld, const Mpitrain__Manifest *mf, const Model *m, Err *e)
{
    const char *dir = ld->dir;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        char kind[CKPT_KIND_LEN];
        const char *tname;
        if (!r->name || split_name(r->name, kind, sizeof kind, &tname))
            return err_set(e, "checkpoint %s: record %zu has a malformed name", dir, i);
        if (ld->only_base && strcmp(kind, ld->base_kind)) continue;
        WeightTable tab = kind_table(ld, m, kind);
        const ParamInfo *t = find_in(&tab, tname);
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

int ckpt_load(const char *dir, Model *m, Optimizer *o, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(dir, &mf, e)) return -1;
    int rc = ckpt_load_from(dir, mf, m, o, e);
    mpitrain__manifest__free_unpacked(mf, NULL);
    return rc;
}

/* Flat elements [lo, hi) of one kind into dst (dst[0] is element lo),
 * tensor by tensor. */
static int load_kind_range(Loader *ld, const Mpitrain__Manifest *mf, const Model *m,
                           const char *kind, float *dst, size_t lo, size_t hi, Err *e)
{
    WeightTable tab = kind_table(ld, m, kind);
    for (int k = 0; k < tab.n_tensors; k++) {
        const ParamInfo *t = &tab.tensors[k];
        size_t a = t->offset > lo ? t->offset : lo;
        size_t b = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (a < b && load_tensor_kind(ld, mf, kind, t, m, dst + (a - lo), a - t->offset,
                                      b - t->offset, e))
            return -1;
    }
    return 0;
}

/* A loader for dir's manifest, after its names are checked against m. */
static int loader_begin(Loader *ld, const char *dir, const Mpitrain__Manifest *mf, const Model *m,
                        const char *base_kind, int only_base, Err *e)
{
    *ld = (Loader){.dir = dir, .base_kind = base_kind, .only_base = only_base,
                   .spans = malloc((mf->n_tensors ? mf->n_tensors : 1) * sizeof(Span))};
    int rc = check_names(ld, mf, m, e);
    if (!rc && !ld->spans) rc = err_set(e, "out of memory loading %s", dir);
    return rc;
}

int ckpt_load_from(const char *dir, const Mpitrain__Manifest *mf, Model *m, Optimizer *o, Err *e)
{
    Loader ld;
    int rc = loader_begin(&ld, dir, mf, m, CKPT_BASE_KIND, 0, e);
    if (!rc) rc = load_kind_range(&ld, mf, m, "param", m->params, 0, m->n_params, e);
    /* the optimizer state this rank holds; without an optimizer (or one
     * without moments) no opt_* record is read, and a weights-only
     * checkpoint (an import) leaves the fresh state as it was created */
    if (!rc && o && o->m && ckpt_has_kind(mf, "opt_m"))
        rc = load_kind_range(&ld, mf, m, "opt_m", o->m, o->lo, o->hi, e);
    if (!rc && o && o->v && ckpt_has_kind(mf, "opt_v"))
        rc = load_kind_range(&ld, mf, m, "opt_v", o->v, o->lo, o->hi, e);
    loader_close(&ld);
    return rc;
}

int ckpt_load_kind(const char *dir, const Mpitrain__Manifest *mf, const Model *m,
                   const char *kind, float *dst, size_t lo, size_t hi, Err *e)
{
    Loader ld;
    int rc = loader_begin(&ld, dir, mf, m, CKPT_BASE_KIND, 0, e);
    if (!rc) rc = load_kind_range(&ld, mf, m, kind, dst, lo, hi, e);
    loader_close(&ld);
    return rc;
}

int ckpt_load_weights_as(const char *dir, const Mpitrain__Manifest *mf, const char *kind,
                         Model *m, Err *e)
{
    Loader ld;
    WeightTable w = model_weight_table(m);
    int rc = loader_begin(&ld, dir, mf, m, kind, 1, e);
    if (!rc) rc = load_kind_range(&ld, mf, m, kind, w.params, 0, w.n_params, e);
    loader_close(&ld);
    return rc;
}

int ckpt_has_kind(const Mpitrain__Manifest *mf, const char *kind)
{
    size_t klen = strlen(kind);
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const char *name = mf->tensors[i]->name;
        if (name && !strncmp(name, kind, klen) && name[klen] == '/') return 1;
    }
    return 0;
}

int ckpt_list_kinds(const Mpitrain__Manifest *mf, char (*kinds)[CKPT_KIND_LEN], int max)
{
    int n = 0;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        char kind[CKPT_KIND_LEN];
        const char *tname;
        if (!mf->tensors[i]->name || split_name(mf->tensors[i]->name, kind, sizeof kind, &tname))
            continue;
        int seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = !strcmp(kinds[j], kind);
        if (!seen && n < max) memcpy(kinds[n++], kind, sizeof kind);
    }
    return n;
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
    /* `latest` may name an older step (a resumed run); it always stays, and
     * so does the step `best` names (--keep-best) */
    char latest[PATH_BUF] = "", best[PATH_BUF] = "";
    follow_latest(root, latest, sizeof latest, NULL);
    follow_pointer(root, "best", best, sizeof best, NULL);
    for (int i = 0; i < n - keep; i++) {
        char path[PATH_BUF];
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        if (strcmp(path, latest) != 0 && strcmp(path, best) != 0) remove_tree(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}
