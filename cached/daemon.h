/* daemon: the state and the cross-module interfaces of hoardfs-cached (internal to cached/).
 *
 * Threads and who owns what:
 *  - the engine thread (server.c) owns mounts (struct conn), open handles, the object table's
 *    per-object state (presence, in-flight blocks, waiters, prefetch), and the fetch schedule;
 *    other threads hand it work with engine_post();
 *  - fetch threads (fetch.c) each run one curl multi handle and only move bytes into object
 *    files, reporting progress back to the engine;
 *  - metadata workers (mdsvc.c) answer REGISTER/LOOKUP/LIST/OPEN validation and heavy inspect
 *    commands with blocking store calls and LMDB reads;
 *  - the writer thread (commit.c) is the only LMDB writer: group commits every ~100 ms.
 */
#ifndef HOARDFS_DAEMON_H
#define HOARDFS_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/meta.h"
#include "common/http.h"
#include "common/proto.h"
#include "common/ring.h"
#include "common/store.h"

struct ring;
struct daemon;
struct obj;
struct conn;

struct daemon_config {
	char cache_dir[PATH_MAX];
	char socket_path[PATH_MAX]; /* default <cache_dir>/cached.sock */
	uint64_t cache_size;	    /* --cache-size; 0 = only the free-space rule */
	int fetch_threads;	    /* [2] */
	int md_threads;		    /* [4] */
	int max_inflight;	    /* [32] parallel GETs in all */
	uint64_t chunk_size;	    /* [8 MiB] first GET of a load; later ones grow */
	uint64_t max_get;	    /* [64 MiB] largest GET of a load */
	uint64_t sibling_prefetch;  /* [1 GiB] next shards loaded when one is; 0 = off */
	int metadata_ttl;	    /* [60] seconds; -1 = never expire */
	int neg_ttl;		    /* [5] seconds */
	int idle_exit;		    /* [0] exit after this many seconds without mounts; 0 = never */
	bool foreground;
	bool single_user; /* honour mounts' endpoint/anonymous/region options */
	bool autostarted; /* started by a mount (--autostarted): mounts restart it */
	char allow[4096]; /* multi-user allow-list: "uid:pattern,..." ("*" any) */
	char default_endpoint_gs[PROTO_ENDPOINT_MAX];
	char default_endpoint_s3[PROTO_ENDPOINT_MAX];
	int commit_interval_ms;	     /* [100] */
	uint32_t ring_entries;	     /* [4096] */
	uint32_t max_opens;	     /* [65536] per mount */
	uint32_t max_waiting;	     /* [4096] FETCH/PREFETCH outstanding per mount */
	uint64_t open_wait_max;	     /* [8G] largest object an OPEN may wait for; 0 = none */
	uint64_t max_prefetch_bytes; /* [4 GiB] PREFETCH bytes outstanding per mount */
	size_t map_size;	     /* [16 GiB] LMDB map */
	char metrics_addr[64];	     /* "" = off, else "127.0.0.1:PORT" */
	struct http_opts http;
	int log_level;
};

/* A closure run on the engine thread. Embed it in a larger struct; fn frees what it needs. */
struct task {
	void (*fn)(struct daemon *d, struct task *t);
	struct task *next;
};

/* The registration a metadata request is made under. */
struct md_mount {
	struct bucket *bk;
	char prefix[URL_KEY_MAX + 1];
	int ttl;
	int neg_ttl;
};

enum ep_kind { EP_LISTEN = 1, EP_TASK, EP_TIMER, EP_SIGNAL, EP_SOCK, EP_RING };

struct ep_tag {
	enum ep_kind kind;
	struct conn *c;
};

/* One open of an object by a mount. */
struct handle {
	struct obj *obj; /* NULL = free slot */
	uint32_t next_free;
	bool pinned; /* served by passthrough: obj->pins counts it until CLOSE */
};

/* A connection from a mount or an inspect client (engine thread unless noted). Refcounted:
 * metadata workers hold a reference while they answer it; fd stays valid until the last put. */
