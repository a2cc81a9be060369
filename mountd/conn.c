/* conn: the mount's connection to hoardfs-cached: start the daemon when none answers, register,
 * and come back after the daemon went away (restarting it when mounts started it), so readers
 * see a delay rather than an error. */
#include "mountd/mount.h"

#include "common/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* One registration; kept until unmount so late users of a lost connection never see freed
 * memory (reconnects are rare, so this costs little). */
struct conn_ctx {
	struct conn_ctx *next;
	struct mnt *m;
	struct hfc *c;
	uint32_t gen;
};

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- starting the daemon ---- */

static int find_daemon(char *out, size_t outsz)
{
	const char *env = getenv("HOARDFS_CACHED");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(out, outsz, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			n = snprintf(out, outsz, "%s/hoardfs-cached", self);
			if (n > 0 && (size_t)n < outsz && access(out, X_OK) == 0)
				return 0;
			n = snprintf(out, outsz, "%s/../cached/hoardfs-cached",
				     self); /* build tree */
			if (n > 0 && (size_t)n < outsz && access(out, X_OK) == 0)
				return 0;
		}
	}
	snprintf(out, outsz, "hoardfs-cached"); /* from PATH */
	return 1;
}

/* Creates the cache directory (0700) or checks that the caller owns it. Prints why it fails. */
static int check_cache_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int err = errno;

		fprintf(stderr, "hoardfs: cannot create cache directory %s: %s\n", dir,
			strerror(err));
		return -err;
	}
	if (stat(dir, &st) < 0) {
		int err = errno;

		fprintf(stderr, "hoardfs: cache directory %s: %s\n", dir, strerror(err));
		return -err;
	}
	if (st.st_uid != geteuid()) {
		fprintf(stderr,
			"hoardfs: no hoardfs-cached answers on the socket, and the cache directory %s "
			"belongs to another user, so this mount cannot start one; start the daemon as "
			"its owner or pick --cache-dir\n",
			dir);
		return -EPERM;
	}
	return 0;
}

/* Spawns hoardfs-cached detached: every descriptor but stdio is closed in the child (a daemon
 * that inherited /dev/fuse would keep a dead mount alive). The daemon's first process exits
 * once its socket answers, so waiting for it waits for readiness. */
static int spawn_daemon(struct mnt *m)
{
	char bin[PATH_MAX], ll[16];
	const char *argv[16];
	posix_spawn_file_actions_t fa;
	int argc = 0, rc, status;
	pid_t pid;
	bool from_path = find_daemon(bin, sizeof(bin)) == 1;

	snprintf(ll, sizeof(ll), "%s",
		 m->o.log_level >= LOG_LVL_DEBUG  ? "debug"
		 : m->o.log_level == LOG_LVL_WARN ? "warn"
						  : "info");
	argv[argc++] = bin;
	argv[argc++] = "--cache-dir";
	argv[argc++] = m->o.cache_dir;
	argv[argc++] = "--socket";
	argv[argc++] = m->o.socket_path;
	argv[argc++] = "--single-user";
	argv[argc++] = "--autostarted";
	argv[argc++] = "--idle-exit";
	argv[argc++] = "300";
	argv[argc++] = "--log-level";
	argv[argc++] = ll;
	if (m->o.ca_file[0]) {
		argv[argc++] = "--ca-file";
		argv[argc++] = m->o.ca_file;
	}
	argv[argc] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	rc = from_path ? posix_spawnp(&pid, bin, &fa, NULL, (char *const *)argv, environ)
		       : posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "hoardfs: cannot start %s: %s\n", bin, strerror(rc));
		return -rc;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO; /* the daemon printed why (or another mount's daemon won the race) */
	m->started_daemon = true;
	log_info("started hoardfs-cached for %s", m->o.cache_dir);
	return 0;
}

/* ---- connection ---- */

static void on_complete(void *ctx, const struct ring_entry *e)
{
	struct conn_ctx *cc = ctx;

	objs_complete(cc->m, e);
}

