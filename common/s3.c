/* s3: the S3 store (ListObjectsV2, HEAD, pinned ranged GET) with SigV4 on every attempt. */
#include "common/s3.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/auth_aws.h"
#include "common/log.h"
#include "common/num.h"
#include "common/s3_xml.h"
#include "common/sigv4.h"
#include "common/store_impl.h"

#define S3_HOST_MAX	   (URL_BUCKET_MAX + 256)
#define S3_PATH_MAX	   (STORE_ENDPOINT_MAX + 3 * URL_BUCKET_MAX + 2)
#define S3_DELIMITER_MAX   64
#define S3_EMPTY_PAGES_MAX 1000 /* consecutive empty "truncated" pages before we give up */
#define S3_URL_MAX	   (S3_HOST_MAX + S3_PATH_MAX + 12 * URL_KEY_MAX + 4 * S3_XML_TOKEN_MAX)

struct s3 {
	struct store head; /* must be first: store.c sees only this */
	/* Immutable after s3_open(), so any thread may read them (the prepare callback too). */
	char origin[S3_HOST_MAX + 16];	   /* "https://bucket.s3.us-east-1.amazonaws.com" */
	char host[S3_HOST_MAX + 1];	   /* the Host header we send and sign */
	char bucket_path[S3_PATH_MAX + 1]; /* "/bucket" (path-style) or "" (virtual), after any
					      path of the endpoint */
	char bucket[URL_BUCKET_MAX + 1];
	char region[AUTH_AWS_REGION_MAX + 1];
	bool path_style;
	bool anonymous;
	uint32_t page_size;
	struct auth_aws_creds creds; /* valid unless anonymous; wiped by s3_free() */
};

/* ---- endpoint and addressing ---- */

/* An endpoint split into parts. */
struct s3_endpoint {
	bool https;
	char authority[S3_HOST_MAX + 1];   /* host[:port] */
	char path[STORE_ENDPOINT_MAX + 1]; /* "" or "/base" (no trailing slash) */
	bool custom;			   /* not AWS's own endpoint */
};

static int s3_parse_endpoint(const char *url, struct s3_endpoint *ep)
{
	const char *p, *slash;
	size_t alen, plen;

	if (strncmp(url, "http://", 7) == 0) {
		ep->https = false;
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		ep->https = true;
		p = url + 8;
	} else {
		return -EINVAL;
	}
	if (strlen(url) > STORE_ENDPOINT_MAX)
		return -EINVAL;
	for (const char *c = url; *c; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("?#@\\", *c))
			return -EINVAL;
	}
	slash = strchr(p, '/');
	alen = slash ? (size_t)(slash - p) : strlen(p);
	if (alen == 0 || alen > S3_HOST_MAX - URL_BUCKET_MAX - 1)
		return -EINVAL;
	memcpy(ep->authority, p, alen);
	ep->authority[alen] = '\0';
	plen = slash ? strlen(slash) : 0;
	while (plen && slash[plen - 1] == '/')
		plen--;
	if (plen)
		memcpy(ep->path, slash, plen);
	ep->path[plen] = '\0';
	if (strstr(ep->path, "/./") || strstr(ep->path, "/../") || strstr(ep->path, "//"))
		return -EINVAL;
	return 0;
}

/* A bucket that can be the first label of a host name (no dots, no upper case, no '_'). */
static bool s3_dns_bucket(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return b[0] != '-' && b[n - 1] != '-';
}

