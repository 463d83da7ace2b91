/* test_reaper.c - the reaper, escalation, work transfer and the work API against a real
 * redis-server (PROTOCOL §4.4-4.6; original-implementation.md §10.3 H2-H5).
 *
 * Hubs here use Node-compatible staleness (120 s) with a short scan period, so a stale
 * coordinator collects its three warnings in about a second and a half instead of 30 s.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"
#include "hub.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static bc_hub_t *reaper_hub(env_t *e, uint32_t scan_ms, uint32_t warnings, int heartbeats)
{
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(e->redis);
    o.secret = SECRET;
    o.stale_ms = 120000;
    o.scan_ms = scan_ms;
    o.warnings = warnings;
    o.heartbeats = heartbeats;
    bc_hub_t *h = NULL;
    char err[256];
    if (bc_hub_create(e->rt, &o, &h, err, sizeof err) != 0)
        fail_msg("bc_hub_create: %s", err);
    assert_int_equal(bc_hub_wait_ready(h, 10000), 0);
    return h;
}

static void up(env_t *e, uint32_t scan_ms)
{
    e->redis = bc_test_redis_start(NULL);
    e->rt = bc_test_runtime(2);
    e->hub = reaper_hub(e, scan_ms, 3, 1);
}

static long long now_ms(env_t *e)
{
    redisReply *r = bc_test_redis_cmd(e->redis, "TIME");
    assert_non_null(r);
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

static void set(env_t *e, const char *key, const char *val)
{
    redisReply *r = bc_test_redis_cmd(e->redis, "SET %s %s", key, val);
    assert_non_null(r);
    freeReplyObject(r);
}

static void stale_heartbeat(env_t *e, const char *id, long long age_ms, const char *swarm)
{
    char key[128], val[512];
    long long t = now_ms(e) - age_ms;
    snprintf(key, sizeof key, "blocking:heartbeat:%s", id);
    if (swarm)
        snprintf(val, sizeof val,
                 "{\"coordinatorId\":\"%s\",\"timestamp\":%lld,\"lastHeartbeat\":%lld,"
                 "\"sequence\":1,\"iteration\":0,\"status\":\"alive\",\"state\":\"waiting\","
                 "\"swarmId\":\"%s\"}",
                 id, t, t, swarm);
    else
        snprintf(val, sizeof val,
                 "{\"coordinatorId\":\"%s\",\"timestamp\":%lld,\"lastHeartbeat\":%lld,"
                 "\"sequence\":1,\"iteration\":0}",
                 id, t, t);
    set(e, key, val);
}

static bool exists(env_t *e, const char *key)
{
    return redis_int(e, "EXISTS %s", key) == 1;
}

static bool wait_stat(bc_hub_t *h, size_t off, uint64_t want, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        bc_hub_stats_t st;
        bc_hub_stats(h, &st);
        if (*(uint64_t *)((char *)&st + off) >= want)
            return true;
        usleep(10000);
    }
    return false;
}
#define WAIT_STAT(h, field, want, ms) wait_stat(h, offsetof(bc_hub_stats_t, field), want, ms)

static bool wait_gone(env_t *e, const char *key, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (!exists(e, key))
            return true;
        usleep(10000);
    }
    return false;
}

static bool wait_exists(env_t *e, const char *key, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (exists(e, key))
            return true;
        usleep(10000);
    }
    return false;
}

static long long count_keys(env_t *e, const char *pattern)
{
    long long n = 0;
    char cur[32] = "0";
    do {
        redisReply *r = bc_test_redis_cmd(e->redis, "SCAN %s MATCH %s COUNT 1000", cur, pattern);
        assert_non_null(r);
        snprintf(cur, sizeof cur, "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cur, "0") != 0);
    return n;
}

/* H2: a stale foreign (Node) heartbeat is declared dead after three warnings; its heartbeat,
 * ACK, signal and idempotency keys go; ghost-10's marker stays. */
