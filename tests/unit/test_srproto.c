/* Tests for lib/srproto.c: token lines, session bodies, np_sr_connect. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "ev.h"
#include "frame.h"
#include "srproto.h"

#define SID "0123456789abcdef0123456789abcdef"

static void
fill_token(uint8_t t[NP_SR_TOKEN_LEN], uint8_t base)
{
	int i;

	for (i = 0; i < NP_SR_TOKEN_LEN; i++) {
		t[i] = (uint8_t)(base + i * 7);
	}
}

/* The formatted line for SID, side, token(base) as a C string. */
static char *
make_line(enum np_sr_side side, uint8_t base)
{
	struct np_buf *b = np_buf_new(NP_SRLINE_MAX);
	uint8_t tok[NP_SR_TOKEN_LEN];
	char *s;

	ck_assert_ptr_nonnull(b);
	fill_token(tok, base);
	ck_assert_int_eq(np_srline_format(SID, side, tok, b), NP_OK);
	s = calloc(1, np_buf_len(b) + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, np_buf_ptr(b), np_buf_len(b));
	np_buf_free(b);
	return s;
}

static int
parse_str(const char *s)
{
	char sid[NP_SR_SID_LEN + 1];
	enum np_sr_side side;
	uint8_t tok[NP_SR_TOKEN_LEN];

	return np_srline_parse((const uint8_t *)s, strlen(s), sid, &side, tok);
}

/* --- token lines --- */

START_TEST(line_roundtrip)
{
	char sid[NP_SR_SID_LEN + 1];
	enum np_sr_side side;
	uint8_t tok[NP_SR_TOKEN_LEN], want[NP_SR_TOKEN_LEN];
	char *s;
	int i;

	for (i = 0; i < 2; i++) {
		s = make_line(i == 0 ? NP_SR_CLIENT : NP_SR_DEVICE, 3);
		ck_assert_uint_eq(strlen(s), 85);
		ck_assert(strncmp(s, "NPSR1 " SID " ", 39) == 0);
		ck_assert_int_eq(s[39], i == 0 ? 'c' : 'd');
		ck_assert_int_eq(s[84], '\n');
		ck_assert_int_eq(np_srline_parse((uint8_t *)s, strlen(s), sid,
		    &side, tok), NP_OK);
		ck_assert_str_eq(sid, SID);
		ck_assert_int_eq(side, i == 0 ? NP_SR_CLIENT : NP_SR_DEVICE);
		fill_token(want, 3);
		ck_assert_mem_eq(tok, want, NP_SR_TOKEN_LEN);
		free(s);
	}
}
END_TEST

START_TEST(line_known_vector)
{
	uint8_t tok[NP_SR_TOKEN_LEN];
	struct np_buf *b = np_buf_new(NP_SRLINE_MAX);
	const char *want = "NPSR1 " SID " d "
	    "__________________________________________8\n";

	memset(tok, 0xff, sizeof(tok));
	ck_assert_int_eq(np_srline_format(SID, NP_SR_DEVICE, tok, b), NP_OK);
	ck_assert_uint_eq(np_buf_len(b), strlen(want));
	ck_assert_mem_eq(np_buf_ptr(b), want, strlen(want));
	ck_assert_int_eq(parse_str(want), NP_OK);
	np_buf_free(b);
}
END_TEST

START_TEST(line_format_bad)
{
	uint8_t tok[NP_SR_TOKEN_LEN] = { 0 };
	struct np_buf *b = np_buf_new(NP_SRLINE_MAX);

	ck_assert_int_eq(np_srline_format(NULL, NP_SR_CLIENT, tok, b),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format("0123", NP_SR_CLIENT, tok, b),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format(SID "0", NP_SR_CLIENT, tok, b),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format("0123456789ABCDEF0123456789abcdef",
	    NP_SR_CLIENT, tok, b), NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format("0123456789abcdeg0123456789abcdef",
	    NP_SR_CLIENT, tok, b), NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format(SID, (enum np_sr_side)2, tok, b),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_srline_format(SID, (enum np_sr_side)-1, tok, b),
	    NP_ERR_INVALID);
	ck_assert_uint_eq(np_buf_len(b), 0);
	np_buf_free(b);
	/* a buffer too small */
	b = np_buf_new(20);
	ck_assert_int_ne(np_srline_format(SID, NP_SR_CLIENT, tok, b), NP_OK);
	np_buf_free(b);
}
END_TEST

