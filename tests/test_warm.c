/* test_warm.c - CPU warmers (runtime/warm.c): one per CPU, pinned, SCHED_IDLE; they run
 * while a runtime thread is awake or a hold is on, park once everything has slept for
 * warm_us, and come back with the next activity. Off with warm_us = -1. */
#include "harness.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LONG_MS 20000 /* generous bound for anything the test waits for */

/* Whether this process may use SCHED_IDLE at all (a seccomp profile may refuse it). */
static void *probe_idle(void *arg)
{
    struct sched_param sp = {0};
    *(int *)arg = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    return NULL;
}

static bool sched_idle_allowed(void)
{
    pthread_t t;
    int rc = -1;
    if (pthread_create(&t, NULL, probe_idle, &rc) != 0)
        return false;
    pthread_join(t, NULL);
    return rc == 0;
}

static unsigned cpus_allowed(void)
{
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

/* The threads of this process named bc-warm-*: how many, and whether every one of them runs
 * under SCHED_IDLE and may run on exactly one CPU, the one its name gives. */
static unsigned warm_threads(bool *all_idle_pinned)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    unsigned n = 0;
    *all_idle_pinned = true;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* the thread just exited */
        bool got = fgets(comm, sizeof comm, f) != NULL;
        fclose(f);
        int cpu;
        if (!got || sscanf(comm, "bc-warm-%d", &cpu) != 1)
            continue;
        n++;
        pid_t tid = (pid_t)atoi(e->d_name);
        cpu_set_t set;
        if (sched_getscheduler(tid) != SCHED_IDLE ||
            sched_getaffinity(tid, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1 ||
            !CPU_ISSET(cpu, &set))
            *all_idle_pinned = false;
    }
    closedir(d);
    return n;
}

static bc_runtime_stats_t stats(bc_runtime_t *rt)
{
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    return s;
}

/* Wait up to LONG_MS for `cond` (re-evaluated every millisecond); on a timeout fail with
 * `what` and the value it ended at. */
#define WAIT_FOR(cond, what, now_value)                                                            \
    do {                                                                                           \
        uint64_t t0_ = bc_now_ms();                                                                \
        while (!(cond)) {                                                                          \
            if (bc_now_ms() - t0_ > LONG_MS)                                                       \
                fail_msg("timed out waiting for %s (now %llu)", what,                              \
                         (unsigned long long)(now_value));                                         \
            bc_test_sleep_ms(1);                                                                   \
        }                                                                                          \
    } while (0)

static void wait_warmers(bc_runtime_t *rt, uint64_t n)
{
    WAIT_FOR(stats(rt).warmers == n, "the warmers to run", stats(rt).warmers);
}

static void wait_wakes(bc_runtime_t *rt, uint64_t min)
{
    WAIT_FOR(stats(rt).warm_wakes >= min, "warmer wake-ups", stats(rt).warm_wakes);
}

/* Every warmer is asleep again: nobody awake, no hold, the window over. */
static void wait_all_parked(bc_runtime_t *rt, unsigned n)
{
    WAIT_FOR((unsigned)atomic_load(&rt->warm_parked) == n, "every warmer to park",
             atomic_load(&rt->warm_parked));
}

static void noop(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    _Atomic int *ran = st;
    (void)self;
    if (msg->type != BC_MSG_STOPPED)
        atomic_fetch_add(ran, 1);
}

static void test_warmers_run_park_and_come_back(void **state)
{
    (void)state;
    if (!sched_idle_allowed())
        skip();
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    o.warm_us = 2000;
    o.warm_cpus = 0;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    unsigned want = cpus_allowed() < BC_DEFAULT_WARM_CPUS ? cpus_allowed() : BC_DEFAULT_WARM_CPUS;
    wait_warmers(rt, want);
    bool ok;
    assert_int_equal(warm_threads(&ok), want);
    assert_true(ok); /* SCHED_IDLE, each pinned to its own CPU */

    /* Nothing to do: the workers park, the I/O thread sleeps, the warmers follow. */
    wait_all_parked(rt, want);
    assert_true(stats(rt).warm_parks >= want);

    /* A hold brings them back, and none parks while it is on, however long. */
    uint64_t wakes = stats(rt).warm_wakes;
    bc_runtime_hold_warm(rt, 1);
    wait_wakes(rt, wakes + want);
    uint64_t parks = stats(rt).warm_parks;
    bc_test_sleep_ms(50); /* 25 windows */
    assert_int_equal(stats(rt).warm_parks, parks);
    assert_int_equal(atomic_load(&rt->warm_parked), 0);
    bc_runtime_hold_warm(rt, 0);
    wait_all_parked(rt, want);

    /* Work wakes a worker, and the worker the warmers. */
    wakes = stats(rt).warm_wakes;
    _Atomic int ran = 0;
    bc_actor_t *a = bc_spawn(rt, noop, &ran);
    assert_non_null(a);
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), 0);
    wait_wakes(rt, wakes + want);
    assert_int_equal(atomic_load(&ran), 1);
    wait_all_parked(rt, want);

    bc_actor_release(a);
    bc_runtime_destroy(rt);
    assert_int_equal(warm_threads(&ok), 0); /* joined */
}