static void test_h2_stale_foreign_heartbeat(void **state)
{
    (void)state;
    env_t e;
    up(&e, 300);
    stale_heartbeat(&e, "ghost-1", 130000, NULL);
    set(&e, "blocking:ack:ghost-1:s1", "x");
    set(&e, "blocking:signal:ghost-1", "x");
    set(&e, "blocking:idempotency:ghost-1:coord-z:completion:1:1", "1");
    set(&e, "blocking:idempotency:coord-z:ghost-1:completion:1:3", "1");
    set(&e, "blocking:idempotency:ghost-10:coord-z:completion:1:2", "1");
    set(&e, "coordinator:activity:ghost-1",
        "{\"coordinatorId\":\"ghost-1\",\"lastActivity\":1,\"iteration\":0}");
    assert_true(WAIT_STAT(e.hub, escalations, 1, 30000));
    assert_true(wait_gone(&e, "blocking:heartbeat:ghost-1", 10000));
    assert_true(wait_gone(&e, "blocking:idempotency:coord-z:ghost-1:completion:1:3", 10000));
    assert_false(exists(&e, "blocking:ack:ghost-1:s1"));
    assert_false(exists(&e, "blocking:signal:ghost-1"));
    assert_false(exists(&e, "blocking:idempotency:ghost-1:coord-z:completion:1:1"));
    assert_false(exists(&e, "coordinator:activity:ghost-1"));
    assert_true(exists(&e, "blocking:idempotency:ghost-10:coord-z:completion:1:2"));
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(st.reaper_stale >= 3); /* three warnings before death */
    assert_int_equal(st.dead_detected, 1);
    /* cleanup:stats is written once the cleanup's deletions have answered, a round trip after
     * the keys above were seen gone: wait for it too. */
    assert_true(wait_exists(&e, "cleanup:stats", 10000));
    char *stats = redis_str(&e, "GET %s", "cleanup:stats");
    assert_non_null(stats);
    assert_non_null(strstr(stats, "\"cleanedCoordinators\":[\"ghost-1\"]"));
    free(stats);
    env_down(&e);
}

/* A coordinator in the registry whose heartbeat key has expired is stale ("expired"). A
 * fresh heartbeat is left alone, and a finished coordinator's terminal heartbeat is not death. */
static void test_expired_registered(void **state)
{
    (void)state;
    env_t e;
    up(&e, 300);
    char score[32];
    snprintf(score, sizeof score, "%lld", now_ms(&e) - 1000);
    redisReply *r = bc_test_redis_cmd(e.redis, "ZADD blocking:registry %s coord-crash", score);
    freeReplyObject(r);
    stale_heartbeat(&e, "coord-fresh", 1000, "S");
    char val[256];
    snprintf(val, sizeof val,
             "{\"coordinatorId\":\"coord-done\",\"timestamp\":%lld,\"lastHeartbeat\":%lld,"
             "\"sequence\":9,\"iteration\":3,\"status\":\"alive\",\"state\":\"completed\"}",
             now_ms(&e) - 200000, now_ms(&e) - 200000);
    set(&e, "blocking:heartbeat:coord-done", val);
    assert_true(WAIT_STAT(e.hub, escalations, 1, 30000));
    assert_true(wait_exists(&e, "coordinator:escalation:coord-crash", 5000));
    /* Wait for its cleanup (the registry entry goes), then check the others were spared. */
    for (int i = 0; i < 500 && redis_int(&e, "ZSCORE blocking:registry %s", "coord-crash") != -999;
         i++)
        usleep(10000);
    assert_true(exists(&e, "blocking:heartbeat:coord-fresh"));
    assert_true(exists(&e, "blocking:heartbeat:coord-done"));
    assert_false(exists(&e, "coordinator:escalation:coord-fresh"));
    assert_false(exists(&e, "coordinator:escalation:coord-done"));
    env_down(&e);
}

/* H3 + H4: an activity record older than 300 s fires within one check (counters move, the key
 * is deleted) even next to a poisoned record. */
