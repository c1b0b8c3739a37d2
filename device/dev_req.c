/*
 * The pure parts of a session: parsing np.session.req, deciding on it,
 * and building the np.session.ok / np.session.err / np.pong bodies
 * (docs/PROTOCOL.md, "Sessions between a client and a device").
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <sodium.h>

#include "dev.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "msg.h"
#include "spool.h"
#include "srec.h"
#include "sshkey.h"
#include "srproto.h"

#define SR_TOKEN_B64_LEN 43
#define KX_B64_LEN 44
#define PUBKEY_PFX NP_SSHKEY_ED25519 " "

/* np.pong features: what this device offers. */
static const char *const features_spool[] = { "ssh", "spool", "tunnel",
    "enc" };
static const char *const features_ak[] = { "ssh", "authorized_keys",
    "tunnel", "enc" };

static int
get_str(struct json_object *o, const char *key, const char **s, size_t *len)
{
	struct json_object *m;

	if (!json_object_object_get_ex(o, key, &m) ||
	    !json_object_is_type(m, json_type_string)) {
		return NP_ERR_INVALID;
	}
	*s = json_object_get_string(m);
	*len = (size_t)json_object_get_string_len(m);
	if (*s == NULL || strlen(*s) != *len) { /* no NUL inside */
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
get_int(struct json_object *o, const char *key, long min, long max, long *v)
{
	struct json_object *m;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &m) ||
	    !json_object_is_type(m, json_type_int)) {
		return NP_ERR_INVALID;
	}
	errno = 0;
	n = json_object_get_int64(m);
	if (errno != 0 || n < min || n > max) {
		return NP_ERR_INVALID;
	}
	*v = (long)n;
	return NP_OK;
}

int
dev_req_sid(struct json_object *body, char sid[NP_SR_SID_LEN + 1])
{
	const char *s;
	size_t len;

	if (body == NULL || !json_object_is_type(body, json_type_object) ||
	    get_str(body, "sid", &s, &len) != NP_OK || !np_sid_valid(s)) {
		return NP_ERR_INVALID;
	}
	memcpy(sid, s, NP_SR_SID_LEN + 1);
	return NP_OK;
}

/* Host: printable ASCII without spaces, 1..255 bytes. */
static int
host_valid(const char *h, size_t len)
{
	size_t i;

	if (len < 1 || len >= sizeof(((struct np_sr_endpoint *)0)->host)) {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (h[i] <= 0x20 || h[i] >= 0x7f) {
			return 0;
		}
	}
	return 1;
}

