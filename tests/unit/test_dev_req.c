/*
 * np-deviced requests: parsing np.session.req bodies (ssh and tunnel
 * modes, the offered relay ciphers), the decision on a request (allowed,
 * not allowed, wrong user, bad user name, unknown device, wrong port,
 * PermitOpen, relay encryption, rendezvous host, too many sessions), the
 * cipher the device picks, and the reply bodies.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "dev.h"
#include "err.h"
#include "srec.h"

#define SID "0123456789abcdef0123456789abcdef"
/* 32 bytes 0x01.. as base64url (no padding) and 32 bytes 0xaa base64. */
#define TOKEN "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
#define KX "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="
/* A real ssh-keygen Ed25519 public key (comment dropped) and its key. */
#define PUBB64                                                             \
	"AAAAC3NzaC1lZDI1NTE5AAAAIJ/7UqfjmMa+9LjIXwWmrJhS0yZgSD2WCuLg+4NXe8zM"
#define PUBKEY "ssh-ed25519 " PUBB64
#define PUBHEX                                                             \
	"9ffb52a7e398c6bef4b8c85f05a6ac9852d32660483d960ae2e0fb83577bcccc"
#define RT "0123456789abcdefghijklmnopqrstuv" /* 32, the longest */

#define CONF                                                               \
	"IdentityFile /k\nServer a:1\nServerFingerprint SHA256:"           \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n"                    \
	"DeviceName default web\n"                                         \
	"Allow @alice users=alice,deploy\n"                                \
	"Allow @ops users=*\n"                                             \
	"Sshd 127.0.0.1:2222\n"                                            \
	"MaxSessions 2\n"

static struct dev_conf c;

static void
setup(void)
{
	char err[512];

	dev_conf_init(&c);
	ck_assert_int_eq(dev_conf_parse(&c, CONF, strlen(CONF), "t", err,
			     sizeof(err)),
	    NP_OK);
}

static void
teardown(void)
{
	dev_conf_free(&c);
}

/* Replace member key of o by the JSON text val (remove it: val NULL). */
static void
set(struct json_object *o, const char *key, const char *val)
{
	struct json_object *v;

	json_object_object_del(o, key);
	if (val != NULL) {
		/* "null": a JSON null member (a NULL object). */
		v = json_tokener_parse(val);
		ck_assert(v != NULL || strcmp(val, "null") == 0);
		json_object_object_add(o, key, v);
	}
}

/* A request body with one member replaced (or removed: val NULL). */
static struct json_object *
body_with(const char *key, const char *val)
{
	char text[2048];
	struct json_object *o;

	snprintf(text, sizeof(text), "{\"sid\":\"%s\",\"device\":\"default\","
	    "\"user\":\"alice\",\"port\":22,\"sr\":{\"host\":\"127.0.0.1\","
	    "\"port\":7000,\"token\":\"%s\"},\"pubkey\":\"%s\","
	    "\"kx\":\"%s\",\"rt\":\"%s\"}", SID, TOKEN, PUBKEY, KX, RT);
	o = json_tokener_parse(text);
	ck_assert_ptr_nonnull(o);
	if (key != NULL) {
		set(o, key, val);
	}
	return o;
}

static int
parse_with(const char *key, const char *val, struct dev_req *q)
{
	struct json_object *o = body_with(key, val);
	int r = dev_req_parse(o, q);

	json_object_put(o);
	return r;
}

START_TEST(test_parse_good)
{
	struct dev_req q;
	size_t i;

	ck_assert_int_eq(parse_with(NULL, NULL, &q), NP_OK);
	ck_assert_str_eq(q.sid, SID);
	ck_assert_str_eq(q.device, "default");
	ck_assert_str_eq(q.user, "alice");
	ck_assert_int_eq(q.port, 22);
	ck_assert_str_eq(q.sr.host, "127.0.0.1");
	ck_assert_int_eq(q.sr.port, 7000);
	for (i = 0; i < NP_SR_TOKEN_LEN; i++) {
		ck_assert_int_eq(q.sr.token[i], i + 1);
	}
	for (i = 0; i < DEV_KX_LEN; i++) {
		ck_assert_int_eq(q.kx[i], 0xaa);
	}
	for (i = 0; i < NP_SSHKEY_PK_LEN; i++) {
		unsigned want;

		ck_assert_int_eq(sscanf(PUBHEX + 2 * i, "%2x", &want), 1);
		ck_assert_uint_eq(q.pubkey[i], want);
	}
	ck_assert_str_eq(q.rt, RT);
	/* Unknown members are ignored (later versions may add some). */
	ck_assert_int_eq(parse_with("extra", "{\"x\":1}", &q), NP_OK);
	/* A user name too long to keep parses, and is refused later. */
	ck_assert_int_eq(parse_with("user",
			     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
			     &q),
	    NP_OK);
	ck_assert_str_eq(q.user, "");
	ck_assert_str_eq(dev_req_check(&c, "@alice", &q, 0),
	    "bad user name");
}
END_TEST

