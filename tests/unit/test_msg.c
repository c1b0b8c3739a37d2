#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "err.h"
#include "frame.h"
#include "msg.h"

#define B31 "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\""
#define B32 "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\""
#define B33 "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\""
#define B63                                                                    \
	"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygp"           \
	"KissLS4vMDEyMzQ1Njc4OTo7PD0+\""
#define B64                                                                    \
	"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygp"           \
	"KissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==\""
#define B65                                                                    \
	"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygp"           \
	"KissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=\""
#define MID "\"0123456789abcdef0123456789abcdef\""
#define ROT1 "{\"old\":" B32 ",\"new\":" B32 ",\"sig\":" B64 "}"

#define TS NP_MSG_TO_SERVER
#define TC NP_MSG_TO_CLIENT

struct sample {
	const char *type;
	enum np_msg_dir dir;
	const char *json;
	const char *req[8]; /* required members */
	const char *opt[8]; /* optional members */
};

static const struct sample samples[] = {
    {"hello",
     TC,
     "{\"t\":\"hello\",\"v\":1,\"nonce\":" B32 "}",
     {"v", "nonce"},
     {NULL}},
    {"auth",
     TS,
     "{\"t\":\"auth\",\"id\":\"@alice\",\"sig\":" B64 "}",
     {"id", "sig"},
     {NULL}},
    {"enroll",
     TS,
     "{\"t\":\"enroll\",\"id\":\"@alice\",\"pk\":" B32
     ",\"token\":\"tok-123_ABC\",\"sig\":" B64 "}",
     {"id", "pk", "token", "sig"},
     {NULL}},
    {"welcome", TC, "{\"t\":\"welcome\",\"id\":\"@alice\"}", {"id"}, {NULL}},
    {"error",
     TC,
     "{\"t\":\"error\",\"rid\":7,\"code\":\"not_found\","
     "\"msg\":\"no such identity\"}",
     {"code", "msg"},
     {"rid"}},
    {"result",
     TC,
     "{\"t\":\"result\",\"rid\":7,\"id\":\"@bob\",\"pk\":" B32 ",\"rot\":[" ROT1
     "," ROT1 "],\"ts\":1700000000000}",
     {"rid"},
     {"id", "pk", "rot", "ts"}},
    {"lookup",
     TS,
     "{\"t\":\"lookup\",\"rid\":1,\"id\":\"@bob\"}",
     {"rid", "id"},
     {NULL}},
    {"send",
     TS,
     "{\"t\":\"send\",\"rid\":2,\"to\":\"@bob\",\"mid\":" MID
     ",\"ttl\":60,\"box\":" B65 ",\"tag\":\"r0a9\"}",
     {"rid", "to", "mid", "ttl", "box"},
     {"tag"}},
    {"monitor",
     TS,
     "{\"t\":\"monitor\",\"rid\":3,\"tag\":\"0123456789abcdef\"}",
     {"rid"},
     {"tag"}},
    {"ping", TS, "{\"t\":\"ping\",\"rid\":2147483647}", {"rid"}, {NULL}},
    {"rotate",
     TS,
     "{\"t\":\"rotate\",\"rid\":4,\"pk\":" B32 ",\"sig\":" B64 ",\"nsig\":" B64
     "}",
     {"rid", "pk", "sig", "nsig"},
     {NULL}},
    {"msg",
     TC,
     "{\"t\":\"msg\",\"seq\":9,\"from\":\"@alice\",\"mid\":" MID
     ",\"ts\":0,\"box\":" B33 ",\"tag\":\"z\"}",
     {"seq", "from", "mid", "ts", "box"},
     {"tag"}},
    {"ack", TS, "{\"t\":\"ack\",\"seq\":9}", {"seq"}, {NULL}},
};

#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static struct json_object *
parse(const char *s)
{
	struct json_object *o = NULL;

	ck_assert_msg(np_json_parse((const uint8_t *)s, strlen(s), &o) == NP_OK,
		      "cannot parse %s", s);
	return o;
}

static enum np_msg_dir
other(enum np_msg_dir d)
{
	return d == TS ? TC : TS;
}

