/* tool_storecli: a small command-line client over the store API (common/store.h), so the
 * integration tests can list, stat and read objects of GCS and S3 servers through the same code
 * the daemon uses. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/http.h"
#include "common/log.h"
#include "common/num.h"
#include "common/store.h"
#include "common/url.h"

#define CHUNK_DEFAULT (8u << 20)
#define COPY_BUF      (256u << 10)

/* The command functions (cmd_*, and the helpers that print errors) return the process's exit
 * status: 0, 1 after report() printed the failure, 2 for a usage error. */

struct cli {
	struct store_config cfg;
	struct http_opts hopts;
	struct http_stats stats;
	bool print_stats;
	struct store *st;
	struct http_client *hc;
};

/* An object URL split into its parts; the key is taken verbatim (no normalisation). */
struct obj_url {
	enum url_scheme scheme;
	char bucket[URL_BUCKET_MAX + 1];
	char key[URL_KEY_MAX + 1];
};

static void usage(FILE *f)
{
	fputs("usage: tool_storecli [--endpoint URL] [--anonymous] [--region R] [--page-size N]\n"
	      "                     [--timeout-ms N] [--attempts N] [--low-speed-time S] "
	      "[--stats]\n"
	      "                     [--verbose] CMD ...\n"
	      "  list gs://bucket/prefix [--delimiter D] [--max N]\n"
	      "      obj<TAB>size<TAB>version<TAB>mtime<TAB>name | prefix<TAB>name per line\n"
	      "  stat URL                       key=value lines\n"
	      "  get URL OFF LEN [--version V] [--size S] [--out FILE]\n"
	      "  cat URL [--chunk N]            the whole object to stdout, in ranged reads\n"
	      "URLs are gs://bucket/key or s3://bucket/key; the key is used verbatim.\n"
	      "On failure: a message and a line error=ENAME on stderr, exit status 1.\n",
	      f);
}

/* Reports a failed operation: the detail line, then error=ENAME. Returns 1 (the exit status). */
static int report(const char *op, const char *what, int err, const char *detail)
{
	const char *name = strerrorname_np(-err);

	fprintf(stderr, "tool_storecli: %s %s: %s%s%s\n", op, what, strerror(-err),
		detail && *detail ? ": " : "", detail ? detail : "");
	fprintf(stderr, "error=%s\n", name ? name : "EUNKNOWN");
	return 1;
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "tool_storecli: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

/* Parses "gs://bucket/key" or "s3://bucket/key" (key may be empty). Returns 0, -EINVAL,
 * -ENAMETOOLONG. */
static int obj_url_parse(const char *s, struct obj_url *out)
{
	const char *rest, *slash;
	size_t blen, klen;

	if (strncmp(s, "gs://", 5) == 0)
		out->scheme = URL_GS;
	else if (strncmp(s, "s3://", 5) == 0)
		out->scheme = URL_S3;
	else
		return -EINVAL;
	rest = s + 5;
	slash = strchr(rest, '/');
	blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0)
		return -EINVAL;
	if (blen > URL_BUCKET_MAX)
		return -ENAMETOOLONG;
	memcpy(out->bucket, rest, blen);
	out->bucket[blen] = '\0';
	klen = slash ? strlen(slash + 1) : 0;
	if (klen > URL_KEY_MAX)
		return -ENAMETOOLONG;
	if (klen)
		memcpy(out->key, slash + 1, klen);
	out->key[klen] = '\0';
	return 0;
}

static int parse_u64(const char *s, const char *what, uint64_t *out)
{
	if (num_parse_u64(s, out)) {
		fprintf(stderr, "tool_storecli: bad %s '%s'\n", what, s);
		return -EINVAL;
	}
	return 0;
}

static int parse_long(const char *s, const char *what, long max, long *out)
{
	uint64_t v;

	if (num_parse_range(s, 0, (uint64_t)max, &v)) {
		fprintf(stderr, "tool_storecli: bad %s '%s'\n", what, s);
		return -EINVAL;
	}
	*out = (long)v;
	return 0;
}

/* Opens the store and the HTTP client for the URL's bucket. */
static int cli_open(struct cli *c, const struct obj_url *u)
{
	int rc;

	c->cfg.scheme = u->scheme;
	c->cfg.bucket = u->bucket;
	c->hopts.stats = &c->stats;
	c->cfg.http = &c->hopts;
	rc = store_open(&c->cfg, &c->st);
	if (rc)
		return report("open", u->bucket, rc, "cannot set up the store");
	rc = http_client_new(&c->hopts, &c->hc);
	if (rc)
		return report("open", "http client", rc, NULL);
	return 0;
}

