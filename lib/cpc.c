/*
 * Control-plane client (see cpc.h and docs/PROTOCOL.md).
 *
 * One struct np_cpc holds one connection at a time.  Every entry point
 * that may run a user callback is bracketed by cpc_enter()/cpc_leave(), so
 * a callback may call np_cpc_free(): the free is deferred until the
 * outermost entry point returns.  c->gen counts connections; code that
 * ran a callback re-checks it before touching the connection again.
 */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "frame.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "msg.h"
#include "tls.h"

#define CPC_IN_MAX (4 + NP_FRAME_MAX)
#define CPC_READ_CHUNK (16 * 1024)
#define CPC_BOX_MAX 49152
#define CPC_RID_MAX 0x7fffffffU
#define CPC_DEFAULT_TIMEOUT_MS 10000

enum cpc_state {
	CPC_IDLE = 0,	/* not connected, no attempt scheduled */
	CPC_WAIT,	/* waiting for the backoff timer */
	CPC_CONNECTING,
	CPC_HANDSHAKE,
	CPC_HELLO,
	CPC_AUTH,
	CPC_UP,
};

enum cpc_req_kind {
	REQ_USER = 0,
	REQ_MONITOR_AUTO,
	REQ_KEEPALIVE,
};

struct cpc_req {
	struct cpc_req *next;
	uint32_t rid;
	enum cpc_req_kind kind;
	np_cpc_req_cb *cb;
	void *arg;
};

struct np_cpc {
	struct np_ev *ev;
	char *host;	/* hosts[cur] */
	char *port;	/* ports[cur] */
	char *hosts[NP_CPC_SERVERS_MAX];
	char *ports[NP_CPC_SERVERS_MAX];
	size_t nsrv;
	size_t cur;	/* the server being tried or used */
	size_t left;	/* servers this attempt may still move on to */
	char *fp;
	char *id;
	char *token;
	char *monitor_tag;
	struct np_key *key;
	int timeout_ms;
	int reconnect;
	uint32_t bmin;
	uint32_t bmax;
	int keepalive_ms;

	np_cpc_state_cb *state_cb;
	void *state_arg;
	np_cpc_msg_cb *msg_cb;
	void *msg_arg;

	struct np_tls_ctx *ctx;
	enum cpc_state state;
	int started;
	int fd;
	struct np_tls *tls;
	struct addrinfo *ai;
	struct addrinfo *ai_next;
	int last_errno;
	uint64_t phase_timer;
	uint64_t retry_timer;
	uint64_t stable_timer;
	uint64_t ka_timer;
	uint32_t ka_rid;
	unsigned attempt;
	unsigned early_retries;	/* see cpc_early_retry */
	int early_wait;		/* the retry timer is an early retry's */
	uint64_t t0;
	uint32_t mask;	/* registered with ev; 0: fd not registered */
	uint32_t want;	/* what the last TLS AGAIN (handshake/read) needs */
	uint32_t want_w; /* what the last TLS write AGAIN needs */
	struct np_buf *in;
	struct np_buf *out;
	uint8_t *boxbuf;
	uint32_t next_rid;
	struct cpc_req *reqs;
	size_t nreqs;
	int monitoring;
	uint64_t gen;
	uint64_t welcomes;	/* connections that reached welcome */
	int busy;
	int doomed;
	int last_err;
	char detail[NP_CPC_DETAIL_MAX];
};

static void cpc_drop(struct np_cpc *c, int err, int fatal);
static void cpc_attempt(struct np_cpc *c);
static void cpc_attempt_round(struct np_cpc *c);
static void cpc_try_next(struct np_cpc *c);
static void cpc_fd_cb(struct np_ev *ev, int fd, uint32_t events, void *arg);

/* ---------- small helpers ---------- */

static void
cpc_destroy(struct np_cpc *c)
{
	size_t i;

	for (i = 0; i < c->nsrv; i++) {
		free(c->hosts[i]);
		free(c->ports[i]);
	}
	free(c->fp);
	free(c->id);
	free(c->monitor_tag);
	if (c->token != NULL) {
		sodium_memzero(c->token, strlen(c->token));
		free(c->token);
	}
	np_tls_ctx_free(c->ctx);
	np_buf_free(c->in);
	np_buf_free(c->out);
	free(c->boxbuf);
	free(c);
}

static void
cpc_enter(struct np_cpc *c)
{
	c->busy++;
}

/* After this returns, c may be gone. */
static void
cpc_leave(struct np_cpc *c)
{
	if (--c->busy == 0 && c->doomed) {
		cpc_destroy(c);
	}
}

static uint64_t
cpc_elapsed(const struct np_cpc *c)
{
	return np_now_mono_ms() - c->t0;
}

static void
cpc_detail(struct np_cpc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cpc_detail(struct np_cpc *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	/* Server-supplied text: no control characters. */
	for (char *p = c->detail; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*p = '?';
		}
	}
}

static char *
dup_or_null(const char *s, int *bad)
{
	char *d;

	if (s == NULL) {
		return NULL;
	}
	if ((d = strdup(s)) == NULL) {
		*bad = 1;
	}
	return d;
}

int
np_cpc_code_err(const char *code)
{
	static const struct {
		const char *code;
		int err;
	} map[] = {
		{ "proto", NP_ERR_PROTO },
		{ "auth", NP_ERR_AUTH },
		{ "token", NP_ERR_TOKEN },
		{ "exists", NP_ERR_EXISTS },
		{ "not_found", NP_ERR_NOT_FOUND },
		{ "revoked", NP_ERR_REVOKED },
		{ "limit", NP_ERR_LIMIT },
		{ "too_big", NP_ERR_TOO_BIG },
		{ "internal", NP_ERR_INTERNAL },
	};

	if (code == NULL) {
		return NP_ERR_PROTO;
	}
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(code, map[i].code) == 0) {
			return map[i].err;
		}
	}
	return NP_ERR_PROTO;
}

uint32_t
np_cpc_backoff(uint32_t min_ms, uint32_t max_ms, unsigned attempt)
{
	uint64_t cap = min_ms;

	if (min_ms == 0) {
		min_ms = 1;
		cap = 1;
	}
	if (max_ms < min_ms) {
		max_ms = min_ms;
	}
	/* Attempt 0 already spreads over [min, 2 min]: many clients that
	 * lost one server at once must not come back in step. */
	for (unsigned i = 0; i <= attempt && cap < max_ms; i++) {
		cap *= 2;
	}
	if (cap > max_ms) {
		cap = max_ms;
	}
	/* Full jitter over [min, cap]. */
	return min_ms + randombytes_uniform((uint32_t)(cap - min_ms) + 1);
}

/* ---------- construction ---------- */

int
np_cpc_new(struct np_ev *ev, const struct np_cpc_conf *conf,
    struct np_cpc **out)
{
	struct np_cpc *c = NULL;
	const struct np_hostport *hp;
	int bad = 0, r;

