#ifndef MPITRAIN_OPS_H
#define MPITRAIN_OPS_H
/* Kernels: free functions over row-major float buffers. N = B*T rows.
 * Backward functions ACCUMULATE into their gradient outputs (+=), so a
 * tensor used twice (tied embedding) just receives both contributions.
 * The gradient outputs of matmul, layernorm and embedding backward may be
 * NULL when not needed; GELU's and attention's must be there.
 * All kernels are deterministic for a given thread count; the ones whose
 * reductions run in a fixed order (everything but the GEMMs) are
 * deterministic for any thread count. */
#include <stddef.h>

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

/* out (N,C), mean (N), rstd (N) */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);

/* GELU, tanh approximation (GPT-2) */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b */
void residual_forward(float *out, const float *a, const float *b, size_t n);

/* Causal softmax, in place, of rows i0..i0+nq-1 of a score matrix s (nq, ld)
 * whose columns are keys 0..ld-1: row r sees keys 0..i0+r, the rest become
 * 0; lse (may be NULL) gets each row's log-sum-exp. The attention kernels
 * and the KV-cache decoder share it, so both round alike. */
void causal_softmax_rows(float *s, float *lse, int i0, int nq, int ld);

/* Causal multi-head self-attention on a packed qkv (B,T,3*C_local) buffer
 * whose last dim is [q heads | k heads | v heads], NH heads of size hs.
 * out (B,T,NH*hs); lse (B,NH,T) keeps each query's log-sum-exp of scaled
 * scores, from which backward recomputes the probabilities: no (T,T)
 * matrix is ever stored. scratch holds attention_scratch_floats(T,
 * scratch_threads) floats; the kernels use at most scratch_threads threads. */
size_t attention_scratch_floats(int T, int threads);
void attention_forward(float *out, float *lse, const float *qkv, int B, int T, int NH, int hs,
                       float *scratch, int scratch_threads);
/* dqkv += ...; out and lse are the forward's. */
void attention_backward(float *dqkv, const float *dout, const float *out, const float *qkv,
                        const float *lse, int B, int T, int NH, int hs, float *scratch,
                        int scratch_threads);

/* out (B,T,C) = wte[tokens] + wpe[t] */
void embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                       int B, int T, int C);
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                        int B, int T, int C);

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
 * per-row losses, combined in softmax_xent's fixed order. */
typedef struct {
    float *max, *target; /* (N) */
    double *sum;         /* (N) */
} XentTiles;
void xent_tiles_update(XentTiles *x, const float *logits, size_t ld, const int *targets, int N,
                       int v0, int vn);
double xent_tiles_loss(const XentTiles *x, int N);

/* The kernels' branch-free tanh and exp approximations (their loops
 * vectorize), exported for the tests' accuracy checks. */
float fast_tanhf(float x);
float fast_expf(float x);

/* Threads used by the OpenMP kernels and by OpenBLAS (one shared pool). */
void ops_set_threads(int n);
int ops_get_threads(void);

#endif
