/* obs_admin.c - the admin API of a hub's HTTP server (the runbook's endpoints): list and show
 * hosted coordinators, clean up a coordinator's Redis state, force-unblock every pending wait,
 * and the Redis layer's statistics.
 *
 * Key decision: what only a coordinator may read or do (its `waiting` flag, completing its
 * wait) is done ON the coordinator: an operation posts a function to each coordinator it
 * concerns (bc_coord_post) and answers once every one has run it. The HTTP handler defers its
 * response; the last coordinator to finish posts a task to the I/O thread, which writes the
 * answer. A coordinator that stops before running the function never runs it (the post became
 * a dead letter): a sweep timer on the I/O thread notices it stopped and settles its slot, so
 * an operation always ends. Each slot is settled exactly once (a CAS), by whichever comes first.
 */
#include "obs_impl.h"

#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define SWEEP_S 0.02         /* how often a running operation looks for stopped coordinators */
#define CLEANUP_STOP_MS 3000 /* at most this long for a hosted coordinator's final heartbeat */
#define LIST_DEFAULT 100
#define LIST_MAX 1000

typedef bc__obs_t obs_t;
typedef enum { OP_LIST, OP_ONE, OP_UNBLOCK, OP_CLEANUP } op_kind_t;

typedef struct bc__obs_op_s op_t;

/* One coordinator of an operation, settled once: by the coordinator (done = 1) or, if it
 * stopped first, by the sweep (done = 2). */
typedef struct {
    op_t *op;
    bc_coord_t *c; /* counted reference */
    _Atomic int done;
    bool waiting;
    int unblocked, state;
    uint64_t iteration, received, sent;
} slot_t;

struct bc__obs_op_s {
    obs_t *o;          /* counted reference */
    bc_runtime_t *rt;  /* outlives the hub, which may go first */
    op_t *prev, *next; /* o->ops, I/O thread */
    op_kind_t kind;
    bc_http_deferred_t *d;
    bc_io_task_t task; /* the answer, on the I/O thread */
    struct ev_loop *loop;
    bool polling;             /* OP_CLEANUP: waiting for the coordinator to stop (timer running) */
    ev_timer timer;           /* the sweep, or the cleanup's wait for the stop */
    _Atomic size_t remaining; /* slots not settled, plus one while posting */
    size_t total, offset, limit; /* OP_LIST */
    /* OP_CLEANUP */
    bc_coord_t *c; /* the coordinator hosted here, stopped first; or NULL */
    uint64_t deadline_ms;
    int status;
    uint64_t keys;
    char id[BC_ID_MAX + 1];
    char err[200];
    size_t n;
    slot_t slots[];
};

/* ---------------------------------------------------------------- responses */

static void send_json(bc_http_resp_t *resp, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        abort(); /* out of memory */
    bc_http_resp_send(resp, status, CT_JSON, s, strlen(s));
    bc_buf_appendc(bc_http_resp_buf(resp), '\n');
    bc_http_resp_header(resp, "Cache-Control", "no-store");
    free(s);
}

__attribute__((format(printf, 3, 4))) static void send_error(bc_http_resp_t *resp, int status,
                                                             const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_json(resp, status, json_pack("{ss}", "error", msg));
}

int bc__obs_admin_allowed(int peer_loopback, const char *bearer, const char *token)
{
    if (peer_loopback)
        return 1;
    if (token == NULL || token[0] == '\0' || bearer == NULL)
        return 0;
    /* Compare digests, so the time taken says nothing about the token, not even its length. */
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)bearer, strlen(bearer), a);
    SHA256((const unsigned char *)token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

/* Refuse (403, counted) unless the request may use the admin API. */
static bool admin_ok(obs_t *o, bc_http_req_t *req, bc_http_resp_t *resp)
{
    if (bc__obs_admin_allowed(bc_http_req_peer_is_loopback(req), bc_http_req_bearer(req), o->token))
        return true;
    /* relaxed: a statistic. */
    atomic_fetch_add_explicit(&o->n_admin_refused, 1, memory_order_relaxed);
    send_error(resp, 403,
               "forbidden: the admin API answers loopback clients, or requests carrying "
               "\"Authorization: Bearer <BLOCKING_ADMIN_TOKEN>\"");
    return false;
}

static json_t *coord_json(const slot_t *s)
{
    const bc_coord_t *c = s->c;
    char phase[BC__OBS_TEXT_MAX];
    return json_pack(
        "{ss so so ss sI sb sI sI}", "id", c->id, "swarmId",
        c->swarm[0] ? json_string(c->swarm) : json_null(), "phase",
        c->phase ? json_string(bc__obs_utf8(c->phase, phase, sizeof phase)) : json_null(), "state",
        bc__obs_state_name(s->state), "iteration", (json_int_t)s->iteration, "waiting", s->waiting,
        "signalsReceived", (json_int_t)s->received, "signalsSent", (json_int_t)s->sent);
}

/* ---------------------------------------------------------------- operations */

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents);

