/* test_redis.c - the Redis connection layer (runtime/redis*.c) against a real redis-server
 * started by tests/redis_harness.c: pipelined round trips from many actors (order and tags),
 * many-channel subscriptions, SIGKILL + restart mid-stream (breaker ladder, restored
 * subscriptions, exactly one answer per command), Redis absent at start-up (per-class failure
 * statuses, then recovery), AUTH refused (logged cause, retries, then the right password),
 * NOSCRIPT transparency, Redis TIME and per-command timeouts. Log lines are checked by
 * redirecting stderr (bc_log's only sink) into a temporary file.
 */
#include "harness.h"
#include "redis_harness.c"

#include "internal.h"
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSG_START 1u
#define MAX_TAGS (1u << 20)

typedef struct {
    bc_redis_t *r;
    int idx;
    uint64_t to_send;     /* MSG_START: INCR key:<idx> this many times */
    uint64_t next_tag;    /* actor only */
    long long last_int;   /* actor only */
    _Atomic uint64_t bad; /* order, tag or value violations */
    _Atomic uint64_t replies;
    _Atomic uint64_t status[BC_REDIS_STATUS_COUNT];
    _Atomic uint64_t pubsub, pubsub_bad;
    _Atomic long long last_value; /* last integer reply */
    uint8_t *seen;                /* per tag, when non-NULL */
} coll_t;

static void coll_fn(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    coll_t *c = state;
    if (msg->type == MSG_START) {
        char key[32];
        snprintf(key, sizeof key, "key:%d", c->idx);
        const char *argv[2] = {"INCR", key};
        for (uint64_t i = 0; i < c->to_send; i++)
            assert_int_equal(bc_redis_cmd(c->r, self, i, BC_REDIS_CLASS_OTHER, 2, argv, NULL), 0);
    } else if (msg->type == BC_MSG_REDIS_REPLY) {
        bc_redis_reply_msg_t *m = (bc_redis_reply_msg_t *)msg;
        if (c->seen) {
            /* relaxed (all counters below but `replies`): read after `replies`. */
            if (m->tag >= MAX_TAGS || c->seen[m->tag]++ != 0)
                atomic_fetch_add_explicit(&c->bad, 1, memory_order_relaxed);
        } else if (c->to_send) {
            /* Test 1: tags in order, INCR values 1, 2, 3, ... */
            if (m->tag != c->next_tag++ || m->status != BC_REDIS_OK || m->reply == NULL ||
                m->reply->type != BC_REPLY_INTEGER || m->reply->integer != (long long)m->tag + 1)
                atomic_fetch_add_explicit(&c->bad, 1, memory_order_relaxed);
        }
        if (m->reply && m->reply->type == BC_REPLY_INTEGER)
            atomic_store_explicit(&c->last_value, m->reply->integer, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->status[m->status], 1, memory_order_relaxed);
        /* release: the main thread reads seen[] after seeing the count. */
        atomic_fetch_add_explicit(&c->replies, 1, memory_order_release);
    } else if (msg->type == BC_MSG_REDIS_PUBSUB) {
        bc_redis_pubsub_msg_t *m = (bc_redis_pubsub_msg_t *)msg;
        const char *ch = m->data, *pl = m->data + m->channel_len + 1;
        int owner = -1;
        if (sscanf(ch, "ch:%d:", &owner) != 1)
            owner = -2;
        if ((owner != c->idx && owner != -2) || strcmp(ch, pl) != 0 || strlen(ch) != m->channel_len)
            atomic_fetch_add_explicit(&c->pubsub_bad, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->pubsub, 1, memory_order_release);
    }
}

/* ---------------------------------------------------------------- helpers */

/* acquire: pairs with the collector's release on its reply/pubsub counters. */
static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_acquire);
}

static long long ld_value(coll_t *c)
{
    /* relaxed: read after the reply count was seen (acquire). */
    return atomic_load_explicit(&c->last_value, memory_order_relaxed);
}

static bc_runtime_t *new_runtime(void)
{
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    bc_runtime_t *rt = NULL;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    return rt;
}

static void conf_for(bc_redis_conf_t *c, const char *url)
{
    char err[256];
    bc_redis_conf_init(c);
    assert_int_equal(bc_redis_conf_parse_url(c, url, err, sizeof err), 0);
    unsigned d[4] = {100, 200, 400, 800};
    c->breaker.attempts = 4;
    for (int i = 0; i < 4; i++)
        c->breaker.delay_ms[i] = d[i];
    c->breaker.probe_interval_ms = 1000;
    c->timeout_ms = 2000;
}

static bc_redis_stats_t stats(bc_redis_t *r)
{
    bc_redis_stats_t s;
    bc_redis_stats(r, &s);
    return s;
}

static int wait_connected(bc_redis_t *r, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 10) {
        if (stats(r).connected)
            return 1;
        bc_test_sleep_ms(10);
    }
    return 0;
}

