/* redis_conn.c - the I/O thread's Redis connections: connect and handshake (AUTH, SELECT,
 * TIME), pipelined sends, per-command timeouts, replies, and the circuit breaker.
 *
 * Key decision: the pool (command connections + subscriber) is up or down as ONE link driven
 * by one breaker. Any failure (connect refused, AUTH refused, a drop, a command timeout) tears
 * every context down and schedules the next attempt as the breaker says; commands are sent
 * only while all connections are ready. hiredis 0.14 owns each in-flight request until it
 * calls the request's callback (with NULL when the context goes away), so every request is
 * answered from exactly one place: its callback, or the class queue/policy before sending.
 */
#include "redis_impl.h"
#include "redis_reply.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A ready connection's deadline timer runs even while idle if the command timeout is at least
 * this long (one wake-up per timeout while idle). */
#define IDLE_TIMER_MIN_MS 100

void bc__redis_breaker_log(void *arg, int level, const char *line)
{
    (void)arg;
    bc_log((bc_log_level_t)level, "%s", line);
}

static void arm(bc__redis_conn_t *c, uint64_t deadline_ms)
{
    struct ev_loop *loop = bc_io_loop(c->r->io);
    uint64_t now = bc_now_ms();
    double d = deadline_ms > now ? (double)(deadline_ms - now) / 1000.0 : 0.0;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, d, 0.0);
    ev_timer_start(loop, &c->timer);
}

static void fifo_push(bc__redis_conn_t *c, bc__redis_req_t *q)
{
    bc_redis_t *r = c->r;
    q->next = NULL;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->inflight++;
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&r->n_inflight, 1, memory_order_relaxed);
    if (c->inflight > atomic_load_explicit(&r->n_max_pipeline, memory_order_relaxed))
        atomic_store_explicit(&r->n_max_pipeline, c->inflight, memory_order_relaxed);
    if (!ev_is_active(&c->timer))
        arm(c, q->deadline_ms);
}

