/* tool_client: misbehaving mounts (hostile ring entries, a scribbled ring header, a mount
 * that stops draining, malformed socket messages). See tool_client.c for the commands. */

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

#include "tool_client/client.h"

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

int cmd_hostile(struct hfc *c, const struct proto_open_reply *rep, int timeout_ms)
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

int cmd_scribble(struct hfc *c, const struct proto_open_reply *rep,
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

int cmd_stall(struct hfc *c, const char *sock, const struct proto_open_reply *rep,
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

int raw_connect(const char *path)
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
int raw_send(int fd, const void *buf, size_t len, const int *fds, int nfds)
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
int raw_req(int fd, uint16_t type, uint32_t seq, const void *p, size_t len, const int *fds,
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
int raw_reply(int fd, struct proto_hdr *h, int ms)
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
void expect_status(int fd, uint32_t seq, int want, const char *what)
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
bool pipe_released(int rd, int ms)
{
	struct pollfd p = { rd, POLLIN, 0 };
	char c;

	return poll(&p, 1, ms) == 1 && read(rd, &c, 1) == 0;
}

void fill_register(struct proto_register *r, const char *url, const char *endpoint)
{
	memset(r, 0, sizeof(*r));
	r->version = PROTO_VERSION;
	r->metadata_ttl = 60;
	r->neg_ttl = 5;
	snprintf(r->url, sizeof(r->url), "%s", url);
	snprintf(r->endpoint, sizeof(r->endpoint), "%s", endpoint ? endpoint : "");
	snprintf(r->mountpoint, sizeof(r->mountpoint), "(tool_client garbage)");
}

int cmd_garbage(const char *sock, const char *url, const char *endpoint, const char *path,
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
