/*
 * np ssh DEVICE [-u USER] [-p PORT] [--exec] [-- SSH-ARGS...]: the seed's
 * flow.  Sets a session up, listens on 127.0.0.1:0, prints the ssh command
 * that uses that port with the session key (or runs it with --exec: fork
 * + execvp, no shell), and relays the one connection it accepts.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "ev.h"
#include "relay.h"
#include "session.h"

#define SSH_USAGE "np [-F CONFIG] [-v] ssh DEVICE [-u USER] [-p PORT] " \
	"[--exec] [-- SSH-ARGS...]"
#define SSH_ACCEPT_MS 120000 /* wait this long for the local connection */
#define SSH_ARGS_MAX 256
#define SSH_OPT_MAX (PATH_MAX + 64)

struct ssh_opts {
	const char *device;
	const char *user;
	uint16_t port;
	int exec;
	char **extra;
	int nextra;
};

struct ssh_run {
	struct np_cli *cli;
	struct np_session *s;
	const char *host;
	int lfd;
	int cfd;
	int sfd;
	pid_t child;
	int child_status;
	int child_done;
	int relaying;
	int accept_timeout;
	uint64_t poll_timer;
};

static int
ssh_opts(int argc, char **argv, struct ssh_opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->port = 22;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			o->extra = argv + i + 1;
			o->nextra = argc - i - 1;
			break;
		} else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
			o->user = argv[++i];
		} else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
			if (np_port_parse(argv[++i], &o->port) != 0) {
				cli_err("bad port '%.16s'", argv[i]);
				return -1;
			}
		} else if (strcmp(argv[i], "--exec") == 0) {
			o->exec = 1;
		} else if (argv[i][0] != '-' && o->device == NULL) {
			o->device = argv[i];
		} else {
			return -1;
		}
	}
	if (o->device == NULL || o->nextra > SSH_ARGS_MAX) {
		return -1;
	}
	return 0;
}

/* The local user's name (the default remote user). */
static const char *
local_user(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw != NULL ? pw->pw_name : NULL;
}

static int
listen_local(uint16_t *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The ssh command line; strings in opt[] (SSH_OPT_MAX each). */
static int
build_argv(const struct ssh_opts *o, const struct np_target *t,
    const char *user, uint16_t lport, const struct np_session *s,
    const char *known_hosts, char opt[5][SSH_OPT_MAX], char **av)
{
	int n = 0, k;

	snprintf(opt[0], SSH_OPT_MAX, "%u", (unsigned)lport);
	snprintf(opt[1], SSH_OPT_MAX, "HostKeyAlias=%s", t->host);
	if (snprintf(opt[2], SSH_OPT_MAX, "UserKnownHostsFile=%s",
	    known_hosts) >= SSH_OPT_MAX) {
		return -1;
	}
	snprintf(opt[3], SSH_OPT_MAX, "%s@127.0.0.1", user);
	av[n++] = "ssh";
	av[n++] = "-p";
	av[n++] = opt[0];
	av[n++] = "-i";
	av[n++] = (char *)s->keyfile;
	av[n++] = "-o";
	av[n++] = "IdentitiesOnly=yes";
	av[n++] = "-o";
	av[n++] = opt[1];
	av[n++] = "-o";
	av[n++] = opt[2];
	av[n++] = "-o";
	av[n++] = "StrictHostKeyChecking=yes";
	av[n++] = opt[3];
	for (k = 0; k < o->nextra; k++) {
		av[n++] = o->extra[k];
	}
	av[n] = NULL;
	return n;
}

/* Print av as a command a POSIX shell would split back the same way. */
static void
print_argv(char **av)
{
	const char *p;

	for (int i = 0; av[i] != NULL; i++) {
		if (i > 0) {
			putchar(' ');
		}
		if (av[i][0] != '\0' && strspn(av[i], "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") ==
		    strlen(av[i])) {
			fputs(av[i], stdout);
			continue;
		}
		putchar('\'');
		for (p = av[i]; *p != '\0'; p++) {
			if (*p == '\'') {
				fputs("'\\''", stdout);
			} else {
				putchar(*p);
			}
		}
		putchar('\'');
	}
	putchar('\n');
	fflush(stdout);
}

static void
accept_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct ssh_run *sr = arg;
	int one = 1;

	sr->cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (sr->cfd < 0) {
		return; /* EAGAIN and friends: wait for the next */
	}
	(void)setsockopt(sr->cfd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one));
	np_ev_del(ev, fd);
	np_ev_stop(ev);
}