static op_t *op_new(obs_t *o, op_kind_t kind, size_t n)
{
    op_t *op = calloc(1, sizeof *op + n * sizeof op->slots[0]);
    if (op == NULL)
        abort(); /* out of memory */
    op->o = o;
    op->rt = o->h->rt;
    op->kind = kind;
    op->n = n;
    op->loop = bc_io_loop(o->h->rt->io);
    ev_timer_init(&op->timer, sweep_cb, SWEEP_S, SWEEP_S);
    op->timer.data = op;
    for (size_t i = 0; i < n; i++)
        op->slots[i].op = op;
    return op;
}

static void op_free(op_t *op)
{
    for (size_t i = 0; i < op->n; i++)
        bc__coord_release(op->slots[i].c);
    bc__coord_release(op->c);
    free(op);
}

/* The answer, on the I/O thread: write it (if the client still waits) and free op. */
static void op_answer(bc_io_t *io, bc_io_task_t *task)
{
    (void)io;
    op_t *op = bc_container_of(task, op_t, task);
    obs_t *o = op->o;
    ev_timer_stop(op->loop, &op->timer);
    bc_http_resp_t *resp = bc_http_deferred_resp(op->d);
    if (op->kind == OP_LIST) {
        json_t *arr = json_array();
        for (size_t i = 0; i < op->n; i++)
            json_array_append_new(arr, coord_json(&op->slots[i]));
        send_json(resp, 200,
                  json_pack("{sI sI sI so}", "total", (json_int_t)op->total, "offset",
                            (json_int_t)op->offset, "limit", (json_int_t)op->limit, "coordinators",
                            arr));
    } else if (op->kind == OP_ONE) {
        send_json(resp, 200, coord_json(&op->slots[0]));
    } else if (op->kind == OP_UNBLOCK) {
        size_t n = 0;
        for (size_t i = 0; i < op->n; i++)
            n += (size_t)op->slots[i].unblocked;
        send_json(resp, 200, json_pack("{sI}", "unblocked", (json_int_t)n));
    } else if (op->status == 0) {
        send_json(resp, 200,
                  json_pack("{ss sI sb}", "coordinatorId", op->id, "keysRemoved",
                            (json_int_t)op->keys, "stopped", op->c != NULL));
    } else {
        send_error(resp, 503, "cleanup of %s failed: %s", op->id,
                   op->err[0] ? op->err : bc_strerror(op->status));
    }
    bc_http_deferred_finish(op->d);
    if (op->prev)
        op->prev->next = op->next;
    else
        o->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op_free(op);
    bc__obs_put(o);
}

/* One slot (or the posting guard) settled; the last one has the answer written. Any thread. */
static void slot_done(op_t *op)
{
    /* acq_rel: the answer, on the I/O thread, reads every slot settled before. */
    if (atomic_fetch_sub_explicit(&op->remaining, 1, memory_order_acq_rel) != 1)
        return;
    op->task.fn = op_answer;
    bc_io_post(op->rt, &op->task);
}

static bool slot_claim(slot_t *s, int how)
{
    int expect = 0;
    /* acq_rel: the winner's fields are published to the answer through op->remaining; the
     * loser must not touch the slot. */
    return atomic_compare_exchange_strong_explicit(&s->done, &expect, how, memory_order_acq_rel,
                                                   memory_order_acquire);
}

static void slot_read(slot_t *s)
{
    bc_coord_t *c = s->c;
    /* relaxed: statistics, each read on its own. */
    s->state = atomic_load_explicit(&c->state, memory_order_relaxed);
    s->iteration = atomic_load_explicit(&c->iteration, memory_order_relaxed);
    s->received = atomic_load_explicit(&c->signals_received, memory_order_relaxed);
    s->sent = atomic_load_explicit(&c->signals_sent, memory_order_relaxed);
}

