/* ctl: control requests from hoardfs-inspect (JSON over PROTO_CTL) and the daemon's stats. */
#include "cached/daemon.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cached/jobs.h"
#include "common/log.h"

int ctl_init(struct daemon *d)
{
	return metrics_start(d);
}

void ctl_fini(struct daemon *d)
{
	metrics_stop(d);
}

/* Sends a JSON reply, split into PROTO_F_MORE parts when it is larger than one message. */
void ctl_reply_json(struct conn *c, uint32_t seq, int status, json_object *j)
{
	const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s), max = PROTO_MSG_MAX - sizeof(struct proto_hdr);

	do {
		size_t n = len > max ? max : len;
		struct iovec v = { (void *)s, n };

		len -= n;
		if (conn_replyv(c, PROTO_CTL, len ? PROTO_F_MORE : 0, seq, status, &v, 1, NULL, 0))
			break;
		s += n;
	} while (len);
}

void ctl_reply_error(struct conn *c, uint32_t seq, int err, const char *msg)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "error", json_object_new_string(msg));
	ctl_reply_json(c, seq, err, j);
	json_object_put(j);
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void mount_fn(void *ctx, uint64_t id, pid_t pid, uid_t uid, const char *url,
		     const char *mountpoint, int64_t since)
{
	json_object *m = json_object_new_object();

	add_u64(m, "id", id);
	json_object_object_add(m, "pid", json_object_new_int(pid));
	json_object_object_add(m, "uid", json_object_new_int((int)uid));
	json_object_object_add(m, "bucket", json_object_new_string(url));
	json_object_object_add(m, "mountpoint", json_object_new_string(mountpoint));
	json_object_object_add(m, "since", json_object_new_int64(since));
	json_object_array_add(ctx, m);
}

static json_object *status_json(struct daemon *d)
{
	json_object *j = json_object_new_object(), *mounts = json_object_new_array();
	uint64_t limit, fs_free, fs_size, objects = 0, bytes = 0;

	evict_status(d, &limit, &fs_free, &fs_size);
	meta_usage(d->meta, &bytes, &objects);
	json_object_object_add(j, "version", json_object_new_string(HOARDFS_VERSION));
	json_object_object_add(j, "pid", json_object_new_int(getpid()));
	json_object_object_add(j, "epoch", json_object_new_int((int)d->epoch));
	json_object_object_add(j, "uptime", json_object_new_int64(daemon_now() - d->started_at));
	json_object_object_add(j, "cache_dir", json_object_new_string(d->cfg.cache_dir));
	json_object_object_add(j, "socket", json_object_new_string(d->cfg.socket_path));
	add_u64(j, "bytes_used", objects_bytes_cached(d));
	add_u64(j, "bytes_limit", limit);
	add_u64(j, "fs_free", fs_free);
	add_u64(j, "fs_size", fs_size);
	add_u64(j, "objects", objects);
	add_u64(j, "fetches_inflight", (uint64_t)fetch_inflight(d));
	server_each_mount(d, mount_fn, mounts);
	json_object_object_add(j, "mounts", mounts);
	return j;
}

