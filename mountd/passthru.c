/* passthru: FUSE passthrough through libfuse 3.14's custom-io hooks (read/writev on the session
 * and its cloned descriptors). The read hook notes whether the kernel's INIT offers passthrough;
 * the writev hook patches our INIT reply to ask for it, and an OPEN reply to name the backing
 * file. Debian 12's <linux/fuse.h> is protocol 7.38, older than passthrough (7.40): the few
 * constants and layouts it lacks are defined here and checked against the 7.38 structures. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "mountd/passthru.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "mountd/fs.h"
#include "mountd/mount.h"

/* Protocol 7.40: FUSE_PASSTHROUGH is bit 37 of the init flags, i.e. bit 5 of flags2. */
#define PT_INIT_FLAG2_PASSTHROUGH (1u << 5)
#define PT_FOPEN_PASSTHROUGH	  (1u << 7)
#define PT_MAX_STACK_DEPTH	  1 /* backing files live on an ordinary file system */

/* struct fuse_backing_map and the ioctls that take it (7.40). */
struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_DEV_IOC_BACKING_OPEN	 _IOW(229, 1, struct pt_backing_map)
#define PT_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* 7.40 fuse_open_out: the 7.38 padding became backing_id. */
struct pt_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};
_Static_assert(sizeof(struct pt_open_out) == sizeof(struct fuse_open_out), "fuse_open_out");
_Static_assert(offsetof(struct pt_open_out, open_flags) ==
		       offsetof(struct fuse_open_out, open_flags),
	       "fuse_open_out.open_flags");
/* 7.40 fuse_init_out: max_stack_depth took the first of 7.38's unused words. */
#define PT_INIT_OUT_MAX_STACK_DEPTH offsetof(struct fuse_init_out, unused)
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out");
_Static_assert(offsetof(struct fuse_init_out, flags2) == 32, "fuse_init_out.flags2");
_Static_assert(offsetof(struct fuse_init_out, unused) == 36, "fuse_init_out.max_stack_depth");
_Static_assert(offsetof(struct fuse_init_in, flags2) == 16, "fuse_init_in.flags2");

/* The backing id the next OPEN reply of this thread carries (0: none). Set by the OPEN handler
 * right before it replies; the reply goes out synchronously through pt_writev in that thread. */
static _Thread_local int next_open_id;

void passthru_next_open(int id)
{
	next_open_id = id;
}

/* The hooks get the session's userdata: the fs, whose mount holds the passthru state. */
static struct passthru *pt_of(void *userdata)
{
	return &fs_mnt(userdata)->pt;
}

static ssize_t pt_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	struct passthru *pt = pt_of(userdata);

	if (n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in))) {
		const struct fuse_in_header *h = buf;

		if (h->opcode == FUSE_INIT) {
			const struct fuse_init_in *in = (const void *)(h + 1);

			pt->init_unique = h->unique;
			atomic_store(&pt->offered,
				     (in->flags & FUSE_INIT_EXT) &&
					     (in->flags2 & PT_INIT_FLAG2_PASSTHROUGH));
			if (!atomic_load(&pt->offered))
				log_info(
					"the kernel does not offer FUSE passthrough (protocol %u.%u): "
					"files are read through FUSE",
					in->major, in->minor);
		}
	}
	return n;
}

static ssize_t pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct passthru *pt = pt_of(userdata);
	int open_id = next_open_id;

	next_open_id = 0;
	if (count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *oh = iov[0].iov_base;

		if (open_id > 0 && oh->error == 0 && iov[1].iov_len == sizeof(struct pt_open_out)) {
			struct pt_open_out *oo = iov[1].iov_base;

			oo->open_flags |= PT_FOPEN_PASSTHROUGH;
			oo->backing_id = open_id;
		} else if (oh->unique == pt->init_unique && oh->error == 0 &&
			   atomic_load(&pt->offered) &&
			   iov[1].iov_len == sizeof(struct fuse_init_out)) {
			struct fuse_init_out *io = iov[1].iov_base;
			uint32_t depth = PT_MAX_STACK_DEPTH;

			io->flags |= FUSE_INIT_EXT;
			io->flags2 |= PT_INIT_FLAG2_PASSTHROUGH;
			memcpy((char *)io + PT_INIT_OUT_MAX_STACK_DEPTH, &depth, sizeof(depth));
			atomic_store(&pt->negotiated, true);
		}
	}
	return writev(fd, iov, count);
}

int passthru_install(struct passthru *pt, struct fuse_session *se)
{
	static const struct fuse_custom_io io = { .read = pt_read, .writev = pt_writev };
	int fd = fuse_session_fd(se), rc;

	if (fd < 0)
		return -EBADF;
	pt->dev_fd = fd;
	rc = fuse_session_custom_io(se, &io, fd);
	return rc > 0 ? -EINVAL : rc;
}

bool passthru_usable(const struct passthru *pt)
{
	return pt && atomic_load(&pt->negotiated) && !atomic_load(&pt->failed);
}

int passthru_register(struct passthru *pt, int fd)
{
	struct pt_backing_map map = { .fd = fd };
	int id = ioctl(pt->dev_fd, PT_DEV_IOC_BACKING_OPEN, &map);

	if (id > 0) {
		atomic_fetch_add(&pt->backing_ids, 1);
		return id;
	}
	return id < 0 ? -errno : -EIO;
}

void passthru_failed(struct passthru *pt, int err, const char *how)
{
	if (!atomic_exchange(&pt->failed, true))
		log_warn("FUSE passthrough is not available (%s: %s); reads go through FUSE", how,
			 strerror(-err));
}

void passthru_unregister(struct passthru *pt, int id)
{
	uint32_t v = (uint32_t)id;

	if (id > 0 && ioctl(pt->dev_fd, PT_DEV_IOC_BACKING_CLOSE, &v) < 0)
		log_warn("releasing FUSE backing file %d: %s", id, strerror(errno));
}
