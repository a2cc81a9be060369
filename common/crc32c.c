/* crc32c: table-driven CRC-32C with an SSE4.2 path chosen at run time. */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int have_sse42;

#if defined(__x86_64__)
static void init_shift(void);
#endif

static void init_tables(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++) {
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	if (have_sse42)
		init_shift();
#endif
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		      table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		      table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
/*
 * The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle: one chain
 * runs at a third of the possible speed. Large buffers are done as three interleaved chains over
 * consecutive STRIDE-byte parts, joined with a precomputed "advance by STRIDE zero bytes" map
 * (the CRC register update is linear: f(s, A||B) = shift_|B|(f(s, A)) ^ f(0, B)).
 */
#define STRIDE 1024

static uint32_t shift_tab[4][256]; /* shift_STRIDE(v << 8k) for each byte value v */

__attribute__((target("sse4.2"))) static uint32_t crc_hw1(uint64_t c, const unsigned char *p,
							  size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

static uint32_t shift_stride(uint32_t x)
{
	return shift_tab[0][x & 0xff] ^ shift_tab[1][(x >> 8) & 0xff] ^
	       shift_tab[2][(x >> 16) & 0xff] ^ shift_tab[3][x >> 24];
}

static void init_shift(void)
{
	static const unsigned char zeros[STRIDE];

	for (int k = 0; k < 4; k++) {
		for (uint32_t v = 0; v < 256; v++)
			shift_tab[k][v] = crc_hw1(v << (8 * k), zeros, STRIDE);
	}
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
							 size_t len)
{
	uint64_t a = crc;

	while (len >= 3 * STRIDE) {
		const unsigned char *pb = p + STRIDE, *pc = p + 2 * STRIDE;
		uint64_t b = 0, c = 0;

		for (size_t i = 0; i < STRIDE; i += 8) {
			uint64_t wa, wb, wc;

			memcpy(&wa, p + i, 8);
			memcpy(&wb, pb + i, 8);
			memcpy(&wc, pc + i, 8);
			a = __builtin_ia32_crc32di(a, wa);
			b = __builtin_ia32_crc32di(b, wb);
			c = __builtin_ia32_crc32di(c, wc);
		}
		a = shift_stride(shift_stride((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
		p += 3 * STRIDE;
		len -= 3 * STRIDE;
	}
	return crc_hw1(a, p, len);
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&table_once, init_tables);
	crc = ~crc;
#if defined(__x86_64__)
	if (have_sse42)
		return ~crc_hw(crc, data, len);
#endif
	return ~crc_sw(crc, data, len);
}

/* GF(2) 32x32 matrix helpers for crc32c_combine (the zlib method). */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	while (vec) {
		if (vec & 1)
			sum ^= *mat;
		vec >>= 1;
		mat++;
	}
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	uint32_t even[32], odd[32];
	uint32_t row = 1;

	if (len_b == 0)
		return crc_a;
	odd[0] = POLY;
	for (int n = 1; n < 32; n++) {
		odd[n] = row;
		row <<= 1;
	}
	gf2_square(even, odd); /* two zero bits */
	gf2_square(odd, even); /* four zero bits */
	do {
		gf2_square(even, odd);
		if (len_b & 1)
			crc_a = gf2_times(even, crc_a);
		len_b >>= 1;
		if (!len_b)
			break;
		gf2_square(odd, even);
		if (len_b & 1)
			crc_a = gf2_times(odd, crc_a);
		len_b >>= 1;
	} while (len_b);
	return crc_a ^ crc_b;
}
