/*
 * np tunnel DEVICE -L [BIND:]LPORT:HOST:PORT [-L ...] [-q] [--once]:
 * local ports to TCP services the device reaches (docs/CLI.md).
 *
 * Every accepted local connection gets its own session, set up and
 * relayed by a child process (fork, no exec): its own control-plane
 * connection, its own rendezvous session, its own relay keys.  The
 * device connects to HOST:PORT when its PermitOpen allows it and says
 * why not otherwise.  A child cannot disturb the listener or the other
 * connections, and a slow set-up holds up nobody.  The parent only
 * listens, forks and reaps; SIGINT / SIGTERM end the children too.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "relay.h"
#include "session.h"

#define TUNNEL_USAGE "np [-F CONFIG] [-v] tunnel DEVICE " \
	"-L [BIND:]LPORT:HOST:PORT [-L ...] [-q] [--once]\n" \
	"         [--no-relay-encryption]"
#define TUNNEL_FWD_MAX 16	/* -L options */
#define TUNNEL_LISTEN_MAX 32	/* listening sockets */
#define TUNNEL_CHILDREN_MAX 256	/* connections at once */
#define TUNNEL_HOST_MAX NP_TUNNEL_HOST_MAX
#define TUNNEL_STOP_MS 3000	/* children get this long after SIGTERM */
#define TUNNEL_PAUSE_MS 100	/* no accepting this long after EMFILE */

struct fwd {
	char bind[TUNNEL_HOST_MAX + 1];	/* "" : loopback; "*": all */
	uint16_t lport;
	char host[TUNNEL_HOST_MAX + 1];
	uint16_t port;
};

struct lsock {
	int fd;
	const struct fwd *f;
	char name[TUNNEL_HOST_MAX + 16]; /* what it listens on */
};

struct tun {
	struct np_cli *cli;
	struct np_target t;
	struct fwd fwd[TUNNEL_FWD_MAX];
	int nfwd;
	struct lsock ls[TUNNEL_LISTEN_MAX];
	int nls;
	int quiet, once;
	int plain;		/* --no-relay-encryption */
	int nchild;
	pid_t kids[TUNNEL_CHILDREN_MAX]; /* 0: free slot */
	pid_t once_pid;		/* --once: the one connection's child */
	int rc;
	int stopping;
	uint64_t stop_timer;
	uint64_t pause_timer;
	unsigned long nconn;
};

/* ---- -L ---- */

/*
 * Split at the colons that are outside [...], taking the brackets off:
 * "[::1]:8080:localhost:80" -> "::1" "8080" "localhost" "80".  At most
 * max fields; -1 for more or a bracket that does not close.
 */
static int
split_spec(char *s, char **f, int max)
{
	int n = 0;
	char *p = s, *e;

	for (;;) {
		if (n == max) {
			return -1;
		}
		if (*p == '[') {
			if ((e = strchr(p, ']')) == NULL ||
			    (e[1] != ':' && e[1] != '\0')) {
				return -1;
			}
			*e = '\0';
			f[n++] = p + 1;
			p = e + 1;
		} else {
			f[n++] = p;
			p += strcspn(p, ":");
		}
		if (*p == '\0') {
			return n;
		}
		*p++ = '\0';
	}
}

