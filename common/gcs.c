/* gcs: the Google Cloud Storage JSON API store and its response parsers. */
#include "common/gcs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/auth_gcs.h"
#include "common/log.h"
#include "common/num.h"
#include "common/store_impl.h"

#define JSON_DEPTH_MAX 32
#define ITEMS_MAX      10000   /* objects in one page (we ask for at most 1000) */
#define PREFIXES_MAX   1000000 /* prefixes in one page (some servers repeat them all) */
#define DELIMITER_MAX  64
#define OBJECT_FIELDS  "name,size,generation,updated,md5Hash,crc32c,contentEncoding"
#define LIST_FIELDS    "nextPageToken,prefixes,items(" OBJECT_FIELDS ")"

struct gcs {
	struct store head; /* must be first: store.c sees only this */
	/* Immutable after gcs_open(), so any thread may read them. */
	char endpoint[STORE_ENDPOINT_MAX + 1];
	char bucket_enc[URL_BUCKET_MAX * 3 + 1];
	uint32_t page_size;
	struct auth_gcs *auth; /* thread-safe itself */
};

/* ---- small parsers ---- */

int gcs_resolve_endpoint(const char *configured, const char *emulator_host, char *out, size_t outsz)
{
	const char *src = GCS_DEFAULT_ENDPOINT, *host;
	bool add_scheme = false;
	size_t n;
	int w;

	if (configured && *configured) {
		src = configured;
	} else if (emulator_host && *emulator_host) {
		src = emulator_host;
		add_scheme = strstr(emulator_host, "://") == NULL;
	}
	if (!add_scheme && strncmp(src, "http://", 7) != 0 && strncmp(src, "https://", 8) != 0)
		return -EINVAL;
	for (const char *p = src; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' ||
		    *p == '#')
			return -EINVAL;
	}
	w = snprintf(out, outsz, "%s%s", add_scheme ? "http://" : "", src);
	if (w < 0 || (size_t)w >= outsz)
		return -ENAMETOOLONG;
	n = (size_t)w;
	host = strstr(out, "://") + 3;
	for (;;) {
		while (out + n > host && out[n - 1] == '/')
			out[--n] = '\0';
		if (out + n >= host + 11 && strcmp(out + n - 11, "/storage/v1") == 0) {
			n -= 11;
			out[n] = '\0';
			continue;
		}
		break;
	}
	if (!*host || *host == '/' || *host == '?' || *host == '#')
		return -EINVAL;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads exactly n digits. Returns 0 or -EINVAL. */
static int read_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

int gcs_parse_rfc3339(const char *s, int64_t *sec, uint32_t *nsec)
{
	int Y, M, D, h, m, S, oh = 0, om = 0, sign = 0, digits = 0;
	uint32_t ns = 0;
	const char *p;

	if (!s || strnlen(s, 40) >= 40)
		return -EINVAL;
	if (read_digits(s, 4, &Y) || s[4] != '-' || read_digits(s + 5, 2, &M) || s[7] != '-' ||
	    read_digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    read_digits(s + 11, 2, &h) || s[13] != ':' || read_digits(s + 14, 2, &m) ||
	    s[16] != ':' || read_digits(s + 17, 2, &S))
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		for (p++; is_digit(*p); p++, digits++) {
			if (digits < 9)
				ns = ns * 10 + (uint32_t)(*p - '0');
		}
		if (digits == 0)
			return -EINVAL;
		for (int i = digits; i < 9; i++)
			ns *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (read_digits(p + 1, 2, &oh) || p[3] != ':' || read_digits(p + 4, 2, &om))
			return -EINVAL;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 || m > 59 || S > 60 ||
	    oh > 23 || om > 59)
		return -EINVAL;
	*sec = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + S -
	       sign * (oh * 3600 + om * 60);
	*nsec = ns;
	return 0;
}

