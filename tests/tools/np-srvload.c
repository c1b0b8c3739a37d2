/*
 * np-srvload: load generator for bench/server (np-server at scale).
 *
 *   np-srvload enroll -s HOST:PORT -f FP -k SEEDFILE -i IDS [-c CONC]
 *                     [-b SRC,...] [-D SECS]
 *	Enrolls every identity of IDS (lines "@name TOKEN", as
 *	`np-server token` minted them) through the protocol (TLS, hello,
 *	enroll, welcome), CONC at a time, then closes each connection.
 *
 *   np-srvload idle -s HOST:PORT -f FP -k SEEDFILE -i IDS -L N1,N2,...
 *                   -p PID [-c CONC] [-b SRC,...] [--settle-ms MS]
 *                   [--cpu-ms MS] [-D SECS]
 *	Device-like idle connections: each authenticates as its own
 *	identity (the Nth connection as the Nth line of IDS) and monitors
 *	its mailbox, as np-deviced does.  After one warm-up connection
 *	(opened, authenticated and closed, so the one-time set-up of
 *	OpenSSL and SQLite in np-server is not counted per connection) it
 *	reads np-server's (PID) RSS and CPU time, then opens connections
 *	up to N1, N2, ... in turn; at each level it waits SETTLE ms,
 *	reads RSS again, and the server's CPU time over CPU ms of idling.
 *	At the end every connection is pinged and must answer.
 *
 *   np-srvload route -s HOST:PORT -f FP -k SEEDFILE -i IDS -P PAIRS
 *                    -z BYTES -t SECS [-w WINDOW] [--echo] [-p PID]
 *                    [-n MAX_PER_PAIR] [-D SECS]
 *	PAIRS pairs of connections: A (line 2i of IDS) sends boxes of
 *	BYTES to B (line 2i+1), which monitors and acks each.  At most
 *	WINDOW boxes of a pair are sent and not yet received by B (an
 *	end-to-end window).  Senders stop after SECS; the run ends when
 *	every box sent has arrived.  Every box is checked at B: the sender,
 *	the message id and every byte of the box, in order; any difference
 *	fails the run.  With --echo the same clients, sending the very same
 *	frames, talk to `np-srvload echo-server` instead, which relays each
 *	frame of A's connection to B's: the anchor.
 *
 *   np-srvload echo-server --cert CRT --key KEY --port-file F [-D SECS]
 *	A TLS 1.3 server (lib/tls, the server context np-server uses) on
 *	127.0.0.1 that pairs connections by their first frame
 *	{"t":"pair","pair":N,"role":"a"|"b"} and relays every later frame
 *	from A's connection to B's, unparsed.
 *
 * Keys: the identity key of "@name" is the Ed25519 key whose seed is
 * BLAKE2b-256(key = the 32 bytes of SEEDFILE (64 hex digits), "@name").
 * Every length from the network is capped (frames at 64 KiB, buffers at
 * a few MiB), every run stops at its hard deadline (-D, default 120 s),
 * and any failure ends the tool with exit 1 and a message saying what
 * went wrong; 2 is a usage error.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "ev.h"
#include "frame.h"
#include "ident.h"
#include "key.h"
#include "tls.h"

#define MAX_IDS 200000
#define MAX_LEVELS 16
#define MAX_PAIRS 1000
#define MAX_SRC 16
#define MAX_CONC 1024
#define TOKEN_MAX 128
#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024) /* per wake-up, as np-server's */
#define CLIENT_READ_BUDGET (64 * 1024)
#define IN_CAP (NP_FRAME_MAX + 4 + READ_CHUNK)
#define OUT_CAP (8 * 1024 * 1024)
#define ECHO_OUT_HWM (1024 * 1024)
#define BOX_MIN 32
#define BOX_MAX 45000 /* base64 of it and the send frame fit 64 KiB */
#define BOX_TTL 300
#define RID_MONITOR 1
#define RID_PING 2
#define RID_SEND0 16 /* first rid of the boxes of a sender */

/* ---- small helpers ---- */

static const char *prog = "np-srvload";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: np-srvload enroll -s HOST:PORT -f FP -k SEEDFILE -i IDS "
	    "[-c CONC] [-b SRC,...] [-D SECS]\n"
	    "       np-srvload idle -s HOST:PORT -f FP -k SEEDFILE -i IDS "
	    "-L N1,N2,... -p PID\n"
	    "                  [-c CONC] [-b SRC,...] [--settle-ms MS] "
	    "[--cpu-ms MS] [-D SECS]\n"
	    "       np-srvload route -s HOST:PORT -f FP -k SEEDFILE -i IDS "
	    "-P PAIRS -z BYTES -t SECS\n"
	    "                  [-w WINDOW] [--echo] [-p PID] "
	    "[-n MAX_PER_PAIR] [-D SECS]\n"
	    "                  [--server-b HOST:PORT (the receivers' server: "
	    "another instance)]\n"
	    "       np-srvload echo-server --cert CRT --key KEY "
	    "--port-file F [-D SECS]\n");
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
		fprintf(stderr, "%s: bad number '%.32s' (%ld..%ld)\n", prog, s,
		    min, max);
		exit(2);
	}
	return v;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static volatile sig_atomic_t got_term;

static void
on_alarm(int sig)
{
	static const char m[] =
	    "np-srvload: hard deadline passed (SIGALRM), giving up\n";

	ssize_t w;

	(void)sig;
	w = write(2, m, sizeof(m) - 1);
	(void)w;
	_exit(1);
}

static void
on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* The run's hard deadline: checked in the loop, SIGALRM as a backstop. */
static int64_t deadline_us;

static void
deadline_set(long secs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	deadline_us = now_us() + (int64_t)secs * 1000000;
	alarm((unsigned)secs + 10);
}

static void
deadline_check(const char *what)
{
	if (now_us() > deadline_us) {
		die("hard deadline passed while %s", what);
	}
}

static void
nofile_raise(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		die("getrlimit: %s", strerror(errno));
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((long)rl.rlim_cur < need) {
		die("%ld descriptors needed, the open-files limit is %ld "
		    "(ulimit -n)", need, (long)rl.rlim_cur);
	}
}

/* ---- options ---- */

struct opts {
	const char *cmd;
	const char *server, *fp, *seedfile, *idsfile;
	const char *cert, *key, *port_file, *server_b;
	const char *levels;
	const char *sources;
	long conc, deadline_s, pid, settle_ms, cpu_ms;
	long pairs, size, secs, window, max_pp;
	int echo;
};

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"server", required_argument, NULL, 's'},
	    {"fingerprint", required_argument, NULL, 'f'},
	    {"seed", required_argument, NULL, 'k'},
	    {"ids", required_argument, NULL, 'i'},
	    {"conc", required_argument, NULL, 'c'},
	    {"source", required_argument, NULL, 'b'},
	    {"deadline", required_argument, NULL, 'D'},
	    {"levels", required_argument, NULL, 'L'},
	    {"pid", required_argument, NULL, 'p'},
	    {"pairs", required_argument, NULL, 'P'},
	    {"size", required_argument, NULL, 'z'},
	    {"secs", required_argument, NULL, 't'},
	    {"window", required_argument, NULL, 'w'},
	    {"max-per-pair", required_argument, NULL, 'n'},
	    {"echo", no_argument, NULL, 'E'},
	    {"settle-ms", required_argument, NULL, 1},
	    {"cpu-ms", required_argument, NULL, 2},
	    {"cert", required_argument, NULL, 3},
	    {"key", required_argument, NULL, 4},
	    {"port-file", required_argument, NULL, 5},
	    {"server-b", required_argument, NULL, 6},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->conc = 32;
	o->deadline_s = 120;
	o->settle_ms = 2000;
	o->cpu_ms = 5000;
	o->pairs = 100;
	o->size = 256;
	o->secs = 5;
	o->window = 32;
	o->max_pp = 10000000;
	o->pid = 0;
	if (argc < 2) {
		usage();
	}
	o->cmd = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "s:f:k:i:c:b:D:L:p:P:z:t:w:n:E",
	    lo, NULL)) != -1) {
		switch (ch) {
		case 's': o->server = optarg; break;
		case 'f': o->fp = optarg; break;
		case 'k': o->seedfile = optarg; break;
		case 'i': o->idsfile = optarg; break;
		case 'c': o->conc = num_arg(optarg, 1, MAX_CONC); break;
		case 'b': o->sources = optarg; break;
		case 'D': o->deadline_s = num_arg(optarg, 1, 3600); break;
		case 'L': o->levels = optarg; break;
		case 'p': o->pid = num_arg(optarg, 1, 1L << 30); break;
		case 'P': o->pairs = num_arg(optarg, 1, MAX_PAIRS); break;
		case 'z': o->size = num_arg(optarg, BOX_MIN, BOX_MAX); break;
		case 't': o->secs = num_arg(optarg, 1, 3600); break;
		case 'w': o->window = num_arg(optarg, 1, 4096); break;
		case 'n': o->max_pp = num_arg(optarg, 1, 100000000); break;
		case 'E': o->echo = 1; break;
		case 1: o->settle_ms = num_arg(optarg, 0, 600000); break;
		case 2: o->cpu_ms = num_arg(optarg, 0, 600000); break;
		case 3: o->cert = optarg; break;
		case 4: o->key = optarg; break;
		case 5: o->port_file = optarg; break;
		case 6: o->server_b = optarg; break;
		default: usage();
		}
	}
	if (optind != argc) {
		usage();
	}
}