static void test_h3_h4_activity_timeout(void **state)
{
    (void)state;
    env_t e;
    up(&e, 300);
    char val[256];
    snprintf(
        val, sizeof val,
        "{\"coordinatorId\":\"ghost-2\",\"lastActivity\":%lld,\"iteration\":5,\"phase\":\"p\"}",
        now_ms(&e) - 310000);
    set(&e, "coordinator:activity:ghost-2", val);
    set(&e, "coordinator:activity:test", "{}");
    set(&e, "coordinator:activity:bad-json", "{not json");
    set(&e, "blocking:heartbeat:junk-9", "{\"timestamp\":\"soon\"}"); /* no numeric time */
    set(&e, "blocking:heartbeat:bad:id", "{}");                       /* not an id */
    assert_true(wait_gone(&e, "coordinator:activity:ghost-2", 10000));
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(st.activity_timeouts >= 1);
    assert_true(st.reaper_bad_keys >= 4);
    assert_int_equal(st.dead_detected, 0); /* unreadable is skipped, not declared dead */
    assert_true(exists(&e, "blocking:heartbeat:junk-9"));
    assert_true(exists(&e, "coordinator:activity:test")); /* skipped, not deleted */
    env_down(&e);
}

/* A wait cycle among activity records is reported within one scan, once. */
static void test_deadlock(void **state)
{
    (void)state;
    env_t e;
    up(&e, 300);
    char val[256];
    long long t = now_ms(&e);
    snprintf(val, sizeof val,
             "{\"coordinatorId\":\"dl-b\",\"lastActivity\":%lld,\"iteration\":1,\"phase\":\"p\","
             "\"waitingFor\":[\"dl-c\"]}",
             t);
    set(&e, "coordinator:activity:dl-b", val);
    snprintf(val, sizeof val,
             "{\"coordinatorId\":\"dl-c\",\"lastActivity\":%lld,\"iteration\":1,\"phase\":\"p\","
             "\"waitingFor\":[\"dl-a\",\"x-1\"]}",
             t);
    set(&e, "coordinator:activity:dl-c", val);
    /* dl-a is one of ours: it records its wait through the API. */
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "dl-a";
    o.phase = "p";
    bc_coord_t *a = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &a, err, sizeof err), 0);
    const char *bad[] = {"no:colons"};
    assert_int_equal(bc_coord_set_waiting_for(a, bad, 1), -EINVAL);
    const char *waits[] = {"dl-b"};
    assert_int_equal(bc_coord_set_waiting_for(a, waits, 1), 0);
    assert_true(WAIT_STAT(e.hub, deadlocks, 1, 10000));
    char *d = redis_str(&e, "GET %s", "coordinator:deadlock:dl-a");
    assert_non_null(d);
    assert_non_null(strstr(d, "dl-a"));
    assert_non_null(strstr(d, "dl-b"));
    assert_non_null(strstr(d, "dl-c"));
    free(d);
    long long ttl = redis_int(&e, "TTL %s", "coordinator:deadlock:dl-a");
    assert_true(ttl > 0 && ttl <= 600);
    /* Several more scans: reported once. */
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    uint64_t c0 = st.reaper_cycles;
    assert_true(WAIT_STAT(e.hub, reaper_cycles, c0 + 3, 10000));
    bc_hub_stats(e.hub, &st);
    assert_int_equal(st.deadlocks, 1);
    char *rec = redis_str(&e, "GET %s", "coordinator:activity:dl-a");
    assert_non_null(rec);
    assert_non_null(strstr(rec, "{\"coordinatorId\":\"dl-a\",\"lastActivity\":"));
    assert_non_null(strstr(rec, "\"phase\":\"p\",\"waitingFor\":[\"dl-b\"]}"));
    free(rec);
    assert_true(redis_int(&e, "TTL %s", "coordinator:activity:dl-a") > 500);
    bc_coord_release(a);
    env_down(&e);
}

/* ---------------------------------------------------------------- H5 and races */

typedef struct {
    bc_test_redis_t *redis;
    char channel[128];
    int messages;
    char first[512];
    _Atomic int stop;
    redisContext *ctx;
} sub_t;

static void *subscriber(void *arg)
{
    sub_t *s = arg;
    redisReply *r = redisCommand(s->ctx, "SUBSCRIBE %s", s->channel);
    freeReplyObject(r);
    struct timeval tv = {0, 100000};
    redisSetTimeout(s->ctx, tv);
    while (!s->stop) {
        void *rep = NULL;
        if (redisGetReply(s->ctx, &rep) != REDIS_OK) {
            if (s->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                s->ctx->err = 0;
                continue;
            }
            break;
        }
        redisReply *m = rep;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            strcmp(m->element[0]->str, "message") == 0) {
            if (s->messages++ == 0)
                snprintf(s->first, sizeof s->first, "%s", m->element[2]->str);
        }
        freeReplyObject(m);
    }
    return NULL;
}

