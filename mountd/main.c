/* hoardfs: mounts a GCS or S3 bucket read-only through FUSE, backed by hoardfs-cached. Parses
 * the command line (its own flags and the Rust tool's), checks everything that can be checked
 * before mounting, starts the daemon when none answers, registers, then mounts and serves. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/num.h"
#include "common/url.h"
#include "mountd/fs.h"
#include "mountd/mount.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hoardfs [OPTIONS] gs://BUCKET[/PREFIX] MOUNTPOINT\n"
		"       hoardfs [OPTIONS] s3://BUCKET[/PREFIX] MOUNTPOINT\n"
		"       hoardfs --mount-point DIR --bucket-name BUCKET [--data-dir DIR] [--auto-unmount]\n"
		"               [--allow-root] [--direct-io]          (the older tool's flags; GCS)\n"
		"\n"
		"Mounts a Google Cloud Storage or S3 bucket (or a prefix of it) read-only at MOUNTPOINT.\n"
		"Bytes are fetched by the host's cache daemon, hoardfs-cached, once for every mount on\n"
		"the host, and kept in its cache directory; the mount starts the daemon when none runs.\n"
		"Options may come before or after the two arguments.\n"
		"\n"
		"Mount options:\n"
		"  -f, --foreground        stay in the foreground and log to stderr\n"
		"  -o OPT[,OPT...]         extra FUSE mount options (e.g. -o allow_other)\n"
		"      --allow-other       let all users access the mount (needs user_allow_other in\n"
		"                          /etc/fuse.conf unless root)\n"
		"      --allow-root        let root access the mount\n"
		"      --auto-unmount      unmount when this process dies (also --auto_unmount)\n"
		"      --uid N, --gid N    owner of every file and directory [the caller's]\n"
		"      --file-mode MODE    permission bits of files, octal [0644]\n"
		"      --dir-mode MODE     permission bits of directories, octal [0755]\n"
		"      --direct-io         bypass the kernel page cache for file data. On this libfuse\n"
		"                          that also disables shared mmap, which safetensors loaders\n"
		"                          (vLLM, SGLang, TGI) use: leave it off for model serving\n"
		"      --no-passthrough    read complete files through FUSE too. By default the kernel\n"
		"                          reads them straight from the cache file (FUSE passthrough,\n"
		"                          when the kernel offers it and the mount may register files):\n"
		"                          no copy, and one page cache for every mount of the host\n"
		"      --open-wait SECS    an open of a file not yet cached may wait up to SECS (and\n"
		"                          under --read-timeout) while the daemon fetches it whole,\n"
		"                          then read it by passthrough: whole-file loaders in many\n"
		"                          containers share one download and one page cache. Files\n"
		"                          over the daemon's --open-wait-max never wait; 0 = never [30]\n"
		"      --metadata-ttl SECS how long listings and lookups are trusted; -1 = forever,\n"
		"                          for immutable model buckets [60]\n"
		"      --neg-ttl SECS      how long a missing name stays missing [5]\n"
		"      --read-timeout SECS the longest any read or lookup waits, e.g. for a restarting\n"
		"                          daemon or a stalled store, before failing with EIO [60]\n"
		"      --read-ahead-kb KB  kernel read-ahead of the mount [16384]\n"
		"      --max-background N  FUSE requests in flight (congestion at 3/4) [128]\n"
		"      --max-threads N     FUSE worker threads [16]\n"
		"\n"
		"Store options (used when this user's daemon serves the mount):\n"
		"      --endpoint URL      store endpoint (S3-compatible servers, emulators)\n"
		"      --region REGION     S3 region [AWS_REGION or us-east-1]\n"
		"      --anonymous         send no credentials (public buckets)\n"
		"\n"
		"Daemon options:\n"
		"      --cache-dir DIR     the daemon's cache directory [root: /var/cache/hoardfs,\n"
		"                          others: $XDG_CACHE_HOME/hoardfs; legacy form: /tmp/fuser]\n"
		"      --data-dir DIR      the same, as the older tool spelled it\n"
		"      --socket PATH       the daemon's socket [DIR/cached.sock]\n"
		"      --no-autostart      fail instead of starting a daemon when none answers\n"
		"      --ca-file FILE      CAs to trust for HTTPS (a private endpoint's CA), for a\n"
		"                          daemon this mount starts (a running daemon has its own)\n"
		"      --log-level LEVEL   error, warn, info, debug [info]\n"
		"  -h, --help              this text\n"
		"  -V, --version           the version\n"
		"\n"
		"Credentials are the daemon's: for GCS, GOOGLE_APPLICATION_CREDENTIALS, gcloud's\n"
		"application-default credentials, the metadata server, else anonymous; for S3,\n"
		"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE and\n"
		"~/.aws/credentials. STORAGE_EMULATOR_HOST and AWS_ENDPOINT_URL redirect the stores.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT (or umount as root).\n"
		"\n"
		"Exit status: 0 mounted (or unmounted cleanly in the foreground), 1 runtime error,\n"
		"2 usage error. Nothing is left mounted after an error.\n");
}

enum {
	OPT_ALLOW_OTHER = 1000,
	OPT_ALLOW_ROOT,
	OPT_AUTO_UNMOUNT,
	OPT_UID,
	OPT_GID,
	OPT_FILE_MODE,
	OPT_DIR_MODE,
	OPT_DIRECT_IO,
	OPT_TTL,
	OPT_NEG_TTL,
	OPT_READ_TIMEOUT,
	OPT_READ_AHEAD,
	OPT_MAX_BG,
	OPT_MAX_THREADS,
	OPT_ENDPOINT,
	OPT_REGION,
	OPT_ANON,
	OPT_CACHE_DIR,
	OPT_DATA_DIR,
	OPT_SOCKET,
	OPT_NO_AUTOSTART,
	OPT_CA_FILE,
	OPT_NO_PASSTHROUGH,
	OPT_OPEN_WAIT,
	OPT_LOG_LEVEL,
	OPT_MOUNT_POINT,
	OPT_BUCKET_NAME,
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hoardfs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'hoardfs --help'.\n");
	return 2;
}

static int parse_int(const char *opt, const char *v, long min, long max, int *out)
{
	int64_t n;

	if (num_parse_i64(v, &n) || n < min || n > max) {
		fprintf(stderr,
			"hoardfs: %s: '%s' is not a number in [%ld, %ld]\nTry 'hoardfs --help'.\n",
			opt, v, min, max);
		return 2;
	}
	*out = (int)n;
	return 0;
}

static int parse_mode(const char *opt, const char *v, mode_t *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 8);
	if (errno || *end || !*v || n > 07777)
		return bad("%s: expected an octal mode like 0644", opt);
	*out = (mode_t)n;
	return 0;
}

static int append_fuse_opt(struct mount_opts *o, const char *opt)
{
	size_t have = strlen(o->fuse_opts);

	if (have + strlen(opt) + 2 > sizeof(o->fuse_opts))
		return bad("%s: too many -o options", opt);
	if (strpbrk(opt, " \t\n\\"))
		return bad("-o %s: options may not contain spaces or backslashes", opt);
	snprintf(o->fuse_opts + have, sizeof(o->fuse_opts) - have, "%s%s", have ? "," : "", opt);
	return 0;
}

static void default_cache_dir(struct mount_opts *o)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(o->cache_dir, sizeof(o->cache_dir), "/var/cache/hoardfs");
	else if (xdg && *xdg)
		snprintf(o->cache_dir, sizeof(o->cache_dir), "%s/hoardfs", xdg);
	else
		snprintf(o->cache_dir, sizeof(o->cache_dir), "%s/.cache/hoardfs",
			 home ? home : "/tmp");
}

/* Is `path` (absolute, resolved) already a mount point? (Reads mountinfo; never stats into a
 * possibly dead FUSE mount.) */
