/*
 * proxy/srpick.c: the ranking of several rendezvous and the cache file
 * that keeps it.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "buf.h"
#include "conf.h"
#include "config.h"
#include "diag.h"
#include "err.h"
#include "srpick.h"

#define NOW 1700000000000LL

static char *three[] = { "@sr_ap", "@sr_us", "@sr_eu" };
static const struct np_strlist ids3 = { three, 3 };

static void
ent(struct np_srpick *p, const char *id, long rtt, long dev)
{
	struct np_srpick_ent *e = &p->e[p->n];

	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->rtt_ms = rtt;
	e->dev_ms = dev;
	e->order = p->n++;
}

static int
parse(const char *text, long age, struct np_srpick *out)
{
	return np_srcache_parse((const uint8_t *)text, strlen(text), &ids3,
	    NOW, age, out);
}

START_TEST(rank)
{
	struct np_srpick p;

	memset(&p, 0, sizeof(p));
	ent(&p, "@sr_ap", 160, -1);
	ent(&p, "@sr_us", -1, -1);
	ent(&p, "@sr_eu", 10, -1);
	ent(&p, "@sr_x", 10, -1);
	np_srpick_rank(&p);
	ck_assert_str_eq(p.e[0].id, "@sr_eu");
	ck_assert_str_eq(p.e[1].id, "@sr_x"); /* a tie: line order */
	ck_assert_str_eq(p.e[2].id, "@sr_ap");
	ck_assert_str_eq(p.e[3].id, "@sr_us"); /* no answer: last */

	/* The device's round trips count where it reported them. */
	memset(&p, 0, sizeof(p));
	ent(&p, "@a", 10, 200);
	ent(&p, "@b", 50, 20);
	ent(&p, "@c", 60, -1);
	np_srpick_rank(&p);
	ck_assert_str_eq(p.e[0].id, "@c");
	ck_assert_str_eq(p.e[1].id, "@b");
	ck_assert_str_eq(p.e[2].id, "@a");

	np_srpick_demote(&p, "@c");
	ck_assert_str_eq(p.e[0].id, "@b");
	ck_assert_str_eq(p.e[2].id, "@c");
	ck_assert_int_eq(p.e[2].rtt_ms, -1);
	np_srpick_demote(&p, "@nobody");
	ck_assert_str_eq(p.e[0].id, "@b");
}
END_TEST

START_TEST(cache_roundtrip)
{
	struct np_srpick p, q;
	struct np_buf *b = np_buf_new(NP_SRCACHE_MAX);
	char text[512];

	memset(&p, 0, sizeof(p));
	ent(&p, "@sr_eu", 11, 12);
	ent(&p, "@sr_us", 81, -1);
	ent(&p, "@sr_ap", -1, -1);
	p.when_ms = NOW - 1000;
	ck_assert_int_eq(np_srcache_format(&p, b), NP_OK);
	snprintf(text, sizeof(text), "%.*s", (int)np_buf_len(b),
	    (const char *)np_buf_ptr(b));
	ck_assert_str_eq(text, "np-rendezvous-cache 1 1699999999000\n"
	    "@sr_eu 11 12\n@sr_us 81 -\n@sr_ap - -\n");
	ck_assert_int_eq(parse(text, 300, &q), NP_OK);
	ck_assert_uint_eq(q.n, 3);
	ck_assert_int_eq(q.when_ms, NOW - 1000);
	ck_assert_str_eq(q.e[0].id, "@sr_eu");
	ck_assert_int_eq(q.e[0].rtt_ms, 11);
	ck_assert_int_eq(q.e[0].dev_ms, 12);
	ck_assert_int_eq(q.e[1].dev_ms, -1);
	ck_assert_uint_eq(q.e[0].order, 2); /* its place on the line */
	ck_assert_str_eq(q.e[2].id, "@sr_ap");
	ck_assert_int_eq(q.e[2].rtt_ms, -1);
	ck_assert_int_eq(q.e[2].dev_ms, -1);
	/* stale: older than max_age, or from the future */
	ck_assert_int_eq(parse(text, 0, &q), NP_ERR_STALE);
	ck_assert_int_eq(parse("np-rendezvous-cache 1 1700000100000\n"
	    "@sr_eu 11 -\n@sr_us 81 -\n@sr_ap - -\n", 300, &q),
	    NP_ERR_STALE);
	np_buf_free(b);
}
END_TEST

START_TEST(cache_bad)
{
	static const char *const bad[] = {
		"",
		"garbage\n",
		"np-rendezvous-cache 2 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -", /* no final newline */
		"np-rendezvous-cache 1 x\n@sr_eu 1 -\n@sr_us 2 -\n@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_eu 3 -\n", /* twice, one missing */
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n@sr_x 4 -\n", /* not configured */
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_zz 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu -1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 600001 -\n"
		    "@sr_us 2 -\n@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu  1\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@SR_EU 1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n\n@sr_eu 1 -\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 2 3\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n", /* two fields */
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 x\n@sr_us 2 -\n"
		    "@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 600001\n"
		    "@sr_us 2 -\n@sr_ap 3 -\n",
		"np-rendezvous-cache 1 1699999999000\n@sr_eu 1 -\r\n"
		    "@sr_us 2 -\n@sr_ap 3 -\n",
	};
	struct np_srpick q;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i], 300, &q) == NP_ERR_INVALID,
		    "accepted %zu: %s", i, bad[i]);
		ck_assert_uint_eq(q.n, 0);
	}
	/* a NUL inside */
	ck_assert_int_eq(np_srcache_parse((const uint8_t *)
	    "np-rendezvous-cache 1 1\n@sr_eu 1 -\0\n", 36, &ids3, NOW, 300, &q),
	    NP_ERR_INVALID);
}
END_TEST