static void on_lost(void *ctx)
{
	struct conn_ctx *cc = ctx;
	struct mnt *m = cc->m;
	bool mine = false;

	pthread_mutex_lock(&m->conn_lock);
	if (m->hfc == cc->c) {
		mine = true;
		m->hfc = NULL; /* new calls and submissions wait for the reconnect */
	}
	pthread_mutex_unlock(&m->conn_lock);
	if (!mine)
		return;
	/* Before anyone may reconnect and install fresh maps: forget the old ones. */
	objs_lost(m);
	pthread_mutex_lock(&m->conn_lock);
	m->lost = true;
	if (!atomic_load(&m->stopping))
		log_warn(
			"lost the connection to hoardfs-cached; reconnecting (reads wait up to %d s)",
			m->o.read_timeout);
	pthread_cond_broadcast(&m->conn_cond);
	pthread_mutex_unlock(&m->conn_lock);
}

/* Connects and registers once. may_start: start a daemon if none answers. */
static int connect_once(struct mnt *m, bool may_start, bool quiet)
{
	struct conn_ctx *cc = calloc(1, sizeof(*cc));
	struct hfc_register r = { 0 };
	struct proto_register_reply rep;
	int rc, tries = 0;
	bool reported = false, spawn_failed = false;
	char why[PATH_MAX + 256];

	if (!cc)
		return -ENOMEM;
	cc->m = m;
	for (;;) {
		rc = hfc_connect_checked(m->o.socket_path, &cc->c, why, sizeof(why));
		if (rc == -EPERM && why[0]) {
			if (!quiet)
				fprintf(stderr, "hoardfs: %s\n", why);
			reported = true;
		}
		if (rc != -ENOENT && rc != -ECONNREFUSED)
			break;
		if (!may_start || tries++ >= 3)
			break;
		if (spawn_failed) {
			usleep(200000);
			continue;
		}
		rc = check_cache_dir(m->o.cache_dir);
		if (rc) {
			reported = true;
			break;
		}
		rc = spawn_daemon(m);
		if (rc && rc != -EIO) {
			reported = true; /* spawn_daemon said why */
			break;
		}
		/* -EIO: the daemon failed (and said why) or another mount's daemon won the race to
		 * the lock: connect again a few times, but never start (and hear) it once more. */
		if (rc) {
			spawn_failed = reported = true;
			usleep(200000);
		}
	}
	if (rc) {
		if (!quiet && !reported)
			fprintf(stderr, "hoardfs: cannot reach hoardfs-cached on %s: %s\n",
				m->o.socket_path, strerror(-rc));
		m->connect_failed = true;
		free(cc);
		return rc;
	}
	m->connect_failed = false;
	r.url = m->o.url;
	r.endpoint = m->o.endpoint;
	r.region = m->o.region;
	r.mountpoint = m->o.mountpoint;
	r.anonymous = m->o.anonymous;
	r.started_daemon = m->started_daemon;
	r.metadata_ttl = m->o.metadata_ttl;
	r.neg_ttl = m->o.neg_ttl;
	r.on_complete = on_complete;
	r.on_lost = on_lost;
	r.ctx = cc;
	pthread_mutex_lock(&m->conn_lock);
	cc->gen = m->conn_gen + 1;
	pthread_mutex_unlock(&m->conn_lock);
	rc = hfc_register(cc->c, &r, m->o.read_timeout * 1000, &rep);
	if (rc) {
		hfc_close(cc->c);
		free(cc);
		return rc;
	}
	pthread_mutex_lock(&m->conn_lock);
	m->conn_gen = cc->gen;
	m->reg = rep;
	m->base_hits = atomic_load(&m->hits);
	m->base_hit_bytes = atomic_load(&m->hit_bytes);
	m->base_misses = atomic_load(&m->misses);
	m->base_miss_bytes = atomic_load(&m->miss_bytes);
	m->daemon_autostarted = rep.flags & PROTO_REGF_AUTOSTARTED;
	m->hfc = cc->c;
	m->lost = false;
	cc->next = m->graveyard;
	m->graveyard = cc;
	pthread_cond_broadcast(&m->conn_cond);
	pthread_mutex_unlock(&m->conn_lock);
	return 0;
}

