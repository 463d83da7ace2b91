/* test_heartbeat.c - the heartbeat actor against a real redis-server: the §4.1 value (compact,
 * members in order, timestamp == lastHeartbeat, rising sequence, TTL refreshed), the registry,
 * the final heartbeat, many coordinators on one schedule, and an outage: writes skipped and
 * counted while Redis is stopped, resumed after the restart, the first one saying "degraded".
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"

#include <jansson.h>

/* A hub on r with a heartbeat every interval_ms (TTL 90 s, final TTL 60 s). */
static bc_hub_t *hb_hub(bc_runtime_t *rt, bc_test_redis_t *r, uint32_t interval_ms)
{
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(r);
    o.secret = SECRET;
    o.heartbeat_ms = interval_ms;
    o.heartbeat_ttl_s = 90;
    o.reaper = 0;
    bc_hub_t *h = NULL;
    char err[256];
    if (bc_hub_create(rt, &o, &h, err, sizeof err) != 0)
        fail_msg("bc_hub_create: %s", err);
    return h;
}

static bc_coord_t *spawn(bc_hub_t *h, const char *id, const char *swarm, const char *phase,
                         probe_t *p)
{
    probe_init(p, NULL, 600000);
    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    co.id = id;
    co.swarm_id = swarm;
    co.phase = phase;
    co.on_start = probe_on_start;
    co.arg = p;
    bc_coord_t *c = NULL;
    char err[256];
    assert_int_equal(bc_coord_spawn(h, &co, &c, err, sizeof err), 0);
    return c;
}

static char *get(bc_test_redis_t *r, const char *key)
{
    redisReply *x = bc_test_redis_cmd(r, "GET %s", key);
    char *s = x && x->type == REDIS_REPLY_STRING ? strdup(x->str) : NULL;
    freeReplyObject(x);
    return s;
}

static long long integer(bc_test_redis_t *r, const char *fmt, const char *a)
{
    redisReply *x = bc_test_redis_cmd(r, fmt, a);
    long long v = x && x->type == REDIS_REPLY_INTEGER ? x->integer : -999;
    freeReplyObject(x);
    return v;
}

static unsigned long long seq_of(const char *v)
{
    const char *p = v ? strstr(v, "\"sequence\":") : NULL;
    return p ? strtoull(p + 11, NULL, 10) : 0;
}

/* Wait (up to ms) until key holds a heartbeat with a sequence above `above`; its value. */
static char *wait_seq(bc_test_redis_t *r, const char *key, unsigned long long above, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 10) {
        char *v = get(r, key);
        if (v && seq_of(v) > above)
            return v;
        free(v);
        bc_test_sleep_ms(10);
    }
    fail_msg("%s: no heartbeat with a sequence above %llu within %u ms", key, above, ms);
    return NULL;
}

/* The §4.1 value: compact JSON, these members in this order, nothing else. */
static void check_shape(const char *v, const char *id, const char *swarm, const char *phase)
{
    json_error_t je;
    json_t *o = json_loads(v, 0, &je);
    assert_non_null(o);
    static const char *const order[] = {
        "coordinatorId", "timestamp", "lastHeartbeat", "sequence", "iteration",
        "status",        "state",     "pid",           "hostname", "signalsReceived",
        "signalsSent",   "swarmId",   "phase"};
    size_t want = swarm ? 13 : 11, i = 0;
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val)
    {
        assert_true(i < want);
        assert_string_equal(k, order[i]);
        i++;
    }
    assert_int_equal(i, want);
    /* Compact: re-encoding it in order, without spaces, gives the same bytes. */
    char *again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(again, v);
    free(again);
    assert_string_equal(json_string_value(json_object_get(o, "coordinatorId")), id);
    json_t *ts = json_object_get(o, "timestamp"), *last = json_object_get(o, "lastHeartbeat");
    assert_true(json_is_integer(ts) && json_is_integer(last));
    assert_true(json_integer_value(ts) == json_integer_value(last));
    assert_true(json_integer_value(ts) > 1600000000000LL); /* Unix ms */
    assert_true(json_is_integer(json_object_get(o, "pid")));
    assert_true(json_is_string(json_object_get(o, "hostname")));
    if (swarm) {
        assert_string_equal(json_string_value(json_object_get(o, "swarmId")), swarm);
        assert_string_equal(json_string_value(json_object_get(o, "phase")), phase);
    }
    json_decref(o);
}

