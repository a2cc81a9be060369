/* inval: a queue of entry invalidations and the thread that sends them to the kernel. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "mountd/inval.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct inval_item {
	struct inval_item *next;
	uint64_t parent;
	char name[];
};

struct inval {
	struct fuse_session *se;
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inval_item *head, *tail; /* lock */
	bool stop;			/* lock */
};

static void *inval_main(void *arg)
{
	struct inval *iv = arg;

	pthread_mutex_lock(&iv->lock);
	for (;;) {
		struct inval_item *it;
		int rc;

		while (!iv->head && !iv->stop)
			pthread_cond_wait(&iv->cond, &iv->lock);
		if (iv->stop)
			break;
		it = iv->head;
		iv->head = it->next;
		if (!iv->head)
			iv->tail = NULL;
		pthread_mutex_unlock(&iv->lock);
		rc = fuse_lowlevel_notify_inval_entry(iv->se, it->parent, it->name,
						      strlen(it->name));
		if (rc && rc != -ENOENT)
			log_debug("invalidating entry %s: %s", it->name, strerror(-rc));
		free(it);
		pthread_mutex_lock(&iv->lock);
	}
	pthread_mutex_unlock(&iv->lock);
	return NULL;
}

int inval_start(struct fuse_session *se, struct inval **out)
{
	struct inval *iv = calloc(1, sizeof(*iv));
	int rc;

	if (!iv)
		return -ENOMEM;
	iv->se = se;
	pthread_mutex_init(&iv->lock, NULL);
	pthread_cond_init(&iv->cond, NULL);
	rc = -pthread_create(&iv->thr, NULL, inval_main, iv);
	if (rc) {
		free(iv);
		return rc;
	}
	*out = iv;
	return 0;
}

void inval_entry(struct inval *iv, uint64_t parent, const char *name)
{
	size_t len = strlen(name);
	struct inval_item *it = malloc(sizeof(*it) + len + 1);

	if (!it)
		return;
	it->next = NULL;
	it->parent = parent;
	memcpy(it->name, name, len + 1);
	pthread_mutex_lock(&iv->lock);
	if (iv->tail)
		iv->tail->next = it;
	else
		iv->head = it;
	iv->tail = it;
	pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
}

void inval_stop(struct inval *iv)
{
	if (!iv)
		return;
	pthread_mutex_lock(&iv->lock);
	iv->stop = true;
	pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
	pthread_join(iv->thr, NULL);
	while (iv->head) {
		struct inval_item *it = iv->head;

		iv->head = it->next;
		free(it);
	}
	pthread_mutex_destroy(&iv->lock);
	pthread_cond_destroy(&iv->cond);
	free(iv);
}
