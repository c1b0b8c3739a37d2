#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

START_TEST(test_names_distinct)
{
	const char *names[-NP_ERR_MIN + 1];
	int r, q;

	for (r = 0; r >= NP_ERR_MIN; r--) {
		names[-r] = np_strerror(r);
		ck_assert_ptr_nonnull(names[-r]);
		ck_assert_msg(names[-r][0] != '\0', "code %d has no name", r);
		ck_assert_msg(strstr(names[-r], "unknown") == NULL,
		    "code %d is named '%s'", r, names[-r]);
		for (q = 0; q > r; q--) {
			ck_assert_msg(strcmp(names[-q], names[-r]) != 0,
			    "codes %d and %d share the name '%s'", q, r,
			    names[-r]);
		}
	}
}
END_TEST

START_TEST(test_some_names)
{
	ck_assert_str_eq(np_strerror(NP_OK), "success");
	ck_assert_str_eq(np_strerror(NP_ERR_CONF), "configuration error");
	ck_assert_str_eq(np_strerror(NP_ERR_TRUNCATED), "truncated input");
	ck_assert_str_eq(np_strerror(NP_ERR_UNREACHABLE), "unreachable");
	ck_assert_int_eq(NP_ERR_MIN, NP_ERR_IO);
}
END_TEST

START_TEST(test_out_of_range)
{
	static const int bad[] = { 1, 2, 100, INT_MAX, NP_ERR_MIN - 1,
		NP_ERR_MIN - 100, INT_MIN + 1, INT_MIN };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_nonnull(np_strerror(bad[i]));
		ck_assert_str_eq(np_strerror(bad[i]), "unknown error");
	}
}
END_TEST

static Suite *
err_suite(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("strerror");

	tcase_add_test(tc, test_names_distinct);
	tcase_add_test(tc, test_some_names);
	tcase_add_test(tc, test_out_of_range);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(err_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
