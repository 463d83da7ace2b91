/* warm.c - CPU warmers: keep the CPUs out of their idle state while the runtime is busy.
 *
 * Key decision: on a virtual machine an idle CPU halts, and waking a halted vCPU is a trip
 * through the hypervisor. Measured on this project's 2-vCPU VM (guest halt polling off), a
 * thread woken onto a halted vCPU starts 20-40 us late, which is most of a Redis round trip:
 * the PUBLISH -> SUBSCRIBE floor of a raw hiredis client was 50 us with idle vCPUs and 30 us
 * with busy ones. Every hop of a signal pays it: Redis is woken onto an idle CPU by the
 * sender's write, and a parked worker or the sleeping I/O thread by Redis's reply.
 *
 * So while any runtime thread is awake, and for warm_us (default 1 ms) after the last one
 * went to sleep, one warmer thread per CPU (at most warm_cpus) spins with `pause`, pinned to
 * its CPU and running under SCHED_IDLE. That policy is what makes it harmless: a CPU running
 * only SCHED_IDLE tasks counts as idle when the kernel places a woken task, and any normal
 * task woken there preempts the warmer at once. Redis, our own threads and everything else
 * on the machine therefore still get the CPU as if it were idle, minus the exit from halt.
 * What it costs is power and, on a shared host, the physical CPU time a halted vCPU would
 * have given back; warm_us = 0 (BC_WARM_US=0) turns the warmers off.
 *
 * A warmer that cannot get SCHED_IDLE or its CPU does not spin: a warmer competing with
 * normal threads would take the CPU from the very threads it is meant to speed up. For the
 * same reason the default is off under a CPU quota (cgroup cpu.max or cpu.cfs_quota_us, as a
 * container's CPU limit sets): SCHED_IDLE or not, a warmer's time is charged to the quota, and
 * a spent quota throttles the whole group, workers included. An explicit warm_us still wins.
 *
 * Protocol: warm_awake counts runtime threads that are not asleep (bc__warm_awake and
 * bc__warm_sleep around every blocking wait) plus holds (bc_runtime_hold_warm). A thread
 * going to sleep first extends warm_until_ns, then decrements. A warmer parks on warm_gen
 * once it sees nobody awake and the window over; the thread that brings warm_awake from 0
 * to 1 bumps warm_gen and wakes the parked warmers (Dekker: each side writes its own
 * variable, then reads the other's, all seq_cst).
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARM_SPINS 64 /* pauses between two yields and looks at the window (~1.6 us) */

struct bc_warmer_s {
    bc_runtime_t *rt;
    pthread_t thread;
    int cpu;
};

/* The first line of path, or "" (missing file). */
static void read_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)len, f) == NULL)
        buf[0] = '\0';
    fclose(f);
}

/* 1 if a CPU quota is set in dir (one cgroup directory): cgroup v2 "cpu.max" other than
 * "max ...", or v1 "cpu.cfs_quota_us" other than -1. */
static int dir_has_quota(const char *dir)
{
    char path[PATH_MAX], line[64];
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    read_line(path, line, sizeof line);
    if (line[0] != '\0' && strncmp(line, "max", 3) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    read_line(path, line, sizeof line);
    return line[0] != '\0' && atol(line) > 0;
}

/* 1 if cgroup hierarchy `mount` (a directory under root) sets a quota on cg or an ancestor. */
static int tree_has_quota(const char *root, const char *mount, const char *cg)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s%s%s%s", root, *mount ? "/" : "", mount, cg);
    if (n < 0 || (size_t)n >= sizeof dir)
        return 0;
    size_t base = strlen(root) + (*mount ? 1 + strlen(mount) : 0);
    for (;;) {
        size_t len = strlen(dir);
        while (len > base && dir[len - 1] == '/')
            dir[--len] = '\0';
        if (dir_has_quota(dir))
            return 1;
        char *slash = strrchr(dir + base, '/');
        if (slash == NULL)
            return 0;
        *slash = '\0';
    }
}

int bc__cpu_quota(const char *root, const char *cgroup_file)
{
    FILE *f = fopen(cgroup_file, "r");
    if (f == NULL)
        return 0;
    char line[PATH_MAX + 128];
    int quota = 0;
    while (!quota && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *ctl = c1 + 1, *cg = c2 + 1;
        if (*ctl == '\0') { /* v2: the unified tree, mounted at root or at root/unified */
            quota = tree_has_quota(root, "", cg) || tree_has_quota(root, "unified", cg);
            continue;
        }
        char ctls[256];
        snprintf(ctls, sizeof ctls, "%s", ctl);
        for (char *save = NULL, *t = strtok_r(ctls, ",", &save); t && !quota;
             t = strtok_r(NULL, ",", &save))
            if (strcmp(t, "cpu") == 0) /* v1: cpu alone or co-mounted (cpu,cpuacct) */
                quota = tree_has_quota(root, ctl, cg) || tree_has_quota(root, "cpu", cg);
    }
    fclose(f);
    return quota;
}

