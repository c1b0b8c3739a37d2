/* Unit tests for lib/box.c: end-to-end boxes and the replay cache. */
#include <sys/stat.h>

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "err.h"
#include "key.h"

#define NOW 1700000000000LL
#define MID1 "0123456789abcdef0123456789abcdef"
#define MID2 "fedcba9876543210fedcba9876543210"

static struct np_key *alice, *bob, *carol;
static char tmpdir[64];

static void
setup(void)
{
	uint8_t seed[32];

	memset(seed, 'a', 32);
	ck_assert_int_eq(np_key_from_seed("@alice", seed, &alice), NP_OK);
	memset(seed, 'b', 32);
	ck_assert_int_eq(np_key_from_seed("@bob", seed, &bob), NP_OK);
	memset(seed, 'c', 32);
	ck_assert_int_eq(np_key_from_seed("@carol", seed, &carol), NP_OK);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/np-test-box-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

static void
teardown(void)
{
	np_key_free(alice);
	np_key_free(bob);
	np_key_free(carol);
	ck_assert_int_eq(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int64_t
real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A box from alice to bob with a body {"k":"v"}, ttl 60, mid MID1. */
static struct np_buf *
seal_ab(int64_t now)
{
	struct np_buf *b = np_buf_new(NP_BOX_MAX);
	struct json_object *body = json_object_new_object();

	json_object_object_add(body, "k", json_object_new_string("v"));
	ck_assert_int_eq(np_box_seal(alice, np_key_pk(bob), "@bob", "sess.req",
	    "s-1", body, 60, now, MID1, b, NULL), NP_OK);
	json_object_put(body);
	return b;
}

/* A box with an arbitrary plaintext, alice -> bob. */
static struct np_buf *
seal_raw(const char *pt)
{
	struct np_buf *b = np_buf_new(NP_BOX_MAX + 1024);
	uint8_t xpk[32], *dst;
	size_t n = strlen(pt);

	ck_assert_int_eq(np_pk_box_pk(np_key_pk(bob), xpk), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, n + NP_BOX_OVERHEAD, &dst), NP_OK);
	randombytes_buf(dst, 24);
	ck_assert_int_eq(crypto_box_easy(dst + 24, (const uint8_t *)pt, n, dst,
	    xpk, np_key_box_sk(alice)), 0);
	return b;
}

static int
open_bob(const struct np_buf *b, const char *from, const char *mid,
    int64_t now, struct np_replay *rc)
{
	struct np_box_msg *m = NULL;
	int r;

	r = np_box_open(bob, np_key_pk(alice), from, mid, np_buf_ptr(b),
	    np_buf_len(b), now, rc, &m);
	if (r == NP_OK) {
		ck_assert_ptr_nonnull(m);
	} else {
		ck_assert_ptr_null(m);
	}
	np_box_msg_free(m);
	return r;
}

static int
parse_str(const char *s)
{
	struct np_box_msg *m = NULL;
	int r;

	r = np_box_parse_plain((const uint8_t *)s, strlen(s), &m);
	if (r == NP_OK) {
		ck_assert_ptr_nonnull(m);
	} else {
		ck_assert_ptr_null(m);
	}
	np_box_msg_free(m);
	return r;
}

START_TEST(t_mid)
{
	char a[33], b[33];

	ck_assert_int_eq(np_mid_new(a), NP_OK);
	ck_assert_int_eq(np_mid_new(b), NP_OK);
	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_str_ne(a, b);
	ck_assert(np_mid_valid(a));
	ck_assert(np_mid_valid(MID1));
	ck_assert(!np_mid_valid("0123456789ABCDEF0123456789abcdef"));
	ck_assert(!np_mid_valid("0123456789abcdef0123456789abcde"));
	ck_assert(!np_mid_valid("0123456789abcdef0123456789abcdef0"));
	ck_assert(!np_mid_valid("0123456789abcdeg0123456789abcdef"));
	ck_assert(!np_mid_valid(""));
	ck_assert(!np_mid_valid(NULL));
	ck_assert(np_box_type_valid("session.request-v1_x"));
	ck_assert(!np_box_type_valid(""));
	ck_assert(!np_box_type_valid("Upper"));
	ck_assert(!np_box_type_valid("a b"));
	ck_assert(!np_box_type_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	ck_assert(np_box_type_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(t_roundtrip)
{
	struct np_buf *b = seal_ab(NOW);
	struct np_box_msg *m;
	struct json_object *v;

	ck_assert_uint_gt(np_buf_len(b), NP_BOX_OVERHEAD);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1,
	    np_buf_ptr(b), np_buf_len(b), NOW + 1000, NULL, &m), NP_OK);
	ck_assert_str_eq(m->type, "sess.req");
	ck_assert_str_eq(m->from, "@alice");
	ck_assert_str_eq(m->to, "@bob");
	ck_assert_str_eq(m->session, "s-1");
	ck_assert_int_eq(m->ts, NOW);
	ck_assert_uint_eq(m->ttl, 60);
	ck_assert_str_eq(m->id, MID1);
	ck_assert(json_object_object_get_ex(m->body, "k", &v));
	ck_assert_str_eq(json_object_get_string(v), "v");
	np_box_msg_free(m);
	ck_assert_int_eq(open_bob(b, "@alice", NULL, NOW, NULL), NP_OK);
	np_buf_free(b);
	np_box_msg_free(NULL);
}
END_TEST

START_TEST(t_defaults)
{
	struct np_buf *b = np_buf_new(NP_BOX_MAX);
	struct np_box_msg *m;
	char mid[33];

	ck_assert_int_eq(np_box_seal(alice, np_key_pk(bob), "@bob", "ping",
	    NULL, NULL, 1, NOW, NULL, b, mid), NP_OK);
	ck_assert(np_mid_valid(mid));
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", mid,
	    np_buf_ptr(b), np_buf_len(b), NOW, NULL, &m), NP_OK);
	ck_assert_str_eq(m->session, "");
	ck_assert_str_eq(m->id, mid);
	ck_assert(json_object_is_type(m->body, json_type_object));
	ck_assert_int_eq(json_object_object_length(m->body), 0);
	np_box_msg_free(m);
	np_buf_free(b);
}
END_TEST

START_TEST(t_seal_bad_args)
{
	struct np_buf *b = np_buf_new(NP_BOX_MAX);
	struct json_object *arr = json_object_new_array();
	const uint8_t *pk = np_key_pk(bob);

	ck_assert_int_eq(np_box_seal(alice, pk, "bob", "t", NULL, NULL, 1,
	    NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "T", NULL, NULL, 1,
	    NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", "a\nb", NULL, 1,
	    NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", NULL, NULL, 0,
	    NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", NULL, NULL,
	    NP_BOX_MAX_TTL + 1, NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", NULL, NULL, 1,
	    -1, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", NULL, NULL, 1,
	    NOW, "XYZ", b, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_box_seal(alice, pk, "@bob", "t", NULL, arr, 1,
	    NOW, NULL, b, NULL), NP_ERR_INVALID);
	ck_assert_uint_eq(np_buf_len(b), 0);
	json_object_put(arr);
	np_buf_free(b);
}
END_TEST

START_TEST(t_too_big)
{
	struct np_buf *b = np_buf_new(2 * NP_BOX_MAX), *big;
	struct json_object *body = json_object_new_object();
	char *s = malloc(NP_BOX_MAX);
	uint8_t *z = calloc(1, NP_BOX_MAX + 1);
	struct np_box_msg *m;

	memset(s, 'x', NP_BOX_MAX - 1);
	s[NP_BOX_MAX - 1] = '\0';
	json_object_object_add(body, "x", json_object_new_string(s));
	ck_assert_int_eq(np_box_seal(alice, np_key_pk(bob), "@bob", "t", NULL,
	    body, 1, NOW, NULL, b, NULL), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", NULL, z,
	    NP_BOX_MAX + 1, NOW, NULL, &m), NP_ERR_TOO_BIG);
	/* A box of exactly the cap passes the length check. */
	s[NP_BOX_MAX - NP_BOX_OVERHEAD] = '\0';
	big = seal_raw(s);
	ck_assert_uint_eq(np_buf_len(big), NP_BOX_MAX);
	ck_assert_int_eq(open_bob(big, "@alice", NULL, NOW, NULL),
	    NP_ERR_INVALID);
	np_buf_free(big);
	json_object_put(body);
	free(s);
	free(z);
	np_buf_free(b);
}
END_TEST

START_TEST(t_tampered)
{
	struct np_buf *b = seal_ab(NOW);
	size_t len = np_buf_len(b), offs[] = { 0, 12, 23, 24, 30, 39, 40, 50,
		len / 2, len - 1 };
	struct np_box_msg *m;
	uint8_t *c = malloc(len);
	size_t i;

	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(c, np_buf_ptr(b), len);
		c[offs[i]] ^= 0x20;
		ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice",
		    MID1, c, len, NOW, NULL, &m), NP_ERR_CRYPTO);
		ck_assert_ptr_null(m);
	}
	memcpy(c, np_buf_ptr(b), len);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1, c,
	    len - 1, NOW, NULL, &m), NP_ERR_CRYPTO);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1, c,
	    NP_BOX_OVERHEAD, NOW, NULL, &m), NP_ERR_CRYPTO);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1, c,
	    NP_BOX_OVERHEAD - 1, NOW, NULL, &m), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1, c,
	    0, NOW, NULL, &m), NP_ERR_TRUNCATED);
	free(c);
	np_buf_free(b);
}
END_TEST

