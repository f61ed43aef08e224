/* Fuzz target: the GPT-2 weight readers (worker/ckpt/hfio.c): a Hugging
 * Face directory's config.json and model.safetensors header, and an llm.c
 * model file.
 *
 * The first byte of an input picks what the rest is:
 *   0  model.safetensors, beside a valid config.json of a tiny GPT;
 *   1  config.json, beside that tiny GPT's valid model.safetensors;
 *   2  an llm.c model file.
 * wsource_open must refuse or accept without a sanitizer report; a
 * source it accepts must have a buildable shape, and (when small) must load
 * into a model of that shape: every range it checked is then read.
 *
 * Seeds (MPITRAIN_FUZZ_GEN): the tiny GPT's own HF export (both files) and
 * llm.c export, from mpitrain's writers, and a Qwen2 config.json (its
 * model_type takes the llama family's reader: worker/ckpt/llamaio.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/cost.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/ckpt/hfio.h"

static char g_dir[FUZZ_PATH], g_st[FUZZ_PATH], g_cfg[FUZZ_PATH], g_bin[FUZZ_PATH];
static void *g_good_st, *g_good_cfg;
static size_t g_good_st_len, g_good_cfg_len;

static void *slurp(const char *path, size_t *len)
{
    void *buf;
    Err e = {{0}};
    if (read_file(path, 64u << 20, &buf, len, &e)) fuzz_die("%s", e.msg);
    return buf;
}

/* A seed: the mode byte, then a file. */
static void seed_mode(const char *name, int mode, const void *data, size_t n)
{
    unsigned char *b = malloc(n + 1);
    if (!b) fuzz_die("out of memory");
    b[0] = (unsigned char)mode;
    memcpy(b + 1, data, n);
    fuzz_seed(name, b, n + 1);
    free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keep_stderr();
    const char *w = fuzz_workdir("gpt2");
    fuzz_join(g_dir, w, "hf");
    fuzz_join(g_bin, w, "model.bin");
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_dir);
    snprintf(g_cfg, sizeof g_cfg, "%s/config.json", g_dir);
    ModelConfig c = {.kind = MODEL_GPT, .n_layer = 1, .n_head = 2, .n_embd = 4, .seq_len = 4,
                     .vocab = 8};
    Model m;
    Err e = {{0}};
    if (model_init(&m, &c, 1, 7, &e) || gpt2_export_hf(&m, NULL, "F32", g_dir, &e) ||
        gpt2_export_llmc(&m, g_bin, &e))
        fuzz_die("tiny GPT export: %s", e.msg);
    model_free(&m);
    g_good_st = slurp(g_st, &g_good_st_len);
    g_good_cfg = slurp(g_cfg, &g_good_cfg_len);
    if (fuzz_gen_dir()) {
        size_t n;
        void *bin = slurp(g_bin, &n);
        seed_mode("hf_safetensors", 0, g_good_st, g_good_st_len);
        seed_mode("hf_config", 1, g_good_cfg, g_good_cfg_len);
        seed_mode("llmc_bin", 2, bin, n);
        static const char QWEN2[] =
            "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"num_hidden_layers\":1,"
            "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"hidden_size\":4,\"intermediate_size\":6,"
            "\"max_position_embeddings\":4,\"vocab_size\":8,\"rms_norm_eps\":1e-06,\"rope_theta\":10000.0,"
            "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
            "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":2},\"use_sliding_window\":false,"
            "\"sliding_window\":4096,\"max_window_layers\":1,\"tie_word_embeddings\":false,"
            "\"hidden_act\":\"silu\",\"attention_dropout\":0.0}";
        seed_mode("hf_config_qwen2", 1, QWEN2, sizeof QWEN2 - 1);
        free(bin);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 3;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    const char *src = g_dir;
    if (mode == 0) {
        fuzz_write_file(g_cfg, g_good_cfg, g_good_cfg_len);
        fuzz_write_file(g_st, rest, n);
    } else if (mode == 1) {
        fuzz_write_file(g_cfg, rest, n);
        fuzz_write_file(g_st, g_good_st, g_good_st_len);
    } else {
        fuzz_write_file(g_bin, rest, n);
        src = g_bin;
    }
    WeightSource s;
    Err e = {{0}};
    int rc = wsource_open(src, &s, &e);
    fuzz_verbose("wsource_open", rc, &e);
    if (!rc) {
        if (model_config_validate(&s.model, &e))
            fuzz_fail("an accepted source has an unbuildable shape: %s", e.msg);
        /* a shape the file's size allows is small; load it */
        if (cost_param_count(&s.model) < (1u << 20)) {
            Model m;
            ModelShard whole = model_shard_whole(1);
            if (model_build_shard(&m, &s.model, &whole, 1, &e))
                fuzz_fail("an accepted source's model does not build: %s", e.msg);
            rc = wsource_load(&s, &m, &e);
            fuzz_verbose("wsource_load", rc, &e);
            if (!rc) fuzz_touch(m.params, m.n_params * sizeof(float));
            model_free(&m);
        }
    }
    wsource_close(&s);
    return 0;
}
