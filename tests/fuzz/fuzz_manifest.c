/* Fuzz target: the checkpoint manifest (worker/ckpt.c).
 *
 * Each input is tried twice in a checkpoint directory that also holds valid
 * data files (rank_*.bin):
 *   1. as the whole manifest.pb file ("MPCKPTv1" | u32 len | u32 crc | pb),
 *      so the magic, length and checksum checks see hostile bytes;
 *   2. as the protobuf Manifest alone, wrapped in a correct header with the
 *      CRC-32C recomputed, so mutated protobuf always reaches the unpacker
 *      and the record checks (names, shapes, tensor-parallel slices, element
 *      ranges, offsets, sizes, data checksums). An input that already starts
 *      with the magic contributes its bytes past the 16-byte header.
 * Both go through ckpt_read_manifest + ckpt_meta_from_pb, then ckpt_load into
 * three small models: the whole GPT with AdamW state, tensor-parallel rank 1
 * of 2 with AdamW state over a ZeRO-like part of its range, and a pipeline
 * stage without the embedding block (no optimizer).
 *
 * The data files come from checkpoints this process writes at start-up with
 * the project's writer: one unsharded (rank_00003.bin) and one saved as two
 * tensor-parallel shards (rank_00001.bin, rank_00002.bin). When
 * MPITRAIN_FUZZ_CKPT names a step directory (a real `mpitrain train` run),
 * its model config is used and its data files are copied in as well. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tests/fuzz/fuzz_util.h"
#include "worker/ckpt/ckpt.h"
#include "base/crc32c.h"
#include "worker/optim/optim.h"

static char g_dir[FUZZ_PATH];
static char g_manifest[FUZZ_PATH];
static Model g_whole, g_tp1, g_stage;
static Optimizer g_whole_opt, g_tp1_opt;
static int g_have_tp1, g_have_stage;
static unsigned char *g_buf;
static size_t g_cap;

/* Copies every regular file of src but the manifest into g_dir. */
static void copy_data_files(const char *src)
{
    DIR *d = opendir(src);
    if (!d) fuzz_die("cannot open %s", src);
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.' || !strcmp(ent->d_name, "manifest.pb")) continue;
        char from[FUZZ_PATH], to[FUZZ_PATH];
        fuzz_join(from, src, ent->d_name);
        fuzz_join(to, g_dir, ent->d_name);
        struct stat st;
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        void *buf;
        size_t len;
        Err e = {{0}};
        if (read_file(from, 1u << 30, &buf, &len, &e)) fuzz_die("%s", e.msg);
        fuzz_write_file(to, buf, len);
        free(buf);
    }
    closedir(d);
}

/* Seeds: the whole manifest file and its protobuf payload. */
static void seed_manifest(const char *step_dir, const char *name)
{
    char p[FUZZ_PATH], n[256];
    fuzz_join(p, step_dir, "manifest.pb");
    snprintf(n, sizeof n, "%s.file", name);
    fuzz_seed_file(n, p);
    void *buf;
    size_t len;
    Err e = {{0}};
    if (read_file(p, 64u << 20, &buf, &len, &e)) fuzz_die("%s", e.msg);
    snprintf(n, sizeof n, "%s.pb", name);
    if (len >= 16) fuzz_seed(n, (unsigned char *)buf + 16, len - 16);
    free(buf);
}

static void fill(float *p, size_t n, float base)
{
    for (size_t i = 0; p && i < n; i++) p[i] = base + (float)(i % 97) * 1e-3f;
}

/* Writes a checkpoint of cfg saved as tp_size tensor-parallel shards, data
 * files rank_<first_index + r>.bin, and copies its data files into g_dir. */
