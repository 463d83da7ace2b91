/* test_redis_conf.c - unit tests for runtime/redis_conf.c (URL and environment parsing).
 *
 * Table-driven: valid URLs with the fields they must produce, invalid URLs and environment
 * values with the exact message they must produce. Every invalid case also checks that the
 * configuration is left as it was and that no password text leaks into the message.
 */
#include "harness.h"

#include "redis_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unset every variable bc_redis_conf_from_env reads. */
static int clear_env(void **state)
{
    char names[] = "REDIS_URL REDIS_PASSWORD REDIS_DB REDIS_POOL_SIZE REDIS_TIMEOUT_MS "
                   "REDIS_QUEUE_HEARTBEAT REDIS_QUEUE_SIGNAL REDIS_QUEUE_ACK REDIS_QUEUE_OTHER "
                   "REDIS_BREAKER_PROBE_MS REDIS_BREAKER_DELAYS_MS";
    char *save, *n;

    for (n = strtok_r(names, " ", &save); n; n = strtok_r(NULL, " ", &save))
        unsetenv(n);
    return 0;
}

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

typedef struct good_url {
    const char *url;
    const char *host, *unix_path, *username, *password;
    int port, db;
} good_url_t;

#define LONGPATH                                                                                   \
    "/tmp/" /* 5 + 102 = 107 bytes: exactly the sun_path limit */                                  \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"        \
    "aaaaaaaaaaaaaaaaa"

static const good_url_t good[] = {
    {"redis://localhost", "localhost", NULL, NULL, NULL, 6379, 0},
    {"redis://localhost:6380", "localhost", NULL, NULL, NULL, 6380, 0},
    {"redis://localhost:6380/2", "localhost", NULL, NULL, NULL, 6380, 2},
    {"redis://localhost/3", "localhost", NULL, NULL, NULL, 6379, 3},
    {"redis://127.0.0.1:6379/", "127.0.0.1", NULL, NULL, NULL, 6379, 0},
    {"redis://:secret@host:1/15", "host", NULL, NULL, "secret", 1, 15},
    {"redis://alice:s3cr%40t%2F%3f%23%25@host/0", "host", NULL, "alice", "s3cr@t/?#%", 6379, 0},
    {"redis://%61lice:pw@host", "host", NULL, "alice", "pw", 6379, 0},
    {"redis://user:@host", "host", NULL, "user", NULL, 6379, 0},
    {"redis://:@host", "host", NULL, NULL, NULL, 6379, 0},
    {"redis://:p@ss@host", "host", NULL, NULL, "p@ss", 6379, 0},
    {"redis://[::1]", "::1", NULL, NULL, NULL, 6379, 0},
    {"redis://[::1]:6390/4", "::1", NULL, NULL, NULL, 6390, 4},
    {"redis://[2001:db8::a:1]:7000", "2001:db8::a:1", NULL, NULL, NULL, 7000, 0},
    {"REDIS://Host.Example-1_x:65535/2147483647", "Host.Example-1_x", NULL, NULL, NULL, 65535,
     2147483647},
    {"redis://h:007/016", "h", NULL, NULL, NULL, 7, 16},
    {"redis://h:1?db=5", "h", NULL, NULL, NULL, 1, 5},
    {"redis://h?password=p%26w&db=7", "h", NULL, NULL, "p&w", 6379, 7},
    {"redis://h/1?password=a@b", "h", NULL, NULL, "a@b", 6379, 1},
    {"redis://h:6379/0?", "h", NULL, NULL, NULL, 6379, 0},
    {"redis://h?&db=2&", "h", NULL, NULL, NULL, 6379, 2},
    {"unix:///tmp/redis.sock", NULL, "/tmp/redis.sock", NULL, NULL, 6379, 0},
    {"unix:///tmp/redis.sock?db=3", NULL, "/tmp/redis.sock", NULL, NULL, 6379, 3},
    {"unix:///tmp/r.sock?password=se%3Dcret&db=2", NULL, "/tmp/r.sock", NULL, "se=cret", 6379, 2},
    {"unix://:pw@/var/run/redis.sock?db=1", NULL, "/var/run/redis.sock", NULL, "pw", 6379, 1},
    {"unix://bob:pw@/r.sock", NULL, "/r.sock", "bob", "pw", 6379, 0},
    {"UNIX:///tmp/a%20b.sock", NULL, "/tmp/a b.sock", NULL, NULL, 6379, 0},
    {"unix://" LONGPATH, NULL, LONGPATH, NULL, NULL, 6379, 0},
};

