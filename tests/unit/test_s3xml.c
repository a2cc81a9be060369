/* Unit tests for common/s3_xml: ListObjectsV2 pages captured from a live s3rver (see
 * tests/testdata/s3xml/README.md), S3 error bodies, and malformed, truncated, empty, hostile and
 * huge inputs; ETag, ISO 8601 and HTTP date values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/s3_xml.h"

#define T_A_TXT 1795646353 /* 2026-11-25T22:39:13Z, s3rver's LastModified of a.txt */

static char *load(const char *name, size_t *len)
{
	const char *dir = getenv("HOARDFS_TESTDATA");
	char path[1024];
	struct buf b;
	char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/s3xml/%s", dir && *dir ? dir : "tests/testdata", name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s: %s (is HOARDFS_TESTDATA set?)", path, strerror(errno));
	buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(f);
	*len = b.len;
	return buf_steal(&b);
}

static int parse_file(const char *name, struct s3_list_page *p)
{
	size_t len;
	char *xml = load(name, &len);
	int rc = s3_xml_parse_list(xml, len, p);

	free(xml);
	return rc;
}

static int parse_str(const char *xml, struct s3_list_page *p)
{
	return s3_xml_parse_list(xml, strlen(xml), p);
}

static const struct s3_list_entry *find(const struct s3_list_page *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->entries[i].obj.name, name) == 0)
			return &p->entries[i];
	}
	fail_msg("entry '%s' not in the page", name);
	return NULL;
}

static void test_list_all(void **state)
{
	static const char *const names[] = {
		"a.txt",
		"caf\xc3\xa9/na\xc3\xafve \xe2\x9c\x93.txt",
		"empty.bin",
		"models/llama/config.json",
		"models/llama/weights-00001.safetensors",
		"models/llama/weights-00002.safetensors",
		"models/mistral/tok.json",
		"models/readme x.md",
		"with space name.bin",
		"xml&<ent>\"q\"'a'.txt",
	};
	struct s3_list_page p;
	const struct s3_list_entry *e;

	(void)state;
	assert_int_equal(parse_file("list_all.xml", &p), 0);
	assert_int_equal(p.n, 10);
	assert_false(p.truncated);
	assert_string_equal(p.next_token, "");
	assert_false(p.url_encoded);
	for (size_t i = 0; i < 10; i++) {
		assert_string_equal(p.entries[i].obj.name, names[i]);
		assert_false(p.entries[i].is_prefix);
	}
	e = find(&p, "a.txt");
	assert_int_equal(e->obj.size, 5);
	assert_string_equal(e->obj.version, "5d41402abc4b2a76b9719d911017c592");
	assert_true(e->obj.has_md5);
	assert_int_equal(e->obj.md5[0], 0x5d);
	assert_int_equal(e->obj.md5[15], 0x92);
	assert_int_equal(e->obj.mtime_sec, T_A_TXT);
	assert_int_equal(e->obj.mtime_nsec, 0);
	e = find(&p, "empty.bin");
	assert_int_equal(e->obj.size, 0);
	assert_string_equal(e->obj.version, "d41d8cd98f00b204e9800998ecf8427e");
	e = find(&p, "models/llama/weights-00001.safetensors");
	assert_int_equal(e->obj.size, 10);
	s3_xml_page_free(&p);
	assert_null(p.entries);
	assert_int_equal(p.n, 0);
}

static void test_list_pages(void **state)
{
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse_file("list_page1.xml", &p), 0);
	assert_true(p.truncated);
	assert_string_equal(p.next_token,
			    "1IQ4xu6D8hfWrOXrlb7Dp8Wjv+QoxWYvQ2F6HG3Lr7W3amLWLkrIyw==");
	assert_int_equal(p.n, 3);
	assert_string_equal(p.entries[2].obj.name, "empty.bin");
	s3_xml_page_free(&p);

	assert_int_equal(parse_file("list_page2.xml", &p), 0);
	assert_true(p.truncated);
	assert_string_equal(p.next_token,
			    "1aQfFvhwrmbM5eyrsoqna+VgG66PLTAEKi+j3GXNRXDda5J219nMdijR+"
			    "cImr0sNMWbEB5kD/z5tAzEzSvbBdjAYPuazetSG");
	assert_int_equal(p.n, 3);
	assert_string_equal(p.entries[0].obj.name, "models/llama/config.json");
	s3_xml_page_free(&p);
}

