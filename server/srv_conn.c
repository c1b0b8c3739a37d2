/*
 * One client connection: TLS handshake, reading frames under the
 * pre-auth and frame caps, a bounded output buffer with a high-water mark
 * (stop reading above it), and a close that never frees memory a caller
 * up the stack may still hold (dead connections are reaped by a timer).
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "frame.h"
#include "log.h"
#include "srv_int.h"

static void conn_read(struct conn *c);

int
srv_ratelog_ok(struct ratelog *rl, unsigned *suppressed)
{
	uint64_t now = np_now_mono_ms();

	if (rl->last_ms != 0 && now - rl->last_ms < 1000) {
		rl->suppressed++;
		return 0;
	}
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now;
	return 1;
}

size_t
srv_conn_outlen(const struct conn *c)
{
	return c->out != NULL ? np_buf_len(c->out) : 0;
}

static void
hold(struct conn *c)
{
	struct srv *s = c->srv;

	if (c->held || c->dead) {
		return;
	}
	c->held = 1;
	c->hprev = NULL;
	c->hnext = s->held;
	if (s->held != NULL) {
		s->held->hprev = c;
	}
	s->held = c;
}

static void
unhold(struct conn *c)
{
	struct srv *s = c->srv;

	if (!c->held) {
		return;
	}
	if (c->hprev != NULL) {
		c->hprev->hnext = c->hnext;
	} else {
		s->held = c->hnext;
	}
	if (c->hnext != NULL) {
		c->hnext->hprev = c->hprev;
	}
	c->hnext = c->hprev = NULL;
	c->held = 0;
}

static void
commit_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srv *s = arg;

	s->commit_timer = 0;
	srv_batch_commit(s);
}

int
srv_batch_write(struct conn *c)
{
	struct srv *s = c->srv;
	int r;

	if (!np_store_in_batch(s->store)) {
		if ((r = np_store_batch_begin(s->store)) != NP_OK) {
			return r;
		}
		s->commit_timer = np_ev_timer_add(s->ev, 0, commit_cb, s);
		if (s->commit_timer == 0) {
			(void)np_store_batch_end(s->store, 0);
			return NP_ERR_ALLOC;
		}
	}
	hold(c);
	return NP_OK;
}

void
srv_batch_commit(struct srv *s)
{
	struct conn *c;
	size_t n = 0;
	int r;

	np_ev_timer_del(s->ev, s->commit_timer);
	s->commit_timer = 0;
	if (!np_store_in_batch(s->store)) {
		return;
	}
	r = np_store_batch_end(s->store, 1);
	if (r != NP_OK) {
		for (c = s->held; c != NULL; c = c->hnext) {
			n++;
		}
		np_error_r(r, "commit failed: closing the %zu connection(s) "
		    "whose answers or pushes depended on it", n);
	}
	while ((c = s->held) != NULL) {
		unhold(c);
		if (r != NP_OK) {
			srv_conn_close(c, NP_LOG_WARN, "its writes were not "
			    "committed");
		} else {
			srv_conn_flush(c);
		}
	}
	/* libpq may have read other instances' notifications with the
	 * commit's reply, leaving the socket quiet: take them now. */
	srv_watch_poll(s);
}

/* Text form of the peer and the key for the per-source table. */
static void
peer_describe(const void *sa, size_t salen, char *peer, size_t peerlen,
	      uint8_t key[SRV_SRCKEY_LEN])
{
	const struct sockaddr_in *s4 = sa;
	const struct sockaddr_in6 *s6 = sa;
	char a[INET6_ADDRSTRLEN];

	memset(key, 0, SRV_SRCKEY_LEN);
	snprintf(peer, peerlen, "unknown");
	if (salen >= sizeof(*s4) && s4->sin_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(peer, peerlen, "%s:%u", a, ntohs(s4->sin_port));
	} else if (salen >= sizeof(*s6) && s6->sin6_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, &s6->sin6_addr, 16);
		}
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(peer, peerlen, "[%s]:%u", a, ntohs(s6->sin6_port));
	}
}

