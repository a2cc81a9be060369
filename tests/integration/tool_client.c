/* tool_client: registers with hoardfs-cached like a mount does (no FUSE) and reads through the
 * ring, for daemon integration tests. Also plays misbehaving mounts (tool_client/misbehave.c,
 * tool_client/fuzz.c).
 *
 *   tool_client --socket S [--endpoint URL] [--anonymous] [--ttl N] [--timeout-ms N]
 *               [--mountpoint STR] URL CMD ...
 *     ls PATH | stat PATH | cat PATH [--out F] [--req-size N] [--depth D] [--hold-ms N]
 *     read PATH OFF LEN [--out F] | hold PATH MS | stall PATH | abandon PATH | ctl JSON
 *     hostile PATH | scribble PATH sq-tail|cq-head | garbage PATH | fuzz PATH SEED N
 *
 *   hold     opens PATH and keeps it open for MS ms (SIGUSR1 ends the wait early), then closes
 *            it and prints "closed"
 *   stall    stops draining completions (the receive thread blocks) and keeps submitting FETCHes
 *            of PATH until the daemon drops the mount (checked from a second connection);
 *            prints "disconnected after N ms (M entries)" or "still-connected"
 *   abandon  submits FETCHes for all of PATH and exits at once
 *   hostile  submits invalid ring entries (unknown ops, handles never opened, ranges past the
 *            end, zero and huge lengths), checks each gets ERROR with the right errno and that
 *            valid requests still work, then sends invalid entries until the daemon drops it
 *   scribble corrupts the shared ring header (an impossible submission tail, or completion head)
 *            and checks that the daemon drops the mount
 *   garbage  sends malformed socket messages on raw connections (wrong magic or length, unknown
 *            types, garbage REGISTERs, descriptors the message does not call for, oversized
 *            packets, a reply flood it never reads) and checks each answer or disconnect
 *   fuzz     randomized, reproducible (SEED) misbehaviour: N socket messages built from valid
 *            ones by random mutations (bit flips, boundary values in any field, truncation,
 *            extension, wrong type or length, descriptors attached), then N ring entries with
 *            random ops, handles, ranges and flags, reconnecting whenever the daemon drops it.
 *            Checks that each message gets the reply to its own seq or a disconnect within
 *            15 s, that each FETCH/PREFETCH gets exactly one final completion (none for ids
 *            never submitted or already answered), that no attached descriptor is kept, and
 *            that the daemon still answers afterwards
 * Checking commands print one "ok: ..." line per check and exit 1 when one fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/client.h"
#include "common/msg.h"
#include "common/num.h"
#include "common/ring.h"
#include "tool_client/client.h"

struct state st = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, false, false };

static void on_complete(void *ctx, const struct ring_entry *e)
{
	pthread_mutex_lock(&st.lock);
	while (st.stall) /* a mount that stops draining its completions */
		pthread_cond_wait(&st.cond, &st.lock);
	if (e->id < MAX_DEPTH)
		st.done[e->id] = e->op == RING_PRESENT ? 1 : (e->status ? e->status : -EIO);
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