#define S(x) ((x) ? (x) : "(null)")

static void test_good_urls(void **state)
{
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        const good_url_t *g = &good[i];
        bc_redis_conf_t c;
        char err[256] = "", got[512], want[512];
        int rc;

        bc_redis_conf_init(&c);
        c.pool_size = 7; /* not a connection field: must survive */
        c.timeout_ms = 1234;
        c.db = 99;
        rc = bc_redis_conf_parse_url(&c, g->url, err, sizeof err);
        /* One line per case, so that a failure names the URL. */
        snprintf(got, sizeof got, "%s -> %d host=%s unix=%s user=%s pass=%s port=%d db=%d%s",
                 g->url, rc, S(c.host), S(c.unix_path), S(c.username), S(c.password), c.port, c.db,
                 err);
        snprintf(want, sizeof want, "%s -> 0 host=%s unix=%s user=%s pass=%s port=%d db=%d", g->url,
                 S(g->host), S(g->unix_path), S(g->username), S(g->password), g->port, g->db);
        assert_string_equal(got, want);
        assert_str_or_null(c.password, g->password);
        assert_int_equal(c.pool_size, 7);
        assert_int_equal(c.timeout_ms, 1234);
        /* A second parse replaces every connection field. */
        assert_int_equal(bc_redis_conf_parse_url(&c, "redis://other", NULL, 0), 0);
        assert_string_equal(c.host, "other");
        assert_null(c.unix_path);
        assert_null(c.password);
        assert_null(c.username);
        assert_int_equal(c.db, 0);
        bc_redis_conf_free(&c);
    }
}

typedef struct bad_url {
    const char *url, *err;
} bad_url_t;

#define TOOLONG LONGPATH "b"

