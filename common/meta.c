/* meta: the daemon's LMDB metadata.
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
#include "common/meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

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

/* ---- bytes and errors ---- */

static void be32_put(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static MDB_val mval(const void *p, size_t n)
{
	MDB_val v = { n, (void *)p };

	return v;
}

/* The one place LMDB's codes become errno values. */
static int lmdb_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		return -E2BIG;
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		return -EAGAIN;
	case MDB_DBS_FULL:
		return -EMFILE;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* Converts an LMDB failure, logging it unless it is a plain "not found". */
static int lmdb_fail(const char *what, int rc)
{
	if (rc != MDB_NOTFOUND)
		log_error("meta: %s: %s", what, mdb_strerror(rc));
	return lmdb_errno(rc);
}

static int corrupt(const char *what, uint64_t id, size_t size)
{
	log_error("meta: corrupt %s record %" PRIu64 " (%zu bytes)", what, id, size);
	return -EIO;
}

static uint64_t block_bytes(uint64_t b, uint64_t size)
{
	uint64_t off = b << PROTO_BLOCK_SHIFT;

	if (off >= size)
		return 0;
	return size - off < PROTO_BLOCK_SIZE ? size - off : PROTO_BLOCK_SIZE;
}

/* ---- keys ---- */

static void key_id(struct key *k, uint64_t id)
{
	be64_put(k->b, id);
	k->len = 8;
}

static void key_block(struct key *k, uint64_t id, uint32_t block)
{
	be64_put(k->b, id);
	be32_put(k->b + 8, block);
	k->len = 12;
}

static void key_lru(struct key *k, int64_t last_access, uint64_t id)
{
	be64_put(k->b, (uint64_t)last_access ^ (UINT64_C(1) << 63));
	be64_put(k->b + 8, id);
	k->len = 16;
}

/* Appends `tag` and s, or 'H' and its digest when the key would pass META_KEY_MAX (or `lit_max`).
 */
static void key_part(struct key *k, const void *s, size_t n, size_t lit_max, bool nul)
{
	size_t lit = k->len + 1 + n + (nul ? 1 : 0);

	if (lit <= lit_max && lit <= META_KEY_MAX) {
		k->b[k->len++] = TAG_LIT;
		memcpy(k->b + k->len, s, n);
		k->len += n;
		if (nul)
			k->b[k->len++] = 0;
	} else {
		k->b[k->len++] = TAG_HASH;
		SHA256(s, n, k->b + k->len);
		k->len += META_DIGEST;
	}
}

static void key_name(struct key *k, uint32_t bucket, const char *name, size_t nl, const char *ver,
		     size_t vl)
{
	uint8_t tmp[URL_KEY_MAX + 1 + PROTO_VERSION_MAX];

	memcpy(tmp, name, nl);
	tmp[nl] = 0;
	memcpy(tmp + nl + 1, ver, vl);
	be32_put(k->b, bucket);
	k->len = 4;
	key_part(k, tmp, nl + 1 + vl, META_KEY_MAX, false);
}

static void key_bucket(struct key *k, const char *s, size_t n)
{
	k->len = 0;
	key_part(k, s, n, META_KEY_MAX, false);
}

/* The prefix P shared by a directory's stamp and children keys. */
static void key_dir(struct key *k, uint32_t bucket, const char *dir, size_t dl)
{
	be32_put(k->b, bucket);
	k->len = 4;
	key_part(k, dir, dl, META_DIR_LIT_MAX, true);
}

static bool key_dir_hashed(const struct key *k)
{
	return k->b[4] == TAG_HASH;
}

/* ---- validation ---- */

static int check_dir(const char *dir, size_t *dl)
{
	size_t n = strnlen(dir, URL_KEY_MAX + 1);

	if (n > URL_KEY_MAX)
		return -ENAMETOOLONG;
	if (n > 0 && dir[n - 1] != '/')
		return -EINVAL;
	*dl = n;
	return 0;
}

/* A child name: not empty, no '/', at most URL_KEY_MAX bytes within a buffer of `cap`. */
static int check_child(const char *name, size_t cap, size_t *nl)
{
	size_t n = strnlen(name, cap < URL_KEY_MAX + 1 ? cap : URL_KEY_MAX + 1);

	if (n == 0 || memchr(name, '/', n))
		return -EINVAL;
	if (n > URL_KEY_MAX || n == cap)
		return -ENAMETOOLONG;
	*nl = n;
	return 0;
}

static int check_version(const char *v, size_t *vl)
{
	size_t n = strnlen(v, PROTO_VERSION_MAX);

	if (n == PROTO_VERSION_MAX)
		return -ENAMETOOLONG;
	*vl = n;
	return 0;
}

/* ---- records ---- */

static size_t obj_encode(const struct meta_object *o, size_t nl, size_t vl, uint8_t *buf)
{
	struct rec_object r = {
		.size = o->size,
		.mtime_sec = o->mtime_sec,
		.last_access = o->last_access,
		.bucket_id = o->bucket_id,
		.flags = o->flags,
		.mtime_nsec = o->mtime_nsec,
		.crc32c = o->crc32c,
		.name_len = (uint16_t)nl,
		.version_len = (uint16_t)vl,
	};

	memcpy(r.md5, o->md5, sizeof(r.md5));
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), o->name, nl);
	memcpy(buf + sizeof(r) + nl, o->version, vl);
	return sizeof(r) + nl + vl;
}

static int obj_decode(const MDB_val *v, uint64_t id, struct meta_object *o)
{
	const uint8_t *p = v->mv_data;
	struct rec_object r;

	if (v->mv_size < sizeof(r))
		return corrupt("object", id, v->mv_size);
	memcpy(&r, p, sizeof(r));
	if (r.name_len == 0 || r.name_len > URL_KEY_MAX || r.version_len >= PROTO_VERSION_MAX ||
	    v->mv_size != sizeof(r) + r.name_len + r.version_len ||
	    memchr(p + sizeof(r), 0, (size_t)r.name_len + r.version_len))
		return corrupt("object", id, v->mv_size);
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->bucket_id = r.bucket_id;
	o->flags = r.flags;
	o->size = r.size;
	o->mtime_sec = r.mtime_sec;
	o->mtime_nsec = r.mtime_nsec;
	o->crc32c = r.crc32c;
	memcpy(o->md5, r.md5, sizeof(o->md5));
	o->last_access = r.last_access;
	memcpy(o->name, p + sizeof(r), r.name_len);
	memcpy(o->version, p + sizeof(r) + r.name_len, r.version_len);
	return 0;
}

