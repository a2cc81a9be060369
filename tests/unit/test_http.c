/* Unit tests for common/http: pure helpers, and the client against a scripted HTTP server on
 * 127.0.0.1 that answers each connection's requests from a list of canned responses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http.h"

/* ---- pure helpers ---- */

static void test_backoff_bounds(void **state)
{
	for (int retry = 1; retry < 12; retry++) {
		long cap = 100L << (retry - 1);

		if (cap > 5000)
			cap = 5000;
		assert_int_equal(http_backoff_ms(retry, 100, 5000, 0), 0);
		assert_true(http_backoff_ms(retry, 100, 5000, 0xffffffffu) <= cap);
		for (uint32_t r = 1; r < 100000; r += 7919)
			assert_true(http_backoff_ms(retry, 100, 5000, r) <= cap);
	}
	/* full jitter reaches the cap */
	assert_int_equal(http_backoff_ms(1, 100, 5000, 100), 100);
	assert_int_equal(http_backoff_ms(3, 100, 5000, 400), 400);
	assert_int_equal(http_backoff_ms(30, 100, 5000, 5000), 5000);
}

static void test_should_retry(void **state)
{
	assert_true(http_should_retry(503, 0));
	assert_true(http_should_retry(500, 0));
	assert_true(http_should_retry(429, 0));
	assert_true(http_should_retry(408, 0));
	assert_false(http_should_retry(404, 0));
	assert_false(http_should_retry(403, 0));
	assert_false(http_should_retry(412, 0));
	assert_false(http_should_retry(200, 0));
	assert_true(http_should_retry(0, -EIO));
	assert_true(http_should_retry(0, -ETIMEDOUT));
	assert_true(http_should_retry(0, -ECONNREFUSED));
	assert_false(http_should_retry(0, -EPROTO));
	assert_false(http_should_retry(0, -ESTALE));
}

static void test_content_range(void **state)
{
	uint64_t s, e, t;

	assert_int_equal(http_parse_content_range("bytes 0-9/10", &s, &e, &t), 0);
	assert_int_equal(s, 0);
	assert_int_equal(e, 9);
	assert_int_equal(t, 10);
	assert_int_equal(http_parse_content_range("bytes 5-5/*", &s, &e, &t), 0);
	assert_true(t == UINT64_MAX);
	assert_int_equal(http_parse_content_range("bytes 0-10/10", &s, &e, &t), -EPROTO);
	assert_int_equal(http_parse_content_range("bytes 9-0/10", &s, &e, &t), -EPROTO);
	assert_int_equal(http_parse_content_range("bytes */10", &s, &e, &t), -EPROTO);
	assert_int_equal(http_parse_content_range("items 0-9/10", &s, &e, &t), -EPROTO);
	assert_int_equal(http_parse_content_range("bytes 0-9/10x", &s, &e, &t), -EPROTO);
	assert_int_equal(http_parse_content_range("bytes 99999999999999999999-1/2", &s, &e, &t),
			 -EPROTO);
	assert_int_equal(http_parse_content_range("", &s, &e, &t), -EPROTO);
}

/* ---- scripted server ---- */

#define MAX_STEPS 8
#define MAX_CONNS 16

enum step_kind { SEND, SEND_PARTIAL_CLOSE, STALL };

struct step {
	enum step_kind kind;
	const char *head; /* status line + headers, without the final blank line */
	size_t body_len;  /* body bytes: the source pattern from `body_off` */
	uint64_t body_off;
};

struct server {
	int lfd;
	int port;
	pthread_t thr;
	struct step steps[MAX_STEPS];
	int nsteps;
	int served; /* requests answered */
	char last_request[4096];
	volatile int stop;
	pthread_mutex_t lock;
	pthread_t threads[MAX_CONNS];
	int nthreads;
};

static unsigned char pattern_byte(uint64_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13);
}

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

