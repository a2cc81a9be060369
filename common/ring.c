/* ring: two SPSC queues in a sealed memfd. */
#include "common/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* One queue's indices, each on its own cache line. Free-running 32-bit counters. */
struct ring_queue {
	_Alignas(64) _Atomic uint32_t head; /* written by the consumer only */
	uint8_t pad0[60];
	_Alignas(64) _Atomic uint32_t tail; /* written by the producer only */
	uint8_t pad1[60];
};
_Static_assert(sizeof(struct ring_queue) == 128, "ring_queue layout");

/* The shared header. The entry arrays follow it: submissions, then completions. */
struct ring_shared {
	uint32_t magic;	     /* written by the daemon before the memfd is shared */
	uint32_t version;    /* ditto */
	uint32_t entries;    /* ditto: per queue */
	uint32_t entry_size; /* ditto: sizeof(struct ring_entry) */
	uint64_t mount_id;   /* ditto */
	/* The mount's read counters since it registered (written by the mount, read by the daemon
	 * for statistics only: untrusted, never used for decisions). */
	_Atomic uint64_t hits, hit_bytes, misses, miss_bytes;
	uint8_t pad[8];
	struct ring_queue sq; /* submissions: producer = mount, consumer = daemon */
	struct ring_queue cq; /* completions: producer = daemon, consumer = mount */
};
_Static_assert(sizeof(struct ring_shared) == 320, "ring_shared layout");
_Static_assert(offsetof(struct ring_shared, sq) == 64, "ring_shared layout");
_Static_assert(offsetof(struct ring_shared, cq) == 192, "ring_shared layout");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "ring indices must be lock-free (address-free) atomics");

struct ring {
	struct ring_shared *sh;
	size_t bytes;
	uint32_t entries;
	uint32_t mask;
	struct ring_queue *prod_q; /* the queue this side produces into */
	struct ring_queue *cons_q; /* the queue this side consumes */
	struct ring_entry *prod_e;
	struct ring_entry *cons_e;
	uint32_t prod_tail; /* private truth of what we produced */
	uint32_t cons_head; /* private truth of what we consumed */
	bool corrupt;
};

size_t ring_bytes(uint32_t entries)
{
	return sizeof(struct ring_shared) + 2 * (size_t)entries * sizeof(struct ring_entry);
}

static bool entries_valid(uint32_t n)
{
	return n >= RING_MIN_ENTRIES && n <= RING_MAX_ENTRIES && (n & (n - 1)) == 0;
}

static int ring_map(int fd, size_t bytes, struct ring **out)
{
	struct ring *r = calloc(1, sizeof(*r));
	void *p;

	if (!r)
		return -ENOMEM;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		free(r);
		return err;
	}
	r->sh = p;
	r->bytes = bytes;
	*out = r;
	return 0;
}

static void ring_bind(struct ring *r, uint32_t entries, enum ring_role role)
{
	struct ring_entry *sq_e = (struct ring_entry *)(r->sh + 1);
	struct ring_entry *cq_e = sq_e + entries;

	r->entries = entries;
	r->mask = entries - 1;
	if (role == RING_ROLE_DAEMON) {
		r->prod_q = &r->sh->cq;
		r->prod_e = cq_e;
		r->cons_q = &r->sh->sq;
		r->cons_e = sq_e;
	} else {
		r->prod_q = &r->sh->sq;
		r->prod_e = sq_e;
		r->cons_q = &r->sh->cq;
		r->cons_e = cq_e;
	}
	r->prod_tail = atomic_load_explicit(&r->prod_q->tail, memory_order_relaxed);
	r->cons_head = atomic_load_explicit(&r->cons_q->head, memory_order_relaxed);
}

