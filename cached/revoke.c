/* revoke: taking blocks back from mounts before their bytes are punched (engine thread). Every
 * mount that has the object open gets RING_REVOKE for the range, drops it from its presence map
 * (waiting for its own readers of those blocks) and answers RING_REVOKE_ACK. Only when every ack
 * is in (or the mount is gone) and no GET is writing into the range is the hole punched; until
 * then the range is fetched by nobody, so a fresh write can never be punched. */
#include "cached/obj.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#define ACK_TIMEOUT_MS 10000 /* a mount that does not acknowledge in time is disconnected */

struct revoke_peer {
	struct conn *c; /* no reference: revoke_conn_gone() removes a dying conn */
	uint32_t handle;
};

struct revoke {
	struct task task; /* punch_run, posted by the writer once the clear is durable */
	int commit_status;
	bool committing;
	struct obj *o; /* reference while committing */
	struct revoke *next;
	uint64_t id;
	uint32_t b0, n;
	struct revoke_peer *peers; /* acks still expected */
	size_t npeers;
	uint64_t deadline;
	void (*done)(struct daemon *d, void *ctx);
	void *ctx;
};

static bool range_inflight(const struct obj *o, uint32_t b0, uint32_t n)
{
	for (uint32_t b = b0; b < b0 + n; b++) {
		if (bit(o->inflight, b))
			return true;
	}
	return false;
}

/* Engine, after the writer committed the clear of the range: punches it and finishes. */
static void punch_run(struct daemon *d, struct task *t)
{
	struct revoke *r = (struct revoke *)t;
	struct obj *o = r->o;
	uint64_t off = (uint64_t)r->b0 << PROTO_BLOCK_SHIFT, len = 0;

	for (struct revoke **pp = &o->revokes; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	for (uint32_t b = r->b0; b < r->b0 + r->n; b++)
		len += block_bytes(o, b);
	if (r->commit_status) {
		/* LMDB may still say present: the bytes must stay where they are. */
		log_error("not punching %s [%" PRIu64 ", +%" PRIu64
			  "): its clear did not commit (%s)",
			  o->rec.name, off, len, strerror(-r->commit_status));
	} else if (len && fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				    (off_t)len) < 0) {
		log_warn("punching %s [%" PRIu64 ", +%" PRIu64 "): %s", o->rec.name, off, len,
			 strerror(errno));
	}
	for (uint32_t b = r->b0; b < r->b0 + r->n; b++)
		bit_clear(o->revoking, b);
	atomic_fetch_add(&d->st.revoked_blocks, r->n);
	log_debug("revoked and punched %u blocks of %s", r->n, o->rec.name);
	if (r->done)
		r->done(d, r->ctx);
	/* Readers that wanted these blocks meanwhile, and a warm in progress, fetch them again. */
	obj_reschedule_waiters(d, o);
	if (o->watches)
		obj_loading(d, o, r->b0, true);
	objects_pump(d);
	free(r->peers);
	free(r);
	obj_put(o);
}

/* Once no mount holds the range and no GET writes into it, waits for the clear to be durable
 * (a crash must never find LMDB marking a punched block present), then punches. */
static void try_finish(struct daemon *d, struct obj *o, struct revoke *r)
{
	if (r->committing || r->npeers || range_inflight(o, r->b0, r->n))
		return;
	r->committing = true;
	r->o = obj_get(o);
	r->task.fn = punch_run;
	writer_barrier(d, &r->task, &r->commit_status);
}

/* Takes blocks [b0, b0+n) of object o back from every mount and punches them; done(d, ctx)
 * runs once that happened. Returns 0, -ENOMEM, or -EBUSY when passthrough opens pin the object
 * (nothing is revoked; the object is doomed: evicted at its last close). */
