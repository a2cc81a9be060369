/* http: libcurl multi-handle client with checked ranged GETs, retries and shared counters. */
#include "common/http_int.h"

#include <curl/curl.h>
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

struct http_client {
	CURLM *multi;
	struct http_opts opts;
	CURL **pool; /* idle easy handles, reused so connections and TLS sessions stay warm */
	size_t npool;
	size_t pool_cap;
	struct http_req *inflight_head;
	struct http_req *retry_head;
	int inflight;
	uint64_t rng;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_global_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define STAT_ADD(c, field, n)                                           \
	do {                                                            \
		if ((c)->opts.stats)                                    \
			atomic_fetch_add(&(c)->opts.stats->field, (n)); \
	} while (0)

static void stat_inflight(struct http_client *c, int delta)
{
	if (!c->opts.stats)
		return;
	if (delta > 0)
		atomic_fetch_add(&c->opts.stats->inflight, 1);
	else
		atomic_fetch_sub(&c->opts.stats->inflight, 1);
}

/* Strips W/ and surrounding quotes from an ETag-like value into out. */
static void etag_core(const char *v, char *out, size_t outsz)
{
	size_t n;

	if (strncmp(v, "W/", 2) == 0)
		v += 2;
	n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* ---- curl callbacks (run inside curl_multi_perform) ---- */

static void set_error(struct http_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct http_req *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n, nl, vl;
	const char *colon, *val, *end = data + len;
	char name[128];

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, say): forget the previous one's headers. */
		const char *sp = memchr(data, ' ', len);

		buf_reset(&r->resp_headers);
		r->status = 0;
		if (sp && end - sp >= 4 && sp[1] >= '1' && sp[1] <= '5' && sp[2] >= '0' &&
		    sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
			r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		return len;
	}
	while (end > data && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (end == data)
		return len; /* the blank line that ends the headers */
	colon = memchr(data, ':', (size_t)(end - data));
	if (!colon)
		return len; /* obs-fold or junk: ignored */
	nl = (size_t)(colon - data);
	if (nl == 0 || nl >= sizeof(name))
		return len;
	for (size_t i = 0; i < nl; i++) {
		char ch = data[i];

		name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	name[nl] = '\0';
	val = colon + 1;
	while (val < end && (*val == ' ' || *val == '\t'))
		val++;
	vl = (size_t)(end - val);
	if (memchr(val, '\0', vl))
		goto bad;
	if (buf_append(&r->resp_headers, name, nl + 1) || buf_append(&r->resp_headers, val, vl) ||
	    buf_append(&r->resp_headers, "", 1))
		goto bad;
	return len;
bad:
	r->abort_err = -EPROTO;
	set_error(r, "response headers malformed or over %d bytes", RESP_HEADERS_MAX);
	return 0;
}

/* Checks a 2xx response against what the request requires. Returns 0 or the error to fail with. */
static int check_response(struct http_req *r)
{
	if (r->ver_name) {
		const char *got = http_req_header(r, r->ver_name);
		char a[256], b[256];

		if (!got) {
			set_error(r, "response lacks the pinned version header %s", r->ver_name);
			return -EPROTO;
		}
		etag_core(got, a, sizeof(a));
		etag_core(r->ver_value, b, sizeof(b));
		if (strcmp(a, b) != 0) {
			set_error(r, "response is for version %s=%s, not the pinned %s",
				  r->ver_name, a, b);
			return -ESTALE;
		}
	}
	if (r->ranged) {
		const char *cr = http_req_header(r, "content-range");
		uint64_t s, e, t;

		if (r->status != 206) {
			set_error(r,
				  "HTTP %ld to a ranged GET of bytes %" PRIu64 "-%" PRIu64
				  " (206 expected)",
				  r->status, r->r_off, r->r_off + r->r_len - 1);
			return -EPROTO;
		}
		if (!cr || http_parse_content_range(cr, &s, &e, &t)) {
			set_error(r, "missing or malformed Content-Range '%s'", cr ? cr : "");
			return -EPROTO;
		}
		if (s != r->r_off || e != r->r_off + r->r_len - 1 ||
		    (r->r_total != UINT64_MAX && t != r->r_total)) {
			set_error(r,
				  "Content-Range '%s' does not match the range asked for (bytes "
				  "%" PRIu64 "-%" PRIu64 "/%" PRIu64 ")",
				  cr, r->r_off, r->r_off + r->r_len - 1, r->r_total);
			return -EPROTO;
		}
	}
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n;
	int rc;

	if (r->status < 200 || r->status > 299) {
		/* An error body: keep the start for the log line, drop the rest. */
		if (r->body.len < ERROR_BODY_MAX) {
			size_t room = ERROR_BODY_MAX - r->body.len;

			buf_append(&r->body, data, len < room ? len : room);
		}
		return len;
	}
	if (!r->checked) {
		r->checked = true;
		rc = check_response(r);
		if (rc) {
			r->abort_err = rc;
			return 0;
		}
	}
	if (r->ranged && len > r->r_len - r->body_bytes) {
		set_error(r, "server sent more than the %" PRIu64 " bytes asked for", r->r_len);
		r->abort_err = -EPROTO;
		return 0;
	}
	if (r->has_sink) {
		if (!r->sink_live) {
			r->sink_live = true;
			if (r->sink.reset && (rc = r->sink.reset(r->sink.ctx)) != 0) {
				set_error(r, "sink reset failed: %s", strerror(-rc));
				r->abort_err = rc;
				return 0;
			}
		}
		rc = r->sink.write(r->sink.ctx, r->body_bytes, data, len);
		if (rc) {
			set_error(r, "sink write failed: %s", strerror(-rc));
			r->abort_err = rc;
			return 0;
		}
	} else {
		rc = buf_append(&r->body, data, len);
		if (rc) {
			set_error(r, "response body over %zu bytes", r->body_max);
			r->abort_err = rc == -EMSGSIZE ? -EMSGSIZE : rc;
			return 0;
		}
	}
	r->body_bytes += len;
	if (r->client)
		STAT_ADD(r->client, bytes_in, len);
	return len;
}

/* ---- attempts ---- */

static int build_slist(struct http_req *r)
{
	struct curl_slist *l = NULL, *t;
	char range[96];

	curl_slist_free_all(r->slist);
	r->slist = NULL;
#define ADD(s)                                 \
	do {                                   \
		t = curl_slist_append(l, (s)); \
		if (!t)                        \
			goto nomem;            \
		l = t;                         \
	} while (0)
	for (size_t i = 0; i < r->nheaders; i++)
		ADD(r->headers[i]);
	for (size_t i = 0; i < r->nattempt_headers; i++)
		ADD(r->attempt_headers[i]);
	if (r->ranged) {
		snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, r->r_off,
			 r->r_off + r->r_len - 1);
		ADD(range);
	}
	ADD("Expect:"); /* no 100-continue round trip */
#undef ADD
	r->slist = l;
	return 0;
nomem:
	curl_slist_free_all(l);
	return -ENOMEM;
}

static CURL *easy_get(struct http_client *c)
{
	if (c->npool)
		return c->pool[--c->npool];
	return curl_easy_init();
}

static void easy_put(struct http_client *c, CURL *e)
{
	if (!e)
		return;
	if (c->npool == c->pool_cap) {
		size_t cap = c->pool_cap ? c->pool_cap * 2 : 16;
		CURL **p = realloc(c->pool, cap * sizeof(*p));

		if (!p) {
			curl_easy_cleanup(e);
			return;
		}
		c->pool = p;
		c->pool_cap = cap;
	}
	curl_easy_reset(e);
	c->pool[c->npool++] = e;
}

/* Sets up and adds one attempt. Returns 0 or an error that completes the request. */
static int start_attempt(struct http_client *c, struct http_req *r)
{
	const struct http_opts *o = &c->opts;
	CURL *e;
	int rc;

	http_free_list(r->attempt_headers, r->nattempt_headers);
	r->attempt_headers = NULL;
	r->nattempt_headers = 0;
	r->status = 0;
	r->body_bytes = 0;
	r->checked = false;
	r->sink_live = false;
	r->abort_err = 0;
	r->error[0] = '\0';
	r->curl_error[0] = '\0';
	buf_reset(&r->resp_headers);
	buf_free(&r->body);
	buf_init(&r->body, r->has_sink ? ERROR_BODY_MAX : r->body_max);
	if (r->prepare) {
		rc = r->prepare(r->prepare_ctx, r);
		if (rc) {
			set_error(r, "preparing the request failed: %s", strerror(-rc));
			return rc;
		}
	}
	rc = build_slist(r);
	if (rc)
		return rc;
	e = r->easy ? r->easy : easy_get(c);
	if (!e)
		return -ENOMEM;
	r->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->slist);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_limit);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 r->timeout_ms ? r->timeout_ms : o->request_timeout_ms);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, o->buffer_size);
	curl_easy_setopt(e, CURLOPT_VERBOSE, o->verbose ? 1L : 0L);
	if (o->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		if (r->req_body || strcmp(r->method, "POST") == 0 ||
		    strcmp(r->method, "PUT") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body ? r->req_body : "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)r->req_body_len);
		}
	}
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
		return -ENOMEM;
	r->attempts++;
	STAT_ADD(c, requests, 1);
	if (r->attempts > 1)
		STAT_ADD(c, retries, 1);
	return 0;
}