static int dirent_decode(const MDB_val *v, struct meta_dirent *d)
{
	const uint8_t *p = v->mv_data;
	struct rec_dirent r;

	if (v->mv_size < sizeof(r))
		return corrupt("dirent", 0, v->mv_size);
	memcpy(&r, p, sizeof(r));
	if (r.name_len == 0 || r.name_len > URL_KEY_MAX || r.version_len >= PROTO_VERSION_MAX ||
	    (r.type != PROTO_FT_FILE && r.type != PROTO_FT_DIR) ||
	    v->mv_size != sizeof(r) + r.name_len + r.version_len ||
	    memchr(p + sizeof(r), 0, (size_t)r.name_len + r.version_len))
		return corrupt("dirent", 0, v->mv_size);
	memset(d, 0, sizeof(*d));
	d->type = r.type;
	d->size = r.size;
	d->mtime_sec = r.mtime_sec;
	d->mtime_nsec = r.mtime_nsec;
	memcpy(d->name, p + sizeof(r), r.name_len);
	memcpy(d->version, p + sizeof(r) + r.name_len, r.version_len);
	return 0;
}

/* Reads the stamp at `prefix` and checks it names `dir`: 0, -ENOENT, -EIO. */
static int stamp_read(struct meta *m, MDB_txn *txn, const struct key *prefix, const char *dir,
		      size_t dl, int64_t *when)
{
	MDB_val k = mval(prefix->b, prefix->len), v;
	struct rec_stamp s;
	int rc = mdb_get(txn, m->dirs, &k, &v);

	if (rc)
		return lmdb_fail("read directory stamp", rc);
	if (v.mv_size < sizeof(s))
		return corrupt("directory stamp", 0, v.mv_size);
	memcpy(&s, v.mv_data, sizeof(s));
	if (s.dir_len > URL_KEY_MAX || v.mv_size != sizeof(s) + s.dir_len)
		return corrupt("directory stamp", 0, v.mv_size);
	if (s.dir_len != dl || memcmp((const uint8_t *)v.mv_data + sizeof(s), dir, dl) != 0)
		return -ENOENT; /* another directory with the same digest */
	if (when)
		*when = s.listed_at;
	return 0;
}

static int obj_load(struct meta *m, MDB_txn *txn, uint64_t id, struct meta_object *o)
{
	struct key k;
	MDB_val kv, v;
	int rc;

	key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->objects, &kv, &v);
	if (rc)
		return lmdb_fail("read object", rc);
	return obj_decode(&v, id, o);
}

static int obj_store(struct meta *m, MDB_txn *txn, const struct meta_object *o, size_t nl,
		     size_t vl)
{
	uint8_t buf[sizeof(struct rec_object) + URL_KEY_MAX + PROTO_VERSION_MAX];
	struct key k;
	MDB_val kv, v;

	key_id(&k, o->id);
	kv = mval(k.b, k.len);
	v = mval(buf, obj_encode(o, nl, vl, buf));
	return lmdb_errno(mdb_put(txn, m->objects, &kv, &v, 0));
}

static bool obj_same_version(const struct meta_object *a, const struct meta_object *b)
{
	return a->bucket_id == b->bucket_id && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->version, b->version) == 0;
}

static int info_get(struct meta *m, MDB_txn *txn, const char *name, uint64_t *out)
{
	MDB_val k = mval(name, strlen(name)), v;
	int rc = mdb_get(txn, m->info, &k, &v);

	if (rc)
		return lmdb_fail("read info", rc);
	if (v.mv_size == 8) {
		memcpy(out, v.mv_data, 8);
	} else if (v.mv_size == 4) {
		uint32_t x;

		memcpy(&x, v.mv_data, 4);
		*out = x;
	} else {
		log_error("meta: corrupt info record \"%s\" (%zu bytes)", name, v.mv_size);
		return -EIO;
	}
	return 0;
}

static int info_put(struct meta *m, MDB_txn *txn, const char *name, uint64_t value)
{
	MDB_val k = mval(name, strlen(name)), v = mval(&value, sizeof(value));

	return lmdb_errno(mdb_put(txn, m->info, &k, &v, 0));
}

/* ---- read transactions ---- */

static int rd_begin(struct meta *m, MDB_txn **txn)
{
	MDB_txn *t = NULL;
	int rc;

	pthread_mutex_lock(&m->pool_lock);
	if (m->npool > 0)
		t = m->pool[--m->npool];
	pthread_mutex_unlock(&m->pool_lock);
	if (t) {
		if (mdb_txn_renew(t) == 0) {
			*txn = t;
			return 0;
		}
		mdb_txn_abort(t);
	}
	rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, txn);
	if (rc)
		return lmdb_fail("begin read transaction", rc);
	return 0;
}

static void rd_end(struct meta *m, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_mutex_lock(&m->pool_lock);
	if (m->npool < META_TXN_POOL) {
		m->pool[m->npool++] = txn;
		txn = NULL;
	}
	pthread_mutex_unlock(&m->pool_lock);
	if (txn)
		mdb_txn_abort(txn);
}

/* ---- open and close ---- */

static int meta_lock(struct meta *m, const char *dir, bool shared)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/meta.lock", dir);
	int fd, rc;

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		log_error("meta: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	for (int waited = 0; flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0; waited += 50) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			rc = -errno;
			goto out_close_fd;
		}
		if (waited >= META_LOCK_WAIT_MS) {
			log_error("meta: the metadata in %s is in use by another process", dir);
			rc = -EAGAIN;
			goto out_close_fd;
		}
		nanosleep(&ts, NULL);
	}
	m->lock_fd = fd;
	return 0;
out_close_fd:
	close(fd);
	return rc;
}

static int meta_init(struct meta *m, const char *dir)
{
	MDB_dbi *dbis[] = { &m->buckets, &m->bucket_ids, &m->objects, &m->names,
			    &m->blocks,	 &m->lru,	 &m->dirs,    &m->counters };
	const char *names[] = { "buckets", "bucket_ids", "objects", "names",
				"blocks",  "lru",	 "dirs",    "counters" };
	uint64_t schema, epoch = 0, next = 1, bytes = 0, objs = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_stat st;
	MDB_val k, v;
	int rc;

	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail("begin write transaction", rc);
	rc = mdb_dbi_open(txn, "info", MDB_CREATE, &m->info);
	if (rc) {
		rc = lmdb_fail("open info", rc);
		goto out_abort_txn;
	}
	rc = info_get(m, txn, "schema_version", &schema);
	if (rc == -ENOENT) {
		rc = lmdb_errno(mdb_stat(txn, m->info, &st));
		if (!rc && st.ms_entries != 0) {
			log_error("meta: %s holds metadata without a schema version", dir);
			rc = -EPROTONOSUPPORT;
		}
		if (!rc)
			rc = info_put(m, txn, "schema_version", META_SCHEMA_VERSION);
	} else if (!rc && schema != META_SCHEMA_VERSION) {
		log_error("meta: %s holds metadata schema version %" PRIu64
			  "; this hoardfs understands version %u only",
			  dir, schema, META_SCHEMA_VERSION);
		rc = -EPROTONOSUPPORT;
	}
	if (rc)
		goto out_abort_txn;
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]);
		if (rc) {
			rc = lmdb_fail("open database", rc);
			goto out_abort_txn;
		}
	}
	if ((rc = info_get(m, txn, "epoch", &epoch)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = info_get(m, txn, "next_object_id", &next)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = info_get(m, txn, "bytes_present", &bytes)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = info_get(m, txn, "objects", &objs)) == -ENOENT)
		rc = 0;
	if (rc)
		goto out_abort_txn;
	m->epoch = (uint32_t)(epoch + 1) ? (uint32_t)(epoch + 1) : 1;
	rc = info_put(m, txn, "epoch", m->epoch);
	if (rc)
		goto out_abort_txn;

	/* Never hand out an id that is present, even if a commit of the high-water mark was lost.
	 */
	rc = mdb_cursor_open(txn, m->objects, &cur);
	if (rc) {
		rc = lmdb_fail("open cursor", rc);
		goto out_abort_txn;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8 && be64_get(k.mv_data) >= next)
		next = be64_get(k.mv_data) + 1;
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND) {
		rc = lmdb_fail("read last object", rc);
		goto out_abort_txn;
	}
	if (next == 0)
		next = 1;
	rc = lmdb_errno(mdb_stat(txn, m->objects, &st));
	if (rc)
		goto out_abort_txn;
	if (st.ms_entries != objs) {
		log_warn("meta: object count was %" PRIu64 ", found %zu", objs, st.ms_entries);
		objs = st.ms_entries;
	}
	rc = lmdb_errno(mdb_txn_commit(txn));
	if (rc) {
		log_error("meta: cannot initialise %s: %s", dir, strerror(-rc));
		return rc;
	}
	atomic_store(&m->next_id, next);
	m->next_id_persisted = next;
	atomic_store(&m->bytes_present, bytes);
	atomic_store(&m->nobjects, objs);
	return 0;