static bool s3_region_valid(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > AUTH_AWS_REGION_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = r[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* Fills origin, host, bucket_path and path_style from the config. */
static int s3_setup_endpoint(struct s3 *s, const struct store_config *cfg)
{
	const char *src = cfg->endpoint, *what = "the endpoint option";
	char aws[STORE_ENDPOINT_MAX + 1];
	struct s3_endpoint ep;
	struct buf b;
	int rc, n;

	if (!src || !*src) {
		src = getenv("AWS_ENDPOINT_URL_S3");
		what = "AWS_ENDPOINT_URL_S3";
	}
	if (!src || !*src) {
		src = getenv("AWS_ENDPOINT_URL");
		what = "AWS_ENDPOINT_URL";
	}
	memset(&ep, 0, sizeof(ep));
	if (!src || !*src) {
		snprintf(aws, sizeof(aws), S3_DEFAULT_ENDPOINT_FMT, s->region);
		src = aws;
		what = "the default endpoint";
	}
	rc = s3_parse_endpoint(src, &ep);
	if (rc) {
		log_error("s3: %s \"%.200s\" is not an http(s)://host[:port][/path] URL", what,
			  src);
		return -EINVAL;
	}
	ep.custom = src != aws;
	switch (cfg->s3_addressing) {
	case 0:
		s->path_style = ep.custom || !s3_dns_bucket(cfg->bucket);
		break;
	case 1:
		s->path_style = true;
		break;
	case 2:
		if (!s3_dns_bucket(cfg->bucket)) {
			log_error("s3: bucket \"%s\" cannot be addressed virtual-hosted",
				  cfg->bucket);
			return -EINVAL;
		}
		s->path_style = false;
		break;
	default:
		return -EINVAL;
	}
	if (s->path_style)
		n = snprintf(s->host, sizeof(s->host), "%s", ep.authority);
	else
		n = snprintf(s->host, sizeof(s->host), "%s.%s", cfg->bucket, ep.authority);
	if (n < 0 || (size_t)n >= sizeof(s->host))
		return -EINVAL;
	snprintf(s->origin, sizeof(s->origin), "%s://%s", ep.https ? "https" : "http", s->host);
	buf_init(&b, sizeof(s->bucket_path) - 1);
	rc = buf_puts(&b, ep.path);
	if (!rc && s->path_style)
		rc = buf_puts(&b, "/");
	if (!rc && s->path_style)
		rc = url_encode(&b, cfg->bucket, false);
	if (!rc)
		memcpy(s->bucket_path, buf_cstr(&b), b.len + 1);
	buf_free(&b);
	return rc ? -EINVAL : 0;
}

/* ---- requests ---- */

/*
 * Appends an object name to a URL path: percent-encoded once, '/' kept, and "." or ".." segments
 * escaped (%2E) so that neither curl nor a proxy normalises them away.
 */
static int s3_append_key(struct buf *b, const char *key)
{
	const char *p = key;
	int rc = 0;

	while (!rc) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 1 && p[0] == '.') {
			rc = buf_puts(b, "%2E");
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			rc = buf_puts(b, "%2E%2E");
		} else {
			char seg[URL_KEY_MAX + 1];

			memcpy(seg, p, n);
			seg[n] = '\0';
			rc = url_encode(b, seg, false);
		}
		if (rc || !slash)
			break;
		rc = buf_puts(b, "/");
		p = slash + 1;
	}
	return rc;
}

static bool s3_key_valid(const char *key)
{
	size_t n = key ? strnlen(key, URL_KEY_MAX + 1) : 0;

	return n > 0 && n <= URL_KEY_MAX && url_utf8_valid(key, n);
}

/* Appends "&name=value" (or "?name=value" first), the value percent-encoded. */
static int s3_query_add(struct buf *b, const char *name, const char *value)
{
	int rc = buf_printf(b, "%c%s=", strchr(buf_cstr(b), '?') ? '&' : '?', name);

	return rc ? rc : url_encode(b, value, false);
}

