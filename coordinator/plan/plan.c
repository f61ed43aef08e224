#include "coordinator/plan/plan.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/hash.h"
#include "models/cost.h"
#include "mpitrain.pb-c.h"
#include "sharding/partition.h"
#include "sharding/stages.h"
#include "worker/ckpt/ckpt.h"
#include "worker/ckpt/hfio.h"
#include "worker/ckpt/peft.h"
#include "worker/config/settings.h"
#include "worker/method/methods.h"

/* ---- validation ------------------------------------------------------------ */

static int resolve_mesh(TrainConfig *c, int world, Err *e)
{
    if (c->dp < 0 || c->tp < 0 || c->pp < 0)
        return err_set(e, "--dp %d --tp %d --pp %d: sizes must not be negative", c->dp, c->tp, c->pp);
    if (c->tp == 0) c->tp = 1;
    if (c->pp == 0) c->pp = 1;
    long tpp = (long)c->tp * c->pp;
    if (c->dp == 0) {
        if (world % tpp)
            return err_set(e, "%d ranks cannot be split into --tp %d x --pp %d; start a multiple "
                              "of %ld ranks", world, c->tp, c->pp, tpp);
        c->dp = (int)(world / tpp);
    }
    long all = (long)c->dp * tpp;
    if (all != world)
        return err_set(e, "the job has %d ranks but --dp %d x --tp %d x --pp %d = %ld; start %ld "
                          "ranks or change --dp/--tp/--pp to multiply to %d",
                       world, c->dp, c->tp, c->pp, all, all, world);
    return 0;
}

/* Contiguous block ranges per stage, balanced by estimated compute. */
static int resolve_stages(TrainConfig *c, Err *e)
{
    int n = model_n_blocks(&c->model);
    if (c->pp > n)
        return err_set(e, "--pp %d is more stages than the model's %d blocks (embedding, %d "
                          "layers, head); use --pp %d or fewer", c->pp, n, c->model.n_layer, n);
    if (c->pp > MAX_STAGES) return err_set(e, "--pp %d: at most %d stages", c->pp, MAX_STAGES);
    double *cost = calloc(n, sizeof *cost);
    if (!cost) return err_set(e, "out of memory");
    model_block_costs(&c->model, cost);
    int rc = balance_stages(cost, n, c->pp, c->stage_first);
    free(cost);
    return rc ? err_set(e, "cannot split %d blocks into %d stages", n, c->pp) : 0;
}

/* Every (tp rank, stage) shard must be buildable. */
static int check_shards(const TrainConfig *c, Err *e)
{
    for (int s = 0; s < c->pp; s++) {
        ModelShard sh = {.tp_size = c->tp, .first_block = c->stage_first[s],
                          .last_block = c->stage_first[s + 1] - 1, .slots = 1};
        if (model_shard_validate(&c->model, &sh, e)) return -1;
    }
    /* under LoRA the tied embedding is frozen: no gradient to make whole */
    if (c->pp > 1 && c->zero == 2 && model_transformer(&c->model) &&
        transformer_shape(&c->model).tied_head && !c->model.lora_rank)
        return err_set(e, "--zero 2 with --pp %d: the tied embedding's two copies need whole "
                          "gradients; use --zero 1", c->pp);
    return 0;
}

/* One stage's rank, as the cost model's numbers: the trainer builds the
 * same shard (forward-only for a method without gradients, a pipeline stage
 * with its schedule's slots). */
static CostLayout stage_layout(const TrainConfig *c, int s, int dp, int tp, int pp)
{
    int M = c->micro_batches > 0 ? c->micro_batches : 1, micro = c->global_batch / dp / M;
    int b0 = pp > 1 ? c->stage_first[s] : 0;
    int b1 = pp > 1 ? c->stage_first[s + 1] - 1 : model_n_blocks(&c->model) - 1;
    int slots = pp > 1 ? pipeline_slots((Schedule)c->pp_schedule, s, pp, M) : 1;
    CostLayout l = {{0, tp, b0, b1, slots, method_of(c)->forward_only}, micro, dp, c->zero,
                    optim_moments(c->optim.kind)};
    return l;
}

