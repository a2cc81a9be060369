/* server: the engine thread: the Unix socket, mount registrations, rings, and the tasks other
 * threads post. Everything a mount sends is untrusted and validated here or in mdsvc.c. */
#include "cached/daemon.h"
#include "cached/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/msg.h"
#include "common/ring.h"

#define TICK_MS		20
#define BACKLOG_MAX	65536 /* completions queued for a mount whose ring is full */
#define RING_BATCH	1024  /* submissions taken from one ring per wakeup */
#define BAD_ENTRY_LIMIT 64    /* invalid entries tolerated before a mount is dropped */

uint64_t daemon_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t daemon_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- connections ---- */

struct conn *conn_get(struct conn *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void conn_put(struct conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->sub_efd >= 0)
		close(c->sub_efd);
	if (c->comp_efd >= 0)
		close(c->comp_efd);
	ring_free(c->ring);
	free(c->backlog);
	free(c);
}

pid_t conn_pid(const struct conn *c)
{
	return c->pid;
}

uid_t conn_uid(const struct conn *c)
{
	return c->uid;
}

int conn_replyv(struct conn *c, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
		const struct iovec *iov, int iovcnt, const int *fds, int nfds)
{
	int rc;

	if (atomic_load(&c->dead))
		return -EPIPE;
	rc = msg_sendv(c->fd, (uint16_t)(type | PROTO_REPLY), flags, seq, status, iov, iovcnt, fds,
		       nfds, MSG_DONTWAIT);
	if (rc == -EAGAIN) {
		/* A peer that does not read its replies is not waited for: it gets dropped. */
		log_warn("mount %llu (pid %d) is not reading its socket; disconnecting it",
			 (unsigned long long)c->mount_id, (int)c->pid);
		shutdown(c->fd, SHUT_RDWR);
	}
	return rc;
}

int conn_reply(struct conn *c, uint16_t type, uint32_t seq, int32_t status, const void *payload,
	       size_t len, const int *fds, int nfds)
{
	struct iovec v = { (void *)payload, len };

	return conn_replyv(c, type, 0, seq, status, &v, len ? 1 : 0, fds, nfds);
}

/*
 * Marks a connection dead and stops listening to it. Its teardown (handles, waiters, the engine's
 * reference) waits for conn_reap() at the end of the engine loop's iteration: a drop happens deep
 * inside callers that still hold pointers to the connection, its waiters or its handles
 * (ring_readable's loop, wake_waiters, the revoke loop, later events of the same epoll batch).
 */
static void conn_drop(struct daemon *d, struct conn *c, const char *why)
{
	if (atomic_exchange(&c->dead, true))
		return;
	if (why)
		atomic_fetch_add(&d->st.mounts_disconnected, 1);
	if (c->registered || why)
		log_info("mount %llu (pid %d, %s) %s", (unsigned long long)c->mount_id, (int)c->pid,
			 c->url[0] ? c->url : "unregistered", why ? why : "disconnected");
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->sub_efd >= 0)
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->sub_efd, NULL);
	shutdown(c->fd, SHUT_RDWR);
}

/* Tears down the connections conn_drop() marked dead (engine thread, between loop iterations,
 * when nothing up the stack points into them). */