static void test_list_delimiter(void **state)
{
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse_file("list_delim.xml", &p), 0);
	assert_int_equal(p.n, 6);
	assert_false(p.truncated);
	assert_false(find(&p, "with space name.bin")->is_prefix);
	assert_true(find(&p, "caf\xc3\xa9/")->is_prefix);
	assert_true(find(&p, "models/")->is_prefix);
	/* Document order: objects, then prefixes. */
	assert_string_equal(p.entries[4].obj.name, "caf\xc3\xa9/");
	assert_string_equal(p.entries[5].obj.name, "models/");
	assert_int_equal(find(&p, "models/")->obj.size, 0);
	assert_string_equal(find(&p, "models/")->obj.version, "");
	s3_xml_page_free(&p);

	assert_int_equal(parse_file("list_delim_models.xml", &p), 0);
	assert_int_equal(p.n, 3);
	assert_string_equal(p.entries[0].obj.name, "models/readme x.md");
	assert_string_equal(p.entries[1].obj.name, "models/llama/");
	assert_string_equal(p.entries[2].obj.name, "models/mistral/");
	assert_true(p.entries[2].is_prefix);
	s3_xml_page_free(&p);

	/* s3rver's delimited paging (its page 2 repeats "models/"; s3.c drops the repeat). */
	assert_int_equal(parse_file("list_delim_page1.xml", &p), 0);
	assert_true(p.truncated);
	assert_int_equal(p.n, 4);
	s3_xml_page_free(&p);
	assert_int_equal(parse_file("list_delim_page2.xml", &p), 0);
	assert_false(p.truncated);
	assert_int_equal(p.n, 3);
	assert_true(p.entries[2].is_prefix);
	s3_xml_page_free(&p);
}

static void test_list_empty_result(void **state)
{
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse_file("list_empty.xml", &p), 0);
	assert_int_equal(p.n, 0);
	assert_false(p.truncated);
	assert_null(p.entries);
	s3_xml_page_free(&p);
}

static void test_error_bodies(void **state)
{
	char code[64], msg[256];
	struct s3_list_page p;
	size_t len;
	char *xml;

	(void)state;
	xml = load("error_nokey.xml", &len);
	assert_int_equal(s3_xml_parse_error(xml, len, code, sizeof(code), msg, sizeof(msg)), 0);
	assert_string_equal(code, "NoSuchKey");
	assert_string_equal(msg, "The specified key does not exist.");
	/* An error body is not a listing. */
	assert_int_equal(s3_xml_parse_list(xml, len, &p), -EPROTO);
	free(xml);

	xml = load("error_badkey.xml", &len);
	assert_int_equal(s3_xml_parse_error(xml, len, code, sizeof(code), msg, sizeof(msg)), 0);
	assert_string_equal(code, "InvalidAccessKeyId");
	/* Truncated to the caller's buffer. */
	assert_int_equal(s3_xml_parse_error(xml, len, code, 8, msg, 4), 0);
	assert_string_equal(code, "Invalid");
	assert_string_equal(msg, "The");
	free(xml);

	xml = load("error_nobucket.xml", &len);
	assert_int_equal(s3_xml_parse_error(xml, len, code, sizeof(code), msg, sizeof(msg)), 0);
	assert_string_equal(code, "NoSuchBucket");
	free(xml);

	/* Control characters are not passed on to log lines. */
	assert_int_equal(s3_xml_parse_error("<Error><Code>A&#9;B</Code></Error>", 34, code,
					    sizeof(code), msg, sizeof(msg)),
			 0);
	assert_string_equal(code, "A?B");
	assert_string_equal(msg, "");
	/* Not an error document, malformed, empty, bad arguments. */
	xml = load("list_empty.xml", &len);
	assert_int_equal(s3_xml_parse_error(xml, len, code, sizeof(code), msg, sizeof(msg)),
			 -EPROTO);
	free(xml);
	assert_int_equal(s3_xml_parse_error("<Error><Code>x</Code>", 21, code, sizeof(code), msg,
					    sizeof(msg)),
			 -EPROTO);
	assert_int_equal(s3_xml_parse_error("", 0, code, sizeof(code), msg, sizeof(msg)), -EPROTO);
	assert_int_equal(s3_xml_parse_error("<Error/>", 8, code, 0, msg, sizeof(msg)), -EINVAL);
	assert_int_equal(s3_xml_parse_error(NULL, 8, code, sizeof(code), msg, sizeof(msg)),
			 -EINVAL);
}