/* Replace s[off] with c and expect the parse to fail. */
static void
expect_bad_at(const char *good, size_t off, char c)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", good);
	buf[off] = c;
	ck_assert_msg(parse_str(buf) == NP_ERR_INVALID, "off %zu char %d",
	    off, c);
}

START_TEST(line_parse_bad)
{
	char *good = make_line(NP_SR_CLIENT, 9);
	char buf[256];
	char sid[NP_SR_SID_LEN + 1];
	enum np_sr_side side;
	uint8_t tok[NP_SR_TOKEN_LEN];
	size_t i, len = strlen(good);

	ck_assert_int_eq(parse_str(good), NP_OK);
	/* every truncation */
	for (i = 0; i < len; i++) {
		ck_assert_int_eq(np_srline_parse((uint8_t *)good, i, sid,
		    &side, tok), NP_ERR_INVALID);
	}
	ck_assert_int_eq(np_srline_parse(NULL, 0, sid, &side, tok),
	    NP_ERR_INVALID);
	/* trailing garbage */
	snprintf(buf, sizeof(buf), "%sx", good);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	snprintf(buf, sizeof(buf), "%s\n", good);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* CRLF */
	snprintf(buf, sizeof(buf), "%.*s\r\n", (int)len - 1, good);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* no final newline but right length */
	expect_bad_at(good, len - 1, ' ');
	expect_bad_at(good, len - 1, '\r');
	/* magic */
	expect_bad_at(good, 0, 'n');
	expect_bad_at(good, 4, '2');
	expect_bad_at(good, 5, '\t');
	/* sid: uppercase, non-hex, space, NUL */
	expect_bad_at(good, 6, 'A');
	expect_bad_at(good, 10, 'g');
	expect_bad_at(good, 37, ' ');
	expect_bad_at(good, 20, '\0');
	/* separators */
	expect_bad_at(good, 38, '_');
	expect_bad_at(good, 40, '\t');
	/* side */
	expect_bad_at(good, 39, 'C');
	expect_bad_at(good, 39, 'x');
	expect_bad_at(good, 39, ' ');
	/* token: standard alphabet, padding, space, bad char */
	expect_bad_at(good, 50, '+');
	expect_bad_at(good, 50, '/');
	expect_bad_at(good, 83, '=');
	expect_bad_at(good, 60, ' ');
	expect_bad_at(good, 60, '.');
	expect_bad_at(good, 60, '\0');
	/* libsodium 1.0.18 decodes bytes >= 0x80 as '_': refused */
	expect_bad_at(good, 60, (char)0xdf);
	expect_bad_at(good, 41, (char)0x80);
	expect_bad_at(good, 83, (char)0xff);
	/* double space: shift the token */
	snprintf(buf, sizeof(buf), "NPSR1 " SID " c  %.*s\n", 42, good + 41);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* leading space */
	snprintf(buf, sizeof(buf), " %.*s", (int)len - 1, good);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* token of 42 and 44 characters */
	snprintf(buf, sizeof(buf), "NPSR1 " SID " c %.*s\n", 42, good + 41);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	snprintf(buf, sizeof(buf), "NPSR1 " SID " c %.*sA\n", 43, good + 41);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* token with padding in standard form (44 chars) */
	snprintf(buf, sizeof(buf), "NPSR1 " SID " c %.*s=\n", 43, good + 41);
	ck_assert_int_eq(parse_str(buf), NP_ERR_INVALID);
	/* over-long line */
	memset(buf, 'a', 200);
	buf[199] = '\n';
	ck_assert_int_eq(np_srline_parse((uint8_t *)buf, 200, sid, &side,
	    tok), NP_ERR_INVALID);
	free(good);
}
END_TEST

