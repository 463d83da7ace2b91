/* obs_impl.h - internals shared by obs.c (the server's lifetime, scrapes, health),
 * obs_metrics.c (the registry and the table walk) and obs_admin.c (the admin API). Nothing else
 * includes it, except the obs tests.
 *
 * Threads: the HTTP server, its handlers and the admin operations' completion live on the
 * runtime's I/O thread; a scrape is computed by the scraper actor on a worker; the atomics are
 * bumped by coordinators (forced unblocks) and read at scrape time.
 */
#ifndef BC_OBS_IMPL_H
#define BC_OBS_IMPL_H

#include "http.h"
#include "hub.h"
#include "internal.h"
#include "metrics.h"
#include "obs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define BC__OBS_MAX_LABEL_SETS 1000 /* default bound of blocking_coordinators_total */

/* One (swarm, phase, status) label set of blocking_coordinators_total and its count. */
typedef struct bc__obs_group_s {
    char *swarm, *phase; /* owned copies */
    int status;          /* bc_coord_state_t, or -1 for the overflow series */
    uint64_t hash;
    uint64_t count;
} bc__obs_group_t;

/* Open-addressing map of groups, rebuilt at every scrape (I/O thread). */
typedef struct bc__obs_groups_s {
    bc__obs_group_t *slots; /* cap entries; swarm == NULL: empty */
    size_t cap, n;
} bc__obs_groups_t;

/* One coordinator's numbers, copied at scrape time (--metrics-per-coordinator only). */
typedef struct bc__obs_coord_row_s {
    char id[BC_ID_MAX + 1];
    int state;
    uint64_t iteration, received, sent;
} bc__obs_coord_row_t;

typedef struct bc__obs_s {
    bc_hub_t *h;
    bc_metrics_t *m;
    bc_http_server_t *srv; /* I/O thread */
    uint64_t start_ms;     /* bc_now_ms() when serving started */
    bool per_coordinator;
    unsigned max_label_sets;
    char token[256]; /* BLOCKING_ADMIN_TOKEN, "" = none */
    bc_http_opts_t http;

    /* Scrapes run on this actor (a runtime worker), never on the I/O thread; it is the only
     * caller of bc_metrics_expose, so the snapshot below has one thread at a time. */
    bc_actor_t *scraper;
    unsigned scrapes;         /* scrapes whose answer is not written yet (under lock) */
    bc_http_stats_t http_now; /* the server's counters, as of the scrape being made */

    /* Scrape snapshot (the scraper, during bc_metrics_expose). */
    bc__obs_groups_t groups, prev; /* this scrape's and the previous scrape's label sets */
    bc__obs_coord_row_t *rows;
    size_t nrows, rows_cap;

    bc_metric_family_t *latency, *blocking_dur;
    bc_histogram_t *coordination_dur;
    bc_gauge_t *active, *breaker_state, *breaker_open_s, *redis_connected, *pipeline_depth;
    bc_counter_t *sent, *received, *failures[4], *timeouts[3], *hb_failures[2], *reconnections,
        *triggers[BC_BREAKER_REASON_COUNT], *redis_commands, *escalations, *spawns, *deadlocks,
        *admin_refused, *http_errors[9];

    _Atomic uint64_t n_forced;        /* waits ended by force-unblock (coordinators bump it) */
    _Atomic uint64_t n_admin_refused; /* admin requests answered 403 (I/O thread) */

    /* One reference for the hub, one per admin operation still running: an operation whose
     * answer comes after bc__obs_destroy (from a coordinator or the reaper) still finds us. */
    _Atomic unsigned refs;
    struct bc__obs_op_s *ops; /* running admin operations (I/O thread) */

    /* Start/stop handshake with the I/O thread; also guards scrapes. */
    bc_io_task_t start_task, stop_task;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    char bind[64];
    int port;
    char err[160];
} bc__obs_t;

/* obs_admin.c */
/* Register the /api routes on o->srv. I/O thread. Returns 0 or a negative errno. */
int bc__obs_admin_routes(bc__obs_t *o);
/* The hub is going away: end the operations that still need it (a cleanup waiting for its
 * coordinator to stop). The others end by themselves. I/O thread, after the server is gone. */
void bc__obs_admin_stop(bc__obs_t *o);
/* The admin access rule: a loopback peer, or a bearer token equal (compared in constant time)
 * to a configured, non-empty token. Returns 1 to allow, 0 to refuse. Any thread. */
int bc__obs_admin_allowed(int peer_loopback, const char *bearer, const char *token);

/* obs.c */
/* Drop a reference; the last one frees o. Any thread (the I/O thread for an operation's). */
void bc__obs_put(bc__obs_t *o);

/* obs_metrics.c */
/* Create o->m with every series and the collector. Before serving. */
void bc__obs_build_registry(bc__obs_t *o);
/* Free a label-set map (o->groups, o->prev). */
void bc__obs_groups_free(bc__obs_groups_t *g);
/* Static name of a coordinator state ("waiting", "running", ...), "unknown" if out of range. */
const char *bc__obs_state_name(int state);
/* Breaker state as Node reports it: 0 closed, 1 open, 2 half-open. */
int bc__obs_breaker_code(bc_breaker_state_t s);
/* s if it is valid UTF-8 (what the text format and JSON require), else a copy in buf[n] with
 * every invalid byte replaced by '?' (a phase is free text). Any thread. */
#define BC__OBS_TEXT_MAX 520 /* room for a phase (128 bytes) of 4-byte sequences */
const char *bc__obs_utf8(const char *s, char *buf, size_t n);

#endif
