/*
 * np-srbulk: opens many np-srd sessions at once, for the idle-scale
 * benchmark (bench/run) and the scale tests.
 *
 *   np-srbulk -F CONFIG -s @sr -n COUNT [-w WINDOW] [-S SOURCES]
 *             [-T TIMEOUT_S] [-r READY_FILE] [-g GO_FILE] [-H HOLD_S]
 *             [-X STREAM_S]
 *
 * CONFIG is an np client config (Identity, IdentityFile, Server,
 * ServerFingerprint, KnownIdentities).  The tool authenticates to the
 * control plane, monitors its mailbox, and sends @sr "srd.open" boxes,
 * at most WINDOW (default 32) unanswered at a time, until COUNT sessions
 * are open.  For every "srd.session" answer it connects both sides (the
 * client side and the device side) with their tokens and checks the
 * "NPSR1 OK" answers, so each session ends up relaying (and idle).
 * With -S K the connections come from K loopback source addresses
 * 127.0.0.2 .. 127.0.0.(K+1) (more than 28k connections need that).
 *
 * Once COUNT sessions are up (or TIMEOUT_S, default 120, has passed) it
 * writes "open N errors E ms T" to READY_FILE (and stdout), then waits
 * until GO_FILE exists (or HOLD_S seconds, default 0 without -g), then
 * checks every session end to end: one byte client -> device and one
 * back, and prints "verified N of M".  Every socket is closed at exit.
 * With -X SECONDS it measures throughput instead (bench/run): once the
 * sessions are open, a sink process reads every device side while the
 * parent sends on every client side for SECONDS (see "The
 * throughput mode" below); it prints "stream N streams T s sent S bytes
 * B gbps G".  np-srd is then the only relay in the path.  There
 * READY_FILE is written once the sinks run, just before the first write.
 *
 *   np-srbulk -X STREAM_S --plain HOST:PORT [-n STREAMS] [-r READY_FILE]
 *	The same sender over plain TCP (no token line): N connections to
 *	HOST:PORT, which leads to an np-srbulk sink, directly or through a
 *	relay (socat, HAProxy).  READY_FILE gets "open N errors 0 ms 0"
 *	once all N are connected, just before the first write (bench/run
 *	starts its CPU clock there).
 *   np-srbulk --sink PORT [--port-file FILE] [-T LIFETIME_S]
 *	The same sink as a server on 127.0.0.1:PORT (0: any free port,
 *	written to FILE) for LIFETIME_S seconds (default 3600): a sink
 *	process for every connection.
 *
 * Exit 0 when all COUNT sessions opened and verified (streamed, every
 * byte counted by the sink), 1 otherwise, 2 on a usage error.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "conf.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "pin.h"
#include "srproto.h"

#define MAX_COUNT 200000
#define STEP_MS 5000
#define SRD_OPEN_TTL 30

struct bconf {
	char *identity;
	char *identity_file;
	struct np_hostport server;
	char *fingerprint;
	char *known;
	long connect_timeout;
};

static const struct np_conf_kw bconf_table[] = {
	{ "Identity", NP_CONF_IDENT, offsetof(struct bconf, identity), 0, 0,
	    0, "" },
	{ "IdentityFile", NP_CONF_PATH,
	    offsetof(struct bconf, identity_file), 0, 0, 0, "" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct bconf, server), 0, 0,
	    0, "" },
	{ "ServerFingerprint", NP_CONF_STR,
	    offsetof(struct bconf, fingerprint), 0, 0, 0, "" },
	{ "KnownIdentities", NP_CONF_PATH, offsetof(struct bconf, known), 0,
	    0, 0, "" },
	{ "ConnectTimeout", NP_CONF_DURATION,
	    offsetof(struct bconf, connect_timeout), 0, 0, 0, "" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

struct bulk {
	struct np_ev *ev;
	struct np_cpc *cpc;
	struct np_key *key;
	struct np_replay *replay;
	char sr[NP_IDENT_MAX + 1];
	uint8_t sr_pk[NP_PK_LEN];
	long count, window, sources;
	long sent, sent_ok, opened, errors, conn_fail;
	int *fd; /* 2 per session */
	char first_err[160];
};

static void
usage(void)
{
	fprintf(stderr, "usage: np-srbulk -F CONFIG -s @sr -n COUNT "
	    "[-w WINDOW] [-S SOURCES]\n"
	    "                 [-T TIMEOUT_S] [-r READY_FILE] [-g GO_FILE] "
	    "[-H HOLD_S] [-X STREAM_S]\n"
	    "       np-srbulk -X STREAM_S --plain HOST:PORT [-n STREAMS] "
	    "[-r READY_FILE]\n"
	    "       np-srbulk --sink PORT [--port-file FILE] "
	    "[-T LIFETIME_S]\n");
	exit(2);
}

