/* test_redis_harness.c - tests for the real-redis-server test harness (tests/redis_harness.c).
 *
 * Each test starts its own redis-server (TCP or Unix socket, with or without password, AOF,
 * CONFIG, extra arguments), checks the server really behaves that way through hiredis and
 * redis-cli, and that kill / stop / restart / free do what they promise: same address after a
 * restart, data kept only with the AOF, children reaped, directories removed, nothing left
 * running when the test process exits or dies.
 */
#include "harness.h"

#include "redis_harness.c"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Assert that reply is a string (bulk or status) equal to want, then free it. */
static void expect_str(redisReply *rep, const char *want)
{
    assert_non_null(rep);
    if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS)
        fail_msg("reply type %d, want the string \"%s\"", rep->type, want);
    assert_string_equal(rep->str, want);
    freeReplyObject(rep);
}

/* Assert that reply is an error starting with prefix, then free it. */
static void expect_err(redisReply *rep, const char *prefix)
{
    assert_non_null(rep);
    if (rep->type != REDIS_REPLY_ERROR)
        fail_msg("reply type %d, want an error starting with \"%s\"", rep->type, prefix);
    if (strncmp(rep->str, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\", want one starting with \"%s\"", rep->str, prefix);
    freeReplyObject(rep);
}

/* Assert that reply is a nil, then free it. */
static void expect_nil(redisReply *rep)
{
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
}

/* Assert that pid is no child of ours any more (reaped: no zombie left). */
static void expect_reaped(pid_t pid)
{
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* 1 while process pid exists and is not a zombie. */
static int process_alive(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* 1 when path exists. */
static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* SET k v through the harness and check it worked. */
static void set_kv(bc_test_redis_t *r, const char *k, const char *v)
{
    expect_str(bc_test_redis_cmd(r, "SET %s %s", k, v), "OK");
}

/* TCP on a free 127.0.0.1 port: accessors, URL, SET/GET, and a plain hiredis client. */
static void test_tcp_set_get(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    char url[64];
    redisContext *c;

    assert_true(bc_test_redis_port(r) > 0);
    assert_null(bc_test_redis_socket(r));
    assert_true(bc_test_redis_pid(r) > 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", bc_test_redis_port(r));
    assert_string_equal(bc_test_redis_url(r), url);

    set_kv(r, "k", "v");
    expect_str(bc_test_redis_cmd(r, "GET k"), "v");

    c = redisConnect("127.0.0.1", bc_test_redis_port(r));
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    expect_str(redisCommand(c, "GET %s", "k"), "v");
    redisFree(c);
    bc_test_redis_free(r);
}

/* Defaults (NULL opts): a Unix socket with mode 0700 in the server's directory. */
static void test_unix_set_get(void **state)
{
    bc_test_redis_t *r = bc_test_redis_start(NULL);
    const char *sock = bc_test_redis_socket(r);
    char url[160], want[160];
    struct stat st;
    redisContext *c;

    assert_non_null(sock);
    assert_int_equal(bc_test_redis_port(r), 0);
    snprintf(want, sizeof want, "%s/redis.sock", bc_test_redis_dir(r));
    assert_string_equal(sock, want);
    snprintf(url, sizeof url, "unix://%s", sock);
    assert_string_equal(bc_test_redis_url(r), url);
    assert_int_equal(strncmp(sock, "/tmp/", 5), 0);
    assert_int_equal(stat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);

    set_kv(r, "k", "unix value");
    expect_str(bc_test_redis_cmd(r, "GET %s", "k"), "unix value");
    c = redisConnectUnix(sock);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    expect_str(redisCommand(c, "GET k"), "unix value");
    redisFree(c);
    bc_test_redis_free(r);
}

/* requirepass: unauthenticated commands get NOAUTH, the harness authenticates. */
static void test_password(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0, .password = "s3cret pass"};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    redisContext *c;
    char *out;

    assert_null(strstr(bc_test_redis_url(r), "s3cret"));
    c = redisConnect("127.0.0.1", bc_test_redis_port(r));
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    expect_err(redisCommand(c, "SET k v"), "NOAUTH");
    expect_err(redisCommand(c, "AUTH wrong"), "WRONGPASS");
    expect_str(redisCommand(c, "AUTH %s", "s3cret pass"), "OK");
    expect_str(redisCommand(c, "SET k v"), "OK");
    redisFree(c);

    c = bc_test_redis_connect(r, 0);
    assert_non_null(c);
    expect_err(redisCommand(c, "GET k"), "NOAUTH");
    redisFree(c);
    c = bc_test_redis_connect(r, 1);
    assert_non_null(c);
    expect_str(redisCommand(c, "GET k"), "v");
    redisFree(c);

    expect_str(bc_test_redis_cmd(r, "GET k"), "v");
    out = bc_test_redis_cli(r, (const char *const[]){"GET", "k", NULL});
    assert_non_null(out);
    assert_string_equal(out, "v");
    free(out);
    bc_test_redis_free(r);
}

/* SIGKILL + restart on the same TCP port: with appendonly the data survives. */
static void test_kill_restart_aof(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0, .appendonly = 1};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    int port = bc_test_redis_port(r);
    char url[128];
    pid_t old = bc_test_redis_pid(r);

    snprintf(url, sizeof url, "%s", bc_test_redis_url(r));
    set_kv(r, "durable", "yes");
    bc_test_redis_kill(r);
    assert_int_equal(bc_test_redis_pid(r), 0);
    expect_reaped(old);
    assert_null(bc_test_redis_cmd(r, "PING"));
    assert_null(bc_test_redis_connect(r, 1));
    bc_test_redis_kill(r); /* not running: no-op */

    bc_test_redis_restart(r);
    assert_int_equal(bc_test_redis_port(r), port);
    assert_string_equal(bc_test_redis_url(r), url);
    assert_true(bc_test_redis_pid(r) > 0);
    assert_int_not_equal(bc_test_redis_pid(r), old);
    expect_str(bc_test_redis_cmd(r, "GET durable"), "yes");
    bc_test_redis_free(r);
}

/* SIGKILL + restart on the same Unix socket: without appendonly the data is gone. */
static void test_kill_restart_no_aof(void **state)
{
    bc_test_redis_t *r = bc_test_redis_start(NULL);
    char sock[160];
    pid_t old = bc_test_redis_pid(r);

    snprintf(sock, sizeof sock, "%s", bc_test_redis_socket(r));
    set_kv(r, "volatile", "yes");
    expect_str(bc_test_redis_cmd(r, "GET volatile"), "yes");
    bc_test_redis_kill(r);
    expect_reaped(old);
    assert_null(bc_test_redis_cmd(r, "PING"));

    bc_test_redis_restart(r);
    assert_string_equal(bc_test_redis_socket(r), sock);
    expect_nil(bc_test_redis_cmd(r, "GET volatile"));
    bc_test_redis_free(r);
}

/* SIGTERM stop + restart with a password and appendonly; restart of a running server. */
static void test_stop_restart(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 1, .password = "pw", .appendonly = 1};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    pid_t old = bc_test_redis_pid(r);

    set_kv(r, "k", "kept");
    bc_test_redis_stop(r);
    assert_int_equal(bc_test_redis_pid(r), 0);
    expect_reaped(old);
    bc_test_redis_stop(r); /* not running: no-op */
    bc_test_redis_restart(r);
    expect_str(bc_test_redis_cmd(r, "GET k"), "kept");

    old = bc_test_redis_pid(r);
    set_kv(r, "k2", "also");
    bc_test_redis_restart(r); /* running: stopped first */
    expect_reaped(old);
    expect_str(bc_test_redis_cmd(r, "GET k2"), "also");
    bc_test_redis_free(r);
}

/* disable_config: CONFIG is an unknown command, the rest works. */
static void test_disable_config(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 1, .disable_config = 1};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    char *out;

    expect_err(bc_test_redis_cmd(r, "CONFIG GET maxmemory"), "ERR unknown command");
    set_kv(r, "k", "v");
    out = bc_test_redis_cli(r, (const char *const[]){"CONFIG", "GET", "maxmemory", NULL});
    assert_non_null(out);
    assert_int_equal(strncmp(out, "ERR unknown command", 19), 0);
    free(out);
    bc_test_redis_free(r);

    /* Without it, CONFIG works. */
    r = bc_test_redis_start(NULL);
    out = bc_test_redis_cli(r, (const char *const[]){"CONFIG", "GET", "maxmemory", NULL});
    assert_non_null(out);
    assert_string_equal(out, "maxmemory\n0");
    free(out);
    bc_test_redis_free(r);
}

