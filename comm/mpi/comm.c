#include "comm/mpi/comm.h"
#include "base/hash.h"
#include "base/sysinfo.h"

#include <mpi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct Group {
    MPI_Comm comm;
    int rank, size;
    CommStats stats;
    int n_active;          /* non-blocking requests in flight */
    double active_since;   /* when the first of them started */
    double waited_since;   /* time blocked in waits while they were in flight */
};

/* An MPI error inside a collective leaves the job in an unknown state: say
 * which call on which rank failed and stop the job (the supervisor restarts
 * from the last checkpoint). */
static void check(int rc, const char *what, const Group *g)
{
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    int wr = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    fprintf(stderr, "mpitrain: rank %d: %s failed in a group of %d: %s\n", wr, what,
            g ? g->size : 0, msg);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static int count_of(size_t n, const char *what)
{
    if (n > (size_t)INT_MAX) {
        fprintf(stderr, "mpitrain: %s of %zu elements exceeds MPI's int count\n", what, n);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return (int)n;
}

static Group world_group;

static void *comm_xalloc(size_t n);

/* What one rank says about where it runs (72 bytes, gathered once). */
#define CPU_BITS 256
typedef struct {
    uint64_t boot;                    /* hash of the kernel's boot id */
    char host[32];
    unsigned char cpus[CPU_BITS / 8]; /* its affinity mask */
} Whereabouts;

/* Folds the world's whereabouts into this rank's view of its machine. */
static void summarize_machine(CommWorld *w, const Whereabouts *all)
{
    unsigned char cpus[CPU_BITS / 8] = {0};
    const Whereabouts *me = &all[w->rank];
    w->machine_ranks = w->machine_hosts = w->machines = 0;
    for (int r = 0; r < w->size; r++) {
        int first_of_kernel = 1;
        for (int q = 0; q < r && first_of_kernel; q++) first_of_kernel = all[q].boot != all[r].boot;
        w->machines += first_of_kernel;
        if (all[r].boot != me->boot) continue;
        int new_host = 1;
        for (int q = 0; q < r && new_host; q++)
            new_host = !(all[q].boot == me->boot && !strcmp(all[q].host, all[r].host));
        if (!w->machine_ranks) snprintf(w->first_host, sizeof w->first_host, "%s", all[r].host);
        snprintf(w->last_host, sizeof w->last_host, "%s", all[r].host);
        w->machine_ranks++;
        w->machine_hosts += new_host;
        for (int b = 0; b < CPU_BITS / 8; b++) cpus[b] |= all[r].cpus[b];
    }
    int n = 0;
    for (int c = 0; c < CPU_BITS; c++) n += (cpus[c / 8] >> (c % 8)) & 1;
    /* a mask past the bitmap's CPUs: trust the counts instead */
    w->machine_cores = n >= w->cores ? n : w->cores;
}

/* Which ranks share a kernel, and its cores: one small allgather at
 * startup, counted like any other traffic. */
static void gather_machines(CommWorld *w)
{
    Whereabouts me;
    memset(&me, 0, sizeof me);
    char boot[64];
    sys_boot_id(boot, sizeof boot);
    if (!boot[0]) snprintf(boot, sizeof boot, "unknown-%d", w->rank); /* no /proc: assume apart */
    me.boot = fnv1a64(FNV1A64_INIT, boot, strlen(boot));
    if (gethostname(me.host, sizeof me.host - 1)) snprintf(me.host, sizeof me.host, "?");
    w->cores = sys_affinity_bits(me.cpus, CPU_BITS);
    Whereabouts *all = comm_xalloc((size_t)w->size * sizeof *all);
    check(MPI_Allgather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgather", &world_group);
    world_group.stats.bytes_sent += (double)(w->size - 1) * sizeof me;
    summarize_machine(w, all);
    free(all);
}

/* Open MPI's non-blocking all-reduce (libnbc) picks a binomial tree for
 * every in-place call, and the gradient buckets are all-reduced in place:
 * the root's link then carries the whole bucket log2(p) times each way.
 * Over 4 hosts at 10 Mbit/s a 0.5 MB bucket took 2.0 s that way and 0.72 s
 * as a ring (ideal 0.63 s); on shared memory the ring is no slower. So the
 * ring is the default here; a value the user set (environment or mpirun
 * --mca, which reaches the ranks as the same variable) wins. Other MPIs
 * ignore the variable. */
static void prefer_ring_iallreduce(void)
{
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
}

int comm_init(int *argc, char ***argv, CommWorld *w)
{
    int provided;
    prefer_ring_iallreduce();
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    /* collectives return errors to us instead of aborting deep inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_size(node, &w->local_size);
    MPI_Comm_free(&node);
    world_group.comm = MPI_COMM_WORLD;
    world_group.rank = w->rank;
    world_group.size = w->size;
    gather_machines(w);
    return 0;
}

void comm_finalize(void) { MPI_Finalize(); }


/* The CPUs a rank may use: its own share when the launcher or SLURM bound
 * it, else an even share of the machine's cores among the ranks on its
 * kernel (or on MPI's shared-memory node, if that counts more). */
int comm_default_threads(const CommWorld *w)
{
    int bound = 0, cpus = sys_usable_cpus(&bound);
    int sharing = w->machine_ranks > w->local_size ? w->machine_ranks : w->local_size;
    int t = bound ? cpus : cpus / (sharing > 0 ? sharing : 1);
    return t < 1 ? 1 : t;
}

/* Bookkeeping inside a collective (counts, displacements, a request) is
 * tiny; if even that cannot be had, the rank cannot take part and a
 * collective would hang the others, so the job ends with the rank named. */
static void *comm_xalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p) return p;
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "mpitrain: rank %d: out of memory (%zu bytes) inside a collective\n", rank, n);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return NULL;
}

/* ---- groups ------------------------------------------------------------- */

Group *group_world(void) { return &world_group; }

Group *group_split(Group *parent, int color, int key)
{
    Group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    MPI_Comm_split(parent->comm, color, key, &g->comm);
    MPI_Comm_rank(g->comm, &g->rank);
    MPI_Comm_size(g->comm, &g->size);
    return g;
}

void group_free(Group *g)
{
    if (!g || g == &world_group) return;
    MPI_Comm_free(&g->comm);
    free(g);
}

int group_rank(const Group *g) { return g->rank; }
int group_size(const Group *g) { return g->size; }
CommStats *group_stats(Group *g) { return &g->stats; }

/* ---- accounting --------------------------------------------------------- */

static double ring_share(const Group *g) { return (double)(g->size - 1) / g->size; }

static void account(Group *g, double bytes, double t0, const char *what)
{
    comm_account(&g->stats, bytes, t0, what);
}

/* ---- blocking collectives --------------------------------------------- */

void coll_barrier(Group *g)
{
    double t0 = comm_wtime();
    check(MPI_Barrier(g->comm), "MPI_Barrier", g);
    account(g, 0, t0, "barrier");
}

void coll_bcast(Group *g, void *buf, size_t bytes, int root)
{
    double t0 = comm_wtime();
    check(MPI_Bcast(buf, count_of(bytes, "broadcast"), MPI_BYTE, root, g->comm), "MPI_Bcast", g);
    account(g, g->rank == root ? (double)bytes : 0, t0, "broadcast");
}

static void allreduce(Group *g, void *buf, size_t n, MPI_Datatype t, MPI_Op op, size_t elem)
{
    if (g->size == 1) return;
    double t0 = comm_wtime();
    check(MPI_Allreduce(MPI_IN_PLACE, buf, count_of(n, "all-reduce"), t, op, g->comm),
          "MPI_Allreduce", g);
    account(g, 2.0 * ring_share(g) * n * elem, t0, "allreduce");
}

void coll_allreduce_sum_f32(Group *g, float *buf, size_t n)
{
    allreduce(g, buf, n, MPI_FLOAT, MPI_SUM, sizeof(float));
}

void coll_allreduce_sum_f64(Group *g, double *buf, size_t n)
{
    allreduce(g, buf, n, MPI_DOUBLE, MPI_SUM, sizeof(double));
}

void coll_allreduce_max_i64(Group *g, int64_t *buf, size_t n)
{
    allreduce(g, buf, n, MPI_INT64_T, MPI_MAX, sizeof(int64_t));
}

void coll_allreduce_max_f64(Group *g, double *buf, size_t n)
{
    allreduce(g, buf, n, MPI_DOUBLE, MPI_MAX, sizeof(double));
}

void coll_allreduce_min_i64(Group *g, int64_t *buf, size_t n)
{
    allreduce(g, buf, n, MPI_INT64_T, MPI_MIN, sizeof(int64_t));
}

static double total_count(const Group *g, const int *counts)
{
    double s = 0;
    for (int i = 0; i < g->size; i++) s += counts[i];
    return s;
}

void coll_allgather_bytes(Group *g, const void *mine, void *out, size_t bytes_each)
{
    double t0 = comm_wtime();
    int n = count_of(bytes_each, "all-gather");
    check(MPI_Allgather(mine, n, MPI_BYTE, out, n, MPI_BYTE, g->comm), "MPI_Allgather", g);
    account(g, (double)(g->size - 1) * bytes_each, t0, "allgather");
}

void coll_gather_bytes(Group *g, const void *mine, void *out, size_t bytes_each, int root)
{
    double t0 = comm_wtime();
    int n = count_of(bytes_each, "gather");
    check(MPI_Gather(mine, n, MPI_BYTE, out, n, MPI_BYTE, root, g->comm), "MPI_Gather", g);
    account(g, g->rank == root ? 0 : (double)bytes_each, t0, "gather");
}

int coll_gatherv_bytes(Group *g, const void *mine, size_t len, void **out, size_t *lens, int root)
{
    int n = count_of(len, "gather"), *counts = NULL, *displs = NULL, total = 0;
    double t0 = comm_wtime();
    if (g->rank == root) {
        counts = comm_xalloc(g->size * sizeof(int));
        displs = comm_xalloc(g->size * sizeof(int));
    }
    check(MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, root, g->comm), "MPI_Gather", g);
    char *buf = NULL;
    if (g->rank == root) {
        for (int i = 0; i < g->size; i++) {
            displs[i] = total;
            total += counts[i];
            lens[i] = (size_t)counts[i];
        }
        buf = comm_xalloc((size_t)total);
    }
    check(MPI_Gatherv(mine, n, MPI_BYTE, buf, counts, displs, MPI_BYTE, root, g->comm),
          "MPI_Gatherv", g);
    account(g, g->rank == root ? 0 : (double)len, t0, "gatherv");
    free(counts);
    free(displs);
    if (g->rank == root) *out = buf;
    return 0;
}