/* Pure apart from messages: one -L value into f. */
static int
fwd_parse(const char *spec, struct fwd *f)
{
	char buf[2 * TUNNEL_HOST_MAX + 32], *v[4];
	int n, i = 0;
	long lp;

	memset(f, 0, sizeof(*f));
	if (strlen(spec) >= sizeof(buf)) {
		cli_err("-L %.40s...: too long", spec);
		return -1;
	}
	memcpy(buf, spec, strlen(spec) + 1);
	n = split_spec(buf, v, 4);
	if (n != 3 && n != 4) {
		cli_err("-L %.80s: want [BIND:]LPORT:HOST:PORT (IPv6 "
		    "addresses in [...])", spec);
		return -1;
	}
	if (n == 4) {
		if (v[0][0] != '\0' && strcmp(v[0], "*") != 0 &&
		    strcmp(v[0], "localhost") != 0 &&
		    !np_tunnel_host_valid(v[0], strlen(v[0]))) {
			cli_err("-L %.80s: bad bind address", spec);
			return -1;
		}
		snprintf(f->bind, sizeof(f->bind), "%s", v[0][0] == '\0' ?
		    "*" : strcmp(v[0], "localhost") == 0 ? "" : v[0]);
		i = 1;
	}
	if (cli_parse_long(v[i], 0, 65535, &lp) != 0) {
		cli_err("-L %.80s: bad local port '%.16s'", spec, v[i]);
		return -1;
	}
	f->lport = (uint16_t)lp;
	if (!np_tunnel_host_valid(v[i + 1], strlen(v[i + 1]))) {
		cli_err("-L %.80s: bad host '%.64s'", spec, v[i + 1]);
		return -1;
	}
	snprintf(f->host, sizeof(f->host), "%s", v[i + 1]);
	if (np_port_parse(v[i + 2], &f->port) != 0) {
		cli_err("-L %.80s: bad port '%.16s' (want 1..65535)", spec,
		    v[i + 2]);
		return -1;
	}
	return 0;
}

/* ---- listening ---- */

static void
addr_name(const struct sockaddr *sa, char *out, size_t len)
{
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
		port = ntohs(s6->sin6_port);
		snprintf(out, len, "[%s]:%u", h, port);
		return;
	}
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
		port = ntohs(s4->sin_port);
	}
	snprintf(out, len, "%s:%u", h, port);
}

/* Listen on one address; the bound port in *port.  -1: errno. */
static int
listen_on(struct tun *tn, const struct fwd *f, const struct sockaddr *sa,
    socklen_t sl, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	struct lsock *ls;
	int fd, one = 1, zero = 0;

	if (tn->nls >= TUNNEL_LISTEN_MAX) {
		errno = EMFILE;
		return -1;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6) {
		/* "*" listens on both families through one socket. */
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
		    strcmp(f->bind, "*") == 0 ? &zero : &one, sizeof(one));
	}
	if (bind(fd, sa, sl) != 0 || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &l) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	ls = &tn->ls[tn->nls++];
	ls->fd = fd;
	ls->f = f;
	addr_name((struct sockaddr *)&ss, ls->name, sizeof(ls->name));
	*port = ss.ss_family == AF_INET6 ?
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
	    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void
sa_loopback(int family, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *sl)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		*sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		*sl = sizeof(*s4);
	}
}

/*
 * The sockets of one -L: loopback (127.0.0.1, then ::1 on the same port
 * when it can be had), all addresses for "*", else what BIND names.
 */
static int
fwd_listen(struct tun *tn, const struct fwd *f)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl;
	uint16_t port = f->lport;
	char pstr[8];
	int n0 = tn->nls;

	if (f->bind[0] == '\0') {
		sa_loopback(AF_INET, port, &ss, &sl);
		if (listen_on(tn, f, (struct sockaddr *)&ss, sl, &port) != 0) {
			cli_err("cannot listen on 127.0.0.1:%u: %s",
			    (unsigned)f->lport, strerror(errno));
			return -1;
		}
		sa_loopback(AF_INET6, port, &ss, &sl);
		(void)listen_on(tn, f, (struct sockaddr *)&ss, sl, &port);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(pstr, sizeof(pstr), "%u", (unsigned)f->lport);
	if (getaddrinfo(strcmp(f->bind, "*") == 0 ? "::" : f->bind, pstr,
	    &hints, &res) != 0) {
		cli_err("cannot resolve the bind address '%s'", f->bind);
		return -1;
	}
	for (ai = res; ai != NULL && tn->nls == n0; ai = ai->ai_next) {
		(void)listen_on(tn, f, ai->ai_addr, ai->ai_addrlen, &port);
	}
	freeaddrinfo(res);
	if (tn->nls == n0 && strcmp(f->bind, "*") == 0) {
		struct sockaddr_in s4;

		memset(&s4, 0, sizeof(s4)); /* no IPv6 here: 0.0.0.0 */
		s4.sin_family = AF_INET;
		s4.sin_port = htons(f->lport);
		(void)listen_on(tn, f, (struct sockaddr *)&s4, sizeof(s4),
		    &port);
	}
	if (tn->nls == n0) {
		cli_err("cannot listen on %s port %u: %s", f->bind,
		    (unsigned)f->lport, strerror(errno));
		return -1;
	}
	return 0;
}

