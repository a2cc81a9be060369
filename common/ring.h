/* ring: the per-mount shared-memory ring: two single-producer single-consumer queues of
 * struct ring_entry (proto.h) in one sealed memfd. Submissions flow mount -> daemon, completions
 * daemon -> mount. Each side keeps its own indices privately and only publishes them, so a peer
 * that scribbles on the shared header can make the other side see "corrupt", never overrun. */
#ifndef HOARDFS_RING_H
#define HOARDFS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

#define RING_MAGIC	 0x47524648u /* "HFRG" */
#define RING_VERSION	 1u
#define RING_MIN_ENTRIES 8u
#define RING_MAX_ENTRIES 65536u

enum ring_role {
	RING_ROLE_DAEMON = 1, /* consumes submissions, produces completions */
	RING_ROLE_MOUNT = 2,  /* produces submissions, consumes completions */
};

struct ring;

/* Bytes of memfd a ring of `entries` per queue needs. */
size_t ring_bytes(uint32_t entries);

/*
 * Daemon side: creates a memfd holding a ring of `entries` per queue (a power of two in
 * [RING_MIN_ENTRIES, RING_MAX_ENTRIES]), seals it against shrinking, growing and further sealing,
 * and maps it. *fd_out is the memfd (close-on-exec) to send to the mount; the caller owns it.
 * Returns 0, -EINVAL, or -errno from memfd_create/ftruncate/fcntl/mmap.
 */
int ring_create(uint32_t entries, uint64_t mount_id, int *fd_out, struct ring **out);

/*
 * Maps a ring received from the other side (the caller keeps ownership of fd). Checks the size
 * against the header, the magic and version, and that the memfd is sealed against shrinking.
 * Returns 0, -EPROTO for a malformed ring, -EPERM for a ring that is not sealed, or -errno.
 */
int ring_attach(int fd, enum ring_role role, struct ring **out);

/* Unmaps the ring. NULL is allowed. */
void ring_free(struct ring *r);

/* Appends one entry to the queue this side produces. Returns 0, -EAGAIN when the queue is full,
 * -EPROTO when the peer's published index is impossible (the ring is then unusable). */
int ring_push(struct ring *r, const struct ring_entry *e);

/* Takes the next entry from the queue this side consumes, copying it out of shared memory
 * before anything looks at it. Returns 1 (an entry), 0 (empty), or -EPROTO (the peer's
 * published index is impossible). */
int ring_pop(struct ring *r, struct ring_entry *out);

/* Entries this side could push right now (0 when full or corrupt). */
uint32_t ring_space(struct ring *r);

/* Entries per queue. */
uint32_t ring_entries(const struct ring *r);

/* A mount's read counters, published in the ring for the daemon's statistics. */
struct ring_mount_stats {
	uint64_t hits; /* reads answered from the cache file without the daemon */
	uint64_t hit_bytes;
	uint64_t misses; /* reads that waited for the daemon */
	uint64_t miss_bytes;
};

/* Mount side: publishes its counters (since it registered). */
void ring_publish_stats(struct ring *r, const struct ring_mount_stats *s);

/* Daemon side: reads what the mount published. The values are untrusted (display only). */
void ring_read_stats(const struct ring *r, struct ring_mount_stats *out);

/* The mount id written by the daemon at creation. */
uint64_t ring_mount_id(const struct ring *r);

#endif