static int wait_count(_Atomic uint64_t *v, uint64_t want, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 10) {
        /* acquire: pairs with the collector's release. */
        if (atomic_load_explicit(v, memory_order_acquire) >= want)
            return 1;
        bc_test_sleep_ms(10);
    }
    return atomic_load_explicit(v, memory_order_acquire) >= want;
}

static coll_t *new_coll(bc_redis_t *r, int idx)
{
    coll_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->r = r;
    c->idx = idx;
    return c;
}

static void cmd1(bc_redis_t *r, bc_actor_t *to, uint64_t tag, bc_redis_class_t cls, const char *a0,
                 const char *a1, const char *a2)
{
    const char *argv[3] = {a0, a1, a2};
    int argc = a2 ? 3 : a1 ? 2 : 1;
    assert_int_equal(bc_redis_cmd(r, to, tag, cls, argc, argv, NULL), 0);
}

static long long numsub(bc_test_redis_t *h, const char *ch)
{
    redisReply *rep = bc_test_redis_cmd(h, "PUBSUB NUMSUB %s", ch);
    long long n = -1;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
        n = rep->element[1]->integer;
    if (rep)
        freeReplyObject(rep);
    return n;
}

static int wait_numsub(bc_test_redis_t *h, const char *ch, long long want, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 20) {
        if (numsub(h, ch) == want)
            return 1;
        bc_test_sleep_ms(20);
    }
    return 0;
}

/* stderr capture: bc_log writes each line with one write(2) on fd 2. */
static int cap_saved = -1;
static char cap_path[64];

static void capture_start(void)
{
    snprintf(cap_path, sizeof cap_path, "/tmp/bc-test-redis-log-XXXXXX");
    int fd = mkstemp(cap_path);
    assert_true(fd >= 0);
    fflush(stderr);
    cap_saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_read(void)
{
    FILE *f = fopen(cap_path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int wait_log(const char *needle, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 20) {
        if (strstr(capture_read(), needle))
            return 1;
        bc_test_sleep_ms(20);
    }
    return 0;
}

/* Restore stderr and echo what was captured (so failures stay readable). */
static void capture_stop(void)
{
    if (cap_saved < 0)
        return;
    fflush(stderr);
    dup2(cap_saved, 2);
    close(cap_saved);
    cap_saved = -1;
    const char *s = capture_read();
    if (getenv("BC_TEST_VERBOSE"))
        fputs(s, stderr);
    unlink(cap_path);
}

/* ---------------------------------------------------------------- tests */

/* Direct writes (runtime/io.c): an actor that sends one command at a time, each after the
 * previous reply, has its commands written by the worker at the end of its turn while the I/O
 * thread sleeps. Every reply arrives, in order, with the right value, with direct writes on and
 * off; on, they happen and are counted, off, never. Then Redis is paused
 * and one command sent that way still times out: the loop's deadline timer covers it. */
typedef struct {
    bc_redis_t *r;
    uint64_t n, next;
    _Atomic uint64_t done, bad, timeouts;
} pp_t;

static void pp_send(pp_t *p, bc_actor_t *self)
{
    const char *argv[2] = {"INCR", "pp"};
    assert_int_equal(bc_redis_cmd(p->r, self, p->next, BC_REDIS_CLASS_OTHER, 2, argv, NULL), 0);
}

static void pp_fn(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    pp_t *p = state;
    if (msg->type == MSG_START) {
        pp_send(p, self);
    } else if (msg->type == BC_MSG_REDIS_REPLY) {
        bc_redis_reply_msg_t *m = (bc_redis_reply_msg_t *)msg;
        /* relaxed: counters read by the main thread after `done`. */
        if (m->status == BC_REDIS_TIMEOUT)
            atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
        else if (m->tag != p->next || m->status != BC_REDIS_OK || m->reply == NULL ||
                 m->reply->type != BC_REPLY_INTEGER || m->reply->integer != (long long)p->next + 1)
            atomic_fetch_add_explicit(&p->bad, 1, memory_order_relaxed);
        p->next++;
        /* release: pairs with the main thread's acquire. */
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        if (p->next < p->n)
            pp_send(p, self);
    }
}

/* A client on rt, connected (up to 10 s). */
static bc_redis_t *connected(bc_runtime_t *rt, const bc_redis_conf_t *conf)
{
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, conf, &r), 0);
    assert_true(wait_connected(r, 10000));
    return r;
}

/* Two workers, direct writes and worker reads on or off, an I/O thread that never polls (it
 * sleeps between replies, so a worker finds it asleep) and never runs an actor's turn itself
 * (io_run off: the replies it reads go to the workers, whose reads and writes are tested
 * here; test_timer covers io_run), and a client connected on it. A worker reads only while
 * it spins, and the default spin (50 us) is shorter than a round trip under TSan on a loaded
 * machine: CI saw no worker read in 500 messages, twice. The workers spin 5 ms here, which
 * covers it, so the counts the tests check do not depend on the machine's speed. */