START_TEST(line_parse_noncanonical)
{
	/* 32 bytes of 0xff end in "8"; "9" sets a bit that is not there */
	const char *bad = "NPSR1 " SID " c "
	    "__________________________________________9\n";
	const char *bad2 = "NPSR1 " SID " c "
	    "__________________________________________-\n";
	const char *good = "NPSR1 " SID " c "
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";

	ck_assert_int_eq(parse_str(bad), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(bad2), NP_ERR_INVALID);
	ck_assert_int_eq(parse_str(good), NP_OK);
}
END_TEST

START_TEST(line_len)
{
	uint8_t buf[300];

	memset(buf, 'x', sizeof(buf));
	ck_assert_int_eq(np_srline_len(buf, 0), NP_ERR_AGAIN);
	ck_assert_int_eq(np_srline_len(NULL, 0), NP_ERR_AGAIN);
	ck_assert_int_eq(np_srline_len(buf, 1), NP_ERR_AGAIN);
	ck_assert_int_eq(np_srline_len(buf, NP_SRLINE_MAX - 1),
	    NP_ERR_AGAIN);
	ck_assert_int_eq(np_srline_len(buf, NP_SRLINE_MAX), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_srline_len(buf, sizeof(buf)), NP_ERR_TOO_BIG);
	buf[0] = '\n';
	ck_assert_int_eq(np_srline_len(buf, 1), 1);
	ck_assert_int_eq(np_srline_len(buf, sizeof(buf)), 1);
	buf[0] = 'x';
	buf[NP_SRLINE_MAX - 1] = '\n';
	ck_assert_int_eq(np_srline_len(buf, NP_SRLINE_MAX), NP_SRLINE_MAX);
	ck_assert_int_eq(np_srline_len(buf, sizeof(buf)), NP_SRLINE_MAX);
	ck_assert_int_eq(np_srline_len(buf, NP_SRLINE_MAX - 1),
	    NP_ERR_AGAIN);
	buf[NP_SRLINE_MAX - 1] = 'x';
	buf[NP_SRLINE_MAX] = '\n';
	ck_assert_int_eq(np_srline_len(buf, sizeof(buf)), NP_ERR_TOO_BIG);
	buf[40] = '\n';
	ck_assert_int_eq(np_srline_len(buf, sizeof(buf)), 41);
	ck_assert_int_eq(np_srline_len(buf, 41), 41);
	ck_assert_int_eq(np_srline_len(buf, 40), NP_ERR_AGAIN);
}
END_TEST

/* --- session bodies --- */

static void
make_session(struct np_sr_session *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->sid, sizeof(s->sid), "%s", SID);
	s->deadline_ms = 1700000000123LL;
	snprintf(s->side[0].host, sizeof(s->side[0].host), "sr.example.com");
	s->side[0].port = 4433;
	fill_token(s->side[0].token, 1);
	snprintf(s->side[1].host, sizeof(s->side[1].host), "::1");
	s->side[1].port = 65535;
	fill_token(s->side[1].token, 2);
}

static const char *GOOD_JSON =
    "{\"sid\":\"" SID "\",\"deadline\":5,"
    "\"client\":{\"host\":\"127.0.0.1\",\"port\":1,"
    "\"token\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
    "\"device\":{\"host\":\"h\",\"port\":65535,"
    "\"token\":\"__________________________________________8\"}}";

static int
from_str(const char *js, struct np_sr_session *s)
{
	struct json_object *o = json_tokener_parse(js);
	int r;

	ck_assert_msg(o != NULL, "bad test json %s", js);
	r = np_sr_session_from_json(o, s);
	json_object_put(o);
	return r;
}

START_TEST(session_roundtrip)
{
	struct np_sr_session s, t;
	struct json_object *o = NULL;
	const char *js;

	make_session(&s);
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_OK);
	js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	ck_assert_ptr_nonnull(strstr(js, "\"deadline\":1700000000123"));
	ck_assert_ptr_nonnull(strstr(js, "\"port\":4433"));
	ck_assert_int_eq(np_sr_session_from_json(o, &t), NP_OK);
	ck_assert_str_eq(t.sid, s.sid);
	ck_assert_int_eq(t.deadline_ms, s.deadline_ms);
	ck_assert_str_eq(t.side[0].host, "sr.example.com");
	ck_assert_str_eq(t.side[1].host, "::1");
	ck_assert_int_eq(t.side[0].port, 4433);
	ck_assert_int_eq(t.side[1].port, 65535);
	ck_assert_mem_eq(t.side[0].token, s.side[0].token, NP_SR_TOKEN_LEN);
	ck_assert_mem_eq(t.side[1].token, s.side[1].token, NP_SR_TOKEN_LEN);
	json_object_put(o);
}
END_TEST

