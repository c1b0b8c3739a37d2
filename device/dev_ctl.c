/*
 * The control plane: one np-server connection (reconnecting with backoff
 * and jitter, monitor re-issued, keepalive pings), np.session.req and
 * np.ping boxes in, np.session.ok / np.session.err / np.pong out.
 *
 * Requesters' keys: an identity named on an Allow line is pinned on first
 * use in KnownIdentities (a key changed without a rotation signed by the
 * pinned key is refused, loudly); a key not pinned yet is looked up
 * (asynchronously; the boxes of that sender wait behind the lookup), and
 * a box that does not decrypt with a key not looked up lately triggers one
 * fresh lookup (the sender may have rotated its key).
 *
 * Identities not on any Allow line are told "identity not allowed" (every
 * refusal reaches the client), but at most once a second each after a
 * burst of ten (so a client's retries are answered, a flood is not) and
 * STRANGER_RATE a second in all; their
 * keys are looked up and kept in memory only (never pinned: nothing they
 * get depends on it) and their boxes skip the replay cache (they cannot
 * fill it up for the allowed ones).
 *
 * A replayed box gets no second answer (the first one was answered; the
 * server pushes a box again when its ack was lost).  A stale box (queued
 * too long, or the clocks differ) gets np.session.err.
 *
 * Every reply (np.session.ok, np.session.err, np.pong) is sent with the
 * request's reply tag "rt" (docs/PROTOCOL.md, "tag"), so that it reaches
 * the one client process that asked; a request without a valid rt gets an
 * untagged reply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "cpc.h"
#include "dev.h"
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "pin.h"

#define PEER_BUCKETS 1024
#define PEERS_MAX 65536
#define REQS_MAX 1024		/* boxes waiting for a key lookup */
#define RELOOKUP_MS 60000	/* a key this fresh is not looked up again */
#define STRANGER_COST_MS 1000	/* per stranger: one refusal a second, */
#define STRANGER_BURST_MS 10000	/* with a burst of ten */
#define STRANGER_RATE 20	/* refusals to strangers a second, in all */
#define DROP_LOG_MS 10000	/* dropped strangers: one log line per */
#define CLOCK_WARN_MS 10000	/* a request this far off our clock: warn */

struct dev_req_box {
	struct dev_req_box *next;
	int64_t seq;
	char from[NP_IDENT_MAX + 1];
	char mid[NP_MID_LEN + 1];
	int retried;
	size_t len;
	uint8_t box[];
};

struct dev_peer {
	struct dev_peer *next;
	struct dev *d;
	char id[NP_IDENT_MAX + 1];
	int allowed;
	uint8_t pk[NP_PK_LEN];
	int have_pk;
	uint64_t verified_at; /* 0: from the pins file, not looked up */
	uint64_t credit;      /* strangers: token bucket, in ms */
	uint64_t credit_at;
	uint32_t rid;	      /* lookup in flight */
	struct dev_req_box *whead, **wtail;
};

struct dev_cp {
	struct dev_peer *peers[PEER_BUCKETS];
	size_t npeers;
	size_t nreqs;
	uint64_t window_at;   /* strangers: start of this second */
	unsigned window_n;    /* refusals in it */
	uint64_t drop_log_at;
	unsigned dropped;
	int down;	      /* an outage was logged */
};

static void ctl_handle(struct dev *, struct dev_peer *,
    struct dev_req_box *);

/* ---- peers ---- */

static size_t
peer_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++) {
		h = (h ^ (uint8_t)*id) * 16777619u;
	}
	return h % PEER_BUCKETS;
}

/* Forget strangers with nothing in flight. */
static void
peers_evict(struct dev_cp *cp)
{
	struct dev_peer **pp, *p;
	size_t i;

	for (i = 0; i < PEER_BUCKETS; i++) {
		for (pp = &cp->peers[i]; (p = *pp) != NULL;) {
			if (!p->allowed && p->rid == 0 && p->whead == NULL) {
				*pp = p->next;
				free(p);
				cp->npeers--;
			} else {
				pp = &p->next;
			}
		}
	}
}

