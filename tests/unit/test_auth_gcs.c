/* Unit tests for auth_gcs: credential files, the order of the credential chain (with a private
 * HOME and environment), token responses, and token fetching, caching, refresh and errors against
 * a tiny HTTP server run inside the test. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/auth_gcs.h"
#include "common/jwt.h"
#include "common/log.h"

/* ---- a one-connection-at-a-time HTTP server for token requests ---- */

struct mini {
	int lfd;
	int port;
	pthread_t tid;
	pthread_mutex_t lock;
	bool stop;
	/* The answer (under lock). */
	int status;
	char body[8192];
	int delay_ms;
	bool no_flavor; /* leave out "Metadata-Flavor: Google" */
	/* What arrived (under lock). */
	int requests;
	char last[65536]; /* the last request, headers and body */
};

static void mini_answer(struct mini *m, int status, const char *body)
{
	pthread_mutex_lock(&m->lock);
	m->status = status;
	snprintf(m->body, sizeof(m->body), "%s", body);
	pthread_mutex_unlock(&m->lock);
}

static int mini_requests(struct mini *m)
{
	int n;

	pthread_mutex_lock(&m->lock);
	n = m->requests;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* Copies the last request out (NUL-terminated). */
static void mini_last(struct mini *m, char *out, size_t outsz)
{
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = strnlen(m->last, sizeof(m->last));
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, m->last, n);
	out[n] = '\0';
	pthread_mutex_unlock(&m->lock);
}

static void mini_serve_one(struct mini *m, int fd)
{
	char req[65536], resp[9000], body[8192];
	struct timeval tv = { .tv_sec = 5 };
	size_t got = 0, need = 0;
	int status, delay, n;
	bool flavor;
	char *hdr_end = NULL;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < sizeof(req) - 1) {
		ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);

		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		if (!hdr_end && (hdr_end = strstr(req, "\r\n\r\n"))) {
			char *cl = strcasestr(req, "\r\nContent-Length:");

			need = (size_t)(hdr_end + 4 - req);
			if (cl && cl < hdr_end)
				need += strtoul(cl + 17, NULL, 10);
		}
		if (hdr_end && got >= need)
			break;
	}
	req[got] = '\0';
	pthread_mutex_lock(&m->lock);
	m->requests++;
	memcpy(m->last, req, got + 1);
	status = m->status;
	delay = m->delay_ms;
	flavor = !m->no_flavor;
	snprintf(body, sizeof(body), "%s", m->body);
	pthread_mutex_unlock(&m->lock);
	if (delay)
		usleep((useconds_t)delay * 1000);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "%sConnection: close\r\n\r\n%s",
		     status, strlen(body), flavor ? "Metadata-Flavor: Google\r\n" : "", body);
	if (write(fd, resp, (size_t)n) < 0)
		fprintf(stderr, "mini: write failed\n");
	close(fd);
}

static void *mini_main(void *arg)
{
	struct mini *m = arg;

	for (;;) {
		struct pollfd p = { .fd = m->lfd, .events = POLLIN };
		bool stop;
		int fd;

		pthread_mutex_lock(&m->lock);
		stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(m->lfd, NULL, NULL);
		if (fd >= 0)
			mini_serve_one(m, fd);
	}
	return NULL;
}

static struct mini *mini_start(void)
{
	struct mini *m = calloc(1, sizeof(*m));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	assert_non_null(m);
	pthread_mutex_init(&m->lock, NULL);
	m->status = 200;
	m->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(m->lfd >= 0);
	assert_int_equal(bind(m->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(m->lfd, 64), 0);
	assert_int_equal(getsockname(m->lfd, (struct sockaddr *)&a, &alen), 0);
	m->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&m->tid, NULL, mini_main, m), 0);
	return m;
}

