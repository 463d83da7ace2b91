/* breaker.h - Redis reconnection backoff and circuit breaker (pure state machine).
 *
 * The I/O thread reports connection events with the current monotonic time; the breaker
 * answers with what to do next (nothing, or "reconnect after N ms") and emits the operator
 * log lines of PROTOCOL §6 through a callback. No I/O, no clock, no allocation. A breaker is
 * not thread-safe: the one thread that owns the connection calls every function on it.
 */
#ifndef BC_BREAKER_H
#define BC_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#define BC_BREAKER_MAX_ATTEMPTS 16        /* upper bound of bc_breaker_conf_t.attempts */
#define BC_BREAKER_DEFAULT_ATTEMPTS 4     /* attempts 1/4 .. 4/4 */
#define BC_BREAKER_DEFAULT_BASE_MS 1000   /* 1 s, 2 s, 4 s, 8 s */
#define BC_BREAKER_DEFAULT_PROBE_MS 30000 /* half-open probe interval while open */
#define BC_BREAKER_ERRLEN 128             /* last error text kept (truncated) */

/* Log levels passed to bc_breaker_conf_t.log. */
enum {
    BC_BREAKER_LOG_DEBUG = 0,
    BC_BREAKER_LOG_INFO = 1,
    BC_BREAKER_LOG_WARN = 2,
    BC_BREAKER_LOG_ERROR = 3
};

typedef void (*bc_breaker_log_fn)(void *arg, int level, const char *line);

typedef struct bc_breaker_conf {
    unsigned attempts;                          /* reconnect attempts before opening, 1..16 */
    uint32_t delay_ms[BC_BREAKER_MAX_ATTEMPTS]; /* delay before attempt k is delay_ms[k-1] */
    uint32_t probe_interval_ms;                 /* delay between probes while open */
    bc_breaker_log_fn log;                      /* may be NULL: no logging */
    void *log_arg;
} bc_breaker_conf_t;

typedef enum bc_breaker_state {
    BC_BREAKER_STATE_INIT = 0,     /* never connected yet (start-up) */
    BC_BREAKER_STATE_CLOSED,       /* connected, healthy */
    BC_BREAKER_STATE_RECONNECTING, /* reconnect attempt `attempt` of `attempts` pending */
    BC_BREAKER_STATE_OPEN,         /* degraded: probing every probe_interval_ms, forever */
} bc_breaker_state_t;

typedef enum bc_breaker_reason {
    BC_BREAKER_REASON_CONN_LOST = 0, /* an established connection dropped */
    BC_BREAKER_REASON_CONNECT_FAILED,
    BC_BREAKER_REASON_TIMEOUT, /* the caller's command/connect timer expired */
    BC_BREAKER_REASON_COUNT
} bc_breaker_reason_t;

typedef enum bc_breaker_do {
    BC_BREAKER_NONE = 0,        /* nothing to schedule */
    BC_BREAKER_RECONNECT_AFTER, /* start a (re)connect attempt in delay_ms */
} bc_breaker_do_t;

typedef struct bc_breaker_action {
    bc_breaker_do_t what;
    uint32_t delay_ms;
} bc_breaker_action_t;

typedef struct bc_breaker_snapshot {
    bc_breaker_state_t state;
    unsigned attempt;                           /* pending attempt (RECONNECTING), else 0 */
    unsigned attempts;                          /* configured attempts */
    uint64_t probes_failed;                     /* failed probes in the current open period */
    uint64_t times_opened;                      /* transitions into OPEN */
    uint64_t triggers[BC_BREAKER_REASON_COUNT]; /* failures acted upon, by reason */
    uint64_t triggers_total;                    /* sum of triggers[] */
    uint64_t reconnections;                     /* successful reconnects after a failure */
    uint64_t open_ms_total;                     /* time spent OPEN, incl. current period */
    uint64_t down_ms_total;                     /* time not connected after a failure, incl.
                                                   the current outage (RECONNECTING + OPEN) */
    uint64_t down_since_ms;                     /* start of the current outage, 0 if none */
    uint64_t last_change_ms;                    /* time of the last state change */
    char last_error[BC_BREAKER_ERRLEN];         /* "" if none yet */
} bc_breaker_snapshot_t;

