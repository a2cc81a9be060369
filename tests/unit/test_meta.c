/* Unit tests for common/meta: schema round trips, the name index, batch atomicity, persistence,
 * the schema check, eviction order, usage sums and directory scans, on temporary LMDB
 * environments under /tmp. Some tests edit the environment with raw LMDB to play a corrupt or
 * foreign file; they follow the layout documented at the top of common/meta.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/meta.h"

#define MAP_BIG (64u << 20)
#define BS	PROTO_BLOCK_SIZE

struct fx {
	char dir[64];
	struct meta *m;
};

/* ---- helpers ---- */

static void tmpdir_make(char *dir, size_t n)
{
	snprintf(dir, n, "/tmp/hoardfs-meta-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tmpdir_make(f->dir, sizeof(f->dir));
	assert_int_equal(meta_open(f->dir, MAP_BIG, &f->m), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	meta_close(f->m);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void fx_reopen(struct fx *f)
{
	meta_close(f->m);
	f->m = NULL;
	assert_int_equal(meta_open(f->dir, MAP_BIG, &f->m), 0);
}

static void fill(char *s, size_t n, char base)
{
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(base + (char)(i % 26));
	s[n] = 0;
}

static void obj_init(struct meta_object *o, uint64_t id, uint32_t bucket, const char *name,
		     const char *version, uint64_t size, int64_t last_access)
{
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->bucket_id = bucket;
	o->size = size;
	o->last_access = last_access;
	snprintf(o->name, sizeof(o->name), "%s", name);
	snprintf(o->version, sizeof(o->version), "%s", version);
}

/* Commits a batch holding one object. */
static void put_obj(struct meta *m, const struct meta_object *o)
{
	struct meta_batch *b;

	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_object(b, o), 0);
	assert_int_equal(meta_commit(m, b), 0);
	meta_batch_free(b);
}

static void put_simple(struct meta *m, uint64_t id, uint64_t size, int64_t last_access)
{
	struct meta_object o;
	char name[32];

	snprintf(name, sizeof(name), "obj-%" PRIu64, id);
	obj_init(&o, id, 1, name, "v1", size, last_access);
	put_obj(m, &o);
}

static int commit1(struct meta *m, int kind, uint64_t id, uint32_t first, uint32_t n)
{
	uint32_t crcs[64];
	struct meta_batch *b;
	int rc;

	for (uint32_t i = 0; i < n && i < 64; i++)
		crcs[i] = (uint32_t)(id * 1000 + first + i);
	assert_int_equal(meta_batch_new(&b), 0);
	if (kind == 's')
		assert_int_equal(meta_batch_set_blocks(b, id, first, n, crcs), 0);
	else if (kind == 'c')
		assert_int_equal(meta_batch_clear_blocks(b, id, first, n), 0);
	else if (kind == 'd')
		assert_int_equal(meta_batch_del_object(b, id), 0);
	else if (kind == 't')
		assert_int_equal(meta_batch_touch(b, id, (int64_t)first), 0);
	rc = meta_commit(m, b);
	meta_batch_free(b);
	return rc;
}

static uint64_t usage_bytes(struct meta *m)
{
	uint64_t bytes, objects;

	meta_usage(m, &bytes, &objects);
	return bytes;
}

static uint64_t usage_objects(struct meta *m)
{
	uint64_t bytes, objects;

	meta_usage(m, &bytes, &objects);
	return objects;
}

/* Raw LMDB access to play foreign or corrupt files. */
static void raw_put(const char *dir, const char *db, const void *k, size_t kn, const void *v,
		    size_t vn)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { kn, (void *)k }, val = { vn, (void *)v };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, MAP_BIG), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* 0 and the value's size in *vn, or an MDB error. */
static int raw_get(const char *dir, const char *db, const void *k, size_t kn, void *v, size_t *vn)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { kn, (void *)k }, val;
	int rc;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	rc = mdb_dbi_open(txn, db, 0, &dbi);
	if (!rc)
		rc = mdb_get(txn, dbi, &key, &val);
	if (!rc) {
		*vn = val.mv_size;
		memcpy(v, val.mv_data, val.mv_size < *vn ? val.mv_size : *vn);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- open, epoch, schema ---- */

static void test_open_epoch(void **state)
{
	char dir[64];
	struct meta *m;
	uint64_t bytes = 1, objects = 1;

	tmpdir_make(dir, sizeof(dir));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), 0);
	assert_int_equal(meta_epoch(m), 1);
	meta_usage(m, &bytes, &objects);
	assert_int_equal(bytes, 0);
	assert_int_equal(objects, 0);
	meta_close(m);
	for (uint32_t e = 2; e <= 4; e++) {
		assert_int_equal(meta_open(dir, MAP_BIG, &m), 0);
		assert_int_equal(meta_epoch(m), e);
		meta_close(m);
	}
	meta_close(NULL);
	assert_int_equal(meta_open(dir, 0, &m), -EINVAL);
	assert_null(m);
	tmpdir_remove(dir);
}

static void test_open_twice_refused(void **state)
{
	struct fx *f = *state;
	struct meta *m2 = (struct meta *)1;

	/* A second handle on the same environment would break LMDB's locks: refused. */
	assert_int_equal(meta_open(f->dir, MAP_BIG, &m2), -EAGAIN);
	assert_null(m2);
	fx_reopen(f); /* the first handle still works and releases its lock on close */
}

static void test_schema_refused(void **state)
{
	char dir[64], buf[16];
	uint64_t v2 = 2, v1 = 1, got = 0;
	size_t n = sizeof(buf);
	struct meta *m;

	/* A foreign version written by raw LMDB into a fresh environment. */
	tmpdir_make(dir, sizeof(dir));
	raw_put(dir, "info", "schema_version", 14, &v2, sizeof(v2));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), -EPROTONOSUPPORT);
	assert_null(m);
	/* Refused without touching it: no epoch was recorded. */
	assert_int_equal(raw_get(dir, "info", "epoch", 5, buf, &n), MDB_NOTFOUND);
	/* Our own version written the same way is accepted. */
	raw_put(dir, "info", "schema_version", 14, &v1, sizeof(v1));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), 0);
	meta_close(m);
	tmpdir_remove(dir);

	/* An environment made by meta, later upgraded by a "newer hoardfs". */
	tmpdir_make(dir, sizeof(dir));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), 0);
	meta_close(m);
	n = sizeof(buf);
	assert_int_equal(raw_get(dir, "info", "schema_version", 14, &got, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(got, META_SCHEMA_VERSION);
	v2 = 99;
	raw_put(dir, "info", "schema_version", 14, &v2, sizeof(v2));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), -EPROTONOSUPPORT);
	/* Metadata without any version is refused too. */
	tmpdir_remove(dir);
	tmpdir_make(dir, sizeof(dir));
	raw_put(dir, "info", "epoch", 5, &v1, sizeof(v1));
	assert_int_equal(meta_open(dir, MAP_BIG, &m), -EPROTONOSUPPORT);
	tmpdir_remove(dir);
}

/* ---- buckets ---- */

