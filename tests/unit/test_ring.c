/* Unit tests for common/ring: push/pop across two processes, wrap-around of the free-running
 * counters, back-pressure, hostile values written by the peer into shared memory, the memfd's
 * seals, and what ring_attach() refuses. Some tests play the peer by writing the shared header
 * directly; the offsets below mirror struct ring_shared in common/ring.c (its _Static_asserts
 * pin them). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/msg.h"
#include "common/ring.h"

/* struct ring_shared, as laid out in common/ring.c */
#define OFF_MAGIC      0
#define OFF_VERSION    4
#define OFF_ENTRIES    8
#define OFF_ENTRY_SIZE 12
#define OFF_MOUNT_ID   16
#define OFF_SQ_HEAD    64
#define OFF_SQ_TAIL    128
#define OFF_CQ_HEAD    192
#define OFF_CQ_TAIL    256
#define HDR_BYTES      320

struct shm {
	uint8_t *p;
	size_t bytes;
};

static void shm_map(int fd, uint32_t entries, struct shm *s)
{
	s->bytes = ring_bytes(entries);
	s->p = mmap(NULL, s->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(s->p != MAP_FAILED);
}

static void shm_unmap(struct shm *s)
{
	munmap(s->p, s->bytes);
}

static _Atomic uint32_t *shm_u32(struct shm *s, size_t off)
{
	return (_Atomic uint32_t *)(s->p + off);
}

static struct ring_entry *shm_entry(struct shm *s, int queue, uint32_t entries, uint32_t i)
{
	return (struct ring_entry *)(s->p + HDR_BYTES) + (size_t)queue * entries + (i % entries);
}

static void entry_fill(struct ring_entry *e, uint64_t seq, uint16_t op)
{
	memset(e, 0, sizeof(*e));
	e->id = seq;
	e->off = seq * 4096 + 7;
	e->len = seq ^ 0xabcdefull;
	e->handle = (uint32_t)(seq * 2654435761u);
	e->op = op;
	e->status = -(int32_t)(seq % 200);
	for (int k = 0; k < 7; k++)
		e->reserved[k] = (uint32_t)(seq + (uint64_t)k);
}

static bool entry_ok(const struct ring_entry *e, uint64_t seq, uint16_t op)
{
	struct ring_entry want;

	entry_fill(&want, seq, op);
	return memcmp(e, &want, sizeof(want)) == 0;
}

/* A daemon ring plus a mount attached to the same memfd, in one process. */
struct pair {
	struct ring *d, *m;
	int fd;
	uint32_t entries;
};

static void pair_open(struct pair *p, uint32_t entries)
{
	p->entries = entries;
	assert_int_equal(ring_create(entries, 77, &p->fd, &p->d), 0);
	assert_int_equal(ring_attach(p->fd, RING_ROLE_MOUNT, &p->m), 0);
}

static void pair_close(struct pair *p)
{
	ring_free(p->m);
	ring_free(p->d);
	close(p->fd);
}

/* ---- basics ---- */

static void test_create_attach(void **state)
{
	const uint32_t bad[] = { 0, 1, 4, 7, 12, 100, RING_MAX_ENTRIES * 2, UINT32_MAX };
	struct ring *r = (struct ring *)1, *m;
	int fd = 5;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ring_create(bad[i], 1, &fd, &r), -EINVAL);
		assert_null(r);
		assert_int_equal(fd, -1);
	}
	assert_int_equal(ring_bytes(8), HDR_BYTES + 2 * 8 * sizeof(struct ring_entry));
	for (uint32_t n = RING_MIN_ENTRIES; n <= RING_MAX_ENTRIES; n *= 8) {
		assert_int_equal(ring_create(n, 0x1122334455667788ull, &fd, &r), 0);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		assert_int_equal(ring_entries(r), n);
		assert_int_equal(ring_space(r), n);
		assert_int_equal(ring_attach(fd, RING_ROLE_MOUNT, &m), 0);
		assert_int_equal(ring_entries(m), n);
		assert_int_equal(ring_space(m), n);
		assert_int_equal(ring_mount_id(m), 0x1122334455667788ull);
		assert_int_equal(ring_mount_id(r), 0x1122334455667788ull);
		ring_free(m);
		ring_free(r);
		close(fd);
	}
	ring_free(NULL);
}