/* 43 base64url characters decoding to the 32-byte token. */
static int
token_decode(const char *s, size_t len, uint8_t token[NP_SR_TOKEN_LEN])
{
	uint8_t tmp[NP_SR_TOKEN_LEN + 8];
	const char *end = NULL;
	size_t n = 0;
	int r = NP_ERR_INVALID;

	if (len != SR_TOKEN_B64_LEN || memchr(s, '=', len) != NULL ||
	    !np_b64_alphabet_ok(s, len, 1)) {
		return NP_ERR_INVALID;
	}
	if (sodium_base642bin(tmp, sizeof(tmp), s, len, NULL, &n, &end,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
	    end == s + len && n == NP_SR_TOKEN_LEN) {
		memcpy(token, tmp, NP_SR_TOKEN_LEN);
		r = NP_OK;
	}
	sodium_memzero(tmp, sizeof(tmp));
	return r;
}

static int
parse_sr(struct json_object *o, struct np_sr_endpoint *ep)
{
	const char *s;
	size_t len;
	long port;

	if (!json_object_is_type(o, json_type_object) ||
	    get_str(o, "host", &s, &len) != NP_OK || !host_valid(s, len)) {
		return NP_ERR_INVALID;
	}
	memcpy(ep->host, s, len + 1);
	if (get_int(o, "port", 1, 65535, &port) != NP_OK) {
		return NP_ERR_INVALID;
	}
	ep->port = (uint16_t)port;
	if (get_str(o, "token", &s, &len) != NP_OK) {
		return NP_ERR_INVALID;
	}
	return token_decode(s, len, ep->token);
}

static int
parse_names(struct json_object *body, struct dev_req *t)
{
	const char *s;
	size_t len;

	if (get_str(body, "device", &s, &len) != NP_OK ||
	    !dev_devname_valid(s)) {
		return NP_ERR_INVALID;
	}
	memcpy(t->device, s, len + 1);
	return NP_OK;
}

/*
 * "ssh-ed25519 BASE64", nothing before or after (no comment), the blob
 * exact and canonical, the key a valid Ed25519 point of large order.
 */
static int
parse_pubkey(struct json_object *body, uint8_t pk[NP_SSHKEY_PK_LEN])
{
	const char *s;
	size_t len, plen = sizeof(PUBKEY_PFX) - 1;

	if (get_str(body, "pubkey", &s, &len) != NP_OK ||
	    len != plen + NP_SSHKEY_B64_LEN ||
	    memcmp(s, PUBKEY_PFX, plen) != 0 ||
	    np_sshkey_ed25519_from_b64(s + plen, len - plen, pk) != NP_OK ||
	    crypto_core_ed25519_is_valid_point(pk) != 1) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

void
dev_body_rt(struct json_object *body, char rt[DEV_TAG_MAX + 1])
{
	const char *s;
	size_t len;

	rt[0] = '\0';
	if (body == NULL || !json_object_is_type(body, json_type_object) ||
	    !json_object_object_get_ex(body, "rt", NULL) ||
	    get_str(body, "rt", &s, &len) != NP_OK || len > DEV_TAG_MAX ||
	    !np_tag_valid(s)) {
		return;
	}
	memcpy(rt, s, len + 1);
}

int
dev_cipher_pick(const char *const *names, size_t n, int have_aes)
{
	size_t i;
	int c, first = NP_SREC_NONE;

	for (i = 0; i < n; i++) {
		c = np_srec_cipher_parse(names[i]);
		if (c == NP_SREC_CHACHA20POLY1305 && !have_aes) {
			return c;
		}
		if (first == NP_SREC_NONE) {
			first = c;
		}
	}
	return first;
}

/* "enc": absent, or an array of 1..DEV_ENC_MAX cipher names. */
static int
parse_enc(struct json_object *body, struct dev_req *t)
{
	struct json_object *a, *e;
	const char *names[DEV_ENC_MAX];
	size_t i, n;

	if (!json_object_object_get_ex(body, "enc", &a)) {
		return NP_OK;
	}
	if (!json_object_is_type(a, json_type_array) ||
	    (n = json_object_array_length(a)) == 0 || n > DEV_ENC_MAX) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string) ||
		    strlen(json_object_get_string(e)) !=
		    (size_t)json_object_get_string_len(e)) {
			return NP_ERR_INVALID; /* no NUL inside a name */
		}
		names[i] = json_object_get_string(e);
	}
	t->enc = 1;
	t->cipher = dev_cipher_pick(names, n, np_srec_cpu_has_aes());
	return NP_OK;
}

/*
 * "enc_handoff" (ssh sessions only): where the records may end, ssh's
 * own transport carrying the rest.  One that is not an integer within
 * NP_SREC_HANDOFF_MIN..MAX is not agreed to (records all the way), and
 * a tunnel never hands off: its payload may be plain text.
 */
