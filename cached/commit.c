/* commit: the writer thread, LMDB's only writer. Changes queue here; every commit interval (or
 * at once when a caller waits) it fdatasync()s the files whose blocks are to be marked, checks
 * each result, and applies everything in one transaction. A block whose file failed to sync is
 * not marked, and the engine forgets it, so it is fetched again. */
#include "cached/daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

enum wop_type { W_PUT_OBJ, W_DEL_OBJ, W_TOUCH, W_BLOCKS, W_CLEAR, W_SYNC, W_BARRIER };

#define COMMIT_RETRIES 5 /* groups a change is retried in after failed commits */

struct wop {
	struct wop *next;
	enum wop_type type;
	uint64_t id;
	int64_t when;
	uint32_t b, n;
	struct obj *o;		  /* W_BLOCKS: reference */
	struct meta_object *rec;  /* W_PUT_OBJ */
	struct meta_batch *batch; /* W_SYNC */
	int *result;		  /* W_SYNC */
	bool *finished;		  /* W_SYNC */
	struct task *task;	  /* W_BARRIER: posted to the engine once committed */
	int *task_status;	  /* W_BARRIER: 0, or the commit error after the last retry */
	int tries;		  /* failed commits this change went through */
	uint32_t crcs[];	  /* W_BLOCKS */
};

struct writer {
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;	  /* new work, or stop */
	pthread_cond_t sync_done; /* a W_SYNC finished */
	struct wop *head, *tail;
	bool urgent; /* a W_SYNC is queued: do not wait for the interval */
	bool stop;
};

static void enqueue(struct daemon *d, struct wop *w)
{
	struct writer *wr = d->writer;

	w->next = NULL;
	pthread_mutex_lock(&wr->lock);
	if (wr->tail)
		wr->tail->next = w;
	else
		wr->head = w;
	wr->tail = w;
	if (w->type == W_SYNC)
		wr->urgent = true;
	pthread_cond_signal(&wr->cond);
	pthread_mutex_unlock(&wr->lock);
}

static struct wop *wop_new(enum wop_type type, size_t extra)
{
	struct wop *w = calloc(1, sizeof(*w) + extra);

	if (!w)
		log_error("out of memory queueing a metadata change");
	else
		w->type = type;
	return w;
}

void writer_put_object(struct daemon *d, const struct meta_object *o)
{
	struct wop *w = wop_new(W_PUT_OBJ, 0);

	if (!w)
		return;
	w->rec = malloc(sizeof(*w->rec));
	if (!w->rec) {
		free(w);
		return;
	}
	*w->rec = *o;
	enqueue(d, w);
}

void writer_del_object(struct daemon *d, uint64_t id)
{
	struct wop *w = wop_new(W_DEL_OBJ, 0);

	if (!w)
		return;
	w->id = id;
	enqueue(d, w);
}

void writer_touch(struct daemon *d, uint64_t id, int64_t when)
{
	struct wop *w = wop_new(W_TOUCH, 0);

	if (!w)
		return;
	w->id = id;
	w->when = when;
	enqueue(d, w);
}

void writer_blocks(struct daemon *d, struct obj *o, uint32_t b, uint32_t n, const uint32_t *crcs)
{
	struct wop *w = wop_new(W_BLOCKS, n * sizeof(uint32_t));

	if (!w)
		return;
	w->o = obj_get(o);
	w->id = obj_id(o);
	w->b = b;
	w->n = n;
	memcpy(w->crcs, crcs, n * sizeof(uint32_t));
	enqueue(d, w);
}

void writer_clear_blocks(struct daemon *d, uint64_t id, uint32_t b, uint32_t n)
{
	struct wop *w = wop_new(W_CLEAR, 0);

	if (!w)
		return;
	w->id = id;
	w->b = b;
	w->n = n;
	enqueue(d, w);
}

