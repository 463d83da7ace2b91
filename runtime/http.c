/* http.c - HTTP server object: listener, routes, dispatch and the
 * request/response accessors handlers use. Connection I/O is in http_conn.c,
 * parsing in http_parse.c.
 *
 * Key decision: handlers run synchronously on the loop thread and fill one
 * server-owned response object that is reused for every request, so a
 * request costs no allocation once the buffers have grown; the response is
 * serialised into the connection's output buffer right after the handler.
 */
#include "http_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void bc__http_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    bc_http_server_t *srv = w->data;
    ev_io_start(loop, &srv->accept_io);
}

/* Defaults for every zero field. Any thread. */
void bc_http_opts_init(bc_http_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->bind_addr = "127.0.0.1";
    o->backlog = 128;
    o->max_request_line = 8192;
    o->max_header_bytes = 16384;
    o->max_headers = 64;
    o->max_body = 1 << 20;
    o->max_connections = 256;
    o->read_timeout = o->idle_timeout = o->write_timeout = 10.0;
    o->handler_timeout = 30.0;
}

static void bc__http_fill_opts(bc_http_opts_t *o, const bc_http_opts_t *in)
{
    bc_http_opts_t d;
    bc_http_opts_init(&d);
    *o = in ? *in : d;
    if (!o->bind_addr)
        o->bind_addr = d.bind_addr;
#define BC__DEF(f)                                                                                 \
    if (o->f <= 0)                                                                                 \
    o->f = d.f
    BC__DEF(backlog);
    BC__DEF(max_request_line);
    BC__DEF(max_header_bytes);
    BC__DEF(max_headers);
    BC__DEF(max_body);
    BC__DEF(max_connections);
    BC__DEF(read_timeout);
    BC__DEF(idle_timeout);
    BC__DEF(write_timeout);
    BC__DEF(handler_timeout);
#undef BC__DEF
}

/* Create and start a server; see http.h. Loop thread (or loop not running).
 * Returns 0, -EINVAL, or -errno from socket/bind/listen/getsockname. */
int bc_http_server_create(struct ev_loop *loop, const bc_http_opts_t *opts, bc_http_server_t **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc, one = 1;
    bc_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        abort();
    srv->fd = -1;
    bc__http_fill_opts(&srv->opts, opts);
    if (srv->opts.max_request_line > (1u << 20) || srv->opts.max_header_bytes > (1u << 20)) {
        rc = -EINVAL; /* request offsets are 32-bit; no sane head is this big */
        goto err;
    }
    srv->lim = (bc__http_limits_t){srv->opts.max_request_line, srv->opts.max_header_bytes,
                                   srv->opts.max_body, srv->opts.max_headers};
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->opts.bind_addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(srv->opts.port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, srv->opts.bind_addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(srv->opts.port);
        sl = sizeof *s6;
    } else {
        rc = -EINVAL;
        goto err;
    }
    srv->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->fd < 0 || setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(srv->fd, (struct sockaddr *)&ss, sl) < 0 || listen(srv->fd, srv->opts.backlog) < 0 ||
        getsockname(srv->fd, (struct sockaddr *)&ss, &sl) < 0) {
        rc = -errno;
        goto err;
    }
    srv->port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
    srv->loop = loop;
    ev_io_init(&srv->accept_io, bc__http_accept_cb, srv->fd, EV_READ);
    srv->accept_io.data = srv;
    ev_timer_init(&srv->accept_backoff, bc__http_backoff_cb, 0.1, 0.);
    srv->accept_backoff.data = srv;
    ev_io_start(loop, &srv->accept_io);
    *out = srv;
    return 0;
err:
    if (srv->fd >= 0)
        close(srv->fd);
    free(srv);
    return rc;
}

static void bc__http_server_free(bc_http_server_t *srv)
{
    while (srv->conns)
        bc__http_conn_close(srv->conns);
    ev_io_stop(srv->loop, &srv->accept_io);
    ev_timer_stop(srv->loop, &srv->accept_backoff);
    close(srv->fd);
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].method);
        free(srv->routes[i].path);
    }
    free(srv->routes);
    bc_buf_free(&srv->resp.ctype);
    bc_buf_free(&srv->resp.headers);
    bc_buf_free(&srv->resp.body);
    free(srv);
}

/* Destroy (or, inside a callback, schedule destruction). Loop thread. */
void bc_http_server_destroy(bc_http_server_t *srv)
{
    if (!srv)
        return;
    if (srv->busy) {
        srv->destroy_pending = 1;
        ev_io_stop(srv->loop, &srv->accept_io);
        return;
    }
    bc__http_server_free(srv);
}