static long
num_arg(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "np-srbulk: bad number: %s\n", s);
		exit(2);
	}
	return v;
}

static void note_err(struct bulk *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note_err(struct bulk *b, const char *fmt, ...)
{
	va_list ap;

	if (b->first_err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(b->first_err, sizeof(b->first_err), fmt, ap);
		va_end(ap);
	}
}

static int
wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p;
	uint64_t now;
	int r;

	for (;;) {
		now = np_now_mono_ms();
		if (now >= deadline) {
			return NP_ERR_TIMEOUT;
		}
		p.fd = fd;
		p.events = ev;
		p.revents = 0;
		r = poll(&p, 1, (int)(deadline - now));
		if (r > 0) {
			return NP_OK;
		}
		if (r < 0 && errno != EINTR) {
			return NP_ERR_SYSTEM;
		}
	}
}

/* Connect one side with its token; *fdp is a non-blocking socket. */
static int
side_connect(struct bulk *b, const struct np_sr_session *s, int side,
    long idx, int *fdp)
{
	const struct np_sr_endpoint *ep = &s->side[side];
	struct sockaddr_in sa, src;
	struct np_buf *line = NULL;
	uint64_t deadline = np_now_mono_ms() + STEP_MS;
	char ans[64];
	size_t got = 0, off = 0;
	socklen_t sl;
	int fd = -1, one = 1, err = 0, r = NP_ERR_SYSTEM;
	ssize_t n;

	*fdp = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(ep->port);
	if (inet_pton(AF_INET, ep->host, &sa.sin_addr) != 1) {
		note_err(b, "endpoint host %s is no IPv4 literal",
		    ep->host);
		return NP_ERR_INVALID;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		note_err(b, "socket: %s", strerror(errno));
		return NP_ERR_SYSTEM;
	}
	if (b->sources > 0) {
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000002u +
		    (uint32_t)(idx % b->sources));
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			note_err(b, "bind: %s", strerror(errno));
			goto out;
		}
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
	    errno != EINPROGRESS) {
		note_err(b, "connect: %s", strerror(errno));
		goto out;
	}
	if ((r = wait_fd(fd, POLLOUT, deadline)) != NP_OK) {
		note_err(b, "connect: %s", "timeout");
		goto out;
	}
	sl = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err != 0) {
		note_err(b, "connect: %s", strerror(err));
		r = NP_ERR_SYSTEM;
		goto out;
	}
	if ((line = np_buf_new(NP_SRLINE_MAX)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = np_srline_format(s->sid, side == 0 ? NP_SR_CLIENT :
	    NP_SR_DEVICE, ep->token, line)) != NP_OK) {
		note_err(b, "token line: %s", np_strerror(r));
		goto out;
	}
	while (off < np_buf_len(line)) {
		n = write(fd, np_buf_ptr(line) + off, np_buf_len(line) - off);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_fd(fd, POLLOUT, deadline)) != NP_OK) {
				goto out;
			}
		} else {
			note_err(b, "write: %s", strerror(errno));
			r = NP_ERR_SYSTEM;
			goto out;
		}
	}
	/* The answer: "NPSR1 OK\n" or "NPSR1 ERR reason\n". */
	while (got < sizeof(ans) - 1 && memchr(ans, '\n', got) == NULL) {
		n = read(fd, ans + got, 1);
		if (n == 1) {
			got++;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((r = wait_fd(fd, POLLIN, deadline)) != NP_OK) {
				note_err(b, "no answer to the token line");
				goto out;
			}
		} else {
			note_err(b, "answer: %s", n == 0 ? "EOF" :
			    strerror(errno));
			r = NP_ERR_SYSTEM;
			goto out;
		}
	}
	ans[got] = '\0';
	if (strcmp(ans, NP_SR_OK_LINE) != 0) {
		ans[strcspn(ans, "\n")] = '\0';
		note_err(b, "refused: %s", ans);
		r = NP_ERR_AUTH;
		goto out;
	}
	*fdp = fd;
	fd = -1;
	r = NP_OK;
 out:
	if (fd >= 0) {
		close(fd);
	}
	np_buf_free(line);
	return r;
}