static void test_push_pop_both_ways(void **state)
{
	struct pair p;
	struct ring_entry e, out;

	pair_open(&p, 8);
	assert_int_equal(ring_pop(p.d, &out), 0);
	assert_int_equal(ring_pop(p.m, &out), 0);
	for (uint64_t i = 0; i < 100; i++) {
		entry_fill(&e, i, RING_FETCH);
		assert_int_equal(ring_push(p.m, &e), 0);
		entry_fill(&e, i + 1000, RING_PRESENT);
		assert_int_equal(ring_push(p.d, &e), 0);
		assert_int_equal(ring_pop(p.d, &out), 1);
		assert_true(entry_ok(&out, i, RING_FETCH));
		assert_int_equal(ring_pop(p.m, &out), 1);
		assert_true(entry_ok(&out, i + 1000, RING_PRESENT));
		assert_int_equal(ring_pop(p.d, &out), 0);
		assert_int_equal(ring_pop(p.m, &out), 0);
	}
	pair_close(&p);
}

static void test_backpressure(void **state)
{
	struct pair p;
	struct ring_entry e, out;
	uint64_t seq = 0, next = 0;

	pair_open(&p, 16);
	for (int dir = 0; dir < 2; dir++) {
		struct ring *prod = dir ? p.d : p.m, *cons = dir ? p.m : p.d;

		for (uint32_t i = 0; i < p.entries; i++) {
			assert_int_equal(ring_space(prod), p.entries - i);
			entry_fill(&e, seq++, RING_FETCH);
			assert_int_equal(ring_push(prod, &e), 0);
		}
		assert_int_equal(ring_space(prod), 0);
		entry_fill(&e, seq, RING_FETCH);
		assert_int_equal(ring_push(prod, &e), -EAGAIN);
		assert_int_equal(ring_push(prod, &e), -EAGAIN);
		/* one pop makes room for exactly one push */
		assert_int_equal(ring_pop(cons, &out), 1);
		assert_true(entry_ok(&out, next++, RING_FETCH));
		assert_int_equal(ring_space(prod), 1);
		assert_int_equal(ring_push(prod, &e), 0);
		seq++;
		assert_int_equal(ring_push(prod, &e), -EAGAIN);
		for (uint32_t i = 0; i < p.entries; i++) {
			assert_int_equal(ring_pop(cons, &out), 1);
			assert_true(entry_ok(&out, next++, RING_FETCH));
		}
		assert_int_equal(ring_pop(cons, &out), 0);
		assert_int_equal(ring_space(prod), p.entries);
	}
	pair_close(&p);
}

/* ---- wrap-around ---- */

static void test_wraparound(void **state)
{
	const uint32_t n = 8, start = UINT32_MAX - 5;
	struct ring *d0, *d, *m;
	struct ring_entry e, out;
	struct shm s;
	uint64_t sseq = 0, srecv = 0, cseq = 0, crecv = 0;
	int fd;

	assert_int_equal(ring_create(n, 1, &fd, &d0), 0);
	shm_map(fd, n, &s);
	/* Both queues start just below the wrap; then both sides bind to them. */
	*shm_u32(&s, OFF_SQ_HEAD) = start;
	*shm_u32(&s, OFF_SQ_TAIL) = start;
	*shm_u32(&s, OFF_CQ_HEAD) = start;
	*shm_u32(&s, OFF_CQ_TAIL) = start;
	ring_free(d0);
	assert_int_equal(ring_attach(fd, RING_ROLE_DAEMON, &d), 0);
	assert_int_equal(ring_attach(fd, RING_ROLE_MOUNT, &m), 0);

	/* Fill completely across the wrap, then drain, several times, in uneven steps. */
	for (int round = 0; round < 20; round++) {
		uint32_t k = 1 + (uint32_t)round % n;

		for (uint32_t i = 0; i < k; i++) {
			entry_fill(&e, sseq++, RING_FETCH);
			assert_int_equal(ring_push(m, &e), 0);
			entry_fill(&e, cseq++, RING_PRESENT);
			assert_int_equal(ring_push(d, &e), 0);
		}
		if (k == n) {
			assert_int_equal(ring_push(m, &e), -EAGAIN);
			assert_int_equal(ring_push(d, &e), -EAGAIN);
		}
		assert_int_equal(ring_space(m), n - k);
		for (uint32_t i = 0; i < k; i++) {
			assert_int_equal(ring_pop(d, &out), 1);
			assert_true(entry_ok(&out, srecv++, RING_FETCH));
			assert_int_equal(ring_pop(m, &out), 1);
			assert_true(entry_ok(&out, crecv++, RING_PRESENT));
		}
		assert_int_equal(ring_pop(d, &out), 0);
		assert_int_equal(ring_pop(m, &out), 0);
	}
	/* The published counters did wrap. */
	assert_true(*shm_u32(&s, OFF_SQ_TAIL) < start);
	assert_int_equal(*shm_u32(&s, OFF_SQ_TAIL), (uint32_t)(start + sseq));
	assert_int_equal(*shm_u32(&s, OFF_SQ_HEAD), (uint32_t)(start + sseq));
	assert_int_equal(*shm_u32(&s, OFF_CQ_TAIL), (uint32_t)(start + cseq));
	assert_true(sseq > 6);
	ring_free(m);
	ring_free(d);
	shm_unmap(&s);
	close(fd);
}

