/*
 * The data plane: listening sockets (one shared port, or two fresh ones
 * per session), connections that have not sent their token line yet,
 * and the relays between authenticated sides.
 *
 * A pre-auth connection gets AuthTimeout and NP_SRLINE_MAX bytes.  Its
 * line is read without consuming a byte past the "\n" (MSG_PEEK, then an
 * exact read), so payload the side sent right behind its line stays in
 * the socket for the relay.  Caps: MaxPending in total, MaxPendingPerSource
 * per address; over a cap the oldest pending connection (of that address,
 * or of all) is dropped, and a new connection's line is read right after
 * accept, so a flood of silent connections pushes out only itself.
 *
 * A probe line ("NPSR1 PROBE <ticket>", docs/PROTOCOL.md "Probes") with
 * a ticket this process issued gets "NPSR1 PONG" and the connection is
 * closed: nothing is relayed, no session is touched.  Probes come to the
 * single port, or in ephemeral mode to a probe port opened at start
 * (from PortRange when given), which takes nothing but probes.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "ev.h"
#include "log.h"
#include "relay.h"
#include "srd.h"
#include "srproto.h"

#define SRC_BUCKETS 1024
#define LST_BACKLOG 8		/* a fresh port: one side, a few strays */
#define SINGLE_BACKLOG 4096
#define PAUSE_MS 200		/* accept back-off on EMFILE and the like */
#define SWEEP_MIN_MS 10
#define ADDR_STR 64

/* Pre-auth connections per source address, oldest first. */
struct srd_src {
	struct srd_src *next;
	unsigned n;
	struct srd_conn *shead, *stail;
	struct srd_addr addr; /* port 0 */
};

struct srd_conn {
	struct srd_conn *prev, *next; /* pending list, deadline order */
	struct srd_conn *sprev, *snext; /* the same, per source */
	struct srd *d;
	int fd;
	uint8_t single;		/* arrived on the single port */
	uint8_t probe_only;	/* arrived on the probe port */
	uint8_t lside;		/* else: the endpoint's session and side */
	char lsid[NP_SR_SID_LEN + 1];
	uint64_t deadline;
	struct srd_addr addr;
	struct srd_src *src;
	size_t used;
	uint8_t line[NP_SRLINE_MAX];
};

struct srd_dp {
	struct srd_lst single;
	struct srd_lst probe;	/* ephemeral mode: the probe port */
	uint8_t *probe_key;	/* NP_SR_PROBE_KEY_LEN, sodium_malloc */
	struct srd_conn *head, *tail;
	size_t nconns;
	struct srd_src *src[SRC_BUCKETS];
	uint8_t src_key[crypto_shorthash_KEYBYTES];
	uint64_t sweep_timer, sweep_at;
	struct srd_lst *paused;
	uint64_t resume_timer;
	uint8_t portmap[65536 / 8]; /* PortRange ports we hold */
	int port_next;
	struct sockaddr_storage bind_sa;
	socklen_t bind_len;
};

static void sess_end(struct srd *, struct srd_sess *, const char *);
static void sweep_arm(struct srd *, uint64_t);

/* ---- addresses ---- */

static void
addr_from_sa(struct srd_addr *a, const struct sockaddr_storage *ss)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		a->family = AF_INET;
		a->port = ntohs(in->sin_port);
		memcpy(a->a, &in->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		a->family = AF_INET6;
		a->port = ntohs(in6->sin6_port);
		memcpy(a->a, &in6->sin6_addr, 16);
	}
}

static const char *
addr_str(const struct srd_addr *a, char buf[ADDR_STR])
{
	char ip[INET6_ADDRSTRLEN];

	if (a->family == 0 ||
	    inet_ntop(a->family, a->a, ip, sizeof(ip)) == NULL) {
		snprintf(buf, ADDR_STR, "-");
	} else if (a->family == AF_INET6) {
		snprintf(buf, ADDR_STR, "[%s]:%u", ip, a->port);
	} else {
		snprintf(buf, ADDR_STR, "%s:%u", ip, a->port);
	}
	return buf;
}

/* ---- per-source counts ---- */

static size_t
src_hash(const struct srd_dp *dp, const struct srd_addr *a)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const uint8_t *)a, sizeof(*a), dp->src_key);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v % SRC_BUCKETS);
}

