/*
 * Control-plane message validator, driven by one table (docs/PROTOCOL.md).
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "err.h"
#include "ident.h"
#include "key.h"
#include "msg.h"

enum kind {
	K_INT,	 /* integer in [min, max] */
	K_B64,	 /* base64 (padded) decoding to [min, max] bytes */
	K_IDENT, /* "@name" */
	K_MID,	 /* 32 lowercase hex digits */
	K_CODE,	 /* one of the error codes */
	K_TOKEN, /* 1..128 printable ASCII */
	K_TEXT,	 /* 0..512 bytes of text */
	K_ROT,	 /* rotation chain */
	K_TAG,	 /* 1..32 of [a-z0-9] */
};

struct member {
	const char *key;
	enum kind kind;
	int required;
	int64_t min, max;
};

#define MAX_MEMBERS 8

struct msgtype {
	const char *name;
	enum np_msg_dir dir;
	struct member m[MAX_MEMBERS]; /* ends at key == NULL */
};

#define TS_MAX (INT64_C(1) << 53)
#define RID_MAX INT64_C(2147483647)
#define TTL_MAX 604800
#define BOX_MAX 49152
#define TOKEN_MAX 128
#define TEXT_MAX 512
#define ROT_MAX 16

/* clang-format off */
#define REQ 1
#define OPT 0
#define M_RID(req) { "rid", K_INT, req, 1, RID_MAX }
#define M_ID(key, req) { key, K_IDENT, req, 0, 0 }
#define M_PK(req) { "pk", K_B64, req, 32, 32 }
#define M_SIG(key) { key, K_B64, REQ, 64, 64 }
#define M_TAG { "tag", K_TAG, OPT, 1, NP_TAG_MAX }

static const struct msgtype msgtypes[] = {
	{ "hello", NP_MSG_TO_CLIENT, {
		{ "v", K_INT, REQ, 1, 1 },
		{ "nonce", K_B64, REQ, 32, 32 },
	} },
	{ "auth", NP_MSG_TO_SERVER, {
		M_ID("id", REQ),
		M_SIG("sig"),
	} },
	{ "enroll", NP_MSG_TO_SERVER, {
		M_ID("id", REQ),
		M_PK(REQ),
		{ "token", K_TOKEN, REQ, 1, TOKEN_MAX },
		M_SIG("sig"),
	} },
	{ "welcome", NP_MSG_TO_CLIENT, {
		M_ID("id", REQ),
	} },
	{ "error", NP_MSG_TO_CLIENT, {
		M_RID(OPT),
		{ "code", K_CODE, REQ, 0, 0 },
		{ "msg", K_TEXT, REQ, 0, TEXT_MAX },
	} },
	{ "result", NP_MSG_TO_CLIENT, {
		M_RID(REQ),
		M_ID("id", OPT),
		M_PK(OPT),
		{ "rot", K_ROT, OPT, 0, ROT_MAX },
		{ "ts", K_INT, OPT, 0, TS_MAX },
	} },
	{ "lookup", NP_MSG_TO_SERVER, {
		M_RID(REQ),
		M_ID("id", REQ),
	} },
	{ "send", NP_MSG_TO_SERVER, {
		M_RID(REQ),
		M_ID("to", REQ),
		{ "mid", K_MID, REQ, 0, 0 },
		{ "ttl", K_INT, REQ, 1, TTL_MAX },
		{ "box", K_B64, REQ, 1, BOX_MAX },
		M_TAG,
	} },
	{ "monitor", NP_MSG_TO_SERVER, {
		M_RID(REQ),
		M_TAG,
	} },
	{ "ping", NP_MSG_TO_SERVER, {
		M_RID(REQ),
	} },
	{ "rotate", NP_MSG_TO_SERVER, {
		M_RID(REQ),
		M_PK(REQ),
		M_SIG("sig"),
		M_SIG("nsig"),
	} },
	{ "msg", NP_MSG_TO_CLIENT, {
		{ "seq", K_INT, REQ, 1, TS_MAX },
		M_ID("from", REQ),
		{ "mid", K_MID, REQ, 0, 0 },
		{ "ts", K_INT, REQ, 0, TS_MAX },
		{ "box", K_B64, REQ, 1, BOX_MAX },
		M_TAG,
	} },
	{ "ack", NP_MSG_TO_SERVER, {
		{ "seq", K_INT, REQ, 1, TS_MAX },
	} },
};

static const char *const error_codes[] = {
	"proto", "auth", "token", "exists", "not_found", "revoked", "limit",
	"too_big", "internal",
};
/* clang-format on */

/* A rotation record: exactly these three members. */
static const struct member rot_members[] = {
    {"old", K_B64, REQ, 32, 32},
    {"new", K_B64, REQ, 32, 32},
    {"sig", K_B64, REQ, 64, 64},
};

