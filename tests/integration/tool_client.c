/* tool_client: registers with hoardfs-cached like a mount does (no FUSE) and reads through the
 * ring, for daemon integration tests. Also plays misbehaving mounts.
 *
 *   tool_client --socket S [--endpoint URL] [--anonymous] [--ttl N] [--timeout-ms N] URL CMD ...
 *     ls PATH | stat PATH | cat PATH [--out F] [--req-size N] [--depth D] [--hold-ms N]
 *     read PATH OFF LEN [--out F] | hold PATH MS | stall PATH | abandon PATH | ctl JSON
 *     hostile PATH | scribble PATH sq-tail|cq-head | garbage PATH | fuzz PATH SEED N
 *
 *   hold     opens PATH and keeps it open for MS ms (SIGUSR1 ends the wait early), then closes
 *            it and prints "closed"
 *   stall    stops draining completions (the receive thread blocks) and keeps submitting FETCHes
 *            of PATH until the daemon drops the mount (checked from a second connection);
 *            prints "disconnected after N ms (M entries)" or "still-connected"
 *   abandon  submits FETCHes for all of PATH and exits at once
 *   hostile  submits invalid ring entries (unknown ops, handles never opened, ranges past the
 *            end, zero and huge lengths), checks each gets ERROR with the right errno and that
 *            valid requests still work, then sends invalid entries until the daemon drops it
 *   scribble corrupts the shared ring header (an impossible submission tail, or completion head)
 *            and checks that the daemon drops the mount
 *   garbage  sends malformed socket messages on raw connections (wrong magic or length, unknown
 *            types, garbage REGISTERs, descriptors the message does not call for, oversized
 *            packets, a reply flood it never reads) and checks each answer or disconnect
 *   fuzz     randomized, reproducible (SEED) misbehaviour: N socket messages built from valid
 *            ones by random mutations (bit flips, boundary values in any field, truncation,
 *            extension, wrong type or length, descriptors attached), then N ring entries with
 *            random ops, handles, ranges and flags, reconnecting whenever the daemon drops it.
 *            Checks that each message gets the reply to its own seq or a disconnect within
 *            15 s, that each FETCH/PREFETCH gets exactly one final completion (none for ids
 *            never submitted or already answered), that no attached descriptor is kept, and
 *            that the daemon still answers afterwards
 * Checking commands print one "ok: ..." line per check and exit 1 when one fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/client.h"
#include "common/msg.h"
#include "common/num.h"
#include "common/ring.h"

#define MAX_DEPTH 256

struct state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done[MAX_DEPTH]; /* by slot: 0 waiting, 1 present, <0 error */
	bool stall;
	bool lost;
};

static struct state st = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, false, false
};