	*out = NULL;
	if (ev == NULL || conf == NULL || conf->fingerprint == NULL ||
	    conf->key == NULL) {
		return NP_ERR_INVALID;
	}
	if (conf->servers != NULL ? np_hostport_count(conf->servers) == 0 ||
	    np_hostport_count(conf->servers) > NP_CPC_SERVERS_MAX :
	    conf->host == NULL) {
		return NP_ERR_INVALID;
	}
	if (conf->id != NULL && !np_ident_valid(conf->id)) {
		return NP_ERR_INVALID;
	}
	if (conf->monitor_tag != NULL && !np_tag_valid(conf->monitor_tag)) {
		return NP_ERR_INVALID;
	}
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return NP_ERR_ALLOC;
	}
	c->ev = ev;
	c->fd = -1;
	c->key = conf->key;
	if (conf->servers == NULL) {
		c->hosts[0] = dup_or_null(conf->host, &bad);
		c->ports[0] = dup_or_null(conf->port != NULL ? conf->port :
		    NP_CPC_DEFAULT_PORT, &bad);
		c->nsrv = 1;
	}
	for (hp = conf->servers; hp != NULL && hp->host != NULL;
	    hp = hp->next) {
		c->hosts[c->nsrv] = dup_or_null(hp->host, &bad);
		c->ports[c->nsrv] = dup_or_null(hp->port != NULL ? hp->port :
		    NP_CPC_DEFAULT_PORT, &bad);
		c->nsrv++;
	}
	c->host = c->hosts[0];
	c->port = c->ports[0];
	c->fp = dup_or_null(conf->fingerprint, &bad);
	c->id = dup_or_null(conf->id != NULL ? conf->id :
	    np_key_name(conf->key), &bad);
	c->token = dup_or_null(conf->token, &bad);
	c->monitor_tag = dup_or_null(conf->monitor_tag, &bad);
	c->timeout_ms = conf->connect_timeout_ms > 0 ?
	    conf->connect_timeout_ms : CPC_DEFAULT_TIMEOUT_MS;
	c->reconnect = conf->reconnect;
	c->bmin = conf->backoff_min_ms > 0 ? (uint32_t)conf->backoff_min_ms :
	    NP_CPC_BACKOFF_MIN_MS;
	c->bmax = conf->backoff_max_ms > 0 ? (uint32_t)conf->backoff_max_ms :
	    NP_CPC_BACKOFF_MAX_MS;
	if (c->bmax < c->bmin) {
		c->bmax = c->bmin;
	}
	c->keepalive_ms = conf->keepalive_ms;
	c->next_rid = 1;
	c->in = np_buf_new(CPC_IN_MAX);
	c->out = np_buf_new(NP_CPC_OUT_MAX);
	c->boxbuf = malloc(CPC_BOX_MAX);
	if (bad || c->id == NULL || c->in == NULL || c->out == NULL ||
	    c->boxbuf == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if (!np_ident_valid(c->id)) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((r = np_tls_client_ctx(&c->ctx)) != NP_OK) {
		goto out;
	}
	*out = c;
	c = NULL;
	r = NP_OK;
 out:
	if (c != NULL) {
		cpc_destroy(c);
	}
	return r;
}

void
np_cpc_set_state_cb(struct np_cpc *c, np_cpc_state_cb *cb, void *arg)
{
	c->state_cb = cb;
	c->state_arg = arg;
}

void
np_cpc_set_msg_cb(struct np_cpc *c, np_cpc_msg_cb *cb, void *arg)
{
	c->msg_cb = cb;
	c->msg_arg = arg;
}

int
np_cpc_is_up(const struct np_cpc *c)
{
	return c != NULL && c->state == CPC_UP;
}

const char *
np_cpc_detail(const struct np_cpc *c)
{
	return c->detail;
}

int
np_cpc_last_error(const struct np_cpc *c)
{
	return c->last_err;
}

size_t
np_cpc_out_pending(const struct np_cpc *c)
{
	return np_buf_len(c->out);
}

/* ---------- connection teardown ---------- */

static void
cpc_timer_clear(struct np_cpc *c, uint64_t *t)
{
	if (*t != 0) {
		np_ev_timer_del(c->ev, *t);
		*t = 0;
	}
}

/* Close the socket and forget the connection; runs no callback. */
static void
cpc_close(struct np_cpc *c, int graceful)
{
	c->gen++;
	cpc_timer_clear(c, &c->phase_timer);
	cpc_timer_clear(c, &c->stable_timer);
	cpc_timer_clear(c, &c->ka_timer);
	c->ka_rid = 0;
	if (c->fd != -1) {
		if (c->mask != 0) {
			np_ev_del(c->ev, c->fd);
		}
		if (graceful && c->tls != NULL && c->state >= CPC_HELLO) {
			np_tls_shutdown(c->tls);
		}
		np_tls_free(c->tls);
		c->tls = NULL;
		close(c->fd);
		c->fd = -1;
	}
	c->mask = 0;
	c->want = 0;
	c->want_w = 0;
	if (c->ai != NULL) {
		freeaddrinfo(c->ai);
		c->ai = NULL;
		c->ai_next = NULL;
	}
	np_buf_reset(c->in);
	np_buf_reset(c->out);
	c->state = CPC_IDLE;
}

/* Fail every pending request with err.  Stops early if c is doomed. */
static void
cpc_fail_pending(struct np_cpc *c, int err)
{
	struct cpc_req *list = c->reqs, *q;
	struct np_cpc_result res = { .r = err };

	c->reqs = NULL;
	c->nreqs = 0;
	while (list != NULL) {
		q = list;
		list = q->next;
		if (q->cb != NULL && !c->doomed) {
			q->cb(c, &res, q->arg);
		}
		free(q);
	}
}

static void
cpc_retry_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_cpc *c = arg;

	cpc_enter(c);
	c->retry_timer = 0;
	c->early_wait = 0;
	if (c->started && c->state == CPC_WAIT) {
		cpc_attempt_round(c);
	}
	cpc_leave(c);
}

static int
cpc_err_is_auth(int err)
{
	return err == NP_ERR_AUTH || err == NP_ERR_REVOKED ||
	    err == NP_ERR_TOKEN || err == NP_ERR_EXISTS;
}

/* Make the next server (in the configured order, wrapping) current. */
static void
cpc_server_advance(struct np_cpc *c)
{
	c->cur = (c->cur + 1) % c->nsrv;
	c->host = c->hosts[c->cur];
	c->port = c->ports[c->cur];
}

/*
 * This attempt's server could not be reached or failed before
 * authentication: move on to the next one when the attempt has not
 * tried them all.  1 when it did (the caller starts it).
 */
static int
cpc_server_next(struct np_cpc *c)
{
	if (c->left == 0) {
		return 0;
	}
	c->left--;
	np_debug("%s port %s: %s; trying the next server", c->host, c->port,
	    c->detail[0] != '\0' ? c->detail : "failed");
	cpc_server_advance(c);
	return 1;
}