static void test_buckets(void **state)
{
	struct fx *f = *state;
	const char *shortkey = "gs|https://storage.googleapis.com|models";
	char longkey[META_BUCKET_KEY_MAX + 2], longkey2[META_BUCKET_KEY_MAX + 1];
	char out[META_BUCKET_KEY_MAX + 1];
	uint32_t id1, id2, id3, id, id4;

	fill(longkey, META_BUCKET_KEY_MAX, 'a');
	memcpy(longkey, "s3|", 3);
	memcpy(longkey2, longkey, sizeof(longkey2));
	longkey2[META_BUCKET_KEY_MAX - 1] = '#'; /* differs in the last byte only */

	assert_int_equal(meta_bucket_id(f->m, shortkey, false, &id), -ENOENT);
	assert_int_equal(meta_bucket_id(f->m, shortkey, true, &id1), 0);
	assert_true(id1 >= 1);
	assert_int_equal(meta_bucket_id(f->m, shortkey, true, &id), 0);
	assert_int_equal(id, id1);
	assert_int_equal(meta_bucket_id(f->m, shortkey, false, &id), 0);
	assert_int_equal(id, id1);
	assert_int_equal(meta_bucket_id(f->m, longkey, false, &id), -ENOENT);
	assert_int_equal(meta_bucket_id(f->m, longkey, true, &id2), 0);
	assert_int_equal(meta_bucket_id(f->m, longkey2, true, &id3), 0);
	assert_true(id2 != id1 && id3 != id2 && id3 != id1);
	assert_int_equal(meta_bucket_id(f->m, longkey, false, &id), 0);
	assert_int_equal(id, id2);

	assert_int_equal(meta_bucket_key(f->m, id1, out, sizeof(out)), 0);
	assert_string_equal(out, shortkey);
	assert_int_equal(meta_bucket_key(f->m, id2, out, sizeof(out)), 0);
	assert_string_equal(out, longkey);
	assert_int_equal(meta_bucket_key(f->m, id3, out, sizeof(out)), 0);
	assert_string_equal(out, longkey2);
	assert_int_equal(meta_bucket_key(f->m, 4242, out, sizeof(out)), -ENOENT);
	assert_int_equal(meta_bucket_key(f->m, id1, out, 8), -ENAMETOOLONG);

	longkey[META_BUCKET_KEY_MAX] = 'x';
	longkey[META_BUCKET_KEY_MAX + 1] = 0;
	assert_int_equal(meta_bucket_id(f->m, longkey, true, &id), -ENAMETOOLONG);
	assert_int_equal(meta_bucket_id(f->m, "", true, &id), -EINVAL);

	fx_reopen(f);
	assert_int_equal(meta_bucket_id(f->m, shortkey, false, &id), 0);
	assert_int_equal(id, id1);
	assert_int_equal(meta_bucket_id(f->m, longkey2, false, &id), 0);
	assert_int_equal(id, id3);
	assert_int_equal(meta_bucket_id(f->m, "s3|http://127.0.0.1:9000|b", true, &id4), 0);
	assert_true(id4 > id3 && id4 > id2);
}

/* ---- objects ---- */

static void test_object_roundtrip(void **state)
{
	struct fx *f = *state;
	struct meta_object o, got;
	char name[URL_KEY_MAX + 1], version[PROTO_VERSION_MAX];

	fill(name, URL_KEY_MAX, 'a');
	fill(version, PROTO_VERSION_MAX - 1, 'A');
	obj_init(&o, meta_new_object_id(f->m), 7, name, version, 123456789012ull, -5);
	o.flags = META_OBJ_HAS_CRC32C | META_OBJ_HAS_MD5 | META_OBJ_VERIFIED;
	o.mtime_sec = -1234567890123ll;
	o.mtime_nsec = 999999999;
	o.crc32c = 0xdeadbeef;
	for (int i = 0; i < 16; i++)
		o.md5[i] = (uint8_t)(0xf0 + i);
	put_obj(f->m, &o);

	assert_int_equal(meta_object_get(f->m, o.id, &got), 0);
	assert_int_equal(got.id, o.id);
	assert_int_equal(got.bucket_id, 7);
	assert_int_equal(got.flags, o.flags);
	assert_int_equal(got.size, 123456789012ull);
	assert_int_equal(got.mtime_sec, -1234567890123ll);
	assert_int_equal(got.mtime_nsec, 999999999);
	assert_int_equal(got.crc32c, 0xdeadbeef);
	assert_memory_equal(got.md5, o.md5, 16);
	assert_int_equal(got.last_access, -5);
	assert_string_equal(got.name, name);
	assert_string_equal(got.version, version);
	assert_int_equal(strlen(got.name), URL_KEY_MAX);

	memset(&got, 0, sizeof(got));
	assert_int_equal(meta_object_find(f->m, 7, name, version, &got), 0);
	assert_int_equal(got.id, o.id);
	assert_string_equal(got.name, name);
	assert_int_equal(meta_object_get(f->m, o.id + 1000, &got), -ENOENT);
	assert_int_equal(usage_objects(f->m), 1);

	/* Same record after a reopen. */
	fx_reopen(f);
	assert_int_equal(meta_object_get(f->m, o.id, &got), 0);
	assert_string_equal(got.version, version);
	assert_int_equal(got.crc32c, 0xdeadbeef);

	/* Malformed objects are refused by commit. */
	obj_init(&got, 0, 7, "x", "1", 1, 0);
	struct meta_batch *b;
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_object(b, &got), 0);
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	meta_batch_free(b);
	obj_init(&got, 99, 7, "x", "1", 1, 0);
	memset(got.name, 'n', sizeof(got.name)); /* not terminated */
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_object(b, &got), 0);
	assert_int_equal(meta_commit(f->m, b), -ENAMETOOLONG);
	meta_batch_free(b);
	assert_int_equal(usage_objects(f->m), 1);
}

struct ids {
	uint64_t id[64];
	int64_t when[64];
	int n;
	int stop_after;
};

static int collect(void *ctx, const struct meta_object *o)
{
	struct ids *c = ctx;

	if (c->n < 64) {
		c->when[c->n] = o->last_access;
		c->id[c->n++] = o->id;
	}
	if (c->stop_after && c->n >= c->stop_after)
		return -ECANCELED;
	return 0;
}

static void test_object_scan_order(void **state)
{
	struct fx *f = *state;
	struct meta_batch *b;
	struct meta_object o;
	struct ids c = { 0 };
	const uint64_t ids[] = { 300, 5, 70000, 1, 256 };

	assert_int_equal(meta_batch_new(&b), 0);
	for (int i = 0; i < 5; i++) {
		obj_init(&o, ids[i], 1, "n", "", 1, 0);
		snprintf(o.name, sizeof(o.name), "n%d", i);
		assert_int_equal(meta_batch_put_object(b, &o), 0);
	}
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	assert_int_equal(meta_object_scan(f->m, collect, &c), 0);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.id[0], 1);
	assert_int_equal(c.id[1], 5);
	assert_int_equal(c.id[2], 256);
	assert_int_equal(c.id[3], 300);
	assert_int_equal(c.id[4], 70000);
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(meta_object_scan(f->m, collect, &c), -ECANCELED);
	assert_int_equal(c.n, 2);
}