/* base with key replaced by the JSON value text val (NULL: removed). */
static int
mutated(const char *base, enum np_msg_dir dir, const char *key, const char *val)
{
	struct json_object *o = parse(base), *v;
	int r;

	if (val == NULL)
		json_object_object_del(o, key);
	else {
		v = json_tokener_parse(val);
		ck_assert_msg(v != NULL || strcmp(val, "null") == 0,
			      "bad test value %s", val);
		json_object_object_add(o, key, v);
	}
	r = np_msg_validate(o, dir, NULL);
	json_object_put(o);
	return r;
}

static const struct sample *
find(const char *type)
{
	size_t i;

	for (i = 0; i < NSAMPLES; i++) {
		if (strcmp(samples[i].type, type) == 0)
			return &samples[i];
	}
	ck_abort_msg("no sample %s", type);
	return NULL;
}

/* Expect r for sample type with key set to val. */
static void
expect(const char *type, const char *key, const char *val, int want)
{
	const struct sample *s = find(type);
	int r = mutated(s->json, s->dir, key, val);

	ck_assert_msg(r == want, "%s.%s=%s: got %d want %d", type, key,
		      val == NULL ? "(none)" : val, r, want);
}

START_TEST(every_type_valid)
{
	const struct sample *s = &samples[_i];
	struct json_object *o = parse(s->json);
	const char *t = NULL;

	ck_assert_int_eq(np_msg_validate(o, s->dir, &t), NP_OK);
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t, s->type);
	json_object_put(o);
}
END_TEST

START_TEST(wrong_direction)
{
	const struct sample *s = &samples[_i];
	struct json_object *o = parse(s->json);
	const char *t = "x";

	ck_assert_int_eq(np_msg_validate(o, other(s->dir), &t), NP_ERR_PROTO);
	ck_assert_ptr_null(t);
	json_object_put(o);
}
END_TEST

START_TEST(missing_required)
{
	const struct sample *s = &samples[_i];
	size_t k;

	for (k = 0; k < 8 && s->req[k] != NULL; k++)
		ck_assert_msg(mutated(s->json, s->dir, s->req[k], NULL) ==
				  NP_ERR_INVALID,
			      "%s without %s accepted", s->type, s->req[k]);
	/* Optional members may go, all at once. */
	{
		struct json_object *o = parse(s->json);

		for (k = 0; k < 8 && s->opt[k] != NULL; k++)
			json_object_object_del(o, s->opt[k]);
		ck_assert_int_eq(np_msg_validate(o, s->dir, NULL), NP_OK);
		json_object_put(o);
	}
}
END_TEST

START_TEST(unknown_member)
{
	const struct sample *s = &samples[_i];

	ck_assert_int_eq(mutated(s->json, s->dir, "zz", "1"), NP_ERR_INVALID);
	ck_assert_int_eq(mutated(s->json, s->dir, "from_", "\"@a\""),
			 NP_ERR_INVALID);
	ck_assert_int_eq(mutated(s->json, s->dir, "T", "\"x\""),
			 NP_ERR_INVALID);
}
END_TEST

/* Members that docs/PROTOCOL.md does not list for a type are refused,
 * even where another type has them. */
START_TEST(members_per_protocol)
{
	expect("result", "seq", "3", NP_ERR_INVALID);
	expect("result", "from", "\"@a\"", NP_ERR_INVALID);
	expect("result", "box", B33, NP_ERR_INVALID);
	expect("hello", "rid", "1", NP_ERR_INVALID);
	expect("welcome", "rid", "1", NP_ERR_INVALID);
	expect("auth", "rid", "1", NP_ERR_INVALID);
	expect("msg", "rid", "1", NP_ERR_INVALID);
	expect("ack", "rid", "1", NP_ERR_INVALID);
	expect("send", "from", "\"@a\"", NP_ERR_INVALID);
	expect("send", "ts", "1", NP_ERR_INVALID);
	expect("lookup", "pk", B32, NP_ERR_INVALID);
	expect("error", "id", "\"@a\"", NP_ERR_INVALID);
}
END_TEST

