/* fs: the FUSE low-level operations of a hoardfs mount (FUSE types stay in fs.c and main.c). */
#ifndef HOARDFS_FS_H
#define HOARDFS_FS_H

struct fs;
struct mnt;
struct fuse_lowlevel_ops;
struct fuse_session;

/* Creates the inode table (with the root) and installs the reply hooks in m. 0 or -ENOMEM. */
int fs_new(struct mnt *m, struct fs **out);
void fs_free(struct fs *fs);
/* Starts what needs the session (the thread that invalidates entries) and hooks the fs to the
 * mount's completion events. Returns 0 or -errno (the mount then stays without inode switches). */
int fs_set_session(struct fs *fs, struct fuse_session *se);
/* Stops that thread; call before the session is destroyed. */
void fs_stop(struct fs *fs);
/* The mount of a session's userdata (an fs). */
struct mnt *fs_mnt(void *userdata);
/* The operations table to pass to fuse_session_new() with the fs as userdata. */
const struct fuse_lowlevel_ops *fs_ops(void);

#endif