void coll_allgatherv_inplace_f32(Group *g, float *buf, const int *counts)
{
    if (g->size == 1) return;
    int *displs = comm_xalloc(g->size * sizeof(int));
    for (int i = 0, d = 0; i < g->size; d += counts[i], i++) displs[i] = d;
    double t0 = comm_wtime();
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT,
                         g->comm), "MPI_Allgatherv", g);
    account(g, ring_share(g) * total_count(g, counts) * sizeof(float), t0, "allgatherv");
    free(displs);
}

/* ---- non-blocking ------------------------------------------------------ */

static void start(CommRequest *r, Group *g, double bytes, const char *what, int p2p)
{
    r->g = g;
    r->what = what;
    r->p2p = p2p;
    r->t_start = comm_wtime();
    r->bytes = bytes;
    r->active = 1;
    if (g->n_active++ == 0) {
        g->active_since = r->t_start;
        g->waited_since = 0;
    }
}

void coll_iallreduce_sum_f32(Group *g, float *buf, size_t n, CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, 2.0 * ring_share(g) * n * sizeof(float), "wait allreduce", 0);
    check(MPI_Iallreduce(MPI_IN_PLACE, buf, count_of(n, "all-reduce"), MPI_FLOAT, MPI_SUM,
                         g->comm, (MPI_Request *)r->req), "MPI_Iallreduce", g);
}