/*
 * How far an unauthenticated connection has got: 0 while its TLS
 * ClientHello has not been read, 1 during the rest of the handshake, then
 * 2 plus the bytes it sent towards its auth frame.
 */
static uint64_t
conn_progress(const struct conn *c)
{
	if (c->state == C_HANDSHAKE) {
		return c->tls != NULL && np_tls_started(c->tls) ? 1 : 0;
	}
	return 2 + (uint64_t)c->preauth_bytes;
}

/* c has bytes in its socket that nobody has read yet. */
static int
conn_unread(const struct conn *c)
{
	int n = 0;

	return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/*
 * The connection of a source to close for a newcomer: the oldest that has
 * not sent its ClientHello and has nothing waiting in its socket (one
 * whose ClientHello arrived while the loop was busy accepting is not
 * idle); failing that, the one that has got least far, the oldest of
 * those.
 */
static struct conn *
src_victim(const struct src *e)
{
	struct conn *c, *v = NULL;
	uint64_t p, vp = UINT64_MAX;

	for (c = e->head; c != NULL; c = c->snext) {
		if ((p = conn_progress(c)) == 0 && !conn_unread(c)) {
			return c;
		}
		if (p < vp) {
			v = c;
			vp = p;
		}
	}
	return v;
}

/*
 * Count one more unauthenticated connection of a source.  At the cap, the
 * connection of that source that has made least progress (the oldest of
 * those) is closed to make room: many clients share one address behind a
 * NAT, and a flood from one of them must not lock the others out.  Idle
 * and slow connections go first; a real client has sent its ClientHello
 * within a round trip of connecting and its auth frame a round trip after
 * the handshake, so a sustained flood of idle or slow connections from
 * its own address cannot push it out.
 */
static int
src_take(struct srv *s, const uint8_t key[SRV_SRCKEY_LEN], const char *peer,
    struct src **out)
{
	struct src *e;
	struct conn *v;
	unsigned sup;
	int r;

	e = srv_htab_get(s->srcs, key, SRV_SRCKEY_LEN);
	if (e != NULL && e->n >= (unsigned)s->conf->max_unauth &&
	    e->head != NULL) {
		if (srv_ratelog_ok(&s->rl_evict, &sup)) {
			np_warn("MaxUnauthPerSource (%ld) reached: %s closes "
			    "the least advanced unauthenticated connection of "
			    "its address (%u more since the last report)",
			    s->conf->max_unauth, peer, sup);
		}
		v = src_victim(e);
		srv_conn_close(v, NP_LOG_DEBUG, "closed to make room for a "
		    "newer connection from its address (MaxUnauthPerSource; "
		    "it was at stage %llu)",
		    (unsigned long long)conn_progress(v));
		e = srv_htab_get(s->srcs, key, SRV_SRCKEY_LEN);
	}
	if (e != NULL) {
		if (e->n >= (unsigned)s->conf->max_unauth) {
			return NP_ERR_LIMIT;
		}
		e->n++;
		*out = e;
		return NP_OK;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return NP_ERR_ALLOC;
	}
	e->n = 1;
	if ((r = srv_htab_put(s->srcs, key, SRV_SRCKEY_LEN, e)) != NP_OK) {
		free(e);
		return r;
	}
	*out = e;
	return NP_OK;
}

static void
src_release(struct srv *s, const uint8_t key[SRV_SRCKEY_LEN])
{
	struct src *e;

	if ((e = srv_htab_get(s->srcs, key, SRV_SRCKEY_LEN)) == NULL) {
		return;
	}
	if (--e->n == 0) {
		free(srv_htab_del(s->srcs, key, SRV_SRCKEY_LEN));
	}
}

/* c joins the end of its source's list (it counts there already). */
static void
src_link(struct src *e, struct conn *c)
{
	c->snext = NULL;
	c->sprev = e->tail;
	if (e->tail != NULL) {
		e->tail->snext = c;
	} else {
		e->head = c;
	}
	e->tail = c;
}

void
srv_conn_unauth_release(struct conn *c)
{
	struct src *e;

	if (!c->unauth) {
		return;
	}
	c->unauth = 0;
	if ((e = srv_htab_get(c->srv->srcs, c->srckey, SRV_SRCKEY_LEN)) !=
	    NULL) {
		if (c->sprev != NULL) {
			c->sprev->snext = c->snext;
		} else if (e->head == c) {
			e->head = c->snext;
		}
		if (c->snext != NULL) {
			c->snext->sprev = c->sprev;
		} else if (e->tail == c) {
			e->tail = c->sprev;
		}
	}
	c->snext = c->sprev = NULL;
	src_release(c->srv, c->srckey);
}

static void
reap_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srv *s = arg;
	struct conn *c;

	s->reap_timer = 0;
	while ((c = s->dead) != NULL) {
		s->dead = c->dnext;
		free(c);
	}
	if (s->stopping && s->nconns == 0) {
		np_ev_stop(s->ev);
	}
}

