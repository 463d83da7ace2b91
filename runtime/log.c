/* log.c - leveled logging to stderr, as text lines or one JSON object per line.
 *
 * Key design decision: a line is formatted into a stack buffer of PIPE_BUF
 * (4096) bytes and written with a single write(2), so concurrent lines never
 * interleave (atomic on pipes, and in practice on files and terminals) and
 * logging never allocates. Longer messages are cut at a UTF-8 character
 * boundary and marked with "...". The level and format are lone atomics.
 */
#include "blockcoord.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096 /* == PIPE_BUF on Linux */
#define ELLIPSIS "..."

/* Relaxed everywhere: independent settings that publish no other data. */
static atomic_int log_level = BC_LOG_INFO;
static atomic_int log_json = 0;

static const char *const text_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
static const char *const json_names[] = {"debug", "info", "warn", "error"};

/* Length of the valid UTF-8 sequence at p[0..len), or 0 if it is invalid
 * (overlong, surrogate, above U+10FFFF, truncated or stray byte). */
static size_t utf8_seq(const unsigned char *p, size_t len)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (len < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Length of s[0..len) without a multi-byte character cut off at its end. */
static size_t utf8_trim(const char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0 && (unsigned char)s[i - 1] >= 0xc0 &&
        utf8_seq((const unsigned char *)s + i - 1, len - i + 1) == 0)
        return i - 1;
    return len;
}

/* Write "YYYY-MM-DDThh:mm:ss.mmmZ" (24 characters and a NUL) to buf. */
static size_t format_ts(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* Clamp every field to its width so the compiler can prove the fit. */
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u;
    unsigned mon = (unsigned)(tm.tm_mon + 1) % 100u, day = (unsigned)tm.tm_mday % 100u;
    unsigned hh = (unsigned)tm.tm_hour % 100u, mm = (unsigned)tm.tm_min % 100u;
    unsigned ss = (unsigned)tm.tm_sec % 100u, ms = (unsigned)(ts.tv_nsec / 1000000) % 1000u;
    int n =
        snprintf(buf, cap, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", year, mon, day, hh, mm, ss, ms);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Append msg[0..len) as the body of a JSON string to out (at *pos, up to
 * `limit`), escaping quotes, backslashes and control characters and replacing
 * invalid UTF-8 with U+FFFD. Returns 0, or -ENOSPC if it had to stop early
 * (then *pos ends at a whole character or escape). */
static int json_escape(char *out, size_t *pos, size_t limit, const char *msg, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, o = *pos;
    while (i < len) {
        unsigned char c = (unsigned char)msg[i];
        char esc[8];
        const char *src = esc;
        size_t n, in;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2, in = 1;
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6, in = 1;
        } else if ((in = utf8_seq((const unsigned char *)msg + i, len - i)) != 0) {
            src = msg + i;
            n = in;
        } else {
            memcpy(esc, "\\ufffd", 6);
            n = 6, in = 1;
        }
        if (o + n > limit) {
            *pos = o;
            return -ENOSPC;
        }
        memcpy(out + o, src, n);
        o += n;
        i += in;
    }
    *pos = o;
    return 0;
}

/* Write all of buf to fd 2 with as few write(2) calls as the kernel allows,
 * retrying on EINTR and partial writes; other errors drop the rest. */
