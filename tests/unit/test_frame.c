#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "err.h"
#include "frame.h"

/* Append a frame with an explicit header around raw JSON text. */
static void
put_raw(struct np_buf *b, uint32_t len, const char *json)
{
	ck_assert_int_eq(np_buf_put_u32(b, len), NP_OK);
	if (json != NULL)
		ck_assert_int_eq(np_buf_put(b, json, strlen(json)), NP_OK);
}

static int
decode_text(const char *json, struct json_object **out)
{
	struct np_buf *b = np_buf_new(NP_FRAME_MAX + 64);
	int r;

	put_raw(b, (uint32_t)strlen(json), json);
	r = np_frame_decode(b, out);
	np_buf_free(b);
	return r;
}

static struct json_object *
sample(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "t", json_object_new_string("ping"));
	json_object_object_add(o, "rid", json_object_new_int64(42));
	json_object_object_add(o, "s", json_object_new_string("a/\"b\\\n"));
	return o;
}

START_TEST(roundtrip)
{
	struct json_object *o = sample(), *d = NULL;
	struct np_buf *b = np_buf_new(NP_FRAME_MAX + 4);
	uint32_t len;

	ck_assert_int_eq(np_frame_encode(o, b), NP_OK);
	ck_assert_int_eq(np_buf_peek_u32(b, 0, &len), NP_OK);
	ck_assert_uint_eq(len + 4, np_buf_len(b));
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert(json_object_equal(o, d));
	ck_assert_str_eq(json_object_get_string(json_object_object_get(d, "s")),
			 "a/\"b\\\n");
	json_object_put(o);
	json_object_put(d);
	np_buf_free(b);
}
END_TEST

START_TEST(partial_every_split)
{
	struct json_object *o = sample(), *d;
	struct np_buf *whole = np_buf_new(NP_FRAME_MAX + 4), *b;
	const uint8_t *p;
	size_t n, i;

	ck_assert_int_eq(np_frame_encode(o, whole), NP_OK);
	p = np_buf_ptr(whole);
	n = np_buf_len(whole);
	for (i = 0; i < n; i++) {
		b = np_buf_new(NP_FRAME_MAX + 4);
		ck_assert_int_eq(np_buf_put(b, p, i), NP_OK);
		d = (struct json_object *)1;
		ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
		ck_assert_ptr_null(d);
		ck_assert_uint_eq(np_buf_len(b), i); /* nothing consumed */
		ck_assert_int_eq(np_buf_put(b, p + i, n - i), NP_OK);
		ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
		ck_assert(json_object_equal(o, d));
		ck_assert_uint_eq(np_buf_len(b), 0);
		json_object_put(d);
		np_buf_free(b);
	}
	json_object_put(o);
	np_buf_free(whole);
}
END_TEST

START_TEST(byte_by_byte)
{
	struct json_object *o = sample(), *d = NULL;
	struct np_buf *whole = np_buf_new(NP_FRAME_MAX + 4);
	struct np_buf *b = np_buf_new(NP_FRAME_MAX + 4);
	size_t n, i;

	ck_assert_int_eq(np_frame_encode(o, whole), NP_OK);
	n = np_buf_len(whole);
	for (i = 0; i < n - 1; i++) {
		ck_assert_int_eq(np_buf_put(b, np_buf_ptr(whole) + i, 1),
				 NP_OK);
		ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	}
	ck_assert_int_eq(np_buf_put(b, np_buf_ptr(whole) + n - 1, 1), NP_OK);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert(json_object_equal(o, d));
	json_object_put(o);
	json_object_put(d);
	np_buf_free(whole);
	np_buf_free(b);
}
END_TEST

START_TEST(zero_length)
{
	struct np_buf *b = np_buf_new(64);
	struct json_object *d = NULL;

	put_raw(b, 0, NULL);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_INVALID);
	ck_assert_ptr_null(d);
	np_buf_free(b);
	ck_assert_int_eq(np_json_parse((const uint8_t *)"", 0, &d),
			 NP_ERR_INVALID);
}
END_TEST

