/* Unit tests for common/sigv4: the published AWS SigV4 test-suite vectors (read at run time from
 * $HOARDFS_TESTDATA/sigv4, see its README for keys, region, service and time), the S3 GET Object
 * example from the S3 API reference, and argument checks. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/sigv4.h"

/* The suite's signing parameters (tests/testdata/sigv4/README.md). */
#define SUITE_KEY_ID  "AKIDEXAMPLE"
#define SUITE_SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_REGION  "us-east-1"
#define SUITE_SERVICE "service"
#define SUITE_DATE    "20150830T123600Z"

#define FILE_MAX (256 * 1024)

/* A parsed NAME.req: method, target, headers (continuation lines folded in), body. */
struct vreq {
	char *text; /* the file, '\r' removed; the strings below point into it or own copies */
	char *method;
	char *path;
	char *query;
	struct sigv4_header hdrs[SIGV4_HEADERS_MAX + 1];
	char *owned[SIGV4_HEADERS_MAX + 1]; /* folded values we allocated */
	size_t nhdrs;
	char *body;
	size_t body_len;
};

static const char *testdata_dir(void)
{
	const char *d = getenv("HOARDFS_TESTDATA");

	return d && *d ? d : "tests/testdata";
}

/* Reads $HOARDFS_TESTDATA/sigv4/<rel> with '\r' removed; fails the test if it cannot. */
static char *read_vector_file(const char *rel)
{
	char path[1024];
	struct buf b;
	FILE *f;
	int c;

	snprintf(path, sizeof(path), "%s/sigv4/%s", testdata_dir(), rel);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s: %s (is HOARDFS_TESTDATA set?)", path, strerror(errno));
	buf_init(&b, FILE_MAX);
	while ((c = fgetc(f)) != EOF) {
		char ch = (char)c;

		if (ch != '\r')
			assert_int_equal(buf_append(&b, &ch, 1), 0);
	}
	fclose(f);
	assert_int_equal(buf_append(&b, "", 0), 0);
	return buf_steal(&b);
}

static bool file_exists(const char *rel)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sigv4/%s", testdata_dir(), rel);
	f = fopen(path, "rb");
	if (f)
		fclose(f);
	return f != NULL;
}

/* Parses the request file format used by the suite (a raw HTTP/1.1 request). */
static void vreq_parse(struct vreq *r, char *text)
{
	char *line, *next, *sp, *http, *q;

	memset(r, 0, sizeof(*r));
	r->text = text;
	line = text;
	next = strchr(line, '\n');
	assert_non_null(next);
	*next++ = '\0';
	/* "METHOD TARGET HTTP/1.1"; the target may contain spaces (get-space). */
	sp = strchr(line, ' ');
	http = strstr(line, " HTTP/");
	assert_non_null(sp);
	assert_non_null(http);
	assert_true(http > sp);
	*sp = '\0';
	*http = '\0';
	r->method = line;
	r->path = sp + 1;
	q = strchr(r->path, '?');
	if (q) {
		*q = '\0';
		r->query = q + 1;
	}
	for (line = next; line && *line; line = next) {
		char *colon;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '\0')
			break;
		if ((*line == ' ' || *line == '\t') && r->nhdrs > 0) {
			/* A folded continuation line: joined to the previous value with a space. */
			struct sigv4_header *h = &r->hdrs[r->nhdrs - 1];
			size_t n = strlen(h->value) + strlen(line) + 2;
			char *v = malloc(n);

			assert_non_null(v);
			snprintf(v, n, "%s %s", h->value, line);
			free(r->owned[r->nhdrs - 1]);
			r->owned[r->nhdrs - 1] = v;
			h->value = v;
			continue;
		}
		colon = strchr(line, ':');
		assert_non_null(colon);
		assert_true(r->nhdrs < SIGV4_HEADERS_MAX);
		*colon = '\0';
		r->hdrs[r->nhdrs].name = line;
		r->hdrs[r->nhdrs].value = colon + 1;
		r->nhdrs++;
	}
	r->body = next ? next : (char *)"";
	r->body_len = strlen(r->body);
}

static void vreq_free(struct vreq *r)
{
	for (size_t i = 0; i <= SIGV4_HEADERS_MAX; i++)
		free(r->owned[i]);
	free(r->text);
}

static bool vreq_has_header(const struct vreq *r, const char *name)
{
	for (size_t i = 0; i < r->nhdrs; i++) {
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return true;
	}
	return false;
}

/*
 * Signs DIR/NAME.req and compares the canonical request, string to sign and Authorization header
 * with DIR/NAME.creq, .sts and .authz. With `as_given_path`, the canonical URI is expected to be
 * the request's own path instead of the suite's normalised one (see test_normalize_path_s3).
 */
