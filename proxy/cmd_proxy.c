/*
 * np proxy HOST PORT USER: ssh's ProxyCommand (ProxyCommand np proxy %h %p
 * %r).  Sets the session up (session.c), then relays stdin/stdout to the
 * rendezvous socket until both directions end.  Nothing but relayed bytes
 * ever goes to stdout; messages go to stderr.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "ev.h"
#include "relay.h"
#include "session.h"

#define PROXY_USAGE "np [-F CONFIG] [-v] proxy HOST PORT USER\n" \
	"  (ssh_config: ProxyCommand np proxy %h %p %r)"

#define PROXY_HUP_MS 1000	/* after ssh's SIGHUP: the relay's last chance */
#define PROXY_DRAIN_MS 500	/* reading the device's last bytes at the end */

struct proxy_run {
	struct np_ev *ev;
	struct np_relay *relay;
	int result;
	int done;
	struct np_relay_stats st;
};

/*
 * ssh sends its ProxyCommand SIGHUP as it exits.  Dying of it would
 * close the rendezvous socket with the device's last bytes unread: a
 * reset instead of an end, and with records all the way the device
 * never sees our final record.  So np proxy takes it as "ssh is gone":
 * the relay goes on (ssh closed its side, so it is ending) for at most
 * PROXY_HUP_MS, a failure to write to the gone ssh is no error, and the
 * socket is drained before it is closed.
 */
static int proxy_hup;
static struct proxy_run *proxy_cur;

static void
hup_stop(struct np_ev *ev, uint64_t id, void *arg)
{
	if (proxy_cur != NULL && proxy_cur->relay != NULL) {
		np_relay_stop(proxy_cur->relay);
	}
}

static void
on_hup(struct np_ev *ev, int signo, void *arg)
{
	if (!proxy_hup) {
		proxy_hup = 1;
		if (np_ev_timer_add(ev, PROXY_HUP_MS, hup_stop, NULL) == 0) {
			hup_stop(ev, 0, NULL);
		}
	}
}

/* Our half-close, then the peer's last bytes (discarded) until its end
 * or PROXY_DRAIN_MS: the socket then closes without a reset. */
static void
drain(int fd)
{
	uint64_t end = np_now_mono_ms() + PROXY_DRAIN_MS, now;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16384];
	ssize_t n;

	(void)shutdown(fd, SHUT_WR);
	while ((now = np_now_mono_ms()) < end) {
		if (poll(&p, 1, (int)(end - now)) <= 0) {
			return;
		}
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
			return;
		}
	}
}

static void
proxy_done(struct np_relay *r, int result, void *arg)
{
	struct proxy_run *pr = arg;

	pr->result = result;
	pr->st = *np_relay_stats(r);
	pr->done = 1;
	pr->relay = NULL;
	np_relay_free(r);
	np_ev_stop(pr->ev);
}

/* The device's late np.session.err: end the relay (proxy_done follows). */
static void
proxy_refused(void *arg)
{
	struct proxy_run *pr = arg;

	if (pr->relay != NULL) {
		np_relay_stop(pr->relay);
	}
}

/* Make fd non-blocking; the old flags go to *old (-1: untouched). */
static int
set_nonblock(int fd, int *old)
{
	int fl;

	*old = -1;
	if ((fl = fcntl(fd, F_GETFL)) < 0) {
		return -1;
	}
	if ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		return -1;
	}
	*old = fl;
	return 0;
}

static void
restore_flags(int fd, int old)
{
	if (old >= 0 && (old & O_NONBLOCK) == 0) {
		(void)fcntl(fd, F_SETFL, old);
	}
}

/*
 * The relay itself; s->watch (when still there) ends it on the device's
 * late refusal and lets itself go after the device's first byte.
 */
static int
relay_run(struct np_cli *cli, const char *host, struct np_session *s,
    struct proxy_run *pr, struct np_relay_end a, struct np_relay_end b)
{
	struct np_relay_opts o;
	int r;

	memset(&o, 0, sizeof(o));
	o.xf[0] = s->seal;	/* a (ours) -> b (the device) */
	o.xf[1] = s->open;
	o.handoff = s->handoff;
	if ((r = np_relay_start_ex(cli->ev, a, b, &o, proxy_done, pr,
	    &pr->relay)) != NP_OK) {
		cli_err("%s: cannot start the relay: %s", host,
		    np_strerror(r));
		return -1;
	}
	s->seal = s->open = NULL; /* the relay's now */
	np_session_on_fail(s, proxy_refused, pr);
	np_session_watch_relay(s, pr->relay);
	while (!pr->done) {
		if ((r = np_ev_run(cli->ev)) != NP_OK) {
			cli_err("%s: event loop: %s", host, np_strerror(r));
			np_relay_free(pr->relay);
			pr->relay = NULL;
			break;
		}
	}
	np_session_watch_relay(s, NULL);
	np_session_on_fail(s, NULL, NULL);
	return r == NP_OK ? 0 : -1;
}

int
np_session_relay(struct np_cli *cli, const char *host, struct np_session *s,
    struct np_relay_end a, struct np_relay_end b)
{
	struct proxy_run pr;
	int r;

