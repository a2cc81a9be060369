/* fs: the FUSE low-level operations and the inode table. One inode per (path, object version):
 * a newer version of a file gets a new inode at the next lookup after the metadata TTL, while
 * open handles keep reading the version they opened, so the kernel may always keep page caches
 * (FOPEN_KEEP_CACHE) and attributes never change under an inode. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mountd/fs.h"
#include "mountd/inval.h"
#include "mountd/mount.h"

#define INO_TAB 65536

struct inode {
	struct inode *ino_next;
	struct inode *key_next;
	uint64_t ino;
	uint64_t nlookup; /* the kernel's lookup count (forget) */
	char *path;	  /* relative to the mount root; "" for the root */
	uint8_t type;	  /* PROTO_FT_* */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	char version[PROTO_VERSION_MAX];
	/* Its object became complete while read the ordinary way: lookups of (path, version)
	 * get a new inode (whose opens are passthrough); this one lives on for its open files. */
	bool retired;
};

struct fs {
	struct mnt *m;
	pthread_mutex_t lock; /* the inode table */
	struct inode *by_ino[INO_TAB];
	struct inode *by_key[INO_TAB];
	uint64_t next_ino;
	double entry_timeout;
	double attr_timeout;
	double neg_timeout;
	time_t mounted_at;
	struct inval *inval; /* set once the session exists (fs_set_session) */
};

/* A directory snapshot taken at opendir. */
struct dirent_snap {
	char *name;
	struct proto_attr a;
};

struct dirh {
	struct dirent_snap *e;
	size_t n, cap;
	int err;
	bool loaded;
	pthread_mutex_t lock;
};

static uint64_t hash_str(const char *s, const char *v)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (; *v; v++)
		h = (h ^ (uint8_t)*v) * 1099511628211ULL;
	return h;
}

static struct inode *ino_find(struct fs *fs, uint64_t ino)
{
	for (struct inode *i = fs->by_ino[ino % INO_TAB]; i; i = i->ino_next) {
		if (i->ino == ino)
			return i;
	}
	return NULL;
}

/* Finds or creates the inode of (path, attr's version) and counts one lookup. Lock held. */
static struct inode *ino_get(struct fs *fs, const char *path, const struct proto_attr *a)
{
	const char *ver = a->type == PROTO_FT_DIR ? "" : a->version;
	uint64_t h = hash_str(path, ver) % INO_TAB;
	struct inode *i;

	for (i = fs->by_key[h]; i; i = i->key_next) {
		if (!i->retired && i->type == a->type && strcmp(i->path, path) == 0 &&
		    strcmp(i->version, ver) == 0 &&
		    (a->type == PROTO_FT_DIR || i->size == a->size)) {
			i->nlookup++;
			return i;
		}
	}
	i = calloc(1, sizeof(*i));
	if (!i || !(i->path = strdup(path))) {
		free(i);
		return NULL;
	}
	i->ino = ++fs->next_ino;
	i->nlookup = 1;
	i->type = a->type;
	i->size = a->size;
	i->mtime_sec = a->mtime_sec;
	i->mtime_nsec = a->mtime_nsec;
	snprintf(i->version, sizeof(i->version), "%s", ver);
	i->ino_next = fs->by_ino[i->ino % INO_TAB];
	fs->by_ino[i->ino % INO_TAB] = i;
	i->key_next = fs->by_key[h];
	fs->by_key[h] = i;
	return i;
}

static void ino_forget(struct fs *fs, uint64_t ino, uint64_t n)
{
	struct inode *i, **pp;

	if (ino == FUSE_ROOT_ID)
		return;
	i = ino_find(fs, ino);
	if (!i)
		return;
	i->nlookup = n >= i->nlookup ? 0 : i->nlookup - n;
	if (i->nlookup)
		return;
	for (pp = &fs->by_ino[ino % INO_TAB]; *pp; pp = &(*pp)->ino_next) {
		if (*pp == i) {
			*pp = i->ino_next;
			break;
		}
	}
	for (pp = &fs->by_key[hash_str(i->path, i->version) % INO_TAB]; *pp;
	     pp = &(*pp)->key_next) {
		if (*pp == i) {
			*pp = i->key_next;
			break;
		}
	}
	free(i->path);
	free(i);
}