/* Every member, with a value of each wrong JSON type. */
START_TEST(wrong_types)
{
	static const char *const vals[] = {"\"1\"", "1",  "1.5", "true",
					   "null",  "[]", "{}",	 "[1]"};
	const struct sample *s = &samples[_i];
	struct json_object *o = parse(s->json), *v;
	size_t i;
	int r;

	json_object_object_foreach(o, key, val)
	{
		if (strcmp(key, "t") == 0)
			continue;
		for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			v = json_tokener_parse(vals[i]);
			if (v != NULL && json_object_get_type(v) ==
					     json_object_get_type(val)) {
				json_object_put(v);
				continue;
			}
			json_object_put(v);
			r = mutated(s->json, s->dir, key, vals[i]);
			ck_assert_msg(r == NP_ERR_INVALID, "%s.%s=%s accepted",
				      s->type, key, vals[i]);
		}
	}
	json_object_put(o);
}
END_TEST

START_TEST(int_ranges)
{
	expect("hello", "v", "0", NP_ERR_INVALID);
	expect("hello", "v", "2", NP_ERR_INVALID);
	expect("hello", "v", "1.0", NP_ERR_INVALID);
	expect("ping", "rid", "0", NP_ERR_INVALID);
	expect("ping", "rid", "-1", NP_ERR_INVALID);
	expect("ping", "rid", "1", NP_OK);
	expect("ping", "rid", "2147483647", NP_OK);
	expect("ping", "rid", "2147483648", NP_ERR_INVALID);
	expect("ping", "rid", "99999999999999999999999", NP_ERR_INVALID);
	expect("error", "rid", "0", NP_ERR_INVALID);
	expect("result", "rid", "4294967297", NP_ERR_INVALID);
	expect("send", "ttl", "0", NP_ERR_INVALID);
	expect("send", "ttl", "1", NP_OK);
	expect("send", "ttl", "604800", NP_OK);
	expect("send", "ttl", "604801", NP_ERR_INVALID);
	expect("send", "ttl", "-60", NP_ERR_INVALID);
	expect("ack", "seq", "0", NP_ERR_INVALID);
	expect("ack", "seq", "-5", NP_ERR_INVALID);
	expect("ack", "seq", "1", NP_OK);
	expect("ack", "seq", "9007199254740992", NP_OK);
	expect("ack", "seq", "9223372036854775807", NP_ERR_INVALID);
	expect("ack", "seq", "18446744073709551615", NP_ERR_INVALID);
	expect("msg", "seq", "0", NP_ERR_INVALID);
	expect("msg", "ts", "-1", NP_ERR_INVALID);
	expect("msg", "ts", "0", NP_OK);
	expect("result", "ts", "-1", NP_ERR_INVALID);
	expect("result", "seq", "0", NP_ERR_INVALID);
}
END_TEST

static char *
repeat(char c, size_t n, const char *pre, const char *post)
{
	size_t lp = strlen(pre), lq = strlen(post);
	char *s = malloc(lp + n + lq + 1);

	memcpy(s, pre, lp);
	memset(s + lp, c, n);
	memcpy(s + lp + n, post, lq + 1);
	return s;
}

