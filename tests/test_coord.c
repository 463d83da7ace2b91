/* test_coord.c - coordinators against a real redis-server: send, wait, ACK waits, concurrent
 * senders, type filters, blocking waits for embedders, the poll fallback, reconnects, replays
 * across processes and bad input.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"
#include "hub.h"

static void start_wait_acks(bc_coord_t *c, void *arg);

typedef struct {
    probe_t *p;
    char sid[BC_SIGNAL_ID_MAX + 1];
    const char *ids[8];
    size_t n;
    uint32_t timeout_ms;
} ackreq_t;

static void start_wait_acks(bc_coord_t *c, void *arg)
{
    ackreq_t *q = arg;
    assert_int_equal(
        bc_coord_wait_acks(c, q->sid, q->ids, q->n, q->timeout_ms, probe_on_acks, q->p), 0);
}

/* A sends to B in the same process; B wakes with the payload; A's ACK wait completes; the slot
 * is consumed, both ACK keys exist with their TTLs, and B got the signal exactly once. */
static void run_send_wait_ack(int fast)
{
    env_t e;
    g_fast_path = fast;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    g_fast_path = 1;
    assert_string_equal(bc_hub_notify_mode(e.hub), "keyspace");
    probe_t pa, pb;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);

    ackreq_t q = {&pa, "", {"coord-b"}, 1, 10000};
    char err[200];
    assert_int_equal(bc_coord_send(a, "coord-b", "validate",
                                   "{ \"validatorId\": \"v1\", \"confidence\": 0.92 }", q.sid, err,
                                   sizeof err),
                     0);
    assert_int_equal(bc_coord_post(a, start_wait_acks, &q), 0);
    int one = 1;
    assert_true(probe_until(&pb, pred_nsig, &one, 10000));
    assert_string_equal(pb.sig[0].sender, "coord-a");
    assert_string_equal(pb.sig[0].type, "validate");
    assert_string_equal(pb.sig[0].message_id, q.sid);
    assert_string_equal(pb.sig[0].payload, "{\"validatorId\":\"v1\",\"confidence\":0.92}");
    assert_int_equal(pb.sig[0].verified, 1);
    assert_true(probe_until(&pa, pred_ack_result, NULL, 10000));
    assert_int_equal(pa.ack_status, 0);
    assert_int_equal(pa.ack_n_acked, 1);
    assert_true(probe_until(&pa, pred_event, "ack_received coord-b", 10000));
    assert_true(probe_until(&pa, pred_event, "ack_verified coord-b", 10000));
    assert_true(probe_until(&pb, pred_event, "ack_sent coord-a", 10000));

    /* The durable copy is consumed too (after the hint woke b, so wait for it; with the hint
     * first, it is written after the hint was answered: wait for that write first). */
    assert_int_equal(bc_coord_flush(a, 10000), 0);
    for (int i = 0; i < 500 && redis_int(&e, "EXISTS %s", "blocking:signal:coord-b"); i++)
        bc_test_sleep_ms(10);
    assert_int_equal(redis_int(&e, "EXISTS %s", "blocking:signal:coord-b"), 0);
    char key[400];
    snprintf(key, sizeof key, "blocking:ack:coord-b:%s", q.sid);
    long long ttl = redis_int(&e, "TTL %s", key);
    assert_true(ttl > 3500 && ttl <= 3600);
    ttl = redis_int(&e, "TTL %s", "blocking:ack:coord-a");
    assert_true(ttl > 3500 && ttl <= 3600);
    char *slot = redis_str(&e, "GET %s", "blocking:ack:coord-a");
    assert_non_null(slot);
    assert_non_null(strstr(slot, "{\"receiverId\":\"coord-a\",\"timestamp\":"));
    assert_non_null(strstr(slot, "\"coordinatorId\":\"coord-b\""));
    free(slot);
    bc_test_sleep_ms(200);
    assert_int_equal(pb.nsig, 1);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_int_equal(st.signals_delivered, 1);
    assert_int_equal(st.durable_consumed, 1);
    /* Which copy wakes it (the hint or the durable one) is a race; the other is only consumed. */
    if (fast)
        assert_true(st.fast_path <= 1);
    else
        assert_int_equal(st.fast_path, 0);
    assert_int_equal(probe_count_events(&pa, "ack_received coord-b"), 1);

    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

