/* fs: the FUSE low-level operations of a hoardfs mount (FUSE types stay in fs.c and main.c). */
#ifndef HOARDFS_FS_H
#define HOARDFS_FS_H

struct fs;
struct mnt;
struct fuse_lowlevel_ops;

/* Creates the inode table (with the root) and installs the reply hooks in m. 0 or -ENOMEM. */
int fs_new(struct mnt *m, struct fs **out);
void fs_free(struct fs *fs);
/* The operations table to pass to fuse_session_new() with the fs as userdata. */
const struct fuse_lowlevel_ops *fs_ops(void);

#endif