int conn_start(struct mnt *m)
{
	pthread_mutex_init(&m->conn_lock, NULL);
	pthread_cond_init(&m->conn_cond, NULL);
	return connect_once(m, !m->o.no_autostart, false);
}

static void *reconn_main(void *arg)
{
	struct mnt *m = arg;

	pthread_mutex_lock(&m->conn_lock);
	while (!atomic_load(&m->stopping)) {
		uint64_t wait = 100;

		while (!m->lost && !atomic_load(&m->stopping))
			pthread_cond_wait(&m->conn_cond, &m->conn_lock);
		while (m->lost && !atomic_load(&m->stopping)) {
			bool may_start = m->daemon_autostarted && !m->o.no_autostart;
			int rc;

			pthread_mutex_unlock(&m->conn_lock);
			rc = connect_once(m, may_start, true);
			if (rc == 0) {
				log_info("reconnected to hoardfs-cached");
				objs_reconnected(m);
			} else {
				log_debug("reconnect: %s", strerror(-rc));
				usleep((useconds_t)wait * 1000);
				wait = wait * 2 > 1000 ? 1000 : wait * 2;
			}
			pthread_mutex_lock(&m->conn_lock);
		}
	}
	pthread_mutex_unlock(&m->conn_lock);
	return NULL;
}

int conn_start_reconnector(struct mnt *m)
{
	int rc = -pthread_create(&m->reconn_thr, NULL, reconn_main, m);

	m->reconn_started = rc == 0;
	return rc;
}

void conn_stop(struct mnt *m)
{
	atomic_store(&m->stopping, true);
	pthread_mutex_lock(&m->conn_lock);
	pthread_cond_broadcast(&m->conn_cond);
	pthread_mutex_unlock(&m->conn_lock);
	if (m->reconn_started)
		pthread_join(m->reconn_thr, NULL);
	for (struct conn_ctx *cc = m->graveyard, *next; cc; cc = next) {
		next = cc->next;
		hfc_close(cc->c);
		free(cc);
	}
	m->graveyard = NULL;
	m->hfc = NULL;
}

/* Waits (up to the read timeout from `start`) for a live connection. */
static struct hfc *current(struct mnt *m, uint64_t deadline, uint32_t *gen)
{
	struct hfc *c;

	pthread_mutex_lock(&m->conn_lock);
	while (!m->hfc && !atomic_load(&m->stopping)) {
		struct timespec ts;
		uint64_t now = mono_ms();

		if (now >= deadline)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&m->conn_cond, &m->conn_lock, &ts);
	}
	c = m->hfc;
	if (gen)
		*gen = m->conn_gen;
	pthread_mutex_unlock(&m->conn_lock);
	return c;
}

#define RETRYING(m, deadline, c, gen, call)                               \
	({                                                                \
		int rc_ = -ENOTCONN;                                      \
		while (((c) = current((m), (deadline), (gen))) != NULL) { \
			rc_ = (call);                                     \
			if (rc_ != -ENOTCONN || mono_ms() >= (deadline))  \
				break;                                    \
		}                                                         \
		rc_ == -ENOTCONN ? -EIO : rc_;                            \
	})

int conn_call_lookup(struct mnt *m, const char *path, struct proto_attr *a)
{
	uint64_t deadline = mono_ms() + (uint64_t)m->o.read_timeout * 1000;
	int tmo = m->o.read_timeout * 1000;
	struct hfc *c;
	uint32_t *nogen = NULL;

	return RETRYING(m, deadline, c, nogen, hfc_lookup(c, path, tmo, a));
}

int conn_call_list(struct mnt *m, const char *path, uint64_t cursor,
		   int (*fn)(void *ctx, const struct proto_attr *a, const char *name, size_t len),
		   void *ctx, uint64_t *next)
{
	uint64_t deadline = mono_ms() + (uint64_t)m->o.read_timeout * 1000;
	int tmo = m->o.read_timeout * 1000;
	struct hfc *c;
	uint32_t *nogen = NULL;

	return RETRYING(m, deadline, c, nogen, hfc_list(c, path, cursor, tmo, fn, ctx, next));
}