START_TEST(test_parse_bad)
{
	static const struct {
		const char *key, *val;
	} cases[] = {
		{ "sid", NULL },
		{ "sid", "\"0123\"" },
		{ "sid", "\"0123456789ABCDEF0123456789abcdef\"" },
		{ "sid", "5" },
		{ "device", NULL },
		{ "device", "\"\"" },
		{ "device", "\"Web\"" },
		{ "device", "\"a.b\"" },
		{ "device", "[]" },
		{ "user", NULL },
		{ "user", "7" },
		{ "port", NULL },
		{ "port", "0" },
		{ "port", "65536" },
		{ "port", "-22" },
		{ "port", "\"22\"" },
		{ "port", "22.5" },
		{ "sr", NULL },
		{ "sr", "\"x\"" },
		{ "sr", "{\"host\":\"h\",\"port\":1}" },
		{ "sr", "{\"host\":\"\",\"port\":1,\"token\":\"" TOKEN "\"}" },
		{ "sr", "{\"host\":\"a b\",\"port\":1,\"token\":\"" TOKEN
			"\"}" },
		{ "sr", "{\"host\":\"h\",\"port\":0,\"token\":\"" TOKEN "\"}" },
		{ "sr", "{\"host\":\"h\",\"port\":1,\"token\":\"AQID\"}" },
		{ "sr", "{\"host\":\"h\",\"port\":1,\"token\":"
			"\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy+\"}" },
		{ "sr", "{\"host\":\"h\",\"port\":1,\"token\":"
			"\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"}" },
		{ "sr", "{\"host\":\"h\",\"port\":1,\"token\":5}" },
		{ "kx", NULL },
		{ "kx", "\"qqqq\"" },
		{ "kx", "\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq-=\"" },
		{ "kx", "\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"" },
		{ "kx", "false" },
		/* pubkey: required, exactly "ssh-ed25519 BASE64". */
		{ "pubkey", NULL },
		{ "pubkey", "null" },
		{ "pubkey", "5" },
		{ "pubkey", "[\"" PUBKEY "\"]" },
		{ "pubkey", "\"\"" },
		{ "pubkey", "\"" PUBB64 "\"" },
		{ "pubkey", "\"" PUBKEY " comment\"" },
		{ "pubkey", "\"" PUBKEY " \"" },
		{ "pubkey", "\"" PUBKEY "\\n\"" },
		{ "pubkey", "\" " PUBKEY "\"" },
		{ "pubkey", "\"ssh-ed25519  " PUBB64 "\"" },
		{ "pubkey", "\"ssh-ed25519\\t" PUBB64 "\"" },
		{ "pubkey", "\"SSH-ED25519 " PUBB64 "\"" },
		{ "pubkey", "\"ssh-rsa " PUBB64 "\"" },
		{ "pubkey", "\"ssh-ed25519 " PUBB64 "=\"" },
		{ "pubkey", "\"ssh-ed25519 " PUBB64 "\\u0000\"" },
		/* Truncated blob (31-byte key). */
		{ "pubkey", "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAH5/7UqfjmMa+"
			    "9LjIXwWmrJhS0yZgSD2WCuLg+4NXe8w=\"" },
		/* The blob's own type is not ssh-ed25519. */
		{ "pubkey", "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE4AAAAIJ/7Uqfjm"
			    "Ma+9LjIXwWmrJhS0yZgSD2WCuLg+4NXe8zM\"" },
		/* A point of small order (all zero). */
		{ "pubkey", "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAA"
			    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"" },
		/* Not base64. */
		{ "pubkey", "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ/7Uqfjm"
			    "Ma+9LjIXwWmrJhS0yZgSD2WCuLg+4NXe8z*\"" },
	};
	struct dev_req q;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_with(cases[i].key, cases[i].val, &q) !=
		    NP_ERR_INVALID) {
			ck_abort_msg("case %zu (%s=%s) parsed", i,
			    cases[i].key, cases[i].val ? cases[i].val :
			    "(none)");
		}
	}
	ck_assert_int_eq(dev_req_parse(NULL, &q), NP_ERR_INVALID);
	{
		struct json_object *a = json_object_new_array();

		ck_assert_int_eq(dev_req_parse(a, &q), NP_ERR_INVALID);
		json_object_put(a);
	}
}
END_TEST

/* rt: optional; an invalid one counts as absent (untagged reply). */
START_TEST(test_parse_rt)
{
	static const char *const bad[] = {
		"\"\"", "\"ABC\"", "\"a-b\"", "\"a b\"", "\"a\\u0000b\"",
		"\"0123456789abcdefghijklmnopqrstuvw\"", /* 33 */
		"5", "null", "true", "[\"abc\"]", "{\"rt\":\"abc\"}",
		"\"caf\\u00e9\"",
	};
	struct dev_req q;
	char rt[DEV_TAG_MAX + 1];
	struct json_object *o;
	size_t i;

	ck_assert_int_eq(parse_with("rt", NULL, &q), NP_OK);
	ck_assert_str_eq(q.rt, "");
	ck_assert_int_eq(parse_with("rt", "\"x\"", &q), NP_OK);
	ck_assert_str_eq(q.rt, "x");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&q, 'z', sizeof(q));
		if (parse_with("rt", bad[i], &q) != NP_OK) {
			ck_abort_msg("rt %s: refused the request", bad[i]);
		}
		if (q.rt[0] != '\0') {
			ck_abort_msg("rt %s: kept as \"%s\"", bad[i], q.rt);
		}
		ck_assert_str_eq(q.sid, SID);
	}
	/* dev_body_rt on its own: bad requests and pings. */
	o = body_with("kx", NULL);
	dev_body_rt(o, rt);
	ck_assert_str_eq(rt, RT);
	json_object_put(o);
	o = json_tokener_parse("{\"device\":\"\",\"rt\":\"p1\"}");
	dev_body_rt(o, rt);
	ck_assert_str_eq(rt, "p1");
	json_object_put(o);
	o = json_tokener_parse("{\"rt\":\"P1\"}");
	dev_body_rt(o, rt);
	ck_assert_str_eq(rt, "");
	json_object_put(o);
	o = json_tokener_parse("[\"rt\"]");
	dev_body_rt(o, rt);
	ck_assert_str_eq(rt, "");
	json_object_put(o);
	memset(rt, 'z', sizeof(rt));
	dev_body_rt(NULL, rt);
	ck_assert_str_eq(rt, "");
}
END_TEST

START_TEST(test_req_sid)
{
	char sid[NP_SR_SID_LEN + 1];
	struct json_object *o = body_with("kx", NULL);

	/* The sid alone is enough to address an error reply. */
	ck_assert_int_eq(dev_req_sid(o, sid), NP_OK);
	ck_assert_str_eq(sid, SID);
	json_object_put(o);
	o = body_with("sid", "\"xyz\"");
	ck_assert_int_eq(dev_req_sid(o, sid), NP_ERR_INVALID);
	json_object_put(o);
	ck_assert_int_eq(dev_req_sid(NULL, sid), NP_ERR_INVALID);
}
END_TEST

static const char *
check_with(const char *from, const char *key, const char *val, size_t n)
{
	struct dev_req q;

	ck_assert_int_eq(parse_with(key, val, &q), NP_OK);
	return dev_req_check(&c, from, &q, n);
}

#define ck_ok(r) ck_assert_ptr_null(r)
#define ck_reason(r, want)                                                 \
	do {                                                               \
		const char *r_ = (r);                                      \
		ck_assert_ptr_nonnull(r_);                                 \
		ck_assert_str_eq(r_, want);                                \
	} while (0)