static void conn_reap(struct daemon *d)
{
	for (struct conn **pp = &d->conns; *pp;) {
		struct conn *c = *pp;

		if (!atomic_load(&c->dead)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (c->registered) {
			ring_read_stats(c->ring, &c->mstats);
			d->gone_stats.hits += c->mstats.hits;
			d->gone_stats.hit_bytes += c->mstats.hit_bytes;
			d->gone_stats.misses += c->mstats.misses;
			d->gone_stats.miss_bytes += c->mstats.miss_bytes;
			objects_conn_gone(d, c);
			bucket_put(d, c->mm.bk);
			c->mm.bk = NULL;
			d->nmounts--;
			atomic_store(&d->nmounts_pub, d->nmounts);
			if (d->nmounts == 0)
				d->idle_since = daemon_now();
		}
		conn_put(c);
	}
}

/* ---- completions ---- */

static bool backlog_push(struct conn *c, const struct ring_entry *e)
{
	if (c->nbacklog == c->backlog_cap) {
		size_t cap = c->backlog_cap ? c->backlog_cap * 2 : 256;
		struct ring_entry *nb;

		if (cap > BACKLOG_MAX)
			return false;
		nb = malloc(cap * sizeof(*nb));
		if (!nb)
			return false;
		for (size_t i = 0; i < c->nbacklog; i++)
			nb[i] = c->backlog[(c->backlog_head + i) % c->backlog_cap];
		free(c->backlog);
		c->backlog = nb;
		c->backlog_cap = cap;
		c->backlog_head = 0;
	}
	c->backlog[(c->backlog_head + c->nbacklog) % c->backlog_cap] = *e;
	c->nbacklog++;
	return true;
}

/* Moves queued completions into the ring as space allows. false = the ring is corrupt. */
static bool backlog_flush(struct conn *c)
{
	while (c->nbacklog) {
		int rc = ring_push(c->ring, &c->backlog[c->backlog_head]);

		if (rc == -EAGAIN)
			break;
		if (rc)
			return false;
		c->backlog_head = (c->backlog_head + 1) % c->backlog_cap;
		c->nbacklog--;
		c->notify = true;
	}
	return true;
}

void conn_complete(struct daemon *d, struct conn *c, const struct ring_entry *e)
{
	int rc;

	if (atomic_load(&c->dead) || !c->ring)
		return;
	if (e->op == RING_ERROR)
		atomic_fetch_add(&d->st.errors, 1);
	if (!c->nbacklog) {
		rc = ring_push(c->ring, e);
		if (rc == 0) {
			c->notify = true;
			return;
		}
		if (rc != -EAGAIN) {
			conn_drop(d, c, "corrupted its ring; disconnected");
			return;
		}
	}
	if (!backlog_push(c, e))
		conn_drop(d, c, "stopped draining its completions; disconnected");
}

static void notify_conns(struct daemon *d)
{
	uint64_t one = 1;

	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->notify && c->comp_efd >= 0 && !atomic_load(&c->dead)) {
			c->notify = false;
			if (write(c->comp_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				log_debug("eventfd write: %s", strerror(errno));
		}
	}
}

/* ---- tasks ---- */

static void run_tasks(struct daemon *d);

void engine_post(struct daemon *d, struct task *t)
{
	uint64_t one = 1;
	bool was_empty;

	t->next = NULL;
	pthread_mutex_lock(&d->task_lock);
	was_empty = d->task_head == NULL;
	if (d->task_tail)
		d->task_tail->next = t;
	else
		d->task_head = t;
	d->task_tail = t;
	pthread_mutex_unlock(&d->task_lock);
	if (was_empty && write(d->task_efd, &one, sizeof(one)) < 0)
		log_error("engine wakeup failed: %s", strerror(errno));
}

void engine_drain(struct daemon *d)
{
	run_tasks(d);
}

static void run_tasks(struct daemon *d)
{
	struct task *t;
	uint64_t v;

	if (read(d->task_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("task eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&d->task_lock);
	t = d->task_head;
	d->task_head = d->task_tail = NULL;
	pthread_mutex_unlock(&d->task_lock);
	while (t) {
		struct task *next = t->next;

		t->fn(d, t);
		t = next;
	}
}

/* ---- synchronous calls into the engine (from other threads) ---- */

struct call_task {
	struct task t;
	void (*fn)(struct daemon *d, void *arg);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void call_run(struct daemon *d, struct task *t)
{
	struct call_task *ct = (struct call_task *)t;

	ct->fn(d, ct->arg);
	pthread_mutex_lock(&ct->lock);
	ct->done = true;
	pthread_cond_signal(&ct->cond);
	pthread_mutex_unlock(&ct->lock);
}

void engine_call(struct daemon *d, void (*fn)(struct daemon *d, void *arg), void *arg)
{
	struct call_task ct = { .t.fn = call_run, .fn = fn, .arg = arg };

	pthread_mutex_init(&ct.lock, NULL);
	pthread_cond_init(&ct.cond, NULL);
	engine_post(d, &ct.t);
	pthread_mutex_lock(&ct.lock);
	while (!ct.done)
		pthread_cond_wait(&ct.cond, &ct.lock);
	pthread_mutex_unlock(&ct.lock);
	pthread_cond_destroy(&ct.cond);
	pthread_mutex_destroy(&ct.lock);
}

/* ---- registration ---- */

struct reg_task {
	struct task t;
	struct conn *c;
	uint32_t seq;
	int status;
	struct md_mount mm;
	char url[PROTO_URL_MAX];
	char mountpoint[PROTO_PATH_MAX];
};

static void reg_finish(struct daemon *d, struct task *t)
{
	struct reg_task *rt = (struct reg_task *)t;
	struct conn *c = rt->c;
	struct proto_register_reply rep = { 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	int fds[3], rc = rt->status;

	c->registering = false;
	if (atomic_load(&c->dead)) {
		if (rt->mm.bk)
			bucket_put(d, rt->mm.bk);
		goto out;
	}
	if (rc)
		goto reply;
	c->mount_id = ++d->next_mount_id;
	rc = ring_create(d->cfg.ring_entries, c->mount_id, &fds[0], &c->ring);
	if (rc)
		goto fail;
	c->sub_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->comp_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->sub_efd < 0 || c->comp_efd < 0) {
		rc = -errno;
		close(fds[0]);
		goto fail;
	}
	c->ring_tag.kind = EP_RING;
	c->ring_tag.c = c;
	ev.data.ptr = &c->ring_tag;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, c->sub_efd, &ev) < 0) {
		rc = -errno;
		close(fds[0]);
		goto fail;
	}
	c->mm = rt->mm;
	memcpy(c->url, rt->url, sizeof(c->url));
	memcpy(c->mountpoint, rt->mountpoint, sizeof(c->mountpoint));
	c->registered = true;
	c->registered_at = daemon_now();
	d->nmounts++;
	atomic_store(&d->nmounts_pub, d->nmounts);
	atomic_fetch_add(&d->st.mounts_total, 1);
	rep.mount_id = c->mount_id;
	rep.epoch = d->epoch;
	rep.ring_entries = d->cfg.ring_entries;
	rep.ring_bytes = ring_bytes(d->cfg.ring_entries);
	rep.block_size = PROTO_BLOCK_SIZE;
	rep.max_inflight = d->cfg.max_waiting;
	rep.daemon_pid = (uint64_t)getpid();
	rep.flags = d->cfg.autostarted ? PROTO_REGF_AUTOSTARTED : 0;
	fds[1] = c->sub_efd;
	fds[2] = c->comp_efd;
	rc = conn_reply(c, PROTO_REGISTER, rt->seq, 0, &rep, sizeof(rep), fds, 3);
	close(fds[0]);
	if (rc) {
		conn_drop(d, c, "vanished during registration");
		goto out;
	}
	log_info("mount %llu registered: %s at %s (pid %d, uid %d)",
		 (unsigned long long)c->mount_id, c->url, c->mountpoint, (int)c->pid, (int)c->uid);
	goto out;
fail:
	log_error("registering %s failed: %s", rt->url, strerror(-rc));
	if (rt->mm.bk)
		bucket_put(d, rt->mm.bk);
	ring_free(c->ring);
	c->ring = NULL;
reply:
	conn_reply(c, PROTO_REGISTER, rt->seq, rc, NULL, 0, NULL, 0);
out:
	conn_put(c);
	free(rt);
}

/* Called by a metadata worker when a REGISTER was checked (status 0: mm holds a bucket ref). */
void server_register_done(struct daemon *d, struct conn *c, uint32_t seq, int status,
			  const struct md_mount *mm, const char *url, const char *mountpoint)
{
	struct reg_task *rt = calloc(1, sizeof(*rt));

	if (!rt) {
		if (mm && mm->bk)
			bucket_put(d, mm->bk);
		conn_put(c);
		return;
	}
	rt->t.fn = reg_finish;
	rt->c = c; /* the worker's reference moves to the task */
	rt->seq = seq;
	rt->status = status;
	if (mm)
		rt->mm = *mm;
	snprintf(rt->url, sizeof(rt->url), "%s", url ? url : "");
	snprintf(rt->mountpoint, sizeof(rt->mountpoint), "%s", mountpoint ? mountpoint : "");
	engine_post(d, &rt->t);
}

/* ---- BDI (read_ahead_kb of a mount's FUSE connection) ---- */

/* Raises read_ahead_kb of a FUSE connection the peer mounted; the mount process usually runs in
 * a container that cannot write /sys. The device must be a FUSE connection listed in the peer's
 * own mountinfo as a hoardfs mount, so a peer cannot retune other devices. */
static int bdi_set(struct conn *c, const struct proto_bdi *b)
{
	char path[128], line[4096], want[32];
	bool found = false;
	FILE *f;
	int fd, n, rc = 0;

	if (b->read_ahead_kb == 0 || b->read_ahead_kb > 1024 * 1024)
		return -EINVAL;
	snprintf(want, sizeof(want), " %u:%u ", b->major, b->minor);
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)c->pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");

		if (strstr(line, want) && sep && strncmp(sep, " - fuse.hoardfs ", 16) == 0) {
			found = true;
			break;
		}
	}
	fclose(f);
	if (!found)
		return -EPERM;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u", b->minor);
	if (access(path, F_OK) != 0)
		return -EPERM;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", b->major, b->minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "%u", b->read_ahead_kb);
	if (write(fd, line, (size_t)n) != n)
		rc = -errno;
	close(fd);
	return rc;
}

/* ---- socket messages ---- */

static void handle_msg(struct daemon *d, struct conn *c, const uint8_t *buf, size_t n, int fd)
{
	const struct proto_hdr *h = msg_hdr(buf);
	const void *p = msg_payload(buf);
	uint16_t type = h->type;

	if (type & PROTO_REPLY || type == 0 || type > PROTO_TYPE_MAX) {
		conn_reply(c, type & ~PROTO_REPLY, h->seq, -EBADMSG, NULL, 0, NULL, 0);
		return;
	}
	switch (type) {
	case PROTO_PING:
		conn_reply(c, PROTO_PING, h->seq, 0, NULL, 0, NULL, 0);
		return;
	case PROTO_CTL:
		ctl_request(d, c, h->seq, p, h->len);
		return;
	case PROTO_REGISTER:
		if (c->registered || c->registering) {
			conn_reply(c, type, h->seq, -EALREADY, NULL, 0, NULL, 0);
			return;
		}
		c->registering = true;
		mdsvc_submit(d, c, NULL, buf, n);
		return;
	default:
		break;
	}
	if (!c->registered) {
		conn_reply(c, type, h->seq, -ENOTCONN, NULL, 0, NULL, 0);
		return;
	}
	switch (type) {
	case PROTO_LOOKUP:
	case PROTO_LIST:
	case PROTO_OPEN:
		mdsvc_submit(d, c, &c->mm, buf, n);
		return;
	case PROTO_CLOSE: {
		struct proto_close cl;
		int rc = -EINVAL;

		if (h->len == sizeof(cl)) {
			memcpy(&cl, p, sizeof(cl));
			rc = objects_close(d, c, cl.handle);
		}
		conn_reply(c, type, h->seq, rc, NULL, 0, NULL, 0);
		return;
	}
	case PROTO_BACKING:
		backing_request(d, c, h->seq, p, h->len, fd);
		return;
	case PROTO_BDI: {
		struct proto_bdi b;
		int rc = -EINVAL;

		if (h->len == sizeof(b)) {
			memcpy(&b, p, sizeof(b));
			rc = bdi_set(c, &b);
		}
		conn_reply(c, type, h->seq, rc, NULL, 0, NULL, 0);
		return;
	}
	}
}

static void sock_readable(struct daemon *d, struct conn *c)
{
	for (int i = 0; i < 64 && !atomic_load(&c->dead); i++) {
		int nfds = 0, fd = -1,
		    rc = msg_recv(c->fd, d->rxbuf, PROTO_MSG_MAX, &fd, 1, &nfds, MSG_DONTWAIT);

		if (rc == -EAGAIN)
			return;
		if (rc == 0 || rc == -ECONNRESET || rc == -EPIPE) {
			conn_drop(d, c, NULL);
			return;
		}
		if (rc < 0) {
			log_warn("mount %llu (pid %d) sent a malformed message (%s); disconnecting",
				 (unsigned long long)c->mount_id, (int)c->pid, strerror(-rc));
			conn_drop(d, c, "sent garbage");
			return;
		}
		if (nfds && (msg_hdr(d->rxbuf)->type != PROTO_BACKING || !c->registered)) {
			close(fd); /* only a registered mount's BACKING carries a descriptor */
			fd = -1;
		}
		handle_msg(d, c, d->rxbuf, (size_t)rc, nfds ? fd : -1);
	}
}

/* ---- ring submissions ---- */

static void ring_readable(struct daemon *d, struct conn *c)
{
	struct ring_entry e;
	uint64_t v;
	int rc, n = 0;

	if (read(c->sub_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("ring eventfd read: %s", strerror(errno));
	if (!backlog_flush(c)) {
		conn_drop(d, c, "corrupted its ring; disconnected");
		return;
	}
	while (n++ < RING_BATCH && !atomic_load(&c->dead) && (rc = ring_pop(c->ring, &e)) == 1) {
		if (e.op != RING_FETCH && e.op != RING_PREFETCH && e.op != RING_REVOKE_ACK) {
			struct ring_entry err = { .id = e.id, .op = RING_ERROR, .status = -EINVAL };

			if (++c->bad_entries > BAD_ENTRY_LIMIT) {
				conn_drop(d, c, "sent too many invalid ring entries; disconnected");
				return;
			}
			conn_complete(d, c, &err);
			continue;
		}
		objects_submit(d, c, &e);
	}
	if (rc < 0 && !atomic_load(&c->dead)) {
		conn_drop(d, c, "corrupted its ring; disconnected");
		return;
	}
	if (n > RING_BATCH) {
		/* More may be waiting: come back after other connections had their turn. */
		uint64_t one = 1;

		if (write(c->sub_efd, &one, sizeof(one)) < 0)
			log_debug("ring eventfd write: %s", strerror(errno));
	}
}

/* A mount counts a ring entry as invalid here too (objects.c validates handles and ranges). */
void server_bad_entry(struct daemon *d, struct conn *c, uint64_t id, int status)
{
	struct ring_entry err = { .id = id, .op = RING_ERROR, .status = status };

	if (++c->bad_entries > BAD_ENTRY_LIMIT) {
		conn_drop(d, c, "sent too many invalid ring entries; disconnected");
		return;
	}
	conn_complete(d, c, &err);
}

/* ---- listing connections for ctl.c ---- */

/* Calls fn for each registered mount (engine thread). */
void server_each_mount(struct daemon *d,
		       void (*fn)(void *ctx, uint64_t id, pid_t pid, uid_t uid, const char *url,
				  const char *mountpoint, int64_t since),
		       void *ctx)
{
	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->registered && !atomic_load(&c->dead))
			fn(ctx, c->mount_id, c->pid, c->uid, c->url, c->mountpoint,
			   c->registered_at);
	}
}

/* ---- loop ---- */

/* Out of descriptors: the pending connection stays queued and the listening socket readable, so
 * the loop would spin. The spare descriptor makes room to accept it and close it at once (the
 * peer sees the connection end); then the spare is taken again. One log line per 10 s. */
static bool shed_connection(struct daemon *d, int err)
{
	uint64_t now = daemon_mono_ms();
	int fd;

	if (d->spare_fd < 0)
		return false;
	close(d->spare_fd);
	d->spare_fd = -1;
	fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		atomic_fetch_add(&d->st.accepts_shed, 1);
	}
	d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!d->emfile_logged_ms || now - d->emfile_logged_ms >= 10000) {
		d->emfile_logged_ms = now;
		log_warn("out of file descriptors (%s; limit %" PRIu64
			 "): refusing new connections "
			 "until some close (%" PRIu64 " refused so far)",
			 strerror(err), d->nofile, atomic_load(&d->st.accepts_shed));
	}
	return fd >= 0 && d->spare_fd >= 0;
}

