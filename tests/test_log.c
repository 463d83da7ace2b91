/* test_log.c - tests for runtime/log.c.
 *
 * stderr is captured through a pipe drained by a reader thread, so the tests
 * see exactly what write(2) produced, including under concurrency (a pipe
 * keeps each write of up to PIPE_BUF bytes whole). Text lines are matched with
 * a POSIX regex, JSON lines are parsed with jansson.
 */
#include "harness.h"
#include "blockcoord.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEXT_RE                                                                                    \
    "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\\.[0-9]{3}Z "                        \
    "(DEBUG|INFO |WARN |ERROR) (.*)$"

/* ---- capture ---- */

static struct {
    int saved_fd, rfd;
    pthread_t reader;
    char *buf;
    size_t len, cap;
} cap;

static void *reader_main(void *arg)
{
    for (;;) {
        if (cap.cap - cap.len < 65536) {
            cap.cap = cap.cap * 2 + 65536;
            cap.buf = realloc(cap.buf, cap.cap);
            if (!cap.buf)
                abort();
        }
        ssize_t n = read(cap.rfd, cap.buf + cap.len, cap.cap - cap.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        cap.len += (size_t)n;
    }
    cap.buf[cap.len] = '\0';
    return NULL;
}

static void cap_begin(void)
{
    int p[2];
    fflush(stderr);
    assert_int_equal(pipe(p), 0);
    cap.saved_fd = dup(2);
    assert_true(cap.saved_fd >= 0);
    assert_true(dup2(p[1], 2) == 2);
    close(p[1]);
    cap.rfd = p[0];
    cap.buf = NULL;
    cap.len = cap.cap = 0;
    assert_int_equal(pthread_create(&cap.reader, NULL, reader_main, NULL), 0);
}

/* Stop capturing; returns the captured bytes (NUL-terminated, caller frees). */
static char *cap_end(void)
{
    dup2(cap.saved_fd, 2); /* drops the last write end: the reader sees EOF */
    close(cap.saved_fd);
    pthread_join(cap.reader, NULL);
    close(cap.rfd);
    return cap.buf;
}

/* Number of lines in s; every line must end with '\n'. */
static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    assert_true(n == 0 || s[-1] == '\n');
    return n;
}

/* Copy line `idx` (without '\n') of s into a new string. */
static char *get_line(const char *s, size_t idx)
{
    for (; idx > 0; idx--) {
        s = strchr(s, '\n');
        assert_non_null(s);
        s++;
    }
    const char *e = strchr(s, '\n');
    assert_non_null(e);
    return strndup(s, (size_t)(e - s));
}

/* Check a text line; returns the message part (points into line). */
static const char *check_text(const char *line, const char *level)
{
    static regex_t re;
    static int compiled;
    regmatch_t m[4];
    if (!compiled) {
        assert_int_equal(regcomp(&re, TEXT_RE, REG_EXTENDED), 0);
        compiled = 1;
    }
    assert_int_equal(regexec(&re, line, 4, m, 0), 0);
    assert_memory_equal(line + m[2].rm_so, level, 5);
    /* The timestamp is UTC and current. */
    struct tm tm = {0};
    char ts[24];
    memcpy(ts, line, 19);
    ts[19] = '\0';
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    double skew = difftime(timegm(&tm), time(NULL));
    assert_true(skew > -10 && skew < 10);
    return line + m[3].rm_so;
}

