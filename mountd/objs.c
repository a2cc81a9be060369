/* objs: open objects and the read path. A read whose blocks are present is answered from the
 * object's cache file with no daemon round trip; otherwise the missing blocks are asked for on
 * the ring (once, however many readers wait) and the read is answered from the completion thread
 * when they are present. Each read is answered exactly once: whoever removes it from the
 * pending lists under `rlock` (completion, error, timeout) replies. */
#include "mountd/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/seq.h"

#define FETCH_TAB	4096
#define PREFETCH_WINDOW (64u << 20) /* how far ahead of a sequential reader to ask for */
#define PREFETCH_CHUNK	(16u << 20)
#define DISK_RA		(32u << 20) /* how far ahead of a sequential reader the disk reads */
/* A passthrough object outlives its last release by this long. The kernel keeps an inode's
 * backing file until it has processed the last RELEASE reply; an OPEN answered meanwhile with
 * a new backing id would fail with EIO (one backing file per inode), so opens in that window
 * must find the same object and id. */
#define PT_LINGER_MS 2000

/* One ring entry in flight: blocks [b0, b0+n) of o. */
struct fetch_ent {
	struct fetch_ent *next; /* fetch_tab chain */
	uint64_t id;
	bool unsent; /* the ring was full: resend it (resubmit_unsent) */
	struct mobj *o;
	uint32_t b0, n;
	bool prefetch;
};

struct pending {
	struct pending *next;
	struct mobj *o; /* alive while the read is pending: the kernel releases files after reads */
	void *req;
	uint64_t off;
	size_t len;
	uint32_t b0, b1;
	uint64_t deadline;
};

struct mobj {
	struct mobj *next, *prev; /* m->objs */
	int refs;		  /* opens (under rlock) */
	/* Threads inside reply_present(). Once a read is answered the kernel may release the file
	 * and objs_release() run in another thread before the replying thread is done with o (the
	 * mapping, the locks); objs_release() waits for this to drop to 0 before freeing. */
	_Atomic int replying;
	char *path;
	char version[PROTO_VERSION_MAX];
	uint64_t size;
	uint32_t nblocks;
	/* the daemon's handle, descriptor and generation: replaced on reconnect (under rlock) */
	uint32_t handle;
	uint32_t gen;
	int fd;
	/* The object file mapped read-only: replies copy straight from its page cache pages into
	 * the kernel's FUSE request (one copy, no read syscall). NULL: replies read from fd. */
	const char *map;
	bool broken; /* could not be reopened after a reconnect: reads fail */
	/* > 0: complete and pinned by the daemon when opened, registered as the backing file of
	 * every open of this object (its inode): the kernel reads the cache file itself. Set
	 * before the object is shared, released at its last release. */
	int backing_id;
	_Atomic uint8_t *present;  /* bit per block; readers test it without a lock */
	_Atomic uint32_t npresent; /* bits set in present */
	uint64_t ino;		   /* the inode whose opens share this object */
	bool switch_asked;     /* complete: new opens were sent to a passthrough inode (rlock) */
	uint64_t linger_until; /* refs == 0: destroyed by the timer at this time (rlock) */
	/* Held shared by every reply from the cache file, exclusively to drop blocks the daemon
	 * revokes (and to swap fd on reconnect): no reply reads a block after its ack. */
	pthread_rwlock_t rw;
	uint8_t *requested; /* a ring entry asks for this block (rlock) */
	/* A FETCH asks for this block (rlock). Demand reads wait only on FETCHes: a PREFETCH is a
	 * hint the daemon may serve late, or refuse (EBUSY), so a read never relies on one. */
	uint8_t *demanded;
	struct seq_streams streams; /* recent sequential streams of reads, by any thread (rlock) */
	bool sequential;	    /* some stream reached SEQ_TRIGGER blocks */
	uint64_t ra_upto;	    /* disk read-ahead asked for up to here (rlock) */
	uint32_t pf_upto;	    /* blocks below this were already asked for as read-ahead */
	struct pending *pending;
};

static bool present(const struct mobj *o, uint32_t b)
{
	return atomic_load_explicit(&o->present[b >> 3], memory_order_acquire) & (1u << (b & 7));
}

static void set_present(struct mobj *o, uint32_t b)
{
	uint8_t old = atomic_fetch_or_explicit(&o->present[b >> 3], (uint8_t)(1u << (b & 7)),
					       memory_order_release);

	if (!(old & (1u << (b & 7))))
		atomic_fetch_add(&o->npresent, 1);
}

static void clear_present(struct mobj *o, uint32_t b)
{
	uint8_t old = atomic_fetch_and(&o->present[b >> 3], (uint8_t) ~(1u << (b & 7)));

	if (old & (1u << (b & 7)))
		atomic_fetch_sub(&o->npresent, 1);
}

static bool bit(const uint8_t *m, uint32_t b)
{
	return m[b >> 3] & (1u << (b & 7));
}

static void bit_set(uint8_t *m, uint32_t b, bool on)
{
	if (on)
		m[b >> 3] |= (uint8_t)(1u << (b & 7));
	else
		m[b >> 3] &= (uint8_t) ~(1u << (b & 7));
}

uint64_t objs_size(const struct mobj *o)
{
	return o->size;
}

int objs_backing(const struct mobj *o)
{
	return o->backing_id;
}

/* ---- fetch table (rlock held) ---- */