static bool is_mountpoint(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];

		/* id parent major:minor root mountpoint ... ; mountpoint escapes spaces as \040 */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		{
			char dec[PATH_MAX];
			size_t j = 0;

			for (size_t i = 0; mp[i] && j < sizeof(dec) - 1; i++) {
				if (mp[i] == '\\' && mp[i + 1] >= '0' && mp[i + 1] <= '3' &&
				    mp[i + 2] && mp[i + 3]) {
					dec[j++] =
						(char)((mp[i + 1] - '0') * 64 +
						       (mp[i + 2] - '0') * 8 + (mp[i + 3] - '0'));
					i += 3;
				} else {
					dec[j++] = mp[i];
				}
			}
			dec[j] = '\0';
			found = strcmp(dec, path) == 0;
		}
	}
	fclose(f);
	return found;
}

/* major:minor of the mount at `path` from mountinfo (after mounting). */
static int mount_dev(const char *path, unsigned *major, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		unsigned ma, mi;

		if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &ma, &mi, mp) == 3 &&
		    strcmp(mp, path) == 0 && strstr(line, " - fuse.hoardfs ")) {
			*major = ma;
			*minor = mi;
			rc = 0; /* the last one wins: the newest mount on that path */
		}
	}
	fclose(f);
	return rc;
}

