/* tool_client: registers with hoardfs-cached like a mount does (no FUSE) and reads through the
 * ring, for daemon integration tests. Also plays misbehaving mounts.
 *
 *   tool_client --socket S [--endpoint URL] [--anonymous] [--ttl N] [--timeout-ms N] URL CMD ...
 *     ls PATH | stat PATH | cat PATH [--out F] [--req-size N] [--depth D] [--hold-ms N]
 *     read PATH OFF LEN [--out F] | hold PATH MS | stall PATH | abandon PATH | ctl JSON
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/client.h"
#include "common/num.h"

#define MAX_DEPTH 256

struct state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done[MAX_DEPTH]; /* by slot: 0 waiting, 1 present, <0 error */
	bool stall;
	bool lost;
};

static struct state st = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, false, false
};

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

static void on_lost(void *ctx)
{
	pthread_mutex_lock(&st.lock);
	st.lost = true;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "tool_client: %s: %s\n", what, strerror(-rc));
	return 1;
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
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *endpoint = NULL, *outpath = NULL;
	struct hfc_register reg = {
		.metadata_ttl = 60, .neg_ttl = 5, .on_complete = on_complete, .on_lost = on_lost
	};
	struct proto_register_reply rr;
	uint64_t req = 1 << 20, hold_ms = 0;
	int timeout_ms = 60000, depth = 8, ch, rc, out = STDOUT_FILENO;
	struct hfc *c;
	const char *cmd, *path;

	while ((ch = getopt_long(argc, argv, "+", longs, NULL)) != -1) {
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
	reg.mountpoint = "(tool_client)";
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
		rc = hfc_open(c, path, a.version, a.size, timeout_ms, &rep, &map, &fd);
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
			usleep((useconds_t)strtoull(argv[optind + 3], NULL, 10) * 1000);
		} else if (strcmp(cmd, "stall") == 0 || strcmp(cmd, "abandon") == 0) {
			uint32_t n = 0;

			pthread_mutex_lock(&st.lock);
			st.stall = strcmp(cmd, "stall") == 0;
			pthread_mutex_unlock(&st.lock);
			for (uint64_t o = 0; o < a.size; o += req, n++) {
				struct ring_entry e = { .id = 1000 + n,
							.off = o,
							.len = a.size - o < req ? a.size - o : req,
							.handle = rep.handle,
							.op = RING_FETCH };

				if (hfc_submit(c, &e))
					break;
			}
			if (st.stall) {
				/* wait until the daemon drops us, bounded */
				for (int i = 0; i < timeout_ms / 100 && hfc_alive(c); i++)
					usleep(100000);
				printf("%s\n", hfc_alive(c) ? "still-connected" : "disconnected");
				_exit(0);
			}
			_exit(0); /* abandon: vanish with requests in flight */
		} else {
			fprintf(stderr, "tool_client: unknown command %s\n", cmd);
			return 2;
		}
		if (out != STDOUT_FILENO)
			close(out);
		rc = hfc_close_handle(c, rep.handle, timeout_ms);
		if (rc)
			return die("close", rc);
		close(fd);
		free(map);
	}
	hfc_close(c);
	return 0;
}
