/* redis_harness.c - implementation of redis_harness.h: a real redis-server per test.
 *
 * Not a separate translation unit: CMake links only tests/harness.c into each test executable,
 * so a test that needs Redis does `#include "redis_harness.c"` (after "harness.h"). See
 * redis_harness.h for the API, the cleanup guarantees and the environment overrides.
 *
 * Processes are started with fork + execve. Between fork and exec the child only makes
 * async-signal-safe calls (setpgid, prctl, getppid, sigprocmask, dup2, fcntl, close_range,
 * close, execve, _exit); everything it needs (argv, environment, open descriptors, all opened
 * with O_CLOEXEC) is prepared by the parent beforehand.
 */
#ifndef BC_TEST_REDIS_HARNESS_C
#define BC_TEST_REDIS_HARNESS_C

#include "harness.h"
#include "redis_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BCR_START_MS 10000 /* start (or restart) must answer PING within this */
#define BCR_STOP_MS 10000  /* SIGTERM grace period before SIGKILL */
#define BCR_CLI_MS 10000   /* redis-cli run cap */
#define BCR_START_TRIES 20 /* TCP: fresh ports tried when the chosen one was taken */

extern char **environ;

struct bc_test_redis_s {
    int unix_socket;
    int appendonly;
    int disable_config;
    char *password;   /* NULL: none */
    char *extra_args; /* NULL: none */
    char dir[64];     /* /tmp/bc-redis-XXXXXX */
    char sock[96];    /* dir/redis.sock (unix) */
    char url[128];
    int port;              /* TCP port; 0 for unix */
    pid_t pid;             /* running server (leader of its process group); 0 when none */
    pid_t owner;           /* process that created the server (atexit acts only there) */
    bc_test_redis_t *next; /* registry of live servers */
};

static bc_test_redis_t *bcr_live;
static int bcr_atexit_registered;

/* Monotonic clock in milliseconds. */
static long long bcr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Path of redis-server: $BC_TEST_REDIS_SERVER or /usr/bin/redis-server. */
static const char *bcr_server_path(void)
{
    const char *p = getenv("BC_TEST_REDIS_SERVER");
    return p && *p ? p : "/usr/bin/redis-server";
}

/* Path of redis-cli: $BC_TEST_REDIS_CLI or /usr/bin/redis-cli. */
static const char *bcr_cli_path(void)
{
    const char *p = getenv("BC_TEST_REDIS_CLI");
    return p && *p ? p : "/usr/bin/redis-cli";
}

/* strdup that keeps NULL. */
static char *bcr_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Ignore SIGPIPE unless the test installed its own disposition. */
static void bcr_ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back); -1 on error. */
static int bcr_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int port = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Make `fd` the child's descriptor `to` (without close-on-exec). Child side only. */
static void bcr_child_fd(int fd, int to)
{
    if (fd == to)
        fcntl(to, F_SETFD, 0);
    else
        dup2(fd, to);
}

/* fork + execve `path` with stdin/stdout/stderr from in/out/err. The child leads a new process
 * group and gets SIGKILL when the calling thread dies. Returns the pid, or -1 (errno set). */
static pid_t bcr_spawn(const char *path, char *const argv[], char *const envp[], int in, int out,
                       int err)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    sigset_t none;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the parent died before prctl took effect */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        bcr_child_fd(in, 0);
        bcr_child_fd(out, 1);
        bcr_child_fd(err, 2);
        if (close_range(3, ~0U, 0) != 0) {
            for (int fd = 3; fd < 4096; fd++)
                close(fd);
        }
        execve(path, argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also from this side, so the group exists before we may signal it */
    return pid;
}

/* 1 when process `pid` (our child) has exited, leaving it unreaped; 0 while it runs. A child we
 * cannot wait for (SIGCHLD ignored) counts as exited. */
static int bcr_exited(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == EINTR ? 0 : 1;
    return si.si_pid == pid;
}