static void
ident_remove(struct conn *c)
{
	struct ident *id = c->ident;
	struct srv *s = c->srv;

	if (id == NULL) {
		return;
	}
	if (c->iprev != NULL) {
		c->iprev->inext = c->inext;
	} else {
		id->conns = c->inext;
	}
	if (c->inext != NULL) {
		c->inext->iprev = c->iprev;
	}
	c->ident = NULL;
	c->inext = c->iprev = NULL;
	if (id->conns != NULL) {
		return;
	}
	srv_htab_del(s->idents, id->name, strlen(id->name));
	if (id->prev != NULL) {
		id->prev->next = id->next;
	} else {
		s->ident_list = id->next;
	}
	if (id->next != NULL) {
		id->next->prev = id->prev;
	}
	free(id);
}

void
srv_conn_ident_add(struct conn *c)
{
	struct srv *s = c->srv;
	struct ident *id;

	id = srv_htab_get(s->idents, c->id, strlen(c->id));
	if (id == NULL) {
		if ((id = calloc(1, sizeof(*id))) == NULL) {
			srv_conn_close(c, NP_LOG_ERROR, "out of memory");
			return;
		}
		snprintf(id->name, sizeof(id->name), "%s", c->id);
		if (srv_htab_put(s->idents, id->name, strlen(id->name), id) !=
		    NP_OK) {
			free(id);
			srv_conn_close(c, NP_LOG_ERROR, "out of memory");
			return;
		}
		id->next = s->ident_list;
		if (id->next != NULL) {
			id->next->prev = id;
		}
		s->ident_list = id;
	}
	c->ident = id;
	c->iprev = NULL;
	c->inext = id->conns;
	if (c->inext != NULL) {
		c->inext->iprev = c;
	}
	id->conns = c;
}

static void
conn_unlink(struct conn *c)
{
	struct srv *s = c->srv;

	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		s->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	c->next = c->prev = NULL;
	s->nconns--;
}

void
srv_conn_close(struct conn *c, int level, const char *fmt, ...)
{
	struct srv *s = c->srv;
	char reason[256];
	va_list ap;

	if (c->dead) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	np_log(level, "srv_conn_close", 0, "close %s%s%s: %s", c->peer,
	       c->id[0] != '\0' ? " " : "", c->id, reason);
	c->dead = 1;
	np_ev_del(s->ev, c->fd);
	np_ev_timer_del(s->ev, c->timer);
	np_ev_timer_del(s->ev, c->resume_timer);
	c->timer = c->resume_timer = 0;
	if (c->state != C_HANDSHAKE) {
		np_tls_shutdown(c->tls);
	}
	np_tls_free(c->tls);
	c->tls = NULL;
	close(c->fd);
	c->fd = -1;
	np_buf_free(c->in);
	np_buf_free(c->out);
	c->in = c->out = NULL;
	free(c->inflight);
	c->inflight = NULL;
	c->ninflight = 0;
	srv_conn_unauth_release(c);
	unhold(c);
	ident_remove(c);
	conn_unlink(c);
	c->dnext = s->dead;
	s->dead = c;
	if (s->reap_timer == 0) {
		s->reap_timer = np_ev_timer_add(s->ev, 0, reap_cb, s);
	}
}

