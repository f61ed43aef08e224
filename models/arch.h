#ifndef MPITRAIN_ARCH_H
#define MPITRAIN_ARCH_H
/* What a model is, as data: its kind and size (ModelConfig), the part of it
 * one process holds (ModelShard), and its family's description, ModelArch:
 * what a transformer is made of (TransformerDesc), the numbers that gives a
 * configuration (TransformerShape), and the counts that follow (blocks,
 * parameters, activations, FLOPs), all answered without building anything.
 * The lowest room of models/: it includes nothing of a built Model.
 * models/cost.c composes these counts into memory and FLOPs; models/model.h
 * builds and runs a model through the family's ModelOps (ModelArch.ops).
 *
 * The transformer families share one implementation: models/gpt.c (tensor
 * list LAYER_TENSORS, forward, backward, weight view, costs) and
 * models/gpt_decode.c (the KV-cache decoder) read the family's
 * TransformerDesc and TransformerShape, not its kind. Every piece below has
 * its kernel (models/ops.c) and any mix of them builds; transformer_check
 * refuses only what cannot be (an RMSNorm with a shift).
 *
 * Adding a transformer family (what llama did; a family that only mixes
 * the pieces gpt.c has needs steps 1, 2 and 4):
 *   1. The entry: a ModelKind value (worker/config/config.c's --model
 *      choices follow the enum), its TransformerDesc next to
 *      GPT2_TRANSFORMER (arch.c), its ModelArch in gpt.c (one
 *      TRANSFORMER_ARCH line) and its line in model_arch (arch.c).
 *   2. Sizes the config must carry (kv heads, the MLP's intermediate size,
 *      norm epsilon, rope theta): ModelConfig fields, carried by the plan
 *      and the checkpoint manifest; transformer_shape reads them.
 *   3. A new piece: its kernels in models/ops.c (forward and backward);
 *      in gpt.c its LAYER_TENSORS rows (need: the NEED_* bit that selects
 *      them; kv: split or replicated over tp; tp_sum: a gradient summed
 *      over tp), the calls in layer_forward/layer_backward, its buffers in
 *      carve_layer and carve_lean_layer (the lean layout), the FLOP and
 *      block costs; the same in gpt_decode.c; a TransformerDesc field for
 *      it. Outside models/: import/export (worker/ckpt, the safetensors
 *      names) maps each family's names; the planner's GEMM probe
 *      (planner_layer_gemms) times each family's products.
 *   4. Tests: tests/unit/test_ops.c (each kernel against finite
 *      differences), test_models.c (tensor table, gradients against finite
 *      differences), test_cost.c (the counts equal what the build
 *      allocates), test_forward_only.c (the weight view and pipeline
 *      stages equal training's forward), test_decode.c (the decoder equals
 *      the full forward), tests/mpi/tpgrad (TP gradients), a layouts case
 *      (tests/mpi/llama_layouts.sh), and an import test against the
 *      family's published weights.
 * A family that is not a transformer (mlp) is its own ModelArch with
 * transformer = NULL and its own functions (models/mlp.c). */
#include <stddef.h>
#include "base/err.h"

typedef enum { MODEL_GPT = 0, MODEL_MLP = 1, MODEL_LLAMA = 2 } ModelKind;

/* The largest vocabulary: token ids are ints, token files hold 4 bytes. */
#define MODEL_MAX_VOCAB 2147483647
/* The longest context a model is built for, and the most positions a
 * position table (GPT-2's wpe) keeps; rotary positions keep no table, so a
 * llama model may declare up to MODEL_MAX_ROPE_POSITIONS (Llama 3.2:
 * 131072) and train or sample at a context up to MODEL_MAX_SEQ_LEN. */
#define MODEL_MAX_SEQ_LEN 65536
#define MODEL_MAX_ROPE_POSITIONS (1 << 30)

