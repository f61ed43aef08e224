#ifndef MPITRAIN_CKPT_H
#define MPITRAIN_CKPT_H
/* Checkpoints: a directory <root>/step_NNNNNNNN/ holding
 *   manifest.pb   "MPCKPTv1" | u32 length | u32 crc32c | Manifest protobuf
 *   rank_RRRRR.bin raw little-endian f32 tensor data written by each rank
 * and <root>/latest naming the newest complete one. Directories are built
 * under a temporary name and renamed when complete, so a crash never leaves
 * a half checkpoint that looks whole. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/fileio.h"
#include "models/model.h"
#include "worker/config/config.h"
#include "worker/optim/optim.h"
#include "mpitrain.pb-c.h"
#include "worker/config/settings.h"
#include "sharding/partition.h"

#define CKPT_MAGIC "MPCKPTv1"
#define CKPT_FORMAT_VERSION 1
/* a manifest larger than this is not one of ours */
#define CKPT_MAX_MANIFEST (64u << 20)

/* A LoRA run's frozen base, as its checkpoints refer to it (the manifest's
 * lora_base_path and lora_base_hash; worker/ckpt/lorabase.h). */
typedef struct {
    char path[PATH_LEN]; /* the weight source, absolute; "" = none (the seed's random base) */
    uint64_t hash;       /* lorabase_hash of that source */
    /* --lora-save-base: the flat elements of this process's base buffer
     * it writes as base/ records (its dp rank's share); empty: none */
    Range share;
} CkptBaseRef;

/* What a checkpoint says about its run: the settings (in the manifest by
 * name, through the settings table, as the plan carries them) and the
 * run's state that no setting holds. */
typedef struct {
    /* Every setting of the run; one that asked the run to choose holds the
     * value chosen (train_config_leaves_choice: --zo-scale 0). The parts
     * that are not settings (given, stage_first, predicted_step_ms) are 0. */
    TrainConfig cfg;
    int64_t step;          /* steps completed */
    uint64_t data_pos;     /* next global batch index */
    int64_t opt_t;         /* the optimizer's update count */
    int dp, tp, pp, zero;  /* the layout it was saved with */
    double budget_used_s;  /* --time-budget: training seconds used by these steps */
    /* A directory of tokenizer files that saving copies into the step's
     * tokenizer/ ("" = none); loading sets it to the step's own tokenizer/
     * when there is one, so a checkpoint made from a loaded one keeps it. */
    char tokenizer_dir[PATH_LEN];
    /* The dtype the weights came in ("F32", "F16", "BF16"; "" = F32): kept
     * from an import through training, the default of an HF export. */
    char source_dtype[8];
    /* The Hugging Face class the weights came as ("" = none known): kept the
     * same way, the class an HF export writes back. */
    char source_arch[48];
    CkptBaseRef base;      /* LoRA: the base the adapters apply to */
} CkptMeta;

/* A CkptMeta of the default settings and no state (step 0, layout 1x1x1):
 * what a checkpoint not made by a training run starts from. */
void ckpt_meta_init(CkptMeta *meta);

/* Whether dtype is one a model comes in and goes out as: F32, F16, BF16. */
int ckpt_dtype_valid(const char *dtype);

/* Saves params and optimizer state of one process as a complete checkpoint
 * under root; returns the step directory in out_dir. */
int ckpt_save(const char *root, const CkptMeta *meta, const Model *m, const Optimizer *o,
              char *out_dir, size_t out_len, Err *e);
/* The same in steps, for a save spread over ranks (shared file system):
 * one process calls ckpt_begin (makes <root>/.tmp.step_N), every rank
 * writes its shard of the flat parameter range r (and the optimizer state
 * it holds inside r) with ckpt_write_shard, and the one process collects the
 * shards' packed records and calls ckpt_finish (manifest, rename, latest).
 * ckpt_save_group (ckpt_save.h) runs these steps over the ranks of a group. */
int ckpt_begin(const char *root, int64_t step, char *tmp, size_t n, Err *e);
/* Is this entry of a checkpoint root one that the writers above make (a
 * step directory, its temporary or set-aside copy, latest and its
 * temporary)? What --overwrite may replace. */
int ckpt_root_entry(const char *name, int is_dir);
int ckpt_write_shard(const char *tmp, int index, const Model *m, const Optimizer *o, Range r,
                     uint8_t **records, size_t *records_len, Err *e);
/* One flat buffer of the model's shard saved as one kind of record
 * ("param", "opt_m", "opt_v", or a strategy's own, e.g. DiLoCo's "outer_g",
 * "param.r1"): buf holds flat elements [lo, ...); this rank writes those in
 * want. buf NULL: nothing. */
#define CKPT_KIND_LEN 32
typedef struct {
    const char *kind;
    const float *buf;
    size_t lo;
    Range want;
} CkptPart;
/* The record kind of a LoRA run's frozen base saved with its checkpoint: a
 * part of this kind holds the base's buffer (m->base.params) and ranges. */