static void test_name_index(void **state)
{
	struct fx *f = *state;
	struct meta_object o, got;
	char longname[URL_KEY_MAX + 1];
	uint64_t idv1, idv2, idb2, idl1, idl2;

	fill(longname, 1000, 'k');
	idv1 = meta_new_object_id(f->m);
	idv2 = meta_new_object_id(f->m);
	idb2 = meta_new_object_id(f->m);
	idl1 = meta_new_object_id(f->m);
	idl2 = meta_new_object_id(f->m);
	obj_init(&o, idv1, 1, "m/w.bin", "1", 10, 0);
	put_obj(f->m, &o);
	obj_init(&o, idv2, 1, "m/w.bin", "2", 10, 0);
	put_obj(f->m, &o);
	obj_init(&o, idb2, 2, "m/w.bin", "1", 10, 0);
	put_obj(f->m, &o);
	obj_init(&o, idl1, 1, longname, "g1", 10, 0);
	put_obj(f->m, &o);
	obj_init(&o, idl2, 1, longname, "g2", 10, 0);
	put_obj(f->m, &o);

	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "1", &got), 0);
	assert_int_equal(got.id, idv1);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "2", &got), 0);
	assert_int_equal(got.id, idv2);
	assert_int_equal(meta_object_find(f->m, 2, "m/w.bin", "1", &got), 0);
	assert_int_equal(got.id, idb2);
	assert_int_equal(meta_object_find(f->m, 1, longname, "g1", &got), 0);
	assert_int_equal(got.id, idl1);
	assert_int_equal(meta_object_find(f->m, 1, longname, "g2", &got), 0);
	assert_int_equal(got.id, idl2);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "3", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 3, "m/w.bin", "1", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 2, longname, "g1", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bi", "1", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "", &got), -ENOENT);

	/* Replacing a record under the same id with another version moves its index entry. */
	obj_init(&o, idv1, 1, "m/w.bin", "9", 10, 0);
	put_obj(f->m, &o);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "1", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 1, "m/w.bin", "9", &got), 0);
	assert_int_equal(got.id, idv1);
	assert_int_equal(usage_objects(f->m), 5);

	/* Deleting one version leaves the others. */
	assert_int_equal(commit1(f->m, 'd', idl1, 0, 0), 0);
	assert_int_equal(meta_object_find(f->m, 1, longname, "g1", &got), -ENOENT);
	assert_int_equal(meta_object_get(f->m, idl1, &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 1, longname, "g2", &got), 0);
	assert_int_equal(got.id, idl2);
	assert_int_equal(usage_objects(f->m), 4);
	/* Deleting what is not there is not an error. */
	assert_int_equal(commit1(f->m, 'd', idl1, 0, 0), 0);
	assert_int_equal(usage_objects(f->m), 4);
}

static void test_object_ids(void **state)
{
	struct fx *f = *state;
	uint64_t a, b, c, next, v;

	a = meta_new_object_id(f->m);
	b = meta_new_object_id(f->m);
	assert_true(a >= 1);
	assert_int_equal(b, a + 1);
	put_simple(f->m, b, 1, 0);
	c = meta_new_object_id(f->m); /* handed out, never stored */
	assert_int_equal(c, b + 1);
	fx_reopen(f);
	next = meta_new_object_id(f->m);
	assert_true(next > b);

	/* The largest id is deleted: its id is still not handed out again. */
	assert_int_equal(commit1(f->m, 'd', b, 0, 0), 0);
	fx_reopen(f);
	assert_true(meta_new_object_id(f->m) > next);

	/* A stored high-water mark behind the objects present (a lost write): ids still skip them.
	 */
	put_simple(f->m, 500, 1, 0);
	meta_close(f->m);
	f->m = NULL;
	v = 3;
	raw_put(f->dir, "info", "next_object_id", 14, &v, sizeof(v));
	assert_int_equal(meta_open(f->dir, MAP_BIG, &f->m), 0);
	assert_int_equal(meta_new_object_id(f->m), 501);
}

#define ID_THREADS 4
#define ID_PER	   5000