static void test_send_wait_ack(void **state)
{
    run_send_wait_ack(1);
}

static void test_send_wait_ack_durable_only(void **state)
{
    run_send_wait_ack(0);
}

/* Validators on another hub (another "process") answer one product owner at the same instant,
 * many rounds: every signal arrives exactly once, in per-sender order. With the fast path off,
 * this exercises SET NX / RPUSH and the slot+queue drain alone. */
typedef struct {
    bc_coord_t *c;
    pthread_barrier_t *bar;
    int rounds;
    int failures;
} vthread_t;

static void *validator_thread(void *arg)
{
    vthread_t *v = arg;
    char err[200], payload[64];
    for (int r = 0; r < v->rounds; r++) {
        pthread_barrier_wait(v->bar);
        snprintf(payload, sizeof payload, "{\"round\":%d}", r);
        if (bc_coord_send(v->c, "po-1", "validation", payload, NULL, err, sizeof err) != 0)
            v->failures++;
    }
    return NULL;
}

static void run_four_validators(int fast)
{
    env_t e;
    g_fast_path = fast;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    bc_hub_t *h2 = hub_on(&e, BC_NOTIFY_AUTO);
    g_fast_path = 1;
    probe_t po;
    bc_coord_t *poc = probe_start(e.hub, "po-1", &po, NULL);
    const int rounds = (int)bc_test_scaled(50, 10);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 4);
    vthread_t vt[4];
    pthread_t th[4];
    probe_t vp[4];
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "v-%d", i + 1);
        vt[i] = (vthread_t){probe_start(h2, id, &vp[i], "never"), &bar, rounds, 0};
    }
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, validator_thread, &vt[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int want = rounds * 4;
    assert_true(probe_until(&po, pred_nsig, &want, 30000));
    bc_test_sleep_ms(300);
    assert_int_equal(po.nsig, want);
    int next[4] = {0, 0, 0, 0};
    for (int i = 0; i < po.nsig; i++) {
        int v = po.sig[i].sender[2] - '1', r = -1;
        assert_true(v >= 0 && v < 4);
        assert_int_equal(sscanf(po.sig[i].payload, "{\"round\":%d}", &r), 1);
        assert_int_equal(r, next[v]); /* exactly once, in order */
        next[v]++;
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(next[i], rounds);
        assert_int_equal(vt[i].failures, 0);
        bc_coord_release(vt[i].c);
    }
    assert_int_equal(redis_int(&e, "EXISTS %s", "blocking:signal-queue:po-1"), 0);
    pthread_barrier_destroy(&bar);
    bc_coord_release(poc);
    bc_hub_destroy(h2);
    env_down(&e);
}

static void test_four_validators_at_once(void **state)
{
    run_four_validators(1);
}

static void test_four_validators_durable_only(void **state)
{
    run_four_validators(0);
}

/* A wait for one type leaves other types queued for a later wait. */
static void on_second(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);
static void on_first(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    snprintf(p->sig[p->nsig++].type, 33, "%s", status == 0 ? s->type : "error");
    pthread_mutex_unlock(&p->lock);
    bc_coord_wait(c, NULL, 10000, on_second, arg);
}
static void on_second(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    snprintf(p->sig[p->nsig++].type, 33, "%s", status == 0 ? s->type : "error");
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}
static void start_decide_wait(bc_coord_t *c, void *arg)
{
    bc_coord_wait(c, "decide,escalate", 10000, on_first, arg);
}

