/* test_interop.c - the interop cases of original-implementation.md §10.1 (S1-S9) and §10.2
 * (A1-A11), written as the raw Redis writes an operator's redis-cli makes, against a
 * coordinator hosted by a hub on a real redis-server.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"

#define S1                                                                                         \
    "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","            \
    "\"iteration\":1,\"type\":\"completion\",\"payload\":{\"status\":\"all-complete\"},"           \
    "\"messageId\":\"coord-a:coord-b:completion:1:1760000000000\"}"
#define S2_SIG "f8932dcfc66f682ccd60a9609eb6940ab2606c57eaad020a32ee0f869ac6a5fa"
#define S2_OTHER "3fdb3bc0f77b313b06dc188c936147a34143df3e78ae5540648e182db518fa31"
#define S2(sig)                                                                                    \
    "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","                      \
    "\"timestamp\":1760000000000,\"signature\":\"" sig "\"}"

static void setex(env_t *e, const char *key, const char *val)
{
    redisReply *r = bc_test_redis_cmd(e->redis, "SETEX %s 86400 %s", key, val);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static int slot_gone(env_t *e, const char *id)
{
    char key[128];
    snprintf(key, sizeof key, "blocking:signal:%s", id);
    for (int i = 0; i < 200; i++) {
        if (redis_int(e, "EXISTS %s", key) == 0)
            return 1;
        bc_test_sleep_ms(10);
    }
    return 0;
}

static bc_hub_stats_t stats(env_t *e)
{
    bc_hub_stats_t st;
    bc_hub_stats(e->hub, &st);
    return st;
}

/* S1, S2, S3, S5, S6, S7 against one waiting coordinator, in order. */
static void test_signals_s1_to_s7(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pb;
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);

    /* S1: Node format, unsigned: delivered with type, payload and messageId; slot consumed. */
    setex(&e, "blocking:signal:coord-b", S1);
    int n = 1;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    assert_string_equal(pb.sig[0].type, "completion");
    assert_string_equal(pb.sig[0].payload, "{\"status\":\"all-complete\"}");
    assert_string_equal(pb.sig[0].message_id, "coord-a:coord-b:completion:1:1760000000000");
    assert_int_equal(pb.sig[0].verified, 0);
    assert_true(slot_gone(&e, "coord-b"));

    /* S2: the tutorial's signed shape: accepted, messageId derived. */
    setex(&e, "blocking:signal:coord-b", S2(S2_SIG));
    n = 2;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    assert_string_equal(pb.sig[1].type, "wake");
    assert_int_equal(pb.sig[1].verified, 1);
    assert_string_equal(pb.sig[1].message_id, "coord-a:coord-b:wake:0:1760000000000");
    assert_true(slot_gone(&e, "coord-b"));

    /* S3: a bad signature never wakes; logged, counted, removed. */
    setex(&e, "blocking:signal:coord-b", S2(S2_OTHER));
    assert_true(probe_until(&pb, pred_event, "rejected - invalid signature", 10000));
    assert_true(slot_gone(&e, "coord-b"));
    assert_int_equal(stats(&e).rejected_signature, 1);

    /* S5: S1 again verbatim is a replay: not delivered, key consumed. */
    setex(&e, "blocking:signal:coord-b", S1);
    assert_true(probe_until(&pb, pred_event, "rejected coord-a replay", 10000));
    assert_true(slot_gone(&e, "coord-b"));
    assert_int_equal(stats(&e).replays, 1);

    /* S7: not JSON: rejected as malformed, removed, and the coordinator keeps running. */
    setex(&e, "blocking:signal:coord-b", "hello");
    assert_true(probe_until(&pb, pred_event, "rejected - not JSON", 10000));
    assert_true(slot_gone(&e, "coord-b"));
    assert_int_equal(stats(&e).rejected_malformed, 1);

    /* S6: two writes back to back: at least the surviving one; both if both were seen, in
     * order; never a crash. */
    const char *v1 = "{\"timestamp\":1760000001000,\"senderId\":\"coord-a\",\"receiverId\":"
                     "\"coord-b\",\"iteration\":2,\"type\":\"completion\",\"messageId\":"
                     "\"coord-a:coord-b:completion:2:1760000001000\"}";
    const char *v2 = "{\"timestamp\":1760000002000,\"senderId\":\"coord-a\",\"receiverId\":"
                     "\"coord-b\",\"iteration\":3,\"type\":\"completion\",\"messageId\":"
                     "\"coord-a:coord-b:completion:3:1760000002000\"}";
    redisContext *rc = bc_test_redis_connect(e.redis, 1);
    assert_non_null(rc);
    redisAppendCommand(rc, "SETEX blocking:signal:coord-b 86400 %s", v1);
    redisAppendCommand(rc, "SETEX blocking:signal:coord-b 86400 %s", v2);
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    redisFree(rc);
    n = 3;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    bc_test_sleep_ms(300);
    assert_true(pb.nsig == 3 || pb.nsig == 4);
    assert_string_equal(pb.sig[pb.nsig - 1].message_id,
                        "coord-a:coord-b:completion:3:1760000002000");
    assert_true(slot_gone(&e, "coord-b"));

    bc_coord_release(b);
    env_down(&e);
}

