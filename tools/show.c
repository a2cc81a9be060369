/* show: the one-request commands of hoardfs-inspect (status, ls, stat, evict, stats) and their
 * text for people. Every reply member is read through reply.h: a missing or mistyped member
 * prints "-" where it is only shown, and fails the command where it is needed. */
#include "tools/show.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/proto.h"
#include "tools/format.h"
#include "tools/inspect.h"
#include "tools/offline.h"
#include "tools/reply.h"

#define CLEAN_MAX 4096 /* a cleaned URL or message */
#define MAP_CELLS 64   /* width of the block map drawn by stat */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static int malformed(struct insp *x, const char *what)
{
	insp_err("%s: malformed reply from hoardfs-cached (%s)", x->cmd, what);
	return INSP_EXIT_FAIL;
}

/* Sends {"cmd": name [, "url": x->url]}; returns 0 or the exit status of a failure. */
static int simple_request(struct insp *x, const char *name, bool with_url, json_object **rep)
{
	json_object *req = insp_req_new(name);
	int rc;

	*rep = NULL;
	if (!req || (with_url && x->url && insp_req_str(req, "url", x->url))) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, rep);
	json_object_put(req);
	return rc ? insp_exit_for(x, rc) : 0;
}

/* ---- status ---- */

static void kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("  %-13s", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int print_mounts(json_object *mounts, int64_t now)
{
	static const char *const hdr[] = { "ID", "PID", "UID", "BUCKET", "MOUNTPOINT", "SINCE" };
	struct fmt_table *t;
	size_t n = json_object_array_length(mounts);
	int rc;

	rc = fmt_table_new(6, hdr, "rrrlll", &t);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		char id[24] = "-", pid[24] = "-", uid[24] = "-", since[FMT_SHORT];
		const char *cells[6] = { id,
					 pid,
					 uid,
					 reply_str_or(m, "bucket", "-"),
					 reply_str_or(m, "mountpoint", "-"),
					 since };
		uint64_t v;

		if (!json_object_is_type(m, json_type_object))
			continue;
		if (!reply_u64(m, "id", &v))
			snprintf(id, sizeof(id), "%llu", (unsigned long long)v);
		if (!reply_u64(m, "pid", &v))
			snprintf(pid, sizeof(pid), "%llu", (unsigned long long)v);
		if (!reply_u64(m, "uid", &v))
			snprintf(uid, sizeof(uid), "%llu", (unsigned long long)v);
		fmt_age(reply_i64_or(m, "since", 0), now, since, sizeof(since));
		rc = fmt_table_add(t, cells);
	}
	if (!rc) {
		putchar('\n');
		fmt_table_print(t, stdout, 2);
	}
	fmt_table_free(t);
	return rc;
}