static const bad_url_t bad[] = {
    {"", "REDIS_URL: empty URL"},
    {"localhost:6379", "REDIS_URL: no scheme (expected redis:// or unix://)"},
    {"redis:/h", "REDIS_URL: no scheme (expected redis:// or unix://)"},
    {"h/x://y", "REDIS_URL: no scheme (expected redis:// or unix://)"},
    {"http://h", "REDIS_URL: unknown scheme \"http\" (expected redis:// or unix://)"},
    {"://h", "REDIS_URL: unknown scheme \"\" (expected redis:// or unix://)"},
    {"rediss://h:6380", "REDIS_URL: rediss:// (TLS) is not supported by hiredis 0.14"},
    {"redis://", "REDIS_URL: empty host"},
    {"redis://:6379", "REDIS_URL: empty host"},
    {"redis:///0", "REDIS_URL: empty host"},
    {"redis://:SECRET@:6379/0", "REDIS_URL: empty host"},
    {"redis://[]:6379", "REDIS_URL: empty host"},
    {"redis://h:", "REDIS_URL: empty port after ':'"},
    {"redis://h:99999", "REDIS_URL: port \"99999\" is out of range (1-65535)"},
    {"redis://h:0", "REDIS_URL: port \"0\" is out of range (1-65535)"},
    {"redis://h:123456789012345678901234567890",
     "REDIS_URL: port \"123456789012345678901234567890\" is out of range (1-65535)"},
    {"redis://h:abc", "REDIS_URL: port \"abc\" is not a non-negative integer"},
    {"redis://h:-1", "REDIS_URL: port \"-1\" is not a non-negative integer"},
    {"redis://h:+1", "REDIS_URL: port \"+1\" is not a non-negative integer"},
    {"redis://h:6379x", "REDIS_URL: port \"6379x\" is not a non-negative integer"},
    {"redis://h:6379:1", "REDIS_URL: port \"6379:1\" is not a non-negative integer"},
    {"redis://h/abc", "REDIS_URL: db \"abc\" is not a non-negative integer"},
    {"redis://h/-1", "REDIS_URL: db \"-1\" is not a non-negative integer"},
    {"redis://h/2147483648", "REDIS_URL: db \"2147483648\" is out of range (0-2147483647)"},
    {"redis://h/1/2", "REDIS_URL: trailing garbage \"/2\" after the db"},
    {"redis://h/0x", "REDIS_URL: trailing garbage \"x\" after the db"},
    {"redis://h/0 ", "REDIS_URL: trailing garbage \" \" after the db"},
    {"redis://h/0#frag", "REDIS_URL: unexpected '#' (write it as %23 in a password)"},
    {"redis://h ost", "REDIS_URL: invalid character in host \"h ost\""},
    {"redis://h\x01st", "REDIS_URL: invalid character in host \"h?st\""},
    {"redis://::1", "REDIS_URL: put an IPv6 host in brackets: [::1]:6379"},
    {"redis://[::1", "REDIS_URL: IPv6 address has no closing ']'"},
    {"redis://[::1]x", "REDIS_URL: trailing garbage \"x\" after the IPv6 address"},
    {"redis://[::g]", "REDIS_URL: invalid character in host \"::g\""},
    {"redis://SECRET@h", "REDIS_URL: credentials must be [user]:password@ (no ':')"},
    {"redis://:SE/CRET@h", "REDIS_URL: '@' after the host: write '/', '?', '#' and '@' in a "
                           "password as %2F, %3F, %23 and %40"},
    {"redis://:SE?CRET@h", "REDIS_URL: '@' after the host: write '/', '?', '#' and '@' in a "
                           "password as %2F, %3F, %23 and %40"},
    {"redis://:SE?x&y=CRET@h", "REDIS_URL: '@' after the host: write '/', '?', '#' and '@' in a "
                               "password as %2F, %3F, %23 and %40"},
    {"redis://:SE#CRET@h", "REDIS_URL: '@' after the host: write '/', '?', '#' and '@' in a "
                           "password as %2F, %3F, %23 and %40"},
    {"redis://:SECRET%zz@h", "REDIS_URL: password has a bad percent-escape (expected %XX with "
                             "two hex digits)"},
    {"redis://:SECRET%4@h", "REDIS_URL: password has a bad percent-escape (expected %XX with "
                            "two hex digits)"},
    {"redis://:SECRET%@h", "REDIS_URL: password has a bad percent-escape (expected %XX with "
                           "two hex digits)"},
    {"redis://:SEC%00RET@h", "REDIS_URL: password has a bad percent-escape (%00 is not allowed)"},
    {"redis://us%g:SECRET@h", "REDIS_URL: user name has a bad percent-escape (expected %XX with "
                              "two hex digits)"},
    {"redis://h?password=SE%CRET", "REDIS_URL: password has a bad percent-escape (expected %XX "
                                   "with two hex digits)"},
    {"redis://h?foo=1", "REDIS_URL: unknown parameter \"foo\" (expected db=N or password=P)"},
    {"redis://h?password", "REDIS_URL: unknown parameter \"password\" (expected db=N or "
                           "password=P)"},
    {"redis://h?db=1&db=2", "REDIS_URL: db given twice"},
    {"redis://h/1?db=2", "REDIS_URL: db given twice"},
    {"redis://:SECRET@h?password=SECRET2", "REDIS_URL: password given twice"},
    {"redis://h?db=x", "REDIS_URL: db \"x\" is not a non-negative integer"},
    {"redis://h?db=", "REDIS_URL: db \"\" is not a non-negative integer"},
    {"unix://", "REDIS_URL: empty unix socket path"},
    {"unix:///", "REDIS_URL: empty unix socket path"},
    {"unix:///?db=1", "REDIS_URL: empty unix socket path"},
    {"unix://host/tmp/x.sock", "REDIS_URL: a unix:// URL has no host (write unix:///path)"},
    {"unix://:SECRET@h/tmp/x.sock", "REDIS_URL: a unix:// URL has no host (write unix:///path)"},
    {"unix://" TOOLONG, "REDIS_URL: unix socket path is 108 bytes (at most 107)"},
    {"unix:///tmp/x.sock?db=-1", "REDIS_URL: db \"-1\" is not a non-negative integer"},
    {"unix:///tmp/a%zz", "REDIS_URL: unix socket path has a bad percent-escape (expected %XX "
                         "with two hex digits)"},
    {"unix:///tmp/x.sock?port=1", "REDIS_URL: unknown parameter \"port\" (expected db=N or "
                                  "password=P)"},
    {"unix:///tmp/x.sock#x", "REDIS_URL: unexpected '#' (write it as %23 in a password)"},
};

