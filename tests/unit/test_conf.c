#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"

struct tconf {
	char *name;
	long port;
	int verbose;
	long timeout;
	struct np_hostport server;
	char *ident;
	struct np_strlist allow;
	char *keyfile;
	long anyint;
	long anydur;
	char *empty_ok;
	struct np_strlines rules;
};

static const struct np_conf_kw ttable[] = {
	{ "Name", NP_CONF_STR, offsetof(struct tconf, name), 0, 0, 0, "name" },
	{ "Port", NP_CONF_INT, offsetof(struct tconf, port), 0, 1, 65535,
	    "port" },
	{ "Verbose", NP_CONF_BOOL, offsetof(struct tconf, verbose), 0, 0, 0,
	    "verbose" },
	{ "Timeout", NP_CONF_DURATION, offsetof(struct tconf, timeout), 0, 1,
	    86400, "timeout" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct tconf, server),
	    NP_CONF_REQUIRED | NP_CONF_MULTI, 0, 0, "server" },
	{ "Identity", NP_CONF_IDENT, offsetof(struct tconf, ident), 0, 0, 0,
	    "identity" },
	{ "Allow", NP_CONF_LIST, offsetof(struct tconf, allow), 0, 0, 0,
	    "allow" },
	{ "KeyFile", NP_CONF_PATH, offsetof(struct tconf, keyfile), 0, 0, 0,
	    "key" },
	{ "AnyInt", NP_CONF_INT, offsetof(struct tconf, anyint), 0, 0, 0,
	    "any" },
	{ "AnyDuration", NP_CONF_DURATION, offsetof(struct tconf, anydur), 0,
	    0, 0, "any" },
	{ "Comment", NP_CONF_STR, offsetof(struct tconf, empty_ok), 0, 0, 0,
	    "comment" },
	{ "Rule", NP_CONF_LINES, offsetof(struct tconf, rules), 0, 0, 0,
	    "rule" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static struct tconf tc;
static char errbuf[1024];

static void
setup(void)
{
	memset(&tc, 0, sizeof(tc));
	errbuf[0] = '\0';
}

static void
teardown(void)
{
	np_conf_free(ttable, &tc);
}

static int
parse(const char *text)
{
	return np_conf_parse(ttable, &tc, text, strlen(text), "t.conf", errbuf,
	    sizeof(errbuf));
}

/* Parse with a valid Server line first, so other errors can be seen. */
static int
parse_srv(const char *text)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "Server s.example:1\n%s", text);
	return parse(buf);
}

#define ck_err(text, want)                                                \
	do {                                                              \
		ck_assert_int_eq(parse(text), NP_ERR_CONF);               \
		ck_assert_str_eq(errbuf, want);                           \
	} while (0)

#define ck_err_srv(text, want)                                            \
	do {                                                              \
		ck_assert_int_eq(parse_srv(text), NP_ERR_CONF);           \
		ck_assert_str_eq(errbuf, want);                           \
	} while (0)

START_TEST(test_good_file)
{
	const char *text =
	    "# a comment\n"
	    "\n"
	    "   \t\n"
	    "  Name   \"hello world\"   # trailing comment\n"
	    "PORT=2222\n"
	    "verbose = yes\n"
	    "\tTimeout 5m\n"
	    "Server = [::1]:8443\r\n"
	    "Identity @alice.dev-1\n"
	    "Allow a b\n"
	    "Allow \"c d\" e#f\n"
	    "KeyFile /etc/np/key\n"
	    "AnyInt -5\n"
	    "AnyDuration 0\n"
	    "Comment \"\"";

	ck_assert_int_eq(parse(text), NP_OK);
	ck_assert_str_eq(errbuf, "");
	ck_assert_str_eq(tc.name, "hello world");
	ck_assert_int_eq(tc.port, 2222);
	ck_assert_int_eq(tc.verbose, 1);
	ck_assert_int_eq(tc.timeout, 300);
	ck_assert_str_eq(tc.server.host, "::1");
	ck_assert_str_eq(tc.server.port, "8443");
	ck_assert_str_eq(tc.ident, "@alice.dev-1");
	ck_assert_uint_eq(tc.allow.n, 4);
	ck_assert_str_eq(tc.allow.v[0], "a");
	ck_assert_str_eq(tc.allow.v[1], "b");
	ck_assert_str_eq(tc.allow.v[2], "c d");
	ck_assert_str_eq(tc.allow.v[3], "e#f");
	ck_assert_str_eq(tc.keyfile, "/etc/np/key");
	ck_assert_int_eq(tc.anyint, -5);
	ck_assert_int_eq(tc.anydur, 0);
	ck_assert_str_eq(tc.empty_ok, "");
}
END_TEST