/* An attempt from the current server that may try every other one. */
static void
cpc_attempt_round(struct np_cpc *c)
{
	c->left = c->nsrv - 1;
	cpc_attempt(c);
}

/*
 * A client that does not reconnect (np, the CLI) still tries again when
 * np-server closed the connection after TCP was up and before it was
 * authenticated: that is what np-server does to the least advanced
 * unauthenticated connection of an address at MaxUnauthPerSource, and a
 * burst of clients behind one NAT address (np tunnel's connections,
 * ansible's parallel ssh) meets it.  A few tries, each after a random
 * pause, so that the burst spreads out.
 */
static int
cpc_early_retry(struct np_cpc *c, int err, int fatal, enum cpc_state was)
{
	uint32_t delay;

	if (fatal || c->reconnect || !c->started || err != NP_ERR_CLOSED ||
	    was < CPC_HANDSHAKE || was == CPC_UP ||
	    c->early_retries >= NP_CPC_EARLY_RETRIES) {
		return 0;
	}
	delay = np_cpc_backoff(NP_CPC_EARLY_RETRY_MS, NP_CPC_EARLY_RETRY_MS <<
	    NP_CPC_EARLY_RETRIES, c->early_retries);
	c->early_retries++;
	np_debug("closed by the server before authentication; trying again "
	    "in %u ms", (unsigned)delay);
	c->state = CPC_WAIT;
	c->retry_timer = np_ev_timer_add(c->ev, delay, cpc_retry_cb, c);
	if (c->retry_timer == 0) {
		c->state = CPC_IDLE;
		return 0;
	}
	c->early_wait = 1;
	return 1;
}

/*
 * The connection (or the attempt) ended with err.  Fatal errors, or
 * reconnect off, stop the client; otherwise a retry is scheduled.  Runs
 * the pending callbacks and the state callback.
 */
static void
cpc_drop(struct np_cpc *c, int err, int fatal)
{
	enum cpc_state was = c->state;
	uint32_t delay;
	int stopped;

	cpc_close(c, 0);
	c->last_err = err;
	if (!fatal && c->started && was >= CPC_CONNECTING && was < CPC_UP &&
	    !cpc_err_is_auth(err) && cpc_server_next(c)) {
		cpc_fail_pending(c, NP_ERR_CLOSED);
		cpc_attempt(c);
		return;
	}
	if (was == CPC_UP && c->nsrv > 1) {
		/* Its instance may be gone: the next attempt starts at the
		 * next one (any instance serves any identity). */
		cpc_server_advance(c);
	}
	if (cpc_early_retry(c, err, fatal, was)) {
		cpc_fail_pending(c, NP_ERR_CLOSED);
		return;
	}
	stopped = fatal || !c->reconnect || !c->started;
	if (stopped) {
		c->started = 0;
	} else {
		if (cpc_err_is_auth(err)) {
			delay = c->bmax;
		} else {
			delay = np_cpc_backoff(c->bmin, c->bmax, c->attempt);
		}
		if (c->attempt < 32) {
			c->attempt++;
		}
		c->state = CPC_WAIT;
		c->retry_timer = np_ev_timer_add(c->ev, delay, cpc_retry_cb, c);
		np_debug("reconnecting in %u ms", (unsigned)delay);
	}
	cpc_fail_pending(c, NP_ERR_CLOSED);
	if (c->state_cb != NULL && !c->doomed) {
		c->state_cb(c, 0, err, stopped, c->state_arg);
	}
}

/* ---------- output ---------- */

static void
cpc_update_mask(struct np_cpc *c)
{
	uint32_t m = 0;

	if (c->fd == -1) {
		return;
	}
	switch (c->state) {
	case CPC_CONNECTING:
		m = NP_EV_WRITE;
		break;
	case CPC_HANDSHAKE:
		m = c->want != 0 ? c->want : NP_EV_READ;
		break;
	case CPC_HELLO:
	case CPC_AUTH:
	case CPC_UP:
		if (np_buf_len(c->out) <= NP_CPC_OUT_HIGH) {
			m |= NP_EV_READ;
		}
		if (np_buf_len(c->out) > 0) {
			m |= NP_EV_WRITE;
		}
		m |= c->want | c->want_w;
		break;
	default:
		return;
	}
	if (m == c->mask) {
		return;
	}
	if (c->mask == 0) {
		if (np_ev_add(c->ev, c->fd, m, cpc_fd_cb, c) != NP_OK) {
			np_error("cannot watch the connection");
			return;
		}
	} else if (np_ev_mod(c->ev, c->fd, m) != NP_OK) {
		np_error("cannot watch the connection");
		return;
	}
	c->mask = m;
}

/* Queue obj as one frame. */
static int
cpc_queue(struct np_cpc *c, struct json_object *obj)
{
	int r;

	if ((r = np_frame_encode(obj, c->out)) != NP_OK) {
		return r;
	}
	cpc_update_mask(c);
	return NP_OK;
}

/* Write what we can.  NP_OK (maybe with bytes left) or an error. */
static int
cpc_flush(struct np_cpc *c)
{
	size_t n;
	int r;

	c->want_w = 0;
	while (np_buf_len(c->out) > 0) {
		r = np_tls_write(c->tls, np_buf_ptr(c->out),
		    np_buf_len(c->out), &n);
		if (r == NP_ERR_AGAIN) {
			c->want_w = np_tls_want(c->tls);
			return NP_OK;
		}
		if (r != NP_OK) {
			return r;
		}
		np_buf_consume(c->out, n);
	}
	return NP_OK;
}

/* ---------- requests ---------- */

static int
json_add_str(struct json_object *o, const char *k, const char *v)
{
	struct json_object *s;

	if ((s = json_object_new_string(v)) == NULL) {
		return NP_ERR_ALLOC;
	}
	json_object_object_add(o, k, s);
	return NP_OK;
}

static int
json_add_int(struct json_object *o, const char *k, int64_t v)
{
	struct json_object *i;

	if ((i = json_object_new_int64(v)) == NULL) {
		return NP_ERR_ALLOC;
	}
	json_object_object_add(o, k, i);
	return NP_OK;
}

static int
json_add_b64(struct json_object *o, const char *k, const uint8_t *p,
    size_t n)
{
	size_t blen = sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_ORIGINAL);
	char *s;
	int r;

	if ((s = malloc(blen)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_b64_encode(p, n, s, blen)) == NP_OK) {
		r = json_add_str(o, k, s);
	}
	free(s);
	return r;
}

static struct json_object *
msg_new(const char *t)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		return NULL;
	}
	if (json_add_str(o, "t", t) != NP_OK) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
cpc_request_kind(struct np_cpc *c, struct json_object *obj,
    enum cpc_req_kind kind, np_cpc_req_cb *cb, void *arg, uint32_t *ridp)
{
	struct cpc_req *q, **tail;
	uint32_t rid;
	int r;