/* ---- identities ---- */

struct ident {
	char name[NP_IDENT_MAX + 1];
	char *token; /* NULL when the file has none */
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static struct ident *ids;
static long nids;

static void
seed_load(const char *path, uint8_t seed[32])
{
	char text[128];
	size_t n, bin_len;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		die("%s: %s", path, strerror(errno));
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) {
		text[--n] = '\0';
	}
	if (n != 64 || sodium_hex2bin(seed, 32, text, n, NULL, &bin_len,
	    NULL) != 0 || bin_len != 32) {
		die("%s: want 64 hex digits", path);
	}
}

/* Read "@name [TOKEN]" lines; keys are derived from the seed. */
static void
ids_load(const char *path, const char *seedfile, long need, int want_tokens)
{
	uint8_t seed[32], kseed[32];
	char line[512], *name, *tok, *save;
	FILE *f;
	long ln = 0;

	seed_load(seedfile, seed);
	if ((f = fopen(path, "r")) == NULL) {
		die("%s: %s", path, strerror(errno));
	}
	if ((ids = calloc((size_t)need, sizeof(*ids))) == NULL) {
		die("out of memory");
	}
	while (nids < need && fgets(line, sizeof(line), f) != NULL) {
		ln++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			die("%s:%ld: line too long", path, ln);
		}
		if ((name = strtok_r(line, " \t\r\n", &save)) == NULL) {
			continue;
		}
		tok = strtok_r(NULL, " \t\r\n", &save);
		if (!np_ident_valid(name)) {
			die("%s:%ld: bad identity '%.64s'", path, ln, name);
		}
		if (want_tokens && (tok == NULL || strlen(tok) > TOKEN_MAX)) {
			die("%s:%ld: no token (or longer than %d)", path, ln,
			    TOKEN_MAX);
		}
		snprintf(ids[nids].name, sizeof(ids[nids].name), "%s", name);
		if (want_tokens && (ids[nids].token = strdup(tok)) == NULL) {
			die("out of memory");
		}
		crypto_generichash(kseed, sizeof(kseed), (const uint8_t *)name,
		    strlen(name), seed, sizeof(seed));
		crypto_sign_seed_keypair(ids[nids].pk, ids[nids].sk, kseed);
		nids++;
	}
	fclose(f);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(kseed, sizeof(kseed));
	if (nids < need) {
		die("%s: %ld identities needed, %ld found", path, need, nids);
	}
}

/* ---- /proc of the server ---- */

static long
proc_rss_kib(long pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL) {
		die("process %ld is gone (%s)", pid, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			v = strtol(line + 6, NULL, 10);
		}
	}
	fclose(f);
	if (v < 0) {
		die("no VmRSS in %s", path);
	}
	return v;
}

/* utime + stime of pid, in clock ticks. */
static long long
proc_cpu_ticks(long pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL) {
		die("process %ld is gone (%s)", pid, strerror(errno));
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "pid (comm)": state is field 3, utime 14, stime 15. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &ut, &st) != 2) {
		die("cannot parse %s", path);
	}
	return (long long)(ut + st);
}

static double
ticks_ms(long long t)
{
	return (double)t * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the client side ---- */

enum cst {
	CS_CONNECT = 1, /* TCP connect in progress */
	CS_TLS,		/* TLS handshake */
	CS_HELLO,	/* waiting for hello */
	CS_WELCOME,	/* auth / enroll sent */
	CS_MONITOR,	/* monitor sent */
	CS_JOIN,	/* echo: pair frame sent, waiting for ok */
	CS_READY,
	CS_CLOSED,
};

enum role { R_ENROLL = 1, R_IDLE, R_A, R_B };

struct pair;

struct cl {
	int fd;
	enum cst st;
	enum role role;
	struct np_tls *tls;
	struct np_buf *in, *out;
	uint32_t mask; /* events registered */
	long ident;
	struct pair *pair;
	int monitor;   /* send monitor after welcome */
	int echo;      /* talks to the echo server */
	int pinged;    /* ping sent, answer awaited */
	int kick;      /* in kicked[]: read again */
	uint8_t cb[NP_TLS_CB_LEN];
};

struct pair {
	struct cl *a, *b;
	long idx;
	int64_t sent, recvd, results;
	uint8_t *base; /* size - 16 random bytes, rotated per box */
};

static struct {
	int ep;
	struct np_tls_ctx *ctx;
	struct sockaddr_in dst;
	struct sockaddr_in dst_b; /* route --server-b: where B connects */
	int has_dst_b;
	struct sockaddr_in src[MAX_SRC];
	int nsrc;
	const char *fp;
	/* counters */
	long launched, inflight, ready, closed_ok, pings_ok;
	/* route */
	struct pair *pairs;
	long npairs;
	long size, window, max_pp;
	int sending, stopping;
	uint32_t run_nonce;
	int64_t t_start, t_last;
	uint8_t *scratch, *expect;
	char *text; /* a box's base64, unescaped */
	char *frame; /* the send frame, built per box */
} G;

static void
parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon;
	size_t hl;

	if (s == NULL || (colon = strrchr(s, ':')) == NULL ||
	    (hl = (size_t)(colon - s)) == 0 || hl >= sizeof(host)) {
		die("bad address '%.64s' (want IPV4:PORT)", s ? s : "");
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)num_arg(colon + 1, 1, 65535));
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		die("bad IPv4 address '%s'", host);
	}
}

static void
parse_sources(const char *list)
{
	char tmp[1024], *tok, *save;

	G.nsrc = 0;
	if (list == NULL) {
		return;
	}
	if (strlen(list) >= sizeof(tmp)) {
		die("source list too long");
	}
	snprintf(tmp, sizeof(tmp), "%s", list);
	for (tok = strtok_r(tmp, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (G.nsrc == MAX_SRC) {
			die("at most %d source addresses", MAX_SRC);
		}
		memset(&G.src[G.nsrc], 0, sizeof(G.src[0]));
		G.src[G.nsrc].sin_family = AF_INET;
		if (inet_pton(AF_INET, tok, &G.src[G.nsrc].sin_addr) != 1) {
			die("bad source address '%.32s'", tok);
		}
		G.nsrc++;
	}
}

static void
cl_mask(struct cl *c, uint32_t want)
{
	struct epoll_event e;

	if (c->st == CS_CLOSED || want == c->mask) {
		return;
	}
	memset(&e, 0, sizeof(e));
	e.events = want;
	e.data.ptr = c;
	if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
		die("epoll_ctl: %s", strerror(errno));
	}
	c->mask = want;
}

static const char *
cl_name(const struct cl *c)
{
	return c->ident >= 0 && c->ident < nids ? ids[c->ident].name : "?";
}