static void on_complete(void *ctx, const struct ring_entry *e)
{
	pthread_mutex_lock(&st.lock);
	while (st.stall) /* a mount that stops draining its completions */
		pthread_cond_wait(&st.cond, &st.lock);
	if (e->id < MAX_DEPTH)
		st.done[e->id] = e->op == RING_PRESENT ? 1 : (e->status ? e->status : -EIO);
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static void on_lost(void *ctx)
{
	pthread_mutex_lock(&st.lock);
	st.lost = true;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

/* Reports an error and exits 1 (from here, so that what main() holds is still reachable and a
 * leak checker does not turn the status into its own). */
static int die(const char *what, int rc)
{
	fprintf(stderr, "tool_client: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static int ls_fn(void *ctx, const struct proto_attr *a, const char *name, size_t len)
{
	if (a->type == PROTO_FT_DIR)
		printf("dir\t%.*s\n", (int)len, name);
	else
		printf("file\t%" PRIu64 "\t%s\t%.*s\n", a->size, a->version, (int)len, name);
	return 0;
}

static bool blocks_present(const uint8_t *map, uint64_t off, uint64_t len)
{
	for (uint64_t b = off >> PROTO_BLOCK_SHIFT; b <= (off + len - 1) >> PROTO_BLOCK_SHIFT;
	     b++) {
		if (!(map[b >> 3] & (1u << (b & 7))))
			return false;
	}
	return true;
}

/* Reads [off, off+len) of an open object through the ring with `depth` requests in flight. */
static int read_range(struct hfc *c, const struct proto_open_reply *rep, uint8_t *map, int fd,
		      uint64_t off, uint64_t len, uint64_t req, int depth, int out, int timeout_ms)
{
	uint64_t next = off, end = off + len, slot_off[MAX_DEPTH] = { 0 };
	int head = 0, inflight = 0, rc;
	char *buf = malloc(req);

	if (!buf)
		return -ENOMEM;
	while (next < end || inflight) {
		while (next < end && inflight < depth) {
			int slot = (head + inflight) % depth;
			uint64_t n = end - next < req ? end - next : req;
			struct ring_entry e = { .id = (uint64_t)slot,
						.off = next,
						.len = n,
						.handle = rep->handle,
						.op = RING_FETCH };

			pthread_mutex_lock(&st.lock);
			st.done[slot] = blocks_present(map, next, n) ? 1 : 0;
			pthread_mutex_unlock(&st.lock);
			if (!st.done[slot]) {
				while ((rc = hfc_submit(c, &e)) == -EAGAIN)
					usleep(1000);
				if (rc)
					goto out;
			}
			slot_off[slot] = next;
			next += n;
			inflight++;
		}
		{
			struct timespec dl;
			uint64_t o = slot_off[head], n = end - o < req ? end - o : req;

			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += timeout_ms / 1000;
			pthread_mutex_lock(&st.lock);
			while (st.done[head] == 0 && !st.lost) {
				if (pthread_cond_timedwait(&st.cond, &st.lock, &dl) == ETIMEDOUT)
					break;
			}
			rc = st.done[head] == 1	 ? 0
			     : st.done[head] < 0 ? st.done[head]
						 : -ETIMEDOUT;
			if (st.lost && st.done[head] != 1)
				rc = -ENOTCONN;
			pthread_mutex_unlock(&st.lock);
			if (rc)
				goto out;
			for (uint64_t b = o >> PROTO_BLOCK_SHIFT;
			     b <= (o + n - 1) >> PROTO_BLOCK_SHIFT; b++)
				map[b >> 3] |= (uint8_t)(1u << (b & 7));
			for (uint64_t got = 0; got < n;) {
				ssize_t r = pread(fd, buf + got, n - got, (off_t)(o + got));

				if (r <= 0) {
					rc = r < 0 ? -errno : -EIO;
					goto out;
				}
				got += (uint64_t)r;
			}
			if (out >= 0) {
				for (uint64_t w = 0; w < n;) {
					ssize_t r = write(out, buf + w, n - w);

					if (r <= 0) {
						rc = -errno;
						goto out;
					}
					w += (uint64_t)r;
				}
			}
			head = (head + 1) % depth;
			inflight--;
		}
	}
	rc = 0;
out:
	free(buf);
	(void)rep;
	return rc;
}

/* ---- misbehaving mounts ---- */

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int failures;

static void check(bool ok, const char *what, long got, long want)
{
	if (ok) {
		printf("ok: %s\n", what);
	} else {
		printf("FAIL: %s: got %ld, want %ld\n", what, got, want);
		failures++;
	}
	fflush(stdout);
}

/* Submits e (id = slot) and waits up to ms for its completion: 1 PRESENT, <0 ERROR status,
 * 0 none in time. */
static int submit_wait(struct hfc *c, struct ring_entry e, int slot, int ms)
{
	struct timespec dl;
	int rc;

	e.id = (uint64_t)slot;
	pthread_mutex_lock(&st.lock);
	st.done[slot] = 0;
	pthread_mutex_unlock(&st.lock);
	while ((rc = hfc_submit(c, &e)) == -EAGAIN)
		usleep(1000);
	if (rc)
		return rc == -ENOTCONN ? -ENOTCONN : rc;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&st.lock);
	while (st.done[slot] == 0 && !st.lost &&
	       pthread_cond_timedwait(&st.cond, &st.lock, &dl) != ETIMEDOUT)
		;
	rc = st.done[slot];
	pthread_mutex_unlock(&st.lock);
	return rc;
}

/* Waits up to ms for the connection to be lost; returns the ms it took, or -1. */
static long wait_lost(struct hfc *c, int ms)
{
	uint64_t t0 = now_ms();

	while (hfc_alive(c)) {
		if (now_ms() - t0 > (uint64_t)ms)
			return -1;
		usleep(2000);
	}
	return (long)(now_ms() - t0);
}

static int cmd_hostile(struct hfc *c, const struct proto_open_reply *rep, int timeout_ms)
{
	const uint64_t size = rep->size, big = 64ull << 20;
	const uint32_t h = rep->handle;
	struct probe {
		const char *what;
		struct ring_entry e;
		int want;
	} probes[] = {
		{ "unknown op 99", { .off = 0, .len = 1, .handle = h, .op = 99 }, -EINVAL },
		{ "op 0", { .off = 0, .len = 1, .handle = h, .op = 0 }, -EINVAL },
		{ "a completion op (PRESENT) submitted",
		  { .off = 0, .len = 1, .handle = h, .op = RING_PRESENT },
		  -EINVAL },
		{ "op 0xffff", { .off = 0, .len = 1, .handle = h, .op = 0xffff }, -EINVAL },
		{ "handle never opened",
		  { .off = 0, .len = 1, .handle = h + 1000, .op = RING_FETCH },
		  -EBADF },
		{ "handle 0", { .off = 0, .len = 1, .handle = 0, .op = RING_FETCH }, -EBADF },
		{ "handle 0xffffffff",
		  { .off = 0, .len = 1, .handle = 0xffffffffu, .op = RING_FETCH },
		  -EBADF },
		{ "PREFETCH on a handle never opened",
		  { .off = 0, .len = 1, .handle = h + 7, .op = RING_PREFETCH },
		  -EBADF },
		{ "range starting at the end",
		  { .off = size, .len = 1, .handle = h, .op = RING_FETCH },
		  -EINVAL },
		{ "range crossing the end",
		  { .off = size - 1, .len = 2, .handle = h, .op = RING_FETCH },
		  -EINVAL },
		{ "offset near 2^64",
		  { .off = UINT64_MAX - 10, .len = 5, .handle = h, .op = RING_FETCH },
		  -EINVAL },
		{ "zero length", { .off = 0, .len = 0, .handle = h, .op = RING_FETCH }, -EINVAL },
		{ "zero length PREFETCH",
		  { .off = 0, .len = 0, .handle = h, .op = RING_PREFETCH },
		  -EINVAL },
		{ "huge length",
		  { .off = 0, .len = UINT64_MAX, .handle = h, .op = RING_FETCH },
		  -EINVAL },
		{ "length wrapping around 2^64",
		  { .off = 4096, .len = UINT64_MAX - 4095, .handle = h, .op = RING_FETCH },
		  -EINVAL },
		{ "huge PREFETCH",
		  { .off = 0, .len = UINT64_MAX, .handle = h, .op = RING_PREFETCH },
		  -EINVAL },
		{ "FETCH longer than 64 MiB",
		  { .off = 0, .len = big + 1, .handle = h, .op = RING_FETCH },
		  size > big ? -EINVAL : -EINVAL },
	};
	int n = (int)(sizeof(probes) / sizeof(probes[0])), slot = 0, rc;
	char what[160];
	long ms;

	for (int i = 0; i < n; i++) {
		rc = submit_wait(c, probes[i].e, slot++, 5000);
		snprintf(what, sizeof(what), "%s -> ERROR %d", probes[i].what, probes[i].want);
		check(rc == probes[i].want, what, rc, probes[i].want);
	}
	/* REVOKE_ACK is not answered; garbage in one must not matter. */
	{
		struct ring_entry e = { .id = 9999,
					.off = UINT64_MAX,
					.len = UINT64_MAX,
					.handle = 0xdeadbeef,
					.op = RING_REVOKE_ACK };

		check(hfc_submit(c, &e) == 0, "REVOKE_ACK with garbage fields submitted", 0, 0);
	}
	/* Valid requests still work, also with garbage in the fields the daemon ignores. */
	{
		struct ring_entry e = { .off = 0, .len = 1, .handle = h, .op = RING_FETCH };

		rc = submit_wait(c, e, slot++, timeout_ms);
		check(rc == 1, "a valid FETCH after the invalid ones -> PRESENT", rc, 1);
		e.flags = 0xffff;
		e.status = -1;
		memset(e.reserved, 0xff, sizeof(e.reserved));
		e.off = size - 1;
		rc = submit_wait(c, e, slot++, timeout_ms);
		check(rc == 1,
		      "a valid FETCH of the last byte, garbage in flags/reserved -> PRESENT", rc,
		      1);
	}
	/* A closed handle is not usable any more. */
	{
		struct ring_entry e = { .off = 0, .len = 1, .handle = h, .op = RING_FETCH };

		rc = hfc_close_handle(c, h, timeout_ms);
		check(rc == 0, "CLOSE of the handle", rc, 0);
		rc = hfc_close_handle(c, h, timeout_ms);
		check(rc == -EBADF, "second CLOSE of the handle -> EBADF", rc, -EBADF);
		rc = submit_wait(c, e, slot++, 5000);
		check(rc == -EBADF, "FETCH on the closed handle -> ERROR -EBADF", rc, -EBADF);
	}
	/* Past the bad-entry limit the daemon drops the mount. */
	{
		struct ring_entry e = { .off = 0, .len = 1, .handle = 0, .op = 77 };
		int sent = 0;

		for (int i = 0; i < 1000 && hfc_alive(c); i++) {
			e.id = 200;
			if (hfc_submit(c, &e) == 0)
				sent++;
			else
				usleep(1000);
		}
		ms = wait_lost(c, 10000);
		printf("dropped after %d more invalid entries (%ld ms)\n", sent, ms);
		check(ms >= 0, "a mount that keeps sending invalid entries is disconnected", ms, 0);
	}
	return failures ? 1 : 0;
}

/* The ring's shared header in this process: the mapping of the daemon's memfd. */
static uint8_t *find_ring(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	uint8_t *p = NULL;

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "memfd:hoardfs-ring")) {
			p = (uint8_t *)(uintptr_t)strtoull(line, NULL, 16);
			break;
		}
	}
	fclose(f);
	return p;
}