/* Every proper prefix of a real page (a response cut anywhere) is refused cleanly. */
static void test_truncated_documents(void **state)
{
	const char *const files[] = { "list_all.xml", "list_delim.xml", "list_page1.xml" };

	(void)state;
	for (size_t f = 0; f < 3; f++) {
		size_t len;
		char *xml = load(files[f], &len);

		for (size_t cut = 0; cut < len; cut++) {
			struct s3_list_page p;
			/* A private copy of exactly `cut` bytes, so ASan sees any over-read. */
			char *part = malloc(cut ? cut : 1);
			int rc;

			assert_non_null(part);
			memcpy(part, xml, cut);
			rc = s3_xml_parse_list(part, cut, &p);
			if (rc != -EPROTO)
				fail_msg("%s cut at %zu of %zu: got %d, want -EPROTO", files[f],
					 cut, len, rc);
			assert_null(p.entries);
			free(part);
		}
		free(xml);
	}
}

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>"
#define TAIL "</ListBucketResult>"
#define OBJ(k)                                                                            \
	"<Contents><Key>" k "</Key><LastModified>2026-11-25T22:39:13.000Z</LastModified>" \
	"<ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>5</Size></Contents>"

static void test_malformed_documents(void **state)
{
	static const char *const bad[] = {
		"",
		" ",
		"not xml at all",
		"<ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated>",
		"<Other><IsTruncated>false</IsTruncated></Other>",
		HEAD TAIL, /* no IsTruncated */
		HEAD "<IsTruncated>maybe</IsTruncated>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><IsTruncated>false</IsTruncated>" TAIL,
		HEAD "<IsTruncated>true</IsTruncated>" TAIL, /* truncated without a token */
		HEAD "<IsTruncated>false</IsTruncated><Contents><Size>1</Size><ETag>x</ETag>"
		     "</Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><ETag>x</ETag>"
		     "</Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size>"
		     "</Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Key>j</Key>"
		     "<Size>1</Size><ETag>x</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key></Key><Size>1</Size>"
		     "<ETag>x</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>-1</Size>"
		     "<ETag>x</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>12a</Size>"
		     "<ETag>x</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
		     "<Size>99999999999999999999999</Size><ETag>x</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size>"
		     "<ETag>\"\"</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size>"
		     "<ETag>a b</ETag></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size>"
		     "<ETag>x</ETag><LastModified>yesterday</LastModified></Contents>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated><CommonPrefixes></CommonPrefixes>" TAIL,
		/* Not well-formed: mismatched tags, bad entity, NUL reference, bad UTF-8. */
		HEAD "<IsTruncated>false</IsTruncated><Contents></Content>" TAIL,
		HEAD "<IsTruncated>false</IsTruncated>" OBJ("a&bogus;b") TAIL,
		HEAD "<IsTruncated>false</IsTruncated>" OBJ("a&#0;b") TAIL,
		HEAD "<IsTruncated>false</IsTruncated>" OBJ("a\xff\xfe b") TAIL,
		HEAD "<IsTruncated>false</IsTruncated>" OBJ("\xc0\xaf") TAIL,
		HEAD "<IsTruncated>false</IsTruncated>" TAIL "<Trailing/>",
		/* DOCTYPEs and entities are refused before any expansion. */
		"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
		"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
		"\"&b;&b;&b;&b;&b;&b;&b;\">]>"
		"<ListBucketResult><IsTruncated>false</IsTruncated>" OBJ("&c;") TAIL,
		"<?xml version=\"1.0\"?><!DOCTYPE l SYSTEM \"file:///etc/passwd\">"
		"<ListBucketResult><IsTruncated>false</IsTruncated>" TAIL,
		"<!DOCTYPE "
		"ListBucketResult><ListBucketResult><IsTruncated>false</IsTruncated>" TAIL,
	};
	struct s3_list_page p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_str(bad[i], &p);

		if (rc != -EPROTO)
			fail_msg("bad document %zu: got %d, want -EPROTO: %s", i, rc, bad[i]);
		assert_null(p.entries);
		assert_int_equal(p.n, 0);
	}
	/* A good one built from the same pieces, so the cases above fail for their own reason. */
	assert_int_equal(parse_str(HEAD "<IsTruncated>false</IsTruncated>" OBJ("k") TAIL, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.entries[0].obj.mtime_sec, T_A_TXT);
	s3_xml_page_free(&p);
	/* Unknown elements, attributes, comments, CDATA and white space are fine. */
	assert_int_equal(parse_str(HEAD "<!-- hi --><Name a=\"b\">x</Name><IsTruncated> false "
					"</IsTruncated><Contents><Owner><ID>1</ID></Owner>"
					"<Key><![CDATA[a<b>c]]></Key><Size> 7 </Size><ETag>\"e-2\""
					"</ETag><StorageClass>X</StorageClass></Contents>" TAIL,
				   &p),
			 0);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.entries[0].obj.name, "a<b>c");
	assert_int_equal(p.entries[0].obj.size, 7);
	assert_string_equal(p.entries[0].obj.version, "e-2");
	assert_false(p.entries[0].obj.has_md5);
	assert_int_equal(p.entries[0].obj.mtime_sec, 0);
	s3_xml_page_free(&p);
	assert_int_equal(s3_xml_parse_list(NULL, 10, &p), -EINVAL);
	assert_int_equal(s3_xml_parse_list("x", 1, NULL), -EINVAL);
}