/* ---- two processes ---- */

#define XPROC_N	      1000000u
#define XPROC_ENTRIES 16u
#define XPROC_SECS    60

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The mount side, in the child: receives the memfd over a socket, pushes XPROC_N submissions
 * and checks XPROC_N completions echo them in order. Exit status 0 when all is well.
 */
static int xproc_child(int sock)
{
	char *buf = malloc(PROTO_MSG_MAX);
	struct ring_entry e, out;
	uint64_t sent = 0, got = 0;
	struct ring *m;
	int fd, nfds, rc;

	alarm(XPROC_SECS);
	if (!buf)
		return 10;
	rc = msg_recv(sock, buf, PROTO_MSG_MAX, &fd, 1, &nfds, 0);
	if (rc <= 0 || nfds != 1)
		return 11;
	if (ring_attach(fd, RING_ROLE_MOUNT, &m) != 0)
		return 12;
	if (ring_mount_id(m) != 4242 || ring_entries(m) != XPROC_ENTRIES)
		return 13;
	while (got < XPROC_N) {
		bool idle = true;

		if (sent < XPROC_N) {
			entry_fill(&e, sent, RING_FETCH);
			rc = ring_push(m, &e);
			if (rc == 0) {
				sent++;
				idle = false;
			} else if (rc != -EAGAIN) {
				return 14;
			}
		}
		rc = ring_pop(m, &out);
		if (rc < 0)
			return 15;
		if (rc == 1) {
			if (!entry_ok(&out, got, RING_PRESENT))
				return 16;
			got++;
			idle = false;
		}
		if (idle)
			sched_yield();
	}
	ring_free(m);
	close(fd);
	free(buf);
	return 0;
}

static void test_two_processes(void **state)
{
	struct ring_entry in, out;
	uint64_t got = 0;
	struct ring *d;
	int sv[2], fd, status;
	double deadline;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(xproc_child(sv[1]));
	}
	close(sv[1]);
	/* The child did not inherit the ring: it gets it the way a mount does. */
	assert_int_equal(ring_create(XPROC_ENTRIES, 4242, &fd, &d), 0);
	assert_int_equal(msg_send(sv[0], PROTO_REGISTER | PROTO_REPLY, 0, 1, 0, NULL, 0, &fd, 1, 0),
			 0);
	deadline = now_s() + XPROC_SECS;
	while (got < XPROC_N) {
		int rc = ring_pop(d, &in);

		assert_true(rc >= 0);
		if (rc == 0) {
			if (now_s() > deadline || waitpid(pid, &status, WNOHANG) == pid)
				break;
			sched_yield();
			continue;
		}
		if (!entry_ok(&in, got, RING_FETCH))
			break;
		/* Echo it back as a completion, waiting while the child's queue is full. */
		entry_fill(&out, got, RING_PRESENT);
		while ((rc = ring_push(d, &out)) == -EAGAIN && now_s() < deadline)
			sched_yield();
		assert_int_equal(rc, 0);
		got++;
	}
	if (got < XPROC_N)
		kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(got, XPROC_N);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	ring_free(d);
	close(fd);
	close(sv[0]);
}

/* ---- hostile peers ---- */

/* The mount publishes an impossible submission tail: the daemon sees -EPROTO, for good. */
static void test_hostile_tail(void **state)
{
	const uint32_t n = 8;
	const uint32_t bad[] = { n + 1, 1000, 0x80000000u, UINT32_MAX /* behind the head */ };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ring_entry e, out;
		struct shm s;
		struct pair p;

		pair_open(&p, n);
		shm_map(p.fd, n, &s);
		entry_fill(&e, 1, RING_FETCH);
		assert_int_equal(ring_push(p.m, &e), 0);
		assert_int_equal(ring_pop(p.d, &out), 1);
		/* head is 1 now; the peer claims head + bad[i] */
		*shm_u32(&s, OFF_SQ_TAIL) = 1 + bad[i];
		assert_int_equal(ring_pop(p.d, &out), -EPROTO);
		*shm_u32(&s, OFF_SQ_TAIL) = 2; /* even a sane value later: still refused */
		assert_int_equal(ring_pop(p.d, &out), -EPROTO);
		assert_int_equal(ring_push(p.d, &e), -EPROTO);
		assert_int_equal(ring_space(p.d), 0);
		shm_unmap(&s);
		pair_close(&p);
	}
}

