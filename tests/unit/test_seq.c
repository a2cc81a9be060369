/* Unit tests for common/seq: sequential streams make an object "being loaded", random readers
 * never do, interleaved loaders each keep their stream, read-ahead overlaps extend a stream. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/seq.h"

/* One reader going through blocks [from, to) one block per read: the read on which the
 * object first counts as loaded (relative to from), or -1. */
static int first_trigger(struct seq_streams *s, uint32_t from, uint32_t to)
{
	for (uint32_t b = from; b < to; b++) {
		if (seq_note(s, b, b + 1))
			return (int)(b - from);
	}
	return -1;
}

static void test_sequential_triggers(void **state)
{
	struct seq_streams s = { 0 };

	(void)state;
	/* Reads 0..3 make a stream of 4 blocks: the fourth read triggers. */
	assert_int_equal(first_trigger(&s, 0, 100), SEQ_TRIGGER - 1);
	/* From the middle of a file too (a loader that starts past the header). */
	struct seq_streams m = { 0 };
	assert_int_equal(first_trigger(&m, 5000, 5100), SEQ_TRIGGER - 1);
	/* And it keeps saying so while the stream goes on. */
	assert_true(seq_note(&m, 5000 + SEQ_TRIGGER, 5001 + SEQ_TRIGGER));
}

static void test_random_never_triggers(void **state)
{
	struct seq_streams s = { 0 };
	uint64_t x = 88172645463325252ull;
	int hits = 0;

	(void)state;
	/* 100,000 single-block reads at random places in a 100 GiB file touch a lot of it, but
	 * (almost) never two neighbours in a row. */
	for (int i = 0; i < 100000; i++) {
		uint32_t b;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b = (uint32_t)(x % 102400);
		hits += seq_note(&s, b, b + 1);
	}
	assert_int_equal(hits, 0);
}

static void test_interleaved_streams(void **state)
{
	struct seq_streams s = { 0 };
	bool loaded[SEQ_STREAMS] = { false };

	(void)state;
	/* SEQ_STREAMS threads each load their own region, their reads interleaved. */
	for (uint32_t step = 0; step < SEQ_TRIGGER; step++) {
		for (uint32_t t = 0; t < SEQ_STREAMS; t++) {
			uint32_t b = t * 1000 + step;

			loaded[t] = seq_note(&s, b, b + 1);
		}
	}
	for (uint32_t t = 0; t < SEQ_STREAMS; t++)
		assert_true(loaded[t]);
}

static void test_too_many_streams_forget(void **state)
{
	struct seq_streams s = { 0 };
	bool any = false;

	(void)state;
	/* One more interleaved reader than there are slots: each new stream takes the oldest
	 * slot, so nobody's stream survives to SEQ_TRIGGER blocks. */
	for (uint32_t step = 0; step < SEQ_TRIGGER; step++) {
		for (uint32_t t = 0; t < SEQ_STREAMS + 1; t++) {
			uint32_t b = t * 1000 + 1 + step;

			any |= seq_note(&s, b, b + 1);
		}
	}
	assert_false(any);
}

static void test_overlap_and_gaps(void **state)
{
	struct seq_streams s = { 0 };

	(void)state;
	/* Read-ahead windows that overlap the end of the stream by up to two blocks extend it,
	 * counting only the new blocks. */
	assert_false(seq_note(&s, 10, 12)); /* 2 */
	assert_false(seq_note(&s, 10, 13)); /* +1 = 3 (starts 2 before the end) */
	assert_true(seq_note(&s, 12, 14));  /* +1 = 4 */
	/* A read that starts 3 blocks before a stream's end, or 1 block after it, is another
	 * stream. */
	struct seq_streams g = { 0 };
	assert_false(seq_note(&g, 100, 103)); /* 3 */
	assert_false(seq_note(&g, 100, 104)); /* 3 before the end: a new stream of 4, not at 0 */
	assert_false(seq_note(&g, 105, 106)); /* 1 after the end of both: new */
	/* A repeated read of the same blocks does not grow the stream. */
	struct seq_streams r = { 0 };
	for (int i = 0; i < 10; i++)
		assert_false(seq_note(&r, 50, 52));
}

static void test_first_large_read(void **state)
{
	struct seq_streams s = { 0 }, t = { 0 };

	(void)state;
	/* A first read of the first SEQ_TRIGGER blocks or more is a load ... */
	assert_true(seq_note(&s, 0, SEQ_TRIGGER));
	/* ... but a large read elsewhere is not (random readers read large ranges too). */
	assert_false(seq_note(&t, 7, 7 + 2 * SEQ_TRIGGER));
	assert_false(seq_note(&t, 0, SEQ_TRIGGER - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential_triggers),
		cmocka_unit_test(test_random_never_triggers),
		cmocka_unit_test(test_interleaved_streams),
		cmocka_unit_test(test_too_many_streams_forget),
		cmocka_unit_test(test_overlap_and_gaps),
		cmocka_unit_test(test_first_large_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
