/* cmd_host.c - `blockcoord host`: host many coordinators in this process until SIGINT/SIGTERM.
 *
 * Each coordinator `<prefix>-<i>` blocks on signals in a loop: after a signal (or a timeout) it
 * waits again. A status line shows what the hub sees; on a terminal it is rewritten in place
 * every second, otherwise a line is printed every 5 s (logs stay readable). When this process's
 * reaper wins the escalation of a dead coordinator, the replacer spawns the replacement here,
 * with the same behaviour.
 *
 * With --work each coordinator also works its items (PROTOCOL §4.5): it lists them when it
 * starts, when one is moved to it (BC_EV_WORK) and when it gets a signal of type `work`, and
 * completes each one after a random time. Key decision: one "work" actor per process owns every
 * item and the one timer that fires at the earliest due item; list and completion answers come
 * back to it as messages, so no lock guards the items and no thread ever sleeps.
 *
 * SIGINT and SIGTERM are blocked before the runtime starts, so every worker inherits the mask,
 * and taken with sigtimedwait by the main thread, which also drives the status line.
 */
#include "cli.h"

#include "blockcoord_cfn.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 1000000u
#define RELIST_RETRY_MS 1000 /* a list that Redis did not answer is tried again after this */
#define COMPLETE_RETRY_MS 500

enum { W_LIST = 1, W_LISTED, W_DONE, W_TICK }; /* messages of the work actor */

typedef struct host_s host_t;
typedef struct wcoord_s wcoord_t;

typedef struct witem_s {
    wcoord_t *wc;
    struct witem_s *next; /* wc's items */
    uint64_t epoch, due;
    size_t heap_at; /* index in the heap, or SIZE_MAX while a completion is out */
    char id[BC_COORD_ID_MAX + 1];
} witem_t;

/* One hosted coordinator. Created by the main thread or the replacer, freed at teardown. */
struct wcoord_s {
    wcoord_t *next_all; /* host's list of every coordinator (push-only until teardown) */
    host_t *h;
    bc_coord_t *handle; /* from bc_coord_spawn */
    char id[BC_COORD_ID_MAX + 1];
    /* work actor only */
    bc_coord_t *c;
    bool listing, relist, retrying;
    uint64_t relist_at;
    witem_t *items;
};

struct host_s {
    uint32_t timeout_ms;
    bc_hub_t *hub;
    const char *swarm;
    bool work;
    uint32_t work_min, work_max;
    int log_fd;         /* --work-log, or -1 */
    bc_actor_t *worker; /* the work actor, NULL without --work */
    _Atomic(wcoord_t *) all;
    _Atomic uint64_t ready, replaced, w_done, w_refused, w_failed;

    /* work actor only */
    witem_t **heap;
    size_t hn, hcap;
    wcoord_t **retry;
    size_t rn, rcap;
    bc_timer_t *timer;
    uint64_t timer_at, rng;

    pthread_mutex_t lock; /* guards stopped, for teardown */
    pthread_cond_t cond;
    bool stopped;
};

typedef struct {
    bc_msg_t hdr;
    wcoord_t *wc;
    bc_coord_t *c;
} w_list_msg_t;

typedef struct {
    char id[BC_COORD_ID_MAX + 1];
    uint64_t epoch;
} w_entry_t;

typedef struct {
    bc_msg_t hdr;
    wcoord_t *wc;
    int status;
    size_t n;
    w_entry_t e[];
} w_listed_msg_t;

typedef struct {
    bc_msg_t hdr;
    witem_t *it;
    int status;
} w_done_msg_t;

/* A completion in flight: what its callback needs even after the work actor has stopped. */
typedef struct {
    host_t *h;
    witem_t *it;
    uint64_t epoch;
    char coord[BC_COORD_ID_MAX + 1];
    char work[BC_COORD_ID_MAX + 1];
} w_completion_t;