int ring_create(uint32_t entries, uint64_t mount_id, int *fd_out, struct ring **out)
{
	size_t bytes = ring_bytes(entries);
	struct ring *r = NULL;
	int fd, rc;

	*out = NULL;
	*fd_out = -1;
	if (!entries_valid(entries))
		return -EINVAL;
	fd = memfd_create("hoardfs-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = ring_map(fd, bytes, &r);
	if (rc)
		goto out_close;
	r->sh->magic = RING_MAGIC;
	r->sh->version = RING_VERSION;
	r->sh->entries = entries;
	r->sh->entry_size = sizeof(struct ring_entry);
	r->sh->mount_id = mount_id;
	ring_bind(r, entries, RING_ROLE_DAEMON);
	*fd_out = fd;
	*out = r;
	return 0;
out_close:
	close(fd);
	return rc;
}

int ring_attach(int fd, enum ring_role role, struct ring **out)
{
	struct ring_shared hdr;
	struct stat st;
	struct ring *r = NULL;
	int seals, rc;

	*out = NULL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	if (!(seals & F_SEAL_SHRINK))
		return -EPERM;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(hdr))
		return -EPROTO;
	if (pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return -EPROTO;
	if (hdr.magic != RING_MAGIC || hdr.version != RING_VERSION ||
	    hdr.entry_size != sizeof(struct ring_entry) || !entries_valid(hdr.entries) ||
	    (size_t)st.st_size != ring_bytes(hdr.entries))
		return -EPROTO;
	rc = ring_map(fd, (size_t)st.st_size, &r);
	if (rc)
		return rc;
	/* Re-check after mapping: the size is sealed, the header fields are not. */
	if (r->sh->entries != hdr.entries) {
		ring_free(r);
		return -EPROTO;
	}
	ring_bind(r, hdr.entries, role);
	*out = r;
	return 0;
}

void ring_free(struct ring *r)
{
	if (!r)
		return;
	munmap(r->sh, r->bytes);
	free(r);
}

uint32_t ring_space(struct ring *r)
{
	uint32_t head, used;

	if (r->corrupt)
		return 0;
	head = atomic_load_explicit(&r->prod_q->head, memory_order_acquire);
	used = r->prod_tail - head;
	if (used > r->entries) {
		r->corrupt = true;
		return 0;
	}
	return r->entries - used;
}

int ring_push(struct ring *r, const struct ring_entry *e)
{
	if (r->corrupt)
		return -EPROTO;
	if (ring_space(r) == 0)
		return r->corrupt ? -EPROTO : -EAGAIN;
	memcpy(&r->prod_e[r->prod_tail & r->mask], e, sizeof(*e));
	r->prod_tail++;
	atomic_store_explicit(&r->prod_q->tail, r->prod_tail, memory_order_release);
	return 0;
}

int ring_pop(struct ring *r, struct ring_entry *out)
{
	uint32_t tail;

	if (r->corrupt)
		return -EPROTO;
	tail = atomic_load_explicit(&r->cons_q->tail, memory_order_acquire);
	if (tail == r->cons_head)
		return 0;
	if (tail - r->cons_head > r->entries) {
		r->corrupt = true;
		return -EPROTO;
	}
	/* Copy first; the caller validates the copy, never the shared bytes. */
	memcpy(out, &r->cons_e[r->cons_head & r->mask], sizeof(*out));
	r->cons_head++;
	atomic_store_explicit(&r->cons_q->head, r->cons_head, memory_order_release);
	return 1;
}

uint32_t ring_entries(const struct ring *r)
{
	return r->entries;
}

uint64_t ring_mount_id(const struct ring *r)
{
	return r->sh->mount_id;
}

void ring_publish_stats(struct ring *r, const struct ring_mount_stats *s)
{
	atomic_store_explicit(&r->sh->hits, s->hits, memory_order_relaxed);
	atomic_store_explicit(&r->sh->hit_bytes, s->hit_bytes, memory_order_relaxed);
	atomic_store_explicit(&r->sh->misses, s->misses, memory_order_relaxed);
	atomic_store_explicit(&r->sh->miss_bytes, s->miss_bytes, memory_order_relaxed);
}

void ring_read_stats(const struct ring *r, struct ring_mount_stats *out)
{
	out->hits = atomic_load_explicit(&r->sh->hits, memory_order_relaxed);
	out->hit_bytes = atomic_load_explicit(&r->sh->hit_bytes, memory_order_relaxed);
	out->misses = atomic_load_explicit(&r->sh->misses, memory_order_relaxed);
	out->miss_bytes = atomic_load_explicit(&r->sh->miss_bytes, memory_order_relaxed);
}