/* Runs on the coordinator (bc_coord_post), so it may read `waiting` and end the wait. */
static void visit(bc_coord_t *c, void *arg)
{
    slot_t *s = arg;
    op_t *op = s->op;
    if (op->kind == OP_UNBLOCK && (s->unblocked = bc__coord_force_unblock(c)) != 0)
        /* relaxed: a statistic. */
        atomic_fetch_add_explicit(&op->o->n_forced, 1, memory_order_relaxed);
    s->waiting = c->waiting;
    slot_read(s);
    if (slot_claim(s, 1))
        slot_done(op);
}

/* A coordinator that stopped will never run visit: settle its slot from its atomics (a
 * stopped coordinator waits for nothing). I/O thread. */
static void slot_sweep(slot_t *s)
{
    if (!slot_claim(s, 2))
        return;
    s->waiting = false;
    slot_read(s);
    slot_done(s->op);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    op_t *op = w->data;
    for (size_t i = 0; i < op->n; i++) {
        slot_t *s = &op->slots[i];
        /* acquire: see a visit's claim; bc_actor_alive's acquire pairs with the stop. */
        if (atomic_load_explicit(&s->done, memory_order_acquire) == 0 &&
            !bc_actor_alive(s->c->actor))
            slot_sweep(s);
    }
}

/* Defer the response; op now holds a reference on o and is listed. I/O thread, in a
 * handler. */
static void op_begin(op_t *op, bc_http_resp_t *resp)
{
    obs_t *o = op->o;
    op->d = bc_http_resp_defer(resp);
    /* relaxed: taking a reference needs no ordering (the hub holds one). */
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    op->next = o->ops;
    if (o->ops)
        o->ops->prev = op;
    o->ops = op;
}

/* Defer the response and post visit to every slot's coordinator. I/O thread, in a handler. */
static void op_start(op_t *op, bc_http_resp_t *resp)
{
    op_begin(op, resp);
    /* relaxed: no other thread sees op before the posts below (which order it). */
    atomic_store_explicit(&op->remaining, op->n + 1, memory_order_relaxed);
    for (size_t i = 0; i < op->n; i++)
        if (bc_coord_post(op->slots[i].c, visit, &op->slots[i]) != 0)
            slot_sweep(&op->slots[i]); /* stopped already */
    ev_timer_start(op->loop, &op->timer);
    slot_done(op); /* the guard: the answer is posted as a task, never written in here */
}

/* ---------------------------------------------------------------- handlers */

static int by_id(const void *a, const void *b)
{
    return strcmp((*(bc_coord_t *const *)a)->id, (*(bc_coord_t *const *)b)->id);
}

/* A query parameter as a decimal in [lo, hi]: 1 (set), 0 (absent), -1 (400 sent). */
static int query_num(bc_http_req_t *req, bc_http_resp_t *resp, const char *name, size_t lo,
                     size_t hi, size_t *out)
{
    char v[32], *end;
    int r = bc_http_req_query_param(req, name, v, sizeof v);
    if (r == -ENOENT)
        return 0;
    errno = 0;
    unsigned long long n = r > 0 && v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (r <= 0 || v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < lo || n > hi) {
        send_error(resp, 400, "%s must be a whole number in %zu..%zu", name, lo, hi);
        return -1;
    }
    *out = (size_t)n;
    return 1;
}

/* GET /api/coordinators: a page of the hosted coordinators, sorted by id. */
static void list(obs_t *o, bc_http_req_t *req, bc_http_resp_t *resp)
{
    size_t offset = 0, limit = LIST_DEFAULT;
    if (query_num(req, resp, "offset", 0, 1000000000, &offset) < 0 ||
        query_num(req, resp, "limit", 1, LIST_MAX, &limit) < 0)
        return;
    bc_hub_t *h = o->h;
    pthread_mutex_lock(&h->lock);
    bc_coord_t **all = malloc((h->count + 1) * sizeof *all);
    size_t n = 0;
    if (all == NULL)
        abort(); /* out of memory */
    for (size_t i = 0; i < h->cap; i++)
        if (h->table[i] && h->table[i] != BC__TOMBSTONE)
            all[n++] = bc__coord_retain(h->table[i]);
    pthread_mutex_unlock(&h->lock);
    qsort(all, n, sizeof *all, by_id);
    size_t first = offset < n ? offset : n, count = n - first < limit ? n - first : limit;
    op_t *op = op_new(o, OP_LIST, count);
    op->total = n;
    op->offset = offset;
    op->limit = limit;
    for (size_t i = 0; i < n; i++) {
        if (i >= first && i < first + count)
            op->slots[i - first].c = all[i];
        else
            bc__coord_release(all[i]);
    }
    free(all);
    op_start(op, resp);
}