static void host_usage(FILE *f)
{
    fputs("usage: blockcoord host --count N [--prefix P] [--swarm S] [--timeout MS]\n"
          "                       [--metrics-port N] [--heartbeat-ms N] [--heartbeat-ttl-s N]\n"
          "                       [--stale-ms N] [--scan-ms N] [--warnings N]\n"
          "                       [--work [--work-ms MIN-MAX] [--work-log FILE]]\n"
          "  Host N coordinators named <P>-0 .. <P>-<N-1> in this process. Each blocks on\n"
          "  signals in a loop (acknowledging every one) until SIGINT or SIGTERM. When this\n"
          "  process's reaper declares a coordinator dead, the replacement runs here too.\n"
          "  --count N      coordinators to host, 1..1000000\n"
          "  --prefix P     id prefix (default coord); every <P>-<i> must be a valid id\n"
          "  --swarm S      swarm id reported in the heartbeats (needed for --work)\n"
          "  --timeout MS   per-wait timeout (default 600000); a timeout just waits again\n"
          "  --metrics-port N  serve /metrics and /health on METRICS_BIND (default\n"
          "                 127.0.0.1) port N; 0 = off (default: METRICS_PORT, else off)\n"
          "  --metrics-per-coordinator  also export per-coordinator series (coordinator_id\n"
          "                 label: one series set per coordinator; off by default)\n"
          "liveness (default: the environment variable named, else the value given):\n"
          "  --heartbeat-ms N    heartbeat interval, 1..3600000 (HEARTBEAT_INTERVAL_MS, 5000)\n"
          "  --heartbeat-ttl-s N heartbeat key TTL, 1..86400 (HEARTBEAT_TTL_S, 90)\n"
          "  --stale-ms N        reaper: a heartbeat older than this is stale, 1..86400000\n"
          "                      (REAPER_STALE_MS, 120000)\n"
          "  --scan-ms N         reaper: one detection cycle every N ms, 1..3600000\n"
          "                      (REAPER_SCAN_MS, 30000)\n"
          "  --warnings N        reaper: stale observations that declare death, 1..100\n"
          "                      (REAPER_WARNINGS, 3)\n"
          "work (PROTOCOL §4.5):\n"
          "  --work          every coordinator works its items: it lists them at start, when\n"
          "                  one is moved to it and on a signal of type `work`, and completes\n"
          "                  each after a random time (fenced: a moved item is refused)\n"
          "  --work-ms A-B   time to work one item, uniform in A..B ms (default 50-500; one\n"
          "                  number = fixed); 0..3600000\n"
          "  --work-log FILE append one line per accepted completion: \"<unix ms> <coordinator>\n"
          "                  <workId> <epoch>\" (each line one write, so a killed process loses\n"
          "                  none it reported)\n"
          "environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB, BLOCKING_COORDINATION_SECRET,\n"
          "             HEARTBEAT_INTERVAL_MS, HEARTBEAT_TTL_S, REAPER_STALE_MS, REAPER_SCAN_MS,\n"
          "             REAPER_WARNINGS, METRICS_PORT, METRICS_BIND\n"
          "exit status: 0 stopped by SIGINT/SIGTERM, 1 failure, 2 usage error\n",
          f);
}

/* ---------------------------------------------------------------- the work actor */

static uint64_t rng_next(host_t *h)
{
    uint64_t x = h->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return h->rng = x;
}

static bool heap_less(const witem_t *a, const witem_t *b)
{
    return a->due < b->due;
}

static void heap_set(host_t *h, size_t i, witem_t *it)
{
    h->heap[i] = it;
    it->heap_at = i;
}

