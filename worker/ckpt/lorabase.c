#include "worker/ckpt/lorabase.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/le.h"
#include "worker/ckpt/hfio.h"

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];
    le_put64(b, v);
    return fnv1a64(h, b, sizeof b);
}

static uint64_t hash_str(uint64_t h, const char *s) { return fnv1a64(h, s, strlen(s) + 1); }

/* One weights file into the hash: its name, size and CRC-32C. */
static int hash_file(const char *path, uint64_t *h, Err *e)
{
    uint64_t size;
    FILE *f = fopen_input(path, &size, e);
    if (!f) return -1;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    uint32_t crc = 0;
    size_t got;
    while (buf && (got = fread(buf, 1, CHUNK, f)) > 0) crc = crc32c(crc, buf, got);
    int bad = !buf || ferror(f);
    fclose(f);
    free(buf);
    if (bad) return err_set(e, "%s: read error while hashing the LoRA base", path);
    const char *name = strrchr(path, '/');
    *h = hash_u64(hash_u64(hash_str(*h, name ? name + 1 : path), size), crc);
    return 0;
}

/* A checkpoint's param/ records into the hash: their CRCs stand for the bytes. */
static int hash_checkpoint(const char *dir, uint64_t *h, Err *e)
{
    Mpitrain__Manifest *mf;
    if (ckpt_read_manifest(dir, &mf, e)) return -1;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        if (!r->name || strncmp(r->name, "param/", 6)) continue;
        *h = hash_u64(hash_u64(hash_str(*h, r->name), r->elem_begin), r->elem_count);
        *h = hash_u64(*h, r->crc32c);
    }
    mpitrain__manifest__free_unpacked(mf, NULL);
    return 0;
}

int lorabase_hash(const WeightSource *s, uint64_t *hash, Err *e)
{
    uint64_t h = FNV1A64_INIT;
    int rc = 0;
    if (s->kind == WSRC_CKPT) rc = hash_checkpoint(s->path, &h, e);
    else if (s->kind == WSRC_LLMC) rc = hash_file(s->path, &h, e);
    else
        for (int i = 0; !rc && i < s->ix.n_files; i++) rc = hash_file(s->ix.files[i], &h, e);
    *hash = h;
    return rc;
}

int lorabase_ref(const char *given, const WeightSource *s, CkptBaseRef *ref, Err *e)
{
    memset(ref, 0, sizeof *ref);
    char abs[PATH_MAX];
    if (!realpath(given, abs)) return err_set(e, "%s: %s", given, strerror(errno));
    if (strlen(abs) >= sizeof ref->path)
        return err_set(e, "%s: the absolute path is longer than %zu bytes", abs, sizeof ref->path - 1);
    snprintf(ref->path, sizeof ref->path, "%s", abs);
    return lorabase_hash(s, &ref->hash, e);
}

/* The base from the source the checkpoint refers to, unchanged. */
static int load_referenced(const char *dir, const CkptBaseRef *ref, Model *m, int check, Err *e)
{
    WeightSource src;
    Err why = {{0}};
    int rc = wsource_open(ref->path, &src, &why);
    if (rc)
        err_set(e, "checkpoint %s: its LoRA base %s (hash 0x%016llx) cannot be opened: %s; restore "
                   "it there (a run saved with --lora-save-base keeps its own copy)",
                dir, ref->path, (unsigned long long)ref->hash, why.msg);
    uint64_t now = 0;
    if (!rc && check) rc = lorabase_hash(&src, &now, e);
    if (!rc && check && now != ref->hash)
        rc = err_set(e, "checkpoint %s: its LoRA base %s has changed: hash 0x%016llx when the "
                        "checkpoint was made, 0x%016llx now; the adapters were trained on the "
                        "other weights: restore them, or start a new run on these with --init-from",
                     dir, ref->path, (unsigned long long)ref->hash, (unsigned long long)now);
    if (!rc) rc = wsource_load(&src, m, e);
    wsource_close(&src);
    return rc;
}

int lorabase_load(const char *dir, const Mpitrain__Manifest *mf, const CkptMeta *meta, Model *m,
                  int check, Err *e)
{
    if (!m->base.n_tensors) return 0;
    if (ckpt_has_kind(mf, CKPT_BASE_KIND)) return ckpt_load_weights_as(dir, mf, CKPT_BASE_KIND, m, e);
    if (meta->base.path[0]) return load_referenced(dir, &meta->base, m, check, e);
    model_init_weights(m, meta->cfg.seed);
    return 0;
}
