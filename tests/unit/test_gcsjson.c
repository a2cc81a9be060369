/* Unit tests for the GCS JSON parsers (responses captured from the GCS emulator, then malformed,
 * truncated, empty, mistyped and huge inputs), RFC 3339 times, endpoint resolution, and the
 * requests the GCS store builds. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/gcs.h"
#include "common/log.h"
#include "common/store.h"

/* ---- helpers ---- */

static char *read_testdata(const char *name, size_t *len)
{
	const char *dir = getenv("HOARDFS_TESTDATA");
	char path[4096];
	struct stat st;
	char *data;
	ssize_t n;
	int fd;

	if (!dir)
		dir = "tests/testdata";
	snprintf(path, sizeof(path), "%s/gcs/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("cannot open %s (set HOARDFS_TESTDATA)", path);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size + 1);
	assert_non_null(data);
	n = read(fd, data, (size_t)st.st_size);
	assert_int_equal(n, st.st_size);
	data[n] = '\0';
	close(fd);
	*len = (size_t)n;
	return data;
}

#define MAX_ENTRIES 16

/* What a listing callback saw. */
struct seen {
	int n;
	char names[MAX_ENTRIES][URL_KEY_MAX + 1];
	bool is_prefix[MAX_ENTRIES];
	struct store_object last_obj;
	int fail_at; /* return -EINTR on this call (1-based), 0 = never */
};

static int collect(void *ctx, const struct store_object *obj, bool is_prefix)
{
	struct seen *s = ctx;

	if (s->n < MAX_ENTRIES) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", obj->name);
		s->is_prefix[s->n] = is_prefix;
	}
	if (!is_prefix)
		s->last_obj = *obj;
	s->n++;
	if (s->fail_at && s->n == s->fail_at)
		return -EINTR;
	return 0;
}

static int parse_page_str(const char *json, struct seen *s, char *token)
{
	return gcs_parse_list_page(json, strlen(json), collect, s, token, GCS_PAGE_TOKEN_MAX + 1);
}

static int parse_object_str(const char *json, struct store_object *o)
{
	return gcs_parse_object(json, strlen(json), o);
}

static const uint8_t md5_hello[16] = { 0x5e, 0xb6, 0x3b, 0xbb, 0xe0, 0x1e, 0xee, 0xd0,
				       0x93, 0xcb, 0x22, 0xbb, 0x8f, 0x5a, 0xcd, 0xc3 };

/* ---- captured responses ---- */

