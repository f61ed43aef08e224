/* The token picker (models/sample.c): greedy at temperature 0, top-k and
 * top-p (nucleus) selection on small distributions worked out by hand, and
 * quickselect against a full sort on a larger one. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "models/philox.h"
#include "models/sample.h"

/* The token u picks, with a fresh picker. */
static int pick(const float *logits, int V, float temperature, int top_k, float top_p, double u)
{
    TokenPicker p;
    cr_assert_eq(picker_init(&p, temperature, top_k, top_p, V), 0);
    int tok = picker_pick(&p, logits, V, u);
    picker_free(&p);
    return tok;
}

/* The tokens u = 0.003, 0.013, ..., 0.993 pick, counted per id: with a
 * distribution p over the kept tokens, about 100 p of them. */
static void histogram(const float *logits, int V, float temperature, int top_k, float top_p,
                      int *count)
{
    for (int i = 0; i < V; i++) count[i] = 0;
    for (int s = 0; s < 100; s++)
        count[pick(logits, V, temperature, top_k, top_p, (s + 0.3) / 100)]++;
}

/* Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 at temperature 1, listed
 * out of order (ids 0..4 hold 0.125, 0.5, 0.0625, 0.25, 0.0625). */
static void five(float *l)
{
    const double p[5] = {0.125, 0.5, 0.0625, 0.25, 0.0625};
    for (int i = 0; i < 5; i++) l[i] = (float)log(p[i]);
}

Test(sample, temperature_zero_is_the_argmax_whatever_u)
{
    float l[5];
    five(l);
    for (double u = 0; u < 1; u += 0.1) cr_expect_eq(pick(l, 5, 0, 0, 1, u), 1);
    /* a NaN or infinite logit counts as -infinity */
    float odd[4] = {NAN, 2, INFINITY, 1};
    cr_expect_eq(pick(odd, 4, 0, 0, 1, 0.5), 1);
}

/* Each u[i] picks want[i] (temperature 1). */
static void expect_picks(const float *l, int V, int top_k, const double *u, const int *want, int n)
{
    for (int i = 0; i < n; i++)
        cr_expect_eq(pick(l, V, 1, top_k, 1, u[i]), want[i], "top-k %d, u %g", top_k, u[i]);
}

Test(sample, no_restriction_walks_the_ids_in_order)
{
    float l[5];
    five(l);
    /* cumulative over ids 0..4: 0.125, 0.625, 0.6875, 0.9375, 1 */
    expect_picks(l, 5, 0, (double[]){0.10, 0.20, 0.65, 0.90, 0.99}, (int[]){0, 1, 2, 3, 4}, 5);
    int n[5];
    histogram(l, 5, 1, 0, 1, n);
    cr_expect(n[0] == 13 && n[1] == 50 && n[2] == 6 && n[3] == 25 && n[4] == 6,
              "counts %d %d %d %d %d", n[0], n[1], n[2], n[3], n[4]);
}

Test(sample, top_k_keeps_the_k_likeliest_likeliest_first)
{
    float l[5];
    five(l);
    /* k = 2: ids 1 (0.5) and 3 (0.25), renormalized to 2/3 and 1/3 */
    expect_picks(l, 5, 2, (double[]){0.00, 0.60, 0.70, 0.999}, (int[]){1, 1, 3, 3}, 4);
    /* k = 3 adds id 0 (0.125): 4/7, 2/7, 1/7 in that order */
    expect_picks(l, 5, 3, (double[]){0.55, 0.60, 0.84, 0.87}, (int[]){1, 3, 3, 0}, 4);
    /* k = 1 is greedy; k >= V is no restriction (ids in order) */
    expect_picks(l, 5, 1, (double[]){0.0, 0.3, 0.6, 0.99}, (int[]){1, 1, 1, 1}, 4);
    expect_picks(l, 5, 5, (double[]){0.10}, (int[]){0}, 1);
    expect_picks(l, 5, 9, (double[]){0.10}, (int[]){0}, 1);
}

