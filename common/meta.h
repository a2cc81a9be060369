/* meta: the LMDB metadata of a cache directory: buckets, object versions with a name index,
 * per-block presence and crc32c, directory entries, an eviction order, counters and the schema
 * version. Written only by hoardfs-cached (its single writer thread calls meta_commit()); read by
 * any of its threads, and by hoardfs-inspect through meta_open_readonly() while no daemon runs. */
#ifndef HOARDFS_META_H
#define HOARDFS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "common/url.h"

#define META_SCHEMA_VERSION 1u
#define META_BUCKET_KEY_MAX 800 /* "gs|https://endpoint|bucket" */

struct meta;
struct meta_batch;

/* The durable record of one object version. */
struct meta_object {
	uint64_t id;	    /* > 0, never reused */
	uint32_t bucket_id; /* from meta_bucket_id() */
	uint32_t flags;	    /* META_OBJ_* */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t crc32c;     /* valid with META_OBJ_HAS_CRC32C */
	uint8_t md5[16];     /* valid with META_OBJ_HAS_MD5 */
	int64_t last_access; /* Unix seconds of the last close (or use); orders eviction */
	char version[PROTO_VERSION_MAX];
	char name[URL_KEY_MAX + 1];
};

#define META_OBJ_HAS_CRC32C 0x1u
#define META_OBJ_HAS_MD5    0x2u
#define META_OBJ_VERIFIED   0x4u /* every block present and the whole-object checksum matched */

/* One child of a directory, as the store listed it. */
struct meta_dirent {
	uint8_t type;	/* PROTO_FT_FILE or PROTO_FT_DIR */
	uint32_t flags; /* files: META_OBJ_HAS_CRC32C / META_OBJ_HAS_MD5 */
	uint32_t crc32c;
	uint8_t md5[16];
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	char version[PROTO_VERSION_MAX];
	char name[URL_KEY_MAX + 1]; /* the child's name only (no '/') */
};

/*
 * Opens (creating if needed) the LMDB environment in directory `dir` with a fixed map of
 * `map_size` bytes (MDB_NOTLS; growth is an error path), and checks the schema version: a new
 * environment gets META_SCHEMA_VERSION; another version is refused with -EPROTONOSUPPORT and a
 * log line saying which version was found. Also bumps and records the daemon epoch (see
 * meta_epoch()). One handle per environment: `dir`/meta.lock is flock'ed for the handle's
 * life. Returns 0, -EPROTONOSUPPORT, -ENOSPC, -EAGAIN (another process or handle has held the
 * environment for ~2 s), or -errno.
 */
int meta_open(const char *dir, size_t map_size, struct meta **out);

/*
 * Opens the metadata in `dir` read-only, for inspection while no daemon runs (a shared lock:
 * -EAGAIN while a daemon holds it). No epoch bump; meta_commit() and creating buckets fail with
 * -EROFS. Returns 0, -ENOENT (no metadata there), -EPROTONOSUPPORT, -EAGAIN, -errno.
 */
int meta_open_readonly(const char *dir, struct meta **out);

/* Closes the environment. No batch may be in flight. NULL is allowed. */
void meta_close(struct meta *m);

/* The start counter recorded by meta_open(): 1 for a new cache, +1 each open. */
uint32_t meta_epoch(const struct meta *m);

/*
 * The id of the bucket with identity `key` ("scheme|endpoint|bucket"), creating it (in its own
 * write transaction) when `create` is set. Returns 0, -ENOENT, -ENAMETOOLONG, -ENOSPC, -errno.
 */
int meta_bucket_id(struct meta *m, const char *key, bool create, uint32_t *id);

/* The key of bucket `id` into out (at least META_BUCKET_KEY_MAX + 1 bytes). 0, -ENOENT, -errno. */
int meta_bucket_key(struct meta *m, uint32_t id, char *out, size_t outsz);

/* A fresh object id (persisted with the next meta_commit() that stores any object). Thread-safe. */
uint64_t meta_new_object_id(struct meta *m);

/* Finds the object version (bucket_id, name, version). Returns 0, -ENOENT, -errno. */
int meta_object_find(struct meta *m, uint32_t bucket_id, const char *name, const char *version,
		     struct meta_object *out);

/* Reads object `id`. Returns 0, -ENOENT, -errno. */
int meta_object_get(struct meta *m, uint64_t id, struct meta_object *out);

/*
 * Calls fn for every object, in id order. fn returns 0 to go on or a negative errno to stop
 * (returned). The object is valid only during the call.
 */