typedef struct {
    ModelKind kind;
    int n_layer;  /* gpt: transformer blocks; mlp: hidden layers */
    int n_head;   /* gpt only */
    int n_embd;   /* gpt: width C; mlp: hidden width */
    int seq_len;  /* gpt: context T; mlp: context tokens fed as one-hot */
    int vocab;    /* gpt: vocabulary; mlp: classes (and token alphabet) */
    int in_dim;   /* mlp: input features; 0 = seq_len*vocab (one-hot tokens) */
    int positions; /* rows of the position table (wpe), >= seq_len: a model
                      fine-tuned at a shorter context keeps its source's
                      positions; 0 = seq_len. Under rotary positions (no
                      table) the context the model was made for
                      (max_position_embeddings) */
    /* ---- the llama family's sizes and options (0: the default named; the
     * gpt family refuses them set, the mlp ignores them) */
    int n_kv_head;        /* key/value heads, dividing n_head; 0 = n_head */
    int head_dim;         /* 0 = n_embd / n_head */
    int mlp_hidden;       /* the MLP's hidden units; 0 = the family's (gpt: 4 n_embd) */
    float norm_eps;       /* the norms' epsilon; 0 = 1e-5 */
    float rope_theta;     /* rotary base; 0 = 10000 */
    float rope_factor;    /* llama3 rotary scaling: factor (0 = no scaling), */
    float rope_low_freq;  /*   low_freq_factor, */
    float rope_high_freq; /*   high_freq_factor, */
    int rope_orig_ctx;    /*   original_max_position_embeddings */
    int qkv_bias;         /* q, k, v projections carry a bias (Qwen2) */
    int attn_out_bias;    /* the attention's output projection carries one */
    int mlp_bias;         /* gate, up and down carry biases */
    int qk_norm;          /* RMSNorm of each q and k head before rotation (Qwen3) */
    int untied_head;      /* the head has its own weights, not the embedding's */
    /* ---- LoRA adapters (transformers; lora_rank 0 = off: every weight
     * trains). On: each target linear W (out x in) gains A (r x in) and B
     * (out x r), y = x W^T + (alpha / r) (x A^T) B^T, and only A and B
     * train; the base weights are frozen (Model.base). */
    int lora_rank;
    float lora_alpha;       /* 0 = 8, PEFT's default */
    float lora_dropout;     /* dropout on the adapters' input; 0 = none */
    char lora_targets[128]; /* Hugging Face module names, comma-separated
                               (q_proj,...,down_proj; c_attn,c_proj,c_fc) or
                               all-linear; "" = PEFT's default for the family */
} ModelConfig;

/* The linears of a transformer layer LoRA can target (LoraTarget bits). */
enum {
    LORA_QKV = 1 << 0,      /* GPT-2's packed q|k|v (c_attn) */
    LORA_Q = 1 << 1,        /* q_proj */
    LORA_K = 1 << 2,        /* k_proj */
    LORA_V = 1 << 3,        /* v_proj */
    LORA_ATTN_OUT = 1 << 4, /* o_proj; GPT-2's attn.c_proj */
    LORA_FC = 1 << 5,       /* GPT-2's c_fc */
    LORA_GATE = 1 << 6,     /* gate_proj */
    LORA_UP = 1 << 7,       /* up_proj */
    LORA_MLP_OUT = 1 << 8,  /* down_proj; GPT-2's mlp.c_proj */
};

/* Which part of the model this process holds: a tensor-parallel slice of
 * the blocks [first_block, last_block], with `slots` sets of activations
 * (micro-batches in flight in a pipeline). */
typedef struct {
    int tp_rank, tp_size;
    int first_block, last_block; /* inclusive; last_block < 0 = through the end */
    int slots;
    int forward_only;            /* no gradient buffer (zeroth-order training) */
} ModelShard;

/* The whole model in one process: every block, no tensor-parallel split,
 * one set of activations. (Other shards: designated initializers, so a new
 * field defaults to 0 everywhere.) */
static inline ModelShard model_shard_whole(int forward_only)
{
    return (ModelShard){.tp_size = 1, .last_block = -1, .slots = 1, .forward_only = forward_only};
}