static void send_body(int fd, uint64_t off, size_t len)
{
	unsigned char chunk[8192];

	while (len) {
		size_t n = len < sizeof(chunk) ? len : sizeof(chunk);

		for (size_t i = 0; i < n; i++)
			chunk[i] = pattern_byte(off + i);
		send_all(fd, chunk, n);
		off += n;
		len -= n;
	}
}

/* Reads one request's headers (we never send request bodies in these tests). */
static int read_request(int fd, char *out, size_t outsz)
{
	size_t n = 0;

	while (n < outsz - 1) {
		ssize_t r = recv(fd, out + n, 1, 0);

		if (r <= 0)
			return -1;
		n++;
		out[n] = '\0';
		if (n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0)
			return 0;
	}
	return -1;
}

struct conn {
	struct server *s;
	int fd;
};

/* Takes the next canned response, or NULL when the script is used up. */
static struct step *next_step(struct server *s)
{
	struct step *st = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->served < s->nsteps)
		st = &s->steps[s->served++];
	pthread_mutex_unlock(&s->lock);
	return st;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct server *s = c->s;
	char req[4096];

	while (!s->stop && read_request(c->fd, req, sizeof(req)) == 0) {
		struct step *st = next_step(s);
		char head[1024];

		pthread_mutex_lock(&s->lock);
		memcpy(s->last_request, req, sizeof(req));
		pthread_mutex_unlock(&s->lock);
		if (!st)
			break;
		if (st->kind == STALL) {
			while (!s->stop)
				usleep(10000);
			break;
		}
		snprintf(head, sizeof(head), "%s\r\nContent-Length: %zu\r\n\r\n", st->head,
			 st->body_len);
		send_all(c->fd, head, strlen(head));
		if (st->kind == SEND_PARTIAL_CLOSE) {
			send_body(c->fd, st->body_off, st->body_len / 2);
			break;
		}
		send_body(c->fd, st->body_off, st->body_len);
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	while (!s->stop && s->nthreads < MAX_CONNS) {
		struct conn *c;
		int fd = accept(s->lfd, NULL, NULL);

		if (fd < 0)
			break;
		c = malloc(sizeof(*c));
		c->s = s;
		c->fd = fd;
		if (pthread_create(&s->threads[s->nthreads], NULL, conn_main, c) != 0) {
			close(fd);
			free(c);
			break;
		}
		s->nthreads++;
	}
	return NULL;
}

static void server_start(struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1;

	pthread_mutex_init(&s->lock, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thr, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	s->stop = 1;
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->thr, NULL);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
}

/* A memory sink that records resets, so a test sees how many attempts delivered bytes. */
struct mem_sink {
	unsigned char *data;
	size_t cap;
	size_t high; /* highest offset written + 1 */
	int resets;
};

static int mem_reset(void *ctx)
{
	struct mem_sink *m = ctx;

	m->resets++;
	m->high = 0;
	return 0;
}

static int mem_write(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct mem_sink *m = ctx;

	if (off + len > m->cap)
		return -ENOSPC;
	memcpy(m->data + off, data, len);
	if (off + len > m->high)
		m->high = off + len;
	return 0;
}

struct fixture {
	struct server srv;
	struct http_stats stats;
	struct http_client *hc;
	struct mem_sink mem;
	struct http_sink sink;
	char url[128];
};

static struct fixture *fixture_new(const struct step *steps, int n, long low_speed_s)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct http_opts o = { .backoff_base_ms = 5,
			       .backoff_max_ms = 20,
			       .low_speed_time_s = low_speed_s,
			       .max_attempts = 4 };

	assert_non_null(f);
	memcpy(f->srv.steps, steps, (size_t)n * sizeof(*steps));
	f->srv.nsteps = n;
	server_start(&f->srv);
	o.stats = &f->stats;
	assert_int_equal(http_client_new(&o, &f->hc), 0);
	f->mem.cap = 1 << 20;
	f->mem.data = calloc(1, f->mem.cap);
	f->sink.reset = mem_reset;
	f->sink.write = mem_write;
	f->sink.ctx = &f->mem;
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/bucket/obj", f->srv.port);
	return f;
}

