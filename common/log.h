/* log: leveled logging to stderr or syslog, shared by every hoardfs process. */
#ifndef HOARDFS_LOG_H
#define HOARDFS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

/*
 * Configures the process-wide logger: `ident` prefixes every line (it must stay valid for the life
 * of the process), lines above `level` are dropped, `to_syslog` sends lines to syslog(3) instead of
 * stderr. Call once at start-up, before other threads exist; until then the logger prints INFO and
 * more severe lines to stderr as "hoardfs".
 */
void log_init(const char *ident, enum log_level level, bool to_syslog);

/* Switches an already initialised logger to syslog (used when a daemon detaches from its tty). */
void log_use_syslog(bool on);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -EINVAL for anything else. */
int log_level_parse(const char *s, enum log_level *out);

/* True when lines of `level` would be printed (to skip costly formatting). */
bool log_enabled(enum log_level level);

/* Prints one line (a trailing newline is added). Safe from any thread. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                       \
	do {                                                 \
		if (log_enabled(LOG_LVL_DEBUG))              \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
