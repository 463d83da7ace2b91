/* test_obs.c - bc_hub_serve_http_opts against a real redis-server and real HTTP over TCP: the
 * /metrics exposition (counts after signals and a timeout, valid text format 0.0.4),
 * blocking_coordinators_total counted from the coordinator table, per-coordinator series only
 * on request, /health following Redis down and back up, bad and slow requests, and every admin
 * endpoint (list, show, cleanup, force-unblock-all, pool-stats) with its access rule.
 */
#include "harness.h"
#include "redis_harness.c"

#include "coord_env.h"

#include "obs_impl.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int status;
    char head[2048];
    char *body; /* malloc'd, NUL-terminated */
} http_resp_t;

static char g_addr[INET_ADDRSTRLEN] = "127.0.0.1"; /* where the server under test listens */

static int connect_to(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read one response until the server closes (requests carry "Connection: close"); 0 or -1. */
static int read_resp(int fd, http_resp_t *r)
{
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

/* Send raw request bytes on a fresh connection to g_addr and read one response; 0 or -1. */
static int http_raw(int port, const char *req, http_resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = connect_to(g_addr, port);
    if (fd < 0)
        return -1;
    size_t n = strlen(req);
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    int rc = read_resp(fd, r);
    close(fd);
    return rc;
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

static char *scrape_body(int port);

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
    assert_true(sample(r.body, "heartbeat_failures_total{failure_type=\"write\"}") == 0);
    assert_true(sample(r.body, "heartbeat_failures_total{failure_type=\"stale\"}") == 0);
    assert_true(sample(r.body, "timeout_events_total{timeout_type=\"heartbeat\"}") == 0);
    assert_true(sample(r.body, "timeout_events_total{timeout_type=\"forced\"}") == 0);
    assert_true(sample(r.body, "dead_coordinator_escalations_total") == 0);
    assert_true(sample(r.body, "coordinator_spawns_total") == 2); /* coord-a and coord-b */
    assert_true(sample(r.body, "coordinator_deadlocks_total") == 0);
    assert_true(sample(r.body, "admin_requests_refused_total") == 0);
    /* Every reply so far had its latency recorded: the count is at least the signals' writes,
     * and the buckets are cumulative up to it. */
    double lat_n = sample(r.body, "redis_command_latency_seconds_count");
    assert_true(lat_n >= 10);
    assert_true(sample(r.body, "redis_command_latency_seconds_bucket{le=\"5e-05\"}") >= 0);
    assert_true(sample(r.body, "redis_command_latency_seconds_bucket{le=\"1\"}") <= lat_n);
    assert_true(sample(r.body, "redis_command_latency_seconds_bucket{le=\"+Inf\"}") == lat_n);
    assert_true(sample(r.body, "redis_command_latency_seconds_sum") > 0);
    assert_null(strstr(r.body, "coordinator_id")); /* no per-coordinator series by default */
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
    /* The liveness counters mirror the hub's. */
    char *lb = scrape_body(port);
    assert_true(sample(lb, "coordinator_spawns_total") == (double)st.spawns);
    assert_true(st.spawns == 3);
    assert_true(sample(lb, "heartbeat_failures_total{failure_type=\"write\"}") ==
                (double)st.heartbeat_failures);
    assert_true(sample(lb, "heartbeat_failures_total{failure_type=\"stale\"}") ==
                (double)(st.reaper_stale + st.activity_timeouts));
    assert_true(sample(lb, "timeout_events_total{timeout_type=\"heartbeat\"}") ==
                (double)st.activity_timeouts);
    assert_true(sample(lb, "dead_coordinator_escalations_total") == (double)st.escalations);
    assert_true(sample(lb, "coordinator_deadlocks_total") == (double)st.deadlocks);
    free(lb);
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

/* ---------------------------------------------------------------- helpers for the new suites */

static int serve_opts(bc_hub_t *h, const bc_hub_http_opts_t *o)
{
    int port = 0;
    char err[200];
    int rc = bc_hub_serve_http_opts(h, o, &port, err, sizeof err);
    if (rc != 0)
        fail_msg("bc_hub_serve_http_opts: %s", err);
    assert_true(port > 0);
    return port;
}

/* A request with optional extra header lines; the parsed JSON body (or NULL) in *json. */
static int api(int port, const char *method, const char *path, const char *extra, json_t **json)
{
    char req[1024];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n%sConnection: close\r\n\r\n",
             method, path, extra ? extra : "");
    http_resp_t r;
    assert_int_equal(http_raw(port, req, &r), 0);
    if (json) {
        json_error_t je;
        *json = json_loads(r.body, 0, &je);
        if (*json == NULL)
            fail_msg("%s %s: not JSON (%s): %s", method, path, je.text, r.body);
        assert_non_null(strcasestr(r.head, "\r\nContent-Type: application/json"));
    }
    free(r.body);
    return r.status;
}

static long long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return (long long)json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A coordinator that, if told to, waits (for a type nobody sends) as soon as it starts, and
 * records how its waits ended. */
typedef struct {
    int wait;
    _Atomic int ready, eintr, ended;
} node_t;

static void node_on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    node_t *n = arg;
    if (status == -EINTR)
        atomic_fetch_add(&n->eintr, 1);
    atomic_fetch_add(&n->ended, 1);
}

static void node_on_start(bc_coord_t *c, void *arg)
{
    node_t *n = arg;
    if (n->wait)
        assert_int_equal(bc_coord_wait(c, "never", 600000, node_on_signal, n), 0);
    atomic_store(&n->ready, 1);
}

static bc_coord_t *node_spawn(bc_hub_t *h, const char *id, const char *swarm, const char *phase,
                              node_t *n, int wait)
{
    memset(n, 0, sizeof *n);
    n->wait = wait;
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = id;
    o.swarm_id = swarm;
    o.phase = phase;
    o.on_start = node_on_start;
    o.arg = n;
    bc_coord_t *c = NULL;
    char err[200];
    if (bc_coord_spawn(h, &o, &c, err, sizeof err) != 0)
        fail_msg("spawn %s: %s", id, err);
    for (int i = 0; i < 1000 && !atomic_load(&n->ready); i++)
        bc_test_sleep_ms(10);
    assert_true(atomic_load(&n->ready));
    return c;
}

/* Wait (10 s at most) until series reads want. */
static void scrape_until(int port, const char *series, double want)
{
    double v = -2;
    for (int i = 0; i < 500 && (v = scrape(port, series)) != want; i++)
        bc_test_sleep_ms(20);
    if (v != want)
        fail_msg("%s is %g, expected %g", series, v, want);
}

/* Number of sample lines of a family (name followed by '{' or ' '). */
static int series_count(const char *body, const char *family)
{
    int n = 0;
    size_t fl = strlen(family);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, family, fl) == 0 && (p[fl] == '{' || p[fl] == ' '))
            n++;
    return n;
}

