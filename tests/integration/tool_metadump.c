/* tool_metadump: reads a stopped hoardfs-cached's LMDB (read-only, through common/meta.h) and
 * prints or checks what it marks present, for crash and durability tests.
 *
 *   tool_metadump METADIR
 *       prints "object ID SIZE PRESENT NBLOCKS NAME" per object, then "block ID B CRC32C" per
 *       present block
 *   tool_metadump --check METADIR OBJDIR KEY SRC [KEY SRC ...]
 *       for every object named KEY, compares each block LMDB marks present in OBJDIR/<id> with
 *       the same block of SRC and with its recorded crc32c; prints one summary line per object
 *       and "checked N blocks, M bad" at the end. Exit 0 when every block matches, 1 when one
 *       does not (each bad block is printed), 2 on usage or I/O errors.
 *
 * Run it only while no daemon uses the cache (meta_open_readonly() refuses otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/meta.h"
#include "common/crc32c.h"

#define MAP_SIZE \
	(16ull << 30) /* the daemon's default; LMDB takes the larger of this and the file's */

struct ctx {
	struct meta *m;
	const char *objdir;
	int nkeys;
	char **keys; /* KEY SRC pairs */
	bool check;
	uint64_t checked, bad, objects_matched;
	int io_error;
};

static uint32_t nblocks_of(uint64_t size)
{
	return (uint32_t)((size + PROTO_BLOCK_SIZE - 1) >> PROTO_BLOCK_SHIFT);
}

static int read_full(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

static int check_object(struct ctx *x, const struct meta_object *o, const char *src,
			const uint8_t *map, const uint32_t *crcs, uint32_t nb)
{
	char path[4096], *a = malloc(PROTO_BLOCK_SIZE), *b = malloc(PROTO_BLOCK_SIZE);
	int fd_cache = -1, fd_src = -1, rc = 0;
	uint64_t bad = 0, n = 0;
	off_t src_size;

	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%016" PRIx64, x->objdir, o->id);
	fd_src = open(src, O_RDONLY | O_CLOEXEC);
	if (fd_src < 0) {
		rc = -errno;
		fprintf(stderr, "tool_metadump: %s: %s\n", src, strerror(errno));
		goto out;
	}
	src_size = lseek(fd_src, 0, SEEK_END);
	if (src_size != (off_t)o->size) {
		printf("object %" PRIu64 " %s: recorded size %" PRIu64 " but %s has %lld bytes\n",
		       o->id, o->name, o->size, src, (long long)src_size);
		x->bad++;
		goto out;
	}
	fd_cache = open(path, O_RDONLY | O_CLOEXEC);
	if (fd_cache < 0) {
		/* The daemon drops the blocks of a record whose file vanished: not served. */
		printf("object %" PRIu64 " %s: no cache file (%s); its marked blocks would be "
		       "dropped at start\n",
		       o->id, o->name, strerror(errno));
		goto out;
	}
	for (uint32_t blk = 0; blk < nb; blk++) {
		uint64_t off = (uint64_t)blk << PROTO_BLOCK_SHIFT;
		size_t len = (size_t)(o->size - off < PROTO_BLOCK_SIZE ? o->size - off
								       : PROTO_BLOCK_SIZE);
		uint32_t crc;

		if (!(map[blk >> 3] & (1u << (blk & 7))))
			continue;
		n++;
		if ((rc = read_full(fd_cache, a, len, (off_t)off)) ||
		    (rc = read_full(fd_src, b, len, (off_t)off))) {
			printf("object %" PRIu64 " block %u: short read (%s)\n", o->id, blk,
			       strerror(-rc));
			bad++;
			rc = 0;
			continue;
		}
		crc = crc32c_update(0, a, len);
		if (memcmp(a, b, len) != 0 || crc != crcs[blk]) {
			size_t first = 0;

			while (first < len && a[first] == b[first])
				first++;
			printf("object %" PRIu64 " block %u: BAD (first differing byte %zu of %zu; "
			       "crc32c on disk %08x, recorded %08x)\n",
			       o->id, blk, first, len, crc, crcs[blk]);
			bad++;
		}
	}
	printf("object %" PRIu64 " %s: %" PRIu64 " of %u blocks marked present, %" PRIu64 " bad\n",
	       o->id, o->name, n, nb, bad);
	x->checked += n;
	x->bad += bad;
out:
	if (fd_cache >= 0)
		close(fd_cache);
	if (fd_src >= 0)
		close(fd_src);
	free(a);
	free(b);
	return rc;
}

static int object_fn(void *ctx, const struct meta_object *o)
{
	struct ctx *x = ctx;
	uint32_t nb = nblocks_of(o->size), present = 0;
	uint8_t *map = calloc(1, (size_t)nb / 8 + 1);
	uint32_t *crcs = calloc((size_t)nb + 1, sizeof(uint32_t));
	int rc;

	if (!map || !crcs) {
		rc = -ENOMEM;
		goto out;
	}
	rc = meta_blocks_load(x->m, o->id, nb, map, crcs, &present);
	if (rc) {
		fprintf(stderr, "tool_metadump: blocks of object %" PRIu64 ": %s\n", o->id,
			strerror(-rc));
		goto out;
	}
	if (!x->check) {
		printf("object %" PRIu64 " %" PRIu64 " %u %u %s\n", o->id, o->size, present, nb,
		       o->name);
		for (uint32_t b = 0; b < nb; b++) {
			if (map[b >> 3] & (1u << (b & 7)))
				printf("block %" PRIu64 " %u %08x\n", o->id, b, crcs[b]);
		}
		goto out;
	}
	for (int i = 0; i + 1 < x->nkeys; i += 2) {
		if (strcmp(x->keys[i], o->name) == 0) {
			x->objects_matched++;
			rc = check_object(x, o, x->keys[i + 1], map, crcs, nb);
			break;
		}
	}
out:
	free(map);
	free(crcs);
	if (rc)
		x->io_error = rc;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx x = { 0 };
	const char *metadir;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "--check") == 0) {
		if (argc < 6 || (argc - 4) % 2) {
			fprintf(stderr, "usage: tool_metadump --check METADIR OBJDIR KEY SRC...\n");
			return 2;
		}
		x.check = true;
		metadir = argv[2];
		x.objdir = argv[3];
		x.keys = argv + 4;
		x.nkeys = argc - 4;
	} else if (argc == 2) {
		metadir = argv[1];
	} else {
		fprintf(stderr,
			"usage: tool_metadump METADIR | --check METADIR OBJDIR KEY SRC...\n");
		return 2;
	}
	rc = meta_open_readonly(metadir, &x.m);
	if (rc) {
		fprintf(stderr, "tool_metadump: %s: %s\n", metadir, strerror(-rc));
		return 2;
	}
	rc = meta_object_scan(x.m, object_fn, &x);
	meta_close(x.m);
	if (rc) {
		fprintf(stderr, "tool_metadump: scanning objects: %s\n", strerror(-rc));
		return 2;
	}
	if (x.io_error) {
		fprintf(stderr, "tool_metadump: %s\n", strerror(-x.io_error));
		return 2;
	}
	if (x.check) {
		printf("checked %" PRIu64 " blocks of %" PRIu64 " objects, %" PRIu64 " bad\n",
		       x.checked, x.objects_matched, x.bad);
		return x.bad ? 1 : 0;
	}
	return 0;
}