/* The mount publishes a completion head the daemon never produced up to: pushes fail. */
static void test_hostile_head(void **state)
{
	const uint32_t n = 8;
	const uint32_t bad[] = { 1, 5, 0x40000000u, (uint32_t) - (int32_t)(n + 1) };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ring_entry e, out;
		struct shm s;
		struct pair p;

		pair_open(&p, n);
		shm_map(p.fd, n, &s);
		entry_fill(&e, 1, RING_PRESENT);
		assert_int_equal(ring_push(p.d, &e), 0);
		/* the daemon produced 1; the peer claims to have consumed 1 + bad[i] */
		*shm_u32(&s, OFF_CQ_HEAD) = 1 + bad[i];
		assert_int_equal(ring_space(p.d), 0);
		assert_int_equal(ring_push(p.d, &e), -EPROTO);
		*shm_u32(&s, OFF_CQ_HEAD) = 1;
		assert_int_equal(ring_push(p.d, &e), -EPROTO);
		assert_int_equal(ring_pop(p.d, &out), -EPROTO);
		shm_unmap(&s);
		pair_close(&p);
	}
}

/* The daemon side can be hostile too: the mount refuses an impossible completion tail. */
static void test_hostile_daemon(void **state)
{
	struct ring_entry out;
	struct shm s;
	struct pair p;

	pair_open(&p, 8);
	shm_map(p.fd, 8, &s);
	*shm_u32(&s, OFF_CQ_TAIL) = 9;
	assert_int_equal(ring_pop(p.m, &out), -EPROTO);
	shm_unmap(&s);
	pair_close(&p);
}

/* Random published indices: every call answers within the contract and never touches memory
 * outside the ring (a read past the mapping would crash). */
static void test_hostile_random(void **state)
{
	const uint32_t n = 8;
	uint64_t x = 0x2545f4914f6cdd1dull;

	for (int round = 0; round < 2000; round++) {
		struct ring_entry e, out;
		struct shm s;
		struct pair p;

		pair_open(&p, n);
		shm_map(p.fd, n, &s);
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*shm_u32(&s, OFF_SQ_TAIL) = (uint32_t)x;
		*shm_u32(&s, OFF_CQ_HEAD) = (uint32_t)(x >> 32);
		for (uint32_t i = 0; i <= n + 1; i++) {
			int rc = ring_pop(p.d, &out);

			assert_true(rc == 1 || rc == 0 || rc == -EPROTO);
			if (i == 0 && (uint32_t)x > n) /* further than one ring ahead: refused */
				assert_int_equal(rc, -EPROTO);
			if (rc != 1)
				break;
		}
		entry_fill(&e, 0, RING_PRESENT);
		for (uint32_t i = 0; i <= n + 1; i++) {
			int rc = ring_push(p.d, &e);

			assert_true(rc == 0 || rc == -EAGAIN || rc == -EPROTO);
			if (rc)
				break;
		}
		shm_unmap(&s);
		pair_close(&p);
	}
}

/* A popped entry is a copy: what the peer writes afterwards does not change it. */
static void test_pop_copies(void **state)
{
	struct ring_entry e, out, want;
	struct shm s;
	struct pair p;

	pair_open(&p, 8);
	shm_map(p.fd, 8, &s);
	entry_fill(&e, 5, RING_FETCH);
	assert_int_equal(ring_push(p.m, &e), 0);
	assert_int_equal(ring_pop(p.d, &out), 1);
	want = out;
	memset(shm_entry(&s, 0, 8, 0), 0xee, sizeof(struct ring_entry));
	assert_memory_equal(&out, &want, sizeof(out));
	assert_true(entry_ok(&out, 5, RING_FETCH));
	/* And the header's `entries` is read once: a peer rewriting it changes nothing. */
	*shm_u32(&s, OFF_ENTRIES) = RING_MAX_ENTRIES;
	for (int i = 0; i < 8; i++)
		assert_int_equal(ring_push(p.m, &e), 0);
	assert_int_equal(ring_push(p.m, &e), -EAGAIN);
	shm_unmap(&s);
	pair_close(&p);
}

/* ---- seals and attach checks ---- */

