/*
 * np-srpeer: a test and benchmark peer for np-srd, playing the client and
 * the device through the real control plane and the real data plane.
 *
 *   np-srpeer [-F CONFIG] open @sr [--peer @x] [--timeout S]
 *	Look up and pin @sr (trust on first use), send it an srd.open box
 *	with a fresh reply tag ("rt"), monitor that tag and wait for its
 *	srd.session or srd.error box.  Prints the session
 *	body as one JSON line on stdout (exit 0), or "np-srpeer: refused:
 *	REASON" on stderr (exit 1).
 *   np-srpeer side --session FILE --side c|d [--send N] [--seed S]
 *	[--shut] [--linger-ms MS] [--recv-rate BPS] [--expect-recv N]
 *	[--timeout S]
 *	Connect to the side's endpoint, send N bytes of the stream for S,
 *	read until EOF, print "sent N sha256 HEX recv M sha256 HEX".
 *   np-srpeer gen --bytes N [--seed S]
 *	Print the sha256 of the first N bytes of the stream for S.
 *   np-srpeer forward --session FILE [--session FILE2 ...] --side c
 *	--listen HOST:PORT [--timeout S]
 *   np-srpeer forward --session FILE [...] --side d --connect HOST:PORT
 *	[--timeout S]
 *	Relay local TCP connections through np-srd, one session each.
 *
 * Exit codes: 0 success, 1 failure (refusal, error, timeout), 2 usage,
 * 3 received byte count differs from --expect-recv.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
#include "frame.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "msg.h"
#include "pin.h"
#include "relay.h"
#include "srproto.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_MISMATCH 3

#define CONF_DIR ".config/noports"
#define OPEN_TTL 30
#define OPEN_TIMEOUT_S 15
#define SIDE_TIMEOUT_S 120
#define FWD_TIMEOUT_S 300
#define SESSION_FILE_MAX (64 * 1024)
#define CHUNK (64 * 1024)
#define PUSH_MAX 64
#define FWD_MAX 64
#define FWD_IDLE_EXIT_MS 2000
#define LOCAL_CONNECT_MS 5000

/* ---- messages and small helpers ---- */

static void perr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
perr(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (p = msg; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			*p = '?';
		}
	}
	fprintf(stderr, "np-srpeer: %s\n", msg);
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long l;

	if (s == NULL || *s < '0' || *s > '9') {
		return -1;
	}
	errno = 0;
	l = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || l > max) {
		return -1;
	}
	*v = l;
	return 0;
}

static int
opt_u64(const char *name, const char *s, uint64_t max, uint64_t *v)
{
	if (parse_u64(s, max, v) != 0) {
		perr("bad %s '%.32s'", name, s);
		return -1;
	}
	return 0;
}

static void
hex32(const uint8_t h[32], char out[65])
{
	sodium_bin2hex(out, 65, h, 32);
}

/* ---- the client configuration (the np keywords) ---- */

struct pconf {
	char *identity;
	char *identity_file;
	struct np_hostport server;
	char *server_fingerprint;
	char *known_identities;
	long connect_timeout;
};

static const struct np_conf_kw pconf_table[] = {
	{ "Identity", NP_CONF_IDENT, offsetof(struct pconf, identity), 0,
	    0, 0, "" },
	{ "IdentityFile", NP_CONF_PATH,
	    offsetof(struct pconf, identity_file), 0, 0, 0, "" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct pconf, server), 0,
	    0, 0, "" },
	{ "ServerFingerprint", NP_CONF_STR,
	    offsetof(struct pconf, server_fingerprint), 0, 0, 0, "" },
	{ "KnownIdentities", NP_CONF_PATH,
	    offsetof(struct pconf, known_identities), 0, 0, 0, "" },
	{ "ConnectTimeout", NP_CONF_DURATION,
	    offsetof(struct pconf, connect_timeout), 0, 1, 3600, "" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static char *
home_path(const char *leaf)
{
	const char *home = getenv("HOME");
	char p[PATH_MAX];
	int n;

	if (home == NULL || *home == '\0') {
		return NULL;
	}
	n = snprintf(p, sizeof(p), "%s/%s/%s", home, CONF_DIR, leaf);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		return NULL;
	}
	return strdup(p);
}

/* -F path, else $NP_CONFIG, else ~/.config/noports/config. */
static int
pconf_load(struct pconf *c, const char *path)
{
	char err[1024];
	char *def = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	c->connect_timeout = 10;
	c->identity_file = home_path("identity.key");
	c->known_identities = home_path("known_identities");
	if (path == NULL && (path = getenv("NP_CONFIG")) != NULL &&
	    *path == '\0') {
		path = NULL;
	}
	if (path == NULL && (path = def = home_path("config")) == NULL) {
		perr("no config (give -F CONFIG or set HOME)");
		return NP_ERR_CONF;
	}
	err[0] = '\0';
	r = np_conf_load(pconf_table, c, path, err, sizeof(err));
	if (r != NP_OK) {
		perr("%s", err[0] != '\0' ? err : np_strerror(r));
	} else if (c->server.host == NULL || c->server_fingerprint == NULL ||
	    c->identity_file == NULL || c->known_identities == NULL) {
		perr("%s: needs Server, ServerFingerprint, IdentityFile and "
		    "KnownIdentities (or HOME)", path);
		r = NP_ERR_CONF;
	}
	free(def);
	return r;
}

