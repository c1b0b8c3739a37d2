/*
 * np-srd session table and token slab: mint, lookup, authentication
 * (single use, constant-time compare, endpoint match, expiry), caps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <sodium.h>

#include "box.h"
#include "err.h"
#include "srd.h"

#define T0 1000000ULL
#define TMO 30000ULL

static struct srd_sess *
mint(struct srd_table *t, const char *owner, uint64_t now)
{
	struct srd_sess *s = NULL;
	const char *why = "x";

	ck_assert_int_eq(srd_table_mint(t, owner, NULL, now, TMO, 5000, &s,
	    &why), NP_OK);
	ck_assert_ptr_null(why);
	ck_assert_ptr_nonnull(s);
	return s;
}

START_TEST(test_slab)
{
	struct srd_slab *sl = srd_slab_new(3000);
	uint32_t idx[3000], extra;
	size_t i, j;

	ck_assert_ptr_nonnull(sl);
	for (i = 0; i < 3000; i++) {
		ck_assert_int_eq(srd_slab_get(sl, &idx[i]), NP_OK);
		uint8_t *p = srd_slab_ptr(sl, idx[i]);
		for (j = 0; j < SRD_SLOT_LEN; j++) {
			ck_assert_int_eq(p[j], 0);
		}
		memset(p, 0xa5, SRD_SLOT_LEN);
	}
	ck_assert_uint_eq(srd_slab_used(sl), 3000);
	ck_assert_int_eq(srd_slab_get(sl, &extra), NP_ERR_LIMIT);
	/* Distinct slots. */
	for (i = 1; i < 3000; i++) {
		ck_assert_ptr_ne(srd_slab_ptr(sl, idx[i]),
		    srd_slab_ptr(sl, idx[i - 1]));
	}
	/* A slot given back is wiped before reuse. */
	srd_slab_put(sl, idx[1500]);
	ck_assert_uint_eq(srd_slab_used(sl), 2999);
	ck_assert_int_eq(srd_slab_get(sl, &extra), NP_OK);
	ck_assert_uint_eq(extra, idx[1500]);
	for (j = 0; j < SRD_SLOT_LEN; j++) {
		ck_assert_int_eq(srd_slab_ptr(sl, extra)[j], 0);
	}
	srd_slab_put(sl, 1u << 30); /* out of range: ignored */
	srd_slab_put(NULL, 0);
	srd_slab_free(sl);
	srd_slab_free(NULL);
	ck_assert_ptr_null(srd_slab_new(0));
}
END_TEST

START_TEST(test_mint_find)
{
	struct srd_table *t = srd_table_new(100, 10);
	struct srd_sess *a, *b;
	const uint8_t *ca, *da;

	ck_assert_ptr_nonnull(t);
	a = mint(t, "@alice", T0);
	b = mint(t, "@alice", T0);
	ck_assert_int_eq(np_mid_valid(a->sid), 1);
	ck_assert_str_ne(a->sid, b->sid);
	ck_assert_ptr_eq(srd_table_find(t, a->sid), a);
	ck_assert_ptr_eq(srd_table_find(t, b->sid), b);
	ck_assert_ptr_null(srd_table_find(t, "0123456789abcdef0123456789abcdef"));
	ck_assert_ptr_null(srd_table_find(t, "short"));
	ck_assert_ptr_null(srd_table_find(t, NULL));
	ck_assert_uint_eq(a->deadline, T0 + TMO);
	ck_assert_int_eq(a->deadline_real, 5000 + (int64_t)TMO);
	ck_assert_int_eq(a->fd[0], -1);
	ck_assert_int_eq(a->lst[1].fd, -1);
	/* Tokens: random, distinct per side and per session. */
	ca = srd_table_token(t, a, NP_SR_CLIENT);
	da = srd_table_token(t, a, NP_SR_DEVICE);
	ck_assert_int_ne(memcmp(ca, da, NP_SR_TOKEN_LEN), 0);
	ck_assert_int_ne(memcmp(ca, srd_table_token(t, b, NP_SR_CLIENT),
	    NP_SR_TOKEN_LEN), 0);
	ck_assert_uint_eq(srd_table_count(t), 2);
	ck_assert_uint_eq(srd_table_waiting(t), 2);
	ck_assert_uint_eq(srd_table_owner_count(t, "@alice"), 2);
	ck_assert_uint_eq(srd_table_owner_count(t, "@bob"), 0);
	srd_table_remove(t, a);
	ck_assert_ptr_null(srd_table_find(t, b->sid) == b ? NULL : b);
	ck_assert_uint_eq(srd_table_owner_count(t, "@alice"), 1);
	srd_table_free(t); /* frees b */
}
END_TEST