START_TEST(too_big_from_header)
{
	struct np_buf *b = np_buf_new(64);
	struct json_object *d = NULL;

	/* Only the header: the cap is enforced before any payload. */
	put_raw(b, NP_FRAME_MAX + 1, NULL);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_TOO_BIG);
	ck_assert_ptr_null(d);
	np_buf_reset(b);
	put_raw(b, UINT32_MAX, NULL);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_TOO_BIG);
	np_buf_reset(b);
	/* Exactly the cap is still a (partial) frame. */
	put_raw(b, NP_FRAME_MAX, NULL);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	np_buf_free(b);
}
END_TEST

START_TEST(max_size_frame)
{
	struct np_buf *b = np_buf_new(NP_FRAME_MAX + 64);
	struct json_object *d = NULL;
	char *s = malloc(NP_FRAME_MAX + 1);
	size_t fill = NP_FRAME_MAX - strlen("{\"a\":\"\"}");

	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, 'x', fill);
	memcpy(s + 6 + fill, "\"}", 3);
	ck_assert_uint_eq(strlen(s), NP_FRAME_MAX);
	put_raw(b, NP_FRAME_MAX, s);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert_int_eq(
	    json_object_get_string_len(json_object_object_get(d, "a")),
	    (int)fill);
	json_object_put(d);
	/* Encoding refuses one byte more. */
	d = json_object_new_object();
	s[fill] = '\0';
	json_object_object_add(d, "a", json_object_new_string(s));
	json_object_object_add(d, "b", json_object_new_string("y"));
	np_buf_reset(b);
	ck_assert_int_eq(np_frame_encode(d, b), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0);
	json_object_put(d);
	free(s);
	np_buf_free(b);
}
END_TEST

START_TEST(encode_refuses)
{
	struct np_buf *b = np_buf_new(16);
	struct json_object *a = json_object_new_array();
	struct json_object *o = sample();

	ck_assert_int_eq(np_frame_encode(a, b), NP_ERR_INVALID);
	ck_assert_int_eq(np_frame_encode(NULL, b), NP_ERR_INVALID);
	/* The output buffer's own cap. */
	ck_assert_int_eq(np_frame_encode(o, b), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0);
	json_object_put(a);
	json_object_put(o);
	np_buf_free(b);
}
END_TEST

START_TEST(bad_json)
{
	static const char *const bad[] = {
	    "{",
	    "}",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\":1,}",
	    "{a:1}",
	    "{\"a\":tru}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"unterminated}",
	    "garbage",
	    "\"string\"",
	    "123",
	    "null",
	    "true",
	    "[1,2]",
	    "[]",
	    "{\"a\":\"\xff\xfe\"}",
	    "{\"a\":\"\xc3\"}",
	    "{\"a\":\"\\u0000\"}",
	    "{\"a\\u0000b\":1}",
	};
	struct json_object *d;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = (struct json_object *)1;
		ck_assert_msg(decode_text(bad[i], &d) == NP_ERR_INVALID,
			      "accepted %s", bad[i]);
		ck_assert_ptr_null(d);
	}
}
END_TEST

START_TEST(embedded_nul)
{
	static const uint8_t raw[] = "{\"a\":\"x\0y\"}";
	struct json_object *d = NULL;

	ck_assert_int_eq(np_json_parse(raw, sizeof(raw) - 1, &d),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_json_parse((const uint8_t *)"{}\0", 3, &d),
			 NP_ERR_INVALID);
	ck_assert_ptr_null(d);
}
END_TEST

START_TEST(top_level_array)
{
	struct json_object *d = NULL;

	ck_assert_int_eq(decode_text("[{\"t\":\"ping\"}]", &d), NP_ERR_INVALID);
	ck_assert_ptr_null(d);
}
END_TEST

static char *
nested(int depth)
{
	char *s = malloc((size_t)depth * 8 + 8);
	size_t n = 0;
	int i;

	for (i = 0; i < depth; i++) {
		memcpy(s + n, "{\"a\":", 5);
		n += 5;
	}
	s[n++] = '1';
	for (i = 0; i < depth; i++)
		s[n++] = '}';
	s[n] = '\0';
	return s;
}

