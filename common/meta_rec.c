/* meta_rec: keys, validation, records and read transactions of the LMDB metadata
 * (layout in meta_int.h). */
#include "common/meta_int.h"

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

int mi_lmdb_errno(int rc)
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
int mi_lmdb_fail(const char *what, int rc)
{
	if (rc != MDB_NOTFOUND)
		log_error("meta: %s: %s", what, mdb_strerror(rc));
	return mi_lmdb_errno(rc);
}

int mi_corrupt(const char *what, uint64_t id, size_t size)
{
	log_error("meta: corrupt %s record %" PRIu64 " (%zu bytes)", what, id, size);
	return -EIO;
}

/* ---- keys ---- */

void mi_key_id(struct key *k, uint64_t id)
{
	be64_put(k->b, id);
	k->len = 8;
}

void mi_key_block(struct key *k, uint64_t id, uint32_t block)
{
	be64_put(k->b, id);
	be32_put(k->b + 8, block);
	k->len = 12;
}

void mi_key_lru(struct key *k, int64_t last_access, uint64_t id)
{
	be64_put(k->b, (uint64_t)last_access ^ (UINT64_C(1) << 63));
	be64_put(k->b + 8, id);
	k->len = 16;
}

/* Appends `tag` and s, or 'H' and its digest when the key would pass META_KEY_MAX (or `lit_max`).
 */
void mi_key_part(struct key *k, const void *s, size_t n, size_t lit_max, bool nul)
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

void mi_key_name(struct key *k, uint32_t bucket, const char *name, size_t nl, const char *ver,
		 size_t vl)
{
	uint8_t tmp[URL_KEY_MAX + 1 + PROTO_VERSION_MAX];

	memcpy(tmp, name, nl);
	tmp[nl] = 0;
	memcpy(tmp + nl + 1, ver, vl);
	be32_put(k->b, bucket);
	k->len = 4;
	mi_key_part(k, tmp, nl + 1 + vl, META_KEY_MAX, false);
}

void mi_key_bucket(struct key *k, const char *s, size_t n)
{
	k->len = 0;
	mi_key_part(k, s, n, META_KEY_MAX, false);
}

/* The prefix P shared by a directory's stamp and children keys. */
void mi_key_dir(struct key *k, uint32_t bucket, const char *dir, size_t dl)
{
	be32_put(k->b, bucket);
	k->len = 4;
	mi_key_part(k, dir, dl, META_DIR_LIT_MAX, true);
}

bool mi_key_dir_hashed(const struct key *k)
{
	return k->b[4] == TAG_HASH;
}

/* ---- validation ---- */

int mi_check_dir(const char *dir, size_t *dl)
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
int mi_check_child(const char *name, size_t cap, size_t *nl)
{
	size_t n = strnlen(name, cap < URL_KEY_MAX + 1 ? cap : URL_KEY_MAX + 1);

	if (n == 0 || memchr(name, '/', n))
		return -EINVAL;
	if (n > URL_KEY_MAX || n == cap)
		return -ENAMETOOLONG;
	*nl = n;
	return 0;
}

int mi_check_version(const char *v, size_t *vl)
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

int mi_obj_decode(const MDB_val *v, uint64_t id, struct meta_object *o)
{
	const uint8_t *p = v->mv_data;
	struct rec_object r;

	if (v->mv_size < sizeof(r))
		return mi_corrupt("object", id, v->mv_size);
	memcpy(&r, p, sizeof(r));
	if (r.name_len == 0 || r.name_len > URL_KEY_MAX || r.version_len >= PROTO_VERSION_MAX ||
	    v->mv_size != sizeof(r) + r.name_len + r.version_len ||
	    memchr(p + sizeof(r), 0, (size_t)r.name_len + r.version_len))
		return mi_corrupt("object", id, v->mv_size);
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

int mi_dirent_decode(const MDB_val *v, struct meta_dirent *d)
{
	const uint8_t *p = v->mv_data;
	struct rec_dirent r;

	if (v->mv_size < sizeof(r))
		return mi_corrupt("dirent", 0, v->mv_size);
	memcpy(&r, p, sizeof(r));
	if (r.name_len == 0 || r.name_len > URL_KEY_MAX || r.version_len >= PROTO_VERSION_MAX ||
	    (r.type != PROTO_FT_FILE && r.type != PROTO_FT_DIR) ||
	    v->mv_size != sizeof(r) + r.name_len + r.version_len ||
	    memchr(p + sizeof(r), 0, (size_t)r.name_len + r.version_len))
		return mi_corrupt("dirent", 0, v->mv_size);
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
int mi_stamp_read(struct meta *m, MDB_txn *txn, const struct key *prefix, const char *dir,
		  size_t dl, int64_t *when)
{
	MDB_val k = mval(prefix->b, prefix->len), v;
	struct rec_stamp s;
	int rc = mdb_get(txn, m->dirs, &k, &v);

	if (rc)
		return mi_lmdb_fail("read directory stamp", rc);
	if (v.mv_size < sizeof(s))
		return mi_corrupt("directory stamp", 0, v.mv_size);
	memcpy(&s, v.mv_data, sizeof(s));
	if (s.dir_len > URL_KEY_MAX || v.mv_size != sizeof(s) + s.dir_len)
		return mi_corrupt("directory stamp", 0, v.mv_size);
	if (s.dir_len != dl || memcmp((const uint8_t *)v.mv_data + sizeof(s), dir, dl) != 0)
		return -ENOENT; /* another directory with the same digest */
	if (when)
		*when = s.listed_at;
	return 0;
}

int mi_obj_load(struct meta *m, MDB_txn *txn, uint64_t id, struct meta_object *o)
{
	struct key k;
	MDB_val kv, v;
	int rc;

	mi_key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->objects, &kv, &v);
	if (rc)
		return mi_lmdb_fail("read object", rc);
	return mi_obj_decode(&v, id, o);
}

int mi_obj_store(struct meta *m, MDB_txn *txn, const struct meta_object *o, size_t nl, size_t vl)
{
	uint8_t buf[sizeof(struct rec_object) + URL_KEY_MAX + PROTO_VERSION_MAX];
	struct key k;
	MDB_val kv, v;

	mi_key_id(&k, o->id);
	kv = mval(k.b, k.len);
	v = mval(buf, obj_encode(o, nl, vl, buf));
	return mi_lmdb_errno(mdb_put(txn, m->objects, &kv, &v, 0));
}

bool mi_obj_same_version(const struct meta_object *a, const struct meta_object *b)
{
	return a->bucket_id == b->bucket_id && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->version, b->version) == 0;
}

int mi_info_get(struct meta *m, MDB_txn *txn, const char *name, uint64_t *out)
{
	MDB_val k = mval(name, strlen(name)), v;
	int rc = mdb_get(txn, m->info, &k, &v);

	if (rc)
		return mi_lmdb_fail("read info", rc);
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

int mi_info_put(struct meta *m, MDB_txn *txn, const char *name, uint64_t value)
{
	MDB_val k = mval(name, strlen(name)), v = mval(&value, sizeof(value));

	return mi_lmdb_errno(mdb_put(txn, m->info, &k, &v, 0));
}

/* ---- read transactions ---- */

int mi_rd_begin(struct meta *m, MDB_txn **txn)
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
		return mi_lmdb_fail("begin read transaction", rc);
	return 0;
}

void mi_rd_end(struct meta *m, MDB_txn *txn)
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
