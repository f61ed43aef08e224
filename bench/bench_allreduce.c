/* bench_allreduce: the comm layer's coll_allreduce_sum_f32 against raw
 * MPI_Allreduce (MPI_IN_PLACE, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) at 4 KB,
 * 1 MB and 64 MB. Run under mpirun with 2 or more ranks (bench/allreduce.sh).
 *
 * NOTE: this file is the one place outside comm/ that calls MPI directly: the
 * raw MPI_Allreduce is the peer the comm layer is measured against, and the
 * barrier/max-reduction that frame each timed repetition are harness, not
 * the thing measured. Everything else in the project goes through comm/.
 *
 * Method, per size: both peers warm up, then repetitions interleave
 * (A, B, A, B, ...) so drift in machine load hits both alike. Each repetition
 * refills the buffer (untimed), passes a barrier, then times one allreduce;
 * the repetition's time is the slowest rank's (MPI_MAX). Reported: the median
 * of each peer. The repetition count comes from the warm-up time so each size
 * spends about --budget-s seconds (clamped to [--min-reps, --max-reps]).
 * The first result of each peer is checked (every rank fills rank+1, so the
 * sum is size(size+1)/2, exact in fp32); a wrong sum or an MPI error exits 1.
 * Timings are printed, never judged.
 *
 * usage: bench_allreduce [--budget-s S] [--min-reps N] [--max-reps N]
 * prints per size (rank 0):
 *   allreduce ranks=N bytes=B raw_us=X comm_us=Y overhead=+Z.Z% reps=R */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/mpi/comm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *buf, size_t n, int rank)
{
    const float v = (float)(rank + 1);
    for (size_t i = 0; i < n; i++) buf[i] = v;
}

/* 0 if every element holds the expected sum (checked on a stride for speed,
 * plus the last element). */
static int check(const float *buf, size_t n, int size)
{
    const float want = (float)size * (float)(size + 1) / 2.0f;
    size_t step = n > 4096 ? n / 4096 : 1;
    for (size_t i = 0; i < n; i += step)
        if (buf[i] != want) return -1;
    return buf[n - 1] == want ? 0 : -1;
}

enum { PEER_RAW, PEER_COMM };

/* One timed repetition of one peer; returns the slowest rank's seconds. */
static double one_rep(int peer, Group *g, float *buf, size_t n, int rank)
{
    fill(buf, n, rank);
    if (MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "bench_allreduce: rank %d: MPI_Barrier failed\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double t0 = MPI_Wtime();
    if (peer == PEER_RAW) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) {
            fprintf(stderr, "bench_allreduce: rank %d: MPI_Allreduce of %zu floats failed (%d)\n",
                    rank, n, rc);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    } else {
        coll_allreduce_sum_f32(g, buf, n);
    }
    double dt = MPI_Wtime() - t0, worst = 0;
    MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv)
{
    CommWorld w;
    if (comm_init(&argc, &argv, &w)) {
        fprintf(stderr, "bench_allreduce: comm_init failed\n");
        return 1;
    }
    double budget_s = 2.0;
    int min_reps = 5, max_reps = 400;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--budget-s") && i + 1 < argc) {
            budget_s = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--min-reps") && i + 1 < argc) {
            min_reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--max-reps") && i + 1 < argc) {
            max_reps = atoi(argv[++i]);
        } else {
            if (w.rank == 0)
                fprintf(stderr, "usage: %s [--budget-s S] [--min-reps N] [--max-reps N]\n",
                        argv[0]);
            comm_finalize();
            return 2;
        }
    }
    if (min_reps < 1) min_reps = 1;
    if (max_reps < min_reps) max_reps = min_reps;
    if (w.size < 2 && w.rank == 0)
        fprintf(stderr, "bench_allreduce: 1 rank: the comm layer skips the call; "
                        "run under mpirun -np 2 or more\n");

    Group *g = group_world();
    const size_t sizes[] = {4u << 10, 1u << 20, 64u << 20};
    int failed = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0] && !failed; s++) {
        size_t n = sizes[s] / sizeof(float);
        float *buf = malloc(n * sizeof *buf);
        int ok = buf != NULL, all_ok = 0;
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!all_ok) {
            if (w.rank == 0) fprintf(stderr, "bench_allreduce: cannot allocate %zu bytes\n", sizes[s]);
            free(buf);
            failed = 1;
            break;
        }

        /* warm-up, with the correctness check on the first result of each */
        int bad = 0, any_bad = 0;
        double warm = 0;
        int nwarm = sizes[s] >= (16u << 20) ? 2 : 10;
        for (int i = 0; i < nwarm; i++) {
            for (int peer = PEER_RAW; peer <= PEER_COMM; peer++) {
                warm += one_rep(peer, g, buf, n, w.rank);
                if (i == 0 && w.size > 1 && check(buf, n, w.size)) {
                    fprintf(stderr, "bench_allreduce: rank %d: %s allreduce of %zu bytes gave a "
                                    "wrong sum (got %g, want %g)\n",
                            w.rank, peer == PEER_RAW ? "raw" : "comm", sizes[s], buf[0],
                            (double)w.size * (w.size + 1) / 2.0);
                    bad = 1;
                }
            }
        }
        MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any_bad) {
            free(buf);
            failed = 1;
            break;
        }

        /* repetitions from the warm-up time (per A+B pair); same on every rank */
        double pair_s = warm / nwarm;
        int reps = pair_s > 0 ? (int)(budget_s / pair_s) : max_reps;
        if (reps < min_reps) reps = min_reps;
        if (reps > max_reps) reps = max_reps;
        MPI_Bcast(&reps, 1, MPI_INT, 0, MPI_COMM_WORLD);

        double *t_raw = malloc((size_t)reps * sizeof *t_raw);
        double *t_comm = malloc((size_t)reps * sizeof *t_comm);
        if (!t_raw || !t_comm) {
            fprintf(stderr, "bench_allreduce: out of memory\n");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int r = 0; r < reps; r++) {
            /* alternate which peer goes first so neither always follows the other */
            if (r % 2 == 0) {
                t_raw[r] = one_rep(PEER_RAW, g, buf, n, w.rank);
                t_comm[r] = one_rep(PEER_COMM, g, buf, n, w.rank);
            } else {
                t_comm[r] = one_rep(PEER_COMM, g, buf, n, w.rank);
                t_raw[r] = one_rep(PEER_RAW, g, buf, n, w.rank);
            }
        }
        double raw_us = median(t_raw, reps) * 1e6, comm_us = median(t_comm, reps) * 1e6;
        if (w.rank == 0) {
            printf("allreduce ranks=%d bytes=%zu raw_us=%.1f comm_us=%.1f overhead=%+.1f%% "
                   "reps=%d\n",
                   w.size, sizes[s], raw_us, comm_us,
                   raw_us > 0 ? (comm_us / raw_us - 1.0) * 100.0 : 0.0, reps);
            fflush(stdout);
        }
        free(t_raw);
        free(t_comm);
        free(buf);
    }
    if (w.rank == 0) {
        CommStats *st = group_stats(g);
        printf("comm_layer_stats calls=%ld bytes_sent=%.0f exposed_s=%.3f\n", st->calls,
               st->bytes_sent, st->exposed_s);
    }
    comm_finalize();
    return failed;
}