START_TEST(strings)
{
	char *s;

	/* Identities. */
	expect("auth", "id", "\"alice\"", NP_ERR_INVALID);
	expect("auth", "id", "\"@Alice\"", NP_ERR_INVALID);
	expect("auth", "id", "\"@\"", NP_ERR_INVALID);
	expect("auth", "id", "\"@.alice\"", NP_ERR_INVALID);
	expect("auth", "id", "\"@al ice\"", NP_ERR_INVALID);
	expect("auth", "id", "\"@a.b-c_9\"", NP_OK);
	expect("auth", "id", "\"@alice\\u0000x\"", NP_ERR_INVALID);
	s = repeat('a', 55, "\"@", "\"");
	expect("welcome", "id", s, NP_OK);
	free(s);
	s = repeat('a', 56, "\"@", "\"");
	expect("welcome", "id", s, NP_ERR_INVALID);
	expect("lookup", "id", s, NP_ERR_INVALID);
	expect("send", "to", s, NP_ERR_INVALID);
	expect("msg", "from", s, NP_ERR_INVALID);
	expect("result", "id", s, NP_ERR_INVALID);
	free(s);
	/* Message ids. */
	expect("send", "mid", "\"0123456789ABCDEF0123456789abcdef\"",
	       NP_ERR_INVALID);
	expect("send", "mid", "\"0123456789abcdef0123456789abcde\"",
	       NP_ERR_INVALID);
	expect("send", "mid", "\"0123456789abcdef0123456789abcdef0\"",
	       NP_ERR_INVALID);
	expect("msg", "mid", "\"0123456789abcdeg0123456789abcdef\"",
	       NP_ERR_INVALID);
	/* Error codes and text. */
	expect("error", "code", "\"nope\"", NP_ERR_INVALID);
	expect("error", "code", "\"\"", NP_ERR_INVALID);
	expect("error", "code", "\"auth\"", NP_OK);
	expect("error", "code", "\"too_big\"", NP_OK);
	s = repeat('m', 512, "\"", "\"");
	expect("error", "msg", s, NP_OK);
	free(s);
	s = repeat('m', 513, "\"", "\"");
	expect("error", "msg", s, NP_ERR_INVALID);
	free(s);
	expect("error", "msg", "\"\"", NP_OK);
	/* Tokens. */
	expect("enroll", "token", "\"\"", NP_ERR_INVALID);
	expect("enroll", "token", "\"a\\nb\"", NP_ERR_INVALID);
	expect("enroll", "token", "\"caf\\u00e9\"", NP_ERR_INVALID);
	expect("enroll", "token", "\"a\\u007fb\"", NP_ERR_INVALID);
	s = repeat('t', 128, "\"", "\"");
	expect("enroll", "token", s, NP_OK);
	free(s);
	s = repeat('t', 129, "\"", "\"");
	expect("enroll", "token", s, NP_ERR_INVALID);
	free(s);
	/* The type itself. */
	expect("ping", "t", "\"pong\"", NP_ERR_PROTO);
	expect("ping", "t", "\"\"", NP_ERR_PROTO);
	expect("ping", "t", "\"PING\"", NP_ERR_PROTO);
	expect("ping", "t", "1", NP_ERR_INVALID);
	expect("ping", "t", NULL, NP_ERR_INVALID);
}
END_TEST

START_TEST(base64)
{
	/* Not base64, not padded, spaces, URL-safe alphabet. */
	expect("hello", "nonce", "\"!!!!\"", NP_ERR_INVALID);
	expect("hello", "nonce",
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"",
	       NP_ERR_INVALID);
	expect("hello", "nonce",
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd Hh8=\"",
	       NP_ERR_INVALID);
	expect("hello", "nonce",
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_=\"",
	       NP_ERR_INVALID);
	expect("hello", "nonce", "\"\"", NP_ERR_INVALID);
	/* Non-canonical trailing bits. */
	expect("hello", "nonce",
	       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\"",
	       NP_ERR_INVALID);
	/* Wrong decoded lengths. */
	expect("hello", "nonce", B31, NP_ERR_INVALID);
	expect("hello", "nonce", B33, NP_ERR_INVALID);
	expect("hello", "nonce", B64, NP_ERR_INVALID);
	expect("enroll", "pk", B31, NP_ERR_INVALID);
	expect("enroll", "pk", B33, NP_ERR_INVALID);
	expect("auth", "sig", B63, NP_ERR_INVALID);
	expect("auth", "sig", B65, NP_ERR_INVALID);
	expect("auth", "sig", B32, NP_ERR_INVALID);
	expect("rotate", "nsig", B63, NP_ERR_INVALID);
	expect("rotate", "sig", B65, NP_ERR_INVALID);
	expect("rotate", "pk", B64, NP_ERR_INVALID);
	expect("result", "pk", B31, NP_ERR_INVALID);
	expect("send", "box", "\"\"", NP_ERR_INVALID);
	expect("send", "box", "\"AA==\"", NP_OK);
	expect("msg", "box", "\"A===\"", NP_ERR_INVALID);
}
END_TEST

