/* Unit tests for common/msg: framed messages with descriptor passing on SOCK_SEQPACKET
 * socketpairs: round trips, descriptors passed and usable, surplus and rejected descriptors
 * closed (never leaked into the process), malformed frames, size limits, shutdown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/msg.h"

struct fx {
	int sv[2];
	char *buf;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->sv), 0);
	f->buf = malloc(PROTO_MSG_MAX);
	assert_non_null(f->buf);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->sv[0] >= 0)
		close(f->sv[0]);
	if (f->sv[1] >= 0)
		close(f->sv[1]);
	free(f->buf);
	free(f);
	return 0;
}

/* The process's open descriptors, sorted, into fds[] (at most max); returns the count. */
static int fd_snapshot(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0, self;

	assert_non_null(d);
	self = dirfd(d);
	while ((e = readdir(d))) {
		char *end;
		long v = strtol(e->d_name, &end, 10);

		if (e->d_name[0] == '.' || *end || v == self)
			continue;
		if (n < max)
			fds[n++] = (int)v;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];

			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

static void assert_same_fds(const int *a, int na, const int *b, int nb)
{
	if (na != nb) {
		for (int i = 0; i < nb; i++)
			print_message("fd %d open\n", b[i]);
	}
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++)
		assert_int_equal(a[i], b[i]);
}

/* Sends a raw packet with optional descriptors, bypassing msg_send's framing. */
static void raw_send(int sock, const void *p, size_t n, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 32)];
	} cbuf;
	struct iovec v = { (void *)p, n };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	memset(&cbuf, 0, sizeof(cbuf));
	if (nfds) {
		struct cmsghdr *c;

		m.msg_control = cbuf.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	assert_int_equal(sendmsg(sock, &m, 0), (ssize_t)n);
}

static void header(struct proto_hdr *h, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->magic = PROTO_MAGIC;
	h->type = PROTO_PING;
	h->len = len;
}

/* n descriptors that are easy to tell apart (pipes' ends), closed by the caller. */
static void make_fds(int *fds, int n)
{
	for (int i = 0; i < n; i += 2) {
		int p[2];

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		fds[i] = p[0];
		if (i + 1 < n)
			fds[i + 1] = p[1];
		else
			close(p[1]);
	}
}

static void close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- round trips ---- */

static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	const size_t sizes[] = { 0, 1, 7, 24, 4096, 65536 };
	char *payload = malloc(65536);
	int fds[1], nfds = -1;

	assert_non_null(payload);
	for (size_t i = 0; i < 65536; i++)
		payload[i] = (char)(i * 31 + 7);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		const struct proto_hdr *h = msg_hdr(f->buf);

		assert_int_equal(msg_send(f->sv[0], PROTO_LIST | PROTO_REPLY, PROTO_F_MORE,
					  (uint32_t)(1000 + k), -ENOENT, payload, sizes[k], NULL, 0,
					  0),
				 0);
		assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, 0),
				 (int)(sizeof(struct proto_hdr) + sizes[k]));
		assert_int_equal(nfds, 0);
		assert_int_equal(h->magic, PROTO_MAGIC);
		assert_int_equal(h->type, PROTO_LIST | PROTO_REPLY);
		assert_int_equal(h->flags, PROTO_F_MORE);
		assert_int_equal(h->seq, 1000 + k);
		assert_int_equal(h->status, -ENOENT);
		assert_int_equal(h->len, sizes[k]);
		assert_int_equal(h->reserved, 0);
		if (sizes[k])
			assert_memory_equal(msg_payload(f->buf), payload, sizes[k]);
	}
	/* and the other direction */
	assert_int_equal(msg_send(f->sv[1], PROTO_PING, 0, 9, 0, "x", 1, NULL, 0, 0), 0);
	assert_int_equal(msg_recv(f->sv[0], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, 0), 25);
	free(payload);
}

static void test_sendv_gathers(void **state)
{
	struct fx *f = *state;
	struct proto_path pp = { .path_len = 9 };
	struct iovec v[3] = { { &pp, sizeof(pp) }, { "dir/", 4 }, { "model", 5 } };
	struct iovec many[8];
	int nfds;

	assert_int_equal(msg_sendv(f->sv[0], PROTO_LOOKUP, 0, 3, 0, v, 3, NULL, 0, 0), 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, NULL, 0, &nfds, 0),
			 (int)(sizeof(struct proto_hdr) + sizeof(pp) + 9));
	assert_int_equal(msg_hdr(f->buf)->len, sizeof(pp) + 9);
	assert_memory_equal((const char *)msg_payload(f->buf) + sizeof(pp), "dir/model", 9);
	/* At most 7 payload pieces. */
	for (int i = 0; i < 8; i++) {
		many[i].iov_base = "ab";
		many[i].iov_len = 2;
	}
	assert_int_equal(msg_sendv(f->sv[0], PROTO_PING, 0, 1, 0, many, 7, NULL, 0, 0), 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, NULL, 0, &nfds, 0),
			 (int)sizeof(struct proto_hdr) + 14);
	assert_int_equal(msg_sendv(f->sv[0], PROTO_PING, 0, 1, 0, many, 8, NULL, 0, 0), -EINVAL);
	assert_int_equal(msg_sendv(f->sv[0], PROTO_PING, 0, 1, 0, many, -1, NULL, 0, 0), -EINVAL);
}