static void mini_stop(struct mini *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->tid, NULL);
	close(m->lfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* A loopback port with nothing listening (bound, then closed). */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- fixture: a key, a private directory, a clean environment ---- */

struct fx {
	char dir[256];
	EVP_PKEY *pkey;
	char *pem;
	struct mini *srv;
};

static struct fx *g_fx; /* for the file helpers; set up once per group */

static char *path_in(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/%s", g_fx->dir, name);
	return p;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void mkdirs(const char *path)
{
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	}
	mkdir(tmp, 0700);
}

/* Writes a service-account key file whose token_uri is `token_uri` (NULL: none). */
static void write_sa(const char *path, const char *token_uri)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("service_account"));
	json_object_object_add(o, "project_id", json_object_new_string("demo"));
	json_object_object_add(o, "private_key_id", json_object_new_string("kid-0123"));
	json_object_object_add(o, "private_key", json_object_new_string(g_fx->pem));
	json_object_object_add(o, "client_email",
			       json_object_new_string("sa@demo.iam.gserviceaccount.com"));
	if (token_uri)
		json_object_object_add(o, "token_uri", json_object_new_string(token_uri));
	write_file(path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

static void write_au(const char *path, const char *token_uri)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "{\"type\":\"authorized_user\",\"client_id\":\"cid.apps\",\"client_secret\":"
		 "\"s&e=c/r t\",\"refresh_token\":\"1//refresh\"%s%s%s}",
		 token_uri ? ",\"token_uri\":\"" : "", token_uri ? token_uri : "",
		 token_uri ? "\"" : "");
	write_file(path, text);
}

/* Unsets every variable the chain reads and points HOME at an empty directory. */
static void clean_env(void)
{
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("CLOUDSDK_CONFIG");
	unsetenv("GCE_METADATA_HOST");
	unsetenv("GCE_METADATA_IP");
	setenv("NO_GCE_CHECK", "1", 1);
	mkdirs(path_in("emptyhome"));
	setenv("HOME", path_in("emptyhome"), 1);
}

