/* s3_xml: ListObjectsV2 and <Error> parsers on expat; ETag and time values. */
#include "common/s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "common/buf.h"
#include "common/num.h"
#include "common/url.h"

#define S3_XML_ERROR_DOC_MAX (64 * 1024)
#define S3_XML_CODE_MAX	     256
#define S3_XML_MSG_MAX	     1024

/* The leaf elements whose text we keep. */
enum s3x_field {
	F_NONE,
	F_TRUNCATED,
	F_TOKEN,
	F_ENCODING,
	F_KEY,
	F_SIZE,
	F_ETAG,
	F_MTIME,
	F_PREFIX,
	F_CODE,
	F_MESSAGE,
};

enum s3x_in { IN_NONE, IN_CONTENTS, IN_PREFIXES };

/* Parser state, shared by the expat callbacks. */
struct s3x {
	XML_Parser parser;
	int err;	/* first error (negative errno); stops the parser */
	bool error_doc; /* parsing an <Error> body rather than a listing */
	int depth;	/* current element depth (root = 1) */
	enum s3x_in in; /* which depth-2 container we are in */
	enum s3x_field field;
	int field_depth;
	size_t field_max;     /* bound on the field's text */
	bool field_truncates; /* over-long text is cut (log fields) rather than refused */
	struct buf text;

	/* The entry being built, and what it has seen. */
	struct s3_list_entry cur;
	char *cur_raw; /* its name as sent (maybe still url-encoded) */
	bool has_size, has_etag;

	/* Results. */
	struct s3_list_entry *entries;
	char **raw; /* raw[i] is entries[i]'s name as sent */
	size_t n, cap;
	bool has_truncated, truncated, url_encoded;
	char token[S3_XML_TOKEN_MAX + 1];
	char code[S3_XML_CODE_MAX + 1];
	char msg[S3_XML_MSG_MAX + 1];
};

static void s3x_fail(struct s3x *x, int err)
{
	if (!x->err) {
		x->err = err;
		XML_StopParser(x->parser, XML_FALSE);
	}
}

static bool s3x_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The text of the current field with surrounding white space removed (for values, not names). */
static const char *s3x_trimmed(struct s3x *x, size_t *len)
{
	const char *s = buf_cstr(&x->text);
	size_t n = x->text.len;

	while (n && s3x_space(*s)) {
		s++;
		n--;
	}
	while (n && s3x_space(s[n - 1]))
		n--;
	*len = n;
	return s;
}

static void s3x_begin_field(struct s3x *x, enum s3x_field f, size_t max, bool truncates)
{
	x->field = f;
	x->field_depth = x->depth;
	x->field_max = max;
	x->field_truncates = truncates;
	buf_reset(&x->text);
}

static void XMLCALL s3x_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct s3x *x = ud;

	(void)atts;
	if (x->err)
		return;
	if (++x->depth > S3_XML_DEPTH_MAX) {
		s3x_fail(x, -EPROTO);
		return;
	}
	if (x->depth == 1) {
		if (strcmp(name, x->error_doc ? "Error" : "ListBucketResult") != 0)
			s3x_fail(x, -EPROTO);
		return;
	}
	if (x->error_doc) {
		if (x->depth == 2 && strcmp(name, "Code") == 0)
			s3x_begin_field(x, F_CODE, S3_XML_CODE_MAX, true);
		else if (x->depth == 2 && strcmp(name, "Message") == 0)
			s3x_begin_field(x, F_MESSAGE, S3_XML_MSG_MAX, true);
		return;
	}
	if (x->depth == 2) {
		x->in = IN_NONE;
		if (strcmp(name, "Contents") == 0)
			x->in = IN_CONTENTS;
		else if (strcmp(name, "CommonPrefixes") == 0)
			x->in = IN_PREFIXES;
		if (x->in != IN_NONE) {
			memset(&x->cur, 0, sizeof(x->cur));
			x->cur.is_prefix = x->in == IN_PREFIXES;
			x->has_size = x->has_etag = false;
			free(x->cur_raw);
			x->cur_raw = NULL;
		} else if (strcmp(name, "IsTruncated") == 0) {
			s3x_begin_field(x, F_TRUNCATED, 16, false);
		} else if (strcmp(name, "NextContinuationToken") == 0) {
			s3x_begin_field(x, F_TOKEN, S3_XML_TOKEN_MAX, false);
		} else if (strcmp(name, "EncodingType") == 0) {
			s3x_begin_field(x, F_ENCODING, 16, false);
		}
		return;
	}
	if (x->depth != 3)
		return;
	if (x->in == IN_CONTENTS) {
		if (strcmp(name, "Key") == 0)
			s3x_begin_field(x, F_KEY, 3 * URL_KEY_MAX, false);
		else if (strcmp(name, "Size") == 0)
			s3x_begin_field(x, F_SIZE, 32, false);
		else if (strcmp(name, "ETag") == 0)
			s3x_begin_field(x, F_ETAG, STORE_VERSION_MAX + 16, false);
		else if (strcmp(name, "LastModified") == 0)
			s3x_begin_field(x, F_MTIME, 64, false);
	} else if (x->in == IN_PREFIXES && strcmp(name, "Prefix") == 0) {
		s3x_begin_field(x, F_PREFIX, 3 * URL_KEY_MAX, false);
	}
}