/* Signs one attempt: x-amz-date (fresh), x-amz-content-sha256, the session token, Authorization. */
static int s3_prepare(void *ctx, struct http_req *req)
{
	const struct s3 *s = ctx;
	const char *url = http_req_url(req), *path, *q;
	char date[SIGV4_DATE_LEN + 1], pathbuf[S3_PATH_MAX + 3 * URL_KEY_MAX + 2];
	struct sigv4_header hdrs[4];
	struct sigv4_request sr;
	struct sigv4_key key;
	struct buf authz;
	size_t n = 0, plen;
	int rc;

	rc = sigv4_format_date(time(NULL), date);
	if (rc)
		return rc;
	/* The URL is one we built: origin, then the path, then maybe a query. */
	path = strchr(strstr(url, "://") + 3, '/');
	if (!path)
		return -EINVAL;
	q = strchr(path, '?');
	plen = q ? (size_t)(q - path) : strlen(path);
	if (plen >= sizeof(pathbuf))
		return -EINVAL;
	memcpy(pathbuf, path, plen);
	pathbuf[plen] = '\0';
	hdrs[n++] = (struct sigv4_header){ "host", s->host };
	hdrs[n++] = (struct sigv4_header){ "x-amz-content-sha256", SIGV4_UNSIGNED_PAYLOAD };
	hdrs[n++] = (struct sigv4_header){ "x-amz-date", date };
	if (s->creds.session_token[0])
		hdrs[n++] = (struct sigv4_header){ "x-amz-security-token", s->creds.session_token };
	sr = (struct sigv4_request){ .method = http_req_method(req),
				     .path = pathbuf,
				     .query = q ? q + 1 : NULL,
				     .headers = hdrs,
				     .nheaders = n,
				     .payload_hash = SIGV4_UNSIGNED_PAYLOAD };
	key = (struct sigv4_key){ .access_key_id = s->creds.access_key_id,
				  .secret_access_key = s->creds.secret_access_key,
				  .region = s->region,
				  .service = "s3",
				  .amz_date = date };
	buf_init(&authz, 4096);
	rc = sigv4_authorization(&sr, &key, &authz);
	for (size_t i = 1; i < n && !rc; i++)
		rc = http_req_set_attempt_header(req, hdrs[i].name, hdrs[i].value);
	if (!rc)
		rc = http_req_set_attempt_header(req, "Authorization", buf_cstr(&authz));
	buf_free(&authz);
	if (rc)
		log_error("s3: cannot sign %s %s: %s", http_req_method(req), url, strerror(-rc));
	return rc;
}

/* Creates a request on origin + path_and_query, with Host and signing set up. */
static int s3_new_req(const struct s3 *s, const char *method, const struct buf *path_and_query,
		      struct http_req **out)
{
	struct http_req *req;
	struct buf url;
	int rc;

	*out = NULL;
	buf_init(&url, S3_URL_MAX);
	rc = buf_printf(&url, "%s%s", s->origin, buf_cstr(path_and_query));
	if (!rc)
		rc = http_req_new(method, buf_cstr(&url), &req);
	buf_free(&url);
	if (rc)
		return rc == -EMSGSIZE ? -ENAMETOOLONG : rc;
	rc = http_req_add_header(req, "Host", s->host);
	if (rc) {
		http_req_free(req);
		return rc;
	}
	if (!s->anonymous)
		http_req_set_prepare(req, s3_prepare, (void *)s);
	*out = req;
	return 0;
}

/* Runs a request and logs how it failed, with S3's error code when the body has one. */
static int s3_perform_logged(struct http_client *hc, struct http_req *req)
{
	int rc = http_perform(hc, req);
	const struct buf *body;
	char code[64], msg[256];

	if (!rc)
		return 0;
	body = http_req_body(req);
	if (!body->len ||
	    s3_xml_parse_error(body->data, body->len, code, sizeof(code), msg, sizeof(msg)) != 0)
		code[0] = msg[0] = '\0';
	if (rc == -ENOENT)
		log_debug("s3: %s %s: not found %s", http_req_method(req), http_req_url(req), code);
	else
		log_warn("s3: %s %s failed: %s%s%s%s%s", http_req_method(req), http_req_url(req),
			 http_req_error(req), code[0] ? " (" : "", code, code[0] ? ": " : "",
			 code[0] ? msg : "");
	if (code[0] && rc == -EACCES)
		log_warn("s3: check the credentials (%s) and the region", code);
	return rc;
}

/* ---- listing ---- */

/* A set of strings (open addressing), to drop common prefixes a server repeats on later pages. */
struct s3_strset {
	char **slot;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

static size_t s3_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return (size_t)h;
}