static void test_bad_urls(void **state)
{
    size_t i;
    char host[300];

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bc_redis_conf_t c;
        char err[256] = "", got[512], want[512];
        int rc;

        bc_redis_conf_init(&c);
        rc = bc_redis_conf_parse_url(&c, bad[i].url, err, sizeof err);
        snprintf(got, sizeof got, "%s -> %d %s", bad[i].url, rc, err);
        snprintf(want, sizeof want, "%s -> %d %s", bad[i].url, -EINVAL, bad[i].err);
        assert_string_equal(got, want);
        assert_null(strstr(err, "SECRET"));
        assert_null(strstr(err, "CRET"));
        /* Left untouched. */
        assert_string_equal(c.host, "127.0.0.1");
        assert_int_equal(c.port, 6379);
        assert_null(c.password);
        assert_null(c.unix_path);
        assert_int_equal(c.db, 0);
        bc_redis_conf_free(&c);
    }

    /* Host length limit, NULL URL, small and absent error buffers. */
    {
        bc_redis_conf_t c;
        char err[256], small[8];

        bc_redis_conf_init(&c);
        memcpy(host, "redis://", 8);
        memset(host + 8, 'h', 256);
        host[8 + 256] = '\0';
        assert_int_equal(bc_redis_conf_parse_url(&c, host, err, sizeof err), -EINVAL);
        assert_string_equal(err, "REDIS_URL: host is 256 bytes, longer than the 255 allowed");
        host[8 + 255] = '\0';
        assert_int_equal(bc_redis_conf_parse_url(&c, host, err, sizeof err), 0);
        assert_int_equal(strlen(c.host), 255);
        assert_int_equal(bc_redis_conf_parse_url(&c, NULL, err, sizeof err), -EINVAL);
        assert_string_equal(err, "REDIS_URL: empty URL");
        assert_int_equal(bc_redis_conf_parse_url(&c, "redis://h:0", small, sizeof small), -EINVAL);
        assert_string_equal(small, "REDIS_U");
        assert_int_equal(bc_redis_conf_parse_url(&c, "redis://h:0", NULL, 0), -EINVAL);
        assert_int_equal(strlen(c.host), 255); /* still the last good value */
        bc_redis_conf_free(&c);
        bc_redis_conf_free(&c); /* freeing twice is harmless */
    }
}

static void test_env_defaults(void **state)
{
    bc_redis_conf_t c;
    char err[256] = "", buf[128];

    assert_int_equal(bc_redis_conf_from_env(&c, err, sizeof err), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 6379);
    assert_null(c.unix_path);
    assert_null(c.username);
    assert_null(c.password);
    assert_int_equal(c.db, 0);
    assert_int_equal(c.pool_size, 1);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.breaker.attempts, 4);
    assert_int_equal(c.breaker.delay_ms[0], 1000);
    assert_int_equal(c.breaker.delay_ms[3], 8000);
    assert_int_equal(c.breaker.delay_ms[4], 0);
    assert_int_equal(c.breaker.probe_interval_ms, 30000);
    assert_null(c.breaker.log);
    assert_int_equal(c.queue[BC_REDIS_CLASS_HEARTBEAT].mode, BC_REDIS_FAIL_FAST);
    assert_int_equal(c.queue[BC_REDIS_CLASS_HEARTBEAT].max_queued, 0);
    assert_int_equal(c.queue[BC_REDIS_CLASS_SIGNAL].mode, BC_REDIS_QUEUE);
    assert_int_equal(c.queue[BC_REDIS_CLASS_SIGNAL].max_queued, 10000);
    assert_int_equal(c.queue[BC_REDIS_CLASS_ACK].mode, BC_REDIS_QUEUE);
    assert_int_equal(c.queue[BC_REDIS_CLASS_ACK].max_queued, 10000);
    assert_int_equal(c.queue[BC_REDIS_CLASS_OTHER].mode, BC_REDIS_QUEUE);
    assert_int_equal(c.queue[BC_REDIS_CLASS_OTHER].max_queued, 10000);
    assert_string_equal(bc_redis_conf_describe(&c, buf, sizeof buf), "redis://127.0.0.1:6379/0");
    bc_redis_conf_free(&c);
    assert_null(c.host);

    /* Empty variables count as unset. */
    setenv("REDIS_URL", "", 1);
    setenv("REDIS_DB", "", 1);
    setenv("REDIS_QUEUE_SIGNAL", "", 1);
    assert_int_equal(bc_redis_conf_from_env(&c, err, sizeof err), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.queue[BC_REDIS_CLASS_SIGNAL].max_queued, 10000);
    bc_redis_conf_free(&c);
}