static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Format one line at `level` (no level filtering) and write it. */
static void emit(bc_log_level_t level, const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    size_t pos;
    int saved_errno = errno;
    if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
        char msg[LINE_MAX_BYTES];
        char ts[32];
        int n = vsnprintf(msg, sizeof msg, fmt, ap);
        size_t len = n < 0 ? 0 : (size_t)n;
        int cut = len >= sizeof msg;
        if (cut)
            len = utf8_trim(msg, sizeof msg - 1);
        format_ts(ts, sizeof ts);
        int head = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                            json_names[level]);
        pos = (size_t)head;
        /* Room for the tail: ..."}\n */
        size_t limit = sizeof line - (sizeof ELLIPSIS - 1) - 3;
        if (json_escape(line, &pos, limit, msg, len) < 0 || cut) {
            memcpy(line + pos, ELLIPSIS, sizeof ELLIPSIS - 1);
            pos += sizeof ELLIPSIS - 1;
        }
        memcpy(line + pos, "\"}\n", 3);
        pos += 3;
    } else {
        pos = format_ts(line, sizeof line);
        line[pos++] = ' ';
        memcpy(line + pos, text_names[level], 5);
        pos += 5;
        line[pos++] = ' ';
        /* Leave one byte for the newline (vsnprintf's NUL takes its place). */
        size_t room = sizeof line - pos;
        int n = vsnprintf(line + pos, room, fmt, ap);
        size_t len = n < 0 ? 0 : (size_t)n;
        if (len >= room) {
            len = utf8_trim(line + pos, room - 1 - (sizeof ELLIPSIS - 1));
            memcpy(line + pos + len, ELLIPSIS, sizeof ELLIPSIS - 1);
            len += sizeof ELLIPSIS - 1;
        }
        pos += len;
        line[pos++] = '\n';
    }
    write_all(line, pos);
    errno = saved_errno;
}

/* Log a printf-style message at `level` if it is at or above the current
 * level (a message below it costs one relaxed atomic load). BC_LOG_OFF and
 * out-of-range levels are never printed. errno is preserved. */
void bc_log(bc_log_level_t level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    if ((unsigned)level >= BC_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, fmt, ap);
    va_end(ap);
}

/* Set the minimum level that is printed; BC_LOG_OFF silences everything.
 * Out-of-range values are ignored. */
void bc_log_set_level(bc_log_level_t level)
{
    if ((unsigned)level <= BC_LOG_OFF)
        atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

/* Return the current minimum level (BC_LOG_INFO by default). */
bc_log_level_t bc_log_get_level(void)
{
    return (bc_log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Nonzero: one JSON object per line; zero: text lines (the default). */
void bc_log_set_json(int on)
{
    atomic_store_explicit(&log_json, on != 0, memory_order_relaxed);
}

/* Parse a level name, case-insensitively: debug, info, warn (or warning),
 * error, off. Returns 0 and sets *out, or -EINVAL (also for NULL arguments)
 * leaving *out untouched. */
int bc_log_parse_level(const char *s, bc_log_level_t *out)
{
    static const struct {
        const char *name;
        bc_log_level_t level;
    } names[] = {{"debug", BC_LOG_DEBUG},  {"info", BC_LOG_INFO},   {"warn", BC_LOG_WARN},
                 {"warning", BC_LOG_WARN}, {"error", BC_LOG_ERROR}, {"off", BC_LOG_OFF}};
    if (!s || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

/* Print a configuration error whatever the current level is. */
static void config_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void config_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(BC_LOG_ERROR, fmt, ap);
    va_end(ap);
}

/* Apply BC_LOG_LEVEL (debug|info|warn|warning|error|off) and BC_LOG_FORMAT
 * (text|json), both case-insensitive; unset or empty variables change
 * nothing. Each variable is applied on its own: a bad value is reported on
 * stderr (naming the variable and the value, printed whatever the level) and
 * leaves its setting as it was. Returns 0, or -EINVAL if any value was bad. */
int bc_log_init_from_env(void)
{
    int rc = 0;
    const char *lv = getenv("BC_LOG_LEVEL");
    const char *fmt = getenv("BC_LOG_FORMAT");
    if (lv && *lv) {
        bc_log_level_t level;
        if (bc_log_parse_level(lv, &level) == 0) {
            bc_log_set_level(level);
        } else {
            config_error("invalid BC_LOG_LEVEL=\"%s\" (want debug|info|warn|error|off)", lv);
            rc = -EINVAL;
        }
    }
    if (fmt && *fmt) {
        if (strcasecmp(fmt, "text") == 0) {
            bc_log_set_json(0);
        } else if (strcasecmp(fmt, "json") == 0) {
            bc_log_set_json(1);
        } else {
            config_error("invalid BC_LOG_FORMAT=\"%s\" (want text|json)", fmt);
            rc = -EINVAL;
        }
    }
    return rc;
}
