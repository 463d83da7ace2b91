/* obs.c - a hub's Prometheus metrics and health over HTTP (bc_hub_serve_http).
 *
 * The HTTP server lives on the runtime's I/O thread: it is created there by a posted task and
 * destroyed there, either by bc__obs_destroy (from bc_hub_destroy) or, if the runtime goes
 * first, by an I/O closer. Handlers run on the I/O thread and never block: a scrape runs the
 * collector, which copies bc_hub_stats and bc_redis_stats into the registry (the hub's atomics
 * are the source of truth; the exported counters mirror them with bc_counter_set), then
 * bc_metrics_expose writes text format 0.0.4 straight into the response body.
 *
 * Key decision: cardinality is bounded by construction. No series carries a coordinator id;
 * blocking_coordinators_total is one series (swarm_id="all", phase="all", status="waiting")
 * until per-swarm accounting exists, and signal_delivery_latency_seconds is keyed by signal
 * type with at most OBS_MAX_TYPES series (further types share the "__overflow__" series).
 * Latency is observed from the moment serving starts; the mirrored counters include history.
 */
#include "obs.h"

#include "hub.h"
#include "http.h"
#include "internal.h"
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBS_MAX_TYPES 64
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"

/* Node's buckets (0.01 .. 10, with 2) merged with the Prometheus defaults and sub-millisecond
 * ones: signals delivered through the fast path take well under a millisecond. */
static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                         1,      2,       2.5,    5,     10};

/* The Node peers' buckets for how long a coordinator stayed blocked, and the tutorial's. */
static const double blocking_buckets[] = {1, 5, 10, 30, 60, 120, 300, 600, 1800};
static const double coordination_buckets[] = {10, 30, 60, 120, 300, 600, 1800};

enum { FAIL_SIGNATURE, FAIL_MALFORMED, FAIL_REPLAY, FAIL_REDIS, FAIL_COUNT };
static const char *const fail_reasons[FAIL_COUNT] = {"signature", "malformed", "replay", "redis"};

typedef struct obs_s {
    bc_hub_t *h;
    bc_metrics_t *m;
    bc_http_server_t *srv; /* I/O thread */
    uint64_t start_ms;     /* bc_now_ms() when serving started */

    bc_metric_family_t *latency, *blocking_dur;
    bc_histogram_t *coordination_dur;
    bc_gauge_t *active, *blocking, *breaker_state, *breaker_open_s, *redis_connected,
        *pipeline_depth;
    bc_counter_t *sent, *received, *failures[FAIL_COUNT], *timeouts, *hb_failures, *reconnections,
        *triggers[BC_BREAKER_REASON_COUNT], *redis_commands;

    /* Start/stop handshake with the I/O thread. */
    bc_io_task_t start_task, stop_task;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    char bind[64];
    int port;
    char err[160];
} obs_t;

/* ---------------------------------------------------------------- registry */

static bc_metric_family_t *reg(obs_t *o, const char *name, const char *help, bc_metric_type_t type,
                               const char *label)
{
    bc_metric_family_t *f = NULL;
    bc_metric_opts_t mo = {.name = name, .help = help, .type = type, .labels = {label}};
    if (type == BC_METRIC_HISTOGRAM) {
        mo.buckets = latency_buckets;
        mo.nbuckets = sizeof latency_buckets / sizeof latency_buckets[0];
        mo.max_children = OBS_MAX_TYPES;
    }
    if (bc_metrics_register(o->m, &mo, &f) != 0)
        abort(); /* fixed, valid names: cannot fail */
    return f;
}

static bc_counter_t *counter(obs_t *o, const char *name, const char *help, const char *label,
                             const char *value)
{
    bc_metric_family_t *f = reg(o, name, help, BC_METRIC_COUNTER, label);
    return bc_counter_labels(f, (const char *const[]){value});
}

static bc_gauge_t *gauge(obs_t *o, const char *name, const char *help)
{
    return bc_gauge_labels(reg(o, name, help, BC_METRIC_GAUGE, NULL), NULL);
}

/* Breaker state as Node reports it: 0 closed, 1 open, 2 half-open (a reconnect attempt is
 * pending, or the first connect is under way). */
static int breaker_code(bc_breaker_state_t s)
{
    switch (s) {
    case BC_BREAKER_STATE_CLOSED:
        return 0;
    case BC_BREAKER_STATE_OPEN:
        return 1;
    default:
        return 2;
    }
}

