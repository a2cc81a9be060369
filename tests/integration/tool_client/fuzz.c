/* tool_client: randomized, reproducible fuzzing of socket messages and ring entries.
 * See tool_client.c for the command. */

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

#include "tool_client/client.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static const uint64_t interesting[] = {
	0,
	1,
	2,
	3,
	7,
	8,
	0x7f,
	0x80,
	0xff,
	0x100,
	0xfff,
	0x1000,
	0x7fff,
	0x8000,
	0xffff,
	0x10000,
	0x100000,
	0x4000000,
	PROTO_MSG_MAX,
	PROTO_PATH_MAX,
	0x7fffffff,
	0x80000000,
	0xffffffff,
	0x100000000,
	INT64_MAX,
	(uint64_t)INT64_MIN,
	UINT64_MAX - 1,
	UINT64_MAX,
};

static uint64_t rnd_interesting(void)
{
	return interesting[rnd_below(sizeof(interesting) / sizeof(interesting[0]))];
}

/* Applies 0-3 random mutations to buf[0..*len) (capacity cap). */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
	int k = (int)rnd_below(4);

	for (int i = 0; i < k; i++) {
		uint64_t v = rnd_interesting();
		size_t n = *len, at = n ? (size_t)rnd_below(n) : 0;

		switch (rnd_below(6)) {
		case 0: /* bit flip */
			if (n)
				buf[at] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1: /* a byte with a boundary value */
			if (n)
				buf[at] = (uint8_t)v;
			break;
		case 2: /* an aligned 32-bit field with a boundary value */
			if (n >= 4) {
				uint32_t w = (uint32_t)v;

				at = (size_t)rnd_below(n / 4) * 4;
				memcpy(buf + at, &w, 4);
			}
			break;
		case 3: /* an aligned 64-bit field with a boundary value */
			if (n >= 8) {
				at = (size_t)rnd_below(n / 8) * 8;
				memcpy(buf + at, &v, 8);
			}
			break;
		case 4: /* truncation */
			*len = (size_t)rnd_below(n + 1);
			break;
		default: /* extension with random bytes */
			for (size_t e = (size_t)rnd_below(512); e && *len < cap; e--)
				buf[(*len)++] = (uint8_t)rnd();
			break;
		}
	}
}

/* A valid request payload of a random type into p (capacity cap); returns its type. */
static uint16_t fuzz_template(uint8_t *p, size_t cap, size_t *len, const char *url,
			      const char *endpoint, const char *path, const struct proto_attr *a)
{
	static const char *const paths[] = { "", "a", "x/y", "no-such-object", "..", "a/../b" };
	const char *pth = rnd_below(2) ? path : paths[rnd_below(6)];
	size_t pl = strlen(pth);
	char json[512];

	*len = 0;
	switch (rnd_below(9)) {
	case 0:
		return PROTO_PING;
	case 1: {
		struct proto_register *r = (struct proto_register *)(void *)p;

		if (cap < sizeof(*r))
			return PROTO_PING;
		fill_register(r, url, endpoint);
		*len = sizeof(*r);
		return PROTO_REGISTER;
	}
	case 2:
	case 3: {
		struct proto_path pp = { .path_len = (uint32_t)pl };
		struct proto_list pli = { .cursor = rnd_below(2) ? 0 : rnd_interesting(),
					  .path_len = (uint32_t)pl };
		bool list = rnd_below(2);
		size_t hl = list ? sizeof(pli) : sizeof(pp);

		memcpy(p, list ? (void *)&pli : (void *)&pp, hl);
		memcpy(p + hl, pth, pl);
		*len = hl + pl;
		return list ? PROTO_LIST : PROTO_LOOKUP;
	}
	case 4: {
		struct proto_open po = { .size = a->size, .path_len = (uint32_t)strlen(path) };

		snprintf(po.version, sizeof(po.version), "%s", a->version);
		memcpy(p, &po, sizeof(po));
		memcpy(p + sizeof(po), path, po.path_len);
		*len = sizeof(po) + po.path_len;
		return PROTO_OPEN;
	}
	case 5: {
		struct proto_close cl = { .handle = (uint32_t)rnd_below(8) };

		memcpy(p, &cl, sizeof(cl));
		*len = sizeof(cl);
		return PROTO_CLOSE;
	}
	case 6: {
		struct proto_bdi b = { .major = 0,
				       .minor = (uint32_t)rnd_below(64),
				       .read_ahead_kb = (uint32_t)rnd_interesting() };

		memcpy(p, &b, sizeof(b));
		*len = sizeof(b);
		return PROTO_BDI;
	}
	case 7:
		switch (rnd_below(5)) {
		case 0:
			snprintf(json, sizeof(json), "{\"cmd\":\"status\"}");
			break;
		case 1:
			snprintf(json, sizeof(json),
				 "{\"cmd\":\"stats\",\"format\":\"prometheus\"}");
			break;
		case 2:
			snprintf(json, sizeof(json), "{\"cmd\":\"ls\",\"url\":\"%s/\"}", url);
			break;
		case 3:
			snprintf(json, sizeof(json), "{\"cmd\":\"stat\",\"url\":\"%s/%s\"}", url,
				 pth);
			break;
		default:
			snprintf(json, sizeof(json), "{\"cmd\":\"job\",\"job\":%d}",
				 (int)rnd_below(4));
			break;
		}
		*len = strlen(json);
		memcpy(p, json, *len);
		return PROTO_CTL;
	default:
		return (uint16_t)rnd();
	}
}

