/* blockcoord_cfn.h - CFN Loop coordinators: actors that block on signals from peers.
 *
 * A hub is one process's share of the deployment: one Redis layer, one signal-watcher actor,
 * one heartbeat actor, the shared secret and the table of coordinators hosted here. A
 * coordinator is an actor with an id (PROTOCOL.md §1). It sends signed signals to any
 * coordinator id, in this process, in another blockcoord process or in a Node peer, and it
 * "blocks" until a signal arrives: the wait is a continuation that runs on the coordinator
 * when the signal (or the timeout) comes. No thread ever blocks, except a non-worker thread
 * that asks to with bc_coord_wait_blocking.
 *
 *     static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
 *     {
 *         if (status == 0)
 *             printf("%s sent %s\n", s->sender, s->type);
 *     }
 *     static void on_start(bc_coord_t *c, void *arg)
 *     {
 *         bc_coord_wait(c, NULL, 30000, on_signal, arg);
 *     }
 *     ...
 *     bc_coord_opts_t o;
 *     bc_coord_opts_init(&o);
 *     o.id = "coord-b";
 *     o.on_start = on_start;
 *     bc_coord_spawn(hub, &o, NULL, err, sizeof err);
 *
 * Errors are 0 / negative errno, as in blockcoord.h.
 */
#ifndef BLOCKCOORD_CFN_H
#define BLOCKCOORD_CFN_H

#include "blockcoord.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bc_hub_s bc_hub_t;
typedef struct bc_coord_s bc_coord_t;

#define BC_COORD_ID_MAX 64   /* ^[A-Za-z0-9_-]{1,64}$ */
#define BC_SIGNAL_ID_MAX 255 /* <sender>:<receiver>:<type>:<iteration>:<timestamp> */

/* ---------------------------------------------------------------- hub */

typedef enum {
    BC_NOTIFY_AUTO = 0, /* keyspace notifications if CONFIG allows, else the poll fallback */
    BC_NOTIFY_POLL,     /* never touch CONFIG: publish hints plus the batched poll */
} bc_notify_mode_t;

typedef struct bc_hub_opts {
    const char *redis_url;    /* NULL: REDIS_URL and the other REDIS_* variables */
    const char *secret;       /* NULL: BLOCKING_COORDINATION_SECRET (raw bytes) */
    size_t secret_len;        /* 0: strlen(secret) */
    int require_signature;    /* 1: reject unsigned signals too (default 0, PROTOCOL §2.1) */
    bc_notify_mode_t notify;  /* default BC_NOTIFY_AUTO */
    uint32_t poll_ms;         /* fallback poll interval, default 500 */
    uint32_t heartbeat_ms;    /* 0 (default): HEARTBEAT_INTERVAL_MS, else 5000 */
    uint32_t heartbeat_ttl_s; /* 0 (default): HEARTBEAT_TTL_S, else 90 */
    uint32_t final_ttl_s;     /* TTL of the last heartbeat of a finished coordinator, 60 */
    int64_t clock_skew_ms;    /* added to every timestamp written (tests), default 0 */
    int node_markers;         /* 1 (default): also write Node's blocking:idempotency:<id> */
    int heartbeats;           /* 1 (default): heartbeat every coordinator */
    int fast_path;            /* 1 (default): wake from the publish hint's copy; 0: only from the
                                 durable slot/queue copy (one more Redis hop; for tests) */
    int hint_first;           /* 0 (default): BC_HINT_FIRST ("0" off), else on. On (1): a send's
                                 publish hint leaves in a write of its own, and Node's marker and
                                 the durable copy follow once Redis has answered it, so Redis
                                 delivers the hint before it does their work. Off (-1): all
                                 three in one write, as one pipeline. */
    /* The reaper (PROTOCOL §4.4-4.6). Every process runs one; 0 means "from the environment,
     * else the seeds' default", resolved and validated by bc_hub_create. */
    int reaper;        /* 1 (default): run the reaper actor; 0: do not */
    uint32_t stale_ms; /* REAPER_STALE_MS, else 120000: heartbeat older than this is stale */
    uint32_t scan_ms;  /* REAPER_SCAN_MS, else 30000: one detection cycle per scan_ms */
    uint32_t warnings; /* REAPER_WARNINGS, else 3: stale observations that declare death */
} bc_hub_opts_t;