	if (c->state != CPC_UP) {
		return NP_ERR_CLOSED;
	}
	if (np_buf_len(c->out) > NP_CPC_OUT_HIGH) {
		return NP_ERR_AGAIN;
	}
	if (c->nreqs >= NP_CPC_MAX_PENDING) {
		return NP_ERR_LIMIT;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		return NP_ERR_ALLOC;
	}
	rid = c->next_rid;
	c->next_rid = rid >= CPC_RID_MAX ? 1 : rid + 1;
	if ((r = json_add_int(obj, "rid", rid)) != NP_OK ||
	    (r = cpc_queue(c, obj)) != NP_OK) {
		free(q);
		return r;
	}
	q->rid = rid;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	for (tail = &c->reqs; *tail != NULL; tail = &(*tail)->next) {
		;
	}
	*tail = q;
	c->nreqs++;
	if (ridp != NULL) {
		*ridp = rid;
	}
	return NP_OK;
}

int
np_cpc_request(struct np_cpc *c, struct json_object *obj, np_cpc_req_cb *cb,
    void *arg, uint32_t *rid)
{
	return cpc_request_kind(c, obj, REQ_USER, cb, arg, rid);
}

void
np_cpc_cancel(struct np_cpc *c, uint32_t rid)
{
	struct cpc_req **pp, *q;

	for (pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->rid == rid) {
			q = *pp;
			*pp = q->next;
			c->nreqs--;
			free(q);
			return;
		}
	}
}

/* Build-and-send for the typed requests: takes obj's reference. */
static int
cpc_send_obj(struct np_cpc *c, struct json_object *obj, int r,
    enum cpc_req_kind kind, np_cpc_req_cb *cb, void *arg, uint32_t *rid)
{
	if (obj == NULL) {
		return NP_ERR_ALLOC;
	}
	if (r == NP_OK) {
		r = cpc_request_kind(c, obj, kind, cb, arg, rid);
	}
	json_object_put(obj);
	return r;
}

int
np_cpc_lookup(struct np_cpc *c, const char *id, np_cpc_req_cb *cb,
    void *arg, uint32_t *rid)
{
	struct json_object *o;
	int r = NP_ERR_ALLOC;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((o = msg_new("lookup")) != NULL) {
		r = json_add_str(o, "id", id);
	}
	return cpc_send_obj(c, o, r, REQ_USER, cb, arg, rid);
}

int
np_cpc_send_tag(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const char *tag, const uint8_t *box, size_t len,
    np_cpc_req_cb *cb, void *arg, uint32_t *rid)
{
	struct json_object *o;
	int r = NP_ERR_ALLOC;

	if (!np_ident_valid(to) || mid == NULL || ttl < 1 || ttl > 604800 ||
	    (tag != NULL && !np_tag_valid(tag))) {
		return NP_ERR_INVALID;
	}
	if (len == 0 || len > CPC_BOX_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if ((o = msg_new("send")) != NULL &&
	    (r = json_add_str(o, "to", to)) == NP_OK &&
	    (r = json_add_str(o, "mid", mid)) == NP_OK &&
	    (r = json_add_int(o, "ttl", ttl)) == NP_OK &&
	    (r = json_add_b64(o, "box", box, len)) == NP_OK && tag != NULL) {
		r = json_add_str(o, "tag", tag);
	}
	return cpc_send_obj(c, o, r, REQ_USER, cb, arg, rid);
}

int
np_cpc_send(struct np_cpc *c, const char *to, const char *mid, long ttl,
    const uint8_t *box, size_t len, np_cpc_req_cb *cb, void *arg,
    uint32_t *rid)
{
	return np_cpc_send_tag(c, to, mid, ttl, NULL, box, len, cb, arg, rid);
}

/* A monitor request, with the configured tag. */
static struct json_object *
monitor_msg(const struct np_cpc *c)
{
	struct json_object *o;

	if ((o = msg_new("monitor")) == NULL) {
		return NULL;
	}
	if (c->monitor_tag != NULL &&
	    json_add_str(o, "tag", c->monitor_tag) != NP_OK) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int
np_cpc_ping(struct np_cpc *c, np_cpc_req_cb *cb, void *arg, uint32_t *rid)
{
	return cpc_send_obj(c, msg_new("ping"), NP_OK, REQ_USER, cb, arg, rid);
}

int
np_cpc_rotate(struct np_cpc *c, const uint8_t new_pk[NP_PK_LEN],
    const uint8_t sig[NP_SIG_LEN], const uint8_t nsig[NP_SIG_LEN],
    np_cpc_req_cb *cb, void *arg, uint32_t *rid)
{
	struct json_object *o;
	int r = NP_ERR_ALLOC;

	if ((o = msg_new("rotate")) != NULL &&
	    (r = json_add_b64(o, "pk", new_pk, NP_PK_LEN)) == NP_OK &&
	    (r = json_add_b64(o, "sig", sig, NP_SIG_LEN)) == NP_OK) {
		r = json_add_b64(o, "nsig", nsig, NP_SIG_LEN);
	}
	return cpc_send_obj(c, o, r, REQ_USER, cb, arg, rid);
}

int
np_cpc_monitor(struct np_cpc *c, np_cpc_req_cb *cb, void *arg)
{
	c->monitoring = 1;
	if (c->state != CPC_UP) {
		return NP_OK;
	}
	return cpc_send_obj(c, monitor_msg(c), NP_OK,
	    cb != NULL ? REQ_USER : REQ_MONITOR_AUTO, cb, arg, NULL);
}

int
np_cpc_ack(struct np_cpc *c, int64_t seq)
{
	struct json_object *o;
	int r = NP_ERR_ALLOC;

	if (c->state != CPC_UP) {
		return NP_ERR_CLOSED;
	}
	if ((o = msg_new("ack")) != NULL &&
	    (r = json_add_int(o, "seq", seq)) == NP_OK) {
		r = cpc_queue(c, o);
	}
	json_object_put(o);
	return r;
}

/* ---------- lookup results ---------- */

static int
parse_rot(struct json_object *e, struct np_rot *rot)
{
	size_t n;

	if (!json_object_is_type(e, json_type_object) ||
	    json_object_object_length(e) != 3) {
		return NP_ERR_PROTO;
	}
	if (np_msg_b64(e, "old", rot->old_pk, NP_PK_LEN, &n) != NP_OK ||
	    n != NP_PK_LEN ||
	    np_msg_b64(e, "new", rot->new_pk, NP_PK_LEN, &n) != NP_OK ||
	    n != NP_PK_LEN ||
	    np_msg_b64(e, "sig", rot->sig, NP_SIG_LEN, &n) != NP_OK ||
	    n != NP_SIG_LEN) {
		return NP_ERR_PROTO;
	}
	return NP_OK;
}

int
np_cpc_parse_lookup(struct json_object *obj, struct np_cpc_lookup_res *out)
{
	struct json_object *arr;
	const char *id;
	size_t n;

	memset(out, 0, sizeof(*out));
	if ((id = np_msg_str(obj, "id")) == NULL || !np_ident_valid(id) ||
	    np_msg_b64(obj, "pk", out->pk, NP_PK_LEN, &n) != NP_OK ||
	    n != NP_PK_LEN) {
		return NP_ERR_PROTO;
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	if (!json_object_object_get_ex(obj, "rot", &arr)) {
		return NP_OK;
	}
	if (!json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) > NP_CPC_ROT_MAX) {
		return NP_ERR_PROTO;
	}
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		if (parse_rot(json_object_array_get_idx(arr, i),
		    &out->rot[i]) != NP_OK) {
			return NP_ERR_PROTO;
		}
	}
	out->nrot = n;
	return NP_OK;
}

/* ---------- frames from the server ---------- */

static void
cpc_keepalive_cb(struct np_cpc *c, const struct np_cpc_result *res,
    void *arg)
{
	c->ka_rid = 0;
}

static void
cpc_monitor_cb(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	if (res->r != NP_OK && res->r != NP_ERR_CLOSED) {
		np_error_r(res->r, "monitor refused: %s",
		    res->msg != NULL ? res->msg : "");
	}
}

static void
cpc_ka_timer_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_cpc *c = arg;

	cpc_enter(c);
	c->ka_timer = 0;
	if (c->state == CPC_UP) {
		if (c->ka_rid != 0) {
			cpc_detail(c, "keepalive ping unanswered");
			cpc_drop(c, NP_ERR_TIMEOUT, 0);
		} else {
			(void)cpc_send_obj(c, msg_new("ping"), NP_OK,
			    REQ_KEEPALIVE, cpc_keepalive_cb, NULL, &c->ka_rid);
			c->ka_timer = np_ev_timer_add(c->ev,
			    (uint64_t)c->keepalive_ms, cpc_ka_timer_cb, c);
		}
	}
	cpc_leave(c);
}

