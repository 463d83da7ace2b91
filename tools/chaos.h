/* chaos.h - pieces shared by the `blockcoord chaos` tests (chaos_*.c): a synchronous Redis
 * connection for observing (the orchestrator is a program, not an actor: it reads Redis the way
 * an operator's redis-cli would), child processes, the progress line and event log, the
 * timeline page and a few numbers.
 *
 * Everything here runs on the orchestrator's main thread unless a function says otherwise.
 */
#ifndef BC_CHAOS_H
#define BC_CHAOS_H

#include "cli.h"
#include "redis_conf.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- subcommands */

int bc_chaos_process_kill(int argc, char **argv);
int bc_chaos_redis_restart(int argc, char **argv);

/* ---------------------------------------------------------------- clock and randomness */

uint64_t chaos_wall_ms(void); /* CLOCK_REALTIME in ms: the clock Redis TIME and heartbeats use */
void chaos_sleep_ms(uint64_t ms); /* main thread only: the orchestrator's pacing */
uint64_t chaos_rand(void);        /* xorshift, seeded from /dev/urandom at first use */
double chaos_rand01(void);        /* uniform in [0, 1) */

/* A run tag: 4 lowercase hex digits, fresh per run (namespaces ids and the swarm). */
void chaos_tag(char out[8]);

/* If BLOCKING_COORDINATION_SECRET is unset or empty, set it to 64 random hex digits (the
 * children inherit it) and say so on stdout. Call before any thread starts. 0 or -EIO. */
int chaos_ensure_secret(void);

/* The nearest-rank percentile p (0..100) of v[0..n) (sorted here, in place); 0 when n == 0. */
uint64_t chaos_percentile(uint64_t *v, size_t n, double p);

/* mkdir -p. 0 or -errno with a message in err. */
int chaos_mkdirs(const char *path, char *err, size_t errlen);

/* ---------------------------------------------------------------- Redis (synchronous) */

typedef struct {
    bc_redis_conf_t conf;
    redisContext *ctx; /* NULL while disconnected; the next command reconnects */
    char target[256];  /* for messages, without credentials */
    char last_err[256];
} chaos_redis_t;

/* Read the connection settings (url, or REDIS_URL and friends when url is NULL) and connect.
 * 0, or -EINVAL (bad settings) / -EIO (cannot connect) with a message in err. */
int chaos_redis_open(chaos_redis_t *r, const char *url, char *err, size_t errlen);
/* The same without connecting: the first command connects. */
int chaos_redis_init(chaos_redis_t *r, const char *url, char *err, size_t errlen);
void chaos_redis_close(chaos_redis_t *r);
/* One command, printf-style as redisCommand. Returns the reply (free with freeReplyObject) or
 * NULL on a connection failure (r->last_err says why; the connection is dropped and the next
 * command reconnects once). An error reply is returned as such. */