static bc_redis_t *sleepy_io_client(bc_test_redis_t *h, int direct, int poll, bc_runtime_t **rt,
                                    bc_redis_conf_t *conf)
{
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    o.spin_us = 5000;
    o.io_direct = direct ? 1 : -1;
    o.io_poll = poll ? 1 : -1;
    o.io_spin_us = -1;
    o.io_run = -1;
    *rt = NULL;
    assert_int_equal(bc_runtime_create(&o, rt), 0);
    conf_for(conf, bc_test_redis_url(h));
    return connected(*rt, conf);
}

static void sleepy_io_client_free(bc_actor_t *a, bc_redis_t *r, bc_runtime_t *rt,
                                  bc_redis_conf_t *conf)
{
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    bc_redis_conf_free(conf);
}

/* Tries of a run whose counts depend on timing (a worker reads only what it finds ready while
 * it spins): a machine loaded enough (TSan, suites in parallel) can leave a try without a
 * single worker read, so a count of 0 is tried again, and only 0 every time fails. */
#define TIMING_TRIES 5
/* Run ONCE (an expression: true when its timing-dependent counts were seen) until it is true,
 * at most TIMING_TRIES times. */
#define TIMING_RETRY(once, what)                                                                   \
    for (int try_ = 1; !(once); try_++) {                                                          \
        assert_true(try_ < TIMING_TRIES);                                                          \
        fprintf(stderr, "%s: a count that depends on timing was 0; again\n", what);                \
    }

/* One ping-pong run; returns whether its timing-dependent counts were seen (the others are
 * asserted here). */
static bool ping_pong_once(bc_test_redis_t *h, int direct)
{
    bc_runtime_t *rt;
    bc_redis_conf_t conf;
    bc_redis_t *r = sleepy_io_client(h, direct, 1, &rt, &conf);
    redisReply *rep = bc_test_redis_cmd(h, "DEL pp");
    freeReplyObject(rep);
    pp_t p = {.r = r, .n = bc_test_scaled(3000, 500)};
    bc_actor_t *a = bc_spawn(rt, pp_fn, &p);
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), MSG_START)), 0);
    assert_true(wait_count(&p.done, p.n, 60000));
    assert_int_equal(ld(&p.bad), 0);
    assert_int_equal(ld(&p.timeouts), 0);
    bc_runtime_stats_t rs;
    bc_runtime_stats(rt, &rs);
    bool seen = true;
    if (direct) {
        assert_true(rs.io_direct_wakes <= rs.io_direct);
        /* How many: timing (each time the loop is still busy the worker hands over). */
        seen = rs.io_direct >= 1;
        /* Worker reads (on by default): the worker that wrote an INCR is still spinning when
         * its reply comes, and reads it itself (how often: timing). */
        seen = seen && rs.io_polled >= 1;
    } else {
        assert_int_equal(rs.io_direct, 0);
    }
    sleepy_io_client_free(a, r, rt, &conf);
    return seen;
}

static void run_ping_pong(bc_test_redis_t *h, int direct)
{
    TIMING_RETRY(ping_pong_once(h, direct), "ping-pong");
}

static void test_direct_writes(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    run_ping_pong(h, 1);
    run_ping_pong(h, 0);

    /* A command written by a worker while Redis does not answer still times out. */
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.timeout_ms = 300;
    bc_redis_t *r = connected(rt, &conf);
    bc_test_sleep_ms(700); /* the idle connection's deadline timer has fired and re-armed */
    pp_t p = {.r = r, .n = 1};
    bc_actor_t *a = bc_spawn(rt, pp_fn, &p);
    redisReply *rep = bc_test_redis_cmd(h, "CLIENT PAUSE 2500");
    assert_non_null(rep);
    freeReplyObject(rep);
    uint64_t t0 = bc_now_ms();
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), MSG_START)), 0);
    assert_true(wait_count(&p.done, 1, 10000));
    uint64_t took = bc_now_ms() - t0;
    assert_int_equal(ld(&p.timeouts), 1);
    assert_true(took < 2000); /* the pause would have answered it at 2.5 s */
    bc_runtime_stats_t rs;
    bc_runtime_stats(rt, &rs);
    assert_true(rs.io_direct >= 1);
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

/* Worker reads (runtime/io.c): an actor that publishes on a channel it subscribes to, one
 * message at a time, each after the previous one arrived. With worker reads on, the worker
 * that wrote the PUBLISH is still looking for work when the message comes back and reads the
 * subscriber's socket itself; every message arrives once, in order, with worker reads on and
 * off (off: never counted; direct writes off turns them off too). Then the subscriber's link is
 * killed under the flow: the client reconnects, restores the subscription, and the flow goes
 * on. */
#define WR_SYNC_TAG 7u

typedef struct {
    bc_redis_t *r;
    uint64_t n, next;
    bool urgent; /* each PUBLISH leaves at the end of its turn, as a signal's hint does */
    _Atomic uint64_t got, bad, ups;
    _Atomic int synced;
} wr_t;

static void wr_publish(wr_t *p, bc_actor_t *self)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)p->next);
    const char *argv[3] = {"PUBLISH", "wr:chan", v};
    assert_int_equal(bc_redis_cmd(p->r, self, 0, BC_REDIS_CLASS_OTHER, 3, argv, NULL), 0);
    if (p->urgent)
        bc_redis_urgent(p->r);
}

