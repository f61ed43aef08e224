/* --zo-params: the selection language of worker/method/zo/zo_params.h. A selection
 * is decided on the WHOLE model's tensor table (declared, never allocated),
 * so every rank, stage and tensor-parallel slice agrees on it; a shard's
 * tensors take the flag of the whole-model tensor at the same global
 * offset, which is also how a tied copy of wte follows wte. */
#include "worker/method/zo/zo_params.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "models/arch.h" /* model_kind_name */

#define SEL_MAX 128 /* characters of one selector */
#define PRESETS "all, norms, biases, embeddings, last:K"

typedef enum { SEL_ALL, SEL_NORMS, SEL_BIASES, SEL_EMBEDDINGS, SEL_LAST, SEL_GLOB } SelKind;

typedef struct {
    SelKind kind;
    int k;              /* last:K */
    char text[SEL_MAX]; /* as written (trimmed): the glob, or the preset */
} Selector;

/* "--zo-params 'SPEC'", and the selector at fault when SPEC has several. */
static const char *where(const char *spec, const char *sel, char *buf, size_t n)
{
    if (!strcmp(spec, sel)) snprintf(buf, n, "--zo-params '%s'", spec);
    else snprintf(buf, n, "--zo-params '%s', selector '%s'", spec, sel);
    return buf;
}

/* The selector starting at *p (up to ',' or the end), trimmed of blanks;
 * *p moves past it and its comma, *more says whether there was one. */
static int next_selector(const char *spec, const char **p, Selector *s, int *more, Err *e)
{
    const char *a = *p, *end = strchr(a, ',');
    if (!end) end = a + strlen(a);
    *more = *end == ',';
    *p = *more ? end + 1 : end;
    while (a < end && (*a == ' ' || *a == '\t')) a++;
    const char *b = end;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    size_t n = (size_t)(b - a);
    memset(s, 0, sizeof *s);
    if (n == 0)
        return err_set(e, "--zo-params '%s': an empty selector (two commas, or a comma at an "
                          "end); write comma-separated selectors: " PRESETS " or a tensor-name "
                          "glob", spec);
    if (n >= SEL_MAX)
        return err_set(e, "--zo-params '%s': a selector longer than %d characters", spec,
                       SEL_MAX - 1);
    memcpy(s->text, a, n);
    const char *colon = strchr(s->text, ':');
    char at[2 * SEL_MAX + 64];
    if (colon) {
        if (strncmp(s->text, "last:", 5))
            return err_set(e, "--zo-params '%s': unknown preset '%.*s:'; the presets are " PRESETS,
                           spec, (int)(colon - s->text), s->text);
        const char *d = s->text + 5;
        long k = 0;
        int digits = 0;
        for (; *d >= '0' && *d <= '9'; d++, digits++)
            if (k <= 1000000) k = k * 10 + (*d - '0'); /* saturates: beyond any --layers */
        if (!digits || *d)
            return err_set(e, "%s: K of last:K must be a whole number of blocks, e.g. last:2",
                           where(spec, s->text, at, sizeof at));
        if (k < 1)
            return err_set(e, "%s: K must be at least 1 (the last K transformer blocks)",
                           where(spec, s->text, at, sizeof at));
        s->kind = SEL_LAST;
        s->k = k > 1000000 ? 1000000 : (int)k;
        return 0;
    }
    if (!strcmp(s->text, "all")) s->kind = SEL_ALL;
    else if (!strcmp(s->text, "norms")) s->kind = SEL_NORMS;
    else if (!strcmp(s->text, "biases")) s->kind = SEL_BIASES;
    else if (!strcmp(s->text, "embeddings")) s->kind = SEL_EMBEDDINGS;
    else s->kind = SEL_GLOB;
    return 0;
}

/* Calls fn for every selector; stops at the first error. */
static int each_selector(const char *spec, int (*fn)(void *ctx, const Selector *s, Err *e),
                         void *ctx, Err *e)
{
    if (!spec) spec = ZO_PARAMS_DEFAULT;
    if (!spec[0])
        return err_set(e, "--zo-params '': empty; use 'all' (every tensor) or comma-separated "
                          "selectors: " PRESETS " or a tensor-name glob");
    const char *p = spec;
    for (;;) {
        Selector s;
        int more;
        if (next_selector(spec, &p, &s, &more, e)) return -1;
        if (fn && fn(ctx, &s, e)) return -1;
        if (!more) return 0;
    }
}

