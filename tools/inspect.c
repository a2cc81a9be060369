/* hoardfs-inspect: the operator's view of the host cache daemon. Parses the command line, talks
 * PROTO_CTL JSON to hoardfs-cached (docs/inspect.md) and hands each command to its handler. */
#include "tools/inspect.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/client.h"
#include "common/log.h"
#include "common/num.h"
#include "common/proto.h"
#include "common/url.h"
#include "tools/format.h"
#include "tools/job.h"
#include "tools/reply.h"
#include "tools/show.h"

#define PROG		  "hoardfs-inspect"
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S	  86400
#define MAX_PARALLEL	  256
#define REGION_MAX	  63

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hoardfs-inspect [OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
		"\n"
		"Shows and steers this host's hoardfs cache daemon, hoardfs-cached: what it\n"
		"holds, what it is doing, what it should fetch, check or drop. All mounts on\n"
		"the host share its cache: `warm` a model before the first pod starts, and\n"
		"every reader of it hits the cache.\n"
		"\n"
		"Commands:\n"
		"  status            Whether hoardfs-cached runs: version, pid, uptime, cache\n"
		"                    directory, bytes used and limit, free space, objects,\n"
		"                    GETs in flight, mounts connected (bucket, mount point,\n"
		"                    pid, uid).\n"
		"  ls [URL]          Cached objects (under URL): size, percent cached,\n"
		"                    version (GCS generation or S3 ETag), last access, flags\n"
		"                    (open, verified). With the daemon down, root may still\n"
		"                    list: the metadata is read directly, read-only (the\n"
		"                    JSON then has \"offline\": true and no \"open\").\n"
		"  stat URL          One object, each cached version: blocks present (a map\n"
		"                    of its 1 MiB blocks), checksums and their state.\n"
		"  warm URL          Pre-pulls an object, or every object under a prefix (a\n"
		"                    model directory). Without --wait, prints the job queued\n"
		"                    and returns; the daemon carries on.\n"
		"  verify [URL]      Re-reads the cached blocks (under URL) and checks each\n"
		"                    against the crc32c recorded when it was written, and\n"
		"                    complete objects against the store's checksum (GCS\n"
		"                    crc32c/md5, S3 single-part ETag). Corrupt blocks are\n"
		"                    listed and dropped; the next read fetches them again.\n"
		"                    Always waits, with progress.\n"
		"  evict URL|--all   Drops the cached objects under URL (or all). An object\n"
		"                    a mount has open is never taken from under a reader: it\n"
		"                    is removed at its last close (\"deferred\"), or with\n"
		"                    --force once its blocks were revoked from the mounts.\n"
		"  stats             The daemon's counters since it started: hits, misses,\n"
		"                    hit ratio, bytes from the store and from the cache,\n"
		"                    dedup waits, evictions, errors, retries, in flight.\n"
		"  job ID            A warm or verify job's state; --wait follows it.\n"
		"  cancel ID         Stops a job; what it pinned becomes evictable again.\n"
		"  help              This text.\n"
		"\n"
		"URL is gs://BUCKET[/NAME] or s3://BUCKET[/NAME]. For ls, warm, evict and\n"
		"verify, NAME may be a prefix: every object whose name starts with it\n"
		"(gs://models/llama-3-8b/). A bucket the daemon knows under several\n"
		"endpoints (a store and an emulator) matches on each.\n"
		"\n"
		"Options (before or after the command):\n"
		"      --cache-dir DIR  the daemon's cache directory; its socket is\n"
		"                       DIR/cached.sock [root: /var/cache/hoardfs; others:\n"
		"                       $XDG_CACHE_HOME/hoardfs, else ~/.cache/hoardfs]\n"
		"      --socket PATH    the daemon's socket, when not DIR/cached.sock\n"
		"      --json           print the daemon's reply object as JSON instead of\n"
		"                       text for people (stable members: docs/inspect.md);\n"
		"                       warm --wait, verify and job --wait print only the\n"
		"                       final job object; error replies are printed too\n"
		"      --timeout SECS   wait at most SECS for each reply [%d]\n"
		"  -h, --help           this text\n"
		"  -V, --version        the version\n"
		"\n"
		"warm:\n"
		"  -w, --wait           follow the job to its end: on a terminal, a live\n"
		"                       progress line (bytes done/total, percent, rate, ETA,\n"
		"                       objects done/total); otherwise a plain line every\n"
		"                       5 s. Failed objects are listed at the end. Ctrl-C\n"
		"                       cancels the job (exit 130).\n"
		"  -p, --parallel N     objects fetched at once, 1-%d [the daemon's: 4]\n"
		"      --endpoint URL   the store's endpoint (an emulator, a private S3\n"
		"                       service), accepted under the rules for mounts'\n"
		"      --anonymous      use no credentials (public buckets)\n"
		"      --region R       the S3 region\n"
		"job:\n"
		"  -w, --wait           follow the job like warm --wait\n"
		"evict:\n"
		"      --all            every cached object (instead of URL)\n"
		"  -n, --dry-run        say what would be evicted or deferred; drop nothing\n"
		"  -f, --force          evict open objects too, revoking their blocks from\n"
		"                       the mounts (their readers fetch them again)\n"
		"stats:\n"
		"      --prometheus     the counters in the Prometheus text format\n"
		"\n"
		"Exit status:\n"
		"  0    success (also evict when nothing matched)\n"
		"  1    an error: the daemon's answer (printed), a lost connection, no\n"
		"       reply within --timeout, a malformed reply; warm --wait, job\n"
		"       --wait: an object failed or the job was cancelled elsewhere;\n"
		"       verify: corruption found, or the check failed; stat: the object\n"
		"       is not in the cache\n"
		"  2    usage: unknown command or option, missing or extra argument,\n"
		"       malformed URL\n"
		"  3    hoardfs-cached is not running: no socket, or nobody listens on it\n"
		"       (status prints this on stdout, other commands on stderr)\n"
		"  130  interrupted by Ctrl-C while following a job, which was cancelled\n"
		"       (SIGTERM: 143, SIGHUP: 129)\n"
		"\n"
		"Examples:\n"
		"  hoardfs-inspect status\n"
		"  hoardfs-inspect ls gs://models/llama-3-8b/\n"
		"  hoardfs-inspect warm --wait --parallel 8 gs://models/llama-3-8b/\n"
		"  hoardfs-inspect warm s3://data/val/ --endpoint http://127.0.0.1:9000\n"
		"  hoardfs-inspect job 3 --wait\n"
		"  hoardfs-inspect --json stat gs://models/llama-3-8b/config.json\n"
		"  hoardfs-inspect evict --all --dry-run\n"
		"  hoardfs-inspect evict --force gs://models/old-model/\n"
		"  hoardfs-inspect verify gs://models/llama-3-8b/ || echo corruption found\n"
		"  hoardfs-inspect stats --prometheus > /var/lib/node_exporter/hoardfs.prom\n"
		"  hoardfs-inspect --cache-dir /mnt/nvme/hoardfs status\n",
		DEFAULT_TIMEOUT_S, MAX_PARALLEL);
}

