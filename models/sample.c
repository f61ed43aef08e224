#include "models/sample.h"

#include <math.h>
#include <stdlib.h>

int picker_init(TokenPicker *p, float temperature, int top_k, float top_p, int n_max)
{
    *p = (TokenPicker){temperature, top_p, top_k, calloc((size_t)n_max, sizeof(TokenCand))};
    return p->cand ? 0 : -1;
}

void picker_free(TokenPicker *p)
{
    free(p->cand);
    p->cand = NULL;
}

/* a before b: higher logit, then lower id (a total order, so ties are stable) */
static int cand_before(const TokenCand *a, const TokenCand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *a, const void *b)
{
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static void cand_swap(TokenCand *c, int i, int j)
{
    TokenCand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* Partitions c[lo..hi) (hi - lo >= 2) around the median of three: returns
 * mid with c[lo..mid) before c[mid] and c[mid+1..hi) after it. */
static int partition(TokenCand *c, int lo, int hi)
{
    int a = lo, b = lo + (hi - lo) / 2, z = hi - 1;
    if (cand_before(&c[b], &c[a])) cand_swap(c, a, b);
    if (cand_before(&c[z], &c[b])) cand_swap(c, b, z);
    if (cand_before(&c[b], &c[a])) cand_swap(c, a, b);
    cand_swap(c, b, z); /* the pivot waits at the end */
    int mid = lo;
    for (int i = lo; i < z; i++)
        if (cand_before(&c[i], &c[z])) cand_swap(c, i, mid++);
    cand_swap(c, mid, z);
    return mid;
}

/* Quickselect: c[0..k) become the k likeliest of c[0..n), in no order. */
static void select_top_k(TokenCand *c, int n, int k)
{
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        int mid = partition(c, lo, hi);
        if (mid == k || mid + 1 == k) return;
        if (mid > k) hi = mid;
        else lo = mid + 1;
    }
}

/* The same, for weight: c[0..m) become the fewest likeliest candidates
 * whose weights add up to at least target; returns m. Expected O(n), where
 * sorting all 50257 of GPT-2's logits per token would be O(n log n). */
static int select_mass(TokenCand *c, int n, double target)
{
    int lo = 0, hi = n; /* c[0..lo) taken, weighing acc < target; the answer is in (lo, hi] */
    double acc = 0;
    while (hi - lo > 1) {
        int mid = partition(c, lo, hi);
        double left = 0;
        for (int i = lo; i < mid; i++) left += c[i].w;
        if (acc + left >= target) {
            hi = mid;
        } else if (acc + left + c[mid].w >= target) {
            return mid + 1;
        } else {
            acc += left + c[mid].w;
            lo = mid + 1;
        }
    }
    return hi > 1 ? hi : 1;
}

static float finite_or_low(float x) { return isfinite(x) ? x : -INFINITY; }

static int argmax(const float *logits, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (finite_or_low(logits[i]) > finite_or_low(logits[best])) best = i;
    return best;
}

/* Every candidate with its weight; returns the total weight. */
static double weigh_all(TokenPicker *p, const float *logits, int V, double mx)
{
    double sum = 0;
    for (int i = 0; i < V; i++) {
        float l = finite_or_low(logits[i]);
        double w = exp(((double)l - mx) / p->temperature);
        p->cand[i] = (TokenCand){l, i, w};
        sum += w;
    }
    return sum;
}

/* The draw r in [0, total weight of c[0..n)) walks c in order. */
static int draw(const TokenCand *c, int n, double r)
{
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += c[i].w;
        if (r < acc) return c[i].id;
    }
    return c[n - 1].id; /* rounding left r at the very top */
}

/* The kept candidates c[0..n), likeliest first, and a draw among them. */
static int draw_sorted(TokenCand *c, int n, double u)
{
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    double kept = 0;
    for (int i = 0; i < n; i++) kept += c[i].w;
    return draw(c, n, u * kept);
}

int picker_pick(TokenPicker *p, const float *logits, int V, double u)
{
    if (p->temperature <= 0) return argmax(logits, V);
    double mx = finite_or_low(logits[argmax(logits, V)]);
    int k = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    if (k == V) {
        double total = weigh_all(p, logits, V, mx);
        if (p->top_p >= 1) return draw(p->cand, V, u * total);
        int n = select_mass(p->cand, V, p->top_p * total);
        return draw_sorted(p->cand, n, u);
    }
    /* top-k: select on the logits, weigh only the k kept */
    for (int i = 0; i < V; i++) p->cand[i] = (TokenCand){finite_or_low(logits[i]), i, 0};
    select_top_k(p->cand, V, k);
    double total = 0;
    for (int i = 0; i < k; i++)
        total += p->cand[i].w = exp(((double)p->cand[i].logit - mx) / p->temperature);
    int n = p->top_p < 1 ? select_mass(p->cand, k, p->top_p * total) : k;
    return draw_sorted(p->cand, n, u);
}