/* extra_args: several space-separated arguments reach the server. */
static void test_extra_args(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0,
                              .extra_args = "--notify-keyspace-events K$  --maxmemory 12mb"};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    redisReply *rep = bc_test_redis_cmd(r, "CONFIG GET notify-keyspace-events");
    const char *v;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    v = rep->element[1]->str;
    assert_int_equal(strlen(v), 2);
    assert_non_null(strchr(v, 'K'));
    assert_non_null(strchr(v, '$'));
    freeReplyObject(rep);

    rep = bc_test_redis_cmd(r, "CONFIG GET maxmemory");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    assert_string_equal(rep->element[1]->str, "12582912");
    freeReplyObject(rep);
    bc_test_redis_free(r);
}

/* redis-cli helper: values written either way are seen by the other; NULL when down. */
static void test_cli(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    char *out;

    set_kv(r, "k", "hello");
    out = bc_test_redis_cli(r, (const char *const[]){"GET", "k", NULL});
    assert_non_null(out);
    assert_string_equal(out, "hello");
    free(out);

    out = bc_test_redis_cli(r, (const char *const[]){"SET", "k2", "two words", NULL});
    assert_non_null(out);
    assert_string_equal(out, "OK");
    free(out);
    expect_str(bc_test_redis_cmd(r, "GET k2"), "two words");

    out = bc_test_redis_cli(r, (const char *const[]){"GET", "missing", NULL});
    assert_non_null(out);
    assert_string_equal(out, "");
    free(out);

    bc_test_redis_kill(r);
    fprintf(stderr, "(a \"Could not connect\" line from redis-cli is expected here)\n");
    assert_null(bc_test_redis_cli(r, (const char *const[]){"PING", NULL}));
    bc_test_redis_free(r);
}