/* ---- the deterministic stream: ChaCha20 keystream keyed by the seed ---- */

struct gen {
	uint8_t key[crypto_stream_chacha20_KEYBYTES];
	uint64_t off; /* bytes produced, a multiple of 64 between calls */
};

static void
gen_init(struct gen *g, const char *seed)
{
	crypto_hash_sha256(g->key, (const uint8_t *)seed, strlen(seed));
	g->off = 0;
}

/* The next n bytes (n a multiple of 64 unless it is the last call). */
static void
gen_fill(struct gen *g, uint8_t *p, size_t n)
{
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];

	memset(p, 0, n);
	crypto_stream_chacha20_xor_ic(p, p, n, nonce, g->off / 64, g->key);
	g->off += n;
}

static int
cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *seed = "0";
	uint64_t n = 0, done = 0;
	int have_n = 0, ch;
	crypto_hash_sha256_state st;
	struct gen g;
	uint8_t buf[CHUNK], h[32];
	char hex[65];
	size_t k;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'b') {
			if (opt_u64("--bytes", optarg, UINT64_MAX / 2, &n) != 0) {
				return EXIT_USAGE;
			}
			have_n = 1;
		} else if (ch == 's') {
			seed = optarg;
		} else {
			return EXIT_USAGE;
		}
	}
	if (!have_n || optind != argc) {
		perr("usage: np-srpeer gen --bytes N [--seed S]");
		return EXIT_USAGE;
	}
	gen_init(&g, seed);
	crypto_hash_sha256_init(&st);
	while (done < n) {
		k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
		gen_fill(&g, buf, k);
		crypto_hash_sha256_update(&st, buf, k);
		done += k;
	}
	crypto_hash_sha256_final(&st, h);
	hex32(h, hex);
	printf("%s\n", hex);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---- session files ---- */

