/*
 * np-delay: a delay line for TCP (tests only): added latency where the
 * kernel has no netem (DESIGN.md, "Checked on this workplace's
 * machines").
 *
 *   np-delay [-l ADDR] LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
 *
 * Listens on 127.0.0.1:LISTEN_PORT (-l: another IPv4 address; port 0
 * picks one) and prints "ready PORT"
 * on stdout once listening.  Each accepted connection (a child process
 * each) is joined to a fresh connection to the target; every byte is
 * passed on DELAY_MS after it was read, in each direction, so a round
 * trip through it takes 2 * DELAY_MS more.  An end of input is passed on
 * (shutdown SHUT_WR) after the same delay.  Each direction holds at most
 * QUEUE_MAX bytes: past that it stops reading that side (backpressure).
 * SIGTERM ends the listener; children end with their connections.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX 16384
#define QUEUE_MAX (1024 * 1024)
#define DELAY_MAX 60000

struct chunk {
	struct chunk *next;
	uint64_t due;	/* monotonic ms */
	size_t len, off;
	int eof;
	char data[];
};

/* One direction: read from src, write to dst DELAY_MS later. */
struct dir {
	int src, dst;
	struct chunk *head, **tail;
	size_t bytes;
	int src_eof, done;
};

static void
die(const char *m)
{
	fprintf(stderr, "np-delay: %s: %s\n", m, strerror(errno));
	exit(2);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
dial(const char *host, const char *port)
{
	struct addrinfo h, *res, *ai;
	int fd = -1, one = 1;

	memset(&h, 0, sizeof(h));
	h.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &h, &res) != 0) {
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		if (fd >= 0) {
			close(fd);
		}
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}
	return fd;
}

static int
dir_push(struct dir *d, const char *p, size_t n, int eof, uint64_t due)
{
	struct chunk *c;

	if ((c = calloc(1, sizeof(*c) + n)) == NULL) {
		return -1;
	}
	memcpy(c->data, p, n);
	c->len = n;
	c->eof = eof;
	c->due = due;
	*d->tail = c;
	d->tail = &c->next;
	d->bytes += n;
	return 0;
}

static void
dir_pop(struct dir *d)
{
	struct chunk *c = d->head;

	d->head = c->next;
	if (d->head == NULL) {
		d->tail = &d->head;
	}
	d->bytes -= c->len;
	free(c);
}

/* Read what src has; -1 on an error. */
static int
dir_read(struct dir *d, long delay)
{
	char buf[CHUNK_MAX];
	ssize_t n;

	n = read(d->src, buf, sizeof(buf));
	if (n < 0) {
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	}
	if (n == 0) {
		d->src_eof = 1;
	}
	return dir_push(d, buf, (size_t)n, n == 0, now_ms() + (uint64_t)delay);
}

/* Write what is due; -1 on an error. */
static int
dir_write(struct dir *d, uint64_t now)
{
	struct chunk *c;
	ssize_t n;

	while ((c = d->head) != NULL && c->due <= now) {
		if (c->eof) {
			(void)shutdown(d->dst, SHUT_WR);
			d->done = 1;
			dir_pop(d);
			return 0;
		}
		n = send(d->dst, c->data + c->off, c->len - c->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			return errno == EINTR || errno == EAGAIN ? 0 : -1;
		}
		c->off += (size_t)n;
		if (c->off < c->len) {
			return 0;
		}
		dir_pop(d);
	}
	return 0;
}

static void
pump(int a, int b, long delay)
{
	struct dir d[2];
	struct pollfd pfd[4];
	uint64_t now;
	int i, ms;

	memset(d, 0, sizeof(d));
	d[0].src = d[1].dst = a;
	d[0].dst = d[1].src = b;
	d[0].tail = &d[0].head;
	d[1].tail = &d[1].head;
	while (!d[0].done || !d[1].done) {
		now = now_ms();
		ms = -1;
		for (i = 0; i < 2; i++) {
			pfd[2 * i].fd = d[i].src;
			pfd[2 * i].events = !d[i].src_eof &&
			    d[i].bytes < QUEUE_MAX ? POLLIN : 0;
			pfd[2 * i + 1].fd = d[i].dst;
			pfd[2 * i + 1].events = 0;
			pfd[2 * i].revents = pfd[2 * i + 1].revents = 0;
			if (d[i].head == NULL) {
				continue;
			}
			if (d[i].head->due <= now) {
				pfd[2 * i + 1].events = POLLOUT;
			} else if (ms < 0 || d[i].head->due - now <
			    (uint64_t)ms) {
				ms = (int)(d[i].head->due - now);
			}
		}
		if (poll(pfd, 4, ms) < 0 && errno != EINTR) {
			return;
		}
		now = now_ms();
		for (i = 0; i < 2; i++) {
			if ((pfd[2 * i].revents & (POLLIN | POLLHUP |
			    POLLERR)) != 0 && !d[i].src_eof &&
			    dir_read(&d[i], delay) != 0) {
				return;
			}
			if (dir_write(&d[i], now) != 0) {
				return;
			}
		}
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	const char *laddr = "127.0.0.1";
	char *end;
	long delay, lport;
	int lfd, cfd, tfd, one = 1;

	if (argc == 7 && strcmp(argv[1], "-l") == 0) {
		laddr = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: np-delay [-l ADDR] LISTEN_PORT "
		    "TARGET_HOST TARGET_PORT DELAY_MS\n");
		return 2;
	}
	lport = strtol(argv[1], &end, 10);
	if (*end != '\0' || lport < 0 || lport > 65535) {
		fprintf(stderr, "np-delay: bad port %s\n", argv[1]);
		return 2;
	}
	delay = strtol(argv[4], &end, 10);
	if (*end != '\0' || delay < 0 || delay > DELAY_MAX) {
		fprintf(stderr, "np-delay: bad delay %s (0..%d ms)\n", argv[4],
		    DELAY_MAX);
		return 2;
	}
	signal(SIGCHLD, SIG_IGN);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		die("socket");
	}
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, laddr, &sin.sin_addr) != 1) {
		fprintf(stderr, "np-delay: bad address %s\n", laddr);
		return 2;
	}
	sin.sin_port = htons((uint16_t)lport);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0) {
		die("listen");
	}
	printf("ready %u\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		if ((cfd = accept(lfd, NULL, NULL)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			die("accept");
		}
		if (fork() == 0) {
			close(lfd);
			(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			if ((tfd = dial(argv[2], argv[3])) < 0) {
				_exit(1);
			}
			pump(cfd, tfd, delay);
			_exit(0);
		}
		close(cfd);
	}
}
