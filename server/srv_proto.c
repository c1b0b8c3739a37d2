/*
 * The protocol on one connection (docs/PROTOCOL.md): hello, auth or
 * enroll, then rid-correlated requests, and paced pushes of queued boxes
 * to monitoring connections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "frame.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "msg.h"
#include "pin.h"
#include "srv_int.h"

/* ---- building messages ---- */

static int
j_str(struct json_object *o, const char *key, const char *v)
{
	struct json_object *s;

	if ((s = json_object_new_string(v)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if (json_object_object_add(o, key, s) != 0) {
		json_object_put(s);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
j_int(struct json_object *o, const char *key, int64_t v)
{
	struct json_object *i;

	if ((i = json_object_new_int64(v)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if (json_object_object_add(o, key, i) != 0) {
		json_object_put(i);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
j_b64(struct json_object *o, const char *key, const uint8_t *p, size_t n)
{
	size_t len =
	    sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s;
	int r;

	if ((s = malloc(len)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_b64_encode(p, n, s, len)) == NP_OK) {
		r = j_str(o, key, s);
	}
	free(s);
	return r;
}

/*
 * Base64 of a sealed box for a push, by table, into out (4 * ceil(n / 3)
 * characters, no NUL): the box is ciphertext the server stores and
 * forwards as it came, no secret, and libsodium's constant-time encoder
 * is several times slower (docs/BENCHMARKS.md, np-server scale).
 */
static size_t
b64_box(const uint8_t *p, size_t n, char *out)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, k = 0;
	uint32_t w;

	for (i = 0; i + 3 <= n; i += 3) {
		w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[k++] = abc[w >> 18];
		out[k++] = abc[(w >> 12) & 63];
		out[k++] = abc[(w >> 6) & 63];
		out[k++] = abc[w & 63];
	}
	if (i < n) {
		w = (uint32_t)p[i] << 16 |
		    (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		out[k++] = abc[w >> 18];
		out[k++] = abc[(w >> 12) & 63];
		out[k++] = i + 1 < n ? abc[(w >> 6) & 63] : '=';
		out[k++] = '=';
	}
	return k;
}

/* A new {"t":type}; NULL when out of memory. */
static struct json_object *
j_msg(const char *type)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		return NULL;
	}
	if (j_str(o, "t", type) != NP_OK) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Send o (consumed), closing the connection if it is not well formed. */
static int
send_msg(struct conn *c, struct json_object *o, int r)
{
	if (r == NP_OK && o == NULL) {
		r = NP_ERR_ALLOC;
	}
	if (r == NP_OK && np_msg_validate(o, NP_MSG_TO_CLIENT, NULL) != NP_OK) {
		np_error("refusing to send a malformed message: %s",
			 json_object_to_json_string(o));
		r = NP_ERR_INTERNAL;
	}
	if (r == NP_OK) {
		r = srv_conn_send(c, o);
	} else {
		srv_conn_close(c, NP_LOG_ERROR, "cannot build a message: %s",
			       np_strerror(r));
	}
	json_object_put(o);
	return r;
}

static int
reply_error(struct conn *c, int64_t rid, const char *code, const char *msg)
{
	struct json_object *o = j_msg("error");
	int r = NP_OK;

	np_debug("%s %s: rid %lld: error '%s' (%s)", c->peer, c->id,
		 (long long)rid, code, msg);
	if (o != NULL && (r = j_int(o, "rid", rid)) == NP_OK &&
	    (r = j_str(o, "code", code)) == NP_OK) {
		r = j_str(o, "msg", msg);
	}
	return send_msg(c, o, r);
}

static struct json_object *
result_new(int64_t rid)
{
	struct json_object *o = j_msg("result");

	if (o != NULL && j_int(o, "rid", rid) != NP_OK) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
reply_ok(struct conn *c, int64_t rid)
{
	return send_msg(c, result_new(rid), NP_OK);
}

/* The error code a store failure maps to. */
static const char *
store_code(int r)
{
	switch (r) {
	case NP_ERR_NOT_FOUND:
		return "not_found";
	case NP_ERR_REVOKED:
		return "revoked";
	case NP_ERR_TOO_BIG:
		return "too_big";
	case NP_ERR_INVALID:
		return "proto";
	default:
		return "internal";
	}
}

static int
reply_store_error(struct conn *c, int64_t rid, int r, const char *what)
{
	if (r != NP_ERR_NOT_FOUND && r != NP_ERR_REVOKED) {
		np_error_r(r, "%s for %s", what, c->id);
	}
	return reply_error(c, rid, store_code(r),
			   r == NP_ERR_NOT_FOUND ? "no such identity"
			   : r == NP_ERR_REVOKED ? "identity revoked"
						 : np_strerror(r));
}

/* ---- connection start ---- */

int
srv_proto_hello(struct conn *c)
{
	struct json_object *o;
	int r;

	if ((r = np_tls_channel_binding(c->tls, c->cb)) != NP_OK) {
		srv_conn_close(c, NP_LOG_WARN, "no channel binding: %s",
			       np_strerror(r));
		return r;
	}
	randombytes_buf(c->nonce, sizeof(c->nonce));
	o = j_msg("hello");
	if (o != NULL && (r = j_int(o, "v", 1)) == NP_OK) {
		r = j_b64(o, "nonce", c->nonce, sizeof(c->nonce));
	}
	return send_msg(c, o, r);
}

static void
auth_fail(struct conn *c, const char *id, const char *code, const char *msg,
	  const char *why)
{
	np_info("auth failed: %s %s: %s", c->peer, id, why);
	srv_conn_fail(c, code, msg);
}

static int
welcome(struct conn *c, const char *id, const uint8_t pk[NP_PK_LEN])
{
	struct json_object *o;
	int r;

	snprintf(c->id, sizeof(c->id), "%s", id);
	memcpy(c->pk, pk, NP_PK_LEN);
	c->state = C_READY;
	np_ev_timer_del(c->srv->ev, c->timer);
	c->timer = 0;
	srv_conn_unauth_release(c);
	srv_conn_ident_add(c);
	if (c->dead) {
		return NP_ERR_CLOSED;
	}
	o = j_msg("welcome");
	r = o != NULL ? j_str(o, "id", id) : NP_ERR_ALLOC;
	return send_msg(c, o, r);
}

/* Verify sig by pk over the message build() put into a scratch buffer. */
static int
verify_in(const uint8_t pk[NP_PK_LEN], const uint8_t sig[NP_SIG_LEN],
	  struct np_buf *m)
{
	return np_sig_verify(pk, np_buf_ptr(m), np_buf_len(m), sig);
}

static int
do_auth(struct conn *c, struct json_object *obj)
{
	const char *id = np_msg_str(obj, "id");
	uint8_t sig[NP_SIG_LEN], pk[NP_PK_LEN];
	struct np_buf *m = NULL;
	size_t n;
	int state, r;

	if (np_msg_b64(obj, "sig", sig, sizeof(sig), &n) != NP_OK ||
	    n != sizeof(sig) || id == NULL) {
		srv_conn_fail(c, "proto", "bad auth message");
		return NP_ERR_PROTO;
	}
	r = np_store_identity_get(c->srv->store, id, pk, &state);
	if (r == NP_ERR_NOT_FOUND) {
		auth_fail(c, id, "auth", "authentication failed",
			  "unknown identity");
		return NP_ERR_AUTH;
	}
	if (r != NP_OK) {
		np_error_r(r, "identity lookup for %s", id);
		srv_conn_fail(c, "internal", "storage error");
		return r;
	}
	if ((m = np_buf_new(512)) == NULL ||
	    (r = np_auth_message(c->nonce, c->cb, id, m)) != NP_OK ||
	    (r = verify_in(pk, sig, m)) != NP_OK) {
		np_buf_free(m);
		auth_fail(c, id, "auth", "authentication failed",
			  "bad signature");
		return NP_ERR_AUTH;
	}
	np_buf_free(m);
	if (state != NP_STORE_ACTIVE) {
		auth_fail(c, id, "revoked", "identity revoked",
			  "identity revoked");
		return NP_ERR_REVOKED;
	}
	np_info("auth ok: %s %s", c->peer, id);
	return welcome(c, id, pk);
}

static int
enroll_store(struct conn *c, const char *id, const char *token,
	     const uint8_t pk[NP_PK_LEN])
{
	uint8_t hash[crypto_hash_sha256_BYTES];
	int r;

	crypto_hash_sha256(hash, (const uint8_t *)token, strlen(token));
	if ((r = srv_batch_write(c)) == NP_OK) {
		r = np_store_enroll(c->srv->store, id, hash, pk,
				    np_now_real_ms());
	}
	sodium_memzero(hash, sizeof(hash));
	if (r == NP_ERR_TOKEN) {
		auth_fail(c, id, "token",
			  "enrollment token invalid, expired "
			  "or already used",
			  "enroll: bad token");
	} else if (r == NP_ERR_EXISTS) {
		auth_fail(c, id, "exists", "identity already enrolled",
			  "enroll: name is bound");
	} else if (r != NP_OK) {
		np_error_r(r, "enroll %s", id);
		srv_conn_fail(c, "internal", "storage error");
	}
	return r;
}

static int
do_enroll(struct conn *c, struct json_object *obj)
{
	const char *id = np_msg_str(obj, "id");
	const char *token = np_msg_str(obj, "token");
	uint8_t sig[NP_SIG_LEN], pk[NP_PK_LEN];
	char fp[NP_FP_MAX];
	struct np_buf *m = NULL;
	size_t n1, n2;
	int r;

	if (id == NULL || token == NULL ||
	    np_msg_b64(obj, "sig", sig, sizeof(sig), &n1) != NP_OK ||
	    np_msg_b64(obj, "pk", pk, sizeof(pk), &n2) != NP_OK ||
	    n1 != sizeof(sig) || n2 != sizeof(pk)) {
		srv_conn_fail(c, "proto", "bad enroll message");
		return NP_ERR_PROTO;
	}
	if ((m = np_buf_new(512)) == NULL ||
	    (r = np_enroll_message(c->nonce, c->cb, pk, id, m)) != NP_OK ||
	    (r = verify_in(pk, sig, m)) != NP_OK) {
		np_buf_free(m);
		auth_fail(c, id, "auth", "authentication failed",
			  "enroll: bad signature");
		return NP_ERR_AUTH;
	}
	np_buf_free(m);
	if ((r = enroll_store(c, id, token, pk)) != NP_OK) {
		return r;
	}
	if (np_fingerprint(pk, sizeof(pk), fp, sizeof(fp)) != NP_OK) {
		snprintf(fp, sizeof(fp), "?");
	}
	np_info("enrolled: %s %s key %s", c->peer, id, fp);
	return welcome(c, id, pk);
}

/* ---- requests ---- */

static int
rot_array(const struct np_store_rot *rot, size_t n, struct json_object **out)
{
	struct json_object *a, *e;
	size_t i;
	int r = NP_OK;

	if ((a = json_object_new_array()) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < n && r == NP_OK; i++) {
		if ((e = json_object_new_object()) == NULL) {
			r = NP_ERR_ALLOC;
			break;
		}
		if ((r = j_b64(e, "old", rot[i].old_pk, 32)) != NP_OK ||
		    (r = j_b64(e, "new", rot[i].new_pk, 32)) != NP_OK ||
		    (r = j_b64(e, "sig", rot[i].sig, 64)) != NP_OK ||
		    json_object_array_add(a, e) != 0) {
			json_object_put(e);
			r = r != NP_OK ? r : NP_ERR_ALLOC;
		}
	}
	if (r != NP_OK) {
		json_object_put(a);
		return r;
	}
	*out = a;
	return NP_OK;
}

static int
req_lookup(struct conn *c, struct json_object *obj, int64_t rid)
{
	struct np_store_rot rot[NP_STORE_ROT_MAX];
	const char *id = np_msg_str(obj, "id");
	struct json_object *o, *a = NULL;
	uint8_t pk[NP_PK_LEN];
	size_t n;
	int state, r;

	r = np_store_identity_get(c->srv->store, id, pk, &state);
	if (r == NP_OK && state != NP_STORE_ACTIVE) {
		r = NP_ERR_REVOKED;
	}
	if (r == NP_OK) {
		r = np_store_rot_get(c->srv->store, id, rot, NP_STORE_ROT_MAX,
				     &n);
	}
	if (r != NP_OK) {
		return reply_store_error(c, rid, r, "lookup");
	}
	if ((o = result_new(rid)) == NULL) {
		return send_msg(c, NULL, NP_ERR_ALLOC);
	}
	if ((r = j_str(o, "id", id)) == NP_OK &&
	    (r = j_b64(o, "pk", pk, sizeof(pk))) == NP_OK &&
	    (r = rot_array(rot, n, &a)) == NP_OK &&
	    json_object_object_add(o, "rot", a) != 0) {
		json_object_put(a);
		r = NP_ERR_ALLOC;
	}
	return send_msg(c, o, r);
}

static void
route_ident(struct srv *s, struct ident *id, const char *tag, int rescan)
{
	struct conn *c, *next;

	for (c = id->conns; c != NULL; c = next) {
		next = c->inext;
		if (!c->monitoring || (tag != NULL && strcmp(c->tag, tag) != 0)) {
			continue;
		}
		/* Across instances seq order is not commit order: a box
		 * committed elsewhere can carry a seq below what was pushed
		 * already, so fetch from the start (what is in flight is
		 * skipped by srv_proto_pump). */
		if (rescan && !np_store_seq_ordered(s->store)) {
			c->push_after = 0;
		}
		c->more = 1;
		srv_proto_pump(c);
	}
}

void
srv_proto_route(struct srv *s, const char *name, const char *tag, int rescan)
{
	struct ident *id, *next;

	if (name != NULL) {
		if ((id = srv_htab_get(s->idents, name, strlen(name))) !=
		    NULL) {
			route_ident(s, id, tag, rescan);
		}
		return;
	}
	for (id = s->ident_list; id != NULL; id = next) {
		next = id->next;
		route_ident(s, id, NULL, rescan);
	}
}

static int
req_send(struct conn *c, struct json_object *obj, int64_t rid)
{
	const struct srv_conf *cf = c->srv->conf;
	const char *to = np_msg_str(obj, "to"), *mid = np_msg_str(obj, "mid");
	const char *tag = np_msg_str(obj, "tag");
	struct np_store_box b;
	int64_t ttl, dropped = 0, now = np_now_real_ms();
	int dup = 0, r;

	memset(&b, 0, sizeof(b));
	if (to == NULL || mid == NULL ||
	    np_msg_int(obj, "ttl", &ttl) != NP_OK || ttl < 1 ||
	    (tag != NULL && !np_tag_valid(tag))) {
		return reply_error(c, rid, "proto", "bad send message");
	}
	if (ttl > cf->max_ttl) {
		ttl = cf->max_ttl;
	}
	/* One decode buffer for the server (single-threaded; the store
	 * copies the box before np_store_box_put returns). */
	if (c->srv->boxbuf == NULL &&
	    (c->srv->boxbuf = malloc(NP_STORE_BOX_MAX)) == NULL) {
		return reply_error(c, rid, "internal", "out of memory");
	}
	b.box = c->srv->boxbuf;
	if (np_msg_b64(obj, "box", b.box, NP_STORE_BOX_MAX, &b.box_len) !=
	    NP_OK) {
		return reply_error(c, rid, "too_big", "box too big");
	}
	snprintf(b.recipient, sizeof(b.recipient), "%s", to);
	snprintf(b.sender, sizeof(b.sender), "%s", c->id);
	snprintf(b.mid, sizeof(b.mid), "%s", mid);
	snprintf(b.tag, sizeof(b.tag), "%s", tag != NULL ? tag : "");
	b.created_ms = now;
	b.expires_ms = now + ttl * 1000;
	if ((r = srv_batch_write(c)) == NP_OK) {
		r = np_store_box_put(c->srv->store, &b, cf->queue_max, &dup,
				     &dropped);
	}
	if (r != NP_OK) {
		return reply_store_error(c, rid, r, "send");
	}
	if (dropped > 0) {
		np_warn("queue of %s full (QueueMax %ld): dropped %lld oldest "
			"box(es)",
			to, cf->queue_max, (long long)dropped);
	}
	np_debug("%s -> %s: mid %s, %zu bytes, ttl %lld%s%s%s", c->id, to,
		 mid, b.box_len, (long long)ttl, b.tag[0] != '\0' ? ", tag " : "",
		 b.tag, dup ? " (duplicate)" : "");
	if ((r = reply_ok(c, rid)) != NP_OK) {
		return r;
	}
	if (!dup) {
		srv_proto_route(c->srv, to, b.tag, 0);
	}
	return NP_OK;
}

/*
 * Monitor, with an optional tag: from then on the connection is pushed
 * only the boxes whose tag equals it (untagged ones when it has none).
 * Repeating it with the same tag is harmless; another tag is refused.
 */
static int
req_monitor(struct conn *c, struct json_object *obj, int64_t rid)
{
	const char *tag = np_msg_str(obj, "tag");
	int r;

	if (tag == NULL) {
		tag = "";
	} else if (!np_tag_valid(tag)) {
		return reply_error(c, rid, "proto", "bad tag");
	}
	if (c->monitoring && strcmp(c->tag, tag) != 0) {
		return reply_error(c, rid, "proto",
				   "already monitoring with another tag");
	}
	if (!c->monitoring) {
		c->inflight = calloc(SRV_INFLIGHT_MAX, sizeof(*c->inflight));
		if (c->inflight == NULL) {
			return reply_error(c, rid, "internal", "out of memory");
		}
		c->ninflight = 0;
		c->monitoring = 1;
		c->more = 1;
		c->push_after = 0;
		snprintf(c->tag, sizeof(c->tag), "%s", tag);
		np_debug("%s %s: monitoring%s%s", c->peer, c->id,
			 tag[0] != '\0' ? " with tag " : "", tag);
	}
	if ((r = reply_ok(c, rid)) != NP_OK) {
		return r;
	}
	srv_proto_pump(c);
	return NP_OK;
}

static int
req_ping(struct conn *c, struct json_object *obj, int64_t rid)
{
	struct json_object *o = result_new(rid);

	return send_msg(
	    c, o, o != NULL ? j_int(o, "ts", np_now_real_ms()) : NP_ERR_ALLOC);
}

/* After a rotation every connection of the identity uses the new key. */
static void
rotate_conns(struct conn *c, const uint8_t pk[NP_PK_LEN])
{
	struct conn *o;

	for (o = c->ident != NULL ? c->ident->conns : c; o != NULL;
	     o = o->inext) {
		memcpy(o->pk, pk, NP_PK_LEN);
	}
	memcpy(c->pk, pk, NP_PK_LEN);
}

static int
rotate_verify(const char *id, const struct np_store_rot *rot,
	      const uint8_t nsig[NP_SIG_LEN])
{
	struct np_buf *m;
	int r;

	if ((m = np_buf_new(512)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_rot_message(id, rot->old_pk, rot->new_pk, m)) == NP_OK &&
	    (r = verify_in(rot->old_pk, rot->sig, m)) == NP_OK) {
		r = verify_in(rot->new_pk, nsig, m);
	}
	np_buf_free(m);
	return r;
}

static int
req_rotate(struct conn *c, struct json_object *obj, int64_t rid)
{
	struct np_store_rot rot;
	uint8_t nsig[NP_SIG_LEN];
	char fp[NP_FP_MAX];
	size_t n1, n2, n3;
	int state, r;

	if (np_msg_b64(obj, "pk", rot.new_pk, 32, &n1) != NP_OK ||
	    np_msg_b64(obj, "sig", rot.sig, 64, &n2) != NP_OK ||
	    np_msg_b64(obj, "nsig", nsig, 64, &n3) != NP_OK || n1 != 32 ||
	    n2 != 64 || n3 != 64) {
		return reply_error(c, rid, "proto", "bad rotate message");
	}
	r = np_store_identity_get(c->srv->store, c->id, rot.old_pk, &state);
	if (r == NP_OK && state != NP_STORE_ACTIVE) {
		r = NP_ERR_REVOKED;
	}
	if (r != NP_OK) {
		return reply_store_error(c, rid, r, "rotate");
	}
	if (sodium_memcmp(rot.old_pk, rot.new_pk, 32) == 0) {
		return reply_error(c, rid, "proto", "new key equals the old");
	}
	if (rotate_verify(c->id, &rot, nsig) != NP_OK) {
		np_info("rotate refused: %s %s: bad signature", c->peer, c->id);
		return reply_error(c, rid, "auth",
				   "rotation signatures do not verify");
	}
	if ((r = srv_batch_write(c)) == NP_OK) {
		r = np_store_rotate(c->srv->store, c->id, &rot,
				    np_now_real_ms());
	}
	if (r == NP_ERR_KEY_CHANGED) {
		return reply_error(c, rid, "auth", "key changed meanwhile");
	}
	if (r != NP_OK) {
		return reply_store_error(c, rid, r, "rotate");
	}
	rotate_conns(c, rot.new_pk);
	if (np_fingerprint(rot.new_pk, 32, fp, sizeof(fp)) != NP_OK) {
		snprintf(fp, sizeof(fp), "?");
	}
	np_info("rotated: %s %s new key %s", c->peer, c->id, fp);
	return reply_ok(c, rid);
}

/* Forget seq in c's window; 1 when it was there. */
static int
inflight_has(const struct conn *c, int64_t seq)
{
	size_t i;

	for (i = 0; i < c->ninflight; i++) {
		if (c->inflight[i] == seq) {
			return 1;
		}
	}
	return 0;
}

static int
inflight_drop(struct conn *c, int64_t seq)
{
	size_t i;

	for (i = 0; i < c->ninflight; i++) {
		if (c->inflight[i] == seq) {
			c->inflight[i] = c->inflight[--c->ninflight];
			return 1;
		}
	}
	return 0;
}

/*
 * An ack deletes the box seq of the identity, whichever of its
 * connections it was pushed on (or none: an ack for a box of the
 * identity that this connection never saw is accepted and deletes it
 * all the same; one for no box is ignored).  Every other connection of
 * the identity that had seq in flight forgets it and may push on, so a
 * process that never acks cannot stall another.
 */
static int
do_ack(struct conn *c, struct json_object *obj)
{
	struct conn *o, *next;
	int64_t seq;
	int r;

	if (np_msg_int(obj, "seq", &seq) != NP_OK) {
		srv_conn_fail(c, "proto", "bad ack");
		return NP_ERR_PROTO;
	}
	(void)inflight_drop(c, seq);
	if ((r = srv_batch_write(c)) == NP_OK) {
		r = np_store_box_ack(c->srv->store, c->id, seq);
	}
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		np_error_r(r, "ack %lld for %s", (long long)seq, c->id);
	}
	for (o = c->ident != NULL ? c->ident->conns : NULL; o != NULL;
	     o = next) {
		next = o->inext;
		if (o != c && o->monitoring && inflight_drop(o, seq)) {
			srv_proto_pump(o);
		}
	}
	srv_proto_pump(c);
	return NP_OK;
}

typedef int req_fn(struct conn *, struct json_object *, int64_t);

static const struct {
	const char *type;
	req_fn *fn;
} requests[] = {
    {"lookup", req_lookup}, {"send", req_send},	    {"monitor", req_monitor},
    {"ping", req_ping},	    {"rotate", req_rotate},
};

static int
ready_frame(struct conn *c, struct json_object *obj, const char *type)
{
	int64_t rid;
	size_t i;

	if (strcmp(type, "ack") == 0) {
		return do_ack(c, obj);
	}
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		if (strcmp(type, requests[i].type) != 0) {
			continue;
		}
		if (np_msg_int(obj, "rid", &rid) != NP_OK) {
			break;
		}
		return requests[i].fn(c, obj, rid);
	}
	srv_conn_fail(c, "proto", "unexpected message");
	return NP_ERR_PROTO;
}

int
srv_proto_frame(struct conn *c, struct json_object *obj)
{
	const char *type = NULL;
	int r;

	if ((r = np_msg_validate(obj, NP_MSG_TO_SERVER, &type)) != NP_OK) {
		srv_conn_fail(c, "proto", "invalid message");
		return r;
	}
	if (c->state == C_READY) {
		return ready_frame(c, obj, type);
	}
	if (c->state != C_AUTH) {
		return NP_ERR_PROTO;
	}
	if (strcmp(type, "auth") == 0) {
		return do_auth(c, obj);
	}
	if (strcmp(type, "enroll") == 0) {
		return do_enroll(c, obj);
	}
	srv_conn_fail(c, "proto", "authenticate first");
	return NP_ERR_PROTO;
}

/* ---- pushes ---- */

/* 1 when s is a message id: 32 lowercase hex digits. */
static int
mid_ok(const char *s)
{
	size_t i;

	for (i = 0; i < NP_STORE_MID_MAX; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[i] == '\0';
}

/*
 * The push {"t":"msg","seq":S,"from":F,"mid":M,"ts":T,"box":B[,"tag":G]}
 * is written straight into the output buffer, not built as a JSON tree:
 * every value is an integer or a string that needs no escaping (checked
 * here: an identity, 32 hex digits, a tag, base64), and for a 4 KiB box
 * json-c's tree, copy and escaping of '/' cost more than the rest of the
 * push together.
 */
static int
push_box(struct conn *c, const struct np_store_box *b)
{
	char pre[256], post[64];
	size_t b64len = (b->box_len + 2) / 3 * 4, len;
	uint8_t *dst;
	int n1, n2, r;

	if (!np_ident_valid(b->sender) || !mid_ok(b->mid) ||
	    (b->tag[0] != '\0' && !np_tag_valid(b->tag)) || b->box_len == 0 ||
	    b->box_len > NP_STORE_BOX_MAX) {
		np_error("box %lld for %s from the store is malformed",
			 (long long)b->seq, c->id);
		srv_conn_fail(c, "internal", "storage error");
		return NP_ERR_INTERNAL;
	}
	n1 = snprintf(pre, sizeof(pre),
		      "{\"t\":\"msg\",\"seq\":%lld,\"from\":\"%s\",\"mid\":"
		      "\"%s\",\"ts\":%lld,\"box\":\"",
		      (long long)b->seq, b->sender, b->mid,
		      (long long)b->created_ms);
	n2 = b->tag[0] != '\0'
		 ? snprintf(post, sizeof(post), "\",\"tag\":\"%s\"}", b->tag)
		 : snprintf(post, sizeof(post), "\"}");
	if (n1 <= 0 || (size_t)n1 >= sizeof(pre) || n2 <= 0 ||
	    (size_t)n2 >= sizeof(post)) {
		srv_conn_close(c, NP_LOG_ERROR, "cannot build a push");
		return NP_ERR_INTERNAL;
	}
	len = (size_t)n1 + b64len + (size_t)n2;
	if ((r = srv_conn_frame(c, len, &dst)) != NP_OK) {
		return r;
	}
	memcpy(dst, pre, (size_t)n1);
	(void)b64_box(b->box, b->box_len, (char *)dst + n1);
	memcpy(dst + (size_t)n1 + b64len, post, (size_t)n2);
	c->inflight[c->ninflight++] = b->seq;
	c->push_after = b->seq;
	return NP_OK;
}

void
srv_proto_pump(struct conn *c)
{
	struct np_store_box *v;
	size_t want, n, i;
	int r;

	while (!c->dead && c->monitoring && c->more && c->state == C_READY &&
	       c->ninflight < SRV_INFLIGHT_MAX &&
	       srv_conn_outlen(c) < SRV_OUT_HWM) {
		want = SRV_INFLIGHT_MAX - c->ninflight;
		if (want > SRV_FETCH_BATCH) {
			want = SRV_FETCH_BATCH;
		}
		r = np_store_box_fetch(c->srv->store, c->id, c->tag,
				       c->push_after, want, np_now_real_ms(),
				       &v, &n);
		if (r != NP_OK) {
			np_error_r(r, "fetching boxes for %s", c->id);
			srv_conn_fail(c, "internal", "storage error");
			return;
		}
		for (i = 0; i < n && !c->dead; i++) {
			if (inflight_has(c, v[i].seq)) {
				c->push_after = v[i].seq; /* a rescan */
				continue;
			}
			if (push_box(c, &v[i]) != NP_OK) {
				break;
			}
		}
		np_store_boxes_free(v, n);
		if (n < want) {
			c->more = 0;
		}
	}
	srv_conn_flush(c);
}

/* ---- revocation ---- */

static void
check_ident(struct srv *s, struct ident *id)
{
	uint8_t pk[NP_PK_LEN];
	struct conn *c, *next;
	int state, r;

	r = np_store_identity_get(s->store, id->name, pk, &state);
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		np_error_r(r, "re-checking %s", id->name);
		return;
	}
	for (c = id->conns; c != NULL; c = next) {
		next = c->inext;
		if (r == NP_ERR_NOT_FOUND || state != NP_STORE_ACTIVE) {
			srv_conn_fail(c, "revoked", "identity revoked");
		} else if (sodium_memcmp(pk, c->pk, sizeof(pk)) != 0) {
			srv_conn_fail(c, "auth", "identity key changed");
		}
	}
}

void
srv_proto_check_revoked(struct srv *s)
{
	struct ident *id, *next;

	for (id = s->ident_list; id != NULL; id = next) {
		next = id->next;
		check_ident(s, id);
	}
}