int zo_params_check_syntax(const char *spec, Err *e)
{
    return each_selector(spec, NULL, NULL, e);
}

/* ---- the whole model's table --------------------------------------------- */

/* Every tensor of the whole model, declared (names, blocks, offsets) but
 * with no weights allocated. */
static int whole_table(const ModelConfig *cfg, Model *w, Err *e)
{
    ModelShard whole = model_shard_whole(1);
    return model_declare_shard(w, cfg, &whole, e) ? err_wrap(e, "--zo-params") : 0;
}

/* Is the part of name before its last dot a layernorm's ("ln1", "lnf")? */
static int is_norm(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    const char *c = dot;
    while (c > name && c[-1] != '.') c--;
    return dot - c >= 2 && !strncmp(c, "ln", 2);
}

static int matches(const Selector *s, const Model *w, const ParamInfo *t)
{
    const char *dot = strrchr(t->name, '.');
    switch (s->kind) {
    case SEL_ALL: return 1;
    case SEL_NORMS: return is_norm(t->name);
    case SEL_BIASES: return dot && !strcmp(dot, ".b");
    /* the token embedding, the position table and an untied head (the
     * output embedding) */
    case SEL_EMBEDDINGS:
        return !strcmp(t->name, "wte") || !strcmp(t->name, "wpe") || !strcmp(t->name, "head.w");
    /* the last K layer blocks and the final block (the last of all) */
    case SEL_LAST: return t->block >= w->n_blocks - 1 - s->k;
    case SEL_GLOB: return fnmatch(s->text, t->name, 0) == 0;
    }
    return 0;
}

typedef struct {
    const Model *w;
    uint8_t *sel; /* per whole-model tensor */
    const char *spec;
} Marking;

/* Under LoRA the table holds only the adapters: a selector of frozen
 * weights (norms, embeddings, a base tensor's name) has nothing to move. */
static int lora_selects_none(const Marking *k, const Selector *s, Err *e)
{
    const Model *w = k->w;
    char at[2 * SEL_MAX + 64];
    return err_set(e, "%s selects none of the LoRA adapters: under --lora-rank %d only the "
                      "adapters train (%d tensors named like %s .. %s; the base weights are "
                      "frozen); select among them with 'all', 'last:K' or a glob such as "
                      "'h.*.lora_B'", where(k->spec, s->text, at, sizeof at), w->cfg.lora_rank,
                   w->n_tensors, w->n_tensors ? w->tensors[0].name : "-",
                   w->n_tensors ? w->tensors[w->n_tensors - 1].name : "-");
}

static int mark(void *ctx, const Selector *s, Err *e)
{
    Marking *k = ctx;
    const Model *w = k->w;
    char at[2 * SEL_MAX + 64];
    if (s->kind == SEL_LAST && s->k > w->cfg.n_layer)
        return err_set(e, "%s: K must be between 1 and %d (the model's --layers)",
                       where(k->spec, s->text, at, sizeof at), w->cfg.n_layer);
    int hits = 0;
    for (int i = 0; i < w->n_tensors; i++)
        if (!w->tensors[i].tied_copy && matches(s, w, &w->tensors[i])) {
            k->sel[i] = 1;
            hits++;
        }
    if (hits) return 0;
    if (w->base.n_tensors) return lora_selects_none(k, s, e);
    const ParamInfo *last = &w->tensors[w->n_tensors - 1];
    return err_set(e, "%s selects no tensor of this %s model; the names are like %s, %s .. %s "
                      "(models/%s.c), the presets " PRESETS, where(k->spec, s->text, at, sizeof at),
                   model_kind_name(w->cfg.kind), w->tensors[0].name,
                   w->n_tensors > 2 ? w->tensors[2].name : w->tensors[0].name, last->name,
                   model_transformer(&w->cfg) ? "gpt" : model_kind_name(w->cfg.kind));
}