START_TEST(session_good_text)
{
	struct np_sr_session s;
	uint8_t ff[NP_SR_TOKEN_LEN];

	ck_assert_int_eq(from_str(GOOD_JSON, &s), NP_OK);
	ck_assert_int_eq(s.deadline_ms, 5);
	ck_assert_str_eq(s.side[NP_SR_CLIENT].host, "127.0.0.1");
	ck_assert_int_eq(s.side[NP_SR_CLIENT].port, 1);
	ck_assert_str_eq(s.side[NP_SR_DEVICE].host, "h");
	memset(ff, 0xff, sizeof(ff));
	ck_assert_mem_eq(s.side[NP_SR_DEVICE].token, ff, NP_SR_TOKEN_LEN);
}
END_TEST

/* GOOD_JSON with the first occurrence of from replaced by to. */
static int
from_replaced(const char *from, const char *to)
{
	struct np_sr_session s;
	char buf[1024];
	const char *p = strstr(GOOD_JSON, from);
	int r;

	ck_assert_msg(p != NULL, "no %s", from);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - GOOD_JSON),
	    GOOD_JSON, to, p + strlen(from));
	memset(&s, 0x5a, sizeof(s));
	r = from_str(buf, &s);
	return r;
}

START_TEST(session_bad)
{
	char host[300], big[400];

	/* not an object */
	ck_assert_int_eq(from_str("[]", NULL), NP_ERR_INVALID);
	{
		struct np_sr_session s;

		ck_assert_int_eq(from_str("[]", &s), NP_ERR_INVALID);
		ck_assert_int_eq(from_str("\"x\"", &s), NP_ERR_INVALID);
		ck_assert_int_eq(from_str("{}", &s), NP_ERR_INVALID);
		ck_assert_int_eq(np_sr_session_from_json(NULL, &s),
		    NP_ERR_INVALID);
	}
	/* sid */
	ck_assert_int_eq(from_replaced("\"" SID "\"", "\"ABC\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"" SID "\"",
	    "\"0123456789ABCDEF0123456789abcdef\""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"" SID "\"", "1"), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"" SID "\"", "\"" SID "0\""),
	    NP_ERR_INVALID);
	/* deadline */
	ck_assert_int_eq(from_replaced("\"deadline\":5", "\"deadline\":-1"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5", "\"deadline\":5.0"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5", "\"deadline\":\"5\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5",
	    "\"deadline\":99999999999999999999999"), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5", "\"deadline\":0"),
	    NP_OK);
	ck_assert_int_eq(from_replaced("\"deadline\":5", "\"deadline\":null"),
	    NP_ERR_INVALID);
	/* missing and extra members */
	ck_assert_int_eq(from_replaced("\"deadline\":5,", ""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5",
	    "\"deadline\":5,\"x\":1"), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"deadline\":5",
	    "\"deadlinx\":5"), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":1,", ""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":1,",
	    "\"port\":1,\"extra\":true,"), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"client\":{", "\"clien\":{"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"client\":{\"host\":\"127.0.0.1\","
	    "\"port\":1,\"token\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    "\"client\":[]"), NP_ERR_INVALID);
	/* port */
	ck_assert_int_eq(from_replaced("\"port\":1,", "\"port\":0,"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":65535", "\"port\":65536"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":1,", "\"port\":-1,"),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":1,", "\"port\":\"1\","),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"port\":1,", "\"port\":1.5,"),
	    NP_ERR_INVALID);
	/* host */
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "\"\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "\"a b\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "\"a\\tb\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "\"a\\u0000b\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "\"h\\u00e9\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", "1"),
	    NP_ERR_INVALID);
	memset(host, 'h', 255);
	host[255] = '\0';
	snprintf(big, sizeof(big), "\"%s\"", host);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", big), NP_OK);
	snprintf(big, sizeof(big), "\"%sh\"", host);
	ck_assert_int_eq(from_replaced("\"127.0.0.1\"", big),
	    NP_ERR_INVALID);
	/* token */
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+\""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\""), NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u00ff\""),
	    NP_ERR_INVALID);
	ck_assert_int_eq(from_replaced(
	    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", "null"),
	    NP_ERR_INVALID);
}
END_TEST