/* The entry of an address, created when missing; NULL without memory. */
static struct srd_src *
src_get(struct srd *d, const struct srd_addr *addr)
{
	struct srd_dp *dp = d->dp;
	struct srd_addr key = *addr;
	struct srd_src *s;
	size_t h;

	key.port = 0;
	h = src_hash(dp, &key);
	for (s = dp->src[h]; s != NULL; s = s->next) {
		if (memcmp(&s->addr, &key, sizeof(key)) == 0) {
			break;
		}
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			return NULL;
		}
		s->addr = key;
		s->next = dp->src[h];
		dp->src[h] = s;
	}
	return s;
}

static void
src_release(struct srd *d, struct srd_src *src)
{
	struct srd_dp *dp = d->dp;
	struct srd_src **pp;

	if (src == NULL || --src->n > 0) {
		return;
	}
	for (pp = &dp->src[src_hash(dp, &src->addr)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == src) {
			*pp = src->next;
			free(src);
			return;
		}
	}
}

/* ---- listeners ---- */

static void accept_cb(struct np_ev *, int, uint32_t, void *);

static int
sock_listen(struct srd *d, uint16_t port, int backlog, int *fdp,
    uint16_t *bound)
{
	struct srd_dp *dp = d->dp;
	struct sockaddr_storage ss = dp->bind_sa;
	socklen_t len = sizeof(ss);
	int fd, one = 1;

	if (ss.ss_family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		return NP_ERR_SYSTEM;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ==
	    -1 || bind(fd, (struct sockaddr *)&ss, dp->bind_len) == -1 ||
	    listen(fd, backlog) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return NP_ERR_SYSTEM;
	}
	*bound = ss.ss_family == AF_INET ?
	    ntohs(((struct sockaddr_in *)&ss)->sin_port) :
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	*fdp = fd;
	return NP_OK;
}

/* A fresh session port: any free one, or the next free one in PortRange. */
static int
lst_open_fresh(struct srd *d, struct srd_lst *l)
{
	struct srd_dp *dp = d->dp;
	int lo = d->conf->port_lo, hi = d->conf->port_hi, n, p, r;

	if (lo == 0) {
		return sock_listen(d, 0, LST_BACKLOG, &l->fd, &l->port);
	}
	for (n = 0; n <= hi - lo; n++) {
		p = dp->port_next;
		dp->port_next = p >= hi ? lo : p + 1;
		if (dp->portmap[p / 8] & (1u << (p % 8))) {
			continue;
		}
		r = sock_listen(d, (uint16_t)p, LST_BACKLOG, &l->fd, &l->port);
		if (r == NP_OK) {
			dp->portmap[p / 8] |= (uint8_t)(1u << (p % 8));
			return NP_OK;
		}
		if (errno != EADDRINUSE) {
			return r;
		}
	}
	errno = EADDRINUSE;
	return NP_ERR_LIMIT;
}

static void
paused_remove(struct srd_dp *dp, struct srd_lst *l)
{
	struct srd_lst **pp;

	for (pp = &dp->paused; *pp != NULL; pp = &(*pp)->pnext) {
		if (*pp == l) {
			*pp = l->pnext;
			break;
		}
	}
	l->paused = 0;
	l->pnext = NULL;
}

static void
lst_close(struct srd *d, struct srd_lst *l)
{
	struct srd_dp *dp = d->dp;

	if (l->fd == -1) {
		return;
	}
	if (l->paused) {
		paused_remove(dp, l);
	}
	(void)np_ev_del(d->ev, l->fd);
	close(l->fd);
	l->fd = -1;
	if (l->s != NULL && d->conf->port_lo != 0) {
		dp->portmap[l->port / 8] &= (uint8_t)~(1u << (l->port % 8));
	}
}

static void
resume_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srd *d = arg;
	struct srd_dp *dp = d->dp;
	struct srd_lst *l;

	dp->resume_timer = 0;
	while ((l = dp->paused) != NULL) {
		paused_remove(dp, l);
		(void)np_ev_mod(ev, l->fd, NP_EV_READ);
	}
}

/* EMFILE and friends: stop accepting on l for PAUSE_MS. */
static void
lst_pause(struct srd *d, struct srd_lst *l)
{
	struct srd_dp *dp = d->dp;

	if (!l->paused) {
		(void)np_ev_mod(d->ev, l->fd, 0);
		l->paused = 1;
		l->pnext = dp->paused;
		dp->paused = l;
	}
	if (dp->resume_timer == 0) {
		dp->resume_timer = np_ev_timer_add(d->ev, PAUSE_MS, resume_cb,
		    d);
	}
}