static void
on_session(struct bulk *b, struct json_object *body)
{
	struct np_sr_session s;
	long idx = b->opened;
	int r;

	memset(&s, 0, sizeof(s));
	if ((r = np_sr_session_from_json(body, &s)) != NP_OK) {
		note_err(b, "bad srd.session body: %s", np_strerror(r));
		b->errors++;
		return;
	}
	if (idx >= b->count) {
		b->errors++;
		sodium_memzero(&s, sizeof(s));
		return;
	}
	if (side_connect(b, &s, 0, idx * 2, &b->fd[idx * 2]) != NP_OK ||
	    side_connect(b, &s, 1, idx * 2 + 1, &b->fd[idx * 2 + 1]) !=
	    NP_OK) {
		if (b->fd[idx * 2] >= 0) {
			close(b->fd[idx * 2]);
			b->fd[idx * 2] = -1;
		}
		b->conn_fail++;
		b->errors++;
	} else {
		b->opened++;
	}
	sodium_memzero(&s, sizeof(s));
}

static void
on_msg(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct bulk *b = arg;
	struct np_box_msg *msg = NULL;
	struct json_object *reason;
	int r;

	(void)np_cpc_ack(c, m->seq);
	if (strcmp(m->from, b->sr) != 0) {
		return;
	}
	r = np_box_open(b->key, b->sr_pk, m->from, m->mid, m->box, m->box_len,
	    np_now_real_ms(), b->replay, &msg);
	if (r != NP_OK) {
		note_err(b, "box from %s: %s", m->from, np_strerror(r));
		b->errors++;
		return;
	}
	if (strcmp(msg->type, "srd.session") == 0) {
		on_session(b, msg->body);
	} else if (strcmp(msg->type, "srd.error") == 0) {
		if (json_object_object_get_ex(msg->body, "reason", &reason)) {
			note_err(b, "srd.error: %s",
			    json_object_get_string(reason));
		} else {
			note_err(b, "srd.error without a reason");
		}
		b->errors++;
	}
	np_box_msg_free(msg);
}

static void
on_sent(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	struct bulk *b = arg;

	if (res->r == NP_OK) {
		b->sent_ok++;
	} else {
		note_err(b, "send: %s %s", np_strerror(res->r),
		    res->msg != NULL ? res->msg : "");
		b->errors++;
	}
}