/* The <id> of /api/coordinators/<id>[/...]: 1, or 0 with a 400 sent. */
static int parse_id(const char *seg, size_t len, char *id, bc_http_resp_t *resp)
{
    char tmp[BC_ID_MAX + 2], why[200];
    size_t k = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, seg, k);
    tmp[k] = '\0';
    if (len > BC_ID_MAX || !bc_id_valid(tmp)) {
        send_error(resp, 400, "%s",
                   len > BC_ID_MAX ? "coordinator id is longer than 64 bytes"
                                   : bc_id_explain("coordinator id", tmp, why, sizeof why));
        return 0;
    }
    memcpy(id, tmp, k + 1);
    return 1;
}

static void show(obs_t *o, const char *id, bc_http_resp_t *resp)
{
    bc_coord_t *c = bc__hub_lookup(o->h, id, strlen(id));
    if (c == NULL) {
        send_error(resp, 404, "coordinator %s is not hosted here", id);
        return;
    }
    op_t *op = op_new(o, OP_ONE, 1);
    op->slots[0].c = c;
    op_start(op, resp);
}

/* bc__cleanup's answer, on a runtime worker. */
static void cleanup_done(void *arg, int status, uint64_t keys_removed, const char *err)
{
    op_t *op = arg;
    op->status = status;
    op->keys = keys_removed;
    snprintf(op->err, sizeof op->err, "%s", status && err ? err : "");
    op->task.fn = op_answer;
    bc_io_post(op->rt, &op->task);
}

static void cleanup_run(op_t *op)
{
    int rc = bc__cleanup(op->o->h, op->id, cleanup_done, op);
    if (rc != 0) {
        op->status = rc;
        op_answer(NULL, &op->task);
    }
}

/* A hosted coordinator was stopped: clean up once it has stopped and its final heartbeat is
 * written (or CLEANUP_STOP_MS passed), or that write would bring a key back. I/O thread. */
static void cleanup_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    op_t *op = w->data;
    /* acquire: pairs with the heartbeat actor's release when a final write is answered. */
    bool settled = !bc_actor_alive(op->c->actor) &&
                   atomic_load_explicit(&op->o->h->hb_pending, memory_order_acquire) == 0;
    if (!settled && bc_now_ms() < op->deadline_ms)
        return;
    ev_timer_stop(loop, w);
    op->polling = false;
    cleanup_run(op);
}

/* POST /api/coordinators/<id>/cleanup */
static void cleanup(obs_t *o, const char *id, bc_http_resp_t *resp)
{
    op_t *op = op_new(o, OP_CLEANUP, 0);
    snprintf(op->id, sizeof op->id, "%s", id);
    op->c = bc__hub_lookup(o->h, id, strlen(id));
    if (op->c == NULL) {
        int rc = bc__cleanup(o->h, id, cleanup_done, op);
        if (rc != 0) {
            send_error(resp, 400, "cannot clean up %s: %s", id, bc_strerror(rc));
            op_free(op);
            return;
        }
        op_begin(op, resp);
        return;
    }
    bc_coord_stop(op->c);
    op->deadline_ms = bc_now_ms() + CLEANUP_STOP_MS;
    op_begin(op, resp);
    op->polling = true;
    ev_timer_init(&op->timer, cleanup_poll, 0.005, 0.005);
    op->timer.data = op;
    ev_timer_start(op->loop, &op->timer);
}

/* GET and POST under /api/coordinators. */
static void on_coordinators(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    obs_t *o = arg;
    if (!admin_ok(o, req, resp))
        return;
    bool get = strcmp(bc_http_req_method(req), "POST") != 0; /* GET or HEAD */
    const char *p = bc_http_req_path(req) + strlen("/api/coordinators");
    if (*p == '/')
        p++;
    if (*p == '\0') {
        if (get)
            list(o, req, resp);
        else
            send_error(resp, 405, "use GET to list coordinators");
        return;
    }
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    char id[BC_ID_MAX + 1];
    if (slash && strcmp(slash, "/cleanup") != 0) {
        send_error(resp, 404, "no such endpoint");
        return;
    }
    if (!parse_id(p, len, id, resp))
        return;
    if (slash == NULL && get) {
        show(o, id, resp);
    } else if (slash && !get) {
        cleanup(o, id, resp);
    } else {
        send_error(resp, 405, "use %s for this endpoint", slash ? "POST" : "GET");
        bc_http_resp_header(resp, "Allow", slash ? "POST" : "GET, HEAD");
    }
}