/* S4: with require_signature on, an unsigned signal is rejected like an invalid one. */
static void test_signal_s4_require_signature(void **state)
{
    env_t e;
    g_require_signature = 1;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    g_require_signature = 0;
    probe_t pb;
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    setex(&e, "blocking:signal:coord-b", S1);
    assert_true(probe_until(&pb, pred_event, "rejected - missing signature", 10000));
    assert_true(slot_gone(&e, "coord-b"));
    assert_int_equal(stats(&e).rejected_unsigned, 1);
    /* A signed one still passes. */
    setex(&e, "blocking:signal:coord-b", S2(S2_SIG));
    int n = 1;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    assert_int_equal(pb.sig[0].verified, 1);
    bc_coord_release(b);
    env_down(&e);
}

static size_t count_blocking_keys(env_t *e)
{
    redisReply *r = bc_test_redis_cmd(e->redis, "KEYS blocking:*"); /* test-only, tiny db */
    assert_non_null(r);
    size_t n = r->elements;
    freeReplyObject(r);
    return n;
}

typedef struct {
    bc_coord_t *c;
    int rc[4];
    char err[4][200];
    int done;
    pthread_mutex_t lock;
} s8_t;

/* S8: invalid ids are refused before any Redis traffic. S9: a C send is Node-readable. */
static void test_signal_s8_s9(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pc;
    probe_init(&pc, NULL, 60000);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-c";
    o.iteration = 3;
    o.on_start = probe_on_start;
    o.arg = &pc;
    bc_coord_t *c = NULL;
    char err[256];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &c, err, sizeof err), 0);
    assert_true(probe_until(&pc, pred_ready, NULL, 10000));
    bc_test_sleep_ms(100);
    size_t before = count_blocking_keys(&e);

    char sixty5[66];
    memset(sixty5, 'x', 65);
    sixty5[65] = '\0';
    const char *bad[] = {"coord b", "coord:b", sixty5, ""};
    for (int i = 0; i < 4; i++) {
        err[0] = '\0';
        assert_int_equal(bc_coord_send(c, bad[i], "completion", NULL, NULL, err, sizeof err),
                         -EINVAL);
        assert_non_null(strstr(err, "receiver id"));
    }
    assert_int_equal(bc_coord_send(c, "coord-d", "Bad Type", NULL, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(bc_coord_send(c, "coord-d", "completion", "[1,2]", NULL, err, sizeof err),
                     -EINVAL);
    bc_coord_opts_t bo;
    bc_coord_opts_init(&bo);
    bo.id = "coord a";
    assert_int_equal(bc_coord_spawn(e.hub, &bo, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "coordinator id"));
    bc_test_sleep_ms(100);
    assert_int_equal(count_blocking_keys(&e), before);

    /* S9 */
    char sid[BC_SIGNAL_ID_MAX + 1];
    assert_int_equal(
        bc_coord_send(c, "coord-d", "completion", "{\"status\":\"done\"}", sid, err, sizeof err),
        0);
    char *v = NULL;
    for (int i = 0; i < 200 && v == NULL; i++) {
        v = redis_str(&e, "GET %s", "blocking:signal:coord-d");
        if (v == NULL)
            bc_test_sleep_ms(10);
    }
    assert_non_null(v);
    unsigned long long ts = 0;
    assert_int_equal(sscanf(v, "{\"timestamp\":%llu,", &ts), 1);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"timestamp\":%llu,\"senderId\":\"coord-c\",\"receiverId\":\"coord-d\","
             "\"iteration\":3,\"type\":\"completion\",\"payload\":{\"status\":\"done\"},"
             "\"messageId\":\"coord-c:coord-d:completion:3:%llu\",\"signature\":\"",
             ts, ts);
    assert_memory_equal(v, want, strlen(want));
    assert_int_equal(strlen(v), strlen(want) + 64 + 2);
    snprintf(want, sizeof want, "coord-c:coord-d:completion:3:%llu", ts);
    assert_string_equal(sid, want);
    long long ttl = redis_int(&e, "TTL %s", "blocking:signal:coord-d");
    assert_true(ttl > 86300 && ttl <= 86400);
    char mk[400];
    snprintf(mk, sizeof mk, "blocking:idempotency:%s", sid);
    char *one = redis_str(&e, "GET %s", mk);
    assert_non_null(one);
    assert_string_equal(one, "1");
    ttl = redis_int(&e, "TTL %s", mk);
    assert_true(ttl > 86300 && ttl <= 86400);
    free(one);
    free(v);
    bc_coord_release(c);
    env_down(&e);
}

