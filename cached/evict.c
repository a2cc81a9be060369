/* evict: keeps cached bytes under the limit by removing whole objects that no mount has open,
 * least recently closed first (engine thread). A removed file that a mount still holds keeps its
 * bytes valid until that descriptor closes: eviction never punches what a reader may read. */
#include "cached/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/idset.h"
#include "common/log.h"
#include "common/num.h"

/* Evicted objects whose removal from LMDB is not committed yet. Their records (and blocks) are
 * still in LMDB but their bytes no longer count in bytes_cached: objects.c must not load such a
 * record as a cached object (it would find no file and subtract the bytes a second time). An id
 * leaves the set when the writer has committed its removal (a barrier behind the removals); if
 * that commit fails for good the id stays for the daemon's life, and after a restart the record
 * counts again and its missing file is noticed at the next open. */
struct evictor {
	uint64_t limit;
	uint64_t fs_free;
	uint64_t fs_size;
	uint64_t last_empty_ms; /* when a scan last found nothing to evict */
	bool warned;
	struct idset removing;	   /* evicted, removal not committed */
	struct removal *unflushed; /* ids evicted since the last barrier */
	struct removal *waiting;   /* barriers queued, not yet run (freed by evict_fini) */
};

/* A batch of evicted ids waiting for the commit of their removals (a writer barrier). */
struct removal {
	struct task t;
	struct removal *next; /* evictor.waiting */
	int status;
	size_t n, cap;
	uint64_t ids[];
};

static void refresh_limit(struct daemon *d)
{
	struct evictor *ev = d->ev;
	uint64_t cached = objects_bytes_cached(d), limit, floor_room;
	struct statvfs sv;

	if (statvfs(d->cfg.cache_dir, &sv) < 0) {
		log_warn("statvfs %s: %s", d->cfg.cache_dir, strerror(errno));
		return;
	}
	ev->fs_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	ev->fs_size = (uint64_t)sv.f_blocks * sv.f_frsize;
	/* min(--cache-size, 0.9 x (free + cached)), and always 5% of the file system free. */
	limit = (ev->fs_free + cached) / 10 * 9;
	if (d->cfg.cache_size && d->cfg.cache_size < limit)
		limit = d->cfg.cache_size;
	floor_room = ev->fs_free + cached > ev->fs_size / 20
			     ? ev->fs_free + cached - ev->fs_size / 20
			     : 0;
	if (limit > floor_room)
		limit = floor_room;
	ev->limit = limit;
}

int evict_init(struct daemon *d)
{
	d->ev = calloc(1, sizeof(*d->ev));
	if (!d->ev)
		return -ENOMEM;
	refresh_limit(d);
	return 0;
}

void evict_fini(struct daemon *d)
{
	if (!d->ev)
		return;
	free(d->ev->unflushed);
	/* Barriers the writer answered after the engine stopped: their tasks never ran. */
	while (d->ev->waiting) {
		struct removal *r = d->ev->waiting;

		d->ev->waiting = r->next;
		free(r);
	}
	idset_free(&d->ev->removing);
	free(d->ev);
	d->ev = NULL;
}

uint64_t evict_limit(struct daemon *d)
{
	return d->ev->limit;
}

static bool pending(struct evictor *ev, uint64_t id)
{
	return idset_has(&ev->removing, id);
}