struct conn {
	_Atomic int refs;
	struct daemon *d;
	struct conn *next; /* engine list */
	int fd;
	_Atomic bool dead;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct ep_tag sock_tag;
	struct ep_tag ring_tag;
	/* registration (engine thread once registered) */
	bool registering;
	bool registered;
	uint64_t mount_id;
	struct md_mount mm;
	char url[PROTO_URL_MAX];
	char mountpoint[PROTO_PATH_MAX];
	struct ring *ring;
	int sub_efd;
	int comp_efd;
	bool notify;
	struct ring_entry *backlog;
	size_t nbacklog, backlog_cap, backlog_head;
	uint32_t bad_entries;
	int64_t registered_at;
	struct ring_mount_stats mstats; /* last read from the ring (engine) */
	/* open handles (objects.c, engine thread) */
	struct handle *handles; /* index = handle id - 1 */
	uint32_t nhandles;
	uint32_t handle_cap;
	uint32_t free_handle; /* head of the free list (id), 0 = none */
	uint32_t opens;
	uint32_t open_waits;	 /* OPENs waiting for their object to be complete */
	uint32_t backing_ids;	 /* passthrough backing files registered for it (backing.c) */
	uint32_t waiting;	 /* FETCH/PREFETCH entries not yet answered */
	uint64_t prefetch_bytes; /* bytes of PREFETCH entries not yet answered */
};

/* A bucket the daemon talks to: one store client shared by every mount of it. */
struct bucket {
	struct bucket *next;
	char key[META_BUCKET_KEY_MAX + 1]; /* "gs|endpoint|bucket|flags" */
	uint32_t id;			   /* meta bucket id */
	struct store *store;
	enum url_scheme scheme;
	char name[URL_BUCKET_MAX + 1];
	int refs; /* registrations and objects using it (under daemon.buckets_lock) */
};

/* Counters for stats (atomics: updated from any thread). */
struct daemon_stats {
	_Atomic uint64_t fetch_requests; /* FETCH entries from mounts */
	_Atomic uint64_t fetch_hits;	 /* ... already present when asked */
	_Atomic uint64_t prefetch_requests;
	_Atomic uint64_t dedup_waits;	 /* requests that joined a GET already in flight */
	_Atomic uint64_t blocks_fetched; /* blocks written and verified */
	_Atomic uint64_t bytes_fetched;
	_Atomic uint64_t gets_started;
	_Atomic uint64_t gets_failed;
	_Atomic uint64_t evicted_objects;
	_Atomic uint64_t evicted_bytes;
	_Atomic uint64_t revoked_blocks;
	_Atomic uint64_t errors; /* ERROR completions sent */
	_Atomic uint64_t lookups;
	_Atomic uint64_t lists;
	_Atomic uint64_t opens;
	_Atomic uint64_t pinned_opens;	     /* OPENs pinned for passthrough */
	_Atomic uint64_t backing_registered; /* backing files registered for mounts */
	_Atomic uint64_t open_waits;	     /* OPENs that waited for their object to be complete */
	_Atomic uint64_t open_waits_expired; /* ... and were answered before it was */
	_Atomic uint64_t sibling_loads;	     /* shards loaded because an earlier one was opened */
	_Atomic uint64_t accepts_shed;	     /* connections closed at once: out of descriptors */
	_Atomic uint64_t revokes_refused;    /* revocations of pinned objects (doomed instead) */
	_Atomic uint64_t commits;
	_Atomic uint64_t commit_ns; /* total time spent in group commits */
	_Atomic uint64_t commit_blocks;
	_Atomic uint64_t writeback_errors;
	_Atomic uint64_t accounting_errors; /* changes that would have wrapped bytes_cached */
	_Atomic uint64_t mounts_total;
	_Atomic uint64_t mounts_disconnected; /* forcibly, for misbehaving */
	_Atomic uint64_t mount_hits;	      /* reported by mounts through their rings */
	_Atomic uint64_t mount_hit_bytes;
	_Atomic uint64_t mount_misses;
	_Atomic uint64_t mount_miss_bytes;
};