/* ---------------------------------------------------------------- ACKs */

#define A_BASE(ts, it, status, sig)                                                                \
    "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":" ts                   \
    ",\"iteration\":" it ",\"status\":\"" status "\",\"signature\":\"" sig                         \
    "\",\"metadata\":{\"signalType\":\"completion\"}}"
#define A1_SIG "f93afe4623d71b048b2dbcf530be0aa3b4a87911a2e84d0583b04b0e004ea2c1"
#define A2_SIG "62959476d23a2102067a8ec298d974cc1432eb1d011db2209a68329aba2d0b9d"

static void start_ack_wait(bc_coord_t *c, void *arg)
{
    const char *ids[] = {"coord-b"};
    assert_int_equal(bc_coord_wait_acks(c, "sig-0001", ids, 1, 1500, probe_on_acks, arg), 0);
}

/* coord-a waits for coord-b's ACK of sig-0001; `value` is written raw. Returns the number of
 * ACKs the wait accepted (0 or 1) and whether the watcher flagged it invalid. */
static int ack_case(const char *value, int *flagged)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pa;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    assert_int_equal(bc_coord_post(a, start_ack_wait, &pa), 0);
    bc_test_sleep_ms(200); /* the wait's subscription is live well before this */
    redisReply *r =
        bc_test_redis_cmd(e.redis, "SETEX blocking:ack:coord-b:sig-0001 3600 %s", value);
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(probe_until(&pa, pred_ack_result, NULL, 10000));
    int accepted = (int)pa.ack_n_acked;
    if (accepted)
        assert_int_equal(pa.ack_status, 0);
    else
        assert_int_equal(pa.ack_status, -ETIMEDOUT);
    *flagged = probe_count_events(&pa, "ack_invalid coord-b") > 0;
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_int_equal(st.acks_invalid > 0, *flagged);
    bc_coord_release(a);
    env_down(&e);
    return accepted;
}

static void expect_accept(const char *value)
{
    int flagged;
    assert_int_equal(ack_case(value, &flagged), 1);
    assert_false(flagged);
}

static void expect_ignore(const char *value)
{
    int flagged;
    assert_int_equal(ack_case(value, &flagged), 0);
    assert_true(flagged);
}

static void test_ack_a1_valid(void **state)
{
    expect_accept(A_BASE("1760000000000", "2", "received", A1_SIG));
}

static void test_ack_a2_other_secret(void **state)
{
    expect_ignore(A_BASE("1760000000000", "2", "received", A2_SIG));
}

static void test_ack_a3_no_signature(void **state)
{
    expect_ignore("{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":"
                  "1760000000000,\"iteration\":2,\"status\":\"received\",\"metadata\":{}}");
}

static void test_ack_a4_wrong_iteration(void **state)
{
    expect_ignore(A_BASE("1760000000000", "3", "received", A1_SIG));
}

