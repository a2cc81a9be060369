/* gcs: the Google Cloud Storage JSON API store (list, object metadata, pinned ranged media GETs)
 * and the pure parsers of its responses. */
#ifndef HOARDFS_GCS_H
#define HOARDFS_GCS_H

#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

#define GCS_DEFAULT_ENDPOINT  "https://storage.googleapis.com"
#define GCS_PAGE_SIZE_DEFAULT 1000 /* maxResults per listing page (also the service's maximum) */
#define GCS_PAGE_TOKEN_MAX    4096 /* longest nextPageToken accepted */
#define GCS_LIST_BODY_MAX     (32u << 20) /* largest listing page read into memory */
#define GCS_OBJECT_BODY_MAX   (1u << 20)  /* largest object resource read into memory */

/*
 * The GCS store: gcs_open() is declared in store_impl.h and follows store_open()'s contract.
 * Endpoint: cfg->endpoint, else $STORAGE_EMULATOR_HOST, else GCS_DEFAULT_ENDPOINT (see
 * gcs_resolve_endpoint()). Credentials: auth_gcs_new(). $HOARDFS_LIST_PAGE_SIZE (1..1000) sets
 * maxResults per listing page; another value fails gcs_open() with -EINVAL. Requests ask only
 * for the fields hoardfs uses (fields=...; real GCS trims its answer, the emulator ignores it).
 * Listings follow every nextPageToken, drop common prefixes a server repeats on later pages, and
 * refuse (-EPROTO) entries outside the requested prefix or a page token that repeats. Media GETs
 * send "Accept-Encoding: gzip" so gzip-encoded objects arrive as stored (GCS ignores Range when it
 * decompresses), and are pinned with generation=G and checked against x-goog-generation.
 */

/*
 * Picks the endpoint base URL: `configured` if not NULL or "", else `emulator_host` (the value of
 * STORAGE_EMULATOR_HOST: "host:port" means "http://host:port", or a full http(s) URL) if not NULL
 * or "", else GCS_DEFAULT_ENDPOINT. Trailing slashes and a trailing "/storage/v1" are removed.
 * Writes a NUL-terminated URL into out (outsz bytes). Returns 0, -EINVAL (not http(s), empty host,
 * spaces, control characters, "?" or "#"), -ENAMETOOLONG (does not fit in out).
 */
int gcs_resolve_endpoint(const char *configured, const char *emulator_host, char *out,
			 size_t outsz);

/*
 * Parses one object resource (the JSON of a metadata GET, or one element of a listing's
 * "items"): name (required; 1..URL_KEY_MAX bytes of UTF-8 without NUL, CR or LF), size
 * (required; decimal string or integer), generation (required; decimal, into version), updated
 * (RFC 3339, into mtime; absent gives 0), md5Hash (base64 of 16 bytes), crc32c (base64 of 4
 * big-endian bytes), contentEncoding (at most 31 printable characters). Other members are
 * ignored. Returns 0 and fills *out, -EINVAL for a NULL argument, -EPROTO for anything malformed,
 * of the wrong JSON type, or out of bounds (*out is then unspecified).
 */
int gcs_parse_object(const char *json, size_t len, struct store_object *out);

/*
 * Parses one listing page ({"items":[...], "prefixes":[...], "nextPageToken":"..."}, every member
 * optional). The whole page is checked first; then fn is called for each entry, objects and
 * prefixes merged in name order, as store_list() documents (a prefix has only its name set).
 * nextPageToken (at most GCS_PAGE_TOKEN_MAX bytes) is copied to next_token ("" when absent;
 * next_token_size must exceed GCS_PAGE_TOKEN_MAX). Returns 0, -EINVAL for a bad argument, -EPROTO
 * for a malformed page (fn not called), -ENOMEM, or fn's error (it stops the page).
 */
int gcs_parse_list_page(const char *json, size_t len, store_list_fn fn, void *ctx, char *next_token,
			size_t next_token_size);

/*
 * Parses an RFC 3339 timestamp ("2024-05-01T12:34:56.789Z", "...+02:00"; fractions up to 9
 * digits, lower-case t/z allowed) into Unix seconds and nanoseconds. Returns 0 or -EINVAL.
 */
int gcs_parse_rfc3339(const char *s, int64_t *sec, uint32_t *nsec);

#endif
