/* jobs: long-running inspect commands (warm, verify) and their progress (internal to cached/). */
#ifndef HOARDFS_JOBS_H
#define HOARDFS_JOBS_H

#include <stdarg.h>

#include "cached/daemon.h"

enum job_kind { JOB_WARM = 1, JOB_VERIFY = 2 };
enum job_state { JOB_RUNNING = 0, JOB_DONE, JOB_FAILED, JOB_CANCELLED };

struct job_corrupt {
	char *url;
	uint32_t block;
};

struct job_item;

/* A job. The engine owns the list and the warm fields; counters are atomics a verify worker
 * updates; errors and corrupt lists are under `lock`. */
struct job {
	struct job *next;
	uint64_t id;
	enum job_kind kind;
	_Atomic int state; /* enum job_state */
	_Atomic int refs;  /* tasks and workers still using the job (it is not freed before 0) */
	char url[PROTO_URL_MAX];
	int64_t started, finished;
	_Atomic uint64_t objects_total;
	_Atomic uint64_t objects_done, objects_failed;
	_Atomic uint64_t bytes_total, bytes_done;
	_Atomic uint64_t blocks_checked, corrupt_blocks;
	pthread_mutex_t lock;
	char *errors[32];
	size_t nerrors;
	struct job_corrupt *corrupt;
	size_t ncorrupt;
	/* warm (engine) */
	struct bucket *bk;
	struct job_item *items;
	size_t nitems, next_item;
	int active, parallel;
};

/* A warm request handed from ctl.c to a worker (which frees it and drops the conn ref). */
struct warm_req {
	struct conn *c; /* reference */
	uint32_t seq;
	char url[PROTO_URL_MAX];    /* as given */
	char name[URL_KEY_MAX + 1]; /* the object-name part ("" = whole bucket) */
	char endpoint[PROTO_ENDPOINT_MAX];
	char region[64];
	bool anonymous;
	int parallel;
};

/* Starts a warm job: lists on a worker, replies {"job":N,...} on the conn, then runs. Engine. */
void jobs_warm(struct daemon *d, struct warm_req *wr);
/* Starts a verify job of objects under url ("" = all); *id gets its number. Engine. */
int jobs_verify(struct daemon *d, const char *url, uint64_t *id);
/* The job with this id, or NULL. Engine. */
struct job *jobs_find(struct daemon *d, uint64_t id);
/* Cancels a running job: 0 or -EALREADY. Engine. */
int jobs_cancel(struct daemon *d, struct job *j);
/* Frees every job (shutdown). */
void jobs_fini(struct daemon *d);
void job_free(struct job *j);
void job_error(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses "gs://bucket/name..." with the name verbatim. 0 or -EINVAL / -ENAMETOOLONG. */
int jobs_parse_object_url(const char *url, struct bucket_url *bu, char *name, size_t namesz);
/* Whether a bucket key ("gs|endpoint|bucket|auth|region") names scheme + bucket. */
bool jobs_key_matches(const char *key, enum url_scheme scheme, const char *bucket);
void engine_call_task(struct daemon *d, struct task *t, struct job *j);

#endif
