/* offline: `ls` from the LMDB metadata while the daemon is down (root only). */
#include "tools/offline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/inspect.h"

#ifndef HOARDFS_HAVE_META_RO

int offline_ls(const struct insp *x, json_object **out)
{
	*out = NULL;
	return -ENOTSUP;
}

#else

#include "common/meta.h"
#include "common/proto.h"
#include "common/url.h"

#define BUCKETS_MAX 4096 /* bucket ids remembered while scanning */

/* What a bucket id stands for: "gs"/"s3", its endpoint and name (from its key). */
struct bucket_info {
	uint32_t id;
	bool ok;
	char scheme[4];
	char endpoint[PROTO_ENDPOINT_MAX];
	char name[URL_BUCKET_MAX + 1];
};

struct scan {
	struct meta *m;
	json_object *objects;
	/* the filter (x->url): scheme and bucket to match, and a name prefix */
	bool filter;
	char f_scheme[4];
	char f_bucket[URL_BUCKET_MAX + 1];
	const char *f_prefix;
	struct bucket_info *buckets;
	size_t nbuckets;
};

/*
 * Splits a bucket key "scheme|endpoint|bucket[|...]" (cached/mdsvc.c) into b. A key that does
 * not parse leaves b->ok false; its objects are skipped.
 */
static void parse_bucket_key(const char *key, struct bucket_info *b)
{
	const char *p1 = strchr(key, '|'), *p2, *p3;
	size_t n;

	b->ok = false;
	if (!p1 || (size_t)(p1 - key) != 2)
		return;
	p2 = strchr(p1 + 1, '|');
	if (!p2)
		return;
	p3 = strchr(p2 + 1, '|');
	n = p3 ? (size_t)(p3 - p2 - 1) : strlen(p2 + 1);
	if ((size_t)(p2 - p1 - 1) >= sizeof(b->endpoint) || n == 0 || n >= sizeof(b->name))
		return;
	memcpy(b->scheme, key, 2);
	b->scheme[2] = '\0';
	if (strcmp(b->scheme, "gs") != 0 && strcmp(b->scheme, "s3") != 0)
		return;
	memcpy(b->endpoint, p1 + 1, (size_t)(p2 - p1 - 1));
	b->endpoint[p2 - p1 - 1] = '\0';
	memcpy(b->name, p2 + 1, n);
	b->name[n] = '\0';
	b->ok = true;
}

static const struct bucket_info *bucket_of(struct scan *s, uint32_t id)
{
	char key[META_BUCKET_KEY_MAX + 1];
	struct bucket_info *b;

	for (size_t i = 0; i < s->nbuckets; i++) {
		if (s->buckets[i].id == id)
			return &s->buckets[i];
	}
	if (s->nbuckets == BUCKETS_MAX)
		return NULL;
	b = &s->buckets[s->nbuckets++];
	memset(b, 0, sizeof(*b));
	b->id = id;
	if (meta_bucket_key(s->m, id, key, sizeof(key)) == 0)
		parse_bucket_key(key, b);
	return b;
}

static int add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object *j = json_object_new_uint64(v);

	if (!j || json_object_object_add(o, k, j)) {
		json_object_put(j);
		return -ENOMEM;
	}
	return 0;
}

static int add_json(json_object *o, const char *k, json_object *j)
{
	if (!j || json_object_object_add(o, k, j)) {
		json_object_put(j);
		return -ENOMEM;
	}
	return 0;
}