/* Defaults above. heartbeat_ms stays 0 here, meaning "HEARTBEAT_INTERVAL_MS, else 5000",
 * resolved (and validated) by bc_hub_create. */
void bc_hub_opts_init(bc_hub_opts_t *o);

/* Start a hub on rt: parse the Redis settings, load the secret, spawn the watcher and the
 * heartbeat actors and connect (asynchronously: Redis may be down, the hub retries
 * forever). Returns 0 and *out, or -EINVAL with a message in err naming what was wrong (bad
 * URL or environment value, missing secret: "BLOCKING_COORDINATION_SECRET is not set ..."),
 * -ENOMEM. A secret shorter than 32 bytes is accepted with a loud warning. Any non-worker
 * thread. */
int bc_hub_create(bc_runtime_t *rt, const bc_hub_opts_t *o, bc_hub_t **out, char *err,
                  size_t errlen);

/* Wait until Redis is connected and the notification mode is settled. Returns 0, or
 * -ETIMEDOUT. Non-worker thread. */
int bc_hub_wait_ready(bc_hub_t *h, int timeout_ms);

/* Stop every coordinator (each writes its last heartbeat: its terminal state, or
 * "stopping"), wait up to 2 s for those writes, then tear the hub down. Call before
 * bc_runtime_destroy, from a non-worker thread. NULL is a no-op. */
void bc_hub_destroy(bc_hub_t *h);

/* "keyspace", "poll" or "unknown" (not connected yet). Any thread. */
const char *bc_hub_notify_mode(const bc_hub_t *h);

/* Why the poll fallback is in use ("CONFIG SET refused: ..."), or "" . Any thread. */
const char *bc_hub_notify_reason(const bc_hub_t *h);

/* Redis clock (PROTOCOL §4.3) in Unix ms, and its offset to the local clock. Any thread. */
uint64_t bc_hub_now_ms(const bc_hub_t *h);
int64_t bc_hub_clock_offset_ms(const bc_hub_t *h);

typedef struct bc_hub_stats {
    uint64_t coordinators;      /* hosted now */
    uint64_t waiting;           /* blocked in bc_coord_wait now */
    uint64_t signals_sent;      /* written to Redis */
    uint64_t send_failures;     /* a write that Redis did not take */
    uint64_t signals_delivered; /* handed to a coordinator (each exactly once) */
    uint64_t fast_path;         /* of those, delivered from the publish hint */
    uint64_t rejected_signature, rejected_unsigned, rejected_malformed;
    uint64_t replays;          /* dropped: messageId already consumed */
    uint64_t durable_consumed; /* slot/queue copies taken with GETDEL/LPOP */
    uint64_t acks_written;
    uint64_t acks_verified;        /* ACKs accepted by a waiter */
    uint64_t acks_invalid;         /* ACKs ignored by a waiter (PROTOCOL §3.1) */
    uint64_t timeouts;             /* waits that timed out */
    uint64_t heartbeats;           /* heartbeat writes */
    uint64_t redis_errors;         /* commands answered with an error or a failure status */
    uint64_t polls;                /* fallback poll rounds */
    uint64_t resyncs;              /* slot re-reads after a (re)connect */
    uint64_t heartbeat_failures;   /* heartbeats not written (Redis away or refused) */
    uint64_t spawns;               /* coordinators spawned by this hub (replacements included) */
    uint64_t reaper_cycles;        /* detection cycles finished */
    uint64_t reaper_last_cycle_ms; /* wall time of the last cycle */
    uint64_t reaper_stale;         /* stale observations (each one a warning) */
    uint64_t reaper_bad_keys;      /* heartbeat/activity values skipped as unparseable */
    uint64_t dead_detected;        /* coordinators declared dead by this reaper */
    uint64_t escalations;          /* escalations this reaper won (dead_coordinator_escalations) */
    uint64_t activity_timeouts;    /* stale coordinator:activity records */
    uint64_t deadlocks;            /* wait cycles reported */
    uint64_t work_transferred;     /* items moved to a replacement */
    uint64_t work_completed;       /* completions accepted */
    uint64_t work_refused;         /* completions refused by the fence */
    /* Heartbeats written (submitted while Redis was connected, answered OK), split by whether
     * each came within one interval (plus the 20 ms slice) of the same coordinator's previous
     * written heartbeat. A coordinator's first heartbeat is on time. */
    uint64_t heartbeats_on_time;
    uint64_t heartbeats_late;
    uint64_t send_retries; /* signal writes sent again after Redis dropped them unanswered */
    /* The heartbeat timer's period now: it follows the population, about 50 writes a tick,
     * between 2 and 20 ms (docs/liveness.md). 0 with heartbeats off. */
    uint64_t heartbeat_tick_ms;
} bc_hub_stats_t;