struct daemon {
	struct daemon_config cfg;
	struct meta *meta;
	uint32_t epoch;
	int64_t started_at;
	int lock_fd;
	int objects_dirfd;
	int ro_objects_fd; /* read-only view of objects/ for passthrough registrations, or -1 */
	_Atomic int stopping;

	/* engine */
	int epfd;
	int task_efd;
	int timer_fd;
	int signal_fd;
	uint64_t last_slow_tick;
	uint8_t *rxbuf;			    /* PROTO_MSG_MAX bytes for socket messages */
	struct ring_mount_stats gone_stats; /* counters of mounts that disconnected (engine) */
	pthread_mutex_t task_lock;
	struct task *task_head, *task_tail;
	int listen_fd;
	int spare_fd;		   /* held open so that accept() can shed a peer at EMFILE */
	uint64_t emfile_logged_ms; /* last "out of descriptors" log line (engine) */
	uint64_t nofile;	   /* RLIMIT_NOFILE soft limit after start-up's raise */
	uint32_t idle_keep;	 /* closed objects kept open for quick reopen: sized from nofile */
	struct conn *conns;	 /* engine-only list */
	int nmounts;		 /* registered mounts (engine) */
	_Atomic int nmounts_pub; /* copy readable from other threads */
	uint64_t next_mount_id;
	uint64_t next_revoke_id;
	uint64_t next_job_id;
	struct job *jobs; /* jobs.c, engine-only */
	int64_t idle_since;

	/* buckets (any thread, under buckets_lock) */
	pthread_mutex_t buckets_lock;
	struct bucket *buckets;

	/* modules' private state */
	struct objtab *objs;	 /* objects.c, engine-only */
	struct fetcher *fetch;	 /* fetch.c */
	struct writer *writer;	 /* commit.c */
	struct mdsvc *md;	 /* mdsvc.c */
	struct evictor *ev;	 /* evict.c, engine-only */
	struct metrics *metrics; /* ctl.c */

	struct http_stats http_stats;
	struct daemon_stats st;
};

/* ---- server.c: the engine ---- */

/* Runs t->fn(d, t) on the engine thread soon. Thread-safe, never blocks for long. */
void engine_post(struct daemon *d, struct task *t);

/* Runs fn(d, arg) on the engine thread and waits for it (from any other thread; never from the
 * engine itself, and not during shutdown). */
void engine_call(struct daemon *d, void (*fn)(struct daemon *d, void *arg), void *arg);

/* Runs the tasks queued so far (shutdown, after the loop ended: lets threads that wait on the
 * engine finish). */
void engine_drain(struct daemon *d);

/* Sets up the listening socket and the engine's epoll; 0 or -errno (logged). */
int engine_init(struct daemon *d);
/* Runs the engine loop until d->stopping; returns 0. */
int engine_run(struct daemon *d);
/* Closes every connection and the socket (after the loop ended). */
void engine_fini(struct daemon *d);

/* A connection from a mount or an inspect client. Refcounted: other threads may hold one. */
struct conn *conn_get(struct conn *c);
void conn_put(struct conn *c);
/* Sends a reply on a connection without blocking; on failure the connection is dropped. */
int conn_reply(struct conn *c, uint16_t type, uint32_t seq, int32_t status, const void *payload,
	       size_t len, const int *fds, int nfds);
int conn_replyv(struct conn *c, uint16_t type, uint16_t flags, uint32_t seq, int32_t status,
		const struct iovec *iov, int iovcnt, const int *fds, int nfds);
/* Fields other threads may read (set before the conn is shared, then constant). */
pid_t conn_pid(const struct conn *c);
uid_t conn_uid(const struct conn *c);

/* Queues a completion for a mount's ring (engine thread only). */
void conn_complete(struct daemon *d, struct conn *c, const struct ring_entry *e);