static void heap_push(host_t *h, witem_t *it)
{
    if (h->hn == h->hcap) {
        size_t nc = h->hcap ? h->hcap * 2 : 64;
        witem_t **p = realloc(h->heap, nc * sizeof *p);
        if (p == NULL)
            abort();
        h->heap = p;
        h->hcap = nc;
    }
    size_t i = h->hn++;
    while (i > 0 && heap_less(it, h->heap[(i - 1) / 2])) {
        heap_set(h, i, h->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, it);
}

static witem_t *heap_pop(host_t *h)
{
    witem_t *top = h->heap[0], *last = h->heap[--h->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const witem_t *best = last;
        if (l < h->hn && heap_less(h->heap[l], best))
            m = l, best = h->heap[l];
        if (r < h->hn && heap_less(h->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(h, i, h->heap[m]);
        i = m;
    }
    if (h->hn > 0)
        heap_set(h, i, last);
    top->heap_at = SIZE_MAX;
    return top;
}

/* Arm the one timer for the earliest due item or list retry. Work actor only. */
static void arm(host_t *h)
{
    uint64_t next = UINT64_MAX;
    if (h->hn)
        next = h->heap[0]->due;
    for (size_t i = 0; i < h->rn; i++)
        if (h->retry[i]->relist_at < next)
            next = h->retry[i]->relist_at;
    if (next == UINT64_MAX || (h->timer && h->timer_at <= next))
        return;
    if (h->timer)
        bc_timer_cancel(h->timer); /* from our behaviour: its tick is never seen */
    uint64_t now = bc_now_ms();
    h->timer = NULL;
    if (bc_timer_start(h->worker, W_TICK, next > now ? next - now : 0, 0, &h->timer) == 0)
        h->timer_at = next;
}

static void on_listed(void *arg, int status, const bc_work_item_t *items, size_t n, const char *err)
{
    wcoord_t *wc = arg;
    if (status != 0) {
        bc_log(BC_LOG_WARN, "%s: cannot list work items: %s", wc->id, err ? err : "");
        n = 0;
    }
    w_listed_msg_t *m = bc_msg_alloc(sizeof *m + n * sizeof m->e[0], W_LISTED);
    m->wc = wc;
    m->status = status;
    m->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].work_id == NULL || strlen(items[i].work_id) > BC_COORD_ID_MAX)
            continue;
        strcpy(m->e[m->n].id, items[i].work_id);
        m->e[m->n].epoch = items[i].epoch;
        m->n++;
    }
    bc_send(wc->h->worker, &m->hdr); /* -ESRCH while stopping: the list is dropped */
}

static void start_list(host_t *h, wcoord_t *wc)
{
    wc->listing = true;
    wc->relist = false;
    int rc = bc_work_list(wc->c, on_listed, wc);
    if (rc == 0)
        return;
    wc->listing = false;
    bc_log(BC_LOG_WARN, "%s: cannot list work items: %s", wc->id, bc_strerror(rc));
    if (!wc->retrying) {
        if (h->rn == h->rcap) {
            size_t nc = h->rcap ? h->rcap * 2 : 16;
            wcoord_t **p = realloc(h->retry, nc * sizeof *p);
            if (p == NULL)
                abort();
            h->retry = p;
            h->rcap = nc;
        }
        h->retry[h->rn++] = wc;
        wc->retrying = true;
    }
    wc->relist_at = bc_now_ms() + RELIST_RETRY_MS;
    arm(h);
}

static void on_completed(void *arg, int status, uint64_t epoch, const char *err)
{
    w_completion_t *cp = arg;
    host_t *h = cp->h;
    (void)epoch;
    if (status == 0) {
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&h->w_done, 1, memory_order_relaxed);
        if (h->log_fd >= 0) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            char line[200];
            int n = snprintf(line, sizeof line, "%llu %s %s %llu\n",
                             (unsigned long long)tv.tv_sec * 1000 +
                                 (unsigned long long)tv.tv_usec / 1000,
                             cp->coord, cp->work, (unsigned long long)cp->epoch);
            if (write(h->log_fd, line, (size_t)n) != n)
                bc_log(BC_LOG_ERROR, "--work-log: write failed: %s", strerror(errno));
        }
    } else if (status == -ESTALE || status == -EEXIST) {
        atomic_fetch_add_explicit(&h->w_refused, 1, memory_order_relaxed);
        bc_log(BC_LOG_INFO, "%s: completion of %s refused: %s", cp->coord, cp->work,
               err ? err : bc_strerror(status));
    } else {
        atomic_fetch_add_explicit(&h->w_failed, 1, memory_order_relaxed);
        bc_log(BC_LOG_WARN, "%s: completion of %s failed (%s), will retry", cp->coord, cp->work,
               err ? err : bc_strerror(status));
    }
    w_done_msg_t *m = bc_msg_alloc(sizeof *m, W_DONE);
    m->it = cp->it;
    m->status = status;
    bc_send(h->worker, &m->hdr); /* -ESRCH while stopping: the item is freed with the actor */
    free(cp);
}

