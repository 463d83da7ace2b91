/* redis_conf.c - Redis connection configuration from a URL and the environment.
 *
 * Key design decision: refuse, never guess. Every malformed value is rejected with a message
 * that names the variable (or URL part) and quotes the offending text, except credentials:
 * a password is never echoed, and an '@' found past the host (a password with an unencoded
 * '/', '?' or '#') gets its own message instead of a quote that could leak part of it.
 */
#include "redis_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define QUOTE_MAX 48 /* longest quoted value in a message */
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HEX6 "0123456789abcdefABCDEF:." /* characters of an IPv6 literal */

typedef struct url_parts {
    char *host, *unix_path, *username, *password;
    int port, db, have_db;
} url_parts_t;

/* Write the message to err (if any room) and return -EINVAL. */
static PRINTF(3, 4) int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static char *dupn(const char *s, size_t n)
{
    char *p = strndup(s, n);

    if (!p)
        abort();
    return p;
}

/* A printable rendering of s[0..n) for messages (non-printables as '?', long cut). */
static const char *quote(char *dst, const char *s, size_t n)
{
    size_t i, m = n > QUOTE_MAX ? QUOTE_MAX : n;

    for (i = 0; i < m; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    strcpy(dst + m, n > m ? "..." : "");
    return dst;
}

/* Decimal digits only. Returns 0, -1 (not a non-negative integer) or -2 (above max). */
static int parse_num(const char *s, size_t n, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;
    size_t i;
    int over = 0;

    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return -1;
        if (v > (max - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
    }
    *out = v;
    return n == 0 ? -1 : over ? -2 : 0;
}

/* Parse a number in [min, max]; on error write `<what> "<value>" is ...` and return -EINVAL. */
static int number(const char *what, const char *s, size_t n, unsigned long long min,
                  unsigned long long max, unsigned long long *out, char *err, size_t errlen)
{
    char q[QUOTE_MAX + 4];
    int rc = parse_num(s, n, max, out);

    if (rc == 0 && *out >= min)
        return 0;
    if (rc == -1)
        return fail(err, errlen, "%s \"%s\" is not a non-negative integer", what, quote(q, s, n));
    return fail(err, errlen, "%s \"%s\" is out of range (%llu-%llu)", what, quote(q, s, n), min,
                max);
}

static int hexval(char c)
{
    const char *d = "0123456789abcdef0123456789ABCDEF", *p = c ? strchr(d, c) : NULL;

    return p ? (int)(p - d) % 16 : -1;
}

/* Percent-decode s[0..n) into a new string; `what` names it in errors (never quoted). */
static int decode(const char *what, const char *s, size_t n, char **out, char *err, size_t errlen)
{
    char *p = dupn(s, n);
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (lo < 0 || hi * 16 + lo == 0) {
                free(p);
                return fail(err, errlen, "REDIS_URL: %s has a bad percent-escape (%s)", what,
                            lo < 0 ? "expected %XX with two hex digits" : "%00 is not allowed");
            }
            p[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else
            p[j++] = s[i];
    }
    p[j] = '\0';
    *out = p;
    return 0;
}

static void parts_free(url_parts_t *u)
{
    free(u->host);
    free(u->unix_path);
    free(u->username);
    free(u->password);
}

static int set_db(url_parts_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    unsigned long long v;

    if (u->have_db)
        return fail(err, errlen, "REDIS_URL: db given twice");
    if (number("REDIS_URL: db", s, n, 0, 2147483647ull, &v, err, errlen) < 0)
        return -EINVAL;
    u->db = (int)v;
    u->have_db = 1;
    return 0;
}

/* `[user]:password` */
static int parse_userinfo(url_parts_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);

    if (!colon)
        return fail(err, errlen, "REDIS_URL: credentials must be [user]:password@ (no ':')");
    if (colon > s && decode("user name", s, (size_t)(colon - s), &u->username, err, errlen) < 0)
        return -EINVAL;
    n -= (size_t)(colon - s) + 1;
    if (n && decode("password", colon + 1, n, &u->password, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

/* `host[:port]` or `[v6][:port]` */
static int parse_hostport(url_parts_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    const char *h = s, *end = s + n, *p;
    char q[QUOTE_MAX + 4];
    size_t hn;
    unsigned long long port = BC_REDIS_DEFAULT_PORT;
    int v6 = n > 0 && s[0] == '[';

    if (v6) {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return fail(err, errlen, "REDIS_URL: IPv6 address has no closing ']'");
        h = s + 1;
        hn = (size_t)(rb - h);
        p = rb + 1;
        if (p < end && *p != ':')
            return fail(err, errlen, "REDIS_URL: trailing garbage \"%s\" after the IPv6 address",
                        quote(q, p, (size_t)(end - p)));
    } else {
        p = memchr(s, ':', n);
        hn = p ? (size_t)(p - s) : n;
        if (!p)
            p = end;
        if (p < end && memchr(p + 1, ':', (size_t)(end - p - 1)) && strspn(s, HEX6) >= n)
            return fail(err, errlen, "REDIS_URL: put an IPv6 host in brackets: [::1]:6379");
    }
    if (hn == 0)
        return fail(err, errlen, "REDIS_URL: empty host");
    if (hn > BC_REDIS_HOST_MAX)
        return fail(err, errlen, "REDIS_URL: host is %zu bytes, longer than the %d allowed", hn,
                    BC_REDIS_HOST_MAX);
    if (strspn(h, v6 ? HEX6 : HEX6 "ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ-_") < hn)
        return fail(err, errlen, "REDIS_URL: invalid character in host \"%s\"", quote(q, h, hn));
    if (p < end) { /* *p == ':' */
        if (p + 1 == end)
            return fail(err, errlen, "REDIS_URL: empty port after ':'");
        if (number("REDIS_URL: port", p + 1, (size_t)(end - p - 1), 1, 65535, &port, err, errlen) <
            0)
            return -EINVAL;
    }
    u->host = dupn(h, hn);
    u->port = (int)port;
    return 0;
}

/* `k=v&k=v` with keys db and password. */
static int parse_query(url_parts_t *u, const char *s, size_t n, char *err, size_t errlen)
{
    const char *end = s + n;
    char q[QUOTE_MAX + 4];

    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        size_t kn = eq ? (size_t)(eq - s) : (size_t)(pe - s);

        if (eq && kn == 8 && !memcmp(s, "password", 8)) {
            if (u->password)
                return fail(err, errlen, "REDIS_URL: password given twice");
            if (pe > eq + 1 &&
                decode("password", eq + 1, (size_t)(pe - eq - 1), &u->password, err, errlen) < 0)
                return -EINVAL;
        } else if (eq && kn == 2 && !memcmp(s, "db", 2)) {
            if (set_db(u, eq + 1, (size_t)(pe - eq - 1), err, errlen) < 0)
                return -EINVAL;
        } else if (pe > s)
            return fail(err, errlen,
                        "REDIS_URL: unknown parameter \"%s\" (expected db=N or password=P)",
                        quote(q, s, kn));
        s = amp ? amp + 1 : end;
    }
    return 0;
}

/* An '@' past the host, outside a password= value: a password with a raw '/', '?' or '#'. */
static int stray_at(const char *s)
{
    const char *query = strchr(s, '?');
    const char *at = strchr(s, '@');

    if (!at)
        return 0;
    if (!query || at < query)
        return 1;
    for (s = query + 1; *s;) {
        size_t pn = strcspn(s, "&");
        if (strncmp(s, "password=", 9) && memchr(s, '@', pn))
            return 1;
        s += pn + (s[pn] == '&');
    }
    return 0;
}

static int parse(url_parts_t *u, const char *url, char *err, size_t errlen)
{
    const char *sep = strstr(url, "://"), *rest, *auth_end, *path, *path_end, *at = NULL, *p;
    char q[QUOTE_MAX + 4];
    size_t sn = sep ? (size_t)(sep - url) : 0;
    int is_unix;

    if (!*url)
        return fail(err, errlen, "REDIS_URL: empty URL");
    if (!sep || strcspn(url, ":/?#@") != sn)
        return fail(err, errlen, "REDIS_URL: no scheme (expected redis:// or unix://)");
    if (sn == 6 && !strncasecmp(url, "rediss", 6))
        return fail(err, errlen, "REDIS_URL: rediss:// (TLS) is not supported by hiredis 0.14");
    is_unix = sn == 4 && !strncasecmp(url, "unix", 4);
    if (!is_unix && !(sn == 5 && !strncasecmp(url, "redis", 5)))
        return fail(err, errlen, "REDIS_URL: unknown scheme \"%s\" (expected redis:// or unix://)",
                    quote(q, url, sn));
    rest = sep + 3;
    auth_end = rest + strcspn(rest, "/?#");
    for (p = rest; p < auth_end; p++)
        if (*p == '@')
            at = p;
    if (stray_at(auth_end))
        return fail(err, errlen,
                    "REDIS_URL: '@' after the host: write '/', '?', '#' and '@' in a "
                    "password as %%2F, %%3F, %%23 and %%40");
    if (strchr(url, '#'))
        return fail(err, errlen, "REDIS_URL: unexpected '#' (write it as %%23 in a password)");
    if (at && parse_userinfo(u, rest, (size_t)(at - rest), err, errlen) < 0)
        return -EINVAL;
    path = auth_end;
    path_end = path + strcspn(path, "?");
    if (is_unix) {
        const char *h = at ? at + 1 : rest;
        if (h != auth_end)
            return fail(err, errlen, "REDIS_URL: a unix:// URL has no host (write unix:///path)");
        if (path_end - path <= 1)
            return fail(err, errlen, "REDIS_URL: empty unix socket path");
        if (decode("unix socket path", path, (size_t)(path_end - path), &u->unix_path, err,
                   errlen) < 0)
            return -EINVAL;
        if (strlen(u->unix_path) > UNIX_PATH_MAX)
            return fail(err, errlen, "REDIS_URL: unix socket path is %zu bytes (at most %zu)",
                        strlen(u->unix_path), UNIX_PATH_MAX);
        u->port = BC_REDIS_DEFAULT_PORT;
    } else {
        if (parse_hostport(u, at ? at + 1 : rest, (size_t)(auth_end - (at ? at + 1 : rest)), err,
                           errlen) < 0)
            return -EINVAL;
        if (path_end - path > 1) { /* "/N" */
            size_t dn = strspn(path + 1, "0123456789");
            if (dn && path + 1 + dn < path_end)
                return fail(err, errlen, "REDIS_URL: trailing garbage \"%s\" after the db",
                            quote(q, path + 1 + dn, (size_t)(path_end - path - 1 - dn)));
            if (set_db(u, path + 1, (size_t)(path_end - path - 1), err, errlen) < 0)
                return -EINVAL;
        }
    }
    if (*path_end == '?')
        return parse_query(u, path_end + 1, strlen(path_end + 1), err, errlen);
    return 0;
}

int bc_redis_conf_parse_url(bc_redis_conf_t *c, const char *url, char *err, size_t errlen)
{
    url_parts_t u = {0};

    if (!url)
        return fail(err, errlen, "REDIS_URL: empty URL");
    if (parse(&u, url, err, errlen) < 0) {
        parts_free(&u);
        return -EINVAL;
    }
    parts_free(&(url_parts_t){c->host, c->unix_path, c->username, c->password, 0, 0, 0});
    c->host = u.host;
    c->unix_path = u.unix_path;
    c->username = u.username;
    c->password = u.password;
    c->port = u.port;
    c->db = u.db;
    return 0;
}

void bc_redis_conf_init(bc_redis_conf_t *c)
{
    unsigned i;

    memset(c, 0, sizeof *c);
    c->host = dupn(BC_REDIS_DEFAULT_HOST, strlen(BC_REDIS_DEFAULT_HOST));
    c->port = BC_REDIS_DEFAULT_PORT;
    c->pool_size = 1;
    c->timeout_ms = BC_REDIS_DEFAULT_TIMEOUT_MS;
    c->breaker.attempts = BC_BREAKER_DEFAULT_ATTEMPTS;
    for (i = 0; i < BC_BREAKER_DEFAULT_ATTEMPTS; i++)
        c->breaker.delay_ms[i] = (uint32_t)BC_BREAKER_DEFAULT_BASE_MS << i;
    c->breaker.probe_interval_ms = BC_BREAKER_DEFAULT_PROBE_MS;
    for (i = 0; i < BC_REDIS_CLASS_COUNT; i++)
        c->queue[i] = (bc_redis_queue_policy_t){BC_REDIS_QUEUE, BC_REDIS_DEFAULT_QUEUE};
    c->queue[BC_REDIS_CLASS_HEARTBEAT] = (bc_redis_queue_policy_t){BC_REDIS_FAIL_FAST, 0};
}

void bc_redis_conf_free(bc_redis_conf_t *c)
{
    parts_free(&(url_parts_t){c->host, c->unix_path, c->username, c->password, 0, 0, 0});
    memset(c, 0, sizeof *c);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* Apply integer variable `name` in [min, max] to *out if set. */
static int env_int(const char *name, unsigned long long min, unsigned long long max, int *out,
                   char *err, size_t errlen)
{
    const char *v = env(name);
    char what[64];
    unsigned long long n;

    if (!v)
        return 0;
    snprintf(what, sizeof what, "%s:", name);
    if (number(what, v, strlen(v), min, max, &n, err, errlen) < 0)
        return -EINVAL;
    *out = (int)n;
    return 0;
}

static int env_queue(bc_redis_conf_t *c, bc_redis_class_t cls, char *err, size_t errlen)
{
    static const char *const vars[BC_REDIS_CLASS_COUNT] = {
        "REDIS_QUEUE_HEARTBEAT", "REDIS_QUEUE_SIGNAL", "REDIS_QUEUE_ACK", "REDIS_QUEUE_OTHER"};
    const char *name = vars[cls], *v;
    char what[48], q[QUOTE_MAX + 4];
    unsigned long long n;

    if (!(v = env(name)))
        return 0;
    if (!strcasecmp(v, "fail")) {
        c->queue[cls] = (bc_redis_queue_policy_t){BC_REDIS_FAIL_FAST, 0};
        return 0;
    }
    if (parse_num(v, strlen(v), BC_REDIS_QUEUE_MAX, &n) == -1)
        return fail(err, errlen, "%s: \"%s\" is neither \"fail\" nor a queue bound (1-%d)", name,
                    quote(q, v, strlen(v)), BC_REDIS_QUEUE_MAX);
    snprintf(what, sizeof what, "%s:", name);
    if (number(what, v, strlen(v), 1, BC_REDIS_QUEUE_MAX, &n, err, errlen) < 0)
        return -EINVAL;
    c->queue[cls] = (bc_redis_queue_policy_t){BC_REDIS_QUEUE, (uint32_t)n};
    return 0;
}

static int env_delays(bc_redis_conf_t *c, char *err, size_t errlen)
{
    const char *v = env("REDIS_BREAKER_DELAYS_MS"), *s;
    char q[QUOTE_MAX + 4];
    unsigned long long n;
    uint32_t d[BC_BREAKER_MAX_ATTEMPTS];
    unsigned k = 0;

    if (!v)
        return 0;
    for (s = v;; s++) {
        size_t len = strcspn(s, ",");
        if (k == BC_BREAKER_MAX_ATTEMPTS)
            return fail(err, errlen, "REDIS_BREAKER_DELAYS_MS: \"%s\" has more than %d delays",
                        quote(q, v, strlen(v)), BC_BREAKER_MAX_ATTEMPTS);
        if (number("REDIS_BREAKER_DELAYS_MS: delay", s, len, 1, BC_REDIS_TIMEOUT_MAX_MS, &n, err,
                   errlen) < 0)
            return -EINVAL;
        d[k++] = (uint32_t)n;
        s += len;
        if (!*s)
            break;
    }
    c->breaker.attempts = k;
    memcpy(c->breaker.delay_ms, d, k * sizeof d[0]);
    return 0;
}

static int apply_env(bc_redis_conf_t *c, char *err, size_t errlen)
{
    const char *v;
    int probe = (int)c->breaker.probe_interval_ms;
    unsigned i;

    if ((v = env("REDIS_URL")) && bc_redis_conf_parse_url(c, v, err, errlen) < 0)
        return -EINVAL;
    if ((v = env("REDIS_PASSWORD"))) {
        free(c->password);
        c->password = dupn(v, strlen(v));
    }
    if (env_int("REDIS_DB", 0, 2147483647ull, &c->db, err, errlen) < 0 ||
        env_int("REDIS_POOL_SIZE", 1, BC_REDIS_POOL_MAX, &c->pool_size, err, errlen) < 0 ||
        env_int("REDIS_TIMEOUT_MS", 1, BC_REDIS_TIMEOUT_MAX_MS, &c->timeout_ms, err, errlen) < 0)
        return -EINVAL;
    for (i = 0; i < BC_REDIS_CLASS_COUNT; i++)
        if (env_queue(c, (bc_redis_class_t)i, err, errlen) < 0)
            return -EINVAL;
    if (env_delays(c, err, errlen) < 0 ||
        env_int("REDIS_BREAKER_PROBE_MS", 1, BC_REDIS_TIMEOUT_MAX_MS, &probe, err, errlen) < 0)
        return -EINVAL;
    c->breaker.probe_interval_ms = (uint32_t)probe;
    return 0;
}

int bc_redis_conf_from_env(bc_redis_conf_t *c, char *err, size_t errlen)
{
    bc_redis_conf_init(c);
    if (apply_env(c, err, errlen) < 0) {
        bc_redis_conf_free(c);
        return -EINVAL;
    }
    return 0;
}

const char *bc_redis_conf_describe(const bc_redis_conf_t *c, char *buf, size_t len)
{
    int v6 = c->host && strchr(c->host, ':');

    if (!buf || !len)
        return buf;
    if (c->unix_path)
        snprintf(buf, len, "unix://%s?db=%d", c->unix_path, c->db);
    else
        snprintf(buf, len, "redis://%s%s%s%s%s:%d/%d", c->username ? c->username : "",
                 c->username ? "@" : "", v6 ? "[" : "", c->host ? c->host : "", v6 ? "]" : "",
                 c->port, c->db);
    return buf;
}

const char *bc_redis_class_name(bc_redis_class_t cls)
{
    static const char *const names[BC_REDIS_CLASS_COUNT] = {"heartbeat", "signal", "ack", "other"};

    return (unsigned)cls < BC_REDIS_CLASS_COUNT ? names[cls] : "unknown";
}
