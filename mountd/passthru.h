/* passthru: FUSE passthrough for complete objects. The kernel then serves reads (and mmap) of an
 * open file straight from the cache file: no READ request reaches the mount, no copy, and every
 * mount of the host shares the cache file's page cache. libfuse 3.14 has no API for it, so this
 * module installs libfuse's custom-io hooks, which see (and patch) the INIT and OPEN replies, and
 * registers backing files with the FUSE device's ioctls. */
#ifndef HOARDFS_PASSTHRU_H
#define HOARDFS_PASSTHRU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct fuse_session;

struct passthru {
	int dev_fd;		      /* the session's /dev/fuse descriptor (registrations) */
	_Atomic bool offered;	      /* the kernel's INIT offered passthrough */
	_Atomic bool negotiated;      /* ... and our INIT reply asked for it */
	_Atomic bool failed;	      /* a registration was refused: ordinary reads from now on */
	_Atomic bool delegated;	      /* we may not register: the daemon does it for us */
	uint64_t init_unique;	      /* the INIT request's id (reader thread, before any reply) */
	_Atomic uint64_t opens;	      /* opens answered in passthrough mode */
	_Atomic uint64_t fallbacks;   /* opens of complete objects answered the ordinary way */
	_Atomic uint64_t backing_ids; /* backing files registered in all */
};

/* Installs the hooks on se (mounted, not yet looping), whose userdata is the fs of the mount that
 * holds pt. Returns 0 or -errno (then nothing was installed: the mount runs without
 * passthrough). */
int passthru_install(struct passthru *pt, struct fuse_session *se);
/* Whether an OPEN may be answered in passthrough mode now. */
bool passthru_usable(const struct passthru *pt);
/* Registers file descriptor fd (read-only, a complete cache file) as a backing file. Returns the
 * positive backing id, or -errno (-EPERM: this process lacks CAP_SYS_ADMIN; the daemon may
 * register for it, PROTO_BACKING). */
int passthru_register(struct passthru *pt, int fd);
/* Turns passthrough off for the rest of the mount's life, with one log line naming `how` failed
 * with `err` (reads then go through FUSE, correct but copied). */
void passthru_failed(struct passthru *pt, int err, const char *how);
/* Releases a backing id once no open file of its inode uses it. */
void passthru_unregister(struct passthru *pt, int id);
/* Makes the next OPEN reply sent by this thread a passthrough open of backing id `id` (0: an
 * ordinary open). Call right before fuse_reply_open() in the same thread. */
void passthru_next_open(int id);

#endif