/* ---- what a transformer is made of -------------------------------------------- */

/* layernorm (mean, scale, shift) or RMSNorm; a position table (wpe) or
 * rotary q and k; fc, GELU, proj or gate x up, down */
typedef enum { NORM_LAYER = 0, NORM_RMS = 1 } NormKind;
typedef enum { POS_LEARNED = 0, POS_ROPE = 1 } PosKind;
typedef enum { MLP_GELU = 0, MLP_SWIGLU = 1 } MlpKind;

/* The linears (and norms) that carry a bias. */
enum {
    BIAS_QKV = 1 << 0,       /* attention's q, k, v */
    BIAS_ATTN_PROJ = 1 << 1, /* attention's output projection */
    BIAS_MLP_IN = 1 << 2,    /* the MLP's first linear(s) */
    BIAS_MLP_OUT = 1 << 3,   /* the MLP's output projection */
    BIAS_NORM = 1 << 4,      /* the norms' shift (layernorm's b) */
    BIAS_ALL = (1 << 5) - 1
};

/* One transformer family: its layer (norm, attention, MLP, biases) and
 * what surrounds the layers (positions, head), the same for every size. */
typedef struct {
    NormKind norm;
    PosKind pos;
    MlpKind mlp;
    int mlp_mult;     /* a GELU MLP's hidden units per unit of width (GPT-2: 4) */
    int grouped_kv;   /* 0: every attention head has its own keys and values
                         (kv heads = heads: one packed qkv tensor); 1: heads
                         share them in groups (q, k, v separate tensors) */
    unsigned biases;  /* BIAS_* of the linears that have one */
    int tied_head;    /* the head's weights are the token embedding's */
    int scaled_proj_init; /* the output projections start at 0.02 / sqrt(2 layers)
                             (GPT-2), not 0.02 like every other matrix */
} TransformerDesc;

/* GPT-2: layernorm, a learned position table, multi-head attention, a GELU
 * MLP 4C wide, biases everywhere, the head tied to the token embedding. */
extern const TransformerDesc GPT2_TRANSFORMER;
/* Llama (and Qwen2/3, Mistral, SmolLM): RMSNorm, rotary positions, grouped
 * key/value heads, a SwiGLU MLP, no biases and a tied head unless the
 * configuration adds them (ModelConfig's qkv_bias ... untied_head). */
extern const TransformerDesc LLAMA_TRANSFORMER;

/* A configuration's transformer layer in numbers, and the options its
 * configuration adds to the family's description. */
typedef struct {
    int n_head, n_kv_head, head_dim;
    int q_width;     /* the queries' width: heads x head_dim (not always n_embd: Qwen3) */
    int kv_width;    /* the keys' (and the values') width: kv heads x head_dim */
    int qkv_rows;    /* q_width + 2 kv_width */
    int mlp_hidden;  /* the MLP's hidden units */
    unsigned biases; /* BIAS_* of the linears that have one: the family's and the config's */
    int tied_head;   /* the head's weights are the token embedding's */
    int qk_norm;     /* q and k heads are RMS-normalized before rotation */
    float norm_eps;
    double rope_theta, rope_factor, rope_low_freq, rope_high_freq; /* factor 0: no scaling */
    int rope_orig_ctx;
    unsigned lora;      /* LORA_* of the linears with adapters; 0 = no LoRA */
    int lora_rank;
    float lora_scale;   /* alpha / rank */
    float lora_dropout;
} TransformerShape;

/* The LORA_* bits c->lora_targets names for c's family (PEFT's default
 * when empty): 0, or -1 with a message naming a module the family does
 * not have. */
int lora_target_mask(const ModelConfig *c, unsigned *mask, Err *e);
/* c->lora_targets, or PEFT's default for c's family when it is empty. */
const char *lora_targets_spec(const ModelConfig *c);
/* Hugging Face's module name of a LORA_* bit in c's family ("q_proj",
 * "c_attn"; GPT-2's two c_proj both answer "c_proj"). */
