/* client: the daemon's client side, shared by the mount, hoardfs-inspect and test tools: a
 * connection to the socket with concurrent request/reply calls, REGISTER with the ring, ring
 * submissions, and a thread that delivers completions. */
#ifndef HOARDFS_CLIENT_H
#define HOARDFS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

struct hfc;

/* Called on the client's receive thread for every completion the daemon posts. */
typedef void (*hfc_complete_fn)(void *ctx, const struct ring_entry *e);
/* Called once on the receive thread when the connection to the daemon is lost. */
typedef void (*hfc_lost_fn)(void *ctx);

/*
 * Connects to the daemon's socket and starts the receive thread. Returns 0, -ENOENT or
 * -ECONNREFUSED when no daemon listens there, -ENAMETOOLONG, -EPERM when the daemon is not one
 * to trust (see hfc_connect_checked), or -errno.
 */
int hfc_connect(const char *socket_path, struct hfc **out);

/*
 * hfc_connect, saying in `why` (one line, no trailing newline) why a daemon was refused: whoever
 * listens on a socket serves the caller's bytes, so the socket's directory must belong to root or
 * to the caller and be writable by nobody else (a root-owned sticky directory such as /tmp is
 * accepted: others can create names there but not replace ours), and the process that accepted
 * the connection (SO_PEERCRED) must run as root or as the caller. Anything else: -EPERM.
 */
int hfc_connect_checked(const char *socket_path, struct hfc **out, char *why, size_t whysz);

/*
 * Closes the connection: calls still waiting fail with -ENOTCONN, the receive thread is joined,
 * the ring unmapped. No callback runs after this returns. NULL is allowed.
 */
void hfc_close(struct hfc *c);

/*
 * Sends request `type` with `payload` and waits up to timeout_ms for the reply. Any number of
 * threads may call at once. On return *status holds the daemon's status (0 or -errno) and the
 * reply payload is copied into reply (up to reply_max bytes; *reply_len the payload size),
 * descriptors into fds (up to max_fds; *nfds how many; extra ones are closed). A reply in several
 * parts (PROTO_F_MORE) is joined if it fits. Returns 0 when a reply arrived, -ETIMEDOUT,
 * -ENOTCONN (connection lost), -EMSGSIZE (reply larger than reply_max: nothing copied).
 */
int hfc_call(struct hfc *c, uint16_t type, const void *payload, size_t len, int timeout_ms,
	     int *status, void *reply, size_t reply_max, size_t *reply_len, int *fds, int max_fds,
	     int *nfds);

/* REGISTER options. */
struct hfc_register {
	const char *url;	/* "gs://bucket/prefix" */
	const char *endpoint;	/* NULL or "" = the daemon's default */
	const char *region;	/* NULL = default */
	const char *mountpoint; /* for status displays */
	bool anonymous;
	bool started_daemon; /* this process started the daemon */
	int metadata_ttl;    /* seconds, -1 = never */
	int neg_ttl;
	hfc_complete_fn on_complete;
	hfc_lost_fn on_lost;
	void *ctx;
};

/*
 * Registers as a mount: on success the ring is mapped and completions start flowing to
 * on_complete (which must not block for long). *reply gets the daemon's answer. Returns 0, the
 * daemon's error (-ENOENT unknown bucket, -EACCES, -EPERM not allowed, -ECONNREFUSED endpoint
 * unreachable, -EPROTONOSUPPORT), -ETIMEDOUT, -ENOTCONN, or -EPROTO for a bad ring.
 */
int hfc_register(struct hfc *c, const struct hfc_register *r, int timeout_ms,
		 struct proto_register_reply *reply);

/*
 * Submits ring entries (thread-safe; one lock serialises producers). Returns 0, -EAGAIN when
 * the ring is full (retry after completions drain), -ENOTCONN when not registered or lost, or
 * -EPROTO when the ring is corrupt.
 */
int hfc_submit(struct hfc *c, const struct ring_entry *e);

/* Publishes the mount's read counters in the ring (no-op before REGISTER). */
struct ring_mount_stats;
void hfc_publish_stats(struct hfc *c, const struct ring_mount_stats *s);

/* Whether the connection is still up. */
bool hfc_alive(struct hfc *c);

/* Helpers for the common requests. `path` is relative to the mount root ("" = root). */
int hfc_lookup(struct hfc *c, const char *path, int timeout_ms, struct proto_attr *out);

/* One page of a directory: calls fn for each entry (name not NUL-terminated). Returns 0 or an
 * error, and sets *next_cursor (0 at the end). */
int hfc_list(struct hfc *c, const char *path, uint64_t cursor, int timeout_ms,
	     int (*fn)(void *ctx, const struct proto_attr *a, const char *name, size_t len),
	     void *ctx, uint64_t *next_cursor);

/*
 * Opens an object version. On success *fd is a read-only descriptor of its cache file (the
 * caller closes it), *rep the handle and size, and *bitmap a malloc'ed presence map of
 * rep->nblocks bits (the caller frees it). Returns 0 or an error.
 */
int hfc_open(struct hfc *c, const char *path, const char *version, uint64_t size, uint32_t flags,
	     int timeout_ms, struct proto_open_reply *rep, uint8_t **bitmap, int *fd);

int hfc_close_handle(struct hfc *c, uint32_t handle, int timeout_ms);

/* Asks the daemon to register (PROTO_BACKING_OPEN: pinned `handle`) or release
 * (PROTO_BACKING_CLOSE: `id`) a passthrough backing file on the FUSE connection of fuse_fd.
 * Returns the new backing id (> 0) for OPEN, 0 for CLOSE, or -errno. */
int hfc_backing(struct hfc *c, uint32_t op, uint32_t handle, int32_t id, int fuse_fd,
		int timeout_ms);

/* Sends a JSON control request and returns the reply text (malloc'ed, NUL-terminated). */
int hfc_ctl(struct hfc *c, const char *json, int timeout_ms, int *status, char **reply);

#endif