static void check_vector(const char *dir, bool as_given_path)
{
	const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	char rel[512], hash[65], token_line[] = "x-amz-security-token:";
	char *creq_want, *sts_want, *authz_want, *tok;
	struct sigv4_request sr;
	struct sigv4_key key = { SUITE_KEY_ID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE,
				 SUITE_DATE };
	struct vreq r;
	struct buf creq, sts, authz;

	snprintf(rel, sizeof(rel), "%s/%s.req", dir, name);
	vreq_parse(&r, read_vector_file(rel));
	snprintf(rel, sizeof(rel), "%s/%s.creq", dir, name);
	creq_want = read_vector_file(rel);
	snprintf(rel, sizeof(rel), "%s/%s.sts", dir, name);
	sts_want = read_vector_file(rel);
	snprintf(rel, sizeof(rel), "%s/%s.authz", dir, name);
	authz_want = read_vector_file(rel);

	/* Cases whose .creq signs a session token that the .req does not show (README). */
	tok = strstr(creq_want, token_line);
	if (tok && !vreq_has_header(&r, "X-Amz-Security-Token")) {
		char *end = strchr(tok, '\n');
		size_t n = (size_t)(end - tok) - strlen(token_line);

		r.owned[SIGV4_HEADERS_MAX] = strndup(tok + strlen(token_line), n);
		r.hdrs[r.nhdrs].name = "X-Amz-Security-Token";
		r.hdrs[r.nhdrs].value = r.owned[SIGV4_HEADERS_MAX];
		r.nhdrs++;
	}
	if (as_given_path) {
		/* Replace the suite's normalised URI (line 2) with the path as sent. */
		char *l2 = strchr(creq_want, '\n') + 1, *l3 = strchr(l2, '\n');
		struct buf fixed;

		buf_init(&fixed, FILE_MAX);
		assert_int_equal(buf_append(&fixed, creq_want, (size_t)(l2 - creq_want)), 0);
		assert_int_equal(buf_puts(&fixed, r.path), 0);
		assert_int_equal(buf_puts(&fixed, l3), 0);
		free(creq_want);
		creq_want = buf_steal(&fixed);
	}
	assert_int_equal(sigv4_sha256_hex(r.body, r.body_len, hash), 0);
	sr = (struct sigv4_request){ .method = r.method,
				     .path = r.path,
				     .query = r.query,
				     .headers = r.hdrs,
				     .nheaders = r.nhdrs,
				     .payload_hash = hash };

	buf_init(&creq, FILE_MAX);
	buf_init(&sts, FILE_MAX);
	buf_init(&authz, FILE_MAX);
	assert_int_equal(sigv4_canonical_request(&sr, &creq), 0);
	assert_string_equal(buf_cstr(&creq), creq_want);
	if (!as_given_path) {
		assert_int_equal(sigv4_string_to_sign(&key, buf_cstr(&creq), &sts), 0);
		assert_string_equal(buf_cstr(&sts), sts_want);
		assert_int_equal(sigv4_authorization(&sr, &key, &authz), 0);
		assert_string_equal(buf_cstr(&authz), authz_want);
	}
	buf_free(&creq);
	buf_free(&sts);
	buf_free(&authz);
	free(creq_want);
	free(sts_want);
	free(authz_want);
	vreq_free(&r);
}

static void test_vector(void **state)
{
	check_vector((const char *)*state, false);
}

/*
 * The suite's normalize-path cases that remove "//", "." and ".." segments assume URI
 * normalisation, which S3 does not do: S3 signs the path exactly as sent (an object may be named
 * "a//b" or "./x"), and hoardfs only signs S3 requests. We therefore check that our canonical
 * request keeps the path as given and otherwise matches the suite's (query, headers, hash); the
 * suite's string to sign and signature for these cases cannot match by design.
 */
static void test_normalize_path_s3(void **state)
{
	check_vector((const char *)*state, true);
}

/* Every case folder in the suite must be covered by the list below (a new one would fail here). */
static const char *const all_vectors[] = {
	"get-header-key-duplicate",
	"get-header-value-multiline",
	"get-header-value-order",
	"get-header-value-trim",
	"get-unreserved",
	"get-utf8",
	"get-vanilla",
	"get-vanilla-empty-query-key",
	"get-vanilla-query",
	"get-vanilla-query-order-encoded",
	"get-vanilla-query-order-key",
	"get-vanilla-query-order-key-case",
	"get-vanilla-query-order-value",
	"get-vanilla-query-unreserved",
	"get-vanilla-utf8-query",
	"get-vanilla-with-session-token",
	"post-header-key-case",
	"post-header-key-sort",
	"post-header-value-case",
	"post-vanilla",
	"post-vanilla-empty-query-value",
	"post-vanilla-query",
	"post-x-www-form-urlencoded",
	"post-x-www-form-urlencoded-parameters",
	"post-sts-token/post-sts-header-before",
	"post-sts-token/post-sts-header-after",
	"normalize-path/get-space",
	"normalize-path/get-special-character",
	"normalize-path/get-relative",
	"normalize-path/get-relative-relative",
	"normalize-path/get-slash",
	"normalize-path/get-slash-dot-slash",
	"normalize-path/get-slash-pointless-dot",
	"normalize-path/get-slashes",
};

