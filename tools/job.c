/* job: the commands that start or follow a daemon job (warm, verify, job, cancel): polling
 * {"cmd":"job"} every 250 ms, a live progress line on a terminal or a plain line every 5 s
 * elsewhere, and Ctrl-C turning into {"cmd":"cancel"}. */
#include "tools/job.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common/proto.h"
#include "tools/format.h"
#include "tools/inspect.h"
#include "tools/reply.h"

#define POLL_MS		  250
#define PLAIN_EVERY_S	  5.0
#define RATE_SAMPLES	  21 /* 5 s of polls: the rate and ETA follow recent speed */
#define BAR_MIN		  10
#define BAR_MAX		  40
#define PROGRESS_LINE_MAX 512
#define LIST_MAX	  1000 /* error and corrupt-block lines printed at the end */
#define CLEAN_MAX	  4096

/* The one global: the signal that asked us to stop (0 = none). Written by the handler only. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* SIGINT, SIGTERM and SIGHUP set the flag once; a second one acts as if we had no handler. */
static void install_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = (int)SA_RESETHAND; /* no SA_RESTART: the sleep ends at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What one poll of a job said. */
struct job_view {
	const char *kind; /* "warm", "verify", ... (valid while the reply lives) */
	const char *state;
	uint64_t objects, objects_done, objects_failed;
	uint64_t bytes, bytes_done;
	uint64_t blocks_checked, corrupt_blocks;
	int64_t started, finished;
};

/* Reads the job reply; returns 0 or -EPROTO when a member it needs is missing or mistyped. */
static int job_read(json_object *r, struct job_view *v)
{
	memset(v, 0, sizeof(*v));
	if (reply_str(r, "state", &v->state))
		return -EPROTO;
	v->kind = reply_str_or(r, "kind", "job");
	v->objects = reply_u64_or(r, "objects", 0);
	v->objects_done = reply_u64_or(r, "objects_done", 0);
	v->objects_failed = reply_u64_or(r, "objects_failed", 0);
	v->bytes = reply_u64_or(r, "bytes", 0);
	v->bytes_done = reply_u64_or(r, "bytes_done", 0);
	v->blocks_checked = reply_u64_or(r, "blocks_checked", 0);
	v->corrupt_blocks = reply_u64_or(r, "corrupt_blocks", 0);
	v->started = reply_i64_or(r, "started", 0);
	v->finished = reply_i64_or(r, "finished", 0);
	return 0;
}

static bool state_final(const char *state)
{
	/* anything else (running, or a state a newer daemon adds) is still going */
	return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
	       strcmp(state, "cancelled") == 0;
}

static double job_percent(const struct job_view *v)
{
	if (v->bytes)
		return 100.0 * (double)v->bytes_done / (double)v->bytes;
	if (v->objects)
		return 100.0 * (double)v->objects_done / (double)v->objects;
	return state_final(v->state) ? 100.0 : 0.0;
}

/* The progress display's state. */
struct progress {
	bool tty;
	uint64_t job;
	double t0, last_plain;
	struct {
		double t;
		uint64_t bytes;
	} samples[RATE_SAMPLES];
	size_t nsamples, head; /* ring of the last polls */
	size_t text_max;       /* the longest progress text drawn */
};

static void rate_add(struct progress *p, double t, uint64_t bytes)
{
	p->samples[p->head].t = t;
	p->samples[p->head].bytes = bytes;
	p->head = (p->head + 1) % RATE_SAMPLES;
	if (p->nsamples < RATE_SAMPLES)
		p->nsamples++;
}

/* Bytes per second over the sample window; -1 while unknown. */
static double rate_now(const struct progress *p)
{
	size_t newest = (p->head + RATE_SAMPLES - 1) % RATE_SAMPLES;
	size_t oldest = (p->head + RATE_SAMPLES - p->nsamples) % RATE_SAMPLES;
	double dt;

	if (p->nsamples < 2)
		return -1;
	dt = p->samples[newest].t - p->samples[oldest].t;
	if (dt <= 0 || p->samples[newest].bytes < p->samples[oldest].bytes)
		return -1;
	return (double)(p->samples[newest].bytes - p->samples[oldest].bytes) / dt;
}