static char *scrape_body(int port)
{
    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    check_exposition(r.body);
    return r.body;
}

#define BCT(swarm, phase, status)                                                                  \
    "blocking_coordinators_total{swarm_id=\"" swarm "\",phase=\"" phase "\",status=\"" status "\"" \
    "}"

/* ---------------------------------------------------------------- blocking_coordinators_total */

/* Counted from the table by swarm, phase and state; after stops the counts follow, a label set
 * that vanished reads 0 once and is then gone. */
static void test_blocking_by_table(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    node_t n[7];
    bc_coord_t *c[7];
    c[0] = node_spawn(e.hub, "a-0", "s1", "p1", &n[0], 1);
    c[1] = node_spawn(e.hub, "a-1", "s1", "p1", &n[1], 1);
    c[2] = node_spawn(e.hub, "a-2", "s1", "p1", &n[2], 1);
    c[3] = node_spawn(e.hub, "a-3", "s1", "p1", &n[3], 0);
    c[4] = node_spawn(e.hub, "b-0", "s2", NULL, &n[4], 1);
    c[5] = node_spawn(e.hub, "b-1", "s2", NULL, &n[5], 1);
    c[6] = node_spawn(e.hub, "x-0", NULL, NULL, &n[6], 0);
    bc_coord_set_state(c[6], BC_STATE_COMPLETED);

    char *b = scrape_body(port);
    assert_true(sample(b, BCT("s1", "p1", "waiting")) == 3);
    assert_true(sample(b, BCT("s1", "p1", "running")) == 1);
    assert_true(sample(b, BCT("s2", "none", "waiting")) == 2);
    assert_true(sample(b, BCT("none", "none", "completed")) == 1);
    assert_int_equal(series_count(b, "blocking_coordinators_total"), 4);
    /* sorted by swarm, phase, status */
    assert_true(strstr(b, BCT("none", "none", "completed")) <
                strstr(b, BCT("s1", "p1", "waiting")));
    assert_true(strstr(b, BCT("s1", "p1", "waiting")) < strstr(b, BCT("s2", "none", "waiting")));
    free(b);

    bc_coord_stop(c[0]);
    bc_coord_stop(c[1]);
    bc_coord_stop(c[4]);
    bc_coord_stop(c[5]);
    bc_hub_stats_t hs; /* wait without scraping: the next scrape is the first to see it */
    for (int i = 0; i < 500 && (bc_hub_stats(e.hub, &hs), hs.coordinators) != 3; i++)
        bc_test_sleep_ms(20);
    assert_int_equal(hs.coordinators, 3);
    b = scrape_body(port);
    assert_true(sample(b, BCT("s1", "p1", "waiting")) == 1);
    assert_true(sample(b, BCT("s1", "p1", "running")) == 1);
    assert_true(sample(b, BCT("s2", "none", "waiting")) == 0); /* gone: 0 for one scrape */
    assert_true(sample(b, BCT("none", "none", "completed")) == 1);
    free(b);
    b = scrape_body(port);
    assert_true(sample(b, BCT("s2", "none", "waiting")) == -1); /* then dropped */
    assert_int_equal(series_count(b, "blocking_coordinators_total"), 3);
    free(b);
    for (int i = 0; i < 7; i++)
        bc_coord_release(c[i]);
    env_down(&e);
}