/* Writes 1 to every eventfd of this process (the ring's submit and complete eventfds). */
static void kick_eventfds(void)
{
	char path[64], target[128];
	uint64_t one = 1;

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[eventfd]") == 0 && write(fd, &one, sizeof(one)) < 0)
			perror("eventfd");
	}
}

/* ring_shared layout (common/ring.c): sq.head at 64, sq.tail at 128, cq.head at 192, cq.tail
 * at 256; free-running 32-bit indices. */
#define SQ_HEAD 64
#define SQ_TAIL 128
#define CQ_HEAD 192
#define CQ_TAIL 256

static int cmd_scribble(struct hfc *c, const struct proto_open_reply *rep,
			const struct proto_register_reply *rr, const char *where, int timeout_ms)
{
	struct ring_entry e = { .off = 0, .len = 1, .handle = rep->handle, .op = RING_FETCH };
	uint8_t *ring = find_ring();
	_Atomic uint32_t *idx;
	int rc;
	long ms;

	if (!ring) {
		fprintf(stderr, "tool_client: the ring mapping was not found\n");
		return 1;
	}
	rc = submit_wait(c, e, 0, timeout_ms);
	check(rc == 1, "a valid FETCH before the scribble -> PRESENT", rc, 1);
	if (strcmp(where, "sq-tail") == 0) {
		_Atomic uint32_t *head = (_Atomic uint32_t *)(ring + SQ_HEAD);

		idx = (_Atomic uint32_t *)(ring + SQ_TAIL);
		atomic_store(idx, atomic_load(head) + 2 * rr->ring_entries + 7);
		kick_eventfds();
	} else if (strcmp(where, "cq-head") == 0) {
		_Atomic uint32_t *tail = (_Atomic uint32_t *)(ring + CQ_TAIL);

		idx = (_Atomic uint32_t *)(ring + CQ_HEAD);
		atomic_store(idx, atomic_load(tail) + 12345);
		/* The daemon notices when it next pushes a completion. */
		e.id = 1;
		hfc_submit(c, &e);
	} else {
		fprintf(stderr, "tool_client: scribble sq-tail|cq-head\n");
		return 2;
	}
	ms = wait_lost(c, 10000);
	printf("%s after %ld ms\n", ms >= 0 ? "disconnected" : "still-connected", ms);
	check(ms >= 0, "the daemon drops a mount whose ring header is impossible", ms, 0);
	return failures ? 1 : 0;
}

/* Whether mount `id` is still listed by the daemon (asked on a second connection). */
static int mount_listed(const char *sock, uint64_t id)
{
	struct hfc *c;
	char *reply = NULL, want[48];
	int status = 0, rc;

	rc = hfc_connect(sock, &c);
	if (rc)
		return rc;
	rc = hfc_ctl(c, "{\"cmd\":\"status\"}", 5000, &status, &reply);
	hfc_close(c);
	if (rc)
		return rc;
	snprintf(want, sizeof(want), "{\"id\":%" PRIu64 ",", id);
	rc = strstr(reply, want) != NULL;
	free(reply);
	return rc;
}

static int cmd_stall(struct hfc *c, const char *sock, const struct proto_open_reply *rep,
		     const struct proto_register_reply *rr, uint64_t req, int timeout_ms)
{
	uint64_t t0 = now_ms(), next_check = 0, sent = 0, off = 0;
	int listed = 1;

	pthread_mutex_lock(&st.lock);
	st.stall = true;
	pthread_mutex_unlock(&st.lock);
	while (now_ms() - t0 < (uint64_t)timeout_ms) {
		struct ring_entry e = { .id = 1000 + sent,
					.off = off,
					.len = rep->size - off < req ? rep->size - off : req,
					.handle = rep->handle,
					.op = RING_FETCH };
		int rc = hfc_submit(c, &e);

		if (rc == 0) {
			sent++;
			off = off + e.len >= rep->size ? 0 : off + e.len;
		} else if (rc == -EAGAIN) {
			usleep(1000);
		} else {
			break;
		}
		if (now_ms() >= next_check) {
			listed = mount_listed(sock, rr->mount_id);
			if (listed <= 0)
				break;
			next_check = now_ms() + 50;
		}
	}
	printf("%s after %" PRIu64 " ms (%" PRIu64 " entries)\n",
	       listed == 0 ? "disconnected" : "still-connected", now_ms() - t0, sent);
	fflush(stdout);
	_exit(listed == 0 ? 0 : 1); /* the receive thread is blocked for good */
}

/* ---- raw socket messages ---- */

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), big = 1 << 20;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	return fd;
}

/* Sends raw bytes (anything, framing included) with optional descriptors. */
static int raw_send(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 32)];
	} cbuf;
	struct iovec v = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* A well-formed request: header + payload. */
static int raw_req(int fd, uint16_t type, uint32_t seq, const void *p, size_t len, const int *fds,
		   int nfds)
{
	uint8_t *buf = malloc(sizeof(struct proto_hdr) + len);
	struct proto_hdr h = {
		.magic = PROTO_MAGIC, .type = type, .len = (uint32_t)len, .seq = seq
	};
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), p, len);
	rc = raw_send(fd, buf, sizeof(h) + len, fds, nfds);
	free(buf);
	return rc;
}

/* Receives one reply within ms: 1 with *h filled, 0 = the daemon closed the connection,
 * -ETIMEDOUT, or -errno. Received descriptors are closed. */
static int raw_reply(int fd, struct proto_hdr *h, int ms)
{
	static uint8_t buf[PROTO_MSG_MAX];
	struct pollfd p = { fd, POLLIN, 0 };
	int fds[MSG_MAX_FDS], nfds = 0, rc;

	rc = poll(&p, 1, ms);
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	rc = msg_recv(fd, buf, sizeof(buf), fds, MSG_MAX_FDS, &nfds, 0);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (rc == -ECONNRESET || rc == -EPIPE)
		return 0;
	if (rc <= 0)
		return rc;
	memcpy(h, buf, sizeof(*h));
	return 1;
}

/* Expects the reply to `seq` with status `want` (any negative status when want is 1). */
static void expect_status(int fd, uint32_t seq, int want, const char *what)
{
	struct proto_hdr h;
	int rc = raw_reply(fd, &h, 10000);

	if (rc != 1) {
		check(false, what, rc, want);
		return;
	}
	if (h.seq != seq) {
		printf("FAIL: %s: the reply is to request %u, not %u\n", what, h.seq, seq);
		failures++;
	} else if (want == 1) {
		check(h.status < 0, what, h.status, -1);
	} else {
		check(h.status == want, what, h.status, want);
	}
}

