/* test_breaker.c - unit tests for runtime/breaker.c (reconnection ladder, circuit breaker).
 *
 * Every test drives the breaker with a hand-advanced clock and captures the log lines, then
 * compares them, in order and with their levels, against the PROTOCOL §6 / tutorial text.
 */
#include "harness.h"

#include "breaker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_LINES 64

typedef struct capture {
    int n;
    int level[MAX_LINES];
    char line[MAX_LINES][256];
} capture_t;

static void capture_log(void *arg, int level, const char *line)
{
    capture_t *c = arg;

    assert_true(c->n < MAX_LINES);
    c->level[c->n] = level;
    snprintf(c->line[c->n], sizeof c->line[c->n], "%s", line);
    c->n++;
}

/* Assert that exactly the lines in `want` (NULL-terminated) were logged, then clear. */
static void expect_lines(capture_t *c, const char *const *want)
{
    int i = 0;

    for (; want[i]; i++) {
        if (i >= c->n)
            fail_msg("missing line %d: \"%s\"", i, want[i]);
        assert_string_equal(c->line[i], want[i]);
    }
    if (c->n != i)
        fail_msg("unexpected extra line: \"%s\"", c->line[i]);
    c->n = 0;
}

#define EXPECT(c, ...)                                                                             \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__, NULL};                                       \
        expect_lines((c), w_);                                                                     \
    } while (0)

static void setup_breaker(bc_breaker_t *b, capture_t *cap, const bc_breaker_conf_t *base)
{
    bc_breaker_conf_t conf;

    if (base)
        conf = *base;
    else
        bc_breaker_conf_default(&conf);
    conf.log = capture_log;
    conf.log_arg = cap;
    memset(cap, 0, sizeof *cap);
    assert_int_equal(bc_breaker_init(b, &conf, 0), 0);
}

static void assert_action(bc_breaker_action_t a, bc_breaker_do_t what, uint32_t delay)
{
    assert_int_equal(a.what, what);
    assert_int_equal(a.delay_ms, delay);
}

static void test_defaults_and_validation(void **state)
{
    bc_breaker_conf_t c;
    bc_breaker_t b;

    bc_breaker_conf_default(&c);
    assert_int_equal(c.attempts, 4);
    assert_int_equal(c.delay_ms[0], 1000);
    assert_int_equal(c.delay_ms[1], 2000);
    assert_int_equal(c.delay_ms[2], 4000);
    assert_int_equal(c.delay_ms[3], 8000);
    assert_int_equal(c.probe_interval_ms, 30000);
    assert_null(c.log);
    assert_int_equal(bc_breaker_conf_validate(&c), 0);

    c.attempts = 0;
    assert_int_equal(bc_breaker_conf_validate(&c), -EINVAL);
    assert_int_equal(bc_breaker_init(&b, &c, 0), -EINVAL);
    c.attempts = BC_BREAKER_MAX_ATTEMPTS + 1;
    assert_int_equal(bc_breaker_conf_validate(&c), -EINVAL);
    c.attempts = 5; /* delay_ms[4] is 0 */
    assert_int_equal(bc_breaker_conf_validate(&c), -EINVAL);
    c.attempts = 4;
    c.probe_interval_ms = 0;
    assert_int_equal(bc_breaker_conf_validate(&c), -EINVAL);
    assert_int_equal(bc_breaker_conf_validate(NULL), -EINVAL);

    /* NULL conf: defaults, no logging; a whole outage runs without a callback. */
    assert_int_equal(bc_breaker_init(&b, NULL, 5), 0);
    assert_int_equal(b.state, BC_BREAKER_STATE_INIT);
    assert_false(bc_breaker_allows(&b));
    bc_breaker_on_connected(&b, 10);
    assert_true(bc_breaker_allows(&b));
    assert_action(bc_breaker_on_disconnected(&b, 20, NULL, BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_RECONNECT_AFTER, 1000);
}

/* Exercise 3, step 4: closed, refused once, restored on attempt 2; step 5's metrics. */
static void test_tutorial_short_outage(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;

    setup_breaker(&b, &cap, NULL);
    assert_false(bc_breaker_allows(&b));
    assert_action(bc_breaker_on_connected(&b, 0), BC_BREAKER_NONE, 0);
    EXPECT(&cap, "Redis connection established"); /* start-up: nothing else */
    assert_int_equal(cap.level[0], BC_BREAKER_LOG_INFO);
    assert_action(bc_breaker_on_connected(&b, 10), BC_BREAKER_NONE, 0); /* duplicate: ignored */
    assert_int_equal(cap.n, 0);
    assert_true(bc_breaker_allows(&b));
    assert_action(bc_breaker_on_disconnected(&b, 15000, NULL, BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_RECONNECT_AFTER, 1000);
    EXPECT(&cap, "Redis error: Connection closed", "Circuit breaker triggered (attempt 1/4)",
           "Retrying Redis operation in 1000ms");
    assert_false(bc_breaker_allows(&b));
    assert_action(bc_breaker_on_connect_failed(&b, 16000, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 2000);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker triggered (attempt 2/4)",
           "Retrying Redis operation in 2000ms");
    bc_breaker_snapshot(&b, 17000, &s);
    assert_int_equal(s.state, BC_BREAKER_STATE_RECONNECTING);
    assert_int_equal(s.attempt, 2);
    assert_int_equal(s.down_ms_total, 2000);
    assert_int_equal(s.down_since_ms, 15000);
    assert_string_equal(s.last_error, "Connection refused");

    assert_action(bc_breaker_on_connected(&b, 21000), BC_BREAKER_NONE, 0);
    EXPECT(&cap, "Redis connection restored", "Circuit breaker reset");
    assert_true(bc_breaker_allows(&b));
    bc_breaker_snapshot(&b, 30000, &s);
    assert_int_equal(s.state, BC_BREAKER_STATE_CLOSED);
    assert_int_equal(s.attempt, 0);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONN_LOST], 1);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONNECT_FAILED], 1);
    assert_int_equal(s.triggers_total, 2);
    assert_int_equal(s.reconnections, 1);
    assert_int_equal(s.down_ms_total, 6000);
    assert_int_equal(s.open_ms_total, 0);
    assert_int_equal(s.times_opened, 0);
    assert_int_equal(s.down_since_ms, 0);
    assert_int_equal(s.last_change_ms, 21000);
}