static void fixture_free(struct fixture *f)
{
	http_client_free(f->hc);
	server_stop(&f->srv);
	free(f->mem.data);
	free(f);
}

static int ranged_get(struct fixture *f, uint64_t off, uint64_t len, uint64_t total,
		      const char *ver)
{
	struct http_req *r;
	int rc;

	assert_int_equal(http_req_new("GET", f->url, &r), 0);
	http_req_expect_range(r, off, len, total);
	if (ver)
		assert_int_equal(http_req_expect_version(r, "ETag", ver), 0);
	http_req_set_sink(r, &f->sink);
	rc = http_perform(f->hc, r);
	http_req_free(r);
	return rc;
}

static void assert_pattern(const struct mem_sink *m, uint64_t src_off, size_t len)
{
	assert_int_equal(m->high, len);
	for (size_t i = 0; i < len; i++) {
		if (m->data[i] != pattern_byte(src_off + i))
			fail_msg("byte %zu differs", i);
	}
}

static void test_ranged_ok(void **state)
{
	struct step s[] = {
		{ SEND,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-4195/9000\r\n"
		  "ETag: \"abc\"",
		  4096, 100 }
	};
	struct fixture *f = fixture_new(s, 1, 5);

	assert_int_equal(ranged_get(f, 100, 4096, 9000, "abc"), 0);
	assert_pattern(&f->mem, 100, 4096);
	assert_non_null(strstr(f->srv.last_request, "Range: bytes=100-4195\r\n"));
	assert_int_equal(f->stats.requests, 1);
	assert_int_equal(f->stats.retries, 0);
	assert_int_equal(f->stats.bytes_in, 4096);
	assert_int_equal(f->stats.inflight, 0);
	fixture_free(f);
}

static void test_503_twice_then_ok(void **state)
{
	struct step s[] = {
		{ SEND, "HTTP/1.1 503 Slow Down", 10, 0 },
		{ SEND, "HTTP/1.1 503 Slow Down", 10, 0 },
		{ SEND, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-999/1000", 1000,
		  0 },
	};
	struct fixture *f = fixture_new(s, 3, 5);

	assert_int_equal(ranged_get(f, 0, 1000, 1000, NULL), 0);
	assert_pattern(&f->mem, 0, 1000);
	assert_int_equal(f->stats.requests, 3);
	assert_int_equal(f->stats.retries, 2);
	assert_int_equal(f->stats.failures, 0);
	/* error bodies never reach the sink */
	assert_int_equal(f->mem.resets, 1);
	fixture_free(f);
}

