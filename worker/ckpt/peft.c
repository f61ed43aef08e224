/* PEFT's adapter directories, out (ckpt export --format peft) and in
 * (--lora-from). The shapes are mpitrain's own (A r x in, B out x r, also
 * for GPT-2's Conv1D modules: PEFT's adapters are Linear-shaped there,
 * fan_in_fan_out only transposes the merge); only the names change. */
#include "worker/ckpt/peft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "base/json.h"
#include "models/arch.h"
#include "worker/ckpt/safetensors.h"
#include "worker/data/jtree.h"

/* The linears with adapters: mpitrain's stem ("h.L.<stem>.lora_A") and
 * the HF module under the layer, per family (NULL: the family has none). */
static const struct {
    const char *stem, *gpt2, *llama;
} MODULES[] = {
    {"attn.qkv", "attn.c_attn", NULL},        {"attn.q", NULL, "self_attn.q_proj"},
    {"attn.k", NULL, "self_attn.k_proj"},     {"attn.v", NULL, "self_attn.v_proj"},
    {"attn.proj", "attn.c_proj", "self_attn.o_proj"}, {"mlp.fc", "mlp.c_fc", NULL},
    {"mlp.gate", NULL, "mlp.gate_proj"},      {"mlp.up", NULL, "mlp.up_proj"},
    {"mlp.proj", "mlp.c_proj", "mlp.down_proj"},
};

static int is_gpt2(const ModelConfig *c) { return model_transformer(c) == &GPT2_TRANSFORMER; }

/* PEFT's name of adapter tensor mp ("h.3.attn.q.lora_A" ->
 * "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"); -1
 * when mp is no adapter mpitrain knows. */
static int peft_name(const ModelConfig *c, const char *mp, char *out, size_t n)
{
    int layer, at = 0;
    if (sscanf(mp, "h.%d.%n", &layer, &at) != 1 || !at) return -1;
    const char *stem = mp + at, *ab = strstr(stem, ".lora_");
    if (!ab || (strcmp(ab, ".lora_A") && strcmp(ab, ".lora_B"))) return -1;
    for (size_t i = 0; i < sizeof MODULES / sizeof MODULES[0]; i++) {
        const char *module = is_gpt2(c) ? MODULES[i].gpt2 : MODULES[i].llama;
        if (!module || strlen(MODULES[i].stem) != (size_t)(ab - stem) ||
            strncmp(stem, MODULES[i].stem, ab - stem))
            continue;
        int len = snprintf(out, n, "base_model.model.%s.%d.%s%s.weight",
                           is_gpt2(c) ? "transformer.h" : "model.layers", layer, module, ab);
        return len > 0 && (size_t)len < n ? 0 : -1;
    }
    return -1;
}

/* ---- export ---------------------------------------------------------------- */

typedef struct {
    const ModelConfig *c;
    const char *base_path;
} PeftOut;

static void write_targets(JsonOut *j, const ModelConfig *c)
{
    unsigned mask = 0;
    (void)lora_target_mask(c, &mask, NULL); /* the model was built: it reads */
    const char *done[16];
    int n = 0;
    json_begin_array(json_key(j, "target_modules"));
    for (unsigned bit = 1; bit && bit <= mask; bit <<= 1) {
        if (!(mask & bit)) continue;
        const char *name = lora_target_name(c, bit);
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= !strcmp(done[i], name);
        if (seen || n == 16) continue; /* GPT-2's two c_proj are one name */
        done[n++] = name;
        json_str(j, name);
    }
    json_end_array(j);
}

/* A setting PEFT keeps as an int when it is one (lora_alpha 16). */
static void write_number(JsonOut *j, const char *key, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) json_int(json_key(j, key), (long long)v);
    else json_sig(json_key(j, key), v, 9);
}