START_TEST(session_to_json_bad)
{
	struct np_sr_session s;
	struct json_object *o = NULL;

	make_session(&s);
	s.sid[0] = 'X';
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	make_session(&s);
	s.deadline_ms = -1;
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	make_session(&s);
	s.side[1].port = 0;
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	make_session(&s);
	s.side[0].host[0] = '\0';
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	make_session(&s);
	s.side[0].host[2] = ' ';
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	make_session(&s);
	memset(s.side[0].host, 'a', sizeof(s.side[0].host));
	ck_assert_int_eq(np_sr_session_to_json(&s, &o), NP_ERR_INVALID);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(np_sr_session_to_json(NULL, &o), NP_ERR_INVALID);
}
END_TEST

/* --- np_sr_connect against a tiny listener --- */

enum srv_mode { SRV_OK, SRV_ERR, SRV_SILENT, SRV_CLOSE, SRV_SPLIT,
	SRV_GARBAGE, SRV_LONG, SRV_PONG, SRV_PONG_SLOW };

struct srv {
	int lfd;
	uint16_t port;
	enum srv_mode mode;
	char got[256];
	size_t got_len;
	pthread_t th;
};

static void
srv_read_line(int fd, struct srv *s)
{
	ssize_t n;
	char c;

	while (s->got_len < sizeof(s->got) - 1) {
		n = read(fd, &c, 1);
		if (n != 1) {
			break;
		}
		s->got[s->got_len++] = c;
		if (c == '\n') {
			break;
		}
	}
}

static void
write_str(int fd, const char *s)
{
	ssize_t n = write(fd, s, strlen(s));

	(void)n;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	char big[300];
	int fd;

	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0) {
		return NULL;
	}
	srv_read_line(fd, s);
	switch (s->mode) {
	case SRV_OK:
		write_str(fd, "NPSR1 OK\nhello after");
		break;
	case SRV_ERR:
		write_str(fd, "NPSR1 ERR bad\x01token\n");
		break;
	case SRV_SILENT:
		usleep(800 * 1000);
		break;
	case SRV_CLOSE:
		break;
	case SRV_SPLIT:
		write_str(fd, "NPSR1 ");
		usleep(100 * 1000);
		write_str(fd, "OK");
		usleep(100 * 1000);
		write_str(fd, "\nrest");
		break;
	case SRV_GARBAGE:
		write_str(fd, "HTTP/1.1 400\n");
		break;
	case SRV_PONG:
		write_str(fd, "NPSR1 PONG\n");
		break;
	case SRV_PONG_SLOW:
		usleep(300 * 1000);
		write_str(fd, "NPSR1 PONG\n");
		break;
	case SRV_LONG:
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		write_str(fd, big);
		usleep(300 * 1000);
		break;
	}
	usleep(100 * 1000);
	close(fd);
	return NULL;
}

