/* meta: the daemon's LMDB metadata: open, close, and reads (layout in meta_int.h; writes in
 * meta_write.c). */
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
		return mi_lmdb_fail("begin write transaction", rc);
	rc = mdb_dbi_open(txn, "info", MDB_CREATE, &m->info);
	if (rc) {
		rc = mi_lmdb_fail("open info", rc);
		goto out_abort_txn;
	}
	rc = mi_info_get(m, txn, "schema_version", &schema);
	if (rc == -ENOENT) {
		rc = mi_lmdb_errno(mdb_stat(txn, m->info, &st));
		if (!rc && st.ms_entries != 0) {
			log_error("meta: %s holds metadata without a schema version", dir);
			rc = -EPROTONOSUPPORT;
		}
		if (!rc)
			rc = mi_info_put(m, txn, "schema_version", META_SCHEMA_VERSION);
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
			rc = mi_lmdb_fail("open database", rc);
			goto out_abort_txn;
		}
	}
	if ((rc = mi_info_get(m, txn, "epoch", &epoch)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = mi_info_get(m, txn, "next_object_id", &next)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = mi_info_get(m, txn, "bytes_present", &bytes)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = mi_info_get(m, txn, "objects", &objs)) == -ENOENT)
		rc = 0;
	if (rc)
		goto out_abort_txn;
	m->epoch = (uint32_t)(epoch + 1) ? (uint32_t)(epoch + 1) : 1;
	rc = mi_info_put(m, txn, "epoch", m->epoch);
	if (rc)
		goto out_abort_txn;

	/* Never hand out an id that is present, even if a commit of the high-water mark was lost.
	 */
	rc = mdb_cursor_open(txn, m->objects, &cur);
	if (rc) {
		rc = mi_lmdb_fail("open cursor", rc);
		goto out_abort_txn;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8 && be64_get(k.mv_data) >= next)
		next = be64_get(k.mv_data) + 1;
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND) {
		rc = mi_lmdb_fail("read last object", rc);
		goto out_abort_txn;
	}
	if (next == 0)
		next = 1;
	rc = mi_lmdb_errno(mdb_stat(txn, m->objects, &st));
	if (rc)
		goto out_abort_txn;
	if (st.ms_entries != objs) {
		log_warn("meta: object count was %" PRIu64 ", found %zu", objs, st.ms_entries);
		objs = st.ms_entries;
	}
	rc = mi_lmdb_errno(mdb_txn_commit(txn));
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
		return mi_lmdb_fail("begin read transaction", rc);
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		rc = mdb_dbi_open(txn, names[i], 0, dbis[i]);
		if (rc) {
			log_error("meta: %s holds no hoardfs metadata (%s)", dir, mdb_strerror(rc));
			rc = rc == MDB_NOTFOUND ? -ENOENT : mi_lmdb_errno(rc);
			goto out_abort_txn;
		}
	}
	rc = mi_info_get(m, txn, "schema_version", &schema);
	if (!rc && schema != META_SCHEMA_VERSION) {
		log_error("meta: %s holds metadata schema version %" PRIu64
			  "; this hoardfs understands version %u only",
			  dir, schema, META_SCHEMA_VERSION);
		rc = -EPROTONOSUPPORT;
	}
	if (!rc && (rc = mi_info_get(m, txn, "epoch", &epoch)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = mi_info_get(m, txn, "bytes_present", &bytes)) == -ENOENT)
		rc = 0;
	if (!rc && (rc = mi_info_get(m, txn, "objects", &objs)) == -ENOENT)
		rc = 0;
	if (rc)
		goto out_abort_txn;
	m->epoch = (uint32_t)epoch;
	atomic_store(&m->bytes_present, bytes);
	atomic_store(&m->nobjects, objs);
	/* Committing (not aborting) keeps the database handles opened in this transaction. */
	return mi_lmdb_errno(mdb_txn_commit(txn));
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
		rc = mi_lmdb_fail("create environment", rc);
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
		rc = mi_lmdb_errno(rc);
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
		rc = mi_lmdb_fail("create environment", rc);
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
		rc = mi_lmdb_errno(rc);
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
		return mi_lmdb_fail("read bucket", rc);
	if (v.mv_size < 4 || v.mv_size - 4 > META_BUCKET_KEY_MAX)
		return mi_corrupt("bucket", 0, v.mv_size);
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
		rc = mi_lmdb_fail("begin write transaction", rc);
		goto out_unlock;
	}
	rc = bucket_find(m, txn, k, s, n, id);
	if (rc != -ENOENT)
		goto out_abort_txn; /* created meanwhile (0), or an error */
	if ((rc = mi_info_get(m, txn, "next_bucket_id", &next)) == -ENOENT)
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
	rc = mi_lmdb_errno(mdb_put(txn, m->buckets, &kv, &v, 0));
	if (rc)
		goto out_abort_txn;
	be32_put(idk, *id);
	kv = mval(idk, 4);
	v = mval(s, n);
	rc = mi_lmdb_errno(mdb_put(txn, m->bucket_ids, &kv, &v, 0));
	if (!rc)
		rc = mi_info_put(m, txn, "next_bucket_id", next + 1);
	if (rc)
		goto out_abort_txn;
	rc = mi_lmdb_errno(mdb_txn_commit(txn));
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
	mi_key_bucket(&k, key, n);
	rc = mi_rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = bucket_find(m, txn, &k, key, n, id);
	mi_rd_end(m, txn);
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
	rc = mi_rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = mdb_get(txn, m->bucket_ids, &kv, &v);
	if (rc) {
		rc = mi_lmdb_fail("read bucket key", rc);
	} else if (v.mv_size == 0 || v.mv_size > META_BUCKET_KEY_MAX ||
		   memchr(v.mv_data, 0, v.mv_size)) {
		rc = mi_corrupt("bucket key", id, v.mv_size);
	} else if (v.mv_size >= outsz) {
		rc = -ENAMETOOLONG;
	} else {
		memcpy(out, v.mv_data, v.mv_size);
		out[v.mv_size] = 0;
	}
	mi_rd_end(m, txn);
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
	rc = mi_check_version(version, &vl);
	if (rc)
		return rc;
	mi_key_name(&k, bucket_id, name, nl, version, vl);
	kv = mval(k.b, k.len);
	rc = mi_rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc) {
		rc = mi_lmdb_fail("read name index", rc);
		goto out_end_txn;
	}
	if (v.mv_size != 8) {
		rc = mi_corrupt("name index", 0, v.mv_size);
		goto out_end_txn;
	}
	memcpy(&id, v.mv_data, 8);
	rc = mi_obj_load(m, txn, id, out);
	if (rc == 0 && (out->bucket_id != bucket_id || strcmp(out->name, name) != 0 ||
			strcmp(out->version, version) != 0))
		rc = -ENOENT; /* a digest collision or a stale entry: not this version */