START_TEST(test_forms)
{
	ck_assert_int_eq(parse("Server h:1\nName=x\n"), NP_OK);
	ck_assert_str_eq(tc.name, "x");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse("Server h:1\nName =x\n"), NP_OK);
	ck_assert_str_eq(tc.name, "x");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse("Server h:1\nName= x\n"), NP_OK);
	ck_assert_str_eq(tc.name, "x");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse("Server h:1\nName\t=\t\"x y\"\t\n"), NP_OK);
	ck_assert_str_eq(tc.name, "x y");
	np_conf_free(ttable, &tc);
	/* '#' inside a quoted value is kept */
	ck_assert_int_eq(parse("Server h:1\nName \"a # b\"#x\n"), NP_ERR_CONF);
	ck_assert_int_eq(parse("Server h:1\nName \"a # b\" #x\n"), NP_OK);
	ck_assert_str_eq(tc.name, "a # b");
	np_conf_free(ttable, &tc);
	/* value containing '=' */
	ck_assert_int_eq(parse("Server h:1\nName a=b\n"), NP_OK);
	ck_assert_str_eq(tc.name, "a=b");
	np_conf_free(ttable, &tc);
	/* CRLF everywhere, no final newline */
	ck_assert_int_eq(parse("Server h:1\r\nPort 7\r\n\r\nName z"), NP_OK);
	ck_assert_int_eq(tc.port, 7);
	ck_assert_str_eq(tc.name, "z");
}
END_TEST

START_TEST(test_defaults_replaced)
{
	tc.name = strdup("default");
	tc.keyfile = strdup("/default/key");
	tc.port = 22;
	tc.server.host = strdup("default.example");
	tc.server.port = strdup("1");
	tc.allow.v = calloc(2, sizeof(char *));
	tc.allow.v[0] = strdup("d1");
	tc.allow.v[1] = strdup("d2");
	tc.allow.n = 2;

	ck_assert_int_eq(parse("Server new.example:2\nAllow x\nAllow y\n"
			       "Name n\n"),
	    NP_OK);
	ck_assert_str_eq(tc.name, "n");
	ck_assert_str_eq(tc.keyfile, "/default/key");
	ck_assert_int_eq(tc.port, 22);
	ck_assert_str_eq(tc.server.host, "new.example");
	ck_assert_str_eq(tc.server.port, "2");
	ck_assert_uint_eq(tc.allow.n, 2);
	ck_assert_str_eq(tc.allow.v[0], "x");
	ck_assert_str_eq(tc.allow.v[1], "y");
}
END_TEST

START_TEST(test_defaults_kept_on_error)
{
	tc.name = strdup("default");
	tc.allow.v = calloc(1, sizeof(char *));
	tc.allow.v[0] = strdup("d1");
	tc.allow.n = 1;
	ck_assert_int_eq(parse("Server h:1\nAllow q\nName a\nPort 0\n"),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "t.conf:4: value 0 out of range 1..65535");
	/* obj is consistent; teardown frees it (ASan checks for leaks) */
	ck_assert_str_eq(tc.name, "a");
	ck_assert_uint_eq(tc.allow.n, 1);
	ck_assert_str_eq(tc.allow.v[0], "q");
}
END_TEST

START_TEST(test_case_insensitive)
{
	ck_assert_int_eq(parse("sErVeR h:1\nPORT 1\nverbose NO\n"), NP_OK);
	ck_assert_int_eq(tc.port, 1);
	ck_assert_int_eq(tc.verbose, 0);
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse("server h:1\nVERBOSE Yes\n"), NP_OK);
	ck_assert_int_eq(tc.verbose, 1);
}
END_TEST