static void wr_fn(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    wr_t *p = state;
    if (msg->type == BC_MSG_REDIS_SYNC) {
        /* release: pairs with the main thread's acquire. */
        atomic_store_explicit(&p->synced, 1, memory_order_release);
    } else if (msg->type == MSG_START || msg->type == BC_MSG_REDIS_UP) {
        if (msg->type == BC_MSG_REDIS_UP)
            atomic_fetch_add_explicit(&p->ups, 1, memory_order_release);
        if (p->next < p->n)
            wr_publish(p, self); /* again after a reconnect: the last one may be lost */
    } else if (msg->type == BC_MSG_REDIS_PUBSUB) {
        bc_redis_pubsub_msg_t *m = (bc_redis_pubsub_msg_t *)msg;
        uint64_t v = strtoull(m->data + m->channel_len + 1, NULL, 10);
        if (v + 1 == p->next)
            return; /* the copy re-published after a reconnect also arrived */
        if (strcmp(m->data, "wr:chan") != 0 || v != p->next)
            /* relaxed: read by the main thread after `got`. */
            atomic_fetch_add_explicit(&p->bad, 1, memory_order_relaxed);
        p->next = v + 1;
        /* release: pairs with the main thread's acquire. */
        atomic_fetch_add_explicit(&p->got, 1, memory_order_release);
        if (p->next < p->n)
            wr_publish(p, self);
    }
}

/* One worker-reads run; returns whether its timing-dependent counts were seen (the others are
 * asserted here). */
static bool worker_reads_once(bc_test_redis_t *h, int direct, int poll, bool kill, bool urgent)
{
    bc_runtime_t *rt;
    bc_redis_conf_t conf;
    bc_redis_t *r = sleepy_io_client(h, direct, poll, &rt, &conf);
    wr_t p = {.r = r, .n = bc_test_scaled(3000, 500), .urgent = urgent};
    bc_actor_t *a = bc_spawn(rt, wr_fn, &p);
    const char *ch = "wr:chan";
    assert_int_equal(bc_redis_subscribe_sync(r, a, &ch, 1, WR_SYNC_TAG), 0);
    for (int t = 0; t < 1000 && !atomic_load_explicit(&p.synced, memory_order_acquire); t++)
        bc_test_sleep_ms(10);
    assert_true(atomic_load_explicit(&p.synced, memory_order_acquire));
    assert_int_equal(bc_redis_watch(r, a), 0);
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), MSG_START)), 0);
    if (kill) {
        assert_true(wait_count(&p.got, p.n / 3, 60000));
        redisReply *rep = bc_test_redis_cmd(h, "CLIENT KILL TYPE pubsub");
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_true(rep->integer >= 1);
        freeReplyObject(rep);
    }
    assert_true(wait_count(&p.got, p.n, 60000));
    assert_int_equal(ld(&p.bad), 0);
    bc_runtime_stats_t rs;
    bc_runtime_stats(rt, &rs);
    fprintf(stderr,
            "worker reads (direct %d, poll %d%s%s): %llu socket reads by workers, %llu of them "
            "carried, %llu looks after an urgent write, %llu messages\n",
            direct, poll, kill ? ", link killed" : "", urgent ? ", urgent" : "",
            (unsigned long long)rs.io_polled, (unsigned long long)rs.io_carried,
            (unsigned long long)rs.io_after_write, (unsigned long long)p.n);
    bool seen = true;
    if (direct && poll) {
        seen = rs.io_polled >= 1; /* how many: timing */
        /* The PUBLISH's reply and the message it publishes come back together, on the command
         * connection and the subscriber's. When one look finds both, the message is read first
         * and wakes the actor here; the reply waits for that turn (how often: timing). */
        seen = seen && rs.io_carried >= 1;
        /* Every urgent PUBLISH the worker wrote itself is followed by a look; the I/O thread
         * writes some of them (the loop was held), so not one per message. */
        assert_true(rs.io_after_write <= p.n + 1);
        if (urgent)
            seen = seen && rs.io_after_write >= 1;
        else
            assert_int_equal(rs.io_after_write, 0);
    } else {
        assert_int_equal(rs.io_polled, 0);
        assert_int_equal(rs.io_carried, 0);
        assert_int_equal(rs.io_after_write, 0);
    }
    if (kill)
        assert_true(ld(&p.ups) >= 2); /* the first when watching began, then the reconnect */
    sleepy_io_client_free(a, r, rt, &conf);
    return seen;
}

static void run_worker_reads(bc_test_redis_t *h, int direct, int poll, bool kill, bool urgent)
{
    TIMING_RETRY(worker_reads_once(h, direct, poll, kill, urgent), "worker reads");
}

static void test_worker_reads(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    run_worker_reads(h, 1, 1, false, false);
    run_worker_reads(h, 1, 0, false, false);
    run_worker_reads(h, 0, 1, false, false);
    run_worker_reads(h, 1, 1, true, false);
    run_worker_reads(h, 1, 1, false, true); /* reads after urgent writes */
    run_worker_reads(h, 1, 0, false, true); /* ... not with worker reads off */
    bc_test_redis_free(h);
}