static void list_unlink(struct http_client *c, struct http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->inflight_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void retry_unlink(struct http_client *c, struct http_req *r)
{
	for (struct http_req **pp = &c->retry_head; *pp; pp = &(*pp)->retry_next) {
		if (*pp == r) {
			*pp = r->retry_next;
			break;
		}
	}
	r->retry_next = NULL;
	r->queued_retry = false;
}

/* Finishes a request for good and calls its done callback (which may free it). */
static void complete(struct http_client *c, struct http_req *r, int status)
{
	http_done_fn done = r->done;
	void *ctx = r->done_ctx;

	if (r->easy) {
		curl_multi_remove_handle(c->multi, r->easy);
		easy_put(c, r->easy);
		r->easy = NULL;
	}
	if (r->queued_retry)
		retry_unlink(c, r);
	list_unlink(c, r);
	r->client = NULL;
	c->inflight--;
	stat_inflight(c, -1);
	if (status) {
		STAT_ADD(c, failures, 1);
		if (!r->error[0])
			set_error(r, "%s", strerror(-status));
	}
	if (done)
		done(ctx, r, status);
}

static int transport_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return -EACCES;
	default: /* partial bodies, resets, receive/send errors, TLS hiccups */
		return -EIO;
	}
}

/* The final errno for a non-2xx status. */
static int status_errno(const struct http_req *r)
{
	long s = r->status;

	if (s == 404)
		return r->ver_name ? -ESTALE : -ENOENT;
	if (s == 412)
		return -ESTALE;
	if (s == 401 || s == 403)
		return -EACCES;
	if (s == 400 || s == 416)
		return -EINVAL;
	return -EIO;
}

