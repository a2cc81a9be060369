/* msg: framed proto messages on SOCK_SEQPACKET Unix sockets, with descriptor passing. */
#ifndef HOARDFS_MSG_H
#define HOARDFS_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/proto.h"

#define MSG_MAX_FDS 4

/*
 * Sends one message: a proto_hdr built from the arguments, then the payload gathered from
 * `iov` (may be NULL with iovcnt 0), and `nfds` descriptors (0..MSG_MAX_FDS) via SCM_RIGHTS.
 * `sendflags` is passed to sendmsg (MSG_NOSIGNAL is always added; add MSG_DONTWAIT to never
 * block). Returns 0, -EMSGSIZE when the message would exceed PROTO_MSG_MAX, -EAGAIN, -EPIPE,
 * or another -errno. The caller keeps ownership of the descriptors.
 */
int msg_sendv(int sock, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
	      const struct iovec *iov, int iovcnt, const int *fds, int nfds, int sendflags);

/* msg_sendv() with one contiguous payload. */
int msg_send(int sock, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
	     const void *payload, size_t len, const int *fds, int nfds, int sendflags);

/*
 * Receives one message into `buf` (at least PROTO_MSG_MAX bytes) and checks its framing: the
 * header's magic, that `len` matches the bytes received, that nothing was truncated. Up to
 * `max_fds` received descriptors are stored in fds[] (count in *nfds, each close-on-exec);
 * any descriptors beyond that, or any at all when max_fds is 0, are closed unread, as are all
 * descriptors of a message that fails a check. Returns the message size (> 0), 0 on orderly
 * shutdown, -EPROTO for a malformed message, -EAGAIN (non-blocking socket, nothing there), or
 * another -errno. `recvflags` is passed to recvmsg (MSG_CMSG_CLOEXEC is always added).
 */
int msg_recv(int sock, void *buf, size_t bufsz, int *fds, int max_fds, int *nfds, int recvflags);

/* The header at the start of a buffer filled by msg_recv(). */
static inline const struct proto_hdr *msg_hdr(const void *buf)
{
	return (const struct proto_hdr *)buf;
}

/* The payload after the header. */
static inline const void *msg_payload(const void *buf)
{
	return (const char *)buf + sizeof(struct proto_hdr);
}

#endif
