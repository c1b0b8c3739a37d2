/*
 * np doctor's view of ssh's config (proxy/sshcfg.c): ssh -G output
 * parsing, the ProxyCommand that runs np proxy, ssh's path expansion,
 * and running ssh -G itself (when ssh is installed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "err.h"
#include "sshcfg.h"

static const char G_OUT[] =
    "user alice\n"
    "hostname demo.noports\n"
    "port 22\n"
    "identityfile ~/.cache/noports/keys/%r@%h\n"
    "identityfile ~/.ssh/id_ed25519\n"
    "userknownhostsfile /home/alice/.cache/noports/known_hosts\n"
    "proxycommand np -F ~/.config/noports/work.conf proxy %h %p %r\n"
    "stricthostkeychecking true\n"
    "nospace\n"
    "\n";

START_TEST(parse_g)
{
	char text[sizeof(G_OUT)];
	struct np_sshg g;

	memcpy(text, G_OUT, sizeof(G_OUT));
	np_sshg_parse(text, &g);
	ck_assert_str_eq(g.user, "alice");
	ck_assert_str_eq(g.hostname, "demo.noports");
	ck_assert_str_eq(g.port, "22");
	ck_assert_uint_eq(g.nidfiles, 2);
	ck_assert_str_eq(g.idfiles[0], "~/.cache/noports/keys/%r@%h");
	ck_assert_str_eq(g.idfiles[1], "~/.ssh/id_ed25519");
	ck_assert_str_eq(g.ukh, "/home/alice/.cache/noports/known_hosts");
	ck_assert_str_eq(g.proxycommand,
	    "np -F ~/.config/noports/work.conf proxy %h %p %r");

	/* Nothing at all; an unterminated last line; many identityfiles. */
	text[0] = '\0';
	np_sshg_parse(text, &g);
	ck_assert_ptr_null(g.proxycommand);
	ck_assert_uint_eq(g.nidfiles, 0);
	snprintf(text, sizeof(text), "proxycommand none");
	np_sshg_parse(text, &g);
	ck_assert_str_eq(g.proxycommand, "none");
	{
		char many[64 * 20];
		size_t off = 0;

		for (int i = 0; i < 40; i++) {
			off += (size_t)snprintf(many + off, sizeof(many) - off,
			    "identityfile /k%d\n", i);
		}
		np_sshg_parse(many, &g);
		ck_assert_uint_eq(g.nidfiles, NP_SSHG_IDFILES_MAX);
		ck_assert_str_eq(g.idfiles[0], "/k0");
	}
}
END_TEST

START_TEST(proxy_good)
{
	struct np_sshg_proxy p;
	char why[128];

	ck_assert_int_eq(np_sshg_proxy_parse("np proxy %h %p %r", &p, why,
	    sizeof(why)), NP_OK);
	ck_assert_str_eq(p.np, "np");
	ck_assert_ptr_null(p.config);
	ck_assert_int_eq(np_sshg_proxy_parse("exec /usr/local/bin/np -v -F "
	    "/etc/np.conf proxy\t%h %p  %r", &p, why, sizeof(why)), NP_OK);
	ck_assert_str_eq(p.np, "/usr/local/bin/np");
	ck_assert_str_eq(p.config, "/etc/np.conf");
	ck_assert_int_eq(np_sshg_proxy_parse("np -F ~/x.conf -v proxy %h %p "
	    "%r", &p, why, sizeof(why)), NP_OK);
	ck_assert_str_eq(p.config, "~/x.conf");
}
END_TEST

START_TEST(proxy_bad)
{
	static const char *const bad[] = {
		"",
		"nc %h %p",
		"/usr/bin/npx proxy %h %p %r",
		"np ssh %h",
		"np proxy %h %p",
		"np proxy %h %p %r extra",
		"np proxy %n %p %r",
		"np -x proxy %h %p %r",
		"np -F",
		"np -F proxy %h %p %r",
		"exec",
		"sh -c 'np proxy %h %p %r'",
		"np proxy %h %p %r a b c d e f g h i j k l m n o p q",
	};
	struct np_sshg_proxy p;
	char why[128], big[3000];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(np_sshg_proxy_parse(bad[i], &p, why,
		    sizeof(why)) == NP_ERR_INVALID, "accepted '%s'", bad[i]);
		ck_assert_msg(why[0] != '\0', "no reason for '%s'", bad[i]);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(np_sshg_proxy_parse(big, &p, why, sizeof(why)),
	    NP_ERR_INVALID);
}
END_TEST

