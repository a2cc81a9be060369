/* http: the HTTP layer on libcurl: one client (a curl multi handle and its connection pool) per
 * thread, checked ranged GETs streamed into a sink, retries with backoff, shared counters. */
#ifndef HOARDFS_HTTP_H
#define HOARDFS_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Counters shared by any number of clients (all updated atomically). */
struct http_stats {
	_Atomic uint64_t requests; /* attempts sent */
	_Atomic uint64_t retries;  /* attempts that were a retry of an earlier one */
	_Atomic uint64_t bytes_in; /* body bytes of 2xx responses received (all attempts) */
	_Atomic uint64_t
		failures; /* requests that failed for good (after retries, or not retryable) */
	_Atomic uint64_t inflight; /* requests submitted and not yet completed */
};

/* Client settings. Zero fields take the defaults given in brackets. */
struct http_opts {
	long connect_timeout_ms; /* [5000] TCP+TLS connect */
	long low_speed_time_s;	 /* [20] abort an attempt that moves < low_speed_limit B/s this long
				  */
	long low_speed_limit;	 /* [1024] bytes per second */
	long request_timeout_ms; /* [0 = none] whole-attempt cap; for small metadata requests */
	int max_attempts;	 /* [6] attempts per request, the first included */
	long backoff_base_ms;	 /* [100] first retry waits up to base, doubling per attempt */
	long backoff_max_ms;	 /* [5000] cap on one wait (also caps a server's Retry-After) */
	int max_host_conns;	 /* [64] connections per host in this client's pool */
	long buffer_size;	 /* [1 MiB] CURLOPT_BUFFERSIZE: bytes per write to the sink */
	struct http_stats *stats; /* [NULL] counters to update, shared; must outlive the client */
	bool verbose;		  /* curl's debug output on stderr */
	char ca_file[512];	  /* [""] PEM bundle of CAs to trust instead of the system's */
};

/*
 * Where a successful response's body goes instead of memory. Offsets are relative to the first
 * body byte. A retried request restarts its body: reset() is called before an attempt delivers
 * its first byte, so a sink may drop what an earlier failed attempt wrote.
 */
struct http_sink {
	int (*reset)(void *ctx);
	/* Stores bytes; return 0, or a negative errno to abort the request (not retried). */
	int (*write)(void *ctx, uint64_t off, const void *data, size_t len);
	void *ctx;
};

struct http_req;
struct http_client;

/* Called before every attempt of `req`: typically sets authorisation headers with
 * http_req_set_attempt_header(). Return 0, or a negative errno to fail the request. */
typedef int (*http_prepare_fn)(void *ctx, struct http_req *req);

/* Called once when `req` completes for good: status 0 on success or a negative errno (below).
 * Runs on the thread inside http_client_run()/http_perform(); the request still belongs to the
 * caller, who may free it inside the callback. */
typedef void (*http_done_fn)(void *ctx, struct http_req *req, int status);

/*
 * Errors a request completes with, after retries where they apply:
 *   0          2xx (206 with the exact Content-Range for ranged GETs) and every check passed
 *   -ENOENT    404 (on a request that is not pinned)
 *   -ESTALE    404 or 412 on a pinned request, or a response for another version ("version gone")
 *   -EACCES    401 or 403
 *   -EINVAL    400 or 416
 *   -EPROTO    a response that breaks its contract: 200 for a ranged GET, a wrong Content-Range,
 *              more body bytes than expected, a malformed header (not retried)
 *   -EMSGSIZE  an in-memory body over its limit
 *   -EIO       408/429/5xx, resets or short bodies still failing after max_attempts
 *   -ETIMEDOUT connect or low-speed timeouts still failing after max_attempts
 *   -ECONNREFUSED / -EHOSTUNREACH  nothing listening / name not resolved, after max_attempts
 *   -ECANCELED the client was freed or the request cancelled before it completed
 *   other      the sink's or the prepare callback's error
 */

/* Creates a request for `method` ("GET", "HEAD", "POST", "PUT", "DELETE") on an absolute URL.
 * Both strings are copied. Returns 0, -EINVAL, -ENOMEM. */
int http_req_new(const char *method, const char *url, struct http_req **out);

/* Frees a request that is not in flight (completed, or never submitted). NULL is allowed. */
void http_req_free(struct http_req *req);

/* Adds a header sent on every attempt ("Name", "value"; both copied). Returns 0, -EINVAL
 * (CR/LF in either), -ENOMEM. */
int http_req_add_header(struct http_req *req, const char *name, const char *value);

/* Sets a header for the coming attempt only; the list is cleared before each prepare() call. */
int http_req_set_attempt_header(struct http_req *req, const char *name, const char *value);

/* Sets a request body (copied). Returns 0 or -ENOMEM. */
int http_req_set_body(struct http_req *req, const void *body, size_t len);