void on_lost(void *ctx)
{
	pthread_mutex_lock(&st.lock);
	st.lost = true;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

/* Reports an error and exits 1 (from here, so that what main() holds is still reachable and a
 * leak checker does not turn the status into its own). */
static int die(const char *what, int rc)
{
	fprintf(stderr, "tool_client: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static int ls_fn(void *ctx, const struct proto_attr *a, const char *name, size_t len)
{
	if (a->type == PROTO_FT_DIR)
		printf("dir\t%.*s\n", (int)len, name);
	else
		printf("file\t%" PRIu64 "\t%s\t%.*s\n", a->size, a->version, (int)len, name);
	return 0;
}

static bool blocks_present(const uint8_t *map, uint64_t off, uint64_t len)
{
	for (uint64_t b = off >> PROTO_BLOCK_SHIFT; b <= (off + len - 1) >> PROTO_BLOCK_SHIFT;
	     b++) {
		if (!(map[b >> 3] & (1u << (b & 7))))
			return false;
	}
	return true;
}

/* Reads [off, off+len) of an open object through the ring with `depth` requests in flight. */
static int read_range(struct hfc *c, const struct proto_open_reply *rep, uint8_t *map, int fd,
		      uint64_t off, uint64_t len, uint64_t req, int depth, int out, int timeout_ms)
{
	uint64_t next = off, end = off + len, slot_off[MAX_DEPTH] = { 0 };
	int head = 0, inflight = 0, rc;
	char *buf = malloc(req);

	if (!buf)
		return -ENOMEM;
	while (next < end || inflight) {
		while (next < end && inflight < depth) {
			int slot = (head + inflight) % depth;
			uint64_t n = end - next < req ? end - next : req;
			struct ring_entry e = { .id = (uint64_t)slot,
						.off = next,
						.len = n,
						.handle = rep->handle,
						.op = RING_FETCH };

			pthread_mutex_lock(&st.lock);
			st.done[slot] = blocks_present(map, next, n) ? 1 : 0;
			pthread_mutex_unlock(&st.lock);
			if (!st.done[slot]) {
				while ((rc = hfc_submit(c, &e)) == -EAGAIN)
					usleep(1000);
				if (rc)
					goto out;
			}
			slot_off[slot] = next;
			next += n;
			inflight++;
		}
		{
			struct timespec dl;
			uint64_t o = slot_off[head], n = end - o < req ? end - o : req;

			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += timeout_ms / 1000;
			pthread_mutex_lock(&st.lock);
			while (st.done[head] == 0 && !st.lost) {
				if (pthread_cond_timedwait(&st.cond, &st.lock, &dl) == ETIMEDOUT)
					break;
			}
			rc = st.done[head] == 1	 ? 0
			     : st.done[head] < 0 ? st.done[head]
						 : -ETIMEDOUT;
			if (st.lost && st.done[head] != 1)
				rc = -ENOTCONN;
			pthread_mutex_unlock(&st.lock);
			if (rc)
				goto out;
			for (uint64_t b = o >> PROTO_BLOCK_SHIFT;
			     b <= (o + n - 1) >> PROTO_BLOCK_SHIFT; b++)
				map[b >> 3] |= (uint8_t)(1u << (b & 7));
			for (uint64_t got = 0; got < n;) {
				ssize_t r = pread(fd, buf + got, n - got, (off_t)(o + got));

				if (r <= 0) {
					rc = r < 0 ? -errno : -EIO;
					goto out;
				}
				got += (uint64_t)r;
			}
			if (out >= 0) {
				for (uint64_t w = 0; w < n;) {
					ssize_t r = write(out, buf + w, n - w);

					if (r <= 0) {
						rc = -errno;
						goto out;
					}
					w += (uint64_t)r;
				}
			}
			head = (head + 1) % depth;
			inflight--;
		}
	}
	rc = 0;
out:
	free(buf);
	(void)rep;
	return rc;
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = 1;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int failures;

void check(bool ok, const char *what, long got, long want)
{
	if (ok) {
		printf("ok: %s\n", what);
	} else {
		printf("FAIL: %s: got %ld, want %ld\n", what, got, want);
		failures++;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "anonymous", no_argument, NULL, 'a' },
		{ "ttl", required_argument, NULL, 't' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "out", required_argument, NULL, 'o' },
		{ "req-size", required_argument, NULL, 'r' },
		{ "depth", required_argument, NULL, 'd' },
		{ "hold-ms", required_argument, NULL, 'H' },
		{ "mountpoint", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *endpoint = NULL, *outpath = NULL, *mountpoint = "(tool_client)";
	struct hfc_register reg = {
		.metadata_ttl = 60, .neg_ttl = 5, .on_complete = on_complete, .on_lost = on_lost
	};
	struct proto_register_reply rr;
	uint64_t req = 1 << 20, hold_ms = 0;
	int timeout_ms = 60000, depth = 8, ch, rc, out = STDOUT_FILENO;
	struct hfc *c;
	const char *cmd, *path;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		uint64_t v;

		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'e':
			endpoint = optarg;
			break;
		case 'a':
			reg.anonymous = true;
			break;
		case 't':
			reg.metadata_ttl = atoi(optarg);
			break;
		case 'T':
			timeout_ms = atoi(optarg);
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'r':
			if (num_parse_size(optarg, &v) || v == 0)
				return die("--req-size", -EINVAL);
			req = v;
			break;
		case 'd':
			depth = atoi(optarg);
			if (depth < 1 || depth > MAX_DEPTH)
				return die("--depth", -EINVAL);
			break;
		case 'H':
			hold_ms = strtoull(optarg, NULL, 10);
			break;
		case 'M': /* what REGISTER says the mount point is (any bytes: a hostile peer's) */
			mountpoint = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!sock || argc - optind < 2) {
		fprintf(stderr, "usage: tool_client --socket S [opts] URL CMD ARGS\n");
		return 2;
	}
	reg.url = argv[optind];
	reg.endpoint = endpoint;
	reg.mountpoint = mountpoint;
	cmd = argv[optind + 1];
	path = argc - optind > 2 ? argv[optind + 2] : "";
	rc = hfc_connect(sock, &c);
	if (rc)
		return die("connect", rc);
	if (strcmp(cmd, "ctl") == 0) {
		char *reply;
		int status;

		rc = hfc_ctl(c, path, timeout_ms, &status, &reply);
		if (rc)
			return die("ctl", rc);
		printf("%s\n", reply);
		free(reply);
		hfc_close(c);
		return status ? 1 : 0;
	}
	rc = hfc_register(c, &reg, timeout_ms, &rr);
	if (rc)
		return die("register", rc);
	if (strcmp(cmd, "ls") == 0) {
		uint64_t cur = 0;

		do {
			rc = hfc_list(c, path, cur, timeout_ms, ls_fn, NULL, &cur);
		} while (!rc && cur);
		if (rc)
			return die("ls", rc);
	} else if (strcmp(cmd, "stat") == 0) {
		struct proto_attr a;

		rc = hfc_lookup(c, path, timeout_ms, &a);
		if (rc)
			return die("stat", rc);
		printf("type=%s\nsize=%" PRIu64 "\nversion=%s\nmtime=%" PRId64 "\n",
		       a.type == PROTO_FT_DIR ? "dir" : "file", a.size, a.version, a.mtime_sec);
	} else {
		struct proto_attr a;
		struct proto_open_reply rep;
		uint8_t *map;
		int fd;

		rc = hfc_lookup(c, path, timeout_ms, &a);
		if (rc)
			return die("lookup", rc);
		rc = hfc_open(c, path, a.version, a.size, 0, timeout_ms, &rep, &map, &fd);
		if (rc)
			return die("open", rc);
		if (outpath) {
			out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (out < 0)
				return die(outpath, -errno);
		}
		if (strcmp(cmd, "cat") == 0) {
			if (a.size)
				rc = read_range(c, &rep, map, fd, 0, a.size, req, depth, out,
						timeout_ms);
			if (rc)
				return die("cat", rc);
			if (hold_ms)
				usleep((useconds_t)(hold_ms * 1000));
		} else if (strcmp(cmd, "read") == 0 && argc - optind >= 5) {
			uint64_t off = strtoull(argv[optind + 3], NULL, 10);
			uint64_t len = strtoull(argv[optind + 4], NULL, 10);

			if (off > a.size || len > a.size - off)
				return die("read", -EINVAL);
			if (len)
				rc = read_range(c, &rep, map, fd, off, len, req, 1, out,
						timeout_ms);
			if (rc)
				return die("read", rc);
		} else if (strcmp(cmd, "hold") == 0 && argc - optind >= 4) {
			uint64_t until = now_ms() + strtoull(argv[optind + 3], NULL, 10);

			signal(SIGUSR1, on_usr1);
			printf("holding\n");
			fflush(stdout);
			while (!got_usr1 && now_ms() < until && hfc_alive(c))
				usleep(10000);
			if (!hfc_alive(c))
				return die("hold", -ENOTCONN);
		} else if (strcmp(cmd, "stall") == 0) {
			return cmd_stall(c, sock, &rep, &rr, req, timeout_ms);
		} else if (strcmp(cmd, "abandon") == 0) {
			uint32_t n = 0;

			for (uint64_t o = 0; o < a.size; o += req, n++) {
				struct ring_entry e = { .id = 1000 + n,
							.off = o,
							.len = a.size - o < req ? a.size - o : req,
							.handle = rep.handle,
							.op = RING_FETCH };

				if (hfc_submit(c, &e))
					break;
			}
			_exit(0); /* abandon: vanish with requests in flight */
		} else if (strcmp(cmd, "hostile") == 0) {
			_exit(cmd_hostile(c, &rep, timeout_ms));
		} else if (strcmp(cmd, "scribble") == 0 && argc - optind >= 4) {
			_exit(cmd_scribble(c, &rep, &rr, argv[optind + 3], timeout_ms));
		} else if (strcmp(cmd, "fuzz") == 0 && argc - optind >= 5) {
			close(fd);
			free(map);
			rc = hfc_close_handle(c, rep.handle, timeout_ms);
			hfc_close(c);
			if (rc)
				return die("close", rc);
			return cmd_fuzz(sock, &reg, path, &a, strtoull(argv[optind + 3], NULL, 10),
					strtoull(argv[optind + 4], NULL, 10), timeout_ms);
		} else if (strcmp(cmd, "garbage") == 0) {
			rc = cmd_garbage(sock, reg.url, endpoint, path, &a);
			close(fd);
			free(map);
			hfc_close(c);
			return rc;
		} else {
			fprintf(stderr, "tool_client: unknown command %s\n", cmd);
			return 2;
		}
		if (out != STDOUT_FILENO)
			close(out);
		rc = hfc_close_handle(c, rep.handle, timeout_ms);
		if (rc)
			return die("close", rc);
		if (strcmp(cmd, "hold") == 0) {
			printf("closed\n");
			fflush(stdout);
		}
		close(fd);
		free(map);
	}
	hfc_close(c);
	return 0;
}