static void
cl_close(struct cl *c)
{
	if (c->st == CS_CLOSED) {
		return;
	}
	(void)epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
	np_tls_free(c->tls);
	c->tls = NULL;
	close(c->fd);
	c->fd = -1;
	np_buf_free(c->in);
	np_buf_free(c->out);
	c->in = c->out = NULL;
	c->st = CS_CLOSED;
}

static void
cl_update(struct cl *c)
{
	uint32_t m = 0;

	if (c->st == CS_CLOSED) {
		return;
	}
	if (c->st == CS_CONNECT) {
		m = EPOLLOUT;
	} else if (c->st == CS_TLS) {
		m = (np_tls_want(c->tls) & NP_EV_WRITE) ? EPOLLOUT : EPOLLIN;
	} else {
		m = EPOLLIN;
		if ((c->out != NULL && np_buf_len(c->out) > 0) ||
		    (np_tls_want(c->tls) & NP_EV_WRITE)) {
			m |= EPOLLOUT;
		}
	}
	cl_mask(c, m);
}

static void
cl_flush(struct cl *c)
{
	size_t n;
	int r;

	while (c->st != CS_CLOSED && c->out != NULL && np_buf_len(c->out) > 0) {
		r = np_tls_write(c->tls, np_buf_ptr(c->out), np_buf_len(c->out),
		    &n);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			die("%s: write failed: %s", cl_name(c), np_strerror(r));
		}
		np_buf_consume(c->out, n);
	}
	if (c->out != NULL && np_buf_len(c->out) == 0) {
		np_buf_free(c->out);
		c->out = NULL;
	}
	cl_update(c);
}

static uint8_t *
out_reserve(struct cl *c, size_t n)
{
	uint8_t *p;

	if (c->out == NULL && (c->out = np_buf_new(OUT_CAP)) == NULL) {
		die("out of memory");
	}
	if (np_buf_reserve(c->out, n, &p) != NP_OK) {
		die("%s: output over %d bytes", cl_name(c), OUT_CAP);
	}
	return p;
}

/* Queue one frame holding json[0..len). */
static void
cl_send(struct cl *c, const char *json, size_t len)
{
	uint8_t *p;

	if (len == 0 || len > NP_FRAME_MAX) {
		die("internal: frame of %zu bytes", len);
	}
	p = out_reserve(c, 4 + len);
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, json, len);
}

static void
cl_sendf(struct cl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
cl_sendf(struct cl *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n <= 0 || (size_t)n >= sizeof(buf)) {
		die("internal: message too long");
	}
	cl_send(c, buf, (size_t)n);
}

static const char *
jstr(struct json_object *o, const char *key, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		return NULL;
	}
	if (len != NULL) {
		*len = (size_t)json_object_get_string_len(v);
	}
	return json_object_get_string(v);
}

static int
jint(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		return -1;
	}
	*out = json_object_get_int64(v);
	return 0;
}

/* An error frame from the server ends the run with its words. */
static void
check_error(struct cl *c, struct json_object *o, const char *type)
{
	const char *code, *msg;

	if (strcmp(type, "error") != 0) {
		return;
	}
	code = jstr(o, "code", NULL);
	msg = jstr(o, "msg", NULL);
	die("%s: the server answered error '%.32s': %.200s", cl_name(c),
	    code ? code : "?", msg ? msg : "?");
}

static void
start_conn(long ident, enum role role, struct pair *p, int monitor, int echo);

/* ---- route: boxes ---- */

/*
 * Base64 (standard alphabet, padded) by table, for the boxes: libsodium's
 * constant-time coder costs ~50 us per 4 KiB, which would make the load
 * generator, not the server, the limit.  Boxes are no secrets here.
 */
static const char b64_enc[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static int8_t b64_dec[256];

static void
b64_init(void)
{
	int i;

	memset(b64_dec, -1, sizeof(b64_dec));
	for (i = 0; i < 64; i++) {
		b64_dec[(uint8_t)b64_enc[i]] = (int8_t)i;
	}
}

/* Encode n bytes; out gets 4 * ceil(n / 3) characters (no NUL). */
static size_t
b64_fast_enc(const uint8_t *in, size_t n, char *out)
{
	size_t i, k = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[k++] = b64_enc[v >> 18];
		out[k++] = b64_enc[(v >> 12) & 63];
		out[k++] = b64_enc[(v >> 6) & 63];
		out[k++] = b64_enc[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[k++] = b64_enc[v >> 18];
		out[k++] = b64_enc[(v >> 12) & 63];
		out[k++] = '=';
		out[k++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[k++] = b64_enc[v >> 18];
		out[k++] = b64_enc[(v >> 12) & 63];
		out[k++] = b64_enc[(v >> 6) & 63];
		out[k++] = '=';
	}
	return k;
}

/* Strict decode of s[0..len) into at most cap bytes; -1 when it is not
 * canonical padded base64. */
static int
b64_fast_dec(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	size_t i, k = 0, pad = 0;
	int a, b, c, d;

	if (len == 0 || len % 4 != 0) {
		return -1;
	}
	if (s[len - 1] == '=') {
		pad = s[len - 2] == '=' ? 2 : 1;
	}
	if ((len / 4) * 3 - pad > cap) {
		return -1;
	}
	for (i = 0; i < len; i += 4) {
		a = b64_dec[(uint8_t)s[i]];
		b = b64_dec[(uint8_t)s[i + 1]];
		c = (i + 4 == len && pad == 2) ? 0 : b64_dec[(uint8_t)s[i + 2]];
		d = (i + 4 == len && pad >= 1) ? 0 : b64_dec[(uint8_t)s[i + 3]];
		if ((a | b | c | d) < 0) {
			return -1;
		}
		out[k++] = (uint8_t)(a << 2 | b >> 4);
		if (i + 4 < len || pad < 2) {
			out[k++] = (uint8_t)(b << 4 | c >> 2);
		}
		if (i + 4 < len || pad < 1) {
			out[k++] = (uint8_t)(c << 6 | d);
		}
	}
	*n = k;
	return 0;
}

/* The box seq of pair p: a header, then p's random bytes rotated. */
static void
box_make(const struct pair *p, int64_t seq, uint8_t *out)
{
	size_t l = (size_t)G.size - 16, off;
	uint64_t s = (uint64_t)seq;
	int i;

	memcpy(out, "NPLD", 4);
	out[4] = (uint8_t)(p->idx >> 24);
	out[5] = (uint8_t)(p->idx >> 16);
	out[6] = (uint8_t)(p->idx >> 8);
	out[7] = (uint8_t)p->idx;
	for (i = 0; i < 8; i++) {
		out[8 + i] = (uint8_t)(s >> (56 - 8 * i));
	}
	off = (size_t)((s * 131) % l);
	memcpy(out + 16, p->base + off, l - off);
	memcpy(out + 16 + (l - off), p->base, off);
}

static void
mid_make(const struct pair *p, int64_t seq, char out[33])
{
	snprintf(out, 33, "%08x%08lx%016llx", G.run_nonce,
	    (unsigned long)p->idx, (unsigned long long)seq);
}

/* Queue sends on A while the window and the run allow. */
static void
pair_fill(struct pair *p)
{
	struct cl *a = p->a;
	char mid[33], pre[256];
	size_t b64len, plen, flen;
	uint8_t *dst;
	int n;

	if (!G.sending || a->st != CS_READY) {
		return;
	}
	b64len = sodium_base64_ENCODED_LEN((size_t)G.size,
	    sodium_base64_VARIANT_ORIGINAL);
	while (p->sent - p->recvd < G.window && p->sent < G.max_pp &&
	    !G.stopping) {
		mid_make(p, p->sent, mid);
		n = snprintf(pre, sizeof(pre),
		    "{\"t\":\"send\",\"rid\":%lld,\"to\":\"%s\",\"mid\":\"%s\","
		    "\"ttl\":%d,\"box\":\"", (long long)(RID_SEND0 + p->sent),
		    ids[p->b->ident].name, mid, BOX_TTL);
		if (n <= 0 || (size_t)n >= sizeof(pre)) {
			die("internal: send prefix");
		}
		plen = (size_t)n;
		flen = plen + (b64len - 1) + 2;
		if (flen > NP_FRAME_MAX) {
			die("a box of %ld bytes does not fit one frame",
			    G.size);
		}
		box_make(p, p->sent, G.expect);
		dst = out_reserve(a, 4 + flen);
		dst[0] = (uint8_t)(flen >> 24);
		dst[1] = (uint8_t)(flen >> 16);
		dst[2] = (uint8_t)(flen >> 8);
		dst[3] = (uint8_t)flen;
		memcpy(dst + 4, pre, plen);
		(void)b64_fast_enc(G.expect, (size_t)G.size,
		    (char *)dst + 4 + plen);
		memcpy(dst + 4 + plen + b64len - 1, "\"}", 2);
		p->sent++;
	}
	cl_flush(a);
}

/*
 * The hot path does not build a JSON tree: the frames of a run have a
 * known flat shape (one object of strings and integers, values without
 * quotes: names, hex, base64), so a member is found by its "key": bytes.
 * json-c escapes '/' as "\/"; any other escape is refused.  Frames of
 * any other shape fail the run, so nothing unchecked gets through.
 */
static int
ff_str(const uint8_t *f, size_t len, const char *key, char *out, size_t cap,
    size_t *n)
{
	char pat[40];
	const uint8_t *p, *end = f + len;
	size_t k = 0;
	int pl;

	pl = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	if ((p = memmem(f, len, pat, (size_t)pl)) == NULL) {
		return -1;
	}
	for (p += pl; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (++p == end || (*p != '/' && *p != '\\')) {
				return -1;
			}
		}
		if (k + 1 >= cap) {
			return -1;
		}
		out[k++] = (char)*p;
	}
	if (p == end) {
		return -1;
	}
	out[k] = '\0';
	*n = k;
	return 0;
}

static int
ff_int(const uint8_t *f, size_t len, const char *key, int64_t *v)
{
	char pat[40];
	const uint8_t *p, *end = f + len;
	int64_t x = 0;
	int pl, digits = 0;

	pl = snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = memmem(f, len, pat, (size_t)pl)) == NULL) {
		return -1;
	}
	for (p += pl; p < end && *p >= '0' && *p <= '9' && digits < 18; p++) {
		x = x * 10 + (*p - '0');
		digits++;
	}
	if (digits == 0 || p == end || (*p != ',' && *p != '}')) {
		return -1;
	}
	*v = x;
	return 0;
}

