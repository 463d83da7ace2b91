/* redis.c - the Redis layer's public face: handle lifetime, command submission, scripts,
 * Redis time and statistics.
 *
 * Key decision: a command is ONE pooled block (request header, argv pointers, lengths and the
 * bytes) that is the I/O task, the pending-queue node and hiredis's privdata in turn, so a
 * command costs one pool allocation plus its reply message, and the block's owner at any
 * moment is unambiguous (submitter, I/O queue, class queue, or hiredis until its callback).
 */
#include "redis_impl.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *bc_redis_status_name(bc_redis_status_t s)
{
    static const char *const names[] = {"ok",          "error",      "disconnected", "timeout",
                                        "unavailable", "queue_full", "shutdown"};
    if ((unsigned)s >= sizeof names / sizeof names[0])
        return "unknown";
    return names[s];
}

static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

bc__redis_req_t *bc__redis_req_make(bc_redis_t *r, int kind, int n1, const char *const *a1,
                                    const size_t *l1, int n2, const char *const *a2,
                                    const size_t *l2)
{
    int n = n1 + n2;
    size_t bytes = 0;
    for (int i = 0; i < n1; i++)
        bytes += (l1 ? l1[i] : strlen(a1[i])) + 1;
    for (int i = 0; i < n2; i++)
        bytes += (l2 ? l2[i] : strlen(a2[i])) + 1;
    size_t hdr = align8(sizeof(bc__redis_req_t));
    size_t total = hdr + (size_t)n * (sizeof(char *) + sizeof(size_t)) + bytes;
    unsigned cls;
    char *blk = bc_pool_alloc_size(total, &cls);
    bc__redis_req_t *q = (bc__redis_req_t *)blk;
    memset(q, 0, sizeof *q);
    q->r = r;
    q->kind = (uint8_t)kind;
    q->pool_cls = cls;
    q->argc = n;
    q->argv = (const char **)(blk + hdr);
    q->argvlen = (size_t *)(blk + hdr + (size_t)n * sizeof(char *));
    char *p = blk + hdr + (size_t)n * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < n; i++) {
        const char *s = i < n1 ? a1[i] : a2[i - n1];
        const size_t *l = i < n1 ? l1 : l2;
        size_t len = l ? l[i < n1 ? i : i - n1] : strlen(s);
        memcpy(p, s, len);
        p[len] = '\0';
        q->argv[i] = p;
        q->argvlen[i] = len;
        p += len + 1;
    }
    q->submit_ns = bc_now_ns();
    return q;
}

void bc__redis_req_free(bc__redis_req_t *req)
{
    if (req->reply_to)
        bc_actor_release(req->reply_to);
    bc_pool_free_size(req->pool_cls, req);
}

/* Upper bounds of redis_command_latency_seconds, in ns and in seconds. */
static const uint64_t lat_bounds_ns[BC_REDIS_LATENCY_BUCKETS] = {
    50000,    100000,   250000,   500000,    1000000,   2500000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000};
const double bc_redis_latency_bounds[BC_REDIS_LATENCY_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};

