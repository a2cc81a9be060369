/* crc32c: CRC-32C (Castagnoli), as GCS reports it, with hardware acceleration where available. */
#ifndef HOARDFS_CRC32C_H
#define HOARDFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC-32C over `len` bytes: crc32c_update(0, p, n) is the CRC of p[0..n), and
 * crc32c_update(crc32c_update(0, a, n), b, m) the CRC of a followed by b.
 */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

/* The CRC of A followed by B, given crc(A), crc(B) and B's length, without the bytes. */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