static int parse_args(int argc, char **argv, struct mount_opts *o)
{
	static const struct option longs[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
		{ "allow-root", no_argument, NULL, OPT_ALLOW_ROOT },
		{ "auto-unmount", no_argument, NULL, OPT_AUTO_UNMOUNT },
		{ "auto_unmount", no_argument, NULL, OPT_AUTO_UNMOUNT },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "gid", required_argument, NULL, OPT_GID },
		{ "file-mode", required_argument, NULL, OPT_FILE_MODE },
		{ "dir-mode", required_argument, NULL, OPT_DIR_MODE },
		{ "direct-io", no_argument, NULL, OPT_DIRECT_IO },
		{ "metadata-ttl", required_argument, NULL, OPT_TTL },
		{ "neg-ttl", required_argument, NULL, OPT_NEG_TTL },
		{ "read-timeout", required_argument, NULL, OPT_READ_TIMEOUT },
		{ "read-ahead-kb", required_argument, NULL, OPT_READ_AHEAD },
		{ "max-background", required_argument, NULL, OPT_MAX_BG },
		{ "max-threads", required_argument, NULL, OPT_MAX_THREADS },
		{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
		{ "region", required_argument, NULL, OPT_REGION },
		{ "anonymous", no_argument, NULL, OPT_ANON },
		{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "no-autostart", no_argument, NULL, OPT_NO_AUTOSTART },
		{ "ca-file", required_argument, NULL, OPT_CA_FILE },
		{ "no-passthrough", no_argument, NULL, OPT_NO_PASSTHROUGH },
		{ "open-wait", required_argument, NULL, OPT_OPEN_WAIT },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "mount-point", required_argument, NULL, OPT_MOUNT_POINT },
		{ "bucket-name", required_argument, NULL, OPT_BUCKET_NAME },
		{ NULL, 0, NULL, 0 },
	};
	const char *legacy_mp = NULL, *legacy_bucket = NULL, *url = NULL, *mp = NULL;
	bool cache_set = false, socket_set = false;
	struct bucket_url bu;
	int ch, rc, n;

	o->metadata_ttl = 60;
	o->neg_ttl = 5;
	o->read_timeout = 60;
	o->open_wait = 30;
	o->read_ahead_kb = 16384;
	o->max_background = 128;
	o->max_threads = 16;
	o->file_mode = 0644;
	o->dir_mode = 0755;
	o->uid = getuid();
	o->gid = getgid();
	o->log_level = LOG_LVL_INFO;
	while ((ch = getopt_long(argc, argv, "fhVo:", longs, NULL)) != -1) {
		rc = 0;
		switch (ch) {
		case 'f':
			o->foreground = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("hoardfs %s (protocol %u)\n", HOARDFS_VERSION, PROTO_VERSION);
			exit(0);
		case 'o':
			rc = append_fuse_opt(o, optarg);
			break;
		case OPT_ALLOW_OTHER:
			o->allow_other = true;
			break;
		case OPT_ALLOW_ROOT:
			o->allow_root = true;
			break;
		case OPT_AUTO_UNMOUNT:
			o->auto_unmount = true;
			break;
		case OPT_UID:
		case OPT_GID: {
			int v;

			rc = parse_int(ch == OPT_UID ? "--uid" : "--gid", optarg, 0, INT32_MAX, &v);
			if (ch == OPT_UID)
				o->uid = (uid_t)v;
			else
				o->gid = (gid_t)v;
			break;
		}
		case OPT_FILE_MODE:
			rc = parse_mode("--file-mode", optarg, &o->file_mode);
			break;
		case OPT_DIR_MODE:
			rc = parse_mode("--dir-mode", optarg, &o->dir_mode);
			break;
		case OPT_DIRECT_IO:
			o->direct_io = true;
			break;
		case OPT_TTL:
			rc = parse_int("--metadata-ttl", optarg, -1, 365 * 86400, &o->metadata_ttl);
			break;
		case OPT_NEG_TTL:
			rc = parse_int("--neg-ttl", optarg, 0, 86400, &o->neg_ttl);
			break;
		case OPT_READ_TIMEOUT:
			rc = parse_int("--read-timeout", optarg, 1, 86400, &o->read_timeout);
			break;
		case OPT_OPEN_WAIT:
			rc = parse_int("--open-wait", optarg, 0, 3600, &o->open_wait);
			break;
		case OPT_READ_AHEAD: {
			int v;

			rc = parse_int("--read-ahead-kb", optarg, 0, 1 << 20, &v);
			o->read_ahead_kb = (uint32_t)v;
			break;
		}
		case OPT_MAX_BG:
			rc = parse_int("--max-background", optarg, 1, 65535, &o->max_background);
			break;
		case OPT_MAX_THREADS:
			rc = parse_int("--max-threads", optarg, 1, 1024, &o->max_threads);
			break;
		case OPT_ENDPOINT:
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
				return bad("--endpoint %s: expected an http:// or https:// URL",
					   optarg);
			n = snprintf(o->endpoint, sizeof(o->endpoint), "%s", optarg);
			if ((size_t)n >= sizeof(o->endpoint))
				return bad("--endpoint %s: too long", optarg);
			break;
		case OPT_REGION:
			n = snprintf(o->region, sizeof(o->region), "%s", optarg);
			if ((size_t)n >= sizeof(o->region))
				return bad("--region %s: too long", optarg);
			break;
		case OPT_ANON:
			o->anonymous = true;
			break;
		case OPT_CACHE_DIR:
		case OPT_DATA_DIR:
			cache_set = true;
			n = snprintf(o->cache_dir, sizeof(o->cache_dir), "%s", optarg);
			if ((size_t)n >= sizeof(o->cache_dir) - 64 || !*optarg)
				return bad("--cache-dir %s: empty or too long", optarg);
			break;
		case OPT_SOCKET:
			socket_set = true;
			n = snprintf(o->socket_path, sizeof(o->socket_path), "%s", optarg);
			if ((size_t)n >= 108 || !*optarg)
				return bad("--socket %s: empty or too long for a Unix socket",
					   optarg);
			break;
		case OPT_CA_FILE:
			n = snprintf(o->ca_file, sizeof(o->ca_file), "%s", optarg);
			if ((size_t)n >= sizeof(o->ca_file) || optarg[0] != '/')
				return bad(
					"--ca-file %s: must be an absolute path (under 512 bytes)",
					optarg);
			if (access(optarg, R_OK) != 0)
				return bad("--ca-file %s: %s", optarg, strerror(errno));
			break;
		case OPT_NO_AUTOSTART:
			o->no_autostart = true;
			break;
		case OPT_NO_PASSTHROUGH:
			o->no_passthrough = true;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg, &o->log_level))
				return bad("--log-level %s: use error, warn, info or debug",
					   optarg);
			break;
		case OPT_MOUNT_POINT:
			legacy_mp = optarg;
			o->legacy = true;
			break;
		case OPT_BUCKET_NAME:
			legacy_bucket = optarg;
			o->legacy = true;
			break;
		default:
			fprintf(stderr, "Try 'hoardfs --help'.\n");
			return 2;
		}
		if (rc)
			return rc;
	}
	if (o->legacy) {
		if (!legacy_mp || !legacy_bucket)
			return bad("%s", "--mount-point and --bucket-name go together");
		if (optind < argc)
			return bad("unexpected argument '%s' with --mount-point/--bucket-name",
				   argv[optind]);
		if (!url_bucket_name_valid(legacy_bucket))
			return bad("--bucket-name %s: not a valid bucket name", legacy_bucket);
		snprintf(o->url, sizeof(o->url), "gs://%s/", legacy_bucket);
		mp = legacy_mp;
		if (!cache_set)
			snprintf(o->cache_dir, sizeof(o->cache_dir), "/tmp/fuser");
	} else {
		if (argc - optind != 2) {
			if (argc - optind < 2)
				return bad("%s", "expected a bucket URL and a mount point");
			return bad("unexpected argument '%s'", argv[optind + 2]);
		}
		url = argv[optind];
		mp = argv[optind + 1];
	}
	if (!o->legacy) {
		rc = url_parse_bucket(url, &bu);
		if (rc == -ENAMETOOLONG)
			return bad("%s: bucket name or prefix too long", url);
		if (rc)
			return bad("'%s' is not a bucket URL: expected gs://BUCKET[/PREFIX] or "
				   "s3://BUCKET[/PREFIX]",
				   url);
		snprintf(o->url, sizeof(o->url), "%s://%s/%s", url_scheme_name(bu.scheme),
			 bu.bucket, bu.prefix);
	}
	if (!realpath(mp, o->mountpoint)) {
		fprintf(stderr, "hoardfs: mount point %s: %s\n", mp, strerror(errno));
		return 1;
	}
	{
		struct stat st;

		if (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "hoardfs: mount point %s is not a directory\n", mp);
			return 1;
		}
	}
	if (is_mountpoint(o->mountpoint)) {
		fprintf(stderr, "hoardfs: %s is already a mount point (busy)\n", o->mountpoint);
		return 1;
	}
	if (!cache_set && !o->legacy)
		default_cache_dir(o);
	if (!socket_set)
		snprintf(o->socket_path, sizeof(o->socket_path), "%.*s/cached.sock",
			 (int)sizeof(o->socket_path) - 16, o->cache_dir);
	if (strlen(o->socket_path) >= 108) {
		fprintf(stderr, "hoardfs: socket path %s is too long; use --socket\n",
			o->socket_path);
		return 2;
	}
	return 0;
}

