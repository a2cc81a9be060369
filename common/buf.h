/* buf: bounded growable byte buffers (always NUL-terminated) that refuse to grow past a maximum. */
#ifndef HOARDFS_BUF_H
#define HOARDFS_BUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A value type: the caller owns the struct, buf_free() releases its storage. `data` is NULL until
 * the first append; after any append data[len] == '\0', so text can be read with buf_cstr().
 */
struct buf {
	char *data;
	size_t len; /* bytes stored, excluding the terminating NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* the most `len` may ever reach */
};

/* Prepares an empty buffer that may hold up to `max` bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/* Releases the storage; the buffer is empty afterwards and may be reused. */
void buf_free(struct buf *b);

/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);

/* Appends `n` bytes. Returns 0, -EMSGSIZE if len would pass max (nothing is appended), -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. Same errors as buf_append(). */
int buf_puts(struct buf *b, const char *s);

/* Appends printf-formatted text. Same errors as buf_append(). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* The contents as a C string ("" when empty). Valid until the next change to the buffer. */
const char *buf_cstr(const struct buf *b);

/*
 * Hands the storage to the caller (who must free() it) and leaves the buffer empty. Returns a
 * NUL-terminated copy even when empty, or NULL when out of memory.
 */
char *buf_steal(struct buf *b);

#endif