void coll_ireduce_scatter_f32(Group *g, const float *send, float *recv, const int *counts,
                              CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, ring_share(g) * total_count(g, counts) * sizeof(float), "wait reduce_scatter", 0);
    check(MPI_Ireduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, g->comm,
                              (MPI_Request *)r->req), "MPI_Ireduce_scatter", g);
}

void p2p_isend_f32(Group *g, const float *buf, size_t n, int dest, int tag, CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, (double)n * sizeof(float), "wait send", 1);
    check(MPI_Isend(buf, count_of(n, "send"), MPI_FLOAT, dest, tag, g->comm,
                    (MPI_Request *)r->req), "MPI_Isend", g);
}

void p2p_irecv_f32(Group *g, float *buf, size_t n, int src, int tag, CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, 0, "wait recv", 1);
    check(MPI_Irecv(buf, count_of(n, "receive"), MPI_FLOAT, src, tag, g->comm,
                    (MPI_Request *)r->req), "MPI_Irecv", g);
}

void p2p_isend_bytes(Group *g, const void *buf, size_t n, int dest, int tag, CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, (double)n, "wait send", 1);
    check(MPI_Isend(buf, count_of(n, "send"), MPI_BYTE, dest, tag, g->comm, (MPI_Request *)r->req),
          "MPI_Isend", g);
}