static char *
b64_of_len(size_t n)
{
	size_t blen =
	    sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	uint8_t *p = calloc(1, n);
	char *s = malloc(blen + 2);

	s[0] = '"';
	sodium_bin2base64(s + 1, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
	strcat(s, "\"");
	free(p);
	return s;
}

START_TEST(box_sizes)
{
	char *s;

	s = b64_of_len(49152);
	expect("send", "box", s, NP_OK);
	expect("msg", "box", s, NP_OK);
	free(s);
	s = b64_of_len(49153);
	expect("send", "box", s, NP_ERR_INVALID);
	expect("msg", "box", s, NP_ERR_INVALID);
	free(s);
}
END_TEST

START_TEST(rotation_chain)
{
	char buf[8192];
	size_t n;
	int i;

	expect("result", "rot", "[]", NP_OK);
	expect("result", "rot", "{}", NP_ERR_INVALID);
	expect("result", "rot", "[1]", NP_ERR_INVALID);
	expect("result", "rot", "[[]]", NP_ERR_INVALID);
	expect("result", "rot", "[{}]", NP_ERR_INVALID);
	expect("result", "rot", "[{\"old\":" B32 ",\"new\":" B32 "}]",
	       NP_ERR_INVALID);
	expect("result", "rot",
	       "[{\"old\":" B32 ",\"new\":" B32 ",\"sig\":" B64 ",\"x\":1}]",
	       NP_ERR_INVALID);
	expect("result", "rot",
	       "[{\"old\":" B32 ",\"new\":" B33 ",\"sig\":" B64 "}]",
	       NP_ERR_INVALID);
	expect("result", "rot",
	       "[{\"old\":" B32 ",\"new\":" B32 ",\"sig\":" B63 "}]",
	       NP_ERR_INVALID);
	expect("result", "rot",
	       "[{\"old\":" B32 ",\"new\":" B32 ",\"sig\":"
	       "1}]",
	       NP_ERR_INVALID);
	expect("result", "rot", "[" ROT1 ",null]", NP_ERR_INVALID);
	for (i = 1; i <= 17; i++) {
		n = 0;
		buf[n++] = '[';
		for (int j = 0; j < i; j++) {
			if (j > 0)
				buf[n++] = ',';
			memcpy(buf + n, ROT1, strlen(ROT1));
			n += strlen(ROT1);
		}
		buf[n++] = ']';
		buf[n] = '\0';
		expect("result", "rot", buf, i <= 16 ? NP_OK : NP_ERR_INVALID);
	}
}
END_TEST

START_TEST(not_messages)
{
	struct json_object *o;
	const char *t = "x";

	ck_assert_int_eq(np_msg_validate(NULL, TS, &t), NP_ERR_INVALID);
	ck_assert_ptr_null(t);
	o = json_tokener_parse("[{\"t\":\"ping\",\"rid\":1}]");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_ERR_INVALID);
	json_object_put(o);
	o = parse("{}");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_ERR_INVALID);
	json_object_put(o);
	o = parse("{\"t\":\"launch\",\"rid\":1}");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_ERR_PROTO);
	ck_assert_int_eq(np_msg_validate(o, TC, NULL), NP_ERR_PROTO);
	json_object_put(o);
	o = json_tokener_parse("{\"t\":\"ping\\u0000x\",\"rid\":1}");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_ERR_INVALID);
	json_object_put(o);
	/* Duplicate keys: json-c keeps the last one. */
	o = parse("{\"t\":\"ping\",\"rid\":0,\"rid\":5}");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_OK);
	json_object_put(o);
	o = parse("{\"t\":\"ping\",\"rid\":5,\"rid\":0}");
	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_ERR_INVALID);
	json_object_put(o);
}
END_TEST