static void print_stats(struct cli *c)
{
	fprintf(stderr,
		"requests=%" PRIu64 "\nretries=%" PRIu64 "\nbytes_in=%" PRIu64 "\nfailures=%" PRIu64
		"\n",
		atomic_load(&c->stats.requests), atomic_load(&c->stats.retries),
		atomic_load(&c->stats.bytes_in), atomic_load(&c->stats.failures));
}

/* ---- list ---- */

static int list_cb(void *ctx, const struct store_object *o, bool is_prefix)
{
	(void)ctx;
	if (is_prefix)
		printf("prefix\t%s\n", o->name);
	else
		printf("obj\t%" PRIu64 "\t%s\t%" PRId64 "\t%s\n", o->size, o->version, o->mtime_sec,
		       o->name);
	return 0;
}

static int cmd_list(struct cli *c, int argc, char **argv)
{
	const char *url = NULL, *delim = NULL;
	uint64_t max = 0;
	struct obj_url u;
	int rc, i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--delimiter") == 0 && i + 1 < argc) {
			delim = argv[++i];
		} else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
			if (num_parse_range(argv[++i], 0, UINT32_MAX, &max))
				return usage_error("bad --max", argv[i]);
		} else if (!url && argv[i][0] != '-') {
			url = argv[i];
		} else {
			return usage_error("list: unexpected argument", argv[i]);
		}
	}
	if (!url)
		return usage_error("list: no URL", NULL);
	if (obj_url_parse(url, &u))
		return usage_error("bad URL", url);
	rc = cli_open(c, &u);
	if (rc)
		return rc;
	rc = store_list(c->st, c->hc, u.key, delim, (uint32_t)max, list_cb, NULL);
	if (fflush(stdout) && !rc)
		rc = -errno;
	if (rc)
		return report("list", url, rc, NULL);
	return 0;
}

/* ---- stat ---- */

static void print_object(const struct store_object *o)
{
	int i;

	printf("name=%s\nsize=%" PRIu64 "\nversion=%s\nmtime=%" PRId64 "\n", o->name, o->size,
	       o->version, o->mtime_sec);
	if (o->has_crc32c)
		printf("crc32c=%08" PRIx32 "\n", o->crc32c);
	else
		printf("crc32c=\n");
	printf("md5=");
	if (o->has_md5) {
		for (i = 0; i < 16; i++)
			printf("%02x", o->md5[i]);
	}
	printf("\ncontent_encoding=%s\n", o->content_encoding);
}

static int cmd_stat(struct cli *c, int argc, char **argv)
{
	struct store_object o;
	struct obj_url u;
	int rc;

	if (argc != 1)
		return usage_error("stat: want exactly one URL", NULL);
	if (obj_url_parse(argv[0], &u) || !u.key[0])
		return usage_error("bad object URL", argv[0]);
	rc = cli_open(c, &u);
	if (rc)
		return rc;
	memset(&o, 0, sizeof(o));
	rc = store_stat(c->st, c->hc, u.key, &o);
	if (rc)
		return report("stat", argv[0], rc, NULL);
	print_object(&o);
	if (fflush(stdout))
		return report("stat", "stdout", -errno, NULL);
	return 0;
}

/* ---- reading ---- */

/* Reads [off, off+len) of the object at `version` into fd at offset `base`. */
static int read_range(struct cli *c, const struct obj_url *u, const char *url, const char *version,
		      uint64_t size, uint64_t off, uint64_t len, int fd, uint64_t base)
{
	struct http_fd_sink fdctx = { .fd = fd, .base = base };
	struct http_sink sink;
	struct http_req *req;
	char what[64];
	int rc;

	http_sink_fd(&sink, &fdctx);
	rc = store_read_req(c->st, u->key, version, size, off, len, &sink, &req);
	if (rc)
		return report("read", url, rc, "cannot build the request");
	rc = http_perform(c->hc, req);
	if (rc) {
		snprintf(what, sizeof(what), "[%" PRIu64 ", +%" PRIu64 ") of", off, len);
		fprintf(stderr, "tool_storecli: read %s %s: HTTP %ld after %d attempt(s)\n", what,
			url, http_req_status(req), http_req_attempts(req));
		report("read", url, rc, http_req_error(req));
		http_req_free(req);
		return 1;
	}
	http_req_free(req);
	return 0;
}

