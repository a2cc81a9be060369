/* format: text for people: sizes, rates, ages, durations, terminal-safe strings and aligned
 * tables. Nothing here talks to the daemon. */
#ifndef HOARDFS_TOOLS_FORMAT_H
#define HOARDFS_TOOLS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FMT_SHORT 32 /* enough for every fmt_* result below but fmt_clean() */

/* "1.5 GiB", "512 B". Returns out (at least 16 bytes). */
const char *fmt_size(uint64_t bytes, char *out, size_t outsz);

/* A transfer rate: "512.3 MiB/s", "0 B/s". Negative or non-finite rates give "-". */
const char *fmt_rate(double bytes_per_sec, char *out, size_t outsz);

/* "50.0%" (one decimal, clamped to 0..100 for display; non-finite gives "-"). */
const char *fmt_percent(double pct, char *out, size_t outsz);

/* A duration: "45s", "3m 05s", "2h 07m", "4d 03h". */
const char *fmt_duration(uint64_t secs, char *out, size_t outsz);

/* How long ago Unix time `when` was, relative to `now`: "just now", "3m ago", "2h ago",
 * "5d ago"; "never" for when <= 0, "in the future" when the clocks disagree by more than 60 s. */
const char *fmt_age(int64_t when, int64_t now, char *out, size_t outsz);

/* A Unix time as local "YYYY-MM-DD HH:MM:SS", or "-" for when <= 0. */
const char *fmt_time(int64_t when, char *out, size_t outsz);

/*
 * Copies untrusted text (object names, error messages from the daemon) so that it is safe to
 * print on a terminal: control bytes and invalid UTF-8 become "\xNN", a backslash stays as is.
 * Output longer than outsz - 1 bytes is cut at a character boundary and ends in "...".
 * Returns out (outsz >= 8).
 */
const char *fmt_clean(const char *s, char *out, size_t outsz);

/* Display columns of UTF-8 text (code points; wide characters count as one). */
size_t fmt_width(const char *s);

/* A table printed with aligned columns, two spaces apart. */
struct fmt_table;

/*
 * Creates a table of `ncols` columns with the given headers (NULL = no header row). `align` has
 * one letter per column: 'l' left, 'r' right. Returns 0 or -ENOMEM, -EINVAL.
 */
int fmt_table_new(size_t ncols, const char *const *headers, const char *align,
		  struct fmt_table **out);

/* Adds a row of ncols cells (NULL cells print as "-"), each passed through fmt_clean(). The
 * table keeps its own copies. Returns 0 or -ENOMEM. */
int fmt_table_add(struct fmt_table *t, const char *const *cells);

/* Prints the table, each line indented by `indent` spaces; the last column is never padded. */
void fmt_table_print(const struct fmt_table *t, FILE *f, int indent);

/* Frees the table. NULL is allowed. */
void fmt_table_free(struct fmt_table *t);

#endif
