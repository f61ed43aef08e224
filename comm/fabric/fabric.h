#ifndef MPITRAIN_FABRIC_H
#define MPITRAIN_FABRIC_H
/* The libfabric transport (comm/transport.h): reliable-datagram endpoints
 * (FI_EP_RDM) between machines of a swarm (worker/method/swarm): one
 * endpoint per machine, messages of at most FABRIC_MSG_MAX bytes, no shared
 * communicator, so a peer that dies, hangs or is cut off never blocks or
 * ends this process. Only comm/ calls
 * libfabric; the swarm sees names, addresses and messages.
 *
 * Providers: "tcp" across hosts (names are "IP:PORT"), "shm" on one host
 * (names are the provider's own strings). A message is delivered whole or
 * not at all; the order between two endpoints is the order sent. */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "comm/transport.h"

#define FABRIC_MSG_MAX 65536
#define FABRIC_NAME_LEN 64

typedef struct Fabric Fabric;
typedef uint64_t FabricAddr; /* a peer in this endpoint's address vector */

/* Opens an endpoint on provider ("tcp" or "shm").
 * bind: where to listen: "HOST:PORT" (tcp; PORT 0 = any free port) or a
 *   name (shm); NULL or "" = any free address.
 * toward: tcp with no HOST in bind: a peer's "HOST:PORT"; the endpoint binds
 *   to this host's address on the route to it, so the peer can reach the
 *   name it is told. NULL = no such hint (loopback then).
 * Errors name the provider and the address (e.g. the port is taken). */
int fabric_open(Fabric **out, const char *provider, const char *bind, const char *toward, Err *e);
/* This endpoint's name, as a peer passes it to fabric_peer. */
const char *fabric_name(const Fabric *f);
/* The peer with this name (inserted into the address vector the first time). */
int fabric_peer(Fabric *f, const char *name, FabricAddr *out, Err *e);
/* Queues one message (len <= FABRIC_MSG_MAX). The bytes are copied: buf is
 * free on return. Never waits on the peer: a message to a dead or stopped
 * peer fails in the background (counted in send_errors) or stays queued.
 * -1 only for a local failure (no send buffer came free within a second of
 * reaping completions, or len too big). */
int fabric_send(Fabric *f, FabricAddr to, const void *buf, size_t len, Err *e);
/* Waits up to timeout_s seconds (0 = poll once) for the next message.
 * 1 = a message of *len bytes is in buf; 0 = none arrived; -1 = a local
 * error. A message longer than cap is dropped (counted) and not returned. */
int fabric_recv(Fabric *f, void *buf, size_t cap, size_t *len, double timeout_s, Err *e);
/* How many more messages to `to` fabric_send would queue now without
 * waiting for a slot: a sender of bulk data sends that many, then receives. */
int fabric_room(Fabric *f, FabricAddr to);
/* Drives sends and completions without taking a message (call while busy). */
void fabric_progress(Fabric *f);
/* Drives the queued sends until all have completed (or failed), at most
 * cap_s seconds: what was said goes out before the caller turns away. */
void fabric_flush(Fabric *f, double cap_s);

typedef struct {
    /* what every transport counts (comm/transport.h): bytes_sent = message
     * payload bytes queued, calls = messages queued, exposed_s = time
     * fabric_recv waited; overlapped_s stays 0 (sends always go out behind
     * the caller, unmeasured) */
    CommStats traffic;
    uint64_t bytes_recv;  /* message payload bytes */
    uint64_t msgs_recv;
    uint64_t send_errors; /* sends that failed after queueing (peer gone) */
    uint64_t dropped;     /* received messages too long for the caller's buffer */
} FabricStats;
void fabric_stats(const Fabric *f, FabricStats *s);
/* Gives queued sends up to linger_s seconds to complete, then closes. NULL ok. */
void fabric_close(Fabric *f, double linger_s);

#endif