static void
cpc_stable_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_cpc *c = arg;

	c->stable_timer = 0;
	c->attempt = 0;
}

static struct cpc_req *
cpc_take_req(struct np_cpc *c, uint32_t rid)
{
	struct cpc_req **pp, *q;

	for (pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->rid == rid) {
			q = *pp;
			*pp = q->next;
			c->nreqs--;
			return q;
		}
	}
	return NULL;
}

static void
cpc_on_answer(struct np_cpc *c, struct json_object *obj, int is_err)
{
	struct np_cpc_result res = { .r = NP_OK, .obj = obj };
	struct cpc_req *q;
	int64_t rid;

	if (np_msg_int(obj, "rid", &rid) != NP_OK || rid < 1 ||
	    rid > CPC_RID_MAX) {
		return;
	}
	if ((q = cpc_take_req(c, (uint32_t)rid)) == NULL) {
		np_debug("answer to unknown or cancelled rid %lld",
		    (long long)rid);
		return;
	}
	if (is_err) {
		res.code = np_msg_str(obj, "code");
		res.msg = np_msg_str(obj, "msg");
		res.r = np_cpc_code_err(res.code);
	}
	if (q->kind == REQ_MONITOR_AUTO) {
		cpc_monitor_cb(c, &res, NULL);
	} else if (q->cb != NULL) {
		q->cb(c, &res, q->arg);
	}
	free(q);
}

static void
cpc_on_push(struct np_cpc *c, struct json_object *obj)
{
	struct np_cpc_push m;
	size_t n;

	memset(&m, 0, sizeof(m));
	if (np_msg_int(obj, "seq", &m.seq) != NP_OK ||
	    np_msg_int(obj, "ts", &m.ts) != NP_OK ||
	    (m.from = np_msg_str(obj, "from")) == NULL ||
	    (m.mid = np_msg_str(obj, "mid")) == NULL ||
	    np_msg_b64(obj, "box", c->boxbuf, CPC_BOX_MAX, &n) != NP_OK) {
		cpc_detail(c, "malformed msg push");
		cpc_drop(c, NP_ERR_PROTO, 0);
		return;
	}
	m.box = c->boxbuf;
	m.box_len = n;
	m.tag = np_msg_str(obj, "tag");
	if (c->msg_cb != NULL) {
		c->msg_cb(c, &m, c->msg_arg);
	}
}

static int
cpc_send_auth(struct np_cpc *c, const uint8_t nonce[32])
{
	uint8_t cbind[NP_TLS_CB_LEN], sig[NP_SIG_LEN];
	struct json_object *o = NULL;
	struct np_buf *m = NULL;
	int r;

	if ((r = np_tls_channel_binding(c->tls, cbind)) != NP_OK) {
		goto out;
	}
	r = NP_ERR_ALLOC;
	if ((m = np_buf_new(1024)) == NULL ||
	    (o = msg_new(c->token != NULL ? "enroll" : "auth")) == NULL) {
		goto out;
	}
	if (c->token != NULL) {
		r = np_enroll_message(nonce, cbind, np_key_pk(c->key), c->id,
		    m);
	} else {
		r = np_auth_message(nonce, cbind, c->id, m);
	}
	if (r != NP_OK ||
	    (r = np_key_sign(c->key, np_buf_ptr(m), np_buf_len(m), sig)) !=
	    NP_OK ||
	    (r = json_add_str(o, "id", c->id)) != NP_OK) {
		goto out;
	}
	if (c->token != NULL &&
	    ((r = json_add_b64(o, "pk", np_key_pk(c->key), NP_PK_LEN)) !=
	    NP_OK || (r = json_add_str(o, "token", c->token)) != NP_OK)) {
		goto out;
	}
	if ((r = json_add_b64(o, "sig", sig, NP_SIG_LEN)) != NP_OK) {
		goto out;
	}
	r = cpc_queue(c, o);
 out:
	sodium_memzero(cbind, sizeof(cbind));
	np_buf_free(m);
	json_object_put(o);
	return r;
}

static void
cpc_on_hello(struct np_cpc *c, struct json_object *obj)
{
	uint8_t nonce[32];
	int64_t v;
	size_t n;
	int r;

	if (np_msg_int(obj, "v", &v) != NP_OK || v != 1 ||
	    np_msg_b64(obj, "nonce", nonce, sizeof(nonce), &n) != NP_OK ||
	    n != sizeof(nonce)) {
		cpc_detail(c, "bad hello (unsupported protocol version?)");
		cpc_drop(c, NP_ERR_PROTO, 0);
		return;
	}
	np_debug("hello received (%llu ms)",
	    (unsigned long long)cpc_elapsed(c));
	if ((r = cpc_send_auth(c, nonce)) != NP_OK) {
		cpc_detail(c, "cannot build the %s message",
		    c->token != NULL ? "enroll" : "auth");
		cpc_drop(c, r, 1);
		return;
	}
	c->state = CPC_AUTH;
}