/* ---- mdsvc.c: metadata workers ---- */

int mdsvc_start(struct daemon *d);
void mdsvc_stop(struct daemon *d);

/* Hands a socket request to the workers (engine thread). Takes a ref on c; the worker replies.
 * `msg` (header + payload) is copied. */
void mdsvc_submit(struct daemon *d, struct conn *c, const struct md_mount *mm, const void *msg,
		  size_t len);
/* Finds or creates the bucket a peer (uid) may use for `bu`, applying the trust rule: the
 * daemon's own user and root may choose endpoint, region and anonymous access; others use the
 * daemon's and must match the allow-list. Returns 0 (a reference in *out), -EPERM, or a store
 * error. Any thread. */
int mdsvc_bucket(struct daemon *d, uid_t uid, pid_t pid, const struct bucket_url *bu,
		 const char *endpoint, const char *region, bool anonymous, struct bucket **out);
/* The one bucket the daemon knows by this scheme and name (with a reference), or NULL when it
 * knows none or several (different endpoints). Any thread. */
struct bucket *mdsvc_known_bucket(struct daemon *d, enum url_scheme scheme, const char *name);
/* Releases a bucket reference taken by a REGISTER. */
void bucket_put(struct daemon *d, struct bucket *bk);

/* Looks up a path's attributes as a mount would (for inspect and tests). */
int mdsvc_lookup(struct daemon *d, struct http_client *hc, const struct md_mount *mm,
		 const char *path, struct proto_attr *out);

/* ---- objects.c ---- */

int objects_init(struct daemon *d);
void objects_fini(struct daemon *d);

/* A validated OPEN: find or create the object, answer the mount. Engine thread. */
struct open_req {
	struct conn *c;
	uint32_t seq;
	struct bucket *bk;
	struct store_object so;	   /* name = full key, version, size, mtime, checksums */
	uint32_t flags;		   /* PROTO_OPEN_F_* */
	struct store_object *sibs; /* the next shards of a sharded model, in order (owned) */
	int nsibs;
};
void objects_open(struct daemon *d, struct open_req *r);
/* CLOSE of handle h by conn c (engine). */
int objects_close(struct daemon *d, struct conn *c, uint32_t h);
/* A ring submission from conn c (engine; e is a validated copy). */
void objects_submit(struct daemon *d, struct conn *c, const struct ring_entry *e);
/* Drops every handle and waiter of a dying connection (engine). */
void objects_conn_gone(struct daemon *d, struct conn *c);

/* Object lifetime: refcounted; the engine's table holds one reference. */
struct obj *obj_get(struct obj *o);
void obj_put(struct obj *o);
int obj_fd(const struct obj *o); /* read-write descriptor of the cache file */
uint64_t obj_id(const struct obj *o);
const struct meta_object *objects_record(const struct obj *o); /* constant after creation */
struct store *objects_store(const struct obj *o);
/* The fetch thread o's GETs go to while any is in flight (engine; fetch.c keeps it). */
int *objects_fetch_thread(struct obj *o);
/* GETs of o in flight (engine). */
int objects_fetching(const struct obj *o);

/* Called by fetch.c on the engine thread when blocks [b, b+n) of `o` were written and checked,
 * with their crc32c values; or when a GET of [b, b+n) failed for good with `status`. */
void objects_blocks_done(struct daemon *d, struct obj *o, uint32_t b, uint32_t n,
			 const uint32_t *crcs);
void objects_blocks_failed(struct daemon *d, struct obj *o, uint32_t b, uint32_t n, int status);
/* The writer failed to make blocks durable: forget them (engine). */
void objects_writeback_failed(struct daemon *d, uint64_t id, uint32_t b, uint32_t n);

/* Bytes of verified blocks in the cache (engine thread's count). */
uint64_t objects_bytes_cached(struct daemon *d);

/* ---- fetch.c ---- */