/* Expects the daemon to close the connection (replies before the close are skipped). */
static void expect_dropped(int fd, const char *what)
{
	struct proto_hdr h;
	int rc, n = 0;

	while ((rc = raw_reply(fd, &h, 10000)) == 1 && n++ < 200000)
		;
	check(rc == 0, what, rc, 0);
}

/* Whether the daemon closed its copies of a pipe's write end (sent to it) within ms. */
static bool pipe_released(int rd, int ms)
{
	struct pollfd p = { rd, POLLIN, 0 };
	char c;

	return poll(&p, 1, ms) == 1 && read(rd, &c, 1) == 0;
}

static void fill_register(struct proto_register *r, const char *url, const char *endpoint)
{
	memset(r, 0, sizeof(*r));
	r->version = PROTO_VERSION;
	r->metadata_ttl = 60;
	r->neg_ttl = 5;
	snprintf(r->url, sizeof(r->url), "%s", url);
	snprintf(r->endpoint, sizeof(r->endpoint), "%s", endpoint ? endpoint : "");
	snprintf(r->mountpoint, sizeof(r->mountpoint), "(tool_client garbage)");
}

static int cmd_garbage(const char *sock, const char *url, const char *endpoint, const char *path,
		       const struct proto_attr *a)
{
	struct proto_register *reg = calloc(1, sizeof(*reg));
	uint8_t *junk = malloc(300 * 1024);
	struct proto_hdr h = { .magic = PROTO_MAGIC, .type = PROTO_PING, .seq = 1 };
	int fd, p[2];

	if (!reg || !junk)
		return 1;
	for (size_t i = 0; i < 300 * 1024; i++)
		junk[i] = (uint8_t)(i * 2654435761u >> 13);

#define FRESH()                                                       \
	do {                                                          \
		fd = raw_connect(sock);                               \
		if (fd < 0) {                                         \
			check(false, "connect to the daemon", fd, 0); \
			return 1;                                     \
		}                                                     \
	} while (0)

	/* Framing errors: the daemon drops the connection. */
	FRESH();
	h.magic = 0xdeadbeef;
	raw_send(fd, &h, sizeof(h), NULL, 0);
	expect_dropped(fd, "wrong magic -> disconnected");
	close(fd);
	h.magic = PROTO_MAGIC;

	FRESH();
	h.len = 100; /* but no payload */
	raw_send(fd, &h, sizeof(h), NULL, 0);
	expect_dropped(fd, "header len larger than the packet -> disconnected");
	close(fd);

	FRESH();
	h.len = 0;
	memcpy(junk, &h, sizeof(h));
	raw_send(fd, junk, sizeof(h) + 50, NULL, 0);
	expect_dropped(fd, "header len smaller than the packet -> disconnected");
	close(fd);

	FRESH();
	raw_send(fd, &h, 10, NULL, 0);
	expect_dropped(fd, "a 10-byte runt -> disconnected");
	close(fd);

	FRESH();
	h.len = 300 * 1024 - sizeof(h);
	memcpy(junk, &h, sizeof(h));
	check(raw_send(fd, junk, 300 * 1024, NULL, 0) == 0, "a 300 KiB packet sent", 0, 0);
	expect_dropped(fd, "a packet over PROTO_MSG_MAX -> disconnected");
	close(fd);
	h.len = 0;

	FRESH();
	raw_send(fd, "", 0, NULL, 0);
	expect_dropped(fd, "an empty packet -> disconnected");
	close(fd);

	/* Well framed but wrong: answered with an error, the connection stays. */
	FRESH();
	raw_req(fd, 77, 11, NULL, 0, NULL, 0);
	expect_status(fd, 11, -EBADMSG, "unknown type 77 -> EBADMSG");
	raw_req(fd, PROTO_PING | PROTO_REPLY, 12, NULL, 0, NULL, 0);
	expect_status(fd, 12, -EBADMSG, "a reply type sent as a request -> EBADMSG");
	raw_req(fd, 0, 13, NULL, 0, NULL, 0);
	expect_status(fd, 13, -EBADMSG, "type 0 -> EBADMSG");
	raw_req(fd, PROTO_TYPE_MAX + 1, 14, NULL, 0, NULL, 0);
	expect_status(fd, 14, -EBADMSG, "type PROTO_TYPE_MAX+1 -> EBADMSG");
	{
		struct proto_path pp = { .path_len = 1 };
		uint8_t m[sizeof(pp) + 1];

		memcpy(m, &pp, sizeof(pp));
		m[sizeof(pp)] = 'x';
		raw_req(fd, PROTO_LOOKUP, 15, m, sizeof(m), NULL, 0);
		expect_status(fd, 15, -ENOTCONN, "LOOKUP before REGISTER -> ENOTCONN");
	}
	raw_req(fd, PROTO_REGISTER, 16, junk, 100, NULL, 0);
	expect_status(fd, 16, -EINVAL, "REGISTER of the wrong size -> EINVAL");
	memcpy(reg, junk, sizeof(*reg));
	reg->version = 0xdeadbeef;
	raw_req(fd, PROTO_REGISTER, 17, reg, sizeof(*reg), NULL, 0);
	expect_status(fd, 17, -EPROTONOSUPPORT, "REGISTER of another version -> EPROTONOSUPPORT");
	memcpy(reg, junk + 7, sizeof(*reg));
	reg->version = PROTO_VERSION;
	raw_req(fd, PROTO_REGISTER, 18, reg, sizeof(*reg), NULL, 0);
	expect_status(fd, 18, 1, "REGISTER with garbage strings (no NULs) -> an error");
	fill_register(reg, "s3://", endpoint);
	raw_req(fd, PROTO_REGISTER, 19, reg, sizeof(*reg), NULL, 0);
	expect_status(fd, 19, 1, "REGISTER of s3:// (no bucket) -> an error");
	raw_req(fd, PROTO_CTL, 20, "not json at all", 15, NULL, 0);
	expect_status(fd, 20, 1, "CTL with malformed JSON -> an error");
	raw_req(fd, PROTO_CTL, 21, "{\"cmd\":\"no-such-command\"}", 25, NULL, 0);
	expect_status(fd, 21, -ENOSYS, "CTL unknown command -> ENOSYS");
	raw_req(fd, PROTO_CTL, 22, "{", 1, NULL, 0);
	expect_status(fd, 22, -EINVAL, "CTL of 1 byte -> EINVAL");
	raw_req(fd, PROTO_PING, 23, NULL, 0, NULL, 0);
	expect_status(fd, 23, 0, "PING still answered on that connection");

	/* Registered now: requests with bad contents. */
	fill_register(reg, url, endpoint);
	raw_req(fd, PROTO_REGISTER, 30, reg, sizeof(*reg), NULL, 0);
	expect_status(fd, 30, 0, "a valid REGISTER");
	raw_req(fd, PROTO_REGISTER, 31, reg, sizeof(*reg), NULL, 0);
	expect_status(fd, 31, -EALREADY, "a second REGISTER -> EALREADY");
	{
		struct proto_path pp = { .path_len = (uint32_t)strlen(path) };
		uint8_t m[sizeof(pp) + PROTO_PATH_MAX];
		int fds[2];

		memcpy(m, &pp, sizeof(pp));
		memcpy(m + sizeof(pp), path, pp.path_len);
		if (pipe2(p, O_CLOEXEC) < 0)
			return 1;
		fds[0] = fds[1] = p[1];
		raw_req(fd, PROTO_LOOKUP, 32, m, sizeof(pp) + pp.path_len, fds, 2);
		close(p[1]);
		expect_status(fd, 32, 0, "LOOKUP with 2 descriptors attached still answered");
		check(pipe_released(p[0], 5000), "descriptors attached to a LOOKUP closed unread",
		      0, 0);
		close(p[0]);

		pp.path_len = 0xffffffffu;
		memcpy(m, &pp, sizeof(pp));
		raw_req(fd, PROTO_LOOKUP, 33, m, sizeof(pp) + 4, NULL, 0);
		expect_status(fd, 33, -EINVAL, "LOOKUP with path_len 2^32-1 -> EINVAL");
		pp.path_len = 5;
		memcpy(m, &pp, sizeof(pp));
		memcpy(m + sizeof(pp), "../x", 5);
		raw_req(fd, PROTO_LOOKUP, 34, m, sizeof(pp) + 5, NULL, 0);
		expect_status(fd, 34, -EINVAL, "LOOKUP of '../x' -> EINVAL");
		raw_req(fd, PROTO_LOOKUP, 35, m, 3, NULL, 0);
		expect_status(fd, 35, -EINVAL, "LOOKUP shorter than its header -> EINVAL");
	}
	{
		struct proto_list pl = { .cursor = 0, .path_len = 500 };

		raw_req(fd, PROTO_LIST, 36, &pl, sizeof(pl) + 0, NULL, 0);
		expect_status(fd, 36, -EINVAL, "LIST whose path_len exceeds the packet -> EINVAL");
	}
	{
		struct proto_open po = { .size = a->size, .path_len = (uint32_t)strlen(path) };
		uint8_t m[sizeof(po) + PROTO_PATH_MAX];

		memset(po.version, 'v', sizeof(po.version)); /* no NUL */
		memcpy(m, &po, sizeof(po));
		memcpy(m + sizeof(po), path, po.path_len);
		raw_req(fd, PROTO_OPEN, 37, m, sizeof(po) + po.path_len, NULL, 0);
		expect_status(fd, 37, -EINVAL, "OPEN with an unterminated version -> EINVAL");
		snprintf(po.version, sizeof(po.version), "%s", a->version);
		po.size = a->size + 1;
		memcpy(m, &po, sizeof(po));
		raw_req(fd, PROTO_OPEN, 38, m, sizeof(po) + po.path_len, NULL, 0);
		expect_status(fd, 38, -ESTALE, "OPEN with the wrong size -> ESTALE");
		po.size = a->size;
		po.path_len = 0;
		memcpy(m, &po, sizeof(po));
		raw_req(fd, PROTO_OPEN, 39, m, sizeof(po), NULL, 0);
		expect_status(fd, 39, -EINVAL, "OPEN of the root -> EINVAL");
	}
	{
		struct proto_close cl = { .handle = 999 };
		struct proto_bdi b = { .major = 0, .minor = 1, .read_ahead_kb = 0 };

		raw_req(fd, PROTO_CLOSE, 40, &cl, sizeof(cl), NULL, 0);
		expect_status(fd, 40, -EBADF, "CLOSE of a handle never opened -> EBADF");
		raw_req(fd, PROTO_CLOSE, 41, &cl, 3, NULL, 0);
		expect_status(fd, 41, -EINVAL, "CLOSE of 3 bytes -> EINVAL");
		raw_req(fd, PROTO_BDI, 42, &b, sizeof(b), NULL, 0);
		expect_status(fd, 42, -EINVAL, "BDI with read_ahead_kb 0 -> EINVAL");
		b.read_ahead_kb = 4096;
		raw_req(fd, PROTO_BDI, 43, &b, sizeof(b), NULL, 0);
		expect_status(fd, 43, 1, "BDI for a device that is not this mount's -> an error");
	}
	/* More descriptors than the daemon takes: the packet is refused, none kept. */
	{
		int fds[24];

		if (pipe2(p, O_CLOEXEC) < 0)
			return 1;
		for (int i = 0; i < 24; i++)
			fds[i] = p[1];
		raw_req(fd, PROTO_PING, 44, NULL, 0, fds, 24);
		close(p[1]);
		expect_dropped(fd, "a PING carrying 24 descriptors -> disconnected");
		check(pipe_released(p[0], 5000), "none of the 24 descriptors kept", 0, 0);
		close(p[0]);
	}
	close(fd);

	/* A peer that sends requests but never reads the replies is dropped, not waited on. */
	FRESH();
	{
		uint64_t sent = 0, t0 = now_ms();
		struct pollfd pf = { fd, POLLOUT, 0 };

		while (sent < 2000000 && now_ms() - t0 < 20000) {
			struct proto_hdr ph = { .magic = PROTO_MAGIC,
						.type = PROTO_PING,
						.seq = (uint32_t)sent };

			if (send(fd, &ph, sizeof(ph), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				if (errno != EAGAIN)
					break; /* dropped */
				if (poll(&pf, 1, 100) == 0 && sent > 100000)
					break;
				continue;
			}
			sent++;
		}
		printf("sent %" PRIu64 " PINGs without reading a reply\n", sent);
		expect_dropped(fd, "a peer that never reads its replies -> disconnected");
	}
	close(fd);
#undef FRESH
	free(reg);
	free(junk);
	return failures ? 1 : 0;
}

/* ---- randomized fuzzing ---- */

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static const uint64_t interesting[] = {
	0,
	1,
	2,
	3,
	7,
	8,
	0x7f,
	0x80,
	0xff,
	0x100,
	0xfff,
	0x1000,
	0x7fff,
	0x8000,
	0xffff,
	0x10000,
	0x100000,
	0x4000000,
	PROTO_MSG_MAX,
	PROTO_PATH_MAX,
	0x7fffffff,
	0x80000000,
	0xffffffff,
	0x100000000,
	INT64_MAX,
	(uint64_t)INT64_MIN,
	UINT64_MAX - 1,
	UINT64_MAX,
};

static uint64_t rnd_interesting(void)
{
	return interesting[rnd_below(sizeof(interesting) / sizeof(interesting[0]))];
}

/* Applies 0-3 random mutations to buf[0..*len) (capacity cap). */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	int k = (int)rnd_below(4);

	for (int i = 0; i < k; i++) {
		uint64_t v = rnd_interesting();
		size_t n = *len, at = n ? (size_t)rnd_below(n) : 0;

		switch (rnd_below(6)) {
		case 0: /* bit flip */
			if (n)
				buf[at] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1: /* a byte with a boundary value */
			if (n)
				buf[at] = (uint8_t)v;
			break;
		case 2: /* an aligned 32-bit field with a boundary value */
			if (n >= 4) {
				uint32_t w = (uint32_t)v;

				at = (size_t)rnd_below(n / 4) * 4;
				memcpy(buf + at, &w, 4);
			}
			break;
		case 3: /* an aligned 64-bit field with a boundary value */
			if (n >= 8) {
				at = (size_t)rnd_below(n / 8) * 8;
				memcpy(buf + at, &v, 8);
			}
			break;
		case 4: /* truncation */
			*len = (size_t)rnd_below(n + 1);
			break;
		default: /* extension with random bytes */
			for (size_t e = (size_t)rnd_below(512); e && *len < cap; e--)
				buf[(*len)++] = (uint8_t)rnd();
			break;
		}
	}
}

