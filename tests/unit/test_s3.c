/* Unit tests for common/s3: request URLs for every addressing mode and endpoint source, and the
 * requests themselves as a tiny in-process HTTP server on 127.0.0.1 sees them: each signed request
 * is verified server-side (SigV4 recomputed from the bytes on the wire, which s3rver never does),
 * anonymous requests carry no credentials, and malformed answers are refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/http.h"
#include "common/sigv4.h"
#include "common/store.h"

#define KEY_ID "AKIDTESTS3"
#define SECRET "s3cr3t/Key+Value=="
#define TOKEN  "session/token+with=chars"
#define REQS   16

/* ---- a scripted HTTP server: answers the i-th request with responses[i], then closes ---- */

struct fake {
	int lfd;
	int port;
	pthread_t thread;
	const char *const *responses;
	size_t nresp;
	char *reqs[REQS]; /* what arrived, headers only */
	size_t nreq;
	atomic_bool stop;
};

static char *fake_read_request(int fd)
{
	struct buf b;
	char chunk[4096];
	time_t deadline = time(NULL) + 10;

	buf_init(&b, 64 * 1024);
	while (!strstr(buf_cstr(&b), "\r\n\r\n") && time(NULL) < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0 || buf_append(&b, chunk, (size_t)n))
			break;
	}
	return buf_steal(&b);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	time_t deadline = time(NULL) + 30;

	while (f->nreq < f->nresp && !atomic_load(&f->stop) && time(NULL) < deadline) {
		struct pollfd p = { .fd = f->lfd, .events = POLLIN };
		const char *resp;
		size_t off = 0;
		int cfd;

		if (poll(&p, 1, 100) <= 0)
			continue;
		cfd = accept(f->lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		f->reqs[f->nreq] = fake_read_request(cfd);
		resp = f->responses[f->nreq];
		f->nreq++;
		while (off < strlen(resp)) {
			ssize_t n = write(cfd, resp + off, strlen(resp) - off);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		close(cfd);
	}
	return NULL;
}

static void fake_start(struct fake *f, const char *const *responses, size_t n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	memset(f, 0, sizeof(*f));
	assert_true(n <= REQS);
	f->responses = responses;
	f->nresp = n;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &alen), 0);
	f->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Stops the server; afterwards reqs[0..nreq) may be read. */
static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

static void fake_free(struct fake *f)
{
	for (size_t i = 0; i < f->nreq; i++)
		free(f->reqs[i]);
}

/* ---- looking at a recorded request ---- */

/* The value of header `name` in a recorded request (static buffer), or NULL. */
static const char *req_header(const char *req, const char *name, char *out, size_t outsz)
{
	const char *line = strstr(req, "\r\n");

	while (line && line[2] != '\r') {
		const char *start = line + 2, *end = strstr(start, "\r\n"), *colon;

		colon = memchr(start, ':', (size_t)(end - start));
		if (colon && (size_t)(colon - start) == strlen(name) &&
		    strncasecmp(start, name, strlen(name)) == 0) {
			const char *v = colon + 1;

			while (*v == ' ')
				v++;
			snprintf(out, outsz, "%.*s", (int)(end - v), v);
			return out;
		}
		line = end;
	}
	return NULL;
}

/* The request target ("/b/k?x=y") of a recorded request. */
static void req_target(const char *req, char *out, size_t outsz)
{
	const char *sp = strchr(req, ' '), *sp2 = strchr(sp + 1, ' ');

	snprintf(out, outsz, "%.*s", (int)(sp2 - sp - 1), sp + 1);
}

/*
 * Recomputes the SigV4 signature of a recorded request from its own bytes (method, target and
 * the headers its SignedHeaders names) and requires the Authorization header to match it.
 */