/* Shape, sequence, TTL refresh, registry, stats, and the final heartbeat with its short TTL. */
static void test_heartbeat_value(void **state)
{
    (void)state;
    bc_test_redis_t *r = bc_test_redis_start(NULL);
    bc_runtime_t *rt = bc_test_runtime(2);
    bc_hub_t *h = hb_hub(rt, r, 200);
    probe_t p, q;
    bc_coord_t *c = spawn(h, "hb-shape", "swarm-7", "loop \"2\"\tof 3", &p);
    bc_coord_t *d = spawn(h, "hb-plain", NULL, NULL, &q);
    assert_true(probe_until(&p, pred_ready, NULL, 10000));
    assert_true(probe_until(&q, pred_ready, NULL, 10000));

    char *v1 = wait_seq(r, "blocking:heartbeat:hb-shape", 0, 10000);
    check_shape(v1, "hb-shape", "swarm-7", "loop \"2\"\tof 3");
    assert_non_null(strstr(v1, "\"status\":\"alive\""));
    char *v2 = wait_seq(r, "blocking:heartbeat:hb-shape", seq_of(v1), 10000);
    check_shape(v2, "hb-shape", "swarm-7", "loop \"2\"\tof 3");
    assert_true(seq_of(v2) > seq_of(v1));
    /* hb-plain waits from on_start on. Its first heartbeat may have been formatted before that
     * (state "running"), and a later one says so. */
    char *w = wait_seq(r, "blocking:heartbeat:hb-plain", 0, 10000);
    for (int beats = 0; beats < 50 && strstr(w, "\"state\":\"waiting\"") == NULL; beats++) {
        unsigned long long seq = seq_of(w);
        free(w);
        w = wait_seq(r, "blocking:heartbeat:hb-plain", seq, 10000);
    }
    check_shape(w, "hb-plain", NULL, NULL);
    assert_non_null(strstr(w, "\"state\":\"waiting\""));

    /* The TTL is the configured one, and every write sets it again. */
    long long ttl = integer(r, "TTL %s", "blocking:heartbeat:hb-shape");
    assert_true(ttl > 0 && ttl <= 90);
    assert_int_equal(integer(r, "EXPIRE %s 5", "blocking:heartbeat:hb-shape"), 1);
    free(wait_seq(r, "blocking:heartbeat:hb-shape", seq_of(v2), 10000));
    ttl = integer(r, "TTL %s", "blocking:heartbeat:hb-shape");
    assert_true(ttl > 5 && ttl <= 90);

    /* Registered while alive, with a score no older than its heartbeat. */
    redisReply *z = bc_test_redis_cmd(r, "ZSCORE blocking:registry %s", "hb-shape");
    assert_non_null(z);
    assert_int_equal(z->type, REDIS_REPLY_STRING);
    assert_true(strtoull(z->str, NULL, 10) >=
                strtoull(strstr(v1, "\"timestamp\":") + 12, NULL, 10));
    freeReplyObject(z);

    bc_hub_stats_t st;
    bc_hub_stats(h, &st);
    assert_true(st.heartbeats_on_time >= 3);
    assert_true(st.heartbeats_on_time + st.heartbeats_late <= st.heartbeats);
    assert_int_equal(st.heartbeat_failures, 0); /* connecting at start-up is no outage */

    /* The last heartbeat keeps the terminal state, with the short TTL, out of the registry. */
    bc_coord_set_state(c, BC_STATE_COMPLETED);
    bc_coord_stop(c);
    bc_coord_release(c);
    bc_coord_release(d);
    bc_hub_destroy(h);
    char *f = get(r, "blocking:heartbeat:hb-shape");
    assert_non_null(f);
    assert_non_null(strstr(f, "\"state\":\"completed\""));
    assert_true(seq_of(f) > seq_of(v2));
    ttl = integer(r, "TTL %s", "blocking:heartbeat:hb-shape");
    assert_true(ttl > 0 && ttl <= 60);
    char *g = get(r, "blocking:heartbeat:hb-plain");
    assert_non_null(strstr(g, "\"state\":\"stopping\""));
    assert_int_equal(integer(r, "ZCARD %s", "blocking:registry"), 0);
    free(v1);
    free(v2);
    free(w);
    free(f);
    free(g);
    bc_runtime_destroy(rt);
    bc_test_redis_free(r);
}