out_abort_txn:
	mdb_txn_abort(txn);
	return rc;
}

/* Read-only counterpart of meta_init(): checks the schema, opens the databases, reads the sums. */
static int meta_init_ro(struct meta *m, const char *dir)
{
	MDB_dbi *dbis[] = { &m->info,	&m->buckets, &m->bucket_ids, &m->objects, &m->names,
			    &m->blocks, &m->lru,     &m->dirs,	     &m->counters };
	const char *names[] = { "info",	  "buckets", "bucket_ids", "objects", "names",
				"blocks", "lru",     "dirs",	   "counters" };
	uint64_t schema = 0, epoch = 0, bytes = 0, objs = 0;
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_fail("begin read transaction", rc);
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		rc = mdb_dbi_open(txn, names[i], 0, dbis[i]);
		if (rc) {
			log_error("meta: %s holds no hoardfs metadata (%s)", dir, mdb_strerror(rc));
			rc = rc == MDB_NOTFOUND ? -ENOENT : lmdb_errno(rc);
			goto out_abort_txn;
		}
	}
	rc = info_get(m, txn, "schema_version", &schema);
	if (!rc && schema != META_SCHEMA_VERSION) {
		log_error("meta: %s holds metadata schema version %" PRIu64
			  "; this hoardfs understands version %u only",
			  dir, schema, META_SCHEMA_VERSION);
		rc = -EPROTONOSUPPORT;
	}
	if (!rc && (rc = info_get(m, txn, "epoch", &epoch)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = info_get(m, txn, "bytes_present", &bytes)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = info_get(m, txn, "objects", &objs)) == -ENOENT)
		rc = 0;
	if (rc)
		goto out_abort_txn;
	m->epoch = (uint32_t)epoch;
	atomic_store(&m->bytes_present, bytes);
	atomic_store(&m->nobjects, objs);
	/* Committing (not aborting) keeps the database handles opened in this transaction. */
	return lmdb_errno(mdb_txn_commit(txn));
out_abort_txn:
	mdb_txn_abort(txn);
	return rc;
}

int meta_open_readonly(const char *dir, struct meta **out)
{
	struct meta *m;
	int rc;

	*out = NULL;
	if (!dir || !*dir)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->lock_fd = -1;
	m->readonly = true;
	pthread_mutex_init(&m->write_lock, NULL);
	pthread_mutex_init(&m->pool_lock, NULL);
	/* A shared lock: refused while a daemon holds the metadata (ask the daemon instead). */
	rc = meta_lock(m, dir, true);
	if (rc)
		goto out_free;
	rc = mdb_env_create(&m->env);
	if (rc) {
		rc = lmdb_fail("create environment", rc);
		goto out_unlock;
	}
	rc = mdb_env_set_maxdbs(m->env, META_MAX_DBS);
	if (!rc)
		rc = mdb_env_set_maxreaders(m->env, META_MAX_READERS);
	if (!rc)
		rc = mdb_env_open(m->env, dir, MDB_NOTLS | MDB_RDONLY, 0600);
	if (rc) {
		log_error("meta: cannot open the metadata in %s read-only: %s", dir,
			  mdb_strerror(rc));
		rc = lmdb_errno(rc);
		goto out_close_env;
	}
	rc = meta_init_ro(m, dir);
	if (rc)
		goto out_close_env;
	*out = m;
	return 0;
out_close_env:
	mdb_env_close(m->env);
out_unlock:
	close(m->lock_fd);
out_free:
	pthread_mutex_destroy(&m->pool_lock);
	pthread_mutex_destroy(&m->write_lock);
	free(m);
	return rc;
}

int meta_open(const char *dir, size_t map_size, struct meta **out)
{
	long page = sysconf(_SC_PAGESIZE);
	struct meta *m;
	int rc;

	*out = NULL;
	if (!dir || !*dir || map_size == 0)
		return -EINVAL;
	if (page > 0)
		map_size = (map_size + (size_t)page - 1) / (size_t)page * (size_t)page;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->lock_fd = -1;
	m->map_size = map_size;
	pthread_mutex_init(&m->write_lock, NULL);
	pthread_mutex_init(&m->pool_lock, NULL);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		log_error("meta: cannot create %s: %s", dir, strerror(-rc));
		goto out_free;
	}
	rc = meta_lock(m, dir, false);
	if (rc)
		goto out_free;
	rc = mdb_env_create(&m->env);
	if (rc) {
		rc = lmdb_fail("create environment", rc);
		goto out_unlock;
	}
	rc = mdb_env_set_mapsize(m->env, map_size);
	if (!rc)
		rc = mdb_env_set_maxdbs(m->env, META_MAX_DBS);
	if (!rc)
		rc = mdb_env_set_maxreaders(m->env, META_MAX_READERS);
	if (!rc)
		rc = mdb_env_open(m->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		log_error("meta: cannot open the metadata in %s: %s", dir, mdb_strerror(rc));
		rc = lmdb_errno(rc);
		goto out_close_env;
	}
	if (mdb_env_get_maxkeysize(m->env) < META_KEY_MAX) {
		log_error("meta: this LMDB allows keys of %d bytes only",
			  mdb_env_get_maxkeysize(m->env));
		rc = -ENOTSUP;
		goto out_close_env;
	}
	rc = meta_init(m, dir);
	if (rc)
		goto out_close_env;
	*out = m;
	return 0;
out_close_env:
	mdb_env_close(m->env);
out_unlock:
	close(m->lock_fd);