START_TEST(test_check)
{
	ck_ok(check_with("@alice", NULL, NULL, 0));
	ck_ok(check_with("@alice", "user", "\"deploy\"", 1));
	ck_ok(check_with("@alice", "device", "\"web\"", 0));
	/* The port: 22 (ssh's default) or the configured sshd port. */
	ck_ok(check_with("@alice", "port", "2222", 0));
	ck_reason(check_with("@alice", "port", "2223", 0),
	    "port not permitted");
	ck_reason(check_with("@alice", "port", "80", 0),
	    "port not permitted");
	/* Not allowed: before anything else, whatever the request. */
	ck_reason(check_with("@mallory", NULL, NULL, 0),
	    "identity not allowed");
	ck_reason(check_with("@mallory", "device", "\"nope\"", 99),
	    "identity not allowed");
	ck_reason(check_with("alice", NULL, NULL, 0), "identity not allowed");
	ck_reason(check_with("@alice", "user", "\"root\"", 0),
	    "user not allowed");
	ck_reason(check_with("@alice", "user", "\"bob\"", 0),
	    "user not allowed");
	ck_reason(check_with("@alice", "user", "\"Alice\"", 0),
	    "bad user name");
	ck_reason(check_with("@alice", "user", "\"a;id\"", 0),
	    "bad user name");
	ck_reason(check_with("@alice", "user", "\"\"", 0), "bad user name");
	ck_reason(check_with("@alice", "user", "\"-oProxy\"", 0),
	    "bad user name");
	ck_reason(check_with("@alice", "device", "\"db\"", 0),
	    "unknown device name");
	ck_reason(check_with("@alice", NULL, NULL, 2), "too many sessions");
	ck_reason(check_with("@alice", NULL, NULL, 1000),
	    "too many sessions");
	/* users=*: any valid name, still no invalid one. */
	ck_ok(check_with("@ops", "user", "\"root\"", 0));
	ck_ok(check_with("@ops", "user", "\"www-data\"", 0));
	ck_reason(check_with("@ops", "user", "\"Root\"", 0), "bad user name");
}
END_TEST

START_TEST(test_check_rv_host)
{
	char err[512];
	const char *conf = CONF "RendezvousHost sr.example.com 127.0.0.1\n";

	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(dev_conf_parse(&c, conf, strlen(conf), "t", err,
			     sizeof(err)),
	    NP_OK);
	ck_ok(check_with("@alice", NULL, NULL, 0));
	ck_ok(check_with("@alice", "sr", "{\"host\":\"SR.example.com\","
				       "\"port\":1,\"token\":\"" TOKEN "\"}",
	    0));
	ck_reason(check_with("@alice", "sr", "{\"host\":\"10.0.0.9\","
					     "\"port\":1,\"token\":\"" TOKEN
					     "\"}",
		      0),
	    "rendezvous host not permitted");
}
END_TEST

START_TEST(test_no_allow_fail_closed)
{
	char err[512];
	const char *conf = "IdentityFile /k\nServer a:1\nServerFingerprint "
			   "SHA256:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n";

	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(dev_conf_parse(&c, conf, strlen(conf), "t", err,
			     sizeof(err)),
	    NP_OK);
	ck_reason(check_with("@alice", NULL, NULL, 0), "identity not allowed");
	ck_reason(check_with("@ops", "user", "\"root\"", 0),
	    "identity not allowed");
}
END_TEST

/* ---- tunnels and relay ciphers ---- */

#define ENC_BOTH "[\"" NP_SREC_NAME_AES "\",\"" NP_SREC_NAME_CHACHA "\"]"
#define NOT_PERMITTED "tunnel target not permitted by the device's PermitOpen"

/*
 * A tunnel request body (mode tunnel, host localhost port 2222, both
 * ciphers offered, no user and no pubkey) with one member replaced or
 * removed as in body_with.
 */
static struct json_object *
tunnel_with(const char *key, const char *val)
{
	struct json_object *o = body_with("user", NULL);

	set(o, "pubkey", NULL);
	set(o, "mode", "\"tunnel\"");
	set(o, "host", "\"localhost\"");
	set(o, "port", "2222");
	set(o, "enc", ENC_BOTH);
	if (key != NULL) {
		set(o, key, val);
	}
	return o;
}

/* dev_req_parse of o, which it frees. */
static int
parse_obj(struct json_object *o, struct dev_req *q)
{
	int r = dev_req_parse(o, q);

	json_object_put(o);
	return r;
}

static int
parse_tunnel(const char *key, const char *val, struct dev_req *q)
{
	return parse_obj(tunnel_with(key, val), q);
}

/* What dev_req_parse picks from ENC_BOTH on this machine. */
static int
pick_both(void)
{
	return np_srec_cpu_has_aes() ? NP_SREC_AES256GCM :
	    NP_SREC_CHACHA20POLY1305;
}

/* "\"aaa...\"": a JSON string of n 'a's. */
static const char *
long_host(size_t n)
{
	static char s[DEV_TUNNEL_HOST_MAX + 16];

	ck_assert_uint_lt(n + 3, sizeof(s));
	s[0] = '"';
	memset(s + 1, 'a', n);
	s[n + 1] = '"';
	s[n + 2] = '\0';
	return s;
}

START_TEST(test_parse_tunnel)
{
	static const char *const hosts[] = {
		"\"localhost\"", "\"127.0.0.1\"", "\"::1\"", "\"fe80::1\"",
		"\"db.internal\"", "\"DB-1.Example.COM\"", "\"a_b\"", "\"x\"",
	};
	struct dev_req q;
	size_t i;

	memset(&q, 'z', sizeof(q));
	ck_assert_int_eq(parse_tunnel(NULL, NULL, &q), NP_OK);
	ck_assert_int_eq(q.tunnel, 1);
	ck_assert_str_eq(q.host, "localhost");
	ck_assert_int_eq(q.port, 2222);
	ck_assert_int_eq(q.enc, 1);
	ck_assert_int_eq(q.cipher, pick_both());
	ck_assert_str_eq(q.sid, SID);
	ck_assert_str_eq(q.device, "default");
	ck_assert_str_eq(q.sr.host, "127.0.0.1");
	ck_assert_int_eq(q.sr.port, 7000);
	ck_assert_str_eq(q.rt, RT);
	ck_assert_str_eq(q.user, "");
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		if (parse_tunnel("host", hosts[i], &q) != NP_OK) {
			ck_abort_msg("host %s refused", hosts[i]);
		}
	}
	ck_assert_str_eq(q.host, "x");
	/* The longest name there can be. */
	ck_assert_int_eq(parse_tunnel("host", long_host(DEV_TUNNEL_HOST_MAX),
			     &q),
	    NP_OK);
	ck_assert_uint_eq(strlen(q.host), DEV_TUNNEL_HOST_MAX);
	/* Any port parses: PermitOpen decides. */
	ck_assert_int_eq(parse_tunnel("port", "1", &q), NP_OK);
	ck_assert_int_eq(q.port, 1);
	ck_assert_int_eq(parse_tunnel("port", "65535", &q), NP_OK);
	/* "mode":"ssh" is the default spelled out; host means nothing. */
	ck_assert_int_eq(parse_with("mode", "\"ssh\"", &q), NP_OK);
	ck_assert_int_eq(q.tunnel, 0);
	ck_assert_str_eq(q.user, "alice");
	ck_assert_int_eq(parse_with("host", "\"a b\"", &q), NP_OK);
	ck_assert_int_eq(q.tunnel, 0);
	ck_assert_str_eq(q.host, "");
	/* No "enc": not offered. */
	ck_assert_int_eq(parse_with(NULL, NULL, &q), NP_OK);
	ck_assert_int_eq(q.enc, 0);
	ck_assert_int_eq(q.cipher, NP_SREC_NONE);
	ck_assert_int_eq(parse_tunnel("enc", NULL, &q), NP_OK);
	ck_assert_int_eq(q.tunnel, 1);
	ck_assert_int_eq(q.enc, 0);
}
END_TEST

