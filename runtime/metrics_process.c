/* metrics_process.c - the standard process_* metrics from /proc/self.
 *
 * Key decision: the values are read at scrape time by a collect callback
 * (like the Prometheus client libraries do), never by a background thread:
 * nothing runs between scrapes, and a scrape costs a few small /proc reads.
 * The start time cannot change, so it is computed once at registration.
 */
#include "metrics_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct bc__proc_s {
    bc_counter_t *cpu;
    bc_gauge_t *max_fds, *open_fds, *rss, *start, *vsize;
    long clk_tck, page;
} bc__proc_t;

typedef struct bc__stat_s {
    unsigned long long utime, stime, starttime, vsize;
    long long rss;
} bc__stat_t;

/* Parse /proc/self/stat. 0 or -ENOENT / -EINVAL. */
static int bc__read_stat(bc__stat_t *st)
{
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "re");
    if (!fp)
        return -ENOENT;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces and ')' */
    if (!p)
        return -EINVAL;
    /* fields after ')': 3 state ... 14 utime 15 stime ... 22 starttime 23 vsize 24 rss */
    int got = sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                     "%*d %*d %llu %llu %lld",
                     &st->utime, &st->stime, &st->starttime, &st->vsize, &st->rss);
    return got == 5 ? 0 : -EINVAL;
}

static double bc__boot_time(void)
{
    FILE *fp = fopen("/proc/stat", "re");
    if (!fp)
        return 0;
    char line[256];
    double bt = 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            bt = (double)v;
            break;
        }
    }
    fclose(fp);
    return bt;
}

static double bc__open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int self = dirfd(d);
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (atoi(e->d_name) != self)
            n++;
    }
    closedir(d);
    return n;
}

/* Soft "Max open files" from /proc/self/limits, else getrlimit. */
static double bc__max_fds(void)
{
    FILE *fp = fopen("/proc/self/limits", "re");
    if (fp) {
        char line[256];
        while (fgets(line, sizeof line, fp)) {
            unsigned long long v;
            if (strncmp(line, "Max open files", 14) != 0)
                continue;
            if (sscanf(line + 14, " %llu", &v) == 1) {
                fclose(fp);
                return (double)v;
            }
            break;
        }
        fclose(fp);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        return (double)rl.rlim_cur;
    return 0;
}

static void bc__proc_collect(bc_metrics_t *m, void *arg)
{
    bc__proc_t *p = arg;
    bc__stat_t st;
    if (bc__read_stat(&st) == 0) {
        bc_counter_set(p->cpu, (double)(st.utime + st.stime) / (double)p->clk_tck);
        bc_gauge_set(p->vsize, (double)st.vsize);
        bc_gauge_set(p->rss, (double)st.rss * (double)p->page);
    }
    bc_gauge_set(p->open_fds, bc__open_fds());
    bc_gauge_set(p->max_fds, bc__max_fds());
}

static int bc__proc_family(bc_metrics_t *m, const char *name, const char *help,
                           bc_metric_type_t type, bc_metric_family_t **f)
{
    return bc_metrics_register(m, &(bc_metric_opts_t){.name = name, .help = help, .type = type}, f);
}

/* Register process_* metrics and their collector. Any thread. 0, -EEXIST or
 * -ENOENT; see metrics.h. */
int bc_metrics_register_process(bc_metrics_t *m)
{
    static const char *const names[] = {
        "process_cpu_seconds_total",  "process_max_fds",
        "process_open_fds",           "process_resident_memory_bytes",
        "process_start_time_seconds", "process_virtual_memory_bytes",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bc_metrics_find(m, names[i]))
            return -EEXIST;
    bc__stat_t st;
    int rc = bc__read_stat(&st);
    if (rc < 0)
        return -ENOENT;
    bc__proc_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->clk_tck = sysconf(_SC_CLK_TCK);
    p->page = sysconf(_SC_PAGESIZE);
    if (p->clk_tck <= 0)
        p->clk_tck = 100;
    if (p->page <= 0)
        p->page = 4096;
    bc_metric_family_t *f[6];
    const char *help[] = {
        "Total user and system CPU time spent in seconds.",
        "Maximum number of open file descriptors.",
        "Number of open file descriptors.",
        "Resident memory size in bytes.",
        "Start time of the process since unix epoch in seconds.",
        "Virtual memory size in bytes.",
    };
    for (int i = 0; i < 6; i++) {
        rc = bc__proc_family(m, names[i], help[i], i == 0 ? BC_METRIC_COUNTER : BC_METRIC_GAUGE,
                             &f[i]);
        if (rc < 0)
            goto err; /* a concurrent registration took a name */
    }
    p->cpu = bc_counter_labels(f[0], NULL);
    p->max_fds = bc_gauge_labels(f[1], NULL);
    p->open_fds = bc_gauge_labels(f[2], NULL);
    p->rss = bc_gauge_labels(f[3], NULL);
    p->start = bc_gauge_labels(f[4], NULL);
    p->vsize = bc_gauge_labels(f[5], NULL);
    bc_gauge_set(p->start, bc__boot_time() + (double)st.starttime / (double)p->clk_tck);
    rc = bc_metrics_add_collector(m, bc__proc_collect, p, free);
    if (rc < 0)
        goto err;
    return 0;
err:
    free(p);
    return rc;
}
