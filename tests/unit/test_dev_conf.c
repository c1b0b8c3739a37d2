/*
 * np-deviced configuration: defaults, Allow lines (fail closed),
 * PermitOpen (its default, lists, any, none, fail closed), and the errors
 * a bad deviced.conf must give.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "err.h"
#include "log.h"

#define BASE                                                               \
	"IdentityFile /etc/noports/device.key\n"                           \
	"Server cp.example:6464\n"                                         \
	"ServerFingerprint SHA256:"                                        \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n"

static struct dev_conf c;
static char err[1024];

static void
setup(void)
{
	dev_conf_init(&c);
	err[0] = '\0';
}

static void
teardown(void)
{
	dev_conf_free(&c);
}

static int
parse(const char *extra)
{
	char text[8192];

	snprintf(text, sizeof(text), "%s%s", BASE, extra);
	return dev_conf_parse(&c, text, strlen(text), "d.conf", err,
	    sizeof(err));
}

/* Parse a bad file: NP_ERR_CONF and a message containing want. */
static void
bad(const char *extra, const char *want)
{
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse(extra), NP_ERR_CONF);
	if (strstr(err, want) == NULL) {
		ck_abort_msg("for [%s]: error [%s] lacks [%s]", extra, err,
		    want);
	}
}

START_TEST(test_defaults)
{
	ck_assert_int_eq(parse(""), NP_OK);
	ck_assert_uint_eq(c.device_name.n, 1);
	ck_assert_str_eq(c.device_name.v[0], "default");
	ck_assert_str_eq(c.sshd.host, "127.0.0.1");
	ck_assert_str_eq(c.sshd.port, "22");
	ck_assert_int_eq(c.sshd_port, 22);
	ck_assert_int_eq(c.key_ttl, 30);
	ck_assert_int_eq(c.keymode, DEV_KEYMODE_SPOOL);
	ck_assert_str_eq(c.spool_dir, "/var/lib/noports/spool");
	ck_assert_str_eq(c.state_dir, "/var/lib/noports/device");
	ck_assert_str_eq(c.known_identities,
	    "/etc/noports/known_identities");
	ck_assert_int_eq(c.max_sessions, 64);
	ck_assert_int_eq(c.grace_time, 10);
	ck_assert_int_eq(c.level, NP_LOG_INFO);
	ck_assert_uint_eq(c.rv_host.n, 0);
	ck_assert_uint_eq(c.host_key.n, 0);
	ck_assert_int_eq(c.permit_plain_tunnel, 0);
	/* Fail closed: no Allow line, nobody. */
	ck_assert_uint_eq(c.nallow, 0);
	ck_assert_ptr_null(dev_conf_allow(&c, "@alice"));
	ck_assert_ptr_null(dev_conf_allow(&c, NULL));
	ck_assert_int_eq(dev_conf_serves(&c, "default"), 1);
	ck_assert_int_eq(dev_conf_serves(&c, "other"), 0);
}
END_TEST

START_TEST(test_full)
{
	const struct dev_allow *a;

	ck_assert_int_eq(parse("Identity @dev\n"
			       "DeviceName web db\n"
			       "DeviceName default\n"
			       "Allow @alice users=alice,deploy\n"
			       "Allow bob users=*\n"
			       "Allow @carol \"users=root\"\n"
			       "Sshd [::1]:2222\n"
			       "HostKey /k/a.pub /k/b.pub\n"
			       "KeyTTL 1m\n"
			       "KeyMode authorized_keys\n"
			       "SpoolDir /s\nStateDir /st\n"
			       "KnownIdentities /k/known\n"
			       "MaxSessions 3\n"
			       "RendezvousHost sr.example 10.0.0.1\n"
			       "GraceTime 0\nKeepAlive 0\nConnectTimeout 5\n"
			       "LogLevel debug\n"),
	    NP_OK);
	ck_assert_uint_eq(c.device_name.n, 3);
	ck_assert_int_eq(dev_conf_serves(&c, "db"), 1);
	ck_assert_int_eq(dev_conf_serves(&c, "default"), 1);
	ck_assert_uint_eq(c.nallow, 3);
	a = dev_conf_allow(&c, "@alice");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->any_user, 0);
	ck_assert_uint_eq(a->nusers, 2);
	ck_assert_str_eq(a->users[0], "alice");
	ck_assert_str_eq(a->users[1], "deploy");
	a = dev_conf_allow(&c, "@bob");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->any_user, 1);
	a = dev_conf_allow(&c, "@carol");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->users[0], "root");
	ck_assert_ptr_null(dev_conf_allow(&c, "bob"));
	ck_assert_ptr_null(dev_conf_allow(&c, "@dave"));
	ck_assert_str_eq(c.sshd.host, "::1");
	ck_assert_int_eq(c.sshd_port, 2222);
	ck_assert_uint_eq(c.host_key.n, 2);
	ck_assert_int_eq(c.key_ttl, 60);
	ck_assert_int_eq(c.keymode, DEV_KEYMODE_AUTHKEYS);
	ck_assert_str_eq(c.spool_dir, "/s");
	ck_assert_str_eq(c.state_dir, "/st");
	ck_assert_str_eq(c.known_identities, "/k/known");
	ck_assert_int_eq(c.max_sessions, 3);
	ck_assert_uint_eq(c.rv_host.n, 2);
	ck_assert_int_eq(c.level, NP_LOG_DEBUG);
	ck_assert_int_eq(c.connect_timeout, 5);
}
END_TEST