static int
session_read(const char *path, struct np_sr_session *s)
{
	struct json_object *o = NULL;
	uint8_t *buf;
	size_t n = 0;
	FILE *f;
	int r = NP_ERR_INVALID;

	if ((buf = sodium_malloc(SESSION_FILE_MAX + 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((f = fopen(path, "re")) == NULL) {
		perr("%s: %s", path, strerror(errno));
		sodium_free(buf);
		return NP_ERR_SYSTEM;
	}
	n = fread(buf, 1, SESSION_FILE_MAX + 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' ||
	    buf[n - 1] == '\r' || buf[n - 1] == '\t')) {
		n--;
	}
	if (n > SESSION_FILE_MAX ||
	    (r = np_json_parse(buf, n, &o)) != NP_OK ||
	    (r = np_sr_session_from_json(o, s)) != NP_OK) {
		perr("%s: not a session body: %s", path,
		    np_strerror(r != NP_OK ? r : NP_ERR_TOO_BIG));
		r = r != NP_OK ? r : NP_ERR_TOO_BIG;
	}
	json_object_put(o);
	sodium_free(buf);
	return r;
}

static int
side_arg(const char *s, enum np_sr_side *side)
{
	if (strcmp(s, "c") == 0) {
		*side = NP_SR_CLIENT;
	} else if (strcmp(s, "d") == 0) {
		*side = NP_SR_DEVICE;
	} else {
		perr("bad --side '%.16s' (c or d)", s);
		return -1;
	}
	return 0;
}

/* np_sr_connect with the error printed. */
static int
sr_connect(const struct np_sr_session *s, enum np_sr_side side,
    int timeout_ms, int *fd)
{
	char why[256];
	int r;

	r = np_sr_connect(&s->side[side], s->sid, side, timeout_ms, fd, why,
	    sizeof(why));
	if (r == NP_ERR_AUTH) {
		perr("refused: %s", why);
	} else if (r != NP_OK) {
		perr("connect to %s port %u: %s (%s)", s->side[side].host,
		    (unsigned)s->side[side].port, np_strerror(r), why);
	}
	return r;
}

/* ---- side: one endpoint, bytes both ways ---- */

struct side_args {
	const char *session;
	enum np_sr_side side;
	int have_side;
	uint64_t send;
	const char *seed;
	int shut;
	uint64_t linger_ms;
	uint64_t recv_rate;
	uint64_t expect_recv;
	int have_expect;
	uint64_t timeout_s;
};

struct side_io {
	int fd;
	struct gen g;
	uint8_t out[CHUNK];
	size_t out_off, out_len;
	uint64_t sent, recvd;
	int rd_eof, wr_done;
	crypto_hash_sha256_state hs, hr;
	uint64_t t_read0;
};

static int
side_opts(int argc, char **argv, struct side_args *a)
{
	static const struct option opts[] = {
		{ "session", required_argument, NULL, 'S' },
		{ "side", required_argument, NULL, 's' },
		{ "send", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 'e' },
		{ "shut", no_argument, NULL, 'x' },
		{ "linger-ms", required_argument, NULL, 'l' },
		{ "recv-rate", required_argument, NULL, 'r' },
		{ "expect-recv", required_argument, NULL, 'E' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, bad = 0;

	memset(a, 0, sizeof(*a));
	a->seed = "0";
	a->timeout_s = SIDE_TIMEOUT_S;
	while (!bad && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': a->session = optarg; break;
		case 's':
			bad = side_arg(optarg, &a->side);
			a->have_side = 1;
			break;
		case 'n':
			bad = opt_u64("--send", optarg, UINT64_MAX / 2,
			    &a->send);
			break;
		case 'e': a->seed = optarg; break;
		case 'x': a->shut = 1; break;
		case 'l':
			bad = opt_u64("--linger-ms", optarg, 86400000,
			    &a->linger_ms);
			break;
		case 'r':
			bad = opt_u64("--recv-rate", optarg, UINT64_MAX / 2,
			    &a->recv_rate);
			break;
		case 'E':
			bad = opt_u64("--expect-recv", optarg, UINT64_MAX / 2,
			    &a->expect_recv);
			a->have_expect = 1;
			break;
		case 't':
			bad = opt_u64("--timeout", optarg, 86400,
			    &a->timeout_s);
			bad = bad || a->timeout_s == 0;
			break;
		default: bad = 1; break;
		}
	}
	if (bad || a->session == NULL || !a->have_side || optind != argc) {
		perr("usage: np-srpeer side --session FILE --side c|d "
		    "[--send N] [--seed S] [--shut] [--linger-ms MS] "
		    "[--recv-rate BPS] [--expect-recv N] [--timeout S]");
		return -1;
	}
	return 0;
}

/* Write what we can; NP_OK, or NP_ERR_CLOSED on a write error. */
static int
side_write(struct side_io *io, const struct side_args *a)
{
	ssize_t n;
	size_t k;

	while (io->sent < a->send) {
		if (io->out_off == io->out_len) {
			k = a->send - io->sent < CHUNK ?
			    (size_t)(a->send - io->sent) : CHUNK;
			gen_fill(&io->g, io->out, k);
			crypto_hash_sha256_update(&io->hs, io->out, k);
			io->out_off = 0;
			io->out_len = k;
		}
		n = send(io->fd, io->out + io->out_off,
		    io->out_len - io->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return NP_OK;
		}
		if (n <= 0) {
			perr("send: %s", strerror(errno));
			return NP_ERR_CLOSED;
		}
		io->out_off += (size_t)n;
		io->sent += (uint64_t)n;
	}
	if (!io->wr_done) {
		io->wr_done = 1;
		if (a->shut && shutdown(io->fd, SHUT_WR) != 0) {
			perr("shutdown: %s", strerror(errno));
			return NP_ERR_CLOSED;
		}
	}
	return NP_OK;
}

/* Bytes the rate limit allows now (SIZE_MAX: no limit). */
static size_t
side_read_allow(const struct side_io *io, const struct side_args *a)
{
	uint64_t el, may;

	if (a->recv_rate == 0) {
		return SIZE_MAX;
	}
	el = np_now_mono_ms() - io->t_read0;
	may = a->recv_rate * el / 1000 + 1;
	return may > io->recvd ? (size_t)(may - io->recvd) : 0;
}

static int
side_read(struct side_io *io, const struct side_args *a)
{
	uint8_t buf[CHUNK];
	size_t allow;
	ssize_t n;

	for (;;) {
		allow = side_read_allow(io, a);
		if (allow == 0) {
			return NP_OK;
		}
		n = recv(io->fd, buf, allow < sizeof(buf) ? allow :
		    sizeof(buf), 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return NP_OK;
		}
		if (n < 0) {
			perr("recv: %s", strerror(errno));
			return NP_ERR_CLOSED;
		}
		if (n == 0) {
			io->rd_eof = 1;
			return NP_OK;
		}
		crypto_hash_sha256_update(&io->hr, buf, (size_t)n);
		io->recvd += (uint64_t)n;
	}
}

static int
side_loop(struct side_io *io, const struct side_args *a, uint64_t deadline)
{
	struct pollfd pfd;
	uint64_t now;
	int r, ms;

	io->t_read0 = np_now_mono_ms();
	while (!(io->rd_eof && io->wr_done)) {
		if ((r = side_write(io, a)) != NP_OK) {
			return r;
		}
		if ((r = side_read(io, a)) != NP_OK) {
			return r;
		}
		if (io->rd_eof && io->wr_done) {
			break;
		}
		if ((now = np_now_mono_ms()) >= deadline) {
			perr("timed out (sent %llu, received %llu)",
			    (unsigned long long)io->sent,
			    (unsigned long long)io->recvd);
			return NP_ERR_TIMEOUT;
		}
		ms = deadline - now > 1000 ? 1000 : (int)(deadline - now);
		pfd.fd = io->fd;
		pfd.events = 0;
		if (!io->wr_done) {
			pfd.events |= POLLOUT;
		}
		if (!io->rd_eof) {
			if (side_read_allow(io, a) > 0) {
				pfd.events |= POLLIN;
			} else {
				ms = ms > 10 ? 10 : ms;
			}
		}
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR) {
			perr("poll: %s", strerror(errno));
			return NP_ERR_SYSTEM;
		}
	}
	return NP_OK;
}

static void
side_report(struct side_io *io)
{
	uint8_t hs[32], hr[32];
	char xs[65], xr[65];

	crypto_hash_sha256_final(&io->hs, hs);
	crypto_hash_sha256_final(&io->hr, hr);
	hex32(hs, xs);
	hex32(hr, xr);
	printf("sent %llu sha256 %s recv %llu sha256 %s\n",
	    (unsigned long long)io->sent, xs, (unsigned long long)io->recvd,
	    xr);
	fflush(stdout);
}

static int
cmd_side(int argc, char **argv)
{
	struct side_args a;
	struct np_sr_session s;
	struct side_io *io = NULL;
	uint64_t deadline;
	int r, rc = EXIT_FAIL;

	if (side_opts(argc, argv, &a) != 0) {
		return EXIT_USAGE;
	}
	deadline = np_now_mono_ms() + a.timeout_s * 1000;
	if (session_read(a.session, &s) != NP_OK) {
		return EXIT_FAIL;
	}
	if ((io = calloc(1, sizeof(*io))) == NULL) {
		goto out;
	}
	io->fd = -1;
	gen_init(&io->g, a.seed);
	crypto_hash_sha256_init(&io->hs);
	crypto_hash_sha256_init(&io->hr);
	if (sr_connect(&s, a.side, (int)(a.timeout_s * 1000 > 30000 ?
	    30000 : a.timeout_s * 1000), &io->fd) != NP_OK) {
		goto out;
	}
	if (a.linger_ms > 0) {
		usleep((useconds_t)(a.linger_ms % 1000) * 1000);
		sleep((unsigned)(a.linger_ms / 1000));
	}
	r = side_loop(io, &a, deadline);
	side_report(io);
	if (r == NP_OK) {
		rc = a.have_expect && io->recvd != a.expect_recv ?
		    EXIT_MISMATCH : EXIT_OK;
	}
	if (rc == EXIT_MISMATCH) {
		perr("received %llu bytes, expected %llu",
		    (unsigned long long)io->recvd,
		    (unsigned long long)a.expect_recv);
	}
 out:
	if (io != NULL && io->fd >= 0) {
		close(io->fd);
	}
	free(io);
	sodium_memzero(&s, sizeof(s));
	return rc;
}

/* ---- open: srd.open over the control plane ---- */

struct push_item {
	struct push_item *next;
	int64_t seq;
	char from[NP_IDENT_MAX + 1];
	char mid[NP_MID_LEN + 1];
	size_t len;
	uint8_t box[];
};

struct open_st {
	struct pconf cfg;
	struct np_ev *ev;
	struct np_key *key;
	struct np_cpc *c;
	struct np_replay *rc;
	char sr[NP_IDENT_MAX + 1];
	char peer[NP_IDENT_MAX + 1];
	uint8_t sr_pk[NP_PK_LEN];
	char tag[NP_TAG_MAX + 1]; /* reply tag: rt in srd.open, monitored */
	struct push_item *head, **tail;
	size_t queued;
	uint64_t deadline;
};

static void
open_push(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct open_st *st = arg;
	struct push_item *it;

	if (m->tag == NULL || strcmp(m->tag, st->tag) != 0) {
		return; /* not on our tag: not for us */
	}
	if (st->queued >= PUSH_MAX || strlen(m->from) > NP_IDENT_MAX ||
	    strlen(m->mid) > NP_MID_LEN || m->box_len > NP_BOX_MAX) {
		return;
	}
	if ((it = calloc(1, sizeof(*it) + m->box_len)) == NULL) {
		return;
	}
	it->seq = m->seq;
	snprintf(it->from, sizeof(it->from), "%s", m->from);
	snprintf(it->mid, sizeof(it->mid), "%s", m->mid);
	it->len = m->box_len;
	memcpy(it->box, m->box, m->box_len);
	*st->tail = it;
	st->tail = &it->next;
	st->queued++;
}

static struct push_item *
open_pop(struct open_st *st)
{
	struct push_item *it = st->head;

	if (it != NULL) {
		st->head = it->next;
		if (st->head == NULL) {
			st->tail = &st->head;
		}
		st->queued--;
	}
	return it;
}

static int
open_timeout_ms(const struct open_st *st)
{
	uint64_t now = np_now_mono_ms();

	return now >= st->deadline ? 0 : (int)(st->deadline - now);
}

static int
open_connect(struct open_st *st)
{
	struct np_cpc_conf conf;
	int r;

	if ((r = np_key_load(st->cfg.identity_file, &st->key)) != NP_OK) {
		perr("%s: cannot load the identity key: %s",
		    st->cfg.identity_file, np_strerror(r));
		return r;
	}
	if (st->cfg.identity != NULL &&
	    strcmp(st->cfg.identity, np_key_name(st->key)) != 0) {
		perr("%s holds the key of %s, not %s", st->cfg.identity_file,
		    np_key_name(st->key), st->cfg.identity);
		return NP_ERR_CONF;
	}
	memset(&conf, 0, sizeof(conf));
	conf.host = st->cfg.server.host;
	conf.port = st->cfg.server.port;
	conf.fingerprint = st->cfg.server_fingerprint;
	conf.key = st->key;
	conf.monitor_tag = st->tag;
	conf.connect_timeout_ms = (int)st->cfg.connect_timeout * 1000;
	if ((r = np_cpc_new(st->ev, &conf, &st->c)) != NP_OK) {
		perr("control plane: %s", np_strerror(r));
		return r;
	}
	np_cpc_set_msg_cb(st->c, open_push, st);
	if ((r = np_cpc_connect_wait(st->c, open_timeout_ms(st))) != NP_OK) {
		perr("cannot connect to %s port %s: %s (%s)", conf.host,
		    conf.port, np_strerror(r), np_cpc_detail(st->c));
	}
	return r;
}

/* Look up @sr and check its pin (trust on first use). */
static int
open_pin(struct open_st *st)
{
	struct np_cpc_lookup_res res;
	struct np_pins *pins = NULL;
	int r, changed = 0;

	if ((r = np_cpc_lookup_sync(st->c, st->sr, open_timeout_ms(st),
	    &res)) != NP_OK) {
		perr("lookup %s: %s (%s)", st->sr, np_strerror(r),
		    np_cpc_detail(st->c));
		return r;
	}
	if ((r = np_pins_load(st->cfg.known_identities, &pins)) != NP_OK) {
		perr("%s: %s", st->cfg.known_identities, np_strerror(r));
		return r;
	}
	r = np_pins_check(pins, st->sr, res.pk, res.rot, res.nrot, 1,
	    &changed);
	if (r == NP_OK && changed) {
		r = np_pins_save(pins, st->cfg.known_identities);
	}
	if (r != NP_OK) {
		perr("%s: key check: %s", st->sr, np_strerror(r));
	} else {
		memcpy(st->sr_pk, res.pk, NP_PK_LEN);
	}
	np_pins_free(pins);
	return r;
}

static int
open_send(struct open_st *st)
{
	struct json_object *body = NULL, *v;
	struct np_buf *box = NULL;
	char mid[NP_MID_LEN + 1];
	int r = NP_ERR_ALLOC;

	if ((body = json_object_new_object()) == NULL ||
	    (box = np_buf_new(NP_BOX_MAX)) == NULL) {
		goto out;
	}
	if ((v = json_object_new_string(st->tag)) == NULL ||
	    json_object_object_add(body, "rt", v) != 0) {
		json_object_put(v);
		goto out;
	}
	if (st->peer[0] != '\0') {
		if ((v = json_object_new_string(st->peer)) == NULL ||
		    json_object_object_add(body, "peer", v) != 0) {
			json_object_put(v);
			goto out;
		}
	}
	if ((r = np_box_seal(st->key, st->sr_pk, st->sr, "srd.open", NULL,
	    body, OPEN_TTL, np_now_real_ms(), NULL, box, mid)) != NP_OK) {
		perr("seal: %s", np_strerror(r));
		goto out;
	}
	if ((r = np_cpc_send_sync(st->c, st->sr, mid, OPEN_TTL,
	    np_buf_ptr(box), np_buf_len(box), open_timeout_ms(st))) != NP_OK) {
		perr("send to %s: %s (%s)", st->sr, np_strerror(r),
		    np_cpc_detail(st->c));
	}
 out:
	json_object_put(body);
	np_buf_free(box);
	return r;
}

/* An srd.session body: print it.  NP_ERR_AGAIN: stale, ignore. */
static int
open_session(const struct np_box_msg *m)
{
	struct np_sr_session s;
	struct json_object *o = NULL;
	int r;

	if ((r = np_sr_session_from_json(m->body, &s)) != NP_OK) {
		perr("bad srd.session body from rendezvous");
		return NP_ERR_PROTO;
	}
	if (strcmp(m->session, s.sid) != 0) {
		perr("srd.session: box session '%.64s' is not sid %s",
		    m->session, s.sid);
		r = NP_ERR_PROTO;
		goto out;
	}
	if (s.deadline_ms < np_now_real_ms()) {
		r = NP_ERR_AGAIN; /* a leftover from an earlier run */
		goto out;
	}
	if ((r = np_sr_session_to_json(&s, &o)) != NP_OK) {
		goto out;
	}
	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	r = fflush(stdout) == 0 ? NP_OK : NP_ERR_SYSTEM;
 out:
	json_object_put(o);
	sodium_memzero(&s, sizeof(s));
	return r;
}

static int
open_error(const struct np_box_msg *m)
{
	struct json_object *v;
	const char *why = "(no reason)";

	if (m->body != NULL &&
	    json_object_object_get_ex(m->body, "reason", &v) &&
	    json_object_is_type(v, json_type_string)) {
		why = json_object_get_string(v);
	}
	perr("refused: %.200s", why);
	return NP_ERR_AUTH;
}

/*
 * One pushed box.  NP_ERR_AGAIN: not our answer (left or dropped);
 * NP_OK: session printed; other: refused or broken answer.
 */
static int
open_handle(struct open_st *st, const struct push_item *it)
{
	struct np_box_msg *m = NULL;
	int r;

	/* On our tag: ours or nobody's, so acked in every case. */
	if (strcmp(it->from, st->sr) != 0) {
		perr("dropped a box from %s", it->from);
		r = NP_ERR_AGAIN;
	} else if ((r = np_box_open(st->key, st->sr_pk, it->from, it->mid,
	    it->box, it->len, np_now_real_ms(), st->rc, &m)) != NP_OK) {
		perr("dropped a box from %s: %s", it->from, np_strerror(r));
		r = NP_ERR_AGAIN;
	} else if (strcmp(m->type, "srd.session") == 0) {
		r = open_session(m);
	} else if (strcmp(m->type, "srd.error") == 0) {
		r = open_error(m);
	} else {
		r = NP_ERR_AGAIN;
	}
	np_box_msg_free(m);
	(void)np_cpc_ack(st->c, it->seq);
	return r;
}

static int
open_wait(struct open_st *st)
{
	struct push_item *it;
	int r, ms;

	for (;;) {
		while ((it = open_pop(st)) != NULL) {
			r = open_handle(st, it);
			free(it);
			if (r != NP_ERR_AGAIN) {
				return r;
			}
		}
		if (!np_cpc_is_up(st->c)) {
			perr("control-plane connection lost");
			return NP_ERR_CLOSED;
		}
		if ((ms = open_timeout_ms(st)) == 0) {
			perr("timed out waiting for %s", st->sr);
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(st->ev, ms > 500 ? 500 : ms)) !=
		    NP_OK) {
			perr("event loop: %s", np_strerror(r));
			return r;
		}
	}
}

static int
open_opts(int argc, char **argv, struct open_st *st, uint64_t *timeout_s)
{
	static const struct option opts[] = {
		{ "peer", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*timeout_s = OPEN_TIMEOUT_S;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p') {
			if (np_ident_norm(optarg, st->peer,
			    sizeof(st->peer)) != NP_OK) {
				perr("bad --peer '%.64s'", optarg);
				return -1;
			}
		} else if (ch == 't') {
			if (opt_u64("--timeout", optarg, 3600, timeout_s) !=
			    0 || *timeout_s == 0) {
				return -1;
			}
		} else {
			return -1;
		}
	}
	if (optind + 1 != argc ||
	    np_ident_norm(argv[optind], st->sr, sizeof(st->sr)) != NP_OK) {
		perr("usage: np-srpeer [-F CONFIG] open @sr [--peer @x] "
		    "[--timeout S]");
		return -1;
	}
	return 0;
}

static int
cmd_open(const char *cfgpath, int argc, char **argv)
{
	struct open_st st;
	uint64_t timeout_s;
	struct push_item *it;
	int rc = EXIT_FAIL;

	memset(&st, 0, sizeof(st));
	st.tail = &st.head;
	if (open_opts(argc, argv, &st, &timeout_s) != 0) {
		return EXIT_USAGE;
	}
	st.deadline = np_now_mono_ms() + timeout_s * 1000;
	np_tag_new(st.tag);
	if (pconf_load(&st.cfg, cfgpath) != NP_OK) {
		goto out;
	}
	if ((st.ev = np_ev_new()) == NULL ||
	    (st.rc = np_replay_new(1024)) == NULL) {
		perr("out of memory");
		goto out;
	}
	if (open_connect(&st) != NP_OK || open_pin(&st) != NP_OK ||
	    np_cpc_monitor_sync(st.c, open_timeout_ms(&st)) != NP_OK ||
	    open_send(&st) != NP_OK) {
		goto out;
	}
	if (open_wait(&st) == NP_OK) {
		rc = EXIT_OK;
	}
	/* an answered ping: the server has read the ack */
	if (np_cpc_is_up(st.c)) {
		(void)np_cpc_ping_sync(st.c, 2000, NULL);
	}
 out:
	if (st.c != NULL) {
		np_cpc_stop(st.c);
	}
	np_cpc_free(st.c);
	while ((it = open_pop(&st)) != NULL) {
		free(it);
	}
	np_replay_free(st.rc);
	np_key_free(st.key);
	np_ev_free(st.ev);
	np_conf_free(pconf_table, &st.cfg);
	return rc;
}

/* ---- forward: local TCP connections through np-srd ---- */

struct fwd;

struct fwd_sess {
	struct fwd *f;
	int sr_fd;
	int local_fd;
	int state; /* 0 waiting, 1 relaying, 2 done */
	struct np_relay *relay;
};

struct fwd {
	struct np_ev *ev;
	enum np_sr_side side;
	struct np_hostport where;
	int lfd;
	size_t n, next, active, done, failed, errors;
	uint64_t last_done_ms;
	uint64_t a_to_b, b_to_a;
	struct fwd_sess s[FWD_MAX];
};

static void
fwd_relay_done(struct np_relay *r, int result, void *arg)
{
	struct fwd_sess *fs = arg;
	const struct np_relay_stats *st = np_relay_stats(r);

	fs->f->a_to_b += st->a_to_b;
	fs->f->b_to_a += st->b_to_a;
	if (result != NP_RELAY_DONE) {
		/* e.g. iperf3 closing a data stream: reported, not fatal */
		perr("relay %zu ended with %d (%s)", (size_t)(fs - fs->f->s),
		    result, st->err_errno != 0 ? strerror(st->err_errno) : "");
		fs->f->errors++;
	}
	np_relay_free(r);
	fs->relay = NULL;
	close(fs->sr_fd);
	close(fs->local_fd);
	fs->sr_fd = fs->local_fd = -1;
	fs->state = 2;
	fs->f->active--;
	fs->f->done++;
	fs->f->last_done_ms = np_now_mono_ms();
}

static int
fwd_start(struct fwd_sess *fs)
{
	struct np_relay_end a, b;
	int r;

	a.rfd = a.wfd = fs->local_fd;
	b.rfd = b.wfd = fs->sr_fd;
	if ((r = np_relay_start(fs->f->ev, a, b, 0, fwd_relay_done, fs,
	    &fs->relay)) != NP_OK) {
		perr("relay: %s", np_strerror(r));
		return r;
	}
	fs->state = 1;
	fs->f->active++;
	return NP_OK;
}

static void
fwd_fail(struct fwd_sess *fs)
{
	if (fs->sr_fd >= 0) {
		close(fs->sr_fd);
	}
	if (fs->local_fd >= 0) {
		close(fs->local_fd);
	}
	fs->sr_fd = fs->local_fd = -1;
	fs->state = 2;
	fs->f->done++;
	fs->f->failed++;
	fs->f->last_done_ms = np_now_mono_ms();
}

static void
fwd_accept_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct fwd *f = arg;
	struct fwd_sess *fs;
	int c, one = 1;

	while (f->next < f->n) {
		c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			return;
		}
		(void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		fs = &f->s[f->next++];
		fs->local_fd = c;
		if (fwd_start(fs) != NP_OK) {
			fwd_fail(fs);
		}
	}
	np_ev_del(ev, fd);
	close(fd);
	f->lfd = -1;
}