static void XMLCALL s3x_text(void *ud, const XML_Char *s, int len)
{
	struct s3x *x = ud;
	size_t n = (size_t)len;
	int rc;

	if (x->err || x->field == F_NONE || x->depth != x->field_depth || len <= 0)
		return;
	if (x->text.len + n > x->field_max) {
		if (!x->field_truncates) {
			s3x_fail(x, -EPROTO);
			return;
		}
		n = x->field_max - x->text.len;
	}
	rc = buf_append(&x->text, s, n);
	if (rc)
		s3x_fail(x, rc == -ENOMEM ? -ENOMEM : -EPROTO);
}

/* Copies text for a log line: truncated to fit, non-printable bytes shown as '?'. */
static void s3x_copy_printable(char *dst, size_t dstsz, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n && i + 1 < dstsz; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[i] = '\0';
}

static void s3x_end_field(struct s3x *x)
{
	const char *v;
	size_t n;
	uint64_t size = 0;
	char num[33];

	switch (x->field) {
	case F_NONE:
		break;
	case F_CODE:
		s3x_copy_printable(x->code, sizeof(x->code), x->text.data ? x->text.data : "",
				   x->text.len);
		break;
	case F_MESSAGE:
		s3x_copy_printable(x->msg, sizeof(x->msg), x->text.data ? x->text.data : "",
				   x->text.len);
		break;
	case F_TRUNCATED:
		v = s3x_trimmed(x, &n);
		if (x->has_truncated || !((n == 4 && memcmp(v, "true", 4) == 0) ||
					  (n == 5 && memcmp(v, "false", 5) == 0)))
			s3x_fail(x, -EPROTO);
		x->has_truncated = true;
		x->truncated = n == 4;
		break;
	case F_TOKEN:
		v = s3x_trimmed(x, &n);
		memcpy(x->token, v, n);
		x->token[n] = '\0';
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
				s3x_fail(x, -EPROTO);
		}
		break;
	case F_ENCODING:
		v = s3x_trimmed(x, &n);
		x->url_encoded = n == 3 && memcmp(v, "url", 3) == 0;
		break;
	case F_KEY:
	case F_PREFIX:
		if (x->cur_raw) {
			s3x_fail(x, -EPROTO);
			break;
		}
		x->cur_raw = buf_steal(&x->text);
		if (!x->cur_raw)
			s3x_fail(x, -ENOMEM);
		break;
	case F_SIZE:
		v = s3x_trimmed(x, &n);
		memcpy(num, v, n);
		num[n] = '\0';
		if (x->has_size || num_parse_u64(num, &size) != 0)
			s3x_fail(x, -EPROTO);
		x->cur.obj.size = size;
		x->has_size = true;
		break;
	case F_ETAG:
		v = s3x_trimmed(x, &n);
		if (x->has_etag || s3_xml_set_etag(&x->cur.obj, v, n) != 0)
			s3x_fail(x, -EPROTO);
		x->has_etag = true;
		break;
	case F_MTIME:
		v = s3x_trimmed(x, &n);
		if (s3_xml_parse_time(v, n, &x->cur.obj.mtime_sec, &x->cur.obj.mtime_nsec) != 0)
			s3x_fail(x, -EPROTO);
		break;
	}
	x->field = F_NONE;
}

