/*
 * libFuzzer target: np-deviced's np.session.req body (device/dev_req.c).
 *   np_json_parse() on the input, then dev_req_sid(), dev_body_rt() and
 *   dev_req_parse(); an accepted request goes through dev_req_check()
 *   against a fixed deviced.conf, is written back as a body and must
 *   parse to the same struct.  A tunnel ("mode":"tunnel") that passes
 *   the check has a PermitOpen target and a relay cipher (none only with
 *   PermitPlainTunnel); a valid host has none of the bytes a path, an
 *   option or a bracket needs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "dev.h"
#include "err.h"
#include "frame.h"
#include "key.h"
#include "srec.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONF                                                               \
	"IdentityFile /k\nServer a:1\nServerFingerprint SHA256:"           \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n"                    \
	"DeviceName default web\n"                                         \
	"Allow @alice users=alice,deploy\n"                                \
	"Allow @ops users=*\n"                                             \
	"Sshd 127.0.0.1:2222\n"                                            \
	"RendezvousHost 127.0.0.1 sr.example\n"                            \
	"PermitOpen localhost:2222 db.internal:5432 [::1]:*\n"             \
	"MaxSessions 2\n"

/* Parsed once, read-only afterwards; reachable until exit. */
static struct dev_conf *conf;

static const struct dev_conf *
fuzz_conf(void)
{
	char err[256];

	if (conf != NULL) {
		return conf;
	}
	if ((conf = calloc(1, sizeof(*conf))) == NULL ||
	    dev_conf_init(conf) != NP_OK ||
	    dev_conf_parse(conf, CONF, strlen(CONF), "fuzz", err,
	    sizeof(err)) != NP_OK) {
		abort();
	}
	return conf;
}

static void
put(struct json_object *o, const char *k, struct json_object *v)
{
	if (v == NULL || json_object_object_add(o, k, v) != 0) {
		abort();
	}
}

/* The body a client would send for q (what dev_req_parse read). */
static struct json_object *
body_of(const struct dev_req *q)
{
	struct json_object *o, *sr, *enc;
	char tok[64], kx[NP_PK_B64_MAX], pub[NP_SSHKEY_B64_LEN + 1];
	char line[sizeof(pub) + 16];

	sodium_bin2base64(tok, sizeof(tok), q->sr.token, NP_SR_TOKEN_LEN,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (np_b64_encode(q->kx, DEV_KX_LEN, kx, sizeof(kx)) != NP_OK ||
	    np_sshkey_ed25519_b64(q->pubkey, pub, sizeof(pub)) != NP_OK) {
		abort();
	}
	memcpy(line, "ssh-ed25519 ", 12);
	memcpy(line + 12, pub, sizeof(pub));
	if ((o = json_object_new_object()) == NULL ||
	    (sr = json_object_new_object()) == NULL) {
		abort();
	}
	put(sr, "host", json_object_new_string(q->sr.host));
	put(sr, "port", json_object_new_int(q->sr.port));
	put(sr, "token", json_object_new_string(tok));
	put(o, "sid", json_object_new_string(q->sid));
	put(o, "device", json_object_new_string(q->device));
	if (q->tunnel) {
		put(o, "mode", json_object_new_string("tunnel"));
		put(o, "host", json_object_new_string(q->host));
	} else {
		put(o, "user", json_object_new_string(q->user));
		put(o, "pubkey", json_object_new_string(line));
	}
	put(o, "port", json_object_new_int64(q->port));
	put(o, "sr", sr);
	put(o, "kx", json_object_new_string(kx));
	if (q->enc) {
		/* One name: picked whatever the CPU; "x": none in common. */
		if ((enc = json_object_new_array()) == NULL ||
		    json_object_array_add(enc, json_object_new_string(
		    q->cipher != NP_SREC_NONE ? np_srec_cipher_name(q->cipher) :
		    "x")) != 0) {
			abort();
		}
		put(o, "enc", enc);
	}
	if (q->rt[0] != '\0') {
		put(o, "rt", json_object_new_string(q->rt));
	}
	return o;
}

static int
same(const struct dev_req *a, const struct dev_req *b)
{
	return strcmp(a->sid, b->sid) == 0 &&
	    strcmp(a->device, b->device) == 0 &&
	    strcmp(a->user, b->user) == 0 && a->port == b->port &&
	    strcmp(a->sr.host, b->sr.host) == 0 && a->sr.port == b->sr.port &&
	    memcmp(a->sr.token, b->sr.token, NP_SR_TOKEN_LEN) == 0 &&
	    memcmp(a->pubkey, b->pubkey, sizeof(a->pubkey)) == 0 &&
	    memcmp(a->kx, b->kx, sizeof(a->kx)) == 0 &&
	    strcmp(a->rt, b->rt) == 0 && a->tunnel == b->tunnel &&
	    strcmp(a->host, b->host) == 0 && a->enc == b->enc &&
	    a->cipher == b->cipher;
}

static void
roundtrip(const struct dev_req *q)
{
	struct json_object *o = body_of(q);
	struct dev_req t;

	memset(&t, 0, sizeof(t));
	if (dev_req_parse(o, &t) != NP_OK || !same(&t, q)) {
		abort();
	}
	sodium_memzero(&t, sizeof(t));
	json_object_put(o);
}

/* What a parsed tunnel request holds: a host, nothing to read as a
 * path, an option or a bracketed literal; a cipher name we know. */
static int
tunnel_ok(const struct dev_req *q)
{
	size_t n = strlen(q->host);

	return n > 0 && n <= DEV_TUNNEL_HOST_MAX && q->host[0] != '-' &&
	    strpbrk(q->host, "/[] \t\r\n@%;") == NULL && q->user[0] == '\0' &&
	    (q->cipher == NP_SREC_NONE || q->cipher == NP_SREC_AES256GCM ||
	    q->cipher == NP_SREC_CHACHA20POLY1305);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct dev_conf *c = fuzz_conf();
	struct json_object *o = NULL;
	char sid[NP_SR_SID_LEN + 1], rt[DEV_TAG_MAX + 1];
	struct dev_req q;
	const char *why;

	if (np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	if (dev_req_sid(o, sid) == NP_OK && strlen(sid) != NP_SR_SID_LEN) {
		abort();
	}
	dev_body_rt(o, rt);
	if (rt[0] != '\0' && !np_tag_valid(rt)) {
		abort();
	}
	/* Pre-fill: parse must either fill q completely or leave it. */
	memset(&q, 0, sizeof(q));
	if (dev_req_parse(o, &q) == NP_OK) {
		if (strcmp(q.rt, rt) != 0 || q.port < 1 || q.port > 65535 ||
		    q.sr.port == 0 || strlen(q.sid) != NP_SR_SID_LEN ||
		    !dev_devname_valid(q.device)) {
			abort();
		}
		if (q.tunnel && !tunnel_ok(&q)) {
			abort();
		}
		why = dev_req_check(c, "@alice", &q, 0);
		if (why == NULL && ((q.enc && q.cipher == NP_SREC_NONE) ||
		    (q.tunnel && ((!q.enc && !c->permit_plain_tunnel) ||
		    !dev_conf_permits(c, q.host, q.port))))) {
			abort(); /* fail closed */
		}
		(void)dev_req_check(c, "@ops", &q, 1);
		if (dev_req_check(c, "@mallory", &q, 0) == NULL ||
		    dev_req_check(c, "@ops", &q, 2) == NULL) {
			abort(); /* fail closed */
		}
		roundtrip(&q);
		sodium_memzero(&q, sizeof(q));
	}
	json_object_put(o);
	return 0;
}