START_TEST(test_many_sessions_hash)
{
	struct srd_table *t = srd_table_new(5000, 5000);
	struct srd_sess **v = calloc(5000, sizeof(*v));
	int i;

	for (i = 0; i < 5000; i++) {
		v[i] = mint(t, "@alice", T0);
	}
	for (i = 0; i < 5000; i++) {
		ck_assert_ptr_eq(srd_table_find(t, v[i]->sid), v[i]);
	}
	for (i = 0; i < 5000; i += 2) {
		srd_table_remove(t, v[i]);
	}
	for (i = 1; i < 5000; i += 2) {
		ck_assert_ptr_eq(srd_table_find(t, v[i]->sid), v[i]);
	}
	ck_assert_uint_eq(srd_table_count(t), 2500);
	free(v);
	srd_table_free(t);
}
END_TEST

START_TEST(test_auth)
{
	struct srd_table *t = srd_table_new(100, 10);
	struct srd_sess *s, *o, *got;
	uint8_t ct[NP_SR_TOKEN_LEN], dt[NP_SR_TOKEN_LEN];
	uint8_t bad[NP_SR_TOKEN_LEN];
	char sid[NP_SR_SID_LEN + 1];

	s = mint(t, "@alice", T0);
	o = mint(t, "@bob", T0);
	memcpy(sid, s->sid, sizeof(sid));
	memcpy(ct, srd_table_token(t, s, NP_SR_CLIENT), sizeof(ct));
	memcpy(dt, srd_table_token(t, s, NP_SR_DEVICE), sizeof(dt));
	memcpy(bad, ct, sizeof(bad));
	bad[31] ^= 1;

	/* Wrong token, wrong side's token, unknown sid, other session. */
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, bad, NULL, 0,
	    T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, dt, NULL, 0,
	    T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_DEVICE, ct, NULL, 0,
	    T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, "0123456789abcdef0123456789abcdef",
	    NP_SR_CLIENT, ct, NULL, 0, T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, o->sid, NP_SR_CLIENT, ct, NULL, 0,
	    T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, sid, 2, ct, NULL, 0, T0 + 1, &got),
	    NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, sid, -1, ct, NULL, 0, T0 + 1,
	    &got), NP_ERR_AUTH);
	/* Endpoint mismatch: the client's line on the device's port, or on
	 * another session's port. */
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, ct, sid,
	    NP_SR_DEVICE, T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, ct, o->sid,
	    NP_SR_CLIENT, T0 + 1, &got), NP_ERR_AUTH);
	ck_assert_int_eq(s->used[0] + s->used[1], 0);

	/* Right: once. */
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, ct, sid,
	    NP_SR_CLIENT, T0 + 1, &got), NP_OK);
	ck_assert_ptr_eq(got, s);
	ck_assert_int_eq(s->used[NP_SR_CLIENT], 1);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, ct, NULL, 0,
	    T0 + 2, &got), NP_ERR_AUTH);
	/* Its token is wiped; the other side's is intact. */
	for (int i = 0; i < NP_SR_TOKEN_LEN; i++) {
		ck_assert_int_eq(srd_table_token(t, s, NP_SR_CLIENT)[i], 0);
	}
	ck_assert_int_eq(memcmp(srd_table_token(t, s, NP_SR_DEVICE), dt,
	    sizeof(dt)), 0);
	/* Device side via the single port (no endpoint check). */
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_DEVICE, dt, NULL, 0,
	    T0 + 3, &got), NP_OK);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_DEVICE, dt, NULL, 0,
	    T0 + 3, &got), NP_ERR_AUTH);
	srd_table_relaying(t, s);
	ck_assert_int_eq(s->state, SRD_RELAYING);
	ck_assert_uint_eq(srd_table_waiting(t), 1);
	ck_assert_uint_eq(srd_table_relaying_count(t), 1);
	ck_assert_ptr_eq(srd_table_first_relaying(t), s);
	/* Still counted for its owner until it ends. */
	ck_assert_uint_eq(srd_table_owner_count(t, "@alice"), 1);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_CLIENT, ct, NULL, 0,
	    T0 + 4, &got), NP_ERR_AUTH);
	srd_table_remove(t, s);
	ck_assert_uint_eq(srd_table_owner_count(t, "@alice"), 0);
	ck_assert_int_eq(srd_table_auth(t, sid, NP_SR_DEVICE, dt, NULL, 0,
	    T0 + 4, &got), NP_ERR_AUTH);
	srd_table_free(t);
}
END_TEST