/* "6.3 GiB / 15.0 GiB  41.7%  512.3 MiB/s  ETA 17s  5/12 objects" with `sep` between parts. */
static void progress_text(const struct progress *p, const struct job_view *v, const char *sep,
			  char *out, size_t outsz)
{
	char done[FMT_SHORT], total[FMT_SHORT], pct[FMT_SHORT], rate[FMT_SHORT], eta[FMT_SHORT];
	char extra[96] = "";
	double r = rate_now(p);
	int n = 0;

	fmt_size(v->bytes_done, done, sizeof(done));
	fmt_size(v->bytes, total, sizeof(total));
	fmt_percent(job_percent(v), pct, sizeof(pct));
	if (r < 0) {
		snprintf(rate, sizeof(rate), "-");
		snprintf(eta, sizeof(eta), "-");
	} else {
		fmt_rate(r, rate, sizeof(rate));
		if (v->bytes_done >= v->bytes)
			snprintf(eta, sizeof(eta), "0s");
		else if (r < 1)
			snprintf(eta, sizeof(eta), "-");
		else
			fmt_duration((uint64_t)ceil((double)(v->bytes - v->bytes_done) / r), eta,
				     sizeof(eta));
	}
	if (v->objects_failed)
		n = snprintf(extra, sizeof(extra), "%s%llu failed", sep,
			     (unsigned long long)v->objects_failed);
	if (strcmp(v->kind, "verify") == 0 && n >= 0 && (size_t)n < sizeof(extra))
		snprintf(extra + n, sizeof(extra) - (size_t)n, "%s%llu corrupt", sep,
			 (unsigned long long)v->corrupt_blocks);
	snprintf(out, outsz, "%s / %s%s%s%s%s%sETA %s%s%llu/%llu objects%s", done, total, sep, pct,
		 sep, rate, sep, eta, sep, (unsigned long long)v->objects_done,
		 (unsigned long long)v->objects, extra);
}

static int term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Redraws the terminal line in place: "warm [#####.....] 6.3 GiB / 15.0 GiB ...". */
static void draw_tty(struct insp *x, struct progress *p, const struct job_view *v)
{
	char text[PROGRESS_LINE_MAX], bar[BAR_MAX + 1], kind[16];
	int cols = term_cols() - 1; /* never touch the last column: no wrap */
	int barw;
	size_t len;

	progress_text(p, v, "  ", text, sizeof(text));
	snprintf(kind, sizeof(kind), "%.10s", v->kind);
	/* the widest text so far sets the bar: it only ever shrinks, so it does not jump about */
	if (strlen(text) > p->text_max)
		p->text_max = strlen(text);
	len = strlen(kind) + 2 + p->text_max;
	barw = cols - (int)len - 4;
	if (barw > BAR_MAX)
		barw = BAR_MAX;
	if (barw >= BAR_MIN) {
		int full = (int)(job_percent(v) / 100.0 * barw);

		if (full > barw)
			full = barw;
		memset(bar, '#', (size_t)full);
		memset(bar + full, '.', (size_t)(barw - full));
		bar[barw] = '\0';
		printf("\r%s [%s]  %.*s\033[K", kind, bar, cols, text);
	} else {
		printf("\r%s  %.*s\033[K", kind,
		       cols > (int)strlen(kind) + 2 ? cols - (int)strlen(kind) - 2 : 0, text);
	}
	fflush(stdout);
	x->line_open = true;
}

static void draw_plain(const struct progress *p, const struct job_view *v)
{
	char text[PROGRESS_LINE_MAX];

	progress_text(p, v, ", ", text, sizeof(text));
	printf("%s job %llu: %s\n", v->kind, (unsigned long long)p->job, text);
	fflush(stdout);
}