static void *id_thread(void *arg)
{
	struct fx *f = ((void **)arg)[0];
	uint64_t *out = ((void **)arg)[1];

	for (int i = 0; i < ID_PER; i++)
		out[i] = meta_new_object_id(f->m);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_object_ids_threads(void **state)
{
	struct fx *f = *state;
	uint64_t *all = calloc(ID_THREADS * ID_PER, sizeof(*all));
	pthread_t t[ID_THREADS];
	void *args[ID_THREADS][2];

	assert_non_null(all);
	for (int i = 0; i < ID_THREADS; i++) {
		args[i][0] = f;
		args[i][1] = all + i * ID_PER;
		assert_int_equal(pthread_create(&t[i], NULL, id_thread, args[i]), 0);
	}
	for (int i = 0; i < ID_THREADS; i++)
		pthread_join(t[i], NULL);
	qsort(all, ID_THREADS * ID_PER, sizeof(*all), cmp_u64);
	for (int i = 1; i < ID_THREADS * ID_PER; i++)
		assert_true(all[i] == all[i - 1] + 1);
	free(all);
}

/* ---- blocks ---- */

static void test_blocks(void **state)
{
	struct fx *f = *state;
	uint8_t bitmap[4];
	uint32_t crcs[16], present = 99;
	uint32_t want[5] = { 11, 22, 33, 44, 0xffffffffu };
	struct meta_batch *b;

	put_simple(f->m, 1, 10 * (uint64_t)BS + 5, 0); /* 11 blocks, the last one 5 bytes */
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_set_blocks(b, 1, 0, 4, want), 0);
	assert_int_equal(meta_batch_set_blocks(b, 1, 10, 1, want + 4), 0);
	assert_false(meta_batch_empty(b));
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	assert_int_equal(usage_bytes(f->m), 4 * (uint64_t)BS + 5);

	memset(bitmap, 0, sizeof(bitmap));
	for (int i = 0; i < 16; i++)
		crcs[i] = 0x5a5a5a5a;
	assert_int_equal(meta_blocks_load(f->m, 1, 11, bitmap, crcs, &present), 0);
	assert_int_equal(present, 5);
	assert_int_equal(bitmap[0], 0x0f);
	assert_int_equal(bitmap[1], 0x04);
	assert_int_equal(bitmap[2], 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(crcs[i], want[i]);
	assert_int_equal(crcs[10], 0xffffffffu);
	assert_int_equal(crcs[4], 0x5a5a5a5a); /* absent blocks untouched */

	/* Blocks at or past nblocks are ignored. */
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(meta_blocks_load(f->m, 1, 3, bitmap, NULL, &present), 0);
	assert_int_equal(present, 3);
	assert_int_equal(bitmap[0], 0x07);
	assert_int_equal(bitmap[1], 0);
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(meta_blocks_load(f->m, 1, 0, bitmap, NULL, NULL), 0);
	assert_int_equal(bitmap[0], 0);

	/* Clearing, re-setting with another crc, and an object with nothing recorded. */
	assert_int_equal(commit1(f->m, 'c', 1, 1, 2), 0);
	assert_int_equal(usage_bytes(f->m), 2 * (uint64_t)BS + 5);
	assert_int_equal(meta_batch_new(&b), 0);
	want[0] = 777;
	assert_int_equal(meta_batch_set_blocks(b, 1, 0, 1, want), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	assert_int_equal(usage_bytes(f->m), 2 * (uint64_t)BS + 5);
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(meta_blocks_load(f->m, 1, 11, bitmap, crcs, &present), 0);
	assert_int_equal(present, 3);
	assert_int_equal(bitmap[0], 0x09);
	assert_int_equal(crcs[0], 777);
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(meta_blocks_load(f->m, 2, 11, bitmap, crcs, &present), 0);
	assert_int_equal(present, 0);
	assert_int_equal(bitmap[0], 0);

	/* The last possible block index. */
	put_simple(f->m, 3, UINT64_MAX, 0);
	assert_int_equal(commit1(f->m, 's', 3, UINT32_MAX, 1), 0);
	assert_int_equal(usage_bytes(f->m), 3 * (uint64_t)BS + 5);
	assert_int_equal(commit1(f->m, 'c', 3, UINT32_MAX, 1), 0);
	assert_int_equal(usage_bytes(f->m), 2 * (uint64_t)BS + 5);
	/* A range past the 32-bit block space is refused. */
	assert_int_equal(commit1(f->m, 's', 3, UINT32_MAX, 2), -EINVAL);
}

/* ---- directories ---- */

struct names {
	char name[8][URL_KEY_MAX + 1];
	struct meta_dirent last;
	int n;
	int stop_after;
	int ret;
};

static int collect_names(void *ctx, const struct meta_dirent *d)
{
	struct names *c = ctx;

	if (c->n < 8)
		snprintf(c->name[c->n], sizeof(c->name[0]), "%s", d->name);
	c->last = *d;
	c->n++;
	if (c->stop_after && c->n >= c->stop_after)
		return c->ret;
	return 0;
}

static void dirent_init(struct meta_dirent *d, const char *name, uint8_t type, uint64_t size)
{
	memset(d, 0, sizeof(*d));
	d->type = type;
	d->size = size;
	d->mtime_sec = 1700000000 + (int64_t)size;
	d->mtime_nsec = 42;
	snprintf(d->name, sizeof(d->name), "%s", name);
	if (type == PROTO_FT_FILE)
		snprintf(d->version, sizeof(d->version), "gen-%" PRIu64, size);
}

static void put_dir(struct meta *m, uint32_t bucket, const char *dir, const struct meta_dirent *e,
		    size_t n, int64_t when)
{
	struct meta_batch *b;

	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_dir(b, bucket, dir, e, n, when), 0);
	assert_int_equal(meta_commit(m, b), 0);
	meta_batch_free(b);
}

static void test_dirents(void **state)
{
	struct fx *f = *state;
	struct meta_dirent e[4], got;
	static struct names c, c2;
	char n600[601], n1024[URL_KEY_MAX + 1], longdir[901];
	int64_t when = 0;

	fill(n600, 600, 'p');
	fill(n1024, URL_KEY_MAX, 'q');
	dirent_init(&e[0], "a", PROTO_FT_DIR, 0);
	dirent_init(&e[1], "model.bin", PROTO_FT_FILE, 1000);
	dirent_init(&e[2], n600, PROTO_FT_FILE, 600);
	dirent_init(&e[3], n1024, PROTO_FT_FILE, 1024);
	put_dir(f->m, 1, "", e, 4, 1000);

	assert_int_equal(meta_dir_listed_at(f->m, 1, "", &when), 0);
	assert_int_equal(when, 1000);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(meta_dir_lookup(f->m, 1, "", e[i].name, &got), 0);
		assert_string_equal(got.name, e[i].name);
		assert_string_equal(got.version, e[i].version);
		assert_int_equal(got.type, e[i].type);
		assert_int_equal(got.size, e[i].size);
		assert_int_equal(got.mtime_sec, e[i].mtime_sec);
		assert_int_equal(got.mtime_nsec, 42);
	}
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "nope", &got), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 2, "", "a", &got), -ENOENT);
	assert_int_equal(meta_dir_listed_at(f->m, 2, "", &when), -ENOENT);
	assert_int_equal(meta_dir_scan(f->m, 2, "", 0, collect_names, &c), -ENOENT);

	/* A scan sees every child once, in the same order every time. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c), 0);
	assert_int_equal(c.n, 4);
	for (int i = 0; i < 4; i++) {
		int seen = 0;

		for (int j = 0; j < 4; j++)
			seen += strcmp(c.name[j], e[i].name) == 0;
		assert_int_equal(seen, 1);
	}
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c2), 0);
	for (int i = 0; i < 4; i++)
		assert_string_equal(c.name[i], c2.name[i]);

	/* skip */
	for (int s = 0; s <= 5; s++) {
		memset(&c2, 0, sizeof(c2));
		assert_int_equal(meta_dir_scan(f->m, 1, "", (uint64_t)s, collect_names, &c2), 0);
		assert_int_equal(c2.n, s < 4 ? 4 - s : 0);
		for (int i = 0; i < c2.n; i++)
			assert_string_equal(c2.name[i], c.name[s + i]);
	}
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "", UINT64_MAX, collect_names, &c2), 0);
	assert_int_equal(c2.n, 0);

	/* early stop (1) and an error from fn */
	memset(&c2, 0, sizeof(c2));
	c2.stop_after = 2;
	c2.ret = 1;
	assert_int_equal(meta_dir_scan(f->m, 1, "", 1, collect_names, &c2), 0);
	assert_int_equal(c2.n, 2);
	assert_string_equal(c2.name[0], c.name[1]);
	memset(&c2, 0, sizeof(c2));
	c2.stop_after = 1;
	c2.ret = -ECANCELED;
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c2), -ECANCELED);
	assert_int_equal(c2.n, 1);

	/* Nested and long directories stay apart from their parents. */
	dirent_init(&e[0], "x.bin", PROTO_FT_FILE, 1);
	put_dir(f->m, 1, "a/", e, 1, 2000);
	dirent_init(&e[0], "y.bin", PROTO_FT_FILE, 2);
	dirent_init(&e[1], "z.bin", PROTO_FT_FILE, 3);
	put_dir(f->m, 1, "a/b/", e, 2, 3000);
	fill(longdir, 899, 'd');
	longdir[899] = '/';
	longdir[900] = 0;
	dirent_init(&e[0], n1024, PROTO_FT_FILE, 5);
	dirent_init(&e[1], "short", PROTO_FT_DIR, 0);
	dirent_init(&e[2], n600, PROTO_FT_FILE, 7);
	put_dir(f->m, 1, longdir, e, 3, 4000);

	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "a/", 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 1);
	assert_string_equal(c2.name[0], "x.bin");
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "a/b/", 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 2);
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, longdir, 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 3);
	assert_int_equal(meta_dir_listed_at(f->m, 1, longdir, &when), 0);
	assert_int_equal(when, 4000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(meta_dir_lookup(f->m, 1, longdir, e[i].name, &got), 0);
		assert_string_equal(got.name, e[i].name);
		assert_int_equal(got.size, e[i].size);
	}
	assert_int_equal(meta_dir_lookup(f->m, 1, longdir, "x.bin", &got), -ENOENT);
	longdir[10] = 'Z'; /* another long directory: never listed */
	assert_int_equal(meta_dir_listed_at(f->m, 1, longdir, &when), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, longdir, "short", &got), -ENOENT);
	longdir[10] = 'd';
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 4);

	/* Replacing a listing drops the children it no longer has. */
	dirent_init(&e[0], "model.bin", PROTO_FT_FILE, 2000);
	dirent_init(&e[1], "new", PROTO_FT_FILE, 1);
	put_dir(f->m, 1, "", e, 2, 5000);
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 2);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", n600, &got), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", n1024, &got), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "model.bin", &got), 0);
	assert_int_equal(got.size, 2000);

	/* An empty listing is a listing. */
	put_dir(f->m, 1, "empty/", NULL, 0, 6000);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "empty/", &when), 0);
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(meta_dir_scan(f->m, 1, "empty/", 0, collect_names, &c2), 0);
	assert_int_equal(c2.n, 0);

	/* Forgetting a listing. */
	struct meta_batch *b;
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_del_dir(b, 1, ""), 0);
	assert_int_equal(meta_batch_del_dir(b, 1, longdir), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "", &when), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "model.bin", &got), -ENOENT);
	assert_int_equal(meta_dir_scan(f->m, 1, "", 0, collect_names, &c2), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, longdir, "short", &got), -ENOENT);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "a/", &when), 0);
	assert_int_equal(meta_dir_lookup(f->m, 1, "a/", "x.bin", &got), 0);

	/* Persisted. */
	fx_reopen(f);
	assert_int_equal(meta_dir_lookup(f->m, 1, "a/b/", "z.bin", &got), 0);
	assert_int_equal(got.size, 3);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "a/b/", &when), 0);
	assert_int_equal(when, 3000);
}

