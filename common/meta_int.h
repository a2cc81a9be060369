/* meta_int.h: what the parts of the LMDB metadata module share (meta.c opens and reads,
 * meta_write.c commits batches, meta_rec.c encodes keys and records). Private to them.
 *
 * On-disk layout, schema version 1. Integers inside values are in host byte order (an LMDB file
 * is not portable across byte orders anyway); integers inside keys are big-endian so that they
 * sort. No key is longer than META_KEY_MAX bytes: a part that would not fit is replaced by its
 * SHA-256 (tag 'H' instead of 'L'), the full text is kept in the value, and every lookup compares
 * the full text, so a digest collision can only make a record unreachable, never return another.
 *
 *   info        "schema_version" "epoch" "next_object_id" "next_bucket_id"
 *               "bytes_present" "objects"                       -> u64
 *   buckets     'L' key | 'H' sha256(key)                       -> u32 id, key
 *   bucket_ids  id (be32)                                       -> key
 *   objects     id (be64)                                       -> struct rec_object, name, version
 *   names       bucket (be32) 'L' name NUL version
 *             | bucket (be32) 'H' sha256(name NUL version)      -> u64 object id
 *   blocks      id (be64) block (be32)                          -> u32 crc32c
 *   lru         (last_access ^ 2^63) (be64) id (be64)           -> empty
 *   dirs        P = bucket (be32) 'L' dir NUL | bucket (be32) 'H' sha256(dir)
 *               P                                               -> struct rec_stamp, dir
 *               P 'L' name | P 'H' sha256(name)                 -> struct rec_dirent, name, version
 *   counters    name                                            -> u64
 *
 * Usage sums: bytes_present is the sum, over object records, of the bytes of their present
 * blocks that lie inside the object's size (the last block counts its partial size); objects is
 * the number of object records. Blocks are only recorded for objects that have a record.
 */
#ifndef HOARDFS_META_INT_H
#define HOARDFS_META_INT_H

#include <lmdb.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/meta.h"

#define META_KEY_MAX	      511 /* LMDB's default limit, fixed so the layout never depends on it */
#define META_DIGEST	      SHA256_DIGEST_LENGTH
#define META_DIR_LIT_MAX      256 /* a literal directory prefix is at most this many key bytes */
#define META_COUNTER_NAME_MAX 255
#define META_MAX_DBS	      16
#define META_MAX_READERS      256
#define META_TXN_POOL	      16
#define META_LOCK_WAIT_MS     2000

#define TAG_LIT	 'L'
#define TAG_HASH 'H'

struct rec_object {
	uint64_t size;
	int64_t mtime_sec;
	int64_t last_access;
	uint32_t bucket_id;
	uint32_t flags;
	uint32_t mtime_nsec;
	uint32_t crc32c;
	uint8_t md5[16];
	uint16_t name_len;
	uint16_t version_len;
	uint32_t reserved;
	/* name, then version (neither NUL-terminated) */
};
_Static_assert(sizeof(struct rec_object) == 64, "rec_object layout");

struct rec_dirent {
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint16_t name_len;
	uint16_t version_len;
	uint8_t type;
	uint8_t reserved[7];
	/* name, then version */
};
_Static_assert(sizeof(struct rec_dirent) == 32, "rec_dirent layout");

struct rec_stamp {
	int64_t listed_at;
	uint32_t dir_len;
	uint32_t reserved;
	/* dir */
};
_Static_assert(sizeof(struct rec_stamp) == 16, "rec_stamp layout");

_Static_assert(URL_KEY_MAX <= UINT16_MAX && PROTO_VERSION_MAX <= UINT16_MAX, "record lengths");

struct meta {
	MDB_env *env;
	size_t map_size;
	MDB_dbi info, buckets, bucket_ids, objects, names, blocks, lru, dirs, counters;
	int lock_fd;   /* flock'ed: one meta handle per environment */
	bool readonly; /* meta_open_readonly(): no writes, no epoch bump */
	uint32_t epoch;
	_Atomic uint64_t next_id;	/* the next id meta_new_object_id() hands out */
	_Atomic uint64_t bytes_present; /* the committed sums, stored under write_lock */
	_Atomic uint64_t nobjects;
	pthread_mutex_t write_lock;   /* serializes write transactions */
	uint64_t next_id_persisted;   /* write_lock: "next_object_id" as committed */
	pthread_mutex_t pool_lock;    /* protects the two fields below */
	MDB_txn *pool[META_TXN_POOL]; /* reset read transactions for reuse */
	int npool;
};