static void verify_signature(const char *req, const char *region, bool with_token)
{
	char authz[1024], date[64], sha[128], target[8192], method[16], signed_list[512];
	char values[SIGV4_HEADERS_MAX][1024], names[SIGV4_HEADERS_MAX][64];
	struct sigv4_header hdrs[SIGV4_HEADERS_MAX];
	const char *sh, *q;
	struct sigv4_request sr;
	struct sigv4_key k;
	struct buf want;
	size_t n = 0;
	time_t now = time(NULL);
	struct tm tm;

	assert_non_null(req_header(req, "Authorization", authz, sizeof(authz)));
	assert_non_null(req_header(req, "x-amz-date", date, sizeof(date)));
	assert_non_null(req_header(req, "x-amz-content-sha256", sha, sizeof(sha)));
	assert_string_equal(sha, "UNSIGNED-PAYLOAD");
	/* A fresh date: within five minutes of now. */
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(date, "%Y%m%dT%H%M%SZ", &tm));
	assert_true(labs((long)(timegm(&tm) - now)) < 300);
	sh = strstr(authz, "SignedHeaders=");
	assert_non_null(sh);
	snprintf(signed_list, sizeof(signed_list), "%.*s", (int)strcspn(sh + 14, ","), sh + 14);
	if (with_token)
		assert_string_equal(signed_list, "host;x-amz-content-sha256;x-amz-date;"
						 "x-amz-security-token");
	else
		assert_string_equal(signed_list, "host;x-amz-content-sha256;x-amz-date");
	for (const char *tok = signed_list; *tok;) {
		size_t len = strcspn(tok, ";");

		assert_true(n < SIGV4_HEADERS_MAX);
		snprintf(names[n], sizeof(names[n]), "%.*s", (int)len, tok);
		assert_non_null(req_header(req, names[n], values[n], sizeof(values[n])));
		hdrs[n] = (struct sigv4_header){ names[n], values[n] };
		n++;
		tok += len + (tok[len] == ';');
	}
	snprintf(method, sizeof(method), "%.*s", (int)strcspn(req, " "), req);
	req_target(req, target, sizeof(target));
	q = strchr(target, '?');
	if (q)
		target[q - target] = '\0';
	sr = (struct sigv4_request){ method, target, q ? q + 1 : NULL, hdrs, n, sha };
	k = (struct sigv4_key){ KEY_ID, SECRET, region, "s3", date };
	buf_init(&want, 4096);
	assert_int_equal(sigv4_authorization(&sr, &k, &want), 0);
	assert_string_equal(authz, buf_cstr(&want));
	buf_free(&want);
}

/* ---- fixtures ---- */

static const char *const env_vars[] = {
	"AWS_ACCESS_KEY_ID",   "AWS_SECRET_ACCESS_KEY",	      "AWS_SESSION_TOKEN",
	"AWS_PROFILE",	       "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	"AWS_REGION",	       "AWS_DEFAULT_REGION",	      "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_S3", "HOARDFS_LIST_PAGE_SIZE",
};

static int setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
	setenv("HOME", "/nonexistent/hoardfs-test-s3", 1);
	setenv("AWS_ACCESS_KEY_ID", KEY_ID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	return 0;
}

static struct http_client *client(void)
{
	struct http_opts o = { .max_attempts = 1, .request_timeout_ms = 10000 };
	struct http_client *hc;

	assert_int_equal(http_client_new(&o, &hc), 0);
	return hc;
}

static struct store *open_s3(const char *endpoint, int addressing, bool anonymous)
{
	struct store_config cfg = { .scheme = URL_S3,
				    .bucket = "bkt",
				    .endpoint = endpoint,
				    .anonymous = anonymous,
				    .s3_addressing = addressing };
	struct store *st;

	assert_int_equal(store_open(&cfg, &st), 0);
	return st;
}

static void endpoint_of(const struct fake *f, char *out, size_t outsz)
{
	snprintf(out, outsz, "http://127.0.0.1:%d", f->port);
}

/* ---- URL building (no network) ---- */

/* The URL store_read_req() builds for `key` on a store opened with `cfg`. */
static void read_url(const struct store_config *cfg, const char *key, const char *want)
{
	struct store *st;
	struct http_req *req;
	struct http_sink sink = { 0 };

	assert_int_equal(store_open(cfg, &st), 0);
	assert_int_equal(store_read_req(st, key, "etag", 10, 0, 10, &sink, &req), 0);
	assert_string_equal(http_req_url(req), want);
	http_req_free(req);
	store_free(st);
}

