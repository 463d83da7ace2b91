/* runtime.c - creating, waiting on and destroying a runtime.
 *
 * A runtime is its workers (sched.c), its I/O thread (io.c) and the list of
 * live actors (actor.c). Destruction is ordered so that nothing is freed
 * under a running thread: stop every actor and wait for the last one, stop
 * the I/O thread (timers and connections go with it), then the workers.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void bc__env_switch(const char *name, int *opt)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return;
    if (strcmp(s, "0") == 0)
        *opt = -1;
    else if (strcmp(s, "1") != 0)
        bc_log(BC_LOG_WARN, "%s=\"%s\" ignored: expected 0 or 1", name, s);
}

/* A number setting: true and *out when the environment variable holds an integer in lo..hi;
 * false when it is unset or empty, or (with a warning naming the variable, the value and the
 * range) anything else. */
static bool env_number(const char *name, long lo, long hi, long *out)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return false;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0' && v >= lo && v <= hi) {
        *out = v;
        return true;
    }
    bc_log(BC_LOG_WARN, "%s=\"%s\" ignored: expected %ld..%ld", name, s, lo, hi);
    return false;
}

void bc_runtime_opts_init(bc_runtime_opts_t *o)
{
    memset(o, 0, sizeof *o);
    long v;
    if (env_number("BC_WORKERS", 1, BC_MAX_WORKERS, &v))
        o->workers = (unsigned)v;
    if (env_number("BC_IO_SPIN_US", 0, 1000000, &v))
        o->io_spin_us = v ? (int)v : -1;
    if (env_number("BC_WARM_US", 0, 1000000, &v))
        o->warm_us = v ? (int)v : -1;
    if (env_number("BC_WARM_CPUS", 1, BC_MAX_WARM_CPUS, &v))
        o->warm_cpus = (unsigned)v;
    bc__env_switch("BC_IO_DIRECT", &o->io_direct);
    bc__env_switch("BC_IO_POLL", &o->io_poll);
    bc__env_switch("BC_IO_RUN", &o->io_run);
}

/* Worker i's context (i == workers: the I/O thread's, for the turns it runs itself). */
static void worker_init(bc_worker_t *w, bc_runtime_t *rt, unsigned i, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->rt = rt;
    w->index = i;
    w->rng = (seed ? seed : 0x9E3779B97F4A7C15ULL) + 0x632BE59BD9B4E019ULL * (i + 1);
    bc_mpscq_init(&w->pinned, 0);
}

static void runtime_free(bc_runtime_t *rt)
{
    if (rt->shards) {
        for (unsigned i = 0; i <= rt->nworkers; i++)
            pthread_mutex_destroy(&rt->shards[i].lock);
    }
    free(rt->shards);
    free(rt->workers);
    if (rt->io_worker)
        free(rt->io_worker->bag);
    free(rt->io_worker);
    pthread_mutex_destroy(&rt->wait_lock);
    pthread_cond_destroy(&rt->wait_cond);
    free(rt);
}

int bc_runtime_create(const bc_runtime_opts_t *opts, bc_runtime_t **out)
{
    bc_runtime_opts_t defaults;
    int rc = -ENOMEM;
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (opts == NULL) {
        bc_runtime_opts_init(&defaults);
        opts = &defaults;
    }
    unsigned n = opts->workers;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
        if (n > BC_MAX_WORKERS)
            n = BC_MAX_WORKERS;
    }
    if (n > BC_MAX_WORKERS || opts->batch > 1000000 || opts->spin_us > 1000000 ||
        opts->io_spin_us < -1 || opts->io_spin_us > 1000000 || opts->io_direct < -1 ||
        opts->io_direct > 1 || opts->io_poll < -1 || opts->io_poll > 1 || opts->io_run < -1 ||
        opts->io_run > 1 || opts->warm_us < -1 || opts->warm_us > 1000000 ||
        opts->warm_cpus > BC_MAX_WARM_CPUS)
        return -EINVAL;
    if (opts->deterministic)
        n = 1;

    bc_runtime_t *rt = aligned_alloc(BC_CACHELINE, sizeof *rt);
    if (rt == NULL)
        return -ENOMEM;
    memset(rt, 0, sizeof *rt);
    pthread_mutex_init(&rt->wait_lock, NULL);
    pthread_cond_init(&rt->wait_cond, NULL);
    rt->nworkers = n;
    rt->batch = opts->batch ? opts->batch : BC_DEFAULT_BATCH;
    rt->spin_us = opts->spin_us ? opts->spin_us : BC_DEFAULT_SPIN_US;
    rt->io_spin_us = opts->io_spin_us < 0    ? 0
                     : opts->io_spin_us == 0 ? BC_DEFAULT_IO_SPIN_US
                                             : (unsigned)opts->io_spin_us;
    rt->io_direct = opts->io_direct >= 0;
    rt->io_poll = opts->io_poll >= 0;
    rt->det = opts->deterministic != 0;
    rt->warm_ns = opts->warm_us < 0    ? 0
                  : opts->warm_us == 0 ? BC_DEFAULT_WARM_US * 1000ull
                                       : (uint64_t)opts->warm_us * 1000u;
    /* Off by default under a CPU quota: the warmers' time would be charged to it (warm.c). */
    if (opts->warm_us == 0 && bc__cpu_quota("/sys/fs/cgroup", "/proc/self/cgroup")) {
        rt->warm_ns = 0;
        bc_log(BC_LOG_INFO, "CPU warmers off: this process runs under a CPU quota (set "
                            "BC_WARM_US to have them anyway)");
    }
    rt->warm_cpus = opts->warm_cpus ? opts->warm_cpus : BC_DEFAULT_WARM_CPUS;
    /* Every worker and the I/O thread start awake (warm.c). */
    atomic_init(&rt->warm_awake, (int)n + 1);
    rt->seed = opts->seed;
    bc_mpscq_init(&rt->inject, 0);
    atomic_flag_clear(&rt->inject_lock);

    rt->workers = aligned_alloc(BC_CACHELINE, sizeof(bc_worker_t) * n);
    rt->shards = aligned_alloc(BC_CACHELINE, sizeof(bc_live_shard_t) * (n + 1));
    if (rt->workers == NULL || rt->shards == NULL)
        goto err;
    memset(rt->shards, 0, sizeof(bc_live_shard_t) * (n + 1));
    for (unsigned i = 0; i <= n; i++)
        pthread_mutex_init(&rt->shards[i].lock, NULL);
    for (unsigned i = 0; i < n; i++)
        worker_init(&rt->workers[i], rt, i, opts->seed);
    /* The I/O thread's context for the turns it runs itself (sched.c, bc__sched_io_run). */
    if (!rt->det && opts->io_run >= 0) {
        rt->io_worker = aligned_alloc(BC_CACHELINE, sizeof(bc_worker_t));
        if (rt->io_worker == NULL)
            goto err;
        worker_init(rt->io_worker, rt, n, opts->seed);
    }
    if ((rc = bc__warm_start(rt)) != 0)
        goto err;
    if ((rc = bc__io_start(rt)) != 0) {
        bc__warm_stop(rt);
        goto err;
    }
    if ((rc = bc__sched_start(rt)) != 0) {
        bc__io_stop(rt);
        bc__warm_stop(rt);
        goto err;
    }
    *out = rt;
    return 0;