size_t plan_memory_per_rank(const TrainConfig *c)
{
    int dp = c->dp > 0 ? c->dp : 1, tp = c->tp > 0 ? c->tp : 1, pp = c->pp > 0 ? c->pp : 1;
    size_t worst = 0;
    for (int s = 0; s < pp; s++) {
        CostLayout l = stage_layout(c, s, dp, tp, pp);
        size_t total = cost_memory(&c->model, &l).total;
        if (total > worst) worst = total;
    }
    return worst;
}

int plan_resolve(TrainConfig *c, int world, size_t avail, Err *e)
{
    if (resolve_mesh(c, world, e)) return -1;
    if (method_resolve(c, e)) return -1;
    if (resolve_stages(c, e) || check_shards(c, e)) return -1;
    if (c->global_batch % c->dp)
        return err_set(e, "--dp %d does not divide global batch %d; use a --batch that is a "
                          "multiple of %d", c->dp, c->global_batch, c->dp);
    int local = c->global_batch / c->dp;
    if (local % c->micro_batches)
        return err_set(e, "--micro-batches %d does not divide the %d sequences each of the %d "
                          "data-parallel ranks gets; pick a divisor of %d",
                       c->micro_batches, local, c->dp, local);
    if (c->zero && c->optim.kind == OPT_ZO)
        return err_set(e, "--zero %d: the zo optimizer keeps no optimizer state to shard", c->zero);
    size_t need = plan_memory_per_rank(c);
    if (avail && need > avail)
        return err_set(e, "the plan needs about %.2f GB per rank but only %.2f GB is available per "
                          "rank on this node; lower --batch, raise --micro-batches or use --zero 1",
                       need / 1e9, avail / 1e9);
    return 0;
}

/* ---- serialization --------------------------------------------------------- */

uint64_t plan_hash(const void *buf, size_t len) { return fnv1a64(FNV1A64_INIT, buf, len); }

int plan_encode(const TrainConfig *c, int world, uint8_t **buf, size_t *len, Err *e)
{
    Mpitrain__Plan p;
    mpitrain__plan__init(&p);
    p.version = PLAN_VERSION;
    p.world_size = world;
    p.n_params = cost_param_count(&c->model);
    p.mem_per_rank = (int64_t)plan_memory_per_rank(c);
    p.predicted_step_ms = c->predicted_step_ms;
    p.n_stage_first_block = (size_t)c->pp + 1;
    p.stage_first_block = (int32_t *)c->stage_first;
    SettingsPB sets;
    Mpitrain__DpSlice *sl = calloc(c->dp, sizeof *sl);
    Mpitrain__DpSlice **slp = calloc(c->dp, sizeof *slp);
    Mpitrain__ShardRange *sh = calloc(c->dp, sizeof *sh);
    Mpitrain__ShardRange **shp = calloc(c->dp, sizeof *shp);
    /* (settings_encode fails only out of memory) */
    int rc = settings_encode(c, &sets, e) ? err_set(e, "out of memory encoding the plan") : 0;
    p.n_settings = rc ? 0 : sets.n;
    p.settings = rc ? NULL : sets.ptrs;
    if (!rc && (!sl || !slp || !sh || !shp)) rc = err_set(e, "out of memory encoding the plan");
    for (int r = 0; !rc && r < c->dp; r++) {
        Range b = dp_batch_slice(c->global_batch, c->dp, r);
        Range s = split_even(p.n_params, c->dp, r);
        mpitrain__dp_slice__init(&sl[r]);
        sl[r].dp_rank = r;
        sl[r].first_seq = (int)b.lo;
        sl[r].n_seq = (int)(b.hi - b.lo);
        slp[r] = &sl[r];
        mpitrain__shard_range__init(&sh[r]);
        sh[r].dp_rank = r;
        sh[r].lo = s.lo;
        sh[r].hi = s.hi;
        shp[r] = &sh[r];
    }
    p.n_dp_slices = p.n_shards = c->dp;
    p.dp_slices = slp;
    p.shards = shp;
    if (!rc) {
        *len = mpitrain__plan__get_packed_size(&p);
        *buf = malloc(*len ? *len : 1);
        if (!*buf) rc = err_set(e, "out of memory encoding the plan");
        else mpitrain__plan__pack(&p, *buf);
    }
    if (p.settings) settings_pb_free(&sets);
    free(sl);
    free(slp);
    free(sh);
    free(shp);
    return rc;
}