int fetch_start(struct daemon *d);
void fetch_stop(struct daemon *d);
/* Starts a GET of blocks [b, b+n) of `o` (engine). demand = a reader waits for it. */
int fetch_blocks(struct daemon *d, struct obj *o, uint32_t b, uint32_t n, bool demand);
/* GETs in flight (any thread). */
int fetch_inflight(struct daemon *d);
/* GETs that may still start now without passing the limit (engine). */
int fetch_slots(struct daemon *d);

/* ---- commit.c: the LMDB writer ---- */

int writer_start(struct daemon *d);
void writer_stop(struct daemon *d); /* commits what is queued, then stops */
/* Queues a durable change (engine or any thread). The batch ops are applied in order. */
void writer_put_object(struct daemon *d, const struct meta_object *o);
void writer_del_object(struct daemon *d, uint64_t id);
void writer_touch(struct daemon *d, uint64_t id, int64_t when);
/* Blocks verified on disk: fdatasync `o`'s file, then mark them (takes a ref on o). */
void writer_blocks(struct daemon *d, struct obj *o, uint32_t b, uint32_t n, const uint32_t *crcs);
void writer_clear_blocks(struct daemon *d, uint64_t id, uint32_t b, uint32_t n);
/* Posts task t to the engine once every change queued before it is committed; *status gets 0,
 * or the commit error if that kept failing (then nothing queued before it may be durable). */
void writer_barrier(struct daemon *d, struct task *t, int *status);
/* Runs a batch now and waits for its commit (metadata workers). Takes ownership of b. */
int writer_commit_sync(struct daemon *d, struct meta_batch *b);

/* ---- evict.c ---- */

int evict_init(struct daemon *d);
void evict_fini(struct daemon *d);
/* The current limit on cached bytes (engine). */
uint64_t evict_limit(struct daemon *d);
/* Makes room after blocks were added or on ENOSPC (engine). Returns bytes freed. */
uint64_t evict_run(struct daemon *d, uint64_t want_free);
/* Periodic check (engine, ~1 s). */
void evict_tick(struct daemon *d);

/* ---- ctl.c: inspect commands, stats, metrics ---- */

/* Handles a CTL request (engine; heavy commands go to workers). */
void ctl_request(struct daemon *d, struct conn *c, uint32_t seq, const char *json, size_t len);
int metrics_start(struct daemon *d);
void metrics_stop(struct daemon *d);

/* ---- util ---- */
int64_t daemon_now(void);      /* Unix seconds */
uint64_t daemon_mono_ms(void); /* monotonic milliseconds */

/* ---- cross-module helpers (engine thread unless noted) ---- */

/* server.c */
void server_register_done(struct daemon *d, struct conn *c, uint32_t seq, int status,
			  const struct md_mount *mm, const char *url, const char *mountpoint);
void server_bad_entry(struct daemon *d, struct conn *c, uint64_t id, int status);
void server_each_mount(struct daemon *d,
		       void (*fn)(void *ctx, uint64_t id, pid_t pid, uid_t uid, const char *url,
				  const char *mountpoint, int64_t since),
		       void *ctx);

/* plan.c */
void objects_pump(struct daemon *d);
/* Loads the next shards of a sharded model (in order) at low priority, within
 * --sibling-prefetch bytes: a mount is waiting for one of their siblings. */
void plan_siblings(struct daemon *d, struct bucket *bk, const struct store_object *sibs, int n);
/* Parses a shard's file name "<stem>-<k>-of-<n><ext>" (k <= n decimal, ext empty or from a '.'):
 * returns the offset of <k> in `base` and sets k, n and the digits of k; -1 if it is not one. */
int plan_shard_name(const char *base, unsigned *k, unsigned *n, int *width);

/* objects.c */
/* The resident open object with the most present blocks (NULL if none), and block queries. */
struct obj *objects_largest_open(struct daemon *d);
uint32_t objects_nblocks(const struct obj *o);
bool objects_block_present(const struct obj *o, uint32_t b);
/* Object id of conn c's handle h if the daemon pinned it at OPEN: 0, -EBADF, or -EPERM (not
 * pinned: not complete when opened). Engine. */
