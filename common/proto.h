/* proto: the only contract between hoardfs processes: socket messages (mount/inspect <-> daemon)
 * and the shared-memory ring entries. Every layout is fixed-width and _Static_assert'ed. */
#ifndef HOARDFS_PROTO_H
#define HOARDFS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC   0x31444648u /* "HFD1" little-endian */
#define PROTO_VERSION 2u	  /* 2: OPEN flags, the pin for passthrough */

/* The largest message either side sends, header included. Receivers drop longer ones. */
#define PROTO_MSG_MAX (256u * 1024u)

/* The unit of presence: bytes are fetched, verified, marked and revoked in 1 MiB blocks. */
#define PROTO_BLOCK_SHIFT 20
#define PROTO_BLOCK_SIZE  (1u << PROTO_BLOCK_SHIFT)

#define PROTO_PATH_MAX	   1024 /* a path relative to the mount root, like an object name */
#define PROTO_VERSION_MAX  128	/* generation / ETag text, NUL included */
#define PROTO_URL_MAX	   1280
#define PROTO_ENDPOINT_MAX 512

/*
 * Socket messages travel on a SOCK_SEQPACKET Unix socket: one message per packet, a header then
 * `len` payload bytes. Requests carry a sequence number chosen by the sender; the reply echoes it
 * with the same type | PROTO_REPLY. Replies may arrive out of order.
 */
enum proto_type {
	PROTO_REGISTER = 1, /* mount -> daemon: struct proto_register; reply proto_register_reply
			       + SCM_RIGHTS [ring memfd, submit eventfd, complete eventfd] */
	PROTO_LOOKUP = 2,   /* struct proto_path; reply struct proto_attr */
	PROTO_LIST = 3,	    /* struct proto_list; reply struct proto_list_reply + entries */
	PROTO_OPEN = 4,	 /* struct proto_open; reply proto_open_reply + bitmap + SCM_RIGHTS [fd] */
	PROTO_CLOSE = 5, /* struct proto_close; reply: header only */
	PROTO_CTL = 6,	 /* inspect: a JSON request object; reply: JSON text (PROTO_F_MORE parts) */
	PROTO_BDI = 7,	 /* mount asks the daemon to raise its mount's read_ahead_kb: proto_bdi */
	PROTO_PING = 8,	 /* liveness / version probe; reply: header only */
	PROTO_BACKING = 9, /* struct proto_backing + SCM_RIGHTS [the mount's /dev/fuse]; reply
			      struct proto_backing */
	PROTO_TYPE_MAX = 9,
};

#define PROTO_REPLY  0x8000u
#define PROTO_F_MORE 0x0001u /* in a reply: more parts of this reply follow */

struct proto_hdr {
	uint32_t magic;	   /* PROTO_MAGIC */
	uint16_t type;	   /* enum proto_type, | PROTO_REPLY in replies */
	uint16_t flags;	   /* PROTO_F_* */
	uint32_t len;	   /* payload bytes after this header */
	uint32_t seq;	   /* request number; the reply carries the same */
	int32_t status;	   /* replies: 0 or a negative errno; requests: 0 */
	uint32_t reserved; /* 0 */
};
_Static_assert(sizeof(struct proto_hdr) == 24, "proto_hdr layout");

/* REGISTER options (flags). */
#define PROTO_REG_ANONYMOUS 0x1u /* use no credentials */
#define PROTO_REG_STARTED   0x2u /* this mount started the daemon (single-user mode) */

struct proto_register {
	uint32_t version;		   /* PROTO_VERSION */
	uint32_t flags;			   /* PROTO_REG_* */
	int32_t metadata_ttl;		   /* seconds; -1 = never expire; the daemon may cap it */
	uint32_t neg_ttl;		   /* seconds a negative lookup stays valid */
	char url[PROTO_URL_MAX];	   /* "gs://bucket/prefix/" (NUL-terminated) */
	char endpoint[PROTO_ENDPOINT_MAX]; /* "" = the daemon's default for the scheme */
	char region[64];		   /* S3 region, "" = default */
	char mountpoint[PROTO_PATH_MAX];   /* for status displays only */
};
_Static_assert(sizeof(struct proto_register) ==
		       16 + PROTO_URL_MAX + PROTO_ENDPOINT_MAX + 64 + PROTO_PATH_MAX,
	       "proto_register layout");