static void
srv_start(struct srv *s, enum srv_mode mode)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->lfd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	ck_assert_int_eq(listen(s->lfd, 4), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sin, &sl),
	    0);
	s->port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_join(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static void
make_ep(struct np_sr_endpoint *ep, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	snprintf(ep->host, sizeof(ep->host), "127.0.0.1");
	ep->port = port;
	fill_token(ep->token, 7);
}

/* Read exactly want bytes from a non-blocking fd within ~2 s. */
static void
read_expect(int fd, const char *want)
{
	char buf[64];
	size_t have = 0, n = strlen(want);
	ssize_t k;
	int tries = 0;

	while (have < n && tries++ < 200) {
		k = read(fd, buf + have, n - have);
		if (k > 0) {
			have += (size_t)k;
		} else {
			usleep(10 * 1000);
		}
	}
	ck_assert_uint_eq(have, n);
	ck_assert_mem_eq(buf, want, n);
}

START_TEST(connect_ok)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64], *line;
	int fd = -1, fl;

	srv_start(&s, SRV_OK);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_DEVICE, 2000, &fd, why,
	    sizeof(why)), NP_OK);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(why, "");
	fl = fcntl(fd, F_GETFL);
	ck_assert(fl & O_NONBLOCK);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* the bytes after the answer line are still there */
	read_expect(fd, "hello after");
	close(fd);
	srv_join(&s);
	line = make_line(NP_SR_DEVICE, 7);
	ck_assert_uint_eq(s.got_len, strlen(line));
	ck_assert_mem_eq(s.got, line, s.got_len);
	free(line);
}
END_TEST

START_TEST(connect_split_answer)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64];
	int fd = -1;

	srv_start(&s, SRV_SPLIT);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_OK);
	read_expect(fd, "rest");
	close(fd);
	srv_join(&s);
}
END_TEST

START_TEST(connect_err)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64];
	int fd = -1;

	srv_start(&s, SRV_ERR);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_AUTH);
	ck_assert_int_eq(fd, -1);
	ck_assert_str_eq(why, "bad?token");
	srv_join(&s);
	/* a tiny why buffer is truncated, not overrun */
	srv_start(&s, SRV_ERR);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    4), NP_ERR_AUTH);
	ck_assert_str_eq(why, "bad");
	srv_join(&s);
}
END_TEST

START_TEST(connect_silent)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64];
	int fd = -1;
	uint64_t t0;

	srv_start(&s, SRV_SILENT);
	make_ep(&ep, s.port);
	t0 = (uint64_t)time(NULL);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 300, &fd, why,
	    sizeof(why)), NP_ERR_TIMEOUT);
	ck_assert_uint_le((uint64_t)time(NULL) - t0, 2);
	ck_assert_int_eq(fd, -1);
	ck_assert_str_ne(why, "");
	srv_join(&s);
}
END_TEST

START_TEST(connect_closed)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64];
	int fd = -1;

	srv_start(&s, SRV_CLOSE);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_CLOSED);
	ck_assert_int_eq(fd, -1);
	srv_join(&s);
}
END_TEST

START_TEST(connect_garbage)
{
	struct srv s;
	struct np_sr_endpoint ep;
	char why[64];
	int fd = -1;

	srv_start(&s, SRV_GARBAGE);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_PROTO);
	srv_join(&s);
	srv_start(&s, SRV_LONG);
	make_ep(&ep, s.port);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_PROTO);
	ck_assert_int_eq(fd, -1);
	srv_join(&s);
}
END_TEST

START_TEST(connect_refused)
{
	struct np_sr_endpoint ep;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char why[64];
	int fd = -1, l;

	/* a port that was just free */
	l = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	close(l);
	make_ep(&ep, ntohs(sin.sin_port));
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_UNREACHABLE);
	ck_assert_int_eq(fd, -1);
	ck_assert_str_ne(why, "");
	/* bad arguments */
	ck_assert_int_eq(np_sr_connect(&ep, "nothex", NP_SR_CLIENT, 2000, &fd,
	    why, sizeof(why)), NP_ERR_INVALID);
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 0, &fd,
	    why, sizeof(why)), NP_ERR_INVALID);
	ck_assert_int_eq(np_sr_connect(NULL, SID, NP_SR_CLIENT, 100, &fd,
	    why, sizeof(why)), NP_ERR_INVALID);
	snprintf(ep.host, sizeof(ep.host), "no-such-host.invalid");
	ck_assert_int_eq(np_sr_connect(&ep, SID, NP_SR_CLIENT, 2000, &fd, why,
	    sizeof(why)), NP_ERR_UNREACHABLE);
}
END_TEST