static void test_object_gzip(void **state)
{
	static const uint8_t md5[16] = { 0x12, 0x83, 0xc0, 0x01, 0xa3, 0xe2, 0xf4, 0x13,
					 0x85, 0x7a, 0xd7, 0x80, 0x7b, 0xae, 0x4a, 0xe3 };
	struct store_object o;
	size_t len;
	char *json = read_testdata("object_gzip.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_object(json, len, &o), 0);
	assert_string_equal(o.name, "gz/obj.txt");
	assert_int_equal(o.size, 41);
	assert_string_equal(o.version, "1795646279430");
	assert_int_equal(o.mtime_sec, 1795646279);
	assert_int_equal(o.mtime_nsec, 430000000);
	assert_true(o.has_crc32c);
	assert_int_equal(o.crc32c, 0x5e75fa5b);
	assert_true(o.has_md5);
	assert_memory_equal(o.md5, md5, 16);
	assert_string_equal(o.content_encoding, "gzip");
	free(json);
}

static void test_object_empty_and_utf8(void **state)
{
	static const uint8_t md5_empty[16] = { 0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
					       0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e };
	struct store_object o;
	size_t len;
	char *json = read_testdata("object_empty.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_object(json, len, &o), 0);
	assert_string_equal(o.name, "empty0");
	assert_int_equal(o.size, 0);
	assert_int_equal(o.crc32c, 0);
	assert_true(o.has_crc32c);
	assert_memory_equal(o.md5, md5_empty, 16);
	assert_string_equal(o.content_encoding, "");
	free(json);

	json = read_testdata("object_utf8.json", &len);
	assert_int_equal(gcs_parse_object(json, len, &o), 0);
	assert_string_equal(o.name, "sp ace/\xc3\xbc.txt");
	assert_int_equal(o.size, 11);
	assert_int_equal(o.crc32c, 0xc99465aa); /* CRC-32C of "hello world" */
	assert_memory_equal(o.md5, md5_hello, 16);
	assert_int_equal(o.mtime_sec, 1795646271);
	assert_int_equal(o.mtime_nsec, 53000000);
	free(json);
}

/* An error document is not an object resource. */
static void test_object_error_body(void **state)
{
	struct store_object o;
	size_t len;
	char *json = read_testdata("error_404.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_object(json, len, &o), -EPROTO);
	free(json);
}

static void test_list_pages(void **state)
{
	char token[GCS_PAGE_TOKEN_MAX + 1];
	struct seen s = { 0 };
	size_t len;
	char *json = read_testdata("list_page1.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "a.txt");
	assert_string_equal(s.names[1], "dir/b.txt");
	assert_false(s.is_prefix[0]);
	assert_string_equal(token, "dir/sub/c.txt");
	free(json);

	memset(&s, 0, sizeof(s));
	json = read_testdata("list_page2.json", &len);
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "dir/sub/c.txt");
	assert_string_equal(s.names[1], "empty0");
	assert_int_equal(s.last_obj.size, 0);
	assert_string_equal(token, "gz/obj.txt");
	free(json);

	memset(&s, 0, sizeof(s));
	json = read_testdata("list_last.json", &len);
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "gz/obj.txt");
	assert_string_equal(s.names[1], "sp ace/\xc3\xbc.txt");
	assert_string_equal(token, "");
	free(json);
}

/* Prefixes and objects come merged in name order, prefixes flagged. */
static void test_list_prefixes(void **state)
{
	char token[GCS_PAGE_TOKEN_MAX + 1];
	struct seen s = { 0 };
	size_t len;
	char *json = read_testdata("list_delim_page1.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.names[0], "a.txt");
	assert_false(s.is_prefix[0]);
	assert_string_equal(s.names[1], "dir/");
	assert_true(s.is_prefix[1]);
	assert_string_equal(s.names[2], "gz/");
	assert_true(s.is_prefix[2]);
	assert_string_equal(s.names[3], "sp ace/");
	assert_true(s.is_prefix[3]);
	assert_string_equal(token, "empty0");
	free(json);
}

static void test_list_empty(void **state)
{
	char token[GCS_PAGE_TOKEN_MAX + 1] = "x";
	struct seen s = { 0 };
	size_t len;
	char *json = read_testdata("list_empty.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 0);
	assert_string_equal(token, "");
	free(json);
	assert_int_equal(parse_page_str("{}", &s, token), 0);
	assert_int_equal(parse_page_str("{\"items\":null,\"prefixes\":[]}\n", &s, token), 0);
	assert_int_equal(s.n, 0);
}

/* The callback's error stops the page and is returned. */
static void test_list_callback_error(void **state)
{
	char token[GCS_PAGE_TOKEN_MAX + 1];
	struct seen s = { .fail_at = 2 };
	size_t len;
	char *json = read_testdata("list_delim_page1.json", &len);

	(void)state;
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)), -EINTR);
	assert_int_equal(s.n, 2);
	free(json);
}

/* Every truncation of a real response is refused, and delivers nothing. */
static void test_truncated(void **state)
{
	const char *files[] = { "list_page1.json", "list_delim_page1.json", "object_gzip.json" };
	char token[GCS_PAGE_TOKEN_MAX + 1];

	(void)state;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *json = read_testdata(files[f], &len);

		for (size_t cut = 0; cut < len; cut++) {
			struct seen s = { 0 };
			struct store_object o;
			/* A copy of exactly `cut` bytes, so ASan sees any read past the end. */
			char *part = malloc(cut ? cut : 1);

			assert_non_null(part);
			memcpy(part, json, cut);
			assert_int_equal(
				gcs_parse_list_page(part, cut, collect, &s, token, sizeof(token)),
				-EPROTO);
			assert_int_equal(s.n, 0);
			assert_int_equal(gcs_parse_object(part, cut, &o), -EPROTO);
			free(part);
		}
		free(json);
	}
}