void insp_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- requests ---- */

json_object *insp_req_new(const char *cmd)
{
	json_object *req = json_object_new_object();

	if (req && insp_req_str(req, "cmd", cmd)) {
		json_object_put(req);
		return NULL;
	}
	return req;
}

static int req_add(json_object *req, const char *key, json_object *v)
{
	if (!v || json_object_object_add(req, key, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

int insp_req_str(json_object *req, const char *key, const char *val)
{
	return req_add(req, key, json_object_new_string(val));
}

int insp_req_u64(json_object *req, const char *key, uint64_t val)
{
	return req_add(req, key, json_object_new_uint64(val));
}

int insp_req_bool(json_object *req, const char *key, bool val)
{
	return req_add(req, key, json_object_new_boolean(val));
}

void insp_print_json(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE);

	fputs(s ? s : "null", stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

void insp_report_down(const struct insp *x, int err, FILE *f)
{
	char clean[PATH_MAX];

	fflush(stdout);
	fprintf(f, "hoardfs-cached is not running (socket %s: %s)\n",
		fmt_clean(x->socket_path, clean, sizeof(clean)), strerror(-err));
	fflush(f);
}

void insp_end_line(struct insp *x)
{
	if (x->line_open) {
		fputc('\n', stdout);
		fflush(stdout);
		x->line_open = false;
	}
}

int insp_exit_for(const struct insp *x, int err)
{
	return x->down ? INSP_EXIT_DOWN : INSP_EXIT_FAIL;
}

/*
 * Connects with SIGINT, SIGTERM and SIGHUP blocked, so the client's receive thread inherits a
 * mask without them and the signals always reach the main thread (job.c waits on them).
 */
static int connect_daemon(struct insp *x)
{
	sigset_t block, old;
	char why[PATH_MAX + 256];
	int rc;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = hfc_connect_checked(x->socket_path, &x->conn, why, sizeof(why));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == -EPERM && why[0])
		fprintf(stderr, "hoardfs-inspect: %s\n", why);
	return rc;
}

static int request(struct insp *x, json_object *req, json_object **reply, bool quiet_down)
{
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	const char *cmd = reply_str_or(req, "cmd", "?");
	json_object *obj = NULL;
	char *raw = NULL, clean[1024];
	int status = 0, rc, prc;

	*reply = NULL;
	if (!text)
		return -ENOMEM;
	if (!x->conn) {
		rc = connect_daemon(x);
		if (rc == -ENOENT || rc == -ECONNREFUSED) {
			x->down = true;
			if (!quiet_down)
				insp_report_down(x, rc, stderr);
			return rc;
		}
		if (rc) {
			insp_err("cannot connect to hoardfs-cached at %s: %s",
				 fmt_clean(x->socket_path, clean, sizeof(clean)), strerror(-rc));
			return rc;
		}
	}
	rc = hfc_ctl(x->conn, text, x->timeout_ms, &status, &raw);
	if (rc)
		insp_end_line(x);
	switch (rc) {
	case 0:
		break;
	case -ETIMEDOUT:
		insp_err("%s: no reply from hoardfs-cached within %d s (--timeout)", cmd,
			 x->timeout_ms / 1000);
		return rc;
	case -ENOTCONN:
		insp_err("%s: lost the connection to hoardfs-cached (did it exit?)", cmd);
		return rc;
	case -EMSGSIZE:
		insp_err("%s: the reply of hoardfs-cached is too large", cmd);
		return -EPROTO;
	default:
		insp_err("%s: %s", cmd, strerror(-rc));
		return rc;
	}
	prc = reply_parse(raw, strlen(raw), &obj);
	free(raw);
	if (prc || status)
		insp_end_line(x);
	if (status < 0) {
		const char *msg = NULL;

		if (!prc)
			reply_str(obj, "error", &msg);
		if (status == -ENOSYS && (!msg || strcmp(msg, "unknown command") == 0))
			insp_err("%s: hoardfs-cached does not know this command (is it older than "
				 "hoardfs-inspect %s?)",
				 cmd, HOARDFS_VERSION);
		else
			insp_err("%s: %s", cmd,
				 fmt_clean(msg ? msg : strerror(-status), clean, sizeof(clean)));
		if (x->json && obj)
			insp_print_json(obj);
		json_object_put(obj);
		return status;
	}
	if (prc || status > 0) {
		insp_err("%s: malformed reply from hoardfs-cached", cmd);
		json_object_put(obj);
		return -EPROTO;
	}
	*reply = obj;
	return 0;
}

int insp_request(struct insp *x, json_object *req, json_object **reply)
{
	return request(x, req, reply, false);
}

int insp_request_quiet_down(struct insp *x, json_object *req, json_object **reply)
{
	return request(x, req, reply, true);
}

/* ---- the command line ---- */

enum opt_bit {
	O_WAIT = 1u << 0,
	O_PARALLEL = 1u << 1,
	O_ENDPOINT = 1u << 2,
	O_ANONYMOUS = 1u << 3,
	O_REGION = 1u << 4,
	O_ALL = 1u << 5,
	O_DRY_RUN = 1u << 6,
	O_FORCE = 1u << 7,
	O_PROMETHEUS = 1u << 8,
};

enum arg_kind { ARG_NONE, ARG_URL, ARG_ID, ARG_WORD };

struct command {
	const char *name;
	int (*run)(struct insp *x);
	enum arg_kind arg;
	bool arg_required;
	bool need_object; /* the URL must name an object, not only a bucket */
	unsigned opts;	  /* O_* bits that apply */
	const char *synopsis;
};

static int run_help(struct insp *x)
{
	usage(stdout);
	return INSP_EXIT_OK;
}

static int run_version(struct insp *x)
{
	printf(PROG " %s (protocol %u)\n", HOARDFS_VERSION, PROTO_VERSION);
	return INSP_EXIT_OK;
}

static const struct command commands[] = {
	{ "status", show_status, ARG_NONE, false, false, 0, "status" },
	{ "ls", show_ls, ARG_URL, false, false, 0, "ls [URL]" },
	{ "stat", show_stat, ARG_URL, true, true, 0, "stat URL" },
	{ "warm", job_warm, ARG_URL, true, false,
	  O_WAIT | O_PARALLEL | O_ENDPOINT | O_ANONYMOUS | O_REGION,
	  "warm URL [--wait] [--parallel N] [--endpoint URL] [--anonymous] [--region R]" },
	{ "verify", job_verify, ARG_URL, false, false, O_WAIT, "verify [URL]" },
	{ "evict", show_evict, ARG_URL, false, false, O_ALL | O_DRY_RUN | O_FORCE,
	  "evict URL|--all [--dry-run] [--force]" },
	{ "stats", show_stats, ARG_NONE, false, false, O_PROMETHEUS,
	  "stats [--json | --prometheus]" },
	{ "job", job_show, ARG_ID, true, false, O_WAIT, "job ID [--wait]" },
	{ "cancel", job_cancel, ARG_ID, true, false, 0, "cancel ID" },
	{ "help", run_help, ARG_WORD, false, false, 0, "help" },
	{ "version", run_version, ARG_NONE, false, false, 0, "version" },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

/* One line on stderr, a usage hint, and the usage exit status. */
static int usage_error(const struct command *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const struct command *c, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c)
		fprintf(stderr, "Usage: " PROG " [OPTIONS] %s\n", c->synopsis);
	fprintf(stderr, "Try '" PROG " --help' for more information.\n");
	return INSP_EXIT_USAGE;
}

/* Checks a bucket URL the user typed. Returns 0, or prints why not and returns -EINVAL. */
static int check_url(const struct command *c, const char *u)
{
	struct bucket_url bu;
	char clean[PROTO_URL_MAX + 64], bucket[URL_BUCKET_MAX + 2];
	const char *b, *slash;
	size_t blen;
	int rc;

	fmt_clean(u, clean, sizeof(clean));
	if (strncmp(u, "gs://", 5) != 0 && strncmp(u, "s3://", 5) != 0) {
		usage_error(c,
			    "'%s' is not a bucket URL (gs://BUCKET[/NAME] or s3://BUCKET[/NAME])",
			    clean);
		return -EINVAL;
	}
	if (strlen(u) >= PROTO_URL_MAX) {
		usage_error(c, "URL too long (%zu bytes, at most %d)", strlen(u),
			    PROTO_URL_MAX - 1);
		return -EINVAL;
	}
	b = u + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen == 0 || blen > URL_BUCKET_MAX) {
		usage_error(c, "'%s': %s bucket name", clean, blen ? "too long a" : "no");
		return -EINVAL;
	}
	memcpy(bucket, b, blen);
	bucket[blen] = '\0';
	if (!url_bucket_name_valid(bucket)) {
		usage_error(c,
			    "'%s': invalid bucket name (3-222 characters of a-z 0-9 . - _, "
			    "starting and ending with a letter or digit)",
			    clean);
		return -EINVAL;
	}
	rc = url_parse_bucket(u, &bu);
	if (rc == -ENAMETOOLONG) {
		usage_error(c, "'%s': the object name is too long", clean);
		return -EINVAL;
	}
	if (rc) {
		usage_error(c,
			    "'%s': invalid object name (\".\" or \"..\" segments, control "
			    "characters or invalid UTF-8)",
			    clean);
		return -EINVAL;
	}
	if (c->need_object && (!slash || !slash[1] || slash[strlen(slash) - 1] == '/')) {
		usage_error(c, "%s needs an object URL (gs://BUCKET/NAME), not '%s'", c->name,
			    clean);
		return -EINVAL;
	}
	return 0;
}

enum {
	OPT_CACHE_DIR = 256,
	OPT_SOCKET,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_ENDPOINT,
	OPT_ANONYMOUS,
	OPT_REGION,
	OPT_ALL,
	OPT_PROMETHEUS,
};

static const struct option long_opts[] = {
	{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "wait", no_argument, NULL, 'w' },
	{ "parallel", required_argument, NULL, 'p' },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "anonymous", no_argument, NULL, OPT_ANONYMOUS },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "force", no_argument, NULL, 'f' },
	{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
	{ NULL, 0, NULL, 0 },
};

static const struct {
	unsigned bit;
	const char *name;
} opt_names[] = {
	{ O_WAIT, "--wait" },
	{ O_PARALLEL, "--parallel" },
	{ O_ENDPOINT, "--endpoint" },
	{ O_ANONYMOUS, "--anonymous" },
	{ O_REGION, "--region" },
	{ O_ALL, "--all" },
	{ O_DRY_RUN, "--dry-run" },
	{ O_FORCE, "--force" },
	{ O_PROMETHEUS, "--prometheus" },
};

static void default_cache_dir(struct insp *x)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(x->cache_dir, sizeof(x->cache_dir), "/var/cache/hoardfs");
	else if (xdg && *xdg)
		snprintf(x->cache_dir, sizeof(x->cache_dir), "%s/hoardfs", xdg);
	else
		snprintf(x->cache_dir, sizeof(x->cache_dir), "%s/.cache/hoardfs",
			 home && *home ? home : "/tmp");
}

