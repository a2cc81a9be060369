/* auth_gcs: Google credentials and a cached, refreshed OAuth2 access token. */
#include "common/auth_gcs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/jwt.h"
#include "common/log.h"
#include "common/num.h"
#include "common/url.h"

#define JSON_DEPTH_MAX	     16
#define FIELD_MAX	     (16 * 1024) /* longest string taken from a credentials file */
#define URL_MAX		     2048
#define ASSERTION_LIFETIME_S 3600
#define EXPIRES_IN_MAX	     (7 * 86400)
#define FAIL_HOLDOFF_MS	     1000   /* a failed refresh is not retried sooner */
#define WAIT_REFRESH_MS	     120000 /* longest wait for another thread's refresh */
#define TOKEN_TIMEOUT_MS     30000  /* per attempt of a token request */
#define TOKEN_ATTEMPTS_MAX   4
#define PROBE_TIMEOUT_MS     1000
#define PROBE_CONNECT_MS     500
#define DESCRIBE_MAX	     (URL_MAX + 256)
#define METADATA_TOKEN_PATH  "/computeMetadata/v1/instance/service-accounts/default/token"

struct auth_gcs {
	enum auth_gcs_kind kind;
	char describe[DESCRIBE_MAX];

	/* Immutable after construction. Secrets: key, client_secret, refresh_token. */
	struct jwt_key *key;  /* service account */
	char *client_email;   /* service account */
	char *private_key_id; /* service account, may be NULL */
	char *client_id;      /* authorized user */
	char *client_secret;  /* authorized user */
	char *refresh_token;  /* authorized user */
	char *token_uri;      /* service account, authorized user */
	char *metadata_url;   /* metadata: the full token URL */

