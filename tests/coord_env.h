/* coord_env.h - a real redis-server, a runtime and a hub for coordinator suites. */
#ifndef BC_TEST_COORD_ENV_H
#define BC_TEST_COORD_ENV_H
#include "blockcoord_cfn.h"
#include "coord_probe.h"

#include <hiredis/hiredis.h>
#include <pthread.h>

#define SECRET "a3f7e9b2c1d8f4a6e2b9c7d3f8a4e1b6c9d2f7a3e8b1c4d6f9a2e7b3c8d1f4a6"

typedef struct {
    bc_test_redis_t *redis;
    bc_runtime_t *rt;
    bc_hub_t *hub;
} env_t;

static int g_fast_path = 1;
static int g_hint_first = 0; /* the hub option: 0 default (on), -1 off */
static int g_require_signature = 0;

static inline bc_hub_t *hub_on(env_t *e, bc_notify_mode_t mode)
{
    bc_hub_opts_t o;
    bc_hub_opts_init(&o);
    o.fast_path = g_fast_path;
    o.hint_first = g_hint_first;
    o.require_signature = g_require_signature;
    o.redis_url = bc_test_redis_url(e->redis);
    o.secret = SECRET;
    o.notify = mode;
    o.poll_ms = 100;
    bc_hub_t *h = NULL;
    char err[256];
    int rc = bc_hub_create(e->rt, &o, &h, err, sizeof err);
    if (rc != 0)
        fail_msg("bc_hub_create: %s", err);
    assert_int_equal(bc_hub_wait_ready(h, 10000), 0);
    return h;
}

static inline void env_up(env_t *e, const bc_test_redis_opts_t *ro, bc_notify_mode_t mode)
{
    e->redis = bc_test_redis_start(ro);
    e->rt = bc_test_runtime(2);
    e->hub = hub_on(e, mode);
}

static inline void env_down(env_t *e)
{
    bc_hub_destroy(e->hub);
    bc_runtime_destroy(e->rt);
    bc_test_redis_free(e->redis);
}

static inline long long redis_int(env_t *e, const char *fmt, const char *a)
{
    redisReply *r = bc_test_redis_cmd(e->redis, fmt, a);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

static inline char *redis_str(env_t *e, const char *fmt, const char *a)
{
    redisReply *r = bc_test_redis_cmd(e->redis, fmt, a);
    assert_non_null(r);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

#endif