/* The 6-bit value of a standard base64 character, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes canonical padded base64 that must give exactly n bytes. Returns 0 or -EPROTO. */
static int b64_decode_exact(const char *s, size_t slen, uint8_t *out, size_t n)
{
	size_t want = (n + 2) / 3 * 4, pad = (3 - n % 3) % 3, o = 0;
	uint32_t acc = 0;

	if (slen != want)
		return -EPROTO;
	for (size_t i = 0; i < slen; i++) {
		int v;

		if (i >= slen - pad) {
			if (s[i] != '=')
				return -EPROTO;
			v = 0;
		} else if ((v = b64_value((unsigned char)s[i])) < 0) {
			return -EPROTO;
		}
		acc = (acc << 6) | (uint32_t)v;
		if (i % 4 == 3) {
			uint8_t bytes[3] = { (uint8_t)(acc >> 16), (uint8_t)(acc >> 8),
					     (uint8_t)acc };

			for (int k = 0; k < 3; k++) {
				if (o < n)
					out[o++] = bytes[k];
				else if (bytes[k])
					return -EPROTO; /* non-zero bits under the padding */
			}
			acc = 0;
		}
	}
	return 0;
}

/* ---- JSON ---- */

/* Parses len bytes that must be exactly one JSON object (trailing whitespace allowed). */
static struct json_object *parse_json_object(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (len == 0 || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		json_tokener_free(tok);
		return NULL;
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (end < len &&
	       (text[end] == ' ' || text[end] == '\t' || text[end] == '\r' || text[end] == '\n'))
		end++;
	if (end != len || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* The member `name`, or NULL when absent or JSON null. */
static struct json_object *member(struct json_object *obj, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v))
		return NULL;
	return v;
}

/* A string value of min..max bytes without NUL. Returns it or NULL. */
static const char *str_value(struct json_object *v, size_t min, size_t max, size_t *lenp)
{
	const char *s;
	int len;

	if (!v || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (len < 0 || (size_t)len < min || (size_t)len > max || strlen(s) != (size_t)len)
		return NULL;
	if (lenp)
		*lenp = (size_t)len;
	return s;
}

/* An object name or prefix: 1..URL_KEY_MAX bytes of UTF-8 without CR or LF. */
static const char *name_value(struct json_object *v)
{
	size_t len;
	const char *s = str_value(v, 1, URL_KEY_MAX, &len);

	if (!s || !url_utf8_valid(s, len) || strpbrk(s, "\r\n"))
		return NULL;
	return s;
}

/* A non-negative integer given as a decimal string or a JSON integer. Returns 0 or -EPROTO. */
static int u64_value(struct json_object *v, uint64_t max, uint64_t *out)
{
	uint64_t u;

	if (!v)
		return -EPROTO;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = str_value(v, 1, 20, NULL);

		if (!s || num_parse_u64(s, &u))
			return -EPROTO;
	} else if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		if (i < 0)
			return -EPROTO;
		u = (uint64_t)i;
	} else {
		return -EPROTO;
	}
	if (u > max)
		return -EPROTO;
	*out = u;
	return 0;
}

static int parse_object_json(struct json_object *obj, struct store_object *out)
{
	struct json_object *v;
	const char *s;
	size_t len;
	uint64_t gen;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(obj, json_type_object))
		return -EPROTO;
	s = name_value(member(obj, "name"));
	if (!s)
		return -EPROTO;
	memcpy(out->name, s, strlen(s) + 1);
	if (u64_value(member(obj, "size"), INT64_MAX, &out->size))
		return -EPROTO;
	/* The generation is kept as the server's decimal text, canonical (no leading zeros). */
	if (u64_value(member(obj, "generation"), UINT64_MAX, &gen))
		return -EPROTO;
	snprintf(out->version, sizeof(out->version), "%" PRIu64, gen);

	if ((v = member(obj, "updated"))) {
		s = str_value(v, 1, 64, NULL);
		if (!s || gcs_parse_rfc3339(s, &out->mtime_sec, &out->mtime_nsec))
			return -EPROTO;
	}
	if ((v = member(obj, "md5Hash"))) {
		s = str_value(v, 1, 64, &len);
		if (!s || b64_decode_exact(s, len, out->md5, sizeof(out->md5)))
			return -EPROTO;
		out->has_md5 = true;
	}
	if ((v = member(obj, "crc32c"))) {
		uint8_t be[4];

		s = str_value(v, 1, 64, &len);
		if (!s || b64_decode_exact(s, len, be, sizeof(be)))
			return -EPROTO;
		out->crc32c = (uint32_t)be[0] << 24 | (uint32_t)be[1] << 16 | (uint32_t)be[2] << 8 |
			      be[3];
		out->has_crc32c = true;
	}
	if ((v = member(obj, "contentEncoding"))) {
		s = str_value(v, 0, sizeof(out->content_encoding) - 1, &len);
		if (!s)
			return -EPROTO;
		for (size_t i = 0; i < len; i++) {
			if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
				return -EPROTO;
		}
		memcpy(out->content_encoding, s, len + 1);
	}
	return 0;
}

