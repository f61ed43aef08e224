#ifndef MPITRAIN_OPS_H
#define MPITRAIN_OPS_H
/* Kernels: free functions over row-major float buffers. N = B*T rows.
 * Backward functions ACCUMULATE into their gradient outputs (+=), so a
 * tensor used twice (tied embedding) just receives both contributions.
 * The gradient outputs of matmul, layernorm, RMSNorm and embedding backward
 * may be NULL when not needed; GELU's, SwiGLU's and attention's must be
 * there.
 * All kernels are deterministic for a given thread count; the ones whose
 * reductions run in a fixed order (everything but the GEMMs) are
 * deterministic for any thread count. */
#include <stddef.h>
#include <stdint.h>

/* out (N,OC) = inp (N,C) @ w^T (w is (OC,C), as a torch Linear) + bias (OC) */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC);
/* The same without bias into rows ldo floats apart: a column tile of a wider out. */
void matmul_forward_ld(float *out, int ldo, const float *inp, const float *w, int N, int C, int OC);
/* out (N,OC) += bias on every row */
void bias_forward(float *out, const float *bias, int N, int OC);
/* dinp (N,C) += dout @ w;  dw (OC,C) += dout^T @ inp;  dbias (OC) += sum_rows dout */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC);

/* LoRA's up projection: y (N,out; rows ldy apart) += scale * u (N,r) @ B^T
 * (B is (out,r)); the down projection u = x A^T is matmul_forward_ld and
 * its backward matmul_backward. */
void lora_up(float *y, int ldy, const float *u, const float *B, int N, int r, int out, float scale);
/* Its backward: du (N,r) = scale * dy @ B (overwritten); dB (out,r) +=
 * scale * dy^T @ u (dB may be NULL). */
void lora_up_backward(float *du, float *dB, const float *dy, int ldy, const float *u,
                      const float *B, int N, int r, int out, float scale);

/* Inverted dropout's scales for N rows of cols columns: s[n * cols + j] is
 * 0 with probability p, else 1 / (1 - p), drawn from Philox under key at
 * counter (global column / 4, row0 + n, stream, RNG_LORA_DROPOUT), word
 * column % 4, the column being col0 + j: any slice of rows and columns
 * draws the whole matrix's values there. */
void dropout_scales(float *s, int N, int cols, uint64_t key, uint64_t row0, uint32_t stream,
                    uint64_t col0, float p);
/* The same applied: out (N,cols) = x (N,cols) * s, and dx (N,cols) += s *
 * g: a dropped input's gradient. */
void scale_rows(float *out, const float *x, const float *s, size_t n);
void scale_add(float *dx, const float *g, const float *s, size_t n);

/* An adapter merged into its weight: W (out,in) += scale * B (out,r) @ A (r,in). */
void lora_merge(float *W, const float *A, const float *B, int out, int in, int r, float scale);

/* out (N,C), mean (N), rstd (N) */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);

/* RMSNorm (Llama): out = inp * rstd * w per row of C, rstd = 1/sqrt(mean(inp^2)
 * + eps); rows are ld floats apart in inp and out (and dinp, dout), ld = C for
 * a dense (N,C). rstd (N) is kept for backward (may be NULL in forward-only
 * use). out may be inp (in place). In backward dinp or dw may be NULL. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     int ld, float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int N, int C, int ld);

/* Rotary position embedding, HF's rotate-half layout: within each head of hd
 * floats, pairs (i, i + hd/2) turn by the angle pos * inv_freq[i]. A table
 * holds cos/sin (T, half) for positions [0, T) and half = hd/2 frequencies. */
typedef struct {
    int T, half;
    float *cos, *sin;
} RopeTable;
/* inv_freq_i = theta^(-2i/hd), then, when factor > 0, llama3's scaling (HF's
 * _compute_llama3_parameters): wavelen = 2 pi / inv_freq; wavelen <
 * orig/high: kept; wavelen > orig/low: inv_freq / factor; between: smooth =
 * (orig/wavelen - low)/(high - low), inv_freq = (1 - smooth) inv_freq/factor
 * + smooth inv_freq. Angles are computed in double, stored as float.
 * Returns 0, or -1 when out of memory or the arguments are unusable (T < 1,
 * hd odd or < 2, theta <= 0; with factor > 0: low <= 0, high <= low or
 * orig_ctx < 1). rope_table_free frees (and zeroes) it; a zeroed table may be
 * freed. */
int rope_table_init(RopeTable *r, int T, int hd, double theta, double factor, double low_freq,
                    double high_freq, int orig_ctx);
void rope_table_free(RopeTable *r);
/* In place on x (B, T, rows ld floats apart): the n_heads consecutive heads of
 * hd floats from column col0 of each row. Row (b,t) is at position t + pos0,
 * or pos[b*T + t] + pos0 when pos is given (documents packed in a row, see
 * DOC POSITIONS below), which must be < r->T; hd must be 2 r->half. */
void rope_forward(float *x, const RopeTable *r, const int *pos, int B, int T, int ld, int col0,
                  int n_heads, int hd, int pos0);
/* dx in place: the inverse rotation (its transpose), same arguments. Not an
 * accumulation: it maps the gradient after rope to the gradient before. */
void rope_backward(float *dx, const RopeTable *r, const int *pos, int B, int T, int ld, int col0,
                   int n_heads, int hd, int pos0);

