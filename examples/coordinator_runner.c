/* coordinator_runner.c - the tutorial's coordinator runner: host one coordinator, block until a
 * signal arrives (or the timeout passes), then exit.
 *
 *     coordinator-runner --id coord-b --timeout 600000
 *     [00:00:00] Coordinator coord-b started
 *     [00:00:00] Heartbeat started (5s interval)
 *     [00:00:00] Waiting for signal...
 *     [00:00:05] Signal received: wake (latency: 0.000412s)
 *     [00:00:05] Signature verified: true
 *     [00:00:05] Sending ACK to coord-a
 *     [00:00:05] Blocking operation resumed
 *
 * Exit status: 0 after a signal or SIGTERM/SIGINT, 1 on timeout, 2 on a usage error.
 *
 * Threads: the coordinator's callbacks run on runtime workers and only print and set the end
 * state; the main thread owns the process lifetime. SIGINT and SIGTERM are blocked before the
 * runtime starts (so every worker inherits the mask) and read from a signalfd; the callbacks
 * wake the main thread through an eventfd.
 */
#include <blockcoord.h>
#include <blockcoord_cfn.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 600000u
#define DEFAULT_HEARTBEAT_MS 5000u
#define DEFAULT_HEARTBEAT_TTL_S 90u

typedef struct {
    const char *id;
    uint32_t timeout_ms;
    int log_heartbeat;
    int enable_metrics;
    int metrics_per_coordinator;
    int64_t clock_skew_ms;
    const char *redis_host, *redis_port, *redis_db;
} runner_opts_t;

typedef struct {
    runner_opts_t opt;
    uint32_t heartbeat_ms;
    int metrics_port;         /* --enable-metrics: METRICS_PORT (9091); 0 = off */
    int wake_fd;              /* eventfd: the coordinator finished */
    _Atomic int exit_code;    /* -1 while running */
    uint64_t t0_ms;           /* bc_now_ms() at start */
    pthread_mutex_t out_lock; /* one line at a time on stdout */
} runner_t;

static runner_t R;

/* ---------------------------------------------------------------- output */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    uint64_t s = (bc_now_ms() - R.t0_ms) / 1000;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&R.out_lock);
    printf("[%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 "] ", s / 3600, (s / 60) % 60, s % 60);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&R.out_lock);
    va_end(ap);
}