/* Parse a JSON line; checks ts and level, returns the object (caller frees). */
static json_t *check_json(const char *line, const char *level)
{
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    if (!o)
        fail_msg("bad JSON (%s): %s", err.text, line);
    assert_int_equal(json_object_size(o), 3);
    assert_string_equal(json_string_value(json_object_get(o, "level")), level);
    const char *ts = json_string_value(json_object_get(o, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    return o;
}

static void reset(void)
{
    bc_log_set_level(BC_LOG_INFO);
    bc_log_set_json(0);
}

/* ---- tests ---- */

static void test_defaults(void **state)
{
    assert_int_equal(bc_log_get_level(), BC_LOG_INFO);
    cap_begin();
    bc_log(BC_LOG_DEBUG, "hidden");
    bc_log(BC_LOG_INFO, "hello %d %s", 42, "world");
    char *out = cap_end();
    assert_int_equal(count_lines(out), 1);
    char *line = get_line(out, 0);
    assert_string_equal(check_text(line, "INFO "), "hello 42 world");
    /* The exact layout: timestamp, one space, level padded to 5, one space. */
    assert_memory_equal(line + 23, "Z INFO  hello", 13);
    free(line);
    free(out);
}

static void test_parse_level(void **state)
{
    bc_log_level_t l = BC_LOG_ERROR;
    const struct {
        const char *s;
        bc_log_level_t want;
    } ok[] = {{"debug", BC_LOG_DEBUG},  {"INFO", BC_LOG_INFO},    {"Warn", BC_LOG_WARN},
              {"warning", BC_LOG_WARN}, {"WARNING", BC_LOG_WARN}, {"error", BC_LOG_ERROR},
              {"eRRoR", BC_LOG_ERROR},  {"off", BC_LOG_OFF},      {"OFF", BC_LOG_OFF}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(bc_log_parse_level(ok[i].s, &l), 0);
        assert_int_equal(l, ok[i].want);
    }
    const char *bad[] = {"", "verbose", "inf", "infoo", " info", "warn ", "3", "fatal"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = BC_LOG_DEBUG;
        assert_int_equal(bc_log_parse_level(bad[i], &l), -EINVAL);
        assert_int_equal(l, BC_LOG_DEBUG);
    }
    assert_int_equal(bc_log_parse_level(NULL, &l), -EINVAL);
    assert_int_equal(bc_log_parse_level("info", NULL), -EINVAL);
}

static void test_text_format(void **state)
{
    static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    bc_log_set_level(BC_LOG_DEBUG);
    cap_begin();
    for (int l = BC_LOG_DEBUG; l <= BC_LOG_ERROR; l++)
        bc_log((bc_log_level_t)l, "level %d: 100%% \"plain\" text", l);
    char *out = cap_end();
    assert_int_equal(count_lines(out), 4);
    for (size_t i = 0; i < 4; i++) {
        char *line = get_line(out, i), want[64];
        snprintf(want, sizeof want, "level %zu: 100%% \"plain\" text", i);
        assert_string_equal(check_text(line, names[i]), want);
        free(line);
    }
    free(out);
    reset();
}

static void test_filtering(void **state)
{
    for (int min = BC_LOG_DEBUG; min <= BC_LOG_OFF; min++) {
        bc_log_set_level((bc_log_level_t)min);
        assert_int_equal(bc_log_get_level(), min);
        cap_begin();
        for (int l = BC_LOG_DEBUG; l <= BC_LOG_OFF; l++)
            bc_log((bc_log_level_t)l, "at %d", l);
        char *out = cap_end();
        /* BC_LOG_OFF itself is never printed. */
        assert_int_equal(count_lines(out), BC_LOG_OFF - min);
        free(out);
    }
    bc_log_set_level(BC_LOG_WARN);
    bc_log_set_level((bc_log_level_t)7); /* out of range: ignored */
    bc_log_set_level((bc_log_level_t)-1);
    assert_int_equal(bc_log_get_level(), BC_LOG_WARN);
    reset();
}

static void test_json_escaping(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"quote \" backslash \\ slash / percent %", "quote \" backslash \\ slash / percent %"},
        {"ctl \x01\x1f tab\tnl\ncr\r bs\b ff\f del\x7f",
         "ctl \x01\x1f tab\tnl\ncr\r bs\b ff\f del\x7f"},
        {"utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad",
         "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad"},
        /* stray byte, truncated sequence, surrogate, overlong: U+FFFD each byte */
        {"a\xff"
         "b\xc3(c\xed\xa0\x80"
         "d\xc0\xaf",
         "a\xef\xbf\xbd"
         "b\xef\xbf\xbd(c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
         "d\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    bc_log_set_json(1);
    cap_begin();
    for (size_t i = 0; i < n; i++)
        bc_log(BC_LOG_WARN, "%s", cases[i].in);
    char *out = cap_end();
    assert_int_equal(count_lines(out), n);
    for (size_t i = 0; i < n; i++) {
        char *line = get_line(out, i);
        json_t *o = check_json(line, "warn");
        assert_string_equal(json_string_value(json_object_get(o, "msg")), cases[i].want);
        json_decref(o);
        free(line);
    }
    /* Control characters use the \u00XX form; the key order is fixed. */
    assert_non_null(strstr(out, "ctl \\u0001\\u001f tab\\u0009nl\\u000acr\\u000d"));
    assert_non_null(strstr(out, "\",\"level\":\"warn\",\"msg\":\"plain\"}\n"));
    assert_memory_equal(out, "{\"ts\":\"", 7);
    free(out);
    reset();
}

static int valid_utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson rejects invalid UTF-8 */
    json_decref(j);
    return j != NULL;
}

static void test_truncation(void **state)
{
    const size_t prefix = 31; /* "2026-11-22T10:00:00.123Z INFO  " */
    char *big = malloc(20000);
    assert_non_null(big);
    const char *units[] = {"x", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\"", "\x01"};
    for (int json = 0; json <= 1; json++) {
        bc_log_set_json(json);
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
            size_t ul = strlen(units[u]);
            big[0] = '\0';
            for (size_t i = 0; i + ul < 19999; i += ul)
                strcat(big + i, units[u]);
            cap_begin();
            bc_log(BC_LOG_ERROR, "%s", big);
            char *out = cap_end();
            assert_int_equal(count_lines(out), 1);
            size_t len = strlen(out);
            assert_true(len <= 4096 && len > 3000);
            char *line = get_line(out, 0);
            if (json) {
                json_t *o = check_json(line, "error");
                const char *msg = json_string_value(json_object_get(o, "msg"));
                size_t ml = strlen(msg);
                assert_string_equal(msg + ml - 3, "...");
                assert_int_equal((ml - 3) % ul, 0);
                assert_memory_equal(msg, big, ml - 3);
                json_decref(o);
            } else {
                const char *msg = check_text(line, "ERROR");
                size_t ml = strlen(msg);
                assert_true(len >= 4096 - (ul - 1)); /* full, less a cut character */
                assert_string_equal(msg + ml - 3, "...");
                assert_int_equal((ml - 3) % ul, 0); /* cut at a character boundary */
                assert_memory_equal(msg, big, ml - 3);
                assert_true(valid_utf8(line));
            }
            free(line);
            free(out);
        }
    }
    /* Text: a message that exactly fills the line is not cut; one more byte is. */
    bc_log_set_json(0);
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t ml = 4096 - prefix - 1 + extra;
        memset(big, 'y', ml);
        big[ml] = '\0';
        cap_begin();
        bc_log(BC_LOG_INFO, "%s", big);
        char *out = cap_end();
        assert_int_equal(strlen(out), 4096);
        assert_int_equal(memcmp(out + 4096 - 4, "...\n", 4) == 0, extra);
        free(out);
    }
    free(big);
    reset();
}

