/*
 * np-srd: the srd.open body (docs/PROTOCOL.md, "Rendezvous"): optional
 * "rt" (the reply tag) and "peer", nothing else, strictly.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "srd.h"

#define RT32 "0123456789abcdefghijklmnopqrstuv"

static int
parse(const char *text, struct srd_open *o)
{
	struct json_object *b = NULL;
	int r;

	if (text != NULL) {
		b = json_tokener_parse(text);
		ck_assert_ptr_nonnull(b);
	}
	memset(o, 'z', sizeof(*o));
	r = srd_open_parse(b, o);
	json_object_put(b);
	return r;
}

START_TEST(test_good)
{
	struct srd_open o;

	ck_assert_int_eq(parse(NULL, &o), NP_OK);
	ck_assert_str_eq(o.rt, "");
	ck_assert_str_eq(o.peer, "");
	ck_assert_int_eq(parse("{}", &o), NP_OK);
	ck_assert_str_eq(o.rt, "");
	ck_assert_str_eq(o.peer, "");
	ck_assert_int_eq(parse("{\"rt\":\"abc123\"}", &o), NP_OK);
	ck_assert_str_eq(o.rt, "abc123");
	ck_assert_str_eq(o.peer, "");
	ck_assert_int_eq(parse("{\"rt\":\"" RT32 "\"}", &o), NP_OK);
	ck_assert_str_eq(o.rt, RT32);
	ck_assert_int_eq(parse("{\"peer\":\"@dev_1.x-y\"}", &o), NP_OK);
	ck_assert_str_eq(o.rt, "");
	ck_assert_str_eq(o.peer, "@dev_1.x-y");
	ck_assert_int_eq(parse("{\"peer\":\"@device\",\"rt\":\"7\"}", &o),
	    NP_OK);
	ck_assert_str_eq(o.rt, "7");
	ck_assert_str_eq(o.peer, "@device");
}
END_TEST

START_TEST(test_bad)
{
	static const char *const cases[] = {
		"[]", "[{\"rt\":\"a\"}]", "\"rt\"", "5", "true",
		/* unknown members */
		"{\"rt\":\"a\",\"x\":1}", "{\"x\":null}", "{\"Rt\":\"a\"}",
		"{\"rt\":\"a\",\"peer\":\"@d\",\"sid\":\"00\"}",
		/* rt */
		"{\"rt\":\"\"}", "{\"rt\":\"ABC\"}", "{\"rt\":\"a-b\"}",
		"{\"rt\":\"a b\"}", "{\"rt\":\"a\\u0000b\"}",
		"{\"rt\":\"" RT32 "w\"}", "{\"rt\":5}", "{\"rt\":null}",
		"{\"rt\":[\"a\"]}", "{\"rt\":{}}", "{\"rt\":\"caf\\u00e9\"}",
		/* peer */
		"{\"peer\":\"\"}", "{\"peer\":\"dev\"}", "{\"peer\":\"@\"}",
		"{\"peer\":\"@Dev\"}", "{\"peer\":\"@a b\"}", "{\"peer\":7}",
		"{\"peer\":null}", "{\"peer\":[\"@d\"]}",
		"{\"peer\":\"@d\\u0000x\"}",
		"{\"peer\":\"@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	};
	struct srd_open o;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i], &o) != NP_ERR_INVALID) {
			ck_abort_msg("case %zu parsed: %s", i, cases[i]);
		}
		/* Never a half-filled or unterminated field. */
		ck_assert_uint_lt(strlen(o.rt), sizeof(o.rt));
		ck_assert_uint_lt(strlen(o.peer), sizeof(o.peer));
	}
}
END_TEST

/* A refused body still yields its rt when that member is good, so the
 * "bad request" reply reaches the process that asked. */
START_TEST(test_bad_keeps_rt)
{
	struct srd_open o;

	ck_assert_int_eq(parse("{\"rt\":\"abc\",\"x\":1}", &o),
	    NP_ERR_INVALID);
	ck_assert_str_eq(o.rt, "abc");
	ck_assert_int_eq(parse("{\"rt\":\"abc\",\"peer\":\"nope\"}", &o),
	    NP_ERR_INVALID);
	ck_assert_str_eq(o.rt, "abc");
	ck_assert_str_eq(o.peer, "");
	ck_assert_int_eq(parse("{\"rt\":\"ABC\",\"peer\":\"@d\"}", &o),
	    NP_ERR_INVALID);
	ck_assert_str_eq(o.rt, "");
	ck_assert_int_eq(parse("[\"abc\"]", &o), NP_ERR_INVALID);
	ck_assert_str_eq(o.rt, "");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("srd_open");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_good);
	tcase_add_test(tc, test_bad);
	tcase_add_test(tc, test_bad_keeps_rt);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