int conn_call_open(struct mnt *m, const char *path, const char *version, uint64_t size,
		   uint32_t flags, struct proto_open_reply *rep, uint8_t **bitmap, int *fd,
		   uint32_t *gen)
{
	uint64_t deadline = mono_ms() + (uint64_t)m->o.read_timeout * 1000;
	int tmo = m->o.read_timeout * 1000;
	struct hfc *c;

	return RETRYING(m, deadline, c, gen,
			hfc_open(c, path, version, size, flags, tmo, rep, bitmap, fd));
}

void conn_call_close(struct mnt *m, uint32_t handle, uint32_t gen)
{
	struct hfc *c;

	pthread_mutex_lock(&m->conn_lock);
	c = m->conn_gen == gen ? m->hfc : NULL;
	pthread_mutex_unlock(&m->conn_lock);
	if (c)
		hfc_close_handle(c, handle, 5000);
}

int conn_call_backing(struct mnt *m, uint32_t op, uint32_t handle, int32_t id, uint32_t gen)
{
	uint64_t deadline = mono_ms() + (uint64_t)m->o.read_timeout * 1000;
	int tmo = m->o.read_timeout * 1000;
	uint32_t *nogen = NULL;
	struct hfc *c;

	if (op == PROTO_BACKING_OPEN) {
		/* a handle belongs to its registration: no retry on another */
		pthread_mutex_lock(&m->conn_lock);
		c = m->conn_gen == gen ? m->hfc : NULL;
		pthread_mutex_unlock(&m->conn_lock);
		return c ? hfc_backing(c, op, handle, id, m->pt.dev_fd, tmo) : -ENOTCONN;
	}
	return RETRYING(m, deadline, c, nogen, hfc_backing(c, op, handle, id, m->pt.dev_fd, tmo));
}

int conn_submit(struct mnt *m, const struct ring_entry *e, uint32_t gen)
{
	struct hfc *c;

	pthread_mutex_lock(&m->conn_lock);
	c = m->conn_gen == gen ? m->hfc : NULL;
	pthread_mutex_unlock(&m->conn_lock);
	return c ? hfc_submit(c, e) : -ENOTCONN;
}

void conn_publish_stats(struct mnt *m)
{
	struct ring_mount_stats s;

	pthread_mutex_lock(&m->conn_lock);
	s.hits = atomic_load(&m->hits) - m->base_hits;
	s.hit_bytes = atomic_load(&m->hit_bytes) - m->base_hit_bytes;
	s.misses = atomic_load(&m->misses) - m->base_misses;
	s.miss_bytes = atomic_load(&m->miss_bytes) - m->base_miss_bytes;
	if (m->hfc)
		hfc_publish_stats(m->hfc, &s);
	pthread_mutex_unlock(&m->conn_lock);
}

void conn_request_bdi(struct mnt *m, unsigned major, unsigned minor, uint32_t kb)
{
	char path[96], val[16];
	struct proto_bdi b = { .major = major, .minor = minor, .read_ahead_kb = kb };
	int fd, n, status = 0, rc;
	struct hfc *c;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major, minor);
	n = snprintf(val, sizeof(val), "%u", kb);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		rc = write(fd, val, (size_t)n) == n ? 0 : -errno;
		close(fd);
		if (rc == 0) {
			log_debug("read_ahead_kb of %u:%u set to %u", major, minor, kb);
			return;
		}
	}
	/* In a container /sys is read-only: the daemon does it after checking the device. */
	c = current(m, mono_ms() + 5000, NULL);
	if (!c)
		return;
	rc = hfc_call(c, PROTO_BDI, &b, sizeof(b), 5000, &status, NULL, 0, NULL, NULL, 0, NULL);
	if (rc || status)
		log_warn("could not raise read_ahead_kb of the mount to %u: %s", kb,
			 strerror(-(rc ? rc : status)));
}