static bool vector_listed(const char *dir)
{
	for (size_t i = 0; i < sizeof(all_vectors) / sizeof(all_vectors[0]); i++) {
		if (strcmp(all_vectors[i], dir) == 0)
			return true;
	}
	return false;
}

/* Fails for a case folder of the suite that the list above does not name. */
static void check_all_listed(const char *group)
{
	char path[1024];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/sigv4%s%s", testdata_dir(), *group ? "/" : "", group);
	d = opendir(path);
	if (!d)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char rel[512];

		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(rel, sizeof(rel), "%s%s%s", group, *group ? "/" : "", de->d_name);
		if (strcmp(rel, "normalize-path") == 0 || strcmp(rel, "post-sts-token") == 0)
			continue;
		if (!vector_listed(rel))
			fail_msg("test vector %s is not covered by test_sigv4", rel);
	}
	closedir(d);
}

static void test_suite_files_present(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(all_vectors) / sizeof(all_vectors[0]); i++) {
		const char *dir = all_vectors[i];
		const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
		static const char *const ext[] = { "req", "creq", "sts", "authz", "sreq" };

		for (size_t e = 0; e < 5; e++) {
			char rel[512];

			snprintf(rel, sizeof(rel), "%s/%s.%s", dir, name, ext[e]);
			if (!file_exists(rel))
				fail_msg("missing test vector file %s", rel);
		}
	}
	check_all_listed("");
	check_all_listed("normalize-path");
	check_all_listed("post-sts-token");
	assert_true(file_exists("LICENSE"));
	assert_true(file_exists("NOTICE"));
}

/* The "GET Object" example of the S3 API reference (sigv4-header-based-auth): service s3,
 * x-amz-content-sha256 and Range signed. */