START_TEST(test_parse_tunnel_bad)
{
	static const struct {
		const char *key, *val;
	} cases[] = {
		{ "host", NULL },
		{ "host", "\"\"" },
		{ "host", "\"a b\"" },
		{ "host", "\"-x\"" },
		{ "host", "\"-oProxyCommand=id\"" },
		{ "host", "\"a/b\"" },
		{ "host", "\"/tmp/sock\"" },
		{ "host", "\"[::1]\"" },
		{ "host", "\"[::1\"" },
		{ "host", "\"a;id\"" },
		{ "host", "\"a@b\"" },
		{ "host", "\"a%b\"" },
		{ "host", "\"a\\nb\"" },
		{ "host", "\"a\\u0000b\"" },
		{ "host", "\"caf\\u00e9\"" },
		{ "host", "5" },
		{ "host", "null" },
		{ "host", "[\"localhost\"]" },
		{ "mode", "\"foo\"" },
		{ "mode", "\"Tunnel\"" },
		{ "mode", "\"tunnel \"" },
		{ "mode", "\"\"" },
		{ "mode", "5" },
		{ "mode", "null" },
		{ "mode", "[\"tunnel\"]" },
		/* mode ssh (or none): user and pubkey, which this lacks. */
		{ "mode", "\"ssh\"" },
		{ "mode", NULL },
		{ "port", NULL },
		{ "port", "0" },
		{ "port", "65536" },
		{ "port", "\"22\"" },
		{ "sr", NULL },
		{ "kx", NULL },
		{ "sid", "\"0123\"" },
	};
	struct dev_req q;
	struct json_object *o;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_tunnel(cases[i].key, cases[i].val, &q) !=
		    NP_ERR_INVALID) {
			ck_abort_msg("tunnel case %zu (%s=%s) parsed", i,
			    cases[i].key, cases[i].val ? cases[i].val :
			    "(none)");
		}
	}
	ck_assert_int_eq(parse_tunnel("host",
			     long_host(DEV_TUNNEL_HOST_MAX + 1), &q),
	    NP_ERR_INVALID);
	/* mode foo on an otherwise good ssh request. */
	ck_assert_int_eq(parse_with("mode", "\"foo\"", &q), NP_ERR_INVALID);
	/* Explicit mode ssh still needs user and pubkey. */
	o = body_with("user", NULL);
	set(o, "mode", "\"ssh\"");
	ck_assert_int_eq(parse_obj(o, &q), NP_ERR_INVALID);
	o = body_with("pubkey", NULL);
	set(o, "mode", "\"ssh\"");
	set(o, "host", "\"localhost\"");
	ck_assert_int_eq(parse_obj(o, &q), NP_ERR_INVALID);
}
END_TEST

/* "enc_handoff": agreed for an ssh session with "enc" and a value within
 * NP_SREC_HANDOFF_MIN..MAX; anything else is records all the way. */
START_TEST(test_parse_handoff)
{
	static const struct {
		const char *v;
		uint32_t want;
	} cases[] = {
		{ "65536", 65536 }, { "4096", 4096 }, { "16777216", 16777216 },
		{ "4095", 0 }, { "16777217", 0 }, { "0", 0 }, { "-1", 0 },
		{ "\"65536\"", 0 }, { "65536.5", 0 }, { "null", 0 },
		{ "[65536]", 0 }, { "true", 0 },
	};
	struct json_object *o, *b = NULL, *v;
	struct dev_req q;
	uint8_t kx[DEV_KX_LEN];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		o = body_with("enc", ENC_BOTH);
		set(o, "enc_handoff", cases[i].v);
		ck_assert_int_eq(parse_obj(o, &q), NP_OK);
		ck_assert_msg(q.handoff == cases[i].want, "enc_handoff %s: %u",
		    cases[i].v, (unsigned)q.handoff);
	}
	/* Without "enc", or on a tunnel: never. */
	ck_assert_int_eq(parse_with("enc_handoff", "65536", &q), NP_OK);
	ck_assert_uint_eq(q.handoff, 0);
	ck_assert_int_eq(parse_tunnel("enc_handoff", "65536", &q), NP_OK);
	ck_assert_uint_eq(q.handoff, 0);
	/* The answer carries it only with a cipher. */
	memset(kx, 0xaa, sizeof(kx));
	ck_assert_int_eq(dev_body_ok(SID, 5, NULL, 0, kx, NP_SREC_AES256GCM,
	    65536, &b), NP_OK);
	ck_assert(json_object_object_get_ex(b, "enc_handoff", &v));
	ck_assert_int_eq(json_object_get_int64(v), 65536);
	json_object_put(b);
	ck_assert_int_eq(dev_body_ok(SID, 5, NULL, 0, kx, NP_SREC_NONE,
	    65536, &b), NP_OK);
	ck_assert(!json_object_object_get_ex(b, "enc_handoff", NULL));
	json_object_put(b);
}
END_TEST