/* SwiGLU: out = silu(gate) * up elementwise over n, silu(g) = g / (1 + e^-g),
 * through the kernels' exp approximation (fast_expf: relative error < 2e-6). */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *gate, const float *up,
                     const float *dout, size_t n);

/* GELU, tanh approximation (GPT-2) */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b */
void residual_forward(float *out, const float *a, const float *b, size_t n);

/* DOC POSITIONS. Documents packed into one row (train --doc-attention) are
 * described by pos (B*T ints): each token's position in its document, 0 at
 * a document's first token, else the previous token's + 1 (so a row starts
 * at 0). Query t then attends to keys t - pos[t] .. t only, and position
 * encodings (wpe rows, rotary angles) take pos[t] where they took t: each
 * document computes what it would alone at the start of a row (Megatron's
 * --reset-attention-mask with --reset-position-ids). pos NULL: one document
 * per row, pos[t] = t. */

/* Causal softmax, in place, of rows i0..i0+nq-1 of a score matrix s (nq, ld)
 * whose columns are keys 0..ld-1: row r sees keys 0..i0+r, the rest become
 * 0; lse (may be NULL) gets each row's log-sum-exp. The attention kernels
 * and the KV-cache decoder share it, so both round alike. With pos (the nq
 * rows' doc positions) row r sees keys i0+r-pos[r]..i0+r only. */
void causal_softmax_rows(float *s, float *lse, const int *pos, int i0, int nq, int ld);

/* Causal multi-head self-attention on a packed qkv (B,T,3*C_local) buffer
 * whose last dim is [q heads | k heads | v heads], NH heads of size hs.
 * out (B,T,NH*hs); lse (B,NH,T) keeps each query's log-sum-exp of scaled
 * scores, from which backward recomputes the probabilities: no (T,T)
 * matrix is ever stored. scratch holds attention_scratch_floats(T,
 * scratch_threads) floats; the kernels use at most scratch_threads threads.
 * attention_forward/backward are the _gqa kernels with NKV = NH. */
size_t attention_scratch_floats(int T, int threads);
void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int NH, int hs,
                       float *scratch, int scratch_threads);
/* dqkv += ...; out and lse are the forward's. */
void attention_backward(float *dqkv, const float *dout, const float *out, const float *qkv,
                        const float *lse, int B, int T, int NH, int hs, float *scratch,
                        int scratch_threads);

/* Grouped-query causal attention. qkv rows (B,T,ldqkv) hold [q: NH heads |
 * k: NKV heads | v: NKV heads] of hs floats each, ldqkv = (NH + 2 NKV) hs;
 * out (B,T,NH*hs), lse (B,NH,T). Local q head h reads local kv head
 * kv_of(h) = (h0 + h) / group - kv0, where h0 is the global index of the
 * first local q head, kv0 that of the first local kv head and group the q
 * heads per kv head (global): a tensor-parallel slice of the heads computes
 * exactly what the whole computes for them. Backward sums a kv head's dk and
 * dv over its group's q heads in head order, whatever the thread count.
 * Scratch as for attention_forward. */
typedef struct {
    int NH, NKV, hs, group, h0, kv0;
} AttnHeads;
/* pos: DOC POSITIONS (NULL: causal over the whole row); a query block
 * multiplies only against the keys its documents reach. */
void attention_forward_gqa(float *out, float *lse, const float *qkv, const int *pos, int B,
                           int T, const AttnHeads *ah, float *scratch, int scratch_threads);
void attention_backward_gqa(float *dqkv, const float *dout, const float *out, const float *qkv,
                            const float *lse, const int *pos, int B, int T, const AttnHeads *ah,
                            float *scratch, int scratch_threads);

/* out (B,T,C) = wte[tokens] + wpe[t], or wpe[pos[b*T + t]] (DOC POSITIONS) */
void embedding_forward(float *out, const int *tokens, const int *pos, const float *wte,
                       const float *wpe, int B, int T, int C);
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                        const int *pos, int B, int T, int C);

/* Softmax cross-entropy over logits (N,V). Returns the SUM of per-row losses
 * (callers divide by the global token count). If dlogits is non-NULL it is
 * SET (not accumulated) to (softmax - onehot) * grad_scale; it may be logits
 * itself (in place: the head's backward needs no second (N,V) buffer). */
double softmax_xent(float *dlogits, const float *logits, const int *targets, int N, int V,
                    float grad_scale);

/* Softmax cross-entropy whose logits come a vocabulary tile at a time, so
 * no (N,V) buffer need exist: per row the running max, the sum of
 * exp(logit - max) (rescaled as the max grows) and the target's logit. Feed
 * the tiles in order (v0 = 0 first); xent_tiles_loss returns the SUM of the
 * per-row losses, combined in softmax_xent's fixed order. A target below 0
 * (TARGET_IGNORED: a loss mask's uncounted position) adds no loss here and
 * no gradient in softmax_xent. */
#define TARGET_IGNORED (-1)
typedef struct {
    float *max, *target; /* (N) */
    double *sum;         /* (N) */
} XentTiles;
void xent_tiles_update(XentTiles *x, const float *logits, size_t ld, const int *targets, int N,
                       int v0, int vn);
double xent_tiles_loss(const XentTiles *x, const int *targets, int N);

/* The kernels' branch-free tanh and exp approximations (their loops
 * vectorize), exported for the tests' accuracy checks. */
float fast_tanhf(float x);
float fast_expf(float x);

/* Threads used by the OpenMP kernels and by OpenBLAS (one shared pool). */
void ops_set_threads(int n);
int ops_get_threads(void);

#endif