static void test_s3_get_object_example(void **state)
{
	const struct sigv4_header h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", SIGV4_EMPTY_SHA256 },
		{ "x-amz-date", "20130524T000000Z" },
	};
	struct sigv4_request r = { "GET", "/test.txt", NULL, h, 4, SIGV4_EMPTY_SHA256 };
	struct sigv4_key k = { "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			       "us-east-1", "s3", "20130524T000000Z" };
	struct buf creq, sts, authz;

	(void)state;
	buf_init(&creq, FILE_MAX);
	buf_init(&sts, FILE_MAX);
	buf_init(&authz, FILE_MAX);
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(buf_cstr(&creq),
			    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
			    "range:bytes=0-9\nx-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
			    "x-amz-date:20130524T000000Z\n\n"
			    "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
	assert_int_equal(sigv4_string_to_sign(&k, buf_cstr(&creq), &sts), 0);
	assert_string_equal(buf_cstr(&sts),
			    "AWS4-HMAC-SHA256\n20130524T000000Z\n"
			    "20130524/us-east-1/s3/aws4_request\n"
			    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	assert_int_equal(sigv4_authorization(&r, &k, &authz), 0);
	assert_string_equal(
		buf_cstr(&authz),
		"AWS4-HMAC-SHA256 "
		"Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	buf_free(&creq);
	buf_free(&sts);
	buf_free(&authz);
}

/* An S3 key encoded once by the client ("a b/c+d" as "a%20b/c%2Bd") signs as sent: not encoded
 * twice, and an escaped slash stays escaped. */
static void test_s3_path_encoded_once(void **state)
{
	const struct sigv4_header h[] = { { "host", "h" }, { "x-amz-date", SUITE_DATE } };
	struct sigv4_request r = { "GET", "/bkt/a%20b/c%2Bd%2f%7e", "list-type=2&prefix=a%2Fb", h,
				   2,	  SIGV4_UNSIGNED_PAYLOAD };
	struct buf creq;

	(void)state;
	buf_init(&creq, FILE_MAX);
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(buf_cstr(&creq),
			    "GET\n/bkt/a%20b/c%2Bd%2F~\nlist-type=2&prefix=a%2Fb\n"
			    "host:h\nx-amz-date:" SUITE_DATE "\n\nhost;x-amz-date\n"
			    "UNSIGNED-PAYLOAD");
	buf_free(&creq);
}

static void test_format_date(void **state)
{
	char d[SIGV4_DATE_LEN + 1];

	(void)state;
	assert_int_equal(sigv4_format_date(1440938160, d), 0);
	assert_string_equal(d, SUITE_DATE);
	assert_int_equal(sigv4_format_date(0, d), 0);
	assert_string_equal(d, "19700101T000000Z");
}

static void test_bad_arguments(void **state)
{
	struct sigv4_header h[SIGV4_HEADERS_MAX + 1];
	struct sigv4_request r = { "GET", "/", NULL, h, 1, SIGV4_EMPTY_SHA256 };
	struct sigv4_key k = { "AKID", "secret", "us-east-1", "s3", SUITE_DATE };
	uint8_t key[32];
	struct buf b, query;

	(void)state;
	for (size_t i = 0; i <= SIGV4_HEADERS_MAX; i++)
		h[i] = (struct sigv4_header){ "x-amz-a", "v" };
	buf_init(&b, FILE_MAX);
	r.path = "nope";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.path = "/bad%zzescape";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.path = "/truncated%4";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.path = "/";
	r.query = "a=%";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.query = NULL;
	r.nheaders = SIGV4_HEADERS_MAX + 1;
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.nheaders = 1;
	h[0].name = "bad header";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	h[0].name = "";
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	h[0].name = "x-amz-a";
	buf_init(&query, FILE_MAX);
	for (int i = 0; i <= SIGV4_PARAMS_MAX; i++)
		assert_int_equal(buf_puts(&query, "a=1&"), 0);
	r.query = buf_cstr(&query);
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.query = NULL;
	buf_free(&query);
	r.method = NULL;
	assert_int_equal(sigv4_canonical_request(&r, &b), -EINVAL);
	r.method = "GET";
	assert_int_equal(b.len, 0);

	k.amz_date = "20150830 123600Z";
	assert_int_equal(sigv4_signing_key(&k, key), -EINVAL);
	assert_int_equal(sigv4_authorization(&r, &k, &b), -EINVAL);
	k.amz_date = SUITE_DATE;
	k.region = "";
	assert_int_equal(sigv4_string_to_sign(&k, "x", &b), -EINVAL);
	k.region = "us-east-1";
	k.access_key_id = "AK/ID";
	assert_int_equal(sigv4_authorization(&r, &k, &b), -EINVAL);
	k.access_key_id = "AKID";
	k.secret_access_key = "";
	assert_int_equal(sigv4_signing_key(&k, key), -EINVAL);
	assert_int_equal(b.len, 0);

	/* A buffer too small for the result reports -EMSGSIZE. */
	k.secret_access_key = "secret";
	buf_free(&b);
	buf_init(&b, 16);
	assert_int_equal(sigv4_authorization(&r, &k, &b), -EMSGSIZE);
	buf_free(&b);
}

#define VECTOR(dir)                                         \
	{                                                   \
		dir, test_vector, NULL, NULL, (void *)(dir) \
	}
#define NORM(dir)                                                                      \
	{                                                                              \
		dir " (S3: path signed as given)", test_normalize_path_s3, NULL, NULL, \
			(void *)(dir)                                                  \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_files_present),
		VECTOR("get-header-key-duplicate"),
		VECTOR("get-header-value-multiline"),
		VECTOR("get-header-value-order"),
		VECTOR("get-header-value-trim"),
		VECTOR("get-unreserved"),
		VECTOR("get-utf8"),
		VECTOR("get-vanilla"),
		VECTOR("get-vanilla-empty-query-key"),
		VECTOR("get-vanilla-query"),
		VECTOR("get-vanilla-query-order-encoded"),
		VECTOR("get-vanilla-query-order-key"),
		VECTOR("get-vanilla-query-order-key-case"),
		VECTOR("get-vanilla-query-order-value"),
		VECTOR("get-vanilla-query-unreserved"),
		VECTOR("get-vanilla-utf8-query"),
		VECTOR("get-vanilla-with-session-token"),
		VECTOR("post-header-key-case"),
		VECTOR("post-header-key-sort"),
		VECTOR("post-header-value-case"),
		VECTOR("post-vanilla"),
		VECTOR("post-vanilla-empty-query-value"),
		VECTOR("post-vanilla-query"),
		VECTOR("post-x-www-form-urlencoded"),
		VECTOR("post-x-www-form-urlencoded-parameters"),
		VECTOR("post-sts-token/post-sts-header-before"),
		VECTOR("post-sts-token/post-sts-header-after"),
		/* These two need no normalisation: S3 signs them exactly as the suite does. */
		VECTOR("normalize-path/get-space"),
		VECTOR("normalize-path/get-special-character"),
		NORM("normalize-path/get-relative"),
		NORM("normalize-path/get-relative-relative"),
		NORM("normalize-path/get-slash"),
		NORM("normalize-path/get-slash-dot-slash"),
		NORM("normalize-path/get-slash-pointless-dot"),
		NORM("normalize-path/get-slashes"),
		cmocka_unit_test(test_s3_get_object_example),
		cmocka_unit_test(test_s3_path_encoded_once),
		cmocka_unit_test(test_format_date),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