const char *lora_target_name(const ModelConfig *c, unsigned bit);

/* The layer shape of c (a transformer family's configuration). */
TransformerShape transformer_shape(const ModelConfig *c);
/* 0 when every kernel d needs exists; else -1 with a message naming the
 * family and the missing piece. */
int transformer_check(const TransformerDesc *d, const char *family, Err *e);

/* ---- a family: its description and counts ------------------------------------ */

typedef struct ModelOps ModelOps; /* building and running: models/model.h */

/* An architecture is one table (models/gpt.c, models/mlp.c), picked once
 * from cfg->kind by model_arch; nothing asks the kind again. Optional
 * entries are NULL; the generic wrappers turn a missing one into a clear
 * refusal instead of a crash. */
typedef struct ModelArch {
    const char *name;          /* as in --model */
    const TransformerDesc *transformer; /* NULL: not a transformer (mlp) */

    /* ---- configuration (architecture-specific checks only; arch.c does
     * the shared ranges first) */
    int (*validate)(const ModelConfig *c, Err *e);
    int (*validate_shard)(const ModelConfig *c, const ModelShard *sh, Err *e);
    int (*n_blocks)(const ModelConfig *c);
    int (*preds_per_seq)(const ModelConfig *c);

    /* ---- sizes and costs, without building (models/cost.c composes them
     * into the memory and FLOP estimates; each sits next to the builder
     * whose allocations it must match; shards come normalized: last_block
     * >= 0, slots >= 1) */
    size_t (*shard_params)(const ModelConfig *c, const ModelShard *sh); /* floats trained */
    /* floats of frozen weights held (LoRA's base); NULL: none */
    size_t (*shard_base_params)(const ModelConfig *c, const ModelShard *sh);
    size_t (*act_floats)(const ModelConfig *c, const ModelShard *sh, int B);
    size_t (*view_floats)(const ModelConfig *c, const ModelShard *sh, int B); /* view scratch */
    double (*fwd_flops_per_token)(const ModelConfig *c); /* whole model, one forward */
    void (*block_costs)(const ModelConfig *c, double *cost); /* stage balancing */
    /* floats crossing a pipeline stage boundary (NULL: no stages) */
    size_t (*boundary_floats)(const ModelConfig *c, int B);

    const ModelOps *ops;
} ModelArch;

extern const ModelArch GPT_ARCH;
extern const ModelArch MLP_ARCH;
extern const ModelArch LLAMA_ARCH;

/* The table of an architecture, or NULL when kind names none. */
const ModelArch *model_arch(ModelKind kind);
/* "gpt", "mlp", "llama", or "unknown" for a kind no table has (a corrupt manifest). */
const char *model_kind_name(ModelKind kind);
/* The description of c's transformer family; NULL for a kind that is not
 * one (mlp, or an unknown kind). */
const TransformerDesc *model_transformer(const ModelConfig *c);

/* The sizing questions below may be asked of an unchecked configuration
 * (a checkpoint's manifest before it is validated): an unknown kind then
 * answers "nothing" (0 blocks, no costs) instead of crashing. */

/* Checks the configuration; the message names the field and the fix. */
int model_config_validate(const ModelConfig *cfg, Err *e);
/* Checks that cfg can be split this way; the message names the fix. */
int model_shard_validate(const ModelConfig *cfg, const ModelShard *shard, Err *e);
/* The rows of a GPT's position table: positions, or seq_len when unset. */
int model_positions(const ModelConfig *c);
int model_n_blocks(const ModelConfig *cfg);
/* Estimated training compute of each block per sequence, element-wise work
 * included (for balancing pipeline stages and the planner's time). */
void model_block_costs(const ModelConfig *cfg, double *cost);
/* Predictions per sequence that contribute to the loss (T for gpt, 1 for mlp). */
int model_preds_per_seq(const ModelConfig *cfg);
/* Floats of activations crossing a stage boundary for B sequences. */
size_t model_boundary_floats(const ModelConfig *cfg, int B);

#endif
