/* log: leveled logging to stderr or syslog. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/*
 * The logger's configuration is the one piece of process-wide state in hoardfs: it is written once
 * by log_init() before threads start and only read afterwards (log_use_syslog() flips an atomic).
 */
static struct {
	const char *ident;
	int level;
	_Atomic int to_syslog;
} logger = { "hoardfs", LOG_LVL_INFO, 0 };

void log_init(const char *ident, enum log_level level, bool to_syslog)
{
	logger.ident = ident ? ident : "hoardfs";
	logger.level = (int)level;
	logger.to_syslog = to_syslog;
	if (to_syslog)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_use_syslog(bool on)
{
	if (on && !logger.to_syslog)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	logger.to_syslog = on;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= logger.level;
}

/* Copies a formatted message, escaping control characters (\n, \r, ESC, ...) as \xNN: log lines
 * carry peer-provided strings (mount points, URLs, object names), and a newline in one must not
 * forge a line of its own, nor an escape sequence repaint a terminal. */
static void escape_line(const char *in, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < outsz; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char raw[2048], line[2048 + 64];
	va_list ap;
	int saved = errno;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_line(raw, line, sizeof(line));
	if (logger.to_syslog) {
		syslog(prio[level], "%s: %s", tags[level], line);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		/* One fprintf per line: stdio locks the stream, so lines from threads never
		 * interleave. */
		fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: %s\n",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, logger.ident, (int)getpid(), tags[level],
			line);
	}
	errno = saved;
}
