/* obs.c - a hub's HTTP server (bc_hub_serve_http_opts): its lifetime, scrapes and health; the
 * registry and the table walk are in obs_metrics.c, the admin API in obs_admin.c.
 *
 * The HTTP server lives on the runtime's I/O thread: it is created there by a posted task and
 * destroyed there, either by bc__obs_destroy (from bc_hub_destroy) or, if the runtime goes
 * first, by an I/O closer. Handlers run on the I/O thread and never block. A scrape is not
 * computed there (with 100,000 coordinators it takes milliseconds, and the I/O thread carries
 * every signal): the handler defers its response and hands the scrape to the scraper actor,
 * which runs the collector (it copies bc_hub_stats and bc_redis_stats into the registry - the
 * hub's atomics are the source of truth, the exported counters mirror them with
 * bc_counter_set - and counts the coordinator table), writes text format 0.0.4 with
 * bc_metrics_expose and posts the body back to the I/O thread. Nothing is added to the signal
 * path: the counters are the hub's own atomics.
 *
 * Key decision: the I/O thread never computes a scrape; it only moves the finished body to the
 * socket, so /metrics costs the signal path nothing however many coordinators are hosted.
 */
#include "obs_impl.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"
#define BC__M_SCRAPE 0xfffe01c0u /* I/O thread -> scraper: scrape_msg_t */

typedef bc__obs_t obs_t;

/* ---------------------------------------------------------------- handlers */

/* A scrape on its way: made by the scraper actor, written by the I/O thread. */
typedef struct {
    obs_t *o;
    bc_http_deferred_t *d;
    bc_http_stats_t http; /* the server's counters when the request came */
    bc_buf_t body;
    bc_io_task_t task;
} scrape_t;

typedef struct {
    bc_msg_t hdr;
    scrape_t *job;
} scrape_msg_t;

/* I/O thread: write the scrape's body and let bc__obs_destroy know it is done. */
static void scrape_answer(bc_io_t *io, bc_io_task_t *task)
{
    (void)io;
    scrape_t *j = bc_container_of(task, scrape_t, task);
    obs_t *o = j->o;
    bc_http_resp_t *resp = bc_http_deferred_resp(j->d);
    bc_http_resp_status(resp, 200);
    bc_http_resp_header(resp, "Content-Type", CT_METRICS);
    bc_buf_t *b = bc_http_resp_buf(resp), t = *b;
    *b = j->body; /* the body moves, not copied */
    j->body = t;
    bc_http_deferred_finish(j->d);
    bc_buf_free(&j->body);
    free(j);
    pthread_mutex_lock(&o->lock);
    o->scrapes--;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

static void scrape_run(scrape_t *j)
{
    obs_t *o = j->o;
    o->http_now = j->http;
    bc_metrics_expose(o->m, &j->body);
    j->task.fn = scrape_answer;
    bc_io_post(o->h->rt, &j->task);
}

/* The scraper actor: one scrape at a time, on a worker. */
static void scraper(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    (void)self;
    (void)state;
    if (msg->type == BC__M_SCRAPE)
        scrape_run(((scrape_msg_t *)msg)->job);
}

static void on_metrics(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    (void)req;
    obs_t *o = arg;
    scrape_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        abort(); /* out of memory */
    j->o = o;
    bc_http_server_stats(o->srv, &j->http);
    j->d = bc_http_resp_defer(resp);
    pthread_mutex_lock(&o->lock);
    o->scrapes++;
    pthread_mutex_unlock(&o->lock);
    scrape_msg_t *m = bc_msg_alloc(sizeof *m, BC__M_SCRAPE);
    m->job = j;
    if (bc_send(o->scraper, &m->hdr) != 0)
        scrape_run(j); /* the runtime is stopping its actors: scrape here, answer from a task */
}

static const char *breaker_name(bc_breaker_state_t s)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    return names[bc__obs_breaker_code(s)];
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
    o->http.bind_addr = o->bind;
    o->http.port = (uint16_t)o->port;
    int rc = bc_http_server_create(bc_io_loop(io), &o->http, &o->srv);
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
        rc = bc__obs_admin_routes(o);
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
    bc__obs_admin_stop(o);
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
    bc_actor_release(o->scraper);
    bc_metrics_destroy(o->m);
    bc__obs_groups_free(&o->groups);
    bc__obs_groups_free(&o->prev);
    free(o->rows);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->cond);
    free(o);
}