void bc__redis_answer(bc_redis_t *r, bc__redis_req_t *req, bc_redis_status_t st,
                      const struct redisReply *reply)
{
    /* relaxed: statistics counters, no ordering with anything else. */
    atomic_fetch_add_explicit(&r->n_replied[st], 1, memory_order_relaxed);
    uint64_t ns = 0;
    if (st == BC_REDIS_OK || st == BC_REDIS_ERROR) {
        ns = bc_now_ns() - req->submit_ns;
        unsigned b = 0;
        while (b < BC_REDIS_LATENCY_BUCKETS && ns > lat_bounds_ns[b])
            b++;
        /* relaxed: statistics; the I/O thread is the only writer in practice. */
        atomic_fetch_add_explicit(&r->n_lat[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->n_lat_ns, ns, memory_order_relaxed); /* idem */
    }
    if (req->reply_to == NULL || (req->tag == BC_REDIS_TAG_QUIET && st == BC_REDIS_OK))
        return;
    size_t head = align8(sizeof(bc_redis_reply_msg_t));
    size_t rsz = (st == BC_REDIS_OK || st == BC_REDIS_ERROR) && reply ? bc_reply_size(reply) : 0;
    bc_redis_reply_msg_t *m = bc_msg_alloc(head + rsz, BC_MSG_REDIS_REPLY);
    m->tag = req->tag;
    m->status = st;
    uint64_t us = (ns ? ns : bc_now_ns() - req->submit_ns) / 1000u;
    m->latency_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    m->reply = rsz ? bc_reply_copy_into((char *)m + head, rsz, reply) : NULL;
    bc_send(req->reply_to, &m->hdr); /* -ESRCH: the actor stopped; the message is freed */
}

/* I/O thread: a submitted request arrives. */
static void on_req_task(bc_io_t *io, bc_io_task_t *task)
{
    bc__redis_req_t *req = bc_container_of(task, bc__redis_req_t, task);
    bc_redis_t *r = req->r;
    (void)io;
    if (r->closed_io) {
        if (req->kind == BC__RK_USER || req->kind == BC__RK_EVALSHA)
            bc__redis_answer(r, req, BC_REDIS_SHUTDOWN, NULL);
        bc__redis_req_free(req);
        return;
    }
    switch (req->kind) {
    case BC__RK_SUB:
        bc__redis_sub_apply(r, req);
        break;
    case BC__RK_UNSUB:
        bc__redis_unsub_apply(r, req);
        break;
    case BC__RK_WATCH:
    case BC__RK_UNWATCH:
        bc__redis_watch_apply(r, req, req->kind == BC__RK_WATCH);
        break;
    default:
        bc__redis_dispatch(r, req);
        break;
    }
}

static int is_closed(const bc_redis_t *r)
{
    /* acquire: pairs with the release in bc_redis_destroy. */
    return atomic_load_explicit(&r->closed, memory_order_acquire);
}

static void submit(bc_redis_t *r, bc__redis_req_t *req, bc_actor_t *reply_to, uint64_t tag,
                   bc_redis_class_t cls)
{
    req->reply_to = reply_to ? bc_actor_retain(reply_to) : NULL;
    req->tag = tag;
    req->cls = (uint8_t)cls;
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&r->n_submitted, 1, memory_order_relaxed);
    if (is_closed(r)) {
        bc__redis_answer(r, req, BC_REDIS_SHUTDOWN, NULL);
        bc__redis_req_free(req);
        return;
    }
    req->task.fn = on_req_task;
    if (req->kind == BC__RK_USER || req->kind == BC__RK_EVALSHA)
        bc_io_post_direct(r->rt, &req->task);
    else
        bc_io_post(r->rt, &req->task);
}

void bc_redis_urgent(bc_redis_t *r)
{
    if (r)
        bc_io_urgent(r->rt);
}

int bc_redis_cmd(bc_redis_t *r, bc_actor_t *reply_to, uint64_t tag, bc_redis_class_t cls, int argc,
                 const char *const *argv, const size_t *argvlen)
{
    if (r == NULL || argv == NULL || argc < 1 || (unsigned)cls >= BC_REDIS_CLASS_COUNT)
        return -EINVAL;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return -EINVAL;
    bc__redis_req_t *req = bc__redis_req_make(r, BC__RK_USER, argc, argv, argvlen, 0, NULL, NULL);
    submit(r, req, reply_to, tag, cls);
    return 0;
}

int bc_redis_script_register(bc_redis_t *r, const char *lua)
{
    if (r == NULL || lua == NULL)
        return -EINVAL;
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t len = strlen(lua);
    SHA1((const unsigned char *)lua, len, md);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, lua, len + 1);
    pthread_mutex_lock(&r->script_lock);
    /* relaxed: registrations are serialised by script_lock. */
    int id = atomic_load_explicit(&r->nscripts, memory_order_relaxed);
    if (id == BC_REDIS_MAX_SCRIPTS) {
        pthread_mutex_unlock(&r->script_lock);
        free(copy);
        return -ENOSPC;
    }
    bc__redis_script_t *s = &r->scripts[id];
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    s->lua = copy;
    s->len = len;
    /* release: the entry is complete before readers can see its index. */
    atomic_store_explicit(&r->nscripts, id + 1, memory_order_release);
    pthread_mutex_unlock(&r->script_lock);
    return id;
}