typedef struct bc_breaker {
    bc_breaker_conf_t conf;
    bc_breaker_state_t state;
    unsigned attempt;
    uint64_t probes_failed;
    uint64_t times_opened;
    uint64_t triggers[BC_BREAKER_REASON_COUNT];
    uint64_t reconnections;
    uint64_t open_ms_done; /* closed-out OPEN periods */
    uint64_t down_ms_done; /* closed-out outages */
    uint64_t open_since_ms;
    uint64_t down_since_ms;
    uint64_t last_change_ms;
    char last_error[BC_BREAKER_ERRLEN];
} bc_breaker_t;

/* Fill *c with the PROTOCOL §6 defaults: 4 attempts, delays 1000/2000/4000/8000 ms (doubling
 * from BC_BREAKER_DEFAULT_BASE_MS), probes every 30000 ms, no log callback. Any thread. */
void bc_breaker_conf_default(bc_breaker_conf_t *c);

/* Check a configuration: attempts in 1..BC_BREAKER_MAX_ATTEMPTS, every used delay and the
 * probe interval non-zero. Returns 0 or -EINVAL. Any thread. */
int bc_breaker_conf_validate(const bc_breaker_conf_t *c);

/* Initialise *b in state INIT from *conf (copied; NULL means bc_breaker_conf_default), at
 * time now_ms. Returns 0, or -EINVAL if the configuration is invalid (b is then unusable).
 * The breaker owns no resources; there is no destroy. A breaker is not thread-safe: one
 * thread (the I/O thread owning the connection) calls every function on it. */
int bc_breaker_init(bc_breaker_t *b, const bc_breaker_conf_t *conf, uint64_t now_ms);

/* The connection is up and usable (call it after AUTH/SELECT succeeded, so that a refused
 * login counts as a failed connect). From INIT: logs "Redis connection established". From
 * RECONNECTING: logs "Redis connection restored", "Circuit breaker reset". From OPEN: logs
 * "Redis reconnected after <N>s downtime" first. In CLOSED: ignored. Always returns NONE. */
bc_breaker_action_t bc_breaker_on_connected(bc_breaker_t *b, uint64_t now_ms);

/* An established connection was lost (err: hiredis errstr, NULL or "" means "Connection
 * closed"; reason: CONN_LOST or TIMEOUT). From CLOSED or INIT it starts the ladder: logs
 * "Redis error: <err>", "Circuit breaker triggered (attempt 1/4)", "Retrying Redis operation
 * in 1000ms" and returns RECONNECT_AFTER 1000. While RECONNECTING or OPEN it is ignored
 * (returns NONE, counts nothing): the reconnect already scheduled stands. */
bc_breaker_action_t bc_breaker_on_disconnected(bc_breaker_t *b, uint64_t now_ms, const char *err,
                                               bc_breaker_reason_t reason);

/* A connect attempt failed (err: hiredis errstr; NULL or "" means "Connection failed").
 * From INIT or CLOSED it starts the ladder like a loss (reason CONNECT_FAILED). While
 * RECONNECTING it logs "Redis error: <err>", then after attempt k < attempts
 * "Circuit breaker triggered (attempt k+1/N)", "Retrying Redis operation in <delay_ms[k]>ms"
 * and returns RECONNECT_AFTER delay_ms[k]; after the last attempt "Circuit breaker open: Redis
 * unavailable", "Coordinator entering degraded mode" and returns RECONNECT_AFTER
 * probe_interval_ms. While OPEN it logs one line ("Circuit breaker still open: probe failed
 * (<err>), next probe in <ms>ms") and returns RECONNECT_AFTER probe_interval_ms, forever.
 * Every call counts one trigger with reason CONNECT_FAILED. */
bc_breaker_action_t bc_breaker_on_connect_failed(bc_breaker_t *b, uint64_t now_ms, const char *err);

/* 1 if commands may be written now (state CLOSED), 0 otherwise (the caller then applies its
 * per-class fail-fast/queue policy). */
int bc_breaker_allows(const bc_breaker_t *b);

/* Copy the counters into *s, with the open/down totals extended to now_ms. */
void bc_breaker_snapshot(const bc_breaker_t *b, uint64_t now_ms, bc_breaker_snapshot_t *s);

/* Static name of a state: "init", "closed", "reconnecting", "open"; "unknown" otherwise. */
const char *bc_breaker_state_name(bc_breaker_state_t s);

/* Static metrics label of a reason: "connection_lost", "connect_failed", "timeout";
 * "unknown" otherwise. */
const char *bc_breaker_reason_name(bc_breaker_reason_t r);

#endif
