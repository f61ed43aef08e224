/* DiLoCo's outer step is PyTorch's SGD(nesterov=True) with the averaged
 * pseudo-gradient as its gradient; the plumbing around it (all-reduce,
 * delayed rounds, checkpoints) is tested by tests/mpi/diloco.sh. */
#include <criterion/criterion.h>
#include "worker/method/diloco/diloco.h"

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