/* "enc": an array of 1..8 strings, in either mode. */
START_TEST(test_parse_enc_bad)
{
	static const char *const bad[] = {
		"\"" NP_SREC_NAME_AES "\"", "{}", "{\"a\":\"" NP_SREC_NAME_AES
		"\"}", "[]", "5", "null", "true",
		"[5]", "[null]", "[true]", "[\"" NP_SREC_NAME_AES "\",7]",
		"[[\"" NP_SREC_NAME_AES "\"]]", "[{}]",
		/* 9 entries */
		"[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\""
		NP_SREC_NAME_AES "\"]",
		"[\"" NP_SREC_NAME_AES "\",\"" NP_SREC_NAME_AES "\",\""
		NP_SREC_NAME_AES "\",\"" NP_SREC_NAME_AES "\",\""
		NP_SREC_NAME_AES "\",\"" NP_SREC_NAME_AES "\",\""
		NP_SREC_NAME_AES "\",\"" NP_SREC_NAME_AES "\",\""
		NP_SREC_NAME_AES "\"]",
	};
	struct dev_req q;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_with("enc", bad[i], &q) != NP_ERR_INVALID) {
			ck_abort_msg("ssh enc %s parsed", bad[i]);
		}
		if (parse_tunnel("enc", bad[i], &q) != NP_ERR_INVALID) {
			ck_abort_msg("tunnel enc %s parsed", bad[i]);
		}
	}
}
END_TEST

START_TEST(test_parse_enc)
{
	static const char *const unknown[] = {
		"[\"rc4\"]", "[\"none\"]", "[\"\"]",
		"[\"aes-128-gcm\",\"aes256gcm\",\"chacha20\"]",
		"[\"" NP_SREC_NAME_AES " \"]",
	};
	struct dev_req q;
	size_t i;

	ck_assert_int_eq(parse_with("enc", "[\"" NP_SREC_NAME_AES "\"]", &q),
	    NP_OK);
	ck_assert_int_eq(q.enc, 1);
	ck_assert_int_eq(q.cipher, NP_SREC_AES256GCM);
	ck_ok(dev_req_check(&c, "@alice", &q, 0));
	ck_assert_int_eq(parse_with("enc", "[\"" NP_SREC_NAME_CHACHA "\"]",
			     &q),
	    NP_OK);
	ck_assert_int_eq(q.cipher, NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(parse_with("enc", ENC_BOTH, &q), NP_OK);
	ck_assert_int_eq(q.cipher, pick_both());
	/* Names we do not know are skipped. */
	ck_assert_int_eq(parse_with("enc", "[\"x\",\"" NP_SREC_NAME_AES "\"]",
			     &q),
	    NP_OK);
	ck_assert_int_eq(q.cipher, NP_SREC_AES256GCM);
	/* Eight is the most, and the eighth still counts. */
	ck_assert_int_eq(parse_with("enc", "[\"a\",\"b\",\"c\",\"d\",\"e\","
					   "\"f\",\"g\",\"" NP_SREC_NAME_CHACHA
					   "\"]",
			     &q),
	    NP_OK);
	ck_assert_int_eq(q.cipher, NP_SREC_CHACHA20POLY1305);
	/* A NUL inside a name: a malformed request, not a name cut short. */
	ck_assert_int_eq(parse_with("enc", "[\"" NP_SREC_NAME_AES "\\u0000x\"]",
			     &q),
	    NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("enc", "[\"a\\u0000\"]", &q),
	    NP_ERR_INVALID);
	/* Only names we do not know: offered, none in common; refused. */
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		memset(&q, 0, sizeof(q));
		if (parse_with("enc", unknown[i], &q) != NP_OK) {
			ck_abort_msg("enc %s refused", unknown[i]);
		}
		ck_assert_int_eq(q.enc, 1);
		ck_assert_int_eq(q.cipher, NP_SREC_NONE);
		ck_reason(dev_req_check(&c, "@alice", &q, 0),
		    "no relay cipher in common");
		ck_assert_int_eq(parse_tunnel("enc", unknown[i], &q), NP_OK);
		ck_assert_int_eq(q.enc, 1);
		ck_assert_int_eq(q.cipher, NP_SREC_NONE);
		ck_reason(dev_req_check(&c, "@alice", &q, 0),
		    "no relay cipher in common");
	}
}
END_TEST