static void usage(FILE *f)
{
    fputs("usage: coordinator-runner --id ID [options]\n"
          "  Host one CFN Loop coordinator that blocks until a signal arrives, acknowledges\n"
          "  it and exits (the tutorial's runner).\n\n"
          "options (each also as --flag=value):\n"
          "  --id ID, --coordinator-id ID  coordinator id (^[A-Za-z0-9_-]{1,64}$), required\n"
          "  --timeout MS            how long to wait for a signal (default 600000, or\n"
          "                          BLOCKING_TIMEOUT_MS); exit status 1 when it passes\n"
          "  --log-heartbeat         print a line for every heartbeat written\n"
          "  --enable-metrics        serve /metrics and /health on METRICS_BIND:METRICS_PORT\n"
          "                          (defaults 127.0.0.1:9091)\n"
          "  --metrics-per-coordinator  with --enable-metrics: also one series per coordinator\n"
          "  --redis-host H          Redis host (default 127.0.0.1); with --redis-port and\n"
          "  --redis-port P          --redis-db these replace REDIS_URL with redis://H:P/N\n"
          "  --redis-db N            (defaults 6379 and 0); REDIS_PASSWORD still applies\n"
          "  --clock-skew +-Nm       shift every timestamp written by N minutes (tests)\n"
          "  --help                  this text\n\n"
          "environment:\n"
          "  BLOCKING_COORDINATION_SECRET  shared HMAC secret (required)\n"
          "  REDIS_URL                     redis://[:password@]host[:port][/db] or unix://path\n"
          "                                (default redis://127.0.0.1:6379/0)\n"
          "  REDIS_PASSWORD, REDIS_DB      override the URL's\n"
          "  HEARTBEAT_INTERVAL_MS         heartbeat interval (default 5000)\n"
          "  BLOCKING_TIMEOUT_MS           default for --timeout\n"
          "  METRICS_PORT, METRICS_BIND    --enable-metrics address (9091, 127.0.0.1; port 0:\n"
          "                                metrics off)\n\n"
          "exit status: 0 signal received or SIGTERM/SIGINT, 1 timeout (or a wait ended by\n"
          "             POST /api/timeouts/force-unblock-all), 2 usage error\n",
          f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see coordinator-runner --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* ---------------------------------------------------------------- parsing */

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* ^[+-]?\d+m$, minutes -> ms. */
static int parse_skew(const char *s, int64_t *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    size_t nd = (size_t)(p - digits);
    if (nd == 0 || nd > 9 || p[0] != 'm' || p[1] != '\0')
        return -EINVAL;
    int64_t minutes = strtoll(digits, NULL, 10);
    *out = (neg ? -minutes : minutes) * 60000;
    return 0;
}

enum { F_ID, F_TIMEOUT, F_LOGHB, F_METRICS, F_PERCOORD, F_HOST, F_PORT, F_DB, F_SKEW, F_HELP };

static const struct {
    const char *name;
    int code;
    int has_arg;
} flags[] = {
    {"id", F_ID, 1},
    {"coordinator-id", F_ID, 1},
    {"timeout", F_TIMEOUT, 1},
    {"log-heartbeat", F_LOGHB, 0},
    {"enable-metrics", F_METRICS, 0},
    {"metrics-per-coordinator", F_PERCOORD, 0},
    {"redis-host", F_HOST, 1},
    {"redis-port", F_PORT, 1},
    {"redis-db", F_DB, 1},
    {"clock-skew", F_SKEW, 1},
    {"help", F_HELP, 0},
};

/* Returns 0 to run, 1 after --help (exit 0), 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, runner_opts_t *o)
{
    int timeout_given = 0;
    memset(o, 0, sizeof *o);
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0)
            a = "--help";
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return usage_error("unexpected argument \"%s\"", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (size_t j = 0; j < sizeof flags / sizeof flags[0]; j++)
            if (strlen(flags[j].name) == nlen && strncmp(flags[j].name, name, nlen) == 0) {
                k = (int)j;
                break;
            }
        if (k < 0)
            return usage_error("unknown flag \"--%.*s\"", (int)nlen, name);
        const char *val = NULL;
        if (flags[k].has_arg) {
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i]; /* taken as is: `--clock-skew -5m` is a value */
            } else {
                return usage_error("--%s needs a value", flags[k].name);
            }
        } else if (eq) {
            return usage_error("--%s takes no value", flags[k].name);
        }
        uint64_t v;
        switch (flags[k].code) {
        case F_ID:
            o->id = val;
            break;
        case F_TIMEOUT:
            if (parse_uint(val, 1, UINT32_MAX, &v) != 0)
                return usage_error("--timeout \"%s\": expected milliseconds in 1..%u", val,
                                   UINT32_MAX);
            o->timeout_ms = (uint32_t)v;
            timeout_given = 1;
            break;
        case F_LOGHB:
            o->log_heartbeat = 1;
            break;
        case F_METRICS:
            o->enable_metrics = 1;
            break;
        case F_PERCOORD:
            o->metrics_per_coordinator = 1;
            break;
        case F_HOST:
            if (*val == '\0' || strlen(val) > 255 || strpbrk(val, "/@?# "))
                return usage_error("--redis-host \"%s\": expected a host name or address", val);
            o->redis_host = val;
            break;
        case F_PORT:
            if (parse_uint(val, 1, 65535, &v) != 0)
                return usage_error("--redis-port \"%s\": expected a port in 1..65535", val);
            o->redis_port = val;
            break;
        case F_DB:
            if (parse_uint(val, 0, 1000000, &v) != 0)
                return usage_error("--redis-db \"%s\": expected a database number in 0..1000000",
                                   val);
            o->redis_db = val;
            break;
        case F_SKEW:
            if (parse_skew(val, &o->clock_skew_ms) != 0)
                return usage_error("Invalid clock skew format: \"%s\" (expected minutes, e.g. "
                                   "-5m or +10m)",
                                   val);
            break;
        case F_HELP:
            usage(stdout);
            return 1;
        }
    }
    if (o->id == NULL)
        return usage_error("--id is required (the coordinator id, e.g. --id coord-a)");
    if (o->metrics_per_coordinator && !o->enable_metrics)
        return usage_error("--metrics-per-coordinator needs --enable-metrics");
    char err[256];
    if (!bc_coord_id_valid("--id", o->id, err, sizeof err))
        return usage_error("%s", err);
    if (!timeout_given) {
        const char *env = getenv("BLOCKING_TIMEOUT_MS");
        uint64_t v;
        if (env && *env) {
            if (parse_uint(env, 1, UINT32_MAX, &v) != 0) {
                fprintf(stderr,
                        "Error: BLOCKING_TIMEOUT_MS \"%s\": expected milliseconds in "
                        "1..%u\n",
                        env, UINT32_MAX);
                return 2;
            }
            o->timeout_ms = (uint32_t)v;
        }
    }
    return 0;
}