/* Returns 1 if s was added, 0 if it was already there, -ENOMEM. */
static int s3_strset_add(struct s3_strset *set, const char *s)
{
	size_t i;
	char *copy;

	if (set->cap) {
		for (i = s3_hash(s) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1)) {
			if (strcmp(set->slot[i], s) == 0)
				return 0;
		}
	}
	if (2 * (set->n + 1) > set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 32;
		char **slot = calloc(cap, sizeof(*slot));

		if (!slot)
			return -ENOMEM;
		for (size_t k = 0; k < set->cap; k++) {
			if (!set->slot[k])
				continue;
			for (i = s3_hash(set->slot[k]) & (cap - 1); slot[i];
			     i = (i + 1) & (cap - 1))
				;
			slot[i] = set->slot[k];
		}
		free(set->slot);
		set->slot = slot;
		set->cap = cap;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	for (i = s3_hash(s) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
		;
	set->slot[i] = copy;
	set->n++;
	return 1;
}

static void s3_strset_free(struct s3_strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
	memset(set, 0, sizeof(*set));
}

struct s3_list_state {
	store_list_fn fn;
	void *ctx;
	const char *prefix;
	size_t prefix_len;
	const char *delim;
	uint32_t max;
	uint32_t count;
	struct s3_strset seen;
};

static bool s3_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Checks one page entry against the request and passes it on. Returns 0, 1 when max_results
 * is reached, or an error. */
static int s3_deliver(struct s3_list_state *ls, const struct s3_list_entry *e)
{
	int rc;

	if (strncmp(e->obj.name, ls->prefix, ls->prefix_len) != 0) {
		log_error("s3: listing of prefix \"%s\" returned \"%s\"", ls->prefix, e->obj.name);
		return -EPROTO;
	}
	if (e->is_prefix) {
		if (!ls->delim || !s3_has_suffix(e->obj.name, ls->delim) ||
		    strlen(e->obj.name) <= ls->prefix_len) {
			log_error("s3: listing returned an unexpected common prefix \"%s\"",
				  e->obj.name);
			return -EPROTO;
		}
		rc = s3_strset_add(&ls->seen, e->obj.name);
		if (rc <= 0)
			return rc; /* a repeat (0) is dropped */
	}
	if (ls->max && ls->count >= ls->max)
		return 1;
	ls->count++;
	return ls->fn(ls->ctx, &e->obj, e->is_prefix);
}

/* Builds the path and query of one ListObjectsV2 page. */
static int s3_list_url(const struct s3 *s, const struct s3_list_state *ls, uint32_t page,
		       const char *token, struct buf *b)
{
	char num[16];
	int rc;

	snprintf(num, sizeof(num), "%" PRIu32, page);
	rc = buf_printf(b, "%s%s", s->bucket_path, s->path_style ? "" : "/");
	if (!rc)
		rc = s3_query_add(b, "list-type", "2");
	if (!rc)
		rc = s3_query_add(b, "max-keys", num);
	if (!rc)
		rc = s3_query_add(b, "encoding-type", "url");
	if (!rc && ls->prefix_len)
		rc = s3_query_add(b, "prefix", ls->prefix);
	if (!rc && ls->delim)
		rc = s3_query_add(b, "delimiter", ls->delim);
	if (!rc && token[0])
		rc = s3_query_add(b, "continuation-token", token);
	return rc;
}

static int s3_list(struct store *st, struct http_client *hc, const char *prefix,
		   const char *delimiter, uint32_t max_results, store_list_fn fn, void *ctx)
{
	struct s3 *s = (struct s3 *)st;
	struct s3_list_state ls = { .fn = fn, .ctx = ctx, .prefix = prefix, .max = max_results };
	char token[S3_XML_TOKEN_MAX + 1] = "";
	struct http_req *req = NULL;
	struct s3_list_page page;
	int empty_pages = 0, rc;
	struct buf pq;

	if (delimiter && !*delimiter)
		delimiter = NULL;
	ls.delim = delimiter;
	ls.prefix_len = strnlen(prefix, URL_KEY_MAX + 1);
	if (ls.prefix_len > URL_KEY_MAX || !url_utf8_valid(prefix, ls.prefix_len) ||
	    (delimiter && strnlen(delimiter, S3_DELIMITER_MAX + 1) > S3_DELIMITER_MAX))
		return -EINVAL;
	buf_init(&pq, S3_URL_MAX);
	for (;;) {
		uint32_t want = s->page_size;
		const struct buf *body;

		if (ls.max && ls.max - ls.count < want)
			want = ls.max - ls.count;
		buf_reset(&pq);
		rc = s3_list_url(s, &ls, want, token, &pq);
		if (!rc)
			rc = s3_new_req(s, "GET", &pq, &req);
		if (rc)
			break;
		http_req_set_body_max(req, S3_XML_DOC_MAX);
		rc = s3_perform_logged(hc, req);
		if (rc)
			break;
		body = http_req_body(req);
		rc = s3_xml_parse_list(body->data ? body->data : "", body->len, &page);
		if (rc) {
			log_error("s3: listing page from %s rejected (%s)", http_req_url(req),
				  strerror(-rc));
			break;
		}
		for (size_t i = 0; i < page.n && !rc; i++)
			rc = s3_deliver(&ls, &page.entries[i]);
		empty_pages = page.n ? 0 : empty_pages + 1;
		http_req_free(req);
		req = NULL;
		if (rc || !page.truncated || (ls.max && ls.count >= ls.max)) {
			s3_xml_page_free(&page);
			break;
		}
		if (strcmp(page.next_token, token) == 0 || empty_pages > S3_EMPTY_PAGES_MAX) {
			log_error("s3: listing of s3://%s/%s makes no progress; giving up",
				  s->bucket, prefix);
			s3_xml_page_free(&page);
			rc = -EPROTO;
			break;
		}
		memcpy(token, page.next_token, sizeof(token));
		s3_xml_page_free(&page);
	}
	if (rc == 1)
		rc = 0;
	http_req_free(req);
	buf_free(&pq);
	s3_strset_free(&ls.seen);
	return rc;
}

/* ---- stat and read ---- */

static int s3_object_path(const struct s3 *s, const char *key, struct buf *b)
{
	int rc = buf_printf(b, "%s/", s->bucket_path);

	return rc ? rc : s3_append_key(b, key);
}

/* Fills out from a HEAD response's headers. */
static int s3_parse_head(const struct http_req *req, const char *key, struct store_object *out)
{
	const char *len = http_req_header(req, "Content-Length");
	const char *etag = http_req_header(req, "ETag");
	const char *lm = http_req_header(req, "Last-Modified");
	const char *ce = http_req_header(req, "Content-Encoding");

	memset(out, 0, sizeof(*out));
	memcpy(out->name, key, strlen(key) + 1);
	if (!len || num_parse_u64(len, &out->size) != 0) {
		log_error("s3: HEAD %s: missing or malformed Content-Length", http_req_url(req));
		return -EPROTO;
	}
	if (!etag || s3_xml_set_etag(out, etag, strlen(etag)) != 0) {
		log_error("s3: HEAD %s: missing or malformed ETag", http_req_url(req));
		return -EPROTO;
	}
	if (lm && s3_xml_parse_http_date(lm, &out->mtime_sec) != 0) {
		log_warn("s3: HEAD %s: unreadable Last-Modified \"%.64s\"; using 0",
			 http_req_url(req), lm);
		out->mtime_sec = 0;
	}
	if (ce) {
		size_t n = strlen(ce);
		bool ok = n < sizeof(out->content_encoding);

		for (size_t i = 0; i < n && ok; i++)
			ok = (unsigned char)ce[i] >= 0x20 && (unsigned char)ce[i] < 0x7f;
		if (ok)
			memcpy(out->content_encoding, ce, n + 1);
		else
			log_warn("s3: HEAD %s: ignoring an unusable Content-Encoding",
				 http_req_url(req));
	}
	return 0;
}

static int s3_stat(struct store *st, struct http_client *hc, const char *name,
		   struct store_object *out)
{
	struct s3 *s = (struct s3 *)st;
	struct http_req *req = NULL;
	struct buf pq;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s3_key_valid(name))
		return -EINVAL;
	buf_init(&pq, S3_URL_MAX);
	rc = s3_object_path(s, name, &pq);
	if (!rc)
		rc = s3_new_req(s, "HEAD", &pq, &req);
	buf_free(&pq);
	if (rc)
		return rc;
	rc = s3_perform_logged(hc, req);
	if (!rc)
		rc = s3_parse_head(req, name, out);
	http_req_free(req);
	return rc;
}

