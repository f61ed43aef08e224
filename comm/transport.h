#ifndef MPITRAIN_TRANSPORT_H
#define MPITRAIN_TRANSPORT_H
/* What every transport in comm/ has in common. Each transport has its own
 * room: comm/mpi/ (the job's ranks: groups, collectives, p2p, the paced sum,
 * the mesh) and comm/fabric/ (libfabric messages between swarm machines
 * that come and go); comm/trace/ records spans over them. A transport
 *  - is the only code that calls its library (MPI_*, fi_*);
 *  - opens and closes itself (comm_init/comm_finalize,
 *    fabric_open/fabric_close);
 *  - names the peer when it fails: fabric returns an Err with the provider
 *    and the peer's name; MPI prints the call and the rank and stops the
 *    job, since a communicator that lost a rank cannot go on (Open MPI 4.1
 *    has no ULFM), and comm_agree carries the ranks' own errors as Errs;
 *  - stamps times with comm_wtime, the one clock of comm/ and the trace;
 *  - counts this process's traffic in a CommStats (per MPI group, per
 *    fabric endpoint);
 *  - reports the operations it blocked in as spans through comm_account or
 *    comm_span (MPI: every collective and wait; fabric: none yet), which
 *    the trace hooks into (comm/ knows nothing of it). */
#include <stddef.h>

/* Monotonic seconds, usable before any transport is open (tests drive the
 * trainer without MPI). */
double comm_wtime(void);

typedef struct {
    double bytes_sent;   /* payload bytes this process put on the wire */
    double exposed_s;    /* time blocked in collectives / waits */
    double overlapped_s; /* time non-blocking ops ran while we computed */
    long calls;          /* operations: collectives and requests, or messages */
} CommStats;

/* Where finished operations go as spans (what, p2p: a point-to-point wait
 * rather than a collective, start and end in comm_wtime, bytes sent or -1).
 * NULL (the default) = nowhere; the trace installs one while it records. */
typedef void (*CommSpanHook)(const char *what, int p2p, double t0, double t1, double bytes);
void comm_set_span_hook(CommSpanHook hook);
void comm_span(const char *what, int p2p, double t0, double t1, double bytes);
/* A blocking operation started at t0 has just finished: counts its bytes,
 * its time as exposed and the call in s, and reports it as a span. */
void comm_account(CommStats *s, double bytes, double t0, const char *what);

#endif