/* Copies an inode's identity out (so it can be used without the lock). */
struct ino_copy {
	char path[PROTO_PATH_MAX];
	uint8_t type;
	uint64_t size;
	char version[PROTO_VERSION_MAX];
	bool retired;
};

static int ino_copy(struct fs *fs, fuse_ino_t ino, struct ino_copy *out)
{
	struct inode *i;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	i = ino_find(fs, ino);
	if (!i) {
		rc = ESTALE;
	} else {
		snprintf(out->path, sizeof(out->path), "%s", i->path);
		out->type = i->type;
		out->size = i->size;
		snprintf(out->version, sizeof(out->version), "%s", i->version);
		out->retired = i->retired;
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static void fill_stat(struct fs *fs, uint64_t ino, uint8_t type, uint64_t size, int64_t mtime,
		      uint32_t nsec, struct stat *st)
{
	const struct mount_opts *o = &fs->m->o;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_blksize = PROTO_BLOCK_SIZE;
	if (type == PROTO_FT_DIR) {
		st->st_mode = S_IFDIR | o->dir_mode;
		st->st_nlink = 2;
		st->st_mtim.tv_sec = fs->mounted_at;
	} else {
		st->st_mode = S_IFREG | o->file_mode;
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
		st->st_mtim.tv_sec = mtime;
		st->st_mtim.tv_nsec = nsec;
	}
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

static void inode_stat(struct fs *fs, const struct inode *i, struct stat *st)
{
	fill_stat(fs, i->ino, i->type, i->size, i->mtime_sec, i->mtime_nsec, st);
}

/* Runs once, at the first request after INIT: the kernel has applied its read-ahead by then,
 * so a larger value written now sticks. */
static void after_init(struct fs *fs)
{
	struct mnt *m = fs->m;

	if (atomic_load(&m->bdi_pending) && atomic_exchange(&m->bdi_pending, false))
		conn_request_bdi(m, m->bdi_major, m->bdi_minor, m->o.read_ahead_kb);
}

struct mnt *fs_mnt(void *userdata)
{
	return ((struct fs *)userdata)->m;
}

static struct fs *fs_of(fuse_req_t req)
{
	struct fs *fs = fuse_req_userdata(req);

	after_init(fs);
	return fs;
}

/* "parent/name", or "name" under the root. */
static int child_path(const char *parent, const char *name, char *out, size_t outsz)
{
	int n;

	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return ENOENT;
	n = *parent ? snprintf(out, outsz, "%s/%s", parent, name)
		    : snprintf(out, outsz, "%s", name);
	return n < 0 || (size_t)n >= outsz ? ENAMETOOLONG : 0;
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	const struct mount_opts *o = &fs->m->o;

	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE; /* hits go from the page cache to the kernel */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA; /* one inode per version: never stale */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->max_background = (unsigned)o->max_background;
	conn->congestion_threshold = (unsigned)o->max_background * 3 / 4;
	log_debug("FUSE init: protocol %u.%u, max_readahead %u, max_write %u, max_background %u, "
		  "capable %#x, want %#x",
		  conn->proto_major, conn->proto_minor, conn->max_readahead, conn->max_write,
		  conn->max_background, conn->capable, conn->want);
}

static void reply_entry(fuse_req_t req, struct fs *fs, struct inode *i)
{
	struct fuse_entry_param e = { 0 };

	e.ino = i->ino;
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->entry_timeout;
	inode_stat(fs, i, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct ino_copy *p = malloc(sizeof(*p));
	char path[PROTO_PATH_MAX];
	struct proto_attr a;
	struct inode *i;
	int rc;

	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = ino_copy(fs, parent, p);
	if (!rc)
		rc = child_path(p->path, name, path, sizeof(path));
	free(p);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	rc = conn_call_lookup(fs->m, path, &a);
	if (rc == -ENOENT) {
		/* A negative entry: the kernel remembers it for the negative TTL. */
		struct fuse_entry_param e = { 0 };

		e.entry_timeout = fs->neg_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		if (rc != -ENAMETOOLONG && rc != -EINVAL)
			log_warn("lookup of %s failed: %s", path, strerror(-rc));
		fuse_reply_err(req, rc == -EINVAL ? ENOENT : -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	i = ino_get(fs, path, &a);
	if (i)
		reply_entry(req, fs, i);
	pthread_mutex_unlock(&fs->lock);
	if (!i)
		fuse_reply_err(req, ENOMEM);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	ino_forget(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t k = 0; k < count; k++)
		ino_forget(fs, forgets[k].ino, forgets[k].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i;
	struct stat st;

	pthread_mutex_lock(&fs->lock);
	i = ino_find(fs, ino);
	if (i)
		inode_stat(fs, i, &st);
	pthread_mutex_unlock(&fs->lock);
	if (!i)
		fuse_reply_err(req, ESTALE);
	else
		fuse_reply_attr(req, &st, fs->attr_timeout);
}

static int snap_add(void *ctx, const struct proto_attr *a, const char *name, size_t len)
{
	struct dirh *d = ctx;
	struct dirent_snap *s;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dirent_snap *ne = realloc(d->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		d->e = ne;
		d->cap = cap;
	}
	s = &d->e[d->n];
	s->name = strndup(name, len);
	if (!s->name)
		return -ENOMEM;
	s->a = *a;
	d->n++;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct ino_copy *c = malloc(sizeof(*c));
	struct dirh *d = calloc(1, sizeof(*d));
	uint64_t cursor = 0;
	int rc;

	if (!c || !d) {
		free(c);
		free(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = ino_copy(fs, ino, c);
	if (!rc && c->type != PROTO_FT_DIR)
		rc = ENOTDIR;
	if (!rc) {
		do {
			rc = -conn_call_list(fs->m, c->path, cursor, snap_add, d, &cursor);
		} while (!rc && cursor);
	}
	free(c);
	if (rc) {
		for (size_t k = 0; k < d->n; k++)
			free(d->e[k].name);
		free(d->e);
		free(d);
		if (rc != ENOENT)
			log_warn("listing a directory failed: %s", strerror(rc));
		fuse_reply_err(req, rc);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = fs->m->o.metadata_ttl < 0;
	fi->keep_cache = fs->m->o.metadata_ttl < 0;
	fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	struct ino_copy *self = malloc(sizeof(*self));

	if (!buf || !self || ino_copy(fs, ino, self)) {
		free(buf);
		free(self);
		fuse_reply_err(req, buf && self ? ESTALE : ENOMEM);
		return;
	}
	/* Offsets: 0 = ".", 1 = "..", 2 + k = entry k. */
	for (off_t k = off; (size_t)k < d->n + 2; k++) {
		struct stat st;
		size_t need;

		if (k < 2) {
			fill_stat(fs, k == 0 ? ino : FUSE_ROOT_ID, PROTO_FT_DIR, 0, 0, 0, &st);
			if (plus) {
				struct fuse_entry_param e = { 0 };

				e.attr = st;
				need = fuse_add_direntry_plus(req, buf + used, size - used,
							      k == 0 ? "." : "..", &e, k + 1);
			} else {
				need = fuse_add_direntry(req, buf + used, size - used,
							 k == 0 ? "." : "..", &st, k + 1);
			}
		} else {
			struct dirent_snap *s = &d->e[k - 2];
			char path[PROTO_PATH_MAX];

			if (child_path(self->path, s->name, path, sizeof(path)))
				continue;
			if (plus) {
				struct fuse_entry_param e = { 0 };
				struct inode *i;

				pthread_mutex_lock(&fs->lock);
				i = ino_get(fs, path, &s->a);
				if (i) {
					e.ino = i->ino;
					e.attr_timeout = fs->attr_timeout;
					e.entry_timeout = fs->entry_timeout;
					inode_stat(fs, i, &e.attr);
				}
				pthread_mutex_unlock(&fs->lock);
				if (!i)
					break;
				need = fuse_add_direntry_plus(req, buf + used, size - used, s->name,
							      &e, k + 1);
				if (need > size - used) {
					/* Not sent: undo the lookup count it took. */
					pthread_mutex_lock(&fs->lock);
					ino_forget(fs, e.ino, 1);
					pthread_mutex_unlock(&fs->lock);
				}
			} else {
				fill_stat(fs, 0, s->a.type, s->a.size, s->a.mtime_sec,
					  s->a.mtime_nsec, &st);
				st.st_ino = 0;
				need = fuse_add_direntry(req, buf + used, size - used, s->name, &st,
							 k + 1);
			}
		}
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	free(self);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	for (size_t k = 0; k < d->n; k++)
		free(d->e[k].name);
	free(d->e);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct ino_copy *c;
	struct mobj *o;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	c = malloc(sizeof(*c));
	if (!c) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = ino_copy(fs, ino, c);
	if (!rc && c->type == PROTO_FT_DIR)
		rc = EISDIR;
	if (!rc) {
		rc = -objs_open(fs->m, ino, c->path, c->version, c->size, !c->retired, &o);
		if (rc && rc != ENOENT)
			log_warn("open of %s failed: %s", c->path, strerror(rc));
		if (rc == ESTALE)
			rc = ENOENT; /* that version is gone from the store */
	}
	free(c);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)o;
	fi->keep_cache = 1; /* one inode per version: cached pages never go stale */
	fi->direct_io = fs->m->o.direct_io;
	fi->noflush = 1;
	if (objs_backing(o) > 0) {
		/* The kernel reads the cache file itself; it refuses KEEP_CACHE with passthrough.
		 */
		fi->keep_cache = 0;
		passthru_next_open(objs_backing(o));
		atomic_fetch_add(&fs->m->pt.opens, 1);
	}
	rc = fuse_reply_open(req, fi);
	passthru_next_open(0);
	if (rc == -ENOENT)
		objs_release(fs->m, o); /* the opener was interrupted */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	objs_read(fs->m, (struct mobj *)(uintptr_t)fi->fh, req, (uint64_t)off, size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);

	objs_release(fs->m, (struct mobj *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };

	sv.f_bsize = PROTO_BLOCK_SIZE;
	sv.f_frsize = PROTO_BLOCK_SIZE;
	sv.f_blocks = 1ull << 30; /* an object store has no meaningful capacity */
	sv.f_files = 1ull << 30;
	sv.f_namemax = 1024;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct ino_copy *c = malloc(sizeof(*c));
	char val[PROTO_URL_MAX + PROTO_PATH_MAX];
	size_t len;

	if (!c || ino_copy(fs, ino, c)) {
		free(c);
		fuse_reply_err(req, c ? ESTALE : ENOMEM);
		return;
	}
	if (strcmp(name, "user.hoardfs.version") == 0 && c->type == PROTO_FT_FILE) {
		snprintf(val, sizeof(val), "%s", c->version);
	} else if (strcmp(name, "user.hoardfs.url") == 0) {
		snprintf(val, sizeof(val), "%s%s", fs->m->o.url, c->path);
	} else {
		free(c);
		fuse_reply_err(req, ENODATA);
		return;
	}
	free(c);
	len = strlen(val);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = "user.hoardfs.version\0user.hoardfs.url\0";

	if (size == 0)
		fuse_reply_xattr(req, sizeof(names) - 1);
	else if (size < sizeof(names) - 1)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, sizeof(names) - 1);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

/* Everything that would change the tree: a read-only file system. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.access = op_access,
	.create = op_create,
};

/* ---- replies for objs.c ---- */

static int reply_data(void *req, int fd, uint64_t off, size_t len)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
	int rc;

	if (len == 0)
		return fuse_reply_buf(req, NULL, 0);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = (off_t)off;
	/* fuse_reply_data answers the request in every case (an error if reading fails). */
	rc = fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	return rc == -ENOENT ? 0 : rc; /* -ENOENT: the reader was interrupted, nothing to do */
}

static int reply_mem(void *req, const void *p, size_t len)
{
	int rc = fuse_reply_buf(req, p, len);

	return rc == -ENOENT ? 0 : rc;
}

static void reply_error(void *req, int err)
{
	fuse_reply_err(req, err);
}

static const struct reply_ops replies = { reply_data, reply_mem, reply_error };

int fs_new(struct mnt *m, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct inode *root;
	struct proto_attr ra = { .type = PROTO_FT_DIR };
	double ttl = m->o.metadata_ttl < 0 ? 86400.0 * 365 : (double)m->o.metadata_ttl;

	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->lock, NULL);
	fs->m = m;
	m->reply = &replies;
	fs->entry_timeout = ttl;
	fs->attr_timeout = 86400.0 * 365; /* attributes of an inode never change */
	fs->neg_timeout = m->o.neg_ttl;
	fs->mounted_at = time(NULL);
	fs->next_ino = FUSE_ROOT_ID - 1;
	root = ino_get(fs, "", &ra);
	if (!root || root->ino != FUSE_ROOT_ID) {
		free(fs);
		return -ENOMEM;
	}
	*out = fs;
	return 0;
}

/* The object of inode `ino` was read the ordinary way and is now complete, or no longer open:
 * retire the inode and make the kernel look the name up again, so that new opens reach a fresh
 * inode whose mode is decided at its first open (an inode's opens are all passthrough or all
 * ordinary: the kernel fails a mix with EIO). */
static void retire_inode(void *ctx, uint64_t ino)
{
	struct fs *fs = ctx;
	char parent[PROTO_PATH_MAX], *slash;
	uint64_t pino = FUSE_ROOT_ID;
	struct inode *i;

	pthread_mutex_lock(&fs->lock);
	i = ino_find(fs, ino);
	if (!i || i->retired || i->type != PROTO_FT_FILE || !fs->inval) {
		pthread_mutex_unlock(&fs->lock);
		return;
	}
	i->retired = true;
	snprintf(parent, sizeof(parent), "%s", i->path);
	slash = strrchr(parent, '/');
	if (slash) {
		*slash = '\0';
		pino = 0;
		for (struct inode *p = fs->by_key[hash_str(parent, "") % INO_TAB]; p;
		     p = p->key_next) {
			if (p->type == PROTO_FT_DIR && strcmp(p->path, parent) == 0) {
				pino = p->ino;
				break;
			}
		}
	}
	if (pino)
		inval_entry(fs->inval, pino, slash ? slash + 1 : i->path);
	pthread_mutex_unlock(&fs->lock);
}

int fs_set_session(struct fs *fs, struct fuse_session *se)
{
	int rc = inval_start(se, &fs->inval);

	if (!rc) {
		fs->m->hook_ctx = fs;
		fs->m->ordinary_done_hook = retire_inode;
	}
	return rc;
}

void fs_stop(struct fs *fs)
{
	if (!fs)
		return;
	fs->m->ordinary_done_hook = NULL;
	inval_stop(fs->inval);
	fs->inval = NULL;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_stop(fs);
	for (size_t k = 0; k < INO_TAB; k++) {
		while (fs->by_ino[k]) {
			struct inode *i = fs->by_ino[k];

			fs->by_ino[k] = i->ino_next;
			free(i->path);
			free(i);
		}
	}
	free(fs);
}

const struct fuse_lowlevel_ops *fs_ops(void)
{
	return &ops;
}