static int
send_open(struct bulk *b)
{
	struct json_object *body;
	struct np_buf *box;
	char mid[NP_MID_LEN + 1];
	int r;

	if ((box = np_buf_new(NP_BOX_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((body = json_object_new_object()) == NULL) {
		np_buf_free(box);
		return NP_ERR_ALLOC;
	}
	r = np_box_seal(b->key, b->sr_pk, b->sr, "srd.open", NULL, body,
	    SRD_OPEN_TTL, np_now_real_ms(), NULL, box, mid);
	json_object_put(body);
	if (r == NP_OK) {
		r = np_cpc_send(b->cpc, b->sr, mid, SRD_OPEN_TTL,
		    np_buf_ptr(box), np_buf_len(box), on_sent, b, NULL);
	}
	np_buf_free(box);
	return r;
}

/* $HOME/.config/noports/leaf (malloc'ed) or NULL. */
static char *
home_path(const char *leaf)
{
	const char *home = getenv("HOME");
	char *p = NULL;

	if (home == NULL || *home == '\0' ||
	    asprintf(&p, "%s/.config/noports/%s", home, leaf) < 0) {
		return NULL;
	}
	return p;
}

static int
load(struct bulk *b, const char *path, struct bconf *cf)
{
	struct np_pins *pins = NULL;
	struct np_cpc_lookup_res res;
	struct np_cpc_conf cc;
	uint8_t pinned[NP_PK_LEN];
	char err[256];
	int r;

	if ((r = np_conf_load(bconf_table, cf, path, err, sizeof(err))) !=
	    NP_OK) {
		fprintf(stderr, "np-srbulk: %s\n", err);
		return r;
	}
	if (cf->identity_file == NULL) {
		cf->identity_file = home_path("identity.key");
	}
	if (cf->known == NULL) {
		cf->known = home_path("known_identities");
	}
	if (cf->identity_file == NULL || cf->server.host == NULL ||
	    cf->fingerprint == NULL) {
		fprintf(stderr, "np-srbulk: %s needs IdentityFile, Server and "
		    "ServerFingerprint\n", path);
		return NP_ERR_CONF;
	}
	if ((r = np_key_load(cf->identity_file, &b->key)) != NP_OK) {
		fprintf(stderr, "np-srbulk: %s: %s\n", cf->identity_file,
		    np_strerror(r));
		return r;
	}
	memset(&cc, 0, sizeof(cc));
	cc.host = cf->server.host;
	cc.port = cf->server.port;
	cc.fingerprint = cf->fingerprint;
	cc.key = b->key;
	cc.connect_timeout_ms = 10000;
	if ((r = np_cpc_new(b->ev, &cc, &b->cpc)) != NP_OK ||
	    (r = np_cpc_connect_wait(b->cpc, 10000)) != NP_OK) {
		fprintf(stderr, "np-srbulk: connect: %s %s\n", np_strerror(r),
		    b->cpc != NULL ? np_cpc_detail(b->cpc) : "");
		return r;
	}
	if ((r = np_cpc_lookup_sync(b->cpc, b->sr, 10000, &res)) != NP_OK) {
		fprintf(stderr, "np-srbulk: lookup %s: %s\n", b->sr,
		    np_strerror(r));
		return r;
	}
	memcpy(b->sr_pk, res.pk, NP_PK_LEN);
	if (cf->known != NULL && np_pins_load(cf->known, &pins) == NP_OK &&
	    np_pins_get(pins, b->sr, pinned) == NP_OK &&
	    sodium_memcmp(pinned, res.pk, NP_PK_LEN) != 0) {
		fprintf(stderr, "np-srbulk: the key of %s differs from its "
		    "pin\n", b->sr);
		np_pins_free(pins);
		return NP_ERR_KEY_CHANGED;
	}
	np_pins_free(pins);
	np_cpc_set_msg_cb(b->cpc, on_msg, b);
	if ((r = np_cpc_monitor_sync(b->cpc, 10000)) != NP_OK) {
		fprintf(stderr, "np-srbulk: monitor: %s\n", np_strerror(r));
		return r;
	}
	return NP_OK;
}

static void
raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((long)rl.rlim_cur < need) {
		fprintf(stderr, "np-srbulk: warning: RLIMIT_NOFILE %ld < %ld "
		    "needed\n", (long)rl.rlim_cur, need);
	}
}

/* Open sessions until count are up, errors stop it, or the deadline. */
static void
open_all(struct bulk *b, uint64_t deadline)
{
	long inflight;

	while (b->opened < b->count && np_now_mono_ms() < deadline) {
		if (b->errors > 0 && b->sent >= b->count) {
			break;
		}
		if (!np_cpc_is_up(b->cpc)) {
			note_err(b, "control-plane connection lost");
			break;
		}
		inflight = b->sent - b->opened - b->errors;
		while (inflight < b->window && b->sent < b->count &&
		    b->errors == 0) {
			if (send_open(b) != NP_OK) {
				break;
			}
			b->sent++;
			inflight++;
		}
		if (b->errors > 0 && inflight <= 0) {
			break;
		}
		(void)np_ev_run_once(b->ev, 100);
	}
}

/* One byte over each open session from side `from`; count arrivals. */
static long
verify_dir(struct bulk *b, int from, uint64_t deadline)
{
	struct pollfd *p;
	long i, n = 0, got = 0, left;
	uint64_t now;
	char c = 'x';
	int r;

	if ((p = calloc((size_t)b->opened + 1, sizeof(*p))) == NULL) {
		return 0;
	}
	for (i = 0; i < b->opened; i++) {
		if (write(b->fd[i * 2 + from], &c, 1) == 1) {
			p[n].fd = b->fd[i * 2 + 1 - from];
			p[n].events = POLLIN;
			n++;
		}
	}
	left = n;
	while (left > 0 && (now = np_now_mono_ms()) < deadline) {
		r = poll(p, (nfds_t)n, (int)(deadline - now));
		if (r <= 0) {
			continue;
		}
		for (i = 0; i < n; i++) {
			if (p[i].fd < 0 || p[i].revents == 0) {
				continue;
			}
			if (read(p[i].fd, &c, 1) == 1 && c == 'x') {
				got++;
			}
			p[i].fd = -p[i].fd - 1;
			left--;
		}
	}
	free(p);
	return got;
}

/*
 * The throughput mode.  One sender and one sink, the same code whatever
 * the path between them: the sender writes zeros in blocking
 * STREAM_CHUNK writes (iperf3's default TCP block) to every stream in
 * turn for the given time, then shuts down writing; one sink process per
 * stream reads STREAM_CHUNK at a time (blocking) and discards, and
 * answers EOF with "sink BYTES\n" before it closes.
 * The rate is the bytes the sinks counted over the time from the first
 * write to the last answer, so bytes still buffered in a relay when the
 * sender stops are counted and waited for.  Through np-srd the streams
 * are session sides (token line first, then the same stream); with
 * --plain they are TCP connections to HOST:PORT (a sink, directly or
 * through socat or HAProxy).
 */
#define STREAM_CHUNK (128 * 1024)
#define SINK_MAX 1024
#define SINK_ANSWER_MAX 64
#define DRAIN_MS 30000
#define SEND_TIMEO_MS 200

/*
 * One sink connection: blocking reads (as iperf3's receiver does: a poll
 * loop costs about a third of the rate on 2 cores) until EOF, then the
 * answer.  Reads time out every second so that the deadline is seen.
 * Closes fd; 0 after EOF, -1 otherwise.
 */
static int
sink_conn(int fd, uint64_t deadline)
{
	struct timeval tv = { 1, 0 };
	char ans[SINK_ANSWER_MAX];
	uint8_t *buf;
	uint64_t bytes = 0;
	ssize_t n;
	int fl, len, r = -1;

	if ((buf = malloc(STREAM_CHUNK)) == NULL ||
	    (fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		goto out;
	}
	while (np_now_mono_ms() < deadline) {
		n = read(fd, buf, STREAM_CHUNK);
		if (n > 0) {
			bytes += (uint64_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			continue;
		}
		if (n == 0) {
			/* Nothing was ever sent here: the buffer is empty. */
			len = snprintf(ans, sizeof(ans), "sink %llu\n",
			    (unsigned long long)bytes);
			if (write(fd, ans, (size_t)len) == len) {
				r = 0;
			}
		}
		break;
	}
 out:
	close(fd);
	free(buf);
	return r;
}

/*
 * A sink process for fd (closed here), which dies with its parent; the
 * child closes the descriptors in others[0..n) first.  The pid or -1.
 */
static pid_t
sink_spawn(int fd, const int *others, long n, uint64_t deadline)
{
	pid_t pid;
	long i;

	if ((pid = fork()) < 0) {
		close(fd);
		return -1;
	}
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (i = 0; i < n; i++) {
			if (others[i] >= 0 && others[i] != fd) {
				close(others[i]);
			}
		}
		_exit(sink_conn(fd, deadline) == 0 ? 0 : 1);
	}
	close(fd);
	return pid;
}

/*
 * The sink server: a sink process for every connection accepted on lfd
 * (at most SINK_MAX at a time) until the deadline.
 */
static void
sink_serve(int lfd, uint64_t deadline)
{
	struct pollfd p;
	uint64_t now;
	long live = 0;
	int fd;

	while ((now = np_now_mono_ms()) < deadline) {
		while (live > 0 && waitpid(-1, NULL, WNOHANG) > 0) {
			live--;
		}
		p.fd = lfd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, deadline - now > 500 ? 500 :
		    (int)(deadline - now)) <= 0) {
			continue;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			continue;
		}
		if (live >= SINK_MAX) {
			close(fd);
			continue;
		}
		if (sink_spawn(fd, &lfd, 1, deadline) > 0) {
			live++;
		}
	}
}

struct stream {
	int fd;
	uint64_t sent;
	uint64_t counted; /* by the sink */
	char ans[SINK_ANSWER_MAX];
	size_t got;
	int done;
};

/*
 * Blocking writes (as iperf3 does), bounded by SO_SNDTIMEO so that the
 * clock is looked at even when a path stalls; nonblock 0 or 1.
 */
static int
set_blocking_send(int fd, int nonblock)
{
	struct timeval tv = { 0, SEND_TIMEO_MS * 1000 };
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, nonblock ? fl | O_NONBLOCK :
	    fl & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		return -1;
	}
	return 0;
}

