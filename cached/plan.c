/* plan: which GETs the daemon issues, and in what order (engine thread).
 *
 * Demand first: a reader's missing blocks get a GET of their own at once (a range already in
 * flight is waited for, not asked again). An object that is being loaded (a sequential stream,
 * an OPEN waiting for the whole file, warm) is prefetched whole, round robin with the other
 * loads, in GETs that grow with the distance from the reader: the first is --chunk-size (a short
 * wait for the bytes the reader needs next), each later one as long as the distance already
 * covered, up to --max-get, and never so long that the object would use fewer GETs than half its
 * share of the --max-inflight slots (one load alone still has 16 GETs in flight). A 1 GiB load is
 * ~19 GETs instead of 128 at a fixed 8 MiB, each paying the store's first-byte latency and
 * per-request cost once.
 *
 * A sharded model (name-00003-of-00008.safetensors) is loaded shard after shard: when a mount
 * waits for one shard whole, the next shards (up to --sibling-prefetch bytes) are loaded too, at
 * the lowest priority (only while no other GET is in flight) and with at most a quarter of the
 * slots, so the fetch of shard k+1 overlaps the reading of shard k instead of starting when the
 * loader opens it. */
#include "cached/daemon.h"
#include "cached/obj.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SMALL_OBJECT (16u << 20) /* fetched whole on first read */

static uint32_t cfg_blocks(uint64_t bytes)
{
	uint32_t n = (uint32_t)(bytes >> PROTO_BLOCK_SHIFT);

	return n ? n : 1;
}

/* Starts whole-object prefetch of o from block `from`; force = even if the object is large
 * compared with the cache (warm asked for it, or an OPEN waits for it). A reader's own request
 * makes a speculative load (a sibling shard) a real one. */
void obj_loading(struct daemon *d, struct obj *o, uint32_t from, bool force)
{
	uint64_t window = evict_limit(d) / 4;

	o->speculative = false;
	if (window > (1ull << 30))
		window = 1ull << 30;
	/* An object large next to the cache is prefetched through a window ahead of the reader
	 * (a quarter of the cache, at most 1 GiB), not whole. */
	o->windowed = !force && o->rec.size > evict_limit(d) / 2;
	if (o->windowed) {
		uint32_t until = from + (uint32_t)(window >> PROTO_BLOCK_SHIFT);

		if (until > o->pf_until)
			o->pf_until = until;
	}
	if (o->loading || o->npresent == o->nblocks || o->gone || o->bad)
		return;
	o->loading = true;
	o->pf_next = from;
	o->pf_origin = from;

	o->load_next = d->objs->loading;
	d->objs->loading = obj_get(o);
	log_debug("object %" PRIu64 " (%s) is being loaded: prefetching it whole", o->rec.id,
		  o->rec.name);
}

/* Takes o off the whole-object prefetch list. */
void obj_stop_loading(struct daemon *d, struct obj *o)
{
	if (!o->loading)
		return;
	for (struct obj **pp = &d->objs->loading; *pp; pp = &(*pp)->load_next) {
		if (*pp == o) {
			*pp = o->load_next;
			break;
		}
	}
	o->loading = false;
	o->speculative = false;
	o->load_next = NULL;
	obj_put(o);
}

static bool busy(const struct obj *o, uint32_t b)
{
	return bit(o->present, b) || bit(o->inflight, b) || bit(o->revoking, b);
}

int plan_fetch_range(struct daemon *d, struct obj *o, uint32_t b0, uint32_t b1, uint32_t max_blocks,
		     bool demand, int budget)
{
	int started = 0;
	uint32_t b = b0;

	while (b < b1 && (demand || started < budget)) {
		uint32_t e;

		if (busy(o, b)) {
			b++;
			continue;
		}
		e = b + 1;
		while (e < b1 && e - b < max_blocks && !busy(o, e))
			e++;
		if (fetch_blocks(d, o, b, e - b, demand) != 0)
			break;
		for (uint32_t k = b; k < e; k++)
			bit_set(o->inflight, k);
		o->fetching++;
		if (o->speculative && !demand) {
			o->spec_gets++;
			d->objs->spec_inflight++;
		}
		started++;
		b = e;
	}
	return started;
}