static void
deadline_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct conn *c = arg;

	c->timer = 0;
	if (c->dead) {
		return;
	}
	if (c->state == C_CLOSING) {
		srv_conn_close(c, NP_LOG_DEBUG, "gave up flushing");
	} else if (c->state != C_READY) {
		srv_conn_close(c, NP_LOG_INFO, "authentication timeout");
	}
}

void
srv_conn_fail(struct conn *c, const char *code, const char *msg)
{
	struct json_object *o;

	if (c->dead || c->state == C_CLOSING) {
		return;
	}
	np_info("%s%s%s: error '%s' (%s), closing", c->peer,
		c->id[0] != '\0' ? " " : "", c->id, code, msg);
	if ((o = json_object_new_object()) != NULL &&
	    json_object_object_add(o, "t", json_object_new_string("error")) ==
		0 &&
	    json_object_object_add(o, "code", json_object_new_string(code)) ==
		0 &&
	    json_object_object_add(o, "msg", json_object_new_string(msg)) ==
		0) {
		(void)srv_conn_send(c, o);
	}
	json_object_put(o);
	if (c->dead) {
		return;
	}
	c->state = C_CLOSING;
	np_ev_timer_del(c->srv->ev, c->timer);
	c->timer =
	    np_ev_timer_add(c->srv->ev, SRV_CLOSE_FLUSH_MS, deadline_cb, c);
	srv_conn_flush(c);
}

int
srv_conn_send(struct conn *c, struct json_object *obj)
{
	int r;

	if (c->dead) {
		return NP_ERR_CLOSED;
	}
	if (c->out == NULL && (c->out = np_buf_new(SRV_OUT_MAX)) == NULL) {
		srv_conn_close(c, NP_LOG_ERROR, "out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_frame_encode(obj, c->out)) != NP_OK) {
		srv_conn_close(c, NP_LOG_WARN, "cannot queue output: %s",
			       np_strerror(r));
		return r;
	}
	return NP_OK;
}

int
srv_conn_frame(struct conn *c, size_t len, uint8_t **dst)
{
	int r;

	*dst = NULL;
	if (c->dead) {
		return NP_ERR_CLOSED;
	}
	if (c->out == NULL && (c->out = np_buf_new(SRV_OUT_MAX)) == NULL) {
		srv_conn_close(c, NP_LOG_ERROR, "out of memory");
		return NP_ERR_ALLOC;
	}
	if (len == 0 || len > NP_FRAME_MAX || np_buf_avail(c->out) < 4 + len) {
		srv_conn_close(c, NP_LOG_WARN, "cannot queue output: %s",
			       np_strerror(NP_ERR_TOO_BIG));
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_buf_put_u32(c->out, (uint32_t)len)) != NP_OK ||
	    (r = np_buf_reserve(c->out, len, dst)) != NP_OK) {
		srv_conn_close(c, NP_LOG_ERROR, "cannot queue output: %s",
			       np_strerror(r));
		return r;
	}
	return NP_OK;
}

static void
resume_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct conn *c = arg;

	c->resume_timer = 0;
	if (c->dead || c->paused) {
		return;
	}
	conn_read(c);
	if (!c->dead) {
		srv_proto_pump(c);
	}
	if (!c->dead) {
		srv_conn_flush(c);
	}
}

static void
schedule_resume(struct conn *c)
{
	if (c->resume_timer == 0) {
		c->resume_timer = np_ev_timer_add(c->srv->ev, 0, resume_cb, c);
	}
}

void
srv_conn_update(struct conn *c)
{
	uint32_t mask = 0;

	if (c->dead) {
		return;
	}
	if (c->state == C_HANDSHAKE) {
		mask = np_tls_want(c->tls);
		if (mask == 0) {
			mask = NP_EV_READ;
		}
	} else {
		if (!c->paused && c->state != C_CLOSING) {
			mask |= NP_EV_READ;
		}
		if (!c->held && (srv_conn_outlen(c) > 0 || c->want_write)) {
			mask |= NP_EV_WRITE;
		}
	}
	if (np_ev_mod(c->srv->ev, c->fd, mask) != NP_OK) {
		srv_conn_close(c, NP_LOG_ERROR, "cannot update event mask");
	}
}