START_TEST(test_allow_errors)
{
	bad("Allow @alice\n", "d.conf: Allow line 1: want 'Allow @ident "
	    "users=");
	bad("Allow @alice users=a extra\n", "Allow line 1: want");
	bad("Allow @alice alice\n", "Allow line 1: want");
	bad("Allow users=alice @alice\n", "Allow line 1: want");
	bad("Allow @Alice users=a\n", "bad identity '@Alice'");
	bad("Allow @a users=a\nAllow @b\n", "Allow line 2: want");
	bad("Allow @alice users=\n", "bad user name ''");
	bad("Allow @alice users=a,,b\n", "bad user name ''");
	bad("Allow @alice users=a,\n", "bad user name ''");
	bad("Allow @alice users=Root\n", "bad user name 'Root'");
	bad("Allow @alice users=a;id\n", "bad user name 'a;id'");
	bad("Allow @alice users=a\nAllow alice users=b\n",
	    "Allow line 2: @alice has an Allow line already");
	bad("Allow\n", "missing argument for 'Allow'");
}
END_TEST

START_TEST(test_allow_many_users)
{
	char line[8192];
	size_t i, o;

	o = (size_t)snprintf(line, sizeof(line), "Allow @a users=u0");
	for (i = 1; i < DEV_USERS_MAX; i++) {
		o += (size_t)snprintf(line + o, sizeof(line) - o, ",u%zu", i);
	}
	snprintf(line + o, sizeof(line) - o, "\n");
	ck_assert_int_eq(parse(line), NP_OK);
	ck_assert_uint_eq(dev_conf_allow(&c, "@a")->nusers, DEV_USERS_MAX);
	snprintf(line + o, sizeof(line) - o, ",x\n");
	bad(line, "more than 256 users");
}
END_TEST