int objects_revoke(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n,
		   void (*done)(struct daemon *d, void *ctx), void *ctx)
{
	struct revoke *r;
	size_t cap = 0;

	if (b0 >= o->nblocks)
		return 0;
	if (o->pins) {
		/* The kernel reads this file directly for passthrough opens: nothing it may read is
		 * destroyed. The object goes (and is fetched again) once the last of them closes.
		 */
		log_warn("%s: %d open file(s) read it by passthrough; its blocks stay until they "
			 "close, then it is evicted",
			 o->rec.name, o->pins);
		atomic_fetch_add(&d->st.revokes_refused, 1);
		objects_doom(d, o);
		return -EBUSY;
	}
	if (n > o->nblocks - b0)
		n = o->nblocks - b0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->id = ++d->next_revoke_id | (1ull << 63); /* never collides with a mount's request id */
	r->b0 = b0;
	r->n = n;
	r->done = done;
	r->ctx = ctx;
	r->deadline = daemon_mono_ms() + ACK_TIMEOUT_MS;
	/* From now on these blocks are neither present nor fetched. */
	for (uint32_t b = b0; b < b0 + n; b++)
		bit_set(o->revoking, b);
	obj_drop_blocks(d, o, b0, n);
	for (struct conn *c = d->conns; c; c = c->next) {
		if (atomic_load(&c->dead) || !c->registered)
			continue;
		for (uint32_t h = 1; h <= c->nhandles; h++) {
			struct ring_entry e = { .id = r->id, .handle = h, .op = RING_REVOKE };

			if (c->handles[h - 1].obj != o)
				continue;
			if (r->npeers == cap) {
				size_t nc = cap ? cap * 2 : 4;
				struct revoke_peer *np = realloc(r->peers, nc * sizeof(*np));

				if (!np)
					continue; /* cannot track it: that mount gets no REVOKE */
				r->peers = np;
				cap = nc;
			}
			r->peers[r->npeers].c = c;
			r->peers[r->npeers].handle = h;
			r->npeers++;
			e.off = (uint64_t)b0 << PROTO_BLOCK_SHIFT;
			e.len = ((uint64_t)(b0 + n) << PROTO_BLOCK_SHIFT > o->rec.size
					 ? o->rec.size
					 : (uint64_t)(b0 + n) << PROTO_BLOCK_SHIFT) -
				e.off;
			conn_complete(d, c, &e);
		}
	}
	r->next = o->revokes;
	o->revokes = r;
	try_finish(d, o, r);
	return 0;
}

static void peer_done(struct daemon *d, struct obj *o, struct revoke *r, size_t i)
{
	r->peers[i] = r->peers[--r->npeers];
	try_finish(d, o, r);
}

void revoke_ack(struct daemon *d, struct conn *c, struct obj *o, const struct ring_entry *e)
{
	for (struct revoke *r = o->revokes; r; r = r->next) {
		if (r->id != e->id)
			continue;
		for (size_t i = 0; i < r->npeers; i++) {
			if (r->peers[i].c == c && r->peers[i].handle == e->handle) {
				peer_done(d, o, r, i);
				return;
			}
		}
	}
	/* An ack nobody waits for (late, or forged): ignored. */
}

void revoke_handle_gone(struct daemon *d, struct conn *c, uint32_t h, struct obj *o)
{
	for (struct revoke *r = o->revokes, *next; r; r = next) {
		next = r->next;
		for (size_t i = 0; i < r->npeers;) {
			if (r->peers[i].c == c && r->peers[i].handle == h) {
				r->peers[i] = r->peers[--r->npeers];
				continue;
			}
			i++;
		}
		try_finish(d, o, r);
	}
}

void revoke_fetch_ended(struct daemon *d, struct obj *o)
{
	for (struct revoke *r = o->revokes, *next; r; r = next) {
		next = r->next;
		try_finish(d, o, r);
	}
}

/* Forgets the acks a dying connection owed, on every object it had open. */
void revoke_conn_gone(struct daemon *d, struct conn *c)
{
	for (uint32_t h = 1; h <= c->nhandles; h++) {
		struct obj *o = c->handles[h - 1].obj;

		if (!o)
			continue;
		for (struct revoke *r = o->revokes, *next; r; r = next) {
			next = r->next;
			for (size_t i = 0; i < r->npeers;) {
				if (r->peers[i].c == c) {
					r->peers[i] = r->peers[--r->npeers];
					continue;
				}
				i++;
			}
			try_finish(d, o, r);
		}
	}
}

/* Mounts that do not acknowledge within ACK_TIMEOUT_MS are disconnected (engine, each second). */
void revoke_tick(struct daemon *d, struct obj *o)
{
	uint64_t now = daemon_mono_ms();

	for (struct revoke *r = o->revokes; r; r = r->next) {
		if (now < r->deadline || !r->npeers)
			continue;
		for (size_t i = 0; i < r->npeers; i++) {
			log_warn("mount %" PRIu64
				 " (pid %d) did not give back blocks of %s in time; "
				 "disconnecting it",
				 r->peers[i].c->mount_id, (int)r->peers[i].c->pid, o->rec.name);
			shutdown(r->peers[i].c->fd, SHUT_RDWR);
		}
		r->deadline = now + ACK_TIMEOUT_MS;
	}
}