/* Blocks of the next prefetch GET of o that starts at block b, with `loads` objects loading. */
uint32_t plan_get_blocks(const struct daemon *d, const struct obj *o, uint32_t b, int loads)
{
	uint32_t first = cfg_blocks(d->cfg.chunk_size), most = cfg_blocks(d->cfg.max_get);
	uint32_t dist = b >= o->pf_origin ? b - o->pf_origin : b + (o->nblocks - o->pf_origin);
	uint32_t share, even, n;

	if (most < first)
		most = first;
	/* Half of each object's share of the slots: split it into at least that many GETs (all
	 * the slots for one object is more connections than a link needs: 8-16 here). */
	share = (uint32_t)(d->cfg.max_inflight / (2 * (loads > 0 ? loads : 1)));
	if (share < 1)
		share = 1;
	even = (o->nblocks + share - 1) / share;
	n = dist > first ? dist : first;
	if (n > even)
		n = even;
	if (n < first)
		n = first;
	return n < most ? n : most;
}

/* Starts at most one prefetch GET of loading object o; returns whether it did. Takes o off
 * the list (through *pp) when every block is present or in flight. */
static bool pump_one(struct daemon *d, struct obj ***pp, int loads)
{
	struct obj *o = **pp;
	uint32_t scanned = 0;
	int started = 0;

	while (!o->gone && scanned < o->nblocks && started == 0) {
		uint32_t from = o->pf_next % o->nblocks, n, to;

		while (from < o->nblocks && busy(o, from) && scanned < o->nblocks) {
			from++;
			scanned++;
		}
		if (from == o->nblocks) {
			o->pf_next = 0;
			if (o->windowed)
				break;
			continue;
		}
		n = plan_get_blocks(d, o, from, loads);
		to = from + n < o->nblocks ? from + n : o->nblocks;
		if (o->windowed && to > o->pf_until)
			to = o->pf_until;
		if (o->windowed && from >= to)
			break; /* the window is covered: the reader's next demand moves it */
		started = plan_fetch_range(d, o, from, to, n, false, 1);
		o->pf_next = o->windowed ? to : to % o->nblocks;
		scanned += to - from;
	}
	if (started) {
		*pp = &o->load_next;
		return true;
	}
	/* Nothing left to start: every block is present or in flight (or the window is). */
	o->loading = false;
	o->speculative = false;
	**pp = o->load_next;
	o->load_next = NULL;
	obj_put(o);
	return false;
}

/* Fills free fetch slots with prefetches of objects being loaded, round robin: first the loads
 * a reader waits for, then speculative ones (sibling shards), within a quarter of the slots and
 * only while every GET in flight is speculative: a sibling's GETs never share the link with the
 * shard a reader waits for (it would wait longer for its first byte), they fill the time the
 * loader spends reading it. */
void objects_pump(struct daemon *d)
{
	struct objtab *t = d->objs;
	int loads = 0, spec_slots = d->cfg.max_inflight / 4;

	if (spec_slots < 1)
		spec_slots = 1;
	for (struct obj *o = t->loading; o; o = o->load_next)
		loads++;
	for (int pass = 0; pass < 2; pass++) {
		bool progress = true;

		while (progress && fetch_slots(d) > 0) {
			progress = false;
			for (struct obj **pp = &t->loading; *pp && fetch_slots(d) > 0;) {
				if ((*pp)->speculative != (pass == 1)) {
					pp = &(*pp)->load_next;
					continue;
				}
				if (pass == 1 && (t->spec_inflight >= spec_slots ||
						  fetch_inflight(d) > t->spec_inflight))
					return;
				if (pump_one(d, &pp, loads))
					progress = true;
			}
		}
	}
}