/* The hub reads HEARTBEAT_INTERVAL_MS itself (and refuses a bad one); this only mirrors it
 * for the "Heartbeat started" line. */
static uint32_t heartbeat_interval(void)
{
    const char *env = getenv("HEARTBEAT_INTERVAL_MS");
    uint64_t v;
    if (env && *env && parse_uint(env, 1, 3600000, &v) == 0)
        return (uint32_t)v;
    return DEFAULT_HEARTBEAT_MS;
}

/* 5000 -> "5", 2500 -> "2.5", 1234 -> "1.234". */
static void seconds_text(uint32_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0) {
        snprintf(buf, len, "%u", ms / 1000);
        return;
    }
    snprintf(buf, len, "%u.%03u", ms / 1000, ms % 1000);
    size_t l = strlen(buf);
    while (l > 0 && buf[l - 1] == '0')
        buf[--l] = '\0';
}

/* The same for HEARTBEAT_TTL_S, for the "Heartbeat sent (TTL: 90s)" lines. */
static uint32_t heartbeat_ttl(void)
{
    const char *env = getenv("HEARTBEAT_TTL_S");
    uint64_t v;
    if (env && *env && parse_uint(env, 1, 86400, &v) == 0)
        return (uint32_t)v;
    return DEFAULT_HEARTBEAT_TTL_S;
}

/* ---------------------------------------------------------------- coordinator callbacks */

static void finish(int code)
{
    int expected = -1;
    if (!atomic_compare_exchange_strong(&R.exit_code, &expected, code))
        return;
    uint64_t one = 1;
    if (write(R.wake_fd, &one, sizeof one) != (ssize_t)sizeof one)
        abort(); /* an eventfd write of 1 cannot fail short of a bug */
}

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    (void)s;
    (void)arg;
    if (status == 0) {
        bc_coord_set_state(c, BC_STATE_COMPLETED);
        say("Blocking operation resumed");
        finish(0);
    } else if (status == -ETIMEDOUT) {
        bc_coord_set_state(c, BC_STATE_TIMEOUT);
        say("Error: Timeout waiting for signal after %ums", R.opt.timeout_ms);
        finish(1);
    } else if (status == -EINTR) { /* POST /api/timeouts/force-unblock-all */
        bc_coord_set_state(c, BC_STATE_TIMEOUT);
        say("Error: Wait ended by an operator (force-unblock) before a signal arrived");
        finish(1);
    }
    /* -ECANCELED: the coordinator is stopping (SIGTERM); the main thread owns the exit. */
}