/* ---- descriptors ---- */

static void test_fds_passed(void **state)
{
	struct fx *f = *state;
	int sent[3], got[MSG_MAX_FDS], nfds = -1, memfd;
	char c = 0;

	make_fds(sent, 2); /* a pipe: read end, write end */
	memfd = memfd_create("t", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(pwrite(memfd, "hello", 5, 0), 5);
	sent[2] = memfd;
	assert_int_equal(msg_send(f->sv[0], PROTO_OPEN | PROTO_REPLY, 0, 1, 0, "p", 1, sent, 3, 0),
			 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, got, MSG_MAX_FDS, &nfds, 0), 25);
	assert_int_equal(nfds, 3);
	for (int i = 0; i < 3; i++) {
		assert_true(got[i] != sent[i]);
		assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
	}
	/* Usable: write through the received write end, read from the original read end, and
	 * read the memfd's bytes through the received descriptor. */
	assert_int_equal(write(got[1], "z", 1), 1);
	assert_int_equal(read(sent[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	assert_int_equal(write(sent[1], "y", 1), 1);
	assert_int_equal(read(got[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	{
		char buf[8] = { 0 };

		assert_int_equal(pread(got[2], buf, 5, 0), 5);
		assert_string_equal(buf, "hello");
	}
	close_all(got, 3);
	close_all(sent, 3);
}

static void test_extra_fds_closed(void **state)
{
	struct fx *f = *state;
	int before[256], after[256], nb, na, sent[MSG_MAX_FDS], got[MSG_MAX_FDS], nfds;

	make_fds(sent, MSG_MAX_FDS);
	for (int max = 0; max <= MSG_MAX_FDS; max++) {
		nb = fd_snapshot(before, 256);
		assert_int_equal(
			msg_send(f->sv[0], PROTO_CLOSE, 0, 1, 0, "c", 1, sent, MSG_MAX_FDS, 0), 0);
		nfds = -1;
		assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, got, max, &nfds, 0), 25);
		assert_int_equal(nfds, max);
		close_all(got, nfds);
		na = fd_snapshot(after, 256);
		assert_same_fds(before, nb, after, na);
	}
	close_all(sent, MSG_MAX_FDS);
}

/* A peer that sends more descriptors than any message may carry: all of them are dropped. */
static void test_too_many_fds(void **state)
{
	struct fx *f = *state;
	int before[256], after[256], nb, na, sent[24], got[MSG_MAX_FDS], nfds = -1;
	struct proto_hdr h;

	make_fds(sent, 24);
	header(&h, 0);
	nb = fd_snapshot(before, 256);
	raw_send(f->sv[0], &h, sizeof(h), sent, 24);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, got, MSG_MAX_FDS, &nfds, 0),
			 -EPROTO);
	assert_int_equal(nfds, 0);
	na = fd_snapshot(after, 256);
	assert_same_fds(before, nb, after, na);
	close_all(sent, 24);
}

/* ---- malformed frames ---- */

static void expect_eproto(struct fx *f, const void *pkt, size_t n)
{
	int before[256], after[256], nb, na, sent[2], got[MSG_MAX_FDS], nfds = -1;

	make_fds(sent, 2);
	nb = fd_snapshot(before, 256);
	raw_send(f->sv[0], pkt, n, sent, 2);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, got, MSG_MAX_FDS, &nfds, 0),
			 -EPROTO);
	assert_int_equal(nfds, 0);
	na = fd_snapshot(after, 256);
	assert_same_fds(before, nb, after, na);
	close_all(sent, 2);
	/* the connection stays usable */
	assert_int_equal(msg_send(f->sv[0], PROTO_PING, 0, 1, 0, NULL, 0, NULL, 0, 0), 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, got, MSG_MAX_FDS, &nfds, 0),
			 (int)sizeof(struct proto_hdr));
}

