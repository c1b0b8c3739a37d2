/* Unit tests for lib/pin.c: known_identities and rotation chains. */
#include <sys/stat.h>

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "pin.h"

static struct np_key *k[4]; /* successive keys of @dev */
static char tmpdir[64];

static void
setup(void)
{
	uint8_t seed[32];
	int i;

	for (i = 0; i < 4; i++) {
		memset(seed, 'A' + i, sizeof(seed));
		ck_assert_int_eq(np_key_from_seed("@dev", seed, &k[i]), NP_OK);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/np-test-pin-XXXXXX");
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
	int i;

	for (i = 0; i < 4; i++) {
		np_key_free(k[i]);
	}
	ck_assert_int_eq(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The rotation link from key a to key b of @dev, signed by a. */
static void
make_rot(const char *id, const struct np_key *a, const struct np_key *b,
    struct np_rot *r)
{
	struct np_buf *m = np_buf_new(256);

	memcpy(r->old_pk, np_key_pk(a), 32);
	memcpy(r->new_pk, np_key_pk(b), 32);
	ck_assert_int_eq(np_rot_message(id, r->old_pk, r->new_pk, m), NP_OK);
	ck_assert_int_eq(np_key_sign(a, np_buf_ptr(m), np_buf_len(m), r->sig),
	    NP_OK);
	np_buf_free(m);
}

static int
parse_str(const char *s, struct np_pins **out)
{
	return np_pins_parse((const uint8_t *)s, strlen(s), out);
}

START_TEST(t_set_get_forget)
{
	struct np_pins *p = np_pins_new();
	uint8_t pk[32];

	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[0])), NP_OK);
	ck_assert_int_eq(np_pins_set(p, "@a", np_key_pk(k[1])), NP_OK);
	ck_assert_int_eq(np_pins_set(p, "@z", np_key_pk(k[2])), NP_OK);
	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[0]), 32);
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[3])), NP_OK);
	ck_assert_uint_eq(np_pins_count(p), 3);
	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[3]), 32);
	ck_assert_int_eq(np_pins_get(p, "@a", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[1]), 32);
	ck_assert_int_eq(np_pins_forget(p, "@a"), NP_OK);
	ck_assert_int_eq(np_pins_forget(p, "@a"), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_pins_get(p, "@a", pk), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_pins_get(p, "@z", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[2]), 32);
	ck_assert_int_eq(np_pins_set(p, "dev", pk), NP_ERR_INVALID);
	ck_assert_int_eq(np_pins_get(p, "@", pk), NP_ERR_INVALID);
	np_pins_free(p);
	np_pins_free(NULL);
}
END_TEST

START_TEST(t_tofu)
{
	struct np_pins *p = np_pins_new();
	const uint8_t *pk0 = np_key_pk(k[0]);
	int changed = 7;

	ck_assert_int_eq(np_pins_check(p, "@dev", pk0, NULL, 0, 0, &changed),
	    NP_ERR_NOT_FOUND);
	ck_assert_int_eq(changed, 0);
	ck_assert_uint_eq(np_pins_count(p), 0);
	ck_assert_int_eq(np_pins_check(p, "@dev", pk0, NULL, 0, 1, &changed),
	    NP_OK);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(np_pins_check(p, "@dev", pk0, NULL, 0, 1, &changed),
	    NP_OK);
	ck_assert_int_eq(changed, 0);
	/* A different key without a chain, even with tofu on. */
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[1]), NULL, 0, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(np_pins_check(p, "@x y", pk0, NULL, 0, 1, &changed),
	    NP_ERR_INVALID);
	np_pins_free(p);
}
END_TEST

START_TEST(t_rotation_chain)
{
	struct np_pins *p = np_pins_new();
	struct np_rot rot[3];
	uint8_t pk[32];
	int changed;

	make_rot("@dev", k[0], k[1], &rot[0]);
	make_rot("@dev", k[1], k[2], &rot[1]);
	ck_assert_int_eq(np_rot_verify("@dev", &rot[0]), NP_OK);
	ck_assert_int_eq(np_rot_verify("@other", &rot[0]), NP_ERR_CRYPTO);
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[0])), NP_OK);
	/* two steps k0 -> k1 -> k2 */
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[2]), rot, 2, 0,
	    &changed), NP_OK);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[2]), 32);
	/* A peer pinned on k1 follows from the middle of the chain. */
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[1])), NP_OK);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[2]), rot, 2, 0,
	    &changed), NP_OK);
	ck_assert_int_eq(changed, 1);
	/* The chain ends before the presented key. */
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[0])), NP_OK);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[3]), rot, 2, 0,
	    &changed), NP_ERR_KEY_CHANGED);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[0]), 32);
	np_pins_free(p);
}
END_TEST

