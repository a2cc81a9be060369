/* jobs: long-running inspect commands. `warm` pre-pulls every object under a URL: a worker lists
 * them, then the engine pins up to `parallel` of them at a time and prefetches each whole. `verify`
 * re-reads cached blocks on a worker, compares them with the crc32c recorded at write time (and
 * complete objects with the store's checksums), and has the engine drop what is corrupt. */
#include "cached/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cached/obj.h"
#include "common/crc32c.h"
#include "common/log.h"

#define JOBS_KEPT     64 /* finished jobs remembered for `job` queries */
#define ERRORS_KEPT   32
#define WARM_MAX_OBJS 200000

struct job_item {
	struct store_object so;
	struct obj *o; /* pinned while active */
	struct obj_watch w;
	struct job *job;
	int state; /* 0 pending, 1 active, 2 done, 3 failed */
};

/* ---- bookkeeping ---- */

static struct job *job_new(struct daemon *d, enum job_kind kind, const char *url)
{
	struct job *j = calloc(1, sizeof(*j)), **pp;
	int n = 0;

	if (!j)
		return NULL;
	pthread_mutex_init(&j->lock, NULL);
	j->id = ++d->next_job_id;
	j->kind = kind;
	j->started = daemon_now();
	snprintf(j->url, sizeof(j->url), "%s", url);
	atomic_init(&j->state, JOB_RUNNING);
	/* Forget the oldest finished jobs beyond JOBS_KEPT. */
	for (pp = &d->jobs; *pp; n++) {
		struct job *x = *pp;

		if (n >= JOBS_KEPT && atomic_load(&x->state) != JOB_RUNNING && !x->refs) {
			*pp = x->next;
			job_free(x);
			continue;
		}
		pp = &x->next;
	}
	j->next = d->jobs;
	d->jobs = j;
	return j;
}

void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nerrors; i++)
		free(j->errors[i]);
	for (size_t i = 0; i < j->ncorrupt; i++)
		free(j->corrupt[i].url);
	free(j->corrupt);
	free(j->items);
	free(j);
}

struct job *jobs_find(struct daemon *d, uint64_t id)
{
	for (struct job *j = d->jobs; j; j = j->next) {
		if (j->id == id)
			return j;
	}
	return NULL;
}

