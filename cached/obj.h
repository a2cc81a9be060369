/* obj: the in-memory object state shared by objects.c, revoke.c and jobs.c (engine thread).
 * Not for other modules: they use the functions in daemon.h. */
#ifndef HOARDFS_OBJ_H
#define HOARDFS_OBJ_H

#include "cached/daemon.h"
#include "common/seq.h"

#define TABLE_SIZE 16384 /* hash buckets of the object table */

/* A reader waiting for blocks: answered with PRESENT (or ERROR) on its ring. */
struct waiter {
	struct waiter *next;
	struct conn *c; /* no reference: objects_conn_gone() removes a dying conn's waiters */
	uint64_t id;
	uint32_t handle;
	uint64_t off, len;
	uint32_t b0, b1; /* blocks [b0, b1) */
	bool prefetch;
};

struct obj {
	_Atomic int refs;
	struct obj *id_next; /* table chains */
	struct obj *key_next;
	struct obj *idle_prev, *idle_next; /* idle list: no opens, no fetches, no waiters */
	bool in_table;
	bool idle;
	struct meta_object rec; /* the durable record (name, version, size, checksums) */
	struct bucket *bk;
	struct store *store; /* bk->store, kept after bk is released (buckets live forever) */
	uint32_t nblocks;
	int fd;	 /* O_RDWR, for fetches */
	int rfd; /* O_RDONLY, handed to mounts */
	/* engine-only state */
	uint8_t *present;
	uint8_t *inflight;
	struct seq_streams streams; /* recent sequential streams of demand, by any reader */
	uint32_t *crcs;
	uint32_t npresent;
	int opens;
	int pins; /* open handles served by passthrough: no block may be revoked or punched */
	struct open_wait *open_waits; /* OPENs answered once the object is complete */
	struct obj *tick_next;	      /* objects_tick's list of objects with open_waits */
	int fetching;		      /* GETs in flight */
	int fetch_thread; /* the fetch thread that writes this object's GETs (fetch.c) */
	struct waiter *waiters;
	bool loading;	  /* prefetching the whole object (on objtab.loading) */
	bool speculative; /* loading only because a sibling shard was opened: lowest priority */
	int spec_gets;	  /* GETs started while speculative, still in flight (plan.c) */
	uint32_t pf_next;
	uint32_t pf_origin; /* where the reader was when loading started or last moved */
	bool windowed;	    /* large next to the cache: prefetch only up to pf_until */
	uint32_t pf_until;
	struct obj *load_next; /* objtab.loading list */
	bool gone;	       /* the store no longer has this version */
	int enospc_retries;
	uint8_t *revoking;	   /* blocks being taken back from mounts: not fetched now */
	struct revoke *revokes;	   /* revocations in progress (revoke.c) */
	struct obj_watch *watches; /* jobs following this object (jobs.c) */
	bool doomed;		   /* evict at the last close (inspect evict) */
	bool bad;		   /* the store's bytes fail its own checksum: reads fail */
};

/* An OPEN that waits for its object to be complete (PROTO_OPEN_F_WAIT). */
struct open_wait {
	struct open_wait *next;
	struct conn *c; /* reference */
	uint32_t seq;
	uint32_t flags;
	uint64_t deadline_ms;
};

/* A job that follows an object's progress (warm). Callbacks run on the engine thread. */
struct obj_watch {
	struct obj_watch *next;
	/* `added` bytes became present; `complete` once every block is. */
	void (*progress)(struct daemon *d, struct obj *o, void *ctx, uint64_t added, bool complete);
	/* fetching failed for good with `status`. */
	void (*failed)(struct daemon *d, struct obj *o, void *ctx, int status);
	void *ctx;
};

struct objtab {
	struct obj *by_id[TABLE_SIZE];
	struct obj *by_key[TABLE_SIZE];
	struct obj *idle_head, *idle_tail;
	size_t nidle;
	struct obj *loading; /* objects being prefetched whole */
	uint64_t bytes_cached;
	int spec_inflight; /* sum of spec_gets: speculative GETs in flight */
};

static inline bool bit(const uint8_t *m, uint32_t b)
{
	return m[b >> 3] & (1u << (b & 7));
}

static inline void bit_set(uint8_t *m, uint32_t b)
{
	m[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static inline void bit_clear(uint8_t *m, uint32_t b)
{
	m[b >> 3] &= (uint8_t) ~(1u << (b & 7));
}

static inline uint64_t block_bytes(const struct obj *o, uint32_t b)
{
	uint64_t start = (uint64_t)b << PROTO_BLOCK_SHIFT;
	uint64_t end = start + PROTO_BLOCK_SIZE;

	return (end > o->rec.size ? o->rec.size : end) - start;
}

/* Largest demand GET, and largest FETCH a mount may ask for. */
#define PLAN_DEMAND_MAX (64ull << 20)

/* objects.c internals shared with plan.c, revoke.c and jobs.c */
void obj_closed(struct daemon *d, struct obj *o);
/* Puts an object that nobody uses on the idle list (trimmed to a few thousand). */
void obj_maybe_idle(struct daemon *d, struct obj *o);
void obj_drop_blocks(struct daemon *d, struct obj *o, uint32_t b0, uint32_t n);
int obj_find_or_load(struct daemon *d, struct bucket *bk, const struct store_object *so,
		     struct obj **out);
/* plan.c: what to fetch next */
void obj_loading(struct daemon *d, struct obj *o, uint32_t from, bool force);
void obj_stop_loading(struct daemon *d, struct obj *o);
/* Starts GETs for absent blocks of [b0, b1), in runs of at most max_blocks; demand = a reader
 * waits (no budget), else at most `budget` GETs. Returns how many started. */
int plan_fetch_range(struct daemon *d, struct obj *o, uint32_t b0, uint32_t b1, uint32_t max_blocks,
		     bool demand, int budget);
/* Decides what a demand (or a mount's PREFETCH) for blocks [b0, b1) fetches. */
void plan_demand(struct daemon *d, struct obj *o, uint32_t b0, uint32_t b1, bool prefetch);
/* A GET of o ended: its slot is free (and, if speculative, its share of the speculative ones). */
void plan_fetch_ended(struct daemon *d, struct obj *o);
/* Blocks of the next prefetch GET of loading object o from block b, `loads` objects loading. */
uint32_t plan_get_blocks(const struct daemon *d, const struct obj *o, uint32_t b, int loads);
void obj_reschedule_waiters(struct daemon *d, struct obj *o);
/* revoke.c */
void revoke_fetch_ended(struct daemon *d, struct obj *o);
void revoke_ack(struct daemon *d, struct conn *c, struct obj *o, const struct ring_entry *e);
void revoke_conn_gone(struct daemon *d, struct conn *c);
/* A handle was closed: it owes no acknowledgement any more. */
void revoke_handle_gone(struct daemon *d, struct conn *c, uint32_t h, struct obj *o);
void revoke_tick(struct daemon *d, struct obj *o);
/* jobs.c */
void jobs_progress(struct daemon *d, struct obj *o, uint64_t added);
void jobs_failed(struct daemon *d, struct obj *o, int status);

#endif
