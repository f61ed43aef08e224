#include "sharding/stages.h"

#include <float.h>
#include <stdlib.h>

/* Dynamic programming over prefix sums: best[s][i] = smallest max-stage cost
 * of putting blocks 0..i-1 into s stages. n and stages are small. */
int balance_stages(const double *cost, int n, int stages, int *first)
{
    if (stages < 1 || stages > n) return -1;
    double *pre = calloc(n + 1, sizeof *pre);
    double *best = malloc((size_t)(stages + 1) * (n + 1) * sizeof *best);
    int *cut = malloc((size_t)(stages + 1) * (n + 1) * sizeof *cut);
    if (!pre || !best || !cut) {
        free(pre);
        free(best);
        free(cut);
        return -1;
    }
    for (int i = 0; i < n; i++) pre[i + 1] = pre[i] + cost[i];
#define B(s, i) best[(size_t)(s) * (n + 1) + (i)]
#define C(s, i) cut[(size_t)(s) * (n + 1) + (i)]
    for (int i = 0; i <= n; i++) B(1, i) = pre[i], C(1, i) = 0;
    for (int s = 2; s <= stages; s++)
        for (int i = 0; i <= n; i++) {
            B(s, i) = DBL_MAX;
            C(s, i) = 0;
            for (int j = s - 1; j < i; j++) { /* last stage = blocks j..i-1 */
                double last = pre[i] - pre[j];
                double worst = B(s - 1, j) > last ? B(s - 1, j) : last;
                if (worst < B(s, i)) {
                    B(s, i) = worst;
                    C(s, i) = j;
                }
            }
        }
    first[stages] = n;
    for (int s = stages, i = n; s >= 1; s--) {
        first[s - 1] = C(s, i);
        i = C(s, i);
    }
#undef B
#undef C
    free(pre);
    free(best);
    free(cut);
    return 0;
}

void pipeline_ops(Schedule sched, int s, int p, int M, PipeOp *ops)
{
    int k = 0;
    if (sched == SCHED_GPIPE) {
        for (int i = 0; i < M; i++) ops[k++] = (PipeOp){0, i};
        for (int i = 0; i < M; i++) ops[k++] = (PipeOp){1, i};
        return;
    }
    int warm = p - s - 1 < M ? p - s - 1 : M;
    for (int i = 0; i < warm; i++) ops[k++] = (PipeOp){0, i};
    for (int i = 0; i < M - warm; i++) {
        ops[k++] = (PipeOp){0, warm + i};
        ops[k++] = (PipeOp){1, i};
    }
    for (int i = M - warm; i < M; i++) ops[k++] = (PipeOp){1, i};
}

int pipeline_slots(Schedule sched, int s, int p, int M)
{
    if (sched == SCHED_GPIPE) return M;
    return p - s < M ? p - s : M;
}

double pipeline_bubble(int p, int M) { return (double)(p - 1) / (M + p - 1); }