static bool s3_version_valid(const char *v)
{
	size_t n = v ? strnlen(v, STORE_VERSION_MAX + 1) : 0;

	if (n == 0 || n > STORE_VERSION_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= 0x20 || c >= 0x7f || c == '"')
			return false;
	}
	return true;
}

static int s3_read_req(struct store *st, const char *name, const char *version, uint64_t size,
		       uint64_t off, uint64_t len, const struct http_sink *sink,
		       struct http_req **out)
{
	struct s3 *s = (struct s3 *)st;
	struct http_req *req = NULL;
	char quoted[STORE_VERSION_MAX + 3];
	struct buf pq;
	int rc;

	*out = NULL;
	if (!s3_key_valid(name) || !s3_version_valid(version))
		return -EINVAL;
	buf_init(&pq, S3_URL_MAX);
	rc = s3_object_path(s, name, &pq);
	if (!rc)
		rc = s3_new_req(s, "GET", &pq, &req);
	buf_free(&pq);
	if (rc)
		return rc;
	snprintf(quoted, sizeof(quoted), "\"%s\"", version);
	rc = http_req_add_header(req, "If-Match", quoted);
	if (!rc)
		rc = http_req_expect_version(req, "ETag", version);
	if (rc) {
		http_req_free(req);
		return rc;
	}
	http_req_expect_range(req, off, len, size);
	http_req_set_sink(req, sink);
	*out = req;
	return 0;
}

