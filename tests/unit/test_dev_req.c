/*
 * np-deviced requests: parsing np.session.req bodies, the decision on a
 * request (allowed, not allowed, wrong user, bad user name, unknown
 * device, wrong port, rendezvous host, too many sessions), and the reply
 * bodies.
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

/* A request body with one member replaced (or removed: val NULL). */
static struct json_object *
body_with(const char *key, const char *val)
{
	char text[2048];
	struct json_object *o, *v;

	snprintf(text, sizeof(text), "{\"sid\":\"%s\",\"device\":\"default\","
	    "\"user\":\"alice\",\"port\":22,\"sr\":{\"host\":\"127.0.0.1\","
	    "\"port\":7000,\"token\":\"%s\"},\"pubkey\":\"%s\","
	    "\"kx\":\"%s\",\"rt\":\"%s\"}", SID, TOKEN, PUBKEY, KX, RT);
	o = json_tokener_parse(text);
	ck_assert_ptr_nonnull(o);
	if (key != NULL) {
		json_object_object_del(o, key);
		if (val != NULL) {
			/* "null": a JSON null member (a NULL object). */
			v = json_tokener_parse(val);
			ck_assert(v != NULL || strcmp(val, "null") == 0);
			json_object_object_add(o, key, v);
		}
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

START_TEST(test_body_ok)
{
	char *hk[] = { "ssh-ed25519 AAAAC3Nz", "ecdsa-sha2-nistp256 AAAAE2" };
	uint8_t kx[DEV_KX_LEN];
	struct json_object *o = NULL, *v;

	memset(kx, 0xaa, sizeof(kx));
	ck_assert_int_eq(dev_body_ok(SID, 1700000000, hk, 2, kx, NP_SREC_NONE,
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

	ck_assert_int_eq(dev_body_ok("nothex", 1, hk, 2, kx, 0, &o),
	    NP_ERR_INVALID);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(dev_body_ok(NULL, 1, hk, 2, kx, 0, &o), NP_ERR_INVALID);
	ck_assert_int_eq(dev_body_ok(SID, 0, hk, 2, kx, 0, &o), NP_ERR_INVALID);
	ck_assert_int_eq(dev_body_ok(SID, -5, hk, 2, kx, 0, &o), NP_ERR_INVALID);
	ck_assert_ptr_null(o);
	/* No host keys (a tunnel): no "hostkeys"; a cipher: its "enc". */
	ck_assert_int_eq(dev_body_ok(SID, 5, NULL, 0, kx, NP_SREC_AES256GCM,
	    &o), NP_OK);
	ck_assert(!json_object_object_get_ex(o, "hostkeys", &v));
	ck_assert(json_object_object_get_ex(o, "enc", &v));
	ck_assert_str_eq(json_object_get_string(v), "aes-256-gcm");
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
	tcase_add_test(tb, test_body_ok);
	tcase_add_test(tb, test_body_err);
	tcase_add_test(tb, test_body_pong);
	suite_add_tcase(s, tp);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tb);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
