/* Checkpoints (worker/ckpt.c) and the safetensors export (worker/safetensors.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/model.h"
#include "tests/unit/testutil.h"
#include "worker/ckpt/ckpt.h"
#include "base/fileio.h"
#include "worker/optim/optim.h"
#include "worker/ckpt/safetensors.h"
#include "worker/ckpt/hfio.h"
#include "worker/ckpt/lorabase.h"
#include "worker/ckpt/peft.h"

#define PYTHON "/usr/bin/python3"

static char g_dir[4096];

static const char *tmp(const char *test)
{
    const char *d = test_tmpdir(test);
    cr_assert_not_null(d);
    snprintf(g_dir, sizeof g_dir, "%s", d);
    return g_dir;
}

static const char *path_in(const char *dir, const char *rel)
{
    static char p[4][4400];
    static int which;
    which = (which + 1) % 4;
    snprintf(p[which], sizeof p[which], "%s/%s", dir, rel);
    return p[which];
}

static ModelConfig tiny_cfg(int n_embd)
{
    return (ModelConfig){.kind = MODEL_GPT, .n_layer = 2, .n_head = 2, .n_embd = n_embd,
                         .seq_len = 8, .vocab = 32};
}

static OptimConfig adamw_cfg(void)
{
    return (OptimConfig){OPT_ADAMW, 1e-3f, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.9f, 1.0f, 5, 100};
}

/* A tiny GPT and a whole-model AdamW state with recognizable contents
 * (including bit patterns a float round trip through text would lose). */