struct proto_register_reply {
	uint64_t mount_id;     /* the daemon's id for this registration */
	uint32_t epoch;	       /* the daemon's start counter: changes when the daemon restarts */
	uint32_t ring_entries; /* entries per queue in the ring (a power of two) */
	uint64_t ring_bytes;   /* size of the ring memfd */
	uint32_t block_size;   /* PROTO_BLOCK_SIZE */
	uint32_t max_inflight; /* FETCH/PREFETCH entries the mount may have outstanding */
	uint64_t daemon_pid;
	uint32_t flags; /* PROTO_REGF_* */
	uint32_t reserved;
};
_Static_assert(sizeof(struct proto_register_reply) == 48, "proto_register_reply layout");

/* proto_register_reply.flags */
#define PROTO_REGF_AUTOSTARTED 0x1u /* a mount started this daemon: mounts may restart it */

/* LOOKUP: one path relative to the mount root, no leading or trailing '/', "" = the root. */
struct proto_path {
	uint32_t path_len; /* bytes of path that follow, without NUL */
	uint32_t reserved;
	/* char path[path_len] follows */
};
_Static_assert(sizeof(struct proto_path) == 8, "proto_path layout");

enum proto_ftype { PROTO_FT_FILE = 1, PROTO_FT_DIR = 2 };

struct proto_attr {
	uint8_t type; /* enum proto_ftype */
	uint8_t reserved[7];
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t reserved2;
	char version[PROTO_VERSION_MAX]; /* files: generation / ETag; dirs: "" */
};
_Static_assert(sizeof(struct proto_attr) == 160, "proto_attr layout");

/* LIST: one page of a directory, starting after `cursor` (0 = from the start). */
struct proto_list {
	uint64_t cursor;
	uint32_t path_len;
	uint32_t reserved;
	/* char path[path_len] follows */
};
_Static_assert(sizeof(struct proto_list) == 16, "proto_list layout");

struct proto_list_reply {
	uint64_t next_cursor; /* 0 = this was the last page */
	uint32_t count;	      /* entries that follow */
	uint32_t reserved;
};
_Static_assert(sizeof(struct proto_list_reply) == 16, "proto_list_reply layout");

/* Each list entry: the attribute block, then the name (not NUL-terminated), padded to 8. */
struct proto_dirent {
	struct proto_attr attr;
	uint16_t name_len;
	uint8_t reserved[6];
	/* char name[name_len] follows, then padding to a multiple of 8 */
};
_Static_assert(sizeof(struct proto_dirent) == 168, "proto_dirent layout");

/* OPEN flags */
/* Pin the object if it is complete: the mount will serve this handle by FUSE passthrough (the
 * kernel reads the cache file directly, which no one can take back), so the daemon must never
 * revoke or punch its blocks while the handle is open. The reply says whether it was pinned. */
#define PROTO_OPEN_F_PIN 0x1u
/* With PIN: if the object is not complete, the daemon may fetch it whole and answer once it is
 * (then pinned), waiting at most PROTO_OPEN_WAIT_SECS(flags) seconds; otherwise it answers at
 * once, unpinned. Whole-file loaders then read one page cache shared by every mount. */
#define PROTO_OPEN_F_WAIT	    0x2u
#define PROTO_OPEN_WAIT_SECS(f)	    ((f) >> 16)
#define PROTO_OPEN_WAIT_FLAGS(secs) ((uint32_t)(secs) << 16)

/* OPEN: the version the mount looked up. */
struct proto_open {
	uint64_t size;
	char version[PROTO_VERSION_MAX];
	uint32_t path_len;
	uint32_t flags; /* PROTO_OPEN_F_* */
			/* char path[path_len] follows */
};
_Static_assert(sizeof(struct proto_open) == 144, "proto_open layout");