/* The counters, flat: names are stable (documented in docs/inspect.md). */
json_object *ctl_stats_json(struct daemon *d);
json_object *ctl_stats_json(struct daemon *d)
{
	json_object *j = json_object_new_object();
	struct daemon_stats *s = &d->st;
	uint64_t hits = atomic_load(&s->mount_hits) + atomic_load(&s->fetch_hits);
	uint64_t misses = atomic_load(&s->fetch_requests) - atomic_load(&s->fetch_hits);

	add_u64(j, "hits", hits);
	add_u64(j, "misses", misses);
	json_object_object_add(
		j, "hit_ratio",
		json_object_new_double(hits + misses ? (double)hits / (double)(hits + misses)
						     : 0.0));
	add_u64(j, "mount_hit_bytes", atomic_load(&s->mount_hit_bytes));
	add_u64(j, "mount_misses", atomic_load(&s->mount_misses));
	add_u64(j, "mount_miss_bytes", atomic_load(&s->mount_miss_bytes));
	add_u64(j, "fetch_requests", atomic_load(&s->fetch_requests));
	add_u64(j, "prefetch_requests", atomic_load(&s->prefetch_requests));
	add_u64(j, "dedup_waits", atomic_load(&s->dedup_waits));
	add_u64(j, "bytes_from_store", atomic_load(&d->http_stats.bytes_in));
	add_u64(j, "store_requests", atomic_load(&d->http_stats.requests));
	add_u64(j, "store_retries", atomic_load(&d->http_stats.retries));
	add_u64(j, "store_failures", atomic_load(&d->http_stats.failures));
	add_u64(j, "gets_started", atomic_load(&s->gets_started));
	add_u64(j, "gets_failed", atomic_load(&s->gets_failed));
	add_u64(j, "blocks_fetched", atomic_load(&s->blocks_fetched));
	add_u64(j, "bytes_fetched", atomic_load(&s->bytes_fetched));
	add_u64(j, "evicted_objects", atomic_load(&s->evicted_objects));
	add_u64(j, "evicted_bytes", atomic_load(&s->evicted_bytes));
	add_u64(j, "revoked_blocks", atomic_load(&s->revoked_blocks));
	add_u64(j, "errors", atomic_load(&s->errors));
	add_u64(j, "lookups", atomic_load(&s->lookups));
	add_u64(j, "listings", atomic_load(&s->lists));
	add_u64(j, "opens", atomic_load(&s->opens));
	add_u64(j, "pinned_opens", atomic_load(&s->pinned_opens));
	add_u64(j, "backing_registered", atomic_load(&s->backing_registered));
	add_u64(j, "open_waits", atomic_load(&s->open_waits));
	add_u64(j, "open_waits_expired", atomic_load(&s->open_waits_expired));
	add_u64(j, "sibling_loads", atomic_load(&s->sibling_loads));
	add_u64(j, "accepts_shed", atomic_load(&s->accepts_shed));
	add_u64(j, "revokes_refused", atomic_load(&s->revokes_refused));
	add_u64(j, "commits", atomic_load(&s->commits));
	add_u64(j, "commit_ns", atomic_load(&s->commit_ns));
	add_u64(j, "commit_blocks", atomic_load(&s->commit_blocks));
	add_u64(j, "writeback_errors", atomic_load(&s->writeback_errors));
	add_u64(j, "accounting_errors", atomic_load(&s->accounting_errors));
	add_u64(j, "mounts_total", atomic_load(&s->mounts_total));
	add_u64(j, "mounts_disconnected", atomic_load(&s->mounts_disconnected));
	add_u64(j, "mounts", (uint64_t)atomic_load(&d->nmounts_pub));
	add_u64(j, "fetches_inflight", (uint64_t)fetch_inflight(d));
	add_u64(j, "bytes_cached", objects_bytes_cached(d));
	return j;
}

/* ---- Prometheus text ---- */