static int print_status(struct insp *x, json_object *r)
{
	char a[FMT_SHORT], b[FMT_SHORT], c[FMT_SHORT], clean[CLEAN_MAX];
	uint64_t used = 0, limit = 0, fs_free = 0, fs_size = 0, v;
	json_object *mounts = NULL;
	int64_t now = now_s();

	if (reply_u64(r, "pid", &v))
		return malformed(x, "no pid");
	printf("hoardfs-cached %s is running (pid %llu, up %s, epoch %llu)\n",
	       fmt_clean(reply_str_or(r, "version", "?"), clean, 64), (unsigned long long)v,
	       fmt_duration(reply_u64_or(r, "uptime", 0), a, sizeof(a)),
	       (unsigned long long)reply_u64_or(r, "epoch", 0));
	kv("cache dir", "%s", fmt_clean(reply_str_or(r, "cache_dir", "-"), clean, sizeof(clean)));
	kv("socket", "%s", fmt_clean(reply_str_or(r, "socket", "-"), clean, sizeof(clean)));
	used = reply_u64_or(r, "bytes_used", 0);
	limit = reply_u64_or(r, "bytes_limit", 0);
	if (limit)
		kv("cache used", "%s of %s limit (%s)", fmt_size(used, a, sizeof(a)),
		   fmt_size(limit, b, sizeof(b)),
		   fmt_percent(100.0 * (double)used / (double)limit, c, sizeof(c)));
	else
		kv("cache used", "%s", fmt_size(used, a, sizeof(a)));
	kv("objects", "%llu", (unsigned long long)reply_u64_or(r, "objects", 0));
	fs_free = reply_u64_or(r, "fs_free", 0);
	fs_size = reply_u64_or(r, "fs_size", 0);
	if (fs_size)
		kv("file system", "%s free of %s", fmt_size(fs_free, a, sizeof(a)),
		   fmt_size(fs_size, b, sizeof(b)));
	kv("fetching", "%llu GETs in flight",
	   (unsigned long long)reply_u64_or(r, "fetches_inflight", 0));
	if (reply_array(r, "mounts", &mounts)) {
		kv("mounts", "-");
		return INSP_EXIT_OK;
	}
	kv("mounts", "%zu", json_object_array_length(mounts));
	if (json_object_array_length(mounts) && print_mounts(mounts, now)) {
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	return INSP_EXIT_OK;
}

int show_status(struct insp *x)
{
	json_object *req = insp_req_new("status"), *rep = NULL;
	int rc, ex;

	if (!req) {
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request_quiet_down(x, req, &rep);
	json_object_put(req);
	if (rc && x->down) {
		/* the answer to "status", so on stdout unless stdout is for JSON */
		insp_report_down(x, rc, x->json ? stderr : stdout);
		return INSP_EXIT_DOWN;
	}
	if (rc)
		return insp_exit_for(x, rc);
	if (x->json) {
		insp_print_json(rep);
		ex = INSP_EXIT_OK;
	} else {
		ex = print_status(x, rep);
	}
	json_object_put(rep);
	return ex;
}

/* ---- ls ---- */

/* The percent cached of an ls/stat entry: the daemon's, or computed. */
static double entry_percent(json_object *o)
{
	uint64_t size = reply_u64_or(o, "size", 0), present;
	double pct;

	if (!reply_double(o, "percent", &pct))
		return pct;
	if (reply_u64(o, "present_bytes", &present))
		return -1;
	return size ? 100.0 * (double)present / (double)size : 100.0;
}

/* Whether the objects come from more than one endpoint (then a column tells them apart). */
static bool several_endpoints(json_object *objs)
{
	const char *first = NULL;

	for (size_t i = 0; i < json_object_array_length(objs); i++) {
		const char *ep = reply_str_or(json_object_array_get_idx(objs, i), "endpoint", "");

		if (!first)
			first = ep;
		else if (strcmp(first, ep) != 0)
			return true;
	}
	return false;
}

/* json_object_array_sort() order: by URL, then endpoint, then version. */
static int by_url(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
	static const char *const keys[] = { "url", "endpoint", "version" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		int c = strcmp(reply_str_or(x, keys[i], ""), reply_str_or(y, keys[i], ""));

		if (c)
			return c;
	}
	return 0;
}

static void flags_of(json_object *o, char *out, size_t outsz)
{
	bool open = false, verified = false, has_open = !reply_bool(o, "open", &open);

	reply_bool(o, "verified", &verified);
	snprintf(out, outsz, "%s%s%s", open ? "open" : "", open && verified ? "," : "",
		 verified ? "verified" : "");
	if (!*out)
		snprintf(out, outsz, has_open ? "-" : "?");
}

static int print_ls(struct insp *x, json_object *r, bool offline)
{
	static const char *const hdr[] = { "SIZE",  "CACHED", "VERSION", "LAST ACCESS",
					   "FLAGS", "URL",    "ENDPOINT" };
	json_object *objs;
	struct fmt_table *t = NULL;
	uint64_t total = 0, present = 0;
	bool eps;
	size_t n;
	int64_t now = now_s();
	char a[FMT_SHORT], b[FMT_SHORT], c[FMT_SHORT], clean[CLEAN_MAX];
	int rc;

	if (reply_array(r, "objects", &objs))
		return malformed(x, "no \"objects\" array");
	n = json_object_array_length(objs);
	for (size_t i = 0; i < n; i++) {
		if (!json_object_is_type(json_object_array_get_idx(objs, i), json_type_object))
			return malformed(x, "an object entry is not a JSON object");
	}
	if (offline)
		fprintf(stderr,
			"hoardfs-cached is not running: read the metadata in %s/meta read-only "
			"(open state unknown)\n",
			fmt_clean(x->cache_dir, clean, sizeof(clean)));
	if (n == 0) {
		if (x->url)
			printf("nothing cached under %s\n",
			       fmt_clean(x->url, clean, sizeof(clean)));
		else
			printf("the cache is empty\n");
		return INSP_EXIT_OK;
	}
	json_object_array_sort(objs, by_url); /* for people; --json keeps the daemon's order */
	eps = several_endpoints(objs);
	rc = fmt_table_new(eps ? 7 : 6, hdr, eps ? "rrlllll" : "rrllll", &t);
	for (size_t i = 0; i < n && !rc; i++) {
		json_object *o = json_object_array_get_idx(objs, i);
		char size[FMT_SHORT] = "-", pct[FMT_SHORT], age[FMT_SHORT], flags[32];
		const char *cells[7] = { size,
					 pct,
					 reply_str_or(o, "version", "-"),
					 age,
					 flags,
					 reply_str_or(o, "url", "-"),
					 reply_str_or(o, "endpoint", "-") };
		uint64_t v;

		if (!reply_u64(o, "size", &v)) {
			fmt_size(v, size, sizeof(size));
			total += v;
		}
		present += reply_u64_or(o, "present_bytes", 0);
		if (entry_percent(o) < 0)
			snprintf(pct, sizeof(pct), "-");
		else
			fmt_percent(entry_percent(o), pct, sizeof(pct));
		fmt_age(reply_i64_or(o, "last_access", 0), now, age, sizeof(age));
		flags_of(o, flags, sizeof(flags));
		rc = fmt_table_add(t, cells);
	}
	if (rc) {
		fmt_table_free(t);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	fmt_table_print(t, stdout, 0);
	fmt_table_free(t);
	printf("%zu object%s, %s, %s cached (%s)\n", n, n == 1 ? "" : "s",
	       fmt_size(total, a, sizeof(a)), fmt_size(present, b, sizeof(b)),
	       fmt_percent(total ? 100.0 * (double)present / (double)total : 100.0, c, sizeof(c)));
	return INSP_EXIT_OK;
}

int show_ls(struct insp *x)
{
	json_object *req = insp_req_new("ls"), *rep = NULL;
	bool offline = false;
	int rc, orc, ex;

	if (!req || (x->url && insp_req_str(req, "url", x->url))) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request_quiet_down(x, req, &rep);
	json_object_put(req);
	if (rc && x->down) {
		orc = offline_ls(x, &rep);
		if (orc == -EPERM || orc == -ENOENT || orc == -ENOTSUP) {
			insp_report_down(x, rc, stderr);
			if (orc == -EPERM)
				fprintf(stderr,
					"(as root, ls reads the cache's metadata directly)\n");
			return INSP_EXIT_DOWN;
		}
		if (orc == -EAGAIN) {
			insp_report_down(x, rc, stderr);
			insp_err("ls: the metadata in %s/meta is held by a running hoardfs-cached "
				 "(on another --socket?)",
				 x->cache_dir);
			return INSP_EXIT_FAIL;
		}
		if (orc) {
			insp_report_down(x, rc, stderr);
			insp_err("ls: cannot read the metadata in %s/meta: %s", x->cache_dir,
				 strerror(-orc));
			return INSP_EXIT_FAIL;
		}
		offline = true;
	} else if (rc) {
		return insp_exit_for(x, rc);
	}
	if (x->json) {
		insp_print_json(rep);
		ex = INSP_EXIT_OK;
	} else {
		ex = print_ls(x, rep, offline);
	}
	json_object_put(rep);
	return ex;
}

/* ---- stat ---- */

/*
 * Draws the block map "0-2047,3000,3005-3010" as MAP_CELLS characters: '#' every block of the
 * cell present, '+' some, '.' none. Returns 0, or -EINVAL when the map does not parse or names
 * blocks past `blocks` (then only the text is shown).
 */
static int draw_map(const char *map, uint64_t blocks, char *out, size_t outsz)
{
	uint64_t count[MAP_CELLS] = { 0 };
	size_t cells = blocks < MAP_CELLS ? (size_t)blocks : MAP_CELLS;
	const char *p = map;

	if (blocks == 0 || outsz < cells + 1)
		return -EINVAL;
	while (*p) {
		uint64_t a, b;
		char *end;

		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		a = strtoull(p, &end, 10);
		if (errno)
			return -EINVAL;
		p = end;
		b = a;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoull(p, &end, 10);
			if (errno)
				return -EINVAL;
			p = end;
		}
		if (b < a || b >= blocks || (*p && *p != ',' && *p != ' '))
			return -EINVAL;
		/* cell i holds blocks [i*blocks/cells, (i+1)*blocks/cells) */
		for (size_t i = (size_t)(a * cells / blocks); i < cells; i++) {
			uint64_t lo = i * blocks / cells, hi = (i + 1) * blocks / cells;
			uint64_t s = a > lo ? a : lo, e = b + 1 < hi ? b + 1 : hi;

			if (lo > b)
				break;
			if (e > s)
				count[i] += e - s;
		}
	}
	for (size_t i = 0; i < cells; i++) {
		uint64_t lo = i * blocks / cells, hi = (i + 1) * blocks / cells;

		out[i] = count[i] == 0 ? '.' : count[i] >= hi - lo ? '#' : '+';
	}
	out[cells] = '\0';
	return 0;
}

static void print_stat_entry(json_object *o, int64_t now)
{
	char a[FMT_SHORT], b[FMT_SHORT], clean[CLEAN_MAX], bar[MAP_CELLS + 1];
	uint64_t size = 0, blocks = 0, present = 0, v;
	const char *map = NULL, *s;
	bool open;
	int64_t t;

	printf("%s\n", fmt_clean(reply_str_or(o, "url", "?"), clean, sizeof(clean)));
	if (!reply_str(o, "endpoint", &s) && *s)
		kv("endpoint", "%s", fmt_clean(s, clean, sizeof(clean)));
	kv("version", "%s", fmt_clean(reply_str_or(o, "version", "-"), clean, sizeof(clean)));
	if (!reply_u64(o, "id", &v))
		kv("object id", "%llu", (unsigned long long)v);
	if (!reply_u64(o, "size", &size))
		kv("size", "%s (%llu bytes)", fmt_size(size, a, sizeof(a)),
		   (unsigned long long)size);
	if (reply_u64(o, "blocks", &blocks))
		blocks = (size + PROTO_BLOCK_SIZE - 1) / PROTO_BLOCK_SIZE;
	if (!reply_u64(o, "present_blocks", &present))
		kv("present", "%llu of %llu blocks of 1 MiB (%s)", (unsigned long long)present,
		   (unsigned long long)blocks,
		   fmt_percent(blocks ? 100.0 * (double)present / (double)blocks : 100.0, a,
			       sizeof(a)));
	if (!reply_str(o, "map", &map)) {
		bool drawn = draw_map(map, blocks, bar, sizeof(bar)) == 0;

		if (drawn)
			kv("map", "[%s]", bar);
		kv(drawn ? "" : "map", "%s",
		   *map ? fmt_clean(map, clean, 512) : "(no block present)");
	}
	s = reply_str_or(o, "checksum_state", NULL);
	if (s)
		kv("checksum", "%s", fmt_clean(s, clean, 64));
	if (!reply_str(o, "crc32c", &s) && *s)
		kv("crc32c", "%s", fmt_clean(s, clean, 64));
	if (!reply_str(o, "md5", &s) && *s)
		kv("md5", "%s", fmt_clean(s, clean, 64));
	if (!reply_bool(o, "open", &open))
		kv("open", "%s", open ? "yes (a mount has it open)" : "no");
	if (!reply_i64(o, "last_access", &t))
		kv("last access", "%s (%s)", fmt_age(t, now, a, sizeof(a)),
		   fmt_time(t, b, sizeof(b)));
}

int show_stat(struct insp *x)
{
	json_object *rep = NULL, *objs;
	char clean[CLEAN_MAX];
	size_t n;
	int ex = simple_request(x, "stat", true, &rep);

	if (ex)
		return ex;
	if (reply_array(rep, "objects", &objs)) {
		ex = malformed(x, "no \"objects\" array");
		goto out;
	}
	n = json_object_array_length(objs);
	for (size_t i = 0; i < n; i++) {
		if (!json_object_is_type(json_object_array_get_idx(objs, i), json_type_object)) {
			ex = malformed(x, "an object entry is not a JSON object");
			goto out;
		}
	}
	if (x->json)
		insp_print_json(rep);
	if (n == 0) {
		insp_err("stat: %s is not in the cache", fmt_clean(x->url, clean, sizeof(clean)));
		ex = INSP_EXIT_FAIL;
		goto out;
	}
	for (size_t i = 0; i < n && !x->json; i++) {
		if (i)
			putchar('\n');
		print_stat_entry(json_object_array_get_idx(objs, i), now_s());
	}
out:
	json_object_put(rep);
	return ex;
}

/* ---- evict ---- */

/*
 * Adds the entries of array `key` to the table: ACTION SIZE [FREED] URL NOTE (a dry run frees
 * nothing, so it has no FREED column). Sums "bytes" into *freed and "size" into *sizes. Returns
 * how many entries there were, or -1 when the array is malformed or memory ran out.
 */
static long evict_rows(struct fmt_table *t, json_object *r, const char *key, const char *action,
		       bool dry_run, uint64_t *freed, uint64_t *sizes)
{
	json_object *arr;
	size_t n;

	if (reply_array(r, key, &arr))
		return reply_has(r, key) ? -1 : 0;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		char bytes[FMT_SHORT] = "-", size[FMT_SHORT] = "-";
		const char *url = reply_str_or(e, "url", "-"),
			   *note = reply_str_or(e, "reason", "");
		const char *wet[5] = { action, size, bytes, url, note };
		const char *dry[4] = { action, size, url, note };
		uint64_t v;

		if (!json_object_is_type(e, json_type_object))
			return -1;
		if (!reply_u64(e, "bytes", &v)) {
			fmt_size(v, bytes, sizeof(bytes));
			*freed += v;
		}
		if (!reply_u64(e, "size", &v)) {
			fmt_size(v, size, sizeof(size));
			*sizes += v;
		}
		if (fmt_table_add(t, dry_run ? dry : wet))
			return -1;
	}
	return (long)n;
}

static int print_evict(struct insp *x, json_object *r)
{
	static const char *const wet[] = { "ACTION", "SIZE", "FREED", "URL", "NOTE" };
	static const char *const dry[] = { "ACTION", "SIZE", "URL", "NOTE" };
	const char *ev = x->dry_run ? "would evict" : "evicted";
	const char *df = x->dry_run ? "would defer" : "deferred";
	struct fmt_table *t;
	uint64_t freed = 0, sizes = 0, dfreed = 0, dsizes = 0;
	long nev, ndf;
	char a[FMT_SHORT], clean[CLEAN_MAX];

	if (x->dry_run ? fmt_table_new(4, dry, "lrll", &t) : fmt_table_new(5, wet, "lrrll", &t)) {
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	nev = reply_has(r, "evicted") ? evict_rows(t, r, "evicted", ev, x->dry_run, &freed, &sizes)
				      : -1;
	ndf = nev < 0 ? -1 : evict_rows(t, r, "deferred", df, x->dry_run, &dfreed, &dsizes);
	if (nev < 0 || ndf < 0) {
		fmt_table_free(t);
		return malformed(x, "no \"evicted\" list, or an entry is not an object");
	}
	if (nev + ndf == 0) {
		fmt_table_free(t);
		if (x->url)
			printf("nothing cached under %s\n",
			       fmt_clean(x->url, clean, sizeof(clean)));
		else
			printf("the cache is empty: nothing to evict\n");
		return INSP_EXIT_OK;
	}
	fmt_table_print(t, stdout, 0);
	fmt_table_free(t);
	if (nev && x->dry_run)
		printf("%s %ld object%s, up to %s\n", ev, nev, nev == 1 ? "" : "s",
		       fmt_size(sizes, a, sizeof(a)));
	else if (nev)
		printf("%s %ld object%s, %s freed\n", ev, nev, nev == 1 ? "" : "s",
		       fmt_size(reply_u64_or(r, "bytes", freed), a, sizeof(a)));
	if (ndf && x->force)
		printf("%s %ld open object%s (blocks revoked from the mounts, removed at the last "
		       "close)\n",
		       df, ndf, ndf == 1 ? "" : "s");
	else if (ndf)
		printf("%s %ld open object%s (removed at the last close; --force revokes the blocks "
		       "from the mounts)\n",
		       df, ndf, ndf == 1 ? "" : "s");
	return INSP_EXIT_OK;
}

int show_evict(struct insp *x)
{
	json_object *req = insp_req_new("evict"), *rep = NULL;
	int rc, ex;

	if (!req || (x->url && insp_req_str(req, "url", x->url)) ||
	    insp_req_bool(req, "all", x->all) || insp_req_bool(req, "dry_run", x->dry_run) ||
	    insp_req_bool(req, "force", x->force)) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	if (x->json) {
		insp_print_json(rep);
		ex = INSP_EXIT_OK;
	} else {
		ex = print_evict(x, rep);
	}
	json_object_put(rep);
	return ex;
}

/* ---- stats ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int print_stats(struct insp *x, json_object *r)
{
	struct fmt_table *t;
	int rc;

	rc = fmt_table_new(3, NULL, "lrl", &t);
	json_object_object_foreach(r, key, val)
	{
		char value[64], human[64] = "";
		const char *cells[3] = { key, value, human };
		uint64_t u;
		double d;

		if (rc)
			break;
		if (json_object_is_type(val, json_type_int) && !reply_u64(r, key, &u)) {
			snprintf(value, sizeof(value), "%llu", (unsigned long long)u);
			if (strstr(key, "bytes") && u >= 1024)
				fmt_size(u, human, sizeof(human));
			else if (ends_with(key, "_ns") && u)
				snprintf(human, sizeof(human), "%.3f s", (double)u / 1e9);
		} else if (!reply_double(r, key, &d)) {
			snprintf(value, sizeof(value), "%.4f", d);
			if (strstr(key, "ratio"))
				fmt_percent(100.0 * d, human, sizeof(human));
		} else {
			const char *s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);

			snprintf(value, sizeof(value), "%s", s ? s : "null");
		}
		rc = fmt_table_add(t, cells);
	}
	if (rc) {
		fmt_table_free(t);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	fmt_table_print(t, stdout, 0);
	fmt_table_free(t);
	(void)x;
	return INSP_EXIT_OK;
}

int show_stats(struct insp *x)
{
	json_object *req = insp_req_new("stats"), *rep = NULL;
	const char *text;
	int rc, ex = INSP_EXIT_OK;

	if (!req || (x->prometheus && insp_req_str(req, "format", "prometheus"))) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	if (x->prometheus) {
		if (reply_str(rep, "text", &text)) {
			ex = malformed(x, "no \"text\" string");
		} else {
			size_t n = strlen(text);

			fwrite(text, 1, n, stdout);
			if (n && text[n - 1] != '\n')
				putchar('\n');
		}
	} else if (x->json) {
		insp_print_json(rep);
	} else {
		ex = print_stats(x, rep);
	}
	json_object_put(rep);
	return ex;
}