out_free:
	pthread_mutex_destroy(&m->pool_lock);
	pthread_mutex_destroy(&m->write_lock);
	free(m);
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->npool; i++)
		mdb_txn_abort(m->pool[i]);
	mdb_env_close(m->env);
	close(m->lock_fd);
	pthread_mutex_destroy(&m->pool_lock);
	pthread_mutex_destroy(&m->write_lock);
	free(m);
}

uint32_t meta_epoch(const struct meta *m)
{
	return m->epoch;
}

uint64_t meta_new_object_id(struct meta *m)
{
	return atomic_fetch_add(&m->next_id, 1);
}

void meta_usage(struct meta *m, uint64_t *bytes_present, uint64_t *objects)
{
	if (bytes_present)
		*bytes_present = atomic_load(&m->bytes_present);
	if (objects)
		*objects = atomic_load(&m->nobjects);
}

/* ---- buckets ---- */

/* 0 and *id, -ENOENT, or -EEXIST when the key's slot holds another bucket (digest collision). */
static int bucket_find(struct meta *m, MDB_txn *txn, const struct key *k, const char *s, size_t n,
		       uint32_t *id)
{
	MDB_val kv = mval(k->b, k->len), v;
	int rc = mdb_get(txn, m->buckets, &kv, &v);

	if (rc)
		return lmdb_fail("read bucket", rc);
	if (v.mv_size < 4 || v.mv_size - 4 > META_BUCKET_KEY_MAX)
		return corrupt("bucket", 0, v.mv_size);
	if (v.mv_size - 4 != n || memcmp((const uint8_t *)v.mv_data + 4, s, n) != 0)
		return -EEXIST;
	memcpy(id, v.mv_data, 4);
	return 0;
}

static int bucket_create(struct meta *m, const struct key *k, const char *s, size_t n, uint32_t *id)
{
	uint8_t buf[4 + META_BUCKET_KEY_MAX], idk[4];
	uint64_t next = 1;
	MDB_txn *txn;
	MDB_val kv, v;
	int rc;

	pthread_mutex_lock(&m->write_lock);
	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc) {
		rc = lmdb_fail("begin write transaction", rc);
		goto out_unlock;
	}
	rc = bucket_find(m, txn, k, s, n, id);
	if (rc != -ENOENT)
		goto out_abort_txn; /* created meanwhile (0), or an error */
	if ((rc = info_get(m, txn, "next_bucket_id", &next)) == -ENOENT)
		rc = 0;
	if (rc)
		goto out_abort_txn;
	if (next == 0 || next > UINT32_MAX) {
		rc = -ENOSPC;
		goto out_abort_txn;
	}
	*id = (uint32_t)next;
	memcpy(buf, id, 4);
	memcpy(buf + 4, s, n);
	kv = mval(k->b, k->len);
	v = mval(buf, 4 + n);
	rc = lmdb_errno(mdb_put(txn, m->buckets, &kv, &v, 0));
	if (rc)
		goto out_abort_txn;
	be32_put(idk, *id);
	kv = mval(idk, 4);
	v = mval(s, n);
	rc = lmdb_errno(mdb_put(txn, m->bucket_ids, &kv, &v, 0));
	if (!rc)
		rc = info_put(m, txn, "next_bucket_id", next + 1);
	if (rc)
		goto out_abort_txn;
	rc = lmdb_errno(mdb_txn_commit(txn));
	if (rc)
		log_error("meta: cannot record bucket %s: %s", s, strerror(-rc));
	goto out_unlock;
out_abort_txn:
	mdb_txn_abort(txn);
out_unlock:
	pthread_mutex_unlock(&m->write_lock);
	return rc;
}

int meta_bucket_id(struct meta *m, const char *key, bool create, uint32_t *id)
{
	size_t n = strnlen(key, META_BUCKET_KEY_MAX + 1);
	MDB_txn *txn;
	struct key k;
	int rc;

	if (n == 0)
		return -EINVAL;
	if (n > META_BUCKET_KEY_MAX)
		return -ENAMETOOLONG;
	key_bucket(&k, key, n);
	rc = rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = bucket_find(m, txn, &k, key, n, id);
	rd_end(m, txn);
	if (rc == -ENOENT && create)
		rc = m->readonly ? -EROFS : bucket_create(m, &k, key, n, id);
	if (rc == -EEXIST) {
		if (!create)
			return -ENOENT;
		log_error("meta: bucket key digest collision for %s", key);
		return -EIO;
	}
	return rc;
}

int meta_bucket_key(struct meta *m, uint32_t id, char *out, size_t outsz)
{
	uint8_t idk[4];
	MDB_txn *txn;
	MDB_val kv, v;
	int rc;

	be32_put(idk, id);
	kv = mval(idk, 4);
	rc = rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = mdb_get(txn, m->bucket_ids, &kv, &v);
	if (rc) {
		rc = lmdb_fail("read bucket key", rc);
	} else if (v.mv_size == 0 || v.mv_size > META_BUCKET_KEY_MAX ||
		   memchr(v.mv_data, 0, v.mv_size)) {
		rc = corrupt("bucket key", id, v.mv_size);
	} else if (v.mv_size >= outsz) {
		rc = -ENAMETOOLONG;
	} else {
		memcpy(out, v.mv_data, v.mv_size);
		out[v.mv_size] = 0;
	}
	rd_end(m, txn);
	return rc;
}

/* ---- objects ---- */

int meta_object_find(struct meta *m, uint32_t bucket_id, const char *name, const char *version,
		     struct meta_object *out)
{
	size_t nl = strnlen(name, URL_KEY_MAX + 1), vl;
	MDB_txn *txn;
	struct key k;
	MDB_val kv, v;
	uint64_t id;
	int rc;

	if (nl == 0)
		return -EINVAL;
	if (nl > URL_KEY_MAX)
		return -ENAMETOOLONG;
	rc = check_version(version, &vl);
	if (rc)
		return rc;
	key_name(&k, bucket_id, name, nl, version, vl);
	kv = mval(k.b, k.len);
	rc = rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc) {
		rc = lmdb_fail("read name index", rc);
		goto out_end_txn;
	}
	if (v.mv_size != 8) {
		rc = corrupt("name index", 0, v.mv_size);
		goto out_end_txn;
	}
	memcpy(&id, v.mv_data, 8);
	rc = obj_load(m, txn, id, out);
	if (rc == 0 && (out->bucket_id != bucket_id || strcmp(out->name, name) != 0 ||
			strcmp(out->version, version) != 0))
		rc = -ENOENT; /* a digest collision or a stale entry: not this version */
out_end_txn:
	rd_end(m, txn);
	return rc;
}

int meta_object_get(struct meta *m, uint64_t id, struct meta_object *out)
{
	MDB_txn *txn;
	int rc = rd_begin(m, &txn);

	if (rc)
		return rc;
	rc = obj_load(m, txn, id, out);
	rd_end(m, txn);
	return rc;
}