err:
    runtime_free(rt);
    return rc;
}

unsigned bc_runtime_workers(const bc_runtime_t *rt)
{
    return rt->nworkers;
}

static int on_runtime_thread(bc_runtime_t *rt)
{
    bc_worker_t *w = bc__tls_worker;
    return (w && w->rt == rt) || (rt->io && bc_io_is_current(rt->io));
}

int bc_runtime_wait(bc_runtime_t *rt, int64_t timeout_ms)
{
    if (on_runtime_thread(rt))
        return -EDEADLK;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&rt->wait_lock);
    /* acquire: pairs with the acq_rel decrement in finalize(). */
    while (atomic_load_explicit(&rt->live, memory_order_acquire) != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&rt->wait_cond, &rt->wait_lock);
        } else if (pthread_cond_timedwait(&rt->wait_cond, &rt->wait_lock, &dl) == ETIMEDOUT) {
            if (atomic_load_explicit(&rt->live, memory_order_acquire) != 0)
                rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&rt->wait_lock);
    return rc;
}

void bc_runtime_destroy(bc_runtime_t *rt)
{
    if (rt == NULL)
        return;
    if (on_runtime_thread(rt)) {
        bc_log(BC_LOG_ERROR, "bc_runtime_destroy called from a runtime thread: refused");
        return;
    }
    /* release: spawns that see it refuse; see bc_spawn. */
    atomic_store_explicit(&rt->destroying, 1, memory_order_release);
    /* A behaviour may still be spawning as we look: ask again until the
     * last actor is gone. */
    for (;;) {
        bc__actor_stop_all(rt);
        if (bc_runtime_wait(rt, 20) == 0)
            break;
    }
    /* Workers first: a spinning worker may still look at the I/O thread's sockets (io.c,
     * worker reads). With every actor gone, nothing the I/O thread still does needs them. */
    bc__sched_stop(rt);
    bc__io_stop(rt);
    bc__warm_stop(rt);
    /* Actors woken off the workers after they stopped: none can remain
     * (every actor is closed), but the queues own no memory either way. */
    runtime_free(rt);
}

void bc_runtime_stats(bc_runtime_t *rt, bc_runtime_stats_t *out)
{
    memset(out, 0, sizeof *out);
    /* relaxed everywhere: statistics, read racily. */
    out->actors_live = atomic_load_explicit(&rt->live, memory_order_relaxed);
    out->actors_spawned = atomic_load_explicit(&rt->spawned, memory_order_relaxed);
    out->actors_stopped = atomic_load_explicit(&rt->stopped, memory_order_relaxed);
    out->messages_dead = atomic_load_explicit(&rt->dead_letters, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        bc_worker_t *w = &rt->workers[i];
        out->parks += atomic_load_explicit(&w->n_parks, memory_order_relaxed);
        out->wakes += atomic_load_explicit(&w->n_wakes, memory_order_relaxed);
        out->steals += atomic_load_explicit(&w->n_steals, memory_order_relaxed);
    }
    out->io_turns = atomic_load_explicit(&rt->io_turns, memory_order_relaxed);
    if (rt->io) {
        out->timers_pending = bc__io_timers_pending(rt->io);
        bc__io_stats(rt->io, &out->io_direct, &out->io_direct_wakes, &out->io_polled,
                     &out->io_carried, &out->io_after_write);
    }
    out->warmers = atomic_load_explicit(&rt->warm_running, memory_order_relaxed);
    out->warm_parks = atomic_load_explicit(&rt->warm_parks, memory_order_relaxed);
    out->warm_wakes = atomic_load_explicit(&rt->warm_wakes, memory_order_relaxed);
}