void bc_hub_stats(const bc_hub_t *h, bc_hub_stats_t *out);

/* ---------------------------------------------------------------- signals */

/* A received signal. Valid only during the callback it is passed to (copy what you keep). */
typedef struct bc_signal {
    const char *sender, *receiver, *type, *message_id;
    const char *payload;   /* compact JSON object text, or NULL */
    uint64_t timestamp_ms; /* the sender's */
    uint64_t iteration;
    int verified;     /* 1: signature valid; 0: unsigned (accepted in compatible mode) */
    double latency_s; /* receipt (Redis clock) minus timestamp_ms */
} bc_signal_t;

/* A payload member as a number / string (copied into buf, NUL-terminated). Returns the
 * number or dflt; buf or NULL when the member is absent or of another type. */
double bc_signal_num(const bc_signal_t *s, const char *member, double dflt);
const char *bc_signal_str(const bc_signal_t *s, const char *member, char *buf, size_t len);

/* ---------------------------------------------------------------- coordinators */

typedef enum {
    BC_STATE_WAITING = 0,
    BC_STATE_RUNNING,
    BC_STATE_COMPLETED,
    BC_STATE_TIMEOUT,
    BC_STATE_STOPPING,
} bc_coord_state_t;

/* Things a coordinator observes, for programs that print them (the runner does). */
typedef enum {
    BC_EV_READY = 1,    /* channels live; on_start follows */
    BC_EV_SIGNAL,       /* a signal accepted: signal set */
    BC_EV_ACK_SENT,     /* ACK written for that signal: peer = its sender */
    BC_EV_REJECTED,     /* a signal refused: detail = reason, peer = sender if known */
    BC_EV_ACK_RECEIVED, /* an ACK addressed to us appeared: peer = acker, detail = signalId */
    BC_EV_ACK_VERIFIED, /* ...and its per-signal key verified: peer, detail = signalId */
    BC_EV_ACK_INVALID,  /* ...or did not: peer, detail = reason */
    BC_EV_TIMEOUT,      /* a bc_coord_wait timed out: detail = "10000" (ms) */
    BC_EV_SEND_FAILED,  /* a signal could not be written: peer = receiver, detail = why */
    BC_EV_WORK,         /* a work item was moved to us: peer = the dead owner, detail = workId */
} bc_coord_event_type_t;

typedef struct bc_coord_event {
    bc_coord_event_type_t type;
    const char *peer;          /* or NULL */
    const char *detail;        /* or NULL */
    const bc_signal_t *signal; /* BC_EV_SIGNAL only */
} bc_coord_event_t;