/* One STREAM_CHUNK write; -1 on a broken stream. */
static int
send_some(struct stream *st, const uint8_t *zero)
{
	ssize_t n;

	n = write(st->fd, zero, STREAM_CHUNK);
	if (n > 0) {
		st->sent += (uint64_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		return -1;
	}
	return 0;
}

/* Read the sink's answer; 1 when complete, 0 for more, -1 on error. */
static int
read_answer(struct stream *st)
{
	char *end;
	ssize_t n;

	n = read(st->fd, st->ans + st->got, sizeof(st->ans) - 1 - st->got);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return 0;
	}
	if (n <= 0) {
		return -1;
	}
	st->got += (size_t)n;
	st->ans[st->got] = '\0';
	if (strchr(st->ans, '\n') == NULL) {
		return st->got < sizeof(st->ans) - 1 ? 0 : -1;
	}
	if (strncmp(st->ans, "sink ", 5) != 0) {
		return -1;
	}
	errno = 0;
	st->counted = strtoull(st->ans + 5, &end, 10);
	if (errno != 0 || end == st->ans + 5 || *end != '\n') {
		return -1;
	}
	return 1;
}

/* Phase 1: write until end.  0 or -1. */
static int
send_phase(struct stream *st, long n, uint64_t end)
{
	uint8_t *zero;
	long i;
	int r = -1;

	if ((zero = calloc(1, STREAM_CHUNK)) == NULL) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (set_blocking_send(st[i].fd, 0) != 0) {
			goto out;
		}
	}
	while (np_now_mono_ms() < end) {
		for (i = 0; i < n; i++) {
			if (send_some(&st[i], zero) != 0) {
				fprintf(stderr, "np-srbulk: stream %ld: write: "
				    "%s\n", i, strerror(errno));
				goto out;
			}
		}
	}
	r = 0;
 out:
	for (i = 0; i < n; i++) {
		(void)set_blocking_send(st[i].fd, 1);
	}
	free(zero);
	return r;
}