/* A valid request payload of a random type into p (capacity cap); returns its type. */
static uint16_t fuzz_template(uint8_t *p, size_t cap, size_t *len, const char *url,
			      const char *endpoint, const char *path, const struct proto_attr *a)
{
	static const char *const paths[] = { "", "a", "x/y", "no-such-object", "..", "a/../b" };
	const char *pth = rnd_below(2) ? path : paths[rnd_below(6)];
	size_t pl = strlen(pth);
	char json[512];

	*len = 0;
	switch (rnd_below(9)) {
	case 0:
		return PROTO_PING;
	case 1: {
		struct proto_register *r = (struct proto_register *)(void *)p;

		if (cap < sizeof(*r))
			return PROTO_PING;
		fill_register(r, url, endpoint);
		*len = sizeof(*r);
		return PROTO_REGISTER;
	}
	case 2:
	case 3: {
		struct proto_path pp = { .path_len = (uint32_t)pl };
		struct proto_list pli = { .cursor = rnd_below(2) ? 0 : rnd_interesting(),
					  .path_len = (uint32_t)pl };
		bool list = rnd_below(2);
		size_t hl = list ? sizeof(pli) : sizeof(pp);

		memcpy(p, list ? (void *)&pli : (void *)&pp, hl);
		memcpy(p + hl, pth, pl);
		*len = hl + pl;
		return list ? PROTO_LIST : PROTO_LOOKUP;
	}
	case 4: {
		struct proto_open po = { .size = a->size, .path_len = (uint32_t)strlen(path) };

		snprintf(po.version, sizeof(po.version), "%s", a->version);
		memcpy(p, &po, sizeof(po));
		memcpy(p + sizeof(po), path, po.path_len);
		*len = sizeof(po) + po.path_len;
		return PROTO_OPEN;
	}
	case 5: {
		struct proto_close cl = { .handle = (uint32_t)rnd_below(8) };

		memcpy(p, &cl, sizeof(cl));
		*len = sizeof(cl);
		return PROTO_CLOSE;
	}
	case 6: {
		struct proto_bdi b = { .major = 0,
				       .minor = (uint32_t)rnd_below(64),
				       .read_ahead_kb = (uint32_t)rnd_interesting() };

		memcpy(p, &b, sizeof(b));
		*len = sizeof(b);
		return PROTO_BDI;
	}
	case 7:
		switch (rnd_below(5)) {
		case 0:
			snprintf(json, sizeof(json), "{\"cmd\":\"status\"}");
			break;
		case 1:
			snprintf(json, sizeof(json),
				 "{\"cmd\":\"stats\",\"format\":\"prometheus\"}");
			break;
		case 2:
			snprintf(json, sizeof(json), "{\"cmd\":\"ls\",\"url\":\"%s/\"}", url);
			break;
		case 3:
			snprintf(json, sizeof(json), "{\"cmd\":\"stat\",\"url\":\"%s/%s\"}", url,
				 pth);
			break;
		default:
			snprintf(json, sizeof(json), "{\"cmd\":\"job\",\"job\":%d}",
				 (int)rnd_below(4));
			break;
		}
		*len = strlen(json);
		memcpy(p, json, *len);
		return PROTO_CTL;
	default:
		return (uint16_t)rnd();
	}
}

