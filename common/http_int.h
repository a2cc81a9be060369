/* http_int.h: the request object shared by http.c (the client, callbacks and retries) and
 * http_req.c (building requests, reading results, pure helpers). Private to them. */
#ifndef HOARDFS_HTTP_INT_H
#define HOARDFS_HTTP_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http.h"

#define ERROR_BODY_MAX	 4096
#define RESP_HEADERS_MAX (64 * 1024)
#define DEFAULT_BODY_MAX (1u << 20)

struct http_req {
	char *method;
	char *url;
	char **headers; /* "Name: value" sent on every attempt */
	size_t nheaders;
	char **attempt_headers; /* cleared before each prepare() */
	size_t nattempt_headers;
	char *req_body;
	size_t req_body_len;
	struct http_sink sink;
	bool has_sink;
	size_t body_max;
	bool ranged;
	uint64_t r_off, r_len, r_total;
	char *ver_name, *ver_value;
	http_prepare_fn prepare;
	void *prepare_ctx;
	long timeout_ms;

	/* While in flight: owned by the client's thread. */
	struct http_client *client;
	struct http_req *prev, *next; /* the client's in-flight list */
	struct http_req *retry_next;  /* the client's retry queue, sorted by retry_at */
	bool queued_retry;
	uint64_t retry_at_ms;
	CURL *easy;
	struct curl_slist *slist;
	http_done_fn done;
	void *done_ctx;
	int attempts;

	/* The current (or last) attempt's response. */
	long status;
	struct buf resp_headers; /* "name\0value\0" pairs, names lower-cased */
	struct buf body;	 /* memory body, or a bounded error body */
	uint64_t body_bytes;
	bool checked;	/* headers validated before the first body byte */
	bool sink_live; /* sink reset for this attempt */
	int abort_err;	/* why a callback aborted the transfer (not retried) */
	char error[320];
	char curl_error[CURL_ERROR_SIZE];
};

/* Frees n strings of list, and list. */
void http_free_list(char **list, size_t n);

#endif