int meta_object_scan(struct meta *m, int (*fn)(void *ctx, const struct meta_object *o), void *ctx);

/*
 * Calls fn for objects in eviction order (least recent last_access first, then id).
 * Same contract as meta_object_scan().
 */
int meta_evict_scan(struct meta *m, int (*fn)(void *ctx, const struct meta_object *o), void *ctx);

/*
 * Loads object `id`'s presence: sets bit b of `bitmap` (nblocks bits, zeroed by the caller)
 * for each present block b < nblocks, and, if crcs is not NULL, crcs[b] to its crc32c.
 * Blocks recorded at b >= nblocks are ignored. *present_out (may be NULL) gets the count.
 * Returns 0 or -errno.
 */
int meta_blocks_load(struct meta *m, uint64_t id, uint32_t nblocks, uint8_t *bitmap, uint32_t *crcs,
		     uint32_t *present_out);

/* When the listing of directory `dir` ("" or "a/b/") of a bucket was stored, Unix seconds.
 * Returns 0, -ENOENT (never listed), -EINVAL (dir neither "" nor ending in '/'), -errno. */
int meta_dir_listed_at(struct meta *m, uint32_t bucket_id, const char *dir, int64_t *when);

/* One child of a listed directory. Returns 0, -ENOENT, -errno. */
int meta_dir_lookup(struct meta *m, uint32_t bucket_id, const char *dir, const char *name,
		    struct meta_dirent *out);

/*
 * Calls fn for the children of `dir`, in a stable order, skipping the first `skip` of them.
 * fn returns 0 to go on, 1 to stop early (meta_dir_scan then returns 0), or a negative errno
 * (returned). Returns 0, -ENOENT (never listed), or -errno.
 */
int meta_dir_scan(struct meta *m, uint32_t bucket_id, const char *dir, uint64_t skip,
		  int (*fn)(void *ctx, const struct meta_dirent *d), void *ctx);

/* A named counter's value (0 if never written). */
uint64_t meta_counter_get(struct meta *m, const char *name);

/* Bytes recorded as present (each present block's bytes inside its object's size) and the
 * number of object records: sums maintained by meta_commit(). */
void meta_usage(struct meta *m, uint64_t *bytes_present, uint64_t *objects);

/*
 * Write batches: a list of changes applied together, in order, by meta_commit() in one write
 * transaction. Adding to a batch only allocates: -ENOMEM is the only error.
 */
int meta_batch_new(struct meta_batch **out);
void meta_batch_free(struct meta_batch *b);
bool meta_batch_empty(const struct meta_batch *b);
/* Stores or replaces an object record (and its name index entry and eviction-order key). */
int meta_batch_put_object(struct meta_batch *b, const struct meta_object *o);
/* Removes an object record, its name index entry, eviction key and all its blocks. */
int meta_batch_del_object(struct meta_batch *b, uint64_t id);
/* Marks blocks [first, first+n) of object `id` present with their crc32c values (ignored when
 * no record of `id` exists at that point of the batch, e.g. it was deleted meanwhile). */
int meta_batch_set_blocks(struct meta_batch *b, uint64_t id, uint32_t first, uint32_t n,
			  const uint32_t *crcs);
/* Marks blocks [first, first+n) of object `id` absent. */
int meta_batch_clear_blocks(struct meta_batch *b, uint64_t id, uint32_t first, uint32_t n);
/* Updates an object's last_access (and its eviction-order position). */
int meta_batch_touch(struct meta_batch *b, uint64_t id, int64_t last_access);
/* Replaces the whole listing of `dir` with `n` entries, stamped `listed_at`. */
int meta_batch_put_dir(struct meta_batch *b, uint32_t bucket_id, const char *dir,
		       const struct meta_dirent *entries, size_t n, int64_t listed_at);
/* Forgets the listing of `dir` (its entries and its stamp). */
int meta_batch_del_dir(struct meta_batch *b, uint32_t bucket_id, const char *dir);
/* Adds `delta` to a named counter. */
int meta_batch_counter_add(struct meta_batch *b, const char *name, uint64_t delta);

/*
 * Applies the batch in one write transaction and commits it (durable when this returns 0).
 * On any failure the transaction is aborted and nothing of the batch is applied. The batch is
 * left as it was (the caller frees it). Returns 0, -ENOSPC (map full), -EINVAL or
 * -ENAMETOOLONG (a malformed change: id 0, bad name or dir), -errno.
 */
int meta_commit(struct meta *m, struct meta_batch *b);

#endif