/* Phase 2: shut down writing, collect every sink's count.  0 or -1. */
static int
collect_phase(struct stream *st, struct pollfd *p, long n, uint64_t *t1)
{
	uint64_t now, limit = np_now_mono_ms() + DRAIN_MS;
	long i, left = n;
	int r;

	for (i = 0; i < n; i++) {
		(void)shutdown(st[i].fd, SHUT_WR);
		p[i].fd = st[i].fd;
		p[i].events = POLLIN;
	}
	while (left > 0 && (now = np_now_mono_ms()) < limit) {
		if (poll(p, (nfds_t)n, (int)(limit - now)) <= 0) {
			continue;
		}
		for (i = 0; i < n; i++) {
			if (st[i].done || p[i].revents == 0) {
				continue;
			}
			if ((r = read_answer(&st[i])) < 0) {
				fprintf(stderr, "np-srbulk: stream %ld: no "
				    "answer from the sink\n", i);
				return -1;
			}
			if (r == 1) {
				st[i].done = 1;
				p[i].fd = -1;
				left--;
			}
		}
	}
	*t1 = np_now_mono_ms();
	if (left > 0) {
		fprintf(stderr, "np-srbulk: %ld streams did not drain in %d "
		    "ms\n", left, DRAIN_MS);
		return -1;
	}
	return 0;
}

/*
 * Send on fds[0..n) for secs seconds and print "stream N streams T s
 * sent S bytes B gbps G"; 0 when every sink counted what was sent.
 */
static int
send_run(const int *fds, long n, long secs)
{
	struct stream *st;
	struct pollfd *p;
	uint64_t t0, t1 = 0, sent = 0, counted = 0;
	long i;
	int r = -1;

	st = calloc((size_t)n, sizeof(*st));
	p = calloc((size_t)n, sizeof(*p));
	if (st == NULL || p == NULL) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		st[i].fd = fds[i];
	}
	t0 = np_now_mono_ms();
	if (send_phase(st, n, t0 + (uint64_t)secs * 1000) != 0 ||
	    collect_phase(st, p, n, &t1) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		sent += st[i].sent;
		counted += st[i].counted;
		if (st[i].counted != st[i].sent) {
			fprintf(stderr, "np-srbulk: stream %ld: sent %llu, "
			    "the sink counted %llu\n", i,
			    (unsigned long long)st[i].sent,
			    (unsigned long long)st[i].counted);
			goto out;
		}
	}
	if (t1 <= t0) {
		goto out;
	}
	printf("stream %ld streams %.3f s sent %llu bytes %llu gbps %.2f\n",
	    n, (double)(t1 - t0) / 1000.0, (unsigned long long)sent,
	    (unsigned long long)counted,
	    (double)counted * 8.0 / ((double)(t1 - t0) / 1000.0) / 1e9);
	fflush(stdout);
	r = 0;
 out:
	free(st);
	free(p);
	return r;
}

/*
 * Through np-srd: a sink process per device side, send on the rest.  The
 * ready line goes to the ready file (when not NULL) once every sink runs,
 * just before the first write, as in --plain mode.
 */
static int
stream_srd(struct bulk *b, long secs, const char *ready,
    const char *ready_line)
{
	FILE *f;
	uint64_t deadline = np_now_mono_ms() + (uint64_t)secs * 1000 +
	    DRAIN_MS + 5000;
	pid_t *pid;
	int *cfd;
	long i;
	int r = -1;

	cfd = calloc((size_t)b->opened, sizeof(int));
	pid = calloc((size_t)b->opened, sizeof(pid_t));
	if (cfd == NULL || pid == NULL) {
		goto out;
	}
	for (i = 0; i < b->opened; i++) {
		cfd[i] = b->fd[i * 2];
		pid[i] = -1;
	}
	/* The sink processes own the device sides. */
	for (i = 0; i < b->opened; i++) {
		pid[i] = sink_spawn(b->fd[i * 2 + 1], b->fd, b->count * 2,
		    deadline);
		b->fd[i * 2 + 1] = -1;
		if (pid[i] < 0) {
			goto out;
		}
	}
	if (ready != NULL && (f = fopen(ready, "w")) != NULL) {
		fputs(ready_line, f);
		fclose(f);
	}
	r = send_run(cfd, b->opened, secs);
 out:
	for (i = 0; pid != NULL && i < b->opened; i++) {
		if (pid[i] > 0) {
			kill(pid[i], SIGKILL);
			(void)waitpid(pid[i], NULL, 0);
		}
	}
	free(cfd);
	free(pid);
	return r;
}