static void test_urls(void **state)
{
	struct store_config cfg = { .scheme = URL_S3, .bucket = "bkt" };

	(void)state;
	/* AWS: virtual-hosted in the configured region, path-style for names that are not labels.
	 */
	cfg.region = "eu-west-1";
	read_url(&cfg, "a/b.bin", "https://bkt.s3.eu-west-1.amazonaws.com/a/b.bin");
	cfg.bucket = "my.bucket";
	read_url(&cfg, "k", "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
	cfg.s3_addressing = 1;
	cfg.bucket = "bkt";
	read_url(&cfg, "k", "https://s3.eu-west-1.amazonaws.com/bkt/k");
	cfg.s3_addressing = 0;
	setenv("AWS_REGION", "ap-south-1", 1);
	cfg.region = NULL;
	read_url(&cfg, "k", "https://bkt.s3.ap-south-1.amazonaws.com/k");
	/* A custom endpoint: path-style unless asked, with the endpoint's own path kept. */
	cfg.endpoint = "http://127.0.0.1:9000/";
	read_url(&cfg, "k", "http://127.0.0.1:9000/bkt/k");
	cfg.endpoint = "https://minio.example.test/base//";
	read_url(&cfg, "k", "https://minio.example.test/base/bkt/k");
	cfg.endpoint = "https://s3.example.test";
	cfg.s3_addressing = 2;
	read_url(&cfg, "k", "https://bkt.s3.example.test/k");
	cfg.s3_addressing = 0;
	/* Keys: encoded once, '/' kept, dot segments escaped. */
	cfg.endpoint = "http://h:1";
	read_url(&cfg, "a b/\xc3\xbc/./../x+y%z~_.-",
		 "http://h:1/bkt/a%20b/%C3%BC/%2E/%2E%2E/x%2By%25z~_.-");
	read_url(&cfg, "dir//.hidden/..x", "http://h:1/bkt/dir//.hidden/..x");
	/* Environment endpoints: the _S3 one wins; the option beats both. */
	cfg.endpoint = NULL;
	setenv("AWS_ENDPOINT_URL", "http://generic:1", 1);
	read_url(&cfg, "k", "http://generic:1/bkt/k");
	setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2", 1);
	read_url(&cfg, "k", "http://s3only:2/bkt/k");
	cfg.endpoint = "http://option:3";
	read_url(&cfg, "k", "http://option:3/bkt/k");
}

static void test_open_errors(void **state)
{
	static const char *const bad_endpoints[] = {
		"ftp://h",	  "http://", "http:///path", "http://user@h",	"http://h/?x=1",
		"http://h/#frag", "h:9000",  "http://h h",   "http://h/a/../b",
	};
	struct store_config cfg = { .scheme = URL_S3, .bucket = "bkt" };
	struct store *st;
	struct http_req *req;
	struct http_sink sink = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++) {
		cfg.endpoint = bad_endpoints[i];
		if (store_open(&cfg, &st) != -EINVAL)
			fail_msg("endpoint '%s' was accepted", bad_endpoints[i]);
	}
	cfg.endpoint = "http://h:1";
	cfg.region = "us east";
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	cfg.region = NULL;
	cfg.s3_addressing = 3;
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	cfg.s3_addressing = 2;
	cfg.bucket = "Upper.Case";
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	cfg.s3_addressing = 0;
	cfg.bucket = "bkt";
	setenv("HOARDFS_LIST_PAGE_SIZE", "0", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	setenv("HOARDFS_LIST_PAGE_SIZE", "1001", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	setenv("HOARDFS_LIST_PAGE_SIZE", "12x", 1);
	assert_int_equal(store_open(&cfg, &st), -EINVAL);
	unsetenv("HOARDFS_LIST_PAGE_SIZE");
	/* Half a key pair, or a named profile that does not exist. */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(store_open(&cfg, &st), -ENOKEY);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	cfg.profile = "nosuch";
	assert_int_equal(store_open(&cfg, &st), -ENOKEY);
	cfg.profile = NULL;
	/* Nothing configured: anonymous. */
	assert_int_equal(store_open(&cfg, &st), 0);
	assert_non_null(strstr(store_describe(st), "auth: anonymous"));
	/* Bad names and versions are refused before any request. */
	assert_int_equal(store_read_req(st, "", "e", 10, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "k", "", 10, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "k", "a\"b", 10, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "k", "a b", 10, 0, 1, &sink, &req), -EINVAL);
	assert_int_equal(store_read_req(st, "\xff", "e", 10, 0, 1, &sink, &req), -EINVAL);
	store_free(st);
}

static void test_describe(void **state)
{
	struct store_config cfg = { .scheme = URL_S3, .bucket = "bkt", .endpoint = "http://h:1" };
	struct store *st;

	(void)state;
	setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	assert_int_equal(store_open(&cfg, &st), 0);
	assert_non_null(strstr(store_describe(st), "s3://bkt"));
	assert_non_null(strstr(store_describe(st), "path-style"));
	assert_non_null(strstr(store_describe(st), "us-east-1"));
	assert_non_null(strstr(store_describe(st), "environment"));
	assert_null(strstr(store_describe(st), SECRET));
	assert_null(strstr(store_describe(st), TOKEN));
	store_free(st);
}

/* ---- requests on the wire ---- */

#define HEAD_OK                                                                      \
	"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n"                                \
	"ETag: \"0123456789abcdef0123456789ABCDEF\"\r\n"                             \
	"Last-Modified: Wed, 25 Nov 2026 22:39:13 GMT\r\nContent-Encoding: gzip\r\n" \
	"Connection: close\r\n\r\n"

static void test_head_signed(void **state)
{
	const char *const responses[] = { HEAD_OK, HEAD_OK };
	char ep[64], v[256];
	struct http_client *hc = client();
	struct store_object o;
	struct store *st;
	struct fake f;

	(void)state;
	fake_start(&f, responses, 2);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 0, false);
	assert_int_equal(store_stat(st, hc, "dir/a b+c.bin", &o), 0);
	assert_string_equal(o.name, "dir/a b+c.bin");
	assert_int_equal(o.size, 1234);
	assert_string_equal(o.version, "0123456789abcdef0123456789ABCDEF");
	assert_true(o.has_md5);
	assert_int_equal(o.md5[0], 0x01);
	assert_int_equal(o.md5[15], 0xef);
	assert_int_equal(o.mtime_sec, 1795646353);
	assert_string_equal(o.content_encoding, "gzip");
	assert_false(o.has_crc32c);
	store_free(st);
	/* With a session token and another region. */
	setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	setenv("AWS_REGION", "eu-central-1", 1);
	st = open_s3(ep, 0, false);
	assert_int_equal(store_stat(st, hc, "k", &o), 0);
	store_free(st);
	fake_stop(&f);
	assert_int_equal(f.nreq, 2);
	req_target(f.reqs[0], v, sizeof(v));
	assert_string_equal(v, "/bkt/dir/a%20b%2Bc.bin");
	assert_int_equal(strncmp(f.reqs[0], "HEAD ", 5), 0);
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", f.port);
	assert_string_equal(req_header(f.reqs[0], "Host", v, sizeof(v)), ep);
	assert_null(req_header(f.reqs[0], "x-amz-security-token", v, sizeof(v)));
	verify_signature(f.reqs[0], "us-east-1", false);
	assert_string_equal(req_header(f.reqs[1], "x-amz-security-token", v, sizeof(v)), TOKEN);
	verify_signature(f.reqs[1], "eu-central-1", true);
	assert_non_null(strstr(f.reqs[1], "Credential=" KEY_ID "/"));
	fake_free(&f);
	http_client_free(hc);
}

struct mem_sink {
	char data[64];
	size_t len;
};

static int mem_reset(void *ctx)
{
	((struct mem_sink *)ctx)->len = 0;
	return 0;
}

static int mem_write(void *ctx, uint64_t off, const void *p, size_t n)
{
	struct mem_sink *m = ctx;

	if (off + n > sizeof(m->data))
		return -EMSGSIZE;
	memcpy(m->data + off, p, n);
	if (off + n > m->len)
		m->len = off + n;
	return 0;
}

static void test_get_signed_and_pinned(void **state)
{
	const char *const responses[] = {
		"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes "
		"3-7/20\r\n"
		"ETag: \"v1\"\r\nConnection: close\r\n\r\nhello",
		/* Another version (s3rver ignores If-Match): refused as stale. */
		"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes "
		"3-7/20\r\n"
		"ETag: \"v2\"\r\nConnection: close\r\n\r\nHELLO",
		"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\nConnection: "
		"close\r\n\r\n",
	};
	struct mem_sink m = { .len = 0 };
	struct http_sink sink = { mem_reset, mem_write, &m };
	struct http_client *hc = client();
	char ep[64], v[256];
	struct store *st;
	struct fake f;

	(void)state;
	fake_start(&f, responses, 3);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 1, false);
	assert_int_equal(store_read(st, hc, "m/w.bin", "v1", 20, 3, 5, &sink), 0);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.data, "hello", 5);
	assert_int_equal(store_read(st, hc, "m/w.bin", "v1", 20, 3, 5, &sink), -ESTALE);
	assert_int_equal(store_read(st, hc, "m/w.bin", "v1", 20, 3, 5, &sink), -ESTALE);
	store_free(st);
	fake_stop(&f);
	assert_int_equal(f.nreq, 3);
	assert_int_equal(strncmp(f.reqs[0], "GET /bkt/m/w.bin HTTP/1.1\r\n", 27), 0);
	assert_string_equal(req_header(f.reqs[0], "If-Match", v, sizeof(v)), "\"v1\"");
	assert_string_equal(req_header(f.reqs[0], "Range", v, sizeof(v)), "bytes=3-7");
	verify_signature(f.reqs[0], "us-east-1", false);
	verify_signature(f.reqs[2], "us-east-1", false);
	fake_free(&f);
	http_client_free(hc);
}