	/* Used only by the thread that set `refreshing`, outside the lock. */
	struct http_client *hc;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when a refresh ends */
	/* Protected by lock: */
	bool refreshing;
	bool have_token;
	char token[AUTH_GCS_TOKEN_MAX + 1];
	uint64_t refresh_at_ms;	  /* monotonic: refresh from here on */
	uint64_t usable_until_ms; /* monotonic: do not hand out the token after this */
	int fail_rc;		  /* the last refresh's error, 0 if it worked */
	uint64_t fail_at_ms;
	_Atomic uint64_t fetches; /* atomic: read without the lock */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Frees a string after overwriting it (for secrets). */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int auth_alloc(enum auth_gcs_kind kind, struct auth_gcs **out)
{
	struct auth_gcs *a = calloc(1, sizeof(*a));
	pthread_condattr_t ca;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->kind = kind;
	if (pthread_condattr_init(&ca)) {
		free(a);
		return -ENOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&a->cond, &ca)) {
		pthread_condattr_destroy(&ca);
		free(a);
		return -ENOMEM;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_mutex_init(&a->lock, NULL)) {
		pthread_cond_destroy(&a->cond);
		free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void auth_gcs_free(struct auth_gcs *a)
{
	if (!a)
		return;
	http_client_free(a->hc);
	jwt_key_free(a->key);
	free(a->client_email);
	free(a->private_key_id);
	free(a->client_id);
	free_secret(a->client_secret);
	free_secret(a->refresh_token);
	free(a->token_uri);
	free(a->metadata_url);
	explicit_bzero(a->token, sizeof(a->token));
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

/* Creates the object's own HTTP client for token requests, with bounded attempts. */
static int make_client(struct auth_gcs *a, const struct http_opts *http)
{
	struct http_opts o = { 0 };

	if (http)
		o = *http;
	if (o.max_attempts <= 0 || o.max_attempts > TOKEN_ATTEMPTS_MAX)
		o.max_attempts = TOKEN_ATTEMPTS_MAX;
	if (o.request_timeout_ms <= 0 || o.request_timeout_ms > TOKEN_TIMEOUT_MS)
		o.request_timeout_ms = TOKEN_TIMEOUT_MS;
	return http_client_new(&o, &a->hc);
}

enum auth_gcs_kind auth_gcs_kind(const struct auth_gcs *a)
{
	return a->kind;
}

const char *auth_gcs_describe(const struct auth_gcs *a)
{
	return a->describe;
}

uint64_t auth_gcs_fetches(const struct auth_gcs *a)
{
	return atomic_load(&a->fetches);
}

/* ---- JSON helpers ---- */

/* Parses `len` bytes of JSON text that must be one object. Returns it (caller puts) or NULL. */
static struct json_object *parse_json_object(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (!text || len == 0 || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (obj && json_tokener_get_error(tok) == json_tokener_success) {
		end = json_tokener_get_parse_end(tok);
		while (end < len && (text[end] == ' ' || text[end] == '\n' || text[end] == '\r' ||
				     text[end] == '\t'))
			end++;
		if (end != len || !json_object_is_type(obj, json_type_object)) {
			json_object_put(obj);
			obj = NULL;
		}
	} else {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/*
 * Gets string member `name` of `obj`: 1..max bytes without NUL. Returns 0 and a pointer valid as
 * long as obj, -ENOENT when absent (or null), -EPROTO when of another type or out of bounds.
 */
static int json_get_str(struct json_object *obj, const char *name, size_t max, const char **out)
{
	struct json_object *v;
	const char *s;
	int len;

	*out = NULL;
	if (!json_object_object_get_ex(obj, name, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EPROTO;
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (len <= 0 || (size_t)len > max || strlen(s) != (size_t)len)
		return -EPROTO;
	*out = s;
	return 0;
}

static bool visible_ascii(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	}
	return true;
}

int auth_gcs_parse_token(const char *json, size_t len, char *token, size_t tokensz,
			 int64_t *expires_in)
{
	struct json_object *obj, *v;
	const char *tok, *type;
	int64_t exp = 0;
	size_t n;
	int rc = -EPROTO;

	obj = parse_json_object(json, len);
	if (!obj)
		return -EPROTO;
	if (json_get_str(obj, "access_token", AUTH_GCS_TOKEN_MAX, &tok) || !visible_ascii(tok))
		goto out_put;
	rc = json_get_str(obj, "token_type", 64, &type);
	if (rc == 0 && strcasecmp(type, "Bearer") != 0) {
		rc = -EPROTO;
		goto out_put;
	}
	if (rc != 0 && rc != -ENOENT)
		goto out_put;
	rc = -EPROTO;
	if (!json_object_object_get_ex(obj, "expires_in", &v) || !v)
		goto out_put;
	if (json_object_is_type(v, json_type_int)) {
		exp = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		uint64_t u;

		if (num_parse_u64(json_object_get_string(v), &u) || u > EXPIRES_IN_MAX)
			goto out_put;
		exp = (int64_t)u;
	} else {
		goto out_put;
	}
	if (exp < 1 || exp > EXPIRES_IN_MAX)
		goto out_put;
	n = strlen(tok);
	if (n + 1 > tokensz) {
		rc = -ENOBUFS;
		goto out_put;
	}
	memcpy(token, tok, n + 1);
	*expires_in = exp;
	rc = 0;
out_put:
	json_object_put(obj);
	return rc;
}

/* ---- credential files ---- */

/* Reads a whole small file into a NUL-terminated heap buffer. Returns 0 or -errno. */
static int read_small_file(const char *path, char **out, size_t *outlen)
{
	struct stat st;
	size_t got = 0;
	char *data;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out_close;
	}
	if (st.st_size > AUTH_GCS_FILE_MAX) {
		rc = -EFBIG;
		goto out_close;
	}
	data = malloc(AUTH_GCS_FILE_MAX + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		ssize_t n = read(fd, data + got, AUTH_GCS_FILE_MAX + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > AUTH_GCS_FILE_MAX) {
			rc = -EFBIG;
			goto out_free;
		}
	}
	data[got] = '\0';
	*out = data;
	*outlen = got;
	close(fd);
	return 0;

out_free:
	explicit_bzero(data, got);
	free(data);
out_close:
	close(fd);
	return rc;
}

static bool http_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
	       visible_ascii(s);
}

/* Gets a required string field of a credentials file; logs what is wrong. */
static int cred_str(struct json_object *obj, const char *path, const char *name, const char **out)
{
	int rc = json_get_str(obj, name, FIELD_MAX, out);

	if (rc == -ENOENT)
		log_error("gcs auth: credentials file %s lacks \"%s\"", path, name);
	else if (rc)
		log_error("gcs auth: credentials file %s: \"%s\" is not a string of 1..%d bytes",
			  path, name, FIELD_MAX);
	return rc ? -ENOKEY : 0;
}

/* Gets the optional token_uri (default AUTH_GCS_DEFAULT_TOKEN_URI) into a->token_uri. */
static int cred_token_uri(struct auth_gcs *a, struct json_object *obj, const char *path)
{
	const char *uri;
	int rc = json_get_str(obj, "token_uri", URL_MAX, &uri);

	if (rc == -ENOENT)
		uri = AUTH_GCS_DEFAULT_TOKEN_URI;
	else if (rc || !http_url(uri)) {
		log_error("gcs auth: credentials file %s: \"token_uri\" is not an http(s) URL",
			  path);
		return -ENOKEY;
	}
	a->token_uri = strdup(uri);
	return a->token_uri ? 0 : -ENOMEM;
}

static int load_service_account(struct auth_gcs *a, struct json_object *obj, const char *path)
{
	const char *email, *pem, *kid = NULL;
	int rc;

	if ((rc = cred_str(obj, path, "client_email", &email)) ||
	    (rc = cred_str(obj, path, "private_key", &pem)))
		return rc;
	if (!visible_ascii(email)) {
		log_error("gcs auth: credentials file %s: \"client_email\" is malformed", path);
		return -ENOKEY;
	}
	rc = json_get_str(obj, "private_key_id", 256, &kid);
	if (rc == -ENOENT) {
		kid = NULL;
	} else if (rc) {
		log_error("gcs auth: credentials file %s: \"private_key_id\" is malformed", path);
		return -ENOKEY;
	}
	rc = jwt_key_from_pem(pem, strlen(pem), &a->key);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		log_error(
			"gcs auth: credentials file %s: \"private_key\" is not an unencrypted RSA "
			"private key in PEM of at least %d bits",
			path, JWT_MIN_RSA_BITS);
		return -ENOKEY;
	}
	a->client_email = strdup(email);
	if (kid)
		a->private_key_id = strdup(kid);
	if (!a->client_email || (kid && !a->private_key_id))
		return -ENOMEM;
	rc = cred_token_uri(a, obj, path);
	if (rc)
		return rc;
	snprintf(a->describe, sizeof(a->describe), "service account %s (from %s)", email, path);
	return 0;
}

static int load_authorized_user(struct auth_gcs *a, struct json_object *obj, const char *path)
{
	const char *id, *secret, *refresh;
	int rc;

	if ((rc = cred_str(obj, path, "client_id", &id)) ||
	    (rc = cred_str(obj, path, "client_secret", &secret)) ||
	    (rc = cred_str(obj, path, "refresh_token", &refresh)))
		return rc;
	a->client_id = strdup(id);
	a->client_secret = strdup(secret);
	a->refresh_token = strdup(refresh);
	if (!a->client_id || !a->client_secret || !a->refresh_token)
		return -ENOMEM;
	rc = cred_token_uri(a, obj, path);
	if (rc)
		return rc;
	snprintf(a->describe, sizeof(a->describe), "authorized user (from %s)", path);
	return 0;
}

int auth_gcs_from_file(const char *path, const struct http_opts *http, struct auth_gcs **out)
{
	struct json_object *obj = NULL;
	struct auth_gcs *a = NULL;
	const char *type;
	size_t len = 0;
	char *text;
	int rc;

	*out = NULL;
	rc = read_small_file(path, &text, &len);
	if (rc) {
		log_error("gcs auth: cannot read credentials file %s: %s", path,
			  rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
		return rc == -ENOMEM ? rc : -ENOKEY;
	}
	obj = parse_json_object(text, len);
	explicit_bzero(text, len);
	free(text);
	if (!obj) {
		log_error("gcs auth: credentials file %s is not a JSON object", path);
		return -ENOKEY;
	}
	rc = json_get_str(obj, "type", 64, &type);
	if (rc) {
		log_error("gcs auth: credentials file %s has no \"type\" string", path);
		rc = -ENOKEY;
		goto out_put;
	}
	if (strcmp(type, "service_account") == 0) {
		rc = auth_alloc(AUTH_GCS_SERVICE_ACCOUNT, &a);
		if (!rc)
			rc = load_service_account(a, obj, path);
	} else if (strcmp(type, "authorized_user") == 0) {
		rc = auth_alloc(AUTH_GCS_AUTHORIZED_USER, &a);
		if (!rc)
			rc = load_authorized_user(a, obj, path);
	} else {
		log_error("gcs auth: credentials file %s has type \"%.64s\"; only service_account "
			  "and "
			  "authorized_user are supported",
			  path, visible_ascii(type) ? type : "?");
		rc = -ENOKEY;
	}
	if (!rc)
		rc = make_client(a, http);
	if (rc)
		goto out_free;
	json_object_put(obj);
	*out = a;
	return 0;

out_free:
	auth_gcs_free(a);
out_put:
	json_object_put(obj);
	return rc;
}

/* ---- the chain ---- */

static int new_anonymous(struct auth_gcs **out)
{
	int rc = auth_alloc(AUTH_GCS_ANONYMOUS, out);

	if (!rc)
		snprintf((*out)->describe, sizeof((*out)->describe), "anonymous");
	return rc;
}

/* Writes "http://HOST" for "host[:port]" (or an http(s) URL as is) into out. Returns 0 or
 * -EINVAL (malformed, or too long). */
static int metadata_base(const char *host, char *out, size_t outsz)
{
	int n;

	if (!*host || !visible_ascii(host))
		return -EINVAL;
	if (strstr(host, "://"))
		n = http_url(host) ? snprintf(out, outsz, "%s", host) : -1;
	else
		n = snprintf(out, outsz, "http://%s", host);
	if (n < 0 || (size_t)n >= outsz)
		return -EINVAL;
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

static int new_metadata(const char *base, const struct http_opts *http, struct auth_gcs **out)
{
	struct auth_gcs *a;
	char url[URL_MAX];
	int rc, n;

	n = snprintf(url, sizeof(url), "%s%s", base, METADATA_TOKEN_PATH);
	if (n < 0 || (size_t)n >= sizeof(url))
		return -EINVAL;
	rc = auth_alloc(AUTH_GCS_METADATA, &a);
	if (rc)
		return rc;
	a->metadata_url = strdup(url);
	if (!a->metadata_url) {
		rc = -ENOMEM;
		goto out_free;
	}
	snprintf(a->describe, sizeof(a->describe), "metadata server %s", base);
	rc = make_client(a, http);
	if (rc)
		goto out_free;
	*out = a;
	return 0;
out_free:
	auth_gcs_free(a);
	return rc;
}

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v &&
	       (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* Asks http://`base`/ whether it is a metadata server, within about a second. */
static bool probe_metadata(const char *base, const struct http_opts *http)
{
	struct http_opts o = { 0 };
	struct http_client *hc = NULL;
	struct http_req *req = NULL;
	const char *flavor;
	char url[URL_MAX];
	bool found = false;
	int n;

	if (http)
		o = *http;
	o.max_attempts = 1;
	o.connect_timeout_ms = PROBE_CONNECT_MS;
	o.request_timeout_ms = PROBE_TIMEOUT_MS;
	o.stats = NULL;
	n = snprintf(url, sizeof(url), "%s/", base);
	if (n < 0 || (size_t)n >= sizeof(url))
		return false;
	if (http_client_new(&o, &hc))
		return false;
	if (http_req_new("GET", url, &req) || http_req_add_header(req, "Metadata-Flavor", "Google"))
		goto out;
	http_req_set_body_max(req, 64 * 1024);
	if (http_perform(hc, req) == 0) {
		flavor = http_req_header(req, "metadata-flavor");
		found = flavor && strcmp(flavor, "Google") == 0;
	}
	log_debug("gcs auth: metadata server probe of %s: %s", base,
		  found ? "found" : http_req_error(req));
out:
	http_req_free(req);
	http_client_free(hc);
	return found;
}

int auth_gcs_new(bool anonymous, const struct http_opts *http, struct auth_gcs **out)
{
	const char *gac = getenv("GOOGLE_APPLICATION_CREDENTIALS");
	const char *cfgdir = getenv("CLOUDSDK_CONFIG");
	const char *home = getenv("HOME");
	const char *mdhost = getenv("GCE_METADATA_HOST");
	char path[4096], base[URL_MAX];
	struct stat st;
	int n = -1;

	*out = NULL;
	if (anonymous)
		return new_anonymous(out);
	if (gac && *gac)
		return auth_gcs_from_file(gac, http, out);

	if (cfgdir && *cfgdir)
		n = snprintf(path, sizeof(path), "%s/application_default_credentials.json", cfgdir);
	else if (home && *home)
		n = snprintf(path, sizeof(path),
			     "%s/.config/gcloud/application_default_credentials.json", home);
	if (n > 0 && (size_t)n < sizeof(path)) {
		if (stat(path, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
			return auth_gcs_from_file(path, http, out);
	}

	if (mdhost && *mdhost) {
		if (metadata_base(mdhost, base, sizeof(base))) {
			log_error("gcs auth: GCE_METADATA_HOST \"%.200s\" is not host[:port]",
				  mdhost);
			return -ENOKEY;
		}
		return new_metadata(base, http, out);
	}
	if (!env_true("NO_GCE_CHECK")) {
		const char *ip = getenv("GCE_METADATA_IP");

		if (metadata_base(ip && *ip ? ip : AUTH_GCS_PROBE_DEFAULT, base, sizeof(base)) ==
			    0 &&
		    probe_metadata(base, http))
			return new_metadata(base, http, out);
	}
	return new_anonymous(out);
}

/* ---- fetching tokens ---- */

/* Appends "&name=value" (value percent-encoded; no '&' for the first pair). */
static int form_add(struct buf *b, const char *name, const char *value)
{
	int rc = buf_printf(b, "%s%s=", b->len ? "&" : "", name);

	return rc ? rc : url_encode(b, value, false);
}

/* Adds obj[name] = v, taking v (NULL after a failed allocation). Returns 0 or -ENOMEM. */
static int add_member(struct json_object *obj, const char *name, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, name, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* Builds the signed JWT assertion of a service account into b. */
static int build_assertion(struct auth_gcs *a, struct buf *b)
{
	struct json_object *claims = json_object_new_object();
	time_t now = time(NULL);
	const char *text;
	int rc = -ENOMEM;

	if (!claims)
		return -ENOMEM;
	if (add_member(claims, "iss", json_object_new_string(a->client_email)) ||
	    add_member(claims, "scope", json_object_new_string(AUTH_GCS_SCOPE)) ||
	    add_member(claims, "aud", json_object_new_string(a->token_uri)) ||
	    add_member(claims, "iat", json_object_new_int64((int64_t)now)) ||
	    add_member(claims, "exp", json_object_new_int64((int64_t)now + ASSERTION_LIFETIME_S)))
		goto out_put;
	text = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		goto out_put;
	rc = jwt_sign_rs256(a->key, a->private_key_id, text, b);
out_put:
	json_object_put(claims);
	return rc;
}

/* Logs why a token request failed, with the OAuth error code if the body has one. */
static void log_token_failure(struct auth_gcs *a, struct http_req *req, int rc)
{
	const struct buf *body = http_req_body(req);
	struct json_object *obj = parse_json_object(body->data, body->len);
	const char *err = NULL, *desc = NULL;

	if (obj) {
		if (json_get_str(obj, "error", 128, &err) || !url_utf8_valid(err, strlen(err)))
			err = NULL;
		if (json_get_str(obj, "error_description", 256, &desc) ||
		    !url_utf8_valid(desc, strlen(desc)) || strpbrk(desc, "\r\n"))
			desc = NULL;
		if (err && strpbrk(err, "\r\n"))
			err = NULL;
	}
	log_error("gcs auth: token request for %s failed: %s (%s)%s%s%s%s", a->describe,
		  http_req_error(req)[0] ? http_req_error(req) : strerror(-rc), strerror(-rc),
		  err ? "; error " : "", err ? err : "", desc ? ": " : "", desc ? desc : "");
	json_object_put(obj);
}

/* Fetches a new token into token[] (AUTH_GCS_TOKEN_MAX+1 bytes). Called without the lock, by the
 * one thread that set `refreshing`. */
static int fetch_token(struct auth_gcs *a, char *token, int64_t *expires_in)
{
	struct http_req *req = NULL;
	struct buf form;
	const struct buf *body;
	int rc;

	buf_init(&form, 64 * 1024);
	if (a->kind == AUTH_GCS_METADATA) {
		rc = http_req_new("GET", a->metadata_url, &req);
		if (!rc)
			rc = http_req_add_header(req, "Metadata-Flavor", "Google");
	} else {
		if (a->kind == AUTH_GCS_SERVICE_ACCOUNT) {
			struct buf jwt;

			buf_init(&jwt, 32 * 1024);
			rc = build_assertion(a, &jwt);
			if (!rc)
				rc = form_add(&form, "grant_type",
					      "urn:ietf:params:oauth:grant-type:jwt-bearer");
			if (!rc)
				rc = form_add(&form, "assertion", buf_cstr(&jwt));
			if (jwt.data)
				explicit_bzero(jwt.data, jwt.len);
			buf_free(&jwt);
		} else {
			rc = form_add(&form, "grant_type", "refresh_token");
			if (!rc)
				rc = form_add(&form, "client_id", a->client_id);
			if (!rc)
				rc = form_add(&form, "client_secret", a->client_secret);
			if (!rc)
				rc = form_add(&form, "refresh_token", a->refresh_token);
		}
		if (!rc)
			rc = http_req_new("POST", a->token_uri, &req);
		if (!rc)
			rc = http_req_add_header(req, "Content-Type",
						 "application/x-www-form-urlencoded");
		if (!rc)
			rc = http_req_set_body(req, form.data, form.len);
	}
	if (form.data)
		explicit_bzero(form.data, form.len);
	buf_free(&form);
	if (rc) {
		log_error("gcs auth: cannot build a token request for %s: %s", a->describe,
			  strerror(-rc));
		goto out_free;
	}
	http_req_set_body_max(req, 64 * 1024);
	rc = http_perform(a->hc, req);
	if (rc) {
		/* The endpoint refused the grant (invalid_grant is a 400): no access. */
		if (rc == -EINVAL || rc == -ENOENT)
			rc = -EACCES;
		log_token_failure(a, req, rc);
		goto out_free;
	}
	body = http_req_body(req);
	rc = auth_gcs_parse_token(body->data, body->len, token, AUTH_GCS_TOKEN_MAX + 1, expires_in);
	if (rc)
		log_error("gcs auth: malformed token response for %s", a->describe);
	if (body->data)
		explicit_bzero(body->data, body->len);
out_free:
	http_req_free(req);
	return rc;
}

/* Copies the cached token out; called with the lock held. */
static int copy_token(const struct auth_gcs *a, char *out, size_t outsz)
{
	size_t n = strlen(a->token);

	if (n + 1 > outsz)
		return -ENOBUFS;
	memcpy(out, a->token, n + 1);
	return 0;
}

int auth_gcs_token(struct auth_gcs *a, char *out, size_t outsz)
{
	char fresh[AUTH_GCS_TOKEN_MAX + 1];
	uint64_t deadline = mono_ms() + WAIT_REFRESH_MS, start, now;
	int64_t expires_in = 0;
	int rc;

	if (a->kind == AUTH_GCS_ANONYMOUS) {
		if (outsz < 1)
			return -ENOBUFS;
		out[0] = '\0';
		return 0;
	}
	pthread_mutex_lock(&a->lock);
	for (;;) {
		now = mono_ms();
		if (a->have_token && now < a->refresh_at_ms) {
			rc = copy_token(a, out, outsz);
			goto out_unlock;
		}
		if (a->refreshing) {
			struct timespec ts;

			if (a->have_token && now < a->usable_until_ms) {
				rc = copy_token(a, out, outsz);
				goto out_unlock;
			}
			if (now >= deadline) {
				rc = -ETIMEDOUT;
				goto out_unlock;
			}
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&a->cond, &a->lock, &ts);
			continue;
		}
		if (a->fail_rc && now < a->fail_at_ms + FAIL_HOLDOFF_MS) {
			if (a->have_token && now < a->usable_until_ms)
				rc = copy_token(a, out, outsz);
			else
				rc = a->fail_rc;
			goto out_unlock;
		}
		break;
	}
	a->refreshing = true;
	pthread_mutex_unlock(&a->lock);

	start = mono_ms();
	rc = fetch_token(a, fresh, &expires_in);

	pthread_mutex_lock(&a->lock);
	a->refreshing = false;
	pthread_cond_broadcast(&a->cond);
	if (rc == 0) {
		uint64_t life = (uint64_t)expires_in * 1000;
		uint64_t margin = AUTH_GCS_REFRESH_MARGIN_S * 1000;
		uint64_t guard = 30 * 1000;

		if (margin > life / 2)
			margin = life / 2;
		if (guard > life / 4)
			guard = life / 4;
		memcpy(a->token, fresh, sizeof(a->token));
		a->have_token = true;
		a->refresh_at_ms = start + life - margin;
		a->usable_until_ms = start + life - guard;
		a->fail_rc = 0;
		a->fetches++;
		rc = copy_token(a, out, outsz);
		log_debug("gcs auth: new access token for %s, valid %" PRId64 " s", a->describe,
			  expires_in);
	} else {
		a->fail_rc = rc;
		a->fail_at_ms = mono_ms();
		if (a->have_token && a->fail_at_ms < a->usable_until_ms) {
			log_warn(
				"gcs auth: refresh failed, using the current token a while longer");
			rc = copy_token(a, out, outsz);
		}
	}
out_unlock:
	pthread_mutex_unlock(&a->lock);
	explicit_bzero(fresh, sizeof(fresh));
	return rc;
}

int auth_gcs_prepare(void *ctx, struct http_req *req)
{
	struct auth_gcs *a = ctx;
	char token[AUTH_GCS_TOKEN_MAX + 1];
	char header[AUTH_GCS_TOKEN_MAX + 16];
	int rc;

	if (a->kind == AUTH_GCS_ANONYMOUS)
		return 0;
	rc = auth_gcs_token(a, token, sizeof(token));
	if (rc)
		return rc;
	snprintf(header, sizeof(header), "Bearer %s", token);
	rc = http_req_set_attempt_header(req, "Authorization", header);
	explicit_bzero(token, sizeof(token));
	explicit_bzero(header, sizeof(header));
	return rc;
}