int meta_object_scan(struct meta *m, int (*fn)(void *ctx, const struct meta_object *o), void *ctx)
{
	struct meta_object *o = malloc(sizeof(*o));
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, err = 0;

	if (!o)
		return -ENOMEM;
	err = rd_begin(m, &txn);
	if (err)
		goto out_free;
	rc = mdb_cursor_open(txn, m->objects, &cur);
	if (rc) {
		err = lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			err = corrupt("object key", 0, k.mv_size);
		else
			err = obj_decode(&v, be64_get(k.mv_data), o);
		if (!err)
			err = fn(ctx, o);
		if (err)
			break;
	}
	if (!err && rc && rc != MDB_NOTFOUND)
		err = lmdb_fail("scan objects", rc);
	mdb_cursor_close(cur);
out_end_txn:
	rd_end(m, txn);
out_free:
	free(o);
	return err;
}

int meta_evict_scan(struct meta *m, int (*fn)(void *ctx, const struct meta_object *o), void *ctx)
{
	struct meta_object *o = malloc(sizeof(*o));
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, err = 0;

	if (!o)
		return -ENOMEM;
	err = rd_begin(m, &txn);
	if (err)
		goto out_free;
	rc = mdb_cursor_open(txn, m->lru, &cur);
	if (rc) {
		err = lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t id, when;

		if (k.mv_size != 16) {
			err = corrupt("eviction key", 0, k.mv_size);
			break;
		}
		when = be64_get(k.mv_data) ^ (UINT64_C(1) << 63);
		id = be64_get((const uint8_t *)k.mv_data + 8);
		err = obj_load(m, txn, id, o);
		if (err == -ENOENT || (err == 0 && (uint64_t)o->last_access != when)) {
			log_warn("meta: stale eviction key for object %" PRIu64, id);
			err = 0;
			continue;
		}
		if (!err)
			err = fn(ctx, o);
		if (err)
			break;
	}
	if (!err && rc && rc != MDB_NOTFOUND)
		err = lmdb_fail("scan eviction order", rc);
	mdb_cursor_close(cur);
out_end_txn:
	rd_end(m, txn);
out_free:
	free(o);
	return err;
}

/* ---- blocks ---- */

int meta_blocks_load(struct meta *m, uint64_t id, uint32_t nblocks, uint8_t *bitmap, uint32_t *crcs,
		     uint32_t *present_out)
{
	uint32_t present = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	struct key kb;
	MDB_val k, v;
	int rc, err;

	err = rd_begin(m, &txn);
	if (err)
		return err;
	rc = mdb_cursor_open(txn, m->blocks, &cur);
	if (rc) {
		err = lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	key_block(&kb, id, 0);
	k = mval(kb.b, kb.len);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t b;

		if (k.mv_size != 12 || v.mv_size != 4) {
			err = corrupt("block", id, v.mv_size);
			break;
		}
		if (be64_get(k.mv_data) != id)
			break;
		b = be32_get((const uint8_t *)k.mv_data + 8);
		if (b >= nblocks)
			break;
		bitmap[b / 8] |= (uint8_t)(1u << (b % 8));
		if (crcs)
			memcpy(&crcs[b], v.mv_data, 4);
		present++;
	}
	if (!err && rc && rc != MDB_NOTFOUND)
		err = lmdb_fail("load blocks", rc);
	mdb_cursor_close(cur);
	if (!err && present_out)
		*present_out = present;
out_end_txn:
	rd_end(m, txn);
	return err;
}

/*
 * Walks object id's recorded blocks in [first, end), adding the bytes they hold for an object of
 * `size` to *sum, and deleting them when `del` is set.
 */
static int blocks_walk(struct meta *m, MDB_txn *txn, uint64_t id, uint64_t first, uint64_t end,
		       bool del, uint64_t size, uint64_t *sum)
{
	MDB_cursor *cur;
	struct key kb;
	MDB_val k, v;
	int rc;

	if (first > UINT32_MAX || first >= end)
		return 0;
	rc = mdb_cursor_open(txn, m->blocks, &cur);
	if (rc)
		return lmdb_errno(rc);
	key_block(&kb, id, (uint32_t)first);
	k = mval(kb.b, kb.len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint32_t b;

		if (k.mv_size != 12 || v.mv_size != 4) {
			rc = corrupt("block", id, v.mv_size);
			goto out_close_cursor;
		}
		if (be64_get(k.mv_data) != id)
			break;
		b = be32_get((const uint8_t *)k.mv_data + 8);
		if (b >= end)
			break;
		*sum += block_bytes(b, size);
		if (!del) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc || b == UINT32_MAX)
			break;
		key_block(&kb, id, b + 1);
		k = mval(kb.b, kb.len);
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	rc = rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
out_close_cursor:
	mdb_cursor_close(cur);
	return rc;
}

/* ---- write batches ---- */

int meta_batch_new(struct meta_batch **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void meta_batch_free(struct meta_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->ops[i].data);
		free(b->ops[i].str);
	}
	free(b->ops);
	free(b);
}

bool meta_batch_empty(const struct meta_batch *b)
{
	return b->n == 0;
}

/* A zeroed slot at the end of the batch; it counts once the caller sets b->n++. */
static struct meta_op *batch_slot(struct meta_batch *b, enum meta_op_kind kind)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct meta_op *ops = realloc(b->ops, cap * sizeof(*ops));

		if (!ops)
			return NULL;
		b->ops = ops;
		b->cap = cap;
	}
	memset(&b->ops[b->n], 0, sizeof(b->ops[b->n]));
	b->ops[b->n].kind = kind;
	return &b->ops[b->n];
}

int meta_batch_put_object(struct meta_batch *b, const struct meta_object *o)
{
	struct meta_op *op = batch_slot(b, OP_PUT_OBJECT);

	if (!op || !(op->data = malloc(sizeof(*o))))
		return -ENOMEM;
	memcpy(op->data, o, sizeof(*o));
	b->n++;
	return 0;
}

int meta_batch_del_object(struct meta_batch *b, uint64_t id)
{
	struct meta_op *op = batch_slot(b, OP_DEL_OBJECT);

	if (!op)
		return -ENOMEM;
	op->id = id;
	b->n++;
	return 0;
}

int meta_batch_set_blocks(struct meta_batch *b, uint64_t id, uint32_t first, uint32_t n,
			  const uint32_t *crcs)
{
	struct meta_op *op = batch_slot(b, OP_SET_BLOCKS);

	if (!op)
		return -ENOMEM;
	op->id = id;
	op->first = first;
	op->n = n;
	if ((uint64_t)first + n > (uint64_t)UINT32_MAX + 1 || (n && !crcs)) {
		op->err = -EINVAL;
	} else if (n) {
		op->data = malloc((size_t)n * sizeof(*crcs));
		if (!op->data)
			return -ENOMEM;
		memcpy(op->data, crcs, (size_t)n * sizeof(*crcs));
	}
	b->n++;
	return 0;
}

int meta_batch_clear_blocks(struct meta_batch *b, uint64_t id, uint32_t first, uint32_t n)
{
	struct meta_op *op = batch_slot(b, OP_CLEAR_BLOCKS);

	if (!op)
		return -ENOMEM;
	op->id = id;
	op->first = first;
	op->n = n;
	b->n++;
	return 0;
}