/* Kill whatever is left of the server's process group, reap the server and mark it stopped.
 * Returns the wait status (-1 if it could not be reaped). */
static int bcr_reap(bc_test_redis_t *r)
{
    int st = -1;

    kill(-r->pid, SIGKILL); /* the leader is at most a zombie: the group id is still ours */
    while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR) {
    }
    r->pid = 0;
    return st;
}

/* Size of a file, 0 if missing. */
static off_t bcr_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The last (at most len - 1) bytes of `path` written after offset `from`, NUL-terminated. */
static void bcr_read_tail(const char *path, off_t from, char *buf, size_t len)
{
    off_t size = bcr_file_size(path), start = from;
    ssize_t n = 0;
    int fd;

    buf[0] = '\0';
    if (len < 2 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return;
    if (size - start > (off_t)(len - 1))
        start = size - (off_t)(len - 1);
    if (start < size)
        n = pread(fd, buf, len - 1, start);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* nftw callback removing one entry. */
static int bcr_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* rm -rf dir. */
static void bcr_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, bcr_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Connect without AUTH; NULL if unreachable. */
static redisContext *bcr_connect_raw(const bc_test_redis_t *r)
{
    struct timeval conn_tv = {1, 0}, cmd_tv = {5, 0};
    redisContext *c;

    if (r->unix_socket)
        c = redisConnectUnixWithTimeout(r->sock, conn_tv);
    else
        c = redisConnectWithTimeout("127.0.0.1", r->port, conn_tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, cmd_tv);
    return c;
}

/* 1 when the server answers PING with PONG and (when INFO works) it is our process answering,
 * not whoever else may have grabbed the port. */
static int bcr_ready(const bc_test_redis_t *r)
{
    redisContext *c = bc_test_redis_connect(r, 1);
    redisReply *rep;
    int ok;

    if (!c)
        return 0;
    rep = redisCommand(c, "PING");
    ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep)
        freeReplyObject(rep);
    if (ok) {
        rep = redisCommand(c, "INFO server");
        if (!rep)
            ok = 0;
        else if (rep->type == REDIS_REPLY_STRING) {
            const char *p = strstr(rep->str, "process_id:");
            ok = p && atol(p + strlen("process_id:")) == (long)r->pid;
        }
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return ok;
}

/* Count the space-separated tokens of s (NULL: 0). */
static size_t bcr_count_tokens(const char *s)
{
    size_t n = 0;

    for (; s && *s; s++) {
        if (*s != ' ' && *s != '\t' && (s[1] == ' ' || s[1] == '\t' || s[1] == '\0'))
            n++;
    }
    return n;
}

/* Start one redis-server for r on its address and wait (until deadline) for it to answer.
 * Returns 0 when running, 1 when it exited because the TCP port was taken (retry on another
 * port), -1 on any other failure; err gets the reason and the server's output. */
static int bcr_launch(bc_test_redis_t *r, long long deadline, char *err, size_t errlen)
{
    const char *server = bcr_server_path();
    char logpath[128], outpath[128], portstr[16], logtail[2048], outtail[1024];
    char *extra = bcr_strdup(r->extra_args), *save = NULL, *tok;
    char **argv = calloc(32 + bcr_count_tokens(r->extra_args) + 1, sizeof *argv);
    off_t log0, out0;
    size_t n = 0;
    int in = -1, out = -1, rc = -1;
    pid_t pid;

    if (!argv || (r->extra_args && !extra)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (access(server, X_OK) != 0) {
        snprintf(err, errlen, "%s is not executable: %s", server, strerror(errno));
        goto done;
    }
    snprintf(logpath, sizeof logpath, "%s/redis.log", r->dir);
    snprintf(outpath, sizeof outpath, "%s/redis.out", r->dir);
    snprintf(portstr, sizeof portstr, "%d", r->port);

    argv[n++] = (char *)server;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = r->appendonly ? "yes" : "no";
    if (r->appendonly) {
        argv[n++] = "--appendfsync";
        argv[n++] = "always";
    }
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--logfile";
    argv[n++] = logpath;
    if (r->unix_socket) {
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--unixsocket";
        argv[n++] = r->sock;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    } else {
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--port";
        argv[n++] = portstr;
    }
    if (r->password) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    if (r->disable_config) {
        argv[n++] = "--rename-command";
        argv[n++] = "CONFIG";
        argv[n++] = "";
    }
    for (tok = extra ? strtok_r(extra, " \t", &save) : NULL; tok;
         tok = strtok_r(NULL, " \t", &save))
        argv[n++] = tok;
    argv[n] = NULL;

    /* stdout/stderr of the server (e.g. fatal configuration errors) go to dir/redis.out. */
    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out = open(outpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (in < 0 || out < 0) {
        snprintf(err, errlen, "cannot open /dev/null or %s: %s", outpath, strerror(errno));
        goto done;
    }
    log0 = bcr_file_size(logpath);
    out0 = bcr_file_size(outpath);
    pid = bcr_spawn(server, argv, environ, in, out, out);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        goto done;
    }
    r->pid = pid;
    close(in);
    close(out);
    in = out = -1;

    for (;;) {
        if (bcr_exited(r->pid)) {
            int st = bcr_reap(r);
            bcr_read_tail(logpath, log0, logtail, sizeof logtail);
            bcr_read_tail(outpath, out0, outtail, sizeof outtail);
            snprintf(err, errlen, "redis-server (%s, dir %s) exited at start (%s %d)\n%s%s", r->url,
                     r->dir, WIFEXITED(st) ? "exit status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), logtail, outtail);
            rc = strstr(logtail, "Address already in use") ? 1 : -1;
            break;
        }
        if (bcr_ready(r)) {
            rc = 0;
            break;
        }
        if (bcr_now_ms() >= deadline) {
            bcr_reap(r);
            bcr_read_tail(logpath, log0, logtail, sizeof logtail);
            bcr_read_tail(outpath, out0, outtail, sizeof outtail);
            snprintf(err, errlen, "redis-server (%s, dir %s) did not answer PING within %d s\n%s%s",
                     r->url, r->dir, BCR_START_MS / 1000, logtail, outtail);
            break;
        }
        bc_test_sleep_ms(10);
    }
done:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    free(extra);
    free(argv);
    return rc;
}

/* Create the directory, pick the address and launch; on failure free everything, say why. */
bc_test_redis_t *bc_test_redis_try_start(const bc_test_redis_opts_t *opts, char *err, size_t errlen)
{
    static const bc_test_redis_opts_t defaults = {.unix_socket = 1};
    bc_test_redis_t *r;
    long long deadline = bcr_now_ms() + BCR_START_MS;
    int rc = -1;

    if (!opts)
        opts = &defaults;
    err[0] = '\0';
    bcr_ignore_sigpipe();
    if (!bcr_atexit_registered) {
        atexit(bc_test_redis_free_all);
        bcr_atexit_registered = 1;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->unix_socket = opts->unix_socket != 0;
    r->appendonly = opts->appendonly != 0;
    r->disable_config = opts->disable_config != 0;
    r->password = bcr_strdup(opts->password);
    r->extra_args = bcr_strdup(opts->extra_args);
    r->owner = getpid();
    r->next = bcr_live;
    bcr_live = r;
    if ((opts->password && !r->password) || (opts->extra_args && !r->extra_args)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(r->dir, sizeof r->dir, "/tmp/bc-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        snprintf(err, errlen, "mkdtemp %s: %s", r->dir, strerror(errno));
        r->dir[0] = '\0';
        goto fail;
    }
    if (r->unix_socket) {
        snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
        snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
    }
    for (int attempt = 0; attempt < BCR_START_TRIES; attempt++) {
        if (!r->unix_socket) {
            r->port = bcr_free_port();
            if (r->port <= 0) {
                snprintf(err, errlen, "no free TCP port on 127.0.0.1: %s", strerror(errno));
                goto fail;
            }
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
        }
        rc = bcr_launch(r, deadline, err, errlen);
        if (rc != 1 || r->unix_socket || bcr_now_ms() >= deadline)
            break;
    }
    if (rc == 0)
        return r;
fail:
    if (r->dir[0] && strlen(err) + 1 < errlen)
        snprintf(err + strlen(err), errlen - strlen(err), "(%s removed)\n", r->dir);
    bc_test_redis_free(r);
    return NULL;
}

/* bc_test_redis_try_start, failing the current test when it fails. */
bc_test_redis_t *bc_test_redis_start(const bc_test_redis_opts_t *opts)
{
    char err[4096];
    bc_test_redis_t *r = bc_test_redis_try_start(opts, err, sizeof err);

    if (!r)
        fail_msg("bc_test_redis_start: %s", err);
    return r;
}

/* SIGKILL the whole process group, then reap the server. */
void bc_test_redis_kill(bc_test_redis_t *r)
{
    if (!r || !r->pid)
        return;
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL);
    bcr_reap(r);
}

/* SIGTERM the server, give it BCR_STOP_MS to shut down, then reap it (SIGKILL if late). */
void bc_test_redis_stop(bc_test_redis_t *r)
{
    long long deadline;

    if (!r || !r->pid)
        return;
    kill(r->pid, SIGTERM);
    deadline = bcr_now_ms() + BCR_STOP_MS;
    while (!bcr_exited(r->pid) && bcr_now_ms() < deadline)
        bc_test_sleep_ms(5);
    kill(r->pid, SIGKILL); /* no-op unless the grace period ran out */
    bcr_reap(r);
}

/* Stop if running, then launch again on the same address, retrying while the port is taken. */
void bc_test_redis_restart(bc_test_redis_t *r)
{
    char err[4096];
    long long deadline;
    int rc;

    if (!r)
        fail_msg("bc_test_redis_restart: NULL server");
    bc_test_redis_stop(r);
    deadline = bcr_now_ms() + BCR_START_MS;
    /* The address is fixed: if another process holds the port, wait for it to go. */
    while ((rc = bcr_launch(r, deadline, err, sizeof err)) == 1 && bcr_now_ms() < deadline)
        bc_test_sleep_ms(50);
    if (rc != 0)
        fail_msg("bc_test_redis_restart: %s", err);
}

/* Kill, unregister, remove the directory, free. */
void bc_test_redis_free(bc_test_redis_t *r)
{
    bc_test_redis_t **pp;

    if (!r)
        return;
    bc_test_redis_kill(r);
    for (pp = &bcr_live; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    bcr_rmtree(r->dir);
    free(r->password);
    free(r->extra_args);
    free(r);
}

/* Free every registered server owned by this process (also the atexit handler). */
void bc_test_redis_free_all(void)
{
    bc_test_redis_t **pp = &bcr_live;

    /* In a forked copy of the test process the servers belong to the original: leave them. */
    while (*pp) {
        if ((*pp)->owner == getpid())
            bc_test_redis_free(*pp);
        else
            pp = &(*pp)->next;
    }
}

/* The server's URL (no password). */
const char *bc_test_redis_url(const bc_test_redis_t *r)
{
    return r->url;
}

/* TCP port, 0 for a Unix socket. */
int bc_test_redis_port(const bc_test_redis_t *r)
{
    return r->unix_socket ? 0 : r->port;
}

/* Unix socket path, NULL for TCP. */
const char *bc_test_redis_socket(const bc_test_redis_t *r)
{
    return r->unix_socket ? r->sock : NULL;
}

/* The server's directory. */
const char *bc_test_redis_dir(const bc_test_redis_t *r)
{
    return r->dir;
}

/* pid of the running server, 0 when stopped. */
pid_t bc_test_redis_pid(const bc_test_redis_t *r)
{
    return r->pid;
}

/* A new connection, authenticated when asked and there is a password; NULL on failure. */
redisContext *bc_test_redis_connect(const bc_test_redis_t *r, int auth)
{
    redisContext *c = bcr_connect_raw(r);
    redisReply *rep;
    int ok;

    if (!c || !auth || !r->password)
        return c;
    rep = redisCommand(c, "AUTH %s", r->password);
    ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One command on a fresh authenticated connection; NULL if unreachable. */
struct redisReply *bc_test_redis_cmd(bc_test_redis_t *r, const char *fmt, ...)
{
    redisContext *c = bcr_connect_raw(r);
    redisReply *rep;
    va_list ap;

    if (!c)
        return NULL;
    if (r->password) {
        rep = redisCommand(c, "AUTH %s", r->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            redisFree(c);
            return rep;
        }
        freeReplyObject(rep);
    }
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

/* Strip leading and trailing white space from s in place. */
static void bcr_trim(char *s)
{
    size_t len = strlen(s), start = 0;

    while (len > 0 && strchr(" \t\r\n", s[len - 1]))
        len--;
    while (start < len && strchr(" \t\r\n", s[start]))
        start++;
    memmove(s, s + start, len - start);
    s[len - start] = '\0';
}

/* Run redis-cli with args against the server; its trimmed stdout, NULL on failure. */
char *bc_test_redis_cli(bc_test_redis_t *r, const char *const *args)
{
    const char *cli = bcr_cli_path();
    char portstr[16], *auth = NULL, *buf = NULL, **argv = NULL, **envp = NULL;
    size_t nargs = 0, nenv = 0, n = 0, len = 0, cap = 0;
    int pfd[2] = {-1, -1}, in = -1, st = 0, ok = 0;
    long long deadline = bcr_now_ms() + BCR_CLI_MS;
    pid_t pid = -1;

    if (!r || !args || access(cli, X_OK) != 0)
        return NULL;
    while (args[nargs])
        nargs++;
    while (environ[nenv])
        nenv++;
    argv = calloc(nargs + 6, sizeof *argv);
    envp = calloc(nenv + 2, sizeof *envp);
    if (!argv || !envp || (r->password && asprintf(&auth, "REDISCLI_AUTH=%s", r->password) < 0)) {
        auth = NULL;
        goto done;
    }
    argv[n++] = (char *)cli;
    if (r->unix_socket) {
        argv[n++] = "-s";
        argv[n++] = r->sock;
    } else {
        snprintf(portstr, sizeof portstr, "%d", r->port);
        argv[n++] = "-h";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = portstr;
    }
    for (size_t i = 0; i < nargs; i++)
        argv[n++] = (char *)args[i];
    n = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (strncmp(environ[i], "REDISCLI_AUTH=", 14) != 0)
            envp[n++] = environ[i];
    }
    if (auth)
        envp[n++] = auth;

    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || pipe2(pfd, O_CLOEXEC) != 0)
        goto done;
    pid = bcr_spawn(cli, argv, envp, in, pfd[1], 2);
    close(pfd[1]);
    pfd[1] = -1;
    if (pid < 0)
        goto done;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        long long left = deadline - bcr_now_ms();
        ssize_t got;

        if (left <= 0)
            break;
        if (poll(&p, 1, (int)left) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (cap - len < 512) {
            char *nb = realloc(buf, cap + 4096);
            if (!nb)
                break;
            buf = nb;
            cap += 4096;
        }
        got = read(pfd[0], buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            ok = got == 0; /* EOF: redis-cli is done */
            break;
        }
        len += (size_t)got;
    }
    if (!ok)
        kill(-pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
done:
    if (in >= 0)
        close(in);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    free(auth);
    free(argv);
    free(envp);
    if (!ok) {
        free(buf);
        return NULL;
    }
    if (!buf)
        buf = calloc(1, 1);
    else {
        buf[len] = '\0';
        bcr_trim(buf);
    }
    return buf;
}

#endif
