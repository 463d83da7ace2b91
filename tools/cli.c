/* cli.c - pieces shared by the blockcoord subcommands: option parsing and starting a runtime
 * with a hub, so every command reports the same errors the same way.
 */
#include "cli.h"

#include "redis_conf.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <sys/time.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int bc_cli_parse_u64(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end || val[0] == '-' || v < min || v > max) {
        fprintf(stderr, "blockcoord %s: --%s \"%s\": expected an integer in %llu..%llu\n", cmd, opt,
                val, (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int bc_cli_start_hub(const char *prefix, const bc_runtime_opts_t *ro, const bc_hub_opts_t *ho,
                     bc_runtime_t **rt, bc_hub_t **hub)
{
    int rc = bc_runtime_create(ro, rt);
    if (rc != 0) {
        fprintf(stderr, "%scannot start the runtime: %s\n", prefix, bc_strerror(rc));
        return 1;
    }
    char err[512];
    rc = bc_hub_create(*rt, ho, hub, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s%s\n", prefix, err);
        bc_runtime_destroy(*rt);
        *rt = NULL;
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- synchronous Redis */

/* Send a command; on error returns NULL and a message in why. */
redisReply *bc_cli_redis_cmd(redisContext *ctx, char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        snprintf(why, len, "%s", ctx->errstr[0] ? ctx->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, len, "%s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisContext *bc_cli_redis_connect(const bc_redis_conf_t *c, char *why, size_t len)
{
    struct timeval tv = {BC_CLI_CONNECT_TIMEOUT_MS / 1000,
                         (BC_CLI_CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *ctx = c->unix_path ? redisConnectUnixWithTimeout(c->unix_path, tv)
                                     : redisConnectWithTimeout(c->host, c->port, tv);
    if (ctx == NULL) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    if (ctx->err) {
        snprintf(why, len, "%s", ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    redisReply *r = NULL;
    char e[256];
    if (c->password) {
        r = c->username ? bc_cli_redis_cmd(ctx, e, sizeof e, "AUTH %s %s", c->username, c->password)
                        : bc_cli_redis_cmd(ctx, e, sizeof e, "AUTH %s", c->password);
        if (r == NULL) {
            snprintf(why, len, "AUTH failed: %s", e);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (c->db != 0) {
        if ((r = bc_cli_redis_cmd(ctx, e, sizeof e, "SELECT %d", c->db)) == NULL) {
            snprintf(why, len, "SELECT %d failed: %s", c->db, e);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    if ((r = bc_cli_redis_cmd(ctx, e, sizeof e, "PING")) == NULL) {
        snprintf(why, len, "PING failed: %s", e);
        redisFree(ctx);
        return NULL;
    }
    freeReplyObject(r);
    return ctx;
}