void
srv_conn_flush(struct conn *c)
{
	size_t n;
	int r;

	if (c->dead) {
		return;
	}
	if (np_store_in_batch(c->srv->store) && srv_conn_outlen(c) > 0) {
		hold(c); /* written once the batch has committed */
	}
	if (c->held) {
		srv_conn_update(c);
		return;
	}
	while (c->state != C_HANDSHAKE && srv_conn_outlen(c) > 0) {
		r = np_tls_write(c->tls, np_buf_ptr(c->out), np_buf_len(c->out),
				 &n);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			srv_conn_close(c, NP_LOG_INFO, "write failed: %s",
				       np_strerror(r));
			return;
		}
		np_buf_consume(c->out, n);
	}
	if (c->out != NULL && np_buf_len(c->out) == 0) {
		np_buf_free(c->out);
		c->out = NULL;
	}
	if (c->state == C_CLOSING && c->out == NULL) {
		srv_conn_close(c, NP_LOG_DEBUG, "closed after flushing");
		return;
	}
	if (c->paused && srv_conn_outlen(c) < SRV_OUT_HWM / 2) {
		c->paused = 0;
		schedule_resume(c);
	}
	srv_conn_update(c);
}

/* Decode and handle every whole frame in c->in. */
static void
conn_process(struct conn *c)
{
	struct json_object *obj;
	int r;

	while (c->in != NULL && !c->dead && !c->paused &&
	       (c->state == C_AUTH || c->state == C_READY)) {
		r = np_frame_decode(c->in, &obj);
		if (r == NP_ERR_AGAIN) {
			break;
		}
		if (r != NP_OK) {
			srv_conn_fail(c,
				      r == NP_ERR_TOO_BIG ? "too_big" : "proto",
				      r == NP_ERR_TOO_BIG ? "frame too big"
							  : "malformed frame");
			return;
		}
		(void)srv_proto_frame(c, obj);
		json_object_put(obj);
		if (!c->dead && srv_conn_outlen(c) > SRV_OUT_HWM) {
			c->paused = 1;
		}
	}
	if (c->in != NULL && np_buf_len(c->in) == 0) {
		np_buf_free(c->in);
		c->in = NULL;
	}
}