redisReply *chaos_redis_cmd(chaos_redis_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
redisReply *chaos_redis_argv(chaos_redis_t *r, int argc, const char **argv, const size_t *lens);
/* Redis TIME minus the local CLOCK_REALTIME, in ms (0 if TIME fails). */
int64_t chaos_redis_offset_ms(chaos_redis_t *r);

/* Every key matching pattern (SCAN MATCH ... COUNT 1000): calls fn for each, returns the number
 * of keys or -EIO. */
typedef void (*chaos_key_fn)(void *arg, const char *key, size_t len);
long chaos_redis_scan(chaos_redis_t *r, const char *pattern, chaos_key_fn fn, void *arg);

/* A subscriber connection read without blocking: chaos_sub_poll drains whatever messages have
 * arrived and calls fn(arg, channel, payload) for each. */
typedef struct {
    redisContext *ctx;
    char channel[256];
} chaos_sub_t;
int chaos_sub_open(chaos_sub_t *s, chaos_redis_t *r, const char *channel, char *err, size_t len);
typedef void (*chaos_msg_fn)(void *arg, const char *channel, const char *payload, size_t len);
int chaos_sub_poll(chaos_sub_t *s, chaos_msg_fn fn, void *arg); /* messages read, or -EIO */
void chaos_sub_close(chaos_sub_t *s);

/* ---------------------------------------------------------------- child processes */

/* The absolute path of this program (for starting `blockcoord host` children). */
const char *chaos_self_exe(void);

/* fork + exec argv (argv[0] is the program: a path, or a name looked up in PATH) with stdout
 * and stderr appended to out_path and err_path (NULL: /dev/null), stdin from /dev/null, all
 * signals unblocked and SIGKILL as the parent-death signal (a killed orchestrator leaves no
 * orphans). Returns the pid or -errno with a message in err. */
pid_t chaos_spawn(char *const argv[], const char *out_path, const char *err_path, char *err,
                  size_t errlen);

/* Wait for pid up to timeout_ms (after sending sig, if sig != 0), then SIGKILL and reap it.
 * Returns the wait status, or -1 if the process was not ours or already reaped. */
int chaos_stop_child(pid_t pid, int sig, int timeout_ms);

/* "exited with status 1", "killed by SIGKILL". */
const char *chaos_describe_status(int status, char *buf, size_t len);

/* The last n lines of a file, indented, into buf (for failure messages). */
const char *chaos_tail(const char *path, int n, char *buf, size_t len);

/* ---------------------------------------------------------------- output */

typedef struct {
    int tty;
    uint64_t t0;         /* wall ms at the start of the run: event times are relative to it */
    uint64_t last_print; /* non-TTY: last progress line */
    int bar_shown;       /* TTY: a bar is on the current line */
    FILE *log;           /* DIR/events.log, or NULL */
} chaos_out_t;

int chaos_out_open(chaos_out_t *o, const char *dir, char *err, size_t errlen);
void chaos_out_close(chaos_out_t *o);
/* An event line, "[mm:ss] text", on stdout and in events.log. */
void chaos_event(chaos_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Only in events.log (per-coordinator detail). */
void chaos_detail(chaos_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The progress bar: on a terminal rewritten in place, otherwise one line every 5 s. */
void chaos_progress(chaos_out_t *o, double frac, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void chaos_progress_end(chaos_out_t *o);

/* ---------------------------------------------------------------- timeline page */

enum { CHAOS_SEG_ALIVE = 1, CHAOS_SEG_DEAD, CHAOS_SEG_DOWN };

typedef struct {
    uint64_t from, to; /* wall ms */
    int state;         /* CHAOS_SEG_* */
    char note[192];    /* tooltip */
} chaos_seg_t;

typedef struct {
    char label[160];
    int flagged; /* has a dead segment: the page can filter on it */
    chaos_seg_t *segs;
    size_t n, cap;
} chaos_row_t;

typedef struct {
    uint64_t t;
    char label[96];
} chaos_mark_t;

typedef struct {
    char title[128];
    uint64_t t0, t1;
    chaos_row_t *rows;
    size_t nrows, cap;
    chaos_mark_t *marks;
    size_t nmarks, mcap;
} chaos_timeline_t;

chaos_row_t *chaos_tl_row(chaos_timeline_t *tl, const char *label);
void chaos_tl_seg(chaos_row_t *row, uint64_t from, uint64_t to, int state, const char *note);
void chaos_tl_mark(chaos_timeline_t *tl, uint64_t t, const char *label);
/* Write a self-contained HTML page (inline CSS, SVG and a little JS; no network) with the rows,
 * the marks and the results JSON text. 0 or -errno with a message in err. */
int chaos_tl_write(const chaos_timeline_t *tl, const char *path, const char *results_json,
                   char *err, size_t errlen);
void chaos_tl_free(chaos_timeline_t *tl);

/* Write text to path (whole file). 0 or -errno with a message in err. */
int chaos_write_file(const char *path, const char *text, char *err, size_t errlen);

#endif