static void test_sealed(void **state)
{
	struct pair p;
	char path[64];
	int fd2, seals;
	off_t size = (off_t)ring_bytes(8);

	pair_open(&p, 8);
	seals = fcntl(p.fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	assert_true(seals & F_SEAL_SEAL);
	assert_false(seals & F_SEAL_WRITE);
	/* What the mount holds: its own open file description of the same memfd. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p.fd);
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd2 >= 0);
	errno = 0;
	assert_int_equal(ftruncate(fd2, size - 64), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd2, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd2, size + 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fallocate(fd2, 0, 0, size * 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(fd2, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(p.fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
	assert_int_equal(errno, EPERM);
	close(fd2);
	pair_close(&p);
}

struct hdr {
	uint32_t magic, version, entries, entry_size;
	uint64_t mount_id;
};

static int make_ring_fd(const struct hdr *h, off_t size, unsigned int flags, int seals)
{
	int fd = memfd_create("test-ring", MFD_CLOEXEC | flags);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	if (size >= (off_t)sizeof(*h))
		assert_int_equal(pwrite(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static int try_attach(const struct hdr *h, off_t size, unsigned int flags, int seals)
{
	struct ring *r = (struct ring *)1;
	int fd = make_ring_fd(h, size, flags, seals), rc;

	rc = ring_attach(fd, RING_ROLE_MOUNT, &r);
	if (rc == 0)
		ring_free(r);
	else
		assert_null(r);
	close(fd);
	return rc;
}

static void test_attach_refuses(void **state)
{
	const int all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	const struct hdr good = { RING_MAGIC, RING_VERSION, 8, sizeof(struct ring_entry), 3 };
	const off_t size = (off_t)ring_bytes(8);
	struct hdr h;
	struct ring *r;
	int fds[2];

	/* the helper builds rings that attach, so each refusal below is about one change */
	assert_int_equal(try_attach(&good, size, MFD_ALLOW_SEALING, all), 0);
	assert_int_equal(try_attach(&good, size, MFD_ALLOW_SEALING, F_SEAL_SHRINK), 0);

	/* not sealed against shrinking */
	assert_int_equal(try_attach(&good, size, MFD_ALLOW_SEALING, 0), -EPERM);
	assert_int_equal(try_attach(&good, size, MFD_ALLOW_SEALING, F_SEAL_GROW | F_SEAL_SEAL),
			 -EPERM);
	assert_int_equal(try_attach(&good, size, 0, 0), -EPERM); /* sealing not allowed at all */

	/* malformed */
	h = good;
	h.magic ^= 1;
	assert_int_equal(try_attach(&h, size, MFD_ALLOW_SEALING, all), -EPROTO);
	h = good;
	h.version = RING_VERSION + 1;
	assert_int_equal(try_attach(&h, size, MFD_ALLOW_SEALING, all), -EPROTO);
	h = good;
	h.entry_size = 32;
	assert_int_equal(try_attach(&h, size, MFD_ALLOW_SEALING, all), -EPROTO);
	h = good;
	h.entries = 12;
	assert_int_equal(try_attach(&h, (off_t)ring_bytes(12), MFD_ALLOW_SEALING, all), -EPROTO);
	h.entries = 4;
	assert_int_equal(try_attach(&h, (off_t)ring_bytes(4), MFD_ALLOW_SEALING, all), -EPROTO);
	h.entries = RING_MAX_ENTRIES * 2;
	assert_int_equal(
		try_attach(&h, (off_t)ring_bytes(RING_MAX_ENTRIES * 2), MFD_ALLOW_SEALING, all),
		-EPROTO);
	h.entries = 16; /* claims more entries than the file holds */
	assert_int_equal(try_attach(&h, size, MFD_ALLOW_SEALING, all), -EPROTO);
	assert_int_equal(try_attach(&good, size + 64, MFD_ALLOW_SEALING, all), -EPROTO);
	assert_int_equal(try_attach(&good, size - 64, MFD_ALLOW_SEALING, all), -EPROTO);
	assert_int_equal(try_attach(&good, 16, MFD_ALLOW_SEALING, all), -EPROTO);
	assert_int_equal(try_attach(&good, 0, MFD_ALLOW_SEALING, all), -EPROTO);

	/* not a memfd */
	assert_int_equal(pipe(fds), 0);
	assert_true(ring_attach(fds[0], RING_ROLE_MOUNT, &r) < 0);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(ring_attach(-1, RING_ROLE_MOUNT, &r), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_attach),  cmocka_unit_test(test_push_pop_both_ways),
		cmocka_unit_test(test_backpressure),   cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_two_processes),  cmocka_unit_test(test_hostile_tail),
		cmocka_unit_test(test_hostile_head),   cmocka_unit_test(test_hostile_daemon),
		cmocka_unit_test(test_hostile_random), cmocka_unit_test(test_pop_copies),
		cmocka_unit_test(test_sealed),	       cmocka_unit_test(test_attach_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