/* Label sets beyond max_label_sets share the "__overflow__" series; nothing is lost. */
static void test_blocking_overflow(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    bc_hub_http_opts_t ho;
    bc_hub_http_opts_init(&ho);
    ho.max_label_sets = 2;
    int port = serve_opts(e.hub, &ho);
    node_t n[5];
    bc_coord_t *c[5];
    const char *swarms[5] = {"s1", "s2", "s3", "s4", "s4"};
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "o-%d", i);
        c[i] = node_spawn(e.hub, id, swarms[i], NULL, &n[i], 0);
    }
    char *b = scrape_body(port);
    assert_int_equal(series_count(b, "blocking_coordinators_total"), 3);
    double sum = 0;
    for (int i = 1; i <= 4; i++) {
        char series[160];
        snprintf(series, sizeof series, BCT("s%d", "none", "running"), i);
        double v = sample(b, series);
        sum += v > 0 ? v : 0;
    }
    double of = sample(b, BCT("__overflow__", "__overflow__", "__overflow__"));
    assert_true(of >= 1);
    assert_true(sum + of == 5);
    free(b);
    for (int i = 0; i < 5; i++)
        bc_coord_release(c[i]);
    env_down(&e);
}

/* No series carries a coordinator id by default; with per_coordinator, each coordinator has its
 * own signals, state and iteration series. */