typedef void (*bc_coord_start_fn)(bc_coord_t *c, void *arg);
typedef void (*bc_coord_event_fn)(bc_coord_t *c, const bc_coord_event_t *ev, void *arg);
/* status: 0 with a signal; -ETIMEDOUT; -ECANCELED (the coordinator is stopping); -EINTR (an
 * operator ended the wait: POST /api/timeouts/force-unblock-all, see bc_hub_serve_http_opts). */
typedef void (*bc_coord_signal_fn)(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

typedef struct bc_ack_result {
    const char *signal_id;
    size_t n;               /* ids waited for */
    const char *const *ids; /* as given */
    const uint8_t *acked;   /* acked[i] = 1 if ids[i] answered with a valid ACK */
    size_t n_acked;
    int status;          /* 0 all answered, -ETIMEDOUT, -ECANCELED */
    uint64_t elapsed_us; /* wait start to completion */
} bc_ack_result_t;
typedef void (*bc_coord_acks_fn)(bc_coord_t *c, const bc_ack_result_t *r, void *arg);

typedef struct bc_coord_opts {
    const char *id;             /* required */
    const char *swarm_id;       /* optional, validated like an id */
    const char *phase;          /* optional, free text (JSON-escaped where written) */
    uint64_t iteration;         /* the coordinator's counter (ACKs and heartbeats carry it) */
    bc_coord_start_fn on_start; /* runs on the coordinator once it can receive */
    bc_coord_event_fn on_event; /* optional observer, runs on the coordinator */
    void *arg;                  /* passed to the callbacks */
    int send_only;              /* 1: only sends and waits for ACKs (a CLI sender): it does not
                                   consume signals addressed to its id and has no heartbeat, so
                                   it can share an id with a coordinator hosted elsewhere */
} bc_coord_opts_t;

void bc_coord_opts_init(bc_coord_opts_t *o);

/* 1 if id is a valid coordinator/swarm id (^[A-Za-z0-9_-]{1,64}$); otherwise 0 and, if err is
 * non-NULL, a message naming the problem (what = "coordinator id", "--id", ...). */
int bc_coord_id_valid(const char *what, const char *id, char *err, size_t errlen);
/* The same for a signal type (^[a-z][a-z0-9_]{0,31}$). */
int bc_signal_type_valid(const char *type, char *err, size_t errlen);

/* Host a coordinator. The id (and swarm id) are validated before any Redis traffic. It
 * subscribes to its channels, reads its slot once (signals written before it started are
 * not missed), then runs on_start. Returns 0 (and, if out is non-NULL, a handle to release
 * with bc_coord_release), -EINVAL (err says why), -EEXIST (this id is already hosted by this
 * hub), -ESHUTDOWN. Any thread. */
int bc_coord_spawn(bc_hub_t *h, const bc_coord_opts_t *o, bc_coord_t **out, char *err,
                   size_t errlen);

/* Send a signal of `type` with an optional JSON object payload to coordinator `to`, signed
 * (PROTOCOL §2.1), without loss against concurrent senders (§2.2). signal_id (if non-NULL,
 * BC_SIGNAL_ID_MAX + 1 bytes) receives its messageId, which is what ACKs name. Returns 0 once
 * the write is submitted (a write Redis refuses is reported as BC_EV_SEND_FAILED and
 * counted), or -EINVAL with err naming the bad id, type or payload: nothing is written.
 * Any thread. */
int bc_coord_send(bc_coord_t *c, const char *to, const char *type, const char *payload_json,
                  char *signal_id, char *err, size_t errlen);

/* Block (as a continuation) until a signal arrives whose type is in `types` (a
 * comma-separated list; NULL or "" = any), or timeout_ms passes (0 = the library default,
 * 30 min). Signals of other types stay queued for a later wait. fn runs once, on the
 * coordinator. Returns 0, -EBUSY (already waiting), -EINVAL. Coordinator's own callbacks
 * only. */
int bc_coord_wait(bc_coord_t *c, const char *types, uint32_t timeout_ms, bc_coord_signal_fn fn,
                  void *arg);

/* Wait for valid ACKs of signal_id from each of ids[0..n) (PROTOCOL §3.1), or timeout_ms (0 =
 * 30 s). Invalid ACKs are ignored and counted; the wait goes on. fn runs once with who
 * answered. Several ACK waits may be outstanding. Returns 0 or -EINVAL. Coordinator's own
 * callbacks only. */
int bc_coord_wait_acks(bc_coord_t *c, const char *signal_id, const char *const *ids, size_t n,
                       uint32_t timeout_ms, bc_coord_acks_fn fn, void *arg);

/* For embedders: block the calling thread (not a runtime worker: -EDEADLK) until a signal of
 * `types` arrives or timeout_ms passes. Returns 0 and *out (free it with bc_signal_free),
 * -ETIMEDOUT, -EBUSY (a wait is already pending), -ECANCELED (stopped). */
int bc_coord_wait_blocking(bc_coord_t *c, const char *types, uint32_t timeout_ms,
                           bc_signal_t **out);
void bc_signal_free(bc_signal_t *s);

/* Set the state the next heartbeat reports (and, for COMPLETED/TIMEOUT, the one the last
 * heartbeat reports when the coordinator stops). Any thread. */
void bc_coord_set_state(bc_coord_t *c, bc_coord_state_t st);
void bc_coord_set_iteration(bc_coord_t *c, uint64_t iteration); /* any thread */

/* Wait until Redis has answered every signal this coordinator sent (a SET NX that found the
 * slot taken has made its RPUSH too), so that a short-lived sender can stop without losing
 * one. Failures are reported as BC_EV_SEND_FAILED before this returns. Returns 0, -ETIMEDOUT,
 * -EDEADLK (called on a runtime worker: it would block one), -EINVAL. */
int bc_coord_flush(bc_coord_t *c, int timeout_ms);

/* Run fn(c, arg) on the coordinator (as one of its callbacks, so it may call bc_coord_wait and
 * bc_coord_wait_acks). Any thread. Returns 0, -ESRCH if the coordinator has stopped (fn does
 * not run), -EINVAL. */
int bc_coord_post(bc_coord_t *c, void (*fn)(bc_coord_t *c, void *arg), void *arg);

/* Stop the coordinator: a pending wait completes with -ECANCELED, the last heartbeat is
 * written, its channels are released. Returns 0 or -EALREADY. Any thread. */
int bc_coord_stop(bc_coord_t *c);

/* Drop a handle from bc_coord_spawn. Any thread; NULL is a no-op. */
void bc_coord_release(bc_coord_t *c);

const char *bc_coord_id(const bc_coord_t *c);
bc_hub_t *bc_coord_hub(const bc_coord_t *c);
uint64_t bc_coord_iteration(const bc_coord_t *c);

/* ---------------------------------------------------------------- liveness and work */

/* Called by the reaper, on a runtime worker, when this process won the escalation of dead
 * coordinator dead_id (PROTOCOL §4.5): spawn coordinator new_id (same swarm and phase) with
 * bc_coord_spawn and return its result (0 or -EEXIST count as spawned). Work moves to new_id
 * after it returns and each moved item is announced to it as BC_EV_WORK. Without a replacer
 * the hub spawns a plain coordinator that only heartbeats. Must not block. */
typedef int (*bc_replace_fn)(bc_hub_t *h, const char *dead_id, const char *new_id,
                             const char *swarm_id, const char *phase, void *arg);
void bc_hub_set_replacer(bc_hub_t *h, bc_replace_fn fn, void *arg); /* any thread */

/* A replacer for processes that exit soon (a runner, `blockcoord reap --once`): it does not
 * host the replacement; it registers new_id in blocking:registry without a heartbeat, so a
 * long-running process's reaper finds it expired and hands its work on to a replacement that
 * lives. The escalation, the spawn record and the work move happen as usual. */
int bc_replace_handoff(bc_hub_t *h, const char *dead_id, const char *new_id, const char *swarm_id,
                       const char *phase, void *arg);

/* A work item (PROTOCOL §4.5): coordinator:work:<swarmId>:<owner>:<workId>. */
typedef struct bc_work_item {
    const char *work_id;
    const char *assigned_to;
    const char *status;           /* "in-progress" or "transferred" */
    const char *data;             /* compact JSON text, or NULL */
    const char *transferred_from; /* or NULL */
    uint64_t started_at_ms;
    uint64_t epoch; /* fencing token: +1 per move */
} bc_work_item_t;

/* status: 0, or a negative errno with err set (-EEXIST: the item exists elsewhere or here;
 * -ESTALE: refused by the fence, the item moved or its epoch changed; -ENOENT; -EIO: Redis). */
typedef void (*bc_work_done_fn)(void *arg, int status, uint64_t epoch, const char *err);
typedef void (*bc_work_list_fn)(void *arg, int status, const bc_work_item_t *items, size_t n,
                                const char *err);

/* Assign work_id to coordinator owner of swarm (SET NX EX 3600, epoch 1): one Lua script, so an
 * item exists in exactly one place. data_json is an optional compact JSON value. done runs on
 * the hub's reaper actor (a runtime worker; keep it short) with the epoch. Returns 0 or
 * -EINVAL (ids, JSON) with err.
 * Any thread. */
int bc_work_assign(bc_hub_t *h, const char *swarm_id, const char *owner, const char *work_id,
                   const char *data_json, bc_work_done_fn done, void *arg, char *err,
                   size_t errlen);

/* Complete an item held by coordinator c: fenced, the script deletes the item only if it is
 * still c's with this epoch and records coordinator:work:done:<swarmId>:<workId>; otherwise
 * done gets -ESTALE and nothing changes. Returns 0 or -EINVAL. Any thread. */
int bc_work_complete(bc_coord_t *c, const char *work_id, uint64_t epoch, bc_work_done_fn done,
                     void *arg, char *err, size_t errlen);

/* List coordinator c's items (SCAN + MGET). fn runs once on the hub's reaper actor. Any thread. */
int bc_work_list(bc_coord_t *c, bc_work_list_fn fn, void *arg);

/* Record what c is waiting on (PROTOCOL §4.6): SETEX coordinator:activity:<id> 600 with
 * lastActivity = now (Redis clock), iteration, phase and waitingFor = ids. Every reaper builds
 * the waits-for graph from these records and reports a cycle (a deadlock) within one scan; a
 * record not refreshed for 300 s is an activity timeout. n = 0 records "waiting for nobody".
 * Returns 0, or -EINVAL (an invalid id, more than 1024). Any thread. */
int bc_coord_set_waiting_for(bc_coord_t *c, const char *const *ids, size_t n);

/* Run one reaper cycle now (as if the scan timer fired). Any thread. Returns 0 or -ENOTSUP
 * when the hub runs no reaper. */
int bc_hub_reap_now(bc_hub_t *h);

/* ---------------------------------------------------------------- metrics and health */

/* How a hub serves HTTP (bc_hub_serve_http_opts). Zero fields take the defaults. */
typedef struct bc_hub_http_opts {
    const char *bind;         /* numeric IPv4/IPv6 address; NULL or "" = "127.0.0.1" */
    int port;                 /* 0 = an ephemeral port */
    int per_coordinator;      /* 1: also the per-coordinator series (coordinator_id label) */
    const char *admin_token;  /* NULL: BLOCKING_ADMIN_TOKEN; "" = none (loopback only) */
    unsigned max_label_sets;  /* blocking_coordinators_total series; 0 = 1000 */
    uint32_t read_timeout_ms; /* a request must arrive in full within this; 0 = 10000 */
    uint32_t max_connections; /* open connections; 0 = 256 (more: 503) */
} bc_hub_http_opts_t;

void bc_hub_http_opts_init(bc_hub_http_opts_t *o); /* all zero: the defaults */

/* Serve Prometheus metrics, health and the admin API for this hub over HTTP/1.1 on the
 * runtime's I/O thread (docs/observability.md has every series and endpoint):
 *   GET /metrics, /prometheus/metrics: text format 0.0.4 (Content-Type
 *     "text/plain; version=0.0.4; charset=utf-8");
 *   GET /health, /prometheus/health: JSON {"status":"healthy"|"degraded","redis":"connected"|
 *     "disconnected","breaker":"closed"|"open"|"half_open","coordinators":N,"uptime_s":N}; 200
 *     when healthy, 503 when degraded; uptime_s counts from this call;
 *   admin (JSON): GET /api/coordinators?offset=&limit= (sorted by id; limit 1..1000, default
 *     100), GET /api/coordinators/<id> (400 bad id, 404 not hosted here), POST
 *     /api/coordinators/<id>/cleanup (stops it if hosted here, then deletes its Redis state:
 *     {"coordinatorId","keysRemoved"}), POST /api/timeouts/force-unblock-all (every pending
 *     bc_coord_wait completes with -EINTR: {"unblocked":N}), GET /api/redis/pool-stats.
 *     They answer a loopback peer, or a request with "Authorization: Bearer <token>" when a
 *     token is configured; anyone else gets 403 (counted).
 * Other paths get 404, other methods 405; malformed requests 400, oversized ones 413, 414 or
 * 431, slow ones 408; all with short bodies, counted in http_request_errors_total{code}.
 * Series: active_coordinators, blocking_coordinators_total{swarm_id,phase,status} (counted from
 * the coordinator table at each scrape: swarm and phase "none" when unset, status waiting|
 * running|completed|timeout|stopping; at most max_label_sets series, then "__overflow__"; a
 * label set that disappears reads 0 for one scrape, then goes), signals_sent_total,
 * signals_received_total, signal_delivery_failures_total{reason=signature|malformed|replay|
 * redis}, signal_delivery_latency_seconds{signal_type} (observed from this call on; at most 64
 * types), blocking_duration_seconds{swarm_id,status}, blocking_coordination_duration_seconds,
 * timeout_events_total{timeout_type=signal_wait|heartbeat|forced},
 * heartbeat_failures_total{failure_type=write|stale}, dead_coordinator_escalations_total,
 * coordinator_spawns_total, coordinator_deadlocks_total, circuit_breaker_state (0 closed, 1
 * open, 2 half-open), circuit_breaker_triggers_total{reason},
 * circuit_breaker_reconnections_total, circuit_breaker_open_duration_seconds, redis_connected,
 * redis_commands_total, redis_pipeline_depth, redis_command_latency_seconds (50 us .. 1 s),
 * admin_requests_refused_total, http_request_errors_total{code} and process_*. With
 * per_coordinator also coordinator_signals_received_total, coordinator_signals_sent_total,
 * coordinator_state and coordinator_iteration, each {coordinator_id}; without it no series
 * carries a coordinator id.
 * o NULL = defaults. Returns 0 and the bound port in *port_out (may be NULL), or -EADDRINUSE /
 * -EACCES / -EINVAL (another negative errno of socket/bind/listen is passed through) with a
 * message in err; -EEXIST if the hub already serves. One server per hub; stopped by
 * bc_hub_destroy. Any non-worker thread other than the runtime's I/O thread. */
int bc_hub_serve_http_opts(bc_hub_t *h, const bc_hub_http_opts_t *o, int *port_out, char *err,
                           size_t errlen);

/* bc_hub_serve_http_opts with only bind (NULL = "127.0.0.1") and port set. */
int bc_hub_serve_http(bc_hub_t *h, const char *bind, int port, int *port_out, char *err,
                      size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
