/* libfabric RDM endpoints for the swarm (see fabric.h).
 *
 * One endpoint, one address vector, one completion queue for sends and
 * receives. Buffers come from one region: RECV_BUFS receive buffers, always
 * posted except while a completed one waits in the ready ring, and SEND_BUFS
 * send buffers that a send copies into and its completion frees. Every
 * operation's context is its buffer's struct fi_context, so a completion
 * (good or bad) names its buffer.
 *
 * Observed with libfabric 1.17 (Debian 12), provider "tcp" (which is
 * "tcp;ofi_rxm": rxm's reliable datagrams over tcp connections, opened
 * lazily on the first send to a peer; manual progress, so nothing moves
 * unless this process reads the CQ):
 * - a new peer: fi_send returns -FI_EAGAIN until the connection is up; such
 *   messages wait in the pending FIFO (fabric_send does not spin on them).
 * - peer never existed (connection refused): no error completion ever comes;
 *   rxm logs the refusal, resets the connection and answers every fi_send
 *   with -FI_EAGAIN (retrying the connect), so the messages stay pending and
 *   are dropped as send_errors after PENDING_MAX_S.
 * - peer killed (kill -9) after a connection: the next sends are accepted
 *   and complete with errors (FI_ENOTCONN, "Broken pipe") once the kernel
 *   resets the connection: 20 of 21 in the test; nothing blocks, other peers
 *   are unaffected.
 * - peer SIGSTOPped: 64 KiB sends are accepted and stay in flight (socket
 *   buffers, rxm's queue); once PEER_QUEUE_MAX of them are held, one
 *   fabric_send waits up to 1 s (the peer may just be slow), after which the
 *   peer counts as stuck and further messages to it are dropped at once
 *   (send_errors). After SIGCONT the held ones are delivered.
 * - a bound port another endpoint listens on: fi_endpoint fails with
 *   "Address already in use".
 * Provider "shm": names are FI_ADDR_STR strings "fi_shm://PID:0:0"; an
 * endpoint opened before a fork() breaks the child's shm (its open or its
 * traffic hangs): fork first, then open. */
#include "comm/fabric/fabric.h"
#include "comm/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

/* SEND_SLOTS bounds the sends held at once (each a malloc'd copy of its
 * message); PEER_QUEUE_MAX bounds those to one peer, so a stopped or dead
 * peer cannot take every slot from the others. A peer whose queue is full
 * and has completed nothing for STUCK_S seconds is stuck: further messages to
 * it are dropped at once (send_errors) instead of waiting. Messages the
 * provider refused (-FI_EAGAIN, e.g. while connecting) wait in a FIFO and are
 * dropped after PENDING_MAX_S. */
enum { RECV_BUFS = 32, SEND_SLOTS = 1024, NCTX = RECV_BUFS + SEND_SLOTS, CQ_BATCH = 16 };
enum { PEER_QUEUE_MAX = 256 };
#define STUCK_S 1.0
#define PENDING_MAX_S 30.0
enum { RECV_IDLE, RECV_POSTED, RECV_READY };
enum { SLOT_FREE, SLOT_PENDING, SLOT_INFLIGHT };

typedef struct {
    char name[FABRIC_NAME_LEN];
    FabricAddr addr;
    int queued;        /* this peer's sends pending or in flight */
    int pending;       /* of which in the pending FIFO */
    double last_moved; /* a send to it completed (or its queue was empty) */
    unsigned blocked_pass; /* refused a retry in this pass: keep its order */
} PeerName;

typedef struct {
    unsigned char *buf;
    struct fid_mr *mr; /* only if the provider wants local buffers registered */
    size_t len;
    size_t peer; /* index into peers */
    double queued_at;
    int state;
    int next; /* the pending FIFO */
} SendSlot;

struct Fabric {
    char provider[16];
    char name[FABRIC_NAME_LEN];
    int is_tcp;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    struct fid_mr *mr; /* the receive region, if buffers must be registered */
    void *desc;
    int cq_waits; /* the CQ has a wait object: fi_cq_sread sleeps in the kernel */
    unsigned char *region;
    int mr_local;
    struct fi_context ctx[NCTX]; /* receive buffers first, then send slots */
    int recv_state[RECV_BUFS];
    size_t recv_len[RECV_BUFS];
    int ready[RECV_BUFS]; /* ring of completed receives, oldest first */
    int ready_head, ready_count;
    SendSlot slot[SEND_SLOTS];
    int free_slot[SEND_SLOTS];
    int nfree;
    int pending_head, pending_tail; /* -1 = empty */
    unsigned pass;
    PeerName *peers;
    size_t npeers, peers_cap;
    FabricStats stats;
};