/* Copies len bytes from the start of `from` to `to` (sequential writes). Returns 0, -ENOMEM,
 * -EIO when `from` holds fewer bytes, or -errno of a failed read or write. */
static int copy_out(int from, int to, uint64_t len)
{
	uint64_t off = 0;
	char *buf = malloc(COPY_BUF);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (off < len && !rc) {
		size_t want = len - off < COPY_BUF ? (size_t)(len - off) : COPY_BUF;
		ssize_t n = pread(from, buf, want, (off_t)off);
		size_t done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO; /* EOF: fewer bytes than the read reported */
			break;
		}
		while (done < (size_t)n) {
			ssize_t w = write(to, buf + done, (size_t)n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -errno;
				break;
			}
			done += (size_t)w;
		}
		off += (uint64_t)n;
	}
	free(buf);
	return rc;
}

/* Opens a private unlinked file in $TMPDIR (or /tmp) that ranges land in before they go to
 * stdout: a pipe cannot take pwrite(), and nothing may reach stdout before the whole range passed
 * its checks. Returns 0 and the descriptor in *fd, -ENAMETOOLONG, or -errno from mkstemp(). */
static int open_spool(int *fd)
{
	const char *dir = getenv("TMPDIR");
	char tpl[4096];
	int n;

	if (!dir || !*dir)
		dir = "/tmp";
	n = snprintf(tpl, sizeof(tpl), "%s/tool_storecli.XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(tpl))
		return -ENAMETOOLONG;
	*fd = mkostemp(tpl, O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	unlink(tpl);
	return 0;
}

/* Spools one range and then copies it to stdout. Returns 0 or the exit status. */
static int read_to_stdout(struct cli *c, const struct obj_url *u, const char *url,
			  const char *version, uint64_t size, uint64_t off, uint64_t len, int spool)
{
	int rc;
	struct stat sb;

	if (ftruncate(spool, 0))
		return report("read", "spool file", -errno, NULL);
	rc = read_range(c, u, url, version, size, off, len, spool, 0);
	if (rc)
		return rc;
	if (fstat(spool, &sb))
		return report("read", "spool file", -errno, NULL);
	if ((uint64_t)sb.st_size != len) {
		fprintf(stderr,
			"tool_storecli: read succeeded with %jd bytes instead of %" PRIu64 "\n",
			(intmax_t)sb.st_size, len);
		return report("read", url, -EIO, "short data reported as success");
	}
	rc = copy_out(spool, STDOUT_FILENO, len);
	if (rc)
		return report("read", "stdout", rc, NULL);
	return 0;
}

static int cmd_get(struct cli *c, int argc, char **argv)
{
	const char *pos[3] = { NULL, NULL, NULL }, *version = NULL, *outpath = NULL;
	uint64_t off, len, size = UINT64_MAX;
	struct store_object o;
	struct obj_url u;
	int npos = 0, rc, i, fd = -1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 && i + 1 < argc) {
			version = argv[++i];
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			if (parse_u64(argv[++i], "--size", &size))
				return 2;
		} else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			outpath = argv[++i];
		} else if (npos < 3 && (argv[i][0] != '-' || npos > 0)) {
			pos[npos++] = argv[i];
		} else {
			return usage_error("get: unexpected argument", argv[i]);
		}
	}
	if (npos != 3)
		return usage_error("get: want URL OFF LEN", NULL);
	if (obj_url_parse(pos[0], &u) || !u.key[0])
		return usage_error("bad object URL", pos[0]);
	if (parse_u64(pos[1], "offset", &off) || parse_u64(pos[2], "length", &len))
		return 2;
	rc = cli_open(c, &u);
	if (rc)
		return rc;
	if (!version || size == UINT64_MAX) {
		memset(&o, 0, sizeof(o));
		rc = store_stat(c->st, c->hc, u.key, &o);
		if (rc)
			return report("stat", pos[0], rc, NULL);
		if (!version)
			version = o.version;
		if (size == UINT64_MAX)
			size = o.size;
	}
	if (outpath) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return report("open", outpath, -errno, NULL);
		rc = read_range(c, &u, pos[0], version, size, off, len, fd, 0);
		if (!rc && fsync(fd))
			rc = report("write", outpath, -errno, NULL);
	} else {
		rc = open_spool(&fd);
		if (rc)
			return report("open", "spool file", rc, NULL);
		rc = read_to_stdout(c, &u, pos[0], version, size, off, len, fd);
	}
	if (close(fd) && !rc)
		rc = report("close", outpath ? outpath : "spool file", -errno, NULL);
	return rc;
}