static void
cpc_on_welcome(struct np_cpc *c, struct json_object *obj)
{
	const char *id = np_msg_str(obj, "id");

	if (id == NULL || strcmp(id, c->id) != 0) {
		cpc_detail(c, "welcome for another identity");
		cpc_drop(c, NP_ERR_PROTO, 0);
		return;
	}
	np_debug("%s as %s (%llu ms)", c->token != NULL ? "enrolled" :
	    "authenticated", c->id, (unsigned long long)cpc_elapsed(c));
	if (c->token != NULL) {
		/* Enrolled: later connections authenticate. */
		sodium_memzero(c->token, strlen(c->token));
		free(c->token);
		c->token = NULL;
	}
	c->state = CPC_UP;
	c->welcomes++;
	c->detail[0] = '\0';
	cpc_timer_clear(c, &c->phase_timer);
	c->stable_timer = np_ev_timer_add(c->ev, NP_CPC_STABLE_MS,
	    cpc_stable_cb, c);
	if (c->keepalive_ms > 0) {
		c->ka_timer = np_ev_timer_add(c->ev,
		    (uint64_t)c->keepalive_ms, cpc_ka_timer_cb, c);
	}
	if (c->monitoring) {
		cpc_send_obj(c, monitor_msg(c), NP_OK, REQ_MONITOR_AUTO,
		    NULL, NULL, NULL);
	}
	if (c->state_cb != NULL) {
		c->state_cb(c, 1, NP_OK, 0, c->state_arg);
	}
}

/* An error frame: before welcome it ends the attempt. */
static void
cpc_on_error(struct np_cpc *c, struct json_object *obj)
{
	const char *code = np_msg_str(obj, "code");
	const char *msg = np_msg_str(obj, "msg");
	int64_t rid;
	int err = np_cpc_code_err(code);

	if (c->state == CPC_UP && np_msg_int(obj, "rid", &rid) == NP_OK) {
		cpc_on_answer(c, obj, 1);
		return;
	}
	cpc_detail(c, "server: %s: %s", code != NULL ? code : "?",
	    msg != NULL ? msg : "");
	/* A bad token or a bound name will not get better by retrying. */
	cpc_drop(c, err, err == NP_ERR_TOKEN || err == NP_ERR_EXISTS ||
	    (c->token != NULL && cpc_err_is_auth(err)));
}

static void
cpc_handle(struct np_cpc *c, struct json_object *obj)
{
	const char *t = NULL;

	if (np_msg_validate(obj, NP_MSG_TO_CLIENT, &t) != NP_OK || t == NULL) {
		cpc_detail(c, "invalid frame from the server");
		cpc_drop(c, NP_ERR_PROTO, 0);
		return;
	}
	if (strcmp(t, "error") == 0) {
		cpc_on_error(c, obj);
	} else if (c->state == CPC_HELLO && strcmp(t, "hello") == 0) {
		cpc_on_hello(c, obj);
	} else if (c->state == CPC_AUTH && strcmp(t, "welcome") == 0) {
		cpc_on_welcome(c, obj);
	} else if (c->state == CPC_UP && strcmp(t, "result") == 0) {
		cpc_on_answer(c, obj, 0);
	} else if (c->state == CPC_UP && strcmp(t, "msg") == 0) {
		cpc_on_push(c, obj);
	} else {
		cpc_detail(c, "unexpected '%s' from the server", t);
		cpc_drop(c, NP_ERR_PROTO, 0);
	}
}

/* Decode and handle every whole frame in c->in. */
static int
cpc_frames(struct np_cpc *c)
{
	struct json_object *obj;
	uint64_t gen = c->gen;
	int r;

	for (;;) {
		r = np_frame_decode(c->in, &obj);
		if (r == NP_ERR_AGAIN) {
			return NP_OK;
		}
		if (r != NP_OK) {
			cpc_detail(c, "bad frame from the server");
			cpc_drop(c, NP_ERR_PROTO, 0);
			return NP_ERR_CLOSED;
		}
		cpc_handle(c, obj);
		json_object_put(obj);
		if (c->gen != gen || c->doomed) {
			return NP_ERR_CLOSED;
		}
	}
}

/* Read until the socket and OpenSSL are drained; NP_ERR_CLOSED when the
 * connection went away (c->gen changed). */
static int
cpc_read(struct np_cpc *c)
{
	uint8_t *p;
	size_t want, n;
	int r;

	c->want = 0;
	for (;;) {
		if (np_buf_len(c->out) > NP_CPC_OUT_HIGH) {
			return NP_OK; /* backpressure: stop reading */
		}
		want = np_buf_avail(c->in);
		if (want > CPC_READ_CHUNK) {
			want = CPC_READ_CHUNK;
		}
		if (want == 0 || np_buf_reserve(c->in, want, &p) != NP_OK) {
			cpc_detail(c, "input buffer full");
			cpc_drop(c, NP_ERR_TOO_BIG, 0);
			return NP_ERR_CLOSED;
		}
		r = np_tls_read(c->tls, p, want, &n);
		if (r != NP_OK) {
			n = 0;
		}
		np_buf_unreserve(c->in, want - n);
		if (r == NP_ERR_AGAIN) {
			c->want = np_tls_want(c->tls) & ~NP_EV_READ;
			return NP_OK;
		}
		if (r != NP_OK) {
			cpc_detail(c, "%s", r == NP_ERR_CLOSED ?
			    "server closed the connection" :
			    "TLS read failed");
			cpc_drop(c, r == NP_ERR_CLOSED ? r : NP_ERR_TLS, 0);
			return NP_ERR_CLOSED;
		}
		if ((r = cpc_frames(c)) != NP_OK) {
			return r;
		}
	}
}

/* ---------- connecting ---------- */

static void
cpc_phase_timer_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_cpc *c = arg;

	cpc_enter(c);
	c->phase_timer = 0;
	if (c->state == CPC_CONNECTING && c->ai_next != NULL) {
		np_debug("connect timed out, trying the next address");
		np_ev_del(c->ev, c->fd);
		c->mask = 0;
		close(c->fd);
		c->fd = -1;
		c->last_errno = ETIMEDOUT;
		cpc_try_next(c);
	} else if (c->state >= CPC_CONNECTING && c->state < CPC_UP) {
		cpc_detail(c, "timed out %s %s port %s",
		    c->state == CPC_CONNECTING ? "connecting to" :
		    "authenticating with", c->host, c->port);
		cpc_drop(c, NP_ERR_TIMEOUT, 0);
	}
	cpc_leave(c);
}

static void
cpc_phase_timer(struct np_cpc *c)
{
	cpc_timer_clear(c, &c->phase_timer);
	c->phase_timer = np_ev_timer_add(c->ev, (uint64_t)c->timeout_ms,
	    cpc_phase_timer_cb, c);
}