/* ---- small helpers ---------------------------------------------------------- */

static void nap_us(long us)
{
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

static const char *fi_err(int rc) { return fi_strerror(rc < 0 ? -rc : rc); }

static unsigned char *buf_at(Fabric *f, int i) { return f->region + (size_t)i * FABRIC_MSG_MAX; }

/* Splits "HOST:PORT" at its last colon; HOST may be empty. 0 on success. */
static int split_host_port(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    size_t hl = (size_t)(colon - s), pl = strlen(colon + 1);
    if (hl >= hcap || pl == 0 || pl >= pcap) return -1;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    if (atol(colon + 1) > 65535) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

/* The local IPv4 address on the route to toward ("HOST:PORT"): a connected
 * UDP socket sends nothing, but the kernel picks its source address. */
static int route_source(const char *toward, char *ip, size_t cap, Err *e)
{
    char host[256], port[16];
    if (split_host_port(toward, host, sizeof host, port, sizeof port) || !host[0])
        return err_set(e, "libfabric tcp: toward \"%s\" is not HOST:PORT", toward);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g) return err_set(e, "libfabric tcp: toward %s: %s", toward, gai_strerror(g));
    int fd = socket(AF_INET, SOCK_DGRAM, 0), rc = -1;
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &ml) == 0 &&
        inet_ntop(AF_INET, &me.sin_addr, ip, (socklen_t)cap))
        rc = 0;
    else
        err_set(e, "libfabric tcp: no route toward %s: %s", toward, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return rc;
}

/* ---- opening ---------------------------------------------------------------- */

/* Where to bind, as fi_getinfo's node and service (tcp), or node alone (shm). */
static int bind_target(const char *provider, const char *bind, const char *toward, char *node,
                       size_t ncap, char *service, size_t scap, Err *e)
{
    node[0] = service[0] = '\0';
    if (strcmp(provider, "tcp") != 0) {
        if (bind && strlen(bind) >= ncap) return err_set(e, "libfabric %s: name too long", provider);
        snprintf(node, ncap, "%s", bind ? bind : "");
        return 0;
    }
    if (bind && bind[0] && split_host_port(bind, node, ncap, service, scap))
        return err_set(e, "libfabric tcp: cannot listen on \"%s\": not HOST:PORT", bind);
    if (!service[0]) snprintf(service, scap, "0");
    if (node[0]) return 0;
    if (toward && toward[0]) return route_source(toward, node, ncap, e);
    snprintf(node, ncap, "127.0.0.1");
    return 0;
}

/* fi_getinfo for an RDM endpoint with FI_MSG, first with no need to
 * register local buffers, then letting the provider demand it. */
static int get_info(const char *provider, const char *node, const char *service,
                    struct fi_info **out, Err *e)
{
    struct fi_info *hints = fi_allocinfo();
    if (!hints) return err_set(e, "libfabric %s: out of memory", provider);
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_MSG;
    hints->mode = FI_CONTEXT;
    hints->fabric_attr->prov_name = strdup(provider);
    if (strcmp(provider, "tcp") == 0) hints->addr_format = FI_SOCKADDR_IN;
    hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    /* messages between two endpoints arrive in the order sent: the swarm
     * sends a joiner its journal and then its welcome, and RDM promises no
     * order unless asked (rxm's large messages can be overtaken) */
    hints->tx_attr->msg_order = FI_ORDER_SAS;
    hints->rx_attr->msg_order = FI_ORDER_SAS;
    uint64_t flags = node[0] ? FI_SOURCE : 0;
    const char *n = node[0] ? node : NULL, *s = service[0] ? service : NULL;
    int rc = fi_getinfo(FI_VERSION(1, 17), n, s, flags, hints, out);
    if (rc == -FI_ENODATA) {
        hints->domain_attr->mr_mode |= FI_MR_LOCAL | FI_MR_ENDPOINT;
        rc = fi_getinfo(FI_VERSION(1, 17), n, s, flags, hints, out);
    }
    fi_freeinfo(hints);
    if (rc)
        return err_set(e, "libfabric %s: no RDM endpoint for %s%s%s: %s", provider,
                       node[0] ? node : "any address", s ? ":" : "", s ? s : "", fi_err(rc));
    return 0;
}