START_TEST(test_expiry)
{
	struct srd_table *t = srd_table_new(100, 10);
	struct srd_sess *a, *b, *c, *got;
	uint8_t tok[NP_SR_TOKEN_LEN];

	a = mint(t, "@alice", T0);
	b = mint(t, "@alice", T0 + 100);
	c = mint(t, "@alice", T0 + 200);
	ck_assert_uint_eq(srd_table_next_deadline(t), T0 + TMO);
	ck_assert_ptr_null(srd_table_expired(t, T0 + TMO - 1));
	ck_assert_ptr_eq(srd_table_expired(t, T0 + TMO), a);
	/* Past its deadline a right token is refused. */
	memcpy(tok, srd_table_token(t, b, NP_SR_CLIENT), sizeof(tok));
	ck_assert_int_eq(srd_table_auth(t, b->sid, NP_SR_CLIENT, tok, NULL,
	    0, T0 + 100 + TMO, &got), NP_ERR_AUTH);
	ck_assert_int_eq(srd_table_auth(t, b->sid, NP_SR_CLIENT, tok, NULL,
	    0, T0 + 100 + TMO - 1, &got), NP_OK);
	/* Relaying sessions never expire; half-joined ones do. */
	memcpy(tok, srd_table_token(t, c, NP_SR_CLIENT), sizeof(tok));
	ck_assert_int_eq(srd_table_auth(t, c->sid, NP_SR_CLIENT, tok, NULL,
	    0, T0 + 300, &got), NP_OK);
	memcpy(tok, srd_table_token(t, c, NP_SR_DEVICE), sizeof(tok));
	ck_assert_int_eq(srd_table_auth(t, c->sid, NP_SR_DEVICE, tok, NULL,
	    0, T0 + 300, &got), NP_OK);
	srd_table_relaying(t, c);
	srd_table_remove(t, srd_table_expired(t, T0 + 10 * TMO));
	ck_assert_ptr_eq(srd_table_expired(t, T0 + 10 * TMO), b);
	srd_table_remove(t, b);
	ck_assert_ptr_null(srd_table_expired(t, T0 + 10 * TMO));
	ck_assert_uint_eq(srd_table_next_deadline(t), 0);
	ck_assert_uint_eq(srd_table_count(t), 1);
	srd_table_free(t);
}
END_TEST

START_TEST(test_caps)
{
	struct srd_table *t = srd_table_new(5, 2);
	struct srd_sess *s, *a1, *got;
	const char *why;
	int i;

	a1 = mint(t, "@alice", T0);
	mint(t, "@alice", T0);
	ck_assert_int_eq(srd_table_mint(t, "@alice", "@dev", T0, TMO, 0, &s,
	    &why), NP_ERR_LIMIT);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(why, "too many sessions");
	/* A relaying session still counts. */
	for (i = 0; i < 2; i++) {
		uint8_t tok[NP_SR_TOKEN_LEN];

		memcpy(tok, srd_table_token(t, a1, i), sizeof(tok));
		ck_assert_int_eq(srd_table_auth(t, a1->sid, i, tok, NULL, 0,
		    T0, &got), NP_OK);
	}
	srd_table_relaying(t, a1);
	ck_assert_int_eq(srd_table_mint(t, "@alice", NULL, T0, TMO, 0, &s,
	    &why), NP_ERR_LIMIT);
	srd_table_remove(t, a1);
	s = mint(t, "@alice", T0);
	ck_assert_ptr_null(s->peer);
	mint(t, "@bob", T0);
	mint(t, "@bob", T0);
	mint(t, "@dave", T0);
	ck_assert_uint_eq(srd_table_count(t), 5);
	ck_assert_int_eq(srd_table_mint(t, "@carol", NULL, T0, TMO, 0, &s,
	    &why), NP_ERR_TOO_BIG);
	ck_assert_str_eq(why, "busy");
	srd_table_free(t);

	t = srd_table_new(5, 2);
	ck_assert_int_eq(srd_table_mint(t, "@alice", "@dev", T0, TMO, 0, &s,
	    &why), NP_OK);
	ck_assert_str_eq(s->peer, "@dev");
	srd_table_free(t);
}
END_TEST

static Suite *
srd_table_suite(void)
{
	Suite *s = suite_create("srd_table");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_slab);
	tcase_add_test(tc, test_mint_find);
	tcase_add_test(tc, test_many_sessions_hash);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_caps);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (sodium_init() < 0) {
		return EXIT_FAILURE;
	}
	sr = srunner_create(srd_table_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
