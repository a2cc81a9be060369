/* objects: object versions in memory (engine thread): cache files, presence, open handles, the
 * readers waiting for blocks, and which blocks to fetch next (demand first, then prefetch of
 * objects that are clearly being loaded). */
#include "cached/daemon.h"
#include "cached/obj.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"

#define OPEN_WAITS_MAX 64 /* OPENs one mount may have waiting for complete objects */

static uint64_t hash_key(uint32_t bucket, const char *name, const char *version)
{
	uint64_t h = 1469598103934665603ULL ^ bucket;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const char *p = version; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return h;
}

/* Bytes of o's present blocks. */
static uint64_t present_bytes(const struct obj *o)
{
	uint64_t bytes = 0;

	for (uint32_t b = 0; b < o->nblocks; b++) {
		if (bit(o->present, b))
			bytes += block_bytes(o, b);
	}
	return bytes;
}

/* ---- lifetime ---- */

struct obj *obj_get(struct obj *o)
{
	atomic_fetch_add(&o->refs, 1);
	return o;
}

void obj_put(struct obj *o)
{
	if (atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	if (o->fd >= 0)
		close(o->fd);
	if (o->rfd >= 0)
		close(o->rfd);
	free(o->present);
	free(o->inflight);
	free(o->revoking);
	free(o->crcs);
	free(o);
}

int obj_fd(const struct obj *o)
{
	return o->fd;
}

uint64_t obj_id(const struct obj *o)
{
	return o->rec.id;
}

const struct meta_object *objects_record(const struct obj *o)
{
	return &o->rec;
}

int *objects_fetch_thread(struct obj *o)
{
	return &o->fetch_thread;
}

int objects_fetching(const struct obj *o)
{
	return o->fetching;
}

struct store *objects_store(const struct obj *o)
{
	return o->store;
}

int objects_init(struct daemon *d)
{
	d->objs = calloc(1, sizeof(*d->objs));
	if (!d->objs)
		return -ENOMEM;
	meta_usage(d->meta, &d->objs->bytes_cached, NULL);
	return 0;
}

uint64_t objects_bytes_cached(struct daemon *d)
{
	return d->objs->bytes_cached;
}

static void idle_unlink(struct objtab *t, struct obj *o)
{
	if (!o->idle)
		return;
	if (o->idle_prev)
		o->idle_prev->idle_next = o->idle_next;
	else
		t->idle_head = o->idle_next;
	if (o->idle_next)
		o->idle_next->idle_prev = o->idle_prev;
	else
		t->idle_tail = o->idle_prev;
	o->idle_prev = o->idle_next = NULL;
	o->idle = false;
	t->nidle--;
}

static void table_remove(struct daemon *d, struct obj *o)
{
	struct objtab *t = d->objs;
	struct obj **pp;

	if (!o->in_table)
		return;
	idle_unlink(t, o);
	obj_stop_loading(d, o); /* a removed object must not keep fetching into its old file */
	for (pp = &t->by_id[o->rec.id % TABLE_SIZE]; *pp; pp = &(*pp)->id_next) {
		if (*pp == o) {
			*pp = o->id_next;
			break;
		}
	}
	for (pp = &t->by_key[hash_key(o->rec.bucket_id, o->rec.name, o->rec.version) % TABLE_SIZE];
	     *pp; pp = &(*pp)->key_next) {
		if (*pp == o) {
			*pp = o->key_next;
			break;
		}
	}
	o->in_table = false;
	bucket_put(d, o->bk);
	o->bk = NULL;
	obj_put(o);
}

/* Puts an object that nobody uses on the idle list, trimming the list to d->idle_keep (sized
 * from the descriptor limit: each holds two). */
void obj_maybe_idle(struct daemon *d, struct obj *o)
{
	struct objtab *t = d->objs;

	if (!o->in_table || o->idle || o->opens || o->fetching || o->waiters || o->open_waits)
		return;
	o->idle = true;
	o->idle_prev = t->idle_tail;
	o->idle_next = NULL;
	if (t->idle_tail)
		t->idle_tail->idle_next = o;
	else
		t->idle_head = o;
	t->idle_tail = o;
	t->nidle++;
	while (t->nidle > (d->idle_keep ? d->idle_keep : 4096))
		table_remove(d, t->idle_head);
}

void objects_fini(struct daemon *d)
{
	struct objtab *t = d->objs;

	if (!t)
		return;
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		while (t->by_id[i]) {
			struct obj *o = t->by_id[i];

			while (o->waiters) {
				struct waiter *w = o->waiters;

				o->waiters = w->next;
				free(w);
			}
			while (o->open_waits) {
				struct open_wait *ow = o->open_waits;

				o->open_waits = ow->next;
				conn_put(ow->c);
				free(ow);
			}
			table_remove(d, o);
		}
	}
	free(t);
	d->objs = NULL;
}