/* The whole model's table and its selection flags (sel: w->n_tensors). */
static int select_whole(const ModelConfig *cfg, const char *spec, Model *w, uint8_t **sel, Err *e)
{
    *sel = NULL;
    if (zo_params_check_syntax(spec, e) || whole_table(cfg, w, e)) return -1;
    *sel = calloc(w->n_tensors ? (size_t)w->n_tensors : 1, 1);
    if (!*sel) {
        model_free(w);
        return err_set(e, "out of memory");
    }
    Marking k = {w, *sel, spec ? spec : ZO_PARAMS_DEFAULT};
    if (each_selector(k.spec, mark, &k, e)) {
        free(*sel);
        *sel = NULL;
        model_free(w);
        return -1;
    }
    return 0;
}

int zo_params_validate(const ModelConfig *cfg, const char *spec, Err *e)
{
    Model w;
    uint8_t *sel;
    if (select_whole(cfg, spec, &w, &sel, e)) return -1;
    free(sel);
    model_free(&w);
    return 0;
}

/* The whole-model tensor that starts at global offset g (tensors are in
 * canonical order), or -1. */
static int whole_index(const Model *w, size_t g)
{
    int lo = 0, hi = w->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        size_t o = w->tensors[mid].global_offset;
        if (o == g) return mid;
        if (o < g) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int zo_params_select(const Model *m, const char *spec, uint8_t *active, Err *e)
{
    Model w;
    uint8_t *sel;
    if (select_whole(&m->cfg, spec, &w, &sel, e)) return -1;
    int rc = 0;
    for (int k = 0; k < m->n_tensors && !rc; k++) {
        int i = whole_index(&w, m->tensors[k].global_offset);
        if (i < 0 || strcmp(w.tensors[i].name, m->tensors[k].name))
            rc = err_set(e, "--zo-params: tensor %s (global offset %zu) of this shard is not in "
                            "the whole model's table", m->tensors[k].name,
                         m->tensors[k].global_offset);
        else
            active[k] = sel[i];
    }
    free(sel);
    model_free(&w);
    return rc;
}

int zo_params_count(const ModelConfig *cfg, const char *spec, int *tensors, int *of_tensors,
                    uint64_t *elements, uint64_t *of_elements, Err *e)
{
    Model w;
    uint8_t *sel;
    if (select_whole(cfg, spec, &w, &sel, e)) return -1;
    int nt = 0, all = 0;
    uint64_t ne = 0, alle = 0;
    for (int i = 0; i < w.n_tensors; i++) {
        const ParamInfo *t = &w.tensors[i];
        if (t->tied_copy) continue;
        uint64_t n = (uint64_t)t->shape[0] * (uint64_t)t->shape[1];
        all++;
        alle += n;
        if (sel[i]) {
            nt++;
            ne += n;
        }
    }
    if (tensors) *tensors = nt;
    if (of_tensors) *of_tensors = all;
    if (elements) *elements = ne;
    if (of_elements) *of_elements = alle;
    free(sel);
    model_free(&w);
    return 0;
}

int zo_params_id(const ModelConfig *cfg, const char *spec, uint64_t *id, Err *e)
{
    Model w;
    uint8_t *sel;
    if (select_whole(cfg, spec, &w, &sel, e)) return -1;
    uint64_t h = FNV1A64_INIT;
    int every = 1;
    for (int i = 0; i < w.n_tensors; i++) {
        if (w.tensors[i].tied_copy) continue;
        if (!sel[i]) {
            every = 0;
            continue;
        }
        const char *name = w.tensors[i].name;
        h = fnv1a64(h, name, strlen(name) + 1);
    }
    *id = every ? ZO_PARAMS_ALL_ID : (h == ZO_PARAMS_ALL_ID ? 1 : h);
    free(sel);
    model_free(&w);
    return 0;
}

static void describe(uint64_t id, char *out, size_t n)
{
    if (id == ZO_PARAMS_ALL_ID) snprintf(out, n, "every tensor");
    else snprintf(out, n, "selection %016llx", (unsigned long long)id);
}

int zo_params_check_journal(const char *path, uint64_t journal_id, uint64_t run_id,
                            const char *spec, Err *e)
{
    if (journal_id == run_id) return 0;
    char theirs[64], ours[64];
    describe(journal_id, theirs, sizeof theirs);
    describe(run_id, ours, sizeof ours);
    return err_set(e, "%s: the journal was written for another --zo-params selection (journal: "
                      "%s; this run's --zo-params '%s': %s): resume or replay with the "
                      "--zo-params of the run that wrote it (its config.json), or use a fresh "
                      "--out", path, theirs, spec ? spec : ZO_PARAMS_DEFAULT, ours);
}