/* Streams a successful response's body into `sink` (copied) instead of memory. */
void http_req_set_sink(struct http_req *req, const struct http_sink *sink);

/* Limit for an in-memory body [1 MiB]; a larger body fails the request with -EMSGSIZE. Error
 * bodies (non-2xx) are kept up to 4 KiB whatever this says, for log lines. */
void http_req_set_body_max(struct http_req *req, size_t max);

/* Makes this a checked ranged GET of [off, off+len): sends "Range: bytes=off-(off+len-1)" and
 * requires 206, "Content-Range: bytes off-(off+len-1)/TOTAL" and exactly len body bytes.
 * len must be > 0. If total_size is not UINT64_MAX, TOTAL must equal it. */
void http_req_expect_range(struct http_req *req, uint64_t off, uint64_t len, uint64_t total_size);

/* Pins the request to an object version: the response must carry header `name` equal to `value`
 * (compared exactly; for ETags, surrounding quotes and a W/ prefix are ignored), and a 404 or 412
 * completes with -ESTALE. Returns 0 or -ENOMEM. */
int http_req_expect_version(struct http_req *req, const char *name, const char *value);

/* Calls prepare(ctx, req) before each attempt. */
void http_req_set_prepare(struct http_req *req, http_prepare_fn prepare, void *ctx);

/* Makes a small request time out after `ms` per attempt (overrides the client default). */
void http_req_set_timeout(struct http_req *req, long ms);

/* The request's method and URL, as given to http_req_new(). */
const char *http_req_method(const struct http_req *req);
const char *http_req_url(const struct http_req *req);

/* Results of the last attempt, valid after completion until the request is freed. */
long http_req_status(const struct http_req *req);	  /* HTTP status, 0 if none arrived */
int http_req_attempts(const struct http_req *req);	  /* attempts made */
uint64_t http_req_body_bytes(const struct http_req *req); /* body bytes of the last attempt */
/* The value of response header `name` (case-insensitive; the last one wins) or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);
/* The in-memory body: a 2xx body when no sink was set, else (part of) an error body. */
const struct buf *http_req_body(const struct http_req *req);
/* One line describing how the request failed ("HTTP 503 after 6 attempts", "Content-Range
 * 'bytes 0-9/10' does not match the range asked for"), or "" if it did not. */
const char *http_req_error(const struct http_req *req);

/* Creates a client. Returns 0, -ENOMEM, -EIO (curl failed to initialise). */
int http_client_new(const struct http_opts *opts, struct http_client **out);

/* Completes every request still in flight with -ECANCELED (calling their done callbacks), then
 * frees the client. NULL is allowed. */
void http_client_free(struct http_client *c);

/* Starts `req` on the client; `done` is called later from http_client_run(). Not thread-safe:
 * only the thread that runs the client may submit. Returns 0, or -EBUSY if req is in flight;
 * a failure of the first prepare() is reported through `done`, not here. */
int http_submit(struct http_client *c, struct http_req *req, http_done_fn done, void *ctx);

/* Cancels a request in flight: its done callback runs with -ECANCELED before this returns. */
void http_cancel(struct http_client *c, struct http_req *req);

/* Drives transfers: waits up to timeout_ms for network activity, a due retry or a wakeup, moves
 * bytes, and runs done callbacks. Returns the number of requests still in flight (>= 0). */
int http_client_run(struct http_client *c, int timeout_ms);

/* Makes a concurrent or later http_client_run() return early. Thread-safe. */
void http_client_wakeup(struct http_client *c);

/* Runs `req` to completion on `c` (other requests on c progress meanwhile and may complete).
 * Returns the request's status as above. Must not be called from a done or prepare callback. */
int http_perform(struct http_client *c, struct http_req *req);

/* Requests currently in flight on this client. */
int http_client_inflight(const struct http_client *c);

/* Helpers for sinks and callers. */

/* A sink that pwrite()s the body into fd at base + offset (reset() does nothing). The struct
 * pointed to by ctx is the caller's and must outlive the request. */
struct http_fd_sink {
	int fd;
	uint64_t base;
};
void http_sink_fd(struct http_sink *sink, struct http_fd_sink *ctx);

/* The backoff before retry number `retry` (1 = first retry): a uniformly random wait in
 * [0, min(max_ms, base_ms * 2^(retry-1))] ("full jitter"); `rnd` is a uniform 32-bit value. */
long http_backoff_ms(int retry, long base_ms, long max_ms, uint32_t rnd);

/* Whether an attempt that ended with HTTP `status` (0 = none) and curl-level error `transport`
 * (0 = none, else one of the negative errnos in the table above) should be retried. */
bool http_should_retry(long status, int transport);

/* Parses "bytes START-END/TOTAL" ("*" total gives UINT64_MAX). Returns 0 or -EPROTO. */
int http_parse_content_range(const char *v, uint64_t *start, uint64_t *end, uint64_t *total);

#endif
