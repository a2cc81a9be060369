/* tool_gcsauth: finds Google credentials the way the GCS store does (auth_gcs_new) and fetches
 * access tokens with them, so integration tests can watch the credential chain, token caching,
 * refresh and concurrent use against a fake token server.
 *
 *   tool_gcsauth [--anonymous] [--repeat N] [--sleep-ms MS] [--threads T]
 *
 * Prints "kind=K", "describe=D", then for each of N rounds (MS apart) one line per thread
 * "token=FP" (FP: a 64-bit FNV-1a fingerprint of the token in hex, never the token; "-" for
 * anonymous), and finally "fetches=F" (tokens fetched from the server). On failure: a message and
 * "error=ENAME" on stderr, exit status 1; 2 for a usage error. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/auth_gcs.h"
#include "common/log.h"
#include "common/num.h"

#define THREADS_MAX 64

struct worker {
	pthread_t tid;
	struct auth_gcs *auth;
	pthread_barrier_t *barrier;
	int rc;
	uint64_t fp;
	bool empty;
};

static uint64_t fingerprint(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char token[AUTH_GCS_TOKEN_MAX + 1];

	pthread_barrier_wait(w->barrier);
	w->rc = auth_gcs_token(w->auth, token, sizeof(token));
	if (!w->rc) {
		w->empty = token[0] == '\0';
		w->fp = fingerprint(token);
	}
	return NULL;
}

static const char *kind_name(enum auth_gcs_kind k)
{
	switch (k) {
	case AUTH_GCS_ANONYMOUS:
		return "anonymous";
	case AUTH_GCS_SERVICE_ACCOUNT:
		return "service_account";
	case AUTH_GCS_AUTHORIZED_USER:
		return "authorized_user";
	case AUTH_GCS_METADATA:
		return "metadata";
	}
	return "?";
}

static int fail(const char *what, int rc)
{
	const char *name = strerrorname_np(-rc);

	fprintf(stderr, "tool_gcsauth: %s: %s\nerror=%s\n", what, strerror(-rc),
		name ? name : "EUNKNOWN");
	return 1;
}

static int usage(void)
{
	fputs("usage: tool_gcsauth [--anonymous] [--repeat N] [--sleep-ms MS] [--threads T]\n",
	      stderr);
	return 2;
}

/* One round: `n` threads ask for a token at once. Returns 0 or the exit status. */
static int round_of(struct auth_gcs *auth, struct worker *w, int n)
{
	pthread_barrier_t barrier;
	int rc = 0, i;

	if (pthread_barrier_init(&barrier, NULL, (unsigned)n))
		return fail("pthread_barrier_init", -ENOMEM);
	for (i = 0; i < n; i++) {
		w[i].auth = auth;
		w[i].barrier = &barrier;
		w[i].rc = 0;
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]))
			abort(); /* cannot continue: the barrier would never open */
	}
	for (i = 0; i < n; i++)
		pthread_join(w[i].tid, NULL);
	pthread_barrier_destroy(&barrier);
	for (i = 0; i < n; i++) {
		if (w[i].rc) {
			rc = fail("auth_gcs_token", w[i].rc);
			break;
		}
		if (w[i].empty)
			printf("token=-\n");
		else
			printf("token=%016" PRIx64 "\n", w[i].fp);
	}
	fflush(stdout);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t repeat = 1, sleep_ms = 0, threads = 1;
	struct worker w[THREADS_MAX];
	struct auth_gcs *auth = NULL;
	bool anonymous = false;
	int rc = 0;

	log_init("tool_gcsauth", getenv("HOARDFS_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO, false);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--anonymous") == 0)
			anonymous = true;
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			rc = num_parse_range(argv[++i], 1, 1000, &repeat);
		else if (strcmp(argv[i], "--sleep-ms") == 0 && i + 1 < argc)
			rc = num_parse_range(argv[++i], 0, 600000, &sleep_ms);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			rc = num_parse_range(argv[++i], 1, THREADS_MAX, &threads);
		else
			return usage();
		if (rc)
			return usage();
	}
	rc = auth_gcs_new(anonymous, NULL, &auth);
	if (rc)
		return fail("auth_gcs_new", rc);
	printf("kind=%s\ndescribe=%s\n", kind_name(auth_gcs_kind(auth)), auth_gcs_describe(auth));
	memset(w, 0, sizeof(w));
	for (uint64_t r = 0; r < repeat && !rc; r++) {
		if (r && sleep_ms) {
			struct timespec ts = { .tv_sec = (time_t)(sleep_ms / 1000),
					       .tv_nsec = (long)(sleep_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		rc = round_of(auth, w, (int)threads);
	}
	printf("fetches=%" PRIu64 "\n", auth_gcs_fetches(auth));
	auth_gcs_free(auth);
	return rc;
}