static void accept_conns(struct daemon *d)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct conn *c;
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if ((errno == EMFILE || errno == ENFILE) && shed_connection(d, errno))
				continue;
			if (errno != EAGAIN && errno != EINTR && errno != EMFILE && errno != ENFILE)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			free(c);
			close(fd);
			continue;
		}
		atomic_init(&c->refs, 1);
		c->d = d;
		c->fd = fd;
		c->sub_efd = c->comp_efd = -1;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->sock_tag.kind = EP_SOCK;
		c->sock_tag.c = c;
		ev.data.ptr = &c->sock_tag;
		if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = d->conns;
		d->conns = c;
	}
}

static int add_fd(struct daemon *d, int fd, struct ep_tag *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static struct ep_tag tag_listen = { EP_LISTEN, NULL }, tag_task = { EP_TASK, NULL },
		     tag_timer = { EP_TIMER, NULL }, tag_signal = { EP_SIGNAL, NULL };

int engine_init(struct daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
				  .it_value = { 0, TICK_MS * 1000000L } };
	sigset_t mask;
	int rc;

	pthread_mutex_init(&d->task_lock, NULL);
	d->rxbuf = malloc(PROTO_MSG_MAX);
	if (!d->rxbuf)
		return -ENOMEM;
	if (strlen(d->cfg.socket_path) >= sizeof(sa.sun_path)) {
		log_error("socket path %s is too long for a Unix socket", d->cfg.socket_path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, d->cfg.socket_path, strlen(d->cfg.socket_path) + 1);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->task_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->epfd < 0 || d->task_efd < 0 || d->timer_fd < 0 || d->signal_fd < 0)
		return -errno;
	timerfd_settime(d->timer_fd, 0, &its, NULL);
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0)
		return -errno;
	/* The cache-dir lock is held: a socket file left here is a dead daemon's. */
	unlink(d->cfg.socket_path);
	if (bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		log_error("cannot listen on %s: %s", d->cfg.socket_path, strerror(errno));
		return rc;
	}
	/* Any local user may connect; REGISTER decides what each may use (SO_PEERCRED). */
	chmod(d->cfg.socket_path, d->cfg.single_user ? 0600 : 0666);
	if (listen(d->listen_fd, 128) < 0)
		return -errno;
	d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (d->spare_fd < 0)
		return -errno;
	if ((rc = add_fd(d, d->listen_fd, &tag_listen)) ||
	    (rc = add_fd(d, d->task_efd, &tag_task)) || (rc = add_fd(d, d->timer_fd, &tag_timer)) ||
	    (rc = add_fd(d, d->signal_fd, &tag_signal)))
		return rc;
	d->idle_since = daemon_now();
	return 0;
}