static void test_env(void **state)
{
    int rc;
    unsetenv("BC_LOG_LEVEL");
    unsetenv("BC_LOG_FORMAT");
    assert_int_equal(bc_log_init_from_env(), 0);
    assert_int_equal(bc_log_get_level(), BC_LOG_INFO);
    setenv("BC_LOG_LEVEL", "DEBUG", 1);
    assert_int_equal(bc_log_init_from_env(), 0);
    assert_int_equal(bc_log_get_level(), BC_LOG_DEBUG);
    setenv("BC_LOG_LEVEL", "warning", 1);
    setenv("BC_LOG_FORMAT", "Json", 1);
    assert_int_equal(bc_log_init_from_env(), 0);
    assert_int_equal(bc_log_get_level(), BC_LOG_WARN);
    cap_begin();
    bc_log(BC_LOG_WARN, "as json");
    char *out = cap_end();
    assert_memory_equal(out, "{\"ts\":", 6);
    free(out);
    /* Empty values count as unset. */
    setenv("BC_LOG_LEVEL", "", 1);
    setenv("BC_LOG_FORMAT", "", 1);
    assert_int_equal(bc_log_init_from_env(), 0);
    assert_int_equal(bc_log_get_level(), BC_LOG_WARN);
    /* Bad values: -EINVAL, a message naming variable and value (even with
     * logging off), previous settings kept; a good variable still applies. */
    bc_log_set_level(BC_LOG_OFF);
    bc_log_set_json(0);
    setenv("BC_LOG_LEVEL", "verbose", 1);
    setenv("BC_LOG_FORMAT", "xml", 1);
    cap_begin();
    rc = bc_log_init_from_env();
    out = cap_end();
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(bc_log_get_level(), BC_LOG_OFF);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "BC_LOG_LEVEL"));
    assert_non_null(strstr(out, "verbose"));
    assert_non_null(strstr(out, "BC_LOG_FORMAT"));
    assert_non_null(strstr(out, "xml"));
    free(out);
    setenv("BC_LOG_LEVEL", "error", 1);
    cap_begin();
    rc = bc_log_init_from_env();
    out = cap_end();
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(bc_log_get_level(), BC_LOG_ERROR);
    assert_null(strstr(out, "BC_LOG_LEVEL"));
    check_text(out, "ERROR"); /* format unchanged: still text */
    free(out);
    setenv("BC_LOG_LEVEL", "loud", 1);
    setenv("BC_LOG_FORMAT", "text", 1);
    bc_log_set_json(1);
    cap_begin();
    rc = bc_log_init_from_env();
    out = cap_end();
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(bc_log_get_level(), BC_LOG_ERROR);
    assert_non_null(strstr(out, "loud"));
    free(out);
    unsetenv("BC_LOG_LEVEL");
    unsetenv("BC_LOG_FORMAT");
    reset();
}