static void
close_listeners(struct tun *tn)
{
	int i;

	for (i = 0; i < tn->nls; i++) {
		if (tn->ls[i].fd >= 0) {
			if (tn->cli->ev != NULL) {
				(void)np_ev_del(tn->cli->ev, tn->ls[i].fd);
			}
			close(tn->ls[i].fd);
			tn->ls[i].fd = -1;
		}
	}
}

/* ---- one connection, in the child ---- */

static void
child_signals(void)
{
	sigset_t all;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
}

static void __attribute__((noreturn))
child_run(struct tun *tn, int cfd, const struct fwd *f)
{
	struct np_cli *cli = tn->cli;
	struct np_relay_end a, b;
	struct np_session s;
	struct np_want w;
	int one = 1, rc = NP_EXIT_FAIL;

	/*
	 * The epoll instance is the parent's too: a EPOLL_CTL_DEL from here
	 * would take the parent's listeners out of it.  Drop our copy of
	 * its fd first, then close the listeners without touching it.
	 */
	np_ev_free(cli->ev);
	cli->ev = NULL;
	close_listeners(tn);
	cli->ev = np_ev_new();
	child_signals();
	cli->t0 = np_now_mono_ms();
	if (cli->ev == NULL || fcntl(cfd, F_SETFL, O_NONBLOCK) != 0) {
		cli_err("%s: cannot start a session: out of resources",
		    tn->t.host);
		_exit(NP_EXIT_FAIL);
	}
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&w, 0, sizeof(w));
	w.tunnel = 1;
	w.host = f->host;
	w.port = f->port;
	w.enc = !tn->plain;
	cli_step(cli, "%s: tunnel to %s port %u", tn->t.host, f->host,
	    (unsigned)f->port);
	if (np_session_open(cli, &tn->t, &w, &s) == NP_OK) {
		a.rfd = a.wfd = cfd;
		b.rfd = b.wfd = s.fd;
		if (np_session_relay(cli, tn->t.host, &s, a, b) == 0) {
			rc = NP_EXIT_OK;
		}
		np_session_close(&s);
	}
	close(cfd);
	np_ev_free(cli->ev);
	cli->ev = NULL;
	fflush(NULL);
	_exit(rc);
}

/* ---- the parent ---- */

static void accept_cb(struct np_ev *, int, uint32_t, void *);

static void
accept_resume(struct np_ev *ev, uint64_t id, void *arg)
{
	struct tun *tn = arg;
	int i;

	tn->pause_timer = 0;
	for (i = 0; i < tn->nls; i++) {
		if (tn->ls[i].fd >= 0) {
			(void)np_ev_add(ev, tn->ls[i].fd, NP_EV_READ, accept_cb,
			    tn);
		}
	}
}

/* Out of fds or memory: stop accepting for TUNNEL_PAUSE_MS. */
static void
accept_pause(struct tun *tn)
{
	int i;

	if (tn->pause_timer != 0) {
		return;
	}
	cli_err("cannot accept a connection: %s; pausing %d ms",
	    strerror(errno), TUNNEL_PAUSE_MS);
	for (i = 0; i < tn->nls; i++) {
		if (tn->ls[i].fd >= 0) {
			(void)np_ev_del(tn->cli->ev, tn->ls[i].fd);
		}
	}
	tn->pause_timer = np_ev_timer_add(tn->cli->ev, TUNNEL_PAUSE_MS,
	    accept_resume, tn);
	if (tn->pause_timer == 0) {
		accept_resume(tn->cli->ev, 0, tn); /* no timer: no pause */
	}
}

static void kid_add(struct tun *, pid_t);