static void test_type_filter_keeps_others(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pa, pb;
    probe_init(&pa, "never", 60000);
    probe_init(&pb, NULL, 60000);
    bc_coord_t *a = probe_spawn(e.hub, "coord-a", &pa);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-b";
    o.on_start = start_decide_wait;
    o.arg = &pb;
    bc_coord_t *b = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &b, err, sizeof err), 0);
    assert_true(probe_until(&pa, pred_ready, NULL, 10000));
    bc_test_sleep_ms(200);
    assert_int_equal(bc_coord_send(a, "coord-b", "validate", NULL, NULL, err, sizeof err), 0);
    assert_int_equal(bc_coord_send(a, "coord-b", "decide", NULL, NULL, err, sizeof err), 0);
    int two = 2;
    assert_true(probe_until(&pb, pred_nsig, &two, 10000));
    assert_string_equal(pb.sig[0].type, "decide");
    assert_string_equal(pb.sig[1].type, "validate");
    /* A second host of the same id in this process is refused. */
    assert_int_equal(bc_coord_spawn(e.hub, &o, NULL, err, sizeof err), -EEXIST);
    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

/* Embedders: a blocking wait from a plain thread; timeout; refused on a worker. */
static int g_deadlk;
static void try_blocking_on_worker(bc_coord_t *c, void *arg)
{
    bc_signal_t *s = NULL;
    g_deadlk = bc_coord_wait_blocking(c, NULL, 10, &s);
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    p->ready = 2;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}
static int pred_ready2(probe_t *p, const void *arg)
{
    (void)arg;
    return p->ready == 2;
}

typedef struct {
    bc_coord_t *from;
} sender_arg_t;
static void *late_sender(void *arg)
{
    sender_arg_t *s = arg;
    char err[200];
    bc_test_sleep_ms(300);
    bc_coord_send(s->from, "coord-w", "wake", "{\"n\":1}", NULL, err, sizeof err);
    return NULL;
}

static void test_blocking_wait(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pa;
    probe_init(&pa, "never", 60000);
    bc_coord_t *a = probe_spawn(e.hub, "coord-a", &pa);
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-w";
    bc_coord_t *w = NULL;
    char err[200];
    assert_int_equal(bc_coord_spawn(e.hub, &o, &w, err, sizeof err), 0);
    assert_true(probe_until(&pa, pred_ready, NULL, 10000));
    bc_test_sleep_ms(200);

    bc_signal_t *s = NULL;
    assert_int_equal(bc_coord_wait_blocking(w, NULL, 200, &s), -ETIMEDOUT);
    pthread_t th;
    sender_arg_t sa = {a};
    pthread_create(&th, NULL, late_sender, &sa);
    assert_int_equal(bc_coord_wait_blocking(w, "wake", 10000, &s), 0);
    pthread_join(th, NULL);
    assert_non_null(s);
    assert_string_equal(s->sender, "coord-a");
    assert_string_equal(s->payload, "{\"n\":1}");
    assert_int_equal((int)bc_signal_num(s, "n", -1), 1);
    bc_signal_free(s);

    assert_int_equal(bc_coord_post(w, try_blocking_on_worker, &pa), 0);
    assert_true(probe_until(&pa, pred_ready2, NULL, 10000));
    assert_int_equal(g_deadlk, -EDEADLK);
    bc_coord_stop(w);
    assert_int_equal(bc_coord_wait_blocking(w, NULL, 1000, &s), -ECANCELED);
    bc_coord_release(w);
    bc_coord_release(a);
    env_down(&e);
}

/* Signals written before a coordinator starts are read at start; a replay written after the
 * coordinator moved to another process (hub) is dropped thanks to the Redis marker. */
#define EARLY                                                                                      \
    "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-r\","            \
    "\"iteration\":1,\"type\":\"completion\",\"messageId\":\"coord-a:coord-r:completion:1:1\"}"