/* B got a box (np: a msg push; echo: the relayed send frame). */
static void
box_arrived(struct cl *b, const uint8_t *f, size_t len)
{
	struct pair *p = b->pair;
	char mid[40], from[NP_IDENT_MAX + 2], want_mid[33];
	size_t n, blen, bin_len;
	int64_t seq = 0;

	if (p->recvd >= p->sent) {
		die("pair %ld: a box arrived that was not sent (%lld sent)",
		    p->idx, (long long)p->sent);
	}
	mid_make(p, p->recvd, want_mid);
	if (ff_str(f, len, "mid", mid, sizeof(mid), &n) != 0 ||
	    strcmp(mid, want_mid) != 0) {
		die("pair %ld: box %lld has mid %.40s, want %s (lost, "
		    "duplicated or reordered)", p->idx, (long long)p->recvd,
		    mid, want_mid);
	}
	if (!b->echo) {
		if (ff_str(f, len, "from", from, sizeof(from), &n) != 0 ||
		    strcmp(from, ids[p->a->ident].name) != 0) {
			die("pair %ld: box from %.64s, want %s", p->idx, from,
			    ids[p->a->ident].name);
		}
		if (ff_int(f, len, "seq", &seq) != 0 || seq < 1) {
			die("pair %ld: push without seq", p->idx);
		}
	}
	if (ff_str(f, len, "box", G.text, NP_FRAME_MAX + 1, &blen) != 0 ||
	    b64_fast_dec(G.text, blen, G.scratch, BOX_MAX + 16, &bin_len) !=
	    0 ||
	    bin_len != (size_t)G.size) {
		die("pair %ld: box %lld is not %ld bytes of base64", p->idx,
		    (long long)p->recvd, G.size);
	}
	box_make(p, p->recvd, G.expect);
	if (memcmp(G.scratch, G.expect, (size_t)G.size) != 0) {
		die("pair %ld: box %lld arrived with other bytes than were "
		    "sent", p->idx, (long long)p->recvd);
	}
	p->recvd++;
	G.t_last = now_us();
	if (!b->echo) {
		cl_sendf(b, "{\"t\":\"ack\",\"seq\":%lld}", (long long)seq);
	}
	pair_fill(p);
}

static void on_frame(struct cl *c, struct json_object *o);

/* A frame of a ready sender or receiver.  Anything but the expected
 * box, result or ping answer goes to on_frame, which fails the run. */
static void
on_fast(struct cl *c, const uint8_t *f, size_t len)
{
	char t[16];
	size_t n;
	int64_t rid;
	struct json_object *o;

	if (ff_str(f, len, "t", t, sizeof(t), &n) == 0) {
		if (c->role == R_B &&
		    strcmp(t, c->echo ? "send" : "msg") == 0) {
			box_arrived(c, f, len);
			return;
		}
		if (strcmp(t, "result") == 0 && ff_int(f, len, "rid", &rid) ==
		    0) {
			if (c->role == R_A && !c->echo &&
			    rid == RID_SEND0 + c->pair->results) {
				c->pair->results++;
				return;
			}
			if (rid == RID_PING && c->pinged) {
				c->pinged = 0;
				G.pings_ok++;
				return;
			}
		}
	}
	if (np_json_parse(f, len, &o) != NP_OK) {
		die("%s: a frame that is no JSON object", cl_name(c));
	}
	on_frame(c, o);
	json_object_put(o);
	die("%s: unexpected frame: %.100s", cl_name(c), (const char *)f);
}

/* ---- frames per state ---- */

static void
on_hello(struct cl *c, struct json_object *o)
{
	struct ident *id = &ids[c->ident];
	uint8_t nonce[32], sig[crypto_sign_BYTES];
	char sb64[128], pkb64[64];
	const char *ns;
	struct np_buf *m;
	size_t nlen;
	int r;

	if ((ns = jstr(o, "nonce", &nlen)) == NULL ||
	    np_b64_decode_exact(ns, nonce, sizeof(nonce)) != NP_OK) {
		die("%s: bad hello", cl_name(c));
	}
	if ((m = np_buf_new(1024)) == NULL) {
		die("out of memory");
	}
	r = c->role == R_ENROLL
	    ? np_enroll_message(nonce, c->cb, id->pk, id->name, m)
	    : np_auth_message(nonce, c->cb, id->name, m);
	if (r != NP_OK) {
		die("cannot build the signed message: %s", np_strerror(r));
	}
	crypto_sign_detached(sig, NULL, np_buf_ptr(m), np_buf_len(m), id->sk);
	np_buf_free(m);
	if (np_b64_encode(sig, sizeof(sig), sb64, sizeof(sb64)) != NP_OK ||
	    np_b64_encode(id->pk, sizeof(id->pk), pkb64, sizeof(pkb64)) !=
	    NP_OK) {
		die("internal: base64");
	}
	if (c->role == R_ENROLL) {
		cl_sendf(c, "{\"t\":\"enroll\",\"id\":\"%s\",\"pk\":\"%s\","
		    "\"token\":\"%s\",\"sig\":\"%s\"}", id->name, pkb64,
		    id->token, sb64);
	} else {
		cl_sendf(c, "{\"t\":\"auth\",\"id\":\"%s\",\"sig\":\"%s\"}",
		    id->name, sb64);
	}
	c->st = CS_WELCOME;
}

static void
became_ready(struct cl *c)
{
	c->st = CS_READY;
	G.inflight--;
	G.ready++;
	if (c->role == R_ENROLL) {
		cl_close(c);
		G.closed_ok++;
		G.ready--;
	}
}