static int group_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	BIO *bio;
	char *data;
	long n;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth_gcs.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->pkey = EVP_RSA_gen(2048);
	bio = BIO_new(BIO_s_mem());
	if (!f->pkey || !bio ||
	    PEM_write_bio_PrivateKey(bio, f->pkey, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	n = BIO_get_mem_data(bio, &data);
	f->pem = strndup(data, (size_t)n);
	BIO_free(bio);
	g_fx = f;
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	EVP_PKEY_free(f->pkey);
	free(f->pem);
	free(f);
	return 0;
}

static int test_setup(void **state)
{
	struct fx *f = *state;

	clean_env();
	f->srv = mini_start();
	return 0;
}

static int test_teardown(void **state)
{
	struct fx *f = *state;

	mini_stop(f->srv);
	f->srv = NULL;
	return 0;
}

static const struct http_opts fast = { .max_attempts = 1, .connect_timeout_ms = 2000 };

static struct auth_gcs *chain(int want_rc)
{
	struct auth_gcs *a = NULL;

	assert_int_equal(auth_gcs_new(false, &fast, &a), want_rc);
	return a;
}

/* ---- token responses ---- */

static int parse_tok(const char *json, char *tok, size_t toksz, int64_t *exp)
{
	return auth_gcs_parse_token(json, strlen(json), tok, toksz, exp);
}

static void test_parse_token(void **state)
{
	char tok[64];
	int64_t exp = 0;
	static const char *bad[] = {
		"",
		"{}",
		"[]",
		"{\"access_token\":\"t\"}",
		"{\"access_token\":\"\",\"expires_in\":10}",
		"{\"access_token\":\"a b\",\"expires_in\":10}",
		"{\"access_token\":\"a\\nb\",\"expires_in\":10}",
		"{\"access_token\":\"a\\u0000b\",\"expires_in\":10}",
		"{\"access_token\":5,\"expires_in\":10}",
		"{\"access_token\":\"t\",\"expires_in\":0}",
		"{\"access_token\":\"t\",\"expires_in\":-5}",
		"{\"access_token\":\"t\",\"expires_in\":1.5}",
		"{\"access_token\":\"t\",\"expires_in\":true}",
		"{\"access_token\":\"t\",\"expires_in\":\"ten\"}",
		"{\"access_token\":\"t\",\"expires_in\":99999999999}",
		"{\"access_token\":\"t\",\"expires_in\":10,\"token_type\":\"MAC\"}",
		"{\"access_token\":\"t\",\"expires_in\":10,\"token_type\":7}",
		"{\"access_token\":\"t\",\"expires_in\":10}x",
		"{\"access_token\":\"t\",\"expires_in\":10,}",
	};

	(void)state;
	assert_int_equal(parse_tok("{\"access_token\":\"ya29.abc\",\"expires_in\":3599,"
				   "\"token_type\":\"Bearer\"}",
				   tok, sizeof(tok), &exp),
			 0);
	assert_string_equal(tok, "ya29.abc");
	assert_int_equal(exp, 3599);
	assert_int_equal(parse_tok("{\"access_token\":\"x\",\"expires_in\":\"60\","
				   "\"token_type\":\"bearer\"}\n",
				   tok, sizeof(tok), &exp),
			 0);
	assert_string_equal(tok, "x");
	assert_int_equal(exp, 60);
	assert_int_equal(
		parse_tok("{\"access_token\":\"0123456789\",\"expires_in\":5}", tok, 10, &exp),
		-ENOBUFS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_gcs_parse_token(bad[i], strlen(bad[i]), tok, sizeof(tok), &exp) != -EPROTO)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(auth_gcs_parse_token(NULL, 5, tok, sizeof(tok), &exp), -EPROTO);
}

static void test_parse_token_bounds(void **state)
{
	size_t n = AUTH_GCS_TOKEN_MAX + 100;
	char *json = malloc(n), *t = malloc(AUTH_GCS_TOKEN_MAX + 2);
	char *out = malloc(AUTH_GCS_TOKEN_MAX + 1);
	int64_t exp;

	(void)state;
	memset(t, 'a', AUTH_GCS_TOKEN_MAX);
	t[AUTH_GCS_TOKEN_MAX] = '\0';
	snprintf(json, n, "{\"access_token\":\"%s\",\"expires_in\":5}", t);
	assert_int_equal(
		auth_gcs_parse_token(json, strlen(json), out, AUTH_GCS_TOKEN_MAX + 1, &exp), 0);
	t[AUTH_GCS_TOKEN_MAX] = 'a';
	t[AUTH_GCS_TOKEN_MAX + 1] = '\0';
	snprintf(json, n, "{\"access_token\":\"%s\",\"expires_in\":5}", t);
	assert_int_equal(
		auth_gcs_parse_token(json, strlen(json), out, AUTH_GCS_TOKEN_MAX + 1, &exp),
		-EPROTO);
	free(json);
	free(t);
	free(out);
}

/* ---- the chain ---- */

static void test_chain_nothing_is_anonymous(void **state)
{
	struct auth_gcs *a = chain(0);
	char tok[8] = "x";

	(void)state;
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	assert_string_equal(auth_gcs_describe(a), "anonymous");
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "");
	auth_gcs_free(a);
}

static void test_chain_metadata_host(void **state)
{
	struct auth_gcs *a;

	(void)state;
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_METADATA);
	assert_string_equal(auth_gcs_describe(a), "metadata server http://127.0.0.1:1");
	auth_gcs_free(a);
	setenv("GCE_METADATA_HOST", "bad host", 1);
	assert_null(chain(-ENOKEY));
}

/* gcloud's file in $HOME beats the metadata server. */
static void test_chain_adc_home(void **state)
{
	struct auth_gcs *a;

	(void)state;
	mkdirs(path_in("home1/.config/gcloud"));
	write_au(path_in("home1/.config/gcloud/application_default_credentials.json"), NULL);
	setenv("HOME", path_in("home1"), 1);
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_AUTHORIZED_USER);
	assert_non_null(strstr(auth_gcs_describe(a), "home1/.config/gcloud/"));
	assert_null(strstr(auth_gcs_describe(a), "refresh")); /* no secrets in the description */
	auth_gcs_free(a);
}

