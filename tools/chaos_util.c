/* chaos_util.c - what the chaos tests share: clocks, randomness, a synchronous Redis connection
 * that reconnects, a non-blocking subscriber, child processes and the run's output (event lines,
 * the progress bar, events.log).
 *
 * Key decision: the orchestrator observes Redis synchronously from its main thread, like an
 * operator with redis-cli. It never touches the runtime's hiredis contexts; the runtime (its own
 * hub) is used only to act as a coordinator would: assign work, send signals.
 */
#include "chaos.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- clock and randomness */

uint64_t chaos_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void chaos_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t rng_state;

uint64_t chaos_rand(void)
{
    if (rng_state == 0) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, &rng_state, sizeof rng_state) != (ssize_t)sizeof rng_state)
                rng_state = 0;
            close(fd);
        }
        if (rng_state == 0)
            rng_state = chaos_wall_ms() * 2654435761u ^ (uint64_t)getpid();
        if (rng_state == 0)
            rng_state = 88172645463325252ull;
    }
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

double chaos_rand01(void)
{
    return (double)(chaos_rand() >> 11) / 9007199254740992.0;
}

void chaos_tag(char out[8])
{
    snprintf(out, 8, "%04x", (unsigned)(chaos_rand() & 0xffff));
}

int chaos_ensure_secret(void)
{
    const char *s = getenv("BLOCKING_COORDINATION_SECRET");
    if (s && *s)
        return 0;
    unsigned char raw[32];
    for (size_t i = 0; i < sizeof raw; i += 8) {
        uint64_t x = chaos_rand();
        memcpy(raw + i, &x, 8);
    }
    char hex[65];
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    if (setenv("BLOCKING_COORDINATION_SECRET", hex, 1) != 0)
        return -EIO;
    printf("BLOCKING_COORDINATION_SECRET is not set: generated a random one for this run "
           "(the hosts it starts inherit it)\n");
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t chaos_percentile(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    double rank = p / 100.0 * (double)n;
    size_t k = (size_t)rank;
    if ((double)k < rank)
        k++; /* nearest rank: ceil(p/100 * n) */
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

int chaos_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                snprintf(err, errlen, "cannot create %s: %s", buf, strerror(e));
                return -e;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", path);
        return -ENOTDIR;
    }
    return 0;
}

