/* tool_hostilefuse: a FUSE server that misbehaves on purpose against hoardfs-cached's passthrough
 * registrations. It registers with the daemon like a mount, opens PATH (complete in the cache,
 * so the daemon pins it), asks the daemon to register the object's cache file as a backing file
 * on its own FUSE connection (PROTO_BACKING), and then serves one file, "f", answering EVERY
 * open of it - write opens included - in passthrough mode with that backing id. If the daemon
 * registered a writable file, a write through this mount would change the shared cache file
 * with the daemon's rights.
 *
 *   tool_hostilefuse --socket S [--endpoint URL] URL PATH MOUNTPOINT
 *
 * Prints "ready ID" once mounted and registered, then serves until unmounted (or SIGTERM).
 * Exits 1 with a message when a step fails (e.g. the daemon refuses the registration:
 * "backing: <error>").
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/client.h"
#include "mountd/fs.h"
#include "mountd/mount.h"
#include "mountd/passthru.h"

#define FILE_INO 2

struct hostile {
	struct mnt m; /* only m.pt is used: passthru.c finds it through fs_mnt() */
	uint64_t size;
	_Atomic int backing_id;
};

struct mnt *fs_mnt(void *userdata)
{
	return &((struct hostile *)userdata)->m;
}

static void fill(struct hostile *h, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0666; /* writable, on purpose */
		st->st_nlink = 1;
		st->st_size = (off_t)h->size;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct hostile *h = fuse_req_userdata(req);
	struct fuse_entry_param e = { 0 };

	if (parent != FUSE_ROOT_ID || strcmp(name, "f") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = FILE_INO;
	e.attr_timeout = e.entry_timeout = 60;
	fill(h, FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hostile *h = fuse_req_userdata(req);
	struct stat st;

	fill(h, ino, &st);
	fuse_reply_attr(req, &st, 60);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hostile *h = fuse_req_userdata(req);

	fi->keep_cache = 0;
	fi->direct_io = 0;
	passthru_next_open(atomic_load(&h->backing_id)); /* whatever the open's flags */
	fuse_reply_open(req, fi);
	passthru_next_open(0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EIO); /* only reached if the kernel did not pass the write through */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = op_lookup,
	.getattr = op_getattr,
	.open = op_open,
	.write = op_write,
	.release = op_release,
};

static void on_complete(void *ctx, const struct ring_entry *e)
{
}

static void on_lost(void *ctx)
{
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "tool_hostilefuse: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	struct hfc_register reg = {
		.metadata_ttl = 60, .neg_ttl = 5, .on_complete = on_complete, .on_lost = on_lost
	};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct hostile *h = calloc(1, sizeof(*h));
	const char *sock = NULL, *path, *mp;
	struct proto_register_reply rr;
	struct proto_open_reply rep;
	struct fuse_session *se;
	struct proto_attr a;
	uint8_t *map = NULL;
	struct hfc *c;
	int ch, rc, fd = -1, id;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		if (ch == 's')
			sock = optarg;
		else if (ch == 'e')
			reg.endpoint = optarg;
		else
			return 2;
	}
	if (!h || !sock || argc - optind != 3)
		return 2;
	reg.url = argv[optind];
	path = argv[optind + 1];
	mp = argv[optind + 2];
	reg.mountpoint = mp;
	rc = hfc_connect(sock, &c);
	if (rc)
		die("connect", rc);
	if ((rc = hfc_register(c, &reg, 20000, &rr)))
		die("register", rc);
	if ((rc = hfc_lookup(c, path, 20000, &a)))
		die("lookup", rc);
	rc = hfc_open(c, path, a.version, a.size, PROTO_OPEN_F_PIN, 20000, &rep, &map, &fd);
	if (rc)
		die("open", rc);
	if (!(rep.flags & PROTO_OPENR_PINNED))
		die("open: not pinned (read the object into the cache first)", EAGAIN);
	h->size = a.size;
	if (fuse_opt_add_arg(&args, "hostile") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "fsname=hostile,subtype=hostile,default_permissions"))
		die("args", ENOMEM);
	se = fuse_session_new(&args, &ops, sizeof(ops), h);
	if (!se)
		die("fuse_session_new", EINVAL);
	if (fuse_session_mount(se, mp))
		die("mount", EIO);
	if ((rc = passthru_install(&h->m.pt, se)))
		die("custom io", rc);
	/* The kernel sent INIT at mount time: answer requests until passthrough is negotiated. */
	while (!atomic_load(&h->m.pt.negotiated)) {
		struct fuse_buf fbuf = { .mem = NULL };
		int n = fuse_session_receive_buf(se, &fbuf);

		if (n <= 0)
			die("receiving INIT", n ? n : EIO);
		fuse_session_process_buf(se, &fbuf);
		free(fbuf.mem);
	}
	id = hfc_backing(c, PROTO_BACKING_OPEN, rep.handle, 0, fuse_session_fd(se), 20000);
	if (id <= 0)
		die("backing", id);
	atomic_store(&h->backing_id, id);
	printf("ready %d\n", id);
	fflush(stdout);
	rc = fuse_session_loop(se);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	close(fd);
	free(map);
	hfc_close(c);
	free(h);
	return rc < 0 ? 1 : 0;
}
