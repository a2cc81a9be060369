/* sigv4: AWS Signature Version 4 (header-based, S3 flavour) with OpenSSL. */
#include "common/sigv4.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIGV4_SECRET_MAX 256

/* One query parameter, both halves canonically encoded (heap strings). */
struct sigv4_param {
	char *key;
	char *value;
};

/* One header to sign: lower-cased name and normalised value (heap strings). */
struct sigv4_hdr {
	char *name;
	char *value;
	size_t order; /* position in the request, so repeated headers keep their order */
};

static const char sigv4_hex[] = "0123456789abcdef";

static bool sigv4_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int sigv4_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void sigv4_to_hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = sigv4_hex[in[i] >> 4];
		out[2 * i + 1] = sigv4_hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * Appends s[0..n) canonically encoded: each %XX escape is decoded once, then every byte outside
 * the unreserved set is written as %XX (upper-case hex). A literal '/' stays as is when
 * keep_slash; an escaped one (%2F) stays escaped. Returns 0, -EINVAL (malformed escape), or a
 * buf_append() error.
 */
static int sigv4_encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char uhex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool literal_slash = c == '/';
		int rc;

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -EINVAL;
			hi = sigv4_hexval(s[i + 1]);
			lo = sigv4_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (sigv4_unreserved(c) || (keep_slash && literal_slash)) {
			rc = buf_append(out, &c, 1);
		} else {
			char esc[3] = { '%', uhex[c >> 4], uhex[c & 15] };

			rc = buf_append(out, esc, 3);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* Encodes s[0..n) into a new heap string in *out. */
static int sigv4_encode_dup(const char *s, size_t n, char **out)
{
	struct buf b;
	int rc;

	buf_init(&b, SIGV4_TEXT_MAX);
	rc = sigv4_encode(&b, s, n, false);
	if (rc) {
		buf_free(&b);
		return rc;
	}
	*out = buf_steal(&b);
	return *out ? 0 : -ENOMEM;
}

static int sigv4_param_cmp(const void *a, const void *b)
{
	const struct sigv4_param *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

static void sigv4_params_free(struct sigv4_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].key);
		free(p[i].value);
	}
}

/* Appends the canonical query string of `query` (may be NULL). */
static int sigv4_canonical_query(const char *query, struct buf *out)
{
	struct sigv4_param params[SIGV4_PARAMS_MAX];
	size_t n = 0;
	const char *p = query;
	int rc = 0;

	if (!query)
		return 0;
	while (*p) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (len > 0) {
			if (n == SIGV4_PARAMS_MAX) {
				rc = -EINVAL;
				goto out_free_params;
			}
			params[n].key = NULL;
			params[n].value = NULL;
			rc = sigv4_encode_dup(p, klen, &params[n].key);
			if (!rc)
				rc = eq ? sigv4_encode_dup(eq + 1, len - klen - 1, &params[n].value)
					: sigv4_encode_dup("", 0, &params[n].value);
			n++;
			if (rc)
				goto out_free_params;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	qsort(params, n, sizeof(params[0]), sigv4_param_cmp);
	for (size_t i = 0; i < n && !rc; i++)
		rc = buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].key, params[i].value);
out_free_params:
	sigv4_params_free(params, n);
	return rc;
}

static bool sigv4_tchar(unsigned char c)
{
	return sigv4_unreserved(c) || (c && strchr("!#$%&'*+^`|", c));
}

static bool sigv4_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Lower-cases and checks a header name into a new heap string. */
static int sigv4_header_name(const char *name, char **out)
{
	size_t n = strlen(name);
	char *s;

	if (n == 0 || n > 256)
		return -EINVAL;
	s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!sigv4_tchar(c)) {
			free(s);
			return -EINVAL;
		}
		s[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	s[n] = '\0';
	*out = s;
	return 0;
}