static void test_early_signal_and_replay_across_processes(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    redisReply *r = bc_test_redis_cmd(e.redis, "SETEX blocking:signal:coord-r 86400 %s", EARLY);
    freeReplyObject(r);
    probe_t p1;
    probe_init(&p1, NULL, 60000);
    bc_coord_t *c1 = probe_spawn(e.hub, "coord-r", &p1);
    int one = 1;
    assert_true(probe_until(&p1, pred_nsig, &one, 10000));
    bc_coord_release(c1);
    bc_hub_destroy(e.hub);

    e.hub = hub_on(&e, BC_NOTIFY_AUTO);
    probe_t p2;
    bc_coord_t *c2 = probe_start(e.hub, "coord-r", &p2, NULL);
    r = bc_test_redis_cmd(e.redis, "SETEX blocking:signal:coord-r 86400 %s", EARLY);
    freeReplyObject(r);
    assert_true(probe_until(&p2, pred_event, "rejected coord-a replay", 10000));
    assert_int_equal(p2.nsig, 0);
    bc_coord_release(c2);
    env_down(&e);
}

/* Where CONFIG is refused: the poll fallback finds a raw write; native sends still wake. */
static void test_poll_fallback(void **state)
{
    env_t e;
    bc_test_redis_opts_t ro = {.unix_socket = 1, .disable_config = 1};
    env_up(&e, &ro, BC_NOTIFY_AUTO);
    assert_string_equal(bc_hub_notify_mode(e.hub), "poll");
    assert_non_null(strstr(bc_hub_notify_reason(e.hub), "CONFIG"));
    probe_t pb, pa;
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    redisReply *r = bc_test_redis_cmd(
        e.redis, "SETEX blocking:signal:coord-b 86400 %s",
        "{\"timestamp\":1760000000000,\"senderId\":\"coord-x\",\"receiverId\":\"coord-b\","
        "\"type\":\"wake\"}");
    freeReplyObject(r);
    int n = 1;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    char err[200];
    ackreq_t q = {&pa, "", {"coord-b"}, 1, 10000};
    assert_int_equal(bc_coord_send(a, "coord-b", "wake", NULL, q.sid, err, sizeof err), 0);
    assert_int_equal(bc_coord_post(a, start_wait_acks, &q), 0);
    n = 2;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    assert_true(probe_until(&pa, pred_ack_result, NULL, 10000));
    assert_int_equal(pa.ack_n_acked, 1);
    /* The durable copy of the fast-path signal is consumed by the poll, not delivered again
     * (it is written once the hint was answered: wait for the write, then for the poll). */
    assert_true(probe_until(&pb, pred_event, "ack_sent coord-a", 10000));
    assert_int_equal(bc_coord_flush(a, 10000), 0);
    for (int i = 0; i < 200 && redis_int(&e, "EXISTS %s", "blocking:signal:coord-b"); i++)
        bc_test_sleep_ms(10);
    assert_int_equal(redis_int(&e, "EXISTS %s", "blocking:signal:coord-b"), 0);
    assert_int_equal(pb.nsig, 2);
    /* A burst: all but the first go to the queue (the slot is taken until a poll); each is
     * delivered once from its hint, and the poll, finding the slot taken, drains slot and queue. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(bc_coord_send(a, "coord-b", "wake", NULL, NULL, err, sizeof err), 0);
    n = 5;
    assert_true(probe_until(&pb, pred_nsig, &n, 10000));
    assert_int_equal(bc_coord_flush(a, 10000), 0);
    for (int i = 0; i < 300 && (redis_int(&e, "EXISTS %s", "blocking:signal:coord-b") ||
                                redis_int(&e, "EXISTS %s", "blocking:signal-queue:coord-b"));
         i++)
        bc_test_sleep_ms(10);
    assert_int_equal(redis_int(&e, "EXISTS %s", "blocking:signal:coord-b"), 0);
    assert_int_equal(redis_int(&e, "EXISTS %s", "blocking:signal-queue:coord-b"), 0);
    bc_test_sleep_ms(300);
    assert_int_equal(pb.nsig, 5);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(st.polls > 0);
    assert_int_equal(st.durable_consumed, 5); /* one durable copy per signal, the raw one too */
    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

/* A signal written while this process is disconnected is read after the reconnect. */
static void test_reconnect_rereads_slots(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pb;
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    bc_test_redis_kill(e.redis);
    bc_test_redis_restart(e.redis);
    /* Written before the hub's reconnect (its first retry is 1 s away): no event reaches it. */
    redisReply *r = bc_test_redis_cmd(
        e.redis, "SETEX blocking:signal:coord-b 86400 %s",
        "{\"timestamp\":1760000000000,\"senderId\":\"coord-x\",\"receiverId\":\"coord-b\","
        "\"type\":\"wake\"}");
    assert_non_null(r);
    freeReplyObject(r);
    int n = 1;
    assert_true(probe_until(&pb, pred_nsig, &n, 30000));
    assert_string_equal(pb.sig[0].sender, "coord-x");
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(st.resyncs >= 1);
    /* Keyspace notifications were switched back on after the restart reset them. */
    char *flags = NULL;
    for (int i = 0; i < 300; i++) {
        redisReply *c = bc_test_redis_cmd(e.redis, "CONFIG GET notify-keyspace-events");
        if (c && c->type == REDIS_REPLY_ARRAY && c->elements == 2 &&
            strchr(c->element[1]->str, 'K'))
            flags = strdup(c->element[1]->str);
        freeReplyObject(c);
        if (flags)
            break;
        bc_test_sleep_ms(20);
    }
    assert_non_null(flags);
    free(flags);
    bc_coord_release(b);
    env_down(&e);
}

/* Keyspace notifications are added to the server's flags, never replacing them. */
static void test_notify_flags_kept(void **state)
{
    env_t e;
    bc_test_redis_opts_t ro = {.unix_socket = 1, .extra_args = "--notify-keyspace-events Ex"};
    env_up(&e, &ro, BC_NOTIFY_AUTO);
    assert_string_equal(bc_hub_notify_mode(e.hub), "keyspace");
    redisReply *r = bc_test_redis_cmd(e.redis, "CONFIG GET notify-keyspace-events");
    assert_non_null(r);
    assert_int_equal(r->elements, 2);
    const char *f = r->element[1]->str;
    for (const char *c = "ExK$l"; *c; c++)
        assert_non_null(strchr(f, *c));
    freeReplyObject(r);
    env_down(&e);
}

/* An ACK wait on two coordinators where one answers: the result says who. */
static void test_ack_wait_partial(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pa, pb;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    ackreq_t q = {&pa, "", {"coord-gone", "coord-b"}, 2, 800};
    char err[200];
    assert_int_equal(bc_coord_send(a, "coord-b", "checkpoint", NULL, q.sid, err, sizeof err), 0);
    assert_int_equal(bc_coord_post(a, start_wait_acks, &q), 0);
    assert_true(probe_until(&pa, pred_ack_result, NULL, 10000));
    assert_int_equal(pa.ack_status, -ETIMEDOUT);
    assert_int_equal(pa.ack_n_acked, 1);
    assert_int_equal(pa.ack_acked[0], 0);
    assert_int_equal(pa.ack_acked[1], 1);
    bc_coord_release(a);
    bc_coord_release(b);
    env_down(&e);
}

/* Heartbeats: the §4.1 members, once per interval, in the registry; a stopped coordinator
 * leaves its last heartbeat (state, short TTL) and leaves the registry. */
static void test_heartbeats(void **state)
{
    env_t e;
    e.redis = bc_test_redis_start(NULL);
    e.rt = bc_test_runtime(2);
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.redis_url = bc_test_redis_url(e.redis);
    o.secret = SECRET;
    o.heartbeat_ms = 200;
    char err[256];
    assert_int_equal(bc_hub_create(e.rt, &o, &e.hub, err, sizeof err), 0);
    probe_t p;
    probe_init(&p, NULL, 60000);
    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    co.id = "coord-h";
    co.swarm_id = "swarm-1";
    co.phase = "loop \"2\"";
    co.on_start = probe_on_start;
    co.arg = &p;
    bc_coord_t *c = NULL;
    assert_int_equal(bc_coord_spawn(e.hub, &co, &c, err, sizeof err), 0); /* before Redis is up */
    assert_true(probe_until(&p, pred_ready, NULL, 10000));
    bc_test_sleep_ms(1000);
    char *v = redis_str(&e, "GET %s", "blocking:heartbeat:coord-h");
    assert_non_null(v);
    unsigned long long ts, last, seq;
    assert_int_equal(
        sscanf(v,
               "{\"coordinatorId\":\"coord-h\",\"timestamp\":%llu,\"lastHeartbeat\":%llu,"
               "\"sequence\":%llu,",
               &ts, &last, &seq),
        3);
    assert_true(ts == last);
    assert_true(seq >= 2 && seq <= 15); /* ~5 in 1 s at 200 ms; one per 20 ms tick would be 50 */
    assert_non_null(strstr(v, "\"status\":\"alive\",\"state\":\"waiting\""));
    assert_non_null(strstr(v, "\"swarmId\":\"swarm-1\",\"phase\":\"loop \\\"2\\\"\"}"));
    free(v);
    long long ttl = redis_int(&e, "TTL %s", "blocking:heartbeat:coord-h");
    assert_true(ttl > 80 && ttl <= 90);
    char *score = redis_str(&e, "ZSCORE blocking:registry %s", "coord-h");
    assert_non_null(score);
    free(score);
    bc_coord_set_state(c, BC_STATE_COMPLETED);
    bc_coord_stop(c);
    bc_coord_release(c);
    bc_hub_destroy(e.hub);
    v = redis_str(&e, "GET %s", "blocking:heartbeat:coord-h");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"state\":\"completed\""));
    free(v);
    ttl = redis_int(&e, "TTL %s", "blocking:heartbeat:coord-h");
    assert_true(ttl > 0 && ttl <= 60);
    char *z = redis_str(&e, "ZSCORE blocking:registry %s", "coord-h");
    assert_null(z);
    bc_runtime_destroy(e.rt);
    bc_test_redis_free(e.redis);
}

