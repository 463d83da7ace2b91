/* http_fixture.h - test support for test_http.c: an ev_loop running a
 * bc_http_server_t on a background thread, and a blocking HTTP client with
 * receive timeouts for the test thread. Included by test_http.c only.
 */
#ifndef BC_TEST_HTTP_FIXTURE_H
#define BC_TEST_HTTP_FIXTURE_H

#include "harness.h"
#include "http.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GET_HELLO "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"

typedef struct {
    struct ev_loop *loop;
    ev_async stop;
    bc_http_server_t *srv;
    pthread_t th;
    uint16_t port;
} fx_t;

typedef struct {
    int fd;
    bc_buf_t buf;
} cl_t;

typedef struct {
    int status;
    char head[2048];
    char *body;
    size_t len;
} resp_t;

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_main(void *p)
{
    ev_run(((fx_t *)p)->loop, 0);
    return NULL;
}

/* Create the loop and the server (routes are added by the caller, then
 * fx_run starts the loop thread). */
static void fx_init(fx_t *f, const bc_http_opts_t *o)
{
    f->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&f->stop, stop_cb);
    ev_async_start(f->loop, &f->stop);
    assert_int_equal(bc_http_server_create(f->loop, o, &f->srv), 0);
    f->port = bc_http_server_port(f->srv);
    assert_true(f->port > 0);
}

static void fx_run(fx_t *f)
{
    pthread_create(&f->th, NULL, loop_main, f);
}

static void fx_stop(fx_t *f, int destroyed)
{
    ev_async_send(f->loop, &f->stop);
    pthread_join(f->th, NULL);
    if (!destroyed)
        bc_http_server_destroy(f->srv);
    ev_loop_destroy(f->loop);
}

static bc_http_stats_t stats(fx_t *f)
{
    bc_http_stats_t s;
    bc_http_server_stats(f->srv, &s);
    return s;
}

static cl_t cl_open(fx_t *f, int rcvbuf)
{
    cl_t c = {socket(AF_INET, SOCK_STREAM, 0), BC_BUF_INIT};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    struct timeval tv = {5, 0};
    int one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf)
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static void cl_close(cl_t *c)
{
    close(c->fd);
    bc_buf_free(&c->buf);
}

static void cl_send(cl_t *c, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return; /* the server may have closed: the reply tells */
        s += k;
        n -= (size_t)k;
    }
}

static void cl_sends(cl_t *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Read more bytes: 1, or 0 on EOF/reset/timeout. */
static int cl_fill(cl_t *c)
{
    bc_buf_reserve(&c->buf, 65536);
    ssize_t n = recv(c->fd, c->buf.data + c->buf.len, 65536, 0);
    if (n <= 0)
        return 0;
    c->buf.len += (size_t)n;
    c->buf.data[c->buf.len] = '\0';
    return 1;
}

/* Read one final response (skipping 100 Continue; no body after HEAD);
 * 0 or -1 (EOF/timeout). */
static int cl_resp_ex(cl_t *c, resp_t *r, int head)
{
    for (;;) {
        char *e;
        while (!(e = strstr(c->buf.data ? c->buf.data : "", "\r\n\r\n")))
            if (!cl_fill(c))
                return -1;
        size_t hl = (size_t)(e + 4 - c->buf.data);
        assert_true(hl < sizeof r->head);
        memcpy(r->head, c->buf.data, hl);
        r->head[hl] = '\0';
        assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
        if (r->status == 100) {
            bc_buf_consume(&c->buf, hl);
            continue;
        }
        const char *cl = strcasestr(r->head, "\r\ncontent-length:");
        r->len = cl && !head ? strtoul(cl + 17, NULL, 10) : 0;
        while (c->buf.len < hl + r->len)
            if (!cl_fill(c))
                return -1;
        r->body = malloc(r->len + 1);
        memcpy(r->body, c->buf.data + hl, r->len);
        r->body[r->len] = '\0';
        bc_buf_consume(&c->buf, hl + r->len);
        return 0;
    }
}

static int cl_resp(cl_t *c, resp_t *r)
{
    return cl_resp_ex(c, r, 0);
}

/* Read the next response on c and check its status and (unless NULL) its
 * body; returns its head (valid until the next call) for header checks. */
static const char *expect(cl_t *c, int status, const char *body)
{
    static resp_t r;
    assert_int_equal(cl_resp(c, &r), 0);
    assert_int_equal(r.status, status);
    if (body)
        assert_string_equal(r.body, body);
    free(r.body);
    return r.head;
}

/* One request on a fresh connection: the status (body freed), or -1. */
static int one_shot(fx_t *f, const char *req, int want_close)
{
    cl_t c = cl_open(f, 0);
    resp_t r;
    cl_sends(&c, req);
    int st = cl_resp(&c, &r) == 0 ? r.status : -1;
    if (st > 0) {
        free(r.body);
        if (want_close)
            assert_false(cl_fill(&c)); /* the server closed */
    }
    cl_close(&c);
    return st;
}

static int get_hello(fx_t *f)
{
    return one_shot(f, GET_HELLO, 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif /* BC_TEST_HTTP_FIXTURE_H */