/* The first heartbeat value for id written to the AOF at or after byte `from`, or NULL. */
static char *aof_first_value(bc_test_redis_t *r, long from, const char *id)
{
    char path[512], key[128];
    snprintf(path, sizeof path, "%s/appendonlydir/appendonly.aof.1.incr.aof", bc_test_redis_dir(r));
    snprintf(key, sizeof key, "blocking:heartbeat:%s\r\n", id);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    char *buf = calloc(1, (size_t)len + 1);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    char *out = NULL;
    const char *k = from <= len ? strstr(buf + from, key) : NULL;
    if (k) {
        const char *v = strstr(k, "{\"coordinatorId\"");
        const char *e = v ? strstr(v, "\r\n") : NULL;
        if (e)
            out = strndup(v, (size_t)(e - v));
    }
    free(buf);
    return out;
}

static long aof_size(bc_test_redis_t *r)
{
    char path[512];
    snprintf(path, sizeof path, "%s/appendonlydir/appendonly.aof.1.incr.aof", bc_test_redis_dir(r));
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fclose(fp);
    return len;
}

/* Redis stops: heartbeats are skipped and counted, the process runs on. It comes back: they
 * resume at once, and the first one written (read back from the AOF) says "degraded"; the
 * ones after it say "alive" again. */
static void test_heartbeat_outage(void **state)
{
    (void)state;
    bc_test_redis_opts_t ro = {.unix_socket = 1, .appendonly = 1};
    bc_test_redis_t *r = bc_test_redis_start(&ro);
    bc_runtime_t *rt = bc_test_runtime(2);
    setenv("REDIS_BREAKER_DELAYS_MS", "200,200,200,200", 1);
    setenv("REDIS_BREAKER_PROBE_MS", "200", 1);
    bc_hub_t *h = hb_hub(rt, r, 200);
    unsetenv("REDIS_BREAKER_DELAYS_MS");
    unsetenv("REDIS_BREAKER_PROBE_MS");
    probe_t p;
    bc_coord_t *c = spawn(h, "hb-outage", NULL, NULL, &p);
    assert_true(probe_until(&p, pred_ready, NULL, 10000));
    char *before = wait_seq(r, "blocking:heartbeat:hb-outage", 1, 10000);
    assert_non_null(strstr(before, "\"status\":\"alive\""));

    bc_hub_stats_t st0, st1;
    bc_hub_stats(h, &st0);
    bc_test_redis_stop(r); /* clean: everything written so far is in the AOF */
    long mark = aof_size(r);
    for (unsigned t = 0; t < 20000; t += 50) { /* five intervals at least, generously bounded */
        bc_test_sleep_ms(50);
        bc_hub_stats(h, &st1);
        if (st1.heartbeat_failures >= st0.heartbeat_failures + 5)
            break;
    }
    assert_true(st1.heartbeat_failures >= st0.heartbeat_failures + 5);
    assert_int_equal(st1.waiting, 1); /* the coordinator runs on, still blocked in its wait */

    bc_test_redis_restart(r);
    char *after = wait_seq(r, "blocking:heartbeat:hb-outage", seq_of(before), 15000);
    free(after);
    char *first = aof_first_value(r, mark, "hb-outage");
    assert_non_null(first);
    assert_non_null(strstr(first, "\"status\":\"degraded\""));
    assert_true(seq_of(first) > seq_of(before));
    /* Once one is written, the next ones say "alive" again. */
    char *later = NULL;
    for (unsigned t = 0; t < 15000 && (later == NULL || !strstr(later, "\"alive\"")); t += 20) {
        free(later);
        bc_test_sleep_ms(20);
        later = get(r, "blocking:heartbeat:hb-outage");
    }
    assert_non_null(later);
    assert_non_null(strstr(later, "\"status\":\"alive\""));
    bc_hub_stats(h, &st1);
    assert_true(st1.heartbeats_late >= 1); /* the first one after the outage */

    bc_coord_release(c);
    bc_hub_destroy(h);
    free(before);
    free(first);
    free(later);
    bc_runtime_destroy(rt);
    bc_test_redis_free(r);
}

