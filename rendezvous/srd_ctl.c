/*
 * The control plane: one np-server connection (reconnecting, monitor
 * re-issued), srd.open boxes in, srd.session / srd.error boxes out;
 * srd.probe in, srd.probeinfo (a probe ticket, docs/PROTOCOL.md
 * "Probes") out.
 *
 * A pushed box is checked against Allow by its server-recorded sender
 * before anything else; others are acknowledged and dropped.  Requesters'
 * keys are pinned on first use in KnownIdentities and kept in memory: a
 * key pinned in the file is used as it is, a key not pinned yet is looked
 * up (asynchronously; boxes of that sender wait behind the lookup), and a
 * box that does not decrypt with a key not looked up lately triggers one
 * fresh lookup (the sender may have rotated its key).  Each box is acked
 * after its reply has been queued, or when it is refused.
 *
 * Replies (srd.session, srd.error) are sent with the srd.open's reply tag
 * "rt" (docs/PROTOCOL.md, "tag"), so they reach the one client process
 * that asked; an srd.open without rt gets an untagged reply.  After
 * SIGTERM nothing is answered: the control-plane connection is closed.
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
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "msg.h"
#include "pin.h"
#include "srd.h"
#include "srproto.h"

#define PEER_BUCKETS 1024
#define PEERS_MAX 65536
#define REQS_MAX 1024		 /* boxes waiting for a key lookup */
#define RELOOKUP_MS 60000	 /* a key this fresh is not looked up again */
#define REFUSE_LOG_MS 10000	 /* refused senders: one log line per */
#define CPC_KEEPALIVE_MS 30000

struct srd_req {
	struct srd_req *next;
	int64_t seq;
	char from[NP_IDENT_MAX + 1];
	char mid[NP_MID_LEN + 1];
	int retried;
	size_t len;
	uint8_t box[];
};