/* Appends the finished entry (its raw name moves into x->raw). */
static void s3x_push(struct s3x *x)
{
	if (!x->cur_raw || (!x->cur.is_prefix && (!x->has_size || !x->has_etag))) {
		s3x_fail(x, -EPROTO);
		return;
	}
	if (x->n == S3_XML_ENTRIES_MAX) {
		s3x_fail(x, -EPROTO);
		return;
	}
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct s3_list_entry *e;
		char **r;

		if (cap > S3_XML_ENTRIES_MAX)
			cap = S3_XML_ENTRIES_MAX;
		e = realloc(x->entries, cap * sizeof(*e));
		if (!e) {
			s3x_fail(x, -ENOMEM);
			return;
		}
		x->entries = e;
		r = realloc(x->raw, cap * sizeof(*r));
		if (!r) {
			s3x_fail(x, -ENOMEM);
			return;
		}
		x->raw = r;
		x->cap = cap;
	}
	x->entries[x->n] = x->cur;
	x->raw[x->n] = x->cur_raw;
	x->cur_raw = NULL;
	x->n++;
}

static void XMLCALL s3x_end(void *ud, const XML_Char *name)
{
	struct s3x *x = ud;

	(void)name;
	if (x->err)
		return;
	if (x->field != F_NONE && x->depth == x->field_depth)
		s3x_end_field(x);
	if (!x->error_doc && x->depth == 2 && x->in != IN_NONE && !x->err) {
		s3x_push(x);
		x->in = IN_NONE;
	}
	x->depth--;
}

/* DOCTYPE and entity declarations have no place in an S3 answer (and enable entity bombs). */
static void XMLCALL s3x_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
				const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	s3x_fail(ud, -EPROTO);
}

static void XMLCALL s3x_entity_decl(void *ud, const XML_Char *name, int is_param,
				    const XML_Char *value, int value_len, const XML_Char *base,
				    const XML_Char *sysid, const XML_Char *pubid,
				    const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	s3x_fail(ud, -EPROTO);
}

static void s3x_free(struct s3x *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->raw[i]);
	free(x->raw);
	free(x->entries);
	free(x->cur_raw);
	buf_free(&x->text);
	if (x->parser)
		XML_ParserFree(x->parser);
}

/* Runs expat over the document. Returns 0, -EPROTO, -ENOMEM. */
static int s3x_run(struct s3x *x, const char *xml, size_t len)
{
	buf_init(&x->text, 3 * URL_KEY_MAX + 64);
	x->parser = XML_ParserCreate(NULL);
	if (!x->parser)
		return -ENOMEM;
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, s3x_start, s3x_end);
	XML_SetCharacterDataHandler(x->parser, s3x_text);
	XML_SetStartDoctypeDeclHandler(x->parser, s3x_doctype);
	XML_SetEntityDeclHandler(x->parser, s3x_entity_decl);
	if (XML_Parse(x->parser, xml, (int)len, XML_TRUE) != XML_STATUS_OK && !x->err)
		x->err = XML_GetErrorCode(x->parser) == XML_ERROR_NO_MEMORY ? -ENOMEM : -EPROTO;
	return x->err;
}

/* Turns every raw name into entries[i].obj.name (decoding it if the page is url-encoded). */
static int s3x_finish_names(struct s3x *x)
{
	struct buf name;
	int rc = 0;

	buf_init(&name, URL_KEY_MAX);
	for (size_t i = 0; i < x->n && !rc; i++) {
		buf_reset(&name);
		if (x->url_encoded)
			rc = url_decode(&name, x->raw[i], true);
		else
			rc = buf_puts(&name, x->raw[i]);
		if (rc || name.len == 0 || !url_utf8_valid(name.data, name.len) ||
		    memchr(name.data, '\0', name.len))
			rc = rc == -ENOMEM ? -ENOMEM : -EPROTO;
		else
			memcpy(x->entries[i].obj.name, name.data, name.len + 1);
	}
	buf_free(&name);
	return rc;
}

int s3_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out)
{
	struct s3x x;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!xml)
		return -EINVAL;
	if (len == 0 || len > S3_XML_DOC_MAX)
		return -EPROTO;
	memset(&x, 0, sizeof(x));
	rc = s3x_run(&x, xml, len);
	if (!rc && (!x.has_truncated || (x.truncated && !x.token[0])))
		rc = -EPROTO;
	if (!rc)
		rc = s3x_finish_names(&x);
	if (rc)
		goto out_free;
	out->entries = x.entries;
	out->n = x.n;
	out->truncated = x.truncated;
	out->url_encoded = x.url_encoded;
	if (x.truncated)
		memcpy(out->next_token, x.token, sizeof(out->next_token));
	x.entries = NULL;
