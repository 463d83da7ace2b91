/* obs.h - a hub's Prometheus metrics and health endpoint (obs.c), served over HTTP on the
 * runtime's I/O thread by bc_hub_serve_http.
 *
 * The hub's field `obs` is NULL until bc_hub_serve_http succeeds; it is then published with a
 * release store and read with acquire by the watcher (latency observations) and cleared by
 * bc__obs_destroy.
 */
#ifndef BC_OBS_H
#define BC_OBS_H

#include "blockcoord_cfn.h"

/* Record one delivered signal's latency (seconds; negative values count as 0) under its
 * type. No-op while the hub serves no metrics. Any thread; lock-free once the type's series
 * exists. */
void bc__obs_signal_latency(bc_hub_t *h, const char *type, double latency_s);

/* Record one finished wait (bc_coord_wait): blocking_duration_seconds{swarm_id,status} and
 * blocking_coordination_duration_seconds. swarm NULL or "" = "unknown", as the Node peers
 * label it. No-op while the hub serves no metrics. Any thread. */
void bc__obs_wait_done(bc_hub_t *h, const char *swarm, int timed_out, double seconds);

/* Stop the HTTP server (on the I/O thread, waiting for it) and free the registry. Call from
 * bc_hub_destroy once the watcher has stopped, before the Redis layer is destroyed. No-op
 * when the hub never served. Non-I/O thread. */
void bc__obs_destroy(bc_hub_t *h);

#endif