static const struct {
	const char *name;
	bool gauge;
	const char *help;
} metric_info[] = {
	{ "hits", false, "Reads answered from the cache" },
	{ "misses", false, "Reads that needed bytes not yet cached" },
	{ "hit_ratio", true, "hits / (hits + misses)" },
	{ "mount_hit_bytes", false,
	  "Bytes mounts served from the cache without asking the daemon" },
	{ "fetch_requests", false, "FETCH ring entries received" },
	{ "prefetch_requests", false, "PREFETCH ring entries received" },
	{ "dedup_waits", false, "Requests that joined a GET already in flight" },
	{ "bytes_from_store", false, "Response body bytes received from object stores" },
	{ "store_requests", false, "HTTP attempts sent to object stores" },
	{ "store_retries", false, "HTTP attempts that retried an earlier one" },
	{ "store_failures", false, "HTTP requests that failed for good" },
	{ "gets_started", false, "Ranged GETs started" },
	{ "gets_failed", false, "Ranged GETs that failed" },
	{ "blocks_fetched", false, "1 MiB blocks written and verified" },
	{ "bytes_fetched", false, "Bytes written to the cache and verified" },
	{ "evicted_objects", false, "Objects evicted" },
	{ "evicted_bytes", false, "Bytes evicted" },
	{ "revoked_blocks", false, "Blocks taken back from mounts and punched" },
	{ "errors", false, "ERROR completions sent to mounts" },
	{ "lookups", false, "LOOKUP requests" },
	{ "listings", false, "Directory listings fetched from stores" },
	{ "opens", false, "OPEN requests answered" },
	{ "pinned_opens", false, "OPENs pinned for FUSE passthrough (complete objects)" },
	{ "backing_registered", false,
	  "Passthrough backing files registered for mounts without CAP_SYS_ADMIN" },
	{ "open_waits", false, "OPENs that waited while their file was fetched whole" },
	{ "open_waits_expired", false,
	  "Waiting OPENs answered before their file was complete (deadline or failure)" },
	{ "sibling_loads", false,
	  "Shards of a sharded model loaded because an earlier shard was opened" },
	{ "accepts_shed", false,
	  "Connections closed at once because the daemon was out of file descriptors" },
	{ "revokes_refused", false,
	  "Revocations refused because passthrough opens pin the object (evicted at last close)" },
	{ "commits", false, "Group commits" },
	{ "commit_ns", false, "Nanoseconds spent in group commits" },
	{ "commit_blocks", false, "Blocks made durable by group commits" },
	{ "writeback_errors", false, "Blocks dropped because fdatasync failed" },
	{ "accounting_errors", false,
	  "Changes that would have wrapped the count of cached bytes (a bug; should stay 0)" },
	{ "mounts_total", false, "Mount registrations" },
	{ "mounts_disconnected", false, "Connections the daemon dropped for misbehaving" },
	{ "mounts", true, "Mounts connected" },
	{ "fetches_inflight", true, "GETs in flight" },
	{ "bytes_cached", true, "Bytes of verified blocks in the cache" },
};

/* The Prometheus text exposition of the counters (malloc'ed). Any thread. */
char *ctl_prometheus(struct daemon *d)
{
	json_object *j = ctl_stats_json(d);
	struct buf b;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < sizeof(metric_info) / sizeof(metric_info[0]); i++) {
		json_object *v;
		const char *suffix = metric_info[i].gauge ? "" : "_total";

		if (!json_object_object_get_ex(j, metric_info[i].name, &v))
			continue;
		buf_printf(&b, "# HELP hoardfs_%s%s %s\n# TYPE hoardfs_%s%s %s\n",
			   metric_info[i].name, suffix, metric_info[i].help, metric_info[i].name,
			   suffix, metric_info[i].gauge ? "gauge" : "counter");
		if (json_object_is_type(v, json_type_double))
			buf_printf(&b, "hoardfs_%s%s %.6f\n", metric_info[i].name, suffix,
				   json_object_get_double(v));
		else
			buf_printf(&b, "hoardfs_%s%s %" PRIu64 "\n", metric_info[i].name, suffix,
				   json_object_get_uint64(v));
	}
	buf_printf(&b,
		   "# HELP hoardfs_up The daemon answers\n# TYPE hoardfs_up gauge\nhoardfs_up 1\n");
	json_object_put(j);
	return buf_steal(&b);
}

/* ---- request helpers ---- */