int objects_pinned_handle(struct conn *c, uint32_t h, uint64_t *id);
/* Whether passthrough opens pin the object (its blocks cannot be revoked). Engine. */
bool objects_pinned(const struct obj *o);
/* Marks an open object to be evicted at its last close. */
void objects_doom(struct daemon *d, struct obj *o);
/* Periodic work on resident objects (revocation timeouts). Engine, each second. */
void objects_tick(struct daemon *d);
/* Takes blocks back from mounts, then punches them (revoke.c). */
int objects_revoke(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n,
		   void (*done)(struct daemon *d, void *ctx), void *ctx);
void objects_fetch_ended(struct daemon *d, struct obj *o);
struct obj *objects_find_id(struct daemon *d, uint64_t id);
bool objects_evictable(struct daemon *d, uint64_t id);
uint64_t objects_forget(struct daemon *d, uint64_t id);
/* Adds delta to the cached bytes. A change that would wrap the count is an accounting bug: it
 * is logged, counted in accounting_errors and clamped instead. Engine. */
void objects_account(struct daemon *d, int64_t delta);
/* Bytes of the blocks LMDB records present for object record r (one that is not resident).
 * Engine (reads LMDB). Returns 0 or -errno (*bytes is then 0). */
int objects_stored_bytes(struct daemon *d, const struct meta_object *r, uint64_t *bytes);
/* The cached bytes, counted two ways (objects_recount). */
struct objects_count {
	uint64_t counted;	   /* bytes_cached: the running count */
	uint64_t resident_objects; /* objects in memory ... */
	uint64_t resident_bytes;   /* ... and their present bytes */
	uint64_t stored_objects;   /* other objects recorded in LMDB ... */
	uint64_t stored_bytes;	   /* ... and their present bytes there */
	uint64_t meta_bytes;	   /* LMDB's own running sum (includes resident objects) */
};
/* Recounts every object's present bytes; consistent when counted == resident_bytes +
 * stored_bytes. Run it after a writer barrier. Engine (reads LMDB). Returns 0 or -errno. */
int objects_recount(struct daemon *d, struct objects_count *out);
int objects_presence(struct daemon *d, uint64_t id, uint8_t *bitmap, uint32_t nblocks,
		     uint32_t *present, int *opens);

/* evict.c */
uint64_t evict_objects(struct daemon *d, uint64_t id, bool all);
/* Whether object `id` was evicted and its removal is not committed yet. Engine. */
bool evict_pending(struct daemon *d, uint64_t id);
/* Evicts object `id` now (its file, record and bytes), whatever the policy says. Engine. */
uint64_t evict_now(struct daemon *d, uint64_t id);
void evict_status(struct daemon *d, uint64_t *limit, uint64_t *fs_free, uint64_t *fs_size);

/* fetch.c */
void fetch_free(struct daemon *d);

/* mdsvc.c */
struct md_job;
void mdsvc_free_buckets(struct daemon *d);
void mdsvc_run(struct daemon *d, struct conn *c,
	       void (*fn)(struct daemon *, struct http_client *, struct md_job *), void *arg);
void *mdsvc_job_arg(struct md_job *j);
struct conn *mdsvc_job_conn(struct md_job *j);

/* ctl.c */
struct json_object;
/* Replies to a CTL request with a JSON object (split in parts when large), or with
 * {"error": msg} and status err. */
void ctl_reply_json(struct conn *c, uint32_t seq, int status, struct json_object *j);
void ctl_reply_error(struct conn *c, uint32_t seq, int err, const char *msg);
int ctl_init(struct daemon *d);
/* The Prometheus text exposition of the counters (malloc'ed), from any thread. */
char *ctl_prometheus(struct daemon *d);
void ctl_fini(struct daemon *d);

#endif