static void collect(bc_metrics_t *m, void *arg)
{
    (void)m;
    obs_t *o = arg;
    bc_hub_stats_t hs;
    bc_redis_stats_t rs;
    bc_hub_stats(o->h, &hs);
    bc_redis_stats(o->h->redis, &rs);
    bc_gauge_set(o->active, (double)hs.coordinators);
    bc_gauge_set(o->blocking, (double)hs.waiting);
    bc_counter_set(o->sent, (double)hs.signals_sent);
    bc_counter_set(o->received, (double)hs.signals_delivered);
    bc_counter_set(o->failures[FAIL_SIGNATURE],
                   (double)(hs.rejected_signature + hs.rejected_unsigned));
    bc_counter_set(o->failures[FAIL_MALFORMED], (double)hs.rejected_malformed);
    bc_counter_set(o->failures[FAIL_REPLAY], (double)hs.replays);
    bc_counter_set(o->failures[FAIL_REDIS], (double)hs.send_failures);
    bc_counter_set(o->timeouts, (double)hs.timeouts);
    bc_gauge_set(o->breaker_state, breaker_code(rs.breaker.state));
    bc_gauge_set(o->breaker_open_s, (double)rs.breaker.open_ms_total / 1000.0);
    bc_counter_set(o->reconnections, (double)rs.breaker.reconnections);
    for (int i = 0; i < BC_BREAKER_REASON_COUNT; i++)
        bc_counter_set(o->triggers[i], (double)rs.breaker.triggers[i]);
    bc_gauge_set(o->redis_connected, rs.connected ? 1 : 0);
    bc_counter_set(o->redis_commands, (double)rs.submitted);
    bc_gauge_set(o->pipeline_depth, (double)rs.max_pipeline);
}

static void build_registry(obs_t *o)
{
    o->m = bc_metrics_create(0);
    o->active = gauge(o, "active_coordinators", "Number of active coordinators");
    /* One series for now: the coordinators waiting in this hub. A per-swarm and per-phase
     * breakdown comes with swarm accounting in the hub. */
    bc_metric_family_t *f = NULL;
    bc_metric_opts_t bo = {.name = "blocking_coordinators_total",
                           .help = "Total number of active blocking coordinators",
                           .type = BC_METRIC_GAUGE,
                           .labels = {"swarm_id", "phase", "status"}};
    if (bc_metrics_register(o->m, &bo, &f) != 0)
        abort();
    o->blocking = bc_gauge_labels(f, (const char *const[]){"all", "all", "waiting"});
    o->sent = counter(o, "signals_sent_total", "Total signals sent", NULL, NULL);
    o->received =
        counter(o, "signals_received_total", "Total signals received (delivered)", NULL, NULL);
    f = reg(o, "signal_delivery_failures_total", "Total signals that could not be delivered",
            BC_METRIC_COUNTER, "reason");
    for (int i = 0; i < FAIL_COUNT; i++)
        o->failures[i] = bc_counter_labels(f, (const char *const[]){fail_reasons[i]});
    o->latency = reg(o, "signal_delivery_latency_seconds",
                     "Latency of signal delivery from send to receipt in seconds",
                     BC_METRIC_HISTOGRAM, "signal_type");
    bc_metric_opts_t ho = {.name = "blocking_duration_seconds",
                           .help = "Time a coordinator spent blocked waiting for a signal",
                           .type = BC_METRIC_HISTOGRAM,
                           .labels = {"swarm_id", "status"},
                           .buckets = blocking_buckets,
                           .nbuckets = sizeof blocking_buckets / sizeof blocking_buckets[0],
                           .max_children = OBS_MAX_TYPES};
    if (bc_metrics_register(o->m, &ho, &o->blocking_dur) != 0)
        abort();
    bc_metric_opts_t co = {.name = "blocking_coordination_duration_seconds",
                           .help = "Duration of blocking coordination waits (the tutorial's name)",
                           .type = BC_METRIC_HISTOGRAM,
                           .buckets = coordination_buckets,
                           .nbuckets =
                               sizeof coordination_buckets / sizeof coordination_buckets[0]};
    bc_metric_family_t *cf = NULL;
    if (bc_metrics_register(o->m, &co, &cf) != 0)
        abort();
    o->coordination_dur = bc_histogram_labels(cf, NULL);
    o->timeouts = counter(o, "timeout_events_total", "Total number of timeout events triggered",
                          "timeout_type", "signal_wait");
    o->hb_failures =
        counter(o, "heartbeat_failures_total", "Total number of heartbeat failures detected",
                "failure_type", "redis");
    o->breaker_state = gauge(o, "circuit_breaker_state",
                             "Redis circuit breaker state (0 closed, 1 open, 2 half-open)");
    f = reg(o, "circuit_breaker_triggers_total", "Redis failures acted upon by the circuit breaker",
            BC_METRIC_COUNTER, "reason");
    for (int i = 0; i < BC_BREAKER_REASON_COUNT; i++)
        o->triggers[i] = bc_counter_labels(
            f, (const char *const[]){bc_breaker_reason_name((bc_breaker_reason_t)i)});
    o->reconnections = counter(o, "circuit_breaker_reconnections_total",
                               "Successful Redis reconnections after a failure", NULL, NULL);
    o->breaker_open_s = gauge(o, "circuit_breaker_open_duration_seconds",
                              "Cumulative time the Redis circuit breaker has been open in seconds");
    o->redis_connected = gauge(o, "redis_connected", "1 when every Redis connection is up");
    o->redis_commands = counter(o, "redis_commands_total", "Redis commands submitted", NULL, NULL);
    o->pipeline_depth =
        gauge(o, "redis_pipeline_depth", "Deepest per-connection Redis pipeline seen");
    bc_metrics_register_process(o->m); /* -ENOENT without /proc: no process_* series */
    bc_metrics_add_collector(o->m, collect, o, NULL);
}