void job_error(struct job *j, const char *fmt, ...)
{
	char line[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warn("job %" PRIu64 ": %s", j->id, line);
	pthread_mutex_lock(&j->lock);
	if (j->nerrors < ERRORS_KEPT)
		j->errors[j->nerrors++] = strdup(line);
	pthread_mutex_unlock(&j->lock);
}

void jobs_fini(struct daemon *d)
{
	while (d->jobs) {
		struct job *j = d->jobs;

		d->jobs = j->next;
		if (j->bk)
			bucket_put(d, j->bk);
		job_free(j);
	}
}

/* ---- warm ---- */

static void warm_pump(struct daemon *d, struct job *j);

static void item_finish(struct daemon *d, struct job_item *it, int state)
{
	struct job *j = it->job;
	struct obj *o = it->o;

	if (o) {
		for (struct obj_watch **pp = &o->watches; *pp; pp = &(*pp)->next) {
			if (*pp == &it->w) {
				*pp = it->w.next;
				break;
			}
		}
		if (state != 2)
			obj_stop_loading(d, o);
		it->o = NULL;
		obj_closed(d, o); /* unpin */
	}
	it->state = state;
	j->active--;
	if (state == 2)
		atomic_fetch_add(&j->objects_done, 1);
	else if (state == 3)
		atomic_fetch_add(&j->objects_failed, 1);
	warm_pump(d, j);
}

static void warm_progress(struct daemon *d, struct obj *o, void *ctx, uint64_t added, bool complete)
{
	struct job_item *it = ctx;

	if (atomic_load(&it->job->state) != JOB_RUNNING)
		return;
	atomic_fetch_add(&it->job->bytes_done, added);
	if (complete)
		item_finish(d, it, 2);
}

static void warm_failed(struct daemon *d, struct obj *o, void *ctx, int status)
{
	struct job_item *it = ctx;

	if (atomic_load(&it->job->state) != JOB_RUNNING)
		return;
	job_error(it->job, "%s: %s", it->so.name, strerror(-status));
	item_finish(d, it, 3);
}

/* Starts objects until `parallel` are in flight; ends the job when all are through. */
static void warm_pump(struct daemon *d, struct job *j)
{
	while (atomic_load(&j->state) == JOB_RUNNING && j->active < j->parallel &&
	       j->next_item < j->nitems) {
		struct job_item *it = &j->items[j->next_item++];
		struct obj *o;
		int rc;

		it->job = j;
		if (it->so.size > evict_limit(d)) {
			job_error(j, "%s: larger than the cache limit", it->so.name);
			it->state = 3;
			atomic_fetch_add(&j->objects_failed, 1);
			continue;
		}
		rc = obj_find_or_load(d, j->bk, &it->so, &o);
		if (rc) {
			job_error(j, "%s: %s", it->so.name, strerror(-rc));
			it->state = 3;
			atomic_fetch_add(&j->objects_failed, 1);
			continue;
		}
		if (o->npresent == o->nblocks) {
			it->state = 2;
			atomic_fetch_add(&j->objects_done, 1);
			atomic_fetch_add(&j->bytes_done, it->so.size);
			continue;
		}
		o->opens++; /* pinned: not evicted while warming */
		atomic_fetch_add(&j->bytes_done,
				 (uint64_t)o->npresent << PROTO_BLOCK_SHIFT > it->so.size
					 ? it->so.size
					 : (uint64_t)o->npresent << PROTO_BLOCK_SHIFT);
		it->o = o;
		it->state = 1;
		it->w.progress = warm_progress;
		it->w.failed = warm_failed;
		it->w.ctx = it;
		it->w.next = o->watches;
		o->watches = &it->w;
		j->active++;
		obj_loading(d, o, 0, true);
		if (!o->loading && !o->fetching) {
			/* Nothing could start (the store gone, say): treat as failed. */
			job_error(j, "%s: could not start fetching", it->so.name);
			item_finish(d, it, 3);
			return;
		}
	}
	objects_pump(d);
	if (atomic_load(&j->state) == JOB_RUNNING && j->active == 0 && j->next_item == j->nitems) {
		atomic_store(&j->state, atomic_load(&j->objects_failed) ? JOB_FAILED : JOB_DONE);
		j->finished = daemon_now();
		log_info("warm job %" PRIu64 " (%s) finished: %" PRIu64 " objects, %" PRIu64
			 " failed",
			 j->id, j->url, atomic_load(&j->objects_done),
			 atomic_load(&j->objects_failed));
	}
}

void jobs_progress(struct daemon *d, struct obj *o, uint64_t added)
{
	bool complete = o->npresent == o->nblocks;

	for (struct obj_watch *w = o->watches, *next; w; w = next) {
		next = w->next;
		w->progress(d, o, w->ctx, added, complete);
	}
}

void jobs_failed(struct daemon *d, struct obj *o, int status)
{
	for (struct obj_watch *w = o->watches, *next; w; w = next) {
		next = w->next;
		w->failed(d, o, w->ctx, status);
	}
}

struct warm_listing {
	struct job_item *items;
	size_t n, cap;
	uint64_t bytes;
	const char *exact; /* the URL named one object: keep only it */
	bool exact_found;
};

static int warm_collect(void *ctx, const struct store_object *o, bool is_prefix)
{
	struct warm_listing *wl = ctx;

	if (is_prefix || o->size == 0)
		return 0;
	if (o->name[strlen(o->name) - 1] == '/')
		return 0; /* a directory placeholder */
	if (wl->n == wl->cap) {
		size_t cap = wl->cap ? wl->cap * 2 : 64;
		struct job_item *ni;

		if (wl->n >= WARM_MAX_OBJS)
			return -EFBIG;
		ni = realloc(wl->items, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		wl->items = ni;
		wl->cap = cap;
	}
	memset(&wl->items[wl->n], 0, sizeof(wl->items[0]));
	wl->items[wl->n].so = *o;
	wl->n++;
	wl->bytes += o->size;
	return 0;
}

struct warm_start {
	struct task t;
	struct conn *c;
	uint32_t seq;
	struct bucket *bk;
	char url[PROTO_URL_MAX];
	int parallel;
	int status;
	struct warm_listing wl;
};

static void warm_start_run(struct daemon *d, struct task *t)
{
	struct warm_start *ws = (struct warm_start *)t;
	char reply[256];
	struct job *j;

	if (ws->status) {
		char err[PROTO_URL_MAX + 128];

		snprintf(err, sizeof(err), "nothing to warm at %s: %s", ws->url,
			 ws->status == -ENOENT ? "no objects there" : strerror(-ws->status));
		ctl_reply_error(ws->c, ws->seq, ws->status, err);
		goto out;
	}
	j = job_new(d, JOB_WARM, ws->url);
	if (!j) {
		conn_reply(ws->c, PROTO_CTL, ws->seq, -ENOMEM, NULL, 0, NULL, 0);
		goto out;
	}
	j->bk = ws->bk;
	ws->bk = NULL;
	j->items = ws->wl.items;
	j->nitems = ws->wl.n;
	ws->wl.items = NULL;
	j->parallel = ws->parallel;
	atomic_store(&j->bytes_total, ws->wl.bytes);
	snprintf(reply, sizeof(reply),
		 "{\"job\":%" PRIu64 ",\"objects\":%zu,\"bytes\":%" PRIu64 "}", j->id, j->nitems,
		 ws->wl.bytes);
	conn_reply(ws->c, PROTO_CTL, ws->seq, 0, reply, strlen(reply), NULL, 0);
	log_info("warm job %" PRIu64 ": %s, %zu objects", j->id, j->url, j->nitems);
	warm_pump(d, j);
out:
	if (ws->bk)
		bucket_put(d, ws->bk);
	free(ws->wl.items);
	conn_put(ws->c);
	free(ws);
}

/* Worker: resolve the bucket and list what to warm, then hand over to the engine. */
static void warm_list(struct daemon *d, struct http_client *hc, struct md_job *mj)
{
	struct warm_req *wr = mdsvc_job_arg(mj);
	struct warm_start *ws = calloc(1, sizeof(*ws));
	struct bucket_url bu;
	int rc;

	if (!ws) {
		conn_reply(wr->c, PROTO_CTL, wr->seq, -ENOMEM, NULL, 0, NULL, 0);
		goto out;
	}
	ws->t.fn = warm_start_run;
	ws->c = conn_get(wr->c);
	ws->seq = wr->seq;
	ws->parallel = wr->parallel;
	snprintf(ws->url, sizeof(ws->url), "%s", wr->url);
	rc = url_parse_bucket(wr->url, &bu);
	/* No endpoint given: the bucket the mounts use, if the daemon knows exactly one. */
	if (!rc && !wr->endpoint[0] && !wr->region[0] && !wr->anonymous)
		ws->bk = mdsvc_known_bucket(d, bu.scheme, bu.bucket);
	if (!rc && !ws->bk)
		rc = mdsvc_bucket(d, conn_uid(wr->c), conn_pid(wr->c), &bu, wr->endpoint,
				  wr->region, wr->anonymous, &ws->bk);
	if (!rc)
		rc = store_list(ws->bk->store, hc, wr->name, NULL, 0, warm_collect, &ws->wl);
	if (!rc && wr->name[0] && wr->name[strlen(wr->name) - 1] != '/') {
		/* An object name: that object if it exists, else everything under name + "/". */
		size_t keep = 0;
		bool exact = false;

		for (size_t i = 0; i < ws->wl.n; i++) {
			if (strcmp(ws->wl.items[i].so.name, wr->name) == 0) {
				ws->wl.items[0] = ws->wl.items[i];
				exact = true;
				break;
			}
		}
		if (exact) {
			ws->wl.n = 1;
			ws->wl.bytes = ws->wl.items[0].so.size;
		} else {
			size_t nl = strlen(wr->name);

			ws->wl.bytes = 0;
			for (size_t i = 0; i < ws->wl.n; i++) {
				if (ws->wl.items[i].so.name[nl] == '/') {
					ws->wl.items[keep++] = ws->wl.items[i];
					ws->wl.bytes += ws->wl.items[i].so.size;
				}
			}
			ws->wl.n = keep;
		}
	}
	if (!rc && ws->wl.n == 0)
		rc = -ENOENT;
	ws->status = rc;
	engine_post(d, &ws->t);
out:
	conn_put(wr->c);
	free(wr);
}

void jobs_warm(struct daemon *d, struct warm_req *wr)
{
	mdsvc_run(d, NULL, warm_list, wr);
}

int jobs_cancel(struct daemon *d, struct job *j)
{
	if (atomic_load(&j->state) != JOB_RUNNING)
		return -EALREADY;
	atomic_store(&j->state, JOB_CANCELLED);
	j->finished = daemon_now();
	if (j->kind == JOB_WARM) {
		for (size_t i = 0; i < j->nitems; i++) {
			struct job_item *it = &j->items[i];

			if (it->state == 1) {
				struct obj *o = it->o;

				for (struct obj_watch **pp = &o->watches; *pp; pp = &(*pp)->next) {
					if (*pp == &it->w) {
						*pp = it->w.next;
						break;
					}
				}
				obj_stop_loading(d, o);
				it->o = NULL;
				it->state = 0;
				j->active--;
				obj_closed(d, o);
			}
		}
	}
	log_info("job %" PRIu64 " cancelled", j->id);
	return 0;
}

/* ---- verify ---- */

struct verify_obj {
	struct meta_object rec;
	char bucket_key[META_BUCKET_KEY_MAX + 1];
};

struct verify_scan {
	struct daemon *d;
	struct job *j;
	struct verify_obj *objs;
	size_t n, cap;
	enum url_scheme scheme;
	char bucket[URL_BUCKET_MAX + 1];
	char name[URL_KEY_MAX + 1];
	bool any;
};

/* Whether a bucket key ("gs|endpoint|bucket|auth|region") is scheme + bucket. */
bool jobs_key_matches(const char *key, enum url_scheme scheme, const char *bucket)
{
	const char *p = strchr(key, '|'), *q;
	size_t blen = strlen(bucket);

	if (!p || (size_t)(p - key) != 2 || strncmp(key, url_scheme_name(scheme), 2) != 0)
		return false;
	q = strchr(p + 1, '|');
	if (!q || strncmp(q + 1, bucket, blen) != 0 || q[1 + blen] != '|')
		return false;
	return true;
}

static int verify_collect(void *ctx, const struct meta_object *o)
{
	struct verify_scan *vs = ctx;
	char key[META_BUCKET_KEY_MAX + 1];

	if (meta_bucket_key(vs->d->meta, o->bucket_id, key, sizeof(key)))
		return 0;
	if (!vs->any && (!jobs_key_matches(key, vs->scheme, vs->bucket) ||
			 strncmp(o->name, vs->name, strlen(vs->name)) != 0))
		return 0;
	if (vs->n == vs->cap) {
		size_t cap = vs->cap ? vs->cap * 2 : 16;
		struct verify_obj *no = realloc(vs->objs, cap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		vs->objs = no;
		vs->cap = cap;
	}
	vs->objs[vs->n].rec = *o;
	memcpy(vs->objs[vs->n].bucket_key, key, sizeof(key));
	vs->n++;
	return 0;
}

struct drop_task {
	struct task t;
	uint64_t id;
	uint64_t size;
	uint32_t nblocks;
	uint32_t *blocks;
	size_t n;
	struct job *j;
};

/* Engine, once the clear of a block of a non-resident object is durable: punches it. */
struct punch_task {
	struct task t;
	int status;
	uint64_t id;
	uint32_t block;
	uint64_t len;
};

static void punch_run(struct daemon *d, struct task *t)
{
	struct punch_task *pt = (struct punch_task *)t;
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "%016" PRIx64, pt->id);
	if (!pt->status && (fd = openat(d->objects_dirfd, name, O_RDWR | O_CLOEXEC)) >= 0) {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)pt->block << PROTO_BLOCK_SHIFT, (off_t)pt->len) < 0)
			log_warn("punch: %s", strerror(errno));
		close(fd);
	}
	free(pt);
}