static int cmd_cat(struct cli *c, int argc, char **argv)
{
	uint64_t chunk = CHUNK_DEFAULT, off;
	const char *url = NULL;
	struct store_object o;
	struct obj_url u;
	int rc, i, spool = -1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
			if (num_parse_size(argv[++i], &chunk) || chunk == 0)
				return usage_error("bad --chunk", argv[i]);
		} else if (!url && argv[i][0] != '-') {
			url = argv[i];
		} else {
			return usage_error("cat: unexpected argument", argv[i]);
		}
	}
	if (!url)
		return usage_error("cat: no URL", NULL);
	if (obj_url_parse(url, &u) || !u.key[0])
		return usage_error("bad object URL", url);
	rc = cli_open(c, &u);
	if (rc)
		return rc;
	memset(&o, 0, sizeof(o));
	rc = store_stat(c->st, c->hc, u.key, &o);
	if (rc)
		return report("stat", url, rc, NULL);
	rc = open_spool(&spool);
	if (rc)
		return report("open", "spool file", rc, NULL);
	for (off = 0; off < o.size && !rc; off += chunk) {
		uint64_t len = o.size - off < chunk ? o.size - off : chunk;

		rc = read_to_stdout(c, &u, url, o.version, o.size, off, len, spool);
	}
	close(spool);
	return rc;
}

enum {
	OPT_ENDPOINT = 256,
	OPT_ANON,
	OPT_REGION,
	OPT_PAGE,
	OPT_TIMEOUT,
	OPT_ATTEMPTS,
	OPT_LOWSPEED,
	OPT_STATS,
	OPT_VERBOSE,
	OPT_HELP
};

static const struct option long_opts[] = {
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "anonymous", no_argument, NULL, OPT_ANON },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "page-size", required_argument, NULL, OPT_PAGE },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "attempts", required_argument, NULL, OPT_ATTEMPTS },
	{ "low-speed-time", required_argument, NULL, OPT_LOWSPEED },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct cli c;
	const char *cmd;
	uint64_t page;
	long v;
	int opt, rc;

	memset(&c, 0, sizeof(c));
	while ((opt = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_ENDPOINT:
			c.cfg.endpoint = optarg;
			break;
		case OPT_ANON:
			c.cfg.anonymous = true;
			break;
		case OPT_REGION:
			c.cfg.region = optarg;
			break;
		case OPT_PAGE:
			if (num_parse_range(optarg, 1, 1000000, &page))
				return usage_error("bad --page-size", optarg);
			if (setenv("HOARDFS_LIST_PAGE_SIZE", optarg, 1))
				return report("setenv", "HOARDFS_LIST_PAGE_SIZE", -errno, NULL);
			break;
		case OPT_TIMEOUT:
			if (parse_long(optarg, "--timeout-ms", 86400000L,
				       &c.hopts.request_timeout_ms))
				return 2;
			break;
		case OPT_ATTEMPTS:
			if (parse_long(optarg, "--attempts", 100, &v) || v < 1)
				return usage_error("--attempts must be 1..100", optarg);
			c.hopts.max_attempts = (int)v;
			break;
		case OPT_LOWSPEED:
			if (parse_long(optarg, "--low-speed-time", 3600, &v) || v < 1)
				return usage_error("--low-speed-time must be 1..3600", optarg);
			c.hopts.low_speed_time_s = v;
			break;
		case OPT_STATS:
			c.print_stats = true;
			break;
		case OPT_VERBOSE:
			c.hopts.verbose = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	log_init("tool_storecli", c.hopts.verbose ? LOG_LVL_DEBUG : LOG_LVL_WARN, false);
	if (optind >= argc)
		return usage_error("no command", NULL);
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	if (strcmp(cmd, "list") == 0)
		rc = cmd_list(&c, argc, argv);
	else if (strcmp(cmd, "stat") == 0)
		rc = cmd_stat(&c, argc, argv);
	else if (strcmp(cmd, "get") == 0)
		rc = cmd_get(&c, argc, argv);
	else if (strcmp(cmd, "cat") == 0)
		rc = cmd_cat(&c, argc, argv);
	else
		rc = usage_error("unknown command", cmd);
	http_client_free(c.hc);
	store_free(c.st);
	if (c.print_stats)
		print_stats(&c);
	return rc;
}