static int open_cq(Fabric *f, size_t size)
{
    struct fi_cq_attr a = {.size = size, .format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_UNSPEC};
    f->cq_waits = fi_cq_open(f->domain, &a, &f->cq, NULL) == 0;
    if (f->cq_waits) return 0;
    a.wait_obj = FI_WAIT_NONE;
    return fi_cq_open(f->domain, &a, &f->cq, NULL);
}

static int register_region(Fabric *f, const struct fi_info *info)
{
    if (!(info->domain_attr->mr_mode & FI_MR_LOCAL)) return 0;
    f->mr_local = 1;
    int rc = fi_mr_reg(f->domain, f->region, (size_t)RECV_BUFS * FABRIC_MSG_MAX, FI_RECV, 0, 0, 0,
                       &f->mr, NULL);
    if (rc) return rc;
    if (info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
        rc = fi_mr_bind(f->mr, &f->ep->fid, 0);
        if (!rc) rc = fi_mr_enable(f->mr);
    }
    f->desc = fi_mr_desc(f->mr);
    return rc;
}

/* The step that failed, for the error message; 0 if all went well. */
static const char *open_objects(Fabric *f, struct fi_info *info, int *rc)
{
    if ((*rc = fi_fabric(info->fabric_attr, &f->fabric, NULL))) return "fi_fabric";
    if ((*rc = fi_domain(f->fabric, info, &f->domain, NULL))) return "fi_domain";
    struct fi_av_attr av = {.type = FI_AV_TABLE};
    if ((*rc = fi_av_open(f->domain, &av, &f->av, NULL))) return "fi_av_open";
    if ((*rc = open_cq(f, info->tx_attr->size + info->rx_attr->size))) return "fi_cq_open";
    if ((*rc = fi_endpoint(f->domain, info, &f->ep, NULL))) return "fi_endpoint";
    if ((*rc = fi_ep_bind(f->ep, &f->av->fid, 0))) return "fi_ep_bind(av)";
    if ((*rc = fi_ep_bind(f->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV))) return "fi_ep_bind(cq)";
    if ((*rc = fi_enable(f->ep))) return "fi_enable";
    if ((*rc = register_region(f, info))) return "fi_mr_reg";
    return NULL;
}

/* tcp: "IP:PORT" of the bound socket; shm: the provider's address string. */
static int read_name(Fabric *f, Err *e)
{
    unsigned char raw[128];
    size_t len = sizeof raw;
    int rc = fi_getname(&f->ep->fid, raw, &len);
    if (rc) return err_set(e, "libfabric %s: fi_getname: %s", f->provider, fi_err(rc));
    if (f->is_tcp) {
        struct sockaddr_in sin;
        char ip[INET_ADDRSTRLEN];
        memcpy(&sin, raw, sizeof sin);
        inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip);
        snprintf(f->name, sizeof f->name, "%s:%u", ip, (unsigned)ntohs(sin.sin_port));
        return 0;
    }
    if (len >= sizeof f->name || memchr(raw, '\0', len) == NULL)
        return err_set(e, "libfabric %s: address of %zu bytes is no printable name", f->provider,
                       len);
    memcpy(f->name, raw, len);
    return 0;
}

static int post_recv(Fabric *f, int i)
{
    ssize_t rc = fi_recv(f->ep, buf_at(f, i), FABRIC_MSG_MAX, f->desc, FI_ADDR_UNSPEC, &f->ctx[i]);
    if (rc == 0) f->recv_state[i] = RECV_POSTED;
    return (int)rc;
}

static int post_all_recvs(Fabric *f, Err *e)
{
    for (int i = 0; i < RECV_BUFS; i++) {
        int rc = post_recv(f, i);
        if (rc) return err_set(e, "libfabric %s: fi_recv: %s", f->provider, fi_err(rc));
    }
    return 0;
}