void p2p_irecv_bytes(Group *g, void *buf, size_t n, int src, int tag, CommRequest *r)
{
    if (!r->req) r->req = comm_xalloc(sizeof(MPI_Request));
    start(r, g, 0, "wait recv", 1);
    check(MPI_Irecv(buf, count_of(n, "receive"), MPI_BYTE, src, tag, g->comm, (MPI_Request *)r->req),
          "MPI_Irecv", g);
}

void comm_request_free(CommRequest *r)
{
    free(r->req);
    r->req = NULL;
}

/* Overlapped time is the wall time during which at least one request was
 * in flight, less the time we were blocked waiting: concurrent requests are
 * not counted twice. */
static void finish(CommRequest *r, double waited)
{
    Group *g = r->g;
    CommStats *s = &g->stats;
    s->bytes_sent += r->bytes;
    s->exposed_s += waited;
    s->calls++;
    g->waited_since += waited;
    r->active = 0;
    if (--g->n_active == 0) {
        double hidden = comm_wtime() - g->active_since - g->waited_since;
        s->overlapped_s += hidden > 0 ? hidden : 0;
    }
}

int coll_test(CommRequest *r)
{
    if (!r->active) return 1;
    int done = 0;
    check(MPI_Test((MPI_Request *)r->req, &done, MPI_STATUS_IGNORE), "MPI_Test", r->g);
    if (done) finish(r, 0);
    return done;
}

void coll_wait(CommRequest *r)
{
    if (!r->active) return;
    double t0 = comm_wtime();
    check(MPI_Wait((MPI_Request *)r->req, MPI_STATUS_IGNORE), "MPI_Wait", r->g);
    double t1 = comm_wtime();
    comm_span(r->what, r->p2p, t0, t1, r->bytes);
    finish(r, t1 - t0);
}

/* ---- failure agreement ------------------------------------------------ */

int comm_agree(Group *g, int rc, const Err *mine, Err *first)
{
    int64_t bad[2] = {rc ? 1 : 0, rc ? g->rank : g->size};
    int64_t failed = bad[0], lowest = bad[1];
    if (g->size > 1) {
        MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT64_T, MPI_SUM, g->comm);
        MPI_Allreduce(MPI_IN_PLACE, &lowest, 1, MPI_INT64_T, MPI_MIN, g->comm);
    }
    if (!failed) return 0;
    char msg[sizeof first->msg];
    memset(msg, 0, sizeof msg);
    if (g->rank == lowest && mine) memcpy(msg, mine->msg, sizeof msg);
    if (g->size > 1) MPI_Bcast(msg, sizeof msg, MPI_CHAR, (int)lowest, g->comm);
    if (first) {
        msg[sizeof msg - 1] = 0;
        /* an error agreed on before (a setup that agrees inside) is named once */
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rank %d: ", (int)lowest);
        if (g->size > 1 && strncmp(msg, prefix, strlen(prefix)))
            err_set(first, "%s%s", prefix, msg);
        else
            err_set(first, "%s", msg);
    }
    return (int)failed;
}

/* The shortest of `reps` round trips of `bytes`, halved: the link as an
 * idle machine has it. A mean is the scheduler's as much as the link's
 * when other work shares the cores: one round trip in which rank 1 was not
 * scheduled (a 2-core machine at load 15 measured 5.7 ms and 346 Mbit/s
 * where idle gives 5-20 us and several Gbit/s) made every predicted
 * message that slow. A shaper's token bucket refills during each return
 * leg alike, so the shortest is no more inside its burst than the mean. */
static double pingpong(Group *g, char *buf, int bytes, int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = comm_wtime();
        if (g->rank == 0) {
            check(MPI_Send(buf, bytes, MPI_BYTE, 1, 77, g->comm), "MPI_Send", g);
            check(MPI_Recv(buf, bytes, MPI_BYTE, 1, 77, g->comm, MPI_STATUS_IGNORE), "MPI_Recv", g);
        } else if (g->rank == 1) {
            check(MPI_Recv(buf, bytes, MPI_BYTE, 0, 77, g->comm, MPI_STATUS_IGNORE), "MPI_Recv", g);
            check(MPI_Send(buf, bytes, MPI_BYTE, 0, 77, g->comm), "MPI_Send", g);
        }
        double t = (comm_wtime() - t0) / 2;
        if (t < best) best = t;
    }
    return best;
}