/* The plan's settings over the defaults, each through the same parser and
 * range checks as a flag; the derived stage boundaries copied. */
static int plan_to_config(const Mpitrain__Plan *p, TrainConfig *c, Err *e)
{
    train_config_defaults(c);
    if (settings_apply(c, p->settings, p->n_settings, "plan", e)) return -1;
    train_config_finish(c);
    c->predicted_step_ms = p->predicted_step_ms;
    for (size_t i = 0; i < p->n_stage_first_block && i <= MAX_STAGES; i++)
        c->stage_first[i] = p->stage_first_block[i];
    return 0;
}

/* The derived parts must be what this build would derive: a plan from a
 * different build or a tampered one is refused. */
static int check_derived(const Mpitrain__Plan *p, const TrainConfig *c, Err *e)
{
    if (model_config_validate(&c->model, e)) return err_wrap(e, "plan");
    if (c->dp < 1) return err_set(e, "plan: dp %d, must be at least 1", c->dp);
    if (p->n_params != cost_param_count(&c->model))
        return err_set(e, "plan: n_params %llu does not match the model (%zu)",
                       (unsigned long long)p->n_params, cost_param_count(&c->model));
    if ((int)p->n_dp_slices != c->dp || (int)p->n_shards != c->dp)
        return err_set(e, "plan: %zu batch slices and %zu shards for --dp %d", p->n_dp_slices,
                       p->n_shards, c->dp);
    if ((long)p->n_stage_first_block != (long)c->pp + 1)
        return err_set(e, "plan: %zu stage boundaries for --pp %d", p->n_stage_first_block, c->pp);
    TrainConfig again = *c;
    if (resolve_stages(&again, e)) return err_wrap(e, "plan");
    for (int s = 0; s <= c->pp; s++)
        if (again.stage_first[s] != c->stage_first[s])
            return err_set(e, "plan: stage %d's first block %d differs from this build's %d", s,
                           c->stage_first[s], again.stage_first[s]);
    for (int r = 0; r < c->dp; r++) {
        Range b = dp_batch_slice(c->global_batch, c->dp, r);
        Range s = split_even(p->n_params, c->dp, r);
        const Mpitrain__DpSlice *sl = p->dp_slices[r];
        const Mpitrain__ShardRange *sh = p->shards[r];
        if (sl->dp_rank != r || (size_t)sl->first_seq != b.lo || (size_t)sl->n_seq != b.hi - b.lo)
            return err_set(e, "plan: batch slice of dp rank %d is inconsistent", r);
        if (sh->dp_rank != r || sh->lo != s.lo || sh->hi != s.hi)
            return err_set(e, "plan: shard range of dp rank %d is inconsistent", r);
    }
    return 0;
}

