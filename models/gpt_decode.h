#ifndef MPITRAIN_GPT_DECODE_H
#define MPITRAIN_GPT_DECODE_H
/* Incremental decoding of a transformer (gpt, llama) with a key/value
 * cache: each new position costs one row through every layer plus
 * attention over the cached keys, instead of a forward over the whole
 * context (model_next_logits).
 *
 * The decoder reads the weights of a whole (unsharded, tp=1) model through
 * its tensor table; the model must stay alive (and unchanged) while the
 * decoder is used. It keeps, per layer, the keys and values of every
 * position so far (L x T x the keys' width each: C when every head has its
 * own, kv heads x head_dim when heads share them). */
#include "base/err.h"
#include "models/model.h"

typedef struct GptDecoder GptDecoder;

/* Builds a decoder on m; refuses (naming why) a model that is not a whole
 * transformer. LoRA adapters not merged into the weights (a run's model)
 * are applied as it runs, s (x A^T) B^T beside each product as the
 * training forward adds them: no copy of the weights, m untouched. */
GptDecoder *decoder_new(const Model *m, Err *e);
void decoder_free(GptDecoder *d);
/* Forgets every position (the cache starts empty again). */
void decoder_reset(GptDecoder *d);
/* Positions held so far, 0..seq_len. */
int decoder_pos(const GptDecoder *d);
/* Appends token at the next position and returns the logits (vocab floats)
 * for the token after it; valid until the next call. NULL when the cache is
 * full (decoder_pos == seq_len) or token is outside the vocabulary. */
const float *decoder_step(GptDecoder *d, int token);
/* Forgets the positions from pos on (0 <= pos <= decoder_pos), so another
 * continuation of the first pos can follow. */
void decoder_truncate(GptDecoder *d, int pos);
/* Scoring: appends n tokens (one batched pass) and adds to *logprob, for
 * each row i with next[i] >= 0, log p(next[i] | every token up to i), the
 * softmax taken in double. -1 (nothing appended) when n < 1, they do not
 * fit or a token is outside the vocabulary. */
int decoder_append_logprob(GptDecoder *d, const int *tokens, int n, const int *next,
                           double *logprob);
/* Appends n tokens at once (one batched pass: n rows per matmul) and returns
 * the logits after the last one; NULL when n < 1, they do not fit in the
 * context or one is outside the vocabulary (nothing is appended then). */
const float *decoder_prefill(GptDecoder *d, const int *tokens, int n);

#endif
