/* Unit tests for cached/plan: shard names a sibling prefetch recognises (and the ones it must
 * not), and the sizes of a load's GETs (growing from the reader, bounded by --max-get and by the
 * object's share of the slots, few per GiB). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cached/daemon.h"
#include "cached/obj.h"

static void test_shard_names(void **state)
{
	unsigned k = 0, n = 0;
	int w = 0;

	(void)state;
	assert_int_equal(plan_shard_name("model-00003-of-00008.safetensors", &k, &n, &w), 6);
	assert_int_equal(k, 3);
	assert_int_equal(n, 8);
	assert_int_equal(w, 5);
	assert_int_equal(plan_shard_name("pytorch_model-1-of-12.bin", &k, &n, &w), 14);
	assert_int_equal(k, 1);
	assert_int_equal(n, 12);
	assert_int_equal(w, 1);
	/* the last "-of-" counts; no extension is fine */
	assert_int_equal(plan_shard_name("a-of-b-07-of-10", &k, &n, &w), 7);
	assert_int_equal(k, 7);
	assert_int_equal(n, 10);
	/* not shard names */
	assert_int_equal(plan_shard_name("model.safetensors", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("00001-of-00002.safetensors", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("m-00009-of-00008.safetensors", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("m-1-of-2x.bin", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("m--of-2.bin", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("m-1-of-.bin", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("m-1234567890-of-1234567890", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("-of-", &k, &n, &w), -1);
	assert_int_equal(plan_shard_name("", &k, &n, &w), -1);
}

/* GETs a load of an object of `mib` MiB makes from block 0, `loads` objects loading at once. */
static int gets_for(struct daemon *d, uint32_t mib, int loads, uint32_t *largest)
{
	struct obj o;
	int gets = 0;

	memset(&o, 0, sizeof(o));
	o.nblocks = mib;
	*largest = 0;
	for (uint32_t b = 0; b < o.nblocks; gets++) {
		uint32_t n = plan_get_blocks(d, &o, b, loads);

		assert_true(n >= 1);
		if (n > *largest)
			*largest = n;
		b += n;
	}
	return gets;
}

static void test_get_sizes(void **state)
{
	struct daemon *d = calloc(1, sizeof(*d));
	struct obj o;
	uint32_t largest;

	(void)state;
	assert_non_null(d);
	d->cfg.chunk_size = 8u << 20;
	d->cfg.max_get = 64u << 20;
	d->cfg.max_inflight = 32;
	memset(&o, 0, sizeof(o));
	o.nblocks = 1024;
	/* Growing from the reader: 8, 8, 16, 32, 64, then --max-get (1024/16 = 64 too). */
	assert_int_equal(plan_get_blocks(d, &o, 0, 1), 8);
	assert_int_equal(plan_get_blocks(d, &o, 8, 1), 8);
	assert_int_equal(plan_get_blocks(d, &o, 16, 1), 16);
	assert_int_equal(plan_get_blocks(d, &o, 32, 1), 32);
	assert_int_equal(plan_get_blocks(d, &o, 64, 1), 64);
	assert_int_equal(plan_get_blocks(d, &o, 512, 1), 64);
	/* From a reader in the middle, and past the end (wrapped). */
	o.pf_origin = 500;
	assert_int_equal(plan_get_blocks(d, &o, 500, 1), 8);
	assert_int_equal(plan_get_blocks(d, &o, 516, 1), 16);
	assert_int_equal(plan_get_blocks(d, &o, 10, 1), 64);
	/* The share of the slots bounds it: two loads, 1024 / 8 = 128 -> --max-get; eight loads of
	 * 256 MiB: 256 / 2 = 128 -> 64; 32 loads: 1024 / 1 -> 64. */
	o.pf_origin = 0;
	assert_int_equal(plan_get_blocks(d, &o, 300, 8), 64);
	/* A sequential GiB: at most 64 GETs, alone or with others, never past --max-get. */
	assert_int_equal(gets_for(d, 1024, 1, &largest), 4 + 15);
	assert_int_equal(largest, 64);
	assert_int_equal(gets_for(d, 512, 1, &largest), 3 + 15);
	assert_int_equal(largest, 32);
	assert_true(gets_for(d, 256, 8, &largest) <= 8);
	/* One load of a 200 MiB file: 16 GETs' worth of parallelism (13 MiB), no fewer. */
	assert_int_equal(gets_for(d, 200, 1, &largest), 2 + 15);
	assert_int_equal(largest, 13);
	/* More loads than slots: each object still grows its GETs from the reader (8, 8, 16, 32).
	 */
	assert_int_equal(gets_for(d, 64, 64, &largest), 4);
	assert_int_equal(largest, 32);
	/* --max-get below --chunk-size: the chunk wins; a 1-block object. */
	d->cfg.max_get = 1u << 20;
	assert_int_equal(plan_get_blocks(d, &o, 600, 1), 8);
	o.nblocks = 1;
	o.pf_origin = 0;
	assert_int_equal(plan_get_blocks(d, &o, 0, 1), 8);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shard_names),
		cmocka_unit_test(test_get_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