/* The string value of v, NULL unless v is a string without a NUL. */
static const char *
str_of(struct json_object *v, size_t *len)
{
	const char *s;
	int n;

	if (!json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	n = json_object_get_string_len(v);
	if (s == NULL || n < 0 || strlen(s) != (size_t)n)
		return NULL;
	*len = (size_t)n;
	return s;
}

/* The value of each byte as a base64 character, -1 for anything else
 * (a table: random base64 defeats the branch predictor of range tests). */
static const int8_t b64_tab[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/*
 * Standard base64 with padding, strictly: groups of four characters of
 * the alphabet, the last group may end in "=" or "==" when the bits it
 * leaves unused are zero; the whole string, nothing else.  That is what
 * sodium_base642bin (ORIGINAL, no ignore, end at len) accepts, but it is
 * decoded by value, not in constant time: everything on the wire is seen
 * by its reader anyway (signatures, public keys, nonces, sealed boxes),
 * and libsodium's constant-time decoder was most of np-server's CPU time
 * per 4 KiB box (docs/BENCHMARKS.md, np-server scale).
 */
static int
b64_decode(const char *s, size_t len, uint8_t *out, size_t max, size_t *n)
{
	/* out == NULL: check s and count its bytes, write none. */
	const unsigned char *u = (const unsigned char *)s;
	size_t i, k = 0, pad = 0, body;
	int a, b, c, d;

	*n = 0;
	if (len % 4 != 0)
		return NP_ERR_INVALID;
	if (len > 0 && s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > max)
		return NP_ERR_INVALID;
	if (len == 0)
		return NP_OK;
	/* Every group but the last: four characters, three bytes. */
	body = len - 4;
	for (i = 0; i < body; i += 4) {
		a = b64_tab[u[i]];
		b = b64_tab[u[i + 1]];
		c = b64_tab[u[i + 2]];
		d = b64_tab[u[i + 3]];
		if ((a | b | c | d) < 0)
			return NP_ERR_INVALID;
		if (out != NULL) {
			out[k] = (uint8_t)(a << 2 | b >> 4);
			out[k + 1] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
			out[k + 2] = (uint8_t)((c & 0x03) << 6 | d);
		}
		k += 3;
	}
	/* The last, which may be padded; its unused bits must be zero. */
	a = b64_tab[u[i]];
	b = b64_tab[u[i + 1]];
	c = pad == 2 ? 0 : b64_tab[u[i + 2]];
	d = pad >= 1 ? 0 : b64_tab[u[i + 3]];
	if ((a | b | c | d) < 0 || (pad == 2 && (b & 0x0f) != 0) ||
	    (pad == 1 && (c & 0x03) != 0))
		return NP_ERR_INVALID;
	if (out != NULL) {
		out[k] = (uint8_t)(a << 2 | b >> 4);
		if (pad < 2)
			out[k + 1] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
		if (pad < 1)
			out[k + 2] = (uint8_t)((c & 0x03) << 6 | d);
	}
	*n = k + 3 - pad;
	return NP_OK;
}

/* Decoded length of a base64 string in [min, max] bytes? */
static int
check_b64(const char *s, size_t len, size_t min, size_t max)
{
	size_t n;
	int r;

	if (len >
	    sodium_base64_ENCODED_LEN(max, sodium_base64_VARIANT_ORIGINAL))
		return NP_ERR_INVALID;
	r = b64_decode(s, len, NULL, max, &n);
	if (r == NP_OK && n < min)
		r = NP_ERR_INVALID;
	return r;
}

static int
check_mid(const char *s, size_t len)
{
	size_t i;

	if (len != 32)
		return NP_ERR_INVALID;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
check_code(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++) {
		if (strcmp(s, error_codes[i]) == 0)
			return NP_OK;
	}
	return NP_ERR_INVALID;
}

static int
check_token(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > TOKEN_MAX)
		return NP_ERR_INVALID;
	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
check_tag(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > NP_TAG_MAX)
		return NP_ERR_INVALID;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z')))
			return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
np_tag_valid(const char *s)
{
	if (s == NULL)
		return 0;
	return check_tag(s, strnlen(s, NP_TAG_MAX + 1)) == NP_OK;
}

void
np_tag_new(char out[NP_TAG_MAX + 1])
{
	uint8_t r[NP_TAG_MAX / 2];

	(void)np_crypto_init(); /* idempotent; randombytes needs it */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, NP_TAG_MAX + 1, r, sizeof(r));
}

static int check_value(const struct member *m, struct json_object *v);

/* An object with exactly the members of list[0..n), all required. */
static int
check_exact(struct json_object *o, const struct member *list, size_t n)
{
	struct json_object *v;
	size_t i;
	int r;

	if (!json_object_is_type(o, json_type_object) ||
	    (size_t)json_object_object_length(o) != n)
		return NP_ERR_INVALID;
	for (i = 0; i < n; i++) {
		if (!json_object_object_get_ex(o, list[i].key, &v))
			return NP_ERR_INVALID;
		if ((r = check_value(&list[i], v)) != NP_OK)
			return r;
	}
	return NP_OK;
}

static int
check_rot(struct json_object *v, int64_t max)
{
	size_t i, n;
	int r;

	if (!json_object_is_type(v, json_type_array))
		return NP_ERR_INVALID;
	n = json_object_array_length(v);
	if (n > (size_t)max)
		return NP_ERR_INVALID;
	for (i = 0; i < n; i++) {
		if ((r = check_exact(
			 json_object_array_get_idx(v, i), rot_members,
			 sizeof(rot_members) / sizeof(rot_members[0]))) !=
		    NP_OK)
			return r;
	}
	return NP_OK;
}

static int
check_int(struct json_object *v, int64_t min, int64_t max)
{
	int64_t x;

	if (!json_object_is_type(v, json_type_int))
		return NP_ERR_INVALID;
	x = json_object_get_int64(v);
	/* json-c saturates out-of-range numbers; the caps are far below. */
	if (x < min || x > max)
		return NP_ERR_INVALID;
	return NP_OK;
}

static int
check_value(const struct member *m, struct json_object *v)
{
	const char *s;
	size_t len;

	if (m->kind == K_INT)
		return check_int(v, m->min, m->max);
	if (m->kind == K_ROT)
		return check_rot(v, m->max);
	if ((s = str_of(v, &len)) == NULL)
		return NP_ERR_INVALID;
	switch (m->kind) {
	case K_B64:
		return check_b64(s, len, (size_t)m->min, (size_t)m->max);
	case K_IDENT:
		return np_ident_valid(s) ? NP_OK : NP_ERR_INVALID;
	case K_MID:
		return check_mid(s, len);
	case K_CODE:
		return check_code(s);
	case K_TOKEN:
		return check_token(s, len);
	case K_TEXT:
		return len <= (size_t)m->max ? NP_OK : NP_ERR_INVALID;
	case K_TAG:
		return check_tag(s, len);
	default:
		return NP_ERR_INTERNAL;
	}
}

static const struct msgtype *
find_type(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(msgtypes) / sizeof(msgtypes[0]); i++) {
		if (strcmp(msgtypes[i].name, name) == 0)
			return &msgtypes[i];
	}
	return NULL;
}