static void
poll_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct ssh_run *sr = arg;
	pid_t p;

	sr->poll_timer = 0;
	if (sr->child > 0 && !sr->child_done &&
	    (p = waitpid(sr->child, &sr->child_status, WNOHANG)) ==
	    sr->child) {
		sr->child_done = 1;
		np_ev_stop(ev); /* ssh ended before connecting */
		return;
	}
	sr->poll_timer = np_ev_timer_add(ev, 100, poll_cb, sr);
}

static void
accept_timeout_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct ssh_run *sr = arg;

	sr->accept_timeout = 1;
	np_ev_stop(ev);
}

/* The device's late np.session.err while we wait for ssh. */
static void
refused_cb(void *arg)
{
	struct ssh_run *sr = arg;

	np_ev_stop(sr->cli->ev);
}

/* Wait for the one local connection (or ssh's early end). */
static int
ssh_accept(struct ssh_run *sr)
{
	struct np_ev *ev = sr->cli->ev;
	uint64_t tm;
	int r;

	if ((r = np_ev_add(ev, sr->lfd, NP_EV_READ, accept_cb, sr)) !=
	    NP_OK) {
		return r;
	}
	tm = np_ev_timer_add(ev, SSH_ACCEPT_MS, accept_timeout_cb, sr);
	if (sr->child > 0) {
		sr->poll_timer = np_ev_timer_add(ev, 100, poll_cb, sr);
	}
	np_session_on_fail(sr->s, refused_cb, sr);
	while (sr->cfd < 0 && !sr->child_done && !sr->accept_timeout &&
	    np_session_failed(sr->s) == NULL) {
		if ((r = np_ev_run(ev)) != NP_OK) {
			break;
		}
	}
	np_session_on_fail(sr->s, NULL, NULL);
	np_ev_timer_del(ev, tm);
	np_ev_timer_del(ev, sr->poll_timer);
	sr->poll_timer = 0;
	if (sr->cfd < 0) {
		np_ev_del(ev, sr->lfd);
		if (np_session_failed(sr->s) != NULL) {
			np_session_fail_msg(sr->s, sr->host);
		} else if (sr->accept_timeout) {
			cli_err("%s: nobody connected to the local port within "
			    "%d s", sr->host, SSH_ACCEPT_MS / 1000);
		}
		return NP_ERR_TIMEOUT;
	}
	return NP_OK;
}

static pid_t
spawn(char **av)
{
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		execvp(av[0], av);
		fprintf(stderr, "np: cannot run %s: %s\n", av[0],
		    strerror(errno));
		_exit(127);
	}
	return pid;
}

static int
child_exit_code(int status)
{
	if (WIFEXITED(status)) {
		return WEXITSTATUS(status);
	}
	if (WIFSIGNALED(status)) {
		return 128 + WTERMSIG(status);
	}
	return NP_EXIT_FAIL;
}