/* ---- malformed object resources ---- */

#define OBJ(fields) "{\"name\":\"a\",\"size\":\"1\",\"generation\":\"7\"" fields "}"

static void test_object_minimal(void **state)
{
	struct store_object o;

	(void)state;
	assert_int_equal(parse_object_str(OBJ(""), &o), 0);
	assert_string_equal(o.name, "a");
	assert_int_equal(o.size, 1);
	assert_string_equal(o.version, "7");
	assert_false(o.has_md5);
	assert_false(o.has_crc32c);
	assert_int_equal(o.mtime_sec, 0);
	/* Integers in place of decimal strings are fine, as are JSON nulls for optional fields. */
	assert_int_equal(parse_object_str("{\"name\":\"a\",\"size\":5,\"generation\":9,"
					  "\"md5Hash\":null,\"crc32c\":null}",
					  &o),
			 0);
	assert_int_equal(o.size, 5);
	assert_string_equal(o.version, "9");
	assert_int_equal(parse_object_str(OBJ(",\"size\":\"9223372036854775807\""), &o), 0);
	assert_int_equal(o.size, INT64_MAX);
}

static void test_object_wrong_types(void **state)
{
	static const char *bad[] = {
		"{\"size\":\"1\",\"generation\":\"7\"}", /* no name */
		"{\"name\":\"a\",\"generation\":\"7\"}", /* no size */
		"{\"name\":\"a\",\"size\":\"1\"}",	 /* no generation */
		"{\"name\":null,\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":1,\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":\"\",\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":[\"a\"],\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":\"a\\u0000b\",\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":\"a\\nb\",\"size\":\"1\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":true,\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":1.5,\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":-1,\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"-1\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"+1\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"1 \",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"0x10\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"9223372036854775808\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"18446744073709551616\",\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":{},\"generation\":\"7\"}",
		"{\"name\":\"a\",\"size\":\"1\",\"generation\":\"abc\"}",
		"{\"name\":\"a\",\"size\":\"1\",\"generation\":[]}",
		"{\"name\":\"a\",\"size\":\"1\",\"generation\":null}",
		OBJ(",\"md5Hash\":\"XrY7u+Ae7tCTyyK7j1rNww\""),	  /* unpadded */
		OBJ(",\"md5Hash\":\"XrY7u+Ae7tCTyyK7j1rN\""),	  /* 12 bytes */
		OBJ(",\"md5Hash\":\"XrY7u-Ae7tCTyyK7j1rNww==\""), /* url alphabet */
		OBJ(",\"md5Hash\":\"XrY7u+Ae7tCTyyK7j1rNwx==\""), /* bits under the padding */
		OBJ(",\"md5Hash\":\"XrY7u+Ae7tCTyyK7j1rNww=a\""),
		OBJ(",\"md5Hash\":16"),
		OBJ(",\"crc32c\":\"yZRlqg\""),
		OBJ(",\"crc32c\":\"yZRlqh==\""),
		OBJ(",\"crc32c\":\"yZRlqgAA\""),
		OBJ(",\"crc32c\":\"\""),
		OBJ(",\"crc32c\":123"),
		OBJ(",\"updated\":\"yesterday\""),
		OBJ(",\"updated\":\"2024-02-30T00:00:00Z\""),
		OBJ(",\"updated\":1700000000"),
		OBJ(",\"contentEncoding\":\"gzip gzip gzip gzip gzip gzip gz\""), /* 32 bytes */
		OBJ(",\"contentEncoding\":\"gz\\tip\""),
		OBJ(",\"contentEncoding\":[\"gzip\"]"),
		"[" OBJ("") "]",
		"\"" OBJ("") "\"",
		"null",
		"42",
		OBJ("") "x",
		OBJ("") OBJ(""),
		"{\"name\":\"a\",\"size\":\"1\",\"generation\":\"7\",}",
		"{'name':'a'}",
		"",
		" ",
	};
	struct store_object o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_object_str(bad[i], &o);

		if (rc != -EPROTO)
			fail_msg("accepted or mis-reported (%d): %s", rc, bad[i]);
	}
	assert_int_equal(gcs_parse_object(NULL, 3, &o), -EINVAL);
	/* Invalid UTF-8 in a name (a lone continuation byte, an overlong slash). */
	assert_int_equal(
		parse_object_str("{\"name\":\"a\x80\",\"size\":\"1\",\"generation\":\"7\"}", &o),
		-EPROTO);
	assert_int_equal(parse_object_str("{\"name\":\"a\xc0\xaf\",\"size\":\"1\",\"generation\":"
					  "\"7\"}",
					  &o),
			 -EPROTO);
	/* 31 bytes of content encoding is the most that fits. */
	assert_int_equal(
		parse_object_str(OBJ(",\"contentEncoding\":\"gzip gzip gzip gzip gzip gzip "
				     "g\""),
				 &o),
		0);
	assert_int_equal(strlen(o.content_encoding), 31);
}