static void test_env_overrides(void **state)
{
    bc_redis_conf_t c;
    char err[256] = "", buf[128];

    setenv("REDIS_URL", "redis://u:urlpw@h:7000/3", 1);
    setenv("REDIS_PASSWORD", "envpw", 1);
    setenv("REDIS_DB", "9", 1);
    setenv("REDIS_POOL_SIZE", "64", 1);
    setenv("REDIS_TIMEOUT_MS", "3600000", 1);
    setenv("REDIS_QUEUE_HEARTBEAT", "10", 1);
    setenv("REDIS_QUEUE_SIGNAL", "50000", 1);
    setenv("REDIS_QUEUE_ACK", "FAIL", 1);
    setenv("REDIS_QUEUE_OTHER", "fail", 1);
    setenv("REDIS_BREAKER_DELAYS_MS", "10,20,40", 1);
    setenv("REDIS_BREAKER_PROBE_MS", "100", 1);
    assert_int_equal(bc_redis_conf_from_env(&c, err, sizeof err), 0);
    assert_string_equal(c.host, "h");
    assert_int_equal(c.port, 7000);
    assert_string_equal(c.username, "u");
    assert_string_equal(c.password, "envpw");
    assert_int_equal(c.db, 9);
    assert_int_equal(c.pool_size, 64);
    assert_int_equal(c.timeout_ms, 3600000);
    assert_int_equal(c.queue[BC_REDIS_CLASS_HEARTBEAT].mode, BC_REDIS_QUEUE);
    assert_int_equal(c.queue[BC_REDIS_CLASS_HEARTBEAT].max_queued, 10);
    assert_int_equal(c.queue[BC_REDIS_CLASS_SIGNAL].max_queued, 50000);
    assert_int_equal(c.queue[BC_REDIS_CLASS_ACK].mode, BC_REDIS_FAIL_FAST);
    assert_int_equal(c.queue[BC_REDIS_CLASS_OTHER].mode, BC_REDIS_FAIL_FAST);
    assert_int_equal(c.breaker.attempts, 3);
    assert_int_equal(c.breaker.delay_ms[0], 10);
    assert_int_equal(c.breaker.delay_ms[1], 20);
    assert_int_equal(c.breaker.delay_ms[2], 40);
    assert_int_equal(c.breaker.probe_interval_ms, 100);
    bc_redis_conf_describe(&c, buf, sizeof buf);
    assert_string_equal(buf, "redis://u@h:7000/9");
    bc_redis_conf_free(&c);

    /* Lower edges; REDIS_PASSWORD without a URL; a unix socket. */
    clear_env(NULL);
    setenv("REDIS_URL", "unix:///tmp/x.sock?password=urlpw", 1);
    setenv("REDIS_DB", "0", 1);
    setenv("REDIS_POOL_SIZE", "1", 1);
    setenv("REDIS_TIMEOUT_MS", "1", 1);
    setenv("REDIS_QUEUE_SIGNAL", "100000000", 1);
    setenv("REDIS_BREAKER_DELAYS_MS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,3600000", 1);
    assert_int_equal(bc_redis_conf_from_env(&c, err, sizeof err), 0);
    assert_string_equal(c.unix_path, "/tmp/x.sock");
    assert_string_equal(c.password, "urlpw");
    assert_int_equal(c.pool_size, 1);
    assert_int_equal(c.timeout_ms, 1);
    assert_int_equal(c.queue[BC_REDIS_CLASS_SIGNAL].max_queued, 100000000);
    assert_int_equal(c.breaker.attempts, 16);
    assert_int_equal(c.breaker.delay_ms[15], 3600000);
    assert_string_equal(bc_redis_conf_describe(&c, buf, sizeof buf), "unix:///tmp/x.sock?db=0");
    bc_redis_conf_free(&c);
}

