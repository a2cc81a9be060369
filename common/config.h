/* config: reads "key = value" configuration files (the daemon's --config). */
#ifndef HOARDFS_CONFIG_H
#define HOARDFS_CONFIG_H

/*
 * Called once per setting, in file order. `key` and `value` are trimmed and valid only during the
 * call. Return 0 to go on, or a negative errno to stop (config_parse_file then returns it).
 */
typedef int (*config_fn)(void *ctx, const char *key, const char *value, int lineno);

/*
 * Parses `path`: one "key = value" per line; blank lines and lines starting with '#' are skipped;
 * a value may be wrapped in double quotes. A malformed line is reported on stderr (one line,
 * "hoardfs: PATH:LINE: ...") and fails with -EINVAL. Returns 0, -errno from open/read, -EINVAL,
 * -E2BIG for a file over 1 MiB or a line over 4 KiB, or the callback's error.
 */
int config_parse_file(const char *path, config_fn fn, void *ctx);

#endif