static void item_remove(witem_t *it)
{
    for (witem_t **p = &it->wc->items; *p; p = &(*p)->next)
        if (*p == it) {
            *p = it->next;
            break;
        }
    free(it);
}

static void complete_due(host_t *h)
{
    uint64_t now = bc_now_ms();
    while (h->hn && h->heap[0]->due <= now) {
        witem_t *it = heap_pop(h);
        w_completion_t *cp = malloc(sizeof *cp);
        if (cp == NULL)
            abort();
        cp->h = h;
        cp->it = it;
        cp->epoch = it->epoch;
        strcpy(cp->coord, it->wc->id);
        strcpy(cp->work, it->id);
        char err[256];
        int rc = bc_work_complete(it->wc->c, it->id, it->epoch, on_completed, cp, err, sizeof err);
        if (rc != 0) {
            bc_log(BC_LOG_ERROR, "%s: cannot complete %s: %s", it->wc->id, it->id, err);
            free(cp);
            item_remove(it);
        }
    }
    for (size_t i = 0; i < h->rn;) {
        wcoord_t *wc = h->retry[i];
        if (wc->relist_at > now) {
            i++;
            continue;
        }
        h->retry[i] = h->retry[--h->rn];
        wc->retrying = false;
        if (wc->listing)
            wc->relist = true;
        else
            start_list(h, wc);
    }
}

static void on_list_answer(host_t *h, w_listed_msg_t *m)
{
    wcoord_t *wc = m->wc;
    wc->listing = false;
    if (m->status != 0) {
        wc->relist = true;
        start_list(h, wc); /* queues a retry if Redis is away */
        return;
    }
    uint64_t now = bc_now_ms();
    for (size_t i = 0; i < m->n; i++) {
        bool known = false;
        for (witem_t *it = wc->items; it && !known; it = it->next)
            known = it->epoch == m->e[i].epoch && strcmp(it->id, m->e[i].id) == 0;
        if (known)
            continue;
        witem_t *it = calloc(1, sizeof *it);
        if (it == NULL)
            abort();
        it->wc = wc;
        it->epoch = m->e[i].epoch;
        strcpy(it->id, m->e[i].id);
        uint32_t span = h->work_max - h->work_min;
        it->due = now + h->work_min + (span ? rng_next(h) % (span + 1u) : 0);
        it->next = wc->items;
        wc->items = it;
        heap_push(h, it);
    }
    if (wc->relist)
        start_list(h, wc);
    arm(h);
}

static void work_behaviour(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    host_t *h = state;
    (void)self;
    switch (msg->type) {
    case W_LIST: {
        w_list_msg_t *m = (w_list_msg_t *)msg;
        m->wc->c = m->c;
        if (m->wc->listing)
            m->wc->relist = true;
        else
            start_list(h, m->wc);
        break;
    }
    case W_LISTED:
        on_list_answer(h, (w_listed_msg_t *)msg);
        break;
    case W_DONE: {
        w_done_msg_t *m = (w_done_msg_t *)msg;
        witem_t *it = m->it;
        if (m->status == 0 || m->status == -ESTALE || m->status == -EEXIST ||
            m->status == -EINVAL || m->status == -ENOENT) {
            item_remove(it);
        } else {
            it->due = bc_now_ms() + COMPLETE_RETRY_MS;
            heap_push(h, it);
            arm(h);
        }
        break;
    }
    case W_TICK: {
        bc_timer_tick_t *t = (bc_timer_tick_t *)msg;
        if (t->timer == h->timer) {
            bc_timer_release(h->timer);
            h->timer = NULL;
        }
        complete_due(h);
        arm(h);
        break;
    }
    case BC_MSG_STOPPED:
        if (h->timer)
            bc_timer_cancel(h->timer);
        h->timer = NULL;
        for (wcoord_t *wc = atomic_load_explicit(&h->all, memory_order_acquire); wc;
             wc = wc->next_all) {
            while (wc->items) {
                witem_t *it = wc->items;
                wc->items = it->next;
                free(it);
            }
        }
        free(h->heap);
        free(h->retry);
        h->heap = NULL;
        h->retry = NULL;
        h->hn = h->rn = 0;
        pthread_mutex_lock(&h->lock);
        h->stopped = true;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
        break;
    default:
        break;
    }
}