/* Many coordinators on one schedule: each is written, registered and rewritten; nothing fails. */
static void test_heartbeat_many(void **state)
{
    (void)state;
    size_t n = (size_t)bc_test_scaled(2000, 200);
    bc_test_redis_t *r = bc_test_redis_start(NULL);
    bc_runtime_t *rt = bc_test_runtime(2);
    bc_hub_t *h = hb_hub(rt, r, 300);
    probe_t *p = calloc(n, sizeof *p);
    bc_coord_t **c = calloc(n, sizeof *c);
    char id[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "hb-many-%zu", i);
        c[i] = spawn(h, id, "swarm-m", NULL, &p[i]);
    }
    /* Every coordinator's sequence reaches 3: written again and again by its slice. */
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "blocking:heartbeat:hb-many-%zu", i);
        free(wait_seq(r, id, 2, 30000));
    }
    assert_int_equal(integer(r, "ZCARD %s", "blocking:registry"), (long long)n);
    bc_hub_stats_t st;
    bc_hub_stats(h, &st);
    assert_int_equal(st.heartbeat_failures, 0);
    assert_true(st.heartbeats_on_time + st.heartbeats_late >= 3 * n);
    for (size_t i = 0; i < n; i++) {
        bc_coord_stop(c[i]);
        bc_coord_release(c[i]);
    }
    bc_hub_destroy(h);
    assert_int_equal(integer(r, "ZCARD %s", "blocking:registry"), 0);
    free(p);
    free(c);
    bc_runtime_destroy(rt);
    bc_test_redis_free(r);
}

static uint64_t tick_ms(bc_hub_t *h)
{
    bc_hub_stats_t st;
    bc_hub_stats(h, &st);
    return st.heartbeat_tick_ms;
}

/* The period is retargeted when it is off by more than a third (so that it does not flap), so
 * where it settles depends on the way the population went: within a third of `want`. */
static int near(uint64_t tick, uint64_t want)
{
    return tick * 4 >= want * 3 && tick * 3 <= want * 4;
}

/* Wait (up to 20 s) until the heartbeat timer's period is near `want` ms. */
static void wait_tick(bc_hub_t *h, uint64_t want, const char *when)
{
    for (unsigned t = 0; t < 20000 && !near(tick_ms(h), want); t += 10)
        bc_test_sleep_ms(10);
    if (!near(tick_ms(h), want))
        fail_msg("%s: heartbeat period %llu ms, expected %llu within a third", when,
                 (unsigned long long)tick_ms(h), (unsigned long long)want);
}

/* The timer's period follows the population: about 50 writes a tick (interval * 50 / n, within
 * 2..20 ms). With a 100 ms interval: 20 ms for a few coordinators, 100 * 50 / n for many, and
 * back to 20 when most of them stop. Off with heartbeats off. */
static void test_heartbeat_tick_follows(void **state)
{
    (void)state;
    size_t n = (size_t)bc_test_scaled(1000, 500); /* a 5 or 10 ms period */
    bc_test_redis_t *r = bc_test_redis_start(NULL);
    bc_runtime_t *rt = bc_test_runtime(2);
    bc_hub_t *h = hb_hub(rt, r, 100);
    assert_int_equal(tick_ms(h), 20);
    probe_t *p = calloc(n, sizeof *p);
    bc_coord_t **c = calloc(n, sizeof *c);
    char id[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "hb-tick-%zu", i);
        c[i] = spawn(h, id, NULL, NULL, &p[i]);
    }
    wait_tick(h, 100 * 50 / n, "after the spawns");
    /* Every coordinator is still written on schedule at the shorter period. */
    snprintf(id, sizeof id, "blocking:heartbeat:hb-tick-%zu", n - 1);
    free(wait_seq(r, id, 2, 30000));
    for (size_t i = 5; i < n; i++) {
        bc_coord_stop(c[i]);
        bc_coord_release(c[i]);
    }
    wait_tick(h, 20, "after all but 5 stopped");
    bc_hub_stats_t st;
    bc_hub_stats(h, &st);
    assert_int_equal(st.heartbeat_failures, 0);
    for (size_t i = 0; i < 5; i++) {
        bc_coord_stop(c[i]);
        bc_coord_release(c[i]);
    }
    bc_hub_destroy(h);
    free(p);
    free(c);

    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(r);
    o.secret = SECRET;
    o.heartbeats = 0;
    o.reaper = 0;
    char err[256];
    assert_int_equal(bc_hub_create(rt, &o, &h, err, sizeof err), 0);
    assert_int_equal(tick_ms(h), 0);
    bc_hub_destroy(h);
    bc_runtime_destroy(rt);
    bc_test_redis_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_value),
        cmocka_unit_test(test_heartbeat_outage),
        cmocka_unit_test(test_heartbeat_many),
        cmocka_unit_test(test_heartbeat_tick_follows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