int plan_decode(const uint8_t *buf, size_t len, uint64_t hash, int world, TrainConfig *c, Err *e)
{
    uint64_t h = plan_hash(buf, len);
    if (h != hash)
        return err_set(e, "plan hash mismatch (sent %016llx, received bytes hash to %016llx): "
                          "the plan was corrupted in transit",
                       (unsigned long long)hash, (unsigned long long)h);
    Mpitrain__Plan *p = mpitrain__plan__unpack(NULL, len, buf);
    if (!p) return err_set(e, "plan: bytes do not decode as a Plan message");
    int rc = 0;
    if (p->version != PLAN_VERSION)
        rc = err_set(e, "plan version %u, this build speaks %d: all ranks must run the same build",
                     p->version, PLAN_VERSION);
    else if (p->world_size != world)
        rc = err_set(e, "plan was made for %d ranks, this job has %d", p->world_size, world);
    if (!rc) rc = plan_to_config(p, c, e);
    if (!rc) rc = check_derived(p, c, e);
    if (!rc) rc = plan_resolve(c, world, 0, e);
    mpitrain__plan__free_unpacked(p, NULL);
    return rc;
}

/* ---- resume -------------------------------------------------------------- */

/* <run>/ckpt/step_N -> <run> */
static void run_dir_of_checkpoint(const char *step_dir, char *out, size_t n)
{
    snprintf(out, n, "%s", step_dir);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(out, '/');
        if (!slash) {
            snprintf(out, n, ".");
            return;
        }
        *slash = 0;
    }
}

static int is_model_setting(const OptSpec *s)
{
    /* unsigned: an offset before the model wraps to a large number */
    return s->offset - offsetof(TrainConfig, model) < sizeof(ModelConfig);
}

static int is_optim_setting(const OptSpec *s)
{
    return s->offset - offsetof(TrainConfig, optim) < sizeof(OptimConfig);
}

/* Is s one of names (NULL-terminated; NULL: none)? */
static int is_named(const OptSpec *s, const char *const *names)
{
    for (size_t i = 0; names && names[i]; i++)
        if (!strcmp(s->name, names[i])) return 1;
    return 0;
}

/* The settings --resume continues with from the checkpoint: what its
 * weights and optimizer state mean (the model, the optimizer, the batch,
 * the seed) and what the saved run's method says its state means (zo's
 * journal: eps, scale, samples). */
static int resume_keeps(const OptSpec *s, const TrainConfig *saved)
{
    static const char *const RUN[] = {"batch", "seed", NULL};
    if (is_model_setting(s) || is_optim_setting(s) || is_named(s, RUN)) return 1;
    return is_named(s, method_of(saved)->resume_keeps);
}

/* The checkpoint's settings over the flags', as --resume takes them: by
 * name, through the settings table. */
static void take_from_checkpoint(TrainConfig *c, const TrainConfig *saved)
{
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (resume_keeps(s, saved)) settings_copy(c, saved, s);
    train_config_finish(c);
}

/* A flag set to something a checkpoint (or an --init-from source)
 * overrides would be silently dropped: the first such setting (among the
 * model's only, if model_only), with its value as given and as taken; NULL
 * when there is none. A setting counts as set when the parser saw it
 * (cfg->given) or, failing that knowledge, when it is off its default. */
static const OptSpec *first_conflict(const TrainConfig *cfg, const TrainConfig *taken,
                                     int model_only, char *given, char *theirs, size_t n, Err *e)
{
    static const OptSpec FAILED = {0}; /* no name: the caller returns -1 with e */
    TrainConfig *def = malloc(sizeof *def);
    if (!def) {
        err_set(e, "out of memory");
        return &FAILED;
    }
    train_config_defaults(def);
    const OptSpec *hit = NULL;
    for (const OptSpec *s = train_config_table(NULL); !hit && s->name; s++) {
        if (model_only && !is_model_setting(s)) continue;
        char dflt[PATH_BUF];
        opts_format(s, cfg, given, n);
        opts_format(s, taken, theirs, n);
        opts_format(s, def, dflt, sizeof dflt);
        int set = train_config_was_given(cfg, s) || strcmp(given, dflt);
        if (strcmp(given, theirs) && set && !train_config_leaves_choice(cfg, s)) hit = s;
    }
    free(def);
    return hit;
}