/* Engine: drops corrupt blocks of one object. A resident object goes through revocation (mounts
 * give them back, no GET is writing, the clear is durable, then the punch); one that is not
 * resident has no mount and no GET: clear, wait for the commit, punch. */
static void drop_run(struct daemon *d, struct task *t)
{
	struct drop_task *dt = (struct drop_task *)t;
	struct obj *o = objects_find_id(d, dt->id);

	for (size_t i = 0; i < dt->n; i++) {
		uint32_t b = dt->blocks[i];

		if (o) {
			objects_revoke(d, o, b, 1, NULL, NULL);
		} else {
			struct punch_task *pt = calloc(1, sizeof(*pt));
			uint64_t off = (uint64_t)b << PROTO_BLOCK_SHIFT;
			uint64_t len = dt->size - off < PROTO_BLOCK_SIZE ? dt->size - off
									 : PROTO_BLOCK_SIZE;

			writer_clear_blocks(d, dt->id, b, 1);
			objects_account(d, -(int64_t)len);
			if (!pt)
				continue;
			pt->t.fn = punch_run;
			pt->id = dt->id;
			pt->block = b;
			pt->len = len;
			writer_barrier(d, &pt->t, &pt->status);
		}
	}
	dt->j->refs--;
	free(dt->blocks);
	free(dt);
}