static struct dev_peer *
peer_get(struct dev *d, const char *id)
{
	struct dev_cp *cp = d->cp;
	struct dev_peer *p;
	size_t h = peer_hash(id);

	for (p = cp->peers[h]; p != NULL; p = p->next) {
		if (strcmp(p->id, id) == 0) {
			return p;
		}
	}
	if (cp->npeers >= PEERS_MAX) {
		peers_evict(cp);
	}
	if (cp->npeers >= PEERS_MAX || (p = calloc(1, sizeof(*p))) == NULL) {
		return NULL;
	}
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->d = d;
	p->wtail = &p->whead;
	p->allowed = dev_conf_allow(d->conf, id) != NULL;
	p->have_pk = np_pins_get(d->pins, id, p->pk) == NP_OK;
	p->next = cp->peers[h];
	cp->peers[h] = p;
	cp->npeers++;
	return p;
}

/* ---- queued boxes ---- */

static void
req_ack(struct dev *d, struct dev_req_box *q)
{
	if (d->cpc != NULL) {
		(void)np_cpc_ack(d->cpc, q->seq);
	}
}

static void
req_free(struct dev *d, struct dev_req_box *q)
{
	if (q != NULL) {
		d->cp->nreqs--;
		free(q);
	}
}

/* Drop every waiting box of p; acked (refused) or left for the server
 * to push again (ack == 0). */
static void
peer_drop_waiters(struct dev *d, struct dev_peer *p, int ack)
{
	struct dev_req_box *q;

	while ((q = p->whead) != NULL) {
		p->whead = q->next;
		if (ack) {
			req_ack(d, q);
		}
		req_free(d, q);
	}
	p->wtail = &p->whead;
}

static void
peer_run_waiters(struct dev *d, struct dev_peer *p)
{
	struct dev_req_box *q;

	while (p->rid == 0 && (q = p->whead) != NULL) {
		p->whead = q->next;
		if (p->whead == NULL) {
			p->wtail = &p->whead;
		}
		q->next = NULL;
		ctl_handle(d, p, q);
	}
}

/* ---- lookups ---- */

static int
pin_key(struct dev *d, struct dev_peer *p,
    const struct np_cpc_lookup_res *lr)
{
	int r, changed = 0, had;
	uint8_t old[NP_PK_LEN];

	if (!p->allowed) {
		goto done; /* strangers: memory only */
	}
	had = np_pins_get(d->pins, p->id, old) == NP_OK;
	r = np_pins_check(d->pins, p->id, lr->pk, lr->rot, lr->nrot, 1,
	    &changed);
	if (r == NP_ERR_KEY_CHANGED) {
		np_warn("the key of %s changed without a rotation signed by "
		    "the pinned key: refusing its requests (remove its line "
		    "from %s to re-pin)", p->id, d->conf->known_identities);
		return r;
	}
	if (r != NP_OK) {
		np_warn_r(r, "%s: pin check failed", p->id);
		return r;
	}
	if (changed) {
		np_info("%s %s", had ? "followed a key rotation of" :
		    "pinned the key of", p->id);
		if ((r = np_pins_save(d->pins, d->conf->known_identities)) !=
		    NP_OK) {
			np_error_r(r, "%s: cannot save pins",
			    d->conf->known_identities);
		}
	}
 done:
	memcpy(p->pk, lr->pk, NP_PK_LEN);
	p->have_pk = 1;
	p->verified_at = np_now_mono_ms();
	return NP_OK;
}