/* Leave a callback: run a destruction requested inside it. Loop thread. */
void bc__http_server_leave(bc_http_server_t *srv)
{
    if (--srv->busy == 0 && srv->destroy_pending)
        bc__http_server_free(srv);
}

/* Bound port. Any thread after create. */
uint16_t bc_http_server_port(const bc_http_server_t *srv)
{
    return srv->port;
}

/* Add a route; see http.h. Loop thread. 0, -EINVAL or -EEXIST. */
int bc_http_route(bc_http_server_t *srv, const char *method, const char *path, unsigned flags,
                  bc_http_handler_fn fn, void *arg)
{
    if (!fn || !path || path[0] != '/' || flags > BC_HTTP_PREFIX || (method && !*method))
        return -EINVAL;
    for (const char *p = method; p && *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return -EINVAL;
    for (size_t i = 0; i < srv->nroutes; i++) {
        bc__http_route_t *r = &srv->routes[i];
        if (r->flags == flags && strcmp(r->path, path) == 0 && !r->method == !method &&
            (!method || strcmp(r->method, method) == 0))
            return -EEXIST;
    }
    bc__http_route_t *nr = realloc(srv->routes, (srv->nroutes + 1) * sizeof *nr);
    if (!nr)
        abort();
    srv->routes = nr;
    nr[srv->nroutes++] = (bc__http_route_t){
        method ? strdup(method) : NULL, strdup(path), strlen(path), flags, fn, arg};
    return 0;
}

/* Copy counters. Any thread. */
void bc_http_server_stats(const bc_http_server_t *srv, bc_http_stats_t *o)
{
    const bc__http_atomic_stats_t *s = &srv->st;
/* relaxed: statistics; each field is independent */
#define BC__LD(f) o->f = atomic_load_explicit(&s->f, memory_order_relaxed)
    BC__LD(conns_accepted);
    BC__LD(conns_rejected);
    BC__LD(conns_active);
    BC__LD(requests);
    for (int i = 0; i < 6; i++)
        BC__LD(responses[i]);
    BC__LD(bad_request);
    BC__LD(not_found);
    BC__LD(bad_method);
    BC__LD(timeouts);
    BC__LD(body_too_large);
    BC__LD(uri_too_long);
    BC__LD(headers_too_large);
    BC__LD(not_implemented);
    BC__LD(bad_version);
    BC__LD(idle_closed);
    BC__LD(write_timeouts);
    BC__LD(handler_timeouts);
    BC__LD(deferred);
    BC__LD(io_errors);
    BC__LD(accept_errors);
#undef BC__LD
}

static const char *bc__http_date(bc_http_server_t *srv)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = (time_t)ev_now(srv->loop);
    if ((long)now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(srv->date, sizeof srv->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 wd[tm.tm_wday % 7], tm.tm_mday, mo[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        srv->date_sec = (long)now;
    }
    return srv->date;
}

/* Serialise r (status line, headers, body unless head_only) into out.
 * keep_alive: 1 keep (HTTP/1.1 style), 2 keep (HTTP/1.0: say so), 0 close.
 * Loop thread. */
void bc__http_serialise(bc_http_server_t *srv, bc_http_resp_t *r, int head_only, int keep_alive,
                        bc_buf_t *out)
{
    int st = r->status;
    int nobody = st == 204 || st == 304;
    bc_buf_appendf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", st, bc__http_reason(st),
                   bc__http_date(srv));
    if (!nobody)
        bc_buf_appendf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                       r->ctype.len ? r->ctype.data : "text/plain; charset=utf-8", r->body.len);
    bc_buf_appends(out, keep_alive == 2   ? "Connection: keep-alive\r\n"
                        : keep_alive == 0 ? "Connection: close\r\n"
                                          : "");
    bc_buf_append(out, r->headers.data, r->headers.len);
    bc_buf_appends(out, "\r\n");
    if (!nobody && !head_only)
        bc_buf_append(out, r->body.data, r->body.len);
    atomic_fetch_add_explicit(&srv->st.responses[st / 100], 1, memory_order_relaxed); /* stat */
}

static void bc__http_resp_reset(bc_http_resp_t *r)
{
    r->status = 200;
    r->close = 0;
    r->deferred = NULL;
    bc_buf_reset(&r->ctype);
    bc_buf_reset(&r->headers);
    bc_buf_reset(&r->body);
}

/* Append a server-generated error response with "Connection: close" (the
 * caller closes the connection after it) to out. Loop thread. */
