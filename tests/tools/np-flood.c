/*
 * np-flood: hostile connection generator for the integration tests.
 *
 *   np-flood -t HOST:PORT -m MODE [-n COUNT] [-c CONCURRENCY]
 *            [-d TOTAL_SECONDS] [-H HOLD_SECONDS] [-R MIN_SECONDS]
 *            [-b SOURCE_ADDR]
 *
 * Opens COUNT connections in total, at most CONCURRENCY at a time, each
 * one misbehaving per MODE:
 *   garbage   plain TCP, 4 KiB of random bytes that are no TLS record
 *   bigframe  TLS handshake, then a frame header announcing more than
 *             the 64 KiB cap (or an empty frame) followed by junk
 *   idle      connect and send nothing (slowloris)
 *   slow      one byte a second of a TLS record header (slowloris)
 *   tlsjunk   TLS handshake, then 4 KiB of random bytes
 * A connection ends when the server closes it (counted "server_closed"),
 * or when it has been held HOLD seconds (counted "we_closed").  With -R
 * it keeps opening connections past COUNT until MIN seconds have passed
 * (a sustained flood).  The whole run stops after TOTAL seconds.  Every socket is closed before exit.
 * Prints one line of counters; exits 0 when all connections ran to their
 * end within TOTAL, 1 when the deadline cut the run short, 2 on a
 * usage error.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#define MAX_CONC 4000
#define JUNK_LEN 4096
#define BIG_TOTAL (256 * 1024)

enum mode { M_GARBAGE, M_BIGFRAME, M_IDLE, M_SLOW, M_TLSJUNK };

enum state {
	S_FREE,
	S_CONNECTING,
	S_HANDSHAKE,
	S_SENDING,
	S_WAITING, /* for the server to close */
};

struct conn {
	int fd;
	SSL *ssl;
	enum state st;
	long idx;
	int64_t start_ms;
	int64_t next_ms;  /* slow mode: next byte */
	size_t sent;	  /* bytes of payload sent */
	int want_write;	  /* TLS: last op wants POLLOUT */
};

struct opts {
	const char *target;
	const char *source;
	enum mode mode;
	long count;
	long conc;
	long total_s;
	long hold_s;
	long min_s;
};

struct stats {
	long started, connected, connect_err, tls_ok, tls_fail;
	long server_closed, we_closed, cut_short;
	long bytes_sent;
	int64_t max_close_ms; /* longest time until the server closed */
};

static const struct {
	const char *name;
	enum mode mode;
} modes[] = {
	{ "garbage", M_GARBAGE },
	{ "bigframe", M_BIGFRAME },
	{ "idle", M_IDLE },
	{ "slow", M_SLOW },
	{ "tlsjunk", M_TLSJUNK },
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
usage(void)
{
	fprintf(stderr, "usage: np-flood -t HOST:PORT -m "
	    "garbage|bigframe|idle|slow|tlsjunk [-n COUNT] [-c CONC]\n"
	    "                [-d TOTAL_SECONDS] [-H HOLD_SECONDS] "
	    "[-R MIN_SECONDS] [-b SOURCE_ADDR]\n");
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
		fprintf(stderr, "np-flood: bad number: %s\n", s);
		exit(2);
	}
	return v;
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	int ch;
	size_t i;
	int found = 0;
	const char *m = NULL;

	o->target = NULL;
	o->mode = M_GARBAGE;
	o->source = NULL;
	o->count = 100;
	o->conc = 50;
	o->total_s = 60;
	o->hold_s = 15;
	o->min_s = 0;
	while ((ch = getopt(argc, argv, "t:m:n:c:d:H:R:b:")) != -1) {
		switch (ch) {
		case 't': o->target = optarg; break;
		case 'm': m = optarg; break;
		case 'n': o->count = num_arg(optarg, 1, 10000000); break;
		case 'c': o->conc = num_arg(optarg, 1, MAX_CONC); break;
		case 'd': o->total_s = num_arg(optarg, 1, 3600); break;
		case 'H': o->hold_s = num_arg(optarg, 1, 3600); break;
		case 'R': o->min_s = num_arg(optarg, 0, 3600); break;
		case 'b': o->source = optarg; break;
		default: usage();
		}
	}
	if (o->target == NULL || m == NULL || optind != argc) {
		usage();
	}
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(m, modes[i].name) == 0) {
			o->mode = modes[i].mode;
			found = 1;
		}
	}
	if (!found) {
		usage();
	}
}