typedef struct bad_env {
    const char *var, *value, *err;
} bad_env_t;

static const bad_env_t bad_env[] = {
    {"REDIS_URL", "http://x", "REDIS_URL: unknown scheme \"http\" (expected redis:// or unix://)"},
    {"REDIS_URL", "redis://h:99999", "REDIS_URL: port \"99999\" is out of range (1-65535)"},
    {"REDIS_DB", "abc", "REDIS_DB: \"abc\" is not a non-negative integer"},
    {"REDIS_DB", "-1", "REDIS_DB: \"-1\" is not a non-negative integer"},
    {"REDIS_DB", " 1", "REDIS_DB: \" 1\" is not a non-negative integer"},
    {"REDIS_DB", "2147483648", "REDIS_DB: \"2147483648\" is out of range (0-2147483647)"},
    {"REDIS_POOL_SIZE", "0", "REDIS_POOL_SIZE: \"0\" is out of range (1-64)"},
    {"REDIS_POOL_SIZE", "65", "REDIS_POOL_SIZE: \"65\" is out of range (1-64)"},
    {"REDIS_POOL_SIZE", "1.5", "REDIS_POOL_SIZE: \"1.5\" is not a non-negative integer"},
    {"REDIS_TIMEOUT_MS", "0", "REDIS_TIMEOUT_MS: \"0\" is out of range (1-3600000)"},
    {"REDIS_TIMEOUT_MS", "3600001", "REDIS_TIMEOUT_MS: \"3600001\" is out of range (1-3600000)"},
    {"REDIS_TIMEOUT_MS", "5s", "REDIS_TIMEOUT_MS: \"5s\" is not a non-negative integer"},
    {"REDIS_TIMEOUT_MS", "99999999999999999999999",
     "REDIS_TIMEOUT_MS: \"99999999999999999999999\" is out of range (1-3600000)"},
    {"REDIS_QUEUE_HEARTBEAT", "failx",
     "REDIS_QUEUE_HEARTBEAT: \"failx\" is neither \"fail\" nor a queue bound (1-100000000)"},
    {"REDIS_QUEUE_SIGNAL", "abc",
     "REDIS_QUEUE_SIGNAL: \"abc\" is neither \"fail\" nor a queue bound (1-100000000)"},
    {"REDIS_QUEUE_SIGNAL", "0", "REDIS_QUEUE_SIGNAL: \"0\" is out of range (1-100000000)"},
    {"REDIS_QUEUE_ACK", "100000001",
     "REDIS_QUEUE_ACK: \"100000001\" is out of range (1-100000000)"},
    {"REDIS_QUEUE_OTHER", "fail ",
     "REDIS_QUEUE_OTHER: \"fail \" is neither \"fail\" nor a queue bound (1-100000000)"},
    {"REDIS_BREAKER_DELAYS_MS", ",",
     "REDIS_BREAKER_DELAYS_MS: delay \"\" is not a non-negative integer"},
    {"REDIS_BREAKER_DELAYS_MS", "1000,",
     "REDIS_BREAKER_DELAYS_MS: delay \"\" is not a non-negative integer"},
    {"REDIS_BREAKER_DELAYS_MS", "0",
     "REDIS_BREAKER_DELAYS_MS: delay \"0\" is out of range (1-3600000)"},
    {"REDIS_BREAKER_DELAYS_MS", "1,x",
     "REDIS_BREAKER_DELAYS_MS: delay \"x\" is not a non-negative integer"},
    {"REDIS_BREAKER_DELAYS_MS", "3600001",
     "REDIS_BREAKER_DELAYS_MS: delay \"3600001\" is out of range (1-3600000)"},
    {"REDIS_BREAKER_DELAYS_MS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
     "REDIS_BREAKER_DELAYS_MS: \"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\" has more than 16 "
     "delays"},
    {"REDIS_BREAKER_PROBE_MS", "0", "REDIS_BREAKER_PROBE_MS: \"0\" is out of range (1-3600000)"},
    {"REDIS_BREAKER_PROBE_MS", "abc",
     "REDIS_BREAKER_PROBE_MS: \"abc\" is not a non-negative integer"},
};