int chaos_write_file(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    fputs(text, f);
    if (fclose(f) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

/* ---------------------------------------------------------------- Redis */

/* A connection with the CLI's settings (AUTH, SELECT, PING; 2 s timeouts). */
static redisContext *connect_ctx(const bc_redis_conf_t *c, char *why, size_t len)
{
    return bc_cli_redis_connect(c, why, len);
}

int chaos_redis_init(chaos_redis_t *r, const char *url, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    int rc = bc_redis_conf_from_env(&r->conf, err, errlen);
    if (rc != 0)
        return rc;
    if (url && (rc = bc_redis_conf_parse_url(&r->conf, url, err, errlen)) != 0) {
        bc_redis_conf_free(&r->conf);
        return rc;
    }
    bc_redis_conf_describe(&r->conf, r->target, sizeof r->target);
    return 0;
}

int chaos_redis_open(chaos_redis_t *r, const char *url, char *err, size_t errlen)
{
    int rc = chaos_redis_init(r, url, err, errlen);
    if (rc != 0)
        return rc;
    char why[256];
    r->ctx = connect_ctx(&r->conf, why, sizeof why);
    if (r->ctx == NULL) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", r->target, why);
        bc_redis_conf_free(&r->conf);
        return -EIO;
    }
    return 0;
}

void chaos_redis_close(chaos_redis_t *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    bc_redis_conf_free(&r->conf);
}

static int ensure_connected(chaos_redis_t *r)
{
    if (r->ctx)
        return 0;
    char why[200];
    r->ctx = connect_ctx(&r->conf, why, sizeof why);
    if (r->ctx == NULL) {
        snprintf(r->last_err, sizeof r->last_err, "%s", why);
        return -EIO;
    }
    return 0;
}

static redisReply *check_reply(chaos_redis_t *r, redisReply *rep)
{
    if (rep == NULL) {
        snprintf(r->last_err, sizeof r->last_err, "%s",
                 r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    return rep;
}

redisReply *chaos_redis_cmd(chaos_redis_t *r, const char *fmt, ...)
{
    if (ensure_connected(r) != 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return check_reply(r, rep);
}

redisReply *chaos_redis_argv(chaos_redis_t *r, int argc, const char **argv, const size_t *lens)
{
    if (ensure_connected(r) != 0)
        return NULL;
    return check_reply(r, redisCommandArgv(r->ctx, argc, argv, lens));
}

int64_t chaos_redis_offset_ms(chaos_redis_t *r)
{
    uint64_t before = chaos_wall_ms();
    redisReply *rep = chaos_redis_cmd(r, "TIME");
    uint64_t after = chaos_wall_ms();
    int64_t off = 0;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        uint64_t s = strtoull(rep->element[0]->str, NULL, 10);
        uint64_t us = strtoull(rep->element[1]->str, NULL, 10);
        off = (int64_t)(s * 1000 + us / 1000) - (int64_t)((before + after) / 2);
    }
    if (rep)
        freeReplyObject(rep);
    return off;
}

long chaos_redis_scan(chaos_redis_t *r, const char *pattern, chaos_key_fn fn, void *arg)
{
    char cursor[32] = "0";
    long n = 0;
    do {
        redisReply *rep = chaos_redis_cmd(r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            if (rep) {
                snprintf(r->last_err, sizeof r->last_err, "unexpected SCAN answer");
                freeReplyObject(rep);
            }
            return -EIO;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *ks = rep->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            if (ks->element[i]->type == REDIS_REPLY_STRING) {
                fn(arg, ks->element[i]->str, ks->element[i]->len);
                n++;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

int chaos_sub_open(chaos_sub_t *s, chaos_redis_t *r, const char *channel, char *err, size_t len)
{
    memset(s, 0, sizeof *s);
    snprintf(s->channel, sizeof s->channel, "%s", channel);
    char why[200];
    s->ctx = connect_ctx(&r->conf, why, sizeof why);
    if (s->ctx == NULL) {
        snprintf(err, len, "cannot connect the subscriber: %s", why);
        return -EIO;
    }
    redisReply *rep = redisCommand(s->ctx, "SUBSCRIBE %s", channel);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, len, "SUBSCRIBE %s failed: %s", channel,
                 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : s->ctx->errstr);
        if (rep)
            freeReplyObject(rep);
        chaos_sub_close(s);
        return -EIO;
    }
    freeReplyObject(rep);
    return 0;
}

int chaos_sub_poll(chaos_sub_t *s, chaos_msg_fn fn, void *arg)
{
    if (s->ctx == NULL)
        return -EIO;
    int n = 0;
    for (;;) {
        void *v = NULL;
        if (redisGetReplyFromReader(s->ctx, &v) != REDIS_OK)
            return -EIO;
        if (v == NULL) {
            struct pollfd p = {.fd = s->ctx->fd, .events = POLLIN};
            if (poll(&p, 1, 0) <= 0)
                return n;
            if (redisBufferRead(s->ctx) != REDIS_OK)
                return -EIO;
            continue;
        }
        redisReply *m = v;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            m->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(m->element[0]->str, "message") == 0 &&
            m->element[2]->type == REDIS_REPLY_STRING) {
            fn(arg, m->element[1]->str, m->element[2]->str, m->element[2]->len);
            n++;
        }
        freeReplyObject(m);
    }
}

void chaos_sub_close(chaos_sub_t *s)
{
    if (s->ctx)
        redisFree(s->ctx);
    s->ctx = NULL;
}

/* ---------------------------------------------------------------- child processes */

const char *chaos_self_exe(void)
{
    static char path[4096];
    if (path[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0)
            snprintf(path, sizeof path, "/proc/self/exe");
        else
            path[n] = '\0';
    }
    return path;
}

pid_t chaos_spawn(char *const argv[], const char *out_path, const char *err_path, char *err,
                  size_t errlen)
{
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out =
        open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int er =
        open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in < 0 || out < 0 || er < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open the output files of %s: %s", argv[0], strerror(e));
        if (in >= 0)
            close(in);
        if (out >= 0)
            close(out);
        if (er >= 0)
            close(er);
        return -e;
    }
    pid_t parent = getpid();
    struct rlimit rl;
    int maxfd =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child of a multi-threaded parent: async-signal-safe calls only until exec. */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL); /* the orchestrator ignores it; its children do not */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(er, 2);
        for (int fd = 3; fd < maxfd; fd++)
            close(fd); /* the parent's sockets and eventfds are not the child's business */
        if (strchr(argv[0], '/'))
            execv(argv[0], argv);
        else
            execvp(argv[0], argv);
        static const char msg[] = "chaos: exec failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int e = errno;
    close(in);
    close(out);
    close(er);
    if (pid < 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(e));
        return -e;
    }
    return pid;
}

int chaos_stop_child(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    if (sig)
        kill(pid, sig);
    int status = 0;
    for (int waited = 0;; waited += 10) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        if (w < 0)
            return -1;
        if (waited >= timeout_ms)
            break;
        chaos_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    return waitpid(pid, &status, 0) == pid ? status : -1;
}

const char *chaos_describe_status(int status, char *buf, size_t len)
{
    if (status < 0)
        snprintf(buf, len, "ended (status unknown)");
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "stopped (status 0x%x)", (unsigned)status);
    return buf;
}

