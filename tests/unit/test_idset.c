/* Unit tests for common/idset: membership after adds and removals, growth, tombstone reuse, and
 * the ids it refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/idset.h"

static void test_empty(void **state)
{
	struct idset s = IDSET_INIT;

	(void)state;
	assert_false(idset_has(&s, 1));
	assert_false(idset_del(&s, 1));
	assert_int_equal(idset_count(&s), 0);
	idset_free(&s);
}

static void test_add_has_del(void **state)
{
	struct idset s = IDSET_INIT;

	(void)state;
	assert_int_equal(idset_add(&s, 42), 0);
	assert_int_equal(idset_add(&s, 42), 0); /* twice: still one */
	assert_int_equal(idset_count(&s), 1);
	assert_true(idset_has(&s, 42));
	assert_false(idset_has(&s, 43));
	assert_true(idset_del(&s, 42));
	assert_false(idset_del(&s, 42));
	assert_false(idset_has(&s, 42));
	assert_int_equal(idset_count(&s), 0);
	idset_free(&s);
}

static void test_refuses_reserved(void **state)
{
	struct idset s = IDSET_INIT;

	(void)state;
	assert_int_equal(idset_add(&s, 0), -EINVAL);
	assert_int_equal(idset_add(&s, UINT64_MAX), -EINVAL);
	assert_false(idset_has(&s, 0));
	assert_false(idset_has(&s, UINT64_MAX));
	idset_free(&s);
}

/* Many sequential and scattered ids, half removed: the rest stay, the removed are gone. */
static void test_grow_and_churn(void **state)
{
	struct idset s = IDSET_INIT;
	const uint64_t n = 20000;

	(void)state;
	for (uint64_t i = 1; i <= n; i++)
		assert_int_equal(idset_add(&s, i * (i & 1 ? 1 : 0x100000001ULL)), 0);
	assert_int_equal(idset_count(&s), n);
	for (uint64_t i = 1; i <= n; i += 2)
		assert_true(idset_del(&s, i));
	for (uint64_t i = 1; i <= n; i++)
		assert_int_equal(idset_has(&s, i * (i & 1 ? 1 : 0x100000001ULL)), !(i & 1));
	assert_int_equal(idset_count(&s), n / 2);
	/* Adds and removals that never grow the count reuse tombstones and do not fill the table.
	 */
	for (uint64_t r = 0; r < 10 * n; r++) {
		uint64_t id = 1000000 + r;

		assert_int_equal(idset_add(&s, id), 0);
		assert_true(idset_del(&s, id));
	}
	assert_true(s.cap <= 4 * n);
	assert_int_equal(idset_count(&s), n / 2);
	idset_free(&s);
	assert_int_equal(idset_add(&s, 7), 0); /* usable after free */
	assert_true(idset_has(&s, 7));
	idset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_add_has_del),
		cmocka_unit_test(test_refuses_reserved),
		cmocka_unit_test(test_grow_and_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