/* ---- pre-auth connections ---- */

static void
conn_close(struct srd *d, struct srd_conn *c, int close_fd)
{
	struct srd_dp *dp = d->dp;

	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		dp->head = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	} else {
		dp->tail = c->prev;
	}
	dp->nconns--;
	if (c->sprev != NULL) {
		c->sprev->snext = c->snext;
	} else {
		c->src->shead = c->snext;
	}
	if (c->snext != NULL) {
		c->snext->sprev = c->sprev;
	} else {
		c->src->stail = c->sprev;
	}
	src_release(d, c->src);
	(void)np_ev_del(d->ev, c->fd);
	if (close_fd) {
		close(c->fd);
	}
	sodium_memzero(c->line, sizeof(c->line));
	free(c);
}

/* "NPSR1 ERR reason\n", best effort, then close. */
static void
conn_refuse(struct srd *d, struct srd_conn *c, const char *reason)
{
	char buf[64], a[ADDR_STR];
	int n;

	np_debug("refused %s: %s", addr_str(&c->addr, a), reason);
	n = snprintf(buf, sizeof(buf), "NPSR1 ERR %s\n", reason);
	if (n > 0 && (size_t)n < sizeof(buf)) {
		(void)send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	conn_close(d, c, 1);
}

static void conn_cb(struct np_ev *, int, uint32_t, void *);

/*
 * Make room for one more pre-auth connection from src (already counted):
 * over a cap, the oldest pending connection (of that source, or of all)
 * goes.  A real side sends its line at once and is read right after
 * accept, so it is never the oldest for long; a flood only evicts itself.
 */
static void
conn_make_room(struct srd *d, struct srd_src *src)
{
	struct srd_dp *dp = d->dp;

	if (src->n > (unsigned)d->conf->max_pending_src &&
	    src->shead != NULL) {
		conn_refuse(d, src->shead, "busy");
	}
	if (dp->nconns >= (size_t)d->conf->max_pending && dp->head != NULL) {
		conn_refuse(d, dp->head, "busy");
	}
}

static void
conn_link(struct srd_dp *dp, struct srd_conn *c)
{
	c->prev = dp->tail;
	if (dp->tail != NULL) {
		dp->tail->next = c;
	} else {
		dp->head = c;
	}
	dp->tail = c;
	dp->nconns++;
	c->sprev = c->src->stail;
	if (c->src->stail != NULL) {
		c->src->stail->snext = c;
	} else {
		c->src->shead = c;
	}
	c->src->stail = c;
}

static void
conn_new(struct srd *d, struct srd_lst *l, int fd,
    const struct sockaddr_storage *ss)
{
	struct srd_dp *dp = d->dp;
	struct srd_conn *c;
	struct srd_addr a;
	struct srd_src *src;

	addr_from_sa(&a, ss);
	if ((src = src_get(d, &a)) == NULL) {
		close(fd);
		return;
	}
	src->n++; /* held while evicting, so src stays */
	conn_make_room(d, src);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		src_release(d, src);
		close(fd);
		return;
	}
	c->d = d;
	c->fd = fd;
	c->addr = a;
	c->src = src;
	c->single = l->s == NULL && !l->probe_only;
	c->probe_only = l->probe_only;
	if (l->s != NULL) {
		memcpy(c->lsid, l->s->sid, sizeof(c->lsid));
		c->lside = l->side;
	}
	c->deadline = np_now_mono_ms() + (uint64_t)d->conf->auth_timeout * 1000;
	if (np_ev_add(d->ev, fd, NP_EV_READ, conn_cb, c) != NP_OK) {
		src_release(d, src);
		close(fd);
		free(c);
		return;
	}
	conn_link(dp, c);
	sweep_arm(d, c->deadline);
	/* The line is usually there already: read it now. */
	conn_cb(d->ev, fd, NP_EV_READ, c);
}

static void
accept_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct srd_lst *l = arg;
	struct srd *d = l->d;
	struct sockaddr_storage ss;
	socklen_t len;
	int cfd;

	for (;;) {
		len = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		cfd = accept4(fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO) {
				continue;
			}
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				np_warn("accept: %s: pausing %d ms",
				    strerror(errno), PAUSE_MS);
				lst_pause(d, l);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				np_warn("accept: %s", strerror(errno));
			}
			return;
		}
		if (l->s != NULL) {
			/* A session's port: conn_new() may end the session
			 * and free l with it; the loop calls again. */
			conn_new(d, l, cfd, &ss);
			return;
		}
		conn_new(d, l, cfd, &ss);
	}
}