/* Appends `n` copies of `s` to b. */
static void repeat(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(buf_puts(b, s), 0);
}

static void test_bounds(void **state)
{
	struct s3_list_page p;
	struct buf b;
	char *key;

	(void)state;
	/* A name of exactly URL_KEY_MAX bytes is fine, one more is refused. */
	key = malloc(URL_KEY_MAX + 2);
	assert_non_null(key);
	memset(key, 'k', URL_KEY_MAX + 1);
	key[URL_KEY_MAX] = '\0';
	buf_init(&b, 2 * S3_XML_DOC_MAX);
	assert_int_equal(buf_printf(&b,
				    HEAD "<IsTruncated>false</IsTruncated><Contents><Key>%s"
					 "</Key><Size>1</Size><ETag>e</ETag></Contents>" TAIL,
				    key),
			 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), 0);
	assert_int_equal(strlen(p.entries[0].obj.name), URL_KEY_MAX);
	s3_xml_page_free(&p);
	buf_reset(&b);
	key[URL_KEY_MAX] = 'k';
	key[URL_KEY_MAX + 1] = '\0';
	assert_int_equal(buf_printf(&b,
				    HEAD "<IsTruncated>false</IsTruncated><CommonPrefixes>"
					 "<Prefix>%s</Prefix></CommonPrefixes>" TAIL,
				    key),
			 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);
	/* A name far past any bound (10 MiB) is refused without buffering it all. */
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, HEAD "<IsTruncated>false</IsTruncated><Contents><Key>"), 0);
	repeat(&b, "0123456789abcdef", 10 << 16);
	assert_int_equal(buf_puts(&b, "</Key><Size>1</Size><ETag>e</ETag></Contents>" TAIL), 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);
	free(key);

	/* A continuation token over S3_XML_TOKEN_MAX. */
	buf_reset(&b);
	assert_int_equal(
		buf_puts(&b, HEAD "<IsTruncated>true</IsTruncated><NextContinuationToken>"), 0);
	repeat(&b, "t", S3_XML_TOKEN_MAX + 1);
	assert_int_equal(buf_puts(&b, "</NextContinuationToken>" TAIL), 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);

	/* An absurd number of entries. */
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, HEAD "<IsTruncated>false</IsTruncated>"), 0);
	repeat(&b, "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>", S3_XML_ENTRIES_MAX);
	assert_int_equal(buf_puts(&b, TAIL), 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), 0);
	assert_int_equal(p.n, S3_XML_ENTRIES_MAX);
	s3_xml_page_free(&p);
	b.len -= strlen(TAIL);
	assert_int_equal(buf_puts(&b, "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>" TAIL),
			 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);

	/* Nesting past S3_XML_DEPTH_MAX. */
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, HEAD "<IsTruncated>false</IsTruncated>"), 0);
	repeat(&b, "<a>", S3_XML_DEPTH_MAX);
	repeat(&b, "</a>", S3_XML_DEPTH_MAX);
	assert_int_equal(buf_puts(&b, TAIL), 0);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);

	/* A huge document is refused by its size, before parsing. */
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, HEAD "<IsTruncated>false</IsTruncated><!--"), 0);
	repeat(&b, "0123456789abcdef", S3_XML_DOC_MAX / 16);
	assert_int_equal(buf_puts(&b, "-->" TAIL), 0);
	assert_true(b.len > S3_XML_DOC_MAX);
	assert_int_equal(s3_xml_parse_list(b.data, b.len, &p), -EPROTO);
	buf_free(&b);
}

