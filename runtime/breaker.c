/* breaker.c - Redis reconnection backoff and circuit breaker (PROTOCOL §6).
 *
 * Key design decision: the breaker is a pure state machine driven by events the caller
 * reports with an injected monotonic time. It never schedules anything itself; each event
 * returns the one action to take (nothing, or reconnect after N ms), so the I/O thread owns a
 * single reconnect timer and tests replay whole outages without sleeping.
 */
#include "breaker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const bc_breaker_action_t none = {BC_BREAKER_NONE, 0};

static uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0; /* a clock going backwards counts as no time */
}

static void say(const bc_breaker_t *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const bc_breaker_t *b, int level, const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (!b->conf.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    b->conf.log(b->conf.log_arg, level, line);
}

/* Keep a one-line copy of the error text (control characters become spaces). */
static void remember_error(bc_breaker_t *b, const char *err, const char *dflt)
{
    size_t i;

    if (!err || !*err)
        err = dflt;
    snprintf(b->last_error, sizeof b->last_error, "%s", err);
    for (i = 0; b->last_error[i]; i++)
        if ((unsigned char)b->last_error[i] < 0x20 || b->last_error[i] == 0x7f)
            b->last_error[i] = ' ';
}

static void set_state(bc_breaker_t *b, bc_breaker_state_t s, uint64_t now)
{
    b->state = s;
    b->last_change_ms = now;
}

static bc_breaker_action_t schedule_attempt(bc_breaker_t *b)
{
    uint32_t delay = b->conf.delay_ms[b->attempt - 1];

    say(b, BC_BREAKER_LOG_WARN, "Circuit breaker triggered (attempt %u/%u)", b->attempt,
        b->conf.attempts);
    say(b, BC_BREAKER_LOG_INFO, "Retrying Redis operation in %" PRIu32 "ms", delay);
    return (bc_breaker_action_t){BC_BREAKER_RECONNECT_AFTER, delay};
}

/* First failure after being connected (or at start-up): enter the ladder at attempt 1. */
static bc_breaker_action_t start_ladder(bc_breaker_t *b, uint64_t now, const char *err,
                                        const char *dflt, bc_breaker_reason_t reason)
{
    remember_error(b, err, dflt);
    b->triggers[reason]++;
    b->down_since_ms = now;
    b->attempt = 1;
    set_state(b, BC_BREAKER_STATE_RECONNECTING, now);
    say(b, BC_BREAKER_LOG_ERROR, "Redis error: %s", b->last_error);
    return schedule_attempt(b);
}

void bc_breaker_conf_default(bc_breaker_conf_t *c)
{
    unsigned i;

    memset(c, 0, sizeof *c);
    c->attempts = BC_BREAKER_DEFAULT_ATTEMPTS;
    for (i = 0; i < BC_BREAKER_DEFAULT_ATTEMPTS; i++)
        c->delay_ms[i] = (uint32_t)BC_BREAKER_DEFAULT_BASE_MS << i;
    c->probe_interval_ms = BC_BREAKER_DEFAULT_PROBE_MS;
}

int bc_breaker_conf_validate(const bc_breaker_conf_t *c)
{
    unsigned i;

    if (!c || c->attempts < 1 || c->attempts > BC_BREAKER_MAX_ATTEMPTS)
        return -EINVAL;
    for (i = 0; i < c->attempts; i++)
        if (c->delay_ms[i] == 0)
            return -EINVAL;
    return c->probe_interval_ms ? 0 : -EINVAL;
}

int bc_breaker_init(bc_breaker_t *b, const bc_breaker_conf_t *conf, uint64_t now_ms)
{
    memset(b, 0, sizeof *b);
    if (conf) {
        if (bc_breaker_conf_validate(conf) < 0)
            return -EINVAL;
        b->conf = *conf;
    } else {
        bc_breaker_conf_default(&b->conf);
    }
    set_state(b, BC_BREAKER_STATE_INIT, now_ms);
    return 0;
}

bc_breaker_action_t bc_breaker_on_connected(bc_breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case BC_BREAKER_STATE_INIT:
        set_state(b, BC_BREAKER_STATE_CLOSED, now_ms);
        say(b, BC_BREAKER_LOG_INFO, "Redis connection established");
        return none;
    case BC_BREAKER_STATE_CLOSED:
        return none;
    case BC_BREAKER_STATE_OPEN:
        b->open_ms_done += since(now_ms, b->open_since_ms);
        say(b, BC_BREAKER_LOG_INFO, "Redis reconnected after %llus downtime",
            (unsigned long long)(since(now_ms, b->down_since_ms) / 1000));
        break;
    case BC_BREAKER_STATE_RECONNECTING:
        break;
    }
    b->down_ms_done += since(now_ms, b->down_since_ms);
    b->reconnections++;
    b->attempt = 0;
    b->probes_failed = 0;
    b->down_since_ms = 0;
    b->open_since_ms = 0;
    set_state(b, BC_BREAKER_STATE_CLOSED, now_ms);
    say(b, BC_BREAKER_LOG_INFO, "Redis connection restored");
    say(b, BC_BREAKER_LOG_INFO, "Circuit breaker reset");
    return none;
}

