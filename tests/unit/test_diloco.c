/* DiLoCo's outer step is PyTorch's SGD(nesterov=True) with the averaged
 * pseudo-gradient as its gradient; the plumbing around it (all-reduce,
 * delayed rounds, checkpoints) is tested by tests/mpi/diloco.sh. */
#include <criterion/criterion.h>
#include "base/quant.h"
#include "worker/method/diloco/diloco.h"
#include "worker/method/elastic/elastic.h"

/* torch.optim.SGD's documented update, in double: b = mu b + g (g itself at
 * the first step: b starts at 0, which gives the same), g' = g + mu b,
 * p -= lr g' */
static void reference(double *p, double *b, const double *g, int n, double lr, double mu)
{
    for (int j = 0; j < n; j++) {
        b[j] = mu * b[j] + g[j];
        p[j] -= lr * (g[j] + mu * b[j]);
    }
}

Test(diloco, outer_step_is_nesterov_sgd)
{
    enum { N = 5, STEPS = 6 };
    float p[N] = {1, -2, 0.5f, 3, 0}, m[N] = {0};
    double pr[N], br[N] = {0};
    for (int j = 0; j < N; j++) pr[j] = p[j];
    for (int s = 0; s < STEPS; s++) {
        float d[N];
        double dr[N];
        for (int j = 0; j < N; j++) dr[j] = d[j] = 0.1f * (float)(j - 2) + 0.03f * (float)s;
        diloco_nesterov(p, m, d, N, 0.7f, 0.9f);
        reference(pr, br, dr, N, 0.7, 0.9);
    }
    for (int j = 0; j < N; j++) cr_assert_float_eq(p[j], pr[j], 1e-5, "element %d: %g vs %g", j, p[j], pr[j]);
}

Test(diloco, first_step_by_hand)
{
    /* delta 0.5, lr 0.7, mu 0.9: mom = 0.5; p = 1 - 0.7 (0.5 + 0.45) = 0.335 */
    float p = 1, m = 0, d = 0.5f;
    diloco_nesterov(&p, &m, &d, 1, 0.7f, 0.9f);
    cr_assert_float_eq(m, 0.5f, 1e-7);
    cr_assert_float_eq(p, 0.335f, 1e-6);
    /* lr 1, mu 0: the step is the pseudo-gradient itself (the mean of the
     * replicas' moves: plain data parallelism at H = 1) */
    float q = 2, mq = 0, dq = 0.25f;
    diloco_nesterov(&q, &mq, &dq, 1, 1.0f, 0.0f);
    cr_assert_eq(q, 1.75f);
}

/* Streaming DiLoCo's fragments (elastic DiLoCo, --diloco-fragments F):
 * round k synchronises fragment k % F; the F fragments tile the weights
 * exactly, in order, each a whole number of quantization blocks but the
 * last, and of sizes within a block of each other. */
Test(diloco, fragments_tile_the_weights)
{
    static const size_t NS[] = {1, 63, 64, 65, 1000, 124439808, 4097};
    static const uint32_t FS[] = {1, 2, 3, 4, 7, 64};
    for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++)
        for (size_t b = 0; b < sizeof FS / sizeof FS[0]; b++) {
            size_t n = NS[a], at = 0, small = (size_t)-1, big = 0;
            uint32_t F = FS[b];
            for (uint32_t k = 0; k < F; k++) {
                size_t lo, hi, lo2, hi2;
                elastic_fragment(n, F, k, &lo, &hi);
                elastic_fragment(n, F, k + 5 * F, &lo2, &hi2);
                cr_assert(lo == lo2 && hi == hi2, "round k and k + 5F: the same fragment");
                cr_assert_eq(lo, at, "n %zu, F %u: fragment %u starts at %zu, not %zu", n, F, k, lo, at);
                cr_assert_leq(lo, hi);
                cr_assert(lo % QUANT_BLOCK == 0 && (hi % QUANT_BLOCK == 0 || hi == n),
                          "n %zu, F %u: fragment %u [%zu, %zu) is not whole blocks", n, F, k, lo, hi);
                if (hi - lo < small) small = hi - lo;
                if (hi - lo > big) big = hi - lo;
                at = hi;
            }
            cr_assert_eq(at, n, "n %zu, F %u: the fragments end at %zu", n, F, at);
            cr_assert_leq(big - small, QUANT_BLOCK, "n %zu, F %u: sizes %zu..%zu", n, F, small, big);
        }
    size_t lo, hi;
    elastic_fragment(1000, 0, 3, &lo, &hi); /* 0 fragments is read as 1 */
    cr_assert(lo == 0 && hi == 1000);
}
