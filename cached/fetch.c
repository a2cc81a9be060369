/* fetch: the fetch threads. Each runs one curl multi handle (its own connection pool) with many
 * ranged GETs in flight, writes bytes into the object file at their offset as they arrive,
 * computes a crc32c per 1 MiB block, and reports each finished block to the engine at once. */
#include "cached/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"

struct fetch_thread;

#define PAGE_BYTES 4096

struct fetch_job {
	struct fetch_job *next;
	struct fetch_thread *ft;
	struct daemon *d;
	struct obj *o; /* reference */
	struct store *store;
	char name[URL_KEY_MAX + 1];
	char version[PROTO_VERSION_MAX];
	uint64_t size;
	uint32_t b0, n;
	uint64_t off, len;
	bool demand;
	struct http_req *req;
	/* sink state (fetch thread) */
	uint32_t done;	     /* blocks fully received and reported */
	uint64_t skip_below; /* after a retry: body bytes below this are already in place */
	uint32_t cur_crc;
	uint32_t *crcs;
	/* Bytes are written in whole pages: a write that starts or ends inside a page the cache
	 * does not hold yet makes the file system zero the rest of it first. The unaligned tail of
	 * what arrived waits here (at job offset pend_off) until its page is complete. */
	char pend[PAGE_BYTES];
	size_t pend_len;
	uint64_t pend_off;
};

struct fetch_thread {
	pthread_t thr;
	struct daemon *d;
	struct http_client *hc;
	pthread_mutex_t lock;
	struct fetch_job *head, *tail; /* queued, not yet submitted */
	_Atomic int active;	       /* submitted and not finished */
	bool stop;
};

struct fetcher {
	struct fetch_thread *t;
	int n;
	_Atomic int inflight;
};

/* ---- tasks to the engine ---- */

struct progress_task {
	struct task t;
	struct obj *o;
	uint32_t b, n;
	uint32_t crcs[];
};

static void progress_run(struct daemon *d, struct task *t)
{
	struct progress_task *p = (struct progress_task *)t;

	objects_blocks_done(d, p->o, p->b, p->n, p->crcs);
	obj_put(p->o);
	free(p);
}

struct end_task {
	struct task t;
	struct obj *o;
	uint32_t b, n; /* blocks that did not arrive */
	int status;
};

static void end_run(struct daemon *d, struct task *t)
{
	struct end_task *e = (struct end_task *)t;

	atomic_fetch_sub(&d->fetch->inflight, 1);
	if (e->status && e->n)
		objects_blocks_failed(d, e->o, e->b, e->n, e->status);
	objects_fetch_ended(d, e->o);
	obj_put(e->o);
	free(e);
}

/* Reports blocks [job->done, upto) as finished. */
static int report_blocks(struct fetch_job *j, uint32_t upto)
{
	uint32_t n = upto - j->done;
	struct progress_task *p;

	if (!n)
		return 0;
	p = malloc(sizeof(*p) + n * sizeof(uint32_t));
	if (!p)
		return -ENOMEM;
	p->t.fn = progress_run;
	p->o = obj_get(j->o);
	p->b = j->b0 + j->done;
	p->n = n;
	memcpy(p->crcs, j->crcs + j->done, n * sizeof(uint32_t));
	j->done = upto;
	engine_post(j->d, &p->t);
	return 0;
}

/* ---- the sink ---- */

static uint64_t job_block_len(const struct fetch_job *j, uint32_t i)
{
	uint64_t start = (uint64_t)i << PROTO_BLOCK_SHIFT;

	return j->len - start < PROTO_BLOCK_SIZE ? j->len - start : PROTO_BLOCK_SIZE;
}

static int sink_reset(void *ctx)
{
	struct fetch_job *j = ctx;

	/* Blocks already reported came from a checked response for this version: keep them. */
	j->skip_below = (uint64_t)j->done << PROTO_BLOCK_SHIFT;
	j->cur_crc = 0;
	j->pend_len = 0;
	return 0;
}

static int write_all(struct fetch_job *j, const char *p, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t w =
			pwrite(obj_fd(j->o), p + done, len - done, (off_t)(j->off + off + done));

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)w;
	}
	return 0;
}

/* Stores body bytes [off, off+len) (job offsets) in whole pages; the unaligned tail waits in
 * pend. The job's end, the object's or a block's, is written at once. */