static uint32_t next_rand(struct http_client *c)
{
	/* xorshift64*: jitter only, not security. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (uint32_t)((c->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static void schedule_retry(struct http_client *c, struct http_req *r)
{
	long wait = http_backoff_ms(r->attempts, c->opts.backoff_base_ms, c->opts.backoff_max_ms,
				    next_rand(c));
	const char *ra = http_req_header(r, "retry-after");
	struct http_req **pp;

	if (ra && ra[0] >= '0' && ra[0] <= '9' && strlen(ra) < 6) {
		long secs = strtol(ra, NULL, 10) * 1000;

		if (secs > wait)
			wait = secs < c->opts.backoff_max_ms ? secs : c->opts.backoff_max_ms;
	}
	if (r->easy) {
		curl_multi_remove_handle(c->multi, r->easy);
		easy_put(c, r->easy);
		r->easy = NULL;
	}
	r->retry_at_ms = now_ms() + (uint64_t)wait;
	r->queued_retry = true;
	for (pp = &c->retry_head; *pp && (*pp)->retry_at_ms <= r->retry_at_ms;
	     pp = &(*pp)->retry_next)
		;
	r->retry_next = *pp;
	*pp = r;
}

/* Decides what a finished attempt means: success, retry, or failure for good. */
static void attempt_done(struct http_client *c, struct http_req *r, CURLcode cc)
{
	int transport, err;

	if (r->abort_err) {
		complete(c, r, r->abort_err);
		return;
	}
	transport = transport_errno(cc);
	if (!transport && r->status >= 200 && r->status <= 299) {
		if (!r->checked) { /* no body arrived (HEAD, or an empty response) */
			r->checked = true;
			err = check_response(r);
			if (err) {
				complete(c, r, err);
				return;
			}
		}
		if (!r->ranged || r->body_bytes == r->r_len) {
			complete(c, r, 0);
			return;
		}
		set_error(r, "short body: %" PRIu64 " of %" PRIu64 " bytes", r->body_bytes,
			  r->r_len);
		transport = -EIO;
	} else if (transport) {
		set_error(r, "%s", r->curl_error[0] ? r->curl_error : curl_easy_strerror(cc));
	} else {
		set_error(r, "HTTP %ld", r->status);
	}
	if (http_should_retry(transport ? 0 : r->status, transport) &&
	    r->attempts < c->opts.max_attempts) {
		log_debug("http: %s %s: %s; retrying (attempt %d of %d)", r->method, r->url,
			  r->error, r->attempts + 1, c->opts.max_attempts);
		schedule_retry(c, r);
		return;
	}
	err = transport ? transport : status_errno(r);
	if (r->attempts > 1) {
		size_t l = strlen(r->error);

		snprintf(r->error + l, sizeof(r->error) - l, " after %d attempts", r->attempts);
	}
	complete(c, r, err);
}

/* ---- client ---- */

int http_client_new(const struct http_opts *opts, struct http_client **out)
{
	struct http_client *c;
	struct timespec ts;

	*out = NULL;
	pthread_once(&curl_once, curl_global_once);
	if (curl_init_rc != CURLE_OK)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (opts)
		c->opts = *opts;
	if (!c->opts.connect_timeout_ms)
		c->opts.connect_timeout_ms = 5000;
	if (!c->opts.low_speed_time_s)
		c->opts.low_speed_time_s = 20;
	if (!c->opts.low_speed_limit)
		c->opts.low_speed_limit = 1024;
	if (c->opts.max_attempts <= 0)
		c->opts.max_attempts = 6;
	if (!c->opts.backoff_base_ms)
		c->opts.backoff_base_ms = 100;
	if (!c->opts.backoff_max_ms)
		c->opts.backoff_max_ms = 5000;
	if (c->opts.max_host_conns <= 0)
		c->opts.max_host_conns = 64;
	if (!c->opts.buffer_size)
		c->opts.buffer_size = 1L << 20;
	c->multi = curl_multi_init();
	if (!c->multi) {
		free(c);
		return -EIO;
	}
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->opts.max_host_conns);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->opts.max_host_conns * 2);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
		 (uint64_t)(uintptr_t)c;
	if (!c->rng)
		c->rng = 88172645463325252ULL;
	*out = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	while (c->inflight_head)
		http_cancel(c, c->inflight_head);
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->pool);
	curl_multi_cleanup(c->multi);
	free(c);
}