/* Bytes of present blocks: every block is PROTO_BLOCK_SIZE but the last, which holds the rest. */
static int present_bytes(struct meta *m, const struct meta_object *o, uint64_t *out)
{
	uint64_t nb64 = (o->size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT;
	uint32_t nb, present = 0;
	uint8_t *map;
	int rc;

	*out = 0;
	if (nb64 == 0)
		return 0;
	if (nb64 > UINT32_MAX)
		return -EPROTO;
	nb = (uint32_t)nb64;
	map = calloc(1, ((size_t)nb + 7) / 8);
	if (!map)
		return -ENOMEM;
	rc = meta_blocks_load(m, o->id, nb, map, NULL, &present);
	if (!rc) {
		uint64_t last = o->size - (uint64_t)(nb - 1) * PROTO_BLOCK_SIZE;

		*out = (uint64_t)present * PROTO_BLOCK_SIZE;
		if (map[(nb - 1) / 8] & (1u << ((nb - 1) % 8)))
			*out -= PROTO_BLOCK_SIZE - last;
	}
	free(map);
	return rc;
}

static int object_fn(void *ctx, const struct meta_object *o)
{
	struct scan *s = ctx;
	const struct bucket_info *b = bucket_of(s, o->bucket_id);
	json_object *e;
	char url[PROTO_URL_MAX + URL_KEY_MAX];
	uint64_t present;
	int rc;

	if (!b || !b->ok)
		return 0;
	if (s->filter &&
	    (strcmp(b->scheme, s->f_scheme) != 0 || strcmp(b->name, s->f_bucket) != 0 ||
	     strncmp(o->name, s->f_prefix, strlen(s->f_prefix)) != 0))
		return 0;
	rc = present_bytes(s->m, o, &present);
	if (rc)
		return rc == -ENOMEM ? rc : 0; /* a broken record does not hide the others */
	snprintf(url, sizeof(url), "%s://%s/%s", b->scheme, b->name, o->name);
	e = json_object_new_object();
	if (!e)
		return -ENOMEM;
	if (add_json(e, "url", json_object_new_string(url)) ||
	    add_json(e, "endpoint", json_object_new_string(b->endpoint)) ||
	    add_u64(e, "id", o->id) || add_u64(e, "size", o->size) ||
	    add_json(e, "version", json_object_new_string(o->version)) ||
	    add_u64(e, "present_bytes", present) ||
	    add_json(e, "percent",
		     json_object_new_double(o->size ? 100.0 * (double)present / (double)o->size
						    : 100.0)) ||
	    add_json(e, "last_access", json_object_new_int64(o->last_access)) ||
	    add_json(e, "verified", json_object_new_boolean(!!(o->flags & META_OBJ_VERIFIED))) ||
	    json_object_array_add(s->objects, e)) {
		json_object_put(e);
		return -ENOMEM;
	}
	return 0;
}

/* Splits the ls URL into scheme, bucket and the raw name prefix (not normalised: a name
 * prefix, not a directory). */
static int set_filter(struct scan *s, const char *url)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	size_t n = slash ? (size_t)(slash - b) : strlen(b);

	if (strlen(url) < 5 || n == 0 || n >= sizeof(s->f_bucket))
		return -EINVAL;
	memcpy(s->f_scheme, url, 2);
	s->f_scheme[2] = '\0';
	memcpy(s->f_bucket, b, n);
	s->f_bucket[n] = '\0';
	s->f_prefix = slash ? slash + 1 : "";
	s->filter = true;
	return 0;
}

int offline_ls(const struct insp *x, json_object **out)
{
	struct scan s = { 0 };
	char dir[PATH_MAX + 16], data[PATH_MAX + 32];
	json_object *r = NULL;
	int rc;

	*out = NULL;
	if (geteuid() != 0)
		return -EPERM;
	snprintf(dir, sizeof(dir), "%s/meta", x->cache_dir);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (access(data, F_OK) != 0)
		return -ENOENT;
	if (x->url && set_filter(&s, x->url))
		return -EINVAL;
	s.buckets = calloc(BUCKETS_MAX, sizeof(*s.buckets));
	r = json_object_new_object();
	s.objects = json_object_new_array();
	if (!s.buckets || !r || !s.objects) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = meta_open_readonly(dir, &s.m);
	if (rc)
		goto out_free;
	rc = meta_object_scan(s.m, object_fn, &s);
	meta_close(s.m);
	if (rc)
		goto out_free;
	rc = add_json(r, "objects", s.objects);
	s.objects = NULL; /* owned by r (or put) now */
	if (!rc)
		rc = add_json(r, "offline", json_object_new_boolean(true));
	if (rc)
		goto out_free;
	free(s.buckets);
	*out = r;
	return 0;
out_free:
	json_object_put(s.objects);
	json_object_put(r);
	free(s.buckets);
	return rc;
}

#endif