/* A connected, non-blocking TCP socket to hp, or -1. */
static int
plain_connect(const struct np_hostport *hp)
{
	struct addrinfo hints, *res = NULL;
	socklen_t sl;
	int fd = -1, err = 0, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(hp->host, hp->port, &hints, &res)) != 0) {
		fprintf(stderr, "np-srbulk: %s: %s\n", hp->host,
		    gai_strerror(r));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 || (connect(fd, res->ai_addr, res->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) ||
	    wait_fd(fd, POLLOUT, np_now_mono_ms() + STEP_MS) != NP_OK) {
		err = errno;
	} else {
		sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) {
			err = errno;
		}
	}
	freeaddrinfo(res);
	if (err != 0 || fd < 0) {
		fprintf(stderr, "np-srbulk: connect %s:%s: %s\n", hp->host,
		    hp->port, err != 0 ? strerror(err) : "timeout");
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* --plain HOST:PORT: n TCP streams to a sink (maybe via a relay); the
 * "open" line also goes to ready (when not NULL) once all are connected. */
static int
run_plain(const char *target, long n, long secs, const char *ready)
{
	struct np_hostport hp = { NULL, NULL, NULL };
	FILE *f;
	int *fds;
	long i, up = 0;
	int rc = 1;

	if ((fds = calloc((size_t)n, sizeof(int))) == NULL) {
		return 1;
	}
	if (np_hostport_parse(target, &hp) != NP_OK) {
		fprintf(stderr, "np-srbulk: bad HOST:PORT: %s\n", target);
		goto out;
	}
	for (up = 0; up < n; up++) {
		if ((fds[up] = plain_connect(&hp)) < 0) {
			goto out;
		}
	}
	printf("open %ld errors 0 ms 0\n", n);
	fflush(stdout);
	if (ready != NULL && (f = fopen(ready, "w")) != NULL) {
		fprintf(f, "open %ld errors 0 ms 0\n", n);
		fclose(f);
	}
	if (send_run(fds, n, secs) == 0) {
		rc = 0;
	}
 out:
	for (i = 0; i < up; i++) {
		close(fds[i]);
	}
	free(fds);
	np_hostport_free(&hp);
	return rc;
}

/* --sink PORT: serve sinks on 127.0.0.1:PORT for life_s seconds. */
static int
run_sink(const char *port, const char *port_file, long life_s)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	FILE *f;
	long p = num_arg(port, 0, 65535);
	int fd, one = 1, rc = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)p);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "np-srbulk: sink on port %s: %s\n", port,
		    strerror(errno));
		goto out;
	}
	if (port_file != NULL) {
		if ((f = fopen(port_file, "w")) == NULL) {
			fprintf(stderr, "np-srbulk: %s: %s\n", port_file,
			    strerror(errno));
			goto out;
		}
		fprintf(f, "%u\n", ntohs(sa.sin_port));
		fclose(f);
	}
	sink_serve(fd, np_now_mono_ms() + (uint64_t)life_s * 1000);
	rc = 0;
 out:
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

/* Idle mode: hold the sessions, then check each one end to end. */
static int
hold_and_verify(struct bulk *b, const char *go, long hold_s,
    uint64_t deadline, long timeout_s)
{
	uint64_t t1;
	long v1, v2;

	/* Keep the control-plane connection serviced while holding. */
	if (go != NULL) {
		while (access(go, F_OK) != 0 && np_now_mono_ms() < deadline +
		    (uint64_t)timeout_s * 1000) {
			(void)np_ev_run_once(b->ev, 100);
		}
	} else {
		t1 = np_now_mono_ms() + (uint64_t)hold_s * 1000;
		while (np_now_mono_ms() < t1) {
			(void)np_ev_run_once(b->ev, 100);
		}
	}
	deadline = np_now_mono_ms() + 30000;
	v1 = verify_dir(b, 0, deadline);
	v2 = verify_dir(b, 1, deadline);
	printf("verified %ld of %ld (c->d %ld, d->c %ld)\n",
	    v1 < v2 ? v1 : v2, b->opened, v1, v2);
	fflush(stdout);
	return b->opened == b->count && v1 == b->count && v2 == b->count ?
	    0 : 1;
}

enum { OPT_PLAIN = 256, OPT_SINK, OPT_PORT_FILE };