static void write_adapter_config(JsonOut *j, const void *ctx)
{
    const PeftOut *p = ctx;
    const ModelConfig *c = p->c;
    json_begin_object(j);
    json_newline(j);
    json_str(json_key(j, "peft_type"), "LORA");
    json_str(json_key(j, "task_type"), "CAUSAL_LM");
    if (p->base_path[0]) json_str(json_key(j, "base_model_name_or_path"), p->base_path);
    else json_null(json_key(j, "base_model_name_or_path"));
    json_null(json_key(j, "revision"));
    json_newline(j);
    json_int(json_key(j, "r"), c->lora_rank);
    write_number(j, "lora_alpha", c->lora_alpha > 0 ? c->lora_alpha : 8.0);
    write_number(j, "lora_dropout", c->lora_dropout);
    write_targets(j, c);
    json_newline(j);
    json_str(json_key(j, "bias"), "none");
    /* GPT-2's Conv1D modules keep their weights (in, out) */
    json_bool(json_key(j, "fan_in_fan_out"), is_gpt2(c));
    json_bool(json_key(j, "inference_mode"), 1);
    json_null(json_key(j, "modules_to_save"));
    json_bool(json_key(j, "use_rslora"), 0);
    json_bool(json_key(j, "use_dora"), 0);
    json_bool(json_key(j, "init_lora_weights"), 1);
    json_newline(j);
    json_null(json_key(j, "layers_to_transform"));
    json_null(json_key(j, "layers_pattern"));
    json_begin_object(json_key(j, "rank_pattern"));
    json_end_object(j);
    json_begin_object(json_key(j, "alpha_pattern"));
    json_end_object(j);
    json_newline(j);
    json_end_object(j);
    json_newline(j);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

int peft_export(const Model *m, const char *base_path, const char *dtype, const char *out_dir,
                Err *e)
{
    if (!m->base.n_tensors || m->adapters_merged)
        return err_set(e, "the model has no adapters to write in PEFT's format");
    StTensor *list = calloc((size_t)m->n_tensors, sizeof *list);
    char (*names)[ST_MAX_NAME] = calloc((size_t)m->n_tensors, sizeof *names);
    int rc = !list || !names ? err_set(e, "out of memory") : 0;
    for (int k = 0; !rc && k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        if (peft_name(&m->cfg, t->name, names[k], sizeof names[k]) ||
            t->numel != (size_t)t->shape[0] * t->shape[1])
            rc = err_set(e, "internal: tensor '%s' is not a whole adapter", t->name);
        list[k] = (StTensor){names[k], 2, {t->shape[0], t->shape[1]}, m->params + t->offset, 0};
    }
    /* in name order, as the safetensors library writes a state dict */
    if (!rc) qsort(list, (size_t)m->n_tensors, sizeof *list, by_name);
    char path[PATH_BUF];
    PeftOut p = {&m->cfg, base_path};
    if (!rc) rc = mkdir_p(out_dir, e);
    if (!rc) rc = path_fmt(path, sizeof path, e, "%s/" PEFT_WEIGHTS_NAME, out_dir);
    if (!rc) rc = safetensors_write_list(path, list, m->n_tensors, dtype, NULL, 0, e);
    if (!rc) rc = hf_write_json(out_dir, PEFT_CONFIG_NAME, write_adapter_config, &p, e);
    free(list);
    free(names);
    return rc;
}

/* ---- adapter_config.json ---------------------------------------------------- */

typedef struct {
    int r;
    float alpha, dropout;
    char targets[sizeof ((ModelConfig *)0)->lora_targets];
} PeftSettings;

typedef struct {
    const char *path;
    const JtDoc *doc;
    const Jt *root;
    Err *e;
} ConfigFile;

static int refuse(const ConfigFile *f, const char *key, const char *why)
{
    const Jt *v = jt_get(f->root, key);
    return err_set(f->e, "%s:%d: %s: %s", f->path, v ? jt_line(f->doc, v) : 1, key, why);
}

static int is_true(const Jt *v) { return v && v->type == JT_BOOL && v->v.num != 0; }
static int is_set(const Jt *v) { return v && v->type != JT_NULL; }

/* The keys whose values mpitrain would not compute, each refused by name. */
static int check_supported(const ConfigFile *f)
{
    const Jt *root = f->root, *v;
    if (!jt_is(jt_get(root, "peft_type"), "LORA"))
        return refuse(f, "peft_type", "not LORA: mpitrain reads LoRA adapters only");
    if (is_true(jt_get(root, "use_dora")))
        return refuse(f, "use_dora", "true: DoRA (weight-decomposed LoRA) is not computed by mpitrain");
    if (is_true(jt_get(root, "use_rslora")))
        return refuse(f, "use_rslora", "true: rank-stabilized scaling (alpha / sqrt(r)) is not "
                                       "mpitrain's (alpha / r)");
    const char *const PATTERNS[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++)
        if ((v = jt_get(root, PATTERNS[i])) && is_set(v) && !(v->type == JT_OBJ && v->n == 0))
            return refuse(f, PATTERNS[i], "per-module ranks or alphas: mpitrain gives every "
                                          "adapter one rank and one alpha");
    if (is_set(jt_get(root, "layers_to_transform")))
        return refuse(f, "layers_to_transform", "adapters on some layers only: mpitrain puts "
                                                "them on every layer");
    if ((v = jt_get(root, "modules_to_save")) && is_set(v) && !(v->type == JT_ARR && v->n == 0))
        return refuse(f, "modules_to_save", "fully trained modules besides the adapters: "
                                            "mpitrain trains adapters only");
    if ((v = jt_get(root, "bias")) && is_set(v) && !jt_is(v, "none"))
        return refuse(f, "bias", "trained biases: mpitrain's LoRA trains no bias (bias \"none\")");
    if (is_true(jt_get(root, "lora_bias")))
        return refuse(f, "lora_bias", "true: a bias on lora_B is not computed by mpitrain");
    if (is_set(jt_get(root, "exclude_modules")))
        return refuse(f, "exclude_modules", "excluded modules: mpitrain adapts every module "
                                            "target_modules names");
    return 0;
}

/* A number member (absent: dflt) inside [lo, hi]. */
static int number(const ConfigFile *f, const char *key, double dflt, double lo, double hi,
                  double *out)
{
    const Jt *v = jt_get(f->root, key);
    *out = v && v->type == JT_NUM ? v->v.num : dflt;
    if ((v && v->type != JT_NUM && v->type != JT_NULL) || !(*out >= lo && *out <= hi)) {
        char why[96];
        snprintf(why, sizeof why, "must be a number from %g to %g", lo, hi);
        return refuse(f, key, why);
    }
    return 0;
}

/* target_modules: a list of module names, "all-linear", or null (PEFT's
 * default for the family: mpitrain's ""). */
static int read_targets(const ConfigFile *f, char *out, size_t n)
{
    const Jt *v = jt_get(f->root, "target_modules");
    out[0] = 0;
    if (!is_set(v)) return 0;
    if (v->type == JT_STR) {
        if (!strcmp(v->v.str, "all-linear")) return snprintf(out, n, "all-linear") < 0;
        return refuse(f, "target_modules", "a regular expression: mpitrain reads a list of "
                                           "module names (q_proj, c_attn, ...) or \"all-linear\"");
    }
    if (v->type != JT_ARR) return refuse(f, "target_modules", "must be a list of module names");
    for (uint32_t i = 0; i < v->n; i++) {
        const Jt *name = &v->v.items[i];
        if (name->type != JT_STR || !name->v.str[0] || strpbrk(name->v.str, ".,*?[( "))
            return refuse(f, "target_modules", "must hold plain module names (q_proj, c_attn, "
                                               "...), not paths or patterns");
        size_t used = strlen(out);
        if ((size_t)snprintf(out + used, n - used, "%s%s", used ? "," : "", name->v.str) >= n - used)
            return refuse(f, "target_modules", "too many names");
    }
    return 0;
}

static int read_settings(const char *dir, PeftSettings *p, Err *e)
{
    char path[PATH_BUF], *text = NULL;
    if (path_fmt(path, sizeof path, e, "%s/" PEFT_CONFIG_NAME, dir) ||
        hf_json_file(path, 1u << 20, &text, e))
        return -1;
    JtDoc *doc = jt_parse(path, text, strlen(text), e);
    ConfigFile f = {path, doc, doc ? jt_root(doc) : NULL, e};
    int rc = !doc ? -1 : f.root->type != JT_OBJ ? err_set(e, "%s: not a JSON object", path) : 0;
    double r = 0, alpha = 0, dropout = 0;
    if (!rc) rc = check_supported(&f);
    if (!rc && !jt_get(f.root, "r")) rc = err_set(e, "%s: no r (the adapters' rank)", path);
    if (!rc) rc = number(&f, "r", 8, 1, 4096, &r);
    if (!rc && r != floor(r)) rc = refuse(&f, "r", "must be a whole number");
    if (!rc) rc = number(&f, "lora_alpha", 8, 1e-6, 1e6, &alpha);
    if (!rc) rc = number(&f, "lora_dropout", 0, 0, 0.999, &dropout);
    if (!rc) rc = read_targets(&f, p->targets, sizeof p->targets);
    p->r = (int)r;
    p->alpha = (float)alpha;
    p->dropout = (float)dropout;
    jt_free(doc);
    free(text);
    return rc;
}

static int was_given(const TrainConfig *cfg, const char *name)
{
    for (const OptSpec *s = train_config_table(NULL); s->name; s++)
        if (!strcmp(s->name, name)) return train_config_was_given(cfg, s);
    return 0;
}

/* The run's LoRA settings as adapter_config.json gives them; a flag set to
 * another value is an error naming both. */
static int take_settings(TrainConfig *cfg, const PeftSettings *p, const char *path, Err *e)
{
    ModelConfig *c = &cfg->model;
    float alpha = c->lora_alpha > 0 ? c->lora_alpha : 8.0f;
    if ((was_given(cfg, "lora-rank") || c->lora_rank) && c->lora_rank != p->r)
        return err_set(e, "--lora-rank %d disagrees with %s's r %d: the rank comes from the "
                          "adapters; drop the flag", c->lora_rank, path, p->r);
    if ((was_given(cfg, "lora-alpha") || alpha != 8.0f) && alpha != p->alpha)
        return err_set(e, "--lora-alpha %g disagrees with %s's lora_alpha %g: drop the flag",
                       (double)alpha, path, (double)p->alpha);
    ModelConfig theirs = *c;
    snprintf(theirs.lora_targets, sizeof theirs.lora_targets, "%s", p->targets);
    unsigned mine = 0, want = 0;
    if (lora_target_mask(&theirs, &want, e)) return err_wrap(e, "%s: target_modules", path);
    if ((was_given(cfg, "lora-targets") || c->lora_targets[0]) &&
        (lora_target_mask(c, &mine, e) || mine != want))
        return err_set(e, "--lora-targets %s disagrees with %s's target_modules %s: drop the flag",
                       c->lora_targets, path, p->targets[0] ? p->targets : "(PEFT's default)");
    c->lora_rank = p->r;
    c->lora_alpha = p->alpha;
    snprintf(c->lora_targets, sizeof c->lora_targets, "%s", p->targets);
    return 0;
}

int peft_apply_config(TrainConfig *cfg, Err *e)
{
    PeftSettings p;
    char path[PATH_BUF];
    if (path_fmt(path, sizeof path, e, "%s/" PEFT_CONFIG_NAME, cfg->lora_from) ||
        read_settings(cfg->lora_from, &p, e))
        return err_wrap(e, "--lora-from");
    /* the dropout is the run's to choose, but never silently dropped */
    if (p.dropout > 0 && !was_given(cfg, "lora-dropout") && cfg->model.lora_dropout == 0)
        return err_set(e, "--lora-from: %s: lora_dropout %g: give --lora-dropout P to say which "
                          "dropout this run trains with (--lora-dropout 0: none; the adapters "
                          "load either way)", path, (double)p.dropout);
    return take_settings(cfg, &p, path, e) ? err_wrap(e, "--lora-from") : 0;
}

/* ---- adapter_model.safetensors ---------------------------------------------- */

/* Every adapter of the whole model of c is an entry of ix, of its shape
 * and a float dtype, and every entry is one of them. */
static int check_entries(const char *path, const StIndex *ix, const ModelConfig *c, Err *e)
{
    Model whole;
    ModelShard ws = model_shard_whole(1);
    if (model_declare_shard(&whole, c, &ws, e)) return -1;
    char *used = calloc((size_t)ix->n + 1, 1);
    int rc = used ? 0 : err_set(e, "out of memory");
    for (int k = 0; !rc && k < whole.n_tensors; k++) {
        const ParamInfo *t = &whole.tensors[k];
        char name[ST_MAX_NAME];
        if (peft_name(c, t->name, name, sizeof name)) {
            rc = err_set(e, "internal: no PEFT name for '%s'", t->name);
            break;
        }
        const StEntry *en = safetensors_find(ix, name);
        if (!en) {
            rc = err_set(e, "%s: missing tensor '%s' (r %d, target_modules of adapter_config.json)",
                         path, name, c->lora_rank);
            break;
        }
        used[en - ix->t] = 1;
        char got[64];
        safetensors_shape_text(en, got, sizeof got);
        if (en->ndim != 2 || en->shape[0] != t->shape[0] || en->shape[1] != t->shape[1])
            rc = err_set(e, "%s: tensor '%s' has shape %s; the model needs %d x %d", path, name, got,
                         t->shape[0], t->shape[1]);
        else if (strcmp(en->dtype, "F32") && strcmp(en->dtype, "F16") && strcmp(en->dtype, "BF16"))
            rc = err_set(e, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected", path, name,
                         en->dtype);
    }
    for (int i = 0; !rc && i < ix->n; i++)
        if (!used[i])
            rc = err_set(e, "%s: tensor '%s' is no adapter of this model (r %d on %s)", path,
                         ix->t[i].name, c->lora_rank,
                         lora_targets_spec(c));
    free(used);
    model_free(&whole);
    return rc;
}

/* The adapters this process holds, each from its whole tensor. */
static int read_adapters(const StIndex *ix, Model *m, Err *e)
{
    float *full = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int k = 0; !rc && k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        char name[ST_MAX_NAME] = "";
        size_t n = (size_t)t->shape[0] * t->shape[1];
        float *dst = m->params + t->offset;
        if (n != t->numel && cap < n) {
            free(full);
            cap = (full = malloc(n * sizeof *full)) ? n : 0;
        }
        float *into = n == t->numel ? dst : full;
        rc = into && !peft_name(&m->cfg, t->name, name, sizeof name)
                 ? safetensors_entry_f32(ix, safetensors_find(ix, name), into, e)
                 : err_set(e, "out of memory loading adapter '%s'", t->name);
        for (size_t i = 0; !rc && into != dst && i < t->numel; i++)
            dst[i] = into[model_global_index(m, t, i) - t->global_offset];
        size_t bad = rc ? t->numel : floats_first_nonfinite(dst, t->numel);
        if (!rc && bad < t->numel)
            rc = err_set(e, "adapter '%s': element %zu is not finite", name, bad);
    }
    free(full);
    return rc;
}

int peft_load_adapters(const char *dir, Model *m, Err *e)
{
    char path[PATH_BUF];
    StIndex ix;
    memset(&ix, 0, sizeof ix);
    if (path_fmt(path, sizeof path, e, "%s/" PEFT_WEIGHTS_NAME, dir) ||
        safetensors_read_index(path, &ix, e))
        return -1;
    int rc = check_entries(path, &ix, &m->cfg, e);
    if (!rc) rc = read_adapters(&ix, m, e);
    safetensors_index_free(&ix);
    return rc;
}
