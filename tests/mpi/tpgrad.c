/* Tensor-parallel gradient check, run under mpirun with N ranks = one TP
 * group: every rank builds the whole model and its TP shard, runs forward +
 * backward on the same batch (twice: gradients accumulate), and checks that
 * each element of the shard's gradient equals the matching element of the
 * whole model's gradient,
 * and the forward-only plan of the shard gives its loss bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm/mpi/comm.h"
#include "models/model.h"
#include "models/ops.h"
#include "models/philox.h"

static void tp_sum(void *ctx, float *buf, size_t n) { coll_allreduce_sum_f32((Group *)ctx, buf, n); }

static void make_batch(const ModelConfig *c, int B, int *in, int *tg)
{
    for (int i = 0; i < B * c->seq_len; i++) {
        in[i] = (i * 7 + 3) % c->vocab;
        tg[i] = (i * 5 + 1) % c->vocab;
    }
}

/* LoRA's B starts at zero, which leaves A's gradient zero: both models move
 * their adapters alike (keyed by the whole model's index). */
static void perturb_adapters(Model *m)
{
    for (int k = 0; k < m->n_tensors; k++) {
        const ParamInfo *t = &m->tensors[k];
        for (size_t i = 0; i < t->numel; i++)
            m->params[t->offset + i] += 0.1f * philox_normal(3, RNG_SAMPLE, model_global_index(m, t, i));
    }
}

/* A forward with LoRA dropout keyed alike on every model (and rank). */
static double keyed_forward(Model *m, const ModelConfig *c, const int *in, const int *tg, int B)
{
    if (c->lora_dropout > 0) m->dropout_key = 0xD40F, m->dropout_row0 = 7;
    return model_forward(m, in, tg, B);
}

/* Returns the number of mismatching elements; *worst = max relative error. */
static int check(const char *what, const ModelConfig *c, int B, double *worst, size_t *compared)
{
    Group *g = group_world();
    Err e;
    Model full, part;
    ModelShard sh = {.tp_rank = group_rank(g), .tp_size = group_size(g), .last_block = -1,
                     .slots = 1};
    if (model_init(&full, c, B, 7, &e) || model_init_shard(&part, c, &sh, B, 7, &e)) {
        fprintf(stderr, "%s: %s\n", what, e.msg);
        return 1;
    }
    part.tp_allreduce = tp_sum;
    part.tp_ctx = g;
    if (c->lora_rank) perturb_adapters(&full), perturb_adapters(&part);
    int *in = calloc((size_t)B * c->seq_len, sizeof(int)), *tg = calloc((size_t)B * c->seq_len, sizeof(int));
    make_batch(c, B, in, tg);
    double lf = keyed_forward(&full, c, in, tg, B), lp = keyed_forward(&part, c, in, tg, B);
    /* the forward-only plan (zo, eval) of the same shard: the same loss, bit for bit */
    Model lean;
    ModelShard lsh = sh;
    lsh.forward_only = 1;
    if (model_init_shard(&lean, c, &lsh, B, 7, &e)) {
        fprintf(stderr, "%s: %s\n", what, e.msg);
        return 1;
    }
    lean.tp_allreduce = tp_sum;
    lean.tp_ctx = g;
    if (c->lora_rank) perturb_adapters(&lean);
    double ll = keyed_forward(&lean, c, in, tg, B);
    int lean_bad = memcmp(&ll, &lp, sizeof ll) != 0;
    if (lean_bad)
        fprintf(stderr, "%s: forward-only shard loss %.17g, training shard %.17g\n", what, ll, lp);
    model_free(&lean);
    model_zero_grad(&full);
    model_zero_grad(&part);
    model_backward(&full, in, tg, B, 1.0f);
    model_backward(&part, in, tg, B, 1.0f);
    /* a second micro-batch accumulates: what a rank sums over tp (replicated
     * k/v, qk norms) must not sum the first one's share again */
    keyed_forward(&full, c, in, tg, B);
    keyed_forward(&part, c, in, tg, B);
    model_backward(&full, in, tg, B, 0.5f);
    model_backward(&part, in, tg, B, 0.5f);
    int bad = (fabs(lf - lp) > 1e-5 * fabs(lf)) + lean_bad;
    if (bad) fprintf(stderr, "%s: loss %.9g (whole) vs %.9g (shard)\n", what, lf, lp);
    for (int k = 0; k < part.n_tensors; k++) {
        const ParamInfo *t = &part.tensors[k];
        const ParamInfo *w = model_find_tensor(&full, t->name);
        for (size_t i = 0; i < t->numel; i++) {
            float a = part.grads[t->offset + i];
            float b = full.grads[w->offset + (model_global_index(&part, t, i) - t->global_offset)];
            double rel = fabs(a - b) / (fabs(b) > 1e-3 ? fabs(b) : 1e-3);
            if (rel > *worst) *worst = rel;
            if (rel > 1e-3) {
                if (bad < 5) fprintf(stderr, "%s: %s[%zu]: shard %g vs whole %g\n", what, t->name, i, a, b);
                bad++;
            }
            (*compared)++;
        }
    }
    free(in);
    free(tg);
    model_free(&full);
    model_free(&part);
    return bad;
}