int http_submit(struct http_client *c, struct http_req *r, http_done_fn done, void *ctx)
{
	int rc;

	if (r->client)
		return -EBUSY;
	r->client = c;
	r->done = done;
	r->done_ctx = ctx;
	r->attempts = 0;
	r->next = c->inflight_head;
	r->prev = NULL;
	if (c->inflight_head)
		c->inflight_head->prev = r;
	c->inflight_head = r;
	c->inflight++;
	stat_inflight(c, 1);
	rc = start_attempt(c, r);
	if (rc)
		complete(c, r, rc);
	return 0;
}

void http_cancel(struct http_client *c, struct http_req *r)
{
	if (r->client != c)
		return;
	set_error(r, "cancelled");
	complete(c, r, -ECANCELED);
}

static void start_due_retries(struct http_client *c)
{
	uint64_t now = now_ms();

	while (c->retry_head && c->retry_head->retry_at_ms <= now) {
		struct http_req *r = c->retry_head;
		int rc;

		c->retry_head = r->retry_next;
		r->retry_next = NULL;
		r->queued_retry = false;
		rc = start_attempt(c, r);
		if (rc)
			complete(c, r, rc);
	}
}

static void reap(struct http_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		struct http_req *r = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		if (!r->status) {
			long code = 0;

			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			r->status = code;
		}
		attempt_done(c, r, m->data.result);
	}
}

int http_client_run(struct http_client *c, int timeout_ms)
{
	int running = 0, numfds = 0;
	long ct = -1;

	start_due_retries(c);
	curl_multi_perform(c->multi, &running);
	reap(c);
	if (c->retry_head) {
		uint64_t now = now_ms(), due = c->retry_head->retry_at_ms;
		int wait = due > now ? (int)(due - now) : 0;

		if (wait < timeout_ms)
			timeout_ms = wait;
	}
	curl_multi_timeout(c->multi, &ct);
	if (ct >= 0 && ct < timeout_ms)
		timeout_ms = (int)ct;
	if (timeout_ms > 0)
		curl_multi_poll(c->multi, NULL, 0, timeout_ms, &numfds);
	curl_multi_perform(c->multi, &running);
	reap(c);
	start_due_retries(c);
	return c->inflight;
}

void http_client_wakeup(struct http_client *c)
{
	curl_multi_wakeup(c->multi);
}

struct perform_state {
	bool done;
	int status;
};

static void perform_done(void *ctx, struct http_req *r, int status)
{
	struct perform_state *ps = ctx;

	ps->done = true;
	ps->status = status;
}

int http_perform(struct http_client *c, struct http_req *r)
{
	struct perform_state ps = { false, 0 };
	int rc = http_submit(c, r, perform_done, &ps);

	if (rc)
		return rc;
	while (!ps.done)
		http_client_run(c, 1000);
	return ps.status;
}

int http_client_inflight(const struct http_client *c)
{
	return c->inflight;
}

static int fd_sink_write(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct http_fd_sink *s = ctx;
	const char *p = data;

	while (len) {
		ssize_t n = pwrite(s->fd, p, len, (off_t)(s->base + off));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

void http_sink_fd(struct http_sink *sink, struct http_fd_sink *ctx)
{
	sink->reset = NULL;
	sink->write = fd_sink_write;
	sink->ctx = ctx;
}