void writer_barrier(struct daemon *d, struct task *t, int *status)
{
	struct wop *w = wop_new(W_BARRIER, 0);

	*status = 0;
	if (!w) {
		*status = -ENOMEM;
		engine_post(d, t);
		return;
	}
	w->task = t;
	w->task_status = status;
	enqueue(d, w);
}

int writer_commit_sync(struct daemon *d, struct meta_batch *b)
{
	struct writer *wr = d->writer;
	struct wop *w = wop_new(W_SYNC, 0);
	bool finished = false;
	int result = 0;

	if (!w) {
		meta_batch_free(b);
		return -ENOMEM;
	}
	w->batch = b;
	w->result = &result;
	w->finished = &finished;
	enqueue(d, w);
	pthread_mutex_lock(&wr->lock);
	while (!finished)
		pthread_cond_wait(&wr->sync_done, &wr->lock);
	pthread_mutex_unlock(&wr->lock);
	return result;
}

struct wb_task {
	struct task t;
	uint64_t id;
	uint32_t b, n;
};

static void wb_failed_run(struct daemon *d, struct task *t)
{
	struct wb_task *w = (struct wb_task *)t;

	objects_writeback_failed(d, w->id, w->b, w->n);
	free(w);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Commits one group: syncs files, then applies every queued change in one transaction. */
static void commit_group(struct daemon *d, struct wop *ops)
{
	uint64_t t0 = mono_ns(), nblocks = 0;
	struct meta_batch *b = NULL;
	int rc;

	/* 1. fdatasync each file once; remember which failed. */
	for (struct wop *w = ops; w; w = w->next) {
		bool synced = false;

		if (w->type != W_BLOCKS || w->when)
			continue;
		for (struct wop *p = ops; p != w; p = p->next) {
			if (p->type == W_BLOCKS && p->o == w->o) {
				synced = true;
				w->when = p->when; /* same outcome as the earlier op on this file */
				break;
			}
		}
		if (synced)
			continue;
		if (fdatasync(obj_fd(w->o)) < 0) {
			log_error(
				"fdatasync of object %llu failed: %s; its new blocks stay unmarked",
				(unsigned long long)w->id, strerror(errno));
			w->when = -1;
		} else {
			w->when = 1;
		}
	}
	/* 2. one transaction for everything else. */
	rc = meta_batch_new(&b);
	for (struct wop *w = ops; !rc && w; w = w->next) {
		switch (w->type) {
		case W_PUT_OBJ:
			rc = meta_batch_put_object(b, w->rec);
			break;
		case W_DEL_OBJ:
			rc = meta_batch_del_object(b, w->id);
			break;
		case W_TOUCH:
			rc = meta_batch_touch(b, w->id, w->when);
			break;
		case W_BLOCKS:
			if (w->when > 0) {
				rc = meta_batch_set_blocks(b, w->id, w->b, w->n, w->crcs);
				nblocks += w->n;
			}
			break;
		case W_CLEAR:
			rc = meta_batch_clear_blocks(b, w->id, w->b, w->n);
			break;
		case W_SYNC:
		case W_BARRIER:
			break;
		}
	}
	if (!rc && !meta_batch_empty(b))
		rc = meta_commit(d->meta, b);
	if (rc) {
		log_error("metadata commit failed: %s; the blocks of this group stay unmarked",
			  strerror(-rc));
		nblocks = 0;
	}
	meta_batch_free(b);
	/* 3. barriers: what was queued before them is durable now (or will never be). */
	for (struct wop *w = ops; w; w = w->next) {
		if (w->type == W_BARRIER && (!rc || w->tries + 1 >= COMMIT_RETRIES)) {
			*w->task_status = rc;
			engine_post(d, w->task);
			w->task = NULL;
		}
	}
	/* 4. report sync failures (and blocks a failed commit did not mark) to the engine. */
	for (struct wop *w = ops; w; w = w->next) {
		if (w->type == W_BLOCKS && (w->when < 0 || rc)) {
			struct wb_task *t = calloc(1, sizeof(*t));

			if (t) {
				t->t.fn = wb_failed_run;
				t->id = w->id;
				t->b = w->b;
				t->n = w->n;
				engine_post(d, &t->t);
			}
		}
	}
	/* 5. callers waiting on their own batches, each in its own transaction. */
	for (struct wop *w = ops; w; w = w->next) {
		if (w->type != W_SYNC)
			continue;
		*w->result = meta_commit(d->meta, w->batch);
		meta_batch_free(w->batch);
		pthread_mutex_lock(&d->writer->lock);
		*w->finished = true;
		pthread_cond_broadcast(&d->writer->sync_done);
		pthread_mutex_unlock(&d->writer->lock);
	}
	atomic_fetch_add(&d->st.commits, 1);
	atomic_fetch_add(&d->st.commit_ns, mono_ns() - t0);
	atomic_fetch_add(&d->st.commit_blocks, nblocks);
	/* A failed commit lost no change but its blocks (reported above): the rest goes first into
	 * the next group, a few times, so removals and clears are not forgotten. */
	struct wop *retry = NULL, *retry_last = NULL;

	while (ops) {
		struct wop *next = ops->next;
		bool keep = rc && ops->type != W_BLOCKS && ops->type != W_SYNC &&
			    !(ops->type == W_BARRIER && !ops->task);

		if (keep && ++ops->tries < COMMIT_RETRIES) {
			ops->next = NULL;
			if (retry_last)
				retry_last->next = ops;
			else
				retry = ops;
			retry_last = ops;
		} else {
			if (keep)
				log_error("dropping a metadata change after %d failed commits",
					  COMMIT_RETRIES);
			if (ops->o)
				obj_put(ops->o);
			free(ops->rec);
			free(ops);
		}
		ops = next;
	}
	if (retry) {
		struct writer *wr = d->writer;

		pthread_mutex_lock(&wr->lock);
		retry_last->next = wr->head;
		wr->head = retry;
		if (!wr->tail)
			wr->tail = retry_last;
		pthread_mutex_unlock(&wr->lock);
	}
}

static void *writer_main(void *arg)
{
	struct daemon *d = arg;
	struct writer *wr = d->writer;

	pthread_mutex_lock(&wr->lock);
	for (;;) {
		struct wop *ops;

		while (!wr->head && !wr->stop)
			pthread_cond_wait(&wr->cond, &wr->lock);
		if (!wr->head && wr->stop)
			break;
		if (!wr->urgent && !wr->stop) {
			/* Group commit: let changes gather for one interval. */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)d->cfg.commit_interval_ms * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			while (!wr->urgent && !wr->stop &&
			       pthread_cond_timedwait(&wr->cond, &wr->lock, &ts) == 0)
				;
		}
		ops = wr->head;
		wr->head = wr->tail = NULL;
		wr->urgent = false;
		pthread_mutex_unlock(&wr->lock);
		commit_group(d, ops);
		pthread_mutex_lock(&wr->lock);
	}
	pthread_mutex_unlock(&wr->lock);
	return NULL;
}

int writer_start(struct daemon *d)
{
	struct writer *wr = calloc(1, sizeof(*wr));
	pthread_condattr_t ca;
	int rc;

	if (!wr)
		return -ENOMEM;
	pthread_mutex_init(&wr->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&wr->cond, &ca);
	pthread_cond_init(&wr->sync_done, &ca);
	pthread_condattr_destroy(&ca);
	d->writer = wr;
	rc = -pthread_create(&wr->thr, NULL, writer_main, d);
	if (!rc)
		pthread_setname_np(wr->thr, "hfs-writer");
	if (rc) {
		free(wr);
		d->writer = NULL;
	}
	return rc;
}

void writer_stop(struct daemon *d)
{
	struct writer *wr = d->writer;

	if (!wr)
		return;
	pthread_mutex_lock(&wr->lock);
	wr->stop = true;
	pthread_cond_signal(&wr->cond);
	pthread_mutex_unlock(&wr->lock);
	pthread_join(wr->thr, NULL);
	free(wr);
	d->writer = NULL;
}