START_TEST(depth_cap)
{
	struct json_object *d = NULL;
	char *s;

	s = nested(NP_JSON_DEPTH);
	ck_assert_int_eq(decode_text(s, &d), NP_OK);
	json_object_put(d);
	free(s);
	s = nested(NP_JSON_DEPTH + 1);
	ck_assert_int_eq(decode_text(s, &d), NP_ERR_DEPTH);
	ck_assert_ptr_null(d);
	free(s);
	s = nested(200);
	ck_assert_int_eq(decode_text(s, &d), NP_ERR_DEPTH);
	free(s);
	/* Arrays count as levels too. */
	ck_assert_int_eq(decode_text("{\"a\":[[[[[[[1]]]]]]]}", &d), NP_OK);
	json_object_put(d);
	ck_assert_int_eq(decode_text("{\"a\":[[[[[[[[1]]]]]]]]}", &d),
			 NP_ERR_DEPTH);
}
END_TEST

START_TEST(trailing_bytes)
{
	static const char *const bad[] = {
	    "{}x", "{}{}", "{\"a\":1}1", "{\"a\":1}]", "{} {\"b\":2}",
	};
	struct json_object *d = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(decode_text(bad[i], &d) == NP_ERR_INVALID,
			      "accepted %s", bad[i]);
	/* Length shorter than the object: truncated JSON. */
	{
		struct np_buf *b = np_buf_new(64);

		put_raw(b, 5, "{\"a\":1}");
		ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_INVALID);
		np_buf_free(b);
	}
}
END_TEST

START_TEST(back_to_back)
{
	struct np_buf *b = np_buf_new(1024);
	struct json_object *o1 = sample(), *o2 = json_object_new_object();
	struct json_object *d = NULL;

	json_object_object_add(o2, "t", json_object_new_string("ack"));
	ck_assert_int_eq(np_frame_encode(o1, b), NP_OK);
	ck_assert_int_eq(np_frame_encode(o2, b), NP_OK);
	/* And half of a third. */
	ck_assert_int_eq(np_buf_put_u32(b, 10), NP_OK);
	ck_assert_int_eq(np_buf_put(b, "{\"t\"", 4), NP_OK);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert(json_object_equal(o1, d));
	json_object_put(d);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert(json_object_equal(o2, d));
	json_object_put(d);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	ck_assert_uint_eq(np_buf_len(b), 8);
	ck_assert_int_eq(np_buf_put(b, ":\"x\"}", 5), NP_OK);
	ck_assert_int_eq(np_buf_put(b, "", 0), NP_OK);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	ck_assert_int_eq(np_buf_put(b, " ", 1), NP_OK);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_OK);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(d, "t")),
			 "x");
	json_object_put(d);
	json_object_put(o1);
	json_object_put(o2);
	np_buf_free(b);
}
END_TEST

START_TEST(empty_buffer)
{
	struct np_buf *b = np_buf_new(64);
	struct json_object *d = NULL;

	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	ck_assert_int_eq(np_buf_put(b, "\0\0", 2), NP_OK);
	ck_assert_int_eq(np_frame_decode(b, &d), NP_ERR_AGAIN);
	np_buf_free(b);
}
END_TEST

static Suite *
frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("codec");
	TCase *bad = tcase_create("bad");

	tcase_add_test(tc, roundtrip);
	tcase_add_test(tc, partial_every_split);
	tcase_add_test(tc, byte_by_byte);
	tcase_add_test(tc, back_to_back);
	tcase_add_test(tc, max_size_frame);
	tcase_add_test(tc, empty_buffer);
	suite_add_tcase(s, tc);
	tcase_add_test(bad, zero_length);
	tcase_add_test(bad, too_big_from_header);
	tcase_add_test(bad, encode_refuses);
	tcase_add_test(bad, bad_json);
	tcase_add_test(bad, embedded_nul);
	tcase_add_test(bad, top_level_array);
	tcase_add_test(bad, depth_cap);
	tcase_add_test(bad, trailing_bytes);
	suite_add_tcase(s, bad);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