/* Clears the progress line before the summary. */
static void progress_end(struct insp *x, const struct progress *p)
{
	if (p->tty && x->line_open) {
		fputs("\r\033[K", stdout);
		fflush(stdout);
		x->line_open = false;
	}
}

/* Prints the strings of array `key` (errors) on stderr, at most LIST_MAX. */
static void print_errors(json_object *r)
{
	json_object *arr;
	char clean[CLEAN_MAX];
	size_t n;

	if (reply_array(r, "errors", &arr))
		return;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n && i < LIST_MAX; i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		if (json_object_is_type(e, json_type_string))
			fprintf(stderr, "  %s\n",
				fmt_clean(json_object_get_string(e), clean, sizeof(clean)));
	}
	if (n > LIST_MAX)
		fprintf(stderr, "  ... and %zu more\n", n - LIST_MAX);
}

/* Prints the corrupt blocks of a verify job; returns how many entries there were. */
static size_t print_corrupt(json_object *r)
{
	json_object *arr;
	char clean[CLEAN_MAX];
	size_t n;

	if (reply_array(r, "corrupt", &arr))
		return 0;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n && i < LIST_MAX; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		uint64_t b;

		if (reply_u64(e, "block", &b)) {
			printf("  %s (block unknown)\n",
			       fmt_clean(reply_str_or(e, "url", "?"), clean, sizeof(clean)));
			continue;
		}
		printf("  %s  block %llu (bytes %llu-%llu)\n",
		       fmt_clean(reply_str_or(e, "url", "?"), clean, sizeof(clean)),
		       (unsigned long long)b, (unsigned long long)(b << PROTO_BLOCK_SHIFT),
		       (unsigned long long)(((b + 1) << PROTO_BLOCK_SHIFT) - 1));
	}
	if (n > LIST_MAX)
		printf("  ... and %zu more\n", n - LIST_MAX);
	return n;
}

/* A number as text into out (FMT_SHORT bytes). */
static const char *num_u64(uint64_t v, char *out)
{
	snprintf(out, FMT_SHORT, "%llu", (unsigned long long)v);
	return out;
}

/* "0.4s" under 10 s, else as fmt_duration(). */
static const char *elapsed_text(double secs, char *out, size_t outsz)
{
	if (secs < 10)
		snprintf(out, outsz, "%.1fs", secs < 0 ? 0.0 : secs);
	else
		fmt_duration((uint64_t)secs, out, outsz);
	return out;
}

/* Entries in the "errors" list of a job. */
static size_t errors_count(json_object *r)
{
	json_object *arr;

	return reply_array(r, "errors", &arr) ? 0 : json_object_array_length(arr);
}

/* Entries in the "corrupt" list of a verify job. */
static size_t corrupt_count(json_object *r)
{
	json_object *arr;

	return reply_array(r, "corrupt", &arr) ? 0 : json_object_array_length(arr);
}