/* H5 with two racing reapers: exactly one escalation and one PUBLISH; the replacement is
 * spawned in the winner's process; the work item moves with transferredFrom, assignedTo and
 * status "transferred"; the old key is gone; escalation and spawn records carry their members
 * and a TTL of about an hour. */
static void test_h5_escalation_race(void **state)
{
    (void)state;
    env_t e;
    up(&e, 200);
    bc_hub_t *h2 = reaper_hub(&e, 200, 3, 1);
    sub_t s = {.redis = e.redis};
    snprintf(s.channel, sizeof s.channel, "swarm:S:coordinator:dead");
    s.ctx = bc_test_redis_connect(e.redis, 1);
    pthread_t th;
    pthread_create(&th, NULL, subscriber, &s);
    usleep(200000);
    char err[200];
    assert_int_equal(bc_work_assign(e.hub, "S", "ghost-1", "w1", "{\"task\":\"review\",\"n\":1}",
                                    NULL, NULL, err, sizeof err),
                     0);
    assert_true(wait_exists(&e, "coordinator:work:S:ghost-1:w1", 5000));
    stale_heartbeat(&e, "ghost-1", 130000, NULL); /* no swarm: the work key names it */
    assert_true(wait_exists(&e, "coordinator:work:S:ghost-1-r1:w1", 30000));
    assert_true(wait_gone(&e, "blocking:heartbeat:ghost-1", 10000));
    usleep(1500000); /* more cycles of both reapers: nobody escalates again */
    s.stop = 1;
    pthread_join(th, NULL);
    redisFree(s.ctx);
    assert_int_equal(s.messages, 1);
    assert_non_null(strstr(s.first, "\"deadCoordinatorId\":\"ghost-1\""));
    assert_non_null(strstr(s.first, "\"swarmId\":\"S\""));
    assert_non_null(strstr(s.first, "\"action\":\"spawn_replacement\""));
    assert_non_null(strstr(s.first, "\"timestamp\":"));
    bc_hub_stats_t a, b;
    bc_hub_stats(e.hub, &a);
    bc_hub_stats(h2, &b);
    assert_int_equal(a.escalations + b.escalations, 1);
    assert_int_equal(a.work_transferred + b.work_transferred, 1);
    /* The replacement lives in the winner's process. */
    bc_hub_t *winner = a.escalations ? e.hub : h2;
    bc_hub_stats_t w;
    bc_hub_stats(winner, &w);
    assert_int_equal(w.coordinators, 1);
    assert_int_equal(count_keys(&e, "coordinator:spawn:*"), 1);

    char *esc = redis_str(&e, "GET %s", "coordinator:escalation:ghost-1");
    assert_non_null(esc);
    assert_non_null(strstr(esc, "{\"deadCoordinatorId\":\"ghost-1\",\"swarmId\":\"S\","));
    assert_non_null(strstr(esc, "\"reason\":\"coordinator_timeout\",\"status\":\"escalated\"}"));
    free(esc);
    long long ttl = redis_int(&e, "TTL %s", "coordinator:escalation:ghost-1");
    assert_true(ttl > 3500 && ttl <= 3600);
    char *sp = redis_str(&e, "GET %s", "coordinator:spawn:ghost-1-r1");
    assert_non_null(sp);
    assert_non_null(strstr(sp, "{\"newCoordinatorId\":\"ghost-1-r1\",\"replacesCoordinatorId\":"
                               "\"ghost-1\",\"swarmId\":\"S\",\"timestamp\":"));
    assert_non_null(strstr(sp, "\"status\":\"pending\",\"priority\":\"high\"}"));
    free(sp);
    ttl = redis_int(&e, "TTL %s", "coordinator:spawn:ghost-1-r1");
    assert_true(ttl > 3500 && ttl <= 3600);
    char *wk = redis_str(&e, "GET %s", "coordinator:work:S:ghost-1-r1:w1");
    assert_non_null(wk);
    assert_non_null(strstr(wk,
                           "\"workId\":\"w1\",\"assignedTo\":\"ghost-1-r1\","
                           "\"status\":\"transferred\",\"data\":{\"task\":\"review\",\"n\":1}"));
    assert_non_null(strstr(wk, "\"epoch\":2,\"transferredFrom\":\"ghost-1\",\"transferredAt\":"));
    free(wk);
    ttl = redis_int(&e, "TTL %s", "coordinator:work:S:ghost-1-r1:w1");
    assert_true(ttl > 3000 && ttl <= 3600);
    assert_false(exists(&e, "coordinator:work:S:ghost-1:w1"));
    bc_hub_destroy(h2);
    env_down(&e);
}