static void
accept_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct tun *tn = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct lsock *ls = NULL;
	char from[INET6_ADDRSTRLEN + 16];
	pid_t pid;
	int i, cfd;

	for (i = 0; i < tn->nls; i++) {
		if (tn->ls[i].fd == fd) {
			ls = &tn->ls[i];
		}
	}
	if (ls == NULL) {
		return;
	}
	if ((cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC)) <
	    0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			accept_pause(tn); /* back off instead of spinning */
		}
		return;
	}
	addr_name((struct sockaddr *)&ss, from, sizeof(from));
	if (tn->nchild >= TUNNEL_CHILDREN_MAX) {
		cli_err("%s: refusing the connection from %s: %d connections "
		    "at once already", ls->name, from, TUNNEL_CHILDREN_MAX);
		close(cfd);
		return;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		cli_err("%s: cannot fork for the connection from %s: %s",
		    ls->name, from, strerror(errno));
		close(cfd);
		return;
	}
	if (pid == 0) {
		child_run(tn, cfd, ls->f);
	}
	close(cfd);
	kid_add(tn, pid);
	tn->nconn++;
	if (!tn->quiet) {
		cli_err("%s -> %s port %u: connection %lu from %s", ls->name,
		    ls->f->host, (unsigned)ls->f->port, tn->nconn, from);
	}
	if (tn->once) {
		tn->once_pid = pid;
		close_listeners(tn); /* later connections are refused */
	}
}

static void
kill_kids(struct tun *tn, int sig)
{
	int i;

	for (i = 0; i < TUNNEL_CHILDREN_MAX; i++) {
		if (tn->kids[i] > 0) {
			(void)kill(tn->kids[i], sig);
		}
	}
}

static void
stop_now(struct np_ev *ev, uint64_t id, void *arg)
{
	struct tun *tn = arg;

	tn->stop_timer = 0;
	kill_kids(tn, SIGKILL); /* the reaper ends the loop */
}

static void
kid_add(struct tun *tn, pid_t pid)
{
	int i;

	for (i = 0; i < TUNNEL_CHILDREN_MAX; i++) {
		if (tn->kids[i] == 0) {
			tn->kids[i] = pid;
			tn->nchild++;
			return;
		}
	}
}

static void
kid_gone(struct tun *tn, pid_t pid)
{
	int i;

	for (i = 0; i < TUNNEL_CHILDREN_MAX; i++) {
		if (tn->kids[i] == pid) {
			tn->kids[i] = 0;
			tn->nchild--;
			return;
		}
	}
}

static void
reap(struct np_ev *ev, int signo, void *arg)
{
	struct tun *tn = arg;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		kid_gone(tn, pid);
		if (pid == tn->once_pid) {
			tn->rc = WIFEXITED(st) ? WEXITSTATUS(st) :
			    NP_EXIT_FAIL;
			tn->stopping = 1;
		}
	}
	if (tn->stopping && tn->nchild == 0) {
		np_ev_stop(ev);
	}
}

static void
on_stop(struct np_ev *ev, int signo, void *arg)
{
	struct tun *tn = arg;

	if (tn->stopping) {
		return;
	}
	tn->stopping = 1;
	close_listeners(tn);
	if (tn->nchild == 0) {
		np_ev_stop(ev);
		return;
	}
	kill_kids(tn, SIGTERM); /* the reaper counts them back */
	tn->stop_timer = np_ev_timer_add(ev, TUNNEL_STOP_MS, stop_now, tn);
}

