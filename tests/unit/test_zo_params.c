/* --zo-params: the presets, globs, the tied copy of wte, the errors, a
 * shard's flags against the whole model's, the selection id and the
 * journal header that carries it. */
#include <criterion/criterion.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "tests/unit/testutil.h"
#include "worker/config/config.h"
#include "worker/method/methods.h"
#include "worker/method/zo/journal.h"
#include "worker/method/zo/zo_params.h"

static const ModelConfig GPT4 = {.kind = MODEL_GPT, .n_layer = 4, .n_head = 4, .n_embd = 16,
                                 .seq_len = 8, .vocab = 32};
static const ModelConfig MLP3 = {.kind = MODEL_MLP, .n_layer = 3, .n_embd = 8, .seq_len = 2,
                                 .vocab = 8};

static void build(Model *m, const ModelConfig *c, int tp_rank, int tp, int first, int last)
{
    ModelShard sh = {.tp_rank = tp_rank, .tp_size = tp, .first_block = first, .last_block = last,
                     .slots = 1, .forward_only = 1};
    Err e;
    cr_assert_eq(model_build_shard(m, c, &sh, 1, &e), 0, "%s", e.msg);
}

/* The selected names of m under spec, as one ","-joined string. */
static const char *selected(const Model *m, const char *spec)
{
    static char out[4096];
    uint8_t active[256];
    Err e;
    cr_assert_leq(m->n_tensors, 256);
    cr_assert_eq(zo_params_select(m, spec, active, &e), 0, "%s: %s", spec, e.msg);
    out[0] = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        cr_assert(active[k] == 0 || active[k] == 1);
        if (!active[k]) continue;
        if (out[0]) strcat(out, ",");
        strcat(out, m->tensors[k].name);
    }
    return out;
}