START_TEST(cache_file)
{
	char dir[] = "/tmp/test_srpick.XXXXXX", path[256], cmd[300];
	struct np_config cfg;
	struct np_srpick p, q;
	struct stat st;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(path, sizeof(path), "%s/x/known_hosts", dir);
	cfg.known_hosts = path;
	ck_assert_int_eq(np_srcache_path(&cfg, "@demo", cmd, sizeof(cmd)),
	    NP_OK);
	snprintf(path, sizeof(path), "%s/x/rendezvous-demo.cache", dir);
	ck_assert_str_eq(cmd, path);
	ck_assert_int_eq(np_srcache_path(&cfg, "demo", cmd, sizeof(cmd)),
	    NP_ERR_CONF);
	ck_assert_int_eq(np_srcache_path(&cfg, "@../x", cmd, sizeof(cmd)),
	    NP_ERR_CONF);
	cfg.known_hosts = "nodir";
	ck_assert_int_eq(np_srcache_path(&cfg, "@demo", cmd, sizeof(cmd)),
	    NP_ERR_CONF);

	memset(&p, 0, sizeof(p));
	ent(&p, "@sr_us", 80, -1);
	ent(&p, "@sr_eu", 10, -1);
	ent(&p, "@sr_ap", 160, -1);
	p.when_ms = NOW;
	ck_assert_int_eq(np_srcache_load(path, &ids3, NOW, 300, &q),
	    NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_srcache_save(path, &p), NP_OK); /* makes x/ */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(np_srcache_load(path, &ids3, NOW + 1000, 300, &q),
	    NP_OK);
	ck_assert_str_eq(q.e[0].id, "@sr_us");
	ck_assert_int_eq(np_srcache_load(path, &ids3, NOW + 301000, 300, &q),
	    NP_ERR_STALE);
	/* others may write it: not used */
	ck_assert_int_eq(chmod(path, 0622), 0);
	ck_assert_int_eq(np_srcache_load(path, &ids3, NOW, 300, &q),
	    NP_ERR_PERM);
	/* rewritten (rename over it): 0600 again */
	ck_assert_int_eq(np_srcache_save(path, &p), NP_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	/* malformed */
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("np-rendezvous-cache 1 oops\n", f);
	fclose(f);
	ck_assert_int_eq(np_srcache_load(path, &ids3, NOW, 300, &q),
	    NP_ERR_INVALID);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(pong_rtt)
{
	struct np_pong pong;
	struct json_object *o;
	char text[2048];
	size_t i, n;

	memset(&pong, 0, sizeof(pong));
	o = json_tokener_parse("{\"rtt\":{\"@a\":12,\"@b\":0,"
	    "\"@c\":600000,\"@d\":600001,\"@e\":-1,\"@f\":\"5\","
	    "\"g\":5,\"@H\":5,\"@i\":1.5}}");
	ck_assert_ptr_nonnull(o);
	np_pong_rtt(o, &pong);
	json_object_put(o);
	ck_assert_uint_eq(pong.nrtt, 3);
	ck_assert_str_eq(pong.rtt_sr[0], "@a");
	ck_assert_int_eq(pong.rtt_dev_ms[0], 12);
	ck_assert_str_eq(pong.rtt_sr[1], "@b");
	ck_assert_int_eq(pong.rtt_dev_ms[2], 600000);
	/* none, or not an object, or too many members: nothing */
	o = json_tokener_parse("{\"rtt\":[1]}");
	np_pong_rtt(o, &pong);
	json_object_put(o);
	ck_assert_uint_eq(pong.nrtt, 0);
	np_pong_rtt(NULL, &pong);
	ck_assert_uint_eq(pong.nrtt, 0);
	n = (size_t)snprintf(text, sizeof(text), "{\"rtt\":{");
	for (i = 0; i <= NP_PONG_RTT_MAX; i++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "%s\"@s%zu\":1", i > 0 ? "," : "", i);
	}
	snprintf(text + n, sizeof(text) - n, "}}");
	o = json_tokener_parse(text);
	ck_assert_ptr_nonnull(o);
	np_pong_rtt(o, &pong);
	json_object_put(o);
	ck_assert_uint_eq(pong.nrtt, 0);
}
END_TEST

static Suite *
srpick_suite(void)
{
	Suite *s = suite_create("srpick");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, rank);
	tcase_add_test(tc, cache_roundtrip);
	tcase_add_test(tc, cache_bad);
	tcase_add_test(tc, cache_file);
	tcase_add_test(tc, pong_rtt);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(srpick_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