static int
ssh_run(struct np_cli *cli, const struct ssh_opts *o,
    const struct np_target *t, const char *user, struct np_session *s)
{
	char opt[5][SSH_OPT_MAX];
	char *av[SSH_ARGS_MAX + 20];
	struct ssh_run sr;
	struct np_relay_end a, b;
	uint16_t lport;
	int rc = NP_EXIT_FAIL, relay_ok = -1;

	memset(&sr, 0, sizeof(sr));
	sr.cli = cli;
	sr.s = s;
	sr.host = t->host;
	sr.cfd = -1;
	sr.sfd = s->fd;
	if ((sr.lfd = listen_local(&lport)) < 0) {
		cli_err("cannot listen on 127.0.0.1: %s", strerror(errno));
		return NP_EXIT_FAIL;
	}
	if (build_argv(o, t, user, lport, s, cli->cfg.known_hosts, opt, av) <
	    0) {
		cli_err("KnownHosts path too long");
		goto out;
	}
	if (!o->exec) {
		print_argv(av);
		fprintf(stderr, "np: waiting for one connection on 127.0.0.1 "
		    "port %u (the session key works until %lld)\n",
		    (unsigned)lport, (long long)s->expires);
	} else {
		cli_step(cli, "running ssh on 127.0.0.1 port %u",
		    (unsigned)lport);
		if ((sr.child = spawn(av)) < 0) {
			cli_err("fork: %s", strerror(errno));
			goto out;
		}
	}
	if (ssh_accept(&sr) == NP_OK) {
		close(sr.lfd);
		sr.lfd = -1;
		a.rfd = a.wfd = sr.cfd;
		b.rfd = b.wfd = sr.sfd;
		relay_ok = np_session_relay(cli, t->host, s, a, b);
		/* ssh may still be waiting on this connection (a late refusal
		 * from the device ends the relay first): it must see the end
		 * before we wait for it to exit. */
		close(sr.cfd);
		sr.cfd = -1;
	} else if (sr.child > 0 && !sr.child_done) {
		close(sr.lfd); /* ssh, not connected yet, fails at once */
		sr.lfd = -1;
	}
	np_session_unwatch(s);
	if (sr.child > 0) {
		if (!sr.child_done &&
		    waitpid(sr.child, &sr.child_status, 0) == sr.child) {
			sr.child_done = 1;
		}
		rc = sr.child_done ? child_exit_code(sr.child_status) :
		    NP_EXIT_FAIL;
	} else {
		rc = relay_ok == 0 ? NP_EXIT_OK : NP_EXIT_FAIL;
	}
 out:
	if (sr.lfd >= 0) {
		close(sr.lfd);
	}
	if (sr.cfd >= 0) {
		close(sr.cfd);
	}
	return rc;
}

int
cmd_ssh(struct np_cli *cli, int argc, char **argv)
{
	struct ssh_opts o;
	struct np_session s;
	struct np_target t;
	char why[256];
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		printf("usage: %s\n", SSH_USAGE);
		return NP_EXIT_OK;
	}
	if (cli->ev == NULL || ssh_opts(argc, argv, &o) != 0) {
		return cli_usage(SSH_USAGE);
	}
	if (o.user == NULL && (o.user = local_user()) == NULL) {
		cli_err("cannot tell the local user name: give -u USER");
		return NP_EXIT_FAIL;
	}
	if (!np_user_valid(o.user)) {
		cli_err("bad user name '%.40s'", o.user);
		return NP_EXIT_FAIL;
	}
	if (np_target_resolve(o.device, cli->cfg.aliases, cli->cfg.naliases,
	    &t, why, sizeof(why)) != NP_OK) {
		cli_err("bad device name '%.80s': %s", o.device, why);
		return NP_EXIT_FAIL;
	}
	if (cli->cfg.known_hosts == NULL) {
		cli_err("no KnownHosts (HOME is not set)");
		return NP_EXIT_FAIL;
	}
	/* HostKeyAlias=HOST: ssh looks the key up under HOST, no port. */
	if (np_session_setup(cli, &t, o.user, o.port, 22, &s) != NP_OK) {
		return NP_EXIT_FAIL;
	}
	rc = ssh_run(cli, &o, &t, o.user, &s);
	np_session_close(&s);
	return rc;
}