static void test_dir_validation(void **state)
{
	struct fx *f = *state;
	struct meta_dirent e[2], got;
	struct meta_batch *b;
	struct names c = { 0 };
	int64_t when;

	assert_int_equal(meta_dir_listed_at(f->m, 1, "a", &when), -EINVAL);
	assert_int_equal(meta_dir_lookup(f->m, 1, "a", "b", &got), -EINVAL);
	assert_int_equal(meta_dir_scan(f->m, 1, "a", 0, collect_names, &c), -EINVAL);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "b/c", &got), -EINVAL);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "", &got), -EINVAL);

	dirent_init(&e[0], "ok", PROTO_FT_FILE, 1);
	dirent_init(&e[1], "bad/name", PROTO_FT_FILE, 1);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_dir(b, 1, "", e, 2, 1), 0);
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	meta_batch_free(b);
	e[1].type = 9;
	snprintf(e[1].name, sizeof(e[1].name), "fine");
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_dir(b, 1, "", e, 2, 1), 0);
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	meta_batch_free(b);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_put_dir(b, 1, "nodir", e, 1, 1), 0);
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	meta_batch_free(b);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "", &when), -ENOENT);
}

/* ---- counters ---- */

static void test_counters(void **state)
{
	struct fx *f = *state;
	struct meta_batch *b;
	char longname[300];

	assert_int_equal(meta_counter_get(f->m, "hits"), 0);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_true(meta_batch_empty(b));
	assert_int_equal(meta_batch_counter_add(b, "hits", 5), 0);
	assert_int_equal(meta_batch_counter_add(b, "hits", 7), 0);
	assert_int_equal(meta_batch_counter_add(b, "bytes_from_store", 1ull << 40), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	assert_int_equal(meta_counter_get(f->m, "hits"), 12);
	assert_int_equal(meta_counter_get(f->m, "bytes_from_store"), 1ull << 40);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_counter_add(b, "hits", 1), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	fx_reopen(f);
	assert_int_equal(meta_counter_get(f->m, "hits"), 13);
	assert_int_equal(meta_counter_get(f->m, "misses"), 0);
	assert_int_equal(meta_counter_get(f->m, ""), 0);

	fill(longname, 299, 'c');
	assert_int_equal(meta_counter_get(f->m, longname), 0);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_counter_add(b, longname, 1), 0);
	assert_int_equal(meta_commit(f->m, b), -ENAMETOOLONG);
	meta_batch_free(b);
}

/* ---- batches ---- */

static void test_batch_atomic_invalid(void **state)
{
	struct fx *f = *state;
	struct meta_batch *b;
	struct meta_object o, got;
	struct meta_dirent e;
	uint32_t crcs[2] = { 1, 2 };
	uint8_t bitmap[1] = { 0 };
	uint32_t present = 9;
	int64_t when;

	put_simple(f->m, 1, 2 * (uint64_t)BS, 100);
	assert_int_equal(usage_objects(f->m), 1);

	assert_int_equal(meta_batch_new(&b), 0);
	obj_init(&o, 2, 1, "two", "v", 10, 5);
	assert_int_equal(meta_batch_put_object(b, &o), 0);
	assert_int_equal(meta_batch_set_blocks(b, 1, 0, 2, crcs), 0);
	assert_int_equal(meta_batch_touch(b, 1, 999), 0);
	assert_int_equal(meta_batch_counter_add(b, "c", 3), 0);
	dirent_init(&e, "f", PROTO_FT_FILE, 1);
	assert_int_equal(meta_batch_put_dir(b, 1, "", &e, 1, 7), 0);
	assert_int_equal(meta_batch_del_object(b, 1), 0);
	obj_init(&o, 0, 1, "zero", "v", 10, 5); /* invalid: id 0, found only while applying */
	assert_int_equal(meta_batch_put_object(b, &o), 0);
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	/* The batch is left as it was: committing it again fails the same way. */
	assert_int_equal(meta_commit(f->m, b), -EINVAL);
	meta_batch_free(b);

	assert_int_equal(meta_object_get(f->m, 2, &got), -ENOENT);
	assert_int_equal(meta_object_get(f->m, 1, &got), 0);
	assert_int_equal(got.last_access, 100);
	assert_int_equal(meta_blocks_load(f->m, 1, 2, bitmap, NULL, &present), 0);
	assert_int_equal(present, 0);
	assert_int_equal(meta_counter_get(f->m, "c"), 0);
	assert_int_equal(meta_dir_listed_at(f->m, 1, "", &when), -ENOENT);
	assert_int_equal(usage_bytes(f->m), 0);
	assert_int_equal(usage_objects(f->m), 1);

	/* An empty batch commits trivially. */
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	meta_batch_free(NULL);
}