static int check_resume_conflicts(const TrainConfig *cfg, const TrainConfig *saved, Err *e)
{
    TrainConfig *taken = malloc(sizeof *taken);
    if (!taken) return err_set(e, "out of memory");
    *taken = *cfg;
    take_from_checkpoint(taken, saved);
    char given[PATH_BUF], ckpt[PATH_BUF];
    const OptSpec *s = first_conflict(cfg, taken, 0, given, ckpt, sizeof given, e);
    free(taken);
    if (!s) return 0;
    if (!s->name) return -1;
    return err_set(e, "--%s %s conflicts with the checkpoint's %s: --resume continues the "
                      "checkpoint's model, optimizer, batch and seed; drop the flag (or start a "
                      "new run from its weights with --init-from)",
                   s->name, given, ckpt);
}

/* How the sources name the model's settings (Hugging Face's config keys:
 * GPT-2's, then the llama family's). */
static const char *source_key(const char *flag, const ModelConfig *src)
{
    static const char *const KEYS[][3] = {
        {"model", "", "model_type"},
        {"layers", "n_layer", "num_hidden_layers"}, {"heads", "n_head", "num_attention_heads"},
        {"embd", "n_embd", "hidden_size"}, {"seq-len", "n_positions", "max_position_embeddings"},
        {"positions", "n_positions", "max_position_embeddings"},
        {"vocab", "vocab_size", "vocab_size"}, {"in-dim", "in_dim", "in_dim"},
        {"kv-heads", "", "num_key_value_heads"}, {"head-dim", "", "head_dim"},
        {"mlp-hidden", "", "intermediate_size"}, {"norm-eps", "", "rms_norm_eps"},
        {"rope-theta", "", "rope_theta"}, {"rope-factor", "", "rope_scaling.factor"},
        {"rope-low-freq", "", "rope_scaling.low_freq_factor"},
        {"rope-high-freq", "", "rope_scaling.high_freq_factor"},
        {"rope-original-ctx", "", "rope_scaling.original_max_position_embeddings"},
        {"qkv-bias", "", "attention_bias (Qwen2: always)"},
        {"attn-out-bias", "", "attention_bias"}, {"mlp-bias", "", "mlp_bias"},
        {"qk-norm", "", "model_type qwen3"}, {"untied-head", "", "tie_word_embeddings (negated)"}};
    int col = src->kind == MODEL_LLAMA ? 2 : 1;
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (!strcmp(KEYS[i][0], flag) && KEYS[i][col][0]) return KEYS[i][col];
    return flag;
}

/* LoRA's settings are the run's own (its flags, or --lora-from's
 * adapters), never the source's: a plain base gets adapters. */
static void keep_lora_settings(ModelConfig *to, const ModelConfig *flags)
{
    to->lora_rank = flags->lora_rank;
    to->lora_alpha = flags->lora_alpha;
    to->lora_dropout = flags->lora_dropout;
    memcpy(to->lora_targets, flags->lora_targets, sizeof to->lora_targets);
}

/* --lora-from: adapters to continue need the base they apply to, and a
 * resumed run has its own; --lora-save-base needs a base to save. */
static int check_lora_from(const TrainConfig *cfg, Err *e)
{
    /* (a resumed run's rank is the checkpoint's by now) */
    if (cfg->lora_save_base && cfg->model.lora_rank <= 0 && !cfg->lora_from[0])
        return err_set(e, "--lora-save-base needs a LoRA run (--lora-rank R, or --lora-from): "
                          "without adapters every weight is in the checkpoint already");
    if (!cfg->lora_from[0]) return 0;
    if (cfg->resume[0])
        return err_set(e, "--lora-from with --resume: the checkpoint holds its own adapters; "
                          "drop --lora-from");
    if (!cfg->init_from[0])
        return err_set(e, "--lora-from %s needs --init-from BASE: the model the adapters apply "
                          "to", cfg->lora_from);
    return 0;
}