/* Exercise 3, step 6: the whole ladder, open, probes, reconnect with downtime. */
static void test_full_ladder_and_open(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    uint64_t t = 30000;

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, 0);
    cap.n = 0;
    assert_action(bc_breaker_on_disconnected(&b, t, "", BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_RECONNECT_AFTER, 1000);
    EXPECT(&cap, "Redis error: Connection closed", "Circuit breaker triggered (attempt 1/4)",
           "Retrying Redis operation in 1000ms");
    assert_int_equal(cap.n, 0);

    t += 1000;
    assert_action(bc_breaker_on_connect_failed(&b, t, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 2000);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker triggered (attempt 2/4)",
           "Retrying Redis operation in 2000ms");
    t += 2000;
    assert_action(bc_breaker_on_connect_failed(&b, t, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 4000);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker triggered (attempt 3/4)",
           "Retrying Redis operation in 4000ms");
    t += 4000;
    assert_action(bc_breaker_on_connect_failed(&b, t, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 8000);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker triggered (attempt 4/4)",
           "Retrying Redis operation in 8000ms");
    t += 8000;
    assert_action(bc_breaker_on_connect_failed(&b, t, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 30000);
    assert_int_equal(cap.level[1], BC_BREAKER_LOG_ERROR);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker open: Redis unavailable",
           "Coordinator entering degraded mode");
    assert_false(bc_breaker_allows(&b));
    bc_breaker_snapshot(&b, t + 500, &s);
    assert_int_equal(s.state, BC_BREAKER_STATE_OPEN);
    assert_int_equal(s.times_opened, 1);
    assert_int_equal(s.open_ms_total, 500);
    assert_int_equal(s.down_ms_total, 15500);
    assert_int_equal(s.last_change_ms, t);

    /* One failed probe, then success 30 s later: 15 s ladder + 30 s + 30 s = 75 s. */
    t += 30000;
    assert_action(bc_breaker_on_connect_failed(&b, t, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 30000);
    EXPECT(&cap,
           "Circuit breaker still open: probe failed (Connection refused), next probe in 30000ms");
    t += 30000;
    assert_action(bc_breaker_on_connected(&b, t), BC_BREAKER_NONE, 0);
    EXPECT(&cap, "Redis reconnected after 75s downtime", "Redis connection restored",
           "Circuit breaker reset");
    bc_breaker_snapshot(&b, t + 99999, &s);
    assert_int_equal(s.state, BC_BREAKER_STATE_CLOSED);
    assert_int_equal(s.open_ms_total, 60000);
    assert_int_equal(s.down_ms_total, 75000);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONN_LOST], 1);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONNECT_FAILED], 5);
    assert_int_equal(s.triggers_total, 6);
    assert_int_equal(s.reconnections, 1);
    assert_int_equal(s.times_opened, 1);
    assert_int_equal(s.probes_failed, 0);
}

