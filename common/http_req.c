/* http_req: building an HTTP request, reading its result, and the pure helpers (backoff,
 * retry decisions, Content-Range). */
#include "common/http_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

/* ---- request construction ---- */

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

int http_req_new(const char *method, const char *url, struct http_req **out)
{
	struct http_req *r;

	*out = NULL;
	if (!method || !url || has_crlf(method) || has_crlf(url) ||
	    (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->method = strdup(method);
	r->url = strdup(url);
	if (!r->method || !r->url) {
		http_req_free(r);
		return -ENOMEM;
	}
	r->body_max = DEFAULT_BODY_MAX;
	buf_init(&r->resp_headers, RESP_HEADERS_MAX);
	buf_init(&r->body, r->body_max);
	*out = r;
	return 0;
}

void http_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void http_req_free(struct http_req *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->url);
	http_free_list(r->headers, r->nheaders);
	http_free_list(r->attempt_headers, r->nattempt_headers);
	free(r->req_body);
	free(r->ver_name);
	free(r->ver_value);
	curl_slist_free_all(r->slist);
	buf_free(&r->resp_headers);
	buf_free(&r->body);
	free(r);
}

static int list_add(char ***list, size_t *n, const char *name, const char *value)
{
	struct buf b;
	char **grown;

	if (!name || !value || !*name || has_crlf(name) || has_crlf(value) || strchr(name, ':'))
		return -EINVAL;
	buf_init(&b, 16384);
	if (buf_printf(&b, "%s: %s", name, value)) {
		buf_free(&b);
		return -EINVAL;
	}
	grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (!grown) {
		buf_free(&b);
		return -ENOMEM;
	}
	*list = grown;
	(*list)[(*n)++] = buf_steal(&b);
	return (*list)[*n - 1] ? 0 : -ENOMEM;
}

int http_req_add_header(struct http_req *r, const char *name, const char *value)
{
	return list_add(&r->headers, &r->nheaders, name, value);
}

int http_req_set_attempt_header(struct http_req *r, const char *name, const char *value)
{
	return list_add(&r->attempt_headers, &r->nattempt_headers, name, value);
}

int http_req_set_body(struct http_req *r, const void *body, size_t len)
{
	char *copy = malloc(len ? len : 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, body, len);
	free(r->req_body);
	r->req_body = copy;
	r->req_body_len = len;
	return 0;
}

void http_req_set_sink(struct http_req *r, const struct http_sink *sink)
{
	r->sink = *sink;
	r->has_sink = true;
}

void http_req_set_body_max(struct http_req *r, size_t max)
{
	r->body_max = max;
}

void http_req_expect_range(struct http_req *r, uint64_t off, uint64_t len, uint64_t total_size)
{
	r->ranged = len > 0;
	r->r_off = off;
	r->r_len = len;
	r->r_total = total_size;
}

int http_req_expect_version(struct http_req *r, const char *name, const char *value)
{
	char *n = strdup(name), *v = strdup(value);

	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	free(r->ver_name);
	free(r->ver_value);
	r->ver_name = n;
	r->ver_value = v;
	return 0;
}

void http_req_set_prepare(struct http_req *r, http_prepare_fn prepare, void *ctx)
{
	r->prepare = prepare;
	r->prepare_ctx = ctx;
}

void http_req_set_timeout(struct http_req *r, long ms)
{
	r->timeout_ms = ms;
}

const char *http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *http_req_url(const struct http_req *r)
{
	return r->url;
}

long http_req_status(const struct http_req *r)
{
	return r->status;
}

int http_req_attempts(const struct http_req *r)
{
	return r->attempts;
}

uint64_t http_req_body_bytes(const struct http_req *r)
{
	return r->body_bytes;
}

const struct buf *http_req_body(const struct http_req *r)
{
	return &r->body;
}

const char *http_req_error(const struct http_req *r)
{
	return r->error;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	const char *p = r->resp_headers.data, *end = p + r->resp_headers.len, *found = NULL;

	if (!p)
		return NULL;
	while (p < end) {
		const char *n = p, *v = p + strlen(p) + 1;

		if (strcasecmp(n, name) == 0)
			found = v;
		p = v + strlen(v) + 1;
	}
	return found;
}

/* ---- pure helpers ---- */

long http_backoff_ms(int retry, long base_ms, long max_ms, uint32_t rnd)
{
	long cap = base_ms;

	if (retry < 1)
		retry = 1;
	for (int i = 1; i < retry && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	if (cap <= 0)
		return 0;
	return (long)(rnd % ((uint32_t)cap + 1));
}

bool http_should_retry(long status, int transport)
{
	if (transport) {
		return transport == -EIO || transport == -ETIMEDOUT || transport == -ECONNREFUSED ||
		       transport == -EHOSTUNREACH || transport == -ECONNRESET;
	}
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

static int parse_u64_span(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -EPROTO;
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -EPROTO;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	*pp = p;
	*out = v;
	return 0;
}

int http_parse_content_range(const char *v, uint64_t *start, uint64_t *end, uint64_t *total)
{
	const char *p = v;

	if (!v || strncasecmp(p, "bytes ", 6) != 0)
		return -EPROTO;
	p += 6;
	while (*p == ' ')
		p++;
	if (parse_u64_span(&p, start) || *p++ != '-' || parse_u64_span(&p, end) || *p++ != '/')
		return -EPROTO;
	if (*p == '*') {
		*total = UINT64_MAX;
		p++;
	} else if (parse_u64_span(&p, total)) {
		return -EPROTO;
	}
	while (*p == ' ')
		p++;
	if (*p || *end < *start || (*total != UINT64_MAX && *end >= *total))
		return -EPROTO;
	return 0;
}