static const char *get_str(json_object *req, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool get_bool(json_object *req, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(req, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int64_t get_int(json_object *req, const char *key, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

/* "gs://bucket (name)" from an object's bucket key and name. */
static void object_url(const char *bucket_key, const char *name, char *out, size_t outsz,
		       char *endpoint, size_t epsz)
{
	const char *p = strchr(bucket_key, '|'), *q = p ? strchr(p + 1, '|') : NULL;
	const char *e = q ? strchr(q + 1, '|') : NULL;

	snprintf(out, outsz, "%.2s://%.*s/%s", bucket_key, e && q ? (int)(e - q - 1) : 0,
		 q ? q + 1 : "", name);
	if (endpoint)
		snprintf(endpoint, epsz, "%.*s", p && q ? (int)(q - p - 1) : 0, p ? p + 1 : "");
}

/* ---- ls / stat (a worker reads LMDB; the engine adds what only it knows) ---- */

struct ls_obj {
	struct meta_object rec;
	char key[META_BUCKET_KEY_MAX + 1];
	int opens; /* from the engine; -1 = not resident */
	bool gone; /* being evicted */
	uint32_t npresent;
	uint8_t *map; /* stat only */
};

struct ls_req {
	struct conn *c;
	uint32_t seq;
	bool stat;
	bool any;
	struct bucket_url bu;
	char name[URL_KEY_MAX + 1];
	struct ls_obj *objs;
	size_t n, cap;
	struct daemon *d;
	int rc;
};

static int ls_collect(void *ctx, const struct meta_object *o)
{
	struct ls_req *q = ctx;
	char key[META_BUCKET_KEY_MAX + 1];

	if (meta_bucket_key(q->d->meta, o->bucket_id, key, sizeof(key)))
		return 0;
	if (!q->any && !jobs_key_matches(key, q->bu.scheme, q->bu.bucket))
		return 0;
	if (q->stat ? strcmp(o->name, q->name) != 0
		    : strncmp(o->name, q->name, strlen(q->name)) != 0)
		return 0;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 32;
		struct ls_obj *no = realloc(q->objs, cap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		q->objs = no;
		q->cap = cap;
	}
	memset(&q->objs[q->n], 0, sizeof(q->objs[0]));
	q->objs[q->n].rec = *o;
	memcpy(q->objs[q->n].key, key, sizeof(key));
	q->n++;
	return 0;
}

/* Engine: resident state of the listed objects. */
static void ls_engine(struct daemon *d, void *arg)
{
	struct ls_req *q = arg;

	for (size_t i = 0; i < q->n; i++) {
		struct ls_obj *lo = &q->objs[i];
		uint32_t nb =
			(uint32_t)((lo->rec.size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);

		lo->opens = -1;
		/* Evicted a moment ago, its removal not yet committed: not listed. */
		lo->gone = evict_pending(d, lo->rec.id);
		if (objects_presence(d, lo->rec.id, lo->map, lo->map ? nb : 0, &lo->npresent,
				     &lo->opens))
			lo->opens = -1;
	}
}

static uint64_t present_bytes(const struct meta_object *r, const uint8_t *map, uint32_t nb,
			      uint32_t npresent)
{
	uint64_t bytes = (uint64_t)npresent << PROTO_BLOCK_SHIFT;

	/* The last block may be short. */
	if (nb && map && (map[(nb - 1) >> 3] & (1u << ((nb - 1) & 7))))
		bytes -= ((uint64_t)nb << PROTO_BLOCK_SHIFT) - r->size;
	else if (!map && bytes > r->size)
		bytes = r->size;
	return bytes;
}

/* Renders a bitmap as ranges "0-511,600,700-701" (at most `max` bytes of text). */
static void map_ranges(const uint8_t *map, uint32_t nb, struct buf *out)
{
	uint32_t b = 0;

	while (b < nb) {
		uint32_t e;

		if (!(map[b >> 3] & (1u << (b & 7)))) {
			b++;
			continue;
		}
		e = b;
		while (e + 1 < nb && (map[(e + 1) >> 3] & (1u << ((e + 1) & 7))))
			e++;
		if (out->len)
			buf_puts(out, ",");
		if (e == b)
			buf_printf(out, "%u", b);
		else
			buf_printf(out, "%u-%u", b, e);
		b = e + 1;
	}
}

static void ls_worker(struct daemon *d, struct http_client *hc, struct md_job *mj)
{
	struct ls_req *q = mdsvc_job_arg(mj);
	json_object *out = json_object_new_object(), *arr = json_object_new_array();
	size_t n;
	int rc;

	q->d = d;
	rc = meta_object_scan(d->meta, ls_collect, q);
	if (rc) {
		ctl_reply_error(q->c, q->seq, rc, "reading the metadata failed");
		goto out;
	}
	for (size_t i = 0; q->stat && i < q->n; i++) {
		uint32_t nb = (uint32_t)((q->objs[i].rec.size + PROTO_BLOCK_SIZE - 1) >>
					 PROTO_BLOCK_SHIFT);

		q->objs[i].map = calloc(1, nb / 8 + 1);
	}
	engine_call(d, ls_engine, q);
	for (size_t i = 0; i < q->n; i++) {
		struct ls_obj *lo = &q->objs[i];
		const struct meta_object *r = &lo->rec;
		uint32_t nb = (uint32_t)((r->size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);
		uint8_t *tmp = NULL;
		const uint8_t *map = lo->map;
		json_object *o;

		if (lo->gone)
			continue;
		o = json_object_new_object();
		char url[PROTO_URL_MAX + URL_KEY_MAX], ep[PROTO_ENDPOINT_MAX];
		uint64_t bytes;

		if (lo->opens < 0) {
			/* Not resident: what LMDB records. */
			tmp = calloc(1, nb / 8 + 1);
			lo->npresent = 0;
			if (tmp)
				meta_blocks_load(d->meta, r->id, nb, tmp, NULL, &lo->npresent);
			map = tmp;
			if (lo->map && tmp)
				memcpy(lo->map, tmp, nb / 8 + 1);
		}
		bytes = present_bytes(r, map, nb, lo->npresent);
		object_url(lo->key, r->name, url, sizeof(url), ep, sizeof(ep));
		json_object_object_add(o, "url", json_object_new_string(url));
		json_object_object_add(o, "endpoint", json_object_new_string(ep));
		add_u64(o, "id", r->id);
		add_u64(o, "size", r->size);
		json_object_object_add(o, "version", json_object_new_string(r->version));
		add_u64(o, "present_bytes", bytes);
		json_object_object_add(
			o, "percent",
			json_object_new_double(r->size ? 100.0 * (double)bytes / (double)r->size
						       : 100.0));
		json_object_object_add(o, "last_access", json_object_new_int64(r->last_access));
		json_object_object_add(o, "open", json_object_new_boolean(lo->opens > 0));
		json_object_object_add(o, "verified",
				       json_object_new_boolean(r->flags & META_OBJ_VERIFIED));
		if (q->stat) {
			struct buf ranges;
			char hex[40];

			buf_init(&ranges, 1 << 20);
			if (lo->map)
				map_ranges(lo->map, nb, &ranges);
			add_u64(o, "blocks", nb);
			add_u64(o, "present_blocks", lo->npresent);
			json_object_object_add(o, "map", json_object_new_string(buf_cstr(&ranges)));
			buf_free(&ranges);
			if (r->flags & META_OBJ_HAS_CRC32C) {
				snprintf(hex, sizeof(hex), "%08x", r->crc32c);
				json_object_object_add(o, "crc32c", json_object_new_string(hex));
			}
			if (r->flags & META_OBJ_HAS_MD5) {
				for (int k = 0; k < 16; k++)
					snprintf(hex + 2 * k, 3, "%02x", r->md5[k]);
				json_object_object_add(o, "md5", json_object_new_string(hex));
			}
			json_object_object_add(
				o, "checksum_state",
				json_object_new_string(r->flags & META_OBJ_VERIFIED ? "verified"
						       : lo->npresent == nb	    ? "complete"
						       : lo->npresent		    ? "partial"
										    : "empty"));
		}
		free(tmp);
		json_object_array_add(arr, o);
	}
	n = json_object_array_length(arr);
	json_object_object_add(out, "objects", arr);
	arr = NULL;
	if (q->stat && n == 0)
		ctl_reply_error(q->c, q->seq, -ENOENT, "no such object in the cache");
	else
		ctl_reply_json(q->c, q->seq, 0, out);
out:
	json_object_put(arr);
	json_object_put(out);
	for (size_t i = 0; i < q->n; i++)
		free(q->objs[i].map);
	free(q->objs);
	conn_put(q->c);
	free(q);
}

static void start_ls(struct daemon *d, struct conn *c, uint32_t seq, json_object *req, bool stat)
{
	struct ls_req *q = calloc(1, sizeof(*q));
	const char *url = get_str(req, "url");

	if (!q) {
		ctl_reply_error(c, seq, -ENOMEM, "out of memory");
		return;
	}
	q->stat = stat;
	q->seq = seq;
	q->any = !url || !*url;
	if ((stat && q->any) ||
	    (!q->any && jobs_parse_object_url(url, &q->bu, q->name, sizeof(q->name)))) {
		free(q);
		ctl_reply_error(c, seq, -EINVAL,
				"expected a URL like gs://bucket/name or s3://bucket/name");
		return;
	}
	q->c = conn_get(c);
	mdsvc_run(d, NULL, ls_worker, q);
}

/* ---- evict (engine) ---- */

struct evict_req {
	struct daemon *d;
	bool any, dry_run, force;
	struct bucket_url bu;
	char name[URL_KEY_MAX + 1];
	json_object *evicted, *deferred;
	uint64_t bytes;
};

static int evict_fn(void *ctx, const struct meta_object *o)
{
	struct evict_req *er = ctx;
	struct daemon *d = er->d;
	char key[META_BUCKET_KEY_MAX + 1], url[PROTO_URL_MAX + URL_KEY_MAX];
	struct obj *ob;
	json_object *e;
	bool pinned;

	if (meta_bucket_key(d->meta, o->bucket_id, key, sizeof(key)))
		return 0;
	if (!er->any && (!jobs_key_matches(key, er->bu.scheme, er->bu.bucket) ||
			 strncmp(o->name, er->name, strlen(er->name)) != 0))
		return 0;
	object_url(key, o->name, url, sizeof(url), NULL, 0);
	e = json_object_new_object();
	json_object_object_add(e, "url", json_object_new_string(url));
	add_u64(e, "size", o->size);
	json_object_object_add(e, "version", json_object_new_string(o->version));
	if (objects_evictable(d, o->id)) {
		uint64_t bytes = er->dry_run ? 0 : evict_now(d, o->id);

		add_u64(e, "bytes", bytes);
		er->bytes += bytes;
		json_object_array_add(er->evicted, e);
		return 0;
	}
	ob = objects_find_id(d, o->id);
	pinned = ob && objects_pinned(ob);
	if (!er->dry_run && ob) {
		objects_doom(d, ob);
		if (er->force && !pinned)
			objects_revoke(d, ob, 0, objects_nblocks(ob), NULL, NULL);
	}
	json_object_object_add(
		e, "reason",
		json_object_new_string(
			pinned ? "open, read by FUSE passthrough: nothing is punched (the kernel "
				 "reads the file directly); removed at its last close"
			: er->force ? "open: its blocks are revoked from the mounts and "
				      "punched now; the object goes at its last close"
				    : "open: removed at its last close"));
	json_object_array_add(er->deferred, e);
	return 0;
}

static json_object *do_evict(struct daemon *d, json_object *req, int *err)
{
	struct evict_req er = { .d = d };
	const char *url = get_str(req, "url");
	json_object *out;

	er.any = get_bool(req, "all");
	er.dry_run = get_bool(req, "dry_run");
	er.force = get_bool(req, "force");
	if (!er.any && (!url || jobs_parse_object_url(url, &er.bu, er.name, sizeof(er.name)))) {
		*err = -EINVAL;
		return NULL;
	}
	er.evicted = json_object_new_array();
	er.deferred = json_object_new_array();
	*err = meta_evict_scan(d->meta, evict_fn, &er);
	out = json_object_new_object();
	json_object_object_add(out, "evicted", er.evicted);
	json_object_object_add(out, "deferred", er.deferred);
	add_u64(out, "bytes", er.bytes);
	json_object_object_add(out, "dry_run", json_object_new_boolean(er.dry_run));
	return out;
}

/* ---- check ---- */

struct check_req {
	struct task t;
	struct conn *c;
	uint32_t seq;
	int status; /* the barrier's */
};

/* Engine, once everything queued before the request is committed: recounts and answers. */
static void check_run(struct daemon *d, struct task *t)
{
	struct check_req *cr = (struct check_req *)t;
	struct objects_count n;
	json_object *out;
	int rc = cr->status ? cr->status : objects_recount(d, &n);

	if (rc) {
		ctl_reply_error(cr->c, cr->seq, rc, "recounting the cache failed");
	} else {
		bool ok = n.counted == n.resident_bytes + n.stored_bytes;

		if (!ok)
			log_error(
				"accounting check: the count of cached bytes is %llu, the objects "
				"hold %llu (%llu in %llu resident objects, %llu in %llu others)",
				(unsigned long long)n.counted,
				(unsigned long long)(n.resident_bytes + n.stored_bytes),
				(unsigned long long)n.resident_bytes,
				(unsigned long long)n.resident_objects,
				(unsigned long long)n.stored_bytes,
				(unsigned long long)n.stored_objects);
		out = json_object_new_object();
		json_object_object_add(out, "ok", json_object_new_boolean(ok));
		add_u64(out, "bytes_used", n.counted);
		add_u64(out, "bytes_in_objects", n.resident_bytes + n.stored_bytes);
		add_u64(out, "resident_objects", n.resident_objects);
		add_u64(out, "resident_bytes", n.resident_bytes);
		add_u64(out, "stored_objects", n.stored_objects);
		add_u64(out, "stored_bytes", n.stored_bytes);
		add_u64(out, "lmdb_bytes", n.meta_bytes);
		add_u64(out, "accounting_errors", atomic_load(&d->st.accounting_errors));
		ctl_reply_json(cr->c, cr->seq, 0, out);
		json_object_put(out);
	}
	conn_put(cr->c);
	free(cr);
}

/* check: after the pending commits, compares the count of cached bytes with a recount over
 * every object (the invariant eviction and accounting keep). */
static int start_check(struct daemon *d, struct conn *c, uint32_t seq)
{
	struct check_req *cr = calloc(1, sizeof(*cr));

	if (!cr)
		return -ENOMEM;
	cr->t.fn = check_run;
	cr->c = conn_get(c);
	cr->seq = seq;
	writer_barrier(d, &cr->t, &cr->status);
	return 0;
}

/* ---- jobs ---- */

static json_object *job_json(struct job *j)
{
	static const char *const states[] = { "running", "done", "failed", "cancelled" };
	json_object *o = json_object_new_object(), *errs = json_object_new_array();

	add_u64(o, "job", j->id);
	json_object_object_add(o, "kind",
			       json_object_new_string(j->kind == JOB_WARM ? "warm" : "verify"));
	json_object_object_add(o, "url", json_object_new_string(j->url));
	json_object_object_add(o, "state", json_object_new_string(states[atomic_load(&j->state)]));
	add_u64(o, "objects", j->kind == JOB_WARM ? j->nitems : atomic_load(&j->objects_total));
	add_u64(o, "objects_done", atomic_load(&j->objects_done));
	add_u64(o, "objects_failed", atomic_load(&j->objects_failed));
	add_u64(o, "bytes", atomic_load(&j->bytes_total));
	add_u64(o, "bytes_done", atomic_load(&j->bytes_done));
	json_object_object_add(o, "started", json_object_new_int64(j->started));
	json_object_object_add(o, "finished", json_object_new_int64(j->finished));
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < j->nerrors; i++)
		json_object_array_add(errs,
				      json_object_new_string(j->errors[i] ? j->errors[i] : ""));
	if (j->kind == JOB_VERIFY) {
		json_object *cor = json_object_new_array();

		add_u64(o, "blocks_checked", atomic_load(&j->blocks_checked));
		add_u64(o, "corrupt_blocks", atomic_load(&j->corrupt_blocks));
		for (size_t i = 0; i < j->ncorrupt; i++) {
			json_object *c = json_object_new_object();

			json_object_object_add(
				c, "url",
				json_object_new_string(j->corrupt[i].url ? j->corrupt[i].url : ""));
			add_u64(c, "block", j->corrupt[i].block);
			json_object_array_add(cor, c);
		}
		json_object_object_add(o, "corrupt", cor);
	}
	pthread_mutex_unlock(&j->lock);
	json_object_object_add(o, "errors", errs);
	return o;
}

static void start_warm(struct daemon *d, struct conn *c, uint32_t seq, json_object *req)
{
	struct warm_req *wr = calloc(1, sizeof(*wr));
	const char *url = get_str(req, "url"), *ep = get_str(req, "endpoint"),
		   *region = get_str(req, "region");
	struct bucket_url bu;
	int64_t par = get_int(req, "parallel", 4);

	if (!wr) {
		ctl_reply_error(c, seq, -ENOMEM, "out of memory");
		return;
	}
	if (!url || jobs_parse_object_url(url, &bu, wr->name, sizeof(wr->name)) ||
	    (ep && strlen(ep) >= sizeof(wr->endpoint)) ||
	    (region && strlen(region) >= sizeof(wr->region)) || strlen(url) >= sizeof(wr->url) ||
	    par < 1 || par > 256) {
		free(wr);
		ctl_reply_error(c, seq, -EINVAL,
				"warm needs a URL like gs://bucket/prefix (parallel 1-256)");
		return;
	}
	snprintf(wr->url, sizeof(wr->url), "%s", url);
	if (ep)
		snprintf(wr->endpoint, sizeof(wr->endpoint), "%s", ep);
	if (region)
		snprintf(wr->region, sizeof(wr->region), "%s", region);
	wr->anonymous = get_bool(req, "anonymous");
	wr->parallel = (int)par;
	wr->seq = seq;
	wr->c = conn_get(c);
	jobs_warm(d, wr);
}

void ctl_request(struct daemon *d, struct conn *c, uint32_t seq, const char *json, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *req = NULL, *cmd, *out = NULL;
	const char *name;
	int err = -EINVAL;

	if (!tok) {
		ctl_reply_error(c, seq, -ENOMEM, "out of memory");
		return;
	}
	if (len < 2 || len > 65536) {
		ctl_reply_error(c, seq, -EINVAL, "malformed request");
		goto out;
	}
	req = json_tokener_parse_ex(tok, json, (int)len);
	if (!req || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		ctl_reply_error(c, seq, -EINVAL, "malformed request: a JSON object with \"cmd\"");
		goto out;
	}
	name = json_object_get_string(cmd);
	if (strcmp(name, "status") != 0 && strcmp(name, "stats") != 0 && conn_uid(c) != 0 &&
	    conn_uid(c) != getuid()) {
		/* Object names and cache control are the operator's: other users get counters only.
		 */
		ctl_reply_error(c, seq, -EPERM, "only root or the daemon's own user may do that");
		goto out;
	}
	if (strcmp(name, "status") == 0) {
		out = status_json(d);
	} else if (strcmp(name, "stats") == 0) {
		const char *fmt = get_str(req, "format");

		if (fmt && strcmp(fmt, "prometheus") == 0) {
			char *text = ctl_prometheus(d);

			out = json_object_new_object();
			json_object_object_add(out, "text",
					       json_object_new_string(text ? text : ""));
			free(text);
		} else {
			out = ctl_stats_json(d);
		}
	} else if (strcmp(name, "ls") == 0 || strcmp(name, "stat") == 0) {
		start_ls(d, c, seq, req, name[1] == 't');
		goto out;
	} else if (strcmp(name, "warm") == 0) {
		start_warm(d, c, seq, req);
		goto out;
	} else if (strcmp(name, "verify") == 0) {
		const char *url = get_str(req, "url");
		struct bucket_url bu;
		char nm[URL_KEY_MAX + 1];
		uint64_t id;

		if (url && *url && jobs_parse_object_url(url, &bu, nm, sizeof(nm))) {
			ctl_reply_error(c, seq, -EINVAL, "expected a URL like gs://bucket/name");
			goto out;
		}
		err = jobs_verify(d, url, &id);
		if (!err) {
			out = json_object_new_object();
			add_u64(out, "job", id);
		}
	} else if (strcmp(name, "job") == 0 || strcmp(name, "cancel") == 0) {
		struct job *j = jobs_find(d, (uint64_t)get_int(req, "job", 0));

		if (!j) {
			ctl_reply_error(c, seq, -ENOENT, "no such job");
			goto out;
		}
		if (name[0] == 'c')
			jobs_cancel(d, j);
		out = job_json(j);
	} else if (strcmp(name, "check") == 0) {
		err = start_check(d, c, seq);
		if (err)
			ctl_reply_error(c, seq, err, "out of memory");
		goto out;
	} else if (strcmp(name, "evict") == 0) {
		out = do_evict(d, req, &err);
		if (!out) {
			ctl_reply_error(c, seq, err,
					"evict needs a URL like gs://bucket/prefix, or \"all\"");
			goto out;
		}
	} else {
		ctl_reply_error(c, seq, -ENOSYS, "unknown command");
		goto out;
	}
	if (!out) {
		ctl_reply_error(c, seq, err, strerror(-err));
		goto out;
	}
	ctl_reply_json(c, seq, 0, out);
	json_object_put(out);
out:
	json_object_put(req);
	json_tokener_free(tok);
}