static void test_warm_cpus_caps_the_count(void **state)
{
    (void)state;
    if (!sched_idle_allowed())
        skip();
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 1;
    o.warm_us = 1000; /* explicit: on even under a CPU quota */
    o.warm_cpus = 1;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    wait_warmers(rt, 1);
    bool ok;
    assert_int_equal(warm_threads(&ok), 1);
    assert_true(ok);
    bc_runtime_destroy(rt);
}

static void test_warmers_off(void **state)
{
    (void)state;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 1;
    o.warm_us = -1;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    bc_runtime_hold_warm(rt, 1); /* no effect, no crash */
    bc_runtime_hold_warm(rt, 0);
    bc_test_sleep_ms(20);
    bool ok;
    assert_int_equal(warm_threads(&ok), 0);
    assert_int_equal(stats(rt).warmers, 0);
    bc_runtime_destroy(rt);
}

static void test_invalid_warm_options(void **state)
{
    (void)state;
    bc_runtime_opts_t o;
    bc_runtime_t *rt = NULL;
    bc_runtime_opts_init(&o);
    o.warm_us = -2;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    o.warm_us = 1000001;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    bc_runtime_opts_init(&o);
    o.warm_cpus = BC_MAX_WARM_CPUS + 1;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    assert_null(rt);

    /* The environment: a bad value is ignored with a warning, good ones are taken. */
    setenv("BC_WARM_US", "soon", 1);
    setenv("BC_WARM_CPUS", "0", 1);
    bc_runtime_opts_init(&o);
    assert_int_equal(o.warm_us, 0);
    assert_int_equal(o.warm_cpus, 0);
    setenv("BC_WARM_US", "0", 1);
    setenv("BC_WARM_CPUS", "3", 1);
    bc_runtime_opts_init(&o);
    assert_int_equal(o.warm_us, -1); /* 0: off */
    assert_int_equal(o.warm_cpus, 3);
    setenv("BC_WARM_US", "250", 1);
    bc_runtime_opts_init(&o);
    assert_int_equal(o.warm_us, 250);
    unsetenv("BC_WARM_US");
    unsetenv("BC_WARM_CPUS");
}

/* ---------------------------------------------------------------- CPU quota detection */

static void put(const char *root, const char *rel, const char *text)
{
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_cpu_quota_detection(void **state)
{
    (void)state;
    char root[] = "/tmp/bc-cgroup-XXXXXX";
    assert_non_null(mkdtemp(root));
    char cg[600], cmd[700];
    snprintf(cg, sizeof cg, "%s/self-cgroup", root);

    /* v2, no limit anywhere, then a limit on an ancestor */
    put(root, "self-cgroup", "0::/kubepods/pod1/ctr\n");
    put(root, "kubepods/pod1/ctr/cpu.max", "max 100000\n");
    put(root, "kubepods/cpu.max", "max 100000\n");
    assert_int_equal(bc__cpu_quota(root, cg), 0);
    put(root, "kubepods/pod1/cpu.max", "50000 100000\n");
    assert_int_equal(bc__cpu_quota(root, cg), 1);

    /* hybrid: the unified tree under root/unified; the limit on the cgroup itself */
    put(root, "self-cgroup", "1:cpu:/\n0::/svc\n");
    put(root, "unified/svc/cpu.max", "max 100000\n");
    assert_int_equal(bc__cpu_quota(root, cg), 0);
    put(root, "unified/svc/cpu.max", "20000 100000\n");
    assert_int_equal(bc__cpu_quota(root, cg), 1);

    /* v1: cpu co-mounted with cpuacct; -1 is no limit; other controllers do not count */
    put(root, "self-cgroup", "3:memory:/job\n2:cpu,cpuacct:/job/task\n");
    put(root, "memory/job/cpu.cfs_quota_us", "50000\n");
    put(root, "cpu,cpuacct/job/task/cpu.cfs_quota_us", "-1\n");
    put(root, "cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(bc__cpu_quota(root, cg), 0);
    put(root, "cpu,cpuacct/job/cpu.cfs_quota_us", "150000\n");
    assert_int_equal(bc__cpu_quota(root, cg), 1);

    /* unreadable or malformed input: no quota, no crash */
    put(root, "self-cgroup", "garbage\n::\n7:cpu\n");
    assert_int_equal(bc__cpu_quota(root, cg), 0);
    snprintf(cmd, sizeof cmd, "%s/missing", root);
    assert_int_equal(bc__cpu_quota(root, cmd), 0);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmers_run_park_and_come_back),
        cmocka_unit_test(test_warm_cpus_caps_the_count),
        cmocka_unit_test(test_warmers_off),
        cmocka_unit_test(test_invalid_warm_options),
        cmocka_unit_test(test_cpu_quota_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