struct collect {
	char lines[32][URL_KEY_MAX + 8];
	size_t n;
	int stop_after; /* return -EINTR after this many (0: never) */
};

static int collect_cb(void *ctx, const struct store_object *o, bool is_prefix)
{
	struct collect *c = ctx;

	assert_true(c->n < 32);
	snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s%s", is_prefix ? "P " : "", o->name);
	return c->stop_after && (int)c->n >= c->stop_after ? -EINTR : 0;
}

#define XML_HEAD "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n"
#define ENTRY(k)                                                     \
	"<Contents><Key>" k "</Key><ETag>\"e\"</ETag><Size>1</Size>" \
	"<LastModified>2026-11-25T22:39:13.000Z</LastModified></Contents>"
#define PFX(p) "<CommonPrefixes><Prefix>" p "</Prefix></CommonPrefixes>"

static void test_list_pages_signed(void **state)
{
	const char *const responses[] = {
		XML_HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
			 "<NextContinuationToken>tok+/=1</NextContinuationToken>"
			 "<EncodingType>url</EncodingType>" ENTRY("a%20b/%C3%BC+1")
				 PFX("a%20b/d/") "</ListBucketResult>",
		/* s3rver style: the prefix again, no EncodingType. */
		XML_HEAD "<ListBucketResult><IsTruncated>false</IsTruncated>" ENTRY("a b/z")
			PFX("a b/d/") PFX("a b/e/") "</ListBucketResult>",
	};
	struct http_client *hc = client();
	struct collect c = { .n = 0 };
	char ep[64], target[512];
	struct store *st;
	struct fake f;

	(void)state;
	setenv("HOARDFS_LIST_PAGE_SIZE", "7", 1);
	fake_start(&f, responses, 2);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 0, false);
	assert_int_equal(store_list(st, hc, "a b/", "/", 0, collect_cb, &c), 0);
	store_free(st);
	fake_stop(&f);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.lines[0], "a b/\xc3\xbc 1");
	assert_string_equal(c.lines[1], "P a b/d/");
	assert_string_equal(c.lines[2], "a b/z");
	assert_string_equal(c.lines[3], "P a b/e/");
	assert_int_equal(f.nreq, 2);
	req_target(f.reqs[0], target, sizeof(target));
	assert_string_equal(target, "/bkt?list-type=2&max-keys=7&encoding-type=url&prefix=a%20b%2F"
				    "&delimiter=%2F");
	req_target(f.reqs[1], target, sizeof(target));
	assert_non_null(strstr(target, "&continuation-token=tok%2B%2F%3D1"));
	verify_signature(f.reqs[0], "us-east-1", false);
	verify_signature(f.reqs[1], "us-east-1", false);
	fake_free(&f);
	http_client_free(hc);
}