/* ---- sessions ---- */

static void relay_done(struct np_relay *, int, void *);

/* Both sides are in: relay. */
static void
sess_pair(struct srd *d, struct srd_sess *s)
{
	struct np_relay_end a, b;
	long ka = d->conf->keepalive;
	int r, i;

	srd_table_relaying(d->table, s);
	for (i = 0; i < 2; i++) {
		if (ka > 0) {
			(void)np_sock_keepalive(s->fd[i], (int)ka,
			    (int)(ka * 3 * 1000));
		}
	}
	a.rfd = a.wfd = s->fd[NP_SR_CLIENT];
	b.rfd = b.wfd = s->fd[NP_SR_DEVICE];
	r = np_relay_start(d->ev, a, b,
	    (uint64_t)d->conf->idle_timeout * 1000, relay_done, s, &s->relay);
	if (r != NP_OK) {
		np_error_r(r, "session %s: cannot start the relay", s->sid);
		sess_end(d, s, "error relay");
		return;
	}
	np_debug("session %s: relaying", s->sid);
}

/* The side of c's line is authenticated: hand its socket to s. */
static void
sess_join(struct srd *d, struct srd_conn *c, struct srd_sess *s, int side)
{
	char as[ADDR_STR];
	ssize_t n;

	n = send(c->fd, NP_SR_OK_LINE, strlen(NP_SR_OK_LINE),
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)strlen(NP_SR_OK_LINE)) {
		np_info("session %s: %s side from %s gone before OK",
		    s->sid, side == NP_SR_CLIENT ? "client" : "device",
		    addr_str(&c->addr, as));
		conn_close(d, c, 1);
		/*
		 * Its token is spent: the session can never pair.  End it
		 * now, so a side already in learns at once (EOF) instead of
		 * at the deadline.
		 */
		sess_end(d, s, side == NP_SR_CLIENT ? "client gone" :
		    "device gone");
		return;
	}
	s->fd[side] = c->fd;
	s->addr[side] = c->addr;
	conn_close(d, c, 0);
	lst_close(d, &s->lst[side]);
	np_debug("session %s: %s side in from %s", s->sid,
	    side == NP_SR_CLIENT ? "client" : "device",
	    addr_str(&s->addr[side], as));
	if (s->fd[0] != -1 && s->fd[1] != -1) {
		sess_pair(d, s);
	}
}

/* A probe line: PONG for a ticket of ours, then close. */
static void
conn_probe(struct srd *d, struct srd_conn *c)
{
	uint8_t ticket[NP_SR_TICKET_LEN];
	char a[ADDR_STR];
	int r;

	r = np_srprobe_parse(c->line, c->used, ticket);
	sodium_memzero(c->line, sizeof(c->line));
	if (r != NP_OK) {
		conn_refuse(d, c, "bad line");
		return;
	}
	if (np_sr_ticket_check(d->dp->probe_key, ticket, np_now_real_ms()) !=
	    NP_OK || d->stopping) {
		conn_refuse(d, c, "bad ticket");
		return;
	}
	np_debug("probe from %s: pong", addr_str(&c->addr, a));
	(void)send(c->fd, NP_SR_PONG_LINE, sizeof(NP_SR_PONG_LINE) - 1,
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	conn_close(d, c, 1);
}

static void
conn_line(struct srd *d, struct srd_conn *c)
{
	char sid[NP_SR_SID_LEN + 1];
	uint8_t token[NP_SR_TOKEN_LEN];
	enum np_sr_side side;
	struct srd_sess *s = NULL;
	int r;

	if (np_srprobe_is(c->line, c->used) && (c->single || c->probe_only)) {
		conn_probe(d, c);
		return;
	}
	if (c->probe_only) {
		sodium_memzero(c->line, sizeof(c->line));
		conn_refuse(d, c, "probes only");
		return;
	}
	r = np_srline_parse(c->line, c->used, sid, &side, token);
	sodium_memzero(c->line, sizeof(c->line));
	if (r != NP_OK) {
		sodium_memzero(token, sizeof(token));
		conn_refuse(d, c, "bad line");
		return;
	}
	r = srd_table_auth(d->table, sid, (int)side, token,
	    c->single ? NULL : c->lsid, c->lside, np_now_mono_ms(), &s);
	sodium_memzero(token, sizeof(token));
	if (r != NP_OK || d->stopping) {
		conn_refuse(d, c, "bad token");
		return;
	}
	sess_join(d, c, s, (int)side);
}

static void
conn_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct srd_conn *c = arg;
	struct srd *d = c->d;
	size_t room = sizeof(c->line) - c->used;
	ssize_t n, m;
	int len;

	n = recv(fd, c->line + c->used, room, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		conn_close(d, c, 1);
		return;
	}
	len = np_srline_len(c->line, c->used + (size_t)n);
	if (len == NP_ERR_TOO_BIG) {
		conn_refuse(d, c, "line too long");
		return;
	}
	if (len < 0 && len != NP_ERR_AGAIN) {
		conn_refuse(d, c, "bad line");
		return;
	}
	/* Consume the line's bytes only: up to and including its "\n". */
	if (len > 0) {
		n = (ssize_t)((size_t)len - c->used);
	}
	m = recv(fd, c->line + c->used, (size_t)n, 0);
	if (m != n) {
		conn_close(d, c, 1);
		return;
	}
	c->used += (size_t)n;
	if (len > 0) {
		conn_line(d, c);
	}
}