/* Blocking connect (bounded) to the local service; non-blocking fd. */
static int
local_connect(const struct np_hostport *hp)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct pollfd pfd;
	int fd = -1, one = 1, err = 0;
	socklen_t sl = sizeof(err);

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(hp->host, hp->port, &hints, &res) != 0) {
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd < 0) {
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (errno == EINPROGRESS &&
		    poll(&pfd, 1, LOCAL_CONNECT_MS) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 &&
		    err == 0) {
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Device side: the first bytes (or EOF) from the SR open the local
 * connection, so the local service sees connections in the client's
 * order. */
static void
fwd_sr_ready_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct fwd_sess *fs = arg;

	np_ev_del(ev, fd);
	if ((fs->local_fd = local_connect(&fs->f->where)) < 0) {
		perr("cannot connect to %s port %s", fs->f->where.host,
		    fs->f->where.port);
		fwd_fail(fs);
		return;
	}
	if (fwd_start(fs) != NP_OK) {
		fwd_fail(fs);
	}
}

static int
fwd_listen(struct fwd *f)
{
	struct addrinfo hints, *res = NULL;
	int one = 1, r = NP_ERR_SYSTEM;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(f->where.host, f->where.port, &hints, &res) != 0) {
		perr("cannot resolve %s", f->where.host);
		return NP_ERR_UNREACHABLE;
	}
	f->lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (f->lfd < 0 ||
	    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 ||
	    bind(f->lfd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(f->lfd, FWD_MAX) != 0) {
		perr("listen on %s port %s: %s", f->where.host, f->where.port,
		    strerror(errno));
		goto out;
	}
	if ((r = np_ev_add(f->ev, f->lfd, NP_EV_READ, fwd_accept_cb, f)) !=
	    NP_OK) {
		perr("event loop: %s", np_strerror(r));
	}
 out:
	freeaddrinfo(res);
	return r;
}

/* All sessions relayed, or some done and no new one for a while. */
static int
fwd_finished(const struct fwd *f)
{
	if (f->active > 0) {
		return 0;
	}
	if (f->done == f->n) {
		return 1;
	}
	return f->done > 0 &&
	    np_now_mono_ms() - f->last_done_ms > FWD_IDLE_EXIT_MS;
}

static int
fwd_run(struct fwd *f, uint64_t deadline)
{
	uint64_t now;
	int r;

	while (!fwd_finished(f)) {
		if ((now = np_now_mono_ms()) >= deadline) {
			perr("timed out (%zu of %zu sessions done)", f->done,
			    f->n);
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(f->ev, deadline - now > 200 ? 200 :
		    (int)(deadline - now))) != NP_OK) {
			perr("event loop: %s", np_strerror(r));
			return r;
		}
	}
	return f->failed > 0 ? NP_ERR_CLOSED : NP_OK;
}