/* ---------------------------------------------------------------- handlers */

static void on_metrics(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    (void)req;
    obs_t *o = arg;
    bc_http_resp_status(resp, 200);
    bc_http_resp_header(resp, "Content-Type", CT_METRICS);
    bc_metrics_expose(o->m, bc_http_resp_buf(resp));
}

static const char *breaker_name(bc_breaker_state_t s)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    return names[breaker_code(s)];
}

static void on_health(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    (void)req;
    obs_t *o = arg;
    bc_hub_stats_t hs;
    bc_redis_stats_t rs;
    bc_hub_stats(o->h, &hs);
    bc_redis_stats(o->h->redis, &rs);
    bool healthy = rs.connected && rs.breaker.state == BC_BREAKER_STATE_CLOSED;
    bc_http_resp_status(resp, healthy ? 200 : 503);
    bc_http_resp_header(resp, "Content-Type", CT_JSON);
    bc_http_resp_header(resp, "Cache-Control", "no-store");
    bc_buf_appendf(bc_http_resp_buf(resp),
                   "{\"status\":\"%s\",\"redis\":\"%s\",\"breaker\":\"%s\",\"coordinators\":%llu,"
                   "\"uptime_s\":%llu}\n",
                   healthy ? "healthy" : "degraded", rs.connected ? "connected" : "disconnected",
                   breaker_name(rs.breaker.state), (unsigned long long)hs.coordinators,
                   (unsigned long long)((bc_now_ms() - o->start_ms) / 1000));
}

/* ---------------------------------------------------------------- lifetime (I/O thread) */

static void finish(obs_t *o, int rc)
{
    pthread_mutex_lock(&o->lock);
    o->rc = rc;
    o->done = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

/* The runtime is going away before the hub: close the server while the loop still exists. */
static void on_closer(bc_io_t *io, void *arg)
{
    (void)io;
    obs_t *o = arg;
    bc_http_server_destroy(o->srv);
    o->srv = NULL;
}

static void start_io(bc_io_t *io, bc_io_task_t *task)
{
    obs_t *o = bc_container_of(task, obs_t, start_task);
    bc_http_opts_t ho;
    bc_http_opts_init(&ho);
    ho.bind_addr = o->bind;
    ho.port = (uint16_t)o->port;
    int rc = bc_http_server_create(bc_io_loop(io), &ho, &o->srv);
    if (rc != 0) {
        snprintf(o->err, sizeof o->err, "cannot serve metrics on %s:%d: %s", o->bind, o->port,
                 bc_strerror(rc));
        finish(o, rc);
        return;
    }
    static const char *const metrics_paths[] = {"/metrics", "/prometheus/metrics"};
    static const char *const health_paths[] = {"/health", "/prometheus/health"};
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = bc_http_route(o->srv, "GET", metrics_paths[i], BC_HTTP_EXACT, on_metrics, o);
        if (rc == 0)
            rc = bc_http_route(o->srv, "GET", health_paths[i], BC_HTTP_EXACT, on_health, o);
    }
    if (rc == 0)
        rc = bc_io_add_closer(io, on_closer, o);
    if (rc != 0) {
        snprintf(o->err, sizeof o->err, "cannot set up the metrics server: %s", bc_strerror(rc));
        bc_http_server_destroy(o->srv);
        o->srv = NULL;
    } else {
        o->port = bc_http_server_port(o->srv);
    }
    finish(o, rc);
}