/* ---- session end and expiry ---- */

static void
sess_log(struct srd *d, struct srd_sess *s, const char *how)
{
	const struct np_relay_stats *st = NULL;
	uint64_t cd = 0, dc = 0, ms = np_now_mono_ms() - s->created;
	char ca[ADDR_STR], da[ADDR_STR];

	if (s->relay != NULL) {
		st = np_relay_stats(s->relay);
		cd = st->a_to_b;
		dc = st->b_to_a;
	}
	np_info("session %s requester %s peer %s client %s device %s "
	    "c>d %llu d>c %llu duration %llu.%03llus end %s", s->sid,
	    s->owner->id, s->peer != NULL ? s->peer : "-",
	    addr_str(&s->addr[NP_SR_CLIENT], ca),
	    addr_str(&s->addr[NP_SR_DEVICE], da), (unsigned long long)cd,
	    (unsigned long long)dc, (unsigned long long)(ms / 1000),
	    (unsigned long long)(ms % 1000), how);
}

static void
sess_end(struct srd *d, struct srd_sess *s, const char *how)
{
	int i;

	sess_log(d, s, how);
	for (i = 0; i < 2; i++) {
		lst_close(d, &s->lst[i]);
	}
	np_relay_free(s->relay);
	s->relay = NULL;
	for (i = 0; i < 2; i++) {
		if (s->fd[i] != -1) {
			(void)np_ev_del(d->ev, s->fd[i]);
			close(s->fd[i]);
			s->fd[i] = -1;
		}
	}
	srd_table_remove(d->table, s);
	srd_check_done(d);
}

static void
relay_done(struct np_relay *r, int result, void *arg)
{
	struct srd_sess *s = arg;
	struct srd *d = s->lst[0].d;
	const struct np_relay_stats *st = np_relay_stats(r);
	char how[96];

	switch (result) {
	case NP_RELAY_DONE:
		snprintf(how, sizeof(how), "done");
		break;
	case NP_RELAY_IDLE:
		snprintf(how, sizeof(how), "idle");
		break;
	case NP_RELAY_STOPPED:
		snprintf(how, sizeof(how), "shutdown");
		break;
	default:
		snprintf(how, sizeof(how), "error %s %s",
		    st->err_side == 1 ? "client" : st->err_side == 2 ?
		    "device" : "-", st->err_errno != 0 ?
		    strerror(st->err_errno) : "-");
		break;
	}
	sess_end(d, s, how);
}

static void
sweep_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srd *d = arg;
	struct srd_dp *dp = d->dp;
	uint64_t now = np_now_mono_ms(), next = 0, t;
	struct srd_sess *s;

	dp->sweep_timer = 0;
	while (dp->head != NULL && dp->head->deadline <= now) {
		conn_refuse(d, dp->head, "timeout");
	}
	while ((s = srd_table_expired(d->table, now)) != NULL) {
		sess_end(d, s, "expired");
	}
	if (dp->head != NULL) {
		next = dp->head->deadline;
	}
	if ((t = srd_table_next_deadline(d->table)) != 0 &&
	    (next == 0 || t < next)) {
		next = t;
	}
	if (next != 0) {
		sweep_arm(d, next);
	}
}

