/* url: bucket URLs and percent-encoding. */
#include "common/url.h"

#include <errno.h>
#include <string.h>

const char *url_scheme_name(enum url_scheme s)
{
	return s == URL_GS ? "gs" : "s3";
}

bool url_bucket_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 3 || n > URL_BUCKET_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum =
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && c != '.' && c != '-' && c != '_')
			return false;
		if ((i == 0 || i == n - 1) && !alnum)
			return false;
	}
	return true;
}

bool url_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t need;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Copies the prefix with slashes collapsed; rejects "." and ".." segments and control bytes. */
static int normalise_prefix(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	const char *p = in;

	while (*p) {
		const char *seg;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		seg = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - seg);
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return -EINVAL;
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
				return -EINVAL;
		}
		if (o + n + 1 > outsz - 1)
			return -ENAMETOOLONG;
		memcpy(out + o, seg, n);
		o += n;
		out[o++] = '/';
	}
	out[o] = '\0';
	if (!url_utf8_valid(out, o))
		return -EINVAL;
	return 0;
}

int url_parse_bucket(const char *s, struct bucket_url *out)
{
	const char *rest, *slash;
	size_t blen;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "gs://", 5) == 0) {
		out->scheme = URL_GS;
	} else if (strncmp(s, "s3://", 5) == 0) {
		out->scheme = URL_S3;
	} else {
		return -EINVAL;
	}
	rest = s + 5;
	slash = strchr(rest, '/');
	blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0)
		return -EINVAL;
	if (blen > URL_BUCKET_MAX)
		return -ENAMETOOLONG;
	memcpy(out->bucket, rest, blen);
	out->bucket[blen] = '\0';
	if (!url_bucket_name_valid(out->bucket))
		return -EINVAL;
	if (!slash)
		return 0;
	return normalise_prefix(slash + 1, out->prefix, sizeof(out->prefix));
}

int url_format_bucket(const struct bucket_url *u, struct buf *b)
{
	int rc = buf_printf(b, "%s://%s", url_scheme_name(u->scheme), u->bucket);

	if (!rc && u->prefix[0])
		rc = buf_printf(b, "/%s", u->prefix);
	return rc;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int url_encode(struct buf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int rc;

		if (unreserved(*p) || (keep_slash && *p == '/')) {
			rc = buf_append(b, p, 1);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			rc = buf_append(b, esc, 3);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int url_decode(struct buf *b, const char *s, bool plus_is_space)
{
	for (const char *p = s; *p; p++) {
		char c = *p;
		int rc;

		if (c == '%') {
			int hi, lo;

			if (!p[1] || !p[2])
				return -EINVAL;
			hi = hexval(p[1]);
			lo = hexval(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			p += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		rc = buf_append(b, &c, 1);
		if (rc)
			return rc;
	}
	return 0;
}