struct srd_peer {
	struct srd_peer *next;
	struct srd *d;
	char id[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
	int have_pk;
	uint64_t verified_at; /* 0: from the pins file, not looked up */
	uint32_t rid;	      /* lookup in flight */
	struct srd_req *whead, **wtail;
};

struct srd_cp {
	struct srd_peer *peers[PEER_BUCKETS];
	size_t npeers;
	size_t nreqs;
	uint64_t refuse_at;
	unsigned refused;
	int down; /* an outage was logged */
};

static void ctl_handle(struct srd *, struct srd_peer *, struct srd_req *);

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

/* Forget peers with nothing in flight (Allow * with many senders). */
static void
peers_evict(struct srd_cp *cp)
{
	struct srd_peer **pp, *p;
	size_t i;

	for (i = 0; i < PEER_BUCKETS; i++) {
		for (pp = &cp->peers[i]; (p = *pp) != NULL;) {
			if (p->rid == 0 && p->whead == NULL) {
				*pp = p->next;
				free(p);
				cp->npeers--;
			} else {
				pp = &p->next;
			}
		}
	}
}

static struct srd_peer *
peer_get(struct srd *d, const char *id)
{
	struct srd_cp *cp = d->cp;
	struct srd_peer *p;
	size_t h = peer_hash(id);

	for (p = cp->peers[h]; p != NULL; p = p->next) {
		if (strcmp(p->id, id) == 0) {
			return p;
		}
	}
	if (cp->npeers >= PEERS_MAX) {
		peers_evict(cp);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return NULL;
	}
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->d = d;
	p->wtail = &p->whead;
	p->have_pk = np_pins_get(d->pins, id, p->pk) == NP_OK;
	p->next = cp->peers[h];
	cp->peers[h] = p;
	cp->npeers++;
	return p;
}

/* ---- requests ---- */

static void
req_ack(struct srd *d, struct srd_req *q)
{
	if (d->cpc != NULL) {
		(void)np_cpc_ack(d->cpc, q->seq);
	}
}

static void
req_free(struct srd *d, struct srd_req *q)
{
	if (q != NULL) {
		d->cp->nreqs--;
		free(q);
	}
}

/* Drop every waiting box of p; acked (refused) or left for the server
 * to push again (ack == 0). */
static void
peer_drop_waiters(struct srd *d, struct srd_peer *p, int ack)
{
	struct srd_req *q;

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
peer_run_waiters(struct srd *d, struct srd_peer *p)
{
	struct srd_req *q;

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
pin_key(struct srd *d, struct srd_peer *p, const struct np_cpc_lookup_res *lr)
{
	int r, changed = 0, had;
	uint8_t old[NP_PK_LEN];

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
	memcpy(p->pk, lr->pk, NP_PK_LEN);
	p->have_pk = 1;
	p->verified_at = np_now_mono_ms();
	return NP_OK;
}

static void
lookup_cb(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	struct srd_peer *p = arg;
	struct srd *d = p->d;
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

/* Look p up (one lookup at a time per peer). */
static void
peer_lookup(struct srd *d, struct srd_peer *p)
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
peer_wait(struct srd *d, struct srd_peer *p, struct srd_req *q)
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

/* Seal body as type for p and send it tagged rt ("": untagged). */
static int
ctl_send(struct srd *d, struct srd_peer *p, const char *rt, const char *type,
    const char *session, struct json_object *body)
{
	char mid[NP_MID_LEN + 1];
	struct np_buf *box;
	int r;

	if ((box = np_buf_new(NP_BOX_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	r = np_box_seal(d->key, p->pk, p->id, type, session, body,
	    SRD_REPLY_TTL, np_now_real_ms(), NULL, box, mid);
	if (r == NP_OK) {
		r = np_cpc_send_tag(d->cpc, p->id, mid, SRD_REPLY_TTL,
		    *rt != '\0' ? rt : NULL, np_buf_ptr(box), np_buf_len(box),
		    send_cb, NULL, NULL);
	}
	np_buf_free(box);
	return r;
}

static void
ctl_error(struct srd *d, struct srd_peer *p, const char *rt,
    const char *reason)
{
	struct json_object *body, *s;
	int r = NP_ERR_ALLOC;

	if ((body = json_object_new_object()) != NULL &&
	    (s = json_object_new_string(reason)) != NULL) {
		json_object_object_add(body, "reason", s);
		r = ctl_send(d, p, rt, "srd.error", NULL, body);
	}
	json_object_put(body);
	if (r != NP_OK) {
		np_warn_r(r, "cannot send srd.error to %s", p->id);
	}
}

static void
ctl_session(struct srd *d, struct srd_peer *p, const struct srd_open *o)
{
	const char *peer = o->peer[0] != '\0' ? o->peer : NULL;
	struct np_sr_session sr;
	struct json_object *body = NULL;
	const char *why = NULL;
	int r;

	if ((r = srd_data_open(d, p->id, peer, &sr, &why)) != NP_OK) {
		np_info("refused a session to %s: %s", p->id,
		    why != NULL ? why : np_strerror(r));
		ctl_error(d, p, o->rt, why != NULL ? why : "internal error");
		return;
	}
	if ((r = np_sr_session_to_json(&sr, &body)) == NP_OK) {
		/* The one call: the body holds the tokens (srproto.h). */
		np_json_wipe_on_free(body);
		r = ctl_send(d, p, o->rt, "srd.session", sr.sid, body);
	}
	json_object_put(body);
	if (r != NP_OK) {
		np_warn_r(r, "cannot send srd.session to %s", p->id);
		srd_data_cancel(d, sr.sid);
	} else {
		np_debug("session %s opened for %s%s%s", sr.sid, p->id,
		    peer != NULL ? " peer " : "", peer != NULL ? peer : "");
	}
	sodium_memzero(&sr, sizeof(sr));
}

/* srd.probe: where to probe us, with a fresh ticket. */
static void
ctl_probeinfo(struct srd *d, struct srd_peer *p, const struct srd_open *o)
{
	struct json_object *body = NULL;
	char ticket[NP_SR_TICKET_B64_LEN + 1];
	const char *host;
	uint16_t port;
	int64_t expires;
	int r;

	if ((r = srd_data_probeinfo(d, &host, &port, ticket, &expires)) !=
	    NP_OK) {
		ctl_error(d, p, o->rt, "no probes here");
		return;
	}
	r = NP_ERR_ALLOC;
	if ((body = json_object_new_object()) != NULL &&
	    json_object_object_add(body, "host",
	    json_object_new_string(host)) == 0 &&
	    json_object_object_add(body, "port",
	    json_object_new_int(port)) == 0 &&
	    json_object_object_add(body, "ticket",
	    json_object_new_string(ticket)) == 0 &&
	    json_object_object_add(body, "expires",
	    json_object_new_int64(expires)) == 0) {
		r = ctl_send(d, p, o->rt, "srd.probeinfo", NULL, body);
	}
	json_object_put(body);
	sodium_memzero(ticket, sizeof(ticket));
	if (r != NP_OK) {
		np_warn_r(r, "cannot send srd.probeinfo to %s", p->id);
	} else {
		np_debug("probe ticket for %s", p->id);
	}
}

/* A string member that fits cap bytes (with its NUL), no NUL inside. */
static const char *
open_str(struct json_object *v, size_t cap)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string)) {
		return NULL;
	}
	s = json_object_get_string(v);
	if (s == NULL || (size_t)json_object_get_string_len(v) >= cap ||
	    strlen(s) != (size_t)json_object_get_string_len(v)) {
		return NULL;
	}
	return s;
}

int
srd_open_parse(struct json_object *body, struct srd_open *o)
{
	struct json_object *v;
	const char *s;
	int r = NP_OK;

	memset(o, 0, sizeof(*o));
	if (body == NULL) {
		return NP_OK;
	}
	if (!json_object_is_type(body, json_type_object)) {
		return NP_ERR_INVALID;
	}
	if (json_object_object_get_ex(body, "rt", &v)) {
		if ((s = open_str(v, sizeof(o->rt))) != NULL &&
		    np_tag_valid(s)) {
			snprintf(o->rt, sizeof(o->rt), "%s", s);
		} else {
			r = NP_ERR_INVALID;
		}
	}
	if (json_object_object_get_ex(body, "peer", &v)) {
		if ((s = open_str(v, sizeof(o->peer))) != NULL &&
		    np_ident_valid(s)) {
			snprintf(o->peer, sizeof(o->peer), "%s", s);
		} else {
			r = NP_ERR_INVALID;
		}
	}
	json_object_object_foreach(body, k, val) {
		(void)val;
		if (strcmp(k, "rt") != 0 && strcmp(k, "peer") != 0) {
			r = NP_ERR_INVALID;
		}
	}
	return r;
}

/* Open a box from p (whose key is known) and answer it. */
static void
ctl_handle(struct srd *d, struct srd_peer *p, struct srd_req *q)
{
	struct np_box_msg *m = NULL;
	struct srd_open o;
	int r, probe;

	r = np_box_open(d->key, p->pk, q->from, q->mid, q->box, q->len,
	    np_now_real_ms(), d->replay, &m);
	if (r == NP_ERR_CRYPTO && !q->retried && (p->verified_at == 0 ||
	    np_now_mono_ms() - p->verified_at > RELOOKUP_MS)) {
		q->retried = 1;
		peer_wait(d, p, q); /* maybe a rotated key: look it up */
		return;
	}
	if (r != NP_OK) {
		if (r == NP_ERR_REPLAY) {
			np_debug("box %s from %s: seen before", q->mid, q->from);
		} else {
			np_warn_r(r, "dropped box %s from %s", q->mid,
			    q->from);
		}
		goto done;
	}
	probe = strcmp(m->type, "srd.probe") == 0;
	if (!probe && strcmp(m->type, "srd.open") != 0) {
		np_info("dropped box %s from %s: type %s", q->mid, q->from,
		    m->type);
		goto done;
	}
	if (srd_open_parse(m->body, &o) != NP_OK ||
	    (probe && o.peer[0] != '\0')) {
		np_info("box %s from %s: bad %s body", q->mid, q->from,
		    m->type);
		ctl_error(d, p, o.rt, "bad request");
	} else if (d->stopping) {
		ctl_error(d, p, o.rt, "shutting down");
	} else if (probe) {
		ctl_probeinfo(d, p, &o);
	} else {
		ctl_session(d, p, &o);
	}
 done:
	np_box_msg_free(m);
	req_ack(d, q);
	req_free(d, q);
}

/* ---- the connection ---- */

static void
refuse_log(struct srd *d, const char *from)
{
	struct srd_cp *cp = d->cp;
	uint64_t now = np_now_mono_ms();

	cp->refused++;
	if (cp->refuse_at != 0 && now - cp->refuse_at < REFUSE_LOG_MS) {
		return;
	}
	np_info("ignored a box from %.64s (not allowed)%s", from,
	    cp->refused > 1 ? " and others" : "");
	cp->refuse_at = now;
	cp->refused = 0;
}

static void
push_cb(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct srd *d = arg;
	struct srd_cp *cp = d->cp;
	struct srd_peer *p;
	struct srd_req *q;

	if (d->stopping) {
		return;
	}
	if (!np_ident_valid(m->from) || !srd_conf_allowed(d->conf, m->from)) {
		refuse_log(d, m->from);
		(void)np_cpc_ack(c, m->seq);
		return;
	}
	if (cp->nreqs >= REQS_MAX || m->box_len > NP_BOX_MAX ||
	    !np_mid_valid(m->mid) || (p = peer_get(d, m->from)) == NULL ||
	    (q = calloc(1, sizeof(*q) + m->box_len)) == NULL) {
		np_warn("dropped box %.40s from %s: busy", m->mid, m->from);
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
	struct srd *d = arg;
	const char *detail = np_cpc_detail(c), *host, *port;

	if (d->stopping) {
		return;
	}
	if (up) {
		np_cpc_server(c, &host, &port);
		np_info("connected to %s port %s as %s", host, port,
		    np_key_name(d->key));
		d->cp->down = 0;
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
		srd_begin_shutdown(d);
	}
}

int
srd_ctl_start(struct srd *d)
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
	conf.keepalive_ms = CPC_KEEPALIVE_MS;
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
srd_ctl_stop(struct srd *d)
{
	if (d->cpc != NULL) {
		np_cpc_stop(d->cpc);
	}
}

void
srd_ctl_free(struct srd *d)
{
	struct srd_cp *cp = d->cp;
	struct srd_peer *p;
	size_t i;

	srd_ctl_stop(d);
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