/* Trims a header value and folds each run of white space inside it into one space. */
static int sigv4_header_value(const char *value, char **out)
{
	struct buf b;
	const char *p = value;
	int rc = 0;

	buf_init(&b, SIGV4_TEXT_MAX);
	while (sigv4_space(*p))
		p++;
	while (*p && !rc) {
		if (sigv4_space(*p)) {
			while (sigv4_space(*p))
				p++;
			if (*p)
				rc = buf_append(&b, " ", 1);
			continue;
		}
		rc = buf_append(&b, p, 1);
		p++;
	}
	if (rc) {
		buf_free(&b);
		return rc;
	}
	*out = buf_steal(&b);
	return *out ? 0 : -ENOMEM;
}

static int sigv4_hdr_cmp(const void *a, const void *b)
{
	const struct sigv4_hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Appends the canonical headers block and, into `signed_out`, the signed header list. */
static int sigv4_canonical_headers(const struct sigv4_request *r, struct buf *out,
				   struct buf *signed_out)
{
	struct sigv4_hdr hdrs[SIGV4_HEADERS_MAX];
	size_t n = 0;
	int rc = 0;

	if (r->nheaders > SIGV4_HEADERS_MAX || (r->nheaders && !r->headers))
		return -EINVAL;
	for (size_t i = 0; i < r->nheaders; i++) {
		hdrs[i] = (struct sigv4_hdr){ .order = i };
		n = i + 1;
		if (!r->headers[i].name || !r->headers[i].value) {
			rc = -EINVAL;
			goto out_free_hdrs;
		}
		rc = sigv4_header_name(r->headers[i].name, &hdrs[i].name);
		if (!rc)
			rc = sigv4_header_value(r->headers[i].value, &hdrs[i].value);
		if (rc)
			goto out_free_hdrs;
	}
	qsort(hdrs, n, sizeof(hdrs[0]), sigv4_hdr_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		bool first = i == 0 || strcmp(hdrs[i].name, hdrs[i - 1].name) != 0;
		bool last = i + 1 == n || strcmp(hdrs[i].name, hdrs[i + 1].name) != 0;

		if (first) {
			rc = buf_printf(out, "%s:", hdrs[i].name);
			if (!rc)
				rc = buf_printf(signed_out, "%s%s", i ? ";" : "", hdrs[i].name);
		} else {
			rc = buf_append(out, ",", 1);
		}
		if (!rc)
			rc = buf_puts(out, hdrs[i].value);
		if (!rc && last)
			rc = buf_append(out, "\n", 1);
	}
out_free_hdrs:
	for (size_t i = 0; i < n; i++) {
		free(hdrs[i].name);
		free(hdrs[i].value);
	}
	return rc;
}

/* Builds the canonical request into `out` and the signed header list into `signed_out`. */
static int sigv4_build(const struct sigv4_request *r, struct buf *out, struct buf *signed_out)
{
	struct buf creq;
	int rc;

	if (!r->method || !*r->method || !r->path || r->path[0] != '/' || !r->payload_hash)
		return -EINVAL;
	buf_init(&creq, SIGV4_TEXT_MAX);
	rc = buf_printf(&creq, "%s\n", r->method);
	if (!rc)
		rc = sigv4_encode(&creq, r->path, strlen(r->path), true);
	if (!rc)
		rc = buf_append(&creq, "\n", 1);
	if (!rc)
		rc = sigv4_canonical_query(r->query, &creq);
	if (!rc)
		rc = buf_append(&creq, "\n", 1);
	if (!rc)
		rc = sigv4_canonical_headers(r, &creq, signed_out);
	if (!rc)
		rc = buf_printf(&creq, "\n%s\n%s", buf_cstr(signed_out), r->payload_hash);
	if (!rc)
		rc = buf_append(out, creq.data, creq.len);
	buf_free(&creq);
	return rc;
}

int sigv4_canonical_request(const struct sigv4_request *r, struct buf *out)
{
	struct buf signed_headers;
	int rc;

	buf_init(&signed_headers, SIGV4_TEXT_MAX);
	rc = sigv4_build(r, out, &signed_headers);
	buf_free(&signed_headers);
	return rc;
}

static bool sigv4_date_valid(const char *d)
{
	if (!d || strlen(d) != SIGV4_DATE_LEN || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++) {
		if (i != 8 && (d[i] < '0' || d[i] > '9'))
			return false;
	}
	return true;
}

/* A credential-scope part: non-empty, no '/', white space or control characters. */
static bool sigv4_scope_part_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 128)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '/' || *p == ',' || *p == '=')
			return false;
	}
	return true;
}

int sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	sigv4_to_hex(md, 32, out);
	return 0;
}

int sigv4_string_to_sign(const struct sigv4_key *k, const char *canonical_request, struct buf *out)
{
	char hash[65];
	int rc;

	if (!sigv4_date_valid(k->amz_date) || !sigv4_scope_part_valid(k->region) ||
	    !sigv4_scope_part_valid(k->service) || !canonical_request)
		return -EINVAL;
	rc = sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash);
	if (rc)
		return rc;
	return buf_printf(out, "%s\n%s\n%.8s/%s/%s/aws4_request\n%s", SIGV4_ALGORITHM, k->amz_date,
			  k->amz_date, k->region, k->service, hash);
}

static int sigv4_hmac(const void *key, size_t keylen, const void *msg, size_t msglen,
		      uint8_t out[32])
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) || outlen != 32)
		return -EIO;
	return 0;
}

int sigv4_signing_key(const struct sigv4_key *k, uint8_t out[32])
{
	char k0[4 + SIGV4_SECRET_MAX];
	uint8_t kd[32], kr[32], ks[32];
	size_t slen;
	int rc;

	if (!k->secret_access_key || !sigv4_date_valid(k->amz_date) ||
	    !sigv4_scope_part_valid(k->region) || !sigv4_scope_part_valid(k->service))
		return -EINVAL;
	slen = strlen(k->secret_access_key);
	if (slen == 0 || slen > SIGV4_SECRET_MAX)
		return -EINVAL;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, k->secret_access_key, slen);
	rc = sigv4_hmac(k0, 4 + slen, k->amz_date, 8, kd);
	if (!rc)
		rc = sigv4_hmac(kd, 32, k->region, strlen(k->region), kr);
	if (!rc)
		rc = sigv4_hmac(kr, 32, k->service, strlen(k->service), ks);
	if (!rc)
		rc = sigv4_hmac(ks, 32, "aws4_request", 12, out);
	explicit_bzero(k0, sizeof(k0));
	explicit_bzero(kd, sizeof(kd));
	explicit_bzero(kr, sizeof(kr));
	explicit_bzero(ks, sizeof(ks));
	return rc;
}

int sigv4_authorization(const struct sigv4_request *r, const struct sigv4_key *k, struct buf *out)
{
	struct buf creq, signed_headers, sts;
	uint8_t key[32], sig[32];
	char sighex[65];
	int rc;

	if (!sigv4_scope_part_valid(k->access_key_id))
		return -EINVAL;
	buf_init(&creq, SIGV4_TEXT_MAX);
	buf_init(&signed_headers, SIGV4_TEXT_MAX);
	buf_init(&sts, SIGV4_TEXT_MAX);
	rc = sigv4_build(r, &creq, &signed_headers);
	if (rc)
		goto out_free_bufs;
	rc = sigv4_string_to_sign(k, buf_cstr(&creq), &sts);
	if (rc)
		goto out_free_bufs;
	rc = sigv4_signing_key(k, key);
	if (rc)
		goto out_free_bufs;
	rc = sigv4_hmac(key, sizeof(key), sts.data, sts.len, sig);
	explicit_bzero(key, sizeof(key));
	if (rc)
		goto out_free_bufs;
	sigv4_to_hex(sig, sizeof(sig), sighex);
	rc = buf_printf(out,
			"%s Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
			SIGV4_ALGORITHM, k->access_key_id, k->amz_date, k->region, k->service,
			buf_cstr(&signed_headers), sighex);
out_free_bufs:
	buf_free(&sts);
	buf_free(&signed_headers);
	buf_free(&creq);
	return rc;
}

int sigv4_format_date(time_t t, char out[SIGV4_DATE_LEN + 1])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -ERANGE;
	if (strftime(out, SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_DATE_LEN)
		return -ERANGE;
	return 0;
}