const char *chaos_tail(const char *path, int n, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    char lines[8][256];
    int count = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(lines[count % 8], sizeof lines[0], "%s", line);
        count++;
    }
    fclose(f);
    if (n > 8)
        n = 8;
    int first = count > n ? count - n : 0;
    size_t at = 0;
    for (int i = first; i < count && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "\n    %s", lines[i % 8]);
    return buf;
}

/* ---------------------------------------------------------------- output */

int chaos_out_open(chaos_out_t *o, const char *dir, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->tty = isatty(STDOUT_FILENO);
    o->t0 = chaos_wall_ms();
    char path[1100];
    snprintf(path, sizeof path, "%s/events.log", dir);
    o->log = fopen(path, "w");
    if (o->log == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

void chaos_out_close(chaos_out_t *o)
{
    chaos_progress_end(o);
    if (o->log)
        fclose(o->log);
    o->log = NULL;
}

static void stamp(const chaos_out_t *o, char *buf, size_t len)
{
    uint64_t s = (chaos_wall_ms() - o->t0) / 1000;
    snprintf(buf, len, "[%02llu:%02llu:%02llu]", (unsigned long long)(s / 3600),
             (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

void chaos_event(chaos_out_t *o, const char *fmt, ...)
{
    char ts[32], text[1024];
    stamp(o, ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (o->tty && o->bar_shown) {
        fputs("\r\033[K", stdout);
        o->bar_shown = 0;
    }
    printf("%s %s\n", ts, text);
    fflush(stdout);
    if (o->log) {
        fprintf(o->log, "%llu %s %s\n", (unsigned long long)chaos_wall_ms(), ts, text);
        fflush(o->log);
    }
}

void chaos_detail(chaos_out_t *o, const char *fmt, ...)
{
    if (o->log == NULL)
        return;
    char ts[32];
    stamp(o, ts, sizeof ts);
    fprintf(o->log, "%llu %s ", (unsigned long long)chaos_wall_ms(), ts);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->log, fmt, ap);
    va_end(ap);
    fputc('\n', o->log);
    fflush(o->log);
}

void chaos_progress(chaos_out_t *o, double frac, const char *fmt, ...)
{
    char text[512], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    stamp(o, ts, sizeof ts);
    if (o->tty) {
        char bar[32 * 3 + 1];
        size_t at = 0, full = (size_t)(frac * 24 + 0.5);
        for (size_t i = 0; i < 24; i++)
            at += (size_t)snprintf(bar + at, sizeof bar - at, "%s", i < full ? "█" : "░");
        printf("\r%s %s %3.0f%% %s\033[K", ts, bar, frac * 100, text);
        fflush(stdout);
        o->bar_shown = 1;
        return;
    }
    uint64_t now = chaos_wall_ms();
    if (o->last_print && now - o->last_print < 5000)
        return;
    o->last_print = now;
    printf("%s progress %3.0f%% %s\n", ts, frac * 100, text);
    fflush(stdout);
}

void chaos_progress_end(chaos_out_t *o)
{
    if (o->tty && o->bar_shown) {
        putchar('\n');
        fflush(stdout);
    }
    o->bar_shown = 0;
}
