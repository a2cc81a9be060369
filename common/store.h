/* store: the one object-store API (list / stat / read range) that GCS and S3 both implement, so
 * the daemon never knows which store it talks to. */
#ifndef HOARDFS_STORE_H
#define HOARDFS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/http.h"
#include "common/url.h"

#define STORE_VERSION_MAX  127 /* longest generation / ETag text we keep */
#define STORE_ENDPOINT_MAX 511

/* Where and how to reach one bucket. Strings are copied by store_open(). */
struct store_config {
	enum url_scheme scheme; /* URL_GS or URL_S3 */
	const char *bucket;
	/*
	 * Base URL ("http://127.0.0.1:9000", "https://storage.googleapis.com"), or NULL for the
	 * environment's: STORAGE_EMULATOR_HOST for GCS, AWS_ENDPOINT_URL(_S3) for S3, else the
	 * public service.
	 */
	const char *endpoint;
	bool anonymous;	     /* send no credentials */
	const char *region;  /* S3: NULL = AWS_REGION / AWS_DEFAULT_REGION / profile / us-east-1 */
	const char *profile; /* S3: NULL = AWS_PROFILE or "default" */
	/* S3 addressing: 0 = auto (path-style with a custom endpoint, virtual-hosted on AWS),
	 * 1 = path-style, 2 = virtual-hosted. */
	int s3_addressing;
	/* Settings for the store's own HTTP clients (credential refreshes). May be NULL. */
	const struct http_opts *http;
};

/* Metadata of one object (or, in listings, one common prefix: only `name` is set). */
struct store_object {
	char name[URL_KEY_MAX + 1]; /* full object name in the bucket */
	uint64_t size;		    /* bytes as stored (gzip objects are not decompressed) */
	char version[STORE_VERSION_MAX +
		     1];   /* GCS generation (decimal) or S3 ETag (quotes removed) */
	int64_t mtime_sec; /* last modification, Unix time */
	uint32_t mtime_nsec;
	bool has_crc32c;
	uint32_t crc32c; /* GCS only */
	bool has_md5;
	uint8_t md5[16];	   /* GCS md5Hash, or an S3 single-part ETag (which is the MD5) */
	char content_encoding[32]; /* "" or e.g. "gzip" */
};

struct store;

/*
 * Called once per object (is_prefix false) and once per common prefix (is_prefix true, only
 * obj->name set, ending with the delimiter), in the order the store lists them. `obj` is valid
 * only during the call. Return 0 to go on, or a negative errno to stop the listing with it.
 */
typedef int (*store_list_fn)(void *ctx, const struct store_object *obj, bool is_prefix);

/*
 * Creates a client for one bucket: resolves the endpoint and credentials (GCS: service-account key,
 * gcloud application-default credentials, metadata server, anonymous; S3: AWS_* variables, then
 * profiles). Does no network I/O beyond what finding credentials needs. Returns 0, -EINVAL for a
 * bad config, -ENOKEY when credentials were configured but cannot be read or parsed, -ENOMEM.
 * The store is thread-safe: any number of threads may use it, each with its own http_client.
 */
int store_open(const struct store_config *cfg, struct store **out);

/* Frees a store. NULL is allowed. No request built by it may still be in flight. */
void store_free(struct store *st);

/* "gs://bucket (endpoint http://...; auth: service account x@y)" for log lines. Valid for the
 * life of the store. */
const char *store_describe(const struct store *st);

/*
 * Lists objects whose names start with `prefix` ("" for all), following every page. With a
 * delimiter (usually "/"), names that continue past it are folded into common prefixes.
 * `max_results` > 0 stops after that many entries (objects plus prefixes). Uses `hc`
 * synchronously. Returns 0, an http error (see http.h), -EPROTO for a malformed listing, or fn's.
 */
int store_list(struct store *st, struct http_client *hc, const char *prefix, const char *delimiter,
	       uint32_t max_results, store_list_fn fn, void *ctx);

/* Reads one object's metadata. Returns 0, -ENOENT, or an http error. */
int store_stat(struct store *st, struct http_client *hc, const char *name,
	       struct store_object *out);

/*
 * Builds (does not submit) a checked, pinned ranged GET of [off, off+len) of object `name` at
 * `version`, whose body goes to `sink`. `size` is the object's size (checked against the
 * Content-Range total). The caller submits it with http_submit() or http_perform() and frees it.
 * A response for any other version completes with -ESTALE. Returns 0, -EINVAL (len 0, range past
 * size), -ENOMEM.
 */
int store_read_req(struct store *st, const char *name, const char *version, uint64_t size,
		   uint64_t off, uint64_t len, const struct http_sink *sink, struct http_req **out);

/* store_read_req() followed by http_perform() and http_req_free(). */
int store_read(struct store *st, struct http_client *hc, const char *name, const char *version,
	       uint64_t size, uint64_t off, uint64_t len, const struct http_sink *sink);

#endif