/* POST /api/timeouts/force-unblock-all */
static void on_force_unblock(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    obs_t *o = arg;
    if (!admin_ok(o, req, resp))
        return;
    bc_hub_t *h = o->h;
    pthread_mutex_lock(&h->lock);
    op_t *op = op_new(o, OP_UNBLOCK, h->count);
    size_t n = 0;
    for (size_t i = 0; i < h->cap; i++)
        if (h->table[i] && h->table[i] != BC__TOMBSTONE)
            op->slots[n++].c = bc__coord_retain(h->table[i]);
    pthread_mutex_unlock(&h->lock);
    op->n = n;
    op_start(op, resp);
}

/* GET /api/redis/pool-stats */
static void on_pool_stats(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    obs_t *o = arg;
    if (!admin_ok(o, req, resp))
        return;
    bc_redis_stats_t s;
    bc_redis_latency_t l;
    bc_redis_stats(o->h->redis, &s);
    bc_redis_latency(o->h->redis, &l);
    json_t *replied = json_object(), *queued = json_object();
    for (int i = 0; i < BC_REDIS_STATUS_COUNT; i++)
        json_object_set_new(replied, bc_redis_status_name((bc_redis_status_t)i),
                            json_integer((json_int_t)s.replied[i]));
    for (int i = 0; i < BC_REDIS_CLASS_COUNT; i++)
        json_object_set_new(queued, bc_redis_class_name((bc_redis_class_t)i),
                            json_integer((json_int_t)s.queued[i]));
    json_t *breaker = json_pack(
        "{ss sI sI sI sf ss}", "state", bc_breaker_state_name(s.breaker.state), "timesOpened",
        (json_int_t)s.breaker.times_opened, "reconnections", (json_int_t)s.breaker.reconnections,
        "triggers", (json_int_t)s.breaker.triggers_total, "openSeconds",
        (double)s.breaker.open_ms_total / 1000.0, "lastError", s.breaker.last_error);
    json_t *lat = json_pack("{sI sf}", "count", (json_int_t)l.count, "meanSeconds",
                            l.count ? l.sum_s / (double)l.count : 0.0);
    send_json(resp, 200,
              json_pack("{sb so sI sI so sI so sI sI sI sI sI so}", "connected", s.connected,
                        "breaker", breaker, "submitted", (json_int_t)s.submitted, "inFlight",
                        (json_int_t)s.in_flight, "replied", replied, "repliedTotal",
                        (json_int_t)s.replied_total, "queued", queued, "maxPipeline",
                        (json_int_t)s.max_pipeline, "subscriptions", (json_int_t)s.subscriptions,
                        "pubsubMessages", (json_int_t)s.pubsub_messages, "noscriptReloads",
                        (json_int_t)s.noscript_reloads, "clockOffsetMs",
                        (json_int_t)s.clock_offset_ms, "latency", lat));
}

void bc__obs_admin_stop(obs_t *o)
{
    op_t *next;
    for (op_t *op = o->ops; op; op = next) {
        next = op->next;
        if (op->polling) {
            ev_timer_stop(op->loop, &op->timer);
            op->status = -ESHUTDOWN;
            snprintf(op->err, sizeof op->err, "the hub is shutting down");
            op_answer(NULL, &op->task);
        }
    }
}

int bc__obs_admin_routes(obs_t *o)
{
    int rc = bc_http_route(o->srv, "GET", "/api/coordinators", BC_HTTP_PREFIX, on_coordinators, o);
    if (rc == 0)
        rc = bc_http_route(o->srv, "POST", "/api/coordinators", BC_HTTP_PREFIX, on_coordinators, o);
    if (rc == 0)
        rc = bc_http_route(o->srv, "POST", "/api/timeouts/force-unblock-all", BC_HTTP_EXACT,
                           on_force_unblock, o);
    if (rc == 0)
        rc = bc_http_route(o->srv, "GET", "/api/redis/pool-stats", BC_HTTP_EXACT, on_pool_stats, o);
    return rc;
}