/* Probes repeat every interval, forever; open time keeps accumulating. */
static void test_probe_repetition(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    uint64_t t = 0;
    int i, k;

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, t);
    bc_breaker_on_disconnected(&b, t, NULL, BC_BREAKER_REASON_CONN_LOST);
    for (k = 0; k < 4; k++)
        bc_breaker_on_connect_failed(&b, t += 1000u << k, NULL);
    assert_int_equal(b.state, BC_BREAKER_STATE_OPEN);
    cap.n = 0;
    for (i = 1; i <= 1000; i++) {
        t += 30000;
        assert_action(bc_breaker_on_connect_failed(&b, t, NULL), BC_BREAKER_RECONNECT_AFTER, 30000);
        assert_int_equal(cap.n, 1);
        assert_int_equal(cap.level[0], BC_BREAKER_LOG_INFO);
        assert_string_equal(
            cap.line[0],
            "Circuit breaker still open: probe failed (Connection failed), next probe in 30000ms");
        cap.n = 0;
        assert_int_equal(b.state, BC_BREAKER_STATE_OPEN);
    }
    bc_breaker_snapshot(&b, t + 1234, &s);
    assert_int_equal(s.probes_failed, 1000);
    assert_int_equal(s.times_opened, 1);
    assert_int_equal(s.open_ms_total, 1000ull * 30000 + 1234);
    assert_int_equal(s.down_ms_total, 15000 + 1000ull * 30000 + 1234);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONNECT_FAILED], 1004);
    assert_string_equal(s.last_error, "Connection failed");
}

/* Success after each possible number of failed attempts resets to a fresh ladder. */
static void test_reset_from_each_state(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    unsigned fails, k;
    uint64_t t = 1000;

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, t);
    for (fails = 0; fails <= 4; fails++) {
        bc_breaker_on_disconnected(&b, t, NULL, BC_BREAKER_REASON_CONN_LOST);
        for (k = 0; k < fails; k++)
            bc_breaker_on_connect_failed(&b, t += 1000u << k, "Connection refused");
        assert_int_equal(b.state,
                         fails < 4 ? BC_BREAKER_STATE_RECONNECTING : BC_BREAKER_STATE_OPEN);
        if (fails < 4)
            assert_int_equal(b.attempt, fails + 1);
        cap.n = 0;
        t += 2500;
        bc_breaker_on_connected(&b, t);
        if (fails < 4) {
            EXPECT(&cap, "Redis connection restored", "Circuit breaker reset");
        } else {
            EXPECT(&cap, "Redis reconnected after 17s downtime", "Redis connection restored",
                   "Circuit breaker reset");
        }
        assert_int_equal(b.state, BC_BREAKER_STATE_CLOSED);
        assert_int_equal(b.attempt, 0);
        /* The next loss starts again at attempt 1 with the first delay. */
        t += 100;
        assert_action(bc_breaker_on_disconnected(&b, t, NULL, BC_BREAKER_REASON_CONN_LOST),
                      BC_BREAKER_RECONNECT_AFTER, 1000);
        EXPECT(&cap, "Redis error: Connection closed", "Circuit breaker triggered (attempt 1/4)",
               "Retrying Redis operation in 1000ms");
        bc_breaker_on_connected(&b, t);
        cap.n = 0;
    }
    bc_breaker_snapshot(&b, t, &s);
    assert_int_equal(s.reconnections, 10);
    assert_int_equal(s.times_opened, 1);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONN_LOST], 10);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONNECT_FAILED], 0 + 1 + 2 + 3 + 4);
}

