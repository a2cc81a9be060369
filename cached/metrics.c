/* metrics: the optional Prometheus endpoint (--metrics-addr HOST:PORT): a small thread that
 * answers GET /metrics with the same text as `hoardfs-inspect stats --prometheus`. */
#include "cached/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/num.h"

struct metrics {
	pthread_t thr;
	int lfd;
	int stop[2];
};

/* Parses "127.0.0.1:9100" or "[::1]:9100". */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon;
	uint64_t port;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	if (num_parse_range(colon + 1, 1, 65535, &port))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in6);
		return 0;
	}
	return -EINVAL;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve(struct daemon *d, int fd)
{
	struct timeval tv = { 2, 0 };
	char req[4096], head[256];
	size_t got = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (got < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
		char *text = ctl_prometheus(d);
		size_t len = text ? strlen(text) : 0;
		int n = snprintf(head, sizeof(head),
				 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				 len);

		send_all(fd, head, (size_t)n);
		if (text)
			send_all(fd, text, len);
		free(text);
	} else {
		static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n"
					 "Connection: close\r\n\r\nnot found\n";

		send_all(fd, nf, sizeof(nf) - 1);
	}
}

static void *metrics_main(void *arg)
{
	struct daemon *d = arg;
	struct metrics *m = d->metrics;

	for (;;) {
		struct pollfd p[2] = { { m->lfd, POLLIN, 0 }, { m->stop[0], POLLIN, 0 } };
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(d, fd);
		close(fd);
	}
	return NULL;
}

int metrics_start(struct daemon *d)
{
	struct sockaddr_storage ss;
	struct metrics *m;
	socklen_t len;
	int one = 1, rc;

	if (!d->cfg.metrics_addr[0])
		return 0;
	if (parse_addr(d->cfg.metrics_addr, &ss, &len)) {
		log_error("--metrics-addr %s: expected HOST:PORT, e.g. 127.0.0.1:9100",
			  d->cfg.metrics_addr);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->lfd < 0 || pipe2(m->stop, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(m->lfd, (struct sockaddr *)&ss, len) < 0 || listen(m->lfd, 16) < 0) {
		rc = -errno;
		log_error("--metrics-addr %s: %s", d->cfg.metrics_addr, strerror(errno));
		goto fail;
	}
	d->metrics = m;
	rc = -pthread_create(&m->thr, NULL, metrics_main, d);
	if (!rc)
		pthread_setname_np(m->thr, "hfs-metrics");
	if (rc) {
		d->metrics = NULL;
		goto fail;
	}
	log_info("serving Prometheus metrics on http://%s/metrics", d->cfg.metrics_addr);
	return 0;
fail:
	if (m->lfd >= 0)
		close(m->lfd);
	free(m);
	return rc;
}

void metrics_stop(struct daemon *d)
{
	struct metrics *m = d->metrics;

	if (!m)
		return;
	if (write(m->stop[1], "x", 1) != 1)
		log_warn("metrics: cannot stop the thread cleanly");
	pthread_join(m->thr, NULL);
	close(m->lfd);
	close(m->stop[0]);
	close(m->stop[1]);
	free(m);
	d->metrics = NULL;
}