static void test_batch_map_full(void **state)
{
	char dir[64], name[URL_KEY_MAX + 1];
	struct meta *m;
	struct meta_batch *b;
	struct meta_object o;
	uint64_t next = 1, ok_upto = 0, bytes = 0, objects = 0, b2, o2;
	uint32_t crcs[3] = { 1, 2, 3 };
	int rc = 0, rounds;

	tmpdir_make(dir, sizeof(dir));
	assert_int_equal(meta_open(dir, 256 * 1024, &m), 0);
	for (rounds = 0; rounds < 10000; rounds++) {
		assert_int_equal(meta_batch_new(&b), 0);
		for (int i = 0; i < 8; i++, next++) {
			fill(name, URL_KEY_MAX, 'a');
			snprintf(name, 20, "%019" PRIu64, next);
			name[19] = 'x';
			obj_init(&o, next, 1, name, "v", 3 * (uint64_t)BS, (int64_t)next);
			assert_int_equal(meta_batch_put_object(b, &o), 0);
			assert_int_equal(meta_batch_set_blocks(b, next, 0, 3, crcs), 0);
		}
		assert_int_equal(meta_batch_counter_add(b, "rounds", 1), 0);
		rc = meta_commit(m, b);
		meta_batch_free(b);
		if (rc)
			break;
		ok_upto = next - 1;
		meta_usage(m, &bytes, &objects);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(ok_upto > 0);
	/* Nothing of the failed batch, everything before it. */
	meta_usage(m, &b2, &o2);
	assert_int_equal(b2, bytes);
	assert_int_equal(o2, objects);
	assert_int_equal(objects, ok_upto);
	assert_int_equal(bytes, ok_upto * 3 * BS);
	for (uint64_t id = 1; id < next; id++) {
		uint8_t bm[1] = { 0 };
		uint32_t present = 0;

		assert_int_equal(meta_object_get(m, id, &o), id <= ok_upto ? 0 : -ENOENT);
		assert_int_equal(meta_blocks_load(m, id, 3, bm, NULL, &present), 0);
		assert_int_equal(present, id <= ok_upto ? 3 : 0);
	}
	assert_int_equal(meta_counter_get(m, "rounds"), (uint64_t)rounds);
	meta_close(m);

	/* Reopened with a larger map: the same state, and room again. */
	assert_int_equal(meta_open(dir, MAP_BIG, &m), 0);
	meta_usage(m, &b2, &o2);
	assert_int_equal(b2, bytes);
	assert_int_equal(o2, objects);
	assert_int_equal(meta_object_get(m, ok_upto, &o), 0);
	assert_int_equal(meta_object_get(m, ok_upto + 1, &o), -ENOENT);
	put_simple(m, next, 1, 0);
	assert_int_equal(usage_objects(m), objects + 1);
	meta_close(m);
	tmpdir_remove(dir);
}

/* ---- persistence ---- */

static void test_reopen_persistence(void **state)
{
	struct fx *f = *state;
	struct meta_batch *b;
	struct meta_object got;
	struct meta_dirent e, gd;
	uint32_t crcs[3] = { 9, 8, 7 }, c2[3] = { 0 }, present = 0;
	uint8_t bm[1] = { 0 };
	uint32_t epoch = meta_epoch(f->m);
	uint64_t bytes, objects, b2, o2;

	put_simple(f->m, 10, 2 * (uint64_t)BS + 100, 50);
	put_simple(f->m, 11, 1, 60);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_set_blocks(b, 10, 0, 3, crcs), 0);
	assert_int_equal(meta_batch_set_blocks(b, 11, 0, 1, crcs), 0);
	assert_int_equal(meta_batch_touch(b, 11, 40), 0);
	assert_int_equal(meta_batch_counter_add(b, "k", 77), 0);
	dirent_init(&e, "obj-10", PROTO_FT_FILE, 10);
	assert_int_equal(meta_batch_put_dir(b, 1, "d/", &e, 1, 1234), 0);
	assert_int_equal(meta_commit(f->m, b), 0);
	meta_batch_free(b);
	meta_usage(f->m, &bytes, &objects);
	assert_int_equal(bytes, 2 * (uint64_t)BS + 100 + 1);
	assert_int_equal(objects, 2);

	fx_reopen(f);
	assert_int_equal(meta_epoch(f->m), epoch + 1);
	meta_usage(f->m, &b2, &o2);
	assert_int_equal(b2, bytes);
	assert_int_equal(o2, objects);
	assert_int_equal(meta_object_get(f->m, 11, &got), 0);
	assert_int_equal(got.last_access, 40);
	assert_int_equal(meta_object_find(f->m, 1, "obj-10", "v1", &got), 0);
	assert_int_equal(got.id, 10);
	assert_int_equal(meta_blocks_load(f->m, 10, 3, bm, c2, &present), 0);
	assert_int_equal(present, 3);
	assert_int_equal(c2[2], 7);
	assert_int_equal(meta_counter_get(f->m, "k"), 77);
	assert_int_equal(meta_dir_lookup(f->m, 1, "d/", "obj-10", &gd), 0);
	assert_int_equal(gd.size, 10);
	assert_true(meta_new_object_id(f->m) > 11);
}

/* ---- eviction order ---- */

static void expect_order(struct meta *m, const uint64_t *ids, int n)
{
	struct ids c = { 0 };

	assert_int_equal(meta_evict_scan(m, collect, &c), 0);
	assert_int_equal(c.n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(c.id[i], ids[i]);
	for (int i = 1; i < n; i++)
		assert_true(c.when[i - 1] < c.when[i] ||
			    (c.when[i - 1] == c.when[i] && c.id[i - 1] < c.id[i]));
}

static void test_evict_order(void **state)
{
	struct fx *f = *state;
	struct meta_object o;
	struct ids c = { 0 };

	put_simple(f->m, 1, 1, 100);
	put_simple(f->m, 2, 1, 50);
	put_simple(f->m, 3, 1, 100); /* ties with 1: id order */
	put_simple(f->m, 4, 1, -20); /* before the epoch */
	put_simple(f->m, 5, 1, INT64_MAX);
	put_simple(f->m, 6, 1, 75);
	put_simple(f->m, 7, 1, INT64_MIN);
	{
		const uint64_t want[] = { 7, 4, 2, 6, 1, 3, 5 };

		expect_order(f->m, want, 7);
	}
	assert_int_equal(commit1(f->m, 't', 2, 200, 0), 0);
	assert_int_equal(commit1(f->m, 't', 1, 100, 0), 0); /* unchanged */
	assert_int_equal(commit1(f->m, 't', 4, 100, 0), 0); /* joins the tie */
	assert_int_equal(commit1(f->m, 'd', 6, 0, 0), 0);
	assert_int_equal(commit1(f->m, 't', 66, 1, 0), 0); /* unknown: ignored */
	{
		const uint64_t want[] = { 7, 1, 3, 4, 2, 5 };

		expect_order(f->m, want, 6);
	}
	/* Replacing a record moves it too. */
	obj_init(&o, 3, 1, "obj-3", "v1", 1, 10);
	put_obj(f->m, &o);
	fx_reopen(f);
	{
		const uint64_t want[] = { 7, 3, 1, 4, 2, 5 };

		expect_order(f->m, want, 6);
	}
	c.stop_after = 2;
	assert_int_equal(meta_evict_scan(f->m, collect, &c), -ECANCELED);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.id[1], 3);
}