struct fuzz_ring {
	uint8_t *state; /* by id: 0 nothing expected, 1 waiting, 2 answered, 3 abandoned */
	uint64_t n, outstanding, completions, unexpected;
};

static struct fuzz_ring fr;

static void fuzz_complete(void *ctx, const struct ring_entry *e)
{
	(void)ctx;
	pthread_mutex_lock(&st.lock);
	fr.completions++;
	if (e->op == RING_REVOKE) {
		/* not an answer to a request */
	} else if (e->id >= fr.n || (fr.state[e->id] != 1 && fr.state[e->id] != 3)) {
		if (fr.unexpected++ < 5)
			printf("FAIL: completion op %u for id %" PRIu64 " (state %d)\n", e->op,
			       e->id, e->id < fr.n ? fr.state[e->id] : -1);
	} else if (!(e->op == RING_PRESENT && (e->flags & RING_F_PARTIAL))) {
		if (fr.state[e->id] == 1)
			fr.outstanding--;
		fr.state[e->id] = 2;
	}
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static void fuzz_lost(void *ctx)
{
	on_lost(ctx);
}

/* Connects, registers and opens path for the ring fuzzer. */
static int fuzz_connect(const char *sock, struct hfc_register *reg, const char *path,
			struct hfc **c, struct proto_open_reply *rep, uint8_t **map, int *fd,
			int timeout_ms)
{
	struct proto_register_reply rr;
	struct proto_attr a;
	int rc;

	pthread_mutex_lock(&st.lock);
	st.lost = false;
	pthread_mutex_unlock(&st.lock);
	rc = hfc_connect(sock, c);
	if (!rc)
		rc = hfc_register(*c, reg, timeout_ms, &rr);
	if (!rc)
		rc = hfc_lookup(*c, path, timeout_ms, &a);
	if (!rc)
		rc = hfc_open(*c, path, a.version, a.size, timeout_ms, rep, map, fd);
	return rc;
}

static int cmd_fuzz(const char *sock, struct hfc_register *reg, const char *path,
		    const struct proto_attr *a, uint64_t seed, uint64_t count, int timeout_ms)
{
	size_t cap = sizeof(struct proto_hdr) + sizeof(struct proto_register) + 4096;
	uint8_t *buf = malloc(cap);
	uint64_t replies = 0, drops = 0, reconnects = 0, kept = 0;
	int fd = -1, p[2];
	struct hfc *c = NULL;
	struct proto_open_reply rep;
	uint8_t *map = NULL;
	int ofd = -1, rc;

	rng = seed * 2654435761u + 1;
	if (!buf || pipe2(p, O_CLOEXEC) < 0)
		return 1;
	printf("fuzz: seed %" PRIu64 ", %" PRIu64 " messages and ring entries\n", seed, count);

	/* Socket messages. */
	for (uint64_t i = 0; i < count; i++) {
		struct proto_hdr h = { .magic = PROTO_MAGIC, .seq = (uint32_t)(i + 1) };
		size_t len, total;
		int fds[3] = { p[1], p[1], p[1] }, nfds = 0;
		struct proto_hdr rh;

		if (fd < 0 && (fd = raw_connect(sock)) < 0) {
			check(false, "connect to the daemon", fd, 0);
			break;
		}
		h.type = fuzz_template(buf + sizeof(h), cap - sizeof(h) - 512, &len, reg->url,
				       reg->endpoint, path, a);
		mutate(buf + sizeof(h), &len, cap - sizeof(h));
		h.len = (uint32_t)len;
		if (rnd_below(16) == 0)
			h.len = (uint32_t)rnd_interesting();
		if (rnd_below(16) == 0)
			h.type = (uint16_t)rnd_interesting();
		if (rnd_below(64) == 0)
			h.magic ^= (uint32_t)(1u << rnd_below(32));
		if (rnd_below(32) == 0)
			h.flags = (uint16_t)rnd();
		memcpy(buf, &h, sizeof(h));
		total = sizeof(h) + len;
		if (rnd_below(32) == 0)
			total = (size_t)rnd_below(total + 1); /* a runt */
		if (rnd_below(32) == 0)
			nfds = 1 + (int)rnd_below(3);
		rc = raw_send(fd, buf, total, nfds ? fds : NULL, nfds);
		if (rc == -EPIPE || rc == -ECONNRESET) {
			close(fd);
			fd = -1;
			drops++;
			continue;
		}
		rc = raw_reply(fd, &rh, 15000);
		if (rc == 1 && rh.seq == h.seq) {
			replies++;
		} else if (rc == 1) {
			printf("FAIL: message %" PRIu64 " (type %u): a reply to seq %u, not %u\n",
			       i, h.type, rh.seq, h.seq);
			failures++;
			close(fd);
			fd = -1;
		} else if (rc == 0 || rc == -ECONNRESET) {
			close(fd);
			fd = -1;
			drops++;
		} else {
			printf("FAIL: message %" PRIu64 " (type %u, %zu bytes): no reply and no "
			       "disconnect in 15 s (%s)\n",
			       i, h.type, total, strerror(-rc));
			failures++;
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	printf("fuzz: messages: %" PRIu64 " replies, %" PRIu64 " disconnects\n", replies, drops);
	check(replies > count / 4, "most fuzzed messages were answered", (long)replies,
	      (long)(count / 4));
	check(drops > 0, "some fuzzed messages got the connection dropped", (long)drops, 1);
	close(p[1]);
	check(pipe_released(p[0], 10000), "no descriptor attached to a fuzzed message kept", 0, 0);
	close(p[0]);

	/* Ring entries. */
	fr.n = count;
	fr.state = calloc(count ? count : 1, 1);
	if (!fr.state)
		return 1;
	reg->on_complete = fuzz_complete;
	reg->on_lost = fuzz_lost;
	for (uint64_t i = 0; i < count; i++) {
		struct ring_entry e = { .id = i };
		uint64_t r = rnd_below(100), size = a->size;

		if (!c || !hfc_alive(c)) {
			if (c) {
				pthread_mutex_lock(&st.lock);
				for (uint64_t j = 0; j < i; j++) {
					if (fr.state[j] == 1) {
						fr.state[j] = 3;
						fr.outstanding--;
					}
				}
				pthread_mutex_unlock(&st.lock);
				hfc_close(c);
				close(ofd);
				free(map);
				c = NULL;
				reconnects++;
			}
			rc = fuzz_connect(sock, reg, path, &c, &rep, &map, &ofd, timeout_ms);
			if (rc) {
				check(false, "reconnect for the ring fuzzer", rc, 0);
				break;
			}
		}
		e.op = r < 60	? RING_FETCH
		       : r < 80 ? RING_PREFETCH
		       : r < 85 ? RING_REVOKE_ACK
				: (uint16_t)rnd();
		e.handle = rnd_below(5) ? rep.handle : (uint32_t)rnd_interesting();
		switch (rnd_below(4)) {
		case 0:
		case 1:
			e.off = rnd_below(size);
			e.len = 1 + rnd_below(size - e.off < (4u << 20) ? size - e.off : 4u << 20);
			break;
		case 2: {
			static const int64_t offs[] = { -1, 0, 1 };

			e.off = size + (uint64_t)offs[rnd_below(3)];
			e.len = rnd_below(3);
			break;
		}
		default:
			e.off = rnd_interesting();
			e.len = rnd_interesting();
			break;
		}
		if (rnd_below(4) == 0) {
			e.flags = (uint16_t)rnd();
			e.status = (int32_t)rnd();
			e.reserved[rnd_below(7)] = (uint32_t)rnd();
		}
		pthread_mutex_lock(&st.lock);
		if (e.op != RING_REVOKE_ACK) {
			fr.state[i] = 1;
			fr.outstanding++;
		}
		/* At most 32 unanswered; each must be answered within the timeout. */
		{
			struct timespec dl;

			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += timeout_ms / 1000;
			while (fr.outstanding > 32 && !st.lost &&
			       pthread_cond_timedwait(&st.cond, &st.lock, &dl) != ETIMEDOUT)
				;
			if (fr.outstanding > 32 && !st.lost) {
				printf("FAIL: entry %" PRIu64
				       ": 32 requests unanswered for %d ms\n",
				       i, timeout_ms);
				failures++;
				pthread_mutex_unlock(&st.lock);
				break;
			}
		}
		pthread_mutex_unlock(&st.lock);
		while ((rc = hfc_submit(c, &e)) == -EAGAIN)
			usleep(1000);
		if (rc) { /* lost: nothing is expected of this one */
			pthread_mutex_lock(&st.lock);
			if (fr.state[i] == 1) {
				fr.state[i] = 0;
				fr.outstanding--;
			}
			pthread_mutex_unlock(&st.lock);
		}
	}
	/* Everything still waiting on a live connection must be answered. */
	if (c && hfc_alive(c)) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += timeout_ms / 1000;
		pthread_mutex_lock(&st.lock);
		while (fr.outstanding && !st.lost &&
		       pthread_cond_timedwait(&st.cond, &st.lock, &dl) != ETIMEDOUT)
			;
		kept = st.lost ? 0 : fr.outstanding;
		pthread_mutex_unlock(&st.lock);
	}
	printf("fuzz: ring: %" PRIu64 " completions, %" PRIu64 " reconnects\n", fr.completions,
	       reconnects);
	check(kept == 0, "every fuzzed FETCH/PREFETCH answered", (long)kept, 0);
	check(fr.unexpected == 0, "no completion for an id never submitted or already answered",
	      (long)fr.unexpected, 0);
	check(reconnects > 0, "the daemon dropped the fuzzer for invalid entries", (long)reconnects,
	      1);
	if (c) {
		hfc_close(c);
		close(ofd);
		free(map);
	}
	/* Alive and answering. */
	fd = raw_connect(sock);
	if (fd >= 0) {
		raw_req(fd, PROTO_PING, 1, NULL, 0, NULL, 0);
		expect_status(fd, 1, 0, "the daemon answers a PING after the fuzzing");
		close(fd);
	} else {
		check(false, "connect to the daemon after the fuzzing", fd, 0);
	}
	free(fr.state);
	free(buf);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "anonymous", no_argument, NULL, 'a' },
		{ "ttl", required_argument, NULL, 't' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "out", required_argument, NULL, 'o' },
		{ "req-size", required_argument, NULL, 'r' },
		{ "depth", required_argument, NULL, 'd' },
		{ "hold-ms", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *endpoint = NULL, *outpath = NULL;
	struct hfc_register reg = {
		.metadata_ttl = 60, .neg_ttl = 5, .on_complete = on_complete, .on_lost = on_lost
	};
	struct proto_register_reply rr;
	uint64_t req = 1 << 20, hold_ms = 0;
	int timeout_ms = 60000, depth = 8, ch, rc, out = STDOUT_FILENO;
	struct hfc *c;
	const char *cmd, *path;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		uint64_t v;

		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'e':
			endpoint = optarg;
			break;
		case 'a':
			reg.anonymous = true;
			break;
		case 't':
			reg.metadata_ttl = atoi(optarg);
			break;
		case 'T':
			timeout_ms = atoi(optarg);
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'r':
			if (num_parse_size(optarg, &v) || v == 0)
				return die("--req-size", -EINVAL);
			req = v;
			break;
		case 'd':
			depth = atoi(optarg);
			if (depth < 1 || depth > MAX_DEPTH)
				return die("--depth", -EINVAL);
			break;
		case 'H':
			hold_ms = strtoull(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (!sock || argc - optind < 2) {
		fprintf(stderr, "usage: tool_client --socket S [opts] URL CMD ARGS\n");
		return 2;
	}
	reg.url = argv[optind];
	reg.endpoint = endpoint;
	reg.mountpoint = "(tool_client)";
	cmd = argv[optind + 1];
	path = argc - optind > 2 ? argv[optind + 2] : "";
	rc = hfc_connect(sock, &c);
	if (rc)
		return die("connect", rc);
	if (strcmp(cmd, "ctl") == 0) {
		char *reply;
		int status;

		rc = hfc_ctl(c, path, timeout_ms, &status, &reply);
		if (rc)
			return die("ctl", rc);
		printf("%s\n", reply);
		free(reply);
		hfc_close(c);
		return status ? 1 : 0;
	}
	rc = hfc_register(c, &reg, timeout_ms, &rr);
	if (rc)
		return die("register", rc);
	if (strcmp(cmd, "ls") == 0) {
		uint64_t cur = 0;

		do {
			rc = hfc_list(c, path, cur, timeout_ms, ls_fn, NULL, &cur);
		} while (!rc && cur);
		if (rc)
			return die("ls", rc);
	} else if (strcmp(cmd, "stat") == 0) {
		struct proto_attr a;

		rc = hfc_lookup(c, path, timeout_ms, &a);
		if (rc)
			return die("stat", rc);
		printf("type=%s\nsize=%" PRIu64 "\nversion=%s\nmtime=%" PRId64 "\n",
		       a.type == PROTO_FT_DIR ? "dir" : "file", a.size, a.version, a.mtime_sec);
	} else {
		struct proto_attr a;
		struct proto_open_reply rep;
		uint8_t *map;
		int fd;

		rc = hfc_lookup(c, path, timeout_ms, &a);
		if (rc)
			return die("lookup", rc);
		rc = hfc_open(c, path, a.version, a.size, timeout_ms, &rep, &map, &fd);
		if (rc)
			return die("open", rc);
		if (outpath) {
			out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (out < 0)
				return die(outpath, -errno);
		}
		if (strcmp(cmd, "cat") == 0) {
			if (a.size)
				rc = read_range(c, &rep, map, fd, 0, a.size, req, depth, out,
						timeout_ms);
			if (rc)
				return die("cat", rc);
			if (hold_ms)
				usleep((useconds_t)(hold_ms * 1000));
		} else if (strcmp(cmd, "read") == 0 && argc - optind >= 5) {
			uint64_t off = strtoull(argv[optind + 3], NULL, 10);
			uint64_t len = strtoull(argv[optind + 4], NULL, 10);

			if (off > a.size || len > a.size - off)
				return die("read", -EINVAL);
			if (len)
				rc = read_range(c, &rep, map, fd, off, len, req, 1, out,
						timeout_ms);
			if (rc)
				return die("read", rc);
		} else if (strcmp(cmd, "hold") == 0 && argc - optind >= 4) {
			uint64_t until = now_ms() + strtoull(argv[optind + 3], NULL, 10);

			signal(SIGUSR1, on_usr1);
			printf("holding\n");
			fflush(stdout);
			while (!got_usr1 && now_ms() < until && hfc_alive(c))
				usleep(10000);
			if (!hfc_alive(c))
				return die("hold", -ENOTCONN);
		} else if (strcmp(cmd, "stall") == 0) {
			return cmd_stall(c, sock, &rep, &rr, req, timeout_ms);
		} else if (strcmp(cmd, "abandon") == 0) {
			uint32_t n = 0;

			for (uint64_t o = 0; o < a.size; o += req, n++) {
				struct ring_entry e = { .id = 1000 + n,
							.off = o,
							.len = a.size - o < req ? a.size - o : req,
							.handle = rep.handle,
							.op = RING_FETCH };

				if (hfc_submit(c, &e))
					break;
			}
			_exit(0); /* abandon: vanish with requests in flight */
		} else if (strcmp(cmd, "hostile") == 0) {
			_exit(cmd_hostile(c, &rep, timeout_ms));
		} else if (strcmp(cmd, "scribble") == 0 && argc - optind >= 4) {
			_exit(cmd_scribble(c, &rep, &rr, argv[optind + 3], timeout_ms));
		} else if (strcmp(cmd, "fuzz") == 0 && argc - optind >= 5) {
			close(fd);
			free(map);
			rc = hfc_close_handle(c, rep.handle, timeout_ms);
			hfc_close(c);
			if (rc)
				return die("close", rc);
			return cmd_fuzz(sock, &reg, path, &a, strtoull(argv[optind + 3], NULL, 10),
					strtoull(argv[optind + 4], NULL, 10), timeout_ms);
		} else if (strcmp(cmd, "garbage") == 0) {
			rc = cmd_garbage(sock, reg.url, endpoint, path, &a);
			close(fd);
			free(map);
			hfc_close(c);
			return rc;
		} else {
			fprintf(stderr, "tool_client: unknown command %s\n", cmd);
			return 2;
		}
		if (out != STDOUT_FILENO)
			close(out);
		rc = hfc_close_handle(c, rep.handle, timeout_ms);
		if (rc)
			return die("close", rc);
		if (strcmp(cmd, "hold") == 0) {
			printf("closed\n");
			fflush(stdout);
		}
		close(fd);
		free(map);
	}
	hfc_close(c);
	return 0;
}