static Fabric *alloc_fabric(const char *provider)
{
    Fabric *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->region = malloc((size_t)RECV_BUFS * FABRIC_MSG_MAX);
    if (!f->region) {
        free(f);
        return NULL;
    }
    snprintf(f->provider, sizeof f->provider, "%s", provider);
    f->is_tcp = strcmp(provider, "tcp") == 0;
    for (int i = 0; i < SEND_SLOTS; i++) f->free_slot[i] = SEND_SLOTS - 1 - i;
    f->nfree = SEND_SLOTS;
    f->pending_head = f->pending_tail = -1;
    return f;
}

int fabric_open(Fabric **out, const char *provider, const char *bind, const char *toward, Err *e)
{
    *out = NULL;
    if (!provider || (strcmp(provider, "tcp") && strcmp(provider, "shm")))
        return err_set(e, "libfabric: unknown provider \"%s\" (tcp or shm)", provider ? provider : "");
    char node[256], service[16];
    if (bind_target(provider, bind, toward, node, sizeof node, service, sizeof service, e)) return -1;
    char where[300];
    snprintf(where, sizeof where, "%s%s%s", node[0] ? node : "any address", service[0] ? ":" : "",
             service);
    struct fi_info *info = NULL;
    if (get_info(provider, node, service, &info, e)) return -1;
    Fabric *f = alloc_fabric(provider);
    if (!f) {
        fi_freeinfo(info);
        return err_set(e, "libfabric %s: out of memory", provider);
    }
    int rc = 0;
    const char *step = open_objects(f, info, &rc);
    fi_freeinfo(info);
    if (step) {
        fabric_close(f, 0);
        return err_set(e, "libfabric %s: cannot listen on %s: %s (%s)", provider, where, fi_err(rc),
                       step);
    }
    if (read_name(f, e) || post_all_recvs(f, e)) {
        fabric_close(f, 0);
        return -1;
    }
    *out = f;
    return 0;
}

const char *fabric_name(const Fabric *f) { return f->name; }

/* ---- peers ------------------------------------------------------------------ */

static const PeerName *cached_peer(const Fabric *f, const char *name)
{
    for (size_t i = 0; i < f->npeers; i++)
        if (strcmp(f->peers[i].name, name) == 0) return &f->peers[i];
    return NULL;
}