static struct fetch_ent *fe_take(struct mnt *m, uint64_t id)
{
	for (struct fetch_ent **pp = &m->fetch_tab[id % FETCH_TAB]; *pp; pp = &(*pp)->next) {
		struct fetch_ent *f = *pp;

		if (f->id == id) {
			*pp = f->next;
			m->outstanding--;
			if (f->unsent)
				m->unsent--;
			return f;
		}
	}
	return NULL;
}

static struct fetch_ent *fe_find(struct mnt *m, uint64_t id)
{
	for (struct fetch_ent *f = m->fetch_tab[id % FETCH_TAB]; f; f = f->next) {
		if (f->id == id)
			return f;
	}
	return NULL;
}

/* Records a ring entry for blocks [b0, b0+n) and marks them requested. */
static struct fetch_ent *fe_new(struct mnt *m, struct mobj *o, uint32_t b0, uint32_t n,
				bool prefetch)
{
	struct fetch_ent *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->id = ++m->next_id;
	f->o = o;
	f->b0 = b0;
	f->n = n;
	f->prefetch = prefetch;
	f->next = m->fetch_tab[f->id % FETCH_TAB];
	m->fetch_tab[f->id % FETCH_TAB] = f;
	m->outstanding++;
	for (uint32_t b = b0; b < b0 + n; b++) {
		bit_set(o->requested, b, true);
		if (!prefetch)
			bit_set(o->demanded, b, true);
	}
	return f;
}

static void fe_entry(const struct fetch_ent *f, struct ring_entry *e)
{
	uint64_t off = (uint64_t)f->b0 << PROTO_BLOCK_SHIFT;
	uint64_t end = (uint64_t)(f->b0 + f->n) << PROTO_BLOCK_SHIFT;

	memset(e, 0, sizeof(*e));
	e->id = f->id;
	e->off = off;
	e->len = (end > f->o->size ? f->o->size : end) - off;
	e->handle = f->o->handle;
	e->op = f->prefetch ? RING_PREFETCH : RING_FETCH;
}

/* Submits entries built under rlock (called without it). A full ring is retried for a moment
 * by FUSE threads (`wait`), never by the receive thread; what still does not fit stays in the
 * table marked unsent and goes out when completions make room (resubmit_unsent). A lost
 * connection leaves entries in the table for objs_reconnected(). */
static void submit_all(struct mnt *m, struct ring_entry *es, uint32_t *gens, int n, bool wait)
{
	for (int i = 0; i < n; i++) {
		int rc, spins = 0;

		while ((rc = conn_submit(m, &es[i], gens[i])) == -EAGAIN && wait && spins++ < 20)
			usleep(250);
		if (rc == -EAGAIN) {
			struct fetch_ent *f;

			pthread_mutex_lock(&m->rlock);
			f = fe_find(m, es[i].id);
			if (f && !f->unsent) {
				f->unsent = true;
				m->unsent++;
			}
			pthread_mutex_unlock(&m->rlock);
		} else if (rc && rc != -ENOTCONN) {
			log_warn("submitting a read to the daemon failed: %s", strerror(-rc));
		}
	}
}

/* Sends entries that did not fit in the ring earlier (any thread, without rlock). */
static void resubmit_unsent(struct mnt *m)
{
	struct ring_entry es[64];
	uint32_t gens[64];
	int n = 0;

	pthread_mutex_lock(&m->rlock);
	for (size_t i = 0; m->unsent && i < FETCH_TAB && n < 64; i++) {
		for (struct fetch_ent *f = m->fetch_tab[i]; f && n < 64; f = f->next) {
			if (!f->unsent)
				continue;
			f->unsent = false;
			m->unsent--;
			fe_entry(f, &es[n]);
			gens[n++] = f->o->gen;
		}
	}
	pthread_mutex_unlock(&m->rlock);
	submit_all(m, es, gens, n, false);
}

static void clear_range(struct mobj *o, uint64_t off, uint64_t len);