static void
lookup_cb(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	struct dev_peer *p = arg;
	struct dev *d = p->d;
	struct np_cpc_lookup_res lr;
	int r = res->r;

	p->rid = 0;
	if (r == NP_ERR_CLOSED) {
		/* Not acked: the server pushes them again after reconnect. */
		peer_drop_waiters(d, p, 0);
		return;
	}
	if (r == NP_OK && (r = np_cpc_parse_lookup(res->obj, &lr)) == NP_OK &&
	    strcmp(lr.id, p->id) != 0) {
		r = NP_ERR_PROTO;
	}
	if (r != NP_OK) {
		np_warn_r(r, "lookup of %s failed%s%s", p->id,
		    res->code != NULL ? ": " : "",
		    res->code != NULL ? res->code : "");
		peer_drop_waiters(d, p, 1);
		return;
	}
	if (pin_key(d, p, &lr) != NP_OK) {
		peer_drop_waiters(d, p, 1);
		return;
	}
	peer_run_waiters(d, p);
}

static void
peer_lookup(struct dev *d, struct dev_peer *p)
{
	int r;

	if (p->rid != 0) {
		return;
	}
	r = np_cpc_lookup(d->cpc, p->id, lookup_cb, p, &p->rid);
	if (r != NP_OK) {
		p->rid = 0;
		np_warn_r(r, "cannot look up %s", p->id);
		/* Closed: pushed again later; busy: refused, acked. */
		peer_drop_waiters(d, p, r != NP_ERR_CLOSED);
	}
}

static void
peer_wait(struct dev *d, struct dev_peer *p, struct dev_req_box *q)
{
	q->next = NULL;
	*p->wtail = q;
	p->wtail = &q->next;
	peer_lookup(d, p);
}

/* ---- replies ---- */

static void
send_cb(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	if (res->r != NP_OK) {
		np_warn_r(res->r, "a reply was not delivered%s%s",
		    res->code != NULL ? ": " : "",
		    res->code != NULL ? res->code : "");
	}
}

int
dev_ctl_send(struct dev *d, const char *to, const uint8_t pk[NP_PK_LEN],
    const char *rt, const char *type, const char *sid,
    struct json_object *body)
{
	char mid[NP_MID_LEN + 1];
	struct np_buf *box;
	int r;