static int store(struct fetch_job *j, const char *p, size_t len, uint64_t off)
{
	size_t direct;
	int rc;

	if (j->pend_len) {
		size_t k = PAGE_BYTES - j->pend_len < len ? PAGE_BYTES - j->pend_len : len;

		memcpy(j->pend + j->pend_len, p, k);
		j->pend_len += k;
		p += k;
		len -= k;
		off += k;
		if (j->pend_len == PAGE_BYTES || off == j->len) {
			rc = write_all(j, j->pend, j->pend_len, j->pend_off);
			if (rc)
				return rc;
			j->pend_len = 0;
		}
		if (!len)
			return 0;
	}
	direct = off + len == j->len ? len : len & ~(size_t)(PAGE_BYTES - 1);
	if (direct) {
		rc = write_all(j, p, direct, off);
		if (rc)
			return rc;
	}
	if (len > direct) {
		memcpy(j->pend, p + direct, len - direct);
		j->pend_len = len - direct;
		j->pend_off = off + direct;
	}
	return 0;
}

static int sink_write(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct fetch_job *j = ctx;
	const char *p = data;
	uint32_t finished;
	int rc;

	if (off + len <= j->skip_below)
		return 0;
	if (off < j->skip_below) {
		p += j->skip_below - off;
		len -= (size_t)(j->skip_below - off);
		off = j->skip_below;
	}
	/* Block ends are page-aligned (or the job's end), so a finished block is in the file. */
	rc = store(j, p, len, off);
	if (rc)
		return rc;
	finished = j->done;
	while (len) {
		uint32_t bi = (uint32_t)(off >> PROTO_BLOCK_SHIFT);
		uint64_t within = off & (PROTO_BLOCK_SIZE - 1);
		uint64_t blen = job_block_len(j, bi);
		size_t k = (size_t)(blen - within < len ? blen - within : len);

		j->cur_crc = crc32c_update(j->cur_crc, p, k);
		p += k;
		off += k;
		len -= k;
		if (within + k == blen) {
			j->crcs[bi] = j->cur_crc;
			j->cur_crc = 0;
			finished = bi + 1;
		}
	}
	return report_blocks(j, finished);
}

/* ---- jobs ---- */

static void job_done(void *ctx, struct http_req *req, int status)
{
	struct fetch_job *j = ctx;
	struct end_task *e = calloc(1, sizeof(*e));

	if (status == 0 && j->done != j->n) {
		log_error("GET of %s [%llu, +%llu) ended with %u of %u blocks", j->name,
			  (unsigned long long)j->off, (unsigned long long)j->len, j->done, j->n);
		status = -EIO;
	}
	if (status) {
		atomic_fetch_add(&j->d->st.gets_failed, 1);
		if (status != -ECANCELED)
			log_warn("GET %s [%llu, +%llu) version %s failed: %s (%s)", j->name,
				 (unsigned long long)j->off, (unsigned long long)j->len, j->version,
				 strerror(-status), http_req_error(req));
	}
	atomic_fetch_sub(&j->ft->active, 1);
	http_req_free(req);
	if (e) {
		e->t.fn = end_run;
		e->o = j->o; /* the job's reference moves to the task */
		e->b = j->b0 + j->done;
		e->n = j->n - j->done;
		e->status = status;
		engine_post(j->d, &e->t);
	} else {
		log_error("out of memory reporting a finished GET");
		obj_put(j->o);
	}
	free(j->crcs);
	free(j);
}

static void job_start(struct fetch_thread *ft, struct fetch_job *j)
{
	struct http_sink sink = { sink_reset, sink_write, j };
	int rc = store_read_req(j->store, j->name, j->version, j->size, j->off, j->len, &sink,
				&j->req);

	atomic_fetch_add(&ft->active, 1);
	atomic_fetch_add(&j->d->st.gets_started, 1);
	if (rc) {
		/* job_done() reports and frees */
		struct http_req *none = NULL;

		job_done(j, none, rc);
		return;
	}
	http_submit(ft->hc, j->req, job_done, j);
}

static void *fetch_main(void *arg)
{
	struct fetch_thread *ft = arg;

	for (;;) {
		struct fetch_job *q;
		bool stop;

		pthread_mutex_lock(&ft->lock);
		q = ft->head;
		ft->head = ft->tail = NULL;
		stop = ft->stop;
		pthread_mutex_unlock(&ft->lock);
		while (q) {
			struct fetch_job *next = q->next;

			job_start(ft, q);
			q = next;
		}
		if (stop)
			break;
		http_client_run(ft->hc, 500);
	}
	/* Cancel what is left: done callbacks post end tasks the engine drains at shutdown. */
	http_client_free(ft->hc);
	ft->hc = NULL;
	return NULL;
}