Test(sample, top_p_keeps_the_fewest_likeliest_holding_p)
{
    float l[5];
    five(l);
    int n[5];
    /* 0.4: id 1 alone (0.5 >= 0.4) */
    histogram(l, 5, 1, 0, 0.4f, n);
    cr_expect_eq(n[1], 100);
    /* 0.7: ids 1 and 3 (0.75), 2/3 and 1/3 */
    histogram(l, 5, 1, 0, 0.7f, n);
    cr_expect(n[1] == 67 && n[3] == 33, "top-p 0.7: %d %d", n[1], n[3]);
    /* 0.8: ids 1, 3, 0 (0.875): 4/7, 2/7, 1/7 */
    histogram(l, 5, 1, 0, 0.8f, n);
    cr_expect(n[1] == 57 && n[3] == 29 && n[0] == 14 && n[2] == 0 && n[4] == 0,
              "top-p 0.8: %d %d %d", n[1], n[3], n[0]);
    /* 0.9: all but one of the two 0.0625 ties, the lower id (2) first */
    histogram(l, 5, 1, 0, 0.9f, n);
    cr_expect(n[2] > 0 && n[4] == 0, "top-p 0.9: id 2 %d, id 4 %d", n[2], n[4]);
}

Test(sample, top_k_then_top_p_of_what_is_left)
{
    float l[5];
    five(l);
    int n[5];
    /* k = 3 leaves 4/7, 2/7, 1/7; p = 0.8 of that needs ids 1 and 3 (6/7) */
    histogram(l, 5, 1, 3, 0.8f, n);
    cr_expect(n[1] == 67 && n[3] == 33 && n[0] == 0, "top-k 3, top-p 0.8: %d %d %d", n[1], n[3],
              n[0]);
}

Test(sample, temperature_sharpens_and_flattens)
{
    /* logits 0 and ln 3: at temperature 1, 1/4 and 3/4; at 2, weights 1
     * and sqrt 3 (0.366 and 0.634); at 0.5, 1 and 9 (0.1 and 0.9) */
    float l[2] = {0, (float)log(3.0)};
    int n[2];
    histogram(l, 2, 1, 0, 1, n);
    cr_expect_eq(n[0], 25);
    histogram(l, 2, 2, 0, 1, n);
    cr_expect_eq(n[0], 37);
    histogram(l, 2, 0.5f, 0, 1, n);
    cr_expect_eq(n[0], 10);
}

/* The kept set by sorting everything: what quickselect must agree with. */
static int cmp_desc(const void *a, const void *b)
{
    const TokenCand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

static int reference_pick(const float *l, int V, float temp, int k, float top_p, double u)
{
    TokenCand *c = malloc(sizeof *c * (size_t)V);
    double mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++) c[i] = (TokenCand){l[i], i, exp(((double)l[i] - mx) / temp)};
    qsort(c, (size_t)V, sizeof *c, cmp_desc);
    double total = 0;
    for (int i = 0; i < k; i++) total += c[i].w;
    int n = 0;
    for (double acc = 0; n < k && (n == 0 || acc < top_p * total); n++) acc += c[n].w;
    double kept = 0;
    for (int i = 0; i < n; i++) kept += c[i].w;
    double acc = 0;
    int tok = c[n - 1].id;
    for (int i = 0; i < n; i++)
        if (u * kept < (acc += c[i].w)) {
            tok = c[i].id;
            break;
        }
    free(c);
    return tok;
}

Test(sample, quickselect_keeps_what_a_full_sort_keeps)
{
    enum { V = 997 };
    float l[V];
    for (int i = 0; i < V; i++) l[i] = 3.0f * philox_normal(5, RNG_SAMPLE, (uint64_t)i);
    for (int i = 0; i < V; i += 50) l[i] = l[i + 1]; /* ties */
    const int ks[] = {1, 2, 7, 40, 500};
    const float ps[] = {0.05f, 0.5f, 0.9f, 1.0f};
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t b = 0; b < sizeof ps / sizeof *ps; b++)
            for (int s = 0; s < 20; s++) {
                double u = (s + 0.37) / 20;
                int want = reference_pick(l, V, 1.3f, ks[a], ps[b], u);
                int got = pick(l, V, 1.3f, ks[a], ps[b], u);
                cr_expect_eq(got, want, "k %d p %g u %g: %d, a full sort keeps %d", ks[a],
                             (double)ps[b], u, got, want);
            }
}
