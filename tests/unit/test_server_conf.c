/*
 * Server configuration (server.conf), the listen-address parser and the
 * routing hash table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "log.h"
#include "srv_cli.h"
#include "srv_htab.h"

static char tmpdir[64];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/np-test-srvconf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/server.conf", tmpdir);
	unlink(p);
	rmdir(tmpdir);
}

/* Write text to tmpdir/server.conf and load it over the defaults. */
static int
load_text(const char *text, struct srv_conf *c, char *err, size_t errlen)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/server.conf", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
	srv_conf_init(c);
	return srv_conf_load(c, p, err, errlen);
}

START_TEST(test_defaults)
{
	struct srv_conf c;
	char err[256] = "";

	srv_conf_init(&c);
	ck_assert_int_eq(srv_conf_load(&c, NULL, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(c.listen, "127.0.0.1:6464");
	ck_assert_int_eq(c.max_conns, 20000);
	ck_assert_int_eq(c.max_unauth, 32);
	ck_assert_int_eq(c.auth_timeout, 10);
	ck_assert_int_eq(c.queue_max, 1000);
	ck_assert_int_eq(c.max_ttl, 604800);
	ck_assert_str_eq(c.log_level, "info");
	srv_conf_free(&c);
	srv_conf_free(NULL);
}
END_TEST

START_TEST(test_file_values)
{
	struct srv_conf c;
	char err[256] = "";

	ck_assert_int_eq(load_text("# comment\n"
				   "Listen [::1]:0\n"
				   "maxconnections 5\n"
				   "MaxUnauthPerSource=2\n"
				   "AuthTimeout 1m\n"
				   "QueueMax 7\n"
				   "MaxTTL 2h\n"
				   "LogLevel DEBUG\n",
			     &c, err, sizeof(err)),
	    NP_OK);
	ck_assert_str_eq(c.listen, "[::1]:0");
	ck_assert_int_eq(c.max_conns, 5);
	ck_assert_int_eq(c.max_unauth, 2);
	ck_assert_int_eq(c.auth_timeout, 60);
	ck_assert_int_eq(c.queue_max, 7);
	ck_assert_int_eq(c.max_ttl, 7200);
	ck_assert_str_eq(c.log_level, "DEBUG");
	srv_conf_free(&c);
}
END_TEST

START_TEST(test_file_errors)
{
	static const char *const bad[] = {
		"Bogus 1\n",
		"Listen nowhere\n",
		"Listen 127.0.0.1:70000\n",
		"Listen 127.0.0.1:1 extra\n",
		"MaxConnections 0\n",
		"MaxConnections lots\n",
		"MaxTTL 8d\n",
		"QueueMax 1\nQueueMax 2\n",
		"LogLevel chatty\n",
		"AuthTimeout\n",
	};
	struct srv_conf c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(load_text(bad[i], &c, err, sizeof(err)) != NP_OK,
		    "accepted: %s", bad[i]);
		ck_assert_msg(strstr(err, "server.conf") != NULL,
		    "no file name in '%s'", err);
		srv_conf_free(&c);
	}
	/* The line number is given for parser errors. */
	ck_assert_int_ne(load_text("\n\nBogus 1\n", &c, err, sizeof(err)),
	    NP_OK);
	ck_assert_ptr_nonnull(strstr(err, ":3:"));
	srv_conf_free(&c);
}
END_TEST

/* The generated file parses; with every '#Keyword' line uncommented it
 * still gives exactly the defaults. */
START_TEST(test_default_text)
{
	struct np_buf *b = np_buf_new(65536);
	struct srv_conf c;
	char err[256], *text, *p;
	size_t n = 0;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(srv_conf_default_text(b, NULL), NP_OK);
	ck_assert_ptr_nonnull(text = strndup((const char *)np_buf_ptr(b),
				  np_buf_len(b)));
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(c.queue_max, 1000);
	srv_conf_free(&c);
	for (p = text; (p = strstr(p, "\n#")) != NULL; p++) {
		if (p[2] >= 'A' && p[2] <= 'Z') {
			p[1] = ' ';
			n++;
		}
	}
	ck_assert_uint_eq(n, 8);
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), NP_OK);
	ck_assert_str_eq(c.listen, "127.0.0.1:6464");
	ck_assert_int_eq(c.max_conns, 20000);
	ck_assert_int_eq(c.max_unauth, 32);
	ck_assert_int_eq(c.auth_timeout, 10);
	ck_assert_int_eq(c.queue_max, 1000);
	ck_assert_int_eq(c.max_ttl, 604800);
	ck_assert_str_eq(c.log_level, "info");
	/* "Store np.db": the default file in the data directory */
	ck_assert_str_eq(c.store, "np.db");
	srv_conf_free(&c);
	free(text);
	np_buf_free(b);
}
END_TEST