static void
cpc_handshake(struct np_cpc *c)
{
	char got[NP_FP_MAX];
	int r;

	r = np_tls_handshake(c->tls);
	if (r == NP_ERR_AGAIN) {
		c->want = np_tls_want(c->tls);
		cpc_update_mask(c);
		return;
	}
	if (r != NP_OK) {
		cpc_detail(c, "TLS handshake with %s port %s failed", c->host,
		    c->port);
		cpc_drop(c, NP_ERR_TLS, 0);
		return;
	}
	/* Nothing has been sent yet: check the pin first. */
	if (np_tls_check_fingerprint(c->tls, c->fp) != NP_OK) {
		if (np_tls_peer_fingerprint(c->tls, got, sizeof(got)) !=
		    NP_OK) {
			snprintf(got, sizeof(got), "(unknown)");
		}
		cpc_detail(c, "expected %s, got %s", c->fp, got);
		cpc_drop(c, NP_ERR_FINGERPRINT, 1);
		return;
	}
	np_debug("TLS handshake done, server fingerprint ok (%llu ms)",
	    (unsigned long long)cpc_elapsed(c));
	c->want = 0;
	c->state = CPC_HELLO;
	cpc_update_mask(c);
	/* The hello may already sit in OpenSSL's buffer. */
	if (cpc_read(c) != NP_OK) {
		return;
	}
	if (cpc_flush(c) != NP_OK) {
		cpc_detail(c, "TLS write failed");
		cpc_drop(c, NP_ERR_TLS, 0);
		return;
	}
	cpc_update_mask(c);
}

static void
cpc_connected(struct np_cpc *c)
{
	int one = 1, r;

	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (c->ai != NULL) {
		freeaddrinfo(c->ai);
		c->ai = NULL;
		c->ai_next = NULL;
	}
	np_debug("connected to %s port %s (%llu ms)", c->host, c->port,
	    (unsigned long long)cpc_elapsed(c));
	if ((r = np_tls_new(c->ctx, c->fd, 0, &c->tls)) != NP_OK) {
		cpc_detail(c, "cannot start TLS");
		cpc_drop(c, r, 0);
		return;
	}
	c->state = CPC_HANDSHAKE;
	cpc_phase_timer(c);
	cpc_handshake(c);
}

static void
cpc_connect_done(struct np_cpc *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
		err = errno;
	}
	if (err == EINPROGRESS || err == EALREADY) {
		return;
	}
	if (err == 0) {
		cpc_connected(c);
		return;
	}
	c->last_errno = err;
	np_debug("connect: %s", strerror(err));
	np_ev_del(c->ev, c->fd);
	c->mask = 0;
	close(c->fd);
	c->fd = -1;
	cpc_try_next(c);
}

/* Start a connect to the next address, or fail the attempt. */
static void
cpc_try_next(struct np_cpc *c)
{
	struct addrinfo *a;
	int fd;

	while ((a = c->ai_next) != NULL) {
		c->ai_next = a->ai_next;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, a->ai_protocol);
		if (fd == -1) {
			c->last_errno = errno;
			continue;
		}
		c->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			cpc_connected(c);
			return;
		}
		if (errno == EINPROGRESS) {
			cpc_phase_timer(c);
			cpc_update_mask(c);
			return;
		}
		c->last_errno = errno;
		close(fd);
		c->fd = -1;
	}
	cpc_detail(c, "cannot connect to %s port %s: %s", c->host, c->port,
	    strerror(c->last_errno != 0 ? c->last_errno : ECONNREFUSED));
	if (c->ai != NULL) {
		freeaddrinfo(c->ai);
		c->ai = NULL;
	}
	if (c->started && cpc_server_next(c)) {
		cpc_attempt(c);
		return;
	}
	cpc_drop(c, NP_ERR_UNREACHABLE, 0);
}

static void
cpc_attempt(struct np_cpc *c)
{
	struct addrinfo hints;
	int r;

	c->t0 = np_now_mono_ms();
	c->last_errno = 0;
	c->state = CPC_CONNECTING;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	np_debug("connecting to %s port %s", c->host, c->port);
	/* XXX getaddrinfo blocks; fine for the CLI and for daemons whose
	 * server name is in /etc/hosts or a fast resolver. */
	if ((r = getaddrinfo(c->host, c->port, &hints, &c->ai)) != 0) {
		c->ai = NULL;
		cpc_detail(c, "cannot resolve %s: %s", c->host,
		    gai_strerror(r));
		if (c->started && cpc_server_next(c)) {
			cpc_attempt(c);
			return;
		}
		cpc_drop(c, NP_ERR_UNREACHABLE, 0);
		return;
	}
	c->ai_next = c->ai;
	cpc_try_next(c);
}

static void
cpc_fd_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct np_cpc *c = arg;
	uint64_t gen;
	int r;

	cpc_enter(c);
	gen = c->gen;
	switch (c->state) {
	case CPC_CONNECTING:
		cpc_connect_done(c);
		break;
	case CPC_HANDSHAKE:
		cpc_handshake(c);
		break;
	case CPC_HELLO:
	case CPC_AUTH:
	case CPC_UP:
		if ((r = cpc_flush(c)) != NP_OK) {
			cpc_detail(c, "TLS write failed");
			cpc_drop(c, NP_ERR_TLS, 0);
			break;
		}
		if (cpc_read(c) != NP_OK || c->gen != gen) {
			break;
		}
		if ((r = cpc_flush(c)) != NP_OK) {
			cpc_detail(c, "TLS write failed");
			cpc_drop(c, NP_ERR_TLS, 0);
			break;
		}
		cpc_update_mask(c);
		break;
	default:
		break;
	}
	cpc_leave(c);
}

void
np_cpc_server(const struct np_cpc *c, const char **host, const char **port)
{
	*host = c->host;
	*port = c->port;
}

/* ---------- start / stop / free ---------- */

int
np_cpc_start(struct np_cpc *c)
{
	if (c->started) {
		return NP_OK;
	}
	cpc_enter(c);
	c->started = 1;
	c->detail[0] = '\0';
	c->last_err = NP_OK;
	cpc_attempt_round(c);
	cpc_leave(c);
	return NP_OK;
}

void
np_cpc_stop(struct np_cpc *c)
{
	if (c == NULL) {
		return;
	}
	cpc_enter(c);
	c->started = 0;
	cpc_timer_clear(c, &c->retry_timer);
	c->early_wait = 0;
	if (c->state == CPC_WAIT) {
		c->state = CPC_IDLE;
	}
	if (c->state != CPC_IDLE) {
		if (c->tls != NULL && c->state >= CPC_HELLO) {
			(void)cpc_flush(c);
		}
		cpc_close(c, 1);
		cpc_drop(c, NP_ERR_CLOSED, 1);
	}
	cpc_leave(c);
}

void
np_cpc_free(struct np_cpc *c)
{
	if (c == NULL) {
		return;
	}
	c->state_cb = NULL;
	c->msg_cb = NULL;
	c->doomed = 1;
	c->started = 0;
	cpc_timer_clear(c, &c->retry_timer);
	cpc_close(c, 1);
	cpc_fail_pending(c, NP_ERR_CLOSED); /* doomed: no callbacks */
	if (c->busy == 0) {
		cpc_destroy(c);
	}
}