void bc__http_error_response(bc_http_server_t *srv, int status, bc_buf_t *out)
{
    bc__http_resp_reset(&srv->resp);
    bc_http_resp_status(&srv->resp, status);
    bc_buf_appendf(&srv->resp.body, "%s\n", bc__http_reason(status));
    bc__http_serialise(srv, &srv->resp, 0, 0, out);
}

static int bc__route_matches(const bc__http_route_t *r, const char *path)
{
    if (r->flags == BC_HTTP_EXACT)
        return strcmp(r->path, path) == 0;
    return strncmp(r->path, path, r->plen) == 0 &&
           (r->path[r->plen - 1] == '/' || path[r->plen] == '/' || path[r->plen] == '\0');
}

static int bc__method_ok(const bc__http_route_t *r, const char *m)
{
    return !r->method || strcmp(r->method, m) == 0 ||
           (strcmp(m, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* Route req and run its handler, or answer 404/405; append the response to
 * out. keep_alive as for bc__http_serialise. Returns 1 when the connection
 * must close after this response, else 0; or 2 when the handler deferred
 * its answer: *deferred is set and nothing was appended. Loop thread. */
int bc__http_dispatch(bc_http_server_t *srv, bc_http_req_t *req, int keep_alive, bc_buf_t *out,
                      bc_http_deferred_t **deferred)
{
    const char *m = bc_http_req_method(req), *path = bc_http_req_path(req);
    const bc__http_route_t *best = NULL;
    size_t best_score = 0;
    int path_known = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const bc__http_route_t *r = &srv->routes[i];
        if (!bc__route_matches(r, path))
            continue;
        path_known = 1;
        size_t score = r->plen * 2 + (r->flags == BC_HTTP_EXACT);
        if (bc__method_ok(r, m) && (!best || score > best_score)) {
            best = r;
            best_score = score;
        }
    }
    BC__HTTP_COUNT(srv, requests);
    bc_http_resp_t *resp = &srv->resp;
    bc__http_resp_reset(resp);
    if (best) {
        best->fn(req, resp, best->arg);
    } else if (path_known) {
        BC__HTTP_COUNT(srv, bad_method);
        bc_buf_t allow = BC_BUF_INIT;
        for (size_t i = 0; i < srv->nroutes; i++) {
            const bc__http_route_t *r = &srv->routes[i];
            if (!r->method || !bc__route_matches(r, path))
                continue; /* no match (an any-method route would have matched) */
            size_t k = 0;
            while (k < i && !(bc__route_matches(&srv->routes[k], path) &&
                              strcmp(srv->routes[k].method, r->method) == 0))
                k++;
            if (k < i)
                continue; /* the method is listed already */
            bc_buf_appendf(&allow, "%s%s%s", allow.len ? ", " : "", r->method,
                           strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
        }
        bc_http_resp_send(resp, 405, NULL, "Method Not Allowed\n", 19);
        bc_http_resp_header(resp, "Allow", allow.data ? allow.data : "");
        bc_buf_free(&allow);
    } else {
        BC__HTTP_COUNT(srv, not_found);
        bc_http_resp_send(resp, 404, NULL, "Not Found\n", 10);
    }
    if (resp->deferred) {
        bc_http_deferred_t *d = resp->deferred;
        resp->deferred = NULL;
        BC__HTTP_COUNT(srv, deferred);
        d->keep_alive = srv->destroy_pending ? 0 : keep_alive;
        d->head_only = strcmp(m, "HEAD") == 0;
        *deferred = d;
        return 2;
    }
    if (resp->close || srv->destroy_pending)
        keep_alive = 0;
    bc__http_serialise(srv, resp, strcmp(m, "HEAD") == 0, keep_alive, out);
    return keep_alive == 0;
}

/* ---------------------------------------------------------------- accessors */
/* Request accessors return strings owned by the connection's input buffer,
 * valid during the handler call; response setters copy their arguments. All
 * run on the loop thread, inside a handler. */

/* Request method. Never NULL. Loop thread, in a handler. */
const char *bc_http_req_method(const bc_http_req_t *req)
{
    return req->base + req->method;
}

/* Raw path without the query. Never NULL. Loop thread, in a handler. */
const char *bc_http_req_path(const bc_http_req_t *req)
{
    return req->base + req->path;
}

/* Raw query string, "" when absent. Never NULL. Loop thread, in a handler. */
const char *bc_http_req_query(const bc_http_req_t *req)
{
    return req->base + req->query;
}

/* Minor version: 0 (HTTP/1.0) or 1. Loop thread, in a handler. */
int bc_http_req_version(const bc_http_req_t *req)
{
    return req->minor;
}

/* First header called `name` (case-insensitive), or NULL. Loop thread, in a handler. */
const char *bc_http_req_header(const bc_http_req_t *req, const char *name)
{
    for (unsigned i = 0; i < req->nhdrs; i++)
        if (strcasecmp(req->base + req->hdrs[i].name, name) == 0)
            return req->base + req->hdrs[i].value;
    return NULL;
}

/* Body (NUL-terminated) and its length. Never NULL. Loop thread, in a handler. */
const char *bc_http_req_body(const bc_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->base + req->body_off;
}

/* Peer address, numeric. Never NULL. Loop thread, in a handler. */
const char *bc_http_req_peer(const bc_http_req_t *req)
{
    return req->peer;
}

/* Peer TCP port. Loop thread, in a handler. */
uint16_t bc_http_req_peer_port(const bc_http_req_t *req)
{
    return req->peer_port;
}

/* 1 when the peer is a loopback address, else 0. Loop thread, in a handler. */
int bc_http_req_peer_is_loopback(const bc_http_req_t *req)
{
    return req->peer_loopback;
}

/* Bearer token from Authorization, or NULL. Loop thread, in a handler. */
const char *bc_http_req_bearer(const bc_http_req_t *req)
{
    const char *v = bc_http_req_header(req, "authorization");
    if (!v || strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return NULL;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v ? v : NULL;
}

/* Set the status; invalid codes become 500. Loop thread, in a handler. */
void bc_http_resp_status(bc_http_resp_t *resp, int status)
{
    resp->status = status >= 200 && status <= 599 ? status : 500;
}

/* Add a header (Content-Type replaces). 0, -EINVAL or -EPERM. Loop thread, in a handler. */
int bc_http_resp_header(bc_http_resp_t *resp, const char *name, const char *value)
{
    if (!name || !*name || !value)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == ':')
            return -EINVAL;
    for (const char *p = value; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return -EINVAL;
    static const char *const managed[] = {"content-length", "connection", "transfer-encoding",
                                          "date"};
    for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
        if (strcasecmp(name, managed[i]) == 0)
            return -EPERM;
    if (strcasecmp(name, "content-type") == 0) {
        bc_buf_reset(&resp->ctype);
        bc_buf_appends(&resp->ctype, value);
        return 0;
    }
    bc_buf_appendf(&resp->headers, "%s: %s\r\n", name, value);
    return 0;
}

/* Replace the body with a copy of data[0..len). Loop thread, in a handler. */
void bc_http_resp_body(bc_http_resp_t *resp, const void *data, size_t len)
{
    bc_buf_reset(&resp->body);
    bc_buf_append(&resp->body, data, len);
}

/* The body buffer, owned by the server, to append to. Loop thread, in a handler. */
bc_buf_t *bc_http_resp_buf(bc_http_resp_t *resp)
{
    return &resp->body;
}

/* Status, optional Content-Type and body in one call. Loop thread, in a handler. */
void bc_http_resp_send(bc_http_resp_t *resp, int status, const char *content_type, const void *data,
                       size_t len)
{
    bc_http_resp_status(resp, status);
    if (content_type)
        bc_http_resp_header(resp, "Content-Type", content_type);
    bc_http_resp_body(resp, data, len);
}

/* Close the connection after this response. Loop thread, in a handler. */
void bc_http_resp_close(bc_http_resp_t *resp)
{
    resp->close = 1;
}

/* ---------------------------------------------------------------- deferred responses */

/* Answer later; see http.h. Loop thread, in a handler. Never NULL. */
bc_http_deferred_t *bc_http_resp_defer(bc_http_resp_t *resp)
{
    if (resp->deferred)
        return resp->deferred; /* a second call: the same handle */
    bc_http_deferred_t *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    bc__http_resp_reset(&d->resp);
    resp->deferred = d;
    return d;
}

/* The response to fill. Loop thread. */
bc_http_resp_t *bc_http_deferred_resp(bc_http_deferred_t *d)
{
    return &d->resp;
}

/* Whether the client still waits. Loop thread. */
int bc_http_deferred_alive(const bc_http_deferred_t *d)
{
    return d->conn != NULL;
}

/* Send the response if the client waits, resume its connection, free d.
 * Loop thread. */
void bc_http_deferred_finish(bc_http_deferred_t *d)
{
    if (!d)
        return;
    if (d->conn)
        bc__http_conn_resume(d->conn, d);
    bc_buf_free(&d->resp.ctype);
    bc_buf_free(&d->resp.headers);
    bc_buf_free(&d->resp.body);
    free(d);
}