/* Whole seconds of downtime are counted from the loss, not from the opening. */
static void test_downtime_seconds(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    int k;

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, 0);
    bc_breaker_on_disconnected(&b, 1000, NULL, BC_BREAKER_REASON_CONN_LOST);
    for (k = 0; k < 4; k++)
        bc_breaker_on_connect_failed(&b, 2000 + (uint64_t)k, NULL);
    cap.n = 0;
    bc_breaker_on_connected(&b, 1000 + 29999); /* 29.999 s: whole seconds round down */
    EXPECT(&cap, "Redis reconnected after 29s downtime", "Redis connection restored",
           "Circuit breaker reset");

    /* A clock that goes backwards never produces negative (huge) durations. */
    bc_breaker_on_disconnected(&b, 50000, NULL, BC_BREAKER_REASON_CONN_LOST);
    for (k = 0; k < 4; k++)
        bc_breaker_on_connect_failed(&b, 60000, NULL);
    bc_breaker_snapshot(&b, 5000, &s);
    assert_int_equal(s.open_ms_total, 28996); /* the first outage only */
    assert_int_equal(s.down_ms_total, 29999); /* the first outage only */
    cap.n = 0;
    bc_breaker_on_connected(&b, 1);
    EXPECT(&cap, "Redis reconnected after 0s downtime", "Redis connection restored",
           "Circuit breaker reset");
}

/* A disconnect reported while already reconnecting or open changes nothing. */
static void test_disconnect_while_down_ignored(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    int k;

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, 0);
    bc_breaker_on_disconnected(&b, 10, NULL, BC_BREAKER_REASON_CONN_LOST);
    cap.n = 0;
    assert_action(bc_breaker_on_disconnected(&b, 20, "again", BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_NONE, 0);
    assert_action(bc_breaker_on_disconnected(&b, 30, "t/o", BC_BREAKER_REASON_TIMEOUT),
                  BC_BREAKER_NONE, 0);
    assert_int_equal(cap.n, 0);
    bc_breaker_snapshot(&b, 40, &s);
    assert_int_equal(s.triggers_total, 1);
    assert_int_equal(s.attempt, 1);
    assert_int_equal(s.down_since_ms, 10);
    assert_int_equal(s.last_change_ms, 10);
    assert_string_equal(s.last_error, "Connection closed");

    for (k = 0; k < 4; k++)
        bc_breaker_on_connect_failed(&b, 100, NULL);
    cap.n = 0;
    assert_action(bc_breaker_on_disconnected(&b, 200, NULL, BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_NONE, 0);
    assert_int_equal(cap.n, 0);
    bc_breaker_snapshot(&b, 200, &s);
    assert_int_equal(s.state, BC_BREAKER_STATE_OPEN);
    assert_int_equal(s.triggers_total, 5);
}

/* A failed connect at start-up enters the same ladder. */
static void test_startup_failure(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;

    setup_breaker(&b, &cap, NULL);
    assert_action(bc_breaker_on_connect_failed(&b, 50, "Connection refused"),
                  BC_BREAKER_RECONNECT_AFTER, 1000);
    EXPECT(&cap, "Redis error: Connection refused", "Circuit breaker triggered (attempt 1/4)",
           "Retrying Redis operation in 1000ms");
    assert_action(bc_breaker_on_connect_failed(&b, 1050, NULL), BC_BREAKER_RECONNECT_AFTER, 2000);
    EXPECT(&cap, "Redis error: Connection failed", "Circuit breaker triggered (attempt 2/4)",
           "Retrying Redis operation in 2000ms");
    bc_breaker_on_connected(&b, 3050);
    EXPECT(&cap, "Redis connection restored", "Circuit breaker reset");
    bc_breaker_snapshot(&b, 3050, &s);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONNECT_FAILED], 2);
    assert_int_equal(s.down_ms_total, 3000);
}