/* ---------------------------------------------------------------- the work API */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int status;
    uint64_t epoch;
    char err[200];
    size_t n;
    char ids[16][72];
    uint64_t epochs[16];
} wres_t;

static void wres_init(wres_t *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void on_done(void *arg, int status, uint64_t epoch, const char *err)
{
    wres_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = status;
    w->epoch = epoch;
    snprintf(w->err, sizeof w->err, "%s", err ? err : "");
    w->done++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void on_list(void *arg, int status, const bc_work_item_t *items, size_t n, const char *err)
{
    wres_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = status;
    snprintf(w->err, sizeof w->err, "%s", err ? err : "");
    w->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        snprintf(w->ids[i], sizeof w->ids[i], "%s", items[i].work_id);
        w->epochs[i] = items[i].epoch;
    }
    w->done++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static int wres_wait(wres_t *w, int want)
{
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < 1000 && w->done < want; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    int st = w->done >= want ? w->status : -ETIMEDOUT;
    pthread_mutex_unlock(&w->lock);
    return st;
}

/* Assign, list, complete; a second completion and a duplicate assignment are refused; bad
 * input is refused before any Redis traffic. */
static void test_work_api(void **state)
{
    (void)state;
    env_t e;
    up(&e, 30000);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "worker-1";
    o.swarm_id = "S";
    bc_coord_t *c = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &c, err, sizeof err), 0);
    wres_t w;
    wres_init(&w);
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job-1", "[1,2]", on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 1), 0);
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job-1", NULL, on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 2), -EEXIST);
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job-2", NULL, on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 3), 0);
    /* Bad input. */
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job:3", NULL, NULL, NULL, err, sizeof err),
        -EINVAL);
    assert_non_null(strstr(err, "work id"));
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job-3", "{bad", NULL, NULL, err, sizeof err),
        -EINVAL);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(
        bc_work_assign(e.hub, "S x", "worker-1", "job-3", NULL, NULL, NULL, err, sizeof err),
        -EINVAL);

    wres_t l;
    wres_init(&l);
    assert_int_equal(bc_work_list(c, on_list, &l), 0);
    assert_int_equal(wres_wait(&l, 1), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.epochs[0], 1);

    wres_t d;
    wres_init(&d);
    assert_int_equal(bc_work_complete(c, "job-1", 1, on_done, &d, err, sizeof err), 0);
    assert_int_equal(wres_wait(&d, 1), 0);
    assert_false(exists(&e, "coordinator:work:S:worker-1:job-1"));
    char *rec = redis_str(&e, "GET %s", "coordinator:work:done:S:job-1");
    assert_non_null(rec);
    assert_non_null(strstr(rec, "\"completedBy\":\"worker-1\",\"epoch\":1"));
    free(rec);
    assert_int_equal(bc_work_complete(c, "job-1", 1, on_done, &d, err, sizeof err), 0);
    assert_int_equal(wres_wait(&d, 2), -ESTALE);
    /* A wrong epoch is fenced too, and the item stays. */
    assert_int_equal(bc_work_complete(c, "job-2", 7, on_done, &d, err, sizeof err), 0);
    assert_int_equal(wres_wait(&d, 3), -ESTALE);
    assert_true(exists(&e, "coordinator:work:S:worker-1:job-2"));
    /* An assignment of a completed id is refused. */
    assert_int_equal(
        bc_work_assign(e.hub, "S", "worker-1", "job-1", NULL, on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 4), -EEXIST);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_int_equal(st.work_completed, 1);
    assert_int_equal(st.work_refused, 2);
    bc_coord_release(c);
    env_down(&e);
}

/* A coordinator falsely declared dead (its process stalled: no heartbeats) comes back and
 * tries to complete an item that has moved: refused, and the item stays with the replacement. */