	if (d->cpc == NULL) {
		return NP_ERR_CLOSED;
	}
	if ((box = np_buf_new(NP_BOX_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	r = np_box_seal(d->key, pk, to, type, sid, body, DEV_REPLY_TTL,
	    np_now_real_ms(), NULL, box, mid);
	if (r == NP_OK) {
		r = np_cpc_send_tag(d->cpc, to, mid, DEV_REPLY_TTL,
		    rt != NULL && *rt != '\0' ? rt : NULL, np_buf_ptr(box),
		    np_buf_len(box), send_cb, NULL, NULL);
	}
	np_buf_free(box); /* the box is ciphertext: no wipe needed */
	return r;
}

void
dev_ctl_send_err(struct dev *d, const char *to, const uint8_t pk[NP_PK_LEN],
    const char *rt, const char *sid, const char *reason)
{
	struct json_object *body = NULL;
	int r;

	if ((r = dev_body_err(sid, reason, &body)) == NP_OK) {
		r = dev_ctl_send(d, to, pk, rt, "np.session.err",
		    sid != NULL ? sid : "", body);
	}
	json_object_put(body);
	if (r != NP_OK) {
		np_warn_r(r, "cannot send np.session.err to %s", to);
	}
}

/* ---- requests ---- */

static void
refuse(struct dev *d, struct dev_peer *p, const char *rt, const char *sid,
    const char *why)
{
	np_info("session %s from %s: refused: %s", sid != NULL &&
	    *sid != '\0' ? sid : "-", p->id, why);
	dev_ctl_send_err(d, p->id, p->pk, rt, sid, why);
}

static void
handle_req(struct dev *d, struct dev_peer *p, const struct np_box_msg *m)
{
	char sid[NP_SR_SID_LEN + 1] = "", rt[DEV_TAG_MAX + 1];
	struct dev_req q;
	const char *why;

	memset(&q, 0, sizeof(q));
	(void)dev_req_sid(m->body, sid);
	dev_body_rt(m->body, rt); /* refusals of bad requests too */
	if (!p->allowed) {
		refuse(d, p, rt, sid, "identity not allowed");
		return;
	}
	if (dev_req_parse(m->body, &q) != NP_OK ||
	    strcmp(m->session, q.sid) != 0) {
		refuse(d, p, rt, sid, "bad request");
		goto out;
	}
	if (d->stopping) {
		refuse(d, p, rt, sid, "device shutting down");
		goto out;
	}
	if ((why = dev_req_check(d->conf, p->id, &q, d->nsessions)) != NULL) {
		refuse(d, p, rt, sid, why);
		goto out;
	}
	if (dev_sess_start(d, p->id, p->pk, &q, &why) != NP_OK) {
		refuse(d, p, rt, sid, why != NULL ? why : "device error");
	}
 out:
	sodium_memzero(&q, sizeof(q));
}

static void
handle_ping(struct dev *d, struct dev_peer *p, const struct np_box_msg *m)
{
	struct json_object *body = NULL;
	struct dev_probe_tgt t[DEV_PROBE_MAX];
	char rt[DEV_TAG_MAX + 1];
	size_t n = 0;
	int r;

	if (!p->allowed) {
		np_info("ping from %s: not allowed, not answered", p->id);
		return;
	}
	dev_body_rt(m->body, rt);
	if (dev_ping_probes(d->conf, m->body, t, &n) != NP_OK) {
		np_info("ping from %s: bad probe list, not probed", p->id);
		n = 0;
	}
	if ((r = dev_body_pong(d->conf, m->body, &body)) == NP_OK && n > 0 &&
	    !d->stopping && dev_probe_start(d, p->id, p->pk, rt, m->session,
	    t, n, body) == NP_OK) {
		sodium_memzero(t, sizeof(t));
		return; /* the pong goes out after the probes */
	}
	sodium_memzero(t, sizeof(t));
	if (r == NP_OK) {
		r = dev_ctl_send(d, p->id, p->pk, rt, "np.pong", m->session,
		    body);
	}
	json_object_put(body);
	if (r != NP_OK) {
		np_warn_r(r, "cannot answer the ping of %s", p->id);
	} else {
		np_debug("pong to %s", p->id);
	}
}

/*
 * A stale box from an allowed peer: opened once more without the time
 * check (np_box_open_stale: authentic, and out of its window) only to log
 * how far the clocks differ and to tell the client why, under its session
 * id; nothing in it is acted on.
 */
static void
handle_stale(struct dev *d, struct dev_peer *p, struct dev_req_box *q)
{
	struct np_box_msg *m = NULL;
	char sid[NP_SR_SID_LEN + 1] = "", rt[DEV_TAG_MAX + 1], off[48];
	char why[160];
	int64_t now = np_now_real_ms(), o;

	if (np_box_open_stale(d->key, p->pk, q->from, q->mid, q->box, q->len,
	    now, &m) != NP_OK) {
		np_info("box %s from %s: stale (queued too long, or the clocks "
		    "of client and device differ)", q->mid, q->from);
		return;
	}
	o = np_box_clock_off_ms(m, now);
	np_box_off_text(o, off, sizeof(off));
	np_warn("box %s from %s: its timestamp is %s this device's clock "
	    "(allowed: %d s ahead, %lld s behind): %s", q->mid, q->from, off,
	    NP_BOX_SKEW_MS / 1000,
	    (long long)m->ttl + NP_BOX_SKEW_MS / 1000, o > 0 ?
	    "the clocks differ: check NTP on both" :
	    "queued too long, or the clocks differ: check NTP on both");
	if (strcmp(m->type, "np.session.req") == 0 &&
	    dev_req_sid(m->body, sid) == NP_OK) {
		dev_body_rt(m->body, rt);
		snprintf(why, sizeof(why), "stale request: its timestamp is %s "
		    "the device's clock", off);
		refuse(d, p, rt, sid, why);
	}
	np_box_msg_free(m);
}

/*
 * A request inside its window whose timestamp is still well off our
 * clock: the client will likely refuse our answer (its window is the
 * same, seen from the other side), so say why here too.
 */
static void
clock_check(const struct dev_req_box *q, const struct np_box_msg *m)
{
	int64_t o = np_box_clock_off_ms(m, np_now_real_ms());
	char off[48];

	if (o > -CLOCK_WARN_MS && o < CLOCK_WARN_MS) {
		return;
	}
	np_box_off_text(o, off, sizeof(off));
	np_warn("box %s from %s: its timestamp is %s this device's clock "
	    "(inside the window, but the client may refuse the answer): %s",
	    q->mid, q->from, off, o > 0 ? "the clocks differ: check NTP on "
	    "both" : "queued, or the clocks differ: check NTP on both");
}

/* Open a box from p (whose key is known) and answer it. */
static void
ctl_handle(struct dev *d, struct dev_peer *p, struct dev_req_box *q)
{
	struct np_box_msg *m = NULL;
	int r;

	r = np_box_open(d->key, p->pk, q->from, q->mid, q->box, q->len,
	    np_now_real_ms(), p->allowed ? d->replay : NULL, &m);
	if (r == NP_ERR_CRYPTO && !q->retried && (p->verified_at == 0 ||
	    np_now_mono_ms() - p->verified_at > RELOOKUP_MS)) {
		q->retried = 1;
		peer_wait(d, p, q); /* maybe a rotated key: look it up */
		return;
	}
	if (r == NP_ERR_STALE && p->allowed) {
		handle_stale(d, p, q);
	} else if (r == NP_ERR_REPLAY) {
		np_info("box %s from %s: seen before, not answered again",
		    q->mid, q->from);
	} else if (r != NP_OK) {
		np_warn_r(r, "dropped box %s from %s", q->mid, q->from);
	} else if (strcmp(m->type, "np.session.req") == 0) {
		clock_check(q, m);
		handle_req(d, p, m);
	} else if (strcmp(m->type, "np.ping") == 0) {
		handle_ping(d, p, m);
	} else {
		np_info("dropped box %s from %s: type %s", q->mid, q->from,
		    m->type);
	}
	np_box_msg_free(m);
	req_ack(d, q);
	req_free(d, q);
}

/* ---- the connection ---- */

static void
drop_log(struct dev *d, const char *from, const char *why)
{
	struct dev_cp *cp = d->cp;
	uint64_t now = np_now_mono_ms();

	cp->dropped++;
	if (cp->drop_log_at != 0 && now - cp->drop_log_at < DROP_LOG_MS) {
		return;
	}
	np_info("dropped a box from %.64s (%s)%s", from, why,
	    cp->dropped > 1 ? " and others" : "");
	cp->drop_log_at = now;
	cp->dropped = 0;
}

/* Strangers: one refusal a second each (a burst of ten), and
 * STRANGER_RATE a second in all. */
static int
stranger_ok(struct dev_cp *cp, struct dev_peer *p)
{
	uint64_t now = np_now_mono_ms();

	if (p->credit_at == 0) {
		p->credit = STRANGER_BURST_MS;
	} else {
		p->credit += now - p->credit_at;
		if (p->credit > STRANGER_BURST_MS) {
			p->credit = STRANGER_BURST_MS;
		}
	}
	p->credit_at = now;
	if (p->credit < STRANGER_COST_MS) {
		return 0;
	}
	if (now - cp->window_at >= 1000) {
		cp->window_at = now;
		cp->window_n = 0;
	}
	if (cp->window_n >= STRANGER_RATE) {
		return 0;
	}
	cp->window_n++;
	p->credit -= STRANGER_COST_MS;
	return 1;
}

static void
push_cb(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct dev *d = arg;
	struct dev_cp *cp = d->cp;
	struct dev_peer *p = NULL;
	struct dev_req_box *q;

	if (!np_ident_valid(m->from) || m->box_len > NP_BOX_MAX ||
	    !np_mid_valid(m->mid) || cp->nreqs >= REQS_MAX ||
	    (p = peer_get(d, m->from)) == NULL) {
		drop_log(d, np_ident_valid(m->from) ? m->from : "?",
		    p == NULL ? "busy" : "malformed");
		(void)np_cpc_ack(c, m->seq);
		return;
	}
	if (!p->allowed && !stranger_ok(cp, p)) {
		drop_log(d, m->from, "not allowed, rate-limited");
		(void)np_cpc_ack(c, m->seq);
		return;
	}
	if ((q = calloc(1, sizeof(*q) + m->box_len)) == NULL) {
		drop_log(d, m->from, "out of memory");
		(void)np_cpc_ack(c, m->seq);
		return;
	}
	cp->nreqs++;
	q->seq = m->seq;
	snprintf(q->from, sizeof(q->from), "%s", m->from);
	snprintf(q->mid, sizeof(q->mid), "%s", m->mid);
	q->len = m->box_len;
	memcpy(q->box, m->box, m->box_len);
	if (p->have_pk && p->rid == 0 && p->whead == NULL) {
		ctl_handle(d, p, q);
	} else {
		peer_wait(d, p, q);
	}
}

static void
state_cb(struct np_cpc *c, int up, int err, int stopped, void *arg)
{
	struct dev *d = arg;
	const char *detail = np_cpc_detail(c), *host, *port;

	if (d->stopping) {
		return;
	}
	if (up) {
		np_cpc_server(c, &host, &port);
		np_info("connected to %s port %s as %s", host, port,
		    np_key_name(d->key));
		d->cp->down = 0;
		dev_mem_idle(d);
		return;
	}
	/* One warning per outage; failed attempts after it at debug. */
	np_log(d->cp->down && !stopped ? NP_LOG_DEBUG : NP_LOG_WARN, __func__,
	    err, "control plane %s%s%s", stopped ? "stopped" :
	    "down (sessions carry on; reconnecting)",
	    *detail != '\0' ? ": " : "", detail);
	d->cp->down = 1;
	if (stopped) {
		np_error("cannot go on without the control plane: exiting");
		d->exit_code = 1;
		np_ev_stop(d->ev);
	}
}

int
dev_ctl_start(struct dev *d)
{
	struct np_cpc_conf conf;
	int r;

	if ((d->cp = calloc(1, sizeof(*d->cp))) == NULL) {
		return NP_ERR_ALLOC;
	}
	memset(&conf, 0, sizeof(conf));
	conf.servers = &d->conf->server;
	conf.fingerprint = d->conf->server_fingerprint;
	conf.key = d->key;
	conf.reconnect = 1;
	conf.keepalive_ms = (int)d->conf->keepalive * 1000;
	if ((r = np_cpc_new(d->ev, &conf, &d->cpc)) != NP_OK) {
		return r;
	}
	np_cpc_set_state_cb(d->cpc, state_cb, d);
	np_cpc_set_msg_cb(d->cpc, push_cb, d);
	if ((r = np_cpc_monitor(d->cpc, NULL, NULL)) != NP_OK ||
	    (r = np_cpc_start(d->cpc)) != NP_OK) {
		return r;
	}
	return NP_OK;
}

void
dev_ctl_stop(struct dev *d)
{
	if (d->cpc != NULL) {
		np_cpc_stop(d->cpc);
	}
}

void
dev_ctl_free(struct dev *d)
{
	struct dev_cp *cp = d->cp;
	struct dev_peer *p;
	size_t i;

	dev_ctl_stop(d);
	if (cp != NULL) {
		for (i = 0; i < PEER_BUCKETS; i++) {
			while ((p = cp->peers[i]) != NULL) {
				cp->peers[i] = p->next;
				if (p->rid != 0) {
					np_cpc_cancel(d->cpc, p->rid);
				}
				peer_drop_waiters(d, p, 0);
				free(p);
			}
		}
	}
	np_cpc_free(d->cpc);
	d->cpc = NULL;
	free(cp);
	d->cp = NULL;
}
