/* client: request/reply multiplexing on the daemon socket, and ring completions. */
#include "common/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/msg.h"
#include "common/ring.h"

#define REPLY_MAX (16u << 20) /* largest joined multi-part reply */

struct call {
	struct call *next;
	uint32_t seq;
	bool done;
	int status;
	uint8_t *data; /* joined payload */
	size_t len;
	size_t cap;
	bool overflow;
	int fds[MSG_MAX_FDS];
	int nfds;
};

struct hfc {
	int sock;
	pthread_t rx;
	bool rx_started;
	int wake[2]; /* pipe to stop the receive thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct call *calls; /* waiting calls, under lock */
	uint32_t next_seq;
	_Atomic bool lost;
	/* ring (after REGISTER) */
	pthread_mutex_t sub_lock;
	struct ring *ring;
	int sub_efd;
	int comp_efd;
	hfc_complete_fn on_complete;
	hfc_lost_fn on_lost;
	void *ctx;
	uint8_t *rxbuf;
};

static void mark_lost(struct hfc *c)
{
	if (atomic_exchange(&c->lost, true))
		return;
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->on_lost)
		c->on_lost(c->ctx);
}

static void deliver(struct hfc *c, const uint8_t *buf, size_t n, int *fds, int nfds)
{
	const struct proto_hdr *h = msg_hdr(buf);
	struct call *call;

	pthread_mutex_lock(&c->lock);
	for (call = c->calls; call; call = call->next) {
		if (call->seq == h->seq && !call->done)
			break;
	}
	if (!call) {
		pthread_mutex_unlock(&c->lock);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		/* A reply nobody waits for any more (timed out). An OPEN that succeeded late holds
		 * a handle in the daemon: give it back. */
		if (h->type == (PROTO_OPEN | PROTO_REPLY) && h->status == 0 &&
		    h->len >= sizeof(struct proto_open_reply)) {
			struct proto_open_reply rep;
			struct proto_close pc = { 0 };

			memcpy(&rep, msg_payload(buf), sizeof(rep));
			pc.handle = rep.handle;
			msg_send(c->sock, PROTO_CLOSE, 0, 0, 0, &pc, sizeof(pc), NULL, 0,
				 MSG_DONTWAIT);
		}
		return;
	}
	if (call->len + h->len > REPLY_MAX) {
		call->overflow = true;
	} else if (h->len) {
		if (call->len + h->len > call->cap) {
			size_t cap = call->len + h->len;
			uint8_t *p = realloc(call->data, cap);

			if (!p) {
				call->overflow = true;
			} else {
				call->data = p;
				call->cap = cap;
			}
		}
		if (!call->overflow) {
			memcpy(call->data + call->len, msg_payload(buf), h->len);
			call->len += h->len;
		}
	}
	for (int i = 0; i < nfds; i++) {
		if (call->nfds < MSG_MAX_FDS)
			call->fds[call->nfds++] = fds[i];
		else
			close(fds[i]);
	}
	if (!(h->flags & PROTO_F_MORE)) {
		call->status = h->status;
		call->done = true;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	(void)n;
}

static void drain_ring(struct hfc *c)
{
	struct ring_entry e;
	uint64_t v;
	int rc;

	if (read(c->comp_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("completion eventfd: %s", strerror(errno));
	while ((rc = ring_pop(c->ring, &e)) == 1) {
		if (c->on_complete)
			c->on_complete(c->ctx, &e);
	}
	if (rc < 0) {
		log_error("the daemon's ring is corrupt; dropping the connection");
		shutdown(c->sock, SHUT_RDWR);
	}
}

static void *rx_main(void *arg)
{
	struct hfc *c = arg;

	for (;;) {
		struct pollfd p[3] = { { c->sock, POLLIN, 0 },
				       { c->wake[0], POLLIN, 0 },
				       { -1, POLLIN, 0 } };
		int n;

		if (c->ring)
			p[2].fd = c->comp_efd;
		n = poll(p, 3, -1);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents) {
			char cmd = 'q';

			if (read(c->wake[0], &cmd, 1) != 1 || cmd == 'q')
				break;
			continue; /* 'k': the ring was attached: poll it too */
		}
		if (p[2].revents & POLLIN)
			drain_ring(c);
		if (p[0].revents) {
			int fds[MSG_MAX_FDS], nfds = 0;
			int rc = msg_recv(c->sock, c->rxbuf, PROTO_MSG_MAX, fds, MSG_MAX_FDS, &nfds,
					  MSG_DONTWAIT);

			if (rc == -EAGAIN)
				continue;
			if (rc <= 0) {
				if (c->ring)
					drain_ring(c); /* completions posted before the end count */
				mark_lost(c);
				break;
			}
			if (!(msg_hdr(c->rxbuf)->type & PROTO_REPLY)) {
				for (int i = 0; i < nfds; i++)
					close(fds[i]);
				continue;
			}
			deliver(c, c->rxbuf, (size_t)rc, fds, nfds);
		}
	}
	return NULL;
}

/* Whether a uid may serve this process: root, or ourselves. */
static bool trusted_uid(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* The socket's directory: owned by root or us, writable by nobody else (but a root-owned sticky
 * directory such as /tmp). 0, or -EPERM with the reason in why. */
static int check_socket_dir(const char *socket_path, char *why, size_t whysz)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(socket_path, '/');
	struct stat st;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == socket_path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - socket_path), socket_path);
	if (stat(dir, &st) < 0)
		return -errno;
	if (!trusted_uid(st.st_uid)) {
		snprintf(why, whysz,
			 "the daemon's socket directory %s belongs to uid %u, neither root nor you "
			 "(uid %u): refusing to trust whoever listens there",
			 dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_uid == 0 && (st.st_mode & S_ISVTX))) {
		snprintf(
			why, whysz,
			"the daemon's socket directory %s (owner uid %u, mode %04o) is writable by "
			"others: refusing to trust whoever listens there",
			dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* The process that accepted our connection: root or us. */
static int check_peer(int sock, const char *socket_path, char *why, size_t whysz)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	if (!trusted_uid(cr.uid)) {
		snprintf(
			why, whysz,
			"the process listening on %s (pid %d) runs as uid %u, neither root nor you "
			"(uid %u): refusing to trust it",
			socket_path, (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

int hfc_connect(const char *socket_path, struct hfc **out)
{
	char why[8];

	return hfc_connect_checked(socket_path, out, why, sizeof(why));
}

int hfc_connect_checked(const char *socket_path, struct hfc **out, char *why, size_t whysz)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hfc *c;
	int rc;

	*out = NULL;
	if (whysz)
		why[0] = '\0';
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	rc = check_socket_dir(socket_path, why, whysz);
	if (rc)
		return rc;
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = c->wake[0] = c->wake[1] = c->sub_efd = c->comp_efd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->sub_lock, NULL);
	c->rxbuf = malloc(PROTO_MSG_MAX);
	if (!c->rxbuf) {
		rc = -ENOMEM;
		goto fail;
	}
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0 || pipe2(c->wake, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = check_peer(c->sock, socket_path, why, whysz);
	if (rc)
		goto fail;
	rc = -pthread_create(&c->rx, NULL, rx_main, c);
	if (rc)
		goto fail;
	c->rx_started = true;
	*out = c;
	return 0;
fail:
	hfc_close(c);
	return rc;
}

void hfc_close(struct hfc *c)
{
	if (!c)
		return;
	if (c->rx_started) {
		char x = 'q';

		c->on_lost = NULL;
		if (write(c->wake[1], &x, 1) < 0)
			log_debug("wake pipe: %s", strerror(errno));
		pthread_join(c->rx, NULL);
	}
	if (c->sock >= 0)
		close(c->sock);
	for (int i = 0; i < 2; i++) {
		if (c->wake[i] >= 0)
			close(c->wake[i]);
	}
	if (c->sub_efd >= 0)
		close(c->sub_efd);
	if (c->comp_efd >= 0)
		close(c->comp_efd);
	ring_free(c->ring);
	free(c->rxbuf);
	free(c);
}

void hfc_publish_stats(struct hfc *c, const struct ring_mount_stats *s)
{
	if (c->ring && !atomic_load(&c->lost))
		ring_publish_stats(c->ring, s);
}

bool hfc_alive(struct hfc *c)
{
	return !atomic_load(&c->lost);
}

static int call_fds(struct hfc *c, uint16_t type, const void *payload, size_t len,
		    const int *send_fds, int nsend, int timeout_ms, int *status, void *reply,
		    size_t reply_max, size_t *reply_len, int *fds, int max_fds, int *nfds);

int hfc_call(struct hfc *c, uint16_t type, const void *payload, size_t len, int timeout_ms,
	     int *status, void *reply, size_t reply_max, size_t *reply_len, int *fds, int max_fds,
	     int *nfds)
{
	return call_fds(c, type, payload, len, NULL, 0, timeout_ms, status, reply, reply_max,
			reply_len, fds, max_fds, nfds);
}

static int call_fds(struct hfc *c, uint16_t type, const void *payload, size_t len,
		    const int *send_fds, int nsend, int timeout_ms, int *status, void *reply,
		    size_t reply_max, size_t *reply_len, int *fds, int max_fds, int *nfds)
{
	struct call call = { 0 };
	struct timespec dl;
	int rc = 0;

	if (nfds)
		*nfds = 0;
	if (reply_len)
		*reply_len = 0;
	if (atomic_load(&c->lost))
		return -ENOTCONN;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	call.seq = ++c->next_seq;
	call.next = c->calls;
	c->calls = &call;
	pthread_mutex_unlock(&c->lock);
	rc = msg_send(c->sock, type, 0, call.seq, 0, payload, len, send_fds, nsend, 0);
	pthread_mutex_lock(&c->lock);
	while (!rc && !call.done && !atomic_load(&c->lost)) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	for (struct call **pp = &c->calls; *pp; pp = &(*pp)->next) {
		if (*pp == &call) {
			*pp = call.next;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!rc && !call.done)
		rc = -ENOTCONN;
	if (rc == -EPIPE || rc == -ECONNRESET)
		rc = -ENOTCONN;
	if (!rc && call.overflow)
		rc = -EMSGSIZE;
	if (!rc && reply_len)
		*reply_len = call.len;
	if (!rc && call.len > reply_max)
		rc = -EMSGSIZE;
	if (!rc) {
		if (call.len)
			memcpy(reply, call.data, call.len);
		*status = call.status;
	}
	for (int i = 0; i < call.nfds; i++) {
		if (!rc && fds && i < max_fds) {
			fds[i] = call.fds[i];
			(*nfds)++;
		} else {
			close(call.fds[i]);
		}
	}
	free(call.data);
	return rc;
}

int hfc_register(struct hfc *c, const struct hfc_register *r, int timeout_ms,
		 struct proto_register_reply *reply)
{
	struct proto_register *reg = calloc(1, sizeof(*reg));
	int fds[3], nfds = 0, status = 0, rc;
	size_t len = 0;

	if (!reg)
		return -ENOMEM;
	reg->version = PROTO_VERSION;
	reg->flags = (r->anonymous ? PROTO_REG_ANONYMOUS : 0) |
		     (r->started_daemon ? PROTO_REG_STARTED : 0);
	reg->metadata_ttl = r->metadata_ttl;
	reg->neg_ttl = (uint32_t)(r->neg_ttl < 0 ? 0 : r->neg_ttl);
	if (strlen(r->url) >= sizeof(reg->url) ||
	    (r->endpoint && strlen(r->endpoint) >= sizeof(reg->endpoint)) ||
	    (r->region && strlen(r->region) >= sizeof(reg->region))) {
		free(reg);
		return -ENAMETOOLONG;
	}
	snprintf(reg->url, sizeof(reg->url), "%s", r->url);
	snprintf(reg->endpoint, sizeof(reg->endpoint), "%s", r->endpoint ? r->endpoint : "");
	snprintf(reg->region, sizeof(reg->region), "%s", r->region ? r->region : "");
	snprintf(reg->mountpoint, sizeof(reg->mountpoint), "%s",
		 r->mountpoint ? r->mountpoint : "");
	c->on_complete = r->on_complete;
	c->on_lost = r->on_lost;
	c->ctx = r->ctx;
	rc = hfc_call(c, PROTO_REGISTER, reg, sizeof(*reg), timeout_ms, &status, reply,
		      sizeof(*reply), &len, fds, 3, &nfds);
	free(reg);
	if (rc)
		goto out_fds;
	if (status) {
		rc = status;
		goto out_fds;
	}
	if (len != sizeof(*reply) || nfds != 3) {
		rc = -EPROTO;
		goto out_fds;
	}
	rc = ring_attach(fds[0], RING_ROLE_MOUNT, &c->ring);
	close(fds[0]);
	nfds = 0;
	if (rc) {
		close(fds[1]);
		close(fds[2]);
		return rc;
	}
	c->sub_efd = fds[1];
	c->comp_efd = fds[2];
	/* Tell the receive thread to poll comp_efd from now on. */
	{
		uint64_t one = 1;

		if (write(c->comp_efd, &one, sizeof(one)) < 0 || write(c->wake[1], "k", 1) != 1)
			log_debug("eventfd: %s", strerror(errno));
	}
	return 0;
out_fds:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return rc;
}

int hfc_submit(struct hfc *c, const struct ring_entry *e)
{
	uint64_t one = 1;
	int rc;

	if (atomic_load(&c->lost) || !c->ring)
		return -ENOTCONN;
	pthread_mutex_lock(&c->sub_lock);
	rc = ring_push(c->ring, e);
	pthread_mutex_unlock(&c->sub_lock);
	if (rc == 0 && write(c->sub_efd, &one, sizeof(one)) < 0)
		log_debug("eventfd: %s", strerror(errno));
	return rc;
}

/* Builds header + path requests. */
static void *path_msg(const void *fixed, size_t fixed_len, const char *path, size_t *len)
{
	size_t plen = strlen(path);
	uint8_t *m;

	if (plen >= PROTO_PATH_MAX)
		return NULL;
	m = malloc(fixed_len + plen);
	if (!m)
		return NULL;
	memcpy(m, fixed, fixed_len);
	memcpy(m + fixed_len, path, plen);
	*len = fixed_len + plen;
	return m;
}

int hfc_lookup(struct hfc *c, const char *path, int timeout_ms, struct proto_attr *out)
{
	struct proto_path pp = { .path_len = (uint32_t)strlen(path) };
	size_t len, rlen;
	int status = 0, rc;
	void *m = path_msg(&pp, sizeof(pp), path, &len);

	if (!m)
		return strlen(path) >= PROTO_PATH_MAX ? -ENAMETOOLONG : -ENOMEM;
	rc = hfc_call(c, PROTO_LOOKUP, m, len, timeout_ms, &status, out, sizeof(*out), &rlen, NULL,
		      0, NULL);
	free(m);
	if (rc)
		return rc;
	if (status)
		return status;
	if (rlen != sizeof(*out) || (out->type != PROTO_FT_FILE && out->type != PROTO_FT_DIR))
		return -EPROTO;
	out->version[sizeof(out->version) - 1] = '\0';
	return 0;
}

int hfc_list(struct hfc *c, const char *path, uint64_t cursor, int timeout_ms,
	     int (*fn)(void *ctx, const struct proto_attr *a, const char *name, size_t len),
	     void *ctx, uint64_t *next_cursor)
{
	struct proto_list pl = { .cursor = cursor, .path_len = (uint32_t)strlen(path) };
	struct proto_list_reply rep;
	size_t len, rlen, off;
	int status = 0, rc;
	uint8_t *buf;
	void *m = path_msg(&pl, sizeof(pl), path, &len);

	*next_cursor = 0;
	if (!m)
		return -ENOMEM;
	buf = malloc(PROTO_MSG_MAX);
	if (!buf) {
		free(m);
		return -ENOMEM;
	}
	rc = hfc_call(c, PROTO_LIST, m, len, timeout_ms, &status, buf, PROTO_MSG_MAX, &rlen, NULL,
		      0, NULL);
	free(m);
	if (!rc && status)
		rc = status;
	if (!rc && rlen < sizeof(rep))
		rc = -EPROTO;
	if (rc)
		goto out;
	memcpy(&rep, buf, sizeof(rep));
	off = sizeof(rep);
	for (uint32_t i = 0; i < rep.count && !rc; i++) {
		struct proto_dirent pd;
		size_t rec;

		if (rlen - off < sizeof(pd)) {
			rc = -EPROTO;
			break;
		}
		memcpy(&pd, buf + off, sizeof(pd));
		rec = sizeof(pd) + (((size_t)pd.name_len + 7) & ~(size_t)7);
		if (pd.name_len == 0 || rlen - off < rec) {
			rc = -EPROTO;
			break;
		}
		pd.attr.version[sizeof(pd.attr.version) - 1] = '\0';
		rc = fn(ctx, &pd.attr, (const char *)buf + off + sizeof(pd), pd.name_len);
		off += rec;
	}
	if (!rc)
		*next_cursor = rep.next_cursor;
out:
	free(buf);
	return rc;
}

int hfc_open(struct hfc *c, const char *path, const char *version, uint64_t size, uint32_t flags,
	     int timeout_ms, struct proto_open_reply *rep, uint8_t **bitmap, int *fd)
{
	struct proto_open po = { .size = size, .path_len = (uint32_t)strlen(path), .flags = flags };
	size_t len, rlen, maplen;
	int status = 0, nfds = 0, rc;
	uint8_t *buf = NULL;
	void *m;

	*fd = -1;
	*bitmap = NULL;
	if (strlen(version) >= sizeof(po.version))
		return -EINVAL;
	memcpy(po.version, version, strlen(version) + 1);
	m = path_msg(&po, sizeof(po), path, &len);
	buf = malloc(PROTO_MSG_MAX);
	if (!m || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = hfc_call(c, PROTO_OPEN, m, len, timeout_ms, &status, buf, PROTO_MSG_MAX, &rlen, fd, 1,
		      &nfds);
	if (!rc && status)
		rc = status;
	if (!rc && (nfds != 1 || rlen < sizeof(*rep)))
		rc = -EPROTO;
	if (rc)
		goto out_fd;
	memcpy(rep, buf, sizeof(*rep));
	maplen = ((size_t)rep->nblocks + 7) / 8;
	if (rep->size != size ||
	    rep->nblocks != (uint32_t)((size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT) ||
	    rlen != sizeof(*rep) + maplen) {
		rc = -EPROTO;
		goto out_fd;
	}
	*bitmap = calloc(1, maplen + 1);
	if (!*bitmap) {
		rc = -ENOMEM;
		goto out_fd;
	}
	memcpy(*bitmap, buf + sizeof(*rep), maplen);
	goto out;
out_fd:
	if (nfds && *fd >= 0)
		close(*fd);
	*fd = -1;
out:
	free(m);
	free(buf);
	return rc;
}

int hfc_close_handle(struct hfc *c, uint32_t handle, int timeout_ms)
{
	struct proto_close pc = { .handle = handle };
	int status = 0, rc;

	rc = hfc_call(c, PROTO_CLOSE, &pc, sizeof(pc), timeout_ms, &status, NULL, 0, NULL, NULL, 0,
		      NULL);
	return rc ? rc : status;
}

int hfc_backing(struct hfc *c, uint32_t op, uint32_t handle, int32_t id, int fuse_fd,
		int timeout_ms)
{
	struct proto_backing pb = { .op = op, .handle = handle, .backing_id = id }, rep;
	size_t rlen = 0;
	int status = 0, rc;

	rc = call_fds(c, PROTO_BACKING, &pb, sizeof(pb), &fuse_fd, 1, timeout_ms, &status, &rep,
		      sizeof(rep), &rlen, NULL, 0, NULL);
	if (!rc && status)
		rc = status;
	if (!rc && op == PROTO_BACKING_OPEN)
		rc = rlen == sizeof(rep) && rep.backing_id > 0 ? rep.backing_id : -EPROTO;
	return rc;
}

int hfc_ctl(struct hfc *c, const char *json, int timeout_ms, int *status, char **reply)
{
	size_t rlen = 0;
	char *buf = malloc(REPLY_MAX + 1);
	int rc;

	*reply = NULL;
	if (!buf)
		return -ENOMEM;
	rc = hfc_call(c, PROTO_CTL, json, strlen(json), timeout_ms, status, buf, REPLY_MAX, &rlen,
		      NULL, 0, NULL);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[rlen] = '\0';
	*reply = buf;
	return 0;
}