int plan_apply_init_from(TrainConfig *cfg, Err *e)
{
    if (check_lora_from(cfg, e)) return -1;
    if (!cfg->init_from[0] || cfg->resume[0]) return 0;
    WeightSource src;
    if (wsource_open(cfg->init_from, &src, e)) {
        wsource_close(&src);
        err_wrap(e, "--init-from %s", cfg->init_from);
        return PLAN_ERR_RESUME;
    }
    wsource_close(&src);
    TrainConfig *taken = malloc(sizeof *taken);
    if (!taken) return err_set(e, "out of memory");
    *taken = *cfg;
    taken->model = src.model;
    /* a shorter context than the source's positions trains on the first
     * rows of its position table and keeps them all */
    train_config_defaults(taken);
    int def_seq = taken->model.seq_len;
    *taken = *cfg;
    taken->model = src.model;
    keep_lora_settings(&taken->model, &cfg->model);
    taken->model.positions = model_positions(&src.model);
    const OptSpec *seq = train_config_table(NULL);
    while (seq->name && strcmp(seq->name, "seq-len")) seq++;
    int seq_set = train_config_was_given(cfg, seq) || cfg->model.seq_len != def_seq;
    if (seq_set && cfg->model.seq_len <= taken->model.positions) taken->model.seq_len = cfg->model.seq_len;
    char given[PATH_BUF], theirs[PATH_BUF];
    const OptSpec *s = first_conflict(cfg, taken, 1, given, theirs, sizeof given, e);
    int rc = 0;
    if (s && !s->name) rc = -1;
    else if (s)
        rc = err_set(e, "--%s %s conflicts with the --init-from source's %s %s: the model's shape "
                        "comes from the source (%s %s); drop the flag",
                     s->name, given, source_key(s->name, &src.model), theirs,
                     wsource_kind_name(src.kind), cfg->init_from);
    if (!rc) cfg->model = taken->model;
    free(taken);
    /* the adapters' settings, once the model's family is the source's */
    if (!rc && cfg->lora_from[0]) rc = peft_apply_config(cfg, e);
    return rc;
}

int plan_apply_resume(TrainConfig *cfg, Err *e)
{
    if (!cfg->resume[0]) return 0;
    char dir[PATH_LEN];
    CkptMeta m;
    if (ckpt_resolve(cfg->resume, dir, sizeof dir, e) || ckpt_load_meta(dir, &m, e)) {
        err_wrap(e, "--resume %s", cfg->resume);
        return PLAN_ERR_RESUME;
    }
    /* the checkpoint defines the model, optimizer, batch and data; the flags
     * decide how long to go on and on which layout */
    if (check_resume_conflicts(cfg, &m.cfg, e)) return err_wrap(e, "--resume %s", cfg->resume);
    take_from_checkpoint(cfg, &m.cfg);
    /* the data as the run read it, unless the flags name other data: a
     * resume must not quietly evaluate on another split */
    if (!cfg->data[0]) {
        snprintf(cfg->data, sizeof cfg->data, "%s", m.cfg.data);
        if (!cfg->val_data[0])
            snprintf(cfg->val_data, sizeof cfg->val_data, "%s", m.cfg.val_data);
        if (cfg->data_format == 0) cfg->data_format = m.cfg.data_format;
    }
    if (m.step > cfg->steps)
        return err_set(e, "--resume %s: checkpoint is at step %lld, past --steps %ld",
                       cfg->resume, (long long)m.step, cfg->steps);
    if (!cfg->out[0]) run_dir_of_checkpoint(dir, cfg->out, sizeof cfg->out);
    snprintf(cfg->resume, sizeof cfg->resume, "%s", dir);
    /* a run that saved its last step and then lost a rank (or is resumed
     * twice) is finished, not refused: its supervisor must see success */
    if (m.step < cfg->steps) return 0;
    err_set(e, "the run is complete: checkpoint %s is at step %lld of --steps %ld, nothing to "
               "train (a larger --steps goes on)", dir, (long long)m.step, cfg->steps);
    return PLAN_COMPLETE;
}
