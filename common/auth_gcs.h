/* auth_gcs: Google credentials for the GCS store (service-account keys, gcloud application-default
 * credentials, the metadata server, anonymous) and a cached, refreshed OAuth2 access token. */
#ifndef HOARDFS_AUTH_GCS_H
#define HOARDFS_AUTH_GCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http.h"

#define AUTH_GCS_SCOPE		   "https://www.googleapis.com/auth/devstorage.read_only"
#define AUTH_GCS_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define AUTH_GCS_PROBE_DEFAULT	   "169.254.169.254"
#define AUTH_GCS_TOKEN_MAX	   4096	       /* longest access token accepted */
#define AUTH_GCS_FILE_MAX	   (64 * 1024) /* largest credentials file read */
#define AUTH_GCS_REFRESH_MARGIN_S  300 /* refresh when this little lifetime remains (see below) */

enum auth_gcs_kind {
	AUTH_GCS_ANONYMOUS = 0,
	AUTH_GCS_SERVICE_ACCOUNT, /* JWT assertion exchanged at the key's token_uri */
	AUTH_GCS_AUTHORIZED_USER, /* refresh_token grant (gcloud auth application-default login) */
	AUTH_GCS_METADATA,	  /* the GCE metadata server's default service account */
};

/*
 * One set of credentials and its cached token. Thread-safe: any number of threads may call
 * auth_gcs_token()/auth_gcs_prepare() at once; one of them refreshes (on the object's own
 * http_client, never the caller's) while the others keep using a still-valid token or wait.
 */
struct auth_gcs;

/*
 * Finds credentials, first match wins:
 *   1. anonymous == true: anonymous.
 *   2. $GOOGLE_APPLICATION_CREDENTIALS (if set and not empty): that file, which must load.
 *   3. gcloud application-default credentials:
 * $CLOUDSDK_CONFIG/application_default_credentials.json, or
 * $HOME/.config/gcloud/application_default_credentials.json, if the file exists.
 *   4. The metadata server: $GCE_METADATA_HOST ("host[:port]") if set, with no network I/O; else,
 *      unless $NO_GCE_CHECK is "1"/"true"/"yes", a probe of http://$GCE_METADATA_IP (default
 *      AUTH_GCS_PROBE_DEFAULT) bounded to about a second, which must answer 200 with
 *      "Metadata-Flavor: Google"; tokens then come from that address (an IP: no DNS lookup of
 *      metadata.google.internal, which can hang for seconds off GCE).
 *   5. Anonymous.
 * `http` configures the object's own client for token requests (NULL = defaults; attempts are
 * capped at 4 and each attempt at 30 s unless set lower). Returns 0, -ENOKEY when a credentials
 * file that was configured or found cannot be read, parsed or used (with an error log line naming
 * the file and the reason, never its secrets), -ENOMEM, -EIO (curl failed to initialise).
 */
int auth_gcs_new(bool anonymous, const struct http_opts *http, struct auth_gcs **out);

/*
 * Loads credentials from one JSON file: "type" "service_account" (client_email, private_key as an
 * RSA PEM, optional private_key_id and token_uri) or "authorized_user" (client_id, client_secret,
 * refresh_token, optional token_uri, default AUTH_GCS_DEFAULT_TOKEN_URI). Returns 0, -ENOKEY (as
 * above), -ENOMEM, -EIO.
 */
int auth_gcs_from_file(const char *path, const struct http_opts *http, struct auth_gcs **out);

/* Frees the credentials (their secrets are wiped where hoardfs holds them). NULL is allowed. */
void auth_gcs_free(struct auth_gcs *a);

/* Which kind of credentials were found. */
enum auth_gcs_kind auth_gcs_kind(const struct auth_gcs *a);

/* "service account x@p.iam.gserviceaccount.com (from /path/key.json)", "anonymous", ... for log
 * lines; valid for the life of `a`. Contains no secret. */
const char *auth_gcs_describe(const struct auth_gcs *a);

/*
 * Copies a valid access token into out (outsz bytes): the cached one, or a new one fetched when
 * none is cached or less than min(AUTH_GCS_REFRESH_MARGIN_S, half its lifetime) remains. While one
 * thread refreshes, others keep the old token if it is still usable, else wait for the refresh
 * (bounded). A failed refresh is not retried for a second; calls meanwhile get its error. For
 * anonymous credentials out is set to "". Returns 0, -EACCES (the token endpoint refused the
 * credentials), -EPROTO (a malformed token response), -ENOBUFS (outsz too small), -ETIMEDOUT, or
 * another http error (see http.h).
 */
int auth_gcs_token(struct auth_gcs *a, char *out, size_t outsz);

/*
 * An http_prepare_fn (ctx is the struct auth_gcs *): sets "Authorization: Bearer <token>" on the
 * coming attempt (nothing for anonymous credentials). Returns 0 or auth_gcs_token()'s error.
 */
int auth_gcs_prepare(void *ctx, struct http_req *req);

/* Tokens fetched so far (successful refreshes), for tests and stats. */
uint64_t auth_gcs_fetches(const struct auth_gcs *a);

/*
 * Parses a token endpoint's or the metadata server's answer: {"access_token": "...",
 * "expires_in": N, "token_type": "Bearer"} (token_type optional but Bearer if present; expires_in
 * an integer or decimal string in [1, 86400*7]). Copies the token (visible ASCII, at most
 * AUTH_GCS_TOKEN_MAX bytes) into token (tokensz bytes). Returns 0, -EPROTO, -ENOBUFS.
 */
int auth_gcs_parse_token(const char *json, size_t len, char *token, size_t tokensz,
			 int64_t *expires_in);

#endif