static void test_errno_preserved(void **state)
{
    cap_begin();
    errno = EAGAIN;
    bc_log(BC_LOG_ERROR, "failed: %s", strerror(errno));
    int e = errno;
    char *out = cap_end();
    assert_int_equal(e, EAGAIN);
    assert_non_null(strstr(out, "failed: "));
    free(out);
}

/* ---- concurrency ---- */

#define THREADS 8
static size_t lines_per_thread;

static size_t pad_len(size_t t, size_t i)
{
    return (i * 37 + t * 101) % 2500;
}

static void *log_thread(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    char pad[2600];
    for (size_t i = 0; i < lines_per_thread; i++) {
        size_t n = pad_len(t, i);
        memset(pad, 'a' + (int)t, n);
        pad[n] = '\0';
        bc_log(BC_LOG_INFO, "t=%zu i=%zu %s|", t, i, pad);
    }
    return NULL;
}

static void run_threads(int json)
{
    pthread_t th[THREADS];
    size_t next[THREADS] = {0};
    lines_per_thread = bc_test_scaled(json ? 1000 : 3000, 100);
    bc_log_set_json(json);
    cap_begin();
    for (size_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, log_thread, (void *)(uintptr_t)t), 0);
    for (size_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    char *out = cap_end();
    assert_int_equal(count_lines(out), THREADS * lines_per_thread);
    for (char *p = out, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        *e = '\0';
        json_t *o = NULL;
        const char *msg;
        if (json) {
            o = check_json(p, "info");
            msg = json_string_value(json_object_get(o, "msg"));
        } else {
            assert_memory_equal(p + 23, "Z INFO  t=", 10);
            msg = p + 31;
        }
        size_t t, i;
        int used = 0;
        assert_int_equal(sscanf(msg, "t=%zu i=%zu %n", &t, &i, &used), 2);
        assert_true(t < THREADS);
        assert_int_equal(i, next[t]++); /* each thread's lines stay in order */
        size_t n = pad_len(t, i);
        assert_int_equal(strlen(msg + used), n + 1);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(msg[used + k], 'a' + (int)t);
        assert_int_equal(msg[used + n], '|');
        json_decref(o);
    }
    for (size_t t = 0; t < THREADS; t++)
        assert_int_equal(next[t], lines_per_thread);
    free(out);
    reset();
}

static void test_threads_text(void **state)
{
    run_threads(0);
}

static void test_threads_json(void **state)
{
    run_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_text_format),   cmocka_unit_test(test_filtering),
        cmocka_unit_test(test_json_escaping), cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_env),           cmocka_unit_test(test_errno_preserved),
        cmocka_unit_test(test_threads_text),  cmocka_unit_test(test_threads_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