START_TEST(expand)
{
	struct np_sshg g;
	struct np_sshg_env e = { "/home/alice", "alice", "Demo.noports",
		1000 };
	char out[256], small[8];

	memset(&g, 0, sizeof(g));
	g.user = "bob";
	g.hostname = "demo.noports";
	g.port = "22";
	ck_assert_int_eq(np_sshg_expand("~/.cache/noports/keys/%r@%h", &g, &e,
	    out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out,
	    "/home/alice/.cache/noports/keys/bob@demo.noports");
	ck_assert_int_eq(np_sshg_expand("%d/%u/%i/%n:%p/100%%", &g, &e, out,
	    sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "/home/alice/alice/1000/Demo.noports:22/100%");
	ck_assert_int_eq(np_sshg_expand("~", &g, &e, out, sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "/home/alice");
	/* "~user/" is not ours to expand: kept as written. */
	ck_assert_int_eq(np_sshg_expand("~bob/x", &g, &e, out, sizeof(out)),
	    NP_OK);
	ck_assert_str_eq(out, "~bob/x");
	ck_assert_int_eq(np_sshg_expand("/plain/path", &g, &e, out,
	    sizeof(out)), NP_OK);
	ck_assert_str_eq(out, "/plain/path");
	/* Unknown tokens, a lone % at the end, unknown values, no room. */
	ck_assert_int_eq(np_sshg_expand("%C", &g, &e, out, sizeof(out)),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_sshg_expand("a%", &g, &e, out, sizeof(out)),
	    NP_ERR_INVALID);
	g.user = NULL;
	ck_assert_int_eq(np_sshg_expand("%r", &g, &e, out, sizeof(out)),
	    NP_ERR_INVALID);
	e.home = NULL;
	ck_assert_int_eq(np_sshg_expand("~/x", &g, &e, out, sizeof(out)),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_sshg_expand("12345678", &g, &e, small,
	    sizeof(small)), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_sshg_expand("1234567", &g, &e, small,
	    sizeof(small)), NP_OK);
	ck_assert_int_eq(np_sshg_expand("%%%%%%%%", &g, &e, small, 4),
	    NP_ERR_TOO_BIG);
}
END_TEST

START_TEST(run_ssh)
{
	char path[] = "/tmp/test_sshcfg.XXXXXX", err[256], *out = NULL;
	struct np_sshg g;
	FILE *f;
	int fd, status = -1;

	if (access("/usr/bin/ssh", X_OK) != 0) {
		return; /* no ssh here: nothing to run */
	}
	ck_assert_int_ge(fd = mkstemp(path), 0);
	ck_assert_ptr_nonnull(f = fdopen(fd, "w"));
	fprintf(f, "Host *.noports\n\tProxyCommand np proxy %%h %%p %%r\n"
	    "\tUser carol\n\tIdentityFile /k/%%r@%%h\n");
	fclose(f);
	ck_assert_int_eq(np_sshg_run(path, "demo.noports", 10000, &out,
	    &status, err, sizeof(err)), NP_OK);
	ck_assert_int_eq(status, 0);
	np_sshg_parse(out, &g);
	ck_assert_str_eq(g.proxycommand, "np proxy %h %p %r");
	ck_assert_str_eq(g.user, "carol");
	ck_assert_uint_ge(g.nidfiles, 1);
	free(out);
	out = NULL;
	/* A config ssh refuses: non-zero, its message kept. */
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "NoSuchSshKeyword yes\n");
	fclose(f);
	ck_assert_int_eq(np_sshg_run(path, "demo.noports", 10000, &out,
	    &status, err, sizeof(err)), NP_OK);
	ck_assert_int_ne(status, 0);
	ck_assert_ptr_nonnull(strstr(err, "line 1: Bad configuration option"));
	free(out);
	unlink(path);
}
END_TEST

static Suite *
sshcfg_suite(void)
{
	Suite *s = suite_create("sshcfg");
	TCase *tc = tcase_create("sshcfg");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, parse_g);
	tcase_add_test(tc, proxy_good);
	tcase_add_test(tc, proxy_bad);
	tcase_add_test(tc, expand);
	tcase_add_test(tc, run_ssh);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sshcfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