static void test_round_trip(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.pool_size = 2;
    conf.timeout_ms = 20000;
    bc_redis_t *r = connected(rt, &conf);
    uint64_t total = bc_test_scaled(100000, 8000), per = total / 8;
    coll_t *cs[8];
    bc_actor_t *as[8];
    for (int i = 0; i < 8; i++) {
        cs[i] = new_coll(r, i);
        cs[i]->to_send = per;
        as[i] = bc_spawn(rt, coll_fn, cs[i]);
    }
    uint64_t t0 = bc_now_ns();
    for (int i = 0; i < 8; i++)
        assert_int_equal(bc_send(as[i], bc_msg_alloc(sizeof(bc_msg_t), MSG_START)), 0);
    for (int i = 0; i < 8; i++) {
        assert_true(wait_count(&cs[i]->replies, per, 40000));
        assert_int_equal(ld(&cs[i]->bad), 0);
        assert_int_equal(ld(&cs[i]->status[BC_REDIS_OK]), per);
    }
    double secs = (double)(bc_now_ns() - t0) / 1e9;
    bc_redis_stats_t s = stats(r);
    fprintf(stderr, "round trip: %llu commands in %.2f s (%.0f/s), max pipeline %llu\n",
            (unsigned long long)(per * 8), secs, (double)(per * 8) / secs,
            (unsigned long long)s.max_pipeline);
    assert_int_equal(s.replied[BC_REDIS_OK], per * 8);
    assert_true(s.max_pipeline > 1);
    assert_int_equal(s.in_flight, 0);
    /* The last INCR of each key equals the count. */
    redisReply *rep = bc_test_redis_cmd(h, "GET key:3");
    assert_non_null(rep);
    assert_int_equal(strtoull(rep->str, NULL, 10), per);
    freeReplyObject(rep);
    for (int i = 0; i < 8; i++)
        bc_actor_release(as[i]);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    for (int i = 0; i < 8; i++)
        free(cs[i]);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_subscribe_many(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    enum { N = 2000 };
    static char names[N][32];
    const char *ptr[N];
    coll_t *cs[4];
    bc_actor_t *as[4];
    for (int i = 0; i < 4; i++) {
        cs[i] = new_coll(r, i);
        as[i] = bc_spawn(rt, coll_fn, cs[i]);
    }
    /* Actors 0 and 1: 700 channels in one call (split 512 + 188); 2 and 3: 300 in 3 calls. */
    int k = 0, first[4];
    for (int a = 0; a < 4; a++) {
        int cnt = a < 2 ? 700 : 300;
        first[a] = k;
        for (int j = 0; j < cnt; j++, k++) {
            snprintf(names[k], sizeof names[k], "ch:%d:%d", a, j);
            ptr[k] = names[k];
        }
    }
    assert_int_equal(k, N);
    /* Half before the connection is up (restored at connect), half after. */
    assert_int_equal(bc_redis_subscribe(r, as[0], ptr + first[0], 700), 0);
    assert_int_equal(bc_redis_subscribe(r, as[1], ptr + first[1], 700), 0);
    assert_true(wait_connected(r, 10000));
    for (int a = 2; a < 4; a++)
        for (int b = 0; b < 3; b++)
            assert_int_equal(bc_redis_subscribe(r, as[a], ptr + first[a] + b * 100, 100), 0);
    for (int a = 0; a < 4; a++)
        assert_true(wait_numsub(h, names[first[a]], 1, 10000));
    assert_true(wait_numsub(h, names[N - 1], 1, 10000));
    assert_int_equal(stats(r).subscriptions, N);
    redisContext *pc = bc_test_redis_connect(h, 1);
    assert_non_null(pc);
    for (int i = 0; i < N; i++)
        redisAppendCommand(pc, "PUBLISH %s %s", names[i], names[i]);
    for (int i = 0; i < N; i++) {
        redisReply *rep = NULL;
        assert_int_equal(redisGetReply(pc, (void **)&rep), REDIS_OK);
        assert_int_equal(rep->integer, 1);
        freeReplyObject(rep);
    }
    for (int a = 0; a < 4; a++) {
        assert_true(wait_count(&cs[a]->pubsub, a < 2 ? 700 : 300, 10000));
        assert_int_equal(ld(&cs[a]->pubsub_bad), 0);
    }
    /* Unsubscribe actor 3's channels: no receiver any more. */
    assert_int_equal(bc_redis_unsubscribe(r, ptr + first[3], 300), 0);
    assert_true(wait_numsub(h, names[first[3] + 299], 0, 10000));
    assert_int_equal(stats(r).subscriptions, N - 300);
    redisFree(pc);
    for (int i = 0; i < 4; i++)
        bc_actor_release(as[i]);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    for (int i = 0; i < 4; i++)
        free(cs[i]);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_kill_restart(void **st)
{
    (void)st;
    bc_test_redis_opts_t ho = {0};
    bc_test_redis_t *h = bc_test_redis_start(&ho); /* TCP */
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.pool_size = 2;
    conf.timeout_ms = 1000;
    conf.queue[BC_REDIS_CLASS_SIGNAL].max_queued = 300;
    conf.queue[BC_REDIS_CLASS_OTHER].max_queued = 3000;
    capture_start();
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    coll_t *c = new_coll(r, 0), *sc = new_coll(r, 9);
    c->seen = calloc(MAX_TAGS, 1);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c), *sa = bc_spawn(rt, coll_fn, sc);
    assert_true(wait_connected(r, 10000));
    const char *chan[1] = {"restore-me"};
    assert_int_equal(bc_redis_subscribe(r, sa, chan, 1), 0);
    assert_true(wait_numsub(h, "restore-me", 1, 10000));
    uint64_t tag = 0, t0 = bc_now_ms(), reconnected_at = 0;
    bool killed = false, restarted = false;
    unsigned batch = (unsigned)bc_test_scaled(20, 4);
    while (tag + batch < MAX_TAGS) {
        uint64_t el = bc_now_ms() - t0;
        if (!killed && el >= 400) {
            /* A burst right before the kill, so that some commands are in flight. */
            for (unsigned i = 0; i < 50 * batch; i++, tag++)
                cmd1(r, a, tag, BC_REDIS_CLASS_ACK, "SET", "burst", "v");
            bc_test_redis_kill(h);
            killed = true;
        }
        if (killed && !restarted && el >= 2400) {
            bc_test_redis_restart(h);
            restarted = true;
        }
        if (restarted && reconnected_at == 0 && stats(r).connected)
            reconnected_at = bc_now_ms();
        if (reconnected_at && bc_now_ms() - reconnected_at > 300)
            break;
        if (el > 15000)
            break;
        for (unsigned i = 0; i < batch; i++, tag++) {
            char key[32];
            snprintf(key, sizeof key, "k%llu", (unsigned long long)(tag % 64));
            cmd1(r, a, tag, (bc_redis_class_t)(tag % 3 + 1 == 3 ? 0 : tag % 3 + 1), "SET", key,
                 "v");
        }
        bc_test_sleep_ms(2);
    }
    assert_true(reconnected_at != 0);
    /* Every command answered exactly once. */
    assert_true(wait_count(&c->replies, tag, 20000));
    bc_test_sleep_ms(100);
    assert_int_equal(ld(&c->replies), tag);
    assert_int_equal(ld(&c->bad), 0);
    for (uint64_t i = 0; i < tag; i++)
        assert_int_equal(c->seen[i], 1);
    uint64_t ok = ld(&c->status[BC_REDIS_OK]);
    uint64_t failed = ld(&c->status[BC_REDIS_DISCONNECTED]) + ld(&c->status[BC_REDIS_TIMEOUT]) +
                      ld(&c->status[BC_REDIS_UNAVAILABLE]) + ld(&c->status[BC_REDIS_QUEUE_FULL]);
    assert_int_equal(ok + failed, tag);
    assert_true(ok > 0);
    assert_true(ld(&c->status[BC_REDIS_UNAVAILABLE]) > 0);
    assert_true(ld(&c->status[BC_REDIS_QUEUE_FULL]) > 0);
    bc_redis_stats_t s = stats(r);
    assert_true(s.breaker.times_opened >= 1);
    assert_true(s.breaker.reconnections >= 1);
    assert_int_equal(s.breaker.state, BC_BREAKER_STATE_CLOSED);
    assert_int_equal(s.submitted, s.replied_total);
    /* The breaker walked its states, with the tutorial's lines. */
    assert_true(wait_log("Redis connection established", 100));
    assert_true(wait_log("Circuit breaker triggered (attempt 1/4)", 100));
    assert_true(wait_log("Retrying Redis operation in 100ms", 100));
    assert_true(wait_log("Circuit breaker triggered (attempt 4/4)", 100));
    assert_true(wait_log("Circuit breaker open: Redis unavailable", 100));
    assert_true(wait_log("Coordinator entering degraded mode", 100));
    assert_true(wait_log("Redis reconnected after", 100));
    /* The subscription came back. */
    assert_true(wait_numsub(h, "restore-me", 1, 10000));
    redisReply *rep = bc_test_redis_cmd(h, "PUBLISH restore-me restore-me");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    assert_true(wait_count(&sc->pubsub, 1, 10000));
    capture_stop();
    fprintf(stderr,
            "kill/restart: %llu commands: ok %llu, disconnected %llu, timeout %llu, "
            "unavailable %llu, queue_full %llu\n",
            (unsigned long long)tag, (unsigned long long)ok,
            (unsigned long long)ld(&c->status[BC_REDIS_DISCONNECTED]),
            (unsigned long long)ld(&c->status[BC_REDIS_TIMEOUT]),
            (unsigned long long)ld(&c->status[BC_REDIS_UNAVAILABLE]),
            (unsigned long long)ld(&c->status[BC_REDIS_QUEUE_FULL]));
    bc_actor_release(a);
    bc_actor_release(sa);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    free(c->seen);
    free(c);
    free(sc);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_absent_at_start(void **st)
{
    (void)st;
    bc_test_redis_opts_t ho = {0};
    bc_test_redis_t *h = bc_test_redis_start(&ho);
    bc_test_redis_kill(h); /* nothing listens on its port now */
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.queue[BC_REDIS_CLASS_SIGNAL].max_queued = 3;
    capture_start();
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    coll_t *c = new_coll(r, 0);
    c->seen = calloc(64, 1);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c);
    assert_true(wait_log("Circuit breaker triggered (attempt 1/4)", 5000));
    assert_true(wait_log("Redis error: Connection refused", 100));
    cmd1(r, a, 0, BC_REDIS_CLASS_HEARTBEAT, "SET", "hb", "1");
    for (uint64_t t = 1; t <= 5; t++)
        cmd1(r, a, t, BC_REDIS_CLASS_SIGNAL, "INCR", "sig", NULL);
    assert_true(wait_count(&c->replies, 3, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_UNAVAILABLE]), 1);
    assert_int_equal(ld(&c->status[BC_REDIS_QUEUE_FULL]), 2);
    assert_int_equal(stats(r).queued[BC_REDIS_CLASS_SIGNAL], 3);
    assert_true(wait_log("Circuit breaker open: Redis unavailable", 5000));
    assert_true(wait_log("Circuit breaker still open: probe failed", 5000));
    assert_false(stats(r).connected);
    bc_test_redis_restart(h);
    assert_true(wait_connected(r, 10000));
    assert_true(wait_count(&c->replies, 6, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 3);
    assert_int_equal(ld_value(c), 3); /* flushed in order: 1, 2, 3 */
    cmd1(r, a, 6, BC_REDIS_CLASS_HEARTBEAT, "INCR", "sig", NULL);
    assert_true(wait_count(&c->replies, 7, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 4);
    assert_true(wait_log("Redis reconnected after", 100));
    capture_stop();
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    free(c->seen);
    free(c);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_auth(void **st)
{
    (void)st;
    bc_test_redis_opts_t ho = {.unix_socket = 1, .password = "right-pass"};
    bc_test_redis_t *h = bc_test_redis_start(&ho);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.password = strdup("wrong-pass");
    capture_start();
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    coll_t *c = new_coll(r, 0);
    c->seen = calloc(64, 1);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c);
    assert_true(wait_log("Redis AUTH failed: WRONGPASS", 5000));
    cmd1(r, a, 0, BC_REDIS_CLASS_HEARTBEAT, "PING", NULL, NULL);
    assert_true(wait_count(&c->replies, 1, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_UNAVAILABLE]), 1);
    assert_true(wait_log("Circuit breaker triggered (attempt 3/4)", 5000));
    assert_false(stats(r).connected);
    assert_true(stats(r).breaker.triggers[BC_BREAKER_REASON_CONNECT_FAILED] >= 3);
    capture_stop();
    bc_redis_destroy(r);
    /* The right password works. */
    free(conf.password);
    conf.password = strdup("right-pass");
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    c->r = r;
    assert_true(wait_connected(r, 10000));
    cmd1(r, a, 1, BC_REDIS_CLASS_HEARTBEAT, "INCR", "n", NULL);
    assert_true(wait_count(&c->replies, 2, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 1);
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    free(c->seen);
    free(c);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_noscript(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    coll_t *c = new_coll(r, 0);
    c->seen = calloc(64, 1);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c);
    int id = bc_redis_script_register(r, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    assert_true(id >= 0);
    const char *args[2] = {"cnt", "5"};
    assert_true(wait_connected(r, 10000));
    assert_int_equal(bc_redis_evalsha(r, a, 0, BC_REDIS_CLASS_OTHER, id, 1, 2, args, NULL), 0);
    assert_true(wait_count(&c->replies, 1, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 1);
    assert_int_equal(ld_value(c), 5);
    redisReply *rep = bc_test_redis_cmd(h, "SCRIPT FLUSH");
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_int_equal(bc_redis_evalsha(r, a, 1, BC_REDIS_CLASS_OTHER, id, 1, 2, args, NULL), 0);
    assert_true(wait_count(&c->replies, 2, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 2);
    assert_int_equal(ld_value(c), 10);
    assert_true(stats(r).noscript_reloads >= 1);
    assert_int_equal(bc_redis_evalsha(r, a, 2, BC_REDIS_CLASS_OTHER, 99, 0, 0, NULL, NULL),
                     -EINVAL);
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    free(c->seen);
    free(c);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_time(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.db = 2; /* also exercises SELECT in the handshake */
    bc_redis_t *r = connected(rt, &conf);
    assert_int_equal(bc_redis_time_known(r), 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t local = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t d = (int64_t)bc_redis_now_ms(r) - local;
    assert_true(d > -5000 && d < 5000);
    assert_true(bc_redis_clock_offset_ms(r) > -5000 && bc_redis_clock_offset_ms(r) < 5000);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

/* Handles come and go for the runtime's whole life: no slot or memory runs
 * out (the runtime has 16 closer slots; 40 cycles would exhaust a leak). */
static void test_create_destroy_cycles(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    for (int i = 0; i < 40; i++) {
        bc_redis_t *r = NULL;
        assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
        if (i % 10 == 0)
            assert_true(wait_connected(r, 10000));
        bc_redis_destroy(r);
    }
    bc_runtime_destroy(rt);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

/* Requests are formatted by bc_resp_write up to RESP_STACK bytes and by hiredis above it
 * (redis_conn.c): binary values on both sides of that line reach Redis byte for byte. */
static void test_values_both_formatters(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    bc_redis_t *r = connected(rt, &conf);
    static const size_t sizes[] = {0, 1, 2000, 2047, 2048, 4096, 100000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    char *val = malloc(100000);
    assert_non_null(val);
    for (size_t i = 0; i < 100000; i++)
        val[i] = (char)(i * 131 + 7); /* every byte value, NULs and CRLFs included */
    char keys[N][32];
    for (size_t k = 0; k < N; k++) {
        snprintf(keys[k], sizeof keys[k], "fmt:%zu", sizes[k]);
        const char *argv[] = {"SET", keys[k], val};
        size_t lens[] = {3, strlen(keys[k]), sizes[k]};
        assert_int_equal(bc_redis_cmd(r, NULL, 0, BC_REDIS_CLASS_OTHER, 3, argv, lens), 0);
    }
    for (size_t k = 0; k < N; k++) {
        redisReply *rep = NULL;
        for (int t = 0; t < 500; t++) { /* the writes are in flight: up to 10 s */
            rep = bc_test_redis_cmd(h, "GET %s", keys[k]);
            if (rep && rep->type == REDIS_REPLY_STRING)
                break;
            if (rep)
                freeReplyObject(rep);
            rep = NULL;
            bc_test_sleep_ms(20);
        }
        assert_non_null(rep);
        assert_int_equal(rep->len, sizes[k]);
        if (sizes[k] > 0)
            assert_memory_equal(rep->str, val, sizes[k]);
        freeReplyObject(rep);
    }
    free(val);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

static void test_timeout(void **st)
{
    (void)st;
    bc_test_redis_t *h = bc_test_redis_start(NULL);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    conf.timeout_ms = 300;
    capture_start();
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    coll_t *c = new_coll(r, 0);
    c->seen = calloc(64, 1);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c);
    assert_true(wait_connected(r, 10000));
    redisReply *rep = bc_test_redis_cmd(h, "CLIENT PAUSE 1500");
    assert_non_null(rep);
    freeReplyObject(rep);
    cmd1(r, a, 0, BC_REDIS_CLASS_OTHER, "GET", "x", NULL);
    assert_true(wait_count(&c->replies, 1, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_TIMEOUT]), 1);
    assert_true(wait_log("Redis error: Command timed out after 300ms", 1000));
    /* The layer reconnects once the pause is over. */
    assert_true(wait_connected(r, 10000));
    cmd1(r, a, 1, BC_REDIS_CLASS_OTHER, "GET", "x", NULL);
    assert_true(wait_count(&c->replies, 2, 5000));
    assert_int_equal(ld(&c->status[BC_REDIS_OK]), 1);
    capture_stop();
    bc_actor_release(a);
    bc_redis_destroy(r);
    bc_runtime_destroy(rt);
    free(c->seen);
    free(c);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

/* Destroying the runtime with commands queued and subscriptions held answers SHUTDOWN and
 * frees everything (no bc_redis_destroy: the closer does it). */
static void test_runtime_closer(void **st)
{
    (void)st;
    bc_test_redis_opts_t ho = {0};
    bc_test_redis_t *h = bc_test_redis_start(&ho);
    bc_test_redis_kill(h);
    bc_runtime_t *rt = new_runtime();
    bc_redis_conf_t conf;
    conf_for(&conf, bc_test_redis_url(h));
    bc_redis_t *r = NULL;
    assert_int_equal(bc_redis_create(rt, &conf, &r), 0);
    assert_int_equal(bc_redis_create(rt, NULL, &r), -EINVAL);
    coll_t *c = new_coll(r, 0);
    bc_actor_t *a = bc_spawn(rt, coll_fn, c);
    const char *chan[1] = {"x"};
    assert_int_equal(bc_redis_subscribe(r, a, chan, 1), 0);
    for (int i = 0; i < 10; i++)
        cmd1(r, a, (uint64_t)i, BC_REDIS_CLASS_SIGNAL, "INCR", "x", NULL);
    assert_int_equal(bc_redis_cmd(r, a, 0, BC_REDIS_CLASS_COUNT, 1, chan, NULL), -EINVAL);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    free(c);
    bc_redis_conf_free(&conf);
    bc_test_redis_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_subscribe_many),
        cmocka_unit_test(test_kill_restart),
        cmocka_unit_test(test_absent_at_start),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_noscript),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_runtime_closer),
        cmocka_unit_test(test_create_destroy_cycles),
        cmocka_unit_test(test_direct_writes),
        cmocka_unit_test(test_worker_reads),
        cmocka_unit_test(test_values_both_formatters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
