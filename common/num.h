/* num: strict parsing of numbers, byte sizes and durations from untrusted text. */
#ifndef HOARDFS_NUM_H
#define HOARDFS_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Parses a whole decimal unsigned number. Returns 0, -EINVAL (empty, sign, junk), -ERANGE. */
int num_parse_u64(const char *s, uint64_t *out);

/* Parses a whole decimal signed number. Returns 0, -EINVAL, -ERANGE. */
int num_parse_i64(const char *s, int64_t *out);

/* Parses an unsigned number that must lie in [min, max]. Returns 0, -EINVAL, -ERANGE. */
int num_parse_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Parses a byte size: a number with an optional binary suffix K, M, G, T (also KiB/MiB/GiB/TiB,
 * KB/MB/GB/TB meaning the same powers of 1024, case-insensitive), e.g. "8M", "512KiB", "100G".
 * Returns 0, -EINVAL, -ERANGE on overflow.
 */
int num_parse_size(const char *s, uint64_t *out);

/* Formats `bytes` for people ("1.5 GiB", "512 B") into out (at least 16 bytes). Returns out. */
const char *num_format_size(uint64_t bytes, char *out, size_t outsz);

#endif