/* The secret is required; a bad URL is named. */
/* PROTOCOL §3.1: the ACK is written before the receiver acts on the signal. coord-r's
 * continuation answers every signal with one of its own; a raw subscriber to the keyspace
 * events sees, for each of several rounds, the ACK key written before the answer's slot (both
 * leave on coord-r's connection, so Redis runs them in the order they were queued). */
typedef struct {
    _Atomic int answered;
    _Atomic int failures;
} replier_t;

static void replier_wait(bc_coord_t *c, void *arg);

static void replier_on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    replier_t *r = arg;
    char err[200];
    if (status == 0 && bc_coord_send(c, s->sender, "reply", NULL, NULL, err, sizeof err) != 0)
        atomic_fetch_add(&r->failures, 1);
    if (status == 0)
        atomic_fetch_add(&r->answered, 1);
    replier_wait(c, arg);
}

static void replier_wait(bc_coord_t *c, void *arg)
{
    if (bc_coord_wait(c, "ask", 0, replier_on_signal, arg) != 0)
        atomic_fetch_add(&((replier_t *)arg)->failures, 1);
}

typedef struct {
    redisContext *sub;
    pthread_mutex_t lock;
    char ev[256][160]; /* keyspace channels in arrival order */
    _Atomic int n;
} ksub_t;