static void test_false_dead_fenced(void **state)
{
    (void)state;
    env_t e;
    up(&e, 200);
    /* The stalled process: a hub that writes no heartbeats, so it looks dead. */
    bc_hub_t *stalled = reaper_hub(&e, 30000, 3, 0);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "slow-1";
    o.swarm_id = "S";
    bc_coord_t *c = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(stalled, &o, &c, err, sizeof err), 0);
    wres_t w;
    wres_init(&w);
    assert_int_equal(
        bc_work_assign(e.hub, "S", "slow-1", "job-9", NULL, on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 1), 0);
    stale_heartbeat(&e, "slow-1", 125000, "S");
    assert_true(wait_exists(&e, "coordinator:work:S:slow-1-r1:job-9", 30000));
    wres_t d;
    wres_init(&d);
    assert_int_equal(bc_work_complete(c, "job-9", 1, on_done, &d, err, sizeof err), 0);
    assert_int_equal(wres_wait(&d, 1), -ESTALE);
    assert_true(exists(&e, "coordinator:work:S:slow-1-r1:job-9"));
    assert_false(exists(&e, "coordinator:work:done:S:job-9"));
    bc_coord_release(c);
    bc_hub_destroy(stalled);
    env_down(&e);
}

/* The reaper's process dies between two items of a transfer (BC_REAPER_CRASH_AFTER_ITEMS=1 in
 * `blockcoord reap --once`): the next reaper takes over once the lease expires and finishes;
 * every item exists exactly once. */
static void test_crash_mid_transfer(void **state)
{
    (void)state;
    env_t e;
    e.redis = bc_test_redis_start(NULL);
    e.rt = bc_test_runtime(2);
    /* Our own reaper starts only after the crash: scans every 200 ms from then. */
    char err[200];
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(e.redis);
    o.secret = SECRET;
    o.reaper = 0;
    assert_int_equal(bc_hub_create(e.rt, &o, &e.hub, err, sizeof err), 0);
    assert_int_equal(bc_hub_wait_ready(e.hub, 10000), 0);
    const char *items[] = {"a-1", "a-2", "a-3", "a-4"};
    wres_t w;
    wres_init(&w);
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            bc_work_assign(e.hub, "S", "ghost-7", items[i], NULL, on_done, &w, err, sizeof err), 0);
    assert_int_equal(wres_wait(&w, 4), 0);
    stale_heartbeat(&e, "ghost-7", 130000, "S");

    const char *bdir = getenv("BC_BUILD_DIR");
    assert_non_null(bdir);
    char exe[512];
    snprintf(exe, sizeof exe, "%s/blockcoord", bdir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("REDIS_URL", bc_test_redis_url(e.redis), 1);
        setenv("BLOCKING_COORDINATION_SECRET", SECRET, 1);
        setenv("BC_REAPER_CRASH_AFTER_ITEMS", "1", 1);
        setenv("REAPER_STALE_MS", "120000", 1);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, exe, "reap", "--once", (char *)NULL);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 137);
    assert_int_equal(count_keys(&e, "coordinator:work:S:ghost-7:*"), 3); /* one moved */
    assert_int_equal(count_keys(&e, "coordinator:work:S:ghost-7-r1:*"), 1);

    bc_hub_t *next = reaper_hub(&e, 200, 1, 1);
    for (int i = 0; i < 2000 && count_keys(&e, "coordinator:work:S:ghost-7:*") > 0; i++)
        usleep(10000);
    assert_int_equal(count_keys(&e, "coordinator:work:S:ghost-7:*"), 0);
    /* Each item exists exactly once, wherever it went. */
    for (int i = 0; i < 4; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "coordinator:work:S:*:%s", items[i]);
        assert_int_equal(count_keys(&e, pat), 1);
    }
    bc_hub_stats_t st;
    bc_hub_stats(next, &st);
    assert_true(st.work_transferred >= 3);
    bc_hub_destroy(next);
    env_down(&e);
}

/* H7: Redis stops and comes back: the hub reconnects without giving up, and every hosted
 * coordinator's coordinator:circuit:<id> reads "closed" soon after the recovery. */