/* Ask the work actor to (re)list c's items. Any thread. */
static void request_list(wcoord_t *wc, bc_coord_t *c)
{
    if (wc->h->worker == NULL)
        return;
    w_list_msg_t *m = bc_msg_alloc(sizeof *m, W_LIST);
    m->wc = wc;
    m->c = c;
    bc_send(wc->h->worker, &m->hdr);
}

/* ---------------------------------------------------------------- coordinators */

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static void rewait(bc_coord_t *c, wcoord_t *wc)
{
    int rc = bc_coord_wait(c, NULL, wc->h->timeout_ms, on_signal, wc);
    if (rc != 0 && rc != -ECANCELED)
        bc_log(BC_LOG_ERROR, "%s: cannot wait for a signal: %s", bc_coord_id(c), bc_strerror(rc));
}

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    wcoord_t *wc = arg;
    if (status == -ECANCELED)
        return; /* stopping */
    if (status == 0 && strcmp(s->type, "work") == 0)
        request_list(wc, c);
    rewait(c, wc);
}

static void on_event(bc_coord_t *c, const bc_coord_event_t *ev, void *arg)
{
    if (ev->type == BC_EV_WORK)
        request_list(arg, c);
}

static void on_start(bc_coord_t *c, void *arg)
{
    wcoord_t *wc = arg;
    /* relaxed: a progress counter. */
    atomic_fetch_add_explicit(&wc->h->ready, 1, memory_order_relaxed);
    request_list(wc, c);
    rewait(c, wc);
}

/* Host coordinator id. Any thread (the main thread, or the reaper's worker via the replacer).
 * 0, -EEXIST, or another error with err set. */
static int spawn_coord(host_t *h, const char *id, const char *swarm, const char *phase, char *err,
                       size_t errlen)
{
    wcoord_t *wc = calloc(1, sizeof *wc);
    if (wc == NULL)
        abort();
    wc->h = h;
    snprintf(wc->id, sizeof wc->id, "%s", id);
    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    co.id = id;
    co.swarm_id = swarm;
    co.phase = phase;
    co.on_start = on_start;
    co.on_event = h->work ? on_event : NULL;
    co.arg = wc;
    int rc = bc_coord_spawn(h->hub, &co, &wc->handle, err, errlen);
    if (rc != 0) {
        free(wc);
        return rc;
    }
    wcoord_t *head = atomic_load_explicit(&h->all, memory_order_relaxed);
    do
        wc->next_all = head;
    /* release: publishes wc's fields to whoever walks the list; acquire on failure reloads. */
    while (!atomic_compare_exchange_weak_explicit(&h->all, &head, wc, memory_order_release,
                                                  memory_order_relaxed));
    return 0;
}

static int replace(bc_hub_t *hub, const char *dead_id, const char *new_id, const char *swarm_id,
                   const char *phase, void *arg)
{
    host_t *h = arg;
    (void)hub;
    char err[256];
    int rc = spawn_coord(h, new_id, swarm_id, phase, err, sizeof err);
    if (rc == 0) {
        /* relaxed: a progress counter. */
        atomic_fetch_add_explicit(&h->replaced, 1, memory_order_relaxed);
        bc_log(BC_LOG_INFO, "Spawning replacement: %s (replaces %s)", new_id, dead_id);
    } else if (rc != -EEXIST) {
        bc_log(BC_LOG_ERROR, "cannot spawn %s to replace %s: %s", new_id, dead_id, err);
    }
    return rc;
}