/* Engine: the removals of r's ids are committed (or failed for good). */
static void removal_committed(struct daemon *d, struct task *t)
{
	struct removal *r = (struct removal *)t, **pp;

	for (pp = &d->ev->waiting; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	if (r->status) {
		log_error(
			"removing %zu evicted objects from the metadata failed (%s): their records "
			"stay until a restart, and they are not loaded again meanwhile",
			r->n, strerror(-r->status));
	} else {
		for (size_t i = 0; i < r->n; i++)
			idset_del(&d->ev->removing, r->ids[i]);
	}
	free(r);
}

/* Engine: queues one barrier behind the removals evicted since the last call. */
static void removals_flush(struct daemon *d)
{
	struct removal *r = d->ev->unflushed;

	if (!r)
		return;
	d->ev->unflushed = NULL;
	r->next = d->ev->waiting;
	d->ev->waiting = r;
	r->t.fn = removal_committed;
	writer_barrier(d, &r->t, &r->status);
}

/* Engine: id's removal is queued. Returns -ENOMEM (nothing changed) if it cannot be tracked. */
static int pending_add(struct evictor *ev, uint64_t id)
{
	struct removal *r = ev->unflushed;

	if (!r || r->n == r->cap) {
		size_t cap = r ? r->cap * 2 : 64;
		struct removal *nr = realloc(r, sizeof(*r) + cap * sizeof(r->ids[0]));

		if (!nr)
			return -ENOMEM;
		if (!r)
			nr->n = 0;
		nr->cap = cap;
		ev->unflushed = r = nr;
	}
	if (idset_add(&ev->removing, id))
		return -ENOMEM;
	r->ids[r->n++] = id;
	return 0;
}

struct scan {
	struct daemon *d;
	uint64_t target; /* stop once cached bytes are at or below this */
	uint64_t freed;
	uint64_t only_id; /* evict just this object (inspect), 0 = by policy */
	bool force_all;	  /* evict every closed object (inspect evict --all) */
};

/* Removes one closed object: its file, its record, and its bytes from the count. */
static uint64_t evict_one(struct daemon *d, const struct meta_object *o)
{
	char name[32];
	uint64_t bytes;

	/* Tracked first: an object whose removal cannot be tracked is not evicted now. */
	if (pending_add(d->ev, o->id)) {
		log_warn("evicting %s: out of memory; it stays cached for now", o->name);
		return 0;
	}
	bytes = objects_forget(d, o->id);

	snprintf(name, sizeof(name), "%016" PRIx64, o->id);
	if (!bytes) /* not resident: what LMDB records (0 if it cannot be read) */
		(void)objects_stored_bytes(d, o, &bytes);
	if (unlinkat(d->objects_dirfd, name, 0) < 0 && errno != ENOENT)
		log_warn("evicting %s: unlink: %s", o->name, strerror(errno));
	writer_del_object(d, o->id);
	objects_account(d, -(int64_t)bytes);
	atomic_fetch_add(&d->st.evicted_objects, 1);
	atomic_fetch_add(&d->st.evicted_bytes, bytes);
	log_debug("evicted %s (version %s, %" PRIu64 " bytes)", o->name, o->version, bytes);
	return bytes;
}

static int scan_fn(void *ctx, const struct meta_object *o)
{
	struct scan *s = ctx;

	if (!s->force_all && !s->only_id && objects_bytes_cached(s->d) <= s->target)
		return 1;
	if (s->only_id && o->id != s->only_id)
		return 0;
	if (pending(s->d->ev, o->id) || !objects_evictable(s->d, o->id))
		return 0;
	s->freed += evict_one(s->d, o);
	return s->only_id ? 1 : 0;
}

uint64_t evict_now(struct daemon *d, uint64_t id)
{
	struct meta_object *rec = malloc(sizeof(*rec));
	uint64_t bytes = 0;

	if (!rec)
		return 0;
	if (meta_object_get(d->meta, id, rec) == 0 && !pending(d->ev, id))
		bytes = evict_one(d, rec);
	free(rec);
	removals_flush(d);
	return bytes;
}

/* Past the 5% free floor with only open objects left: take blocks back from the open object
 * holding the most, lowest blocks first (a loader reading front to back is done with them). */
static void shed_open_blocks(struct daemon *d, uint64_t want)
{
	struct obj *o = objects_largest_open(d);
	uint32_t b0 = 0, n = 0;
	uint64_t got = 0;

	if (!o)
		return;
	while (b0 < objects_nblocks(o) && !objects_block_present(o, b0))
		b0++;
	while (b0 + n < objects_nblocks(o) && got < want && objects_block_present(o, b0 + n)) {
		got += PROTO_BLOCK_SIZE;
		n++;
	}
	if (n) {
		log_warn(
			"cache file system below its 5%% free floor: revoking %u blocks of an open "
			"file",
			n);
		objects_revoke(d, o, b0, n, NULL, NULL);
	}
}

uint64_t evict_run(struct daemon *d, uint64_t want_free)
{
	struct evictor *ev = d->ev;
	struct scan s = { .d = d };
	uint64_t now = daemon_mono_ms();

	if (!want_free && ev->last_empty_ms && now - ev->last_empty_ms < 1000)
		return 0; /* nothing was evictable a moment ago: do not rescan per block */
	refresh_limit(d);
	s.target = ev->limit > want_free ? ev->limit - want_free : 0;
	if (objects_bytes_cached(d) <= s.target)
		return 0;
	meta_evict_scan(d->meta, scan_fn, &s);
	removals_flush(d);
	if (objects_bytes_cached(d) > s.target && ev->fs_free < ev->fs_size / 20 + want_free)
		shed_open_blocks(d, objects_bytes_cached(d) - s.target > (64u << 20)
					    ? objects_bytes_cached(d) - s.target
					    : (64u << 20));
	if (objects_bytes_cached(d) > s.target) {
		ev->last_empty_ms = now;
		if (!ev->warned) {
			char a[32], b[32];

			log_warn("cache holds %s, over its limit of %s, but everything else is "
				 "open: "
				 "the limit yields until those files are closed",
				 num_format_size(objects_bytes_cached(d), a, sizeof(a)),
				 num_format_size(ev->limit, b, sizeof(b)));
			ev->warned = true;
		}
	} else {
		ev->last_empty_ms = 0;
		ev->warned = false;
	}
	return s.freed;
}

void evict_tick(struct daemon *d)
{
	struct evictor *ev = d->ev;

	refresh_limit(d);
	objects_tick(d);
	if (objects_bytes_cached(d) > ev->limit)
		evict_run(d, 0);
}

/* For inspect: evicts object `id` (or every closed object when id is 0 and all is set).
 * Returns bytes freed; *busy counts objects skipped because they are open. */
uint64_t evict_objects(struct daemon *d, uint64_t id, bool all)
{
	struct scan s = { .d = d, .only_id = id, .force_all = all };

	meta_evict_scan(d->meta, scan_fn, &s);
	removals_flush(d);
	return s.freed;
}

bool evict_pending(struct daemon *d, uint64_t id)
{
	return pending(d->ev, id);
}

void evict_status(struct daemon *d, uint64_t *limit, uint64_t *fs_free, uint64_t *fs_size)
{
	*limit = d->ev->limit;
	*fs_free = d->ev->fs_free;
	*fs_size = d->ev->fs_size;
}
