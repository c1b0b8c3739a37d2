/*
 * np-tamper: a byte-flipping filter for the relay path (tests only).
 *
 *   np-tamper LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT
 *       [--side c|d] [--dir up|down] [--flip OFF | --cut OFF]
 *       [--dump FILE]
 *
 * Listens, and for each connection connects to the target and passes
 * bytes both ways (a child process per connection).  A rendezvous peer
 * starts with its token line "NPSR1 SID c|d TOKEN\n" (up) and hears
 * "NPSR1 OK\n" (down); after those, the relayed stream of the peer whose
 * side is --side (default c) is tampered with in direction --dir
 * (default up: peer -> rendezvous): --flip OFF xors 0x01 into the byte
 * at offset OFF of that stream, --cut OFF closes both connections once
 * OFF bytes of it have passed and more would follow (a stream of exactly
 * OFF bytes is not cut: nothing of it is lost).  --dump FILE appends every relayed byte
 * (both directions, after the lines) of the tampered side to FILE, so a
 * test can look for plaintext on the wire.  Says "np-tamper: flipped OFF"
 * or "np-tamper: cut at OFF" on stderr when it did.  Prints "ready PORT" on stdout
 * once listening (LISTEN_PORT 0 picks one).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opts {
	const char *lhost, *lport, *thost, *tport;
	char side;
	int up;
	long long flip, cut;
	const char *dump;
};

static void
die(const char *m)
{
	fprintf(stderr, "np-tamper: %s: %s\n", m, strerror(errno));
	exit(2);
}

static int
dial(const char *host, const char *port)
{
	struct addrinfo h, *res, *ai;
	int fd = -1;

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
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) <= 0) {
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one line (up to '\n') from fd, byte by byte, and forward it. */
static int
pass_line(int from, int to, char *line, size_t len)
{
	size_t n = 0;
	char c;

	while (n + 1 < len) {
		if (recv(from, &c, 1, 0) != 1) {
			return -1;
		}
		line[n++] = c;
		if (c == '\n') {
			break;
		}
	}
	line[n] = '\0';
	return write_all(to, line, n);
}

static void
serve(const struct opts *o, int a)
{
	char line[256], buf[65536];
	struct pollfd p[2];
	int fds[2];
	long long off[2] = { 0, 0 }; /* 0: up (a -> b), 1: down */
	int b, mine, d, i, open_dirs = 3;
	FILE *dump = NULL;
	ssize_t n;

	if ((b = dial(o->thost, o->tport)) < 0) {
		exit(1);
	}
	if (pass_line(a, b, line, sizeof(line)) != 0) {
		exit(0);
	}
	mine = strncmp(line, "NPSR1 ", 6) == 0 && strlen(line) > 40 &&
	    line[39] == o->side;
	if (pass_line(b, a, line, sizeof(line)) != 0) {
		exit(0);
	}
	if (mine && o->dump != NULL) {
		dump = fopen(o->dump, "a");
	}
	d = o->up ? 0 : 1;
	fds[0] = a;
	fds[1] = b;
	while (open_dirs != 0) {
		/* A finished direction is not polled at all (a closed
		 * socket would report POLLHUP for ever). */
		p[0].fd = (open_dirs & 1) ? a : -1;
		p[1].fd = (open_dirs & 2) ? b : -1;
		p[0].events = p[1].events = POLLIN;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			break;
		}
		for (i = 0; i < 2; i++) {
			if (!(open_dirs & (1 << i)) ||
			    !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				continue;
			}
			n = recv(fds[i], buf, sizeof(buf), 0);
			if (n <= 0) {
				shutdown(fds[1 - i], SHUT_WR);
				open_dirs &= ~(1 << i);
				continue;
			}
			if (mine && i == d && o->cut >= 0 &&
			    off[i] + n > o->cut) {
				n = (ssize_t)(o->cut - off[i]);
				if (n > 0) {
					(void)write_all(fds[1 - i], buf,
					    (size_t)n);
				}
				fprintf(stderr, "np-tamper: cut at %lld\n",
				    o->cut);
				exit(0); /* both connections close */
			}
			if (mine && i == d && o->flip >= off[i] &&
			    o->flip < off[i] + n) {
				buf[o->flip - off[i]] ^= 0x01;
				fprintf(stderr, "np-tamper: flipped %lld\n",
				    o->flip);
			}
			if (dump != NULL) {
				fwrite(buf, 1, (size_t)n, dump);
				fflush(dump);
			}
			off[i] += n;
			if (write_all(fds[1 - i], buf, (size_t)n) != 0) {
				exit(0);
			}
		}
	}
	exit(0);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct addrinfo h, *res;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int l, c, i, one = 1;
	pid_t pid;

	memset(&o, 0, sizeof(o));
	o.side = 'c';
	o.up = 1;
	o.flip = o.cut = -1;
	if (argc < 5) {
		fprintf(stderr, "usage: np-tamper LHOST LPORT THOST TPORT "
		    "[--side c|d] [--dir up|down] [--flip OFF|--cut OFF] "
		    "[--dump FILE] [--once]\n");
		return 2;
	}
	o.lhost = argv[1];
	o.lport = argv[2];
	o.thost = argv[3];
	o.tport = argv[4];
	for (i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--side") == 0 && i + 1 < argc) {
			o.side = argv[++i][0];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			o.up = strcmp(argv[++i], "up") == 0;
		} else if (strcmp(argv[i], "--flip") == 0 && i + 1 < argc) {
			o.flip = atoll(argv[++i]);
		} else if (strcmp(argv[i], "--cut") == 0 && i + 1 < argc) {
			o.cut = atoll(argv[++i]);
		} else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
			o.dump = argv[++i];
		} else {
			fprintf(stderr, "np-tamper: bad option %s\n", argv[i]);
			return 2;
		}
	}
	signal(SIGCHLD, SIG_IGN); /* no zombies */
	signal(SIGPIPE, SIG_IGN);
	memset(&h, 0, sizeof(h));
	h.ai_socktype = SOCK_STREAM;
	h.ai_flags = AI_PASSIVE;
	if (getaddrinfo(o.lhost, o.lport, &h, &res) != 0) {
		fprintf(stderr, "np-tamper: cannot resolve %s\n", o.lhost);
		return 2;
	}
	if ((l = socket(res->ai_family, SOCK_STREAM, 0)) < 0) {
		die("socket");
	}
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, res->ai_addr, res->ai_addrlen) != 0 || listen(l, 64) != 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &sl) != 0) {
		die("listen");
	}
	freeaddrinfo(res);
	printf("ready %u\n", ss.ss_family == AF_INET6 ?
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
	    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	for (;;) {
		if ((c = accept(l, NULL, NULL)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			die("accept");
		}
		if ((pid = fork()) == 0) {
			close(l);
			serve(&o, c);
		}
		close(c);
	}
}