/* Timeouts are their own trigger reason and log the caller's text. */
static void test_timeout_reason_and_error_text(void **state)
{
    bc_breaker_t b;
    capture_t cap;
    bc_breaker_snapshot_t s;
    char longerr[400];

    setup_breaker(&b, &cap, NULL);
    bc_breaker_on_connected(&b, 0);
    cap.n = 0;
    bc_breaker_on_disconnected(&b, 5, "Command timed out after 5000ms", BC_BREAKER_REASON_TIMEOUT);
    EXPECT(&cap, "Redis error: Command timed out after 5000ms",
           "Circuit breaker triggered (attempt 1/4)", "Retrying Redis operation in 1000ms");
    bc_breaker_snapshot(&b, 5, &s);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_TIMEOUT], 1);
    assert_int_equal(s.triggers_total, 1);

    /* Multi-line server errors become one line; long ones are truncated. */
    bc_breaker_on_connect_failed(&b, 10, "ERR bad\r\nthing");
    assert_string_equal(cap.line[0], "Redis error: ERR bad  thing");
    cap.n = 0;
    memset(longerr, 'x', sizeof longerr - 1);
    longerr[sizeof longerr - 1] = '\0';
    bc_breaker_on_connect_failed(&b, 20, longerr);
    bc_breaker_snapshot(&b, 20, &s);
    assert_int_equal(strlen(s.last_error), BC_BREAKER_ERRLEN - 1);
    assert_int_equal(strlen(cap.line[0]), strlen("Redis error: ") + BC_BREAKER_ERRLEN - 1);

    /* An out-of-range reason is counted as a lost connection. */
    bc_breaker_on_connected(&b, 30);
    bc_breaker_on_disconnected(&b, 40, NULL, (bc_breaker_reason_t)77);
    bc_breaker_snapshot(&b, 40, &s);
    assert_int_equal(s.triggers[BC_BREAKER_REASON_CONN_LOST], 1);
}

/* Small configured values (as tests and chaos runs use). */
static void test_custom_config(void **state)
{
    bc_breaker_conf_t c;
    bc_breaker_t b;
    capture_t cap;

    memset(&c, 0, sizeof c);
    c.attempts = 2;
    c.delay_ms[0] = 10;
    c.delay_ms[1] = 25;
    c.probe_interval_ms = 50;
    setup_breaker(&b, &cap, &c);
    bc_breaker_on_connected(&b, 0);
    cap.n = 0;
    assert_action(bc_breaker_on_disconnected(&b, 100, NULL, BC_BREAKER_REASON_CONN_LOST),
                  BC_BREAKER_RECONNECT_AFTER, 10);
    EXPECT(&cap, "Redis error: Connection closed", "Circuit breaker triggered (attempt 1/2)",
           "Retrying Redis operation in 10ms");
    assert_action(bc_breaker_on_connect_failed(&b, 110, NULL), BC_BREAKER_RECONNECT_AFTER, 25);
    EXPECT(&cap, "Redis error: Connection failed", "Circuit breaker triggered (attempt 2/2)",
           "Retrying Redis operation in 25ms");
    assert_action(bc_breaker_on_connect_failed(&b, 135, NULL), BC_BREAKER_RECONNECT_AFTER, 50);
    EXPECT(&cap, "Redis error: Connection failed", "Circuit breaker open: Redis unavailable",
           "Coordinator entering degraded mode");
    assert_action(bc_breaker_on_connect_failed(&b, 185, NULL), BC_BREAKER_RECONNECT_AFTER, 50);
    cap.n = 0;
    bc_breaker_on_connected(&b, 2100);
    EXPECT(&cap, "Redis reconnected after 2s downtime", "Redis connection restored",
           "Circuit breaker reset");
}

static void test_names(void **state)
{
    static const char *const st[] = {"init", "closed", "reconnecting", "open", "unknown"};
    static const char *const rs[] = {"connection_lost", "connect_failed", "timeout", "unknown"};
    int i;

    for (i = 0; i < 5; i++)
        assert_string_equal(bc_breaker_state_name((bc_breaker_state_t)i), st[i]);
    for (i = 0; i < 4; i++)
        assert_string_equal(bc_breaker_reason_name((bc_breaker_reason_t)i), rs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_validation),
        cmocka_unit_test(test_tutorial_short_outage),
        cmocka_unit_test(test_full_ladder_and_open),
        cmocka_unit_test(test_probe_repetition),
        cmocka_unit_test(test_reset_from_each_state),
        cmocka_unit_test(test_downtime_seconds),
        cmocka_unit_test(test_disconnect_while_down_ignored),
        cmocka_unit_test(test_startup_failure),
        cmocka_unit_test(test_timeout_reason_and_error_text),
        cmocka_unit_test(test_custom_config),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
