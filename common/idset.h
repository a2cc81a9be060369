/* idset: a set of nonzero 64-bit ids (open addressing, grows as needed). Not thread-safe: the
 * owner serialises access. */
#ifndef HOARDFS_IDSET_H
#define HOARDFS_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset {
	uint64_t *slots; /* 0 = empty, IDSET_TOMB = removed */
	size_t cap;	 /* a power of two, or 0 before the first add */
	size_t n;	 /* ids held */
	size_t used;	 /* ids + tombstones */
};

#define IDSET_INIT            \
	{                     \
		NULL, 0, 0, 0 \
	}

/* Adds id (nonzero, not UINT64_MAX). Returns 0 (also when already present), -EINVAL for an id
 * the set cannot hold, or -ENOMEM (the set is unchanged). */
int idset_add(struct idset *s, uint64_t id);
/* Whether id is in the set. */
bool idset_has(const struct idset *s, uint64_t id);
/* Removes id; returns whether it was there. */
bool idset_del(struct idset *s, uint64_t id);
/* Ids held. */
static inline size_t idset_count(const struct idset *s)
{
	return s->n;
}
/* Frees the storage; the set is empty and usable again. */
void idset_free(struct idset *s);

#endif
