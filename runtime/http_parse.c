/* http_parse.c - HTTP/1.1 request head parsing and chunked body decoding.
 *
 * Key decision: until the head is complete we only look for line ends
 * (resuming where the last search stopped, so a client dripping bytes costs
 * O(n) in total) and enforce the size limits; then the head is validated in
 * one pass and its strings are NUL-terminated in place. Chunked bodies are
 * decoded in place. Results: 0 (need more), > 0 (done) or -status.
 */
#include "http_impl.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static int bc__tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int bc__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Request line b[0..e) (e excludes CR LF). */
static int bc__parse_request_line(char *b, size_t e, bc_http_req_t *req)
{
    size_t i = 0;
    while (i < e && bc__tchar((unsigned char)b[i]))
        i++;
    if (i == 0 || i == e || b[i] != ' ')
        return -400;
    b[i++] = '\0';
    req->method = 0;
    size_t t = i;
    while (i < e && (unsigned char)b[i] > 0x20 && b[i] != 0x7f)
        i++;
    if (i == t || i == e || b[i] != ' ')
        return -400;
    b[i++] = '\0';
    const char *v = b + i;
    if (e - i != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1')
        return -505;
    req->minor = v[7] == '0' ? 0 : 1; /* 1.x, x > 1: treat as 1.1 */
    b[e] = '\0';

    size_t p = t;
    if (strncasecmp(b + t, "http://", 7) == 0 || strncasecmp(b + t, "https://", 8) == 0) {
        const char *slash = strchr(strstr(b + t, "//") + 2, '/');
        if (!slash)
            return -400;
        p = (size_t)(slash - b);
    } else if (b[t] != '/' && strcmp(b + t, "*") != 0) {
        return -400;
    }
    req->path = (uint32_t)p;
    char *q = strchr(b + p, '?');
    if (q) {
        *q = '\0';
        req->query = (uint32_t)(q + 1 - b);
    } else {
        req->query = (uint32_t)(p + strlen(b + p)); /* the empty string at its end */
    }
    return 0;
}

/* Header line b[ls..e) (e excludes CR LF). */
static int bc__parse_header(char *b, size_t ls, size_t e, bc__http_hdr_t *h)
{
    size_t i = ls;
    while (i < e && bc__tchar((unsigned char)b[i]))
        i++;
    if (i == ls || i == e || b[i] != ':') /* also refuses obs-fold and "Name :" */
        return -400;
    b[i++] = '\0';
    while (i < e && (b[i] == ' ' || b[i] == '\t'))
        i++;
    size_t ve = e;
    while (ve > i && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
        ve--;
    for (size_t k = i; k < ve; k++) {
        unsigned char c = (unsigned char)b[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -400;
    }
    b[ve] = '\0';
    h->name = (uint32_t)ls;
    h->value = (uint32_t)i;
    return 0;
}

/* Look for the end of the head in b[0..len), enforcing the limits; when it
 * is complete, parse it into req (strings NUL-terminated in place, req->hdrs
 * must have room for lim->max_headers). Loop thread. Returns 1 (head
 * complete, ps->head_len set), 0 (need more bytes) or -400/-414/-431/-505. */
int bc__http_parse_head(char *b, size_t len, const bc__http_limits_t *lim, bc__http_pstate_t *ps,
                        bc_http_req_t *req)
{
    if (!ps->line_end) {
        size_t cap = lim->max_line + 2, end = len < cap ? len : cap;
        char *nl = ps->seen < end ? memchr(b + ps->seen, '\n', end - ps->seen) : NULL;
        if (!nl) {
            ps->seen = end;
            return len >= cap ? -414 : 0;
        }
        size_t ll = (size_t)(nl - b);
        if (ll > 0 && b[ll - 1] == '\r')
            ll--;
        if (ll > lim->max_line)
            return -414;
        ps->line_end = ps->scan = ps->seen = (size_t)(nl - b) + 1;
    }
    for (;;) {
        char *nl = ps->seen < len ? memchr(b + ps->seen, '\n', len - ps->seen) : NULL;
        if (!nl) {
            ps->seen = len;
            return len - ps->line_end > lim->max_header_bytes + 2 ? -431 : 0;
        }
        size_t ls = ps->scan, next = (size_t)(nl - b) + 1, ll = next - 1 - ls;
        ps->scan = ps->seen = next;
        if (ll == 0 || (ll == 1 && b[ls] == '\r')) {
            ps->head_len = next;
            break;
        }
        if (++ps->nlines > lim->max_headers || next - ps->line_end > lim->max_header_bytes)
            return -431;
    }
    size_t e = ps->line_end - 1;
    if (e > 0 && b[e - 1] == '\r')
        e--;
    int rc = bc__parse_request_line(b, e, req);
    if (rc < 0)
        return rc;
    req->nhdrs = 0;
    for (size_t ls = ps->line_end;;) {
        size_t lf = (size_t)((char *)memchr(b + ls, '\n', ps->head_len - ls) - b);
        e = lf > ls && b[lf - 1] == '\r' ? lf - 1 : lf;
        if (e == ls)
            break;
        rc = bc__parse_header(b, ls, e, &req->hdrs[req->nhdrs]);
        if (rc < 0)
            return rc;
        req->nhdrs++;
        ls = lf + 1;
    }
    return 1;
}

/* 1 when the comma-separated list contains token (case-insensitive), else
 * 0. Any thread. */
int bc__http_token_in_list(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
            return 1;
    }
    return 0;
}

/* Check the parsed head's framing and connection headers; set ps->body_mode,
 * content_length, keep_alive, expect_continue. Loop thread. Returns 0 or
 * -400 (Host, Content-Length, TE with CL or in HTTP/1.0), -413, -501. */
int bc__http_check_head(const char *b, const bc__http_limits_t *lim, bc__http_pstate_t *ps,
                        const bc_http_req_t *req)
{
    int hosts = 0, cl_seen = 0, te = 0, chunked = 0, close = 0, ka = 0;
    size_t cl = 0;
    for (unsigned i = 0; i < req->nhdrs; i++) {
        const char *n = b + req->hdrs[i].name, *v = b + req->hdrs[i].value;
        if (strcasecmp(n, "host") == 0) {
            hosts++;
        } else if (strcasecmp(n, "content-length") == 0) {
            size_t x = 0, k = 0;
            for (; v[k] >= '0' && v[k] <= '9' && k < 18; k++)
                x = x * 10 + (size_t)(v[k] - '0');
            if (k == 0 || v[k] || (cl_seen && x != cl))
                return v[k] >= '0' && v[k] <= '9' ? -413 : -400;
            cl = x;
            cl_seen = 1;
        } else if (strcasecmp(n, "transfer-encoding") == 0) {
            te++;
            chunked = strcasecmp(v, "chunked") == 0;
        } else if (strcasecmp(n, "connection") == 0) {
            close |= bc__http_token_in_list(v, "close");
            ka |= bc__http_token_in_list(v, "keep-alive");
        } else if (strcasecmp(n, "expect") == 0) {
            ps->expect_continue = strcasecmp(v, "100-continue") == 0;
        }
    }
    if (hosts > 1 || (req->minor >= 1 && hosts == 0))
        return -400;
    ps->keep_alive = req->minor >= 1 ? !close : ka && !close;
    if (te) {
        if (cl_seen || req->minor == 0)
            return -400;
        if (te > 1 || !chunked)
            return -501;
        ps->body_mode = BC__BODY_CHUNKED;
        ps->raw = ps->head_len;
    } else if (cl_seen) {
        if (cl > lim->max_body)
            return -413;
        ps->body_mode = BC__BODY_LENGTH;
        ps->content_length = cl;
    }
    return 0;
}

/* Decode a chunked body in place: raw bytes from ps->raw on, decoded bytes
 * to b + ps->head_len + ps->dec. Loop thread. Returns 1 when the body and its
 * trailer are complete (ps->raw = end of the request), 0 (need more bytes),
 * or -400 (bad framing), -413 (over max_body), -431 (trailer too big). */
int bc__http_chunked(char *b, size_t len, const bc__http_limits_t *lim, bc__http_pstate_t *ps)
{
    for (;;) {
        size_t avail = len - ps->raw;
        const char *nl;
        switch (ps->ch_phase) {
        case BC__CH_SIZE: {
            nl = memchr(b + ps->raw, '\n', avail);
            if (!nl)
                return avail > 1024 ? -400 : 0;
            size_t lf = (size_t)(nl - b), i = ps->raw, sz = 0;
            if (lf - i > 1024)
                return -400;
            for (; i < lf && bc__hexval((unsigned char)b[i]) >= 0; i++) {
                if (sz > lim->max_body)
                    return -413;
                sz = sz * 16 + (size_t)bc__hexval((unsigned char)b[i]);
            }
            if (i == ps->raw)
                return -400;
            while (i < lf && (b[i] == ' ' || b[i] == '\t'))
                i++;
            if (i < lf && b[i] != ';' && !(b[i] == '\r' && i + 1 == lf))
                return -400; /* ";ext" is ignored */
            if (sz > lim->max_body - ps->dec)
                return -413;
            ps->raw = lf + 1;
            ps->left = sz;
            ps->ch_phase = sz ? BC__CH_DATA : BC__CH_TRAILER;
            break;
        }
        case BC__CH_DATA: {
            size_t n = avail < ps->left ? avail : ps->left;
            memmove(b + ps->head_len + ps->dec, b + ps->raw, n);
            ps->dec += n;
            ps->raw += n;
            ps->left -= n;
            if (ps->left)
                return 0;
            ps->ch_phase = BC__CH_DATA_END;
            break;
        }
        case BC__CH_DATA_END:
            if (avail >= 1 && b[ps->raw] == '\n') {
                ps->raw += 1;
            } else if (avail >= 2 && b[ps->raw] == '\r' && b[ps->raw + 1] == '\n') {
                ps->raw += 2;
            } else if (avail == 0 || (avail == 1 && b[ps->raw] == '\r')) {
                return 0;
            } else {
                return -400;
            }
            ps->ch_phase = BC__CH_SIZE;
            break;
        default: /* BC__CH_TRAILER: fields are read and ignored */
            nl = memchr(b + ps->raw, '\n', avail);
            if (!nl)
                return ps->trailer_bytes + avail > lim->max_header_bytes ? -431 : 0;
            size_t start = ps->raw, ll = (size_t)(nl - b) - start;
            ps->trailer_bytes += ll + 1;
            if (ps->trailer_bytes > lim->max_header_bytes)
                return -431;
            ps->raw = start + ll + 1;
            if (ll == 0 || (ll == 1 && b[start] == '\r'))
                return 1;
            break;
        }
    }
}

/* Reason phrase for a status code ("Unknown" when none). Any thread. */
const char *bc__http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Percent-decoded query parameter. Loop thread, during the handler. See
 * http.h for returns. */
int bc_http_req_query_param(const bc_http_req_t *req, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = req->base + req->query; *p;) {
        const char *end = strchr(p, '&'), *eq;
        if (!end)
            end = p + strlen(p);
        eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                int c = (unsigned char)*v;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (end - v < 3 || bc__hexval((unsigned char)v[1]) < 0 ||
                        bc__hexval((unsigned char)v[2]) < 0)
                        return -EINVAL;
                    c = bc__hexval((unsigned char)v[1]) * 16 + bc__hexval((unsigned char)v[2]);
                    v += 2;
                }
                if (o + 1 >= n)
                    return -ENOSPC;
                out[o++] = (char)c;
            }
            if (n == 0)
                return -ENOSPC;
            out[o] = '\0';
            return (int)o;
        }
        p = *end ? end + 1 : end;
    }
    return -ENOENT;
}