static void
on_frame(struct cl *c, struct json_object *o)
{
	const char *type = jstr(o, "t", NULL), *id;
	int64_t rid;

	if (type == NULL) {
		die("%s: a frame without \"t\"", cl_name(c));
	}
	check_error(c, o, type);
	switch (c->st) {
	case CS_HELLO:
		if (strcmp(type, "hello") != 0) {
			die("%s: want hello, got '%.16s'", cl_name(c), type);
		}
		on_hello(c, o);
		break;
	case CS_WELCOME:
		if (strcmp(type, "welcome") != 0 ||
		    (id = jstr(o, "id", NULL)) == NULL ||
		    strcmp(id, ids[c->ident].name) != 0) {
			die("%s: want welcome, got '%.16s'", cl_name(c), type);
		}
		if (c->monitor) {
			cl_sendf(c, "{\"t\":\"monitor\",\"rid\":%d}",
			    RID_MONITOR);
			c->st = CS_MONITOR;
		} else {
			became_ready(c);
		}
		break;
	case CS_MONITOR:
		if (strcmp(type, "result") != 0 || jint(o, "rid", &rid) != 0 ||
		    rid != RID_MONITOR) {
			die("%s: want the monitor's result, got '%.16s'",
			    cl_name(c), type);
		}
		became_ready(c);
		break;
	case CS_JOIN:
		if (strcmp(type, "ok") != 0) {
			die("%s: want ok from the echo server, got '%.16s'",
			    cl_name(c), type);
		}
		became_ready(c);
		break;
	case CS_READY:
		if (strcmp(type, "result") != 0 || jint(o, "rid", &rid) != 0) {
			die("%s: unexpected '%.16s' frame", cl_name(c), type);
		}
		if (c->role == R_A && !c->echo) {
			if (rid != RID_SEND0 + c->pair->results) {
				die("%s: result for rid %lld, want %lld",
				    cl_name(c), (long long)rid,
				    (long long)(RID_SEND0 + c->pair->results));
			}
			c->pair->results++;
		} else if (rid == RID_PING && c->pinged) {
			c->pinged = 0;
			G.pings_ok++;
		} else {
			die("%s: unexpected result rid %lld", cl_name(c),
			    (long long)rid);
		}
		break;
	default:
		die("%s: frame in state %d", cl_name(c), (int)c->st);
	}
}

static void
cl_process(struct cl *c)
{
	struct json_object *o;
	int r;

	uint32_t len;

	while (c->st != CS_CLOSED && c->in != NULL) {
		if (c->st == CS_READY && (c->role == R_A || c->role == R_B)) {
			if (np_buf_peek_u32(c->in, 0, &len) != NP_OK) {
				break;
			}
			if (len == 0 || len > NP_FRAME_MAX) {
				die("%s: frame length %lu from the server",
				    cl_name(c), (unsigned long)len);
			}
			if (np_buf_len(c->in) - 4 < len) {
				break;
			}
			on_fast(c, np_buf_ptr(c->in) + 4, len);
			np_buf_consume(c->in, 4 + (size_t)len);
			continue;
		}
		r = np_frame_decode(c->in, &o);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			die("%s: bad frame from the server: %s", cl_name(c),
			    np_strerror(r));
		}
		on_frame(c, o);
		json_object_put(o);
	}
	if (c->in != NULL && np_buf_len(c->in) == 0) {
		np_buf_free(c->in);
		c->in = NULL;
	}
}

static struct cl *kicked[2 * MAX_PAIRS + MAX_CONC];
static long nkicked;

/* Read until the socket is dry or the budget is spent; a connection
 * stopped by the budget is read again after the other events (kick),
 * since what OpenSSL has buffered already is invisible to epoll. */
static void
cl_read(struct cl *c)
{
	uint8_t chunk[READ_CHUNK];
	size_t n, total = 0;
	int r;

	while (c->st != CS_CLOSED) {
		if (total >= CLIENT_READ_BUDGET) {
			if (!c->kick && nkicked <
			    (long)(sizeof(kicked) / sizeof(kicked[0]))) {
				c->kick = 1;
				kicked[nkicked++] = c;
			}
			break;
		}
		r = np_tls_read(c->tls, chunk, sizeof(chunk), &n);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r == NP_ERR_CLOSED) {
			die("%s: the server closed the connection (state %d)",
			    cl_name(c), (int)c->st);
		}
		if (r != NP_OK) {
			die("%s: read failed: %s", cl_name(c), np_strerror(r));
		}
		total += n;
		if (c->in == NULL && (c->in = np_buf_new(IN_CAP)) == NULL) {
			die("out of memory");
		}
		if (np_buf_put(c->in, chunk, n) != NP_OK) {
			die("%s: input over %d bytes", cl_name(c), IN_CAP);
		}
		cl_process(c);
	}
}

static void
tls_done(struct cl *c)
{
	int r;

	if ((r = np_tls_check_fingerprint(c->tls, G.fp)) != NP_OK) {
		die("%s: the server's certificate is not %s", cl_name(c),
		    G.fp);
	}
	if (c->echo) {
		cl_sendf(c, "{\"t\":\"pair\",\"pair\":%ld,\"role\":\"%s\"}",
		    c->pair->idx, c->role == R_A ? "a" : "b");
		c->st = CS_JOIN;
		return;
	}
	if ((r = np_tls_channel_binding(c->tls, c->cb)) != NP_OK) {
		die("%s: no channel binding: %s", cl_name(c), np_strerror(r));
	}
	c->st = CS_HELLO;
}

static void
cl_event(struct cl *c, uint32_t ev)
{
	int err = 0, r;
	socklen_t el = sizeof(err);

	if (c->st == CS_CONNECT) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
		    err != 0) {
			die("%s: connect: %s", cl_name(c),
			    strerror(err ? err : errno));
		}
		if ((r = np_tls_new(G.ctx, c->fd, 0, &c->tls)) != NP_OK) {
			die("TLS: %s", np_strerror(r));
		}
		c->st = CS_TLS;
	}
	if (c->st == CS_TLS) {
		r = np_tls_handshake(c->tls);
		if (r == NP_ERR_AGAIN) {
			cl_update(c);
			return;
		}
		if (r != NP_OK) {
			die("%s: TLS handshake failed: %s", cl_name(c),
			    np_strerror(r));
		}
		tls_done(c);
	}
	if ((ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN)) {
		die("%s: connection reset or hung up (state %d)", cl_name(c),
		    (int)c->st);
	}
	if (c->out != NULL) {
		cl_flush(c);
	}
	cl_read(c);
	if (c->st != CS_CLOSED) {
		cl_flush(c);
	}
}

static struct cl *
conn_alloc(void)
{
	struct cl *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		die("out of memory");
	}
	return c;
}

/* A new connection; the event loop takes it from there. */
static void
start_conn_into(struct cl *c, long ident, enum role role, struct pair *p,
    int monitor, int echo)
{
	struct epoll_event e;
	int fd, one = 1;

	memset(c, 0, sizeof(*c));
	c->ident = ident;
	c->role = role;
	c->pair = p;
	c->monitor = monitor;
	c->echo = echo;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		die("socket: %s", strerror(errno));
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (G.nsrc > 0) {
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (struct sockaddr *)&G.src[G.launched % G.nsrc],
		    sizeof(G.src[0])) != 0) {
			die("bind: %s", strerror(errno));
		}
	}
	if (connect(fd, (struct sockaddr *)(role == R_B && G.has_dst_b ?
	    &G.dst_b : &G.dst), sizeof(G.dst)) != 0 &&
	    errno != EINPROGRESS) {
		die("connect: %s", strerror(errno));
	}
	c->fd = fd;
	c->st = CS_CONNECT;
	c->mask = EPOLLOUT;
	memset(&e, 0, sizeof(e));
	e.events = EPOLLOUT;
	e.data.ptr = c;
	if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &e) != 0) {
		die("epoll_ctl: %s", strerror(errno));
	}
	G.launched++;
	G.inflight++;
}

static struct cl **all;
static long nall;

static void
start_conn(long ident, enum role role, struct pair *p, int monitor, int echo)
{
	struct cl *c = conn_alloc();

	start_conn_into(c, ident, role, p, monitor, echo);
	all[nall++] = c;
}