static void on_start(bc_coord_t *c, void *arg)
{
    (void)arg;
    char secs[32];
    seconds_text(R.heartbeat_ms, secs, sizeof secs);
    say("Coordinator %s started", bc_coord_id(c));
    say("Heartbeat started (%ss interval)", secs);
    int rc = bc_coord_wait(c, NULL, R.opt.timeout_ms, on_signal, NULL);
    if (rc != 0) {
        say("Error: cannot wait for a signal: %s", bc_strerror(rc));
        finish(1);
        return;
    }
    say("Waiting for signal...");
}

static void on_event(bc_coord_t *c, const bc_coord_event_t *ev, void *arg)
{
    (void)c;
    (void)arg;
    const char *peer = ev->peer ? ev->peer : "unknown";
    const char *detail = ev->detail ? ev->detail : "unknown";
    switch (ev->type) {
    case BC_EV_SIGNAL: {
        const bc_signal_t *s = ev->signal;
        double lat = s->latency_s > 0 ? s->latency_s : 0.0;
        say("Signal received: %s (latency: %.6fs)", s->type, lat);
        if (s->verified)
            say("Signature verified: true");
        else
            say("Signature verified: false (unsigned signal accepted)");
        break;
    }
    case BC_EV_ACK_SENT:
        say("Sending ACK to %s", peer);
        break;
    case BC_EV_REJECTED:
        say("Signal rejected: %s", detail);
        break;
    case BC_EV_ACK_RECEIVED:
        say("ACK received from %s", peer);
        break;
    case BC_EV_ACK_VERIFIED:
        say("Signal delivery confirmed");
        break;
    case BC_EV_ACK_INVALID:
        say("ACK from %s rejected: %s", peer, detail);
        break;
    case BC_EV_SEND_FAILED:
        say("Signal to %s not sent: %s", peer, detail);
        break;
    case BC_EV_READY:
    case BC_EV_TIMEOUT: /* reported by the wait's continuation */
    case BC_EV_WORK:    /* the runner holds no work items */
        break;
    }
}

/* ---------------------------------------------------------------- main */