struct fuzz_ring {
	uint8_t *state; /* by id: 0 nothing expected, 1 waiting, 2 answered, 3 abandoned */
	uint64_t n, outstanding, completions, unexpected;
};

static struct fuzz_ring fr;

static void fuzz_complete(void *ctx, const struct ring_entry *e)
{
	(void)ctx;
	pthread_mutex_lock(&st.lock);
	fr.completions++;
	if (e->op == RING_REVOKE) {
		/* not an answer to a request */
	} else if (e->id >= fr.n || (fr.state[e->id] != 1 && fr.state[e->id] != 3)) {
		if (fr.unexpected++ < 5)
			printf("FAIL: completion op %u for id %" PRIu64 " (state %d)\n", e->op,
			       e->id, e->id < fr.n ? fr.state[e->id] : -1);
	} else if (!(e->op == RING_PRESENT && (e->flags & RING_F_PARTIAL))) {
		if (fr.state[e->id] == 1)
			fr.outstanding--;
		fr.state[e->id] = 2;
	}
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static void fuzz_lost(void *ctx)
{
	on_lost(ctx);
}

/* Connects, registers and opens path for the ring fuzzer. */
static int fuzz_connect(const char *sock, struct hfc_register *reg, const char *path,
			struct hfc **c, struct proto_open_reply *rep, uint8_t **map, int *fd,
			int timeout_ms)
{
	struct proto_register_reply rr;
	struct proto_attr a;
	int rc;

	pthread_mutex_lock(&st.lock);
	st.lost = false;
	pthread_mutex_unlock(&st.lock);
	rc = hfc_connect(sock, c);
	if (!rc)
		rc = hfc_register(*c, reg, timeout_ms, &rr);
	if (!rc)
		rc = hfc_lookup(*c, path, timeout_ms, &a);
	if (!rc)
		rc = hfc_open(*c, path, a.version, a.size, 0, timeout_ms, rep, map, fd);
	return rc;
}

int cmd_fuzz(const char *sock, struct hfc_register *reg, const char *path,
	     const struct proto_attr *a, uint64_t seed, uint64_t count, int timeout_ms)
{
	size_t cap = sizeof(struct proto_hdr) + sizeof(struct proto_register) + 4096;
	uint8_t *buf = malloc(cap);
	uint64_t replies = 0, drops = 0, reconnects = 0, kept = 0;
	int fd = -1, p[2];
	struct hfc *c = NULL;
	struct proto_open_reply rep;
	uint8_t *map = NULL;
	int ofd = -1, rc;

	rng = seed * 2654435761u + 1;
	if (!buf || pipe2(p, O_CLOEXEC) < 0)
		return 1;
	printf("fuzz: seed %" PRIu64 ", %" PRIu64 " messages and ring entries\n", seed, count);

	/* Socket messages. */
	for (uint64_t i = 0; i < count; i++) {
		struct proto_hdr h = { .magic = PROTO_MAGIC, .seq = (uint32_t)(i + 1) };
		size_t len, total;
		int fds[3] = { p[1], p[1], p[1] }, nfds = 0;
		struct proto_hdr rh;

		if (fd < 0 && (fd = raw_connect(sock)) < 0) {
			check(false, "connect to the daemon", fd, 0);
			break;
		}
		h.type = fuzz_template(buf + sizeof(h), cap - sizeof(h) - 512, &len, reg->url,
				       reg->endpoint, path, a);
		mutate(buf + sizeof(h), &len, cap - sizeof(h));
		h.len = (uint32_t)len;
		if (rnd_below(16) == 0)
			h.len = (uint32_t)rnd_interesting();
		if (rnd_below(16) == 0)
			h.type = (uint16_t)rnd_interesting();
		if (rnd_below(64) == 0)
			h.magic ^= (uint32_t)(1u << rnd_below(32));
		if (rnd_below(32) == 0)
			h.flags = (uint16_t)rnd();
		memcpy(buf, &h, sizeof(h));
		total = sizeof(h) + len;
		if (rnd_below(32) == 0)
			total = (size_t)rnd_below(total + 1); /* a runt */
		if (rnd_below(32) == 0)
			nfds = 1 + (int)rnd_below(3);
		rc = raw_send(fd, buf, total, nfds ? fds : NULL, nfds);
		if (rc == -EPIPE || rc == -ECONNRESET) {
			close(fd);
			fd = -1;
			drops++;
			continue;
		}
		rc = raw_reply(fd, &rh, 15000);
		if (rc == 1 && rh.seq == h.seq) {
			replies++;
		} else if (rc == 1) {
			printf("FAIL: message %" PRIu64 " (type %u): a reply to seq %u, not %u\n",
			       i, h.type, rh.seq, h.seq);
			failures++;
			close(fd);
			fd = -1;
		} else if (rc == 0 || rc == -ECONNRESET) {
			close(fd);
			fd = -1;
			drops++;
		} else {
			printf("FAIL: message %" PRIu64 " (type %u, %zu bytes): no reply and no "
			       "disconnect in 15 s (%s)\n",
			       i, h.type, total, strerror(-rc));
			failures++;
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	printf("fuzz: messages: %" PRIu64 " replies, %" PRIu64 " disconnects\n", replies, drops);
	check(replies > count / 4, "most fuzzed messages were answered", (long)replies,
	      (long)(count / 4));
	check(drops > 0, "some fuzzed messages got the connection dropped", (long)drops, 1);
	close(p[1]);
	check(pipe_released(p[0], 10000), "no descriptor attached to a fuzzed message kept", 0, 0);
	close(p[0]);

	/* Ring entries. */
	fr.n = count;
	fr.state = calloc(count ? count : 1, 1);
	if (!fr.state)
		return 1;
	reg->on_complete = fuzz_complete;
	reg->on_lost = fuzz_lost;
	for (uint64_t i = 0; i < count; i++) {
		struct ring_entry e = { .id = i };
		uint64_t r = rnd_below(100), size = a->size;

		if (!c || !hfc_alive(c)) {
			if (c) {
				pthread_mutex_lock(&st.lock);
				for (uint64_t j = 0; j < i; j++) {
					if (fr.state[j] == 1) {
						fr.state[j] = 3;
						fr.outstanding--;
					}
				}
				pthread_mutex_unlock(&st.lock);
				hfc_close(c);
				close(ofd);
				free(map);
				c = NULL;
				reconnects++;
			}
			rc = fuzz_connect(sock, reg, path, &c, &rep, &map, &ofd, timeout_ms);
			if (rc) {
				check(false, "reconnect for the ring fuzzer", rc, 0);
				break;
			}
		}
		e.op = r < 60	? RING_FETCH
		       : r < 80 ? RING_PREFETCH
		       : r < 85 ? RING_REVOKE_ACK
				: (uint16_t)rnd();
		e.handle = rnd_below(5) ? rep.handle : (uint32_t)rnd_interesting();
		switch (rnd_below(4)) {
		case 0:
		case 1:
			e.off = rnd_below(size);
			e.len = 1 + rnd_below(size - e.off < (4u << 20) ? size - e.off : 4u << 20);
			break;
		case 2: {
			static const int64_t offs[] = { -1, 0, 1 };

			e.off = size + (uint64_t)offs[rnd_below(3)];
			e.len = rnd_below(3);
			break;
		}
		default:
			e.off = rnd_interesting();
			e.len = rnd_interesting();
			break;
		}
		if (rnd_below(4) == 0) {
			e.flags = (uint16_t)rnd();
			e.status = (int32_t)rnd();
			e.reserved[rnd_below(7)] = (uint32_t)rnd();
		}
		pthread_mutex_lock(&st.lock);
		if (e.op != RING_REVOKE_ACK) {
			fr.state[i] = 1;
			fr.outstanding++;
		}
		/* At most 32 unanswered; each must be answered within the timeout. */
		{
			struct timespec dl;

			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += timeout_ms / 1000;
			while (fr.outstanding > 32 && !st.lost &&
			       pthread_cond_timedwait(&st.cond, &st.lock, &dl) != ETIMEDOUT)
				;
			if (fr.outstanding > 32 && !st.lost) {
				printf("FAIL: entry %" PRIu64
				       ": 32 requests unanswered for %d ms\n",
				       i, timeout_ms);
				failures++;
				pthread_mutex_unlock(&st.lock);
				break;
			}
		}
		pthread_mutex_unlock(&st.lock);
		while ((rc = hfc_submit(c, &e)) == -EAGAIN)
			usleep(1000);
		if (rc) { /* lost: nothing is expected of this one */
			pthread_mutex_lock(&st.lock);
			if (fr.state[i] == 1) {
				fr.state[i] = 0;
				fr.outstanding--;
			}
			pthread_mutex_unlock(&st.lock);
		}
	}
	/* Everything still waiting on a live connection must be answered. */
	if (c && hfc_alive(c)) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += timeout_ms / 1000;
		pthread_mutex_lock(&st.lock);
		while (fr.outstanding && !st.lost &&
		       pthread_cond_timedwait(&st.cond, &st.lock, &dl) != ETIMEDOUT)
			;
		kept = st.lost ? 0 : fr.outstanding;
		pthread_mutex_unlock(&st.lock);
	}
	printf("fuzz: ring: %" PRIu64 " completions, %" PRIu64 " reconnects\n", fr.completions,
	       reconnects);
	check(kept == 0, "every fuzzed FETCH/PREFETCH answered", (long)kept, 0);
	check(fr.unexpected == 0, "no completion for an id never submitted or already answered",
	      (long)fr.unexpected, 0);
	check(reconnects > 0, "the daemon dropped the fuzzer for invalid entries", (long)reconnects,
	      1);
	if (c) {
		hfc_close(c);
		close(ofd);
		free(map);
	}
	/* Alive and answering. */
	fd = raw_connect(sock);
	if (fd >= 0) {
		raw_req(fd, PROTO_PING, 1, NULL, 0, NULL, 0);
		expect_status(fd, 1, 0, "the daemon answers a PING after the fuzzing");
		close(fd);
	} else {
		check(false, "connect to the daemon after the fuzzing", fd, 0);
	}
	free(fr.state);
	free(buf);
	return failures ? 1 : 0;
}