static void test_list_max_and_stop(void **state)
{
	const char *const responses[] = {
		XML_HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
			 "<NextContinuationToken>t1</NextContinuationToken>" ENTRY("k1") ENTRY("k2")
				 ENTRY("k3") "</ListBucketResult>",
		XML_HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
			 "<NextContinuationToken>t1</NextContinuationToken>" ENTRY("k1") ENTRY("k2")
				 ENTRY("k3") "</ListBucketResult>",
	};
	struct http_client *hc = client();
	struct collect c = { .n = 0 };
	char ep[64], target[512];
	struct store *st;
	struct fake f;

	(void)state;
	fake_start(&f, responses, 2);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 0, true);
	/* --max 2: asks for 2, delivers 2, stops without a second page. */
	assert_int_equal(store_list(st, hc, "", NULL, 2, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	/* The callback's error stops the listing and is returned. */
	c.n = 0;
	c.stop_after = 1;
	assert_int_equal(store_list(st, hc, "", NULL, 0, collect_cb, &c), -EINTR);
	assert_int_equal(c.n, 1);
	store_free(st);
	fake_stop(&f);
	assert_int_equal(f.nreq, 2);
	req_target(f.reqs[0], target, sizeof(target));
	assert_string_equal(target, "/bkt?list-type=2&max-keys=2&encoding-type=url");
	/* Anonymous: no credentials of any kind. */
	for (size_t i = 0; i < f.nreq; i++) {
		assert_null(strcasestr(f.reqs[i], "authorization:"));
		assert_null(strcasestr(f.reqs[i], "x-amz-"));
	}
	fake_free(&f);
	http_client_free(hc);
}

static void test_list_refused(void **state)
{
	const char *const responses[] = {
		/* A token that does not change. */
		XML_HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
			 "<NextContinuationToken>same</NextContinuationToken>" ENTRY(
				 "p/1") "</ListBucketResult>",
		XML_HEAD "<ListBucketResult><IsTruncated>true</IsTruncated>"
			 "<NextContinuationToken>same</NextContinuationToken>" ENTRY(
				 "p/2") "</ListBucketResult>",
		/* An object outside the prefix asked for. */
		XML_HEAD "<ListBucketResult><IsTruncated>false</IsTruncated>" ENTRY(
			"q/1") "</ListBucketResult>",
		/* A common prefix without the delimiter, and one when none was asked for. */
		XML_HEAD "<ListBucketResult><IsTruncated>false</IsTruncated>" PFX(
			"p/x") "</ListBucketResult>",
		XML_HEAD "<ListBucketResult><IsTruncated>false</IsTruncated>" PFX(
			"p/x/") "</ListBucketResult>",
		/* Not XML at all, and a 404 with an S3 error body. */
		XML_HEAD "{\"json\": true}",
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nConnection: close\r\n"
		"\r\n<Error><Code>NoSuchBucket</Code><Message>The bucket is "
		"gone.</Message></Error>",
	};
	struct http_client *hc = client();
	struct collect c = { .n = 0 };
	char ep[64];
	struct store *st;
	struct fake f;

	(void)state;
	fake_start(&f, responses, 7);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 0, false);
	assert_int_equal(store_list(st, hc, "p/", NULL, 0, collect_cb, &c), -EPROTO);
	assert_int_equal(store_list(st, hc, "p/", "/", 0, collect_cb, &c), -EPROTO);
	assert_int_equal(store_list(st, hc, "p/", "/", 0, collect_cb, &c), -EPROTO);
	assert_int_equal(store_list(st, hc, "p/", NULL, 0, collect_cb, &c), -EPROTO);
	assert_int_equal(store_list(st, hc, "p/", NULL, 0, collect_cb, &c), -EPROTO);
	assert_int_equal(store_list(st, hc, "", NULL, 0, collect_cb, &c), -ENOENT);
	store_free(st);
	fake_stop(&f);
	assert_int_equal(f.nreq, 7);
	fake_free(&f);
	http_client_free(hc);
}