static void test_close_mid_body_retried(void **state)
{
	struct step s[] = {
		{ SEND_PARTIAL_CLOSE,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-65535/70000", 65536, 0 },
		{ SEND, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-65535/70000", 65536,
		  0 },
	};
	struct fixture *f = fixture_new(s, 2, 5);

	assert_int_equal(ranged_get(f, 0, 65536, 70000, NULL), 0);
	assert_pattern(&f->mem, 0, 65536);
	assert_int_equal(f->mem.resets, 2); /* the short attempt's bytes were discarded */
	assert_int_equal(f->stats.retries, 1);
	fixture_free(f);
}

static void test_retries_exhausted(void **state)
{
	struct step s[] = {
		{ SEND, "HTTP/1.1 500 Internal", 0, 0 },
		{ SEND, "HTTP/1.1 502 Bad Gateway", 0, 0 },
		{ SEND, "HTTP/1.1 503 Unavailable", 0, 0 },
		{ SEND, "HTTP/1.1 504 Timeout", 0, 0 },
	};
	struct fixture *f = fixture_new(s, 4, 5);

	assert_int_equal(ranged_get(f, 0, 10, 10, NULL), -EIO);
	assert_int_equal(f->stats.requests, 4);
	assert_int_equal(f->stats.failures, 1);
	assert_int_equal(f->mem.resets, 0);
	fixture_free(f);
}

static void test_status_mapping(void **state)
{
	struct {
		const char *head;
		const char *ver;
		int want;
	} cases[] = {
		{ "HTTP/1.1 404 Not Found", NULL, -ENOENT },
		{ "HTTP/1.1 404 Not Found", "v1", -ESTALE },
		{ "HTTP/1.1 412 Precondition Failed", "v1", -ESTALE },
		{ "HTTP/1.1 403 Forbidden", NULL, -EACCES },
		{ "HTTP/1.1 401 Unauthorized", NULL, -EACCES },
		{ "HTTP/1.1 416 Range Not Satisfiable", NULL, -EINVAL },
		{ "HTTP/1.1 200 OK", NULL, -EPROTO }, /* whole object instead of a range */
		{ "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/20", NULL, -EPROTO },
		{ "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-19/99", NULL, -EPROTO },
		{ "HTTP/1.1 206 Partial Content", NULL, -EPROTO },
		{ "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-19/20\r\nETag: \"v2\"",
		  "v1", -ESTALE },
		{ "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-19/20", "v1", -EPROTO },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct step s[] = { { SEND, cases[i].head, 20, 0 } };
		struct fixture *f = fixture_new(s, 1, 5);

		if (ranged_get(f, 0, 20, 20, cases[i].ver) != cases[i].want)
			fail_msg("case %zu (%s): wrong status", i, cases[i].head);
		assert_int_equal(f->stats.requests, 1); /* none of these is retried */
		assert_int_equal(f->mem.high, 0);	/* and no byte reached the sink */
		fixture_free(f);
	}
}

static void test_too_many_bytes(void **state)
{
	/* Content-Range claims 10 bytes but the body carries 20: refused, nothing past 10 kept. */
	struct step s[] = { { SEND, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/20",
			      20, 0 } };
	struct fixture *f = fixture_new(s, 1, 5);

	assert_int_equal(ranged_get(f, 0, 10, 20, NULL), -EPROTO);
	assert_true(f->mem.high <= 10);
	fixture_free(f);
}

static void test_stall_times_out(void **state)
{
	struct step s[] = {
		{ STALL, "", 0, 0 }, { STALL, "", 0, 0 }, { STALL, "", 0, 0 }, { STALL, "", 0, 0 }
	};
	struct fixture *f = fixture_new(s, 4, 1);
	struct http_req *r;

	assert_int_equal(http_req_new("GET", f->url, &r), 0);
	http_req_set_timeout(r, 300);
	http_req_set_sink(r, &f->sink);
	assert_int_equal(http_perform(f->hc, r), -ETIMEDOUT);
	assert_int_equal(http_req_attempts(r), 4);
	http_req_free(r);
	fixture_free(f);
}

static void test_memory_body_and_limit(void **state)
{
	struct step s[] = { { SEND, "HTTP/1.1 200 OK\r\nX-Thing: one\r\nx-thing: two", 3000, 0 },
			    { SEND, "HTTP/1.1 200 OK", 3000, 0 } };
	struct fixture *f = fixture_new(s, 2, 5);
	struct http_req *r;

	assert_int_equal(http_req_new("GET", f->url, &r), 0);
	assert_int_equal(http_perform(f->hc, r), 0);
	assert_int_equal(http_req_body(r)->len, 3000);
	assert_string_equal(http_req_header(r, "X-THING"), "two");
	assert_null(http_req_header(r, "missing"));
	assert_int_equal(http_req_status(r), 200);
	http_req_free(r);

	assert_int_equal(http_req_new("GET", f->url, &r), 0);
	http_req_set_body_max(r, 1000);
	assert_int_equal(http_perform(f->hc, r), -EMSGSIZE);
	http_req_free(r);
	fixture_free(f);
}

static int prepare_calls;

static int prepare_auth(void *ctx, struct http_req *r)
{
	char v[32];

	prepare_calls++;
	snprintf(v, sizeof(v), "Bearer t%d", prepare_calls);
	return http_req_set_attempt_header(r, "Authorization", v);
}

static void test_prepare_each_attempt(void **state)
{
	struct step s[] = { { SEND, "HTTP/1.1 503 Busy", 0, 0 },
			    { SEND, "HTTP/1.1 200 OK", 5, 0 } };
	struct fixture *f = fixture_new(s, 2, 5);
	struct http_req *r;

	prepare_calls = 0;
	assert_int_equal(http_req_new("GET", f->url, &r), 0);
	http_req_set_prepare(r, prepare_auth, NULL);
	assert_int_equal(http_perform(f->hc, r), 0);
	assert_int_equal(prepare_calls, 2);
	assert_non_null(strstr(f->srv.last_request, "Authorization: Bearer t2\r\n"));
	assert_null(strstr(f->srv.last_request, "Bearer t1"));
	http_req_free(r);
	fixture_free(f);
}

static void test_refused(void **state)
{
	struct http_opts o = { .backoff_base_ms = 1, .backoff_max_ms = 2, .max_attempts = 2 };
	struct http_client *hc;
	struct http_req *r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	char url[64];

	/* a port that was just free: bind, read the number, close */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(a.sin_port));
	assert_int_equal(http_client_new(&o, &hc), 0);
	assert_int_equal(http_req_new("GET", url, &r), 0);
	assert_int_equal(http_perform(hc, r), -ECONNREFUSED);
	assert_int_equal(http_req_attempts(r), 2);
	http_req_free(r);
	http_client_free(hc);
}

