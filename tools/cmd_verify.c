/* cmd_verify.c - `blockcoord verify-setup`: the tutorial's setup check.
 *
 * One line per check, ✅ or ❌ with the fix underneath; exit 0 when every check passes. Uses
 * the same Redis settings as the hub (REDIS_URL, REDIS_PASSWORD, REDIS_DB, ...) and a plain
 * synchronous hiredis connection: nothing here needs the runtime.
 *
 * The keyspace-notification check is informational (⚠️): where CONFIG is refused, coordinators
 * still work through publish hints and the poll fallback, so it never fails the run.
 */
#include "cli.h"

#include "redis_conf.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define CLOCK_LIMIT_MS 1000
#define MIN_SECRET 32

typedef struct {
    int failures;
} verify_t;

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(verify_t *v, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(const char *note, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("✅ ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static void bad(verify_t *v, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("❌ ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (fix)
        printf("   fix: %s\n", fix);
    v->failures++;
}

static void warn(const char *note, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("⚠️  ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (note)
        printf("   note: %s\n", note);
}

static void verify_usage(FILE *f)
{
    fputs("usage: blockcoord verify-setup\n"
          "  Check what coordinators need: Redis reachable (REDIS_URL, REDIS_PASSWORD,\n"
          "  REDIS_DB), Redis >= 6.2 (GETDEL), BLOCKING_COORDINATION_SECRET exported and at\n"
          "  least 32 bytes, keyspace notifications (informational) and the clock offset to\n"
          "  Redis (within 1 s).\n"
          "exit status: 0 every check passed, 1 a check failed, 2 usage error\n",
          f);
}

/* "redis_version:7.0.15" from INFO server, into buf. */
static int redis_version(redisContext *ctx, char *buf, size_t len, int *major, int *minor)
{
    char e[256];
    redisReply *r = bc_cli_redis_cmd(ctx, e, sizeof e, "INFO server");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    const char *p = strstr(r->str, "redis_version:");
    int rc = -1;
    if (p) {
        p += strlen("redis_version:");
        size_t n = strcspn(p, "\r\n");
        snprintf(buf, len, "%.*s", (int)n, p);
        *major = *minor = 0;
        if (sscanf(buf, "%d.%d", major, minor) >= 1)
            rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

static void check_secret(verify_t *v)
{
    static const char *fix_unset =
        "export BLOCKING_COORDINATION_SECRET=$(openssl rand -hex 32) and give every "
        "coordinator the same value (note: `source .env` alone does not export its "
        "variables; use `set -a; source .env; set +a`, and write the generated value into "
        ".env rather than the $(...) command, which makes a new secret each time)";
    const char *s = getenv("BLOCKING_COORDINATION_SECRET");
    if (s == NULL || *s == '\0') {
        bad(v, fix_unset, "BLOCKING_COORDINATION_SECRET is not set in the environment");
        return;
    }
    size_t n = strlen(s);
    if (strstr(s, "$(") != NULL) {
        bad(v, fix_unset,
            "BLOCKING_COORDINATION_SECRET holds an unexpanded command (\"%.40s\"), not a secret",
            s);
        return;
    }
    if (n < MIN_SECRET) {
        bad(v,
            "use at least 32 random bytes: export BLOCKING_COORDINATION_SECRET=$(openssl rand "
            "-hex 32)",
            "BLOCKING_COORDINATION_SECRET is only %zu bytes (at least %d needed)", n, MIN_SECRET);
        return;
    }
    ok("BLOCKING_COORDINATION_SECRET set (%zu bytes)", n);
}

#define FALLBACK "coordinators fall back to publish hints and a 500 ms poll"

static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int covers(const char *flags)
{
    int k = strchr(flags, 'K') != NULL, a = strchr(flags, 'A') != NULL;
    int dollar = a || strchr(flags, '$') != NULL, l = a || strchr(flags, 'l') != NULL;
    return k && dollar && l;
}

static void check_keyspace(redisContext *ctx)
{
    static const char *note = "signals written by redis-cli or Node then wake a waiter within "
                              "500 ms instead of at once (informational, not a failure)";
    char e[256];
    redisReply *r = bc_cli_redis_cmd(ctx, e, sizeof e, "CONFIG GET notify-keyspace-events");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        warn(note, "Keyspace notifications unavailable (CONFIG refused: %s): %s",
             r ? "unexpected reply" : trim(e), FALLBACK);
        return;
    }
    char cur[64];
    snprintf(cur, sizeof cur, "%s", r->element[1]->str);
    freeReplyObject(r);
    if (covers(cur)) {
        ok("Keyspace notifications available (notify-keyspace-events \"%s\")", cur);
        return;
    }
    /* What the runtime does at connect: add K, $ and l to what is there, never remove. */
    char want[80];
    snprintf(want, sizeof want, "%s%s%s%s", cur, strchr(cur, 'K') ? "" : "K",
             strchr(cur, '$') || strchr(cur, 'A') ? "" : "$",
             strchr(cur, 'l') || strchr(cur, 'A') ? "" : "l");
    r = bc_cli_redis_cmd(ctx, e, sizeof e, "CONFIG SET notify-keyspace-events %s", want);
    if (r == NULL) {
        warn(note, "Keyspace notifications unavailable (CONFIG refused: %s): %s", trim(e),
             FALLBACK);
        return;
    }
    freeReplyObject(r);
    r = bc_cli_redis_cmd(ctx, e, sizeof e, "CONFIG GET notify-keyspace-events");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(want, sizeof want, "%s", r->element[1]->str);
    if (r)
        freeReplyObject(r);
    ok("Keyspace notifications available (notify-keyspace-events \"%s\", was \"%s\": set as "
       "coordinators do at connect)",
       want, cur);
}

static int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void check_clock(verify_t *v, redisContext *ctx)
{
    int64_t best_rtt = -1, best_off = 0;
    char e[256] = "no reply";
    for (int i = 0; i < 5; i++) {
        int64_t t0 = realtime_us();
        redisReply *r = bc_cli_redis_cmd(ctx, e, sizeof e, "TIME");
        int64_t t1 = realtime_us();
        if (r == NULL)
            break;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING) {
            int64_t us = strtoll(r->element[0]->str, NULL, 10) * 1000000 +
                         strtoll(r->element[1]->str, NULL, 10);
            int64_t rtt = t1 - t0;
            if (best_rtt < 0 || rtt < best_rtt) {
                best_rtt = rtt;
                best_off = us - (t0 + rtt / 2);
            }
        }
        freeReplyObject(r);
    }
    if (best_rtt < 0) {
        bad(v, NULL, "Clock offset to Redis unknown (TIME failed: %s)", e);
        return;
    }
    int64_t ms = best_off / 1000;
    if (ms > CLOCK_LIMIT_MS || ms < -CLOCK_LIMIT_MS) {
        bad(v,
            "synchronise the clocks with NTP (timedatectl set-ntp true, or chrony) on this host "
            "and the Redis host; coordinators use Redis time for their own decisions, but peers "
            "and the tutorial's $(date +%s)000 timestamps use local clocks",
            "Clock offset to Redis: %+lld ms (more than %d ms)", (long long)ms, CLOCK_LIMIT_MS);
        return;
    }
    ok("Clock offset to Redis: %+lld ms", (long long)ms);
}

int bc_cli_verify_setup(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            verify_usage(stdout);
            return 0;
        }
        verify_usage(stderr);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord verify-setup: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    verify_t v = {0};
    static const char *fix_redis =
        "start Redis (redis-server, or docker run -d -p 6379:6379 redis:7-alpine) or point "
        "REDIS_URL at it (redis://[:password@]host:port/db or unix:///path/to/redis.sock; "
        "REDIS_PASSWORD for AUTH)";

    bc_redis_conf_t conf;
    char err[512], target[300];
    redisContext *ctx = NULL;
    if (bc_redis_conf_from_env(&conf, err, sizeof err) != 0) {
        bad(&v, "fix the variable named above (REDIS_URL=redis://host:port/db)",
            "Redis settings invalid: %s", err);
    } else {
        bc_redis_conf_describe(&conf, target, sizeof target);
        ctx = bc_cli_redis_connect(&conf, err, sizeof err);
        if (ctx == NULL)
            bad(&v, fix_redis, "Redis connection failed (%s: %s)", target, err);
    }
    if (ctx) {
        char ver[64] = "unknown";
        int major = 0, minor = 0;
        int vrc = redis_version(ctx, ver, sizeof ver, &major, &minor);
        ok("Redis connection successful (%s, version %s)", target, ver);
        if (vrc != 0)
            bad(&v, "use Redis 6.2 or newer", "Redis version unknown (INFO server unreadable)");
        else if (major > 6 || (major == 6 && minor >= 2))
            ok("Redis version supports GETDEL (>= 6.2)");
        else
            bad(&v, "upgrade to Redis 6.2 or newer (coordinators consume signals with GETDEL)",
                "Redis %s is too old: GETDEL needs >= 6.2", ver);
    }
    check_secret(&v);
    if (ctx) {
        check_keyspace(ctx);
        check_clock(&v, ctx);
        redisFree(ctx);
    } else {
        printf("   (skipped: Redis version, keyspace notification and clock checks need a "
               "connection)\n");
    }
    bc_redis_conf_free(&conf);
    printf("%s\n", v.failures ? "Setup incomplete: fix the ❌ lines above."
                              : "Setup complete: coordinators can run here.");
    return v.failures ? 1 : 0;
}