/* $CLOUDSDK_CONFIG replaces ~/.config/gcloud; a service account there works too. */
static void test_chain_cloudsdk_config(void **state)
{
	struct auth_gcs *a;

	(void)state;
	mkdirs(path_in("home2/.config/gcloud"));
	write_au(path_in("home2/.config/gcloud/application_default_credentials.json"), NULL);
	setenv("HOME", path_in("home2"), 1);
	mkdirs(path_in("sdk"));
	write_sa(path_in("sdk/application_default_credentials.json"), NULL);
	setenv("CLOUDSDK_CONFIG", path_in("sdk"), 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_SERVICE_ACCOUNT);
	assert_non_null(strstr(auth_gcs_describe(a), "sa@demo.iam.gserviceaccount.com"));
	auth_gcs_free(a);
	/* An empty CLOUDSDK_CONFIG directory: no ADC, anonymous (not HOME's file). */
	mkdirs(path_in("sdk-empty"));
	setenv("CLOUDSDK_CONFIG", path_in("sdk-empty"), 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	auth_gcs_free(a);
}

/* GOOGLE_APPLICATION_CREDENTIALS beats gcloud's file; --anonymous beats everything. */
static void test_chain_gac_first(void **state)
{
	struct auth_gcs *a = NULL;

	(void)state;
	mkdirs(path_in("home3/.config/gcloud"));
	write_au(path_in("home3/.config/gcloud/application_default_credentials.json"), NULL);
	setenv("HOME", path_in("home3"), 1);
	write_sa(path_in("sa3.json"), NULL);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path_in("sa3.json"), 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_SERVICE_ACCOUNT);
	assert_non_null(strstr(auth_gcs_describe(a), "sa3.json"));
	auth_gcs_free(a);

	assert_int_equal(auth_gcs_new(true, &fast, &a), 0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	auth_gcs_free(a);

	/* An empty variable counts as unset. */
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "", 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_AUTHORIZED_USER);
	auth_gcs_free(a);
}

/* A configured file that fails does not fall through to the next source. */
static void test_chain_broken_stops(void **state)
{
	struct auth_gcs *a = NULL;

	(void)state;
	mkdirs(path_in("home4/.config/gcloud"));
	write_au(path_in("home4/.config/gcloud/application_default_credentials.json"), NULL);
	setenv("HOME", path_in("home4"), 1);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path_in("does-not-exist.json"), 1);
	assert_null(chain(-ENOKEY));
	write_file(path_in("garbage.json"), "{ not json");
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path_in("garbage.json"), 1);
	assert_null(chain(-ENOKEY));

	/* A broken gcloud file is an error too, not "no credentials". */
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	write_file(path_in("home4/.config/gcloud/application_default_credentials.json"), "[]");
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	assert_null(chain(-ENOKEY));
	/* --anonymous never reads files. */
	assert_int_equal(auth_gcs_new(true, &fast, &a), 0);
	auth_gcs_free(a);
}

/* The probe finds a metadata server that answers with Metadata-Flavor: Google, quickly gives up
 * on a closed port, and is skipped with NO_GCE_CHECK. */