/* Parses argv into x. Returns -1 to go on, or an exit status (help, version, usage errors). */
static int parse_args(int argc, char **argv, struct insp *x, const struct command **cmd_out)
{
	const struct command *c = NULL;
	const char *pos[3] = { NULL, NULL, NULL };
	bool cache_set = false, socket_set = false, help = false, version = false;
	unsigned seen = 0;
	size_t npos = 0;
	uint64_t v;
	int opt, n;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hVwp:nf", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_CACHE_DIR:
			n = snprintf(x->cache_dir, sizeof(x->cache_dir), "%s", optarg);
			if (!*optarg || n < 0 || (size_t)n >= sizeof(x->cache_dir) - 64)
				return usage_error(NULL, "--cache-dir: empty or too long a path");
			cache_set = true;
			break;
		case OPT_SOCKET:
			n = snprintf(x->socket_path, sizeof(x->socket_path), "%s", optarg);
			if (!*optarg || n < 0 ||
			    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
				return usage_error(
					NULL,
					"--socket: empty or too long a path (at most %zu "
					"bytes)",
					sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			socket_set = true;
			break;
		case OPT_JSON:
			x->json = true;
			break;
		case OPT_TIMEOUT:
			if (num_parse_range(optarg, 1, MAX_TIMEOUT_S, &v))
				return usage_error(NULL,
						   "--timeout: '%s' is not a number of seconds "
						   "(1-%d)",
						   optarg, MAX_TIMEOUT_S);
			x->timeout_ms = (int)v * 1000;
			break;
		case 'h':
			help = true;
			break;
		case 'V':
			version = true;
			break;
		case 'w':
			x->wait = true;
			seen |= O_WAIT;
			break;
		case 'p':
			if (num_parse_range(optarg, 1, MAX_PARALLEL, &v))
				return usage_error(NULL,
						   "--parallel: '%s' is not a number from 1 to %d",
						   optarg, MAX_PARALLEL);
			x->parallel = (uint32_t)v;
			seen |= O_PARALLEL;
			break;
		case OPT_ENDPOINT:
			if (!*optarg || strlen(optarg) >= PROTO_ENDPOINT_MAX)
				return usage_error(NULL,
						   "--endpoint: empty or longer than %d bytes",
						   PROTO_ENDPOINT_MAX - 1);
			if (strncmp(optarg, "http://", 7) != 0 &&
			    strncmp(optarg, "https://", 8) != 0)
				return usage_error(
					NULL, "--endpoint: '%s' is not an http:// or https:// URL",
					optarg);
			x->endpoint = optarg;
			seen |= O_ENDPOINT;
			break;
		case OPT_ANONYMOUS:
			x->anonymous = true;
			seen |= O_ANONYMOUS;
			break;
		case OPT_REGION:
			if (!*optarg || strlen(optarg) > REGION_MAX)
				return usage_error(NULL, "--region: empty or longer than %d bytes",
						   REGION_MAX);
			x->region = optarg;
			seen |= O_REGION;
			break;
		case OPT_ALL:
			x->all = true;
			seen |= O_ALL;
			break;
		case 'n':
			x->dry_run = true;
			seen |= O_DRY_RUN;
			break;
		case 'f':
			x->force = true;
			seen |= O_FORCE;
			break;
		case OPT_PROMETHEUS:
			x->prometheus = true;
			seen |= O_PROMETHEUS;
			break;
		case ':':
			return usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error(NULL, "unknown option '-%c'", optopt);
			return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (npos == sizeof(pos) / sizeof(pos[0]))
			break;
		pos[npos++] = argv[i];
	}
	if (version) {
		*cmd_out = find_command("version");
		return -1;
	}
	if (help) {
		*cmd_out = find_command("help");
		return -1;
	}
	if (npos == 0)
		return usage_error(NULL, "no command given (status, ls, stat, warm, verify, evict, "
					 "stats, job, cancel, help)");
	c = find_command(pos[0]);
	if (!c) {
		char clean[256];

		return usage_error(NULL, "unknown command '%s'",
				   fmt_clean(pos[0], clean, sizeof(clean)));
	}
	*cmd_out = c;
	x->cmd = c->name;
	for (size_t i = 0; i < sizeof(opt_names) / sizeof(opt_names[0]); i++) {
		if ((seen & opt_names[i].bit) && !(c->opts & opt_names[i].bit))
			return usage_error(c, "%s does not apply to '%s'", opt_names[i].name,
					   c->name);
	}
	if (npos > 2 || (npos == 2 && c->arg == ARG_NONE)) {
		char clean[256];

		return usage_error(c, "unexpected argument '%s'",
				   fmt_clean(pos[npos > 2 && c->arg != ARG_NONE ? 2 : 1], clean,
					     sizeof(clean)));
	}
	if (npos < 2 && c->arg_required)
		return usage_error(c, "%s needs %s", c->name,
				   c->arg == ARG_ID ? "a job ID" : "a URL");
	if (c->arg == ARG_URL && npos == 2) {
		if (check_url(c, pos[1]))
			return INSP_EXIT_USAGE;
		x->url = pos[1];
	}
	if (c->arg == ARG_ID && num_parse_range(pos[1], 1, UINT64_MAX, &x->job))
		return usage_error(c, "'%s' is not a job ID (a number from 1)", pos[1]);
	if (strcmp(c->name, "evict") == 0 && !x->url == !x->all)
		return usage_error(c, x->all ? "evict takes a URL or --all, not both"
					     : "evict needs a URL or --all");
	if (x->json && x->prometheus)
		return usage_error(c, "--json and --prometheus exclude each other");
	if (!cache_set)
		default_cache_dir(x);
	if (!socket_set) {
		n = snprintf(x->socket_path, sizeof(x->socket_path), "%s/cached.sock",
			     x->cache_dir);
		if (n < 0 || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return usage_error(NULL,
					   "the socket path %s/cached.sock is too long for a Unix "
					   "socket; use --socket",
					   x->cache_dir);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct insp x = { .timeout_ms = DEFAULT_TIMEOUT_S * 1000 };
	const struct command *c = NULL;
	int rc;

	log_init(PROG, LOG_LVL_WARN, false);
	rc = parse_args(argc, argv, &x, &c);
	if (rc >= 0)
		return rc;
	rc = c->run(&x);
	hfc_close(x.conn);
	if (fflush(stdout) || ferror(stdout)) {
		if (rc == INSP_EXIT_OK)
			rc = INSP_EXIT_FAIL;
	}
	return rc;
}