static void test_h7_circuit_key(void **state)
{
    (void)state;
    env_t e;
    up(&e, 30000);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-h7";
    bc_coord_t *c = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &c, err, sizeof err), 0);
    assert_true(wait_exists(&e, "blocking:heartbeat:coord-h7", 10000));
    bc_test_redis_stop(e.redis);
    sleep(3);
    bc_test_redis_restart(e.redis);
    assert_true(wait_exists(&e, "coordinator:circuit:coord-h7", 20000));
    char *v = redis_str(&e, "GET %s", "coordinator:circuit:coord-h7");
    assert_non_null(v);
    assert_string_equal(v, "closed");
    free(v);
    long long ttl = redis_int(&e, "TTL %s", "coordinator:circuit:coord-h7");
    assert_true(ttl > 0 && ttl <= 300);
    assert_true(wait_exists(&e, "blocking:heartbeat:coord-h7", 10000));
    bc_coord_release(c);
    env_down(&e);
}

/* H1's last clause: a Lua reaper of the Node kind (SCAN the heartbeats, MGET, take the first
 * "timestamp":digits by text match, compare with Redis TIME against a 600 s threshold) checks our
 * heartbeat and finds it fresh. The script below does what original-implementation.md §3.9
 * says that reaper does. */
static void test_h1_lua_reaper_reads_heartbeat(void **state)
{
    (void)state;
    env_t e;
    up(&e, 30000);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-h";
    bc_coord_t *c = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &c, err, sizeof err), 0);
    assert_true(wait_exists(&e, "blocking:heartbeat:coord-h", 10000));
    static const char lua[] =
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1])\n"
        "local keys = redis.call('SCAN', '0', 'MATCH', 'blocking:heartbeat:*', 'COUNT', 10000)[2]\n"
        "local checked, stale = 0, 0\n"
        "if #keys > 0 then\n"
        "  local vals = redis.call('MGET', unpack(keys))\n"
        "  for i, v in ipairs(vals) do\n"
        "    if v then\n"
        "      local ts = string.match(v, '\"timestamp\":(%d+)')\n"
        "      checked = checked + 1\n"
        "      if (not ts) or (now - math.floor(tonumber(ts) / 1000) > tonumber(ARGV[1])) then\n"
        "        stale = stale + 1\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return {checked, stale}\n";
    redisReply *r = bc_test_redis_cmd(e.redis, "EVAL %s 0 600", lua);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 0);
    freeReplyObject(r);
    /* And the text match finds the same number as the JSON member. */
    char *hb = redis_str(&e, "GET %s", "blocking:heartbeat:coord-h");
    assert_non_null(hb);
    assert_non_null(strstr(hb, "{\"coordinatorId\":\"coord-h\",\"timestamp\":"));
    free(hb);
    bc_coord_release(c);
    env_down(&e);
}

/* Bad reaper configuration is refused with a message naming the variable. */
static void test_bad_env(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(1);
    const char *vars[] = {"REAPER_STALE_MS", "REAPER_SCAN_MS", "REAPER_WARNINGS",
                          "HEARTBEAT_TTL_S"};
    const char *bad[] = {"-5", "abc", "0", "99999999999"};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++) {
            setenv(vars[i], bad[j], 1);
            bc_hub_opts_t o;
            bc_hub_opts_init(&o);
            o.redis_url = "redis://127.0.0.1:1";
            o.secret = SECRET;
            bc_hub_t *h = NULL;
            char err[256] = "";
            assert_int_equal(bc_hub_create(rt, &o, &h, err, sizeof err), -EINVAL);
            assert_non_null(strstr(err, vars[i]));
            unsetenv(vars[i]);
        }
    }
    bc_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_env),
        cmocka_unit_test(test_work_api),
        cmocka_unit_test(test_h2_stale_foreign_heartbeat),
        cmocka_unit_test(test_expired_registered),
        cmocka_unit_test(test_h3_h4_activity_timeout),
        cmocka_unit_test(test_deadlock),
        cmocka_unit_test(test_h5_escalation_race),
        cmocka_unit_test(test_false_dead_fenced),
        cmocka_unit_test(test_crash_mid_transfer),
        cmocka_unit_test(test_h7_circuit_key),
        cmocka_unit_test(test_h1_lua_reaper_reads_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
