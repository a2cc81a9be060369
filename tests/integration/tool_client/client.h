/* tool_client: what the command modules share (state of the ring callbacks, checks, raw socket
 * messages). tool_client.c holds main() and the well-behaved commands. */
#ifndef HOARDFS_TOOL_CLIENT_H
#define HOARDFS_TOOL_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/client.h"
#include "common/msg.h"
#include "common/ring.h"

#define MAX_DEPTH 256

struct state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done[MAX_DEPTH]; /* by slot: 0 waiting, 1 present, <0 error */
	bool stall;
	bool lost;
};

extern struct state st;
extern int failures;

void on_lost(void *ctx);
uint64_t now_ms(void);
/* Prints "ok: what", or a FAIL line with got/want and counts a failure. */
void check(bool ok, const char *what, long got, long want);

/* Raw socket messages (misbehave.c). */
int raw_connect(const char *path);
int raw_send(int fd, const void *buf, size_t len, const int *fds, int nfds);
int raw_req(int fd, uint16_t type, uint32_t seq, const void *p, size_t len, const int *fds,
	    int nfds);
int raw_reply(int fd, struct proto_hdr *h, int ms);
void expect_status(int fd, uint32_t seq, int want, const char *what);
bool pipe_released(int rd, int ms);
void fill_register(struct proto_register *r, const char *url, const char *endpoint);

/* Commands; each returns the exit status. */
int cmd_hostile(struct hfc *c, const struct proto_open_reply *rep, int timeout_ms);
int cmd_scribble(struct hfc *c, const struct proto_open_reply *rep,
		 const struct proto_register_reply *rr, const char *where, int timeout_ms);
int cmd_stall(struct hfc *c, const char *sock, const struct proto_open_reply *rep,
	      const struct proto_register_reply *rr, uint64_t req, int timeout_ms);
int cmd_garbage(const char *sock, const char *url, const char *endpoint, const char *path,
		const struct proto_attr *a);
int cmd_fuzz(const char *sock, struct hfc_register *reg, const char *path,
	     const struct proto_attr *a, uint64_t seed, uint64_t count, int timeout_ms);

#endif
