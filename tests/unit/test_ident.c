#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ident.h"

/* "@" followed by n copies of c. */
static char *
mkident(size_t n, char c)
{
	char *s = malloc(n + 2);

	ck_assert_ptr_nonnull(s);
	s[0] = '@';
	memset(s + 1, c, n);
	s[n + 1] = '\0';
	return s;
}

START_TEST(test_valid)
{
	static const char *good[] = { "@a", "@0", "@_", "@alice",
		"@alice.dev", "@a-b_c.d", "@9lives", "@_hidden", "@a.", "@a-",
		"@a..b", "@a--b", "@sr", "@abcdefghijklmnopqrstuvwxyz0123456789",
		NULL };
	size_t i;

	for (i = 0; good[i] != NULL; i++) {
		ck_assert_msg(np_ident_valid(good[i]) == 1, "refused '%s'",
		    good[i]);
	}
}
END_TEST

START_TEST(test_invalid)
{
	static const char *bad[] = { "", "@", "alice", "a@b", "@@alice",
		"@.a", "@-a", "@Alice", "@aLICE", "@A", "@al ice", " @alice",
		"@alice ", "@alice\n", "@al/ice", "@al:ice", "@al@ice",
		"@al+ice", "@al\xc3\xa9", "@\x7f", "@al\tice", "@..", "@-",
		"@.", NULL };
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(np_ident_valid(bad[i]) == 0, "accepted '%s'",
		    bad[i]);
	}
	ck_assert_int_eq(np_ident_valid(NULL), 0);
}
END_TEST

START_TEST(test_length)
{
	char *s;

	s = mkident(NP_NAME_MAX, 'a');
	ck_assert_uint_eq(strlen(s), 56);
	ck_assert_int_eq(np_ident_valid(s), 1);
	free(s);
	s = mkident(NP_NAME_MAX + 1, 'a');
	ck_assert_int_eq(np_ident_valid(s), 0);
	free(s);
	s = mkident(1000, 'z');
	ck_assert_int_eq(np_ident_valid(s), 0);
	free(s);
	ck_assert_int_eq(NP_IDENT_MAX, 56);
}
END_TEST

START_TEST(test_norm)
{
	char out[NP_IDENT_MAX + 1], *s;

	ck_assert_int_eq(np_ident_norm("alice", out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "@alice");
	ck_assert_int_eq(np_ident_norm("@alice", out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "@alice");
	ck_assert_int_eq(np_ident_norm("a.b-c_d", out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "@a.b-c_d");

	/* longest name fits exactly */
	s = mkident(NP_NAME_MAX, 'x');
	ck_assert_int_eq(np_ident_norm(s + 1, out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, s);
	ck_assert_int_eq(np_ident_norm(s, out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, s);
	free(s);
	s = mkident(NP_NAME_MAX + 1, 'x');
	ck_assert_int_eq(np_ident_norm(s, out, sizeof(out)), NP_ERR_INVALID);
	ck_assert_int_eq(np_ident_norm(s + 1, out, sizeof(out)),
	    NP_ERR_INVALID);
	free(s);
}
END_TEST

START_TEST(test_norm_bad)
{
	static const char *bad[] = { "", "@", "@@a", "Alice", "@Alice",
		".a", "-a", "@.a", "a b", "a@b", NULL };
	char out[NP_IDENT_MAX + 1];
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(np_ident_norm(bad[i], out, sizeof(out)) ==
			NP_ERR_INVALID,
		    "normalised '%s'", bad[i]);
	}
	ck_assert_int_eq(np_ident_norm(NULL, out, sizeof(out)),
	    NP_ERR_INVALID);
	/* the output buffer must hold the longest identity */
	ck_assert_int_eq(np_ident_norm("a", out, NP_IDENT_MAX), NP_ERR_INVALID);
	ck_assert_int_eq(np_ident_norm("a", out, 0), NP_ERR_INVALID);
}
END_TEST

START_TEST(test_tunnel_host)
{
	static const char *const good[] = { "localhost", "127.0.0.1", "::1",
	    "fe80::1", "db.internal", "A-b_c.d", "x" };
	static const char *const bad[] = { "", "-x", "a b", "a/b", "[::1]",
	    "a;b", "a$b", "h\n", "\xc3\xa9" };
	char big[NP_TUNNEL_HOST_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(np_tunnel_host_valid(good[i], strlen(good[i])),
		    "%s refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!np_tunnel_host_valid(bad[i], strlen(bad[i])),
		    "%s taken", bad[i]);
	memset(big, 'a', sizeof(big));
	ck_assert(np_tunnel_host_valid(big, NP_TUNNEL_HOST_MAX));
	ck_assert(!np_tunnel_host_valid(big, NP_TUNNEL_HOST_MAX + 1));
	ck_assert(!np_tunnel_host_valid(NULL, 0));
	/* The length is what counts, not a NUL. */
	ck_assert(!np_tunnel_host_valid("ab\0c", 4));
}
END_TEST

static Suite *
ident_suite(void)
{
	Suite *s = suite_create("ident");
	TCase *tc_valid = tcase_create("valid");
	TCase *tc_norm = tcase_create("norm");

	tcase_add_test(tc_valid, test_valid);
	tcase_add_test(tc_valid, test_invalid);
	tcase_add_test(tc_valid, test_length);
	tcase_add_test(tc_valid, test_tunnel_host);
	suite_add_tcase(s, tc_valid);
	tcase_add_test(tc_norm, test_norm);
	tcase_add_test(tc_norm, test_norm_bad);
	suite_add_tcase(s, tc_norm);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ident_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