static void on_tick(struct daemon *d)
{
	uint64_t v, now = daemon_mono_ms();

	if (read(d->timer_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("timerfd read: %s", strerror(errno));
	for (struct conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (c->nbacklog && !atomic_load(&c->dead) && !backlog_flush(c))
			conn_drop(d, c, "corrupted its ring; disconnected");
	}
	if (now - d->last_slow_tick >= 250) {
		/* Mounts count their own hits in their rings: sum them for stats. */
		struct ring_mount_stats sum = d->gone_stats;

		for (struct conn *c = d->conns; c; c = c->next) {
			if (!c->registered || atomic_load(&c->dead))
				continue;
			ring_read_stats(c->ring, &c->mstats);
			sum.hits += c->mstats.hits;
			sum.hit_bytes += c->mstats.hit_bytes;
			sum.misses += c->mstats.misses;
			sum.miss_bytes += c->mstats.miss_bytes;
		}
		atomic_store(&d->st.mount_hits, sum.hits);
		atomic_store(&d->st.mount_hit_bytes, sum.hit_bytes);
		atomic_store(&d->st.mount_misses, sum.misses);
		atomic_store(&d->st.mount_miss_bytes, sum.miss_bytes);
	}
	if (now - d->last_slow_tick >= 1000) {
		d->last_slow_tick = now;
		evict_tick(d);
		if (d->cfg.idle_exit > 0 && d->nmounts == 0 &&
		    daemon_now() - d->idle_since >= d->cfg.idle_exit) {
			log_info("no mounts for %d s: exiting (--idle-exit)", d->cfg.idle_exit);
			atomic_store(&d->stopping, 1);
		}
	}
}

int engine_run(struct daemon *d)
{
	struct epoll_event evs[64];

	while (!atomic_load(&d->stopping)) {
		int n = epoll_wait(d->epfd, evs, 64, 1000);

		for (int i = 0; i < n; i++) {
			struct ep_tag *t = evs[i].data.ptr;

			switch (t->kind) {
			case EP_LISTEN:
				accept_conns(d);
				break;
			case EP_TASK:
				run_tasks(d);
				break;
			case EP_TIMER:
				on_tick(d);
				break;
			case EP_SIGNAL: {
				struct signalfd_siginfo si;

				if (read(d->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					log_info("signal %u: shutting down", si.ssi_signo);
					atomic_store(&d->stopping, 1);
				}
				break;
			}
			case EP_SOCK:
				if (!atomic_load(&t->c->dead))
					sock_readable(d, t->c);
				break;
			case EP_RING:
				if (!atomic_load(&t->c->dead))
					ring_readable(d, t->c);
				break;
			}
		}
		notify_conns(d);
		conn_reap(d);
	}
	return 0;
}

void engine_fini(struct daemon *d)
{
	for (struct conn *c = d->conns; c; c = c->next)
		conn_drop(d, c, NULL);
	conn_reap(d);
	run_tasks(d); /* late registrations and events only release references now */
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->cfg.socket_path);
	}
	if (d->spare_fd >= 0)
		close(d->spare_fd);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->task_efd >= 0)
		close(d->task_efd);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	free(d->rxbuf);
}
