/* ctl: control requests from hoardfs-inspect (JSON over PROTO_CTL) and the daemon's stats. */
#include "cached/daemon.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static void reply_json(struct conn *c, uint32_t seq, int status, json_object *j)
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

static void reply_error(struct conn *c, uint32_t seq, int err, const char *msg)
{
	json_object *j = json_object_new_object();

	json_object_object_add(j, "error", json_object_new_string(msg));
	reply_json(c, seq, err, j);
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
	add_u64(j, "errors", atomic_load(&s->errors));
	add_u64(j, "lookups", atomic_load(&s->lookups));
	add_u64(j, "listings", atomic_load(&s->lists));
	add_u64(j, "opens", atomic_load(&s->opens));
	add_u64(j, "commits", atomic_load(&s->commits));
	add_u64(j, "commit_ns", atomic_load(&s->commit_ns));
	add_u64(j, "commit_blocks", atomic_load(&s->commit_blocks));
	add_u64(j, "writeback_errors", atomic_load(&s->writeback_errors));
	add_u64(j, "mounts_total", atomic_load(&s->mounts_total));
	add_u64(j, "mounts", (uint64_t)atomic_load(&d->nmounts_pub));
	add_u64(j, "fetches_inflight", (uint64_t)fetch_inflight(d));
	add_u64(j, "bytes_cached", objects_bytes_cached(d));
	return j;
}

void ctl_request(struct daemon *d, struct conn *c, uint32_t seq, const char *json, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *req = NULL, *cmd, *out = NULL;
	const char *name;

	if (!tok) {
		reply_error(c, seq, -ENOMEM, "out of memory");
		return;
	}
	if (len < 2 || len > 65536) {
		reply_error(c, seq, -EINVAL, "malformed request");
		goto out;
	}
	req = json_tokener_parse_ex(tok, json, (int)len);
	if (!req || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		reply_error(c, seq, -EINVAL, "malformed request: a JSON object with \"cmd\"");
		goto out;
	}
	name = json_object_get_string(cmd);
	if (strcmp(name, "status") == 0)
		out = status_json(d);
	else if (strcmp(name, "stats") == 0)
		out = ctl_stats_json(d);
	if (!out) {
		reply_error(c, seq, -ENOSYS, "unknown command");
		goto out;
	}
	reply_json(c, seq, 0, out);
	json_object_put(out);
out:
	json_object_put(req);
	json_tokener_free(tok);
}

int metrics_start(struct daemon *d)
{
	if (d->cfg.metrics_addr[0])
		log_warn("--metrics-addr is not served by this build yet");
	return 0;
}

void metrics_stop(struct daemon *d)
{
}
