/* url: bucket URLs (gs://, s3://) and RFC 3986 percent-encoding. */
#ifndef HOARDFS_URL_H
#define HOARDFS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

enum url_scheme { URL_GS = 1, URL_S3 = 2 };

#define URL_BUCKET_MAX 222  /* GCS allows dotted names up to 222 bytes; S3 up to 63 */
#define URL_KEY_MAX    1024 /* the longest object name either store accepts, in bytes */

/* A parsed bucket URL. `prefix` never starts with '/' and is either empty or ends with '/'. */
struct bucket_url {
	enum url_scheme scheme;
	char bucket[URL_BUCKET_MAX + 1];
	char prefix[URL_KEY_MAX + 1];
};

/*
 * Parses "gs://BUCKET[/PREFIX]" or "s3://BUCKET[/PREFIX]". Repeated and trailing slashes in the
 * prefix are normalised ("gs://b//m/x/" gives prefix "m/x/"). Returns 0, or -EINVAL for another
 * scheme, an empty or invalid bucket name, a prefix with "." or ".." segments, control characters,
 * or invalid UTF-8; -ENAMETOOLONG when a part is too long.
 */
int url_parse_bucket(const char *s, struct bucket_url *out);

/* Checks a bucket name against the rules both stores share (3-222 chars of [a-z0-9._-], starting
 * and ending with a letter or digit; S3 also allows upper case for legacy buckets). */
bool url_bucket_name_valid(const char *name);

/* Writes "gs://bucket/prefix" for `u` into `b`. Returns 0 or a buf_append() error. */
int url_format_bucket(const struct bucket_url *u, struct buf *b);

/* The scheme's name: "gs" or "s3". */
const char *url_scheme_name(enum url_scheme s);

/*
 * Appends `s` percent-encoded: every byte but the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~)
 * becomes %XX (upper-case hex). With keep_slash, '/' is kept as is (S3 paths); without, it is
 * encoded as %2F (GCS object names in a path, query values). Returns 0 or a buf_append() error.
 */
int url_encode(struct buf *b, const char *s, bool keep_slash);

/*
 * Decodes %XX escapes (and, with plus_is_space, '+' as a space) from `s` into `b`. Returns 0,
 * -EINVAL for a malformed escape or an encoded NUL, or a buf_append() error.
 */
int url_decode(struct buf *b, const char *s, bool plus_is_space);

/* True when `s` (of `len` bytes) is valid UTF-8 without overlong forms or surrogates. */
bool url_utf8_valid(const char *s, size_t len);

#endif