static void
parse_handoff(struct json_object *body, struct dev_req *t)
{
	struct json_object *v;
	int64_t h;

	t->handoff = 0;
	if (t->tunnel || !t->enc ||
	    !json_object_object_get_ex(body, "enc_handoff", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		return;
	}
	h = json_object_get_int64(v);
	if (h >= NP_SREC_HANDOFF_MIN && h <= NP_SREC_HANDOFF_MAX) {
		t->handoff = (uint32_t)h;
	}
}

/* "mode": absent or "ssh" (user, pubkey), or "tunnel" (host). */
static int
parse_mode(struct json_object *body, struct dev_req *t)
{
	const char *s;
	size_t len;

	if (json_object_object_get_ex(body, "mode", NULL)) {
		if (get_str(body, "mode", &s, &len) != NP_OK) {
			return NP_ERR_INVALID;
		}
		if (strcmp(s, "tunnel") == 0) {
			t->tunnel = 1;
		} else if (strcmp(s, "ssh") != 0) {
			return NP_ERR_INVALID;
		}
	}
	if (t->tunnel) {
		if (get_str(body, "host", &s, &len) != NP_OK ||
		    !np_tunnel_host_valid(s, len)) {
			return NP_ERR_INVALID;
		}
		memcpy(t->host, s, len + 1);
		return NP_OK;
	}
	if (get_str(body, "user", &s, &len) != NP_OK) {
		return NP_ERR_INVALID;
	}
	/* Too long: kept empty, refused as "bad user name". */
	if (len <= NP_USER_MAX) {
		memcpy(t->user, s, len + 1);
	}
	return parse_pubkey(body, t->pubkey);
}

int
dev_req_parse(struct json_object *body, struct dev_req *q)
{
	struct dev_req t;
	struct json_object *m;
	const char *s;
	size_t len;
	int r = NP_ERR_INVALID;

	memset(&t, 0, sizeof(t));
	if (dev_req_sid(body, t.sid) != NP_OK ||
	    parse_names(body, &t) != NP_OK ||
	    parse_mode(body, &t) != NP_OK ||
	    get_int(body, "port", 1, 65535, &t.port) != NP_OK ||
	    !json_object_object_get_ex(body, "sr", &m) ||
	    parse_sr(m, &t.sr) != NP_OK ||
	    get_str(body, "kx", &s, &len) != NP_OK || len != KX_B64_LEN ||
	    np_b64_decode_exact(s, t.kx, DEV_KX_LEN) != NP_OK ||
	    parse_enc(body, &t) != NP_OK) {
		goto out;
	}
	parse_handoff(body, &t);
	dev_body_rt(body, t.rt);
	*q = t;
	r = NP_OK;
 out:
	sodium_memzero(&t, sizeof(t));
	return r;
}

static int
user_allowed(const struct dev_allow *a, const char *user)
{
	size_t i;

	if (a->any_user) {
		return 1;
	}
	for (i = 0; i < a->nusers; i++) {
		if (strcmp(a->users[i], user) == 0) {
			return 1;
		}
	}
	return 0;
}

static int
rv_host_allowed(const struct dev_conf *c, const char *host)
{
	size_t i;

	if (c->rv_host.n == 0) {
		return 1;
	}
	for (i = 0; i < c->rv_host.n; i++) {
		if (strcasecmp(c->rv_host.v[i], host) == 0) {
			return 1;
		}
	}
	return 0;
}

const char *
dev_req_check(const struct dev_conf *c, const char *from,
    const struct dev_req *q, size_t nsessions)
{
	const struct dev_allow *a;

	if ((a = dev_conf_allow(c, from)) == NULL) {
		return "identity not allowed";
	}
	if (!dev_conf_serves(c, q->device)) {
		return "unknown device name";
	}
	if (q->enc && q->cipher == NP_SREC_NONE) {
		return "no relay cipher in common";
	}
	if (q->tunnel) {
		if (!q->enc && !c->permit_plain_tunnel) {
			return "a tunnel needs relay encryption";
		}
		if (!dev_conf_permits(c, q->host, q->port)) {
			return "tunnel target not permitted by the device's "
			    "PermitOpen";
		}
		return rv_host_allowed(c, q->sr.host) ? (nsessions >=
		    (size_t)c->max_sessions ? "too many sessions" : NULL) :
		    "rendezvous host not permitted";
	}
	if (!np_user_valid(q->user)) {
		return "bad user name";
	}
	if (!user_allowed(a, q->user)) {
		return "user not allowed";
	}
	if (q->port != 22 && q->port != c->sshd_port) {
		return "port not permitted";
	}
	if (!rv_host_allowed(c, q->sr.host)) {
		return "rendezvous host not permitted";
	}
	if (nsessions >= (size_t)c->max_sessions) {
		return "too many sessions";
	}
	return NULL;
}

/* ---- reply bodies ---- */

static int
add(struct json_object *o, const char *key, struct json_object *v)
{
	if (v == NULL) {
		return NP_ERR_ALLOC;
	}
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
add_strings(struct json_object *o, const char *key, const char *const *v,
    size_t n)
{
	struct json_object *a, *s;
	size_t i;

	if ((a = json_object_new_array()) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < n; i++) {
		if ((s = json_object_new_string(v[i])) == NULL ||
		    json_object_array_add(a, s) != 0) {
			json_object_put(s);
			json_object_put(a);
			return NP_ERR_ALLOC;
		}
	}
	return add(o, key, a);
}

int
dev_body_ok(const char *sid, int64_t expires, char *const *hostkeys,
    size_t nhostkeys, const uint8_t kx[DEV_KX_LEN], int cipher,
    uint32_t handoff, struct json_object **out)
{
	struct json_object *o;
	char b64[NP_PK_B64_MAX];
	int r;

	*out = NULL;
	if (sid == NULL || !np_sid_valid(sid) || expires <= 0) {
		return NP_ERR_INVALID;
	}
	if ((r = np_b64_encode(kx, DEV_KX_LEN, b64, sizeof(b64))) != NP_OK) {
		return r;
	}
	if ((o = json_object_new_object()) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = add(o, "sid", json_object_new_string(sid))) != NP_OK ||
	    (r = add(o, "expires", json_object_new_int64(expires))) != NP_OK ||
	    (nhostkeys > 0 && (r = add_strings(o, "hostkeys",
	    (const char *const *)hostkeys, nhostkeys)) != NP_OK) ||
	    (r = add(o, "kx", json_object_new_string(b64))) != NP_OK ||
	    (cipher != NP_SREC_NONE && (r = add(o, "enc",
	    json_object_new_string(np_srec_cipher_name(cipher)))) !=
	    NP_OK) ||
	    (cipher != NP_SREC_NONE && handoff != 0 && (r = add(o,
	    "enc_handoff", json_object_new_int64(handoff))) != NP_OK)) {
		json_object_put(o);
		return r;
	}
	*out = o;
	return NP_OK;
}

int
dev_body_err(const char *sid, const char *reason, struct json_object **out)
{
	struct json_object *o;
	int r;

	*out = NULL;
	if ((o = json_object_new_object()) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = add(o, "sid", json_object_new_string(sid != NULL ? sid :
	    ""))) != NP_OK ||
	    (r = add(o, "reason", json_object_new_string(reason))) != NP_OK) {
		json_object_put(o);
		return r;
	}
	*out = o;
	return NP_OK;
}