static int
resolve(const char *target, struct sockaddr_in *sa)
{
	char host[256];
	const char *colon = strrchr(target, ':');
	size_t hl;
	long port;

	if (colon == NULL || (hl = (size_t)(colon - target)) == 0 ||
	    hl >= sizeof(host)) {
		return -1;
	}
	memcpy(host, target, hl);
	host[hl] = '\0';
	port = num_arg(colon + 1, 1, 65535);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int
uses_tls(enum mode m)
{
	return m == M_BIGFRAME || m == M_TLSJUNK;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->st = S_FREE;
}

/* The server ended this connection (EOF, reset, TLS alert). */
static void
server_closed(struct conn *c, struct stats *st)
{
	int64_t d = now_ms() - c->start_ms;

	st->server_closed++;
	if (d > st->max_close_ms) {
		st->max_close_ms = d;
	}
	conn_close(c);
}

static int
conn_open(struct conn *c, const struct sockaddr_in *dst, const struct sockaddr_in *src,
    struct stats *st, long idx)
{
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		st->connect_err++;
		return -1;
	}
	if (src != NULL &&
	    bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0) {
		close(fd);
		st->connect_err++;
		return -1;
	}
	st->started++;
	c->fd = fd;
	c->ssl = NULL;
	c->idx = idx;
	c->sent = 0;
	c->want_write = 0;
	c->start_ms = now_ms();
	c->next_ms = c->start_ms;
	r = connect(fd, (const struct sockaddr *)dst, sizeof(*dst));
	if (r != 0 && errno != EINPROGRESS) {
		st->connect_err++;
		conn_close(c);
		return -1;
	}
	c->st = S_CONNECTING;
	return 0;
}

static int
start_tls(struct conn *c, SSL_CTX *ctx)
{
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		return -1;
	}
	SSL_set_connect_state(c->ssl);
	c->st = S_HANDSHAKE;
	return 0;
}

/* The junk this connection sends next, and how much of it is left. */
static const uint8_t *
payload(const struct conn *c, enum mode m, const uint8_t *junk,
    uint8_t *hdr, size_t *len)
{
	static const uint8_t tls_hdr[] = { 0x16, 0x03, 0x01, 0x02, 0x00,
		0x01, 0x00, 0x01, 0xfc, 0x03, 0x03 };
	size_t total;
	uint32_t announced;

	switch (m) {
	case M_SLOW:
		*len = c->sent < sizeof(tls_hdr) ? 1 : 0;
		return c->sent < sizeof(tls_hdr) ? tls_hdr + c->sent : NULL;
	case M_BIGFRAME:
		/* 16 MiB, just over the cap, 4 GiB-1, or an empty frame. */
		switch (c->idx % 4) {
		case 0: announced = 16u * 1024 * 1024; break;
		case 1: announced = 64u * 1024 + 1; break;
		case 2: announced = 0xffffffffu; break;
		default: announced = 0; break;
		}
		if (c->sent == 0) {
			hdr[0] = (uint8_t)(announced >> 24);
			hdr[1] = (uint8_t)(announced >> 16);
			hdr[2] = (uint8_t)(announced >> 8);
			hdr[3] = (uint8_t)announced;
			*len = 4;
			return hdr;
		}
		total = announced == 0 ? 4 : BIG_TOTAL;
		*len = c->sent < total ? JUNK_LEN : 0;
		return junk;
	case M_GARBAGE:
	case M_TLSJUNK:
		*len = c->sent < JUNK_LEN ? JUNK_LEN - c->sent : 0;
		return junk + c->sent % JUNK_LEN;
	default:
		*len = 0;
		return NULL;
	}
}

