/* hoardfs-cached: the host cache daemon. Parses options and the config file, checks and locks
 * the cache directory, opens LMDB, starts the threads, and runs the engine until SIGTERM. */
#include "cached/daemon.h"
#include "cached/backing.h"
#include "cached/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/num.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hoardfs-cached [OPTIONS]\n"
		"The hoardfs host cache daemon: one per host, shared by every hoardfs mount on it.\n"
		"It alone holds cloud credentials, fetches each missing byte range once, and keeps\n"
		"the cache in DIR. Mounts start it on demand; run it yourself (or from a service\n"
		"manager) to share one cache between users and to set its limits.\n"
		"\n"
		"  --cache-dir DIR       cache directory [root: /var/cache/hoardfs,\n"
		"                        others: $XDG_CACHE_HOME/hoardfs]\n"
		"  --cache-size SIZE     cap on cached bytes (e.g. 200G); the limit is the smaller of\n"
		"                        this and 90%% of (free space + cached), always leaving 5%% of\n"
		"                        the file system free\n"
		"  --socket PATH         Unix socket [DIR/cached.sock]\n"
		"  --fetch-threads N     threads running parallel GETs; each writes whole files\n"
		"                        [cores / 2, 1 to 32]\n"
		"  --max-inflight N      parallel GETs in all [32]\n"
		"  --chunk-size SIZE     first GET of a file being loaded; later GETs grow with\n"
		"                        the distance from the reader [8M]\n"
		"  --max-get SIZE        largest GET of a file being loaded [64M]\n"
		"  --sibling-prefetch SIZE\n"
		"                        when a mount waits for one shard of a sharded model\n"
		"                        (name-00002-of-00008.ext), load the next shards too, up\n"
		"                        to SIZE bytes ahead; 0 = off [1G]\n"
		"  --open-wait-max SIZE  largest file a passthrough mount's open may wait for while\n"
		"                        the daemon fetches it whole (whole-file loaders then share\n"
		"                        one page cache); 0 = opens never wait [8G]\n"
		"  --metadata-ttl SECS   default listing cache lifetime; -1 = never expire [60]\n"
		"  --neg-ttl SECS        lifetime of a negative lookup [5]\n"
		"  --idle-exit SECS      exit after SECS without mounts; 0 = never [0]\n"
		"  --md-threads N        metadata worker threads [4]\n"
		"  --commit-interval MS  group commit interval: how long verified blocks wait\n"
		"                        before one fdatasync + LMDB transaction marks them [100]\n"
		"  --allow LIST          which other users may mount what: uid:pattern,... e.g.\n"
		"                        '1000:gs://models/*,*:s3://public-*' (your own user and root\n"
		"                        may always mount)\n"
		"  --endpoint-gs URL     GCS endpoint for mounts of other users\n"
		"  --endpoint-s3 URL     S3 endpoint for mounts of other users\n"
		"  --single-user         only this user's mounts (set when a mount starts the daemon)\n"
		"  --autostarted         started by a mount: mounts may start it again if it dies\n"
		"  --metrics-addr A:P    also serve Prometheus metrics on http://A:P/metrics [off]\n"
		"  --ca-file FILE        PEM file of the CAs to trust for HTTPS (a private endpoint's\n"
		"                        CA) instead of the system's bundle\n"
		"  --log-level LEVEL     error, warn, info, debug [info]\n"
		"  --log-file FILE       log here when running in the background [DIR/cached.log]\n"
		"  --foreground          do not detach; log to stderr\n"
		"  --config FILE         read these settings as 'key = value' lines (keys as the\n"
		"                        options without dashes); command-line options win\n"
		"  --help, --version\n");
}

struct opts {
	struct daemon_config *cfg;
	const char *config_path; /* while reading the config file: for error lines */
	int config_line;
	char log_file[PATH_MAX];
	bool cache_dir_set;
	bool socket_set;
	bool log_file_set;
};