int gcs_parse_object(const char *json, size_t len, struct store_object *out)
{
	struct json_object *obj;
	int rc;

	if (!json || !out)
		return -EINVAL;
	obj = parse_json_object(json, len);
	if (!obj)
		return -EPROTO;
	rc = parse_object_json(obj, out);
	json_object_put(obj);
	return rc;
}

/* An optional array member: NULL when absent or null, else it must be an array. */
static int array_member(struct json_object *obj, const char *name, size_t max,
			struct json_object **out, size_t *n)
{
	struct json_object *v = member(obj, name);

	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return -EPROTO;
	*n = json_object_array_length(v);
	if (*n > max)
		return -EPROTO;
	*out = v;
	return 0;
}

int gcs_parse_list_page(const char *json, size_t len, store_list_fn fn, void *ctx, char *next_token,
			size_t next_token_size)
{
	struct json_object *root, *items, *prefixes, *v;
	struct store_object *objs = NULL, *pobj = NULL;
	const char **pnames = NULL;
	size_t nitems, nprefixes, i, j;
	int rc = -EPROTO;

	if (!json || !fn || !next_token || next_token_size <= GCS_PAGE_TOKEN_MAX)
		return -EINVAL;
	next_token[0] = '\0';
	root = parse_json_object(json, len);
	if (!root)
		return -EPROTO;
	if (array_member(root, "items", ITEMS_MAX, &items, &nitems) ||
	    array_member(root, "prefixes", PREFIXES_MAX, &prefixes, &nprefixes))
		goto out_put;
	if ((v = member(root, "nextPageToken"))) {
		size_t tlen;
		const char *t = str_value(v, 0, GCS_PAGE_TOKEN_MAX, &tlen);

		if (!t || !url_utf8_valid(t, tlen))
			goto out_put;
		for (i = 0; i < tlen; i++) {
			if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
				goto out_put;
		}
		memcpy(next_token, t, tlen + 1);
	}

	/* Check everything before the first callback, so a bad page delivers nothing. */
	rc = -ENOMEM;
	objs = calloc(nitems ? nitems : 1, sizeof(*objs));
	pnames = calloc(nprefixes ? nprefixes : 1, sizeof(*pnames));
	pobj = calloc(1, sizeof(*pobj));
	if (!objs || !pnames || !pobj)
		goto out_free;
	rc = -EPROTO;
	for (i = 0; i < nitems; i++) {
		if (parse_object_json(json_object_array_get_idx(items, i), &objs[i]))
			goto out_free;
	}
	for (j = 0; j < nprefixes; j++) {
		pnames[j] = name_value(json_object_array_get_idx(prefixes, j));
		if (!pnames[j])
			goto out_free;
	}

	/* Objects and prefixes, each sorted by the server, merged by name. */
	rc = 0;
	for (i = 0, j = 0; rc == 0 && (i < nitems || j < nprefixes);) {
		if (j >= nprefixes || (i < nitems && strcmp(objs[i].name, pnames[j]) <= 0)) {
			rc = fn(ctx, &objs[i++], false);
		} else {
			memcpy(pobj->name, pnames[j], strlen(pnames[j]) + 1);
			j++;
			rc = fn(ctx, pobj, true);
		}
	}
out_free:
	free(objs);
	free(pnames);
	free(pobj);
out_put:
	json_object_put(root);
	if (rc == -EPROTO)
		next_token[0] = '\0';
	return rc;
}

/* ---- a set of strings, to drop prefixes a server repeats on later pages ---- */