/* ---------- synchronous helpers ---------- */

static int
remaining(uint64_t deadline)
{
	uint64_t now = np_now_mono_ms();

	if (now >= deadline) {
		return 0;
	}
	return deadline - now > 0x7fffffff ? 0x7fffffff :
	    (int)(deadline - now);
}

int
np_cpc_connect_wait(struct np_cpc *c, int timeout_ms)
{
	uint64_t deadline = np_now_mono_ms() + (uint64_t)timeout_ms;
	uint64_t welcomes = c->welcomes;
	int r, left;

	if (c->state == CPC_UP) {
		return NP_OK;
	}
	if (!c->started && (r = np_cpc_start(c)) != NP_OK) {
		return r;
	}
	for (;;) {
		/* Up, or was up for a moment (welcome and a close may come
		 * in one read): authentication (enrollment) succeeded. */
		if (c->state == CPC_UP || c->welcomes != welcomes) {
			return NP_OK;
		}
		if (c->state == CPC_IDLE ||
		    (c->state == CPC_WAIT && !c->early_wait)) {
			return c->last_err != NP_OK ? c->last_err :
			    NP_ERR_CLOSED;
		}
		if ((left = remaining(deadline)) == 0) {
			np_cpc_stop(c);
			cpc_detail(c, "timed out connecting to %s port %s",
			    c->host, c->port);
			c->last_err = NP_ERR_TIMEOUT;
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(c->ev, left)) != NP_OK) {
			return r;
		}
	}
}

void
np_cpc_waiter_cb(struct np_cpc *c, const struct np_cpc_result *res,
    void *arg)
{
	struct np_cpc_waiter *w = arg;

	w->done = 1;
	w->r = res->r;
	if (res->obj != NULL) {
		w->obj = json_object_get(res->obj);
	}
	if (res->code != NULL) {
		snprintf(w->detail, sizeof(w->detail), "server: %s: %s",
		    res->code, res->msg != NULL ? res->msg : "");
		for (char *p = w->detail; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				*p = '?';
			}
		}
	}
}

void
np_cpc_waiter_clear(struct np_cpc_waiter *w)
{
	json_object_put(w->obj);
	memset(w, 0, sizeof(*w));
}

int
np_cpc_wait(struct np_cpc *c, struct np_cpc_waiter *w, uint32_t rid,
    int timeout_ms)
{
	uint64_t deadline = np_now_mono_ms() + (uint64_t)timeout_ms;
	int r, left;

	while (!w->done) {
		if ((left = remaining(deadline)) == 0) {
			np_cpc_cancel(c, rid);
			w->done = 1;
			w->r = NP_ERR_TIMEOUT;
			snprintf(w->detail, sizeof(w->detail),
			    "no answer from the server");
			break;
		}
		if ((r = np_ev_run_once(c->ev, left)) != NP_OK) {
			np_cpc_cancel(c, rid);
			return r;
		}
	}
	return w->r;
}

int
np_cpc_lookup_sync(struct np_cpc *c, const char *id, int timeout_ms,
    struct np_cpc_lookup_res *out)
{
	struct np_cpc_waiter w;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	if ((r = np_cpc_lookup(c, id, np_cpc_waiter_cb, &w, &rid)) != NP_OK) {
		return r;
	}
	if ((r = np_cpc_wait(c, &w, rid, timeout_ms)) == NP_OK) {
		r = np_cpc_parse_lookup(w.obj, out);
		if (r == NP_OK && strcmp(out->id, id) != 0) {
			r = NP_ERR_PROTO;
		}
		if (r != NP_OK) {
			cpc_detail(c, "malformed lookup result");
		}
	} else if (w.detail[0] != '\0') {
		cpc_detail(c, "%s", w.detail);
	}
	np_cpc_waiter_clear(&w);
	return r;
}

static int
cpc_finish(struct np_cpc *c, struct np_cpc_waiter *w, uint32_t rid,
    int timeout_ms)
{
	int r = np_cpc_wait(c, w, rid, timeout_ms);

	if (r != NP_OK && w->detail[0] != '\0') {
		cpc_detail(c, "%s", w->detail);
	}
	return r;
}

int
np_cpc_send_sync(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const uint8_t *box, size_t len, int timeout_ms)
{
	struct np_cpc_waiter w;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	if ((r = np_cpc_send(c, to, mid, ttl, box, len, np_cpc_waiter_cb, &w,
	    &rid)) == NP_OK) {
		r = cpc_finish(c, &w, rid, timeout_ms);
	}
	np_cpc_waiter_clear(&w);
	return r;
}

int
np_cpc_send_tag_sync(struct np_cpc *c, const char *to, const char *mid,
    long ttl, const char *tag, const uint8_t *box, size_t len,
    int timeout_ms)
{
	struct np_cpc_waiter w;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	if ((r = np_cpc_send_tag(c, to, mid, ttl, tag, box, len,
	    np_cpc_waiter_cb, &w, &rid)) == NP_OK) {
		r = cpc_finish(c, &w, rid, timeout_ms);
	}
	np_cpc_waiter_clear(&w);
	return r;
}

int
np_cpc_rotate_sync(struct np_cpc *c, const uint8_t new_pk[NP_PK_LEN],
    const uint8_t sig[NP_SIG_LEN], const uint8_t nsig[NP_SIG_LEN],
    int timeout_ms)
{
	struct np_cpc_waiter w;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	if ((r = np_cpc_rotate(c, new_pk, sig, nsig, np_cpc_waiter_cb, &w,
	    &rid)) == NP_OK) {
		r = cpc_finish(c, &w, rid, timeout_ms);
	}
	np_cpc_waiter_clear(&w);
	return r;
}

int
np_cpc_ping_sync(struct np_cpc *c, int timeout_ms, int64_t *ts)
{
	struct np_cpc_waiter w;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	if ((r = np_cpc_ping(c, np_cpc_waiter_cb, &w, &rid)) == NP_OK &&
	    (r = cpc_finish(c, &w, rid, timeout_ms)) == NP_OK &&
	    ts != NULL && np_msg_int(w.obj, "ts", ts) != NP_OK) {
		r = NP_ERR_PROTO;
	}
	np_cpc_waiter_clear(&w);
	return r;
}

int
np_cpc_monitor_sync(struct np_cpc *c, int timeout_ms)
{
	struct np_cpc_waiter w;
	struct json_object *o;
	uint32_t rid = 0;
	int r;

	memset(&w, 0, sizeof(w));
	c->monitoring = 1;
	if ((o = monitor_msg(c)) == NULL) {
		return NP_ERR_ALLOC;
	}
	r = cpc_request_kind(c, o, REQ_USER, np_cpc_waiter_cb, &w, &rid);
	json_object_put(o);
	if (r == NP_OK) {
		r = cpc_finish(c, &w, rid, timeout_ms);
	}
	np_cpc_waiter_clear(&w);
	return r;
}
