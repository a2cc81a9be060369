/* msg: framed messages with SCM_RIGHTS. */
#include "common/msg.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t msg_sendmsg(int sock, const struct msghdr *m, int sendflags)
{
	ssize_t n;

	do {
		n = sendmsg(sock, m, sendflags | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n;
}

/*
 * A SOCK_SEQPACKET packet must fit the socket's send buffer whole, and the default buffer
 * (net.core.wmem_default, 208 KiB) is smaller than PROTO_MSG_MAX. Raises it (the kernel doubles
 * the value asked for); false when it is already that large or cannot be raised.
 */
static bool msg_raise_sndbuf(int sock)
{
	int cur = 0, want = (int)PROTO_MSG_MAX;
	socklen_t len = sizeof(cur);

	if (getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &cur, &len) < 0 || cur >= 2 * want)
		return false;
	return setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)) == 0;
}

int msg_sendv(int sock, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
	      const struct iovec *iov, int iovcnt, const int *fds, int nfds, int sendflags)
{
	struct proto_hdr h = {
		.magic = PROTO_MAGIC, .type = type, .flags = flags, .seq = seq, .status = status
	};
	struct iovec v[8];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * MSG_MAX_FDS)];
	} cbuf;
	struct msghdr m = { 0 };
	size_t total = 0;
	ssize_t n;

	if (iovcnt < 0 || iovcnt > 7 || nfds < 0 || nfds > MSG_MAX_FDS)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		v[i + 1] = iov[i];
		total += iov[i].iov_len;
	}
	if (total > PROTO_MSG_MAX - sizeof(h))
		return -EMSGSIZE;
	h.len = (uint32_t)total;
	v[0].iov_base = &h;
	v[0].iov_len = sizeof(h);
	m.msg_iov = v;
	m.msg_iovlen = (size_t)iovcnt + 1;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	n = msg_sendmsg(sock, &m, sendflags);
	if (n < 0 && errno == EMSGSIZE && msg_raise_sndbuf(sock))
		n = msg_sendmsg(sock, &m, sendflags);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if ((size_t)n != sizeof(h) + total)
		return -EIO; /* cannot happen on SOCK_SEQPACKET; be safe */
	return 0;
}

int msg_send(int sock, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
	     const void *payload, size_t len, const int *fds, int nfds, int sendflags)
{
	struct iovec v = { (void *)payload, len };

	return msg_sendv(sock, type, flags, seq, status, &v, len ? 1 : 0, fds, nfds, sendflags);
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int msg_recv(int sock, void *buf, size_t bufsz, int *fds, int max_fds, int *nfds, int recvflags)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} cbuf;
	struct iovec v = { buf, bufsz };
	struct msghdr m = { .msg_iov = &v,
			    .msg_iovlen = 1,
			    .msg_control = cbuf.buf,
			    .msg_controllen = sizeof(cbuf.buf) };
	int got[16], ngot = 0, kept = 0;
	const struct proto_hdr *h = buf;
	ssize_t n;

	*nfds = 0;
	do {
		n = recvmsg(sock, &m, recvflags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < cnt && ngot < 16; i++)
				memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		}
	}
	if (n == 0 && ngot == 0)
		return 0;
	if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(*h) ||
	    h->magic != PROTO_MAGIC || h->len != (size_t)n - sizeof(*h)) {
		close_fds(got, ngot);
		return -EPROTO;
	}
	for (int i = 0; i < ngot; i++) {
		if (kept < max_fds)
			fds[kept++] = got[i];
		else
			close(got[i]);
	}
	*nfds = kept;
	return (int)n;
}