START_TEST(t_wrong_keys)
{
	struct np_buf *b = seal_ab(NOW);
	struct np_box_msg *m;
	uint8_t bad_pk[32];

	/* carol is not the recipient */
	ck_assert_int_eq(np_box_open(carol, np_key_pk(alice), "@alice", MID1,
	    np_buf_ptr(b), np_buf_len(b), NOW, NULL, &m), NP_ERR_CRYPTO);
	/* bob believes it came from carol */
	ck_assert_int_eq(np_box_open(bob, np_key_pk(carol), "@alice", MID1,
	    np_buf_ptr(b), np_buf_len(b), NOW, NULL, &m), NP_ERR_CRYPTO);
	/* a public key that is not a curve point */
	memset(bad_pk, 0xff, sizeof(bad_pk));
	ck_assert_int_eq(np_box_open(bob, bad_pk, "@alice", MID1,
	    np_buf_ptr(b), np_buf_len(b), NOW, NULL, &m), NP_ERR_CRYPTO);
	np_buf_free(b);
}
END_TEST

START_TEST(t_wrong_peer)
{
	struct np_buf *b = seal_ab(NOW), *c = np_buf_new(NP_BOX_MAX);

	ck_assert_int_eq(open_bob(b, "@mallory", MID1, NOW, NULL),
	    NP_ERR_WRONG_PEER);
	ck_assert_int_eq(open_bob(b, NULL, MID1, NOW, NULL),
	    NP_ERR_WRONG_PEER);
	ck_assert_int_eq(open_bob(b, "@alice", MID2, NOW, NULL),
	    NP_ERR_WRONG_PEER);
	/* Sealed to bob's key but addressed to carol inside. */
	ck_assert_int_eq(np_box_seal(alice, np_key_pk(bob), "@carol", "t",
	    NULL, NULL, 60, NOW, MID1, c, NULL), NP_OK);
	ck_assert_int_eq(open_bob(c, "@alice", MID1, NOW, NULL),
	    NP_ERR_WRONG_PEER);
	np_buf_free(b);
	np_buf_free(c);
}
END_TEST