START_TEST(test_other_errors)
{
	bad("KeyTTL 4\n", "out of range 5..3600");
	bad("KeyTTL 3601\n", "out of range 5..3600");
	bad("KeyTTL soon\n", "bad duration");
	bad("KeyMode file\n", "bad KeyMode 'file'");
	bad("DeviceName Web\n", "bad DeviceName 'Web'");
	bad("DeviceName -x\n", "bad DeviceName '-x'");
	bad("DeviceName a.b\n", "bad DeviceName 'a.b'");
	bad("DeviceName aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	    "bad DeviceName");
	bad("DeviceName a a\n", "DeviceName 'a' given twice");
	bad("Sshd 127.0.0.1\n", "bad host:port");
	bad("MaxSessions 0\n", "out of range");
	bad("LogLevel loud\n", "bad LogLevel 'loud'");
	bad("SpoolDir spool\n", "must be absolute");
	bad("StateDir ./st\n", "must be absolute");
	bad("ConnectTimeout 0\n", "out of range");
	bad("Unknown x\n", "unknown keyword 'Unknown'");
	bad("KeyTTL 10\nKeyTTL 20\n", "given twice");

	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(dev_conf_parse(&c, "Server a:1\n", 11, "d.conf", err,
			     sizeof(err)),
	    NP_ERR_CONF);
	ck_assert_ptr_nonnull(strstr(err, "IdentityFile"));
	dev_conf_free(&c);
	dev_conf_init(&c);
	{
		const char *t = "IdentityFile /k\nServer a:1\n"
				"ServerFingerprint SHA256:short\n";

		ck_assert_int_eq(dev_conf_parse(&c, t, strlen(t), "d.conf",
				     err, sizeof(err)),
		    NP_ERR_CONF);
		ck_assert_ptr_nonnull(strstr(err, "ServerFingerprint"));
	}
}
END_TEST

/* The users np-deviced sweeps the authorized_keys of from the start:
 * every user named on an Allow line, once; users=* names none. */
START_TEST(test_users)
{
	const char *u[4];

	ck_assert_uint_eq(dev_conf_users(&c, u, 4), 0);
	ck_assert_int_eq(parse("Allow @alice users=alice,deploy\n"
			       "Allow @any users=*\n"
			       "Allow @ci users=deploy,ci,alice\n"),
	    NP_OK);
	ck_assert_uint_eq(dev_conf_users(&c, u, 4), 3);
	ck_assert_str_eq(u[0], "alice");
	ck_assert_str_eq(u[1], "deploy");
	ck_assert_str_eq(u[2], "ci");
	ck_assert_uint_eq(dev_conf_users(&c, u, 2), 2);
	ck_assert_str_eq(u[1], "deploy");
	ck_assert_uint_eq(dev_conf_users(&c, u, 0), 0);
}
END_TEST

START_TEST(test_devname)
{
	ck_assert_int_eq(dev_devname_valid("default"), 1);
	ck_assert_int_eq(dev_devname_valid("a_b-9"), 1);
	ck_assert_int_eq(dev_devname_valid("_x"), 1);
	ck_assert_int_eq(dev_devname_valid(""), 0);
	ck_assert_int_eq(dev_devname_valid(NULL), 0);
	ck_assert_int_eq(dev_devname_valid("-a"), 0);
	ck_assert_int_eq(dev_devname_valid("a.b"), 0);
	ck_assert_int_eq(dev_devname_valid("A"), 0);
	ck_assert_int_eq(dev_devname_valid("a b"), 0);
	ck_assert_int_eq(
	    dev_devname_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1);
	ck_assert_int_eq(
	    dev_devname_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0);
}
END_TEST

/* ---- PermitOpen ---- */

START_TEST(test_permit_default)
{
	/* Sshd 127.0.0.1:22 by default: it, and localhost with its port. */
	ck_assert_int_eq(parse(""), NP_OK);
	ck_assert_int_eq(c.permit_any, 0);
	ck_assert_uint_eq(c.npermit, 2);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 22), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 22), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "LOCALHOST", 22), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 23), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 2222), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 0), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "::1", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.2", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost.", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "", 22), 0);

	/* A loopback IPv6 Sshd: the same with its port. */
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse("Sshd [::1]:2222\n"), NP_OK);
	ck_assert_uint_eq(c.npermit, 2);
	ck_assert_int_eq(dev_conf_permits(&c, "::1", 2222), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 2222), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "::1", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "[::1]", 2222), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 2222), 0);

	/* Any other Sshd: that address alone, no localhost. */
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse("Sshd 10.0.0.5:22\n"), NP_OK);
	ck_assert_uint_eq(c.npermit, 1);
	ck_assert_int_eq(dev_conf_permits(&c, "10.0.0.5", 22), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 22), 0);
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse("Sshd Ssh.Internal:2200\n"), NP_OK);
	ck_assert_uint_eq(c.npermit, 1);
	ck_assert_int_eq(dev_conf_permits(&c, "ssh.internal", 2200), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 2200), 0);
}
END_TEST

START_TEST(test_permit_lists)
{
	/* Several words a line, several lines: one list. */
	ck_assert_int_eq(parse("PermitOpen db.internal:5432 [::1]:8080 "
			       "Web.Example:*\n"
			       "PermitOpen 10.0.0.1:80\n"
			       "PermitOpen [fe80::1]:*\n"),
	    NP_OK);
	ck_assert_int_eq(c.permit_any, 0);
	ck_assert_uint_eq(c.npermit, 5);
	ck_assert_int_eq(dev_conf_permits(&c, "db.internal", 5432), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "DB.INTERNAL", 5432), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "db.internal", 5433), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "db", 5432), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "db.internal.", 5432), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "::1", 8080), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "::1", 80), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "[::1]", 8080), 0);
	/* HOST:*: every port of that host, no other host. */
	ck_assert_int_eq(dev_conf_permits(&c, "web.example", 1), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "web.example", 65535), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "WEB.example", 443), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "www.web.example", 443), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "web.example.org", 443), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "10.0.0.1", 80), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "10.0.0.1", 443), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "FE80::1", 7), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "fe80::2", 7), 0);
	/* The default (Sshd's address) is gone. */
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 22), 0);

	/* any: everything; none: nothing, not even the default. */
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse("PermitOpen any\n"), NP_OK);
	ck_assert_int_eq(c.permit_any, 1);
	ck_assert_int_eq(dev_conf_permits(&c, "example.com", 443), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 22), 1);
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse("PermitOpen none\n"), NP_OK);
	ck_assert_int_eq(c.permit_any, 0);
	ck_assert_uint_eq(c.npermit, 0);
	ck_assert_int_eq(dev_conf_permits(&c, "127.0.0.1", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "localhost", 22), 0);
	ck_assert_int_eq(dev_conf_permits(&c, "example.com", 443), 0);
}
END_TEST

