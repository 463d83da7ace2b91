/* test_send_retry.c - a signal write that Redis dropped unanswered (the connection died with the
 * command in flight) is sent again after the reconnect and delivered exactly once, with no
 * send failure reported (PROTOCOL §2.2: a receiver drops a messageId it has consumed, so the
 * re-send is safe).
 *
 * How the write is caught in flight: CLIENT PAUSE ... WRITE holds every write command, the
 * signal is sent, then CLIENT KILL drops the hub's command connection while its SET NX waits.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"

static void run_retry(int fast)
{
    env_t e;
    g_fast_path = fast;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    g_fast_path = 1;
    probe_t pa, pb;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);

    redisReply *r = bc_test_redis_cmd(e.redis, "CLIENT PAUSE 3000 WRITE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char sid[BC_SIGNAL_ID_MAX + 1], err[200];
    assert_int_equal(bc_coord_send(a, "coord-b", "validate", "{\"n\":1}", sid, err, sizeof err), 0);
    usleep(300000); /* the writes reach Redis and wait there */
    r = bc_test_redis_cmd(e.redis, "CLIENT KILL TYPE normal SKIPME yes");
    assert_non_null(r);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    freeReplyObject(r);
    r = bc_test_redis_cmd(e.redis, "CLIENT UNPAUSE");
    freeReplyObject(r);

    int one = 1;
    assert_true(probe_until(&pb, pred_nsig, &one, 20000));
    assert_string_equal(pb.sig[0].message_id, sid);
    usleep(1000000); /* a second copy would be delivered by now */
    assert_int_equal(pb.nsig, 1);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(st.send_retries >= 1);
    assert_int_equal(st.send_failures, 0);
    assert_int_equal(probe_count_events(&pa, "send_failed"), 0);
    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

static void test_retry_fast_path(void **state)
{
    (void)state;
    run_retry(1);
}

static void test_retry_durable_path(void **state)
{
    (void)state;
    run_retry(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_fast_path),
        cmocka_unit_test(test_retry_durable_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