static const struct option long_opts[] = {
	{ "plain", required_argument, NULL, OPT_PLAIN },
	{ "sink", required_argument, NULL, OPT_SINK },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct bulk b;
	struct bconf cf;
	const char *config = NULL, *ready = NULL, *go = NULL;
	const char *plain = NULL, *sink = NULL, *port_file = NULL;
	long timeout_s = -1, hold_s = 0, stream_s = 0, i;
	char ready_line[96];
	uint64_t t0, t1, deadline;
	FILE *f;
	int ch, rc = 1;

	memset(&b, 0, sizeof(b));
	memset(&cf, 0, sizeof(cf));
	b.window = 32;
	while ((ch = getopt_long(argc, argv, "F:s:n:w:S:T:r:g:H:X:h",
	    long_opts, NULL)) != -1) {
		switch (ch) {
		case 'F': config = optarg; break;
		case 's':
			if (np_ident_norm(optarg, b.sr, sizeof(b.sr)) !=
			    NP_OK) {
				usage();
			}
			break;
		case 'n': b.count = num_arg(optarg, 1, MAX_COUNT); break;
		case 'w': b.window = num_arg(optarg, 1, 4096); break;
		case 'S': b.sources = num_arg(optarg, 0, 250); break;
		case 'T': timeout_s = num_arg(optarg, 1, 86400); break;
		case 'r': ready = optarg; break;
		case 'g': go = optarg; break;
		case 'H': hold_s = num_arg(optarg, 0, 3600); break;
		case 'X': stream_s = num_arg(optarg, 1, 3600); break;
		case OPT_PLAIN: plain = optarg; break;
		case OPT_SINK: sink = optarg; break;
		case OPT_PORT_FILE: port_file = optarg; break;
		default: usage();
		}
	}
	if (optind != argc) {
		usage();
	}
	signal(SIGPIPE, SIG_IGN);
	if (sink != NULL) {
		return run_sink(sink, port_file, timeout_s > 0 ? timeout_s :
		    3600);
	}
	if (plain != NULL) {
		if (stream_s == 0 || b.count > SINK_MAX) {
			usage();
		}
		return run_plain(plain, b.count > 0 ? b.count : 1, stream_s,
		    ready);
	}
	if (config == NULL || b.sr[0] != '@' || b.count == 0 ||
	    (stream_s > 0 && b.count > SINK_MAX)) {
		usage();
	}
	if (timeout_s < 0) {
		timeout_s = 120;
	}
	raise_nofile(b.count * 2 + 64);
	if (np_crypto_init() != NP_OK ||
	    (b.fd = malloc(sizeof(int) * (size_t)b.count * 2)) == NULL ||
	    (b.ev = np_ev_new()) == NULL ||
	    (b.replay = np_replay_new((size_t)b.count * 2 + 64)) == NULL) {
		fprintf(stderr, "np-srbulk: out of memory\n");
		goto out;
	}
	for (i = 0; i < b.count * 2; i++) {
		b.fd[i] = -1;
	}
	if (load(&b, config, &cf) != NP_OK) {
		goto out;
	}
	deadline = np_now_mono_ms() + (uint64_t)timeout_s * 1000;
	t0 = np_now_mono_ms();
	open_all(&b, deadline);
	t1 = np_now_mono_ms();
	printf("open %ld errors %ld ms %llu%s%s\n", b.opened, b.errors,
	    (unsigned long long)(t1 - t0), b.first_err[0] ? " first_error " :
	    "", b.first_err);
	fflush(stdout);
	snprintf(ready_line, sizeof(ready_line), "open %ld errors %ld ms %llu\n",
	    b.opened, b.errors, (unsigned long long)(t1 - t0));
	if (stream_s == 0 && ready != NULL &&
	    (f = fopen(ready, "w")) != NULL) {
		fputs(ready_line, f);
		fclose(f);
	}
	if (stream_s > 0) {
		/* There the ready file is written once the sinks run. */
		if (b.opened == b.count &&
		    stream_srd(&b, stream_s, ready, ready_line) == 0) {
			rc = 0;
		}
		goto out;
	}
	rc = hold_and_verify(&b, go, hold_s, deadline, timeout_s);
 out:
	if (b.fd != NULL) {
		for (i = 0; i < b.count * 2; i++) {
			if (b.fd[i] >= 0) {
				close(b.fd[i]);
			}
		}
		free(b.fd);
	}
	if (b.cpc != NULL) {
		np_cpc_stop(b.cpc);
	}
	np_cpc_free(b.cpc);
	np_ev_free(b.ev);
	np_replay_free(b.replay);
	np_key_free(b.key);
	np_conf_free(bconf_table, &cf);
	return rc;
}