static const struct member *
find_member(const struct msgtype *mt, const char *key)
{
	const struct member *m;

	for (m = mt->m; m < mt->m + MAX_MEMBERS && m->key != NULL; m++) {
		if (strcmp(m->key, key) == 0)
			return m;
	}
	return NULL;
}

int
np_msg_validate(struct json_object *obj, enum np_msg_dir dir, const char **type)
{
	const struct msgtype *mt;
	const struct member *m;
	struct json_object *tv;
	const char *t;
	size_t len;
	int r;

	if (type != NULL)
		*type = NULL;
	if (obj == NULL || !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "t", &tv) ||
	    (t = str_of(tv, &len)) == NULL)
		return NP_ERR_INVALID;
	if ((mt = find_type(t)) == NULL || mt->dir != dir)
		return NP_ERR_PROTO;
	json_object_object_foreach(obj, key, val)
	{
		if (strcmp(key, "t") == 0)
			continue;
		if ((m = find_member(mt, key)) == NULL)
			return NP_ERR_INVALID;
		if ((r = check_value(m, val)) != NP_OK)
			return r;
	}
	for (m = mt->m; m < mt->m + MAX_MEMBERS && m->key != NULL; m++) {
		if (m->required &&
		    !json_object_object_get_ex(obj, m->key, NULL))
			return NP_ERR_INVALID;
	}
	if (type != NULL)
		*type = mt->name;
	return NP_OK;
}

const char *
np_msg_str(struct json_object *obj, const char *key)
{
	struct json_object *v;
	size_t len;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return str_of(v, &len);
}

int
np_msg_int(struct json_object *obj, const char *key, int64_t *v)
{
	struct json_object *o;

	*v = -1;
	if (obj == NULL || !json_object_object_get_ex(obj, key, &o))
		return NP_ERR_NOT_FOUND;
	if (!json_object_is_type(o, json_type_int))
		return NP_ERR_INVALID;
	*v = json_object_get_int64(o);
	return NP_OK;
}

int
np_msg_b64(struct json_object *obj, const char *key, uint8_t *out, size_t max,
	   size_t *n)
{
	struct json_object *v;
	const char *s;
	size_t len;

	*n = 0;
	if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
		return NP_ERR_NOT_FOUND;
	if ((s = str_of(v, &len)) == NULL)
		return NP_ERR_INVALID;
	return b64_decode(s, len, out, max, n);
}