	memset(&pr, 0, sizeof(pr));
	pr.ev = cli->ev;
	proxy_cur = &pr;
	r = np_session_failed(s) != NULL ? -1 :
	    relay_run(cli, host, s, &pr, a, b);
	proxy_cur = NULL;
	if (np_session_failed(s) != NULL) {
		np_session_fail_msg(s, host);
		np_session_unwatch(s);
		return -1;
	}
	np_session_unwatch(s);
	if (r != 0) {
		return -1;
	}
	cli_step(cli, "relay ended: %llu bytes out, %llu bytes in",
	    (unsigned long long)pr.st.a_to_b,
	    (unsigned long long)pr.st.b_to_a);
	if (pr.result != NP_RELAY_DONE && pr.st.err_what == NULL &&
	    ((proxy_hup && (pr.st.err_side == 1 ||
	    pr.result == NP_RELAY_STOPPED)) ||
	    (!s->tunnel && pr.st.err_side == 1 && pr.st.err_errno == EPIPE))) {
		/* ssh has gone (its SIGHUP, or its end of our stdout closed
		 * as it exits): not being able to write to it is its end,
		 * and ssh says itself what went wrong, if anything did. */
		cli_step(cli, "%s: ssh is gone (%s)", host, proxy_hup ?
		    "SIGHUP" : "its pipe closed");
		return 0;
	}
	if (pr.result != NP_RELAY_DONE && pr.st.err_what != NULL) {
		cli_err("%s: relay stream from %s broken: %s; the connection "
		    "was ended", host, pr.st.err_side == 2 ? "the device" :
		    "here", pr.st.err_what);
		return -1;
	}
	if (pr.result != NP_RELAY_DONE && s->tunnel && pr.st.err_side == 1) {
		/* The local program reset its own connection (iperf3 and
		 * browsers do): its business, as with ssh -L. */
		cli_step(cli, "%s: the local connection ended with %s", host,
		    pr.st.err_errno != 0 ? strerror(pr.st.err_errno) :
		    "an error");
		return 0;
	}
	if (pr.result != NP_RELAY_DONE) {
		cli_err("%s: connection %s: %s", host,
		    pr.st.err_side == 2 ? "to the device lost" :
		    "to ssh lost", pr.st.err_errno != 0 ?
		    strerror(pr.st.err_errno) : "relay stopped");
		return -1;
	}
	return 0;
}

/* Check ssh's %h %p %r; prints the reason. */
static int
proxy_args(struct np_cli *cli, char **argv, struct np_target *t,
    uint16_t *port)
{
	char why[256];

	if (np_port_parse(argv[2], port) != 0) {
		cli_err("bad port '%.16s' (want 1..65535)", argv[2]);
		return -1;
	}
	if (!np_user_valid(argv[3])) {
		cli_err("bad user name '%.40s' (want a POSIX user name: "
		    "[a-z_][a-z0-9_.-]*, at most 32 characters)", argv[3]);
		return -1;
	}
	if (np_target_resolve(argv[1], cli->cfg.aliases, cli->cfg.naliases,
	    t, why, sizeof(why)) != NP_OK) {
		cli_err("bad host name '%.80s': %s", argv[1], why);
		return -1;
	}
	return 0;
}

int
cmd_proxy(struct np_cli *cli, int argc, char **argv)
{
	struct np_relay_end a = { 0, 1 }, b;
	struct np_session s;
	struct np_target t;
	uint16_t port;
	int fl0 = -1, fl1 = -1, rc = NP_EXIT_FAIL;

	/* Help and usage go to stderr: stdout belongs to ssh. */
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		fprintf(stderr, "usage: %s\n", PROXY_USAGE);
		return NP_EXIT_OK;
	}
	if (cli->ev == NULL || argc != 4) {
		fprintf(stderr, "usage: %s\n", PROXY_USAGE);
		return NP_EXIT_USAGE;
	}
	if (proxy_args(cli, argv, &t, &port) != 0) {
		return NP_EXIT_FAIL;
	}
	cli_step(cli, "%s: device '%s' of %s, user %s, port %u", t.host,
	    t.device, t.ident, argv[3], (unsigned)port);
	if (np_session_setup(cli, &t, argv[3], port, port, &s) != NP_OK) {
		return NP_EXIT_FAIL;
	}
	if (set_nonblock(0, &fl0) != 0 || set_nonblock(1, &fl1) != 0) {
		cli_err("cannot make stdin/stdout non-blocking: %s",
		    strerror(errno));
		goto out;
	}
	b.rfd = b.wfd = s.fd;
	if (np_ev_signal_add(cli->ev, SIGHUP, on_hup, NULL) != NP_OK) {
		cli_err("cannot watch for SIGHUP: out of resources");
		goto out;
	}
	if (np_session_relay(cli, t.host, &s, a, b) == 0) {
		rc = NP_EXIT_OK;
	}
	if (s.fd >= 0) {
		drain(s.fd);
	}
 out:
	restore_flags(0, fl0);
	restore_flags(1, fl1);
	np_session_close(&s);
	return rc;
}