static void add_corrupt(struct job *j, const struct verify_obj *vo, uint32_t b)
{
	char url[PROTO_URL_MAX + URL_KEY_MAX];
	const char *p = strchr(vo->bucket_key, '|'), *q = p ? strchr(p + 1, '|') : NULL;
	const char *e = q ? strchr(q + 1, '|') : NULL;

	snprintf(url, sizeof(url), "%.2s://%.*s/%s", vo->bucket_key, e ? (int)(e - q - 1) : 0,
		 q ? q + 1 : "", vo->rec.name);
	atomic_fetch_add(&j->corrupt_blocks, 1);
	pthread_mutex_lock(&j->lock);
	if (j->ncorrupt < 1000) {
		struct job_corrupt *nc = realloc(j->corrupt, (j->ncorrupt + 1) * sizeof(*nc));

		if (nc) {
			j->corrupt = nc;
			j->corrupt[j->ncorrupt].url = strdup(url);
			j->corrupt[j->ncorrupt].block = b;
			j->ncorrupt++;
		}
	}
	pthread_mutex_unlock(&j->lock);
}

/* Verifies one object; returns the corrupt blocks (malloc'ed) in *bad. */
static size_t verify_one(struct daemon *d, struct job *j, const struct verify_obj *vo,
			 uint32_t **bad)
{
	const struct meta_object *r = &vo->rec;
	uint32_t nblocks = (uint32_t)((r->size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);
	uint8_t *map = calloc(1, (nblocks + 7) / 8 + 1);
	uint32_t *crcs = calloc((size_t)nblocks + 1, sizeof(uint32_t)), present = 0, whole = 0;
	char *buf = malloc(PROTO_BLOCK_SIZE), name[32];
	EVP_MD_CTX *md5 = EVP_MD_CTX_new();
	size_t nbad = 0;
	int fd = -1;

	*bad = NULL;
	if (!map || !crcs || !buf || !md5 ||
	    meta_blocks_load(d->meta, r->id, nblocks, map, crcs, &present) || !present)
		goto out;
	*bad = calloc(nblocks, sizeof(uint32_t));
	snprintf(name, sizeof(name), "%016" PRIx64, r->id);
	fd = openat(d->objects_dirfd, name, O_RDONLY | O_CLOEXEC);
	if (!*bad || fd < 0)
		goto out;
	EVP_DigestInit_ex(md5, EVP_md5(), NULL);
	for (uint32_t b = 0;
	     b < nblocks && atomic_load(&j->state) == JOB_RUNNING && !atomic_load(&d->stopping);
	     b++) {
		uint64_t off = (uint64_t)b << PROTO_BLOCK_SHIFT;
		size_t len = (size_t)(r->size - off < PROTO_BLOCK_SIZE ? r->size - off
								       : PROTO_BLOCK_SIZE);
		uint32_t crc;

		if (!(map[b >> 3] & (1u << (b & 7))))
			continue;
		if (pread(fd, buf, len, (off_t)off) != (ssize_t)len) {
			(*bad)[nbad++] = b;
			continue;
		}
		crc = crc32c_update(0, buf, len);
		atomic_fetch_add(&j->blocks_checked, 1);
		atomic_fetch_add(&j->bytes_done, len);
		if (crc != crcs[b]) {
			(*bad)[nbad++] = b;
			add_corrupt(j, vo, b);
			continue;
		}
		whole = crc32c_combine(whole, crc, len);
		EVP_DigestUpdate(md5, buf, len);
	}
	if (!nbad && present == nblocks && atomic_load(&j->state) == JOB_RUNNING) {
		unsigned char dig[EVP_MAX_MD_SIZE];
		unsigned int dlen = 0;
		bool bad_whole = false;

		EVP_DigestFinal_ex(md5, dig, &dlen);
		if ((r->flags & META_OBJ_HAS_CRC32C) && whole != r->crc32c)
			bad_whole = true;
		if ((r->flags & META_OBJ_HAS_MD5) && (dlen != 16 || memcmp(dig, r->md5, 16) != 0))
			bad_whole = true;
		if (bad_whole) {
			/* Every block matches what was received, but not what the store holds:
			 * the whole object goes. */
			job_error(j, "%s: checksum of the whole object differs from the store's",
				  r->name);
			for (uint32_t b = 0; b < nblocks; b++) {
				(*bad)[nbad++] = b;
				add_corrupt(j, vo, b);
			}
		}
	}
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(md5);
	free(map);
	free(crcs);
	free(buf);
	return nbad;
}

static void verify_main(struct daemon *d, struct http_client *hc, struct md_job *mj)
{
	struct job *j = mdsvc_job_arg(mj);
	struct verify_scan vs = { .d = d, .j = j };
	struct bucket_url bu;
	uint64_t total = 0;

	if (!j->url[0]) {
		vs.any = true;
	} else if (jobs_parse_object_url(j->url, &bu, vs.name, sizeof(vs.name)) == 0) {
		vs.scheme = bu.scheme;
		snprintf(vs.bucket, sizeof(vs.bucket), "%s", bu.bucket);
	}
	meta_object_scan(d->meta, verify_collect, &vs);
	for (size_t i = 0; i < vs.n; i++)
		total += vs.objs[i].rec.size;
	atomic_store(&j->bytes_total, total);
	atomic_store(&j->objects_total, vs.n);
	for (size_t i = 0;
	     i < vs.n && atomic_load(&j->state) == JOB_RUNNING && !atomic_load(&d->stopping); i++) {
		uint32_t *bad;
		size_t nbad = verify_one(d, j, &vs.objs[i], &bad);

		atomic_fetch_add(&j->objects_done, 1);
		if (nbad) {
			struct drop_task *dt = calloc(1, sizeof(*dt));

			if (dt) {
				dt->t.fn = drop_run;
				dt->id = vs.objs[i].rec.id;
				dt->size = vs.objs[i].rec.size;
				dt->blocks = bad;
				dt->n = nbad;
				dt->j = j;
				bad = NULL;
				engine_call_task(d, &dt->t, j);
			}
		}
		free(bad);
	}
	free(vs.objs);
	if (atomic_load(&j->state) == JOB_RUNNING) {
		j->finished = daemon_now();
		atomic_store(&j->state, atomic_load(&j->corrupt_blocks) ? JOB_FAILED : JOB_DONE);
		log_info("verify job %" PRIu64 ": %" PRIu64 " blocks checked, %" PRIu64 " corrupt",
			 j->id, atomic_load(&j->blocks_checked), atomic_load(&j->corrupt_blocks));
	}
	j->refs--; /* the worker's reference; decremented last */
}

int jobs_verify(struct daemon *d, const char *url, uint64_t *id)
{
	struct job *j = job_new(d, JOB_VERIFY, url ? url : "");

	if (!j)
		return -ENOMEM;
	j->refs++;
	*id = j->id;
	mdsvc_run(d, NULL, verify_main, j);
	return 0;
}

/* Posts a drop task, counting it on the job so the job outlives it. */
void engine_call_task(struct daemon *d, struct task *t, struct job *j)
{
	j->refs++;
	engine_post(d, t);
}

int jobs_parse_object_url(const char *url, struct bucket_url *bu, char *name, size_t namesz)
{
	const char *rest, *slash;
	size_t blen;

	memset(bu, 0, sizeof(*bu));
	if (strncmp(url, "gs://", 5) == 0)
		bu->scheme = URL_GS;
	else if (strncmp(url, "s3://", 5) == 0)
		bu->scheme = URL_S3;
	else
		return -EINVAL;
	rest = url + 5;
	slash = strchr(rest, '/');
	blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0 || blen > URL_BUCKET_MAX)
		return -EINVAL;
	memcpy(bu->bucket, rest, blen);
	bu->bucket[blen] = '\0';
	if (!url_bucket_name_valid(bu->bucket))
		return -EINVAL;
	if (snprintf(name, namesz, "%s", slash ? slash + 1 : "") >= (int)namesz)
		return -ENAMETOOLONG;
	return 0;
}