static void test_url_encoded_names(void **state)
{
	struct s3_list_page p;

	(void)state;
	assert_int_equal(
		parse_str(
			HEAD
			"<EncodingType>url</EncodingType><IsTruncated>false"
			"</IsTruncated>" OBJ(
				"a%20b+c%2Fd%E2%9C%93%01") "<CommonPrefixes><Prefix>p%25q/</Prefix>"
							   "</CommonPrefixes>" TAIL,
			&p),
		0);
	assert_true(p.url_encoded);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.entries[0].obj.name, "a b c/d\xe2\x9c\x93\x01");
	assert_string_equal(p.entries[1].obj.name, "p%q/");
	s3_xml_page_free(&p);
	/* Without EncodingType the same text is the name itself. */
	assert_int_equal(parse_str(HEAD "<IsTruncated>false</IsTruncated>" OBJ("a%20b+c") TAIL, &p),
			 0);
	assert_string_equal(p.entries[0].obj.name, "a%20b+c");
	s3_xml_page_free(&p);
	/* Decoded NUL, invalid UTF-8, bad escapes. */
	assert_int_equal(parse_str(HEAD "<IsTruncated>false</IsTruncated>" OBJ(
					   "a%00b") "<EncodingType>url</EncodingType>" TAIL,
				   &p),
			 -EPROTO);
	assert_int_equal(parse_str(HEAD "<EncodingType>url</EncodingType><IsTruncated>false"
					"</IsTruncated>" OBJ("a%FFb") TAIL,
				   &p),
			 -EPROTO);
	assert_int_equal(parse_str(HEAD "<EncodingType>url</EncodingType><IsTruncated>false"
					"</IsTruncated>" OBJ("a%4") TAIL,
				   &p),
			 -EPROTO);
}

