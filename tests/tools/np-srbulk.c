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
 * sessions are open, a child process writes zeros to every client side
 * as fast as it can (128 KiB writes, as iperf3 does) while the parent
 * reads and discards on every device side, for SECONDS; it prints
 * "stream N sessions S s bytes B gbps G".  One relay hop (np-srd) is
 * then the only one in the path, as socat or HAProxy are in theirs.
 * Exit 0 when all COUNT sessions opened and verified (streamed), 1
 * otherwise, 2 on a usage error.
 */
#include <sys/resource.h>
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
	    "[-H HOLD_S] [-X STREAM_S]\n");
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

#define STREAM_CHUNK (128 * 1024)

/* Child: write zeros to every client side until killed. */
static void
stream_writer(struct bulk *b)
{
	static uint8_t zero[STREAM_CHUNK];
	struct pollfd *p;
	long i;

	if ((p = calloc((size_t)b->opened, sizeof(*p))) == NULL) {
		_exit(1);
	}
	for (i = 0; i < b->opened; i++) {
		p[i].fd = b->fd[i * 2];
		p[i].events = POLLOUT;
	}
	for (;;) {
		if (poll(p, (nfds_t)b->opened, 1000) < 0 && errno != EINTR) {
			_exit(1);
		}
		for (i = 0; i < b->opened; i++) {
			if (p[i].revents & (POLLERR | POLLHUP)) {
				_exit(0);
			}
			if ((p[i].revents & POLLOUT) &&
			    write(p[i].fd, zero, sizeof(zero)) < 0 &&
			    errno != EAGAIN && errno != EINTR) {
				_exit(0);
			}
		}
	}
}

/* Parent: read every device side for secs seconds; 0 or -1. */
static int
stream_run(struct bulk *b, long secs)
{
	static uint8_t buf[4 * STREAM_CHUNK];
	struct pollfd *p;
	uint64_t t0 = 0, now, end = 0, bytes = 0, limit;
	long i;
	pid_t pid;
	ssize_t n;
	int st;

	if ((p = calloc((size_t)b->opened, sizeof(*p))) == NULL) {
		return -1;
	}
	if ((pid = fork()) < 0) {
		free(p);
		return -1;
	}
	if (pid == 0) {
		stream_writer(b);
	}
	for (i = 0; i < b->opened; i++) {
		p[i].fd = b->fd[i * 2 + 1];
		p[i].events = POLLIN;
	}
	limit = np_now_mono_ms() + (uint64_t)secs * 1000 + 10000;
	while ((now = np_now_mono_ms()) < limit && (end == 0 || now < end)) {
		if (poll(p, (nfds_t)b->opened, 200) <= 0) {
			continue;
		}
		for (i = 0; i < b->opened; i++) {
			if (!(p[i].revents & (POLLIN | POLLERR | POLLHUP))) {
				continue;
			}
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				p[i].fd = -1;
				continue;
			}
			if (t0 == 0) {
				t0 = np_now_mono_ms();
				end = t0 + (uint64_t)secs * 1000;
			}
			bytes += (uint64_t)n;
		}
	}
	now = np_now_mono_ms();
	kill(pid, SIGKILL);
	(void)waitpid(pid, &st, 0);
	free(p);
	if (t0 == 0 || now <= t0) {
		printf("stream %ld sessions: no data\n", b->opened);
		return -1;
	}
	printf("stream %ld sessions %.1f s bytes %llu gbps %.2f\n", b->opened,
	    (double)(now - t0) / 1000.0, (unsigned long long)bytes,
	    (double)bytes * 8.0 / ((double)(now - t0) / 1000.0) / 1e9);
	fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	struct bulk b;
	struct bconf cf;
	const char *config = NULL, *ready = NULL, *go = NULL;
	long timeout_s = 120, hold_s = 0, stream_s = 0, i, v1 = 0, v2 = 0;
	uint64_t t0, t1, deadline;
	FILE *f;
	int ch, rc = 1;

	memset(&b, 0, sizeof(b));
	memset(&cf, 0, sizeof(cf));
	b.window = 32;
	while ((ch = getopt(argc, argv, "F:s:n:w:S:T:r:g:H:X:h")) != -1) {
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
		case 'T': timeout_s = num_arg(optarg, 1, 3600); break;
		case 'r': ready = optarg; break;
		case 'g': go = optarg; break;
		case 'H': hold_s = num_arg(optarg, 0, 3600); break;
		case 'X': stream_s = num_arg(optarg, 1, 3600); break;
		default: usage();
		}
	}
	if (config == NULL || b.sr[0] != '@' || b.count == 0 ||
	    optind != argc) {
		usage();
	}
	signal(SIGPIPE, SIG_IGN);
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
	if (ready != NULL && (f = fopen(ready, "w")) != NULL) {
		fprintf(f, "open %ld errors %ld ms %llu\n", b.opened, b.errors,
		    (unsigned long long)(t1 - t0));
		fclose(f);
	}
	if (stream_s > 0) {
		if (b.opened == b.count && stream_run(&b, stream_s) == 0) {
			rc = 0;
		}
		goto out;
	}
	/* Keep the control-plane connection serviced while holding. */
	if (go != NULL) {
		while (access(go, F_OK) != 0 && np_now_mono_ms() < deadline +
		    (uint64_t)timeout_s * 1000) {
			(void)np_ev_run_once(b.ev, 100);
		}
	} else {
		t1 = np_now_mono_ms() + (uint64_t)hold_s * 1000;
		while (np_now_mono_ms() < t1) {
			(void)np_ev_run_once(b.ev, 100);
		}
	}
	deadline = np_now_mono_ms() + 30000;
	v1 = verify_dir(&b, 0, deadline);
	v2 = verify_dir(&b, 1, deadline);
	printf("verified %ld of %ld (c->d %ld, d->c %ld)\n",
	    v1 < v2 ? v1 : v2, b.opened, v1, v2);
	fflush(stdout);
	if (b.opened == b.count && v1 == b.count && v2 == b.count) {
		rc = 0;
	}
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