/* Rank 0 pings rank r `reps` times; the round with the shortest round trip
 * bounds the error best: offset = r's clock - the midpoint of rank 0's. */
static double ping_offset(Group *g, int r, int reps)
{
    double best_rtt = 1e30, best = 0;
    for (int k = 0; k < reps; k++) {
        double there, a = comm_wtime();
        check(MPI_Send(&a, 1, MPI_DOUBLE, r, 78, g->comm), "MPI_Send", g);
        check(MPI_Recv(&there, 1, MPI_DOUBLE, r, 78, g->comm, MPI_STATUS_IGNORE), "MPI_Recv", g);
        double b = comm_wtime();
        if (b - a < best_rtt) {
            best_rtt = b - a;
            best = there - 0.5 * (a + b);
        }
    }
    return best;
}

double comm_clock_offset(Group *g, int reps)
{
    double mine = 0;
    for (int r = 1; r < g->size; r++) {
        if (g->rank == 0) {
            double off = ping_offset(g, r, reps);
            check(MPI_Send(&off, 1, MPI_DOUBLE, r, 79, g->comm), "MPI_Send", g);
        } else if (g->rank == r) {
            for (int k = 0; k < reps; k++) {
                double a, now;
                check(MPI_Recv(&a, 1, MPI_DOUBLE, 0, 78, g->comm, MPI_STATUS_IGNORE), "MPI_Recv", g);
                now = comm_wtime();
                check(MPI_Send(&now, 1, MPI_DOUBLE, 0, 78, g->comm), "MPI_Send", g);
            }
            check(MPI_Recv(&mine, 1, MPI_DOUBLE, 0, 79, g->comm, MPI_STATUS_IGNORE), "MPI_Recv", g);
        }
    }
    return mine;
}

/* Sized to the link: 8-byte round trips for the latency, then messages of
 * 16 KB, 256 KB and 1 MB, each size only when the one before showed a link
 * faster than FAST_BPS or was over too soon to be trusted. The middle size
 * outlasts a shaper's burst (a token bucket lets 16 KB messages through at
 * line rate), so 100 and 10 Mbit/s links stop there: about 0.6 MB and 0.1 s
 * (0.8 s at 10 Mbit/s) instead of 20 MB and 2 s. Rank 0
 * decides, so ranks 0 and 1 agree on what to send. */
int comm_measure_link(Group *g, double *alpha_s, double *beta_Bps)
{
    if (g->size < 2) return 0;
    static const int SIZE[] = {16 << 10, 256 << 10, 1 << 20}, REPS[] = {4, 2, 10};
    const double FAST_BPS = 50e6; /* 400 Mbit/s */
    char *buf = comm_xalloc(1 << 20);
    double r[2] = {0, 0}; /* latency, bandwidth */
    coll_barrier(g);
    pingpong(g, buf, 8, 5); /* warm up the connection */
    double small = pingpong(g, buf, 8, 20), sent = 25 * 8.0;
    for (int k = 0; k < 3; k++) {
        double t = pingpong(g, buf, SIZE[k], REPS[k]);
        sent += (double)REPS[k] * SIZE[k];
        r[1] = t > small ? SIZE[k] / (t - small) : SIZE[k] / t;
        /* a stage over in under 20 ms may have run inside a shaper's burst
         * (tbf passes its bucket at line rate): the next size tells */
        double more = k < 2 && (r[1] > FAST_BPS || 2.0 * REPS[k] * t < 0.02);
        check(MPI_Bcast(&more, 1, MPI_DOUBLE, 0, g->comm), "MPI_Bcast", g);
        if (!more) break;
    }
    free(buf);
    r[0] = small;
    check(MPI_Bcast(r, 2, MPI_DOUBLE, 0, g->comm), "MPI_Bcast", g);
    *alpha_s = r[0];
    *beta_Bps = r[1];
    /* counted like any other traffic (summary.json: startup_bytes_per_rank) */
    if (g->rank <= 1) g->stats.bytes_sent += sent;
    return 1;
}