/* Remove q from c's in-flight list (the head, as Redis answers in order). */
static void fifo_remove(bc__redis_conn_t *c, bc__redis_req_t *q)
{
    bc__redis_req_t **pp = &c->head, *prev = NULL;
    while (*pp && *pp != q) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = q->next;
    if (c->tail == q)
        c->tail = prev;
    c->inflight--;
    /* relaxed: statistics. */
    atomic_fetch_sub_explicit(&c->r->n_inflight, 1, memory_order_relaxed);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

#define RESP_STACK 2048 /* requests up to this size are formatted on the stack */

/* Write what hiredis buffered for c now, instead of on the loop's next turn: the command leaves
 * on the thread that ran the task (io.c, direct writes). A partial write or a dropped link
 * leaves work that the loop must notice. */
static void conn_flush(bc_io_t *io, bc_io_flush_t *f)
{
    bc__redis_conn_t *c = bc_container_of(f, bc__redis_conn_t, flush);
    redisAsyncContext *ac = c->ac;
    if (ac == NULL || !c->ready)
        return;
    redisAsyncHandleWrite(ac);
    if (c->ac != ac || sdslen(ac->c.obuf) > 0)
        bc_io_need_wake(io);
}

/* Put q on the wire of c (which has a context). On a refused send (context closing) the
 * caller's request is answered DISCONNECTED here. */
static void conn_send(bc__redis_conn_t *c, bc__redis_req_t *q)
{
    q->deadline_ms = bc_now_ms() + (uint64_t)c->r->conf.timeout_ms;
    /* Our own RESP formatting: one pass into a stack buffer, which hiredis appends to its output
     * buffer (redisAsyncCommandArgv grows an sds argument by argument, then copies it). Larger
     * requests, rare, take hiredis's way. */
    char cmd[RESP_STACK];
    int rc;
    if (bc_resp_len(q->argc, q->argvlen) <= sizeof cmd)
        rc = redisAsyncFormattedCommand(c->ac, on_reply, q, cmd,
                                        bc_resp_write(cmd, q->argc, q->argv, q->argvlen));
    else
        rc = redisAsyncCommandArgv(c->ac, on_reply, q, q->argc, q->argv, q->argvlen);
    if (rc != REDIS_OK) {
        if (q->kind == BC__RK_USER || q->kind == BC__RK_EVALSHA)
            bc__redis_answer(c->r, q, BC_REDIS_DISCONNECTED, NULL);
        bc__redis_req_free(q);
        return;
    }
    /* A ready connection's deadline timer always runs, and never later than this command's
     * deadline (every deadline is now + the same timeout): nothing here needs the loop. */
    bool timer_ok = c->ready && ev_is_active(&c->timer);
    fifo_push(c, q);
    c->flush.fn = conn_flush;
    bc_io_defer_flush(c->r->io, &c->flush);
    if (timer_ok)
        bc_io_task_clean(c->r->io);
}

static void send_internal(bc__redis_conn_t *c, int kind, int argc, const char **argv,
                          unsigned flags)
{
    bc__redis_req_t *q = bc__redis_req_make(c->r, kind, argc, argv, NULL, 0, NULL, NULL);
    q->flags = (uint8_t)flags;
    if (flags & BC__RF_HANDSHAKE)
        c->hs_pending++;
    conn_send(c, q);
}

/* Drop every context: pending callbacks then see c->ac != ac and only answer their caller. */
/* A worker looking for work found a ready connection's socket readable (io.c, worker reads):
 * read it as the loop's read watcher would. Replies answer their requests and pub/sub
 * messages post to actors; a write a reply causes (a NOSCRIPT resend) is flushed by the
 * worker. What the sleeping loop must notice makes it look: the link dropped, or commands in
 * flight without a running deadline timer. */
static void conn_poll(bc_io_t *io, bc_io_poll_t *p)
{
    bc__redis_conn_t *c = bc_container_of(p, bc__redis_conn_t, poll);
    redisAsyncContext *ac = c->ac;
    if (ac == NULL || !c->ready || !c->r->up)
        return; /* still readable: the loop's level-triggered watcher reads it */
    redisAsyncHandleRead(ac);
    if (c->ac != ac || !c->ready || !c->r->up || (c->head && !ev_is_active(&c->timer)))
        bc_io_need_wake(io);
}

static void teardown_all(bc_redis_t *r)
{
    struct ev_loop *loop = bc_io_loop(r->io);
    if (r->nready == r->nconns || r->up) {
        /* relaxed: statistics. */
        atomic_store_explicit(&r->connected, 0, memory_order_relaxed);
    }
    r->up = false;
    r->nready = 0;
    for (int i = 0; i < r->nconns; i++) {
        bc__redis_conn_t *c = &r->conns[i];
        redisAsyncContext *ac = c->ac;
        bc_io_poll_del(r->io, &c->poll); /* before hiredis closes the socket */
        c->ac = NULL;
        c->connected = c->ready = false;
        c->hs_pending = 0;
        ev_timer_stop(loop, &c->timer);
        /* The in-flight requests belong to hiredis now; their callbacks answer them.
         * relaxed: statistics. */
        atomic_fetch_sub_explicit(&r->n_inflight, c->inflight, memory_order_relaxed);
        c->head = c->tail = NULL;
        c->inflight = 0;
        if (ac)
            redisAsyncFree(ac); /* deferred by hiredis if we are inside one of its callbacks */
    }
}

/* A failure of the link: tear down, let the breaker decide, schedule the next attempt. */
static void link_fail(bc_redis_t *r, bool connecting, bc_breaker_reason_t reason, const char *err)
{
    if (r->closed_io || r->retry_armed)
        return;
    char msg[BC_BREAKER_ERRLEN];
    snprintf(msg, sizeof msg, "%s", err && *err ? err : "Connection closed");
    connecting = connecting || !r->up;
    teardown_all(r);
    uint64_t now = bc_now_ms();
    pthread_mutex_lock(&r->lock);
    bc_breaker_action_t a = connecting ? bc_breaker_on_connect_failed(&r->breaker, now, msg)
                                       : bc_breaker_on_disconnected(&r->breaker, now, msg, reason);
    pthread_mutex_unlock(&r->lock);
    if (a.what == BC_BREAKER_RECONNECT_AFTER) {
        struct ev_loop *loop = bc_io_loop(r->io);
        ev_timer_set(&r->retry, (double)a.delay_ms / 1000.0, 0.0);
        ev_timer_start(loop, &r->retry);
        r->retry_armed = true;
    }
}

static void on_clock(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bc_redis_t *r = w->data;
    if (r->up && r->conns[0].ac) {
        const char *argv[] = {"TIME"};
        send_internal(&r->conns[0], BC__RK_TIME, 1, argv, 0);
    }
}

static void flush_queue(bc_redis_t *r)
{
    bc__redis_req_t *q = r->qhead;
    r->qhead = r->qtail = NULL;
    for (int i = 0; i < BC_REDIS_CLASS_COUNT; i++) {
        r->qcount[i] = 0;
        atomic_store_explicit(&r->n_queued[i], 0, memory_order_relaxed); /* statistics */
    }
    while (q) {
        bc__redis_req_t *next = q->next;
        bc__redis_dispatch(r, q);
        q = next;
    }
}

static void on_all_ready(bc_redis_t *r)
{
    pthread_mutex_lock(&r->lock);
    bc_breaker_on_connected(&r->breaker, bc_now_ms());
    pthread_mutex_unlock(&r->lock);
    r->up = true;
    /* relaxed: statistics. */
    atomic_store_explicit(&r->connected, 1, memory_order_relaxed);
    struct ev_loop *loop = bc_io_loop(r->io);
    if (!ev_is_active(&r->clock)) {
        ev_timer_set(&r->clock, BC__REDIS_TIME_REFRESH_S, BC__REDIS_TIME_REFRESH_S);
        ev_timer_start(loop, &r->clock);
    }
    bc__redis_sub_restore(r);
    flush_queue(r);
}

static void check_ready(bc__redis_conn_t *c)
{
    if (c->ready || !c->connected || c->hs_pending > 0)
        return;
    c->ready = true;
    bc_io_poll_add(c->r->io, &c->poll, c->ac->c.fd); /* -EINVAL when worker reads are off */
    ev_timer_stop(bc_io_loop(c->r->io), &c->timer);
    if (c->head || c->r->conf.timeout_ms >= IDLE_TIMER_MIN_MS)
        arm(c, c->head ? c->head->deadline_ms : bc_now_ms() + (uint64_t)c->r->conf.timeout_ms);
    if (++c->r->nready == c->r->nconns)
        on_all_ready(c->r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    bc__redis_conn_t *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        link_fail(c->r, true, BC_BREAKER_REASON_CONNECT_FAILED, ac->errstr);
        return;
    }
    c->connected = true;
    check_ready(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    bc__redis_conn_t *c = ac->data;
    if (c->ac != ac)
        return; /* we dropped it ourselves */
    bc_io_poll_del(c->r->io, &c->poll);
    c->ac = NULL; /* hiredis frees it after this callback */
    link_fail(c->r, false, BC_BREAKER_REASON_CONN_LOST,
              status == REDIS_OK || ac->errstr[0] == '\0' ? "Connection closed" : ac->errstr);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bc__redis_conn_t *c = w->data;
    bc_redis_t *r = c->r;
    if (c->ac == NULL)
        return;
    if (!c->ready) {
        link_fail(r, true, BC_BREAKER_REASON_CONNECT_FAILED, "Connection timed out");
        return;
    }
    bc__redis_req_t *q = c->head;
    if (q == NULL) {
        /* Idle: keep running, so a command sent without the loop (io.c, direct writes) finds
         * a timer that fires no later than its deadline. Not for very short timeouts, whose
         * commands wake the loop instead (conn_send). */
        if (r->conf.timeout_ms >= IDLE_TIMER_MIN_MS)
            arm(c, bc_now_ms() + (uint64_t)r->conf.timeout_ms);
        return;
    }
    if (q->deadline_ms > bc_now_ms()) {
        arm(c, q->deadline_ms);
        return;
    }
    /* Answer the oldest now; hiredis keeps the block until its (NULL) callback. */
    q->flags |= BC__RF_TIMED_OUT;
    if (q->kind == BC__RK_USER || q->kind == BC__RK_EVALSHA)
        bc__redis_answer(r, q, BC_REDIS_TIMEOUT, NULL);
    char msg[96];
    snprintf(msg, sizeof msg, "Command timed out after %dms", r->conf.timeout_ms);
    link_fail(r, false, BC_BREAKER_REASON_TIMEOUT, msg);
}

static bool conn_start(bc__redis_conn_t *c)
{
    bc_redis_t *r = c->r;
    const bc_redis_conf_t *cf = &r->conf;
    redisAsyncContext *ac = cf->unix_path ? redisAsyncConnectUnix(cf->unix_path)
                                          : redisAsyncConnect(cf->host, cf->port);
    if (ac == NULL)
        abort(); /* out of memory */
    if (ac->err) {
        char msg[BC_BREAKER_ERRLEN];
        snprintf(msg, sizeof msg, "%s", ac->errstr);
        redisAsyncFree(ac);
        link_fail(r, true, BC_BREAKER_REASON_CONNECT_FAILED, msg);
        return false;
    }
    ac->data = c;
    c->ac = ac;
    redisLibevAttach(bc_io_loop(r->io), ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    arm(c, bc_now_ms() + (uint64_t)cf->timeout_ms); /* connect timeout until ready */
    if (cf->password) {
        const char *argv[3] = {"AUTH", cf->username ? cf->username : cf->password, cf->password};
        send_internal(c, BC__RK_AUTH, cf->username ? 3 : 2, argv, BC__RF_HANDSHAKE);
    }
    if (cf->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", cf->db);
        const char *argv[2] = {"SELECT", db};
        send_internal(c, BC__RK_SELECT, 2, argv, BC__RF_HANDSHAKE);
    }
    if (!c->sub) {
        const char *argv[1] = {"TIME"};
        send_internal(c, BC__RK_TIME, 1, argv, BC__RF_HANDSHAKE);
    }
    return c->ac != NULL;
}

void bc__redis_connect_all(bc_redis_t *r)
{
    ev_timer_stop(bc_io_loop(r->io), &r->retry);
    r->retry_armed = false;
    for (int i = 0; i < r->nconns && !r->retry_armed && !r->closed_io; i++)
        if (!conn_start(&r->conns[i]))
            break;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bc_redis_t *r = w->data;
    r->retry_armed = false;
    if (!r->closed_io)
        bc__redis_connect_all(r);
}

void bc__redis_conn_init(bc_redis_t *r)
{
    ev_timer_init(&r->retry, on_retry, 0.0, 0.0);
    r->retry.data = r;
    ev_timer_init(&r->clock, on_clock, 0.0, 0.0);
    r->clock.data = r;
    for (int i = 0; i < r->nconns; i++) {
        ev_timer_init(&r->conns[i].timer, on_conn_timer, 0.0, 0.0);
        r->conns[i].timer.data = &r->conns[i];
        r->conns[i].poll.fn = conn_poll;
        r->conns[i].poll.slot = -1;
        r->conns[i].poll.fd = -1;
    }
}

static void set_time(bc_redis_t *r, bc__redis_req_t *q, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    int64_t redis_ms = strtoll(rep->element[0]->str, NULL, 10) * 1000 +
                       strtoll(rep->element[1]->str, NULL, 10) / 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t rtt_ms = (int64_t)((bc_now_ns() - q->submit_ns) / 1000000u);
    int64_t local_mid = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - rtt_ms / 2;
    /* relaxed: one self-contained value; time_known's release publishes it first time. */
    atomic_store_explicit(&r->offset_ms, redis_ms - local_mid, memory_order_relaxed);
    /* release: a reader that sees time_known == 1 sees the offset stored above. */
    atomic_store_explicit(&r->time_known, 1, memory_order_release);
}

static bool is_noscript(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ERROR && rep->len >= 8 && memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    bc__redis_req_t *q = priv;
    bc__redis_conn_t *c = ac->data;
    bc_redis_t *r = c->r;
    redisReply *rep = reply;
    bool live = c->ac == ac;
    if (live)
        fifo_remove(c, q);
    bool user = q->kind == BC__RK_USER || q->kind == BC__RK_EVALSHA;
    if (rep == NULL || !live || (q->flags & BC__RF_TIMED_OUT)) {
        if (user && !(q->flags & BC__RF_TIMED_OUT))
            bc__redis_answer(r, q, r->closed_io ? BC_REDIS_SHUTDOWN : BC_REDIS_DISCONNECTED, NULL);
        bc__redis_req_free(q);
        return;
    }
    if (q->flags & BC__RF_HANDSHAKE)
        c->hs_pending--;
    switch (q->kind) {
    case BC__RK_EVALSHA:
        if (is_noscript(rep) && !(q->flags & BC__RF_RETRIED)) {
            const bc__redis_script_t *s = &r->scripts[q->script_id];
            const char *argv[3] = {"SCRIPT", "LOAD", s->lua};
            size_t lens[3] = {6, 4, s->len};
            bc__redis_req_t *load =
                bc__redis_req_make(r, BC__RK_LOAD, 3, argv, lens, 0, NULL, NULL);
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&r->n_reloads, 1, memory_order_relaxed);
            q->flags |= BC__RF_RETRIED;
            conn_send(c, load);
            conn_send(c, q);
            return;
        }
        /* fallthrough */
    case BC__RK_USER:
        bc__redis_answer(r, q, rep->type == REDIS_REPLY_ERROR ? BC_REDIS_ERROR : BC_REDIS_OK, rep);
        break;
    case BC__RK_AUTH:
    case BC__RK_SELECT:
        if (rep->type == REDIS_REPLY_ERROR) {
            char msg[BC_BREAKER_ERRLEN];
            snprintf(msg, sizeof msg, "%s failed: %s", q->kind == BC__RK_AUTH ? "AUTH" : "SELECT",
                     rep->str);
            bc_log(BC_LOG_ERROR, "Redis %s (%s)", msg, r->target);
            bc__redis_req_free(q);
            link_fail(r, true, BC_BREAKER_REASON_CONNECT_FAILED, msg);
            return;
        }
        break;
    case BC__RK_TIME:
        set_time(r, q, rep);
        break;
    default:
        break;
    }
    bc__redis_req_free(q);
    if (c->ac == ac && !c->ready)
        check_ready(c);
}

void bc__redis_dispatch(bc_redis_t *r, bc__redis_req_t *q)
{
    if (r->up) {
        bc__redis_conn_t *c;
        if (q->reply_to) {
            uintptr_t h = (uintptr_t)q->reply_to;
            h ^= h >> 17;
            c = &r->conns[(h * 0x9E3779B97F4A7C15ull >> 32) % (uint64_t)r->conf.pool_size];
        } else {
            c = &r->conns[r->rr++ % (unsigned)r->conf.pool_size];
        }
        conn_send(c, q);
        return;
    }
    const bc_redis_queue_policy_t *p = &r->conf.queue[q->cls];
    if (p->mode == BC_REDIS_FAIL_FAST) {
        bc__redis_answer(r, q, BC_REDIS_UNAVAILABLE, NULL);
        bc__redis_req_free(q);
        return;
    }
    if (r->qcount[q->cls] >= p->max_queued) {
        bc__redis_answer(r, q, BC_REDIS_QUEUE_FULL, NULL);
        bc__redis_req_free(q);
        return;
    }
    q->next = NULL;
    if (r->qtail)
        r->qtail->next = q;
    else
        r->qhead = q;
    r->qtail = q;
    r->qcount[q->cls]++;
    /* relaxed: statistics. */
    atomic_store_explicit(&r->n_queued[q->cls], r->qcount[q->cls], memory_order_relaxed);
}

void bc__redis_conn_shutdown(bc_redis_t *r)
{
    struct ev_loop *loop = bc_io_loop(r->io);
    ev_timer_stop(loop, &r->retry);
    ev_timer_stop(loop, &r->clock);
    r->retry_armed = false;
    for (int i = 0; i < r->nconns; i++)
        bc_io_cancel_flush(r->io, &r->conns[i].flush); /* r may be freed once this returns */
    teardown_all(r);
}