#define CKPT_BASE_KIND "base"
/* The weights and the optimizer's moments inside r (o may be NULL): 3 parts. */
int ckpt_model_parts(const Model *m, const Optimizer *o, Range r, CkptPart *out);
/* The same one part at a time (a part's buffer may be reused once added):
 * open, add, close (commit 0: the file is abandoned, -1 returned). */
typedef struct CkptShardWriter CkptShardWriter;
int ckpt_shard_open(CkptShardWriter **w, const char *tmp, int index, Err *e);
int ckpt_shard_add(CkptShardWriter *w, const Model *m, const CkptPart *p, Err *e);
int ckpt_shard_close(CkptShardWriter *w, int commit, uint8_t **records, size_t *records_len,
                     Err *e);
/* ckpt_write_shard with any parts, written in order into one data file. */
int ckpt_write_parts(const char *tmp, int index, const Model *m, const CkptPart *parts, int n,
                     uint8_t **records, size_t *records_len, Err *e);
int ckpt_finish(const char *root, const char *tmp, const CkptMeta *meta, uint8_t *const *shards,
                const size_t *lens, int n_shards, char *out_dir, size_t out_len, Err *e);
/* Writes <dir>/manifest.pb: "MPCKPTv1" | u32 length | u32 CRC-32C | mf. */
int ckpt_write_manifest_pb(const char *dir, const Mpitrain__Manifest *mf, Err *e);
/* A run directory, a checkpoint root or a step directory -> step directory. */
int ckpt_resolve(const char *path, char *out, size_t n, Err *e);
int ckpt_read_manifest(const char *dir, Mpitrain__Manifest **out, Err *e);
int ckpt_load_meta(const char *dir, CkptMeta *meta, Err *e);
/* <step_dir>/tokenizer into out when it holds tokenizer files (returns 1),
 * else out = "" (returns 0). */
int ckpt_tokenizer_of(const char *step_dir, char *out, size_t n);
/* Loads the tensors into a built model (and optimizer, if non-NULL),
 * verifying names, shapes, sizes and checksums. Records saved in the
 * model's own slicing are read straight into its parameter (and moment)
 * buffers; other slicings are assembled one full tensor at a time. With
 * o == NULL, or an optimizer without moments (zo), only the param/ records
 * are read: the opt_m/opt_v bytes are never touched, so damaged or cut-off
 * moments do not matter to eval, sample or --init-from. */
int ckpt_load(const char *dir, Model *m, Optimizer *o, Err *e);
/* The same from a manifest the caller has read already. */
int ckpt_load_from(const char *dir, const Mpitrain__Manifest *mf, Model *m, Optimizer *o, Err *e);
/* The weights a source holds (model_weight_table: a LoRA model's frozen
 * base, else every weight) from the records of one kind alone ("param" of a
 * checkpoint used as a source, CKPT_BASE_KIND of a LoRA checkpoint's own
 * copy): no other record is read or checked. */
int ckpt_load_weights_as(const char *dir, const Mpitrain__Manifest *mf, const char *kind,
                         Model *m, Err *e);
/* Flat elements [lo, hi) of the model's shard, of one kind of record, into
 * dst (dst[0] = element lo), from any layout the checkpoint was saved in. */
int ckpt_load_kind(const char *dir, const Mpitrain__Manifest *mf, const Model *m,
                   const char *kind, float *dst, size_t lo, size_t hi, Err *e);
/* Does the manifest hold records of this kind? */
int ckpt_has_kind(const Mpitrain__Manifest *mf, const char *kind);
/* The distinct kinds of its records, in order of first appearance (at most max). */
int ckpt_list_kinds(const Mpitrain__Manifest *mf, char (*kinds)[CKPT_KIND_LEN], int max);
/* <root>/best: names the step directory step_dir (a path under root) and
 * the validation loss it had, written atomically like latest. */
int ckpt_set_best(const char *root, const char *step_dir, double val_loss, Err *e);
/* The validation loss <root>/best records; NAN when there is none. */
double ckpt_best_val_loss(const char *root);
/* Keep only the newest `keep` step directories under root (0 = keep all);
 * the steps that latest and best name always stay. */
int ckpt_prune(const char *root, int keep, Err *e);

/* The manifest's header (everything but the records) for meta: the
 * settings by name and the state. Its strings and sub-messages live in
 * *pb until ckpt_manifest_pb_free. */
typedef struct {
    Mpitrain__Manifest mf;
    Mpitrain__Layout layout;
    SettingsPB settings;
} CkptManifestPB;
int ckpt_meta_to_pb(const CkptMeta *meta, CkptManifestPB *pb, Err *e);
void ckpt_manifest_pb_free(CkptManifestPB *pb);
/* A manifest's meta: its settings by name over the defaults, or, in a
 * checkpoint written before there were settings in the manifest, its
 * settings fields; -1 when a setting does not read (e names it). */
int ckpt_meta_from_pb(const Mpitrain__Manifest *mf, CkptMeta *meta, Err *e);

#endif