int main(int argc, char **argv)
{
    CommWorld w;
    comm_init(&argc, &argv, &w);
    ops_set_threads(1);
    ModelConfig gpt = {.kind = MODEL_GPT, .n_layer = 2, .n_head = 4, .n_embd = 16, .seq_len = 8,
                       .vocab = 32};
    ModelConfig mlp = {.kind = MODEL_MLP, .n_layer = 2, .n_embd = 8, .seq_len = 3, .vocab = 5};
    /* 2 kv heads: split by tp 2, replicated on every rank by tp 4 */
    ModelConfig llama = {.kind = MODEL_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2,
                         .n_embd = 16, .seq_len = 8, .vocab = 32, .mlp_hidden = 24};
    /* heads x head_dim != width, biases, the qk-norm, an untied head */
    ModelConfig qwen = llama;
    qwen.head_dim = 6;
    qwen.qkv_bias = qwen.attn_out_bias = qwen.mlp_bias = qwen.qk_norm = qwen.untied_head = 1;
    /* LoRA on every linear: A and B split as the weights' all-reduces allow */
    ModelConfig gpt_lora = gpt, llama_lora = llama, qwen_lora = qwen;
    gpt_lora.lora_rank = llama_lora.lora_rank = qwen_lora.lora_rank = 3;
    snprintf(gpt_lora.lora_targets, sizeof gpt_lora.lora_targets, "all-linear");
    snprintf(llama_lora.lora_targets, sizeof llama_lora.lora_targets, "all-linear");
    snprintf(qwen_lora.lora_targets, sizeof qwen_lora.lora_targets, "all-linear");
    qwen_lora.lora_dropout = 0.25f; /* each rank draws its slice of the whole's mask */
    double worst = 0;
    size_t compared = 0;
    int bad = check("gpt", &gpt, 3, &worst, &compared) + check("mlp", &mlp, 4, &worst, &compared) +
              check("llama", &llama, 3, &worst, &compared) +
              check("llama options", &qwen, 3, &worst, &compared) +
              check("gpt lora", &gpt_lora, 3, &worst, &compared) +
              check("llama lora", &llama_lora, 3, &worst, &compared) +
              check("llama options lora", &qwen_lora, 3, &worst, &compared);
    int64_t any = bad;
    coll_allreduce_max_i64(group_world(), &any, 1);
    if (w.rank == 0)
        printf("%s: tp=%d, %zu gradient elements on rank 0, max relative difference %.2g\n",
               any ? "FAIL" : "ok", w.size, compared, worst);
    comm_finalize();
    return any ? 1 : 0;
}