int bc_redis_evalsha(bc_redis_t *r, bc_actor_t *reply_to, uint64_t tag, bc_redis_class_t cls,
                     int script_id, int nkeys, int argc, const char *const *argv,
                     const size_t *argvlen)
{
    if (r == NULL || (unsigned)cls >= BC_REDIS_CLASS_COUNT || argc < 0 || nkeys < 0 ||
        nkeys > argc || (argc > 0 && argv == NULL) || script_id < 0)
        return -EINVAL;
    /* acquire: pairs with the release in bc_redis_script_register. */
    if (script_id >= atomic_load_explicit(&r->nscripts, memory_order_acquire))
        return -EINVAL;
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char *head[3] = {"EVALSHA", r->scripts[script_id].sha, nk};
    bc__redis_req_t *req =
        bc__redis_req_make(r, BC__RK_EVALSHA, 3, head, NULL, argc, argv, argvlen);
    req->script_id = script_id;
    submit(r, req, reply_to, tag, cls);
    return 0;
}

static int sub_post(bc_redis_t *r, int kind, bc_actor_t *to, const char *const *channels, size_t n,
                    unsigned flags, uint64_t tag)
{
    if (r == NULL || (channels == NULL && n > 0) || n > INT32_MAX ||
        (n == 0 && !(flags & BC__RF_SYNC)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (channels[i] == NULL)
            return -EINVAL;
    if (is_closed(r))
        return -ESHUTDOWN;
    bc__redis_req_t *req = bc__redis_req_make(r, kind, (int)n, channels, NULL, 0, NULL, NULL);
    req->reply_to = to ? bc_actor_retain(to) : NULL;
    req->flags = (uint8_t)flags;
    req->tag = tag;
    req->task.fn = on_req_task;
    bc_io_post(r->rt, &req->task);
    return 0;
}

int bc_redis_subscribe(bc_redis_t *r, bc_actor_t *to, const char *const *channels, size_t n)
{
    if (to == NULL)
        return -EINVAL;
    return sub_post(r, BC__RK_SUB, to, channels, n, 0, 0);
}

int bc_redis_subscribe_sync(bc_redis_t *r, bc_actor_t *to, const char *const *channels, size_t n,
                            uint64_t tag)
{
    if (to == NULL)
        return -EINVAL;
    return sub_post(r, BC__RK_SUB, to, channels, n, BC__RF_SYNC, tag);
}

int bc_redis_unsubscribe(bc_redis_t *r, const char *const *channels, size_t n)
{
    return sub_post(r, BC__RK_UNSUB, NULL, channels, n, 0, 0);
}

int bc_redis_watch(bc_redis_t *r, bc_actor_t *listener)
{
    if (listener == NULL)
        return -EINVAL;
    return sub_post(r, BC__RK_WATCH, listener, NULL, 0, BC__RF_SYNC, 0);
}

int bc_redis_unwatch(bc_redis_t *r, bc_actor_t *listener)
{
    if (listener == NULL)
        return -EINVAL;
    return sub_post(r, BC__RK_UNWATCH, listener, NULL, 0, BC__RF_SYNC, 0);
}

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t bc_redis_now_ms(const bc_redis_t *r)
{
    return (uint64_t)((int64_t)realtime_ms() + bc_redis_clock_offset_ms(r));
}

int64_t bc_redis_clock_offset_ms(const bc_redis_t *r)
{
    /* relaxed: a single self-contained value. */
    return atomic_load_explicit(&((bc_redis_t *)r)->offset_ms, memory_order_relaxed);
}

void bc__redis_clock_step(bc_redis_t *r, int64_t delta_ms)
{
    /* relaxed: as the TIME refresh's store. */
    atomic_fetch_add_explicit(&r->offset_ms, delta_ms, memory_order_relaxed);
}

int bc_redis_time_known(const bc_redis_t *r)
{
    /* acquire: pairs with the release after the offset was stored. */
    return atomic_load_explicit(&((bc_redis_t *)r)->time_known, memory_order_acquire);
}

void bc_redis_latency(bc_redis_t *r, bc_redis_latency_t *out)
{
    out->count = 0;
    for (int i = 0; i <= BC_REDIS_LATENCY_BUCKETS; i++) {
        /* relaxed: statistics, each bucket read on its own. */
        out->counts[i] = atomic_load_explicit(&r->n_lat[i], memory_order_relaxed);
        out->count += out->counts[i];
    }
    /* relaxed: idem. */
    out->sum_s = (double)atomic_load_explicit(&r->n_lat_ns, memory_order_relaxed) / 1e9;
}

void bc_redis_stats(bc_redis_t *r, bc_redis_stats_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->lock);
    bc_breaker_snapshot(&r->breaker, bc_now_ms(), &out->breaker);
    pthread_mutex_unlock(&r->lock);
    /* relaxed everywhere: statistics, each counter read on its own. */
    out->connected = atomic_load_explicit(&r->connected, memory_order_relaxed);
    out->time_known = bc_redis_time_known(r);
    out->clock_offset_ms = bc_redis_clock_offset_ms(r);
    out->submitted = atomic_load_explicit(&r->n_submitted, memory_order_relaxed);
    for (int i = 0; i < BC_REDIS_STATUS_COUNT; i++) {
        out->replied[i] = atomic_load_explicit(&r->n_replied[i], memory_order_relaxed);
        out->replied_total += out->replied[i];
    }
    out->in_flight = atomic_load_explicit(&r->n_inflight, memory_order_relaxed);
    for (int i = 0; i < BC_REDIS_CLASS_COUNT; i++)
        out->queued[i] = atomic_load_explicit(&r->n_queued[i], memory_order_relaxed);
    out->max_pipeline = atomic_load_explicit(&r->n_max_pipeline, memory_order_relaxed);
    out->subscriptions = atomic_load_explicit(&r->n_subs, memory_order_relaxed);
    out->pubsub_messages = atomic_load_explicit(&r->n_pubsub, memory_order_relaxed);
    out->noscript_reloads = atomic_load_explicit(&r->n_reloads, memory_order_relaxed);
}

/* ---------------------------------------------------------------- lifetime */

static void shutdown_io(bc_redis_t *r)
{
    if (r->closed_io)
        return;
    r->closed_io = true;
    bc__redis_conn_shutdown(r);
    while (r->qhead) {
        bc__redis_req_t *q = r->qhead;
        r->qhead = q->next;
        bc__redis_answer(r, q, BC_REDIS_SHUTDOWN, NULL);
        bc__redis_req_free(q);
    }
    r->qtail = NULL;
    for (int i = 0; i < BC_REDIS_CLASS_COUNT; i++) {
        r->qcount[i] = 0;
        atomic_store_explicit(&r->n_queued[i], 0, memory_order_relaxed); /* statistics */
    }
    bc__redis_sub_clear(r);
    /* relaxed: statistics. */
    atomic_store_explicit(&r->connected, 0, memory_order_relaxed);
}

static void free_shell(bc_redis_t *r)
{
    for (int i = 0; i < BC_REDIS_MAX_SCRIPTS; i++)
        free(r->scripts[i].lua);
    free(r->conns);
    free(r->buckets);
    bc_redis_conf_free(&r->conf);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->script_lock);
    free(r);
}

