/* s3_xml: parsers (expat) for S3's XML answers: ListObjectsV2 pages and <Error> bodies, plus the
 * value formats they carry (ETags, ISO 8601 times). All input is untrusted and bounded. */
#ifndef HOARDFS_S3_XML_H
#define HOARDFS_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

#define S3_XML_DOC_MAX	   (16 * 1024 * 1024) /* a 1000-key page is well under 2 MiB */
#define S3_XML_ENTRIES_MAX 10000 /* objects + prefixes in one page (S3 sends <= 1000) */
#define S3_XML_TOKEN_MAX   1024	 /* a continuation token */
#define S3_XML_DEPTH_MAX   16	 /* element nesting */

/* One listed object (is_prefix false) or common prefix (is_prefix true, only obj.name set). */
struct s3_list_entry {
	struct store_object obj;
	bool is_prefix;
};

/* One parsed ListObjectsV2 page. Owned by the caller; release with s3_xml_page_free(). */
struct s3_list_page {
	struct s3_list_entry *entries; /* in document order */
	size_t n;
	bool truncated;			       /* IsTruncated: more pages follow */
	char next_token[S3_XML_TOKEN_MAX + 1]; /* NextContinuationToken ("" if none) */
	bool url_encoded;		       /* EncodingType was "url": names were decoded */
};

/*
 * Parses a ListObjectsV2 response (xml[0..len), need not be NUL-terminated) into *out. Names are
 * checked (1..URL_KEY_MAX bytes of valid UTF-8 after decoding, no NUL); every object needs Key,
 * Size and ETag; a DOCTYPE or entity declaration is refused. When the response says
 * <EncodingType>url</EncodingType>, Key and Prefix values are percent-decoded ('+' = space).
 * Returns 0; -EINVAL for a NULL argument; -EPROTO for anything malformed, truncated, empty,
 * larger than S3_XML_DOC_MAX, with more than S3_XML_ENTRIES_MAX entries, a field over its bound,
 * an unexpected root element, or IsTruncated true without a NextContinuationToken; -ENOMEM.
 * On failure *out is empty (nothing to free).
 */
int s3_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out);

/* Frees a page's entries; the page is empty afterwards. NULL is allowed. */
void s3_xml_page_free(struct s3_list_page *p);

/*
 * Parses an S3 error body "<Error><Code>..</Code><Message>..</Message>..</Error>" into code and
 * msg (each truncated to fit and NUL-terminated, non-printable bytes replaced by '?', "" when
 * absent), for log lines. Returns 0, -EINVAL (NULL or zero-sized outputs), -EPROTO (not an
 * <Error> document, malformed, or larger than 64 KiB).
 */
int s3_xml_parse_error(const char *xml, size_t len, char *code, size_t codesz, char *msg,
		       size_t msgsz);

/*
 * Sets obj->version from an ETag header or element value: surrounding quotes and a "W/" prefix
 * are removed. A single-part ETag (32 hex digits, no '-') is the object's MD5, which also fills
 * obj->md5 and has_md5. Returns 0 or -EPROTO (empty, longer than STORE_VERSION_MAX, or holding a
 * quote, a control character or a space).
 */
int s3_xml_set_etag(struct store_object *obj, const char *etag, size_t len);

/*
 * Parses an ISO 8601 UTC time as S3 writes it: "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (fractions up to
 * nanoseconds). Returns 0 or -EPROTO.
 */
int s3_xml_parse_time(const char *s, size_t len, int64_t *sec, uint32_t *nsec);

/* Parses an HTTP date (IMF-fixdate, "Wed, 25 Nov 2026 22:39:13 GMT", as in Last-Modified).
 * Returns 0 or -EPROTO. */
int s3_xml_parse_http_date(const char *s, int64_t *sec);

#endif
