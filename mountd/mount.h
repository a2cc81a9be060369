/* mount: the state of one hoardfs mount (internal to mountd/). FUSE types stay in fs.c and
 * main.c; the rest of the mount sees opaque request pointers and the reply hooks below. */
#ifndef HOARDFS_MOUNT_H
#define HOARDFS_MOUNT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/client.h"
#include "common/log.h"
#include "common/proto.h"
#include "mountd/passthru.h"

struct mount_opts {
	char url[PROTO_URL_MAX]; /* gs://bucket/prefix/ */
	char mountpoint[PATH_MAX];
	char cache_dir[PATH_MAX];
	char socket_path[PATH_MAX];
	char ca_file[512]; /* --ca-file: passed to a daemon this mount starts */
	char endpoint[PROTO_ENDPOINT_MAX];
	char region[64];
	char fuse_opts[4096]; /* extra -o options, comma-separated */
	bool anonymous;
	bool foreground;
	bool allow_other;
	bool allow_root;
	bool auto_unmount;
	bool direct_io;
	bool legacy; /* invoked with the Rust tool's flags */
	bool no_autostart;
	bool no_passthrough; /* --no-passthrough: every read through FUSE */
	bool uid_set, gid_set;
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	int metadata_ttl; /* seconds, -1 = never expire */
	int neg_ttl;
	int read_timeout;	/* seconds: the bound on every request */
	int open_wait;		/* seconds an OPEN may wait for its object to be fetched whole */
	uint32_t read_ahead_kb; /* BDI read-ahead to ask for */
	int max_background;
	int max_threads;
	enum log_level log_level;
};

/* How objs.c answers FUSE read requests without knowing FUSE (fs.c provides these). */
struct reply_ops {
	/* Replies with len bytes of fd at off (len may be 0). Returns 0 or -errno. */
	int (*data)(void *req, int fd, uint64_t off, size_t len);
	/* Replies with len bytes at p (memory the kernel copies from). Returns 0 or -errno. */
	int (*mem)(void *req, const void *p, size_t len);
	void (*error)(void *req, int err);
};

struct mobj;
struct inode;
struct conn_ctx;

struct mnt {
	struct mount_opts o;
	const struct reply_ops *reply;

	/* daemon connection (conn.c) */
	pthread_mutex_t conn_lock;
	pthread_cond_t conn_cond;
	struct hfc *hfc;   /* current connection, NULL while reconnecting */
	uint32_t conn_gen; /* bumps on every (re)registration */
	bool daemon_autostarted;
	bool started_daemon; /* this process started the daemon at least once */
	bool connect_failed; /* conn_start() failed before registering (and said why) */
	_Atomic bool stopping;
	pthread_t reconn_thr;
	bool reconn_started;
	bool lost; /* the current connection died (under conn_lock) */
	struct proto_register_reply reg;
	struct conn_ctx *graveyard; /* every registration, closed at unmount */
	uint64_t base_hits, base_hit_bytes, base_misses, base_miss_bytes; /* at registration */

	/* reads and open objects (objs.c) */
	pthread_mutex_t rlock;
	struct mobj *objs;	      /* every open object */
	struct fetch_ent **fetch_tab; /* outstanding ring entries by id */
	uint64_t next_id;
	uint32_t outstanding;
	uint32_t unsent; /* entries that did not fit in the ring yet */
#define MAX_ACKS 64
	struct ring_entry acks[MAX_ACKS]; /* REVOKE_ACKs waiting for room in the ring */
	uint32_t ack_gens[MAX_ACKS];
	int nacks;
	struct ring_entry early[MAX_ACKS]; /* REVOKEs for handles whose OPEN is still arriving */
	uint32_t early_gens[MAX_ACKS];
	int nearly;
	pthread_t timer_thr;
	bool timer_started;

	/* FUSE passthrough (passthru.c); unused with --no-passthrough */
	struct passthru pt;
	/* An object read the ordinary way became complete, or its last open was released (any
	 * thread, no lock held): the fs gives its path a new inode, so that later opens decide
	 * their mode afresh (passthrough for a complete object). */
	void (*ordinary_done_hook)(void *ctx, uint64_t ino);
	void *hook_ctx;

	/* the mount's BDI, whose read-ahead is raised once INIT was processed */
	unsigned bdi_major, bdi_minor;
	_Atomic bool bdi_pending;

	/* counters */
	_Atomic uint64_t hits, hit_bytes, misses, miss_bytes, read_errors, timeouts;
};

/* ---- conn.c ---- */

/* Connects (starting the daemon when none answers and we may), and registers. Prints one clear
 * line on failure. Returns 0 or -errno. */
int conn_start(struct mnt *m);
/* Starts the thread that reconnects after the daemon went away. */
int conn_start_reconnector(struct mnt *m);
void conn_stop(struct mnt *m);
/* The current connection with a reference-like guarantee: callers use it under no lock; a lost
 * connection just makes calls fail with -ENOTCONN. Waits up to the read timeout for one. */
int conn_call_lookup(struct mnt *m, const char *path, struct proto_attr *a);
int conn_call_list(struct mnt *m, const char *path, uint64_t cursor,
		   int (*fn)(void *ctx, const struct proto_attr *a, const char *name, size_t len),
		   void *ctx, uint64_t *next);
int conn_call_open(struct mnt *m, const char *path, const char *version, uint64_t size,
		   uint32_t flags, struct proto_open_reply *rep, uint8_t **bitmap, int *fd,
		   uint32_t *gen);
void conn_call_close(struct mnt *m, uint32_t handle, uint32_t gen);
/* PROTO_BACKING through the daemon, with this mount's /dev/fuse descriptor: OPEN for `handle`
 * of registration `gen` (the new backing id), or CLOSE of `id` (any registration: the id
 * belongs to the FUSE connection). Returns the id, 0, or -errno. */
int conn_call_backing(struct mnt *m, uint32_t op, uint32_t handle, int32_t id, uint32_t gen);
/* Submits a ring entry on the current connection (-ENOTCONN while reconnecting). */
int conn_submit(struct mnt *m, const struct ring_entry *e, uint32_t gen);
/* Publishes the read counters (since the current registration) for the daemon's stats. */
void conn_publish_stats(struct mnt *m);
/* Asks the daemon to raise the mount's read-ahead (best effort). */
void conn_request_bdi(struct mnt *m, unsigned major, unsigned minor, uint32_t kb);
uint64_t mono_ms(void);

/* ---- objs.c ---- */

int objs_init(struct mnt *m);
void objs_fini(struct mnt *m);
/* Opens (or shares) the object of an inode. */
/* Opens (or shares) the object of inode ino; passthrough_ok: its opens may be passthrough
 * opens (the inode never had ordinary ones). */
int objs_open(struct mnt *m, uint64_t ino, const char *path, const char *version, uint64_t size,
	      bool passthrough_ok, struct mobj **out);
void objs_release(struct mnt *m, struct mobj *o);
/* Answers a read exactly once: from the cache file when present, else after FETCH. */
void objs_read(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t size);
/* Completions from the daemon (client receive thread). */
void objs_complete(struct mnt *m, const struct ring_entry *e);
/* The connection died: forget every presence bit (hits wait for the reconnect). */
void objs_lost(struct mnt *m);
/* After a reconnect: reopen every object and resubmit what was in flight. */
void objs_reconnected(struct mnt *m);
uint64_t objs_size(const struct mobj *o);
/* The backing id that opens of o answer with (passthrough), or 0 (ordinary reads). */
int objs_backing(const struct mobj *o);
/* Starts the thread that fails reads still unanswered at their deadline. */
int objs_start_timer(struct mnt *m);

#endif