START_TEST(t_rotation_bad)
{
	struct np_pins *p = np_pins_new();
	struct np_rot rot[NP_ROT_CHAIN_MAX + 1];
	uint8_t pk[32];
	int changed;

	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[0])), NP_OK);
	/* bad signature on the second link */
	make_rot("@dev", k[0], k[1], &rot[0]);
	make_rot("@dev", k[1], k[2], &rot[1]);
	rot[1].sig[5] ^= 1;
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[2]), rot, 2, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	ck_assert_int_eq(changed, 0);
	/* second link signed by the new key instead of the old one */
	make_rot("@dev", k[2], k[2], &rot[1]);
	memcpy(rot[1].old_pk, np_key_pk(k[1]), 32);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[2]), rot, 2, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	/* a chain that does not start at the pin */
	make_rot("@dev", k[1], k[2], &rot[0]);
	make_rot("@dev", k[2], k[3], &rot[1]);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[3]), rot, 2, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	/* links that do not connect: k0 -> k1, then k2 -> k3 */
	make_rot("@dev", k[0], k[1], &rot[0]);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[3]), rot, 2, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	/* a chain signed for another identity */
	make_rot("@other", k[0], k[1], &rot[0]);
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[1]), rot, 1, 1,
	    &changed), NP_ERR_KEY_CHANGED);
	/* too long */
	ck_assert_int_eq(np_pins_check(p, "@dev", np_key_pk(k[1]), rot,
	    NP_ROT_CHAIN_MAX + 1, 1, &changed), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_pins_get(p, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[0]), 32);
	np_pins_free(p);
}
END_TEST