static void test_head_refused(void **state)
{
	const char *const responses[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n", /* no ETag */
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"a\"b\"\r\nConnection: "
		"close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nConnection: close\r\n\r\n", /* no length */
		/* A bad Last-Modified only loses the mtime; a multipart ETag is no MD5. */
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: "
		"\"0123456789abcdef0123456789abcdef-3\""
		"\r\nLast-Modified: yesterday\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	};
	struct http_client *hc = client();
	struct store_object o;
	char ep[64];
	struct store *st;
	struct fake f;

	(void)state;
	fake_start(&f, responses, 6);
	endpoint_of(&f, ep, sizeof(ep));
	st = open_s3(ep, 0, false);
	assert_int_equal(store_stat(st, hc, "k", &o), -EPROTO);
	assert_int_equal(store_stat(st, hc, "k", &o), -EPROTO);
	assert_int_equal(store_stat(st, hc, "k", &o), -EPROTO);
	assert_int_equal(store_stat(st, hc, "k", &o), 0);
	assert_int_equal(o.mtime_sec, 0);
	assert_false(o.has_md5);
	assert_string_equal(o.version, "0123456789abcdef0123456789abcdef-3");
	assert_int_equal(store_stat(st, hc, "k", &o), -ENOENT);
	assert_int_equal(store_stat(st, hc, "k", &o), -EACCES);
	assert_int_equal(store_stat(st, hc, "", &o), -EINVAL);
	store_free(st);
	fake_stop(&f);
	fake_free(&f);
	http_client_free(hc);
}

#define T(fn) cmocka_unit_test_setup(fn, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_urls),
		T(test_open_errors),
		T(test_describe),
		T(test_head_signed),
		T(test_get_signed_and_pinned),
		T(test_list_pages_signed),
		T(test_list_max_and_stop),
		T(test_list_refused),
		T(test_head_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
