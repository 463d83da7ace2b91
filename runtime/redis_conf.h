/* redis_conf.h - Redis connection configuration: URL and environment parsing.
 *
 * Where to connect (TCP host/port or unix socket), credentials, db, pool size, command
 * timeout, the circuit breaker's ladder, and what to do with each class of command while
 * the breaker is not closed (fail fast or queue up to a bound).
 */
#ifndef BC_REDIS_CONF_H
#define BC_REDIS_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"

#define BC_REDIS_DEFAULT_HOST "127.0.0.1"
#define BC_REDIS_DEFAULT_PORT 6379
#define BC_REDIS_DEFAULT_TIMEOUT_MS 5000
#define BC_REDIS_TIMEOUT_MAX_MS 3600000
#define BC_REDIS_POOL_MAX 64
#define BC_REDIS_DEFAULT_QUEUE 10000 /* default bound of the queueing classes */
#define BC_REDIS_QUEUE_MAX 100000000 /* largest accepted queue bound */
#define BC_REDIS_HOST_MAX 255        /* longest host name or address */

/* Command classes, for the policy applied while the breaker does not allow commands. */
typedef enum bc_redis_class {
    BC_REDIS_CLASS_HEARTBEAT = 0,
    BC_REDIS_CLASS_SIGNAL,
    BC_REDIS_CLASS_ACK,
    BC_REDIS_CLASS_OTHER,
    BC_REDIS_CLASS_COUNT
} bc_redis_class_t;

typedef enum bc_redis_queue_mode {
    BC_REDIS_FAIL_FAST = 0, /* refuse at once with a clear error (the command is dropped) */
    BC_REDIS_QUEUE,         /* keep up to max_queued commands, flush on reconnect */
} bc_redis_queue_mode_t;

typedef struct bc_redis_queue_policy {
    bc_redis_queue_mode_t mode;
    uint32_t max_queued; /* QUEUE: bound (1..BC_REDIS_QUEUE_MAX); FAIL_FAST: 0 */
} bc_redis_queue_policy_t;

typedef struct bc_redis_conf {
    char *host;                /* TCP host (IPv6 without brackets); NULL when unix_path is set */
    int port;                  /* TCP port, 1..65535 */
    char *unix_path;           /* unix socket path (fits sun_path), or NULL for TCP */
    char *username;            /* ACL user (AUTH user pass), or NULL */
    char *password;            /* or NULL; never logged */
    int db;                    /* SELECT index, >= 0 */
    int pool_size;             /* command connections, 1..BC_REDIS_POOL_MAX */
    int timeout_ms;            /* per-command timeout, 1..BC_REDIS_TIMEOUT_MAX_MS */
    bc_breaker_conf_t breaker; /* ladder and probe interval (no log) */
    bc_redis_queue_policy_t queue[BC_REDIS_CLASS_COUNT]; /* indexed by bc_redis_class_t */
} bc_redis_conf_t;

/* Initialise *c to the defaults: redis://127.0.0.1:6379/0, no password, pool 1, timeout
 * 5000 ms, breaker 1/2/4/8 s then 30 s probes, heartbeats fail fast, signals/ACKs/other
 * queue up to 10000. Strings are malloc'd (aborts on out-of-memory); release with
 * bc_redis_conf_free. Any thread; *c is owned by the caller. */
void bc_redis_conf_init(bc_redis_conf_t *c);

/* Release the strings of *c and zero it. Safe on a zeroed or already freed struct. */
void bc_redis_conf_free(bc_redis_conf_t *c);

/* Parse `redis://[[user]:password@]host[:port][/db][?db=N&password=P]` (host may be an IPv6
 * literal in brackets) or `unix://[[user]:password@]/path[?db=N&password=P]` into the
 * connection fields of an initialised *c (host, port, unix_path, username, password, db);
 * other fields are untouched, and so is everything on error. User, password and path are
 * percent-decoded; the port defaults to 6379 and the db to 0. `rediss://` is refused (no TLS
 * in hiredis 0.14). Returns 0, or -EINVAL with a message naming the problem in err (if
 * errlen > 0), e.g. `REDIS_URL: port "99999" is out of range (1-65535)`; the message never
 * contains the password. Any thread. */
int bc_redis_conf_parse_url(bc_redis_conf_t *c, const char *url, char *err, size_t errlen);

/* Initialise *c to the defaults, then apply the environment: REDIS_URL, REDIS_PASSWORD and
 * REDIS_DB (override the URL's), REDIS_POOL_SIZE (1..64), REDIS_TIMEOUT_MS (1..3600000),
 * REDIS_QUEUE_HEARTBEAT/_SIGNAL/_ACK/_OTHER (`fail` or a bound 1..100000000),
 * REDIS_BREAKER_DELAYS_MS (comma list of 1..16 delays, each 1..3600000; sets the number of
 * attempts) and REDIS_BREAKER_PROBE_MS (1..3600000). An empty variable counts as unset.
 * Returns 0, or -EINVAL with a message naming the variable and its value (never a password)
 * in err; *c is then freed and zeroed. Reads the environment: call it before starting threads
 * that might setenv. */
int bc_redis_conf_from_env(bc_redis_conf_t *c, char *err, size_t errlen);

/* Render the target for logs, without credentials: `redis://127.0.0.1:6379/0`,
 * `redis://[::1]:6380/2`, `redis://user@host:6379/0` (ACL user, no password) or
 * `unix:///tmp/x.sock?db=0`. Truncates to len - 1 bytes. Returns buf. Any thread. */
const char *bc_redis_conf_describe(const bc_redis_conf_t *c, char *buf, size_t len);

/* Static name of a class: "heartbeat", "signal", "ack", "other"; "unknown" otherwise. */
const char *bc_redis_class_name(bc_redis_class_t cls);

#endif