bc_breaker_action_t bc_breaker_on_disconnected(bc_breaker_t *b, uint64_t now_ms, const char *err,
                                               bc_breaker_reason_t reason)
{
    if ((unsigned)reason >= BC_BREAKER_REASON_COUNT)
        reason = BC_BREAKER_REASON_CONN_LOST;
    if (b->state != BC_BREAKER_STATE_CLOSED && b->state != BC_BREAKER_STATE_INIT)
        return none; /* already handling an outage: the pending reconnect stands */
    return start_ladder(b, now_ms, err, "Connection closed", reason);
}

bc_breaker_action_t bc_breaker_on_connect_failed(bc_breaker_t *b, uint64_t now_ms, const char *err)
{
    const bc_breaker_reason_t why = BC_BREAKER_REASON_CONNECT_FAILED;

    if (b->state == BC_BREAKER_STATE_CLOSED || b->state == BC_BREAKER_STATE_INIT)
        return start_ladder(b, now_ms, err, "Connection failed", why);

    remember_error(b, err, "Connection failed");
    b->triggers[why]++;
    if (b->state == BC_BREAKER_STATE_OPEN) {
        b->probes_failed++;
        say(b, BC_BREAKER_LOG_INFO,
            "Circuit breaker still open: probe failed (%s), next probe in %" PRIu32 "ms",
            b->last_error, b->conf.probe_interval_ms);
        return (bc_breaker_action_t){BC_BREAKER_RECONNECT_AFTER, b->conf.probe_interval_ms};
    }

    say(b, BC_BREAKER_LOG_ERROR, "Redis error: %s", b->last_error);
    if (b->attempt < b->conf.attempts) {
        b->attempt++;
        return schedule_attempt(b);
    }
    b->attempt = 0;
    b->probes_failed = 0;
    b->times_opened++;
    b->open_since_ms = now_ms;
    set_state(b, BC_BREAKER_STATE_OPEN, now_ms);
    say(b, BC_BREAKER_LOG_ERROR, "Circuit breaker open: Redis unavailable");
    say(b, BC_BREAKER_LOG_WARN, "Coordinator entering degraded mode");
    return (bc_breaker_action_t){BC_BREAKER_RECONNECT_AFTER, b->conf.probe_interval_ms};
}

int bc_breaker_allows(const bc_breaker_t *b)
{
    return b->state == BC_BREAKER_STATE_CLOSED;
}

void bc_breaker_snapshot(const bc_breaker_t *b, uint64_t now_ms, bc_breaker_snapshot_t *s)
{
    int down = b->state == BC_BREAKER_STATE_RECONNECTING || b->state == BC_BREAKER_STATE_OPEN;
    unsigned i;

    memset(s, 0, sizeof *s);
    s->state = b->state;
    s->attempt = b->attempt;
    s->attempts = b->conf.attempts;
    s->probes_failed = b->probes_failed;
    s->times_opened = b->times_opened;
    for (i = 0; i < BC_BREAKER_REASON_COUNT; i++) {
        s->triggers[i] = b->triggers[i];
        s->triggers_total += b->triggers[i];
    }
    s->reconnections = b->reconnections;
    s->open_ms_total = b->open_ms_done;
    if (b->state == BC_BREAKER_STATE_OPEN)
        s->open_ms_total += since(now_ms, b->open_since_ms);
    s->down_ms_total = b->down_ms_done + (down ? since(now_ms, b->down_since_ms) : 0);
    s->down_since_ms = down ? b->down_since_ms : 0;
    s->last_change_ms = b->last_change_ms;
    memcpy(s->last_error, b->last_error, sizeof s->last_error);
}

const char *bc_breaker_state_name(bc_breaker_state_t s)
{
    switch (s) {
    case BC_BREAKER_STATE_INIT:
        return "init";
    case BC_BREAKER_STATE_CLOSED:
        return "closed";
    case BC_BREAKER_STATE_RECONNECTING:
        return "reconnecting";
    case BC_BREAKER_STATE_OPEN:
        return "open";
    }
    return "unknown";
}

const char *bc_breaker_reason_name(bc_breaker_reason_t r)
{
    switch (r) {
    case BC_BREAKER_REASON_CONN_LOST:
        return "connection_lost";
    case BC_BREAKER_REASON_CONNECT_FAILED:
        return "connect_failed";
    case BC_BREAKER_REASON_TIMEOUT:
        return "timeout";
    case BC_BREAKER_REASON_COUNT:
        break;
    }
    return "unknown";
}