START_TEST(test_cipher_pick)
{
	static const char *const aes_cha[] = { NP_SREC_NAME_AES,
		NP_SREC_NAME_CHACHA };
	static const char *const cha_aes[] = { NP_SREC_NAME_CHACHA,
		NP_SREC_NAME_AES };
	static const char *const aes[] = { NP_SREC_NAME_AES };
	static const char *const cha[] = { NP_SREC_NAME_CHACHA };
	static const char *const junk_aes_cha[] = { "rc4", "", "none",
		NP_SREC_NAME_AES, NP_SREC_NAME_CHACHA };
	static const char *const junk[] = { "rc4", "none", "",
		"aes-256-gcm ", "chacha20" };

	/* With AES instructions: the client's first one we know. */
	ck_assert_int_eq(dev_cipher_pick(aes_cha, 2, 1), NP_SREC_AES256GCM);
	ck_assert_int_eq(dev_cipher_pick(cha_aes, 2, 1),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(dev_cipher_pick(aes, 1, 1), NP_SREC_AES256GCM);
	ck_assert_int_eq(dev_cipher_pick(cha, 1, 1),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(dev_cipher_pick(junk_aes_cha, 5, 1),
	    NP_SREC_AES256GCM);
	/* Without: ChaCha20-Poly1305 wherever it is offered, else AES. */
	ck_assert_int_eq(dev_cipher_pick(aes_cha, 2, 0),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(dev_cipher_pick(cha_aes, 2, 0),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(dev_cipher_pick(junk_aes_cha, 5, 0),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(dev_cipher_pick(aes, 1, 0), NP_SREC_AES256GCM);
	ck_assert_int_eq(dev_cipher_pick(cha, 1, 0),
	    NP_SREC_CHACHA20POLY1305);
	/* Nothing known, or nothing offered. */
	ck_assert_int_eq(dev_cipher_pick(junk, 5, 1), NP_SREC_NONE);
	ck_assert_int_eq(dev_cipher_pick(junk, 5, 0), NP_SREC_NONE);
	ck_assert_int_eq(dev_cipher_pick(aes_cha, 0, 1), NP_SREC_NONE);
	ck_assert_int_eq(dev_cipher_pick(NULL, 0, 0), NP_SREC_NONE);
}
END_TEST

/* Replace the fixture's config by CONF followed by extra. */
static void
reconf(const char *extra)
{
	char err[512], text[2048];

	snprintf(text, sizeof(text), "%s%s", CONF, extra);
	dev_conf_free(&c);
	dev_conf_init(&c);
	if (dev_conf_parse(&c, text, strlen(text), "t", err, sizeof(err)) !=
	    NP_OK) {
		ck_abort_msg("[%s]: %s", extra, err);
	}
}

/* dev_req_check of the request o (which must parse; freed). */
static const char *
check_obj(const char *from, struct json_object *o, size_t n)
{
	struct dev_req q;

	ck_assert_int_eq(parse_obj(o, &q), NP_OK);
	return dev_req_check(&c, from, &q, n);
}

static const char *
check_tunnel(const char *from, const char *key, const char *val, size_t n)
{
	return check_obj(from, tunnel_with(key, val), n);
}

/* A tunnel request for host:port. */
static const char *
check_target(const char *from, const char *host, long port)
{
	char h[DEV_TUNNEL_HOST_MAX + 8], p[16];
	struct json_object *o = tunnel_with(NULL, NULL);

	snprintf(h, sizeof(h), "\"%s\"", host);
	snprintf(p, sizeof(p), "%ld", port);
	set(o, "host", h);
	set(o, "port", p);
	return check_obj(from, o, 0);
}

/* CONF has Sshd 127.0.0.1:2222: PermitOpen's default is that address
 * and localhost:2222. */
START_TEST(test_check_tunnel)
{
	struct json_object *o;

	ck_ok(check_tunnel("@alice", NULL, NULL, 0));
	ck_ok(check_tunnel("@alice", NULL, NULL, 1));
	ck_ok(check_tunnel("@ops", NULL, NULL, 0));
	ck_ok(check_tunnel("@alice", "device", "\"web\"", 0));
	ck_ok(check_target("@alice", "127.0.0.1", 2222));
	ck_ok(check_target("@alice", "LocalHost", 2222));
	ck_ok(check_tunnel("@alice", "enc", "[\"" NP_SREC_NAME_CHACHA "\"]",
	    0));
	/* Not PermitOpen's: other ports, hosts, spellings. */
	ck_reason(check_target("@alice", "localhost", 22), NOT_PERMITTED);
	ck_reason(check_target("@alice", "127.0.0.1", 2223), NOT_PERMITTED);
	ck_reason(check_target("@alice", "127.0.0.2", 2222), NOT_PERMITTED);
	ck_reason(check_target("@alice", "::1", 2222), NOT_PERMITTED);
	ck_reason(check_target("@alice", "localhost.", 2222), NOT_PERMITTED);
	ck_reason(check_target("@alice", "127.1", 2222), NOT_PERMITTED);
	ck_reason(check_target("@alice", "example.com", 443), NOT_PERMITTED);
	/* A tunnel is always encrypted. */
	ck_reason(check_tunnel("@alice", "enc", NULL, 0),
	    "a tunnel needs relay encryption");
	o = tunnel_with("enc", NULL);
	set(o, "host", "\"example.com\"");
	ck_reason(check_obj("@alice", o, 0),
	    "a tunnel needs relay encryption");
	ck_reason(check_tunnel("@alice", "enc", "[\"rc4\"]", 0),
	    "no relay cipher in common");
	ck_reason(check_tunnel("@alice", "device", "\"db\"", 0),
	    "unknown device name");
	ck_reason(check_tunnel("@alice", NULL, NULL, 2), "too many sessions");
	ck_reason(check_tunnel("@ops", NULL, NULL, 1000),
	    "too many sessions");
	/* An identity without an Allow line hears that and nothing else. */
	ck_reason(check_tunnel("@mallory", NULL, NULL, 0),
	    "identity not allowed");
	ck_reason(check_tunnel("@mallory", "enc", NULL, 0),
	    "identity not allowed");
	ck_reason(check_tunnel("@mallory", "enc", "[\"rc4\"]", 0),
	    "identity not allowed");
	ck_reason(check_tunnel("@mallory", "device", "\"db\"", 99),
	    "identity not allowed");
	ck_reason(check_target("@mallory", "example.com", 443),
	    "identity not allowed");
	ck_reason(check_tunnel("alice", NULL, NULL, 0),
	    "identity not allowed");
}
END_TEST

START_TEST(test_check_tunnel_permit)
{
	struct json_object *o;

	reconf("PermitOpen db.internal:5432 [::1]:8080\n"
	       "PermitOpen Web.Example:*\n"
	       "RendezvousHost sr.example.com 127.0.0.1\n");
	ck_ok(check_target("@alice", "db.internal", 5432));
	ck_ok(check_target("@alice", "DB.Internal", 5432));
	ck_ok(check_target("@alice", "::1", 8080));
	ck_ok(check_target("@alice", "web.example", 1));
	ck_ok(check_target("@ops", "WEB.EXAMPLE", 65535));
	ck_reason(check_target("@alice", "db.internal", 5433), NOT_PERMITTED);
	ck_reason(check_target("@alice", "db", 5432), NOT_PERMITTED);
	ck_reason(check_target("@alice", "::1", 8081), NOT_PERMITTED);
	ck_reason(check_target("@alice", "0:0:0:0:0:0:0:1", 8080),
	    NOT_PERMITTED);
	ck_reason(check_target("@alice", "web.example.org", 80),
	    NOT_PERMITTED);
	/* An explicit list replaces the default (Sshd's address). */
	ck_reason(check_target("@alice", "localhost", 2222), NOT_PERMITTED);
	ck_reason(check_target("@alice", "127.0.0.1", 2222), NOT_PERMITTED);
	/* RendezvousHost holds for tunnels too. */
	o = tunnel_with("sr", "{\"host\":\"10.0.0.9\",\"port\":1,"
			      "\"token\":\"" TOKEN "\"}");
	set(o, "host", "\"db.internal\"");
	set(o, "port", "5432");
	ck_reason(check_obj("@alice", o, 0), "rendezvous host not permitted");
	ck_reason(check_tunnel("@alice", "host", "\"db.internal\"", 0),
	    NOT_PERMITTED);
	/* ssh sessions do not go through PermitOpen. */
	ck_ok(check_with("@alice", NULL, NULL, 0));
	ck_ok(check_with("@alice", "port", "2222", 0));

	reconf("PermitOpen none\n");
	ck_reason(check_tunnel("@alice", NULL, NULL, 0), NOT_PERMITTED);
	ck_reason(check_target("@alice", "127.0.0.1", 2222), NOT_PERMITTED);
	ck_ok(check_with("@alice", NULL, NULL, 0));

	reconf("PermitOpen any\n");
	ck_ok(check_tunnel("@alice", NULL, NULL, 0));
	ck_ok(check_target("@alice", "example.com", 443));
	ck_ok(check_target("@alice", "10.1.2.3", 1));
	ck_reason(check_tunnel("@alice", "enc", NULL, 0),
	    "a tunnel needs relay encryption");
	ck_reason(check_tunnel("@mallory", NULL, NULL, 0),
	    "identity not allowed");

	/* PermitPlainTunnel yes: a tunnel may go without "enc"; the rest
	 * still holds, and offering only unknown ciphers is still refused. */
	reconf("PermitPlainTunnel yes\n");
	ck_ok(check_tunnel("@alice", "enc", NULL, 0));
	ck_ok(check_tunnel("@alice", NULL, NULL, 0));
	ck_reason(check_tunnel("@alice", "enc", "[\"rc4\"]", 0),
	    "no relay cipher in common");
	o = tunnel_with("enc", NULL);
	set(o, "host", "\"example.com\"");
	ck_reason(check_obj("@alice", o, 0), NOT_PERMITTED);
	ck_reason(check_tunnel("@mallory", "enc", NULL, 0),
	    "identity not allowed");
	ck_reason(check_tunnel("@alice", "enc", NULL, 2),
	    "too many sessions");
	reconf("PermitPlainTunnel no\n");
	ck_reason(check_tunnel("@alice", "enc", NULL, 0),
	    "a tunnel needs relay encryption");
}
END_TEST

START_TEST(test_body_ok)
{
	char *hk[] = { "ssh-ed25519 AAAAC3Nz", "ecdsa-sha2-nistp256 AAAAE2" };
	uint8_t kx[DEV_KX_LEN];
	struct json_object *o = NULL, *v;

	memset(kx, 0xaa, sizeof(kx));
	ck_assert_int_eq(dev_body_ok(SID, 1700000000, hk, 2, kx, NP_SREC_NONE, 0,
	    &o), NP_OK);
	/* sid, expires, hostkeys, kx: no "key" (the client makes it). */
	ck_assert_uint_eq(json_object_object_length(o), 4);
	ck_assert(!json_object_object_get_ex(o, "key", NULL));
	ck_assert(json_object_object_get_ex(o, "sid", &v));
	ck_assert_str_eq(json_object_get_string(v), SID);
	ck_assert(json_object_object_get_ex(o, "expires", &v));
	ck_assert(json_object_is_type(v, json_type_int));
	ck_assert_int_eq(json_object_get_int64(v), 1700000000);
	ck_assert(json_object_object_get_ex(o, "hostkeys", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	ck_assert_str_eq(json_object_get_string(
			     json_object_array_get_idx(v, 1)),
	    hk[1]);
	ck_assert(json_object_object_get_ex(o, "kx", &v));
	ck_assert_str_eq(json_object_get_string(v), KX);
	json_object_put(o);

	ck_assert_int_eq(dev_body_ok("nothex", 1, hk, 2, kx, 0, 0, &o),
	    NP_ERR_INVALID);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(dev_body_ok(NULL, 1, hk, 2, kx, 0, 0, &o), NP_ERR_INVALID);
	ck_assert_int_eq(dev_body_ok(SID, 0, hk, 2, kx, 0, 0, &o), NP_ERR_INVALID);
	ck_assert_int_eq(dev_body_ok(SID, -5, hk, 2, kx, 0, 0, &o), NP_ERR_INVALID);
	ck_assert_ptr_null(o);
	/* No host keys (a tunnel): no "hostkeys"; a cipher: its "enc". */
	ck_assert_int_eq(dev_body_ok(SID, 5, NULL, 0, kx, NP_SREC_AES256GCM, 0,
	    &o), NP_OK);
	ck_assert(!json_object_object_get_ex(o, "hostkeys", &v));
	ck_assert(json_object_object_get_ex(o, "enc", &v));
	ck_assert_str_eq(json_object_get_string(v), "aes-256-gcm");
	json_object_put(o);
	/* Host keys and a cipher: five members. */
	ck_assert_int_eq(dev_body_ok(SID, 5, hk, 2, kx,
			     NP_SREC_CHACHA20POLY1305, 0, &o),
	    NP_OK);
	ck_assert_uint_eq(json_object_object_length(o), 5);
	ck_assert(json_object_object_get_ex(o, "hostkeys", &v));
	ck_assert(json_object_object_get_ex(o, "enc", &v));
	ck_assert_str_eq(json_object_get_string(v), "chacha20-poly1305");
	json_object_put(o);
}
END_TEST

START_TEST(test_body_err)
{
	struct json_object *o = NULL, *v;

	ck_assert_int_eq(dev_body_err(SID, "user not allowed", &o), NP_OK);
	ck_assert_uint_eq(json_object_object_length(o), 2);
	ck_assert(json_object_object_get_ex(o, "sid", &v));
	ck_assert_str_eq(json_object_get_string(v), SID);
	ck_assert(json_object_object_get_ex(o, "reason", &v));
	ck_assert_str_eq(json_object_get_string(v), "user not allowed");
	json_object_put(o);
	ck_assert_int_eq(dev_body_err(NULL, "x", &o), NP_OK);
	ck_assert(json_object_object_get_ex(o, "sid", &v));
	ck_assert_str_eq(json_object_get_string(v), "");
	json_object_put(o);
}
END_TEST

static const char *
pong_device(const char *ping, int *r)
{
	static char dev[64];
	struct json_object *p = ping ? json_tokener_parse(ping) : NULL, *o,
			   *v;

	*r = dev_body_pong(&c, p, &o);
	json_object_put(p);
	if (*r != NP_OK) {
		return NULL;
	}
	ck_assert(json_object_object_get_ex(o, "devices", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	ck_assert(json_object_object_get_ex(o, "version", &v));
	ck_assert_str_eq(json_object_get_string(v), DEV_VERSION);
	ck_assert(json_object_object_get_ex(o, "features", &v));
	ck_assert_str_eq(json_object_get_string(
			     json_object_array_get_idx(v, 0)),
	    "ssh");
	ck_assert_str_eq(json_object_get_string(
			     json_object_array_get_idx(v, 1)),
	    "spool");
	ck_assert_uint_eq(json_object_array_length(v), 4);
	ck_assert_str_eq(json_object_get_string(
			     json_object_array_get_idx(v, 2)),
	    "tunnel");
	ck_assert_str_eq(json_object_get_string(
			     json_object_array_get_idx(v, 3)),
	    "enc");
	ck_assert(json_object_object_get_ex(o, "device", &v));
	snprintf(dev, sizeof(dev), "%s", json_object_get_string(v));
	json_object_put(o);
	return dev;
}

START_TEST(test_body_pong)
{
	int r;

	ck_assert_str_eq(pong_device("{\"device\":\"web\"}", &r), "web");
	/* The reply tag is not the pong's business (read separately). */
	ck_assert_str_eq(pong_device("{\"device\":\"web\",\"rt\":\"ab1\"}",
			     &r),
	    "web");
	ck_assert_str_eq(pong_device("{\"rt\":\"ab1\"}", &r), "default");
	ck_assert_str_eq(pong_device("{\"device\":\"\"}", &r), "default");
	ck_assert_str_eq(pong_device("{}", &r), "default");
	ck_assert_str_eq(pong_device(NULL, &r), "default");
	ck_assert_str_eq(pong_device("{\"device\":\"db\"}", &r), "");
	ck_assert_ptr_null(pong_device("{\"device\":5}", &r));
	ck_assert_int_eq(r, NP_ERR_INVALID);
	ck_assert_ptr_null(pong_device("{\"device\":\"A B\"}", &r));
	ck_assert_int_eq(r, NP_ERR_INVALID);
	ck_assert_ptr_null(pong_device("[1]", &r));
	ck_assert_int_eq(r, NP_ERR_INVALID);
}
END_TEST

/* A ticket: 48 bytes as base64url, 64 characters. */
#define TICKET "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w"
#define PROBE(sr, host) "{\"sr\":\"" sr "\",\"host\":\"" host "\"," \
	"\"port\":6465,\"ticket\":\"" TICKET "\"}"

static int
probes(const char *text, struct dev_probe_tgt *t, size_t *n)
{
	struct json_object *o = json_tokener_parse(text);
	int r;

	ck_assert_ptr_nonnull(o);
	r = dev_ping_probes(&c, o, t, n);
	json_object_put(o);
	return r;
}

START_TEST(test_ping_probes)
{
	static const char *const bad[] = {
		"{\"probe\":{}}",
		"{\"probe\":[1]}",
		"{\"probe\":[" PROBE("sr", "10.0.0.1") "]}",
		"{\"probe\":[" PROBE("@sr", "") "]}",
		"{\"probe\":[" PROBE("@sr", "a b") "]}",
		"{\"probe\":[" PROBE("@sr", "10.0.0.1") "," PROBE("@sr",
		    "10.0.0.2") "]}",
		"{\"probe\":[{\"sr\":\"@sr\",\"host\":\"10.0.0.1\","
		    "\"port\":0,\"ticket\":\"" TICKET "\"}]}",
		"{\"probe\":[{\"sr\":\"@sr\",\"host\":\"10.0.0.1\","
		    "\"port\":1,\"ticket\":\"abc\"}]}",
		"{\"probe\":[{\"sr\":\"@sr\",\"host\":\"10.0.0.1\","
		    "\"port\":1,\"ticket\":\"" TICKET "\",\"x\":1}]}",
		"{\"probe\":[{\"sr\":\"@sr\",\"host\":\"10.0.0.1\","
		    "\"port\":1}]}",
	};
	struct dev_probe_tgt t[DEV_PROBE_MAX];
	char text[8192], err[512];
	const char *conf = CONF "RendezvousHost 10.0.0.1 ::1 sr.example\n";
	size_t n = 9, i, o;

	ck_assert_int_eq(probes("{}", t, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(probes("{\"probe\":[" PROBE("@a", "10.0.0.1") ","
	    PROBE("@b", "::1") "," PROBE("@c", "sr.example") "]}", t, &n),
	    NP_OK);
	ck_assert_uint_eq(n, 2); /* a name is not probed: it would block */
	ck_assert_str_eq(t[0].sr, "@a");
	ck_assert_str_eq(t[0].host, "10.0.0.1");
	ck_assert_uint_eq(t[0].port, 6465);
	ck_assert_str_eq(t[0].ticket, TICKET);
	ck_assert_str_eq(t[1].host, "::1");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 9;
		ck_assert_msg(probes(bad[i], t, &n) == NP_ERR_INVALID,
		    "accepted %s", bad[i]);
		ck_assert_uint_eq(n, 0);
	}
	/* at most DEV_PROBE_MAX */
	o = (size_t)snprintf(text, sizeof(text), "{\"probe\":[");
	for (i = 0; i <= DEV_PROBE_MAX; i++) {
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		    "%s{\"sr\":\"@s%zu\",\"host\":\"10.0.0.1\","
		    "\"port\":1,\"ticket\":\"" TICKET "\"}", i > 0 ? "," : "",
		    i);
	}
	snprintf(text + o, sizeof(text) - o, "]}");
	ck_assert_int_eq(probes(text, t, &n), NP_ERR_INVALID);
	/* RendezvousHost: only the hosts it names */
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(dev_conf_parse(&c, conf, strlen(conf), "t", err,
	    sizeof(err)), NP_OK);
	ck_assert_int_eq(probes("{\"probe\":[" PROBE("@a", "10.0.0.2") ","
	    PROBE("@b", "10.0.0.1") "]}", t, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(t[0].sr, "@b");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dev_req");
	TCase *tp = tcase_create("parse");
	TCase *tc = tcase_create("check");
	TCase *tb = tcase_create("bodies");
	SRunner *sr;
	int failed;

	if (sodium_init() < 0) {
		return EXIT_FAILURE;
	}
	tcase_add_checked_fixture(tp, setup, teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_checked_fixture(tb, setup, teardown);
	tcase_add_test(tp, test_parse_good);
	tcase_add_test(tp, test_parse_bad);
	tcase_add_test(tp, test_parse_rt);
	tcase_add_test(tp, test_req_sid);
	tcase_add_test(tc, test_check);
	tcase_add_test(tc, test_check_rv_host);
	tcase_add_test(tc, test_no_allow_fail_closed);
	tcase_add_test(tp, test_parse_tunnel);
	tcase_add_test(tp, test_parse_tunnel_bad);
	tcase_add_test(tp, test_parse_enc_bad);
	tcase_add_test(tp, test_parse_enc);
	tcase_add_test(tp, test_parse_handoff);
	tcase_add_test(tp, test_cipher_pick);
	tcase_add_test(tc, test_check_tunnel);
	tcase_add_test(tc, test_check_tunnel_permit);
	tcase_add_test(tb, test_body_ok);
	tcase_add_test(tb, test_body_err);
	tcase_add_test(tb, test_body_pong);
	tcase_add_test(tp, test_ping_probes);
	suite_add_tcase(s, tp);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tb);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