/* free: the server is killed and reaped, its directory (with the AOF) removed. */
static void test_free_removes_dir(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 1, .appendonly = 1};
    bc_test_redis_t *r = bc_test_redis_start(&o);
    char dir[64], aof[96];
    pid_t pid = bc_test_redis_pid(r);

    snprintf(dir, sizeof dir, "%s", bc_test_redis_dir(r));
    snprintf(aof, sizeof aof, "%s/appendonlydir", dir);
    set_kv(r, "k", "v");
    assert_true(exists(aof));
    assert_true(exists(bc_test_redis_socket(r)));
    bc_test_redis_free(r);
    expect_reaped(pid);
    assert_false(exists(dir));
    bc_test_redis_free(NULL);
}

/* A server that cannot start: try_start reports why (with the server's own message), leaves
 * nothing registered and removes the directory it named; a missing binary is reported too. */
static void test_start_failure(void **state)
{
    bc_test_redis_opts_t o = {.unix_socket = 0, .extra_args = "--no-such-directive 1"};
    char err[4096], dir[64];
    const char *p;

    assert_null(bc_test_redis_try_start(&o, err, sizeof err));
    if (!strstr(err, "exited at start") || !strstr(err, "no-such-directive"))
        fail_msg("unexpected error text: %s", err);
    assert_null(bcr_live);
    p = strstr(err, "dir /tmp/bc-redis-");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "dir %63[^) ]", dir), 1);
    assert_int_equal(strlen(dir), strlen("/tmp/bc-redis-XXXXXX"));
    assert_false(exists(dir));

    setenv("BC_TEST_REDIS_SERVER", "/nonexistent/redis-server", 1);
    assert_null(bc_test_redis_try_start(NULL, err, sizeof err));
    unsetenv("BC_TEST_REDIS_SERVER");
    if (!strstr(err, "/nonexistent/redis-server is not executable"))
        fail_msg("unexpected error text: %s", err);
    assert_null(bcr_live);
}