static void s3_free(struct store *st)
{
	struct s3 *s = (struct s3 *)st;

	auth_aws_clear(&s->creds);
	free(s);
}

static const struct store_ops s3_ops = {
	.list = s3_list,
	.stat = s3_stat,
	.read_req = s3_read_req,
	.free = s3_free,
};

int s3_open(const struct store_config *cfg, struct store **out)
{
	const char *ps = getenv("HOARDFS_LIST_PAGE_SIZE");
	uint64_t page = S3_PAGE_SIZE_DEFAULT;
	const char *auth;
	struct s3 *s;
	int rc;

	*out = NULL;
	if (!cfg->bucket || !url_bucket_name_valid(cfg->bucket))
		return -EINVAL;
	if (ps && *ps && num_parse_range(ps, 1, S3_PAGE_SIZE_DEFAULT, &page)) {
		log_error("s3: HOARDFS_LIST_PAGE_SIZE \"%.32s\" is not a number in 1..%d", ps,
			  S3_PAGE_SIZE_DEFAULT);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->head.ops = &s3_ops;
	s->page_size = (uint32_t)page;
	snprintf(s->bucket, sizeof(s->bucket), "%s", cfg->bucket);
	if (cfg->region && *cfg->region) {
		if (!s3_region_valid(cfg->region)) {
			log_error("s3: invalid region \"%.64s\"", cfg->region);
			rc = -EINVAL;
			goto out_free;
		}
		snprintf(s->region, sizeof(s->region), "%s", cfg->region);
	} else {
		rc = auth_aws_region(cfg->profile, s->region, sizeof(s->region));
		if (rc)
			goto out_free;
	}
	rc = s3_setup_endpoint(s, cfg);
	if (rc)
		goto out_free;
	s->anonymous = cfg->anonymous;
	if (!s->anonymous) {
		rc = auth_aws_load(cfg->profile, &s->creds);
		if (rc == -ENOENT) {
			log_info("s3: no AWS credentials found; s3://%s is read anonymously",
				 cfg->bucket);
			s->anonymous = true;
		} else if (rc) {
			goto out_free;
		}
	}
	auth = s->anonymous ? "anonymous" : s->creds.source;
	snprintf(s->head.describe, sizeof(s->head.describe),
		 "s3://%s (endpoint %.200s; region %s; %s; auth: %.200s)", cfg->bucket, s->origin,
		 s->region, s->path_style ? "path-style" : "virtual-hosted", auth);
	log_debug("s3: opened %s", s->head.describe);
	*out = &s->head;
	return 0;

out_free:
	s3_free(&s->head);
	return rc;
}