static void test_ack_a5_uppercase(void **state)
{
    expect_accept(A_BASE("1760000000000", "2", "received",
                         "F93AFE4623D71B048B2DBCF530BE0AA3B4A87911A2E84D0583B04B0E004EA2C1"));
}

static void test_ack_a6_trailing_junk(void **state)
{
    expect_ignore(A_BASE("1760000000000", "2", "received", A1_SIG "zz"));
}

static void test_ack_a7_short(void **state)
{
    expect_ignore(A_BASE("1760000000000", "2", "received", "f93afe4623d71b048b2dbcf530be0aa3"));
}

static void test_ack_a8_cross_key(void **state)
{
    expect_ignore("{\"coordinatorId\":\"coord-c\",\"signalId\":\"sig-0001\",\"timestamp\":"
                  "1760000000500,\"iteration\":0,\"status\":\"received\",\"signature\":"
                  "\"63be9b997491cc1b3fc545b2171f8bf422915a2ddb551dceda7fc1e9c610a5d4\"}");
}

static void test_ack_a9_js_numbers(void **state)
{
    expect_accept(A_BASE("1.76e12", "2.0", "received", A1_SIG));
    expect_accept(A_BASE("\"1760000000000\"", "\"2\"", "received", A1_SIG));
}

static void test_ack_a10_status(void **state)
{
    expect_ignore(A_BASE("1760000000000", "2", "FORGED", A1_SIG));
}

static void test_ack_a11_missing_iteration(void **state)
{
    expect_ignore("{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":"
                  "1760000000000,\"status\":\"received\",\"signature\":"
                  "\"7afd83d7fa9827cfd0a2f1767f849774c9b93ff6f545b561ac084c0d22d298d3\"}");
}

/* Reverse direction: an ACK written by us verifies with openssl-equivalent HMAC. */
static void test_ack_reverse_direction(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pb;
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    bc_coord_set_iteration(b, 7);
    setex(&e, "blocking:signal:coord-b",
          "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","
          "\"iteration\":1,\"type\":\"completion\",\"messageId\":\"sig-0003\"}");
    int n = 1;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    char *j = NULL;
    for (int i = 0; i < 200 && j == NULL; i++) {
        j = redis_str(&e, "GET %s", "blocking:ack:coord-b:sig-0003");
        if (j == NULL)
            bc_test_sleep_ms(10);
    }
    assert_non_null(j);
    unsigned long long ts;
    char sig[65];
    assert_int_equal(
        sscanf(j,
               "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0003\",\"timestamp\":"
               "%llu,\"iteration\":7,\"status\":\"received\",\"signature\":\"%64["
               "0-9a-f]\",\"metadata\":{\"signalType\":\"completion\"}}",
               &ts, sig),
        2);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "printf '%%s' 'coord-b:sig-0003:%llu:7' | openssl dgst -sha256 -hmac '%s' | awk "
             "'{print $NF}'",
             ts, SECRET);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[128] = "";
    assert_non_null(fgets(out, sizeof out, f));
    pclose(f);
    out[strcspn(out, "\n")] = '\0';
    assert_string_equal(out, sig);
    long long ttl = redis_int(&e, "TTL %s", "blocking:ack:coord-b:sig-0003");
    assert_true(ttl > 3500 && ttl <= 3600);
    free(j);
    bc_coord_release(b);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signals_s1_to_s7),
        cmocka_unit_test(test_signal_s4_require_signature),
        cmocka_unit_test(test_signal_s8_s9),
        cmocka_unit_test(test_ack_a1_valid),
        cmocka_unit_test(test_ack_a2_other_secret),
        cmocka_unit_test(test_ack_a3_no_signature),
        cmocka_unit_test(test_ack_a4_wrong_iteration),
        cmocka_unit_test(test_ack_a5_uppercase),
        cmocka_unit_test(test_ack_a6_trailing_junk),
        cmocka_unit_test(test_ack_a7_short),
        cmocka_unit_test(test_ack_a8_cross_key),
        cmocka_unit_test(test_ack_a9_js_numbers),
        cmocka_unit_test(test_ack_a10_status),
        cmocka_unit_test(test_ack_a11_missing_iteration),
        cmocka_unit_test(test_ack_reverse_direction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