static void test_chain_probe(void **state)
{
	struct fx *f = *state;
	struct auth_gcs *a;
	char where[64], last[4096];
	struct timespec t0, t1;

	unsetenv("NO_GCE_CHECK");
	snprintf(where, sizeof(where), "127.0.0.1:%d", f->srv->port);
	setenv("GCE_METADATA_IP", where, 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_METADATA);
	assert_int_equal(mini_requests(f->srv), 1);
	mini_last(f->srv, last, sizeof(last));
	assert_non_null(strstr(last, "GET / HTTP/1.1\r\n"));
	assert_non_null(strcasestr(last, "\r\nMetadata-Flavor: Google\r\n"));
	auth_gcs_free(a);

	setenv("NO_GCE_CHECK", "true", 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	assert_int_equal(mini_requests(f->srv), 1);
	auth_gcs_free(a);

	unsetenv("NO_GCE_CHECK");
	snprintf(where, sizeof(where), "127.0.0.1:%d", closed_port());
	setenv("GCE_METADATA_IP", where, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	a = chain(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	auth_gcs_free(a);
}

/* A server that answers 200 without the Metadata-Flavor header is not a metadata server. */
static void test_chain_probe_needs_flavor(void **state)
{
	struct fx *f = *state;
	struct auth_gcs *a;
	char where[64];

	pthread_mutex_lock(&f->srv->lock);
	f->srv->no_flavor = true;
	pthread_mutex_unlock(&f->srv->lock);
	unsetenv("NO_GCE_CHECK");
	snprintf(where, sizeof(where), "127.0.0.1:%d", f->srv->port);
	setenv("GCE_METADATA_IP", where, 1);
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	assert_int_equal(mini_requests(f->srv), 1);
	auth_gcs_free(a);

	/* Nor does an error status with the header. */
	pthread_mutex_lock(&f->srv->lock);
	f->srv->no_flavor = false;
	pthread_mutex_unlock(&f->srv->lock);
	mini_answer(f->srv, 404, "{}");
	a = chain(0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_ANONYMOUS);
	assert_int_equal(mini_requests(f->srv), 2);
	auth_gcs_free(a);
}

/* ---- credential files ---- */

static void check_bad_file(const char *name, const char *text)
{
	struct auth_gcs *a = (struct auth_gcs *)1;

	write_file(path_in(name), text);
	if (auth_gcs_from_file(path_in(name), &fast, &a) != -ENOKEY)
		fail_msg("accepted %s: %s", name, text);
	assert_null(a);
}

static void test_file_errors(void **state)
{
	struct auth_gcs *a = NULL;
	char *big;

	(void)state;
	check_bad_file("e1.json", "");
	check_bad_file("e2.json", "[1,2]");
	check_bad_file("e3.json", "{\"client_email\":\"x\"}");
	check_bad_file("e4.json", "{\"type\":\"external_account\"}");
	check_bad_file("e5.json", "{\"type\":7}");
	check_bad_file("e6.json", "{\"type\":\"service_account\",\"private_key\":\"x\"}");
	check_bad_file("e7.json", "{\"type\":\"service_account\",\"client_email\":\"a@b\"}");
	check_bad_file("e8.json", "{\"type\":\"service_account\",\"client_email\":\"a@b\","
				  "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END "
				  "PRIVATE KEY-----\\n\"}");
	check_bad_file("e9.json", "{\"type\":\"service_account\",\"client_email\":\"a@b\","
				  "\"private_key\":42}");
	check_bad_file("e10.json", "{\"type\":\"authorized_user\",\"client_id\":\"a\","
				   "\"client_secret\":\"b\"}");
	check_bad_file("e11.json", "{\"type\":\"authorized_user\",\"client_id\":\"a\","
				   "\"client_secret\":\"b\",\"refresh_token\":\"c\","
				   "\"token_uri\":\"ftp://x/token\"}");
	check_bad_file("e12.json", "{\"type\":\"authorized_user\",\"client_id\":\"a\","
				   "\"client_secret\":\"b\",\"refresh_token\":\"\"}");
	check_bad_file("e13.json", "{\"type\":\"authorized_user\"}{}");

	/* Over 64 KiB. */
	big = malloc(AUTH_GCS_FILE_MAX + 10);
	memset(big, ' ', AUTH_GCS_FILE_MAX + 9);
	big[0] = '{';
	big[AUTH_GCS_FILE_MAX + 8] = '}';
	big[AUTH_GCS_FILE_MAX + 9] = '\0';
	check_bad_file("big.json", big);
	free(big);

	/* A directory, and a missing file. */
	assert_int_equal(auth_gcs_from_file(g_fx->dir, &fast, &a), -ENOKEY);
	assert_int_equal(auth_gcs_from_file(path_in("nope.json"), &fast, &a), -ENOKEY);

	/* The token_uri defaults to Google's. Unknown members are ignored. */
	write_file(path_in("ok.json"), "{\"type\":\"authorized_user\",\"client_id\":\"a\","
				       "\"client_secret\":\"b\",\"refresh_token\":\"c\","
				       "\"quota_project_id\":\"q\"}");
	assert_int_equal(auth_gcs_from_file(path_in("ok.json"), &fast, &a), 0);
	assert_int_equal(auth_gcs_kind(a), AUTH_GCS_AUTHORIZED_USER);
	auth_gcs_free(a);
}

/* ---- fetching tokens ---- */

/* The value of form field `name` in the request body (percent-decoding not needed by callers
 * that compare encoded text). */
static const char *form_field(const char *req, const char *name, char *out, size_t outsz)
{
	const char *body = strstr(req, "\r\n\r\n");
	char key[64];
	const char *p;
	size_t n;

	assert_non_null(body);
	body += 4;
	snprintf(key, sizeof(key), "%s=", name);
	for (p = body; p; p = strchr(p, '&')) {
		if (*p == '&')
			p++;
		if (strncmp(p, key, strlen(key)) == 0) {
			p += strlen(key);
			n = strcspn(p, "&");
			assert_true(n < outsz);
			memcpy(out, p, n);
			out[n] = '\0';
			return out;
		}
	}
	return NULL;
}

static void token_uri_of(struct fx *f, char *out, size_t outsz)
{
	snprintf(out, outsz, "http://127.0.0.1:%d/token", f->srv->port);
}

static int64_t json_int(struct json_object *o, const char *name)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, name, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static const char *json_str(struct json_object *o, const char *name)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, name, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* The service-account grant: a signed assertion with the right claims, then caching. */
static void test_service_account_flow(void **state)
{
	struct fx *f = *state;
	char uri[128], tok[AUTH_GCS_TOKEN_MAX + 1], *last = malloc(65536), *jwt = malloc(8192);
	struct json_object *claims, *hdr;
	struct auth_gcs *a;
	struct buf part, sig, signed_part;
	char *dot1, *dot2;
	EVP_MD_CTX *md;
	time_t now = time(NULL);

	token_uri_of(f, uri, sizeof(uri));
	write_sa(path_in("sa.json"), uri);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path_in("sa.json"), 1);
	mini_answer(f->srv, 200,
		    "{\"access_token\":\"tok-sa-1\",\"expires_in\":3600,"
		    "\"token_type\":\"Bearer\"}");
	a = chain(0);
	assert_int_equal(mini_requests(f->srv), 0); /* nothing fetched until asked */
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "tok-sa-1");
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_int_equal(mini_requests(f->srv), 1);
	assert_int_equal(auth_gcs_fetches(a), 1);

	mini_last(f->srv, last, 65536);
	assert_non_null(strstr(last, "POST /token HTTP/1.1\r\n"));
	assert_non_null(
		strcasestr(last, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
	assert_string_equal(form_field(last, "grant_type", jwt, 8192),
			    "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
	assert_non_null(form_field(last, "assertion", jwt, 8192));

	/* Header, claims, signature. */
	dot1 = strchr(jwt, '.');
	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	buf_init(&part, 8192);
	assert_int_equal(jwt_base64url_decode(&part, jwt, (size_t)(dot1 - jwt)), 0);
	hdr = json_tokener_parse(buf_cstr(&part));
	assert_non_null(hdr);
	assert_string_equal(json_str(hdr, "alg"), "RS256");
	assert_string_equal(json_str(hdr, "kid"), "kid-0123");
	buf_reset(&part);
	assert_int_equal(jwt_base64url_decode(&part, dot1 + 1, (size_t)(dot2 - dot1 - 1)), 0);
	claims = json_tokener_parse(buf_cstr(&part));
	assert_non_null(claims);
	assert_string_equal(json_str(claims, "iss"), "sa@demo.iam.gserviceaccount.com");
	assert_string_equal(json_str(claims, "aud"), uri);
	assert_string_equal(json_str(claims, "scope"), AUTH_GCS_SCOPE);
	assert_true(json_int(claims, "iat") >= now - 5 && json_int(claims, "iat") <= now + 5);
	assert_int_equal(json_int(claims, "exp") - json_int(claims, "iat"), 3600);

	buf_init(&sig, 4096);
	buf_init(&signed_part, 8192);
	assert_int_equal(jwt_base64url_decode(&sig, dot2 + 1, strlen(dot2 + 1)), 0);
	assert_int_equal(buf_append(&signed_part, jwt, (size_t)(dot2 - jwt)), 0);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, f->pkey), 1);
	assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig.data, sig.len,
					  (unsigned char *)signed_part.data, signed_part.len),
			 1);
	EVP_MD_CTX_free(md);

	json_object_put(hdr);
	json_object_put(claims);
	buf_free(&part);
	buf_free(&sig);
	buf_free(&signed_part);
	auth_gcs_free(a);
	free(last);
	free(jwt);
}