START_TEST(t_stale)
{
	struct np_buf *b = seal_ab(NOW);
	int64_t end = NOW + 60 * 1000 + NP_BOX_SKEW_MS;

	ck_assert_int_eq(open_bob(b, "@alice", MID1, end, NULL), NP_OK);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, end + 1, NULL),
	    NP_ERR_STALE);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW - NP_BOX_SKEW_MS,
	    NULL), NP_OK);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW - NP_BOX_SKEW_MS - 1,
	    NULL), NP_ERR_STALE);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, 0, NULL), NP_ERR_STALE);
	np_buf_free(b);
}
END_TEST

/* np_box_open_stale: only authentic boxes outside their window. */
static int
open_stale_bob(const struct np_buf *b, const char *from, int64_t now,
    int64_t *off)
{
	struct np_box_msg *m = NULL;
	int r;

	r = np_box_open_stale(bob, np_key_pk(alice), from, MID1,
	    np_buf_ptr(b), np_buf_len(b), now, &m);
	if (r == NP_OK) {
		ck_assert_ptr_nonnull(m);
		ck_assert_str_eq(m->session, "s-1");
		*off = np_box_clock_off_ms(m, now);
	} else {
		ck_assert_ptr_null(m);
	}
	np_box_msg_free(m);
	return r;
}