static void *ksub_main(void *arg)
{
    ksub_t *k = arg;
    redisReply *r;
    while (redisGetReply(k->sub, (void **)&r) == REDIS_OK && r) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            strcmp(r->element[0]->str, "pmessage") == 0) {
            int i = atomic_load(&k->n);
            if (i < 256) {
                snprintf(k->ev[i], sizeof k->ev[i], "%s %s", r->element[2]->str,
                         r->element[3]->str);
                atomic_store(&k->n, i + 1);
            }
        }
        freeReplyObject(r);
    }
    return NULL;
}

static int ev_index(ksub_t *k, const char *prefix, int from)
{
    for (int i = from; i < atomic_load(&k->n); i++)
        if (strncmp(k->ev[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

static void test_ack_before_acting(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    ksub_t k;
    memset(&k, 0, sizeof k);
    k.sub = bc_test_redis_connect(e.redis, 1);
    assert_non_null(k.sub);
    assert_int_equal(redisSetTimeout(k.sub, (struct timeval){120, 0}), REDIS_OK);
    redisReply *r = redisCommand(k.sub, "PSUBSCRIBE __keyspace@0__:blocking:*");
    assert_non_null(r);
    freeReplyObject(r);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ksub_main, &k), 0);

    replier_t rp = {0, 0};
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = "coord-r";
    o.on_start = replier_wait;
    o.arg = &rp;
    char err[200];
    bc_coord_t *rc = NULL;
    assert_int_equal(bc_coord_spawn(e.hub, &o, &rc, err, sizeof err), 0);
    probe_t pa;
    bc_coord_t *a = probe_start(e.hub, "coord-q", &pa, "reply");
    bc_test_sleep_ms(200); /* coord-r is waiting */
    for (int round = 1; round <= 3; round++) {
        int from = atomic_load(&k.n);
        char sid[BC_SIGNAL_ID_MAX + 1];
        assert_int_equal(bc_coord_send(a, "coord-r", "ask", NULL, sid, err, sizeof err), 0);
        assert_true(probe_until(&pa, pred_nsig, &round, 10000));
        char ack[BC_SIGNAL_ID_MAX + 64];
        snprintf(ack, sizeof ack, "__keyspace@0__:blocking:ack:coord-r:%s set", sid);
        int ia = -1, ir = -1;
        for (int t = 0; t < 500 && (ia < 0 || ir < 0); t++) {
            bc_test_sleep_ms(10);
            ia = ev_index(&k, ack, from);
            /* The answer's durable write: the slot, or the queue if the last one is still
             * in the slot. */
            ir = ev_index(&k, "__keyspace@0__:blocking:signal:coord-q set", from);
            int iq = ev_index(&k, "__keyspace@0__:blocking:signal-queue:coord-q rpush", from);
            if (iq >= 0 && (ir < 0 || iq < ir))
                ir = iq;
        }
        if (ia < 0 || ir < 0 || ia > ir)
            for (int i = from; i < atomic_load(&k.n); i++)
                fprintf(stderr, "  event %d: %s\n", i, k.ev[i]);
        assert_true(ia >= 0);
        assert_true(ir >= 0);
        assert_true(ia < ir); /* the ACK before the answer */
    }
    assert_int_equal(atomic_load(&rp.failures), 0);
    assert_int_equal(atomic_load(&rp.answered), 3);
    bc_coord_release(a);
    bc_coord_release(rc);
    env_down(&e); /* the server stops: ksub_main's read fails and it returns */
    pthread_join(th, NULL);
    redisFree(k.sub);
}

/* The lane floor (docs/protocol.md, §4.3 stamps): a sender's stamps to one receiver strictly
 * increase, even when the Redis clock estimate steps back after the receiver's lane was freed.
 * A burst to coord-b runs its stamps ahead of the clock; once they are in the past, a send to
 * coord-c frees coord-b's idle lane. The clock then steps back into the burst's range, and the
 * next signal to coord-b must still get a stamp above the burst's: from the clock alone it would
 * repeat a messageId of the burst, and coord-b would drop it as a replay. */
#define LF_BURST 40

static void test_lane_floor_after_clock_steps_back(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    probe_t pa, pb, pc;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);
    bc_coord_t *c = probe_start(e.hub, "coord-c", &pc, NULL);
    char sid[BC_SIGNAL_ID_MAX + 1], err[200];
    for (int i = 0; i < LF_BURST; i++)
        assert_int_equal(bc_coord_send(a, "coord-b", "wake", NULL, sid, err, sizeof err), 0);
    int want = LF_BURST;
    assert_true(probe_until(&pb, pred_nsig, &want, 20000));
    assert_int_equal(bc_coord_flush(a, 10000), 0);
    uint64_t first = pb.sig[0].timestamp, last = first;
    for (int i = 1; i < LF_BURST; i++) {
        assert_true(pb.sig[i].timestamp > last); /* delivered in order, stamps increasing */
        last = pb.sig[i].timestamp;
    }
    while (bc__hub_stamp(e.hub) <= last + 5) /* the burst's stamps are in the past */
        bc_test_sleep_ms(5);
    int one = 1;
    assert_int_equal(bc_coord_send(a, "coord-c", "wake", NULL, sid, err, sizeof err), 0);
    assert_true(probe_until(&pc, pred_nsig, &one, 10000)); /* coord-b's lane is freed */
    int64_t back = (int64_t)(first + LF_BURST / 2) - (int64_t)bc__hub_stamp(e.hub);
    assert_true(back < 0);
    bc__redis_clock_step(e.hub->redis, back);
    assert_int_equal(bc_coord_send(a, "coord-b", "wake", NULL, sid, err, sizeof err), 0);
    want = LF_BURST + 1;
    if (!probe_until(&pb, pred_nsig, &want, 10000))
        fail_msg("the signal sent after the clock stepped back %lld ms was not delivered "
                 "(its messageId %s repeated one of the burst's?)",
                 (long long)back, sid);
    assert_string_equal(pb.sig[LF_BURST].message_id, sid);
    if (pb.sig[LF_BURST].timestamp <= last)
        fail_msg("stamp %llu after the clock stepped back is not above the burst's last %llu",
                 (unsigned long long)pb.sig[LF_BURST].timestamp, (unsigned long long)last);
    bc__redis_clock_step(e.hub->redis, -back);
    bc_coord_release(a);
    bc_coord_release(b);
    bc_coord_release(c);
    env_down(&e);
}

static void test_hub_bad_input(void **state)
{
    bc_runtime_t *rt = bc_test_runtime(1);
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    char err[300] = "";
    bc_hub_t *h = NULL;
    unsetenv("BLOCKING_COORDINATION_SECRET");
    assert_int_equal(bc_hub_create(rt, &o, &h, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "BLOCKING_COORDINATION_SECRET"));
    o.secret = SECRET;
    o.redis_url = "redis://host:99999";
    assert_int_equal(bc_hub_create(rt, &o, &h, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "99999"));
    setenv("HEARTBEAT_INTERVAL_MS", "5s", 1);
    o.redis_url = NULL;
    assert_int_equal(bc_hub_create(rt, &o, &h, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "HEARTBEAT_INTERVAL_MS"));
    unsetenv("HEARTBEAT_INTERVAL_MS");
    bc_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_wait_ack),
        cmocka_unit_test(test_send_wait_ack_durable_only),
        cmocka_unit_test(test_four_validators_at_once),
        cmocka_unit_test(test_four_validators_durable_only),
        cmocka_unit_test(test_type_filter_keeps_others),
        cmocka_unit_test(test_blocking_wait),
        cmocka_unit_test(test_early_signal_and_replay_across_processes),
        cmocka_unit_test(test_poll_fallback),
        cmocka_unit_test(test_reconnect_rereads_slots),
        cmocka_unit_test(test_lane_floor_after_clock_steps_back),
        cmocka_unit_test(test_hub_bad_input),
        cmocka_unit_test(test_notify_flags_kept),
        cmocka_unit_test(test_ack_wait_partial),
        cmocka_unit_test(test_heartbeats),
        cmocka_unit_test(test_ack_before_acting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