/* The most entries there may be: DEV_PERMIT_MAX, 16 a line. */
static void
permit_many(char *text, size_t len, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		o += (size_t)snprintf(text + o, len - o, "%sh%zu:%zu%s",
		    i % 16 == 0 ? "PermitOpen " : "", i, i + 1,
		    i % 16 == 15 || i + 1 == n ? "\n" : " ");
		ck_assert_uint_lt(o, len);
	}
}

START_TEST(test_permit_many)
{
	char text[8000];

	permit_many(text, sizeof(text), DEV_PERMIT_MAX);
	ck_assert_int_eq(parse(text), NP_OK);
	ck_assert_uint_eq(c.npermit, DEV_PERMIT_MAX);
	ck_assert_int_eq(dev_conf_permits(&c, "h0", 1), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "h255", 256), 1);
	ck_assert_int_eq(dev_conf_permits(&c, "h255", 255), 0);
	permit_many(text, sizeof(text), DEV_PERMIT_MAX + 1);
	bad(text, "bad PermitOpen entry 'h256:257'");
	ck_assert_ptr_nonnull(strstr(err, "at most 256"));
}
END_TEST

START_TEST(test_permit_errors)
{
	static const char *const words[] = {
		"db", "db:", ":80", "db:0", "db:70000", "db:65536",
		"db:-1", "db:8O", "db:80x", "db:080000", "db:**",
		"db:*x", "db:*:*", "*:80", "*:*", "[::1:80", "[::1]",
		"[::1]80", "[::1]:", "[::1]:0", "[zz]:80", "[]:80",
		"::1:80", "-x:80", "a/b:80", "a;b:80", "a@b:80", "ANY",
		"None", "localhost", "*",
	};
	char line[512], want[512];
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		snprintf(line, sizeof(line), "PermitOpen %s\n", words[i]);
		snprintf(want, sizeof(want), "d.conf: bad PermitOpen entry "
		    "'%s' (HOST:PORT", words[i]);
		bad(line, want);
	}
	/* The bad one is named, not the first. */
	bad("PermitOpen a:1 b:2\nPermitOpen c:0 d:4\n",
	    "bad PermitOpen entry 'c:0'");
	/* The longest host name (253), then one longer. */
	memcpy(line, "PermitOpen ", 11);
	memset(line + 11, 'a', 253);
	memcpy(line + 11 + 253, ":*\n", 4);
	dev_conf_free(&c);
	dev_conf_init(&c);
	ck_assert_int_eq(parse(line), NP_OK);
	ck_assert_uint_eq(c.npermit, 1);
	ck_assert_uint_eq(strlen(c.permit[0].host), 253);
	ck_assert_int_eq(dev_conf_permits(&c, c.permit[0].host, 9), 1);
	memset(line + 11, 'a', 254);
	memcpy(line + 11 + 254, ":80\n", 5);
	bad(line, "bad PermitOpen entry 'aaaa");
	/* any and none stand alone, also across lines. */
	bad("PermitOpen none db:1\n", "d.conf: PermitOpen none must stand "
	    "alone");
	bad("PermitOpen db:1 none\n", "PermitOpen none must stand alone");
	bad("PermitOpen any db:1\n", "PermitOpen any must stand alone");
	bad("PermitOpen none any\n", "must stand alone");
	bad("PermitOpen none none\n", "PermitOpen none must stand alone");
	bad("PermitOpen none\nPermitOpen db:1\n",
	    "PermitOpen none must stand alone");
	bad("PermitOpen db:1\nPermitOpen any\n",
	    "PermitOpen any must stand alone");
	bad("PermitOpen\n", "missing argument for 'PermitOpen'");
}
END_TEST

START_TEST(test_load_missing)
{
	struct dev_conf l;

	ck_assert_int_eq(dev_conf_load(&l, "/nonexistent/deviced.conf", err,
			     sizeof(err)),
	    NP_ERR_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(err, "no such file"));
	dev_conf_free(&l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dev_conf");
	TCase *tc = tcase_create("conf");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_allow_errors);
	tcase_add_test(tc, test_allow_many_users);
	tcase_add_test(tc, test_other_errors);
	tcase_add_test(tc, test_users);
	tcase_add_test(tc, test_devname);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_permit_default);
	tcase_add_test(tc, test_permit_lists);
	tcase_add_test(tc, test_permit_many);
	tcase_add_test(tc, test_permit_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