/* One pass of the loop: wait at most ms, handle every event. */
static void
loop_once(int ms, const char *what)
{
	struct epoll_event ev[512];
	int n, i;

	struct cl *k[sizeof(kicked) / sizeof(kicked[0])];
	long nk;

	deadline_check(what);
	n = epoll_wait(G.ep, ev, 512, nkicked > 0 ? 0 : ms);
	if (n == -1) {
		if (errno == EINTR) {
			return;
		}
		die("epoll_wait: %s", strerror(errno));
	}
	for (i = 0; i < n; i++) {
		cl_event(ev[i].data.ptr, ev[i].events);
	}
	nk = nkicked;
	memcpy(k, kicked, (size_t)nk * sizeof(k[0]));
	nkicked = 0;
	for (i = 0; i < nk; i++) {
		k[i]->kick = 0;
		if (k[i]->st != CS_CLOSED) {
			cl_event(k[i], EPOLLIN);
		}
	}
}

static void
client_init(const struct opts *o)
{
	int r;

	if (o->server == NULL || o->fp == NULL || o->seedfile == NULL ||
	    o->idsfile == NULL) {
		usage();
	}
	parse_hostport(o->server, &G.dst);
	if (o->server_b != NULL) {
		parse_hostport(o->server_b, &G.dst_b);
		G.has_dst_b = 1;
	}
	parse_sources(o->sources);
	if (G.nsrc > 0 && o->conc > 32L * G.nsrc) {
		die("-c %ld: at most 32 connections in set-up per source "
		    "address (the server's MaxUnauthPerSource default)", o->conc);
	}
	if (G.nsrc == 0 && o->conc > 32) {
		die("-c %ld: at most 32 without -b (MaxUnauthPerSource)",
		    o->conc);
	}
	G.fp = o->fp;
	if ((r = np_tls_client_ctx(&G.ctx)) != NP_OK) {
		die("TLS context: %s", np_strerror(r));
	}
	if ((G.ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		die("epoll_create1: %s", strerror(errno));
	}
}

/* ---- enroll ---- */

static int
cmd_enroll(const struct opts *o)
{
	int64_t t0;
	long next = 0, i;
	FILE *f;
	char line[512];
	long n = 0;

	client_init(o);
	/* Count the lines first: every one is enrolled. */
	if ((f = fopen(o->idsfile, "r")) == NULL) {
		die("%s: %s", o->idsfile, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL && n < MAX_IDS) {
		if (line[0] == '@') {
			n++;
		}
	}
	fclose(f);
	if (n == 0) {
		die("%s: no identities", o->idsfile);
	}
	ids_load(o->idsfile, o->seedfile, n, 1);
	nofile_raise(o->conc + 64);
	if ((all = calloc((size_t)n, sizeof(*all))) == NULL) {
		die("out of memory");
	}
	t0 = now_us();
	while (G.closed_ok < n) {
		while (next < n && G.inflight < o->conc) {
			start_conn(next++, R_ENROLL, NULL, 0, 0);
		}
		loop_once(100, "enrolling");
	}
	printf("enrolled %ld ms %.0f\n", n, (double)(now_us() - t0) / 1000.0);
	for (i = 0; i < nall; i++) {
		free(all[i]);
	}
	return 0;
}

/* ---- idle ---- */

/* Run the loop for ms; idle connections must stay quiet and open. */
static void
idle_for(long ms, const char *what)
{
	int64_t end = now_us() + (int64_t)ms * 1000;
	int64_t left;

	while ((left = end - now_us()) > 0) {
		loop_once((int)((left + 999) / 1000), what);
	}
}

static int
cmd_idle(const struct opts *o)
{
	long levels[MAX_LEVELS], nlev = 0, top, i, next = 0;
	long rss0, rss;
	long long cpu0, cpu1, cpu2;
	int64_t t0, t1;
	char tmp[256], *tok, *save;

	client_init(o);
	if (o->levels == NULL || o->pid == 0) {
		usage();
	}
	if (strlen(o->levels) >= sizeof(tmp)) {
		die("-L: too long");
	}
	snprintf(tmp, sizeof(tmp), "%s", o->levels);
	for (tok = strtok_r(tmp, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (nlev == MAX_LEVELS) {
			die("-L: at most %d levels", MAX_LEVELS);
		}
		levels[nlev] = num_arg(tok, 1, MAX_IDS);
		if (nlev > 0 && levels[nlev] <= levels[nlev - 1]) {
			die("-L: levels must grow");
		}
		nlev++;
	}
	if (nlev == 0) {
		usage();
	}
	top = levels[nlev - 1];
	ids_load(o->idsfile, o->seedfile, top, 0);
	nofile_raise(top + o->conc + 64);
	if ((all = calloc((size_t)top + 1, sizeof(*all))) == NULL) {
		die("out of memory");
	}
	deadline_set(o->deadline_s);

	/* Warm-up: one connection through the whole path, then closed. */
	start_conn(0, R_IDLE, NULL, 1, 0);
	while (G.ready < 1) {
		loop_once(100, "warming up");
	}
	cl_close(all[0]);
	free(all[0]);
	nall = 0;
	G.ready = 0;
	G.launched = 0;
	idle_for(o->settle_ms, "settling after the warm-up");
	rss0 = proc_rss_kib(o->pid);
	printf("base rss_kib %ld\n", rss0);
	fflush(stdout);

	for (i = 0; i < nlev; i++) {
		cpu0 = proc_cpu_ticks(o->pid);
		t0 = now_us();
		while (G.ready < levels[i]) {
			while (next < levels[i] && G.inflight < o->conc) {
				start_conn(next++, R_IDLE, NULL, 1, 0);
			}
			loop_once(100, "opening idle connections");
		}
		t1 = now_us();
		cpu1 = proc_cpu_ticks(o->pid);
		idle_for(o->settle_ms, "settling");
		rss = proc_rss_kib(o->pid);
		cpu2 = proc_cpu_ticks(o->pid);
		idle_for(o->cpu_ms, "holding idle connections");
		printf("level %ld new %ld open_ms %.0f open_cpu_ms %.0f "
		    "rss_kib %ld per_conn_bytes %.0f idle_cpu_ms %.1f "
		    "idle_ms %ld\n", levels[i],
		    levels[i] - (i > 0 ? levels[i - 1] : 0),
		    (double)(t1 - t0) / 1000.0,
		    ticks_ms(cpu1 - cpu0), rss,
		    (double)(rss - rss0) * 1024.0 / (double)levels[i],
		    ticks_ms(proc_cpu_ticks(o->pid) - cpu2), o->cpu_ms);
		fflush(stdout);
	}
	/* Every connection still there and authenticated: ping each. */
	for (i = 0; i < nall; i++) {
		if (all[i]->st != CS_READY) {
			die("connection %ld is not ready (state %d)", i,
			    (int)all[i]->st);
		}
		cl_sendf(all[i], "{\"t\":\"ping\",\"rid\":%d}", RID_PING);
		all[i]->pinged = 1;
		cl_flush(all[i]);
	}
	while (G.pings_ok < nall) {
		loop_once(100, "pinging every connection");
	}
	printf("verified %ld of %ld\n", G.pings_ok, nall);
	for (i = 0; i < nall; i++) {
		cl_close(all[i]);
		free(all[i]);
	}
	return 0;
}

/* ---- route ---- */

static int
route_done(void)
{
	long i;

	for (i = 0; i < G.npairs; i++) {
		struct pair *p = &G.pairs[i];

		if (p->recvd != p->sent ||
		    (!p->a->echo && p->results != p->sent)) {
			return 0;
		}
	}
	return 1;
}

static int
cmd_route(const struct opts *o)
{
	long i, need;
	int64_t t_end, total = 0, minp = INT64_MAX, maxp = 0;
	long long cpu0 = 0, cpu1 = 0;
	struct rusage ru0, ru1;
	double secs, self_ms;

	client_init(o);
	need = 2 * o->pairs;
	ids_load(o->idsfile, o->seedfile, need, 0);
	nofile_raise(need + 64);
	if ((all = calloc((size_t)need, sizeof(*all))) == NULL ||
	    (G.pairs = calloc((size_t)o->pairs, sizeof(*G.pairs))) == NULL ||
	    (G.scratch = malloc(BOX_MAX + 16)) == NULL ||
	    (G.expect = malloc(BOX_MAX + 16)) == NULL ||
	    (G.text = malloc(NP_FRAME_MAX + 1)) == NULL) {
		die("out of memory");
	}
	G.npairs = o->pairs;
	G.size = o->size;
	G.window = o->window;
	G.max_pp = o->max_pp;
	G.run_nonce = randombytes_random();
	b64_init();
	deadline_set(o->deadline_s);
	for (i = 0; i < G.npairs; i++) {
		struct pair *p = &G.pairs[i];

		p->idx = i;
		if ((p->base = malloc((size_t)G.size - 16)) == NULL) {
			die("out of memory");
		}
		randombytes_buf(p->base, (size_t)G.size - 16);
	}
	/* Receivers first, so that each monitors before boxes come (the
	 * echo server answers a join only once both ends are in). */
	for (i = 0; i < G.npairs; i++) {
		while (G.inflight + 1 >= o->conc) {
			loop_once(100, "connecting");
		}
		start_conn(2 * i + 1, R_B, &G.pairs[i], 1, o->echo);
		G.pairs[i].b = all[nall - 1];
		if (o->echo) {
			start_conn(2 * i, R_A, &G.pairs[i], 0, 1);
			G.pairs[i].a = all[nall - 1];
		}
	}
	while (!o->echo && G.ready < G.npairs) {
		loop_once(100, "connecting the receivers");
	}
	for (i = 0; i < G.npairs && !o->echo; i++) {
		while (G.inflight >= o->conc) {
			loop_once(100, "connecting");
		}
		start_conn(2 * i, R_A, &G.pairs[i], 0, 0);
		G.pairs[i].a = all[nall - 1];
	}
	while (G.ready < need) {
		loop_once(100, "connecting the senders");
	}
	if (o->pid != 0) {
		cpu0 = proc_cpu_ticks(o->pid);
	}
	getrusage(RUSAGE_SELF, &ru0);
	G.t_start = G.t_last = now_us();
	t_end = G.t_start + (int64_t)o->secs * 1000000;
	G.sending = 1;
	for (i = 0; i < G.npairs; i++) {
		pair_fill(&G.pairs[i]);
	}
	while (!G.stopping || !route_done()) {
		if (!G.stopping && now_us() >= t_end) {
			G.stopping = 1;
		}
		loop_once(G.stopping ? 100 : 20, G.stopping
		    ? "waiting for the last boxes" : "routing boxes");
	}
	if (o->pid != 0) {
		cpu1 = proc_cpu_ticks(o->pid);
	}
	getrusage(RUSAGE_SELF, &ru1);
	/* The last acks must be processed before we go (np-server keeps
	 * unacked boxes for the next run): a ping after them answers
	 * only once they are. */
	for (i = 0; i < G.npairs && !o->echo; i++) {
		cl_sendf(G.pairs[i].b, "{\"t\":\"ping\",\"rid\":%d}", RID_PING);
		G.pairs[i].b->pinged = 1;
		cl_flush(G.pairs[i].b);
	}
	while (!o->echo && G.pings_ok < G.npairs) {
		loop_once(100, "waiting for the last acks");
	}
	for (i = 0; i < G.npairs; i++) {
		total += G.pairs[i].recvd;
		if (G.pairs[i].recvd < minp) {
			minp = G.pairs[i].recvd;
		}
		if (G.pairs[i].recvd > maxp) {
			maxp = G.pairs[i].recvd;
		}
	}
	secs = (double)(G.t_last - G.t_start) / 1e6;
	if (total == 0 || secs <= 0) {
		die("no box arrived");
	}
	self_ms = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec +
	    ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000.0 +
	    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
	    ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1000.0;
	printf("route mode %s size %ld pairs %ld window %ld boxes %lld "
	    "secs %.3f per_s %.1f min_pair %lld max_pair %lld "
	    "server_cpu_ms %.0f tool_cpu_ms %.0f\n",
	    o->echo ? "echo" : "np", G.size, G.npairs, G.window,
	    (long long)total, secs, (double)total / secs, (long long)minp,
	    (long long)maxp, o->pid ? ticks_ms(cpu1 - cpu0) : -1.0, self_ms);
	for (i = 0; i < nall; i++) {
		cl_close(all[i]);
		free(all[i]);
	}
	for (i = 0; i < G.npairs; i++) {
		free(G.pairs[i].base);
	}
	return 0;
}

/* ---- the echo server ---- */

enum est { ES_TLS = 1, ES_JOIN, ES_RELAY, ES_DEAD };

struct ec {
	int fd;
	enum est st;
	struct np_tls *tls;
	struct np_buf *in, *out;
	uint32_t mask;
	long pair;
	int role; /* 0 a, 1 b */
	struct ec *peer;
	int blocked; /* a: not reading while its peer's output is high */
	struct ec *dnext;
};

static struct ec *slots[MAX_PAIRS][2];
static struct ec *edead;
static int eep;
static struct np_tls_ctx *ectx;

static void
ec_mask(struct ec *c)
{
	struct epoll_event e;
	uint32_t m;

	if (c->st == ES_DEAD) {
		return;
	}
	if (c->st == ES_TLS) {
		m = (np_tls_want(c->tls) & NP_EV_WRITE) ? EPOLLOUT : EPOLLIN;
	} else {
		m = c->blocked ? 0 : EPOLLIN;
		if ((c->out != NULL && np_buf_len(c->out) > 0) ||
		    (np_tls_want(c->tls) & NP_EV_WRITE)) {
			m |= EPOLLOUT;
		}
	}
	if (m == c->mask) {
		return;
	}
	memset(&e, 0, sizeof(e));
	e.events = m;
	e.data.ptr = c;
	if (epoll_ctl(eep, EPOLL_CTL_MOD, c->fd, &e) == 0) {
		c->mask = m;
	}
}

static void
ec_kill(struct ec *c, const char *why)
{
	struct ec *peer;

	if (c->st == ES_DEAD) {
		return;
	}
	(void)why;
	if (c->st != ES_TLS) {
		np_tls_shutdown(c->tls);
	}
	(void)epoll_ctl(eep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	np_tls_free(c->tls);
	np_buf_free(c->in);
	np_buf_free(c->out);
	c->tls = NULL;
	c->in = c->out = NULL;
	c->st = ES_DEAD;
	if (c->pair >= 0 && slots[c->pair][c->role] == c) {
		slots[c->pair][c->role] = NULL;
	}
	peer = c->peer;
	c->peer = NULL;
	c->dnext = edead;
	edead = c;
	if (peer != NULL) {
		peer->peer = NULL;
		ec_kill(peer, "its peer went away");
	}
}

static void
ec_flush(struct ec *c)
{
	size_t n;
	int r;

	while (c->st != ES_DEAD && c->st != ES_TLS && c->out != NULL &&
	    np_buf_len(c->out) > 0) {
		r = np_tls_write(c->tls, np_buf_ptr(c->out), np_buf_len(c->out),
		    &n);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			ec_kill(c, "write failed");
			return;
		}
		np_buf_consume(c->out, n);
	}
	if (c->st == ES_DEAD) {
		return;
	}
	if (c->out != NULL && np_buf_len(c->out) == 0) {
		np_buf_free(c->out);
		c->out = NULL;
	}
	/* B drained: let A's frames come again. */
	if (c->peer != NULL && c->peer->blocked &&
	    (c->out == NULL || np_buf_len(c->out) < ECHO_OUT_HWM / 2)) {
		c->peer->blocked = 0;
		ec_mask(c->peer);
	}
	ec_mask(c);
}

static int
ec_put_frame(struct ec *c, const char *json)
{
	size_t len = strlen(json);

	if (c->out == NULL && (c->out = np_buf_new(OUT_CAP)) == NULL) {
		return -1;
	}
	if (np_buf_put_u32(c->out, (uint32_t)len) != NP_OK ||
	    np_buf_put(c->out, json, len) != NP_OK) {
		return -1;
	}
	return 0;
}

/* The first frame: {"t":"pair","pair":N,"role":"a"|"b"}. */
static void
ec_join(struct ec *c, const uint8_t *p, size_t len)
{
	struct json_object *o = NULL;
	const char *t, *role;
	int64_t n;
	struct ec *old, *peer;

	if (np_json_parse(p, len, &o) != NP_OK ||
	    (t = jstr(o, "t", NULL)) == NULL || strcmp(t, "pair") != 0 ||
	    jint(o, "pair", &n) != 0 || n < 0 || n >= MAX_PAIRS ||
	    (role = jstr(o, "role", NULL)) == NULL ||
	    (strcmp(role, "a") != 0 && strcmp(role, "b") != 0)) {
		json_object_put(o);
		ec_kill(c, "bad pair frame");
		return;
	}
	c->pair = (long)n;
	c->role = strcmp(role, "b") == 0;
	json_object_put(o);
	if ((old = slots[c->pair][c->role]) != NULL) {
		ec_kill(old, "replaced"); /* a leftover of an earlier run */
	}
	slots[c->pair][c->role] = c;
	c->st = ES_RELAY;
	if ((peer = slots[c->pair][!c->role]) != NULL) {
		c->peer = peer;
		peer->peer = c;
		if (ec_put_frame(c, "{\"t\":\"ok\"}") != 0 ||
		    ec_put_frame(peer, "{\"t\":\"ok\"}") != 0) {
			ec_kill(c, "out of memory");
			return;
		}
		ec_flush(peer);
		ec_flush(c);
	}
}

/* Move every whole frame of c's input: the first is its join, the rest
 * (of an A) go to its peer as they are. */
static void
ec_frames(struct ec *c)
{
	uint32_t len;
	struct ec *peer;

	while (c->st != ES_DEAD && c->in != NULL &&
	    np_buf_peek_u32(c->in, 0, &len) == NP_OK) {
		if (len == 0 || len > NP_FRAME_MAX) {
			ec_kill(c, "frame length out of range");
			return;
		}
		if (np_buf_len(c->in) - 4 < len) {
			return;
		}
		if (c->st == ES_JOIN) {
			ec_join(c, np_buf_ptr(c->in) + 4, len);
			if (c->st != ES_DEAD) {
				np_buf_consume(c->in, 4 + (size_t)len);
			}
			continue;
		}
		if (c->role != 0 || (peer = c->peer) == NULL) {
			ec_kill(c, "a frame from B, or from A before its "
			    "peer joined");
			return;
		}
		if (peer->out == NULL &&
		    (peer->out = np_buf_new(OUT_CAP)) == NULL) {
			ec_kill(c, "out of memory");
			return;
		}
		if (np_buf_put(peer->out, np_buf_ptr(c->in), 4 + (size_t)len) !=
		    NP_OK) {
			ec_kill(c, "its peer's output is over the cap");
			return;
		}
		np_buf_consume(c->in, 4 + (size_t)len);
	}
}

static void
ec_read(struct ec *c)
{
	uint8_t chunk[READ_CHUNK];
	size_t n, total = 0;
	int r;

	while (c->st != ES_DEAD && !c->blocked && total < READ_BUDGET) {
		r = np_tls_read(c->tls, chunk, sizeof(chunk), &n);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			ec_kill(c, "closed");
			return;
		}
		total += n;
		if (c->in == NULL && (c->in = np_buf_new(IN_CAP)) == NULL) {
			ec_kill(c, "out of memory");
			return;
		}
		if (np_buf_put(c->in, chunk, n) != NP_OK) {
			ec_kill(c, "input over the cap");
			return;
		}
		ec_frames(c);
		if (c->st != ES_DEAD && c->peer != NULL) {
			ec_flush(c->peer);
			if (c->peer != NULL && c->peer->out != NULL &&
			    np_buf_len(c->peer->out) > ECHO_OUT_HWM) {
				c->blocked = 1;
			}
		}
	}
	if (c->st != ES_DEAD && c->in != NULL && np_buf_len(c->in) == 0) {
		np_buf_free(c->in);
		c->in = NULL;
	}
	if (c->st != ES_DEAD && c->blocked && np_tls_pending(c->tls) == 0) {
		ec_mask(c);
	}
}

static void
ec_event(struct ec *c, uint32_t ev)
{
	int r;

	if (c->st == ES_DEAD) {
		return;
	}
	if (c->st == ES_TLS) {
		r = np_tls_handshake(c->tls);
		if (r == NP_ERR_AGAIN) {
			ec_mask(c);
			return;
		}
		if (r != NP_OK) {
			ec_kill(c, "handshake failed");
			return;
		}
		c->st = ES_JOIN;
	}
	if ((ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN)) {
		ec_kill(c, "hung up");
		return;
	}
	ec_flush(c);
	if (c->st != ES_DEAD) {
		ec_read(c);
	}
	if (c->st != ES_DEAD) {
		ec_flush(c);
	}
}

static int
cmd_echo_server(const struct opts *o)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct epoll_event e, ev[512];
	struct sigaction act;
	struct ec *c;
	int lfd, fd, n, i, r, one = 1;
	char text[32];

	if (o->cert == NULL || o->key == NULL || o->port_file == NULL) {
		usage();
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_term;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	nofile_raise(2 * MAX_PAIRS + 64);
	deadline_set(o->deadline_s);
	if ((r = np_tls_server_ctx(o->cert, o->key, &ectx)) != NP_OK) {
		die("%s / %s: %s", o->cert, o->key, np_strerror(r));
	}
	if ((eep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		die("socket: %s", strerror(errno));
	}
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, SOMAXCONN) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
		die("listen: %s", strerror(errno));
	}
	memset(&e, 0, sizeof(e));
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	if (epoll_ctl(eep, EPOLL_CTL_ADD, lfd, &e) != 0) {
		die("epoll_ctl: %s", strerror(errno));
	}
	snprintf(text, sizeof(text), "%u\n", ntohs(sa.sin_port));
	if (np_file_write_atomic(o->port_file, (const uint8_t *)text,
	    strlen(text), 1) != NP_OK) {
		die("cannot write %s", o->port_file);
	}
	while (!got_term) {
		if (now_us() >= deadline_us) {
			die("echo-server: lifetime (-D) over");
		}
		n = epoll_wait(eep, ev, 512, 200);
		if (n == -1 && errno != EINTR) {
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr != NULL) {
				ec_event(ev[i].data.ptr, ev[i].events);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL,
			    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
				if ((c = calloc(1, sizeof(*c))) == NULL ||
				    np_tls_new(ectx, fd, 1, &c->tls) != NP_OK) {
					die("out of memory");
				}
				c->fd = fd;
				c->st = ES_TLS;
				c->pair = -1;
				c->mask = EPOLLIN;
				memset(&e, 0, sizeof(e));
				e.events = EPOLLIN;
				e.data.ptr = c;
				if (epoll_ctl(eep, EPOLL_CTL_ADD, fd, &e) != 0) {
					die("epoll_ctl: %s", strerror(errno));
				}
			}
		}
		/* A sender unblocked by its peer's flush may have a record
		 * decrypted in OpenSSL already, which epoll cannot see. */
		for (i = 0; i < MAX_PAIRS; i++) {
			c = slots[i][0];
			if (c != NULL && c->st == ES_RELAY && !c->blocked &&
			    np_tls_pending(c->tls) > 0) {
				ec_event(c, EPOLLIN);
			}
		}
		/* Dead connections are freed once no event can name them. */
		while ((c = edead) != NULL) {
			edead = c->dnext;
			free(c);
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;

	if (sodium_init() < 0) {
		fprintf(stderr, "np-srvload: libsodium init failed\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	parse_opts(argc, argv, &o);
	if (strcmp(o.cmd, "enroll") == 0) {
		deadline_set(o.deadline_s);
		return cmd_enroll(&o);
	}
	if (strcmp(o.cmd, "idle") == 0) {
		return cmd_idle(&o);
	}
	if (strcmp(o.cmd, "route") == 0) {
		return cmd_route(&o);
	}
	if (strcmp(o.cmd, "echo-server") == 0) {
		return cmd_echo_server(&o);
	}
	usage();
	return 2;
}