/* Runtime closer (I/O thread, at bc_runtime_destroy). */
static void on_closer(bc_io_t *io, void *arg)
{
    (void)io;
    bc_redis_t *r = arg;
    shutdown_io(r);
    free_shell(r);
}

static void on_destroy_task(bc_io_t *io, bc_io_task_t *task)
{
    bc_redis_t *r = bc_container_of(task, bc_redis_t, destroy_task);
    shutdown_io(r);
    /* The destroying thread frees the shell: the runtime must not close it. */
    bc_io_remove_closer(io, on_closer, r);
    pthread_mutex_lock(&r->lock);
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* I/O thread: register the closer (the closer list is the I/O thread's), report to
 * bc_redis_create, then connect. */
static void on_start_task(bc_io_t *io, bc_io_task_t *task)
{
    bc_redis_t *r = bc_container_of(task, bc_redis_t, start_task);
    int rc = bc_io_add_closer(io, on_closer, r);
    pthread_mutex_lock(&r->lock);
    r->start_rc = rc;
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (rc == 0)
        bc__redis_connect_all(r);
}

void bc_redis_destroy(bc_redis_t *r)
{
    if (r == NULL)
        return;
    /* acq_rel: later submitters see the flag; a second destroy sees the first. */
    if (atomic_exchange_explicit(&r->closed, 1, memory_order_acq_rel))
        return;
    r->destroy_task.fn = on_destroy_task;
    bc_io_post(r->rt, &r->destroy_task);
    pthread_mutex_lock(&r->lock);
    while (!r->done)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    /* The I/O thread is done with r (its last touch was the unlock above). */
    free_shell(r);
}

static int conf_valid(const bc_redis_conf_t *c)
{
    if ((c->host == NULL) == (c->unix_path == NULL))
        return 0;
    if (c->host && (c->port < 1 || c->port > 65535))
        return 0;
    if (c->db < 0 || c->pool_size < 1 || c->pool_size > BC_REDIS_POOL_MAX)
        return 0;
    if (c->timeout_ms < 1 || c->timeout_ms > BC_REDIS_TIMEOUT_MAX_MS)
        return 0;
    if (bc_breaker_conf_validate(&c->breaker) != 0)
        return 0;
    for (int i = 0; i < BC_REDIS_CLASS_COUNT; i++) {
        const bc_redis_queue_policy_t *p = &c->queue[i];
        if (p->mode == BC_REDIS_QUEUE && (p->max_queued < 1 || p->max_queued > BC_REDIS_QUEUE_MAX))
            return 0;
        if (p->mode != BC_REDIS_QUEUE && p->mode != BC_REDIS_FAIL_FAST)
            return 0;
    }
    return 1;
}

static char *dup_or_null(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

int bc_redis_create(bc_runtime_t *rt, const bc_redis_conf_t *conf, bc_redis_t **out)
{
    if (rt == NULL || conf == NULL || out == NULL || !conf_valid(conf))
        return -EINVAL;
    int rc = -ENOMEM;
    bc_redis_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        abort();
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    pthread_mutex_init(&r->script_lock, NULL);
    r->rt = rt;
    r->io = rt->io;
    r->conf = *conf;
    r->conf.host = dup_or_null(conf->host);
    r->conf.unix_path = dup_or_null(conf->unix_path);
    r->conf.username = dup_or_null(conf->username);
    r->conf.password = dup_or_null(conf->password);
    r->conf.breaker.log = bc__redis_breaker_log;
    r->conf.breaker.log_arg = r;
    bc_redis_conf_describe(&r->conf, r->target, sizeof r->target);
    if (bc_breaker_init(&r->breaker, &r->conf.breaker, bc_now_ms()) != 0) {
        rc = -EINVAL;
        goto err;
    }
    r->nconns = r->conf.pool_size + 1;
    r->conns = calloc((size_t)r->nconns, sizeof *r->conns);
    r->nbuckets = 64;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (r->conns == NULL || r->buckets == NULL)
        abort();
    for (int i = 0; i < r->nconns; i++) {
        r->conns[i].r = r;
        r->conns[i].sub = i == r->conf.pool_size;
        r->conns[i].poll.first = r->conns[i].sub; /* what it reads wakes actors */
    }
    bc__redis_conn_init(r);
    bc_log(BC_LOG_INFO, "Redis: connecting to %s (%d command connection%s + subscriber)", r->target,
           r->conf.pool_size, r->conf.pool_size == 1 ? "" : "s");
    r->start_task.fn = on_start_task;
    bc_io_post(rt, &r->start_task);
    pthread_mutex_lock(&r->lock);
    while (!r->done)
        pthread_cond_wait(&r->cond, &r->lock);
    r->done = false;
    rc = r->start_rc;
    pthread_mutex_unlock(&r->lock);
    if (rc != 0)
        goto err;
    *out = r;
    return 0;
err:
    free_shell(r);
    return rc;
}