/* Names up to URL_KEY_MAX bytes are taken, longer ones refused. */
static void test_object_name_bounds(void **state)
{
	struct store_object o;
	size_t n = URL_KEY_MAX + 200;
	char *json = malloc(n);
	char *name = malloc(URL_KEY_MAX + 2);

	(void)state;
	assert_non_null(json);
	assert_non_null(name);
	memset(name, 'x', URL_KEY_MAX);
	name[URL_KEY_MAX] = '\0';
	snprintf(json, n, "{\"name\":\"%s\",\"size\":\"1\",\"generation\":\"1\"}", name);
	assert_int_equal(parse_object_str(json, &o), 0);
	assert_int_equal(strlen(o.name), URL_KEY_MAX);
	name[URL_KEY_MAX] = 'x';
	name[URL_KEY_MAX + 1] = '\0';
	snprintf(json, n, "{\"name\":\"%s\",\"size\":\"1\",\"generation\":\"1\"}", name);
	assert_int_equal(parse_object_str(json, &o), -EPROTO);
	free(json);
	free(name);
}

/* ---- malformed listings ---- */

static void test_list_wrong_types(void **state)
{
	static const char *bad[] = {
		"{\"items\":{}}",
		"{\"items\":\"a\"}",
		"{\"items\":[1]}",
		"{\"items\":[null]}",
		"{\"items\":[{\"name\":\"a\"}]}",
		"{\"items\":[" OBJ("") ",{\"name\":\"b\",\"size\":\"x\",\"generation\":\"1\"}]}",
		"{\"prefixes\":\"a/\"}",
		"{\"prefixes\":[1]}",
		"{\"prefixes\":[\"\"]}",
		"{\"prefixes\":[null]}",
		"{\"prefixes\":[\"a\\u0000/\"]}",
		"{\"nextPageToken\":5}",
		"{\"nextPageToken\":[]}",
		"{\"nextPageToken\":\"a\\nb\"}",
		"[]",
		"null",
		"{}{}",
		"{\"items\":[]",
		"",
		"\n",
	};
	char token[GCS_PAGE_TOKEN_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct seen s = { 0 };
		int rc = parse_page_str(bad[i], &s, token);

		if (rc != -EPROTO || s.n != 0)
			fail_msg("accepted or mis-reported (%d, %d entries): %s", rc, s.n, bad[i]);
		assert_string_equal(token, "");
	}
	{
		struct seen s = { 0 };

		assert_int_equal(
			gcs_parse_list_page("{}", 2, collect, &s, token, GCS_PAGE_TOKEN_MAX),
			-EINVAL);
		assert_int_equal(gcs_parse_list_page(NULL, 2, collect, &s, token, sizeof(token)),
				 -EINVAL);
		assert_int_equal(gcs_parse_list_page("{}", 2, NULL, &s, token, sizeof(token)),
				 -EINVAL);
	}
}