static void make_checkpoint(const ModelConfig *cfg, const OptimConfig *oc, int tp_size,
                            int first_index, const char *name)
{
    Err e = {{0}};
    char root[FUZZ_PATH], tmp[FUZZ_PATH], out[FUZZ_PATH];
    snprintf(root, sizeof root, "%s/gen-%s", g_dir, name);
    uint8_t *recs[8] = {0};
    size_t lens[8] = {0};
    if (ckpt_begin(root, 7, tmp, sizeof tmp, &e)) fuzz_die("%s", e.msg);
    for (int r = 0; r < tp_size; r++) {
        Model m;
        Optimizer o;
        ModelShard sh = {.tp_rank = r, .tp_size = tp_size, .last_block = -1, .slots = 1};
        if (model_init_shard(&m, cfg, &sh, 1, 99, &e)) {
            fuzz_say("fuzz_manifest: no %s seed: %s", name, e.msg);
            return;
        }
        if (optim_init(&o, oc, 0, m.n_params, &e)) fuzz_die("%s", e.msg);
        fill(o.m, m.n_params, 0.5f);
        fill(o.v, m.n_params, 0.25f);
        if (ckpt_write_shard(tmp, first_index + r, &m, &o, (Range){0, m.n_params}, &recs[r],
                             &lens[r], &e))
            fuzz_die("%s", e.msg);
        optim_free(&o);
        model_free(&m);
    }
    static CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = *cfg;
    meta.cfg.optim = *oc;
    meta.step = 7;
    meta.cfg.seed = 99;
    meta.data_pos = 3;
    meta.cfg.global_batch = 2;
    meta.opt_t = 7;
    meta.tp = tp_size;
    snprintf(meta.cfg.data, sizeof meta.cfg.data, "data.tok");
    if (ckpt_finish(root, tmp, &meta, recs, lens, tp_size, out, sizeof out, &e))
        fuzz_die("%s", e.msg);
    for (int r = 0; r < tp_size; r++) free(recs[r]);
    copy_data_files(out);
    seed_manifest(out, name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    Err e = {{0}};
    snprintf(g_dir, sizeof g_dir, "%s/ckpt", fuzz_workdir("manifest"));
    if (mkdir_p(g_dir, &e)) fuzz_die("%s", e.msg);
    fuzz_join(g_manifest, g_dir, "manifest.pb");

    /* the tiny GPT of tests/fuzz/fuzz_test.sh's seed run */
    ModelConfig cfg = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 8, .seq_len = 8,
                       .vocab = 256};
    OptimConfig oc = {OPT_ADAMW, 1e-3f, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.9f, 1.0f, 0, 10};
    const char *real = getenv("MPITRAIN_FUZZ_CKPT");
    if (real && *real) {
        static CkptMeta meta;
        if (ckpt_load_meta(real, &meta, &e)) fuzz_die("MPITRAIN_FUZZ_CKPT: %s", e.msg);
        cfg = meta.cfg.model;
        oc = meta.cfg.optim;
        if (oc.kind != OPT_ADAMW) oc.kind = OPT_ADAMW; /* load moments when present */
        copy_data_files(real);
        seed_manifest(real, "run");
    }
    make_checkpoint(&cfg, &oc, 1, 3, "whole");
    make_checkpoint(&cfg, &oc, 2, 1, "tp2");

    if (model_init(&g_whole, &cfg, 1, 5, &e) ||
        optim_init(&g_whole_opt, &oc, 0, g_whole.n_params, &e))
        fuzz_die("%s", e.msg);
    ModelShard tp1 = {.tp_rank = 1, .tp_size = 2, .last_block = -1, .slots = 1};
    if (!model_init_shard(&g_tp1, &cfg, &tp1, 1, 5, &e)) {
        g_have_tp1 = 1;
        if (optim_init(&g_tp1_opt, &oc, g_tp1.n_params / 3, g_tp1.n_params, &e))
            fuzz_die("%s", e.msg);
    }
    ModelShard stage = {.tp_size = 1, .first_block = 1, .last_block = -1, .slots = 1};
    if (!model_init_shard(&g_stage, &cfg, &stage, 1, 5, &e)) g_have_stage = 1;
    return 0;
}

static void read_all(void)
{
    Err e = {{0}};
    Mpitrain__Manifest *mf = NULL;
    int rc = ckpt_read_manifest(g_dir, &mf, &e);
    fuzz_verbose("ckpt_read_manifest", rc, &e);
    if (rc == 0) {
        static CkptMeta meta;
        rc = ckpt_meta_from_pb(mf, &meta, &e);
        fuzz_verbose("ckpt_meta_from_pb", rc, &e);
        fuzz_touch(&meta, sizeof meta);
        mpitrain__manifest__free_unpacked(mf, NULL);
    } else {
        return; /* ckpt_load reads the same manifest and would fail the same way */
    }
    rc = ckpt_load(g_dir, &g_whole, &g_whole_opt, &e);
    fuzz_verbose("ckpt_load whole model", rc, &e);
    if (g_have_tp1) {
        rc = ckpt_load(g_dir, &g_tp1, &g_tp1_opt, &e);
        fuzz_verbose("ckpt_load tp rank 1 of 2", rc, &e);
    }
    if (g_have_stage) {
        rc = ckpt_load(g_dir, &g_stage, NULL, &e);
        fuzz_verbose("ckpt_load stage 1..", rc, &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1: the bytes are the whole file */
    fuzz_write_file(g_manifest, data, size);
    read_all();

    /* 2: the bytes are the protobuf, behind a header that checks out */
    const uint8_t *pb = data;
    size_t n = size;
    if (size >= 16 && !memcmp(data, CKPT_MAGIC, 8)) {
        pb = data + 16;
        n = size - 16;
    }
    if (16 + n > g_cap) {
        g_cap = 16 + n;
        free(g_buf);
        if (!(g_buf = malloc(g_cap))) fuzz_die("out of memory");
    }
    uint32_t len32 = (uint32_t)n, crc = crc32c(0, pb, n);
    memcpy(g_buf, CKPT_MAGIC, 8);
    memcpy(g_buf + 8, &len32, 4);
    memcpy(g_buf + 12, &crc, 4);
    if (n) memcpy(g_buf + 16, pb, n);
    fuzz_write_file(g_manifest, g_buf, 16 + n);
    read_all();
    return 0;
}