int meta_batch_touch(struct meta_batch *b, uint64_t id, int64_t last_access)
{
	struct meta_op *op = batch_slot(b, OP_TOUCH);

	if (!op)
		return -ENOMEM;
	op->id = id;
	op->when = last_access;
	b->n++;
	return 0;
}

/* Encodes entries as a run of dirent records; 0, or -EINVAL/-ENAMETOOLONG in op->err. */
static int dirents_encode(struct meta_op *op, const struct meta_dirent *e, size_t n)
{
	size_t total = 0, off = 0, nl, vl;
	uint8_t *p;

	for (size_t i = 0; i < n; i++) {
		int rc = check_child(e[i].name, sizeof(e[i].name), &nl);

		if (!rc)
			rc = check_version(e[i].version, &vl);
		if (!rc && e[i].type != PROTO_FT_FILE && e[i].type != PROTO_FT_DIR)
			rc = -EINVAL;
		if (rc) {
			op->err = rc;
			return 0;
		}
		total += sizeof(struct rec_dirent) + nl + vl;
	}
	p = malloc(total ? total : 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct rec_dirent r = { .size = e[i].size,
					.mtime_sec = e[i].mtime_sec,
					.mtime_nsec = e[i].mtime_nsec,
					.type = e[i].type };

		nl = strlen(e[i].name);
		vl = strlen(e[i].version);
		r.name_len = (uint16_t)nl;
		r.version_len = (uint16_t)vl;
		memcpy(p + off, &r, sizeof(r));
		memcpy(p + off + sizeof(r), e[i].name, nl);
		memcpy(p + off + sizeof(r) + nl, e[i].version, vl);
		off += sizeof(r) + nl + vl;
	}
	op->data = p;
	op->count = n;
	return 0;
}

int meta_batch_put_dir(struct meta_batch *b, uint32_t bucket_id, const char *dir,
		       const struct meta_dirent *entries, size_t n, int64_t listed_at)
{
	struct meta_op *op = batch_slot(b, OP_PUT_DIR);

	if (!op)
		return -ENOMEM;
	op->bucket_id = bucket_id;
	op->when = listed_at;
	op->str = strndup(dir, URL_KEY_MAX + 1);
	if (!op->str || dirents_encode(op, entries, n) < 0) {
		free(op->str);
		return -ENOMEM;
	}
	b->n++;
	return 0;
}

int meta_batch_del_dir(struct meta_batch *b, uint32_t bucket_id, const char *dir)
{
	struct meta_op *op = batch_slot(b, OP_DEL_DIR);

	if (!op)
		return -ENOMEM;
	op->bucket_id = bucket_id;
	op->str = strndup(dir, URL_KEY_MAX + 1);
	if (!op->str)
		return -ENOMEM;
	b->n++;
	return 0;
}

int meta_batch_counter_add(struct meta_batch *b, const char *name, uint64_t delta)
{
	struct meta_op *op = batch_slot(b, OP_COUNTER_ADD);

	if (!op)
		return -ENOMEM;
	op->delta = delta;
	op->str = strndup(name, META_COUNTER_NAME_MAX + 1);
	if (!op->str)
		return -ENOMEM;
	b->n++;
	return 0;
}

/* ---- applying a batch (inside meta_commit's write transaction) ---- */

static int lru_del(struct meta *m, MDB_txn *txn, int64_t when, uint64_t id)
{
	struct key k;
	MDB_val kv;
	int rc;

	key_lru(&k, when, id);
	kv = mval(k.b, k.len);
	rc = mdb_del(txn, m->lru, &kv, NULL);
	return rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

static int lru_put(struct meta *m, MDB_txn *txn, int64_t when, uint64_t id)
{
	struct key k;
	MDB_val kv, v = mval("", 0);

	key_lru(&k, when, id);
	kv = mval(k.b, k.len);
	return lmdb_errno(mdb_put(txn, m->lru, &kv, &v, 0));
}

/* Removes o's name index entry if it points at o. */
static int name_del(struct meta *m, MDB_txn *txn, const struct meta_object *o)
{
	struct key k;
	MDB_val kv, v;
	uint64_t id;
	int rc;

	key_name(&k, o->bucket_id, o->name, strlen(o->name), o->version, strlen(o->version));
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
	if (v.mv_size == 8) {
		memcpy(&id, v.mv_data, 8);
		if (id != o->id)
			return 0;
	}
	return lmdb_errno(mdb_del(txn, m->names, &kv, NULL));
}

static int name_put(struct meta *m, MDB_txn *txn, const struct meta_object *o, size_t nl, size_t vl)
{
	struct meta_object *other;
	struct key k;
	MDB_val kv, v;
	uint64_t id = 0;
	int rc;

	key_name(&k, o->bucket_id, o->name, nl, o->version, vl);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_errno(rc);
	if (rc == 0 && v.mv_size == 8)
		memcpy(&id, v.mv_data, 8);
	if (id != 0 && id != o->id) {
		other = malloc(sizeof(*other));
		if (!other)
			return -ENOMEM;
		rc = obj_load(m, txn, id, other);
		if (rc == 0 && !obj_same_version(o, other)) {
			log_error("meta: name digest collision between objects %" PRIu64
				  " and %" PRIu64,
				  o->id, id);
			rc = -EIO;
		} else if (rc == -ENOENT) {
			rc = 0; /* a stale entry */
		}
		/* rc == 0: the same version recorded again under a new id: repoint the index */
		free(other);
		if (rc)
			return rc;
	}
	v = mval(&o->id, sizeof(o->id));
	return lmdb_errno(mdb_put(txn, m->names, &kv, &v, 0));
}

static int apply_put_object(struct meta *m, MDB_txn *txn, const struct meta_object *o,
			    struct usage *u)
{
	struct meta_object *old;
	uint64_t was = 0, now = 0;
	size_t nl, vl;
	int rc;

	if (o->id == 0 || o->name[0] == 0)
		return -EINVAL;
	nl = strnlen(o->name, sizeof(o->name));
	if (nl == sizeof(o->name) || check_version(o->version, &vl))
		return -ENAMETOOLONG;
	old = malloc(sizeof(*old));
	if (!old)
		return -ENOMEM;
	rc = obj_load(m, txn, o->id, old);
	if (rc == 0) {
		if (old->size != o->size) {
			rc = blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, old->size, &was);
			if (!rc)
				rc = blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, o->size,
						 &now);
		}
		if (!rc)
			rc = lru_del(m, txn, old->last_access, o->id);
		if (!rc && !obj_same_version(old, o))
			rc = name_del(m, txn, old);
	} else if (rc == -ENOENT) {
		u->objects++;
		rc = blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, o->size, &now);
	}
	free(old);
	if (rc)
		return rc;
	u->bytes += now - was;
	rc = name_put(m, txn, o, nl, vl);
	if (!rc)
		rc = obj_store(m, txn, o, nl, vl);
	if (!rc)
		rc = lru_put(m, txn, o->last_access, o->id);
	return rc;
}