/* ---- usage sums ---- */

static void test_usage_simple(void **state)
{
	struct fx *f = *state;
	struct meta_object o;
	const uint64_t size = 2 * (uint64_t)BS + BS / 2;

	put_simple(f->m, 1, size, 0);
	assert_int_equal(usage_bytes(f->m), 0);
	assert_int_equal(commit1(f->m, 's', 1, 0, 3), 0);
	assert_int_equal(usage_bytes(f->m), size);
	assert_int_equal(commit1(f->m, 's', 1, 1, 1), 0); /* present already */
	assert_int_equal(usage_bytes(f->m), size);
	assert_int_equal(commit1(f->m, 's', 1, 3, 2), 0); /* past the end: no bytes */
	assert_int_equal(usage_bytes(f->m), size);
	assert_int_equal(commit1(f->m, 'c', 1, 0, 1), 0);
	assert_int_equal(usage_bytes(f->m), size - BS);
	assert_int_equal(commit1(f->m, 'c', 1, 0, 1), 0); /* absent already */
	assert_int_equal(usage_bytes(f->m), size - BS);
	/* A larger size: block 2 is whole now and 3, 4 count. */
	obj_init(&o, 1, 1, "obj-1", "v1", 5 * (uint64_t)BS, 0);
	put_obj(f->m, &o);
	assert_int_equal(usage_bytes(f->m), 4 * (uint64_t)BS);
	/* Smaller: only block 1's first 10 bytes. */
	o.size = BS + 10;
	put_obj(f->m, &o);
	assert_int_equal(usage_bytes(f->m), 10);
	/* Same size, other fields: unchanged. */
	o.last_access = 77;
	o.crc32c = 5;
	put_obj(f->m, &o);
	assert_int_equal(usage_bytes(f->m), 10);
	/* Blocks for an object that has no record are not recorded. */
	assert_int_equal(commit1(f->m, 's', 2, 0, 4), 0);
	assert_int_equal(usage_bytes(f->m), 10);
	put_simple(f->m, 2, 4 * (uint64_t)BS, 0);
	assert_int_equal(usage_bytes(f->m), 10);
	assert_int_equal(usage_objects(f->m), 2);
	assert_int_equal(commit1(f->m, 'd', 1, 0, 0), 0);
	assert_int_equal(usage_bytes(f->m), 0);
	assert_int_equal(usage_objects(f->m), 1);
	/* Zero-length object. */
	put_simple(f->m, 3, 0, 0);
	assert_int_equal(commit1(f->m, 's', 3, 0, 1), 0);
	assert_int_equal(usage_bytes(f->m), 0);
	assert_int_equal(usage_objects(f->m), 2);
}

#define U_OBJS	 6
#define U_BLOCKS 32

struct model {
	bool exists[U_OBJS + 1];
	uint64_t size[U_OBJS + 1];
	bool present[U_OBJS + 1][U_BLOCKS];
};

static uint64_t model_block_bytes(uint64_t b, uint64_t size)
{
	uint64_t off = b * BS;

	if (off >= size)
		return 0;
	return size - off < BS ? size - off : BS;
}

