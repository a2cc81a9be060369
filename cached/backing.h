/* backing: FUSE passthrough backing files the daemon registers for mounts that may not (no
 * CAP_SYS_ADMIN): the daemon opens the cache file itself, through a read-only clone of the
 * objects directory's mount, and registers it on the mount's FUSE connection. */
#ifndef HOARDFS_BACKING_H
#define HOARDFS_BACKING_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct conn;

/* Sets up the read-only view of the objects directory (a detached, read-only clone of its mount).
 * Without privilege, or if a step fails, the daemon logs one line and answers BACKING requests
 * with EPERM. Returns 0 (never fatal). */
int backing_init(struct daemon *d);
void backing_fini(struct daemon *d);
/* A BACKING request from conn c (engine); fuse_fd is the descriptor it carried (or -1), closed
 * here. Replies on c. */
void backing_request(struct daemon *d, struct conn *c, uint32_t seq, const void *p, size_t len,
		     int fuse_fd);

#endif
