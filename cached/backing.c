/* backing: registers FUSE passthrough backing files on a mount's FUSE connection for the mount
 * (engine thread). The kernel opens a backing file again for every passthrough open, with the
 * open's flags and the *registrar's* credentials: a hostile mount that answered a write open
 * with passthrough and a backing id the daemon registered would write the shared cache file
 * with the daemon's rights. So the daemon registers only files it opened itself, never a
 * descriptor a mount sent, through a read-only, detached clone of the mount of its objects
 * directory (open_tree + mount_setattr): a write open of such a backing file fails. */
#include "cached/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cached/daemon.h"
#include "common/log.h"

/* FUSE protocol 7.40 (newer than Debian 12's <linux/fuse.h>). */
struct backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define DEV_IOC_BACKING_OPEN  _IOW(229, 1, struct backing_map)
#define DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
#define FUSE_DEV_MAJOR	      10
#define FUSE_DEV_MINOR	      229
#define BACKING_MAX_PER_CONN  65536 /* ids one mount may hold through the daemon */

int backing_init(struct daemon *d)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					       MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC };
	char objects[PATH_MAX + 16];
	struct statvfs sv;
	const char *step;

	d->ro_objects_fd = -1;
	if (geteuid() != 0) {
		log_info("passthrough for mounts without CAP_SYS_ADMIN is off (the daemon is not "
			 "root): such mounts read through FUSE");
		return 0;
	}
	snprintf(objects, sizeof(objects), "%s/objects", d->cfg.cache_dir);
	/* A detached clone of the mount under objects/, attached nowhere and seen by no one but
	 * this descriptor (no mount namespace of our own: a copy of the host's mounts would keep
	 * every FUSE mount that existed then alive after the host unmounts it). */
	step = "cloning the objects directory's mount (open_tree)";
	d->ro_objects_fd = open_tree(AT_FDCWD, objects, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (d->ro_objects_fd < 0)
		goto fail;
	step = "making the clone read-only (mount_setattr)";
	if (mount_setattr(d->ro_objects_fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		goto fail;
	step = "checking the clone is read-only";
	if (fstatvfs(d->ro_objects_fd, &sv) < 0 || !(sv.f_flag & ST_RDONLY)) {
		errno = EROFS;
		goto fail;
	}
	log_debug("read-only view of %s for passthrough registrations", objects);
	return 0;
fail:
	log_warn("passthrough for mounts without CAP_SYS_ADMIN is off: %s: %s", step,
		 strerror(errno));
	if (d->ro_objects_fd >= 0)
		close(d->ro_objects_fd);
	d->ro_objects_fd = -1;
	return 0;
}

void backing_fini(struct daemon *d)
{
	if (d->ro_objects_fd >= 0)
		close(d->ro_objects_fd);
	d->ro_objects_fd = -1;
}

/* Whether fd is /dev/fuse (a FUSE connection, or a clone of one). */
static bool is_fuse_dev(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == FUSE_DEV_MAJOR &&
	       minor(st.st_rdev) == FUSE_DEV_MINOR;
}

/* Opens object `id`'s cache file read-only through the read-only view and registers it. */
static int register_file(struct daemon *d, int fuse_fd, uint64_t id)
{
	struct backing_map map = { 0 };
	struct statvfs sv;
	char name[32];
	int fd, rc;

	snprintf(name, sizeof(name), "%016" PRIx64, id);
	fd = openat(d->ro_objects_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstatvfs(fd, &sv) < 0 || !(sv.f_flag & ST_RDONLY)) {
		close(fd);
		return -EROFS; /* never register a writable file */
	}
	map.fd = fd;
	rc = ioctl(fuse_fd, DEV_IOC_BACKING_OPEN, &map);
	rc = rc > 0 ? rc : rc < 0 ? -errno : -EIO;
	close(fd); /* the kernel holds its own reference */
	return rc;
}

void backing_request(struct daemon *d, struct conn *c, uint32_t seq, const void *p, size_t len,
		     int fuse_fd)
{
	struct proto_backing req, rep = { 0 };
	uint64_t id;
	int rc = -EINVAL;

	if (len != sizeof(req) || fuse_fd < 0 || !is_fuse_dev(fuse_fd))
		goto out;
	memcpy(&req, p, sizeof(req));
	rep.op = req.op;
	if (d->ro_objects_fd < 0) {
		rc = -EPERM;
	} else if (req.op == PROTO_BACKING_OPEN) {
		rc = objects_pinned_handle(c, req.handle, &id);
		if (!rc && c->backing_ids >= BACKING_MAX_PER_CONN)
			rc = -EMFILE;
		if (!rc)
			rc = register_file(d, fuse_fd, id);
		if (rc > 0) {
			rep.backing_id = rc;
			c->backing_ids++;
			atomic_fetch_add(&d->st.backing_registered, 1);
			rc = 0;
		}
	} else if (req.op == PROTO_BACKING_CLOSE) {
		uint32_t v = (uint32_t)req.backing_id;

		rc = req.backing_id > 0 && ioctl(fuse_fd, DEV_IOC_BACKING_CLOSE, &v) == 0 ? 0
		     : req.backing_id > 0						  ? -errno
											  : -EINVAL;
		if (!rc && c->backing_ids)
			c->backing_ids--;
	}
	if (rc && rc != -EPERM)
		log_debug("backing request %u from mount %" PRIu64 ": %s", req.op, c->mount_id,
			  strerror(-rc));
out:
	if (fuse_fd >= 0)
		close(fuse_fd);
	conn_reply(c, PROTO_BACKING, seq, rc, rc ? NULL : &rep, rc ? 0 : sizeof(rep), NULL, 0);
}