static void test_list_token_bounds(void **state)
{
	char token[GCS_PAGE_TOKEN_MAX + 1];
	size_t n = GCS_PAGE_TOKEN_MAX + 64;
	char *json = malloc(n), *t = malloc(GCS_PAGE_TOKEN_MAX + 2);
	struct seen s = { 0 };

	(void)state;
	assert_non_null(json);
	assert_non_null(t);
	memset(t, 'T', GCS_PAGE_TOKEN_MAX);
	t[GCS_PAGE_TOKEN_MAX] = '\0';
	snprintf(json, n, "{\"nextPageToken\":\"%s\"}", t);
	assert_int_equal(parse_page_str(json, &s, token), 0);
	assert_int_equal(strlen(token), GCS_PAGE_TOKEN_MAX);
	t[GCS_PAGE_TOKEN_MAX] = 'T';
	t[GCS_PAGE_TOKEN_MAX + 1] = '\0';
	snprintf(json, n, "{\"nextPageToken\":\"%s\"}", t);
	assert_int_equal(parse_page_str(json, &s, token), -EPROTO);
	free(json);
	free(t);
}

/* Deep nesting, a megabytes-long string, and an oversized array: refused quickly, no crash. */
static void test_huge_inputs(void **state)
{
	size_t n = 4u << 20;
	char *json = malloc(n + 64);
	char token[GCS_PAGE_TOKEN_MAX + 1];
	struct store_object o;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	assert_non_null(json);

	memset(json, '[', n);
	assert_int_equal(gcs_parse_list_page(json, n, collect, &s, token, sizeof(token)), -EPROTO);
	assert_int_equal(gcs_parse_object(json, n, &o), -EPROTO);

	len = (size_t)snprintf(json, 64, "{\"name\":\"");
	memset(json + len, 'n', n);
	len += n;
	len += (size_t)snprintf(json + len, 64, "\",\"size\":\"1\",\"generation\":\"1\"}");
	assert_int_equal(gcs_parse_object(json, len, &o), -EPROTO);

	/* 10001 items (more than any page may hold). */
	len = (size_t)snprintf(json, 64, "{\"items\":[");
	for (int i = 0; i <= 10000; i++)
		len += (size_t)snprintf(json + len, 8, "%s1", i ? "," : "");
	len += (size_t)snprintf(json + len, 8, "]}");
	assert_int_equal(gcs_parse_list_page(json, len, collect, &s, token, sizeof(token)),
			 -EPROTO);
	assert_int_equal(s.n, 0);
	free(json);
}

/* A full page of 1000 objects parses and is delivered in order. */
static void test_full_page(void **state)
{
	struct buf b;
	char token[GCS_PAGE_TOKEN_MAX + 1];
	struct seen s = { 0 };

	(void)state;
	buf_init(&b, 1u << 20);
	assert_int_equal(buf_puts(&b, "{\"kind\":\"storage#objects\",\"nextPageToken\":\"n\","
				      "\"items\":["),
			 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&b,
					    "%s{\"name\":\"f%04d\",\"size\":\"%d\",\"generation\":"
					    "\"1\",\"crc32c\":\"AAAAAA==\","
					    "\"updated\":\"2024-01-01T00:00:00Z\"}",
					    i ? "," : "", i, i),
				 0);
	assert_int_equal(buf_puts(&b, "]}"), 0);
	assert_int_equal(gcs_parse_list_page(b.data, b.len, collect, &s, token, sizeof(token)), 0);
	assert_int_equal(s.n, 1000);
	assert_string_equal(s.names[0], "f0000");
	assert_string_equal(s.last_obj.name, "f0999");
	assert_int_equal(s.last_obj.size, 999);
	assert_int_equal(s.last_obj.mtime_sec, 1704067200);
	buf_free(&b);
}

/* ---- RFC 3339 ---- */