/* Returns 1 when the server closed, 0 otherwise. */
static int
tls_failed(struct conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);

	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ) {
		c->want_write = 0;
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->want_write = 1;
		return 0;
	}
	return 1;
}

static void
do_send(struct conn *c, const struct opts *o, const uint8_t *junk,
    struct stats *st)
{
	uint8_t hdr[4];
	size_t len;
	const uint8_t *p;
	ssize_t n;
	int r;

	p = payload(c, o->mode, junk, hdr, &len);
	if (p == NULL || len == 0) {
		c->st = S_WAITING;
		return;
	}
	if (c->ssl != NULL) {
		r = SSL_write(c->ssl, p, (int)len);
		if (r <= 0) {
			if (tls_failed(c, r)) {
				server_closed(c, st);
			}
			return;
		}
		n = r;
	} else {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				server_closed(c, st);
			}
			return;
		}
	}
	c->sent += (size_t)n;
	st->bytes_sent += n;
	if (o->mode == M_SLOW) {
		c->next_ms = now_ms() + 1000;
	}
}

/* Reads and discards what the server says; notices its close. */
static void
do_read(struct conn *c, struct stats *st)
{
	uint8_t b[4096];
	ssize_t n;
	int r, i;

	for (i = 0; i < 16; i++) {
		if (c->ssl != NULL) {
			r = SSL_read(c->ssl, b, sizeof(b));
			if (r <= 0) {
				if (tls_failed(c, r)) {
					server_closed(c, st);
				}
				return;
			}
		} else {
			n = recv(c->fd, b, sizeof(b), 0);
			if (n == 0 || (n < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK)) {
				server_closed(c, st);
				return;
			}
			if (n < 0) {
				return;
			}
		}
	}
}

static void
on_connected(struct conn *c, const struct opts *o, SSL_CTX *ctx,
    struct stats *st)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
	    err != 0) {
		st->connect_err++;
		conn_close(c);
		return;
	}
	st->connected++;
	if (uses_tls(o->mode)) {
		if (start_tls(c, ctx) != 0) {
			st->tls_fail++;
			conn_close(c);
		}
		return;
	}
	c->st = o->mode == M_IDLE ? S_WAITING : S_SENDING;
}

static void
do_handshake(struct conn *c, struct stats *st)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		st->tls_ok++;
		c->want_write = 0;
		c->st = S_SENDING;
		return;
	}
	if (tls_failed(c, r)) {
		st->tls_fail++;
		server_closed(c, st);
	}
}

static void
step(struct conn *c, short rev, const struct opts *o, SSL_CTX *ctx,
    const uint8_t *junk, struct stats *st)
{
	if (c->st == S_CONNECTING) {
		if (rev & (POLLOUT | POLLERR | POLLHUP)) {
			on_connected(c, o, ctx, st);
		}
		if (c->st != S_HANDSHAKE) {
			return;
		}
	}
	if (c->st == S_HANDSHAKE) {
		do_handshake(c, st);
		return;
	}
	if (c->st == S_SENDING && (rev & POLLIN) == 0 &&
	    (o->mode != M_SLOW || now_ms() >= c->next_ms)) {
		do_send(c, o, junk, st);
		return;
	}
	if (rev & (POLLIN | POLLERR | POLLHUP)) {
		do_read(c, st);
	}
}

static short
events_for(const struct conn *c, const struct opts *o)
{
	if (c->st == S_CONNECTING) {
		return POLLOUT;
	}
	if (c->ssl != NULL && c->want_write) {
		return POLLIN | POLLOUT;
	}
	if (c->st == S_SENDING && o->mode != M_SLOW) {
		return POLLIN | POLLOUT;
	}
	return POLLIN;
}