struct strset {
	char **slots;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void strset_place(char **slots, size_t cap, char *s)
{
	size_t i = (size_t)fnv1a(s) & (cap - 1);

	while (slots[i])
		i = (i + 1) & (cap - 1);
	slots[i] = s;
}

/* Adds s if absent. Returns 1 if added, 0 if present, -ENOMEM. */
static int strset_add(struct strset *set, const char *s)
{
	char *copy;

	if (set->cap) {
		for (size_t i = (size_t)fnv1a(s) & (set->cap - 1); set->slots[i];
		     i = (i + 1) & (set->cap - 1)) {
			if (strcmp(set->slots[i], s) == 0)
				return 0;
		}
	}
	if ((set->n + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		char **slots = calloc(cap, sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++) {
			if (set->slots[i])
				strset_place(slots, cap, set->slots[i]);
		}
		free(set->slots);
		set->slots = slots;
		set->cap = cap;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	strset_place(set->slots, set->cap, copy);
	set->n++;
	return 1;
}

static void strset_free(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* ---- the store ---- */

/* Starts "{endpoint}/storage/v1/b/{bucket}/o" in b. */
static int objects_url(const struct gcs *g, struct buf *b)
{
	return buf_printf(b, "%s/storage/v1/b/%s/o", g->endpoint, g->bucket_enc);
}

static int object_url(const struct gcs *g, const char *name, struct buf *b)
{
	int rc = objects_url(g, b);

	if (!rc)
		rc = buf_puts(b, "/");
	if (!rc)
		rc = url_encode(b, name, false);
	return rc;
}

/* Appends "&key=value" (or "?key=value" first), the value percent-encoded. */
static int query_add(struct buf *b, const char *key, const char *value)
{
	int rc = buf_printf(b, "%c%s=", strchr(b->data ? b->data : "", '?') ? '&' : '?', key);

	return rc ? rc : url_encode(b, value, false);
}

static bool valid_object_name(const char *name)
{
	size_t n = name ? strnlen(name, URL_KEY_MAX + 1) : 0;

	return n > 0 && n <= URL_KEY_MAX && url_utf8_valid(name, n) && !strpbrk(name, "\r\n");
}

static void set_auth(const struct gcs *g, struct http_req *req)
{
	if (auth_gcs_kind(g->auth) != AUTH_GCS_ANONYMOUS)
		http_req_set_prepare(req, auth_gcs_prepare, g->auth);
}

/* Runs a metadata request and logs how it failed (404 only at debug level). */
static int perform_logged(struct http_client *hc, struct http_req *req)
{
	int rc = http_perform(hc, req);

	if (rc == -ENOENT)
		log_debug("gcs: %s: not found", http_req_url(req));
	else if (rc)
		log_warn("gcs: GET %s failed: %s", http_req_url(req), http_req_error(req));
	return rc;
}

struct list_state {
	store_list_fn fn;
	void *ctx;
	const char *prefix;
	size_t prefix_len;
	const char *delim;
	uint32_t max;
	uint32_t count;
	bool full; /* stopped because max was reached */
	struct strset seen;
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Checks each entry against the request, drops repeated prefixes, counts, and passes it on. */
static int list_entry(void *ctx, const struct store_object *obj, bool is_prefix)
{
	struct list_state *ls = ctx;
	int rc;

	if (strncmp(obj->name, ls->prefix, ls->prefix_len) != 0) {
		log_error("gcs: listing of prefix \"%s\" returned \"%s\"", ls->prefix, obj->name);
		return -EPROTO;
	}
	if (is_prefix) {
		if (!ls->delim || !has_suffix(obj->name, ls->delim) ||
		    strlen(obj->name) <= ls->prefix_len) {
			log_error("gcs: listing returned an unexpected prefix \"%s\"", obj->name);
			return -EPROTO;
		}
		rc = strset_add(&ls->seen, obj->name);
		if (rc <= 0)
			return rc;
	}
	if (ls->max && ls->count >= ls->max) {
		ls->full = true;
		return -ECANCELED;
	}
	ls->count++;
	return ls->fn(ls->ctx, obj, is_prefix);
}

static int gcs_list(struct store *st, struct http_client *hc, const char *prefix,
		    const char *delimiter, uint32_t max_results, store_list_fn fn, void *ctx)
{
	struct gcs *g = (struct gcs *)st;
	struct list_state ls = { .fn = fn, .ctx = ctx, .prefix = prefix, .max = max_results };
	char *token = NULL, *prev = NULL;
	struct http_req *req = NULL;
	struct buf url;
	int rc;

	if (delimiter && !*delimiter)
		delimiter = NULL;
	ls.delim = delimiter;
	ls.prefix_len = strnlen(prefix, URL_KEY_MAX + 1);
	if (ls.prefix_len > URL_KEY_MAX || !url_utf8_valid(prefix, ls.prefix_len) ||
	    (delimiter && strnlen(delimiter, DELIMITER_MAX + 1) > DELIMITER_MAX))
		return -EINVAL;
	token = calloc(1, GCS_PAGE_TOKEN_MAX + 1);
	prev = calloc(1, GCS_PAGE_TOKEN_MAX + 1);
	if (!token || !prev) {
		rc = -ENOMEM;
		goto out_free;
	}
	buf_init(&url, 3 * (URL_KEY_MAX + GCS_PAGE_TOKEN_MAX + DELIMITER_MAX) + 1024);
	for (;;) {
		uint32_t page = g->page_size;
		const struct buf *body;
		char num[16];

		if (ls.max && ls.max - ls.count < page)
			page = ls.max - ls.count > 0 ? ls.max - ls.count : 1;
		snprintf(num, sizeof(num), "%" PRIu32, page);
		buf_reset(&url);
		rc = objects_url(g, &url);
		if (!rc)
			rc = query_add(&url, "maxResults", num);
		if (!rc && prefix[0])
			rc = query_add(&url, "prefix", prefix);
		if (!rc && delimiter)
			rc = query_add(&url, "delimiter", delimiter);
		if (!rc && token[0])
			rc = query_add(&url, "pageToken", token);
		if (!rc)
			rc = query_add(&url, "fields", LIST_FIELDS);
		if (!rc)
			rc = http_req_new("GET", buf_cstr(&url), &req);
		if (rc)
			break;
		http_req_set_body_max(req, GCS_LIST_BODY_MAX);
		set_auth(g, req);
		rc = perform_logged(hc, req);
		if (rc)
			break;
		memcpy(prev, token, GCS_PAGE_TOKEN_MAX + 1);
		body = http_req_body(req);
		rc = gcs_parse_list_page(body->data ? body->data : "", body->len, list_entry, &ls,
					 token, GCS_PAGE_TOKEN_MAX + 1);
		if (rc == -EPROTO)
			log_error("gcs: listing page from %s rejected", http_req_url(req));
		http_req_free(req);
		req = NULL;
		if (rc || !token[0] || (ls.max && ls.count >= ls.max))
			break;
		if (strcmp(token, prev) == 0) {
			log_error("gcs: listing of gs://%s/%s repeats page token; giving up",
				  g->bucket_enc, prefix);
			rc = -EPROTO;
			break;
		}
	}
	if (rc == -ECANCELED && ls.full)
		rc = 0;
	http_req_free(req);
	buf_free(&url);
out_free:
	free(token);
	free(prev);
	strset_free(&ls.seen);
	return rc;
}

static int gcs_stat(struct store *st, struct http_client *hc, const char *name,
		    struct store_object *out)
{
	struct gcs *g = (struct gcs *)st;
	struct http_req *req = NULL;
	const struct buf *body;
	struct buf url;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!valid_object_name(name))
		return -EINVAL;
	buf_init(&url, 3 * URL_KEY_MAX + 1024);
	rc = object_url(g, name, &url);
	if (!rc)
		rc = query_add(&url, "fields", OBJECT_FIELDS);
	if (!rc)
		rc = http_req_new("GET", buf_cstr(&url), &req);
	buf_free(&url);
	if (rc)
		return rc;
	http_req_set_body_max(req, GCS_OBJECT_BODY_MAX);
	set_auth(g, req);
	rc = perform_logged(hc, req);
	if (rc)
		goto out_free;
	body = http_req_body(req);
	rc = gcs_parse_object(body->data ? body->data : "", body->len, out);
	if (!rc && strcmp(out->name, name) != 0)
		rc = -EPROTO;
	if (rc)
		log_error("gcs: malformed object metadata from %s", http_req_url(req));
out_free:
	http_req_free(req);
	return rc;
}

static int gcs_read_req(struct store *st, const char *name, const char *version, uint64_t size,
			uint64_t off, uint64_t len, const struct http_sink *sink,
			struct http_req **out)
{
	struct gcs *g = (struct gcs *)st;
	struct http_req *req = NULL;
	uint64_t gen;
	struct buf url;
	int rc;

	*out = NULL;
	if (!valid_object_name(name) || !version || num_parse_u64(version, &gen) ||
	    strlen(version) > STORE_VERSION_MAX)
		return -EINVAL;
	buf_init(&url, 3 * URL_KEY_MAX + 1024);
	rc = object_url(g, name, &url);
	if (!rc)
		rc = query_add(&url, "alt", "media");
	if (!rc)
		rc = query_add(&url, "generation", version);
	if (!rc)
		rc = http_req_new("GET", buf_cstr(&url), &req);
	buf_free(&url);
	if (rc)
		return rc;
	/* Stored bytes as they are: GCS ignores Range when it decompresses for the client. */
	rc = http_req_add_header(req, "Accept-Encoding", "gzip");
	if (!rc)
		rc = http_req_expect_version(req, "x-goog-generation", version);
	if (rc) {
		http_req_free(req);
		return rc;
	}
	http_req_expect_range(req, off, len, size);
	http_req_set_sink(req, sink);
	set_auth(g, req);
	*out = req;
	return 0;
}

static void gcs_free(struct store *st)
{
	struct gcs *g = (struct gcs *)st;

	auth_gcs_free(g->auth);
	free(g);
}

static const struct store_ops gcs_ops = {
	.list = gcs_list,
	.stat = gcs_stat,
	.read_req = gcs_read_req,
	.free = gcs_free,
};

int gcs_open(const struct store_config *cfg, struct store **out)
{
	const char *ps = getenv("HOARDFS_LIST_PAGE_SIZE");
	struct gcs *g;
	struct buf b;
	uint64_t page = GCS_PAGE_SIZE_DEFAULT;
	int rc;

	*out = NULL;
	if (!cfg->bucket || !url_bucket_name_valid(cfg->bucket))
		return -EINVAL;
	if (ps && *ps && num_parse_range(ps, 1, GCS_PAGE_SIZE_DEFAULT, &page)) {
		log_error("gcs: HOARDFS_LIST_PAGE_SIZE \"%.32s\" is not a number in 1..%d", ps,
			  GCS_PAGE_SIZE_DEFAULT);
		return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->head.ops = &gcs_ops;
	g->page_size = (uint32_t)page;
	rc = gcs_resolve_endpoint(cfg->endpoint, getenv("STORAGE_EMULATOR_HOST"), g->endpoint,
				  sizeof(g->endpoint));
	if (rc) {
		log_error("gcs: endpoint \"%.200s\" is not an http(s) URL",
			  cfg->endpoint && *cfg->endpoint ? cfg->endpoint
							  : getenv("STORAGE_EMULATOR_HOST"));
		rc = -EINVAL;
		goto out_free;
	}
	buf_init(&b, sizeof(g->bucket_enc) - 1);
	rc = url_encode(&b, cfg->bucket, false);
	if (!rc)
		memcpy(g->bucket_enc, buf_cstr(&b), b.len + 1);
	buf_free(&b);
	if (rc)
		goto out_free;
	rc = auth_gcs_new(cfg->anonymous, cfg->http, &g->auth);
	if (rc)
		goto out_free;
	snprintf(g->head.describe, sizeof(g->head.describe), "gs://%s (endpoint %s; auth: %s)",
		 cfg->bucket, g->endpoint, auth_gcs_describe(g->auth));
	log_debug("gcs: opened %s", g->head.describe);
	*out = &g->head;
	return 0;

out_free:
	free(g);
	return rc;
}
