/* mdsvc: metadata workers. They answer REGISTER (who may use which bucket, and does it answer),
 * LOOKUP and LIST (from directory listings cached in LMDB for the metadata TTL), and check OPENs
 * (is this version still the store's, or one we hold) before the engine opens the object. Each
 * worker has its own HTTP client; stores are shared per bucket. */
#include "cached/daemon.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/msg.h"

#define MAX_DIR_ENTRIES 500000 /* a listing larger than this is refused (-EFBIG) */

struct md_job {
	struct md_job *next;
	struct conn *c;	    /* reference */
	struct md_mount mm; /* mm.bk: a reference taken for the job, NULL for REGISTER */
	bool registered;
	void (*fn)(struct daemon *d, struct http_client *hc, struct md_job *j); /* CTL work */
	void *arg;
	uint32_t len;
	uint8_t msg[];
};

struct listing {
	struct listing *next;
	uint32_t bucket;
	char *dir;
};

struct mdsvc {
	pthread_t *thr;
	int n;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct md_job *head, *tail;
	bool stop;
	/* directories being listed now, so concurrent lookups wait for one listing */
	pthread_mutex_t list_lock;
	pthread_cond_t list_cond;
	struct listing *busy;
};

/* ---- buckets ---- */

void bucket_put(struct daemon *d, struct bucket *bk)
{
	if (!bk)
		return;
	pthread_mutex_lock(&d->buckets_lock);
	bk->refs--;
	/* Buckets stay for the daemon's life: their store keeps warm connections and tokens. */
	pthread_mutex_unlock(&d->buckets_lock);
}

static struct bucket *bucket_get(struct daemon *d, struct bucket *bk)
{
	pthread_mutex_lock(&d->buckets_lock);
	bk->refs++;
	pthread_mutex_unlock(&d->buckets_lock);
	return bk;
}

/* Finds or creates the bucket for a store configuration. */
static int bucket_find(struct daemon *d, const struct store_config *sc, struct bucket **out)
{
	char key[META_BUCKET_KEY_MAX + 1];
	struct bucket *bk;
	int rc, n;

	/* A truncated key could make two stores share one bucket id: refuse it instead. */
	n = snprintf(key, sizeof(key), "%s|%s|%s|%s|%s", url_scheme_name(sc->scheme),
		     sc->endpoint ? sc->endpoint : "", sc->bucket, sc->anonymous ? "anon" : "auth",
		     sc->region ? sc->region : "");
	if (n < 0 || (size_t)n >= sizeof(key))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&d->buckets_lock);
	for (bk = d->buckets; bk; bk = bk->next) {
		if (strcmp(bk->key, key) == 0) {
			bk->refs++;
			pthread_mutex_unlock(&d->buckets_lock);
			*out = bk;
			return 0;
		}
	}
	bk = calloc(1, sizeof(*bk));
	if (!bk) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	snprintf(bk->key, sizeof(bk->key), "%s", key);
	snprintf(bk->name, sizeof(bk->name), "%s", sc->bucket);
	bk->scheme = sc->scheme;
	/* Bucket ids are created once per bucket: a rare write outside the writer thread. */
	rc = meta_bucket_id(d->meta, key, true, &bk->id);
	if (rc)
		goto out_free;
	rc = store_open(sc, &bk->store);
	if (rc)
		goto out_free;
	bk->refs = 1;
	bk->next = d->buckets;
	d->buckets = bk;
	pthread_mutex_unlock(&d->buckets_lock);
	log_info("bucket %s", store_describe(bk->store));
	*out = bk;
	return 0;
out_free:
	free(bk);
out_unlock:
	pthread_mutex_unlock(&d->buckets_lock);
	return rc;
}

struct bucket *mdsvc_known_bucket(struct daemon *d, enum url_scheme scheme, const char *name)
{
	struct bucket *found = NULL;
	int n = 0;

	pthread_mutex_lock(&d->buckets_lock);
	for (struct bucket *bk = d->buckets; bk; bk = bk->next) {
		if (bk->scheme == scheme && strcmp(bk->name, name) == 0) {
			found = bk;
			n++;
		}
	}
	if (n == 1)
		found->refs++;
	else
		found = NULL;
	pthread_mutex_unlock(&d->buckets_lock);
	return found;
}