out_free:
	s3x_free(&x);
	return rc;
}

void s3_xml_page_free(struct s3_list_page *p)
{
	if (!p)
		return;
	free(p->entries);
	p->entries = NULL;
	p->n = 0;
}

int s3_xml_parse_error(const char *xml, size_t len, char *code, size_t codesz, char *msg,
		       size_t msgsz)
{
	struct s3x x;
	int rc;

	if (!xml || !code || !msg || !codesz || !msgsz)
		return -EINVAL;
	code[0] = msg[0] = '\0';
	if (len == 0 || len > S3_XML_ERROR_DOC_MAX)
		return -EPROTO;
	memset(&x, 0, sizeof(x));
	x.error_doc = true;
	rc = s3x_run(&x, xml, len);
	if (!rc) {
		snprintf(code, codesz, "%s", x.code);
		snprintf(msg, msgsz, "%s", x.msg);
	}
	s3x_free(&x);
	return rc;
}

static int s3x_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int s3_xml_set_etag(struct store_object *obj, const char *etag, size_t len)
{
	const char *s = etag;
	size_t n = len;

	while (n && s3x_space(*s)) {
		s++;
		n--;
	}
	while (n && s3x_space(s[n - 1]))
		n--;
	if (n >= 2 && s[0] == 'W' && s[1] == '/') {
		s += 2;
		n -= 2;
	}
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	if (n == 0 || n > STORE_VERSION_MAX)
		return -EPROTO;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"')
			return -EPROTO;
	}
	memcpy(obj->version, s, n);
	obj->version[n] = '\0';
	obj->has_md5 = false;
	memset(obj->md5, 0, sizeof(obj->md5));
	if (n == 32) {
		bool hex = true;

		for (size_t i = 0; i < 32 && hex; i++)
			hex = s3x_hexval(s[i]) >= 0;
		if (hex) {
			for (size_t i = 0; i < 16; i++)
				obj->md5[i] = (uint8_t)(s3x_hexval(s[2 * i]) << 4 |
							s3x_hexval(s[2 * i + 1]));
			obj->has_md5 = true;
		}
	}
	return 0;
}

/* Parses exactly n decimal digits. Returns the value or -1. */
static int s3x_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t s3x_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int s3x_days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Checks the fields and computes the Unix time. Returns 0 or -EPROTO. */
static int s3x_make_time(int y, int mo, int d, int h, int mi, int s, int64_t *sec)
{
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > s3x_days_in_month(y, mo) || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return -EPROTO;
	*sec = s3x_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	return 0;
}

int s3_xml_parse_time(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
	uint32_t frac = 0;
	size_t i = 19;
	int fdigits = 0;

	if (!s || len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return -EPROTO;
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			if (++fdigits > 9)
				return -EPROTO;
			frac = frac * 10 + (uint32_t)(s[i] - '0');
		}
		if (fdigits == 0)
			return -EPROTO;
		for (int k = fdigits; k < 9; k++)
			frac *= 10;
	}
	if (i + 1 != len || s[i] != 'Z')
		return -EPROTO;
	if (s3x_make_time(s3x_digits(s, 4), s3x_digits(s + 5, 2), s3x_digits(s + 8, 2),
			  s3x_digits(s + 11, 2), s3x_digits(s + 14, 2), s3x_digits(s + 17, 2),
			  sec) != 0)
		return -EPROTO;
	*nsec = frac;
	return 0;
}

int s3_xml_parse_http_date(const char *s, int64_t *sec)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const char wdays[] = "MonTueWedThuFriSatSun";
	const char *m;
	int mo = 0;

	/* "Wed, 25 Nov 2026 22:39:13 GMT" */
	if (!s || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
	    s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' ||
	    memcmp(s + 26, "GMT", 3) != 0)
		return -EPROTO;
	for (m = wdays; *m; m += 3) {
		if (memcmp(s, m, 3) == 0)
			break;
	}
	if (!*m)
		return -EPROTO;
	for (m = months; *m; m += 3) {
		if (memcmp(s + 8, m, 3) == 0) {
			mo = (int)((m - months) / 3) + 1;
			break;
		}
	}
	if (!mo)
		return -EPROTO;
	return s3x_make_time(s3x_digits(s + 12, 4), mo, s3x_digits(s + 5, 2), s3x_digits(s + 17, 2),
			     s3x_digits(s + 20, 2), s3x_digits(s + 23, 2), sec);
}