static int set_int(const char *key, const char *v, long min, long max, int *out)
{
	int64_t n;

	if (num_parse_i64(v, &n) || n < min || n > max) {
		fprintf(stderr, "hoardfs-cached: %s: '%s' is not a number in [%ld, %ld]\n", key, v,
			min, max);
		return -EINVAL;
	}
	*out = (int)n;
	return 0;
}

static int set_size(const char *key, const char *v, uint64_t min, uint64_t *out)
{
	uint64_t n;

	if (num_parse_size(v, &n) || n < min) {
		fprintf(stderr, "hoardfs-cached: %s: '%s' is not a size (like 512M, 100G)\n", key,
			v);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int set_str(const char *key, const char *v, char *out, size_t outsz)
{
	if (strlen(v) >= outsz) {
		fprintf(stderr, "hoardfs-cached: %s: value too long\n", key);
		return -ENAMETOOLONG;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* Applies one setting (from the command line or the config file). */
static int apply(struct opts *o, const char *key, const char *v)
{
	char shown[PATH_MAX + 128];

	/* How errors name the setting: "--key", or "FILE:LINE: key" from the config file. */
	if (o->config_path)
		snprintf(shown, sizeof(shown), "%s:%d: %s", o->config_path, o->config_line, key);
	else
		snprintf(shown, sizeof(shown), "--%s", key);
	struct daemon_config *c = o->cfg;
	int tmp, rc;

	if (strcmp(key, "cache-dir") == 0) {
		o->cache_dir_set = true;
		return set_str(shown, v, c->cache_dir, sizeof(c->cache_dir));
	}
	if (strcmp(key, "socket") == 0) {
		o->socket_set = true;
		return set_str(shown, v, c->socket_path, sizeof(c->socket_path));
	}
	if (strcmp(key, "open-wait-max") == 0)
		return set_size(shown, v, 0, &c->open_wait_max);
	if (strcmp(key, "sibling-prefetch") == 0)
		return set_size(shown, v, 0, &c->sibling_prefetch);
	if (strcmp(key, "max-get") == 0) {
		rc = set_size(shown, v, PROTO_BLOCK_SIZE, &c->max_get);
		if (!rc && (c->max_get % PROTO_BLOCK_SIZE || c->max_get > (1ull << 30))) {
			fprintf(stderr, "hoardfs-cached: %s must be a multiple of 1M, at most 1G\n",
				shown);
			rc = -EINVAL;
		}
		return rc;
	}
	if (strcmp(key, "cache-size") == 0)
		return set_size(shown, v, 1 << 20, &c->cache_size);
	if (strcmp(key, "chunk-size") == 0) {
		rc = set_size(shown, v, PROTO_BLOCK_SIZE, &c->chunk_size);
		if (!rc && (c->chunk_size % PROTO_BLOCK_SIZE || c->chunk_size > (256u << 20))) {
			fprintf(stderr,
				"hoardfs-cached: %s must be a multiple of 1M, at "
				"most 256M\n",
				shown);
			rc = -EINVAL;
		}
		return rc;
	}
	if (strcmp(key, "fetch-threads") == 0)
		return set_int(shown, v, 1, 64, &c->fetch_threads);
	if (strcmp(key, "md-threads") == 0)
		return set_int(shown, v, 1, 64, &c->md_threads);
	if (strcmp(key, "commit-interval") == 0)
		return set_int(shown, v, 1, 60000, &c->commit_interval_ms);
	if (strcmp(key, "max-inflight") == 0)
		return set_int(shown, v, 1, 1024, &c->max_inflight);
	if (strcmp(key, "metadata-ttl") == 0)
		return set_int(shown, v, -1, 365 * 86400, &c->metadata_ttl);
	if (strcmp(key, "neg-ttl") == 0)
		return set_int(shown, v, 0, 86400, &c->neg_ttl);
	if (strcmp(key, "idle-exit") == 0)
		return set_int(shown, v, 0, 365 * 86400, &c->idle_exit);
	if (strcmp(key, "allow") == 0)
		return set_str(shown, v, c->allow, sizeof(c->allow));
	if (strcmp(key, "endpoint-gs") == 0)
		return set_str(shown, v, c->default_endpoint_gs, sizeof(c->default_endpoint_gs));
	if (strcmp(key, "endpoint-s3") == 0)
		return set_str(shown, v, c->default_endpoint_s3, sizeof(c->default_endpoint_s3));
	if (strcmp(key, "metrics-addr") == 0)
		return set_str(shown, v, c->metrics_addr, sizeof(c->metrics_addr));
	if (strcmp(key, "ca-file") == 0) {
		/* Checked now: a bad path is an error at start, not a TLS failure per request. */
		if (v[0] != '/' || access(v, R_OK) != 0) {
			fprintf(stderr, "hoardfs-cached: %s %s: %s\n", shown, v,
				v[0] != '/' ? "must be an absolute path" : strerror(errno));
			return -EINVAL;
		}
		return set_str(shown, v, c->http.ca_file, sizeof(c->http.ca_file));
	}
	if (strcmp(key, "log-file") == 0) {
		o->log_file_set = true;
		return set_str(shown, v, o->log_file, sizeof(o->log_file));
	}
	if (strcmp(key, "log-level") == 0) {
		enum log_level l;

		if (log_level_parse(v, &l)) {
			fprintf(stderr,
				"hoardfs-cached: --log-level: use error, warn, info or debug\n");
			return -EINVAL;
		}
		c->log_level = (int)l;
		return 0;
	}
	if (strcmp(key, "foreground") == 0 || strcmp(key, "single-user") == 0) {
		bool on = strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;

		if (!on && strcmp(v, "false") && strcmp(v, "0") && strcmp(v, "no")) {
			fprintf(stderr, "hoardfs-cached: %s: use true or false\n", shown);
			return -EINVAL;
		}
		if (key[0] == 'f')
			c->foreground = on;
		else
			c->single_user = on;
		return 0;
	}
	(void)tmp;
	if (o->config_path)
		fprintf(stderr, "hoardfs-cached: %s:%d: unknown setting '%s'\n", o->config_path,
			o->config_line, key);
	else
		fprintf(stderr, "hoardfs-cached: unknown setting '%s'\n", key);
	return -EINVAL;
}

static int config_cb(void *ctx, const char *key, const char *value, int lineno)
{
	struct opts *o = ctx;

	o->config_line = lineno;
	return apply(o, key, value);
}

static void defaults(struct daemon_config *c)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	memset(c, 0, sizeof(*c));
	if (geteuid() == 0)
		snprintf(c->cache_dir, sizeof(c->cache_dir), "/var/cache/hoardfs");
	else if (xdg && *xdg)
		snprintf(c->cache_dir, sizeof(c->cache_dir), "%s/hoardfs", xdg);
	else
		snprintf(c->cache_dir, sizeof(c->cache_dir), "%s/.cache/hoardfs",
			 home ? home : "/tmp");
	/* One fetch thread moves ~0.8 GB/s here (1.1-1.5 CPU s per GiB: 86-88% of the daemon's
	 * CPU) and writes whole objects (a file written by two threads serialises on its inode
	 * lock). With passthrough the mounts copy nothing, so half the cores may fetch
	 * (docs/cost-model.md). */
	c->fetch_threads = (int)(sysconf(_SC_NPROCESSORS_ONLN) / 2);
	if (c->fetch_threads < 1)
		c->fetch_threads = 1;
	if (c->fetch_threads > 32)
		c->fetch_threads = 32;
	c->md_threads = 4;
	c->max_inflight = 32;
	c->chunk_size = 8u << 20;
	c->max_get = 64u << 20;
	c->sibling_prefetch = 1ull << 30;
	c->metadata_ttl = 60;
	c->neg_ttl = 5;
	c->commit_interval_ms = 100;
	c->ring_entries = 4096;
	c->max_opens = 65536;
	c->max_waiting = 4096;
	c->open_wait_max = 8ull << 30;
	c->max_prefetch_bytes = 4ull << 30;
	c->map_size = 16ull << 30;
	c->log_level = LOG_LVL_INFO;
}

/* Raises the descriptor limit to its hard limit (Debian's soft limit of 1024 runs out after a
 * few hundred objects: each resident object holds two descriptors), and sizes the idle-object
 * cache from it: at most a quarter of the descriptors, the rest for connections, registrations
 * and fetches. */
static uint64_t raise_nofile(struct daemon *d)
{
	struct rlimit rl;
	uint64_t was = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		was = rl.rlim_cur;
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				getrlimit(RLIMIT_NOFILE, &rl);
		}
		d->nofile = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
	} else {
		d->nofile = 1024;
	}
	d->idle_keep = (uint32_t)(d->nofile / 8); /* 2 descriptors per idle object */
	if (d->idle_keep > 4096)
		d->idle_keep = 4096;
	if (d->idle_keep < 16)
		d->idle_keep = 16;
	return was; /* logged once logging goes to the log file (after detaching) */
}

/* At a clean exit, with everything committed: the count of cached bytes must equal the bytes the
 * objects hold. A mismatch is a bug; it is logged as an error (tests look for it). */
static void check_accounting(struct daemon *d)
{
	struct objects_count n;
	int rc = objects_recount(d, &n);

	if (rc)
		log_warn("accounting check at exit: recounting failed: %s", strerror(-rc));
	else if (n.counted != n.resident_bytes + n.stored_bytes)
		log_error(
			"accounting check at exit: the count of cached bytes is %llu, the objects "
			"hold %llu",
			(unsigned long long)n.counted,
			(unsigned long long)(n.resident_bytes + n.stored_bytes));
	else
		log_debug("accounting check at exit: %llu bytes cached, consistent",
			  (unsigned long long)n.counted);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "cache-dir", required_argument, NULL, 0 },
		{ "cache-size", required_argument, NULL, 0 },
		{ "socket", required_argument, NULL, 0 },
		{ "fetch-threads", required_argument, NULL, 0 },
		{ "md-threads", required_argument, NULL, 0 },
		{ "commit-interval", required_argument, NULL, 0 },
		{ "open-wait-max", required_argument, NULL, 0 },
		{ "max-inflight", required_argument, NULL, 0 },
		{ "chunk-size", required_argument, NULL, 0 },
		{ "max-get", required_argument, NULL, 0 },
		{ "sibling-prefetch", required_argument, NULL, 0 },
		{ "metadata-ttl", required_argument, NULL, 0 },
		{ "neg-ttl", required_argument, NULL, 0 },
		{ "idle-exit", required_argument, NULL, 0 },
		{ "allow", required_argument, NULL, 0 },
		{ "endpoint-gs", required_argument, NULL, 0 },
		{ "endpoint-s3", required_argument, NULL, 0 },
		{ "metrics-addr", required_argument, NULL, 0 },
		{ "ca-file", required_argument, NULL, 0 },
		{ "log-level", required_argument, NULL, 0 },
		{ "log-file", required_argument, NULL, 0 },
		{ "foreground", no_argument, NULL, 'f' },
		{ "single-user", no_argument, NULL, 's' },
		{ "autostarted", no_argument, NULL, 'A' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	int idx, ch;

	/* The config file first, so command-line options override it. */
	opterr = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config = argv[i] + 9;
	}
	if (config) {
		int rc;

		o->config_path = config;
		rc = config_parse_file(config, config_cb, o);
		o->config_path = NULL;

		if (rc) {
			if (rc != -EINVAL)
				fprintf(stderr, "hoardfs-cached: config file %s: %s\n", config,
					strerror(-rc));
			return 2;
		}
	}
	opterr = 1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longs, &idx)) != -1) {
		switch (ch) {
		case 0:
			if (apply(o, longs[idx].name, optarg))
				return 2;
			break;
		case 'f':
			o->cfg->foreground = true;
			break;
		case 's':
			o->cfg->single_user = true;
			break;
		case 'A':
			o->cfg->autostarted = true;
			break;
		case 'c':
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("hoardfs-cached %s (protocol %u, schema %u)\n", HOARDFS_VERSION,
			       PROTO_VERSION, META_SCHEMA_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'hoardfs-cached --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"hoardfs-cached: unexpected argument '%s'\nTry 'hoardfs-cached --help'.\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

static int mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Creates (0700) or checks the cache directory: ours, not writable by others. Then the lock. */
static int prepare_cache_dir(struct daemon *d)
{
	const char *dir = d->cfg.cache_dir;
	char path[PATH_MAX + 32], pid[32];
	struct stat st;
	int rc, fd;

	rc = mkdirs(dir, 0700);
	if (rc) {
		fprintf(stderr, "hoardfs-cached: cannot create cache directory %s: %s\n", dir,
			strerror(-rc));
		return rc;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "hoardfs-cached: cache directory %s is not a directory\n", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		fprintf(stderr,
			"hoardfs-cached: cache directory %s belongs to uid %u, not to this user "
			"(uid "
			"%u); refusing to use it\n",
			dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(stderr,
			"hoardfs-cached: cache directory %s is writable by other users (mode "
			"%03o); "
			"refusing to use it (chmod 700 it)\n",
			dir, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	snprintf(path, sizeof(path), "%s/cached.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "hoardfs-cached: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr,
			"hoardfs-cached: another hoardfs-cached (pid %s) is already running on "
			"%s\n",
			pid[0] ? pid : "?", dir);
		close(fd);
		return -EBUSY;
	}
	d->lock_fd = fd;
	snprintf(path, sizeof(path), "%s/objects", dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "hoardfs-cached: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	d->objects_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->objects_dirfd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/meta", dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void write_pid(struct daemon *d)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
		log_warn("cannot record the pid in the lock file: %s", strerror(errno));
}

/* Removes object files that have no record: created just before a crash, never committed. */
static void remove_orphans(struct daemon *d)
{
	int fd = dup(d->objects_dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned removed = 0;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		struct meta_object *rec;
		uint64_t id;
		char *end;

		if (de->d_name[0] == '.')
			continue;
		errno = 0;
		id = strtoull(de->d_name, &end, 16);
		if (errno || *end || strlen(de->d_name) != 16) {
			log_warn("unexpected file %s/objects/%s left alone", d->cfg.cache_dir,
				 de->d_name);
			continue;
		}
		rec = malloc(sizeof(*rec));
		if (rec && meta_object_get(d->meta, id, rec) == -ENOENT &&
		    unlinkat(d->objects_dirfd, de->d_name, 0) == 0)
			removed++;
		free(rec);
	}
	closedir(dir);
	if (removed)
		log_info("removed %u object files that had no committed record", removed);
}

/* Detaches: the parent waits until the child is ready (or failed) and exits with its status,
 * so whoever started us (a mount, a service manager) knows when the socket answers. */
static int detach(int *notify_fd)
{
	int p[2];
	pid_t pid;
	char c = 1;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		ssize_t n;

		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n < 0 && errno == EINTR);
		_exit(n == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void redirect_stdio(const char *log_file)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int lf = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(lf >= 0 ? lf : null, STDOUT_FILENO);
		dup2(lf >= 0 ? lf : null, STDERR_FILENO);
	}
	if (null > STDERR_FILENO)
		close(null);
	if (lf > STDERR_FILENO)
		close(lf);
}

int main(int argc, char **argv)
{
	struct daemon *d = calloc(1, sizeof(*d));
	struct opts o = { 0 };
	int notify_fd = -1, rc, status = 1;
	sigset_t mask;
	char ready = 0;
	uint64_t nofile_was = 0;

	if (!d)
		return 1;
	defaults(&d->cfg);
	o.cfg = &d->cfg;
	rc = parse_args(argc, argv, &o);
	if (rc) {
		free(d);
		return rc;
	}
	if (strlen(d->cfg.cache_dir) > PATH_MAX - 64) {
		fprintf(stderr, "hoardfs-cached: cache directory path too long\n");
		free(d);
		return 2;
	}
	if (!o.socket_set)
		snprintf(d->cfg.socket_path, sizeof(d->cfg.socket_path), "%.*s/cached.sock",
			 PATH_MAX - 64, d->cfg.cache_dir);
	if (!o.log_file_set)
		snprintf(o.log_file, sizeof(o.log_file), "%.*s/cached.log", PATH_MAX - 64,
			 d->cfg.cache_dir);
	log_init("hoardfs-cached", (enum log_level)d->cfg.log_level, false);
	d->lock_fd = d->objects_dirfd = d->listen_fd = d->ro_objects_fd = d->spare_fd = -1;
	d->epfd = d->task_efd = d->timer_fd = d->signal_fd = -1;
	if (prepare_cache_dir(d))
		goto out;
	if (!d->cfg.foreground) {
		rc = detach(&notify_fd);
		if (rc) {
			fprintf(stderr, "hoardfs-cached: cannot detach: %s\n", strerror(-rc));
			goto out;
		}
		/* The lock travels with the descriptor: flock locks belong to the open file. */
	}
	write_pid(d);
	nofile_was = raise_nofile(d);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	pthread_mutex_init(&d->buckets_lock, NULL);
	d->started_at = daemon_now();
	{
		char metadir[PATH_MAX + 8];

		snprintf(metadir, sizeof(metadir), "%s/meta", d->cfg.cache_dir);
		rc = meta_open(metadir, d->cfg.map_size, &d->meta);
		if (rc) {
			fprintf(stderr, "hoardfs-cached: cannot open the metadata in %s: %s\n",
				metadir, strerror(-rc));
			goto out;
		}
	}
	d->epoch = meta_epoch(d->meta);
	remove_orphans(d);
	backing_init(d);
	if ((rc = writer_start(d)) || (rc = objects_init(d)) || (rc = evict_init(d)) ||
	    (rc = engine_init(d)) || (rc = fetch_start(d)) || (rc = mdsvc_start(d)) ||
	    (rc = ctl_init(d))) {
		fprintf(stderr, "hoardfs-cached: start-up failed: %s\n", strerror(-rc));
		goto out_stop;
	}
	if (notify_fd >= 0)
		redirect_stdio(o.log_file); /* the ready line goes to the log, not the caller */
	{
		char lim[32];

		log_info("hoardfs-cached %s ready on %s (cache %s, limit %s, epoch %u, pid %d)",
			 HOARDFS_VERSION, d->cfg.socket_path, d->cfg.cache_dir,
			 num_format_size(evict_limit(d), lim, sizeof(lim)), d->epoch,
			 (int)getpid());
		log_info("file descriptors: limit %" PRIu64 " (was %" PRIu64 "); up to %u idle "
			 "objects kept open",
			 d->nofile, nofile_was, d->idle_keep);
	}
	if (notify_fd >= 0) {
		if (write(notify_fd, &ready, 1) != 1)
			log_warn("could not tell the parent we are ready");
		close(notify_fd);
		notify_fd = -1;
	}
	engine_run(d);
	status = 0;
out_stop:
	mdsvc_stop(d);
	fetch_stop(d);
	engine_fini(d);
	writer_stop(d);
	if (status == 0)
		check_accounting(d);
	ctl_fini(d);
	jobs_fini(d);
	objects_fini(d);
	evict_fini(d);
	backing_fini(d);
	fetch_free(d);
	mdsvc_free_buckets(d);
out:
	meta_close(d->meta);
	if (d->objects_dirfd >= 0)
		close(d->objects_dirfd);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (status == 0)
		log_info("stopped");
	free(d);
	return status;
}
