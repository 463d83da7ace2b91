/* cli.h - shared pieces of the blockcoord command-line program. */
#ifndef BC_CLI_H
#define BC_CLI_H

#include "blockcoord.h"
#include "blockcoord_cfn.h"

#include <stdint.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} bc_cli_cmd_t;

/* Parse a non-negative integer option value in [min, max]. On error prints
 * "blockcoord <cmd>: --<opt> "<value>": expected <min>..<max>" and returns
 * -EINVAL. */
int bc_cli_parse_u64(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                     uint64_t *out);

/* Create a runtime (ro NULL: defaults) and a hub on it (ho NULL: defaults, i.e. REDIS_URL and
 * BLOCKING_COORDINATION_SECRET). On failure prints "<prefix><why>" to stderr, leaves nothing
 * running and returns the exit status: 1 (the runtime did not start) or 2 (bad configuration:
 * URL, environment, missing secret). Returns 0 with *rt and *hub set. */
int bc_cli_start_hub(const char *prefix, const bc_runtime_opts_t *ro, const bc_hub_opts_t *ho,
                     bc_runtime_t **rt, bc_hub_t **hub);

/* A synchronous hiredis connection for command-line tools, from conf (AUTH, SELECT, PING
 * done), with a BC_CLI_CONNECT_TIMEOUT_MS connect and command timeout. NULL and a message in
 * why on failure. */
#define BC_CLI_CONNECT_TIMEOUT_MS 2000
struct redisContext;
struct redisReply;
struct bc_redis_conf;
struct redisContext *bc_cli_redis_connect(const struct bc_redis_conf *c, char *why, size_t len);
/* Run a command (printf-style, hiredis formats); NULL and a message in why on an error reply
 * or a lost connection. Free the reply with freeReplyObject. */
struct redisReply *bc_cli_redis_cmd(struct redisContext *ctx, char *why, size_t len,
                                    const char *fmt, ...);

/* Subcommands. Exit status: 0 success, 1 failure, 2 usage error. */
int bc_cli_demo(int argc, char **argv);
int bc_cli_ring(int argc, char **argv);
int bc_cli_signal(int argc, char **argv);
int bc_cli_host(int argc, char **argv);
int bc_cli_verify_setup(int argc, char **argv);
int bc_cli_reap(int argc, char **argv);
int bc_cli_status(int argc, char **argv);
int bc_cli_chaos(int argc, char **argv);

#endif