struct proto_open_reply {
	uint32_t handle;    /* the mount's handle for ring entries and CLOSE */
	uint32_t nblocks;   /* blocks in the object: ceil(size / PROTO_BLOCK_SIZE) */
	uint64_t object_id; /* the daemon's object id (for logs and inspect) */
	uint64_t size;
	uint32_t flags; /* PROTO_OPENR_* */
	uint32_t reserved;
	/* uint8_t present[(nblocks + 7) / 8] follows: bit b of byte b/8 = block b present */
};
_Static_assert(sizeof(struct proto_open_reply) == 32, "proto_open_reply layout");
/* proto_open_reply.flags */
#define PROTO_OPENR_PINNED 0x1u /* complete, and pinned until this handle's CLOSE */

struct proto_close {
	uint32_t handle;
	uint32_t reserved;
};
_Static_assert(sizeof(struct proto_close) == 8, "proto_close layout");

/*
 * BACKING: registers (or releases) a FUSE passthrough backing file on the mount's FUSE
 * connection, for a mount that may not do it itself (no CAP_SYS_ADMIN). OPEN names an open
 * handle the daemon pinned; the daemon opens the cache file itself, read-only through a
 * read-only mount, and answers the backing id. CLOSE releases backing_id.
 */
enum proto_backing_op { PROTO_BACKING_OPEN = 1, PROTO_BACKING_CLOSE = 2 };
struct proto_backing {
	uint32_t op;	    /* enum proto_backing_op */
	uint32_t handle;    /* OPEN: a pinned handle of this mount */
	int32_t backing_id; /* CLOSE: the id; reply to OPEN: the new id */
	uint32_t reserved;
};
_Static_assert(sizeof(struct proto_backing) == 16, "proto_backing layout");

struct proto_bdi {
	uint32_t major;
	uint32_t minor;
	uint32_t read_ahead_kb;
	uint32_t reserved;
};
_Static_assert(sizeof(struct proto_bdi) == 16, "proto_bdi layout");

/*
 * Ring entries. The ring is a memfd shared by one mount and the daemon holding two
 * single-producer single-consumer queues (see ring.h): submissions (mount -> daemon) and
 * completions (daemon -> mount), each an array of these 64-byte entries.
 */
enum ring_op {
	/* submissions (mount writes) */
	RING_FETCH = 1,	   /* demand read: make [off, off+len) present, answer PRESENT or ERROR */
	RING_PREFETCH = 2, /* hint: make [off, off+len) present soon; answered like FETCH */
	RING_REVOKE_ACK =
		3, /* the mount dropped [off, off+len) of `handle` from its presence map */
	/* completions (daemon writes) */
	RING_PRESENT = 16, /* [off, off+len) of `handle` is present: read it from the object fd */
	RING_ERROR = 17,   /* the request `id` failed with `status` (-errno) */
	RING_REVOKE = 18,  /* drop [off, off+len) of `handle` from the presence map, then ACK */
};

/* Completion flags. */
#define RING_F_PARTIAL 0x1u /* PRESENT for part of request `id`; more completions for it follow */

struct ring_entry {
	uint64_t id;	 /* submissions: the mount's request id; completions: the same id */
	uint64_t off;	 /* byte offset in the object */
	uint64_t len;	 /* bytes */
	uint32_t handle; /* from proto_open_reply */
	uint16_t op;	 /* enum ring_op */
	uint16_t flags;	 /* RING_F_*; 0 in submissions */
	int32_t status;	 /* completions: 0 or a negative errno */
	uint32_t reserved[7];
};
_Static_assert(sizeof(struct ring_entry) == 64, "ring_entry layout");
_Static_assert(offsetof(struct ring_entry, handle) == 24, "ring_entry layout");
_Static_assert(offsetof(struct ring_entry, status) == 32, "ring_entry layout");

#endif
