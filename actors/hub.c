/* hub.c - one process's coordination hub: settings, the secret, the coordinator table, and
 * the lifetimes of the Redis layer, the signal-watcher and the heartbeat actor.
 *
 * Key decision: the coordinator table is a small open-addressing map under one mutex. It is
 * touched at spawn/stop and once per incoming event by the watcher, never on a coordinator's
 * hot path, so a lock is cheaper than any lock-free structure would be to get right.
 */
#include "hub.h"
#include "internal.h"
#include "obs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bc__seterr(char *err, size_t len, const char *fmt, ...)
{
    if (err == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void bc_hub_opts_init(bc_hub_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->notify = BC_NOTIFY_AUTO;
    o->poll_ms = 500;
    o->heartbeat_ms = 0;    /* HEARTBEAT_INTERVAL_MS, else 5000 */
    o->heartbeat_ttl_s = 0; /* HEARTBEAT_TTL_S, else 90 */
    o->final_ttl_s = 60;
    o->reaper = 1;
    o->node_markers = 1;
    o->heartbeats = 1;
    o->fast_path = 1;
}

/* name's value as a whole number of `unit` in 1..max, or dflt when unset. */
static int parse_env_u32(const char *name, const char *unit, uint32_t dflt, uint32_t max,
                         uint32_t *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x == 0 || x > max) {
        bc__seterr(err, errlen, "%s: \"%s\" is not a number of %s (1-%u)", name, v, unit, max);
        return -EINVAL;
    }
    *out = (uint32_t)x;
    return 0;
}

static uint64_t id_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Caller holds h->lock. */
static size_t table_find(bc_hub_t *h, const char *id, size_t len, bool *found)
{
    size_t mask = h->cap - 1, i = id_hash(id, len) & mask, tomb = SIZE_MAX;
    for (;;) {
        bc_coord_t *c = h->table[i];
        if (c == NULL) {
            *found = false;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (c == BC__TOMBSTONE) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (c->id_len == len && memcmp(c->id, id, len) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void table_grow(bc_hub_t *h)
{
    size_t ocap = h->cap;
    bc_coord_t **old = h->table;
    h->cap = ocap ? ocap * 2 : 64;
    while (h->count * 2 >= h->cap)
        h->cap *= 2;
    h->table = calloc(h->cap, sizeof *h->table);
    if (h->table == NULL)
        abort();
    h->used = h->count;
    for (size_t i = 0; i < ocap; i++) {
        bc_coord_t *c = old[i];
        if (c == NULL || c == BC__TOMBSTONE)
            continue;
        size_t j = id_hash(c->id, c->id_len) & (h->cap - 1);
        while (h->table[j])
            j = (j + 1) & (h->cap - 1);
        h->table[j] = c;
    }
    free(old);
}

/* Insert c (+1 ref for the table). Returns 0 or -EEXIST / -ESHUTDOWN. */
int bc__hub_insert(bc_hub_t *h, bc_coord_t *c)
{
    pthread_mutex_lock(&h->lock);
    if (h->closing) {
        pthread_mutex_unlock(&h->lock);
        return -ESHUTDOWN;
    }
    if ((h->used + 1) * 2 > h->cap)
        table_grow(h);
    bool found;
    size_t i = table_find(h, c->id, c->id_len, &found);
    if (found) {
        pthread_mutex_unlock(&h->lock);
        return -EEXIST;
    }
    if (h->table[i] == NULL)
        h->used++;
    h->table[i] = bc__coord_retain(c);
    h->count++;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

bc_coord_t *bc__hub_lookup(bc_hub_t *h, const char *id, size_t len)
{
    pthread_mutex_lock(&h->lock);
    bc_coord_t *c = NULL;
    if (h->cap) {
        bool found;
        size_t i = table_find(h, id, len, &found);
        if (found)
            c = bc__coord_retain(h->table[i]);
    }
    pthread_mutex_unlock(&h->lock);
    return c;
}

void bc__hub_remove(bc_hub_t *h, bc_coord_t *c)
{
    bc_coord_t *drop = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->cap) {
        bool found;
        size_t i = table_find(h, c->id, c->id_len, &found);
        if (found && h->table[i] == c) {
            h->table[i] = BC__TOMBSTONE;
            h->count--;
            drop = c;
        }
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (drop)
        bc__coord_release(drop);
}

uint64_t bc__hub_stamp(bc_hub_t *h)
{
    return (uint64_t)((int64_t)bc_redis_now_ms(h->redis) + h->opts.clock_skew_ms);
}

void bc__hub_set_mode(bc_hub_t *h, int mode, const char *reason)
{
    pthread_mutex_lock(&h->lock);
    snprintf(h->mode_reason, sizeof h->mode_reason, "%s", reason ? reason : "");
    /* release: publishes mode_reason with the mode. */
    atomic_store_explicit(&h->mode, mode, memory_order_release);
    h->ready = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

const char *bc_hub_notify_mode(const bc_hub_t *h)
{
    /* acquire: pairs with the release in bc__hub_set_mode. */
    switch (atomic_load_explicit(&h->mode, memory_order_acquire)) {
    case 1:
        return "keyspace";
    case 2:
        return "poll";
    default:
        return "unknown";
    }
}

const char *bc_hub_notify_reason(const bc_hub_t *h)
{
    /* acquire: mode_reason is written before the mode is published. */
    return atomic_load_explicit(&h->mode, memory_order_acquire) ? h->mode_reason : "";
}

uint64_t bc_hub_now_ms(const bc_hub_t *h)
{
    return bc_redis_now_ms(h->redis);
}

int64_t bc_hub_clock_offset_ms(const bc_hub_t *h)
{
    return bc_redis_clock_offset_ms(h->redis);
}

int bc_hub_create(bc_runtime_t *rt, const bc_hub_opts_t *o, bc_hub_t **out, char *err,
                  size_t errlen)
{
    if (rt == NULL || out == NULL) {
        bc__seterr(err, errlen, "bc_hub_create: NULL argument");
        return -EINVAL;
    }
    bc_hub_opts_t defaults;
    if (o == NULL) {
        bc_hub_opts_init(&defaults);
        o = &defaults;
    }
    bc_redis_conf_t conf;
    int rc = bc_redis_conf_from_env(&conf, err, errlen);
    if (rc)
        return rc;
    if (o->redis_url && (rc = bc_redis_conf_parse_url(&conf, o->redis_url, err, errlen)) != 0) {
        bc_redis_conf_free(&conf);
        return rc;
    }
    bc_hub_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        bc_redis_conf_free(&conf);
        return -ENOMEM;
    }
    h->rt = rt;
    h->opts = *o;
    h->opts.redis_url = NULL;
    h->opts.secret = NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);

    const char *secret = o->secret;
    size_t slen = o->secret_len;
    if (secret == NULL) {
        secret = getenv("BLOCKING_COORDINATION_SECRET");
        slen = 0;
    }
    if (secret == NULL || (slen == 0 && secret[0] == '\0')) {
        bc__seterr(
            err, errlen,
            "BLOCKING_COORDINATION_SECRET is not set: every coordinator must share one secret "
            "(create one with: export BLOCKING_COORDINATION_SECRET=$(openssl rand -hex 32))");
        rc = -EINVAL;
        goto err;
    }
    if (slen == 0)
        slen = strlen(secret);
    if (slen < 32)
        bc_log(BC_LOG_WARN,
               "BLOCKING_COORDINATION_SECRET is only %zu bytes: use at least 32 random bytes "
               "(openssl rand -hex 32)",
               slen);
    if ((rc = bc_hmac_create(secret, slen, &h->hmac)) != 0) {
        bc__seterr(err, errlen, "cannot key HMAC-SHA256: %s", bc_strerror(rc));
        goto err;
    }
    if (h->opts.heartbeat_ms == 0 &&
        (rc = parse_env_u32("HEARTBEAT_INTERVAL_MS", "milliseconds", 5000, 3600000,
                            &h->opts.heartbeat_ms, err, errlen)) != 0)
        goto err;
    if (h->opts.poll_ms == 0)
        h->opts.poll_ms = 500;
    if (h->opts.heartbeat_ttl_s == 0) {
        uint32_t ttl_s;
        if ((rc = parse_env_u32("HEARTBEAT_TTL_S", "seconds", 90, 86400, &ttl_s, err, errlen)) != 0)
            goto err;
        h->opts.heartbeat_ttl_s = ttl_s;
    }
    if ((h->opts.stale_ms == 0 &&
         (rc = parse_env_u32("REAPER_STALE_MS", "milliseconds", 120000, 86400000, &h->opts.stale_ms,
                             err, errlen)) != 0) ||
        (h->opts.scan_ms == 0 &&
         (rc = parse_env_u32("REAPER_SCAN_MS", "milliseconds", 30000, 3600000, &h->opts.scan_ms,
                             err, errlen)) != 0) ||
        (h->opts.warnings == 0 && (rc = parse_env_u32("REAPER_WARNINGS", "warnings", 3, 100,
                                                      &h->opts.warnings, err, errlen)) != 0))
        goto err;
    if (h->opts.final_ttl_s == 0)
        h->opts.final_ttl_s = 60;
    if (h->opts.hint_first == 0) {
        bc__env_switch("BC_HINT_FIRST", &h->opts.hint_first);
        if (h->opts.hint_first == 0)
            h->opts.hint_first = 1;
    }
    h->db = conf.db;
    h->ks_len = (size_t)snprintf(h->ks_prefix, sizeof h->ks_prefix, "__keyspace@%d__:", conf.db);
    if (gethostname(h->hostname, sizeof h->hostname) != 0)
        snprintf(h->hostname, sizeof h->hostname, "unknown");
    h->hostname[sizeof h->hostname - 1] = '\0';
    h->pid = (int)getpid();

    if ((rc = bc_redis_create(rt, &conf, &h->redis)) != 0) {
        bc__seterr(err, errlen, "cannot start the Redis layer: %s", bc_strerror(rc));
        goto err;
    }
    bc_redis_conf_free(&conf);
    h->heartbeat = bc__heartbeat_spawn(h);
    h->watcher = bc__watcher_spawn(h);
    bc__reaper_spawn(h); /* sets h->reaper before the reaper can run */
    if (h->watcher == NULL || h->heartbeat == NULL || h->reaper == NULL || bc__work_init(h) != 0) {
        bc__seterr(err, errlen, "cannot spawn the hub's actors (runtime shutting down?)");
        rc = -ESHUTDOWN;
        bc_redis_destroy(h->redis);
        h->redis = NULL;
        goto err;
    }
    *out = h;
    return 0;
err:
    bc_redis_conf_free(&conf);
    bc_hmac_destroy(h->hmac);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    return rc;
}

int bc_hub_wait_ready(bc_hub_t *h, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    while (!h->ready && rc == 0)
        rc = pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    bool ok = h->ready;
    pthread_mutex_unlock(&h->lock);
    return ok ? 0 : -ETIMEDOUT;
}

void bc_hub_destroy(bc_hub_t *h)
{
    if (h == NULL)
        return;
    /* No new reaper cycle; let the reaper's commands in flight be answered (up to 2 s) so
     * their records are freed by their continuations. */
    atomic_store_explicit(&h->reap_closing, 1, memory_order_release); /* pairs: cycle_start */
    uint64_t quiet = bc_now_ms() + 2000;
    struct timespec nap = {0, 2000000};
    while ((bc__reap_busy(h) || atomic_load_explicit(&h->ops_inflight, memory_order_relaxed) > 0) &&
           bc_now_ms() < quiet)
        nanosleep(&nap, NULL);
    /* Stop every coordinator; each writes its last heartbeat and leaves the table. */
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    size_t n = 0;
    bc_coord_t **all = malloc((h->count + 1) * sizeof *all);
    if (all == NULL)
        abort();
    for (size_t i = 0; i < h->cap; i++)
        if (h->table[i] && h->table[i] != BC__TOMBSTONE)
            all[n++] = bc__coord_retain(h->table[i]);
    pthread_mutex_unlock(&h->lock);
    /* Let signals already sent reach Redis first (a SET NX that finds the slot taken still has
     * its RPUSH to make): up to 2 s. */
    uint64_t deadline = bc_now_ms() + 2000;
    struct timespec pause = {0, 2000000};
    for (size_t i = 0; i < n; i++) {
        uint64_t now = bc_now_ms();
        bc_coord_flush(all[i], now < deadline ? (int)(deadline - now) : 0);
    }
    /* And signals delivered from their hint must have their durable copy consumed, or a stale
     * copy would sit in the slot (pushing later native senders to the queue) until read again
     * by the next incarnation, which drops it as a replay. */
    /* acquire: pairs with the watcher's release updates. */
    while (atomic_load_explicit(&h->n_owed, memory_order_acquire) > 0 && bc_now_ms() < deadline)
        nanosleep(&pause, NULL);
    for (size_t i = 0; i < n; i++) {
        bc_coord_stop(all[i]);
        bc__coord_release(all[i]);
    }
    free(all);
    deadline = bc_now_ms() + 2000;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        size_t left = h->count;
        pthread_mutex_unlock(&h->lock);
        /* acquire: pairs with the heartbeat actor's release when a final write is answered. */
        if ((left == 0 && atomic_load_explicit(&h->hb_pending, memory_order_acquire) == 0) ||
            bc_now_ms() > deadline)
            break;
        nanosleep(&pause, NULL);
    }
    bc_stop(h->watcher);
    bc_stop(h->heartbeat);
    bc_stop(h->reaper);
    /* The actors free their own state when stopped, and their last turn still reads h: wait
     * for them to finish however long a loaded machine takes (a stop always completes). */
    bool warned = false;
    while (bc_actor_alive(h->watcher) || bc_actor_alive(h->heartbeat) ||
           bc_actor_alive(h->reaper)) {
        if (!warned && bc_now_ms() > deadline + 1000) {
            bc_log(BC_LOG_WARN, "hub: still waiting for its watcher, heartbeat and reaper to stop");
            warned = true;
        }
        nanosleep(&pause, NULL);
    }
    bc__obs_destroy(h); /* its scrapes read h->redis */
    bc_redis_destroy(h->redis);
    bc_actor_release(h->watcher);
    bc_actor_release(h->heartbeat);
    bc_actor_release(h->reaper);
    bc_hmac_destroy(h->hmac);
    free(h->table);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
}

void bc_hub_stats(const bc_hub_t *h, bc_hub_stats_t *out)
{
    bc_hub_t *m = (bc_hub_t *)h;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->lock);
    out->coordinators = m->count;
    pthread_mutex_unlock(&m->lock);
#define LD(x) atomic_load_explicit(&m->x, memory_order_relaxed) /* relaxed: statistics */
    out->waiting = LD(n_waiting);
    out->signals_sent = LD(n_sent);
    out->send_failures = LD(n_send_fail);
    out->signals_delivered = LD(n_delivered);
    out->fast_path = LD(n_fast);
    out->rejected_signature = LD(n_rej_sig);
    out->rejected_unsigned = LD(n_rej_unsigned);
    out->rejected_malformed = LD(n_rej_malformed);
    out->replays = LD(n_replays);
    out->durable_consumed = LD(n_durable);
    out->acks_written = LD(n_acks_written);
    out->acks_verified = LD(n_acks_ok);
    out->acks_invalid = LD(n_acks_bad);
    out->timeouts = LD(n_timeouts);
    out->heartbeats = LD(n_heartbeats);
    out->redis_errors = LD(n_redis_errors);
    out->polls = LD(n_polls);
    out->resyncs = LD(n_resyncs);
    out->heartbeat_failures = LD(n_hb_failures);
    out->spawns = LD(n_spawns);
    out->reaper_cycles = LD(n_reap_cycles);
    out->reaper_last_cycle_ms = LD(n_reap_last_ms);
    out->reaper_stale = LD(n_reap_stale);
    out->reaper_bad_keys = LD(n_reap_bad);
    out->dead_detected = LD(n_dead);
    out->escalations = LD(n_escalations);
    out->activity_timeouts = LD(n_activity_timeouts);
    out->deadlocks = LD(n_deadlocks);
    out->work_transferred = LD(n_work_moved);
    out->work_completed = LD(n_work_done);
    out->work_refused = LD(n_work_refused);
    out->heartbeats_on_time = LD(n_hb_on_time);
    out->heartbeats_late = LD(n_hb_late);
    out->heartbeat_tick_ms = LD(hb_tick_ms);
    out->send_retries = LD(n_send_retries);
#undef LD
}