static struct obj *find_by_key(struct daemon *d, uint32_t bucket, const char *name,
			       const char *version)
{
	for (struct obj *o = d->objs->by_key[hash_key(bucket, name, version) % TABLE_SIZE]; o;
	     o = o->key_next) {
		if (o->rec.bucket_id == bucket && strcmp(o->rec.name, name) == 0 &&
		    strcmp(o->rec.version, version) == 0)
			return o;
	}
	return NULL;
}

/* Finds a resident object by id (engine). */
struct obj *objects_find_id(struct daemon *d, uint64_t id)
{
	for (struct obj *o = d->objs->by_id[id % TABLE_SIZE]; o; o = o->id_next) {
		if (o->rec.id == id)
			return o;
	}
	return NULL;
}

static void file_name(uint64_t id, char *out, size_t n)
{
	snprintf(out, n, "%016" PRIx64, id);
}

/* Opens (or creates) the cache file of `o`. Sets *fresh when the file had to be created, in which
 * case no recorded presence can be trusted. */
static int open_files(struct daemon *d, struct obj *o, bool *fresh)
{
	char name[32];
	struct stat st;

	file_name(o->rec.id, name, sizeof(name));
	*fresh = false;
	o->fd = openat(d->objects_dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (o->fd < 0 && errno == ENOENT) {
		*fresh = true;
		o->fd = openat(d->objects_dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			       0600);
	}
	if (o->fd < 0)
		return -errno;
	if (fstat(o->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -EIO;
	if ((uint64_t)st.st_size != o->rec.size && ftruncate(o->fd, (off_t)o->rec.size) < 0)
		return -errno;
	o->rfd = openat(d->objects_dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (o->rfd < 0)
		return -errno;
	return 0;
}

/* Loads or creates the object version described by `so` in bucket `bk`. */
static int obj_load(struct daemon *d, struct bucket *bk, const struct store_object *so,
		    struct obj **out)
{
	struct objtab *t = d->objs;
	size_t mapsz;
	bool fresh, known;
	struct obj *o;
	int rc;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	atomic_init(&o->refs, 1);
	o->fd = o->rfd = -1;
	rc = meta_object_find(d->meta, bk->id, so->name, so->version, &o->rec);
	known = rc == 0;
	if (rc && rc != -ENOENT)
		goto out_free;
	if (known && evict_pending(d, o->rec.id)) {
		/* Evicted, its removal not committed yet: its bytes no longer count and its file is
		 * gone. The version starts over under a new id (the old record goes with its
		 * removal; the name index then points at the new one). */
		known = false;
		memset(&o->rec, 0, sizeof(o->rec));
	}
	if (!known) {
		o->rec.id = meta_new_object_id(d->meta);
		o->rec.bucket_id = bk->id;
		o->rec.size = so->size;
		o->rec.mtime_sec = so->mtime_sec;
		o->rec.mtime_nsec = so->mtime_nsec;
		if (so->has_crc32c) {
			o->rec.crc32c = so->crc32c;
			o->rec.flags |= META_OBJ_HAS_CRC32C;
		}
		if (so->has_md5) {
			memcpy(o->rec.md5, so->md5, 16);
			o->rec.flags |= META_OBJ_HAS_MD5;
		}
		o->rec.last_access = daemon_now();
		snprintf(o->rec.version, sizeof(o->rec.version), "%s", so->version);
		snprintf(o->rec.name, sizeof(o->rec.name), "%s", so->name);
	}
	o->nblocks = (uint32_t)((o->rec.size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);
	mapsz = (o->nblocks + 7) / 8 + 1;
	o->present = calloc(1, mapsz);
	o->inflight = calloc(1, mapsz);
	o->revoking = calloc(1, mapsz);
	o->crcs = calloc((size_t)o->nblocks + 1, sizeof(uint32_t));
	if (!o->present || !o->inflight || !o->revoking || !o->crcs) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = open_files(d, o, &fresh);
	if (rc) {
		log_error("cache file of object %" PRIu64 " (%s): %s", o->rec.id, o->rec.name,
			  strerror(-rc));
		goto out_free;
	}
	if (known) {
		rc = meta_blocks_load(d->meta, o->rec.id, o->nblocks, o->present, o->crcs,
				      &o->npresent);
		if (rc)
			goto out_free;
	}
	if (known && fresh && o->npresent) {
		/* The record survived but the file did not: start over with no blocks. */
		log_warn("cache file of %s vanished; its %u cached blocks are dropped", o->rec.name,
			 o->npresent);
		objects_account(d, -(int64_t)present_bytes(o));
		memset(o->present, 0, mapsz);
		o->npresent = 0;
		writer_clear_blocks(d, o->rec.id, 0, o->nblocks);
	}
	if (!known || fresh)
		writer_put_object(d, &o->rec);
	pthread_mutex_lock(&d->buckets_lock);
	bk->refs++;
	pthread_mutex_unlock(&d->buckets_lock);
	o->bk = bk;
	o->store = bk->store;
	o->id_next = t->by_id[o->rec.id % TABLE_SIZE];
	t->by_id[o->rec.id % TABLE_SIZE] = o;
	{
		uint64_t h = hash_key(o->rec.bucket_id, o->rec.name, o->rec.version) % TABLE_SIZE;

		o->key_next = t->by_key[h];
		t->by_key[h] = o;
	}
	o->in_table = true;
	*out = o;
	return 0;
out_free:
	obj_put(o);
	return rc;
}

/* ---- handles ---- */

static int handle_alloc(struct conn *c, struct obj *o, uint32_t *out)
{
	uint32_t h;

	if (c->free_handle) {
		h = c->free_handle;
		c->free_handle = c->handles[h - 1].next_free;
	} else {
		if (c->nhandles == c->handle_cap) {
			uint32_t cap = c->handle_cap ? c->handle_cap * 2 : 64;
			struct handle *nh = realloc(c->handles, cap * sizeof(*nh));

			if (!nh)
				return -ENOMEM;
			c->handles = nh;
			c->handle_cap = cap;
		}
		h = ++c->nhandles;
	}
	c->handles[h - 1].obj = o;
	c->handles[h - 1].next_free = 0;
	c->handles[h - 1].pinned = false;
	*out = h;
	return 0;
}

static struct obj *handle_obj(struct conn *c, uint32_t h)
{
	if (h == 0 || h > c->nhandles)
		return NULL;
	return c->handles[h - 1].obj;
}

static void handle_release(struct conn *c, uint32_t h)
{
	if (c->handles[h - 1].pinned) {
		c->handles[h - 1].obj->pins--;
		c->handles[h - 1].pinned = false;
	}
	c->handles[h - 1].obj = NULL;
	c->handles[h - 1].next_free = c->free_handle;
	c->free_handle = h;
}

int obj_find_or_load(struct daemon *d, struct bucket *bk, const struct store_object *so,
		     struct obj **out)
{
	struct obj *o = find_by_key(d, bk->id, so->name, so->version);
	int rc;

	if (!o) {
		rc = obj_load(d, bk, so, &o);
		if (rc)
			return rc;
	}
	idle_unlink(d->objs, o);
	*out = o;
	return 0;
}

/* Answers OPEN `seq` of conn c with a new handle on o (pinned when asked for and complete). */
static void open_reply(struct daemon *d, struct conn *c, uint32_t seq, uint32_t flags,
		       struct obj *o)
{
	struct proto_open_reply rep = { 0 };
	struct iovec iov[2];
	uint32_t h;
	int rc;

	if (atomic_load(&c->dead) || !c->registered) {
		obj_maybe_idle(d, o);
		return;
	}
	if (sizeof(rep) + (o->nblocks + 7) / 8 > PROTO_MSG_MAX - sizeof(struct proto_hdr)) {
		rc = -EFBIG; /* over ~2 TiB: its presence map does not fit one message */
		goto fail;
	}
	rc = handle_alloc(c, o, &h);
	if (rc)
		goto fail;
	o->opens++;
	c->opens++;
	atomic_fetch_add(&d->st.opens, 1);
	rep.handle = h;
	rep.nblocks = o->nblocks;
	rep.object_id = o->rec.id;
	rep.size = o->rec.size;
	if ((flags & PROTO_OPEN_F_PIN) && o->npresent == o->nblocks && !o->bad && !o->revokes) {
		/* Complete and checked: the mount may hand the file to the kernel (passthrough),
		 * so its bytes must stay as they are until this handle closes. */
		c->handles[h - 1].pinned = true;
		o->pins++;
		rep.flags |= PROTO_OPENR_PINNED;
		atomic_fetch_add(&d->st.pinned_opens, 1);
	}
	iov[0].iov_base = &rep;
	iov[0].iov_len = sizeof(rep);
	iov[1].iov_base = o->present;
	iov[1].iov_len = (o->nblocks + 7) / 8;
	rc = conn_replyv(c, PROTO_OPEN, 0, seq, 0, iov, 2, &o->rfd, 1);
	if (rc) {
		/* The mount never learnt of this handle. */
		handle_release(c, h);
		o->opens--;
		c->opens--;
		obj_maybe_idle(d, o);
	}
	return;
fail:
	obj_maybe_idle(d, o);
	log_warn("open of %s for mount %" PRIu64 " failed: %s", o->rec.name, c->mount_id,
		 strerror(-rc));
	conn_reply(c, PROTO_OPEN, seq, rc, NULL, 0, NULL, 0);
}

/* Whether OPEN r of o should wait until o is complete: asked for, incomplete, fetchable whole
 * (small enough next to --open-wait-max and the cache), and few such opens from this mount. */
static bool open_should_wait(struct daemon *d, const struct open_req *r, const struct obj *o)
{
	uint64_t limit = evict_limit(d);

	return (r->flags & PROTO_OPEN_F_PIN) && (r->flags & PROTO_OPEN_F_WAIT) &&
	       PROTO_OPEN_WAIT_SECS(r->flags) > 0 && o->npresent < o->nblocks && !o->bad &&
	       !o->gone && o->rec.size <= d->cfg.open_wait_max && o->rec.size <= limit / 2 &&
	       r->c->open_waits < OPEN_WAITS_MAX;
}

/* Answers the waiting OPENs of o: all of them (complete, or fetching failed), or those past
 * their deadline (`expired_only`). Unpinned if o is still incomplete. */
static void open_waits_finish(struct daemon *d, struct obj *o, bool expired_only)
{
	uint64_t now = daemon_mono_ms();

	for (struct open_wait **pp = &o->open_waits; *pp;) {
		struct open_wait *ow = *pp;

		if (expired_only && ow->deadline_ms > now) {
			pp = &ow->next;
			continue;
		}
		*pp = ow->next;
		ow->c->open_waits--;
		if (o->npresent < o->nblocks)
			atomic_fetch_add(&d->st.open_waits_expired, 1);
		open_reply(d, ow->c, ow->seq, ow->flags, o);
		conn_put(ow->c);
		free(ow);
	}
	obj_maybe_idle(d, o);
}

void objects_open(struct daemon *d, struct open_req *r)
{
	struct conn *c = r->c;
	struct open_wait *ow;
	struct obj *o;
	int rc;

	if (atomic_load(&c->dead) || !c->registered)
		return;
	if (c->opens >= d->cfg.max_opens) {
		rc = -EMFILE;
		goto fail;
	}
	rc = obj_find_or_load(d, r->bk, &r->so, &o);
	if (rc) {
		log_warn("open of %s for mount %" PRIu64 " failed: %s", r->so.name, c->mount_id,
			 strerror(-rc));
		goto fail;
	}
	if (open_should_wait(d, r, o) && (ow = calloc(1, sizeof(*ow)))) {
		/* Fetch it whole now; the OPEN is answered once it is complete (pinned). */
		uint64_t secs = PROTO_OPEN_WAIT_SECS(r->flags);

		ow->c = conn_get(c);
		ow->seq = r->seq;
		ow->flags = r->flags;
		ow->deadline_ms = daemon_mono_ms() + secs * 1000;
		ow->next = o->open_waits;
		o->open_waits = ow;
		c->open_waits++;
		atomic_fetch_add(&d->st.open_waits, 1);
		obj_loading(d, o, 0, true);
		objects_pump(d);
		return;
	}
	open_reply(d, c, r->seq, r->flags, o);
	return;
fail:
	conn_reply(c, PROTO_OPEN, r->seq, rc, NULL, 0, NULL, 0);
}

/* Evicts a doomed object once nobody uses it (inspect evict of an open object). */
static void doom_check(struct daemon *d, struct obj *o)
{
	if (o->doomed && o->in_table && o->opens == 0 && o->fetching == 0 && !o->waiters &&
	    !o->revokes)
		evict_now(d, o->rec.id);
}

void obj_closed(struct daemon *d, struct obj *o)
{
	o->opens--;
	if (o->opens == 0) {
		o->rec.last_access = daemon_now();
		writer_touch(d, o->rec.id, o->rec.last_access);
		obj_maybe_idle(d, o);
		doom_check(d, o);
	}
}

/* Removes conn c's waiters on o (all of them when only_handle is 0). */
static void drop_waiters(struct conn *c, struct obj *o, uint32_t only_handle)
{
	for (struct waiter **pp = &o->waiters; *pp;) {
		struct waiter *w = *pp;

		if (w->c == c && (!only_handle || w->handle == only_handle)) {
			*pp = w->next;
			c->waiting--;
			if (w->prefetch)
				c->prefetch_bytes -= w->len;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

int objects_close(struct daemon *d, struct conn *c, uint32_t h)
{
	struct obj *o = handle_obj(c, h);

	if (!o)
		return -EBADF;
	drop_waiters(c, o, h);
	if (o->revokes)
		revoke_handle_gone(d, c, h, o);
	handle_release(c, h);
	c->opens--;
	obj_closed(d, o);
	return 0;
}

void objects_conn_gone(struct daemon *d, struct conn *c)
{
	revoke_conn_gone(d, c);
	for (uint32_t h = 1; h <= c->nhandles; h++) {
		struct obj *o = c->handles[h - 1].obj;

		if (!o)
			continue;
		drop_waiters(c, o, 0);
		handle_release(c, h);
		c->opens--;
		obj_closed(d, o);
	}
	free(c->handles);
	c->handles = NULL;
	c->nhandles = c->handle_cap = c->free_handle = 0;
}

/* ---- scheduling ---- */

struct obj *objects_largest_open(struct daemon *d)
{
	struct obj *best = NULL;

	for (size_t i = 0; i < TABLE_SIZE; i++) {
		for (struct obj *o = d->objs->by_id[i]; o; o = o->id_next) {
			if (o->opens && !o->pins && o->npresent &&
			    (!best || o->npresent > best->npresent) && !o->revokes)
				best = o;
		}
	}
	return best;
}

uint32_t objects_nblocks(const struct obj *o)
{
	return o->nblocks;
}

bool objects_block_present(const struct obj *o, uint32_t b)
{
	return b < o->nblocks && bit(o->present, b);
}

int objects_pinned_handle(struct conn *c, uint32_t h, uint64_t *id)
{
	struct obj *o = handle_obj(c, h);

	if (!o)
		return -EBADF;
	if (!c->handles[h - 1].pinned)
		return -EPERM;
	*id = o->rec.id;
	return 0;
}

bool objects_pinned(const struct obj *o)
{
	return o->pins > 0;
}

void objects_doom(struct daemon *d, struct obj *o)
{
	o->doomed = true;
	doom_check(d, o);
}

void objects_tick(struct daemon *d)
{
	struct obj *waiting = NULL;

	for (size_t i = 0; i < TABLE_SIZE; i++) {
		for (struct obj *o = d->objs->by_id[i]; o; o = o->id_next) {
			if (o->revokes)
				revoke_tick(d, o);
			if (o->open_waits) {
				/* answered below: replying may trim the table we walk */
				o->tick_next = waiting;
				waiting = obj_get(o);
			}
		}
	}
	while (waiting) {
		struct obj *o = waiting;

		waiting = o->tick_next;
		open_waits_finish(d, o, true);
		obj_put(o);
	}
}

/* Asks again for the blocks waiters still miss (after a revocation ended). */
void obj_reschedule_waiters(struct daemon *d, struct obj *o)
{
	for (struct waiter *w = o->waiters; w; w = w->next)
		plan_fetch_range(d, o, w->b0, w->b1,
				 (uint32_t)(PLAN_DEMAND_MAX >> PROTO_BLOCK_SHIFT), true, 0);
}

/* ---- submissions ---- */

void objects_submit(struct daemon *d, struct conn *c, const struct ring_entry *e)
{
	struct ring_entry done = { .id = e->id, .handle = e->handle, .off = e->off, .len = e->len };
	struct obj *o = handle_obj(c, e->handle);
	bool prefetch = e->op == RING_PREFETCH;
	uint32_t b0, b1, b;
	struct waiter *w;

	if (e->op == RING_REVOKE_ACK) {
		if (o)
			revoke_ack(d, c, o, e);
		return;
	}
	if (!o) {
		/* A handle closed a moment ago (a late prefetch): answered, not held against it. */
		struct ring_entry err = { .id = e->id, .op = RING_ERROR, .status = -EBADF };

		conn_complete(d, c, &err);
		return;
	}
	if (e->len == 0 || e->off >= o->rec.size || e->len > o->rec.size - e->off ||
	    (!prefetch && e->len > PLAN_DEMAND_MAX)) {
		server_bad_entry(d, c, e->id, -EINVAL);
		return;
	}
	if (prefetch)
		atomic_fetch_add(&d->st.prefetch_requests, 1);
	else
		atomic_fetch_add(&d->st.fetch_requests, 1);
	b0 = (uint32_t)(e->off >> PROTO_BLOCK_SHIFT);
	b1 = (uint32_t)((e->off + e->len - 1) >> PROTO_BLOCK_SHIFT) + 1;
	for (b = b0; b < b1 && bit(o->present, b); b++)
		;
	if (b == b1) {
		done.op = RING_PRESENT;
		if (!prefetch)
			atomic_fetch_add(&d->st.fetch_hits, 1);
		conn_complete(d, c, &done);
		return;
	}
	if (o->gone || o->bad) {
		done.op = RING_ERROR;
		done.status = o->gone ? -ESTALE : -EIO;
		conn_complete(d, c, &done);
		return;
	}
	if (c->waiting >= d->cfg.max_waiting ||
	    (prefetch && c->prefetch_bytes + e->len > d->cfg.max_prefetch_bytes)) {
		done.op = RING_ERROR;
		done.status = -EBUSY;
		conn_complete(d, c, &done);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		done.op = RING_ERROR;
		done.status = -ENOMEM;
		conn_complete(d, c, &done);
		return;
	}
	w->c = c;
	w->id = e->id;
	w->handle = e->handle;
	w->off = e->off;
	w->len = e->len;
	w->b0 = b0;
	w->b1 = b1;
	w->prefetch = prefetch;
	w->next = o->waiters;
	o->waiters = w;
	c->waiting++;
	if (prefetch)
		c->prefetch_bytes += e->len;
	for (b = b0; b < b1; b++) {
		if (bit(o->inflight, b)) {
			atomic_fetch_add(&d->st.dedup_waits, 1);
			break;
		}
	}
	idle_unlink(d->objs, o);
	plan_demand(d, o, b0, b1, prefetch);
}

/* ---- completions from fetches ---- */

/* Answers waiters whose blocks are all present now; waiters that still miss blocks hear about
 * the newly present part of their range [nb0, nb0+nn) at once (RING_F_PARTIAL), so a reader
 * waiting on one block of a large prefetch need not wait for all of it. */
static void wake_waiters(struct daemon *d, struct obj *o, uint32_t nb0, uint32_t nn)
{
	for (struct waiter **pp = &o->waiters; *pp;) {
		struct waiter *w = *pp;
		struct ring_entry e = { .id = w->id, .handle = w->handle, .op = RING_PRESENT };
		uint32_t b = w->b0;

		while (b < w->b1 && bit(o->present, b))
			b++;
		if (b < w->b1) {
			uint32_t lo = nb0 > w->b0 ? nb0 : w->b0;
			uint32_t hi = nb0 + nn < w->b1 ? nb0 + nn : w->b1;

			if (lo < hi) {
				uint64_t s = (uint64_t)lo << PROTO_BLOCK_SHIFT;
				uint64_t t = (uint64_t)hi << PROTO_BLOCK_SHIFT;

				e.off = s > w->off ? s : w->off;
				e.len = (t < w->off + w->len ? t : w->off + w->len) - e.off;
				e.flags = RING_F_PARTIAL;
				conn_complete(d, w->c, &e);
			}
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		e.off = w->off;
		e.len = w->len;
		w->c->waiting--;
		if (w->prefetch)
			w->c->prefetch_bytes -= w->len;
		conn_complete(d, w->c, &e);
		free(w);
	}
}

/* For GCS objects, compares the combined block crc32c with the store's once all blocks are in. */
static bool whole_object_ok(struct obj *o)
{
	uint32_t crc = 0;

	if (!(o->rec.flags & META_OBJ_HAS_CRC32C) || o->rec.size == 0)
		return true;
	for (uint32_t b = 0; b < o->nblocks; b++)
		crc = crc32c_combine(crc, o->crcs[b], block_bytes(o, b));
	return crc == o->rec.crc32c;
}

void obj_drop_blocks(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n)
{
	for (uint32_t b = b0; b < b0 + n && b < o->nblocks; b++) {
		if (bit(o->present, b)) {
			bit_clear(o->present, b);
			o->npresent--;
			objects_account(d, -(int64_t)block_bytes(o, b));
		}
	}
	writer_clear_blocks(d, o->rec.id, b0, n);
}

/* Fails every waiter that needs one of blocks [b0, b0+n). */
static void fail_waiters(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n, int status)
{
	for (struct waiter **pp = &o->waiters; *pp;) {
		struct waiter *w = *pp;
		struct ring_entry e = { .id = w->id,
					.handle = w->handle,
					.off = w->off,
					.len = w->len,
					.op = RING_ERROR,
					.status = status };

		if (!(w->b0 < b0 + n && b0 < w->b1)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->c->waiting--;
		if (w->prefetch)
			w->c->prefetch_bytes -= w->len;
		conn_complete(d, w->c, &e);
		free(w);
	}
}

void objects_blocks_done(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n,
			 const uint32_t *crcs)
{
	uint64_t added = 0;
	uint32_t end = b0 + n < o->nblocks ? b0 + n : o->nblocks;

	for (uint32_t b = b0; b < end; b++)
		bit_clear(o->inflight, b);
	if (!o->in_table)
		return; /* evicted meanwhile: its file is gone, nothing counts */
	for (uint32_t b = b0; b < end; b++) {
		if (bit(o->revoking, b))
			continue; /* about to be punched: these bytes do not count */
		o->crcs[b] = crcs[b - b0];
		if (!bit(o->present, b)) {
			bit_set(o->present, b);
			o->npresent++;
			added += block_bytes(o, b);
		}
	}
	objects_account(d, (int64_t)added);
	atomic_fetch_add(&d->st.blocks_fetched, n);
	atomic_fetch_add(&d->st.bytes_fetched, added);
	if (o->npresent == o->nblocks && !whole_object_ok(o)) {
		log_error("object %s version %s: the crc32c of the whole object does not match the "
			  "store's; its cached blocks are dropped and reads of it fail",
			  o->rec.name, o->rec.version);
		o->bad = true;
		obj_stop_loading(d, o);
		fail_waiters(d, o, 0, o->nblocks, -EIO);
		objects_revoke(d, o, 0, o->nblocks, NULL, NULL);
		if (o->watches)
			jobs_failed(d, o, -EIO);
		open_waits_finish(d, o, false);
		return;
	}
	if (o->open_waits && o->npresent == o->nblocks)
		open_waits_finish(d, o, false);
	/* Record and announce only what is present now, in runs (revoked blocks are not). */
	for (uint32_t b = b0; b < end;) {
		uint32_t e;

		if (!bit(o->present, b)) {
			b++;
			continue;
		}
		e = b + 1;
		while (e < end && bit(o->present, e))
			e++;
		writer_blocks(d, o, b, e - b, crcs + (b - b0));
		wake_waiters(d, o, b, e - b);
		b = e;
	}
	if (o->npresent == o->nblocks && (o->rec.flags & META_OBJ_HAS_CRC32C) &&
	    !(o->rec.flags & META_OBJ_VERIFIED)) {
		o->rec.flags |= META_OBJ_VERIFIED;
		writer_put_object(d, &o->rec);
	}
	if (o->watches && added)
		jobs_progress(d, o, added);
	if (added && d->objs->bytes_cached > evict_limit(d))
		evict_run(d, 0);
}

/* Called when a GET ended (after its blocks were reported): frees its slot. */
void objects_fetch_ended(struct daemon *d, struct obj *o)
{
	o->fetching--;
	if (o->revokes)
		revoke_fetch_ended(d, o);
	obj_maybe_idle(d, o);
	doom_check(d, o);
	plan_fetch_ended(d, o);
}

void objects_blocks_failed(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n, int status)
{
	for (uint32_t b = b0; b < b0 + n && b < o->nblocks; b++)
		bit_clear(o->inflight, b);
	if (status == -ENOSPC && o->enospc_retries++ < 3) {
		log_warn("cache file system full: evicting and retrying");
		evict_run(d, (uint64_t)n << PROTO_BLOCK_SHIFT);
		if (o->waiters)
			plan_fetch_range(d, o, b0, b0 + n, n, true, 0);
		return;
	}
	if (status == -ESTALE) {
		log_warn("%s version %s is gone from the store; cached bytes still serve open "
			 "files, the rest fails with EIO",
			 o->rec.name, o->rec.version);
		o->gone = true;
	}
	/* A loading object whose GETs fail is not retried in a loop: readers ask again. */
	obj_stop_loading(d, o);
	if (o->watches)
		jobs_failed(d, o, status);
	fail_waiters(d, o, b0, n, status);
	open_waits_finish(d, o, false); /* the mount reads what it can, errors come with reads */
}

void objects_writeback_failed(struct daemon *d, uint64_t id, uint32_t b, uint32_t n)
{
	struct obj *o = objects_find_id(d, id);

	atomic_fetch_add(&d->st.writeback_errors, 1);
	/* Linux reports a writeback error once: pages written earlier may be lost too. Take the
	 * whole object back from the mounts; it is fetched again. */
	if (o && o->in_table)
		objects_revoke(d, o, 0, o->nblocks, NULL, NULL);
	(void)b;
	(void)n;
}

/* ---- for eviction and inspect ---- */

/* Whether object `id` may be removed now: not resident, or resident with no opens, fetches or
 * waiters (engine). */
bool objects_evictable(struct daemon *d, uint64_t id)
{
	struct obj *o = objects_find_id(d, id);

	return !o || (o->opens == 0 && o->fetching == 0 && !o->waiters && !o->revokes &&
		      !o->watches && !o->open_waits && !o->loading);
}

/* Forgets a resident object that is being evicted, returning the bytes it had (engine). */
uint64_t objects_forget(struct daemon *d, uint64_t id)
{
	struct obj *o = objects_find_id(d, id);
	uint64_t bytes;

	if (!o)
		return 0;
	bytes = present_bytes(o);
	table_remove(d, o);
	return bytes;
}

void objects_account(struct daemon *d, int64_t delta)
{
	uint64_t *used = &d->objs->bytes_cached;
	uint64_t mag = delta < 0 ? (uint64_t)0 - (uint64_t)delta : (uint64_t)delta;

	if (delta < 0 && mag > *used) {
		/* A bug: bytes subtracted that were never counted (or counted away twice). An
		 * underflow would read as "far over the limit" and evict everything. */
		log_error("accounting error: removing %" PRIu64 " bytes from a count of %" PRIu64
			  "; the count is set to 0",
			  mag, *used);
		atomic_fetch_add(&d->st.accounting_errors, 1);
		*used = 0;
	} else if (delta > 0 && mag > UINT64_MAX - *used) {
		log_error("accounting error: adding %" PRIu64 " bytes to a count of %" PRIu64, mag,
			  *used);
		atomic_fetch_add(&d->st.accounting_errors, 1);
		*used = UINT64_MAX;
	} else {
		*used = delta < 0 ? *used - mag : *used + mag;
	}
}

struct recount {
	struct daemon *d;
	uint64_t objects, bytes;
};

int objects_stored_bytes(struct daemon *d, const struct meta_object *r, uint64_t *bytes)
{
	uint32_t nblocks = (uint32_t)((r->size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);
	uint8_t *map;
	int err;

	*bytes = 0;
	if (!nblocks)
		return 0;
	map = calloc(1, (nblocks + 7) / 8 + 1);
	if (!map)
		return -ENOMEM;
	err = meta_blocks_load(d->meta, r->id, nblocks, map, NULL, NULL);
	for (uint32_t b = 0; !err && b < nblocks; b++) {
		if (bit(map, b)) {
			uint64_t s = (uint64_t)b << PROTO_BLOCK_SHIFT;

			*bytes += s + PROTO_BLOCK_SIZE > r->size ? r->size - s : PROTO_BLOCK_SIZE;
		}
	}
	free(map);
	return err;
}

static int recount_fn(void *ctx, const struct meta_object *r)
{
	struct recount *rc = ctx;
	uint64_t bytes;
	int err;

	if (objects_find_id(rc->d, r->id) || evict_pending(rc->d, r->id))
		return 0;
	err = objects_stored_bytes(rc->d, r, &bytes);
	if (err)
		return err;
	rc->objects++;
	rc->bytes += bytes;
	return 0;
}

/* Recounts the cached bytes from the objects themselves (engine; blocks on LMDB reads): resident
 * objects by their presence in memory, the others by their blocks in LMDB, minus the records
 * whose removal is not committed yet. Meaningful once the writer has committed what was queued
 * before (a barrier): blocks of objects no longer resident must have reached LMDB. */
int objects_recount(struct daemon *d, struct objects_count *out)
{
	struct objtab *t = d->objs;
	struct recount rc = { .d = d };
	int err;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		for (struct obj *o = t->by_id[i]; o; o = o->id_next) {
			out->resident_objects++;
			out->resident_bytes += present_bytes(o);
		}
	}
	err = meta_object_scan(d->meta, recount_fn, &rc);
	out->stored_objects = rc.objects;
	out->stored_bytes = rc.bytes;
	out->counted = t->bytes_cached;
	meta_usage(d->meta, &out->meta_bytes, NULL);
	return err;
}

/* Presence of a resident object for inspect: copies up to `max` bits. Returns -ENOENT when the
 * object is not resident (the caller reads LMDB). */
int objects_presence(struct daemon *d, uint64_t id, uint8_t *bitmap, uint32_t nblocks,
		     uint32_t *present, int *opens)
{
	struct obj *o = objects_find_id(d, id);

	if (!o)
		return -ENOENT;
	if (bitmap && nblocks)
		memcpy(bitmap, o->present,
		       (size_t)((nblocks < o->nblocks ? nblocks : o->nblocks) + 7) / 8);
	*present = o->npresent;
	*opens = o->opens;
	return 0;
}
