/* inval: tells the kernel to forget directory entries, from a thread of its own. A notification
 * must not be sent from a thread the kernel may wait for (it takes the parent directory's lock,
 * which a LOOKUP in that directory holds until it is answered), so callers queue and return. */
#ifndef HOARDFS_INVAL_H
#define HOARDFS_INVAL_H

#include <stdint.h>

struct inval;
struct fuse_session;

/* Starts the notifier for session se. Returns 0 or -errno. */
int inval_start(struct fuse_session *se, struct inval **out);
/* Queues "forget entry `name` of directory inode `parent`" (name is copied). Best effort: an
 * allocation failure drops it (the entry then expires with its timeout). */
void inval_entry(struct inval *iv, uint64_t parent, const char *name);
/* Stops the thread (dropping what is still queued) and frees iv. NULL is ignored. */
void inval_stop(struct inval *iv);

#endif
