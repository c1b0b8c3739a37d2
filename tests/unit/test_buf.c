#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"

START_TEST(test_new_caps)
{
	struct np_buf *b;

	ck_assert_ptr_null(np_buf_new(0));
	ck_assert_ptr_null(np_buf_new(NP_BUF_MAX_CAP + 1));
	ck_assert_ptr_null(np_buf_new(SIZE_MAX));
	ck_assert_ptr_null(np_buf_new_secure(0));
	ck_assert_ptr_null(np_buf_new_secure(NP_BUF_MAX_CAP + 1));
	ck_assert_ptr_nonnull(b = np_buf_new(NP_BUF_MAX_CAP));
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_uint_eq(np_buf_avail(b), NP_BUF_MAX_CAP);
	ck_assert_ptr_nonnull(np_buf_ptr(b)); /* even when empty */
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
	np_buf_free(NULL);
}
END_TEST

START_TEST(test_put_get_ints)
{
	struct np_buf *b = np_buf_new(64);
	static const uint8_t want[] = { 0xab, 0x12, 0x34, 0xde, 0xad, 0xbe,
		0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(np_buf_put_u8(b, 0xab), NP_OK);
	ck_assert_int_eq(np_buf_put_u16(b, 0x1234), NP_OK);
	ck_assert_int_eq(np_buf_put_u32(b, 0xdeadbeef), NP_OK);
	ck_assert_int_eq(np_buf_put_u64(b, 0x0102030405060708ULL), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), sizeof(want));
	ck_assert_uint_eq(np_buf_avail(b), 64 - sizeof(want));
	ck_assert_mem_eq(np_buf_ptr(b), want, sizeof(want)); /* big-endian */
	ck_assert_int_eq(np_buf_peek_u32(b, 3, &u32), NP_OK);
	ck_assert_uint_eq(u32, 0xdeadbeef);
	ck_assert_uint_eq(np_buf_len(b), sizeof(want)); /* peek keeps */
	ck_assert_int_eq(np_buf_get_end(b), NP_ERR_INVALID);
	ck_assert_int_eq(np_buf_get_u8(b, &u8), NP_OK);
	ck_assert_uint_eq(u8, 0xab);
	ck_assert_int_eq(np_buf_get_u16(b, &u16), NP_OK);
	ck_assert_uint_eq(u16, 0x1234);
	ck_assert_int_eq(np_buf_get_u32(b, &u32), NP_OK);
	ck_assert_uint_eq(u32, 0xdeadbeef);
	ck_assert_int_eq(np_buf_get_u64(b, &u64), NP_OK);
	ck_assert(u64 == 0x0102030405060708ULL);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
}
END_TEST

START_TEST(test_extreme_ints)
{
	struct np_buf *b = np_buf_new(64);
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	ck_assert_int_eq(np_buf_put_u16(b, UINT16_MAX), NP_OK);
	ck_assert_int_eq(np_buf_put_u32(b, UINT32_MAX), NP_OK);
	ck_assert_int_eq(np_buf_put_u64(b, UINT64_MAX), NP_OK);
	ck_assert_int_eq(np_buf_put_u64(b, 0), NP_OK);
	ck_assert_int_eq(np_buf_get_u16(b, &u16), NP_OK);
	ck_assert_uint_eq(u16, UINT16_MAX);
	ck_assert_int_eq(np_buf_get_u32(b, &u32), NP_OK);
	ck_assert_uint_eq(u32, UINT32_MAX);
	ck_assert_int_eq(np_buf_get_u64(b, &u64), NP_OK);
	ck_assert(u64 == UINT64_MAX);
	ck_assert_int_eq(np_buf_get_u64(b, &u64), NP_OK);
	ck_assert(u64 == 0);
	np_buf_free(b);
}
END_TEST