/* Write the server's pid and directory to fd (child side of the exit tests). */
static int report_server(int fd, bc_test_redis_t *r)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%d %s\n", (int)bc_test_redis_pid(r), bc_test_redis_dir(r));
    return write(fd, line, (size_t)n) == n ? 0 : -1;
}

/* Fork a child that starts a server, reports it and then leaves with exit() (use_exit) or
 * _exit(); returns the server's pid and directory and the child's wait status. */
static int run_child(int use_exit, pid_t *server, char *dir, size_t dirlen)
{
    int pfd[2], st = 0;
    char line[128] = "", fmt[32];
    ssize_t n;
    pid_t child;
    int spid = 0;

    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char err[4096];
        bc_test_redis_t *r;

        close(pfd[0]);
        r = bc_test_redis_try_start(NULL, err, sizeof err);
        if (!r || report_server(pfd[1], r) != 0)
            _exit(2);
        if (use_exit)
            exit(0); /* atexit: the harness kills and removes the server */
        _exit(0);    /* no atexit: only PR_SET_PDEATHSIG stops the server */
    }
    close(pfd[1]);
    n = read(pfd[0], line, sizeof line - 1);
    close(pfd[0]);
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    line[n > 0 ? n : 0] = '\0';
    snprintf(fmt, sizeof fmt, "%%d %%%zus", dirlen - 1);
    dir[0] = '\0';
    if (sscanf(line, fmt, &spid, dir) != 2)
        fail_msg("child reported \"%s\" (wait status 0x%x)", line, st);
    *server = spid;
    return st;
}

/* A test process that exits without freeing its servers: the atexit handler kills them and
 * removes their directories. */
static void test_atexit_cleanup(void **state)
{
    pid_t server;
    char dir[64];
    int st = run_child(1, &server, dir, sizeof dir);

    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(server > 0);
    assert_false(process_alive(server));
    assert_false(exists(dir));
}

/* A test process that dies without atexit (crash, _exit): the server gets SIGKILL anyway. */
static void test_parent_death(void **state)
{
    pid_t server;
    char dir[64];
    int st = run_child(0, &server, dir, sizeof dir);
    long long deadline = bcr_now_ms() + 5000;

    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(server > 0);
    while (process_alive(server) && bcr_now_ms() < deadline)
        bc_test_sleep_ms(10);
    assert_false(process_alive(server));
    assert_int_equal(strncmp(dir, "/tmp/bc-redis-", 14), 0);
    assert_true(exists(dir)); /* nobody ran the cleanup: remove it here */
    bcr_rmtree(dir);
    assert_false(exists(dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_set_get),
        cmocka_unit_test(test_unix_set_get),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_kill_restart_aof),
        cmocka_unit_test(test_kill_restart_no_aof),
        cmocka_unit_test(test_stop_restart),
        cmocka_unit_test(test_disable_config),
        cmocka_unit_test(test_extra_args),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_free_removes_dir),
        cmocka_unit_test(test_start_failure),
        cmocka_unit_test(test_atexit_cleanup),
        cmocka_unit_test(test_parent_death),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