START_TEST(ticket_check)
{
	uint8_t key[NP_SR_PROBE_KEY_LEN], other[NP_SR_PROBE_KEY_LEN];
	uint8_t t[NP_SR_TICKET_LEN], t2[NP_SR_TICKET_LEN], back[NP_SR_TICKET_LEN];
	char b64[NP_SR_TICKET_B64_LEN + 1];
	int64_t now = 1700000000000LL;
	size_t i;

	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	np_sr_ticket_make(key, now + NP_SR_PROBE_TTL_MS, t);
	ck_assert_int_eq(np_sr_ticket_check(key, t, now), NP_OK);
	ck_assert_int_eq(np_sr_ticket_check(key, t, now +
	    NP_SR_PROBE_TTL_MS), NP_OK);
	/* expired, not ours, too far ahead */
	ck_assert_int_eq(np_sr_ticket_check(key, t, now +
	    NP_SR_PROBE_TTL_MS + 1), NP_ERR_AUTH);
	ck_assert_int_eq(np_sr_ticket_check(other, t, now), NP_ERR_AUTH);
	ck_assert_int_eq(np_sr_ticket_check(key, t, now - 1), NP_ERR_AUTH);
	/* every bit counts, the expiry's too */
	for (i = 0; i < NP_SR_TICKET_LEN; i++) {
		memcpy(t2, t, sizeof(t));
		t2[i] ^= 0x10;
		ck_assert_int_eq(np_sr_ticket_check(key, t2, now),
		    NP_ERR_AUTH);
	}
	/* two tickets for one expiry differ (nonce) */
	np_sr_ticket_make(key, now + NP_SR_PROBE_TTL_MS, t2);
	ck_assert(memcmp(t, t2, sizeof(t)) != 0);
	np_sr_ticket_encode(t, b64);
	ck_assert_uint_eq(strlen(b64), NP_SR_TICKET_B64_LEN);
	ck_assert_int_eq(np_sr_ticket_decode(b64, strlen(b64), back), NP_OK);
	ck_assert(memcmp(t, back, sizeof(t)) == 0);
	ck_assert_int_eq(np_sr_ticket_decode(b64, strlen(b64) - 1, back),
	    NP_ERR_INVALID);
	b64[3] = '+';
	ck_assert_int_eq(np_sr_ticket_decode(b64, strlen(b64), back),
	    NP_ERR_INVALID);
}
END_TEST

START_TEST(probe_line)
{
	uint8_t key[NP_SR_PROBE_KEY_LEN], t[NP_SR_TICKET_LEN];
	uint8_t back[NP_SR_TICKET_LEN];
	char b64[NP_SR_TICKET_B64_LEN + 1], line[160];
	int n;

	memset(key, 1, sizeof(key));
	np_sr_ticket_make(key, 5, t);
	np_sr_ticket_encode(t, b64);
	n = snprintf(line, sizeof(line), "NPSR1 PROBE %s\n", b64);
	ck_assert_int_lt(n, NP_SRLINE_MAX);
	ck_assert(np_srprobe_is((const uint8_t *)line, (size_t)n));
	ck_assert_int_eq(np_srline_len((const uint8_t *)line, (size_t)n), n);
	ck_assert_int_eq(np_srprobe_parse((const uint8_t *)line, (size_t)n,
	    back), NP_OK);
	ck_assert(memcmp(t, back, sizeof(t)) == 0);
	/* not a probe: a token line, no newline, extra bytes, CRLF */
	ck_assert(!np_srprobe_is((const uint8_t *)"NPSR1 " SID " c x\n", 42));
	ck_assert_int_eq(np_srprobe_parse((const uint8_t *)line,
	    (size_t)n - 1, back), NP_ERR_INVALID);
	line[n - 1] = 'x';
	ck_assert_int_eq(np_srprobe_parse((const uint8_t *)line, (size_t)n,
	    back), NP_ERR_INVALID);
	n = snprintf(line, sizeof(line), "NPSR1 PROBE %s\r\n", b64);
	ck_assert_int_eq(np_srprobe_parse((const uint8_t *)line, (size_t)n,
	    back), NP_ERR_INVALID);
	n = snprintf(line, sizeof(line), "NPSR1 PROBE  %s\n", b64);
	ck_assert_int_eq(np_srprobe_parse((const uint8_t *)line, (size_t)n,
	    back), NP_ERR_INVALID);
	ck_assert_int_eq(np_srprobe_parse(NULL, 0, back), NP_ERR_INVALID);
}
END_TEST