static int apply_del_object(struct meta *m, MDB_txn *txn, uint64_t id, struct usage *u)
{
	struct meta_object *old = malloc(sizeof(*old));
	uint64_t gone = 0;
	struct key k;
	MDB_val kv;
	int rc;

	if (!old)
		return -ENOMEM;
	rc = obj_load(m, txn, id, old);
	if (rc == -ENOENT) {
		/* No record: remove any stray blocks; they never counted. */
		rc = blocks_walk(m, txn, id, 0, UINT64_MAX, true, 0, &gone);
		goto out_free;
	}
	if (rc)
		goto out_free;
	rc = blocks_walk(m, txn, id, 0, UINT64_MAX, true, old->size, &gone);
	if (!rc)
		rc = lru_del(m, txn, old->last_access, id);
	if (!rc)
		rc = name_del(m, txn, old);
	if (rc)
		goto out_free;
	key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = lmdb_errno(mdb_del(txn, m->objects, &kv, NULL));
	if (rc)
		goto out_free;
	u->bytes -= gone;
	u->objects--;
out_free:
	free(old);
	return rc;
}

/* Object id's size, or -ENOENT. */
static int obj_size(struct meta *m, MDB_txn *txn, uint64_t id, uint64_t *size)
{
	struct rec_object r;
	struct key k;
	MDB_val kv, v;
	int rc;

	key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->objects, &kv, &v);
	if (rc)
		return lmdb_errno(rc);
	if (v.mv_size < sizeof(r))
		return corrupt("object", id, v.mv_size);
	memcpy(&r, v.mv_data, sizeof(r));
	if (v.mv_size != sizeof(r) + r.name_len + r.version_len)
		return corrupt("object", id, v.mv_size);
	*size = r.size;
	return 0;
}

static int apply_set_blocks(struct meta *m, MDB_txn *txn, const struct meta_op *op, struct usage *u)
{
	const uint32_t *crcs = op->data;
	uint64_t size;
	int err = obj_size(m, txn, op->id, &size);

	if (err == -ENOENT) {
		log_debug("meta: blocks of unknown object %" PRIu64 " ignored", op->id);
		return 0;
	}
	for (uint32_t i = 0; !err && i < op->n; i++) {
		uint32_t b = op->first + i, crc = crcs[i];
		struct key k;
		MDB_val kv, v;
		int rc;

		key_block(&k, op->id, b);
		kv = mval(k.b, k.len);
		v = mval(&crc, 4);
		rc = mdb_put(txn, m->blocks, &kv, &v, MDB_NOOVERWRITE);
		if (rc == 0) {
			u->bytes += block_bytes(b, size);
		} else if (rc == MDB_KEYEXIST) {
			/* v now shows the recorded crc; the block counted already */
			rc = 0;
			if (v.mv_size != 4 || memcmp(v.mv_data, &crc, 4) != 0) {
				v = mval(&crc, 4);
				rc = mdb_put(txn, m->blocks, &kv, &v, 0);
			}
		}
		err = lmdb_errno(rc);
	}
	return err;
}

static int apply_clear_blocks(struct meta *m, MDB_txn *txn, const struct meta_op *op,
			      struct usage *u)
{
	uint64_t size = 0, gone = 0;
	int rc = obj_size(m, txn, op->id, &size);

	if (rc && rc != -ENOENT)
		return rc;
	rc = blocks_walk(m, txn, op->id, op->first, (uint64_t)op->first + op->n, true, size, &gone);
	if (!rc)
		u->bytes -= gone;
	return rc;
}

static int apply_touch(struct meta *m, MDB_txn *txn, const struct meta_op *op)
{
	struct meta_object *o = malloc(sizeof(*o));
	int rc;

	if (!o)
		return -ENOMEM;
	rc = obj_load(m, txn, op->id, o);
	if (rc == -ENOENT)
		rc = 0; /* forgotten meanwhile */
	else if (rc == 0 && o->last_access != op->when) {
		rc = lru_del(m, txn, o->last_access, o->id);
		o->last_access = op->when;
		if (!rc)
			rc = obj_store(m, txn, o, strlen(o->name), strlen(o->version));
		if (!rc)
			rc = lru_put(m, txn, o->last_access, o->id);
	}
	free(o);
	return rc;
}

/* Deletes every key of the dirs database that starts with `prefix`. */
static int dir_del_prefix(struct meta *m, MDB_txn *txn, const struct key *prefix)
{
	MDB_cursor *cur;
	struct key seek = *prefix;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, m->dirs, &cur);

	if (rc)
		return lmdb_errno(rc);
	k = mval(seek.b, seek.len);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		if (k.mv_size < prefix->len || k.mv_size > META_KEY_MAX ||
		    memcmp(k.mv_data, prefix->b, prefix->len) != 0)
			break;
		memcpy(seek.b, k.mv_data, k.mv_size);
		seek.len = k.mv_size;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		k = mval(seek.b, seek.len); /* deleted: the next key is the first >= it */
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

static int apply_put_dir(struct meta *m, MDB_txn *txn, const struct meta_op *op, bool del_only)
{
	uint8_t sbuf[sizeof(struct rec_stamp) + URL_KEY_MAX];
	struct rec_stamp s = { .listed_at = op->when };
	const uint8_t *p = op->data;
	struct key prefix, k;
	MDB_val kv, v;
	size_t dl;
	int rc = check_dir(op->str, &dl);

	if (rc)
		return rc;
	key_dir(&prefix, op->bucket_id, op->str, dl);
	rc = dir_del_prefix(m, txn, &prefix);
	if (rc || del_only)
		return rc;
	s.dir_len = (uint32_t)dl;
	memcpy(sbuf, &s, sizeof(s));
	memcpy(sbuf + sizeof(s), op->str, dl);
	kv = mval(prefix.b, prefix.len);
	v = mval(sbuf, sizeof(s) + dl);
	rc = lmdb_errno(mdb_put(txn, m->dirs, &kv, &v, 0));
	for (size_t i = 0; !rc && i < op->count; i++) {
		struct rec_dirent r;
		size_t len;

		memcpy(&r, p, sizeof(r));
		len = sizeof(r) + r.name_len + r.version_len;
		k = prefix;
		key_part(&k, p + sizeof(r), r.name_len, META_KEY_MAX, false);
		kv = mval(k.b, k.len);
		v = mval(p, len);
		rc = lmdb_errno(mdb_put(txn, m->dirs, &kv, &v, 0));
		p += len;
	}
	return rc;
}

static int apply_counter_add(struct meta *m, MDB_txn *txn, const struct meta_op *op)
{
	size_t n = strlen(op->str);
	uint64_t value = 0;
	MDB_val kv = mval(op->str, n), v;
	int rc;

	if (n == 0)
		return -EINVAL;
	if (n > META_COUNTER_NAME_MAX)
		return -ENAMETOOLONG;
	rc = mdb_get(txn, m->counters, &kv, &v);
	if (rc == 0) {
		if (v.mv_size != 8)
			return corrupt("counter", 0, v.mv_size);
		memcpy(&value, v.mv_data, 8);
	} else if (rc != MDB_NOTFOUND) {
		return lmdb_errno(rc);
	}
	value += op->delta;
	v = mval(&value, sizeof(value));
	return lmdb_errno(mdb_put(txn, m->counters, &kv, &v, 0));
}