START_TEST(t_open_stale)
{
	struct np_buf *b = seal_ab(NOW);
	struct np_box_msg *m = NULL;
	int64_t end = NOW + 60 * 1000 + NP_BOX_SKEW_MS, off = 0;
	static uint8_t tmp[NP_BOX_MAX];
	size_t len;
	char txt[48];

	/* Inside the window: refused (no way around the time check). */
	ck_assert_int_eq(open_stale_bob(b, "@alice", NOW, &off),
	    NP_ERR_INVALID);
	ck_assert_int_eq(open_stale_bob(b, "@alice", end, &off),
	    NP_ERR_INVALID);
	ck_assert_int_eq(open_stale_bob(b, "@alice", NOW - NP_BOX_SKEW_MS,
	    &off), NP_ERR_INVALID);
	/* The sender's clock 300 s ahead of ours: ts is in our future. */
	ck_assert_int_eq(open_stale_bob(b, "@alice", NOW - 300000, &off),
	    NP_OK);
	ck_assert_int_eq(off, 300000);
	np_box_off_text(off, txt, sizeof(txt));
	ck_assert_str_eq(txt, "300 s ahead of");
	/* 300 s behind. */
	ck_assert_int_eq(open_stale_bob(b, "@alice", NOW + 300000, &off),
	    NP_OK);
	ck_assert_int_eq(off, -300000);
	np_box_off_text(off, txt, sizeof(txt));
	ck_assert_str_eq(txt, "300 s behind");
	ck_assert_int_eq(open_stale_bob(b, "@alice", end + 1, &off), NP_OK);
	/* Still authenticated and routed. */
	ck_assert_int_eq(open_stale_bob(b, "@carol", NOW + 300000, &off),
	    NP_ERR_WRONG_PEER);
	len = np_buf_len(b);
	ck_assert_uint_le(len, sizeof(tmp));
	memcpy(tmp, np_buf_ptr(b), len);
	tmp[len - 1] ^= 1;
	ck_assert_int_eq(np_box_open_stale(bob, np_key_pk(alice), "@alice",
	    MID1, tmp, len, NOW + 300000, &m), NP_ERR_CRYPTO);
	ck_assert_ptr_null(m);
	np_buf_free(b);
}
END_TEST

START_TEST(t_ttl_too_big)
{
	char pt[512];
	struct np_buf *b;

	snprintf(pt, sizeof(pt), "{\"v\":1,\"type\":\"t\",\"from\":\"@alice\","
	    "\"to\":\"@bob\",\"session\":\"\",\"ts\":%lld,\"ttl\":%d,"
	    "\"id\":\"" MID1 "\",\"body\":{}}", NOW, NP_BOX_MAX_TTL + 1);
	b = seal_raw(pt);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW, NULL), NP_ERR_STALE);
	np_buf_free(b);
	snprintf(pt, sizeof(pt), "{\"v\":1,\"type\":\"t\",\"from\":\"@alice\","
	    "\"to\":\"@bob\",\"session\":\"\",\"ts\":%lld,\"ttl\":%d,"
	    "\"id\":\"" MID1 "\",\"body\":{}}", NOW, NP_BOX_MAX_TTL);
	b = seal_raw(pt);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW, NULL), NP_OK);
	np_buf_free(b);
	b = seal_raw("not json");
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW, NULL),
	    NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

START_TEST(t_replay)
{
	struct np_replay *rc = np_replay_new(16);
	struct np_buf *b = seal_ab(NOW);

	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW, rc), NP_OK);
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW + 5000, rc),
	    NP_ERR_REPLAY);
	/* Still remembered at the very end of the window. */
	ck_assert_int_eq(open_bob(b, "@alice", MID1,
	    NOW + 60000 + NP_BOX_SKEW_MS, rc), NP_ERR_REPLAY);
	ck_assert_uint_eq(np_replay_count(rc), 1);
	/* Without a cache the box still opens. */
	ck_assert_int_eq(open_bob(b, "@alice", MID1, NOW, NULL), NP_OK);
	np_replay_free(rc);
	np_buf_free(b);
	np_replay_free(NULL);
	ck_assert_ptr_null(np_replay_new(0));
}
END_TEST