/* Detaches before any thread exists; the parent exits with the child's verdict. */
static int detach(int *notify)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char c = 1;
		ssize_t n;

		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n < 0 && errno == EINTR);
		_exit(n == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*notify = p[1];
	return 0;
}

static const char *register_error(int rc)
{
	switch (-rc) {
	case ENOENT:
		return "no such bucket";
	case EACCES:
		return "access denied: check the credentials";
	case EPERM:
		return "this user may not mount that bucket (the daemon's allow-list)";
	case ENOKEY:
		return "credentials could not be loaded (see the daemon's log)";
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ETIMEDOUT:
		return "cannot reach the object store";
	case EPROTONOSUPPORT:
		return "the running hoardfs-cached speaks another protocol version";
	case EINVAL:
		return "invalid bucket URL";
	default:
		return strerror(-rc);
	}
}

/* Descriptors open now, as a bitmap of the first FD_SNAP_MAX numbers. */
#define FD_SNAP_MAX 4096
static void fd_snapshot(uint8_t *map)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	memset(map, 0, FD_SNAP_MAX / 8);
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char *end;
		unsigned long n = strtoul(e->d_name, &end, 10);

		if (!*end && end != e->d_name && n < FD_SNAP_MAX)
			map[n / 8] |= (uint8_t)(1u << (n % 8));
	}
	closedir(dir);
}

