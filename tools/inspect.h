/* inspect: hoardfs-inspect's shared state and its connection to hoardfs-cached (internal to
 * tools/). Command handlers live in show.h (one request, one answer) and job.h (jobs followed
 * with progress); the LMDB fallback of `ls` in offline.h. */
#ifndef HOARDFS_TOOLS_INSPECT_H
#define HOARDFS_TOOLS_INSPECT_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses (documented in --help). */
enum {
	INSP_EXIT_OK = 0,
	INSP_EXIT_FAIL = 1,	/* a daemon error, failed objects, corruption found */
	INSP_EXIT_USAGE = 2,	/* bad command line, bad URL */
	INSP_EXIT_DOWN = 3,	/* hoardfs-cached is not running (no socket, or refused) */
	INSP_EXIT_SIGNAL = 128, /* + the signal number: interrupted (a job was cancelled) */
};

struct hfc;

/* Everything one run of hoardfs-inspect knows: the options and the connection. */
struct insp {
	char cache_dir[PATH_MAX];
	char socket_path[PATH_MAX];
	bool json;	/* print the daemon's reply objects */
	int timeout_ms; /* per reply */
	/* command arguments and options */
	const char *cmd;
	const char *url; /* NULL when not given */
	const char *endpoint;
	const char *region;
	uint64_t job;	   /* job / cancel */
	uint32_t parallel; /* 0 = the daemon's default */
	bool wait, all, dry_run, force, anonymous, prometheus;
	/* the connection, opened by insp_request() */
	struct hfc *conn;
	bool down;	/* connecting failed because no daemon listens */
	bool line_open; /* a progress line without its newline is on stdout (job.c) */
};

/*
 * Sends control request `req` (borrowed) and waits up to x->timeout_ms for the reply,
 * connecting first when needed. On success (0) *reply holds the parsed reply object (the caller
 * puts it). Every failure is reported on stderr in one line before returning: -ENOENT or
 * -ECONNREFUSED when no daemon listens (x->down is set), the daemon's negative status (its
 * "error" text printed; with --json the error object also goes to stdout), -ETIMEDOUT,
 * -ENOTCONN (connection lost), -EPROTO (a malformed reply), -ENOMEM.
 */
int insp_request(struct insp *x, json_object *req, json_object **reply);

/* Like insp_request() but prints nothing when connecting fails because no daemon listens (the
 * caller reports it). */
int insp_request_quiet_down(struct insp *x, json_object *req, json_object **reply);

/* The exit status for an insp_request() failure: INSP_EXIT_DOWN or INSP_EXIT_FAIL. */
int insp_exit_for(const struct insp *x, int err);

/* Prints `o` as pretty JSON with a trailing newline on stdout. */
void insp_print_json(json_object *o);

/* Prints "hoardfs-inspect: is not running" for x's socket with the connect error, on `f`. */
void insp_report_down(const struct insp *x, int err, FILE *f);

/* Ends an open progress line on stdout (see line_open), so that a message can follow. */
void insp_end_line(struct insp *x);

/* Builds {"cmd": cmd}. Returns NULL when out of memory. */
json_object *insp_req_new(const char *cmd);

/* Adds a string / u64 / bool member to a request; returns 0 or -ENOMEM. */
int insp_req_str(json_object *req, const char *key, const char *val);
int insp_req_u64(json_object *req, const char *key, uint64_t val);
int insp_req_bool(json_object *req, const char *key, bool val);

/* Prints "hoardfs-inspect: " and the formatted text on stderr (a newline is added). */
void insp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
