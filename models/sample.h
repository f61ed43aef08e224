#ifndef MPITRAIN_SAMPLE_H
#define MPITRAIN_SAMPLE_H
/* Choosing the next token from a model's logits: the argmax at temperature
 * 0, else a draw from softmax(logits / temperature), restricted first to
 * the top_k likeliest tokens and then to the nucleus: the fewest likeliest
 * tokens holding top_p of what is left. Arithmetic only: the caller brings
 * the uniform draw (so the same draws give the same tokens). */

typedef struct {
    float logit;
    int id;
    double w; /* exp((logit - max) / temperature), when computed */
} TokenCand;

typedef struct {
    float temperature; /* 0: greedy */
    float top_p;       /* 1: no nucleus */
    int top_k;         /* 0: every token */
    TokenCand *cand;   /* scratch for n_max candidates */
} TokenPicker;

/* Room for up to n_max candidates (a model's vocabulary); -1 when out of
 * memory. */
int picker_init(TokenPicker *p, float temperature, int top_k, float top_p, int n_max);
void picker_free(TokenPicker *p);
/* The next token among ids 0..V-1 (V <= n_max), with u uniform in [0, 1).
 * Non-finite logits count as -infinity. Without a restriction the draw
 * walks the ids in order; with one, likeliest first (higher logit, then
 * lower id: a total order, so ties do not depend on how the selection ran). */
int picker_pick(TokenPicker *p, const float *logits, int V, double u);

#endif