static void test_bad_frames(void **state)
{
	struct fx *f = *state;
	char pkt[sizeof(struct proto_hdr) + 16];
	struct proto_hdr h;

	memset(pkt, 'x', sizeof(pkt));
	header(&h, 16);
	h.magic = 0x12345678;
	memcpy(pkt, &h, sizeof(h));
	expect_eproto(f, pkt, sizeof(pkt)); /* wrong magic */
	header(&h, 17);
	memcpy(pkt, &h, sizeof(h));
	expect_eproto(f, pkt, sizeof(pkt)); /* len says more than the packet */
	header(&h, 15);
	memcpy(pkt, &h, sizeof(h));
	expect_eproto(f, pkt, sizeof(pkt)); /* len says less */
	header(&h, 0xffffffffu);
	memcpy(pkt, &h, sizeof(h));
	expect_eproto(f, pkt, sizeof(pkt));
	header(&h, 0);
	expect_eproto(f, &h, sizeof(h) - 1); /* shorter than a header */
	expect_eproto(f, &h, 1);
}

/* A message longer than the receiver's buffer is refused, not cut. */
static void test_truncated(void **state)
{
	struct fx *f = *state;
	char payload[100] = { 0 };
	int sent[2], got[MSG_MAX_FDS], nfds = -1, before[256], after[256], nb, na;

	make_fds(sent, 2);
	nb = fd_snapshot(before, 256);
	assert_int_equal(msg_send(f->sv[0], PROTO_PING, 0, 1, 0, payload, 100, sent, 2, 0), 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, 64, got, MSG_MAX_FDS, &nfds, 0), -EPROTO);
	assert_int_equal(nfds, 0);
	na = fd_snapshot(after, 256);
	assert_same_fds(before, nb, after, na);
	close_all(sent, 2);
}

/* ---- sizes ---- */

static void test_sizes(void **state)
{
	struct fx *f = *state;
	const size_t max_payload = PROTO_MSG_MAX - sizeof(struct proto_hdr);
	char *big = malloc(PROTO_MSG_MAX + 1);
	int fds[MSG_MAX_FDS + 1], nfds;
	struct iovec v[2];

	assert_non_null(big);
	for (size_t i = 0; i <= PROTO_MSG_MAX; i++)
		big[i] = (char)(i % 251);
	assert_int_equal(msg_send(f->sv[0], PROTO_LIST, 0, 1, 0, big, max_payload + 1, NULL, 0, 0),
			 -EMSGSIZE);
	v[0].iov_base = big;
	v[0].iov_len = max_payload;
	v[1].iov_base = big;
	v[1].iov_len = 1;
	assert_int_equal(msg_sendv(f->sv[0], PROTO_LIST, 0, 1, 0, v, 2, NULL, 0, 0), -EMSGSIZE);
	/* The largest message there is goes through whole. */
	assert_int_equal(
		msg_send(f->sv[0], PROTO_LIST | PROTO_REPLY, 0, 2, 0, big, max_payload, NULL, 0, 0),
		0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 0, &nfds, 0),
			 (int)PROTO_MSG_MAX);
	assert_int_equal(msg_hdr(f->buf)->len, max_payload);
	assert_memory_equal(msg_payload(f->buf), big, max_payload);
	/* Too many descriptors. */
	make_fds(fds, MSG_MAX_FDS + 1);
	assert_int_equal(msg_send(f->sv[0], PROTO_PING, 0, 1, 0, NULL, 0, fds, MSG_MAX_FDS + 1, 0),
			 -EINVAL);
	assert_int_equal(msg_send(f->sv[0], PROTO_PING, 0, 1, 0, NULL, 0, fds, -1, 0), -EINVAL);
	close_all(fds, MSG_MAX_FDS + 1);
	free(big);
}

/* ---- end of the connection ---- */

static void test_shutdown(void **state)
{
	struct fx *f = *state;
	int fds[1], nfds = -1;

	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, MSG_DONTWAIT),
			 -EAGAIN);
	assert_int_equal(msg_send(f->sv[0], PROTO_PING, 0, 1, 0, NULL, 0, NULL, 0, 0), 0);
	assert_int_equal(shutdown(f->sv[0], SHUT_WR), 0);
	/* what was sent before the shutdown still arrives, then the end */
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, 0), 24);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, 0), 0);
	assert_int_equal(msg_recv(f->sv[1], f->buf, PROTO_MSG_MAX, fds, 1, &nfds, 0), 0);
	close(f->sv[0]);
	f->sv[0] = -1;
	/* the peer is gone: sending fails with -EPIPE and no SIGPIPE */
	assert_int_equal(msg_send(f->sv[1], PROTO_PING, 0, 1, 0, NULL, 0, NULL, 0, 0), -EPIPE);
}

static void test_nonblocking_full(void **state)
{
	struct fx *f = *state;
	char payload[4096] = { 0 };
	int rc, n = 0;

	/* Fill the socket without a reader: MSG_DONTWAIT gets -EAGAIN instead of blocking. */
	while ((rc = msg_send(f->sv[0], PROTO_PING, 0, 1, 0, payload, sizeof(payload), NULL, 0,
			      MSG_DONTWAIT)) == 0 &&
	       n < 100000)
		n++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(n > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sendv_gathers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fds_passed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_extra_fds_closed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_too_many_fds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_truncated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sizes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nonblocking_full, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