/* Prints the outcome of a finished job and returns the exit status. */
static int job_summary(struct insp *x, uint64_t job, json_object *r, double elapsed)
{
	struct job_view v;
	char a[FMT_SHORT], b[FMT_SHORT], c[FMT_SHORT], d[FMT_SHORT], clean[128];
	bool verify, cancelled, failed;
	size_t ncorrupt = 0;

	if (job_read(r, &v)) {
		insp_err("%s: malformed reply from hoardfs-cached (no job state)", x->cmd);
		return INSP_EXIT_FAIL;
	}
	verify = strcmp(v.kind, "verify") == 0;
	cancelled = strcmp(v.state, "cancelled") == 0;
	failed = strcmp(v.state, "failed") == 0 || v.objects_failed > 0;
	if (x->json) {
		insp_print_json(r);
		goto status;
	}
	/* our own clock is finer; the daemon's covers a job we attached to late */
	if (v.started > 0 && v.finished >= v.started && (double)(v.finished - v.started) > elapsed)
		elapsed = (double)(v.finished - v.started);
	if (cancelled) {
		printf("%s job %llu was cancelled: %llu of %llu objects, %s of %s done\n",
		       fmt_clean(v.kind, clean, sizeof(clean)), (unsigned long long)job,
		       (unsigned long long)v.objects_done, (unsigned long long)v.objects,
		       fmt_size(v.bytes_done, a, sizeof(a)), fmt_size(v.bytes, b, sizeof(b)));
	} else if (verify) {
		printf("verified %llu object%s, %llu block%s (%s) in %s\n",
		       (unsigned long long)v.objects_done, v.objects_done == 1 ? "" : "s",
		       (unsigned long long)v.blocks_checked, v.blocks_checked == 1 ? "" : "s",
		       fmt_size(v.bytes_done, a, sizeof(a)), elapsed_text(elapsed, b, sizeof(b)));
	} else {
		uint64_t ok =
			v.objects_done > v.objects_failed ? v.objects_done - v.objects_failed : 0;

		printf("%s %llu%s%s object%s, %s in %s (%s)\n",
		       strcmp(v.kind, "warm") == 0 ? "warmed" : "finished", (unsigned long long)ok,
		       ok < v.objects ? " of " : "", ok < v.objects ? num_u64(v.objects, d) : "",
		       (ok < v.objects ? v.objects : ok) == 1 ? "" : "s",
		       fmt_size(v.bytes_done, a, sizeof(a)), elapsed_text(elapsed, b, sizeof(b)),
		       fmt_rate(elapsed > 0 ? (double)v.bytes_done / elapsed : -1, c, sizeof(c)));
	}
	if (verify && v.corrupt_blocks) {
		printf("%llu corrupt block%s found and dropped (the next read fetches %s again):\n",
		       (unsigned long long)v.corrupt_blocks, v.corrupt_blocks == 1 ? "" : "s",
		       v.corrupt_blocks == 1 ? "it" : "them");
		ncorrupt = print_corrupt(r);
	} else if (verify) {
		ncorrupt = print_corrupt(r);
		if (!ncorrupt && !failed && !cancelled)
			printf("no corruption found\n");
	}
	fflush(stdout);
	if (v.objects_failed) {
		insp_err("%s job %llu: %llu of %llu object%s failed%s",
			 fmt_clean(v.kind, clean, sizeof(clean)), (unsigned long long)job,
			 (unsigned long long)v.objects_failed, (unsigned long long)v.objects,
			 v.objects == 1 ? "" : "s", errors_count(r) ? ":" : "");
	} else if (failed && !(verify && (v.corrupt_blocks || ncorrupt))) {
		/* a verify job that found corruption ends "failed": that was said above */
		insp_err("%s job %llu failed%s", fmt_clean(v.kind, clean, sizeof(clean)),
			 (unsigned long long)job, errors_count(r) ? ":" : "");
	}
	print_errors(r); /* also the warnings of a job that succeeded */
status:
	if (failed || cancelled)
		return INSP_EXIT_FAIL;
	if (verify && (v.corrupt_blocks || ncorrupt || corrupt_count(r)))
		return INSP_EXIT_FAIL;
	return INSP_EXIT_OK;
}

/* Asks the daemon to cancel `job` after a stop signal; returns 128 + the signal. */
static int cancel_after_signal(struct insp *x, uint64_t job, int sig)
{
	json_object *req = insp_req_new("cancel"), *rep = NULL;
	const char *state;
	char clean[64];

	insp_end_line(x);
	if (!req || insp_req_u64(req, "job", job)) {
		json_object_put(req);
		insp_err("out of memory: job %llu was not cancelled", (unsigned long long)job);
		return INSP_EXIT_SIGNAL + sig;
	}
	if (insp_request(x, req, &rep) == 0) {
		state = reply_str_or(rep, "state", "cancelled");
		if (x->json)
			insp_print_json(rep);
		else if (!state_final(state) || strcmp(state, "cancelled") == 0)
			printf("cancelled\n"); /* a running job stops at its next step */
		else
			printf("job %llu had already ended: %s\n", (unsigned long long)job,
			       fmt_clean(state, clean, sizeof(clean)));
	}
	json_object_put(req);
	json_object_put(rep);
	fflush(stdout);
	return INSP_EXIT_SIGNAL + sig;
}