/* Append freshly read bytes, counting them against the pre-auth cap. */
static int
conn_input(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->state == C_AUTH) {
		c->preauth_bytes += n;
		if (c->preauth_bytes > SRV_PREAUTH_MAX) {
			srv_conn_fail(c, "limit",
				      "too much input before "
				      "authentication");
			return NP_ERR_LIMIT;
		}
	}
	if (c->in == NULL &&
	    (c->in = np_buf_new(NP_FRAME_MAX + 4 + SRV_READ_CHUNK)) == NULL) {
		srv_conn_close(c, NP_LOG_ERROR, "out of memory");
		return NP_ERR_ALLOC;
	}
	if (np_buf_put(c->in, p, n) != NP_OK) {
		srv_conn_fail(c, "too_big", "input overflow");
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

static void
conn_read(struct conn *c)
{
	uint8_t chunk[SRV_READ_CHUNK];
	size_t n, total = 0;
	int r;

	conn_process(c);
	while (!c->dead && !c->paused &&
	       (c->state == C_AUTH || c->state == C_READY)) {
		if (total >= SRV_READ_BUDGET) {
			if (np_tls_pending(c->tls) > 0) {
				schedule_resume(c);
			}
			break;
		}
		r = np_tls_read(c->tls, chunk, sizeof(chunk), &n);
		if (r == NP_ERR_AGAIN) {
			c->want_write =
			    (np_tls_want(c->tls) & NP_EV_WRITE) != 0;
			break;
		}
		c->want_write = 0;
		if (r == NP_ERR_CLOSED) {
			srv_conn_close(c, NP_LOG_DEBUG,
				       "peer closed the connection");
			break;
		}
		if (r != NP_OK) {
			srv_conn_close(c, NP_LOG_INFO, "read failed: %s",
				       np_strerror(r));
			break;
		}
		total += n;
		if (conn_input(c, chunk, n) != NP_OK) {
			break;
		}
		conn_process(c);
	}
	sodium_memzero(chunk, sizeof(chunk)); /* may have held a token */
}

static void
conn_handshake(struct conn *c)
{
	int r;

	r = np_tls_handshake(c->tls);
	if (r == NP_ERR_AGAIN) {
		srv_conn_update(c);
		return;
	}
	if (r != NP_OK) {
		srv_conn_close(c, NP_LOG_INFO, "TLS handshake failed: %s",
			       np_strerror(r));
		return;
	}
	c->state = C_AUTH;
	if (srv_proto_hello(c) != NP_OK || c->dead) {
		return;
	}
	conn_read(c);
	srv_conn_flush(c);
}

static void
conn_ev(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;

	if (c->dead) {
		return;
	}
	if (events & NP_EV_ERROR) {
		srv_conn_close(c, NP_LOG_DEBUG, "connection reset or hung up");
		return;
	}
	if (c->state == C_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (srv_conn_outlen(c) > 0 || c->want_write) {
		srv_conn_flush(c);
	}
	if (!c->dead && !c->paused && c->state != C_CLOSING) {
		conn_read(c);
	}
	if (!c->dead) {
		srv_proto_pump(c);
	}
	if (!c->dead) {
		srv_conn_flush(c);
	}
}

static void
sock_tune(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static int
conn_limits(struct srv *s, const char *peer, const uint8_t *key,
    struct src **src)
{
	unsigned sup;
	int r;

	if (s->nconns >= (size_t)s->conf->max_conns) {
		if (srv_ratelog_ok(&s->rl_full, &sup)) {
			np_warn("MaxConnections (%ld) reached: refusing %s "
				"(%u more refused since the last report)",
				s->conf->max_conns, peer, sup);
		}
		return NP_ERR_LIMIT;
	}
	if ((r = src_take(s, key, peer, src)) != NP_OK) {
		if (r == NP_ERR_LIMIT && srv_ratelog_ok(&s->rl_src, &sup)) {
			np_warn("MaxUnauthPerSource (%ld) reached: refusing %s "
				"(%u more refused since the last report)",
				s->conf->max_unauth, peer, sup);
		}
		return r;
	}
	return NP_OK;
}

int
srv_conn_new(struct srv *s, int fd, const void *sa, size_t salen)
{
	struct conn *c = NULL;
	struct src *src = NULL;
	char peer[SRV_PEER_MAX];
	uint8_t key[SRV_SRCKEY_LEN];
	int r;

	peer_describe(sa, salen, peer, sizeof(peer), key);
	if (s->stopping || (r = conn_limits(s, peer, key, &src)) != NP_OK) {
		close(fd);
		return NP_ERR_LIMIT;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		src_release(s, key);
		close(fd);
		return NP_ERR_ALLOC;
	}
	c->srv = s;
	c->fd = fd;
	c->state = C_HANDSHAKE;
	c->unauth = 1;
	memcpy(c->srckey, key, sizeof(key));
	memcpy(c->peer, peer, sizeof(peer));
	sock_tune(fd);
	if ((r = np_tls_new(s->tls, fd, 1, &c->tls)) != NP_OK ||
	    (r = np_ev_add(s->ev, fd, NP_EV_READ, conn_ev, c)) != NP_OK) {
		np_error_r(r, "cannot set up connection from %s", peer);
		np_tls_free(c->tls);
		src_release(s, key);
		close(fd);
		free(c);
		return r;
	}
	src_link(src, c);
	c->timer = np_ev_timer_add(
	    s->ev, (uint64_t)s->conf->auth_timeout * 1000, deadline_cb, c);
	c->next = s->conns;
	if (c->next != NULL) {
		c->next->prev = c;
	}
	s->conns = c;
	s->nconns++;
	np_debug("connection from %s (%zu open)", peer, s->nconns);
	/*
	 * A client's ClientHello is usually in by the time it is accepted:
	 * take it now, so that the connection counts as advanced (src_victim)
	 * before the next accept of a flood from its address can evict it.
	 */
	conn_handshake(c);
	return NP_OK;
}