static int count_selected(const Model *m, const char *spec)
{
    const char *s = selected(m, spec);
    if (!*s) return 0;
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

Test(zo_params, presets_on_gpt)
{
    Model m;
    build(&m, &GPT4, 0, 1, 0, -1);
    cr_assert_eq(m.n_tensors, 52);
    cr_assert_eq(count_selected(&m, "all"), 52);
    cr_assert_eq(count_selected(&m, NULL), 52, "NULL is the default, all");
    cr_assert_str_eq(selected(&m, "embeddings"), "wte,wpe");
    cr_assert_eq(count_selected(&m, "norms"), 4 * 4 + 2);
    const char *n = selected(&m, "norms");
    cr_assert(strstr(n, "h.0.ln1.w,h.0.ln1.b,h.0.ln2.w,h.0.ln2.b,h.1.ln1.w"), "%s", n);
    cr_assert(strstr(n, "h.3.ln2.b,lnf.w,lnf.b"), "%s", n);
    cr_assert_null(strstr(n, "attn"), "%s", n);
    /* every bias: 4 linear biases and 2 layernorm biases per block, and lnf.b */
    cr_assert_eq(count_selected(&m, "biases"), 4 * 6 + 1);
    cr_assert_null(strstr(selected(&m, "biases"), ".w"));
    cr_assert_eq(count_selected(&m, "norms,biases"), 4 * 8 + 2);
    const char *l1 = selected(&m, "last:1");
    cr_assert_eq(count_selected(&m, "last:1"), 12 + 2, "%s", l1);
    cr_assert(!strncmp(l1, "h.3.ln1.w,", 10) && strstr(l1, "h.3.mlp.proj.b,lnf.w,lnf.b"), "%s",
              l1);
    cr_assert_eq(count_selected(&m, "last:2"), 24 + 2);
    cr_assert(!strncmp(selected(&m, "last:2"), "h.2.ln1.w,", 10));
    cr_assert_eq(count_selected(&m, "last:4"), 50, "every block but the embeddings");
    cr_assert_eq(count_selected(&m, "last:4,embeddings"), 52);
    model_free(&m);
}

Test(zo_params, globs)
{
    Model m;
    build(&m, &GPT4, 0, 1, 0, -1);
    cr_assert_eq(count_selected(&m, "h.*.attn.*"), 4 * 4, "'*' crosses dots");
    cr_assert_str_eq(selected(&m, "lnf.?"), "lnf.w,lnf.b");
    cr_assert_str_eq(selected(&m, "h.3.mlp.fc.w"), "h.3.mlp.fc.w");
    cr_assert_str_eq(selected(&m, " wpe , h.[01].ln1.w "), "wpe,h.0.ln1.w,h.1.ln1.w",
                     "blanks around selectors are trimmed");
    cr_assert_str_eq(selected(&m, "wte,wte,embeddings"), "wte,wpe", "overlaps select once");
    cr_assert_eq(count_selected(&m, "*"), 52);
    model_free(&m);
}

Test(zo_params, mlp)
{
    Model m;
    build(&m, &MLP3, 0, 1, 0, -1);
    cr_assert_str_eq(selected(&m, "last:1"), "fc.2.w,fc.2.b,head.w,head.b");
    cr_assert_str_eq(selected(&m, "biases"), "fc.0.b,fc.1.b,fc.2.b,head.b");
    cr_assert_eq(count_selected(&m, "last:3"), 8);
    Err e;
    uint8_t a[16];
    cr_assert_eq(zo_params_select(&m, "norms", a, &e), -1, "an MLP has no layernorm");
    cr_assert(strstr(e.msg, "'norms' selects no tensor of this mlp model"), "%s", e.msg);
    model_free(&m);
}

/* A pipeline stage holding the head but not the embedding keeps its own
 * copy of wte: selected exactly when wte is, whatever else selects. */
Test(zo_params, tied_copy_follows_wte)
{
    Model m;
    build(&m, &GPT4, 0, 1, 4, 5);
    int tied = -1;
    for (int k = 0; k < m.n_tensors; k++)
        if (m.tensors[k].tied_copy) tied = k;
    cr_assert_geq(tied, 0, "the stage holds a tied copy");
    cr_assert_str_eq(m.tensors[tied].name, "wte");
    uint8_t a[64];
    Err e;
    const char *on[] = {"embeddings", "wte", "w*", "all", "biases,embeddings"};
    const char *off[] = {"last:1", "last:4", "wpe", "norms", "lnf.*", "h.*"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        cr_assert_eq(zo_params_select(&m, on[i], a, &e), 0, "%s", e.msg);
        cr_assert_eq(a[tied], 1, "%s selects wte, so its copy", on[i]);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        cr_assert_eq(zo_params_select(&m, off[i], a, &e), 0, "%s", e.msg);
        cr_assert_eq(a[tied], 0, "%s does not select wte, so not its copy", off[i]);
    }
    cr_assert_str_eq(selected(&m, "last:1"), "h.3.ln1.w,h.3.ln1.b,h.3.attn.qkv.w,h.3.attn.qkv.b,"
                                             "h.3.attn.proj.w,h.3.attn.proj.b,h.3.ln2.w,h.3.ln2.b,"
                                             "h.3.mlp.fc.w,h.3.mlp.fc.b,h.3.mlp.proj.w,"
                                             "h.3.mlp.proj.b,lnf.w,lnf.b");
    model_free(&m);
}

/* A stage that holds none of the selection: all zero, and no error. */
Test(zo_params, stage_without_selection)
{
    Model m;
    build(&m, &GPT4, 0, 1, 1, 2);
    uint8_t a[64];
    memset(a, 7, sizeof a);
    Err e;
    cr_assert_eq(zo_params_select(&m, "embeddings,last:1", a, &e), 0, "%s", e.msg);
    for (int k = 0; k < m.n_tensors; k++) cr_assert_eq(a[k], 0, "%s", m.tensors[k].name);
    model_free(&m);
}

/* Every pipeline range and tensor-parallel slice flags its tensors as the
 * whole model does. */
Test(zo_params, shard_flags_match_the_whole_model)
{
    const char *specs[] = {"all", "norms", "biases", "embeddings", "last:1", "last:3",
                           "h.*.attn.qkv.*,wpe", "norms,biases,last:2"};
    Model whole;
    build(&whole, &GPT4, 0, 1, 0, -1);
    const int ranges[][2] = {{0, 0}, {0, 2}, {1, 3}, {3, 5}, {5, 5}, {2, 5}};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        uint8_t wa[64], a[64];
        Err e;
        cr_assert_eq(zo_params_select(&whole, specs[s], wa, &e), 0, "%s", e.msg);
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
            for (int tp = 1; tp <= 2; tp++)
                for (int tr = 0; tr < tp; tr++) {
                    Model m;
                    build(&m, &GPT4, tr, tp, ranges[r][0], ranges[r][1]);
                    cr_assert_eq(zo_params_select(&m, specs[s], a, &e), 0, "%s", e.msg);
                    for (int k = 0; k < m.n_tensors; k++) {
                        const ParamInfo *w = model_find_tensor(&whole, m.tensors[k].name);
                        cr_assert_not_null(w);
                        cr_assert_eq(a[k], wa[w - whole.tensors],
                                     "%s: %s of blocks %d..%d, tp %d/%d", specs[s],
                                     m.tensors[k].name, ranges[r][0], ranges[r][1], tr, tp);
                    }
                    model_free(&m);
                }
    }
    model_free(&whole);
}