/* Make sure the sweep runs at or before when (monotonic ms). */
static void
sweep_arm(struct srd *d, uint64_t when)
{
	struct srd_dp *dp = d->dp;
	uint64_t now = np_now_mono_ms(), ms;

	if (dp->sweep_timer != 0 && dp->sweep_at <= when) {
		return;
	}
	np_ev_timer_del(d->ev, dp->sweep_timer);
	ms = when > now ? when - now : 0;
	if (ms < SWEEP_MIN_MS) {
		ms = SWEEP_MIN_MS;
	}
	dp->sweep_at = now + ms;
	dp->sweep_timer = np_ev_timer_add(d->ev, ms, sweep_cb, d);
}

/* ---- public ---- */

static int
bind_addr(struct srd *d)
{
	struct srd_dp *dp = d->dp;
	struct sockaddr_in *in = (struct sockaddr_in *)&dp->bind_sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&dp->bind_sa;
	const char *a = d->conf->listen_address;

	memset(&dp->bind_sa, 0, sizeof(dp->bind_sa));
	if (inet_pton(AF_INET, a, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		dp->bind_len = sizeof(*in);
	} else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		dp->bind_len = sizeof(*in6);
	} else {
		return NP_ERR_CONF;
	}
	return NP_OK;
}

/* Ephemeral mode: one port for probes, for as long as we run. */
static int
probe_listen(struct srd *d)
{
	struct srd_dp *dp = d->dp;
	int r;

	if ((r = lst_open_fresh(d, &dp->probe)) != NP_OK) {
		np_error("cannot open the probe port: %s", r == NP_ERR_LIMIT ?
		    "no free port in PortRange" : strerror(errno));
		return r;
	}
	if ((r = np_ev_add(d->ev, dp->probe.fd, NP_EV_READ, accept_cb,
	    &dp->probe)) != NP_OK) {
		return r;
	}
	np_info("listening on %s port %u for probes",
	    d->conf->listen_address, dp->probe.port);
	return NP_OK;
}

int
srd_data_probeinfo(struct srd *d, const char **host, uint16_t *port,
    char ticket[NP_SR_TICKET_B64_LEN + 1], int64_t *expires)
{
	struct srd_dp *dp = d->dp;
	uint8_t t[NP_SR_TICKET_LEN];
	const struct srd_lst *l;

	l = d->conf->single_port != 0 ? &dp->single : &dp->probe;
	if (dp->probe_key == NULL || l->fd == -1) {
		return NP_ERR_INTERNAL;
	}
	*expires = np_now_real_ms() + NP_SR_PROBE_TTL_MS;
	np_sr_ticket_make(dp->probe_key, *expires, t);
	np_sr_ticket_encode(t, ticket);
	*host = d->conf->public_host;
	*port = l->port;
	return NP_OK;
}

