/* test_obs.c - bc_hub_serve_http against a real redis-server and real HTTP over TCP: the
 * /metrics exposition (counts after signals and a timeout, valid text format 0.0.4), /health
 * following Redis down and back up, and bad requests.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int status;
    char head[2048];
    char *body; /* malloc'd, NUL-terminated */
} http_resp_t;

/* Send raw request bytes on a fresh connection and read one response (the server closes
 * after it: requests carry "Connection: close"); 0 or -1. */
static int http_raw(int port, const char *req, http_resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    size_t n = strlen(req);
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    char *e = strstr(buf, "\r\n\r\n");
    if (e == NULL || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(e + 4 - buf);
    assert_true(hl < sizeof r->head);
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    r->body = strdup(e + 4);
    free(buf);
    return 0;
}

static int http_get(int port, const char *method, const char *path, http_resp_t *r)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", method,
             path);
    return http_raw(port, req, r);
}

/* The value of the sample line starting with `series` followed by a space, or -1. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double scrape(int port, const char *series)
{
    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    double v = sample(r.body, series);
    free(r.body);
    return v;
}

/* Every line is a comment (# HELP / # TYPE, each once per family, before its samples) or a
 * sample "name[{labels}] value"; every sample belongs to a family declared by TYPE. */
static void check_exposition(const char *body)
{
    char declared[128][96];
    int ndecl = 0, nhelp = 0;
    char *copy = strdup(body), *save = NULL;
    assert_true(strlen(body) > 0 && body[strlen(body) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[96];
        if (strncmp(line, "# HELP ", 7) == 0) {
            nhelp++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];
            assert_int_equal(sscanf(line + 7, "%95s %31s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            for (int i = 0; i < ndecl; i++)
                if (strcmp(declared[i], name) == 0)
                    fail_msg("duplicate TYPE for %s", name);
            assert_true(ndecl < 128);
            snprintf(declared[ndecl++], sizeof declared[0], "%s", name);
            continue;
        }
        assert_true(line[0] != '#');
        size_t nl =
            strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        assert_true(nl > 0 && nl < sizeof name);
        memcpy(name, line, nl);
        name[nl] = '\0';
        const char *rest = line + nl;
        if (*rest == '{') {
            rest = strchr(rest, '}');
            assert_non_null(rest);
            rest++;
        }
        assert_int_equal(*rest, ' ');
        char *end;
        strtod(rest + 1, &end);
        if (end == rest + 1)
            assert_true(strcmp(rest + 1, "+Inf") == 0 || strcmp(rest + 1, "NaN") == 0);
        /* The family: the name itself or, for histograms, without _bucket/_sum/_count. */
        int found = 0;
        for (int i = 0; i < ndecl && !found; i++) {
            size_t dl = strlen(declared[i]);
            found = strcmp(name, declared[i]) == 0 ||
                    (strncmp(name, declared[i], dl) == 0 &&
                     (strcmp(name + dl, "_bucket") == 0 || strcmp(name + dl, "_sum") == 0 ||
                      strcmp(name + dl, "_count") == 0));
        }
        if (!found)
            fail_msg("sample without TYPE: %s", line);
    }
    assert_int_equal(nhelp, ndecl);
    free(copy);
}

static int serve(bc_hub_t *h)
{
    int port = 0;
    char err[200];
    int rc = bc_hub_serve_http(h, NULL, 0, &port, err, sizeof err);
    if (rc != 0)
        fail_msg("bc_hub_serve_http: %s", err);
    assert_true(port > 0);
    return port;
}

/* 10 signals A -> B move the counters and the latency histogram by exactly 10; one timed-out
 * wait moves timeout_events_total by 1; the exposition is valid. */
static void test_metrics_after_signals(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    char err[200];
    int dummy;
    assert_int_equal(bc_hub_serve_http(e.hub, NULL, 0, &dummy, err, sizeof err), -EEXIST);

    probe_t pa, pb;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, "never");
    bc_coord_t *b = probe_start(e.hub, "coord-b", &pb, NULL);

    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "\r\nContent-Type: text/plain; version=0.0.4; "
                                       "charset=utf-8\r\n"));
    double recv0 = sample(r.body, "signals_received_total");
    double sent0 = sample(r.body, "signals_sent_total");
    double lat0 = sample(r.body, "signal_delivery_latency_seconds_count{signal_type=\"wake\"}");
    double to0 = sample(r.body, "timeout_events_total{timeout_type=\"signal_wait\"}");
    assert_true(recv0 >= 0 && sent0 >= 0 && to0 >= 0);
    if (lat0 < 0)
        lat0 = 0; /* no wake signal seen yet: the series does not exist */
    assert_true(sample(r.body, "active_coordinators") == 2);
    free(r.body);

    for (int i = 0; i < 10; i++)
        assert_int_equal(bc_coord_send(a, "coord-b", "wake", NULL, NULL, err, sizeof err), 0);
    int ten = 10;
    assert_true(probe_until(&pb, pred_nsig, &ten, 10000));
    bc_test_sleep_ms(100);

    assert_int_equal(http_get(port, "GET", "/prometheus/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    check_exposition(r.body);
    assert_true(sample(r.body, "signals_received_total") - recv0 == 10);
    assert_true(sample(r.body, "signals_sent_total") - sent0 == 10);
    assert_true(
        sample(r.body, "signal_delivery_latency_seconds_count{signal_type=\"wake\"}") - lat0 == 10);
    assert_true(sample(r.body, "signal_delivery_latency_seconds_bucket{signal_type=\"wake\","
                               "le=\"+Inf\"}") -
                    lat0 ==
                10);
    assert_true(sample(r.body, "signal_delivery_latency_seconds_bucket{signal_type=\"wake\","
                               "le=\"0.0001\"}") >= 0);
    assert_true(sample(r.body, "active_coordinators") == 2);
    assert_true(sample(r.body, "circuit_breaker_state") == 0);
    assert_true(sample(r.body, "redis_connected") == 1);
    assert_true(sample(r.body, "redis_commands_total") > 0);
    assert_true(sample(r.body, "signal_delivery_failures_total{reason=\"replay\"}") >= 0);
    assert_true(sample(r.body, "heartbeat_failures_total{failure_type=\"redis\"}") == 0);
    assert_non_null(strstr(r.body, "# TYPE blocking_coordinators_total gauge\n"));
    assert_non_null(strstr(r.body, "# TYPE signals_received_total counter\n"));
    assert_non_null(strstr(r.body, "# TYPE signal_delivery_latency_seconds histogram\n"));
    assert_non_null(strstr(r.body, "process_resident_memory_bytes "));
    if (getenv("BC_OBS_DUMP"))
        fputs(r.body, stderr);
    free(r.body);

    /* A wait that times out. */
    probe_t pc;
    probe_init(&pc, NULL, 200);
    bc_coord_t *c = probe_spawn(e.hub, "coord-c", &pc);
    assert_true(probe_until(&pc, pred_ready, NULL, 10000));
    assert_true(probe_until(&pc, pred_event, "timeout", 10000));
    bc_coord_stop(c); /* no further waits */
    bc_test_sleep_ms(100);
    double to1 = scrape(port, "timeout_events_total{timeout_type=\"signal_wait\"}");
    assert_true(to1 - to0 >= 1);
    bc_hub_stats_t st;
    bc_hub_stats(e.hub, &st);
    assert_true(to1 == (double)st.timeouts);
    pthread_mutex_lock(&pc.lock);
    int ntimeouts = pc.ntimeouts;
    pthread_mutex_unlock(&pc.lock);
    assert_true(st.timeouts - (uint64_t)to0 == (uint64_t)ntimeouts);
    /* Finished waits feed both blocking-duration histograms: coord-c's timed out, b's (the 10
     * signals) completed. */
    double bt =
        scrape(port, "blocking_duration_seconds_count{swarm_id=\"unknown\",status=\"timeout\"}");
    assert_true(bt == (double)ntimeouts);
    double bc =
        scrape(port, "blocking_duration_seconds_count{swarm_id=\"unknown\",status=\"completed\"}");
    assert_true(bc >= 10);
    assert_true(scrape(port, "blocking_coordination_duration_seconds_count") >= bt + bc);

    bc_coord_release(a);
    bc_coord_release(b);
    bc_coord_release(c);
    env_down(&e);
}

static int health(int port, char *body, size_t n)
{
    http_resp_t r;
    if (http_get(port, "GET", "/health", &r) != 0)
        return -1;
    if (r.status == 200 || r.status == 503)
        assert_non_null(strcasestr(r.head, "\r\nContent-Type: application/json"));
    snprintf(body, n, "%s", r.body);
    free(r.body);
    return r.status;
}

/* Healthy with Redis up; degraded (503) within seconds of Redis dying; healthy again after it
 * comes back. */
static void test_health_follows_redis(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    probe_t pa;
    bc_coord_t *a = probe_start(e.hub, "coord-a", &pa, NULL);
    char body[512];
    assert_int_equal(health(port, body, sizeof body), 200);
    assert_non_null(strstr(body, "\"status\":\"healthy\""));
    assert_non_null(strstr(body, "\"redis\":\"connected\""));
    assert_non_null(strstr(body, "\"breaker\":\"closed\""));
    assert_non_null(strstr(body, "\"coordinators\":1"));
    assert_non_null(strstr(body, "\"uptime_s\":"));
    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/prometheus/health", &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);

    bc_test_redis_kill(e.redis);
    int st = 0;
    for (int i = 0; i < 100 && (st = health(port, body, sizeof body)) != 503; i++)
        bc_test_sleep_ms(50);
    assert_int_equal(st, 503);
    assert_non_null(strstr(body, "\"status\":\"degraded\""));
    assert_non_null(strstr(body, "\"redis\":\"disconnected\""));
    assert_null(strstr(body, "\"breaker\":\"closed\""));
    assert_true(scrape(port, "redis_connected") == 0);
    assert_true(scrape(port, "circuit_breaker_state") != 0);

    bc_test_redis_restart(e.redis);
    for (int i = 0; i < 300 && (st = health(port, body, sizeof body)) != 200; i++)
        bc_test_sleep_ms(50);
    assert_int_equal(st, 200);
    assert_non_null(strstr(body, "\"status\":\"healthy\""));
    assert_true(scrape(port, "circuit_breaker_reconnections_total") >= 1);
    assert_true(scrape(port, "circuit_breaker_triggers_total{reason=\"connection_lost\"}") >= 1);

    bc_coord_release(a);
    env_down(&e);
}

/* Unknown path 404, wrong method 405, malformed request 400; serving goes on. */
static void test_bad_requests(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/nope", &r), 0);
    assert_int_equal(r.status, 404);
    free(r.body);
    assert_int_equal(http_get(port, "POST", "/metrics", &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.head, "\r\nAllow: "));
    free(r.body);
    assert_int_equal(http_raw(port, "GARBAGE\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_int_equal(http_raw(port, "GET /metrics HTTP/1.1 extra\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_int_equal(http_get(port, "HEAD", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_true(scrape(port, "active_coordinators") == 0);

    /* The port is taken: a second hub cannot bind it. */
    bc_hub_t *h2 = hub_on(&e, BC_NOTIFY_AUTO);
    char err[200];
    assert_int_equal(bc_hub_serve_http(h2, "127.0.0.1", port, NULL, err, sizeof err), -EADDRINUSE);
    assert_non_null(strstr(err, "cannot serve metrics"));
    assert_int_equal(bc_hub_serve_http(h2, "not-an-address", 0, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(bc_hub_serve_http(h2, NULL, 70000, NULL, err, sizeof err), -EINVAL);
    bc_hub_destroy(h2);
    assert_true(scrape(port, "active_coordinators") == 0);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_after_signals),
        cmocka_unit_test(test_health_follows_redis),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