static int apply_redis_flags(const runner_opts_t *o)
{
    if (o->redis_host == NULL && o->redis_port == NULL && o->redis_db == NULL)
        return 0;
    const char *host = o->redis_host ? o->redis_host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    char url[320];
    snprintf(url, sizeof url, "redis://%s%s%s:%s/%s", v6 ? "[" : "", host, v6 ? "]" : "",
             o->redis_port ? o->redis_port : "6379", o->redis_db ? o->redis_db : "0");
    if (setenv("REDIS_URL", url, 1) != 0 || unsetenv("REDIS_DB") != 0) {
        fprintf(stderr, "Error: cannot set REDIS_URL: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    memset(&R, 0, sizeof R);
    R.t0_ms = bc_now_ms();
    atomic_init(&R.exit_code, -1);
    pthread_mutex_init(&R.out_lock, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int prc = parse_args(argc, argv, &R.opt);
    if (prc == 1)
        return 0;
    if (prc != 0)
        return 2;
    if (bc_log_init_from_env() != 0)
        return 2;
    if (apply_redis_flags(&R.opt) != 0)
        return 2;

    /* Block the stop signals before any thread exists: workers inherit the mask and the
     * signals are only ever read here, through the signalfd. */
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &stopset, NULL) != 0) {
        fprintf(stderr, "Error: cannot block SIGINT/SIGTERM\n");
        return 1;
    }
    int sfd = signalfd(-1, &stopset, SFD_CLOEXEC);
    R.wake_fd = eventfd(0, EFD_CLOEXEC);
    if (sfd < 0 || R.wake_fd < 0) {
        fprintf(stderr, "Error: cannot create the signal/wake descriptors: %s\n", strerror(errno));
        return 1;
    }

    bc_runtime_t *rt;
    int rc = bc_runtime_create(NULL, &rt);
    if (rc != 0) {
        fprintf(stderr, "Error: cannot start the runtime: %s\n", bc_strerror(rc));
        return 1;
    }
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.clock_skew_ms = R.opt.clock_skew_ms;
    bc_hub_t *hub = NULL;
    char err[512];
    rc = bc_hub_create(rt, &ho, &hub, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "Error: %s\n", err);
        bc_runtime_destroy(rt);
        return 2;
    }
    R.heartbeat_ms = ho.heartbeat_ms ? ho.heartbeat_ms : heartbeat_interval();
    if (R.opt.enable_metrics) {
        uint64_t mport = 9091;
        const char *env = getenv("METRICS_PORT");
        if (env && *env && parse_uint(env, 0, 65535, &mport) != 0) {
            fprintf(stderr, "Error: METRICS_PORT \"%s\": expected a port in 0..65535\n", env);
            bc_hub_destroy(hub);
            bc_runtime_destroy(rt);
            return 2;
        }
        R.metrics_port = (int)mport;
        if (mport == 0)
            say("Metrics server disabled (METRICS_PORT=0)");
    }
    if (R.opt.enable_metrics && R.metrics_port != 0) {
        int bound = 0;
        bc_hub_http_opts_t mo;
        bc_hub_http_opts_init(&mo);
        mo.bind = getenv("METRICS_BIND");
        mo.port = (int)R.metrics_port;
        mo.per_coordinator = R.opt.metrics_per_coordinator;
        rc = bc_hub_serve_http_opts(hub, &mo, &bound, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", err);
            bc_hub_destroy(hub);
            bc_runtime_destroy(rt);
            return 2;
        }
        say("Metrics server listening on :%d", bound);
    }

    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    co.id = R.opt.id;
    co.on_start = on_start;
    co.on_event = on_event;
    bc_coord_t *coord = NULL;
    /* This process exits when its one coordinator is done, so its reaper (every process runs
     * one) must not host replacements of dead coordinators: it hands them on. */
    bc_hub_set_replacer(hub, bc_replace_handoff, NULL);
    rc = bc_coord_spawn(hub, &co, &coord, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "Error: %s\n", err);
        bc_hub_destroy(hub);
        bc_runtime_destroy(rt);
        return rc == -EINVAL ? 2 : 1;
    }

    int code = -1;
    /* --log-heartbeat: one line per heartbeat the hub's heartbeat actor has written (Redis
     * answered OK), seen in the hub's counters every 50 ms. The hub hosts this coordinator only
     * (unless its reaper adopts a dead peer's replacement, whose heartbeats would count too). */
    uint32_t hb_ttl_s = heartbeat_ttl();
    uint64_t hb_seen = 0;
    while (code < 0) {
        int wait_ms = R.opt.log_heartbeat ? 50 : -1;
        struct pollfd pf[2] = {{sfd, POLLIN, 0}, {R.wake_fd, POLLIN, 0}};
        int n = poll(pf, 2, wait_ms);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "Error: poll: %s\n", strerror(errno));
            code = 1;
            break;
        }
        if (n > 0 && (pf[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                say("%s received, stopping", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                code = 0;
                break;
            }
        }
        if (n > 0 && (pf[1].revents & POLLIN)) {
            uint64_t v;
            if (read(R.wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                abort();
            code = atomic_load(&R.exit_code);
        }
        if (R.opt.log_heartbeat) {
            bc_hub_stats_t hs;
            bc_hub_stats(hub, &hs);
            for (; hb_seen < hs.heartbeats_on_time + hs.heartbeats_late; hb_seen++)
                say("Heartbeat sent (TTL: %us)", hb_ttl_s);
        }
    }
    /* Stops the coordinator: its last heartbeat carries "completed", "timeout" or, after a
     * signal to the process, "stopping". */
    bc_hub_destroy(hub);
    bc_coord_release(coord);
    bc_runtime_destroy(rt);
    close(sfd);
    close(R.wake_fd);
    return code;
}