void plan_demand(struct daemon *d, struct obj *o, uint32_t b0, uint32_t b1, bool prefetch)
{
	uint32_t chunk = cfg_blocks(d->cfg.chunk_size);
	uint32_t max_blocks = cfg_blocks(PLAN_DEMAND_MAX);

	if (o->rec.size <= SMALL_OBJECT) {
		/* Small files (configs, tokenizers, small shards): one GET for all of it. */
		plan_fetch_range(d, o, 0, o->nblocks, max_blocks, true, 0);
		return;
	}
	if (prefetch || seq_note(&o->streams, b0, b1))
		obj_loading(d, o, b0, false);
	if (prefetch) {
		/* An object too large to prefetch whole still gets the range asked for. */
		if (!o->loading)
			plan_fetch_range(d, o, b0, b1, chunk, false, INT32_MAX);
		objects_pump(d);
		return;
	}
	/* The demand itself goes first, at least a chunk when loading, else what was asked. */
	if (o->loading && b1 - b0 < chunk)
		b1 = b0 + chunk < o->nblocks ? b0 + chunk : o->nblocks;
	plan_fetch_range(d, o, b0, b1, o->loading ? chunk : max_blocks, true, 0);
	if (o->loading && (o->pf_next < b1 || o->pf_next > b1 + chunk)) {
		/* The reader moved: prefetch continues from it, GETs growing from there again. */
		o->pf_next = b1 < o->nblocks ? b1 : 0;
		o->pf_origin = b0;
	}
	objects_pump(d);
}

void plan_fetch_ended(struct daemon *d, struct obj *o)
{
	/* A GET that ends after its object was promoted still counts as speculative here: a GET's
	 * kind is not recorded per GET, and the count only has to be right once they all end. */
	if (o->spec_gets > 0) {
		o->spec_gets--;
		d->objs->spec_inflight--;
	}
	objects_pump(d);
}

void plan_siblings(struct daemon *d, struct bucket *bk, const struct store_object *sibs, int n)
{
	uint64_t budget = d->cfg.sibling_prefetch, queued = 0;
	uint64_t limit = evict_limit(d);

	/* Bytes already queued speculatively count against the budget: a loader opening shard
	 * after shard keeps the window ahead of it, not an ever-growing one. */
	for (struct obj *o = d->objs->loading; o; o = o->load_next) {
		if (o->speculative)
			queued += o->rec.size - (uint64_t)o->npresent * PROTO_BLOCK_SIZE;
	}
	for (int i = 0; i < n && queued < budget; i++) {
		struct obj *o;

		if (sibs[i].size > d->cfg.open_wait_max || sibs[i].size > limit / 2 ||
		    queued + sibs[i].size > budget)
			break;
		if (obj_find_or_load(d, bk, &sibs[i], &o))
			break;
		if (!o->loading && o->npresent < o->nblocks && !o->gone && !o->bad) {
			obj_loading(d, o, 0, true);
			o->speculative = true;
			queued += o->rec.size;
			atomic_fetch_add(&d->st.sibling_loads, 1);
		}
		obj_maybe_idle(d, o);
	}
	objects_pump(d);
}

/* Parses a shard name "<stem>-<k>-of-<n><ext>" (k and n decimal, k <= n, ext empty or starting
 * with '.'): returns the offset of <k> in `base` and sets k, n and the digits of k, or -1. */
int plan_shard_name(const char *base, unsigned *k, unsigned *n, int *width)
{
	const char *of = NULL, *p, *q;

	for (p = strstr(base, "-of-"); p; p = strstr(p + 1, "-of-"))
		of = p;
	if (!of || of == base)
		return -1;
	for (p = of; p > base && p[-1] >= '0' && p[-1] <= '9'; p--)
		;
	if (p == of || p == base || p[-1] != '-' || of - p > 9)
		return -1;
	for (q = of + 4; *q >= '0' && *q <= '9'; q++)
		;
	if (q == of + 4 || q - (of + 4) > 9 || (*q && *q != '.'))
		return -1;
	*k = (unsigned)strtoul(p, NULL, 10);
	*n = (unsigned)strtoul(of + 4, NULL, 10);
	*width = (int)(of - p);
	return *k <= *n ? (int)(p - base) : -1;
}