static void model_check(struct meta *m, const struct model *md)
{
	uint64_t bytes = 0, objects = 0, got_b, got_o;

	for (int id = 1; id <= U_OBJS; id++) {
		if (!md->exists[id])
			continue;
		objects++;
		for (int b = 0; b < U_BLOCKS; b++)
			if (md->present[id][b])
				bytes += model_block_bytes((uint64_t)b, md->size[id]);
	}
	meta_usage(m, &got_b, &got_o);
	assert_int_equal(got_b, bytes);
	assert_int_equal(got_o, objects);
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

static void test_usage_random(void **state)
{
	struct fx *f = *state;
	static struct model md;
	const uint64_t sizes[] = {
		0, 1, BS - 1, BS, BS + 1, 5 * BS + BS / 2, 20 * BS - 3, 31 * BS
	};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uint32_t crcs[U_BLOCKS];

	memset(&md, 0, sizeof(md));
	for (uint32_t i = 0; i < U_BLOCKS; i++)
		crcs[i] = i * 3;
	for (int round = 0; round < 1500; round++) {
		struct meta_batch *b;
		int nops = 1 + (int)(rnd(&seed) % 4);

		assert_int_equal(meta_batch_new(&b), 0);
		for (int k = 0; k < nops; k++) {
			int id = 1 + (int)(rnd(&seed) % U_OBJS);
			uint32_t first = rnd(&seed) % U_BLOCKS;
			uint32_t n = rnd(&seed) % (U_BLOCKS - first + 1);
			struct meta_object o;

			switch (rnd(&seed) % 6) {
			case 0: /* put or replace */
				obj_init(&o, (uint64_t)id, 1, "x", "v", sizes[rnd(&seed) % 8],
					 round);
				snprintf(o.name, sizeof(o.name), "u%d", id);
				assert_int_equal(meta_batch_put_object(b, &o), 0);
				md.exists[id] = true;
				md.size[id] = o.size;
				break;
			case 1:
			case 2:
				assert_int_equal(
					meta_batch_set_blocks(b, (uint64_t)id, first, n, crcs), 0);
				if (md.exists[id])
					for (uint32_t i = first; i < first + n; i++)
						md.present[id][i] = true;
				break;
			case 3:
				assert_int_equal(meta_batch_clear_blocks(b, (uint64_t)id, first, n),
						 0);
				for (uint32_t i = first; i < first + n; i++)
					md.present[id][i] = false;
				break;
			case 4:
				assert_int_equal(meta_batch_del_object(b, (uint64_t)id), 0);
				md.exists[id] = false;
				memset(md.present[id], 0, sizeof(md.present[id]));
				break;
			default:
				assert_int_equal(meta_batch_touch(b, (uint64_t)id, round), 0);
				break;
			}
		}
		assert_int_equal(meta_commit(f->m, b), 0);
		meta_batch_free(b);
		model_check(f->m, &md);
	}
	fx_reopen(f);
	model_check(f->m, &md);
	/* The recorded blocks are the model's. */
	for (int id = 1; id <= U_OBJS; id++) {
		uint8_t bm[U_BLOCKS / 8] = { 0 };
		uint32_t present = 0, want = 0;

		assert_int_equal(meta_blocks_load(f->m, (uint64_t)id, U_BLOCKS, bm, NULL, &present),
				 0);
		for (int blk = 0; blk < U_BLOCKS; blk++) {
			want += md.present[id][blk];
			assert_int_equal(!!(bm[blk / 8] & (1u << (blk % 8))), md.present[id][blk]);
		}
		assert_int_equal(present, want);
	}
}

/* ---- corrupt records ---- */

static void test_corrupt_records(void **state)
{
	struct fx *f = *state;
	uint8_t k[12], junk[70];
	struct meta_object got;
	struct ids c = { 0 };
	uint8_t bm[1] = { 0 };
	uint32_t present = 0;
	uint64_t bytes, objects;
	struct meta_batch *b;

	put_simple(f->m, 1, 4 * (uint64_t)BS, 10);
	put_simple(f->m, 2, 4 * (uint64_t)BS, 20);
	assert_int_equal(commit1(f->m, 's', 2, 0, 2), 0);
	meta_usage(f->m, &bytes, &objects);
	meta_close(f->m);
	f->m = NULL;

	/* Object 1: too short for its header. Object 2's block 0: a 2-byte crc. */
	be64(k, 1);
	raw_put(f->dir, "objects", k, 8, "short", 5);
	be64(k, 2);
	k[8] = k[9] = k[10] = k[11] = 0;
	raw_put(f->dir, "blocks", k, 12, "xx", 2);
	/* Object 3: a header whose name length runs past the record. */
	memset(junk, 0, sizeof(junk));
	junk[56] = 200; /* name_len */
	be64(k, 3);
	raw_put(f->dir, "objects", k, 8, junk, sizeof(junk));
	raw_put(f->dir, "counters", "hits", 4, "abc", 3);

	assert_int_equal(meta_open(f->dir, MAP_BIG, &f->m), 0);
	assert_int_equal(meta_object_get(f->m, 1, &got), -EIO);
	assert_int_equal(meta_object_get(f->m, 3, &got), -EIO);
	assert_int_equal(meta_object_get(f->m, 2, &got), 0);
	assert_int_equal(meta_object_scan(f->m, collect, &c), -EIO);
	assert_int_equal(meta_evict_scan(f->m, collect, &c), -EIO);
	assert_int_equal(meta_blocks_load(f->m, 2, 4, bm, NULL, &present), -EIO);
	assert_int_equal(meta_counter_get(f->m, "hits"), 0);
	assert_int_equal(meta_object_find(f->m, 1, "obj-1", "v1", &got), -EIO);

	/* Commits that meet a corrupt record fail whole. */
	assert_int_equal(commit1(f->m, 't', 1, 99, 0), -EIO);
	assert_int_equal(meta_batch_new(&b), 0);
	assert_int_equal(meta_batch_counter_add(b, "misses", 1), 0);
	assert_int_equal(meta_batch_counter_add(b, "hits", 1), 0);
	assert_int_equal(meta_commit(f->m, b), -EIO);
	meta_batch_free(b);
	assert_int_equal(meta_counter_get(f->m, "misses"), 0);
}

/* Index entries whose key does not match the record they lead to (what a digest collision or a
 * stale entry looks like) never return that record. */
static void test_index_mismatch(void **state)
{
	struct fx *f = *state;
	uint8_t k[64], v[64];
	struct meta_object got;
	struct meta_dirent e, gd;
	uint64_t id = 2;
	uint32_t bid, bid_other = 1;

	put_simple(f->m, 2, 10, 0);
	dirent_init(&e, "real", PROTO_FT_FILE, 3);
	put_dir(f->m, 1, "", &e, 1, 1);
	assert_int_equal(meta_bucket_id(f->m, "gs|x|real", true, &bid), 0);
	meta_close(f->m);
	f->m = NULL;

	/* names: bucket 1, 'L', "ghost" NUL "v1" -> object 2 (named obj-2) */
	memset(k, 0, sizeof(k));
	k[3] = 1;
	k[4] = 'L';
	memcpy(k + 5, "ghost\0v1", 8);
	raw_put(f->dir, "names", k, 13, &id, sizeof(id));
	/* dirs: bucket 1, dir "" -> child 'L' "ghost" holding the record of "other" */
	memset(k, 0, sizeof(k));
	k[3] = 1;
	k[4] = 'L';
	k[5] = 0;
	k[6] = 'L';
	memcpy(k + 7, "ghost", 5);
	memset(v, 0, sizeof(v));
	v[20] = 5; /* name_len */
	v[24] = PROTO_FT_FILE;
	memcpy(v + 32, "other", 5);
	raw_put(f->dir, "dirs", k, 12, v, 37);
	/* buckets: 'L' "gs|x|ghost" -> bucket 1 with the key "gs|x|other" */
	k[0] = 'L';
	memcpy(k + 1, "gs|x|ghost", 10);
	memcpy(v, &bid_other, 4);
	memcpy(v + 4, "gs|x|other", 10);
	raw_put(f->dir, "buckets", k, 11, v, 14);

	assert_int_equal(meta_open(f->dir, MAP_BIG, &f->m), 0);
	assert_int_equal(meta_object_find(f->m, 1, "ghost", "v1", &got), -ENOENT);
	assert_int_equal(meta_object_find(f->m, 1, "obj-2", "v1", &got), 0);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "ghost", &gd), -ENOENT);
	assert_int_equal(meta_dir_lookup(f->m, 1, "", "real", &gd), 0);
	assert_int_equal(meta_bucket_id(f->m, "gs|x|ghost", false, &bid), -ENOENT);
	assert_int_equal(meta_bucket_id(f->m, "gs|x|ghost", true, &bid), -EIO);
}

/* ---- concurrency ---- */

struct reader_arg {
	struct meta *m;
	_Atomic int stop;
	int errors;
	long reads;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	struct meta_object o;
	uint8_t bm[1];

	while (!a->stop) {
		int rc = meta_object_get(a->m, 1, &o);

		if (rc != 0 || o.id != 1)
			a->errors++;
		memset(bm, 0, sizeof(bm));
		if (meta_blocks_load(a->m, 1, 8, bm, NULL, NULL) != 0)
			a->errors++;
		a->reads++;
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	struct reader_arg a[3];
	pthread_t t[3];

	put_simple(f->m, 1, 8 * (uint64_t)BS, 0);
	for (int i = 0; i < 3; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].m = f->m;
		assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
	}
	for (int round = 0; round < 300; round++) {
		assert_int_equal(commit1(f->m, 's', 1, (uint32_t)(round % 8), 1), 0);
		assert_int_equal(commit1(f->m, 't', 1, (uint32_t)round, 0), 0);
		assert_int_equal(commit1(f->m, 'c', 1, (uint32_t)((round + 3) % 8), 1), 0);
	}
	for (int i = 0; i < 3; i++) {
		a[i].stop = 1;
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].errors, 0);
		assert_true(a[i].reads > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_epoch),
		cmocka_unit_test_setup_teardown(test_open_twice_refused, fx_setup, fx_teardown),
		cmocka_unit_test(test_schema_refused),
		cmocka_unit_test_setup_teardown(test_buckets, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_object_roundtrip, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_object_scan_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_name_index, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_object_ids, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_object_ids_threads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_blocks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dirents, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dir_validation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_counters, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_batch_atomic_invalid, fx_setup, fx_teardown),
		cmocka_unit_test(test_batch_map_full),
		cmocka_unit_test_setup_teardown(test_reopen_persistence, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_evict_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_simple, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage_random, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_index_mismatch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