START_TEST(t_replay_full)
{
	struct np_replay *rc = np_replay_new(2);
	char mid[33];

	ck_assert_int_eq(np_replay_check_add(rc, MID1, 2000, 1000), NP_OK);
	ck_assert_int_eq(np_replay_check_add(rc, MID2, 5000, 1000), NP_OK);
	ck_assert_int_eq(np_mid_new(mid), NP_OK);
	ck_assert_int_eq(np_replay_check_add(rc, mid, 5000, 1000),
	    NP_ERR_LIMIT);
	ck_assert_int_eq(np_replay_check_add(rc, MID1, 5000, 1500),
	    NP_ERR_REPLAY);
	/* MID1 expired at 2000: room again, live MID2 still known. */
	ck_assert_int_eq(np_replay_check_add(rc, mid, 5000, 2001), NP_OK);
	ck_assert_int_eq(np_replay_check_add(rc, MID2, 9000, 2001),
	    NP_ERR_REPLAY);
	ck_assert_int_eq(np_replay_check_add(rc, MID1, 9000, 2001),
	    NP_ERR_LIMIT);
	ck_assert_int_eq(np_replay_check_add(rc, "bad", 9000, 2001),
	    NP_ERR_INVALID);
	np_replay_free(rc);
}
END_TEST

static int
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int c, n = 0;

	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF) {
		n += c == '\n';
	}
	fclose(f);
	return n;
}

/* json_object_set_userdata() runs the previous delete hook: the wipe. */
static int
wiped_by_hook(struct json_object *str)
{
	const char *s = json_object_get_string(str);
	int i, n = json_object_get_string_len(str);

	json_object_set_userdata(str, NULL, NULL);
	for (i = 0; i < n; i++) {
		if (s[i] != '\0') {
			return 0;
		}
	}
	return n > 0;
}

/*
 * The strings of an opened body (a session private key travels in one)
 * are wiped when json-c frees them; np_json_wipe_on_free() marks a tree.
 */
START_TEST(t_body_wiped)
{
	struct np_buf *b = np_buf_new(NP_BOX_MAX);
	struct json_object *body = json_object_new_object(), *arr, *v;
	struct np_box_msg *m = NULL;

	arr = json_object_new_array();
	json_object_array_add(arr, json_object_new_string("in-array"));
	json_object_object_add(body, "key", json_object_new_string("SECRET"));
	json_object_object_add(body, "list", arr);
	json_object_object_add(body, "n", json_object_new_int(5));
	ck_assert_int_eq(np_box_seal(alice, np_key_pk(bob), "@bob", "sess.ok",
	    NULL, body, 60, NOW, MID1, b, NULL), NP_OK);
	ck_assert_int_eq(np_box_open(bob, np_key_pk(alice), "@alice", MID1,
	    np_buf_ptr(b), np_buf_len(b), NOW, NULL, &m), NP_OK);
	ck_assert(json_object_object_get_ex(m->body, "key", &v));
	ck_assert_str_eq(json_object_get_string(v), "SECRET");
	ck_assert(wiped_by_hook(v));
	ck_assert(json_object_object_get_ex(m->body, "list", &v));
	ck_assert(wiped_by_hook(json_object_array_get_idx(v, 0)));
	np_box_msg_free(m);
	/* A body built by a caller, marked by hand. */
	np_json_wipe_on_free(body);
	ck_assert(json_object_object_get_ex(body, "key", &v));
	ck_assert(wiped_by_hook(v));
	ck_assert(json_object_object_get_ex(body, "list", &v));
	ck_assert(wiped_by_hook(json_object_array_get_idx(v, 0)));
	np_json_wipe_on_free(NULL);
	json_object_put(body);
	np_buf_free(b);
}
END_TEST

/* Marking twice must not wipe the strings while they are still in use. */
START_TEST(t_wipe_mark_twice)
{
	struct json_object *body = json_object_new_object(), *v;

	json_object_object_add(body, "token", json_object_new_string("SECRET"));
	np_json_wipe_on_free(body);
	np_json_wipe_on_free(body);
	ck_assert(json_object_object_get_ex(body, "token", &v));
	ck_assert_str_eq(json_object_get_string(v), "SECRET");
	ck_assert(wiped_by_hook(v));
	json_object_put(body);
}
END_TEST