START_TEST(t_save_load)
{
	struct np_pins *p = np_pins_new(), *q;
	char path[128];
	uint8_t pk[32];
	struct stat st;

	snprintf(path, sizeof(path), "%s/known_identities", tmpdir);
	ck_assert_int_eq(np_pins_load(path, &q), NP_OK);
	ck_assert_uint_eq(np_pins_count(q), 0);
	np_pins_free(q);
	ck_assert_int_eq(np_pins_set(p, "@dev", np_key_pk(k[0])), NP_OK);
	ck_assert_int_eq(np_pins_set(p, "@b.c-d_e", np_key_pk(k[1])), NP_OK);
	ck_assert_int_eq(np_pins_save(p, path), NP_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(np_pins_load(path, &q), NP_OK);
	ck_assert_uint_eq(np_pins_count(q), 2);
	ck_assert_int_eq(np_pins_get(q, "@dev", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[0]), 32);
	ck_assert_int_eq(np_pins_get(q, "@b.c-d_e", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[1]), 32);
	/* overwrite with one entry less */
	ck_assert_int_eq(np_pins_forget(q, "@dev"), NP_OK);
	ck_assert_int_eq(np_pins_save(q, path), NP_OK);
	np_pins_free(q);
	ck_assert_int_eq(np_pins_load(path, &q), NP_OK);
	ck_assert_uint_eq(np_pins_count(q), 1);
	np_pins_free(q);
	/* group-writable files are refused */
	ck_assert_int_eq(chmod(path, 0660), 0);
	ck_assert_int_eq(np_pins_load(path, &q), NP_ERR_PERM);
	ck_assert_ptr_null(q);
	np_pins_free(p);
}
END_TEST

START_TEST(t_parse_file)
{
	struct np_pins *p;
	char b64[NP_PK_B64_MAX], buf[1024];
	uint8_t pk[32];

	ck_assert_int_eq(np_b64_encode(np_key_pk(k[0]), 32, b64, sizeof(b64)),
	    NP_OK);
	snprintf(buf, sizeof(buf), "# comment\n\n  # indented\n@dev %s\n"
	    "@two\t %s  ", b64, b64);
	ck_assert_int_eq(parse_str(buf, &p), NP_OK);
	ck_assert_uint_eq(np_pins_count(p), 2);
	ck_assert_int_eq(np_pins_get(p, "@two", pk), NP_OK);
	ck_assert_mem_eq(pk, np_key_pk(k[0]), 32);
	np_pins_free(p);
	ck_assert_int_eq(parse_str("", &p), NP_OK);
	np_pins_free(p);
}
END_TEST

static void
subst(const char *t, const char *b64, char *out, size_t n)
{
	size_t o = 0;

	for (; *t != '\0'; t++) {
		if (*t == '$' || *t == '^' || *t == '~') {
			o += (size_t)snprintf(out + o, n - o, "%.*s",
			    *t == '$' ? 44 : *t == '^' ? 43 : 42, b64);
		} else {
			o += (size_t)snprintf(out + o, n - o, "%c", *t);
		}
	}
}

START_TEST(t_parse_garbage)
{
	struct np_pins *p = NULL;
	char b64[NP_PK_B64_MAX], buf[1024];
	/* '$': the base64 key, '^': its first 43 characters, '~': 42. */
	const char *bad[] = {
		"garbage\n",
		"@dev\n",
		"dev $\n",
		"@Dev $\n",
		"@dev $ extra\n",
		"@dev $\n@dev $\n",
		"@dev ^\n",
		"@dev ~==\n",
		"@dev $\r\n",
		"@dev AAAA\n",
		"@dev $$\n",
	};
	size_t i;

	ck_assert_int_eq(np_b64_encode(np_key_pk(k[0]), 32, b64, sizeof(b64)),
	    NP_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		subst(bad[i], b64, buf, sizeof(buf));
		ck_assert_msg(parse_str(buf, &p) == NP_ERR_INVALID,
		    "accepted: %s", buf);
		ck_assert_ptr_null(p);
	}
	memset(buf, '#', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	ck_assert_int_eq(parse_str(buf, &p), NP_ERR_INVALID); /* too long */
	{
		static const char nul[] = "@de\0v AAAA\n";

		ck_assert_int_eq(np_pins_parse((const uint8_t *)nul,
		    sizeof(nul) - 1, &p), NP_ERR_INVALID);
	}
}
END_TEST

/*
 * A file of NP_PINS_MAX lines in reverse order loads within the test
 * timeout (inserting each line in place used to cost O(n^2) moves), the
 * result is sorted, and a duplicate far from its twin is still refused.
 */
START_TEST(t_parse_many_unsorted)
{
	struct np_buf *b = np_buf_new(NP_PINS_FILE_MAX);
	struct np_pins *p = NULL;
	char b64[NP_PK_B64_MAX], id[32];
	uint8_t pk[32];
	size_t i;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(np_b64_encode(np_key_pk(k[0]), 32, b64, sizeof(b64)),
	    NP_OK);
	for (i = NP_PINS_MAX; i > 0; i--) {
		ck_assert_int_eq(np_buf_putf(b, "@n%06zu %s\n", i - 1, b64),
		    NP_OK);
	}
	ck_assert_int_eq(np_pins_parse(np_buf_ptr(b), np_buf_len(b), &p),
	    NP_OK);
	ck_assert_uint_eq(np_pins_count(p), NP_PINS_MAX);
	for (i = 0; i < NP_PINS_MAX; i += 9973) {
		snprintf(id, sizeof(id), "@n%06zu", i);
		ck_assert_int_eq(np_pins_get(p, id, pk), NP_OK);
	}
	ck_assert_int_eq(np_pins_get(p, "@n", pk), NP_ERR_NOT_FOUND);
	/* one more line is over the cap */
	ck_assert_int_eq(np_buf_putf(b, "@zz %s\n", b64), NP_OK);
	np_pins_free(p);
	ck_assert_int_eq(np_pins_parse(np_buf_ptr(b), np_buf_len(b), &p),
	    NP_ERR_LIMIT);
	ck_assert_ptr_null(p);
	/* a repeated id, first and last line */
	np_buf_reset(b);
	ck_assert_int_eq(np_buf_putf(b, "@dup %s\n", b64), NP_OK);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(np_buf_putf(b, "@m%04zu %s\n", i, b64), NP_OK);
	}
	ck_assert_int_eq(np_buf_putf(b, "@dup %s\n", b64), NP_OK);
	ck_assert_int_eq(np_pins_parse(np_buf_ptr(b), np_buf_len(b), &p),
	    NP_ERR_INVALID);
	ck_assert_ptr_null(p);
	/* an empty input, also without a pointer */
	ck_assert_int_eq(np_pins_parse(NULL, 0, &p), NP_OK);
	ck_assert_uint_eq(np_pins_count(p), 0);
	np_pins_free(p);
	ck_assert_int_eq(np_pins_parse(NULL, 1, &p), NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

START_TEST(t_rot_message)
{
	struct np_buf *b = np_buf_new(256);
	uint8_t o[32], n[32];

	memset(o, 1, 32);
	memset(n, 2, 32);
	ck_assert_int_eq(np_rot_message("@dev", o, n, b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 18 + 4 + 64);
	ck_assert_mem_eq(np_buf_ptr(b), "noports-rotate-v1\0@dev", 22);
	ck_assert_mem_eq(np_buf_ptr(b) + 22, o, 32);
	ck_assert_mem_eq(np_buf_ptr(b) + 54, n, 32);
	ck_assert_int_eq(np_rot_message("dev", o, n, b), NP_ERR_INVALID);
	np_buf_free(b);
}
END_TEST

static Suite *
pin_suite(void)
{
	Suite *s = suite_create("pin");
	TCase *tc;

	tc = tcase_create("pins");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_set_get_forget);
	tcase_add_test(tc, t_tofu);
	tcase_add_test(tc, t_rotation_chain);
	tcase_add_test(tc, t_rotation_bad);
	tcase_add_test(tc, t_save_load);
	tcase_add_test(tc, t_parse_file);
	tcase_add_test(tc, t_parse_garbage);
	tcase_add_test(tc, t_parse_many_unsorted);
	tcase_add_test(tc, t_rot_message);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pin_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