START_TEST(test_gets_skip_with_null)
{
	struct np_buf *b = np_buf_new(64);
	uint8_t rest;

	ck_assert_int_eq(np_buf_put(b, "abcdefghijklmnopq", 17), NP_OK);
	ck_assert_int_eq(np_buf_get(b, NULL, 1), NP_OK);
	ck_assert_int_eq(np_buf_get_u8(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_u16(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_u32(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_u64(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_peek_u32(b, 0, NULL), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_get_u8(b, &rest), NP_OK);
	ck_assert_uint_eq(rest, 'q');
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(test_truncated)
{
	struct np_buf *b = np_buf_new(64);
	uint8_t u8, raw[4];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	ck_assert_int_eq(np_buf_get_u8(b, &u8), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_get(b, raw, 1), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_put(b, "\x01\x02\x03", 3), NP_OK);
	ck_assert_int_eq(np_buf_get_u32(b, &u32), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_get_u64(b, &u64), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_get(b, raw, 4), NP_ERR_TRUNCATED);
	/* failed gets consume nothing */
	ck_assert_uint_eq(np_buf_len(b), 3);
	ck_assert_int_eq(np_buf_get_u16(b, &u16), NP_OK);
	ck_assert_uint_eq(u16, 0x0102);
	ck_assert_int_eq(np_buf_get_u16(b, &u16), NP_ERR_TRUNCATED);
	ck_assert_uint_eq(np_buf_len(b), 1);
	ck_assert_int_eq(np_buf_put(b, "\x04\x05\x06\x07\x08\x09\x0a", 7),
	    NP_OK);
	/* u64 needs 8, 8 present */
	ck_assert_int_eq(np_buf_get_u64(b, &u64), NP_OK);
	ck_assert(u64 == 0x030405060708090aULL);
	np_buf_free(b);
}
END_TEST

START_TEST(test_peek)
{
	struct np_buf *b = np_buf_new(16);
	uint32_t v = 7;

	ck_assert_int_eq(np_buf_put(b, "\0\0\0\x01\0\0\0\x02", 8), NP_OK);
	ck_assert_int_eq(np_buf_peek_u32(b, 0, &v), NP_OK);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(np_buf_peek_u32(b, 4, &v), NP_OK);
	ck_assert_uint_eq(v, 2);
	ck_assert_int_eq(np_buf_peek_u32(b, 5, &v), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_peek_u32(b, 8, &v), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_peek_u32(b, 9, &v), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_peek_u32(b, SIZE_MAX, &v), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_peek_u32(b, SIZE_MAX - 2, &v),
	    NP_ERR_TRUNCATED);
	/* peek is relative to the unread data */
	ck_assert_int_eq(np_buf_consume(b, 4), NP_OK);
	ck_assert_int_eq(np_buf_peek_u32(b, 0, &v), NP_OK);
	ck_assert_uint_eq(v, 2);
	np_buf_free(b);
}
END_TEST

START_TEST(test_cap_too_big)
{
	struct np_buf *b = np_buf_new(10);
	uint8_t *dst;

	ck_assert_int_eq(np_buf_put(b, "0123456789", 10), NP_OK);
	ck_assert_uint_eq(np_buf_avail(b), 0);
	ck_assert_int_eq(np_buf_put_u8(b, 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put(b, "x", 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_reserve(b, 1, &dst), NP_ERR_TOO_BIG);
	ck_assert_ptr_null(dst);
	ck_assert_int_eq(np_buf_reserve(b, SIZE_MAX, &dst), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 10);
	/* consuming from the front makes room again */
	ck_assert_int_eq(np_buf_consume(b, 4), NP_OK);
	ck_assert_uint_eq(np_buf_avail(b), 4);
	ck_assert_int_eq(np_buf_put_u32(b, 0x41424344), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "456789ABCD", 10);
	ck_assert_int_eq(np_buf_put_u16(b, 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put_u64(b, 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put_u32(b, 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put_string(b, "", 0), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_putf(b, "x"), NP_ERR_TOO_BIG);
	ck_assert_mem_eq(np_buf_ptr(b), "456789ABCD", 10);
	np_buf_free(b);
}
END_TEST

START_TEST(test_grow)
{
	struct np_buf *b = np_buf_new(100000);
	uint8_t chunk[1000];
	size_t i;

	for (i = 0; i < sizeof(chunk); i++) {
		chunk[i] = (uint8_t)i;
	}
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(np_buf_put(b, chunk, sizeof(chunk)), NP_OK);
	}
	ck_assert_int_eq(np_buf_put_u8(b, 0), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 100000);
	for (i = 0; i < 100; i++) {
		ck_assert_mem_eq(np_buf_ptr(b) + i * 1000, chunk, 1000);
	}
	/* interleave consume and put: data stays in order */
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(np_buf_consume(b, 100), NP_OK);
		ck_assert_int_eq(np_buf_put(b, chunk, 100), NP_OK);
	}
	ck_assert_uint_eq(np_buf_len(b), 100000);
	ck_assert_mem_eq(np_buf_ptr(b) + 99900, chunk, 100);
	np_buf_free(b);
}
END_TEST

START_TEST(test_reserve_unreserve)
{
	struct np_buf *b = np_buf_new(32);
	uint8_t *dst = NULL;

	ck_assert_int_eq(np_buf_put(b, "ab", 2), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, 10, &dst), NP_OK);
	ck_assert_ptr_nonnull(dst);
	ck_assert_uint_eq(np_buf_len(b), 12);
	memcpy(dst, "cde", 3); /* a short read of 3 into 10 */
	ck_assert_int_eq(np_buf_unreserve(b, 7), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 5);
	ck_assert_mem_eq(np_buf_ptr(b), "abcde", 5);
	ck_assert_int_eq(np_buf_unreserve(b, 6), NP_ERR_TRUNCATED);
	ck_assert_uint_eq(np_buf_len(b), 5);
	ck_assert_int_eq(np_buf_reserve(b, 0, NULL), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, 27, NULL), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, 1, NULL), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_unreserve(b, 32), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
}
END_TEST

START_TEST(test_consume)
{
	struct np_buf *b = np_buf_new(32);

	ck_assert_int_eq(np_buf_put(b, "hello world", 11), NP_OK);
	ck_assert_int_eq(np_buf_consume(b, 12), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_consume_end(b, 12), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_consume(b, SIZE_MAX), NP_ERR_TRUNCATED);
	ck_assert_uint_eq(np_buf_len(b), 11);
	ck_assert_int_eq(np_buf_consume(b, 0), NP_OK);
	ck_assert_int_eq(np_buf_consume(b, 6), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "world", 5);
	ck_assert_int_eq(np_buf_consume_end(b, 2), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "wor", 3);
	ck_assert_uint_eq(np_buf_len(b), 3);
	ck_assert_int_eq(np_buf_consume(b, 3), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_uint_eq(np_buf_avail(b), 32);
	ck_assert_int_eq(np_buf_consume(b, 1), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_consume_end(b, 1), NP_ERR_TRUNCATED);
	np_buf_free(b);
}
END_TEST

START_TEST(test_reset)
{
	struct np_buf *b = np_buf_new(8);

	ck_assert_int_eq(np_buf_put(b, "12345678", 8), NP_OK);
	np_buf_reset(b);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_uint_eq(np_buf_avail(b), 8);
	ck_assert_int_eq(np_buf_put(b, "abcdefgh", 8), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "abcdefgh", 8);
	np_buf_free(b);
}
END_TEST

START_TEST(test_strings)
{
	struct np_buf *b = np_buf_new(64);
	const uint8_t *dp;
	uint8_t *p;
	char *s;
	size_t n;

	ck_assert_int_eq(np_buf_put_string(b, "abc", 3), NP_OK);
	ck_assert_int_eq(np_buf_put_cstring(b, "hello"), NP_OK);
	ck_assert_int_eq(np_buf_put_string(b, NULL, 0), NP_OK);
	ck_assert_int_eq(np_buf_put_cstring(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_put_string(b, "x\0y", 3), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 4 + 3 + 4 + 5 + 4 + 4 + 4 + 3);
	ck_assert_mem_eq(np_buf_ptr(b), "\0\0\0\x03" "abc", 7);

	ck_assert_int_eq(np_buf_get_string(b, &p, &n), NP_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq((char *)p, "abc"); /* NUL-terminated */
	free(p);
	ck_assert_int_eq(np_buf_get_cstring(b, &s, &n), NP_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(s, "hello");
	free(s);
	ck_assert_int_eq(np_buf_get_string_direct(b, &dp, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(np_buf_get_cstring(b, &s, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(s, "");
	free(s);
	/* embedded NUL: fine as a string, refused as a cstring */
	ck_assert_int_eq(np_buf_get_cstring(b, &s, &n), NP_ERR_INVALID);
	ck_assert_ptr_null(s);
	ck_assert_uint_eq(np_buf_len(b), 7); /* nothing consumed */
	ck_assert_int_eq(np_buf_get_string_direct(b, &dp, &n), NP_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(dp, "x\0y", 3);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(test_strings_null_out)
{
	struct np_buf *b = np_buf_new(64);

	ck_assert_int_eq(np_buf_put_cstring(b, "abc"), NP_OK);
	ck_assert_int_eq(np_buf_put_cstring(b, "def"), NP_OK);
	ck_assert_int_eq(np_buf_put_cstring(b, "ghi"), NP_OK);
	ck_assert_int_eq(np_buf_get_string(b, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_string_direct(b, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_cstring(b, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(test_string_past_end)
{
	/* length 5, only 4 bytes follow */
	static const uint8_t short1[] = { 0, 0, 0, 5, 'a', 'b', 'c', 'd' };
	/* length 0xffffffff */
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'a' };
	/* only 3 bytes of length */
	static const uint8_t nolen[] = { 0, 0, 0 };
	const uint8_t *cases[] = { short1, huge, nolen };
	const size_t lens[] = { sizeof(short1), sizeof(huge), sizeof(nolen) };
	struct np_buf *b;
	const uint8_t *dp;
	uint8_t *p;
	char *s;
	size_t i, n;

	for (i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(b = np_buf_from(cases[i], lens[i]));
		p = (uint8_t *)1;
		s = (char *)1;
		dp = (const uint8_t *)1;
		ck_assert_int_eq(np_buf_get_string(b, &p, &n),
		    NP_ERR_TRUNCATED);
		ck_assert_ptr_null(p);
		ck_assert_int_eq(np_buf_get_string_direct(b, &dp, &n),
		    NP_ERR_TRUNCATED);
		ck_assert_ptr_null(dp);
		ck_assert_int_eq(np_buf_get_cstring(b, &s, &n),
		    NP_ERR_TRUNCATED);
		ck_assert_ptr_null(s);
		ck_assert_uint_eq(np_buf_len(b), lens[i]);
		ck_assert_int_eq(np_buf_get_end(b), NP_ERR_INVALID);
		np_buf_free(b);
	}
}
END_TEST

START_TEST(test_put_string_caps)
{
	struct np_buf *b = np_buf_new(8);

	/* 4 + 5 > 8 */
	ck_assert_int_eq(np_buf_put_string(b, "hello", 5), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put_cstring(b, "hello"), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0); /* no half-written length */
	ck_assert_int_eq(np_buf_put_string(b, "hell", 4), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 8);
	np_buf_reset(b);
	ck_assert_int_eq(np_buf_put_string(b, "x", (size_t)UINT32_MAX + 1),
	    NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_put_string(b, "x", SIZE_MAX), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
}
END_TEST

START_TEST(test_get_end_trailing)
{
	struct np_buf *b = np_buf_new(16);
	uint32_t v;

	ck_assert_int_eq(np_buf_put_u32(b, 1), NP_OK);
	ck_assert_int_eq(np_buf_put_u8(b, 2), NP_OK);
	ck_assert_int_eq(np_buf_get_u32(b, &v), NP_OK);
	ck_assert_int_eq(np_buf_get_end(b), NP_ERR_INVALID);
	ck_assert_int_eq(np_buf_get_u8(b, NULL), NP_OK);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(test_from)
{
	struct np_buf *b;
	uint8_t *dst;
	uint32_t v;

	ck_assert_ptr_nonnull(b = np_buf_from("\0\0\0\x2a", 4));
	ck_assert_uint_eq(np_buf_len(b), 4);
	/* read-only: no writes */
	ck_assert_int_ne(np_buf_put_u8(b, 1), NP_OK);
	ck_assert_int_ne(np_buf_reserve(b, 1, &dst), NP_OK);
	ck_assert_int_ne(np_buf_putf(b, "x"), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 4);
	ck_assert_int_eq(np_buf_get_u32(b, &v), NP_OK);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);

	/* a copy: changing the source does not change the buffer */
	{
		char src[] = "abc";

		ck_assert_ptr_nonnull(b = np_buf_from(src, 3));
		src[0] = 'z';
		ck_assert_mem_eq(np_buf_ptr(b), "abc", 3);
		np_buf_free(b);
	}

	ck_assert_ptr_nonnull(b = np_buf_from(NULL, 0));
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_int_eq(np_buf_get_u8(b, NULL), NP_ERR_TRUNCATED);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(test_putf)
{
	struct np_buf *b = np_buf_new(16);

	ck_assert_int_eq(np_buf_putf(b, "%s-%d", "ab", 42), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 5); /* no NUL */
	ck_assert_mem_eq(np_buf_ptr(b), "ab-42", 5);
	ck_assert_int_eq(np_buf_putf(b, "%s", ""), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 5);
	ck_assert_int_eq(np_buf_putf(b, "%d", 123456), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "ab-42123456", 11);
	/* exactly filling the cap works */
	ck_assert_int_eq(np_buf_putf(b, "%s", "wxyzq"), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 16);
	ck_assert_mem_eq(np_buf_ptr(b), "ab-42123456wxyzq", 16);
	ck_assert_int_eq(np_buf_putf(b, "%s", "!"), NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 16);
	np_buf_reset(b);
	ck_assert_int_eq(np_buf_putf(b, "%s", "0123456789abcdefX"),
	    NP_ERR_TOO_BIG);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_int_eq(np_buf_putf(b, "%s", "0123456789abcdef"), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "0123456789abcdef", 16);
	np_buf_free(b);
}
END_TEST

START_TEST(test_secure)
{
	struct np_buf *b;
	uint8_t *dst, key[32], out[32];
	uint8_t *p;
	size_t n;

	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_ptr_nonnull(b = np_buf_new_secure(128));
	randombytes_buf(key, sizeof(key));
	ck_assert_int_eq(np_buf_put_string(b, key, sizeof(key)), NP_OK);
	ck_assert_int_eq(np_buf_put_u32(b, 7), NP_OK);
	ck_assert_int_eq(np_buf_get_string(b, &p, &n), NP_OK);
	ck_assert_uint_eq(n, 32);
	ck_assert_mem_eq(p, key, 32);
	free(p);
	ck_assert_uint_eq(np_buf_len(b), 4);
	/* it grows to its cap, never past it */
	ck_assert_int_eq(np_buf_reserve(b, 124, &dst), NP_OK);
	memset(dst, 0x5a, 124);
	ck_assert_int_eq(np_buf_put_u8(b, 1), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_buf_unreserve(b, 124), NP_OK);
	ck_assert_int_eq(np_buf_consume(b, 4), NP_OK);
	/* consuming from the front then refilling packs the data */
	ck_assert_int_eq(np_buf_put(b, key, 32), NP_OK);
	ck_assert_int_eq(np_buf_consume(b, 16), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, 100, &dst), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), key + 16, 16);
	ck_assert_int_eq(np_buf_consume_end(b, 100), NP_OK);
	ck_assert_int_eq(np_buf_get(b, out, 16), NP_OK);
	ck_assert_mem_eq(out, key + 16, 16);
	ck_assert_int_eq(np_buf_putf(b, "%s", "secret"), NP_OK);
	ck_assert_mem_eq(np_buf_ptr(b), "secret", 6);
	np_buf_reset(b);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_uint_eq(np_buf_avail(b), 128);
	np_buf_free(b);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(out, sizeof(out));
}
END_TEST

START_TEST(test_zero_length_ops)
{
	struct np_buf *b = np_buf_new(4);
	uint8_t *dst;

	ck_assert_int_eq(np_buf_put(b, NULL, 0), NP_OK);
	ck_assert_int_eq(np_buf_reserve(b, 0, &dst), NP_OK);
	ck_assert_int_eq(np_buf_get(b, NULL, 0), NP_OK);
	ck_assert_int_eq(np_buf_consume(b, 0), NP_OK);
	ck_assert_int_eq(np_buf_consume_end(b, 0), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), 0);
	ck_assert_int_eq(np_buf_get_end(b), NP_OK);
	np_buf_free(b);
}
END_TEST

static Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc_basic = tcase_create("basic");
	TCase *tc_str = tcase_create("strings");
	TCase *tc_lim = tcase_create("limits");

	tcase_add_test(tc_basic, test_new_caps);
	tcase_add_test(tc_basic, test_put_get_ints);
	tcase_add_test(tc_basic, test_extreme_ints);
	tcase_add_test(tc_basic, test_gets_skip_with_null);
	tcase_add_test(tc_basic, test_peek);
	tcase_add_test(tc_basic, test_reset);
	tcase_add_test(tc_basic, test_from);
	tcase_add_test(tc_basic, test_putf);
	tcase_add_test(tc_basic, test_secure);
	tcase_add_test(tc_basic, test_zero_length_ops);
	suite_add_tcase(s, tc_basic);

	tcase_add_test(tc_str, test_strings);
	tcase_add_test(tc_str, test_strings_null_out);
	tcase_add_test(tc_str, test_string_past_end);
	tcase_add_test(tc_str, test_put_string_caps);
	suite_add_tcase(s, tc_str);

	tcase_add_test(tc_lim, test_truncated);
	tcase_add_test(tc_lim, test_cap_too_big);
	tcase_add_test(tc_lim, test_grow);
	tcase_add_test(tc_lim, test_reserve_unreserve);
	tcase_add_test(tc_lim, test_consume);
	tcase_add_test(tc_lim, test_get_end_trailing);
	suite_add_tcase(s, tc_lim);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