static void test_authorized_user_flow(void **state)
{
	struct fx *f = *state;
	char uri[128], tok[AUTH_GCS_TOKEN_MAX + 1], last[8192], v[256];
	struct auth_gcs *a;

	token_uri_of(f, uri, sizeof(uri));
	mkdirs(path_in("home5/.config/gcloud"));
	write_au(path_in("home5/.config/gcloud/application_default_credentials.json"), uri);
	setenv("HOME", path_in("home5"), 1);
	mini_answer(f->srv, 200, "{\"access_token\":\"tok-au\",\"expires_in\":\"3600\"}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "tok-au");
	mini_last(f->srv, last, sizeof(last));
	assert_string_equal(form_field(last, "grant_type", v, sizeof(v)), "refresh_token");
	assert_string_equal(form_field(last, "client_id", v, sizeof(v)), "cid.apps");
	assert_string_equal(form_field(last, "client_secret", v, sizeof(v)), "s%26e%3Dc%2Fr%20t");
	assert_string_equal(form_field(last, "refresh_token", v, sizeof(v)), "1%2F%2Frefresh");
	auth_gcs_free(a);
}

/* The metadata server's token, and the Authorization header prepare() adds to requests. */
static void test_metadata_flow_and_prepare(void **state)
{
	struct fx *f = *state;
	char host[64], url[128], tok[AUTH_GCS_TOKEN_MAX + 1], last[8192];
	struct http_client *hc;
	struct http_req *req;
	struct auth_gcs *a;

	snprintf(host, sizeof(host), "127.0.0.1:%d", f->srv->port);
	setenv("GCE_METADATA_HOST", host, 1);
	mini_answer(f->srv, 200,
		    "{\"access_token\":\"tok-md\",\"expires_in\":3599,"
		    "\"token_type\":\"Bearer\"}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "tok-md");
	mini_last(f->srv, last, sizeof(last));
	assert_non_null(strstr(last, "GET /computeMetadata/v1/instance/service-accounts/default/"
				     "token HTTP/1.1\r\n"));
	assert_non_null(strcasestr(last, "\r\nMetadata-Flavor: Google\r\n"));

	/* A request with auth_gcs_prepare carries the cached token. */
	assert_int_equal(http_client_new(&fast, &hc), 0);
	snprintf(url, sizeof(url), "http://%s/storage/v1/b/x/o", host);
	assert_int_equal(http_req_new("GET", url, &req), 0);
	http_req_set_prepare(req, auth_gcs_prepare, a);
	assert_int_equal(http_perform(hc, req), 0);
	mini_last(f->srv, last, sizeof(last));
	assert_non_null(strstr(last, "GET /storage/v1/b/x/o HTTP/1.1\r\n"));
	assert_non_null(strstr(last, "\r\nAuthorization: Bearer tok-md\r\n"));
	assert_int_equal(mini_requests(f->srv), 2);
	http_req_free(req);
	http_client_free(hc);
	auth_gcs_free(a);

	/* Anonymous: no header at all. */
	assert_int_equal(auth_gcs_new(true, &fast, &a), 0);
	assert_int_equal(http_client_new(&fast, &hc), 0);
	assert_int_equal(http_req_new("GET", url, &req), 0);
	http_req_set_prepare(req, auth_gcs_prepare, a);
	assert_int_equal(http_perform(hc, req), 0);
	mini_last(f->srv, last, sizeof(last));
	assert_null(strcasestr(last, "Authorization:"));
	http_req_free(req);
	http_client_free(hc);
	auth_gcs_free(a);
}

/* A short-lived token is refreshed once half its life is gone (5 minutes for real tokens). */
static void test_refresh(void **state)
{
	struct fx *f = *state;
	char host[64], tok[AUTH_GCS_TOKEN_MAX + 1];
	struct auth_gcs *a;

	snprintf(host, sizeof(host), "127.0.0.1:%d", f->srv->port);
	setenv("GCE_METADATA_HOST", host, 1);
	mini_answer(f->srv, 200, "{\"access_token\":\"first\",\"expires_in\":2}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "first");
	mini_answer(f->srv, 200, "{\"access_token\":\"second\",\"expires_in\":2}");
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "first");
	assert_int_equal(mini_requests(f->srv), 1);
	usleep(1200 * 1000);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "second");
	assert_int_equal(mini_requests(f->srv), 2);
	assert_int_equal(auth_gcs_fetches(a), 2);
	auth_gcs_free(a);
}

struct racer {
	struct auth_gcs *a;
	int rc;
	char tok[64];
};

static void *race(void *arg)
{
	struct racer *r = arg;

	r->rc = auth_gcs_token(r->a, r->tok, sizeof(r->tok));
	return NULL;
}

/* Eight threads asking at once cost one token request. */
static void test_concurrent_one_fetch(void **state)
{
	struct fx *f = *state;
	struct racer r[8];
	pthread_t t[8];
	char host[64];
	struct auth_gcs *a;

	snprintf(host, sizeof(host), "127.0.0.1:%d", f->srv->port);
	setenv("GCE_METADATA_HOST", host, 1);
	mini_answer(f->srv, 200, "{\"access_token\":\"shared\",\"expires_in\":3600}");
	pthread_mutex_lock(&f->srv->lock);
	f->srv->delay_ms = 300;
	pthread_mutex_unlock(&f->srv->lock);
	a = chain(0);
	for (int i = 0; i < 8; i++) {
		r[i].a = a;
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].rc, 0);
		assert_string_equal(r[i].tok, "shared");
	}
	assert_int_equal(mini_requests(f->srv), 1);
	auth_gcs_free(a);
}