START_TEST(test_empty_and_comment_only)
{
	ck_assert_int_eq(np_conf_parse(ttable, &tc, "", 0, "t.conf", errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "t.conf: missing required keyword 'Server'");
	ck_err("# nothing\n\n  # more\n",
	    "t.conf: missing required keyword 'Server'");
	ck_err("Port 22\n", "t.conf: missing required keyword 'Server'");
}
END_TEST

START_TEST(test_err_unknown)
{
	ck_err_srv("Port 1\n\nFoo bar\n", "t.conf:4: unknown keyword 'Foo'");
	ck_err_srv("Ports 1\n", "t.conf:2: unknown keyword 'Ports'");
	ck_err_srv("\"Port\" 1\n", "t.conf:2: unknown keyword '\"Port\"'");
	ck_err_srv("=1\n", "t.conf:2: unknown keyword ''");
	/* non-printable bytes are not echoed */
	ck_err_srv("F\x01\x7fo x\n", "t.conf:2: unknown keyword 'F??o'");
}
END_TEST

START_TEST(test_err_arity)
{
	ck_err_srv("Port\n", "t.conf:2: missing argument for 'Port'");
	ck_err_srv("Port   # c\n", "t.conf:2: missing argument for 'Port'");
	ck_err_srv("Port=\n", "t.conf:2: missing argument for 'Port'");
	ck_err_srv("Allow\n", "t.conf:2: missing argument for 'Allow'");
	ck_err_srv("Port 1 2\n", "t.conf:2: too many arguments for 'Port'");
	ck_err_srv("Name a b\n", "t.conf:2: too many arguments for 'Name'");
	ck_err_srv("Verbose yes no\n",
	    "t.conf:2: too many arguments for 'Verbose'");
	ck_err_srv("KeyFile a b\n",
	    "t.conf:2: too many arguments for 'KeyFile'");
	ck_err_srv("Port \"\"\n", "t.conf:2: empty argument for 'Port'");
	ck_err_srv("Allow a \"\" b\n", "t.conf:2: empty argument for 'Allow'");
	ck_err_srv("KeyFile \"\"\n", "t.conf:2: empty argument for 'KeyFile'");
}
END_TEST

START_TEST(test_err_twice)
{
	ck_err("Port 1\n# x\nServer a:1\nServer b:2\n",
	    "t.conf:4: 'Server' given twice (first at line 3)");
	ck_err_srv("Name a\nname b\n",
	    "t.conf:3: 'Name' given twice (first at line 2)");
	ck_err_srv("Verbose no\nVerbose no\n",
	    "t.conf:3: 'Verbose' given twice (first at line 2)");
	ck_err_srv("KeyFile /a\nKeyFile /a\n",
	    "t.conf:3: 'KeyFile' given twice (first at line 2)");
	ck_err_srv("Identity @a\nIdentity @a\n",
	    "t.conf:3: 'Identity' given twice (first at line 2)");
	ck_err_srv("Timeout 1\nTimeout 1\n",
	    "t.conf:3: 'Timeout' given twice (first at line 2)");
}
END_TEST

START_TEST(test_err_int)
{
	ck_err_srv("Port abc\n", "t.conf:2: bad integer 'abc' for 'Port'");
	ck_err_srv("Port 22x\n", "t.conf:2: bad integer '22x' for 'Port'");
	ck_err_srv("Port 0x16\n", "t.conf:2: bad integer '0x16' for 'Port'");
	ck_err_srv("Port +22\n", "t.conf:2: bad integer '+22' for 'Port'");
	ck_err_srv("Port -\n", "t.conf:2: bad integer '-' for 'Port'");
	ck_err_srv("Port 1.5\n", "t.conf:2: bad integer '1.5' for 'Port'");
	ck_err_srv("Port 99999\n",
	    "t.conf:2: value 99999 out of range 1..65535");
	ck_err_srv("Port 0\n", "t.conf:2: value 0 out of range 1..65535");
	ck_err_srv("Port -1\n", "t.conf:2: value -1 out of range 1..65535");
	ck_err_srv("Port 99999999999999999999999\n",
	    "t.conf:2: value 99999999999999999999999 out of range 1..65535");
	ck_err_srv("AnyInt 99999999999999999999999\n",
	    "t.conf:2: value 99999999999999999999999 out of range "
	    "-9223372036854775808..9223372036854775807");
	ck_assert_int_eq(parse_srv("Port 65535\nAnyInt -9223372036854775808\n"),
	    NP_OK);
	ck_assert_int_eq(tc.port, 65535);
	ck_assert_int_eq(tc.anyint, -9223372036854775807L - 1);
}
END_TEST

START_TEST(test_err_bool)
{
	ck_err_srv("Verbose maybe\n",
	    "t.conf:2: bad value 'maybe' for 'Verbose' (yes or no)");
	ck_err_srv("Verbose 1\n",
	    "t.conf:2: bad value '1' for 'Verbose' (yes or no)");
	ck_err_srv("Verbose true\n",
	    "t.conf:2: bad value 'true' for 'Verbose' (yes or no)");
	ck_err_srv("Verbose yess\n",
	    "t.conf:2: bad value 'yess' for 'Verbose' (yes or no)");
}
END_TEST

static long
dur(const char *v)
{
	char buf[256];

	np_conf_free(ttable, &tc);
	memset(&tc, 0, sizeof(tc));
	snprintf(buf, sizeof(buf), "AnyDuration %s\n", v);
	if (parse_srv(buf) != NP_OK) {
		return -1;
	}
	return tc.anydur;
}

START_TEST(test_duration)
{
	ck_assert_int_eq(dur("30"), 30);
	ck_assert_int_eq(dur("30s"), 30);
	ck_assert_int_eq(dur("5m"), 300);
	ck_assert_int_eq(dur("2h"), 7200);
	ck_assert_int_eq(dur("1d"), 86400);
	ck_assert_int_eq(dur("0"), 0);
	ck_assert_int_eq(dur("5x"), -1);
	ck_assert_int_eq(dur("s"), -1);
	ck_assert_int_eq(dur("5mm"), -1);
	ck_assert_int_eq(dur("-5"), -1);
	ck_assert_int_eq(dur("1.5h"), -1);
	ck_assert_int_eq(dur("5 m"), -1);
	ck_assert_int_eq(dur("99999999999999999999"), -1);
	ck_assert_int_eq(dur("999999999999999999d"), -1);
	ck_err_srv("Timeout 5x\n", "t.conf:2: bad duration '5x' for "
				   "'Timeout' (e.g. 30, 30s, 5m, 2h, 1d)");
	ck_err_srv("Timeout 2d\n", "t.conf:2: value 2d out of range 1..86400");
	ck_err_srv("Timeout 0\n", "t.conf:2: value 0 out of range 1..86400");
	ck_err_srv("AnyDuration 999999999999999999d\n",
	    "t.conf:2: value 999999999999999999d out of range "
	    "0..9223372036854775807");
}
END_TEST

START_TEST(test_err_hostport)
{
	ck_err("Server x\n", "t.conf:1: bad host:port 'x' for 'Server'");
	ck_err("Server :22\n", "t.conf:1: bad host:port ':22' for 'Server'");
	ck_err("Server h:0\n", "t.conf:1: bad host:port 'h:0' for 'Server'");
	ck_err("Server h:65536\n",
	    "t.conf:1: bad host:port 'h:65536' for 'Server'");
	ck_err("Server ::1:22\n",
	    "t.conf:1: bad host:port '::1:22' for 'Server'");
	ck_err("Server [::1]\n",
	    "t.conf:1: bad host:port '[::1]' for 'Server'");
}
END_TEST

START_TEST(test_hostport_multi)
{
	char text[512];
	size_t i, n;
	int r;

	memset(&tc, 0, sizeof(tc));
	ck_assert_int_eq(parse("Server a:1 [::1]:2 b.example:3\n"), NP_OK);
	ck_assert_uint_eq(np_hostport_count(&tc.server), 3);
	ck_assert_str_eq(tc.server.host, "a");
	ck_assert_str_eq(tc.server.port, "1");
	ck_assert_ptr_nonnull(tc.server.next);
	ck_assert_str_eq(tc.server.next->host, "::1");
	ck_assert_str_eq(tc.server.next->next->host, "b.example");
	ck_assert_str_eq(tc.server.next->next->port, "3");
	ck_assert_ptr_null(tc.server.next->next->next);
	np_conf_free(ttable, &tc);
	memset(&tc, 0, sizeof(tc));
	ck_assert_uint_eq(np_hostport_count(&tc.server), 0);

	/* A bad one anywhere refuses the line and leaves nothing behind. */
	ck_err("Server a:1 b:0\n", "t.conf:1: bad host:port 'b:0' for 'Server'");
	ck_assert_ptr_null(tc.server.host);
	ck_assert_ptr_null(tc.server.next);
	/* Still a keyword given once. */
	ck_assert_int_eq(parse("Server a:1\nServer b:2\n"), NP_ERR_CONF);
	ck_assert_ptr_nonnull(strstr(errbuf, "given twice"));
	np_conf_free(ttable, &tc);
	memset(&tc, 0, sizeof(tc));

	/* Bounded. */
	for (n = 0, i = 0; i <= NP_CONF_MULTI_MAX; i++) {
		r = snprintf(text + n, sizeof(text) - n, "%sh%zu:1",
		    i == 0 ? "Server " : " ", i);
		ck_assert_int_gt(r, 0);
		n += (size_t)r;
	}
	snprintf(text + n, sizeof(text) - n, "\n");
	ck_assert_int_eq(parse(text), NP_ERR_CONF);
	ck_assert_ptr_nonnull(strstr(errbuf, "at most 16 values"));
	np_conf_free(ttable, &tc);
	memset(&tc, 0, sizeof(tc));
}
END_TEST

START_TEST(test_hostport_parse)
{
	static const char *bad[] = { "", "h", "h:", ":22", "h:0", "h:65536",
		"h:100000", "h:+22", "h:-1", "h:22x", "h: 22", "h h:22",
		"::1:22", "[::1]22", "[::1]", "[::1]:", "[]:22", "[zz]:22",
		"[1.2.3.4]:22", "[::1:22", "h:2:2", "h/x:22", "h:0x16",
		"h:000000022", "-oProxyCommand=x:22", "-h:22", NULL };
	struct np_hostport hp;
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		hp.host = (char *)1;
		ck_assert_msg(np_hostport_parse(bad[i], &hp) == NP_ERR_INVALID,
		    "accepted '%s'", bad[i]);
		ck_assert_ptr_null(hp.host);
		ck_assert_ptr_null(hp.port);
	}
	ck_assert_int_eq(np_hostport_parse(NULL, &hp), NP_ERR_INVALID);
	ck_assert_int_eq(np_hostport_parse("h:1", NULL), NP_ERR_INVALID);

	ck_assert_int_eq(np_hostport_parse("example.com:443", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "example.com");
	ck_assert_str_eq(hp.port, "443");
	np_hostport_free(&hp);
	ck_assert_ptr_null(hp.host);
	np_hostport_free(&hp); /* twice is fine */
	np_hostport_free(NULL);

	ck_assert_int_eq(np_hostport_parse("10.0.0.1:00022", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "10.0.0.1");
	ck_assert_str_eq(hp.port, "22");
	np_hostport_free(&hp);

	ck_assert_int_eq(np_hostport_parse("[fe80::1:2]:65535", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "fe80::1:2");
	ck_assert_str_eq(hp.port, "65535");
	np_hostport_free(&hp);

	ck_assert_int_eq(np_hostport_parse("my_host-1:1", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "my_host-1");
	ck_assert_str_eq(hp.port, "1");
	np_hostport_free(&hp);
}
END_TEST

START_TEST(test_err_ident)
{
	const char *pfx = "t.conf:2: bad identity ";

	ck_assert_int_eq(parse_srv("Identity alice\n"), NP_ERR_CONF);
	ck_assert_int_eq(strncmp(errbuf, pfx, strlen(pfx)), 0);
	ck_assert_ptr_nonnull(strstr(errbuf, "'alice' for 'Identity'"));
	ck_assert_int_eq(parse_srv("Identity @Alice\n"), NP_ERR_CONF);
	ck_assert_int_eq(strncmp(errbuf, pfx, strlen(pfx)), 0);
	ck_assert_int_eq(parse_srv("Identity @-a\n"), NP_ERR_CONF);
	ck_assert_int_eq(parse_srv("Identity @\n"), NP_ERR_CONF);
	ck_assert_int_eq(parse_srv("Identity "
				   "@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "aaaaaaaaaaaaaa\n"),
	    NP_ERR_CONF);
	ck_assert_int_eq(parse_srv("Identity "
				   "@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "aaaaaaaaaaaaa\n"),
	    NP_OK);
	ck_assert_uint_eq(strlen(tc.ident), 56);
}
END_TEST

START_TEST(test_err_quotes)
{
	ck_err_srv("Name \"abc\n", "t.conf:2: unterminated quote");
	ck_err_srv("Allow a \"b c\n", "t.conf:2: unterminated quote");
	ck_err_srv("Name \"a\"b\n",
	    "t.conf:2: unexpected character after closing quote");
	ck_err_srv("Name a\"b\"\n",
	    "t.conf:2: unexpected quote inside an argument");
	/* a newline ends the line even inside a quote */
	ck_err_srv("Name \"a\nb\"\n", "t.conf:2: unterminated quote");
}
END_TEST

START_TEST(test_err_nul)
{
	static const char text[] = "Server h:1\nName a\0b\nPort 1\n";

	ck_assert_int_eq(np_conf_parse(ttable, &tc, text, sizeof(text) - 1,
			     "t.conf", errbuf, sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "t.conf:2: NUL byte in line");
	/* NUL in a comment line is refused as well */
	ck_assert_int_eq(np_conf_parse(ttable, &tc, "#\0\n", 3, "t.conf",
			     errbuf, sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "t.conf:1: NUL byte in line");
}
END_TEST

START_TEST(test_line_length)
{
	size_t n = 64 + NP_CONF_MAX_LINE + 2;
	char *text = malloc(n);
	size_t pre = strlen("Server h:1\nName ");

	ck_assert_ptr_nonnull(text);
	/* "Name " + value == exactly NP_CONF_MAX_LINE bytes: fine */
	memcpy(text, "Server h:1\nName ", pre);
	memset(text + pre, 'a', NP_CONF_MAX_LINE - 5);
	memcpy(text + pre + NP_CONF_MAX_LINE - 5, "\n", 2);
	ck_assert_int_eq(parse(text), NP_OK);
	ck_assert_uint_eq(strlen(tc.name), NP_CONF_MAX_LINE - 5);
	np_conf_free(ttable, &tc);
	/* one more byte: refused */
	memset(text + pre, 'a', NP_CONF_MAX_LINE - 4);
	memcpy(text + pre + NP_CONF_MAX_LINE - 4, "\n", 2);
	ck_err(text, "t.conf:2: line too long (more than 4096 bytes)");
	/* a long comment line is also refused */
	memset(text, '#', NP_CONF_MAX_LINE + 1);
	text[NP_CONF_MAX_LINE + 1] = '\0';
	ck_err(text, "t.conf:1: line too long (more than 4096 bytes)");
	free(text);
}
END_TEST

START_TEST(test_file_length)
{
	size_t n = NP_CONF_MAX_FILE + 1;
	char *text = malloc(n);

	ck_assert_ptr_nonnull(text);
	memset(text, '\n', n);
	memcpy(text, "Server h:1\n", 11);
	ck_assert_int_eq(np_conf_parse(ttable, &tc, text, n, "t.conf", errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf,
	    "t.conf: file too large (more than 1048576 bytes)");
	ck_assert_int_eq(np_conf_parse(ttable, &tc, text, n - 1, "t.conf",
			     errbuf, sizeof(errbuf)),
	    NP_OK);
	free(text);
}
END_TEST

START_TEST(test_many_list_items)
{
	size_t i, n = 20000;
	char *text = malloc(n * 24 + 32), *p = text;

	ck_assert_ptr_nonnull(text);
	p += sprintf(p, "Server h:1\n");
	for (i = 0; i < n; i++) {
		p += sprintf(p, "Allow %zu %zu\n", i, i + 1);
	}
	ck_assert_int_eq(parse(text), NP_OK);
	ck_assert_uint_eq(tc.allow.n, 2 * n);
	ck_assert_str_eq(tc.allow.v[2 * n - 1], "20000");
	free(text);
}
END_TEST

START_TEST(test_path)
{
	setenv("HOME", "/home/tester", 1);
	ck_assert_int_eq(parse_srv("KeyFile ~/.config/np/key\n"), NP_OK);
	ck_assert_str_eq(tc.keyfile, "/home/tester/.config/np/key");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse_srv("KeyFile ~/\n"), NP_OK);
	ck_assert_str_eq(tc.keyfile, "/home/tester/");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse_srv("KeyFile rel/~/x\n"), NP_OK);
	ck_assert_str_eq(tc.keyfile, "rel/~/x");
	np_conf_free(ttable, &tc);
	ck_assert_int_eq(parse_srv("KeyFile \"/a b/c\"\n"), NP_OK);
	ck_assert_str_eq(tc.keyfile, "/a b/c");
	np_conf_free(ttable, &tc);
	ck_err_srv("KeyFile ~bob/x\n", "t.conf:2: cannot expand '~bob/x' for "
				       "'KeyFile': only '~/' is supported");
	ck_err_srv("KeyFile ~\n", "t.conf:2: cannot expand '~' for "
				  "'KeyFile': only '~/' is supported");
	unsetenv("HOME");
	ck_err_srv("KeyFile ~/k\n", "t.conf:2: cannot expand '~/k' for "
				    "'KeyFile': HOME is not set");
	setenv("HOME", "", 1);
	ck_err_srv("KeyFile ~/k\n", "t.conf:2: cannot expand '~/k' for "
				    "'KeyFile': HOME is not set");
	/* absolute paths never need HOME */
	ck_assert_int_eq(parse_srv("KeyFile /k\n"), NP_OK);
	ck_assert_str_eq(tc.keyfile, "/k");
}
END_TEST

START_TEST(test_errbuf_edge)
{
	char small[12];
	static const struct np_conf_kw badtable[] = {
		{ "X", (enum np_conf_type)99, 0, 0, 0, 0, "bad" },
		{ NULL, 0, 0, 0, 0, 0, NULL },
	};
	long dummy = 0;
	char ones[100], want[256];

	/* err may be NULL */
	ck_assert_int_eq(np_conf_parse(ttable, &tc, "Foo 1\n", 6, "t.conf",
			     NULL, 0),
	    NP_ERR_CONF);
	/* small err buffers are truncated, NUL-terminated */
	memset(small, 'x', sizeof(small));
	ck_assert_int_eq(np_conf_parse(ttable, &tc, "Foo 1\n", 6, "t.conf",
			     small, sizeof(small)),
	    NP_ERR_CONF);
	ck_assert_str_eq(small, "t.conf:1: u");
	/* NULL fname */
	ck_assert_int_eq(np_conf_parse(ttable, &tc, "Foo 1\n", 6, NULL,
			     errbuf, sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "(config):1: unknown keyword 'Foo'");
	/* a bad table is a bug, not a config error */
	ck_assert_int_eq(np_conf_parse(badtable, &dummy, "X 1\n", 4, "t",
			     errbuf, sizeof(errbuf)),
	    NP_ERR_INTERNAL);
	ck_assert_int_eq(np_conf_parse(NULL, &dummy, "X 1\n", 4, "t", errbuf,
			     sizeof(errbuf)),
	    NP_ERR_INTERNAL);
	/* long values are cut in messages */
	memset(ones, '1', sizeof(ones) - 1);
	ones[sizeof(ones) - 1] = '\0';
	snprintf(want, sizeof(want), "Port %s\n", ones);
	ck_assert_int_eq(parse_srv(want), NP_ERR_CONF);
	snprintf(want, sizeof(want), "t.conf:2: value %.64s... out of range "
	    "1..65535", ones);
	ck_assert_str_eq(errbuf, want);
}
END_TEST

START_TEST(test_free_edge)
{
	np_conf_free(NULL, &tc);
	np_conf_free(ttable, NULL);
	np_strlist_free(NULL);
	tc.name = strdup("x");
	np_conf_free(ttable, &tc);
	ck_assert_ptr_null(tc.name);
	np_conf_free(ttable, &tc); /* twice is fine */
}
END_TEST

static char *
write_tmp(const char *text, size_t len)
{
	char *path = strdup("/tmp/np_test_conf.XXXXXX");
	int fd;

	ck_assert_ptr_nonnull(path);
	ck_assert_int_ge(fd = mkstemp(path), 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

START_TEST(test_load)
{
	char *path = write_tmp("Server h:1\nPort 9\n", 18), want[256];

	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_OK);
	ck_assert_int_eq(tc.port, 9);
	np_conf_free(ttable, &tc);
	unlink(path);
	free(path);

	path = write_tmp("Server h:1\nBogus 9\n", 19);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	snprintf(want, sizeof(want), "%s:2: unknown keyword 'Bogus'", path);
	ck_assert_str_eq(errbuf, want);
	unlink(path);

	/* gone now */
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_NOT_FOUND);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(errbuf, want);
	free(path);
}
END_TEST

/* A file that group or other can write, or that a stranger owns, is
 * refused, as ssh refuses such a config. */
START_TEST(test_load_unsafe_mode)
{
	char *path = write_tmp("Server h:1\n", 11), want[512];

	ck_assert_int_eq(chmod(path, 0664), 0);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	snprintf(want, sizeof(want), "%s: bad owner or permissions", path);
	ck_assert_msg(strncmp(errbuf, want, strlen(want)) == 0, "%s", errbuf);
	ck_assert_ptr_null(tc.server.host);
	ck_assert_int_eq(chmod(path, 0646), 0);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	if (geteuid() == 0) {
		ck_assert_int_eq(chmod(path, 0644), 0);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
				     sizeof(errbuf)),
		    NP_ERR_CONF);
		ck_assert_int_eq(chown(path, 0, 0), 0);
	}
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_OK);
	np_conf_free(ttable, &tc);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_load_not_regular)
{
	char dir[] = "/tmp/np_test_confd.XXXXXX", fifo[64], want[128];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(np_conf_load(ttable, &tc, dir, errbuf, sizeof(errbuf)),
	    NP_ERR_CONF);
	snprintf(want, sizeof(want), "%s: not a regular file", dir);
	ck_assert_str_eq(errbuf, want);

	/* a FIFO with no writer must not hang */
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(np_conf_load(ttable, &tc, fifo, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	snprintf(want, sizeof(want), "%s: not a regular file", fifo);
	ck_assert_str_eq(errbuf, want);
	unlink(fifo);
	rmdir(dir);

	ck_assert_int_eq(np_conf_load(ttable, &tc, "/dev/null", errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_str_eq(errbuf, "/dev/null: not a regular file");
}
END_TEST

START_TEST(test_load_too_large)
{
	char *path = write_tmp("Server h:1\n", 11), want[256];
	int fd;

	ck_assert_int_ge(fd = open(path, O_WRONLY), 0);
	ck_assert_int_eq(ftruncate(fd, NP_CONF_MAX_FILE + 1), 0);
	close(fd);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_CONF);
	snprintf(want, sizeof(want),
	    "%s: file too large (more than 1048576 bytes)", path);
	ck_assert_str_eq(errbuf, want);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_load_unreadable)
{
	char *path = write_tmp("Server h:1\n", 11), want[512], sub[256];

	/* a file used as a directory: an open error other than ENOENT */
	snprintf(sub, sizeof(sub), "%s/x", path);
	ck_assert_int_eq(np_conf_load(ttable, &tc, sub, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_SYSTEM);
	snprintf(want, sizeof(want), "%s: %s", sub, strerror(ENOTDIR));
	ck_assert_str_eq(errbuf, want);
	if (geteuid() == 0) {
		/* root reads anything: nothing to test */
		unlink(path);
		free(path);
		return;
	}
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_int_eq(np_conf_load(ttable, &tc, path, errbuf,
			     sizeof(errbuf)),
	    NP_ERR_SYSTEM);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(EACCES));
	ck_assert_str_eq(errbuf, want);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_lines_grouped)
{
	ck_assert_int_eq(parse_srv("Rule @a users=x,y\n"
			       "# between\n"
			       "rule=@b \"users=*\"\n"
			       "Rule   one\n"
			       "Rule @c a b c d # comment\n"),
	    NP_OK);
	ck_assert_uint_eq(tc.rules.n, 4);
	ck_assert_uint_eq(tc.rules.v[0].n, 2);
	ck_assert_str_eq(tc.rules.v[0].v[0], "@a");
	ck_assert_str_eq(tc.rules.v[0].v[1], "users=x,y");
	ck_assert_uint_eq(tc.rules.v[1].n, 2);
	ck_assert_str_eq(tc.rules.v[1].v[0], "@b");
	ck_assert_str_eq(tc.rules.v[1].v[1], "users=*");
	ck_assert_uint_eq(tc.rules.v[2].n, 1);
	ck_assert_str_eq(tc.rules.v[2].v[0], "one");
	ck_assert_uint_eq(tc.rules.v[3].n, 5);
	ck_assert_str_eq(tc.rules.v[3].v[4], "d");
	/* No occurrence: stays empty. */
	np_conf_free(ttable, &tc);
	memset(&tc, 0, sizeof(tc));
	ck_assert_int_eq(parse_srv("Name n\n"), NP_OK);
	ck_assert_uint_eq(tc.rules.n, 0);
	ck_assert_ptr_null(tc.rules.v);
}
END_TEST

START_TEST(test_lines_defaults_and_errors)
{
	tc.rules.v = calloc(1, sizeof(*tc.rules.v));
	tc.rules.n = 1;
	tc.rules.v[0].v = calloc(1, sizeof(char *));
	tc.rules.v[0].v[0] = strdup("default");
	tc.rules.v[0].n = 1;
	ck_assert_int_eq(parse_srv("Rule new\n"), NP_OK);
	ck_assert_uint_eq(tc.rules.n, 1);
	ck_assert_str_eq(tc.rules.v[0].v[0], "new");
	np_conf_free(ttable, &tc);
	ck_assert_uint_eq(tc.rules.n, 0);
	ck_assert_ptr_null(tc.rules.v);

	ck_err_srv("Rule\n", "t.conf:2: missing argument for 'Rule'");
	np_conf_free(ttable, &tc);
	ck_err_srv("Rule a \"\"\n",
	    "t.conf:2: empty argument for 'Rule'");
	np_conf_free(ttable, &tc);
	/* An error after some lines leaves owned values behind only. */
	ck_err_srv("Rule a b\nRule c\nRule \"x\n",
	    "t.conf:4: unterminated quote");
	ck_assert_uint_eq(tc.rules.n, 2);
	np_strlines_free(NULL);
}
END_TEST

START_TEST(test_lines_cap)
{
	size_t n = NP_CONF_LINES_MAX + 1, i, len = 0;
	char *text = malloc(n * 7 + 64);

	ck_assert_ptr_nonnull(text);
	len += (size_t)sprintf(text, "Server s.example:1\n");
	for (i = 0; i < n; i++) {
		memcpy(text + len, "Rule x\n", 7);
		len += 7;
	}
	ck_assert_int_eq(np_conf_parse(ttable, &tc, text, len, "t.conf",
			     errbuf, sizeof(errbuf)),
	    NP_ERR_CONF);
	ck_assert_ptr_nonnull(strstr(errbuf, "too many 'Rule' lines"));
	ck_assert_uint_eq(tc.rules.n, NP_CONF_LINES_MAX);
	free(text);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc_good = tcase_create("good");
	TCase *tc_bad = tcase_create("errors");
	TCase *tc_hp = tcase_create("hostport");
	TCase *tc_load = tcase_create("load");

	tcase_add_checked_fixture(tc_good, setup, teardown);
	tcase_add_test(tc_good, test_good_file);
	tcase_add_test(tc_good, test_forms);
	tcase_add_test(tc_good, test_defaults_replaced);
	tcase_add_test(tc_good, test_defaults_kept_on_error);
	tcase_add_test(tc_good, test_case_insensitive);
	tcase_add_test(tc_good, test_duration);
	tcase_add_test(tc_good, test_path);
	tcase_add_test(tc_good, test_many_list_items);
	tcase_add_test(tc_good, test_free_edge);
	tcase_add_test(tc_good, test_lines_grouped);
	tcase_add_test(tc_good, test_lines_defaults_and_errors);
	tcase_add_test(tc_good, test_lines_cap);
	suite_add_tcase(s, tc_good);

	tcase_add_checked_fixture(tc_bad, setup, teardown);
	tcase_add_test(tc_bad, test_empty_and_comment_only);
	tcase_add_test(tc_bad, test_err_unknown);
	tcase_add_test(tc_bad, test_err_arity);
	tcase_add_test(tc_bad, test_err_twice);
	tcase_add_test(tc_bad, test_err_int);
	tcase_add_test(tc_bad, test_err_bool);
	tcase_add_test(tc_bad, test_err_hostport);
	tcase_add_test(tc_bad, test_err_ident);
	tcase_add_test(tc_bad, test_err_quotes);
	tcase_add_test(tc_bad, test_err_nul);
	tcase_add_test(tc_bad, test_line_length);
	tcase_add_test(tc_bad, test_file_length);
	tcase_add_test(tc_bad, test_errbuf_edge);
	suite_add_tcase(s, tc_bad);

	tcase_add_test(tc_hp, test_hostport_parse);
	tcase_add_test(tc_hp, test_hostport_multi);
	suite_add_tcase(s, tc_hp);

	tcase_add_checked_fixture(tc_load, setup, teardown);
	tcase_add_test(tc_load, test_load);
	tcase_add_test(tc_load, test_load_unsafe_mode);
	tcase_add_test(tc_load, test_load_not_regular);
	tcase_add_test(tc_load, test_load_too_large);
	tcase_add_test(tc_load, test_load_unreadable);
	suite_add_tcase(s, tc_load);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
