/* meta_write: write batches and meta_commit() (layout in meta_int.h). */
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

/*
 * Walks object id's recorded blocks in [first, end), adding the bytes they hold for an object of
 * `size` to *sum, and deleting them when `del` is set.
 */
int mi_blocks_walk(struct meta *m, MDB_txn *txn, uint64_t id, uint64_t first, uint64_t end,
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
		return mi_lmdb_errno(rc);
	mi_key_block(&kb, id, (uint32_t)first);
	k = mval(kb.b, kb.len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint32_t b;

		if (k.mv_size != 12 || v.mv_size != 4) {
			rc = mi_corrupt("block", id, v.mv_size);
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
		mi_key_block(&kb, id, b + 1);
		k = mval(kb.b, kb.len);
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	rc = rc == MDB_NOTFOUND ? 0 : mi_lmdb_errno(rc);
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
		int rc = mi_check_child(e[i].name, sizeof(e[i].name), &nl);

		if (!rc)
			rc = mi_check_version(e[i].version, &vl);
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

	mi_key_lru(&k, when, id);
	kv = mval(k.b, k.len);
	rc = mdb_del(txn, m->lru, &kv, NULL);
	return rc == MDB_NOTFOUND ? 0 : mi_lmdb_errno(rc);
}

static int lru_put(struct meta *m, MDB_txn *txn, int64_t when, uint64_t id)
{
	struct key k;
	MDB_val kv, v = mval("", 0);

	mi_key_lru(&k, when, id);
	kv = mval(k.b, k.len);
	return mi_lmdb_errno(mdb_put(txn, m->lru, &kv, &v, 0));
}

/* Removes o's name index entry if it points at o. */
static int name_del(struct meta *m, MDB_txn *txn, const struct meta_object *o)
{
	struct key k;
	MDB_val kv, v;
	uint64_t id;
	int rc;

	mi_key_name(&k, o->bucket_id, o->name, strlen(o->name), o->version, strlen(o->version));
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : mi_lmdb_errno(rc);
	if (v.mv_size == 8) {
		memcpy(&id, v.mv_data, 8);
		if (id != o->id)
			return 0;
	}
	return mi_lmdb_errno(mdb_del(txn, m->names, &kv, NULL));
}

static int name_put(struct meta *m, MDB_txn *txn, const struct meta_object *o, size_t nl, size_t vl)
{
	struct meta_object *other;
	struct key k;
	MDB_val kv, v;
	uint64_t id = 0;
	int rc;

	mi_key_name(&k, o->bucket_id, o->name, nl, o->version, vl);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->names, &kv, &v);
	if (rc && rc != MDB_NOTFOUND)
		return mi_lmdb_errno(rc);
	if (rc == 0 && v.mv_size == 8)
		memcpy(&id, v.mv_data, 8);
	if (id != 0 && id != o->id) {
		other = malloc(sizeof(*other));
		if (!other)
			return -ENOMEM;
		rc = mi_obj_load(m, txn, id, other);
		if (rc == 0 && !mi_obj_same_version(o, other)) {
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
	return mi_lmdb_errno(mdb_put(txn, m->names, &kv, &v, 0));
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
	if (nl == sizeof(o->name) || mi_check_version(o->version, &vl))
		return -ENAMETOOLONG;
	old = malloc(sizeof(*old));
	if (!old)
		return -ENOMEM;
	rc = mi_obj_load(m, txn, o->id, old);
	if (rc == 0) {
		if (old->size != o->size) {
			rc = mi_blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, old->size, &was);
			if (!rc)
				rc = mi_blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, o->size,
						    &now);
		}
		if (!rc)
			rc = lru_del(m, txn, old->last_access, o->id);
		if (!rc && !mi_obj_same_version(old, o))
			rc = name_del(m, txn, old);
	} else if (rc == -ENOENT) {
		u->objects++;
		rc = mi_blocks_walk(m, txn, o->id, 0, UINT64_MAX, false, o->size, &now);
	}
	free(old);
	if (rc)
		return rc;
	u->bytes += now - was;
	rc = name_put(m, txn, o, nl, vl);
	if (!rc)
		rc = mi_obj_store(m, txn, o, nl, vl);
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
	rc = mi_obj_load(m, txn, id, old);
	if (rc == -ENOENT) {
		/* No record: remove any stray blocks; they never counted. */
		rc = mi_blocks_walk(m, txn, id, 0, UINT64_MAX, true, 0, &gone);
		goto out_free;
	}
	if (rc)
		goto out_free;
	rc = mi_blocks_walk(m, txn, id, 0, UINT64_MAX, true, old->size, &gone);
	if (!rc)
		rc = lru_del(m, txn, old->last_access, id);
	if (!rc)
		rc = name_del(m, txn, old);
	if (rc)
		goto out_free;
	mi_key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = mi_lmdb_errno(mdb_del(txn, m->objects, &kv, NULL));
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

	mi_key_id(&k, id);
	kv = mval(k.b, k.len);
	rc = mdb_get(txn, m->objects, &kv, &v);
	if (rc)
		return mi_lmdb_errno(rc);
	if (v.mv_size < sizeof(r))
		return mi_corrupt("object", id, v.mv_size);
	memcpy(&r, v.mv_data, sizeof(r));
	if (v.mv_size != sizeof(r) + r.name_len + r.version_len)
		return mi_corrupt("object", id, v.mv_size);
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

		mi_key_block(&k, op->id, b);
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
		err = mi_lmdb_errno(rc);
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
	rc = mi_blocks_walk(m, txn, op->id, op->first, (uint64_t)op->first + op->n, true, size,
			    &gone);
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
	rc = mi_obj_load(m, txn, op->id, o);
	if (rc == -ENOENT)
		rc = 0; /* forgotten meanwhile */
	else if (rc == 0 && o->last_access != op->when) {
		rc = lru_del(m, txn, o->last_access, o->id);
		o->last_access = op->when;
		if (!rc)
			rc = mi_obj_store(m, txn, o, strlen(o->name), strlen(o->version));
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
		return mi_lmdb_errno(rc);
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
	return rc == MDB_NOTFOUND ? 0 : mi_lmdb_errno(rc);
}

static int apply_put_dir(struct meta *m, MDB_txn *txn, const struct meta_op *op, bool del_only)
{
	uint8_t sbuf[sizeof(struct rec_stamp) + URL_KEY_MAX];
	struct rec_stamp s = { .listed_at = op->when };
	const uint8_t *p = op->data;
	struct key prefix, k;
	MDB_val kv, v;
	size_t dl;
	int rc = mi_check_dir(op->str, &dl);

	if (rc)
		return rc;
	mi_key_dir(&prefix, op->bucket_id, op->str, dl);
	rc = dir_del_prefix(m, txn, &prefix);
	if (rc || del_only)
		return rc;
	s.dir_len = (uint32_t)dl;
	memcpy(sbuf, &s, sizeof(s));
	memcpy(sbuf + sizeof(s), op->str, dl);
	kv = mval(prefix.b, prefix.len);
	v = mval(sbuf, sizeof(s) + dl);
	rc = mi_lmdb_errno(mdb_put(txn, m->dirs, &kv, &v, 0));
	for (size_t i = 0; !rc && i < op->count; i++) {
		struct rec_dirent r;
		size_t len;

		memcpy(&r, p, sizeof(r));
		len = sizeof(r) + r.name_len + r.version_len;
		k = prefix;
		mi_key_part(&k, p + sizeof(r), r.name_len, META_KEY_MAX, false);
		kv = mval(k.b, k.len);
		v = mval(p, len);
		rc = mi_lmdb_errno(mdb_put(txn, m->dirs, &kv, &v, 0));
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
			return mi_corrupt("counter", 0, v.mv_size);
		memcpy(&value, v.mv_data, 8);
	} else if (rc != MDB_NOTFOUND) {
		return mi_lmdb_errno(rc);
	}
	value += op->delta;
	v = mval(&value, sizeof(value));
	return mi_lmdb_errno(mdb_put(txn, m->counters, &kv, &v, 0));
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
		rc = mi_lmdb_fail("begin write transaction", rc);
		goto out_unlock;
	}
	for (i = 0; i < b->n && !rc; i++)
		rc = apply_op(m, txn, &b->ops[i], &u);
	if (rc) {
		i--; /* the change that failed */
	} else {
		if (hw != m->next_id_persisted)
			rc = mi_info_put(m, txn, "next_object_id", hw);
		if (!rc && u.bytes != atomic_load(&m->bytes_present))
			rc = mi_info_put(m, txn, "bytes_present", u.bytes);
		if (!rc && u.objects != atomic_load(&m->nobjects))
			rc = mi_info_put(m, txn, "objects", u.objects);
	}
	if (rc) {
		commit_failed(m, i, b->n, rc);
		goto out_abort_txn;
	}
	rc = mi_lmdb_errno(mdb_txn_commit(txn)); /* frees txn either way */
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