START_TEST(probe_many)
{
	static const enum srv_mode modes[] = { SRV_PONG_SLOW, SRV_PONG,
		SRV_ERR, SRV_SILENT, SRV_GARBAGE };
	struct srv s[5];
	struct np_sr_probe_job j[6];
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char b64[NP_SR_TICKET_B64_LEN + 1];
	uint8_t key[NP_SR_PROBE_KEY_LEN], t[NP_SR_TICKET_LEN];
	char want[128];
	uint64_t t0;
	size_t i;
	int l;

	memset(key, 3, sizeof(key));
	np_sr_ticket_make(key, 5, t);
	np_sr_ticket_encode(t, b64);
	memset(j, 0, sizeof(j));
	for (i = 0; i < 5; i++) {
		srv_start(&s[i], modes[i]);
		j[i].host = "127.0.0.1";
		j[i].port = s[i].port;
		j[i].ticket_b64 = b64;
	}
	/* a port that was just free: refused */
	l = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	close(l);
	j[5].host = "127.0.0.1";
	j[5].port = ntohs(sin.sin_port);
	j[5].ticket_b64 = b64;
	t0 = np_now_mono_ms();
	ck_assert_int_eq(np_sr_probe_many(j, 6, 600), NP_OK);
	/* at once: the silent one's 600 ms, not the sum */
	ck_assert_uint_lt(np_now_mono_ms() - t0, 1000);
	ck_assert_int_eq(j[0].r, NP_OK);
	ck_assert_uint_ge(j[0].ms, 300);
	ck_assert_int_eq(j[1].r, NP_OK);
	ck_assert_uint_lt(j[1].ms, j[0].ms);
	ck_assert_int_eq(j[2].r, NP_ERR_AUTH);
	ck_assert_str_eq(j[2].why, "bad?token");
	ck_assert_int_eq(j[3].r, NP_ERR_TIMEOUT);
	ck_assert_int_eq(j[4].r, NP_ERR_PROTO);
	ck_assert_int_eq(j[5].r, NP_ERR_UNREACHABLE);
	ck_assert_str_ne(j[5].why, "");
	for (i = 0; i < 5; i++) {
		srv_join(&s[i]);
	}
	snprintf(want, sizeof(want), "NPSR1 PROBE %s\n", b64);
	ck_assert_str_eq(s[1].got, want);
	/* bad arguments */
	ck_assert_int_eq(np_sr_probe_many(j, NP_SR_PROBES_MAX + 1, 100),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_sr_probe_many(j, 1, 0), NP_ERR_INVALID);
	j[0].ticket_b64 = "short";
	ck_assert_int_eq(np_sr_probe_many(j, 1, 100), NP_OK);
	ck_assert_int_eq(j[0].r, NP_ERR_INVALID);
}
END_TEST

static Suite *
srproto_suite(void)
{
	Suite *s = suite_create("srproto");
	TCase *tc;

	tc = tcase_create("line");
	tcase_add_test(tc, line_roundtrip);
	tcase_add_test(tc, line_known_vector);
	tcase_add_test(tc, line_format_bad);
	tcase_add_test(tc, line_parse_bad);
	tcase_add_test(tc, line_parse_noncanonical);
	tcase_add_test(tc, line_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("session");
	tcase_add_test(tc, session_roundtrip);
	tcase_add_test(tc, session_good_text);
	tcase_add_test(tc, session_bad);
	tcase_add_test(tc, session_to_json_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("probe");
	tcase_add_test(tc, ticket_check);
	tcase_add_test(tc, probe_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, connect_ok);
	tcase_add_test(tc, connect_split_answer);
	tcase_add_test(tc, connect_err);
	tcase_add_test(tc, connect_silent);
	tcase_add_test(tc, connect_closed);
	tcase_add_test(tc, connect_garbage);
	tcase_add_test(tc, connect_refused);
	tcase_add_test(tc, probe_many);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	Suite *s = srproto_suite();
	SRunner *sr = srunner_create(s);
	int nf;

	if (sodium_init() < 0) {
		return EXIT_FAILURE;
	}
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
