/*
 * np-srd configuration: keywords, defaults, and the checks across values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "err.h"
#include "log.h"
#include "srd.h"

#define BASE "IdentityFile /etc/noports/srd/identity.key\n" \
	"Server cp.example.com:6464\n" \
	"ServerFingerprint SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n"

static int
parse(const char *text, struct srd_conf *c, char *err, size_t errlen)
{
	srd_conf_init(c);
	err[0] = '\0';
	return srd_conf_parse(c, text, strlen(text), "srd.conf", err, errlen);
}

/* The text must be refused with a message containing want. */
static void
refused(const char *text, const char *want)
{
	struct srd_conf c;
	char err[512];

	ck_assert_int_eq(parse(text, &c, err, sizeof(err)), NP_ERR_CONF);
	ck_assert_msg(strstr(err, want) != NULL, "error [%s] lacks [%s]", err,
	    want);
	srd_conf_free(&c);
}

START_TEST(test_defaults)
{
	struct srd_conf c;
	char err[512];

	ck_assert_int_eq(parse(BASE, &c, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(c.public_host, "127.0.0.1");
	ck_assert_str_eq(c.listen_address, "127.0.0.1");
	ck_assert_str_eq(c.known_identities,
	    "/etc/noports/srd/known_identities");
	ck_assert_int_eq(c.single_port, 0);
	ck_assert_int_eq(c.port_lo, 0);
	ck_assert_int_eq(c.port_hi, 0);
	ck_assert_int_eq(c.max_per_ident, 32);
	ck_assert_int_eq(c.max_sessions, 20000);
	ck_assert_int_eq(c.auth_timeout, 5);
	ck_assert_int_eq(c.session_timeout, 30);
	ck_assert_int_eq(c.idle_timeout, 0);
	ck_assert_int_eq(c.keepalive, 30);
	ck_assert_int_eq(c.grace_time, 30);
	ck_assert_int_eq(c.max_pending, 4096);
	ck_assert_int_eq(c.max_pending_src, 64);
	ck_assert_int_eq(c.level, NP_LOG_INFO);
	ck_assert_str_eq(c.server.host, "cp.example.com");
	ck_assert_str_eq(c.server.port, "6464");
	/* No Allow line: nobody. */
	ck_assert_int_eq(c.allow_all, 0);
	ck_assert_int_eq(srd_conf_allowed(&c, "@alice"), 0);
	srd_conf_free(&c);
}
END_TEST

START_TEST(test_all_keywords)
{
	struct srd_conf c;
	char err[512];
	const char *text = BASE
	    "Identity @sr\n"
	    "KnownIdentities /var/lib/srd/pins\n"
	    "PublicHost sr.example.com\n"
	    "PortRange 40000-40999\n"
	    "Allow @alice bob\n"
	    "Allow @carol\n"
	    "MaxSessionsPerIdentity 4\n"
	    "MaxSessions 100\n"
	    "AuthTimeout 2s\n"
	    "SessionTimeout 1m\n"
	    "IdleTimeout 2h\n"
	    "KeepAlive 10\n"
	    "GraceTime 5\n"
	    "MaxPending 10\n"
	    "MaxPendingPerSource 3\n"
	    "LogLevel debug\n";

	ck_assert_int_eq(parse(text, &c, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(c.identity, "@sr");
	ck_assert_str_eq(c.known_identities, "/var/lib/srd/pins");
	ck_assert_str_eq(c.public_host, "sr.example.com");
	/* A name: bind to every address. */
	ck_assert_str_eq(c.listen_address, "0.0.0.0");
	ck_assert_int_eq(c.port_lo, 40000);
	ck_assert_int_eq(c.port_hi, 40999);
	ck_assert_int_eq(srd_conf_allowed(&c, "@alice"), 1);
	ck_assert_int_eq(srd_conf_allowed(&c, "@bob"), 1);
	ck_assert_int_eq(srd_conf_allowed(&c, "@carol"), 1);
	ck_assert_int_eq(srd_conf_allowed(&c, "@dave"), 0);
	ck_assert_int_eq(srd_conf_allowed(&c, "alice"), 0);
	ck_assert_int_eq(c.max_per_ident, 4);
	ck_assert_int_eq(c.max_sessions, 100);
	ck_assert_int_eq(c.auth_timeout, 2);
	ck_assert_int_eq(c.session_timeout, 60);
	ck_assert_int_eq(c.idle_timeout, 7200);
	ck_assert_int_eq(c.keepalive, 10);
	ck_assert_int_eq(c.grace_time, 5);
	ck_assert_int_eq(c.max_pending, 10);
	ck_assert_int_eq(c.max_pending_src, 3);
	ck_assert_int_eq(c.level, NP_LOG_DEBUG);
	srd_conf_free(&c);
}
END_TEST

START_TEST(test_single_port_and_allow_all)
{
	struct srd_conf c;
	char err[512];

	ck_assert_int_eq(parse(BASE "SinglePort 443\nAllow *\n"
	    "PublicHost ::1\n", &c, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(c.single_port, 443);
	ck_assert_int_eq(c.allow_all, 1);
	ck_assert_str_eq(c.listen_address, "::1");
	ck_assert_int_eq(srd_conf_allowed(&c, "@anyone"), 1);
	ck_assert_int_eq(srd_conf_allowed(&c, "not valid"), 0);
	srd_conf_free(&c);

	ck_assert_int_eq(parse(BASE "PublicHost sr.example.com\n"
	    "ListenAddress 10.0.0.5\n", &c, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(c.listen_address, "10.0.0.5");
	srd_conf_free(&c);

	/* The per-identity cap never exceeds the total. */
	ck_assert_int_eq(parse(BASE "MaxSessions 5\n", &c, err, sizeof(err)),
	    NP_OK);
	ck_assert_int_eq(c.max_per_ident, 5);
	srd_conf_free(&c);
}
END_TEST

START_TEST(test_required)
{
	refused("Server a:1\nServerFingerprint "
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
	    "IdentityFile");
	refused("IdentityFile /k\nServerFingerprint "
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n", "Server");
	refused("IdentityFile /k\nServer a:1\n", "ServerFingerprint");
	refused("", "IdentityFile");
}
END_TEST

START_TEST(test_bad_values)
{
	refused(BASE "Bogus 1\n", "Bogus");
	refused(BASE "SinglePort 70000\n", "srd.conf:4");
	refused(BASE "SinglePort -1\n", "srd.conf:4");
	refused(BASE "SinglePort 1 2\n", "srd.conf:4");
	refused(BASE "SinglePort 443\nSinglePort 444\n", "srd.conf:5");
	refused(BASE "SinglePort 443\nPortRange 1000-2000\n", "exclude");
	refused(BASE "PortRange 2000-1000\n", "PortRange");
	refused(BASE "PortRange 1000-1000\n", "PortRange");
	refused(BASE "PortRange 0-1000\n", "PortRange");
	refused(BASE "PortRange 1000-70000\n", "PortRange");
	refused(BASE "PortRange 1000\n", "PortRange");
	refused(BASE "PortRange 1000-\n", "PortRange");
	refused(BASE "PortRange -1000\n", "PortRange");
	refused(BASE "PortRange 1000-2000x\n", "PortRange");
	refused(BASE "Allow @Alice\n", "Allow");
	refused(BASE "Allow @bad!name\n", "Allow");
	refused(BASE "Allow\n", "srd.conf:4");
	refused(BASE "PublicHost \"a b\"\n", "PublicHost");
	refused(BASE "PublicHost \"\"\n", "PublicHost");
	refused(BASE "ListenAddress example.com\n", "ListenAddress");
	refused(BASE "ListenAddress 300.1.1.1\n", "ListenAddress");
	refused(BASE "AuthTimeout 0\n", "srd.conf:4");
	refused(BASE "AuthTimeout 2h\n", "srd.conf:4");
	refused(BASE "SessionTimeout x\n", "srd.conf:4");
	refused(BASE "KeepAlive -1\n", "srd.conf:4");
	refused(BASE "MaxSessions 0\n", "srd.conf:4");
	refused(BASE "MaxSessionsPerIdentity 0\n", "srd.conf:4");
	refused(BASE "MaxPending 0\n", "srd.conf:4");
	refused(BASE "MaxPending 10\nMaxPendingPerSource 11\n",
	    "MaxPendingPerSource");
	refused(BASE "LogLevel loud\n", "LogLevel");
	refused(BASE "Identity alice!\n", "srd.conf:4");
	refused("IdentityFile /k\nServer a:1\nServerFingerprint SHA256:x\n",
	    "ServerFingerprint");
	refused("IdentityFile /k\nServer nocolon\nServerFingerprint "
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
	    "srd.conf:2");
}
END_TEST

START_TEST(test_truncated_and_binary)
{
	struct srd_conf c;
	char err[512];
	char text[] = BASE "SinglePort 4\0" "43\n";

	srd_conf_init(&c);
	ck_assert_int_ne(srd_conf_parse(&c, text, sizeof(text) - 1,
	    "srd.conf", err, sizeof(err)), NP_OK);
	srd_conf_free(&c);
	/* Every prefix parses or fails cleanly. */
	for (size_t n = 0; n <= strlen(BASE); n++) {
		srd_conf_init(&c);
		(void)srd_conf_parse(&c, BASE, n, "srd.conf", err,
		    sizeof(err));
		srd_conf_free(&c);
	}
}
END_TEST

START_TEST(test_helpers)
{
	int level = -1;

	ck_assert_int_eq(srd_log_level_parse("WARN", &level), NP_OK);
	ck_assert_int_eq(level, NP_LOG_WARN);
	ck_assert_int_eq(srd_log_level_parse("error", &level), NP_OK);
	ck_assert_int_eq(level, NP_LOG_ERROR);
	ck_assert_int_eq(srd_log_level_parse("", &level), NP_ERR_INVALID);
	ck_assert_int_eq(srd_ip_literal("127.0.0.1"), 1);
	ck_assert_int_eq(srd_ip_literal("::"), 1);
	ck_assert_int_eq(srd_ip_literal("localhost"), 0);
	ck_assert_int_eq(srd_ip_literal("1.2.3"), 0);
}
END_TEST

static Suite *
srd_conf_suite(void)
{
	Suite *s = suite_create("srd_conf");
	TCase *tc = tcase_create("conf");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_all_keywords);
	tcase_add_test(tc, test_single_port_and_allow_all);
	tcase_add_test(tc, test_required);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_truncated_and_binary);
	tcase_add_test(tc, test_helpers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(srd_conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