/* Sleeps until `until` (monotonic seconds) or a stop signal. */
static void sleep_until(double until)
{
	double d = until - mono_s();
	struct timespec ts;

	if (d <= 0 || stop_signal)
		return;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL); /* EINTR: the caller looks at stop_signal */
}

/*
 * Follows `job` until it ends: polls every POLL_MS, draws progress (none with --json), then
 * prints the summary. Ctrl-C (SIGINT), SIGTERM or SIGHUP cancel the job. Returns the exit status.
 */
static int follow(struct insp *x, uint64_t job)
{
	struct progress p = { .tty = !x->json && isatty(STDOUT_FILENO),
			      .job = job,
			      .text_max = 60 };
	json_object *req = insp_req_new("job");
	int ex, rc;

	if (!req || insp_req_u64(req, "job", job)) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	install_stop_handlers();
	p.t0 = mono_s();
	p.last_plain = p.t0 - PLAIN_EVERY_S; /* a first plain line at once */
	for (;;) {
		double t = mono_s();
		json_object *rep = NULL;
		struct job_view v;

		if (stop_signal) {
			ex = cancel_after_signal(x, job, (int)stop_signal);
			break;
		}
		rc = insp_request(x, req, &rep);
		if (rc) {
			ex = insp_exit_for(x, rc);
			break;
		}
		if (job_read(rep, &v)) {
			insp_end_line(x);
			insp_err("%s: malformed reply from hoardfs-cached (no job state)", x->cmd);
			json_object_put(rep);
			ex = INSP_EXIT_FAIL;
			break;
		}
		if (stop_signal && !state_final(v.state)) {
			json_object_put(rep);
			continue; /* cancel first, at the top */
		}
		rate_add(&p, mono_s(), v.bytes_done);
		if (state_final(v.state)) {
			progress_end(x, &p);
			ex = job_summary(x, job, rep, mono_s() - p.t0);
			json_object_put(rep);
			break;
		}
		if (p.tty) {
			draw_tty(x, &p, &v);
		} else if (!x->json && t - p.last_plain >= PLAIN_EVERY_S) {
			draw_plain(&p, &v);
			p.last_plain = t;
		}
		json_object_put(rep);
		sleep_until(t + POLL_MS / 1000.0);
	}
	progress_end(x, &p);
	json_object_put(req);
	return ex;
}

int job_warm(struct insp *x)
{
	json_object *req = insp_req_new("warm"), *rep = NULL;
	char a[FMT_SHORT], clean[CLEAN_MAX];
	uint64_t job, objects, bytes;
	int rc, ex = INSP_EXIT_OK;

	if (!req || insp_req_str(req, "url", x->url) ||
	    (x->parallel && insp_req_u64(req, "parallel", x->parallel)) ||
	    (x->endpoint && insp_req_str(req, "endpoint", x->endpoint)) ||
	    insp_req_bool(req, "anonymous", x->anonymous) ||
	    (x->region && insp_req_str(req, "region", x->region))) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	if (reply_u64(rep, "job", &job) || job == 0) {
		insp_err("warm: malformed reply from hoardfs-cached (no job id)");
		json_object_put(rep);
		return INSP_EXIT_FAIL;
	}
	objects = reply_u64_or(rep, "objects", 0);
	bytes = reply_u64_or(rep, "bytes", 0);
	if (x->json && !x->wait)
		insp_print_json(rep);
	else if (!x->json)
		printf("warm job %llu: %llu object%s, %s under %s\n", (unsigned long long)job,
		       (unsigned long long)objects, objects == 1 ? "" : "s",
		       fmt_size(bytes, a, sizeof(a)), fmt_clean(x->url, clean, sizeof(clean)));
	json_object_put(rep);
	if (x->wait)
		ex = follow(x, job);
	else if (!x->json)
		printf("queued; follow it with: hoardfs-inspect job %llu --wait\n",
		       (unsigned long long)job);
	return ex;
}