enum meta_op_kind {
	OP_PUT_OBJECT = 1,
	OP_DEL_OBJECT,
	OP_SET_BLOCKS,
	OP_CLEAR_BLOCKS,
	OP_TOUCH,
	OP_PUT_DIR,
	OP_DEL_DIR,
	OP_COUNTER_ADD,
};

struct meta_op {
	enum meta_op_kind kind;
	int err; /* a problem found when the op was added; meta_commit() returns it */
	uint64_t id;
	uint32_t bucket_id;
	uint32_t first, n;
	int64_t when;
	uint64_t delta;
	size_t count; /* put_dir: entries encoded in data */
	void *data;   /* owned: object copy, crcs, or encoded dirents */
	char *str;    /* owned: dir or counter name */
};

struct meta_batch {
	struct meta_op *ops;
	size_t n, cap;
};

struct key {
	uint8_t b[META_KEY_MAX];
	size_t len;
};

struct usage {
	uint64_t bytes;
	uint64_t objects;
};

/* ---- bytes ---- */

static inline void be32_put(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static inline MDB_val mval(const void *p, size_t n)
{
	MDB_val v = { n, (void *)p };

	return v;
}

static inline uint64_t block_bytes(uint64_t b, uint64_t size)
{
	uint64_t off = b << PROTO_BLOCK_SHIFT;

	if (off >= size)
		return 0;
	return size - off < PROTO_BLOCK_SIZE ? size - off : PROTO_BLOCK_SIZE;
}

/* ---- meta_rec.c ---- */

/* The one place LMDB's codes become errno values. */
int mi_lmdb_errno(int rc);
/* Converts an LMDB failure, logging it unless it is a plain "not found". */
int mi_lmdb_fail(const char *what, int rc);
int mi_corrupt(const char *what, uint64_t id, size_t size);
void mi_key_id(struct key *k, uint64_t id);
void mi_key_block(struct key *k, uint64_t id, uint32_t block);
void mi_key_lru(struct key *k, int64_t last_access, uint64_t id);
/* Appends `tag` and s, or 'H' and its digest when the key would pass META_KEY_MAX (or `lit_max`).
 */
void mi_key_part(struct key *k, const void *s, size_t n, size_t lit_max, bool nul);
void mi_key_name(struct key *k, uint32_t bucket, const char *name, size_t nl, const char *ver,
		 size_t vl);
void mi_key_bucket(struct key *k, const char *s, size_t n);
/* The prefix P shared by a directory's stamp and children keys. */
void mi_key_dir(struct key *k, uint32_t bucket, const char *dir, size_t dl);
bool mi_key_dir_hashed(const struct key *k);
int mi_check_dir(const char *dir, size_t *dl);
/* A child name: not empty, no '/', at most URL_KEY_MAX bytes within a buffer of `cap`. */
int mi_check_child(const char *name, size_t cap, size_t *nl);
int mi_check_version(const char *v, size_t *vl);
int mi_obj_decode(const MDB_val *v, uint64_t id, struct meta_object *o);
int mi_dirent_decode(const MDB_val *v, struct meta_dirent *d);
/* Reads the stamp at `prefix` and checks it names `dir`: 0, -ENOENT, -EIO. */
int mi_stamp_read(struct meta *m, MDB_txn *txn, const struct key *prefix, const char *dir,
		  size_t dl, int64_t *when);
int mi_obj_load(struct meta *m, MDB_txn *txn, uint64_t id, struct meta_object *o);
int mi_obj_store(struct meta *m, MDB_txn *txn, const struct meta_object *o, size_t nl, size_t vl);
bool mi_obj_same_version(const struct meta_object *a, const struct meta_object *b);
int mi_info_get(struct meta *m, MDB_txn *txn, const char *name, uint64_t *out);
int mi_info_put(struct meta *m, MDB_txn *txn, const char *name, uint64_t value);
int mi_rd_begin(struct meta *m, MDB_txn **txn);
void mi_rd_end(struct meta *m, MDB_txn *txn);

/* ---- meta_write.c ---- */

/*
 * Walks object id's recorded blocks in [first, end), adding the bytes they hold for an object of
 * `size` to *sum, and deleting them when `del` is set.
 */
int mi_blocks_walk(struct meta *m, MDB_txn *txn, uint64_t id, uint64_t first, uint64_t end,
		   bool del, uint64_t size, uint64_t *sum);

#endif