START_TEST(t_replay_persist)
{
	struct np_replay *rc;
	char path[128], mid[33];
	int64_t now = real_now();
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/replay", tmpdir);
	rc = np_replay_new(16);
	ck_assert_int_eq(np_replay_persist(rc, path), NP_OK);
	ck_assert_int_eq(np_replay_persist(rc, path), NP_ERR_INVALID);
	ck_assert_int_eq(np_replay_check_add(rc, MID1, now + 600000, now),
	    NP_OK);
	ck_assert_int_eq(np_replay_check_add(rc, MID2, now - 1, now), NP_OK);
	np_replay_free(rc);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* Garbage and expired lines are skipped. */
	f = fopen(path, "a");
	fprintf(f, "garbage\n%s 12\n\nXYZ 99999999999999\n%s\n", MID2, MID2);
	fclose(f);
	rc = np_replay_new(16);
	ck_assert_int_eq(np_replay_persist(rc, path), NP_OK);
	ck_assert_uint_eq(np_replay_count(rc), 1);
	ck_assert_int_eq(np_replay_check_add(rc, MID1, now + 600000, now),
	    NP_ERR_REPLAY);
	ck_assert_int_eq(np_replay_check_add(rc, MID2, now + 600000, now),
	    NP_OK);
	np_replay_free(rc);
	ck_assert_int_eq(count_lines(path), 2);
	/* The file is compacted as entries expire. */
	rc = np_replay_new(1000);
	ck_assert_int_eq(np_replay_persist(rc, path), NP_OK);
	for (int i = 0; i < 300; i++) {
		ck_assert_int_eq(np_mid_new(mid), NP_OK);
		ck_assert_int_eq(np_replay_check_add(rc, mid, now + 10 + i,
		    now + i), NP_OK);
	}
	ck_assert_int_le(count_lines(path), 2 * (int)np_replay_count(rc) + 64);
	ck_assert_int_eq(np_replay_check_add(rc, MID1, now + 600000, now + 300),
	    NP_ERR_REPLAY);
	np_replay_free(rc);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* A group-writable file is refused. */
	ck_assert_int_eq(chmod(path, 0620), 0);
	rc = np_replay_new(16);
	ck_assert_int_eq(np_replay_persist(rc, path), NP_ERR_PERM);
	np_replay_free(rc);
}
END_TEST

/* ---- the plaintext parser ---- */

#define P_HEAD "{\"v\":1,\"type\":\"t\",\"from\":\"@alice\",\"to\":\"@bob\","
#define P_GOOD P_HEAD "\"session\":\"s\",\"ts\":1,\"ttl\":2,\"id\":\"" MID1 \
	"\",\"body\":{}}"

/* P_GOOD with member key's value replaced by val (NULL: removed). */
static int
parse_with(const char *key, const char *val)
{
	const char *keys[] = { "v", "type", "from", "to", "session", "ts",
		"ttl", "id", "body" };
	const char *vals[] = { "1", "\"t\"", "\"@alice\"", "\"@bob\"",
		"\"s\"", "1", "2", "\"" MID1 "\"", "{}" };
	char buf[8192];
	size_t i, n = 0;

	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{");
	for (i = 0; i < 9; i++) {
		if (strcmp(keys[i], key) == 0 && val == NULL) {
			continue;
		}
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":%s",
		    n > 1 ? "," : "", keys[i],
		    strcmp(keys[i], key) == 0 ? val : vals[i]);
	}
	snprintf(buf + n, sizeof(buf) - n, "}");
	return parse_str(buf);
}

START_TEST(t_parse_good)
{
	struct np_box_msg *m;

	ck_assert_int_eq(parse_str(P_GOOD), NP_OK);
	ck_assert_int_eq(parse_with("v", "1"), NP_OK);
	ck_assert_int_eq(parse_str(" " P_GOOD), NP_OK);
	ck_assert_int_eq(parse_with("body", "{\"a\":[1,{\"b\":null}]}"),
	    NP_OK);
	ck_assert_int_eq(parse_with("session", "\"\""), NP_OK);
	ck_assert_int_eq(parse_with("ttl", "0"), NP_OK);
	ck_assert_int_eq(parse_with("ttl", "4294967295"), NP_OK);
	ck_assert_int_eq(np_box_parse_plain((const uint8_t *)P_GOOD,
	    strlen(P_GOOD), &m), NP_OK);
	ck_assert_str_eq(m->type, "t");
	ck_assert_int_eq(m->ts, 1);
	ck_assert_uint_eq(m->ttl, 2);
	np_box_msg_free(m);
}
END_TEST

