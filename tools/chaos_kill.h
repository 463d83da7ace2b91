/* chaos_kill.h - the state of `blockcoord chaos process-kill`, shared by its run loop
 * (chaos_kill.c) and its verdict (chaos_kill_report.c).
 *
 * Words: a *process* is one `blockcoord host` child; a *coordinator* is one id seen in the
 * registry; a *slot* is a coordinator together with its chain of replacements (X, X-r1, X-r2),
 * the unit of uptime; a *kill* is one SIGKILL of a process, which takes down every coordinator
 * the process hosted, replacements included.
 */
#ifndef BC_CHAOS_KILL_H
#define BC_CHAOS_KILL_H

#include "chaos.h"

#include <stdatomic.h>
#include <stdbool.h>

enum { PK_UNASSIGNED = 0, PK_ASSIGNING, PK_ASSIGNED, PK_ASSIGN_FAILED };

typedef struct {
    unsigned hosts, per_host, duration_s, kill_interval_s, work_items, grace_s;
    bool fast;
    const char *out;
    uint64_t hb_ms, stale_ms, scan_ms, warnings;
    char work_ms[32];
    double min_uptime;   /* percent */
    uint64_t max_p95_ms; /* inclusive bound */
    uint64_t poll_ms;
} pk_opts_t;

typedef struct {
    char id[BC_COORD_ID_MAX + 1];
    int root;              /* the slot's first coordinator */
    int pred, succ;        /* replacement chain, -1 = none */
    int proc;              /* hosting process (from its heartbeat's pid), -1 = not known yet */
    int kill;              /* the kill that took it down, -1 */
    uint64_t alive_at;     /* first heartbeat (Redis clock ms), 0 = never seen alive */
    uint64_t last_hb;      /* registry score */
    uint64_t killed_at;    /* its process was SIGKILLed (or died), 0 = alive */
    uint64_t detected_at;  /* a reaper published its death */
    uint64_t clear_at;     /* first item scan after the kill that found nothing under its id */
    uint64_t recovered_at; /* successor alive and work moved */
    unsigned items_now;    /* items under its id at the last scan */
    bool unexpected;       /* died without a kill of ours */
    bool false_death;      /* declared dead while its process ran */
    bool signal_due;       /* a `work` signal is owed to it */
    bool ghost;            /* never seen alive: known only from its spawn record (see
                              chaos_kill_watch.c); in its slot's chain, not in the figures */
} pk_coord_t;

typedef struct {
    pid_t pid;
    int slot, gen;
    char prefix[48];
    uint64_t started_at, killed_at, exited_at;
    int status;
    bool exited, killed, unexpected;
} pk_proc_t;

typedef struct {
    uint64_t t;
    int proc;
    unsigned coords, recovered, items;
    uint64_t max_recovery_ms;
    bool announced;
} pk_kill_t;

typedef struct {
    char id[16];
    _Atomic int state;  /* PK_*, written by the assign callback (a runtime worker) */
    int owner;          /* coordinator it was given to */
    int seen_owner;     /* where the last scan found it, -1 */
    bool signalled;     /* its owner was told */
    bool present, done; /* at the last scan */
    unsigned log_count; /* accepted completions reported in the hosts' work logs */
    char completed_by[BC_COORD_ID_MAX + 1];
} pk_item_t;

typedef struct {
    pk_opts_t o;
    char tag[8], swarm[32], logdir[1024];
    chaos_redis_t redis;
    chaos_sub_t sub;
    chaos_out_t out;
    bc_runtime_t *rt;
    bc_hub_t *hub;
    bc_coord_t *sender;
    int64_t offset_ms; /* Redis clock - local clock */

    pk_coord_t *coords;
    size_t ncoords, ccap;
    int *map; /* open addressing on coordinator id: index + 1, 0 = empty */
    size_t map_cap;
    pk_proc_t *procs;
    size_t nprocs, pcap;
    int *slot_proc; /* hosts[slot] = current process index */
    pk_kill_t *kills;
    size_t nkills, kcap;
    pk_item_t *items;

    uint64_t t0, chaos_end, assign_from, next_kill, end;
    size_t drip_total, drip_done, burst_left, next_item;
    unsigned kills_planned;
    bool interrupted;
    char **failures;
    size_t nfail, fcap;
} pk_t;

uint64_t pk_now(const pk_t *p); /* Redis clock ms */
void pk_fail(pk_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* chaos_kill_setup.c: the command line (returns -1 to go on, else the exit status) and the
 * host processes. */
int pk_parse(int argc, char **argv, pk_opts_t *o);
int pk_start_host(pk_t *p, int slot, int gen);  /* 0, or -1 with a failure recorded */
void pk_reap_children(pk_t *p);                 /* notice hosts that ended on their own */
int pk_new_kill(pk_t *p, int proc, uint64_t t); /* a kill record; its index */
/* Mark every live coordinator of process proc dead at `at`, by kill `kill`; how many. */
unsigned pk_bury(pk_t *p, int proc, uint64_t at, int kill);

/* chaos_kill_watch.c: the coordinator table and the view from Redis. */
int pk_coord_find(const pk_t *p, const char *id); /* index, or -1 */
int pk_proc_by_pid(const pk_t *p, long pid);      /* index, or -1 */
void pk_scan_registry(pk_t *p); /* liveness; discovers new coordinators and their chains */
void pk_on_dead(void *arg, const char *channel, const char *payload, size_t len);
int pk_scan_items(pk_t *p); /* 0, or -EIO: nothing learned this tick */
void pk_check_recoveries(pk_t *p, uint64_t scanned_at);

/* chaos_kill_report.c: the final checks, results.json and timeline.html. Returns the exit
 * status: 0 passed, 1 failed. */
int pk_report(pk_t *p);

#endif