static void test_per_coordinator(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    probe_t p0;
    bc_coord_t *a = probe_start(e.hub, "plain-a", &p0, NULL);
    char *b = scrape_body(port);
    assert_null(strstr(b, "coordinator_id"));
    assert_int_equal(series_count(b, "coordinator_state"), 0);
    free(b);

    bc_hub_t *h2 = hub_on(&e, BC_NOTIFY_AUTO);
    bc_hub_http_opts_t ho;
    bc_hub_http_opts_init(&ho);
    ho.per_coordinator = 1;
    int port2 = serve_opts(h2, &ho);
    probe_t ps, pr;
    bc_coord_t *snd = probe_start(h2, "pc-0", &ps, "never");
    bc_coord_t *rcv = probe_start(h2, "pc-1", &pr, NULL);
    bc_coord_set_iteration(rcv, 7);
    char err[200];
    for (int i = 0; i < 2; i++)
        assert_int_equal(bc_coord_send(snd, "pc-1", "wake", NULL, NULL, err, sizeof err), 0);
    int two = 2;
    assert_true(probe_until(&pr, pred_nsig, &two, 10000));
    scrape_until(port2, "coordinator_signals_received_total{coordinator_id=\"pc-1\"}", 2);
    b = scrape_body(port2);
    assert_true(sample(b, "coordinator_signals_sent_total{coordinator_id=\"pc-0\"}") == 2);
    assert_true(sample(b, "coordinator_signals_received_total{coordinator_id=\"pc-0\"}") == 0);
    assert_true(sample(b, "coordinator_iteration{coordinator_id=\"pc-1\"}") == 7);
    double st = sample(b, "coordinator_state{coordinator_id=\"pc-1\"}");
    assert_true(st == BC_STATE_WAITING || st == BC_STATE_RUNNING);
    assert_int_equal(series_count(b, "coordinator_state"), 2);
    assert_null(strstr(b, "plain-a")); /* the other hub's coordinator */
    free(b);
    /* the first hub still has none */
    b = scrape_body(port);
    assert_null(strstr(b, "coordinator_id"));
    free(b);
    bc_coord_release(snd);
    bc_coord_release(rcv);
    bc_hub_destroy(h2);
    bc_coord_release(a);
    env_down(&e);
}

/* A phase is free text: bytes that are not UTF-8 become '?' in the label and in the JSON (the
 * text format and JSON require UTF-8), and "é" stays as it is. */
static void test_phase_not_utf8(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    node_t n1, n2;
    bc_coord_t *c1 = node_spawn(e.hub, "u-1", "s",
                                "ph\xff\xc3"
                                "ase",
                                &n1, 0);
    bc_coord_t *c2 = node_spawn(e.hub, "u-2", "s", "caf\xc3\xa9", &n2, 0);
    char *b = scrape_body(port);
    assert_true(sample(b, BCT("s", "ph??ase", "running")) == 1);
    assert_true(sample(b, BCT("s", "caf\xc3\xa9", "running")) == 1);
    free(b);
    json_t *j;
    assert_int_equal(api(port, "GET", "/api/coordinators/u-1", NULL, &j), 200);
    assert_string_equal(jstr(j, "phase"), "ph??ase");
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators/u-2", NULL, &j), 200);
    assert_string_equal(jstr(j, "phase"), "caf\xc3\xa9");
    json_decref(j);
    bc_coord_release(c1);
    bc_coord_release(c2);
    env_down(&e);
}

/* ---------------------------------------------------------------- HTTP bad and slow input */