static void check_time(const char *s, int64_t sec, uint32_t nsec)
{
	int64_t got_sec = -7;
	uint32_t got_nsec = 7;

	if (gcs_parse_rfc3339(s, &got_sec, &got_nsec) != 0)
		fail_msg("refused %s", s);
	assert_int_equal(got_sec, sec);
	assert_int_equal(got_nsec, nsec);
}

static void test_rfc3339(void **state)
{
	static const char *bad[] = {
		"",
		"2024-01-01",
		"2024-01-01T00:00:00",	 /* no zone */
		"2024-01-01T00:00:00.Z", /* empty fraction */
		"2024-01-01T00:00:00ZZ",
		"2024-01-01T00:00:00+0100", /* offset without colon */
		"2024-01-01T00:00:00+24:00",
		"2024-13-01T00:00:00Z",
		"2024-00-01T00:00:00Z",
		"2024-01-32T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2024-04-31T00:00:00Z",
		"2024-01-01T24:00:00Z",
		"2024-01-01T00:60:00Z",
		"2024-01-01T00:00:61Z",
		"2024-1-01T00:00:00Z",
		"2024-01-01X00:00:00Z",
		"２０２４-01-01T00:00:00Z",
		"2024-01-01T00:00:00.1234567890123456789012345678901234567890Z",
	};
	int64_t sec;
	uint32_t nsec;

	(void)state;
	check_time("1970-01-01T00:00:00Z", 0, 0);
	check_time("1969-12-31T23:59:59Z", -1, 0);
	check_time("2026-11-25T22:37:59.430Z", 1795646279, 430000000);
	check_time("2000-02-29T12:00:00-05:30", 951845400, 0);
	check_time("2000-02-29t17:30:00z", 951845400, 0);
	check_time("2024-01-01T01:00:00+01:00", 1704067200, 0);
	check_time("2024-01-01T00:00:00.123456789Z", 1704067200, 123456789);
	check_time("2024-01-01T00:00:00.1234567891Z", 1704067200, 123456789);
	check_time("2024-01-01T00:00:00.5Z", 1704067200, 500000000);
	check_time("9999-12-31T23:59:59Z", 253402300799, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (gcs_parse_rfc3339(bad[i], &sec, &nsec) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(gcs_parse_rfc3339(NULL, &sec, &nsec), -EINVAL);
}

/* ---- endpoints ---- */

static void check_endpoint(const char *cfg, const char *emu, const char *want)
{
	char out[STORE_ENDPOINT_MAX + 1];

	assert_int_equal(gcs_resolve_endpoint(cfg, emu, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_endpoint(void **state)
{
	char out[STORE_ENDPOINT_MAX + 1], small[16];
	char *long_url = malloc(600);

	(void)state;
	check_endpoint(NULL, NULL, "https://storage.googleapis.com");
	check_endpoint("", "", "https://storage.googleapis.com");
	check_endpoint(NULL, "127.0.0.1:9023", "http://127.0.0.1:9023");
	check_endpoint(NULL, "localhost:9199/", "http://localhost:9199");
	check_endpoint(NULL, "https://gcs.example:443", "https://gcs.example:443");
	check_endpoint("http://127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:1");
	check_endpoint("http://127.0.0.1:1//", NULL, "http://127.0.0.1:1");
	check_endpoint("https://storage.googleapis.com/storage/v1/", NULL,
		       "https://storage.googleapis.com");
	check_endpoint("http://h/prefix", NULL, "http://h/prefix");

	assert_int_equal(gcs_resolve_endpoint("ftp://h", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("127.0.0.1:1", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("http://", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("http:///x", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("http://a b", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("http://h\r\nX: y", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint("http://h/?q=1", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint(NULL, "ftp://h:1", out, sizeof(out)), -EINVAL);
	assert_int_equal(gcs_resolve_endpoint(NULL, "h:1", small, 8), -ENAMETOOLONG);
	assert_non_null(long_url);
	memset(long_url, 'h', 599);
	memcpy(long_url, "http://", 7);
	long_url[599] = '\0';
	assert_int_equal(gcs_resolve_endpoint(long_url, NULL, out, sizeof(out)), -ENAMETOOLONG);
	free(long_url);
}

/* ---- the requests the store builds (no network) ---- */

static struct store *open_store(const char *endpoint)
{
	struct store_config cfg = {
		.scheme = URL_GS, .bucket = "bkt", .endpoint = endpoint, .anonymous = true
	};
	struct store *st = NULL;

	assert_int_equal(store_open(&cfg, &st), 0);
	return st;
}

static int null_write(void *ctx, uint64_t off, const void *data, size_t len)
{
	(void)ctx;
	(void)off;
	(void)data;
	(void)len;
	return 0;
}

static void test_store_requests(void **state)
{
	struct http_sink sink = { .write = null_write };
	struct store *st;
	struct http_req *req;

	(void)state;
	unsetenv("HOARDFS_LIST_PAGE_SIZE");
	st = open_store("http://127.0.0.1:9/");
	assert_non_null(strstr(store_describe(st), "gs://bkt"));
	assert_non_null(strstr(store_describe(st), "http://127.0.0.1:9"));
	assert_non_null(strstr(store_describe(st), "anonymous"));

	assert_int_equal(
		store_read_req(st, "sp ace/\xc3\xbc.txt", "1795646271053", 11, 2, 4, &sink, &req),
		0);
	assert_string_equal(http_req_url(req), "http://127.0.0.1:9/storage/v1/b/bkt/o/"
					       "sp%20ace%2F%C3%BC.txt?alt=media&generation="
					       "1795646271053");
	assert_string_equal(http_req_method(req), "GET");
	http_req_free(req);

	/* Versions must be generations; ranges must lie inside the object. */
	assert_int_equal(store_read_req(st, "a", "W/\"etag\"", 11, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "a", "", 11, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "a", "12", 11, 10, 2, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "a", "12", 11, 0, 0, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "", "12", 11, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "a\nb", "12", 11, 0, 1, &sink, &req), -EINVAL);
	assert_null(req);
	store_free(st);

	/* STORAGE_EMULATOR_HOST is used when no endpoint is configured. */
	setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443", 1);
	st = open_store(NULL);
	assert_non_null(strstr(store_describe(st), "(endpoint http://127.0.0.1:4443;"));
	store_free(st);
	unsetenv("STORAGE_EMULATOR_HOST");
}

static void test_store_bad_config(void **state)
{
	struct store_config cfg = { .scheme = URL_GS, .bucket = "bkt", .anonymous = true };
	struct store *st = NULL;

	(void)state;
	cfg.endpoint = "ftp://x";
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	cfg.endpoint = "http://127.0.0.1:9";
	setenv("HOARDFS_LIST_PAGE_SIZE", "0", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	setenv("HOARDFS_LIST_PAGE_SIZE", "1001", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	setenv("HOARDFS_LIST_PAGE_SIZE", "12x", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	setenv("HOARDFS_LIST_PAGE_SIZE", "1000", 1);
	assert_int_equal(store_open(&cfg, &st), 0);
	store_free(st);
	unsetenv("HOARDFS_LIST_PAGE_SIZE");
	cfg.bucket = "Not a bucket";
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	assert_null(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_gzip),
		cmocka_unit_test(test_object_empty_and_utf8),
		cmocka_unit_test(test_object_error_body),
		cmocka_unit_test(test_list_pages),
		cmocka_unit_test(test_list_prefixes),
		cmocka_unit_test(test_list_empty),
		cmocka_unit_test(test_list_callback_error),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_object_minimal),
		cmocka_unit_test(test_object_wrong_types),
		cmocka_unit_test(test_object_name_bounds),
		cmocka_unit_test(test_list_wrong_types),
		cmocka_unit_test(test_list_token_bounds),
		cmocka_unit_test(test_huge_inputs),
		cmocka_unit_test(test_full_page),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_store_requests),
		cmocka_unit_test(test_store_bad_config),
	};

	log_init("test_gcsjson", LOG_LVL_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