static void expect_error(const ModelConfig *c, const char *spec, const char *part)
{
    Err e;
    e.msg[0] = 0;
    cr_assert_eq(zo_params_validate(c, spec, &e), -1, "'%s' is accepted", spec);
    cr_assert(strstr(e.msg, part), "'%s': message '%s' lacks '%s'", spec, e.msg, part);
    cr_assert(strstr(e.msg, "--zo-params"), "%s", e.msg);
}

Test(zo_params, errors)
{
    const char *bad[][2] = {
        {"last:x", "K of last:K must be a whole number"},
        {"last:", "K of last:K must be a whole number"},
        {"last:2b", "K of last:K must be a whole number"},
        {"last:0", "at least 1"},
        {"last:5", "between 1 and 4"},
        {"last:99999999999", "between 1 and 4"},
        {"first:2", "unknown preset 'first:'"},
        {"", "empty"},
        {"norms,,biases", "empty selector"},
        {"norms,", "empty selector"},
        {",norms", "empty selector"},
        {"norms,wpx", "'wpx' selects no tensor"},
        {"h.9.*", "selects no tensor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(&GPT4, bad[i][0], bad[i][1]);
    Err e;
    /* syntax alone knows no model: last:5 parses, last:x does not */
    cr_assert_eq(zo_params_check_syntax("last:5,h.*", &e), 0, "%s", e.msg);
    cr_assert_eq(zo_params_check_syntax("last:x", &e), -1);
    cr_assert_eq(zo_params_check_syntax("norms ,biases", &e), 0, "%s", e.msg);
}

Test(zo_params, config_option)
{
    TrainConfig *c = calloc(1, sizeof *c);
    train_config_defaults(c);
    cr_assert_str_eq(c->zo_params, "all");
    snprintf(c->out, sizeof c->out, "runs/x");
    snprintf(c->data, sizeof c->data, "x.tok");
    Err e;
    cr_assert_eq(method_resolve(c, &e), 0, "%s", e.msg);
    snprintf(c->zo_params, sizeof c->zo_params, "norms");
    cr_assert_eq(method_resolve(c, &e), -1, "a subset with adamw");
    cr_assert(strstr(e.msg, "only --optimizer zo"), "%s", e.msg);
    c->optim.kind = OPT_ZO;
    cr_assert_eq(method_resolve(c, &e), 0, "%s", e.msg);
    snprintf(c->zo_params, sizeof c->zo_params, "last:%d", c->model.n_layer + 1);
    cr_assert_eq(method_resolve(c, &e), -1);
    cr_assert(strstr(e.msg, "between 1 and"), "%s", e.msg);
    snprintf(c->zo_params, sizeof c->zo_params, "last:x");
    c->optim.kind = OPT_ADAMW;
    cr_assert_eq(method_resolve(c, &e), -1, "bad syntax is refused for any optimizer");
    cr_assert(strstr(e.msg, "last:K"), "%s", e.msg);
    size_t n;
    const OptSpec *t = train_config_table(&n);
    while (t->name && strcmp(t->name, "zo-params")) t++;
    cr_assert_not_null(t->name);
    cr_assert(strstr(t->help, "last:K") && strstr(t->help, "norms"));
    free(c);
}

Test(zo_params, id)
{
    uint64_t a, b;
    Err e;
    cr_assert_eq(zo_params_id(&GPT4, "all", &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a, ZO_PARAMS_ALL_ID);
    cr_assert_eq(zo_params_id(&GPT4, "wte,wpe,h.*,lnf.*", &a, &e), 0);
    cr_assert_eq(a, ZO_PARAMS_ALL_ID, "every tensor, however spelt");
    cr_assert_eq(zo_params_id(&GPT4, "norms", &a, &e), 0);
    cr_assert_neq(a, ZO_PARAMS_ALL_ID);
    cr_assert_eq(zo_params_id(&GPT4, "h.*.ln?.?,lnf.w,lnf.b", &b, &e), 0);
    cr_assert_eq(a, b, "the same tensors, the same id");
    cr_assert_eq(zo_params_id(&GPT4, "biases", &b, &e), 0);
    cr_assert_neq(a, b);
    cr_assert_eq(zo_params_id(&GPT4, "last:1", &a, &e), 0);
    cr_assert_eq(zo_params_id(&GPT4, "last:2", &b, &e), 0);
    cr_assert_neq(a, b);
    cr_assert_eq(zo_params_id(&GPT4, "last:9", &a, &e), -1);
    int t, of;
    uint64_t n, ofn;
    cr_assert_eq(zo_params_count(&GPT4, "embeddings", &t, &of, &n, &ofn, &e), 0, "%s", e.msg);
    cr_assert_eq(t, 2);
    cr_assert_eq(of, 52);
    cr_assert_eq(n, (uint64_t)(32 + 8) * 16);
    Model m;
    build(&m, &GPT4, 0, 1, 0, -1);
    cr_assert_eq(ofn, m.global_params);
    model_free(&m);
}

static const char *jpath(const char *name)
{
    static char p[4400];
    snprintf(p, sizeof p, "%s/journal.bin", test_tmpdir(name));
    return p;
}

Test(zo_params, journal_header_carries_the_id)
{
    uint64_t id;
    Err e;
    cr_assert_eq(zo_params_id(&GPT4, "norms,biases", &id, &e), 0, "%s", e.msg);
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 1234, .params_id = id};
    const char *p = jpath("zoparams_jnl");
    Journal j;
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    int8_t codes[2] = {3, -4};
    cr_assert_eq(journal_append_step(&j, 0, 1, 2, 0, 0.5f, codes, &e), 0, "%s", e.msg);
    journal_close(&j);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    cr_assert_not_null(b);
    cr_assert_eq(b[8], 2, "a subset writes version 2");
    free(b);
    cr_assert_eq(journal_open_read(&j, p, &e), 0, "%s", e.msg);
    cr_assert_eq(j.h.params_id, id);
    cr_assert_eq(j.h.seed, 11);
    JournalRecord r;
    cr_assert_eq(journal_next(&j, &r, &e), 1, "%s", e.msg);
    cr_assert_eq(r.codes[1], -4);
    journal_close(&j);
    /* the same selection appends; another one, or every tensor, is refused */
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    journal_close(&j);
    ZoIdentity other = h;
    other.params_id = id ^ 1;
    cr_assert_eq(journal_open_append(&j, p, &other, &e), -1);
    cr_assert(strstr(e.msg, "another --zo-params selection"), "%s", e.msg);
    other.params_id = ZO_PARAMS_ALL_ID;
    cr_assert_eq(journal_open_append(&j, p, &other, &e), -1);
    cr_assert_eq(zo_params_check_journal(p, id, id, "norms,biases", &e), 0);
    cr_assert_eq(zo_params_check_journal(p, id, 0, "all", &e), -1);
    cr_assert(strstr(e.msg, "'all': every tensor") && strstr(e.msg, "fresh --out"), "%s", e.msg);
    /* a header byte flipped inside the id is caught by its checksum */
    b = test_read_file(p, &len);
    b[50] ^= 1;
    cr_assert_eq(test_write_file(p, b, len), 0);
    free(b);
    cr_assert_eq(journal_open_read(&j, p, &e), -1);
    cr_assert(strstr(e.msg, "checksum"), "%s", e.msg);
}

/* Every tensor writes the version 1 header older builds wrote; it, and a
 * version 1 journal, read as every tensor (id 0). */
Test(zo_params, version_1_is_every_tensor)
{
    ZoIdentity h = {.seed = 11, .eps = 1e-3f, .scale = 0.25f, .weight_decay = 0.1f,
                    .samples = 2, .global_params = 1234};
    const char *p = jpath("zoparams_v1");
    Journal j;
    Err e;
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    journal_close(&j);
    size_t len;
    unsigned char *b = test_read_file(p, &len);
    cr_assert_eq(len, JOURNAL_HEADER_BYTES);
    cr_assert_eq(b[8], 1);
    for (size_t i = 48; i < JOURNAL_HEADER_BYTES; i++) cr_assert_eq(b[i], 0, "byte %zu", i);
    free(b);
    cr_assert_eq(journal_open_read(&j, p, &e), 0, "%s", e.msg);
    cr_assert_eq(j.h.params_id, ZO_PARAMS_ALL_ID);
    journal_close(&j);
    cr_assert_eq(journal_open_append(&j, p, &h, &e), 0, "%s", e.msg);
    journal_close(&j);
    h.params_id = 77;
    cr_assert_eq(journal_open_append(&j, p, &h, &e), -1);
}