static void expect_health(int port)
{
    http_resp_t r;
    assert_int_equal(http_get(port, "GET", "/health", &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
}

/* Every kind of bad request gets its status and a short body, slow clients are cut off after
 * the read timeout while others are served, and /health answers after each. */
static void test_bad_input(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    bc_hub_http_opts_t ho;
    bc_hub_http_opts_init(&ho);
    ho.read_timeout_ms = 400;
    int port = serve_opts(e.hub, &ho);
    http_resp_t r;

    assert_int_equal(http_raw(port, "GET /metrics HTTP/1.1 junk\r\nHost: t\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    assert_true(strlen(r.body) < 64);
    free(r.body);
    expect_health(port);

    bc_buf_t big = BC_BUF_INIT;
    bc_buf_appends(&big, "GET /health HTTP/1.1\r\nHost: t\r\nX-Huge: ");
    for (int i = 0; i < 20000; i++)
        bc_buf_appendc(&big, 'h');
    bc_buf_appends(&big, "\r\nConnection: close\r\n\r\n");
    assert_int_equal(http_raw(port, big.data, &r), 0);
    assert_int_equal(r.status, 431);
    assert_true(strlen(r.body) < 64);
    free(r.body);
    bc_buf_free(&big);
    expect_health(port);

    assert_int_equal(http_raw(port,
                              "POST /api/timeouts/force-unblock-all HTTP/1.1\r\nHost: t\r\n"
                              "Content-Length: 10000000\r\n\r\nabc",
                              &r),
                     0);
    assert_int_equal(r.status, 413);
    assert_true(strlen(r.body) < 64);
    free(r.body);
    expect_health(port);

    assert_int_equal(http_get(port, "GET", "/no/such/thing", &r), 0);
    assert_int_equal(r.status, 404);
    free(r.body);
    expect_health(port);
    assert_int_equal(http_get(port, "DELETE", "/health", &r), 0);
    assert_int_equal(r.status, 405);
    free(r.body);
    expect_health(port);

    /* A client that sends half a request and stalls is answered 408 and closed after the read
     * timeout; meanwhile the server answers others. */
    int slow = connect_to(g_addr, port);
    assert_true(slow >= 0);
    const char *half = "GET /health HTTP/1.1\r\nHost: t\r\n";
    assert_int_equal(send(slow, half, strlen(half), MSG_NOSIGNAL), (ssize_t)strlen(half));
    expect_health(port);
    expect_health(port);
    memset(&r, 0, sizeof r);
    assert_int_equal(read_resp(slow, &r), 0); /* returns once the server closed */
    assert_int_equal(r.status, 408);
    free(r.body);
    close(slow);
    expect_health(port);

    char *b = scrape_body(port);
    assert_true(sample(b, "http_request_errors_total{code=\"400\"}") == 1);
    assert_true(sample(b, "http_request_errors_total{code=\"431\"}") == 1);
    assert_true(sample(b, "http_request_errors_total{code=\"413\"}") == 1);
    assert_true(sample(b, "http_request_errors_total{code=\"404\"}") == 1);
    assert_true(sample(b, "http_request_errors_total{code=\"405\"}") == 1);
    assert_true(sample(b, "http_request_errors_total{code=\"408\"}") == 1);
    free(b);
    env_down(&e);
}

/* ---------------------------------------------------------------- admin API */

/* List (sorted, paginated, validated) and show (200, 400, 404, 405). */
static void test_admin_list_and_show(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    node_t n[5];
    bc_coord_t *c[5];
    const char *ids[5] = {"c-03", "c-01", "c-05", "c-02", "c-04"};
    for (int i = 0; i < 5; i++)
        c[i] = node_spawn(e.hub, ids[i], i == 0 ? "sw" : NULL, i == 0 ? "ph \"x\"" : NULL, &n[i],
                          i == 0);
    json_t *j;
    assert_int_equal(api(port, "GET", "/api/coordinators", NULL, &j), 200);
    assert_int_equal(jint(j, "total"), 5);
    assert_int_equal(jint(j, "offset"), 0);
    assert_int_equal(jint(j, "limit"), 100);
    json_t *arr = json_object_get(j, "coordinators");
    assert_int_equal(json_array_size(arr), 5);
    for (int i = 0; i < 5; i++) {
        char want[8];
        snprintf(want, sizeof want, "c-0%d", i + 1);
        assert_string_equal(jstr(json_array_get(arr, (size_t)i), "id"), want);
    }
    json_t *c3 = json_array_get(arr, 2);
    assert_string_equal(jstr(c3, "swarmId"), "sw");
    assert_string_equal(jstr(c3, "phase"), "ph \"x\"");
    assert_string_equal(jstr(c3, "state"), "waiting");
    assert_true(json_is_true(json_object_get(c3, "waiting")));
    assert_true(json_is_null(json_object_get(json_array_get(arr, 0), "swarmId")));
    assert_true(json_is_false(json_object_get(json_array_get(arr, 0), "waiting")));
    assert_string_equal(jstr(json_array_get(arr, 0), "state"), "running");
    assert_int_equal(jint(c3, "signalsReceived"), 0);
    assert_int_equal(jint(c3, "signalsSent"), 0);
    assert_int_equal(jint(c3, "iteration"), 0);
    json_decref(j);

    assert_int_equal(api(port, "GET", "/api/coordinators?offset=1&limit=2", NULL, &j), 200);
    assert_int_equal(jint(j, "total"), 5);
    arr = json_object_get(j, "coordinators");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(jstr(json_array_get(arr, 0), "id"), "c-02");
    assert_string_equal(jstr(json_array_get(arr, 1), "id"), "c-03");
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators?offset=9", NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "coordinators")), 0);
    json_decref(j);
    static const char *const bad[] = {"limit=0", "limit=1001", "offset=-1", "offset=abc",
                                      "limit=1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/coordinators?%s", bad[i]);
        assert_int_equal(api(port, "GET", path, NULL, &j), 400);
        assert_non_null(jstr(j, "error"));
        json_decref(j);
    }

    assert_int_equal(api(port, "GET", "/api/coordinators/c-03", NULL, &j), 200);
    assert_string_equal(jstr(j, "id"), "c-03");
    assert_true(json_is_true(json_object_get(j, "waiting")));
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators/bad!id", NULL, &j), 400);
    assert_non_null(strstr(jstr(j, "error"), "coordinator id"));
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators/nobody-here", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators/c-03/cleanup", NULL, &j), 405);
    json_decref(j);
    assert_int_equal(api(port, "POST", "/api/coordinators/c-03", NULL, &j), 405);
    json_decref(j);
    assert_int_equal(api(port, "GET", "/api/coordinators/c-03/other", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(api(port, "PUT", "/api/coordinators", NULL, NULL), 405);
    for (int i = 0; i < 5; i++)
        bc_coord_release(c[i]);
    env_down(&e);
}

static long long exists(env_t *e, const char *key)
{
    return redis_int(e, "EXISTS %s", key);
}

/* Cleanup removes exactly the coordinator's keys (written here first with raw commands); a
 * coordinator hosted here is stopped first, and its final heartbeat does not bring its key
 * back. */
static void test_admin_cleanup(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    static const char *const mine[] = {"blocking:heartbeat:dead-1",
                                       "blocking:signal:dead-1",
                                       "blocking:ack:dead-1",
                                       "blocking:ack:dead-1:sig-9",
                                       "coordinator:activity:dead-1",
                                       "blocking:consumed:dead-1:m-1",
                                       "blocking:idempotency:other:dead-1:x",
                                       "blocking:warning:dead-1"};
    static const char *const others[] = {
        "blocking:heartbeat:dead-10", "blocking:idempotency:dead-10:x:y", "blocking:signal:other"};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
        freeReplyObject(bc_test_redis_cmd(e.redis, "SET %s v", mine[i]));
    freeReplyObject(bc_test_redis_cmd(e.redis, "RPUSH blocking:signal-queue:dead-1 a b"));
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        freeReplyObject(bc_test_redis_cmd(e.redis, "SET %s v", others[i]));
    json_t *j;
    assert_int_equal(api(port, "POST", "/api/coordinators/dead-1/cleanup", NULL, &j), 200);
    assert_string_equal(jstr(j, "coordinatorId"), "dead-1");
    assert_int_equal(jint(j, "keysRemoved"), 9);
    assert_true(json_is_false(json_object_get(j, "stopped")));
    json_decref(j);
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
        assert_int_equal(exists(&e, mine[i]), 0);
    assert_int_equal(exists(&e, "blocking:signal-queue:dead-1"), 0);
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        assert_int_equal(exists(&e, others[i]), 1);
    assert_int_equal(api(port, "POST", "/api/coordinators/bad%20id/cleanup", NULL, &j), 400);
    json_decref(j);

    /* hosted here: stopped, then cleaned */
    node_t n;
    bc_coord_t *c = node_spawn(e.hub, "live-1", NULL, NULL, &n, 1);
    for (int i = 0; i < 500 && exists(&e, "blocking:heartbeat:live-1") == 0; i++)
        bc_test_sleep_ms(20);
    assert_int_equal(exists(&e, "blocking:heartbeat:live-1"), 1);
    assert_int_equal(api(port, "POST", "/api/coordinators/live-1/cleanup", NULL, &j), 200);
    assert_true(json_is_true(json_object_get(j, "stopped")));
    assert_true(jint(j, "keysRemoved") >= 1);
    json_decref(j);
    assert_int_equal(exists(&e, "blocking:heartbeat:live-1"), 0);
    assert_int_equal(api(port, "GET", "/api/coordinators/live-1", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(atomic_load(&n.ended), 1); /* its wait was cancelled by the stop */
    bc_test_sleep_ms(300);
    assert_int_equal(exists(&e, "blocking:heartbeat:live-1"), 0); /* nothing wrote it again */
    bc_coord_release(c);
    env_down(&e);
}

/* Every pending wait ends with -EINTR, counted as forced timeouts; idle coordinators are left
 * alone; a second call finds nothing to unblock. */
static void test_admin_force_unblock(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    node_t w1, w2, idle;
    bc_coord_t *c1 = node_spawn(e.hub, "fu-w1", NULL, NULL, &w1, 1);
    bc_coord_t *c2 = node_spawn(e.hub, "fu-w2", "s", NULL, &w2, 1);
    bc_coord_t *c3 = node_spawn(e.hub, "fu-idle", NULL, NULL, &idle, 0);
    assert_true(scrape(port, BCT("none", "none", "waiting")) == 1);
    json_t *j;
    assert_int_equal(api(port, "POST", "/api/timeouts/force-unblock-all", NULL, &j), 200);
    assert_int_equal(jint(j, "unblocked"), 2);
    json_decref(j);
    assert_int_equal(atomic_load(&w1.eintr), 1);
    assert_int_equal(atomic_load(&w2.eintr), 1);
    assert_int_equal(atomic_load(&idle.ended), 0);
    char *b = scrape_body(port);
    assert_true(sample(b, "timeout_events_total{timeout_type=\"forced\"}") == 2);
    assert_true(sample(b, BCT("none", "none", "running")) == 2);
    free(b);
    assert_int_equal(api(port, "GET", "/api/coordinators/fu-w1", NULL, &j), 200);
    assert_true(json_is_false(json_object_get(j, "waiting")));
    json_decref(j);
    assert_int_equal(api(port, "POST", "/api/timeouts/force-unblock-all", NULL, &j), 200);
    assert_int_equal(jint(j, "unblocked"), 0);
    json_decref(j);
    assert_true(scrape(port, "timeout_events_total{timeout_type=\"forced\"}") == 2);
    assert_int_equal(api(port, "GET", "/api/timeouts/force-unblock-all", NULL, NULL), 405);
    bc_coord_release(c1);
    bc_coord_release(c2);
    bc_coord_release(c3);
    env_down(&e);
}

static void test_admin_pool_stats(void **state)
{
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    int port = serve(e.hub);
    probe_t p;
    bc_coord_t *a = probe_start(e.hub, "ps-a", &p, NULL);
    json_t *j;
    assert_int_equal(api(port, "GET", "/api/redis/pool-stats", NULL, &j), 200);
    assert_true(json_is_true(json_object_get(j, "connected")));
    assert_true(jint(j, "submitted") > 0);
    assert_true(jint(j, "repliedTotal") > 0);
    assert_int_equal(jint(j, "repliedTotal"),
                     jint(json_object_get(j, "replied"), "ok") +
                         jint(json_object_get(j, "replied"), "error") +
                         jint(json_object_get(j, "replied"), "timeout") +
                         jint(json_object_get(j, "replied"), "disconnected") +
                         jint(json_object_get(j, "replied"), "unavailable") +
                         jint(json_object_get(j, "replied"), "queue_full") +
                         jint(json_object_get(j, "replied"), "shutdown"));
    assert_string_equal(jstr(json_object_get(j, "breaker"), "state"), "closed");
    assert_true(jint(json_object_get(j, "latency"), "count") > 0);
    assert_int_equal(jint(json_object_get(j, "queued"), "signal"), 0);
    json_decref(j);
    assert_int_equal(api(port, "POST", "/api/redis/pool-stats", NULL, NULL), 405);
    bc_coord_release(a);
    env_down(&e);
}

/* A non-loopback IPv4 address of this machine, or 0. */
static int find_lan_addr(char *out, size_t n)
{
    struct ifaddrs *ifs, *i;
    int found = 0;
    if (getifaddrs(&ifs) != 0)
        return 0;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        found = inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

/* Admin endpoints answer loopback peers; others need the configured bearer token (403 and
 * counted otherwise), while /metrics and /health stay open. */
static void test_admin_auth(void **state)
{
    /* the rule itself */
    assert_true(bc__obs_admin_allowed(1, NULL, ""));
    assert_true(bc__obs_admin_allowed(1, "whatever", "tok"));
    assert_false(bc__obs_admin_allowed(0, NULL, ""));
    assert_false(bc__obs_admin_allowed(0, "tok", ""));
    assert_false(bc__obs_admin_allowed(0, "tok", NULL));
    assert_false(bc__obs_admin_allowed(0, NULL, "tok"));
    assert_false(bc__obs_admin_allowed(0, "to", "tok"));
    assert_false(bc__obs_admin_allowed(0, "tok2", "tok"));
    assert_true(bc__obs_admin_allowed(0, "tok", "tok"));

    char lan[INET_ADDRSTRLEN];
    if (!find_lan_addr(lan, sizeof lan)) {
        fprintf(stderr, "test_admin_auth: no non-loopback IPv4 address here: only the rule was "
                        "tested\n");
        return;
    }
    env_t e;
    env_up(&e, NULL, BC_NOTIFY_AUTO);
    bc_hub_http_opts_t ho;
    bc_hub_http_opts_init(&ho);
    ho.bind = lan;
    ho.admin_token = "s3cret-token";
    int port = serve_opts(e.hub, &ho);
    snprintf(g_addr, sizeof g_addr, "%s", lan); /* the peer is now this address: not loopback */
    json_t *j;
    assert_int_equal(api(port, "GET", "/api/coordinators", NULL, &j), 403);
    assert_non_null(strstr(jstr(j, "error"), "forbidden"));
    json_decref(j);
    assert_int_equal(
        api(port, "POST", "/api/timeouts/force-unblock-all", "Authorization: Bearer nope\r\n", &j),
        403);
    json_decref(j);
    assert_int_equal(
        api(port, "GET", "/api/redis/pool-stats", "Authorization: Basic czNjcmV0LXRva2Vu\r\n", &j),
        403);
    json_decref(j);
    assert_int_equal(
        api(port, "GET", "/api/coordinators", "Authorization: Bearer s3cret-token\r\n", &j), 200);
    assert_int_equal(jint(j, "total"), 0);
    json_decref(j);
    assert_int_equal(api(port, "POST", "/api/timeouts/force-unblock-all",
                         "Authorization: bearer s3cret-token\r\n", &j),
                     200);
    json_decref(j);
    expect_health(port);
    assert_true(scrape(port, "admin_requests_refused_total") == 3);
    snprintf(g_addr, sizeof g_addr, "127.0.0.1");
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_after_signals),
        cmocka_unit_test(test_health_follows_redis),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_blocking_by_table),
        cmocka_unit_test(test_blocking_overflow),
        cmocka_unit_test(test_per_coordinator),
        cmocka_unit_test(test_phase_not_utf8),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_admin_list_and_show),
        cmocka_unit_test(test_admin_cleanup),
        cmocka_unit_test(test_admin_force_unblock),
        cmocka_unit_test(test_admin_pool_stats),
        cmocka_unit_test(test_admin_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