/* ---------------------------------------------------------------- the program */

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void status_line(bc_hub_t *hub, host_t *h, char *buf, size_t len)
{
    bc_hub_stats_t st;
    bc_hub_stats(hub, &st);
    /* relaxed: progress counters. */
    uint64_t replaced = atomic_load_explicit(&h->replaced, memory_order_relaxed);
    int n = snprintf(
        buf, len,
        "hosting %llu coordinators | ready %llu | waiting %llu | signals %llu | acks %llu | "
        "rejected %llu | redis %s | rss %.1f MB",
        (unsigned long long)st.coordinators,
        (unsigned long long)atomic_load_explicit(&h->ready, memory_order_relaxed),
        (unsigned long long)st.waiting, (unsigned long long)st.signals_delivered,
        (unsigned long long)st.acks_written,
        (unsigned long long)(st.rejected_signature + st.rejected_unsigned + st.rejected_malformed),
        bc_hub_notify_mode(hub), rss_mb());
    /* The line keeps its historical shape; what is new only shows up when it happens. */
    if (replaced && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " | replacements %llu",
                      (unsigned long long)replaced);
    if (h->work && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " | work done %llu refused %llu",
                 (unsigned long long)atomic_load_explicit(&h->w_done, memory_order_relaxed),
                 (unsigned long long)atomic_load_explicit(&h->w_refused, memory_order_relaxed));
}

/* "--work-ms": "A-B" or "A", each 0..3600000, A <= B. */
static int parse_work_ms(const char *v, uint32_t *lo, uint32_t *hi)
{
    char *end;
    errno = 0;
    unsigned long long a = strtoull(v, &end, 10), b = a;
    if (end != v && *end == '-' && v[0] != '-') {
        const char *s = end + 1;
        b = strtoull(s, &end, 10);
        if (end == s || s[0] == '-')
            end = (char *)v;
    }
    if (errno || end == v || *end || v[0] == '-' || a > 3600000 || b > 3600000 || a > b) {
        fprintf(stderr,
                "blockcoord host: --work-ms \"%s\": expected MS or MIN-MAX, milliseconds in "
                "0..3600000 with MIN <= MAX (e.g. 50-500)\n",
                v);
        return -EINVAL;
    }
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
    return 0;
}

typedef struct {
    uint64_t count, timeout, metrics_port, hb_ms, hb_ttl, stale_ms, scan_ms, warnings;
    const char *prefix, *swarm, *work_log;
    bool work, work_ms_set, per_coordinator;
    uint32_t work_min, work_max;
} host_args_t;

