/* chaos_restart.h - the state of `blockcoord chaos redis-restart`, shared by its run loop
 * (chaos_restart.c), its ring of coordinators (chaos_restart_ring.c) and its verdict
 * (chaos_restart_report.c).
 */
#ifndef BC_CHAOS_RESTART_H
#define BC_CHAOS_RESTART_H

#include "chaos.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#define RING_TICK 1 /* timer type of the driver actor */

typedef struct rr_s rr_t;

typedef struct {
    rr_t *r;
    char id[BC_COORD_ID_MAX + 1];
    char next[BC_COORD_ID_MAX + 1], prev[BC_COORD_ID_MAX + 1];
    bc_coord_t *c;
    uint64_t next_seq;                  /* driver actor only */
    _Atomic uint64_t sent, send_failed; /* sent: driver; send_failed: own callbacks */
    _Atomic uint64_t delivered, dups, reordered, foreign;
    uint8_t *seen; /* own callbacks: receipts per seq from prev (saturating) */
    size_t seen_cap;
    uint64_t max_seq; /* own callbacks */
} ring_node_t;

typedef struct {
    uint64_t killed_at, up_at, resumed_ms;
    size_t resumed;
    bool complete;
} rr_restart_t;

typedef struct {
    char id[BC_COORD_ID_MAX + 1];
    uint64_t last_ts;
    uint64_t *resume_at; /* per restart: first heartbeat after it, 0 = not yet */
} rr_watch_t;

struct rr_s {
    unsigned duration_s, interval_s, down_ms, ring, hosts, per_host, rate;
    uint64_t hb_ms, max_resume_ms;
    const char *out;
    char tag[8], swarm[32], redis_dir[1100], sock[1200], sock_dir[64];
    const char *server;
    pid_t redis_pid;
    pid_t *host_pids;
    chaos_redis_t redis;
    chaos_out_t o;
    bc_runtime_t *rt;
    bc_hub_t *hub;
    bc_actor_t *driver;
    _Atomic int sending;
    _Atomic unsigned ready;
    ring_node_t *nodes;
    rr_watch_t *watch;
    size_t nwatch;
    rr_restart_t *restarts;
    size_t nrestarts, max_restarts;
    uint64_t t0, end;
    bool interrupted;
    char **failures;
    size_t nfail;
};
void rr_fail(rr_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* chaos_restart_ring.c */
int rr_start_ring(rr_t *r); /* the ring's hub, its coordinators and its driver; 0 or -1 */
void rr_stop_ring(rr_t *r); /* afterwards no callback touches the nodes; idempotent */
void rr_totals(rr_t *r, uint64_t *sent, uint64_t *delivered, uint64_t *failed, uint64_t *dups);

/* chaos_restart_report.c: the verdict, results.json, timeline.html, the summary. Returns the
 * exit status: 0 passed, 1 failed. */
int rr_report(rr_t *r);

#endif