void mdsvc_free_buckets(struct daemon *d)
{
	while (d->buckets) {
		struct bucket *bk = d->buckets;

		d->buckets = bk->next;
		store_free(bk->store);
		free(bk);
	}
}

/* ---- paths ---- */

/* A path from a mount: no leading or trailing '/', no empty, "." or ".." segments, valid UTF-8,
 * no control characters. "" is the root. */
static bool path_ok(const char *p, size_t len)
{
	size_t seg = 0;

	if (len == 0)
		return true;
	if (len >= PROTO_PATH_MAX || p[0] == '/' || p[len - 1] == '/' || !url_utf8_valid(p, len))
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || p[i] == '/') {
			size_t n = i - seg;

			if (n == 0 || (n == 1 && p[seg] == '.') ||
			    (n == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return false;
			seg = i + 1;
		} else if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			return false;
		}
	}
	return true;
}

/* Splits mount path `path` into the store directory key (prefix + parent + "/") and the name. */
static int split_path(const struct md_mount *mm, const char *path, char *dir, size_t dirsz,
		      const char **name)
{
	const char *slash = strrchr(path, '/');
	int n;

	if (slash) {
		n = snprintf(dir, dirsz, "%s%.*s/", mm->prefix, (int)(slash - path), path);
		*name = slash + 1;
	} else {
		n = snprintf(dir, dirsz, "%s", mm->prefix);
		*name = path;
	}
	if (n < 0 || (size_t)n >= dirsz || strlen(dir) + strlen(*name) > URL_KEY_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- listings ---- */

struct collect {
	const char *dir;
	size_t dirlen;
	struct meta_dirent *e;
	size_t n, cap;
	int rc;
};

static int add_entry(struct collect *c, const char *name, size_t nlen, const struct store_object *o,
		     bool is_dir)
{
	struct meta_dirent *d;

	if (nlen == 0 || nlen > URL_KEY_MAX || memchr(name, '/', nlen) ||
	    (nlen == 1 && name[0] == '.') || (nlen == 2 && name[0] == '.' && name[1] == '.'))
		return 0; /* not representable as a file name: skipped */
	/* A file and a directory of the same name: the directory wins, as in gcsfuse. */
	for (size_t i = 0; i < c->n; i++) {
		if (strlen(c->e[i].name) == nlen && memcmp(c->e[i].name, name, nlen) == 0) {
			if (is_dir)
				c->e[i].type = PROTO_FT_DIR;
			return 0;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct meta_dirent *ne;

		if (c->n >= MAX_DIR_ENTRIES)
			return -EFBIG;
		ne = realloc(c->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		c->e = ne;
		c->cap = cap;
	}
	d = &c->e[c->n++];
	memset(d, 0, sizeof(*d));
	memcpy(d->name, name, nlen);
	d->type = is_dir ? PROTO_FT_DIR : PROTO_FT_FILE;
	if (!is_dir) {
		d->size = o->size;
		d->mtime_sec = o->mtime_sec;
		d->mtime_nsec = o->mtime_nsec;
		snprintf(d->version, sizeof(d->version), "%s", o->version);
		d->crc32c = o->crc32c;
		memcpy(d->md5, o->md5, 16);
		d->flags = (o->has_crc32c ? META_OBJ_HAS_CRC32C : 0) |
			   (o->has_md5 ? META_OBJ_HAS_MD5 : 0);
	}
	return 0;
}

static int collect_fn(void *ctx, const struct store_object *o, bool is_prefix)
{
	struct collect *c = ctx;
	size_t len = strlen(o->name);

	if (len < c->dirlen || memcmp(o->name, c->dir, c->dirlen) != 0)
		return 0;
	if (is_prefix) {
		/* "dir/child/" -> "child" */
		if (len <= c->dirlen + 1)
			return 0;
		return add_entry(c, o->name + c->dirlen, len - c->dirlen - 1, o, true);
	}
	return add_entry(c, o->name + c->dirlen, len - c->dirlen, o, false);
}

static bool listing_fresh(struct daemon *d, uint32_t bucket, const char *dir, int max_age)
{
	int64_t when;

	if (meta_dir_listed_at(d->meta, bucket, dir, &when))
		return false;
	return max_age < 0 || daemon_now() - when < max_age;
}

/* Makes sure the listing of `dir` is at most max_age seconds old (max_age < 0: any age). */
static int ensure_listing(struct daemon *d, struct http_client *hc, struct bucket *bk,
			  const char *dir, int max_age)
{
	struct mdsvc *md = d->md;
	struct listing me = { .bucket = bk->id, .dir = (char *)dir };
	struct collect col = { .dir = dir, .dirlen = strlen(dir) };
	struct meta_batch *b;
	int rc;

	pthread_mutex_lock(&md->list_lock);
	for (;;) {
		struct listing *l;

		if (listing_fresh(d, bk->id, dir, max_age)) {
			pthread_mutex_unlock(&md->list_lock);
			return 0;
		}
		for (l = md->busy; l; l = l->next) {
			if (l->bucket == bk->id && strcmp(l->dir, dir) == 0)
				break;
		}
		if (!l)
			break;
		pthread_cond_wait(&md->list_cond, &md->list_lock);
	}
	me.next = md->busy;
	md->busy = &me;
	pthread_mutex_unlock(&md->list_lock);

	atomic_fetch_add(&d->st.lists, 1);
	rc = store_list(bk->store, hc, dir, "/", 0, collect_fn, &col);
	if (rc) {
		log_warn("listing %s/%s failed: %s", bk->name, dir, strerror(-rc));
	} else {
		rc = meta_batch_new(&b);
		if (!rc)
			rc = meta_batch_put_dir(b, bk->id, dir, col.e, col.n, daemon_now());
		if (!rc)
			rc = writer_commit_sync(d, b);
		else
			meta_batch_free(b);
	}
	free(col.e);
	pthread_mutex_lock(&md->list_lock);
	for (struct listing **pp = &md->busy; *pp; pp = &(*pp)->next) {
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	}
	pthread_cond_broadcast(&md->list_cond);
	pthread_mutex_unlock(&md->list_lock);
	return rc;
}

static void dirent_to_attr(const struct meta_dirent *e, struct proto_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->type = e->type;
	if (e->type == PROTO_FT_FILE) {
		a->size = e->size;
		a->mtime_sec = e->mtime_sec;
		a->mtime_nsec = e->mtime_nsec;
		snprintf(a->version, sizeof(a->version), "%s", e->version);
	}
}

/* Finds `path` through its parent's listing; a miss relists once the negative TTL ran out. */
static int lookup_dirent(struct daemon *d, struct http_client *hc, const struct md_mount *mm,
			 const char *path, struct meta_dirent *out)
{
	char dir[URL_KEY_MAX + 2];
	const char *name;
	int64_t when;
	int rc = split_path(mm, path, dir, sizeof(dir), &name);

	if (rc)
		return rc;
	rc = ensure_listing(d, hc, mm->bk, dir, mm->ttl);
	if (rc)
		return rc;
	rc = meta_dir_lookup(d->meta, mm->bk->id, dir, name, out);
	if (rc != -ENOENT || mm->ttl < 0)
		return rc;
	if (meta_dir_listed_at(d->meta, mm->bk->id, dir, &when) == 0 &&
	    daemon_now() - when < mm->neg_ttl)
		return -ENOENT;
	rc = ensure_listing(d, hc, mm->bk, dir, mm->neg_ttl);
	if (rc)
		return rc;
	return meta_dir_lookup(d->meta, mm->bk->id, dir, name, out);
}

int mdsvc_lookup(struct daemon *d, struct http_client *hc, const struct md_mount *mm,
		 const char *path, struct proto_attr *out)
{
	struct meta_dirent *e;
	int rc;

	if (!path_ok(path, strlen(path)))
		return -EINVAL;
	if (!*path) {
		memset(out, 0, sizeof(*out));
		out->type = PROTO_FT_DIR;
		return 0;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	rc = lookup_dirent(d, hc, mm, path, e);
	if (!rc)
		dirent_to_attr(e, out);
	free(e);
	return rc;
}

/* ---- requests ---- */

static int get_path(const struct md_job *j, size_t fixed, uint32_t path_len, char *out)
{
	const struct proto_hdr *h = msg_hdr(j->msg);

	if (h->len < fixed || path_len != h->len - fixed || path_len >= PROTO_PATH_MAX)
		return -EINVAL;
	memcpy(out, (const char *)msg_payload(j->msg) + fixed, path_len);
	out[path_len] = '\0';
	if (memchr(out, '\0', path_len) || !path_ok(out, path_len))
		return -EINVAL;
	return 0;
}

static void do_lookup(struct daemon *d, struct http_client *hc, struct md_job *j)
{
	const struct proto_hdr *h = msg_hdr(j->msg);
	struct proto_path pp;
	struct proto_attr a;
	char path[PROTO_PATH_MAX];
	int rc = -EINVAL;

	atomic_fetch_add(&d->st.lookups, 1);
	if (h->len >= sizeof(pp)) {
		memcpy(&pp, msg_payload(j->msg), sizeof(pp));
		rc = get_path(j, sizeof(pp), pp.path_len, path);
	}
	if (!rc)
		rc = mdsvc_lookup(d, hc, &j->mm, path, &a);
	conn_reply(j->c, PROTO_LOOKUP, h->seq, rc, &a, rc ? 0 : sizeof(a), NULL, 0);
}

struct list_fill {
	uint8_t *buf;
	size_t len, cap;
	uint32_t count;
	bool full;
};

static int fill_fn(void *ctx, const struct meta_dirent *e)
{
	struct list_fill *f = ctx;
	size_t nlen = strlen(e->name),
	       rec = sizeof(struct proto_dirent) + ((nlen + 7) & ~(size_t)7);
	struct proto_dirent pd;

	if (f->len + rec > f->cap) {
		f->full = true;
		return 1;
	}
	memset(&pd, 0, sizeof(pd));
	dirent_to_attr(e, &pd.attr);
	pd.name_len = (uint16_t)nlen;
	memcpy(f->buf + f->len, &pd, sizeof(pd));
	memset(f->buf + f->len + sizeof(pd), 0, rec - sizeof(pd));
	memcpy(f->buf + f->len + sizeof(pd), e->name, nlen);
	f->len += rec;
	f->count++;
	return 0;
}

static void do_list(struct daemon *d, struct http_client *hc, struct md_job *j)
{
	const struct proto_hdr *h = msg_hdr(j->msg);
	struct proto_list pl;
	struct proto_list_reply rep = { 0 };
	struct list_fill f = { 0 };
	char path[PROTO_PATH_MAX], dir[URL_KEY_MAX + 2];
	struct iovec iov[2];
	int rc = -EINVAL, n;

	if (h->len >= sizeof(pl)) {
		memcpy(&pl, msg_payload(j->msg), sizeof(pl));
		rc = get_path(j, sizeof(pl), pl.path_len, path);
	}
	if (rc)
		goto out;
	n = snprintf(dir, sizeof(dir), "%s%s%s", j->mm.prefix, path, *path ? "/" : "");
	if (n < 0 || (size_t)n > URL_KEY_MAX) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	if (*path) {
		struct proto_attr a;

		rc = mdsvc_lookup(d, hc, &j->mm, path, &a);
		if (!rc && a.type != PROTO_FT_DIR)
			rc = -ENOTDIR;
		if (rc)
			goto out;
	}
	rc = ensure_listing(d, hc, j->mm.bk, dir, j->mm.ttl);
	if (rc)
		goto out;
	f.cap = PROTO_MSG_MAX - sizeof(struct proto_hdr) - sizeof(rep);
	f.buf = malloc(f.cap);
	if (!f.buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = meta_dir_scan(d->meta, j->mm.bk->id, dir, pl.cursor, fill_fn, &f);
	if (rc)
		goto out;
	rep.count = f.count;
	rep.next_cursor = f.full ? pl.cursor + f.count : 0;
	iov[0].iov_base = &rep;
	iov[0].iov_len = sizeof(rep);
	iov[1].iov_base = f.buf;
	iov[1].iov_len = f.len;
	conn_replyv(j->c, PROTO_LIST, 0, h->seq, 0, iov, 2, NULL, 0);
	free(f.buf);
	return;
out:
	free(f.buf);
	conn_reply(j->c, PROTO_LIST, h->seq, rc, NULL, 0, NULL, 0);
}

struct open_task {
	struct task t;
	struct open_req r;
};

static void dirent_to_so(const struct meta_dirent *e, struct store_object *so)
{
	so->size = e->size;
	so->mtime_sec = e->mtime_sec;
	so->mtime_nsec = e->mtime_nsec;
	so->has_crc32c = e->flags & META_OBJ_HAS_CRC32C;
	so->crc32c = e->crc32c;
	so->has_md5 = e->flags & META_OBJ_HAS_MD5;
	memcpy(so->md5, e->md5, 16);
	snprintf(so->version, sizeof(so->version), "%s", e->version);
}

/* For an OPEN of a shard that waits for its whole file: the next shards of the same model
 * (listed in the same directory, up to --sibling-prefetch bytes and SIBLINGS_MAX files), for the
 * engine to load while the loader reads this one. Best effort: any failure means fewer. */
#define SIBLINGS_MAX 16
static void find_siblings(struct daemon *d, struct http_client *hc, const struct md_mount *mm,
			  const char *path, struct meta_dirent *e, struct open_req *r)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t dirlen = (size_t)(base - path), klen;
	char sib[PROTO_PATH_MAX];
	unsigned k, n;
	uint64_t bytes = 0;
	int at, width;

	at = plan_shard_name(base, &k, &n, &width);
	if (at < 0 || k >= n)
		return;
	klen = (size_t)width;
	r->sibs = calloc(SIBLINGS_MAX, sizeof(*r->sibs));
	if (!r->sibs)
		return;
	for (unsigned i = k + 1;
	     i <= n && r->nsibs < SIBLINGS_MAX && bytes < d->cfg.sibling_prefetch; i++) {
		struct store_object *so = &r->sibs[r->nsibs];
		int len = snprintf(sib, sizeof(sib), "%.*s%.*s%0*u%s", (int)dirlen, path, at, base,
				   width, i, base + at + klen);

		if (len < 0 || (size_t)len >= sizeof(sib) || lookup_dirent(d, hc, mm, sib, e) ||
		    e->type != PROTO_FT_FILE)
			break;
		if (snprintf(so->name, sizeof(so->name), "%s%s", mm->prefix, sib) >=
		    (int)sizeof(so->name))
			break;
		dirent_to_so(e, so);
		bytes += so->size;
		r->nsibs++;
	}
}

static void open_run(struct daemon *d, struct task *t)
{
	struct open_task *ot = (struct open_task *)t;

	objects_open(d, &ot->r);
	if (ot->r.nsibs)
		plan_siblings(d, ot->r.bk, ot->r.sibs, ot->r.nsibs);
	free(ot->r.sibs);
	bucket_put(d, ot->r.bk);
	conn_put(ot->r.c);
	free(ot);
}

/* Checks that the version a mount wants to open is the store's current one, or one we hold. */
static void do_open(struct daemon *d, struct http_client *hc, struct md_job *j)
{
	const struct proto_hdr *h = msg_hdr(j->msg);
	struct proto_open po;
	struct open_task *ot = NULL;
	struct meta_dirent *e = NULL;
	struct meta_object *rec = NULL;
	char path[PROTO_PATH_MAX];
	struct store_object *so;
	int rc = -EINVAL;

	if (h->len >= sizeof(po)) {
		memcpy(&po, msg_payload(j->msg), sizeof(po));
		rc = get_path(j, sizeof(po), po.path_len, path);
	}
	if (!rc && (!*path || !memchr(po.version, '\0', sizeof(po.version))))
		rc = -EINVAL;
	if (rc)
		goto fail;
	ot = calloc(1, sizeof(*ot));
	e = malloc(sizeof(*e));
	rec = malloc(sizeof(*rec));
	if (!ot || !e || !rec) {
		rc = -ENOMEM;
		goto fail;
	}
	so = &ot->r.so;
	if (snprintf(so->name, sizeof(so->name), "%s%s", j->mm.prefix, path) >=
	    (int)sizeof(so->name)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	rc = lookup_dirent(d, hc, &j->mm, path, e);
	if (!rc && e->type == PROTO_FT_FILE && strcmp(e->version, po.version) == 0 &&
	    e->size == po.size) {
		dirent_to_so(e, so);
	} else if (meta_object_find(d->meta, j->mm.bk->id, so->name, po.version, rec) == 0 &&
		   rec->size == po.size) {
		/* A version we hold (opened before it was replaced): keep serving it. */
		so->size = rec->size;
		so->mtime_sec = rec->mtime_sec;
		so->mtime_nsec = rec->mtime_nsec;
		so->has_crc32c = rec->flags & META_OBJ_HAS_CRC32C;
		so->crc32c = rec->crc32c;
		so->has_md5 = rec->flags & META_OBJ_HAS_MD5;
		memcpy(so->md5, rec->md5, 16);
		snprintf(so->version, sizeof(so->version), "%s", rec->version);
	} else {
		/* Not in the listing: ask the store directly. store_stat() clears its output first,
		 * so the name it is given must not live inside it. */
		memcpy(e->name, so->name, strlen(so->name) + 1);
		rc = store_stat(j->mm.bk->store, hc, e->name, so);
		if (rc)
			goto fail;
		if (strcmp(so->version, po.version) != 0 || so->size != po.size) {
			rc = -ESTALE;
			goto fail;
		}
	}
	if ((po.flags & PROTO_OPEN_F_WAIT) && d->cfg.sibling_prefetch)
		find_siblings(d, hc, &j->mm, path, e, &ot->r);
	free(e);
	free(rec);
	ot->t.fn = open_run;
	ot->r.c = conn_get(j->c);
	ot->r.seq = h->seq;
	ot->r.flags = po.flags;
	ot->r.bk = bucket_get(d, j->mm.bk);
	engine_post(d, &ot->t);
	return;
fail:
	free(ot);
	free(e);
	free(rec);
	conn_reply(j->c, PROTO_OPEN, h->seq, rc, NULL, 0, NULL, 0);
}

/* ---- REGISTER ---- */

/* Whether peer uid may use `url` under the allow-list ("uid:pattern,uid:pattern", "*" = any). */
static bool allowed(const struct daemon *d, uid_t uid, const char *url)
{
	char list[sizeof(d->cfg.allow)];
	char *save = NULL;

	snprintf(list, sizeof(list), "%s", d->cfg.allow);
	for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *colon = strchr(tok, ':');
		char want[32];

		if (!colon)
			continue;
		*colon = '\0';
		snprintf(want, sizeof(want), "%u", (unsigned)uid);
		if ((strcmp(tok, "*") == 0 || strcmp(tok, want) == 0) &&
		    fnmatch(colon + 1, url, 0) == 0)
			return true;
	}
	return false;
}

int mdsvc_bucket(struct daemon *d, uid_t uid, pid_t pid, const struct bucket_url *bu,
		 const char *endpoint, const char *region, bool anonymous, struct bucket **out)
{
	struct store_config sc = { 0 };
	bool trusted = uid == 0 || uid == getuid();
	char url[PROTO_URL_MAX];
	int rc;

	snprintf(url, sizeof(url), "%s://%s/%s", url_scheme_name(bu->scheme), bu->bucket,
		 bu->prefix);
	if (!trusted && !allowed(d, uid, url)) {
		log_warn("uid %u (pid %d) may not use %s: not in the daemon's allow-list",
			 (unsigned)uid, (int)pid, url);
		return -EPERM;
	}
	sc.scheme = bu->scheme;
	sc.bucket = bu->bucket;
	sc.http = &d->cfg.http;
	/* Endpoints and credentials are the daemon's, except for peers it already trusts (its own
	 * user: single-user mode, where the caller started it). */
	if (trusted && endpoint && endpoint[0])
		sc.endpoint = endpoint;
	else if (bu->scheme == URL_GS && d->cfg.default_endpoint_gs[0])
		sc.endpoint = d->cfg.default_endpoint_gs;
	else if (bu->scheme == URL_S3 && d->cfg.default_endpoint_s3[0])
		sc.endpoint = d->cfg.default_endpoint_s3;
	sc.anonymous = trusted && anonymous;
	if (trusted && region && region[0])
		sc.region = region;
	rc = bucket_find(d, &sc, out);
	if (rc)
		log_warn("cannot use %s: %s", url, strerror(-rc));
	return rc;
}

static void do_register(struct daemon *d, struct http_client *hc, struct md_job *j)
{
	const struct proto_hdr *h = msg_hdr(j->msg);
	/* Zeroed: the failure path logs reg->url, also when no payload was copied into it. */
	struct proto_register *reg = calloc(1, sizeof(*reg));
	struct bucket_url bu;
	struct md_mount mm = { 0 };
	uid_t uid = conn_uid(j->c);
	int rc = -EINVAL;

	if (!reg)
		goto fail;
	if (h->len != sizeof(*reg))
		goto fail;
	memcpy(reg, msg_payload(j->msg), sizeof(*reg));
	reg->url[sizeof(reg->url) - 1] = '\0';
	reg->endpoint[sizeof(reg->endpoint) - 1] = '\0';
	reg->region[sizeof(reg->region) - 1] = '\0';
	reg->mountpoint[sizeof(reg->mountpoint) - 1] = '\0';
	if (reg->version != PROTO_VERSION) {
		rc = -EPROTONOSUPPORT;
		goto fail;
	}
	rc = url_parse_bucket(reg->url, &bu);
	if (rc)
		goto fail;
	rc = mdsvc_bucket(d, uid, conn_pid(j->c), &bu, reg->endpoint, reg->region,
			  reg->flags & PROTO_REG_ANONYMOUS, &mm.bk);
	if (rc)
		goto fail;
	snprintf(mm.prefix, sizeof(mm.prefix), "%s", bu.prefix);
	mm.ttl = reg->metadata_ttl < -1 ? -1 : reg->metadata_ttl;
	mm.neg_ttl = (int)(reg->neg_ttl > 3600 ? 3600 : reg->neg_ttl);
	/* Does the bucket answer, with these credentials? One small listing tells. */
	rc = ensure_listing(d, hc, mm.bk, mm.prefix, mm.ttl < 0 ? 3600 : (mm.ttl ? mm.ttl : 1));
	if (rc) {
		log_warn("bucket %s does not answer: %s", reg->url, strerror(-rc));
		bucket_put(d, mm.bk);
		goto fail;
	}
	server_register_done(d, j->c, h->seq, 0, &mm, reg->url, reg->mountpoint);
	free(reg);
	return;
fail:
	server_register_done(d, j->c, h->seq, rc, NULL, reg ? reg->url : NULL, NULL);
	free(reg);
}

/* ---- workers ---- */

static void job_free(struct daemon *d, struct md_job *j)
{
	if (j->mm.bk)
		bucket_put(d, j->mm.bk);
	if (j->c)
		conn_put(j->c);
	free(j);
}

static void *worker_main(void *arg)
{
	struct daemon *d = arg;
	struct mdsvc *md = d->md;
	struct http_opts o = d->cfg.http;
	struct http_client *hc = NULL;

	o.stats = &d->http_stats;
	o.request_timeout_ms = o.request_timeout_ms ? o.request_timeout_ms : 30000;
	if (http_client_new(&o, &hc)) {
		log_error("metadata worker: cannot create an HTTP client");
		return NULL;
	}
	pthread_mutex_lock(&md->lock);
	for (;;) {
		struct md_job *j;

		while (!md->head && !md->stop)
			pthread_cond_wait(&md->cond, &md->lock);
		if (md->stop)
			break;
		j = md->head;
		md->head = j->next;
		if (!md->head)
			md->tail = NULL;
		pthread_mutex_unlock(&md->lock);
		if (j->fn) {
			j->fn(d, hc, j);
		} else if (!atomic_load(&j->c->dead)) {
			switch (msg_hdr(j->msg)->type) {
			case PROTO_REGISTER:
				do_register(d, hc, j);
				j->c = NULL; /* the reference went to the engine task */
				break;
			case PROTO_LOOKUP:
				do_lookup(d, hc, j);
				break;
			case PROTO_LIST:
				do_list(d, hc, j);
				break;
			case PROTO_OPEN:
				do_open(d, hc, j);
				break;
			}
		} else if (msg_hdr(j->msg)->type == PROTO_REGISTER) {
			server_register_done(d, j->c, 0, -EPIPE, NULL, NULL, NULL);
			j->c = NULL;
		}
		job_free(d, j);
		pthread_mutex_lock(&md->lock);
	}
	pthread_mutex_unlock(&md->lock);
	http_client_free(hc);
	return NULL;
}

static void enqueue(struct daemon *d, struct md_job *j)
{
	struct mdsvc *md = d->md;

	pthread_mutex_lock(&md->lock);
	if (md->tail)
		md->tail->next = j;
	else
		md->head = j;
	md->tail = j;
	pthread_cond_signal(&md->cond);
	pthread_mutex_unlock(&md->lock);
}

void mdsvc_submit(struct daemon *d, struct conn *c, const struct md_mount *mm, const void *msg,
		  size_t len)
{
	struct md_job *j = calloc(1, sizeof(*j) + len);

	if (!j) {
		conn_reply(c, msg_hdr(msg)->type, msg_hdr(msg)->seq, -ENOMEM, NULL, 0, NULL, 0);
		return;
	}
	j->c = conn_get(c);
	if (mm) {
		j->mm = *mm;
		bucket_get(d, mm->bk);
	}
	j->len = (uint32_t)len;
	memcpy(j->msg, msg, len);
	enqueue(d, j);
}

/* Runs fn(d, hc, job) on a worker; `arg` is passed in job->arg (ctl.c). */
void mdsvc_run(struct daemon *d, struct conn *c,
	       void (*fn)(struct daemon *, struct http_client *, struct md_job *), void *arg);
void mdsvc_run(struct daemon *d, struct conn *c,
	       void (*fn)(struct daemon *, struct http_client *, struct md_job *), void *arg)
{
	struct md_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->c = c ? conn_get(c) : NULL;
	j->fn = fn;
	j->arg = arg;
	enqueue(d, j);
}

void *mdsvc_job_arg(struct md_job *j)
{
	return j->arg;
}

struct conn *mdsvc_job_conn(struct md_job *j)
{
	return j->c;
}

int mdsvc_start(struct daemon *d)
{
	struct mdsvc *md = calloc(1, sizeof(*md));
	int rc;

	if (!md)
		return -ENOMEM;
	pthread_mutex_init(&md->lock, NULL);
	pthread_cond_init(&md->cond, NULL);
	pthread_mutex_init(&md->list_lock, NULL);
	pthread_cond_init(&md->list_cond, NULL);
	md->n = d->cfg.md_threads > 0 ? d->cfg.md_threads : 1;
	md->thr = calloc((size_t)md->n, sizeof(*md->thr));
	if (!md->thr) {
		free(md);
		return -ENOMEM;
	}
	d->md = md;
	for (int i = 0; i < md->n; i++) {
		rc = -pthread_create(&md->thr[i], NULL, worker_main, d);
		if (!rc)
			pthread_setname_np(md->thr[i], "hfs-meta");
		if (rc) {
			md->n = i;
			return rc;
		}
	}
	return 0;
}

void mdsvc_stop(struct daemon *d)
{
	struct mdsvc *md = d->md;

	if (!md)
		return;
	pthread_mutex_lock(&md->lock);
	md->stop = true;
	pthread_cond_broadcast(&md->cond);
	pthread_mutex_unlock(&md->lock);
	/* A worker may be waiting on the engine (engine_call): keep running its tasks. */
	for (int i = 0; i < md->n; i++) {
		while (pthread_tryjoin_np(md->thr[i], NULL) == EBUSY) {
			engine_drain(d);
			usleep(1000);
		}
	}
	while (md->head) {
		struct md_job *j = md->head;

		md->head = j->next;
		if (!j->fn && msg_hdr(j->msg)->type == PROTO_REGISTER) {
			server_register_done(d, j->c, 0, -ESHUTDOWN, NULL, NULL, NULL);
			j->c = NULL;
		}
		job_free(d, j);
	}
	free(md->thr);
	free(md);
	d->md = NULL;
}