/* One {"sr","host","port","ticket"} of a ping's "probe". */
static int
probe_one(struct json_object *o, struct dev_probe_tgt *t)
{
	uint8_t raw[NP_SR_TICKET_LEN];
	const char *s;
	size_t len;
	long port;

	if (!json_object_is_type(o, json_type_object) ||
	    json_object_object_length(o) != 4 ||
	    get_str(o, "sr", &s, &len) != NP_OK || len > NP_IDENT_MAX ||
	    !np_ident_valid(s)) {
		return NP_ERR_INVALID;
	}
	memcpy(t->sr, s, len + 1);
	if (get_str(o, "host", &s, &len) != NP_OK || !host_valid(s, len)) {
		return NP_ERR_INVALID;
	}
	memcpy(t->host, s, len + 1);
	if (get_int(o, "port", 1, 65535, &port) != NP_OK) {
		return NP_ERR_INVALID;
	}
	t->port = (uint16_t)port;
	if (get_str(o, "ticket", &s, &len) != NP_OK ||
	    np_sr_ticket_decode(s, len, raw) != NP_OK) {
		return NP_ERR_INVALID;
	}
	memcpy(t->ticket, s, len + 1);
	return NP_OK;
}

/* 1 for an IPv4 or IPv6 address literal. */
static int
addr_literal(const char *h)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, h, &a4) == 1 ||
	    inet_pton(AF_INET6, h, &a6) == 1;
}

int
dev_ping_probes(const struct dev_conf *c, struct json_object *ping,
    struct dev_probe_tgt *out, size_t *n)
{
	struct json_object *a;
	struct dev_probe_tgt t;
	size_t i, j, len;

	*n = 0;
	if (ping == NULL || !json_object_is_type(ping, json_type_object) ||
	    !json_object_object_get_ex(ping, "probe", &a)) {
		return NP_OK;
	}
	if (!json_object_is_type(a, json_type_array) ||
	    (len = json_object_array_length(a)) > DEV_PROBE_MAX) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < len; i++) {
		if (probe_one(json_object_array_get_idx(a, i), &t) != NP_OK) {
			*n = 0;
			return NP_ERR_INVALID;
		}
		for (j = 0; j < *n; j++) {
			if (strcmp(out[j].sr, t.sr) == 0) {
				*n = 0;
				return NP_ERR_INVALID;
			}
		}
		if (rv_host_allowed(c, t.host) && addr_literal(t.host)) {
			out[(*n)++] = t;
		}
	}
	return NP_OK;
}

/* The device asked for in a ping body: "" when none. */
static int
ping_device(struct json_object *ping, const char **dev)
{
	size_t len;

	*dev = "";
	if (ping == NULL) {
		return NP_OK;
	}
	if (!json_object_is_type(ping, json_type_object)) {
		return NP_ERR_INVALID;
	}
	if (!json_object_object_get_ex(ping, "device", NULL)) {
		return NP_OK;
	}
	if (get_str(ping, "device", dev, &len) != NP_OK ||
	    (len > 0 && !dev_devname_valid(*dev))) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
dev_body_pong(const struct dev_conf *c, struct json_object *ping,
    struct json_object **out)
{
	struct json_object *o;
	const char *dev;
	int r;

	*out = NULL;
	if ((r = ping_device(ping, &dev)) != NP_OK) {
		return r;
	}
	if (*dev == '\0' && c->device_name.n > 0) {
		dev = c->device_name.v[0];
	} else if (!dev_conf_serves(c, dev)) {
		dev = "";
	}
	if ((o = json_object_new_object()) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = add(o, "device", json_object_new_string(dev))) != NP_OK ||
	    (r = add_strings(o, "devices",
	    (const char *const *)c->device_name.v, c->device_name.n)) !=
	    NP_OK ||
	    (r = add(o, "version", json_object_new_string(DEV_VERSION))) !=
	    NP_OK ||
	    (r = add_strings(o, "features",
	    c->keymode == DEV_KEYMODE_SPOOL ? features_spool : features_ak,
	    4)) != NP_OK) {
		json_object_put(o);
		return r;
	}
	*out = o;
	return NP_OK;
}