int
srd_data_start(struct srd *d)
{
	struct srd_dp *dp;
	int r;

	if ((dp = calloc(1, sizeof(*dp))) == NULL) {
		return NP_ERR_ALLOC;
	}
	d->dp = dp;
	dp->single.d = d;
	dp->single.fd = -1;
	dp->probe.d = d;
	dp->probe.fd = -1;
	dp->probe.probe_only = 1;
	if ((dp->probe_key = sodium_malloc(NP_SR_PROBE_KEY_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	randombytes_buf(dp->probe_key, NP_SR_PROBE_KEY_LEN);
	dp->port_next = d->conf->port_lo;
	if (d->conf->port_lo != 0) {
		dp->port_next = d->conf->port_lo +
		    (int)randombytes_uniform((uint32_t)(d->conf->port_hi -
		    d->conf->port_lo + 1));
	}
	crypto_shorthash_keygen(dp->src_key);
	if ((r = bind_addr(d)) != NP_OK) {
		np_error("ListenAddress %s: not an address",
		    d->conf->listen_address);
		return r;
	}
	if (d->conf->single_port == 0) {
		return probe_listen(d);
	}
	if ((r = sock_listen(d, (uint16_t)d->conf->single_port,
	    SINGLE_BACKLOG, &dp->single.fd, &dp->single.port)) != NP_OK) {
		np_error("cannot listen on %s port %ld: %s",
		    d->conf->listen_address, d->conf->single_port,
		    strerror(errno));
		return r;
	}
	if ((r = np_ev_add(d->ev, dp->single.fd, NP_EV_READ, accept_cb,
	    &dp->single)) != NP_OK) {
		return r;
	}
	np_info("listening on %s port %u (single-port mode)",
	    d->conf->listen_address, dp->single.port);
	return NP_OK;
}

/* Open and watch the two fresh ports of s. */
static int
sess_listen(struct srd *d, struct srd_sess *s)
{
	int i, r;

	for (i = 0; i < 2; i++) {
		s->lst[i].d = d;
		if ((r = lst_open_fresh(d, &s->lst[i])) != NP_OK) {
			np_warn("session %s: cannot open a port: %s", s->sid,
			    r == NP_ERR_LIMIT ? "no free port in PortRange" :
			    strerror(errno));
			return r;
		}
		if ((r = np_ev_add(d->ev, s->lst[i].fd, NP_EV_READ, accept_cb,
		    &s->lst[i])) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

int
srd_data_open(struct srd *d, const char *owner, const char *peer,
    struct np_sr_session *sr, const char **why)
{
	struct srd_sess *s;
	int r, i;

	memset(sr, 0, sizeof(*sr));
	r = srd_table_mint(d->table, owner, peer, np_now_mono_ms(),
	    (uint64_t)d->conf->session_timeout * 1000, np_now_real_ms(), &s,
	    why);
	if (r != NP_OK) {
		return r;
	}
	s->lst[0].d = s->lst[1].d = d;
	if (d->conf->single_port == 0 && sess_listen(d, s) != NP_OK) {
		for (i = 0; i < 2; i++) {
			lst_close(d, &s->lst[i]);
		}
		srd_table_remove(d->table, s);
		*why = "busy";
		return NP_ERR_TOO_BIG;
	}
	memcpy(sr->sid, s->sid, sizeof(sr->sid));
	sr->deadline_ms = s->deadline_real;
	for (i = 0; i < 2; i++) {
		snprintf(sr->side[i].host, sizeof(sr->side[i].host), "%s",
		    d->conf->public_host);
		sr->side[i].port = d->conf->single_port != 0 ?
		    d->dp->single.port : s->lst[i].port;
		memcpy(sr->side[i].token, srd_table_token(d->table, s, i),
		    NP_SR_TOKEN_LEN);
	}
	sweep_arm(d, s->deadline);
	np_debug("session %s for %s: ports %u %u", s->sid, owner,
	    sr->side[0].port, sr->side[1].port);
	return NP_OK;
}

void
srd_data_cancel(struct srd *d, const char *sid)
{
	struct srd_sess *s = srd_table_find(d->table, sid);

	if (s != NULL && s->state == SRD_WAITING) {
		sess_end(d, s, "unsent");
	}
}

void
srd_data_shutdown(struct srd *d)
{
	struct srd_dp *dp = d->dp;
	struct srd_sess *s;

	if (dp == NULL) {
		return;
	}
	lst_close(d, &dp->single);
	lst_close(d, &dp->probe);
	while (dp->head != NULL) {
		conn_close(d, dp->head, 1);
	}
	while ((s = srd_table_first_waiting(d->table)) != NULL) {
		sess_end(d, s, "shutdown");
	}
}

void
srd_data_stop_relays(struct srd *d)
{
	struct srd_sess *s, *next;

	for (s = srd_table_first_relaying(d->table); s != NULL; s = next) {
		next = s->next;
		if (s->relay != NULL) {
			np_relay_stop(s->relay);
		} else {
			sess_end(d, s, "shutdown");
		}
	}
}

void
srd_data_free(struct srd *d)
{
	struct srd_dp *dp = d->dp;
	struct srd_sess *s;
	struct srd_src *src;
	size_t i;

	if (dp == NULL) {
		return;
	}
	d->stopping = 1;
	srd_data_shutdown(d);
	while ((s = srd_table_first_relaying(d->table)) != NULL) {
		sess_end(d, s, "shutdown");
	}
	np_ev_timer_del(d->ev, dp->sweep_timer);
	np_ev_timer_del(d->ev, dp->resume_timer);
	for (i = 0; i < SRC_BUCKETS; i++) {
		while ((src = dp->src[i]) != NULL) {
			dp->src[i] = src->next;
			free(src);
		}
	}
	sodium_free(dp->probe_key); /* wipes */
	free(dp);
	d->dp = NULL;
}
