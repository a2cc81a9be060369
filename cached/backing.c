/* backing: registers FUSE passthrough backing files on a mount's FUSE connection for the mount
 * (engine thread). The kernel opens a backing file again for every passthrough open, with the
 * open's flags and the *registrar's* credentials: a hostile mount that answered a write open
 * with passthrough and a backing id the daemon registered would write the shared cache file
 * with the daemon's rights. So the daemon registers only files it opened itself, never a
 * descriptor a mount sent, through a read-only bind mount of its objects directory (a private
 * mount namespace, made before any thread starts): a write open of such a backing file fails. */
#include "cached/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
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
	char objects[PATH_MAX + 16], view[PATH_MAX + 16];
	struct statvfs sv;
	const char *step;

	d->ro_objects_fd = -1;
	if (geteuid() != 0) {
		log_info("passthrough for mounts without CAP_SYS_ADMIN is off (the daemon is not "
			 "root): such mounts read through FUSE");
		return 0;
	}
	snprintf(objects, sizeof(objects), "%s/objects", d->cfg.cache_dir);
	snprintf(view, sizeof(view), "%s/objects-ro", d->cfg.cache_dir);
	step = "unshare(CLONE_NEWNS)";
	if (unshare(CLONE_NEWNS) < 0)
		goto fail;
	/* Our mounts stay ours; the host's still reach us. */
	step = "making / a slave mount";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		goto fail;
	step = "creating the view directory";
	if (mkdir(view, 0700) < 0 && errno != EEXIST)
		goto fail;
	step = "bind-mounting the objects directory";
	if (mount(objects, view, NULL, MS_BIND, NULL) < 0)
		goto fail;
	step = "remounting it read-only";
	if (mount(NULL, view, NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		goto fail;
	d->ro_objects_fd = open(view, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	step = "opening the view";
	if (d->ro_objects_fd < 0)
		goto fail;
	step = "checking the view is read-only";
	if (fstatvfs(d->ro_objects_fd, &sv) < 0 || !(sv.f_flag & ST_RDONLY)) {
		errno = EROFS;
		goto fail;
	}
	log_debug("read-only view of the objects for passthrough registrations: %s", view);
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