static void stop_io(bc_io_t *io, bc_io_task_t *task)
{
    obs_t *o = bc_container_of(task, obs_t, stop_task);
    if (o->srv) {
        bc_io_remove_closer(io, on_closer, o);
        bc_http_server_destroy(o->srv);
        o->srv = NULL;
    }
    finish(o, 0);
}

/* Post task and wait for finish(); returns its rc. */
static int run_on_io(obs_t *o, bc_io_task_t *task, bc_io_task_fn fn)
{
    o->done = false;
    task->fn = fn;
    bc_io_post(o->h->rt, task);
    pthread_mutex_lock(&o->lock);
    while (!o->done)
        pthread_cond_wait(&o->cond, &o->lock);
    int rc = o->rc;
    pthread_mutex_unlock(&o->lock);
    return rc;
}

static void obs_free(obs_t *o)
{
    bc_metrics_destroy(o->m);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->cond);
    free(o);
}

/* ---------------------------------------------------------------- API */

int bc_hub_serve_http(bc_hub_t *h, const char *bind, int port, int *port_out, char *err,
                      size_t errlen)
{
    if (h == NULL || port < 0 || port > 65535) {
        bc__seterr(err, errlen, "bc_hub_serve_http: %s", h ? "port must be 0..65535" : "NULL hub");
        return -EINVAL;
    }
    if (bind == NULL || *bind == '\0')
        bind = "127.0.0.1";
    if (strlen(bind) >= sizeof((obs_t *)0)->bind) {
        bc__seterr(err, errlen, "bind address \"%s\" is too long", bind);
        return -EINVAL;
    }
    if (h->rt->io == NULL || bc_io_is_current(h->rt->io)) {
        bc__seterr(err, errlen,
                   "bc_hub_serve_http: call it from a thread other than the I/O thread");
        return -EINVAL;
    }
    /* acquire: pairs with the release publishing a running server. */
    if (atomic_load_explicit(&h->obs, memory_order_acquire) != NULL) {
        bc__seterr(err, errlen, "this hub already serves metrics");
        return -EEXIST;
    }
    obs_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return -ENOMEM;
    o->h = h;
    o->start_ms = bc_now_ms();
    snprintf(o->bind, sizeof o->bind, "%s", bind);
    o->port = port;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    build_registry(o);
    int rc = run_on_io(o, &o->start_task, start_io);
    if (rc != 0) {
        bc__seterr(err, errlen, "%s", o->err);
        obs_free(o);
        return rc;
    }
    void *expect = NULL;
    /* release: publishes the registry to the watcher and to bc__obs_destroy. */
    if (!atomic_compare_exchange_strong_explicit(&h->obs, &expect, o, memory_order_release,
                                                 memory_order_relaxed)) {
        run_on_io(o, &o->stop_task, stop_io);
        obs_free(o);
        bc__seterr(err, errlen, "this hub already serves metrics");
        return -EEXIST;
    }
    if (port_out)
        *port_out = o->port;
    return 0;
}

void bc__obs_signal_latency(bc_hub_t *h, const char *type, double latency_s)
{
    /* acquire: pairs with the release in bc_hub_serve_http. */
    obs_t *o = atomic_load_explicit(&h->obs, memory_order_acquire);
    if (o == NULL)
        return;
    bc_histogram_observe(bc_histogram_labels(o->latency, (const char *const[]){type}),
                         latency_s > 0 ? latency_s : 0);
}

void bc__obs_wait_done(bc_hub_t *h, const char *swarm, int timed_out, double seconds)
{
    /* acquire: pairs with the release in bc_hub_serve_http. */
    obs_t *o = atomic_load_explicit(&h->obs, memory_order_acquire);
    if (o == NULL)
        return;
    if (seconds < 0)
        seconds = 0;
    const char *labels[] = {swarm && swarm[0] ? swarm : "unknown",
                            timed_out ? "timeout" : "completed"};
    bc_histogram_observe(bc_histogram_labels(o->blocking_dur, labels), seconds);
    bc_histogram_observe(o->coordination_dur, seconds);
}

void bc__obs_destroy(bc_hub_t *h)
{
    /* acquire: the registry was published with release. */
    obs_t *o = atomic_exchange_explicit(&h->obs, NULL, memory_order_acquire);
    if (o == NULL)
        return;
    run_on_io(o, &o->stop_task, stop_io);
    obs_free(o);
}