static void
raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)need + 64) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static SSL_CTX *
client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct stats st;
	struct sockaddr_in dst, src;
	struct conn *cs;
	struct pollfd *pf;
	uint8_t junk[JUNK_LEN];
	SSL_CTX *ctx;
	int64_t t0, deadline, until, now;
	long next = 0, i, live;
	int timeout;

	parse_opts(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || resolve(o.target, &dst) != 0) {
		fprintf(stderr, "np-flood: bad target %s\n", o.target);
		return 2;
	}
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	if (o.source != NULL && inet_pton(AF_INET, o.source,
	    &src.sin_addr) != 1) {
		fprintf(stderr, "np-flood: bad source %s\n", o.source);
		return 2;
	}
	randombytes_buf(junk, sizeof(junk));
	junk[0] = 'G'; /* not a TLS record type */
	raise_nofile(o.conc);
	ctx = client_ctx();
	cs = calloc((size_t)o.conc, sizeof(*cs));
	pf = calloc((size_t)o.conc, sizeof(*pf));
	if (ctx == NULL || cs == NULL || pf == NULL) {
		fprintf(stderr, "np-flood: out of memory\n");
		return 1;
	}
	memset(&st, 0, sizeof(st));
	for (i = 0; i < o.conc; i++) {
		cs[i].fd = -1;
		cs[i].st = S_FREE;
	}
	t0 = now_ms();
	deadline = t0 + o.total_s * 1000;
	until = t0 + o.min_s * 1000;
	for (;;) {
		now = now_ms();
		live = 0;
		for (i = 0; i < o.conc; i++) {
			if (cs[i].st == S_FREE && now < deadline &&
			    (next < o.count || now < until)) {
				conn_open(&cs[i], &dst,
				    o.source != NULL ? &src : NULL, &st, next);
				next++;
			}
			if (cs[i].st != S_FREE &&
			    now - cs[i].start_ms >= o.hold_s * 1000) {
				st.we_closed++;
				conn_close(&cs[i]);
			}
			pf[i].fd = cs[i].st == S_FREE ? -1 : cs[i].fd;
			pf[i].events = cs[i].st == S_FREE ? 0 :
			    events_for(&cs[i], &o);
			pf[i].revents = 0;
			live += cs[i].st != S_FREE;
		}
		if ((live == 0 && next >= o.count && now >= until) ||
		    now >= deadline) {
			break;
		}
		timeout = o.mode == M_SLOW ? 100 : 200;
		if (poll(pf, (nfds_t)o.conc, timeout) < 0 && errno != EINTR) {
			perror("np-flood: poll");
			break;
		}
		for (i = 0; i < o.conc; i++) {
			if (cs[i].st != S_FREE && (pf[i].revents != 0 ||
			    (o.mode == M_SLOW && cs[i].st == S_SENDING))) {
				step(&cs[i], pf[i].revents, &o, ctx, junk,
				    &st);
			}
		}
	}
	for (i = 0; i < o.conc; i++) {
		if (cs[i].st != S_FREE) {
			st.cut_short++;
			conn_close(&cs[i]);
		}
	}
	printf("mode=%s count=%ld started=%ld connected=%ld connect_err=%ld "
	    "tls_ok=%ld tls_fail=%ld server_closed=%ld we_closed=%ld "
	    "cut_short=%ld bytes_sent=%ld max_close_ms=%lld elapsed_ms=%lld\n",
	    modes[o.mode].name, o.count, st.started, st.connected,
	    st.connect_err, st.tls_ok, st.tls_fail, st.server_closed,
	    st.we_closed, st.cut_short, st.bytes_sent,
	    (long long)st.max_close_ms, (long long)(now_ms() - t0));
	free(cs);
	free(pf);
	SSL_CTX_free(ctx);
	return next >= o.count && now_ms() >= until && st.cut_short == 0 ?
	    0 : 1;
}