/* Maps an object file (never shrunk by the daemon, so no SIGBUS) or returns NULL. */
static const char *map_file(int fd, uint64_t size)
{
	void *p;

	if (size == 0 || size > (1ull << 46))
		return NULL;
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void unmap_file(const char *map, uint64_t size)
{
	if (map)
		munmap((void *)map, (size_t)size);
}
static void reopen_one(struct mnt *m, struct mobj *o);

/* ---- open / release ---- */

int objs_init(struct mnt *m)
{
	pthread_mutex_init(&m->rlock, NULL);
	m->fetch_tab = calloc(FETCH_TAB, sizeof(*m->fetch_tab));
	return m->fetch_tab ? 0 : -ENOMEM;
}

/* Registers o's cache file as the backing file of its passthrough opens: here when the mount may
 * (CAP_SYS_ADMIN), else through the daemon, which opens the file itself, read-only. Returns the
 * backing id, or -errno (then passthrough is off for good, said once). */
static int backing_open(struct mnt *m, struct mobj *o)
{
	int id;

	if (!atomic_load(&m->pt.delegated)) {
		id = passthru_register(&m->pt, o->fd);
		if (id != -EPERM) {
			if (id < 0)
				passthru_failed(&m->pt, id, "registering a backing file");
			return id;
		}
		atomic_store(&m->pt.delegated, true);
		log_info("the mount may not register FUSE backing files (no CAP_SYS_ADMIN): the "
			 "daemon registers them");
	}
	id = conn_call_backing(m, PROTO_BACKING_OPEN, o->handle, 0, o->gen);
	if (id > 0)
		atomic_fetch_add(&m->pt.backing_ids, 1);
	else
		passthru_failed(&m->pt, id, "the daemon registering a backing file");
	return id;
}

static void backing_close(struct mnt *m, int id)
{
	int rc;

	if (id <= 0)
		return;
	if (!atomic_load(&m->pt.delegated)) {
		passthru_unregister(&m->pt, id);
		return;
	}
	rc = conn_call_backing(m, PROTO_BACKING_CLOSE, 0, id, 0);
	if (rc)
		log_warn("the daemon could not release FUSE backing file %d: %s", id,
			 strerror(-rc));
}

static void obj_destroy(struct mnt *m, struct mobj *o, bool connected);

/* Drops REVOKEs parked for o's handle (o is given back unused). rlock held. */
static void forget_early(struct mnt *m, const struct mobj *o)
{
	for (int i = 0; i < m->nearly;) {
		if (m->early[i].handle == o->handle && m->early_gens[i] == o->gen) {
			m->early[i] = m->early[--m->nearly];
			m->early_gens[i] = m->early_gens[m->nearly];
			continue;
		}
		i++;
	}
}

/* OPEN flags of a passthrough-capable open: pin, and wait (bounded well under the read timeout,
 * which bounds the OPEN call itself) for an incomplete object to be fetched whole. */
static uint32_t open_flags(const struct mnt *m)
{
	int secs = m->o.open_wait < m->o.read_timeout - 5 ? m->o.open_wait : m->o.read_timeout - 5;

	if (secs > 0xffff)
		secs = 0xffff;
	return PROTO_OPEN_F_PIN | (secs > 0 ? PROTO_OPEN_F_WAIT | PROTO_OPEN_WAIT_FLAGS(secs) : 0);
}

int objs_open(struct mnt *m, uint64_t ino, const char *path, const char *version, uint64_t size,
	      bool passthrough_ok, struct mobj **out)
{
	struct proto_open_reply rep;
	struct mobj *o;
	uint8_t *bitmap = NULL;
	size_t maplen;
	uint32_t gen = 0;
	int fd, rc;

	pthread_mutex_lock(&m->rlock);
	for (o = m->objs; o; o = o->next) {
		if (o->ino == ino) {
			o->refs++;
			o->linger_until = 0;
			pthread_mutex_unlock(&m->rlock);
			*out = o;
			return 0;
		}
	}
	pthread_mutex_unlock(&m->rlock);
	passthrough_ok = passthrough_ok && passthru_usable(&m->pt);
	rc = conn_call_open(m, path, version, size, passthrough_ok ? open_flags(m) : 0, &rep,
			    &bitmap, &fd, &gen);
	if (rc)
		return rc;
	o = calloc(1, sizeof(*o));
	maplen = ((size_t)rep.nblocks + 7) / 8 + 1;
	if (!o || !(o->path = strdup(path)) || !(o->present = calloc(1, maplen)) ||
	    !(o->requested = calloc(1, maplen)) || !(o->demanded = calloc(1, maplen))) {
		if (o) {
			free(o->path);
			free((void *)o->present);
			free(o->requested);
			free(o->demanded);
			free(o);
		}
		free(bitmap);
		close(fd);
		conn_call_close(m, rep.handle, gen);
		return -ENOMEM;
	}
	snprintf(o->version, sizeof(o->version), "%s", version);
	o->size = size;
	o->ino = ino;
	o->nblocks = rep.nblocks;
	o->handle = rep.handle;
	o->gen = gen;
	o->fd = fd;
	o->map = map_file(fd, size);
	o->refs = 1;
	if ((rep.flags & PROTO_OPENR_PINNED) && passthrough_ok) {
		int id = backing_open(m, o);

		if (id > 0)
			o->backing_id = id;
		else
			atomic_fetch_add(&m->pt.fallbacks, 1);
	}
	{
		pthread_rwlockattr_t ra;

		/* Writers first: a REVOKE must not starve behind a stream of readers. */
		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&o->rw, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	memcpy((void *)o->present, bitmap, maplen - 1);
	for (uint32_t b = 0; b < o->nblocks; b++) {
		if (bit(bitmap, b))
			o->npresent++;
	}
	free(bitmap);
	pthread_mutex_lock(&m->rlock);
	for (struct mobj *x = m->objs; x; x = x->next) {
		if (x->ino == ino) {
			/* Another open of this inode got there first while we asked the daemon:
			 * share its object (an inode has one backing file; a second one would fail
			 * the open with EIO) and give ours back. */
			x->refs++;
			x->linger_until = 0;
			forget_early(m, o);
			pthread_mutex_unlock(&m->rlock);
			o->switch_asked =
				true; /* not an ordinary object done with: keep the inode */
			obj_destroy(m, o, true);
			*out = x;
			return 0;
		}
	}
	o->next = m->objs;
	if (m->objs)
		m->objs->prev = o;
	m->objs = o;
	/* REVOKEs that arrived before this OPEN's reply was installed apply now (acked already). */
	for (int i = 0; i < m->nearly;) {
		if (m->early[i].handle == o->handle && m->early_gens[i] == o->gen) {
			struct ring_entry e = m->early[i];

			m->early[i] = m->early[--m->nearly];
			m->early_gens[i] = m->early_gens[m->nearly];
			pthread_mutex_unlock(&m->rlock);
			clear_range(o, e.off, e.len);
			pthread_mutex_lock(&m->rlock);
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&m->rlock);
	pthread_mutex_lock(&m->conn_lock);
	if (m->conn_gen != gen) {
		/* The connection changed while the OPEN was answered: reopen on the new one. */
		pthread_mutex_unlock(&m->conn_lock);
		reopen_one(m, o);
	} else {
		pthread_mutex_unlock(&m->conn_lock);
	}
	*out = o;
	return 0;
}

/* Unlinks o (refs 0) from the open objects and forgets its entries in flight. rlock held. */
static void obj_unlink(struct mnt *m, struct mobj *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		m->objs = o->next;
	if (o->next)
		o->next->prev = o->prev;
	/* Entries still in flight (read-ahead) lose their object: forget them. */
	for (size_t i = 0; i < FETCH_TAB; i++) {
		for (struct fetch_ent **pp = &m->fetch_tab[i]; *pp;) {
			if ((*pp)->o == o) {
				struct fetch_ent *f = *pp;

				*pp = f->next;
				m->outstanding--;
				if (f->unsent)
					m->unsent--;
				free(f);
			} else {
				pp = &(*pp)->next;
			}
		}
	}
}

/* Frees an unlinked object: its backing id, the daemon's handle, its file. */
static void obj_destroy(struct mnt *m, struct mobj *o, bool connected)
{
	/* No new read can reach o (its last handle is released); wait for replies still returning.
	 */
	while (atomic_load(&o->replying) > 0)
		sched_yield();
	/* Every open of the inode is released and the kernel has long dropped its backing file
	 * (PT_LINGER_MS): the backing id, then the daemon's pin, go. */
	if (connected)
		backing_close(m, o->backing_id);
	if (connected && !o->backing_id && !o->switch_asked && m->ordinary_done_hook &&
	    passthru_usable(&m->pt))
		/* Read the ordinary way: later opens of its path get a fresh inode, whose mode is
		 * decided again (an inode's opens are all passthrough or all ordinary). */
		m->ordinary_done_hook(m->hook_ctx, o->ino);
	conn_call_close(m, o->handle, o->gen);
	unmap_file(o->map, o->size);
	close(o->fd);
	pthread_rwlock_destroy(&o->rw);
	free(o->path);
	free((void *)o->present);
	free(o->requested);
	free(o->demanded);
	free(o);
}

void objs_release(struct mnt *m, struct mobj *o)
{
	pthread_mutex_lock(&m->rlock);
	if (--o->refs > 0) {
		pthread_mutex_unlock(&m->rlock);
		return;
	}
	if (o->backing_id > 0 && !atomic_load(&m->stopping)) {
		o->linger_until = mono_ms() + PT_LINGER_MS; /* the timer destroys it */
		pthread_mutex_unlock(&m->rlock);
		return;
	}
	obj_unlink(m, o);
	pthread_mutex_unlock(&m->rlock);
	obj_destroy(m, o, true);
}

/* Destroys the passthrough objects whose linger time is over (timer thread; every object at
 * unmount, when `all`). */
static void reap_lingering(struct mnt *m, bool all)
{
	uint64_t now = mono_ms();

	for (;;) {
		struct mobj *o;

		pthread_mutex_lock(&m->rlock);
		for (o = m->objs; o; o = o->next) {
			if (o->refs == 0 && (all || (o->linger_until && o->linger_until <= now)))
				break;
		}
		if (o)
			obj_unlink(m, o);
		pthread_mutex_unlock(&m->rlock);
		if (!o)
			return;
		obj_destroy(m, o, !all);
	}
}

/* ---- reads ---- */

static void reply_one(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t len, int fd)
{
	int rc;

	if (o->map && len) {
		rc = m->reply->mem(req, o->map + off, len);
		/*
		 * The reply copied the bytes into the kernel; drop our page table
		 * entries so the mount's RSS does not grow with every byte it
		 * served (the pages stay in the page cache).
		 */
		uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t a = off & ~(pg - 1);
		uint64_t e = (off + len) & ~(pg - 1);
		if (e > a)
			(void)madvise((void *)(uintptr_t)(o->map + a), (size_t)(e - a),
				      MADV_DONTNEED);
	} else {
		rc = m->reply->data(req, fd, off, len);
	}
	if (rc) {
		atomic_fetch_add(&m->read_errors, 1);
		log_warn("reading %s at %llu from the cache file failed: %s", o->path,
			 (unsigned long long)off, strerror(-rc));
	}
}

static bool range_present(const struct mobj *o, uint64_t off, size_t len)
{
	if (len == 0)
		return true;
	for (uint32_t b = (uint32_t)(off >> PROTO_BLOCK_SHIFT);
	     b <= (uint32_t)((off + len - 1) >> PROTO_BLOCK_SHIFT); b++) {
		if (!present(o, b))
			return false;
	}
	return true;
}

/* Replies from the cache file if [off, off+len) is still present, under the revoke lock. */
static bool reply_present(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t len)
{
	bool ok;

	atomic_fetch_add(&o->replying, 1); /* before the reply: see struct mobj */
	pthread_rwlock_rdlock(&o->rw);
	ok = range_present(o, off, len);
	if (ok)
		reply_one(m, o, req, off, len, o->fd);
	pthread_rwlock_unlock(&o->rw);
	atomic_fetch_sub(&o->replying, 1); /* the last touch of o */
	return ok;
}

/* Builds FETCH entries for the absent blocks of [b0, b1) no FETCH asks for yet (rlock held). */
static int request_missing(struct mnt *m, struct mobj *o, uint32_t b0, uint32_t b1,
			   struct ring_entry *es, uint32_t *gens, int max)
{
	int n = 0;

	for (uint32_t b = b0; b < b1 && n < max;) {
		uint32_t e;

		if (present(o, b) || bit(o->demanded, b)) {
			b++;
			continue;
		}
		e = b + 1;
		while (e < b1 && !present(o, e) && !bit(o->demanded, e))
			e++;
		{
			struct fetch_ent *f = fe_new(m, o, b, e - b, false);

			if (f) {
				fe_entry(f, &es[n]);
				gens[n++] = o->gen;
			}
		}
		b = e;
	}
	return n;
}

/* Read-ahead for sequential readers (rlock held): ask for the next window of absent blocks.
 * Streams are tracked per object, whatever handle or thread reads (common/seq.h), so loaders
 * that read one file with many threads or through mmap count as sequential. */
static int plan_prefetch(struct mnt *m, struct mobj *o, uint32_t b0, uint32_t b1,
			 struct ring_entry *es, uint32_t *gens, int max)
{
	uint32_t win = PREFETCH_WINDOW >> PROTO_BLOCK_SHIFT,
		 chunk = PREFETCH_CHUNK >> PROTO_BLOCK_SHIFT;
	uint32_t from, to;
	int n = 0;

	if (seq_note(&o->streams, b0, b1))
		o->sequential = true;
	if (!o->sequential || o->broken || m->outstanding > m->reg.max_inflight / 2)
		return 0;
	from = b1 > o->pf_upto ? b1 : o->pf_upto;
	to = b1 + win < o->nblocks ? b1 + win : o->nblocks;
	while (from < to && n < max) {
		uint32_t s = from, e;

		while (s < to && (present(o, s) || bit(o->requested, s)))
			s++;
		if (s >= to)
			break;
		e = s + 1;
		while (e < to && e - s < chunk && !present(o, e) && !bit(o->requested, e))
			e++;
		{
			struct fetch_ent *f = fe_new(m, o, s, e - s, true);

			if (!f)
				break;
			fe_entry(f, &es[n]);
			gens[n++] = o->gen;
		}
		from = e;
	}
	if (to > o->pf_upto)
		o->pf_upto = to;
	return n;
}

static void read_dl(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t size,
		    uint64_t deadline);

void objs_read(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t size)
{
	read_dl(m, o, req, off, size, 0);
}

/* objs_read with the read's deadline (0: from now); a read sent back here after a revocation
 * keeps the deadline it had. */
static void read_dl(struct mnt *m, struct mobj *o, void *req, uint64_t off, size_t size,
		    uint64_t deadline)
{
	struct ring_entry es[16];
	uint32_t gens[16], b0, b1, b;
	struct pending *p;
	int n = 0;
	size_t len;

	if (off >= o->size || size == 0) {
		m->reply->data(req, o->fd, off, 0);
		return;
	}
	len = o->size - off < size ? (size_t)(o->size - off) : size;
	b0 = (uint32_t)(off >> PROTO_BLOCK_SHIFT);
	b1 = (uint32_t)((off + len - 1) >> PROTO_BLOCK_SHIFT) + 1;
	for (b = b0; b < b1 && present(o, b); b++)
		;
	if (b == b1) {
		uint64_t ra_from = 0;

		pthread_mutex_lock(&m->rlock);
		if (!o->sequential || b1 + 4 > o->pf_upto)
			n = plan_prefetch(m, o, b0, b1, es, gens, 16);
		/* A sequential reader of cached bytes: have the disk read ahead of it (the page
		 * faults on the mapping alone read little at a time). */
		if (o->sequential && off + len + DISK_RA / 2 > o->ra_upto) {
			ra_from = off + len > o->ra_upto ? off + len : o->ra_upto;
			o->ra_upto = ra_from + DISK_RA;
		}
		pthread_mutex_unlock(&m->rlock);
		if (ra_from && ra_from < o->size)
			posix_fadvise(o->fd, (off_t)ra_from, DISK_RA, POSIX_FADV_WILLNEED);
		/* A hit: straight from the cache file, no daemon round trip. */
		if (reply_present(m, o, req, off, len)) {
			atomic_fetch_add(&m->hits, 1);
			atomic_fetch_add(&m->hit_bytes, len);
			submit_all(m, es, gens, n, true);
			return;
		}
		/* Revoked between the check and the reply: a miss after all. */
		submit_all(m, es, gens, n, true);
		n = 0;
	}
	atomic_fetch_add(&m->misses, 1);
	atomic_fetch_add(&m->miss_bytes, len);
	p = calloc(1, sizeof(*p));
	if (!p) {
		m->reply->error(req, ENOMEM);
		return;
	}
	p->o = o;
	p->req = req;
	p->off = off;
	p->len = len;
	p->b0 = b0;
	p->b1 = b1;
	p->deadline = deadline ? deadline : mono_ms() + (uint64_t)m->o.read_timeout * 1000;
	pthread_mutex_lock(&m->rlock);
	if (o->broken) {
		pthread_mutex_unlock(&m->rlock);
		free(p);
		m->reply->error(req, EIO);
		return;
	}
	p->next = o->pending;
	o->pending = p;
	/* Ask for the absent blocks nobody has asked for yet, in runs. */
	n = request_missing(m, o, b0, b1, es, gens, 8);
	n += plan_prefetch(m, o, b0, b1, es + n, gens + n, 16 - n);
	pthread_mutex_unlock(&m->rlock);
	submit_all(m, es, gens, n, true);
	/* If the blocks became present between the check and the registration, the completion
	 * that made them present has already run: answer now. */
	objs_complete(m, NULL);
}

/* Removes o's pending reads that are now satisfiable (or, with err, that overlap [b0, b1)),
 * into *out. rlock held. */
static void take_ready(struct mobj *o, struct pending **out, uint32_t eb0, uint32_t eb1, bool err)
{
	for (struct pending **pp = &o->pending; *pp;) {
		struct pending *p = *pp;
		bool ready;

		if (err) {
			ready = p->b0 < eb1 && eb0 < p->b1;
		} else {
			uint32_t b = p->b0;

			while (b < p->b1 && present(o, b))
				b++;
			ready = b == p->b1;
		}
		if (ready) {
			*pp = p->next;
			p->next = *out;
			*out = p;
		} else {
			pp = &p->next;
		}
	}
}

/* Answers reads taken off the pending lists; one whose blocks were revoked meanwhile goes back
 * through objs_read (and waits again). */
static void answer(struct mnt *m, struct pending *ready, struct pending *failed)
{
	while (ready) {
		struct pending *p = ready;

		ready = p->next;
		if (!reply_present(m, p->o, p->req, p->off, p->len))
			read_dl(m, p->o, p->req, p->off, p->len, p->deadline);
		free(p);
	}
	while (failed) {
		struct pending *p = failed;

		failed = p->next;
		atomic_fetch_add(&m->read_errors, 1);
		m->reply->error(p->req, EIO);
		free(p);
	}
}

/* The daemon takes blocks back before punching them: drop them from the presence map (waiting
 * for replies that read them), acknowledge, and ask again for what pending reads still need. */
static void send_ack(struct mnt *m, const struct ring_entry *ack, uint32_t gen)
{
	int rc, spins = 0;

	while ((rc = conn_submit(m, ack, gen)) == -EAGAIN && spins++ < 100)
		usleep(1000);
	if (rc == -EAGAIN) {
		/* Still full: the timer thread sends it (the daemon waits 10 s for it). */
		pthread_mutex_lock(&m->rlock);
		if (m->nacks < MAX_ACKS) {
			m->acks[m->nacks] = *ack;
			m->ack_gens[m->nacks++] = gen;
		}
		pthread_mutex_unlock(&m->rlock);
	}
}

static void resend_acks(struct mnt *m)
{
	struct ring_entry acks[MAX_ACKS];
	uint32_t gens[MAX_ACKS];
	int n;

	pthread_mutex_lock(&m->rlock);
	n = m->nacks;
	memcpy(acks, m->acks, (size_t)n * sizeof(acks[0]));
	memcpy(gens, m->ack_gens, (size_t)n * sizeof(gens[0]));
	m->nacks = 0;
	pthread_mutex_unlock(&m->rlock);
	for (int i = 0; i < n; i++)
		send_ack(m, &acks[i], gens[i]);
}

/* Clears [off, off+len) of o's presence under its write lock (no reply reads it afterwards). */
static void clear_range(struct mobj *o, uint64_t off, uint64_t len)
{
	if (len == 0 || off >= o->size)
		return;
	if (len > o->size - off)
		len = o->size - off;
	pthread_rwlock_wrlock(&o->rw);
	for (uint32_t b = (uint32_t)(off >> PROTO_BLOCK_SHIFT);
	     b <= (uint32_t)((off + len - 1) >> PROTO_BLOCK_SHIFT); b++)
		clear_present(o, b);
	pthread_rwlock_unlock(&o->rw);
}

/* The daemon takes blocks back before punching them: drop them from the presence map (waiting
 * for replies that read them), acknowledge, and ask again for what pending reads still need.
 * A REVOKE for a handle whose OPEN reply is still on its way is kept and applied when the OPEN
 * installs it; the ack is sent at once in every case. */
static void take_back(struct mnt *m, const struct ring_entry *e)
{
	struct ring_entry ack = { .id = e->id,
				  .off = e->off,
				  .len = e->len,
				  .handle = e->handle,
				  .op = RING_REVOKE_ACK };
	struct ring_entry es[16];
	uint32_t gens[16], gen;
	struct mobj *o;
	int n = 0;

	pthread_mutex_lock(&m->conn_lock);
	gen = m->conn_gen; /* the ring this came on belongs to the current registration */
	pthread_mutex_unlock(&m->conn_lock);
	pthread_mutex_lock(&m->rlock);
	for (o = m->objs; o; o = o->next) {
		if (o->handle == e->handle && o->gen == gen && !o->broken)
			break;
	}
	if (o) {
		o->refs++;
	} else if (m->nearly < MAX_ACKS) {
		m->early[m->nearly] = *e;
		m->early_gens[m->nearly++] = gen;
	}
	pthread_mutex_unlock(&m->rlock);
	if (o) {
		clear_range(o, e->off, e->len);
		pthread_mutex_lock(&m->rlock);
		for (struct pending *p = o->pending; p && n < 8; p = p->next)
			n += request_missing(m, o, p->b0, p->b1, es + n, gens + n, 16 - n);
		pthread_mutex_unlock(&m->rlock);
		submit_all(m, es, gens, n, false);
	}
	send_ack(m, &ack, gen);
	if (o)
		objs_release(m, o);
}

void objs_complete(struct mnt *m, const struct ring_entry *e)
{
	struct pending *ready = NULL, *failed = NULL;
	struct mobj *o = NULL;

	if (e && e->op == RING_REVOKE) {
		take_back(m, e);
		return;
	}
	pthread_mutex_lock(&m->rlock);
	if (e && e->op == RING_PRESENT && (e->flags & RING_F_PARTIAL)) {
		/* Part of a larger request landed: mark it, answer who can be answered. */
		struct fetch_ent *f = fe_find(m, e->id);

		if (!f || e->off >= f->o->size || e->len > f->o->size - e->off || e->len == 0) {
			pthread_mutex_unlock(&m->rlock);
			return;
		}
		o = f->o;
		for (uint64_t b = e->off >> PROTO_BLOCK_SHIFT;
		     b <= (e->off + e->len - 1) >> PROTO_BLOCK_SHIFT; b++) {
			if (b >= f->b0 && b < (uint64_t)f->b0 + f->n) {
				set_present(o, (uint32_t)b);
				bit_set(o->requested, (uint32_t)b, false);
				bit_set(o->demanded, (uint32_t)b, false);
			}
		}
		take_ready(o, &ready, 0, 0, false);
	} else if (e) {
		struct fetch_ent *f = fe_take(m, e->id);
		int err;

		if (!f) {
			pthread_mutex_unlock(&m->rlock);
			return; /* its object was released, or a stale completion */
		}
		o = f->o;
		for (uint32_t b = f->b0; b < f->b0 + f->n; b++) {
			bit_set(o->requested, b, false);
			if (!f->prefetch)
				bit_set(o->demanded, b, false);
		}
		if (e->op == RING_PRESENT) {
			for (uint32_t b = f->b0; b < f->b0 + f->n; b++)
				set_present(o, b);
			take_ready(o, &ready, 0, 0, false);
		} else if (f->prefetch) {
			/* A refused or failed hint: reads in that range wait on their own FETCH. */
			log_debug("daemon did not prefetch %s [%llu, +%llu): %s", o->path,
				  (unsigned long long)e->off, (unsigned long long)e->len,
				  strerror(e->status < 0 ? -e->status : EIO));
		} else {
			err = e->status;
			log_warn("daemon could not fetch %s [%llu, +%llu): %s", o->path,
				 (unsigned long long)e->off, (unsigned long long)e->len,
				 strerror(err < 0 ? -err : EIO));
			take_ready(o, &ready, 0, 0, false);
			take_ready(o, &failed, f->b0, f->b0 + f->n, true);
		}
		free(f);
	} else {
		/* Sweep every object (after a registration race in objs_read). */
		for (struct mobj *x = m->objs; x; x = x->next)
			take_ready(x, &ready, 0, 0, false);
	}
	/* Complete while read the ordinary way: later opens go to a new inode, in passthrough. */
	uint64_t switch_ino = 0;

	if (o && !o->switch_asked && !o->backing_id && !o->broken &&
	    atomic_load(&o->npresent) == o->nblocks && passthru_usable(&m->pt)) {
		o->switch_asked = true;
		switch_ino = o->ino;
	}
	pthread_mutex_unlock(&m->rlock);
	answer(m, ready, failed);
	if (switch_ino && m->ordinary_done_hook)
		m->ordinary_done_hook(m->hook_ctx, switch_ino);
	if (m->unsent)
		resubmit_unsent(m); /* completions made room in the ring */
}

/* ---- timeouts and reconnects ---- */

static void fail_expired(struct mnt *m)
{
	struct pending *expired = NULL;
	uint64_t now = mono_ms();

	pthread_mutex_lock(&m->rlock);
	for (struct mobj *o = m->objs; o; o = o->next) {
		for (struct pending **pp = &o->pending; *pp;) {
			struct pending *p = *pp;

			if (p->deadline <= now) {
				*pp = p->next;
				p->next = expired;
				expired = p;
				log_error("read of %s at %llu (+%zu) got no data within %d s: EIO",
					  o->path, (unsigned long long)p->off, p->len,
					  m->o.read_timeout);
			} else {
				pp = &p->next;
			}
		}
	}
	pthread_mutex_unlock(&m->rlock);
	while (expired) {
		struct pending *p = expired;

		expired = p->next;
		atomic_fetch_add(&m->timeouts, 1);
		m->reply->error(p->req, EIO);
		free(p);
	}
}

static void *timer_main(void *arg)
{
	struct mnt *m = arg;

	while (!atomic_load(&m->stopping)) {
		usleep(250000);
		fail_expired(m);
		reap_lingering(m, false);
		conn_publish_stats(m);
		if (m->nacks)
			resend_acks(m);
		if (m->unsent)
			resubmit_unsent(m);
	}
	return NULL;
}

int objs_start_timer(struct mnt *m)
{
	int rc = -pthread_create(&m->timer_thr, NULL, timer_main, m);

	m->timer_started = rc == 0;
	return rc;
}

/* Reopens o on the current connection: new handle, descriptor and presence map, swapped under
 * the object's write lock (the new daemon may hold the object in another file, or in a fresh
 * one if its record was never committed, so nothing of the old map is trusted). */
static void reopen_one(struct mnt *m, struct mobj *o)
{
	struct proto_open_reply rep;
	uint8_t *bitmap = NULL;
	uint32_t gen = 0;
	int fd = -1,
	    rc = conn_call_open(m, o->path, o->version, o->size,
				o->backing_id > 0 ? PROTO_OPEN_F_PIN : 0, &rep, &bitmap, &fd, &gen);

	/* The kernel keeps reading a passthrough object's old file; the daemon must pin it again.
	 */
	if (!rc && o->backing_id > 0 && !(rep.flags & PROTO_OPENR_PINNED))
		log_warn("%s: the restarted daemon did not pin it; its open passthrough files keep "
			 "reading the file they opened",
			 o->path);
	pthread_rwlock_wrlock(&o->rw);
	pthread_mutex_lock(&m->rlock);
	if (rc) {
		log_error("cannot reopen %s after reconnecting: %s; its reads fail", o->path,
			  strerror(-rc));
		o->broken = true;
		memset((void *)o->present, 0, (o->nblocks + 7) / 8);
		atomic_store(&o->npresent, 0);
	} else {
		unmap_file(o->map, o->size);
		close(o->fd);
		o->fd = fd;
		o->map = map_file(fd, o->size);
		o->handle = rep.handle;
		o->gen = gen;
		for (uint32_t b = 0; b < o->nblocks; b++) {
			if (bitmap[b >> 3] & (1u << (b & 7)))
				set_present(o, b);
			else
				clear_present(o, b);
		}
		free(bitmap);
	}
	pthread_mutex_unlock(&m->rlock);
	pthread_rwlock_unlock(&o->rw);
}

/* Every open object, each with a reference taken (objs_release() drops it), so the caller can
 * work on them outside rlock. Missing one would leave a stale presence map after a reconnect, so
 * a failed allocation is retried rather than skipped. */
static struct mobj **hold_all(struct mnt *m, size_t *n)
{
	struct mobj **list;

	for (;;) {
		size_t k = 0;

		pthread_mutex_lock(&m->rlock);
		for (struct mobj *o = m->objs; o; o = o->next)
			k++;
		list = malloc((k ? k : 1) * sizeof(*list));
		if (list) {
			k = 0;
			for (struct mobj *o = m->objs; o; o = o->next) {
				o->refs++;
				list[k++] = o;
			}
			*n = k;
		}
		pthread_mutex_unlock(&m->rlock);
		if (list)
			return list;
		log_error("out of memory listing open files; retrying");
		usleep(100 * 1000);
	}
}

/* The connection is gone (on its receive thread): no reply may trust the presence map any more
 * (the daemon may punch what it revoked from a mount it dropped). Hits become misses that wait
 * for the reconnect. */
void objs_lost(struct mnt *m)
{
	size_t n;
	struct mobj **list = hold_all(m, &n);

	for (size_t i = 0; i < n; i++) {
		/* The write lock waits for replies in progress; the lock order is rw, then rlock.
		 */
		pthread_rwlock_wrlock(&list[i]->rw);
		memset((void *)list[i]->present, 0, (list[i]->nblocks + 7) / 8);
		atomic_store(&list[i]->npresent, 0);
		pthread_rwlock_unlock(&list[i]->rw);
		objs_release(m, list[i]);
	}
	free(list);
}

void objs_reconnected(struct mnt *m)
{
	size_t n;
	struct mobj **list = hold_all(m, &n);

	/* 1. reopen every object on the new connection (outside the lock: calls block) */
	for (size_t i = 0; i < n; i++)
		reopen_one(m, list[i]);
	/* 2. resubmit everything still outstanding on the new connection */
	{
		struct ring_entry *es = NULL;
		uint32_t *gens = NULL;
		int k = 0;

		pthread_mutex_lock(&m->rlock);
		/* Blocks the new daemon does not have may be what pending reads wait for. */
		for (struct mobj *o = m->objs; o; o = o->next) {
			struct ring_entry tmp[16];
			uint32_t tg[16];

			for (struct pending *p = o->pending; p && !o->broken; p = p->next) {
				/* The entries are recorded in the table; they are sent below. */
				request_missing(m, o, p->b0, p->b1, tmp, tg, 16);
			}
		}
		es = calloc(m->outstanding + 1, sizeof(*es));
		gens = calloc(m->outstanding + 1, sizeof(*gens));
		for (size_t i = 0; es && gens && i < FETCH_TAB; i++) {
			for (struct fetch_ent *f = m->fetch_tab[i]; f; f = f->next) {
				if (f->o->broken || k >= (int)m->outstanding)
					continue;
				fe_entry(f, &es[k]);
				gens[k++] = f->o->gen;
			}
		}
		pthread_mutex_unlock(&m->rlock);
		if (es && gens)
			submit_all(m, es, gens, k, true);
		else
			log_error("out of memory resubmitting reads after a reconnect");
		free(es);
		free(gens);
	}
	/* 3. reads of objects that could not be reopened fail now */
	for (size_t i = 0; i < n; i++) {
		struct mobj *o = list[i];
		struct pending *failed = NULL;

		pthread_mutex_lock(&m->rlock);
		if (o->broken)
			take_ready(o, &failed, 0, o->nblocks, true);
		pthread_mutex_unlock(&m->rlock);
		while (failed) {
			struct pending *p = failed;

			failed = p->next;
			m->reply->error(p->req, EIO);
			free(p);
		}
		objs_release(m, o);
	}
	free(list);
	objs_complete(m, NULL);
}

void objs_fini(struct mnt *m)
{
	if (m->timer_started)
		pthread_join(m->timer_thr, NULL);
	if (m->fetch_tab)
		reap_lingering(m, true); /* the connections are gone: backing ids went with them */
	if (m->fetch_tab) {
		for (size_t i = 0; i < FETCH_TAB; i++) {
			while (m->fetch_tab[i]) {
				struct fetch_ent *f = m->fetch_tab[i];

				m->fetch_tab[i] = f->next;
				free(f);
			}
		}
		free(m->fetch_tab);
	}
}