static void
fwd_cleanup(struct fwd *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (f->s[i].relay != NULL) {
			np_relay_free(f->s[i].relay);
		}
		if (f->s[i].sr_fd >= 0) {
			close(f->s[i].sr_fd);
		}
		if (f->s[i].local_fd >= 0) {
			close(f->s[i].local_fd);
		}
	}
	if (f->lfd >= 0) {
		close(f->lfd);
	}
	np_hostport_free(&f->where);
	np_ev_free(f->ev);
}

struct fwd_args {
	const char *sessions[FWD_MAX];
	size_t n;
	const char *listen, *connect;
	enum np_sr_side side;
	int have_side;
	uint64_t timeout_s;
};

static int
fwd_opts(int argc, char **argv, struct fwd_args *a)
{
	static const struct option opts[] = {
		{ "session", required_argument, NULL, 'S' },
		{ "side", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, bad = 0;

	memset(a, 0, sizeof(*a));
	a->timeout_s = FWD_TIMEOUT_S;
	while (!bad && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			if (a->n == FWD_MAX) {
				perr("at most %d sessions", FWD_MAX);
				bad = 1;
			} else {
				a->sessions[a->n++] = optarg;
			}
			break;
		case 's':
			bad = side_arg(optarg, &a->side);
			a->have_side = 1;
			break;
		case 'l': a->listen = optarg; break;
		case 'c': a->connect = optarg; break;
		case 't':
			bad = opt_u64("--timeout", optarg, 86400,
			    &a->timeout_s) != 0 || a->timeout_s == 0;
			break;
		default: bad = 1; break;
		}
	}
	if (!bad && a->have_side &&
	    (a->side == NP_SR_CLIENT ? a->listen != NULL && a->connect ==
	    NULL : a->connect != NULL && a->listen == NULL) && a->n > 0 &&
	    optind == argc) {
		return 0;
	}
	perr("usage: np-srpeer forward --session FILE [--session FILE ...] "
	    "(--side c --listen HOST:PORT | --side d --connect HOST:PORT) "
	    "[--timeout S]");
	return -1;
}

/* Authenticate every session at np-srd, in order. */
static int
fwd_connect_all(struct fwd *f, const struct fwd_args *a, uint64_t deadline)
{
	struct np_sr_session s;
	size_t i;
	int r;

	for (i = 0; i < a->n; i++) {
		f->s[i].f = f;
		f->s[i].sr_fd = f->s[i].local_fd = -1;
	}
	f->n = a->n;
	for (i = 0; i < a->n; i++) {
		if ((r = session_read(a->sessions[i], &s)) != NP_OK) {
			return r;
		}
		r = sr_connect(&s, a->side, (int)(deadline -
		    np_now_mono_ms()), &f->s[i].sr_fd);
		sodium_memzero(&s, sizeof(s));
		if (r != NP_OK) {
			return r;
		}
		if (a->side == NP_SR_DEVICE && (r = np_ev_add(f->ev,
		    f->s[i].sr_fd, NP_EV_READ, fwd_sr_ready_cb,
		    &f->s[i])) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

static int
cmd_forward(int argc, char **argv)
{
	struct fwd_args a;
	struct fwd *f;
	uint64_t deadline;
	int rc = EXIT_FAIL;

	if (fwd_opts(argc, argv, &a) != 0) {
		return EXIT_USAGE;
	}
	deadline = np_now_mono_ms() + a.timeout_s * 1000;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		return EXIT_FAIL;
	}
	f->lfd = -1;
	f->side = a.side;
	if (np_hostport_parse(a.listen != NULL ? a.listen : a.connect,
	    &f->where) != NP_OK) {
		perr("bad HOST:PORT '%.64s'", a.listen != NULL ? a.listen :
		    a.connect);
		free(f);
		return EXIT_USAGE;
	}
	if ((f->ev = np_ev_new()) == NULL) {
		goto out;
	}
	if (fwd_connect_all(f, &a, deadline) != NP_OK) {
		goto out;
	}
	if (a.side == NP_SR_CLIENT && fwd_listen(f) != NP_OK) {
		goto out;
	}
	if (fwd_run(f, deadline) == NP_OK) {
		rc = EXIT_OK;
	}
	printf("forwarded %zu of %zu sessions (%zu with errors), %llu bytes "
	    "local->sr, %llu bytes sr->local\n", f->done - f->failed, f->n,
	    f->errors,
	    (unsigned long long)f->a_to_b, (unsigned long long)f->b_to_a);
	fflush(stdout);
 out:
	fwd_cleanup(f);
	free(f);
	return rc;
}

/* ---- main ---- */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: np-srpeer [-F CONFIG] open @sr [--peer @x] [--timeout S]\n"
	    "       np-srpeer side --session FILE --side c|d [--send N] "
	    "[--seed S] [--shut]\n"
	    "                 [--linger-ms MS] [--recv-rate BPS] "
	    "[--expect-recv N] [--timeout S]\n"
	    "       np-srpeer gen --bytes N [--seed S]\n"
	    "       np-srpeer forward --session FILE [--session FILE ...] "
	    "--side c --listen HOST:PORT\n"
	    "       np-srpeer forward --session FILE [--session FILE ...] "
	    "--side d --connect HOST:PORT\n");
}

int
main(int argc, char **argv)
{
	const char *cfgpath = NULL, *cmd; /* -F: used by open only */
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	if (i + 1 < argc && strcmp(argv[i], "-F") == 0) {
		cfgpath = argv[i + 1];
		i += 2;
	}
	if (i >= argc || strcmp(argv[i], "--help") == 0) {
		usage();
		return i >= argc ? EXIT_USAGE : EXIT_OK;
	}
	if (np_crypto_init() != NP_OK) {
		perr("cannot initialise libsodium");
		return EXIT_FAIL;
	}
	np_log_init("np-srpeer", 0, NP_LOG_WARN);
	cmd = argv[i];
	argc -= i;
	argv += i;
	optind = 1;
	if (strcmp(cmd, "open") == 0) {
		return cmd_open(cfgpath, argc, argv);
	}
	if (strcmp(cmd, "side") == 0) {
		return cmd_side(argc, argv);
	}
	if (strcmp(cmd, "gen") == 0) {
		return cmd_gen(argc, argv);
	}
	if (strcmp(cmd, "forward") == 0) {
		return cmd_forward(argc, argv);
	}
	perr("unknown subcommand '%.32s'", cmd);
	usage();
	return EXIT_USAGE;
}