static void test_etag(void **state)
{
	struct store_object o;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(s3_xml_set_etag(&o, "\"9bb58f26192e4ba00f01e2e7b136bbd8\"", 34), 0);
	assert_string_equal(o.version, "9bb58f26192e4ba00f01e2e7b136bbd8");
	assert_true(o.has_md5);
	assert_int_equal(o.md5[0], 0x9b);
	assert_int_equal(o.md5[1], 0xb5);
	assert_int_equal(o.md5[15], 0xd8);
	/* A multipart ETag is not an MD5. */
	assert_int_equal(s3_xml_set_etag(&o, "\"d41d8cd98f00b204e9800998ecf8427e-12\"", 37), 0);
	assert_string_equal(o.version, "d41d8cd98f00b204e9800998ecf8427e-12");
	assert_false(o.has_md5);
	/* Weak, unquoted, not hex. */
	assert_int_equal(s3_xml_set_etag(&o, "W/\"abc\"", 7), 0);
	assert_string_equal(o.version, "abc");
	assert_int_equal(s3_xml_set_etag(&o, "abc", 3), 0);
	assert_string_equal(o.version, "abc");
	assert_int_equal(s3_xml_set_etag(&o, "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"", 34), 0);
	assert_false(o.has_md5);
	/* Refused. */
	assert_int_equal(s3_xml_set_etag(&o, "", 0), -EPROTO);
	assert_int_equal(s3_xml_set_etag(&o, "\"\"", 2), -EPROTO);
	assert_int_equal(s3_xml_set_etag(&o, "\"a\"b\"", 5), -EPROTO);
	assert_int_equal(s3_xml_set_etag(&o, "a\x01", 2), -EPROTO);
	{
		char long_tag[STORE_VERSION_MAX + 2];

		memset(long_tag, 'a', sizeof(long_tag));
		assert_int_equal(s3_xml_set_etag(&o, long_tag, STORE_VERSION_MAX), 0);
		assert_int_equal(s3_xml_set_etag(&o, long_tag, STORE_VERSION_MAX + 1), -EPROTO);
	}
}

static void test_times(void **state)
{
	int64_t s;
	uint32_t ns;

	(void)state;
	assert_int_equal(s3_xml_parse_time("2026-11-25T22:39:13.000Z", 24, &s, &ns), 0);
	assert_int_equal(s, T_A_TXT);
	assert_int_equal(ns, 0);
	assert_int_equal(s3_xml_parse_time("2026-11-25T22:39:13Z", 20, &s, &ns), 0);
	assert_int_equal(s, T_A_TXT);
	assert_int_equal(s3_xml_parse_time("2024-02-29T23:59:59.5Z", 22, &s, &ns), 0);
	assert_int_equal(s, 1709251199);
	assert_int_equal(ns, 500000000);
	assert_int_equal(s3_xml_parse_time("1970-01-01T00:00:00.123456789Z", 30, &s, &ns), 0);
	assert_int_equal(s, 0);
	assert_int_equal(ns, 123456789);
	assert_int_equal(s3_xml_parse_time("1969-12-31T23:59:59Z", 20, &s, &ns), 0);
	assert_int_equal(s, -1);
	static const char *const bad[] = {
		"2023-02-29T00:00:00Z",	     "2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",	     "2026-04-31T00:00:00Z",
		"2026-11-25T24:00:00Z",	     "2026-11-25T22:60:00Z",
		"2026-11-25 22:39:13Z",	     "2026-11-25T22:39:13",
		"2026-11-25T22:39:13.Z",     "2026-11-25T22:39:13.0000000001Z",
		"2026-11-25T22:39:13+00:00", "26-11-25T22:39:13Z",
		"2026-1a-25T22:39:13Z",	     "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (s3_xml_parse_time(bad[i], strlen(bad[i]), &s, &ns) != -EPROTO)
			fail_msg("time '%s' was accepted", bad[i]);
	}
}

static void test_http_dates(void **state)
{
	int64_t s;

	(void)state;
	assert_int_equal(s3_xml_parse_http_date("Wed, 25 Nov 2026 22:39:13 GMT", &s), 0);
	assert_int_equal(s, T_A_TXT);
	assert_int_equal(s3_xml_parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", &s), 0);
	assert_int_equal(s, 0);
	static const char *const bad[] = {
		"Wed, 25 Nov 2026 22:39:13 UTC",
		"Wed, 25 Nox 2026 22:39:13 GMT",
		"Xyz, 25 Nov 2026 22:39:13 GMT",
		"Wed, 31 Nov 2026 22:39:13 GMT",
		"Wed, 25 Nov 2026 22:39:13 GMT ",
		"Wednesday, 25-Nov-26 22:39:13 GMT",
		"Wed Nov 25 22:39:13 2026",
		"Wed, 25 Nov 2026 2a:39:13 GMT",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (s3_xml_parse_http_date(bad[i], &s) != -EPROTO)
			fail_msg("date '%s' was accepted", bad[i]);
	}
	assert_int_equal(s3_xml_parse_http_date(NULL, &s), -EPROTO);
}

/* Random bytes and random mutations of a real page: never a crash, only 0 or a clean error. */
static void test_fuzz(void **state)
{
	size_t len;
	char *xml = load("list_delim.xml", &len);
	uint32_t seed = 12345;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		char *m = malloc(len);
		struct s3_list_page p;
		int rc;

		assert_non_null(m);
		memcpy(m, xml, len);
		for (int k = 0; k < 1 + round % 8; k++) {
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % len] = (char)(seed >> 24);
		}
		rc = s3_xml_parse_list(m, len, &p);
		if (rc != 0 && rc != -EPROTO)
			fail_msg("round %d: got %d", round, rc);
		if (rc == 0) {
			for (size_t i = 0; i < p.n; i++)
				assert_true(strlen(p.entries[i].obj.name) <= URL_KEY_MAX);
		}
		s3_xml_page_free(&p);
		free(m);
	}
	free(xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_all),
		cmocka_unit_test(test_list_pages),
		cmocka_unit_test(test_list_delimiter),
		cmocka_unit_test(test_list_empty_result),
		cmocka_unit_test(test_error_bodies),
		cmocka_unit_test(test_truncated_documents),
		cmocka_unit_test(test_malformed_documents),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_url_encoded_names),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_http_dates),
		cmocka_unit_test(test_fuzz),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