void bc__obs_put(obs_t *o)
{
    /* acq_rel: the last holder sees every other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        obs_free(o);
}

/* ---------------------------------------------------------------- API */

void bc_hub_http_opts_init(bc_hub_http_opts_t *o)
{
    memset(o, 0, sizeof *o);
}

int bc_hub_serve_http_opts(bc_hub_t *h, const bc_hub_http_opts_t *ho, int *port_out, char *err,
                           size_t errlen)
{
    bc_hub_http_opts_t d;
    if (ho == NULL) {
        bc_hub_http_opts_init(&d);
        ho = &d;
    }
    if (h == NULL || ho->port < 0 || ho->port > 65535) {
        bc__seterr(err, errlen, "bc_hub_serve_http: %s", h ? "port must be 0..65535" : "NULL hub");
        return -EINVAL;
    }
    const char *bind = ho->bind && *ho->bind ? ho->bind : "127.0.0.1";
    if (strlen(bind) >= sizeof((obs_t *)0)->bind) {
        bc__seterr(err, errlen, "bind address \"%s\" is too long", bind);
        return -EINVAL;
    }
    const char *token = ho->admin_token ? ho->admin_token : getenv("BLOCKING_ADMIN_TOKEN");
    if (token && strlen(token) >= sizeof((obs_t *)0)->token) {
        bc__seterr(err, errlen, "the admin token is %zu bytes (at most %zu)", strlen(token),
                   sizeof((obs_t *)0)->token - 1);
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
    snprintf(o->token, sizeof o->token, "%s", token ? token : "");
    o->port = ho->port;
    o->per_coordinator = ho->per_coordinator != 0;
    o->max_label_sets = ho->max_label_sets ? ho->max_label_sets : BC__OBS_MAX_LABEL_SETS;
    bc_http_opts_init(&o->http);
    o->http.max_body = 64 * 1024; /* the admin API takes no body worth more */
    if (ho->read_timeout_ms)
        o->http.read_timeout = o->http.idle_timeout = ho->read_timeout_ms / 1000.0;
    if (ho->max_connections)
        o->http.max_connections = ho->max_connections;
    atomic_init(&o->refs, 1);
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    bc__obs_build_registry(o);
    o->scraper = bc_spawn(h->rt, scraper, o);
    if (o->scraper == NULL) {
        bc__seterr(err, errlen, "cannot serve metrics: the runtime is shutting down");
        obs_free(o);
        return -ESHUTDOWN;
    }
    int rc = run_on_io(o, &o->start_task, start_io);
    if (rc != 0) {
        bc__seterr(err, errlen, "%s", o->err);
        bc_stop(o->scraper);
        obs_free(o);
        return rc;
    }
    void *expect = NULL;
    /* release: publishes the registry to the watcher and to bc__obs_destroy. */
    if (!atomic_compare_exchange_strong_explicit(&h->obs, &expect, o, memory_order_release,
                                                 memory_order_relaxed)) {
        run_on_io(o, &o->stop_task, stop_io);
        bc_stop(o->scraper);
        obs_free(o);
        bc__seterr(err, errlen, "this hub already serves metrics");
        return -EEXIST;
    }
    if (port_out)
        *port_out = o->port;
    return 0;
}

int bc_hub_serve_http(bc_hub_t *h, const char *bind, int port, int *port_out, char *err,
                      size_t errlen)
{
    bc_hub_http_opts_t o;
    bc_hub_http_opts_init(&o);
    o.bind = bind;
    o.port = port;
    return bc_hub_serve_http_opts(h, &o, port_out, err, errlen);
}

void bc__obs_signal_latency(bc_hub_t *h, const char *type, double latency_s)
{
    /* acquire: pairs with the release in bc_hub_serve_http_opts. */
    obs_t *o = atomic_load_explicit(&h->obs, memory_order_acquire);
    if (o == NULL)
        return;
    bc_histogram_observe(bc_histogram_labels(o->latency, (const char *const[]){type}),
                         latency_s > 0 ? latency_s : 0);
}

void bc__obs_wait_done(bc_hub_t *h, const char *swarm, int timed_out, double seconds)
{
    /* acquire: pairs with the release in bc_hub_serve_http_opts. */
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
    /* Scrapes under way are answered (to nobody: the server is gone) on the I/O thread; then
     * the scraper has nothing left that refers to o and can stop. */
    pthread_mutex_lock(&o->lock);
    while (o->scrapes > 0)
        pthread_cond_wait(&o->cond, &o->lock);
    pthread_mutex_unlock(&o->lock);
    bc_stop(o->scraper);
    /* Admin operations still under way end on their own (their clients went with the server)
     * and hold a reference until then. */
    bc__obs_put(o);
}