/* Parse argv into *a. Returns -1 to go on, or the exit status (0 for --help). */
static int parse_args(int argc, char **argv, host_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->timeout = 600000;
    a->prefix = "coord";
    a->work_min = 50;
    a->work_max = 500;
    const char *env_port = getenv("METRICS_PORT");
    if (env_port && *env_port &&
        bc_cli_parse_u64("host", "METRICS_PORT", env_port, 0, 65535, &a->metrics_port) != 0)
        return 2;
    enum { O_HB = 256, O_TTL, O_STALE, O_SCAN, O_WARN, O_WORK, O_WORK_MS, O_WORK_LOG, O_PERCOORD };
    static const struct option opts[] = {{"count", required_argument, 0, 'n'},
                                         {"prefix", required_argument, 0, 'p'},
                                         {"swarm", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"metrics-port", required_argument, 0, 'm'},
                                         {"heartbeat-ms", required_argument, 0, O_HB},
                                         {"heartbeat-ttl-s", required_argument, 0, O_TTL},
                                         {"stale-ms", required_argument, 0, O_STALE},
                                         {"scan-ms", required_argument, 0, O_SCAN},
                                         {"warnings", required_argument, 0, O_WARN},
                                         {"work", no_argument, 0, O_WORK},
                                         {"work-ms", required_argument, 0, O_WORK_MS},
                                         {"work-log", required_argument, 0, O_WORK_LOG},
                                         {"metrics-per-coordinator", no_argument, 0, O_PERCOORD},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'n':
            rc = bc_cli_parse_u64("host", "count", optarg, 1, MAX_COUNT, &a->count);
            break;
        case 'p':
            a->prefix = optarg;
            break;
        case 's':
            a->swarm = optarg;
            break;
        case 't':
            rc = bc_cli_parse_u64("host", "timeout", optarg, 1, UINT32_MAX, &a->timeout);
            break;
        case 'm':
            rc = bc_cli_parse_u64("host", "metrics-port", optarg, 0, 65535, &a->metrics_port);
            break;
        case O_PERCOORD:
            a->per_coordinator = true;
            break;
        case O_HB:
            rc = bc_cli_parse_u64("host", "heartbeat-ms", optarg, 1, 3600000, &a->hb_ms);
            break;
        case O_TTL:
            rc = bc_cli_parse_u64("host", "heartbeat-ttl-s", optarg, 1, 86400, &a->hb_ttl);
            break;
        case O_STALE:
            rc = bc_cli_parse_u64("host", "stale-ms", optarg, 1, 86400000, &a->stale_ms);
            break;
        case O_SCAN:
            rc = bc_cli_parse_u64("host", "scan-ms", optarg, 1, 3600000, &a->scan_ms);
            break;
        case O_WARN:
            rc = bc_cli_parse_u64("host", "warnings", optarg, 1, 100, &a->warnings);
            break;
        case O_WORK:
            a->work = true;
            break;
        case O_WORK_MS:
            rc = parse_work_ms(optarg, &a->work_min, &a->work_max);
            a->work_ms_set = true;
            break;
        case O_WORK_LOG:
            a->work_log = optarg;
            break;
        case 'h':
            host_usage(stdout);
            return 0;
        default:
            host_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord host: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (a->count == 0) {
        fprintf(stderr, "Error: --count is required (see blockcoord host --help)\n");
        return 2;
    }
    char err[256];
    if (!bc_coord_id_valid("--prefix", a->prefix, err, sizeof err)) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    char longest[BC_COORD_ID_MAX * 2];
    snprintf(longest, sizeof longest, "%s-%llu", a->prefix, (unsigned long long)(a->count - 1));
    if (strlen(longest) > BC_COORD_ID_MAX) {
        fprintf(stderr,
                "Error: --prefix \"%s\" is too long for --count %llu: the id \"%s\" would be "
                "%zu characters (max %d)\n",
                a->prefix, (unsigned long long)a->count, longest, strlen(longest), BC_COORD_ID_MAX);
        return 2;
    }
    if (a->swarm && !bc_coord_id_valid("--swarm", a->swarm, err, sizeof err)) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    if (a->per_coordinator && a->metrics_port == 0) {
        fprintf(stderr,
                "Error: --metrics-per-coordinator needs --metrics-port (or METRICS_PORT)\n");
        return 2;
    }
    if (a->work && a->swarm == NULL) {
        fprintf(stderr, "Error: --work needs --swarm: work items are kept per swarm "
                        "(coordinator:work:<swarm>:<coordinator>:<workId>)\n");
        return 2;
    }
    if (!a->work && (a->work_ms_set || a->work_log)) {
        fprintf(stderr, "Error: --%s works only with --work\n",
                a->work_ms_set ? "work-ms" : "work-log");
        return 2;
    }
    return -1;
}

/* Stop the work actor and wait until it has let go of every item (it may still be submitting
 * completions), so that the hub can go. Main thread. */
static void stop_worker(host_t *h)
{
    if (h->worker == NULL)
        return;
    bc_stop(h->worker);
    pthread_mutex_lock(&h->lock);
    while (!h->stopped)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

int bc_cli_host(int argc, char **argv)
{
    host_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    host_t h;
    memset(&h, 0, sizeof h);
    h.timeout_ms = (uint32_t)a.timeout;
    h.swarm = a.swarm;
    h.work = a.work;
    h.work_min = a.work_min;
    h.work_max = a.work_max;
    h.log_fd = -1;
    h.rng = ((uint64_t)getpid() << 32) ^ bc_now_ns() ^ 0x9e3779b97f4a7c15ull;
    atomic_init(&h.all, NULL);
    atomic_init(&h.ready, 0);
    atomic_init(&h.replaced, 0);
    atomic_init(&h.w_done, 0);
    atomic_init(&h.w_refused, 0);
    atomic_init(&h.w_failed, 0);
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    if (a.work_log) {
        h.log_fd = open(a.work_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (h.log_fd < 0) {
            fprintf(stderr, "Error: --work-log \"%s\": %s\n", a.work_log, strerror(errno));
            return 2;
        }
    }

    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.heartbeat_ms = (uint32_t)a.hb_ms;
    ho.heartbeat_ttl_s = (uint32_t)a.hb_ttl;
    ho.stale_ms = (uint32_t)a.stale_ms;
    ho.scan_ms = (uint32_t)a.scan_ms;
    ho.warnings = (uint32_t)a.warnings;
    bc_runtime_t *rt;
    bc_hub_t *hub = NULL;
    rc = bc_cli_start_hub("Error: ", NULL, &ho, &rt, &hub);
    if (rc != 0) {
        if (h.log_fd >= 0)
            close(h.log_fd);
        return rc;
    }
    h.hub = hub;
    char herr[512];
    if (a.metrics_port) {
        int bound = 0;
        bc_hub_http_opts_t hopt;
        bc_hub_http_opts_init(&hopt);
        hopt.bind = getenv("METRICS_BIND");
        hopt.port = (int)a.metrics_port;
        hopt.per_coordinator = a.per_coordinator;
        rc = bc_hub_serve_http_opts(hub, &hopt, &bound, herr, sizeof herr);
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", herr);
            bc_hub_destroy(hub);
            bc_runtime_destroy(rt);
            if (h.log_fd >= 0)
                close(h.log_fd);
            return 2;
        }
        printf("Metrics server listening on :%d\n", bound);
        fflush(stdout);
    }
    if (h.work && (h.worker = bc_spawn(rt, work_behaviour, &h)) == NULL) {
        fprintf(stderr, "Error: cannot spawn the work actor\n");
        bc_hub_destroy(hub);
        bc_runtime_destroy(rt);
        if (h.log_fd >= 0)
            close(h.log_fd);
        return 1;
    }
    bc_hub_set_replacer(hub, replace, &h);

    int tty = isatty(STDOUT_FILENO);
    int result = 0, stop_sig = 0;
    char err[256];
    for (uint64_t i = 0; i < a.count; i++) {
        char id[BC_COORD_ID_MAX + 1];
        snprintf(id, sizeof id, "%s-%llu", a.prefix, (unsigned long long)i);
        rc = spawn_coord(&h, id, a.swarm, NULL, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", err);
            result = 1;
            break;
        }
        /* Let a stop request through during a long spawn. */
        if ((i & 4095) == 4095) {
            struct timespec zero = {0, 0};
            int s = sigtimedwait(&stopset, NULL, &zero);
            if (s > 0) {
                stop_sig = s;
                break;
            }
        }
    }
    if (result == 0 && stop_sig == 0) {
        printf("hosting %llu coordinators %s-0 .. %s-%llu%s (Ctrl-C to stop)\n",
               (unsigned long long)a.count, a.prefix, a.prefix, (unsigned long long)(a.count - 1),
               h.work ? ", working their items" : "");
        fflush(stdout);
    }
    char line[320];
    uint64_t last_print = 0;
    while (result == 0 && stop_sig == 0) {
        struct timespec one = {1, 0};
        int s = sigtimedwait(&stopset, NULL, &one);
        if (s > 0) {
            stop_sig = s;
            break;
        }
        if (s < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "Error: sigtimedwait: %s\n", strerror(errno));
            result = 1;
            break;
        }
        status_line(hub, &h, line, sizeof line);
        uint64_t now = bc_now_ms();
        if (tty) {
            printf("\r%s\033[K", line);
            fflush(stdout);
        } else if (now - last_print >= 5000) {
            printf("%s\n", line);
            fflush(stdout);
            last_print = now;
        }
    }
    if (tty)
        putchar('\n');
    if (stop_sig) {
        status_line(hub, &h, line, sizeof line);
        printf("%s\n%s received, stopping %llu coordinators\n", line,
               stop_sig == SIGINT ? "SIGINT" : "SIGTERM",
               (unsigned long long)(a.count +
                                    atomic_load_explicit(&h.replaced, memory_order_relaxed)));
    }
    fflush(stdout);
    stop_worker(&h);
    bc_hub_destroy(hub);
    wcoord_t *wc = atomic_load_explicit(&h.all, memory_order_acquire);
    while (wc) {
        wcoord_t *next = wc->next_all;
        bc_coord_release(wc->handle);
        free(wc);
        wc = next;
    }
    if (h.worker)
        bc_actor_release(h.worker);
    bc_runtime_destroy(rt);
    if (h.log_fd >= 0)
        close(h.log_fd);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
    return result;
}