static int cache_peer(Fabric *f, const char *name, FabricAddr a, Err *e)
{
    if (f->npeers == f->peers_cap) {
        size_t cap = f->peers_cap ? 2 * f->peers_cap : 16;
        PeerName *p = realloc(f->peers, cap * sizeof *p);
        if (!p) return err_set(e, "libfabric %s: out of memory for peers", f->provider);
        f->peers = p;
        f->peers_cap = cap;
    }
    PeerName *p = &f->peers[f->npeers++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->addr = a;
    return 0;
}

/* The raw address fi_av_insert takes for name: a sockaddr_in (tcp) or the
 * string itself (shm). */
static int peer_raw_addr(const Fabric *f, const char *name, struct sockaddr_in *sin, Err *e)
{
    if (!f->is_tcp) {
        if (strncmp(name, "fi_shm://", 9) != 0 || !name[9])
            return err_set(e, "libfabric shm: peer name \"%s\" is not fi_shm://...", name);
        return 0;
    }
    char host[64], port[16];
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    if (split_host_port(name, host, sizeof host, port, sizeof port) ||
        inet_pton(AF_INET, host, &sin->sin_addr) != 1 || atoi(port) == 0)
        return err_set(e, "libfabric tcp: peer name \"%s\" is not IPv4:PORT", name);
    sin->sin_port = htons((uint16_t)atoi(port));
    return 0;
}

int fabric_peer(Fabric *f, const char *name, FabricAddr *out, Err *e)
{
    const PeerName *c = cached_peer(f, name);
    if (c) {
        *out = c->addr;
        return 0;
    }
    if (strlen(name) >= FABRIC_NAME_LEN)
        return err_set(e, "libfabric %s: peer name \"%.80s...\" too long", f->provider, name);
    struct sockaddr_in sin;
    if (peer_raw_addr(f, name, &sin, e)) return -1;
    const void *raw = f->is_tcp ? (const void *)&sin : (const void *)name;
    fi_addr_t a = FI_ADDR_NOTAVAIL;
    int n = fi_av_insert(f->av, raw, 1, &a, 0, NULL);
    if (n != 1 || a == FI_ADDR_NOTAVAIL)
        return err_set(e, "libfabric %s: cannot add peer %s: %s", f->provider, name,
                       n < 0 ? fi_err(n) : "address rejected");
    *out = a;
    return cache_peer(f, name, a, e);
}

/* ---- send slots ------------------------------------------------------------- */

static int take_slot(Fabric *f) { return f->nfree ? f->free_slot[--f->nfree] : -1; }

static void release_slot(Fabric *f, int k)
{
    SendSlot *s = &f->slot[k];
    if (s->mr) fi_close(&s->mr->fid);
    free(s->buf);
    f->peers[s->peer].queued--;
    memset(s, 0, sizeof *s);
    f->free_slot[f->nfree++] = k;
}

/* A send that finished, well or not: a failed one's peer is gone or
 * unreachable, so it is counted; the caller never waits on it. */
static void send_finished(Fabric *f, int k, int ok)
{
    PeerName *p = &f->peers[f->slot[k].peer];
    if (ok) p->last_moved = comm_wtime();
    else f->stats.send_errors++;
    release_slot(f, k);
}

static void pending_append(Fabric *f, int k)
{
    f->slot[k].state = SLOT_PENDING;
    f->slot[k].next = -1;
    if (f->pending_tail >= 0) f->slot[f->pending_tail].next = k;
    else f->pending_head = k;
    f->pending_tail = k;
    f->peers[f->slot[k].peer].pending++;
}

/* Hands slot k to the provider: 0, -FI_EAGAIN (try later) or an error. */
static int post_send(Fabric *f, int k)
{
    SendSlot *s = &f->slot[k];
    void *desc = s->mr ? fi_mr_desc(s->mr) : NULL;
    ssize_t rc = fi_send(f->ep, s->buf, s->len, desc, f->peers[s->peer].addr, &f->ctx[RECV_BUFS + k]);
    if (rc == 0) s->state = SLOT_INFLIGHT;
    return (int)rc;
}

/* One pass over the pending FIFO, oldest first. A peer that refuses a retry
 * keeps its later messages back, so each peer's order is kept. */
static void retry_pending(Fabric *f)
{
    unsigned pass = ++f->pass;
    double now = comm_wtime();
    int prev = -1;
    for (int k = f->pending_head; k >= 0;) {
        SendSlot *s = &f->slot[k];
        PeerName *p = &f->peers[s->peer];
        int next = s->next, rc = -FI_EAGAIN, drop = 0;
        if (p->blocked_pass != pass) rc = post_send(f, k);
        if (rc == -FI_EAGAIN) {
            p->blocked_pass = pass;
            drop = now - s->queued_at > PENDING_MAX_S;
        }
        if (rc == -FI_EAGAIN && !drop) {
            prev = k;
        } else {
            if (prev >= 0) f->slot[prev].next = next;
            else f->pending_head = next;
            if (f->pending_tail == k) f->pending_tail = prev;
            p->pending--;
            if (rc != 0) send_finished(f, k, 0);
        }
        k = next;
    }
}

/* ---- completions ------------------------------------------------------------ */

static int context_index(const Fabric *f, const void *ctx)
{
    const struct fi_context *c = ctx;
    if (c < f->ctx || c >= f->ctx + NCTX) return -1;
    return (int)(c - f->ctx);
}

static void recv_completed(Fabric *f, int i, size_t len)
{
    f->recv_state[i] = RECV_READY;
    f->recv_len[i] = len;
    f->ready[(f->ready_head + f->ready_count) % RECV_BUFS] = i;
    f->ready_count++;
}

static void on_completion(Fabric *f, const struct fi_cq_msg_entry *c)
{
    int i = context_index(f, c->op_context);
    if (i < 0) return;
    if (i < RECV_BUFS) recv_completed(f, i, c->len);
    else send_finished(f, i - RECV_BUFS, 1);
}

/* A failed operation: a send's peer is gone (counted, slot freed); a
 * receive is simply posted again. */
static void on_error(Fabric *f)
{
    struct fi_cq_err_entry err = {0};
    if (fi_cq_readerr(f->cq, &err, 0) != 1) return;
    int i = context_index(f, err.op_context);
    if (i < 0) return;
    if (i >= RECV_BUFS) send_finished(f, i - RECV_BUFS, 0);
    else f->recv_state[i] = RECV_IDLE;
}

/* Reposts receive buffers that a failed post or an error left idle. */
static void repost_idle(Fabric *f)
{
    for (int i = 0; i < RECV_BUFS; i++)
        if (f->recv_state[i] == RECV_IDLE) post_recv(f, i);
}

static void handle_batch(Fabric *f, const struct fi_cq_msg_entry *c, ssize_t n)
{
    for (ssize_t k = 0; k < n; k++) on_completion(f, &c[k]);
    if (n == -FI_EAVAIL) on_error(f);
}

/* One read of the CQ (which also drives the provider's progress), then the
 * retries it may have made possible; the number of completions reaped. */
static int reap(Fabric *f)
{
    struct fi_cq_msg_entry c[CQ_BATCH];
    ssize_t n = fi_cq_read(f->cq, c, CQ_BATCH);
    handle_batch(f, c, n);
    repost_idle(f);
    if (f->pending_head >= 0) retry_pending(f);
    return n > 0 ? (int)n : n == -FI_EAVAIL;
}

void fabric_progress(Fabric *f)
{
    while (reap(f) > 0) {
    }
}

/* ---- sending ---------------------------------------------------------------- */

static PeerName *peer_of(Fabric *f, FabricAddr to)
{
    if (to < f->npeers && f->peers[to].addr == to) return &f->peers[to];
    for (size_t i = 0; i < f->npeers; i++)
        if (f->peers[i].addr == to) return &f->peers[i];
    return NULL;
}

/* Waits (progressing) while cond holds, until a second passes without a
 * completion; 1 if cond still holds then. */
static int wait_while_full(Fabric *f, const PeerName *p)
{
    double give_up = comm_wtime() + 1.0;
    while (f->nfree == 0 || (p && p->queued >= PEER_QUEUE_MAX)) {
        if (reap(f) > 0) give_up = comm_wtime() + 1.0;
        else if (comm_wtime() > give_up) return 1;
        else nap_us(100);
    }
    return 0;
}

/* The copy of a message in slot k (registered if the provider asks). */
static int fill_slot(Fabric *f, int k, size_t peer, const void *buf, size_t len)
{
    SendSlot *s = &f->slot[k];
    s->buf = malloc(len ? len : 1);
    if (!s->buf) return -FI_ENOMEM;
    memcpy(s->buf, buf, len);
    s->len = len;
    s->peer = peer;
    s->queued_at = comm_wtime();
    f->peers[peer].queued++;
    if (!f->mr_local) return 0;
    return fi_mr_reg(f->domain, s->buf, len ? len : 1, FI_SEND, 0, 0, 0, &s->mr, NULL);
}

static int peer_is_stuck(const PeerName *p)
{
    return p->queued >= PEER_QUEUE_MAX && comm_wtime() - p->last_moved > STUCK_S;
}

int fabric_room(Fabric *f, FabricAddr to)
{
    reap(f);
    PeerName *p = peer_of(f, to);
    if (p && peer_is_stuck(p)) return SEND_SLOTS; /* what goes to it is dropped at once */
    int peer = p ? PEER_QUEUE_MAX - p->queued : 0;
    return peer < f->nfree ? peer : f->nfree;
}

int fabric_send(Fabric *f, FabricAddr to, const void *buf, size_t len, Err *e)
{
    if (len > FABRIC_MSG_MAX)
        return err_set(e, "libfabric %s: message of %zu bytes (at most %d)", f->provider, len,
                       FABRIC_MSG_MAX);
    PeerName *p = peer_of(f, to);
    if (!p) return err_set(e, "libfabric %s: no peer with address %llu", f->provider,
                           (unsigned long long)to);
    if (peer_is_stuck(p) || (wait_while_full(f, p) && f->nfree > 0)) {
        f->stats.send_errors++; /* the peer holds its share and does not move */
        return 0;
    }
    int k = take_slot(f);
    if (k < 0)
        return err_set(e, "libfabric %s: no send slot came free in 1 s (%d sends queued)",
                       f->provider, SEND_SLOTS);
    if (p->queued == 0) p->last_moved = comm_wtime();
    int rc = fill_slot(f, k, (size_t)(p - f->peers), buf, len);
    int behind = p->pending > 0; /* after earlier messages that wait */
    if (rc == 0) rc = behind ? -FI_EAGAIN : post_send(f, k);
    if (rc == -FI_EAGAIN) pending_append(f, k);
    else if (rc) {
        release_slot(f, k);
        return err_set(e, "libfabric %s: sending to %s: %s", f->provider, p->name, fi_err(rc));
    }
    f->stats.traffic.calls++;
    f->stats.traffic.bytes_sent += len;
    return 0;
}

/* ---- receiving -------------------------------------------------------------- */

/* Takes the oldest completed receive: 1 if it fit in buf, 0 if there was
 * none; a message too long for cap is dropped (and the next one tried). */
static int take_ready(Fabric *f, void *buf, size_t cap, size_t *len)
{
    while (f->ready_count > 0) {
        int i = f->ready[f->ready_head];
        f->ready_head = (f->ready_head + 1) % RECV_BUFS;
        f->ready_count--;
        size_t n = f->recv_len[i];
        int fits = n <= cap;
        if (fits) memcpy(buf, buf_at(f, i), n);
        f->recv_state[i] = RECV_IDLE;
        post_recv(f, i);
        if (!fits) {
            f->stats.dropped++;
            continue;
        }
        *len = n;
        f->stats.msgs_recv++;
        f->stats.bytes_recv += n;
        return 1;
    }
    return 0;
}

/* Sleeps until the CQ may have something, at most until deadline: in the
 * kernel if the CQ has a wait object, else in short naps (the machine's
 * cores are busy computing while one process waits). */
static void wait_a_little(Fabric *f, double deadline, long *nap)
{
    double left = deadline - comm_wtime();
    if (left <= 0) return;
    if (f->cq_waits) {
        struct fi_cq_msg_entry c[CQ_BATCH];
        int ms = left > 0.05 ? 50 : (int)(left * 1000) + 1;
        handle_batch(f, c, fi_cq_sread(f->cq, c, CQ_BATCH, NULL, ms));
        return;
    }
    nap_us(*nap);
    if (*nap < 200) *nap += 25;
}

int fabric_recv(Fabric *f, void *buf, size_t cap, size_t *len, double timeout_s, Err *e)
{
    (void)e;
    double t0 = comm_wtime(), deadline = t0 + (timeout_s > 0 ? timeout_s : 0);
    long nap = 50;
    int got = 0;
    for (;;) {
        reap(f);
        if ((got = take_ready(f, buf, cap, len)) || comm_wtime() >= deadline) break;
        wait_a_little(f, deadline, &nap);
    }
    f->stats.traffic.exposed_s += comm_wtime() - t0;
    return got;
}

void fabric_stats(const Fabric *f, FabricStats *s) { *s = f->stats; }

/* ---- closing ---------------------------------------------------------------- */

void fabric_flush(Fabric *f, double cap_s)
{
    double until = comm_wtime() + cap_s;
    while (f->nfree < SEND_SLOTS && comm_wtime() < until)
        if (reap(f) == 0) nap_us(200);
}

static void close_fid(struct fid *fid)
{
    if (fid) fi_close(fid);
}

void fabric_close(Fabric *f, double linger_s)
{
    if (!f) return;
    if (f->ep && linger_s > 0) fabric_flush(f, linger_s);
    close_fid(f->ep ? &f->ep->fid : NULL);
    close_fid(f->mr ? &f->mr->fid : NULL);
    close_fid(f->av ? &f->av->fid : NULL);
    close_fid(f->cq ? &f->cq->fid : NULL);
    for (int k = 0; k < SEND_SLOTS; k++)
        if (f->slot[k].state != SLOT_FREE) release_slot(f, k);
    close_fid(f->domain ? &f->domain->fid : NULL);
    close_fid(f->fabric ? &f->fabric->fid : NULL);
    free(f->peers);
    free(f->region);
    free(f);
}