static void make_state(Model *m, Optimizer *o, int n_embd, uint64_t seed)
{
    Err e = {""};
    ModelConfig c = tiny_cfg(n_embd);
    cr_assert_eq(model_init(m, &c, 1, seed, &e), 0, "%s", e.msg);
    OptimConfig oc = adamw_cfg();
    cr_assert_eq(optim_init(o, &oc, 0, m->n_params, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < m->n_params; i++) {
        o->m[i] = (float)((double)(i % 97) * 1e-3 * (seed % 2 ? -1 : 1));
        o->v[i] = (float)((double)(i % 89) * 1e-6 + (double)seed);
    }
    o->t = 7;
    m->params[0] = -0.0f;
    m->params[1] = 1e-40f; /* subnormal */
    /* the largest float (a NaN would be refused at load: non-finite) */
    uint32_t max_bits = 0x7f7fffffu;
    memcpy(&m->params[2], &max_bits, 4);
}

static CkptMeta make_meta(const Model *m, int64_t step)
{
    CkptMeta meta;
    ckpt_meta_init(&meta);
    meta.cfg.model = m->cfg;
    meta.cfg.optim = adamw_cfg();
    meta.cfg.steps = meta.cfg.optim.total_steps;
    meta.step = step;
    meta.cfg.seed = 1234567890123ull;
    meta.data_pos = (uint64_t)step * 3;
    meta.cfg.global_batch = 4;
    meta.opt_t = 7;
    snprintf(meta.cfg.data, sizeof meta.cfg.data, "data/x.tok");
    return meta;
}

/* Saves step `step` of the tiny state under <dir>/ckpt; returns the step dir. */
static const char *save_step(const char *dir, const Model *m, const Optimizer *o, int64_t step)
{
    static char out[4400];
    Err e = {""};
    CkptMeta meta = make_meta(m, step);
    cr_assert_eq(ckpt_save(path_in(dir, "ckpt"), &meta, m, o, out, sizeof out, &e), 0, "%s", e.msg);
    return out;
}

static const Mpitrain__TensorRecord *find_record(const Mpitrain__Manifest *mf, const char *name)
{
    for (size_t i = 0; i < mf->n_tensors; i++)
        if (!strcmp(mf->tensors[i]->name, name)) return mf->tensors[i];
    return NULL;
}

static void flip_byte(const char *path, long offset)
{
    size_t len;
    unsigned char *buf = test_read_file(path, &len);
    cr_assert_not_null(buf, "cannot read %s", path);
    cr_assert_lt((size_t)offset, len);
    buf[offset] ^= 0x5a;
    cr_assert_eq(test_write_file(path, buf, len), 0);
    free(buf);
}

static void truncate_to(const char *path, size_t keep)
{
    size_t len;
    unsigned char *buf = test_read_file(path, &len);
    cr_assert_not_null(buf);
    cr_assert_lt(keep, len);
    cr_assert_eq(test_write_file(path, buf, keep), 0);
    free(buf);
}

/* Loading `dir` into a fresh tiny model must fail with all the `want`s in
 * the message. */
static void expect_load_error(const char *dir, int n_embd, const char *want1, const char *want2)
{
    Model m;
    Optimizer o;
    make_state(&m, &o, n_embd, 99);
    Err e = {""};
    cr_assert_eq(ckpt_load(dir, &m, &o, &e), -1, "loaded a broken checkpoint %s", dir);
    cr_assert(strstr(e.msg, want1), "message lacks '%s': %s", want1, e.msg);
    if (want2) cr_assert(strstr(e.msg, want2), "message lacks '%s': %s", want2, e.msg);
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, roundtrip_bit_exact)
{
    const char *dir = tmp("ckpt_rt");
    Model a, b;
    Optimizer oa, ob;
    make_state(&a, &oa, 8, 1);
    const char *step = save_step(dir, &a, &oa, 42);
    make_state(&b, &ob, 8, 2);
    cr_assert_neq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);

    Err e = {""};
    char resolved[4400];
    /* the run directory resolves through ckpt/latest */
    cr_assert_eq(ckpt_resolve(dir, resolved, sizeof resolved, &e), 0, "%s", e.msg);
    cr_assert_str_eq(resolved, step);
    cr_assert_eq(ckpt_load(resolved, &b, &ob, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0, "params differ");
    cr_assert_eq(memcmp(oa.m, ob.m, a.n_params * sizeof(float)), 0, "adam m differs");
    cr_assert_eq(memcmp(oa.v, ob.v, a.n_params * sizeof(float)), 0, "adam v differs");

    static CkptMeta want, got;
    want = make_meta(&a, 42);
    cr_assert_eq(ckpt_load_meta(step, &got, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(&got.cfg.model, &want.cfg.model, sizeof got.cfg.model), 0);
    cr_assert_eq(got.cfg.optim.kind, OPT_ADAMW);
    cr_assert_eq(got.cfg.optim.lr, want.cfg.optim.lr);
    cr_assert_eq(got.cfg.optim.beta2, want.cfg.optim.beta2);
    cr_assert_eq(got.cfg.optim.warmup, want.cfg.optim.warmup);
    cr_assert_eq(got.cfg.optim.total_steps, want.cfg.optim.total_steps);
    cr_assert_eq(got.step, 42);
    cr_assert_eq(got.cfg.seed, want.cfg.seed);
    cr_assert_eq(got.data_pos, want.data_pos);
    cr_assert_eq(got.cfg.global_batch, 4);
    cr_assert_eq(got.opt_t, 7);
    cr_assert_eq(got.dp, 1);
    cr_assert_eq(got.tp, 1);
    cr_assert_eq(got.pp, 1);
    cr_assert_str_eq(got.cfg.data, "data/x.tok");
    optim_free(&oa);
    optim_free(&ob);
    model_free(&a);
    model_free(&b);
}

/* The manifest carries every setting by name: each reads back bit for bit
 * (floats, paths, durations, choices), and a bad value is named. */
Test(ckpt, manifest_settings_round_trip_by_name)
{
    static CkptMeta meta, back;
    ckpt_meta_init(&meta);
    meta.cfg.optim.kind = OPT_ZO;
    meta.cfg.optim.lr = 3.0000001e-4f;
    meta.cfg.zo_scale = 0.012345679f; /* the scale a warm-up chose */
    meta.cfg.time_budget_s = 5400.25;
    meta.cfg.seed = 18446744073709551615ull;
    meta.cfg.model.positions = 1024;
    snprintf(meta.cfg.data, sizeof meta.cfg.data, "data/a b.tok");
    meta.step = 9;
    CkptManifestPB pb;
    Err e = {""};
    cr_assert_eq(ckpt_meta_to_pb(&meta, &pb, &e), 0, "%s", e.msg);
    cr_assert_gt(pb.mf.n_settings, 40);
    cr_assert_null(pb.mf.model, "no settings fields one by one any more");
    cr_assert_eq(ckpt_meta_from_pb(&pb.mf, &back, &e), 0, "%s", e.msg);
    for (const OptSpec *s = train_config_table(NULL); s->name; s++) {
        char a[PATH_BUF], b[PATH_BUF];
        opts_format(s, &meta.cfg, a, sizeof a);
        opts_format(s, &back.cfg, b, sizeof b);
        cr_assert_str_eq(a, b, "setting %s", s->name);
    }
    cr_assert_eq(back.cfg.optim.total_steps, back.cfg.steps);
    cr_assert_eq(back.step, 9);
    for (size_t i = 0; i < pb.mf.n_settings; i++)
        if (!strcmp(pb.mf.settings[i]->key, "layers")) pb.mf.settings[i]->value = "0";
    cr_assert_eq(ckpt_meta_from_pb(&pb.mf, &back, &e), -1);
    cr_assert(strstr(e.msg, "setting layers"), "%s", e.msg);
    ckpt_manifest_pb_free(&pb);
}

Test(ckpt, params_only_checkpoint_loads_without_optimizer)
{
    const char *dir = tmp("ckpt_params_only");
    Model a, b;
    Optimizer oa, ob;
    make_state(&a, &oa, 8, 1);
    const char *step = save_step(dir, &a, NULL, 3);
    make_state(&b, &ob, 8, 2);
    Err e = {""};
    cr_assert_eq(ckpt_load(step, &b, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    optim_free(&oa);
    optim_free(&ob);
    model_free(&a);
    model_free(&b);
}

/* Every element of b's tensors (any TP slice) is bit-equal to a's (whole). */
static void expect_same_weights(const Model *a, const Model *b)
{
    for (int k = 0; k < b->n_tensors; k++) {
        const ParamInfo *t = &b->tensors[k], *w = model_find_tensor(a, t->name);
        cr_assert_not_null(w, "%s", t->name);
        for (size_t i = 0; i < t->numel; i++) {
            size_t g = model_global_index(b, t, i) - t->global_offset;
            cr_assert_eq(memcmp(&b->params[t->offset + i], &a->params[w->offset + g], 4), 0,
                         "%s element %zu differs", t->name, i);
        }
    }
}

/* A weights-only load (no optimizer: eval, sample, --init-from) reads the
 * param/ records alone. The data file is cut where the moments begin, so a
 * load that so much as read one opt_m/opt_v byte would fail; with the
 * optimizer the same load names the cut. Both load paths: the saved
 * slicing (read in place) and a tensor-parallel half (assembled). */
Test(ckpt, weights_only_load_reads_no_moments)
{
    const char *dir = tmp("ckpt_weights_only");
    Model a, b;
    Optimizer oa, ob;
    make_state(&a, &oa, 8, 1);
    const char *step = save_step(dir, &a, &oa, 2);
    Mpitrain__Manifest *mf;
    Err e = {""};
    cr_assert_eq(ckpt_read_manifest(step, &mf, &e), 0, "%s", e.msg);
    uint64_t cut = UINT64_MAX, params_end = 0;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const Mpitrain__TensorRecord *r = mf->tensors[i];
        cr_assert_str_eq(r->file, "rank_00000.bin");
        if (!strncmp(r->name, "param/", 6)) {
            if (r->offset + r->nbytes > params_end) params_end = r->offset + r->nbytes;
        } else if (r->offset < cut) {
            cut = r->offset;
        }
    }
    mpitrain__manifest__free_unpacked(mf, NULL);
    cr_assert_eq(cut, params_end, "the moments follow the weights in the data file");
    truncate_to(path_in(step, "rank_00000.bin"), (size_t)cut);

    make_state(&b, &ob, 8, 2);
    cr_assert_eq(ckpt_load(step, &b, NULL, &e), 0, "weights-only load: %s", e.msg);
    expect_same_weights(&a, &b);
    cr_assert_eq(ckpt_load(step, &b, &ob, &e), -1, "a load with the optimizer read cut-off moments");
    cr_assert(strstr(e.msg, "opt_m/") && strstr(e.msg, "truncated"), "%s", e.msg);
    optim_free(&ob);
    model_free(&b);

    ModelConfig c = tiny_cfg(8);
    ModelShard half = {.tp_rank = 1, .tp_size = 2, .last_block = -1, .slots = 1, .forward_only = 1};
    cr_assert_eq(model_build_shard(&b, &c, &half, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load(step, &b, NULL, &e), 0, "weights-only load into a TP half: %s", e.msg);
    expect_same_weights(&a, &b);
    model_free(&b);
    optim_free(&oa);
    model_free(&a);
}

Test(ckpt, latest_names_the_newest)
{
    const char *dir = tmp("ckpt_latest");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    for (int s = 1; s <= 3; s++) {
        m.params[10] = (float)s;
        save_step(dir, &m, &o, s * 10);
    }
    size_t len;
    char *latest = test_read_file(path_in(dir, "ckpt/latest"), &len);
    cr_assert_not_null(latest);
    cr_assert_eq(len, strlen("step_00000030\n"));
    cr_assert_eq(memcmp(latest, "step_00000030\n", len), 0);
    free(latest);

    Err e = {""};
    char resolved[4400];
    cr_assert_eq(ckpt_resolve(path_in(dir, "ckpt"), resolved, sizeof resolved, &e), 0, "%s", e.msg);
    cr_assert_str_eq(resolved, path_in(dir, "ckpt/step_00000030"));
    /* a step directory resolves to itself */
    cr_assert_eq(ckpt_resolve(path_in(dir, "ckpt/step_00000010"), resolved, sizeof resolved, &e), 0);
    cr_assert_str_eq(resolved, path_in(dir, "ckpt/step_00000010"));
    CkptMeta meta;
    cr_assert_eq(ckpt_load_meta(path_in(dir, "ckpt"), &meta, &e), -1, "ckpt root has no manifest");
    cr_assert_eq(ckpt_resolve(path_in(dir, "nothing"), resolved, sizeof resolved, &e), -1);
    cr_assert(strstr(e.msg, "no checkpoint"), "%s", e.msg);
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, prune_keeps_newest_k)
{
    const char *dir = tmp("ckpt_prune");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    for (int s = 1; s <= 5; s++) save_step(dir, &m, &o, s);
    Err e = {""};
    cr_assert_eq(ckpt_prune(path_in(dir, "ckpt"), 2, &e), 0, "%s", e.msg);
    struct stat st;
    for (int s = 1; s <= 5; s++) {
        char name[64];
        snprintf(name, sizeof name, "ckpt/step_%08d", s);
        int exists = stat(path_in(dir, name), &st) == 0;
        cr_assert_eq(exists, s >= 4, "%s: exists=%d", name, exists);
    }
    char resolved[4400];
    cr_assert_eq(ckpt_resolve(dir, resolved, sizeof resolved, &e), 0, "%s", e.msg);
    cr_assert_str_eq(resolved, path_in(dir, "ckpt/step_00000005"));
    /* keep 0 = keep all */
    cr_assert_eq(ckpt_prune(path_in(dir, "ckpt"), 0, &e), 0);
    cr_assert_eq(stat(path_in(dir, "ckpt/step_00000004"), &st), 0);
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, flipped_data_byte_names_tensor_and_checksum)
{
    const char *dir = tmp("ckpt_flip_data");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    Mpitrain__Manifest *mf;
    Err e = {""};
    cr_assert_eq(ckpt_read_manifest(step, &mf, &e), 0, "%s", e.msg);
    const Mpitrain__TensorRecord *r = find_record(mf, "param/h.1.attn.qkv.w");
    cr_assert_not_null(r);
    long off = (long)r->offset + 5;
    mpitrain__manifest__free_unpacked(mf, NULL);
    flip_byte(path_in(step, "rank_00000.bin"), off);
    expect_load_error(step, 8, "h.1.attn.qkv.w", "checksum");
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, flipped_optimizer_byte_is_caught)
{
    const char *dir = tmp("ckpt_flip_opt");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    Mpitrain__Manifest *mf;
    Err e = {""};
    cr_assert_eq(ckpt_read_manifest(step, &mf, &e), 0, "%s", e.msg);
    const Mpitrain__TensorRecord *r = find_record(mf, "opt_v/lnf.w");
    cr_assert_not_null(r);
    long off = (long)r->offset;
    mpitrain__manifest__free_unpacked(mf, NULL);
    flip_byte(path_in(step, "rank_00000.bin"), off);
    expect_load_error(step, 8, "opt_v/lnf.w", "checksum");
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, truncated_data_file)
{
    const char *dir = tmp("ckpt_trunc_data");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    /* cut inside the parameters: some param record runs past the end */
    truncate_to(path_in(step, "rank_00000.bin"), m.n_params * sizeof(float) / 2);
    expect_load_error(step, 8, "truncated", "rank_00000.bin");
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, flipped_manifest_byte)
{
    const char *dir = tmp("ckpt_flip_manifest");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    flip_byte(path_in(step, "manifest.pb"), 40);
    expect_load_error(step, 8, "checksum", "manifest.pb");
    CkptMeta meta;
    Err e = {""};
    cr_assert_eq(ckpt_load_meta(step, &meta, &e), -1);
    cr_assert(strstr(e.msg, "checksum"), "%s", e.msg);
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, wrong_manifest_magic)
{
    const char *dir = tmp("ckpt_magic");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    flip_byte(path_in(step, "manifest.pb"), 2);
    expect_load_error(step, 8, "magic", "manifest.pb");
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, truncated_manifest)
{
    const char *dir = tmp("ckpt_trunc_manifest");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    size_t len;
    free(test_read_file(path_in(step, "manifest.pb"), &len));
    truncate_to(path_in(step, "manifest.pb"), len - 7);
    expect_load_error(step, 8, "manifest.pb", "truncated");
    /* shorter than the 16-byte header */
    truncate_to(path_in(step, "manifest.pb"), 10);
    expect_load_error(step, 8, "manifest.pb", NULL);
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, model_mismatch_names_tensor_and_shape)
{
    const char *dir = tmp("ckpt_mismatch");
    Model m;
    Optimizer o;
    make_state(&m, &o, 8, 1);
    const char *step = save_step(dir, &m, &o, 1);
    expect_load_error(step, 16, "param/wte", "shape");
    optim_free(&o);
    model_free(&m);
}

Test(ckpt, stale_tmp_directories_do_not_block_a_save)
{
    const char *dir = tmp("ckpt_stale_tmp");
    Model a, b;
    Optimizer oa, ob;
    make_state(&a, &oa, 8, 1);
    /* leftovers of crashed saves: one from another process, one that
     * collides with this process's own temporary name */
    char stale[2][256];
    snprintf(stale[0], sizeof stale[0], "ckpt/.tmp.step_00000005.%d", 999999);
    snprintf(stale[1], sizeof stale[1], "ckpt/.tmp.step_00000005.%d", (int)getpid());
    Err e = {""};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mkdir_p(path_in(dir, stale[i]), &e), 0, "%s", e.msg);
        char f[sizeof stale + 32];
        snprintf(f, sizeof f, "%s/rank_00000.bin", stale[i]);
        cr_assert_eq(test_write_file(path_in(dir, f), "junk", 4), 0);
        snprintf(f, sizeof f, "%s/manifest.pb", stale[i]);
        cr_assert_eq(test_write_file(path_in(dir, f), "MPCKPTv1junkjunkjunk", 20), 0);
    }
    cr_assert_eq(test_write_file(path_in(dir, "ckpt/latest.tmp.12345"), "step_", 5), 0);
    const char *step = save_step(dir, &a, &oa, 5);
    make_state(&b, &ob, 8, 2);
    char resolved[4400];
    cr_assert_eq(ckpt_resolve(dir, resolved, sizeof resolved, &e), 0, "%s", e.msg);
    cr_assert_str_eq(resolved, step);
    cr_assert_eq(ckpt_load(resolved, &b, &ob, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    /* saving the same step again replaces it */
    a.params[5] = 3.5f;
    save_step(dir, &a, &oa, 5);
    cr_assert_eq(ckpt_load(resolved, &b, &ob, &e), 0, "%s", e.msg);
    cr_assert_eq(b.params[5], 3.5f);
    /* pruning ignores the temporaries */
    cr_assert_eq(ckpt_prune(path_in(dir, "ckpt"), 1, &e), 0);
    cr_assert_eq(ckpt_resolve(dir, resolved, sizeof resolved, &e), 0, "%s", e.msg);
    optim_free(&oa);
    optim_free(&ob);
    model_free(&a);
    model_free(&b);
}

/* ---- safetensors --------------------------------------------------------- */

static const char *const META_KV[] = {"mpitrain_model", "gpt", "n_layer", "2", "n_embd", "8"};

static void write_tiny_safetensors(const char *file, Model *m)
{
    Err e = {""};
    ModelConfig c = tiny_cfg(8);
    cr_assert_eq(model_init(m, &c, 1, 7, &e), 0, "%s", e.msg);
    cr_assert_eq(safetensors_write(file, m, META_KV, 3, &e), 0, "%s", e.msg);
}

/* Runs an inline Python script saved into dir; returns its exit status. */
static int run_python(const char *dir, const char *name, const char *script, const char *args)
{
    const char *py = path_in(dir, name);
    cr_assert_eq(test_write_file(py, script, strlen(script)), 0);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s '%s' %s", PYTHON, py, args);
    return system(cmd);
}

Test(safetensors, header_layout)
{
    const char *dir = tmp("st_header");
    Model m;
    const char *file = path_in(dir, "model.safetensors");
    write_tiny_safetensors(file, &m);
    char *json;
    uint64_t start;
    Err e = {""};
    cr_assert_eq(safetensors_read_header(file, &json, &start, &e), 0, "%s", e.msg);
    cr_assert_eq(start % 8, 0);
    cr_assert_eq(strlen(json), start - 8);
    cr_assert(strstr(json, "\"wte\":{\"dtype\":\"F32\",\"shape\":[32,8],\"data_offsets\":[0,1024]}"),
              "%s", json);
    cr_assert(strstr(json, "\"lnf.b\":{\"dtype\":\"F32\",\"shape\":[8],"), "%s", json);
    cr_assert(strstr(json, "\"__metadata__\":{\"format\":\"pt\",\"mpitrain_model\":\"gpt\""), "%s",
              json);
    size_t len;
    unsigned char *raw = test_read_file(file, &len);
    cr_assert_eq(len, start + m.n_params * sizeof(float));
    cr_assert_eq(memcmp(raw + start, m.params, m.n_params * sizeof(float)), 0);
    free(raw);
    free(json);
    /* no temporaries left behind */
    char cmd[4600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s' | grep tmp)\"", dir);
    cr_assert_eq(system(cmd), 0);
    model_free(&m);
}

Test(safetensors, read_header_checks_length)
{
    const char *dir = tmp("st_bad");
    unsigned char buf[24] = {0};
    buf[0] = 200; /* says 200 bytes of header, file has 16 */
    memcpy(buf + 8, "{\"a\":1}         ", 16);
    const char *file = path_in(dir, "bad.safetensors");
    cr_assert_eq(test_write_file(file, buf, sizeof buf), 0);
    char *json;
    uint64_t start;
    Err e = {""};
    cr_assert_eq(safetensors_read_header(file, &json, &start, &e), -1);
    cr_assert(strstr(e.msg, "exceeds"), "%s", e.msg);
    cr_assert(strstr(e.msg, file), "%s", e.msg);
    cr_assert_eq(test_write_file(file, buf, 5), 0);
    cr_assert_eq(safetensors_read_header(file, &json, &start, &e), -1);
    buf[0] = 16;
    cr_assert_eq(test_write_file(file, buf, sizeof buf), 0);
    cr_assert_eq(safetensors_read_header(file, &json, &start, &e), 0, "%s", e.msg);
    cr_assert_eq(start, 24);
    free(json);
}

Test(safetensors, write_failure_leaves_no_file)
{
    const char *dir = tmp("st_fail");
    Model m;
    Err e = {""};
    ModelConfig c = tiny_cfg(8);
    cr_assert_eq(model_init(&m, &c, 1, 7, &e), 0, "%s", e.msg);
    const char *file = path_in(dir, "missing/sub/model.safetensors");
    cr_assert_eq(safetensors_write(file, &m, NULL, 0, &e), -1);
    cr_assert(strstr(e.msg, "missing/sub"), "%s", e.msg);
    struct stat st;
    cr_assert_neq(stat(file, &st), 0);
    model_free(&m);
}

/* Parses the file with nothing but json + struct and prints one tensor's
 * values, one per line with 9 significant digits (exact for f32). */
static const char PY_PARSE[] =
    "import json, struct, sys\n"
    "path, name, out = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "b = open(path, 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "assert 8 + n <= len(b) and n % 8 == 0, 'header length'\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "meta = h.pop('__metadata__')\n"
    "assert meta['format'] == 'pt' and meta['mpitrain_model'] == 'gpt', meta\n"
    "assert meta['n_layer'] == '2' and meta['n_embd'] == '8', meta\n"
    "spans = sorted(tuple(v['data_offsets']) for v in h.values())\n"
    "pos = 0\n"
    "for s, e in spans:\n"
    "    assert s == pos, ('hole or overlap', s, pos)\n"
    "    pos = e\n"
    "assert 8 + n + pos == len(b), 'data size'\n"
    "t = h[name]\n"
    "assert t['dtype'] == 'F32', t\n"
    "s, e = t['data_offsets']\n"
    "count = 1\n"
    "for d in t['shape']:\n"
    "    count *= d\n"
    "assert e - s == 4 * count, t\n"
    "vals = struct.unpack('<%df' % count, b[8 + n + s:8 + n + e])\n"
    "with open(out, 'w') as f:\n"
    "    f.write(' '.join(str(d) for d in t['shape']) + '\\n')\n"
    "    for v in vals:\n"
    "        f.write('%.9g\\n' % v)\n";

Test(safetensors, python_json_struct_reads_values)
{
    const char *dir = tmp("st_python");
    Model m;
    const char *file = path_in(dir, "model.safetensors");
    write_tiny_safetensors(file, &m);
    const char *out = path_in(dir, "values.txt");
    char args[9000];
    snprintf(args, sizeof args, "'%s' h.1.mlp.fc.w '%s'", file, out);
    cr_assert_eq(run_python(dir, "parse.py", PY_PARSE, args), 0, "python parse failed");

    const ParamInfo *t = model_find_tensor(&m, "h.1.mlp.fc.w");
    cr_assert_not_null(t);
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    int d0, d1;
    cr_assert_eq(fscanf(f, "%d %d", &d0, &d1), 2);
    cr_assert_eq(d0, t->shape[0]);
    cr_assert_eq(d1, t->shape[1]);
    for (size_t i = 0; i < t->numel; i++) {
        char word[64];
        cr_assert_eq(fscanf(f, "%63s", word), 1, "value %zu missing", i);
        float v = strtof(word, NULL);
        cr_assert_eq(memcmp(&v, &m.params[t->offset + i], 4), 0, "element %zu: %s vs %.9g", i,
                     word, m.params[t->offset + i]);
    }
    char extra[64];
    cr_assert_eq(fscanf(f, "%63s", extra), EOF);
    fclose(f);
    model_free(&m);
}

/* torch.frombuffer on the bytes at data_offsets must give exactly the floats
 * the model holds (written raw by C into ref.bin). */
static const char PY_TORCH[] =
    "import json, struct, sys\n"
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "path, name, ref = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "b = open(path, 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "h = json.loads(b[8:8 + n])\n"
    "t = h[name]\n"
    "s, e = t['data_offsets']\n"
    "x = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=torch.float32).reshape(t['shape'])\n"
    "r = torch.frombuffer(bytearray(open(ref, 'rb').read()), dtype=torch.float32).reshape(t['shape'])\n"
    "ok = torch.equal(x.view(torch.int32), r.view(torch.int32))\n"
    "print('torch check', name, tuple(x.shape), 'ok' if ok else 'MISMATCH')\n"
    "sys.exit(0 if ok else 1)\n";

Test(safetensors, torch_frombuffer_matches)
{
    const char *dir = tmp("st_torch");
    Model m;
    const char *file = path_in(dir, "model.safetensors");
    write_tiny_safetensors(file, &m);
    const ParamInfo *t = model_find_tensor(&m, "h.0.attn.qkv.w");
    cr_assert_not_null(t);
    const char *ref = path_in(dir, "ref.bin");
    cr_assert_eq(test_write_file(ref, m.params + t->offset, t->numel * sizeof(float)), 0);
    char args[9000];
    snprintf(args, sizeof args, "'%s' h.0.attn.qkv.w '%s'", file, ref);
    cr_assert_eq(run_python(dir, "torch_check.py", PY_TORCH, args), 0,
                 "torch.frombuffer check failed (is python3-torch installed?)");
    model_free(&m);
}

/* ---- issue 24: a LoRA run's checkpoints and PEFT's format ------------------ */

static ModelConfig lora_cfg(void)
{
    ModelConfig c = tiny_cfg(8);
    c.lora_rank = 2;
    c.lora_alpha = 6;
    snprintf(c.lora_targets, sizeof c.lora_targets, "all-linear");
    return c;
}

/* A whole LoRA model, no init; its adapters (A and B) set to distinct values. */
static void build_lora(Model *m, uint64_t seed)
{
    Err e = {""};
    ModelConfig c = lora_cfg();
    ModelShard whole = model_shard_whole(0);
    cr_assert_eq(model_build_shard(m, &c, &whole, 1, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)((double)(i % 53) - 26) * 1e-3f * (float)seed;
}

static int same_table(const WeightTable *a, const Model *plain)
{
    for (int k = 0; k < a->n_tensors; k++) {
        const ParamInfo *t = &a->tensors[k], *p = model_find_tensor(plain, t->name);
        if (!p || p->numel != t->numel ||
            memcmp(a->params + t->offset, plain->params + p->offset, t->numel * sizeof(float)))
            return 0;
    }
    return 1;
}

Test(ckpt_lora, a_plain_checkpoint_fills_the_base_and_a_lora_one_holds_only_adapters)
{
    const char *dir = tmp("ckpt_lora_records");
    Model plain, l, back;
    Optimizer o;
    make_state(&plain, &o, 8, 3);
    const char *base = save_step(dir, &plain, NULL, 0);
    char base_dir[4400];
    snprintf(base_dir, sizeof base_dir, "%s", base);
    build_lora(&l, 1);
    Err e = {""};
    Mpitrain__Manifest *mf;
    cr_assert_eq(ckpt_read_manifest(base_dir, &mf, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load_weights_as(base_dir, mf, "param", &l, &e), 0, "%s", e.msg);
    mpitrain__manifest__free_unpacked(mf, NULL);
    WeightTable w = model_weight_table(&l);
    cr_assert(w.base && same_table(&w, &plain), "the base is the plain checkpoint's weights");

    /* saved by reference: the records are the adapters' alone */
    CkptMeta meta = make_meta(&l, 4);
    cr_assert_lt(strlen(base_dir), sizeof meta.base.path);
    memcpy(meta.base.path, base_dir, strlen(base_dir) + 1);
    char out[4400];
    cr_assert_eq(ckpt_save(path_in(dir, "lora"), &meta, &l, NULL, out, sizeof out, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_read_manifest(out, &mf, &e), 0, "%s", e.msg);
    cr_assert_eq(mf->n_tensors, (size_t)l.n_tensors);
    for (size_t i = 0; i < mf->n_tensors; i++)
        cr_assert(strstr(mf->tensors[i]->name, ".lora_"), "record %s is no adapter", mf->tensors[i]->name);
    cr_assert_str_eq(mf->lora_base_path, base_dir);
    mpitrain__manifest__free_unpacked(mf, NULL);

    /* --lora-save-base: the base goes along and loads back with the adapters */
    meta.base.share = (Range){0, l.base.n_params};
    cr_assert_eq(ckpt_save(path_in(dir, "alone"), &meta, &l, NULL, out, sizeof out, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_read_manifest(out, &mf, &e), 0, "%s", e.msg);
    cr_assert(ckpt_has_kind(mf, CKPT_BASE_KIND));
    build_lora(&back, 2);
    CkptMeta got;
    cr_assert_eq(ckpt_meta_from_pb(mf, &got, &e), 0, "%s", e.msg);
    cr_assert_eq(lorabase_load(out, mf, &got, &back, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load_from(out, mf, &back, NULL, &e), 0, "%s", e.msg);
    mpitrain__manifest__free_unpacked(mf, NULL);
    cr_assert_eq(memcmp(back.base.params, l.base.params, l.base.n_params * sizeof(float)), 0);
    cr_assert_eq(memcmp(back.params, l.params, l.n_params * sizeof(float)), 0);
    model_free(&back);
    model_free(&l);
    model_free(&plain);
    optim_free(&o);
}

Test(ckpt_lora, a_referenced_base_that_changed_is_refused_with_both_hashes)
{
    const char *dir = tmp("ckpt_lora_hash");
    Model plain, l;
    Optimizer o;
    make_state(&plain, &o, 8, 3);
    char base_dir[4400], out[4400];
    snprintf(base_dir, sizeof base_dir, "%s", save_step(dir, &plain, NULL, 0));
    Err e = {""};
    WeightSource src;
    cr_assert_eq(wsource_open(base_dir, &src, &e), 0, "%s", e.msg);
    CkptMeta meta;
    build_lora(&l, 1);
    meta = make_meta(&l, 1);
    cr_assert_eq(lorabase_ref(base_dir, &src, &meta.base, &e), 0, "%s", e.msg);
    wsource_close(&src);
    cr_assert_eq(ckpt_save(path_in(dir, "lora"), &meta, &l, NULL, out, sizeof out, &e), 0, "%s", e.msg);
    Mpitrain__Manifest *mf;
    cr_assert_eq(ckpt_read_manifest(out, &mf, &e), 0, "%s", e.msg);
    CkptMeta got;
    cr_assert_eq(ckpt_meta_from_pb(mf, &got, &e), 0, "%s", e.msg);
    cr_assert_eq(lorabase_load(out, mf, &got, &l, 1, &e), 0, "unchanged: %s", e.msg);
    /* the base is overwritten by other weights at the same path */
    plain.params[5] += 1.0f;
    save_step(dir, &plain, NULL, 0);
    cr_assert_eq(lorabase_load(out, mf, &got, &l, 1, &e), -1);
    char want[64];
    snprintf(want, sizeof want, "0x%016llx", (unsigned long long)got.base.hash);
    cr_assert(strstr(e.msg, "has changed") && strstr(e.msg, want) && strstr(e.msg, got.base.path), "%s", e.msg);
    mpitrain__manifest__free_unpacked(mf, NULL);
    model_free(&l);
    model_free(&plain);
    optim_free(&o);
}

Test(ckpt_lora, peft_export_and_load_round_trip_byte_for_byte)
{
    const char *dir = tmp("ckpt_lora_peft");
    Model a, b;
    build_lora(&a, 1);
    build_lora(&b, 2);
    Err e = {""};
    char one[4096], two[4096];
    snprintf(one, sizeof one, "%s", path_in(dir, "one"));
    snprintf(two, sizeof two, "%s", path_in(dir, "two"));
    cr_assert_eq(peft_export(&a, "/base", "F32", one, &e), 0, "%s", e.msg);
    cr_assert_eq(peft_load_adapters(one, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    cr_assert_eq(peft_export(&b, "/base", "F32", two, &e), 0, "%s", e.msg);
    size_t n1, n2;
    unsigned char *f1 = test_read_file(path_in(one, PEFT_WEIGHTS_NAME), &n1);
    unsigned char *f2 = test_read_file(path_in(two, PEFT_WEIGHTS_NAME), &n2);
    cr_assert(f1 && f2 && n1 == n2 && !memcmp(f1, f2, n1), "the two exports differ");
    const char *name = "\"base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight\"";
    int found = 0;
    for (size_t i = 0; !found && i + strlen(name) <= n1; i++) found = !memcmp(f1 + i, name, strlen(name));
    cr_assert(found, "PEFT's name of GPT-2's mlp.c_proj B");
    free(f1);
    free(f2);
    model_free(&a);
    model_free(&b);
}