/* A refused grant is -EACCES, not retried within a second; a malformed answer is -EPROTO. */
static void test_token_errors(void **state)
{
	struct fx *f = *state;
	char uri[128], tok[AUTH_GCS_TOKEN_MAX + 1], host[64];
	struct auth_gcs *a;

	token_uri_of(f, uri, sizeof(uri));
	write_sa(path_in("sa-err.json"), uri);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path_in("sa-err.json"), 1);
	mini_answer(f->srv, 400,
		    "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT "
		    "Signature.\"}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), -EACCES);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), -EACCES);
	assert_int_equal(mini_requests(f->srv), 1);
	usleep(1100 * 1000);
	mini_answer(f->srv, 200, "{\"access_token\":\"late\",\"expires_in\":3600}");
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "late");
	assert_int_equal(mini_requests(f->srv), 2);
	/* A caller's buffer that is too small. */
	assert_int_equal(auth_gcs_token(a, tok, 3), -ENOBUFS);
	auth_gcs_free(a);

	mini_answer(f->srv, 401, "{}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), -EACCES);
	auth_gcs_free(a);

	mini_answer(f->srv, 200, "{\"access_token\":\"no expiry\"}");
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), -EPROTO);
	auth_gcs_free(a);

	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	snprintf(host, sizeof(host), "127.0.0.1:%d", closed_port());
	setenv("GCE_METADATA_HOST", host, 1);
	a = chain(0);
	assert_int_equal(auth_gcs_token(a, tok, sizeof(tok)), -ECONNREFUSED);
	auth_gcs_free(a);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
	const struct CMUnitTest tests[] = {
		T(test_parse_token),
		T(test_parse_token_bounds),
		T(test_chain_nothing_is_anonymous),
		T(test_chain_metadata_host),
		T(test_chain_adc_home),
		T(test_chain_cloudsdk_config),
		T(test_chain_gac_first),
		T(test_chain_broken_stops),
		T(test_chain_probe),
		T(test_chain_probe_needs_flavor),
		T(test_file_errors),
		T(test_service_account_flow),
		T(test_authorized_user_flow),
		T(test_metadata_flow_and_prepare),
		T(test_refresh),
		T(test_concurrent_one_fetch),
		T(test_token_errors),
	};
#undef T

	log_init("test_auth_gcs", getenv("HOARDFS_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR, false);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