static bool hot(bc_runtime_t *rt)
{
    /* seq_cst: the park protocol above. */
    if (atomic_load(&rt->warm_awake) > 0)
        return true;
    return bc_now_ns() < atomic_load(&rt->warm_until_ns);
}

static void warm_park(bc_runtime_t *rt)
{
    atomic_fetch_add(&rt->warm_parked, 1);
    uint32_t gen = atomic_load(&rt->warm_gen);
    if (!hot(rt) && !atomic_load(&rt->warm_stop)) {
        atomic_fetch_add_explicit(&rt->warm_parks, 1, memory_order_relaxed);
        bc__futex_wait(&rt->warm_gen, gen);
    }
    atomic_fetch_sub(&rt->warm_parked, 1);
}

static void *warmer_main(void *arg)
{
    struct bc_warmer_s *wm = arg;
    bc_runtime_t *rt = wm->rt;
    char name[16];
    snprintf(name, sizeof name, "bc-warm-%d", wm->cpu);
    pthread_setname_np(pthread_self(), name);

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(wm->cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) {
        bc_log(BC_LOG_WARN, "CPU warmer for CPU %d not started: cannot pin it there: %s", wm->cpu,
               strerror(rc));
        return NULL;
    }
    struct sched_param sp = {0};
    rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    if (rc != 0) {
        bc_log(BC_LOG_WARN, "CPU warmer for CPU %d not started: cannot set SCHED_IDLE: %s", wm->cpu,
               strerror(rc));
        return NULL;
    }
    atomic_fetch_add_explicit(&rt->warm_running, 1, memory_order_relaxed);
    while (!atomic_load_explicit(&rt->warm_stop, memory_order_relaxed)) {
        if (!hot(rt)) {
            warm_park(rt);
            atomic_fetch_add_explicit(&rt->warm_wakes, 1, memory_order_relaxed);
            continue;
        }
        for (unsigned i = 0; i < WARM_SPINS; i++)
            bc__cpu_relax();
        /* A runtime thread that yields (io.c, "Yielding") would otherwise hand this CPU to
         * the warmer until the next tick: nothing wakes it, so nothing preempts us. */
        sched_yield();
    }
    atomic_fetch_sub_explicit(&rt->warm_running, 1, memory_order_relaxed);
    return NULL;
}

void bc__warm_awake(bc_runtime_t *rt)
{
    if (rt->warm_ns == 0)
        return;
    if (atomic_fetch_add(&rt->warm_awake, 1) == 0) {
        atomic_fetch_add(&rt->warm_gen, 1);
        if (atomic_load(&rt->warm_parked) > 0)
            bc__futex_wake(&rt->warm_gen, INT_MAX);
    }
}

void bc__warm_sleep(bc_runtime_t *rt)
{
    if (rt->warm_ns == 0)
        return;
    atomic_store(&rt->warm_until_ns, bc_now_ns() + rt->warm_ns);
    atomic_fetch_sub(&rt->warm_awake, 1);
}

void bc_runtime_hold_warm(bc_runtime_t *rt, int hold)
{
    if (hold)
        bc__warm_awake(rt);
    else
        bc__warm_sleep(rt);
}

int bc__warm_start(bc_runtime_t *rt)
{
    if (rt->warm_ns == 0)
        return 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        bc_log(BC_LOG_WARN, "CPU warmers not started: sched_getaffinity: %s", strerror(errno));
        return 0;
    }
    unsigned n = (unsigned)CPU_COUNT(&allowed);
    if (n > rt->warm_cpus)
        n = rt->warm_cpus;
    if (n == 0)
        return 0;
    rt->warmers = calloc(n, sizeof *rt->warmers);
    if (rt->warmers == NULL)
        return -ENOMEM;
    /* Warmers take no signals: blocked while they are created, they inherit the mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && rt->nwarm < n; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        struct bc_warmer_s *wm = &rt->warmers[rt->nwarm];
        wm->rt = rt;
        wm->cpu = cpu;
        rc = -pthread_create(&wm->thread, NULL, warmer_main, wm);
        if (rc != 0)
            break;
        rt->nwarm++; /* the first nwarm are running */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        bc__warm_stop(rt);
    return rc;
}

void bc__warm_stop(bc_runtime_t *rt)
{
    if (rt->warmers == NULL)
        return;
    atomic_store(&rt->warm_stop, 1);
    atomic_fetch_add(&rt->warm_gen, 1);
    bc__futex_wake(&rt->warm_gen, INT_MAX);
    for (unsigned i = 0; i < rt->nwarm; i++)
        pthread_join(rt->warmers[i].thread, NULL);
    free(rt->warmers);
    rt->warmers = NULL;
    rt->nwarm = 0;
}