static int
tunnel_opts(struct tun *tn, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-L") == 0 && i + 1 < argc) {
			if (tn->nfwd == TUNNEL_FWD_MAX) {
				cli_err("at most %d -L options",
				    TUNNEL_FWD_MAX);
				return -1;
			}
			if (fwd_parse(argv[++i], &tn->fwd[tn->nfwd]) != 0) {
				return -1;
			}
			tn->nfwd++;
		} else if (strncmp(argv[i], "-L", 2) == 0 && argv[i][2]) {
			if (tn->nfwd == TUNNEL_FWD_MAX ||
			    fwd_parse(argv[i] + 2, &tn->fwd[tn->nfwd]) != 0) {
				return -1;
			}
			tn->nfwd++;
		} else if (strcmp(argv[i], "-q") == 0 ||
		    strcmp(argv[i], "-N") == 0) {
			tn->quiet = 1;
		} else if (strcmp(argv[i], "--once") == 0) {
			tn->once = 1;
		} else if (strcmp(argv[i], "--no-relay-encryption") == 0) {
			tn->plain = 1;
		} else if (argv[i][0] != '-' && tn->t.host[0] == '\0') {
			char why[256];

			if (np_target_resolve(argv[i], tn->cli->cfg.aliases,
			    tn->cli->cfg.naliases, &tn->t, why, sizeof(why)) !=
			    NP_OK) {
				cli_err("bad device name '%.80s': %s", argv[i],
				    why);
				return -1;
			}
		} else {
			(void)cli_usage(TUNNEL_USAGE);
			return -2;
		}
	}
	if (tn->t.host[0] == '\0' || tn->nfwd == 0) {
		(void)cli_usage(TUNNEL_USAGE);
		return -2;
	}
	return 0;
}

static int
tunnel_listen_all(struct tun *tn)
{
	int i, j, n0;

	for (i = 0; i < tn->nfwd; i++) {
		n0 = tn->nls;
		if (fwd_listen(tn, &tn->fwd[i]) != 0) {
			return -1;
		}
		for (j = n0; j < tn->nls; j++) {
			if (np_ev_add(tn->cli->ev, tn->ls[j].fd, NP_EV_READ,
			    accept_cb, tn) != NP_OK) {
				cli_err("event loop: cannot watch %s",
				    tn->ls[j].name);
				return -1;
			}
			if (!tn->quiet) {
				printf("listening on %s for %s port %u of "
				    "%s\n", tn->ls[j].name, tn->fwd[i].host,
				    (unsigned)tn->fwd[i].port, tn->t.host);
			}
		}
	}
	fflush(stdout);
	return 0;
}

int
cmd_tunnel(struct np_cli *cli, int argc, char **argv)
{
	struct tun *tn;
	int r, rc = NP_EXIT_FAIL;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		printf("usage: %s\n", TUNNEL_USAGE);
		return NP_EXIT_OK;
	}
	if (cli->ev == NULL) {
		return cli_usage(TUNNEL_USAGE);
	}
	if ((tn = calloc(1, sizeof(*tn))) == NULL) {
		cli_err("out of memory");
		return NP_EXIT_FAIL;
	}
	tn->cli = cli;
	if ((r = tunnel_opts(tn, argc, argv)) != 0) {
		free(tn);
		return r == -2 ? NP_EXIT_USAGE : NP_EXIT_FAIL;
	}
	if (cli->cfg.rendezvous == NULL) {
		cli_err("no Rendezvous configured (set 'Rendezvous @sr' in "
		    "%s)", cli->config_path != NULL ? cli->config_path :
		    "the config");
		goto out;
	}
	if (np_ev_signal_add(cli->ev, SIGCHLD, reap, tn) != NP_OK ||
	    np_ev_signal_add(cli->ev, SIGINT, on_stop, tn) != NP_OK ||
	    np_ev_signal_add(cli->ev, SIGTERM, on_stop, tn) != NP_OK ||
	    np_ev_signal_add(cli->ev, SIGHUP, on_stop, tn) != NP_OK) {
		cli_err("cannot set up signal handling");
		goto out;
	}
	if (tunnel_listen_all(tn) != 0) {
		goto out;
	}
	tn->rc = NP_EXIT_OK;
	if ((r = np_ev_run(cli->ev)) != NP_OK) {
		cli_err("event loop: %s", np_strerror(r));
		tn->rc = NP_EXIT_FAIL;
	}
	rc = tn->rc;
 out:
	close_listeners(tn);
	np_ev_timer_del(cli->ev, tn->stop_timer);
	np_ev_timer_del(cli->ev, tn->pause_timer);
	free(tn);
	return rc;
}
