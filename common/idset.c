/* idset: a set of 64-bit ids with linear probing and tombstones. */
#include "common/idset.h"

#include <errno.h>
#include <stdlib.h>

#define IDSET_TOMB UINT64_MAX

static size_t slot_of(uint64_t id, size_t cap)
{
	/* splitmix64's finaliser: ids are often sequential */
	id ^= id >> 30;
	id *= 0xbf58476d1ce4e5b9ULL;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebULL;
	id ^= id >> 31;
	return (size_t)id & (cap - 1);
}

/* The slot holding id, or (insert) the first free slot on its probe path; SIZE_MAX if neither. */
static size_t find(const struct idset *s, uint64_t id, bool insert)
{
	size_t i, tomb = SIZE_MAX;

	if (!s->cap)
		return SIZE_MAX;
	i = slot_of(id, s->cap);
	for (size_t k = 0; k < s->cap; k++, i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i] == id)
			return i;
		if (s->slots[i] == IDSET_TOMB) {
			if (tomb == SIZE_MAX)
				tomb = i;
		} else if (s->slots[i] == 0) {
			return insert ? (tomb != SIZE_MAX ? tomb : i) : SIZE_MAX;
		}
	}
	return insert ? tomb : SIZE_MAX;
}

static int rehash(struct idset *s, size_t cap)
{
	uint64_t *old = s->slots, *slots = calloc(cap, sizeof(*slots));
	size_t oldcap = s->cap;

	if (!slots)
		return -ENOMEM;
	s->slots = slots;
	s->cap = cap;
	s->used = s->n;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i] && old[i] != IDSET_TOMB)
			s->slots[find(s, old[i], true)] = old[i];
	}
	free(old);
	return 0;
}

int idset_add(struct idset *s, uint64_t id)
{
	size_t i;

	if (id == 0 || id == IDSET_TOMB)
		return -EINVAL;
	if (idset_has(s, id))
		return 0;
	if ((s->used + 1) * 4 > s->cap * 3) {
		/* over 3/4 full (tombstones count): grow, or just sweep them out */
		size_t cap = s->cap ? s->cap : 16;
		int rc;

		while ((s->n + 1) * 2 > cap)
			cap *= 2;
		rc = rehash(s, cap);
		if (rc)
			return rc;
	}
	i = find(s, id, true);
	if (s->slots[i] == 0)
		s->used++;
	s->slots[i] = id;
	s->n++;
	return 0;
}

bool idset_has(const struct idset *s, uint64_t id)
{
	return id && id != IDSET_TOMB && find(s, id, false) != SIZE_MAX;
}

bool idset_del(struct idset *s, uint64_t id)
{
	size_t i;

	if (id == 0 || id == IDSET_TOMB)
		return false;
	i = find(s, id, false);
	if (i == SIZE_MAX)
		return false;
	s->slots[i] = IDSET_TOMB;
	s->n--;
	return true;
}

void idset_free(struct idset *s)
{
	free(s->slots);
	s->slots = NULL;
	s->cap = s->n = s->used = 0;
}