int job_verify(struct insp *x)
{
	json_object *req = insp_req_new("verify"), *rep = NULL;
	char clean[CLEAN_MAX];
	uint64_t job;
	int rc;

	if (!req || (x->url && insp_req_str(req, "url", x->url))) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	rc = reply_u64(rep, "job", &job);
	json_object_put(rep);
	if (rc || job == 0) {
		insp_err("verify: malformed reply from hoardfs-cached (no job id)");
		return INSP_EXIT_FAIL;
	}
	if (!x->json)
		printf("verify job %llu: checking %s\n", (unsigned long long)job,
		       x->url ? fmt_clean(x->url, clean, sizeof(clean)) : "the whole cache");
	return follow(x, job);
}

static void print_job(const struct job_view *v, uint64_t job, json_object *r)
{
	char a[FMT_SHORT], b[FMT_SHORT], c[FMT_SHORT], clean[128];
	int64_t now = (int64_t)time(NULL);

	printf("job %llu (%s): %s\n", (unsigned long long)job, fmt_clean(v->kind, clean, 64),
	       fmt_clean(v->state, clean + 64, 64));
	printf("  %-9s%llu of %llu done, %llu failed\n", "objects",
	       (unsigned long long)v->objects_done, (unsigned long long)v->objects,
	       (unsigned long long)v->objects_failed);
	printf("  %-9s%s of %s (%s)\n", "bytes", fmt_size(v->bytes_done, a, sizeof(a)),
	       fmt_size(v->bytes, b, sizeof(b)), fmt_percent(job_percent(v), c, sizeof(c)));
	if (reply_has(r, "blocks_checked"))
		printf("  %-9s%llu checked, %llu corrupt\n", "blocks",
		       (unsigned long long)v->blocks_checked,
		       (unsigned long long)v->corrupt_blocks);
	if (v->started > 0)
		printf("  %-9s%s (%s)\n", "started", fmt_age(v->started, now, a, sizeof(a)),
		       fmt_time(v->started, b, sizeof(b)));
	if (corrupt_count(r))
		print_corrupt(r);
	if (reply_has(r, "errors"))
		print_errors(r);
}

int job_show(struct insp *x)
{
	json_object *req, *rep = NULL;
	struct job_view v;
	int rc, ex = INSP_EXIT_OK;

	if (x->wait)
		return follow(x, x->job);
	req = insp_req_new("job");
	if (!req || insp_req_u64(req, "job", x->job)) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	if (job_read(rep, &v)) {
		insp_err("job: malformed reply from hoardfs-cached (no job state)");
		ex = INSP_EXIT_FAIL;
	} else if (x->json) {
		insp_print_json(rep);
	} else {
		print_job(&v, x->job, rep);
	}
	json_object_put(rep);
	return ex;
}

int job_cancel(struct insp *x)
{
	json_object *req = insp_req_new("cancel"), *rep = NULL;
	char clean[64];
	int rc;

	if (!req || insp_req_u64(req, "job", x->job)) {
		json_object_put(req);
		insp_err("out of memory");
		return INSP_EXIT_FAIL;
	}
	rc = insp_request(x, req, &rep);
	json_object_put(req);
	if (rc)
		return insp_exit_for(x, rc);
	if (x->json)
		insp_print_json(rep);
	else
		printf("job %llu: %s\n", (unsigned long long)x->job,
		       fmt_clean(reply_str_or(rep, "state", "cancelled"), clean, sizeof(clean)));
	json_object_put(rep);
	return INSP_EXIT_OK;
}