/*
 * With auto_unmount, libfuse keeps a socket to the fusermount3 helper, which unmounts when that
 * socket closes and open() of the mount point then fails with ENOTCONN. When this process dies,
 * the kernel closes its descriptors in increasing order: the socket (opened at mount time)
 * before the /dev/fuse clones of the worker threads. fusermount3 may then open() the mount
 * point while a clone still holds the connection: the request is aborted with ECONNABORTED a
 * moment later, fusermount3 takes the mount for alive and leaves it mounted (seen under load:
 * a stale mount after kill -9). Moving the socket to the highest descriptor number makes it
 * close last. `before` is the snapshot taken before fuse_session_mount().
 */
static void auto_unmount_socket_last(struct fuse_session *se, const uint8_t *before)
{
	uint8_t after[FD_SNAP_MAX / 8];
	struct rlimit rl;
	int sock = -1, hi, nfd;

	fd_snapshot(after);
	for (int fd = 0; fd < FD_SNAP_MAX; fd++) {
		struct stat st;

		if (!(after[fd / 8] & (1u << (fd % 8))) || (before[fd / 8] & (1u << (fd % 8))) ||
		    fd == fuse_session_fd(se))
			continue;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			sock = fd;
	}
	if (sock < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	hi = rl.rlim_cur > 1 && rl.rlim_cur <= INT_MAX ? (int)rl.rlim_cur - 1 : 1023;
	if (hi <= sock)
		return;
	nfd = fcntl(sock, F_DUPFD_CLOEXEC, hi);
	if (nfd < 0) {
		log_debug("moving the auto-unmount socket: %s", strerror(errno));
		return;
	}
	close(sock);
	log_debug("auto-unmount socket moved from %d to %d", sock, nfd);
}

int main(int argc, char **argv)
{
	struct mnt *m = calloc(1, sizeof(*m));
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct fs *fs = NULL;
	char opts[8192], fsname[PROTO_URL_MAX + 16];
	uint8_t fds_before[FD_SNAP_MAX / 8];
	int notify = -1, rc, status = 1;
	unsigned major = 0, minor = 0;

	if (!m)
		return 1;
	argv[0] = (char *)"hoardfs"; /* getopt's messages name the program, not its path */
	rc = parse_args(argc, argv, &m->o);
	if (rc) {
		free(m);
		return rc;
	}
	if (!m->o.foreground) {
		rc = detach(&notify);
		if (rc) {
			fprintf(stderr, "hoardfs: cannot detach: %s\n", strerror(-rc));
			return 1;
		}
	}
	log_init("hoardfs", m->o.log_level, false);
	rc = conn_start(m);
	if (rc) {
		if (!m->connect_failed) /* connection failures were reported already */
			fprintf(stderr, "hoardfs: %s: %s\n", m->o.url, register_error(rc));
		goto out;
	}
	if (objs_init(m) || fs_new(m, &fs)) {
		fprintf(stderr, "hoardfs: out of memory\n");
		goto out;
	}
	/* FUSE options: read-only, named after the bucket, checked by the kernel. */
	for (char *p = m->o.url; *p; p++) {
		if (*p == ',' || *p == ' ')
			*p = '_'; /* cannot appear in a valid URL anyway */
	}
	snprintf(fsname, sizeof(fsname), "hoardfs:%s", m->o.url);
	snprintf(opts, sizeof(opts), "ro,default_permissions,fsname=%s,subtype=hoardfs%s%s%s%s%s",
		 fsname, m->o.allow_other ? ",allow_other" : "",
		 m->o.allow_root ? ",allow_root" : "", m->o.auto_unmount ? ",auto_unmount" : "",
		 m->o.fuse_opts[0] ? "," : "", m->o.fuse_opts);
	if (fuse_opt_add_arg(&args, "hoardfs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts)) {
		fprintf(stderr, "hoardfs: out of memory\n");
		goto out;
	}
	se = fuse_session_new(&args, fs_ops(), sizeof(struct fuse_lowlevel_ops), fs);
	if (!se) {
		fprintf(stderr, "hoardfs: invalid FUSE options: %s\n", opts);
		status = 2;
		goto out;
	}
	if (fuse_set_signal_handlers(se)) {
		fprintf(stderr, "hoardfs: cannot install signal handlers\n");
		goto out;
	}
	fd_snapshot(fds_before);
	if (fuse_session_mount(se, m->o.mountpoint)) {
		fprintf(stderr, "hoardfs: cannot mount %s at %s\n", m->o.url, m->o.mountpoint);
		goto out_signals;
	}
	if (m->o.auto_unmount)
		auto_unmount_socket_last(se, fds_before);
	/* Passthrough needs page-cached opens: --direct-io sends every read to us anyway. */
	if (!m->o.no_passthrough && !m->o.direct_io) {
		rc = passthru_install(&m->pt, se);
		if (!rc)
			rc = fs_set_session(fs, se);
		if (rc)
			log_warn("FUSE passthrough setup failed (%s): files read while incomplete "
				 "stay ordinary FUSE files until closed",
				 strerror(-rc));
	}
	/* The kernel sets the read-ahead when it processes INIT, after this: fs.c raises it at
	 * the first request that follows INIT. */
	if (m->o.read_ahead_kb && mount_dev(m->o.mountpoint, &major, &minor) == 0) {
		m->bdi_major = major;
		m->bdi_minor = minor;
		atomic_store(&m->bdi_pending, true);
	}
	if (conn_start_reconnector(m) || objs_start_timer(m)) {
		fprintf(stderr, "hoardfs: cannot start threads\n");
		goto out_unmount;
	}
	log_info("mounted %s at %s", m->o.url, m->o.mountpoint);
	if (notify >= 0) {
		char ok = 0;
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		log_use_syslog(true);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
		if (write(notify, &ok, 1) != 1)
			log_warn("could not tell the parent we are mounted");
		close(notify);
		notify = -1;
	}
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)m->o.max_threads);
	/* Idle workers stay: creating and destroying threads per burst of reads cost more. */
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)m->o.max_threads);
	rc = fuse_session_loop_mt(se, lc);
	status = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
	log_info("unmounting %s (reads through FUSE: %llu hits, %llu misses; passthrough: %llu "
		 "opens, %llu complete files read through FUSE instead, %llu backing files)",
		 m->o.mountpoint, (unsigned long long)atomic_load(&m->hits),
		 (unsigned long long)atomic_load(&m->misses),
		 (unsigned long long)atomic_load(&m->pt.opens),
		 (unsigned long long)atomic_load(&m->pt.fallbacks),
		 (unsigned long long)atomic_load(&m->pt.backing_ids));
out_unmount:
	fs_stop(fs);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	conn_stop(m);
	objs_fini(m);
	if (se)
		fuse_session_destroy(se);
	fuse_loop_cfg_destroy(lc);
	fuse_opt_free_args(&args);
	fs_free(fs);
	free(m);
	return status;
}