static void test_env_invalid(void **state)
{
    size_t i;

    for (i = 0; i < sizeof bad_env / sizeof bad_env[0]; i++) {
        bc_redis_conf_t c;
        char err[256] = "", got[512], want[512];
        int rc;

        clear_env(NULL);
        setenv("REDIS_PASSWORD", "topSECRET", 1);
        setenv(bad_env[i].var, bad_env[i].value, 1);
        rc = bc_redis_conf_from_env(&c, err, sizeof err);
        snprintf(got, sizeof got, "%s=%s -> %d %s", bad_env[i].var, bad_env[i].value, rc, err);
        snprintf(want, sizeof want, "%s=%s -> %d %s", bad_env[i].var, bad_env[i].value, -EINVAL,
                 bad_env[i].err);
        assert_string_equal(got, want);
        assert_null(strstr(err, "SECRET"));
        assert_null(c.host); /* freed and zeroed */
        assert_null(c.password);
        bc_redis_conf_free(&c);
    }

    /* A long value is quoted in part, with "...". */
    {
        bc_redis_conf_t c;
        char err[256] = "";

        clear_env(NULL);
        setenv("REDIS_DB", "1234567890123456789012345678901234567890123456789012345678901", 1);
        assert_int_equal(bc_redis_conf_from_env(&c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "REDIS_DB: \"123456789012345678901234567890123456789012345678...\""
                                 " is out of range (0-2147483647)");
    }
}

static void test_describe_hides_password(void **state)
{
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"redis://:hunter2@h:6390/4", "redis://h:6390/4"},
        {"redis://alice:hunter2@[::1]:6390/4", "redis://alice@[::1]:6390/4"},
        {"redis://h?password=hunter2", "redis://h:6379/0"},
        {"unix://:hunter2@/tmp/x.sock?db=2", "unix:///tmp/x.sock?db=2"},
        {"unix:///tmp/x.sock?password=hunter2", "unix:///tmp/x.sock?db=0"},
    };
    size_t i;
    char buf[128], tiny[9];

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bc_redis_conf_t c;

        bc_redis_conf_init(&c);
        assert_int_equal(bc_redis_conf_parse_url(&c, cases[i].url, NULL, 0), 0);
        assert_string_equal(c.password, "hunter2");
        assert_string_equal(bc_redis_conf_describe(&c, buf, sizeof buf), cases[i].want);
        assert_null(strstr(buf, "hunter2"));
        bc_redis_conf_describe(&c, tiny, sizeof tiny);
        assert_int_equal(strlen(tiny), sizeof tiny - 1);
        assert_ptr_equal(bc_redis_conf_describe(&c, tiny, 0), tiny);
        bc_redis_conf_free(&c);
    }

    /* REDIS_PASSWORD from the environment is not shown either. */
    {
        bc_redis_conf_t c;

        setenv("REDIS_PASSWORD", "hunter2", 1);
        assert_int_equal(bc_redis_conf_from_env(&c, NULL, 0), 0);
        assert_string_equal(bc_redis_conf_describe(&c, buf, sizeof buf),
                            "redis://127.0.0.1:6379/0");
        bc_redis_conf_free(&c);
    }
}

static void test_class_names(void **state)
{
    assert_string_equal(bc_redis_class_name(BC_REDIS_CLASS_HEARTBEAT), "heartbeat");
    assert_string_equal(bc_redis_class_name(BC_REDIS_CLASS_SIGNAL), "signal");
    assert_string_equal(bc_redis_class_name(BC_REDIS_CLASS_ACK), "ack");
    assert_string_equal(bc_redis_class_name(BC_REDIS_CLASS_OTHER), "other");
    assert_string_equal(bc_redis_class_name(BC_REDIS_CLASS_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_good_urls, clear_env),
        cmocka_unit_test_setup(test_bad_urls, clear_env),
        cmocka_unit_test_setup(test_env_defaults, clear_env),
        cmocka_unit_test_setup(test_env_overrides, clear_env),
        cmocka_unit_test_setup(test_env_invalid, clear_env),
        cmocka_unit_test_setup(test_describe_hides_password, clear_env),
        cmocka_unit_test_setup(test_class_names, clear_env),
    };
    return cmocka_run_group_tests_name("redis_conf", tests, NULL, NULL);
}
