/* redis_harness.h - test support: a real redis-server started, killed, restarted and removed by
 * the test itself (implementation: tests/redis_harness.c).
 *
 * How to use it: CMake builds every tests/test_*.c into its own executable together with
 * tests/harness.c only, so a test that needs Redis compiles the implementation into itself:
 *
 *     #include "harness.h"
 *     #include "redis_harness.c"   // pulls in this header too
 *
 * Each server runs in a fresh directory /tmp/bc-redis-XXXXXX (its --dir, log, AOF and, for a
 * Unix socket, redis.sock) and listens either on a Unix socket there or on a free TCP port on
 * 127.0.0.1. The server is started with fork + execve (no shell), without RDB snapshots
 * (--save ''), and is made the leader of its own process group; killing it kills the group.
 *
 * Cleanup guarantees: every server is in a static registry and an atexit handler kills and
 * reaps the ones still running and removes their directories, so a test that fails midway
 * (cmocka longjmps out of it) leaves nothing behind. If the test process dies without running
 * atexit handlers (a crash, _exit, SIGKILL), the server gets SIGKILL from the kernel
 * (PR_SET_PDEATHSIG); only its directory is left. The parent-death signal is tied to the
 * thread that started the server, so call the harness from the test's main thread.
 *
 * Unless the test installed its own SIGPIPE handler, the harness ignores SIGPIPE in the test
 * process: a write to a killed server must fail with EPIPE, not end the test. It is not
 * thread-safe. Paths of the binaries can be overridden with BC_TEST_REDIS_SERVER and
 * BC_TEST_REDIS_CLI (defaults /usr/bin/redis-server and /usr/bin/redis-cli).
 */
#ifndef BC_TEST_REDIS_HARNESS_H
#define BC_TEST_REDIS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct bc_test_redis_s bc_test_redis_t;

typedef struct {
    int unix_socket;        /* 1: unix socket in a temp dir; 0: TCP on a free 127.0.0.1 port */
    const char *password;   /* NULL: none (requirepass) */
    int appendonly;         /* 1: appendonly yes (appendfsync always) so data survives SIGKILL */
    int disable_config;     /* 1: rename-command CONFIG "" */
    const char *extra_args; /* optional extra args, space separated (e.g.
                               "--notify-keyspace-events K$"); no quoting, no empty values */
} bc_test_redis_opts_t;

/* Start a server (NULL opts: defaults, i.e. a Unix socket, no password, no AOF). Fails the
 * current test with cmocka's fail_msg, including the server's log, if it cannot be started and
 * answering PING within 10 s. The options' strings are copied. */
bc_test_redis_t *bc_test_redis_start(const bc_test_redis_opts_t *opts);
/* Same as bc_test_redis_start but without failing the test: NULL on failure, with the reason
 * (and the tail of the server's log and stderr) in err[errlen]; nothing is left running or on
 * disk. */
bc_test_redis_t *bc_test_redis_try_start(const bc_test_redis_opts_t *opts, char *err,
                                         size_t errlen);
/* SIGKILL the server (and its process group) and reap it. No-op when not running. */
void bc_test_redis_kill(bc_test_redis_t *r);
/* SIGTERM the server (a clean shutdown: the AOF is flushed) and reap it; SIGKILL after 10 s.
 * No-op when not running. */
void bc_test_redis_stop(bc_test_redis_t *r);
/* Start the server again on the same address, options and directory (an AOF survives). A
 * running server is stopped first (SIGTERM). Fails the test like bc_test_redis_start. */
void bc_test_redis_restart(bc_test_redis_t *r);
/* Kill the server if running, remove its directory, free r. NULL is a no-op. */
void bc_test_redis_free(bc_test_redis_t *r);
/* Kill, reap and free every server still alive (e.g. from a cmocka group teardown); the atexit
 * handler calls it too. Pointers to these servers become invalid. */
void bc_test_redis_free_all(void);

/* "redis://127.0.0.1:PORT" or "unix:///tmp/bc-redis-XXXXXX/redis.sock" (never the password). */
const char *bc_test_redis_url(const bc_test_redis_t *r);
/* TCP port; 0 for a Unix socket. */
int bc_test_redis_port(const bc_test_redis_t *r);
/* Unix socket path; NULL for TCP. */
const char *bc_test_redis_socket(const bc_test_redis_t *r);
/* The server's directory (its --dir: redis.log, appendonlydir/, ...). */
const char *bc_test_redis_dir(const bc_test_redis_t *r);
/* pid of the running server; 0 when it is not running. */
pid_t bc_test_redis_pid(const bc_test_redis_t *r);

/* A new sync hiredis connection to the server (1 s connect timeout, 5 s command timeout),
 * authenticated with the password when `auth` is non-zero and there is one. NULL if the server
 * is unreachable or AUTH fails. Caller frees with redisFree. */
redisContext *bc_test_redis_connect(const bc_test_redis_t *r, int auth);
/* Run one command on a new authenticated connection (as bc_test_redis_connect: 5 s command
 * timeout, so no long blocking commands) and return the reply; caller frees it with
 * freeReplyObject. The format is redisCommand's (printf-style plus %b), hence no format
 * attribute. NULL if the server is unreachable or the connection broke; if AUTH is refused,
 * AUTH's error reply is returned. */
struct redisReply *bc_test_redis_cmd(bc_test_redis_t *r, const char *fmt, ...);
/* Run redis-cli against the server with the given arguments (a NULL-terminated array, e.g.
 * {"GET", "k", NULL}); the password is passed through REDISCLI_AUTH, not argv. Returns its
 * stdout with leading and trailing white space removed, malloc'd (caller frees). redis-cli
 * prints error replies ("ERR ...") on stdout and exits 0. NULL if redis-cli could not run,
 * exited non-zero (e.g. could not connect; its stderr goes to the test's stderr) or took more
 * than 10 s. */
char *bc_test_redis_cli(bc_test_redis_t *r, const char *const *args);

#endif