START_TEST(accessors)
{
	struct json_object *o = parse(find("send")->json);
	uint8_t out[128];
	size_t n = 99;
	int64_t v = 0;
	size_t i;

	ck_assert_int_eq(np_msg_validate(o, TS, NULL), NP_OK);
	ck_assert_str_eq(np_msg_str(o, "to"), "@bob");
	ck_assert_str_eq(np_msg_str(o, "t"), "send");
	ck_assert_ptr_null(np_msg_str(o, "nope"));
	ck_assert_ptr_null(np_msg_str(o, "ttl"));
	ck_assert_ptr_null(np_msg_str(NULL, "to"));
	ck_assert_int_eq(np_msg_int(o, "ttl", &v), NP_OK);
	ck_assert_int_eq(v, 60);
	ck_assert_int_eq(np_msg_int(o, "rid", &v), NP_OK);
	ck_assert_int_eq(v, 2);
	ck_assert_int_eq(np_msg_int(o, "nope", &v), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(v, -1);
	ck_assert_int_eq(np_msg_int(o, "to", &v), NP_ERR_INVALID);
	ck_assert_int_eq(np_msg_b64(o, "box", out, sizeof(out), &n), NP_OK);
	ck_assert_uint_eq(n, 65);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(out[i], i);
	/* Output too small: refused, never truncated. */
	ck_assert_int_eq(np_msg_b64(o, "box", out, 64, &n), NP_ERR_INVALID);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(np_msg_b64(o, "nope", out, sizeof(out), &n),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_msg_b64(o, "ttl", out, sizeof(out), &n),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_msg_b64(o, "to", out, sizeof(out), &n),
			 NP_ERR_INVALID);
	json_object_put(o);
}
END_TEST

/* The decoder libmsg had before its own: libsodium's, after the
 * alphabet check. */
static int
ref_b64(const char *s, size_t len, uint8_t *out, size_t max, size_t *n)
{
	const char *end = NULL;
	size_t i;

	*n = 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '=' || c == '+' ||
		      c == '/'))
			return NP_ERR_INVALID;
	}
	if (sodium_base642bin(out, max, s, len, NULL, n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + len) {
		*n = 0;
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static void
b64_same(const char *str, size_t len, size_t max)
{
	struct json_object *o = json_object_new_object();
	uint8_t got[128], want[128];
	size_t ng = 77, nw = 77;
	int rg, rw;

	ck_assert_uint_le(max, sizeof(got));
	json_object_object_add(o, "box", json_object_new_string_len(str,
	    (int)len));
	rg = np_msg_b64(o, "box", got, max, &ng);
	rw = ref_b64(str, len, want, max, &nw);
	if (rg != rw || ng != nw || (rg == NP_OK && memcmp(got, want, ng))) {
		ck_abort_msg("base64 '%.*s' (max %zu): got %d/%zu, libsodium "
		    "%d/%zu", (int)len, str, max, rg, ng, rw, nw);
	}
	json_object_put(o);
}

/* The table decoder accepts exactly what libsodium's does, and decodes
 * it to the same bytes: encodings of every length, their last character
 * changed (padding bits), short strings over an alphabet of trouble, and
 * random ones. */
START_TEST(base64_same_as_libsodium)
{
	static const char set[] = "AQgwBZaz09+/=-_ .\x80\xff";
	uint8_t data[96], seed[randombytes_SEEDBYTES] = {7};
	char enc[160], str[24];
	size_t len, i, j, k, n;

	for (len = 0; len <= sizeof(data); len++) {
		randombytes_buf(data, len);
		sodium_bin2base64(enc, sizeof(enc), data, len,
				  sodium_base64_VARIANT_ORIGINAL);
		n = strlen(enc);
		b64_same(enc, n, 128);
		b64_same(enc, n, len);
		if (len > 0)
			b64_same(enc, n, len - 1);
		for (j = 0; j < 64 && n > 0; j++) {
			enc[n - 1 - (n > 1 && enc[n - 1] == '=' &&
			    enc[n - 2] == '=' ? 2 : enc[n - 1] == '=' ? 1 : 0)]
			    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
			      "xyz0123456789+/"[j];
			b64_same(enc, n, 128);
		}
	}
	/* Every string of up to 4 characters over a small set. */
	for (len = 0; len <= 4; len++) {
		size_t total = 1;

		for (i = 0; i < len; i++)
			total *= sizeof(set) - 1;
		for (k = 0; k < total; k++) {
			size_t v = k;

			for (i = 0; i < len; i++) {
				str[i] = set[v % (sizeof(set) - 1)];
				v /= sizeof(set) - 1;
			}
			b64_same(str, len, 128);
			b64_same(str, len, 2);
		}
	}
	/* Random strings of 5..20 characters. */
	for (k = 0; k < 200000; k++) {
		uint8_t r[24];

		seed[1] = (uint8_t)k;
		seed[2] = (uint8_t)(k >> 8);
		seed[3] = (uint8_t)(k >> 16);
		randombytes_buf_deterministic(r, sizeof(r), seed);
		len = 5 + r[0] % 16;
		for (i = 0; i < len; i++)
			str[i] = set[r[i + 1] % (sizeof(set) - 1)];
		b64_same(str, len, 128);
	}
}
END_TEST

/* Reply tags: 1..32 of [a-z0-9] on send, monitor and msg only. */
START_TEST(tags)
{
	static const char *const types[] = {"send", "monitor", "msg"};
	static const char *const good[] = {
	    "\"a\"", "\"0\"", "\"abcdefghijklmnopqrstuvwxyz012345\"",
	    "\"6789\"", "\"0123456789abcdef0123456789abcdef\"",
	};
	static const char *const bad[] = {
	    "\"\"",
	    "\"abcdefghijklmnopqrstuvwxyz0123456\"",
	    "\"A\"",
	    "\"abC\"",
	    "\"a-b\"",
	    "\"a_b\"",
	    "\"a.b\"",
	    "\"a b\"",
	    "\" a\"",
	    "\"a\\n\"",
	    "\"@a\"",
	    "\"caf\\u00e9\"",
	    "\"a\\u0000b\"",
	    "1",
	    "null",
	    "[\"a\"]",
	    "{}",
	    "true",
	};
	size_t i, j;

	for (i = 0; i < 3; i++) {
		for (j = 0; j < sizeof(good) / sizeof(good[0]); j++)
			expect(types[i], "tag", good[j], NP_OK);
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			expect(types[i], "tag", bad[j], NP_ERR_INVALID);
		expect(types[i], "tag", NULL, NP_OK);
	}
	/* No other type carries a tag. */
	expect("ack", "tag", "\"a\"", NP_ERR_INVALID);
	expect("lookup", "tag", "\"a\"", NP_ERR_INVALID);
	expect("ping", "tag", "\"a\"", NP_ERR_INVALID);
	expect("result", "tag", "\"a\"", NP_ERR_INVALID);
	expect("auth", "tag", "\"a\"", NP_ERR_INVALID);
}
END_TEST

START_TEST(tag_helpers)
{
	char t[NP_TAG_MAX + 1], u[NP_TAG_MAX + 1], long33[40];

	ck_assert_int_eq(np_tag_valid("a"), 1);
	ck_assert_int_eq(np_tag_valid("z9"), 1);
	ck_assert_int_eq(np_tag_valid("abcdefghijklmnopqrstuvwxyz012345"), 1);
	ck_assert_int_eq(np_tag_valid("abcdefghijklmnopqrstuvwxyz0123456"), 0);
	memset(long33, 'a', sizeof(long33) - 1);
	long33[sizeof(long33) - 1] = '\0';
	ck_assert_int_eq(np_tag_valid(long33), 0);
	ck_assert_int_eq(np_tag_valid(""), 0);
	ck_assert_int_eq(np_tag_valid(NULL), 0);
	ck_assert_int_eq(np_tag_valid("A"), 0);
	ck_assert_int_eq(np_tag_valid("a-b"), 0);
	ck_assert_int_eq(np_tag_valid("a\n"), 0);
	ck_assert_int_eq(np_tag_valid("\xc3\xa9"), 0);
	memset(t, 'x', sizeof(t));
	np_tag_new(t);
	ck_assert_uint_eq(strlen(t), 32);
	ck_assert_int_eq(np_tag_valid(t), 1);
	ck_assert_uint_eq(strspn(t, "0123456789abcdef"), 32);
	np_tag_new(u);
	ck_assert_str_ne(t, u);
}
END_TEST

static Suite *
msg_suite(void)
{
	Suite *s = suite_create("msg");
	TCase *types = tcase_create("types");
	TCase *members = tcase_create("members");

	tcase_add_loop_test(types, every_type_valid, 0, NSAMPLES);
	tcase_add_loop_test(types, wrong_direction, 0, NSAMPLES);
	tcase_add_loop_test(types, missing_required, 0, NSAMPLES);
	tcase_add_loop_test(types, unknown_member, 0, NSAMPLES);
	tcase_add_loop_test(types, wrong_types, 0, NSAMPLES);
	tcase_add_test(types, not_messages);
	suite_add_tcase(s, types);
	tcase_add_test(members, members_per_protocol);
	tcase_add_test(members, int_ranges);
	tcase_add_test(members, strings);
	tcase_add_test(members, base64);
	tcase_add_test(members, base64_same_as_libsodium);
	tcase_add_test(members, box_sizes);
	tcase_add_test(members, rotation_chain);
	tcase_add_test(members, accessors);
	tcase_add_test(members, tags);
	tcase_add_test(members, tag_helpers);
	suite_add_tcase(s, members);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(msg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