static void test_bad_input(void **state)
{
	struct http_req *r;

	assert_int_equal(http_req_new("GET", "ftp://x/y", &r), -EINVAL);
	assert_int_equal(http_req_new("GET", "http://x/y\r\nEvil: 1", &r), -EINVAL);
	assert_int_equal(http_req_new("GET", "http://x/y", &r), 0);
	assert_int_equal(http_req_add_header(r, "X-A", "b\r\nEvil: 1"), -EINVAL);
	assert_int_equal(http_req_add_header(r, "X:A", "b"), -EINVAL);
	assert_int_equal(http_req_add_header(r, "X-A", "b"), 0);
	http_req_free(r);
}

/* Many parallel requests on one client all complete, each exactly once. */
struct count_ctx {
	int done;
	int ok;
};

static void count_done(void *ctx, struct http_req *r, int status)
{
	struct count_ctx *c = ctx;

	c->done++;
	if (status == 0)
		c->ok++;
}

static void test_parallel_submit(void **state)
{
	struct step s[MAX_STEPS];
	struct fixture *f;
	struct http_req *r[MAX_STEPS];
	struct count_ctx cc = { 0, 0 };

	for (int i = 0; i < MAX_STEPS; i++)
		s[i] = (struct step){ SEND, "HTTP/1.1 200 OK", 100, 0 };
	f = fixture_new(s, MAX_STEPS, 5);
	for (int i = 0; i < MAX_STEPS; i++) {
		assert_int_equal(http_req_new("GET", f->url, &r[i]), 0);
		assert_int_equal(http_submit(f->hc, r[i], count_done, &cc), 0);
	}
	assert_int_equal(http_submit(f->hc, r[0], count_done, &cc), -EBUSY);
	for (int spins = 0; cc.done < MAX_STEPS && spins < 2000; spins++)
		http_client_run(f->hc, 10);
	assert_int_equal(cc.done, MAX_STEPS);
	assert_int_equal(cc.ok, MAX_STEPS);
	assert_int_equal(http_client_inflight(f->hc), 0);
	for (int i = 0; i < MAX_STEPS; i++)
		http_req_free(r[i]);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_should_retry),
		cmocka_unit_test(test_content_range),
		cmocka_unit_test(test_ranged_ok),
		cmocka_unit_test(test_503_twice_then_ok),
		cmocka_unit_test(test_close_mid_body_retried),
		cmocka_unit_test(test_retries_exhausted),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_too_many_bytes),
		cmocka_unit_test(test_stall_times_out),
		cmocka_unit_test(test_memory_body_and_limit),
		cmocka_unit_test(test_prepare_each_attempt),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_parallel_submit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