static int apply_op(struct meta *m, MDB_txn *txn, const struct meta_op *op, struct usage *u)
{
	switch (op->kind) {
	case OP_PUT_OBJECT:
		return apply_put_object(m, txn, op->data, u);
	case OP_DEL_OBJECT:
		return apply_del_object(m, txn, op->id, u);
	case OP_SET_BLOCKS:
		return apply_set_blocks(m, txn, op, u);
	case OP_CLEAR_BLOCKS:
		return apply_clear_blocks(m, txn, op, u);
	case OP_TOUCH:
		return apply_touch(m, txn, op);
	case OP_PUT_DIR:
		return apply_put_dir(m, txn, op, false);
	case OP_DEL_DIR:
		return apply_put_dir(m, txn, op, true);
	case OP_COUNTER_ADD:
		return apply_counter_add(m, txn, op);
	}
	return -EINVAL;
}

static void commit_failed(const struct meta *m, size_t at, size_t n, int rc)
{
	if (rc == -ENOSPC)
		log_error("meta: the metadata map (%zu bytes) is full", m->map_size);
	else if (at < n)
		log_error("meta: commit failed at change %zu of %zu: %s", at + 1, n, strerror(-rc));
	else
		log_error("meta: commit failed: %s", strerror(-rc));
}

int meta_commit(struct meta *m, struct meta_batch *b)
{
	struct usage u;
	uint64_t hw;
	MDB_txn *txn;
	size_t i;
	int rc = 0;

	if (m->readonly)
		return -EROFS;
	for (i = 0; i < b->n; i++) {
		if (b->ops[i].err) {
			log_error("meta: commit refused: change %zu of the batch is invalid: %s",
				  i + 1, strerror(-b->ops[i].err));
			return b->ops[i].err;
		}
	}
	pthread_mutex_lock(&m->write_lock);
	hw = atomic_load(&m->next_id);
	if (b->n == 0 && hw == m->next_id_persisted)
		goto out_unlock;
	u.bytes = atomic_load(&m->bytes_present);
	u.objects = atomic_load(&m->nobjects);
	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc) {
		rc = lmdb_fail("begin write transaction", rc);
		goto out_unlock;
	}
	for (i = 0; i < b->n && !rc; i++)
		rc = apply_op(m, txn, &b->ops[i], &u);
	if (rc) {
		i--; /* the change that failed */
	} else {
		if (hw != m->next_id_persisted)
			rc = info_put(m, txn, "next_object_id", hw);
		if (!rc && u.bytes != atomic_load(&m->bytes_present))
			rc = info_put(m, txn, "bytes_present", u.bytes);
		if (!rc && u.objects != atomic_load(&m->nobjects))
			rc = info_put(m, txn, "objects", u.objects);
	}
	if (rc) {
		commit_failed(m, i, b->n, rc);
		goto out_abort_txn;
	}
	rc = lmdb_errno(mdb_txn_commit(txn)); /* frees txn either way */
	if (rc) {
		commit_failed(m, b->n, b->n, rc);
		goto out_unlock;
	}
	m->next_id_persisted = hw;
	atomic_store(&m->bytes_present, u.bytes);
	atomic_store(&m->nobjects, u.objects);
	goto out_unlock;
out_abort_txn:
	mdb_txn_abort(txn);
out_unlock:
	pthread_mutex_unlock(&m->write_lock);
	return rc;
}

/* ---- directories and counters ---- */

int meta_dir_listed_at(struct meta *m, uint32_t bucket_id, const char *dir, int64_t *when)
{
	struct key prefix;
	MDB_txn *txn;
	size_t dl;
	int rc = check_dir(dir, &dl);

	if (rc)
		return rc;
	key_dir(&prefix, bucket_id, dir, dl);
	rc = rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = stamp_read(m, txn, &prefix, dir, dl, when);
	rd_end(m, txn);
	return rc;
}

int meta_dir_lookup(struct meta *m, uint32_t bucket_id, const char *dir, const char *name,
		    struct meta_dirent *out)
{
	struct key k;
	MDB_txn *txn;
	MDB_val kv, v;
	size_t dl, nl;
	int rc = check_dir(dir, &dl);

	if (!rc)
		rc = check_child(name, URL_KEY_MAX + 1, &nl);
	if (rc)
		return rc;
	key_dir(&k, bucket_id, dir, dl);
	rc = rd_begin(m, &txn);
	if (rc)
		return rc;
	if (key_dir_hashed(&k)) {
		rc = stamp_read(m, txn, &k, dir, dl, NULL);
		if (rc)
			goto out_end_txn;
	}
	key_part(&k, name, nl, META_KEY_MAX, false);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->dirs, &kv, &v);
	if (rc) {
		rc = lmdb_fail("read dirent", rc);
		goto out_end_txn;
	}
	rc = dirent_decode(&v, out);
	if (!rc && strcmp(out->name, name) != 0)
		rc = -ENOENT; /* a digest collision */
out_end_txn:
	rd_end(m, txn);
	return rc;
}

int meta_dir_scan(struct meta *m, uint32_t bucket_id, const char *dir, uint64_t skip,
		  int (*fn)(void *ctx, const struct meta_dirent *d), void *ctx)
{
	struct meta_dirent *d;
	struct key prefix;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t dl;
	int rc, err = check_dir(dir, &dl);

	if (err)
		return err;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	key_dir(&prefix, bucket_id, dir, dl);
	err = rd_begin(m, &txn);
	if (err)
		goto out_free;
	err = stamp_read(m, txn, &prefix, dir, dl, NULL);
	if (err)
		goto out_end_txn;
	rc = mdb_cursor_open(txn, m->dirs, &cur);
	if (rc) {
		err = lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	k = mval(prefix.b, prefix.len);
	/* The first key is the stamp itself (the bare prefix); the children follow it. */
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= prefix.len || memcmp(k.mv_data, prefix.b, prefix.len) != 0)
			break;
		if (skip > 0) {
			skip--;
			continue;
		}
		err = dirent_decode(&v, d);
		if (!err)
			err = fn(ctx, d);
		if (err)
			break;
	}
	if (err == 1)
		err = 0; /* fn stopped early */
	else if (!err && rc && rc != MDB_NOTFOUND)
		err = lmdb_fail("scan directory", rc);
	mdb_cursor_close(cur);
out_end_txn:
	rd_end(m, txn);
out_free:
	free(d);
	return err;
}

uint64_t meta_counter_get(struct meta *m, const char *name)
{
	size_t n = strnlen(name, META_COUNTER_NAME_MAX + 1);
	MDB_val kv = mval(name, n), v;
	uint64_t value = 0;
	MDB_txn *txn;

	if (n == 0 || n > META_COUNTER_NAME_MAX || rd_begin(m, &txn))
		return 0;
	if (mdb_get(txn, m->counters, &kv, &v) == 0 && v.mv_size == 8)
		memcpy(&value, v.mv_data, 8);
	rd_end(m, txn);
	return value;
}
