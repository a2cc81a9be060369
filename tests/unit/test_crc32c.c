/* Unit tests for common/crc32c: known vectors, the hardware path (three interleaved chains for
 * large buffers) against a bit-at-a-time reference at every alignment and many lengths,
 * incremental updates, and crc32c_combine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

/* The definition, one bit at a time (reflected polynomial 0x82f63b78). */
static uint32_t ref_crc(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static unsigned char *random_bytes(size_t n, uint32_t seed)
{
	unsigned char *b = malloc(n);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	return b;
}

static void test_vectors(void **state)
{
	assert_int_equal(crc32c_update(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c_update(0, "", 0), 0);
	{
		unsigned char z[32] = { 0 }, f[32];

		memset(f, 0xff, sizeof(f));
		/* iSCSI (RFC 3720) test patterns */
		assert_int_equal(crc32c_update(0, z, 32), 0x8a9136aau);
		assert_int_equal(crc32c_update(0, f, 32), 0x62a8ab43u);
	}
}

static void test_against_reference(void **state)
{
	const size_t max = 3 * 4096 * 3 + 777;
	unsigned char *b = random_bytes(max + 8, 42);
	size_t lens[] = {
		0,  1, 7, 8, 9, 63, 4095, 4096, 12287, 12288, 12289, 3 * 4096 * 2, 3 * 4096 * 2 + 5,
		max
	};

	for (size_t a = 0; a < 8; a++) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			uint32_t want = ref_crc(0, b + a, lens[i]);

			if (crc32c_update(0, b + a, lens[i]) != want)
				fail_msg("alignment %zu length %zu differs", a, lens[i]);
		}
	}
	free(b);
}

static void test_incremental(void **state)
{
	size_t n = 1 << 20;
	unsigned char *b = random_bytes(n, 7);
	uint32_t whole = crc32c_update(0, b, n), crc = 0;

	for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 70001 + 1) {
		size_t k = step < n - off ? step : n - off;

		crc = crc32c_update(crc, b + off, k);
	}
	assert_int_equal(crc, whole);
	assert_int_equal(whole, ref_crc(0, b, n));
	free(b);
}

static void test_combine(void **state)
{
	size_t n = 3 << 20;
	unsigned char *b = random_bytes(n, 9);
	uint32_t whole = crc32c_update(0, b, n), acc = 0;

	/* per-1 MiB crcs combine into the whole object's, as the daemon checks GCS objects */
	for (size_t off = 0; off < n; off += 1 << 20)
		acc = crc32c_combine(acc, crc32c_update(0, b + off, 1 << 20), 1 << 20);
	assert_int_equal(acc, whole);
	assert_int_equal(crc32c_combine(whole, 0, 0), whole);
	acc = crc32c_combine(crc32c_update(0, b, 5), crc32c_update(0, b + 5, n - 5), n - 5);
	assert_int_equal(acc, whole);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_combine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