START_TEST(test_listen_parse)
{
	struct np_hostport hp;

	ck_assert_int_eq(srv_listen_parse("127.0.0.1:0", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "127.0.0.1");
	ck_assert_str_eq(hp.port, "0");
	np_hostport_free(&hp);
	ck_assert_int_eq(srv_listen_parse("[::1]:0", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "::1");
	ck_assert_str_eq(hp.port, "0");
	np_hostport_free(&hp);
	ck_assert_int_eq(srv_listen_parse("localhost:6464", &hp), NP_OK);
	ck_assert_str_eq(hp.host, "localhost");
	ck_assert_str_eq(hp.port, "6464");
	np_hostport_free(&hp);

	ck_assert_int_ne(srv_listen_parse(NULL, &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("6464", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse(":0", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse(":6464", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("host:", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("host:00", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("host:-1", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("host:65536", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("a b:1", &hp), NP_OK);
	ck_assert_int_ne(srv_listen_parse("[::1:0", &hp), NP_OK);
	ck_assert_ptr_null(hp.host);
	ck_assert_ptr_null(hp.port);
}
END_TEST

START_TEST(test_log_level)
{
	int l = -1;

	ck_assert_int_eq(srv_log_level_parse("error", &l), NP_OK);
	ck_assert_int_eq(l, NP_LOG_ERROR);
	ck_assert_int_eq(srv_log_level_parse("Warn", &l), NP_OK);
	ck_assert_int_eq(l, NP_LOG_WARN);
	ck_assert_int_eq(srv_log_level_parse("info", &l), NP_OK);
	ck_assert_int_eq(l, NP_LOG_INFO);
	ck_assert_int_eq(srv_log_level_parse("debug", &l), NP_OK);
	ck_assert_int_eq(l, NP_LOG_DEBUG);
	ck_assert_int_eq(srv_log_level_parse("verbose", &l), NP_ERR_CONF);
	ck_assert_int_eq(srv_log_level_parse("", &l), NP_ERR_CONF);
	ck_assert_int_eq(srv_log_level_parse(NULL, &l), NP_ERR_CONF);
}
END_TEST

START_TEST(test_htab_basic)
{
	struct srv_htab *h = srv_htab_new();
	int a = 1, b = 2;
	char big[HTAB_KEY_MAX + 1];

	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_null(srv_htab_get(h, "x", 1));
	ck_assert_int_eq(srv_htab_put(h, "x", 1, &a), NP_OK);
	ck_assert_ptr_eq(srv_htab_get(h, "x", 1), &a);
	/* Keys are byte strings: prefixes and NULs are distinct keys. */
	ck_assert_ptr_null(srv_htab_get(h, "x\0", 2));
	ck_assert_int_eq(srv_htab_put(h, "x\0", 2, &b), NP_OK);
	ck_assert_ptr_eq(srv_htab_get(h, "x\0", 2), &b);
	ck_assert_ptr_eq(srv_htab_get(h, "x", 1), &a);
	ck_assert_uint_eq(srv_htab_count(h), 2);
	/* Replace keeps the count. */
	ck_assert_int_eq(srv_htab_put(h, "x", 1, &b), NP_OK);
	ck_assert_ptr_eq(srv_htab_get(h, "x", 1), &b);
	ck_assert_uint_eq(srv_htab_count(h), 2);
	ck_assert_ptr_eq(srv_htab_del(h, "x", 1), &b);
	ck_assert_ptr_null(srv_htab_del(h, "x", 1));
	ck_assert_uint_eq(srv_htab_count(h), 1);
	memset(big, 'k', sizeof(big));
	ck_assert_int_eq(srv_htab_put(h, big, sizeof(big), &a),
	    NP_ERR_TOO_BIG);
	ck_assert_ptr_null(srv_htab_get(h, big, sizeof(big)));
	ck_assert_ptr_null(srv_htab_del(h, big, sizeof(big)));
	ck_assert_int_eq(srv_htab_put(h, big, HTAB_KEY_MAX, &a), NP_OK);
	ck_assert_ptr_eq(srv_htab_get(h, big, HTAB_KEY_MAX), &a);
	srv_htab_free(h);
	srv_htab_free(NULL);
}
END_TEST

START_TEST(test_htab_many)
{
	struct srv_htab *h = srv_htab_new();
	static int vals[5000];
	char k[32];
	int i;

	ck_assert_ptr_nonnull(h);
	for (i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "@name%d", i);
		ck_assert_int_eq(srv_htab_put(h, k, strlen(k), &vals[i]), NP_OK);
	}
	ck_assert_uint_eq(srv_htab_count(h), 5000);
	for (i = 0; i < 5000; i += 2) {
		snprintf(k, sizeof(k), "@name%d", i);
		ck_assert_ptr_eq(srv_htab_del(h, k, strlen(k)), &vals[i]);
	}
	for (i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "@name%d", i);
		if (i % 2 == 0) {
			ck_assert_ptr_null(srv_htab_get(h, k, strlen(k)));
		} else {
			ck_assert_ptr_eq(srv_htab_get(h, k, strlen(k)),
			    &vals[i]);
		}
	}
	ck_assert_uint_eq(srv_htab_count(h), 2500);
	srv_htab_free(h);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("server_conf");
	TCase *tc;
	SRunner *sr;
	int failed;

	np_log_init("test_server_conf", 0, NP_LOG_ERROR);
	tc = tcase_create("conf");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_file_values);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_default_text);
	tcase_add_test(tc, test_listen_parse);
	tcase_add_test(tc, test_log_level);
	suite_add_tcase(s, tc);
	tc = tcase_create("htab");
	tcase_add_test(tc, test_htab_basic);
	tcase_add_test(tc, test_htab_many);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
