/* sigv4: AWS Signature Version 4 for header-based authorisation (canonical request, string to
 * sign, signing key, Authorization header), S3 flavour; pure functions, no network, no clock. */
#ifndef HOARDFS_SIGV4_H
#define HOARDFS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"

#define SIGV4_ALGORITHM	       "AWS4-HMAC-SHA256"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* The hex SHA-256 of an empty body. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_DATE_LEN	   16	       /* "20150830T123600Z" */
#define SIGV4_HEADERS_MAX  32	       /* headers a request may sign */
#define SIGV4_PARAMS_MAX   64	       /* query parameters a request may carry */
#define SIGV4_TEXT_MAX	   (64 * 1024) /* the longest canonical request / header we build */

/* One header to sign, as sent. Names are matched case-insensitively. */
struct sigv4_header {
	const char *name;
	const char *value;
};

/* The parts of a request that the signature covers. Strings are the caller's. */
struct sigv4_request {
	const char *method; /* "GET", "HEAD", ... */
	/*
	 * The path as sent on the wire, starting with '/', without the query. It is canonicalised
	 * S3-style: each byte is percent-decoded once and re-encoded with the RFC 3986 unreserved
	 * set ('/' kept), so an already encoded path ("/a%20b") and a raw one ("/a b") sign the
	 * same, and nothing is encoded twice. The path is not normalised ("//", "." and ".." are
	 * signed as given), as S3 requires.
	 */
	const char *path;
	/* The query string as sent, without '?', or NULL. Parameters are decoded, re-encoded and
	 * sorted by name, then value; a parameter without '=' signs as "name=". */
	const char *query;
	const struct sigv4_header
		*headers; /* every header to sign: at least "host" and "x-amz-date" */
	size_t nheaders;
	/* The hex SHA-256 of the body (SIGV4_EMPTY_SHA256 for none) or SIGV4_UNSIGNED_PAYLOAD. */
	const char *payload_hash;
};

/* Who signs, for which scope, and when. Strings are the caller's; the secret is never logged. */
struct sigv4_key {
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;   /* "us-east-1" */
	const char *service;  /* "s3" */
	const char *amz_date; /* the request's x-amz-date: "YYYYMMDDTHHMMSSZ" */
};

/*
 * Appends the canonical request for `r` to `out`. Returns 0; -EINVAL for a missing method or
 * path, a path not starting with '/', an empty or invalid header name, a malformed %-escape,
 * more than SIGV4_HEADERS_MAX headers or SIGV4_PARAMS_MAX parameters; -EMSGSIZE when the text
 * would pass SIGV4_TEXT_MAX or `out`'s own limit; -ENOMEM.
 */
int sigv4_canonical_request(const struct sigv4_request *r, struct buf *out);

/*
 * Appends the string to sign for `canonical_request` (a NUL-terminated text as made by
 * sigv4_canonical_request) to `out`. Returns 0, -EINVAL (a malformed amz_date, an empty region or
 * service), a buf_append() error, or -EIO if the hash failed.
 */
int sigv4_string_to_sign(const struct sigv4_key *k, const char *canonical_request, struct buf *out);

/*
 * Derives the signing key kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
 * service), "aws4_request") into out. Returns 0, -EINVAL (missing field, malformed amz_date),
 * -EIO if OpenSSL failed. The caller should wipe `out` when done.
 */
int sigv4_signing_key(const struct sigv4_key *k, uint8_t out[32]);

/*
 * Signs `r` and appends the Authorization header's value to `out`: "AWS4-HMAC-SHA256
 * Credential=ID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX". Returns 0
 * or any error of the three functions above.
 */
int sigv4_authorization(const struct sigv4_request *r, const struct sigv4_key *k, struct buf *out);

/* Formats `t` (Unix time, UTC) as an x-amz-date into out. Returns 0 or -ERANGE. */
int sigv4_format_date(time_t t, char out[SIGV4_DATE_LEN + 1]);

/* Writes the lower-case hex SHA-256 of data into out (65 bytes with the NUL). Returns 0 or -EIO. */
int sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