int fetch_blocks(struct daemon *d, struct obj *o, uint32_t b, uint32_t n, bool demand)
{
	struct fetcher *f = d->fetch;
	struct fetch_thread *ft = &f->t[0];
	struct fetch_job *j;
	const struct meta_object *rec = NULL;
	int *pick = objects_fetch_thread(o);

	if (!n)
		return -EINVAL;
	/* One object, one fetch thread: two threads writing one file serialise on its inode lock
	 * (i_rwsem), so an object's GETs stay on the thread that took its first one while any is in
	 * flight; different objects (a model's shards) spread over the threads. */
	if (objects_fetching(o) > 0 && *pick >= 0 && *pick < f->n) {
		ft = &f->t[*pick];
	} else {
		for (int i = 1; i < f->n; i++) {
			if (atomic_load(&f->t[i].active) < atomic_load(&ft->active))
				ft = &f->t[i];
		}
		*pick = (int)(ft - f->t);
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->crcs = calloc(n, sizeof(uint32_t));
	if (!j->crcs) {
		free(j);
		return -ENOMEM;
	}
	rec = objects_record(o);
	j->ft = ft;
	j->d = d;
	j->o = obj_get(o);
	j->store = objects_store(o);
	snprintf(j->name, sizeof(j->name), "%s", rec->name);
	snprintf(j->version, sizeof(j->version), "%s", rec->version);
	j->size = rec->size;
	j->b0 = b;
	j->n = n;
	j->off = (uint64_t)b << PROTO_BLOCK_SHIFT;
	j->len = ((uint64_t)(b + n) << PROTO_BLOCK_SHIFT) > rec->size
			 ? rec->size - j->off
			 : (uint64_t)n << PROTO_BLOCK_SHIFT;
	j->demand = demand;
	atomic_fetch_add(&f->inflight, 1);
	pthread_mutex_lock(&ft->lock);
	if (demand) {
		j->next = ft->head;
		ft->head = j;
		if (!ft->tail)
			ft->tail = j;
	} else {
		if (ft->tail)
			ft->tail->next = j;
		else
			ft->head = j;
		ft->tail = j;
	}
	pthread_mutex_unlock(&ft->lock);
	if (ft->hc)
		http_client_wakeup(ft->hc);
	return 0;
}

int fetch_inflight(struct daemon *d)
{
	return d->fetch ? atomic_load(&d->fetch->inflight) : 0;
}

int fetch_slots(struct daemon *d)
{
	int n = d->cfg.max_inflight - fetch_inflight(d);

	return n > 0 ? n : 0;
}

int fetch_start(struct daemon *d)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	struct http_opts o = d->cfg.http;
	int rc;

	if (!f)
		return -ENOMEM;
	f->n = d->cfg.fetch_threads > 0 ? d->cfg.fetch_threads : 1;
	f->t = calloc((size_t)f->n, sizeof(*f->t));
	if (!f->t) {
		free(f);
		return -ENOMEM;
	}
	d->fetch = f;
	o.stats = &d->http_stats;
	o.max_host_conns = d->cfg.max_inflight * 2;
	for (int i = 0; i < f->n; i++) {
		struct fetch_thread *ft = &f->t[i];

		ft->d = d;
		pthread_mutex_init(&ft->lock, NULL);
		rc = http_client_new(&o, &ft->hc);
		if (rc)
			return rc;
		rc = -pthread_create(&ft->thr, NULL, fetch_main, ft);
		if (!rc)
			pthread_setname_np(ft->thr, "hfs-fetch");
		if (rc) {
			http_client_free(ft->hc);
			ft->hc = NULL;
			return rc;
		}
	}
	return 0;
}

void fetch_stop(struct daemon *d)
{
	struct fetcher *f = d->fetch;

	if (!f)
		return;
	for (int i = 0; i < f->n; i++) {
		struct fetch_thread *ft = &f->t[i];

		if (!ft->hc)
			continue;
		pthread_mutex_lock(&ft->lock);
		ft->stop = true;
		pthread_mutex_unlock(&ft->lock);
		http_client_wakeup(ft->hc);
		pthread_join(ft->thr, NULL);
	}
}

void fetch_free(struct daemon *d)
{
	if (!d->fetch)
		return;
	free(d->fetch->t);
	free(d->fetch);
	d->fetch = NULL;
}