START_TEST(t_parse_bad)
{
	const char *members[] = { "v", "type", "from", "to", "session", "ts",
		"ttl", "id", "body" };
	char deep[128], big[128];
	size_t i;

	for (i = 0; i < 9; i++) {
		ck_assert_int_eq(parse_with(members[i], NULL), NP_ERR_INVALID);
	}
	/* wrong types and values */
	ck_assert_int_eq(parse_with("v", "2"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("v", "\"1\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("v", "1.0"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("v", "true"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("type", "1"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("type", "\"\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("type", "\"A\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("type",
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("from", "\"alice\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("from", "\"@al\\u0000ice\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("to", "null"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("to", "\"@Bob\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("session", "\"a\\nb\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("session", "\"\\u00e9\""), NP_ERR_INVALID);
	memset(big, 'x', sizeof(big));
	big[0] = '"';
	big[66] = '"'; /* 65 characters */
	big[67] = '\0';
	ck_assert_int_eq(parse_with("session", big), NP_ERR_INVALID);
	big[65] = '"'; /* 64 characters */
	big[66] = '\0';
	ck_assert_int_eq(parse_with("session", big), NP_OK);
	ck_assert_int_eq(parse_with("ts", "-1"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ts", "\"1\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ts", "1.5"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ts", "99999999999999999999"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ts", "9007199254740993"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ttl", "-1"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("ttl", "4294967296"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("id", "\"0123\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("id",
	    "\"0123456789ABCDEF0123456789abcdef\""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("body", "[]"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("body", "null"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_with("body", "\"x\""), NP_ERR_INVALID);
	/* nesting: the body at depth 2 may hold 6 more levels, not 7 */
	snprintf(deep, sizeof(deep), "{\"a\":[[[[[1]]]]]}");
	ck_assert_int_eq(parse_with("body", deep), NP_OK);
	snprintf(deep, sizeof(deep), "{\"a\":[[[[[[[1]]]]]]]}");
	ck_assert_int_eq(parse_with("body", deep), NP_ERR_INVALID);
}
END_TEST

START_TEST(t_parse_bad_framing)
{
	struct np_box_msg *m;
	static const char nul[] = P_GOOD "\0";
	uint8_t *big;

	ck_assert_int_eq(parse_str(""), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str("[]"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str("1"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(P_GOOD "x"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(P_GOOD "{}"), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(P_HEAD), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(P_HEAD "\"extra\":1,\"session\":\"s\","
	    "\"ts\":1,\"ttl\":2,\"id\":\"" MID1 "\",\"body\":{}}"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_box_parse_plain((const uint8_t *)nul,
	    sizeof(nul) - 1, &m), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str("{\"v\":1,\"type\":\"t\",\"from\":"
	    "\"@alice\",\"to\":\"@bob\",\"session\":\"\xff\",\"ts\":1,"
	    "\"ttl\":2,\"id\":\"" MID1 "\",\"body\":{}}"), NP_ERR_INVALID);
	big = calloc(1, NP_BOX_MAX + 1);
	memset(big, ' ', NP_BOX_MAX + 1);
	ck_assert_int_eq(np_box_parse_plain(big, NP_BOX_MAX + 1, &m),
	    NP_ERR_TOO_BIG);
	free(big);
}
END_TEST

static Suite *
box_suite(void)
{
	Suite *s = suite_create("box");
	TCase *tc;

	tc = tcase_create("box");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_mid);
	tcase_add_test(tc, t_roundtrip);
	tcase_add_test(tc, t_defaults);
	tcase_add_test(tc, t_seal_bad_args);
	tcase_add_test(tc, t_too_big);
	tcase_add_test(tc, t_tampered);
	tcase_add_test(tc, t_wrong_keys);
	tcase_add_test(tc, t_wrong_peer);
	tcase_add_test(tc, t_stale);
	tcase_add_test(tc, t_open_stale);
	tcase_add_test(tc, t_ttl_too_big);
	tcase_add_test(tc, t_body_wiped);
	tcase_add_test(tc, t_wipe_mark_twice);
	suite_add_tcase(s, tc);

	tc = tcase_create("replay");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_replay);
	tcase_add_test(tc, t_replay_full);
	tcase_add_test(tc, t_replay_persist);
	suite_add_tcase(s, tc);

	tc = tcase_create("plaintext");
	tcase_add_test(tc, t_parse_good);
	tcase_add_test(tc, t_parse_bad);
	tcase_add_test(tc, t_parse_bad_framing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(box_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