out_end_txn:
	mi_rd_end(m, txn);
	return rc;
}

int meta_object_get(struct meta *m, uint64_t id, struct meta_object *out)
{
	MDB_txn *txn;
	int rc = mi_rd_begin(m, &txn);

	if (rc)
		return rc;
	rc = mi_obj_load(m, txn, id, out);
	mi_rd_end(m, txn);
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
	err = mi_rd_begin(m, &txn);
	if (err)
		goto out_free;
	rc = mdb_cursor_open(txn, m->objects, &cur);
	if (rc) {
		err = mi_lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			err = mi_corrupt("object key", 0, k.mv_size);
		else
			err = mi_obj_decode(&v, be64_get(k.mv_data), o);
		if (!err)
			err = fn(ctx, o);
		if (err)
			break;
	}
	if (!err && rc && rc != MDB_NOTFOUND)
		err = mi_lmdb_fail("scan objects", rc);
	mdb_cursor_close(cur);
out_end_txn:
	mi_rd_end(m, txn);
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
	err = mi_rd_begin(m, &txn);
	if (err)
		goto out_free;
	rc = mdb_cursor_open(txn, m->lru, &cur);
	if (rc) {
		err = mi_lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t id, when;

		if (k.mv_size != 16) {
			err = mi_corrupt("eviction key", 0, k.mv_size);
			break;
		}
		when = be64_get(k.mv_data) ^ (UINT64_C(1) << 63);
		id = be64_get((const uint8_t *)k.mv_data + 8);
		err = mi_obj_load(m, txn, id, o);
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
		err = mi_lmdb_fail("scan eviction order", rc);
	mdb_cursor_close(cur);
out_end_txn:
	mi_rd_end(m, txn);
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

	err = mi_rd_begin(m, &txn);
	if (err)
		return err;
	rc = mdb_cursor_open(txn, m->blocks, &cur);
	if (rc) {
		err = mi_lmdb_fail("open cursor", rc);
		goto out_end_txn;
	}
	mi_key_block(&kb, id, 0);
	k = mval(kb.b, kb.len);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t b;

		if (k.mv_size != 12 || v.mv_size != 4) {
			err = mi_corrupt("block", id, v.mv_size);
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
		err = mi_lmdb_fail("load blocks", rc);
	mdb_cursor_close(cur);
	if (!err && present_out)
		*present_out = present;
out_end_txn:
	mi_rd_end(m, txn);
	return err;
}

/* ---- directories and counters ---- */

int meta_dir_listed_at(struct meta *m, uint32_t bucket_id, const char *dir, int64_t *when)
{
	struct key prefix;
	MDB_txn *txn;
	size_t dl;
	int rc = mi_check_dir(dir, &dl);

	if (rc)
		return rc;
	mi_key_dir(&prefix, bucket_id, dir, dl);
	rc = mi_rd_begin(m, &txn);
	if (rc)
		return rc;
	rc = mi_stamp_read(m, txn, &prefix, dir, dl, when);
	mi_rd_end(m, txn);
	return rc;
}

int meta_dir_lookup(struct meta *m, uint32_t bucket_id, const char *dir, const char *name,
		    struct meta_dirent *out)
{
	struct key k;
	MDB_txn *txn;
	MDB_val kv, v;
	size_t dl, nl;
	int rc = mi_check_dir(dir, &dl);

	if (!rc)
		rc = mi_check_child(name, URL_KEY_MAX + 1, &nl);
	if (rc)
		return rc;
	mi_key_dir(&k, bucket_id, dir, dl);
	rc = mi_rd_begin(m, &txn);
	if (rc)
		return rc;
	if (mi_key_dir_hashed(&k)) {
		rc = mi_stamp_read(m, txn, &k, dir, dl, NULL);
		if (rc)
			goto out_end_txn;
	}
	mi_key_part(&k, name, nl, META_KEY_MAX, false);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->dirs, &kv, &v);
	if (rc) {
		rc = mi_lmdb_fail("read dirent", rc);
		goto out_end_txn;
	}
	rc = mi_dirent_decode(&v, out);
	if (!rc && strcmp(out->name, name) != 0)
		rc = -ENOENT; /* a digest collision */
out_end_txn:
	mi_rd_end(m, txn);
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
	int rc, err = mi_check_dir(dir, &dl);

	if (err)
		return err;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	mi_key_dir(&prefix, bucket_id, dir, dl);
	err = mi_rd_begin(m, &txn);
	if (err)
		goto out_free;
	err = mi_stamp_read(m, txn, &prefix, dir, dl, NULL);
	if (err)
		goto out_end_txn;
	rc = mdb_cursor_open(txn, m->dirs, &cur);
	if (rc) {
		err = mi_lmdb_fail("open cursor", rc);
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
		err = mi_dirent_decode(&v, d);
		if (!err)
			err = fn(ctx, d);
		if (err)
			break;
	}
	if (err == 1)
		err = 0; /* fn stopped early */
	else if (!err && rc && rc != MDB_NOTFOUND)
		err = mi_lmdb_fail("scan directory", rc);
	mdb_cursor_close(cur);
out_end_txn:
	mi_rd_end(m, txn);
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

	if (n == 0 || n > META_COUNTER_NAME_MAX || mi_rd_begin(m, &txn))
		return 0;
	if (mdb_get(txn, m->counters, &kv, &v) == 0 && v.mv_size == 8)
		memcpy(&value, v.mv_data, 8);
	mi_rd_end(m, txn);
	return value;
}
